/*
 * session.h - what every AMQP connection of one broker shares: the limits
 * it negotiates, the model it works on, the storage host it waits on, the
 * direct reply-to tokens, the alarm state, and the list of connections
 * with confirms to flush.
 *
 * The layer above (io/) owns a struct session, fills it in and hands it
 * to every connection engine it creates; the alarm fields are state it
 * writes and the engines read.  schedule() asks for the end-of-iteration
 * scheduler (io/broker.h) to run: engines call it instead of doing batched
 * work themselves.
 *
 * Threading: loop thread only.
 */
#ifndef SESSION_H
#define SESSION_H

#include <stdbool.h>
#include <stdint.h>

#include "model/model.h"
#include "session/auth.h"
#include "store/storage_host.h"
#include "util/hmap.h"

struct conn;

struct session_config {
	uint16_t channel_max;       /* 2047 */
	uint32_t frame_max;         /* 131072 */
	uint16_t heartbeat;         /* 60 s */
	uint64_t max_message_size;  /* 128 MiB */
	uint32_t handshake_timeout; /* ms, 10000 */
	/* A delivery unacked this long (ms; 0 = never) times out, unless its
	 * queue or consumer says otherwise (x-consumer-timeout): RabbitMQ's
	 * consumer_timeout, 1800000.  notify_consumer: the consumer is
	 * cancelled and its deliveries requeued instead of the channel closed
	 * with 406 (consumer_timeout_response). */
	uint64_t consumer_timeout;
	bool consumer_timeout_notify;
};

struct session {
	struct session_config cfg;
	struct model *md;
	struct storage_host *st;
	struct hmap reply_tokens; /* direct reply-to token -> struct channel */
	/* Why publishers are blocked (RabbitMQ's reason text), NULL if they
	 * are not: set by the layer above when an alarm is raised. */
	const char *alarm;
	struct conn *confirm_conns; /* connections with confirms to flush */
	uint64_t next_conn_id;
	const char *platform; /* server_properties.platform, e.g. "C11 / libevent 2.1.12" */
	struct auth_config auth;
	struct hmap user_usage;   /* user name -> connections and channels open (login.c) */
	struct conn *conns;       /* every engine (conn->s_next) */
	int64_t (*wall_ms)(void); /* Unix time in ms (credential expiry); NULL: the clock */
	void (*schedule)(struct session *s); /* run the end-of-iteration scheduler */
};

/* Delete a vhost: its connections are closed (320, "vhost 'x' is
 * deleted", their channels and exclusive queues gone at once), then the
 * model deletes it with everything in it.  false when there is none. */
bool session_vhost_delete(struct session *s, const char *name);

/* Scheduler phase 1: flush the confirms of every marked connection. */
void session_flush_confirms(struct session *s);

#endif
