/*
 * delayed.c - see delayed.h.
 */
#include "model/delayed.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/exchange.h"
#include "model/key_index.h"
#include "model/message.h"
#include "model/message_edit.h"
#include "model/model.h"
#include "model/queue.h"
#include "model/vhost.h"
#include "util/hmap.h"
#include "util/log.h"

#define PREFIX_LEN (sizeof(DELAYED_QUEUE_PREFIX) - 1)

const struct xtype *delayed_resolve_type(struct model *md, struct amqp_bytes type,
                                         struct amqp_bytes args, bool *delayed, uint16_t *code,
                                         char *text, size_t textlen)
{
	*delayed = false;
	if (amqp_bytes_eq_cstr(type, DELAYED_TYPE)) {
		struct amqp_field_value v;
		const struct xtype *t = NULL;
		if (amqp_table_get(args, "x-delayed-type", &v) && v.type == 'S' &&
		    !amqp_bytes_eq_cstr(v.v.str, DELAYED_TYPE))
			t = plugin_host_xtype(md->plugins, (const char *)v.v.str.ptr, v.v.str.len);
		if (!t) {
			/* The plugin's check, word for word. */
			*code = AMQP_PRECONDITION_FAILED;
			snprintf(
			    text, textlen,
			    "PRECONDITION_FAILED - Invalid argument, 'x-delayed-type' must be an "
			    "existing exchange type");
			return NULL;
		}
		*delayed = true;
		return t;
	}
	const struct xtype *t = plugin_host_xtype(md->plugins, (const char *)type.ptr, type.len);
	if (!t) {
		*code = AMQP_COMMAND_INVALID;
		snprintf(text, textlen, "COMMAND_INVALID - unknown exchange type '%.*s'",
		         (int)(type.len > 255 ? 255 : type.len), (const char *)type.ptr);
	}
	return t;
}

bool delayed_is_holding(const struct queue *q)
{
	return q->name_len > PREFIX_LEN && memcmp(q->name, DELAYED_QUEUE_PREFIX, PREFIX_LEN) == 0;
}

/* "amq.delayed.<exchange>"; false when it would pass 255 bytes. */
static bool holding_name(const struct exchange *x, char *out, size_t *len)
{
	if (x->name_len + PREFIX_LEN > 255)
		return false;
	memcpy(out, DELAYED_QUEUE_PREFIX, PREFIX_LEN);
	memcpy(out + PREFIX_LEN, x->name, x->name_len);
	*len = PREFIX_LEN + x->name_len;
	return true;
}

struct queue *delayed_holding(struct exchange *x)
{
	char name[256];
	size_t len;
	if (!holding_name(x, name, &len))
		return NULL;
	struct queue *q = vhost_queue(x->vh, name, len);
	if (q)
		return q;
	struct model *md = x->vh->md;
	q = queue_new(x->vh, (struct amqp_bytes){(const uint8_t *)name, len}, x->durable, false,
	              false, NULL, (struct amqp_bytes){NULL, 0});
	if (q && md->store && md->store->queue_created)
		md->store->queue_created(md->store_ud, q);
	return q;
}

void delayed_exchange_deleted(struct exchange *x)
{
	char name[256];
	size_t len;
	struct queue *q = holding_name(x, name, &len) ? vhost_queue(x->vh, name, len) : NULL;
	if (q) {
		size_t n = queue_delete(q);
		if (n)
			log_info("exchange '%s' in vhost '%s' deleted with %zu pending delayed "
			         "messages",
			         x->name, x->vh->name, n);
	}
}

uint64_t delayed_delay(const struct message *m)
{
	int64_t d;
	if (!m->headers_len ||
	    !amqp_table_get_int((struct amqp_bytes){m->props + m->headers_off, m->headers_len},
	                        "x-delay", &d) ||
	    d <= 0)
		return 0;
	/* RabbitMQ's cap on TTLs, ten years: far enough, no overflow. */
	return d > 315360000000LL ? 315360000000ULL : (uint64_t)d;
}

bool delayed_is_cancel(const struct message *m)
{
	struct amqp_field_value v;
	return m->headers_len &&
	       amqp_table_get((struct amqp_bytes){m->props + m->headers_off, m->headers_len},
	                      "x-delay-cancel", &v);
}

struct amqp_bytes delayed_message_id(const struct message *m)
{
	struct amqp_basic_props p;
	if (message_props(m, &p) < 0 || !(p.flags & AMQP_PROP_MESSAGE_ID))
		return (struct amqp_bytes){NULL, 0};
	return p.message_id;
}

bool delayed_hold(struct exchange *x, struct message *m, uint64_t delay, uint64_t *token)
{
	return delayed_hold_from(x, m, delay, token, NULL);
}

bool delayed_hold_from(struct exchange *x, struct message *m, uint64_t delay, uint64_t *token,
                       const struct store_origin *from)
{
	struct queue *q = delayed_holding(x);
	if (!q) {
		log_error("exchange '%s' in vhost '%s': cannot hold a delayed message (out of "
		          "memory, or the name is too long for its holding queue)",
		          x->name, x->vh->name);
		return false;
	}
	uint64_t due = model_now_ms(x->vh->md) + delay;
	uint64_t seq = q->next_seq;
	if (!queue_publish_due(q, m, due, token, from))
		return false;
	struct amqp_bytes id = delayed_message_id(m);
	if (id.len)
		key_index_add(q, id, seq, 0);
	return true;
}

uint64_t delayed_release(struct queue *q, struct message *m, uint64_t seq)
{
	struct exchange *x = vhost_exchange(q->vh, q->name + PREFIX_LEN, q->name_len - PREFIX_LEN);
	if (!x || x->deleted)
		return 0;
	struct route_out out = {0};
	uint64_t token = 0;
	exchange_route(x, m, &out);
	struct message *nb = NULL;
	if (out.has_bcc && out.n && (nb = message_without_header(m, "BCC")))
		m = nb; /* as at a publish: nobody sees BCC */
	struct store_origin from = {q->sq ? q->store_id : NULL, seq};
	for (size_t i = 0; i < out.n; i++)
		if (out.qs[i] != q)
			queue_publish_from(out.qs[i], m, &token,
			                   m->persistent && q->sq ? &from : NULL);
	if (!out.n)
		log_debug("exchange '%s': a delayed message was due but routes nowhere; dropped",
		          x->name);
	route_out_free(&out);
	if (nb)
		message_unref(nb);
	return token;
}

size_t delayed_cancel(struct exchange *x, const struct message *m)
{
	struct amqp_bytes id = delayed_message_id(m);
	char name[256];
	size_t len;
	struct queue *q = holding_name(x, name, &len) ? vhost_queue(x->vh, name, len) : NULL;
	uint64_t seqs[64];
	size_t n = 0, k;
	/* queue_forget() takes each out of the index: in batches, copied. */
	while (q && id.len && (k = key_index_seqs(q, id, seqs, 64)) > 0)
		for (size_t i = 0; i < k; i++) {
			n += queue_forget(q, seqs[i]);
			key_index_del(q, id, seqs[i]); /* also if it was not there */
		}
	return n;
}
