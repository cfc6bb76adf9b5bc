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
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "amqpd/exchange.h"
#include "amqpd/plugin.h"

static const struct amqpd_host_api *host; /* set once by init */
static amqpd_plugin *plugin;              /* our handle, for host calls */

struct slot {
	const amqpd_dest *dest; /* NULL = empty */
	size_t refs;
};

struct fanout {
	struct slot *slots;
	size_t cap; /* power of two, >= MIN_CAP */
	size_t count;
};

#define MIN_CAP 8

static size_t home(const struct fanout *f, const amqpd_dest *dest)
{
	/* Fibonacci hashing spreads aligned pointers over the table. */
	uint64_t x = (uint64_t)(uintptr_t)dest * 0x9E3779B97F4A7C15ULL;
	return (size_t)(x >> 32) & (f->cap - 1);
}

static size_t find(const struct fanout *f, const amqpd_dest *dest)
{
	size_t i = home(f, dest);
	while (f->slots[i].dest && f->slots[i].dest != dest)
		i = (i + 1) & (f->cap - 1);
	return i;
}

static int resize(struct fanout *f, size_t cap)
{
	struct slot *ns = host->calloc(plugin, cap, sizeof(*ns));
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
	host->free(plugin, old);
	return 0;
}

static amqpd_status fanout_create(void *ud, amqpd_exchange_state **state,
                                  struct amqpd_table_view args)
{
	(void)args;
	struct fanout *f = host->calloc(plugin, 1, sizeof(*f));
	if (!f)
		return AMQPD_ERR_ERRNO(ENOMEM);
	f->cap = MIN_CAP;
	f->slots = host->calloc(plugin, f->cap, sizeof(*f->slots));
	if (!f->slots) {
		host->free(plugin, f);
		return AMQPD_ERR_ERRNO(ENOMEM);
	}
	*state = (amqpd_exchange_state *)f;
	return AMQPD_OK;
}

static void fanout_destroy(void *ud, amqpd_exchange_state *state)
{
	struct fanout *f = (void *)state;
	if (!f)
		return;
	host->free(plugin, f->slots);
	host->free(plugin, f);
}

static amqpd_status fanout_bind(void *ud, amqpd_exchange_state *state,
                                const struct amqpd_binding *b)
{
	struct fanout *f = (void *)state;
	size_t i = find(f, b->dest);

	if (f->slots[i].dest) {
		f->slots[i].refs++;
		return AMQPD_OK;
	}
	/* Keep the load at most 3/4 so probe sequences stay short. */
	if ((f->count + 1) * 4 > f->cap * 3) {
		if (resize(f, f->cap * 2) != 0)
			return AMQPD_ERR_ERRNO(ENOMEM);
		i = find(f, b->dest);
	}
	f->slots[i].dest = b->dest;
	f->slots[i].refs = 1;
	f->count++;
	return AMQPD_OK;
}

static void fanout_unbind(void *ud, amqpd_exchange_state *state, const struct amqpd_binding *b)
{
	struct fanout *f = (void *)state;
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

static amqpd_status fanout_route(void *ud, amqpd_exchange_state *state,
                                 const struct amqpd_route_msg *msg, amqpd_route_emit_fn emit,
                                 void *emit_ctx)
{
	struct fanout *f = (void *)state;
	(void)msg; /* every destination, whatever the message */
	for (size_t i = 0; i < f->cap; i++) {
		if (f->slots[i].dest)
			emit(emit_ctx, f->slots[i].dest);
	}
	return AMQPD_OK;
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

/* No options and no per-plugin state: the host table and our handle are
 * file statics (one instance per process), so userdata stays NULL. */
static amqpd_status fanout_init(amqpd_plugin *self, const struct amqpd_host_api *h,
                                const struct amqpd_option *opts, size_t nopts, void **userdata,
                                char *err, size_t errlen)
{
	(void)userdata;
	amqpd_status s = amqpd_no_options(opts, nopts, err, errlen);
	if (s != AMQPD_OK)
		return s;
	host = h;
	plugin = self;
	return h->register_exchange_type(self, &fanout_type);
}

AMQPD_PLUGIN_DEFINE("exchange-fanout", "2.0", "AMQP fanout exchange: every bound destination",
                    fanout_init, NULL);
