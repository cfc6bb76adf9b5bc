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

struct broker;
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

struct storage_host {
	const struct storage_backend *be; /* NULL: no persistence */
	struct amqpd_store *store;
	uint64_t write_gen;   /* bumped by every append / ack / delivered */
	uint64_t synced_gen;  /* everything <= this is durable (or failed) */
	uint64_t sync_target; /* generation the in-flight sync covers */
	bool sync_in_flight;
	uint64_t failed_gen;            /* generation of the latest failed append */
	struct storage_waiter *waiting; /* waiting for a sync */
};

/* Start the backend named `name` ("file" by default) on data_dir/msgs and
 * replay every durable queue.  0, or -1 (logged: the broker does not start). */
int storage_start(struct broker *b, const char *name);
void storage_stop(struct broker *b, bool clean);

/* A durable queue was created (open its store) or deleted (drop it). */
void storage_queue_created(struct broker *b, struct queue *q);
void storage_queue_deleted(struct broker *b, struct queue *q);

/*
 * How a write was made safe: 0 when there is nothing to wait for (a
 * transient message, or a queue without a store), else the generation a
 * completed sync must reach (synced_gen >= token) before a confirm or
 * tx.commit-ok that covers the write may go out.
 */
typedef uint64_t storage_token;

/* Message life cycle in a durable queue (no-ops returning 0 for transient
 * ones). */
storage_token storage_append(struct broker *b, struct queue *q, uint64_t seq,
                             const struct message *m);
storage_token storage_ack(struct broker *b, struct queue *q, uint64_t seq, const struct message *m);
void storage_delivered(struct broker *b, struct queue *q, uint64_t seq, const struct message *m);
/* Ack a paged-out (hence persisted) message by seq. */
void storage_ack_seq(struct broker *b, struct queue *q, uint64_t seq);
/* Page a message back in; NULL if it cannot be read (logged). */
struct message *storage_read(struct broker *b, struct queue *q, uint64_t seq);

/* Start a sync if something is unsynced and none is running. */
void storage_maybe_sync(struct broker *b);
/* Waiter bookkeeping (idempotent); w->done must be set. */
void storage_wait(struct broker *b, struct storage_waiter *w);
void storage_unwait(struct broker *b, struct storage_waiter *w);

#endif
