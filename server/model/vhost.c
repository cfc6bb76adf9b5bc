/*
 * vhost.c - see vhost.h.
 */
#include "model/vhost.h"

#include <stdlib.h>
#include <string.h>

#include "model/exchange.h"
#include "model/model.h"
#include "util/log.h"
#include "model/queue.h"
#include "model/user.h"

static const struct {
	const char *name;
	const char *type;
} predeclared[] = {
    {"amq.direct", "direct"},   {"amq.fanout", "fanout"}, {"amq.topic", "topic"},
    {"amq.headers", "headers"}, {"amq.match", "headers"},
};

struct vhost *vhost_new(struct model *md, const char *name)
{
	struct vhost *vh = calloc(1, sizeof(*vh));
	if (!vh || !(vh->name = strdup(name))) {
		free(vh);
		return NULL;
	}
	vh->md = md;
	hmap_init(&vh->exchanges);
	hmap_init(&vh->queues);
	hmap_init(&vh->permissions);
	vh->max_connections = vh->max_queues = -1;
	uint16_t code;
	char text[256];
	struct amqp_bytes none = {NULL, 0};
	vh->default_exchange =
	    exchange_new(vh, none, NULL, true, false, false, none, &code, text, sizeof(text));
	if (!vh->default_exchange)
		goto fail;
	for (size_t i = 0; i < sizeof(predeclared) / sizeof(predeclared[0]); i++) {
		const struct xtype *t = plugin_host_xtype(md->plugins, predeclared[i].type,
		                                          strlen(predeclared[i].type));
		if (!t) {
			log_error("cannot create %s in vhost '%s': exchange type '%s' is not "
			          "loaded (is the plugin directory right?)",
			          predeclared[i].name, name, predeclared[i].type);
			goto fail;
		}
		if (!exchange_new(vh, amqp_cstr(predeclared[i].name), t, true, false, false, none,
		                  &code, text, sizeof(text))) {
			log_error("cannot create %s: %s", predeclared[i].name, text);
			goto fail;
		}
	}
	if (hmap_put(&md->vhosts, vh->name, strlen(vh->name), vh) < 0)
		goto fail;
	return vh;
fail:
	vhost_free(vh);
	return NULL;
}

void vhost_free(struct vhost *vh)
{
	void *v;
	/* Queues first (they unlink their bindings), then exchanges. */
	for (size_t i = 0; hmap_next(&vh->queues, &i, &v);)
		queue_delete(v);
	for (size_t i = 0; hmap_next(&vh->exchanges, &i, &v);)
		exchange_delete(v);
	if (vh->default_exchange)
		exchange_delete(vh->default_exchange);
	hmap_free(&vh->queues);
	hmap_free(&vh->exchanges);
	vhost_free_permissions(vh);
	free(vh->description);
	free(vh->tags);
	free(vh->default_queue_type);
	free(vh->name);
	free(vh);
}

struct exchange *vhost_exchange(struct vhost *vh, const char *name, size_t len)
{
	if (len == 0)
		return vh->default_exchange;
	return hmap_get(&vh->exchanges, name, len);
}

struct queue *vhost_queue(struct vhost *vh, const char *name, size_t len)
{
	return hmap_get(&vh->queues, name, len);
}
