/*
 * sfile.h - private header of the file storage backend (not installed,
 * not part of the plugin ABI): its tuning constants, the structures the
 * backend's files share (store, queue, segment, buffer, index entry, job)
 * and its internal functions, grouped by the file that defines them.  The
 * design is described at the top of storage_file.c; the on-disk format
 * in segment.h.
 *
 * Naming: functions and globals shared between the backend's files are
 * prefixed sf_; file-local helpers are static and unprefixed.  The plugin
 * is built with -fvisibility=hidden, so none of these are exported: the
 * only dynamic symbol is amqpd_plugin_entry.
 *
 * Ownership: every structure here comes from the host allocator (sf_host)
 * and belongs to the store that reaches it.  Threading: all of it is
 * loop-thread state, except the fields of struct fstore marked as shared
 * with the thread (guarded by its mutex) or thread only, and what a job
 * pins for the fsync thread (see writer.c).
 */
#ifndef AMQPD_STORAGE_SFILE_H
#define AMQPD_STORAGE_SFILE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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

/* The plugin's options (--plugin-opt storage-file.KEY=VALUE), parsed by
 * init and handed to every store as the plugin's userdata.  Test hooks:
 * fail_writes makes every sync fail with EIO without doing I/O, like a
 * failing disk (the data stays buffered; a later sync rewrites it);
 * fail_writes_flag does so while that file exists (checked at each sync). */
struct sf_config {
	bool fail_writes;
	char *fail_writes_flag; /* NULL: none */
};

/* How a finished sync is reported on the loop thread: status 0 or -errno. */
typedef void (*sf_done_fn)(void *ctx, int status);

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
	sf_done_fn done;
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
	const struct sf_config *cfg; /* the plugin's options */
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

/* Set once by the plugin's init (storage_file.c); read-only afterwards. */
extern const struct amqpd_host_api *sf_host;
extern amqpd_plugin *sf_plugin;

/* storage_file.c */
void sf_queue_free(fq *q);

/* util.c */
int sf_grow(void *arrp, size_t *cap, size_t need, size_t sz);
int sf_pwrite_all(int fd, const uint8_t *p, size_t n, uint64_t off);
int sf_pread_all(int fd, uint8_t *p, size_t n, uint64_t off);

/* segfiles.c */
struct qdir *sf_qdir_new(int fd);
void sf_qdir_put(struct qdir *d);
void sf_dir_touch(struct fstore *st, struct qdir *d);
void sf_lru_unlink(struct fstore *st, struct seg *s);
void sf_lru_push(struct fstore *st, struct seg *s);
struct seg *sf_seg_new(struct qdir *dir, uint64_t id, int fd, uint64_t size);
void sf_seg_unref(struct fstore *st, struct seg *s);
int sf_seg_io_get(struct fstore *st, struct seg *s);
void sf_seg_io_put(struct fstore *st, struct seg *s);
int sf_seg_read_fd(struct fstore *st, struct seg *s);
void sf_list_remove(fq *q, struct seg *s);
void sf_list_push_tail(fq *q, struct seg *s);
void sf_list_push_head(fq *q, struct seg *s);
void sf_seg_unlink_file(struct seg *s);

/* index.c */
ptrdiff_t sf_idx_find(fq *q, uint64_t seq);
void sf_idx_squeeze(fq *q, bool force);
struct entry *sf_idx_slot(fq *q, uint64_t seq, bool *existed);
void sf_live_add(fq *q, struct entry *e);
void sf_live_remove(fq *q, struct entry *e);
void sf_idx_kill(fq *q, size_t i);

/* writer.c */
void sf_submit(struct fstore *st, struct job *j);
void sf_wait_processed(struct fstore *st, uint64_t no);
struct job *sf_job_new(enum job_kind kind);
int sf_job_fail(struct job *j, int rc, const char *what, uint64_t id);
void *sf_thread_main(void *arg);
void sf_finish_job(struct fstore *st, struct job *j);
int sf_submit_sync(struct fstore *st, sf_done_fn done, void *ctx, bool internal);

/* buffers.c */
void sf_seal(struct fstore *st, fq *q);
void sf_dirty_q_remove(struct fstore *st, fq *q);
void sf_seal_and_submit(struct fstore *st, fq *q);
void sf_free_unsynced_upto(struct fstore *st, uint64_t cover);
const uint8_t *sf_mem_record(fq *q, struct seg *s, uint64_t off, size_t rl);
void sf_roll(fq *q);
int sf_put_record(fq *q, uint8_t type, uint8_t flags, uint64_t seq, const struct amqpd_iov *iov,
                  int iovcnt, uint32_t len, struct seg **seg, uint64_t *off);

/* compact.c */
void sf_trim(fq *q);
void sf_maybe_compact(fq *q);
void sf_run_compact(struct job *j);
void sf_finish_compact(struct fstore *st, struct job *j);
int sf_compact(void *store);

/* recovery.c */
int sf_scan_queue(fq *q);

/* queue_ops.c */
int sf_recover(amqpd_store_queue *q, amqpd_stored_msg_fn fn, void *ctx);
int sf_append(amqpd_store_queue *q, uint64_t seq, const struct amqpd_iov *iov, int iovcnt);
int sf_ack(amqpd_store_queue *q, uint64_t seq);
int sf_delivered(amqpd_store_queue *q, uint64_t seq);
int sf_read(amqpd_store_queue *q, uint64_t seq, amqpd_stored_msg_fn fn, void *ctx);
int sf_purge(amqpd_store_queue *q);

#endif
