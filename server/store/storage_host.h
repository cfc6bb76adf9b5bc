/*
 * storage_host.h - the broker's side of durable message storage: picks a
 * storage backend (amqpd/storage.h), opens a store queue per durable
 * queue, replays it at start-up, writes persistent messages and their
 * acknowledgements, and runs group commits.
 *
 * Group commit: every write bumps write_gen; one sync at a time covers
 * everything written before it started (sync_target); when it completes,
 * synced_gen = sync_target and channels waiting for that generation send
 * their publisher confirms (or nacks if the sync failed) and tx.commit-oks.
 *
 * Threading: loop thread; sync completions arrive through run_on_loop.
 */
#ifndef STORAGE_HOST_H
#define STORAGE_HOST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "model/model.h"

struct queue;
struct message;
struct channel;
struct storage_backend;

/*
 * A storage waiter: whoever waits for group commits (a channel with
 * confirms or a tx.commit-ok outstanding) embeds one and hands it down with
 * storage_wait(); after every sync, done(w, synced_gen, status) tells it
 * that everything up to synced_gen is durable (status 0) or failed.  The
 * host never knows what the waiter is.
 */
struct storage_waiter {
	void (*done)(struct storage_waiter *w, uint64_t synced_gen, int status);
	struct storage_waiter *next, *prev;
	bool listed;
};

struct storage_late_ack {
	struct queue *q;
	uint64_t seq;
	storage_token token;
};

struct storage_origin_note {
	char store_id[65];
	uint64_t seq;
};

struct storage_host {
	struct model *md;
	const struct storage_backend *be; /* NULL: no persistence */
	bool stopping;                    /* shutting down: a closed queue keeps its data */
	struct amqpd_store *store;
	uint64_t write_gen;   /* bumped by every append / ack / delivered */
	uint64_t synced_gen;  /* everything <= this is durable (or failed) */
	uint64_t sync_target; /* generation the in-flight sync covers */
	bool sync_in_flight;
	uint64_t failed_gen;            /* generation of the latest failed append */
	struct storage_waiter *waiting; /* waiting for a sync */
	/* Acks of dead-lettered messages' origins, until a sync covers the
	 * copies (struct storage_late_ack: a queue reference each). */
	struct storage_late_ack *late;
	size_t nlate, late_cap;
	/* Start-up: origins named by recovered dead-lettered copies. */
	bool starting;
	struct storage_origin_note *origins;
	size_t norigins, origins_cap;
};

/* Start the backend named `name` ("file" by default) on data_dir/msgs and
 * replay every durable queue of md; from then on md persists through this
 * host (md->store).  0, or -1 (logged: the broker does not start). */
int storage_start(struct storage_host *st, struct model *md, const char *data_dir,
                  const char *name);
void storage_stop(struct storage_host *st, bool clean);

/* A durable queue was created (open its store) or deleted (drop it). */
void storage_queue_created(struct storage_host *st, struct queue *q);
void storage_queue_deleted(struct storage_host *st, struct queue *q);

/* storage_token (model.h): how a write was made safe. */

/* Message life cycle in a durable queue (no-ops returning 0 for transient
 * ones). */
storage_token storage_append(struct storage_host *st, struct queue *q, const struct qentry *e,
                             const struct message *m, const struct store_origin *from);
/* Ack a persisted message once a sync has reached token (the copies that
 * replace it are on disk first); at once if it has. */
void storage_ack_after(struct storage_host *st, struct queue *q, uint64_t seq, storage_token token);
storage_token storage_ack(struct storage_host *st, struct queue *q, uint64_t seq,
                          const struct message *m);
void storage_delivered(struct storage_host *st, struct queue *q, uint64_t seq,
                       const struct message *m);
/* Ack a paged-out (hence persisted) message by seq. */
void storage_ack_seq(struct storage_host *st, struct queue *q, uint64_t seq);
/* Page a message back in; NULL if it cannot be read (logged). */
struct message *storage_read(struct storage_host *st, struct queue *q, uint64_t seq);

/* Start a sync if something is unsynced and none is running. */
void storage_maybe_sync(struct storage_host *st);
/* Waiter bookkeeping (idempotent); w->done must be set. */
void storage_wait(struct storage_host *st, struct storage_waiter *w);
void storage_unwait(struct storage_host *st, struct storage_waiter *w);

#endif
