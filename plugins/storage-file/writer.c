/*
 * writer.c - the fsync thread and its job queue: submitting jobs to the
 * FIFO, the thread's loop (WRITE and SYNC jobs run here, COMPACT jobs by
 * sf_run_compact in compact.c), building a SYNC job out of everything
 * sealed and dirty, and the loop-side completion of every job, posted
 * back with host->run_on_loop().
 *
 * Ownership: a job is allocated on the loop thread (host allocator); from
 * sf_submit until it is handed back it is the thread's, then the loop
 * thread finishes it (sf_finish_job, from the posted callback or from
 * stop()) and job_done_cb frees it.  The arrays a job carries (bufs, segs,
 * dirs) are moved into it from the store; segs and dirs hold refs until
 * its completion.
 * Threading: st->mtx with cv_work and cv_idle guards the FIFO, the job
 * counters and quit; st->bad is touched by the thread only.  run_write,
 * run_sync, sf_job_fail and sf_thread_main run on the fsync thread and use
 * only their job, the buffers and fds it pins and the store directory fd;
 * everything else here runs on the loop thread.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sfile.h"

/* ------------------------------------------------------------------ jobs */

static void job_done_cb(void *userdata, void *arg);

void sf_submit(struct fstore *st, struct job *j)
{
	j->st = st;
	j->oprev = st->out_tail;
	if (st->out_tail)
		st->out_tail->onext = j;
	else
		st->out_head = j;
	st->out_tail = j;
	pthread_mutex_lock(&st->mtx);
	j->no = ++st->submitted;
	if (st->jq_tail)
		st->jq_tail->next = j;
	else
		st->jq_head = j;
	st->jq_tail = j;
	pthread_cond_signal(&st->cv_work);
	pthread_mutex_unlock(&st->mtx);
}

void sf_wait_processed(struct fstore *st, uint64_t no)
{
	pthread_mutex_lock(&st->mtx);
	while (st->processed < no)
		pthread_cond_wait(&st->cv_idle, &st->mtx);
	pthread_mutex_unlock(&st->mtx);
}

struct job *sf_job_new(enum job_kind kind)
{
	struct job *j = sf_host->calloc(sf_plugin, 1, sizeof(*j));
	if (j) {
		j->kind = kind;
		j->out_fd = -1;
	}
	return j;
}

/* Thread side: fill job->err and return rc (negative errno). */
int sf_job_fail(struct job *j, int rc, const char *what, uint64_t id)
{
	if (j->status == 0) {
		j->status = rc;
		snprintf(j->err, sizeof(j->err), "%s %016" PRIx64 ": %s", what, id, strerror(-rc));
	}
	return rc;
}

static void run_write(struct fstore *st, struct job *j)
{
	for (size_t i = 0; i < j->nbufs && j->status == 0; i++) {
		struct buf *b = j->bufs[i];
		int rc = sf_pwrite_all(b->seg->fd, b->data, b->len, b->off);
		if (rc)
			sf_job_fail(j, rc, "write segment", b->seg->id);
	}
	if (j->status)
		st->bad = true;
}

static void run_sync(struct fstore *st, struct job *j)
{
	if (j->rewrite_all)
		st->bad = false; /* it rewrites everything not yet synced */
	if (j->inject_eio) {
		j->status = -EIO;
		snprintf(j->err, sizeof(j->err), "injected write failure (option fail_writes)");
		st->bad = true;
		return;
	}
	run_write(st, j);
	for (size_t i = 0; i < j->nsegs && j->status == 0; i++)
		if (fdatasync(j->segs[i]->fd) < 0)
			sf_job_fail(j, -errno, "fdatasync segment", j->segs[i]->id);
	for (size_t i = 0; i < j->ndirs && j->status == 0; i++)
		if (fsync(j->dirs[i]->fd) < 0)
			sf_job_fail(j, -errno, "fsync directory with segment", j->dirs[i]->fd);
	if (j->status == 0 && j->store_dir && fsync(st->dirfd) < 0)
		sf_job_fail(j, -errno, "fsync store directory", 0);
	if (j->status)
		st->bad = true;
	else if (st->bad) {
		j->status = -EIO;
		snprintf(j->err, sizeof(j->err), "an earlier write failed; not yet rewritten");
	}
}

void *sf_thread_main(void *arg)
{
	struct fstore *st = arg;
	pthread_mutex_lock(&st->mtx);
	for (;;) {
		while (!st->jq_head && !st->quit)
			pthread_cond_wait(&st->cv_work, &st->mtx);
		struct job *j = st->jq_head;
		if (!j)
			break;
		st->jq_head = j->next;
		if (!st->jq_head)
			st->jq_tail = NULL;
		pthread_mutex_unlock(&st->mtx);

		uint64_t no = j->no; /* j may be freed once handed back */
		switch (j->kind) {
		case JOB_WRITE:
			run_write(st, j);
			break;
		case JOB_SYNC:
			run_sync(st, j);
			break;
		case JOB_COMPACT:
			sf_run_compact(j);
			break;
		}
		sf_host->run_on_loop(sf_plugin, job_done_cb, j);

		pthread_mutex_lock(&st->mtx);
		st->processed = no;
		pthread_cond_broadcast(&st->cv_idle);
	}
	pthread_mutex_unlock(&st->mtx);
	return NULL;
}

/* -------------------------------------------------------- job completion */

static void finish_io(struct fstore *st, struct job *j)
{
	if (j->kind == JOB_SYNC && j->internal)
		st->internal_sync = false;
	if (j->status == 0) {
		if (j->kind == JOB_SYNC)
			sf_free_unsynced_upto(st, j->cover);
		for (size_t i = 0; i < j->nsegs; i++)
			sf_seg_io_put(st, j->segs[i]);
		for (size_t i = 0; i < j->ndirs; i++)
			sf_qdir_put(j->dirs[i]);
	} else {
		sf_host->log(sf_plugin, AMQPD_LOG_ERROR, "storage: %s", j->err);
		st->need_rewrite = true;
		/* Fsync these again with the rewrite. */
		for (size_t i = 0; i < j->nsegs; i++) {
			struct seg *s = j->segs[i];
			if (!s->dirty && sf_grow(&st->dsegs, &st->capdsegs, st->ndsegs + 1,
			                         sizeof(*st->dsegs)) == 0) {
				s->dirty = true;
				st->dsegs[st->ndsegs++] = s;
			} else {
				sf_seg_io_put(st, s);
			}
		}
		for (size_t i = 0; i < j->ndirs; i++) {
			sf_dir_touch(st, j->dirs[i]);
			sf_qdir_put(j->dirs[i]);
		}
		if (j->store_dir)
			st->dir_dirty = true;
	}
	j->nsegs = j->ndirs = 0;
}

/* Loop-side completion; afterwards the job is detached from the store. */
void sf_finish_job(struct fstore *st, struct job *j)
{
	if (j->oprev)
		j->oprev->onext = j->onext;
	else
		st->out_head = j->onext;
	if (j->onext)
		j->onext->oprev = j->oprev;
	else
		st->out_tail = j->oprev;
	if (j->kind == JOB_COMPACT)
		sf_finish_compact(st, j);
	else
		finish_io(st, j);
	sf_host->free(sf_plugin, j->bufs);
	sf_host->free(sf_plugin, j->segs);
	sf_host->free(sf_plugin, j->dirs);
	sf_host->free(sf_plugin, j->old);
	sf_host->free(sf_plugin, j->ents);
	j->bufs = NULL;
	j->segs = NULL;
	j->dirs = NULL;
	j->old = NULL;
	j->ents = NULL;
	j->st = NULL;
	if (j->done) {
		sf_done_fn done = j->done;
		j->done = NULL;
		done(j->ctx, j->status);
	}
}

static void job_done_cb(void *userdata, void *arg)
{
	struct job *j = arg;
	if (j->st) /* else stop() finished it already */
		sf_finish_job(j->st, j);
	sf_host->free(sf_plugin, j);
}

int sf_submit_sync(struct fstore *st, sf_done_fn done, void *ctx, bool internal)
{
	struct job *j = sf_job_new(JOB_SYNC);
	if (!j)
		return -ENOMEM;
	while (st->dirty_q) {
		fq *q = st->dirty_q;
		sf_seal(st, q);
		if (q->cur)
			break; /* out of memory tracking it */
		sf_dirty_q_remove(st, q);
	}
	if (st->need_rewrite) {
		/* Rewrite and fsync everything a successful sync has not covered. */
		size_t n = 0;
		for (struct buf *b = st->unsynced; b; b = b->next)
			n++;
		j->bufs = sf_host->calloc(sf_plugin, n ? n : 1, sizeof(*j->bufs));
		if (!j->bufs) {
			sf_host->free(sf_plugin, j);
			return -ENOMEM;
		}
		for (struct buf *b = st->unsynced; b; b = b->next) {
			j->bufs[j->nbufs++] = b;
			struct seg *s = b->seg;
			if (!s->dirty && sf_grow(&st->dsegs, &st->capdsegs, st->ndsegs + 1,
			                         sizeof(*st->dsegs)) == 0) {
				s->dirty = true;
				s->io_refs++;
				s->refs++;
				st->dsegs[st->ndsegs++] = s;
			}
		}
		sf_host->free(sf_plugin, st->pend);
		j->rewrite_all = true;
		st->need_rewrite = false;
	} else {
		j->bufs = st->pend;
		j->nbufs = st->npend;
	}
	st->pend = NULL;
	st->npend = st->cappend = 0;
	for (size_t i = 0; i < st->ndsegs; i++)
		st->dsegs[i]->dirty = false;
	for (size_t i = 0; i < st->nddirs; i++)
		st->ddirs[i]->dirty = false;
	j->segs = st->dsegs;
	j->nsegs = st->ndsegs;
	st->dsegs = NULL;
	st->ndsegs = st->capdsegs = 0;
	j->dirs = st->ddirs;
	j->ndirs = st->nddirs;
	st->ddirs = NULL;
	st->nddirs = st->capddirs = 0;
	j->store_dir = st->dir_dirty;
	st->dir_dirty = false;
	j->cover = st->sealno;
	j->done = done;
	j->ctx = ctx;
	j->internal = internal;
	if (internal)
		st->internal_sync = true;
	j->inject_eio = st->cfg->fail_writes ||
	                (st->cfg->fail_writes_flag && access(st->cfg->fail_writes_flag, F_OK) == 0);
	sf_submit(st, j);
	return 0;
}
