/*
 * topic.c - the "topic" exchange type as a plugin, with RabbitMQ's matching
 * rules: keys are words separated by '.', an empty key has no words ("a."
 * is "a" and "", "." is two empty words); in a binding key '*' matches
 * exactly one word and '#' zero or more words.
 *
 * Index: a trie of binding-key words.  A node's literal-word children live
 * in one per-exchange hash table keyed by (parent, word); its '*' and '#'
 * children also have direct pointers.  Each node holds the destinations
 * bound with the key that ends there, with a reference count (one
 * destination may be bound with one key several times, different args).
 *
 * Matching is a depth-first walk of the trie along the routing key's words.
 * A '#' node can be entered at several word positions; to keep pathological
 * bindings ("#.a.#.a.#...") polynomial, each '#' node remembers, per route
 * call (generation), the lowest position it was entered at: the positions
 * from there to the end have all been explored, so they are not walked
 * again.  That also means every node emits at most once per message.
 * Recursion depth is bounded by the trie depth (<= 256 words in a
 * 255-byte key) and route() uses only a fixed stack array, never the heap.
 *
 * Ownership: nodes and the edge table are allocated with the host's
 * allocator in create()/bind() and freed in unbind()/destroy().
 *
 * Threading: every callback runs on the broker's event-loop thread (ABI
 * contract).  route() writes the per-node generation marks, so one exchange
 * must not be routed through from two threads at once; a nested route()
 * (from inside emit) is safe: it only makes the outer walk redo some work.
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

/* A 255-byte key has at most 256 words (all empty: 255 dots). */
#define MAX_WORDS 256

enum { K_ROOT, K_WORD, K_STAR, K_HASH };

struct dref {
	const amqpd_dest *dest;
	size_t refs;
};

struct tnode {
	struct tnode *parent;
	struct tnode *hnext;       /* chain in the edge table */
	struct tnode *star, *hash; /* wildcard children, also in the table */
	uint64_t hkey;             /* edge-table hash of (parent, word) */
	size_t nkids;              /* children of every kind */
	struct dref *dests;
	size_t ndests, cap;
	uint64_t gen;  /* '#' nodes: route generation minpos belongs to */
	size_t minpos; /* '#' nodes: lowest word position entered at */
	int kind;
	size_t wlen;
	char word[]; /* K_WORD only */
};

struct topic {
	struct tnode *root;   /* separate: a struct with a flexible member cannot nest */
	struct tnode **edges; /* every non-root node, by (parent, word) */
	size_t nbuckets;      /* power of two */
	size_t nnodes;
	uint64_t gen;
};

struct word {
	const char *p;
	size_t len;
	uint64_t h;
};

static uint64_t hash_bytes(const char *p, size_t len)
{
	uint64_t h = 14695981039346656037ULL;
	for (size_t i = 0; i < len; i++) {
		h ^= (uint8_t)p[i];
		h *= 1099511628211ULL;
	}
	return h;
}

static uint64_t edge_hash(const struct tnode *parent, uint64_t wordhash)
{
	uint64_t x = (uint64_t)(uintptr_t)parent * 0x9E3779B97F4A7C15ULL;
	return wordhash ^ (x >> 17) ^ x;
}

/* Word hashes for wildcard nodes: distinct from any literal word's hash
 * only by convention; lookups also compare the kind. */
#define STAR_HASH 0x5354415253544152ULL
#define HASH_HASH 0x4841534848415348ULL

/* Split a key into words; returns the count, or MAX_WORDS + 1 if more. */
static size_t split(const char *key, size_t len, struct word *w)
{
	size_t n = 0, start = 0;

	if (len == 0)
		return 0;
	for (size_t i = 0; i <= len; i++) {
		if (i < len && key[i] != '.')
			continue;
		if (n == MAX_WORDS)
			return MAX_WORDS + 1;
		w[n].p = key + start;
		w[n].len = i - start;
		w[n].h = hash_bytes(w[n].p, w[n].len);
		n++;
		start = i + 1;
	}
	return n;
}

static int word_kind(const struct word *w)
{
	if (w->len == 1 && w->p[0] == '*')
		return K_STAR;
	if (w->len == 1 && w->p[0] == '#')
		return K_HASH;
	return K_WORD;
}

static struct tnode *lookup_word(const struct topic *t, const struct tnode *parent,
                                 const struct word *w)
{
	uint64_t h = edge_hash(parent, w->h);
	for (struct tnode *n = t->edges[h & (t->nbuckets - 1)]; n; n = n->hnext) {
		if (n->hkey == h && n->parent == parent && n->kind == K_WORD && n->wlen == w->len &&
		    memcmp(n->word, w->p, w->len) == 0)
			return n;
	}
	return NULL;
}

static void table_insert(struct topic *t, struct tnode *n)
{
	struct tnode **slot = &t->edges[n->hkey & (t->nbuckets - 1)];
	n->hnext = *slot;
	*slot = n;
}

static void table_remove(struct topic *t, struct tnode *n)
{
	struct tnode **pp = &t->edges[n->hkey & (t->nbuckets - 1)];
	while (*pp && *pp != n)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = n->hnext;
}

static void grow_table(struct topic *t)
{
	size_t nb = t->nbuckets * 2;
	struct tnode **ne = host->calloc(plugin, nb, sizeof(*ne));
	if (!ne)
		return; /* longer chains, still correct */
	struct tnode **old = t->edges;
	size_t oldn = t->nbuckets;
	t->edges = ne;
	t->nbuckets = nb;
	for (size_t i = 0; i < oldn; i++) {
		struct tnode *n = old[i];
		while (n) {
			struct tnode *next = n->hnext;
			table_insert(t, n);
			n = next;
		}
	}
	host->free(plugin, old);
}

/* The child of `parent` for word w, created if `create`. */
static struct tnode *child(struct topic *t, struct tnode *parent, const struct word *w, bool create)
{
	int kind = word_kind(w);
	struct tnode *c;

	if (kind == K_STAR)
		c = parent->star;
	else if (kind == K_HASH)
		c = parent->hash;
	else
		c = lookup_word(t, parent, w);
	if (c || !create)
		return c;

	size_t wlen = kind == K_WORD ? w->len : 0;
	c = host->alloc(plugin, sizeof(*c) + wlen);
	if (!c)
		return NULL;
	memset(c, 0, sizeof(*c));
	c->parent = parent;
	c->kind = kind;
	c->wlen = wlen;
	memcpy(c->word, w->p, wlen);
	c->hkey = edge_hash(parent, kind == K_STAR ? STAR_HASH : kind == K_HASH ? HASH_HASH : w->h);
	if (t->nnodes >= t->nbuckets)
		grow_table(t);
	table_insert(t, c);
	t->nnodes++;
	parent->nkids++;
	if (kind == K_STAR)
		parent->star = c;
	else if (kind == K_HASH)
		parent->hash = c;
	return c;
}

/* Free empty nodes from n up towards the root. */
static void prune(struct topic *t, struct tnode *n)
{
	while (n != t->root && n->ndests == 0 && n->nkids == 0) {
		struct tnode *parent = n->parent;
		if (parent->star == n)
			parent->star = NULL;
		if (parent->hash == n)
			parent->hash = NULL;
		parent->nkids--;
		table_remove(t, n);
		t->nnodes--;
		host->free(plugin, n->dests);
		host->free(plugin, n);
		n = parent;
	}
}

static amqpd_status topic_create(void *ud, amqpd_exchange_state **state,
                                 struct amqpd_table_view args)
{
	(void)args;
	struct topic *t = host->calloc(plugin, 1, sizeof(*t));
	if (!t)
		return AMQPD_ERR_ERRNO(ENOMEM);
	t->root = host->calloc(plugin, 1, sizeof(*t->root));
	t->nbuckets = 16;
	t->edges = host->calloc(plugin, t->nbuckets, sizeof(*t->edges));
	if (!t->root || !t->edges) {
		host->free(plugin, t->root);
		host->free(plugin, t->edges);
		host->free(plugin, t);
		return AMQPD_ERR_ERRNO(ENOMEM);
	}
	t->root->kind = K_ROOT;
	*state = (amqpd_exchange_state *)t;
	return AMQPD_OK;
}

static void topic_destroy(void *ud, amqpd_exchange_state *state)
{
	struct topic *t = (void *)state;
	if (!t)
		return;
	for (size_t i = 0; i < t->nbuckets; i++) {
		struct tnode *n = t->edges[i];
		while (n) {
			struct tnode *next = n->hnext;
			host->free(plugin, n->dests);
			host->free(plugin, n);
			n = next;
		}
	}
	host->free(plugin, t->root->dests);
	host->free(plugin, t->root);
	host->free(plugin, t->edges);
	host->free(plugin, t);
}

static amqpd_status topic_bind(void *ud, amqpd_exchange_state *state, const struct amqpd_binding *b)
{
	struct topic *t = (void *)state;
	struct word w[MAX_WORDS];
	size_t n = split(b->key, b->key_len, w);
	struct tnode *node = t->root;

	if (n > MAX_WORDS)
		return AMQPD_ERR_ERRNO(ENOMEM);
	for (size_t i = 0; i < n; i++) {
		struct tnode *c = child(t, node, &w[i], true);
		if (!c) {
			prune(t, node);
			return AMQPD_ERR_ERRNO(ENOMEM);
		}
		node = c;
	}
	for (size_t i = 0; i < node->ndests; i++) {
		if (node->dests[i].dest == b->dest) {
			node->dests[i].refs++;
			return AMQPD_OK;
		}
	}
	if (node->ndests == node->cap) {
		size_t cap = node->cap ? node->cap * 2 : 2;
		struct dref *nd = host->realloc(plugin, node->dests, cap * sizeof(*nd));
		if (!nd) {
			prune(t, node);
			return AMQPD_ERR_ERRNO(ENOMEM);
		}
		node->dests = nd;
		node->cap = cap;
	}
	node->dests[node->ndests].dest = b->dest;
	node->dests[node->ndests].refs = 1;
	node->ndests++;
	return AMQPD_OK;
}

static void topic_unbind(void *ud, amqpd_exchange_state *state, const struct amqpd_binding *b)
{
	struct topic *t = (void *)state;
	struct word w[MAX_WORDS];
	size_t n = split(b->key, b->key_len, w);
	struct tnode *node = t->root;

	if (n > MAX_WORDS)
		return;
	for (size_t i = 0; i < n && node; i++)
		node = child(t, node, &w[i], false);
	if (!node)
		return;
	for (size_t i = 0; i < node->ndests; i++) {
		if (node->dests[i].dest != b->dest)
			continue;
		if (--node->dests[i].refs == 0)
			node->dests[i] = node->dests[--node->ndests];
		break;
	}
	if (node->ndests == 0) {
		/* The root is never pruned: give its array back here. */
		host->free(plugin, node->dests);
		node->dests = NULL;
		node->cap = 0;
	}
	prune(t, node);
}

struct walk {
	const struct topic *t;
	const struct word *w;
	size_t n;
	uint64_t gen;
	amqpd_route_emit_fn emit;
	void *emit_ctx;
};

static void visit(const struct walk *k, struct tnode *node, size_t i);

/* Enter '#' node h at position i: it may swallow words i..j-1 for any j. */
static void visit_hash(const struct walk *k, struct tnode *h, size_t i)
{
	size_t done = h->gen == k->gen ? h->minpos : k->n + 1;
	if (i >= done)
		return; /* positions i..n were all explored already */
	h->gen = k->gen;
	h->minpos = i;
	for (size_t j = i; j < done; j++)
		visit(k, h, j);
}

static void visit(const struct walk *k, struct tnode *node, size_t i)
{
	if (i == k->n) {
		for (size_t d = 0; d < node->ndests; d++)
			k->emit(k->emit_ctx, node->dests[d].dest);
	}
	if (node->hash)
		visit_hash(k, node->hash, i);
	if (i < k->n) {
		struct tnode *c = lookup_word(k->t, node, &k->w[i]);
		if (c)
			visit(k, c, i + 1);
		if (node->star)
			visit(k, node->star, i + 1);
	}
}

static amqpd_status topic_route(void *ud, amqpd_exchange_state *state,
                                const struct amqpd_route_msg *msg, amqpd_route_emit_fn emit,
                                void *emit_ctx)
{
	struct topic *t = (void *)state;
	struct word w[MAX_WORDS];
	size_t n = split(msg->routing_key, msg->routing_key_len, w);

	if (n > MAX_WORDS)
		return AMQPD_OK; /* impossible within the ABI's 255-byte limit */
	struct walk k = {t, w, n, ++t->gen, emit, emit_ctx};
	visit(&k, t->root, 0);
	return AMQPD_OK;
}

static const struct amqpd_exchange_type topic_type = {
    .struct_size = sizeof(struct amqpd_exchange_type),
    .name = "topic",
    .create = topic_create,
    .destroy = topic_destroy,
    .bind = topic_bind,
    .unbind = topic_unbind,
    .route = topic_route,
};

/* No options and no per-plugin state: the host table and our handle are
 * file statics (one instance per process), so userdata stays NULL. */
static amqpd_status topic_init(amqpd_plugin *self, const struct amqpd_host_api *h,
                               const struct amqpd_option *opts, size_t nopts, void **userdata,
                               char *err, size_t errlen)
{
	(void)userdata;
	amqpd_status s = amqpd_no_options(opts, nopts, err, errlen);
	if (s != AMQPD_OK)
		return s;
	host = h;
	plugin = self;
	return h->register_exchange_type(self, &topic_type);
}

AMQPD_PLUGIN_DEFINE("exchange-topic", "2.0",
                    "AMQP topic exchange: '.'-separated words, '*' and '#' wildcards", topic_init,
                    NULL);
