/*
 * test_topic.c - CUnit tests for the topic exchange type (the "topic" suite
 * of test_exchanges, through the host in exchange_test_host.c).
 *
 * RabbitMQ's own topic_matching test (bindings, expected routes, the same
 * after removing some), one binding against one key for every corner of
 * the word syntax (empty words, '*' and '#' only as whole words), random
 * bindings and keys checked against a reference recursive matcher, and
 * pathological keys the trie must answer at once.  Every test checks the
 * trie is pruned and all memory comes back.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "exchange_test_host.h"

/* --------------------------------------------------------------- topic */

#define MAXW 260

/* RabbitMQ's split_topic_key: "" has no words; '.' separates words. */
static size_t split_words(const char *s, const char *w[], size_t wl[])
{
	size_t n = 0, len = strlen(s), start = 0;
	if (len == 0)
		return 0;
	for (size_t i = 0; i <= len; i++) {
		if (i < len && s[i] != '.')
			continue;
		w[n] = s + start;
		wl[n] = i - start;
		n++;
		start = i + 1;
	}
	return n;
}

/* The obvious recursive matcher, as a reference for the trie. */
static bool ref_words(const char **bw, const size_t *bl, size_t nb, const char **kw,
                      const size_t *kl, size_t nk)
{
	if (nb == 0)
		return nk == 0;
	if (bl[0] == 1 && bw[0][0] == '#') {
		for (size_t j = 0; j <= nk; j++) {
			if (ref_words(bw + 1, bl + 1, nb - 1, kw + j, kl + j, nk - j))
				return true;
		}
		return false;
	}
	if (nk == 0)
		return false;
	if ((bl[0] == 1 && bw[0][0] == '*') || (bl[0] == kl[0] && memcmp(bw[0], kw[0], kl[0]) == 0))
		return ref_words(bw + 1, bl + 1, nb - 1, kw + 1, kl + 1, nk - 1);
	return false;
}

static bool ref_match(const char *bkey, const char *rkey)
{
	const char *bw[MAXW], *kw[MAXW];
	size_t bl[MAXW], kl[MAXW];
	size_t nb = split_words(bkey, bw, bl), nk = split_words(rkey, kw, kl);
	return ref_words(bw, bl, nb, kw, kl, nk);
}

/* RabbitMQ's topic_matching test (rabbit unit_exchange / topic1). */
static const struct {
	const char *key;
	int q;
	const char *args;
} rmq_bindings[] = {
    {"a.b.c", 1, ""},
    {"a.*.c", 2, ""},
    {"a.#.b", 3, ""},
    {"a.b.b.c", 4, ""},
    {"#", 5, ""},
    {"#.#", 6, ""},
    {"#.b", 7, ""},
    {"*.*", 8, ""},
    {"a.*", 9, ""},
    {"*.b.c", 10, ""},
    {"a.#", 11, ""},
    {"a.#.#", 12, ""},
    {"b.b.c", 13, ""},
    {"a.b.b", 14, ""},
    {"a.b", 15, ""},
    {"b.c", 16, ""},
    {"", 17, ""},
    {"*.*.*", 18, ""},
    {"vodka.martini", 19, ""},
    {"a.b.c", 20, ""},
    {"*.#", 21, ""},
    {"#.*.#", 22, ""},
    {"*.#.#", 23, ""},
    {"#.#.#", 24, ""},
    {"*", 25, ""},
    {"#.b.#", 26, ""},
    {"args-test", 27, "foo:S=bar"},
    {"args-test", 27, "foo:S=baz"},
};

struct rmq_expect {
	const char *key;
	int q[16]; /* zero-terminated */
};

static const struct rmq_expect rmq_phase1[] = {
    {"a.b.c", {1, 2, 5, 6, 10, 11, 12, 18, 20, 21, 22, 23, 24, 26}},
    {"a.b", {3, 5, 6, 7, 8, 9, 11, 12, 15, 21, 22, 23, 24, 26}},
    {"a.b.b", {3, 5, 6, 7, 11, 12, 14, 18, 21, 22, 23, 24, 26}},
    {"", {5, 6, 17, 24}},
    {"b.c.c", {5, 6, 18, 21, 22, 23, 24, 26}},
    {"a.a.a.a.a", {5, 6, 11, 12, 21, 22, 23, 24}},
    {"vodka.gin", {5, 6, 8, 21, 22, 23, 24}},
    {"vodka.martini", {5, 6, 8, 19, 21, 22, 23, 24}},
    {"b.b.c", {5, 6, 10, 13, 18, 21, 22, 23, 24, 26}},
    {"nothing.here.at.all", {5, 6, 21, 22, 23, 24}},
    {"oneword", {5, 6, 21, 22, 23, 24, 25}},
    {"args-test", {5, 6, 21, 22, 23, 24, 25, 27}},
};

/* After removing bindings 1, 5, 11, 19, 21 and 28 (1-based). */
static const struct rmq_expect rmq_phase2[] = {
    {"a.b.c", {2, 6, 10, 12, 18, 20, 22, 23, 24, 26}},
    {"a.b", {3, 6, 7, 8, 9, 12, 15, 22, 23, 24, 26}},
    {"a.b.b", {3, 6, 7, 12, 14, 18, 22, 23, 24, 26}},
    {"", {6, 17, 24}},
    {"b.c.c", {6, 18, 22, 23, 24, 26}},
    {"a.a.a.a.a", {6, 12, 22, 23, 24}},
    {"vodka.gin", {6, 8, 22, 23, 24}},
    {"vodka.martini", {6, 8, 22, 23, 24}},
    {"b.b.c", {6, 10, 13, 18, 22, 23, 24, 26}},
    {"nothing.here.at.all", {6, 22, 23, 24}},
    {"oneword", {6, 22, 23, 24, 25}},
    {"args-test", {6, 22, 23, 24, 25, 27}},
};

static void check_expect(struct ex *x, const int *qs, const struct rmq_expect *e, size_t n)
{
	struct got g;
	for (size_t i = 0; i < n; i++) {
		size_t want = 0;
		ex_route(x, e[i].key, &g);
		for (const int *q = e[i].q; *q; q++, want++) {
			if (!got_has(&g, &qs[*q])) {
				fprintf(stderr, "  key \"%s\": t%d missing\n", e[i].key, *q);
				CU_FAIL("expected destination missing");
			}
		}
		if (got_unique(&g) != want) {
			fprintf(stderr, "  key \"%s\": %zu destinations, want %zu\n", e[i].key,
			        got_unique(&g), want);
			CU_FAIL("unexpected destinations");
		}
	}
}

static void test_topic_rabbitmq(void)
{
	int qs[28];
	struct ex x;
	struct got g;
	struct tbl args[28];
	long base = live_blocks;
	size_t nb = sizeof(rmq_bindings) / sizeof(rmq_bindings[0]);

	CU_ASSERT_EQUAL_FATAL(ex_new(&x, "topic", no_table), 0);
	long empty = live_blocks;
	for (size_t i = 0; i < nb; i++) {
		struct amqpd_table_view a = mk(&args[i], rmq_bindings[i].args);
		CU_ASSERT_EQUAL(ex_bind_args(&x, &qs[rmq_bindings[i].q], rmq_bindings[i].key, a),
		                0);
	}
	check_expect(&x, qs, rmq_phase1, sizeof(rmq_phase1) / sizeof(rmq_phase1[0]));

	const size_t removed[] = {1, 5, 11, 19, 21, 28};
	for (size_t r = 0; r < 6; r++) {
		size_t i = removed[r] - 1;
		struct amqpd_table_view a = mk(&args[i], rmq_bindings[i].args);
		ex_unbind_args(&x, &qs[rmq_bindings[i].q], rmq_bindings[i].key, a);
	}
	check_expect(&x, qs, rmq_phase2, sizeof(rmq_phase2) / sizeof(rmq_phase2[0]));

	/* Remove the rest: nothing routes and the trie is pruned to its root. */
	for (size_t i = 0; i < nb; i++) {
		bool gone = false;
		for (size_t r = 0; r < 6; r++)
			gone = gone || removed[r] - 1 == i;
		if (gone)
			continue;
		struct amqpd_table_view a = mk(&args[i], rmq_bindings[i].args);
		ex_unbind_args(&x, &qs[rmq_bindings[i].q], rmq_bindings[i].key, a);
	}
	const char *keys[] = {"a.b.c", "b.b.c", "", "args-test"};
	for (size_t i = 0; i < 4; i++) {
		ex_route(&x, keys[i], &g);
		CU_ASSERT_EQUAL(g.n, 0);
	}
	CU_ASSERT_EQUAL(live_blocks, empty);
	ex_free(&x);
	CU_ASSERT_EQUAL(live_blocks, base);
}

/* One binding against one routing key.  Empty words are words: "a..b" has
 * three, "." has two, but "" has none - so "#" and "" match "", "*" does
 * not.  '*' and '#' are wildcards only as whole words of the binding. */
static const struct {
	const char *binding, *key;
	bool match;
} topic_cases[] = {
    {"#", "", true},
    {"#", "a", true},
    {"#", "a.b.c", true},
    {"#", ".", true},
    {"#", "#", true},
    {"*", "", false},
    {"*", "a", true},
    {"*", "a.b", false},
    {"*", ".", false},
    {"*", "*", true},
    {"a", "*", false},
    {"a", "#", false},
    {"", "", true},
    {"", "a", false},
    {"", ".", false},
    {".", ".", true},
    {".", "", false},
    {"*.*", ".", true},
    {"*.*", "a.b", true},
    {"*.*", "a", false},
    {"*.*", "a.b.c", false},
    {"a.*.c", "a.b.c", true},
    {"a.*.c", "a.c", false},
    {"a.*.c", "a..c", true},
    {"a.*.c", "a.b.b.c", false},
    {"a.#", "a", true},
    {"a.#", "a.b", true},
    {"a.#", "a.b.c", true},
    {"a.#", "a.", true},
    {"a.#", "b.a", false},
    {"a.#", "", false},
    {"#.b", "b", true},
    {"#.b", "a.b", true},
    {"#.b", "a.b.c", false},
    {"#.b", "", false},
    {"#.b", "x.y.b", true},
    {"a.#.b", "a.b", true},
    {"a.#.b", "a.x.b", true},
    {"a.#.b", "a.x.y.b", true},
    {"a.#.b", "a..b", true},
    {"a.#.b", "a.b.c", false},
    {"a.#.b", "a", false},
    {"a.#.b", "b", false},
    {"a.#.b", "a.b.b", true},
    {"#.#", "", true},
    {"#.#", "a.b", true},
    {"#.#.#", "a", true},
    {"a.#.#.b", "a.b", true},
    {"a.#.#.b", "a.x.y.z.b", true},
    {"a.#.#.b", "a.x", false},
    {"*.#", "", false},
    {"*.#", "a", true},
    {"*.#", "a.b.c", true},
    {"#.*", "", false},
    {"#.*", "a", true},
    {"#.*", "a.b", true},
    {"#.*.#", "", false},
    {"#.*.#", "x", true},
    {"#.*.#", "x.y.z", true},
    {"*.#.*", "a", false},
    {"*.#.*", "a.b", true},
    {"*.#.*", "a.b.c.d", true},
    {"a..b", "a..b", true},
    {"a..b", "a.b", false},
    {"a.*.b", "a..b", true},
    {"a.", "a.", true},
    {"a.", "a", false},
    {"a.*", "a.", true},
    {".a", ".a", true},
    {"*.a", ".a", true},
    {"a.b", "a.b", true},
    {"a.b", "A.B", false},
    {"a.b", "a.b.", false},
    {"a*.b", "ab.b", false},
    {"a*.b", "a*.b", true},
    {"#a", "a", false},
    {"#a", "#a", true},
    {"a.#", "a.#", true},
    {"a.b.#", "a.b", true},
    {"#.a.b", "a.b", true},
    {"*.b.#", "a.b", true},
    {"*.b.#", "b", false},
    {"#.b.#", "b", true},
    {"#.b.#", "a.c", false},
    {"..", "..", true},
    {"..", ".", false},
    {"*.*.*", "..", true},
};

static void test_topic_cases(void)
{
	int q;
	struct ex x;
	struct got g;
	long base = live_blocks;

	CU_ASSERT_EQUAL_FATAL(ex_new(&x, "topic", no_table), 0);
	long empty = live_blocks;
	for (size_t i = 0; i < sizeof(topic_cases) / sizeof(topic_cases[0]); i++) {
		const char *b = topic_cases[i].binding, *k = topic_cases[i].key;
		/* The table itself agrees with the reference matcher. */
		CU_ASSERT_EQUAL(ref_match(b, k), topic_cases[i].match);
		CU_ASSERT_EQUAL(ex_bind(&x, &q, b), 0);
		ex_route(&x, k, &g);
		if (got_has(&g, &q) != topic_cases[i].match || g.n > 1) {
			fprintf(stderr, "  binding \"%s\" key \"%s\": got %zu, want %d\n", b, k,
			        g.n, topic_cases[i].match);
			CU_FAIL("topic case");
		}
		ex_unbind(&x, &q, b);
		ex_route(&x, k, &g);
		CU_ASSERT_EQUAL(g.n, 0);
		CU_ASSERT_EQUAL(live_blocks, empty);
	}
	ex_free(&x);
	CU_ASSERT_EQUAL(live_blocks, base);
}

static uint64_t rng_state = 0x2545F4914F6CDD1DULL;

static uint64_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

static void random_key(char *buf, size_t cap, bool wildcards)
{
	static const char *lit[] = {"a", "b", "c", ""};
	static const char *wild[] = {"a", "b", "c", "", "*", "#", "*", "#"};
	size_t n = rng() % 6, o = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		const char *w = wildcards ? wild[rng() % 8] : lit[rng() % 4];
		o += (size_t)snprintf(buf + o, cap - o, "%s%s", i ? "." : "", w);
	}
}

static void test_topic_random(void)
{
	/* 400 random bindings, 600 random keys: the trie must agree with the
	 * reference matcher before and after unbinding half of them. */
	enum { NB = 400, NK = 600 };
	static char bkeys[NB][64], rkeys[NK][64];
	static int qs[NB];
	static struct got g;
	struct ex x;
	long base = live_blocks;

	CU_ASSERT_EQUAL_FATAL(ex_new(&x, "topic", no_table), 0);
	long empty = live_blocks;
	for (int i = 0; i < NB; i++) {
		random_key(bkeys[i], sizeof(bkeys[i]), true);
		CU_ASSERT_EQUAL(ex_bind(&x, &qs[i], bkeys[i]), 0);
	}
	for (int k = 0; k < NK; k++)
		random_key(rkeys[k], sizeof(rkeys[k]), false);
	for (int pass = 0; pass < 2; pass++) {
		size_t bad = 0;
		for (int k = 0; k < NK; k++) {
			ex_route(&x, rkeys[k], &g);
			for (int i = 0; i < NB; i++) {
				bool bound = pass == 0 || i % 2 == 1;
				bool want = bound && ref_match(bkeys[i], rkeys[k]);
				if (got_has(&g, &qs[i]) != want && bad++ < 5)
					fprintf(stderr, "  binding \"%s\" key \"%s\": want %d\n",
					        bkeys[i], rkeys[k], want);
			}
			/* Every trie node emits at most once per message. */
			CU_ASSERT_EQUAL(g.n, got_unique(&g));
		}
		CU_ASSERT_EQUAL(bad, 0);
		for (int i = 0; pass == 0 && i < NB; i += 2)
			ex_unbind(&x, &qs[i], bkeys[i]);
	}
	for (int i = 1; i < NB; i += 2)
		ex_unbind(&x, &qs[i], bkeys[i]);
	CU_ASSERT_EQUAL(live_blocks, empty);
	ex_free(&x);
	CU_ASSERT_EQUAL(live_blocks, base);
}

static void test_topic_pathological(void)
{
	/* "#.a.#.a...#.a" against 127 a's and a "b": plain backtracking
	 * would try C(127, 63) splits; the trie must answer at once. */
	char bkey[256] = "", rmatch[256] = "", rmiss[256] = "", dots[256];
	int q, q2;
	struct ex x;
	struct got g;

	for (int i = 0; i < 63; i++)
		strcat(bkey, i ? ".#.a" : "#.a");
	for (int i = 0; i < 128; i++)
		strcat(rmatch, i ? ".a" : "a");
	for (int i = 0; i < 127; i++)
		strcat(rmiss, "a.");
	strcat(rmiss, "b");
	CU_ASSERT(strlen(bkey) <= 255 && strlen(rmatch) <= 255 && strlen(rmiss) <= 255);

	CU_ASSERT_EQUAL_FATAL(ex_new(&x, "topic", no_table), 0);
	CU_ASSERT_EQUAL(ex_bind(&x, &q, bkey), 0);
	clock_t t0 = clock();
	ex_route(&x, rmatch, &g);
	CU_ASSERT(g.n == 1 && got_has(&g, &q));
	ex_route(&x, rmiss, &g);
	CU_ASSERT_EQUAL(g.n, 0);
	CU_ASSERT((double)(clock() - t0) / CLOCKS_PER_SEC < 2.0);

	/* 255 dots: 256 empty words, the most a key can have. */
	memset(dots, '.', 255);
	dots[255] = '\0';
	CU_ASSERT_EQUAL(ex_bind(&x, &q2, "#"), 0);
	ex_route(&x, dots, &g);
	CU_ASSERT(g.n == 1 && got_has(&g, &q2));
	CU_ASSERT_EQUAL(ex_bind(&x, &q2, dots), 0);
	ex_route(&x, dots, &g);
	CU_ASSERT(got_unique(&g) == 1 && got_has(&g, &q2));
	ex_unbind(&x, &q2, "#");
	ex_route(&x, dots, &g);
	CU_ASSERT(got_has(&g, &q2));
	ex_route(&x, "..", &g);
	CU_ASSERT_EQUAL(g.n, 0);
	ex_free(&x);
}

/* ----------------------------------------------------------- the suite */

void add_topic_tests(CU_pSuite s)
{
	ADD(s, test_topic_rabbitmq);
	ADD(s, test_topic_cases);
	ADD(s, test_topic_random);
	ADD(s, test_topic_pathological);
}
