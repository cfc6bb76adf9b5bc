/*
 * outq.c - see outq.h.
 */
#include "session/outq.h"

#include <stdlib.h>
#include <string.h>

#include "model/message.h"

#define BLOCK_SIZE (16u * 1024)

struct outq_block {
	unsigned refs; /* the queue while current + every chunk of it */
	size_t cap, used;
	uint8_t data[];
};

static void block_unref(struct outq_block *b)
{
	if (--b->refs == 0)
		free(b);
}

static int ring_push(struct outq *q, struct outq_chunk c)
{
	if (q->n == q->cap) {
		size_t ncap = q->cap ? q->cap * 2 : 8;
		struct outq_chunk *nq = malloc(ncap * sizeof(*nq));
		if (!nq)
			return -1;
		for (size_t i = 0; i < q->n; i++)
			nq[i] = q->q[(q->head + i) % q->cap];
		free(q->q);
		q->q = nq;
		q->cap = ncap;
		q->head = 0;
	}
	q->q[(q->head + q->n) % q->cap] = c;
	q->n++;
	q->bytes += c.len;
	return 0;
}

uint8_t *outq_reserve(struct outq *q, size_t n)
{
	if (!q->cur || q->cur->cap - q->cur->used < n) {
		size_t cap = n > BLOCK_SIZE ? n : BLOCK_SIZE;
		struct outq_block *b = malloc(sizeof(*b) + cap);
		if (!b)
			return NULL;
		b->refs = 1;
		b->cap = cap;
		b->used = 0;
		if (q->cur)
			block_unref(q->cur);
		q->cur = b;
	}
	q->resv = n;
	return q->cur->data + q->cur->used;
}

void outq_commit(struct outq *q, size_t n)
{
	if (n == 0 || !q->cur || n > q->resv)
		return;
	struct outq_block *b = q->cur;
	uint8_t *p = b->data + b->used;
	b->used += n;
	q->resv = 0;
	/* Extend the last chunk when it ends where these bytes start. */
	if (q->n) {
		struct outq_chunk *last = &q->q[(q->head + q->n - 1) % q->cap];
		if (last->blk == b && last->ptr + last->len == p) {
			last->len += n;
			q->bytes += n;
			return;
		}
	}
	struct outq_chunk c = {p, n, b, NULL};
	if (ring_push(q, c) < 0) {
		b->used -= n; /* out of memory: the bytes are not output */
		return;
	}
	b->refs++;
}

int outq_add(struct outq *q, const void *data, size_t n)
{
	uint8_t *p = outq_reserve(q, n);
	if (!p)
		return -1;
	memcpy(p, data, n);
	size_t before = q->bytes;
	outq_commit(q, n);
	return q->bytes > before || n == 0 ? 0 : -1;
}

int outq_add_ref(struct outq *q, struct message *m, const uint8_t *ptr, size_t len)
{
	struct outq_chunk c = {ptr, len, NULL, m};
	if (ring_push(q, c) < 0)
		return -1;
	message_ref(m);
	return 0;
}

size_t outq_take(struct outq *q, struct outq_chunk *out, size_t max)
{
	size_t k = 0;
	while (k < max && q->n) {
		out[k++] = q->q[q->head];
		q->bytes -= q->q[q->head].len;
		q->head = (q->head + 1) % q->cap;
		q->n--;
	}
	if (q->n == 0) {
		q->head = 0;
		/* Everything is out: let go of the block (its chunks keep it
		 * alive while they are written), and of a grown ring. */
		if (q->cur) {
			block_unref(q->cur);
			q->cur = NULL;
		}
		if (q->cap > 64) {
			free(q->q);
			q->q = NULL;
			q->cap = 0;
		}
	}
	return k;
}

void outq_chunk_release(struct outq_chunk *c)
{
	if (c->blk)
		block_unref(c->blk);
	if (c->msg)
		message_unref(c->msg);
	c->blk = NULL;
	c->msg = NULL;
}

void outq_free(struct outq *q)
{
	struct outq_chunk c;
	while (outq_take(q, &c, 1))
		outq_chunk_release(&c);
	if (q->cur)
		block_unref(q->cur);
	free(q->q);
	memset(q, 0, sizeof(*q));
}
