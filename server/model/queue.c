/*
 * queue.c - see queue.h.
 */
#include "model/queue.h"

#include <stdlib.h>
#include <string.h>

#include "model/exchange.h"
#include "util/log.h"
#include "model/model.h"
#include "model/message.h"
#include "model/vhost.h"

/* The store interface handed down by the storage host (model.h); a queue
 * without a store (q->sq NULL) never reaches it. */
static storage_token store_append(struct queue *q, uint64_t seq, const struct message *m)
{
	struct model *md = q->vh->md;
	return q->sq && md->store ? md->store->append(md->store_ud, q, seq, m) : 0;
}

static storage_token store_ack(struct queue *q, uint64_t seq, const struct message *m)
{
	struct model *md = q->vh->md;
	return q->sq && md->store ? md->store->ack(md->store_ud, q, seq, m) : 0;
}

static void store_ack_seq(struct queue *q, uint64_t seq)
{
	struct model *md = q->vh->md;
	if (q->sq && md->store)
		md->store->ack_seq(md->store_ud, q, seq);
}

static struct message *store_read(struct queue *q, uint64_t seq)
{
	struct model *md = q->vh->md;
	return q->sq && md->store ? md->store->read(md->store_ud, q, seq) : NULL;
}

/* x-max-length, x-max-length-bytes and x-overflow from the arguments. */
static void queue_read_limits(struct queue *q)
{
	struct amqp_bytes args = {q->args, q->args_len};
	int64_t v;
	if (amqp_table_get_int(args, "x-max-length", &v) && v >= 0)
		q->max_length = v;
	if (amqp_table_get_int(args, "x-max-length-bytes", &v) && v >= 0)
		q->max_bytes = v;
	struct amqp_field_value ov;
	if (amqp_table_get(args, "x-overflow", &ov) && ov.type == 'S' &&
	    (amqp_bytes_eq_cstr(ov.v.str, "reject-publish") ||
	     amqp_bytes_eq_cstr(ov.v.str, "reject-publish-dlx")))
		q->overflow = OVERFLOW_REJECT_PUBLISH;
}

struct queue *queue_new(struct vhost *vh, struct amqp_bytes name, bool durable, bool exclusive,
                        bool auto_delete, struct queue_owner *owner, struct amqp_bytes args)
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
	q->max_length = q->max_bytes = -1;
	queue_read_limits(q);
	if (hmap_put(&vh->queues, q->name, q->name_len, q) < 0)
		goto fail;
	q->refs = 1;
	if (durable && !exclusive)
		model_definitions_changed(vh->md);
	return q;
fail:
	free(q->name);
	free(q->args);
	free(q);
	return NULL;
}

int queue_owner_add(struct queue_owner *o, struct queue *q)
{
	if (o->n == o->cap) {
		size_t ncap = o->cap ? o->cap * 2 : 4;
		struct queue **nq = realloc(o->qs, ncap * sizeof(*nq));
		if (!nq)
			return -1;
		o->qs = nq;
		o->cap = ncap;
	}
	o->qs[o->n++] = q;
	return 0;
}

void queue_owner_release(struct queue_owner *o)
{
	while (o->n) {
		struct queue *q = o->qs[--o->n];
		q->owner = NULL;
		queue_delete(q);
	}
	free(o->qs);
	o->qs = NULL;
	o->cap = 0;
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

/* Remove the head entry (the caller owns its reference). */
static struct qentry ring_shift(struct queue *q)
{
	struct qentry e = q->ring[q->head];
	q->head = (q->head + 1) & (q->cap - 1);
	q->count--;
	q->ready_bytes -= e.len;
	return e;
}

/* A ready message leaves the queue without being delivered. */
static void drop_entry(struct queue *q, struct qentry e)
{
	if (!e.msg) {
		store_ack_seq(q, e.seq);
		return;
	}
	store_ack(q, e.seq, e.msg);
	message_unref(e.msg);
}

/* Bring a paged-out body back before delivery; false if it is unreadable
 * (then it is dropped, logged by the storage host). */
static bool entry_load(struct queue *q, struct qentry *e)
{
	if (e->msg)
		return true;
	e->msg = store_read(q, e->seq);
	if (e->msg)
		return true;
	store_ack_seq(q, e->seq);
	return false;
}

/* Over the memory budget, a persistent message of a durable queue waits
 * on disk only; the ring keeps its seq and size. */
static void maybe_page_out(struct queue *q, struct qentry *e)
{
	if (e->msg && q->sq && e->msg->persistent && model_over_budget(q->vh->md)) {
		message_unref(e->msg);
		e->msg = NULL;
	}
}

size_t queue_purge(struct queue *q)
{
	size_t n = q->count;
	while (q->count)
		drop_entry(q, ring_shift(q));
	q->head = 0;
	return n;
}

size_t queue_delete(struct queue *q)
{
	return queue_delete_then(q, NULL, NULL);
}

size_t queue_delete_then(struct queue *q, void (*unlinked)(void *arg, size_t count), void *arg)
{
	if (q->deleted) {
		if (unlinked)
			unlinked(arg, 0);
		return 0;
	}
	q->deleted = true;
	if (q->durable && !q->exclusive)
		model_definitions_changed(q->vh->md);
	if (q->owner) {
		struct queue_owner *o = q->owner;
		for (size_t i = 0; i < o->n; i++) {
			if (o->qs[i] == q) {
				o->qs[i] = o->qs[--o->n];
				break;
			}
		}
		q->owner = NULL;
	}
	hmap_del(&q->vh->queues, q->name, q->name_len);
	bindings_remove_dest(&q->incoming);
	if (q->sq && q->vh->md->store)
		q->vh->md->store->queue_deleted(q->vh->md->store_ud, q);
	/* Gone from the vhost; nothing below changes the ready count. */
	if (unlinked)
		unlinked(arg, q->count);
	/* Consumers are told (basic.cancel) and freed by their channel. */
	while (q->nconsumers) {
		struct consumer *c = q->consumers[q->nconsumers - 1];
		q->nconsumers--;
		c->q = NULL;
		c->ops->gone(c);
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

static bool ring_reserve(struct queue *q)
{
	if (q->count < q->cap || ring_grow(q) == 0)
		return true;
	log_error("queue '%s': out of memory, message dropped", q->name);
	return false;
}

static struct qentry *ring_push_back(struct queue *q, struct message *m, uint64_t seq, uint32_t len,
                                     bool redelivered)
{
	if (!ring_reserve(q)) {
		if (m) {
			store_ack(q, seq, m);
			message_unref(m);
		} else {
			store_ack_seq(q, seq);
		}
		return NULL;
	}
	struct qentry *e = &q->ring[(q->head + q->count) & (q->cap - 1)];
	*e = (struct qentry){m, seq, len, redelivered};
	q->count++;
	q->ready_bytes += len;
	return e;
}

void queue_restore(struct queue *q, struct message *m, uint64_t seq, uint32_t len, bool redelivered)
{
	struct qentry *e = ring_push_back(q, m, seq, len, redelivered);
	if (e)
		maybe_page_out(q, e);
	if (seq >= q->next_seq)
		q->next_seq = seq + 1;
}

void queue_requeue(struct queue *q, struct message *m, uint64_t seq)
{
	if (q->deleted || !ring_reserve(q)) {
		message_unref(m);
		return;
	}
	/* Requeued messages are older than most of what waits, so the place
	 * is found from the head, and the entries before it move one step. */
	size_t pos = 0;
	while (pos < q->count && q->ring[(q->head + pos) & (q->cap - 1)].seq < seq)
		pos++;
	q->head = (q->head - 1) & (q->cap - 1);
	for (size_t i = 0; i < pos; i++)
		q->ring[(q->head + i) & (q->cap - 1)] = q->ring[(q->head + i + 1) & (q->cap - 1)];
	q->ring[(q->head + pos) & (q->cap - 1)] =
	    (struct qentry){m, seq, (uint32_t)m->body_len, true};
	q->count++;
	q->ready_bytes += (uint32_t)m->body_len;
}

bool queue_pop(struct queue *q, struct qentry *out)
{
	while (q->count) {
		*out = ring_shift(q);
		if (entry_load(q, out))
			return true;
	}
	return false;
}

static bool over_limit(const struct queue *q, size_t extra_n, uint64_t extra_bytes)
{
	if (q->max_length >= 0 && (int64_t)(q->count + extra_n) > q->max_length)
		return true;
	if (q->max_bytes >= 0 && (int64_t)(q->ready_bytes + extra_bytes) > q->max_bytes)
		return true;
	return false;
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
		if (!c->ops->ready(c))
			continue;
		if (!best || c->last_served < best->last_served)
			best = c;
	}
	return best;
}

/* With consumers attached, keep the next few paged-out bodies in memory so
 * that a delivery does not wait for its own read.  A read that fails here
 * is left for entry_load() to report and drop. */
#define READ_AHEAD 64
static void read_ahead(struct queue *q)
{
	if (!q->sq || !q->nconsumers)
		return;
	size_t n = q->count < READ_AHEAD ? q->count : READ_AHEAD;
	for (size_t i = 0; i < n; i++) {
		struct qentry *e = &q->ring[(q->head + i) & (q->cap - 1)];
		if (!e->msg)
			e->msg = store_read(q, e->seq);
	}
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
		struct qentry e = ring_shift(q);
		if (!entry_load(q, &e))
			continue;
		c->last_served = ++q->serve_clock;
		c->ops->deliver(c, q, &e);
	}
	q->dispatching = false;
	read_ahead(q);
}

bool queue_publish(struct queue *q, struct message *m, uint64_t *token)
{
	if ((q->max_length >= 0 || q->max_bytes >= 0) && over_limit(q, 1, m->body_len)) {
		if (q->overflow == OVERFLOW_REJECT_PUBLISH)
			return false;
	}
	message_ref(m);
	uint64_t seq = q->next_seq++;
	uint64_t t = store_append(q, seq, m);
	if (token && t > *token)
		*token = t;
	/* Fast path: nothing waiting, a consumer ready: straight out. */
	if (q->count == 0 && q->nconsumers && !q->dispatching) {
		struct consumer *c = pick_consumer(q);
		if (c) {
			struct qentry e = {m, seq, (uint32_t)m->body_len, false};
			c->last_served = ++q->serve_clock;
			c->ops->deliver(c, q, &e);
			return true;
		}
	}
	struct qentry *e = ring_push_back(q, m, seq, (uint32_t)m->body_len, false);
	if (e)
		maybe_page_out(q, e);
	/* drop-head: the oldest ready messages make room. */
	while (q->count && (q->max_length >= 0 || q->max_bytes >= 0) && over_limit(q, 0, 0))
		drop_entry(q, ring_shift(q));
	if (q->nconsumers)
		queue_dispatch(q);
	return true;
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
