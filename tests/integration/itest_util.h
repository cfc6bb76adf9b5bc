/*
 * itest_util.h - rabbitmq-c helpers shared by the integration test suites.
 *
 * Holds: clock helpers; per-suite resource names; amqp_bytes_t and field
 * table comparison; connections to g_broker (channel 1 open, 10 s RPC
 * timeout); channel (re)opening; recording, answering and asserting the
 * server's channel.close / connection.close; and short forms of queue
 * declare/delete, publish, basic.get and basic.consume on top of rabbitmq-c.
 *
 * Single-threaded test helpers: call them from the CUnit test functions
 * only (some assert, and name_of() asks CUnit for the running suite).
 */
#ifndef ITEST_UTIL_H
#define ITEST_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <amqp.h>
#include <amqp_framing.h>

/* ---- time --------------------------------------------------------------- */

int64_t now_ms(void); /* CLOCK_MONOTONIC */
void sleep_ms(int ms);

/* ---- names and bytes ---------------------------------------------------- */

/* A name unique per suite, test and process: "itest.<suite>.<what>.<pid>". */
void name_of(char *buf, size_t n, const char *what);
/* True when ITEST_TRACE is set (non-empty): print what the server said. */
bool trace_on(void);
bool bytes_eq(amqp_bytes_t b, const char *s);
bool bytes_prefix(amqp_bytes_t b, const char *s);
/* Same entries in the same order (a difference is printed to stderr). */
bool table_eq(const amqp_table_t *a, const amqp_table_t *b);

/* ---- connections and channels ------------------------------------------- */

/* A connection to g_broker (guest/guest, vhost "/", channel 1 open) whose
 * synchronous calls give up after 10 s instead of hanging the run when a
 * reply never comes.  NULL on failure. */
amqp_connection_state_t conn_open(void);
/* Likewise, with the given frame_max (conn_open uses 131072). */
amqp_connection_state_t conn_open_fm(int frame_max);
struct broker;
/* A connection to b that tells it it understands server-sent basic.cancel
 * (capability consumer_cancel_notify; rabbitmq-c's amqp_login does not
 * say so); channel 1 open, 10 s RPC timeout.  NULL on failure. */
amqp_connection_state_t conn_open_cancel_notify(struct broker *b);
/* The last synchronous call returned normally. */
bool rpc_ok(amqp_connection_state_t c);
/* channel.open; true when it was opened. */
bool open_channel(amqp_connection_state_t c, amqp_channel_t ch);
/* channel.open, asserting that it works (after a channel error). */
void chan_reopen(amqp_connection_state_t c, amqp_channel_t ch);

/* ---- server-sent closes ------------------------------------------------- */

enum { CLOSE_NONE, CLOSE_CHANNEL, CLOSE_CONNECTION };

/* How an expected error ended: which close the server sent, and its reply. */
struct close_info {
	int kind;
	int code;
	char text[512];
};

/* Record a server close method and answer it with the matching close-ok. */
void take_close(amqp_connection_state_t c, amqp_channel_t ch, const amqp_method_t *m,
                struct close_info *ci);
/* The close that ended the last synchronous call on channel ch. */
struct close_info rpc_close(amqp_connection_state_t c, amqp_channel_t ch);
/* Wait up to ms for a close of channel ch (or of the connection), skipping
 * any other frame. */
struct close_info wait_close(amqp_connection_state_t c, amqp_channel_t ch, int ms);
/* Assert (at the caller's file and line) the kind, code and exact text of a
 * close; prints it when it differs or with ITEST_TRACE. */
void check_close_at(const struct close_info *ci, int kind, int code, const char *text,
                    const char *file, int line);
#define CHECK_CLOSE(ci, kind, code, text)                                                          \
	check_close_at(&(ci), kind, code, text, __FILE__, __LINE__)
/* After a server connection.close: send close-ok, assert that the server
 * then closes the socket, destroy c. */
void finish_server_close(amqp_connection_state_t c);

/* ---- queues, publish, get, consume (channel 1 unless ch is given) ------- */

amqp_queue_declare_ok_t *qdecl_full(amqp_connection_state_t c, amqp_channel_t ch, const char *name,
                                    bool passive, bool durable, bool exclusive, bool auto_delete,
                                    amqp_table_t args);
/* A plain (non-durable, non-exclusive, not auto-delete) queue; true if ok. */
bool qdecl(amqp_connection_state_t c, const char *name);
/* queue.delete, asserting that it works. */
void qdelete(amqp_connection_state_t c, const char *name);

/* basic.publish; props may be NULL.  Returns rabbitmq-c's status. */
int publish_full(amqp_connection_state_t c, amqp_channel_t ch, const char *x, const char *key,
                 bool mandatory, const amqp_basic_properties_t *props, amqp_bytes_t body);
/* publish_full on channel 1, not mandatory, no properties. */
int publish(amqp_connection_state_t c, const char *x, const char *key, const char *body);

/* A message fetched with basic.get. */
struct got {
	int status; /* 1 message, 0 get-empty, -1 error */
	uint64_t tag;
	bool redelivered;
	uint32_t message_count;
	char body[64]; /* truncated */
};

struct got get_on(amqp_connection_state_t c, amqp_channel_t ch, const char *q, bool no_ack);
struct got get1(amqp_connection_state_t c, const char *q, bool no_ack);
/* Gets (no-ack) until q is empty; returns how many messages there were. */
int drain(amqp_connection_state_t c, const char *q);

/* basic.consume; the (server-chosen) tag goes to tag_out (may be NULL).
 * tag NULL lets the server choose.  False on failure. */
bool consume_on(amqp_connection_state_t c, amqp_channel_t ch, const char *q, const char *tag,
                bool no_ack, bool exclusive, char *tag_out, size_t n);

#endif
