/*
 * exchange_test_host.c - the exchange-type plugin tests' host (declared in
 * exchange_test_host.h): the broker's own plugin host
 * (server/plugin/plugin_host.c), not a copy of its rules.
 *
 * load_plugin() loads a plugin through plugin_host_load (dlopen, ABI
 * negotiation, the min-copy of what it registers, options, v1 adaptation).
 * The tests then drive create / bind / unbind / route / destroy through
 * the host's plugin_xtype_* wrappers: destinations are addresses of local
 * variables; route() results are collected and compared as sets.  Binding
 * arguments and headers are encoded with protocol/amqp_table.h.
 *
 * Ownership: the host counts each plugin's live blocks, so every test can
 * check that destroy (and unbinding everything) gives all memory back; its
 * alloc_fail_after hook fails the Nth allocation.  Single-threaded; the
 * event base exists for the host's timers and run_on_loop.
 */
#include <dlfcn.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exchange_test_host.h"
#include "plugin/plugin_values.h"

/* ---------------------------------------------------------------- host */

struct plugin_host phost;
struct event_base *th_base;
struct amqpd_plugin *plugins[12];
size_t nplugins;
struct amqpd_plugin *extra; /* AMQPD_EXTRA_PLUGIN, if loaded */

void host_start(void)
{
	if (th_base)
		return;
	evthread_use_pthreads();
	th_base = event_base_new();
	if (!th_base || plugin_host_init(&phost, th_base) < 0) {
		fprintf(stderr, "cannot start the plugin host\n");
		exit(1);
	}
}

long live_blocks_now(void)
{
	long n = 0;
	for (const struct amqpd_plugin *p = phost.plugins; p; p = p->next) {
		struct amqpd_mem_usage u;
		plugin_host_mem_usage(p, &u);
		n += (long)u.blocks;
	}
	return n;
}

amqpd_plugin_entry_fn entry_of(struct amqpd_plugin *p)
{
	amqpd_plugin_entry_fn fn;
	void *sym = dlsym(p->dl, AMQPD_PLUGIN_ENTRY_SYMBOL);
	memcpy(&fn, &sym, sizeof(fn)); /* object -> function pointer, POSIX-style */
	return fn;
}

struct amqpd_plugin *load_plugin(const char *path)
{
	host_start();
	if (nplugins == sizeof(plugins) / sizeof(plugins[0]) ||
	    plugin_host_load(&phost, path) != 0) {
		fprintf(stderr, "%s: did not load (run make first)\n", path);
		return NULL;
	}
	plugins[nplugins] = phost.plugins; /* the host puts the newest first */
	return plugins[nplugins++];
}

void unload_plugins(void)
{
	plugin_host_unload_all(&phost);
	nplugins = 0;
	event_base_free(th_base);
	th_base = NULL;
}

const struct xtype *find_type(const char *name)
{
	return plugin_host_xtype(&phost, name, strlen(name));
}

int ntypes_of(const struct amqpd_plugin *p)
{
	int n = 0;
	void *v;
	for (size_t i = 0; hmap_next(&phost.xtypes, &i, &v);)
		for (const struct xtype *x = v; x; x = x->next_same)
			n += x->owner == p;
	return n;
}

int xvalidate(const struct xtype *t, struct amqpd_table_view args, char *err, size_t errlen)
{
	return plugin_xtype_validate(t, args, err, errlen);
}

int xvalidate_binding(const struct xtype *t, struct amqpd_exchange_state *st,
                      const struct amqpd_binding *b, char *err, size_t errlen)
{
	return plugin_xtype_validate_binding(t, st, b, err, errlen);
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
	char err[256];
	x->t = find_type(type);
	x->st = NULL;
	CU_ASSERT_FATAL(x->t != NULL);
	return plugin_xtype_create(&x->t, args, &x->st, err, sizeof(err));
}

void ex_free(struct ex *x)
{
	plugin_xtype_destroy(x->t, x->st);
	x->st = NULL;
}

struct amqpd_binding binding(const void *dest, const char *key, struct amqpd_table_view args)
{
	struct amqpd_binding b = {sizeof(b), (const amqpd_dest *)dest, key, strlen(key), args};
	return b;
}

/* As the broker: validate_binding (when the type has one), then bind. */
int ex_bind_args(struct ex *x, const void *dest, const char *key, struct amqpd_table_view args)
{
	struct amqpd_binding b = binding(dest, key, args);
	char err[256] = "";
	return plugin_xtype_bind(x->t, x->st, &b, err, sizeof(err));
}

int ex_bind(struct ex *x, const void *dest, const char *key)
{
	return ex_bind_args(x, dest, key, no_table);
}

void ex_unbind_args(struct ex *x, const void *dest, const char *key, struct amqpd_table_view args)
{
	struct amqpd_binding b = binding(dest, key, args);
	plugin_xtype_unbind(x->t, x->st, &b);
}

void ex_unbind(struct ex *x, const void *dest, const char *key)
{
	ex_unbind_args(x, dest, key, no_table);
}

static void collect(void *ctx, const amqpd_dest *dest)
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
	plugin_xtype_route(x->t, x->st, &m, collect, g);
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
