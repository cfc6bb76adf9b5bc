/*
 * test_durability_msgs.c - the durability suite's tests of messages
 * surviving a restart or a kill -9 of amqpd: all 14 properties and every
 * kind of body byte-exact; order, acks and redelivered flags; transient
 * messages gone; one message in two queues with reject and nack; whatever
 * was confirmed before a kill -9; 40 MiB over several segment files (and
 * the space given back); messages paged out with --queue-memory-budget.
 *
 * The suite's own broker, its helpers and the registration are in
 * test_durability.c (see durability.h).
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <amqp.h>
#include <amqp_framing.h>

#include "itest.h"
#include "itest_util.h"
#include "durability.h"

/* ---- message properties and bodies --------------------------------------- */

static bool str_eq(amqp_bytes_t a, amqp_bytes_t b)
{
	return a.len == b.len && (a.len == 0 || memcmp(a.bytes, b.bytes, a.len) == 0);
}

/* Every property that is present in want is present in got with the same
 * value, and no other is. */
static void check_props(const amqp_basic_properties_t *got, const amqp_basic_properties_t *want)
{
	amqp_flags_t f = want->_flags;
	CU_ASSERT_EQUAL(got->_flags, f);
	if (got->_flags != f)
		fprintf(stderr, "\n  property flags 0x%x, want 0x%x\n", (unsigned)got->_flags,
		        (unsigned)f);
	if (f & AMQP_BASIC_CONTENT_TYPE_FLAG)
		CU_ASSERT(str_eq(got->content_type, want->content_type));
	if (f & AMQP_BASIC_CONTENT_ENCODING_FLAG)
		CU_ASSERT(str_eq(got->content_encoding, want->content_encoding));
	if (f & AMQP_BASIC_HEADERS_FLAG)
		CU_ASSERT(table_eq(&got->headers, &want->headers));
	if (f & AMQP_BASIC_DELIVERY_MODE_FLAG)
		CU_ASSERT_EQUAL(got->delivery_mode, want->delivery_mode);
	if (f & AMQP_BASIC_PRIORITY_FLAG)
		CU_ASSERT_EQUAL(got->priority, want->priority);
	if (f & AMQP_BASIC_CORRELATION_ID_FLAG)
		CU_ASSERT(str_eq(got->correlation_id, want->correlation_id));
	if (f & AMQP_BASIC_REPLY_TO_FLAG)
		CU_ASSERT(str_eq(got->reply_to, want->reply_to));
	if (f & AMQP_BASIC_EXPIRATION_FLAG)
		CU_ASSERT(str_eq(got->expiration, want->expiration));
	if (f & AMQP_BASIC_MESSAGE_ID_FLAG)
		CU_ASSERT(str_eq(got->message_id, want->message_id));
	if (f & AMQP_BASIC_TIMESTAMP_FLAG)
		CU_ASSERT_EQUAL(got->timestamp, want->timestamp);
	if (f & AMQP_BASIC_TYPE_FLAG)
		CU_ASSERT(str_eq(got->type, want->type));
	if (f & AMQP_BASIC_USER_ID_FLAG)
		CU_ASSERT(str_eq(got->user_id, want->user_id));
	if (f & AMQP_BASIC_APP_ID_FLAG)
		CU_ASSERT(str_eq(got->app_id, want->app_id));
	if (f & AMQP_BASIC_CLUSTER_ID_FLAG)
		CU_ASSERT(str_eq(got->cluster_id, want->cluster_id));
}

/* The messages of the properties test, in publish order. */
struct pmsg {
	amqp_basic_properties_t props;
	amqp_bytes_t body;
};

/* Check one received message against the one published. */
static void check_pmsg(const struct pmsg *want, const amqp_basic_properties_t *props,
                       amqp_bytes_t body, amqp_bytes_t exchange, amqp_bytes_t rk, int i)
{
	bool body_ok = body.len == want->body.len &&
	               (body.len == 0 || memcmp(body.bytes, want->body.bytes, body.len) == 0);
	CU_ASSERT(body_ok);
	if (!body_ok)
		fprintf(stderr, "\n  message %d: body of %zu bytes differs (want %zu)\n", i,
		        body.len, want->body.len);
	CU_ASSERT(bytes_eq(exchange, "d.props"));
	CU_ASSERT(bytes_eq(rk, "rk.props"));
	check_props(props, &want->props);
}

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

void test_properties(void)
{
	if (broker_external())
		return;
	db_setup();

	/* every field type, nested tables and arrays included */
	amqp_table_entry_t deep[] = {ENTRY("k", AMQP_FIELD_KIND_UTF8, bytes, {1, "v"})};
	amqp_field_value_t in_arr[] = {{AMQP_FIELD_KIND_I64, {.i64 = -1}},
	                               {AMQP_FIELD_KIND_TABLE, {.table = {1, deep}}}};
	amqp_table_entry_t inner[] = {
	    ENTRY("s", AMQP_FIELD_KIND_UTF8, bytes, {2, "in"}),
	    ENTRY("t", AMQP_FIELD_KIND_TABLE, table, {1, deep}),
	    ENTRY("a", AMQP_FIELD_KIND_ARRAY, array, {2, in_arr}),
	    ENTRY("empty", AMQP_FIELD_KIND_TABLE, table, {0, NULL}),
	};
	amqp_decimal_t dec = {2, 12345};
	amqp_field_value_t arr[] = {{AMQP_FIELD_KIND_I32, {.i32 = 1}},
	                            {AMQP_FIELD_KIND_UTF8, {.bytes = {3, "two"}}},
	                            {AMQP_FIELD_KIND_BOOLEAN, {.boolean = 0}},
	                            {AMQP_FIELD_KIND_DECIMAL, {.decimal = {3, 7}}},
	                            {AMQP_FIELD_KIND_TIMESTAMP, {.u64 = 1600000000u}},
	                            {AMQP_FIELD_KIND_ARRAY, {.array = {2, in_arr}}},
	                            {AMQP_FIELD_KIND_TABLE, {.table = {4, inner}}},
	                            {AMQP_FIELD_KIND_VOID, {.boolean = 0}}};
	amqp_table_entry_t h[] = {
	    ENTRY("str", AMQP_FIELD_KIND_UTF8, bytes, {5, "hello"}),
	    ENTRY("empty-str", AMQP_FIELD_KIND_UTF8, bytes, {0, ""}),
	    ENTRY("bool", AMQP_FIELD_KIND_BOOLEAN, boolean, 1),
	    ENTRY("i8", AMQP_FIELD_KIND_I8, i8, -5),
	    ENTRY("u8", AMQP_FIELD_KIND_U8, u8, 250),
	    ENTRY("i16", AMQP_FIELD_KIND_I16, i16, -300),
	    ENTRY("u16", AMQP_FIELD_KIND_U16, u16, 65000),
	    ENTRY("i32", AMQP_FIELD_KIND_I32, i32, -42),
	    ENTRY("u32", AMQP_FIELD_KIND_U32, u32, 4000000000u),
	    ENTRY("i64", AMQP_FIELD_KIND_I64, i64, -((int64_t)1 << 40)),
	    ENTRY("f32", AMQP_FIELD_KIND_F32, f32, 1.5f),
	    ENTRY("f64", AMQP_FIELD_KIND_F64, f64, -3.25e100),
	    ENTRY("dec", AMQP_FIELD_KIND_DECIMAL, decimal, dec),
	    ENTRY("ts", AMQP_FIELD_KIND_TIMESTAMP, u64, 1700000001u),
	    ENTRY("bin", AMQP_FIELD_KIND_BYTES, bytes, {4, "\0\1\2\xff"}),
	    ENTRY("void", AMQP_FIELD_KIND_VOID, boolean, 0),
	    ENTRY("table", AMQP_FIELD_KIND_TABLE, table, {4, inner}),
	    ENTRY("array", AMQP_FIELD_KIND_ARRAY, array, {8, arr}),
	    ENTRY("empty-array", AMQP_FIELD_KIND_ARRAY, array, {0, NULL}),
	};

	enum { NMSG = 5 };
	struct pmsg pm[NMSG];
	memset(pm, 0, sizeof(pm));
	/* 0: all 14 properties, a binary body */
	static const char bin[] = "body with \0 a NUL and \xff bytes";
	amqp_basic_properties_t *p = &pm[0].props;
	p->_flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_CONTENT_ENCODING_FLAG |
	            AMQP_BASIC_HEADERS_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG |
	            AMQP_BASIC_PRIORITY_FLAG | AMQP_BASIC_CORRELATION_ID_FLAG |
	            AMQP_BASIC_REPLY_TO_FLAG | AMQP_BASIC_EXPIRATION_FLAG |
	            AMQP_BASIC_MESSAGE_ID_FLAG | AMQP_BASIC_TIMESTAMP_FLAG | AMQP_BASIC_TYPE_FLAG |
	            AMQP_BASIC_USER_ID_FLAG | AMQP_BASIC_APP_ID_FLAG | AMQP_BASIC_CLUSTER_ID_FLAG;
	p->content_type = amqp_cstring_bytes("application/x-itest");
	p->content_encoding = amqp_cstring_bytes("identity");
	p->headers = (amqp_table_t){(int)(sizeof(h) / sizeof(h[0])), h};
	p->delivery_mode = 2;
	p->priority = 7;
	p->correlation_id = amqp_cstring_bytes("corr-1");
	p->reply_to = amqp_cstring_bytes("reply.queue");
	p->expiration = amqp_cstring_bytes("3600000");
	p->message_id = amqp_cstring_bytes("msg-1");
	p->timestamp = 1700000000u;
	p->type = amqp_cstring_bytes("itest.type");
	p->user_id = amqp_cstring_bytes("guest");
	p->app_id = amqp_cstring_bytes("amqpd-itest");
	p->cluster_id = amqp_cstring_bytes("cluster-x");
	pm[0].body = (amqp_bytes_t){sizeof(bin), (void *)bin};
	/* 1: a 1 MiB body (several frames) */
	size_t big_len = 1024 * 1024;
	unsigned char *big = malloc(big_len);
	CU_ASSERT_PTR_NOT_NULL_FATAL(big);
	for (size_t i = 0; i < big_len; i++)
		big[i] = (unsigned char)((i * 7 + i / 4093) & 0xff);
	pm[1].props._flags = AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_CONTENT_TYPE_FLAG;
	pm[1].props.delivery_mode = 2;
	pm[1].props.content_type = amqp_cstring_bytes("application/octet-stream");
	pm[1].body = (amqp_bytes_t){big_len, big};
	/* 2: an empty body and only delivery-mode */
	pm[2].props._flags = AMQP_BASIC_DELIVERY_MODE_FLAG;
	pm[2].props.delivery_mode = 2;
	pm[2].body = amqp_empty_bytes;
	/* 3: every byte value; an empty headers table, priority 0, empty strings */
	static unsigned char all[256];
	for (int i = 0; i < 256; i++)
		all[i] = (unsigned char)i;
	pm[3].props._flags = AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_HEADERS_FLAG |
	                     AMQP_BASIC_PRIORITY_FLAG | AMQP_BASIC_MESSAGE_ID_FLAG |
	                     AMQP_BASIC_TYPE_FLAG;
	pm[3].props.delivery_mode = 2;
	pm[3].props.headers = amqp_empty_table;
	pm[3].props.priority = 0;
	pm[3].props.message_id = amqp_empty_bytes;
	pm[3].props.type = amqp_empty_bytes;
	pm[3].body = (amqp_bytes_t){sizeof(all), all};
	/* 4: a body of exactly one frame's payload (frame_max 131072 - 8) */
	size_t one_len = 131072 - 8;
	unsigned char *one = malloc(one_len);
	CU_ASSERT_PTR_NOT_NULL_FATAL(one);
	memset(one, 'f', one_len);
	pm[4].props._flags = AMQP_BASIC_DELIVERY_MODE_FLAG;
	pm[4].props.delivery_mode = 2;
	pm[4].body = (amqp_bytes_t){one_len, one};

	amqp_connection_state_t c = dconn();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT(xdecl(c, "d.props", "direct", true));
	CU_ASSERT(dqdecl(c, "d.pq", true));
	CU_ASSERT(qbind(c, "d.pq", "d.props", "rk.props", amqp_empty_table));
	CU_ASSERT_FATAL(confirm_select(c, 1));
	for (int i = 0; i < NMSG; i++)
		CU_ASSERT_EQUAL(amqp_basic_publish(c, 1, amqp_cstring_bytes("d.props"),
		                                   amqp_cstring_bytes("rk.props"), 0, 0,
		                                   &pm[i].props, pm[i].body),
		                AMQP_STATUS_OK);
	struct confirms cf = {0};
	CU_ASSERT(confirms_wait(c, 1, &cf, NMSG));
	broker_disconnect(c);

	/* Clean restart; read them with basic.get, unacked. */
	db_restart(false);
	c = dconn();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_EQUAL(qcount(c, "d.pq"), NMSG);
	for (int i = 0; i < NMSG; i++) {
		amqp_rpc_reply_t r = amqp_basic_get(c, 1, amqp_cstring_bytes("d.pq"), 0);
		CU_ASSERT_FATAL(r.reply_type == AMQP_RESPONSE_NORMAL &&
		                r.reply.id == AMQP_BASIC_GET_OK_METHOD);
		const amqp_basic_get_ok_t *ok = r.reply.decoded;
		CU_ASSERT(!ok->redelivered);
		amqp_bytes_t ex = amqp_bytes_malloc_dup(ok->exchange);
		amqp_bytes_t rk = amqp_bytes_malloc_dup(ok->routing_key);
		amqp_message_t m;
		r = amqp_read_message(c, 1, &m, 0);
		CU_ASSERT_FATAL(r.reply_type == AMQP_RESPONSE_NORMAL);
		check_pmsg(&pm[i], &m.properties, m.body, ex, rk, i);
		amqp_destroy_message(&m);
		amqp_bytes_free(ex);
		amqp_bytes_free(rk);
	}
	/* A confirmed persistent message makes sure the delivered marks are
	 * on disk too (a sync covers everything written before it). */
	CU_ASSERT(dqdecl(c, "d.fence", true));
	CU_ASSERT_FATAL(open_channel(c, 2) && confirm_select(c, 2));
	CU_ASSERT_EQUAL(dpublish(c, 2, "", "d.fence", "fence", true), AMQP_STATUS_OK);
	memset(&cf, 0, sizeof(cf));
	CU_ASSERT(confirms_wait(c, 2, &cf, 1));

	/* kill -9 with all five delivered and unacked: they come back
	 * redelivered, and still byte-exact; read them through basic.deliver. */
	db_restart(true);
	conn_drop(c);
	c = dconn();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_EQUAL(qcount(c, "d.pq"), NMSG);
	CU_ASSERT_PTR_NOT_NULL_FATAL(amqp_basic_consume(
	    c, 1, amqp_cstring_bytes("d.pq"), amqp_empty_bytes, 0, 0, 0, amqp_empty_table));
	for (int i = 0; i < NMSG; i++) {
		amqp_envelope_t env;
		struct timeval tv = {10, 0};
		amqp_maybe_release_buffers(c);
		amqp_rpc_reply_t r = amqp_consume_message(c, &env, &tv, 0);
		CU_ASSERT_FATAL(r.reply_type == AMQP_RESPONSE_NORMAL);
		CU_ASSERT(env.redelivered);
		check_pmsg(&pm[i], &env.message.properties, env.message.body, env.exchange,
		           env.routing_key, i);
		amqp_basic_ack(c, 1, env.delivery_tag, 0);
		amqp_destroy_envelope(&env);
	}
	CU_ASSERT_EQUAL(qcount(c, "d.pq"), 0);
	broker_disconnect(c);

	/* acked: gone for good */
	db_restart(false);
	c = dconn();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_EQUAL(qcount(c, "d.pq"), 0);
	broker_disconnect(c);
	free(big);
	free(one);
	db_done();
}

/* ---- order, acks, redelivered, transient messages -------------------------- */

static void order_case(bool kill9)
{
	db_setup();
	amqp_connection_state_t c = dconn();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT(dqdecl(c, "d.order", true));
	CU_ASSERT_FATAL(confirm_select(c, 1));
	/* 100 persistent messages, a transient one after every fifth */
	uint64_t n = 0;
	char body[32];
	for (int i = 0; i < 100; i++) {
		snprintf(body, sizeof(body), "p%03d", i);
		CU_ASSERT_EQUAL(dpublish(c, 1, "", "d.order", body, true), AMQP_STATUS_OK);
		n++;
		if (i % 5 == 0) {
			snprintf(body, sizeof(body), "t%03d", i);
			CU_ASSERT_EQUAL(dpublish(c, 1, "", "d.order", body, false), AMQP_STATUS_OK);
			n++;
		}
	}
	struct confirms cf = {0};
	CU_ASSERT(confirms_wait(c, 1, &cf, n));
	CU_ASSERT_EQUAL(qcount(c, "d.order"), 120);

	/* Deliver everything up to p029 with basic.get (on channel 2, no
	 * confirms there); ack what is before p010. */
	CU_ASSERT_FATAL(open_channel(c, 2));
	struct rlist got = {0};
	while (got.n == 0 || strcmp(got.v[got.n - 1].body, "p029") != 0) {
		if (get_one(c, 2, "d.order", false, &got) != 1) {
			CU_FAIL("basic.get ended early");
			break;
		}
		struct rmsg *m = &got.v[got.n - 1];
		CU_ASSERT(!m->redelivered);
		if (atoi(m->body + 1) < 10)
			CU_ASSERT_EQUAL(amqp_basic_ack(c, 2, m->tag, 0), 0);
	}
	CHECK_COUNT(got.n, 36, "messages fetched up to p029");
	rlist_free(&got);
	if (kill9) {
		/* The acks and delivered marks are written; a confirmed
		 * publish afterwards proves they are synced. */
		CU_ASSERT_EQUAL(dpublish(c, 1, "", "d.order", "fence", true), AMQP_STATUS_OK);
		CU_ASSERT(confirms_wait(c, 1, &cf, n + 1));
		db_restart(true);
		conn_drop(c);
	} else {
		/* still unacked when the broker stops */
		db_restart(false);
		conn_drop(c);
	}

	c = dconn();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	size_t want = 90 + (kill9 ? 1 : 0);
	CU_ASSERT_EQUAL(qcount(c, "d.order"), (int)want);
	consume_all(c, 2, "d.order", true, want, &got);
	CHECK_COUNT(got.n, want, "persistent messages after the restart");
	for (int i = 10; i < 100; i++) {
		snprintf(body, sizeof(body), "p%03d", i);
		if (!CHECK_MSG(&got, (size_t)(i - 10), body, i < 30))
			break; /* one failure says it */
	}
	if (kill9)
		CHECK_MSG(&got, 90, "fence", false);
	for (size_t i = 0; i < got.n; i++)
		CU_ASSERT(got.v[i].body[0] != 't');
	rlist_free(&got);
	amqp_basic_qos(c, 1, 0, 0, 0); /* a round trip: the acks are in */
	CU_ASSERT_EQUAL(qcount(c, "d.order"), 0);
	broker_disconnect(c);

	/* all acked now: nothing comes back */
	db_restart(false);
	c = dconn();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_EQUAL(qcount(c, "d.order"), 0);
	broker_disconnect(c);
	db_done();
}

void test_order_acks_clean_stop(void)
{
	if (!broker_external())
		order_case(false);
}

void test_order_acks_kill9(void)
{
	if (!broker_external())
		order_case(true);
}

/* ---- one message in two queues, reject and nack ------------------------------- */

/* A fanout puts each message in two durable queues: acking all of them in
 * one leaves the other untouched; in the other, a message rejected with
 * requeue=false stays gone, one nacked with requeue=true comes back
 * redelivered in its place, and acked ones stay gone. */
void test_two_queues_reject(void)
{
	if (broker_external())
		return;
	db_setup();
	amqp_connection_state_t c = dconn();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT(xdecl(c, "d.fan2", "fanout", true));
	CU_ASSERT(dqdecl(c, "d.s1", true));
	CU_ASSERT(dqdecl(c, "d.s2", true));
	CU_ASSERT(qbind(c, "d.s1", "d.fan2", "", amqp_empty_table));
	CU_ASSERT(qbind(c, "d.s2", "d.fan2", "", amqp_empty_table));
	CU_ASSERT_FATAL(confirm_select(c, 1));
	char body[32];
	for (int i = 0; i < 10; i++) {
		snprintf(body, sizeof(body), "s%d", i);
		CU_ASSERT_EQUAL(dpublish(c, 1, "d.fan2", "", body, true), AMQP_STATUS_OK);
	}
	struct confirms cf = {0};
	CU_ASSERT(confirms_wait(c, 1, &cf, 10));

	struct rlist got = {0};
	consume_all(c, 2, "d.s1", true, 10, &got);
	CHECK_COUNT(got.n, 10, "messages in d.s1");
	rlist_free(&got);
	amqp_channel_close(c, 2, AMQP_REPLY_SUCCESS); /* no consumer on d.s1 any more */
	CU_ASSERT_FATAL(open_channel(c, 3));
	for (int i = 0; i < 6; i++)
		CU_ASSERT_EQUAL(get_one(c, 3, "d.s2", false, &got), 1);
	CU_ASSERT_FATAL(got.n == 6);
	CU_ASSERT_EQUAL(amqp_basic_reject(c, 3, got.v[0].tag, 0), 0);  /* s0: dropped */
	CU_ASSERT_EQUAL(amqp_basic_nack(c, 3, got.v[1].tag, 0, 1), 0); /* s1: requeued */
	CU_ASSERT_EQUAL(amqp_basic_ack(c, 3, got.v[2].tag, 0), 0);     /* s2: done */
	rlist_free(&got);                                              /* s3..s5 unacked */
	/* confirmed after all that: the acks, the reject and the delivered
	 * marks are on disk */
	CU_ASSERT_EQUAL(dpublish(c, 1, "d.fan2", "", "f", true), AMQP_STATUS_OK);
	CU_ASSERT(confirms_wait(c, 1, &cf, 11));
	db_restart(true);
	conn_drop(c);

	c = dconn();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	consume_all(c, 2, "d.s1", true, 1, &got);
	CHECK_COUNT(got.n, 1, "d.s1 after kill -9 (everything else was acked)");
	CHECK_MSG(&got, 0, "f", false);
	rlist_free(&got);
	consume_all(c, 3, "d.s2", true, 9, &got);
	CHECK_COUNT(got.n, 9, "d.s2 after kill -9");
	const char *want[] = {"s1", "s3", "s4", "s5", "s6", "s7", "s8", "s9", "f"};
	for (int i = 0; i < 9; i++)
		if (!CHECK_MSG(&got, (size_t)i, want[i], i < 4))
			break;
	rlist_free(&got);
	broker_disconnect(c);

	db_restart(false);
	c = dconn();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_EQUAL(qcount(c, "d.s1"), 0);
	CU_ASSERT_EQUAL(qcount(c, "d.s2"), 0);
	broker_disconnect(c);
	db_done();
}

/* ---- kill -9 right after confirms ------------------------------------------------ */

void test_kill9_after_confirms(void)
{
	if (broker_external())
		return;
	db_setup();
	amqp_connection_state_t c = dconn();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT(xdecl(c, "d.fan", "fanout", true));
	CU_ASSERT(dqdecl(c, "d.k1", true));
	CU_ASSERT(dqdecl(c, "d.k2", true));
	CU_ASSERT(qbind(c, "d.k1", "d.fan", "", amqp_empty_table));
	CU_ASSERT(qbind(c, "d.k2", "d.fan", "", amqp_empty_table));
	CU_ASSERT_FATAL(confirm_select(c, 1));

	/* Publish in batches while reading confirms; the moment 1500 are
	 * confirmed, kill -9 (more are in flight then). */
	enum { TOTAL = 4000, KILL_AT = 1500 };
	char body[600];
	memset(body, '.', sizeof(body) - 1);
	body[sizeof(body) - 1] = '\0';
	struct confirms cf = {0};
	int sent = 0;
	while (cf.acked < KILL_AT && !cf.broken) {
		for (int i = 0; i < 50 && sent < TOTAL; i++, sent++) {
			char id[32];
			snprintf(id, sizeof(id), "k%05d", sent + 1); /* = its delivery tag */
			memcpy(body, id, strlen(id));
			if (dpublish(c, 1, "d.fan", "", body, true) != AMQP_STATUS_OK)
				cf.broken = true;
		}
		while (confirms_poll(c, 1, &cf, sent < TOTAL ? 0 : 100) > 0 && cf.acked < KILL_AT)
			;
	}
	uint64_t confirmed = cf.acked;
	db_kill9();
	CU_ASSERT_EQUAL(cf.nacks, 0);
	CU_ASSERT(confirmed >= KILL_AT);
	fprintf(stderr, "\n  [durability] kill -9 after %llu confirmed of %d sent ",
	        (unsigned long long)confirmed, sent);
	conn_drop(c);

	CU_ASSERT_FATAL(db_start());
	c = dconn();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	const char *qs[] = {"d.k1", "d.k2"};
	for (int k = 0; k < 2; k++) {
		struct rlist got = {0};
		consume_all(c, (amqp_channel_t)(2 + k), qs[k], true, confirmed, &got);
		if (got.n < confirmed)
			fprintf(stderr,
			        "\n  [durability] %s: %zu messages after kill -9, %llu were "
			        "confirmed\n",
			        qs[k], got.n, (unsigned long long)confirmed);
		CU_ASSERT(got.n >= confirmed);
		CU_ASSERT(got.n <= (size_t)sent);
		/* in order, no gaps, the confirmed ones first; none redelivered */
		size_t bad = 0;
		for (size_t i = 0; i < got.n; i++) {
			char id[32];
			snprintf(id, sizeof(id), "k%05zu", i + 1);
			if (strncmp(got.v[i].body, id, 6) != 0 || got.v[i].redelivered ||
			    got.v[i].len != sizeof(body) - 1) {
				if (!bad++)
					fprintf(stderr,
					        "\n  [durability] %s: message %zu is \"%.6s\" "
					        "(redelivered %d, %zu bytes), want %s\n",
					        qs[k], i, got.v[i].body, got.v[i].redelivered,
					        got.v[i].len, id);
			}
		}
		CU_ASSERT_EQUAL(bad, 0);
		rlist_free(&got);
	}
	broker_disconnect(c);
	db_done();
}

/* ---- big messages over several segment files ---------------------------------- */

enum { BIG_N = 40, BIG_LEN = 1024 * 1024 };

static void big_fill(unsigned char *b, int id)
{
	for (size_t i = 0; i < BIG_LEN; i++)
		b[i] = (unsigned char)((size_t)id * 31 + i * 7 + i / 1021);
	snprintf((char *)b, 16, "big%02d", id);
}

/* Consume everything in q on channel ch; every body must be big message
 * want[k] (byte for byte) with redelivered as given; acks when ack.
 * Returns how many came. */
static int big_consume(amqp_connection_state_t c, amqp_channel_t ch, const char *q, const int *want,
                       int nwant, bool redelivered, bool ack)
{
	unsigned char *exp = malloc(BIG_LEN);
	if (!exp || !open_channel(c, ch) ||
	    !amqp_basic_consume(c, ch, amqp_cstring_bytes(q), amqp_empty_bytes, 0, 0, 0,
	                        amqp_empty_table)) {
		free(exp);
		return -1;
	}
	int n = 0;
	for (;;) {
		struct timeval tv = {n < nwant ? 10 : 0, n < nwant ? 0 : 300000};
		amqp_envelope_t env;
		amqp_maybe_release_buffers(c);
		if (amqp_consume_message(c, &env, &tv, 0).reply_type != AMQP_RESPONSE_NORMAL)
			break;
		if (n < nwant) {
			big_fill(exp, want[n]);
			bool same = env.message.body.len == BIG_LEN &&
			            memcmp(env.message.body.bytes, exp, BIG_LEN) == 0;
			CU_ASSERT(same);
			CU_ASSERT(env.redelivered == redelivered);
			if ((!same || env.redelivered != redelivered) && ++g_msg_reports <= 5)
				fprintf(stderr,
				        "\n  [durability] %s message %d: want big%02d "
				        "redelivered=%d, got \"%.5s\" (%zu bytes) redelivered=%d\n",
				        q, n, want[n], redelivered,
				        env.message.body.len ? (const char *)env.message.body.bytes
				                             : "",
				        env.message.body.len, env.redelivered);
		}
		if (ack)
			amqp_basic_ack(c, ch, env.delivery_tag, 0);
		n++;
		amqp_destroy_envelope(&env);
	}
	free(exp);
	return n;
}

/* 40 MiB in one queue (the file backend rolls segments at 16 MiB): every
 * other message acked, kill -9, the rest back byte for byte; then all
 * acked, and the space is given back. */
void test_big_messages_segments(void)
{
	if (broker_external())
		return;
	db_setup();
	amqp_connection_state_t c = dconn();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT(dqdecl(c, "d.big", true));
	CU_ASSERT_FATAL(confirm_select(c, 1));
	unsigned char *buf = malloc(BIG_LEN);
	CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
	amqp_basic_properties_t p;
	memset(&p, 0, sizeof(p));
	p._flags = AMQP_BASIC_DELIVERY_MODE_FLAG;
	p.delivery_mode = 2;
	struct confirms cf = {0};
	for (int i = 0; i < BIG_N; i++) {
		big_fill(buf, i);
		CU_ASSERT_EQUAL(amqp_basic_publish(c, 1, amqp_cstring_bytes(""),
		                                   amqp_cstring_bytes("d.big"), 0, 0, &p,
		                                   (amqp_bytes_t){BIG_LEN, buf}),
		                AMQP_STATUS_OK);
		while (confirms_poll(c, 1, &cf, 0) > 0)
			;
	}
	free(buf);
	CU_ASSERT(confirms_wait(c, 1, &cf, BIG_N));

	/* deliver all, ack the odd ones */
	struct rlist got = {0};
	CU_ASSERT_FATAL(open_channel(c, 2));
	while (get_one(c, 2, "d.big", false, &got) == 1)
		;
	CHECK_COUNT(got.n, BIG_N, "big messages delivered");
	for (size_t i = 1; i < got.n; i += 2)
		amqp_basic_ack(c, 2, got.v[i].tag, 0);
	rlist_free(&got);
	CU_ASSERT(dqdecl(c, "d.fence", true));
	CU_ASSERT_EQUAL(dpublish(c, 1, "", "d.fence", "fence", true), AMQP_STATUS_OK);
	CU_ASSERT(confirms_wait(c, 1, &cf, BIG_N + 1));
	db_restart(true);
	conn_drop(c);

	int even[BIG_N / 2];
	for (int i = 0; i < BIG_N / 2; i++)
		even[i] = 2 * i;
	c = dconn();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_EQUAL(qcount(c, "d.big"), BIG_N / 2);
	/* unacked again: they come back after a clean stop too */
	CU_ASSERT_EQUAL(big_consume(c, 2, "d.big", even, BIG_N / 2, true, false), BIG_N / 2);
	db_restart(false);
	conn_drop(c);

	c = dconn();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_EQUAL(big_consume(c, 2, "d.big", even, BIG_N / 2, true, true), BIG_N / 2);
	CU_ASSERT_EQUAL(qcount(c, "d.big"), 0);
	broker_disconnect(c);
	db_restart(false);
	c = dconn();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_EQUAL(qcount(c, "d.big"), 0);
	broker_disconnect(c);
	/* every message acked and two restarts later, the segment files
	 * holding them are gone */
	long long du = dir_bytes(g_dir);
	CU_ASSERT(du < 2 * BIG_LEN);
	if (du >= 2 * BIG_LEN)
		fprintf(stderr, "\n  [durability] %lld bytes left in %s with every message acked\n",
		        du, g_dir);
	db_done();
}

/* ---- messages paged out (--queue-memory-budget) --------------------------------- */

enum { PG_N = 300 };

static bool pg_persistent(int i)
{
	return i % 10 != 9;
}

static size_t pg_len(int i)
{
	return 500 + (size_t)(i * 997) % 3000;
}

static void pg_fill(unsigned char *b, int i)
{
	for (size_t k = 0; k < pg_len(i); k++)
		b[k] = (unsigned char)(i * 13 + k * 5);
	char hdr[24];
	int n = snprintf(hdr, sizeof(hdr), "pg%03d|", i);
	memcpy(b, hdr, (size_t)n);
}

/* Message number want (or -1: none expected) received with these
 * properties, body and flag: one assertion, and the first few differences
 * printed. */
static void pg_check(const char *q, int want, const amqp_basic_properties_t *p, amqp_bytes_t body,
                     bool redelivered, bool want_redelivered)
{
	unsigned char exp[4096];
	char id[16] = "";
	bool ok = want >= 0;
	if (ok) {
		pg_fill(exp, want);
		snprintf(id, sizeof(id), "id%03d", want);
		ok = body.len == pg_len(want) && memcmp(body.bytes, exp, body.len) == 0 &&
		     (p->_flags & AMQP_BASIC_MESSAGE_ID_FLAG) && bytes_eq(p->message_id, id) &&
		     p->delivery_mode == 2 && (p->_flags & AMQP_BASIC_HEADERS_FLAG) &&
		     p->headers.num_entries == 1 &&
		     p->headers.entries[0].value.kind == AMQP_FIELD_KIND_I32 &&
		     p->headers.entries[0].value.value.i32 == want &&
		     redelivered == want_redelivered;
	}
	CU_ASSERT(ok);
	if (!ok && ++g_msg_reports <= 5)
		fprintf(stderr,
		        "\n  [durability] %s: want %s redelivered=%d, got \"%.6s\" (%zu bytes, "
		        "message-id %.*s) redelivered=%d\n",
		        q, want >= 0 ? id : "nothing", want_redelivered,
		        body.len ? (const char *)body.bytes : "", body.len,
		        (p->_flags & AMQP_BASIC_MESSAGE_ID_FLAG) ? (int)p->message_id.len : 0,
		        (const char *)p->message_id.bytes, redelivered);
}

/* Consume all of q on channel ch and check it is the persistent messages
 * from..PG_N-1 in order, those below redelivered_below redelivered, then
 * a message with body trailer (unless NULL); ack them. */
static void pg_consume(amqp_connection_state_t c, amqp_channel_t ch, const char *q, int from,
                       int redelivered_below, const char *trailer)
{
	int want[PG_N], nwant = 0, n = 0;
	for (int i = from; i < PG_N; i++)
		if (pg_persistent(i))
			want[nwant++] = i;
	CU_ASSERT_FATAL(open_channel(c, ch));
	CU_ASSERT_FATAL(amqp_basic_consume(c, ch, amqp_cstring_bytes(q), amqp_empty_bytes, 0, 0, 0,
	                                   amqp_empty_table) != NULL);
	for (;;) {
		bool more = n < nwant + (trailer ? 1 : 0);
		struct timeval tv = {more ? 10 : 0, more ? 0 : 300000};
		amqp_envelope_t env;
		amqp_maybe_release_buffers(c);
		if (amqp_consume_message(c, &env, &tv, 0).reply_type != AMQP_RESPONSE_NORMAL)
			break;
		if (n == nwant && trailer) {
			CU_ASSERT(bytes_eq(env.message.body, trailer) && !env.redelivered);
		} else {
			int w = n < nwant ? want[n] : -1;
			pg_check(q, w, &env.message.properties, env.message.body, env.redelivered,
			         w >= 0 && w < redelivered_below);
		}
		amqp_basic_ack(c, ch, env.delivery_tag, 0);
		amqp_destroy_envelope(&env);
		n++;
	}
	char what[128];
	snprintf(what, sizeof(what), "messages in %s", q);
	CHECK_COUNT(n, nwant + (trailer ? 1 : 0), what);
	amqp_channel_close(c, ch, AMQP_REPLY_SUCCESS);
}

/* With a 64 KiB --queue-memory-budget most persistent messages of durable
 * queues wait on disk only and are read back for delivery, before and
 * after a restart (which then keeps only index entries in memory): bodies,
 * properties, order and redelivered flags must come through unchanged. */
void test_paged_out_messages(void)
{
	if (broker_external())
		return;
	db_setup();
	g_opt[0] = "--queue-memory-budget";
	g_opt[1] = "65536";
	CU_ASSERT_EQUAL_FATAL(broker_stop(&g_db), 0);
	CU_ASSERT_FATAL(db_start());
	amqp_connection_state_t c = dconn();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT(xdecl(c, "d.pfan", "fanout", true));
	CU_ASSERT(dqdecl(c, "d.pg1", true));
	CU_ASSERT(dqdecl(c, "d.pg2", true));
	CU_ASSERT(qbind(c, "d.pg1", "d.pfan", "", amqp_empty_table));
	CU_ASSERT(qbind(c, "d.pg2", "d.pfan", "", amqp_empty_table));
	CU_ASSERT_FATAL(confirm_select(c, 1));
	unsigned char buf[4096];
	struct confirms cf = {0};
	for (int i = 0; i < PG_N; i++) {
		char id[16];
		snprintf(id, sizeof(id), "id%03d", i);
		amqp_table_entry_t h = {amqp_cstring_bytes("i"), {AMQP_FIELD_KIND_I32, {.i32 = i}}};
		amqp_basic_properties_t p;
		memset(&p, 0, sizeof(p));
		p._flags = AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_MESSAGE_ID_FLAG |
		           AMQP_BASIC_HEADERS_FLAG;
		p.delivery_mode = pg_persistent(i) ? 2 : 1;
		p.message_id = amqp_cstring_bytes(id);
		p.headers = (amqp_table_t){1, &h};
		pg_fill(buf, i);
		CU_ASSERT_EQUAL(amqp_basic_publish(c, 1, amqp_cstring_bytes("d.pfan"),
		                                   amqp_empty_bytes, 0, 0, &p,
		                                   (amqp_bytes_t){pg_len(i), buf}),
		                AMQP_STATUS_OK);
		while (confirms_poll(c, 1, &cf, 0) > 0)
			;
	}
	CU_ASSERT(confirms_wait(c, 1, &cf, PG_N));
	CU_ASSERT_EQUAL(qcount(c, "d.pg1"), PG_N);

	/* Read the first 100 of d.pg1 back (paged in) with basic.get; ack
	 * those below 50, leave the rest unacked. */
	CU_ASSERT_FATAL(open_channel(c, 2));
	for (int i = 0; i < 100; i++) {
		amqp_rpc_reply_t r = amqp_basic_get(c, 2, amqp_cstring_bytes("d.pg1"), 0);
		CU_ASSERT_FATAL(r.reply_type == AMQP_RESPONSE_NORMAL &&
		                r.reply.id == AMQP_BASIC_GET_OK_METHOD);
		const amqp_basic_get_ok_t *ok = r.reply.decoded;
		uint64_t tag = ok->delivery_tag;
		bool redelivered = ok->redelivered;
		amqp_message_t m;
		CU_ASSERT_FATAL(amqp_read_message(c, 2, &m, 0).reply_type == AMQP_RESPONSE_NORMAL);
		if (pg_persistent(i)) {
			pg_check("d.pg1", i, &m.properties, m.body, redelivered, false);
		} else {
			CU_ASSERT_EQUAL(m.properties.delivery_mode, 1);
			CU_ASSERT(m.body.len == pg_len(i));
		}
		amqp_destroy_message(&m);
		if (i < 50)
			amqp_basic_ack(c, 2, tag, 0);
	}
	CU_ASSERT_EQUAL(dpublish(c, 1, "", "d.pg1", "fence", true), AMQP_STATUS_OK);
	CU_ASSERT(confirms_wait(c, 1, &cf, PG_N + 1));
	db_restart(true);
	conn_drop(c);

	c = dconn();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_EQUAL(qcount(c, "d.pg1"), 225 + 1);
	CU_ASSERT_EQUAL(qcount(c, "d.pg2"), 270);
	pg_consume(c, 3, "d.pg2", 0, 0, NULL);
	/* d.pg1: 50..299 (persistent only), 50..99 redelivered, then the fence */
	pg_consume(c, 2, "d.pg1", 50, 100, "fence");
	CU_ASSERT_EQUAL(qcount(c, "d.pg1"), 0);
	broker_disconnect(c);

	db_restart(false);
	c = dconn();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_EQUAL(qcount(c, "d.pg1"), 0);
	CU_ASSERT_EQUAL(qcount(c, "d.pg2"), 0);
	broker_disconnect(c);
	db_done();
}
