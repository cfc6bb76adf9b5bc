/*
 * metrics.h - Prometheus metrics at /metrics (aggregated) and
 * /metrics/per-object (per queue), in the text exposition format with
 * rabbitmq_prometheus's metric names, on the management listener and on
 * prometheus.tcp.port's own one.  No authentication, as rabbitmq_prometheus.
 *
 * Threading: loop thread.
 */
#ifndef METRICS_H
#define METRICS_H

struct areq;

void metrics_reply(struct areq *r);

#endif
