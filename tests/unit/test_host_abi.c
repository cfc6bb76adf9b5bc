/*
 * test_host_abi.c - the ABI 2 host features, through the real plugin host
 * (exchange_test_host.c): status encoding, options and userdata, exchange
 * types that decline, per-plugin allocation accounting, timers,
 * run_on_loop from other threads, and an ABI 1 plugin (tests/abi-v1)
 * adapted by the host.
 *
 * The host functions are called through the API table the host gave the
 * probe plugin (plugins under test call exactly these).  Nothing waits on
 * wall-clock time: loops run until a condition holds, with an iteration
 * cap only against hangs.  Single-threaded except the posting threads of
 * the run_on_loop test.
 */
#include <CUnit/Basic.h>
#include <event2/event.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "abi_v1_fields.h"
#include "exchange_test_host.h"

struct amqpd_plugin *probe, *v1plugin;

static const struct amqpd_host_api *api(void)
{
	return &probe->api;
}

/* Run the loop until *flag (or the cap; each turn waits for an event). */
static void loop_until(const bool *flag)
{
	for (int i = 0; i < 100000 && !*flag; i++)
		event_base_loop(th_base, EVLOOP_ONCE);
}

/* -------------------------------------------------------------- status */

static void t_status(void)
{
	CU_ASSERT_EQUAL(AMQPD_ERR_REPLY(406), AMQPD_ERR_PRECONDITION_FAILED);
	CU_ASSERT_EQUAL(amqpd_status_reply_code(AMQPD_ERR_REPLY(404)), 404);
	CU_ASSERT_EQUAL(amqpd_status_reply_code(AMQPD_OK), 0);
	CU_ASSERT_EQUAL(amqpd_status_reply_code(AMQPD_PENDING), 0);
	CU_ASSERT_EQUAL(amqpd_status_reply_code(AMQPD_ERR_ERRNO(ENOSPC)), 541);
	CU_ASSERT_EQUAL(amqpd_status_errno(AMQPD_ERR_ERRNO(ENOSPC)), ENOSPC);
	CU_ASSERT_EQUAL(amqpd_status_errno(AMQPD_ERR_REPLY(406)), 0);
	CU_ASSERT(AMQPD_IS_ERROR(AMQPD_ERR_ERRNO(EIO)));
	CU_ASSERT(!AMQPD_IS_ERROR(AMQPD_DECLINED));
	char err[128];
	struct amqpd_option o = {"colour", "red"};
	CU_ASSERT_EQUAL(amqpd_no_options(NULL, 0, err, sizeof(err)), AMQPD_OK);
	CU_ASSERT_EQUAL(amqpd_no_options(&o, 1, err, sizeof(err)), AMQPD_ERR_PRECONDITION_FAILED);
	CU_ASSERT_STRING_EQUAL(err, "unknown option 'colour' (this plugin takes no options)");
	CU_ASSERT_EQUAL(amqpd_no_options(&o, 1, err, 8), AMQPD_ERR_PRECONDITION_FAILED);
	CU_ASSERT_STRING_EQUAL(err, "unknown");
}

/* ------------------------------------------------ options and userdata */

struct probe_view { /* the head of probe_plugin.c's struct probe */
	const struct amqpd_host_api *host;
	amqpd_plugin *self;
	char greeting[64];
	int created;
};

static void t_options_userdata(void)
{
	const struct probe_view *pv = probe->userdata;
	CU_ASSERT_PTR_NOT_NULL_FATAL(pv);
	CU_ASSERT_STRING_EQUAL(pv->greeting, "hello there");
	CU_ASSERT_PTR_EQUAL(pv->self, probe);
	CU_ASSERT_EQUAL(probe->abi, 2);
	char err[128];
	CU_ASSERT_EQUAL(plugin_option_check("a.b=c", err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(plugin_option_check("a.b=", err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(plugin_option_check("a.b.c=d=e", err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(plugin_option_check("nodot=1", err, sizeof(err)), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "no '.'"));
	CU_ASSERT_EQUAL(plugin_option_check("a.noequals", err, sizeof(err)), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "no '='"));
	CU_ASSERT_EQUAL(plugin_option_check(".k=v", err, sizeof(err)), -1);
	CU_ASSERT_EQUAL(plugin_option_check("p.=v", err, sizeof(err)), -1);
	CU_ASSERT_EQUAL(plugin_option_check("a=b.c", err, sizeof(err)), -1);
	/* Every option given named a loaded plugin. */
	CU_ASSERT_EQUAL(plugin_host_check_options(&phost), 0);
}

/* ------------------------------------------------------------- decline */

static void t_decline_chain(void)
{
	struct ex x;
	struct tbl a;
	int q1, q2;
	struct got g;
	const struct xtype *head = find_type("x-probe");
	CU_ASSERT_PTR_NOT_NULL_FATAL(head);
	CU_ASSERT_PTR_NOT_NULL_FATAL(head->next_same);
	CU_ASSERT_PTR_EQUAL(head->next_same->head, head);
	long base = live_blocks;

	/* Without the argument the first declines: the second serves. */
	CU_ASSERT_EQUAL_FATAL(ex_new(&x, "x-probe", no_table), 0);
	CU_ASSERT_PTR_EQUAL(x.t, head->next_same);
	CU_ASSERT_EQUAL(((const char *)x.st)[0], 'f');
	CU_ASSERT_EQUAL(ex_bind(&x, &q1, "k"), 0);
	ex_route(&x, "any", &g);
	CU_ASSERT(g.n == 1 && got_has(&g, &q1));
	ex_unbind(&x, &q1, "k");
	ex_free(&x);

	/* With it the first takes the exchange. */
	CU_ASSERT_EQUAL_FATAL(ex_new(&x, "x-probe", mk(&a, "x-probe-picky:S=yes")), 0);
	CU_ASSERT_PTR_EQUAL(x.t, head);
	CU_ASSERT_EQUAL(((const char *)x.st)[0], 'p');
	CU_ASSERT_EQUAL(ex_bind(&x, &q2, "k"), 0);
	ex_route(&x, "any", &g);
	CU_ASSERT(g.n == 1 && got_has(&g, &q2));
	ex_unbind(&x, &q2, "k");
	ex_free(&x);

	/* An error does not fall through to the next one. */
	CU_ASSERT_EQUAL(ex_new(&x, "x-probe", mk(&a, "x-probe-picky:I=1")), 406);
	/* When all decline: 406 and a reason. */
	char err[256];
	const struct xtype *t = find_type("x-probe-never");
	struct amqpd_exchange_state *st = NULL;
	CU_ASSERT_PTR_NOT_NULL_FATAL(t);
	CU_ASSERT_EQUAL(plugin_xtype_create(&t, no_table, &st, err, sizeof(err)), 406);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "accepts these arguments"));
	CU_ASSERT_EQUAL(live_blocks, base);
}

/* ------------------------------------------------------ the allocator */

static void t_accounting(void)
{
	const struct amqpd_host_api *h = api();
	struct amqpd_mem_usage u0 = {sizeof(u0), 0, 0, 0}, u = {sizeof(u), 0, 0, 0};
	CU_ASSERT_EQUAL(h->mem_usage(probe, &u0), AMQPD_OK);
	char *p = h->alloc(probe, 100);
	CU_ASSERT_PTR_NOT_NULL_FATAL(p);
	CU_ASSERT_EQUAL((uintptr_t)p % _Alignof(max_align_t), 0);
	memset(p, 'x', 100);
	h->mem_usage(probe, &u);
	CU_ASSERT_EQUAL(u.bytes, u0.bytes + 100);
	CU_ASSERT_EQUAL(u.blocks, u0.blocks + 1);
	p = h->realloc(probe, p, 5000);
	CU_ASSERT_PTR_NOT_NULL_FATAL(p);
	CU_ASSERT_EQUAL(p[99], 'x');
	h->mem_usage(probe, &u);
	CU_ASSERT_EQUAL(u.bytes, u0.bytes + 5000);
	CU_ASSERT_EQUAL(u.blocks, u0.blocks + 1);
	CU_ASSERT(u.peak_bytes >= u0.bytes + 5000);
	int *z = h->calloc(probe, 10, sizeof(int));
	CU_ASSERT_PTR_NOT_NULL_FATAL(z);
	CU_ASSERT_EQUAL(z[9], 0);
	CU_ASSERT_PTR_NULL(h->calloc(probe, SIZE_MAX / 2, 4)); /* overflow */
	CU_ASSERT_PTR_NULL(h->alloc(probe, SIZE_MAX - 4));
	h->free(probe, z);
	h->free(probe, p);
	h->free(probe, NULL);
	h->mem_usage(probe, &u);
	CU_ASSERT_EQUAL(u.bytes, u0.bytes);
	CU_ASSERT_EQUAL(u.blocks, u0.blocks);
	/* A short struct gets only what it has room for. */
	struct amqpd_mem_usage small = {offsetof(struct amqpd_mem_usage, blocks), 0, 77, 77};
	CU_ASSERT_EQUAL(h->mem_usage(probe, &small), AMQPD_OK);
	CU_ASSERT_EQUAL(small.blocks, 77);
	/* The failure hook. */
	fail_countdown = 1;
	CU_ASSERT_PTR_NULL(h->alloc(probe, 8));
	CU_ASSERT_EQUAL(fail_countdown, 0);
}

/* -------------------------------------------------------------- timers */

struct tick {
	int n, stop_at;
	bool done;
	void *ud_seen;
	amqpd_timer *self;
};

static void on_tick(void *ud, amqpd_timer *t, void *arg)
{
	struct tick *k = arg;
	k->ud_seen = ud;
	k->n++;
	if (k->stop_at && k->n == k->stop_at) {
		CU_ASSERT_EQUAL(api()->timer_cancel(probe, t), AMQPD_OK); /* from inside */
		k->done = true;
	}
	if (!k->stop_at)
		k->done = true;
}

static void t_timers(void)
{
	const struct amqpd_host_api *h = api();
	struct tick once = {0}, periodic = {0, 3, false, NULL, NULL}, never = {0}, after = {0};

	amqpd_timer *t1 = h->timer_start(probe, 0, 0, on_tick, &once);
	amqpd_timer *t2 = h->timer_start(probe, 1, 1, on_tick, &periodic);
	amqpd_timer *t3 = h->timer_start(probe, 0, 0, on_tick, &never);
	CU_ASSERT_FATAL(t1 && t2 && t3);
	CU_ASSERT_EQUAL(h->timer_cancel(probe, t3), AMQPD_OK);
	CU_ASSERT_EQUAL(h->timer_cancel(probe, t3), AMQPD_ERR_NOT_FOUND); /* stale */
	CU_ASSERT_PTR_NULL(h->timer_start(probe, 0, 0, NULL, NULL));
	loop_until(&once.done);
	loop_until(&periodic.done);
	CU_ASSERT_EQUAL(once.n, 1);
	CU_ASSERT_PTR_EQUAL(once.ud_seen, probe->userdata);
	CU_ASSERT_EQUAL(periodic.n, 3);
	/* A later timer fires; the cancelled one and the stopped periodic one
	 * never ran again before it (timers fire in deadline order). */
	amqpd_timer *t4 = h->timer_start(probe, 5, 0, on_tick, &after);
	CU_ASSERT_FATAL(t4 != NULL);
	loop_until(&after.done);
	CU_ASSERT_EQUAL(after.n, 1);
	CU_ASSERT_EQUAL(never.n, 0);
	CU_ASSERT_EQUAL(periodic.n, 3);
	/* Fired one-shots and cancelled periodic ones are no longer live. */
	CU_ASSERT_EQUAL(h->timer_cancel(probe, t1), AMQPD_ERR_NOT_FOUND);
	CU_ASSERT_EQUAL(h->timer_cancel(probe, t2), AMQPD_ERR_NOT_FOUND);
	CU_ASSERT_PTR_NULL(probe->timers);
	/* One left live is cancelled at unload (checked by ASan's leak check). */
	CU_ASSERT_PTR_NOT_NULL(h->timer_start(probe, 3600 * 1000, 0, on_tick, &never));
}

/* --------------------------------------------------------- run_on_loop */

#define POSTERS    4
#define PER_POSTER 20000 /* far more than the ring's first size: it grows */

struct posted {
	long count;
	long last[POSTERS];
	bool in_order, done;
	void *ud;
};

static struct posted posted;

static void on_posted(void *ud, void *arg)
{
	long v = (long)(intptr_t)arg;
	int who = (int)(v / PER_POSTER);
	if (v % PER_POSTER != posted.last[who] + 1)
		posted.in_order = false;
	posted.last[who] = v % PER_POSTER;
	posted.ud = ud;
	if (++posted.count == (long)POSTERS * PER_POSTER)
		posted.done = true;
}

static void *poster(void *arg)
{
	long who = (long)(intptr_t)arg;
	for (long i = 0; i < PER_POSTER; i++)
		api()->run_on_loop(probe, on_posted, (void *)(intptr_t)(who * PER_POSTER + i));
	return NULL;
}

static void t_run_on_loop(void)
{
	memset(&posted, 0, sizeof(posted));
	posted.in_order = true;
	for (int i = 0; i < POSTERS; i++)
		posted.last[i] = -1;
	pthread_t thr[POSTERS];
	for (long i = 0; i < POSTERS; i++)
		CU_ASSERT_FATAL(pthread_create(&thr[i], NULL, poster, (void *)(intptr_t)i) == 0);
	loop_until(&posted.done);
	for (int i = 0; i < POSTERS; i++)
		pthread_join(thr[i], NULL);
	CU_ASSERT_EQUAL(posted.count, (long)POSTERS * PER_POSTER); /* none dropped */
	CU_ASSERT(posted.in_order);                                /* per poster, in order */
	CU_ASSERT_PTR_EQUAL(posted.ud, probe->userdata);
	CU_ASSERT_EQUAL(api()->run_on_loop(probe, NULL, NULL), AMQPD_ERR_PRECONDITION_FAILED);
}

/* ------------------------------------------------------ an ABI 1 plugin */

static void t_v1_plugin(void)
{
	CU_ASSERT_EQUAL_FATAL(v1plugin->abi, 1);
	const struct xtype *t = find_type("x-v1-direct");
	CU_ASSERT_PTR_NOT_NULL_FATAL(t);
	CU_ASSERT_PTR_NOT_NULL(t->v1);
	struct ex x;
	struct tbl a;
	int q1, q2;
	struct got g;
	char err[256];
	/* validate's 406 and its reason come through. */
	CU_ASSERT_EQUAL(xvalidate(t, mk(&a, "x-v1-refuse:S=1"), err, sizeof(err)), 406);
	CU_ASSERT_STRING_EQUAL(err, "x-v1-refuse given");
	CU_ASSERT_EQUAL(ex_new(&x, "x-v1-direct", mk(&a, "x-v1-refuse:S=1")), 406);
	CU_ASSERT_EQUAL_FATAL(ex_new(&x, "x-v1-direct", no_table), 0);
	CU_ASSERT_EQUAL(ex_bind(&x, &q1, "a"), 0);
	CU_ASSERT_EQUAL(ex_bind(&x, &q2, "b"), 0);
	CU_ASSERT_EQUAL(ex_bind(&x, &q2, "a"), 0);
	ex_route(&x, "a", &g);
	CU_ASSERT(got_unique(&g) == 2 && got_has(&g, &q1) && got_has(&g, &q2));
	ex_route(&x, "b", &g);
	CU_ASSERT(g.n == 1 && got_has(&g, &q2));
	ex_unbind(&x, &q2, "a");
	ex_route(&x, "a", &g);
	CU_ASSERT(g.n == 1 && got_has(&g, &q1));
	ex_unbind(&x, &q1, "a");
	ex_unbind(&x, &q2, "b");
	ex_free(&x);
	/* A v1 name cannot be taken again (v1 types cannot decline). */
	struct amqpd_exchange_type again = t->vt;
	again.name = "x-v1-direct";
	CU_ASSERT_EQUAL(api()->register_exchange_type(probe, &again),
	                AMQPD_ERR_PRECONDITION_FAILED);
}

/* The host's private copy of the v1 layouts (plugin_v1.h) against the
 * frozen headers, member by member. */
static void t_v1_layout_frozen(void)
{
#define S(s)    {"sizeof " #s, sizeof(struct amqpd_v1_##s)},
#define F(s, m) {#s "." #m, offsetof(struct amqpd_v1_##s, m)},
	static const struct abi_layout host_v1[] = {ABI_V1_FIELDS};
#undef S
#undef F
#define S(s)    {"sizeof " #s, sizeof(struct amqpd_##s)},
#define F(s, m) {#s "." #m, offsetof(struct amqpd_##s, m)},
	static const struct abi_layout shared[] = {ABI_V1_SHARED};
#undef S
#undef F
	size_t nh = sizeof(host_v1) / sizeof(host_v1[0]), ns = sizeof(shared) / sizeof(shared[0]);
	CU_ASSERT_EQUAL_FATAL(abi_v1_frozen_n, nh + ns);
	for (size_t i = 0; i < abi_v1_frozen_n; i++) {
		const struct abi_layout *h = i < nh ? &host_v1[i] : &shared[i - nh];
		CU_ASSERT_STRING_EQUAL(h->what, abi_v1_frozen[i].what);
		if (h->value != abi_v1_frozen[i].value)
			fprintf(stderr, "  %s: host %zu, frozen v1 %zu\n", h->what, h->value,
			        abi_v1_frozen[i].value);
		CU_ASSERT_EQUAL(h->value, abi_v1_frozen[i].value);
	}
}

void add_host_abi_tests(CU_pSuite s)
{
	CU_add_test(s, "v1 layouts match the frozen headers", t_v1_layout_frozen);
	CU_add_test(s, "status encoding", t_status);
	CU_add_test(s, "options and userdata", t_options_userdata);
	CU_add_test(s, "declining exchange types", t_decline_chain);
	CU_add_test(s, "allocation accounting", t_accounting);
	CU_add_test(s, "timers", t_timers);
	CU_add_test(s, "run_on_loop from threads", t_run_on_loop);
	CU_add_test(s, "an ABI 1 plugin", t_v1_plugin);
}
