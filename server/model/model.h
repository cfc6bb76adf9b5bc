/*
 * model.h - the broker model's context: the vhosts, the exchange types it
 * can create, the message-memory counter, and the two interfaces through
 * which the model reaches the layers above it without calling them:
 *
 *   - struct model_store_ops: how a durable queue persists its messages.
 *     The storage host (store/) implements it and hands it down; with none
 *     (no data directory) nothing is persisted.
 *   - struct model_observer: news for whoever runs the broker (io/): a
 *     durable definition changed; the message-memory counter moved; the
 *     earliest timer (timer.h) moved.  The
 *     observer only notes and schedules; it never calls back into the
 *     model from inside these calls.
 *
 * It also holds the internal user database and the access rules
 * (user.h), which are definitions like the rest.
 *
 * The model knows no connections, channels or sockets: consumers reach it
 * through struct consumer_ops (queue.h).
 *
 * Ownership: the model owns its vhosts (and through them exchanges and
 * queues).  Threading: loop thread only.
 */
#ifndef MODEL_H
#define MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "plugin/plugin_host.h"
#include "model/stats.h"
#include "model/timer.h"
#include "util/hmap.h"

struct queue;
struct message;
struct vhost;

/*
 * How a write was made safe: 0 when there is nothing to wait for (a
 * transient message, or a queue without a store), else the generation a
 * completed sync must reach (synced_gen >= token) before a confirm or
 * tx.commit-ok that covers the write may go out.
 */
typedef uint64_t storage_token;

/* Where a dead-lettered copy came from (dead_letter.h): recovery drops
 * the origin if both survived a crash. */
struct store_origin {
	const char *store_id; /* the origin queue's store */
	uint64_t seq;
};

struct qentry;

/* Message life cycle in a durable queue; each is a no-op (returning 0) for
 * a transient message or a queue without a store. */
struct model_store_ops {
	/* e: seq and expiry of the new entry; from: NULL, or the origin of
	 * a dead-lettered copy. */
	storage_token (*append)(void *ud, struct queue *q, const struct qentry *e,
	                        const struct message *m, const struct store_origin *from);
	storage_token (*ack)(void *ud, struct queue *q, uint64_t seq, const struct message *m);
	/* Ack a paged-out (hence persisted) message by seq. */
	void (*ack_seq)(void *ud, struct queue *q, uint64_t seq);
	/* Ack a persisted message by seq once a sync has reached token (the
	 * copies that replace it are on disk first); at once if token is 0. */
	void (*ack_after)(void *ud, struct queue *q, uint64_t seq, storage_token token);
	/* Page a message back in; NULL if it cannot be read (logged). */
	struct message *(*read)(void *ud, struct queue *q, uint64_t seq);
	/* A queue with a store is being deleted (or closed at shutdown). */
	void (*queue_deleted)(void *ud, struct queue *q);
	/* A durable queue the model made itself (an exchange's holding
	 * queue): open its store. */
	void (*queue_created)(void *ud, struct queue *q);
};

struct model_observer {
	void (*definitions_changed)(struct model_observer *o);
	void (*memory_changed)(struct model_observer *o);
	/* The earliest model timer moved (timer.h): re-arm the loop's event
	 * for model_timers_next(); may be NULL. */
	void (*timers_changed)(struct model_observer *o);
};

struct model {
	struct hmap vhosts;  /* name -> struct vhost */
	struct hmap users;   /* name -> struct user (user.h): the internal backend's */
	uint64_t perm_epoch; /* grows with every change to users or permissions */
	const struct plugin_host *plugins;
	int64_t mem_used;                    /* bytes held by messages (a counter; no calls) */
	uint64_t queue_memory_budget;        /* message bytes in RAM before paging; 0 = none */
	uint64_t route_epoch;                /* de-duplicates destinations while routing */
	unsigned dl_depth;                   /* dead-lettering nested in dead-lettering */
	const struct model_store_ops *store; /* NULL: nothing is persisted */
	void *store_ud;
	struct model_observer *obs;  /* NULL: nobody listens */
	struct model_timers timers;  /* timer.h */
	uint64_t (*clock)(void *ud); /* wall-clock ms; NULL: the system's */
	void *clock_ud;
	struct msg_stats stats; /* the whole broker's (stats.h) */
};

void model_init(struct model *md, const struct plugin_host *plugins);
/* Free every vhost (and what it holds). */
void model_free(struct model *md);
struct vhost *model_vhost(struct model *md, const char *name, size_t len);
/* Delete a vhost and everything in it (durable queues' messages on disk
 * too, through the store).  Nothing above may still point into it: the
 * session layer closes its connections first (session_vhost_delete).
 * false when there is no such vhost. */
bool model_vhost_delete(struct model *md, const char *name);

static inline void model_definitions_changed(struct model *md)
{
	if (md->obs)
		md->obs->definitions_changed(md->obs);
}

static inline void model_mem_add(struct model *md, int64_t delta)
{
	md->mem_used += delta;
	if (md->obs)
		md->obs->memory_changed(md->obs);
}

/* Over the memory budget: persistent messages of durable queues wait on
 * disk only. */
static inline bool model_over_budget(const struct model *md)
{
	return md->queue_memory_budget && md->mem_used > (int64_t)md->queue_memory_budget;
}

#endif
