/*
 * qring.c - see qring.h.
 */
#include "model/qring.h"

#include <stdlib.h>

static void drop_leading_dead(struct qring *r)
{
	while (r->n && r->e[r->head].dead) {
		r->head = (r->head + 1) & (r->cap - 1);
		r->n--;
		r->dead--;
	}
	if (!r->n)
		r->head = 0;
}

static bool relayout(struct qring *r, size_t ncap);

/* A ring that emptied gives its memory back: halved (tombstones dropped)
 * while an eighth or less of it is live.  On failure it stays as it is. */
static void maybe_shrink(struct qring *r)
{
	if (r->cap > 1024 && (r->n - r->dead) * 8 < r->cap)
		relayout(r, r->cap / 2);
}

struct qentry *qring_front(struct qring *r)
{
	drop_leading_dead(r);
	return r->n ? &r->e[r->head] : NULL;
}

struct qentry qring_shift(struct qring *r)
{
	drop_leading_dead(r);
	struct qentry e = r->e[r->head];
	r->head = (r->head + 1) & (r->cap - 1);
	r->n--;
	drop_leading_dead(r);
	maybe_shrink(r);
	return e;
}

/* Copy the live entries to a new array of ncap slots (a power of two). */
static bool relayout(struct qring *r, size_t ncap)
{
	struct qentry *ne = malloc(ncap * sizeof(*ne));
	if (!ne)
		return false;
	size_t k = 0;
	for (size_t i = 0; i < r->n; i++) {
		struct qentry *e = qring_at(r, i);
		if (!e->dead)
			ne[k++] = *e;
	}
	free(r->e);
	r->e = ne;
	r->cap = ncap;
	r->head = 0;
	r->n = k;
	r->dead = 0;
	return true;
}

static bool reserve(struct qring *r)
{
	if (r->n < r->cap)
		return true;
	if (r->dead && r->dead * 4 >= r->n)
		return relayout(r, r->cap); /* room enough once compacted */
	return relayout(r, r->cap ? r->cap * 2 : 16);
}

bool qring_push(struct qring *r, const struct qentry *e)
{
	if (!reserve(r))
		return false;
	*qring_at(r, r->n) = *e;
	r->n++;
	return true;
}

/* Index of the first slot whose seq is >= seq (tombstones keep their seq,
 * so the slots stay sorted). */
/* The first slot whose seq is >= seq.  Seqs grow by about one per slot
 * (gaps where other priority levels took numbers), so the slot is first
 * guessed by interpolation and the window around the guess widened by
 * doubling steps: an expiry or a requeue touches a few cache lines, not
 * log2(n) scattered ones as a plain binary search over a large ring. */
static size_t lower_bound(const struct qring *r, uint64_t seq)
{
	size_t lo = 0, hi = r->n;
	if (hi > 16) {
		uint64_t s0 = qring_at(r, 0)->seq, s1 = qring_at(r, hi - 1)->seq;
		if (seq <= s0)
			return 0;
		if (seq > s1)
			return hi;
		size_t g = (size_t)((double)(seq - s0) / (double)(s1 - s0) * (double)(hi - 1));
		if (g >= hi)
			g = hi - 1;
		size_t step = 1;
		if (qring_at(r, g)->seq < seq) {
			/* the answer is in (g, hi) */
			lo = g + 1;
			while (lo + step < hi && qring_at(r, lo + step - 1)->seq < seq) {
				lo += step;
				step *= 2;
			}
			if (lo + step < hi)
				hi = lo + step;
		} else {
			/* the answer is in [lo, g] */
			hi = g + 1;
			while (hi > step && qring_at(r, hi - step - 1)->seq >= seq) {
				hi -= step;
				step *= 2;
			}
			if (hi > step)
				lo = hi - step;
		}
	}
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (qring_at(r, mid)->seq < seq)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

bool qring_insert(struct qring *r, const struct qentry *e)
{
	if (!reserve(r))
		return false;
	size_t pos = lower_bound(r, e->seq);
	/* Requeued messages are older than most of what waits: move the
	 * entries before the place one step towards the front. */
	if (pos <= r->n - pos) {
		r->head = (r->head - 1) & (r->cap - 1);
		for (size_t i = 0; i < pos; i++)
			*qring_at(r, i) = *qring_at(r, i + 1);
	} else {
		for (size_t i = r->n; i > pos; i--)
			*qring_at(r, i) = *qring_at(r, i - 1);
	}
	*qring_at(r, pos) = *e;
	r->n++;
	return true;
}

struct qentry *qring_find(struct qring *r, uint64_t seq)
{
	size_t i = lower_bound(r, seq);
	if (i == r->n)
		return NULL;
	struct qentry *e = qring_at(r, i);
	return e->seq == seq && !e->dead ? e : NULL;
}

void qring_kill(struct qring *r, struct qentry *e)
{
	e->dead = true;
	e->msg = NULL;
	r->dead++;
	drop_leading_dead(r);
	if (r->n > 64 && r->dead * 2 > r->n)
		relayout(r, r->cap); /* on failure the tombstones stay: still correct */
	maybe_shrink(r);
}

void qring_free(struct qring *r)
{
	free(r->e);
	*r = (struct qring){0};
}
