/*
 * channel.c - channel lifecycle, content assembly, the basic, confirm and
 * tx classes, deliveries and acknowledgements.  (Exchange and queue
 * methods: channel_admin.c.)
 */
#include "session/channel.h"
#include "session/login.h"
#include "model/user.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "session/session.h"
#include "session/conn.h"
#include "util/log.h"
#include "util/names.h"
#include "model/dedup.h"
#include "model/delayed.h"
#include "model/message.h"
#include "model/message_edit.h"
#include "model/queue.h"
#include "model/queue_args.h"
#include "session/reply_to.h"
#include "model/vhost.h"

#define NAMEFMT    "%.*s"
#define NAMEARG(b) (int)(b).len, (const char *)(b).ptr

enum settle_kind { SETTLE_ACK, SETTLE_REQUEUE, SETTLE_DROP };

static void waiter_done(struct storage_waiter *w, uint64_t gen, int status)
{
	struct channel *ch = (struct channel *)((char *)w - offsetof(struct channel, waiter));
	channel_sync_done(ch, gen, status);
}

static void ack_timer_fire(struct model_timer *t, uint64_t now);

struct channel *channel_new(struct conn *c, uint16_t id)
{
	struct channel *ch = calloc(1, sizeof(*ch));
	if (!ch)
		return NULL;
	ch->c = c;
	ch->id = id;
	ch->state = CH_OPEN;
	ch->flow_active = true;
	ch->ua_base = 1;
	ch->waiter.done = waiter_done;
	hmap_init(&ch->consumers);
	model_timer_init(&ch->ack_timer, ack_timer_fire);
	return ch;
}

/* Drop the message being assembled, if any.  This can happen between two
 * reads (a delivery or a storage callback closing the channel) while the
 * parser is gathering a split body frame into the message's body, so the
 * parser is told first that the memory is going away. */
static void publish_abandon(struct channel *ch)
{
	struct message *m = ch->pub_msg;
	if (!m)
		return;
	ch->pub_msg = NULL;
	/* Failure (no memory for a scratch buffer) leaves the parser failed:
	 * the connection closes with 541 at the next read. */
	(void)amqp_parser_release_dest(&ch->c->parser, m->body, (size_t)m->body_len);
	message_unref(m);
}

void channel_error(struct channel *ch, uint16_t code, uint32_t method_id, const char *fmt, ...)
{
	if (ch->state != CH_OPEN)
		return;
	char text[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	if (strlen(text) > 255)
		text[255] = 0;
	log_warning("%s: channel %u error: %s", ch->c->name, ch->id, text);
	struct amqp_method m = {.id = AMQP_CHANNEL_CLOSE};
	m.u.channel_close.reply_code = code;
	m.u.channel_close.reply_text = amqp_cstr(text);
	m.u.channel_close.class_id = AMQP_METHOD_CLASS(method_id);
	m.u.channel_close.method_id = AMQP_METHOD_INDEX(method_id);
	conn_send_method(ch->c, ch->id, &m);
	ch->state = CH_CLOSING;
	publish_abandon(ch);
	if (ch->pub_x) {
		exchange_unref(ch->pub_x);
		ch->pub_x = NULL;
	}
	ch->content = CONTENT_NONE;
}

/* ---- unacked deliveries ------------------------------------------------ */

static struct unacked *ua_at(struct channel *ch, uint64_t tag)
{
	if (tag < ch->ua_base || tag - ch->ua_base >= ch->ua_count)
		return NULL;
	return &ch->ua[(ch->ua_head + (size_t)(tag - ch->ua_base)) & (ch->ua_cap - 1)];
}

/* Assign the next delivery tag; records the delivery unless it is settled
 * already (no-ack), in which case nothing is stored if nothing is pending. */
static uint64_t ua_push(struct channel *ch, const struct qentry *e, struct queue *q,
                        struct consumer *c, bool settled)
{
	uint64_t tag = ch->ua_base + ch->ua_count;
	if (settled && ch->ua_count == 0) {
		ch->ua_base++;
		return tag;
	}
	if (ch->ua_count == ch->ua_cap) {
		size_t ncap = ch->ua_cap ? ch->ua_cap * 2 : 64;
		struct unacked *nu = malloc(ncap * sizeof(*nu));
		if (!nu)
			return 0;
		for (size_t i = 0; i < ch->ua_count; i++)
			nu[i] = ch->ua[(ch->ua_head + i) & (ch->ua_cap - 1)];
		free(ch->ua);
		ch->ua = nu;
		ch->ua_cap = ncap;
		ch->ua_head = 0;
	}
	ch->ua[(ch->ua_head + ch->ua_count) & (ch->ua_cap - 1)] =
	    (struct unacked){.msg = e->msg,
	                     .seq = e->seq,
	                     .expires = e->expires,
	                     .returns = e->returns,
	                     .prio = e->prio,
	                     .q = q,
	                     .c = c,
	                     .settled = settled};
	ch->ua_count++;
	return tag;
}

static void ua_pop_settled(struct channel *ch)
{
	while (ch->ua_count && ch->ua[ch->ua_head].settled) {
		ch->ua_head = (ch->ua_head + 1) & (ch->ua_cap - 1);
		ch->ua_count--;
		ch->ua_base++;
	}
}

/* Queues to dispatch once a batch of settlements is done. */
struct touched {
	struct queue *qs[16];
	size_t n;
	bool overflow;
};

static void touch(struct touched *t, struct queue *q)
{
	for (size_t i = 0; i < t->n; i++)
		if (t->qs[i] == q)
			return;
	if (t->n < 16) {
		q->refs++;
		t->qs[t->n++] = q;
	} else {
		t->overflow = true;
	}
}

/* True while a channel-wide prefetch limit holds back every consumer. */
static bool channel_window_full(const struct channel *ch)
{
	return (ch->prefetch_global && ch->consumer_unacked >= ch->prefetch_global) ||
	       (ch->prefetch_shared && ch->consumer_unacked >= ch->prefetch_shared);
}

static void settle(struct channel *ch, struct unacked *u, enum settle_kind kind, struct touched *t)
{
	struct queue *q = u->q;
	u->settled = true;
	if (u->c) {
		u->c->unacked--;
		ch->consumer_unacked--;
		if (u->c->q)
			touch(t, u->c->q);
	}
	q->unacked--;
	if (u->sac_held) {
		queue_sac_settled(q);
		touch(t, q); /* the successor may start */
	}
	struct qentry e = {.msg = u->msg,
	                   .seq = u->seq,
	                   .expires = u->expires,
	                   .len = (uint32_t)u->msg->body_len,
	                   .returns = u->returns,
	                   .prio = u->prio};
	/* u is not touched below: a requeue or reject may dead-letter into a
	 * queue this channel consumes, and the delivery that makes can move
	 * the unacked ring. */
	u->msg = NULL;
	if (kind == SETTLE_REQUEUE && !q->deleted) {
		queue_requeue(q, &e, true);
		touch(t, q);
	} else if (kind == SETTLE_DROP) {
		uint64_t tok = queue_reject(q, &e);
		if (tok > ch->ack_token)
			ch->ack_token = tok;
	} else {
		msg_stats_add(&ch->stats, MS_ACK, 1);
		msg_stats_add(&q->stats, MS_ACK, 1);
		msg_stats_add(&ch->c->s->md->stats, MS_ACK, 1);
		uint64_t tok = storage_ack(ch->c->s->st, q, e.seq, e.msg);
		if (tok > ch->ack_token)
			ch->ack_token = tok; /* a tx.commit waits for it */
		message_unref(e.msg);
	}
	queue_unref(q);
}

static void dispatch_touched(struct channel *ch, struct touched *t)
{
	for (size_t i = 0; i < t->n; i++) {
		queue_dispatch(t->qs[i]);
		queue_unref(t->qs[i]);
	}
	if (t->overflow)
		channel_resume(ch);
}

/* Settle `tag` (or everything up to it with multiple); false if unknown.
 * Requeues walk newest to oldest so the queue keeps the original order. */
static bool settle_tags(struct channel *ch, uint64_t tag, bool multiple, enum settle_kind kind)
{
	struct touched t = {.n = 0};
	bool found = false;
	/* At a channel-wide limit the consumers of every queue on the channel
	 * waited, not only those of the queues settled here: wake them all. */
	bool was_full = channel_window_full(ch);
	if (multiple) {
		uint64_t last = ch->ua_base + ch->ua_count; /* one past the newest */
		uint64_t hi = tag == 0 ? last - 1 : tag;
		if (tag != 0 && tag >= last)
			return false;
		for (uint64_t k = hi + 1; k-- > ch->ua_base;) {
			struct unacked *u = ua_at(ch, k);
			if (u && !u->settled) {
				settle(ch, u, kind, &t);
				found = true;
			}
		}
		if (tag == 0)
			found = true; /* "everything outstanding", possibly nothing */
	} else {
		struct unacked *u = ua_at(ch, tag);
		if (u && !u->settled) {
			settle(ch, u, kind, &t);
			found = true;
		}
	}
	ua_pop_settled(ch);
	if (was_full && !channel_window_full(ch))
		t.overflow = true;
	dispatch_touched(ch, &t);
	return found;
}

static void requeue_all(struct channel *ch)
{
	if (ch->ua_count)
		settle_tags(ch, 0, true, SETTLE_REQUEUE);
}

/* ---- consumer timeout ---------------------------------------------------- */

/* x-consumer-timeout of the consumer, else of the queue, else the broker's. */
static uint64_t ack_timeout_for(const struct channel *ch, const struct consumer *k,
                                const struct queue *q)
{
	if (k && k->ack_timeout >= 0)
		return (uint64_t)k->ack_timeout;
	if (q && q->conf.consumer_timeout >= 0)
		return (uint64_t)q->conf.consumer_timeout;
	return ch->c->s->cfg.consumer_timeout;
}

/* Start the clock of delivery `tag`; the timer moves only when this
 * deadline is the earliest. */
static void ack_deadline(struct channel *ch, uint64_t tag, const struct consumer *k,
                         const struct queue *q)
{
	uint64_t timeout = ack_timeout_for(ch, k, q);
	struct unacked *u = ua_at(ch, tag);
	if (!timeout || !u)
		return;
	struct model *md = ch->c->s->md;
	u->timeout = timeout;
	u->deadline = model_now_ms(md) + timeout;
	if ((!model_timer_armed(&ch->ack_timer) || u->deadline < ch->ack_timer.at) &&
	    model_timer_arm(md, &ch->ack_timer, u->deadline) < 0)
		log_warning("%s: channel %u: out of memory for the consumer timeout", ch->c->name,
		            ch->id);
}

static void reclaim_tag(struct channel *ch, uint64_t tag)
{
	enum { MAX_RECLAIMED = 65536 };
	if (!ch->reclaimed && !(ch->reclaimed = malloc(MAX_RECLAIMED * sizeof(uint64_t))))
		return; /* a late ack of it is then refused as unknown */
	if (ch->nreclaimed == MAX_RECLAIMED) {
		/* Forget the older half. */
		memmove(ch->reclaimed, ch->reclaimed + MAX_RECLAIMED / 2,
		        MAX_RECLAIMED / 2 * sizeof(uint64_t));
		ch->nreclaimed = MAX_RECLAIMED / 2;
	}
	ch->reclaimed[ch->nreclaimed++] = tag;
}

static bool was_reclaimed(const struct channel *ch, uint64_t tag, bool multiple)
{
	for (size_t i = 0; i < ch->nreclaimed; i++)
		if (ch->reclaimed[i] == tag || (multiple && (tag == 0 || ch->reclaimed[i] < tag)))
			return true;
	return false;
}

static void cancel_consumer(struct channel *ch, struct consumer *c);

/* notify_consumer (RabbitMQ 4.3.7): every consumer with a delivery past
 * its deadline is cancelled (basic.cancel) and all its deliveries go back
 * to their queues; a timed-out basic.get delivery goes back alone. */
static void reclaim_timed_out(struct channel *ch, uint64_t now)
{
	struct consumer **late = NULL;
	size_t nlate = 0;
	for (size_t i = 0; i < ch->ua_count; i++) {
		struct unacked *u = &ch->ua[(ch->ua_head + i) & (ch->ua_cap - 1)];
		if (u->settled || !u->deadline || u->deadline > now || !u->c)
			continue;
		size_t j = 0;
		while (j < nlate && late[j] != u->c)
			j++;
		if (j < nlate)
			continue;
		struct consumer **n = realloc(late, (nlate + 1) * sizeof(*n));
		if (!n)
			break;
		late = n;
		late[nlate++] = u->c;
	}
	struct touched t = {.n = 0};
	for (size_t i = ch->ua_count; i-- > 0;) { /* newest first: order kept */
		struct unacked *u = &ch->ua[(ch->ua_head + i) & (ch->ua_cap - 1)];
		if (u->settled)
			continue;
		bool go = false;
		for (size_t j = 0; j < nlate && !go; j++)
			go = u->c == late[j];
		if (!go && !(u->c == NULL && u->deadline && u->deadline <= now))
			continue;
		reclaim_tag(ch, ch->ua_base + i);
		settle(ch, u, SETTLE_REQUEUE, &t);
	}
	ua_pop_settled(ch);
	for (size_t j = 0; j < nlate; j++) {
		struct consumer *k = late[j];
		log_warning("%s: channel %u: consumer '%s' timed out waiting for an ack "
		            "(consumer timeout): cancelled, its deliveries requeued",
		            ch->c->name, ch->id, k->tag);
		if (ch->c->cap_cancel_notify) {
			struct amqp_method m = {.id = AMQP_BASIC_CANCEL};
			m.u.basic_cancel.consumer_tag =
			    (struct amqp_bytes){(uint8_t *)k->tag, k->tag_len};
			m.u.basic_cancel.nowait = true;
			conn_send_method(ch->c, ch->id, &m);
		}
		if (k->q)
			touch(&t, k->q);
		cancel_consumer(ch, k);
	}
	free(late);
	dispatch_touched(ch, &t);
}

static void ack_timer_fire(struct model_timer *t, uint64_t now)
{
	struct channel *ch = (struct channel *)((char *)t - offsetof(struct channel, ack_timer));
	if (ch->state != CH_OPEN)
		return;
	const struct unacked *late = NULL;
	for (size_t i = 0; i < ch->ua_count && !late; i++) {
		const struct unacked *u = &ch->ua[(ch->ua_head + i) & (ch->ua_cap - 1)];
		if (!u->settled && u->deadline && u->deadline <= now)
			late = u;
	}
	if (late && !ch->c->s->cfg.consumer_timeout_notify) {
		/* RabbitMQ's consumer_timeout: the channel goes, its deliveries
		 * are requeued when it is closed. */
		channel_error(ch, AMQP_PRECONDITION_FAILED, 0,
		              "PRECONDITION_FAILED - delivery acknowledgement on channel %u timed "
		              "out. Timeout value used: %llu ms. This timeout value can be "
		              "configured, see consumers doc guide to learn more",
		              ch->id, (unsigned long long)late->timeout);
		return;
	}
	if (late)
		reclaim_timed_out(ch, now);
	uint64_t next = UINT64_MAX;
	for (size_t i = 0; i < ch->ua_count; i++) {
		const struct unacked *u = &ch->ua[(ch->ua_head + i) & (ch->ua_cap - 1)];
		if (!u->settled && u->deadline && u->deadline < next)
			next = u->deadline;
	}
	if (next != UINT64_MAX && model_timer_arm(ch->c->s->md, &ch->ack_timer, next) < 0)
		log_warning("%s: channel %u: out of memory for the consumer timeout", ch->c->name,
		            ch->id);
}

/* ---- consumers ----------------------------------------------------------- */

static void consumer_free(struct consumer *c)
{
	free(c->tag);
	free(c->args);
	free(c);
}

/* Unacked deliveries outlive their consumer; forget the pointer. */
static void forget_consumer(struct channel *ch, struct consumer *c)
{
	bool hold = c->q && queue_is_active_consumer(c->q, c);
	for (size_t i = 0; i < ch->ua_count && c->unacked; i++) {
		struct unacked *u = &ch->ua[(ch->ua_head + i) & (ch->ua_cap - 1)];
		if (u->c == c && !u->settled) {
			if (hold) {
				u->sac_held = true;
				c->q->sac_hold++;
			}
			u->c = NULL;
			c->unacked--;
			ch->consumer_unacked--;
		}
	}
	hmap_del(&ch->consumers, c->tag, c->tag_len);
}

void channel_consumer_gone(struct channel *ch, struct consumer *c)
{
	if (ch->c->cap_cancel_notify && ch->state == CH_OPEN) {
		struct amqp_method m = {.id = AMQP_BASIC_CANCEL};
		m.u.basic_cancel.consumer_tag = (struct amqp_bytes){(uint8_t *)c->tag, c->tag_len};
		m.u.basic_cancel.nowait = true;
		conn_send_method(ch->c, ch->id, &m);
	}
	forget_consumer(ch, c);
	consumer_free(c);
}

bool channel_consumer_ready(struct channel *ch, struct consumer *c)
{
	if (ch->state != CH_OPEN || !ch->flow_active || ch->c->state != CONN_OPEN)
		return false;
	if (conn_output_full(ch->c))
		return false;
	if (c->no_ack)
		return true;
	if (c->prefetch && c->unacked >= c->prefetch)
		return false;
	return !channel_window_full(ch);
}

void channel_resume(struct channel *ch)
{
	void *v;
	for (size_t i = 0; hmap_next(&ch->consumers, &i, &v);) {
		struct consumer *c = v;
		if (c->q)
			queue_dispatch(c->q);
	}
}

/* A delivery or get counted for the channel, its queue and the broker. */
static void stats3(struct channel *ch, struct queue *q, enum msg_stat k, bool redelivered)
{
	struct msg_stats *md = &ch->c->s->md->stats;
	msg_stats_add(&ch->stats, k, 1);
	msg_stats_add(md, k, 1);
	if (q)
		msg_stats_add(&q->stats, k, 1);
	if (redelivered) {
		msg_stats_add(&ch->stats, MS_REDELIVER, 1);
		msg_stats_add(md, MS_REDELIVER, 1);
		if (q)
			msg_stats_add(&q->stats, MS_REDELIVER, 1);
	}
}

void channel_deliver(struct channel *ch, struct consumer *c, struct queue *q,
                     const struct qentry *e)
{
	struct message *m = e->msg;
	bool redelivered = e->redelivered;
	uint64_t tag = ua_push(ch, e, q, c, c->no_ack);
	if (!c->no_ack) {
		if (tag == 0) {
			/* Out of memory: put it back and close the channel, so
			 * the queue stops offering to this consumer (a retry
			 * loop here would spin for as long as memory is short). */
			queue_requeue(q, e, false);
			channel_error(ch, AMQP_INTERNAL_ERROR, AMQP_BASIC_DELIVER,
			              "INTERNAL_ERROR - out of memory for a delivery");
			return;
		}
		q->refs++;
		q->unacked++;
		c->unacked++;
		ch->consumer_unacked++;
		ack_deadline(ch, tag, c, q);
	}
	enum msg_stat k = c->no_ack ? MS_DELIVER_NO_ACK : MS_DELIVER;
	stats3(ch, q, k, redelivered);
	struct amqp_method dm = {.id = AMQP_BASIC_DELIVER};
	struct amqp_basic_deliver *d = &dm.u.basic_deliver;
	d->consumer_tag = (struct amqp_bytes){(const uint8_t *)c->tag, c->tag_len};
	d->delivery_tag = tag;
	d->redelivered = redelivered;
	d->exchange = (struct amqp_bytes){(const uint8_t *)m->exchange, m->exchange_len};
	d->routing_key = (struct amqp_bytes){(const uint8_t *)m->rk, m->rk_len};
	conn_send_content(ch->c, ch->id, &dm, m);
	if (q && c->no_ack)
		storage_ack(ch->c->s->st, q, e->seq, m);
	else if (q && !redelivered)
		storage_delivered(ch->c->s->st, q, e->seq, m);
	if (c->no_ack)
		message_unref(m);
}

/* The model's consumer interface (queue.h), implemented by channels. */
static bool ops_ready(struct consumer *c)
{
	return channel_consumer_ready(c->ch, c);
}

static void ops_deliver(struct consumer *c, struct queue *q, const struct qentry *e)
{
	channel_deliver(c->ch, c, q, e);
}

static void ops_gone(struct consumer *c)
{
	channel_consumer_gone(c->ch, c);
}

const struct consumer_ops channel_consumer_ops = {ops_ready, ops_deliver, ops_gone};

static void cancel_consumer(struct channel *ch, struct consumer *c)
{
	if (c == ch->reply_consumer)
		reply_to_forget(ch);
	forget_consumer(ch, c);
	if (c->q)
		queue_remove_consumer(c->q, c);
	consumer_free(c);
}

/* ---- lifecycle ---------------------------------------------------------- */

static void tx_discard(struct channel *ch)
{
	for (size_t i = 0; i < ch->ntx; i++)
		if (ch->tx_ops[i].msg)
			message_unref(ch->tx_ops[i].msg);
	ch->ntx = 0;
}

void channel_free(struct channel *ch)
{
	/* The connection's message_stats keep what its closed channels did. */
	for (int i = 0; i < MS_COUNT; i++) {
		ch->c->closed_stats.n[i] += ch->stats.n[i];
		ch->c->closed_stats.prev[i] += ch->stats.n[i];
	}
	publish_abandon(ch);
	authz_free(ch);
	if (ch->pub_x)
		exchange_unref(ch->pub_x);
	tx_discard(ch);
	free(ch->tx_ops);
	/* A single active consumer's successor is served only after the
	 * deliveries of this channel are back in the queue, in order. */
	struct queue **sac = NULL;
	size_t nsac = 0;
	void *v;
	for (size_t i = 0; hmap_next(&ch->consumers, &i, &v);) {
		struct consumer *k = v;
		struct queue *q = k->q;
		if (q && q->conf.single_active) {
			struct queue **n = realloc(sac, (nsac + 1) * sizeof(*n));
			if (n) {
				sac = n;
				sac[nsac++] = q;
				q->refs++;
			}
		}
		cancel_consumer(ch, k);
	}
	hmap_free(&ch->consumers);
	ch->state = CH_CLOSING; /* nothing more is delivered to it */
	requeue_all(ch);
	for (size_t i = 0; i < nsac; i++) {
		queue_dispatch(sac[i]);
		queue_unref(sac[i]);
	}
	free(sac);
	free(ch->ua);
	model_timer_cancel(ch->c->s->md, &ch->ack_timer);
	free(ch->reclaimed);
	route_out_free(&ch->route);
	storage_unwait(ch->c->s->st, &ch->waiter);
	free(ch->cw);
	if (ch->confirm_queued) {
		struct channel **pp = &ch->c->confirm_dirty;
		while (*pp && *pp != ch)
			pp = &(*pp)->confirm_next;
		if (*pp)
			*pp = ch->confirm_next;
	}
	free(ch);
}

/* ---- publishing ---------------------------------------------------------- */

static void send_confirm(struct channel *ch, uint32_t id, uint64_t upto)
{
	if (upto <= ch->confirm_sent)
		return;
	struct amqp_method m = {.id = id};
	/* ack and nack have the same first fields */
	m.u.basic_ack.delivery_tag = upto;
	m.u.basic_ack.multiple = upto > ch->confirm_sent + 1;
	if (id == AMQP_BASIC_NACK)
		m.u.basic_nack.multiple = m.u.basic_ack.multiple;
	conn_send_method(ch->c, ch->id, &m);
	if (id == AMQP_BASIC_ACK) {
		msg_stats_add(&ch->stats, MS_CONFIRM, upto - ch->confirm_sent);
		msg_stats_add(&ch->c->s->md->stats, MS_CONFIRM, upto - ch->confirm_sent);
	}
	ch->confirm_sent = upto;
}

static void cw_push(struct channel *ch, uint64_t seq, uint64_t gen, enum confirm_kind kind)
{
	if (ch->cw_count == ch->cw_cap) {
		size_t ncap = ch->cw_cap ? ch->cw_cap * 2 : 16;
		struct confirm_wait *n = malloc(ncap * sizeof(*n));
		if (!n) {
			/* Cannot track it: say no rather than a wrong yes. */
			send_confirm(ch, AMQP_BASIC_ACK, seq - 1);
			send_confirm(ch, AMQP_BASIC_NACK, seq);
			return;
		}
		for (size_t i = 0; i < ch->cw_count; i++)
			n[i] = ch->cw[(ch->cw_head + i) % ch->cw_cap];
		free(ch->cw);
		ch->cw = n;
		ch->cw_cap = ncap;
		ch->cw_head = 0;
	}
	ch->cw[(ch->cw_head + ch->cw_count) % ch->cw_cap] = (struct confirm_wait){seq, gen, kind};
	ch->cw_count++;
	if (kind != CW_NACK)
		storage_wait(ch->c->s->st, &ch->waiter);
}

/* Everything before the first confirm still waiting for a sync goes out:
 * acks as one multiple ack per run, nacks one by one, in order. */
void channel_flush_confirms(struct channel *ch)
{
	if (ch->state != CH_OPEN)
		return;
	uint64_t synced = ch->c->s->st->synced_gen;
	while (ch->cw_count) {
		struct confirm_wait *w = &ch->cw[ch->cw_head];
		if (w->kind != CW_NACK && w->gen > synced) {
			send_confirm(ch, AMQP_BASIC_ACK, w->seq ? w->seq - 1 : 0);
			return;
		}
		if (w->kind == CW_NACK) {
			send_confirm(ch, AMQP_BASIC_ACK, w->seq - 1);
			send_confirm(ch, AMQP_BASIC_NACK, w->seq);
		} else if (w->kind == CW_COMMIT) {
			struct amqp_method ok = {.id = AMQP_TX_COMMIT_OK};
			conn_send_method(ch->c, ch->id, &ok);
		}
		ch->cw_head = (ch->cw_head + 1) % ch->cw_cap;
		ch->cw_count--;
	}
	storage_unwait(ch->c->s->st, &ch->waiter);
	if (ch->confirm)
		send_confirm(ch, AMQP_BASIC_ACK, ch->pub_seq);
}

void channel_sync_done(struct channel *ch, uint64_t gen, int status)
{
	if (status != 0) {
		/* The sync failed: what it covered was not made durable. */
		for (size_t i = 0; i < ch->cw_count; i++) {
			struct confirm_wait *w = &ch->cw[(ch->cw_head + i) % ch->cw_cap];
			if (w->gen > gen)
				break;
			if (w->kind == CW_SYNC)
				w->kind = CW_NACK;
			else if (w->kind == CW_COMMIT) {
				channel_error(
				    ch, AMQP_INTERNAL_ERROR, AMQP_TX_COMMIT,
				    "INTERNAL_ERROR - tx.commit failed: messages could not "
				    "be written to disk");
				return;
			}
		}
	}
	channel_flush_confirms(ch);
}

void channel_send_return(struct channel *ch, struct message *m)
{
	struct amqp_method rm = {.id = AMQP_BASIC_RETURN};
	rm.u.basic_return.reply_code = AMQP_NO_ROUTE;
	rm.u.basic_return.reply_text = amqp_cstr("NO_ROUTE");
	rm.u.basic_return.exchange = (struct amqp_bytes){(uint8_t *)m->exchange, m->exchange_len};
	rm.u.basic_return.routing_key = (struct amqp_bytes){(uint8_t *)m->rk, m->rk_len};
	conn_send_content(ch->c, ch->id, &rm, m);
}

/* Route and enqueue a complete message (the caller's reference is used
 * up).  false if a queue refused it (the publisher gets basic.nack).
 * *token is raised to the storage token that makes it safe (0: none). */
static bool route_message(struct channel *ch, struct exchange *x, struct message *m, bool mandatory,
                          uint64_t *token)
{
	struct conn *c = ch->c;
	if (!x) /* a tx op: looked up at commit */
		x = vhost_exchange(c->vh, m->exchange, m->exchange_len);
	if (!x || x->deleted) {
		channel_error(ch, AMQP_NOT_FOUND, AMQP_BASIC_PUBLISH,
		              "NOT_FOUND - no exchange '%s' in vhost '%s'", m->exchange,
		              c->vh->name);
		message_unref(m);
		return true;
	}
	if (!x->type && reply_to_route(ch, m, mandatory)) {
		message_unref(m);
		return true;
	}
	if (x->dedup.on &&
	    dedup_check(x->vh, 'x', x->name, x->name_len, x->durable, &x->dedup, m, token)) {
		message_unref(m); /* a duplicate: confirmed, not routed */
		return true;
	}
	if (x->delayed) {
		/* Held, or a cancel request (delayed.h); routed when due. */
		if (delayed_is_cancel(m)) {
			size_t n = delayed_cancel(x, m);
			log_debug("%s: exchange '%s': %zu delayed messages cancelled", ch->c->name,
			          x->name, n);
			message_unref(m);
			return true;
		}
		uint64_t delay = delayed_delay(m);
		if (delay) {
			bool held = delayed_hold(x, m, delay, token);
			message_unref(m);
			return held;
		}
	}
	if (!exchange_route(x, m, &ch->route)) {
		/* As RabbitMQ's header_routes: CC and BCC must be arrays. */
		channel_error(ch, AMQP_PRECONDITION_FAILED, AMQP_BASIC_PUBLISH,
		              "PRECONDITION_FAILED - invalid message: "
		              "{unacceptable_type_in_header,\"%s\",%s}",
		              ch->route.bad_header, queue_arg_type_name(ch->route.bad_type));
		message_unref(m);
		return true;
	}
	if (ch->route.has_bcc && ch->route.n) {
		/* BCC names receivers the others must not see: they all get a
		 * copy without it (stored so too). */
		struct message *nb = message_without_header(m, "BCC");
		message_unref(m);
		if (!nb)
			return false;
		m = nb;
	}
	msg_stats_add(&x->stats, MS_PUBLISH_IN, 1);
	if (ch->route.n) {
		msg_stats_add(&x->stats, MS_PUBLISH_OUT, 1);
	} else {
		enum msg_stat k = mandatory ? MS_RETURN_UNROUTABLE : MS_DROP_UNROUTABLE;
		msg_stats_add(&ch->stats, k, 1);
		msg_stats_add(&ch->c->s->md->stats, k, 1);
	}
	if (ch->route.n == 0 && mandatory)
		channel_send_return(ch, m);
	bool accepted = true;
	for (size_t i = 0; i < ch->route.n; i++)
		accepted &= queue_publish(ch->route.qs[i], m, token);
	message_unref(m);
	return accepted;
}

static void publish_complete(struct channel *ch)
{
	struct message *m = ch->pub_msg;
	struct exchange *x = ch->pub_x;
	ch->pub_msg = NULL;
	ch->pub_x = NULL;
	ch->content = CONTENT_NONE;
	struct conn *c = ch->c;
	c->publisher = true;
	msg_stats_add(&ch->stats, MS_PUBLISH, 1);
	msg_stats_add(&c->s->md->stats, MS_PUBLISH, 1);
	if (ch->tx) {
		if (ch->ntx == ch->tx_cap) {
			size_t ncap = ch->tx_cap ? ch->tx_cap * 2 : 16;
			struct tx_op *n = realloc(ch->tx_ops, ncap * sizeof(*n));
			if (!n) {
				message_unref(m);
				exchange_unref(x);
				channel_error(ch, AMQP_INTERNAL_ERROR, AMQP_BASIC_PUBLISH,
				              "INTERNAL_ERROR - out of memory");
				return;
			}
			ch->tx_ops = n;
			ch->tx_cap = ncap;
		}
		ch->tx_ops[ch->ntx++] = (struct tx_op){.msg = m, .mandatory = ch->pub_mandatory};
		exchange_unref(x);
		return;
	}
	uint64_t token = 0;
	bool accepted = route_message(ch, x, m, ch->pub_mandatory, &token);
	exchange_unref(x);
	if (ch->confirm && ch->state == CH_OPEN) {
		ch->pub_seq++;
		if (!accepted)
			cw_push(ch, ch->pub_seq, 0, CW_NACK);
		else if (token) /* persisted: wait for the sync that covers it */
			cw_push(ch, ch->pub_seq, token, CW_SYNC);
		conn_mark_confirm(c, ch);
	}
	if ((c->s->alarm != NULL))
		conn_block(c);
}

static void basic_publish(struct channel *ch, const struct amqp_basic_publish *a)
{
	struct conn *c = ch->c;
	if (a->immediate) {
		conn_error(c, AMQP_NOT_IMPLEMENTED, AMQP_BASIC_PUBLISH,
		           "NOT_IMPLEMENTED - immediate=true");
		return;
	}
	if (!authz_resource(ch, AMQPD_RESOURCE_EXCHANGE, a->exchange, AMQPD_PERM_WRITE,
	                    AMQP_BASIC_PUBLISH))
		return;
	struct exchange *x = vhost_exchange(c->vh, (const char *)a->exchange.ptr, a->exchange.len);
	if (!x) {
		channel_error(ch, AMQP_NOT_FOUND, AMQP_BASIC_PUBLISH,
		              "NOT_FOUND - no exchange '" NAMEFMT "' in vhost '%s'",
		              NAMEARG(a->exchange), c->vh->name);
		return;
	}
	if (x->internal) {
		channel_error(ch, AMQP_ACCESS_REFUSED, AMQP_BASIC_PUBLISH,
		              "ACCESS_REFUSED - cannot publish to internal exchange '%s' in vhost "
		              "'%s'",
		              x->name, c->vh->name);
		return;
	}
	if (!authz_topic(ch, x, a->routing_key, AMQPD_PERM_WRITE, AMQP_BASIC_PUBLISH))
		return;
	memcpy(ch->pub_exchange, a->exchange.ptr, a->exchange.len);
	ch->pub_exchange_len = (uint8_t)a->exchange.len;
	memcpy(ch->pub_rk, a->routing_key.ptr, a->routing_key.len);
	ch->pub_rk_len = (uint8_t)a->routing_key.len;
	ch->pub_mandatory = a->mandatory;
	if (ch->pub_x)
		exchange_unref(ch->pub_x);
	ch->pub_x = exchange_ref(x); /* routed through it at the body's end */
	ch->content = CONTENT_HEADER;
}

void channel_handle_header(struct channel *ch, const uint8_t *payload, size_t len)
{
	struct conn *c = ch->c;
	if (ch->state != CH_OPEN)
		return;
	if (ch->content != CONTENT_HEADER) {
		conn_error(c, AMQP_UNEXPECTED_FRAME,
		           ch->content == CONTENT_NONE ? 0 : AMQP_BASIC_PUBLISH,
		           ch->content == CONTENT_NONE
		               ? "UNEXPECTED_FRAME - expected method frame, got non method frame "
		                 "instead"
		               : "UNEXPECTED_FRAME - expected content body, got non content body "
		                 "frame instead");
		return;
	}
	struct amqp_content_header h;
	struct amqp_err err;
	struct amqp_basic_props bp;
	if (amqp_content_header_decode_props(payload, len, &h, &bp, &err) < 0) {
		conn_error(c, err.code, AMQP_BASIC_PUBLISH, "%s", err.text);
		return;
	}
	if (h.class_id != AMQP_CLASS_BASIC) {
		conn_error(c, AMQP_FRAME_ERROR, AMQP_BASIC_PUBLISH,
		           "FRAME_ERROR - expected content header for class 60, got one for "
		           "class %u instead",
		           h.class_id);
		return;
	}
	if (h.body_size > c->s->cfg.max_message_size) {
		channel_error(ch, AMQP_PRECONDITION_FAILED, AMQP_BASIC_PUBLISH,
		              "PRECONDITION_FAILED - message size %llu is larger than configured "
		              "max size %llu",
		              (unsigned long long)h.body_size,
		              (unsigned long long)c->s->cfg.max_message_size);
		return;
	}
	if ((bp.flags & AMQP_PROP_USER_ID) && !amqp_bytes_eq_cstr(bp.user_id, c->user) &&
	    !user_has_tag(c->auth && c->auth->tags ? c->auth->tags : "", "impersonator")) {
		/* As RabbitMQ: user_id must name the authenticated user. */
		channel_error(ch, AMQP_PRECONDITION_FAILED, AMQP_BASIC_PUBLISH,
		              "PRECONDITION_FAILED - user_id property set to '" NAMEFMT
		              "' but authenticated user was '%s'",
		              NAMEARG(bp.user_id), c->user);
		return;
	}
	int64_t ttl;
	char why[96];
	if (message_expiration(&bp, &ttl, why, sizeof(why)) < 0) {
		/* As RabbitMQ's check_expiration_header. */
		channel_error(ch, AMQP_PRECONDITION_FAILED, AMQP_BASIC_PUBLISH,
		              "PRECONDITION_FAILED - invalid expiration '" NAMEFMT "': %s",
		              NAMEARG(bp.expiration), why);
		return;
	}
	struct amqp_bytes xn = {(const uint8_t *)ch->pub_exchange, ch->pub_exchange_len};
	struct amqp_bytes rk = {(const uint8_t *)ch->pub_rk, ch->pub_rk_len};
	uint8_t rewritten[AMQP_FRAME_MIN_SIZE];
	struct amqp_bytes props = h.raw_props;
	if ((bp.flags & AMQP_PROP_REPLY_TO) && h.raw_props.len <= sizeof(rewritten) - 128) {
		long n = reply_to_rewrite(ch, &bp, rewritten, sizeof(rewritten));
		if (n < 0)
			return;
		if (n > 0) {
			props = (struct amqp_bytes){rewritten, (size_t)n};
			if (amqp_basic_props_decode(props, &bp, NULL) < 0)
				return;
		}
	}
	ch->pub_msg = message_new(c->s->md, xn, rk, props, &bp, h.body_size);
	if (!ch->pub_msg) {
		channel_error(ch, AMQP_INTERNAL_ERROR, AMQP_BASIC_PUBLISH,
		              "INTERNAL_ERROR - out of memory for a %llu byte message",
		              (unsigned long long)h.body_size);
		return;
	}
	ch->content = CONTENT_BODY;
	if (h.body_size == 0)
		publish_complete(ch);
}

void channel_handle_body(struct channel *ch, const uint8_t *payload, size_t len)
{
	if (ch->state != CH_OPEN)
		return;
	if (ch->content != CONTENT_BODY) {
		conn_error(ch->c, AMQP_UNEXPECTED_FRAME,
		           ch->content == CONTENT_NONE ? 0 : AMQP_BASIC_PUBLISH,
		           ch->content == CONTENT_NONE
		               ? "UNEXPECTED_FRAME - expected method frame, got non method frame "
		                 "instead"
		               : "UNEXPECTED_FRAME - expected content header for class 60, got "
		                 "non content header frame instead");
		return;
	}
	struct message *m = ch->pub_msg;
	if (len > m->body_len - m->body_have) {
		conn_error(ch->c, AMQP_FRAME_ERROR, AMQP_BASIC_PUBLISH,
		           "FRAME_ERROR - content body larger than the size in its header");
		return;
	}
	/* A frame that arrived split was gathered in place already. */
	uint8_t *dst = m->body + m->body_have;
	if (payload != dst)
		memcpy(dst, payload, len);
	m->body_have += len;
	if (m->body_have == m->body_len)
		publish_complete(ch);
}

uint8_t *channel_body_dest(void *conn, uint16_t channel, uint32_t size)
{
	struct conn *c = conn;
	struct channel *ch = c->state == CONN_OPEN ? conn_channel(c, channel) : NULL;
	if (!ch || ch->state != CH_OPEN || ch->content != CONTENT_BODY)
		return NULL; /* channel_handle_body() tells the client */
	struct message *m = ch->pub_msg;
	if (size > m->body_len - m->body_have)
		return NULL; /* too large: the same */
	return m->body + m->body_have;
}

/* ---- basic: consume, get, ack ------------------------------------------- */

static void basic_consume(struct channel *ch, const struct amqp_basic_consume *a)
{
	struct conn *c = ch->c;
	const uint32_t mid = AMQP_BASIC_CONSUME;
	if (reply_to_is_queue(a->queue)) {
		reply_to_consume(ch, a);
		return;
	}
	if (!authz_resource(ch, AMQPD_RESOURCE_QUEUE, channel_queue_name(ch, a->queue),
	                    AMQPD_PERM_READ, mid))
		return;
	struct queue *q = channel_find_queue(ch, a->queue, mid);
	if (!q)
		return;
	char gen[64];
	struct amqp_bytes tag = a->consumer_tag;
	if (tag.len == 0) {
		random_name("amq.ctag-", gen, sizeof(gen));
		tag = amqp_cstr(gen);
	}
	if (hmap_get(&ch->consumers, tag.ptr, tag.len)) {
		conn_error(c, AMQP_NOT_ALLOWED, mid,
		           "NOT_ALLOWED - attempt to reuse consumer tag '" NAMEFMT "'",
		           NAMEARG(tag));
		return;
	}
	if (q->exclusive_consumer || (a->exclusive && q->nconsumers)) {
		channel_error(ch, AMQP_ACCESS_REFUSED, mid,
		              "ACCESS_REFUSED - queue '%s' in vhost '%s' in exclusive use", q->name,
		              c->vh->name);
		return;
	}
	int64_t prio = 0;
	if (a->arguments.len && amqp_table_get_int(a->arguments, "x-priority", &prio) &&
	    (prio < INT32_MIN || prio > INT32_MAX))
		prio = 0;
	struct consumer *k = calloc(1, sizeof(*k));
	if (!k || !(k->tag = malloc(tag.len + 1)) ||
	    !(k->args = malloc(a->arguments.len ? a->arguments.len : 1))) {
		if (k)
			free(k->tag);
		free(k);
		conn_error(c, AMQP_INTERNAL_ERROR, mid, "INTERNAL_ERROR - out of memory");
		return;
	}
	memcpy(k->tag, tag.ptr, tag.len);
	k->tag[tag.len] = 0;
	k->tag_len = tag.len;
	memcpy(k->args, a->arguments.ptr, a->arguments.len);
	k->args_len = a->arguments.len;
	k->ch = ch;
	k->ops = &channel_consumer_ops;
	k->no_ack = a->no_ack;
	k->exclusive = a->exclusive;
	k->priority = (int32_t)prio;
	k->prefetch = ch->prefetch_consumer;
	int64_t timeout = -1;
	if (a->arguments.len && amqp_table_get_int(a->arguments, "x-consumer-timeout", &timeout) &&
	    timeout < 0)
		timeout = -1;
	k->ack_timeout = timeout;
	if (hmap_put(&ch->consumers, k->tag, k->tag_len, k) < 0 || queue_add_consumer(q, k) < 0) {
		hmap_del(&ch->consumers, k->tag, k->tag_len);
		consumer_free(k);
		conn_error(c, AMQP_INTERNAL_ERROR, mid, "INTERNAL_ERROR - out of memory");
		return;
	}
	if (!a->nowait) {
		struct amqp_method ok = {.id = AMQP_BASIC_CONSUME_OK};
		ok.u.basic_consume_ok.consumer_tag = tag;
		conn_send_method(c, ch->id, &ok);
	}
	queue_dispatch(q);
}

static void basic_cancel(struct channel *ch, const struct amqp_basic_cancel *a)
{
	struct consumer *k = hmap_get(&ch->consumers, a->consumer_tag.ptr, a->consumer_tag.len);
	if (!a->nowait) {
		/* Reply before an auto-delete queue goes (the order RabbitMQ uses). */
		struct amqp_method ok = {.id = AMQP_BASIC_CANCEL_OK};
		ok.u.basic_cancel_ok.consumer_tag = a->consumer_tag;
		conn_send_method(ch->c, ch->id, &ok);
	}
	if (!k)
		return;
	struct queue *q = k->q;
	if (q)
		q->refs++;
	cancel_consumer(ch, k);
	if (q) {
		/* Its unacked stay with the channel; a single active consumer's
		 * successor starts on what is ready. */
		queue_dispatch(q);
		queue_unref(q);
	}
}

static void basic_get(struct channel *ch, const struct amqp_basic_get *a)
{
	if (!authz_resource(ch, AMQPD_RESOURCE_QUEUE, channel_queue_name(ch, a->queue),
	                    AMQPD_PERM_READ, AMQP_BASIC_GET))
		return;
	struct queue *q = channel_find_queue(ch, a->queue, AMQP_BASIC_GET);
	if (!q)
		return;
	struct qentry e;
	if (!queue_pop(q, &e)) {
		stats3(ch, NULL, MS_GET_EMPTY, false);
		msg_stats_add(&q->stats, MS_GET_EMPTY, 1);
		struct amqp_method em = {.id = AMQP_BASIC_GET_EMPTY};
		conn_send_method(ch->c, ch->id, &em);
		return;
	}
	uint64_t tag = ua_push(ch, &e, q, NULL, a->no_ack);
	if (!a->no_ack) {
		if (tag == 0) {
			queue_requeue(q, &e, false);
			channel_error(ch, AMQP_INTERNAL_ERROR, AMQP_BASIC_GET,
			              "INTERNAL_ERROR - out of memory");
			return;
		}
		q->refs++;
		q->unacked++;
		ack_deadline(ch, tag, NULL, q);
	}
	stats3(ch, q, a->no_ack ? MS_GET_NO_ACK : MS_GET, e.redelivered);
	struct amqp_method gm = {.id = AMQP_BASIC_GET_OK};
	struct amqp_basic_get_ok *g = &gm.u.basic_get_ok;
	g->delivery_tag = tag;
	g->redelivered = e.redelivered;
	g->exchange = (struct amqp_bytes){(uint8_t *)e.msg->exchange, e.msg->exchange_len};
	g->routing_key = (struct amqp_bytes){(uint8_t *)e.msg->rk, e.msg->rk_len};
	g->message_count = (uint32_t)q->count;
	conn_send_content(ch->c, ch->id, &gm, e.msg);
	if (a->no_ack) {
		storage_ack(ch->c->s->st, q, e.seq, e.msg);
		message_unref(e.msg);
	} else if (!e.redelivered) {
		storage_delivered(ch->c->s->st, q, e.seq, e.msg);
	}
}

/* basic.ack / nack / reject, now or at tx.commit. */
static void apply_ack(struct channel *ch, uint32_t mid, uint64_t tag, bool multiple, bool requeue)
{
	enum settle_kind kind = SETTLE_ACK;
	if (mid != AMQP_BASIC_ACK)
		kind = requeue ? SETTLE_REQUEUE : SETTLE_DROP;
	if (!settle_tags(ch, tag, multiple, kind) && !was_reclaimed(ch, tag, multiple))
		channel_error(ch, AMQP_PRECONDITION_FAILED, mid,
		              "PRECONDITION_FAILED - unknown delivery tag %llu",
		              (unsigned long long)tag);
}

static void basic_ack_like(struct channel *ch, const struct amqp_method *m)
{
	uint64_t tag;
	bool multiple = false, requeue = false;
	if (m->id == AMQP_BASIC_ACK) {
		tag = m->u.basic_ack.delivery_tag;
		multiple = m->u.basic_ack.multiple;
	} else if (m->id == AMQP_BASIC_NACK) {
		tag = m->u.basic_nack.delivery_tag;
		multiple = m->u.basic_nack.multiple;
		requeue = m->u.basic_nack.requeue;
	} else {
		tag = m->u.basic_reject.delivery_tag;
		requeue = m->u.basic_reject.requeue;
	}
	if (ch->tx) {
		if (ch->ntx == ch->tx_cap) {
			size_t ncap = ch->tx_cap ? ch->tx_cap * 2 : 16;
			struct tx_op *n = realloc(ch->tx_ops, ncap * sizeof(*n));
			if (!n) {
				channel_error(ch, AMQP_INTERNAL_ERROR, m->id,
				              "INTERNAL_ERROR - out of memory");
				return;
			}
			ch->tx_ops = n;
			ch->tx_cap = ncap;
		}
		ch->tx_ops[ch->ntx++] = (struct tx_op){
		    .method_id = m->id, .tag = tag, .multiple = multiple, .requeue = requeue};
		return;
	}
	apply_ack(ch, m->id, tag, multiple, requeue);
}

static void basic_qos(struct channel *ch, const struct amqp_basic_qos *a)
{
	if (a->prefetch_size != 0) {
		conn_error(ch->c, AMQP_NOT_IMPLEMENTED, AMQP_BASIC_QOS,
		           "NOT_IMPLEMENTED - prefetch_size!=0 (%u)", a->prefetch_size);
		return;
	}
	if (a->global)
		ch->prefetch_global = a->prefetch_count;
	else if (ch->c->qos_spec_shared)
		ch->prefetch_shared = a->prefetch_count; /* applies now, to all consumers */
	else
		ch->prefetch_consumer = a->prefetch_count;
	struct amqp_method ok = {.id = AMQP_BASIC_QOS_OK};
	conn_send_method(ch->c, ch->id, &ok);
	channel_resume(ch); /* a larger window may let messages flow */
}

static void basic_recover(struct channel *ch, const struct amqp_method *m)
{
	bool requeue = m->id == AMQP_BASIC_RECOVER ? m->u.basic_recover.requeue
	                                           : m->u.basic_recover_async.requeue;
	if (!requeue) {
		/* Redelivery to the same consumer: RabbitMQ does not do it either. */
		conn_error(ch->c, AMQP_NOT_IMPLEMENTED, m->id, "NOT_IMPLEMENTED - requeue=false");
		return;
	}
	requeue_all(ch);
	if (m->id == AMQP_BASIC_RECOVER) {
		struct amqp_method ok = {.id = AMQP_BASIC_RECOVER_OK};
		conn_send_method(ch->c, ch->id, &ok);
	}
}

/* ---- confirm and tx -------------------------------------------------- */

static void confirm_select(struct channel *ch, const struct amqp_confirm_select *a)
{
	if (ch->tx) {
		channel_error(ch, AMQP_PRECONDITION_FAILED, AMQP_CONFIRM_SELECT,
		              "PRECONDITION_FAILED - cannot switch from tx to confirm mode");
		return;
	}
	ch->confirm = true;
	if (!a->nowait) {
		struct amqp_method ok = {.id = AMQP_CONFIRM_SELECT_OK};
		conn_send_method(ch->c, ch->id, &ok);
	}
}

static void tx_method(struct channel *ch, const struct amqp_method *m)
{
	struct amqp_method ok = {.id = 0};
	switch (m->id) {
	case AMQP_TX_SELECT:
		if (ch->confirm) {
			channel_error(
			    ch, AMQP_PRECONDITION_FAILED, m->id,
			    "PRECONDITION_FAILED - cannot switch from confirm to tx mode");
			return;
		}
		ch->tx = true;
		ok.id = AMQP_TX_SELECT_OK;
		break;
	case AMQP_TX_COMMIT:
	case AMQP_TX_ROLLBACK:
		if (!ch->tx) {
			channel_error(ch, AMQP_PRECONDITION_FAILED, m->id,
			              "PRECONDITION_FAILED - channel is not transactional");
			return;
		}
		if (m->id == AMQP_TX_ROLLBACK) {
			tx_discard(ch);
			ok.id = AMQP_TX_ROLLBACK_OK;
			break;
		}
		/* Apply in order; a channel error part way stops the rest. */
		uint64_t token = 0;
		ch->ack_token = 0;
		for (size_t i = 0; i < ch->ntx; i++) {
			struct tx_op *op = &ch->tx_ops[i];
			if (op->msg) {
				struct message *msg = op->msg;
				op->msg = NULL;
				if (ch->state == CH_OPEN)
					route_message(ch, NULL, msg, op->mandatory, &token);
				else
					message_unref(msg);
			} else if (ch->state == CH_OPEN) {
				apply_ack(ch, op->method_id, op->tag, op->multiple, op->requeue);
			}
		}
		ch->ntx = 0;
		if (ch->state != CH_OPEN)
			return;
		if ((ch->c->s->alarm != NULL))
			conn_block(ch->c);
		if (ch->ack_token > token)
			token = ch->ack_token;
		if (token) {
			/* commit-ok only once the messages (and acks) are on disk */
			cw_push(ch, 0, token, CW_COMMIT);
			return;
		}
		ok.id = AMQP_TX_COMMIT_OK;
		break;
	default:
		conn_error(ch->c, AMQP_COMMAND_INVALID, m->id,
		           "COMMAND_INVALID - method %s not allowed from a client",
		           amqp_method_name(m->id));
		return;
	}
	conn_send_method(ch->c, ch->id, &ok);
}

/* ---- dispatch ------------------------------------------------------------ */

static void channel_class(struct channel *ch, const struct amqp_method *m)
{
	struct conn *c = ch->c;
	switch (m->id) {
	case AMQP_CHANNEL_CLOSE: {
		struct amqp_method ok = {.id = AMQP_CHANNEL_CLOSE_OK};
		conn_channel_closed(c, ch->id);
		uint16_t id = ch->id;
		channel_free(ch);
		conn_send_method(c, id, &ok);
		return;
	}
	case AMQP_CHANNEL_CLOSE_OK:
		if (ch->state == CH_CLOSING) {
			conn_channel_closed(c, ch->id);
			channel_free(ch);
		}
		return;
	case AMQP_CHANNEL_FLOW: {
		if (!m->u.channel_flow.active) {
			/* As RabbitMQ: a client may not pause deliveries (540, a
			 * connection error); amqp091-go's suite relies on it. */
			conn_error(c, AMQP_NOT_IMPLEMENTED, m->id,
			           "NOT_IMPLEMENTED - active=false");
			return;
		}
		ch->flow_active = true;
		struct amqp_method ok = {.id = AMQP_CHANNEL_FLOW_OK};
		ok.u.channel_flow_ok.active = ch->flow_active;
		conn_send_method(c, ch->id, &ok);
		if (ch->flow_active)
			channel_resume(ch);
		return;
	}
	case AMQP_CHANNEL_FLOW_OK:
		return;
	default:
		conn_error(c, AMQP_COMMAND_INVALID, m->id,
		           "COMMAND_INVALID - method %s not allowed from a client",
		           amqp_method_name(m->id));
	}
}

static void basic_class(struct channel *ch, const struct amqp_method *m)
{
	switch (m->id) {
	case AMQP_BASIC_PUBLISH:
		basic_publish(ch, &m->u.basic_publish);
		break;
	case AMQP_BASIC_ACK:
	case AMQP_BASIC_NACK:
	case AMQP_BASIC_REJECT:
		basic_ack_like(ch, m);
		break;
	case AMQP_BASIC_CONSUME:
		basic_consume(ch, &m->u.basic_consume);
		break;
	case AMQP_BASIC_CANCEL:
		basic_cancel(ch, &m->u.basic_cancel);
		break;
	case AMQP_BASIC_GET:
		basic_get(ch, &m->u.basic_get);
		break;
	case AMQP_BASIC_QOS:
		basic_qos(ch, &m->u.basic_qos);
		break;
	case AMQP_BASIC_RECOVER:
	case AMQP_BASIC_RECOVER_ASYNC:
		basic_recover(ch, m);
		break;
	default:
		conn_error(ch->c, AMQP_COMMAND_INVALID, m->id,
		           "COMMAND_INVALID - method %s not allowed from a client",
		           amqp_method_name(m->id));
	}
}

void channel_handle_method(struct channel *ch, const struct amqp_method *m)
{
	if (ch->state == CH_CLOSING) {
		/* After channel.close only close / close-ok mean anything. */
		if (m->id == AMQP_CHANNEL_CLOSE || m->id == AMQP_CHANNEL_CLOSE_OK)
			channel_class(ch, m);
		return;
	}
	if (ch->content != CONTENT_NONE) {
		conn_error(ch->c, AMQP_UNEXPECTED_FRAME, AMQP_BASIC_PUBLISH,
		           ch->content == CONTENT_HEADER
		               ? "UNEXPECTED_FRAME - expected content header for class 60, got non "
		                 "content header frame instead"
		               : "UNEXPECTED_FRAME - expected content body, got non content body "
		                 "frame instead");
		return;
	}
	switch (AMQP_METHOD_CLASS(m->id)) {
	case AMQP_CLASS_CHANNEL:
		channel_class(ch, m);
		break;
	case AMQP_CLASS_EXCHANGE:
		channel_exchange_method(ch, m);
		break;
	case AMQP_CLASS_QUEUE:
		channel_queue_method(ch, m);
		break;
	case AMQP_CLASS_BASIC:
		basic_class(ch, m);
		break;
	case AMQP_CLASS_CONFIRM:
		if (m->id == AMQP_CONFIRM_SELECT)
			confirm_select(ch, &m->u.confirm_select);
		else
			conn_error(ch->c, AMQP_COMMAND_INVALID, m->id,
			           "COMMAND_INVALID - method %s not allowed from a client",
			           amqp_method_name(m->id));
		break;
	case AMQP_CLASS_TX:
		tx_method(ch, m);
		break;
	case AMQP_CLASS_ACCESS:
		if (m->id == AMQP_ACCESS_REQUEST) {
			/* Deprecated; RabbitMQ answers with a fixed ticket. */
			struct amqp_method ok = {.id = AMQP_ACCESS_REQUEST_OK};
			ok.u.access_request_ok.ticket = 1;
			conn_send_method(ch->c, ch->id, &ok);
			break;
		}
		/* fall through */
	default:
		conn_error(ch->c, AMQP_COMMAND_INVALID, m->id,
		           "COMMAND_INVALID - method %s not allowed from a client",
		           amqp_method_name(m->id));
	}
}
