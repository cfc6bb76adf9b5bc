/*
 * vhost.h - a virtual host: its exchanges and queues by name, the
 * permissions of users in it, its limits.
 *
 * Ownership: a vhost owns its exchanges, queues and permissions.  Loop
 * thread only.
 */
#ifndef VHOST_H
#define VHOST_H

#include <stddef.h>

#include "util/hmap.h"

struct model;
struct exchange;
struct queue;

struct topic_permission;

struct vhost {
	char *name;
	struct model *md;
	struct hmap exchanges; /* name -> struct exchange (not the default one) */
	struct hmap queues;    /* name -> struct queue */
	struct exchange *default_exchange;
	/* Access rules (user.h): user name -> struct permission; topic
	 * permissions in a list (few per vhost). */
	struct hmap permissions;
	struct topic_permission *topic_permissions;
	/* Limits (RabbitMQ's vhost-limits); -1: none. */
	int64_t max_connections, max_queues;
	/* Metadata kept for the definitions export. */
	char *description, *tags, *default_queue_type;
	/* Connections open to it now (the session layer counts them). */
	unsigned nconnections;
};

/* Create a vhost with the default exchange and amq.direct, amq.fanout,
 * amq.topic, amq.headers and amq.match.  NULL on failure (logged). */
struct vhost *vhost_new(struct model *md, const char *name);
void vhost_free(struct vhost *vh);
/* Exchange by name; "" is the default exchange. */
struct exchange *vhost_exchange(struct vhost *vh, const char *name, size_t len);
struct queue *vhost_queue(struct vhost *vh, const char *name, size_t len);

#endif
