/*
 * conn.h - one client connection: handshake, tuning, heartbeats, frame
 * dispatch to channels, and the output buffer.
 *
 * IO: a bufferevent feeds bytes to conn_feed() (the frame parser and the
 * state machine) and drains c->out; everything a connection sends is
 * appended to c->out and written once per loop iteration.  Every complete
 * frame in the input is handled before control returns to the loop.
 *
 * Ownership: the broker's connection list owns connections; a connection
 * owns its channels and its exclusive queues' lifetime (they are deleted
 * with it).  Loop thread only.
 */
#ifndef CONN_H
#define CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "amqp.h"
#include "model/queue.h"

struct broker;
struct bufferevent;
struct evbuffer;
struct event;
struct channel;
struct vhost;
struct queue;
struct message;
struct sockaddr;

enum conn_state {
	CONN_AWAIT_HEADER,
	CONN_AWAIT_START_OK,
	CONN_AWAIT_TUNE_OK,
	CONN_AWAIT_OPEN,
	CONN_OPEN,
	CONN_CLOSING, /* we sent connection.close; waiting for close-ok */
	CONN_CLOSED,  /* flushing what is left, then freed */
};

struct conn {
	struct broker *b;
	struct conn *next, *prev;
	uint64_t id;
	struct bufferevent *bev;
	struct evbuffer *out;
	char name[160]; /* "127.0.0.1:40000 -> 127.0.0.1:5672" for logs */
	bool peer_loopback;
	enum conn_state state;
	struct amqp_frame_parser parser;
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
	char user[128];
	struct event *timer; /* handshake timeout, then heartbeats */
	int64_t last_recv;   /* ms (loop's cached clock) */
	/* client capabilities */
	bool cap_blocked, cap_cancel_notify, cap_auth_failure_close;
	/* The client expects the spec's basic.qos: global=false is shared by
	 * the whole channel, not per consumer (see handle_start_ok). */
	bool qos_spec_shared;
	bool publisher; /* has published: blocked on memory alarm */
	bool blocked;   /* reading paused by the memory alarm */
	bool throttled; /* a consumer waited for c->out to drain */
	int busy;       /* > 0 while inside a callback: defer free */
	bool free_pending;
	bool linger;                   /* closed by us after a clean flush: drain, don't reset */
	struct queue_owner excl;       /* exclusive queues: deleted with the connection */
	struct channel *confirm_dirty; /* channels with confirms to send */
	struct conn *confirm_next;     /* in broker->confirm_conns */
	bool confirm_listed;
};

/* Take over an accepted socket.  Logs and closes it on failure. */
void conn_accept(struct broker *b, int fd, const struct sockaddr *peer, int peerlen);

/* Encode and queue a method frame. */
void conn_send_method(struct conn *c, uint16_t channel, const struct amqp_method *m);
/* Queue a content-carrying method (deliver, get-ok, return) with the
 * message's header and body frames. */
void conn_send_content(struct conn *c, uint16_t channel, const struct amqp_method *m,
                       struct message *msg);
/* True while c->out is over its high watermark: consumers wait. */
bool conn_output_full(struct conn *c);

/* Connection exception: send connection.close with code and text (printf
 * style; the text should start with the code's name), then discard input
 * until close-ok. */
void conn_error(struct conn *c, uint16_t code, uint32_t method_id, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Close with 320 CONNECTION_FORCED (broker shutdown). */
void conn_force_close(struct conn *c, const char *reason);
void conn_free(struct conn *c);
/* Close the sockets still draining a closed connection's input. */
void conn_free_lingering(struct broker *b);

/* Shutdown: read nothing more from this connection. */
void conn_stop_reading(struct conn *c);
/* Memory alarm: stop/start reading from a publishing connection. */
void conn_block(struct conn *c);
void conn_unblock(struct conn *c);

/* The channel with this number, or NULL. */
static inline struct channel *conn_channel(const struct conn *c, uint16_t id)
{
	return id < c->channels_cap ? c->channels[id] : NULL;
}
/* Forget a closed channel's slot (the caller frees the channel). */
void conn_channel_closed(struct conn *c, uint16_t id);

/* Schedule a confirm flush for a channel (scheduler phase 1). */
void conn_mark_confirm(struct conn *c, struct channel *ch);
/* Scheduler phase 1: flush the confirms of every marked connection. */
void conn_flush_all_confirms(struct broker *b);

#endif
