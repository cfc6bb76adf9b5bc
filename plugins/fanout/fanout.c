/*
 * fanout.c - the "fanout" exchange type as a plugin: a message goes to every
 * bound destination, whatever its routing key and the binding keys.
 *
 * Index: an open-addressing set of destinations (linear probing,
 * backward-shift deletion) with a reference count per destination, since
 * one destination may be bound several times (different keys or
 * arguments) and must stay until its last binding goes.  route() walks the
 * slots; the table is kept at least 1/8 full so that stays proportional to
 * the number of destinations.
 *
 * Ownership: state is allocated with the host's allocator in create()/bind()
 * and freed in unbind()/destroy(); route() does not allocate.
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

struct slot {
	const void *dest; /* NULL = empty */
	size_t refs;
};

struct fanout {
	struct slot *slots;
	size_t cap; /* power of two, >= MIN_CAP */
	size_t count;
};

#define MIN_CAP 8

static size_t home(const struct fanout *f, const void *dest)
{
	/* Fibonacci hashing spreads aligned pointers over the table. */
	uint64_t x = (uint64_t)(uintptr_t)dest * 0x9E3779B97F4A7C15ULL;
	return (size_t)(x >> 32) & (f->cap - 1);
}

static size_t find(const struct fanout *f, const void *dest)
{
	size_t i = home(f, dest);
	while (f->slots[i].dest && f->slots[i].dest != dest)
		i = (i + 1) & (f->cap - 1);
	return i;
}

static int resize(struct fanout *f, size_t cap)
{
	struct slot *ns = host->calloc(cap, sizeof(*ns));
	if (!ns)
		return -1;
	struct slot *old = f->slots;
	size_t oldcap = f->cap;
	f->slots = ns;
	f->cap = cap;
	for (size_t i = 0; i < oldcap; i++) {
		if (old[i].dest)
			f->slots[find(f, old[i].dest)] = old[i];
	}
	host->free(old);
	return 0;
}

static int fanout_create(void **state, struct amqpd_table_view args)
{
	(void)args;
	struct fanout *f = host->calloc(1, sizeof(*f));
	if (!f)
		return -1;
	f->cap = MIN_CAP;
	f->slots = host->calloc(f->cap, sizeof(*f->slots));
	if (!f->slots) {
		host->free(f);
		return -1;
	}
	*state = f;
	return 0;
}

static void fanout_destroy(void *state)
{
	struct fanout *f = state;
	if (!f)
		return;
	host->free(f->slots);
	host->free(f);
}

static int fanout_bind(void *state, const struct amqpd_binding *b)
{
	struct fanout *f = state;
	size_t i = find(f, b->dest);

	if (f->slots[i].dest) {
		f->slots[i].refs++;
		return 0;
	}
	/* Keep the load at most 3/4 so probe sequences stay short. */
	if ((f->count + 1) * 4 > f->cap * 3) {
		if (resize(f, f->cap * 2) != 0)
			return -1;
		i = find(f, b->dest);
	}
	f->slots[i].dest = b->dest;
	f->slots[i].refs = 1;
	f->count++;
	return 0;
}

static void fanout_unbind(void *state, const struct amqpd_binding *b)
{
	struct fanout *f = state;
	size_t i = find(f, b->dest);

	if (!f->slots[i].dest || --f->slots[i].refs > 0)
		return;
	/* Backward-shift deletion: pull later members of the probe run into
	 * the hole unless that would move them before their home slot. */
	size_t hole = i, j = i;
	for (;;) {
		j = (j + 1) & (f->cap - 1);
		if (!f->slots[j].dest)
			break;
		size_t h = home(f, f->slots[j].dest);
		if (((j - h) & (f->cap - 1)) >= ((j - hole) & (f->cap - 1))) {
			f->slots[hole] = f->slots[j];
			hole = j;
		}
	}
	f->slots[hole].dest = NULL;
	f->slots[hole].refs = 0;
	f->count--;
	/* Shrinking is best effort: on failure the larger table still works. */
	if (f->cap > MIN_CAP && f->count * 8 < f->cap)
		(void)resize(f, f->cap / 2);
}

static void fanout_route(void *state, const struct amqpd_route_msg *msg, amqpd_route_emit_fn emit,
                         void *emit_ctx)
{
	struct fanout *f = state;
	(void)msg; /* every destination, whatever the message */
	for (size_t i = 0; i < f->cap; i++) {
		if (f->slots[i].dest)
			emit(emit_ctx, f->slots[i].dest);
	}
}

static const struct amqpd_exchange_type fanout_type = {
    .struct_size = sizeof(struct amqpd_exchange_type),
    .name = "fanout",
    .create = fanout_create,
    .destroy = fanout_destroy,
    .bind = fanout_bind,
    .unbind = fanout_unbind,
    .route = fanout_route,
};

#define HOST_HAS(h, m) ((h)->struct_size >= offsetof(struct amqpd_host_api, m) + sizeof((h)->m))

static int fanout_init(amqpd_plugin *self, const struct amqpd_host_api *h)
{
	if (!h || !HOST_HAS(h, register_exchange_type))
		return -1;
	host = h;
	return h->register_exchange_type(self, &fanout_type);
}

static const struct amqpd_plugin_desc fanout_desc = {
    .struct_size = sizeof(struct amqpd_plugin_desc),
    .name = "exchange-fanout",
    .version = "1.0",
    .description = "AMQP fanout exchange: every bound destination",
    .init = fanout_init,
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
	return &fanout_desc;
}
