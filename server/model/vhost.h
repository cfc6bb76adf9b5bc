/*
 * vhost.h - a virtual host: its exchanges and queues by name.
 *
 * Ownership: a vhost owns its exchanges and queues.  Loop thread only.
 */
#ifndef VHOST_H
#define VHOST_H

#include <stddef.h>

#include "util/hmap.h"

struct model;
struct exchange;
struct queue;

struct vhost {
	char *name;
	struct model *md;
	struct hmap exchanges; /* name -> struct exchange (not the default one) */
	struct hmap queues;    /* name -> struct queue */
	struct exchange *default_exchange;
};

/* Create a vhost with the default exchange and amq.direct, amq.fanout,
 * amq.topic, amq.headers and amq.match.  NULL on failure (logged). */
struct vhost *vhost_new(struct model *md, const char *name);
void vhost_free(struct vhost *vh);
/* Exchange by name; "" is the default exchange. */
struct exchange *vhost_exchange(struct vhost *vh, const char *name, size_t len);
struct queue *vhost_queue(struct vhost *vh, const char *name, size_t len);

#endif
