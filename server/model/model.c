/*
 * model.c - see model.h.
 */
#include "model/model.h"

#include <string.h>

#include "model/user.h"
#include "model/vhost.h"

void model_init(struct model *md, const struct plugin_host *plugins)
{
	memset(md, 0, sizeof(*md));
	hmap_init(&md->vhosts);
	hmap_init(&md->users);
	md->plugins = plugins;
}

void model_free(struct model *md)
{
	void *v;
	for (size_t i = 0; hmap_next(&md->vhosts, &i, &v);)
		vhost_free(v);
	hmap_free(&md->vhosts);
	model_free_users(md);
	model_timers_free(md);
}

struct vhost *model_vhost(struct model *md, const char *name, size_t len)
{
	return hmap_get(&md->vhosts, name, len);
}

bool model_vhost_delete(struct model *md, const char *name)
{
	struct vhost *vh = model_vhost(md, name, strlen(name));
	if (!vh)
		return false;
	hmap_del(&md->vhosts, name, strlen(name));
	vhost_free(vh); /* its queues are deleted, not closed: the store drops them */
	md->perm_epoch++;
	model_definitions_changed(md);
	return true;
}
