/*
 * test_exchanges.c - CUnit tests for the exchange-type plugins, run through
 * a minimal test host (exchange_test_host.c), and main().
 *
 * main() loads $top_builddir/plugins/lib/exchange_{direct,fanout,topic,
 * headers,modulus_hash,random}.so - and, when AMQPD_EXTRA_PLUGIN names one,
 * a third-party plugin (tests/check-oot-plugin.sh passes the out-of-tree
 * x-consistent-hash example).  Suites: "abi" (entry point negotiation,
 * registered types), "plugin_values" (the host's field-table readers),
 * "direct", "fanout", "topic" (in test_topic.c), "headers",
 * "x-modulus-hash", "x-random", "oom" (every type with the Nth allocation
 * failing) and, only with the extra plugin, "x-consistent-hash".
 *
 * Ownership: every test checks that destroy (and unbinding everything)
 * gives all the host allocator's memory back.  Single-threaded.
 * Exit status: 0 when every test passed.
 */
#include <CUnit/Basic.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "exchange_test_host.h"
#include "plugin/plugin_values.h"

/* ----------------------------------------------------------------- ABI */

static void test_abi_negotiation(void)
{
	for (size_t i = 0; i < nplugins; i++) {
		if (plugins[i] == probe || plugins[i] == v1plugin)
			continue; /* test plugins: suite "host" */
		amqpd_plugin_entry_fn entry = entry_of(plugins[i]);
		uint32_t chosen = 99;
		CU_ASSERT_PTR_NOT_NULL_FATAL(entry);
		CU_ASSERT_PTR_NOT_NULL(entry(2, 2, &chosen));
		CU_ASSERT_EQUAL(chosen, 2);
		chosen = 99;
		CU_ASSERT_PTR_NOT_NULL(entry(0, 7, &chosen));
		CU_ASSERT_EQUAL(chosen, 2);
		/* Ranges without version 2: refused. */
		CU_ASSERT_PTR_NULL(entry(3, 5, &chosen));
		CU_ASSERT_PTR_NULL(entry(0, 1, &chosen));
		CU_ASSERT_PTR_NULL(entry(3, 2, &chosen));
		const struct amqpd_plugin_desc *d = entry(2, 2, &chosen);
		CU_ASSERT_FATAL(d != NULL);
		CU_ASSERT(d->struct_size >= offsetof(struct amqpd_plugin_desc, fini));
		CU_ASSERT_PTR_NOT_NULL(d->name);
		CU_ASSERT_PTR_NOT_NULL(d->version);
		CU_ASSERT_PTR_NOT_NULL(d->init);
		CU_ASSERT_EQUAL(plugins[i]->abi, 2);
		CU_ASSERT_EQUAL(ntypes_of(plugins[i]), 1);
	}
}

static amqpd_status no_route(void *ud, amqpd_exchange_state *st, const struct amqpd_route_msg *m,
                             amqpd_route_emit_fn emit, void *ctx)
{
	return AMQPD_OK;
}

static void test_abi_types(void)
{
	const char *names[] = {"direct",  "fanout",         "topic",
	                       "headers", "x-modulus-hash", "x-random"};
	for (size_t i = 0; i < 6; i++) {
		const struct xtype *t = find_type(names[i]);
		CU_ASSERT_PTR_NOT_NULL_FATAL(t);
		CU_ASSERT(t->vt.struct_size >= offsetof(struct amqpd_exchange_type, route));
		CU_ASSERT_PTR_NOT_NULL(t->vt.destroy);
		CU_ASSERT_PTR_EQUAL(t->head, t); /* each the only one of its name */
	}
	/* An incomplete vtable is refused (no destroy), a short one too. */
	struct amqpd_exchange_type bad = {sizeof(bad), "x-bad", NULL, NULL,    NULL,
	                                  NULL,        NULL,    NULL, no_route};
	const struct amqpd_host_api *api = &plugins[0]->api;
	CU_ASSERT_EQUAL(api->register_exchange_type(plugins[0], &bad),
	                AMQPD_ERR_PRECONDITION_FAILED);
	bad.struct_size = offsetof(struct amqpd_exchange_type, route);
	CU_ASSERT_EQUAL(api->register_exchange_type(plugins[0], &bad),
	                AMQPD_ERR_PRECONDITION_FAILED);
	CU_ASSERT_PTR_NULL(find_type("x-bad"));
	CU_ASSERT_EQUAL(ntypes_of(plugins[0]), 1);
	/* The host API table says what it has. */
	CU_ASSERT(AMQPD_HOST_HAS(api, complete));
	CU_ASSERT(AMQPD_HOST_HAS(api, timer_start));
	struct amqpd_host_api small = *api;
	small.struct_size = offsetof(struct amqpd_host_api, timer_start);
	CU_ASSERT_FALSE(AMQPD_HOST_HAS(&small, timer_start));
	CU_ASSERT(AMQPD_HOST_HAS(&small, run_on_loop));
	small.struct_size = sizeof(small);
	small.complete = NULL;
	CU_ASSERT_FALSE(AMQPD_HOST_HAS(&small, complete));
	/* Only the entry point is exported: internals stay hidden. */
	for (size_t i = 0; i < nplugins; i++) {
		CU_ASSERT_PTR_NULL(dlsym(plugins[i]->dl, "host"));
	}
}

/* -------------------------------------------------------------- values */

static struct amqpd_value val(struct amqpd_table_view t, const char *key)
{
	struct amqpd_value v;
	CU_ASSERT_FATAL(plugin_table_get(t, key, &v));
	return v;
}

static void test_values_numeric(void)
{
	struct tbl t;
	struct amqpd_table_view v = mk(&t, "b:b=5;B:B=5;s:s=5;u:u=5;I:I=5;i:i=5;l:l=5;L:L=5;"
	                                   "T:T=5;f:f=5;d:d=5.0;h:d=5.5;n:I=-5;nl:l=-5;"
	                                   "big:L=9223372036854775813;bigl:l=-9223372036854775803;"
	                                   "bigd:d=9223372036854775808;max:L=18446744073709551615");
	const char *five[] = {"b", "B", "s", "u", "I", "i", "l", "L", "T", "f", "d"};
	for (size_t i = 0; i < 11; i++) {
		for (size_t j = 0; j < 11; j++) {
			struct amqpd_value a = val(v, five[i]), b = val(v, five[j]);
			CU_ASSERT(plugin_value_equal(&a, &b));
		}
	}
	struct amqpd_value a = val(v, "I"), b = val(v, "h");
	CU_ASSERT_FALSE(plugin_value_equal(&a, &b)); /* 5 vs 5.5 */
	a = val(v, "n");
	b = val(v, "nl");
	CU_ASSERT(plugin_value_equal(&a, &b)); /* -5 as I and l */
	b = val(v, "I");
	CU_ASSERT_FALSE(plugin_value_equal(&a, &b));
	/* Unsigned 64-bit above INT64_MAX: compared as itself, not wrapped. */
	a = val(v, "big");
	CU_ASSERT_FALSE(a.fits_i64);
	CU_ASSERT_EQUAL(a.u, 9223372036854775813ULL);
	b = val(v, "bigl");
	CU_ASSERT_FALSE(plugin_value_equal(&a, &b));
	CU_ASSERT(plugin_value_equal(&a, &a));
	b = val(v, "max");
	CU_ASSERT_FALSE(plugin_value_equal(&a, &b));
	/* 2^63 as a double equals no int64 but would equal u64 2^63. */
	b = val(v, "bigd");
	a = val(v, "l");
	CU_ASSERT_FALSE(plugin_value_equal(&a, &b));
	struct tbl t2;
	struct amqpd_table_view v2 = mk(&t2, "p:L=9223372036854775808");
	a = val(v2, "p");
	CU_ASSERT(plugin_value_equal(&a, &b));
	CU_ASSERT(plugin_value_equal(&b, &a));
}

static void test_values_other(void)
{
	struct tbl t;
	struct amqpd_table_view v = mk(&t, "s:S=abc;x:x=abc;s2:S=abd;e:S=;ex:x=;t:t=true;t2:t=true;"
	                                   "f:t=false;one:I=1;v:V;v2:V;f32:f=0.5;f64:d=0.5");
	struct amqpd_value a = val(v, "s"), b = val(v, "x");
	CU_ASSERT(plugin_value_equal(&a, &b)); /* longstr vs bytes: by bytes */
	b = val(v, "s2");
	CU_ASSERT_FALSE(plugin_value_equal(&a, &b));
	a = val(v, "e");
	b = val(v, "ex");
	CU_ASSERT(plugin_value_equal(&a, &b));
	a = val(v, "t");
	b = val(v, "t2");
	CU_ASSERT(plugin_value_equal(&a, &b));
	b = val(v, "f");
	CU_ASSERT_FALSE(plugin_value_equal(&a, &b));
	b = val(v, "one");
	CU_ASSERT_FALSE(plugin_value_equal(&a, &b)); /* true is not 1 */
	a = val(v, "v");
	b = val(v, "v2");
	CU_ASSERT(plugin_value_equal(&a, &b));
	b = val(v, "e");
	CU_ASSERT_FALSE(plugin_value_equal(&a, &b)); /* void is not "" */
	a = val(v, "f32");
	b = val(v, "f64");
	CU_ASSERT(plugin_value_equal(&a, &b));
	a = val(v, "s");
	b = val(v, "one");
	CU_ASSERT_FALSE(plugin_value_equal(&a, &b));
	CU_ASSERT_FALSE(plugin_table_get(v, "missing", &a));
	CU_ASSERT_FALSE(plugin_table_get(no_table, "s", &a));
}

static void test_values_nested(void)
{
	/* t = {n: {a: 1}, m: {a: 1}, o: {a: 2}, arr: [1, "x"], e: {}, ea: []} */
	struct amqp_table_entry inner1[] = {{amqp_cstr("a"), {.type = 'I', .v.i32 = 1}}};
	struct amqp_table_entry inner2[] = {{amqp_cstr("a"), {.type = 'I', .v.i32 = 2}}};
	struct amqp_table in1 = {inner1, 1}, in2 = {inner2, 1}, empty = {NULL, 0};
	struct amqp_field_value items[] = {{.type = 'I', .v.i32 = 1},
	                                   {.type = 'S', .v.str = amqp_cstr("x")}};
	struct amqp_array arr = {items, 2}, earr = {NULL, 0};
	struct amqp_table_entry top[] = {
	    {amqp_cstr("n"), {.type = 'F', .v.table.built = &in1}},
	    {amqp_cstr("m"), {.type = 'F', .v.table.built = &in1}},
	    {amqp_cstr("o"), {.type = 'F', .v.table.built = &in2}},
	    {amqp_cstr("arr"), {.type = 'A', .v.array.built = &arr}},
	    {amqp_cstr("e"), {.type = 'F', .v.table.built = &empty}},
	    {amqp_cstr("ea"), {.type = 'A', .v.array.built = &earr}},
	};
	struct amqp_table tab = {top, 6};
	uint8_t buf[256];
	struct amqp_wr w;
	amqp_wr_init(&w, buf, sizeof(buf));
	amqp_table_encode_contents(&w, &tab);
	CU_ASSERT_FATAL(amqp_wr_ok(&w));
	struct amqpd_table_view v = {buf, w.len};

	struct amqpd_value a = val(v, "n"), b = val(v, "m");
	CU_ASSERT_EQUAL(a.type, AMQPD_VALUE_TABLE);
	CU_ASSERT(plugin_value_equal(&a, &b));
	b = val(v, "o");
	CU_ASSERT_FALSE(plugin_value_equal(&a, &b));
	b = val(v, "arr");
	CU_ASSERT_FALSE(plugin_value_equal(&a, &b));
	a = val(v, "e");
	b = val(v, "ea");
	CU_ASSERT(plugin_value_equal(&a, &b)); /* [] == [] in Erlang */

	/* Iterate the nested table and the array. */
	struct amqpd_table_iter it;
	const uint8_t *k;
	size_t kl;
	a = val(v, "n");
	plugin_table_iter_init(&it, a.table);
	CU_ASSERT_EQUAL(plugin_table_next(&it, &k, &kl, &b), 1);
	CU_ASSERT(kl == 1 && k[0] == 'a' && b.is_integer && b.as_i64 == 1);
	CU_ASSERT_EQUAL(plugin_table_next(&it, &k, &kl, &b), 0);
	a = val(v, "arr");
	plugin_table_iter_init(&it, a.table);
	CU_ASSERT_EQUAL(plugin_array_next(&it, &b), 1);
	CU_ASSERT(b.type == 'I' && b.i == 1);
	CU_ASSERT_EQUAL(plugin_array_next(&it, &b), 1);
	CU_ASSERT(b.type == 'S' && b.len == 1 && b.str[0] == 'x');
	CU_ASSERT_EQUAL(plugin_array_next(&it, &b), 0);

	/* Whole-table iteration sees all six keys in order. */
	size_t count = 0;
	plugin_table_iter_init(&it, v);
	while (plugin_table_next(&it, NULL, NULL, &b) == 1)
		count++;
	CU_ASSERT_EQUAL(count, 6);
	/* Truncated input: -1, never a read past the end. */
	struct amqpd_table_view cut = {buf, 3};
	plugin_table_iter_init(&it, cut);
	CU_ASSERT_EQUAL(plugin_table_next(&it, &k, &kl, &b), -1);
	plugin_table_iter_init(&it, no_table);
	CU_ASSERT_EQUAL(plugin_table_next(&it, &k, &kl, &b), 0);
}

/* -------------------------------------------------------------- direct */

static void test_direct(void)
{
	int q1, q2, q3;
	struct ex x;
	struct got g;
	long base = live_blocks;

	CU_ASSERT_EQUAL_FATAL(ex_new(&x, "direct", no_table), 0);
	CU_ASSERT_EQUAL(ex_bind(&x, &q1, "k1"), 0);
	CU_ASSERT_EQUAL(ex_bind(&x, &q2, "k1"), 0);
	CU_ASSERT_EQUAL(ex_bind(&x, &q3, "k2"), 0);
	CU_ASSERT_EQUAL(ex_bind(&x, &q3, ""), 0);

	ex_route(&x, "k1", &g);
	CU_ASSERT(g.n == 2 && got_has(&g, &q1) && got_has(&g, &q2));
	ex_route(&x, "k2", &g);
	CU_ASSERT(g.n == 1 && got_has(&g, &q3));
	ex_route(&x, "", &g);
	CU_ASSERT(g.n == 1 && got_has(&g, &q3));
	ex_route(&x, "K1", &g); /* exact, case-sensitive */
	CU_ASSERT_EQUAL(g.n, 0);
	ex_route(&x, "k1.", &g);
	CU_ASSERT_EQUAL(g.n, 0);
	ex_route(&x, "k", &g);
	CU_ASSERT_EQUAL(g.n, 0);

	ex_unbind(&x, &q1, "k1");
	ex_route(&x, "k1", &g);
	CU_ASSERT(g.n == 1 && got_has(&g, &q2));
	ex_unbind(&x, &q1, "k1"); /* unknown: ignored */
	ex_unbind(&x, &q2, "nope");
	ex_unbind(&x, &q2, "k1");
	ex_route(&x, "k1", &g);
	CU_ASSERT_EQUAL(g.n, 0);
	ex_route(&x, "k2", &g);
	CU_ASSERT(g.n == 1 && got_has(&g, &q3));
	ex_free(&x);
	CU_ASSERT_EQUAL(live_blocks, base);
}

static void test_direct_same_dest_twice(void)
{
	/* One destination bound with one key twice (different arguments):
	 * it stays until both bindings are gone. */
	int q;
	struct ex x;
	struct got g;
	struct tbl a1, a2;
	struct amqpd_table_view v1 = mk(&a1, "n:I=1"), v2 = mk(&a2, "n:I=2");

	CU_ASSERT_EQUAL_FATAL(ex_new(&x, "direct", no_table), 0);
	CU_ASSERT_EQUAL(ex_bind_args(&x, &q, "k", v1), 0);
	CU_ASSERT_EQUAL(ex_bind_args(&x, &q, "k", v2), 0);
	ex_route(&x, "k", &g);
	CU_ASSERT(got_unique(&g) == 1 && got_has(&g, &q));
	ex_unbind_args(&x, &q, "k", v1);
	ex_route(&x, "k", &g);
	CU_ASSERT(got_has(&g, &q));
	ex_unbind_args(&x, &q, "k", v2);
	ex_route(&x, "k", &g);
	CU_ASSERT_EQUAL(g.n, 0);
	ex_free(&x);
}

static void test_direct_many(void)
{
	/* Enough keys and destinations to make the table grow. */
	static int q[600];
	char key[32];
	struct ex x;
	struct got g;
	long base = live_blocks;

	CU_ASSERT_EQUAL_FATAL(ex_new(&x, "direct", no_table), 0);
	for (int i = 0; i < 600; i++) {
		snprintf(key, sizeof(key), "key-%d", i % 200);
		CU_ASSERT_EQUAL(ex_bind(&x, &q[i], key), 0);
	}
	for (int k = 0; k < 200; k++) {
		snprintf(key, sizeof(key), "key-%d", k);
		ex_route(&x, key, &g);
		CU_ASSERT(g.n == 3 && got_has(&g, &q[k]) && got_has(&g, &q[k + 200]) &&
		          got_has(&g, &q[k + 400]));
	}
	for (int i = 0; i < 600; i += 2) {
		snprintf(key, sizeof(key), "key-%d", i % 200);
		ex_unbind(&x, &q[i], key);
	}
	for (int k = 0; k < 200; k++) {
		snprintf(key, sizeof(key), "key-%d", k);
		ex_route(&x, key, &g);
		for (int i = k; i < 600; i += 200)
			CU_ASSERT_EQUAL(got_has(&g, &q[i]), i % 2 == 1);
	}
	ex_free(&x);
	CU_ASSERT_EQUAL(live_blocks, base);
}

/* -------------------------------------------------------------- fanout */

static void test_fanout(void)
{
	int q1, q2, q3;
	struct ex x;
	struct got g;
	long base = live_blocks;

	CU_ASSERT_EQUAL_FATAL(ex_new(&x, "fanout", no_table), 0);
	ex_route(&x, "anything", &g);
	CU_ASSERT_EQUAL(g.n, 0);
	CU_ASSERT_EQUAL(ex_bind(&x, &q1, ""), 0);
	CU_ASSERT_EQUAL(ex_bind(&x, &q2, "ignored"), 0);
	CU_ASSERT_EQUAL(ex_bind(&x, &q3, "a"), 0);
	CU_ASSERT_EQUAL(ex_bind(&x, &q3, "b"), 0); /* same dest, other key */
	const char *keys[] = {"", "a", "x.y.z", "#"};
	for (size_t i = 0; i < 4; i++) {
		ex_route(&x, keys[i], &g);
		CU_ASSERT(g.n == 3 && got_has(&g, &q1) && got_has(&g, &q2) && got_has(&g, &q3));
	}
	ex_unbind(&x, &q3, "a");
	ex_route(&x, "k", &g);
	CU_ASSERT(g.n == 3 && got_has(&g, &q3)); /* still bound with "b" */
	ex_unbind(&x, &q3, "b");
	ex_unbind(&x, &q1, "");
	ex_route(&x, "k", &g);
	CU_ASSERT(g.n == 1 && got_has(&g, &q2));
	ex_free(&x);
	CU_ASSERT_EQUAL(live_blocks, base);
}

static void test_fanout_many(void)
{
	static int q[3000];
	struct ex x;
	struct got g;
	long base = live_blocks;

	CU_ASSERT_EQUAL_FATAL(ex_new(&x, "fanout", no_table), 0);
	for (int i = 0; i < 3000; i++)
		CU_ASSERT_EQUAL(ex_bind(&x, &q[i], "k"), 0);
	ex_route(&x, "k", &g);
	CU_ASSERT_EQUAL(g.n, 3000);
	CU_ASSERT_EQUAL(got_unique(&g), 3000);
	/* Remove two thirds (exercises backward-shift deletion and shrink). */
	for (int i = 0; i < 3000; i++) {
		if (i % 3)
			ex_unbind(&x, &q[i], "k");
	}
	ex_route(&x, "k", &g);
	CU_ASSERT_EQUAL(g.n, 1000);
	for (int i = 0; i < 3000; i += 3)
		CU_ASSERT(got_has(&g, &q[i]));
	for (int i = 0; i < 3000; i += 3)
		ex_unbind(&x, &q[i], "k");
	ex_route(&x, "k", &g);
	CU_ASSERT_EQUAL(g.n, 0);
	ex_free(&x);
	CU_ASSERT_EQUAL(live_blocks, base);
}

/* ------------------------------------------------------------- headers */

/* Bind one destination with `args`; does a message with `headers` match? */
static bool hmatch(const char *args, const char *headers)
{
	int q;
	struct ex x;
	struct got g;
	struct tbl ta, th;
	struct amqpd_table_view a = mk(&ta, args), h = mk(&th, headers);

	CU_ASSERT_EQUAL_FATAL(ex_new(&x, "headers", no_table), 0);
	CU_ASSERT_EQUAL(ex_bind_args(&x, &q, "", a), 0);
	ex_route_h(&x, "rk", h, &g);
	bool m = got_has(&g, &q);
	CU_ASSERT(g.n <= 1);
	ex_unbind_args(&x, &q, "", a);
	ex_route_h(&x, "rk", h, &g);
	CU_ASSERT_EQUAL(g.n, 0);
	ex_free(&x);
	return m;
}

static void test_headers_all_any(void)
{
	const char *all = "x-match:S=all;a:S=1;b:I=2";
	CU_ASSERT(hmatch(all, "a:S=1;b:I=2"));
	CU_ASSERT(hmatch(all, "b:I=2;a:S=1")); /* order does not matter */
	CU_ASSERT(hmatch(all, "a:S=1;b:I=2;c:S=extra"));
	CU_ASSERT(hmatch(all, "a:x=1;b:l=2")); /* bytes vs longstr, widths */
	CU_ASSERT_FALSE(hmatch(all, "a:S=1"));
	CU_ASSERT_FALSE(hmatch(all, "a:S=1;b:I=3"));
	CU_ASSERT_FALSE(hmatch(all, "a:S=1;b:S=2"));
	CU_ASSERT_FALSE(hmatch(all, ""));

	/* No x-match: all. */
	CU_ASSERT(hmatch("a:S=1;b:I=2", "a:S=1;b:I=2"));
	CU_ASSERT_FALSE(hmatch("a:S=1;b:I=2", "a:S=1"));

	const char *any = "x-match:S=any;a:S=1;b:I=2";
	CU_ASSERT(hmatch(any, "a:S=1"));
	CU_ASSERT(hmatch(any, "b:B=2"));
	CU_ASSERT(hmatch(any, "a:S=0;b:d=2.0"));
	CU_ASSERT_FALSE(hmatch(any, "a:S=2;b:I=3"));
	CU_ASSERT_FALSE(hmatch(any, "c:S=1"));
	CU_ASSERT_FALSE(hmatch(any, ""));
}

static void test_headers_with_x(void)
{
	/* all / any ignore x- arguments (other than using x-match). */
	CU_ASSERT(hmatch("x-match:S=all;x-foo:S=bar;a:I=1", "a:I=1"));
	CU_ASSERT_FALSE(hmatch("x-match:S=any;x-foo:S=bar", "x-foo:S=bar"));
	/* -with-x variants match x- arguments too (but never x-match). */
	const char *allx = "x-match:S=all-with-x;x-foo:S=bar;a:I=1";
	CU_ASSERT_FALSE(hmatch(allx, "a:I=1"));
	CU_ASSERT(hmatch(allx, "a:I=1;x-foo:S=bar"));
	CU_ASSERT_FALSE(hmatch(allx, "a:I=1;x-foo:S=baz"));
	const char *anyx = "x-match:S=any-with-x;x-foo:S=bar;a:I=1";
	CU_ASSERT(hmatch(anyx, "x-foo:S=bar"));
	CU_ASSERT(hmatch(anyx, "a:I=1"));
	CU_ASSERT_FALSE(hmatch(anyx, "x-foo:S=baz;a:I=2"));
	CU_ASSERT_FALSE(hmatch(anyx, ""));
	/* The message's own x-match header is just a header. */
	CU_ASSERT(hmatch("x-match:S=all-with-x", "x-match:S=any"));
}

static void test_headers_only_x_args(void)
{
	/* Nothing left to match: all matches everything, any nothing. */
	CU_ASSERT(hmatch("x-match:S=all;x-a:I=1", ""));
	CU_ASSERT(hmatch("x-match:S=all;x-a:I=1", "b:I=2"));
	CU_ASSERT(hmatch("x-match:S=all", ""));
	CU_ASSERT(hmatch("", ""));
	CU_ASSERT(hmatch("", "a:S=1"));
	CU_ASSERT(hmatch("x-a:I=1", "a:S=1"));
	CU_ASSERT_FALSE(hmatch("x-match:S=any;x-a:I=1", "x-a:I=1"));
	CU_ASSERT_FALSE(hmatch("x-match:S=any", "a:S=1"));
	CU_ASSERT_FALSE(hmatch("x-match:S=any-with-x", "a:S=1"));
	CU_ASSERT(hmatch("x-match:S=all-with-x", ""));
}

static void test_headers_void_and_types(void)
{
	/* A void binding value: presence of the header is enough. */
	CU_ASSERT(hmatch("x-match:S=all;a:V", "a:S=anything"));
	CU_ASSERT(hmatch("x-match:S=all;a:V", "a:V"));
	CU_ASSERT(hmatch("x-match:S=all;a:V", "a:I=0"));
	CU_ASSERT_FALSE(hmatch("x-match:S=all;a:V", "b:S=x"));
	CU_ASSERT_FALSE(hmatch("x-match:S=all;a:V;b:S=1", "a:S=x;b:S=2"));
	CU_ASSERT(hmatch("x-match:S=any;a:V;b:S=1", "a:I=5"));
	/* A void header only equals a void binding value. */
	CU_ASSERT_FALSE(hmatch("a:S=", "a:V"));
	/* Numbers by value across widths and signedness. */
	const char *five[] = {"b", "B", "s", "u", "I", "i", "l", "L", "T", "f", "d"};
	char args[64], hdr[64];
	for (size_t i = 0; i < 11; i++) {
		for (size_t j = 0; j < 11; j++) {
			snprintf(args, sizeof(args), "n:%s=5", five[i]);
			snprintf(hdr, sizeof(hdr), "n:%s=5", five[j]);
			CU_ASSERT(hmatch(args, hdr));
		}
	}
	CU_ASSERT_FALSE(hmatch("n:I=5", "n:d=5.5"));
	CU_ASSERT_FALSE(hmatch("n:I=5", "n:S=5"));
	CU_ASSERT_FALSE(hmatch("n:I=-1", "n:L=18446744073709551615"));
	CU_ASSERT(hmatch("n:L=9223372036854775813", "n:L=9223372036854775813"));
	CU_ASSERT_FALSE(hmatch("n:L=9223372036854775813", "n:l=-9223372036854775803"));
	/* Booleans are not numbers. */
	CU_ASSERT(hmatch("t:t=true", "t:t=true"));
	CU_ASSERT_FALSE(hmatch("t:t=true", "t:t=false"));
	CU_ASSERT_FALSE(hmatch("t:t=true", "t:I=1"));
	/* Keys are byte-exact. */
	CU_ASSERT_FALSE(hmatch("A:S=1", "a:S=1"));
	/* Missing headers altogether. */
	CU_ASSERT_FALSE(hmatch("a:S=1", ""));
}

static void test_headers_invalid_xmatch(void)
{
	int q;
	struct ex x;
	struct tbl t;
	char err[256];

	CU_ASSERT_EQUAL_FATAL(ex_new(&x, "headers", no_table), 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(x.t->vt.validate_binding);
	struct amqpd_binding b = binding(&q, "", mk(&t, "x-match:S=none;a:S=1"));
	CU_ASSERT_EQUAL(xvalidate_binding(x.t, x.st, &b, err, sizeof(err)), 406);
	CU_ASSERT_STRING_EQUAL(
	    err, "Invalid x-match field value <<\"none\">>; expected all, any, all-with-x, or "
	         "any-with-x");
	b = binding(&q, "", mk(&t, "x-match:I=1"));
	CU_ASSERT_EQUAL(xvalidate_binding(x.t, x.st, &b, err, sizeof(err)), 406);
	CU_ASSERT_STRING_EQUAL(err,
	                       "Invalid x-match field type signedint (value 1); expected longstr");
	b = binding(&q, "", mk(&t, "x-match:S=ALL"));
	CU_ASSERT_EQUAL(xvalidate_binding(x.t, x.st, &b, err, sizeof(err)), 406);
	const char *ok[] = {"x-match:S=all",        "x-match:S=any", "x-match:S=all-with-x",
	                    "x-match:S=any-with-x", "a:S=1",         ""};
	for (size_t i = 0; i < 6; i++) {
		b = binding(&q, "", mk(&t, ok[i]));
		CU_ASSERT_EQUAL(xvalidate_binding(x.t, x.st, &b, err, sizeof(err)), 0);
	}
	/* Small error buffers are truncated, not overrun. */
	b = binding(&q, "", mk(&t, "x-match:S=bogus"));
	CU_ASSERT_EQUAL(xvalidate_binding(x.t, x.st, &b, err, 8), 406);
	CU_ASSERT_EQUAL(strlen(err), 7);
	ex_free(&x);
}

static void test_headers_bindings(void)
{
	/* Several bindings; the same destination with two argument sets. */
	int q1, q2;
	struct ex x;
	struct got g;
	struct tbl a1, a2, a3, h;
	struct amqpd_table_view v1 = mk(&a1, "x-match:S=all;color:S=red");
	struct amqpd_table_view v2 = mk(&a2, "x-match:S=all;color:S=blue");
	struct amqpd_table_view v3 = mk(&a3, "x-match:S=any;size:I=1;color:S=blue");
	long base = live_blocks;

	CU_ASSERT_EQUAL_FATAL(ex_new(&x, "headers", no_table), 0);
	CU_ASSERT_EQUAL(ex_bind_args(&x, &q1, "", v1), 0);
	CU_ASSERT_EQUAL(ex_bind_args(&x, &q1, "", v2), 0);
	CU_ASSERT_EQUAL(ex_bind_args(&x, &q2, "", v3), 0);
	ex_route_h(&x, "", mk(&h, "color:S=red"), &g);
	CU_ASSERT(g.n == 1 && got_has(&g, &q1));
	ex_route_h(&x, "", mk(&h, "color:S=blue"), &g);
	CU_ASSERT(got_unique(&g) == 2 && got_has(&g, &q1) && got_has(&g, &q2));
	ex_route_h(&x, "", mk(&h, "size:l=1"), &g);
	CU_ASSERT(g.n == 1 && got_has(&g, &q2));
	ex_route_h(&x, "", no_table, &g);
	CU_ASSERT_EQUAL(g.n, 0);
	ex_unbind_args(&x, &q1, "", v2);
	ex_route_h(&x, "", mk(&h, "color:S=blue"), &g);
	CU_ASSERT(g.n == 1 && got_has(&g, &q2));
	ex_route_h(&x, "", mk(&h, "color:S=red"), &g);
	CU_ASSERT(g.n == 1 && got_has(&g, &q1));
	ex_free(&x);
	CU_ASSERT_EQUAL(live_blocks, base);
}

/* ------------------------------------------------------ x-modulus-hash */

enum { MH_KEYS = 2000 };

/* Where x sends key: the index in ord[0..n) of the one destination it
 * picked; -1 when it picked none, several or one not in ord. */
static int where(struct ex *x, const char *key, const void *const *ord, size_t n)
{
	struct got g;
	ex_route(x, key, &g);
	if (g.n != 1)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (ord[i] == g.d[0])
			return (int)i;
	}
	return -1;
}

/* x routes every key as a fresh exchange whose n destinations were bound
 * once each in the order ord[] gives (what a restart replays): the same
 * key to the same position, exactly one destination a message.  Routing
 * allocates nothing. */
static void check_order(struct ex *x, const void *const *ord, size_t n)
{
	static int ref[1024];
	static const void *rord[1024];
	struct ex r;
	char key[32];

	CU_ASSERT_FATAL(n <= 1024);
	CU_ASSERT_EQUAL_FATAL(ex_new(&r, "x-modulus-hash", no_table), 0);
	for (size_t i = 0; i < n; i++) {
		rord[i] = &ref[i];
		CU_ASSERT_EQUAL(ex_bind(&r, &ref[i], "other key"), 0);
	}
	long blocks = live_blocks;
	size_t bad = 0;
	for (int k = 0; k < MH_KEYS; k++) {
		snprintf(key, sizeof(key), "order-%d", k);
		int a = where(x, key, ord, n), b = where(&r, key, rord, n);
		bad += a < 0 || a != b;
	}
	CU_ASSERT_EQUAL(bad, 0);
	CU_ASSERT_EQUAL(live_blocks, blocks);
	ex_free(&r);
}

static void test_mhash_basic(void)
{
	int q[4];
	const void *ord[4] = {&q[0], &q[1], &q[2], &q[3]};
	size_t count[4] = {0};
	char key[32];
	struct ex x;
	struct got g, g2;
	long base = live_blocks;

	CU_ASSERT_EQUAL_FATAL(ex_new(&x, "x-modulus-hash", no_table), 0);
	ex_route(&x, "k", &g);
	CU_ASSERT_EQUAL(g.n, 0); /* nothing bound: nowhere */
	/* Binding keys are ignored, arguments too. */
	struct tbl a;
	CU_ASSERT_EQUAL(ex_bind(&x, &q[0], ""), 0);
	CU_ASSERT_EQUAL(ex_bind(&x, &q[1], "a"), 0);
	CU_ASSERT_EQUAL(ex_bind_args(&x, &q[2], "#", mk(&a, "x-match:S=any")), 0);
	CU_ASSERT_EQUAL(ex_bind(&x, &q[3], "b.c"), 0);
	for (int k = 0; k < MH_KEYS; k++) {
		snprintf(key, sizeof(key), "key-%d", k);
		ex_route(&x, key, &g);
		CU_ASSERT_EQUAL_FATAL(g.n, 1);
		ex_route(&x, key, &g2);
		CU_ASSERT(g2.n == 1 && g2.d[0] == g.d[0]); /* same key, same one */
		int i = where(&x, key, ord, 4);
		CU_ASSERT_FATAL(i >= 0);
		count[i]++;
	}
	fprintf(stderr, "  4 destinations -> %zu %zu %zu %zu\n", count[0], count[1], count[2],
	        count[3]);
	for (int i = 0; i < 4; i++)
		CU_ASSERT(count[i] > MH_KEYS / 4 / 2); /* a hash, not a constant */
	/* The empty key and long keys route too. */
	ex_route(&x, "", &g);
	CU_ASSERT_EQUAL(g.n, 1);
	char longkey[256];
	memset(longkey, 'k', 255);
	longkey[255] = '\0';
	ex_route(&x, longkey, &g);
	CU_ASSERT_EQUAL(g.n, 1);
	check_order(&x, ord, 4);
	/* One destination: everything goes there. */
	ex_unbind(&x, &q[0], "");
	ex_unbind(&x, &q[1], "a");
	ex_unbind_args(&x, &q[2], "#", mk(&a, "x-match:S=any"));
	for (int k = 0; k < 100; k++) {
		snprintf(key, sizeof(key), "key-%d", k);
		ex_route(&x, key, &g);
		CU_ASSERT(g.n == 1 && g.d[0] == &q[3]);
	}
	ex_unbind(&x, &q[3], "b.c");
	ex_route(&x, "k", &g);
	CU_ASSERT_EQUAL(g.n, 0);
	ex_free(&x);
	CU_ASSERT_EQUAL(live_blocks, base);
}

static void test_mhash_bind_order(void)
{
	/* The position a key picks depends on the bind order, not on the
	 * destinations' addresses: binding p2, p0, p1 routes like a fresh
	 * exchange bound in that order. */
	int p[3];
	struct ex x;
	const void *ord[3] = {&p[2], &p[0], &p[1]};

	CU_ASSERT_EQUAL_FATAL(ex_new(&x, "x-modulus-hash", no_table), 0);
	for (int i = 0; i < 3; i++)
		CU_ASSERT_EQUAL(ex_bind(&x, ord[i], ""), 0);
	check_order(&x, ord, 3);
	ex_free(&x);
}

static void test_mhash_duplicates(void)
{
	/* A destination bound several times counts once, at the place of its
	 * oldest live binding. */
	int q[3];
	struct ex x;
	struct tbl a;
	long base = live_blocks;

	CU_ASSERT_EQUAL_FATAL(ex_new(&x, "x-modulus-hash", no_table), 0);
	CU_ASSERT_EQUAL(ex_bind(&x, &q[0], "a"), 0);
	CU_ASSERT_EQUAL(ex_bind(&x, &q[1], ""), 0);
	CU_ASSERT_EQUAL(ex_bind(&x, &q[0], "b"), 0);
	CU_ASSERT_EQUAL(ex_bind_args(&x, &q[0], "a", mk(&a, "n:I=1")), 0); /* key a, other args */
	CU_ASSERT_EQUAL(ex_bind(&x, &q[2], ""), 0);
	const void *o1[3] = {&q[0], &q[1], &q[2]};
	check_order(&x, o1, 3); /* N is 3, not 5 */
	/* Unbinding something never bound: nothing changes. */
	ex_unbind(&x, &q[0], "nope");
	ex_unbind(&x, &q[1], "a");
	check_order(&x, o1, 3);
	/* A younger binding of q0 goes: q0 keeps its place. */
	ex_unbind(&x, &q[0], "b");
	check_order(&x, o1, 3);
	/* Its oldest goes: it now ranks by "a" with n=1, bound after q1 but
	 * before q2, as a replay of the remaining bindings would place it. */
	ex_unbind(&x, &q[0], "a");
	const void *o2[3] = {&q[1], &q[0], &q[2]};
	check_order(&x, o2, 3);
	/* Its last binding goes: two destinations left. */
	ex_unbind_args(&x, &q[0], "a", mk(&a, "n:I=1"));
	const void *o3[2] = {&q[1], &q[2]};
	check_order(&x, o3, 2);
	ex_unbind(&x, &q[1], "");
	ex_unbind(&x, &q[2], "");
	struct got g;
	ex_route(&x, "k", &g);
	CU_ASSERT_EQUAL(g.n, 0);
	ex_free(&x);
	CU_ASSERT_EQUAL(live_blocks, base);
}

static void test_mhash_unbind_rebind(void)
{
	int q[4];
	struct ex x;
	long base = live_blocks;

	CU_ASSERT_EQUAL_FATAL(ex_new(&x, "x-modulus-hash", no_table), 0);
	for (int i = 0; i < 4; i++)
		CU_ASSERT_EQUAL(ex_bind(&x, &q[i], ""), 0);
	/* Unbinding one renumbers the rest (N is now 3, in bind order). */
	ex_unbind(&x, &q[1], "");
	const void *o1[3] = {&q[0], &q[2], &q[3]};
	check_order(&x, o1, 3);
	/* Bound again, it is the newest: last. */
	CU_ASSERT_EQUAL(ex_bind(&x, &q[1], ""), 0);
	const void *o2[4] = {&q[0], &q[2], &q[3], &q[1]};
	check_order(&x, o2, 4);
	/* The first one and the last one leave. */
	ex_unbind(&x, &q[0], "");
	ex_unbind(&x, &q[1], "");
	const void *o3[2] = {&q[2], &q[3]};
	check_order(&x, o3, 2);
	ex_free(&x); /* with bindings left: destroy frees them */
	CU_ASSERT_EQUAL(live_blocks, base);
}

static void test_mhash_many(void)
{
	/* Enough destinations to grow and shrink the array. */
	static int q[1000];
	static const void *ord[1000];
	size_t n = 0;
	struct ex x;
	long base = live_blocks;

	CU_ASSERT_EQUAL_FATAL(ex_new(&x, "x-modulus-hash", no_table), 0);
	for (int i = 0; i < 1000; i++) {
		CU_ASSERT_EQUAL(ex_bind(&x, &q[i], "k"), 0);
		ord[i] = &q[i];
	}
	check_order(&x, ord, 1000);
	for (int i = 0; i < 1000; i++) {
		if (i % 3)
			ex_unbind(&x, &q[i], "k");
		else
			ord[n++] = &q[i];
	}
	check_order(&x, ord, n);
	for (size_t i = 0; i < n; i++)
		ex_unbind(&x, ord[i], "k");
	struct got g;
	ex_route(&x, "k", &g);
	CU_ASSERT_EQUAL(g.n, 0);
	ex_free(&x);
	CU_ASSERT_EQUAL(live_blocks, base);
}

/* ------------------------------------------------------------ x-random */

/* Route `routes` messages with varied keys; count what each of qs[0..nq)
 * got.  Every message goes to exactly one of them; routing allocates
 * nothing.  Returns the messages that went elsewhere (0 wanted). */
static size_t rspread(struct ex *x, const int *qs, size_t nq, size_t routes, size_t *count)
{
	char key[32];
	struct got g;
	size_t stray = 0;
	long blocks = live_blocks;

	memset(count, 0, nq * sizeof(*count));
	for (size_t r = 0; r < routes; r++) {
		snprintf(key, sizeof(key), "key-%zu", r % 7);
		ex_route(x, key, &g);
		CU_ASSERT_EQUAL_FATAL(g.n, 1);
		size_t i = 0;
		while (i < nq && g.d[0] != &qs[i])
			i++;
		if (i == nq)
			stray++;
		else
			count[i]++;
	}
	CU_ASSERT_EQUAL(live_blocks, blocks);
	return stray;
}

static void test_random_spread(void)
{
	int q[4];
	size_t count[4];
	struct ex x;
	struct got g;
	long base = live_blocks;

	CU_ASSERT_EQUAL_FATAL(ex_new(&x, "x-random", no_table), 0);
	ex_route(&x, "k", &g);
	CU_ASSERT_EQUAL(g.n, 0); /* nothing bound: nowhere */
	CU_ASSERT_EQUAL(ex_bind(&x, &q[0], ""), 0);
	for (int r = 0; r < 100; r++) {
		ex_route(&x, "k", &g);
		CU_ASSERT(g.n == 1 && g.d[0] == &q[0]);
	}
	CU_ASSERT_EQUAL(ex_bind(&x, &q[1], "ignored"), 0);
	CU_ASSERT_EQUAL(ex_bind(&x, &q[2], "a.b"), 0);
	CU_ASSERT_EQUAL(ex_bind(&x, &q[3], "#"), 0);
	/* 2500 expected each (sd 43): 1500 is 23 sd away. */
	CU_ASSERT_EQUAL(rspread(&x, q, 4, 10000, count), 0);
	fprintf(stderr, "  4 destinations, 10000 routes -> %zu %zu %zu %zu\n", count[0], count[1],
	        count[2], count[3]);
	for (int i = 0; i < 4; i++)
		CU_ASSERT(count[i] > 1500 && count[i] < 3500);
	/* The same key does not stick to one destination. */
	size_t seen = 0;
	bool hit[4] = {false};
	for (int r = 0; r < 200; r++) {
		ex_route(&x, "same", &g);
		for (int i = 0; i < 4; i++) {
			if (g.d[0] == &q[i] && !hit[i]) {
				hit[i] = true;
				seen++;
			}
		}
	}
	CU_ASSERT_EQUAL(seen, 4);
	ex_unbind(&x, &q[0], "");
	CU_ASSERT_EQUAL(rspread(&x, q + 1, 3, 3000, count), 0);
	for (int i = 0; i < 3; i++)
		CU_ASSERT(count[i] > 500);
	for (int i = 1; i < 4; i++)
		ex_unbind(&x, &q[i], i == 1 ? "ignored" : i == 2 ? "a.b" : "#");
	ex_route(&x, "k", &g);
	CU_ASSERT_EQUAL(g.n, 0);
	ex_free(&x);
	CU_ASSERT_EQUAL(live_blocks, base);
}

static void test_random_duplicates(void)
{
	/* One destination bound three times is still one destination: no
	 * triple share (4000 of 8000 expected if it counted thrice). */
	int q[3];
	size_t count[3];
	struct ex x;
	struct tbl a;
	long base = live_blocks;

	CU_ASSERT_EQUAL_FATAL(ex_new(&x, "x-random", no_table), 0);
	CU_ASSERT_EQUAL(ex_bind(&x, &q[0], "a"), 0);
	CU_ASSERT_EQUAL(ex_bind(&x, &q[0], "b"), 0);
	CU_ASSERT_EQUAL(ex_bind_args(&x, &q[0], "a", mk(&a, "n:I=1")), 0);
	CU_ASSERT_EQUAL(ex_bind(&x, &q[1], ""), 0);
	CU_ASSERT_EQUAL(ex_bind(&x, &q[2], ""), 0);
	CU_ASSERT_EQUAL(rspread(&x, q, 3, 6000, count), 0);
	fprintf(stderr, "  one destination bound thrice -> %zu %zu %zu\n", count[0], count[1],
	        count[2]);
	for (int i = 0; i < 3; i++)
		CU_ASSERT(count[i] > 1200 && count[i] < 2800); /* 2000 expected, sd 37 */
	/* It stays until its last binding goes. */
	ex_unbind(&x, &q[0], "a");
	ex_unbind(&x, &q[0], "b");
	CU_ASSERT_EQUAL(rspread(&x, q, 3, 3000, count), 0);
	CU_ASSERT(count[0] > 500);
	ex_unbind_args(&x, &q[0], "a", mk(&a, "n:I=1"));
	CU_ASSERT_EQUAL(rspread(&x, q, 3, 3000, count), 0);
	CU_ASSERT_EQUAL(count[0], 0);
	CU_ASSERT(count[1] > 1000 && count[2] > 1000);
	ex_free(&x);
	CU_ASSERT_EQUAL(live_blocks, base);
}

static void test_random_many(void)
{
	/* Grow and shrink both tables; the moves of swap-removal keep every
	 * remaining destination reachable and none of the removed ones. */
	static int q[200];
	size_t count[200];
	struct ex x;
	struct got g;
	long base = live_blocks;

	CU_ASSERT_EQUAL_FATAL(ex_new(&x, "x-random", no_table), 0);
	for (int i = 0; i < 200; i++)
		CU_ASSERT_EQUAL(ex_bind(&x, &q[i], "k"), 0);
	/* 100 expected each (sd 10). */
	CU_ASSERT_EQUAL(rspread(&x, q, 200, 20000, count), 0);
	for (int i = 0; i < 200; i++)
		CU_ASSERT(count[i] > 20);
	for (int i = 0; i < 200; i++) {
		if (i % 3)
			ex_unbind(&x, &q[i], "k");
	}
	/* 67 left, 150 expected each (sd 12). */
	CU_ASSERT_EQUAL(rspread(&x, q, 200, 10000, count), 0);
	for (int i = 0; i < 200; i++) {
		if (i % 3) {
			CU_ASSERT_EQUAL(count[i], 0);
		} else {
			CU_ASSERT(count[i] > 40);
		}
	}
	for (int i = 0; i < 200; i += 3)
		ex_unbind(&x, &q[i], "k");
	ex_route(&x, "k", &g);
	CU_ASSERT_EQUAL(g.n, 0);
	ex_free(&x);
	CU_ASSERT_EQUAL(live_blocks, base);
}

/* --------------------------------------------------------- out of memory */

static void test_oom(void)
{
	/* Fail the Nth allocation for every N: no crash, no leak, and whatever
	 * did bind routes (bindings that failed never do). */
	const char *types[] = {"direct",  "fanout",         "topic",
	                       "headers", "x-modulus-hash", "x-random"};
	const char *keys[] = {"a.b.c", "a.#", "*.b.*", "a.b.c", "x", "#", "a.b.c.d.e.f"};
	static int q[7];
	struct tbl t;
	struct amqpd_table_view args = mk(&t, "x-match:S=any;k:S=v");
	struct tbl th;
	struct amqpd_table_view hdr = mk(&th, "k:S=v");

	for (size_t ti = 0; ti < 6; ti++) {
		for (long n = 1; n < 60; n++) {
			struct ex x;
			struct got g;
			bool ok[7];
			long base = live_blocks;
			fail_countdown = n;
			if (ex_new(&x, types[ti], no_table) != 0) {
				fail_countdown = 0;
				CU_ASSERT_EQUAL(live_blocks, base);
				continue;
			}
			for (int i = 0; i < 7; i++)
				ok[i] = ex_bind_args(&x, &q[i], keys[i], args) == 0;
			fail_countdown = 0;
			ex_route_h(&x, "a.b.c", hdr, &g);
			for (int i = 0; i < 7; i++) {
				if (!ok[i])
					CU_ASSERT_FALSE(got_has(&g, &q[i]));
			}
			for (int i = 0; i < 7; i++) {
				if (ok[i])
					ex_unbind_args(&x, &q[i], keys[i], args);
			}
			ex_route_h(&x, "a.b.c", hdr, &g);
			CU_ASSERT_EQUAL(g.n, 0);
			ex_free(&x);
			CU_ASSERT_EQUAL(live_blocks, base);
		}
	}
}

/* ------------------------------------------- x-consistent-hash (extra) */

static const struct xtype *chx(void)
{
	const struct xtype *t = find_type("x-consistent-hash");
	CU_ASSERT_PTR_NOT_NULL_FATAL(t);
	return t;
}

static void test_chx_validate(void)
{
	const struct xtype *t = chx();
	struct tbl a;
	char err[256];
	int q;
	struct ex x;

	CU_ASSERT_PTR_NOT_NULL_FATAL(t->vt.validate);
	CU_ASSERT_EQUAL(xvalidate(t, no_table, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(xvalidate(t, mk(&a, "hash-header:S=user"), err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(
	    xvalidate(t, mk(&a, "hash-header:S=user;hash-property:S=message_id"), err, sizeof(err)),
	    406);
	CU_ASSERT_STRING_EQUAL(err, "hash-header and hash-property are mutually exclusive");
	CU_ASSERT_EQUAL(xvalidate(t, mk(&a, "hash-property:S=message_id"), err, sizeof(err)), 406);
	CU_ASSERT_EQUAL(xvalidate(t, mk(&a, "hash-header:I=1"), err, sizeof(err)), 406);

	CU_ASSERT_EQUAL_FATAL(ex_new(&x, "x-consistent-hash", no_table), 0);
	const char *good[] = {"1", "10", "+3", "007"};
	const char *bad[] = {"abc", "0", "-3", "", "1.5", " 1", "2x", "99999999999"};
	for (size_t i = 0; i < 4; i++) {
		struct amqpd_binding b = binding(&q, good[i], no_table);
		CU_ASSERT_EQUAL(xvalidate_binding(t, x.st, &b, err, sizeof(err)), 0);
	}
	for (size_t i = 0; i < 8; i++) {
		struct amqpd_binding b = binding(&q, bad[i], no_table);
		CU_ASSERT_EQUAL(xvalidate_binding(t, x.st, &b, err, sizeof(err)), 406);
	}
	struct amqpd_binding b = binding(&q, "abc", no_table);
	xvalidate_binding(t, x.st, &b, err, sizeof(err));
	CU_ASSERT_STRING_EQUAL(err, "The binding key must be an integer: <<\"abc\">>");
	b = binding(&q, "0", no_table);
	xvalidate_binding(t, x.st, &b, err, sizeof(err));
	CU_ASSERT_STRING_EQUAL(err, "The binding key must be greater than 0");
	ex_free(&x);
}

enum { NKEYS = 10000 };

/* Route NKEYS distinct keys; count per destination; check each message
 * goes to exactly one destination and the same key to the same one. */
static void spread(struct ex *x, const int *qs, size_t nq, size_t *count, bool by_header)
{
	char key[32], spec[64];
	struct got g, g2;
	struct tbl h;

	memset(count, 0, nq * sizeof(*count));
	for (int k = 0; k < NKEYS; k++) {
		snprintf(key, sizeof(key), "key-%d", k);
		snprintf(spec, sizeof(spec), "user:S=user-%d", k);
		struct amqpd_table_view hv = by_header ? mk(&h, spec) : no_table;
		ex_route_h(x, by_header ? "constant" : key, hv, &g);
		CU_ASSERT_EQUAL_FATAL(g.n, 1);
		ex_route_h(x, by_header ? "other" : key, hv, &g2);
		CU_ASSERT_EQUAL(g2.n, 1);
		CU_ASSERT(g2.d[0] == g.d[0]);
		for (size_t i = 0; i < nq; i++)
			count[i] += g.d[0] == &qs[i];
	}
}

static void test_chx_distribution(void)
{
	int qs[3];
	size_t count[3];
	struct ex x;
	struct got g;
	long base = live_blocks;

	CU_ASSERT_EQUAL_FATAL(ex_new(&x, "x-consistent-hash", no_table), 0);
	ex_route(&x, "k", &g);
	CU_ASSERT_EQUAL(g.n, 0); /* nothing bound */
	for (int i = 0; i < 3; i++)
		CU_ASSERT_EQUAL(ex_bind(&x, &qs[i], "1"), 0);
	spread(&x, qs, 3, count, false);
	fprintf(stderr, "  weights 1:1:1 -> %zu %zu %zu\n", count[0], count[1], count[2]);
	for (int i = 0; i < 3; i++)
		CU_ASSERT(count[i] > 2900 && count[i] < 3800);

	/* Removing the newest binding moves only the keys it had. */
	char key[32];
	const void *before[NKEYS];
	for (int k = 0; k < NKEYS; k++) {
		snprintf(key, sizeof(key), "key-%d", k);
		ex_route(&x, key, &g);
		before[k] = g.d[0];
	}
	ex_unbind(&x, &qs[2], "1");
	size_t moved = 0;
	for (int k = 0; k < NKEYS; k++) {
		snprintf(key, sizeof(key), "key-%d", k);
		ex_route(&x, key, &g);
		CU_ASSERT_FATAL(g.n == 1 && g.d[0] != &qs[2]);
		moved += before[k] != &qs[2] && g.d[0] != before[k];
	}
	CU_ASSERT_EQUAL(moved, 0);
	ex_unbind(&x, &qs[0], "1");
	ex_unbind(&x, &qs[1], "1");
	ex_route(&x, "k", &g);
	CU_ASSERT_EQUAL(g.n, 0);
	ex_free(&x);
	CU_ASSERT_EQUAL(live_blocks, base);
}

/* Loaded with --plugin-opt exchange-consistent-hash.max_weight=1000: the
 * option reached it through init and its userdata. */
static void test_chx_max_weight(void)
{
	const struct xtype *t = chx();
	struct ex x;
	int q;
	char err[256];
	CU_ASSERT_EQUAL(plugin_host_check_options(&phost), 0);
	CU_ASSERT_EQUAL_FATAL(ex_new(&x, "x-consistent-hash", no_table), 0);
	struct amqpd_binding b = binding(&q, "1000", no_table);
	CU_ASSERT_EQUAL(xvalidate_binding(t, x.st, &b, err, sizeof(err)), 0);
	b = binding(&q, "1001", no_table);
	CU_ASSERT_EQUAL(xvalidate_binding(t, x.st, &b, err, sizeof(err)), 406);
	CU_ASSERT_STRING_EQUAL(err, "The binding key (weight) is too large");
	ex_free(&x);
}

static void test_chx_weights(void)
{
	int qs[2];
	size_t count[2];
	struct ex x;

	CU_ASSERT_EQUAL_FATAL(ex_new(&x, "x-consistent-hash", no_table), 0);
	CU_ASSERT_EQUAL(ex_bind(&x, &qs[0], "1"), 0);
	CU_ASSERT_EQUAL(ex_bind(&x, &qs[1], "3"), 0);
	spread(&x, qs, 2, count, false);
	double share = (double)count[0] / NKEYS;
	fprintf(stderr, "  weights 1:3 -> %zu %zu\n", count[0], count[1]);
	CU_ASSERT(share > 0.21 && share < 0.29);
	ex_free(&x);
}

static void test_chx_hash_header(void)
{
	int qs[3];
	size_t count[3];
	struct ex x;
	struct got g, g2;
	struct tbl a, h;

	CU_ASSERT_EQUAL_FATAL(ex_new(&x, "x-consistent-hash", mk(&a, "hash-header:S=user")), 0);
	for (int i = 0; i < 3; i++)
		CU_ASSERT_EQUAL(ex_bind(&x, &qs[i], "1"), 0);
	spread(&x, qs, 3, count, true);
	fprintf(stderr, "  hash-header 1:1:1 -> %zu %zu %zu\n", count[0], count[1], count[2]);
	for (int i = 0; i < 3; i++)
		CU_ASSERT(count[i] > 2900 && count[i] < 3800);
	/* Integer header values hash by value, whatever their width. */
	ex_route_h(&x, "a", mk(&h, "user:I=42"), &g);
	ex_route_h(&x, "b", mk(&h, "user:l=42"), &g2);
	CU_ASSERT(g.n == 1 && g2.n == 1 && g.d[0] == g2.d[0]);
	/* Without the header: still exactly one destination, always the same. */
	ex_route_h(&x, "a", no_table, &g);
	ex_route_h(&x, "b", mk(&h, "other:S=1"), &g2);
	CU_ASSERT(g.n == 1 && g2.n == 1 && g.d[0] == g2.d[0]);
	ex_free(&x);
}

/* ---------------------------------------------------------------- main */

int main(void)
{
	const char *top = getenv("top_builddir");
	const char *names[] = {"direct", "fanout", "topic", "headers", "modulus_hash", "random"};
	char path[1024];

	if (!top || !*top)
		top = ".";
	host_start();
	for (size_t i = 0; i < 6; i++) {
		snprintf(path, sizeof(path), "%s/plugins/lib/exchange_%s.so", top, names[i]);
		if (!load_plugin(path))
			return 1;
	}
	const char *xp = getenv("AMQPD_EXTRA_PLUGIN");
	if (xp && *xp) {
		/* The example's option (test_chx_max_weight); the example is
		 * the only extra plugin the tests know. */
		char e[256];
		if (plugin_host_add_option(&phost, "exchange-consistent-hash.max_weight=1000", e,
		                           sizeof(e)) < 0)
			return 1;
		extra = load_plugin(xp);
		if (!extra)
			return 1;
	}
	/* The test-only plugins, after the built-in ones (plugins[0..5]). */
	char err[256];
	if (plugin_host_add_option(&phost, "test-probe.greeting=hello there", err, sizeof(err)) < 0)
		return 1;
	snprintf(path, sizeof(path), "%s/tests/unit/.libs/probe_plugin.so", top);
	if (!(probe = load_plugin(path)))
		return 1;
	snprintf(path, sizeof(path), "%s/tests/abi-v1/.libs/v1_direct.so", top);
	if (!(v1plugin = load_plugin(path)))
		return 1;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 99;
	CU_pSuite s = CU_add_suite("abi", NULL, NULL);
	ADD(s, test_abi_negotiation);
	ADD(s, test_abi_types);
	s = CU_add_suite("plugin_values", NULL, NULL);
	ADD(s, test_values_numeric);
	ADD(s, test_values_other);
	ADD(s, test_values_nested);
	s = CU_add_suite("direct", NULL, NULL);
	ADD(s, test_direct);
	ADD(s, test_direct_same_dest_twice);
	ADD(s, test_direct_many);
	s = CU_add_suite("fanout", NULL, NULL);
	ADD(s, test_fanout);
	ADD(s, test_fanout_many);
	s = CU_add_suite("topic", NULL, NULL);
	add_topic_tests(s);
	s = CU_add_suite("headers", NULL, NULL);
	ADD(s, test_headers_all_any);
	ADD(s, test_headers_with_x);
	ADD(s, test_headers_only_x_args);
	ADD(s, test_headers_void_and_types);
	ADD(s, test_headers_invalid_xmatch);
	ADD(s, test_headers_bindings);
	s = CU_add_suite("x-modulus-hash", NULL, NULL);
	ADD(s, test_mhash_basic);
	ADD(s, test_mhash_bind_order);
	ADD(s, test_mhash_duplicates);
	ADD(s, test_mhash_unbind_rebind);
	ADD(s, test_mhash_many);
	s = CU_add_suite("x-random", NULL, NULL);
	ADD(s, test_random_spread);
	ADD(s, test_random_duplicates);
	ADD(s, test_random_many);
	s = CU_add_suite("oom", NULL, NULL);
	ADD(s, test_oom);
	s = CU_add_suite("host", NULL, NULL);
	add_host_abi_tests(s);
	if (extra) {
		s = CU_add_suite("x-consistent-hash", NULL, NULL);
		ADD(s, test_chx_validate);
		ADD(s, test_chx_distribution);
		ADD(s, test_chx_weights);
		ADD(s, test_chx_hash_header);
		ADD(s, test_chx_max_weight);
	} else {
		printf("NOTE: x-consistent-hash suite skipped: AMQPD_EXTRA_PLUGIN not set "
		       "(tests/check-oot-plugin.sh runs it)\n");
	}
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	unsigned failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed() +
	                  CU_get_number_of_suites_failed();
	CU_cleanup_registry();
	unload_plugins();
	return failed ? 1 : 0;
}
