/*
 * channel_admin.c - the exchange and queue classes of a channel:
 * declare, delete, bind, unbind, purge, with RabbitMQ's checks and texts.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "session/session.h"
#include "session/channel.h"
#include "session/conn.h"
#include "model/delayed.h"
#include "model/exchange.h"
#include "util/log.h"
#include "util/names.h"
#include "model/queue.h"
#include "model/queue_args.h"
#include "session/reply_to.h"
#include "model/vhost.h"

#define NAMEFMT    "%.*s"
#define NAMEARG(b) (int)(b).len, (const char *)(b).ptr

static bool reserved_name(struct amqp_bytes name)
{
	return name.len >= 4 && memcmp(name.ptr, "amq.", 4) == 0;
}

static const char *tf(bool b)
{
	return b ? "true" : "false";
}

/* Arguments RabbitMQ compares when an exchange / a queue is redeclared. */
static const char *const xchg_equiv_args[] = {"alternate-exchange"};
static const char *const equiv_args[] = {
    "x-expires",
    "x-message-ttl",
    "x-dead-letter-exchange",
    "x-dead-letter-routing-key",
    "x-max-length",
    "x-max-length-bytes",
    "x-max-priority",
    "x-overflow",
    "x-queue-mode",
    "x-queue-type",
    "x-single-active-consumer",
    "x-queue-master-locator",
    "x-max-in-memory-length",
    "x-max-in-memory-bytes",
    "x-delivery-limit",
};

static void value_text(const struct amqp_field_value *v, char *out, size_t len)
{
	switch (v->type) {
	case 'b':
		snprintf(out, len, "%d", v->v.i8);
		break;
	case 'B':
		snprintf(out, len, "%u", v->v.u8);
		break;
	case 's':
		snprintf(out, len, "%d", v->v.i16);
		break;
	case 'u':
		snprintf(out, len, "%u", v->v.u16);
		break;
	case 'I':
		snprintf(out, len, "%d", v->v.i32);
		break;
	case 'i':
		snprintf(out, len, "%u", v->v.u32);
		break;
	case 'l':
		snprintf(out, len, "%lld", (long long)v->v.i64);
		break;
	case 'L':
	case 'T':
		snprintf(out, len, "%llu", (unsigned long long)v->v.u64);
		break;
	case 'S':
	case 'x':
		snprintf(out, len, NAMEFMT, (int)(v->v.str.len > 200 ? 200 : v->v.str.len),
		         (const char *)v->v.str.ptr);
		break;
	case 't':
		snprintf(out, len, "%s", tf(v->v.b));
		break;
	default:
		snprintf(out, len, "...");
	}
}

static bool value_same(const struct amqp_field_value *a, const struct amqp_field_value *b)
{
	uint8_t ab[512], bb[512];
	struct amqp_wr wa, wb;
	amqp_wr_init(&wa, ab, sizeof(ab));
	amqp_wr_init(&wb, bb, sizeof(bb));
	amqp_field_value_encode(&wa, a);
	amqp_field_value_encode(&wb, b);
	if (!amqp_wr_ok(&wa) || !amqp_wr_ok(&wb))
		return false;
	return wa.len == wb.len && memcmp(ab, bb, wa.len) == 0;
}

/* 0 if equivalent (for the argument names in keys); otherwise writes the
 * RabbitMQ-style reason. */
static int args_equivalent(const char *kind, const char *name, const char *vhost,
                           struct amqp_bytes cur, struct amqp_bytes args, const char *const *keys,
                           size_t nkeys, char *text, size_t len)
{
	for (size_t i = 0; i < nkeys; i++) {
		struct amqp_field_value nv, cv;
		bool hn = amqp_table_get(args, keys[i], &nv);
		bool hc = amqp_table_get(cur, keys[i], &cv);
		if (!hn && !hc)
			continue;
		if (hn && hc && value_same(&nv, &cv))
			continue;
		char n1[256] = "none", c1[256] = "none", vt[220];
		if (hn && hc && nv.type == cv.type) {
			value_text(&nv, vt, sizeof(vt));
			snprintf(n1, sizeof(n1), "'%s'", vt);
			value_text(&cv, vt, sizeof(vt));
			snprintf(c1, sizeof(c1), "'%s'", vt);
		} else {
			if (hn) {
				value_text(&nv, vt, sizeof(vt));
				snprintf(n1, sizeof(n1), "the value '%s' of type '%s'", vt,
				         queue_arg_type_name(nv.type));
			}
			if (hc) {
				value_text(&cv, vt, sizeof(vt));
				snprintf(c1, sizeof(c1), "the value '%s' of type '%s'", vt,
				         queue_arg_type_name(cv.type));
			}
		}
		snprintf(text, len,
		         "PRECONDITION_FAILED - inequivalent arg '%s' for %s '%s' in vhost '%s': "
		         "received %s but current is %s",
		         keys[i], kind, name, vhost, n1, c1);
		return -1;
	}
	return 0;
}

static void lock_error(struct channel *ch, struct queue *q, uint32_t mid)
{
	channel_error(ch, AMQP_RESOURCE_LOCKED, mid,
	              "RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '%s' in "
	              "vhost '%s'. It could be originally declared on another connection or the "
	              "exclusive property value does not match that of the original declaration.",
	              q->name, ch->c->vh->name);
}

static bool check_exclusive(struct channel *ch, struct queue *q, uint32_t mid)
{
	if (!q->exclusive || q->owner == &ch->c->excl)
		return true;
	lock_error(ch, q, mid);
	return false;
}

/* ---- exchanges --------------------------------------------------------- */

static struct exchange *find_exchange(struct channel *ch, struct amqp_bytes name, uint32_t mid)
{
	struct exchange *x = vhost_exchange(ch->c->vh, (const char *)name.ptr, name.len);
	if (!x)
		channel_error(ch, AMQP_NOT_FOUND, mid,
		              "NOT_FOUND - no exchange '" NAMEFMT "' in vhost '%s'", NAMEARG(name),
		              ch->c->vh->name);
	return x;
}

static bool refuse_default(struct channel *ch, struct amqp_bytes name, uint32_t mid)
{
	if (name.len)
		return false;
	channel_error(ch, AMQP_ACCESS_REFUSED, mid,
	              "ACCESS_REFUSED - operation not permitted on the default exchange");
	return true;
}

/* A new exchange or queue naming another exchange in its arguments
 * (alternate-exchange, x-dead-letter-exchange): as RabbitMQ, read on the
 * new one and write on the one it names. */
static bool authz_named_exchange(struct channel *ch, struct amqp_bytes args, const char *arg,
                                 enum amqpd_auth_resource kind, struct amqp_bytes name,
                                 uint32_t mid)
{
	struct amqp_field_value v;
	if (!amqp_table_get(args, arg, &v) || (v.type != 'S' && v.type != 'x'))
		return true;
	return authz_resource(ch, kind, name, AMQPD_PERM_READ, mid) &&
	       authz_resource(ch, AMQPD_RESOURCE_EXCHANGE, v.v.str, AMQPD_PERM_WRITE, mid);
}

static void exchange_declare(struct channel *ch, const struct amqp_exchange_declare *a)
{
	struct conn *c = ch->c;
	const uint32_t mid = AMQP_EXCHANGE_DECLARE;
	if (refuse_default(ch, a->exchange, mid))
		return;
	if (a->passive) {
		if (!find_exchange(ch, a->exchange, mid))
			return;
		goto ok;
	}
	bool delayed;
	uint16_t tcode;
	char ttext[320];
	const struct xtype *t = delayed_resolve_type(c->s->md, a->type, a->arguments, &delayed,
	                                             &tcode, ttext, sizeof(ttext));
	if (!t) {
		if (tcode == AMQP_COMMAND_INVALID) /* a connection error, as RabbitMQ */
			conn_error(c, tcode, mid, "%s", ttext);
		else
			channel_error(ch, tcode, mid, "%s", ttext);
		return;
	}
	if (!authz_resource(ch, AMQPD_RESOURCE_EXCHANGE, a->exchange, AMQPD_PERM_CONFIGURE, mid))
		return;
	struct exchange *x = vhost_exchange(c->vh, (const char *)a->exchange.ptr, a->exchange.len);
	if (x) {
		const char *what = NULL;
		char got[300], cur[300];
		/* same name, whichever plugin took it */
		if (plugin_xtype_head(x->type) != t || x->delayed != delayed) {
			what = "type";
			snprintf(got, sizeof(got), NAMEFMT, NAMEARG(a->type));
			snprintf(cur, sizeof(cur), "%s", exchange_type_name(x));
		} else if (x->durable != a->durable) {
			what = "durable";
			snprintf(got, sizeof(got), "%s", tf(a->durable));
			snprintf(cur, sizeof(cur), "%s", tf(x->durable));
		} else if (x->auto_delete != a->auto_delete) {
			what = "auto_delete";
			snprintf(got, sizeof(got), "%s", tf(a->auto_delete));
			snprintf(cur, sizeof(cur), "%s", tf(x->auto_delete));
		} else if (x->internal != a->internal) {
			what = "internal";
			snprintf(got, sizeof(got), "%s", tf(a->internal));
			snprintf(cur, sizeof(cur), "%s", tf(x->internal));
		}
		if (what) {
			channel_error(
			    ch, AMQP_PRECONDITION_FAILED, mid,
			    "PRECONDITION_FAILED - inequivalent arg '%s' for exchange '%s' "
			    "in vhost '%s': received '%s' but current is '%s'",
			    what, x->name, c->vh->name, got, cur);
			return;
		}
		char text[600];
		if (args_equivalent("exchange", x->name, c->vh->name,
		                    (struct amqp_bytes){x->args, x->args_len}, a->arguments,
		                    xchg_equiv_args, 1, text, sizeof(text)) < 0) {
			channel_error(ch, AMQP_PRECONDITION_FAILED, mid, "%s", text);
			return;
		}
		goto ok;
	}
	if (reserved_name(a->exchange)) {
		channel_error(ch, AMQP_ACCESS_REFUSED, mid,
		              "ACCESS_REFUSED - exchange name '" NAMEFMT
		              "' contains reserved prefix 'amq.*'",
		              NAMEARG(a->exchange));
		return;
	}
	if (!authz_named_exchange(ch, a->arguments, "alternate-exchange", AMQPD_RESOURCE_EXCHANGE,
	                          a->exchange, mid))
		return;
	uint16_t code;
	char text[512];
	char xname[256];
	snprintf(xname, sizeof(xname), NAMEFMT, NAMEARG(a->exchange));
	if ((code = exchange_dedup_args_check(a->arguments, xname, c->vh->name, text,
	                                      sizeof(text))) != 0) {
		channel_error(ch, code, mid, "%s", text);
		return;
	}
	x = exchange_new(c->vh, a->exchange, t, a->durable, a->auto_delete, a->internal,
	                 a->arguments, &code, text, sizeof(text));
	if (!x) {
		channel_error(ch, code, mid, "%s", text);
		return;
	}
	if (delayed) {
		x->delayed = true;
		if (!delayed_holding(x)) {
			exchange_delete(x);
			channel_error(ch, AMQP_PRECONDITION_FAILED, mid,
			              "PRECONDITION_FAILED - exchange name '" NAMEFMT
			              "' too long for an x-delayed-message exchange (at most 243 "
			              "bytes)",
			              NAMEARG(a->exchange));
			return;
		}
	}
	log_debug("%s: declared exchange '" NAMEFMT "' (%s)", c->name, NAMEARG(a->exchange),
	          t->name);
ok:
	if (!a->nowait) {
		struct amqp_method ok = {.id = AMQP_EXCHANGE_DECLARE_OK};
		conn_send_method(c, ch->id, &ok);
	}
}

static void exchange_delete_m(struct channel *ch, const struct amqp_exchange_delete *a)
{
	const uint32_t mid = AMQP_EXCHANGE_DELETE;
	if (refuse_default(ch, a->exchange, mid))
		return;
	if (reserved_name(a->exchange)) {
		channel_error(ch, AMQP_ACCESS_REFUSED, mid,
		              "ACCESS_REFUSED - deletion of system exchange '" NAMEFMT
		              "' in vhost '%s' not allowed",
		              NAMEARG(a->exchange), ch->c->vh->name);
		return;
	}
	if (!authz_resource(ch, AMQPD_RESOURCE_EXCHANGE, a->exchange, AMQPD_PERM_CONFIGURE, mid))
		return;
	struct exchange *x =
	    vhost_exchange(ch->c->vh, (const char *)a->exchange.ptr, a->exchange.len);
	if (x) {
		if (a->if_unused && x->bindings) {
			channel_error(ch, AMQP_PRECONDITION_FAILED, mid,
			              "PRECONDITION_FAILED - exchange '%s' in vhost '%s' in use",
			              x->name, ch->c->vh->name);
			return;
		}
		exchange_delete(x);
	}
	/* Deleting what is not there is not an error (as RabbitMQ). */
	if (!a->nowait) {
		struct amqp_method ok = {.id = AMQP_EXCHANGE_DELETE_OK};
		conn_send_method(ch->c, ch->id, &ok);
	}
}

static void exchange_bind_m(struct channel *ch, const struct amqp_method *m)
{
	bool bind = m->id == AMQP_EXCHANGE_BIND;
	/* bind and unbind have the same arguments. */
	const struct amqp_exchange_bind *a = &m->u.exchange_bind;
	struct amqp_exchange_bind tmp;
	if (!bind) {
		const struct amqp_exchange_unbind *u = &m->u.exchange_unbind;
		tmp = (struct amqp_exchange_bind){u->ticket,      u->destination, u->source,
		                                  u->routing_key, u->nowait,      u->arguments};
		a = &tmp;
	}
	/* RabbitMQ's order: write on the destination, the default exchange,
	 * read on the source, its topic permission, then existence. */
	if (!authz_resource(ch, AMQPD_RESOURCE_EXCHANGE, a->destination, AMQPD_PERM_WRITE, m->id) ||
	    refuse_default(ch, a->destination, m->id) || refuse_default(ch, a->source, m->id) ||
	    !authz_resource(ch, AMQPD_RESOURCE_EXCHANGE, a->source, AMQPD_PERM_READ, m->id))
		return;
	struct exchange *src0 =
	    vhost_exchange(ch->c->vh, (const char *)a->source.ptr, a->source.len);
	if (src0 && !authz_topic(ch, src0, a->routing_key, AMQPD_PERM_READ, m->id))
		return;
	struct exchange *dst = find_exchange(ch, a->destination, m->id);
	if (!dst)
		return;
	struct exchange *src = find_exchange(ch, a->source, m->id);
	if (!src)
		return;
	if (bind) {
		char text[512];
		int rc =
		    binding_add(src, &dst->d, a->routing_key, a->arguments, text, sizeof(text));
		if (rc) {
			channel_error(ch, (uint16_t)rc, m->id, "%s", text);
			return;
		}
	} else {
		binding_remove(src, &dst->d, a->routing_key, a->arguments);
	}
	if (!a->nowait) {
		struct amqp_method ok = {.id = bind ? AMQP_EXCHANGE_BIND_OK
		                                    : AMQP_EXCHANGE_UNBIND_OK};
		conn_send_method(ch->c, ch->id, &ok);
	}
}

void channel_exchange_method(struct channel *ch, const struct amqp_method *m)
{
	switch (m->id) {
	case AMQP_EXCHANGE_DECLARE:
		exchange_declare(ch, &m->u.exchange_declare);
		break;
	case AMQP_EXCHANGE_DELETE:
		exchange_delete_m(ch, &m->u.exchange_delete);
		break;
	case AMQP_EXCHANGE_BIND:
	case AMQP_EXCHANGE_UNBIND:
		exchange_bind_m(ch, m);
		break;
	default:
		conn_error(ch->c, AMQP_COMMAND_INVALID, m->id,
		           "COMMAND_INVALID - method %s not allowed from a client",
		           amqp_method_name(m->id));
	}
}

/* ---- queues ------------------------------------------------------------ */

struct amqp_bytes channel_queue_name(const struct channel *ch, struct amqp_bytes name)
{
	if (name.len == 0)
		return (struct amqp_bytes){(const uint8_t *)ch->last_queue, ch->last_queue_len};
	return name;
}

/* An x-delayed-message exchange's holding queue: counted (passive
 * declare) and purged (cancel all), nothing else. */
static bool refuse_holding(struct channel *ch, const struct queue *q, uint32_t mid)
{
	if (q->dedup_store)
		channel_error(ch, AMQP_ACCESS_REFUSED, mid,
		              "ACCESS_REFUSED - queue '%s' in vhost '%s' is a deduplication cache",
		              q->name, ch->c->vh->name);
	else
		channel_error(
		    ch, AMQP_ACCESS_REFUSED, mid,
		    "ACCESS_REFUSED - queue '%s' in vhost '%s' holds the pending messages "
		    "of x-delayed-message exchange '%s'",
		    q->name, ch->c->vh->name, q->name + strlen(DELAYED_QUEUE_PREFIX));
	return true;
}

struct queue *channel_find_queue(struct channel *ch, struct amqp_bytes name, uint32_t mid)
{
	if (name.len == 0) {
		if (ch->last_queue_len == 0) {
			channel_error(ch, AMQP_NOT_FOUND, mid,
			              "NOT_FOUND - no previously declared queue");
			return NULL;
		}
		name = (struct amqp_bytes){(const uint8_t *)ch->last_queue, ch->last_queue_len};
	}
	struct queue *q = vhost_queue(ch->c->vh, (const char *)name.ptr, name.len);
	if (!q) {
		channel_error(ch, AMQP_NOT_FOUND, mid,
		              "NOT_FOUND - no queue '" NAMEFMT "' in vhost '%s'", NAMEARG(name),
		              ch->c->vh->name);
		return NULL;
	}
	if ((q->holding || q->dedup_store) && mid != AMQP_QUEUE_DECLARE &&
	    mid != AMQP_QUEUE_PURGE) {
		refuse_holding(ch, q, mid);
		return NULL;
	}
	return check_exclusive(ch, q, mid) ? q : NULL;
}

static void remember_queue(struct channel *ch, const struct queue *q)
{
	memcpy(ch->last_queue, q->name, q->name_len);
	ch->last_queue_len = (uint8_t)q->name_len;
}

static void send_declare_ok(struct channel *ch, const struct queue *q, bool nowait)
{
	remember_queue(ch, q);
	if (nowait)
		return;
	struct amqp_method ok = {.id = AMQP_QUEUE_DECLARE_OK};
	ok.u.queue_declare_ok.queue = (struct amqp_bytes){(const uint8_t *)q->name, q->name_len};
	ok.u.queue_declare_ok.message_count = (uint32_t)q->count;
	ok.u.queue_declare_ok.consumer_count = (uint32_t)q->nconsumers;
	conn_send_method(ch->c, ch->id, &ok);
}

static void queue_declare(struct channel *ch, const struct amqp_queue_declare *a)
{
	struct conn *c = ch->c;
	const uint32_t mid = AMQP_QUEUE_DECLARE;
	if (a->passive && reply_to_is_queue(a->queue)) {
		/* The pseudo-queue always "exists", with nothing in it. */
		if (!a->nowait) {
			struct amqp_method ok = {.id = AMQP_QUEUE_DECLARE_OK};
			ok.u.queue_declare_ok.queue = a->queue;
			conn_send_method(c, ch->id, &ok);
		}
		return;
	}
	if (a->passive) {
		struct queue *q = channel_find_queue(ch, a->queue, mid);
		if (q) {
			queue_touch(q); /* as RabbitMQ: a passive declare renews x-expires */
			send_declare_ok(ch, q, a->nowait);
		}
		return;
	}
	struct amqp_bytes name = a->queue;
	if (name.len == 0) {
		/* A replay (a pending permission answer came in) keeps the name
		 * the first pass checked. */
		if (!c->replaying || !ch->gen_name[0])
			random_name("amq.gen-", ch->gen_name, sizeof(ch->gen_name));
		name = amqp_cstr(ch->gen_name);
	} else if (reserved_name(name)) {
		channel_error(ch, AMQP_ACCESS_REFUSED, mid,
		              "ACCESS_REFUSED - queue name '" NAMEFMT
		              "' contains reserved prefix 'amq.*'",
		              NAMEARG(name));
		return;
	}
	if (!authz_resource(ch, AMQPD_RESOURCE_QUEUE, name, AMQPD_PERM_CONFIGURE, mid))
		return;
	struct queue *q = vhost_queue(c->vh, (const char *)name.ptr, name.len);
	if (q) {
		if (!check_exclusive(ch, q, mid))
			return;
		const char *what = NULL;
		bool got = false, cur = false;
		if (q->durable != a->durable) {
			what = "durable";
			got = a->durable;
			cur = q->durable;
		} else if (q->auto_delete != a->auto_delete) {
			what = "auto_delete";
			got = a->auto_delete;
			cur = q->auto_delete;
		}
		if (q->exclusive != a->exclusive) {
			/* RabbitMQ reports this as a lock conflict, not 406. */
			lock_error(ch, q, mid);
			return;
		}
		if (what) {
			channel_error(
			    ch, AMQP_PRECONDITION_FAILED, mid,
			    "PRECONDITION_FAILED - inequivalent arg '%s' for queue '%s' in "
			    "vhost '%s': received '%s' but current is '%s'",
			    what, q->name, c->vh->name, tf(got), tf(cur));
			return;
		}
		char text[600];
		if (args_equivalent("queue", q->name, c->vh->name,
		                    (struct amqp_bytes){q->args, q->args_len}, a->arguments,
		                    equiv_args, sizeof(equiv_args) / sizeof(equiv_args[0]), text,
		                    sizeof(text)) < 0) {
			channel_error(ch, AMQP_PRECONDITION_FAILED, mid, "%s", text);
			return;
		}
		queue_touch(q); /* a redeclare is a use (x-expires) */
		send_declare_ok(ch, q, a->nowait);
		return;
	}
	if (!authz_named_exchange(ch, a->arguments, "x-dead-letter-exchange", AMQPD_RESOURCE_QUEUE,
	                          name, mid))
		return;
	char qn[256], atext[600];
	snprintf(qn, sizeof(qn), NAMEFMT, NAMEARG(name));
	uint16_t acode = queue_args_check(a->arguments, qn, c->vh->name, atext, sizeof(atext));
	if (acode) {
		channel_error(ch, acode, mid, "%s", atext);
		return;
	}
	if (c->vh->max_queues >= 0 && c->vh->queues.count >= (size_t)c->vh->max_queues) {
		channel_error(ch, AMQP_PRECONDITION_FAILED, mid,
		              "PRECONDITION_FAILED - cannot declare queue '" NAMEFMT
		              "': queue limit in vhost '%s' (%lld) is reached",
		              NAMEARG(name), c->vh->name, (long long)c->vh->max_queues);
		return;
	}
	q = queue_new(c->vh, name, a->durable, a->exclusive, a->auto_delete, &c->excl,
	              a->arguments);
	if (!q || (a->exclusive && queue_owner_add(&c->excl, q) < 0)) {
		if (q)
			queue_delete(q);
		conn_error(c, AMQP_INTERNAL_ERROR, mid, "INTERNAL_ERROR - out of memory");
		return;
	}
	storage_queue_created(c->s->st, q);
	log_debug("%s: declared queue '%s'", c->name, q->name);
	char later[400];
	queue_args_unsupported(a->arguments, later, sizeof(later));
	if (later[0]) /* accepted, as RabbitMQ would; never ignored in silence */
		log_warning("%s: queue '%s' in vhost '%s': argument(s) %s accepted but without "
		            "effect: amqpd does not implement them yet",
		            c->name, q->name, c->vh->name, later);
	send_declare_ok(ch, q, a->nowait);
}

static void queue_bind_m(struct channel *ch, const struct amqp_method *m)
{
	bool bind = m->id == AMQP_QUEUE_BIND;
	struct amqp_bytes qn, xn, key, args;
	if (bind) {
		qn = m->u.queue_bind.queue;
		xn = m->u.queue_bind.exchange;
		key = m->u.queue_bind.routing_key;
		args = m->u.queue_bind.arguments;
	} else {
		qn = m->u.queue_unbind.queue;
		xn = m->u.queue_unbind.exchange;
		key = m->u.queue_unbind.routing_key;
		args = m->u.queue_unbind.arguments;
	}
	/* RabbitMQ's order: write on the queue, the default exchange, read on
	 * the exchange, its topic permission, then existence. */
	struct amqp_bytes qname = channel_queue_name(ch, qn);
	if (!authz_resource(ch, AMQPD_RESOURCE_QUEUE, qname, AMQPD_PERM_WRITE, m->id) ||
	    refuse_default(ch, xn, m->id) ||
	    !authz_resource(ch, AMQPD_RESOURCE_EXCHANGE, xn, AMQPD_PERM_READ, m->id))
		return;
	/* Spec: empty queue and key: the key is the (last) queue's name. */
	if (qn.len == 0 && key.len == 0)
		key = qname;
	struct exchange *x0 = vhost_exchange(ch->c->vh, (const char *)xn.ptr, xn.len);
	if (x0 && !authz_topic(ch, x0, key, AMQPD_PERM_READ, m->id))
		return;
	if (!bind) {
		/* Unbinding what is not there is not an error (as RabbitMQ). */
		struct exchange *x = vhost_exchange(ch->c->vh, (const char *)xn.ptr, xn.len);
		struct amqp_bytes name =
		    qn.len
		        ? qn
		        : (struct amqp_bytes){(const uint8_t *)ch->last_queue, ch->last_queue_len};
		struct queue *q = vhost_queue(ch->c->vh, (const char *)name.ptr, name.len);
		if (q && !check_exclusive(ch, q, m->id))
			return;
		if (x && q)
			binding_remove(x, &q->d, key, args);
		struct amqp_method ok = {.id = AMQP_QUEUE_UNBIND_OK};
		conn_send_method(ch->c, ch->id, &ok);
		return;
	}
	struct exchange *x = find_exchange(ch, xn, m->id);
	if (!x)
		return;
	struct queue *q = channel_find_queue(ch, qn, m->id);
	if (!q)
		return;
	char text[512];
	int rc = binding_add(x, &q->d, key, args, text, sizeof(text));
	if (rc) {
		channel_error(ch, (uint16_t)rc, m->id, "%s", text);
		return;
	}
	if (!m->u.queue_bind.nowait) {
		struct amqp_method ok = {.id = AMQP_QUEUE_BIND_OK};
		conn_send_method(ch->c, ch->id, &ok);
	}
}

static void queue_purge_m(struct channel *ch, const struct amqp_queue_purge *a)
{
	if (!authz_resource(ch, AMQPD_RESOURCE_QUEUE, channel_queue_name(ch, a->queue),
	                    AMQPD_PERM_READ, AMQP_QUEUE_PURGE))
		return;
	struct queue *q = channel_find_queue(ch, a->queue, AMQP_QUEUE_PURGE);
	if (!q)
		return;
	size_t n = queue_purge(q);
	if (!a->nowait) {
		struct amqp_method ok = {.id = AMQP_QUEUE_PURGE_OK};
		ok.u.queue_purge_ok.message_count = (uint32_t)n;
		conn_send_method(ch->c, ch->id, &ok);
	}
}

static void send_delete_ok(void *arg, size_t count)
{
	struct channel *ch = arg;
	struct amqp_method ok = {.id = AMQP_QUEUE_DELETE_OK};
	ok.u.queue_delete_ok.message_count = (uint32_t)count;
	conn_send_method(ch->c, ch->id, &ok);
}

static void queue_delete_m(struct channel *ch, const struct amqp_queue_delete *a)
{
	const uint32_t mid = AMQP_QUEUE_DELETE;
	struct amqp_bytes name = a->queue;
	if (name.len == 0)
		name = (struct amqp_bytes){(const uint8_t *)ch->last_queue, ch->last_queue_len};
	if (!authz_resource(ch, AMQPD_RESOURCE_QUEUE, name, AMQPD_PERM_CONFIGURE, mid))
		return;
	struct queue *q = vhost_queue(ch->c->vh, (const char *)name.ptr, name.len);
	if (q && (q->holding || q->dedup_store)) {
		refuse_holding(ch, q, mid);
		return;
	}
	if (q) {
		if (!check_exclusive(ch, q, mid))
			return;
		if (a->if_unused && q->nconsumers) {
			channel_error(ch, AMQP_PRECONDITION_FAILED, mid,
			              "PRECONDITION_FAILED - queue '%s' in vhost '%s' in use",
			              q->name, ch->c->vh->name);
			return;
		}
		if (a->if_empty && q->count) {
			channel_error(ch, AMQP_PRECONDITION_FAILED, mid,
			              "PRECONDITION_FAILED - queue '%s' in vhost '%s' not empty",
			              q->name, ch->c->vh->name);
			return;
		}
		/* delete-ok first, then the consumers' basic.cancel (this
		 * channel's included), as RabbitMQ orders them. */
		queue_delete_then(q, a->nowait ? NULL : send_delete_ok, ch);
		return;
	}
	/* Deleting a queue that is not there is not an error (as RabbitMQ). */
	if (!a->nowait)
		send_delete_ok(ch, 0);
}

void channel_queue_method(struct channel *ch, const struct amqp_method *m)
{
	switch (m->id) {
	case AMQP_QUEUE_DECLARE:
		queue_declare(ch, &m->u.queue_declare);
		break;
	case AMQP_QUEUE_BIND:
	case AMQP_QUEUE_UNBIND:
		queue_bind_m(ch, m);
		break;
	case AMQP_QUEUE_PURGE:
		queue_purge_m(ch, &m->u.queue_purge);
		break;
	case AMQP_QUEUE_DELETE:
		queue_delete_m(ch, &m->u.queue_delete);
		break;
	default:
		conn_error(ch->c, AMQP_COMMAND_INVALID, m->id,
		           "COMMAND_INVALID - method %s not allowed from a client",
		           amqp_method_name(m->id));
	}
}
