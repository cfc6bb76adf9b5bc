/*
 * durability.h - what the two files of the durability suite share.
 *
 * test_durability.c defines all of it: the suite's own amqpd (not
 * g_broker) on a fresh data directory per test, connections to it, short
 * forms of declares, publishes with confirms, consuming into a list and
 * asserting on what came.  test_durability_msgs.c defines the message
 * survival tests declared at the end, which suite_durability() registers.
 *
 * Single-threaded test helpers: call them from the CUnit test functions
 * only (most of them assert).
 */
#ifndef DURABILITY_H
#define DURABILITY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <amqp.h>

#include "harness.h"

/* ---- this suite's own broker -------------------------------------------- */

extern struct broker g_db;     /* pid 0 while not running */
extern char g_dir[600];        /* its data directory, "" when none */
extern unsigned g_msg_reports; /* message mismatches printed by this test */
extern const char *g_opt[2];   /* one more amqpd option and its value, or NULL */

/* The bytes in the regular files under dir. */
long long dir_bytes(const char *dir);
/* Start an amqpd on g_dir (with g_opt); true when it runs. */
bool db_start(void);
/* A fresh data directory and an amqpd on it (the start of a test). */
void db_setup(void);
void db_kill9(void);
/* Stop the broker (SIGTERM and exit status 0, or SIGKILL) and start a new
 * one on the same data directory. */
void db_restart(bool kill9);
/* The end of a test: clean stop, and the data directory removed unless
 * something failed. */
void db_done(void);

/* ---- connections and synchronous calls (channel 1) ---------------------- */

/* A connection to g_db, channel 1 open, synchronous calls giving up after
 * 10 s. */
amqp_connection_state_t dconn(void);
/* A connection whose broker was killed: nothing to say good-bye to. */
void conn_drop(amqp_connection_state_t c);
bool xdecl(amqp_connection_state_t c, const char *x, const char *type, bool durable);
bool dqdecl(amqp_connection_state_t c, const char *q, bool durable);
/* The number of ready messages in q (passive declare); -404 when q does
 * not exist, -1 on any other error. */
int qcount(amqp_connection_state_t c, const char *q);
bool qbind(amqp_connection_state_t c, const char *q, const char *x, const char *key,
           amqp_table_t args);

/* ---- publishing ---------------------------------------------------------- */

/* A message with delivery-mode 2 (persistent) or 1. */
int dpublish(amqp_connection_state_t c, amqp_channel_t ch, const char *x, const char *key,
             const char *body, bool persistent);

/* Publisher confirms seen on one channel. */
struct confirms {
	uint64_t acked; /* highest tag acked (acks come in order) */
	uint64_t nacks; /* how many basic.nack frames came */
	bool broken;    /* the connection failed or was closed */
};

/* Read one frame (waiting up to ms) and account for it: 1 a frame came,
 * 0 nothing came, -1 the connection is gone. */
int confirms_poll(amqp_connection_state_t c, amqp_channel_t ch, struct confirms *cf, int ms);
/* Wait until tags up to `upto` are settled; true if all of them were acked
 * (no nack) within 10 s. */
bool confirms_wait(amqp_connection_state_t c, amqp_channel_t ch, struct confirms *cf,
                   uint64_t upto);
bool confirm_select(amqp_connection_state_t c, amqp_channel_t ch);

/* ---- receiving ------------------------------------------------------------ */

/* A received message as far as most tests look at it. */
struct rmsg {
	char body[48];
	size_t len;
	bool redelivered;
	uint64_t tag;
};

struct rlist {
	struct rmsg *v;
	size_t n, cap;
};

void rlist_free(struct rlist *l);
/* Consume q on channel ch (opened here) with manual acks until `expect`
 * messages came and then nothing more for 300 ms (or nothing at all for
 * 10 s); each is acked when ack is set, otherwise it stays unacked.  The
 * channel stays open. */
void consume_all(amqp_connection_state_t c, amqp_channel_t ch, const char *q, bool ack,
                 size_t expect, struct rlist *out);
/* Fetch one message with basic.get on channel ch: 1 (added to out),
 * 0 empty, -1 error. */
int get_one(amqp_connection_state_t c, amqp_channel_t ch, const char *q, bool no_ack,
            struct rlist *out);

/* Assert (at the caller's file and line) that message i of l has this body
 * and redelivered flag, or that a count is the one wanted; differences are
 * printed too. */
bool check_msg_at(const struct rlist *l, size_t i, const char *body, bool redelivered,
                  const char *file, int line);
void check_count_at(size_t got, size_t want, const char *what, const char *file, int line);
#define CHECK_MSG(l, i, body, redelivered) check_msg_at(l, i, body, redelivered, __FILE__, __LINE__)
#define CHECK_COUNT(got, want, what)                                                               \
	check_count_at((size_t)(got), (size_t)(want), what, __FILE__, __LINE__)

/* ---- the tests in test_durability_msgs.c ---------------------------------- */

void test_properties(void);
void test_order_acks_clean_stop(void);
void test_order_acks_kill9(void);
void test_two_queues_reject(void);
void test_kill9_after_confirms(void);
void test_big_messages_segments(void);
void test_paged_out_messages(void);

#endif
