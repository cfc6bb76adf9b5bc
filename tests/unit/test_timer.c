/*
 * test_timer.c - CUnit tests of the model's timer heap (model/timer.h):
 * order, moving, cancelling, timers armed from a callback, and the
 * observer's notice when the earliest deadline moves.
 * Exit status: 0 when every test passed.
 */
#include <CUnit/Basic.h>
#include <stdint.h>
#include <stdlib.h>

#include "model/model.h"
#include "model/timer.h"

static uint64_t fired[2048];
static size_t nfired;
static unsigned notices;

static void note_fire(struct model_timer *t, uint64_t now)
{
	(void)now;
	fired[nfired++] = t->at;
}

static void timers_changed(struct model_observer *o)
{
	(void)o;
	notices++;
}

static struct model_observer obs = {NULL, NULL, timers_changed};

static void setup(struct model *md)
{
	model_init(md, NULL);
	md->obs = &obs;
	nfired = 0;
	notices = 0;
}

static void test_order(void)
{
	struct model md;
	setup(&md);
	enum { N = 1000 };
	static struct model_timer t[N];
	srand(7);
	for (int i = 0; i < N; i++) {
		model_timer_init(&t[i], note_fire);
		CU_ASSERT_EQUAL(model_timer_arm(&md, &t[i], 1000 + (uint64_t)(rand() % 5000)), 0);
	}
	/* cancel every third, move every fifth */
	for (int i = 0; i < N; i += 3)
		model_timer_cancel(&md, &t[i]);
	for (int i = 1; i < N; i += 5)
		model_timer_arm(&md, &t[i], 500 + (uint64_t)i);
	size_t armed = 0;
	for (int i = 0; i < N; i++)
		armed += model_timer_armed(&t[i]) ? 1 : 0;
	model_timers_run(&md, 3000);
	for (size_t i = 1; i < nfired; i++)
		CU_ASSERT(fired[i - 1] <= fired[i]);
	for (size_t i = 0; i < nfired; i++)
		CU_ASSERT(fired[i] <= 3000);
	CU_ASSERT(model_timers_next(&md) > 3000);
	model_timers_run(&md, UINT64_MAX - 1);
	CU_ASSERT_EQUAL(nfired, armed);
	CU_ASSERT_EQUAL(model_timers_next(&md), UINT64_MAX);
	for (int i = 0; i < N; i++)
		CU_ASSERT(!model_timer_armed(&t[i]));
	model_free(&md);
}

static struct model *chain_md;
static int chain_left;
static void chain_fire(struct model_timer *t, uint64_t now)
{
	nfired++;
	if (--chain_left > 0)
		model_timer_arm(chain_md, t, now); /* due again at once */
}

static void test_rearm_from_callback(void)
{
	struct model md;
	setup(&md);
	chain_md = &md;
	chain_left = 3;
	struct model_timer t;
	model_timer_init(&t, chain_fire);
	model_timer_arm(&md, &t, 10);
	model_timers_run(&md, 10);
	CU_ASSERT_EQUAL(nfired, 3);
	CU_ASSERT(!model_timer_armed(&t));
	model_free(&md);
}

static void test_notices(void)
{
	struct model md;
	setup(&md);
	struct model_timer a, b;
	model_timer_init(&a, note_fire);
	model_timer_init(&b, note_fire);
	model_timer_arm(&md, &a, 100);
	CU_ASSERT_EQUAL(notices, 1);
	model_timer_arm(&md, &b, 200); /* not the earliest: no notice */
	CU_ASSERT_EQUAL(notices, 1);
	model_timer_arm(&md, &b, 50);
	CU_ASSERT_EQUAL(notices, 2);
	model_timer_cancel(&md, &b);
	CU_ASSERT_EQUAL(notices, 3);
	CU_ASSERT_EQUAL(model_timers_next(&md), 100);
	model_timers_run(&md, 99);
	CU_ASSERT_EQUAL(nfired, 0);
	model_timers_run(&md, 100);
	CU_ASSERT_EQUAL(nfired, 1);
	CU_ASSERT_EQUAL(notices, 4);
	model_free(&md);
}

int main(void)
{
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	CU_pSuite s = CU_add_suite("timer", NULL, NULL);
	CU_add_test(s, "order", test_order);
	CU_add_test(s, "rearm_from_callback", test_rearm_from_callback);
	CU_add_test(s, "notices", test_notices);
	CU_basic_set_mode(CU_BRM_NORMAL);
	CU_basic_run_tests();
	unsigned f = CU_get_number_of_failures();
	CU_cleanup_registry();
	return f ? 1 : 0;
}
