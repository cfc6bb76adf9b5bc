/*
 * aclient.h - an in-process AMQP 0-9-1 client of the broker's own
 * connection engine, for the admin API.
 *
 * The API's writes (declare, delete, bind, purge, publish, get) go through
 * a real engine, logged in with the HTTP request's credentials (PLAIN,
 * over the same backend chain and permission checks as any client), so an
 * operation from the API can never behave differently from the same
 * operation over AMQP: the same argument checks, limits, reply codes and
 * texts, confirms, and definitions written.  The engine is the IO-free one
 * the sockets use (session/conn.h); this file is its "socket": frames in
 * with conn_input(), output parsed back into methods and messages.
 *
 * Each server method (with its content, for basic.get-ok and
 * basic.return) is handed to the owner's on_event callback in order; a
 * GONE event says the engine closed.  Callbacks may send more frames.
 *
 * Ownership: the owner creates and frees an aclient; the aclient owns its
 * engine.  aclient_free may be called from inside a callback (the free
 * then happens when the callback returns).  Loop thread only.
 */
#ifndef ACLIENT_H
#define ACLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "amqp.h"

struct session;
struct event_base;
struct aclient;

enum aclient_kind {
	ACLIENT_METHOD, /* a method; for get-ok / return / deliver with content */
	ACLIENT_GONE,   /* the engine closed (after a connection.close, or reset) */
};

struct aclient_event {
	enum aclient_kind kind;
	uint16_t channel;
	struct amqp_method m;
	/* Content (basic.get-ok, basic.return, basic.deliver): borrowed until
	 * the callback returns. */
	bool has_content;
	struct amqp_bytes props; /* raw property bytes (flags + list) */
	struct amqp_bytes body;
};

typedef void (*aclient_fn)(struct aclient *ac, const struct aclient_event *ev, void *arg);

/* A new engine for user/password (PLAIN) from peer addr:port; the handshake
 * starts at once and fn sees connection.tune (logged in), then, once the
 * owner sends open, everything else.  NULL out of memory. */
struct aclient *aclient_new(struct session *s, struct event_base *base, const char *user,
                            const char *password, const char *peer_addr, uint16_t peer_port,
                            bool peer_loopback, aclient_fn fn, void *arg);
/* Send a method on channel ch. */
void aclient_method(struct aclient *ac, uint16_t ch, const struct amqp_method *m);
/* basic.publish + content on channel ch (props: raw property bytes, may be
 * empty). */
void aclient_publish(struct aclient *ac, uint16_t ch, const struct amqp_basic_publish *p,
                     const struct amqp_basic_props *props, struct amqp_bytes body);
/* After connection.tune: tune-ok and connection.open of vhost. */
void aclient_open(struct aclient *ac, const char *vhost);
/* Hand the events to another callback from now on. */
void aclient_set_handler(struct aclient *ac, aclient_fn fn, void *arg);
/* The logged-in user's tags (space-separated), "" before the login. */
const char *aclient_tags(const struct aclient *ac);
void aclient_free(struct aclient *ac);

#endif
