/*
 * amqpd/storage.h - the storage-backend plugin interface (message data of
 * durable queues).
 *
 * A backend is a vtable registered from a plugin's init with
 * host->register_storage().  The host picks one backend at start-up
 * (default "file"), starts it on the data directory, opens one store queue
 * per durable queue and replays it, then appends persistent messages and
 * acknowledgements as they happen.
 *
 * Durability contract: append/ack/delivered only buffer.  sync() makes
 * everything buffered before the call durable (fsync) and then reports
 * through done(ctx, status) - status 0, or a negative errno - by way of
 * host->run_on_loop(), so done runs on the loop thread.  The host keeps at
 * most one sync in flight and sends publisher confirms only for messages a
 * successful sync covered (group commit).  A failed write or fsync must be
 * reported as a non-zero status, never as success.
 *
 * Messages are opaque byte strings to a backend (the host serialises
 * exchange, routing key, properties and body) identified by (queue, seq);
 * seq grows within a queue.  recover() replays the messages appended and
 * not acked, in seq order, with `delivered` set for those marked by
 * delivered().  A backend must survive kill -9 at any moment: on a dirty
 * start it drops damaged or torn records, counts them in the log, and
 * starts.
 *
 * Threading: every callback is called on the loop thread; a backend may use
 * its own threads internally (e.g. for fsync) and must hand results back
 * with host->run_on_loop().
 */
#ifndef AMQPD_STORAGE_H
#define AMQPD_STORAGE_H

#include "amqpd/plugin.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A backend's per-queue handle (opaque to the host). */
typedef struct amqpd_store_queue amqpd_store_queue;

/* One message handed back by recover() or read(); borrowed for the call. */
struct amqpd_stored_msg {
	uint32_t struct_size;
	uint64_t seq;
	const uint8_t *data;
	size_t len;
	bool delivered; /* it had been delivered before the restart */
};

typedef void (*amqpd_stored_msg_fn)(void *ctx, const struct amqpd_stored_msg *m);
typedef void (*amqpd_storage_done_fn)(void *ctx, int status);

struct amqpd_storage_stats {
	uint32_t struct_size;
	uint64_t bytes_on_disk;
	uint64_t live_messages;
	uint64_t live_bytes;
	uint64_t segments;
};

struct amqpd_storage_ops {
	uint32_t struct_size;
	const char *name; /* "file", "memory" */

	/* Open or create the store in dir (which exists).  *clean tells
	 * whether the previous stop() was clean.  0, or non-zero with a
	 * reason in err. */
	int (*start)(void **store, const char *dir, bool *clean, char *err, size_t errlen);
	/* Flush what is buffered; with clean, leave the clean-shutdown mark.
	 * Waits for an in-flight sync to finish first. */
	void (*stop)(void *store, bool clean);

	/* Queues are named by a host-chosen id: [A-Za-z0-9_-], <= 64 chars. */
	int (*queue_open)(void *store, const char *qid, amqpd_store_queue **q);
	void (*queue_close)(amqpd_store_queue *q);
	/* Forget a queue and everything in it (the queue was deleted). */
	int (*queue_delete)(void *store, const char *qid);
	/* List the ids of queues that have data (to clean up orphans). */
	int (*queue_list)(void *store, void (*fn)(void *ctx, const char *qid), void *ctx);

	/* Replay live messages in seq order. */
	int (*recover)(amqpd_store_queue *q, amqpd_stored_msg_fn fn, void *ctx);
	/* Buffered writes; 0 or a negative errno. */
	int (*append)(amqpd_store_queue *q, uint64_t seq, const uint8_t *data, size_t len);
	int (*ack)(amqpd_store_queue *q, uint64_t seq);
	int (*delivered)(amqpd_store_queue *q, uint64_t seq);
	/* Read one live message back (page-in); calls fn once.  0 or -errno. */
	int (*read)(amqpd_store_queue *q, uint64_t seq, amqpd_stored_msg_fn fn, void *ctx);

	/* Group commit, see above.  0 if started (done will be called), or a
	 * negative errno (done will not be called). */
	int (*sync)(void *store, amqpd_storage_done_fn done, void *ctx);

	/* Optional (may be NULL). */
	int (*purge)(amqpd_store_queue *q);
	int (*compact)(void *store);
	int (*stats)(void *store, struct amqpd_storage_stats *out);
};

#ifdef __cplusplus
}
#endif

#endif
