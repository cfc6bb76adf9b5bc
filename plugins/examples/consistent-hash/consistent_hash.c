/*
 * consistent_hash.c - an "x-consistent-hash" exchange type for amqpd, built
 * out of tree against the installed plugin headers only (pkg-config
 * amqpd-plugin).  It behaves like RabbitMQ's
 * rabbitmq_consistent_hash_exchange:
 *
 *   - a binding key is a weight: a positive integer; the destination gets
 *     that many buckets (validate_binding refuses anything else with 406);
 *   - each message goes to exactly one destination, chosen by hashing its
 *     routing key, or the value of the header named by the exchange
 *     argument "hash-header" (a missing header hashes like an empty value,
 *     so such messages all go to one destination);
 *   - buckets are numbered in binding order and a message's bucket is
 *     picked with jump consistent hashing (Lamping & Veach), as RabbitMQ
 *     does; removing a binding shifts later buckets down, so removing the
 *     most recent binding moves only the keys that were on it.
 *
 * "hash-property" (RabbitMQ: message_id, correlation_id, timestamp) is
 * refused: the ABI gives exchange types no message properties.
 *
 * It speaks plugin ABI version 2 and shows its parts: options parsed in
 * init (`--plugin-opt exchange-consistent-hash.max_weight=N` caps a
 * binding's weight; default 2^31 - 1), a userdata struct (the host table,
 * our handle, the options) that every callback receives, and amqpd_status
 * results.
 *
 * Ownership: the userdata is allocated in init and freed in fini; each
 * exchange's state (allocated with the host's allocator in create()/bind()
 * and freed in unbind()/destroy()) points at it.  route() does not
 * allocate.  Threading: every callback runs on the broker's event-loop
 * thread.
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <amqpd/exchange.h>
#include <amqpd/plugin.h>

/* Jump hashing takes a 32-bit bucket count. */
#define MAX_BUCKETS 0x7fffffffULL

/* The plugin's userdata: what every callback needs. */
struct chx_plugin {
	const struct amqpd_host_api *host;
	amqpd_plugin *self;
	uint64_t max_weight; /* option max_weight */
};

struct member {
	const amqpd_dest *dest;
	uint64_t weight;
	uint64_t end; /* buckets [end - weight, end) are this binding's */
};

struct chx {
	const struct chx_plugin *pl;
	struct member *m;
	size_t n, cap;
	bool by_header;
	char header[256]; /* header name (shortstr), NUL-terminated */
};

static void value_init(struct amqpd_value *v)
{
	memset(v, 0, sizeof(*v));
	v->struct_size = sizeof(*v);
}

/* Parse a weight as Erlang's list_to_integer would: [+-]digits.
 * 1 = ok, 0 = not an integer, -1 = below 1, -2 = too large. */
static int parse_weight(const char *k, size_t len, uint64_t max, uint64_t *out)
{
	size_t i = 0;
	bool neg = false;
	uint64_t v = 0;

	if (len > 0 && (k[0] == '+' || k[0] == '-')) {
		neg = k[0] == '-';
		i = 1;
	}
	if (i == len)
		return 0;
	for (; i < len; i++) {
		if (k[i] < '0' || k[i] > '9')
			return 0;
		if (v <= MAX_BUCKETS)
			v = v * 10 + (uint64_t)(k[i] - '0');
	}
	if (neg || v == 0)
		return -1;
	if (v > max)
		return -2;
	*out = v;
	return 1;
}

static uint64_t total(const struct chx *c)
{
	return c->n ? c->m[c->n - 1].end : 0;
}

static void renumber(struct chx *c)
{
	uint64_t end = 0;
	for (size_t i = 0; i < c->n; i++) {
		end += c->m[i].weight;
		c->m[i].end = end;
	}
}

static amqpd_status chx_validate(void *ud, struct amqpd_table_view args, char *err, size_t errlen)
{
	const struct chx_plugin *pl = ud;
	struct amqpd_value hdr, prop;
	bool has_hdr, has_prop;

	value_init(&hdr);
	value_init(&prop);
	has_hdr = pl->host->table_get(args, "hash-header", &hdr);
	has_prop = pl->host->table_get(args, "hash-property", &prop);
	if (has_hdr && has_prop) {
		snprintf(err, errlen, "hash-header and hash-property are mutually exclusive");
		return AMQPD_ERR_PRECONDITION_FAILED;
	}
	if (has_hdr && (hdr.type != AMQPD_VALUE_LONGSTR || hdr.len == 0 || hdr.len > 255)) {
		snprintf(err, errlen, "hash-header must be a header name (a non-empty string)");
		return AMQPD_ERR_PRECONDITION_FAILED;
	}
	if (has_prop) {
		snprintf(err, errlen,
		         "hash-property is not supported by this broker's x-consistent-hash; use "
		         "hash-header");
		return AMQPD_ERR_PRECONDITION_FAILED;
	}
	return AMQPD_OK;
}

static amqpd_status chx_create(void *ud, amqpd_exchange_state **state, struct amqpd_table_view args)
{
	const struct chx_plugin *pl = ud;
	struct chx *c = pl->host->calloc(pl->self, 1, sizeof(*c));
	struct amqpd_value v;

	if (!c)
		return AMQPD_ERR_ERRNO(ENOMEM);
	c->pl = pl;
	value_init(&v);
	if (pl->host->table_get(args, "hash-header", &v) && v.type == AMQPD_VALUE_LONGSTR &&
	    v.len > 0 && v.len < sizeof(c->header)) {
		c->by_header = true;
		memcpy(c->header, v.str, v.len);
		c->header[v.len] = '\0';
	}
	*state = (amqpd_exchange_state *)c;
	return AMQPD_OK;
}

static void chx_destroy(void *ud, amqpd_exchange_state *state)
{
	(void)ud; /* the state points at it */
	struct chx *c = (void *)state;
	if (!c)
		return;
	c->pl->host->free(c->pl->self, c->m);
	c->pl->host->free(c->pl->self, c);
}

static amqpd_status chx_validate_binding(void *ud, amqpd_exchange_state *state,
                                         const struct amqpd_binding *b, char *err, size_t errlen)
{
	(void)ud; /* the state points at it */
	const struct chx *c = (void *)state;
	uint64_t w = 0;
	int rc = parse_weight(b->key, b->key_len, c->pl->max_weight, &w);

	if (rc == 0) {
		/* RabbitMQ prints the key with ~p: <<"abc">> */
		snprintf(err, errlen, "The binding key must be an integer: <<\"%.*s\">>",
		         (int)b->key_len, b->key);
		return AMQPD_ERR_PRECONDITION_FAILED;
	}
	if (rc == -1) {
		snprintf(err, errlen, "The binding key must be greater than 0");
		return AMQPD_ERR_PRECONDITION_FAILED;
	}
	if (rc == -2 || total(c) + w > MAX_BUCKETS) {
		snprintf(err, errlen, "The binding key (weight) is too large");
		return AMQPD_ERR_PRECONDITION_FAILED;
	}
	return AMQPD_OK;
}

static amqpd_status chx_bind(void *ud, amqpd_exchange_state *state, const struct amqpd_binding *b)
{
	(void)ud; /* the state points at it */
	struct chx *c = (void *)state;
	uint64_t w = 0;

	if (parse_weight(b->key, b->key_len, c->pl->max_weight, &w) != 1 ||
	    total(c) + w > MAX_BUCKETS)
		return AMQPD_ERR_PRECONDITION_FAILED; /* the host skipped validate_binding */
	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 8;
		struct member *nm = c->pl->host->realloc(c->pl->self, c->m, cap * sizeof(*nm));
		if (!nm)
			return AMQPD_ERR_ERRNO(ENOMEM);
		c->m = nm;
		c->cap = cap;
	}
	c->m[c->n].dest = b->dest;
	c->m[c->n].weight = w;
	c->m[c->n].end = total(c) + w;
	c->n++;
	return AMQPD_OK;
}

static void chx_unbind(void *ud, amqpd_exchange_state *state, const struct amqpd_binding *b)
{
	(void)ud; /* the state points at it */
	struct chx *c = (void *)state;
	uint64_t w = 0;

	if (parse_weight(b->key, b->key_len, MAX_BUCKETS, &w) != 1)
		return;
	for (size_t i = 0; i < c->n; i++) {
		if (c->m[i].dest != b->dest || c->m[i].weight != w)
			continue;
		memmove(&c->m[i], &c->m[i + 1], (c->n - i - 1) * sizeof(*c->m));
		c->n--;
		renumber(c);
		return;
	}
}

/* FNV-1a with a final avalanche (splitmix64), so similar keys spread. */
static uint64_t hash_mix(uint64_t h, const void *data, size_t len)
{
	const uint8_t *p = data;
	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= 1099511628211ULL;
	}
	return h;
}

static uint64_t hash_final(uint64_t h)
{
	h ^= h >> 30;
	h *= 0xbf58476d1ce4e5b9ULL;
	h ^= h >> 27;
	h *= 0x94d049bb133111ebULL;
	h ^= h >> 31;
	return h;
}

#define FNV_BASIS 14695981039346656037ULL

/* Hash a header value by what it means: strings by bytes, integers of any
 * width by numeric value, so a publisher's choice of width does not move
 * its messages. */
static uint64_t hash_value(const struct amqpd_value *v)
{
	uint64_t h = FNV_BASIS;
	uint8_t tag;

	if (v->type == AMQPD_VALUE_LONGSTR || v->type == AMQPD_VALUE_BYTES)
		return hash_final(hash_mix(h, v->str, v->len));
	if (v->is_integer) {
		tag = 'n';
		h = hash_mix(h, &tag, 1);
		return hash_final(v->fits_i64 ? hash_mix(h, &v->as_i64, sizeof(v->as_i64))
		                              : hash_mix(h, &v->u, sizeof(v->u)));
	}
	h = hash_mix(h, &v->type, 1);
	switch (v->type) {
	case AMQPD_VALUE_BOOL:
		h = hash_mix(h, &v->b, sizeof(v->b));
		break;
	case AMQPD_VALUE_FLOAT:
	case AMQPD_VALUE_DOUBLE:
		h = hash_mix(h, &v->d, sizeof(v->d));
		break;
	case AMQPD_VALUE_DECIMAL:
		h = hash_mix(h, &v->decimal_scale, 1);
		h = hash_mix(h, &v->u, sizeof(v->u));
		break;
	case AMQPD_VALUE_TABLE:
	case AMQPD_VALUE_ARRAY:
		h = hash_mix(h, v->table.data, v->table.len);
		break;
	default:
		break;
	}
	return hash_final(h);
}

/* Jump consistent hash (Lamping & Veach, 2014): a bucket in [0, n) such
 * that growing n only moves keys into the new buckets. */
static uint64_t jump(uint64_t key, uint64_t n)
{
	int64_t b = -1, j = 0;
	while (j < (int64_t)n) {
		b = j;
		key = key * 2862933555777941757ULL + 1;
		j = (int64_t)((double)(b + 1) * ((double)(1ULL << 31) / (double)((key >> 33) + 1)));
	}
	return (uint64_t)b;
}

static amqpd_status chx_route(void *ud, amqpd_exchange_state *state,
                              const struct amqpd_route_msg *msg, amqpd_route_emit_fn emit,
                              void *emit_ctx)
{
	(void)ud; /* the state points at it */
	const struct chx *c = (void *)state;
	uint64_t h;

	if (c->n == 0)
		return AMQPD_OK;
	if (c->by_header) {
		struct amqpd_value v;
		value_init(&v);
		if (!c->pl->host->table_get(msg->headers, c->header, &v))
			v.type = AMQPD_VALUE_VOID;
		h = hash_value(&v);
	} else {
		h = hash_final(hash_mix(FNV_BASIS, msg->routing_key, msg->routing_key_len));
	}
	uint64_t bucket = jump(h, total(c));
	/* First binding whose range ends after the bucket. */
	size_t lo = 0, hi = c->n - 1;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (c->m[mid].end > bucket)
			hi = mid;
		else
			lo = mid + 1;
	}
	emit(emit_ctx, c->m[lo].dest);
	return AMQPD_OK;
}

static const struct amqpd_exchange_type chx_type = {
    .struct_size = sizeof(struct amqpd_exchange_type),
    .name = "x-consistent-hash",
    .validate = chx_validate,
    .create = chx_create,
    .destroy = chx_destroy,
    .validate_binding = chx_validate_binding,
    .bind = chx_bind,
    .unbind = chx_unbind,
    .route = chx_route,
};

static void chx_fini(amqpd_plugin *self, void *userdata)
{
	struct chx_plugin *pl = userdata;
	if (pl)
		pl->host->free(self, pl);
}

/* Options: max_weight=N (1 .. 2^31 - 1).  Anything else is refused, with
 * the reason in err, and the broker does not start. */
static amqpd_status chx_init(amqpd_plugin *self, const struct amqpd_host_api *h,
                             const struct amqpd_option *opts, size_t nopts, void **userdata,
                             char *err, size_t errlen)
{
	struct chx_plugin *pl = h->calloc(self, 1, sizeof(*pl));
	if (!pl)
		return AMQPD_ERR_ERRNO(ENOMEM);
	pl->host = h;
	pl->self = self;
	pl->max_weight = MAX_BUCKETS;
	for (size_t i = 0; i < nopts; i++) {
		uint64_t w = 0;
		const char *v = opts[i].value;
		if (strcmp(opts[i].key, "max_weight") != 0) {
			snprintf(err, errlen, "unknown option '%s' (known: max_weight)",
			         opts[i].key);
			chx_fini(self, pl);
			return AMQPD_ERR_PRECONDITION_FAILED;
		}
		if (parse_weight(v, strlen(v), MAX_BUCKETS, &w) != 1) {
			snprintf(err, errlen, "max_weight=%s: want an integer in 1..%llu", v,
			         (unsigned long long)MAX_BUCKETS);
			chx_fini(self, pl);
			return AMQPD_ERR_PRECONDITION_FAILED;
		}
		pl->max_weight = w;
	}
	amqpd_status s = h->register_exchange_type(self, &chx_type);
	if (s != AMQPD_OK) {
		chx_fini(self, pl);
		return s;
	}
	*userdata = pl;
	return AMQPD_OK;
}

AMQPD_PLUGIN_DEFINE("exchange-consistent-hash", "2.0",
                    "x-consistent-hash exchange (example third-party plugin)", chx_init, chx_fini);
