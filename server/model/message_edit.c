/*
 * message_edit.c - see message_edit.h.
 */
#include "model/message_edit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/message.h"

long message_headers(const struct message *m, struct amqp_table_entry *out, size_t cap)
{
	if (!m->headers_len)
		return 0;
	struct amqp_table_iter it;
	amqp_table_iter_init(&it, (struct amqp_bytes){m->props + m->headers_off, m->headers_len});
	struct amqp_bytes key;
	struct amqp_field_value val;
	long n = 0;
	int rc;
	while ((rc = amqp_table_next(&it, &key, &val)) == 1) {
		if ((size_t)n < cap)
			out[n] = (struct amqp_table_entry){key, val};
		n++;
	}
	return rc < 0 ? -1 : n;
}

struct message *message_edit(const struct message *m, struct amqp_bytes exchange,
                             struct amqp_bytes rk, const struct amqp_table_entry *headers, size_t n,
                             bool drop_expiration)
{
	struct amqp_basic_props p;
	if (message_props(m, &p) < 0 || exchange.len > 255 || rk.len > 255)
		return NULL;
	struct amqp_table t = {headers, n};
	p.headers_built = &t;
	p.flags |= AMQP_PROP_HEADERS;
	if (drop_expiration)
		p.flags &= (uint16_t)~AMQP_PROP_EXPIRATION;
	struct amqp_wr w;
	amqp_wr_init(&w, NULL, 0);
	amqp_basic_props_encode(&w, &p); /* measures */
	if (w.bad)
		return NULL;
	size_t len = w.len;
	uint8_t *raw = malloc(len ? len : 1);
	if (!raw)
		return NULL;
	amqp_wr_init(&w, raw, len);
	amqp_basic_props_encode(&w, &p);
	struct amqp_basic_props np;
	struct message *c = NULL;
	if (amqp_wr_ok(&w) &&
	    amqp_basic_props_decode((struct amqp_bytes){raw, len}, &np, NULL) == 0)
		c = message_new(m->md, exchange, rk, (struct amqp_bytes){raw, len}, &np,
		                m->body_len);
	free(raw);
	if (!c)
		return NULL;
	if (m->body_len)
		memcpy(c->body, m->body, (size_t)m->body_len);
	c->body_have = m->body_len;
	return c;
}

/* A copy of m whose header `name` is *v, or is gone when v is NULL. */
static struct message *with_header(const struct message *m, const char *name,
                                   const struct amqp_field_value *v)
{
	long nh = message_headers(m, NULL, 0);
	if (nh < 0)
		return NULL;
	struct amqp_table_entry *h = calloc((size_t)nh + 1, sizeof(*h));
	if (!h)
		return NULL;
	long got = message_headers(m, h, (size_t)nh), k = 0;
	for (long i = 0; i < got; i++)
		if (!amqp_bytes_eq_cstr(h[i].key, name))
			h[k++] = h[i];
	if (v)
		h[k++] = (struct amqp_table_entry){amqp_cstr(name), *v};
	struct message *c = message_edit(
	    m, (struct amqp_bytes){(const uint8_t *)m->exchange, m->exchange_len},
	    (struct amqp_bytes){(const uint8_t *)m->rk, m->rk_len}, h, (size_t)k, false);
	free(h);
	if (c)
		c->persistent = m->persistent;
	return c;
}

struct message *message_with_delivery_count(const struct message *m, uint32_t n)
{
	struct amqp_field_value v = {.type = 'l', .v.i64 = n};
	return with_header(m, "x-delivery-count", &v);
}

struct message *message_without_header(const struct message *m, const char *name)
{
	return with_header(m, name, NULL);
}

#define MAX_EXPIRY 315360000000LL /* RabbitMQ's cap: ten years of ms */

int message_expiration(const struct amqp_basic_props *p, int64_t *ttl, char *why, size_t whylen)
{
	if (!(p->flags & AMQP_PROP_EXPIRATION))
		return 1;
	/* As Erlang's string:to_integer: optional sign, digits, the rest
	 * must be empty. */
	const uint8_t *s = p->expiration.ptr, *end = s + p->expiration.len;
	bool neg = false;
	if (s < end && (*s == '-' || *s == '+'))
		neg = *s++ == '-';
	if (s == end || *s < '0' || *s > '9') {
		snprintf(why, whylen, "no_integer");
		return -1;
	}
	int64_t v = 0;
	bool big = false;
	while (s < end && *s >= '0' && *s <= '9') {
		if (v > (INT64_MAX - 9) / 10)
			big = true;
		else
			v = v * 10 + (*s - '0');
		s++;
	}
	if (s != end) {
		snprintf(why, whylen, "{leftover_string,\"%.*s\"}",
		         (int)(end - s > 64 ? 64 : end - s), (const char *)s);
		return -1;
	}
	if (neg && v) {
		snprintf(why, whylen, "{value_negative,-%lld}", (long long)v);
		return -1;
	}
	if (big || v > MAX_EXPIRY) {
		snprintf(why, whylen, "{value_too_large,%.*s}",
		         (int)(p->expiration.len > 64 ? 64 : p->expiration.len),
		         (const char *)p->expiration.ptr);
		return -1;
	}
	*ttl = v;
	return 0;
}
