/*
 * storage_file.c - the "file" storage backend: append-only segment files
 * per queue, group commit by a dedicated fsync thread, crash recovery that
 * drops damaged records instead of refusing to start.
 *
 * This file holds the plugin entry point, the storage vtable and the
 * store-level operations: start/stop, the map of open queues, queue
 * open/close/delete/list, sync and stats; all of it runs on the loop
 * thread.  The rest of the backend, one concern per file:
 *   sfile.h      private: shared structures, constants, sf_* functions
 *   queue_ops.c  per-queue operations: recover, append, ack, delivered,
 *                read, purge
 *   index.c      the per-queue in-RAM index
 *   buffers.c    the write path: record buffers, sealing, unsynced list
 *   writer.c     the fsync thread, its job FIFO, job completion, syncs
 *   compact.c    deleting acked segments, compaction, compact()
 *   recovery.c   rebuilding a queue's index from its segment files
 *   segfiles.c   segment and queue-directory objects, fd LRU, seg lists
 *   util.c       array growth, full pread/pwrite
 *   segment.c    the on-disk record format and scanner (segment.h)
 *   crc32c.c     the record checksum (crc32c.h)
 *
 * Layout: <dir>/store.lock (flock, one broker per store), <dir>/clean.marker
 * (present only between a clean stop() and the next start()), and one
 * directory per queue id holding its segment files (format and names in
 * segment.h).  Segments roll at SEG_TARGET bytes.
 *
 * Write path (loop thread): append/ack/delivered encode one record into the
 * queue's current buffer (memcpy + CRC) and update the in-RAM index.  A
 * buffer is "sealed" when it passes BUF_SPILL bytes, when its segment rolls,
 * or at sync(); sealed buffers go to the fsync thread as jobs and stay in
 * memory (the "unsynced" list) until a successful fsync covers them, so
 * read() can serve them and a failed write or fsync can be redone in full.
 *
 * Jobs run strictly in submission order on the fsync thread: WRITE (pwrite
 * sealed buffers at their file offsets), SYNC (pwrite, fdatasync every
 * touched segment, fsync directories that gained entries, then report),
 * COMPACT (copy a queue's live messages out of its old segments into a new
 * one, fsync it, rename it into place, unlink the old ones).  Each finished
 * job is handed back with host->run_on_loop(); all bookkeeping (freeing
 * buffers, logging, calling done) happens there.  After any failed write
 * or fsync no later sync reports success until one has rewritten and
 * fsynced every unsynced buffer.
 *
 * Index: per queue, an array of entries sorted by seq (seq -> segment,
 * offset, length, flags) with tombstones for acked messages; appends of a
 * growing seq are O(1), acks a binary search.  Replay of the segment files
 * in name order rebuilds it: MSG inserts (or replaces a duplicate left by
 * an interrupted compaction), ACK removes, DELIVERED flags, PURGE removes
 * everything up to its seq; records about unknown seqs are ignored.
 *
 * Space: segments are deleted from the oldest on, once every MSG in them is
 * acked (never out of order: an old segment's acks may live in a newer
 * one).  A long-lived message would pin everything behind it, so when the
 * dead bytes of a queue's non-active segments pass COMPACT_MIN_DEAD and
 * half their size (or on compact(), which first rolls an active segment
 * that has dead records),
 * all non-active segments are compacted into one new segment named just
 * after the last of them, so replay order stays history order.  It is
 * written as a .tmp, fsynced and renamed before the old ones are unlinked:
 * a crash in between leaves duplicates, which replay resolves.  Deletion is
 * suspended while a compaction of the queue is in flight.
 *
 * Recovery: a new active segment is started after every open (never append
 * behind a possibly torn tail).  A damaged record in the middle of a
 * segment is skipped and the scan goes on at the next valid record
 * (resynchronising on the magic), so only the damaged record is lost; a
 * torn tail ends the segment.  Damage is counted per damaged region (see
 * seg_scan) and logged as "storage: queue Q: dropped N damaged records";
 * gaps in the segment numbering ("N segment files missing") and unreadable
 * files are logged too; start and queue_open never fail for bad data.
 *
 * Lifecycle: stop() flushes and fsyncs everything, waits for the thread,
 * and calls done() of every sync still in flight before it returns (their
 * posted run_on_loop callbacks then only free a record); queues left open
 * are freed with the store.  queue_close() hands the queue's buffer to the
 * thread; opening the same queue again waits until that has been written.
 * queue_delete() on an open queue leaves the handle valid (every call on it
 * fails with -EIDRM) until it is closed.  Idle segment fds are kept in an
 * LRU of LRU_MAX and reopened on demand.
 *
 * Options (--plugin-opt storage-file.KEY=VALUE; see struct sf_config):
 *   fail_writes=0|1       test hook: every sync performs no I/O and fails
 *                         with EIO, exactly like a failing disk; the data
 *                         stays buffered and a later sync rewrites it
 *                         (formerly the environment variable
 *                         AMQPD_STORAGE_FAIL_WRITES=1, no longer read)
 *   fail_writes_flag=PATH the same while the file PATH exists, checked at
 *                         each sync (for tests that toggle failures)
 * init parses them into the userdata every store gets at start().
 *
 * Ownership: all loop-side state comes from the host allocator and is
 * touched only on the loop thread; the fsync thread uses libc malloc for
 * its own scratch space, never calls the host except run_on_loop, and only
 * reads the buffers, segment fds and directory fds its job pins.
 * Threading: one mutex + two condition variables guard the job FIFO.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "amqpd/plugin.h"
#include "amqpd/storage.h"
#include "sfile.h"

const struct amqpd_host_api *sf_host;
amqpd_plugin *sf_plugin;

/* ------------------------------------------------------------ utilities */

static bool valid_qid(const char *qid)
{
	size_t n = 0;
	if (!qid)
		return false;
	for (; qid[n]; n++) {
		char c = qid[n];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '-'))
			return false;
	}
	return n >= 1 && n <= QID_MAX;
}

static uint64_t hash_qid(const char *s)
{
	uint64_t h = 14695981039346656037ULL;
	for (; *s; s++) {
		h ^= (uint8_t)*s;
		h *= 1099511628211ULL;
	}
	return h;
}

/* ------------------------------------------------------------- the store */

static int fs_start(const struct sf_config *cfg, void **store, const char *dir, bool *clean,
                    char *err, size_t errlen)
{
	struct fstore *st = sf_host->calloc(sf_plugin, 1, sizeof(*st));
	if (!st) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	st->cfg = cfg;
	st->lockfd = -1;
	st->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (st->dirfd < 0) {
		snprintf(err, errlen, "%s: %s", dir, strerror(errno));
		goto fail;
	}
	bool fresh = false;
	st->lockfd = openat(st->dirfd, LOCKFILE, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
	if (st->lockfd >= 0)
		fresh = true;
	else if (errno == EEXIST)
		st->lockfd = openat(st->dirfd, LOCKFILE, O_RDWR | O_CLOEXEC);
	if (st->lockfd < 0) {
		snprintf(err, errlen, "%s/%s: %s", dir, LOCKFILE, strerror(errno));
		goto fail;
	}
	if (flock(st->lockfd, LOCK_EX | LOCK_NB) < 0) {
		snprintf(err, errlen, "%s: store in use by another process (%s)", dir,
		         strerror(errno));
		goto fail;
	}
	/* A fresh directory has nothing to recover: call it clean. */
	bool marked = faccessat(st->dirfd, MARKER, F_OK, 0) == 0;
	*clean = fresh || marked;
	if (marked) {
		if (unlinkat(st->dirfd, MARKER, 0) < 0 || fsync(st->dirfd) < 0) {
			snprintf(err, errlen, "%s/%s: %s", dir, MARKER, strerror(errno));
			goto fail;
		}
	}
	st->nbuckets = 64;
	st->buckets = sf_host->calloc(sf_plugin, st->nbuckets, sizeof(*st->buckets));
	if (!st->buckets) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	pthread_mutex_init(&st->mtx, NULL);
	pthread_cond_init(&st->cv_work, NULL);
	pthread_cond_init(&st->cv_idle, NULL);
	int rc = pthread_create(&st->thr, NULL, sf_thread_main, st);
	if (rc) {
		snprintf(err, errlen, "fsync thread: %s", strerror(rc));
		pthread_mutex_destroy(&st->mtx);
		pthread_cond_destroy(&st->cv_work);
		pthread_cond_destroy(&st->cv_idle);
		goto fail;
	}
	*store = st;
	return 0;
fail:
	if (st->lockfd >= 0)
		close(st->lockfd);
	if (st->dirfd >= 0)
		close(st->dirfd);
	sf_host->free(sf_plugin, st->buckets);
	sf_host->free(sf_plugin, st);
	return -1;
}

static fq **bucket_of(struct fstore *st, const char *qid)
{
	return &st->buckets[hash_qid(qid) & (st->nbuckets - 1)];
}

static fq *lookup(struct fstore *st, const char *qid)
{
	for (fq *q = *bucket_of(st, qid); q; q = q->hnext)
		if (strcmp(q->qid, qid) == 0)
			return q;
	return NULL;
}

static void map_remove(struct fstore *st, fq *q)
{
	for (fq **pp = bucket_of(st, q->qid); *pp; pp = &(*pp)->hnext) {
		if (*pp == q) {
			*pp = q->hnext;
			st->nqueues--;
			return;
		}
	}
}

static void map_insert(struct fstore *st, fq *q)
{
	if (st->nqueues >= st->nbuckets) {
		size_t n = st->nbuckets * 2;
		fq **nb = sf_host->calloc(sf_plugin, n, sizeof(*nb));
		if (nb) {
			for (size_t i = 0; i < st->nbuckets; i++) {
				for (fq *e = st->buckets[i], *next; e; e = next) {
					next = e->hnext;
					fq **slot = &nb[hash_qid(e->qid) & (n - 1)];
					e->hnext = *slot;
					*slot = e;
				}
			}
			sf_host->free(sf_plugin, st->buckets);
			st->buckets = nb;
			st->nbuckets = n;
		}
	}
	fq **slot = bucket_of(st, q->qid);
	q->hnext = *slot;
	*slot = q;
	st->nqueues++;
}

/* Release everything a queue holds on its segments and buffers. */
static void queue_drop_state(fq *q)
{
	struct fstore *st = q->st;
	if (q->cur) { /* only for deleted queues: the data is garbage now */
		sf_seg_io_put(st, q->cur->seg);
		sf_host->free(sf_plugin, q->cur->data);
		sf_host->free(sf_plugin, q->cur);
		q->cur = NULL;
	}
	sf_dirty_q_remove(st, q);
	while (q->head) {
		struct seg *s = q->head;
		sf_list_remove(q, s);
		sf_seg_unref(st, s);
	}
	q->active = NULL;
	sf_host->free(sf_plugin, q->ents);
	q->ents = NULL;
	q->lo = q->hi = q->cap = 0;
	q->nlive = q->live_payload = 0;
}

void sf_queue_free(fq *q)
{
	queue_drop_state(q);
	sf_qdir_put(q->dir);
	sf_host->free(sf_plugin, q);
}

static int fs_queue_open(void *store, const char *qid, amqpd_store_queue **qp)
{
	struct fstore *st = store;
	if (!valid_qid(qid) || !qp)
		return -EINVAL;
	if (lookup(st, qid))
		return -EBUSY;
	/* A queue closed in this run may still have writes on their way. */
	for (size_t i = 0; i < st->nrecent; i++) {
		if (strcmp(st->recent[i].qid, qid) == 0) {
			sf_wait_processed(st, st->recent[i].jobno);
			st->recent[i] = st->recent[--st->nrecent];
			break;
		}
	}
	if (mkdirat(st->dirfd, qid, 0750) == 0)
		st->dir_dirty = true;
	else if (errno != EEXIST)
		return -errno;
	int dfd = openat(st->dirfd, qid, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (dfd < 0)
		return -errno;
	fq *q = sf_host->calloc(sf_plugin, 1, sizeof(*q));
	struct qdir *d = q ? sf_qdir_new(dfd) : NULL;
	if (!d) {
		close(dfd);
		sf_host->free(sf_plugin, q);
		return -ENOMEM;
	}
	q->st = st;
	q->dir = d;
	q->refs = 1;
	q->next_id = 1ull << SEG_ID_SHIFT;
	snprintf(q->qid, sizeof(q->qid), "%s", qid);
	int rc = sf_scan_queue(q);
	if (rc) {
		sf_queue_free(q);
		return rc;
	}
	sf_trim(q);
	sf_maybe_compact(q);
	map_insert(st, q);
	*qp = q;
	return 0;
}

static void fs_queue_close(amqpd_store_queue *q)
{
	struct fstore *st;
	if (!q)
		return;
	st = q->st;
	if (!q->deleted) {
		if (q->cur)
			sf_seal_and_submit(st, q);
		map_remove(st, q);
		pthread_mutex_lock(&st->mtx);
		uint64_t no = st->submitted;
		uint64_t landed = st->processed;
		pthread_mutex_unlock(&st->mtx);
		for (size_t i = 0; i < st->nrecent;) { /* forget what has landed */
			if (st->recent[i].jobno <= landed)
				st->recent[i] = st->recent[--st->nrecent];
			else
				i++;
		}
		if (landed < no && sf_grow(&st->recent, &st->caprecent, st->nrecent + 1,
		                           sizeof(*st->recent)) == 0) {
			snprintf(st->recent[st->nrecent].qid, sizeof(st->recent->qid), "%s",
			         q->qid);
			st->recent[st->nrecent++].jobno = no;
		}
	}
	q->closed = true;
	if (--q->refs == 0)
		sf_queue_free(q);
	else
		queue_drop_state(q); /* a compaction still holds the struct */
}

static int rm_tree(int parent, const char *name)
{
	int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -errno;
	}
	struct dirent *de;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			unlinkat(dirfd(d), de->d_name, 0);
	closedir(d);
	if (unlinkat(parent, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
		return -errno;
	return 0;
}

static int fs_queue_delete(void *store, const char *qid)
{
	struct fstore *st = store;
	if (!valid_qid(qid))
		return -EINVAL;
	fq *q = lookup(st, qid);
	uint64_t wait = 0;
	if (q) { /* still open: the handle stays valid but empty and dead */
		if (q->compacting) {
			pthread_mutex_lock(&st->mtx);
			wait = st->submitted;
			pthread_mutex_unlock(&st->mtx);
		}
		map_remove(st, q);
		q->deleted = true;
		queue_drop_state(q);
	}
	for (size_t i = 0; i < st->nrecent; i++) {
		if (strcmp(st->recent[i].qid, qid) == 0) {
			wait = st->recent[i].jobno;
			st->recent[i] = st->recent[--st->nrecent];
			break;
		}
	}
	/* A compaction renames in the directory: let it finish first, or the
	 * directory could gain an entry while it is being emptied. */
	if (wait)
		sf_wait_processed(st, wait);
	int rc = rm_tree(st->dirfd, qid);
	st->dir_dirty = true;
	return rc;
}

static int fs_queue_list(void *store, void (*fn)(void *ctx, const char *qid), void *ctx)
{
	struct fstore *st = store;
	int fd = dup(st->dirfd);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d) {
		if (fd >= 0)
			close(fd);
		return -errno;
	}
	rewinddir(d);
	struct dirent *de;
	while ((de = readdir(d))) {
		struct stat sb;
		if (!valid_qid(de->d_name))
			continue;
		if (fstatat(st->dirfd, de->d_name, &sb, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISDIR(sb.st_mode))
			continue;
		fn(ctx, de->d_name);
	}
	closedir(d);
	return 0;
}

static int fs_stats(void *store, struct amqpd_storage_stats *out)
{
	struct fstore *st = store;
	struct amqpd_storage_stats s = {0};
	if (!out || out->struct_size < sizeof(uint32_t))
		return -EINVAL;
	for (size_t b = 0; b < st->nbuckets; b++) {
		for (fq *q = st->buckets[b]; q; q = q->hnext) {
			s.bytes_on_disk += q->total_size;
			s.live_messages += q->nlive;
			s.live_bytes += q->live_payload;
			for (struct seg *g = q->head; g; g = g->next)
				s.segments++;
		}
	}
	s.struct_size = out->struct_size < sizeof(s) ? out->struct_size : (uint32_t)sizeof(s);
	memcpy(out, &s, s.struct_size);
	return 0;
}

static void fs_stop(void *store, bool clean)
{
	struct fstore *st = store;
	int status = 0;
	if (!st)
		return;
	/* Flush and fsync everything, then finish every job here. */
	bool synced = sf_submit_sync(st, NULL, NULL, false) == 0;
	struct job *final = synced ? st->out_tail : NULL;
	pthread_mutex_lock(&st->mtx);
	uint64_t no = st->submitted;
	pthread_mutex_unlock(&st->mtx);
	sf_wait_processed(st, no);
	pthread_mutex_lock(&st->mtx);
	st->quit = true;
	pthread_cond_signal(&st->cv_work);
	pthread_mutex_unlock(&st->mtx);
	pthread_join(st->thr, NULL);
	status = synced ? final->status : -ENOMEM;
	while (st->out_head)
		sf_finish_job(st, st->out_head); /* its run_on_loop callback only frees it */

	if (clean && status == 0) {
		int fd = openat(st->dirfd, MARKER, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
		if (fd < 0 || write(fd, "clean\n", 6) != 6 || fsync(fd) < 0 || fsync(st->dirfd) < 0)
			sf_host->log(sf_plugin, AMQPD_LOG_ERROR,
			             "storage: clean-shutdown marker: %s", strerror(errno));
		if (fd >= 0)
			close(fd);
	} else if (clean) {
		sf_host->log(sf_plugin, AMQPD_LOG_ERROR,
		             "storage: final sync failed (%s); not marking a clean shutdown",
		             strerror(-status));
	}

	/* Queues the host left open are freed with the store. */
	for (size_t b = 0; b < st->nbuckets; b++) {
		while (st->buckets[b]) {
			fq *q = st->buckets[b];
			st->buckets[b] = q->hnext;
			if (q->cur) { /* cannot happen after the final sync, but */
				sf_seg_io_put(st, q->cur->seg);
				sf_host->free(sf_plugin, q->cur->data);
				sf_host->free(sf_plugin, q->cur);
				q->cur = NULL;
			}
			sf_queue_free(q);
		}
	}
	sf_free_unsynced_upto(st, UINT64_MAX);
	for (size_t i = 0; i < st->ndsegs; i++)
		sf_seg_io_put(st, st->dsegs[i]);
	for (size_t i = 0; i < st->nddirs; i++)
		sf_qdir_put(st->ddirs[i]);
	while (st->lru_head) {
		struct seg *s = st->lru_head;
		sf_lru_unlink(st, s);
		close(s->fd);
		s->fd = -1;
	}
	sf_host->free(sf_plugin, st->dsegs);
	sf_host->free(sf_plugin, st->ddirs);
	sf_host->free(sf_plugin, st->pend);
	sf_host->free(sf_plugin, st->recent);
	sf_host->free(sf_plugin, st->scratch);
	sf_host->free(sf_plugin, st->buckets);
	pthread_mutex_destroy(&st->mtx);
	pthread_cond_destroy(&st->cv_work);
	pthread_cond_destroy(&st->cv_idle);
	close(st->lockfd);
	close(st->dirfd);
	sf_host->free(sf_plugin, st);
}

/* ------------------------------------------------------------- plugin */

/* The ABI 2 vtable: wrappers over the int (0 / -errno) functions above
 * and in queue_ops.c / compact.c. */

static amqpd_status status(int rc)
{
	return rc == 0 ? AMQPD_OK : AMQPD_ERR_ERRNO(rc < 0 ? -rc : EIO);
}

static amqpd_status w_start(void *ud, amqpd_store **store, const char *dir, bool *clean, char *err,
                            size_t errlen)
{
	void *st = NULL;
	if (fs_start(ud, &st, dir, clean, err, errlen) != 0)
		return AMQPD_ERR_ERRNO(EIO);
	*store = st;
	return AMQPD_OK;
}

static void w_stop(void *ud, amqpd_store *store, bool clean)
{
	fs_stop(store, clean);
}

static amqpd_status w_queue_open(void *ud, amqpd_store *store, const char *qid,
                                 amqpd_store_queue **q)
{
	return status(fs_queue_open(store, qid, q));
}

static void w_queue_close(void *ud, amqpd_store_queue *q)
{
	fs_queue_close(q);
}

static amqpd_status w_queue_delete(void *ud, amqpd_store *store, const char *qid)
{
	return status(fs_queue_delete(store, qid));
}

static amqpd_status w_queue_list(void *ud, amqpd_store *store,
                                 void (*fn)(void *ctx, const char *qid), void *ctx)
{
	return status(fs_queue_list(store, fn, ctx));
}

static amqpd_status w_recover(void *ud, amqpd_store_queue *q, amqpd_stored_msg_fn fn, void *ctx)
{
	return status(sf_recover(q, fn, ctx));
}

static amqpd_status w_append(void *ud, amqpd_store_queue *q, uint64_t seq,
                             const struct amqpd_iov *iov, int iovcnt)
{
	return status(sf_append(q, seq, iov, iovcnt));
}

static amqpd_status w_ack(void *ud, amqpd_store_queue *q, uint64_t seq)
{
	return status(sf_ack(q, seq));
}

static amqpd_status w_delivered(void *ud, amqpd_store_queue *q, uint64_t seq)
{
	return status(sf_delivered(q, seq));
}

static amqpd_status w_read(void *ud, amqpd_store_queue *q, uint64_t seq, amqpd_stored_msg_fn fn,
                           void *ctx)
{
	return status(sf_read(q, seq, fn, ctx));
}

/* The fsync thread's result reaches the loop (sf_finish_job), then the
 * host through complete(). */
static void sync_finished(void *req, int rc)
{
	sf_host->complete(sf_plugin, req, status(rc));
}

static amqpd_status w_sync(void *ud, amqpd_store *store, amqpd_request *req)
{
	int rc = sf_submit_sync((struct fstore *)store, sync_finished, req, false);
	return rc == 0 ? AMQPD_PENDING : status(rc);
}

static amqpd_status w_purge(void *ud, amqpd_store_queue *q)
{
	return status(sf_purge(q));
}

static amqpd_status w_compact(void *ud, amqpd_store *store)
{
	return status(sf_compact(store));
}

static amqpd_status w_stats(void *ud, amqpd_store *store, struct amqpd_storage_stats *out)
{
	return status(fs_stats(store, out));
}

static const struct amqpd_storage_ops file_ops = {
    .struct_size = sizeof(struct amqpd_storage_ops),
    .name = "file",
    .start = w_start,
    .stop = w_stop,
    .queue_open = w_queue_open,
    .queue_close = w_queue_close,
    .queue_delete = w_queue_delete,
    .queue_list = w_queue_list,
    .recover = w_recover,
    .append = w_append,
    .ack = w_ack,
    .delivered = w_delivered,
    .read = w_read,
    .sync = w_sync,
    .purge = w_purge,
    .compact = w_compact,
    .stats = w_stats,
};

static amqpd_status bad_option(const char *key, const char *value, const char *why, char *err,
                               size_t errlen)
{
	snprintf(err, errlen, "option %s=%s: %s", key, value, why);
	return AMQPD_ERR_PRECONDITION_FAILED;
}

static void file_fini(amqpd_plugin *self, void *userdata)
{
	struct sf_config *cfg = userdata;
	if (!cfg)
		return;
	sf_host->free(self, cfg->fail_writes_flag);
	sf_host->free(self, cfg);
}

static amqpd_status file_init(amqpd_plugin *self, const struct amqpd_host_api *h,
                              const struct amqpd_option *opts, size_t nopts, void **userdata,
                              char *err, size_t errlen)
{
	sf_host = h;
	sf_plugin = self;
	struct sf_config *cfg = h->calloc(self, 1, sizeof(*cfg));
	if (!cfg)
		return AMQPD_ERR_ERRNO(ENOMEM);
	amqpd_status s = AMQPD_OK;
	for (size_t i = 0; i < nopts && s == AMQPD_OK; i++) {
		const char *k = opts[i].key, *v = opts[i].value;
		if (strcmp(k, "fail_writes") == 0) {
			if (strcmp(v, "0") != 0 && strcmp(v, "1") != 0)
				s = bad_option(k, v, "want 0 or 1", err, errlen);
			cfg->fail_writes = strcmp(v, "1") == 0;
		} else if (strcmp(k, "fail_writes_flag") == 0) {
			size_t n = strlen(v);
			if (n == 0) {
				s = bad_option(k, v, "want a file name", err, errlen);
				continue;
			}
			sf_host->free(self, cfg->fail_writes_flag);
			cfg->fail_writes_flag = h->alloc(self, n + 1);
			if (!cfg->fail_writes_flag)
				s = AMQPD_ERR_ERRNO(ENOMEM);
			else
				memcpy(cfg->fail_writes_flag, v, n + 1);
		} else {
			s = bad_option(k, v, "unknown (known: fail_writes, fail_writes_flag)", err,
			               errlen);
		}
	}
	if (s == AMQPD_OK)
		s = h->register_storage(self, &file_ops);
	if (s != AMQPD_OK) {
		file_fini(self, cfg);
		return s;
	}
	/* The environment variable this replaced is not read any more; say so
	 * rather than ignore a test setup silently. */
	if (getenv("AMQPD_STORAGE_FAIL_WRITES"))
		h->log(self, AMQPD_LOG_WARNING,
		       "AMQPD_STORAGE_FAIL_WRITES is no longer read; use --plugin-opt "
		       "storage-file.fail_writes=1");
	*userdata = cfg;
	return AMQPD_OK;
}

AMQPD_PLUGIN_DEFINE("storage-file", "2.0",
                    "durable message store: append-only segment files, group commit", file_init,
                    file_fini);
