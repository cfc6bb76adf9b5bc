/*
 * timer.h - the model's timers: one min-heap of deadlines (message TTL,
 * queue expiry, delayed delivery, consumer of the model that needs to act
 * at a time), so that the loop arms a single event for all of them.
 *
 * The model stays IO-free: it never arms an event itself.  When the
 * earliest deadline changes it tells the observer (timers_changed), and
 * whoever runs the loop calls model_timers_run() at that time.  Time is
 * wall-clock milliseconds since the epoch (model_now_ms), because TTLs and
 * expiries persisted on disk must mean the same after a restart.
 *
 * Ownership: a timer is embedded in its owner (a queue, an exchange), which
 * must cancel it before it is freed.  Threading: loop thread only.
 */
#ifndef MODEL_TIMER_H
#define MODEL_TIMER_H

#include <stddef.h>
#include <stdint.h>

struct model;
struct model_timer;

typedef void (*model_timer_fn)(struct model_timer *t, uint64_t now_ms);

struct model_timer {
	uint64_t at;         /* due time, ms since the epoch */
	size_t idx;          /* place in the heap + 1; 0 = not armed */
	model_timer_fn fire; /* called once when due, already disarmed */
};

struct model_timers {
	struct model_timer **heap;
	size_t n, cap;
};

static inline void model_timer_init(struct model_timer *t, model_timer_fn fire)
{
	t->at = 0;
	t->idx = 0;
	t->fire = fire;
}

static inline int model_timer_armed(const struct model_timer *t)
{
	return t->idx != 0;
}

/* Arm (or move) t to fire at at_ms.  0, or -1 when out of memory (then t
 * is not armed; the caller logs). */
int model_timer_arm(struct model *md, struct model_timer *t, uint64_t at_ms);
/* Disarm t if armed. */
void model_timer_cancel(struct model *md, struct model_timer *t);
/* The earliest deadline, or UINT64_MAX when none is armed. */
uint64_t model_timers_next(const struct model *md);
/* Fire every timer due at now_ms, earliest first; timers armed by the
 * callbacks for now or earlier fire in the same call. */
void model_timers_run(struct model *md, uint64_t now_ms);
void model_timers_free(struct model *md);

/* Wall-clock now in ms (md->clock when set, for tests). */
uint64_t model_now_ms(const struct model *md);

#endif
