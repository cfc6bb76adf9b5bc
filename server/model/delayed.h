/*
 * delayed.h - the x-delayed-message exchange type, built in (RabbitMQ's
 * rabbitmq_delayed_message_exchange as clients see it).
 *
 * An exchange declared with type "x-delayed-message" routes with the type
 * its x-delayed-type argument names (direct, topic, ...).  A message
 * published to it with an x-delay header (integer ms > 0) is held until
 * then and routed with the bindings there are at that time; without one
 * it is routed at once.
 *
 * Where the held messages are: a queue of the broker's own per exchange,
 * named "amq.delayed.<exchange>", durable when the exchange is.  Each
 * message waits there as an entry whose expiry is its due time, so the
 * queue's expiry heap schedules it (O(log n)), paging keeps memory
 * bounded by the queue memory budget, persistent messages of a durable
 * exchange are stored by the storage plugin and come back after a restart
 * or a kill -9 (one due meanwhile goes out at once), and the move from
 * the holding queue to the destinations is the crash-safe one of
 * dead-lettering (origin marker, origin acked after the copies' sync).
 * Clients may passively declare the queue to count what is pending and
 * purge it to cancel everything; they cannot consume from it, bind it or
 * delete it.
 *
 * Cancelling one message: publish to the exchange a message with the
 * header x-delay-cancel (any value) and the message_id of the pending
 * messages to cancel.  It is not routed; the pending ones with that id go.
 * An index from message id to pending entries keeps this O(1) per
 * message, also for paged-out ones.
 *
 * Threading: loop thread.  Ownership: the holding queue belongs to its
 * vhost like any queue; its id index to the queue (delayed_index_free).
 */
#ifndef DELAYED_H
#define DELAYED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "amqp.h"

struct model;
struct vhost;
struct exchange;
struct queue;
struct message;
struct xtype;

#define DELAYED_TYPE         "x-delayed-message"
#define DELAYED_QUEUE_PREFIX "amq.delayed."

/* The type an exchange declared as `type` with `args` routes with: that
 * type, or for x-delayed-message the one x-delayed-type names (then
 * *delayed is set).  NULL when there is none, with a reply code (503
 * COMMAND_INVALID for an unknown type, 406 for a bad x-delayed-type) and
 * RabbitMQ's text. */
const struct xtype *delayed_resolve_type(struct model *md, struct amqp_bytes type,
                                         struct amqp_bytes args, bool *delayed, uint16_t *code,
                                         char *text, size_t textlen);

/* Whether q is an exchange's holding queue (by its reserved name). */
bool delayed_is_holding(const struct queue *q);
/* x's holding queue, made (and opened in the store) when missing; NULL
 * when out of memory or the name would be too long. */
struct queue *delayed_holding(struct exchange *x);
/* The exchange is being deleted: its pending messages go with it. */
void delayed_exchange_deleted(struct exchange *x);

/* The x-delay of m in ms; 0 when it is routed now (no header, not an
 * integer, or not positive, as the plugin). */
uint64_t delayed_delay(const struct message *m);
/* Whether m is a cancel request (header x-delay-cancel). */
bool delayed_is_cancel(const struct message *m);

/* Hold m (a new reference is taken) for delay ms.  false when it could
 * not be held (out of memory: the publisher gets a nack).  *token is
 * raised to the storage token that makes it safe. */
bool delayed_hold(struct exchange *x, struct message *m, uint64_t delay, uint64_t *token);
struct store_origin;
/* The same for a message dead-lettered to x (from: its origin, as for
 * queue_publish_from), so the move stays crash-safe. */
bool delayed_hold_from(struct exchange *x, struct message *m, uint64_t delay, uint64_t *token,
                       const struct store_origin *from);
/* Cancel the pending messages of x with the message_id of the cancel
 * request m; how many. */
size_t delayed_cancel(struct exchange *x, const struct message *m);

/* A held message is due (the holding queue's entry seq expired): route
 * it through its exchange now.  Returns the storage token of the copies
 * (the entry is acked once it is reached). */
uint64_t delayed_release(struct queue *q, struct message *m, uint64_t seq);

/* The message_id property of m (len 0 when none): a holding queue's
 * index key. */
struct amqp_bytes delayed_message_id(const struct message *m);

#endif
