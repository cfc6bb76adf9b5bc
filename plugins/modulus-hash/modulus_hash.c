/*
 * modulus_hash.c - the "x-modulus-hash" exchange type as a plugin (RabbitMQ
 * 4.3 has it built in; before, the sharding plugin): each message goes to
 * exactly one bound destination, number hash(routing key) mod N in a fixed
 * order of the N distinct destinations.  Binding keys and arguments are
 * ignored; no destination, no route.
 *
 * Stability: the same bindings must send a key to the same destination,
 * also after a restart, when destinations are new objects at new
 * addresses.  So the hash is a fixed function of the key alone (FNV-1a 64
 * with a final mix, never seeded), and the destinations are ordered by when
 * their oldest live binding was made: each binding gets a sequence number,
 * a destination ranks by the smallest of its live bindings'.  At recovery
 * the host rebinds from definitions.json in the order the bindings were
 * made (server/store/definitions.c writes each exchange's bindings oldest
 * first and replays the file in order), so the replayed sequence numbers
 * are in the same relative order and the destinations in the same order.
 * Ranking by the oldest *live* binding (not the first one ever) matters
 * when a destination bound twice loses its older binding: the replay only
 * sees the younger one.  RabbitMQ orders its destinations by its own index
 * instead; the ABI gives a type no destination names.  Transient bindings
 * (to non-durable queues) are not kept across a restart, so N changes then.
 *
 * Index: the distinct destinations in an array sorted by rank (route() is
 * one hash and one index), each with its bindings (a copy of key and
 * arguments, to tell which one an unbind removes) and their count, since a
 * destination bound several times counts once and stays until its last
 * binding goes.  bind/unbind are linear in the number of destinations.
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

/* One binding of a destination: its number and what identifies it. */
struct mbinding {
	struct mbinding *next;
	uint64_t seq;
	size_t key_len, args_len;
	unsigned char data[]; /* key bytes, then argument bytes */
};

struct member {
	const amqpd_dest *dest;
	uint64_t rank; /* smallest seq in bindings */
	size_t refs;   /* bindings in the list */
	struct mbinding *bindings;
};

struct mhash {
	struct member *members; /* sorted by rank, ascending */
	size_t count, cap;
	uint64_t next_seq;
};

#define MIN_CAP 4

/* FNV-1a 64 spreads poorly in its low bits, which the modulus uses; the
 * finaliser of MurmurHash3 mixes every input bit into all of them. */
static uint64_t key_hash(const char *key, size_t len)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)key[i];
		h *= 0x100000001b3ULL;
	}
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return h;
}

static size_t find(const struct mhash *m, const amqpd_dest *dest)
{
	size_t i = 0;
	while (i < m->count && m->members[i].dest != dest)
		i++;
	return i; /* m->count: not there */
}

static bool same_binding(const struct mbinding *mb, const struct amqpd_binding *b)
{
	return mb->key_len == b->key_len && mb->args_len == b->args.len &&
	       memcmp(mb->data, b->key, b->key_len) == 0 &&
	       (b->args.len == 0 || memcmp(mb->data + b->key_len, b->args.data, b->args.len) == 0);
}

static amqpd_status mh_create(void *ud, amqpd_exchange_state **state, struct amqpd_table_view args)
{
	(void)args; /* RabbitMQ's x-modulus-hash takes none either */
	struct mhash *m = host->calloc(plugin, 1, sizeof(*m));
	if (!m)
		return AMQPD_ERR_ERRNO(ENOMEM);
	*state = (amqpd_exchange_state *)m;
	return AMQPD_OK;
}

static void free_member(struct member *mem)
{
	for (struct mbinding *mb = mem->bindings, *next; mb; mb = next) {
		next = mb->next;
		host->free(plugin, mb);
	}
}

static void mh_destroy(void *ud, amqpd_exchange_state *state)
{
	struct mhash *m = (void *)state;
	if (!m)
		return;
	for (size_t i = 0; i < m->count; i++)
		free_member(&m->members[i]);
	host->free(plugin, m->members);
	host->free(plugin, m);
}

static amqpd_status mh_bind(void *ud, amqpd_exchange_state *state, const struct amqpd_binding *b)
{
	struct mhash *m = (void *)state;
	size_t i = find(m, b->dest);

	struct mbinding *mb = host->alloc(plugin, sizeof(*mb) + b->key_len + b->args.len);
	if (!mb)
		return AMQPD_ERR_ERRNO(ENOMEM);
	mb->key_len = b->key_len;
	mb->args_len = b->args.len;
	memcpy(mb->data, b->key, b->key_len);
	if (b->args.len)
		memcpy(mb->data + b->key_len, b->args.data, b->args.len);
	if (i == m->count && m->count == m->cap) {
		size_t cap = m->cap ? m->cap * 2 : MIN_CAP;
		struct member *nm = host->realloc(plugin, m->members, cap * sizeof(*nm));
		if (!nm) {
			host->free(plugin, mb);
			return AMQPD_ERR_ERRNO(ENOMEM);
		}
		m->members = nm;
		m->cap = cap;
	}
	/* Numbered only once it cannot fail, so numbers follow the host's
	 * successful binds. */
	mb->seq = m->next_seq++;
	if (i == m->count) {
		/* The newest number: a new destination sorts last. */
		m->members[m->count++] = (struct member){b->dest, mb->seq, 0, NULL};
	}
	/* A later binding of a known destination leaves its rank alone. */
	struct member *mem = &m->members[i];
	mb->next = mem->bindings;
	mem->bindings = mb;
	mem->refs++;
	return AMQPD_OK;
}

static void mh_unbind(void *ud, amqpd_exchange_state *state, const struct amqpd_binding *b)
{
	struct mhash *m = (void *)state;
	size_t i = find(m, b->dest);
	if (i == m->count)
		return;
	struct member *mem = &m->members[i];
	struct mbinding **pp = &mem->bindings;
	while (*pp && !same_binding(*pp, b))
		pp = &(*pp)->next;
	if (!*pp)
		return; /* not one of ours (the host only unbinds what it bound) */
	struct mbinding *gone = *pp;
	*pp = gone->next;
	mem->refs--;
	uint64_t seq = gone->seq;
	host->free(plugin, gone);

	if (mem->refs == 0) {
		memmove(&m->members[i], &m->members[i + 1], (m->count - i - 1) * sizeof(*mem));
		m->count--;
		/* Shrinking is best effort: on failure the larger array still
		 * works. */
		if (m->cap > MIN_CAP && m->count * 4 < m->cap) {
			struct member *nm =
			    host->realloc(plugin, m->members, m->cap / 2 * sizeof(*nm));
			if (nm) {
				m->members = nm;
				m->cap /= 2;
			}
		}
		return;
	}
	if (seq != mem->rank)
		return;
	/* Its oldest binding went: it now ranks by the next oldest, as a
	 * replay of the remaining bindings would place it; move it later. */
	struct member moved = *mem;
	moved.rank = UINT64_MAX;
	for (const struct mbinding *mb = moved.bindings; mb; mb = mb->next)
		if (mb->seq < moved.rank)
			moved.rank = mb->seq;
	size_t j = i;
	while (j + 1 < m->count && m->members[j + 1].rank < moved.rank) {
		m->members[j] = m->members[j + 1];
		j++;
	}
	m->members[j] = moved;
}

static amqpd_status mh_route(void *ud, amqpd_exchange_state *state,
                             const struct amqpd_route_msg *msg, amqpd_route_emit_fn emit,
                             void *emit_ctx)
{
	struct mhash *m = (void *)state;
	if (m->count == 0)
		return AMQPD_OK;
	uint64_t h = key_hash(msg->routing_key, msg->routing_key_len);
	emit(emit_ctx, m->members[h % m->count].dest);
	return AMQPD_OK;
}

static const struct amqpd_exchange_type modulus_hash_type = {
    .struct_size = sizeof(struct amqpd_exchange_type),
    .name = "x-modulus-hash",
    .create = mh_create,
    .destroy = mh_destroy,
    .bind = mh_bind,
    .unbind = mh_unbind,
    .route = mh_route,
};

/* No options and no per-plugin state: the host table and our handle are
 * file statics (one instance per process), so userdata stays NULL. */
static amqpd_status mh_init(amqpd_plugin *self, const struct amqpd_host_api *h,
                            const struct amqpd_option *opts, size_t nopts, void **userdata,
                            char *err, size_t errlen)
{
	(void)userdata;
	amqpd_status s = amqpd_no_options(opts, nopts, err, errlen);
	if (s != AMQPD_OK)
		return s;
	host = h;
	plugin = self;
	return h->register_exchange_type(self, &modulus_hash_type);
}

AMQPD_PLUGIN_DEFINE("exchange-modulus-hash", "2.0",
                    "x-modulus-hash: one destination, hash of the routing key mod their number",
                    mh_init, NULL);
