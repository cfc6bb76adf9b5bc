/*
 * random.c - the "x-random" exchange type as a plugin (RabbitMQ 4.3 has it
 * built in; before, the rabbitmq_random_exchange plugin): each message goes
 * to one bound destination picked uniformly at random.  Routing keys,
 * binding keys and arguments are ignored; no destination, no route.
 *
 * Index: the distinct destinations in a dense array (route() picks an
 * index), and an open-addressing set (linear probing, backward-shift
 * deletion, as in fanout.c) from destination to its array index and
 * reference count, since one destination may be bound several times
 * (different keys or arguments), counts once and must stay until its last
 * binding goes.  Unbinding the last reference moves the array's last
 * destination into the hole.
 *
 * Randomness: xoshiro256** (fast, 256 bits of state, not cryptographic),
 * seeded once per process in init from getrandom() (the clock and the pid
 * if that fails), so brokers and restarts do not repeat each other's
 * choices; one generator for every exchange of the type.  A pick is made
 * unbiased by rejecting the few draws past the last whole multiple of N.
 *
 * Ownership: state is allocated with the host's allocator in create()/bind()
 * and freed in unbind()/destroy(); route() does not allocate.
 *
 * Threading: every callback runs on the broker's event-loop thread (ABI
 * contract), which is also what makes the shared generator safe; the host
 * API pointer and the seed are written once in init.
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "amqpd/exchange.h"
#include "amqpd/plugin.h"

static const struct amqpd_host_api *host; /* set once by init */
static amqpd_plugin *plugin;              /* our handle, for host calls */
static uint64_t rng[4];                   /* xoshiro256** state, seeded by init */

struct slot {
	const amqpd_dest *dest; /* NULL = empty */
	size_t refs;
	size_t idx; /* in dests[] */
};

struct rnd {
	struct slot *slots;
	size_t cap; /* power of two, >= MIN_CAP */
	size_t count;
	const amqpd_dest **dests; /* dense: count used, dcap allocated */
	size_t dcap;
};

#define MIN_CAP 8

/* ---- the generator ------------------------------------------------------- */

static uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

static uint64_t rng_next(void)
{
	uint64_t r = rotl(rng[1] * 5, 7) * 9, t = rng[1] << 17;
	rng[2] ^= rng[0];
	rng[3] ^= rng[1];
	rng[1] ^= rng[2];
	rng[0] ^= rng[3];
	rng[2] ^= t;
	rng[3] = rotl(rng[3], 45);
	return r;
}

/* Uniform in [0, n), n > 0: draws below 2^64 mod n would favour the low
 * values, so they are drawn again (at most one in two, usually none). */
static uint64_t rng_below(uint64_t n)
{
	uint64_t limit = (0 - n) % n;
	uint64_t r;
	do
		r = rng_next();
	while (r < limit);
	return r % n;
}

/* splitmix64 spreads a seed of any quality over the four state words
 * (xoshiro's state must not be all zero, which this cannot give). */
static uint64_t splitmix(uint64_t *x)
{
	uint64_t z = (*x += 0x9E3779B97F4A7C15ULL);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	return z ^ (z >> 31);
}

static void rng_seed(void)
{
	uint64_t seed = 0;
	if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) != (ssize_t)sizeof(seed)) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		seed = (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
		seed ^= (uint64_t)getpid() << 32;
	}
	for (int i = 0; i < 4; i++)
		rng[i] = splitmix(&seed);
}

/* ---- the destination set --------------------------------------------------- */

static size_t home(const struct rnd *r, const amqpd_dest *dest)
{
	/* Fibonacci hashing spreads aligned pointers over the table. */
	uint64_t x = (uint64_t)(uintptr_t)dest * 0x9E3779B97F4A7C15ULL;
	return (size_t)(x >> 32) & (r->cap - 1);
}

static size_t find(const struct rnd *r, const amqpd_dest *dest)
{
	size_t i = home(r, dest);
	while (r->slots[i].dest && r->slots[i].dest != dest)
		i = (i + 1) & (r->cap - 1);
	return i;
}

static int resize(struct rnd *r, size_t cap)
{
	struct slot *ns = host->calloc(plugin, cap, sizeof(*ns));
	if (!ns)
		return -1;
	struct slot *old = r->slots;
	size_t oldcap = r->cap;
	r->slots = ns;
	r->cap = cap;
	for (size_t i = 0; i < oldcap; i++) {
		if (old[i].dest)
			r->slots[find(r, old[i].dest)] = old[i];
	}
	host->free(plugin, old);
	return 0;
}

static amqpd_status rnd_create(void *ud, amqpd_exchange_state **state, struct amqpd_table_view args)
{
	(void)args; /* RabbitMQ's x-random takes none either */
	struct rnd *r = host->calloc(plugin, 1, sizeof(*r));
	if (!r)
		return AMQPD_ERR_ERRNO(ENOMEM);
	r->cap = MIN_CAP;
	r->slots = host->calloc(plugin, r->cap, sizeof(*r->slots));
	if (!r->slots) {
		host->free(plugin, r);
		return AMQPD_ERR_ERRNO(ENOMEM);
	}
	*state = (amqpd_exchange_state *)r;
	return AMQPD_OK;
}

static void rnd_destroy(void *ud, amqpd_exchange_state *state)
{
	struct rnd *r = (void *)state;
	if (!r)
		return;
	host->free(plugin, r->dests);
	host->free(plugin, r->slots);
	host->free(plugin, r);
}

static amqpd_status rnd_bind(void *ud, amqpd_exchange_state *state, const struct amqpd_binding *b)
{
	struct rnd *r = (void *)state;
	size_t i = find(r, b->dest);

	if (r->slots[i].dest) {
		r->slots[i].refs++;
		return AMQPD_OK;
	}
	if (r->count == r->dcap) {
		size_t dcap = r->dcap ? r->dcap * 2 : MIN_CAP;
		const amqpd_dest **nd = host->realloc(plugin, r->dests, dcap * sizeof(*nd));
		if (!nd)
			return AMQPD_ERR_ERRNO(ENOMEM);
		r->dests = nd;
		r->dcap = dcap;
	}
	/* Keep the load at most 3/4 so probe sequences stay short. */
	if ((r->count + 1) * 4 > r->cap * 3) {
		if (resize(r, r->cap * 2) != 0)
			return AMQPD_ERR_ERRNO(ENOMEM);
		i = find(r, b->dest);
	}
	r->slots[i] = (struct slot){b->dest, 1, r->count};
	r->dests[r->count++] = b->dest;
	return AMQPD_OK;
}

static void rnd_unbind(void *ud, amqpd_exchange_state *state, const struct amqpd_binding *b)
{
	struct rnd *r = (void *)state;
	size_t i = find(r, b->dest);

	if (!r->slots[i].dest || --r->slots[i].refs > 0)
		return;
	/* The last destination of the array fills the hole this one leaves. */
	size_t idx = r->slots[i].idx, last = r->count - 1;
	if (idx != last) {
		r->dests[idx] = r->dests[last];
		r->slots[find(r, r->dests[idx])].idx = idx;
	}
	/* Backward-shift deletion: pull later members of the probe run into
	 * the hole unless that would move them before their home slot. */
	size_t hole = i, j = i;
	for (;;) {
		j = (j + 1) & (r->cap - 1);
		if (!r->slots[j].dest)
			break;
		size_t h = home(r, r->slots[j].dest);
		if (((j - h) & (r->cap - 1)) >= ((j - hole) & (r->cap - 1))) {
			r->slots[hole] = r->slots[j];
			hole = j;
		}
	}
	r->slots[hole] = (struct slot){NULL, 0, 0};
	r->count--;
	/* Shrinking is best effort: on failure the larger tables still work. */
	if (r->cap > MIN_CAP && r->count * 8 < r->cap)
		(void)resize(r, r->cap / 2);
	if (r->dcap > MIN_CAP && r->count * 4 < r->dcap) {
		const amqpd_dest **nd = host->realloc(plugin, r->dests, r->dcap / 2 * sizeof(*nd));
		if (nd) {
			r->dests = nd;
			r->dcap /= 2;
		}
	}
}

static amqpd_status rnd_route(void *ud, amqpd_exchange_state *state,
                              const struct amqpd_route_msg *msg, amqpd_route_emit_fn emit,
                              void *emit_ctx)
{
	struct rnd *r = (void *)state;
	(void)msg; /* any destination, whatever the message */
	if (r->count == 1)
		emit(emit_ctx, r->dests[0]);
	else if (r->count > 1)
		emit(emit_ctx, r->dests[rng_below(r->count)]);
	return AMQPD_OK;
}

static const struct amqpd_exchange_type random_type = {
    .struct_size = sizeof(struct amqpd_exchange_type),
    .name = "x-random",
    .create = rnd_create,
    .destroy = rnd_destroy,
    .bind = rnd_bind,
    .unbind = rnd_unbind,
    .route = rnd_route,
};

/* No options and no per-plugin state: the host table, our handle and the
 * generator are file statics (one instance per process), so userdata
 * stays NULL. */
static amqpd_status rnd_init(amqpd_plugin *self, const struct amqpd_host_api *h,
                             const struct amqpd_option *opts, size_t nopts, void **userdata,
                             char *err, size_t errlen)
{
	(void)userdata;
	amqpd_status s = amqpd_no_options(opts, nopts, err, errlen);
	if (s != AMQPD_OK)
		return s;
	host = h;
	plugin = self;
	rng_seed();
	return h->register_exchange_type(self, &random_type);
}

AMQPD_PLUGIN_DEFINE("exchange-random", "2.0",
                    "x-random: one bound destination, picked uniformly at random", rnd_init, NULL);
