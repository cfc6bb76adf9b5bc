/*
 * stats.h - message counters, as RabbitMQ's management API reports them
 * (message_stats), kept by every queue, exchange, channel and the model
 * as a whole, and the rates sampled from them (the admin layer's timer
 * calls msg_stats_sample every few seconds).
 *
 * Plain counters bumped on the loop thread where the event happens; no
 * allocation, a few adds per message.  Loop thread only.
 */
#ifndef STATS_H
#define STATS_H

#include <stdint.h>
#include <string.h>

enum msg_stat {
	MS_PUBLISH,        /* published (by a channel, into a queue) */
	MS_PUBLISH_IN,     /* exchange: published to it */
	MS_PUBLISH_OUT,    /* exchange: routed out of it */
	MS_DELIVER,        /* to consumers, manual ack */
	MS_DELIVER_NO_ACK, /* to consumers, automatic ack */
	MS_GET,            /* basic.get, manual ack */
	MS_GET_NO_ACK,     /* basic.get, automatic ack */
	MS_GET_EMPTY,
	MS_ACK,
	MS_REDELIVER,
	MS_CONFIRM,
	MS_RETURN_UNROUTABLE,
	MS_DROP_UNROUTABLE,
	MS_COUNT
};

struct msg_stats {
	uint64_t n[MS_COUNT];
	uint64_t prev[MS_COUNT]; /* at the last sample */
	float rate[MS_COUNT];    /* per second, over the last sample period */
};

static inline void msg_stats_add(struct msg_stats *s, enum msg_stat k, uint64_t n)
{
	s->n[k] += n;
}

/* Rates over the dt_ms since the last sample. */
static inline void msg_stats_sample(struct msg_stats *s, int64_t dt_ms)
{
	for (int i = 0; i < MS_COUNT; i++) {
		s->rate[i] = dt_ms > 0
		                 ? (float)((double)(s->n[i] - s->prev[i]) * 1000.0 / (double)dt_ms)
		                 : 0.0f;
		s->prev[i] = s->n[i];
	}
}

#endif
