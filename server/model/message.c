/*
 * message.c - see message.h.
 */
#include "model/message.h"

#include <stdlib.h>
#include <string.h>

#include "model/message_edit.h"
#include "model/model.h"

struct message *message_new(struct model *md, struct amqp_bytes exchange, struct amqp_bytes rk,
                            struct amqp_bytes raw_props, const struct amqp_basic_props *props,
                            uint64_t body_len)
{
	size_t extra = exchange.len + 1 + rk.len + 1 + raw_props.len;
	if (body_len > SIZE_MAX - extra - sizeof(struct message))
		return NULL;
	struct message *m = malloc(sizeof(*m) + extra + (size_t)body_len);
	if (!m)
		return NULL;
	memset(m, 0, sizeof(*m));
	m->refs = 1;
	m->md = md;
	m->exchange_len = (uint8_t)exchange.len;
	m->rk_len = (uint8_t)rk.len;
	m->props_len = (uint32_t)raw_props.len;
	m->body_len = body_len;
	uint8_t *p = m->data;
	m->exchange = (char *)p;
	memcpy(p, exchange.ptr, exchange.len);
	p[exchange.len] = 0;
	p += exchange.len + 1;
	m->rk = (char *)p;
	memcpy(p, rk.ptr, rk.len);
	p[rk.len] = 0;
	p += rk.len + 1;
	m->props = p;
	memcpy(p, raw_props.ptr, raw_props.len);
	p += raw_props.len;
	m->body = p;

	/* props describe raw_props; offsets carry over to the copy. */
	m->persistent = (props->flags & AMQP_PROP_DELIVERY_MODE) && props->delivery_mode == 2;
	m->priority = (props->flags & AMQP_PROP_PRIORITY) ? props->priority : 0;
	char why[80];
	if (message_expiration(props, &m->ttl, why, sizeof(why)) != 0)
		m->ttl = -1; /* none, or refused at publish already */
	if (props->flags & AMQP_PROP_HEADERS) {
		m->headers_off = (uint32_t)(props->headers.ptr - raw_props.ptr);
		m->headers_len = (uint32_t)props->headers.len;
	}
	if (md)
		model_mem_add(md, (int64_t)message_size(m));
	return m;
}

size_t message_size(const struct message *m)
{
	return sizeof(*m) + m->exchange_len + 1u + m->rk_len + 1u + m->props_len +
	       (size_t)m->body_len;
}

void message_unref(struct message *m)
{
	if (--m->refs > 0)
		return;
	if (m->md)
		model_mem_add(m->md, -(int64_t)message_size(m));
	free(m);
}

int message_props(const struct message *m, struct amqp_basic_props *out)
{
	struct amqp_bytes raw = {m->props, m->props_len};
	return amqp_basic_props_decode(raw, out, NULL);
}
