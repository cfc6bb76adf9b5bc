/*
 * dedup.h - message deduplication on a queue or an exchange, with
 * LavinMQ's arguments: x-message-deduplication (true), x-cache-size,
 * x-cache-ttl (ms; per message also the x-cache-ttl header) and
 * x-deduplication-header (the header holding the key; default
 * "x-deduplication-header").  A message whose key was seen within the
 * TTL (and is still among the last x-cache-size keys) is dropped: not
 * enqueued (queue) or not routed (exchange); its publisher still gets
 * basic.ack, once the first one's key is on disk.
 *
 * Unlike LavinMQ's in-memory cache, the cache of a durable queue or
 * exchange survives a restart and a kill -9: it is a queue of the
 * broker's own, "amq.dedup.q.<queue>" or "amq.dedup.x.<exchange>", one
 * tiny persistent entry per key (its body), expiring at the key's TTL,
 * the oldest dropped beyond x-cache-size (x-max-length drop-head), with
 * key_index.h to answer "seen?" in O(1).  A key is stored before the
 * message it came with is confirmed, so a duplicate sent after a crash
 * is still recognised.  The cache is deleted with its owner; clients may
 * count it (passive declare) and purge it, nothing else.
 *
 * Threading: loop thread.  Ownership: the cache queue belongs to its vhost.
 */
#ifndef DEDUP_H
#define DEDUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "model/queue_args.h"

struct vhost;
struct queue;
struct message;

#define DEDUP_QUEUE_PREFIX "amq.dedup."

/* Whether q is a deduplication cache (by its reserved name). */
bool dedup_is_store(const struct queue *q);

/* Whether m is a duplicate for the owner (kind 'q' a queue, 'x' an
 * exchange, named name): true, drop it.  Otherwise its key (if it has
 * one) is recorded.  Either way *token is raised to the storage token
 * that makes the key safe (a duplicate waits for the first one's). */
bool dedup_check(struct vhost *vh, char kind, const char *name, size_t len, bool durable,
                 const struct dedup_conf *c, const struct message *m, uint64_t *token);
/* The owner is deleted: so is its cache. */
void dedup_owner_deleted(struct vhost *vh, char kind, const char *name, size_t len);

#endif
