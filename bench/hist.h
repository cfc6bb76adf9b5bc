/*
 * hist.h - latency histogram for the load generator: log-linear buckets
 * (HDR-like), fixed size, no allocation per sample.  One per thread; merged
 * at the end.  Not thread-safe.
 */
#ifndef BENCH_HIST_H
#define BENCH_HIST_H

#include <stdint.h>
#include <string.h>

/* Values below 2^H_SUB_BITS are exact; above, every power of two is split
 * into H_HALF equal buckets (relative error < 1/128).  Covers all of u64. */
#define H_SUB_BITS 8
#define H_HALF     (1u << (H_SUB_BITS - 1))
#define H_BUCKETS  ((66 - H_SUB_BITS) * H_HALF)

struct hist {
	uint64_t count, sum, min, max;
	uint64_t b[H_BUCKETS];
};

static inline unsigned hist_index(uint64_t v)
{
	if (v < (1u << H_SUB_BITS))
		return (unsigned)v;
	unsigned shift = (unsigned)(63 - __builtin_clzll(v)) - H_SUB_BITS + 1;
	return shift * H_HALF + (unsigned)(v >> shift);
}

/* The highest value that falls into bucket idx. */
static uint64_t hist_upper(unsigned idx)
{
	if (idx < (1u << H_SUB_BITS))
		return idx;
	unsigned shift = idx / H_HALF - 1;
	uint64_t sub = idx - shift * H_HALF;
	return ((sub + 1) << shift) - 1;
}

static inline void hist_record(struct hist *h, uint64_t v)
{
	h->b[hist_index(v)]++;
	h->count++;
	h->sum += v;
	if (v < h->min)
		h->min = v;
	if (v > h->max)
		h->max = v;
}

static void hist_init(struct hist *h)
{
	memset(h, 0, sizeof(*h));
	h->min = UINT64_MAX;
}

static void hist_merge(struct hist *into, const struct hist *h)
{
	for (unsigned i = 0; i < H_BUCKETS; i++)
		into->b[i] += h->b[i];
	into->count += h->count;
	into->sum += h->sum;
	if (h->min < into->min)
		into->min = h->min;
	if (h->max > into->max)
		into->max = h->max;
}

/* The value at percentile p (0..100), never above the recorded maximum. */
static uint64_t hist_pct(const struct hist *h, double p)
{
	if (h->count == 0)
		return 0;
	uint64_t rank = (uint64_t)ceil(p / 100.0 * (double)h->count);
	if (rank < 1)
		rank = 1;
	uint64_t seen = 0;
	for (unsigned i = 0; i < H_BUCKETS; i++) {
		seen += h->b[i];
		if (seen >= rank) {
			uint64_t v = hist_upper(i);
			return v < h->max ? v : h->max;
		}
	}
	return h->max;
}

#endif
