/*
 * dead_letter.h - messages leaving a queue for its dead-letter exchange
 * (x-dead-letter-exchange, x-dead-letter-routing-key), as RabbitMQ does
 * it: the copy carries the x-death history (one entry per queue and
 * reason, most recent first, with count, reason, queue, time, exchange,
 * routing-keys and original-expiration), x-first-death-* and
 * x-last-death-* headers, loses its expiration, and is published to the
 * dead-letter exchange with the dead-letter routing key or its own.
 * Cycles are broken as RabbitMQ breaks them: a queue the message already
 * died in, with no rejection since, does not get it again.
 *
 * Crash safety: a persistent copy names its origin (store id and seq) in
 * its stored record, and the origin is acknowledged only once the copy is
 * on disk; after a crash in between, recovery drops the origin (so the
 * message is never in both queues and never in neither).
 *
 * Threading: loop thread.  Ownership: borrows the message.
 */
#ifndef DEAD_LETTER_H
#define DEAD_LETTER_H

#include <stdint.h>

#include "model/queue.h"

struct message;

/* Dead-letter m, which leaves q (its entry seq) for why.  Returns the
 * storage token the copies were made safe with (0: nothing to wait for).
 * Nothing happens when q has no dead-letter exchange or it is missing. */
uint64_t dead_letter(struct queue *q, struct message *m, uint64_t seq, enum dl_reason why);

/* RabbitMQ's name of a reason ("rejected", "expired", ...). */
const char *dl_reason_name(enum dl_reason why);

#endif
