/*
 * conn_bev.h - the adapter that binds a connection engine (session/conn.h)
 * to a socket through a libevent bufferevent.
 *
 * Reads: each read callback feeds what the bufferevent read (topped up
 * with one large recv) to the engine.  Writes: the engine's output is
 * moved out once per loop iteration, by the scheduler's last phase
 * (conn_bev_flush_all): while nothing is queued in the bufferevent, the
 * chunks are written straight to the socket with writev (no copy, no
 * EV_WRITE round); what the kernel does not take goes into the
 * bufferevent (bodies by reference), which writes it when the socket is
 * writable again.  Timers: one per connection, armed for the engine's
 * deadline.  Requests (pause or resume reading, close after flush, drop)
 * are applied in the same phase.
 *
 * TLS (amqps): the same adapter on an OpenSSL bufferevent; every byte
 * then goes through the bufferevent (no direct writev, no top-up recv).
 *
 * Ownership: the broker's connection list owns adapters; an adapter owns
 * its engine and its bufferevent.  Loop thread only.
 */
#ifndef CONN_BEV_H
#define CONN_BEV_H

#include <stdbool.h>
#include <stdint.h>

#include "session/conn.h"

struct broker;
struct bufferevent;
struct event;
struct sockaddr;
typedef struct ssl_ctx_st SSL_CTX;

struct conn_bev {
	struct conn_io io; /* handed to the engine */
	struct broker *b;
	struct conn *c; /* the engine */
	struct conn_bev *next, *prev;
	struct conn_bev *dirty_next; /* in broker->dirty: to be serviced */
	bool dirty;
	struct bufferevent *bev;
	struct event *timer;
	int64_t armed;  /* deadline the timer is armed for; -1: none */
	size_t in_left; /* input left unconsumed by the last read callback */
	bool reading;   /* EV_READ enabled */
	bool closing;   /* the engine is done: waiting for the output to drain */
	bool linger;
	bool tls;               /* bufferevent_openssl: no direct writes, no raw reads */
	bool peer_cert_taken;   /* the client certificate was handed to the engine */
	bool input_left_behind; /* the engine stopped with input still buffered */
};

/* Take over an accepted socket.  Logs and closes it on failure. */
/* tls: the context of an amqps listener, or NULL for plain TCP. */
void conn_bev_accept(struct broker *b, int fd, const struct sockaddr *peer, SSL_CTX *tls);
/* Scheduler phase 5: apply every woken engine's requests, move its output. */
void conn_bev_flush_all(struct broker *b);
/* Free an adapter and its engine now (no flush, no linger). */
void conn_bev_free(struct conn_bev *a);
/* The loop's clock for engines (monotonic, ms). */
int64_t conn_bev_now(void);

#endif
