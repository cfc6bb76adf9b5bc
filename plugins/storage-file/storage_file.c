/*
 * storage_file.c - the "file" storage backend: append-only segment files
 * per queue, group commit by a dedicated fsync thread, crash recovery that
 * drops damaged records instead of refusing to start.
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
 * Test hook: when the environment variable AMQPD_STORAGE_FAIL_WRITES is set
 * (and not "0") at the time sync() is called, that sync performs no I/O and
 * fails with -EIO, exactly like a failing disk; the data stays buffered and
 * a later sync rewrites it.
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
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "amqpd/plugin.h"
#include "amqpd/storage.h"
#include "segment.h"

#define SEG_TARGET          (16u << 20) /* roll segments at this size */
#define BUF_SPILL           (1u << 20)  /* hand a buffer to the thread past this */
#define BUF_MIN             (16u << 10)
#define INTERNAL_SYNC_BYTES (64u << 20)  /* unsynced bytes that force an fsync */
#define BACKLOG_MAX         (1ull << 30) /* refuse appends past this (disk failing) */
#define COMPACT_MIN_DEAD    (4u << 20)
#define LRU_MAX             256 /* idle segment fds kept open */
#define QID_MAX             64
#define MARKER              "clean.marker"
#define LOCKFILE            "store.lock"
#define FAIL_ENV            "AMQPD_STORAGE_FAIL_WRITES"

static const struct amqpd_host_api *host;
static amqpd_plugin *plugin;

/* A queue directory; refcounted because jobs fsync it or rename in it. */
struct qdir {
	int fd;
	unsigned refs;
	bool dirty; /* in the store's dirty_dirs: a new entry needs an fsync */
};

struct buf;

struct seg {
	struct seg *next, *prev;         /* the queue's list, by id */
	struct seg *lru_next, *lru_prev; /* idle open fds */
	struct qdir *dir;
	uint64_t id;
	int fd; /* -1 while closed (reopened on demand) */
	bool in_lru, in_list, unlinked, dirty, in_set;
	unsigned refs;    /* lifetime: queue list + io_refs */
	unsigned io_refs; /* pins fd: retained buffers, dirty list, jobs */
	uint64_t size;    /* logical size: written + buffered */
	uint64_t live_count, live_bytes;
	struct buf *bufs, *bufs_tail; /* retained (unsynced) buffers, by offset */
	uint64_t mark;
};

struct buf {
	struct buf *next;     /* store's unsynced FIFO */
	struct buf *seg_next; /* seg's retained list */
	struct seg *seg;      /* io ref */
	uint64_t sealno;
	uint64_t off; /* file offset of data[0] */
	size_t len, cap;
	uint8_t *data;
};

#define E_LIVE      1u
#define E_DELIVERED 2u

struct entry {
	uint64_t seq;
	struct seg *seg;
	uint64_t off; /* record header offset in seg */
	uint32_t len; /* payload length */
	uint32_t flags;
};

struct fstore;

struct amqpd_store_queue {
	struct fstore *st;
	struct amqpd_store_queue *hnext; /* open-queue hash chain */
	struct amqpd_store_queue *dnext; /* store's queues-with-cur list */
	char qid[QID_MAX + 1];
	struct qdir *dir;
	struct seg *head, *tail; /* segments by id */
	struct seg *active;      /* receives new records; NULL until needed */
	uint64_t next_id;
	struct buf *cur; /* unsealed buffer for active */
	bool in_dirty, compacting, deleted, closed;
	unsigned refs; /* handle + compaction job */
	int iterating; /* recover() in progress: keep entry indexes stable */
	struct entry *ents;
	size_t lo, hi, cap;
	uint64_t nlive, live_payload;
	uint64_t total_size, total_live; /* over all segments, record bytes */
};
typedef struct amqpd_store_queue fq;

enum job_kind { JOB_WRITE, JOB_SYNC, JOB_COMPACT };

struct centry { /* one message to copy in a compaction */
	uint64_t seq;
	struct seg *seg;
	uint64_t off;
	uint32_t len;
	uint8_t flags;
	uint64_t new_off;
};

struct job {
	struct job *next;          /* thread FIFO */
	struct job *onext, *oprev; /* outstanding (loop side) */
	struct fstore *st;         /* NULL once stop() has finished it */
	enum job_kind kind;
	uint64_t no;
	int status;
	char err[160];
	/* WRITE / SYNC */
	struct buf **bufs;
	size_t nbufs;
	struct seg **segs; /* io refs */
	size_t nsegs;
	struct qdir **dirs; /* refs */
	size_t ndirs;
	bool store_dir, rewrite_all, inject_eio, internal;
	uint64_t cover;
	amqpd_storage_done_fn done;
	void *ctx;
	/* COMPACT */
	fq *q;
	struct seg **old; /* io refs */
	size_t nold;
	struct centry *ents;
	size_t nents;
	int out_fd;
	uint64_t out_id, out_size;
};

struct recent { /* a closed queue whose data may still be on its way */
	char qid[QID_MAX + 1];
	uint64_t jobno;
};

struct fstore {
	int dirfd, lockfd;
	bool dir_dirty, need_rewrite, internal_sync;
	fq **buckets;
	size_t nbuckets, nqueues;
	fq *dirty_q;
	struct buf *unsynced, *unsynced_tail;
	uint64_t unsynced_bytes, sealno;
	struct buf **pend; /* sealed, not yet in a job */
	size_t npend, cappend;
	struct seg **dsegs; /* written since the last sync was submitted */
	size_t ndsegs, capdsegs;
	struct qdir **ddirs;
	size_t nddirs, capddirs;
	struct seg *lru_head, *lru_tail;
	size_t nlru;
	uint64_t mark;
	struct recent *recent;
	size_t nrecent, caprecent;
	struct job *out_head, *out_tail; /* jobs whose completion has not run */
	uint8_t *scratch;
	size_t scratch_cap;
	bool scratch_busy;
	/* shared with the thread */
	pthread_t thr;
	pthread_mutex_t mtx;
	pthread_cond_t cv_work, cv_idle;
	struct job *jq_head, *jq_tail;
	uint64_t submitted, processed;
	bool quit;
	/* thread only */
	bool bad; /* a write failed since the last full rewrite */
};

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

/* Grow *arr (element size sz) to hold at least need elements. */
static int grow(void *arrp, size_t *cap, size_t need, size_t sz)
{
	void **arr = arrp;
	if (need <= *cap)
		return 0;
	size_t n = *cap ? *cap : 8;
	while (n < need)
		n *= 2;
	void *p = host->realloc(*arr, n * sz);
	if (!p)
		return -ENOMEM;
	*arr = p;
	*cap = n;
	return 0;
}

static int pwrite_all(int fd, const uint8_t *p, size_t n, uint64_t off)
{
	while (n) {
		ssize_t w = pwrite(fd, p, n, (off_t)off);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (w == 0)
			return -EIO;
		p += w;
		n -= (size_t)w;
		off += (uint64_t)w;
	}
	return 0;
}

static int pread_all(int fd, uint8_t *p, size_t n, uint64_t off)
{
	while (n) {
		ssize_t r = pread(fd, p, n, (off_t)off);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0)
			return -EIO; /* short file */
		p += r;
		n -= (size_t)r;
		off += (uint64_t)r;
	}
	return 0;
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

/* ------------------------------------------------------- dirs and segments */

static struct qdir *qdir_new(int fd)
{
	struct qdir *d = host->calloc(1, sizeof(*d));
	if (!d)
		return NULL;
	d->fd = fd;
	d->refs = 1;
	return d;
}

static void qdir_put(struct qdir *d)
{
	if (d && --d->refs == 0) {
		close(d->fd);
		host->free(d);
	}
}

/* Remember that d gained an entry: fsync it with the next sync. */
static void dir_touch(struct fstore *st, struct qdir *d)
{
	if (d->dirty || grow(&st->ddirs, &st->capddirs, st->nddirs + 1, sizeof(*st->ddirs)))
		return; /* out of memory: the fdatasync still covers the data */
	d->dirty = true;
	d->refs++;
	st->ddirs[st->nddirs++] = d;
}

static void lru_unlink(struct fstore *st, struct seg *s)
{
	if (!s->in_lru)
		return;
	if (s->lru_prev)
		s->lru_prev->lru_next = s->lru_next;
	else
		st->lru_head = s->lru_next;
	if (s->lru_next)
		s->lru_next->lru_prev = s->lru_prev;
	else
		st->lru_tail = s->lru_prev;
	s->lru_next = s->lru_prev = NULL;
	s->in_lru = false;
	st->nlru--;
}

/* An open fd nobody pins: keep it, most recently used first, up to LRU_MAX. */
static void lru_push(struct fstore *st, struct seg *s)
{
	lru_unlink(st, s);
	s->lru_next = st->lru_head;
	if (st->lru_head)
		st->lru_head->lru_prev = s;
	else
		st->lru_tail = s;
	st->lru_head = s;
	s->in_lru = true;
	st->nlru++;
	while (st->nlru > LRU_MAX) {
		struct seg *t = st->lru_tail;
		lru_unlink(st, t);
		close(t->fd);
		t->fd = -1;
	}
}

static struct seg *seg_new(struct qdir *dir, uint64_t id, int fd, uint64_t size)
{
	struct seg *s = host->calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->dir = dir;
	dir->refs++;
	s->id = id;
	s->fd = fd;
	s->size = size;
	s->refs = 1;
	return s;
}

static void seg_unref(struct fstore *st, struct seg *s)
{
	if (--s->refs)
		return;
	lru_unlink(st, s);
	if (s->fd >= 0)
		close(s->fd);
	qdir_put(s->dir);
	host->free(s);
}

static int seg_open_fd(struct seg *s)
{
	if (s->fd >= 0)
		return 0;
	char name[SEG_NAME_MAX];
	seg_name(name, s->id, false);
	s->fd = openat(s->dir->fd, name, O_RDWR | O_CLOEXEC);
	return s->fd < 0 ? -errno : 0;
}

/* Pin the segment's fd for I/O on the thread. */
static int seg_io_get(struct fstore *st, struct seg *s)
{
	int rc = seg_open_fd(s);
	if (rc)
		return rc;
	if (s->io_refs++ == 0)
		lru_unlink(st, s);
	s->refs++;
	return 0;
}

static void seg_io_put(struct fstore *st, struct seg *s)
{
	if (--s->io_refs == 0 && s->fd >= 0 && s->refs > 1)
		lru_push(st, s);
	seg_unref(st, s);
}

/* An fd for a read on the loop thread. */
static int seg_read_fd(struct fstore *st, struct seg *s)
{
	int rc = seg_open_fd(s);
	if (rc)
		return rc;
	if (s->io_refs == 0)
		lru_push(st, s);
	return s->fd;
}

static void list_remove(fq *q, struct seg *s)
{
	if (s->prev)
		s->prev->next = s->next;
	else
		q->head = s->next;
	if (s->next)
		s->next->prev = s->prev;
	else
		q->tail = s->prev;
	s->next = s->prev = NULL;
	s->in_list = false;
	q->total_size -= s->size;
	q->total_live -= s->live_bytes;
}

static void list_push_tail(fq *q, struct seg *s)
{
	s->prev = q->tail;
	s->next = NULL;
	if (q->tail)
		q->tail->next = s;
	else
		q->head = s;
	q->tail = s;
	s->in_list = true;
	q->total_size += s->size;
	q->total_live += s->live_bytes;
}

static void list_push_head(fq *q, struct seg *s)
{
	s->next = q->head;
	s->prev = NULL;
	if (q->head)
		q->head->prev = s;
	else
		q->tail = s;
	q->head = s;
	s->in_list = true;
	q->total_size += s->size;
	q->total_live += s->live_bytes;
}

static void seg_unlink_file(struct seg *s)
{
	char name[SEG_NAME_MAX];
	if (s->unlinked)
		return;
	seg_name(name, s->id, false);
	unlinkat(s->dir->fd, name, 0); /* ENOENT (compaction got there first) is fine */
	s->unlinked = true;
}

/* ------------------------------------------------------------------ index */

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
static ptrdiff_t idx_find(fq *q, uint64_t seq)
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
static void idx_squeeze(fq *q, bool force)
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
	return grow(&q->ents, &q->cap, q->cap + 1, sizeof(*q->ents));
}

/* The slot for seq: the existing one (live or not) or a new one in order. */
static struct entry *idx_slot(fq *q, uint64_t seq, bool *existed)
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

static void live_add(fq *q, struct entry *e)
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

static void live_remove(fq *q, struct entry *e)
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

static void idx_kill(fq *q, size_t i)
{
	live_remove(q, &q->ents[i]);
	if (i == q->lo)
		while (q->lo < q->hi && !(q->ents[q->lo].flags & E_LIVE))
			q->lo++;
	if (q->lo == q->hi && !q->iterating)
		q->lo = q->hi = 0;
	idx_squeeze(q, false);
}

/* ------------------------------------------------------------------ jobs */

static void job_done_cb(void *arg);

static void submit(struct fstore *st, struct job *j)
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

static void wait_processed(struct fstore *st, uint64_t no)
{
	pthread_mutex_lock(&st->mtx);
	while (st->processed < no)
		pthread_cond_wait(&st->cv_idle, &st->mtx);
	pthread_mutex_unlock(&st->mtx);
}

static struct job *job_new(enum job_kind kind)
{
	struct job *j = host->calloc(1, sizeof(*j));
	if (j) {
		j->kind = kind;
		j->out_fd = -1;
	}
	return j;
}

/* Thread side: fill job->err and return rc (negative errno). */
static int job_fail(struct job *j, int rc, const char *what, uint64_t id)
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
		int rc = pwrite_all(b->seg->fd, b->data, b->len, b->off);
		if (rc)
			job_fail(j, rc, "write segment", b->seg->id);
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
		snprintf(j->err, sizeof(j->err), "injected write failure (" FAIL_ENV ")");
		st->bad = true;
		return;
	}
	run_write(st, j);
	for (size_t i = 0; i < j->nsegs && j->status == 0; i++)
		if (fdatasync(j->segs[i]->fd) < 0)
			job_fail(j, -errno, "fdatasync segment", j->segs[i]->id);
	for (size_t i = 0; i < j->ndirs && j->status == 0; i++)
		if (fsync(j->dirs[i]->fd) < 0)
			job_fail(j, -errno, "fsync directory with segment", j->dirs[i]->fd);
	if (j->status == 0 && j->store_dir && fsync(st->dirfd) < 0)
		job_fail(j, -errno, "fsync store directory", 0);
	if (j->status)
		st->bad = true;
	else if (st->bad) {
		j->status = -EIO;
		snprintf(j->err, sizeof(j->err), "an earlier write failed; not yet rewritten");
	}
}

/* Copy the live messages into the output, fsync it, rename it into place,
 * and only then unlink what it replaces (crash-safe in every order). */
static void run_compact(struct job *j)
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
		job_fail(j, -ENOMEM, "compaction buffer for", j->out_id);
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
				job_fail(j, -ENOMEM, "compaction buffer for", j->out_id);
				goto fail;
			}
		}
		int rc = pread_all(c->seg->fd, rd, rl, c->off);
		if (rc) {
			job_fail(j, rc, "compaction read of segment", c->seg->id);
			goto fail;
		}
		if (!seg_decode(rd, rl, &r) || r.type != REC_MSG || r.seq != c->seq ||
		    r.len != c->len) {
			job_fail(j, -EIO, "compaction: bad record in segment", c->seg->id);
			goto fail;
		}
		if (len + rl > cap && len) {
			if ((rc = pwrite_all(j->out_fd, out, len, pos))) {
				job_fail(j, rc, "compaction write of segment", j->out_id);
				goto fail;
			}
			pos += len;
			len = 0;
		}
		if (rl > cap) { /* a message larger than the buffer: write through */
			seg_encode(rd, REC_MSG, c->flags & REC_F_DELIVERED, c->seq,
			           rd + SEG_HDR_SIZE, c->len);
			if ((rc = pwrite_all(j->out_fd, rd, rl, pos))) {
				job_fail(j, rc, "compaction write of segment", j->out_id);
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
		int rc = pwrite_all(j->out_fd, out, len, pos);
		if (rc) {
			job_fail(j, rc, "compaction write of segment", j->out_id);
			goto fail;
		}
		pos += len;
	}
	if (fdatasync(j->out_fd) < 0) {
		job_fail(j, -errno, "compaction fdatasync of segment", j->out_id);
		goto fail;
	}
	if (renameat(dfd, tmp, dfd, name) < 0) {
		job_fail(j, -errno, "compaction rename of segment", j->out_id);
		goto fail;
	}
	if (fsync(dfd) < 0) {
		/* The rename may or may not be durable; the old segments stay,
		 * so replay sees either just them or them plus duplicates. */
		job_fail(j, -errno, "compaction fsync of directory for", j->out_id);
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

static void *thread_main(void *arg)
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
			run_compact(j);
			break;
		}
		host->run_on_loop(plugin, job_done_cb, j);

		pthread_mutex_lock(&st->mtx);
		st->processed = no;
		pthread_cond_broadcast(&st->cv_idle);
	}
	pthread_mutex_unlock(&st->mtx);
	return NULL;
}

/* ------------------------------------------------------------ buffers */

static void seal(struct fstore *st, fq *q)
{
	struct buf *b = q->cur;
	if (!b)
		return;
	q->cur = NULL;
	if (b->len == 0 || grow(&st->pend, &st->cappend, st->npend + 1, sizeof(*st->pend))) {
		/* Empty, or no memory to track it: it cannot be lost silently,
		 * so keep it as the current buffer (tracked later). */
		if (b->len) {
			q->cur = b;
			return;
		}
		seg_io_put(st, b->seg);
		host->free(b->data);
		host->free(b);
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
	if (!s->dirty && grow(&st->dsegs, &st->capdsegs, st->ndsegs + 1, sizeof(*st->dsegs)) == 0) {
		s->dirty = true;
		s->io_refs++;
		s->refs++;
		st->dsegs[st->ndsegs++] = s;
	}
}

static void dirty_q_remove(struct fstore *st, fq *q)
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

static int submit_sync(struct fstore *st, amqpd_storage_done_fn done, void *ctx, bool internal);

/* Hand the sealed buffers to the thread (or an internal sync if too much
 * is waiting for an fsync). */
static void submit_pending(struct fstore *st)
{
	if (!st->npend)
		return;
	if (st->unsynced_bytes > INTERNAL_SYNC_BYTES && !st->internal_sync &&
	    submit_sync(st, NULL, NULL, true) == 0)
		return;
	struct job *j = job_new(JOB_WRITE);
	if (!j)
		return; /* stays in pend: the next sync writes it */
	j->bufs = st->pend;
	j->nbufs = st->npend;
	st->pend = NULL;
	st->npend = st->cappend = 0;
	submit(st, j);
}

static void seal_and_submit(struct fstore *st, fq *q)
{
	seal(st, q);
	if (!q->cur)
		dirty_q_remove(st, q);
	submit_pending(st);
}

static void free_unsynced_upto(struct fstore *st, uint64_t cover)
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
		seg_io_put(st, s);
		host->free(b->data);
		host->free(b);
	}
}

/* Data of a record that is still in memory, or NULL if only on disk. */
static const uint8_t *mem_record(fq *q, struct seg *s, uint64_t off, size_t rl)
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
	struct seg *s = seg_new(q->dir, q->next_id, fd, 0);
	if (!s) {
		close(fd);
		unlinkat(q->dir->fd, name, 0);
		return -ENOMEM;
	}
	q->next_id += 1ull << SEG_ID_SHIFT;
	list_push_tail(q, s);
	q->active = s;
	dir_touch(st, q->dir);
	return 0;
}

static void roll(fq *q)
{
	if (q->cur)
		seal_and_submit(q->st, q);
	q->active = NULL;
}

/* Append one record to the active segment's buffer; *seg and *off say where. */
static int put_record(fq *q, uint8_t type, uint8_t flags, uint64_t seq, const uint8_t *data,
                      uint32_t len, struct seg **seg, uint64_t *off)
{
	struct fstore *st = q->st;
	size_t rl = SEG_HDR_SIZE + (size_t)len;
	int rc;

	if (st->unsynced_bytes > BACKLOG_MAX)
		return -ENOBUFS; /* the disk keeps failing: do not eat all memory */
	if (q->active && q->active->size > 0 && q->active->size + rl > SEG_TARGET)
		roll(q);
	if (!q->active && (rc = new_active(q)))
		return rc;
	struct seg *s = q->active;
	struct buf *b = q->cur;
	if (!b) {
		if ((rc = seg_io_get(st, s)))
			return rc;
		b = host->calloc(1, sizeof(*b));
		size_t cap = rl > BUF_MIN ? rl : BUF_MIN;
		uint8_t *d = b ? host->alloc(cap) : NULL;
		if (!d) {
			host->free(b);
			seg_io_put(st, s);
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
		uint8_t *d = host->realloc(b->data, cap);
		if (!d)
			return -ENOMEM;
		b->data = d;
		b->cap = cap;
	}
	seg_encode(b->data + b->len, type, flags, seq, data, len);
	if (len)
		memcpy(b->data + b->len + SEG_HDR_SIZE, data, len);
	*seg = s;
	*off = s->size;
	b->len += rl;
	s->size += rl;
	q->total_size += rl;
	if (b->len >= BUF_SPILL)
		seal_and_submit(st, q);
	return 0;
}

static void start_compaction(fq *q);

/* Delete fully acked segments from the oldest on (see the header). */
static void trim(fq *q)
{
	if (q->compacting || q->deleted)
		return;
	while (q->head && q->head != q->active && q->head->live_count == 0) {
		struct seg *s = q->head;
		list_remove(q, s);
		seg_unlink_file(s);
		seg_unref(q->st, s);
	}
}

static void maybe_compact(fq *q)
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

/* ------------------------------------------------------------- compaction */

static void start_compaction(fq *q)
{
	struct fstore *st = q->st;
	struct job *j = NULL;
	struct seg *s, *last = NULL;
	size_t nold = 0, n = 0;
	char tmp[SEG_NAME_MAX];

	trim(q);
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
	if (!(j = job_new(JOB_COMPACT)))
		goto out;
	j->old = host->calloc(nold, sizeof(*j->old));
	j->ents = host->calloc(n, sizeof(*j->ents));
	if (!j->old || !j->ents)
		goto fail;
	for (s = q->head; s && s != q->active; s = s->next) {
		if (seg_io_get(st, s))
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
		host->log(plugin, AMQPD_LOG_WARNING, "storage: queue %s: compaction: %s", q->qid,
		          strerror(errno));
		goto fail;
	}
	j->q = q;
	q->refs++;
	q->dir->refs++;
	q->compacting = true;
	submit(st, j);
	goto out;
fail:
	for (size_t i = 0; i < j->nold; i++)
		seg_io_put(st, j->old[i]);
	host->free(j->old);
	host->free(j->ents);
	host->free(j);
out:
	for (s = q->head; s; s = s->next)
		s->in_set = false;
}

static void queue_free(fq *q);

static void finish_compact(struct fstore *st, struct job *j)
{
	fq *q = j->q;
	q->compacting = false;
	if (j->status == 0 && !q->closed && !q->deleted) {
		struct seg *o = seg_new(q->dir, j->out_id, j->out_fd, j->out_size);
		if (o) {
			j->out_fd = -1;
			for (size_t i = 0; i < j->nents; i++) {
				struct centry *c = &j->ents[i];
				ptrdiff_t k = idx_find(q, c->seq);
				if (k < 0)
					continue;
				struct entry *e = &q->ents[k];
				if (e->seg != c->seg || e->off != c->off)
					continue;
				live_remove(q, e);
				e->seg = o;
				e->off = c->new_off;
				live_add(q, e);
			}
			for (size_t i = 0; i < j->nold; i++) {
				struct seg *s = j->old[i];
				s->unlinked = true; /* the thread did it */
				if (s->in_list) {
					list_remove(q, s);
					seg_unref(st, s);
				}
			}
			list_push_head(q, o);
			lru_push(st, o);
		} else {
			/* No memory for the record: the files are consistent,
			 * the index still points at the old (unlinked but open)
			 * segments; a restart replays the new one. */
			host->log(plugin, AMQPD_LOG_WARNING,
			          "storage: queue %s: compaction done but not tracked", q->qid);
		}
	} else if (j->status) {
		host->log(plugin, AMQPD_LOG_WARNING, "storage: queue %s: compaction failed: %s",
		          q->qid, j->err);
	}
	if (j->out_fd >= 0)
		close(j->out_fd);
	for (size_t i = 0; i < j->nold; i++)
		seg_io_put(st, j->old[i]);
	qdir_put(q->dir);
	trim(q);
	if (--q->refs == 0)
		queue_free(q);
}

/* -------------------------------------------------------- job completion */

static void finish_io(struct fstore *st, struct job *j)
{
	if (j->kind == JOB_SYNC && j->internal)
		st->internal_sync = false;
	if (j->status == 0) {
		if (j->kind == JOB_SYNC)
			free_unsynced_upto(st, j->cover);
		for (size_t i = 0; i < j->nsegs; i++)
			seg_io_put(st, j->segs[i]);
		for (size_t i = 0; i < j->ndirs; i++)
			qdir_put(j->dirs[i]);
	} else {
		host->log(plugin, AMQPD_LOG_ERROR, "storage: %s", j->err);
		st->need_rewrite = true;
		/* Fsync these again with the rewrite. */
		for (size_t i = 0; i < j->nsegs; i++) {
			struct seg *s = j->segs[i];
			if (!s->dirty && grow(&st->dsegs, &st->capdsegs, st->ndsegs + 1,
			                      sizeof(*st->dsegs)) == 0) {
				s->dirty = true;
				st->dsegs[st->ndsegs++] = s;
			} else {
				seg_io_put(st, s);
			}
		}
		for (size_t i = 0; i < j->ndirs; i++) {
			dir_touch(st, j->dirs[i]);
			qdir_put(j->dirs[i]);
		}
		if (j->store_dir)
			st->dir_dirty = true;
	}
	j->nsegs = j->ndirs = 0;
}

/* Loop-side completion; afterwards the job is detached from the store. */
static void finish_job(struct fstore *st, struct job *j)
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
		finish_compact(st, j);
	else
		finish_io(st, j);
	host->free(j->bufs);
	host->free(j->segs);
	host->free(j->dirs);
	host->free(j->old);
	host->free(j->ents);
	j->bufs = NULL;
	j->segs = NULL;
	j->dirs = NULL;
	j->old = NULL;
	j->ents = NULL;
	j->st = NULL;
	if (j->done) {
		amqpd_storage_done_fn done = j->done;
		j->done = NULL;
		done(j->ctx, j->status);
	}
}

static void job_done_cb(void *arg)
{
	struct job *j = arg;
	if (j->st) /* else stop() finished it already */
		finish_job(j->st, j);
	host->free(j);
}

static int submit_sync(struct fstore *st, amqpd_storage_done_fn done, void *ctx, bool internal)
{
	struct job *j = job_new(JOB_SYNC);
	if (!j)
		return -ENOMEM;
	while (st->dirty_q) {
		fq *q = st->dirty_q;
		seal(st, q);
		if (q->cur)
			break; /* out of memory tracking it */
		dirty_q_remove(st, q);
	}
	if (st->need_rewrite) {
		/* Rewrite and fsync everything a successful sync has not covered. */
		size_t n = 0;
		for (struct buf *b = st->unsynced; b; b = b->next)
			n++;
		j->bufs = host->calloc(n ? n : 1, sizeof(*j->bufs));
		if (!j->bufs) {
			host->free(j);
			return -ENOMEM;
		}
		for (struct buf *b = st->unsynced; b; b = b->next) {
			j->bufs[j->nbufs++] = b;
			struct seg *s = b->seg;
			if (!s->dirty && grow(&st->dsegs, &st->capdsegs, st->ndsegs + 1,
			                      sizeof(*st->dsegs)) == 0) {
				s->dirty = true;
				s->io_refs++;
				s->refs++;
				st->dsegs[st->ndsegs++] = s;
			}
		}
		host->free(st->pend);
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
	const char *inj = getenv(FAIL_ENV);
	j->inject_eio = inj && *inj && strcmp(inj, "0") != 0;
	submit(st, j);
	return 0;
}

/* ------------------------------------------------------------- the store */

static int fs_start(void **store, const char *dir, bool *clean, char *err, size_t errlen)
{
	struct fstore *st = host->calloc(1, sizeof(*st));
	if (!st) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
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
	st->buckets = host->calloc(st->nbuckets, sizeof(*st->buckets));
	if (!st->buckets) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	pthread_mutex_init(&st->mtx, NULL);
	pthread_cond_init(&st->cv_work, NULL);
	pthread_cond_init(&st->cv_idle, NULL);
	int rc = pthread_create(&st->thr, NULL, thread_main, st);
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
	host->free(st->buckets);
	host->free(st);
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
		fq **nb = host->calloc(n, sizeof(*nb));
		if (nb) {
			for (size_t i = 0; i < st->nbuckets; i++) {
				for (fq *e = st->buckets[i], *next; e; e = next) {
					next = e->hnext;
					fq **slot = &nb[hash_qid(e->qid) & (n - 1)];
					e->hnext = *slot;
					*slot = e;
				}
			}
			host->free(st->buckets);
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
		seg_io_put(st, q->cur->seg);
		host->free(q->cur->data);
		host->free(q->cur);
		q->cur = NULL;
	}
	dirty_q_remove(st, q);
	while (q->head) {
		struct seg *s = q->head;
		list_remove(q, s);
		seg_unref(st, s);
	}
	q->active = NULL;
	host->free(q->ents);
	q->ents = NULL;
	q->lo = q->hi = q->cap = 0;
	q->nlive = q->live_payload = 0;
}

static void queue_free(fq *q)
{
	queue_drop_state(q);
	qdir_put(q->dir);
	host->free(q);
}

struct replay {
	fq *q;
	struct seg *s;
	int err;
};

static void replay_rec(void *ctx, const struct rec *r)
{
	struct replay *rp = ctx;
	fq *q = rp->q;
	ptrdiff_t i;
	bool existed;

	switch (r->type) {
	case REC_MSG: {
		struct entry *e = idx_slot(q, r->seq, &existed);
		if (!e) {
			rp->err = -ENOMEM;
			return;
		}
		uint32_t flags = (r->flags & REC_F_DELIVERED) ? E_DELIVERED : 0;
		if (existed && (e->flags & E_LIVE)) { /* duplicate from a compaction */
			flags |= e->flags & E_DELIVERED;
			live_remove(q, e);
		}
		e->seg = rp->s;
		e->off = r->off;
		e->len = r->len;
		e->flags = flags;
		live_add(q, e);
		break;
	}
	case REC_ACK:
		if ((i = idx_find(q, r->seq)) >= 0)
			idx_kill(q, (size_t)i);
		break;
	case REC_DELIVERED:
		if ((i = idx_find(q, r->seq)) >= 0)
			q->ents[i].flags |= E_DELIVERED;
		break;
	case REC_PURGE:
		for (size_t k = q->lo; k < q->hi && q->ents[k].seq <= r->seq; k++)
			if (q->ents[k].flags & E_LIVE)
				live_remove(q, &q->ents[k]);
		while (q->lo < q->hi && !(q->ents[q->lo].flags & E_LIVE))
			q->lo++;
		break;
	}
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* Read the queue's segment files and rebuild its index. */
static int scan_queue(fq *q)
{
	struct fstore *st = q->st;
	uint64_t *ids = NULL, dropped = 0, missing = 0;
	size_t n = 0, cap = 0;
	int rc = 0;

	int dfd = dup(q->dir->fd);
	DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
	if (!d) {
		if (dfd >= 0)
			close(dfd);
		return -errno;
	}
	struct dirent *de;
	while ((de = readdir(d))) {
		uint64_t id;
		bool tmp;
		if (!seg_parse_name(de->d_name, &id, &tmp))
			continue;
		if (tmp) { /* an interrupted compaction; its sources are still in place */
			unlinkat(q->dir->fd, de->d_name, 0);
			continue;
		}
		if ((rc = grow(&ids, &cap, n + 1, sizeof(*ids))))
			break;
		ids[n++] = id;
	}
	closedir(d);
	if (rc)
		goto out;
	if (n)
		qsort(ids, n, sizeof(*ids), cmp_u64);

	for (size_t i = 0; i < n; i++) {
		char name[SEG_NAME_MAX];
		struct stat sb;
		seg_name(name, ids[i], false);
		if (i > 0 && (ids[i] >> SEG_ID_SHIFT) > (ids[i - 1] >> SEG_ID_SHIFT) + 1)
			missing += (ids[i] >> SEG_ID_SHIFT) - (ids[i - 1] >> SEG_ID_SHIFT) - 1;
		int fd = openat(q->dir->fd, name, O_RDWR | O_CLOEXEC);
		if (fd < 0 || fstat(fd, &sb) < 0) {
			host->log(plugin, AMQPD_LOG_WARNING, "storage: queue %s: segment %s: %s",
			          q->qid, name, strerror(errno));
			if (fd >= 0)
				close(fd);
			continue;
		}
		struct seg *s = seg_new(q->dir, ids[i], fd, (uint64_t)sb.st_size);
		if (!s) {
			close(fd);
			rc = -ENOMEM;
			goto out;
		}
		list_push_tail(q, s);
		if (sb.st_size > 0) {
			void *m = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
			if (m == MAP_FAILED) {
				host->log(plugin, AMQPD_LOG_WARNING,
				          "storage: queue %s: segment %s: mmap: %s", q->qid, name,
				          strerror(errno));
				continue;
			}
			madvise(m, (size_t)sb.st_size, MADV_SEQUENTIAL);
			struct replay rp = {.q = q, .s = s};
			size_t end;
			dropped += seg_scan(m, (size_t)sb.st_size, replay_rec, &rp, &end);
			munmap(m, (size_t)sb.st_size);
			if ((rc = rp.err))
				goto out;
			/* Nothing valid follows: cut the damaged tail off (counted
			 * once, not again at every start).  Nothing appends here. */
			if (end < (size_t)sb.st_size && ftruncate(fd, (off_t)end) == 0) {
				q->total_size -= s->size - end;
				s->size = end;
			}
		}
		lru_push(st, s);
	}
	if (n)
		q->next_id = ((ids[n - 1] >> SEG_ID_SHIFT) + 1) << SEG_ID_SHIFT;
	if (dropped)
		host->log(plugin, AMQPD_LOG_WARNING,
		          "storage: queue %s: dropped %" PRIu64 " damaged records", q->qid,
		          dropped);
	if (missing)
		host->log(plugin, AMQPD_LOG_WARNING,
		          "storage: queue %s: %" PRIu64 " segment files missing", q->qid, missing);
	idx_squeeze(q, true);
out:
	host->free(ids);
	return rc;
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
			wait_processed(st, st->recent[i].jobno);
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
	fq *q = host->calloc(1, sizeof(*q));
	struct qdir *d = q ? qdir_new(dfd) : NULL;
	if (!d) {
		close(dfd);
		host->free(q);
		return -ENOMEM;
	}
	q->st = st;
	q->dir = d;
	q->refs = 1;
	q->next_id = 1ull << SEG_ID_SHIFT;
	snprintf(q->qid, sizeof(q->qid), "%s", qid);
	int rc = scan_queue(q);
	if (rc) {
		queue_free(q);
		return rc;
	}
	trim(q);
	maybe_compact(q);
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
			seal_and_submit(st, q);
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
		if (landed < no &&
		    grow(&st->recent, &st->caprecent, st->nrecent + 1, sizeof(*st->recent)) == 0) {
			snprintf(st->recent[st->nrecent].qid, sizeof(st->recent->qid), "%s",
			         q->qid);
			st->recent[st->nrecent++].jobno = no;
		}
	}
	q->closed = true;
	if (--q->refs == 0)
		queue_free(q);
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
		wait_processed(st, wait);
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

/* Scratch space for reading one record on the loop thread. */
static uint8_t *scratch(struct fstore *st, size_t n, bool *owned)
{
	*owned = false;
	if (st->scratch_busy) { /* re-entered from a callback */
		*owned = true;
		return host->alloc(n);
	}
	if (n > st->scratch_cap) {
		uint8_t *p = host->realloc(st->scratch, n);
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
		host->free(p);
	else
		st->scratch_busy = false;
}

static int fs_recover(amqpd_store_queue *q, amqpd_stored_msg_fn fn, void *ctx)
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
		const uint8_t *rec = mem_record(q, e.seg, e.off, rl);
		uint8_t *tmp = NULL;
		bool owned = false;
		if (!rec) {
			if (ms != e.seg) {
				if (map)
					munmap(map, maplen);
				if (ms)
					seg_unref(st, ms);
				map = NULL;
				maplen = 0;
				ms = e.seg;
				ms->refs++;
				struct stat sb;
				int fd = seg_read_fd(st, ms);
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
				int fd = seg_read_fd(st, e.seg);
				struct rec r;
				if (fd >= 0 && pread_all(fd, tmp, rl, e.off) == 0 &&
				    seg_decode(tmp, rl, &r) && r.seq == e.seq)
					rec = tmp;
			}
		}
		if (!rec) {
			lost++;
			if (tmp)
				scratch_done(st, tmp, owned);
			idx_kill(q, i);
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
		seg_unref(st, ms);
	q->iterating--;
	idx_squeeze(q, false);
	if (lost)
		host->log(plugin, AMQPD_LOG_ERROR,
		          "storage: queue %s: %" PRIu64 " messages unreadable, dropped", q->qid,
		          lost);
	return 0;
}

static int fs_append(amqpd_store_queue *q, uint64_t seq, const uint8_t *data, size_t len)
{
	struct seg *s;
	uint64_t off;
	bool existed;

	if (q->deleted)
		return -EIDRM;
	if (len > UINT32_MAX - SEG_HDR_SIZE || (len && !data))
		return -EMSGSIZE;
	/* Look first so nothing is written for a duplicate. */
	if (idx_find(q, seq) >= 0)
		return -EEXIST;
	int rc = put_record(q, REC_MSG, 0, seq, data, (uint32_t)len, &s, &off);
	if (rc)
		return rc;
	struct entry *e = idx_slot(q, seq, &existed);
	if (!e) {
		/* The record is in the file; an ACK keeps replay consistent. */
		put_record(q, REC_ACK, 0, seq, NULL, 0, &s, &off);
		return -ENOMEM;
	}
	e->seg = s;
	e->off = off;
	e->len = (uint32_t)len;
	e->flags = 0;
	live_add(q, e);
	return 0;
}

static int fs_ack(amqpd_store_queue *q, uint64_t seq)
{
	struct seg *s;
	uint64_t off;
	if (q->deleted)
		return -EIDRM;
	ptrdiff_t i = idx_find(q, seq);
	if (i < 0)
		return -ENOENT;
	int rc = put_record(q, REC_ACK, 0, seq, NULL, 0, &s, &off);
	if (rc)
		return rc;
	idx_kill(q, (size_t)i);
	trim(q);
	maybe_compact(q);
	return 0;
}

static int fs_delivered(amqpd_store_queue *q, uint64_t seq)
{
	struct seg *s;
	uint64_t off;
	if (q->deleted)
		return -EIDRM;
	ptrdiff_t i = idx_find(q, seq);
	if (i < 0)
		return -ENOENT;
	if (q->ents[i].flags & E_DELIVERED)
		return 0;
	int rc = put_record(q, REC_DELIVERED, 0, seq, NULL, 0, &s, &off);
	if (rc)
		return rc;
	q->ents[i].flags |= E_DELIVERED; /* put_record leaves the index alone */
	return 0;
}

static int fs_read(amqpd_store_queue *q, uint64_t seq, amqpd_stored_msg_fn fn, void *ctx)
{
	struct fstore *st = q->st;
	if (q->deleted)
		return -EIDRM;
	ptrdiff_t i = idx_find(q, seq);
	if (i < 0)
		return -ENOENT;
	struct entry e = q->ents[i];
	size_t rl = SEG_HDR_SIZE + (size_t)e.len;
	const uint8_t *rec = mem_record(q, e.seg, e.off, rl);
	uint8_t *tmp = NULL;
	bool owned = false;
	if (!rec) {
		struct rec r;
		int fd = seg_read_fd(st, e.seg);
		if (fd < 0)
			return fd;
		if (!(tmp = scratch(st, rl, &owned)))
			return -ENOMEM;
		int rc = pread_all(fd, tmp, rl, e.off);
		if (rc == 0 && (!seg_decode(tmp, rl, &r) || r.type != REC_MSG || r.seq != seq))
			rc = -EIO;
		if (rc) {
			scratch_done(st, tmp, owned);
			host->log(plugin, AMQPD_LOG_ERROR,
			          "storage: queue %s: read of message %" PRIu64 ": %s", q->qid, seq,
			          strerror(-rc));
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

static int fs_sync(void *store, amqpd_storage_done_fn done, void *ctx)
{
	if (!done)
		return -EINVAL;
	return submit_sync(store, done, ctx, false);
}

static int fs_purge(amqpd_store_queue *q)
{
	struct seg *s;
	uint64_t off;
	if (q->deleted)
		return -EIDRM;
	if (q->nlive == 0)
		return 0;
	int rc = put_record(q, REC_PURGE, 0, q->ents[q->hi - 1].seq, NULL, 0, &s, &off);
	if (rc)
		return rc;
	for (size_t i = q->lo; i < q->hi; i++)
		if (q->ents[i].flags & E_LIVE)
			live_remove(q, &q->ents[i]);
	if (!q->iterating) {
		q->lo = q->hi = 0;
	}
	roll(q); /* so the segment holding the PURGE can go too */
	trim(q);
	return 0;
}

static int fs_compact(void *store)
{
	struct fstore *st = store;
	for (size_t b = 0; b < st->nbuckets; b++) {
		for (fq *q = st->buckets[b]; q; q = q->hnext) {
			if (q->compacting)
				continue;
			trim(q);
			if (q->active && q->active->size > q->active->live_bytes)
				roll(q); /* its dead bytes count too */
			trim(q);
			if (q->head && q->head != q->active && q->total_size > q->total_live)
				start_compaction(q);
		}
	}
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
	bool synced = submit_sync(st, NULL, NULL, false) == 0;
	struct job *final = synced ? st->out_tail : NULL;
	pthread_mutex_lock(&st->mtx);
	uint64_t no = st->submitted;
	pthread_mutex_unlock(&st->mtx);
	wait_processed(st, no);
	pthread_mutex_lock(&st->mtx);
	st->quit = true;
	pthread_cond_signal(&st->cv_work);
	pthread_mutex_unlock(&st->mtx);
	pthread_join(st->thr, NULL);
	status = synced ? final->status : -ENOMEM;
	while (st->out_head)
		finish_job(st, st->out_head); /* its run_on_loop callback only frees it */

	if (clean && status == 0) {
		int fd = openat(st->dirfd, MARKER, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
		if (fd < 0 || write(fd, "clean\n", 6) != 6 || fsync(fd) < 0 || fsync(st->dirfd) < 0)
			host->log(plugin, AMQPD_LOG_ERROR, "storage: clean-shutdown marker: %s",
			          strerror(errno));
		if (fd >= 0)
			close(fd);
	} else if (clean) {
		host->log(plugin, AMQPD_LOG_ERROR,
		          "storage: final sync failed (%s); not marking a clean shutdown",
		          strerror(-status));
	}

	/* Queues the host left open are freed with the store. */
	for (size_t b = 0; b < st->nbuckets; b++) {
		while (st->buckets[b]) {
			fq *q = st->buckets[b];
			st->buckets[b] = q->hnext;
			if (q->cur) { /* cannot happen after the final sync, but */
				seg_io_put(st, q->cur->seg);
				host->free(q->cur->data);
				host->free(q->cur);
				q->cur = NULL;
			}
			queue_free(q);
		}
	}
	free_unsynced_upto(st, UINT64_MAX);
	for (size_t i = 0; i < st->ndsegs; i++)
		seg_io_put(st, st->dsegs[i]);
	for (size_t i = 0; i < st->nddirs; i++)
		qdir_put(st->ddirs[i]);
	while (st->lru_head) {
		struct seg *s = st->lru_head;
		lru_unlink(st, s);
		close(s->fd);
		s->fd = -1;
	}
	host->free(st->dsegs);
	host->free(st->ddirs);
	host->free(st->pend);
	host->free(st->recent);
	host->free(st->scratch);
	host->free(st->buckets);
	pthread_mutex_destroy(&st->mtx);
	pthread_cond_destroy(&st->cv_work);
	pthread_cond_destroy(&st->cv_idle);
	close(st->lockfd);
	close(st->dirfd);
	host->free(st);
}

/* ------------------------------------------------------------- plugin */

static const struct amqpd_storage_ops file_ops = {
    .struct_size = sizeof(struct amqpd_storage_ops),
    .name = "file",
    .start = fs_start,
    .stop = fs_stop,
    .queue_open = fs_queue_open,
    .queue_close = fs_queue_close,
    .queue_delete = fs_queue_delete,
    .queue_list = fs_queue_list,
    .recover = fs_recover,
    .append = fs_append,
    .ack = fs_ack,
    .delivered = fs_delivered,
    .read = fs_read,
    .sync = fs_sync,
    .purge = fs_purge,
    .compact = fs_compact,
    .stats = fs_stats,
};

#define HOST_HAS(h, m) ((h)->struct_size >= offsetof(struct amqpd_host_api, m) + sizeof((h)->m))

static int file_init(amqpd_plugin *self, const struct amqpd_host_api *h)
{
	if (!h || !HOST_HAS(h, run_on_loop) || !h->register_storage || !h->run_on_loop)
		return -1;
	host = h;
	plugin = self;
	return h->register_storage(self, &file_ops);
}

static const struct amqpd_plugin_desc file_desc = {
    .struct_size = sizeof(struct amqpd_plugin_desc),
    .name = "storage-file",
    .version = "1.0",
    .description = "durable message store: append-only segment files, group commit",
    .init = file_init,
};

AMQPD_PLUGIN_EXPORT const struct amqpd_plugin_desc *
amqpd_plugin_entry(uint32_t host_min, uint32_t host_max, uint32_t *chosen);

const struct amqpd_plugin_desc *amqpd_plugin_entry(uint32_t host_min, uint32_t host_max,
                                                   uint32_t *chosen)
{
	if (host_min > AMQPD_ABI_VERSION || host_max < AMQPD_ABI_VERSION)
		return NULL;
	if (chosen)
		*chosen = AMQPD_ABI_VERSION;
	return &file_desc;
}
