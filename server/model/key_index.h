/*
 * key_index.h - an index from a key to the ready entries of a broker-owned
 * queue that carry it: a delayed-message holding queue (key: message_id,
 * for cancelling) and a deduplication cache (key: the deduplication value,
 * for "seen before?").  The queue keeps it current: an entry that leaves
 * (expired, evicted, forgotten, purged) leaves the index too (queue.c
 * calls key_index_left), and restored entries come back into it.
 *
 * Threading: loop thread.  Ownership: the index belongs to its queue
 * (key_index_free when the queue is freed); keys are copied.
 */
#ifndef KEY_INDEX_H
#define KEY_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "amqp.h"

struct queue;
struct message;

/* Add (key, seq); token: the storage token that made the entry safe. */
void key_index_add(struct queue *q, struct amqp_bytes key, uint64_t seq, uint64_t token);
/* Remove (key, seq) if it is there. */
void key_index_del(struct queue *q, struct amqp_bytes key, uint64_t seq);
/* Whether key has an entry; *token (if not NULL) is raised to the
 * highest storage token of its entries. */
bool key_index_has(const struct queue *q, struct amqp_bytes key, uint64_t *token);
/* Up to cap seqs of key's entries into out; how many. */
size_t key_index_seqs(const struct queue *q, struct amqp_bytes key, uint64_t *out, size_t cap);
/* The key an entry's message has in q's index (len 0: none). */
struct amqp_bytes key_index_key(const struct queue *q, const struct message *m);
/* The entry seq of m left q. */
void key_index_left(struct queue *q, const struct message *m, uint64_t seq);
/* A restored entry (start-up replay) back into the index: its key from
 * the stored properties (message_id) or body (a cache's key). */
void key_index_restore(struct queue *q, const struct amqp_basic_props *p, struct amqp_bytes body,
                       uint64_t seq);
void key_index_clear(struct queue *q);
/* Walk the index: each call gives one key and its entries' sequence
 * numbers (borrowed until the index changes); *i starts at 0.  false at
 * the end. */
bool key_index_next(const struct queue *q, size_t *i, struct amqp_bytes *key, const uint64_t **seqs,
                    size_t *n);
void key_index_free(struct queue *q);

#endif
