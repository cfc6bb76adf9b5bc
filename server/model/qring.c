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
static size_t lower_bound(const struct qring *r, uint64_t seq)
{
	size_t lo = 0, hi = r->n;
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
}

void qring_free(struct qring *r)
{
	free(r->e);
	*r = (struct qring){0};
}
