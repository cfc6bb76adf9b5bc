/*
 * test_engine.c - CUnit tests of the connection engine, its channels and
 * the queues behind them, driven through the engine's interface alone
 * (tests/engine/engine_host.h): bytes in, output chunks out, requests and
 * a fake clock.  No socket, no event loop, nothing waits.
 *
 * The exchange types are linked in (no plugin directory, no dlopen).
 * Exit status: 0 when every test passed.
 */
#include <CUnit/Basic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine_host.h"
#include "model/queue.h"
#include "model/vhost.h"
#include "session/channel.h"
#include "util/log.h"

static struct eh host;

static struct ec *open_client(uint16_t heartbeat)
{
	struct ec *e = ec_new(&host, 1000);
	CU_ASSERT_PTR_NOT_NULL_FATAL(e);
	CU_ASSERT_FATAL(ec_handshake(e, heartbeat));
	return e;
}

/* Send a method and expect the reply `want` on the same channel. */
static bool call(struct ec *e, uint16_t ch, const struct amqp_method *m, uint32_t want,
                 struct amqp_method *reply)
{
	ec_method(e, ch, m);
	struct amqp_method r;
	uint16_t rch;
	if (!ec_next_method(e, &r, &rch))
		return false;
	if (reply)
		*reply = r;
	return r.id == want && rch == ch;
}

static void open_channel(struct ec *e, uint16_t ch)
{
	struct amqp_method m = {.id = AMQP_CHANNEL_OPEN};
	CU_ASSERT_FATAL(call(e, ch, &m, AMQP_CHANNEL_OPEN_OK, NULL));
}

static void declare(struct ec *e, uint16_t ch, const char *q)
{
	struct amqp_method m = {.id = AMQP_QUEUE_DECLARE};
	m.u.queue_declare.queue = amqp_cstr(q);
	CU_ASSERT_FATAL(call(e, ch, &m, AMQP_QUEUE_DECLARE_OK, NULL));
}

static uint32_t ready_count(const char *q)
{
	struct vhost *vh = model_vhost(&host.md, "/", 1);
	struct queue *qq = vh ? vhost_queue(vh, q, strlen(q)) : NULL;
	return qq ? (uint32_t)qq->count : UINT32_MAX;
}

static void done(struct ec *e)
{
	ec_free(e);
	CU_ASSERT_EQUAL(eh_reset_vhost(&host), 0);
}

/* ---- handshake -------------------------------------------------------- */

static void test_handshake_and_tune(void)
{
	struct ec *e = ec_new(&host, 0);
	ec_send(e, amqp_protocol_header, AMQP_PROTOCOL_HEADER_LEN);
	struct amqp_method m;
	CU_ASSERT_FATAL(ec_next_method(e, &m, NULL));
	CU_ASSERT_EQUAL(m.id, AMQP_CONNECTION_START);
	CU_ASSERT_EQUAL(m.u.connection_start.version_minor, 9);
	struct amqp_field_value v;
	CU_ASSERT(amqp_table_get(m.u.connection_start.server_properties, "product", &v) &&
	          amqp_bytes_eq_cstr(v.v.str, "amqpd"));
	CU_ASSERT(amqp_bytes_eq_cstr(m.u.connection_start.mechanisms, "PLAIN AMQPLAIN"));
	ec_free(e);

	e = open_client(0);
	CU_ASSERT_EQUAL(e->c->state, CONN_OPEN);
	CU_ASSERT_EQUAL(e->c->frame_max, 131072);
	CU_ASSERT_EQUAL(e->c->channel_max, 2047);
	CU_ASSERT_EQUAL(e->last.deadline, -1); /* no heartbeat: no timer */
	/* A clean close: close-ok, then the engine asks to go after flushing. */
	struct amqp_method c = {.id = AMQP_CONNECTION_CLOSE};
	c.u.connection_close.reply_code = 200;
	c.u.connection_close.reply_text = amqp_cstr("bye");
	CU_ASSERT(call(e, 0, &c, AMQP_CONNECTION_CLOSE_OK, NULL));
	CU_ASSERT(e->closed_clean);
	CU_ASSERT_FALSE(e->was_reset);
	CU_ASSERT_PTR_NULL(e->c);
	done(e);
}

static void test_tune_frame_max_too_large(void)
{
	struct ec *e = ec_new(&host, 0);
	ec_send(e, amqp_protocol_header, AMQP_PROTOCOL_HEADER_LEN);
	struct amqp_method m;
	CU_ASSERT_FATAL(ec_next_method(e, &m, NULL));
	static const uint8_t plain[] = "\0guest\0guest";
	struct amqp_method so = {.id = AMQP_CONNECTION_START_OK};
	so.u.connection_start_ok.mechanism = amqp_cstr("PLAIN");
	so.u.connection_start_ok.response = (struct amqp_bytes){plain, sizeof(plain) - 1};
	so.u.connection_start_ok.locale = amqp_cstr("en_US");
	CU_ASSERT_FATAL(call(e, 0, &so, AMQP_CONNECTION_TUNE, NULL));
	struct amqp_method t = {.id = AMQP_CONNECTION_TUNE_OK};
	t.u.connection_tune_ok.frame_max = 131073;
	CU_ASSERT_FATAL(call(e, 0, &t, AMQP_CONNECTION_CLOSE, &m));
	CU_ASSERT_EQUAL(m.u.connection_close.reply_code, AMQP_NOT_ALLOWED);
	CU_ASSERT_EQUAL(e->c->state, CONN_CLOSING);
	done(e);
}

/* client_properties with capabilities.authentication_failure_close. */
static const uint8_t caps_afc[] = "\x0c"
                                  "capabilities"
                                  "F\x00\x00\x00\x1f"
                                  "\x1c"
                                  "authentication_failure_close"
                                  "t\x01";

static void bad_login(bool cap)
{
	struct ec *e = ec_new(&host, 0);
	ec_send(e, amqp_protocol_header, AMQP_PROTOCOL_HEADER_LEN);
	struct amqp_method m;
	CU_ASSERT_FATAL(ec_next_method(e, &m, NULL));
	static const uint8_t plain[] = "\0guest\0wrong";
	struct amqp_method so = {.id = AMQP_CONNECTION_START_OK};
	so.u.connection_start_ok.mechanism = amqp_cstr("PLAIN");
	so.u.connection_start_ok.response = (struct amqp_bytes){plain, sizeof(plain) - 1};
	if (cap)
		so.u.connection_start_ok.client_properties =
		    (struct amqp_bytes){caps_afc, sizeof(caps_afc) - 1};
	ec_method(e, 0, &so);
	if (cap) {
		/* Told at once, as RabbitMQ, without the reason. */
		CU_ASSERT_FATAL(ec_next_method(e, &m, NULL));
		CU_ASSERT_EQUAL(m.id, AMQP_CONNECTION_CLOSE);
		CU_ASSERT_EQUAL(m.u.connection_close.reply_code, AMQP_ACCESS_REFUSED);
		CU_ASSERT(
		    amqp_bytes_eq_cstr(m.u.connection_close.reply_text,
		                       "ACCESS_REFUSED - Login was refused using authentication "
		                       "mechanism PLAIN. For details see the broker logfile."));
	} else {
		CU_ASSERT_FALSE(ec_next_method(e, &m, NULL)); /* nothing is said */
	}
	/* As RabbitMQ: the socket stays until the failure delay is over, or
	 * (a client that was told) until its close-ok. */
	ec_advance(e, 2999);
	CU_ASSERT_PTR_NOT_NULL_FATAL(e->c);
	struct amqp_method cok = {.id = AMQP_CONNECTION_CLOSE_OK};
	ec_method(e, 0, &cok);
	if (cap) {
		CU_ASSERT_PTR_NULL(e->c);
		CU_ASSERT(e->closed_clean);
	} else {
		CU_ASSERT_PTR_NOT_NULL_FATAL(e->c); /* not read */
		ec_advance(e, 3000);
		CU_ASSERT_PTR_NULL(e->c);
	}
	done(e);
}

static void test_bad_login(void)
{
	bad_login(true);
	bad_login(false);
}

/* ---- timers on the fake clock ------------------------------------------ */

static void test_handshake_timeout(void)
{
	struct ec *e = ec_new(&host, 5000);
	CU_ASSERT_EQUAL(e->c->deadline, 15000);
	ec_advance(e, 14999);
	CU_ASSERT_PTR_NOT_NULL(e->c);
	ec_advance(e, 15000);
	CU_ASSERT_PTR_NULL(e->c);
	CU_ASSERT(e->was_reset);
	done(e);
}

static void test_heartbeats(void)
{
	struct ec *e = open_client(10); /* at t=1000 */
	CU_ASSERT_EQUAL(e->last.deadline, 6000);
	ec_advance(e, 6000);
	struct amqp_frame f;
	CU_ASSERT_EQUAL_FATAL(ec_frame(e, &f), 1);
	CU_ASSERT_EQUAL(f.type, AMQP_FRAME_HEARTBEAT);
	CU_ASSERT_EQUAL(e->last.deadline, 11000);
	/* The client's heartbeat at 15 s keeps it alive past 21 s... */
	e->now = 15000;
	uint8_t hb[8];
	amqp_frame_heartbeat(hb, sizeof(hb));
	ec_send(e, hb, sizeof(hb));
	for (int64_t t = 11000; t <= 31000; t += 5000)
		ec_advance(e, t);
	CU_ASSERT_PTR_NOT_NULL(e->c);
	/* ...but two intervals (20 s) of silence end it. */
	ec_advance(e, 36000);
	CU_ASSERT_PTR_NULL(e->c);
	CU_ASSERT(e->was_reset);
	done(e);
}

static void test_close_ok_timeout(void)
{
	struct ec *e = open_client(0);
	struct amqp_method m = {.id = AMQP_CONNECTION_SECURE_OK}; /* not allowed now */
	CU_ASSERT_FATAL(call(e, 0, &m, AMQP_CONNECTION_CLOSE, &m));
	CU_ASSERT_EQUAL(e->c->state, CONN_CLOSING);
	int64_t t = e->last.deadline;
	CU_ASSERT(t > 0);
	ec_advance(e, t - 1);
	CU_ASSERT_PTR_NOT_NULL(e->c);
	ec_advance(e, t);
	CU_ASSERT_PTR_NULL(e->c); /* no close-ok in time */
	done(e);
}

static void test_forced_close_after_idle(void)
{
	struct ec *e = open_client(0); /* at t=1000, then idle for minutes */
	ec_advance(e, 600000);
	CU_ASSERT_PTR_NOT_NULL_FATAL(e->c);
	conn_force_close(e->c, "shutdown");
	eh_settle(&host);
	struct amqp_method m;
	CU_ASSERT_FATAL(ec_next_method(e, &m, NULL));
	CU_ASSERT_EQUAL(m.id, AMQP_CONNECTION_CLOSE);
	CU_ASSERT_EQUAL(m.u.connection_close.reply_code, AMQP_CONNECTION_FORCED);
	CU_ASSERT(e->last.deadline > 600000); /* the wait for close-ok starts now */
	struct amqp_method ok = {.id = AMQP_CONNECTION_CLOSE_OK};
	ec_method(e, 0, &ok);
	CU_ASSERT(e->closed_clean);
	done(e);
}

/* ---- messages ----------------------------------------------------------- */

static void test_publish_consume_ack(void)
{
	struct ec *e = open_client(0);
	open_channel(e, 1);
	declare(e, 1, "q1");
	ec_publish(e, 1, "", "q1", NULL, "hello", 5);
	CU_ASSERT_EQUAL(ready_count("q1"), 1);
	struct amqp_method c = {.id = AMQP_BASIC_CONSUME};
	c.u.basic_consume.queue = amqp_cstr("q1");
	c.u.basic_consume.consumer_tag = amqp_cstr("k");
	CU_ASSERT_FATAL(call(e, 1, &c, AMQP_BASIC_CONSUME_OK, NULL));
	/* The delivery follows consume-ok: method, header, body. */
	struct amqp_method d;
	CU_ASSERT_FATAL(ec_next_method(e, &d, NULL));
	CU_ASSERT_EQUAL(d.id, AMQP_BASIC_DELIVER);
	CU_ASSERT_EQUAL(d.u.basic_deliver.delivery_tag, 1);
	CU_ASSERT_FALSE(d.u.basic_deliver.redelivered);
	struct amqp_frame f;
	CU_ASSERT_EQUAL_FATAL(ec_frame(e, &f), 1);
	CU_ASSERT_EQUAL(f.type, AMQP_FRAME_HEADER);
	CU_ASSERT_EQUAL_FATAL(ec_frame(e, &f), 1);
	CU_ASSERT_EQUAL(f.type, AMQP_FRAME_BODY);
	CU_ASSERT(f.size == 5 && memcmp(f.payload, "hello", 5) == 0);
	CU_ASSERT_EQUAL(ready_count("q1"), 0);
	CU_ASSERT_EQUAL(e->c->channels[1]->ua_count, 1);
	struct amqp_method a = {.id = AMQP_BASIC_ACK};
	a.u.basic_ack.delivery_tag = 1;
	ec_method(e, 1, &a);
	CU_ASSERT_EQUAL(e->c->channels[1]->ua_count, 0);
	done(e);
}

static void test_large_body_by_reference(void)
{
	struct ec *e = open_client(0);
	open_channel(e, 1);
	declare(e, 1, "big");
	size_t len = 1 << 20;
	uint8_t *body = malloc(len);
	CU_ASSERT_FATAL(body != NULL);
	for (size_t i = 0; i < len; i++)
		body[i] = (uint8_t)(i * 7);
	ec_publish(e, 1, "", "big", NULL, body, len); /* 9 body frames in */
	struct amqp_method g = {.id = AMQP_BASIC_GET};
	g.u.basic_get.queue = amqp_cstr("big");
	g.u.basic_get.no_ack = true;
	CU_ASSERT_FATAL(call(e, 1, &g, AMQP_BASIC_GET_OK, NULL));
	struct amqp_frame f;
	CU_ASSERT_EQUAL_FATAL(ec_frame(e, &f), 1);
	CU_ASSERT_EQUAL(f.type, AMQP_FRAME_HEADER);
	size_t got = 0;
	bool same = true;
	while (got < len && ec_frame(e, &f) == 1 && f.type == AMQP_FRAME_BODY) {
		same &= memcmp(f.payload, body + got, f.size) == 0;
		got += f.size;
	}
	CU_ASSERT_EQUAL(got, len);
	CU_ASSERT(same);
	free(body);
	done(e);
}

static void test_requeue_on_channel_close(void)
{
	struct ec *e = open_client(0);
	open_channel(e, 1);
	declare(e, 1, "rq");
	ec_publish(e, 1, "", "rq", NULL, "x", 1);
	struct amqp_method g = {.id = AMQP_BASIC_GET};
	g.u.basic_get.queue = amqp_cstr("rq");
	CU_ASSERT_FATAL(call(e, 1, &g, AMQP_BASIC_GET_OK, NULL));
	CU_ASSERT_EQUAL(ready_count("rq"), 0);
	struct amqp_method c = {.id = AMQP_CHANNEL_CLOSE};
	c.u.channel_close.reply_code = 200;
	CU_ASSERT_FATAL(call(e, 1, &c, AMQP_CHANNEL_CLOSE_OK, NULL));
	CU_ASSERT_EQUAL(ready_count("rq"), 1); /* back, unacked */
	done(e);
}

static void test_channel_error_404(void)
{
	struct ec *e = open_client(0);
	open_channel(e, 1);
	struct amqp_method c = {.id = AMQP_BASIC_CONSUME}, r;
	c.u.basic_consume.queue = amqp_cstr("missing");
	CU_ASSERT_FATAL(call(e, 1, &c, AMQP_CHANNEL_CLOSE, &r));
	CU_ASSERT_EQUAL(r.u.channel_close.reply_code, AMQP_NOT_FOUND);
	CU_ASSERT_EQUAL(e->c->state, CONN_OPEN); /* a channel error only */
	done(e);
}

/* ---- confirms and transactions ------------------------------------------ */

static void test_confirms(void)
{
	struct ec *e = open_client(0);
	open_channel(e, 1);
	declare(e, 1, "cq");
	struct amqp_method s = {.id = AMQP_CONFIRM_SELECT};
	CU_ASSERT_FATAL(call(e, 1, &s, AMQP_CONFIRM_SELECT_OK, NULL));
	/* Three publishes in one read: one basic.ack multiple for all three,
	 * sent by the scheduler's confirm phase. */
	uint8_t buf[3 * 256];
	size_t n = 0;
	for (int i = 0; i < 3; i++) {
		struct amqp_method p = {.id = AMQP_BASIC_PUBLISH};
		p.u.basic_publish.routing_key = amqp_cstr("cq");
		n += amqp_frame_method(buf + n, 128, 1, &p);
		struct amqp_basic_props none = {0};
		n += amqp_frame_header(buf + n, 64, 1, AMQP_CLASS_BASIC, 1, &none);
		n += amqp_frame_body(buf + n, 16, 1, (struct amqp_bytes){(const uint8_t *)"m", 1});
	}
	ec_send(e, buf, n);
	struct amqp_method a;
	CU_ASSERT_FATAL(ec_next_method(e, &a, NULL));
	CU_ASSERT_EQUAL(a.id, AMQP_BASIC_ACK);
	CU_ASSERT_EQUAL(a.u.basic_ack.delivery_tag, 3);
	CU_ASSERT(a.u.basic_ack.multiple);
	CU_ASSERT_FALSE(ec_next_method(e, &a, NULL));
	CU_ASSERT_EQUAL(ready_count("cq"), 3);
	done(e);
}

static void test_tx_commit_and_rollback(void)
{
	struct ec *e = open_client(0);
	open_channel(e, 1);
	declare(e, 1, "tq");
	struct amqp_method s = {.id = AMQP_TX_SELECT};
	CU_ASSERT_FATAL(call(e, 1, &s, AMQP_TX_SELECT_OK, NULL));
	ec_publish(e, 1, "", "tq", NULL, "a", 1);
	CU_ASSERT_EQUAL(ready_count("tq"), 0); /* held until commit */
	struct amqp_method r = {.id = AMQP_TX_ROLLBACK};
	CU_ASSERT_FATAL(call(e, 1, &r, AMQP_TX_ROLLBACK_OK, NULL));
	CU_ASSERT_EQUAL(ready_count("tq"), 0);
	ec_publish(e, 1, "", "tq", NULL, "b", 1);
	struct amqp_method c = {.id = AMQP_TX_COMMIT};
	CU_ASSERT_FATAL(call(e, 1, &c, AMQP_TX_COMMIT_OK, NULL));
	CU_ASSERT_EQUAL(ready_count("tq"), 1);
	done(e);
}

/* ---- the memory alarm ----------------------------------------------------- */

static void test_alarm_blocks_publishers(void)
{
	struct ec *e = open_client(0);
	open_channel(e, 1);
	declare(e, 1, "aq");
	ec_publish(e, 1, "", "aq", NULL, "1", 1); /* now a publisher */
	host.s.alarm = "low on memory";
	conn_block(e->c);
	eh_settle(&host);
	struct amqp_method m;
	CU_ASSERT_FATAL(ec_next_method(e, &m, NULL));
	CU_ASSERT_EQUAL(m.id, AMQP_CONNECTION_BLOCKED);
	CU_ASSERT(amqp_bytes_eq_cstr(m.u.connection_blocked.reason, "low on memory"));
	CU_ASSERT_FALSE(e->last.want_read);
	/* What it sends now waits, unread. */
	ec_publish(e, 1, "", "aq", NULL, "2", 1);
	CU_ASSERT_EQUAL(ready_count("aq"), 1);
	CU_ASSERT(e->in_len > 0);
	host.s.alarm = NULL;
	conn_unblock(e->c);
	eh_settle(&host);
	CU_ASSERT_FATAL(ec_next_method(e, &m, NULL));
	CU_ASSERT_EQUAL(m.id, AMQP_CONNECTION_UNBLOCKED);
	CU_ASSERT(e->last.want_read);
	CU_ASSERT_EQUAL(e->in_len, 0);
	CU_ASSERT_EQUAL(ready_count("aq"), 2);
	done(e);
}

static void test_blocked_connection_outlives_heartbeats(void)
{
	struct ec *e = open_client(10); /* at t=1000 */
	open_channel(e, 1);
	declare(e, 1, "hq");
	ec_publish(e, 1, "", "hq", NULL, "1", 1);
	host.s.alarm = "low on memory";
	conn_block(e->c);
	eh_settle(&host);
	/* Blocked for a minute: its heartbeats wait unread, it is not dropped. */
	for (int64_t t = 6000; t <= 61000; t += 5000)
		ec_advance(e, t);
	CU_ASSERT_PTR_NOT_NULL_FATAL(e->c);
	host.s.alarm = NULL;
	conn_unblock(e->c);
	eh_settle(&host);
	CU_ASSERT(e->last.want_read);
	/* Reading again: silence from now on counts. */
	ec_advance(e, 71000);
	ec_advance(e, 81000);
	CU_ASSERT_PTR_NULL(e->c);
	done(e);
}

static void test_alarm_at_open(void)
{
	host.s.alarm = "low on disk";
	struct ec *e = open_client(0);
	struct amqp_method m;
	CU_ASSERT_FATAL(ec_next_method(e, &m, NULL));
	CU_ASSERT_EQUAL(m.id, AMQP_CONNECTION_BLOCKED); /* told at once, as RabbitMQ */
	host.s.alarm = NULL;
	done(e);
}

/* ---- a peer that does not read ------------------------------------------- */

static void test_unread_output_pauses_reading(void)
{
	struct ec *e = open_client(0);
	open_channel(e, 1);
	declare(e, 1, "gq");
	size_t len = 1 << 20;
	uint8_t *body = calloc(1, len);
	CU_ASSERT_FATAL(body != NULL);
	ec_publish(e, 1, "", "gq", NULL, body, len);
	free(body);
	/* The client stops reading, and keeps asking for the 1 MiB message
	 * (basic.get, then basic.reject requeue=true), 40 times in one go. */
	e->stalled = true;
	uint8_t buf[40 * 64];
	size_t n = 0;
	for (int i = 0; i < 40; i++) {
		struct amqp_method g = {.id = AMQP_BASIC_GET};
		g.u.basic_get.queue = amqp_cstr("gq");
		n += amqp_frame_method(buf + n, 64, 1, &g);
		struct amqp_method r = {.id = AMQP_BASIC_REJECT};
		r.u.basic_reject.delivery_tag = (uint64_t)i + 1;
		r.u.basic_reject.requeue = true;
		n += amqp_frame_method(buf + n, 64, 1, &r);
	}
	ec_send(e, buf, n);
	/* Reading stopped at 16 MiB of waiting output, at a frame boundary. */
	CU_ASSERT_FALSE(e->last.want_read);
	CU_ASSERT(e->in_len > 0 && e->in_len < n);
	CU_ASSERT(outq_bytes(&e->c->out) >= (16u << 20));
	CU_ASSERT(outq_bytes(&e->c->out) < (18u << 20));
	/* The client reads again: everything it sent is handled. */
	e->stalled = false;
	eh_settle(&host);
	CU_ASSERT(e->last.want_read);
	CU_ASSERT_EQUAL(e->in_len, 0);
	CU_ASSERT_EQUAL(ready_count("gq"), 1);
	CU_ASSERT_EQUAL(e->c->state, CONN_OPEN);
	done(e);
}

/* ---- framing -------------------------------------------------------------- */

static void test_corrupt_frame_closes_silently(void)
{
	struct ec *e = open_client(0);
	size_t before = e->out_total;
	uint8_t bad[] = {1, 0, 0, 0, 0, 0, 4, 0, 20, 0, 10, 0x00}; /* frame end 0x00 */
	ec_send(e, bad, sizeof(bad));
	CU_ASSERT_PTR_NULL(e->c);
	CU_ASSERT(e->closed_clean);
	CU_ASSERT_EQUAL(e->out_total, before); /* nothing more was sent */
	done(e);
}

static void test_byte_at_a_time(void)
{
	/* The same conversation fed one byte at a time. */
	struct ec *e = ec_new(&host, 0);
	for (size_t i = 0; i < AMQP_PROTOCOL_HEADER_LEN; i++)
		ec_send(e, amqp_protocol_header + i, 1);
	struct amqp_method m;
	CU_ASSERT_FATAL(ec_next_method(e, &m, NULL));
	CU_ASSERT_EQUAL(m.id, AMQP_CONNECTION_START);
	done(e);
}

int main(void)
{
	log_set_level(getenv("AMQPD_TEST_LOG") ? LOG_DEBUG : (enum log_level) - 1);
	if (eh_init(&host) < 0)
		return 1;
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	CU_pSuite s = CU_add_suite("engine", NULL, NULL);
	CU_add_test(s, "handshake and tune", test_handshake_and_tune);
	CU_add_test(s, "tune-ok frame_max too large", test_tune_frame_max_too_large);
	CU_add_test(s, "bad login", test_bad_login);
	CU_add_test(s, "handshake timeout", test_handshake_timeout);
	CU_add_test(s, "heartbeats", test_heartbeats);
	CU_add_test(s, "close-ok timeout", test_close_ok_timeout);
	CU_add_test(s, "forced close after idle", test_forced_close_after_idle);
	CU_add_test(s, "publish, consume, ack", test_publish_consume_ack);
	CU_add_test(s, "1 MiB body", test_large_body_by_reference);
	CU_add_test(s, "requeue on channel close", test_requeue_on_channel_close);
	CU_add_test(s, "channel error 404", test_channel_error_404);
	CU_add_test(s, "confirms", test_confirms);
	CU_add_test(s, "tx commit and rollback", test_tx_commit_and_rollback);
	CU_add_test(s, "memory alarm blocks publishers", test_alarm_blocks_publishers);
	CU_add_test(s, "blocked connection outlives heartbeats",
	            test_blocked_connection_outlives_heartbeats);
	CU_add_test(s, "alarm at open", test_alarm_at_open);
	CU_add_test(s, "unread output pauses reading", test_unread_output_pauses_reading);
	CU_add_test(s, "corrupt frame closes silently", test_corrupt_frame_closes_silently);
	CU_add_test(s, "byte at a time", test_byte_at_a_time);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	unsigned failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
	CU_cleanup_registry();
	eh_free(&host);
	return failed ? 1 : 0;
}
