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

/* RabbitMQ's name of an AMQP field type, as its errors print it ('S' is
 * "longstr", 'I' "signedint"). */
const char *queue_arg_type_name(uint8_t type);

#endif
