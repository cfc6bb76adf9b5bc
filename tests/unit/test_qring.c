/*
 * test_qring.c - CUnit tests of the per-priority ring (model/qring.h)
 * against a plain sorted array as the model: pushes with gaps in the
 * seqs (other priority levels take numbers), finds (the interpolation
 * search), kills (tombstones, compaction), requeue inserts, shifts, and a
 * ring that drains and gives memory back.
 * Exit status: 0 when every test passed.
 */
#include <CUnit/Basic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "model/qring.h"

#define MAXN 20000

static uint64_t model[MAXN]; /* live seqs, ascending */
static size_t nmodel;

static uint64_t rnd_state = 88172645463325252ULL;
static uint64_t rnd(void)
{
	rnd_state ^= rnd_state << 13;
	rnd_state ^= rnd_state >> 7;
	rnd_state ^= rnd_state << 17;
	return rnd_state;
}

static void model_del(size_t i)
{
	for (size_t k = i + 1; k < nmodel; k++)
		model[k - 1] = model[k];
	nmodel--;
}

static void model_ins(uint64_t seq)
{
	size_t i = nmodel;
	while (i > 0 && model[i - 1] > seq) {
		model[i] = model[i - 1];
		i--;
	}
	model[i] = seq;
	nmodel++;
}

static bool matches(struct qring *r)
{
	if (qring_live(r) != nmodel)
		return false;
	size_t k = 0;
	for (size_t i = 0; i < r->n; i++) {
		struct qentry *e = qring_at(r, i);
		if (e->dead)
			continue;
		if (e->seq != model[k++])
			return false;
	}
	return true;
}

static void test_find_with_gaps_and_kills(void)
{
	struct qring r = {0};
	uint64_t seq = 1;
	nmodel = 0;
	for (int i = 0; i < MAXN; i++) {
		seq += 1 + (rnd() % 4 == 0 ? rnd() % 50 : 0); /* uneven gaps */
		struct qentry e = {.seq = seq};
		CU_ASSERT_FATAL(qring_push(&r, &e));
		model[nmodel++] = seq;
	}
	/* Every live seq is found; numbers in between are not. */
	for (size_t i = 0; i < nmodel; i += 7) {
		struct qentry *e = qring_find(&r, model[i]);
		CU_ASSERT(e && e->seq == model[i]);
		if (i + 1 < nmodel && model[i + 1] > model[i] + 1)
			CU_ASSERT_PTR_NULL(qring_find(&r, model[i] + 1));
	}
	CU_ASSERT_PTR_NULL(qring_find(&r, 0));
	CU_ASSERT_PTR_NULL(qring_find(&r, seq + 1));
	/* Kill three quarters at random (tombstones, then compaction). */
	for (int i = 0; i < MAXN * 3 / 4; i++) {
		size_t k = rnd() % nmodel;
		struct qentry *e = qring_find(&r, model[k]);
		CU_ASSERT_FATAL(e != NULL);
		qring_kill(&r, e);
		CU_ASSERT_PTR_NULL(qring_find(&r, model[k]));
		model_del(k);
	}
	CU_ASSERT(matches(&r));
	for (size_t i = 0; i < nmodel; i++)
		CU_ASSERT(qring_find(&r, model[i]) != NULL);
	qring_free(&r);
}

static void test_insert_shift_and_shrink(void)
{
	struct qring r = {0};
	nmodel = 0;
	for (uint64_t s = 2; s <= 2 * MAXN / 2; s += 2) {
		struct qentry e = {.seq = s};
		CU_ASSERT_FATAL(qring_push(&r, &e));
		model[nmodel++] = s;
	}
	/* Requeues: odd seqs back at their place. */
	for (int i = 0; i < 500; i++) {
		uint64_t s = 2 * (rnd() % (MAXN / 2)) + 1;
		if (qring_find(&r, s))
			continue;
		struct qentry e = {.seq = s};
		CU_ASSERT_FATAL(qring_insert(&r, &e));
		model_ins(s);
	}
	CU_ASSERT(matches(&r));
	size_t big = r.cap;
	/* Drain from the front: order kept, memory given back. */
	while (nmodel) {
		struct qentry e = qring_shift(&r);
		CU_ASSERT_EQUAL(e.seq, model[0]);
		model_del(0);
		if (nmodel % 997 == 0)
			CU_ASSERT(matches(&r));
	}
	CU_ASSERT_PTR_NULL(qring_front(&r));
	CU_ASSERT(r.cap < big);
	CU_ASSERT(r.cap <= 2048);
	qring_free(&r);
}

int main(void)
{
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	CU_pSuite s = CU_add_suite("qring", NULL, NULL);
	CU_add_test(s, "find_with_gaps_and_kills", test_find_with_gaps_and_kills);
	CU_add_test(s, "insert_shift_and_shrink", test_insert_shift_and_shrink);
	CU_basic_set_mode(CU_BRM_NORMAL);
	CU_basic_run_tests();
	unsigned f = CU_get_number_of_failures();
	CU_cleanup_registry();
	return f ? 1 : 0;
}
