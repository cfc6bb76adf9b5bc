/*
 * test_methods.c - every generated method codec: metadata-driven round
 * trips against an independent reference encoder, a few byte-exact frames,
 * exhaustiveness against a hand-written list and against the spec JSON,
 * and reply codes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "test_util.h"

#ifndef AMQPD_SPEC_JSON
#define AMQPD_SPEC_JSON ""
#endif

#define CHECKF(cond, ...)                                                                          \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "\n  ");                                                   \
			fprintf(stderr, __VA_ARGS__);                                              \
			fprintf(stderr, "\n");                                                     \
		}                                                                                  \
		CU_ASSERT(cond);                                                                   \
	} while (0)

/* ---- metadata-driven round trip ----------------------------------------- */

#define MAX_ARGS    16
#define LONGSTR_MAX 70100
#define FRAME_CAP   (1u << 20)

/* Backing storage for the strings and tables put into one method. */
struct store {
	uint8_t shortstr[MAX_ARGS][256];
	uint8_t longstr[MAX_ARGS][LONGSTR_MAX];
	uint8_t table[MAX_ARGS][512];
};

/* Argument values for one pattern:
 *   0: bits 1,0,1,0...  short strings, small longstr with NULs
 *   1: bits 0,1,0,1...  255-byte shortstrs, >64 KiB longstrs with NULs
 *   2: all bits set     3: all bits clear */
#define NPATTERNS 4

static bool bit_value(int pattern, unsigned bit_index)
{
	switch (pattern) {
	case 0:
		return bit_index % 2 == 0;
	case 1:
		return bit_index % 2 == 1;
	case 2:
		return true;
	default:
		return false;
	}
}

static struct amqp_bytes make_table(struct store *st, unsigned i, int pattern)
{
	char sval[32];
	snprintf(sval, sizeof(sval), "value-%u-%d", i, pattern);
	struct amqp_table_entry inner_e[1] = {
	    {amqp_cstr("deep"), {.type = AMQP_FIELD_I64, .v = {.i64 = -(int64_t)i - 5}}},
	};
	struct amqp_table inner = {inner_e, 1};
	struct amqp_field_value items[2] = {
	    {.type = AMQP_FIELD_BOOL, .v = {.b = true}},
	    {.type = AMQP_FIELD_U8, .v = {.u8 = (uint8_t)(i + 1)}},
	};
	struct amqp_array arr = {items, 2};
	struct amqp_table_entry e[5] = {
	    {amqp_cstr("str"), {.type = AMQP_FIELD_LONGSTR, .v = {.str = amqp_cstr(sval)}}},
	    {amqp_cstr("int"), {.type = AMQP_FIELD_I32, .v = {.i32 = (int32_t)(1000 * i + 7)}}},
	    {amqp_cstr("flag"), {.type = AMQP_FIELD_BOOL, .v = {.b = pattern % 2 == 0}}},
	    {amqp_cstr("nested"), {.type = AMQP_FIELD_TABLE, .v = {.table = {{NULL, 0}, &inner}}}},
	    {amqp_cstr("list"), {.type = AMQP_FIELD_ARRAY, .v = {.array = {{NULL, 0}, &arr}}}},
	};
	struct amqp_table t = {e, 5};
	struct amqp_wr w;
	amqp_wr_init(&w, st->table[i], sizeof(st->table[i]));
	amqp_table_encode_contents(&w, &t);
	CU_ASSERT_FATAL(amqp_wr_ok(&w) && w.len > 0);
	struct amqp_bytes b = {st->table[i], w.len};
	CU_ASSERT_FATAL(amqp_table_validate(b, NULL) == 0);
	return b;
}

/* Fill every argument of m (already carrying its id) from the metadata. */
static void fill(struct amqp_method *m, const struct amqp_method_info *mi, int pattern,
                 struct store *st)
{
	unsigned bit = 0;
	for (unsigned i = 0; i < mi->nargs; i++) {
		const struct amqp_arg_info *a = &mi->args[i];
		void *f = (char *)m + a->offset;
		switch (a->kind) {
		case AMQP_ARG_BIT:
			*(bool *)f = bit_value(pattern, bit++);
			break;
		case AMQP_ARG_OCTET:
			*(uint8_t *)f = (uint8_t)(0xA5 ^ (i << 4) ^ (unsigned)pattern);
			break;
		case AMQP_ARG_SHORT:
			*(uint16_t *)f = (uint16_t)(0xBEEF + 0x0101 * i + (unsigned)pattern);
			break;
		case AMQP_ARG_LONG:
			*(uint32_t *)f = 0xDEADBEEFu + 0x01010101u * i + (unsigned)pattern;
			break;
		case AMQP_ARG_LONGLONG:
		case AMQP_ARG_TIMESTAMP:
			*(uint64_t *)f =
			    0x0123456789ABCDEFull + 0x0101010101010101ull * i + (unsigned)pattern;
			break;
		case AMQP_ARG_SHORTSTR: {
			size_t len;
			if (pattern == 1) {
				len = 255;
				for (size_t j = 0; j < len; j++)
					st->shortstr[i][j] = (uint8_t)(j * 3 + i);
			} else {
				len = (size_t)snprintf((char *)st->shortstr[i], 256, "s%u/%d:%s", i,
				                       pattern, mi->name);
			}
			*(struct amqp_bytes *)f = (struct amqp_bytes){st->shortstr[i], len};
			break;
		}
		case AMQP_ARG_LONGSTR: {
			/* NUL bytes inside; over 64 KiB so all 4 length bytes matter. */
			size_t len = pattern == 1 ? 70000 + i : 10 + i;
			for (size_t j = 0; j < len; j++)
				st->longstr[i][j] = (uint8_t)(j % 5 == 0 ? 0 : j * 7 + i);
			*(struct amqp_bytes *)f = (struct amqp_bytes){st->longstr[i], len};
			break;
		}
		case AMQP_ARG_TABLE:
			*(struct amqp_bytes *)f = make_table(st, i, pattern);
			break;
		default:
			CU_FAIL("unknown argument kind");
		}
	}
}

static void put16(uint8_t *o, size_t *n, uint16_t v)
{
	o[(*n)++] = (uint8_t)(v >> 8);
	o[(*n)++] = (uint8_t)v;
}

static void put32(uint8_t *o, size_t *n, uint32_t v)
{
	put16(o, n, (uint16_t)(v >> 16));
	put16(o, n, (uint16_t)v);
}

/*
 * Reference encoder, written from the spec rather than from the codec:
 * fields in order, big-endian, consecutive bits packed LSB-first into
 * octets (a new octet after 8 bits or after any non-bit field).
 */
static size_t ref_frame(uint8_t *o, uint16_t channel, const struct amqp_method_info *mi,
                        const struct amqp_method *m)
{
	size_t n = 0;
	uint8_t acc = 0;
	unsigned nbits = 0;

	o[n++] = AMQP_FRAME_METHOD;
	put16(o, &n, channel);
	put32(o, &n, 0); /* size, patched below */
	put32(o, &n, mi->id);
	for (unsigned i = 0; i < mi->nargs; i++) {
		const struct amqp_arg_info *a = &mi->args[i];
		const void *f = (const char *)m + a->offset;
		if (a->kind == AMQP_ARG_BIT) {
			if (nbits == 8) {
				o[n++] = acc;
				acc = 0;
				nbits = 0;
			}
			if (*(const bool *)f)
				acc |= (uint8_t)(1u << nbits);
			nbits++;
			continue;
		}
		if (nbits) {
			o[n++] = acc;
			acc = 0;
			nbits = 0;
		}
		switch (a->kind) {
		case AMQP_ARG_OCTET:
			o[n++] = *(const uint8_t *)f;
			break;
		case AMQP_ARG_SHORT:
			put16(o, &n, *(const uint16_t *)f);
			break;
		case AMQP_ARG_LONG:
			put32(o, &n, *(const uint32_t *)f);
			break;
		case AMQP_ARG_LONGLONG:
		case AMQP_ARG_TIMESTAMP: {
			uint64_t v = *(const uint64_t *)f;
			put32(o, &n, (uint32_t)(v >> 32));
			put32(o, &n, (uint32_t)v);
			break;
		}
		case AMQP_ARG_SHORTSTR: {
			const struct amqp_bytes *b = f;
			o[n++] = (uint8_t)b->len;
			memcpy(o + n, b->ptr, b->len);
			n += b->len;
			break;
		}
		case AMQP_ARG_LONGSTR:
		case AMQP_ARG_TABLE: {
			const struct amqp_bytes *b = f;
			put32(o, &n, (uint32_t)b->len);
			memcpy(o + n, b->ptr, b->len);
			n += b->len;
			break;
		}
		default:
			break;
		}
	}
	if (nbits)
		o[n++] = acc;
	size_t at = 3;
	put32(o, &at, (uint32_t)(n - 7));
	o[n++] = AMQP_FRAME_END;
	return n;
}

/* Compare every argument; byte fields by content, and check that decoded
 * ones borrow from the payload. */
static void compare_args(const struct amqp_method_info *mi, const struct amqp_method *want,
                         const struct amqp_method *got, const uint8_t *payload, size_t plen,
                         int pattern)
{
	for (unsigned i = 0; i < mi->nargs; i++) {
		const struct amqp_arg_info *a = &mi->args[i];
		const void *x = (const char *)want + a->offset;
		const void *y = (const char *)got + a->offset;
		bool eq = false;
		switch (a->kind) {
		case AMQP_ARG_BIT:
			eq = *(const bool *)x == *(const bool *)y;
			break;
		case AMQP_ARG_OCTET:
			eq = *(const uint8_t *)x == *(const uint8_t *)y;
			break;
		case AMQP_ARG_SHORT:
			eq = *(const uint16_t *)x == *(const uint16_t *)y;
			break;
		case AMQP_ARG_LONG:
			eq = *(const uint32_t *)x == *(const uint32_t *)y;
			break;
		case AMQP_ARG_LONGLONG:
		case AMQP_ARG_TIMESTAMP:
			eq = *(const uint64_t *)x == *(const uint64_t *)y;
			break;
		case AMQP_ARG_SHORTSTR:
		case AMQP_ARG_LONGSTR:
		case AMQP_ARG_TABLE: {
			const struct amqp_bytes *bx = x, *by = y;
			eq = amqp_bytes_eq(*bx, *by);
			if (eq && by->len)
				eq = by->ptr >= payload && by->ptr + by->len <= payload + plen;
			break;
		}
		}
		CHECKF(eq, "%s.%s (pattern %d) differs after the round trip", mi->name, a->name,
		       pattern);
	}
}

static void test_roundtrip_all_methods(void)
{
	static struct store st;
	static uint8_t frame[FRAME_CAP], ref[FRAME_CAP], again[FRAME_CAP];
	unsigned done = 0, multi_bit = 0;

	for (size_t k = 0; k < AMQP_METHOD_COUNT; k++) {
		const struct amqp_method_info *mi = &amqp_methods[k];
		CU_ASSERT_FATAL(mi->nargs <= MAX_ARGS);
		CU_ASSERT_PTR_EQUAL(amqp_method_info(mi->id), mi);
		unsigned nbits = 0;
		for (unsigned i = 0; i < mi->nargs; i++)
			nbits += mi->args[i].kind == AMQP_ARG_BIT;
		multi_bit += nbits > 1;

		for (int pattern = 0; pattern < NPATTERNS; pattern++) {
			struct amqp_method m, d;
			uint16_t channel = (uint16_t)(k % 2 ? 0xFFFF - k : 0x0100 + k);

			memset(&m, 0, sizeof(m));
			m.id = mi->id;
			fill(&m, mi, pattern, &st);

			size_t n = amqp_frame_method(frame, sizeof(frame), channel, &m);
			CHECKF(n > 0 && n <= sizeof(frame), "%s: encode failed (%zu)", mi->name, n);
			if (n == 0 || n > sizeof(frame))
				continue;
			size_t rn = ref_frame(ref, channel, mi, &m);
			CHECKF(n == rn && memcmp(frame, ref, n) == 0,
			       "%s (pattern %d): bytes differ from the reference encoding",
			       mi->name, pattern);

			/* Through the frame parser, as a peer would receive it. */
			struct amqp_frame_parser p;
			struct amqp_frame f;
			struct amqp_err err = {0, NULL};
			size_t used = 0;
			amqp_parser_init(&p, AMQP_PARSER_CLIENT, 0);
			int rc = amqp_parser_feed(&p, frame, n, &used, &f, &err);
			CHECKF(rc == AMQP_PARSE_FRAME, "%s: parser returned %d", mi->name, rc);
			if (rc != AMQP_PARSE_FRAME) {
				amqp_parser_free(&p);
				continue;
			}
			CU_ASSERT_EQUAL(used, n);
			CU_ASSERT_EQUAL(f.type, AMQP_FRAME_METHOD);
			CU_ASSERT_EQUAL(f.channel, channel);
			CU_ASSERT_EQUAL(f.size, n - 8);
			CU_ASSERT_PTR_EQUAL(f.payload, frame + 7);

			memset(&d, 0, sizeof(d));
			rc = amqp_method_decode(f.payload, f.size, &d, &err);
			CHECKF(rc == 0, "%s (pattern %d): decode returned %d", mi->name, pattern,
			       rc);
			if (rc == 0) {
				CU_ASSERT_EQUAL(d.id, mi->id);
				compare_args(mi, &m, &d, f.payload, f.size, pattern);
				size_t n2 = amqp_frame_method(again, sizeof(again), channel, &d);
				CHECKF(n2 == n && memcmp(frame, again, n) == 0,
				       "%s (pattern %d): re-encoding differs", mi->name, pattern);
				done++;
			}
			amqp_parser_free(&p);
		}
	}
	CU_ASSERT_EQUAL(done, AMQP_METHOD_COUNT * NPATTERNS);
	/* Bit packing was exercised with several bits in one octet. */
	CU_ASSERT(multi_bit >= 5);
}

/*
 * Malformed payloads for every method, not just the ones test_frame picks:
 * every truncation is FRAME_ERROR, a trailing byte is FRAME_ERROR, and a
 * bad table in any table argument is SYNTAX_ERROR.
 */
static void test_malformed_every_method(void)
{
	static struct store st;
	static uint8_t pl[1 << 16];
	/* Key "k", then a value of unknown type 'Z'. */
	static const uint8_t bad_table[] = {1, 'k', 'Z', 0, 0, 0, 0};
	unsigned tables = 0;

	for (size_t k = 0; k < AMQP_METHOD_COUNT; k++) {
		const struct amqp_method_info *mi = &amqp_methods[k];
		struct amqp_method m, d;
		struct amqp_wr w;
		struct amqp_err err;

		memset(&m, 0, sizeof(m));
		m.id = mi->id;
		fill(&m, mi, 0, &st);
		amqp_wr_init(&w, pl, sizeof(pl) - 1);
		CU_ASSERT_FATAL(amqp_method_encode(&w, &m) && amqp_wr_ok(&w));
		size_t len = w.len;

		for (size_t cut = 0; cut < len; cut++) {
			/* Exact-size copy: ASan flags any read past the cut. */
			uint8_t *c = malloc(cut ? cut : 1);
			CU_ASSERT_PTR_NOT_NULL_FATAL(c);
			memcpy(c, pl, cut);
			memset(&err, 0, sizeof(err));
			int rc = amqp_method_decode(c, cut, &d, &err);
			CHECKF(rc == -AMQP_FRAME_ERROR && err.code == AMQP_FRAME_ERROR && err.text,
			       "%s cut at %zu of %zu: rc %d", mi->name, cut, len, rc);
			free(c);
		}

		pl[len] = 0x00;
		memset(&err, 0, sizeof(err));
		int rc = amqp_method_decode(pl, len + 1, &d, &err);
		CHECKF(rc == -AMQP_FRAME_ERROR && err.code == AMQP_FRAME_ERROR,
		       "%s with a trailing byte: rc %d", mi->name, rc);

		for (unsigned i = 0; i < mi->nargs; i++) {
			if (mi->args[i].kind != AMQP_ARG_TABLE)
				continue;
			struct amqp_method b = m;
			*(struct amqp_bytes *)((char *)&b + mi->args[i].offset) =
			    (struct amqp_bytes){bad_table, sizeof(bad_table)};
			amqp_wr_init(&w, pl, sizeof(pl));
			CU_ASSERT_FATAL(amqp_method_encode(&w, &b) && amqp_wr_ok(&w));
			memset(&err, 0, sizeof(err));
			rc = amqp_method_decode(pl, w.len, &d, &err);
			CHECKF(rc == -AMQP_SYNTAX_ERROR && err.code == AMQP_SYNTAX_ERROR,
			       "%s.%s with a bad table: rc %d", mi->name, mi->args[i].name, rc);
			tables++;
		}
	}
	/* connection.start/start-ok, exchange.declare/bind/unbind,
	 * queue.declare/bind/unbind, basic.consume at least. */
	CU_ASSERT(tables >= 9);
}

/* ---- byte-exact frames ---------------------------------------------------- */

static void expect_bytes(const struct amqp_method *m, uint16_t channel, const uint8_t *want,
                         size_t len)
{
	uint8_t buf[256];
	memset(buf, 0xAA, sizeof(buf));
	size_t n = amqp_frame_method(buf, sizeof(buf), channel, m);
	CHECKF(n == len && memcmp(buf, want, len) == 0, "%s: wrong bytes", amqp_method_name(m->id));
	CU_ASSERT_EQUAL(buf[len], 0xAA);
}

/* Decode a hand-written frame's payload (frame bytes minus header/end). */
static int decode_frame_bytes(const uint8_t *fr, size_t len, struct amqp_method *m)
{
	memset(m, 0, sizeof(*m));
	return amqp_method_decode(fr + 7, len - 8, m, NULL);
}

static void test_exact_basic_ack(void)
{
	static const uint8_t want[] = {0x01, 0x00, 0x01, 0x00, 0x00, 0x00, 0x0D,
	                               0x00, 0x3C, 0x00, 0x50, 0x00, 0x00, 0x00,
	                               0x00, 0x00, 0x00, 0x00, 0x01, 0x01, 0xCE};
	struct amqp_method m;
	memset(&m, 0, sizeof(m));
	m.id = AMQP_BASIC_ACK;
	m.u.basic_ack.delivery_tag = 1;
	m.u.basic_ack.multiple = true;
	expect_bytes(&m, 1, want, sizeof(want));

	CU_ASSERT_EQUAL_FATAL(decode_frame_bytes(want, sizeof(want), &m), 0);
	CU_ASSERT_EQUAL(m.id, AMQP_BASIC_ACK);
	CU_ASSERT_EQUAL(m.u.basic_ack.delivery_tag, 1);
	CU_ASSERT_EQUAL(m.u.basic_ack.multiple, true);
}

static void test_exact_channel_open(void)
{
	static const uint8_t want[] = {0x01, 0x00, 0x01, 0x00, 0x00, 0x00, 0x05,
	                               0x00, 0x14, 0x00, 0x0A, 0x00, 0xCE};
	struct amqp_method m;
	memset(&m, 0, sizeof(m));
	m.id = AMQP_CHANNEL_OPEN;
	expect_bytes(&m, 1, want, sizeof(want));
	CU_ASSERT_EQUAL_FATAL(decode_frame_bytes(want, sizeof(want), &m), 0);
	CU_ASSERT_EQUAL(m.id, AMQP_CHANNEL_OPEN);
	CU_ASSERT_EQUAL(m.u.channel_open.out_of_band.len, 0);
}

static void test_exact_basic_qos(void)
{
	static const uint8_t want[] = {0x01, 0x00, 0x01, 0x00, 0x00, 0x00, 0x0B, 0x00, 0x3C, 0x00,
	                               0x0A, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0A, 0x01, 0xCE};
	struct amqp_method m;
	memset(&m, 0, sizeof(m));
	m.id = AMQP_BASIC_QOS;
	m.u.basic_qos.prefetch_count = 10;
	m.u.basic_qos.global = true;
	expect_bytes(&m, 1, want, sizeof(want));
	CU_ASSERT_EQUAL_FATAL(decode_frame_bytes(want, sizeof(want), &m), 0);
	CU_ASSERT_EQUAL(m.u.basic_qos.prefetch_size, 0);
	CU_ASSERT_EQUAL(m.u.basic_qos.prefetch_count, 10);
	CU_ASSERT_EQUAL(m.u.basic_qos.global, true);
}

static void test_exact_connection_tune(void)
{
	static const uint8_t want[] = {0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x00, 0x0A, 0x00,
	                               0x1E, 0x07, 0xFF, 0x00, 0x02, 0x00, 0x00, 0x00, 0x3C, 0xCE};
	struct amqp_method m;
	memset(&m, 0, sizeof(m));
	m.id = AMQP_CONNECTION_TUNE;
	m.u.connection_tune.channel_max = 2047;
	m.u.connection_tune.frame_max = 131072;
	m.u.connection_tune.heartbeat = 60;
	expect_bytes(&m, 0, want, sizeof(want));
	CU_ASSERT_EQUAL_FATAL(decode_frame_bytes(want, sizeof(want), &m), 0);
	CU_ASSERT_EQUAL(m.u.connection_tune.channel_max, 2047);
	CU_ASSERT_EQUAL(m.u.connection_tune.frame_max, 131072);
	CU_ASSERT_EQUAL(m.u.connection_tune.heartbeat, 60);
}

static void test_exact_queue_declare_bits(void)
{
	/* durable (bit 1) and auto-delete (bit 3) -> 0x0A; empty table. */
	static const uint8_t want[] = {0x01, 0x00, 0x02, 0x00, 0x00, 0x00, 0x0D,
	                               0x00, 0x32, 0x00, 0x0A, 0x00, 0x00, 0x01,
	                               'q',  0x0A, 0x00, 0x00, 0x00, 0x00, 0xCE};
	struct amqp_method m;
	memset(&m, 0, sizeof(m));
	m.id = AMQP_QUEUE_DECLARE;
	m.u.queue_declare.queue = amqp_cstr("q");
	m.u.queue_declare.durable = true;
	m.u.queue_declare.auto_delete = true;
	expect_bytes(&m, 2, want, sizeof(want));
	CU_ASSERT_EQUAL_FATAL(decode_frame_bytes(want, sizeof(want), &m), 0);
	CU_ASSERT(amqp_bytes_eq_cstr(m.u.queue_declare.queue, "q"));
	CU_ASSERT_FALSE(m.u.queue_declare.passive);
	CU_ASSERT_TRUE(m.u.queue_declare.durable);
	CU_ASSERT_FALSE(m.u.queue_declare.exclusive);
	CU_ASSERT_TRUE(m.u.queue_declare.auto_delete);
	CU_ASSERT_FALSE(m.u.queue_declare.nowait);
	CU_ASSERT_EQUAL(m.u.queue_declare.arguments.len, 0);
}

static void test_exact_connection_close(void)
{
	/* 404 "NOT_FOUND" caused by queue.declare (50/10), on channel 0. */
	static const uint8_t want[] = {0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x14, 0x00, 0x0A, 0x00,
	                               0x32, 0x01, 0x94, 0x09, 'N',  'O',  'T',  '_',  'F',  'O',
	                               'U',  'N',  'D',  0x00, 0x32, 0x00, 0x0A, 0xCE};
	struct amqp_method m;
	memset(&m, 0, sizeof(m));
	m.id = AMQP_CONNECTION_CLOSE;
	m.u.connection_close.reply_code = 404;
	m.u.connection_close.reply_text = amqp_cstr("NOT_FOUND");
	m.u.connection_close.class_id = 50;
	m.u.connection_close.method_id = 10;
	expect_bytes(&m, 0, want, sizeof(want));
	CU_ASSERT_EQUAL_FATAL(decode_frame_bytes(want, sizeof(want), &m), 0);
	CU_ASSERT_EQUAL(m.u.connection_close.reply_code, 404);
	CU_ASSERT_EQUAL(m.u.connection_close.class_id, 50);
	CU_ASSERT_EQUAL(m.u.connection_close.method_id, 10);
}

/* ---- exhaustiveness -------------------------------------------------------- */

static const struct {
	uint16_t cls, meth;
	const char *name;
} all_methods[] = {
    {10, 10, "connection.start"},
    {10, 11, "connection.start-ok"},
    {10, 20, "connection.secure"},
    {10, 21, "connection.secure-ok"},
    {10, 30, "connection.tune"},
    {10, 31, "connection.tune-ok"},
    {10, 40, "connection.open"},
    {10, 41, "connection.open-ok"},
    {10, 50, "connection.close"},
    {10, 51, "connection.close-ok"},
    {10, 60, "connection.blocked"},
    {10, 61, "connection.unblocked"},
    {10, 70, "connection.update-secret"},
    {10, 71, "connection.update-secret-ok"},
    {20, 10, "channel.open"},
    {20, 11, "channel.open-ok"},
    {20, 20, "channel.flow"},
    {20, 21, "channel.flow-ok"},
    {20, 40, "channel.close"},
    {20, 41, "channel.close-ok"},
    {30, 10, "access.request"},
    {30, 11, "access.request-ok"},
    {40, 10, "exchange.declare"},
    {40, 11, "exchange.declare-ok"},
    {40, 20, "exchange.delete"},
    {40, 21, "exchange.delete-ok"},
    {40, 30, "exchange.bind"},
    {40, 31, "exchange.bind-ok"},
    {40, 40, "exchange.unbind"},
    {40, 51, "exchange.unbind-ok"},
    {50, 10, "queue.declare"},
    {50, 11, "queue.declare-ok"},
    {50, 20, "queue.bind"},
    {50, 21, "queue.bind-ok"},
    {50, 30, "queue.purge"},
    {50, 31, "queue.purge-ok"},
    {50, 40, "queue.delete"},
    {50, 41, "queue.delete-ok"},
    {50, 50, "queue.unbind"},
    {50, 51, "queue.unbind-ok"},
    {60, 10, "basic.qos"},
    {60, 11, "basic.qos-ok"},
    {60, 20, "basic.consume"},
    {60, 21, "basic.consume-ok"},
    {60, 30, "basic.cancel"},
    {60, 31, "basic.cancel-ok"},
    {60, 40, "basic.publish"},
    {60, 50, "basic.return"},
    {60, 60, "basic.deliver"},
    {60, 70, "basic.get"},
    {60, 71, "basic.get-ok"},
    {60, 72, "basic.get-empty"},
    {60, 80, "basic.ack"},
    {60, 90, "basic.reject"},
    {60, 100, "basic.recover-async"},
    {60, 110, "basic.recover"},
    {60, 111, "basic.recover-ok"},
    {60, 120, "basic.nack"},
    {85, 10, "confirm.select"},
    {85, 11, "confirm.select-ok"},
    {90, 10, "tx.select"},
    {90, 11, "tx.select-ok"},
    {90, 20, "tx.commit"},
    {90, 21, "tx.commit-ok"},
    {90, 30, "tx.rollback"},
    {90, 31, "tx.rollback-ok"},
};
#define N_ALL_METHODS (sizeof(all_methods) / sizeof(all_methods[0]))

static void test_method_list_complete(void)
{
	CU_ASSERT_EQUAL(N_ALL_METHODS, 66);
	CU_ASSERT_EQUAL(AMQP_METHOD_COUNT, N_ALL_METHODS);

	for (size_t i = 0; i < N_ALL_METHODS; i++) {
		uint32_t id = AMQP_METHOD_ID(all_methods[i].cls, all_methods[i].meth);
		const struct amqp_method_info *mi = amqp_method_info(id);
		CHECKF(mi != NULL, "%s (%u/%u) missing", all_methods[i].name, all_methods[i].cls,
		       all_methods[i].meth);
		if (!mi)
			continue;
		CU_ASSERT_EQUAL(mi->id, id);
		CU_ASSERT_PTR_NOT_NULL(mi->decode);
		CU_ASSERT_PTR_NOT_NULL(mi->encode);
		CHECKF(strcmp(amqp_method_name(id), all_methods[i].name) == 0, "%s named %s",
		       all_methods[i].name, amqp_method_name(id));
		CU_ASSERT_STRING_EQUAL(mi->name, all_methods[i].name);
		/* Content-carrying methods are exactly these four. */
		bool content = id == AMQP_BASIC_PUBLISH || id == AMQP_BASIC_RETURN ||
		               id == AMQP_BASIC_DELIVER || id == AMQP_BASIC_GET_OK;
		CHECKF(mi->content == content, "%s: content flag", mi->name);
	}

	/* And the table holds nothing else, each id once. */
	for (size_t k = 0; k < AMQP_METHOD_COUNT; k++) {
		unsigned hits = 0;
		for (size_t i = 0; i < N_ALL_METHODS; i++)
			hits += amqp_methods[k].id ==
			        AMQP_METHOD_ID(all_methods[i].cls, all_methods[i].meth);
		CHECKF(hits == 1, "amqp_methods[%zu] (%s) listed %u times", k, amqp_methods[k].name,
		       hits);
	}

	/* Ids next to real ones are unknown. */
	static const uint16_t bogus[][2] = {{10, 12}, {10, 72}, {20, 30},  {40, 41},
	                                    {40, 50}, {60, 41}, {60, 121}, {85, 20},
	                                    {90, 40}, {0, 0},   {11, 10},  {100, 10}};
	for (size_t i = 0; i < sizeof(bogus) / sizeof(bogus[0]); i++) {
		uint32_t id = AMQP_METHOD_ID(bogus[i][0], bogus[i][1]);
		CU_ASSERT_PTR_NULL(amqp_method_info(id));
		CU_ASSERT_STRING_EQUAL(amqp_method_name(id), "unknown");
	}
}

/* The kind an argument has in the spec: its type, or its domain's type. */
static int spec_kind(json_t *domains, json_t *arg)
{
	const char *t = json_string_value(json_object_get(arg, "type"));
	if (!t) {
		const char *dom = json_string_value(json_object_get(arg, "domain"));
		size_t i;
		json_t *d;
		json_array_foreach(domains, i, d)
		{
			if (dom && strcmp(json_string_value(json_array_get(d, 0)), dom) == 0)
				t = json_string_value(json_array_get(d, 1));
		}
	}
	static const struct {
		const char *name;
		enum amqp_arg_kind kind;
	} kinds[] = {
	    {"bit", AMQP_ARG_BIT},           {"octet", AMQP_ARG_OCTET},
	    {"short", AMQP_ARG_SHORT},       {"long", AMQP_ARG_LONG},
	    {"longlong", AMQP_ARG_LONGLONG}, {"timestamp", AMQP_ARG_TIMESTAMP},
	    {"shortstr", AMQP_ARG_SHORTSTR}, {"longstr", AMQP_ARG_LONGSTR},
	    {"table", AMQP_ARG_TABLE},
	};
	for (size_t i = 0; t && i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (strcmp(kinds[i].name, t) == 0)
			return (int)kinds[i].kind;
	return -1;
}

static void dashes_to_underscores(char *s)
{
	for (; *s; s++)
		if (*s == '-')
			*s = '_';
}

static void test_methods_match_spec(void)
{
	const char *path = AMQPD_SPEC_JSON;
	if (!path[0] || access(path, R_OK) != 0) {
		printf("\n  note: spec %s not found; spec cross-check skipped\n",
		       path[0] ? path : "(AMQPD_SPEC_JSON unset)");
		return;
	}
	json_error_t jerr;
	json_t *spec = json_load_file(path, 0, &jerr);
	CHECKF(spec != NULL, "%s:%d: %s", path, jerr.line, jerr.text);
	if (!spec)
		return;
	json_t *domains = json_object_get(spec, "domains");
	json_t *classes = json_object_get(spec, "classes");
	CU_ASSERT_FATAL(json_is_array(domains) && json_is_array(classes));

	size_t total = 0, ci, mj, ak;
	json_t *cls, *meth, *arg;
	json_array_foreach(classes, ci, cls)
	{
		json_int_t cid = json_integer_value(json_object_get(cls, "id"));
		const char *cname = json_string_value(json_object_get(cls, "name"));
		json_array_foreach(json_object_get(cls, "methods"), mj, meth)
		{
			json_int_t mid = json_integer_value(json_object_get(meth, "id"));
			const char *mname = json_string_value(json_object_get(meth, "name"));
			char full[128];
			snprintf(full, sizeof(full), "%s.%s", cname, mname);
			total++;

			uint32_t id = AMQP_METHOD_ID(cid, mid);
			const struct amqp_method_info *mi = amqp_method_info(id);
			CHECKF(mi != NULL, "spec method %s missing", full);
			if (!mi)
				continue;
			CU_ASSERT_PTR_NOT_NULL(mi->decode);
			CU_ASSERT_PTR_NOT_NULL(mi->encode);
			CHECKF(strcmp(amqp_method_name(id), full) == 0, "%s named %s", full,
			       amqp_method_name(id));
			CHECKF(mi->synchronous ==
			           json_is_true(json_object_get(meth, "synchronous")),
			       "%s: synchronous flag", full);
			CHECKF(mi->content == json_is_true(json_object_get(meth, "content")),
			       "%s: content flag", full);

			json_t *args = json_object_get(meth, "arguments");
			CHECKF(mi->nargs == json_array_size(args), "%s: %u args, spec has %zu",
			       full, mi->nargs, json_array_size(args));
			if (mi->nargs != json_array_size(args))
				continue;
			json_array_foreach(args, ak, arg)
			{
				char aname[128];
				snprintf(aname, sizeof(aname), "%s",
				         json_string_value(json_object_get(arg, "name")));
				dashes_to_underscores(aname);
				CHECKF(strcmp(mi->args[ak].name, aname) == 0,
				       "%s arg %zu: %s, spec has %s", full, ak, mi->args[ak].name,
				       aname);
				CHECKF((int)mi->args[ak].kind == spec_kind(domains, arg),
				       "%s.%s: kind %d, spec %d", full, aname,
				       (int)mi->args[ak].kind, spec_kind(domains, arg));
			}
		}
	}
	CU_ASSERT_EQUAL(total, AMQP_METHOD_COUNT);

	/* Reply codes: names and hard/soft class straight from the spec. */
	size_t i, ncodes = 0;
	json_t *c;
	json_array_foreach(json_object_get(spec, "constants"), i, c)
	{
		const char *name = json_string_value(json_object_get(c, "name"));
		const char *klass = json_string_value(json_object_get(c, "class"));
		if (!klass && strcmp(name, "REPLY-SUCCESS") != 0)
			continue;
		uint16_t code = (uint16_t)json_integer_value(json_object_get(c, "value"));
		char want[64];
		snprintf(want, sizeof(want), "%s", name);
		dashes_to_underscores(want);
		CHECKF(strcmp(amqp_reply_code_name(code), want) == 0, "reply %u: %s, spec %s", code,
		       amqp_reply_code_name(code), want);
		bool hard = klass && strcmp(klass, "hard-error") == 0;
		CHECKF(amqp_reply_code_is_hard(code) == hard, "reply %u hard flag", code);
		ncodes++;
	}
	CU_ASSERT_EQUAL(ncodes, 19);
	json_decref(spec);
}

/* ---- reply codes ----------------------------------------------------------- */

static void test_reply_codes(void)
{
	static const struct {
		uint16_t code;
		const char *name;
		bool hard;
	} codes[] = {
	    {200, "REPLY_SUCCESS", false},    {311, "CONTENT_TOO_LARGE", false},
	    {312, "NO_ROUTE", false},         {313, "NO_CONSUMERS", false},
	    {320, "CONNECTION_FORCED", true}, {402, "INVALID_PATH", true},
	    {403, "ACCESS_REFUSED", false},   {404, "NOT_FOUND", false},
	    {405, "RESOURCE_LOCKED", false},  {406, "PRECONDITION_FAILED", false},
	    {501, "FRAME_ERROR", true},       {502, "SYNTAX_ERROR", true},
	    {503, "COMMAND_INVALID", true},   {504, "CHANNEL_ERROR", true},
	    {505, "UNEXPECTED_FRAME", true},  {506, "RESOURCE_ERROR", true},
	    {530, "NOT_ALLOWED", true},       {540, "NOT_IMPLEMENTED", true},
	    {541, "INTERNAL_ERROR", true},
	};
	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
		CHECKF(strcmp(amqp_reply_code_name(codes[i].code), codes[i].name) == 0,
		       "reply %u named %s", codes[i].code, amqp_reply_code_name(codes[i].code));
		CHECKF(amqp_reply_code_is_hard(codes[i].code) == codes[i].hard,
		       "reply %u hard flag", codes[i].code);
	}
	static const uint16_t unknown[] = {0, 1, 100, 201, 310, 400, 500, 507, 999, 65535};
	for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
		CU_ASSERT_STRING_EQUAL(amqp_reply_code_name(unknown[i]), "UNKNOWN");
		CU_ASSERT_FALSE(amqp_reply_code_is_hard(unknown[i]));
	}
	/* The macros agree with the table. */
	CU_ASSERT_EQUAL(AMQP_FRAME_ERROR, 501);
	CU_ASSERT_EQUAL(AMQP_NOT_FOUND, 404);
	CU_ASSERT_EQUAL(AMQP_INTERNAL_ERROR, 541);
}

void suite_methods(void)
{
	TEST_SUITE("methods", TEST(test_roundtrip_all_methods), TEST(test_malformed_every_method),
	           TEST(test_exact_basic_ack), TEST(test_exact_channel_open),
	           TEST(test_exact_basic_qos), TEST(test_exact_connection_tune),
	           TEST(test_exact_queue_declare_bits), TEST(test_exact_connection_close),
	           TEST(test_method_list_complete), TEST(test_methods_match_spec),
	           TEST(test_reply_codes));
}
