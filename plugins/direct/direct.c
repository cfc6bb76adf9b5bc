/*
 * direct.c - the "direct" exchange type as a plugin: a message goes to every
 * destination bound with a key byte-equal to its routing key.
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
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "amqpd/exchange.h"
#include "amqpd/plugin.h"

static const struct amqpd_host_api *host; /* set once by init */
static amqpd_plugin *plugin;              /* our handle, for host calls */

struct dref {
	const amqpd_dest *dest;
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
	struct dkey **nb = host->calloc(plugin, n, sizeof(*nb));
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
	host->free(plugin, d->buckets);
	d->buckets = nb;
	d->nbuckets = n;
	return 0;
}

static amqpd_status direct_create(void *ud, amqpd_exchange_state **state,
                                  struct amqpd_table_view args)
{
	(void)args;
	struct direct *d = host->calloc(plugin, 1, sizeof(*d));
	if (!d)
		return AMQPD_ERR_ERRNO(ENOMEM);
	d->nbuckets = 16;
	d->buckets = host->calloc(plugin, d->nbuckets, sizeof(*d->buckets));
	if (!d->buckets) {
		host->free(plugin, d);
		return AMQPD_ERR_ERRNO(ENOMEM);
	}
	*state = (amqpd_exchange_state *)d;
	return AMQPD_OK;
}

static void direct_destroy(void *ud, amqpd_exchange_state *state)
{
	struct direct *d = (void *)state;
	if (!d)
		return;
	for (size_t i = 0; i < d->nbuckets; i++) {
		struct dkey *e = d->buckets[i];
		while (e) {
			struct dkey *next = e->next;
			host->free(plugin, e->dests);
			host->free(plugin, e);
			e = next;
		}
	}
	host->free(plugin, d->buckets);
	host->free(plugin, d);
}

static amqpd_status direct_bind(void *ud, amqpd_exchange_state *state,
                                const struct amqpd_binding *b)
{
	struct direct *d = (void *)state;
	uint64_t h = hash_key(b->key, b->key_len);
	struct dkey **slot = find_slot(d, b->key, b->key_len, h);
	struct dkey *e = *slot;

	if (!e) {
		/* Grow first so a failure leaves nothing half-inserted. */
		if (d->nkeys >= d->nbuckets && grow(d) == 0)
			slot = find_slot(d, b->key, b->key_len, h);
		e = host->alloc(plugin, sizeof(*e) + b->key_len);
		if (!e)
			return AMQPD_ERR_ERRNO(ENOMEM);
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
			return AMQPD_OK;
		}
	}
	if (e->ndests == e->cap) {
		size_t cap = e->cap ? e->cap * 2 : 4;
		struct dref *nd = host->realloc(plugin, e->dests, cap * sizeof(*nd));
		if (!nd) {
			if (e->ndests == 0) { /* just created: undo */
				*slot = e->next;
				host->free(plugin, e);
				d->nkeys--;
			}
			return AMQPD_ERR_ERRNO(ENOMEM);
		}
		e->dests = nd;
		e->cap = cap;
	}
	e->dests[e->ndests].dest = b->dest;
	e->dests[e->ndests].refs = 1;
	e->ndests++;
	return AMQPD_OK;
}

static void direct_unbind(void *ud, amqpd_exchange_state *state, const struct amqpd_binding *b)
{
	struct direct *d = (void *)state;
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
		host->free(plugin, e->dests);
		host->free(plugin, e);
		d->nkeys--;
	}
}

static amqpd_status direct_route(void *ud, amqpd_exchange_state *state,
                                 const struct amqpd_route_msg *msg, amqpd_route_emit_fn emit,
                                 void *emit_ctx)
{
	struct direct *d = (void *)state;
	uint64_t h = hash_key(msg->routing_key, msg->routing_key_len);
	struct dkey *e = *find_slot(d, msg->routing_key, msg->routing_key_len, h);

	for (size_t i = 0; e && i < e->ndests; i++)
		emit(emit_ctx, e->dests[i].dest);
	return AMQPD_OK;
}

static const struct amqpd_exchange_type direct_type = {
    .struct_size = sizeof(struct amqpd_exchange_type),
    .name = "direct",
    .create = direct_create,
    .destroy = direct_destroy,
    .bind = direct_bind,
    .unbind = direct_unbind,
    .route = direct_route,
};

/* No options and no per-plugin state: the host table and our handle are
 * file statics (one instance per process), so userdata stays NULL. */
static amqpd_status direct_init(amqpd_plugin *self, const struct amqpd_host_api *h,
                                const struct amqpd_option *opts, size_t nopts, void **userdata,
                                char *err, size_t errlen)
{
	(void)userdata;
	amqpd_status s = amqpd_no_options(opts, nopts, err, errlen);
	if (s != AMQPD_OK)
		return s;
	host = h;
	plugin = self;
	return h->register_exchange_type(self, &direct_type);
}

AMQPD_PLUGIN_DEFINE("exchange-direct", "2.0", "AMQP direct exchange: exact routing-key match",
                    direct_init, NULL);
