/*
 * index.c - the per-queue in-RAM index: q->ents[lo..hi) sorted by seq
 * (seq -> segment, offset, length, flags) with tombstones for acked
 * messages; appends of a growing seq are O(1), lookups a binary search,
 * and tombstones are dropped once they outnumber live entries.  Marking an
 * entry live or dead also keeps the live counters of the queue and of the
 * entry's segment in step.
 *
 * Ownership: q->ents belongs to the queue (host allocator, via sf_grow).
 * Threading: loop thread only.  While q->iterating (recover() in
 * progress) the index is neither squeezed nor shifted down, so the entry
 * indexes recover() walks stay valid.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "sfile.h"

static size_t idx_lower_bound(fq *q, uint64_t seq)
{
	size_t lo = q->lo, hi = q->hi;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (q->ents[mid].seq < seq)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Index of the live entry for seq, or -1. */
ptrdiff_t sf_idx_find(fq *q, uint64_t seq)
{
	if (q->lo == q->hi)
		return -1;
	size_t i;
	if (q->ents[q->lo].seq == seq) /* the usual FIFO ack */
		i = q->lo;
	else
		i = idx_lower_bound(q, seq);
	if (i < q->hi && q->ents[i].seq == seq && (q->ents[i].flags & E_LIVE))
		return (ptrdiff_t)i;
	return -1;
}

/* Drop tombstones when they outnumber live entries (amortised O(1)). */
void sf_idx_squeeze(fq *q, bool force)
{
	size_t span = q->hi - q->lo;
	if (q->iterating || (!force && span - q->nlive < q->nlive + 4096))
		return;
	size_t w = 0;
	for (size_t i = q->lo; i < q->hi; i++)
		if (q->ents[i].flags & E_LIVE)
			q->ents[w++] = q->ents[i];
	q->lo = 0;
	q->hi = w;
}

/* Make room for one more entry; *pos (an index) is adjusted if shifted. */
static int idx_room(fq *q, size_t *pos)
{
	if (q->hi < q->cap)
		return 0;
	if (!q->iterating && q->lo > 0 && q->lo >= q->cap / 4) {
		memmove(q->ents, q->ents + q->lo, (q->hi - q->lo) * sizeof(*q->ents));
		if (pos)
			*pos -= q->lo;
		q->hi -= q->lo;
		q->lo = 0;
		return 0;
	}
	return sf_grow(&q->ents, &q->cap, q->cap + 1, sizeof(*q->ents));
}

/* The slot for seq: the existing one (live or not) or a new one in order. */
struct entry *sf_idx_slot(fq *q, uint64_t seq, bool *existed)
{
	*existed = false;
	if (q->lo == q->hi && !q->iterating)
		q->lo = q->hi = 0;
	if (q->lo == q->hi || q->ents[q->hi - 1].seq < seq) {
		if (idx_room(q, NULL))
			return NULL;
		struct entry *e = &q->ents[q->hi++];
		memset(e, 0, sizeof(*e));
		e->seq = seq;
		return e;
	}
	size_t i = idx_lower_bound(q, seq);
	if (i < q->hi && q->ents[i].seq == seq) {
		*existed = true;
		return &q->ents[i];
	}
	if (idx_room(q, &i))
		return NULL;
	memmove(&q->ents[i + 1], &q->ents[i], (q->hi - i) * sizeof(*q->ents));
	q->hi++;
	memset(&q->ents[i], 0, sizeof(q->ents[i]));
	q->ents[i].seq = seq;
	return &q->ents[i];
}

void sf_live_add(fq *q, struct entry *e)
{
	uint64_t rb = SEG_HDR_SIZE + (uint64_t)e->len;
	e->flags |= E_LIVE;
	e->seg->live_count++;
	e->seg->live_bytes += rb;
	if (e->seg->in_list)
		q->total_live += rb;
	q->nlive++;
	q->live_payload += e->len;
}

void sf_live_remove(fq *q, struct entry *e)
{
	uint64_t rb = SEG_HDR_SIZE + (uint64_t)e->len;
	e->flags &= ~E_LIVE;
	e->seg->live_count--;
	e->seg->live_bytes -= rb;
	if (e->seg->in_list)
		q->total_live -= rb;
	q->nlive--;
	q->live_payload -= e->len;
}

void sf_idx_kill(fq *q, size_t i)
{
	sf_live_remove(q, &q->ents[i]);
	if (i == q->lo)
		while (q->lo < q->hi && !(q->ents[q->lo].flags & E_LIVE))
			q->lo++;
	if (q->lo == q->hi && !q->iterating)
		q->lo = q->hi = 0;
	sf_idx_squeeze(q, false);
}
