/*
 * reply_to.h - RabbitMQ's direct reply-to: the pseudo-queue
 * "amq.rabbitmq.reply-to".
 *
 * A client consumes from it (no-ack) on a channel; a request it publishes
 * with reply_to "amq.rabbitmq.reply-to" gets that property rewritten to
 * "amq.rabbitmq.reply-to.<token>", and a reply published to the default
 * exchange with that routing key goes straight to the consumer, without a
 * queue.  Tokens map to channels in the broker's reply_tokens table.
 *
 * Loop thread only.
 */
#ifndef REPLY_TO_H
#define REPLY_TO_H

#include <stdbool.h>

#include "amqp.h"

#define REPLY_TO_QUEUE  "amq.rabbitmq.reply-to"
#define REPLY_TO_PREFIX "amq.rabbitmq.reply-to."

struct channel;
struct message;
struct consumer;

bool reply_to_is_queue(struct amqp_bytes name);
/* basic.consume on the pseudo-queue; raises the channel error itself. */
void reply_to_consume(struct channel *ch, const struct amqp_basic_consume *a);
/* The channel is going away or cancelled its reply consumer. */
void reply_to_forget(struct channel *ch);
/* If props ask for a direct reply, write rewritten property bytes into
 * out (capacity outlen) and return their length; 0 if nothing to do; -1
 * after raising the channel error (no reply consumer on this channel). */
long reply_to_rewrite(struct channel *ch, const struct amqp_basic_props *props, uint8_t *out,
                      size_t outlen);
/* A publish to the default exchange: true if its routing key is a reply
 * token (then it was delivered, or dropped if the requester is gone). */
bool reply_to_route(struct channel *ch, struct message *m, bool mandatory);

#endif
