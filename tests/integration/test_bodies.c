/*
 * test_bodies.c - message bodies on the receive path: bodies split across
 * many body frames, frames split across many reads (the broker gathers a
 * split frame straight into the message), empty bodies and empty body
 * frames, and a body frame larger than what its content header declared.
 * Every byte is checked on the way back out (basic.get with rabbitmq-c).
 */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "itest.h"
#include "itest_util.h"
#include "raw.h"

/* Body byte i: a pattern that shows shifted, dropped or repeated bytes. */
static uint8_t pattern(size_t i, unsigned seed)
{
	return (uint8_t)((i * 131 + (i >> 8) * 7 + seed * 29) ^ (i >> 16));
}

/* Appends basic.publish (default exchange, routing key q), a content header
 * for body_size bytes and body frames of the sizes in frames[] (0 ends the
 * list; an explicit empty frame is written as SIZE_MAX).  Returns the body
 * bytes written. */
static size_t wb_message(struct wbuf *b, const char *q, size_t body_size, const size_t *frames,
                         unsigned seed)
{
	wb_publish(b, 1, q, 0);
	wb_header(b, 1, 60, body_size);
	size_t total = 0; /* may differ from body_size on purpose */
	for (size_t i = 0; frames[i]; i++)
		total += frames[i] == SIZE_MAX ? 0 : frames[i];
	uint8_t *buf = malloc(total ? total : 1);
	CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
	for (size_t i = 0; i < total; i++)
		buf[i] = pattern(i, seed);
	size_t off = 0;
	for (size_t i = 0; frames[i]; i++) {
		size_t n = frames[i] == SIZE_MAX ? 0 : frames[i];
		wb_frame(b, 3, 1, buf + off, n);
		off += n;
	}
	free(buf);
	return off;
}

/* Sends b in pieces of 1 to max_piece bytes (xorshift, so a failure
 * repeats), with a pause now and then so that the broker sees the pieces
 * in separate reads: frame headers and payloads cut everywhere. */
static void send_in_pieces(int fd, const struct wbuf *b, size_t max_piece, uint32_t seed)
{
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	uint32_t x = seed | 1;
	unsigned count = 0;
	for (size_t off = 0; off < b->n;) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		size_t n = 1 + x % max_piece;
		if (n > b->n - off)
			n = b->n - off;
		CU_ASSERT_EQUAL_FATAL(send_all(fd, b->p + off, n), 0);
		off += n;
		if (++count % 8 == 0)
			sleep_ms(1);
	}
}

/* basic.get one message from q and compare it with the pattern. */
static void expect_body(amqp_connection_state_t c, const char *q, size_t size, unsigned seed)
{
	amqp_rpc_reply_t r = amqp_basic_get(c, 1, amqp_cstring_bytes(q), 1);
	CU_ASSERT_FATAL(r.reply_type == AMQP_RESPONSE_NORMAL);
	CU_ASSERT_EQUAL_FATAL(r.reply.id, AMQP_BASIC_GET_OK_METHOD);
	amqp_message_t m;
	CU_ASSERT_FATAL(amqp_read_message(c, 1, &m, 0).reply_type == AMQP_RESPONSE_NORMAL);
	CU_ASSERT_EQUAL(m.body.len, size);
	size_t bad = SIZE_MAX;
	const uint8_t *p = m.body.bytes;
	for (size_t i = 0; i < size && i < m.body.len && bad == SIZE_MAX; i++)
		if (p[i] != pattern(i, seed))
			bad = i;
	CU_ASSERT_EQUAL(bad, SIZE_MAX);
	if (bad != SIZE_MAX)
		fprintf(stderr, "\n  body of %zu bytes (seed %u) differs at %zu\n", size, seed,
		        bad);
	amqp_destroy_message(&m);
	amqp_maybe_release_buffers(c);
}

/* One large body over many frames of awkward sizes (1 byte, frame_max,
 * empty ones), sent in small pieces, then a second message right behind it
 * on the same connection: both arrive intact, in order. */
static void test_body_many_frames_many_reads(void)
{
	char q[64];
	name_of(q, sizeof(q), "bodies-split");
	amqp_connection_state_t c = conn_open();
	CU_ASSERT_FATAL(c != NULL);
	CU_ASSERT_FATAL(qdecl(c, q));

	static const size_t frames1[] = {1,      131064,   7,     4096, SIZE_MAX, 100000,
	                                 131064, SIZE_MAX, 65536, 3,    131064,   0};
	size_t size1 = 0;
	for (size_t i = 0; frames1[i]; i++)
		size1 += frames1[i] == SIZE_MAX ? 0 : frames1[i];
	static const size_t frames2[] = {50000, 50000, 0};

	int fd = raw_open(131072);
	CU_ASSERT_FATAL(fd >= 0);
	struct wbuf b = {0};
	CU_ASSERT_EQUAL(wb_message(&b, q, size1, frames1, 1), size1);
	CU_ASSERT_EQUAL(wb_message(&b, q, 100000, frames2, 2), 100000);
	/* channel.flow as a marker: its -ok means everything before was read */
	wb_flow(&b, 1, true);
	send_in_pieces(fd, &b, 9000, 12345);
	static struct rframe f;
	CU_ASSERT_EQUAL(read_method(fd, &f, 10000), RF_OK);
	CU_ASSERT(f.ch == 1 && f.cls == 20 && f.mth == 21);
	expect_body(c, q, size1, 1);
	expect_body(c, q, 100000, 2);

	/* The same bytes once more in large pieces: frames split across reads
	 * at other places, some whole in one read. */
	send_in_pieces(fd, &b, 200000, 777);
	CU_ASSERT_EQUAL(read_method(fd, &f, 10000), RF_OK);
	CU_ASSERT(f.ch == 1 && f.cls == 20 && f.mth == 21);
	expect_body(c, q, size1, 1);
	expect_body(c, q, 100000, 2);
	wb_free(&b);
	close(fd);
	qdelete(c, q);
	broker_disconnect(c);
}

/* A content header for 0 bytes is the whole message (no body frame); a
 * 5-byte body may come with empty body frames before, between and inside
 * its frames. */
static void test_empty_bodies(void)
{
	char q[64];
	name_of(q, sizeof(q), "bodies-empty");
	amqp_connection_state_t c = conn_open();
	CU_ASSERT_FATAL(c != NULL);
	CU_ASSERT_FATAL(qdecl(c, q));
	int fd = raw_open(131072);
	CU_ASSERT_FATAL(fd >= 0);
	struct wbuf b = {0};
	static const size_t none[] = {0};
	static const size_t with_empty[] = {SIZE_MAX, 2, SIZE_MAX, 3, 0};
	wb_message(&b, q, 0, none, 3);
	wb_message(&b, q, 5, with_empty, 4);
	wb_message(&b, q, 0, none, 5);
	wb_flow(&b, 1, true);
	send_in_pieces(fd, &b, 5, 99);
	static struct rframe f;
	CU_ASSERT_EQUAL(read_method(fd, &f, 10000), RF_OK);
	CU_ASSERT(f.ch == 1 && f.cls == 20 && f.mth == 21);
	expect_body(c, q, 0, 3);
	expect_body(c, q, 5, 4);
	expect_body(c, q, 0, 5);
	wb_free(&b);
	close(fd);
	qdelete(c, q);
	broker_disconnect(c);
}

/* A body frame larger than what is left of the size its header declared:
 * 501 FRAME_ERROR, also when the frame arrives split across reads (then it
 * is not gathered into the message).  amqpd only: RabbitMQ 3.10 counts the
 * remaining size below zero and waits for a body end that never comes (no
 * close, no EOF). */
static void body_too_large(size_t max_piece)
{
	if (broker_external())
		return;
	int fd = raw_open(131072);
	CU_ASSERT_FATAL(fd >= 0);
	struct wbuf b = {0};
	static const size_t frames[] = {60000, 50000, 0}; /* 10000 too many */
	wb_message(&b, "itest-nowhere", 100000, frames, 6);
	send_in_pieces(fd, &b, max_piece, 4242); /* may fail once it gives up */
	struct rclose rc;
	int r = await_close(fd, &rc, 10000);
	CU_ASSERT_EQUAL(r, RF_OK);
	if (r == RF_OK) {
		CU_ASSERT_EQUAL(rc.kind, 10);
		CU_ASSERT_EQUAL(rc.code, 501);
		if (!broker_external())
			CU_ASSERT_STRING_EQUAL(
			    rc.text,
			    "FRAME_ERROR - content body larger than the size in its header");
		CU_ASSERT(await_eof(fd, 10000));
	}
	wb_free(&b);
	close(fd);
	/* The broker is fine: another connection moves a message. */
	char q[64];
	name_of(q, sizeof(q), "bodies-after");
	amqp_connection_state_t c = conn_open();
	CU_ASSERT_FATAL(c != NULL);
	CU_ASSERT_FATAL(qdecl(c, q));
	CU_ASSERT_EQUAL(publish(c, "", q, "ok"), AMQP_STATUS_OK);
	CU_ASSERT_EQUAL(get1(c, q, true).status, 1);
	qdelete(c, q);
	broker_disconnect(c);
}

static void test_body_frame_over_declared_size(void)
{
	body_too_large(300000); /* mostly whole frames */
}

static void test_body_frame_over_declared_size_split(void)
{
	body_too_large(3000); /* every frame split */
}

void suite_bodies(void)
{
	ITEST_SUITE("bodies", ITEST(test_body_many_frames_many_reads), ITEST(test_empty_bodies),
	            ITEST(test_body_frame_over_declared_size),
	            ITEST(test_body_frame_over_declared_size_split));
}
