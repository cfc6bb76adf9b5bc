/*
 * test_props.c - content header payloads and basic's 14 properties:
 * round trips, byte-exact layout, the flag-word continuation rule and
 * malformed headers.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_util.h"

#define N_ELEMS(a) (sizeof(a) / sizeof((a)[0]))
/* A literal as a struct amqp_bytes initializer; sizeof keeps embedded NULs. */
#define LIT(s)                                                                                     \
	{                                                                                          \
		(const uint8_t *)(s), sizeof(s) - 1                                                \
	}
#define S10 "0123456789"
#define S255                                                                                       \
	S10 S10 S10 S10 S10 S10 S10 S10 S10 S10 S10 S10 S10 S10 S10 S10 S10 S10 S10 S10 S10 S10    \
	    S10 S10 S10 "01234"

/* Report a failed check with a formatted message (CUnit copies the text). */
#define CHECKF(cond, ...)                                                                          \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			char m_[200];                                                              \
			snprintf(m_, sizeof(m_), __VA_ARGS__);                                     \
			CU_assertImplementation(CU_FALSE, __LINE__, m_, __FILE__, "", CU_FALSE);   \
		}                                                                                  \
	} while (0)

#define BODY_SIZE 0x0102030405060708ull

/* ---- fixtures ------------------------------------------------------------ */

static const struct amqp_field_value hdr_list_v[] = {
    {.type = 'l', .v = {.i64 = INT64_MIN}},
    {.type = 'V'},
};
static const struct amqp_array hdr_list = {hdr_list_v, N_ELEMS(hdr_list_v)};
static const struct amqp_table_entry hdr_nested_e[] = {
    {LIT("list"), {.type = 'A', .v = {.array = {.built = &hdr_list}}}},
};
static const struct amqp_table hdr_nested = {hdr_nested_e, N_ELEMS(hdr_nested_e)};
static const struct amqp_table_entry hdr_e[] = {
    {LIT("x-match"), {.type = 'S', .v = {.str = LIT("all")}}},
    {LIT("n"), {.type = 'I', .v = {.i32 = -7}}},
    {LIT("nested"), {.type = 'F', .v = {.table = {.built = &hdr_nested}}}},
};
static const struct amqp_table hdr = {hdr_e, N_ELEMS(hdr_e)};

/* Every property set, each to something other than its zero value. */
static const struct amqp_basic_props full = {
    .flags = AMQP_PROP_ALL,
    .content_type = LIT("application/json"),
    .content_encoding = LIT("gzip"),
    .headers_built = &hdr,
    .delivery_mode = 2,
    .priority = 9,
    .correlation_id = LIT("corr-\0-123"),
    .reply_to = LIT("amq.rabbitmq.reply-to"),
    .expiration = LIT("60000"),
    .message_id = LIT("msg-42"),
    .timestamp = 0xfedcba9876543210ull,
    .type = LIT("order.created"),
    .user_id = LIT("guest"),
    .app_id = LIT(S255),
    .cluster_id = LIT("c1"),
};

static const uint16_t prop_bits[14] = {
    AMQP_PROP_CONTENT_TYPE, AMQP_PROP_CONTENT_ENCODING, AMQP_PROP_HEADERS,  AMQP_PROP_DELIVERY_MODE,
    AMQP_PROP_PRIORITY,     AMQP_PROP_CORRELATION_ID,   AMQP_PROP_REPLY_TO, AMQP_PROP_EXPIRATION,
    AMQP_PROP_MESSAGE_ID,   AMQP_PROP_TIMESTAMP,        AMQP_PROP_TYPE,     AMQP_PROP_USER_ID,
    AMQP_PROP_APP_ID,       AMQP_PROP_CLUSTER_ID,
};

/* ---- helpers ------------------------------------------------------------- */

/* The headers table's expected raw contents. */
static struct amqp_bytes hdr_raw(void)
{
	static uint8_t buf[256];
	struct amqp_wr w;

	amqp_wr_init(&w, buf, sizeof(buf));
	amqp_table_encode_contents(&w, &hdr);
	CU_ASSERT_FATAL(amqp_wr_ok(&w));
	return (struct amqp_bytes){buf, w.len};
}

static size_t encode_header(uint16_t class_id, uint64_t body_size, const struct amqp_basic_props *p,
                            uint8_t *buf, size_t cap)
{
	struct amqp_wr w;

	amqp_wr_init(&w, buf, cap);
	amqp_content_header_encode(&w, class_id, body_size, p);
	CU_ASSERT_FATAL(amqp_wr_ok(&w));
	return w.len;
}

static int decode(const uint8_t *p, size_t len, struct amqp_content_header *h, struct amqp_err *err)
{
	err->code = 0;
	err->text = NULL;
	memset(h, 0, sizeof(*h));
	return amqp_content_header_decode(p, len, h, err);
}

/* A failure must carry the code both as return value and in err, with a
 * RabbitMQ-style text naming the same error. */
static void check_err(int rc, const struct amqp_err *err, uint16_t code)
{
	const char *name = code == AMQP_FRAME_ERROR ? "FRAME_ERROR" : "SYNTAX_ERROR";
	CU_ASSERT_EQUAL(rc, -(int)code);
	CU_ASSERT_EQUAL(err->code, code);
	CU_ASSERT_PTR_NOT_NULL_FATAL(err->text);
	CU_ASSERT_EQUAL(strncmp(err->text, name, strlen(name)), 0);
}

/* Decode a whole payload that must be accepted; returns the properties. */
static void decode_ok(const uint8_t *p, size_t len, uint16_t class_id, uint64_t body_size,
                      struct amqp_basic_props *props)
{
	struct amqp_content_header h;
	struct amqp_err err;

	CU_ASSERT_EQUAL_FATAL(decode(p, len, &h, &err), 0);
	CU_ASSERT_EQUAL(h.class_id, class_id);
	CU_ASSERT_EQUAL(h.weight, 0);
	CU_ASSERT_EQUAL(h.body_size, body_size);
	/* raw_props is everything after the 12-byte fixed part, in place. */
	CU_ASSERT_PTR_EQUAL(h.raw_props.ptr, p + 12);
	CU_ASSERT_EQUAL(h.raw_props.len, len - 12);
	CU_ASSERT_EQUAL_FATAL(amqp_basic_props_decode(h.raw_props, props, &err), 0);
}

static void check_str(uint16_t flags, uint16_t bit, struct amqp_bytes want, struct amqp_bytes got)
{
	if (flags & bit)
		CHECKF(amqp_bytes_eq(got, want), "property 0x%04x differs", bit);
	else
		CHECKF(got.len == 0, "absent property 0x%04x has length %zu", bit, got.len);
}

/* Every present property equals want's; every absent one is empty. */
static void check_props(const struct amqp_basic_props *want, const struct amqp_basic_props *got)
{
	uint16_t f = want->flags & AMQP_PROP_ALL;

	CU_ASSERT_EQUAL(got->flags, f);
	check_str(f, AMQP_PROP_CONTENT_TYPE, want->content_type, got->content_type);
	check_str(f, AMQP_PROP_CONTENT_ENCODING, want->content_encoding, got->content_encoding);
	check_str(f, AMQP_PROP_HEADERS, want->headers_built ? hdr_raw() : want->headers,
	          got->headers);
	CU_ASSERT_PTR_NULL(got->headers_built);
	CU_ASSERT_EQUAL(got->delivery_mode, f & AMQP_PROP_DELIVERY_MODE ? want->delivery_mode : 0);
	CU_ASSERT_EQUAL(got->priority, f & AMQP_PROP_PRIORITY ? want->priority : 0);
	check_str(f, AMQP_PROP_CORRELATION_ID, want->correlation_id, got->correlation_id);
	check_str(f, AMQP_PROP_REPLY_TO, want->reply_to, got->reply_to);
	check_str(f, AMQP_PROP_EXPIRATION, want->expiration, got->expiration);
	check_str(f, AMQP_PROP_MESSAGE_ID, want->message_id, got->message_id);
	CU_ASSERT_EQUAL(got->timestamp, f & AMQP_PROP_TIMESTAMP ? want->timestamp : 0);
	check_str(f, AMQP_PROP_TYPE, want->type, got->type);
	check_str(f, AMQP_PROP_USER_ID, want->user_id, got->user_id);
	check_str(f, AMQP_PROP_APP_ID, want->app_id, got->app_id);
	check_str(f, AMQP_PROP_CLUSTER_ID, want->cluster_id, got->cluster_id);
}

/* Encoded size of one property of `full`, computed independently. */
static size_t prop_size(uint16_t bit)
{
	switch (bit) {
	case AMQP_PROP_HEADERS:
		return 4 + hdr_raw().len;
	case AMQP_PROP_DELIVERY_MODE:
	case AMQP_PROP_PRIORITY:
		return 1;
	case AMQP_PROP_TIMESTAMP:
		return 8;
	case AMQP_PROP_CONTENT_TYPE:
		return 1 + full.content_type.len;
	case AMQP_PROP_CONTENT_ENCODING:
		return 1 + full.content_encoding.len;
	case AMQP_PROP_CORRELATION_ID:
		return 1 + full.correlation_id.len;
	case AMQP_PROP_REPLY_TO:
		return 1 + full.reply_to.len;
	case AMQP_PROP_EXPIRATION:
		return 1 + full.expiration.len;
	case AMQP_PROP_MESSAGE_ID:
		return 1 + full.message_id.len;
	case AMQP_PROP_TYPE:
		return 1 + full.type.len;
	case AMQP_PROP_USER_ID:
		return 1 + full.user_id.len;
	case AMQP_PROP_APP_ID:
		return 1 + full.app_id.len;
	case AMQP_PROP_CLUSTER_ID:
		return 1 + full.cluster_id.len;
	}
	CU_FAIL("not a property bit");
	return 0;
}

/* ---- round trips --------------------------------------------------------- */

static void test_all_props_roundtrip(void)
{
	uint8_t buf[1024], buf2[1024];
	struct amqp_basic_props got;
	size_t len = encode_header(AMQP_CLASS_BASIC, BODY_SIZE, &full, buf, sizeof(buf));

	size_t want_len = 12 + 2;
	for (size_t i = 0; i < N_ELEMS(prop_bits); i++)
		want_len += prop_size(prop_bits[i]);
	CU_ASSERT_EQUAL(len, want_len);
	/* Fixed part: class 60, weight 0, body size big-endian, flags. */
	static const uint8_t fixed[] = {0, 60, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 0xff, 0xfc};
	CU_ASSERT_EQUAL(memcmp(buf, fixed, sizeof(fixed)), 0);

	decode_ok(buf, len, AMQP_CLASS_BASIC, BODY_SIZE, &got);
	check_props(&full, &got);
	/* The decoded headers are a usable table. */
	struct amqp_field_value v;
	CU_ASSERT_EQUAL(amqp_table_validate(got.headers, NULL), 0);
	CU_ASSERT_TRUE(amqp_table_get(got.headers, "x-match", &v) && v.type == 'S' &&
	               amqp_bytes_eq_cstr(v.v.str, "all"));
	CU_ASSERT_TRUE(amqp_table_get(got.headers, "n", &v) && v.type == 'I' && v.v.i32 == -7);

	/* Hot path: raw_props copied through gives identical bytes. */
	struct amqp_content_header h;
	struct amqp_err err;
	CU_ASSERT_EQUAL_FATAL(decode(buf, len, &h, &err), 0);
	struct amqp_wr w;
	amqp_wr_init(&w, buf2, sizeof(buf2));
	amqp_content_header_encode_raw(&w, h.class_id, h.body_size, h.raw_props);
	CU_ASSERT_TRUE(amqp_wr_ok(&w));
	CU_ASSERT_EQUAL(w.len, len);
	CU_ASSERT_EQUAL(memcmp(buf2, buf, len), 0);

	/* So does re-encoding the decoded view (headers from its raw bytes). */
	size_t len2 = encode_header(AMQP_CLASS_BASIC, BODY_SIZE, &got, buf2, sizeof(buf2));
	CU_ASSERT_EQUAL(len2, len);
	CU_ASSERT_EQUAL(memcmp(buf2, buf, len), 0);

	/* Body sizes at both ends of the range. */
	uint64_t sizes[] = {0, UINT64_MAX};
	for (size_t i = 0; i < N_ELEMS(sizes); i++) {
		len = encode_header(AMQP_CLASS_BASIC, sizes[i], &full, buf, sizeof(buf));
		decode_ok(buf, len, AMQP_CLASS_BASIC, sizes[i], &got);
		check_props(&full, &got);
	}
}

static void test_each_prop_alone(void)
{
	uint8_t buf[1024];
	struct amqp_basic_props p, got;

	for (size_t i = 0; i < N_ELEMS(prop_bits); i++) {
		/* All values filled in, but only one flag: only it is sent. */
		p = full;
		p.flags = prop_bits[i];
		size_t len = encode_header(AMQP_CLASS_BASIC, 5, &p, buf, sizeof(buf));
		CHECKF(len == 14 + prop_size(prop_bits[i]), "bit 0x%04x: length %zu", prop_bits[i],
		       len);
		CU_ASSERT_EQUAL(buf[12], prop_bits[i] >> 8);
		CU_ASSERT_EQUAL(buf[13], prop_bits[i] & 0xff);
		decode_ok(buf, len, AMQP_CLASS_BASIC, 5, &got);
		CHECKF(got.flags == prop_bits[i], "bit 0x%04x: flags 0x%04x", prop_bits[i],
		       got.flags);
		check_props(&p, &got);
	}
}

static void test_no_props(void)
{
	static const uint8_t want[] = {0, 60, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
	struct amqp_basic_props none = full;
	struct amqp_basic_props got;
	uint8_t buf[64];

	none.flags = 0; /* values set but not flagged must not be sent */
	size_t len = encode_header(AMQP_CLASS_BASIC, 0, &none, buf, sizeof(buf));
	CU_ASSERT_EQUAL_FATAL(len, sizeof(want));
	CU_ASSERT_EQUAL(memcmp(buf, want, sizeof(want)), 0);
	decode_ok(buf, len, AMQP_CLASS_BASIC, 0, &got);
	check_props(&none, &got);
	CU_ASSERT_EQUAL(got.flags, 0);
}

/* ---- byte-exact ---------------------------------------------------------- */

static void check_exact(const struct amqp_basic_props *p, uint64_t body_size, const uint8_t *want,
                        size_t want_len)
{
	uint8_t buf[256];
	struct amqp_basic_props got;
	size_t len = encode_header(AMQP_CLASS_BASIC, body_size, p, buf, sizeof(buf));

	CU_ASSERT_EQUAL(len, want_len);
	CU_ASSERT_EQUAL(memcmp(buf, want, want_len < len ? want_len : len), 0);
	/* And the hand-written bytes decode to the same properties. */
	decode_ok(want, want_len, AMQP_CLASS_BASIC, body_size, &got);
	check_props(p, &got);
}

static void test_exact_bytes(void)
{
	static const uint8_t text[] = {
	    0,    60,   0,   0,                     /* class basic, weight 0 */
	    0,    0,    0,   0,   0,   0,   0,   5, /* body size 5 */
	    0x90, 0x00,                             /* content-type | delivery-mode */
	    10,   't',  'e', 'x', 't', '/', 'p', 'l', 'a', 'i', 'n', /* content-type */
	    2,                                                       /* delivery-mode */
	};
	struct amqp_basic_props p = {
	    .flags = AMQP_PROP_CONTENT_TYPE | AMQP_PROP_DELIVERY_MODE,
	    .content_type = LIT("text/plain"),
	    .delivery_mode = 2,
	};
	check_exact(&p, 5, text, sizeof(text));

	static const struct amqp_table_entry a_e[] = {{LIT("a"), {.type = 'I', .v = {.i32 = 1}}}};
	static const struct amqp_table a = {a_e, 1};
	static const uint8_t mixed[] = {
	    0,    60,   0, 0,                      /* class basic, weight 0 */
	    0,    0,    0, 0, 0,    0,    1,    0, /* body size 256 */
	    0x28, 0x50,                            /* headers | priority | timestamp | user-id */
	    0,    0,    0, 7, 1,    'a',  'I',  0, 0, 0, 1, /* headers {a: I 1} */
	    5,                                              /* priority */
	    0,    0,    0, 0, 0x65, 0x53, 0xf1, 0,          /* timestamp 1700000000 */
	    0,                                              /* user-id "" */
	};
	struct amqp_basic_props q = {
	    .flags =
	        AMQP_PROP_HEADERS | AMQP_PROP_PRIORITY | AMQP_PROP_TIMESTAMP | AMQP_PROP_USER_ID,
	    .headers_built = &a,
	    .priority = 5,
	    .timestamp = 1700000000,
	};
	uint8_t buf[256];
	size_t len = encode_header(AMQP_CLASS_BASIC, 256, &q, buf, sizeof(buf));
	CU_ASSERT_EQUAL_FATAL(len, sizeof(mixed));
	CU_ASSERT_EQUAL(memcmp(buf, mixed, sizeof(mixed)), 0);
	struct amqp_basic_props got;
	decode_ok(mixed, sizeof(mixed), AMQP_CLASS_BASIC, 256, &got);
	CU_ASSERT_EQUAL(got.flags, q.flags);
	CU_ASSERT_TRUE(amqp_bytes_eq(got.headers, (struct amqp_bytes){mixed + 18, 7}));
	CU_ASSERT_EQUAL(got.priority, 5);
	CU_ASSERT_EQUAL(got.timestamp, 1700000000);
	CU_ASSERT_EQUAL(got.user_id.len, 0);

	/* Encoding drops the reserved low bits of the caller's flags. */
	p.flags |= AMQP_PROP_CONTINUATION | 2u;
	len = encode_header(AMQP_CLASS_BASIC, 5, &p, buf, sizeof(buf));
	CU_ASSERT_EQUAL(len, sizeof(text));
	CU_ASSERT_EQUAL(memcmp(buf, text, sizeof(text)), 0);
}

/* ---- the continuation rule ----------------------------------------------- */

/* A header for class basic with body size 1 and the given property bytes. */
static size_t mk_header(uint8_t *buf, const uint8_t *props, size_t n)
{
	static const uint8_t fixed[] = {0, 60, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
	memcpy(buf, fixed, sizeof(fixed));
	memcpy(buf + sizeof(fixed), props, n);
	return sizeof(fixed) + n;
}

static void test_continuation(void)
{
	uint8_t buf[64], buf2[64];
	struct amqp_content_header h;
	struct amqp_basic_props got;
	struct amqp_err err;

	/* First word: content-type | continuation; second word empty. */
	static const uint8_t two[] = {0x80, 0x01, 0x00, 0x00, 2, 'h', 'i'};
	size_t len = mk_header(buf, two, sizeof(two));
	decode_ok(buf, len, AMQP_CLASS_BASIC, 1, &got);
	CU_ASSERT_EQUAL(got.flags, AMQP_PROP_CONTENT_TYPE);
	CU_ASSERT_TRUE(amqp_bytes_eq_cstr(got.content_type, "hi"));
	/* Kept as received: raw re-encoding keeps both flag words. */
	CU_ASSERT_EQUAL_FATAL(decode(buf, len, &h, &err), 0);
	CU_ASSERT_EQUAL(h.raw_props.len, sizeof(two));
	struct amqp_wr w;
	amqp_wr_init(&w, buf2, sizeof(buf2));
	amqp_content_header_encode_raw(&w, h.class_id, h.body_size, h.raw_props);
	CU_ASSERT_TRUE(amqp_wr_ok(&w) && w.len == len && memcmp(buf2, buf, len) == 0);

	/* A chain of empty continuation words is still just flag words. */
	static const uint8_t three[] = {0x00, 0x01, 0x00, 0x01, 0x00, 0x00};
	len = mk_header(buf, three, sizeof(three));
	decode_ok(buf, len, AMQP_CLASS_BASIC, 1, &got);
	CU_ASSERT_EQUAL(got.flags, 0);

	/* Any property bit in the second word names a property basic lacks. */
	for (int bit = 1; bit < 16; bit++) {
		uint8_t props[] = {
		    0x00, 0x01, (uint8_t)((1u << bit) >> 8), (uint8_t)(1u << bit), 0, 0, 0, 0, 0, 0,
		    0,    0};
		len = mk_header(buf, props, sizeof(props));
		int rc = decode(buf, len, &h, &err);
		CHECKF(rc == -AMQP_SYNTAX_ERROR && err.code == AMQP_SYNTAX_ERROR && err.text,
		       "second-word bit %d: rc %d", bit, rc);
		rc = amqp_basic_props_decode((struct amqp_bytes){props, sizeof(props)}, &got, &err);
		CHECKF(rc == -AMQP_SYNTAX_ERROR, "props, second-word bit %d: rc %d", bit, rc);
	}

	/* Bit 1 of the first word is not a basic property. */
	static const uint8_t bit1[] = {0x00, 0x02, 0, 0, 0, 0};
	len = mk_header(buf, bit1, sizeof(bit1));
	check_err(decode(buf, len, &h, &err), &err, AMQP_SYNTAX_ERROR);
	static const uint8_t bit1_more[] = {0x90, 0x02, 2, 'h', 'i', 2};
	len = mk_header(buf, bit1_more, sizeof(bit1_more));
	check_err(decode(buf, len, &h, &err), &err, AMQP_SYNTAX_ERROR);

	/* Flag words cut short: none, half of the first, half of the second. */
	static const uint8_t half2[] = {0x00, 0x01, 0x00};
	size_t cuts[] = {0, 1, 2, 3};
	for (size_t i = 0; i < N_ELEMS(cuts); i++) {
		len = mk_header(buf, half2, cuts[i]);
		uint8_t *p = malloc(len); /* exact size: ASan sees over-reads */
		CU_ASSERT_PTR_NOT_NULL_FATAL(p);
		memcpy(p, buf, len);
		int rc = decode(p, len, &h, &err);
		CHECKF(rc == -AMQP_FRAME_ERROR && err.code == AMQP_FRAME_ERROR && err.text,
		       "flags cut at %zu: rc %d", cuts[i], rc);
		free(p);
	}
}

/* ---- malformed headers --------------------------------------------------- */

static void test_truncated(void)
{
	uint8_t full_buf[1024];
	size_t len = encode_header(AMQP_CLASS_BASIC, BODY_SIZE, &full, full_buf, sizeof(full_buf));

	/* With every property present, every proper prefix lacks something. */
	for (size_t cut = 0; cut < len; cut++) {
		uint8_t *p = malloc(cut ? cut : 1);
		CU_ASSERT_PTR_NOT_NULL_FATAL(p);
		memcpy(p, full_buf, cut);
		struct amqp_content_header h;
		struct amqp_err err;
		int rc = decode(p, cut, &h, &err);
		CHECKF(rc == -AMQP_FRAME_ERROR && err.code == AMQP_FRAME_ERROR && err.text,
		       "prefix %zu of %zu: rc %d code %u", cut, len, rc, err.code);
		if (cut >= 12) {
			struct amqp_basic_props got;
			rc = amqp_basic_props_decode((struct amqp_bytes){p + 12, cut - 12}, &got,
			                             &err);
			CHECKF(rc == -AMQP_FRAME_ERROR, "props prefix %zu: rc %d", cut - 12, rc);
		}
		free(p);
	}
}

static void test_trailing_bytes(void)
{
	uint8_t buf[1024];
	struct amqp_content_header h;
	struct amqp_err err;
	size_t len = encode_header(AMQP_CLASS_BASIC, BODY_SIZE, &full, buf, sizeof(buf));

	buf[len] = 0;
	check_err(decode(buf, len + 1, &h, &err), &err, AMQP_FRAME_ERROR);

	/* No properties, yet more bytes. */
	static const uint8_t junk[] = {0x00, 0x00, 'x'};
	len = mk_header(buf, junk, sizeof(junk));
	check_err(decode(buf, len, &h, &err), &err, AMQP_FRAME_ERROR);
	/* A shortstr shorter than the bytes left for it. */
	static const uint8_t longer[] = {0x80, 0x00, 1, 'a', 'b'};
	len = mk_header(buf, longer, sizeof(longer));
	check_err(decode(buf, len, &h, &err), &err, AMQP_FRAME_ERROR);
}

static void test_weight(void)
{
	uint8_t buf[64];
	struct amqp_content_header h;
	struct amqp_err err;
	static const uint8_t none[] = {0x00, 0x00};
	size_t len = mk_header(buf, none, sizeof(none));
	uint16_t weights[] = {1, 0x100, 0xffff};

	for (size_t i = 0; i < N_ELEMS(weights); i++) {
		buf[2] = (uint8_t)(weights[i] >> 8);
		buf[3] = (uint8_t)weights[i];
		check_err(decode(buf, len, &h, &err), &err, AMQP_SYNTAX_ERROR);
	}
}

/* Property bytes: flags = headers only; the headers table holds `nested`
 * tables inside each other ({n: {n: ... {}}}); returns their length. */
#define DEEP_LEN(nested) (2 + 4 + 7 * (size_t)(nested))
static size_t deep_headers(uint8_t *props, size_t nested)
{
	size_t n = 7 * nested; /* the headers table's contents */

	props[0] = 0x20;
	props[1] = 0x00;
	for (size_t lvl = 0; lvl <= nested; lvl++) {
		/* The u32 length, then key "n" and type 'F' of the next level. */
		uint8_t *q = props + 2 + 7 * lvl;
		size_t rest = n - 7 * lvl;
		q[0] = (uint8_t)(rest >> 24);
		q[1] = (uint8_t)(rest >> 16);
		q[2] = (uint8_t)(rest >> 8);
		q[3] = (uint8_t)rest;
		if (lvl < nested) {
			q[4] = 1;
			q[5] = 'n';
			q[6] = 'F';
		}
	}
	return DEEP_LEN(nested);
}

static void test_bad_headers_table(void)
{
	uint8_t buf[256];
	struct amqp_content_header h;
	struct amqp_err err;

	/* headers {k: <type 'Z'>}, then delivery-mode. */
	static const uint8_t unknown[] = {0x30, 0x00, 0, 0, 0, 3, 1, 'k', 'Z', 2};
	size_t len = mk_header(buf, unknown, sizeof(unknown));
	check_err(decode(buf, len, &h, &err), &err, AMQP_SYNTAX_ERROR);
	struct amqp_basic_props got;
	int rc = amqp_basic_props_decode((struct amqp_bytes){unknown, sizeof(unknown)}, &got, &err);
	check_err(rc, &err, AMQP_SYNTAX_ERROR);

	/* headers with AMQP_TABLE_MAX_DEPTH tables nested inside it: one level
	 * too deep; one fewer is exactly the limit. */
	uint8_t props[DEEP_LEN(AMQP_TABLE_MAX_DEPTH)];
	len = mk_header(buf, props, deep_headers(props, AMQP_TABLE_MAX_DEPTH));
	CU_ASSERT_FATAL(len <= sizeof(buf));
	check_err(decode(buf, len, &h, &err), &err, AMQP_SYNTAX_ERROR);
	len = mk_header(buf, props, deep_headers(props, AMQP_TABLE_MAX_DEPTH - 1));
	CU_ASSERT_EQUAL(decode(buf, len, &h, &err), 0);
	CU_ASSERT_EQUAL(len, 12 + DEEP_LEN(AMQP_TABLE_MAX_DEPTH - 1));

	/* A headers table whose own length fits but whose entry is cut. */
	static const uint8_t cut[] = {0x20, 0x00, 0, 0, 0, 3, 1, 'k', 'S'};
	len = mk_header(buf, cut, sizeof(cut));
	check_err(decode(buf, len, &h, &err), &err, AMQP_FRAME_ERROR);
}

static void test_other_classes(void)
{
	uint8_t buf[64];
	struct amqp_content_header h;
	struct amqp_err err;
	static const uint16_t classes[] = {AMQP_CLASS_CONNECTION, AMQP_CLASS_QUEUE, 0, 61, 0xffff};

	for (size_t i = 0; i < N_ELEMS(classes); i++) {
		static const uint8_t none[] = {0x00, 0x00};
		size_t len = mk_header(buf, none, sizeof(none));
		buf[0] = (uint8_t)(classes[i] >> 8);
		buf[1] = (uint8_t)classes[i];
		int rc = decode(buf, len, &h, &err);
		CHECKF(rc == 0, "class %u, no flags: rc %d", classes[i], rc);
		CU_ASSERT_EQUAL(h.class_id, classes[i]);
		CU_ASSERT_EQUAL(h.body_size, 1);
		CU_ASSERT_EQUAL(h.raw_props.len, 2);

		/* Basic's property bits mean nothing elsewhere. */
		static const uint8_t flagged[] = {0x10, 0x00, 2};
		len = mk_header(buf, flagged, sizeof(flagged));
		buf[0] = (uint8_t)(classes[i] >> 8);
		buf[1] = (uint8_t)classes[i];
		rc = decode(buf, len, &h, &err);
		CHECKF(rc == -AMQP_SYNTAX_ERROR && err.code == AMQP_SYNTAX_ERROR && err.text,
		       "class %u, flagged: rc %d", classes[i], rc);

		/* Flag word missing. */
		len = mk_header(buf, none, 1);
		buf[0] = (uint8_t)(classes[i] >> 8);
		buf[1] = (uint8_t)classes[i];
		rc = decode(buf, len, &h, &err);
		CHECKF(rc == -AMQP_FRAME_ERROR && err.code == AMQP_FRAME_ERROR && err.text,
		       "class %u, half a flag word: rc %d", classes[i], rc);
	}
}

/* amqp_props.h: trailing bytes are FRAME_ERROR, whatever the class (as
 * they are for class basic in test_trailing_bytes). */
static void test_other_class_trailing(void)
{
	uint8_t buf[64];
	struct amqp_content_header h;
	struct amqp_err err;
	static const uint8_t junk[] = {0x00, 0x00, 'x'};
	size_t len = mk_header(buf, junk, sizeof(junk));

	buf[1] = AMQP_CLASS_QUEUE;
	check_err(decode(buf, len, &h, &err), &err, AMQP_FRAME_ERROR);
}

/* ---- encoder errors ------------------------------------------------------ */

static void test_encode_errors(void)
{
	uint8_t ref[1024], buf[1024 + 16];
	struct amqp_wr w;
	size_t need = encode_header(AMQP_CLASS_BASIC, BODY_SIZE, &full, ref, sizeof(ref));

	/* A shortstr property over 255 bytes cannot be sent. */
	struct amqp_basic_props p = full;
	p.type = (struct amqp_bytes)LIT(S255 "x");
	amqp_wr_init(&w, buf, sizeof(buf));
	amqp_content_header_encode(&w, AMQP_CLASS_BASIC, 1, &p);
	CU_ASSERT_FALSE(amqp_wr_ok(&w));
	CU_ASSERT_TRUE(w.bad);
	/* ...but an unflagged one is never looked at. */
	p.flags &= (uint16_t)~AMQP_PROP_TYPE;
	amqp_wr_init(&w, buf, sizeof(buf));
	amqp_content_header_encode(&w, AMQP_CLASS_BASIC, 1, &p);
	CU_ASSERT_TRUE(amqp_wr_ok(&w));

	/* Too small: the needed length is reported and nothing is written
	 * past the capacity; then exactly that much succeeds. */
	for (size_t cap = 0; cap < need; cap++) {
		memset(buf, 0xa5, sizeof(buf));
		amqp_wr_init(&w, buf, cap);
		amqp_content_header_encode(&w, AMQP_CLASS_BASIC, BODY_SIZE, &full);
		CHECKF(w.len == need && !amqp_wr_ok(&w), "cap %zu: len %zu", cap, w.len);
		size_t dirty = 0;
		for (size_t i = cap; i < sizeof(buf); i++)
			dirty += buf[i] != 0xa5;
		CHECKF(dirty == 0, "cap %zu: %zu bytes written past the end", cap, dirty);
	}
	uint8_t *exact = malloc(need);
	CU_ASSERT_PTR_NOT_NULL_FATAL(exact);
	amqp_wr_init(&w, exact, need);
	amqp_content_header_encode(&w, AMQP_CLASS_BASIC, BODY_SIZE, &full);
	CU_ASSERT_TRUE(amqp_wr_ok(&w));
	CU_ASSERT_EQUAL(memcmp(exact, ref, need), 0);

	/* Same for the raw path. */
	struct amqp_bytes raw = {ref + 12, need - 12};
	amqp_wr_init(&w, NULL, 0);
	amqp_content_header_encode_raw(&w, AMQP_CLASS_BASIC, BODY_SIZE, raw);
	CU_ASSERT_FALSE(amqp_wr_ok(&w));
	CU_ASSERT_EQUAL(w.len, need);
	amqp_wr_init(&w, exact, need);
	amqp_content_header_encode_raw(&w, AMQP_CLASS_BASIC, BODY_SIZE, raw);
	CU_ASSERT_TRUE(amqp_wr_ok(&w));
	CU_ASSERT_EQUAL(memcmp(exact, ref, need), 0);
	free(exact);
}

void suite_props(void)
{
	TEST_SUITE("props", TEST(test_all_props_roundtrip), TEST(test_each_prop_alone),
	           TEST(test_no_props), TEST(test_exact_bytes), TEST(test_continuation),
	           TEST(test_truncated), TEST(test_trailing_bytes), TEST(test_weight),
	           TEST(test_bad_headers_table), TEST(test_other_classes),
	           TEST(test_other_class_trailing), TEST(test_encode_errors));
}
