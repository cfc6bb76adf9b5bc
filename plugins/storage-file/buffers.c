/*
 * buffers.c - the write path in memory: encoding a record into the
 * queue's current buffer for its active segment (rolling segments and
 * creating a new active one as needed), sealing buffers into the store's
 * unsynced FIFO and handing them to the fsync thread, freeing them once a
 * successful sync covers them, and finding a record that is still only in
 * memory.
 *
 * Ownership: buffers come from the host allocator; q->cur is the queue's
 * until sealed, then the store's unsynced FIFO owns it (and the segment's
 * retained list points at it) until sf_free_unsynced_upto frees it.  Each
 * buffer holds an io ref on its segment.
 * Threading: loop thread only.  A sealed buffer is never modified again;
 * the fsync thread reads it while a job lists it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "sfile.h"

/* ------------------------------------------------------------ buffers */

void sf_seal(struct fstore *st, fq *q)
{
	struct buf *b = q->cur;
	if (!b)
		return;
	q->cur = NULL;
	if (b->len == 0 || sf_grow(&st->pend, &st->cappend, st->npend + 1, sizeof(*st->pend))) {
		/* Empty, or no memory to track it: it cannot be lost silently,
		 * so keep it as the current buffer (tracked later). */
		if (b->len) {
			q->cur = b;
			return;
		}
		sf_seg_io_put(st, b->seg);
		sf_host->free(sf_plugin, b->data);
		sf_host->free(sf_plugin, b);
		return;
	}
	struct seg *s = b->seg;
	b->sealno = ++st->sealno;
	if (st->unsynced_tail)
		st->unsynced_tail->next = b;
	else
		st->unsynced = b;
	st->unsynced_tail = b;
	st->unsynced_bytes += b->len;
	if (s->bufs_tail)
		s->bufs_tail->seg_next = b;
	else
		s->bufs = b;
	s->bufs_tail = b;
	st->pend[st->npend++] = b;
	if (!s->dirty &&
	    sf_grow(&st->dsegs, &st->capdsegs, st->ndsegs + 1, sizeof(*st->dsegs)) == 0) {
		s->dirty = true;
		s->io_refs++;
		s->refs++;
		st->dsegs[st->ndsegs++] = s;
	}
}

void sf_dirty_q_remove(struct fstore *st, fq *q)
{
	if (!q->in_dirty)
		return;
	for (fq **pp = &st->dirty_q; *pp; pp = &(*pp)->dnext) {
		if (*pp == q) {
			*pp = q->dnext;
			break;
		}
	}
	q->in_dirty = false;
	q->dnext = NULL;
}

/* Hand the sealed buffers to the thread (or an internal sync if too much
 * is waiting for an fsync). */
static void submit_pending(struct fstore *st)
{
	if (!st->npend)
		return;
	if (st->unsynced_bytes > INTERNAL_SYNC_BYTES && !st->internal_sync &&
	    sf_submit_sync(st, NULL, NULL, true) == 0)
		return;
	struct job *j = sf_job_new(JOB_WRITE);
	if (!j)
		return; /* stays in pend: the next sync writes it */
	j->bufs = st->pend;
	j->nbufs = st->npend;
	st->pend = NULL;
	st->npend = st->cappend = 0;
	sf_submit(st, j);
}

void sf_seal_and_submit(struct fstore *st, fq *q)
{
	sf_seal(st, q);
	if (!q->cur)
		sf_dirty_q_remove(st, q);
	submit_pending(st);
}

void sf_free_unsynced_upto(struct fstore *st, uint64_t cover)
{
	while (st->unsynced && st->unsynced->sealno <= cover) {
		struct buf *b = st->unsynced;
		struct seg *s = b->seg;
		st->unsynced = b->next;
		if (!st->unsynced)
			st->unsynced_tail = NULL;
		st->unsynced_bytes -= b->len;
		/* A segment's buffers are sealed in offset order: it is the head. */
		s->bufs = b->seg_next;
		if (!s->bufs)
			s->bufs_tail = NULL;
		sf_seg_io_put(st, s);
		sf_host->free(sf_plugin, b->data);
		sf_host->free(sf_plugin, b);
	}
}

/* Data of a record that is still in memory, or NULL if only on disk. */
const uint8_t *sf_mem_record(fq *q, struct seg *s, uint64_t off, size_t rl)
{
	struct buf *b = q->cur;
	if (b && b->seg == s && off >= b->off && off + rl <= b->off + b->len)
		return b->data + (off - b->off);
	for (b = s->bufs; b; b = b->seg_next)
		if (off >= b->off && off + rl <= b->off + b->len)
			return b->data + (off - b->off);
	return NULL;
}

/* ---------------------------------------------------------- write path */

static int new_active(fq *q)
{
	struct fstore *st = q->st;
	char name[SEG_NAME_MAX];
	int fd = -1;
	for (int tries = 0; fd < 0 && tries < 8; tries++) {
		seg_name(name, q->next_id, false);
		fd = openat(q->dir->fd, name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
		if (fd < 0 && errno != EEXIST)
			return -errno;
		if (fd < 0) /* not ours (left by hand?): never write into it */
			q->next_id += 1ull << SEG_ID_SHIFT;
	}
	if (fd < 0)
		return -EEXIST;
	struct seg *s = sf_seg_new(q->dir, q->next_id, fd, 0);
	if (!s) {
		close(fd);
		unlinkat(q->dir->fd, name, 0);
		return -ENOMEM;
	}
	q->next_id += 1ull << SEG_ID_SHIFT;
	sf_list_push_tail(q, s);
	q->active = s;
	sf_dir_touch(st, q->dir);
	return 0;
}

void sf_roll(fq *q)
{
	if (q->cur)
		sf_seal_and_submit(q->st, q);
	q->active = NULL;
}

/* Append one record to the active segment's buffer; *seg and *off say where.
 * The payload is the concatenation of iov[0..iovcnt), len bytes in all. */
int sf_put_record(fq *q, uint8_t type, uint8_t flags, uint64_t seq, const struct amqpd_iov *iov,
                  int iovcnt, uint32_t len, struct seg **seg, uint64_t *off)
{
	struct fstore *st = q->st;
	size_t rl = SEG_HDR_SIZE + (size_t)len;
	int rc;

	if (st->unsynced_bytes > BACKLOG_MAX)
		return -ENOBUFS; /* the disk keeps failing: do not eat all memory */
	if (q->active && q->active->size > 0 && q->active->size + rl > SEG_TARGET)
		sf_roll(q);
	if (!q->active && (rc = new_active(q)))
		return rc;
	struct seg *s = q->active;
	struct buf *b = q->cur;
	if (!b) {
		if ((rc = sf_seg_io_get(st, s)))
			return rc;
		b = sf_host->calloc(sf_plugin, 1, sizeof(*b));
		size_t cap = rl > BUF_MIN ? rl : BUF_MIN;
		uint8_t *d = b ? sf_host->alloc(sf_plugin, cap) : NULL;
		if (!d) {
			sf_host->free(sf_plugin, b);
			sf_seg_io_put(st, s);
			return -ENOMEM;
		}
		b->seg = s;
		b->off = s->size;
		b->data = d;
		b->cap = cap;
		q->cur = b;
		if (!q->in_dirty) {
			q->in_dirty = true;
			q->dnext = st->dirty_q;
			st->dirty_q = q;
		}
	}
	if (b->len + rl > b->cap) {
		size_t cap = b->cap * 2;
		while (cap < b->len + rl)
			cap *= 2;
		uint8_t *d = sf_host->realloc(sf_plugin, b->data, cap);
		if (!d)
			return -ENOMEM;
		b->data = d;
		b->cap = cap;
	}
	/* Gather the payload into the buffer first; the header's CRC is then
	 * computed over the contiguous copy (the same bytes as ever on disk). */
	uint8_t *payload = b->data + b->len + SEG_HDR_SIZE;
	size_t at = 0;
	for (int i = 0; i < iovcnt; i++) {
		if (iov[i].len)
			memcpy(payload + at, iov[i].base, iov[i].len);
		at += iov[i].len;
	}
	seg_encode(b->data + b->len, type, flags, seq, payload, len);
	*seg = s;
	*off = s->size;
	b->len += rl;
	s->size += rl;
	q->total_size += rl;
	if (b->len >= BUF_SPILL)
		sf_seal_and_submit(st, q);
	return 0;
}
