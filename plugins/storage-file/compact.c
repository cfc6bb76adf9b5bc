/*
 * compact.c - reclaiming space: deleting fully acked segments from the
 * oldest on (sf_trim), deciding when a queue needs compacting, building a
 * COMPACT job, the copy itself (run on the fsync thread), the loop-side
 * completion that points the index at the new segment, and the compact()
 * operation of the vtable.
 *
 * Ownership: a compaction job holds a ref on its queue and its queue
 * directory and io refs on the old segments; the output fd is the job's
 * until the completion hands it to the new segment.  The copy uses libc
 * malloc for its buffers.
 * Threading: sf_run_compact runs on the fsync thread and touches only its
 * job, the directory and segment fds the job pins and its own buffers;
 * everything else here runs on the loop thread.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sfile.h"

static void start_compaction(fq *q);

/* Delete fully acked segments from the oldest on (see the header). */
void sf_trim(fq *q)
{
	if (q->compacting || q->deleted)
		return;
	while (q->head && q->head != q->active && q->head->live_count == 0) {
		struct seg *s = q->head;
		sf_list_remove(q, s);
		sf_seg_unlink_file(s);
		sf_seg_unref(q->st, s);
	}
}

void sf_maybe_compact(fq *q)
{
	if (q->compacting || q->deleted || !q->head || q->head == q->active)
		return;
	uint64_t size = q->total_size, live = q->total_live;
	if (q->active) {
		size -= q->active->size;
		live -= q->active->live_bytes;
	}
	uint64_t dead = size - live;
	if (dead > COMPACT_MIN_DEAD && dead * 2 > size)
		start_compaction(q);
}

static void start_compaction(fq *q)
{
	struct fstore *st = q->st;
	struct job *j = NULL;
	struct seg *s, *last = NULL;
	size_t nold = 0, n = 0;
	char tmp[SEG_NAME_MAX];

	sf_trim(q);
	for (s = q->head; s && s != q->active; s = s->next) {
		s->in_set = true;
		last = s;
		nold++;
	}
	if (!last)
		return;
	uint64_t limit = q->active ? q->active->id : q->next_id;
	for (size_t i = q->lo; i < q->hi; i++)
		if ((q->ents[i].flags & E_LIVE) && q->ents[i].seg->in_set)
			n++;
	if (n == 0 || last->id + 1 >= limit)
		goto out;
	if (!(j = sf_job_new(JOB_COMPACT)))
		goto out;
	j->old = sf_host->calloc(sf_plugin, nold, sizeof(*j->old));
	j->ents = sf_host->calloc(sf_plugin, n, sizeof(*j->ents));
	if (!j->old || !j->ents)
		goto fail;
	for (s = q->head; s && s != q->active; s = s->next) {
		if (sf_seg_io_get(st, s))
			goto fail;
		j->old[j->nold++] = s;
	}
	for (size_t i = q->lo; i < q->hi; i++) {
		struct entry *e = &q->ents[i];
		if (!(e->flags & E_LIVE) || !e->seg->in_set)
			continue;
		struct centry *c = &j->ents[j->nents++];
		c->seq = e->seq;
		c->seg = e->seg;
		c->off = e->off;
		c->len = e->len;
		c->flags = (e->flags & E_DELIVERED) ? REC_F_DELIVERED : 0;
	}
	j->out_id = last->id + 1;
	seg_name(tmp, j->out_id, true);
	unlinkat(q->dir->fd, tmp, 0);
	j->out_fd = openat(q->dir->fd, tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
	if (j->out_fd < 0) {
		sf_host->log(sf_plugin, AMQPD_LOG_WARNING, "storage: queue %s: compaction: %s",
		             q->qid, strerror(errno));
		goto fail;
	}
	j->q = q;
	q->refs++;
	q->dir->refs++;
	q->compacting = true;
	sf_submit(st, j);
	goto out;
fail:
	for (size_t i = 0; i < j->nold; i++)
		sf_seg_io_put(st, j->old[i]);
	sf_host->free(sf_plugin, j->old);
	sf_host->free(sf_plugin, j->ents);
	sf_host->free(sf_plugin, j);
out:
	for (s = q->head; s; s = s->next)
		s->in_set = false;
}

/* Copy the live messages into the output, fsync it, rename it into place,
 * and only then unlink what it replaces (crash-safe in every order). */
void sf_run_compact(struct job *j)
{
	char tmp[SEG_NAME_MAX], name[SEG_NAME_MAX];
	int dfd = j->q->dir->fd;
	size_t cap = 4u << 20, len = 0;
	uint8_t *out = malloc(cap), *rd = NULL;
	size_t rdcap = 0;
	uint64_t pos = 0;
	struct rec r;

	seg_name(tmp, j->out_id, true);
	seg_name(name, j->out_id, false);
	if (!out) {
		sf_job_fail(j, -ENOMEM, "compaction buffer for", j->out_id);
		goto fail;
	}
	for (size_t i = 0; i < j->nents; i++) {
		struct centry *c = &j->ents[i];
		size_t rl = SEG_HDR_SIZE + (size_t)c->len;
		if (rl > rdcap) {
			free(rd);
			rdcap = rl;
			rd = malloc(rdcap);
			if (!rd) {
				sf_job_fail(j, -ENOMEM, "compaction buffer for", j->out_id);
				goto fail;
			}
		}
		int rc = sf_pread_all(c->seg->fd, rd, rl, c->off);
		if (rc) {
			sf_job_fail(j, rc, "compaction read of segment", c->seg->id);
			goto fail;
		}
		if (!seg_decode(rd, rl, &r) || r.type != REC_MSG || r.seq != c->seq ||
		    r.len != c->len) {
			sf_job_fail(j, -EIO, "compaction: bad record in segment", c->seg->id);
			goto fail;
		}
		if (len + rl > cap && len) {
			if ((rc = sf_pwrite_all(j->out_fd, out, len, pos))) {
				sf_job_fail(j, rc, "compaction write of segment", j->out_id);
				goto fail;
			}
			pos += len;
			len = 0;
		}
		if (rl > cap) { /* a message larger than the buffer: write through */
			seg_encode(rd, REC_MSG, c->flags & REC_F_DELIVERED, c->seq,
			           rd + SEG_HDR_SIZE, c->len);
			if ((rc = sf_pwrite_all(j->out_fd, rd, rl, pos))) {
				sf_job_fail(j, rc, "compaction write of segment", j->out_id);
				goto fail;
			}
			c->new_off = pos;
			pos += rl;
			continue;
		}
		seg_encode(out + len, REC_MSG, c->flags & REC_F_DELIVERED, c->seq,
		           rd + SEG_HDR_SIZE, c->len);
		memcpy(out + len + SEG_HDR_SIZE, rd + SEG_HDR_SIZE, c->len);
		c->new_off = pos + len;
		len += rl;
	}
	if (len) {
		int rc = sf_pwrite_all(j->out_fd, out, len, pos);
		if (rc) {
			sf_job_fail(j, rc, "compaction write of segment", j->out_id);
			goto fail;
		}
		pos += len;
	}
	if (fdatasync(j->out_fd) < 0) {
		sf_job_fail(j, -errno, "compaction fdatasync of segment", j->out_id);
		goto fail;
	}
	if (renameat(dfd, tmp, dfd, name) < 0) {
		sf_job_fail(j, -errno, "compaction rename of segment", j->out_id);
		goto fail;
	}
	if (fsync(dfd) < 0) {
		/* The rename may or may not be durable; the old segments stay,
		 * so replay sees either just them or them plus duplicates. */
		sf_job_fail(j, -errno, "compaction fsync of directory for", j->out_id);
		unlinkat(dfd, name, 0);
		goto out;
	}
	j->out_size = pos;
	for (size_t i = 0; i < j->nold; i++) {
		seg_name(name, j->old[i]->id, false);
		unlinkat(dfd, name, 0);
	}
	goto out;
fail:
	unlinkat(dfd, tmp, 0);
out:
	free(out);
	free(rd);
}

void sf_finish_compact(struct fstore *st, struct job *j)
{
	fq *q = j->q;
	q->compacting = false;
	if (j->status == 0 && !q->closed && !q->deleted) {
		struct seg *o = sf_seg_new(q->dir, j->out_id, j->out_fd, j->out_size);
		if (o) {
			j->out_fd = -1;
			for (size_t i = 0; i < j->nents; i++) {
				struct centry *c = &j->ents[i];
				ptrdiff_t k = sf_idx_find(q, c->seq);
				if (k < 0)
					continue;
				struct entry *e = &q->ents[k];
				if (e->seg != c->seg || e->off != c->off)
					continue;
				sf_live_remove(q, e);
				e->seg = o;
				e->off = c->new_off;
				sf_live_add(q, e);
			}
			for (size_t i = 0; i < j->nold; i++) {
				struct seg *s = j->old[i];
				s->unlinked = true; /* the thread did it */
				if (s->in_list) {
					sf_list_remove(q, s);
					sf_seg_unref(st, s);
				}
			}
			sf_list_push_head(q, o);
			sf_lru_push(st, o);
		} else {
			/* No memory for the record: the files are consistent,
			 * the index still points at the old (unlinked but open)
			 * segments; a restart replays the new one. */
			sf_host->log(sf_plugin, AMQPD_LOG_WARNING,
			             "storage: queue %s: compaction done but not tracked", q->qid);
		}
	} else if (j->status) {
		sf_host->log(sf_plugin, AMQPD_LOG_WARNING,
		             "storage: queue %s: compaction failed: %s", q->qid, j->err);
	}
	if (j->out_fd >= 0)
		close(j->out_fd);
	for (size_t i = 0; i < j->nold; i++)
		sf_seg_io_put(st, j->old[i]);
	sf_qdir_put(q->dir);
	sf_trim(q);
	if (--q->refs == 0)
		sf_queue_free(q);
}

int sf_compact(void *store)
{
	struct fstore *st = store;
	for (size_t b = 0; b < st->nbuckets; b++) {
		for (fq *q = st->buckets[b]; q; q = q->hnext) {
			if (q->compacting)
				continue;
			sf_trim(q);
			if (q->active && q->active->size > q->active->live_bytes)
				sf_roll(q); /* its dead bytes count too */
			sf_trim(q);
			if (q->head && q->head != q->active && q->total_size > q->total_live)
				start_compaction(q);
		}
	}
	return 0;
}
