/*
 * queue.c - see queue.h.
 */
#include "queue.h"

#include <stdlib.h>
#include <string.h>

#include "channel.h"
#include "conn.h"
#include "exchange.h"
#include "log.h"
#include "message.h"
#include "vhost.h"

struct queue *queue_new(struct vhost *vh, struct amqp_bytes name, bool durable, bool exclusive,
                        bool auto_delete, struct conn *owner, struct amqp_bytes args)
{
	struct queue *q = calloc(1, sizeof(*q));
	if (!q)
		return NULL;
	q->d.kind = DEST_QUEUE;
	q->vh = vh;
	q->durable = durable;
	q->exclusive = exclusive;
	q->auto_delete = auto_delete;
	q->owner = exclusive ? owner : NULL;
	q->name = malloc(name.len + 1);
	q->args = malloc(args.len ? args.len : 1);
	if (!q->name || !q->args)
		goto fail;
	memcpy(q->name, name.ptr, name.len);
	q->name[name.len] = 0;
	q->name_len = name.len;
	if (args.len)
		memcpy(q->args, args.ptr, args.len);
	q->args_len = args.len;
	if (hmap_put(&vh->queues, q->name, q->name_len, q) < 0)
		goto fail;
	q->refs = 1;
	return q;
fail:
	free(q->name);
	free(q->args);
	free(q);
	return NULL;
}

static void queue_free(struct queue *q)
{
	free(q->ring);
	free(q->consumers);
	free(q->name);
	free(q->args);
	free(q);
}

void queue_unref(struct queue *q)
{
	if (--q->refs == 0)
		queue_free(q);
}

size_t queue_purge(struct queue *q)
{
	size_t n = q->count;
	while (q->count) {
		struct qentry *e = &q->ring[q->head];
		message_unref(e->msg);
		q->head = (q->head + 1) & (q->cap - 1);
		q->count--;
	}
	q->head = 0;
	return n;
}

size_t queue_delete(struct queue *q)
{
	if (q->deleted)
		return 0;
	q->deleted = true;
	if (q->owner) {
		conn_remove_exclusive(q->owner, q);
		q->owner = NULL;
	}
	hmap_del(&q->vh->queues, q->name, q->name_len);
	bindings_remove_dest(&q->incoming);
	/* Consumers are told (basic.cancel) and freed by their channel. */
	while (q->nconsumers) {
		struct consumer *c = q->consumers[q->nconsumers - 1];
		q->nconsumers--;
		c->q = NULL;
		channel_consumer_gone(c->ch, c);
	}
	size_t n = queue_purge(q);
	queue_unref(q);
	return n;
}

static int ring_grow(struct queue *q)
{
	size_t ncap = q->cap ? q->cap * 2 : 64;
	struct qentry *nr = malloc(ncap * sizeof(*nr));
	if (!nr)
		return -1;
	for (size_t i = 0; i < q->count; i++)
		nr[i] = q->ring[(q->head + i) & (q->cap - 1)];
	free(q->ring);
	q->ring = nr;
	q->cap = ncap;
	q->head = 0;
	return 0;
}

static void ring_push_back(struct queue *q, struct message *m, bool redelivered)
{
	if (q->count == q->cap && ring_grow(q) < 0) {
		log_error("queue '%s': out of memory, message dropped", q->name);
		message_unref(m);
		return;
	}
	q->ring[(q->head + q->count) & (q->cap - 1)] = (struct qentry){m, redelivered};
	q->count++;
}

void queue_requeue(struct queue *q, struct message *m)
{
	if (q->deleted) {
		message_unref(m);
		return;
	}
	if (q->count == q->cap && ring_grow(q) < 0) {
		log_error("queue '%s': out of memory, requeued message dropped", q->name);
		message_unref(m);
		return;
	}
	q->head = (q->head - 1) & (q->cap - 1);
	q->ring[q->head] = (struct qentry){m, true};
	q->count++;
}

bool queue_pop(struct queue *q, struct qentry *out)
{
	if (!q->count)
		return false;
	*out = q->ring[q->head];
	q->head = (q->head + 1) & (q->cap - 1);
	q->count--;
	return true;
}

/* The consumer that gets the next message: highest priority first, least
 * recently served within a priority; NULL if none can take one now. */
static struct consumer *pick_consumer(struct queue *q)
{
	struct consumer *best = NULL;
	for (size_t i = 0; i < q->nconsumers; i++) {
		struct consumer *c = q->consumers[i];
		if (best && c->priority < best->priority)
			break;
		if (!channel_consumer_ready(c->ch, c))
			continue;
		if (!best || c->last_served < best->last_served)
			best = c;
	}
	return best;
}

void queue_dispatch(struct queue *q)
{
	if (q->dispatching || q->deleted)
		return;
	q->dispatching = true;
	while (q->count && q->nconsumers) {
		struct consumer *c = pick_consumer(q);
		if (!c)
			break;
		struct qentry e = {NULL, false};
		queue_pop(q, &e);
		c->last_served = ++q->serve_clock;
		channel_deliver(c->ch, c, q, e.msg, e.redelivered);
	}
	q->dispatching = false;
}

void queue_publish(struct queue *q, struct message *m)
{
	message_ref(m);
	/* Fast path: nothing waiting, a consumer ready: straight out. */
	if (q->count == 0 && q->nconsumers && !q->dispatching) {
		struct consumer *c = pick_consumer(q);
		if (c) {
			c->last_served = ++q->serve_clock;
			channel_deliver(c->ch, c, q, m, false);
			return;
		}
	}
	ring_push_back(q, m, false);
	if (q->nconsumers)
		queue_dispatch(q);
}

int queue_add_consumer(struct queue *q, struct consumer *c)
{
	if (q->nconsumers == q->consumers_cap) {
		size_t ncap = q->consumers_cap ? q->consumers_cap * 2 : 4;
		struct consumer **nc = realloc(q->consumers, ncap * sizeof(*nc));
		if (!nc)
			return -1;
		q->consumers = nc;
		q->consumers_cap = ncap;
	}
	/* Keep descending priority; a new consumer goes after its equals. */
	size_t i = q->nconsumers;
	while (i > 0 && q->consumers[i - 1]->priority < c->priority) {
		q->consumers[i] = q->consumers[i - 1];
		i--;
	}
	q->consumers[i] = c;
	q->nconsumers++;
	c->q = q;
	c->last_served = q->serve_clock; /* no head start over existing ones */
	if (c->exclusive)
		q->exclusive_consumer = true;
	q->had_consumer = true;
	return 0;
}

bool queue_remove_consumer(struct queue *q, struct consumer *c)
{
	for (size_t i = 0; i < q->nconsumers; i++) {
		if (q->consumers[i] != c)
			continue;
		memmove(&q->consumers[i], &q->consumers[i + 1],
		        (q->nconsumers - i - 1) * sizeof(*q->consumers));
		q->nconsumers--;
		break;
	}
	if (c->exclusive)
		q->exclusive_consumer = false;
	c->q = NULL;
	if (q->auto_delete && q->had_consumer && q->nconsumers == 0 && !q->deleted) {
		log_debug("auto-deleting queue '%s' in vhost '%s'", q->name, q->vh->name);
		queue_delete(q);
		return true;
	}
	return false;
}
