/*
 * dedup.c - see dedup.h.
 */
#include "model/dedup.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "model/key_index.h"
#include "model/message.h"
#include "model/model.h"
#include "model/queue.h"
#include "model/vhost.h"
#include "util/log.h"

#define PREFIX_LEN (sizeof(DEDUP_QUEUE_PREFIX) - 1)

bool dedup_is_store(const struct queue *q)
{
	return q->name_len > PREFIX_LEN && memcmp(q->name, DEDUP_QUEUE_PREFIX, PREFIX_LEN) == 0;
}

/* "amq.dedup.q.<name>"; false when it would pass 255 bytes. */
static bool cache_name(char kind, const char *name, size_t len, char *out, size_t *outlen)
{
	if (len + PREFIX_LEN + 2 > 255)
		return false;
	memcpy(out, DEDUP_QUEUE_PREFIX, PREFIX_LEN);
	out[PREFIX_LEN] = kind;
	out[PREFIX_LEN + 1] = '.';
	memcpy(out + PREFIX_LEN + 2, name, len);
	*outlen = PREFIX_LEN + 2 + len;
	return true;
}

static struct queue *cache_queue(struct vhost *vh, char kind, const char *name, size_t len,
                                 bool durable, const struct dedup_conf *c)
{
	char qn[256];
	size_t qlen;
	if (!cache_name(kind, name, len, qn, &qlen))
		return NULL;
	struct queue *q = vhost_queue(vh, qn, qlen);
	if (q)
		return q;
	/* Its size limit is x-max-length with drop-head: the oldest key goes. */
	struct amqp_table_entry e = {amqp_cstr("x-max-length"),
	                             {.type = 'l', .v.i64 = c->cache_size}};
	struct amqp_table t = {&e, 1};
	uint8_t args[64];
	struct amqp_wr w;
	amqp_wr_init(&w, args, sizeof(args));
	amqp_table_encode_contents(&w, &t);
	if (!amqp_wr_ok(&w))
		return NULL;
	struct model *md = vh->md;
	q = queue_new(vh, (struct amqp_bytes){(const uint8_t *)qn, qlen}, durable, false, false,
	              NULL, (struct amqp_bytes){args, w.len});
	if (q && md->store && md->store->queue_created)
		md->store->queue_created(md->store_ud, q);
	return q;
}

/* The key: the header's value, strings as they are, integers in
 * decimal; len 0 when there is none. */
static struct amqp_bytes key_of(const struct message *m, const struct dedup_conf *c, char *buf,
                                size_t buflen)
{
	struct amqp_bytes none = {NULL, 0};
	if (!m->headers_len)
		return none;
	struct amqp_bytes h = {m->props + m->headers_off, m->headers_len};
	char name[257];
	memcpy(name, c->header, c->header_len);
	name[c->header_len] = 0;
	struct amqp_field_value v;
	int64_t n;
	if (!amqp_table_get(h, name, &v))
		return none;
	if (v.type == 'S' || v.type == 'x')
		return v.v.str;
	if (amqp_table_get_int(h, name, &n)) {
		int w = snprintf(buf, buflen, "%" PRId64, n);
		return (struct amqp_bytes){(const uint8_t *)buf, (size_t)w};
	}
	return none;
}

/* A cache entry: the key as the body, persistent when the cache is. */
static struct message *key_message(struct model *md, struct amqp_bytes key, bool persistent)
{
	struct amqp_basic_props p;
	memset(&p, 0, sizeof(p));
	if (persistent) {
		p.flags = AMQP_PROP_DELIVERY_MODE;
		p.delivery_mode = 2;
	}
	uint8_t raw[16];
	struct amqp_wr w;
	amqp_wr_init(&w, raw, sizeof(raw));
	amqp_basic_props_encode(&w, &p);
	if (!amqp_wr_ok(&w))
		return NULL;
	struct amqp_bytes empty = {(const uint8_t *)"", 0};
	struct message *km =
	    message_new(md, empty, empty, (struct amqp_bytes){raw, w.len}, &p, key.len);
	if (!km)
		return NULL;
	memcpy(km->body, key.ptr, key.len);
	km->body_have = key.len;
	return km;
}

bool dedup_check(struct vhost *vh, char kind, const char *name, size_t len, bool durable,
                 const struct dedup_conf *c, const struct message *m, uint64_t *token)
{
	char buf[32];
	struct amqp_bytes key = key_of(m, c, buf, sizeof(buf));
	if (!key.len || !c->cache_size)
		return false;
	struct queue *q = cache_queue(vh, kind, name, len, durable, c);
	if (!q) {
		log_warning("%s '%.*s' in vhost '%s': no deduplication cache (out of memory or "
		            "name too long); message not checked",
		            kind == 'q' ? "queue" : "exchange", (int)len, name, vh->name);
		return false;
	}
	if (key_index_has(q, key, token))
		return true;
	struct message *km = key_message(vh->md, key, durable);
	if (!km)
		return false;
	int64_t ttl = c->ttl, n;
	struct amqp_bytes h = {m->props + m->headers_off, m->headers_len};
	if (m->headers_len && amqp_table_get_int(h, "x-cache-ttl", &n) && n > 0)
		ttl = n;
	uint64_t due = ttl > 0 ? model_now_ms(vh->md) + (uint64_t)ttl : 0;
	uint64_t seq = q->next_seq, t = 0;
	if (queue_publish_due(q, km, due, &t, NULL))
		key_index_add(q, key, seq, t);
	if (token && t > *token)
		*token = t;
	message_unref(km);
	return false;
}

void dedup_owner_deleted(struct vhost *vh, char kind, const char *name, size_t len)
{
	char qn[256];
	size_t qlen;
	struct queue *q = cache_name(kind, name, len, qn, &qlen) ? vhost_queue(vh, qn, qlen) : NULL;
	if (q)
		queue_delete(q);
}
