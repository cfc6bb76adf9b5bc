/*
 * rates.h - message rates, as RabbitMQ's "basic" rates mode: every 5 s
 * the counters of the broker, every queue, exchange, channel and
 * connection are sampled (model/stats.h) and their rates over the period
 * kept beside them; the API reports counts with those rates.
 *
 * Threading: loop thread (a libevent timer).
 */
#ifndef RATES_H
#define RATES_H

#include <jansson.h>

#include "model/stats.h"

struct admin_server;

#define RATES_PERIOD_MS 5000

int rates_start(struct admin_server *a);
void rates_stop(struct admin_server *a);
/* RabbitMQ's message_stats object of s: the counts that are not zero
 * (publish, deliver_get, ack, ...), each with its "_details": {"rate"}.
 * exchange: publish_in / publish_out instead of publish. */
json_t *rates_message_stats(const struct msg_stats *s, bool exchange);
/* {"rate": r} */
json_t *rates_details(double rate);

#endif
