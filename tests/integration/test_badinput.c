/*
 * test_badinput.c - suite "badinput": malformed and out-of-order input over
 * raw sockets, checked against what RabbitMQ 3.10 does.
 *
 * Each case logs in over a raw socket (PLAIN guest/guest, vhost "/",
 * channel 1 open), sends one malformed thing, then expects the
 * connection.close (or channel.close) RabbitMQ sends: reply code, reply
 * text (exact where RabbitMQ's text is plain English, else the "NAME - "
 * prefix; RabbitMQ's frame-error texts embed Erlang terms) and class/method
 * ids; answers it with close-ok and expects the socket to close.  After each
 * case a normal rabbitmq-c client declares a queue and moves a message, to
 * show other clients are unaffected.
 *
 * Covers: bad frame-end octet, unknown frame type, frames over frame_max
 * (and exactly at it), a 4 GiB frame size, heartbeats on a channel or with
 * a payload, unknown class/method ids, truncated / short / over-long method
 * arguments, channel-level methods on channel 0, connection methods after
 * open, methods on unopened channels, content frames out of order, a
 * message over max_message_size, tune-ok frame_max below 4096, an unknown
 * field-table type, immediate=true, and a slow-loris partial frame.
 *
 * Where RabbitMQ deviates from amqpd's requirements the assertion is split
 * on broker_external() and the comment says how.
 */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "itest.h"
#include "itest_util.h"
#include "raw.h"

/* ---------------------------------------------------------------------------
 * Case helpers
 */

/* A normal rabbitmq-c client can still declare a queue and move a message. */
static void check_others_ok(void)
{
	amqp_connection_state_t c = conn_open();
	CU_ASSERT_PTR_NOT_NULL(c);
	if (!c)
		return;
	amqp_queue_declare_ok_t *ok =
	    amqp_queue_declare(c, 1, amqp_empty_bytes, 0, 0, 1, 1, amqp_empty_table);
	CU_ASSERT_PTR_NOT_NULL(ok);
	if (ok) {
		amqp_bytes_t q = amqp_bytes_malloc_dup(ok->queue);
		CU_ASSERT_EQUAL(amqp_basic_publish(c, 1, amqp_empty_bytes, q, 0, 0, NULL,
		                                   amqp_cstring_bytes("still fine")),
		                AMQP_STATUS_OK);
		amqp_rpc_reply_t g = amqp_basic_get(c, 1, q, 1);
		CU_ASSERT(g.reply_type == AMQP_RESPONSE_NORMAL &&
		          g.reply.id == AMQP_BASIC_GET_OK_METHOD);
		if (g.reply_type == AMQP_RESPONSE_NORMAL &&
		    g.reply.id == AMQP_BASIC_GET_OK_METHOD) {
			amqp_message_t m;
			CU_ASSERT_EQUAL(amqp_read_message(c, 1, &m, 0).reply_type,
			                AMQP_RESPONSE_NORMAL);
			amqp_destroy_message(&m);
		}
		amqp_bytes_free(q);
	}
	broker_disconnect(c);
}

#define ANY (-1) /* class/method id not checked */

/* Expects connection.close code/text (exact or prefix)/class/method on fd,
 * answers it, expects the socket to close, closes fd, checks others. */
static void expect_conn_error(int fd, uint16_t code, const char *text, bool exact, int cls, int mth)
{
	struct rclose c;
	int r = await_close(fd, &c, 5000);
	CU_ASSERT_EQUAL(r, RF_OK);
	if (r == RF_OK) {
		CU_ASSERT_EQUAL(c.kind, 10);
		bool text_ok =
		    exact ? strcmp(c.text, text) == 0 : strncmp(c.text, text, strlen(text)) == 0;
		CU_ASSERT_EQUAL(c.code, code);
		CU_ASSERT(text_ok);
		CU_ASSERT(cls == ANY || c.cls == cls);
		CU_ASSERT(mth == ANY || c.mth == mth);
		if (c.kind != 10 || c.code != code || !text_ok || (cls != ANY && c.cls != cls) ||
		    (mth != ANY && c.mth != mth))
			fprintf(stderr, "\n  want %u '%s' (%d,%d), got %s %u '%s' (%u,%u)\n", code,
			        text, cls, mth, c.kind == 10 ? "connection.close" : "channel.close",
			        c.code, c.text, c.cls, c.mth);
		/* the server hangs up after close-ok (RabbitMQ may take ~3 s when it
		 * could not resynchronise on the frame stream) */
		CU_ASSERT(await_eof(fd, 10000));
	} else {
		fprintf(stderr, "\n  want connection.close %u '%s', got %s\n", code, text,
		        r == RF_EOF ? "EOF" : "timeout");
	}
	close(fd);
	check_others_ok();
}

/* Sends b on a fresh connection (channel 1 open), then expect_conn_error. */
static void bad_case(const struct wbuf *b, uint16_t code, const char *text, bool exact, int cls,
                     int mth)
{
	int fd = raw_open(131072);
	CU_ASSERT_FATAL(fd >= 0);
	send_wb(fd, b); /* may fail part-way once the server gives up */
	expect_conn_error(fd, code, text, exact, cls, mth);
}

/* For input RabbitMQ 3.10 does not answer with connection.close but crashes
 * the connection process on (it closes the socket; the log shows the Erlang
 * exception).  amqpd must send connection.close amqpd_code/amqpd_prefix. */
static void bad_case_rabbit_drops(const struct wbuf *b, uint16_t amqpd_code,
                                  const char *amqpd_prefix)
{
	int fd = raw_open(131072);
	CU_ASSERT_FATAL(fd >= 0);
	send_wb(fd, b);
	struct rclose c;
	int r = await_close(fd, &c, 10000);
	if (broker_external()) {
		CU_ASSERT(r == RF_EOF || r == RF_OK);
	} else {
		CU_ASSERT_EQUAL(r, RF_OK);
		CU_ASSERT(r != RF_OK || c.kind == 10);
		CU_ASSERT(r != RF_OK || c.code == amqpd_code);
		CU_ASSERT(r != RF_OK || strncmp(c.text, amqpd_prefix, strlen(amqpd_prefix)) == 0);
		if (r != RF_OK || c.code != amqpd_code)
			fprintf(stderr, "\n  want %u '%s...', got %s %u '%s'\n", amqpd_code,
			        amqpd_prefix, r == RF_OK ? "close" : "no close", c.code, c.text);
	}
	if (r == RF_OK)
		CU_ASSERT(await_eof(fd, 10000));
	close(fd);
	check_others_ok();
}

/* ---------------------------------------------------------------------------
 * Frame level
 */

/* A corrupt stream: the socket is closed without anything more being sent
 * (spec 4.2.3, and RabbitMQ), not even connection.close. */
static void bad_case_silent_close(const struct wbuf *b)
{
	int fd = raw_open(131072);
	CU_ASSERT_FATAL(fd >= 0);
	send_wb(fd, b);
	struct rclose c;
	int r = await_close(fd, &c, 10000);
	CU_ASSERT_EQUAL(r, RF_EOF);
	if (r == RF_OK)
		fprintf(stderr, "\n  want EOF, got close %u '%s'\n", c.code, c.text);
	close(fd);
	check_others_ok();
}

static void test_bad_frame_end(void)
{
	struct wbuf b = {0};
	wb_flow(&b, 1, true);
	b.p[b.n - 1] = 0x00;
	bad_case_silent_close(&b);
	wb_free(&b);
}

static void test_unknown_frame_type(void)
{
	struct wbuf b = {0};
	wb_frame(&b, 5, 1, "abc", 3);
	bad_case_silent_close(&b);
	wb_free(&b);
}

static void test_frame_type_zero(void)
{
	struct wbuf b = {0};
	wb_frame(&b, 0, 1, "abc", 3);
	bad_case_silent_close(&b);
	wb_free(&b);
}

/* publish + header + one body frame of n octets, then channel.flow(true) */
static void wb_publish_one_frame(struct wbuf *b, size_t n)
{
	uint8_t *body = calloc(1, n);
	wb_publish(b, 1, "itest-nowhere", 0);
	wb_header(b, 1, 60, n);
	wb_frame(b, 3, 1, body, n);
	wb_flow(b, 1, true);
	free(body);
}

/* A frame of exactly the negotiated frame_max (4096 octets in all) is
 * accepted. */
static void test_frame_at_frame_max(void)
{
	static struct rframe f;
	int fd = raw_open(4096);
	CU_ASSERT_FATAL(fd >= 0);
	struct wbuf b = {0};
	wb_publish_one_frame(&b, 4096 - 8);
	CU_ASSERT_EQUAL(send_wb(fd, &b), 0);
	CU_ASSERT_EQUAL(read_method(fd, &f, 5000), RF_OK);
	CU_ASSERT(f.ch == 1 && f.cls == 20 && f.mth == 21); /* flow-ok: no error */
	wb_free(&b);
	close(fd);
}

/* A frame whose payload alone exceeds the negotiated frame_max. */
static void test_frame_over_frame_max(void)
{
	struct wbuf b = {0};
	int fd = raw_open(4096);
	CU_ASSERT_FATAL(fd >= 0);
	wb_publish_one_frame(&b, 4097);
	send_wb(fd, &b);
	/* RabbitMQ: "FRAME_ERROR - type 3, all octets = <<>>:
	 * {frame_too_large,4097,4088}" */
	expect_conn_error(fd, 501, "FRAME_ERROR - ", false, 0, 0);

	/* the same at the default frame_max of 131072 */
	b.n = 0;
	wb_publish_one_frame(&b, 131073);
	bad_case(&b, 501, "FRAME_ERROR - ", false, 0, 0);
	wb_free(&b);
}

/* A frame 1..8 octets over frame_max.  Requirement for amqpd: 501.
 * RabbitMQ 3.10 deviates: it tolerates payloads up to frame_max (a "fudge"
 * of one frame overhead), so there the frame is accepted. */
static void test_frame_slightly_over_frame_max(void)
{
	static struct rframe f;
	struct wbuf b = {0};
	int fd = raw_open(4096);
	CU_ASSERT_FATAL(fd >= 0);
	wb_publish_one_frame(&b, 4096 - 8 + 1);
	send_wb(fd, &b);
	if (broker_external()) {
		CU_ASSERT_EQUAL(read_method(fd, &f, 5000), RF_OK);
		CU_ASSERT(f.ch == 1 && f.cls == 20 && f.mth == 21);
		close(fd);
	} else {
		expect_conn_error(fd, 501, "FRAME_ERROR - ", false, 0, 0);
	}
	wb_free(&b);
}

/* A frame header announcing 4 GiB: refused at once, without the payload. */
static void test_frame_size_huge(void)
{
	struct wbuf b = {0};
	wb_u8(&b, 3);
	wb_u16(&b, 1);
	wb_u32(&b, 0xFFFFFFFFu);
	/* RabbitMQ: "FRAME_ERROR - type 3, all octets = <<>>:
	 * {frame_too_large,4294967295,131064}" */
	bad_case(&b, 501, "FRAME_ERROR - ", false, 0, 0);
	wb_free(&b);
}

/* Heartbeat on channel 1.  Requirement for amqpd: 501 FRAME_ERROR.
 * RabbitMQ 3.10 deviates: 505 "UNEXPECTED_FRAME - type 8, all octets = <<>>". */
static void test_heartbeat_on_channel(void)
{
	struct wbuf b = {0};
	wb_frame(&b, 8, 1, NULL, 0);
	if (broker_external())
		bad_case(&b, 505, "UNEXPECTED_FRAME - ", false, 0, 0);
	else
		bad_case(&b, 501, "FRAME_ERROR - ", false, 0, 0);
	wb_free(&b);
}

static void test_heartbeat_with_payload(void)
{
	struct wbuf b = {0};
	wb_frame(&b, 8, 0, "ab", 2);
	/* RabbitMQ: "FRAME_ERROR - type 8, all octets = <<\"ab\">>: unknown_frame" */
	bad_case(&b, 501, "FRAME_ERROR - ", false, 0, 0);
	wb_free(&b);
}

/* ---------------------------------------------------------------------------
 * Method level
 */

/* Unknown method of a known class, and an unknown class.  Requirement for
 * amqpd: connection.close 503 COMMAND_INVALID.  RabbitMQ 3.10 sends no close
 * at all: its reader crashes ({unknown_method_id,{60,999}}) and the socket
 * is dropped. */
static void test_unknown_method(void)
{
	struct wbuf b = {0};
	wb_method(&b, 1, 60, 999, NULL);
	bad_case_rabbit_drops(&b, 503, "COMMAND_INVALID - ");
	b.n = 0;
	wb_method(&b, 1, 999, 10, NULL);
	bad_case_rabbit_drops(&b, 503, "COMMAND_INVALID - ");
	wb_free(&b);
}

static void test_truncated_arguments(void)
{
	/* queue.declare cut inside the queue name */
	struct wbuf b = {0}, a = {0};
	wb_u16(&a, 0);
	wb_u8(&a, 5);
	wb_put(&a, "ab", 2);
	wb_method(&b, 1, 50, 10, &a);
	/* RabbitMQ: "FRAME_ERROR - cannot decode <<0,0,5,97,98>>" */
	bad_case(&b, 501, "FRAME_ERROR - ", false, 50, 10);
	/* queue.declare with no arguments at all */
	b.n = 0;
	wb_method(&b, 1, 50, 10, NULL);
	bad_case(&b, 501, "FRAME_ERROR - ", false, 50, 10);
	wb_free(&a);
	wb_free(&b);
}

static void test_method_frame_too_short(void)
{
	struct wbuf b = {0};
	wb_frame(&b, 1, 1, "\x00\x14", 2); /* class id only */
	/* RabbitMQ: "FRAME_ERROR - type 1, all octets = <<0,20>>: unknown_frame" */
	bad_case(&b, 501, "FRAME_ERROR - ", false, 0, 0);
	wb_free(&b);
}

static void test_trailing_arguments(void)
{
	struct wbuf b = {0}, a = {0};
	wb_u8(&a, 1);
	wb_u16(&a, 0); /* two octets too many for channel.flow */
	wb_method(&b, 1, 20, 20, &a);
	/* RabbitMQ: "FRAME_ERROR - cannot decode <<1,0,0>>" */
	bad_case(&b, 501, "FRAME_ERROR - ", false, 20, 20);
	wb_free(&a);
	wb_free(&b);
}

static void test_channel_method_on_channel_zero(void)
{
	struct wbuf b = {0};
	wb_publish(&b, 0, "x", 0);
	bad_case(&b, 504, "CHANNEL_ERROR - unexpected method in connection state running", true, 60,
	         40);
	b.n = 0;
	wb_channel_open(&b, 0);
	bad_case(&b, 504, "CHANNEL_ERROR - unexpected method in connection state running", true, 20,
	         10);
	wb_free(&b);
}

static void test_connection_method_after_open(void)
{
	struct wbuf b = {0};
	wb_tune_ok(&b, 2047, 131072, 0);
	bad_case(&b, 504, "CHANNEL_ERROR - unexpected method in connection state running", true, 10,
	         31);
	wb_free(&b);
}

static void test_method_on_unopened_channel(void)
{
	struct wbuf b = {0};
	wb_queue_declare(&b, 5, "", 8, NULL);
	bad_case(&b, 504, "CHANNEL_ERROR - expected 'channel.open'", true, 50, 10);
	/* channel.close on a channel that was never opened */
	b.n = 0;
	wb_close(&b, 7, 200, "");
	bad_case(&b, 504, "CHANNEL_ERROR - expected 'channel.open'", true, 20, 40);
	wb_free(&b);
}

/* ---------------------------------------------------------------------------
 * Content frames out of order
 */

#define EXPECTED_METHOD "UNEXPECTED_FRAME - expected method frame, got non method frame instead"
#define EXPECTED_HEADER                                                                            \
	"UNEXPECTED_FRAME - expected content header for class 60, got non content header frame "   \
	"instead"
#define EXPECTED_BODY "UNEXPECTED_FRAME - expected content body, got non content body frame instead"

static void test_header_without_publish(void)
{
	struct wbuf b = {0};
	wb_header(&b, 1, 60, 5);
	bad_case(&b, 505, EXPECTED_METHOD, true, 0, 0);
	/* on an unopened channel too */
	b.n = 0;
	wb_header(&b, 3, 60, 5);
	bad_case(&b, 505, EXPECTED_METHOD, true, 0, 0);
	/* and on channel 0: RabbitMQ: "UNEXPECTED_FRAME - type 2, all octets =
	 * <<0,60,0,0,0,0,0,0,0,0,0,5,0,0>>" */
	b.n = 0;
	wb_header(&b, 0, 60, 5);
	bad_case(&b, 505, "UNEXPECTED_FRAME - ", false, 0, 0);
	wb_free(&b);
}

static void test_body_without_header(void)
{
	struct wbuf b = {0};
	wb_frame(&b, 3, 1, "hello", 5); /* no publish either */
	bad_case(&b, 505, EXPECTED_METHOD, true, 0, 0);
	b.n = 0;
	wb_publish(&b, 1, "x", 0); /* publish, then the body straight away */
	wb_frame(&b, 3, 1, "hello", 5);
	bad_case(&b, 505, EXPECTED_HEADER, true, 60, 40);
	wb_free(&b);
}

static void test_method_while_content_expected(void)
{
	struct wbuf b = {0};
	/* header announced 10 octets, 5 came, then a method */
	wb_publish(&b, 1, "x", 0);
	wb_header(&b, 1, 60, 10);
	wb_frame(&b, 3, 1, "hello", 5);
	wb_queue_declare(&b, 1, "", 8, NULL);
	bad_case(&b, 505, EXPECTED_BODY, true, 60, 40);
	/* a method where the header should be */
	b.n = 0;
	wb_publish(&b, 1, "x", 0);
	wb_queue_declare(&b, 1, "", 8, NULL);
	bad_case(&b, 505, EXPECTED_HEADER, true, 60, 40);
	/* a second header where the body should be */
	b.n = 0;
	wb_publish(&b, 1, "x", 0);
	wb_header(&b, 1, 60, 5);
	wb_header(&b, 1, 60, 5);
	bad_case(&b, 505, EXPECTED_BODY, true, 60, 40);
	wb_free(&b);
}

static void test_header_wrong_class(void)
{
	struct wbuf b = {0};
	wb_publish(&b, 1, "x", 0);
	wb_header(&b, 1, 50, 5);
	bad_case(&b, 501,
	         "FRAME_ERROR - expected content header for class 60, got one for class 50 "
	         "instead",
	         true, 60, 40);
	wb_free(&b);
}

/* A message one octet over RabbitMQ's default max_message_size (128 MiB):
 * a channel error (406), the connection survives.  RabbitMQ only checks once
 * the whole body has arrived, so the body is streamed until the server
 * answers (amqpd may answer at the header). */
static void test_message_too_large(void)
{
	static struct rframe f;
	static uint8_t chunk[131064];
	const uint64_t size = 134217728ull + 1;
	int fd = raw_open(131072);
	CU_ASSERT_FATAL(fd >= 0);
	struct timeval tv = {.tv_sec = 10};
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	struct wbuf b = {0};
	wb_publish(&b, 1, "itest-nowhere", 0);
	wb_header(&b, 1, 60, size);
	CU_ASSERT_EQUAL(send_wb(fd, &b), 0);
	for (uint64_t left = size; left > 0;) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		if (poll(&p, 1, 0) > 0)
			break;
		size_t n = left < sizeof(chunk) ? (size_t)left : sizeof(chunk);
		b.n = 0;
		wb_frame(&b, 3, 1, chunk, n);
		if (send_wb(fd, &b) < 0)
			break;
		left -= n;
	}
	struct rclose c;
	CU_ASSERT_EQUAL_FATAL(await_close(fd, &c, 10000), RF_OK);
	CU_ASSERT_EQUAL(c.kind, 20);
	CU_ASSERT_EQUAL(c.ch, 1);
	CU_ASSERT_EQUAL(c.code, 406);
	CU_ASSERT_STRING_EQUAL(c.text, "PRECONDITION_FAILED - message size 134217729 is larger "
	                               "than configured max size 134217728");
	CU_ASSERT_EQUAL(c.cls, 60);
	CU_ASSERT_EQUAL(c.mth, 40);
	/* the connection lives on: channel 1 reopens */
	b.n = 0;
	wb_channel_open(&b, 1);
	wb_flow(&b, 1, true);
	CU_ASSERT_EQUAL(send_wb(fd, &b), 0);
	CU_ASSERT_EQUAL(read_method(fd, &f, 5000), RF_OK);
	CU_ASSERT(f.ch == 1 && f.cls == 20 && f.mth == 11);
	CU_ASSERT_EQUAL(read_method(fd, &f, 5000), RF_OK);
	CU_ASSERT(f.ch == 1 && f.cls == 20 && f.mth == 21);
	wb_free(&b);
	close(fd);
	check_others_ok();
}

/* ---------------------------------------------------------------------------
 * Handshake, field tables, unsupported flags
 */

/* tune-ok with frame_max 1024 (< 4096): the connection is refused, never
 * opened.  RabbitMQ 3.10 closes the socket ~3 s later without sending a
 * connection.close (its log: "negotiated frame_max = 1024 is lower than the
 * minimum allowed value (4096)"); amqpd may send connection.close first, and
 * if it does the code must be 530 NOT_ALLOWED. */
static void test_tune_ok_frame_max_too_small(void)
{
	static struct rframe f;
	int fd = raw_start(&f);
	CU_ASSERT_FATAL(fd >= 0);
	struct wbuf b = {0};
	wb_start_ok_plain(&b, true, "guest", "guest");
	CU_ASSERT_EQUAL(send_wb(fd, &b), 0);
	CU_ASSERT_EQUAL(read_method(fd, &f, 5000), RF_OK);
	CU_ASSERT(f.cls == 10 && f.mth == 30);
	b.n = 0;
	wb_tune_ok(&b, 2047, 1024, 0);
	wb_conn_open(&b, "/");
	send_wb(fd, &b);
	int r;
	bool opened = false, closed_530 = true;
	while ((r = read_method(fd, &f, 10000)) == RF_OK) {
		if (f.cls == 10 && f.mth == 41)
			opened = true;
		if (f.cls == 10 && f.mth == 50) {
			struct rclose c;
			parse_close(&f, &c);
			closed_530 = c.code == 530 && strncmp(c.text, "NOT_ALLOWED - ", 14) == 0;
			b.n = 0;
			wb_method(&b, 0, 10, 51, NULL);
			send_wb(fd, &b);
		}
	}
	CU_ASSERT_FALSE(opened);
	CU_ASSERT(closed_530);
	CU_ASSERT_EQUAL(r, RF_EOF);
	wb_free(&b);
	close(fd);
	check_others_ok();
}

/* queue.declare arguments with an unknown field type 'Z'.  Requirement for
 * amqpd: connection.close 502 SYNTAX_ERROR.  RabbitMQ 3.10 sends no close:
 * its reader crashes (function_clause in rabbit_binary_parser:parse_table)
 * and the socket is dropped. */
static void test_unknown_field_type(void)
{
	struct wbuf b = {0}, t = {0}, e = {0};
	wb_sstr(&e, "a");
	wb_u8(&e, 'Z');
	wb_u8(&e, 0);
	wb_lstr(&t, e.p, e.n);
	wb_queue_declare(&b, 1, "itest-badtable", 0, &t);
	bad_case_rabbit_drops(&b, 502, "SYNTAX_ERROR - ");
	wb_free(&e);
	wb_free(&t);
	wb_free(&b);
}

static void test_immediate_publish(void)
{
	struct wbuf b = {0};
	wb_publish(&b, 1, "itest-nowhere", 2);
	wb_header(&b, 1, 60, 5);
	wb_frame(&b, 3, 1, "hello", 5);
	bad_case(&b, 540, "NOT_IMPLEMENTED - immediate=true", true, 60, 40);
	wb_free(&b);
}

/* Connections stalled mid-frame (and mid-protocol-header) do not hold up
 * anyone else, and the stalled frame still works once completed. */
static void test_slow_loris(void)
{
	static struct rframe f;
	int hdr = broker_raw_connect(&g_broker);
	CU_ASSERT_FATAL(hdr >= 0);
	CU_ASSERT_EQUAL(send_all(hdr, "AM", 2), 0);
	int fd = raw_open(131072);
	CU_ASSERT_FATAL(fd >= 0);
	struct wbuf b = {0};
	wb_flow(&b, 1, true);
	CU_ASSERT_EQUAL(send_all(fd, b.p, 3), 0);
	int64_t t0 = now_ms();
	for (int i = 0; i < 3; i++)
		check_others_ok();
	CU_ASSERT(now_ms() - t0 < 5000);
	for (size_t i = 3; i < b.n; i++) {
		CU_ASSERT_EQUAL(send_all(fd, b.p + i, 1), 0);
		sleep_ms(20);
	}
	CU_ASSERT_EQUAL(read_method(fd, &f, 5000), RF_OK);
	CU_ASSERT(f.ch == 1 && f.cls == 20 && f.mth == 21);
	wb_free(&b);
	close(fd);
	close(hdr);
}

void suite_badinput(void)
{
	ITEST_SUITE("badinput", ITEST(test_bad_frame_end), ITEST(test_unknown_frame_type),
	            ITEST(test_frame_type_zero), ITEST(test_frame_at_frame_max),
	            ITEST(test_frame_over_frame_max), ITEST(test_frame_slightly_over_frame_max),
	            ITEST(test_frame_size_huge), ITEST(test_heartbeat_on_channel),
	            ITEST(test_heartbeat_with_payload), ITEST(test_unknown_method),
	            ITEST(test_truncated_arguments), ITEST(test_method_frame_too_short),
	            ITEST(test_trailing_arguments), ITEST(test_channel_method_on_channel_zero),
	            ITEST(test_connection_method_after_open),
	            ITEST(test_method_on_unopened_channel), ITEST(test_header_without_publish),
	            ITEST(test_body_without_header), ITEST(test_method_while_content_expected),
	            ITEST(test_header_wrong_class), ITEST(test_message_too_large),
	            ITEST(test_tune_ok_frame_max_too_small), ITEST(test_unknown_field_type),
	            ITEST(test_immediate_publish), ITEST(test_slow_loris));
}
