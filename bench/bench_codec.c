/*
 * bench_codec.c - micro-benchmark of the hot path of the protocol codec.
 *
 * usage: bench_codec [SECONDS]     (default 2 per phase)
 *
 * One "message" is what a publisher sends per message: a basic.publish
 * method frame, a content header frame (content_type and delivery_mode) and
 * one 16-byte body frame.
 *   encode: write those 3 frames into a buffer with amqp_frame_method,
 *           amqp_frame_header and amqp_frame_body;
 *   decode: feed a buffer holding many copies of them to the frame parser
 *           and decode every method (amqp_method_decode) and content header
 *           (amqp_content_header_decode).
 * Prints messages/s, frames/s and ns per message for each.  Not a test: the
 * numbers depend on the machine; only a failed self-check exits non-zero.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "amqp.h"

#define FRAMES_PER_MSG 3
#define BODY_SIZE      16
#define DECODE_COPIES  1024 /* messages in the decode buffer */
#define CHECK_EVERY    256  /* iterations between clock reads */
#define MSG_MAX        256  /* bytes one encoded message needs at most */

static volatile uint64_t sink; /* keeps results observable */

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void fail(const char *what)
{
	fprintf(stderr, "bench_codec: self-check failed: %s\n", what);
	exit(1);
}

static const uint8_t body_bytes[BODY_SIZE] = "0123456789abcdef";

static void fill_message(struct amqp_method *m, struct amqp_basic_props *props)
{
	memset(m, 0, sizeof(*m));
	m->id = AMQP_BASIC_PUBLISH;
	m->u.basic_publish.exchange = amqp_cstr("amq.direct");
	m->u.basic_publish.routing_key = amqp_cstr("bench.queue");
	memset(props, 0, sizeof(*props));
	props->flags = AMQP_PROP_CONTENT_TYPE | AMQP_PROP_DELIVERY_MODE;
	props->content_type = amqp_cstr("application/octet-stream");
	props->delivery_mode = 2;
}

/* Encode one message at buf; returns its size (0 if it did not fit). */
static size_t encode_message(uint8_t *buf, size_t cap, const struct amqp_method *m,
                             const struct amqp_basic_props *props)
{
	struct amqp_bytes body = {body_bytes, BODY_SIZE};
	size_t a = amqp_frame_method(buf, cap, 1, m);
	if (a == 0 || a > cap)
		return 0;
	size_t b = amqp_frame_header(buf + a, cap - a, 1, AMQP_CLASS_BASIC, BODY_SIZE, props);
	if (b == 0 || b > cap - a)
		return 0;
	size_t c = amqp_frame_body(buf + a + b, cap - a - b, 1, body);
	if (c == 0 || c > cap - a - b)
		return 0;
	return a + b + c;
}

static void report(const char *phase, uint64_t msgs, double secs)
{
	double mps = (double)msgs / secs;
	printf("%-7s %12.0f msgs/s %12.0f frames/s %8.1f ns/msg  (%llu msgs in %.2f s)\n", phase,
	       mps, mps * FRAMES_PER_MSG, 1e9 / mps, (unsigned long long)msgs, secs);
}

static void bench_encode(double seconds)
{
	struct amqp_method m;
	struct amqp_basic_props props;
	static uint8_t buf[CHECK_EVERY * MSG_MAX];
	uint64_t msgs = 0, bytes = 0;

	fill_message(&m, &props);
	double start = now(), elapsed;
	do {
		size_t off = 0;
		for (int i = 0; i < CHECK_EVERY; i++) {
			size_t n = encode_message(buf + off, sizeof(buf) - off, &m, &props);
			if (n == 0)
				fail("encode");
			off += n;
		}
		bytes += off;
		sink += buf[off - 1];
		msgs += CHECK_EVERY;
		elapsed = now() - start;
	} while (elapsed < seconds);
	report("encode", msgs, elapsed);
	sink += bytes;
}

/* Parse every frame in buf[0..len); decode methods and headers.  Returns
 * the number of complete messages seen. */
static uint64_t decode_buffer(const uint8_t *buf, size_t len, bool verify)
{
	struct amqp_frame_parser ps;
	struct amqp_frame f;
	struct amqp_method m;
	struct amqp_content_header h;
	struct amqp_err err;
	uint64_t msgs = 0;
	size_t used;

	amqp_parser_init(&ps, AMQP_PARSER_CLIENT, 131072);
	while (len > 0) {
		int rc = amqp_parser_feed(&ps, buf, len, &used, &f, &err);
		if (rc != AMQP_PARSE_FRAME)
			fail("parse");
		buf += used;
		len -= used;
		switch (f.type) {
		case AMQP_FRAME_METHOD:
			if (amqp_method_decode(f.payload, f.size, &m, &err) != 0)
				fail("method decode");
			if (verify &&
			    (m.id != AMQP_BASIC_PUBLISH ||
			     !amqp_bytes_eq_cstr(m.u.basic_publish.routing_key, "bench.queue")))
				fail("method contents");
			break;
		case AMQP_FRAME_HEADER:
			if (amqp_content_header_decode(f.payload, f.size, &h, &err) != 0)
				fail("header decode");
			if (verify && h.body_size != BODY_SIZE)
				fail("header contents");
			break;
		case AMQP_FRAME_BODY:
			if (verify &&
			    (f.size != BODY_SIZE || memcmp(f.payload, body_bytes, BODY_SIZE)))
				fail("body contents");
			sink += f.payload[0];
			msgs++;
			break;
		default:
			fail("frame type");
		}
	}
	amqp_parser_free(&ps);
	return msgs;
}

static void bench_decode(double seconds)
{
	struct amqp_method m;
	struct amqp_basic_props props;
	uint8_t *buf = malloc(DECODE_COPIES * MSG_MAX);
	size_t len = 0;
	uint64_t msgs = 0;

	if (!buf)
		fail("out of memory");
	fill_message(&m, &props);
	for (int i = 0; i < DECODE_COPIES; i++) {
		size_t n = encode_message(buf + len, MSG_MAX, &m, &props);
		if (n == 0)
			fail("encode");
		len += n;
	}
	if (decode_buffer(buf, len, true) != DECODE_COPIES)
		fail("message count");

	double start = now(), elapsed;
	do {
		msgs += decode_buffer(buf, len, false);
		elapsed = now() - start;
	} while (elapsed < seconds);
	report("decode", msgs, elapsed);
	printf("        (one message = %zu bytes on the wire, %d frames)\n", len / DECODE_COPIES,
	       FRAMES_PER_MSG);
	free(buf);
}

int main(int argc, char **argv)
{
	double seconds = argc > 1 ? atof(argv[1]) : 2.0;
	if (seconds <= 0)
		seconds = 2.0;
	bench_encode(seconds);
	bench_decode(seconds);
	return 0;
}
