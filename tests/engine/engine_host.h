/*
 * engine_host.h - drives connection engines (server/session/conn.h) with
 * no socket and no event loop, for the engine unit tests and the broker
 * fuzz target.
 *
 * A host is what io/broker.c is to a real broker, minus the I/O: a plugin
 * host with the exchange types built in, a model with the vhost "/", a session, and
 * the end-of-iteration scheduler run by hand (eh_settle).  A client is one
 * engine plus what a socket would have: the bytes the engine wrote
 * (decoded into frames on demand), its requests and a fake clock.
 *
 * Nothing here waits: every call returns once the engine has nothing more
 * to do.  Single-threaded.
 */
#ifndef ENGINE_HOST_H
#define ENGINE_HOST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "amqp.h"
#include "model/model.h"
#include "plugin/plugin_host.h"
#include "session/conn.h"
#include "session/session.h"

struct event_base;

struct eh {
	struct event_base *base; /* only for the plugin host; never run */
	struct plugin_host plugins;
	struct model md;
	struct storage_host st; /* no backend: nothing persisted */
	struct session s;
	bool sched; /* the scheduler was asked for */
	struct ec *clients;
};

struct ec {
	struct eh *h;
	struct ec *next;
	struct conn_io io;
	struct conn *c; /* NULL once the engine has gone */
	bool woken;
	int64_t now;           /* the fake clock, ms */
	struct conn_poll last; /* requests seen by the last eh_settle */
	bool closed_clean, was_reset;
	bool stalled; /* a client that reads nothing: output stays */
	uint8_t *out; /* output not yet read as frames */
	size_t out_len, out_cap, out_off;
	size_t out_total;            /* every byte the engine wrote */
	struct amqp_frame_parser fp; /* decodes out */
	uint8_t *in;                 /* input the engine did not consume yet */
	size_t in_len, in_cap;
};

/* A host with the exchange types direct, fanout, topic and headers linked
 * in (registered through their entry functions, no dlopen).  0, or -1
 * (printed). */
int eh_init(struct eh *h);
void eh_free(struct eh *h);
/* Recreate the vhost "/" (empty). */
int eh_reset_vhost(struct eh *h);
/* Add (or replace) a user with full permissions on "/".  0 or -1. */
int eh_add_user(struct eh *h, const char *name, const char *password, const char *tags);
/* Run the scheduler and every client's requests until nothing changes:
 * confirms flushed, output taken, closes and resets carried out. */
void eh_settle(struct eh *h);

/* A client whose engine was created at time now. */
struct ec *ec_new(struct eh *h, int64_t now);
void ec_free(struct ec *e);
/* Give the engine bytes (kept while it does not read), then settle. */
void ec_send(struct ec *e, const void *data, size_t len);
/* Encode and send a method / a whole publish (method, header, body). */
void ec_method(struct ec *e, uint16_t ch, const struct amqp_method *m);
void ec_publish(struct ec *e, uint16_t ch, const char *exchange, const char *rk,
                const struct amqp_basic_props *props, const void *body, size_t len);
/* Advance the fake clock to now and tick the engine if it is due. */
void ec_advance(struct ec *e, int64_t now);
/* The next frame the engine wrote: 1 (f filled, valid until the next
 * call), 0 none yet, -1 the output is not valid AMQP. */
int ec_frame(struct ec *e, struct amqp_frame *f);
/* The next method frame (skipping heartbeats); false if none.  On
 * channel *ch if ch is not NULL. */
bool ec_next_method(struct ec *e, struct amqp_method *m, uint16_t *ch);
/* Protocol header, start-ok (PLAIN guest/guest), tune-ok, open "/":
 * true when open-ok came back. */
bool ec_handshake(struct ec *e, uint16_t heartbeat);

#endif
