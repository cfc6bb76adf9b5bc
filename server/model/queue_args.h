/*
 * queue_args.h - queue.declare arguments checked as RabbitMQ checks them
 * (rabbit_amqqueue:check_declare_arguments): x-queue-type first, then the
 * value of every argument the queue type takes, in RabbitMQ's order, then
 * arguments that belong to another queue type.  Arguments no queue type
 * knows are accepted, as by RabbitMQ.  Only a new queue is checked; a
 * redeclare is compared for equivalence instead.
 *
 * Arguments accepted whose behaviour amqpd does not have yet are named
 * by queue_args_unsupported(), for a warning in the log: none is ignored
 * in silence.
 *
 * Pure.  Any thread.
 */
#ifndef QUEUE_ARGS_H
#define QUEUE_ARGS_H

#include <stddef.h>
#include <stdint.h>

#include "amqp.h"

/* 0, or 406 with RabbitMQ's text in err ("PRECONDITION_FAILED - invalid
 * arg 'x-message-ttl' for queue 'q' in vhost '/': {value_negative,-1}"). */
uint16_t queue_args_check(struct amqp_bytes args, const char *queue, const char *vhost, char *err,
                          size_t errlen);
/* The arguments in args that amqpd accepts but does not act on yet,
 * comma-separated into out ("" when none). */
void queue_args_unsupported(struct amqp_bytes args, char *out, size_t outlen);

/* x-overflow: what happens when x-max-length(-bytes) is reached. */
enum queue_overflow { OVERFLOW_DROP_HEAD, OVERFLOW_REJECT_PUBLISH, OVERFLOW_REJECT_PUBLISH_DLX };

/* Message deduplication (LavinMQ's arguments, on a queue or an
 * exchange): a message whose deduplication header value was seen within
 * the cache's TTL and size is dropped. */
struct dedup_conf {
	bool on;            /* x-message-deduplication */
	int64_t cache_size; /* x-cache-size; DEDUP_DEFAULT_SIZE when not given */
	int64_t ttl;        /* x-cache-ttl, ms; -1 = entries expire only by size */
	char header[256];   /* x-deduplication-header: where the key is */
	uint8_t header_len;
};
#define DEDUP_DEFAULT_SIZE   1000000
#define DEDUP_DEFAULT_HEADER "x-deduplication-header"
void dedup_conf_from_args(struct dedup_conf *c, struct amqp_bytes args);
/* The deduplication arguments of an exchange checked: 0, or 406 with the
 * text ("PRECONDITION_FAILED - invalid arg 'x-cache-size' for exchange
 * 'x' in vhost '/': {value_negative,-1}"). */
uint16_t exchange_dedup_args_check(struct amqp_bytes args, const char *exchange, const char *vhost,
                                   char *err, size_t errlen);

/*
 * What a queue's behaviour is made of, read from its arguments.  Kept
 * apart from the arguments themselves so that policies (the operations
 * issue) can supply the same values later with RabbitMQ's precedence:
 * queue_conf_from_args() first, then a policy fills what the arguments
 * left unset and, for the limits (max-length, max-length-bytes,
 * message-ttl, expires, delivery-limit), lowers what they set.
 */
struct queue_conf {
	int64_t message_ttl; /* x-message-ttl, ms; -1 = none */
	int64_t expires;     /* x-expires, ms; -1 = none */
	int64_t max_length;  /* x-max-length; -1 = none */
	int64_t max_bytes;   /* x-max-length-bytes; -1 = none */
	enum queue_overflow overflow;
	uint8_t max_priority;   /* x-max-priority; 0 = not a priority queue */
	bool quorum;            /* x-queue-type quorum */
	int64_t delivery_limit; /* x-delivery-limit; -1 = none (quorum default 20) */
	bool has_dlx;           /* x-dead-letter-exchange given */
	char dlx[256];          /* its name ("" = the default exchange) */
	uint8_t dlx_len;
	bool single_active;       /* x-single-active-consumer */
	int64_t consumer_timeout; /* x-consumer-timeout, ms; -1 = the broker's */
	struct dedup_conf dedup;
	bool has_dlrk; /* x-dead-letter-routing-key given */
	char dlrk[256];
	uint8_t dlrk_len;
};

/* The configuration the (already checked) arguments give. */
void queue_conf_from_args(struct queue_conf *c, struct amqp_bytes args);

/* RabbitMQ's name of an AMQP field type, as its errors print it ('S' is
 * "longstr", 'I' "signedint"). */
const char *queue_arg_type_name(uint8_t type);

#endif
