/*
 * admin.h - the HTTP admin listener: RabbitMQ's management API (/api/...),
 * Prometheus metrics (/metrics) and the web console's files (/), served
 * with libevent's evhttp on the broker's loop.  The top server layer: it
 * reads and changes the broker through the layers below and never the
 * reverse.
 *
 * Threading: loop thread.  struct admin is owned by main.c, lives as long
 * as the broker, and borrows it.
 */
#ifndef ADMIN_H
#define ADMIN_H

#include <stdbool.h>
#include <stdint.h>

#include "io/tls.h"

struct broker;
struct admin_server;

#define ADMIN_MAX_LISTENERS 8

/* RabbitMQ's management.* and prometheus.* keys. */
struct admin_config {
	/* management.tcp.ip / management.tcp.port: "[ADDR:]PORT" entries;
	 * none given means the default 15672 on all addresses, which when busy
	 * is logged and skipped (an explicit one that fails stops the start). */
	const char *listen[ADMIN_MAX_LISTENERS];
	int nlisten;
	bool disabled; /* --management-listen none */
	/* management.ssl.port (and .ip): HTTPS listeners, with tls; fields
	 * that management.ssl.* leaves NULL come from ssl_options.*. */
	const char *listen_tls[ADMIN_MAX_LISTENERS];
	int nlisten_tls;
	struct tls_config tls;
	/* prometheus.tcp.port / .ip: a /metrics-only listener (15692 is
	 * rabbitmq_prometheus's); none: /metrics only on the management ones. */
	const char *prometheus_listen[ADMIN_MAX_LISTENERS];
	int nprometheus_listen;
	const char *console_dir; /* the web console's files (default: installed) */
};

void admin_config_defaults(struct admin_config *cfg);

/* Open the listeners on the broker's loop.  NULL after logging why (the
 * broker does not start). */
struct admin_server *admin_start(struct broker *b, const struct admin_config *cfg);
/* SIGHUP: rebuild the HTTPS context (the certificate may have changed). */
void admin_reload_tls(struct admin_server *a);
void admin_stop(struct admin_server *a);

#endif
