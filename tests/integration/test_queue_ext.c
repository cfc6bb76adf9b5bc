/*
 * test_queue_ext.c - the queue extensions where a broker of their own, a
 * restart or a kill -9 matter (the protocol-level behaviour of each is in
 * tests/interop/test_pika_queue_ext.py):
 *
 *   - the consumer timeout: --consumer-timeout closes the channel with
 *     RabbitMQ's 406 and requeues; x-consumer-timeout of a consumer does
 *     the same; with --consumer-timeout-response notify_consumer the
 *     consumer gets basic.cancel, its deliveries are requeued and a late
 *     ack of one is ignored, not refused;
 *   - dead-lettering across a kill -9: rejected messages are in exactly
 *     one of the two queues afterwards, none lost, none in both;
 *   - TTL and x-expires while the broker is down: what expired meanwhile
 *     is dead-lettered and the unused queue deleted after the restart;
 *   - BCC is not in the stored copy either;
 *   - delayed messages survive a kill -9 and go out when due, also when
 *     that was while amqpd was down;
 *   - a deduplication cache survives a kill -9;
 *   - a priority queue keeps its order when its messages are paged out,
 *     also after a restart.
 *
 * Each test runs its own amqpd on a fresh data directory (durability.h).
 * Waits are for conditions; the only waits for time itself are for the
 * wall clock to pass a TTL while no broker runs.  Skipped against an
 * external broker.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <amqp.h>
#include <amqp_framing.h>

#include "itest.h"
#include "itest_util.h"
#include "durability.h"

static amqp_table_entry_t i32_arg(const char *k, int32_t v)
{
	amqp_table_entry_t e = {amqp_cstring_bytes(k), {AMQP_FIELD_KIND_I32, {.i32 = v}}};
	return e;
}

static amqp_table_entry_t str_arg(const char *k, const char *v)
{
	amqp_table_entry_t e = {amqp_cstring_bytes(k), {AMQP_FIELD_KIND_UTF8, {.bytes = {0}}}};
	e.value.value.bytes = amqp_cstring_bytes(v);
	return e;
}

static bool declare(amqp_connection_state_t c, const char *q, bool durable,
                    amqp_table_entry_t *args, int nargs)
{
	amqp_table_t t = {nargs, args};
	amqp_queue_declare(c, 1, amqp_cstring_bytes(q), 0, durable, 0, 0, t);
	return rpc_ok(c);
}

/* Wait up to 10 s for q to hold n ready messages (-404: to be gone). */
static bool wait_count(amqp_connection_state_t c, const char *q, int n)
{
	int64_t end = now_ms() + 10000;
	int got;
	while ((got = qcount(c, q)) != n && now_ms() < end)
		sleep_ms(20);
	if (got != n)
		fprintf(stderr, "\n  [queue_ext] %s: %d messages, want %d\n", q, got, n);
	return got == n;
}

/* Read frames on c until `n` deliveries came on channel ch; their tags go
 * to tags.  false on anything else before that or after 10 s. */
static bool take_deliveries(amqp_connection_state_t c, amqp_channel_t ch, int n, uint64_t *tags)
{
	for (int i = 0; i < n; i++) {
		amqp_envelope_t env;
		struct timeval tv = {10, 0};
		amqp_maybe_release_buffers(c);
		amqp_rpc_reply_t r = amqp_consume_message(c, &env, &tv, 0);
		if (r.reply_type != AMQP_RESPONSE_NORMAL || env.channel != ch)
			return false;
		tags[i] = env.delivery_tag;
		amqp_destroy_envelope(&env);
	}
	return true;
}

static bool consume(amqp_connection_state_t c, amqp_channel_t ch, const char *q,
                    amqp_table_entry_t *args, int nargs)
{
	if (!open_channel(c, ch))
		return false;
	amqp_basic_qos(c, ch, 0, 10, 0);
	amqp_table_t t = {nargs, args};
	amqp_basic_consume(c, ch, amqp_cstring_bytes(q), amqp_cstring_bytes("ctag"), 0, 0, 0, t);
	return rpc_ok(c);
}

static const char TIMEOUT_TEXT[] =
    "PRECONDITION_FAILED - delivery acknowledgement on channel 2 timed out. Timeout value "
    "used: 200 ms. This timeout value can be configured, see consumers doc guide to learn "
    "more";

/* --consumer-timeout: the channel is closed with 406 and what it held is
 * back in the queue, redelivered. */
static void test_consumer_timeout_closes_channel(void)
{
	if (broker_external())
		return;
	db_setup();
	g_opt[0] = "--consumer-timeout";
	g_opt[1] = "200";
	db_restart(false);
	amqp_connection_state_t c = dconn();
	CU_ASSERT_FATAL(c != NULL);
	CU_ASSERT(declare(c, "ct", false, NULL, 0));
	CU_ASSERT_FATAL(consume(c, 2, "ct", NULL, 0));
	dpublish(c, 1, "", "ct", "one", false);
	dpublish(c, 1, "", "ct", "two", false);
	uint64_t tags[2];
	CU_ASSERT_FATAL(take_deliveries(c, 2, 2, tags));
	struct close_info ci = wait_close(c, 2, 10000);
	CHECK_CLOSE(ci, CLOSE_CHANNEL, 406, TIMEOUT_TEXT);
	CU_ASSERT(wait_count(c, "ct", 2));
	struct rlist l = {0};
	CU_ASSERT_EQUAL(get_one(c, 1, "ct", true, &l), 1);
	CHECK_MSG(&l, 0, "one", true);
	rlist_free(&l);
	broker_disconnect(c);
	db_done();
}

/* x-consumer-timeout on basic.consume wins over the broker's 30 minutes. */
static void test_consumer_timeout_per_consumer(void)
{
	if (broker_external())
		return;
	db_setup();
	amqp_connection_state_t c = dconn();
	CU_ASSERT_FATAL(c != NULL);
	CU_ASSERT(declare(c, "ctc", false, NULL, 0));
	amqp_table_entry_t a[] = {i32_arg("x-consumer-timeout", 200)};
	CU_ASSERT_FATAL(consume(c, 2, "ctc", a, 1));
	dpublish(c, 1, "", "ctc", "one", false);
	uint64_t tag;
	CU_ASSERT_FATAL(take_deliveries(c, 2, 1, &tag));
	struct close_info ci = wait_close(c, 2, 10000);
	CHECK_CLOSE(ci, CLOSE_CHANNEL, 406, TIMEOUT_TEXT);
	CU_ASSERT(wait_count(c, "ctc", 1));
	broker_disconnect(c);
	db_done();
}

/* notify_consumer: basic.cancel, every delivery of the consumer requeued,
 * a late ack ignored and the channel still usable. */
static void test_consumer_timeout_notify_consumer(void)
{
	if (broker_external())
		return;
	db_setup();
	g_opt[0] = "--consumer-timeout-response";
	g_opt[1] = "notify_consumer";
	db_restart(false);
	amqp_connection_state_t c = conn_open_cancel_notify(&g_db);
	CU_ASSERT_FATAL(c != NULL);
	amqp_table_entry_t qa[] = {i32_arg("x-consumer-timeout", 200)};
	CU_ASSERT(declare(c, "ctn", false, qa, 1));
	CU_ASSERT_FATAL(consume(c, 2, "ctn", NULL, 0));
	for (int i = 0; i < 3; i++)
		dpublish(c, 1, "", "ctn", "m", false);
	uint64_t tags[3];
	CU_ASSERT_FATAL(take_deliveries(c, 2, 3, tags));
	/* The next frame on channel 2 is the server's basic.cancel. */
	bool cancelled = false;
	int64_t end = now_ms() + 10000;
	while (!cancelled && now_ms() < end) {
		amqp_frame_t f;
		struct timeval tv = {0, 100000};
		if (amqp_simple_wait_frame_noblock(c, &f, &tv) != AMQP_STATUS_OK)
			continue;
		if (f.frame_type == AMQP_FRAME_METHOD && f.channel == 2) {
			CU_ASSERT_EQUAL(f.payload.method.id, AMQP_BASIC_CANCEL_METHOD);
			if (f.payload.method.id == AMQP_BASIC_CANCEL_METHOD) {
				amqp_basic_cancel_t *bc = f.payload.method.decoded;
				CU_ASSERT(bytes_eq(bc->consumer_tag, "ctag"));
				cancelled = true;
			}
		}
	}
	CU_ASSERT_FATAL(cancelled);
	CU_ASSERT(wait_count(c, "ctn", 3));
	amqp_basic_ack(c, 2, tags[1], 0); /* late: ignored */
	amqp_queue_declare(c, 2, amqp_cstring_bytes("ctn"), 1, 0, 0, 0, amqp_empty_table);
	CU_ASSERT(rpc_ok(c)); /* the channel is still open */
	CU_ASSERT(wait_count(c, "ctn", 3));
	broker_disconnect(c);
	db_done();
}

/* Reject 40 persistent messages into a dead-letter queue and kill -9 at
 * once: afterwards each is in exactly one of the two queues. */
static void test_dead_letter_kill9_exactly_once(void)
{
	if (broker_external())
		return;
	db_setup();
	amqp_connection_state_t c = dconn();
	CU_ASSERT_FATAL(c != NULL);
	amqp_table_entry_t a[] = {str_arg("x-dead-letter-exchange", ""),
	                          str_arg("x-dead-letter-routing-key", "dlk-b")};
	CU_ASSERT(declare(c, "dlk-b", true, NULL, 0));
	CU_ASSERT(declare(c, "dlk-a", true, a, 2));
	CU_ASSERT_FATAL(confirm_select(c, 1));
	enum { N = 40 };
	char body[16];
	for (int i = 0; i < N; i++) {
		snprintf(body, sizeof(body), "m%02d", i);
		dpublish(c, 1, "", "dlk-a", body, true);
	}
	struct confirms cf = {0};
	CU_ASSERT_FATAL(confirms_wait(c, 1, &cf, N));
	struct rlist got = {0};
	consume_all(c, 2, "dlk-a", false, N, &got);
	CHECK_COUNT(got.n, N, "deliveries");
	for (size_t i = 0; i < got.n; i++)
		amqp_basic_reject(c, 2, got.v[i].tag, 0);
	/* A synchronous call after the rejects: they have all been handled. */
	amqp_queue_declare(c, 1, amqp_cstring_bytes("dlk-b"), 1, 0, 0, 0, amqp_empty_table);
	CU_ASSERT(rpc_ok(c));
	rlist_free(&got);
	conn_drop(c);
	db_restart(true);
	c = dconn();
	CU_ASSERT_FATAL(c != NULL);
	bool seen[N] = {false};
	size_t total = 0;
	const char *qs[] = {"dlk-a", "dlk-b"};
	for (int k = 0; k < 2; k++) {
		struct rlist l = {0};
		while (get_one(c, 1, qs[k], true, &l) == 1)
			;
		for (size_t i = 0; i < l.n; i++) {
			int n = atoi(l.v[i].body + 1);
			CU_ASSERT(n >= 0 && n < N && !seen[n]); /* never in both */
			if (n >= 0 && n < N)
				seen[n] = true;
			total++;
		}
		rlist_free(&l);
	}
	CHECK_COUNT(total, N, "messages in the two queues after kill -9");
	broker_disconnect(c);
	db_done();
}

/* Wait up to 10 s for q to be gone, probing with queue.bind on channel 3:
 * a declare, even a passive one, renews x-expires (as at RabbitMQ). */
static bool wait_gone(amqp_connection_state_t c, const char *q)
{
	int64_t end = now_ms() + 10000;
	while (now_ms() < end) {
		if (!open_channel(c, 3))
			return false;
		amqp_queue_bind(c, 3, amqp_cstring_bytes(q), amqp_cstring_bytes("amq.fanout"),
		                amqp_empty_bytes, amqp_empty_table);
		if (!rpc_ok(c)) {
			struct close_info ci = rpc_close(c, 3);
			return ci.kind == CLOSE_CHANNEL && ci.code == 404;
		}
		amqp_queue_unbind(c, 3, amqp_cstring_bytes(q), amqp_cstring_bytes("amq.fanout"),
		                  amqp_empty_bytes, amqp_empty_table);
		amqp_channel_close(c, 3, AMQP_REPLY_SUCCESS);
		sleep_ms(20);
	}
	fprintf(stderr, "\n  [queue_ext] %s: still there\n", q);
	return false;
}

/* Let the wall clock pass `ms` while no broker runs. */
static void wall_wait(int ms)
{
	int64_t end = now_ms() + ms;
	while (now_ms() < end)
		sleep_ms(end - now_ms() > 50 ? 50 : (int)(end - now_ms()));
}

/* Messages whose TTL runs out while amqpd is stopped are dead-lettered
 * after the restart; an unused x-expires queue is deleted. */
static void test_ttl_and_expires_while_down(void)
{
	if (broker_external())
		return;
	db_setup();
	amqp_connection_state_t c = dconn();
	CU_ASSERT_FATAL(c != NULL);
	amqp_table_entry_t a[] = {i32_arg("x-message-ttl", 300),
	                          str_arg("x-dead-letter-exchange", ""),
	                          str_arg("x-dead-letter-routing-key", "ttl-dead")};
	amqp_table_entry_t e[] = {i32_arg("x-expires", 300)};
	amqp_table_entry_t keep[] = {i32_arg("x-expires", 3600000)};
	CU_ASSERT(declare(c, "ttl-dead", true, NULL, 0));
	CU_ASSERT(declare(c, "ttl-src", true, a, 3));
	CU_ASSERT(declare(c, "exp-q", true, e, 1));
	CU_ASSERT(declare(c, "exp-keep", true, keep, 1));
	CU_ASSERT_FATAL(confirm_select(c, 1));
	for (int i = 0; i < 5; i++)
		dpublish(c, 1, "", "ttl-src", "t", true);
	struct confirms cf = {0};
	CU_ASSERT_FATAL(confirms_wait(c, 1, &cf, 5));
	broker_disconnect(c);
	CU_ASSERT_EQUAL(broker_stop(&g_db), 0);
	wall_wait(400);
	CU_ASSERT_FATAL(db_start());
	c = dconn();
	CU_ASSERT_FATAL(c != NULL);
	CU_ASSERT(wait_count(c, "ttl-dead", 5));
	CU_ASSERT(wait_count(c, "ttl-src", 0));
	CU_ASSERT(wait_gone(c, "exp-q"));
	CU_ASSERT_EQUAL(qcount(c, "exp-keep"), 0);
	broker_disconnect(c);
	db_done();
}

/* Whether the next basic.get of q has header `h`: 1 yes, 0 no, -1 none. */
static int get_has_header(amqp_connection_state_t c, const char *q, const char *h)
{
	amqp_rpc_reply_t r = amqp_basic_get(c, 1, amqp_cstring_bytes(q), 1);
	if (r.reply_type != AMQP_RESPONSE_NORMAL || r.reply.id != AMQP_BASIC_GET_OK_METHOD)
		return -1;
	amqp_message_t m;
	if (amqp_read_message(c, 1, &m, 0).reply_type != AMQP_RESPONSE_NORMAL)
		return -1;
	int found = 0;
	if (m.properties._flags & AMQP_BASIC_HEADERS_FLAG)
		for (int i = 0; i < m.properties.headers.num_entries; i++)
			if (bytes_eq(m.properties.headers.entries[i].key, h))
				found = 1;
	amqp_destroy_message(&m);
	return found;
}

/* The stored copies have no BCC header: after a kill -9 neither the
 * routing-key receiver nor the blind one sees it. */
static void test_bcc_not_stored(void)
{
	if (broker_external())
		return;
	db_setup();
	amqp_connection_state_t c = dconn();
	CU_ASSERT_FATAL(c != NULL);
	CU_ASSERT(declare(c, "bcc-to", true, NULL, 0));
	CU_ASSERT(declare(c, "bcc-blind", true, NULL, 0));
	CU_ASSERT_FATAL(confirm_select(c, 1));
	amqp_field_value_t blind = {AMQP_FIELD_KIND_UTF8,
	                            {.bytes = amqp_cstring_bytes("bcc-blind")}};
	amqp_table_entry_t h[] = {
	    {amqp_cstring_bytes("BCC"), {AMQP_FIELD_KIND_ARRAY, {.array = {1, &blind}}}},
	    str_arg("other", "kept")};
	amqp_basic_properties_t p;
	memset(&p, 0, sizeof(p));
	p._flags = AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_HEADERS_FLAG;
	p.delivery_mode = 2;
	p.headers = (amqp_table_t){2, h};
	amqp_basic_publish(c, 1, amqp_cstring_bytes(""), amqp_cstring_bytes("bcc-to"), 0, 0, &p,
	                   amqp_cstring_bytes("secret"));
	struct confirms cf = {0};
	CU_ASSERT_FATAL(confirms_wait(c, 1, &cf, 1));
	conn_drop(c);
	db_restart(true);
	c = dconn();
	CU_ASSERT_FATAL(c != NULL);
	CU_ASSERT_EQUAL(get_has_header(c, "bcc-to", "BCC"), 0);
	CU_ASSERT_EQUAL(get_has_header(c, "bcc-blind", "BCC"), 0);
	broker_disconnect(c);
	db_done();
}

/* Delayed messages of a durable x-delayed-message exchange survive a
 * kill -9; those due while amqpd was down go out after the restart, the
 * others keep waiting. */
static void test_delayed_survives_kill9(void)
{
	if (broker_external())
		return;
	db_setup();
	amqp_connection_state_t c = dconn();
	CU_ASSERT_FATAL(c != NULL);
	amqp_table_entry_t xa[] = {str_arg("x-delayed-type", "direct")};
	amqp_exchange_declare(c, 1, amqp_cstring_bytes("dl-x"),
	                      amqp_cstring_bytes("x-delayed-message"), 0, 1, 0, 0,
	                      (amqp_table_t){1, xa});
	CU_ASSERT_FATAL(rpc_ok(c));
	CU_ASSERT(declare(c, "dl-q", true, NULL, 0));
	CU_ASSERT(qbind(c, "dl-q", "dl-x", "k", amqp_empty_table));
	CU_ASSERT_FATAL(confirm_select(c, 1));
	for (int i = 0; i < 6; i++) {
		amqp_table_entry_t h[] = {i32_arg("x-delay", i < 5 ? 300 : 3600000)};
		amqp_basic_properties_t p;
		memset(&p, 0, sizeof(p));
		p._flags = AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_HEADERS_FLAG;
		p.delivery_mode = 2;
		p.headers = (amqp_table_t){1, h};
		amqp_basic_publish(c, 1, amqp_cstring_bytes("dl-x"), amqp_cstring_bytes("k"), 0, 0,
		                   &p, amqp_cstring_bytes(i < 5 ? "soon" : "later"));
	}
	struct confirms cf = {0};
	CU_ASSERT_FATAL(confirms_wait(c, 1, &cf, 6));
	CU_ASSERT_EQUAL(qcount(c, "dl-q"), 0);
	CU_ASSERT_EQUAL(qcount(c, "amq.delayed.dl-x"), 6);
	conn_drop(c);
	db_kill9();
	wall_wait(400); /* the five are due while nothing runs */
	CU_ASSERT_FATAL(db_start());
	c = dconn();
	CU_ASSERT_FATAL(c != NULL);
	CU_ASSERT(wait_count(c, "dl-q", 5));
	CU_ASSERT_EQUAL(qcount(c, "amq.delayed.dl-x"), 1);
	broker_disconnect(c);
	db_restart(false);
	c = dconn();
	CU_ASSERT_FATAL(c != NULL);
	CU_ASSERT_EQUAL(qcount(c, "dl-q"), 5); /* released once, not again */
	CU_ASSERT_EQUAL(qcount(c, "amq.delayed.dl-x"), 1);
	broker_disconnect(c);
	db_done();
}

/* Publish body with x-deduplication-header = key to q on channel 1. */
static void publish_keyed(amqp_connection_state_t c, const char *q, const char *key)
{
	amqp_table_entry_t h[] = {str_arg("x-deduplication-header", key)};
	amqp_basic_properties_t p;
	memset(&p, 0, sizeof(p));
	p._flags = AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_HEADERS_FLAG;
	p.delivery_mode = 2;
	p.headers = (amqp_table_t){1, h};
	amqp_basic_publish(c, 1, amqp_cstring_bytes(""), amqp_cstring_bytes(q), 0, 0, &p,
	                   amqp_cstring_bytes(key));
}

/* The deduplication cache of a durable queue survives a kill -9: a
 * duplicate of a confirmed message sent afterwards is dropped (and
 * confirmed). */
static void test_dedup_survives_kill9(void)
{
	if (broker_external())
		return;
	db_setup();
	amqp_connection_state_t c = dconn();
	CU_ASSERT_FATAL(c != NULL);
	amqp_field_value_t t = {AMQP_FIELD_KIND_BOOLEAN, {.boolean = 1}};
	amqp_table_entry_t a[] = {{amqp_cstring_bytes("x-message-deduplication"), t}};
	CU_ASSERT(declare(c, "dd-q", true, a, 1));
	CU_ASSERT_FATAL(confirm_select(c, 1));
	publish_keyed(c, "dd-q", "k1");
	publish_keyed(c, "dd-q", "k1");
	struct confirms cf = {0};
	CU_ASSERT_FATAL(confirms_wait(c, 1, &cf, 2));
	CU_ASSERT_EQUAL(qcount(c, "dd-q"), 1);
	conn_drop(c);
	db_restart(true);
	c = dconn();
	CU_ASSERT_FATAL(c != NULL);
	CU_ASSERT_FATAL(confirm_select(c, 1));
	publish_keyed(c, "dd-q", "k1"); /* seen before the crash: dropped */
	publish_keyed(c, "dd-q", "k2");
	struct confirms cf2 = {0};
	CU_ASSERT(confirms_wait(c, 1, &cf2, 2));
	CU_ASSERT_EQUAL(qcount(c, "dd-q"), 2);
	CU_ASSERT_EQUAL(qcount(c, "amq.dedup.q.dd-q"), 2);
	amqp_queue_delete(c, 1, amqp_cstring_bytes("dd-q"), 0, 0);
	CU_ASSERT(rpc_ok(c));
	CU_ASSERT_EQUAL(qcount(c, "amq.dedup.q.dd-q"), -404); /* gone with its queue */
	broker_disconnect(c);
	db_done();
}

/* Take up to max messages of q with basic.get; each body is
 * "<priority>:<index>".  Checks higher priorities first and FIFO within
 * one; returns how many. */
static int drain_prio(amqp_connection_state_t c, const char *q, int max)
{
	int n = 0, last_p = 256, last_i = -1;
	bool ordered = true;
	while (n < max) {
		amqp_rpc_reply_t r = amqp_basic_get(c, 1, amqp_cstring_bytes(q), 1);
		if (r.reply_type != AMQP_RESPONSE_NORMAL || r.reply.id != AMQP_BASIC_GET_OK_METHOD)
			break;
		amqp_message_t m;
		if (amqp_read_message(c, 1, &m, 0).reply_type != AMQP_RESPONSE_NORMAL)
			break;
		char b[32];
		size_t len = m.body.len < sizeof(b) - 1 ? m.body.len : sizeof(b) - 1;
		memcpy(b, m.body.bytes, len);
		b[len] = 0;
		amqp_destroy_message(&m);
		int p = atoi(b), i = atoi(strchr(b, ':') ? strchr(b, ':') + 1 : b);
		if (p > last_p || (p == last_p && i < last_i))
			ordered = false;
		last_p = p;
		last_i = i;
		n++;
	}
	CU_ASSERT(ordered);
	return n;
}

/* A priority queue whose persistent messages are paged out (a 64 KiB
 * memory budget): still highest priority first, FIFO within a priority,
 * before and after a restart. */
static void test_priority_paged_out(void)
{
	if (broker_external())
		return;
	db_setup();
	g_opt[0] = "--queue-memory-budget";
	g_opt[1] = "65536";
	db_restart(false);
	amqp_connection_state_t c = dconn();
	CU_ASSERT_FATAL(c != NULL);
	amqp_table_entry_t a[] = {i32_arg("x-max-priority", 9)};
	CU_ASSERT(declare(c, "pp-q", true, a, 1));
	CU_ASSERT_FATAL(confirm_select(c, 1));
	enum { N = 1200 };
	char body[1024];
	memset(body, 'x', sizeof(body));
	for (int i = 0; i < N; i++) {
		amqp_basic_properties_t p;
		memset(&p, 0, sizeof(p));
		p._flags = AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_PRIORITY_FLAG;
		p.delivery_mode = 2;
		p.priority = (uint8_t)((i * 7) % 12); /* 10 and 11 count as 9 */
		int w = snprintf(body, 32, "%d:%d", p.priority > 9 ? 9 : p.priority, i);
		body[w] = ' ';
		amqp_basic_publish(c, 1, amqp_cstring_bytes(""), amqp_cstring_bytes("pp-q"), 0, 0,
		                   &p, (amqp_bytes_t){sizeof(body), body});
	}
	struct confirms cf = {0};
	CU_ASSERT_FATAL(confirms_wait(c, 1, &cf, N));
	CU_ASSERT_EQUAL(qcount(c, "pp-q"), N);
	/* Half now, the rest after a restart (index entries only in memory). */
	CHECK_COUNT(drain_prio(c, "pp-q", N / 2), N / 2, "first half, in order");
	broker_disconnect(c);
	db_restart(false);
	c = dconn();
	CU_ASSERT_FATAL(c != NULL);
	CHECK_COUNT(drain_prio(c, "pp-q", N), N / 2, "second half after a restart, in order");
	broker_disconnect(c);
	db_done();
}

void suite_queue_ext(void)
{
	ITEST_SUITE(
	    "queue_ext", ITEST(test_consumer_timeout_closes_channel),
	    ITEST(test_consumer_timeout_per_consumer), ITEST(test_consumer_timeout_notify_consumer),
	    ITEST(test_dead_letter_kill9_exactly_once), ITEST(test_ttl_and_expires_while_down),
	    ITEST(test_bcc_not_stored), ITEST(test_delayed_survives_kill9),
	    ITEST(test_dedup_survives_kill9), ITEST(test_priority_paged_out));
}
