/*
 * outq.h - a connection engine's output: encoded bytes in blocks, and
 * message bodies by reference, in the order they are to be written.
 *
 * The engine appends (reserve + commit for bytes it encodes in place,
 * add_ref for a body slice); whoever writes takes chunks out with
 * outq_take() and owns them until outq_chunk_release(): a chunk keeps its
 * block or its message alive, so the writer may hand the bytes to the
 * kernel or to a buffer by reference, without copying.
 *
 * Blocks are 16 KiB (or one larger block for an oversized reservation);
 * once everything in a block is taken the queue lets go of it, so an idle
 * connection holds no output memory.
 *
 * Threading: loop thread only (the block and message counts are not
 * atomic); a writer releases chunks on the loop thread too.
 */
#ifndef OUTQ_H
#define OUTQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct message;
struct outq_block;

struct outq_chunk {
	const uint8_t *ptr;
	size_t len;
	struct outq_block *blk; /* bytes of a block (one block reference), or */
	struct message *msg;    /* a body slice (one message reference) */
};

struct outq {
	struct outq_chunk *q; /* ring of pending chunks */
	size_t cap, head, n;
	size_t bytes;           /* pending bytes */
	struct outq_block *cur; /* block being filled (one reference) */
	size_t resv;            /* bytes reserved at the end of cur */
};

/* Room for n contiguous bytes at the end of the output; NULL out of
 * memory.  Valid until the next call on q. */
uint8_t *outq_reserve(struct outq *q, size_t n);
/* The first n bytes of the last reservation were written. */
void outq_commit(struct outq *q, size_t n);
/* Copy bytes in.  0 or -1 (out of memory: nothing added). */
int outq_add(struct outq *q, const void *data, size_t n);
/* Append a slice of m's memory by reference (takes a new reference).
 * 0 or -1 (out of memory: nothing added). */
int outq_add_ref(struct outq *q, struct message *m, const uint8_t *ptr, size_t len);
static inline size_t outq_bytes(const struct outq *q)
{
	return q->bytes;
}
/* Move up to max chunks, in order, to out; returns how many. */
size_t outq_take(struct outq *q, struct outq_chunk *out, size_t max);
void outq_chunk_release(struct outq_chunk *c);
/* Drop everything pending and the current block. */
void outq_free(struct outq *q);

#endif
