/*
 * test_queue.c - queues, checked against what RabbitMQ 3.10 does: declare
 * (passive, durable, exclusive, auto-delete, server-named "amq.gen-"),
 * declare-ok counts, inequivalent redeclare, reserved "amq." names, bind and
 * unbind, purge, delete (if-unused, if-empty), exclusive access from another
 * connection, auto-delete on the last consumer's cancel, and the server-sent
 * basic.cancel when a consumed queue is deleted.
 *
 * Every expected reply code and text is RabbitMQ's own.  Names are unique
 * per test and process ("itest.queue.<what>.<pid>") and are deleted again.
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include <amqp.h>
#include <amqp_framing.h>
#include <amqp_tcp_socket.h>

#include "itest.h"
#include "itest_util.h"

/* ---- helpers ------------------------------------------------------------ */

/* True when q does not exist: a passive declare on channel ch is closed
 * with 404 (the channel is reopened). */
static bool qgone_on(amqp_connection_state_t c, amqp_channel_t ch, const char *name)
{
	if (qdecl_full(c, ch, name, true, false, false, false, amqp_empty_table))
		return false;
	struct close_info ci = rpc_close(c, ch);
	if (ci.kind == CLOSE_CHANNEL)
		chan_reopen(c, ch);
	return ci.kind == CLOSE_CHANNEL && ci.code == 404;
}

static bool qgone(amqp_connection_state_t c, const char *name)
{
	return qgone_on(c, 1, name);
}

/* Queues are deleted asynchronously after a cancel or a connection close:
 * poll for up to ms. */
static bool qgone_wait(amqp_connection_state_t c, const char *name, int ms)
{
	for (int waited = 0;; waited += 20) {
		if (qgone(c, name))
			return true;
		if (waited >= ms)
			return false;
		sleep_ms(20);
	}
}

/* Publish n messages to q through the default exchange on channel ch in
 * confirm mode, and wait until the broker has confirmed them all. */
static bool publish_confirmed(amqp_connection_state_t c, amqp_channel_t ch, const char *q, int n)
{
	if (!open_channel(c, ch) || !amqp_confirm_select(c, ch))
		return false;
	for (int i = 0; i < n; i++)
		if (amqp_basic_publish(c, ch, amqp_cstring_bytes(""), amqp_cstring_bytes(q), 0, 0,
		                       NULL, amqp_cstring_bytes("m")) != AMQP_STATUS_OK)
			return false;
	uint64_t acked = 0;
	while (acked < (uint64_t)n) {
		amqp_frame_t f;
		struct timeval tv = {5, 0};
		if (amqp_simple_wait_frame_noblock(c, &f, &tv) != AMQP_STATUS_OK)
			return false;
		if (f.frame_type == AMQP_FRAME_METHOD && f.channel == ch &&
		    f.payload.method.id == AMQP_BASIC_ACK_METHOD)
			acked = ((amqp_basic_ack_t *)f.payload.method.decoded)->delivery_tag;
		else if (f.frame_type == AMQP_FRAME_METHOD && f.channel == ch)
			return false;
	}
	amqp_channel_close(c, ch, AMQP_REPLY_SUCCESS);
	return rpc_ok(c);
}

static bool cancel(amqp_connection_state_t c, amqp_channel_t ch, const char *tag)
{
	return amqp_basic_cancel(c, ch, amqp_cstring_bytes(tag)) != NULL;
}

static amqp_connection_state_t connect_cancel_notify(void)
{
	return conn_open_cancel_notify(&g_broker);
}

/* ---- declare -------------------------------------------------------------- */

static void test_declare(void)
{
	amqp_connection_state_t c = conn_open();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	char q[256], d[256];
	name_of(q, sizeof(q), "declare");
	name_of(d, sizeof(d), "declare-durable");
	amqp_queue_declare_ok_t *ok =
	    qdecl_full(c, 1, q, false, false, false, false, amqp_empty_table);
	CU_ASSERT_PTR_NOT_NULL_FATAL(ok);
	CU_ASSERT_EQUAL(ok->queue.len, strlen(q));
	CU_ASSERT(ok->queue.len == strlen(q) && memcmp(ok->queue.bytes, q, strlen(q)) == 0);
	CU_ASSERT_EQUAL(ok->message_count, 0);
	CU_ASSERT_EQUAL(ok->consumer_count, 0);
	/* passive and identical redeclares are fine */
	ok = qdecl_full(c, 1, q, true, false, false, false, amqp_empty_table);
	CU_ASSERT_PTR_NOT_NULL(ok);
	if (ok)
		CU_ASSERT(ok->queue.len == strlen(q) && memcmp(ok->queue.bytes, q, strlen(q)) == 0);
	CU_ASSERT(qdecl(c, q));
	/* a passive declare ignores the other flags */
	CU_ASSERT_PTR_NOT_NULL(qdecl_full(c, 1, q, true, true, false, true, amqp_empty_table));

	CU_ASSERT_PTR_NOT_NULL(qdecl_full(c, 1, d, false, true, false, false, amqp_empty_table));
	CU_ASSERT_PTR_NOT_NULL(qdecl_full(c, 1, d, true, false, false, false, amqp_empty_table));
	CU_ASSERT_PTR_NOT_NULL(qdecl_full(c, 1, d, false, true, false, false, amqp_empty_table));

	/* declared queues are bound to the default exchange by name */
	struct got g;
	CU_ASSERT_EQUAL(publish(c, "", d, "to-durable"), AMQP_STATUS_OK);
	g = get1(c, d, true);
	CU_ASSERT_EQUAL(g.status, 1);
	CU_ASSERT_STRING_EQUAL(g.body, "to-durable");
	qdelete(c, q);
	qdelete(c, d);
	CU_ASSERT(qgone(c, q));
	CU_ASSERT(qgone(c, d));
	broker_disconnect(c);
}

static void test_server_named(void)
{
	amqp_connection_state_t c = conn_open();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	char n1[256] = "", n2[256] = "";
	struct got g;
	amqp_queue_declare_ok_t *ok =
	    qdecl_full(c, 1, "", false, false, true, false, amqp_empty_table);
	CU_ASSERT_PTR_NOT_NULL_FATAL(ok);
	snprintf(n1, sizeof(n1), "%.*s", (int)ok->queue.len, (const char *)ok->queue.bytes);
	CU_ASSERT_EQUAL(strncmp(n1, "amq.gen-", 8), 0);
	CU_ASSERT(strlen(n1) > 8);
	CU_ASSERT_EQUAL(ok->message_count, 0);
	CU_ASSERT_EQUAL(ok->consumer_count, 0);
	ok = qdecl_full(c, 1, "", false, false, false, true, amqp_empty_table);
	CU_ASSERT_PTR_NOT_NULL_FATAL(ok);
	snprintf(n2, sizeof(n2), "%.*s", (int)ok->queue.len, (const char *)ok->queue.bytes);
	CU_ASSERT_EQUAL(strncmp(n2, "amq.gen-", 8), 0);
	CU_ASSERT_STRING_NOT_EQUAL(n1, n2);

	/* usable by name like any other queue, even though it starts "amq." */
	CU_ASSERT_EQUAL(publish(c, "", n1, "gen"), AMQP_STATUS_OK);
	g = get1(c, n1, true);
	CU_ASSERT_EQUAL(g.status, 1);
	CU_ASSERT_STRING_EQUAL(g.body, "gen");
	CU_ASSERT_PTR_NOT_NULL(qdecl_full(c, 1, n1, true, false, false, false, amqp_empty_table));
	/* but RabbitMQ refuses a non-passive redeclare of it by name, even an
	 * identical one: the reserved prefix is checked before the lookup */
	CU_ASSERT_PTR_NULL(qdecl_full(c, 1, n1, false, false, true, false, amqp_empty_table));
	struct close_info ci = rpc_close(c, 1);
	char want[512];
	snprintf(want, sizeof(want),
	         "ACCESS_REFUSED - queue name '%s' contains reserved prefix 'amq.*'", n1);
	CHECK_CLOSE(ci, CLOSE_CHANNEL, 403, want);
	chan_reopen(c, 1);
	qdelete(c, n1);
	qdelete(c, n2);
	broker_disconnect(c);
}

static void test_declare_counts(void)
{
	amqp_connection_state_t c = conn_open();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	char q[256], q2[256], t1[256], t2[256];
	name_of(q, sizeof(q), "counts");
	name_of(q2, sizeof(q2), "counts-consumed");
	CU_ASSERT(qdecl(c, q));
	/* RabbitMQ answers the declare's count ahead of queued publishes (the
	 * stat call has priority in the queue process), so publish with
	 * confirms and wait for the acks first */
	CU_ASSERT(publish_confirmed(c, 3, q, 3));
	amqp_queue_declare_ok_t *ok =
	    qdecl_full(c, 1, q, true, false, false, false, amqp_empty_table);
	CU_ASSERT_PTR_NOT_NULL_FATAL(ok);
	CU_ASSERT_EQUAL(ok->message_count, 3);
	CU_ASSERT_EQUAL(ok->consumer_count, 0);
	/* a non-passive redeclare reports the same */
	ok = qdecl_full(c, 1, q, false, false, false, false, amqp_empty_table);
	CU_ASSERT_PTR_NOT_NULL_FATAL(ok);
	CU_ASSERT_EQUAL(ok->message_count, 3);
	/* unacknowledged messages are not counted */
	CU_ASSERT_EQUAL(get1(c, q, false).status, 1);
	ok = qdecl_full(c, 1, q, true, false, false, false, amqp_empty_table);
	CU_ASSERT_PTR_NOT_NULL_FATAL(ok);
	CU_ASSERT_EQUAL(ok->message_count, 2);

	/* consumers (on another channel) are counted */
	CU_ASSERT(qdecl(c, q2));
	amqp_channel_open(c, 2);
	CU_ASSERT(rpc_ok(c));
	CU_ASSERT(consume_on(c, 2, q2, NULL, true, false, t1, sizeof(t1)));
	CU_ASSERT(consume_on(c, 2, q2, NULL, true, false, t2, sizeof(t2)));
	ok = qdecl_full(c, 1, q2, true, false, false, false, amqp_empty_table);
	CU_ASSERT_PTR_NOT_NULL_FATAL(ok);
	CU_ASSERT_EQUAL(ok->consumer_count, 2);
	CU_ASSERT_EQUAL(ok->message_count, 0);
	CU_ASSERT(cancel(c, 2, t1));
	ok = qdecl_full(c, 1, q2, true, false, false, false, amqp_empty_table);
	CU_ASSERT_PTR_NOT_NULL_FATAL(ok);
	CU_ASSERT_EQUAL(ok->consumer_count, 1);
	/* closing the consumer's channel removes its consumer */
	amqp_channel_close(c, 2, AMQP_REPLY_SUCCESS);
	ok = qdecl_full(c, 1, q2, true, false, false, false, amqp_empty_table);
	CU_ASSERT_PTR_NOT_NULL_FATAL(ok);
	CU_ASSERT_EQUAL(ok->consumer_count, 0);

	qdelete(c, q);
	qdelete(c, q2);
	broker_disconnect(c);
}

/* Declare q with the given flags, then redeclare it with others: 406 with
 * "inequivalent arg '<arg>' for queue ...: <detail>". */
static void redeclare_case(amqp_connection_state_t c, const char *q, bool durable, bool exclusive,
                           bool auto_delete, amqp_table_t args, bool durable2, bool exclusive2,
                           bool auto_delete2, amqp_table_t args2, int want_code,
                           const char *want_text, int line)
{
	CU_ASSERT_PTR_NOT_NULL(qdecl_full(c, 1, q, false, durable, exclusive, auto_delete, args));
	qdecl_full(c, 1, q, false, durable2, exclusive2, auto_delete2, args2);
	struct close_info ci = rpc_close(c, 1);
	check_close_at(&ci, CLOSE_CHANNEL, want_code, want_text, __FILE__, line);
	chan_reopen(c, 1);
	/* the original is untouched */
	CU_ASSERT_PTR_NOT_NULL(qdecl_full(c, 1, q, false, durable, exclusive, auto_delete, args));
	qdelete(c, q);
}

static void test_redeclare_inequivalent(void)
{
	amqp_connection_state_t c = conn_open();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	char q[256], want[768];
	name_of(q, sizeof(q), "ineq");
	const amqp_table_t none = amqp_empty_table;

	snprintf(want, sizeof(want),
	         "PRECONDITION_FAILED - inequivalent arg 'durable' for queue '%s' in vhost '/': "
	         "received 'true' but current is 'false'",
	         q);
	redeclare_case(c, q, false, false, false, none, true, false, false, none, 406, want,
	               __LINE__);
	snprintf(want, sizeof(want),
	         "PRECONDITION_FAILED - inequivalent arg 'durable' for queue '%s' in vhost '/': "
	         "received 'false' but current is 'true'",
	         q);
	redeclare_case(c, q, true, false, false, none, false, false, false, none, 406, want,
	               __LINE__);
	snprintf(want, sizeof(want),
	         "PRECONDITION_FAILED - inequivalent arg 'auto_delete' for queue '%s' in vhost "
	         "'/': received 'true' but current is 'false'",
	         q);
	redeclare_case(c, q, false, false, false, none, false, false, true, none, 406, want,
	               __LINE__);

	/* exclusive differs: RabbitMQ reports it as a locked queue (405) */
	snprintf(want, sizeof(want),
	         "RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '%s' in vhost "
	         "'/'. It could be originally declared on another connection or the exclusive "
	         "property value does not match that of the original declaration.",
	         q);
	redeclare_case(c, q, false, false, false, none, false, true, false, none, 405, want,
	               __LINE__);
	redeclare_case(c, q, false, true, false, none, false, false, false, none, 405, want,
	               __LINE__);

	amqp_table_entry_t ml = {amqp_cstring_bytes("x-max-length"),
	                         {AMQP_FIELD_KIND_I32, {.i32 = 10}}};
	amqp_table_t args = {1, &ml};
	amqp_table_entry_t ml2 = {amqp_cstring_bytes("x-max-length"),
	                          {AMQP_FIELD_KIND_I32, {.i32 = 20}}};
	amqp_table_t args2 = {1, &ml2};
	snprintf(want, sizeof(want),
	         "PRECONDITION_FAILED - inequivalent arg 'x-max-length' for queue '%s' in vhost "
	         "'/': received the value '10' of type 'signedint' but current is none",
	         q);
	redeclare_case(c, q, false, false, false, none, false, false, false, args, 406, want,
	               __LINE__);
	snprintf(want, sizeof(want),
	         "PRECONDITION_FAILED - inequivalent arg 'x-max-length' for queue '%s' in vhost "
	         "'/': received '20' but current is '10'",
	         q);
	redeclare_case(c, q, false, false, false, args, false, false, false, args2, 406, want,
	               __LINE__);
	snprintf(want, sizeof(want),
	         "PRECONDITION_FAILED - inequivalent arg 'x-max-length' for queue '%s' in vhost "
	         "'/': received none but current is the value '10' of type 'signedint'",
	         q);
	redeclare_case(c, q, false, false, false, args, false, false, false, none, 406, want,
	               __LINE__);
	broker_disconnect(c);
}

static void test_passive_missing(void)
{
	amqp_connection_state_t c = conn_open();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	char q[256], want[512];
	name_of(q, sizeof(q), "q1");
	qdecl_full(c, 1, q, true, false, false, false, amqp_empty_table);
	struct close_info ci = rpc_close(c, 1);
	snprintf(want, sizeof(want), "NOT_FOUND - no queue '%s' in vhost '/'", q);
	CHECK_CLOSE(ci, CLOSE_CHANNEL, 404, want);
	chan_reopen(c, 1);
	/* the channel works again, and nothing was created */
	CU_ASSERT(qgone(c, q));
	broker_disconnect(c);
}

static void test_reserved_prefix(void)
{
	amqp_connection_state_t c = conn_open();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	char q[256], want[512];
	snprintf(q, sizeof(q), "amq.itest.%d", (int)getpid());
	qdecl_full(c, 1, q, false, false, false, false, amqp_empty_table);
	struct close_info ci = rpc_close(c, 1);
	snprintf(want, sizeof(want),
	         "ACCESS_REFUSED - queue name '%s' contains reserved prefix 'amq.*'", q);
	CHECK_CLOSE(ci, CLOSE_CHANNEL, 403, want);
	chan_reopen(c, 1);
	CU_ASSERT(qgone(c, q));
	broker_disconnect(c);
}

/* Arguments checked as RabbitMQ checks them (406 with its texts); the
 * queue is not created. */
static void test_argument_checks(void)
{
	amqp_connection_state_t c = conn_open();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	char q[256], want[512];
	name_of(q, sizeof(q), "qargs");
	amqp_table_entry_t e = {amqp_cstring_bytes("x-message-ttl"),
	                        {.kind = AMQP_FIELD_KIND_I32, .value.i32 = -1}};
	amqp_table_t t = {1, &e};
	qdecl_full(c, 1, q, false, false, false, false, t);
	struct close_info ci = rpc_close(c, 1);
	snprintf(want, sizeof(want),
	         "PRECONDITION_FAILED - invalid arg 'x-message-ttl' for queue '%s' in vhost '/': "
	         "{value_negative,-1}",
	         q);
	CHECK_CLOSE(ci, CLOSE_CHANNEL, 406, want);
	chan_reopen(c, 1);
	CU_ASSERT(qgone(c, q));
	amqp_table_entry_t d = {amqp_cstring_bytes("x-delivery-limit"),
	                        {.kind = AMQP_FIELD_KIND_I32, .value.i32 = 5}};
	amqp_table_t dt = {1, &d};
	qdecl_full(c, 1, q, false, false, false, false, dt);
	ci = rpc_close(c, 1);
	snprintf(want, sizeof(want),
	         "PRECONDITION_FAILED - invalid arg 'x-delivery-limit' for queue '%s' in vhost '/' "
	         "of queue type rabbit_classic_queue",
	         q);
	CHECK_CLOSE(ci, CLOSE_CHANNEL, 406, want);
	chan_reopen(c, 1);
	CU_ASSERT(qgone(c, q));
	broker_disconnect(c);
}

/* ---- bind / purge / delete ------------------------------------------------ */

static void test_bind_unbind(void)
{
	amqp_connection_state_t c = conn_open();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	char q[256], x[256], mq[256], mx[256], want[1024];
	struct got g;
	name_of(q, sizeof(q), "bind");
	name_of(x, sizeof(x), "bind-x");
	name_of(mq, sizeof(mq), "bind-missing-q");
	name_of(mx, sizeof(mx), "bind-missing-x");
	CU_ASSERT(qdecl(c, q));
	amqp_exchange_declare(c, 1, amqp_cstring_bytes(x), amqp_cstring_bytes("direct"), 0, 0, 0, 0,
	                      amqp_empty_table);
	CU_ASSERT(rpc_ok(c));

	amqp_queue_bind(c, 1, amqp_cstring_bytes(q), amqp_cstring_bytes(x), amqp_cstring_bytes("k"),
	                amqp_empty_table);
	CU_ASSERT(rpc_ok(c));
	CU_ASSERT_EQUAL(publish(c, x, "k", "bound"), AMQP_STATUS_OK);
	g = get1(c, q, true);
	CU_ASSERT_EQUAL(g.status, 1);
	CU_ASSERT_STRING_EQUAL(g.body, "bound");
	amqp_queue_unbind(c, 1, amqp_cstring_bytes(q), amqp_cstring_bytes(x),
	                  amqp_cstring_bytes("k"), amqp_empty_table);
	CU_ASSERT(rpc_ok(c));
	CU_ASSERT_EQUAL(publish(c, x, "k", "unbound"), AMQP_STATUS_OK);
	CU_ASSERT_EQUAL(get1(c, q, true).status, 0);
	/* unbinding a binding that does not exist is fine */
	amqp_queue_unbind(c, 1, amqp_cstring_bytes(q), amqp_cstring_bytes(x),
	                  amqp_cstring_bytes("never"), amqp_empty_table);
	CU_ASSERT(rpc_ok(c));

	/* bind to a missing exchange */
	amqp_queue_bind(c, 1, amqp_cstring_bytes(q), amqp_cstring_bytes(mx),
	                amqp_cstring_bytes("k"), amqp_empty_table);
	struct close_info ci = rpc_close(c, 1);
	snprintf(want, sizeof(want), "NOT_FOUND - no exchange '%s' in vhost '/'", mx);
	CHECK_CLOSE(ci, CLOSE_CHANNEL, 404, want);
	chan_reopen(c, 1);
	/* bind a missing queue */
	amqp_queue_bind(c, 1, amqp_cstring_bytes(mq), amqp_cstring_bytes(x),
	                amqp_cstring_bytes("k"), amqp_empty_table);
	ci = rpc_close(c, 1);
	snprintf(want, sizeof(want), "NOT_FOUND - no queue '%s' in vhost '/'", mq);
	CHECK_CLOSE(ci, CLOSE_CHANNEL, 404, want);
	chan_reopen(c, 1);
	/* both missing: RabbitMQ reports the exchange */
	amqp_queue_bind(c, 1, amqp_cstring_bytes(mq), amqp_cstring_bytes(mx),
	                amqp_cstring_bytes("k"), amqp_empty_table);
	ci = rpc_close(c, 1);
	snprintf(want, sizeof(want), "NOT_FOUND - no exchange '%s' in vhost '/'", mx);
	CHECK_CLOSE(ci, CLOSE_CHANNEL, 404, want);
	chan_reopen(c, 1);
	/* RabbitMQ 3.10: unbind from a missing exchange, or of a missing queue,
	 * is unbind-ok (there is no such binding) */
	amqp_queue_unbind(c, 1, amqp_cstring_bytes(q), amqp_cstring_bytes(mx),
	                  amqp_cstring_bytes("k"), amqp_empty_table);
	CU_ASSERT(rpc_ok(c));
	ci = rpc_close(c, 1);
	if (ci.kind != CLOSE_NONE) {
		CHECK_CLOSE(ci, CLOSE_NONE, 0, "");
		chan_reopen(c, 1);
	}
	amqp_queue_unbind(c, 1, amqp_cstring_bytes(mq), amqp_cstring_bytes(x),
	                  amqp_cstring_bytes("k"), amqp_empty_table);
	CU_ASSERT(rpc_ok(c));
	ci = rpc_close(c, 1);
	if (ci.kind != CLOSE_NONE) {
		CHECK_CLOSE(ci, CLOSE_NONE, 0, "");
		chan_reopen(c, 1);
	}

	/* deleting the queue removes its bindings */
	amqp_queue_bind(c, 1, amqp_cstring_bytes(q), amqp_cstring_bytes(x), amqp_cstring_bytes("k"),
	                amqp_empty_table);
	CU_ASSERT(rpc_ok(c));
	qdelete(c, q);
	CU_ASSERT(qdecl(c, q));
	CU_ASSERT_EQUAL(publish(c, x, "k", "stale"), AMQP_STATUS_OK);
	CU_ASSERT_EQUAL(get1(c, q, true).status, 0);

	qdelete(c, q);
	amqp_exchange_delete(c, 1, amqp_cstring_bytes(x), 0);
	CU_ASSERT(rpc_ok(c));
	broker_disconnect(c);
}

static void test_purge(void)
{
	amqp_connection_state_t c = conn_open();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	char q[256], mq[256], want[512];
	struct got g;
	name_of(q, sizeof(q), "purge");
	name_of(mq, sizeof(mq), "purge-missing");
	CU_ASSERT(qdecl(c, q));
	for (int i = 0; i < 5; i++)
		CU_ASSERT_EQUAL(publish(c, "", q, "p"), AMQP_STATUS_OK);
	amqp_queue_purge_ok_t *ok = amqp_queue_purge(c, 1, amqp_cstring_bytes(q));
	CU_ASSERT_PTR_NOT_NULL_FATAL(ok);
	CU_ASSERT_EQUAL(ok->message_count, 5);
	CU_ASSERT_EQUAL(get1(c, q, true).status, 0);
	ok = amqp_queue_purge(c, 1, amqp_cstring_bytes(q));
	CU_ASSERT_PTR_NOT_NULL_FATAL(ok);
	CU_ASSERT_EQUAL(ok->message_count, 0);

	/* unacknowledged messages are not purged */
	CU_ASSERT_EQUAL(publish(c, "", q, "unacked"), AMQP_STATUS_OK);
	CU_ASSERT_EQUAL(publish(c, "", q, "ready"), AMQP_STATUS_OK);
	g = get1(c, q, false);
	CU_ASSERT_EQUAL(g.status, 1);
	CU_ASSERT_STRING_EQUAL(g.body, "unacked");
	ok = amqp_queue_purge(c, 1, amqp_cstring_bytes(q));
	CU_ASSERT_PTR_NOT_NULL_FATAL(ok);
	CU_ASSERT_EQUAL(ok->message_count, 1);
	amqp_basic_recover(c, 1, 1);
	CU_ASSERT(rpc_ok(c));
	g = get1(c, q, true);
	CU_ASSERT_EQUAL(g.status, 1);
	CU_ASSERT_STRING_EQUAL(g.body, "unacked");

	amqp_queue_purge(c, 1, amqp_cstring_bytes(mq));
	struct close_info ci = rpc_close(c, 1);
	snprintf(want, sizeof(want), "NOT_FOUND - no queue '%s' in vhost '/'", mq);
	CHECK_CLOSE(ci, CLOSE_CHANNEL, 404, want);
	chan_reopen(c, 1);
	qdelete(c, q);
	broker_disconnect(c);
}

static void test_delete(void)
{
	amqp_connection_state_t c = conn_open();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	char q[256], want[512], tag[256];
	name_of(q, sizeof(q), "delete");
	CU_ASSERT(qdecl(c, q));
	for (int i = 0; i < 4; i++)
		CU_ASSERT_EQUAL(publish(c, "", q, "d"), AMQP_STATUS_OK);
	amqp_queue_delete_ok_t *ok = amqp_queue_delete(c, 1, amqp_cstring_bytes(q), 0, 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(ok);
	CU_ASSERT_EQUAL(ok->message_count, 4);
	CU_ASSERT(qgone(c, q));
	/* RabbitMQ: deleting a queue that does not exist is delete-ok, count 0 */
	ok = amqp_queue_delete(c, 1, amqp_cstring_bytes(q), 0, 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(ok);
	CU_ASSERT_EQUAL(ok->message_count, 0);

	/* if-unused with a consumer (on channel 2): 406, queue stays */
	CU_ASSERT(qdecl(c, q));
	amqp_channel_open(c, 2);
	CU_ASSERT(rpc_ok(c));
	CU_ASSERT(consume_on(c, 2, q, NULL, true, false, tag, sizeof(tag)));
	amqp_queue_delete(c, 1, amqp_cstring_bytes(q), 1, 0);
	struct close_info ci = rpc_close(c, 1);
	snprintf(want, sizeof(want), "PRECONDITION_FAILED - queue '%s' in vhost '/' in use", q);
	CHECK_CLOSE(ci, CLOSE_CHANNEL, 406, want);
	chan_reopen(c, 1);
	CU_ASSERT_PTR_NOT_NULL(qdecl_full(c, 1, q, true, false, false, false, amqp_empty_table));
	CU_ASSERT(cancel(c, 2, tag));
	/* if-unused with no consumer left: deleted */
	ok = amqp_queue_delete(c, 1, amqp_cstring_bytes(q), 1, 0);
	CU_ASSERT_PTR_NOT_NULL(ok);
	CU_ASSERT(qgone(c, q));

	/* if-empty with a message: 406, queue and message stay */
	CU_ASSERT(qdecl(c, q));
	CU_ASSERT_EQUAL(publish(c, "", q, "keep"), AMQP_STATUS_OK);
	amqp_queue_delete(c, 1, amqp_cstring_bytes(q), 0, 1);
	ci = rpc_close(c, 1);
	snprintf(want, sizeof(want), "PRECONDITION_FAILED - queue '%s' in vhost '/' not empty", q);
	CHECK_CLOSE(ci, CLOSE_CHANNEL, 406, want);
	chan_reopen(c, 1);
	amqp_queue_declare_ok_t *dok =
	    qdecl_full(c, 1, q, true, false, false, false, amqp_empty_table);
	CU_ASSERT_PTR_NOT_NULL_FATAL(dok);
	CU_ASSERT_EQUAL(dok->message_count, 1);
	/* if-empty once empty: deleted */
	CU_ASSERT_EQUAL(get1(c, q, true).status, 1);
	ok = amqp_queue_delete(c, 1, amqp_cstring_bytes(q), 0, 1);
	CU_ASSERT_PTR_NOT_NULL(ok);
	CU_ASSERT(qgone(c, q));
	broker_disconnect(c);
}

/* ---- exclusive and auto-delete -------------------------------------------- */

static void test_exclusive(void)
{
	amqp_connection_state_t a = conn_open(), b = conn_open();
	CU_ASSERT_PTR_NOT_NULL_FATAL(a);
	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	char q[256], want[768];
	name_of(q, sizeof(q), "exclusive");
	CU_ASSERT_PTR_NOT_NULL(qdecl_full(a, 1, q, false, false, true, false, amqp_empty_table));
	/* the owner can use it freely */
	CU_ASSERT_PTR_NOT_NULL(qdecl_full(a, 1, q, false, false, true, false, amqp_empty_table));
	CU_ASSERT_PTR_NOT_NULL(qdecl_full(a, 1, q, true, false, false, false, amqp_empty_table));
	CU_ASSERT(consume_on(a, 1, q, "owner", true, false, NULL, 0));
	CU_ASSERT(cancel(a, 1, "owner"));

	snprintf(want, sizeof(want),
	         "RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '%s' in vhost "
	         "'/'. It could be originally declared on another connection or the exclusive "
	         "property value does not match that of the original declaration.",
	         q);
	/* another connection: declare (same flags), passive declare, consume,
	 * purge, bind, delete are all refused */
	qdecl_full(b, 1, q, false, false, true, false, amqp_empty_table);
	struct close_info ci = rpc_close(b, 1);
	CHECK_CLOSE(ci, CLOSE_CHANNEL, 405, want);
	chan_reopen(b, 1);
	qdecl_full(b, 1, q, true, false, false, false, amqp_empty_table);
	ci = rpc_close(b, 1);
	CHECK_CLOSE(ci, CLOSE_CHANNEL, 405, want);
	chan_reopen(b, 1);
	CU_ASSERT(!consume_on(b, 1, q, NULL, true, false, NULL, 0));
	ci = rpc_close(b, 1);
	CHECK_CLOSE(ci, CLOSE_CHANNEL, 405, want);
	chan_reopen(b, 1);
	amqp_queue_purge(b, 1, amqp_cstring_bytes(q));
	ci = rpc_close(b, 1);
	CHECK_CLOSE(ci, CLOSE_CHANNEL, 405, want);
	chan_reopen(b, 1);
	amqp_queue_bind(b, 1, amqp_cstring_bytes(q), amqp_cstring_bytes("amq.direct"),
	                amqp_cstring_bytes("k"), amqp_empty_table);
	ci = rpc_close(b, 1);
	CHECK_CLOSE(ci, CLOSE_CHANNEL, 405, want);
	chan_reopen(b, 1);
	amqp_queue_delete(b, 1, amqp_cstring_bytes(q), 0, 0);
	ci = rpc_close(b, 1);
	CHECK_CLOSE(ci, CLOSE_CHANNEL, 405, want);
	chan_reopen(b, 1);
	/* but it can publish to it */
	CU_ASSERT_EQUAL(publish(b, "", q, "from-b"), AMQP_STATUS_OK);
	amqp_queue_declare_ok_t *ok =
	    qdecl_full(a, 1, q, true, false, false, false, amqp_empty_table);
	CU_ASSERT_PTR_NOT_NULL(ok);
	/* (b's publish may still be in flight: basic.get on a confirms it) */
	struct got g = {0};
	for (int i = 0; i < 100 && (g = get1(a, q, true)).status == 0; i++)
		sleep_ms(10);
	CU_ASSERT_STRING_EQUAL(g.body, "from-b");

	/* closing the owner's connection deletes it */
	broker_disconnect(a);
	CU_ASSERT(qgone_wait(b, q, 3000));
	broker_disconnect(b);
}

static void test_auto_delete(void)
{
	amqp_connection_state_t c = conn_open();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	char q[256], t1[256], t2[256];
	name_of(q, sizeof(q), "autodel");
	CU_ASSERT_PTR_NOT_NULL(qdecl_full(c, 1, q, false, false, false, true, amqp_empty_table));
	/* never consumed: it stays */
	CU_ASSERT_PTR_NOT_NULL(qdecl_full(c, 1, q, true, false, false, false, amqp_empty_table));
	amqp_channel_open(c, 2);
	CU_ASSERT(rpc_ok(c));
	CU_ASSERT(consume_on(c, 2, q, NULL, true, false, t1, sizeof(t1)));
	CU_ASSERT(consume_on(c, 2, q, NULL, true, false, t2, sizeof(t2)));
	CU_ASSERT(cancel(c, 2, t1));
	/* one consumer left: still there */
	amqp_queue_declare_ok_t *ok =
	    qdecl_full(c, 1, q, true, false, false, false, amqp_empty_table);
	CU_ASSERT_PTR_NOT_NULL_FATAL(ok);
	CU_ASSERT_EQUAL(ok->consumer_count, 1);
	CU_ASSERT(cancel(c, 2, t2));
	/* last consumer cancelled: gone */
	CU_ASSERT(qgone_wait(c, q, 3000));

	/* the same when the last consumer's channel closes */
	CU_ASSERT_PTR_NOT_NULL(qdecl_full(c, 1, q, false, false, false, true, amqp_empty_table));
	CU_ASSERT(consume_on(c, 2, q, NULL, true, false, NULL, 0));
	amqp_channel_close(c, 2, AMQP_REPLY_SUCCESS);
	CU_ASSERT(qgone_wait(c, q, 3000));
	broker_disconnect(c);
}

/* Read frames until a server basic.cancel for channel ch arrives (up to ms);
 * its consumer tag goes to tag_out.  False if none came. */
static bool wait_server_cancel(amqp_connection_state_t c, amqp_channel_t ch, int ms, char *tag_out,
                               size_t n)
{
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000L};
	for (int i = 0; i < 100; i++) {
		amqp_frame_t f;
		if (amqp_simple_wait_frame_noblock(c, &f, &tv) != AMQP_STATUS_OK)
			return false;
		if (f.frame_type == AMQP_FRAME_METHOD && f.channel == ch &&
		    f.payload.method.id == AMQP_BASIC_CANCEL_METHOD) {
			amqp_basic_cancel_t *m = f.payload.method.decoded;
			snprintf(tag_out, n, "%.*s", (int)m->consumer_tag.len,
			         (const char *)m->consumer_tag.bytes);
			return true;
		}
	}
	return false;
}

static void test_cancel_on_delete(void)
{
	amqp_connection_state_t c = connect_cancel_notify();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	char q[256], tag[256], got[256] = "";
	name_of(q, sizeof(q), "cancel-notify");
	CU_ASSERT(qdecl(c, q));
	CU_ASSERT(consume_on(c, 1, q, NULL, true, false, tag, sizeof(tag)));
	CU_ASSERT_EQUAL(strncmp(tag, "amq.ctag-", 9), 0);
	amqp_channel_open(c, 2);
	CU_ASSERT(rpc_ok(c));
	amqp_queue_delete(c, 2, amqp_cstring_bytes(q), 0, 0);
	CU_ASSERT(rpc_ok(c));

	/* amqp_consume_message sees a non-delivery method ... */
	amqp_envelope_t env;
	struct timeval tv = {5, 0};
	amqp_rpc_reply_t r = amqp_consume_message(c, &env, &tv, 0);
	CU_ASSERT_EQUAL(r.reply_type, AMQP_RESPONSE_LIBRARY_EXCEPTION);
	CU_ASSERT_EQUAL(r.library_error, AMQP_STATUS_UNEXPECTED_STATE);
	/* ... which is the server's basic.cancel for our consumer */
	CU_ASSERT(wait_server_cancel(c, 1, 5000, got, sizeof(got)));
	CU_ASSERT_STRING_EQUAL(got, tag);
	/* the channel stays open and usable */
	CU_ASSERT(qdecl(c, q));
	CU_ASSERT(consume_on(c, 1, q, "again", true, false, NULL, 0));
	CU_ASSERT(cancel(c, 1, "again"));
	amqp_queue_delete(c, 2, amqp_cstring_bytes(q), 0, 0);
	CU_ASSERT(rpc_ok(c));
	broker_disconnect(c);
}

/* RabbitMQ answers queue.delete with delete-ok before it sends the
 * basic.cancel of the queue's consumers, also those on the deleting channel
 * (py-amqp's queue_delete() raises ConsumerCancelled otherwise). */
static void test_delete_ok_before_cancel(void)
{
	amqp_connection_state_t c = connect_cancel_notify();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	char q[256];
	name_of(q, sizeof(q), "delete-order");
	CU_ASSERT(qdecl(c, q));
	for (int i = 0; i < 3; i++)
		CU_ASSERT_EQUAL(publish(c, "", q, "m"), AMQP_STATUS_OK);
	CU_ASSERT(open_channel(c, 2));
	CU_ASSERT_PTR_NOT_NULL(amqp_basic_qos(c, 1, 0, 1, 0));
	CU_ASSERT_PTR_NOT_NULL(amqp_basic_qos(c, 2, 0, 1, 0));
	CU_ASSERT(consume_on(c, 1, q, "same", false, false, NULL, 0));
	CU_ASSERT(consume_on(c, 2, q, "other", false, false, NULL, 0));
	sleep_ms(200); /* both deliveries are out */
	amqp_queue_delete_t del = {.queue = amqp_cstring_bytes(q)};
	CU_ASSERT_EQUAL_FATAL(amqp_send_method(c, 1, AMQP_QUEUE_DELETE_METHOD, &del),
	                      AMQP_STATUS_OK);
	int ndeliver = 0, ncancel = 0;
	bool delete_ok = false, cancel_first = false;
	struct timeval tv = {5, 0};
	while (!(delete_ok && ncancel == 2)) {
		amqp_frame_t f;
		if (amqp_simple_wait_frame_noblock(c, &f, &tv) != AMQP_STATUS_OK)
			break;
		if (f.frame_type != AMQP_FRAME_METHOD)
			continue;
		if (f.payload.method.id == AMQP_BASIC_DELIVER_METHOD) {
			ndeliver++;
		} else if (f.payload.method.id == AMQP_QUEUE_DELETE_OK_METHOD && f.channel == 1) {
			amqp_queue_delete_ok_t *ok = f.payload.method.decoded;
			CU_ASSERT_EQUAL(ok->message_count, 1);
			delete_ok = true;
		} else if (f.payload.method.id == AMQP_BASIC_CANCEL_METHOD) {
			cancel_first |= !delete_ok;
			ncancel++;
		}
	}
	CU_ASSERT_EQUAL(ndeliver, 2);
	CU_ASSERT(delete_ok);
	CU_ASSERT_EQUAL(ncancel, 2);
	CU_ASSERT(!cancel_first);
	CU_ASSERT(qgone(c, q));
	broker_disconnect(c);
}

/* RabbitMQ sends that basic.cancel only to clients whose client-properties
 * capabilities say consumer_cancel_notify=true.  rabbitmq-c's amqp_login
 * does not (it advertises authentication_failure_close and
 * exchange_exchange_bindings only): such a consumer just ends silently. */
static void test_no_cancel_without_capability(void)
{
	amqp_connection_state_t c = conn_open();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	char q[256];
	name_of(q, sizeof(q), "cancel-silent");
	CU_ASSERT(qdecl(c, q));
	CU_ASSERT(consume_on(c, 1, q, "silent", true, false, NULL, 0));
	amqp_channel_open(c, 2);
	CU_ASSERT(rpc_ok(c));
	amqp_queue_delete(c, 2, amqp_cstring_bytes(q), 0, 0);
	CU_ASSERT(rpc_ok(c));
	char got[256];
	CU_ASSERT(!wait_server_cancel(c, 1, 500, got, sizeof(got)));
	/* channel 1 is fine, and the consumer is really gone: its tag can be
	 * used again */
	CU_ASSERT(qdecl(c, q));
	CU_ASSERT(consume_on(c, 1, q, "silent", true, false, NULL, 0));
	CU_ASSERT(cancel(c, 1, "silent"));
	qdelete(c, q);
	broker_disconnect(c);
}

void suite_queue(void)
{
	ITEST_SUITE("queue", ITEST(test_declare), ITEST(test_server_named),
	            ITEST(test_declare_counts), ITEST(test_redeclare_inequivalent),
	            ITEST(test_passive_missing), ITEST(test_reserved_prefix),
	            ITEST(test_argument_checks), ITEST(test_bind_unbind), ITEST(test_purge),
	            ITEST(test_delete), ITEST(test_exclusive), ITEST(test_auto_delete),
	            ITEST(test_cancel_on_delete), ITEST(test_delete_ok_before_cancel),
	            ITEST(test_no_cancel_without_capability));
}
