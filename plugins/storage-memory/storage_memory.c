/*
 * storage_memory.c - the "memory" storage backend: the storage ABI kept in
 * RAM only, for transient data and tests.  Nothing survives a restart, so
 * start() always reports a clean store; sync() has nothing to make durable
 * and answers AMQPD_OK at once.
 *
 * Structure: the store owns every queue it has seen (a queue closed and
 * opened again within one store keeps its messages, as on disk); a queue
 * holds an array of entries sorted by seq with tombstones for acked ones,
 * each entry owning a copy of its message.  Handles are the queue structs.
 *
 * Ownership: everything comes from the host allocator and is freed by
 * ack/purge/queue_delete/stop.  Threading: loop thread only, no threads of
 * its own.  The ABI 2 callbacks at the end wrap the int (0 / -errno)
 * functions that do the work.
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "amqpd/plugin.h"
#include "amqpd/storage.h"

#define QID_MAX 64

static const struct amqpd_host_api *host;
static amqpd_plugin *plugin;

struct ment {
	uint64_t seq;
	uint8_t *data;
	size_t len;
	bool live, delivered;
};

struct mstore;

struct amqpd_store_queue {
	struct amqpd_store_queue *next; /* the store's list */
	struct mstore *st;
	char qid[QID_MAX + 1];
	bool open, deleted;
	int iterating; /* recover() running: keep indexes stable */
	struct ment *ents;
	size_t lo, hi, cap;
	uint64_t nlive, live_bytes;
};
typedef struct amqpd_store_queue mq;

struct mstore {
	mq *queues;
};

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

static mq *find_queue(struct mstore *st, const char *qid)
{
	for (mq *q = st->queues; q; q = q->next)
		if (strcmp(q->qid, qid) == 0)
			return q;
	return NULL;
}

static void queue_clear(mq *q)
{
	for (size_t i = q->lo; i < q->hi; i++)
		host->free(plugin, q->ents[i].data);
	host->free(plugin, q->ents);
	q->ents = NULL;
	q->lo = q->hi = q->cap = 0;
	q->nlive = q->live_bytes = 0;
}

/* Live entry index for seq, or -1 (binary search; the head is the fast path). */
static ptrdiff_t find_live(mq *q, uint64_t seq)
{
	size_t lo = q->lo, hi = q->hi;
	if (lo == hi)
		return -1;
	if (q->ents[lo].seq != seq) {
		while (lo < hi) {
			size_t mid = lo + (hi - lo) / 2;
			if (q->ents[mid].seq < seq)
				lo = mid + 1;
			else
				hi = mid;
		}
	}
	if (lo < q->hi && q->ents[lo].seq == seq && q->ents[lo].live)
		return (ptrdiff_t)lo;
	return -1;
}

/* Forget tombstones when they outnumber the live entries. */
static void squeeze(mq *q)
{
	if (q->iterating)
		return;
	while (q->lo < q->hi && !q->ents[q->lo].live)
		q->lo++;
	if (q->lo == q->hi) {
		q->lo = q->hi = 0;
		return;
	}
	if (q->hi - q->lo - q->nlive < q->nlive + 1024)
		return;
	size_t w = 0;
	for (size_t i = q->lo; i < q->hi; i++)
		if (q->ents[i].live)
			q->ents[w++] = q->ents[i];
	q->lo = 0;
	q->hi = w;
}

static void kill_entry(mq *q, size_t i)
{
	struct ment *e = &q->ents[i];
	host->free(plugin, e->data);
	e->data = NULL;
	e->live = false;
	q->nlive--;
	q->live_bytes -= e->len;
}

static int ms_start(void **store, const char *dir, bool *clean, char *err, size_t errlen)
{
	(void)dir;
	struct mstore *st = host->calloc(plugin, 1, sizeof(*st));
	if (!st) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	*clean = true;
	*store = st;
	return 0;
}

static void ms_stop(void *store, bool clean)
{
	(void)clean;
	struct mstore *st = store;
	if (!st)
		return;
	while (st->queues) {
		mq *q = st->queues;
		st->queues = q->next;
		queue_clear(q);
		host->free(plugin, q);
	}
	host->free(plugin, st);
}

static int ms_queue_open(void *store, const char *qid, amqpd_store_queue **qp)
{
	struct mstore *st = store;
	if (!valid_qid(qid) || !qp)
		return -EINVAL;
	mq *q = find_queue(st, qid);
	if (q && q->open)
		return -EBUSY;
	if (!q) {
		q = host->calloc(plugin, 1, sizeof(*q));
		if (!q)
			return -ENOMEM;
		q->st = st;
		snprintf(q->qid, sizeof(q->qid), "%s", qid);
		q->next = st->queues;
		st->queues = q;
	}
	q->open = true;
	*qp = q;
	return 0;
}

static void ms_queue_close(amqpd_store_queue *q)
{
	if (!q)
		return;
	q->open = false;
	if (q->deleted) {
		queue_clear(q);
		host->free(plugin, q);
	}
}

static int ms_queue_delete(void *store, const char *qid)
{
	struct mstore *st = store;
	if (!valid_qid(qid))
		return -EINVAL;
	for (mq **pp = &st->queues; *pp; pp = &(*pp)->next) {
		mq *q = *pp;
		if (strcmp(q->qid, qid) != 0)
			continue;
		queue_clear(q);
		*pp = q->next;
		if (q->open) /* the handle stays valid (and empty) until closed */
			q->deleted = true;
		else
			host->free(plugin, q);
		return 0;
	}
	return 0;
}

static int ms_queue_list(void *store, void (*fn)(void *ctx, const char *qid), void *ctx)
{
	struct mstore *st = store;
	for (mq *q = st->queues; q; q = q->next)
		fn(ctx, q->qid);
	return 0;
}

static void emit(mq *q, size_t i, amqpd_stored_msg_fn fn, void *ctx)
{
	struct ment *e = &q->ents[i];
	struct amqpd_stored_msg m = {
	    .struct_size = sizeof(m),
	    .seq = e->seq,
	    .data = e->data,
	    .len = e->len,
	    .delivered = e->delivered,
	};
	fn(ctx, &m);
}

static int ms_recover(amqpd_store_queue *q, amqpd_stored_msg_fn fn, void *ctx)
{
	q->iterating++;
	for (size_t i = q->lo; i < q->hi; i++)
		if (q->ents[i].live)
			emit(q, i, fn, ctx);
	q->iterating--;
	squeeze(q);
	return 0;
}

/* The message is the concatenation of iov[0..iovcnt); keep one copy. */
static int ms_append(amqpd_store_queue *q, uint64_t seq, const struct amqpd_iov *iov, int iovcnt)
{
	if (q->deleted)
		return -EIDRM;
	size_t len = 0;
	for (int k = 0; k < iovcnt; k++) {
		if (iov[k].len && !iov[k].base)
			return -EINVAL;
		if (iov[k].len > SIZE_MAX - len)
			return -EMSGSIZE;
		len += iov[k].len;
	}
	if (find_live(q, seq) >= 0)
		return -EEXIST;
	uint8_t *copy = host->alloc(plugin, len ? len : 1);
	if (!copy)
		return -ENOMEM;
	size_t off = 0;
	for (int k = 0; k < iovcnt; k++) {
		if (iov[k].len)
			memcpy(copy + off, iov[k].base, iov[k].len);
		off += iov[k].len;
	}
	size_t i;
	if (q->lo == q->hi && !q->iterating)
		q->lo = q->hi = 0;
	if (q->lo == q->hi || q->ents[q->hi - 1].seq < seq) {
		i = q->hi;
	} else { /* out of order: insert in place (rare) */
		size_t lo = q->lo, hi = q->hi;
		while (lo < hi) {
			size_t mid = lo + (hi - lo) / 2;
			if (q->ents[mid].seq < seq)
				lo = mid + 1;
			else
				hi = mid;
		}
		i = lo;
		if (i < q->hi && q->ents[i].seq == seq) { /* a tombstone: reuse it */
			q->ents[i] = (struct ment){seq, copy, len, true, false};
			q->nlive++;
			q->live_bytes += len;
			return 0;
		}
	}
	if (q->hi == q->cap) {
		if (!q->iterating && q->lo > 0 && q->lo >= q->cap / 4) {
			memmove(q->ents, q->ents + q->lo, (q->hi - q->lo) * sizeof(*q->ents));
			i -= q->lo;
			q->hi -= q->lo;
			q->lo = 0;
		} else {
			size_t cap = q->cap ? q->cap * 2 : 64;
			struct ment *n = host->realloc(plugin, q->ents, cap * sizeof(*n));
			if (!n) {
				host->free(plugin, copy);
				return -ENOMEM;
			}
			q->ents = n;
			q->cap = cap;
		}
	}
	memmove(&q->ents[i + 1], &q->ents[i], (q->hi - i) * sizeof(*q->ents));
	q->hi++;
	q->ents[i] = (struct ment){seq, copy, len, true, false};
	q->nlive++;
	q->live_bytes += len;
	return 0;
}

static int ms_ack(amqpd_store_queue *q, uint64_t seq)
{
	ptrdiff_t i = find_live(q, seq);
	if (i < 0)
		return -ENOENT;
	kill_entry(q, (size_t)i);
	squeeze(q);
	return 0;
}

static int ms_delivered(amqpd_store_queue *q, uint64_t seq)
{
	ptrdiff_t i = find_live(q, seq);
	if (i < 0)
		return -ENOENT;
	q->ents[i].delivered = true;
	return 0;
}

static int ms_read(amqpd_store_queue *q, uint64_t seq, amqpd_stored_msg_fn fn, void *ctx)
{
	ptrdiff_t i = find_live(q, seq);
	if (i < 0)
		return -ENOENT;
	emit(q, (size_t)i, fn, ctx);
	return 0;
}

static int ms_purge(amqpd_store_queue *q)
{
	for (size_t i = q->lo; i < q->hi; i++)
		if (q->ents[i].live)
			kill_entry(q, i);
	squeeze(q);
	return 0;
}

static int ms_compact(void *store)
{
	struct mstore *st = store;
	for (mq *q = st->queues; q; q = q->next)
		squeeze(q);
	return 0;
}

static int ms_stats(void *store, struct amqpd_storage_stats *out)
{
	struct mstore *st = store;
	struct amqpd_storage_stats s = {0};
	if (!out || out->struct_size < sizeof(uint32_t))
		return -EINVAL;
	for (mq *q = st->queues; q; q = q->next) {
		s.live_messages += q->nlive;
		s.live_bytes += q->live_bytes;
	}
	s.struct_size = out->struct_size < sizeof(s) ? out->struct_size : (uint32_t)sizeof(s);
	memcpy(out, &s, s.struct_size);
	return 0;
}

/* ---- the ABI 2 vtable: wrappers over the functions above ---- */

static amqpd_status status(int rc)
{
	return rc == 0 ? AMQPD_OK : AMQPD_ERR_ERRNO(rc < 0 ? -rc : EIO);
}

static amqpd_status w_start(void *ud, amqpd_store **store, const char *dir, bool *clean, char *err,
                            size_t errlen)
{
	void *st = NULL;
	if (ms_start(&st, dir, clean, err, errlen) != 0)
		return AMQPD_ERR_ERRNO(ENOMEM);
	*store = st;
	return AMQPD_OK;
}

static void w_stop(void *ud, amqpd_store *store, bool clean)
{
	ms_stop(store, clean);
}

static amqpd_status w_queue_open(void *ud, amqpd_store *store, const char *qid,
                                 amqpd_store_queue **q)
{
	return status(ms_queue_open(store, qid, q));
}

static void w_queue_close(void *ud, amqpd_store_queue *q)
{
	ms_queue_close(q);
}

static amqpd_status w_queue_delete(void *ud, amqpd_store *store, const char *qid)
{
	return status(ms_queue_delete(store, qid));
}

static amqpd_status w_queue_list(void *ud, amqpd_store *store,
                                 void (*fn)(void *ctx, const char *qid), void *ctx)
{
	return status(ms_queue_list(store, fn, ctx));
}

static amqpd_status w_recover(void *ud, amqpd_store_queue *q, amqpd_stored_msg_fn fn, void *ctx)
{
	return status(ms_recover(q, fn, ctx));
}

static amqpd_status w_append(void *ud, amqpd_store_queue *q, uint64_t seq,
                             const struct amqpd_iov *iov, int iovcnt)
{
	return status(ms_append(q, seq, iov, iovcnt));
}

static amqpd_status w_ack(void *ud, amqpd_store_queue *q, uint64_t seq)
{
	return status(ms_ack(q, seq));
}

static amqpd_status w_delivered(void *ud, amqpd_store_queue *q, uint64_t seq)
{
	return status(ms_delivered(q, seq));
}

static amqpd_status w_read(void *ud, amqpd_store_queue *q, uint64_t seq, amqpd_stored_msg_fn fn,
                           void *ctx)
{
	return status(ms_read(q, seq, fn, ctx));
}

/* Nothing to make durable: done at once (the host still reports it to its
 * waiters on the loop, never inside this call). */
static amqpd_status w_sync(void *ud, amqpd_store *store, amqpd_request *req)
{
	return AMQPD_OK;
}

static amqpd_status w_purge(void *ud, amqpd_store_queue *q)
{
	return status(ms_purge(q));
}

static amqpd_status w_compact(void *ud, amqpd_store *store)
{
	return status(ms_compact(store));
}

static amqpd_status w_stats(void *ud, amqpd_store *store, struct amqpd_storage_stats *out)
{
	return status(ms_stats(store, out));
}

static const struct amqpd_storage_ops memory_ops = {
    .struct_size = sizeof(struct amqpd_storage_ops),
    .name = "memory",
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

static amqpd_status memory_init(amqpd_plugin *self, const struct amqpd_host_api *h,
                                const struct amqpd_option *opts, size_t nopts, void **userdata,
                                char *err, size_t errlen)
{
	(void)userdata; /* one instance per process: the statics are enough */
	amqpd_status s = amqpd_no_options(opts, nopts, err, errlen);
	if (s != AMQPD_OK)
		return s;
	host = h;
	plugin = self;
	return h->register_storage(self, &memory_ops);
}

AMQPD_PLUGIN_DEFINE("storage-memory", "2.0",
                    "message store in RAM only (nothing survives a restart)", memory_init, NULL);
