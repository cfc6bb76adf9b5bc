/*
 * test_exchange.c - exchanges, bindings and routing, checked against what
 * RabbitMQ 3.10 does: declare of every type, passive/durable/auto-delete/
 * internal, delete (if-unused), inequivalent redeclare, reserved "amq."
 * names, unknown types, the predeclared exchanges, exchange-to-exchange
 * bindings and routing through direct, fanout, topic (a table of patterns),
 * headers (x-match all/any/...), x-modulus-hash and x-random (RabbitMQ
 * 4.3's; 3.10 has them as the sharding and random-exchange plugins), also
 * across restarts of an amqpd of their own, and the default exchange.
 *
 * Every expected reply code and text is RabbitMQ's own.  Names are unique
 * per test and process ("itest.exchange.<what>.<pid>") and are deleted again.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include <amqp.h>
#include <amqp_framing.h>

#include "itest.h"
#include "itest_util.h"

/* ---- helpers ------------------------------------------------------------ */

static amqp_rpc_reply_t xdecl(amqp_connection_state_t c, amqp_channel_t ch, const char *name,
                              const char *type, bool passive, bool durable, bool auto_delete,
                              bool internal, amqp_table_t args)
{
	amqp_exchange_declare(c, ch, amqp_cstring_bytes(name), amqp_cstring_bytes(type), passive,
	                      durable, auto_delete, internal, args);
	return amqp_get_rpc_reply(c);
}

static bool xdecl_ok(amqp_connection_state_t c, const char *name, const char *type)
{
	return xdecl(c, 1, name, type, false, false, false, false, amqp_empty_table).reply_type ==
	       AMQP_RESPONSE_NORMAL;
}

static bool xexists(amqp_connection_state_t c, const char *name)
{
	return xdecl(c, 1, name, "direct", true, false, false, false, amqp_empty_table)
	           .reply_type == AMQP_RESPONSE_NORMAL;
}

/* True when x does not exist (passive declare closes channel 1 with 404;
 * the channel is reopened). */
static bool xgone(amqp_connection_state_t c, const char *name)
{
	if (xexists(c, name))
		return false;
	struct close_info ci = rpc_close(c, 1);
	if (ci.kind == CLOSE_CHANNEL)
		chan_reopen(c, 1);
	return ci.kind == CLOSE_CHANNEL && ci.code == 404;
}

static void xdelete(amqp_connection_state_t c, const char *name)
{
	amqp_exchange_delete(c, 1, amqp_cstring_bytes(name), 0);
	CU_ASSERT(rpc_ok(c));
}

static bool qbind(amqp_connection_state_t c, const char *q, const char *x, const char *key,
                  amqp_table_t args)
{
	amqp_queue_bind(c, 1, amqp_cstring_bytes(q), amqp_cstring_bytes(x), amqp_cstring_bytes(key),
	                args);
	return rpc_ok(c);
}

static bool qunbind(amqp_connection_state_t c, const char *q, const char *x, const char *key,
                    amqp_table_t args)
{
	amqp_queue_unbind(c, 1, amqp_cstring_bytes(q), amqp_cstring_bytes(x),
	                  amqp_cstring_bytes(key), args);
	return rpc_ok(c);
}

static int publish_h(amqp_connection_state_t c, const char *x, const char *key, const char *body,
                     const amqp_table_t *headers)
{
	amqp_basic_properties_t p;
	memset(&p, 0, sizeof(p));
	if (headers) {
		p._flags = AMQP_BASIC_HEADERS_FLAG;
		p.headers = *headers;
	}
	return publish_full(c, 1, x, key, false, &p, amqp_cstring_bytes(body));
}

/* ---- declare / delete ----------------------------------------------------- */

static void test_declare_each_type(void)
{
	static const char *const types[] = {"direct",  "fanout",         "topic",
	                                    "headers", "x-modulus-hash", "x-random"};
	amqp_connection_state_t c = conn_open();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		char x[256];
		name_of(x, sizeof(x), types[i]);
		CU_ASSERT(xdecl_ok(c, x, types[i]));
		/* passive declare of an existing exchange is fine */
		CU_ASSERT(xexists(c, x));
		/* declaring again with the same properties is fine too */
		CU_ASSERT(xdecl_ok(c, x, types[i]));
		xdelete(c, x);
	}
	broker_disconnect(c);
}

static void test_passive_missing(void)
{
	amqp_connection_state_t c = conn_open();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	char x[256], want[512];
	name_of(x, sizeof(x), "missing");
	xdecl(c, 1, x, "direct", true, false, false, false, amqp_empty_table);
	struct close_info ci = rpc_close(c, 1);
	snprintf(want, sizeof(want), "NOT_FOUND - no exchange '%s' in vhost '/'", x);
	CHECK_CLOSE(ci, CLOSE_CHANNEL, 404, want);
	/* the connection is still usable on a new channel */
	chan_reopen(c, 1);
	CU_ASSERT(xexists(c, "amq.direct"));
	broker_disconnect(c);
}

static void test_durable(void)
{
	amqp_connection_state_t c = conn_open();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	char x[256];
	name_of(x, sizeof(x), "durable");
	CU_ASSERT(
	    xdecl(c, 1, x, "fanout", false, true, false, false, amqp_empty_table).reply_type ==
	    AMQP_RESPONSE_NORMAL);
	CU_ASSERT(xexists(c, x));
	CU_ASSERT(
	    xdecl(c, 1, x, "fanout", false, true, false, false, amqp_empty_table).reply_type ==
	    AMQP_RESPONSE_NORMAL);
	xdelete(c, x);
	CU_ASSERT(xgone(c, x));
	broker_disconnect(c);
}

/* RabbitMQ deletes an auto-delete exchange when its last binding (as source)
 * is removed; one that never had a binding stays. */
static void test_auto_delete(void)
{
	amqp_connection_state_t c = conn_open();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	char x[256], q[256], d[256];
	name_of(x, sizeof(x), "autodel");
	name_of(q, sizeof(q), "autodel-q");
	name_of(d, sizeof(d), "autodel-dst");
	CU_ASSERT(
	    xdecl(c, 1, x, "direct", false, false, true, false, amqp_empty_table).reply_type ==
	    AMQP_RESPONSE_NORMAL);
	CU_ASSERT(qdecl(c, q));
	/* no binding yet: it stays */
	CU_ASSERT(xexists(c, x));
	CU_ASSERT(qbind(c, q, x, "k1", amqp_empty_table));
	CU_ASSERT(qbind(c, q, x, "k2", amqp_empty_table));
	CU_ASSERT(qunbind(c, q, x, "k1", amqp_empty_table));
	/* one binding left: still there */
	CU_ASSERT(xexists(c, x));
	CU_ASSERT(qunbind(c, q, x, "k2", amqp_empty_table));
	/* last binding gone: so is the exchange */
	CU_ASSERT(xgone(c, x));

	/* the same when the queue (and with it the binding) is deleted */
	CU_ASSERT(
	    xdecl(c, 1, x, "direct", false, false, true, false, amqp_empty_table).reply_type ==
	    AMQP_RESPONSE_NORMAL);
	CU_ASSERT(qbind(c, q, x, "k", amqp_empty_table));
	qdelete(c, q);
	CU_ASSERT(xgone(c, x));

	/* and when the last exchange-to-exchange binding goes */
	CU_ASSERT(
	    xdecl(c, 1, x, "fanout", false, false, true, false, amqp_empty_table).reply_type ==
	    AMQP_RESPONSE_NORMAL);
	CU_ASSERT(xdecl_ok(c, d, "fanout"));
	amqp_exchange_bind(c, 1, amqp_cstring_bytes(d), amqp_cstring_bytes(x),
	                   amqp_cstring_bytes(""), amqp_empty_table);
	CU_ASSERT(rpc_ok(c));
	amqp_exchange_unbind(c, 1, amqp_cstring_bytes(d), amqp_cstring_bytes(x),
	                     amqp_cstring_bytes(""), amqp_empty_table);
	CU_ASSERT(rpc_ok(c));
	CU_ASSERT(xgone(c, x));
	xdelete(c, d);
	broker_disconnect(c);
}

static void test_internal(void)
{
	amqp_connection_state_t c = conn_open();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	char x[256], src[256], q[256], want[512];
	struct got g;
	name_of(x, sizeof(x), "internal");
	name_of(src, sizeof(src), "internal-src");
	name_of(q, sizeof(q), "internal-q");
	CU_ASSERT(
	    xdecl(c, 1, x, "fanout", false, false, false, true, amqp_empty_table).reply_type ==
	    AMQP_RESPONSE_NORMAL);
	CU_ASSERT(xdecl_ok(c, src, "fanout"));
	CU_ASSERT(qdecl(c, q));
	CU_ASSERT(qbind(c, q, x, "", amqp_empty_table));
	/* an internal exchange can still be the destination of a binding */
	amqp_exchange_bind(c, 1, amqp_cstring_bytes(x), amqp_cstring_bytes(src),
	                   amqp_cstring_bytes(""), amqp_empty_table);
	CU_ASSERT(rpc_ok(c));
	CU_ASSERT_EQUAL(publish(c, src, "", "via-src"), AMQP_STATUS_OK);
	g = get1(c, q, true);
	CU_ASSERT_EQUAL(g.status, 1);
	CU_ASSERT_STRING_EQUAL(g.body, "via-src");

	/* but publishing to it directly closes the channel */
	CU_ASSERT_EQUAL(publish(c, x, "", "direct"), AMQP_STATUS_OK);
	struct close_info ci = wait_close(c, 1, 5000);
	snprintf(want, sizeof(want),
	         "ACCESS_REFUSED - cannot publish to internal exchange '%s' in vhost '/'", x);
	CHECK_CLOSE(ci, CLOSE_CHANNEL, 403, want);
	chan_reopen(c, 1);
	CU_ASSERT_EQUAL(drain(c, q), 0);
	qdelete(c, q);
	xdelete(c, src);
	xdelete(c, x);
	broker_disconnect(c);
}

static void test_delete(void)
{
	amqp_connection_state_t c = conn_open();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	char x[256], q[256], want[512];
	name_of(x, sizeof(x), "delete");
	name_of(q, sizeof(q), "delete-q");
	CU_ASSERT(xdecl_ok(c, x, "topic"));
	xdelete(c, x);
	CU_ASSERT(xgone(c, x));

	/* RabbitMQ: deleting an exchange that does not exist is delete-ok */
	amqp_exchange_delete(c, 1, amqp_cstring_bytes(x), 0);
	CU_ASSERT(rpc_ok(c));

	/* if-unused with a binding: 406, and the exchange stays */
	CU_ASSERT(xdecl_ok(c, x, "topic"));
	CU_ASSERT(qdecl(c, q));
	CU_ASSERT(qbind(c, q, x, "a.#", amqp_empty_table));
	amqp_exchange_delete(c, 1, amqp_cstring_bytes(x), 1);
	struct close_info ci = rpc_close(c, 1);
	snprintf(want, sizeof(want), "PRECONDITION_FAILED - exchange '%s' in vhost '/' in use", x);
	CHECK_CLOSE(ci, CLOSE_CHANNEL, 406, want);
	chan_reopen(c, 1);
	CU_ASSERT(xexists(c, x));

	/* if-unused is fine once the binding is gone */
	CU_ASSERT(qunbind(c, q, x, "a.#", amqp_empty_table));
	amqp_exchange_delete(c, 1, amqp_cstring_bytes(x), 1);
	CU_ASSERT(rpc_ok(c));
	CU_ASSERT(xgone(c, x));

	/* a plain delete removes the bindings with it */
	CU_ASSERT(xdecl_ok(c, x, "fanout"));
	CU_ASSERT(qbind(c, q, x, "", amqp_empty_table));
	xdelete(c, x);
	CU_ASSERT(xdecl_ok(c, x, "fanout"));
	CU_ASSERT_EQUAL(publish(c, x, "", "m"), AMQP_STATUS_OK);
	CU_ASSERT_EQUAL(drain(c, q), 0);
	xdelete(c, x);
	qdelete(c, q);
	broker_disconnect(c);
}

/* Redeclare x (a non-durable direct exchange) with one property changed:
 * 406 "inequivalent arg '<arg>' ...: <detail>". */
static void redeclare_case(amqp_connection_state_t c, const char *x, const char *type, bool durable,
                           bool auto_delete, bool internal, amqp_table_t args, const char *arg,
                           const char *detail, int line)
{
	char want[768];
	CU_ASSERT(xdecl_ok(c, x, "direct"));
	xdecl(c, 1, x, type, false, durable, auto_delete, internal, args);
	struct close_info ci = rpc_close(c, 1);
	snprintf(want, sizeof(want),
	         "PRECONDITION_FAILED - inequivalent arg '%s' for exchange '%s' in vhost '/': %s",
	         arg, x, detail);
	check_close_at(&ci, CLOSE_CHANNEL, 406, want, __FILE__, line);
	chan_reopen(c, 1);
	/* the original is untouched */
	CU_ASSERT(xdecl_ok(c, x, "direct"));
}

static void test_redeclare_inequivalent(void)
{
	amqp_connection_state_t c = conn_open();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	char x[256];
	name_of(x, sizeof(x), "ineq");

	redeclare_case(c, x, "fanout", false, false, false, amqp_empty_table, "type",
	               "received 'fanout' but current is 'direct'", __LINE__);
	redeclare_case(c, x, "direct", true, false, false, amqp_empty_table, "durable",
	               "received 'true' but current is 'false'", __LINE__);
	redeclare_case(c, x, "direct", false, true, false, amqp_empty_table, "auto_delete",
	               "received 'true' but current is 'false'", __LINE__);
	redeclare_case(c, x, "direct", false, false, true, amqp_empty_table, "internal",
	               "received 'true' but current is 'false'", __LINE__);

	amqp_table_entry_t ae = {amqp_cstring_bytes("alternate-exchange"),
	                         {AMQP_FIELD_KIND_UTF8, {.bytes = amqp_cstring_bytes("ae")}}};
	amqp_table_t args = {1, &ae};
	redeclare_case(c, x, "direct", false, false, false, args, "alternate-exchange",
	               "received the value 'ae' of type 'longstr' but "
	               "current is none",
	               __LINE__);
	xdelete(c, x);

	/* and the other way round: declared with the argument, redeclared without */
	CU_ASSERT(xdecl(c, 1, x, "direct", false, false, false, false, args).reply_type ==
	          AMQP_RESPONSE_NORMAL);
	CU_ASSERT(xdecl(c, 1, x, "direct", false, false, false, false, args).reply_type ==
	          AMQP_RESPONSE_NORMAL);
	xdecl(c, 1, x, "direct", false, false, false, false, amqp_empty_table);
	struct close_info ci = rpc_close(c, 1);
	char want[768];
	snprintf(want, sizeof(want),
	         "PRECONDITION_FAILED - inequivalent arg 'alternate-exchange' for exchange '%s' in "
	         "vhost '/': received none but current is the value 'ae' of type 'longstr'",
	         x);
	CHECK_CLOSE(ci, CLOSE_CHANNEL, 406, want);
	chan_reopen(c, 1);

	/* a passive declare ignores the other fields */
	CU_ASSERT(xdecl(c, 1, x, "fanout", true, true, true, true, amqp_empty_table).reply_type ==
	          AMQP_RESPONSE_NORMAL);
	xdelete(c, x);
	broker_disconnect(c);
}

static void test_reserved_names(void)
{
	amqp_connection_state_t c = conn_open();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	char x[256], want[512];
	snprintf(x, sizeof(x), "amq.itest.%d", (int)getpid());
	xdecl(c, 1, x, "direct", false, false, false, false, amqp_empty_table);
	struct close_info ci = rpc_close(c, 1);
	snprintf(want, sizeof(want),
	         "ACCESS_REFUSED - exchange name '%s' contains reserved prefix 'amq.*'", x);
	CHECK_CLOSE(ci, CLOSE_CHANNEL, 403, want);
	chan_reopen(c, 1);
	CU_ASSERT(xgone(c, x));

	/* RabbitMQ checks the prefix only when creating: an identical redeclare
	 * of a predeclared exchange is fine, a different one is inequivalent */
	CU_ASSERT(xdecl(c, 1, "amq.direct", "direct", false, true, false, false, amqp_empty_table)
	              .reply_type == AMQP_RESPONSE_NORMAL);
	xdecl(c, 1, "amq.direct", "fanout", false, true, false, false, amqp_empty_table);
	ci = rpc_close(c, 1);
	CHECK_CLOSE(ci, CLOSE_CHANNEL, 406,
	            "PRECONDITION_FAILED - inequivalent arg 'type' for exchange 'amq.direct' in "
	            "vhost '/': received 'fanout' but current is 'direct'");
	chan_reopen(c, 1);
	xdecl(c, 1, "amq.topic", "topic", false, false, false, false, amqp_empty_table);
	ci = rpc_close(c, 1);
	CHECK_CLOSE(ci, CLOSE_CHANNEL, 406,
	            "PRECONDITION_FAILED - inequivalent arg 'durable' for exchange 'amq.topic' in "
	            "vhost '/': received 'false' but current is 'true'");
	chan_reopen(c, 1);

	/* the default exchange cannot be declared, deleted or bound */
	xdecl(c, 1, "", "direct", false, true, false, false, amqp_empty_table);
	ci = rpc_close(c, 1);
	CHECK_CLOSE(ci, CLOSE_CHANNEL, 403,
	            "ACCESS_REFUSED - operation not permitted on the default exchange");
	chan_reopen(c, 1);
	amqp_exchange_delete(c, 1, amqp_cstring_bytes(""), 0);
	ci = rpc_close(c, 1);
	CHECK_CLOSE(ci, CLOSE_CHANNEL, 403,
	            "ACCESS_REFUSED - operation not permitted on the default exchange");
	chan_reopen(c, 1);

	/* the amq.* exchanges cannot be deleted */
	static const char *const sys[] = {"amq.direct", "amq.fanout", "amq.topic", "amq.headers",
	                                  "amq.match"};
	for (size_t i = 0; i < sizeof(sys) / sizeof(sys[0]); i++) {
		amqp_exchange_delete(c, 1, amqp_cstring_bytes(sys[i]), 0);
		ci = rpc_close(c, 1);
		snprintf(
		    want, sizeof(want),
		    "ACCESS_REFUSED - deletion of system exchange '%s' in vhost '/' not allowed",
		    sys[i]);
		CHECK_CLOSE(ci, CLOSE_CHANNEL, 403, want);
		chan_reopen(c, 1);
		CU_ASSERT(xexists(c, sys[i]));
	}
	broker_disconnect(c);
}

static void test_predeclared(void)
{
	static const struct {
		const char *name, *type;
	} pre[] = {{"amq.direct", "direct"},
	           {"amq.fanout", "fanout"},
	           {"amq.topic", "topic"},
	           {"amq.headers", "headers"},
	           {"amq.match", "headers"}};
	amqp_connection_state_t c = conn_open();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	for (size_t i = 0; i < sizeof(pre) / sizeof(pre[0]); i++) {
		amqp_rpc_reply_t r = xdecl(c, 1, pre[i].name, pre[i].type, true, true, false, false,
		                           amqp_empty_table);
		CU_ASSERT_EQUAL(r.reply_type, AMQP_RESPONSE_NORMAL);
		if (r.reply_type != AMQP_RESPONSE_NORMAL) {
			fprintf(stderr, "\n  passive declare of %s failed\n", pre[i].name);
			rpc_close(c, 1);
			chan_reopen(c, 1);
		}
	}

	/* The default exchange "" exists but may not be named in declare, even
	 * passively: RabbitMQ (and so amqpd) refuses with 403. */
	amqp_rpc_reply_t r = xdecl(c, 1, "", "direct", true, false, false, false, amqp_empty_table);
	CU_ASSERT_NOT_EQUAL(r.reply_type, AMQP_RESPONSE_NORMAL);
	struct close_info ci = rpc_close(c, 1);
	CHECK_CLOSE(ci, CLOSE_CHANNEL, 403,
	            "ACCESS_REFUSED - operation not permitted on the default exchange");
	chan_reopen(c, 1);

	/* the predeclared exchanges route: amq.direct, amq.fanout, amq.topic */
	char q[256];
	struct got g;
	name_of(q, sizeof(q), "pre-q");
	CU_ASSERT(qdecl(c, q));
	CU_ASSERT(qbind(c, q, "amq.direct", q, amqp_empty_table));
	CU_ASSERT(qbind(c, q, "amq.fanout", "", amqp_empty_table));
	CU_ASSERT(qbind(c, q, "amq.topic", "itest.#", amqp_empty_table));
	CU_ASSERT_EQUAL(publish(c, "amq.direct", q, "d"), AMQP_STATUS_OK);
	g = get1(c, q, true);
	CU_ASSERT_EQUAL(g.status, 1);
	CU_ASSERT_STRING_EQUAL(g.body, "d");
	CU_ASSERT_EQUAL(publish(c, "amq.fanout", "whatever", "f"), AMQP_STATUS_OK);
	g = get1(c, q, true);
	CU_ASSERT_EQUAL(g.status, 1);
	CU_ASSERT_STRING_EQUAL(g.body, "f");
	CU_ASSERT_EQUAL(publish(c, "amq.topic", "itest.a.b", "t"), AMQP_STATUS_OK);
	g = get1(c, q, true);
	CU_ASSERT_EQUAL(g.status, 1);
	CU_ASSERT_STRING_EQUAL(g.body, "t");
	CU_ASSERT_EQUAL(get1(c, q, true).status, 0);
	qdelete(c, q);
	broker_disconnect(c);
}

static void test_unknown_type(void)
{
	amqp_connection_state_t c = conn_open();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	char x[256];
	name_of(x, sizeof(x), "badtype");
	xdecl(c, 1, x, "x-nope", false, false, false, false, amqp_empty_table);
	struct close_info ci = rpc_close(c, 1);
	CHECK_CLOSE(ci, CLOSE_CONNECTION, 503, "COMMAND_INVALID - unknown exchange type 'x-nope'");
	amqp_destroy_connection(c);

	/* nothing was created */
	c = conn_open();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT(xgone(c, x));
	broker_disconnect(c);
}

/* Exchange names are shortstrs: 255 bytes is the longest that can be sent.
 * rabbitmq-c refuses to encode a longer one (nothing reaches the broker);
 * a raw-frame test of that belongs to the badinput suite. */
static void test_long_names(void)
{
	amqp_connection_state_t c = conn_open();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	char x[300];
	int n = snprintf(x, sizeof(x), "itest.x.long.%d.", (int)getpid());
	memset(x + n, 'n', 255 - (size_t)n);
	x[255] = '\0';
	CU_ASSERT(xdecl_ok(c, x, "direct"));
	CU_ASSERT(xexists(c, x));
	xdelete(c, x);

	x[255] = 'n';
	x[256] = '\0';
	amqp_rpc_reply_t r = xdecl(c, 1, x, "direct", false, false, false, false, amqp_empty_table);
	CU_ASSERT_EQUAL(r.reply_type, AMQP_RESPONSE_LIBRARY_EXCEPTION);
	if (trace_on())
		fprintf(stderr, "\n  [exchange] 256-byte name: rabbitmq-c says %d (%s)\n",
		        r.library_error, amqp_error_string2(r.library_error));
	/* the connection was not harmed */
	x[255] = '\0';
	CU_ASSERT(xdecl_ok(c, x, "direct"));
	xdelete(c, x);
	broker_disconnect(c);
}

/* ---- exchange-to-exchange bindings ------------------------------------- */

static void test_exchange_bind(void)
{
	amqp_connection_state_t c = conn_open();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	char src[256], dst[256], q[256], missing[256], want[512];
	struct got g;
	name_of(src, sizeof(src), "e2e-src");
	name_of(dst, sizeof(dst), "e2e-dst");
	name_of(q, sizeof(q), "e2e-q");
	name_of(missing, sizeof(missing), "e2e-missing");
	CU_ASSERT(xdecl_ok(c, src, "topic"));
	CU_ASSERT(xdecl_ok(c, dst, "direct"));
	CU_ASSERT(qdecl(c, q));
	CU_ASSERT(qbind(c, q, dst, "a.b", amqp_empty_table));

	amqp_exchange_bind(c, 1, amqp_cstring_bytes(dst), amqp_cstring_bytes(src),
	                   amqp_cstring_bytes("a.*"), amqp_empty_table);
	CU_ASSERT(rpc_ok(c));
	/* routed by the source's rules, then by the destination's */
	CU_ASSERT_EQUAL(publish(c, src, "a.b", "hit"), AMQP_STATUS_OK);
	CU_ASSERT_EQUAL(publish(c, src, "a.c", "miss-dst"), AMQP_STATUS_OK);
	CU_ASSERT_EQUAL(publish(c, src, "b.b", "miss-src"), AMQP_STATUS_OK);
	g = get1(c, q, true);
	CU_ASSERT_EQUAL(g.status, 1);
	CU_ASSERT_STRING_EQUAL(g.body, "hit");
	CU_ASSERT_EQUAL(get1(c, q, true).status, 0);

	/* a second route to the same queue still delivers once */
	CU_ASSERT(qbind(c, q, src, "#", amqp_empty_table));
	CU_ASSERT_EQUAL(publish(c, src, "a.b", "once"), AMQP_STATUS_OK);
	CU_ASSERT_EQUAL(drain(c, q), 1);
	CU_ASSERT(qunbind(c, q, src, "#", amqp_empty_table));

	/* binding twice is idempotent; one unbind removes it */
	amqp_exchange_bind(c, 1, amqp_cstring_bytes(dst), amqp_cstring_bytes(src),
	                   amqp_cstring_bytes("a.*"), amqp_empty_table);
	CU_ASSERT(rpc_ok(c));
	amqp_exchange_unbind(c, 1, amqp_cstring_bytes(dst), amqp_cstring_bytes(src),
	                     amqp_cstring_bytes("a.*"), amqp_empty_table);
	CU_ASSERT(rpc_ok(c));
	CU_ASSERT_EQUAL(publish(c, src, "a.b", "unbound"), AMQP_STATUS_OK);
	CU_ASSERT_EQUAL(get1(c, q, true).status, 0);

	/* cycles are allowed and do not loop */
	amqp_exchange_bind(c, 1, amqp_cstring_bytes(dst), amqp_cstring_bytes(src),
	                   amqp_cstring_bytes("#"), amqp_empty_table);
	CU_ASSERT(rpc_ok(c));
	amqp_exchange_bind(c, 1, amqp_cstring_bytes(src), amqp_cstring_bytes(dst),
	                   amqp_cstring_bytes("a.b"), amqp_empty_table);
	CU_ASSERT(rpc_ok(c));
	CU_ASSERT_EQUAL(publish(c, src, "a.b", "cycle"), AMQP_STATUS_OK);
	g = get1(c, q, true);
	CU_ASSERT_EQUAL(g.status, 1);
	CU_ASSERT_STRING_EQUAL(g.body, "cycle");
	CU_ASSERT_EQUAL(get1(c, q, true).status, 0);

	/* binding to or from a missing exchange: 404 */
	amqp_exchange_bind(c, 1, amqp_cstring_bytes(dst), amqp_cstring_bytes(missing),
	                   amqp_cstring_bytes(""), amqp_empty_table);
	struct close_info ci = rpc_close(c, 1);
	snprintf(want, sizeof(want), "NOT_FOUND - no exchange '%s' in vhost '/'", missing);
	CHECK_CLOSE(ci, CLOSE_CHANNEL, 404, want);
	chan_reopen(c, 1);
	amqp_exchange_bind(c, 1, amqp_cstring_bytes(missing), amqp_cstring_bytes(src),
	                   amqp_cstring_bytes(""), amqp_empty_table);
	ci = rpc_close(c, 1);
	CHECK_CLOSE(ci, CLOSE_CHANNEL, 404, want);
	chan_reopen(c, 1);

	qdelete(c, q);
	xdelete(c, src);
	xdelete(c, dst);
	broker_disconnect(c);
}

/* ---- routing -------------------------------------------------------------- */

static void test_route_direct(void)
{
	amqp_connection_state_t c = conn_open();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	char x[256], q1[256], q2[256];
	struct got g;
	name_of(x, sizeof(x), "rdirect");
	name_of(q1, sizeof(q1), "rdirect-q1");
	name_of(q2, sizeof(q2), "rdirect-q2");
	CU_ASSERT(xdecl_ok(c, x, "direct"));
	CU_ASSERT(qdecl(c, q1));
	CU_ASSERT(qdecl(c, q2));
	CU_ASSERT(qbind(c, q1, x, "red", amqp_empty_table));
	CU_ASSERT(qbind(c, q2, x, "red", amqp_empty_table));
	CU_ASSERT(qbind(c, q2, x, "green", amqp_empty_table));
	CU_ASSERT(qbind(c, q2, x, "", amqp_empty_table));

	CU_ASSERT_EQUAL(publish(c, x, "red", "r"), AMQP_STATUS_OK);
	CU_ASSERT_EQUAL(publish(c, x, "green", "g"), AMQP_STATUS_OK);
	CU_ASSERT_EQUAL(publish(c, x, "Red", "R"), AMQP_STATUS_OK);   /* case matters */
	CU_ASSERT_EQUAL(publish(c, x, "red.", "r."), AMQP_STATUS_OK); /* exact only */
	CU_ASSERT_EQUAL(publish(c, x, "", "e"), AMQP_STATUS_OK);
	g = get1(c, q1, true);
	CU_ASSERT_EQUAL(g.status, 1);
	CU_ASSERT_STRING_EQUAL(g.body, "r");
	CU_ASSERT_EQUAL(get1(c, q1, true).status, 0);
	g = get1(c, q2, true);
	CU_ASSERT_EQUAL(g.status, 1);
	CU_ASSERT_STRING_EQUAL(g.body, "r");
	g = get1(c, q2, true);
	CU_ASSERT_EQUAL(g.status, 1);
	CU_ASSERT_STRING_EQUAL(g.body, "g");
	g = get1(c, q2, true);
	CU_ASSERT_EQUAL(g.status, 1);
	CU_ASSERT_STRING_EQUAL(g.body, "e");
	CU_ASSERT_EQUAL(get1(c, q2, true).status, 0);

	/* a binding with the same key twice is one binding */
	CU_ASSERT(qbind(c, q1, x, "red", amqp_empty_table));
	CU_ASSERT_EQUAL(publish(c, x, "red", "r"), AMQP_STATUS_OK);
	CU_ASSERT_EQUAL(drain(c, q1), 1);
	CU_ASSERT_EQUAL(drain(c, q2), 1);

	/* unbind stops the routing; unbinding again is fine (RabbitMQ) */
	CU_ASSERT(qunbind(c, q1, x, "red", amqp_empty_table));
	CU_ASSERT(qunbind(c, q1, x, "red", amqp_empty_table));
	CU_ASSERT_EQUAL(publish(c, x, "red", "r"), AMQP_STATUS_OK);
	CU_ASSERT_EQUAL(drain(c, q1), 0);
	CU_ASSERT_EQUAL(drain(c, q2), 1);

	qdelete(c, q1);
	qdelete(c, q2);
	xdelete(c, x);
	broker_disconnect(c);
}

static void test_route_fanout(void)
{
	amqp_connection_state_t c = conn_open();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	char x[256], q[3][256];
	struct got g;
	name_of(x, sizeof(x), "rfanout");
	CU_ASSERT(xdecl_ok(c, x, "fanout"));
	for (int i = 0; i < 3; i++) {
		char w[32];
		snprintf(w, sizeof(w), "rfanout-q%d", i);
		name_of(q[i], sizeof(q[i]), w);
		CU_ASSERT(qdecl(c, q[i]));
		/* the binding key is ignored */
		CU_ASSERT(qbind(c, q[i], x, i == 0 ? "" : w, amqp_empty_table));
	}
	CU_ASSERT_EQUAL(publish(c, x, "any.key", "all"), AMQP_STATUS_OK);
	for (int i = 0; i < 3; i++) {
		g = get1(c, q[i], true);
		CU_ASSERT_EQUAL(g.status, 1);
		CU_ASSERT_STRING_EQUAL(g.body, "all");
		CU_ASSERT_EQUAL(get1(c, q[i], true).status, 0);
	}
	/* two bindings (different keys) of one queue: delivered once */
	CU_ASSERT(qbind(c, q[0], x, "second", amqp_empty_table));
	CU_ASSERT_EQUAL(publish(c, x, "", "once"), AMQP_STATUS_OK);
	CU_ASSERT_EQUAL(drain(c, q[0]), 1);
	for (int i = 0; i < 3; i++)
		qdelete(c, q[i]);
	xdelete(c, x);
	broker_disconnect(c);
}

static void test_route_topic(void)
{
	static const struct {
		const char *pattern, *key;
		bool match;
	} cases[] = {
	    {"*", "a", true},
	    {"*", "a.b", false},
	    {"*", "", false},
	    {"#", "", true},
	    {"#", "a", true},
	    {"#", "a.b.c", true},
	    {"a.*.c", "a.b.c", true},
	    {"a.*.c", "a.c", false},
	    {"a.*.c", "a.b.b.c", false},
	    {"a.*.c", "a.b.c.d", false},
	    {"a.#", "a", true},
	    {"a.#", "a.b", true},
	    {"a.#", "a.b.c", true},
	    {"a.#", "b.a", false},
	    {"a.#", "ab", false},
	    {"#.b", "b", true},
	    {"#.b", "a.b", true},
	    {"#.b", "a.c.b", true},
	    {"#.b", "b.c", false},
	    {"a.#.b", "a.b", true},
	    {"a.#.b", "a.x.b", true},
	    {"a.#.b", "a.x.y.b", true},
	    {"a.#.b", "a.b.c", false},
	    {"a.#.b", "b.a.b", false},
	    {"", "", true},
	    {"", "a", false},
	    {"", ".", false},
	    {"a.*.b", "a..b", true},
	    {"a..b", "a..b", true},
	    {"a..b", "a.x.b", false},
	    {"a.b", "a.b", true},
	    {"a.b", "a.B", false},
	    {"a.b", "a.b.c", false},
	    {"*.*", "a.b", true},
	    {"*.*", "a", false},
	    {"*.*", ".", true},
	    {"#.#", "", true},
	    {"#.#", "a.b", true},
	    {"*.#", "", false},
	    {"*.#", "a", true},
	    {"#.*", "a.b.c", true},
	    {"#.*", "", false},
	    {"a.*.#", "a", false},
	    {"a.*.#", "a.b", true},
	    {"a.*.#", "a.b.c.d", true},
	    {"*.b.#", "a.b", true},
	    {"*.b.#", "b", false},
	    {"#.a.#", "x.a.y", true},
	    {"#.a.#", "a", true},
	    {"#.a.#", "b", false},
	    {"a*", "ab", false},
	    {"a*", "a*", true},
	    {"a#", "a#", true},
	    {"a#", "a.b", false},
	};
	amqp_connection_state_t c = conn_open();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	char x[256], q[256];
	name_of(x, sizeof(x), "rtopic");
	name_of(q, sizeof(q), "rtopic-q");
	CU_ASSERT(xdecl_ok(c, x, "topic"));
	CU_ASSERT(qdecl(c, q));
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		CU_ASSERT(qbind(c, q, x, cases[i].pattern, amqp_empty_table));
		CU_ASSERT_EQUAL(publish(c, x, cases[i].key, "t"), AMQP_STATUS_OK);
		int got = drain(c, q);
		if (got != (cases[i].match ? 1 : 0)) {
			char msg[256];
			snprintf(msg, sizeof(msg),
			         "topic pattern \"%s\" key \"%s\": want %d got %d",
			         cases[i].pattern, cases[i].key, cases[i].match ? 1 : 0, got);
			CU_FAIL(msg);
			fprintf(stderr, "\n  %s\n", msg);
		}
		CU_ASSERT(qunbind(c, q, x, cases[i].pattern, amqp_empty_table));
	}

	/* several matching patterns on one queue: delivered once */
	CU_ASSERT(qbind(c, q, x, "a.*", amqp_empty_table));
	CU_ASSERT(qbind(c, q, x, "#", amqp_empty_table));
	CU_ASSERT(qbind(c, q, x, "a.b", amqp_empty_table));
	CU_ASSERT_EQUAL(publish(c, x, "a.b", "once"), AMQP_STATUS_OK);
	CU_ASSERT_EQUAL(drain(c, q), 1);
	qdelete(c, q);
	xdelete(c, x);
	broker_disconnect(c);
}

/* ---- headers exchange ----------------------------------------------------- */

#define HSTR(k, v)                                                                                 \
	{                                                                                          \
		amqp_cstring_bytes(k),                                                             \
		{                                                                                  \
			AMQP_FIELD_KIND_UTF8,                                                      \
			{                                                                          \
				.bytes = amqp_cstring_bytes(v)                                     \
			}                                                                          \
		}                                                                                  \
	}
#define HINT(k, v)                                                                                 \
	{                                                                                          \
		amqp_cstring_bytes(k),                                                             \
		{                                                                                  \
			AMQP_FIELD_KIND_I32,                                                       \
			{                                                                          \
				.i32 = (v)                                                         \
			}                                                                          \
		}                                                                                  \
	}

struct hcase {
	const char *what;
	int n;
	amqp_table_entry_t h[4]; /* message headers; n < 0: no headers property */
	bool match;
};

static void run_hcases(amqp_connection_state_t c, const char *x, const char *q, const char *xmatch,
                       amqp_table_entry_t *bind_e, int bind_n, const struct hcase *cases,
                       size_t ncases)
{
	amqp_table_entry_t be[8];
	be[0] = (amqp_table_entry_t)HSTR("x-match", xmatch);
	for (int i = 0; i < bind_n; i++)
		be[i + 1] = bind_e[i];
	amqp_table_t bargs = {bind_n + 1, be};
	CU_ASSERT(qbind(c, q, x, "", bargs));
	for (size_t i = 0; i < ncases; i++) {
		amqp_table_t h = {cases[i].n < 0 ? 0 : cases[i].n,
		                  (amqp_table_entry_t *)cases[i].h};
		CU_ASSERT_EQUAL(publish_h(c, x, "ignored", "h", cases[i].n < 0 ? NULL : &h),
		                AMQP_STATUS_OK);
		int got = drain(c, q);
		if (got != (cases[i].match ? 1 : 0)) {
			char msg[256];
			snprintf(msg, sizeof(msg), "headers x-match=%s case \"%s\": want %d got %d",
			         xmatch, cases[i].what, cases[i].match ? 1 : 0, got);
			CU_FAIL(msg);
			fprintf(stderr, "\n  %s\n", msg);
		}
	}
	CU_ASSERT(qunbind(c, q, x, "", bargs));
}

static void test_route_headers(void)
{
	amqp_connection_state_t c = conn_open();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	char x[256], q[256];
	name_of(x, sizeof(x), "rheaders");
	name_of(q, sizeof(q), "rheaders-q");
	CU_ASSERT(xdecl_ok(c, x, "headers"));
	CU_ASSERT(qdecl(c, q));

	amqp_table_entry_t bind_e[] = {HINT("a", 1), HSTR("b", "x")};
	const struct hcase all[] = {
	    {"both", 2, {HINT("a", 1), HSTR("b", "x")}, true},
	    {"both, other order", 2, {HSTR("b", "x"), HINT("a", 1)}, true},
	    {"both plus extra", 3, {HINT("a", 1), HSTR("c", "z"), HSTR("b", "x")}, true},
	    {"only a", 1, {HINT("a", 1)}, false},
	    {"a wrong", 2, {HINT("a", 2), HSTR("b", "x")}, false},
	    {"b wrong", 2, {HINT("a", 1), HSTR("b", "y")}, false},
	    {"empty table", 0, {{{0, NULL}, {0, {0}}}}, false},
	    {"no headers", -1, {{{0, NULL}, {0, {0}}}}, false},
	};
	run_hcases(c, x, q, "all", bind_e, 2, all, sizeof(all) / sizeof(all[0]));

	const struct hcase any[] = {
	    {"both", 2, {HINT("a", 1), HSTR("b", "x")}, true},
	    {"only a", 1, {HINT("a", 1)}, true},
	    {"only b", 1, {HSTR("b", "x")}, true},
	    {"a wrong, b right", 2, {HINT("a", 2), HSTR("b", "x")}, true},
	    {"both wrong", 2, {HINT("a", 2), HSTR("b", "y")}, false},
	    {"unrelated", 1, {HSTR("c", "x")}, false},
	    {"empty table", 0, {{{0, NULL}, {0, {0}}}}, false},
	    {"no headers", -1, {{{0, NULL}, {0, {0}}}}, false},
	};
	run_hcases(c, x, q, "any", bind_e, 2, any, sizeof(any) / sizeof(any[0]));

	/* a binding with only x-match all matches everything */
	const struct hcase all_empty[] = {
	    {"some header", 1, {HSTR("c", "x")}, true},
	    {"no headers", -1, {{{0, NULL}, {0, {0}}}}, true},
	};
	run_hcases(c, x, q, "all", NULL, 0, all_empty, 2);

	/* binding arguments starting "x-" are not matched by all / any */
	amqp_table_entry_t bind_x[] = {HSTR("x-tag", "t"), HINT("a", 1)};
	const struct hcase all_x[] = {
	    {"a only", 1, {HINT("a", 1)}, true},
	    {"a and x-tag", 2, {HINT("a", 1), HSTR("x-tag", "t")}, true},
	    {"x-tag only", 1, {HSTR("x-tag", "t")}, false},
	};
	run_hcases(c, x, q, "all", bind_x, 2, all_x, 3);
	const struct hcase any_x[] = {
	    {"x-tag only", 1, {HSTR("x-tag", "t")}, false},
	    {"a only", 1, {HINT("a", 1)}, true},
	};
	run_hcases(c, x, q, "any", bind_x, 2, any_x, 2);

	/* RabbitMQ 3.10 also has all-with-x / any-with-x, which do match them */
	const struct hcase allwx[] = {
	    {"a only", 1, {HINT("a", 1)}, false},
	    {"a and x-tag", 2, {HINT("a", 1), HSTR("x-tag", "t")}, true},
	};
	run_hcases(c, x, q, "all-with-x", bind_x, 2, allwx, 2);
	const struct hcase anywx[] = {
	    {"x-tag only", 1, {HSTR("x-tag", "t")}, true},
	    {"a only", 1, {HINT("a", 1)}, true},
	    {"neither", 1, {HSTR("x-other", "t")}, false},
	};
	run_hcases(c, x, q, "any-with-x", bind_x, 2, anywx, 3);

	/* an invalid x-match value is refused at bind time */
	amqp_table_entry_t bad[] = {HSTR("x-match", "some"), HINT("a", 1)};
	amqp_table_t bad_args = {2, bad};
	amqp_queue_bind(c, 1, amqp_cstring_bytes(q), amqp_cstring_bytes(x), amqp_cstring_bytes(""),
	                bad_args);
	struct close_info ci = rpc_close(c, 1);
	CHECK_CLOSE(ci, CLOSE_CHANNEL, 406,
	            "PRECONDITION_FAILED - Invalid x-match field value <<\"some\">>; expected all, "
	            "any, all-with-x, or any-with-x");
	chan_reopen(c, 1);

	/* the routing key plays no part */
	amqp_table_entry_t hk[] = {HINT("a", 1)};
	amqp_table_t hkt = {1, hk};
	amqp_table_entry_t bk[] = {HSTR("x-match", "all"), HINT("a", 1)};
	amqp_table_t bkt = {2, bk};
	CU_ASSERT(qbind(c, q, x, "some-key", bkt));
	CU_ASSERT_EQUAL(publish_h(c, x, "other-key", "h", &hkt), AMQP_STATUS_OK);
	CU_ASSERT_EQUAL(drain(c, q), 1);

	qdelete(c, q);
	xdelete(c, x);
	broker_disconnect(c);
}

/* ---- x-modulus-hash and x-random ------------------------------------------ */

enum { XT_MSGS = 300, XT_KEYS = 40, XT_Q = 3 };

/* Message i's routing key: 40 distinct keys, each used 7 or 8 times. */
static void xt_key(char *buf, size_t n, int i)
{
	snprintf(buf, n, "order.%d.eu", i % XT_KEYS);
}

/* Publish XT_MSGS messages to x (body: the message's number), then fetch
 * everything from q[0..XT_Q): where[i] is the queue message i landed in and
 * per_q[k] how many queue k got.  True when every message landed in
 * exactly one queue (and nothing else came). */
static bool xt_publish_collect(amqp_connection_state_t c, const char *x, char q[][256],
                               int where[XT_MSGS], int per_q[XT_Q])
{
	char key[64], body[16];
	bool ok = true;
	for (int i = 0; i < XT_MSGS; i++) {
		xt_key(key, sizeof(key), i);
		snprintf(body, sizeof(body), "%d", i);
		if (publish(c, x, key, body) != AMQP_STATUS_OK)
			return false;
		where[i] = -1;
	}
	/* basic.get on the publishing channel comes after the publishes. */
	for (int k = 0; k < XT_Q; k++) {
		per_q[k] = 0;
		struct got g;
		while ((g = get1(c, q[k], true)).status == 1) {
			int i = atoi(g.body);
			if (i < 0 || i >= XT_MSGS || where[i] != -1) {
				fprintf(stderr, "  %s: message '%s' unexpected in queue %d\n", x,
				        g.body, k);
				ok = false;
			} else {
				where[i] = k;
			}
			per_q[k]++;
			amqp_maybe_release_buffers(c);
		}
		if (g.status != 0)
			return false;
	}
	for (int i = 0; i < XT_MSGS; i++) {
		if (where[i] < 0) {
			fprintf(stderr, "  %s: message %d went nowhere\n", x, i);
			ok = false;
		}
	}
	return ok;
}

/* Equal routing keys went to one queue; every queue had some keys. */
static bool xt_by_key(const int where[XT_MSGS], const int per_q[XT_Q])
{
	for (int i = XT_KEYS; i < XT_MSGS; i++) {
		if (where[i] != where[i % XT_KEYS])
			return false;
	}
	for (int k = 0; k < XT_Q; k++) {
		if (per_q[k] == 0)
			return false;
	}
	return true;
}

/* Spread at random: every queue got some (all 300 in two of three queues:
 * p < 1e-52) and some key went to two queues (p of none < 1e-100). */
static bool xt_random(const int where[XT_MSGS], const int per_q[XT_Q])
{
	bool split = false;
	for (int i = XT_KEYS; i < XT_MSGS && !split; i++)
		split = where[i] != where[i % XT_KEYS];
	for (int k = 0; k < XT_Q; k++) {
		if (per_q[k] == 0)
			return false;
	}
	return split;
}

static void xt_queues(amqp_connection_state_t c, const char *what, char q[][256], bool durable)
{
	for (int k = 0; k < XT_Q; k++) {
		char w[64];
		snprintf(w, sizeof(w), "%s-q%d", what, k);
		name_of(q[k], sizeof(q[k]), w);
		CU_ASSERT_PTR_NOT_NULL(
		    qdecl_full(c, 1, q[k], false, durable, false, false, amqp_empty_table));
	}
}

static void test_route_modulus_hash(void)
{
	amqp_connection_state_t c = conn_open();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	char x[256], q[XT_Q][256];
	int where[XT_MSGS], per_q[XT_Q];
	name_of(x, sizeof(x), "rmodhash");
	CU_ASSERT(xdecl_ok(c, x, "x-modulus-hash"));
	xt_queues(c, "rmodhash", q, false);
	/* Nothing bound: routed nowhere (and no error). */
	CU_ASSERT_EQUAL(publish(c, x, "k", "lost"), AMQP_STATUS_OK);
	CU_ASSERT(xexists(c, x));
	/* Binding keys are ignored; q0 is bound twice and counts once. */
	CU_ASSERT(qbind(c, q[0], x, "", amqp_empty_table));
	CU_ASSERT(qbind(c, q[1], x, "order.1.eu", amqp_empty_table));
	CU_ASSERT(qbind(c, q[2], x, "#", amqp_empty_table));
	CU_ASSERT(qbind(c, q[0], x, "second", amqp_empty_table));
	CU_ASSERT(xt_publish_collect(c, x, q, where, per_q));
	fprintf(stderr, "  x-modulus-hash: %d %d %d\n", per_q[0], per_q[1], per_q[2]);
	CU_ASSERT(xt_by_key(where, per_q));
	/* The same bindings again: the same queue for every key. */
	int again[XT_MSGS];
	CU_ASSERT(xt_publish_collect(c, x, q, again, per_q));
	CU_ASSERT(memcmp(again, where, sizeof(where)) == 0);
	/* Unbinding q2 leaves two queues, equal keys still together. */
	CU_ASSERT(qunbind(c, q[2], x, "#", amqp_empty_table));
	CU_ASSERT(xt_publish_collect(c, x, q, again, per_q));
	CU_ASSERT_EQUAL(per_q[2], 0);
	for (int i = XT_KEYS; i < XT_MSGS; i++)
		CU_ASSERT_EQUAL(again[i], again[i % XT_KEYS]);
	for (int k = 0; k < XT_Q; k++)
		qdelete(c, q[k]);
	xdelete(c, x);
	broker_disconnect(c);
}

static void test_route_random(void)
{
	amqp_connection_state_t c = conn_open();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	char x[256], q[XT_Q][256];
	int where[XT_MSGS], per_q[XT_Q];
	name_of(x, sizeof(x), "rrandom");
	CU_ASSERT(xdecl_ok(c, x, "x-random"));
	xt_queues(c, "rrandom", q, false);
	CU_ASSERT_EQUAL(publish(c, x, "k", "lost"), AMQP_STATUS_OK);
	CU_ASSERT(xexists(c, x));
	CU_ASSERT(qbind(c, q[0], x, "", amqp_empty_table));
	CU_ASSERT(qbind(c, q[1], x, "ignored", amqp_empty_table));
	CU_ASSERT(qbind(c, q[2], x, "order.1.eu", amqp_empty_table));
	CU_ASSERT(qbind(c, q[0], x, "second", amqp_empty_table));
	CU_ASSERT(xt_publish_collect(c, x, q, where, per_q));
	fprintf(stderr, "  x-random: %d %d %d\n", per_q[0], per_q[1], per_q[2]);
	CU_ASSERT(xt_random(where, per_q));
	for (int k = 0; k < XT_Q; k++)
		qdelete(c, q[k]);
	xdelete(c, x);
	broker_disconnect(c);
}

/* Durable exchanges of both types come back after restarts of their own
 * amqpd, with their bindings, and route as before: x-modulus-hash sends
 * every key to the queue it went to before (its queues are ordered by
 * binding, and q0's older binding is removed first, so a restart that
 * replayed bindings in any other order would move keys). */
static void test_xtypes_restart(void)
{
	if (broker_external())
		return; /* restarts need our own amqpd */
	char data[700];
	snprintf(data, sizeof(data), "%s/xtypes-restart-%d.data", itest_scratch_dir(),
	         (int)getpid());
	const char *extra[] = {"--data-dir", data, NULL};
	struct broker b;
	CU_ASSERT_FATAL(broker_start(&b, extra) == 0);
	amqp_connection_state_t c = broker_connect(&b);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	char mx[256], rx[256], mq[XT_Q][256], rq[XT_Q][256];
	name_of(mx, sizeof(mx), "dmodhash");
	name_of(rx, sizeof(rx), "drandom");
	CU_ASSERT(xdecl(c, 1, mx, "x-modulus-hash", false, true, false, false, amqp_empty_table)
	              .reply_type == AMQP_RESPONSE_NORMAL);
	CU_ASSERT(
	    xdecl(c, 1, rx, "x-random", false, true, false, false, amqp_empty_table).reply_type ==
	    AMQP_RESPONSE_NORMAL);
	xt_queues(c, "dmodhash", mq, true);
	xt_queues(c, "drandom", rq, true);
	/* Modulus-hash order: q1, q2, then q0 (by its younger binding). */
	CU_ASSERT(qbind(c, mq[0], mx, "a", amqp_empty_table));
	CU_ASSERT(qbind(c, mq[1], mx, "", amqp_empty_table));
	CU_ASSERT(qbind(c, mq[2], mx, "x.y", amqp_empty_table));
	CU_ASSERT(qbind(c, mq[0], mx, "b", amqp_empty_table));
	CU_ASSERT(qunbind(c, mq[0], mx, "a", amqp_empty_table));
	for (int k = 0; k < XT_Q; k++)
		CU_ASSERT(qbind(c, rq[k], rx, k == 1 ? "k" : "", amqp_empty_table));
	CU_ASSERT(qbind(c, rq[0], rx, "again", amqp_empty_table));

	int before[XT_MSGS], where[XT_MSGS], per_q[XT_Q];
	CU_ASSERT(xt_publish_collect(c, mx, mq, before, per_q));
	CU_ASSERT(xt_by_key(before, per_q));
	CU_ASSERT(xt_publish_collect(c, rx, rq, where, per_q));
	CU_ASSERT(xt_random(where, per_q));
	/* Twice: the second start recovers what the first one saved. */
	for (int round = 0; round < 2; round++) {
		broker_disconnect(c);
		CU_ASSERT_EQUAL(broker_stop(&b), 0);
		CU_ASSERT_FATAL(broker_start(&b, extra) == 0);
		c = broker_connect(&b);
		CU_ASSERT_PTR_NOT_NULL_FATAL(c);
		/* There, with their types (another type would be refused). */
		CU_ASSERT(
		    xdecl(c, 1, mx, "x-modulus-hash", false, true, false, false, amqp_empty_table)
		        .reply_type == AMQP_RESPONSE_NORMAL);
		CU_ASSERT(xdecl(c, 1, rx, "x-random", false, true, false, false, amqp_empty_table)
		              .reply_type == AMQP_RESPONSE_NORMAL);
		CU_ASSERT(xt_publish_collect(c, mx, mq, where, per_q));
		CU_ASSERT(memcmp(where, before, sizeof(where)) == 0);
		fprintf(stderr, "  restart %d: x-modulus-hash %d %d %d", round + 1, per_q[0],
		        per_q[1], per_q[2]);
		CU_ASSERT(xt_publish_collect(c, rx, rq, where, per_q));
		CU_ASSERT(xt_random(where, per_q));
		fprintf(stderr, ", x-random %d %d %d\n", per_q[0], per_q[1], per_q[2]);
	}
	for (int k = 0; k < XT_Q; k++) {
		qdelete(c, mq[k]);
		qdelete(c, rq[k]);
	}
	xdelete(c, mx);
	xdelete(c, rx);
	broker_disconnect(c);
	CU_ASSERT_EQUAL(broker_stop(&b), 0);
}

static void test_route_default(void)
{
	amqp_connection_state_t c = conn_open();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	char q[256], other[256], want[512];
	struct got g;
	name_of(q, sizeof(q), "rdefault-q");
	name_of(other, sizeof(other), "rdefault-none");
	CU_ASSERT(qdecl(c, q));
	CU_ASSERT_EQUAL(publish(c, "", q, "by-name"), AMQP_STATUS_OK);
	CU_ASSERT_EQUAL(publish(c, "", other, "lost"), AMQP_STATUS_OK);
	g = get1(c, q, true);
	CU_ASSERT_EQUAL(g.status, 1);
	CU_ASSERT_STRING_EQUAL(g.body, "by-name");
	CU_ASSERT_EQUAL(get1(c, q, true).status, 0);
	/* the default exchange accepts no explicit bindings */
	CU_ASSERT(!qbind(c, q, "", "other", amqp_empty_table));
	struct close_info ci = rpc_close(c, 1);
	CHECK_CLOSE(ci, CLOSE_CHANNEL, 403,
	            "ACCESS_REFUSED - operation not permitted on the default exchange");
	chan_reopen(c, 1);
	/* nor can one bind another exchange to it */
	char src[256];
	name_of(src, sizeof(src), "rdefault-src");
	CU_ASSERT(xdecl_ok(c, src, "fanout"));
	amqp_exchange_bind(c, 1, amqp_cstring_bytes(""), amqp_cstring_bytes(src),
	                   amqp_cstring_bytes(""), amqp_empty_table);
	ci = rpc_close(c, 1);
	CHECK_CLOSE(ci, CLOSE_CHANNEL, 403,
	            "ACCESS_REFUSED - operation not permitted on the default exchange");
	chan_reopen(c, 1);
	xdelete(c, src);
	/* publishing to a missing exchange: 404 */
	CU_ASSERT_EQUAL(publish(c, other, "k", "m"), AMQP_STATUS_OK);
	ci = wait_close(c, 1, 5000);
	snprintf(want, sizeof(want), "NOT_FOUND - no exchange '%s' in vhost '/'", other);
	CHECK_CLOSE(ci, CLOSE_CHANNEL, 404, want);
	chan_reopen(c, 1);
	qdelete(c, q);
	broker_disconnect(c);
}

/* alternate-exchange: what an exchange routes nowhere goes there (and a
 * mandatory publish then returns nothing); a cycle of alternates ends. */
static void test_alternate_exchange(void)
{
	amqp_connection_state_t c = conn_open();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	char ae[256], x[256], q[256], qx[256], y1[256], y2[256];
	name_of(ae, sizeof(ae), "ae");
	name_of(x, sizeof(x), "ae-x");
	name_of(q, sizeof(q), "ae-q");
	name_of(qx, sizeof(qx), "ae-qx");
	name_of(y1, sizeof(y1), "ae-y1");
	name_of(y2, sizeof(y2), "ae-y2");
	CU_ASSERT_FATAL(xdecl_ok(c, ae, "fanout"));
	CU_ASSERT(qdecl(c, q));
	CU_ASSERT(qdecl(c, qx));
	amqp_queue_bind(c, 1, amqp_cstring_bytes(q), amqp_cstring_bytes(ae), amqp_cstring_bytes(""),
	                amqp_empty_table);
	CU_ASSERT(rpc_ok(c));
	amqp_table_entry_t e = {
	    amqp_cstring_bytes("alternate-exchange"),
	    {.kind = AMQP_FIELD_KIND_UTF8, .value.bytes = amqp_cstring_bytes(ae)}};
	amqp_table_t args = {1, &e};
	CU_ASSERT_FATAL(xdecl(c, 1, x, "direct", false, false, false, false, args).reply_type ==
	                AMQP_RESPONSE_NORMAL);
	amqp_queue_bind(c, 1, amqp_cstring_bytes(qx), amqp_cstring_bytes(x),
	                amqp_cstring_bytes("k"), amqp_empty_table);
	CU_ASSERT(rpc_ok(c));
	/* Unroutable through x: into the alternate's queue, nothing returned. */
	CU_ASSERT_EQUAL(publish_full(c, 1, x, "nomatch", true, NULL, amqp_cstring_bytes("alt")),
	                AMQP_STATUS_OK);
	struct got g = get1(c, q, true);
	CU_ASSERT(g.status == 1 && strcmp(g.body, "alt") == 0);
	CU_ASSERT_FALSE(amqp_frames_enqueued(c)); /* no basic.return came first */
	/* Routable: only where x routes it. */
	CU_ASSERT_EQUAL(publish(c, x, "k", "direct"), AMQP_STATUS_OK);
	g = get1(c, qx, true);
	CU_ASSERT(g.status == 1 && strcmp(g.body, "direct") == 0);
	g = get1(c, q, true);
	CU_ASSERT_EQUAL(g.status, 0);
	/* Two exchanges each other's alternate: the message ends, returned. */
	amqp_table_entry_t e1 = {
	    amqp_cstring_bytes("alternate-exchange"),
	    {.kind = AMQP_FIELD_KIND_UTF8, .value.bytes = amqp_cstring_bytes(y2)}};
	amqp_table_entry_t e2 = {
	    amqp_cstring_bytes("alternate-exchange"),
	    {.kind = AMQP_FIELD_KIND_UTF8, .value.bytes = amqp_cstring_bytes(y1)}};
	amqp_table_t a1 = {1, &e1}, a2 = {1, &e2};
	CU_ASSERT(xdecl(c, 1, y1, "direct", false, false, false, false, a1).reply_type ==
	          AMQP_RESPONSE_NORMAL);
	CU_ASSERT(xdecl(c, 1, y2, "direct", false, false, false, false, a2).reply_type ==
	          AMQP_RESPONSE_NORMAL);
	CU_ASSERT_EQUAL(publish_full(c, 1, y1, "none", true, NULL, amqp_cstring_bytes("loop")),
	                AMQP_STATUS_OK);
	amqp_frame_t f;
	struct timeval tv = {10, 0};
	CU_ASSERT_EQUAL_FATAL(amqp_simple_wait_frame_noblock(c, &f, &tv), AMQP_STATUS_OK);
	CU_ASSERT_EQUAL(f.payload.method.id, AMQP_BASIC_RETURN_METHOD);
	amqp_message_t m;
	CU_ASSERT(amqp_read_message(c, 1, &m, 0).reply_type == AMQP_RESPONSE_NORMAL);
	amqp_destroy_message(&m);
	for (const char *n = y1; n; n = n == y1 ? y2 : n == y2 ? x : n == x ? ae : NULL) {
		amqp_exchange_delete(c, 1, amqp_cstring_bytes(n), 0);
		CU_ASSERT(rpc_ok(c));
	}
	qdelete(c, q);
	qdelete(c, qx);
	broker_disconnect(c);
}

void suite_exchange(void)
{
	ITEST_SUITE(
	    "exchange", ITEST(test_declare_each_type), ITEST(test_passive_missing),
	    ITEST(test_durable), ITEST(test_auto_delete), ITEST(test_internal), ITEST(test_delete),
	    ITEST(test_redeclare_inequivalent), ITEST(test_reserved_names), ITEST(test_predeclared),
	    ITEST(test_unknown_type), ITEST(test_long_names), ITEST(test_exchange_bind),
	    ITEST(test_route_direct), ITEST(test_route_fanout), ITEST(test_route_topic),
	    ITEST(test_route_headers), ITEST(test_route_modulus_hash), ITEST(test_route_random),
	    ITEST(test_xtypes_restart), ITEST(test_route_default), ITEST(test_alternate_exchange));
}
