/*
 * message_edit.h - new messages made from old ones with other headers:
 * dead-lettering (x-death), the quorum delivery count (x-delivery-count),
 * BCC removed before delivery.
 *
 * A message is immutable once published (queues share it), so an edit is
 * a copy: the properties are decoded, changed and encoded again, the body
 * copied.  Only the rare paths (a message leaving for a dead-letter
 * exchange, a redelivery counted) pay for it.
 *
 * Threading: loop thread (messages are).  Ownership: the caller holds the
 * new message's one reference.
 */
#ifndef MESSAGE_EDIT_H
#define MESSAGE_EDIT_H

#include <stdbool.h>
#include <stddef.h>

#include "amqp.h"

struct message;

/* Headers of m as an array of entries (values borrow from m's bytes):
 * up to cap entries go into out; returns how many m has (so a caller
 * whose cap was too small can retry), or -1 if they are malformed. */
long message_headers(const struct message *m, struct amqp_table_entry *out, size_t cap);

/* A copy of m published to exchange with routing key rk, its headers
 * replaced by `headers` (n entries), and without its expiration property
 * when drop_expiration.  NULL when out of memory or the result would not
 * encode. */
struct message *message_edit(const struct message *m, struct amqp_bytes exchange,
                             struct amqp_bytes rk, const struct amqp_table_entry *headers, size_t n,
                             bool drop_expiration);

/* A copy of m whose x-delivery-count header is n (quorum queues'
 * redeliveries); NULL when out of memory. */
struct message *message_with_delivery_count(const struct message *m, uint32_t n);

/* A copy of m without its header `name` (BCC: no receiver sees it); NULL
 * when out of memory. */
struct message *message_without_header(const struct message *m, const char *name);

/* The per-message TTL in ms from the expiration property: 0 and *ttl
 * set, 1 when there is none, or -1 with RabbitMQ's reason in why
 * ("{value_negative,-1}", "no_integer") for a value it would refuse. */
int message_expiration(const struct amqp_basic_props *p, int64_t *ttl, char *why, size_t whylen);

#endif
