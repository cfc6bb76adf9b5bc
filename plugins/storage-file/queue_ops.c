/*
 * queue_ops.c - the per-queue operations of the storage vtable: recover,
 * append, ack, delivered, read and purge, and the store's scratch buffer
 * for reading one record from disk on the loop thread.
 *
 * Ownership: the message handed to a callback points into a buffer, a
 * mapping or the scratch buffer and is valid only during the call; the
 * scratch buffer is the store's (a re-entered read gets its own).
 * Threading: loop thread only.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "sfile.h"

/* Scratch space for reading one record on the loop thread. */
static uint8_t *scratch(struct fstore *st, size_t n, bool *owned)
{
	*owned = false;
	if (st->scratch_busy) { /* re-entered from a callback */
		*owned = true;
		return sf_host->alloc(sf_plugin, n);
	}
	if (n > st->scratch_cap) {
		uint8_t *p = sf_host->realloc(sf_plugin, st->scratch, n);
		if (!p)
			return NULL;
		st->scratch = p;
		st->scratch_cap = n;
	}
	st->scratch_busy = true;
	return st->scratch;
}

static void scratch_done(struct fstore *st, uint8_t *p, bool owned)
{
	if (owned)
		sf_host->free(sf_plugin, p);
	else
		st->scratch_busy = false;
}

int sf_recover(amqpd_store_queue *q, amqpd_stored_msg_fn fn, void *ctx)
{
	struct fstore *st = q->st;
	struct seg *ms = NULL; /* the mapped segment, with a ref */
	uint8_t *map = NULL;
	size_t maplen = 0;
	uint64_t lost = 0;

	if (q->deleted)
		return -EIDRM;
	q->iterating++;
	for (size_t i = q->lo; i < q->hi; i++) {
		struct entry e = q->ents[i];
		if (!(e.flags & E_LIVE))
			continue;
		size_t rl = SEG_HDR_SIZE + (size_t)e.len;
		const uint8_t *rec = sf_mem_record(q, e.seg, e.off, rl);
		uint8_t *tmp = NULL;
		bool owned = false;
		if (!rec) {
			if (ms != e.seg) {
				if (map)
					munmap(map, maplen);
				if (ms)
					sf_seg_unref(st, ms);
				map = NULL;
				maplen = 0;
				ms = e.seg;
				ms->refs++;
				struct stat sb;
				int fd = sf_seg_read_fd(st, ms);
				if (fd >= 0 && fstat(fd, &sb) == 0 && sb.st_size > 0) {
					void *m = mmap(NULL, (size_t)sb.st_size, PROT_READ,
					               MAP_SHARED, fd, 0);
					if (m != MAP_FAILED) {
						map = m;
						maplen = (size_t)sb.st_size;
						madvise(m, maplen, MADV_SEQUENTIAL);
					}
				}
			}
			if (map && e.off + rl <= maplen) {
				rec = map + e.off;
			} else if ((tmp = scratch(st, rl, &owned))) {
				int fd = sf_seg_read_fd(st, e.seg);
				struct rec r;
				if (fd >= 0 && sf_pread_all(fd, tmp, rl, e.off) == 0 &&
				    seg_decode(tmp, rl, &r) && r.seq == e.seq)
					rec = tmp;
			}
		}
		if (!rec) {
			lost++;
			if (tmp)
				scratch_done(st, tmp, owned);
			sf_idx_kill(q, i);
			continue;
		}
		struct amqpd_stored_msg m = {
		    .struct_size = sizeof(m),
		    .seq = e.seq,
		    .data = rec + SEG_HDR_SIZE,
		    .len = e.len,
		    .delivered = (e.flags & E_DELIVERED) != 0,
		};
		fn(ctx, &m);
		if (tmp)
			scratch_done(st, tmp, owned);
	}
	if (map)
		munmap(map, maplen);
	if (ms)
		sf_seg_unref(st, ms);
	q->iterating--;
	sf_idx_squeeze(q, false);
	if (lost)
		sf_host->log(sf_plugin, AMQPD_LOG_ERROR,
		             "storage: queue %s: %" PRIu64 " messages unreadable, dropped", q->qid,
		             lost);
	return 0;
}

int sf_append(amqpd_store_queue *q, uint64_t seq, const struct amqpd_iov *iov, int iovcnt)
{
	struct seg *s;
	uint64_t off;
	bool existed;
	size_t len = 0;

	if (q->deleted)
		return -EIDRM;
	for (int i = 0; i < iovcnt; i++) {
		if (iov[i].len && !iov[i].base)
			return -EINVAL;
		if (iov[i].len > UINT32_MAX - SEG_HDR_SIZE - len)
			return -EMSGSIZE;
		len += iov[i].len;
	}
	/* Look first so nothing is written for a duplicate. */
	if (sf_idx_find(q, seq) >= 0)
		return -EEXIST;
	int rc = sf_put_record(q, REC_MSG, 0, seq, iov, iovcnt, (uint32_t)len, &s, &off);
	if (rc)
		return rc;
	struct entry *e = sf_idx_slot(q, seq, &existed);
	if (!e) {
		/* The record is in the file; an ACK keeps replay consistent. */
		sf_put_record(q, REC_ACK, 0, seq, NULL, 0, 0, &s, &off);
		return -ENOMEM;
	}
	e->seg = s;
	e->off = off;
	e->len = (uint32_t)len;
	e->flags = 0;
	sf_live_add(q, e);
	return 0;
}

int sf_ack(amqpd_store_queue *q, uint64_t seq)
{
	struct seg *s;
	uint64_t off;
	if (q->deleted)
		return -EIDRM;
	ptrdiff_t i = sf_idx_find(q, seq);
	if (i < 0)
		return -ENOENT;
	int rc = sf_put_record(q, REC_ACK, 0, seq, NULL, 0, 0, &s, &off);
	if (rc)
		return rc;
	sf_idx_kill(q, (size_t)i);
	sf_trim(q);
	sf_maybe_compact(q);
	return 0;
}

int sf_delivered(amqpd_store_queue *q, uint64_t seq)
{
	struct seg *s;
	uint64_t off;
	if (q->deleted)
		return -EIDRM;
	ptrdiff_t i = sf_idx_find(q, seq);
	if (i < 0)
		return -ENOENT;
	if (q->ents[i].flags & E_DELIVERED)
		return 0;
	int rc = sf_put_record(q, REC_DELIVERED, 0, seq, NULL, 0, 0, &s, &off);
	if (rc)
		return rc;
	q->ents[i].flags |= E_DELIVERED; /* put_record leaves the index alone */
	return 0;
}

int sf_read(amqpd_store_queue *q, uint64_t seq, amqpd_stored_msg_fn fn, void *ctx)
{
	struct fstore *st = q->st;
	if (q->deleted)
		return -EIDRM;
	ptrdiff_t i = sf_idx_find(q, seq);
	if (i < 0)
		return -ENOENT;
	struct entry e = q->ents[i];
	size_t rl = SEG_HDR_SIZE + (size_t)e.len;
	const uint8_t *rec = sf_mem_record(q, e.seg, e.off, rl);
	uint8_t *tmp = NULL;
	bool owned = false;
	if (!rec) {
		struct rec r;
		int fd = sf_seg_read_fd(st, e.seg);
		if (fd < 0)
			return fd;
		if (!(tmp = scratch(st, rl, &owned)))
			return -ENOMEM;
		int rc = sf_pread_all(fd, tmp, rl, e.off);
		if (rc == 0 && (!seg_decode(tmp, rl, &r) || r.type != REC_MSG || r.seq != seq))
			rc = -EIO;
		if (rc) {
			scratch_done(st, tmp, owned);
			sf_host->log(sf_plugin, AMQPD_LOG_ERROR,
			             "storage: queue %s: read of message %" PRIu64 ": %s", q->qid,
			             seq, strerror(-rc));
			return rc;
		}
		rec = tmp;
	}
	struct amqpd_stored_msg m = {
	    .struct_size = sizeof(m),
	    .seq = seq,
	    .data = rec + SEG_HDR_SIZE,
	    .len = e.len,
	    .delivered = (e.flags & E_DELIVERED) != 0,
	};
	fn(ctx, &m);
	if (tmp)
		scratch_done(st, tmp, owned);
	return 0;
}

int sf_purge(amqpd_store_queue *q)
{
	struct seg *s;
	uint64_t off;
	if (q->deleted)
		return -EIDRM;
	if (q->nlive == 0)
		return 0;
	int rc = sf_put_record(q, REC_PURGE, 0, q->ents[q->hi - 1].seq, NULL, 0, 0, &s, &off);
	if (rc)
		return rc;
	for (size_t i = q->lo; i < q->hi; i++)
		if (q->ents[i].flags & E_LIVE)
			sf_live_remove(q, &q->ents[i]);
	if (!q->iterating) {
		q->lo = q->hi = 0;
	}
	sf_roll(q); /* so the segment holding the PURGE can go too */
	sf_trim(q);
	return 0;
}
