/*
 * model.c - see model.h.
 */
#include "model/model.h"

#include <string.h>

#include "model/vhost.h"

void model_init(struct model *md, const struct plugin_host *plugins)
{
	memset(md, 0, sizeof(*md));
	hmap_init(&md->vhosts);
	md->plugins = plugins;
}

void model_free(struct model *md)
{
	void *v;
	for (size_t i = 0; hmap_next(&md->vhosts, &i, &v);)
		vhost_free(v);
	hmap_free(&md->vhosts);
}

struct vhost *model_vhost(struct model *md, const char *name, size_t len)
{
	return hmap_get(&md->vhosts, name, len);
}
