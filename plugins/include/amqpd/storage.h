/*
 * amqpd/storage.h - the storage-backend plugin interface (message data of
 * durable queues), ABI version 2.
 *
 * A backend is a vtable registered from a plugin's init with
 * host->register_storage().  The host picks one backend at start-up
 * (default "file"), starts it on the data directory, opens one store queue
 * per durable queue and replays it, then appends persistent messages and
 * acknowledgements as they happen.  Every callback gets the plugin's
 * userdata (what init returned) first.
 *
 * Durability contract: append/ack/delivered only buffer.  sync() makes
 * everything buffered before the call durable (fsync).  It returns
 * AMQPD_PENDING and later reports through host->complete(self, req,
 * status), from any thread; or AMQPD_OK when it is durable already (the
 * host then acts as if completed); or an error when it could not start.
 * The host keeps at most one sync in flight and sends publisher confirms
 * only for messages a successful sync covered (group commit).  A failed
 * write or fsync must be reported as an error status (e.g.
 * AMQPD_ERR_ERRNO(EIO)), never as success.
 *
 * Messages are opaque byte strings to a backend (the host serialises
 * exchange, routing key, properties and body) identified by (queue, seq);
 * seq grows within a queue.  append() gets a message as a gather list (the
 * host does not copy it into one buffer first): the message is the
 * concatenation of iov[0..iovcnt), and read()/recover() must give back
 * exactly those bytes, contiguous.  recover() replays the messages appended
 * and not acked, in seq order, with `delivered` set for those marked by
 * delivered().  A backend must survive kill -9 at any moment: on a dirty
 * start it drops damaged or torn records, counts them in the log, and
 * starts.
 *
 * Status: errors are system errors (AMQPD_ERR_ERRNO(errno)); the host
 * logs strerror of them.  AMQPD_DECLINED from an optional op (purge,
 * compact, stats) means "not supported"; no other op may decline.
 *
 * Ownership: the store and its queues are the backend's (define struct
 * amqpd_store and struct amqpd_store_queue in your source); the gather
 * list and its bytes, and the messages handed to callbacks, are borrowed
 * for the call.
 * Threading: every callback is called on the loop thread; a backend may use
 * its own threads internally (e.g. for fsync) and hands results back with
 * host->complete() or host->run_on_loop().
 */
#ifndef AMQPD_STORAGE_H
#define AMQPD_STORAGE_H

#include "amqpd/plugin.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A backend's store and per-queue handle (opaque to the host). */
typedef struct amqpd_store amqpd_store;
typedef struct amqpd_store_queue amqpd_store_queue;

/* One piece of a gather list (frozen layout, like struct iovec but const). */
struct amqpd_iov {
	const void *base;
	size_t len;
};

/* One message handed back by recover() or read(); borrowed for the call. */
struct amqpd_stored_msg {
	uint32_t struct_size;
	uint64_t seq;
	const uint8_t *data;
	size_t len;
	bool delivered; /* it had been delivered before the restart */
};

typedef void (*amqpd_stored_msg_fn)(void *ctx, const struct amqpd_stored_msg *m);

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
	 * whether the previous stop() was clean.  AMQPD_OK, or an error with
	 * a reason in err. */
	amqpd_status (*start)(void *userdata, amqpd_store **store, const char *dir, bool *clean,
	                      char *err, size_t errlen);
	/* Flush what is buffered; with clean, leave the clean-shutdown mark.
	 * Completes an in-flight sync (host->complete) before it returns. */
	void (*stop)(void *userdata, amqpd_store *store, bool clean);

	/* Queues are named by a host-chosen id: [A-Za-z0-9_-], <= 64 chars. */
	amqpd_status (*queue_open)(void *userdata, amqpd_store *store, const char *qid,
	                           amqpd_store_queue **q);
	void (*queue_close)(void *userdata, amqpd_store_queue *q);
	/* Forget a queue and everything in it (the queue was deleted). */
	amqpd_status (*queue_delete)(void *userdata, amqpd_store *store, const char *qid);
	/* List the ids of queues that have data (to clean up orphans). */
	amqpd_status (*queue_list)(void *userdata, amqpd_store *store,
	                           void (*fn)(void *ctx, const char *qid), void *ctx);

	/* Replay live messages in seq order. */
	amqpd_status (*recover)(void *userdata, amqpd_store_queue *q, amqpd_stored_msg_fn fn,
	                        void *ctx);
	/* Buffered writes. */
	amqpd_status (*append)(void *userdata, amqpd_store_queue *q, uint64_t seq,
	                       const struct amqpd_iov *iov, int iovcnt);
	amqpd_status (*ack)(void *userdata, amqpd_store_queue *q, uint64_t seq);
	amqpd_status (*delivered)(void *userdata, amqpd_store_queue *q, uint64_t seq);
	/* Read one live message back (page-in); calls fn once. */
	amqpd_status (*read)(void *userdata, amqpd_store_queue *q, uint64_t seq,
	                     amqpd_stored_msg_fn fn, void *ctx);

	/* Group commit, see above: AMQPD_PENDING (then host->complete(req)
	 * exactly once), AMQPD_OK (durable already) or an error (req unused). */
	amqpd_status (*sync)(void *userdata, amqpd_store *store, amqpd_request *req);

	/* Optional (may be NULL, or return AMQPD_DECLINED). */
	amqpd_status (*purge)(void *userdata, amqpd_store_queue *q);
	amqpd_status (*compact)(void *userdata, amqpd_store *store);
	amqpd_status (*stats)(void *userdata, amqpd_store *store, struct amqpd_storage_stats *out);
};

#ifdef __cplusplus
}
#endif

#endif
