/*
 * exchange_test_host.c - the minimal test host of the exchange-type plugin
 * tests (declared in exchange_test_host.h).
 *
 * load_plugin() dlopens a plugin (RTLD_NOW | RTLD_LOCAL), negotiates the
 * ABI and calls init with a host API table: a counting allocator, a stderr
 * log, register_exchange_type and the field-table readers from
 * server/plugin_values.c.  The tests then drive create / bind / unbind /
 * route / destroy directly through the helpers here: destinations are
 * addresses of local variables; route() results are collected and compared
 * as sets.  Binding arguments and headers are encoded with
 * protocol/amqp_table.h.
 *
 * Ownership: the allocator counts live blocks so every test can check that
 * destroy (and unbinding everything) gives all memory back; it can also be
 * told to fail the Nth allocation.  Single-threaded.
 */
#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exchange_test_host.h"
#include "plugin/plugin_values.h"

/* ---------------------------------------------------------------- host */

struct amqpd_plugin plugins[5];
size_t nplugins;
struct amqpd_plugin *extra; /* AMQPD_EXTRA_PLUGIN, if loaded */

long live_blocks;    /* allocations not yet freed */
long fail_countdown; /* > 0: the allocation that brings it to 0 fails */

static bool should_fail(void)
{
	return fail_countdown > 0 && --fail_countdown == 0;
}

static void *h_alloc(size_t n)
{
	void *p = should_fail() ? NULL : malloc(n);
	live_blocks += p != NULL;
	return p;
}

static void *h_calloc(size_t n, size_t size)
{
	void *p = should_fail() ? NULL : calloc(n, size);
	live_blocks += p != NULL;
	return p;
}

static void *h_realloc(void *ptr, size_t size)
{
	void *p = should_fail() ? NULL : realloc(ptr, size);
	live_blocks += p != NULL && ptr == NULL;
	return p;
}

static void h_free(void *ptr)
{
	live_blocks -= ptr != NULL;
	free(ptr);
}

static void h_log(amqpd_plugin *self, enum amqpd_log_level level, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "[%s] %d: ", self ? self->desc->name : "?", (int)level);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

int h_register_exchange_type(amqpd_plugin *self, const struct amqpd_exchange_type *t)
{
	size_t need = offsetof(struct amqpd_exchange_type, route) + sizeof(t->route);
	if (!t || t->struct_size < need || !t->name || !t->create || !t->bind || !t->unbind ||
	    !t->route || find_type(t->name))
		return -1;
	/* ABI rule: copy min(struct_size, sizeof) and zero-fill the rest. */
	memset(&self->type, 0, sizeof(self->type));
	memcpy(&self->type, t, t->struct_size < sizeof(*t) ? t->struct_size : sizeof(*t));
	self->ntypes++;
	return 0;
}

static const struct amqpd_host_api host_api = {
    .struct_size = sizeof(struct amqpd_host_api),
    .abi_version = AMQPD_ABI_VERSION,
    .alloc = h_alloc,
    .calloc = h_calloc,
    .realloc = h_realloc,
    .free = h_free,
    .log = h_log,
    .register_exchange_type = h_register_exchange_type,
    .table_get = plugin_table_get,
    .table_iter_init = plugin_table_iter_init,
    .table_next = plugin_table_next,
    .array_next = plugin_array_next,
    .value_equal = plugin_value_equal,
};

amqpd_plugin_entry_fn entry_of(struct amqpd_plugin *p)
{
	amqpd_plugin_entry_fn fn;
	void *sym = dlsym(p->dl, AMQPD_PLUGIN_ENTRY_SYMBOL);
	memcpy(&fn, &sym, sizeof(fn)); /* object -> function pointer, POSIX-style */
	return fn;
}

struct amqpd_plugin *load_plugin(const char *path)
{
	struct amqpd_plugin *p = &plugins[nplugins];
	uint32_t chosen = 0;

	snprintf(p->path, sizeof(p->path), "%s", path);
	p->dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!p->dl) {
		fprintf(stderr, "cannot load %s: %s (run make first)\n", path, dlerror());
		return NULL;
	}
	amqpd_plugin_entry_fn entry = entry_of(p);
	if (!entry) {
		fprintf(stderr, "%s: no %s symbol\n", path, AMQPD_PLUGIN_ENTRY_SYMBOL);
		return NULL;
	}
	p->desc = entry(AMQPD_ABI_VERSION_MIN, AMQPD_ABI_VERSION, &chosen);
	if (!p->desc || chosen != AMQPD_ABI_VERSION || !p->desc->init) {
		fprintf(stderr, "%s: ABI negotiation failed\n", path);
		return NULL;
	}
	if (p->desc->init(p, &host_api) != 0) {
		fprintf(stderr, "%s: init failed\n", path);
		return NULL;
	}
	nplugins++;
	return p;
}

void unload_plugins(void)
{
	for (size_t i = 0; i < nplugins; i++) {
		if (plugins[i].desc->fini)
			plugins[i].desc->fini(&plugins[i]);
		dlclose(plugins[i].dl);
	}
	nplugins = 0;
}

const struct amqpd_exchange_type *find_type(const char *name)
{
	for (size_t i = 0; i < sizeof(plugins) / sizeof(plugins[0]); i++) {
		if (plugins[i].ntypes && strcmp(plugins[i].type.name, name) == 0)
			return &plugins[i].type;
	}
	return NULL;
}

/* ------------------------------------------------- tables, exchanges */

/*
 * Build a field table from a spec "key:T=value;key:T=value": T is the wire
 * type letter (S x b B s u I i l L T f d t V); V takes no value.
 */
struct amqpd_table_view mk(struct tbl *t, const char *spec)
{
	struct amqpd_table_view v = {NULL, 0};
	char *save = NULL;

	memset(t, 0, sizeof(*t));
	if (!spec || !*spec)
		return v;
	snprintf(t->spec, sizeof(t->spec), "%s", spec);
	for (char *it = strtok_r(t->spec, ";", &save); it; it = strtok_r(NULL, ";", &save)) {
		char *colon = strchr(it, ':');
		CU_ASSERT_FATAL(colon != NULL && t->n < 32);
		*colon = '\0';
		char *val = colon[2] == '=' ? colon + 3 : colon + 2;
		struct amqp_table_entry *e = &t->e[t->n++];
		struct amqp_field_value *f = &e->value;
		e->key = amqp_cstr(it);
		f->type = (uint8_t)colon[1];
		switch (f->type) {
		case 'S':
		case 'x':
			f->v.str = amqp_cstr(val);
			break;
		case 'b':
			f->v.i8 = (int8_t)strtoll(val, NULL, 0);
			break;
		case 's':
			f->v.i16 = (int16_t)strtoll(val, NULL, 0);
			break;
		case 'I':
			f->v.i32 = (int32_t)strtoll(val, NULL, 0);
			break;
		case 'l':
			f->v.i64 = strtoll(val, NULL, 0);
			break;
		case 'B':
			f->v.u8 = (uint8_t)strtoull(val, NULL, 0);
			break;
		case 'u':
			f->v.u16 = (uint16_t)strtoull(val, NULL, 0);
			break;
		case 'i':
			f->v.u32 = (uint32_t)strtoull(val, NULL, 0);
			break;
		case 'L':
		case 'T':
			f->v.u64 = strtoull(val, NULL, 0);
			break;
		case 'f':
			f->v.f = strtof(val, NULL);
			break;
		case 'd':
			f->v.d = strtod(val, NULL);
			break;
		case 't':
			f->v.b = strcmp(val, "true") == 0;
			break;
		case 'V':
			break;
		default:
			CU_FAIL_FATAL("bad type letter in table spec");
		}
	}
	struct amqp_wr w;
	struct amqp_table tab = {t->e, t->n};
	amqp_wr_init(&w, t->buf, sizeof(t->buf));
	amqp_table_encode_contents(&w, &tab);
	CU_ASSERT_FATAL(amqp_wr_ok(&w));
	struct amqp_bytes raw = {t->buf, w.len};
	CU_ASSERT_FATAL(amqp_table_validate(raw, NULL) == 0); /* as the host does */
	v.data = t->buf;
	v.len = w.len;
	return v;
}

const struct amqpd_table_view no_table = {NULL, 0};

int ex_new(struct ex *x, const char *type, struct amqpd_table_view args)
{
	x->t = find_type(type);
	x->st = NULL;
	CU_ASSERT_FATAL(x->t != NULL);
	return x->t->create(&x->st, args);
}

void ex_free(struct ex *x)
{
	x->t->destroy(x->st);
	x->st = NULL;
}

struct amqpd_binding binding(const void *dest, const char *key, struct amqpd_table_view args)
{
	struct amqpd_binding b = {sizeof(b), dest, key, strlen(key), args};
	return b;
}

/* Like the host: validate_binding (when the type has one), then bind. */
int ex_bind_args(struct ex *x, const void *dest, const char *key, struct amqpd_table_view args)
{
	struct amqpd_binding b = binding(dest, key, args);
	char err[256] = "";
	if (x->t->validate_binding) {
		int rc = x->t->validate_binding(x->st, &b, err, sizeof(err));
		if (rc)
			return rc;
	}
	return x->t->bind(x->st, &b);
}

int ex_bind(struct ex *x, const void *dest, const char *key)
{
	return ex_bind_args(x, dest, key, no_table);
}

void ex_unbind_args(struct ex *x, const void *dest, const char *key, struct amqpd_table_view args)
{
	struct amqpd_binding b = binding(dest, key, args);
	x->t->unbind(x->st, &b);
}

void ex_unbind(struct ex *x, const void *dest, const char *key)
{
	ex_unbind_args(x, dest, key, no_table);
}

static void collect(void *ctx, const void *dest)
{
	struct got *g = ctx;
	CU_ASSERT(dest != NULL);
	if (g->n < MAX_GOT)
		g->d[g->n++] = dest;
}

void ex_route_h(struct ex *x, const char *key, struct amqpd_table_view headers, struct got *g)
{
	struct amqpd_route_msg m = {sizeof(m), key, strlen(key), headers};
	g->n = 0;
	x->t->route(x->st, &m, collect, g);
}

void ex_route(struct ex *x, const char *key, struct got *g)
{
	ex_route_h(x, key, no_table, g);
}

bool got_has(const struct got *g, const void *d)
{
	for (size_t i = 0; i < g->n; i++) {
		if (g->d[i] == d)
			return true;
	}
	return false;
}

size_t got_unique(const struct got *g)
{
	size_t u = 0;
	for (size_t i = 0; i < g->n; i++) {
		bool seen = false;
		for (size_t j = 0; j < i && !seen; j++)
			seen = g->d[j] == g->d[i];
		u += !seen;
	}
	return u;
}
