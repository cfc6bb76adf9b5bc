/*
 * v1_direct.c - a plugin built against the frozen ABI version 1 headers
 * (tests/abi-v1): the "direct" exchange type as it was before ABI 2, under
 * the name "x-v1-direct", with one addition for the tests: validate()
 * refuses an "x-v1-refuse" argument with 406, so the host's mapping of v1
 * reply codes is seen too.  The tests load it into the ABI 2 host
 * (tests/unit/test_exchanges.c, tests/integration/test_plugins.c) and
 * route through it.  Keep it a v1 plugin: never port it to ABI 2.
 *
 * The original description: a message goes to every destination bound
 * with a key byte-equal to its routing key.
 *
 * Index: a chained hash table keyed by binding key; each key holds its
 * destinations with a reference count, because the host may bind one
 * destination with one key several times with different arguments.
 *
 * Ownership: all state is allocated with the host's allocator in create()
 * and bind() and freed in unbind() and destroy(); bindings and messages are
 * borrowed and copied where kept.  route() does not allocate.
 *
 * Threading: every callback runs on the broker's event-loop thread (ABI
 * contract); the host API pointer is written once in init.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "amqpd/exchange.h"
#include "amqpd/plugin.h"

static const struct amqpd_host_api *host;

struct dref {
	const void *dest;
	size_t refs; /* bindings of this dest with this key */
};

struct dkey {
	struct dkey *next; /* hash chain */
	uint64_t hash;
	struct dref *dests;
	size_t ndests, cap;
	size_t len;
	char key[]; /* binding key bytes */
};

struct direct {
	struct dkey **buckets;
	size_t nbuckets; /* power of two */
	size_t nkeys;
};

/* FNV-1a, 64-bit: short keys, no need for anything stronger here. */
static uint64_t hash_key(const char *k, size_t len)
{
	uint64_t h = 14695981039346656037ULL;
	for (size_t i = 0; i < len; i++) {
		h ^= (uint8_t)k[i];
		h *= 1099511628211ULL;
	}
	return h;
}

static struct dkey **find_slot(struct direct *d, const char *key, size_t len, uint64_t h)
{
	struct dkey **pp = &d->buckets[h & (d->nbuckets - 1)];
	for (; *pp; pp = &(*pp)->next) {
		struct dkey *e = *pp;
		if (e->hash == h && e->len == len && memcmp(e->key, key, len) == 0)
			break;
	}
	return pp;
}

static int grow(struct direct *d)
{
	size_t n = d->nbuckets * 2;
	struct dkey **nb = host->calloc(n, sizeof(*nb));
	if (!nb)
		return -1;
	for (size_t i = 0; i < d->nbuckets; i++) {
		struct dkey *e = d->buckets[i];
		while (e) {
			struct dkey *next = e->next;
			struct dkey **slot = &nb[e->hash & (n - 1)];
			e->next = *slot;
			*slot = e;
			e = next;
		}
	}
	host->free(d->buckets);
	d->buckets = nb;
	d->nbuckets = n;
	return 0;
}

static int direct_create(void **state, struct amqpd_table_view args)
{
	(void)args;
	struct direct *d = host->calloc(1, sizeof(*d));
	if (!d)
		return -1;
	d->nbuckets = 16;
	d->buckets = host->calloc(d->nbuckets, sizeof(*d->buckets));
	if (!d->buckets) {
		host->free(d);
		return -1;
	}
	*state = d;
	return 0;
}

static void direct_destroy(void *state)
{
	struct direct *d = state;
	if (!d)
		return;
	for (size_t i = 0; i < d->nbuckets; i++) {
		struct dkey *e = d->buckets[i];
		while (e) {
			struct dkey *next = e->next;
			host->free(e->dests);
			host->free(e);
			e = next;
		}
	}
	host->free(d->buckets);
	host->free(d);
}

static int direct_bind(void *state, const struct amqpd_binding *b)
{
	struct direct *d = state;
	uint64_t h = hash_key(b->key, b->key_len);
	struct dkey **slot = find_slot(d, b->key, b->key_len, h);
	struct dkey *e = *slot;

	if (!e) {
		/* Grow first so a failure leaves nothing half-inserted. */
		if (d->nkeys >= d->nbuckets && grow(d) == 0)
			slot = find_slot(d, b->key, b->key_len, h);
		e = host->alloc(sizeof(*e) + b->key_len);
		if (!e)
			return -1;
		memset(e, 0, sizeof(*e));
		e->hash = h;
		e->len = b->key_len;
		memcpy(e->key, b->key, b->key_len);
		*slot = e;
		d->nkeys++;
	}
	for (size_t i = 0; i < e->ndests; i++) {
		if (e->dests[i].dest == b->dest) {
			e->dests[i].refs++;
			return 0;
		}
	}
	if (e->ndests == e->cap) {
		size_t cap = e->cap ? e->cap * 2 : 4;
		struct dref *nd = host->realloc(e->dests, cap * sizeof(*nd));
		if (!nd) {
			if (e->ndests == 0) { /* just created: undo */
				*slot = e->next;
				host->free(e);
				d->nkeys--;
			}
			return -1;
		}
		e->dests = nd;
		e->cap = cap;
	}
	e->dests[e->ndests].dest = b->dest;
	e->dests[e->ndests].refs = 1;
	e->ndests++;
	return 0;
}

static void direct_unbind(void *state, const struct amqpd_binding *b)
{
	struct direct *d = state;
	uint64_t h = hash_key(b->key, b->key_len);
	struct dkey **slot = find_slot(d, b->key, b->key_len, h);
	struct dkey *e = *slot;

	if (!e)
		return;
	for (size_t i = 0; i < e->ndests; i++) {
		if (e->dests[i].dest != b->dest)
			continue;
		if (--e->dests[i].refs == 0)
			e->dests[i] = e->dests[--e->ndests];
		break;
	}
	if (e->ndests == 0) {
		*slot = e->next;
		host->free(e->dests);
		host->free(e);
		d->nkeys--;
	}
}

static void direct_route(void *state, const struct amqpd_route_msg *msg, amqpd_route_emit_fn emit,
                         void *emit_ctx)
{
	struct direct *d = state;
	uint64_t h = hash_key(msg->routing_key, msg->routing_key_len);
	struct dkey *e = *find_slot(d, msg->routing_key, msg->routing_key_len, h);

	for (size_t i = 0; e && i < e->ndests; i++)
		emit(emit_ctx, e->dests[i].dest);
}

static int v1_validate(struct amqpd_table_view args, char *err, size_t errlen)
{
	struct amqpd_value v;
	memset(&v, 0, sizeof(v));
	v.struct_size = sizeof(v);
	if (host->table_get(args, "x-v1-refuse", &v)) {
		const char msg[] = "x-v1-refuse given";
		size_t n = sizeof(msg) < errlen ? sizeof(msg) : errlen;
		memcpy(err, msg, n);
		if (n)
			err[n - 1] = 0;
		return 406;
	}
	return 0;
}

static const struct amqpd_exchange_type direct_type = {
    .struct_size = sizeof(struct amqpd_exchange_type),
    .name = "x-v1-direct",
    .validate = v1_validate,
    .create = direct_create,
    .destroy = direct_destroy,
    .bind = direct_bind,
    .unbind = direct_unbind,
    .route = direct_route,
};

/* The host table must be large enough to hold every member we call. */
#define HOST_HAS(h, m) ((h)->struct_size >= offsetof(struct amqpd_host_api, m) + sizeof((h)->m))

static int direct_init(amqpd_plugin *self, const struct amqpd_host_api *h)
{
	if (!h || !HOST_HAS(h, register_exchange_type))
		return -1;
	host = h;
	return h->register_exchange_type(self, &direct_type);
}

static const struct amqpd_plugin_desc direct_desc = {
    .struct_size = sizeof(struct amqpd_plugin_desc),
    .name = "test-v1-direct",
    .version = "1.0",
    .description = "ABI 1 test plugin: a direct exchange named x-v1-direct",
    .init = direct_init,
};

AMQPD_PLUGIN_EXPORT const struct amqpd_plugin_desc *
amqpd_plugin_entry(uint32_t host_min, uint32_t host_max, uint32_t *chosen);

const struct amqpd_plugin_desc *amqpd_plugin_entry(uint32_t host_min, uint32_t host_max,
                                                   uint32_t *chosen)
{
	if (host_min > AMQPD_ABI_VERSION || host_max < AMQPD_ABI_VERSION)
		return NULL;
	if (chosen)
		*chosen = AMQPD_ABI_VERSION;
	return &direct_desc;
}
