/*
 * headers.c - the "headers" exchange type as a plugin, matching as RabbitMQ
 * does: the binding argument "x-match" selects all (default), any,
 * all-with-x or any-with-x.  "x-match" itself never takes part; other keys
 * starting with "x-" are ignored except by the -with-x variants.  A binding
 * argument of type void matches on the header's presence alone; other
 * values must be equal by host->value_equal (RabbitMQ's ==).  With no
 * arguments left to match, "all" matches every message and "any" none.
 * A header key present several times matches on its first occurrence.
 *
 * Index: a flat array of bindings; each keeps a copy of its argument table
 * and the parsed list of arguments to match (pointing into that copy).
 * route() tries every binding; it does not allocate.
 *
 * Ownership: bindings are copied with the host's allocator in bind() and
 * freed in unbind()/destroy().
 *
 * Threading: every callback runs on the broker's event-loop thread (ABI
 * contract); the host API pointer is written once in init.
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "amqpd/exchange.h"
#include "amqpd/plugin.h"

static const struct amqpd_host_api *host; /* set once by init */
static amqpd_plugin *plugin;              /* our handle, for host calls */

enum xmatch { X_ALL, X_ANY, X_ALL_WITH_X, X_ANY_WITH_X };

struct harg {
	const uint8_t *key;
	size_t klen;
	struct amqpd_value val; /* borrows from hbind.raw */
};

struct hbind {
	const amqpd_dest *dest;
	bool any;
	size_t nargs;
	struct harg *args;
	size_t rawlen;
	uint8_t raw[]; /* copy of the binding's argument table */
};

struct headers {
	struct hbind **b;
	size_t n, cap;
};

static bool key_is(const uint8_t *k, size_t klen, const char *s)
{
	size_t n = strlen(s);
	return klen == n && memcmp(k, s, n) == 0;
}

static bool str_is(const struct amqpd_value *v, const char *s)
{
	size_t n = strlen(s);
	return v->len == n && memcmp(v->str, s, n) == 0;
}

static void value_init(struct amqpd_value *v)
{
	memset(v, 0, sizeof(*v));
	v->struct_size = sizeof(*v);
}

/* RabbitMQ's table_lookup: the first entry with this key. */
static bool lookup(struct amqpd_table_view t, const uint8_t *key, size_t klen,
                   struct amqpd_value *out)
{
	struct amqpd_table_iter it;
	const uint8_t *k;
	size_t kl;

	host->table_iter_init(&it, t);
	value_init(out);
	while (host->table_next(&it, &k, &kl, out) == 1) {
		if (kl == klen && memcmp(k, key, klen) == 0)
			return true;
	}
	return false;
}

/* -1: x-match present but invalid; otherwise the kind (default all). */
static int parse_xmatch(struct amqpd_table_view args, struct amqpd_value *v)
{
	if (!lookup(args, (const uint8_t *)"x-match", 7, v))
		return X_ALL;
	if (v->type != AMQPD_VALUE_LONGSTR)
		return -1;
	if (str_is(v, "all"))
		return X_ALL;
	if (str_is(v, "any"))
		return X_ANY;
	if (str_is(v, "all-with-x"))
		return X_ALL_WITH_X;
	if (str_is(v, "any-with-x"))
		return X_ANY_WITH_X;
	return -1;
}

/* Erlang's name for a field type, as RabbitMQ's error text shows it. */
static const char *type_name(uint8_t t)
{
	switch (t) {
	case 'S':
		return "longstr";
	case 'I':
		return "signedint";
	case 'i':
		return "unsignedint";
	case 'b':
		return "byte";
	case 'B':
		return "unsignedbyte";
	case 's':
		return "short";
	case 'u':
		return "unsignedshort";
	case 'l':
	case 'L':
		return "long";
	case 'f':
		return "float";
	case 'd':
		return "double";
	case 'D':
		return "decimal";
	case 't':
		return "bool";
	case 'T':
		return "timestamp";
	case 'x':
		return "binary";
	case 'F':
		return "table";
	case 'A':
		return "array";
	case 'V':
		return "void";
	default:
		return "unknown";
	}
}

/* Format like Erlang's ~tp: <<"text">> for printable bytes, else <<1,2>>. */
static void fmt_binary(char *buf, size_t cap, const uint8_t *p, size_t len)
{
	bool printable = true;
	size_t o = 0;

	for (size_t i = 0; i < len; i++)
		printable = printable && p[i] >= 0x20 && p[i] < 0x7f;
	o += (size_t)snprintf(buf, cap, printable ? "<<\"" : "<<");
	for (size_t i = 0; i < len && o < cap; i++) {
		if (printable)
			o += (size_t)snprintf(buf + o, cap - o, "%s%c",
			                      p[i] == '"' || p[i] == '\\' ? "\\" : "", p[i]);
		else
			o += (size_t)snprintf(buf + o, cap - o, "%s%u", i ? "," : "", p[i]);
	}
	if (o < cap)
		snprintf(buf + o, cap - o, printable ? "\">>" : ">>");
}

static void fmt_value(char *buf, size_t cap, const struct amqpd_value *v)
{
	if (v->is_integer && v->fits_i64)
		snprintf(buf, cap, "%lld", (long long)v->as_i64);
	else if (v->is_integer)
		snprintf(buf, cap, "%llu", (unsigned long long)v->u);
	else if (v->type == 'f' || v->type == 'd')
		snprintf(buf, cap, "%g", v->d);
	else if (v->type == 't')
		snprintf(buf, cap, "%s", v->b ? "true" : "false");
	else if (v->type == 'D')
		snprintf(buf, cap, "{%u,%llu}", v->decimal_scale, (unsigned long long)v->u);
	else if (v->type == 'S' || v->type == 'x')
		fmt_binary(buf, cap, v->str, v->len);
	else if (v->type == 'V')
		snprintf(buf, cap, "undefined");
	else
		snprintf(buf, cap, "[...]");
}

static amqpd_status headers_validate_binding(void *ud, amqpd_exchange_state *state,
                                             const struct amqpd_binding *b, char *err,
                                             size_t errlen)
{
	struct amqpd_value v;
	char val[128];

	(void)state;
	if (parse_xmatch(b->args, &v) >= 0)
		return AMQPD_OK;
	fmt_value(val, sizeof(val), &v);
	if (v.type == AMQPD_VALUE_LONGSTR)
		snprintf(
		    err, errlen,
		    "Invalid x-match field value %s; expected all, any, all-with-x, or any-with-x",
		    val);
	else
		snprintf(err, errlen, "Invalid x-match field type %s (value %s); expected longstr",
		         type_name(v.type), val);
	return AMQPD_ERR_PRECONDITION_FAILED;
}

static amqpd_status headers_create(void *ud, amqpd_exchange_state **state,
                                   struct amqpd_table_view args)
{
	(void)args;
	struct headers *h = host->calloc(plugin, 1, sizeof(*h));
	if (!h)
		return AMQPD_ERR_ERRNO(ENOMEM);
	*state = (amqpd_exchange_state *)h;
	return AMQPD_OK;
}

static void free_binding(struct hbind *hb)
{
	host->free(plugin, hb->args);
	host->free(plugin, hb);
}

static void headers_destroy(void *ud, amqpd_exchange_state *state)
{
	struct headers *h = (void *)state;
	if (!h)
		return;
	for (size_t i = 0; i < h->n; i++)
		free_binding(h->b[i]);
	host->free(plugin, h->b);
	host->free(plugin, h);
}

/* Should this binding argument take part in matching? */
static bool matched_key(const uint8_t *k, size_t klen, int kind)
{
	if (key_is(k, klen, "x-match"))
		return false;
	if (klen >= 2 && k[0] == 'x' && k[1] == '-')
		return kind == X_ALL_WITH_X || kind == X_ANY_WITH_X;
	return true;
}

static amqpd_status headers_bind(void *ud, amqpd_exchange_state *state,
                                 const struct amqpd_binding *b)
{
	struct headers *h = (void *)state;
	struct hbind *hb;
	struct amqpd_value v;
	struct amqpd_table_iter it;
	const uint8_t *k;
	size_t klen, n = 0;

	if (h->n == h->cap) {
		size_t cap = h->cap ? h->cap * 2 : 8;
		struct hbind **nb = host->realloc(plugin, h->b, cap * sizeof(*nb));
		if (!nb)
			return AMQPD_ERR_ERRNO(ENOMEM);
		h->b = nb;
		h->cap = cap;
	}
	hb = host->alloc(plugin, sizeof(*hb) + b->args.len);
	if (!hb)
		return AMQPD_ERR_ERRNO(ENOMEM);
	memset(hb, 0, sizeof(*hb));
	hb->dest = b->dest;
	hb->rawlen = b->args.len;
	if (b->args.len)
		memcpy(hb->raw, b->args.data, b->args.len);

	/* Parse the copy, so the values point into memory we own. */
	struct amqpd_table_view copy = {hb->raw, hb->rawlen};
	int kind = parse_xmatch(copy, &v);
	if (kind < 0)
		kind = X_ALL; /* unvalidated legacy binding: RabbitMQ says all */
	hb->any = kind == X_ANY || kind == X_ANY_WITH_X;
	host->table_iter_init(&it, copy);
	value_init(&v);
	while (host->table_next(&it, &k, &klen, &v) == 1)
		n += matched_key(k, klen, kind);
	if (n) {
		hb->args = host->calloc(plugin, n, sizeof(*hb->args));
		if (!hb->args) {
			host->free(plugin, hb);
			return AMQPD_ERR_ERRNO(ENOMEM);
		}
	}
	host->table_iter_init(&it, copy);
	for (size_t i = 0; i < n;) {
		struct harg *a = &hb->args[i];
		value_init(&a->val);
		if (host->table_next(&it, &a->key, &a->klen, &a->val) != 1)
			break;
		i += matched_key(a->key, a->klen, kind);
	}
	hb->nargs = n;
	h->b[h->n++] = hb;
	return AMQPD_OK;
}

static void headers_unbind(void *ud, amqpd_exchange_state *state, const struct amqpd_binding *b)
{
	struct headers *h = (void *)state;

	/* The host binds a (dest, key, args) once; the key plays no part
	 * here, so any binding with the same dest and args is the one. */
	for (size_t i = 0; i < h->n; i++) {
		struct hbind *hb = h->b[i];
		if (hb->dest != b->dest || hb->rawlen != b->args.len ||
		    (hb->rawlen && memcmp(hb->raw, b->args.data, hb->rawlen) != 0))
			continue;
		free_binding(hb);
		h->b[i] = h->b[--h->n];
		return;
	}
}

static bool binding_matches(const struct hbind *hb, struct amqpd_table_view headers)
{
	struct amqpd_value hv;

	for (size_t i = 0; i < hb->nargs; i++) {
		const struct harg *a = &hb->args[i];
		bool ok = lookup(headers, a->key, a->klen, &hv) &&
		          (a->val.type == AMQPD_VALUE_VOID || host->value_equal(&a->val, &hv));
		if (hb->any && ok)
			return true;
		if (!hb->any && !ok)
			return false;
	}
	return !hb->any;
}

static amqpd_status headers_route(void *ud, amqpd_exchange_state *state,
                                  const struct amqpd_route_msg *msg, amqpd_route_emit_fn emit,
                                  void *emit_ctx)
{
	struct headers *h = (void *)state;
	for (size_t i = 0; i < h->n; i++) {
		if (binding_matches(h->b[i], msg->headers))
			emit(emit_ctx, h->b[i]->dest);
	}
	return AMQPD_OK;
}

static const struct amqpd_exchange_type headers_type = {
    .struct_size = sizeof(struct amqpd_exchange_type),
    .name = "headers",
    .create = headers_create,
    .destroy = headers_destroy,
    .validate_binding = headers_validate_binding,
    .bind = headers_bind,
    .unbind = headers_unbind,
    .route = headers_route,
};

/* No options and no per-plugin state: the host table and our handle are
 * file statics (one instance per process), so userdata stays NULL. */
static amqpd_status headers_init(amqpd_plugin *self, const struct amqpd_host_api *h,
                                 const struct amqpd_option *opts, size_t nopts, void **userdata,
                                 char *err, size_t errlen)
{
	(void)userdata;
	amqpd_status s = amqpd_no_options(opts, nopts, err, errlen);
	if (s != AMQPD_OK)
		return s;
	host = h;
	plugin = self;
	return h->register_exchange_type(self, &headers_type);
}

AMQPD_PLUGIN_DEFINE("exchange-headers", "2.0",
                    "AMQP headers exchange: x-match all/any[-with-x] on message headers",
                    headers_init, NULL);
