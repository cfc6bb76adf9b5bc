/*
 * qring.h - the ready messages of one priority level of a queue, in
 * arrival (seq) order: a ring buffer of entries that takes requeued
 * messages back in place and lets any entry be removed where it sits.
 *
 * Removal in the middle (a message whose TTL ran out) leaves a tombstone
 * that the head skips; when tombstones outnumber live entries the ring is
 * compacted, so removal is amortised O(1) after an O(log n) search by seq.
 * Seqs grow along the ring, which is what makes that search possible.
 *
 * Ownership: the ring holds the entries; an entry holds one message
 * reference (or none while paged out).  Loop thread only.
 */
#ifndef QRING_H
#define QRING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct message;

struct qentry {
	struct message *msg; /* NULL while paged out: the body is only on disk */
	uint64_t seq;        /* order of arrival in this queue: requeues go back in place */
	uint64_t expires;    /* ms since the epoch when its TTL runs out; 0 = never */
	uint32_t len;        /* body size, for x-max-length-bytes while paged out */
	uint16_t returns;    /* times requeued (quorum queues' delivery count) */
	uint8_t prio;        /* its level in a priority queue */
	bool redelivered;
	bool dead; /* a tombstone in the ring */
};

struct qring {
	struct qentry *e;
	size_t cap, head, n; /* n slots in use, tombstones included */
	size_t dead;         /* tombstones among them */
};

static inline size_t qring_live(const struct qring *r)
{
	return r->n - r->dead;
}

static inline struct qentry *qring_at(const struct qring *r, size_t i)
{
	return &r->e[(r->head + i) & (r->cap - 1)];
}

/* The first live entry, NULL when none (leading tombstones are dropped). */
struct qentry *qring_front(struct qring *r);
/* Remove and return the first live entry; the ring must have one. */
struct qentry qring_shift(struct qring *r);
/* Append (seq larger than any in the ring).  false when out of memory. */
bool qring_push(struct qring *r, const struct qentry *e);
/* Insert at its place by seq (a requeue).  false when out of memory. */
bool qring_insert(struct qring *r, const struct qentry *e);
/* The live entry with this seq, or NULL. */
struct qentry *qring_find(struct qring *r, uint64_t seq);
/* Turn a live entry (from qring_front/qring_find/qring_at) into a
 * tombstone; may compact the ring, so pointers into it are stale after. */
void qring_kill(struct qring *r, struct qentry *e);
void qring_free(struct qring *r);

#endif
