/*
 * queue.h - a queue: ready messages in O(1) FIFOs (one per priority
 * level, qring.h), consumers served round-robin within priority.
 * Consumers are kept sorted by priority (x-priority); among the ready
 * consumers of the highest priority the least recently served one gets
 * the next message.
 *
 * With x-single-active-consumer one consumer is served at a time, as
 * RabbitMQ 4 does with consumer priorities: the highest-priority consumer
 * (the earliest registered among equals) becomes active when the active
 * one goes; a consumer of higher priority than the active one takes over
 * once the active one has no unacked messages (until then the active one
 * gets nothing new).
 *
 * Messages carry their expiry (x-message-ttl, the expiration property)
 * and leave on time wherever they sit (the expiry heap); they go to the
 * dead-letter exchange (dead_letter.h) when they expire, are rejected,
 * fall off a full queue or pass the delivery limit.
 *
 * Ownership: the vhost owns a queue through its name map; unacked
 * deliveries hold references (refs) so a deleted queue's memory stays valid
 * until the last delivery that names it is settled.  Entries hold message
 * references.  Loop thread only.
 */
#ifndef QUEUE_H
#define QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "amqp.h"
#include "model/dest.h"
#include "model/qring.h"
#include "model/queue_args.h"
#include "model/stats.h"
#include "model/timer.h"

struct vhost;
struct conn;
struct channel;
struct message;
struct binding;
struct amqpd_store_queue;
struct hmap;

struct consumer;
struct queue;

/* Why a message leaves for the dead-letter exchange (RabbitMQ's reasons). */
enum dl_reason { DL_REJECTED, DL_EXPIRED, DL_MAXLEN, DL_DELIVERY_LIMIT };

/* Per-message expiry (x-message-ttl, the expiration property): a min-heap
 * of (due, seq, level) beside the rings, so a message is removed when its
 * time comes wherever it sits.  Items of messages that left otherwise stay
 * until popped or until they outnumber the live ones (then it is rebuilt
 * from the rings). */
struct qexp_item {
	uint64_t at;
	uint64_t seq;
	uint8_t prio;
};
struct qexp {
	struct qexp_item *h;
	size_t n, cap, stale;
};

/*
 * What a queue needs of whoever consumes from it: the consumer interface
 * the session layer (a channel) implements and hands down with each
 * consumer, so the queue never calls into channels.
 *   ready:   can it take a message now (prefetch, flow, output space)?
 *   deliver: take this entry (and its message reference) now;
 *   gone:    the queue was deleted; the consumer is detached (c->q is
 *            NULL) and the implementation frees it.
 */
struct consumer_ops {
	bool (*ready)(struct consumer *c);
	void (*deliver)(struct consumer *c, struct queue *q, const struct qentry *e);
	void (*gone)(struct consumer *c);
};

struct consumer {
	char *tag;
	size_t tag_len;
	const struct consumer_ops *ops;
	struct channel *ch; /* the owner, opaque to the queue */
	struct queue *q;
	bool no_ack;
	bool exclusive;
	int32_t priority;
	uint32_t prefetch;   /* per-consumer limit, 0 = none */
	int64_t ack_timeout; /* x-consumer-timeout of basic.consume, ms; -1 = none */
	uint32_t unacked;
	uint64_t last_served; /* round-robin: least recently served first */
	uint8_t *args;
	size_t args_len;
};

/* The exclusive queues of one owner (a connection embeds one): they are
 * deleted with it, and a queue deleted first leaves the set itself, so
 * the queue never calls its owner. */
struct queue_owner {
	struct queue **qs;
	size_t n, cap;
};
/* Track q in o.  0 or -1 (out of memory). */
int queue_owner_add(struct queue_owner *o, struct queue *q);
/* Delete every queue of o (the owner is going away) and free the set. */
void queue_owner_release(struct queue_owner *o);

struct queue {
	struct dest d; /* kind == DEST_QUEUE; must be first */
	char *name;
	size_t name_len;
	struct vhost *vh;
	bool durable, exclusive, auto_delete;
	struct queue_owner *owner; /* exclusive owner's set, or NULL */
	uint8_t *args;
	size_t args_len;
	unsigned refs; /* the vhost map + unacked deliveries */
	bool deleted;

	struct queue_conf conf; /* what the arguments (later policies) make of it */

	/* Ready messages: one ring per priority level (one level unless
	 * x-max-priority), served from the highest non-empty level. */
	struct qring *levels;
	size_t nlevels;
	size_t count; /* ready messages, expired ones never included */
	uint64_t next_seq;
	uint64_t ready_bytes;             /* body bytes of ready messages */
	struct qexp exp;                  /* when ready messages expire */
	struct model_timer ttl_timer;     /* the earliest expiry */
	struct model_timer expires_timer; /* x-expires: deletes the unused queue */

	struct consumer **consumers; /* sorted by priority, descending */
	size_t nconsumers, consumers_cap;
	bool exclusive_consumer;
	/* x-single-active-consumer: the one consumer served; NULL until a
	 * consumer comes (then the first of the highest priority). */
	struct consumer *active;
	/* Unsettled deliveries of an active consumer that was cancelled: its
	 * successor starts once they are acked or back in the queue (as
	 * RabbitMQ's classic queues), so a failover keeps the order. */
	size_t sac_hold;
	bool had_consumer; /* for auto-delete */
	uint64_t serve_clock;
	size_t unacked; /* deliveries not yet settled */
	bool dispatching;

	struct binding *incoming;

	/* An x-delayed-message exchange's holding queue (delayed.h): its
	 * entries expire at their due time and then go out through the
	 * exchange.  key_index.h: key -> entries, of both kinds. */
	bool holding;
	/* A deduplication cache (dedup.h): one entry per key seen, expiring
	 * with x-cache-ttl, the oldest dropped beyond x-cache-size; never
	 * paged out (the index needs the keys). */
	bool dedup_store;
	struct hmap *key_index;
	struct msg_stats stats; /* publish, deliver, get, ack, redeliver (stats.h) */

	/* durability (storage_host.c) */
	char store_id[40];            /* stable id of its message store, "" if none */
	struct amqpd_store_queue *sq; /* open store queue, NULL if not persistent */
};

/* Create and register a queue in vh.  NULL on out of memory. */
struct queue *queue_new(struct vhost *vh, struct amqp_bytes name, bool durable, bool exclusive,
                        bool auto_delete, struct queue_owner *owner, struct amqp_bytes args);
/* Delete: unregister, remove bindings, cancel consumers (notifying them),
 * drop ready messages.  Returns how many ready messages were dropped. */
size_t queue_delete(struct queue *q);
/* queue_delete, calling unlinked(arg, ready count) once the queue is gone
 * from the vhost but before its consumers are cancelled: queue.delete-ok
 * goes out ahead of the basic.cancel notifications, as from RabbitMQ
 * (py-amqp raises ConsumerCancelled out of queue_delete() otherwise). */
size_t queue_delete_then(struct queue *q, void (*unlinked)(void *arg, size_t count), void *arg);
void queue_unref(struct queue *q);

/* Append a message (takes a new reference) and dispatch.  false when the
 * queue refused it (x-overflow reject-publish at its limit).  *token (if
 * not NULL) is raised to how the message was made safe (storage_token: 0
 * = nothing to wait for). */
bool queue_publish(struct queue *q, struct message *m, uint64_t *token);
struct store_origin;
/* The same with the entry's expiry given (ms since the epoch): a delayed
 * message held until then (delayed.h); the TTLs do not apply.  from: as
 * for queue_publish_from (a dead-lettered message held). */
bool queue_publish_due(struct queue *q, struct message *m, uint64_t due, uint64_t *token,
                       const struct store_origin *from);
/* The same for a dead-lettered copy: from names the origin, stored with
 * the copy (NULL: none). */
bool queue_publish_from(struct queue *q, struct message *m, uint64_t *token,
                        const struct store_origin *from);
/* Put a delivered message back where it was (by e->seq), marked
 * redelivered (takes over the reference in e->msg); the caller dispatches
 * afterwards.  counted: a return the quorum delivery count counts (a
 * nack or reject with requeue, a lost consumer); past x-delivery-limit
 * the message is dead-lettered instead, and one whose TTL ran out while
 * it was out is expired. */
void queue_requeue(struct queue *q, const struct qentry *e, bool counted);
/* A delivered message rejected without requeue (takes over e->msg): it
 * goes to the dead-letter exchange if the queue has one; its copy here is
 * acknowledged in the store.  Returns the storage token a tx.commit
 * waits for. */
uint64_t queue_reject(struct queue *q, const struct qentry *e);
/* Put a recovered message back at the tail (start-up replay, seq order);
 * e->msg may be NULL (left on disk, paged in when needed). */
void queue_restore(struct queue *q, const struct qentry *e);
/* Forget a ready message (recovered, but dead-lettered into another
 * queue before a crash; or a cancelled delayed message): gone from here
 * and from the store.  false when there is no such ready message. */
bool queue_forget(struct queue *q, uint64_t seq);
/* Take the head entry for basic.get; false when empty.  Counts as a use
 * of the queue (x-expires). */
bool queue_pop(struct queue *q, struct qentry *out);
/* A redeclare: the queue was used (x-expires starts again). */
void queue_touch(struct queue *q);
/* Drop every ready message; returns how many. */
size_t queue_purge(struct queue *q);
/* Deliver ready messages to consumers that can take them. */
void queue_dispatch(struct queue *q);

int queue_add_consumer(struct queue *q, struct consumer *c);
/* Whether c is q's single active consumer, whose unsettled deliveries
 * then hold its successor back when it leaves: the caller adds each to
 * q->sac_hold and calls queue_sac_settled() as each is settled. */
bool queue_is_active_consumer(const struct queue *q, const struct consumer *c);
void queue_sac_settled(struct queue *q);
/* Remove (does not free); an auto-delete queue that loses its last
 * consumer is deleted (returns true then).  Nothing is dispatched here:
 * the caller dispatches once the consumer's deliveries are requeued, so
 * that a single active consumer's successor sees them first. */
bool queue_remove_consumer(struct queue *q, struct consumer *c);

#endif
