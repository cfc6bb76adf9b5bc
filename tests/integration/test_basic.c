/*
 * test_basic.c - basic.* against what RabbitMQ 3.10 does: publish/get round
 * trips keeping the body and every property, multi-frame bodies, mandatory
 * returns, get-empty and get-ok counts, consumers (server tags, duplicate
 * tags, exclusive, no-ack, cancel), ack/nack/reject (single and multiple,
 * requeue or not), the redelivered flag, unknown delivery tags, recover,
 * qos (per consumer, global, prefetch_size), round-robin and FIFO order.
 *
 * Every expected reply code and text is RabbitMQ's own.  Names are unique
 * per test and process ("itest.basic.<what>.<pid>") and are deleted again.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <amqp.h>
#include <amqp_framing.h>
#include <amqp_tcp_socket.h>

#include "itest.h"
#include "itest_util.h"

/* ---- helpers ------------------------------------------------------------ */

/* One delivery, as far as the tests look at it. */
struct dlv {
	amqp_channel_t channel;
	uint64_t tag;
	bool redelivered;
	char ctag[128];
	char body[64];
};

/* Wait up to ms for a delivery: 1 (d filled), 0 on timeout, -1 otherwise. */
static int recv_dlv(amqp_connection_state_t c, int ms, struct dlv *d)
{
	amqp_envelope_t env;
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000L};
	amqp_maybe_release_buffers(c);
	amqp_rpc_reply_t r = amqp_consume_message(c, &env, &tv, 0);
	if (r.reply_type != AMQP_RESPONSE_NORMAL)
		return r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
		               r.library_error == AMQP_STATUS_TIMEOUT
		           ? 0
		           : -1;
	if (d) {
		d->channel = env.channel;
		d->tag = env.delivery_tag;
		d->redelivered = env.redelivered;
		snprintf(d->ctag, sizeof(d->ctag), "%.*s", (int)env.consumer_tag.len,
		         (const char *)env.consumer_tag.bytes);
		snprintf(d->body, sizeof(d->body), "%.*s", (int)env.message.body.len,
		         (const char *)env.message.body.bytes);
	}
	amqp_destroy_envelope(&env);
	return 1;
}

/* Receive deliveries until none comes for quiet_ms; up to max are stored
 * in ds (may be NULL).  Returns how many came. */
static int recv_all(amqp_connection_state_t c, int quiet_ms, struct dlv *ds, int max)
{
	int n = 0;
	struct dlv d;
	while (recv_dlv(c, quiet_ms, &d) == 1) {
		if (ds && n < max)
			ds[n] = d;
		n++;
	}
	return n;
}

/* The channel is still open: a harmless synchronous round trip on it (a
 * passive declare of amq.direct) succeeds.  Any asynchronous error the
 * server raised before it would arrive first. */
static bool chan_alive(amqp_connection_state_t c, amqp_channel_t ch)
{
	amqp_exchange_declare(c, ch, amqp_cstring_bytes("amq.direct"), amqp_cstring_bytes("direct"),
	                      1, 0, 0, 0, amqp_empty_table);
	return rpc_ok(c);
}

/* ---- publish / get -------------------------------------------------------- */

#define ENTRY(k, kind_, member, ...)                                                               \
	{                                                                                          \
		amqp_cstring_bytes(k),                                                             \
		{                                                                                  \
			kind_,                                                                     \
			{                                                                          \
				.member = __VA_ARGS__                                              \
			}                                                                          \
		}                                                                                  \
	}

static void check_props(const amqp_basic_properties_t *got, const amqp_basic_properties_t *want)
{
	CU_ASSERT_EQUAL(got->_flags, want->_flags);
	CU_ASSERT(bytes_eq(got->content_type, "application/x-itest"));
	CU_ASSERT(bytes_eq(got->content_encoding, "identity"));
	CU_ASSERT(table_eq(&got->headers, &want->headers));
	CU_ASSERT_EQUAL(got->delivery_mode, 2);
	CU_ASSERT_EQUAL(got->priority, 7);
	CU_ASSERT(bytes_eq(got->correlation_id, "corr-1"));
	CU_ASSERT(bytes_eq(got->reply_to, "reply.queue"));
	CU_ASSERT(bytes_eq(got->expiration, "600000"));
	CU_ASSERT(bytes_eq(got->message_id, "msg-1"));
	CU_ASSERT_EQUAL(got->timestamp, 1700000000u);
	CU_ASSERT(bytes_eq(got->type, "itest.type"));
	CU_ASSERT(bytes_eq(got->user_id, "guest"));
	CU_ASSERT(bytes_eq(got->app_id, "amqpd-itest"));
}

static void test_properties_roundtrip(void)
{
	amqp_connection_state_t c = conn_open();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	char q[256];
	name_of(q, sizeof(q), "props");
	CU_ASSERT(qdecl(c, q));

	amqp_table_entry_t inner[] = {ENTRY("k", AMQP_FIELD_KIND_UTF8, bytes, {1, "v"})};
	amqp_field_value_t arr[] = {{AMQP_FIELD_KIND_I32, {.i32 = 1}},
	                            {AMQP_FIELD_KIND_UTF8, {.bytes = {3, "two"}}},
	                            {AMQP_FIELD_KIND_BOOLEAN, {.boolean = 0}}};
	amqp_decimal_t dec = {2, 12345};
	amqp_table_entry_t h[] = {
	    ENTRY("str", AMQP_FIELD_KIND_UTF8, bytes, {5, "hello"}),
	    ENTRY("i32", AMQP_FIELD_KIND_I32, i32, -42),
	    ENTRY("i64", AMQP_FIELD_KIND_I64, i64, (int64_t)1 << 40),
	    ENTRY("bool", AMQP_FIELD_KIND_BOOLEAN, boolean, 1),
	    ENTRY("f64", AMQP_FIELD_KIND_F64, f64, 3.25),
	    ENTRY("f32", AMQP_FIELD_KIND_F32, f32, 1.5f),
	    ENTRY("i8", AMQP_FIELD_KIND_I8, i8, -5),
	    ENTRY("i16", AMQP_FIELD_KIND_I16, i16, -300),
	    ENTRY("ts", AMQP_FIELD_KIND_TIMESTAMP, u64, 1700000001u),
	    ENTRY("bin", AMQP_FIELD_KIND_BYTES, bytes, {3, "\0\1\2"}),
	    ENTRY("void", AMQP_FIELD_KIND_VOID, boolean, 0),
	    ENTRY("dec", AMQP_FIELD_KIND_DECIMAL, decimal, dec),
	    ENTRY("table", AMQP_FIELD_KIND_TABLE, table, {1, inner}),
	    ENTRY("array", AMQP_FIELD_KIND_ARRAY, array, {3, arr}),
	};
	amqp_basic_properties_t p;
	memset(&p, 0, sizeof(p));
	p._flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_CONTENT_ENCODING_FLAG |
	           AMQP_BASIC_HEADERS_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG |
	           AMQP_BASIC_PRIORITY_FLAG | AMQP_BASIC_CORRELATION_ID_FLAG |
	           AMQP_BASIC_REPLY_TO_FLAG | AMQP_BASIC_EXPIRATION_FLAG |
	           AMQP_BASIC_MESSAGE_ID_FLAG | AMQP_BASIC_TIMESTAMP_FLAG | AMQP_BASIC_TYPE_FLAG |
	           AMQP_BASIC_USER_ID_FLAG | AMQP_BASIC_APP_ID_FLAG;
	p.content_type = amqp_cstring_bytes("application/x-itest");
	p.content_encoding = amqp_cstring_bytes("identity");
	p.headers = (amqp_table_t){(int)(sizeof(h) / sizeof(h[0])), h};
	p.delivery_mode = 2;
	p.priority = 7;
	p.correlation_id = amqp_cstring_bytes("corr-1");
	p.reply_to = amqp_cstring_bytes("reply.queue");
	p.expiration = amqp_cstring_bytes("600000");
	p.message_id = amqp_cstring_bytes("msg-1");
	p.timestamp = 1700000000u;
	p.type = amqp_cstring_bytes("itest.type");
	p.user_id = amqp_cstring_bytes("guest");
	p.app_id = amqp_cstring_bytes("amqpd-itest");

	static const char body[] = "body with \0 a NUL and \xff bytes";
	amqp_bytes_t b = {sizeof(body), (void *)body};
	CU_ASSERT_EQUAL(
	    amqp_basic_publish(c, 1, amqp_cstring_bytes(""), amqp_cstring_bytes(q), 0, 0, &p, b),
	    AMQP_STATUS_OK);

	/* through basic.get ... */
	amqp_rpc_reply_t r = amqp_basic_get(c, 1, amqp_cstring_bytes(q), 0);
	CU_ASSERT_FATAL(r.reply_type == AMQP_RESPONSE_NORMAL &&
	                r.reply.id == AMQP_BASIC_GET_OK_METHOD);
	amqp_basic_get_ok_t *ok = r.reply.decoded;
	uint64_t tag = ok->delivery_tag;
	CU_ASSERT(bytes_eq(ok->exchange, ""));
	CU_ASSERT(bytes_eq(ok->routing_key, q));
	CU_ASSERT(!ok->redelivered);
	amqp_message_t m;
	r = amqp_read_message(c, 1, &m, 0);
	CU_ASSERT_FATAL(r.reply_type == AMQP_RESPONSE_NORMAL);
	CU_ASSERT_EQUAL(m.body.len, sizeof(body));
	CU_ASSERT(m.body.len == sizeof(body) && memcmp(m.body.bytes, body, sizeof(body)) == 0);
	check_props(&m.properties, &p);
	amqp_destroy_message(&m);
	/* ... and, requeued, through basic.deliver */
	CU_ASSERT_EQUAL(amqp_basic_reject(c, 1, tag, 1), AMQP_STATUS_OK);
	CU_ASSERT(consume_on(c, 1, q, "props", true, false, NULL, 0));
	amqp_envelope_t env;
	struct timeval tv = {5, 0};
	r = amqp_consume_message(c, &env, &tv, 0);
	CU_ASSERT_FATAL(r.reply_type == AMQP_RESPONSE_NORMAL);
	CU_ASSERT(env.redelivered);
	CU_ASSERT(bytes_eq(env.consumer_tag, "props"));
	CU_ASSERT(bytes_eq(env.routing_key, q));
	CU_ASSERT(env.message.body.len == sizeof(body) &&
	          memcmp(env.message.body.bytes, body, sizeof(body)) == 0);
	check_props(&env.message.properties, &p);
	amqp_destroy_envelope(&env);

	/* no properties at all stays no properties; an empty body stays empty */
	CU_ASSERT_EQUAL(amqp_basic_publish(c, 1, amqp_cstring_bytes(""), amqp_cstring_bytes(q), 0,
	                                   0, NULL, amqp_empty_bytes),
	                AMQP_STATUS_OK);
	r = amqp_consume_message(c, &env, &tv, 0);
	CU_ASSERT_FATAL(r.reply_type == AMQP_RESPONSE_NORMAL);
	CU_ASSERT_EQUAL(env.message.body.len, 0);
	/* rabbitmq-c's own publish sets no flags when props is NULL */
	CU_ASSERT_EQUAL(env.message.properties._flags, 0);
	amqp_destroy_envelope(&env);

	qdelete(c, q);
	broker_disconnect(c);
}

/* RabbitMQ checks user_id against the connection's user. */
static void test_user_id_mismatch(void)
{
	amqp_connection_state_t c = conn_open();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	char q[256];
	name_of(q, sizeof(q), "userid");
	CU_ASSERT(qdecl(c, q));
	amqp_basic_properties_t p;
	memset(&p, 0, sizeof(p));
	p._flags = AMQP_BASIC_USER_ID_FLAG;
	p.user_id = amqp_cstring_bytes("mallory");
	CU_ASSERT_EQUAL(amqp_basic_publish(c, 1, amqp_cstring_bytes(""), amqp_cstring_bytes(q), 0,
	                                   0, &p, amqp_cstring_bytes("x")),
	                AMQP_STATUS_OK);
	struct close_info ci = wait_close(c, 1, 5000);
	CHECK_CLOSE(
	    ci, CLOSE_CHANNEL, 406,
	    "PRECONDITION_FAILED - user_id property set to 'mallory' but authenticated user "
	    "was 'guest'");
	chan_reopen(c, 1);
	CU_ASSERT_EQUAL(get1(c, q, true).status, 0);
	qdelete(c, q);
	broker_disconnect(c);
}

static void big_body_case(int frame_max)
{
	amqp_connection_state_t c = conn_open_fm(frame_max);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_EQUAL(amqp_get_frame_max(c), frame_max);
	char q[256], what[64];
	snprintf(what, sizeof(what), "big-%d", frame_max);
	name_of(q, sizeof(q), what);
	CU_ASSERT(qdecl(c, q));
	size_t len = 1024 * 1024;
	unsigned char *body = malloc(len);
	CU_ASSERT_PTR_NOT_NULL_FATAL(body);
	for (size_t i = 0; i < len; i++)
		body[i] = (unsigned char)((i * 7 + i / 4093) & 0xff);
	amqp_bytes_t b = {len, body};
	/* one through basic.get, one through basic.deliver */
	for (int i = 0; i < 2; i++)
		CU_ASSERT_EQUAL(amqp_basic_publish(c, 1, amqp_cstring_bytes(""),
		                                   amqp_cstring_bytes(q), 0, 0, NULL, b),
		                AMQP_STATUS_OK);
	amqp_rpc_reply_t r = amqp_basic_get(c, 1, amqp_cstring_bytes(q), 1);
	CU_ASSERT_FATAL(r.reply_type == AMQP_RESPONSE_NORMAL &&
	                r.reply.id == AMQP_BASIC_GET_OK_METHOD);
	amqp_message_t m;
	r = amqp_read_message(c, 1, &m, 0);
	CU_ASSERT_FATAL(r.reply_type == AMQP_RESPONSE_NORMAL);
	CU_ASSERT_EQUAL(m.body.len, len);
	CU_ASSERT(m.body.len == len && memcmp(m.body.bytes, body, len) == 0);
	amqp_destroy_message(&m);
	CU_ASSERT(consume_on(c, 1, q, NULL, true, false, NULL, 0));
	amqp_envelope_t env;
	struct timeval tv = {10, 0};
	r = amqp_consume_message(c, &env, &tv, 0);
	CU_ASSERT_FATAL(r.reply_type == AMQP_RESPONSE_NORMAL);
	CU_ASSERT_EQUAL(env.message.body.len, len);
	CU_ASSERT(env.message.body.len == len && memcmp(env.message.body.bytes, body, len) == 0);
	amqp_destroy_envelope(&env);
	free(body);
	qdelete(c, q);
	broker_disconnect(c);
}

static void test_multi_frame_body(void)
{
	big_body_case(4096);
	big_body_case(131072);
}

static void test_mandatory(void)
{
	amqp_connection_state_t c = conn_open();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	char q[256], key[256];
	name_of(q, sizeof(q), "mandatory");
	name_of(key, sizeof(key), "mandatory-nobody");
	CU_ASSERT(qdecl(c, q));

	/* no route: basic.return 312 NO_ROUTE with the message */
	amqp_basic_properties_t p;
	memset(&p, 0, sizeof(p));
	p._flags = AMQP_BASIC_MESSAGE_ID_FLAG;
	p.message_id = amqp_cstring_bytes("ret-1");
	CU_ASSERT_EQUAL(amqp_basic_publish(c, 1, amqp_cstring_bytes("amq.direct"),
	                                   amqp_cstring_bytes(key), 1, 0, &p,
	                                   amqp_cstring_bytes("returned")),
	                AMQP_STATUS_OK);
	amqp_frame_t f;
	struct timeval tv = {5, 0};
	CU_ASSERT_EQUAL_FATAL(amqp_simple_wait_frame_noblock(c, &f, &tv), AMQP_STATUS_OK);
	CU_ASSERT_EQUAL(f.frame_type, AMQP_FRAME_METHOD);
	CU_ASSERT_EQUAL(f.channel, 1);
	CU_ASSERT_EQUAL_FATAL(f.payload.method.id, AMQP_BASIC_RETURN_METHOD);
	amqp_basic_return_t *ret = f.payload.method.decoded;
	CU_ASSERT_EQUAL(ret->reply_code, 312);
	CU_ASSERT(bytes_eq(ret->reply_text, "NO_ROUTE"));
	CU_ASSERT(bytes_eq(ret->exchange, "amq.direct"));
	CU_ASSERT(bytes_eq(ret->routing_key, key));
	amqp_message_t m;
	amqp_rpc_reply_t r = amqp_read_message(c, 1, &m, 0);
	CU_ASSERT_FATAL(r.reply_type == AMQP_RESPONSE_NORMAL);
	CU_ASSERT(bytes_eq(m.body, "returned"));
	CU_ASSERT(bytes_eq(m.properties.message_id, "ret-1"));
	amqp_destroy_message(&m);

	/* the same through the default exchange to a missing queue */
	CU_ASSERT_EQUAL(amqp_basic_publish(c, 1, amqp_cstring_bytes(""), amqp_cstring_bytes(key), 1,
	                                   0, NULL, amqp_cstring_bytes("r2")),
	                AMQP_STATUS_OK);
	tv = (struct timeval){5, 0};
	CU_ASSERT_EQUAL_FATAL(amqp_simple_wait_frame_noblock(c, &f, &tv), AMQP_STATUS_OK);
	CU_ASSERT_EQUAL_FATAL(f.payload.method.id, AMQP_BASIC_RETURN_METHOD);
	ret = f.payload.method.decoded;
	CU_ASSERT_EQUAL(ret->reply_code, 312);
	CU_ASSERT(bytes_eq(ret->reply_text, "NO_ROUTE"));
	CU_ASSERT(bytes_eq(ret->exchange, ""));
	r = amqp_read_message(c, 1, &m, 0);
	CU_ASSERT_FATAL(r.reply_type == AMQP_RESPONSE_NORMAL);
	CU_ASSERT(bytes_eq(m.body, "r2"));
	amqp_destroy_message(&m);

	/* routed: no return (RabbitMQ would send it before answering the next
	 * synchronous method on the channel) */
	CU_ASSERT_EQUAL(amqp_basic_publish(c, 1, amqp_cstring_bytes(""), amqp_cstring_bytes(q), 1,
	                                   0, NULL, amqp_cstring_bytes("routed")),
	                AMQP_STATUS_OK);
	amqp_queue_declare(c, 1, amqp_cstring_bytes(q), 1, 0, 0, 0, amqp_empty_table);
	CU_ASSERT(rpc_ok(c));
	CU_ASSERT(!amqp_frames_enqueued(c));
	tv = (struct timeval){0, 300 * 1000};
	CU_ASSERT_EQUAL(amqp_simple_wait_frame_noblock(c, &f, &tv), AMQP_STATUS_TIMEOUT);
	struct got g = get1(c, q, true);
	CU_ASSERT_EQUAL(g.status, 1);
	CU_ASSERT_STRING_EQUAL(g.body, "routed");
	/* not mandatory and no route: silently dropped */
	CU_ASSERT_EQUAL(publish(c, "amq.direct", key, "dropped"), AMQP_STATUS_OK);
	CU_ASSERT(chan_alive(c, 1));
	CU_ASSERT(!amqp_frames_enqueued(c));
	qdelete(c, q);
	broker_disconnect(c);
}

/* RabbitMQ 3.x does not implement immediate=true: connection error 540. */
static void test_immediate(void)
{
	amqp_connection_state_t c = conn_open();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_EQUAL(amqp_basic_publish(c, 1, amqp_cstring_bytes("amq.direct"),
	                                   amqp_cstring_bytes("k"), 0, 1, NULL,
	                                   amqp_cstring_bytes("now")),
	                AMQP_STATUS_OK);
	struct close_info ci = wait_close(c, 1, 5000);
	CHECK_CLOSE(ci, CLOSE_CONNECTION, 540, "NOT_IMPLEMENTED - immediate=true");
	amqp_destroy_connection(c);
}

static void test_get(void)
{
	amqp_connection_state_t c = conn_open();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	char q[256], want[512];
	name_of(q, sizeof(q), "get");
	CU_ASSERT(qdecl(c, q));
	CU_ASSERT_EQUAL(get1(c, q, true).status, 0);
	CU_ASSERT_EQUAL(get1(c, q, false).status, 0);
	for (int i = 0; i < 3; i++) {
		char b[8];
		snprintf(b, sizeof(b), "g%d", i);
		CU_ASSERT_EQUAL(publish(c, "", q, b), AMQP_STATUS_OK);
	}
	for (int i = 0; i < 3; i++) {
		char b[8];
		snprintf(b, sizeof(b), "g%d", i);
		struct got g = get1(c, q, true);
		CU_ASSERT_EQUAL(g.status, 1);
		CU_ASSERT_STRING_EQUAL(g.body, b);
		/* message_count: messages left after this one */
		CU_ASSERT_EQUAL(g.message_count, (uint32_t)(2 - i));
		CU_ASSERT(!g.redelivered);
	}
	CU_ASSERT_EQUAL(get1(c, q, true).status, 0);
	/* get from a missing queue: 404 */
	char missing[256];
	name_of(missing, sizeof(missing), "get-missing");
	CU_ASSERT_EQUAL(get1(c, missing, true).status, -1);
	struct close_info ci = rpc_close(c, 1);
	snprintf(want, sizeof(want), "NOT_FOUND - no queue '%s' in vhost '/'", missing);
	CHECK_CLOSE(ci, CLOSE_CHANNEL, 404, want);
	chan_reopen(c, 1);
	qdelete(c, q);
	broker_disconnect(c);
}

/* ---- consumers ------------------------------------------------------------ */

static void test_consume_cancel(void)
{
	amqp_connection_state_t c = conn_open();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	char q[256], tag[256], tag2[256];
	name_of(q, sizeof(q), "consume");
	CU_ASSERT(qdecl(c, q));
	CU_ASSERT(consume_on(c, 1, q, NULL, true, false, tag, sizeof(tag)));
	CU_ASSERT_EQUAL(strncmp(tag, "amq.ctag-", 9), 0);
	CU_ASSERT(strlen(tag) > 9);
	CU_ASSERT(consume_on(c, 1, q, "", true, false, tag2, sizeof(tag2)));
	CU_ASSERT_EQUAL(strncmp(tag2, "amq.ctag-", 9), 0);
	CU_ASSERT_STRING_NOT_EQUAL(tag, tag2);
	amqp_basic_cancel_ok_t *cok = amqp_basic_cancel(c, 1, amqp_cstring_bytes(tag2));
	CU_ASSERT_PTR_NOT_NULL_FATAL(cok);
	CU_ASSERT(bytes_eq(cok->consumer_tag, tag2));

	CU_ASSERT_EQUAL(publish(c, "", q, "c1"), AMQP_STATUS_OK);
	struct dlv d;
	CU_ASSERT_EQUAL(recv_dlv(c, 5000, &d), 1);
	CU_ASSERT_STRING_EQUAL(d.ctag, tag);
	CU_ASSERT_STRING_EQUAL(d.body, "c1");
	CU_ASSERT_EQUAL(d.channel, 1);
	CU_ASSERT(!d.redelivered);

	cok = amqp_basic_cancel(c, 1, amqp_cstring_bytes(tag));
	CU_ASSERT_PTR_NOT_NULL_FATAL(cok);
	CU_ASSERT(bytes_eq(cok->consumer_tag, tag));
	/* after cancel-ok nothing more is delivered; the message waits */
	CU_ASSERT_EQUAL(publish(c, "", q, "c2"), AMQP_STATUS_OK);
	CU_ASSERT_EQUAL(recv_dlv(c, 300, NULL), 0);
	struct got g = get1(c, q, true);
	CU_ASSERT_EQUAL(g.status, 1);
	CU_ASSERT_STRING_EQUAL(g.body, "c2");
	/* RabbitMQ: cancelling an unknown tag is cancel-ok */
	cok = amqp_basic_cancel(c, 1, amqp_cstring_bytes("no-such-consumer"));
	CU_ASSERT_PTR_NOT_NULL(cok);

	/* consume from a missing queue: 404 */
	char missing[256], want[512];
	name_of(missing, sizeof(missing), "consume-missing");
	CU_ASSERT(!consume_on(c, 1, missing, NULL, true, false, NULL, 0));
	struct close_info ci = rpc_close(c, 1);
	snprintf(want, sizeof(want), "NOT_FOUND - no queue '%s' in vhost '/'", missing);
	CHECK_CLOSE(ci, CLOSE_CHANNEL, 404, want);
	chan_reopen(c, 1);
	qdelete(c, q);
	broker_disconnect(c);
}

static void test_duplicate_tag(void)
{
	amqp_connection_state_t c = conn_open();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	char q[256];
	name_of(q, sizeof(q), "duptag");
	CU_ASSERT(qdecl(c, q));
	CU_ASSERT(consume_on(c, 1, q, "dup", true, false, NULL, 0));
	/* the same tag on another channel is fine */
	amqp_channel_open(c, 2);
	CU_ASSERT(rpc_ok(c));
	CU_ASSERT(consume_on(c, 2, q, "dup", true, false, NULL, 0));
	/* on the same channel it is a connection error */
	CU_ASSERT(!consume_on(c, 1, q, "dup", true, false, NULL, 0));
	struct close_info ci = rpc_close(c, 1);
	CHECK_CLOSE(ci, CLOSE_CONNECTION, 530, "NOT_ALLOWED - attempt to reuse consumer tag 'dup'");
	amqp_destroy_connection(c);

	c = conn_open();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	qdelete(c, q);
	broker_disconnect(c);
}

static void test_exclusive_consume(void)
{
	amqp_connection_state_t c = conn_open(), o = conn_open();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_PTR_NOT_NULL_FATAL(o);
	char q[256], want[512];
	name_of(q, sizeof(q), "exclusive");
	CU_ASSERT(qdecl(c, q));
	snprintf(want, sizeof(want), "ACCESS_REFUSED - queue '%s' in vhost '/' in exclusive use",
	         q);

	CU_ASSERT(consume_on(c, 1, q, "excl", true, true, NULL, 0));
	/* another consumer on another channel of the same connection */
	amqp_channel_open(c, 2);
	CU_ASSERT(rpc_ok(c));
	CU_ASSERT(!consume_on(c, 2, q, NULL, true, false, NULL, 0));
	struct close_info ci = rpc_close(c, 2);
	CHECK_CLOSE(ci, CLOSE_CHANNEL, 403, want);
	/* ... or from another connection */
	CU_ASSERT(!consume_on(o, 1, q, NULL, true, false, NULL, 0));
	ci = rpc_close(o, 1);
	CHECK_CLOSE(ci, CLOSE_CHANNEL, 403, want);
	chan_reopen(o, 1);
	/* basic.get is still allowed (it is not a consumer) */
	CU_ASSERT_EQUAL(get1(o, q, true).status, 0);
	CU_ASSERT(amqp_basic_cancel(c, 1, amqp_cstring_bytes("excl")) != NULL);

	/* an exclusive consume while another consumer exists is refused too */
	CU_ASSERT(consume_on(o, 1, q, "plain", true, false, NULL, 0));
	CU_ASSERT(!consume_on(c, 1, q, NULL, true, true, NULL, 0));
	ci = rpc_close(c, 1);
	CHECK_CLOSE(ci, CLOSE_CHANNEL, 403, want);
	chan_reopen(c, 1);
	CU_ASSERT(amqp_basic_cancel(o, 1, amqp_cstring_bytes("plain")) != NULL);
	qdelete(c, q);
	broker_disconnect(o);
	broker_disconnect(c);
}

static void test_no_ack_consume(void)
{
	amqp_connection_state_t c = conn_open();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	char q[256];
	name_of(q, sizeof(q), "noack");
	CU_ASSERT(qdecl(c, q));
	for (int i = 0; i < 3; i++)
		CU_ASSERT_EQUAL(publish(c, "", q, "n"), AMQP_STATUS_OK);
	amqp_channel_open(c, 2);
	CU_ASSERT(rpc_ok(c));
	CU_ASSERT(consume_on(c, 2, q, NULL, true, false, NULL, 0));
	struct dlv ds[4];
	CU_ASSERT_EQUAL(recv_all(c, 300, ds, 4), 3);
	for (int i = 0; i < 3; i++) {
		CU_ASSERT_EQUAL(ds[i].tag, (uint64_t)(i + 1));
		CU_ASSERT_EQUAL(ds[i].channel, 2);
	}
	/* nothing to acknowledge: closing the channel requeues nothing */
	amqp_channel_close(c, 2, AMQP_REPLY_SUCCESS);
	CU_ASSERT(rpc_ok(c));
	CU_ASSERT_EQUAL(get1(c, q, true).status, 0);
	/* and acking a no-ack delivery's tag is an unknown tag */
	amqp_channel_open(c, 2);
	CU_ASSERT(rpc_ok(c));
	CU_ASSERT(consume_on(c, 2, q, NULL, true, false, NULL, 0));
	CU_ASSERT_EQUAL(publish(c, "", q, "n"), AMQP_STATUS_OK);
	CU_ASSERT_EQUAL(recv_dlv(c, 5000, ds), 1);
	CU_ASSERT_EQUAL(amqp_basic_ack(c, 2, ds[0].tag, 0), AMQP_STATUS_OK);
	struct close_info ci = wait_close(c, 2, 5000);
	CHECK_CLOSE(ci, CLOSE_CHANNEL, 406, "PRECONDITION_FAILED - unknown delivery tag 1");
	qdelete(c, q);
	broker_disconnect(c);
}

/* ---- acknowledgements ----------------------------------------------------- */

static void test_ack(void)
{
	amqp_connection_state_t c = conn_open();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	char q[256];
	name_of(q, sizeof(q), "ack");
	CU_ASSERT(qdecl(c, q));
	for (int i = 0; i < 6; i++) {
		char b[8];
		snprintf(b, sizeof(b), "a%d", i);
		CU_ASSERT_EQUAL(publish(c, "", q, b), AMQP_STATUS_OK);
	}
	amqp_channel_open(c, 2);
	CU_ASSERT(rpc_ok(c));
	CU_ASSERT(consume_on(c, 2, q, "acker", false, false, NULL, 0));
	struct dlv ds[8];
	CU_ASSERT_EQUAL_FATAL(recv_all(c, 300, ds, 8), 6);
	for (int i = 0; i < 6; i++)
		CU_ASSERT_EQUAL(ds[i].tag, (uint64_t)(i + 1));
	/* ack 2; ack up to 4 with multiple (acks 1, 3, 4); ack 6: 5 is left */
	CU_ASSERT_EQUAL(amqp_basic_ack(c, 2, 2, 0), AMQP_STATUS_OK);
	CU_ASSERT_EQUAL(amqp_basic_ack(c, 2, 4, 1), AMQP_STATUS_OK);
	CU_ASSERT_EQUAL(amqp_basic_ack(c, 2, 6, 0), AMQP_STATUS_OK);
	CU_ASSERT(chan_alive(c, 2));
	amqp_queue_declare_ok_t *ok =
	    amqp_queue_declare(c, 1, amqp_cstring_bytes(q), 1, 0, 0, 0, amqp_empty_table);
	CU_ASSERT_PTR_NOT_NULL_FATAL(ok);
	CU_ASSERT_EQUAL(ok->message_count, 0);
	/* closing the channel requeues the unacked one, marked redelivered */
	amqp_channel_close(c, 2, AMQP_REPLY_SUCCESS);
	CU_ASSERT(rpc_ok(c));
	struct got g = get1(c, q, false);
	CU_ASSERT_EQUAL(g.status, 1);
	CU_ASSERT_STRING_EQUAL(g.body, "a4");
	CU_ASSERT(g.redelivered);
	CU_ASSERT_EQUAL(g.message_count, 0);
	/* ack of a basic.get delivery */
	CU_ASSERT_EQUAL(amqp_basic_ack(c, 1, g.tag, 0), AMQP_STATUS_OK);
	CU_ASSERT(chan_alive(c, 1));
	CU_ASSERT_EQUAL(get1(c, q, true).status, 0);
	/* multiple with tag 0: everything outstanding */
	CU_ASSERT_EQUAL(publish(c, "", q, "z1"), AMQP_STATUS_OK);
	CU_ASSERT_EQUAL(publish(c, "", q, "z2"), AMQP_STATUS_OK);
	CU_ASSERT_EQUAL(get1(c, q, false).status, 1);
	CU_ASSERT_EQUAL(get1(c, q, false).status, 1);
	CU_ASSERT_EQUAL(amqp_basic_ack(c, 1, 0, 1), AMQP_STATUS_OK);
	CU_ASSERT(chan_alive(c, 1));
	amqp_channel_close(c, 1, AMQP_REPLY_SUCCESS);
	chan_reopen(c, 1);
	CU_ASSERT_EQUAL(get1(c, q, true).status, 0);
	qdelete(c, q);
	broker_disconnect(c);
}

static void test_nack(void)
{
	amqp_connection_state_t c = conn_open();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	char q[256];
	name_of(q, sizeof(q), "nack");
	CU_ASSERT(qdecl(c, q));
	for (int i = 0; i < 5; i++) {
		char b[8];
		snprintf(b, sizeof(b), "n%d", i);
		CU_ASSERT_EQUAL(publish(c, "", q, b), AMQP_STATUS_OK);
	}
	amqp_channel_open(c, 2);
	CU_ASSERT(rpc_ok(c));
	struct got g[5];
	for (int i = 0; i < 5; i++) {
		g[i] = get_on(c, 2, q, false);
		CU_ASSERT_EQUAL(g[i].status, 1);
		CU_ASSERT_EQUAL(g[i].tag, (uint64_t)(i + 1));
	}
	/* n0 requeued, n1 dropped, n2..n3 requeued with multiple, n4 dropped */
	CU_ASSERT_EQUAL(amqp_basic_nack(c, 2, 1, 0, 1), AMQP_STATUS_OK);
	CU_ASSERT_EQUAL(amqp_basic_nack(c, 2, 2, 0, 0), AMQP_STATUS_OK);
	CU_ASSERT_EQUAL(amqp_basic_nack(c, 2, 4, 1, 1), AMQP_STATUS_OK);
	CU_ASSERT_EQUAL(amqp_basic_nack(c, 2, 5, 0, 0), AMQP_STATUS_OK);
	CU_ASSERT(chan_alive(c, 2));
	/* requeued messages keep their queue order and are redelivered */
	static const char *const back[] = {"n0", "n2", "n3"};
	for (int i = 0; i < 3; i++) {
		struct got r = get_on(c, 2, q, false);
		CU_ASSERT_EQUAL(r.status, 1);
		CU_ASSERT_STRING_EQUAL(r.body, back[i]);
		CU_ASSERT(r.redelivered);
		CU_ASSERT_EQUAL(r.tag, (uint64_t)(6 + i));
	}
	CU_ASSERT_EQUAL(get_on(c, 2, q, false).status, 0);
	/* nack multiple with requeue=false drops all three */
	CU_ASSERT_EQUAL(amqp_basic_nack(c, 2, 8, 1, 0), AMQP_STATUS_OK);
	CU_ASSERT(chan_alive(c, 2));
	amqp_channel_close(c, 2, AMQP_REPLY_SUCCESS);
	CU_ASSERT(rpc_ok(c));
	CU_ASSERT_EQUAL(get1(c, q, true).status, 0);
	qdelete(c, q);
	broker_disconnect(c);
}

static void test_reject(void)
{
	amqp_connection_state_t c = conn_open();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	char q[256];
	name_of(q, sizeof(q), "reject");
	CU_ASSERT(qdecl(c, q));
	CU_ASSERT_EQUAL(publish(c, "", q, "r0"), AMQP_STATUS_OK);
	CU_ASSERT_EQUAL(publish(c, "", q, "r1"), AMQP_STATUS_OK);
	struct got a = get1(c, q, false), b = get1(c, q, false);
	CU_ASSERT_EQUAL(a.status, 1);
	CU_ASSERT_EQUAL(b.status, 1);
	CU_ASSERT(!a.redelivered);
	CU_ASSERT_EQUAL(amqp_basic_reject(c, 1, a.tag, 1), AMQP_STATUS_OK);
	CU_ASSERT_EQUAL(amqp_basic_reject(c, 1, b.tag, 0), AMQP_STATUS_OK);
	struct got r = get1(c, q, false);
	CU_ASSERT_EQUAL(r.status, 1);
	CU_ASSERT_STRING_EQUAL(r.body, "r0");
	CU_ASSERT(r.redelivered);
	CU_ASSERT_EQUAL(get1(c, q, true).status, 0);
	/* rejected without requeue: gone for good */
	CU_ASSERT_EQUAL(amqp_basic_reject(c, 1, r.tag, 0), AMQP_STATUS_OK);
	amqp_channel_close(c, 1, AMQP_REPLY_SUCCESS);
	chan_reopen(c, 1);
	CU_ASSERT_EQUAL(get1(c, q, true).status, 0);
	qdelete(c, q);
	broker_disconnect(c);
}

static void test_unknown_tag(void)
{
	amqp_connection_state_t c = conn_open();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	char q[256];
	name_of(q, sizeof(q), "unknowntag");
	CU_ASSERT(qdecl(c, q));

	CU_ASSERT_EQUAL(amqp_basic_ack(c, 1, 42, 0), AMQP_STATUS_OK);
	struct close_info ci = wait_close(c, 1, 5000);
	CHECK_CLOSE(ci, CLOSE_CHANNEL, 406, "PRECONDITION_FAILED - unknown delivery tag 42");
	chan_reopen(c, 1);

	/* double ack */
	CU_ASSERT_EQUAL(publish(c, "", q, "d"), AMQP_STATUS_OK);
	struct got g = get1(c, q, false);
	CU_ASSERT_EQUAL(g.status, 1);
	CU_ASSERT_EQUAL(amqp_basic_ack(c, 1, g.tag, 0), AMQP_STATUS_OK);
	CU_ASSERT_EQUAL(amqp_basic_ack(c, 1, g.tag, 0), AMQP_STATUS_OK);
	ci = wait_close(c, 1, 5000);
	CHECK_CLOSE(ci, CLOSE_CHANNEL, 406, "PRECONDITION_FAILED - unknown delivery tag 1");
	chan_reopen(c, 1);

	/* nack and reject of unknown tags; multiple with an unknown tag */
	CU_ASSERT_EQUAL(amqp_basic_nack(c, 1, 7, 0, 1), AMQP_STATUS_OK);
	ci = wait_close(c, 1, 5000);
	CHECK_CLOSE(ci, CLOSE_CHANNEL, 406, "PRECONDITION_FAILED - unknown delivery tag 7");
	chan_reopen(c, 1);
	CU_ASSERT_EQUAL(amqp_basic_reject(c, 1, 9, 1), AMQP_STATUS_OK);
	ci = wait_close(c, 1, 5000);
	CHECK_CLOSE(ci, CLOSE_CHANNEL, 406, "PRECONDITION_FAILED - unknown delivery tag 9");
	chan_reopen(c, 1);
	CU_ASSERT_EQUAL(amqp_basic_ack(c, 1, 5, 1), AMQP_STATUS_OK);
	ci = wait_close(c, 1, 5000);
	CHECK_CLOSE(ci, CLOSE_CHANNEL, 406, "PRECONDITION_FAILED - unknown delivery tag 5");
	chan_reopen(c, 1);
	/* (tags are per channel: a reopened channel starts again at 1) */
	CU_ASSERT_EQUAL(publish(c, "", q, "t"), AMQP_STATUS_OK);
	g = get1(c, q, true);
	CU_ASSERT_EQUAL(g.status, 1);
	CU_ASSERT_EQUAL(g.tag, 1);
	qdelete(c, q);
	broker_disconnect(c);
}

static void test_recover(void)
{
	amqp_connection_state_t c = conn_open();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	char q[256];
	name_of(q, sizeof(q), "recover");
	CU_ASSERT(qdecl(c, q));
	CU_ASSERT_EQUAL(publish(c, "", q, "v0"), AMQP_STATUS_OK);
	CU_ASSERT_EQUAL(publish(c, "", q, "v1"), AMQP_STATUS_OK);
	CU_ASSERT(consume_on(c, 1, q, "rec", false, false, NULL, 0));
	struct dlv ds[4];
	CU_ASSERT_EQUAL_FATAL(recv_all(c, 300, ds, 4), 2);
	CU_ASSERT(!ds[0].redelivered);
	CU_ASSERT(!ds[1].redelivered);
	CU_ASSERT_PTR_NOT_NULL(amqp_basic_recover(c, 1, 1));
	CU_ASSERT_EQUAL_FATAL(recv_all(c, 300, ds, 4), 2);
	CU_ASSERT_STRING_EQUAL(ds[0].body, "v0");
	CU_ASSERT_STRING_EQUAL(ds[1].body, "v1");
	CU_ASSERT(ds[0].redelivered);
	CU_ASSERT(ds[1].redelivered);
	/* the redeliveries get new tags; the old ones are gone */
	CU_ASSERT_EQUAL(ds[0].tag, 3);
	CU_ASSERT_EQUAL(ds[1].tag, 4);
	CU_ASSERT_EQUAL(amqp_basic_ack(c, 1, 4, 1), AMQP_STATUS_OK);
	CU_ASSERT(chan_alive(c, 1));
	/* nothing unacked: recover delivers nothing */
	CU_ASSERT_PTR_NOT_NULL(amqp_basic_recover(c, 1, 1));
	CU_ASSERT_EQUAL(recv_all(c, 300, NULL, 0), 0);
	CU_ASSERT(amqp_basic_cancel(c, 1, amqp_cstring_bytes("rec")) != NULL);
	qdelete(c, q);
	broker_disconnect(c);

	/* RabbitMQ does not implement recover with requeue=false */
	c = conn_open();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	amqp_basic_recover(c, 1, 0);
	struct close_info ci = rpc_close(c, 1);
	CHECK_CLOSE(ci, CLOSE_CONNECTION, 540, "NOT_IMPLEMENTED - requeue=false");
	amqp_destroy_connection(c);
}

/* ---- qos ------------------------------------------------------------------ */

static void test_qos_prefetch(void)
{
	amqp_connection_state_t c = conn_open();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	char q[256];
	name_of(q, sizeof(q), "prefetch");
	CU_ASSERT(qdecl(c, q));
	for (int i = 0; i < 10; i++)
		CU_ASSERT_EQUAL(publish(c, "", q, "p"), AMQP_STATUS_OK);
	CU_ASSERT_PTR_NOT_NULL(amqp_basic_qos(c, 1, 0, 3, 0));
	CU_ASSERT(consume_on(c, 1, q, "pf", false, false, NULL, 0));
	struct dlv ds[10];
	/* three, then nothing until an ack */
	CU_ASSERT_EQUAL_FATAL(recv_all(c, 300, ds, 10), 3);
	CU_ASSERT_EQUAL(amqp_basic_ack(c, 1, ds[0].tag, 0), AMQP_STATUS_OK);
	CU_ASSERT_EQUAL_FATAL(recv_all(c, 300, ds + 3, 7), 1);
	/* acking everything (multiple) lets three more come */
	CU_ASSERT_EQUAL(amqp_basic_ack(c, 1, ds[3].tag, 1), AMQP_STATUS_OK);
	CU_ASSERT_EQUAL_FATAL(recv_all(c, 300, ds + 4, 6), 3);
	CU_ASSERT_EQUAL(recv_all(c, 300, NULL, 0), 0);
	/* RabbitMQ: a new per-consumer limit applies to consumers created
	 * afterwards; the existing one keeps its limit of 3 */
	CU_ASSERT_PTR_NOT_NULL(amqp_basic_qos(c, 1, 0, 5, 0));
	CU_ASSERT_EQUAL(recv_all(c, 300, NULL, 0), 0);
	CU_ASSERT(amqp_basic_cancel(c, 1, amqp_cstring_bytes("pf")) != NULL);
	/* 3 ready + 4 new; a new consumer gets 5 of them */
	for (int i = 0; i < 4; i++)
		CU_ASSERT_EQUAL(publish(c, "", q, "p"), AMQP_STATUS_OK);
	CU_ASSERT(consume_on(c, 1, q, "pf5", false, false, NULL, 0));
	CU_ASSERT_EQUAL(recv_all(c, 300, NULL, 0), 5);
	/* prefetch 0 means no limit (again for a new consumer) */
	CU_ASSERT(amqp_basic_cancel(c, 1, amqp_cstring_bytes("pf5")) != NULL);
	CU_ASSERT_PTR_NOT_NULL(amqp_basic_qos(c, 1, 0, 0, 0));
	for (int i = 0; i < 10; i++)
		CU_ASSERT_EQUAL(publish(c, "", q, "p"), AMQP_STATUS_OK);
	CU_ASSERT(consume_on(c, 1, q, "pf0", false, false, NULL, 0));
	CU_ASSERT_EQUAL(recv_all(c, 300, NULL, 0), 12);
	CU_ASSERT_EQUAL(amqp_basic_ack(c, 1, 0, 1), AMQP_STATUS_OK);
	CU_ASSERT(chan_alive(c, 1));
	qdelete(c, q);
	broker_disconnect(c);
}

/* RabbitMQ: global=false limits each consumer created afterwards on its
 * own; global=true is one limit shared by the channel's consumers. */
static void qos_global_case(bool global, int want_total, int want_each)
{
	amqp_connection_state_t c = conn_open();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	char q1[256], q2[256], w[32];
	snprintf(w, sizeof(w), "qos-%d-a", global);
	name_of(q1, sizeof(q1), w);
	snprintf(w, sizeof(w), "qos-%d-b", global);
	name_of(q2, sizeof(q2), w);
	CU_ASSERT(qdecl(c, q1));
	CU_ASSERT(qdecl(c, q2));
	for (int i = 0; i < 5; i++) {
		CU_ASSERT_EQUAL(publish(c, "", q1, "1"), AMQP_STATUS_OK);
		CU_ASSERT_EQUAL(publish(c, "", q2, "2"), AMQP_STATUS_OK);
	}
	CU_ASSERT_PTR_NOT_NULL(amqp_basic_qos(c, 1, 0, 2, global));
	CU_ASSERT(consume_on(c, 1, q1, "c1", false, false, NULL, 0));
	CU_ASSERT(consume_on(c, 1, q2, "c2", false, false, NULL, 0));
	struct dlv ds[10];
	int n = recv_all(c, 400, ds, 10);
	CU_ASSERT_EQUAL(n, want_total);
	if (want_each >= 0) {
		int n1 = 0, n2 = 0;
		for (int i = 0; i < n && i < 10; i++) {
			n1 += strcmp(ds[i].ctag, "c1") == 0;
			n2 += strcmp(ds[i].ctag, "c2") == 0;
		}
		CU_ASSERT_EQUAL(n1, want_each);
		CU_ASSERT_EQUAL(n2, want_each);
	}
	qdelete(c, q1);
	qdelete(c, q2);
	broker_disconnect(c);
}

static void test_qos_global(void)
{
	qos_global_case(false, 4, 2);
	qos_global_case(true, 2, -1);
}

/* A connection whose client properties name `product` (as py-amqp's
 * connection.start-ok does); channel 1 open. */
static amqp_connection_state_t conn_open_product(const char *product)
{
	amqp_connection_state_t c = amqp_new_connection();
	amqp_socket_t *s = amqp_tcp_socket_new(c);
	if (!s || amqp_socket_open(s, g_broker.host, g_broker.port) != AMQP_STATUS_OK) {
		amqp_destroy_connection(c);
		return NULL;
	}
	amqp_table_entry_t prop[] = {
	    {amqp_cstring_bytes("product"),
	     {AMQP_FIELD_KIND_UTF8, {.bytes = amqp_cstring_bytes(product)}}},
	    {amqp_cstring_bytes("product_version"),
	     {AMQP_FIELD_KIND_UTF8, {.bytes = amqp_cstring_bytes("5.1.1")}}},
	};
	amqp_table_t props = {2, prop};
	amqp_rpc_reply_t r = amqp_login_with_properties(c, "/", 2047, 131072, 0, &props,
	                                                AMQP_SASL_METHOD_PLAIN, "guest", "guest");
	if (r.reply_type != AMQP_RESPONSE_NORMAL || !open_channel(c, 1)) {
		amqp_destroy_connection(c);
		return NULL;
	}
	struct timeval tv = {10, 0};
	amqp_set_rpc_timeout(c, &tv);
	return c;
}

/* py-amqp (kombu, Celery) sends global=false to any server whose product
 * is not "RabbitMQ" expecting the spec's meaning, one limit for the whole
 * channel: that client gets it, applied at once to existing consumers. */
/* A connection of client `product` with two queues of 5 messages each,
 * basic.qos prefetch 2 global=false, and a consumer on each queue. */
static amqp_connection_state_t qos_two_queues(const char *product, char *q1, char *q2)
{
	amqp_connection_state_t c = conn_open_product(product);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	name_of(q1, 256, "qos-pyamqp-a");
	name_of(q2, 256, "qos-pyamqp-b");
	CU_ASSERT(qdecl(c, q1));
	CU_ASSERT(qdecl(c, q2));
	for (int i = 0; i < 5; i++) {
		CU_ASSERT_EQUAL(publish(c, "", q1, "1"), AMQP_STATUS_OK);
		CU_ASSERT_EQUAL(publish(c, "", q2, "2"), AMQP_STATUS_OK);
	}
	CU_ASSERT_PTR_NOT_NULL(amqp_basic_qos(c, 1, 0, 2, 0));
	CU_ASSERT(consume_on(c, 1, q1, "c1", false, false, NULL, 0));
	CU_ASSERT(consume_on(c, 1, q2, "c2", false, false, NULL, 0));
	return c;
}

static void test_qos_py_amqp(void)
{
	char q1[256], q2[256];
	amqp_connection_state_t c = qos_two_queues("py-amqp", q1, q2);
	struct dlv ds[10];
	CU_ASSERT_EQUAL_FATAL(recv_all(c, 400, ds, 10), 2);
	/* one ack, one more (from either queue) */
	CU_ASSERT_EQUAL(amqp_basic_ack(c, 1, ds[0].tag, 0), AMQP_STATUS_OK);
	CU_ASSERT_EQUAL_FATAL(recv_all(c, 400, ds + 2, 8), 1);
	/* a larger window applies to the consumers already there */
	CU_ASSERT_PTR_NOT_NULL(amqp_basic_qos(c, 1, 0, 4, 0));
	CU_ASSERT_EQUAL(recv_all(c, 400, NULL, 0), 2);
	CU_ASSERT_EQUAL(amqp_basic_ack(c, 1, 0, 1), AMQP_STATUS_OK);
	CU_ASSERT_EQUAL(recv_all(c, 400, NULL, 0), 4);
	CU_ASSERT_EQUAL(amqp_basic_ack(c, 1, 0, 1), AMQP_STATUS_OK);
	CU_ASSERT(chan_alive(c, 1));
	qdelete(c, q1);
	qdelete(c, q2);
	broker_disconnect(c);
	/* only that exact product: others keep RabbitMQ's per-consumer limit */
	c = qos_two_queues("py-amqp-like", q1, q2);
	CU_ASSERT_EQUAL(recv_all(c, 400, NULL, 0), 4);
	qdelete(c, q1);
	qdelete(c, q2);
	broker_disconnect(c);
}

/* A channel-wide limit holds back the consumers of every queue on the
 * channel: an ack of a delivery from one queue lets the consumer of the
 * other go on (RabbitMQ: global=true; py-amqp: also global=false). */
static void qos_shared_wakes_case(const char *product, bool global)
{
	amqp_connection_state_t c = product ? conn_open_product(product) : conn_open();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	char q1[256], q2[256];
	name_of(q1, sizeof(q1), "qos-wake-a");
	name_of(q2, sizeof(q2), "qos-wake-b");
	CU_ASSERT(qdecl(c, q1));
	CU_ASSERT(qdecl(c, q2));
	CU_ASSERT_EQUAL(publish(c, "", q1, "a"), AMQP_STATUS_OK);
	for (int i = 0; i < 3; i++)
		CU_ASSERT_EQUAL(publish(c, "", q2, "b"), AMQP_STATUS_OK);
	CU_ASSERT_PTR_NOT_NULL(amqp_basic_qos(c, 1, 0, 1, global));
	CU_ASSERT(consume_on(c, 1, q1, "c1", false, false, NULL, 0));
	struct dlv d;
	CU_ASSERT_EQUAL_FATAL(recv_dlv(c, 2000, &d), 1);
	CU_ASSERT_STRING_EQUAL(d.body, "a");
	CU_ASSERT(consume_on(c, 1, q2, "c2", false, false, NULL, 0));
	CU_ASSERT_EQUAL(recv_all(c, 300, NULL, 0), 0);
	for (int i = 0; i < 3; i++) {
		CU_ASSERT_EQUAL(amqp_basic_ack(c, 1, d.tag, 0), AMQP_STATUS_OK);
		CU_ASSERT_EQUAL_FATAL(recv_dlv(c, 2000, &d), 1);
		CU_ASSERT_STRING_EQUAL(d.body, "b");
		CU_ASSERT_EQUAL(recv_all(c, 200, NULL, 0), 0);
	}
	CU_ASSERT_EQUAL(amqp_basic_ack(c, 1, d.tag, 0), AMQP_STATUS_OK);
	CU_ASSERT(chan_alive(c, 1));
	qdelete(c, q1);
	qdelete(c, q2);
	broker_disconnect(c);
}

static void test_qos_shared_wakes_all(void)
{
	qos_shared_wakes_case(NULL, true);
	qos_shared_wakes_case("py-amqp", false);
}

/* Our requirement and RabbitMQ agree: prefetch_size != 0 is a connection
 * error 540 NOT_IMPLEMENTED. */
static void test_qos_prefetch_size(void)
{
	amqp_connection_state_t c = conn_open();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	amqp_basic_qos(c, 1, 1000, 0, 0);
	struct close_info ci = rpc_close(c, 1);
	CHECK_CLOSE(ci, CLOSE_CONNECTION, 540, "NOT_IMPLEMENTED - prefetch_size!=0 (1000)");
	amqp_destroy_connection(c);
}

/* ---- ordering ------------------------------------------------------------- */

static void test_round_robin(void)
{
	amqp_connection_state_t c = conn_open();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	char q[256], tags[3][128];
	name_of(q, sizeof(q), "roundrobin");
	CU_ASSERT(qdecl(c, q));
	for (int i = 0; i < 3; i++)
		CU_ASSERT(consume_on(c, 1, q, NULL, true, false, tags[i], sizeof(tags[i])));
	enum { N = 30 };
	for (int i = 0; i < N; i++) {
		char b[8];
		snprintf(b, sizeof(b), "%d", i);
		CU_ASSERT_EQUAL(publish(c, "", q, b), AMQP_STATUS_OK);
	}
	struct dlv ds[N];
	CU_ASSERT_EQUAL_FATAL(recv_all(c, 400, ds, N), N);
	int count[3] = {0, 0, 0};
	for (int i = 0; i < N; i++) {
		char b[8];
		snprintf(b, sizeof(b), "%d", i);
		CU_ASSERT_STRING_EQUAL(ds[i].body, b);
		for (int k = 0; k < 3; k++)
			count[k] += strcmp(ds[i].ctag, tags[k]) == 0;
		/* strict rotation: each consumer every third message */
		if (i >= 3)
			CU_ASSERT_STRING_EQUAL(ds[i].ctag, ds[i - 3].ctag);
	}
	CU_ASSERT_STRING_NOT_EQUAL(ds[0].ctag, ds[1].ctag);
	CU_ASSERT_STRING_NOT_EQUAL(ds[1].ctag, ds[2].ctag);
	CU_ASSERT_STRING_NOT_EQUAL(ds[0].ctag, ds[2].ctag);
	for (int k = 0; k < 3; k++)
		CU_ASSERT_EQUAL(count[k], N / 3);
	qdelete(c, q);
	broker_disconnect(c);
}

static void test_fifo(void)
{
	amqp_connection_state_t c = conn_open();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	char q[256];
	name_of(q, sizeof(q), "fifo");
	CU_ASSERT(qdecl(c, q));
	enum { N = 1000 };
	for (int i = 0; i < N; i++) {
		char b[16];
		snprintf(b, sizeof(b), "m%04d", i);
		CU_ASSERT_EQUAL(publish(c, "", q, b), AMQP_STATUS_OK);
	}
	/* half by basic.get, the rest by a consumer */
	int bad = 0;
	for (int i = 0; i < N / 2; i++) {
		char b[16];
		snprintf(b, sizeof(b), "m%04d", i);
		struct got g = get1(c, q, true);
		if (g.status != 1 || strcmp(g.body, b) != 0)
			bad++;
		amqp_maybe_release_buffers(c);
	}
	CU_ASSERT_EQUAL(bad, 0);
	CU_ASSERT(consume_on(c, 1, q, NULL, true, false, NULL, 0));
	int n = 0;
	struct dlv d;
	while (n < N / 2 && recv_dlv(c, 5000, &d) == 1) {
		char b[16];
		snprintf(b, sizeof(b), "m%04d", N / 2 + n);
		if (strcmp(d.body, b) != 0)
			bad++;
		n++;
	}
	CU_ASSERT_EQUAL(n, N / 2);
	CU_ASSERT_EQUAL(bad, 0);
	qdelete(c, q);
	broker_disconnect(c);
}

void suite_basic(void)
{
	ITEST_SUITE("basic", ITEST(test_properties_roundtrip), ITEST(test_user_id_mismatch),
	            ITEST(test_multi_frame_body), ITEST(test_mandatory), ITEST(test_immediate),
	            ITEST(test_get), ITEST(test_consume_cancel), ITEST(test_duplicate_tag),
	            ITEST(test_exclusive_consume), ITEST(test_no_ack_consume), ITEST(test_ack),
	            ITEST(test_nack), ITEST(test_reject), ITEST(test_unknown_tag),
	            ITEST(test_recover), ITEST(test_qos_prefetch), ITEST(test_qos_global),
	            ITEST(test_qos_py_amqp), ITEST(test_qos_shared_wakes_all),
	            ITEST(test_qos_prefetch_size), ITEST(test_round_robin), ITEST(test_fifo));
}
