/*
 * conn.h - the connection engine: one AMQP connection's handshake, tuning,
 * heartbeats, frame dispatch to channels and output, with no I/O inside.
 *
 * In the spirit of qpid-proton's engine, whoever owns the socket (the I/O
 * layer's adapter, a test, the fuzzer) drives it:
 *   - bytes read go in with conn_input() (every complete frame is handled
 *     before it returns; it consumes less than it was given only when the
 *     engine pauses reading or closes, at a frame boundary);
 *   - bytes to write come out with conn_take_output() as chunks (outq.h)
 *     that the caller owns until it releases them, and conn_output_pending()
 *     tells the engine how much the caller still has unwritten (consumers
 *     wait while the two together are over a high watermark);
 *   - conn_poll() says what the engine wants: read or not, its next deadline
 *     (then conn_tick() with the current time), close after flushing, or
 *     drop at once;
 *   - io->wake() tells the owner that conn_poll() or conn_take_output()
 *     has news (called at most once until the next conn_poll()).
 * Time is whatever the caller says it is (milliseconds, monotonic), so a
 * test can drive heartbeats and timeouts with a fake clock.
 *
 * The engine never frees itself: when it wants to go (close or reset) its
 * owner calls conn_free() from outside any engine call.
 *
 * Ownership: the owner owns the engine; the engine owns its channels and
 * its exclusive queues (deleted with it).  Loop thread only.
 */
#ifndef CONN_H
#define CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "amqp.h"
#include "model/queue.h"
#include "session/outq.h"

struct session;
struct channel;
struct vhost;
struct message;

enum conn_state {
	CONN_AWAIT_HEADER,
	CONN_AWAIT_START_OK,
	CONN_AWAIT_SECURE_OK, /* a mechanism sent a challenge */
	CONN_AWAIT_TUNE_OK,
	CONN_AWAIT_OPEN,
	CONN_OPEN,
	CONN_CLOSING, /* we sent connection.close; waiting for close-ok */
	CONN_CLOSED,  /* done: flush what is left, then go */
};

/* What the owner hands down with each engine. */
struct conn_io {
	void (*wake)(struct conn_io *io);
};

/* The engine's requests, read by the owner with conn_poll(). */
struct conn_poll {
	bool want_read;   /* false: stop reading (input stays where it is) */
	bool close;       /* write what was taken, then conn_free() */
	bool linger;      /* with close: half-close and drain the peer's input */
	bool reset;       /* conn_free() now, without writing anything more */
	int64_t deadline; /* call conn_tick() at this time (ms); -1: none */
};

struct conn {
	struct session *s;
	struct conn_io *io;
	uint64_t id;
	char name[160]; /* "127.0.0.1:40000 -> 127.0.0.1:5672" for logs */
	bool peer_loopback;
	/* The admin API's own engine (admin/aclient.h): its opens and closes
	 * are not logged, one per HTTP request would drown the log. */
	bool internal;
	enum conn_state state;
	struct amqp_frame_parser parser;
	struct outq out;
	size_t io_pending; /* bytes the owner has taken but not written yet */
	uint16_t channel_max;
	uint32_t frame_max;
	uint16_t heartbeat;
	/* Open channels by number: grows (power of two) to the highest number
	 * opened, not channel_max + 1 slots up front (an idle connection
	 * costs a few bytes here instead of 16 KiB). */
	struct channel **channels;
	unsigned channels_cap; /* slots in channels[] */
	unsigned nchannels;    /* open (non-NULL) slots */
	struct vhost *vh;
	char user[256];
	/* Who the peer is, for the auth backends (conn_set_peer*). */
	char peer_addr[64];
	uint16_t peer_port;
	bool peer_tls, cert_verified;
	char *cert_dn, *cert_cn, **cert_sans;
	size_t cert_nsans;
	char *client_name; /* client_properties.connection_name */
	/* Authentication (login.h); NULL until connection.start-ok. */
	struct conn_auth *auth;
	bool auth_wait;        /* waiting for an auth answer: read nothing */
	int64_t auth_deadline; /* that answer's timeout, or the failure delay; -1 */
	int64_t expires_at;    /* the credential expires (ms, caller's clock); -1 */
	/* A channel frame whose access check went pending, handled again when
	 * the answer is in (conn_priv.h); cur_frame: the frame being handled. */
	const struct amqp_frame *cur_frame;
	uint8_t *held;
	struct amqp_frame held_frame;
	bool replaying; /* handling the held frame again */
	/* Every engine of the session (session_vhost_delete walks them). */
	struct conn *s_next, *s_prev;
	/* time (ms, the caller's clock) */
	int64_t now;       /* latest time the caller gave */
	int64_t last_recv; /* input last seen */
	int64_t deadline;  /* next conn_tick(), -1 none */
	/* client capabilities */
	bool cap_blocked, cap_cancel_notify, cap_auth_failure_close;
	/* The client expects the spec's basic.qos: global=false is shared by
	 * the whole channel, not per consumer (see handle_start_ok). */
	bool qos_spec_shared;
	bool publisher;                /* has published: blocked on memory alarm */
	bool blocked;                  /* reading paused by the memory alarm */
	bool read_stopped;             /* reading stopped for the shutdown */
	bool out_paused;               /* reading paused: too much output waits (OUT_READ_PAUSE) */
	bool throttled;                /* a consumer waited for output to drain */
	bool linger;                   /* closed by us after a clean flush: drain, don't reset */
	bool reset;                    /* drop at once */
	bool woken;                    /* io->wake() called since the last conn_poll() */
	struct queue_owner excl;       /* exclusive queues: deleted with the connection */
	struct channel *confirm_dirty; /* channels with confirms to send */
	struct conn *confirm_next;     /* in session->confirm_conns */
	bool confirm_listed;
	/* For the admin API: bytes in and out, when it connected (wall ms). */
	uint64_t recv_oct, send_oct;
	uint64_t recv_prev, send_prev; /* at the last rate sample */
	float recv_rate, send_rate;    /* bytes per second */
	int64_t connected_at;
	struct msg_stats closed_stats; /* counts of its channels that closed */
};

/* ---- for the owner ---- */

/* A new engine awaiting the protocol header; name is for logs.  NULL out
 * of memory. */
struct conn *conn_new(struct session *s, struct conn_io *io, const char *name, bool peer_loopback,
                      int64_t now);
/* Feed bytes read; returns how many were consumed. */
size_t conn_input(struct conn *c, const uint8_t *data, size_t len, int64_t now);
/* Take up to max output chunks (the caller releases each with
 * outq_chunk_release() once written); returns how many. */
size_t conn_take_output(struct conn *c, struct outq_chunk *out, size_t max);
/* The caller still has this many bytes of taken output unwritten. */
void conn_output_pending(struct conn *c, size_t bytes);
void conn_poll(struct conn *c, struct conn_poll *p);
/* conn_poll()'s want_read, without taking the news. */
bool conn_wants_read(const struct conn *c);
void conn_tick(struct conn *c, int64_t now);
/* Who the peer is (before any input): its address, and whether it came
 * over TLS; after the TLS handshake, the client certificate it presented
 * and the TLS layer verified (strings copied; dn in RFC 4514 form; sans as
 * "DNS:x", "email:x", "URI:x", "IP:x"). */
void conn_set_peer(struct conn *c, const char *addr, uint16_t port, bool tls);
void conn_set_peer_cert(struct conn *c, const char *dn, const char *cn, const char *const *sans,
                        size_t nsans);
/* The peer closed the socket or it failed. */
void conn_peer_closed(struct conn *c);
void conn_free(struct conn *c);

/* Close with 320 CONNECTION_FORCED (broker shutdown). */
void conn_force_close(struct conn *c, const char *reason);
/* Shutdown: read nothing more from this connection. */
void conn_stop_reading(struct conn *c);
/* Alarm (session->alarm): stop/start reading from a publishing connection. */
void conn_block(struct conn *c);
void conn_unblock(struct conn *c);

/* ---- for channels ---- */

/* Encode and queue a method frame. */
void conn_send_method(struct conn *c, uint16_t channel, const struct amqp_method *m);
/* Queue a content-carrying method (deliver, get-ok, return) with the
 * message's header and body frames. */
void conn_send_content(struct conn *c, uint16_t channel, const struct amqp_method *m,
                       struct message *msg);
/* True while output is over its high watermark: consumers wait. */
bool conn_output_full(struct conn *c);

/* Connection exception: send connection.close with code and text (printf
 * style; the text should start with the code's name), then discard input
 * until close-ok. */
void conn_error(struct conn *c, uint16_t code, uint32_t method_id, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* The channel with this number, or NULL. */
static inline struct channel *conn_channel(const struct conn *c, uint16_t id)
{
	return id < c->channels_cap ? c->channels[id] : NULL;
}
/* Forget a closed channel's slot (the caller frees the channel). */
void conn_channel_closed(struct conn *c, uint16_t id);

/* Schedule a confirm flush for a channel (scheduler phase 1). */
void conn_mark_confirm(struct conn *c, struct channel *ch);

#endif
