/*
 * timer.c - see timer.h.  A binary min-heap of timer pointers; each timer
 * knows its slot, so moving or cancelling one is O(log n).
 */
#include "model/timer.h"

#include <stdlib.h>
#include <time.h>

#include "model/model.h"

static void place(struct model_timers *h, size_t i, struct model_timer *t)
{
	h->heap[i] = t;
	t->idx = i + 1;
}

static void sift_up(struct model_timers *h, size_t i)
{
	struct model_timer *t = h->heap[i];
	while (i > 0) {
		size_t p = (i - 1) / 2;
		if (h->heap[p]->at <= t->at)
			break;
		place(h, i, h->heap[p]);
		i = p;
	}
	place(h, i, t);
}

static void sift_down(struct model_timers *h, size_t i)
{
	struct model_timer *t = h->heap[i];
	for (;;) {
		size_t l = 2 * i + 1, m = i;
		uint64_t best = t->at;
		if (l < h->n && h->heap[l]->at < best) {
			m = l;
			best = h->heap[l]->at;
		}
		if (l + 1 < h->n && h->heap[l + 1]->at < best)
			m = l + 1;
		if (m == i)
			break;
		place(h, i, h->heap[m]);
		i = m;
	}
	place(h, i, t);
}

static void notify(struct model *md, uint64_t before)
{
	if (md->obs && md->obs->timers_changed && model_timers_next(md) != before)
		md->obs->timers_changed(md->obs);
}

static void heap_remove(struct model_timers *h, struct model_timer *t)
{
	size_t i = t->idx - 1;
	t->idx = 0;
	struct model_timer *last = h->heap[--h->n];
	if (i == h->n)
		return;
	place(h, i, last);
	sift_down(h, i);
	sift_up(h, last->idx - 1);
}

int model_timer_arm(struct model *md, struct model_timer *t, uint64_t at_ms)
{
	struct model_timers *h = &md->timers;
	uint64_t before = model_timers_next(md);
	if (t->idx) {
		t->at = at_ms;
		size_t i = t->idx - 1;
		sift_down(h, i);
		sift_up(h, t->idx - 1);
		notify(md, before);
		return 0;
	}
	if (h->n == h->cap) {
		size_t ncap = h->cap ? h->cap * 2 : 64;
		struct model_timer **nh = realloc(h->heap, ncap * sizeof(*nh));
		if (!nh)
			return -1;
		h->heap = nh;
		h->cap = ncap;
	}
	t->at = at_ms;
	place(h, h->n++, t);
	sift_up(h, h->n - 1);
	notify(md, before);
	return 0;
}

void model_timer_cancel(struct model *md, struct model_timer *t)
{
	if (!t->idx)
		return;
	uint64_t before = model_timers_next(md);
	heap_remove(&md->timers, t);
	notify(md, before);
}

uint64_t model_timers_next(const struct model *md)
{
	return md->timers.n ? md->timers.heap[0]->at : UINT64_MAX;
}

void model_timers_run(struct model *md, uint64_t now_ms)
{
	uint64_t before = model_timers_next(md);
	struct model_timers *h = &md->timers;
	while (h->n && h->heap[0]->at <= now_ms) {
		struct model_timer *t = h->heap[0];
		heap_remove(h, t);
		t->fire(t, now_ms);
	}
	/* Callbacks may have armed timers; tell the loop once. */
	if (md->obs && md->obs->timers_changed && model_timers_next(md) != before)
		md->obs->timers_changed(md->obs);
}

void model_timers_free(struct model *md)
{
	for (size_t i = 0; i < md->timers.n; i++)
		md->timers.heap[i]->idx = 0;
	free(md->timers.heap);
	md->timers = (struct model_timers){0};
}

uint64_t model_now_ms(const struct model *md)
{
	if (md->clock)
		return md->clock(md->clock_ud);
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}
