/*
 * queue.c - see queue.h.  Expiry and dead-lettering of ready messages
 * live here beside the rings they act on; the x-death copy is made in
 * dead_letter.c.
 */
#include "model/queue.h"

#include <stdlib.h>
#include <string.h>

#include "model/dead_letter.h"
#include "model/dedup.h"
#include "model/delayed.h"
#include "model/key_index.h"
#include "model/exchange.h"
#include "model/message.h"
#include "model/message_edit.h"
#include "model/model.h"
#include "model/vhost.h"
#include "util/log.h"

/* The store interface handed down by the storage host (model.h); a queue
 * without a store (q->sq NULL) never reaches it. */
static storage_token store_append(struct queue *q, const struct qentry *e, const struct message *m,
                                  const struct store_origin *from)
{
	struct model *md = q->vh->md;
	return q->sq && md->store ? md->store->append(md->store_ud, q, e, m, from) : 0;
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

/* A message that left for a dead-letter exchange: its copy here goes
 * once the copies there are on disk (token), so a crash never loses it. */
static void store_ack_moved(struct queue *q, uint64_t seq, const struct message *m,
                            storage_token token)
{
	struct model *md = q->vh->md;
	if (!q->sq || !md->store || (m && !m->persistent))
		return;
	md->store->ack_after(md->store_ud, q, seq, token);
}

static void ttl_fire(struct model_timer *t, uint64_t now);
static void expires_fire(struct model_timer *t, uint64_t now);
static void expires_rearm(struct queue *q);

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
	queue_conf_from_args(&q->conf, args);
	q->nlevels = (size_t)q->conf.max_priority + 1;
	q->levels = calloc(q->nlevels, sizeof(*q->levels));
	if (!q->name || !q->args || !q->levels)
		goto fail;
	memcpy(q->name, name.ptr, name.len);
	q->name[name.len] = 0;
	q->name_len = name.len;
	if (args.len)
		memcpy(q->args, args.ptr, args.len);
	q->args_len = args.len;
	q->holding = delayed_is_holding(q);
	q->dedup_store = dedup_is_store(q);
	model_timer_init(&q->ttl_timer, ttl_fire);
	model_timer_init(&q->expires_timer, expires_fire);
	if (hmap_put(&vh->queues, q->name, q->name_len, q) < 0)
		goto fail;
	q->refs = 1;
	expires_rearm(q);
	if (durable && !exclusive)
		model_definitions_changed(vh->md);
	return q;
fail:
	free(q->name);
	free(q->args);
	free(q->levels);
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
	for (size_t i = 0; i < q->nlevels; i++)
		qring_free(&q->levels[i]);
	free(q->levels);
	free(q->exp.h);
	key_index_free(q);
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

/* ---- the expiry heap ----------------------------------------------------- */

/* A 4-ary min-heap on the due time: half the depth of a binary one and
 * the four children of a node on one or two cache lines, which is what
 * expiring a million messages spends its time on.  Items move into a
 * hole instead of being swapped. */
#define EXP_ARITY 4

static void exp_up(struct qexp *x, size_t i)
{
	struct qexp_item it = x->h[i];
	while (i > 0) {
		size_t p = (i - 1) / EXP_ARITY;
		if (x->h[p].at <= it.at)
			break;
		x->h[i] = x->h[p];
		i = p;
	}
	x->h[i] = it;
}

static void exp_down(struct qexp *x, size_t i)
{
	struct qexp_item it = x->h[i];
	for (;;) {
		size_t c = EXP_ARITY * i + 1, m = c;
		if (c >= x->n)
			break;
		size_t end = c + EXP_ARITY < x->n ? c + EXP_ARITY : x->n;
		for (size_t k = c + 1; k < end; k++)
			if (x->h[k].at < x->h[m].at)
				m = k;
		if (x->h[m].at >= it.at)
			break;
		x->h[i] = x->h[m];
		i = m;
	}
	x->h[i] = it;
}

static void exp_pop(struct qexp *x)
{
	x->h[0] = x->h[--x->n];
	if (x->n)
		exp_down(x, 0);
	/* Give memory back as a drained queue empties. */
	if (x->cap > 4096 && x->n < x->cap / 4) {
		struct qexp_item *nh = realloc(x->h, x->cap / 2 * sizeof(*nh));
		if (nh) {
			x->h = nh;
			x->cap /= 2;
		}
	}
}

static void exp_rebuild(struct queue *q)
{
	struct qexp *x = &q->exp;
	x->n = 0;
	x->stale = 0;
	for (size_t l = 0; l < q->nlevels; l++) {
		struct qring *r = &q->levels[l];
		for (size_t i = 0; i < r->n; i++) {
			struct qentry *e = qring_at(r, i);
			if (!e->dead && e->expires) /* fits: at most what was there */
				x->h[x->n++] = (struct qexp_item){e->expires, e->seq, e->prio};
		}
	}
	for (size_t i = x->n / EXP_ARITY + 1; i-- > 0;)
		if (i < x->n)
			exp_down(x, i);
}

static void ttl_arm(struct queue *q)
{
	struct model *md = q->vh->md;
	if (!q->exp.n) {
		model_timer_cancel(md, &q->ttl_timer);
		return;
	}
	if (!model_timer_armed(&q->ttl_timer) || q->ttl_timer.at != q->exp.h[0].at)
		model_timer_arm(md, &q->ttl_timer, q->exp.h[0].at);
}

static void exp_add(struct queue *q, const struct qentry *e)
{
	struct qexp *x = &q->exp;
	if (x->stale > 1024 && x->stale * 2 > x->n)
		exp_rebuild(q);
	if (x->n == x->cap) {
		size_t ncap = x->cap ? x->cap * 2 : 16;
		struct qexp_item *nh = realloc(x->h, ncap * sizeof(*nh));
		if (!nh) {
			/* Still expires: at the head when dispatched. */
			log_error("queue '%s': out of memory for a message's expiry", q->name);
			return;
		}
		x->h = nh;
		x->cap = ncap;
	}
	x->h[x->n] = (struct qexp_item){e->expires, e->seq, e->prio};
	exp_up(x, x->n++);
	if (x->h[0].seq == e->seq)
		ttl_arm(q);
}

/* An entry with an expiry left the rings other than by expiring. */
static void exp_left(struct queue *q, const struct qentry *e)
{
	if (e->expires)
		q->exp.stale++;
}

/* ---- ready entries ------------------------------------------------------- */

/* The ring with the next message to deliver (highest priority first). */
static struct qring *front_ring(struct queue *q)
{
	if (!q->count)
		return NULL;
	for (size_t l = q->nlevels; l-- > 0;)
		if (qring_live(&q->levels[l]))
			return &q->levels[l];
	return NULL;
}

/* Remove the next entry (the caller owns its reference). */
static struct qentry take_front(struct queue *q)
{
	struct qentry e = qring_shift(front_ring(q));
	q->count--;
	q->ready_bytes -= e.len;
	exp_left(q, &e);
	return e;
}

static uint8_t level_of(const struct queue *q, uint8_t prio)
{
	return prio > q->conf.max_priority ? q->conf.max_priority : prio;
}

static bool add_entry(struct queue *q, const struct qentry *e, bool in_place)
{
	struct qring *r = &q->levels[e->prio];
	if (!(in_place ? qring_insert(r, e) : qring_push(r, e))) {
		log_error("queue '%s': out of memory, message dropped", q->name);
		return false;
	}
	q->count++;
	q->ready_bytes += e->len;
	if (e->expires)
		exp_add(q, e);
	return true;
}

/* Bring a paged-out body back; false if it is unreadable (then it is
 * acknowledged away, logged by the storage host). */
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

/* A ready message leaves without being delivered: to the dead-letter
 * exchange for why (when it has one), else just acknowledged away.
 * Takes over the entry's reference. */
static void discard_entry(struct queue *q, struct qentry *e, enum dl_reason why, bool dlx)
{
	/* A paged-out entry of a holding queue stays in the index until a
	 * purge or delete clears it (not read back just for that). */
	if (dlx && why == DL_EXPIRED && q->holding && entry_load(q, e))
		key_index_left(q, e->msg, e->seq);
	else if (q->key_index && e->msg)
		key_index_left(q, e->msg, e->seq);
	if (dlx && why == DL_EXPIRED && q->holding && e->msg) {
		/* A held delayed message is due: out through its exchange. */
		uint64_t token = delayed_release(q, e->msg, e->seq);
		store_ack_moved(q, e->seq, e->msg, token);
		message_unref(e->msg);
		return;
	}
	if (dlx && q->conf.has_dlx && entry_load(q, e)) {
		uint64_t token = dead_letter(q, e->msg, e->seq, why);
		store_ack_moved(q, e->seq, e->msg, token);
		message_unref(e->msg);
		return;
	}
	if (!e->msg) {
		store_ack_seq(q, e->seq);
		return;
	}
	store_ack(q, e->seq, e->msg);
	message_unref(e->msg);
}

/* Over the memory budget, a persistent message of a durable queue waits
 * on disk only; the ring keeps its seq, size and expiry. */
static void maybe_page_out(struct queue *q, struct qentry *e)
{
	if (e->msg && q->sq && e->msg->persistent && !q->dedup_store &&
	    model_over_budget(q->vh->md)) {
		message_unref(e->msg);
		e->msg = NULL;
	}
}

/* ---- expiry -------------------------------------------------------------- */

#define EXPIRE_BATCH 10000 /* per timer firing: the loop serves others between */

/* Remove what is due at now, wherever it sits; re-arm for the rest. */
static void expire_due(struct queue *q, uint64_t now)
{
	struct qexp *x = &q->exp;
	unsigned n = 0;
	while (x->n && x->h[0].at <= now && n < EXPIRE_BATCH) {
		struct qexp_item it = x->h[0];
		exp_pop(x);
		struct qring *r = &q->levels[it.prio];
		struct qentry *e = qring_find(r, it.seq);
		if (!e || e->expires != it.at) {
			if (x->stale)
				x->stale--;
			continue;
		}
		struct qentry copy = *e;
		qring_kill(r, e);
		q->count--;
		q->ready_bytes -= copy.len;
		discard_entry(q, &copy, DL_EXPIRED, true);
		n++;
	}
	if (n == EXPIRE_BATCH && x->n && x->h[0].at <= now)
		model_timer_arm(q->vh->md, &q->ttl_timer, now); /* more: next iteration */
	else
		ttl_arm(q);
}

static void ttl_fire(struct model_timer *t, uint64_t now)
{
	struct queue *q = (struct queue *)((char *)t - offsetof(struct queue, ttl_timer));
	if (q->deleted)
		return;
	q->refs++; /* dead-lettering may delete it (auto-delete, x-expires) */
	expire_due(q, now);
	queue_unref(q);
}

/* The entry's due time from the queue's TTL and the message's own. */
static uint64_t expiry_for(const struct queue *q, const struct message *m, uint64_t now)
{
	int64_t ttl = q->conf.message_ttl;
	if (m->ttl >= 0 && (ttl < 0 || m->ttl < ttl))
		ttl = m->ttl;
	if (ttl < 0)
		return 0;
	return now + (uint64_t)ttl; /* now > 0: 0 stays "never" */
}

/* ---- x-expires ----------------------------------------------------------- */

/* An unused queue (no consumers) is deleted x-expires after its last use. */
static void expires_rearm(struct queue *q)
{
	if (q->conf.expires <= 0 || q->deleted)
		return;
	struct model *md = q->vh->md;
	if (q->nconsumers) {
		model_timer_cancel(md, &q->expires_timer);
		return;
	}
	if (model_timer_arm(md, &q->expires_timer, model_now_ms(md) + (uint64_t)q->conf.expires) <
	    0)
		log_error("queue '%s': out of memory arming x-expires", q->name);
}

static void expires_fire(struct model_timer *t, uint64_t now)
{
	(void)now;
	struct queue *q = (struct queue *)((char *)t - offsetof(struct queue, expires_timer));
	if (q->deleted || q->nconsumers)
		return;
	log_info("queue '%s' in vhost '%s' expired (x-expires %lld ms unused); deleted", q->name,
	         q->vh->name, (long long)q->conf.expires);
	queue_delete(q);
}

void queue_touch(struct queue *q)
{
	expires_rearm(q);
}

/* ---- life cycle ------------------------------------------------------------ */

size_t queue_purge(struct queue *q)
{
	size_t n = q->count;
	while (q->count) {
		struct qentry e = take_front(q);
		discard_entry(q, &e, DL_EXPIRED, false);
	}
	q->exp.n = q->exp.stale = 0;
	key_index_clear(q);
	ttl_arm(q);
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
	struct model *md = q->vh->md;
	model_timer_cancel(md, &q->ttl_timer);
	model_timer_cancel(md, &q->expires_timer);
	if (q->durable && !q->exclusive)
		model_definitions_changed(md);
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
	if (q->conf.dedup.on)
		dedup_owner_deleted(q->vh, 'q', q->name, q->name_len);
	hmap_del(&q->vh->queues, q->name, q->name_len);
	bindings_remove_dest(&q->incoming);
	if (q->sq && md->store)
		md->store->queue_deleted(md->store_ud, q);
	/* Gone from the vhost; nothing below changes the ready count. */
	if (unlinked)
		unlinked(arg, q->count);
	/* Consumers are told (basic.cancel) and freed by their channel. */
	while (q->nconsumers) {
		struct consumer *c = q->consumers[q->nconsumers - 1];
		q->nconsumers--;
		c->q = NULL;
		if (c == q->active)
			q->active = NULL;
		c->ops->gone(c);
	}
	size_t n = q->count;
	while (q->count) {
		struct qentry e = take_front(q);
		discard_entry(q, &e, DL_EXPIRED, false);
	}
	model_timer_cancel(md, &q->ttl_timer);
	queue_unref(q);
	return n;
}

void queue_restore(struct queue *q, const struct qentry *e)
{
	struct qentry c = *e;
	c.prio = level_of(q, c.prio);
	c.dead = false;
	if (add_entry(q, &c, false))
		maybe_page_out(q, qring_at(&q->levels[c.prio], q->levels[c.prio].n - 1));
	else if (c.msg)
		message_unref(c.msg);
	if (c.seq >= q->next_seq)
		q->next_seq = c.seq + 1;
}

bool queue_forget(struct queue *q, uint64_t seq)
{
	for (size_t l = 0; l < q->nlevels; l++) {
		struct qentry *e = qring_find(&q->levels[l], seq);
		if (!e)
			continue;
		struct qentry copy = *e;
		qring_kill(&q->levels[l], e);
		q->count--;
		q->ready_bytes -= copy.len;
		exp_left(q, &copy);
		discard_entry(q, &copy, DL_EXPIRED, false);
		return true;
	}
	return false;
}

static uint64_t dead_letter_out(struct queue *q, const struct qentry *e, enum dl_reason why)
{
	uint64_t token = dead_letter(q, e->msg, e->seq, why);
	store_ack_moved(q, e->seq, e->msg, token);
	message_unref(e->msg);
	return token;
}

void queue_requeue(struct queue *q, const struct qentry *in, bool counted)
{
	if (q->deleted) {
		message_unref(in->msg);
		return;
	}
	struct qentry e = *in;
	e.redelivered = true;
	e.dead = false;
	e.prio = level_of(q, e.prio);
	if (counted && q->conf.quorum && e.returns < UINT16_MAX)
		e.returns++;
	if (q->conf.delivery_limit >= 0 && e.returns > q->conf.delivery_limit) {
		dead_letter_out(q, &e, DL_DELIVERY_LIMIT);
		return;
	}
	if (e.expires && e.expires <= model_now_ms(q->vh->md)) {
		dead_letter_out(q, &e, DL_EXPIRED);
		return;
	}
	if (!add_entry(q, &e, true))
		message_unref(e.msg);
}

uint64_t queue_reject(struct queue *q, const struct qentry *e)
{
	if (!q->conf.has_dlx || q->deleted) {
		uint64_t t = store_ack(q, e->seq, e->msg);
		message_unref(e->msg);
		return t;
	}
	return dead_letter_out(q, e, DL_REJECTED);
}

/* The next deliverable entry, expired ones removed on the way (the timer
 * may not have run yet). */
static bool pop_live(struct queue *q, struct qentry *out, uint64_t *now)
{
	while (q->count) {
		*out = take_front(q);
		if (out->expires) {
			if (!*now)
				*now = model_now_ms(q->vh->md);
			if (out->expires <= *now) {
				discard_entry(q, out, DL_EXPIRED, true);
				continue;
			}
		}
		if (entry_load(q, out))
			return true;
	}
	return false;
}

/* A quorum queue's redelivery carries the delivery count. */
static void add_delivery_count(struct queue *q, struct qentry *e)
{
	if (!e->returns || !q->conf.quorum)
		return;
	struct message *counted = message_with_delivery_count(e->msg, e->returns);
	if (counted) {
		message_unref(e->msg);
		e->msg = counted;
	}
}

bool queue_pop(struct queue *q, struct qentry *out)
{
	uint64_t now = 0;
	q->refs++;
	bool got = pop_live(q, out, &now);
	if (got)
		add_delivery_count(q, out);
	expires_rearm(q);
	ttl_arm(q);
	queue_unref(q);
	return got;
}

static bool over_limit(const struct queue *q, size_t extra_n, uint64_t extra_bytes)
{
	if (q->conf.max_length >= 0 && (int64_t)(q->count + extra_n) > q->conf.max_length)
		return true;
	if (q->conf.max_bytes >= 0 && (int64_t)(q->ready_bytes + extra_bytes) > q->conf.max_bytes)
		return true;
	return false;
}

/* The consumer that gets the next message: highest priority first, least
 * recently served within a priority; NULL if none can take one now. */
bool queue_is_active_consumer(const struct queue *q, const struct consumer *c)
{
	return q->conf.single_active && q->active == c;
}

void queue_sac_settled(struct queue *q)
{
	if (q->sac_hold)
		q->sac_hold--;
}

static struct consumer *pick_single_active(struct queue *q)
{
	if (q->sac_hold)
		return NULL; /* a departed active consumer's deliveries are out */
	struct consumer *top = q->consumers[0]; /* highest priority, earliest */
	if (!q->active ||
	    (top != q->active && top->priority > q->active->priority && q->active->unacked == 0))
		q->active = top;
	else if (top->priority > q->active->priority)
		return NULL; /* the active one hands over once its unacked are settled */
	return q->active->ops->ready(q->active) ? q->active : NULL;
}

static struct consumer *pick_consumer(struct queue *q)
{
	if (q->conf.single_active)
		return q->nconsumers ? pick_single_active(q) : NULL;
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
	struct qring *r = front_ring(q);
	if (!q->sq || !q->nconsumers || !r)
		return;
	size_t n = r->n < READ_AHEAD ? r->n : READ_AHEAD;
	for (size_t i = 0; i < n; i++) {
		struct qentry *e = qring_at(r, i);
		if (!e->dead && !e->msg)
			e->msg = store_read(q, e->seq);
	}
}

static void deliver(struct queue *q, struct consumer *c, struct qentry *e)
{
	c->last_served = ++q->serve_clock;
	add_delivery_count(q, e);
	c->ops->deliver(c, q, e);
}

void queue_dispatch(struct queue *q)
{
	if (q->dispatching || q->deleted)
		return;
	q->dispatching = true;
	q->refs++;
	uint64_t now = 0;
	while (q->count && q->nconsumers && !q->deleted) {
		struct consumer *c = pick_consumer(q);
		if (!c)
			break;
		struct qentry e;
		if (!pop_live(q, &e, &now))
			break;
		deliver(q, c, &e);
	}
	q->dispatching = false;
	if (!q->deleted) {
		read_ahead(q);
		ttl_arm(q);
	}
	queue_unref(q);
}

bool queue_publish(struct queue *q, struct message *m, uint64_t *token)
{
	return queue_publish_from(q, m, token, NULL);
}

static bool publish(struct queue *q, struct message *m, uint64_t *token,
                    const struct store_origin *from, uint64_t due);

bool queue_publish_from(struct queue *q, struct message *m, uint64_t *token,
                        const struct store_origin *from)
{
	return publish(q, m, token, from, 0);
}

bool queue_publish_due(struct queue *q, struct message *m, uint64_t due, uint64_t *token,
                       const struct store_origin *from)
{
	return publish(q, m, token, from, due);
}

/* due: the entry's expiry set by the caller (a held delayed message), or
 * 0 to take it from the TTLs. */
static bool publish(struct queue *q, struct message *m, uint64_t *token,
                    const struct store_origin *from, uint64_t due)
{
	bool limited = q->conf.max_length >= 0 || q->conf.max_bytes >= 0;
	if (limited && over_limit(q, 1, m->body_len) && q->conf.overflow != OVERFLOW_DROP_HEAD) {
		/* reject-publish-dlx: the refused message is dead-lettered. */
		if (q->conf.overflow == OVERFLOW_REJECT_PUBLISH_DLX)
			dead_letter(q, m, 0, DL_MAXLEN);
		return false;
	}
	/* After the length check: a refused message's key is not kept, so
	 * its retry is not taken for a duplicate. */
	if (q->conf.dedup.on &&
	    dedup_check(q->vh, 'q', q->name, q->name_len, q->durable, &q->conf.dedup, m, token))
		return true; /* a duplicate: accepted, dropped */
	msg_stats_add(&q->stats, MS_PUBLISH, 1);
	uint64_t now = 0;
	if (due || q->conf.message_ttl >= 0 || m->ttl >= 0)
		now = model_now_ms(q->vh->md);
	struct qentry e = {.msg = message_ref(m),
	                   .seq = q->next_seq++,
	                   .expires = due   ? due
	                              : now ? expiry_for(q, m, now)
	                                    : 0,
	                   .len = (uint32_t)m->body_len,
	                   .prio = level_of(q, m->priority)};
	uint64_t t = store_append(q, &e, m, from);
	if (token && t > *token)
		*token = t;
	/* Fast path: nothing waiting, a consumer ready: straight out (also
	 * what TTL 0 allows). */
	if (q->count == 0 && q->nconsumers && !q->dispatching) {
		struct consumer *c = pick_consumer(q);
		if (c) {
			deliver(q, c, &e);
			return true;
		}
	}
	if (e.expires && e.expires <= now) {
		/* TTL 0 and no consumer could take it now. */
		discard_entry(q, &e, DL_EXPIRED, true);
		return true;
	}
	if (!add_entry(q, &e, false)) {
		discard_entry(q, &e, DL_EXPIRED, false);
		return true;
	}
	struct qring *r = &q->levels[e.prio];
	maybe_page_out(q, qring_at(r, r->n - 1));
	/* drop-head: the oldest ready messages make room. */
	if (limited) {
		q->refs++;
		while (q->count && over_limit(q, 0, 0) && !q->deleted) {
			struct qentry h = take_front(q);
			discard_entry(q, &h, DL_MAXLEN, true);
		}
		queue_unref(q);
		if (q->deleted)
			return true;
	}
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
	expires_rearm(q);
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
	if (c == q->active)
		q->active = NULL;
	c->q = NULL;
	if (q->auto_delete && q->had_consumer && q->nconsumers == 0 && !q->deleted) {
		log_debug("auto-deleting queue '%s' in vhost '%s'", q->name, q->vh->name);
		queue_delete(q);
		return true;
	}
	expires_rearm(q);
	return false;
}
