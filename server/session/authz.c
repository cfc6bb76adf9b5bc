/*
 * authz.c - see authz.h.
 */
#include "session/authz.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/exchange.h"
#include "model/vhost.h"
#include "session/channel.h"
#include "session/conn.h"
#include "session/login.h"
#include "session/session.h"

static const char *const perm_names[] = {"configure", "write", "read"};

static uint64_t epoch_now(const struct channel *ch)
{
	const struct model *md = ch->c->s->md;
	return md->perm_epoch + md->plugins->auth_epoch;
}

/* "k p name\0key": one byte each for kind and permission. */
static size_t make_key(const struct access_q *q, char *buf, size_t cap)
{
	int n = snprintf(buf, cap, "%c%c%c%s%c%s", 'a' + (int)q->kind, '0' + (int)q->perm,
	                 '0' + (int)q->resource, q->name, 0, q->kind == ACCESS_TOPIC ? q->key : "");
	return n < 0 ? 0 : (size_t)n < cap ? (size_t)n : cap - 1;
}

static void cache_drop(struct authz_cache *k)
{
	for (unsigned i = 0; i < k->n; i++)
		free(k->e[i].key);
	k->n = 0;
}

/* The channel's cache, made on its first question (an idle channel
 * carries none); NULL out of memory (then nothing is cached). */
static struct authz_cache *cache_of(struct channel *ch)
{
	if (!ch->authz)
		ch->authz = calloc(1, sizeof(*ch->authz));
	return ch->authz;
}

/* -1 not cached, else 0/1. */
static int cache_get(struct channel *ch, const char *key, size_t len)
{
	struct authz_cache *k = cache_of(ch);
	if (!k)
		return -1;
	uint64_t ep = epoch_now(ch);
	if (k->epoch != ep) {
		cache_drop(k);
		k->epoch = ep;
		return -1;
	}
	for (unsigned i = 0; i < k->n; i++) {
		if (k->e[i].len == len && memcmp(k->e[i].key, key, len) == 0) {
			struct authz_entry hit = k->e[i];
			memmove(&k->e[1], &k->e[0], i * sizeof(k->e[0])); /* most recent first */
			k->e[0] = hit;
			return hit.allowed;
		}
	}
	return -1;
}

static void cache_put(struct channel *ch, const char *key, size_t len, bool allowed)
{
	struct authz_cache *k = cache_of(ch);
	if (!k)
		return;
	uint64_t ep = epoch_now(ch);
	if (k->epoch != ep) {
		cache_drop(k);
		k->epoch = ep;
	}
	char *copy = malloc(len);
	if (!copy)
		return;
	memcpy(copy, key, len);
	if (k->n == AUTHZ_CACHE)
		free(k->e[--k->n].key);
	memmove(&k->e[1], &k->e[0], k->n * sizeof(k->e[0]));
	k->e[0] = (struct authz_entry){copy, len, allowed};
	k->n++;
}

static void refuse(struct channel *ch, const struct access_q *q, uint32_t mid)
{
	const char *vh = ch->c->vh->name;
	if (q->kind == ACCESS_TOPIC)
		channel_error(ch, AMQP_ACCESS_REFUSED, mid,
		              "ACCESS_REFUSED - %s access to topic '%s' in exchange '%s' in vhost "
		              "'%s' refused for user '%s'",
		              perm_names[q->perm], q->key, q->name, vh, ch->c->user);
	else
		channel_error(
		    ch, AMQP_ACCESS_REFUSED, mid,
		    "ACCESS_REFUSED - %s access to %s '%s' in vhost '%s' refused for user "
		    "'%s'",
		    perm_names[q->perm], q->resource == AMQPD_RESOURCE_QUEUE ? "queue" : "exchange",
		    q->name, vh, ch->c->user);
}

/* A pending answer arrived: remember it for the replay. */
static void answered(struct conn *c, const struct access_q *q, bool ok)
{
	struct channel *ch = conn_channel(c, c->held_frame.channel);
	if (!ch)
		return;
	char key[600];
	size_t len = make_key(q, key, sizeof(key));
	cache_put(ch, key, len, ok);
}

static bool ask(struct channel *ch, const struct access_q *q, uint32_t mid)
{
	char key[600];
	size_t len = make_key(q, key, sizeof(key));
	int hit = cache_get(ch, key, len);
	if (hit >= 0) {
		if (!hit)
			refuse(ch, q, mid);
		return hit;
	}
	int v = access_ask(ch->c, q, answered);
	if (v < 0)
		return false; /* pending: the frame comes back */
	cache_put(ch, key, len, v == 0);
	if (v != 0)
		refuse(ch, q, mid);
	return v == 0;
}

static void copy_name(char *dst, size_t cap, struct amqp_bytes b)
{
	size_t n = b.len < cap - 1 ? b.len : cap - 1;
	memcpy(dst, b.ptr, n);
	dst[n] = 0;
}

bool authz_resource(struct channel *ch, enum amqpd_auth_resource kind, struct amqp_bytes name,
                    enum amqpd_auth_permission perm, uint32_t method_id)
{
	struct authz_cache *k = ch->authz;
	uint64_t ep = epoch_now(ch);
	if (k && k->hot_valid && k->hot_epoch == ep && k->hot_kind == kind && k->hot_perm == perm &&
	    k->hot_len == name.len && memcmp(k->hot_name, name.ptr, name.len) == 0)
		return true;
	struct access_q q = {.kind = ACCESS_RESOURCE, .resource = kind, .perm = perm};
	if (memchr(name.ptr, 0, name.len)) {
		/* Checked as a C string it would be its prefix: no pattern of
		 * RabbitMQ's would match it either. */
		copy_name(q.name, sizeof(q.name), name);
		refuse(ch, &q, method_id);
		return false;
	}
	if (kind == AMQPD_RESOURCE_EXCHANGE && name.len == 0)
		snprintf(q.name, sizeof(q.name), "amq.default"); /* as RabbitMQ checks it */
	else
		copy_name(q.name, sizeof(q.name), name);
	if (!ask(ch, &q, method_id))
		return false;
	if ((k = ch->authz) != NULL && name.len <= sizeof(k->hot_name)) {
		k->hot_valid = true;
		k->hot_epoch = ep;
		k->hot_kind = (uint8_t)kind;
		k->hot_perm = (uint8_t)perm;
		k->hot_len = (uint8_t)name.len;
		memcpy(k->hot_name, name.ptr, name.len);
	}
	return true;
}

bool authz_topic(struct channel *ch, const struct exchange *x, struct amqp_bytes key,
                 enum amqpd_auth_permission perm, uint32_t method_id)
{
	if (!x->type || strcmp(exchange_type_name(x), "topic") != 0)
		return true;
	/* The internal backend allows every key when the vhost has no topic
	 * permission at all (the usual case): no question, no cache entry. */
	const struct conn *c = ch->c;
	if (!c->vh->topic_permissions && c->auth && c->auth->backend == c->s->auth.internal)
		return true;
	struct access_q q = {.kind = ACCESS_TOPIC, .perm = perm};
	snprintf(q.name, sizeof(q.name), "%s", x->name);
	copy_name(q.key, sizeof(q.key), key);
	if (memchr(key.ptr, 0, key.len)) {
		refuse(ch, &q, method_id);
		return false;
	}
	return ask(ch, &q, method_id);
}

void authz_free(struct channel *ch)
{
	if (ch->authz)
		cache_drop(ch->authz);
	free(ch->authz);
	ch->authz = NULL;
}
