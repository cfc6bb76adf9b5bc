/*
 * fuzz_protocol.c - one libFuzzer target for every decoder in protocol/.
 *
 * The first input byte selects what the rest of the input is (modulo 6):
 *
 *   0  a byte stream a client sends to the server (protocol header first),
 *   1  a byte stream a server sends to a client (frames from the first byte);
 *      both as: [flags] [c0 c1 c2 c3] stream...
 *        flags picks the initial frame_max (see initial_frame_max());
 *        c0..c3 are chunk sizes, used in turn (0: the rest of the input).
 *      The stream is parsed three times (whole buffer, those chunks, one byte
 *      at a time) and every run must give the same frames and the same final
 *      result.  Frames of the whole-buffer run are decoded by type and
 *      re-encoded; connection.tune-ok (tune, client role) applies its
 *      frame_max to the frames after it, as a peer would.
 *   2  a method frame payload (class id, method id, arguments),
 *   3  a content header frame payload,
 *   4  field table contents (the bytes after the 4-byte length),
 *   5  field array contents.
 *
 * Every decoder result is checked against a reference decoder written here
 * from the spec (independent of protocol/): same result code, same fields,
 * and anything that decodes must re-encode to the same bytes up to the
 * normalisations the codec documents (unused bits of a bit octet, extra
 * empty property flag words, a 't' octet other than 0/1).  A violated check
 * prints where and aborts, which libFuzzer reports as a crash.
 *
 * No per-input allocation here: all scratch buffers are static, sized for
 * FUZZ_MAX_INPUT (longer inputs are truncated).  Only the parser's own
 * scratch buffer is allocated, by the library.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "amqp.h"

/* Under ASan, input chunks already consumed are poisoned (see run_stream). */
#if defined(__SANITIZE_ADDRESS__)
#define FUZZ_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FUZZ_ASAN 1
#endif
#endif
#ifdef FUZZ_ASAN
#include <sanitizer/asan_interface.h>
#define POISON(p, n)   ASAN_POISON_MEMORY_REGION(p, n)
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define POISON(p, n)   ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_MAX_INPUT (64u * 1024u)
#define OUT_CAP        (FUZZ_MAX_INPUT + 64u)
#define GUARD          16u
#define GUARD_BYTE     0xA5
#define MAX_EVENTS     (FUZZ_MAX_INPUT / AMQP_FRAME_OVERHEAD + 4u)
#define MAX_BUILT      4096u /* entries re-encoded through struct amqp_table */
#define WALK_MAX_DEPTH 40    /* recursion into tables that did not validate */
#define GET_CHECKS     4     /* entries looked up again with amqp_table_get */
#define STREAM_PARAMS  5     /* flags + 4 chunk sizes */

enum {
	SEL_STREAM_SERVER,
	SEL_STREAM_CLIENT,
	SEL_METHOD,
	SEL_HEADER,
	SEL_TABLE,
	SEL_ARRAY,
	SEL_COUNT,
};

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond))                                                                       \
			check_failed(#cond, __LINE__);                                             \
	} while (0)

static void check_failed(const char *what, int line)
{
	fprintf(stderr, "fuzz_protocol.c:%d: check failed: %s\n", line, what);
	abort();
}

/* ---- small helpers ------------------------------------------------------- */

static uint64_t be(const uint8_t *p, size_t n)
{
	uint64_t x = 0;
	for (size_t i = 0; i < n; i++)
		x = (x << 8) | p[i];
	return x;
}

static void guard_set(uint8_t *buf, size_t at)
{
	memset(buf + at, GUARD_BYTE, GUARD);
}

static bool guard_ok(const uint8_t *buf, size_t at)
{
	for (size_t i = 0; i < GUARD; i++)
		if (buf[at + i] != GUARD_BYTE)
			return false;
	return true;
}

/* A failed decode: the code matches the result, the text names the code. */
static void check_err(int rc, const struct amqp_err *err)
{
	CHECK(rc < 0 && rc >= -UINT16_MAX);
	CHECK(err->code == (uint16_t)-rc);
	CHECK(err->text != NULL);
	const char *name = amqp_reply_code_name(err->code);
	size_t n = strlen(name);
	CHECK(strcmp(name, "UNKNOWN") != 0);
	CHECK(amqp_reply_code_is_hard(err->code)); /* codec errors close the connection */
	CHECK(strncmp(err->text, name, n) == 0 && strncmp(err->text + n, " - ", 3) == 0);
}

static bool bytes_same(struct amqp_bytes a, const uint8_t *p, size_t n)
{
	return a.ptr == p && a.len == n;
}

/* ---- reference field table validator (independent of amqp_table.c) ------ */

static int ref_validate(const uint8_t *p, size_t len, bool keyed, int depth)
{
	size_t pos = 0, count = 0;

	if (depth > AMQP_TABLE_MAX_DEPTH)
		return -AMQP_SYNTAX_ERROR;
	while (pos < len) {
		if (++count > AMQP_TABLE_MAX_ENTRIES)
			return -AMQP_SYNTAX_ERROR;
		if (keyed) {
			size_t kl = p[pos];
			if (len - pos - 1 < kl)
				return -AMQP_FRAME_ERROR;
			pos += 1 + kl;
		}
		if (pos >= len)
			return -AMQP_FRAME_ERROR;
		uint8_t t = p[pos++];
		size_t need;
		switch (t) {
		case 'V':
			need = 0;
			break;
		case 't':
		case 'b':
		case 'B':
			need = 1;
			break;
		case 's':
		case 'u':
			need = 2;
			break;
		case 'I':
		case 'i':
		case 'f':
			need = 4;
			break;
		case 'D':
			need = 5;
			break;
		case 'l':
		case 'L':
		case 'd':
		case 'T':
			need = 8;
			break;
		case 'S':
		case 'x':
		case 'F':
		case 'A': {
			if (len - pos < 4)
				return -AMQP_FRAME_ERROR;
			uint64_t n = be(p + pos, 4);
			pos += 4;
			if (len - pos < n)
				return -AMQP_FRAME_ERROR;
			if (t == 'F' || t == 'A') {
				int rc = ref_validate(p + pos, (size_t)n, t == 'F', depth + 1);
				if (rc < 0)
					return rc;
			}
			need = (size_t)n;
			break;
		}
		default:
			return -AMQP_SYNTAX_ERROR;
		}
		if (len - pos < need)
			return -AMQP_FRAME_ERROR;
		pos += need;
	}
	return 0;
}

/* ---- field tables and arrays --------------------------------------------- */

static uint8_t entry_buf[OUT_CAP + GUARD];

static bool value_eq(const struct amqp_field_value *a, const struct amqp_field_value *b)
{
	if (a->type != b->type)
		return false;
	switch (a->type) {
	case 't':
		return a->v.b == b->v.b;
	case 'b':
	case 'B':
		return a->v.u8 == b->v.u8;
	case 's':
	case 'u':
		return a->v.u16 == b->v.u16;
	case 'I':
	case 'i':
		return a->v.u32 == b->v.u32;
	case 'f':
		return memcmp(&a->v.f, &b->v.f, sizeof(float)) == 0;
	case 'l':
	case 'L':
	case 'T':
		return a->v.u64 == b->v.u64;
	case 'd':
		return memcmp(&a->v.d, &b->v.d, sizeof(double)) == 0;
	case 'D':
		return a->v.dec.scale == b->v.dec.scale && a->v.dec.value == b->v.dec.value;
	case 'S':
	case 'x':
		return bytes_same(a->v.str, b->v.str.ptr, b->v.str.len);
	case 'F':
		return bytes_same(a->v.table.raw, b->v.table.raw.ptr, b->v.table.raw.len);
	case 'A':
		return bytes_same(a->v.array.raw, b->v.array.raw.ptr, b->v.array.raw.len);
	case 'V':
		return true;
	default:
		return false;
	}
}

/*
 * One decoded entry orig[0..n) must re-encode to the same bytes (a 't'
 * octet is normalised to 0/1), and encoding into a buffer too small must
 * report the full size without writing past it.
 */
static void check_entry(const uint8_t *orig, size_t n, const struct amqp_bytes *key,
                        const struct amqp_field_value *v)
{
	struct amqp_wr w;

	CHECK(n > 0 && n <= OUT_CAP);
	amqp_wr_init(&w, entry_buf, n);
	guard_set(entry_buf, n);
	if (key)
		amqp_wr_shortstr(&w, *key);
	amqp_field_value_encode(&w, v);
	CHECK(amqp_wr_ok(&w));
	CHECK(w.len == n);
	CHECK(guard_ok(entry_buf, n));
	if (v->type == 't') {
		CHECK(memcmp(entry_buf, orig, n - 1) == 0);
		CHECK(entry_buf[n - 1] == (orig[n - 1] != 0));
	} else {
		CHECK(memcmp(entry_buf, orig, n) == 0);
	}

	size_t cap = n / 2;
	amqp_wr_init(&w, entry_buf, cap);
	guard_set(entry_buf, cap);
	if (key)
		amqp_wr_shortstr(&w, *key);
	amqp_field_value_encode(&w, v);
	CHECK(w.len == n && !amqp_wr_ok(&w));
	CHECK(guard_ok(entry_buf, cap));
}

/*
 * Iterate raw contents with the library's iterator, recursing into nested
 * tables and arrays.  With `valid` (the validator accepted the outermost
 * contents) every step must succeed and nested contents must validate on
 * their own; without, iteration must merely fail cleanly.
 */
static void walk_entries(struct amqp_bytes raw, bool keyed, int depth, bool valid)
{
	struct amqp_table_iter it;
	const uint8_t *end = raw.ptr + raw.len;
	size_t count = 0;

	if (depth > WALK_MAX_DEPTH) {
		CHECK(!valid);
		return;
	}
	amqp_table_iter_init(&it, raw);
	for (;;) {
		const uint8_t *start = it.r.p;
		struct amqp_bytes key = {NULL, 0};
		struct amqp_field_value v;
		memset(&v, 0, sizeof(v));
		int rc = keyed ? amqp_table_next(&it, &key, &v) : amqp_array_next(&it, &v);
		CHECK(it.r.p >= start && it.r.p <= end && it.r.end == end);
		if (rc == 0) {
			CHECK(start == end);
			break;
		}
		if (rc < 0) {
			CHECK(!valid);
			CHECK(rc == -AMQP_FRAME_ERROR || rc == -AMQP_SYNTAX_ERROR);
			break;
		}
		CHECK(rc == 1);
		count++;
		if (keyed)
			CHECK(key.ptr == start + 1 && key.len == start[0]);
		check_entry(start, (size_t)(it.r.p - start), keyed ? &key : NULL, &v);
		if (v.type == 'F' || v.type == 'A') {
			struct amqp_bytes inner = v.type == 'F' ? v.v.table.raw : v.v.array.raw;
			CHECK(inner.ptr + inner.len == it.r.p);
			CHECK((v.type == 'F' ? v.v.table.built : NULL) == NULL);
			CHECK((v.type == 'A' ? v.v.array.built : NULL) == NULL);
			if (valid) {
				struct amqp_err err = {0, NULL};
				CHECK((v.type == 'F' ? amqp_table_validate(inner, &err)
				                     : amqp_array_validate(inner, &err)) == 0);
			}
			walk_entries(inner, v.type == 'F', depth + 1, valid);
		}
	}
	if (valid)
		CHECK(count <= AMQP_TABLE_MAX_ENTRIES);
}

static struct amqp_table_entry built_entries[MAX_BUILT];
static struct amqp_field_value built_items[MAX_BUILT];
static uint8_t canon_table[OUT_CAP];
static uint8_t built_buf[OUT_CAP + GUARD];

/*
 * Collect valid top-level contents into built_entries (built_items for an
 * array) and their canonical bytes ('t' octets as 0/1) into canon_table.
 * Returns the number of entries, or -1 if there are more than MAX_BUILT.
 */
static long collect_entries(struct amqp_bytes raw, bool keyed)
{
	struct amqp_table_iter it;
	size_t n = 0;

	if (raw.len)
		memcpy(canon_table, raw.ptr, raw.len);
	amqp_table_iter_init(&it, raw);
	for (;;) {
		struct amqp_field_value v;
		struct amqp_bytes key;
		memset(&v, 0, sizeof(v));
		int rc = keyed ? amqp_table_next(&it, &key, &v) : amqp_array_next(&it, &v);
		CHECK(rc >= 0);
		if (rc == 0)
			return (long)n;
		if (n == MAX_BUILT)
			return -1;
		if (v.type == 't')
			canon_table[it.r.p - 1 - raw.ptr] = v.v.b ? 1 : 0;
		if (keyed) {
			built_entries[n].key = key;
			built_entries[n].value = v;
		} else {
			built_items[n] = v;
		}
		n++;
	}
}

/*
 * Valid top-level contents, re-encoded as a built table (array): contents
 * only, with the u32 length, and as an 'F' ('A') value holding it.  Also
 * looks the first keys up again with amqp_table_get().
 */
static void check_built(struct amqp_bytes raw, bool keyed)
{
	struct amqp_wr w;
	long cnt = collect_entries(raw, keyed);

	if (cnt < 0)
		return;
	size_t n = (size_t)cnt;
	struct amqp_table t = {built_entries, n};
	struct amqp_array a = {built_items, n};
	amqp_wr_init(&w, built_buf, raw.len);
	guard_set(built_buf, raw.len);
	if (keyed)
		amqp_table_encode_contents(&w, &t);
	else
		amqp_array_encode_contents(&w, &a);
	CHECK(amqp_wr_ok(&w) && w.len == raw.len && guard_ok(built_buf, raw.len));
	CHECK(raw.len == 0 || memcmp(built_buf, canon_table, raw.len) == 0);

	if (keyed) {
		amqp_wr_init(&w, built_buf, raw.len + 4);
		amqp_table_encode(&w, &t);
		CHECK(amqp_wr_ok(&w) && w.len == raw.len + 4);
		CHECK(be(built_buf, 4) == raw.len);
		CHECK(raw.len == 0 || memcmp(built_buf + 4, canon_table, raw.len) == 0);
	}

	struct amqp_field_value nested;
	memset(&nested, 0, sizeof(nested));
	nested.type = keyed ? 'F' : 'A';
	if (keyed)
		nested.v.table.built = &t;
	else
		nested.v.array.built = &a;
	amqp_wr_init(&w, built_buf, raw.len + 5);
	guard_set(built_buf, raw.len + 5);
	amqp_field_value_encode(&w, &nested);
	CHECK(amqp_wr_ok(&w) && w.len == raw.len + 5 && guard_ok(built_buf, raw.len + 5));
	CHECK(built_buf[0] == nested.type && be(built_buf + 1, 4) == raw.len);
	CHECK(raw.len == 0 || memcmp(built_buf + 5, canon_table, raw.len) == 0);

	/* amqp_table_get finds the first entry with a key. */
	for (size_t i = 0; keyed && i < n && i < GET_CHECKS; i++) {
		char name[256];
		struct amqp_bytes k = built_entries[i].key;
		if (memchr(k.ptr, 0, k.len))
			continue;
		memcpy(name, k.ptr, k.len);
		name[k.len] = 0;
		size_t first = 0;
		while (!amqp_bytes_eq(built_entries[first].key, k))
			first++;
		struct amqp_field_value got;
		memset(&got, 0, sizeof(got));
		CHECK(amqp_table_get(raw, name, &got));
		CHECK(value_eq(&got, &built_entries[first].value));
	}
}

static void fuzz_table(const uint8_t *p, size_t n, bool keyed)
{
	struct amqp_bytes raw = {p, n};
	struct amqp_err err = {0, NULL};

	int rc = keyed ? amqp_table_validate(raw, &err) : amqp_array_validate(raw, &err);
	CHECK(rc == ref_validate(p, n, keyed, 1));
	if (rc < 0)
		check_err(rc, &err);
	walk_entries(raw, keyed, 1, rc == 0);
	if (rc == 0)
		check_built(raw, keyed);
}

/* ---- methods ------------------------------------------------------------- */

static uint8_t canon[OUT_CAP];
static uint8_t frame_buf[OUT_CAP + GUARD];

static size_t kind_width(enum amqp_arg_kind k)
{
	switch (k) {
	case AMQP_ARG_OCTET:
		return 1;
	case AMQP_ARG_SHORT:
		return 2;
	case AMQP_ARG_LONG:
		return 4;
	case AMQP_ARG_LONGLONG:
	case AMQP_ARG_TIMESTAMP:
		return 8;
	default:
		return 0;
	}
}

static uint64_t field_uint(const char *f, size_t w)
{
	uint8_t u8;
	uint16_t u16;
	uint32_t u32;
	uint64_t u64;

	switch (w) {
	case 1:
		memcpy(&u8, f, 1);
		return u8;
	case 2:
		memcpy(&u16, f, 2);
		return u16;
	case 4:
		memcpy(&u32, f, 4);
		return u32;
	default:
		memcpy(&u64, f, 8);
		return u64;
	}
}

static bool field_bit(const char *f)
{
	bool b;
	memcpy(&b, f, sizeof(b));
	return b;
}

static struct amqp_bytes field_bytes(const char *f)
{
	struct amqp_bytes b;
	memcpy(&b, f, sizeof(b));
	return b;
}

/*
 * Reference method decoder driven by the argument descriptors: consecutive
 * bits share an octet (bit 0 first), integers are big-endian, tables are
 * validated in place.  Writes the canonical encoding of the payload (unused
 * bits cleared) to canon[].  With `m` (the library decoded successfully),
 * every field must equal what it read, strings borrowing from p.
 */
static int ref_method(const uint8_t *p, size_t len, const struct amqp_method *m)
{
	size_t pos = 4, bitpos = 8, bitat = 0;

	if (len < 4)
		return -AMQP_FRAME_ERROR;
	uint32_t id = (uint32_t)be(p, 4);
	const struct amqp_method_info *mi = amqp_method_info(id);
	if (!mi) {
		CHECK(strcmp(amqp_method_name(id), "unknown") == 0);
		return -AMQP_COMMAND_INVALID;
	}
	CHECK(mi->id == id && strcmp(amqp_method_name(id), mi->name) == 0);
	CHECK(mi->nargs == 0 || mi->args != NULL);
	if (m)
		CHECK(m->id == id);
	memcpy(canon, p, 4);
	for (unsigned i = 0; i < mi->nargs; i++) {
		const struct amqp_arg_info *a = &mi->args[i];
		const char *f = m ? (const char *)m + a->offset : NULL;
		size_t w = kind_width(a->kind);

		if (a->kind != AMQP_ARG_BIT)
			bitpos = 8;
		switch (a->kind) {
		case AMQP_ARG_BIT: {
			if (bitpos >= 8) {
				if (pos >= len)
					return -AMQP_FRAME_ERROR;
				bitat = pos++;
				canon[bitat] = 0;
				bitpos = 0;
			}
			bool b = (p[bitat] >> bitpos) & 1;
			canon[bitat] |= (uint8_t)(b << bitpos);
			bitpos++;
			if (f)
				CHECK(field_bit(f) == b);
			break;
		}
		case AMQP_ARG_OCTET:
		case AMQP_ARG_SHORT:
		case AMQP_ARG_LONG:
		case AMQP_ARG_LONGLONG:
		case AMQP_ARG_TIMESTAMP:
			if (len - pos < w)
				return -AMQP_FRAME_ERROR;
			if (f)
				CHECK(field_uint(f, w) == be(p + pos, w));
			memcpy(canon + pos, p + pos, w);
			pos += w;
			break;
		case AMQP_ARG_SHORTSTR:
		case AMQP_ARG_LONGSTR:
		case AMQP_ARG_TABLE: {
			size_t lw = a->kind == AMQP_ARG_SHORTSTR ? 1 : 4;
			if (len - pos < lw)
				return -AMQP_FRAME_ERROR;
			uint64_t n = be(p + pos, lw);
			if (len - pos - lw < n)
				return -AMQP_FRAME_ERROR;
			if (a->kind == AMQP_ARG_TABLE) {
				int rc = ref_validate(p + pos + lw, (size_t)n, true, 1);
				if (rc < 0)
					return rc;
			}
			if (f)
				CHECK(bytes_same(field_bytes(f), p + pos + lw, (size_t)n));
			memcpy(canon + pos, p + pos, lw + (size_t)n);
			pos += lw + (size_t)n;
			break;
		}
		default:
			CHECK(!"unknown argument kind");
		}
	}
	if (pos != len)
		return -AMQP_FRAME_ERROR;
	return 0;
}

static bool method_eq(const struct amqp_method_info *mi, const struct amqp_method *a,
                      const struct amqp_method *b)
{
	if (a->id != b->id)
		return false;
	for (unsigned i = 0; i < mi->nargs; i++) {
		const char *fa = (const char *)a + mi->args[i].offset;
		const char *fb = (const char *)b + mi->args[i].offset;
		size_t w = kind_width(mi->args[i].kind);
		switch (mi->args[i].kind) {
		case AMQP_ARG_BIT:
			if (field_bit(fa) != field_bit(fb))
				return false;
			break;
		case AMQP_ARG_SHORTSTR:
		case AMQP_ARG_LONGSTR:
		case AMQP_ARG_TABLE:
			if (!amqp_bytes_eq(field_bytes(fa), field_bytes(fb)))
				return false;
			break;
		default:
			if (field_uint(fa, w) != field_uint(fb, w))
				return false;
			break;
		}
	}
	return true;
}

static void check_frame_head(const uint8_t *f, uint8_t type, uint16_t channel, size_t size)
{
	CHECK(f[0] == type);
	CHECK(be(f + 1, 2) == channel);
	CHECK(be(f + 3, 4) == size);
	CHECK(f[7 + size] == AMQP_FRAME_END);
}

/* Decode a method payload; whatever decodes must re-encode canonically. */
static int check_method(const uint8_t *p, size_t len, uint16_t channel)
{
	struct amqp_method m, m2;
	struct amqp_err err = {0, NULL};
	struct amqp_wr w;

	memset(&m, 0, sizeof(m));
	int rc = amqp_method_decode(p, len, &m, &err);
	CHECK(rc == ref_method(p, len, rc == 0 ? &m : NULL));
	if (rc < 0) {
		check_err(rc, &err);
		return rc;
	}
	CHECK(rc == 0 && len <= FUZZ_MAX_INPUT);
	const struct amqp_method_info *mi = amqp_method_info(m.id);

	/* Arguments only, into an exact-size buffer. */
	amqp_wr_init(&w, frame_buf, len);
	guard_set(frame_buf, len);
	CHECK(amqp_method_encode(&w, &m));
	CHECK(amqp_wr_ok(&w) && w.len == len && guard_ok(frame_buf, len));
	CHECK(memcmp(frame_buf, canon, len) == 0);

	/* Into a buffer that is too small: full size reported, nothing past it. */
	size_t small = (len + AMQP_FRAME_OVERHEAD) / 2;
	guard_set(frame_buf, small);
	CHECK(amqp_frame_method(frame_buf, small, channel, &m) == len + AMQP_FRAME_OVERHEAD);
	CHECK(guard_ok(frame_buf, small));

	/* A whole frame, decoded again. */
	size_t fn = amqp_frame_method(frame_buf, OUT_CAP, channel, &m);
	CHECK(fn == len + AMQP_FRAME_OVERHEAD);
	check_frame_head(frame_buf, AMQP_FRAME_METHOD, channel, len);
	CHECK(memcmp(frame_buf + 7, canon, len) == 0);
	memset(&m2, 0, sizeof(m2));
	CHECK(amqp_method_decode(frame_buf + 7, len, &m2, &err) == 0);
	CHECK(method_eq(mi, &m, &m2));

	for (unsigned i = 0; i < mi->nargs; i++)
		if (mi->args[i].kind == AMQP_ARG_TABLE)
			walk_entries(field_bytes((const char *)&m + mi->args[i].offset), true, 1,
			             true);
	return 0;
}

/* ---- content headers ----------------------------------------------------- */

enum prop_kind { P_SHORTSTR, P_TABLE, P_OCTET, P_LONGLONG };

/* Basic's properties in wire order, flag bit 15 first. */
static const enum prop_kind prop_kinds[14] = {
    P_SHORTSTR, P_SHORTSTR, P_TABLE,    P_OCTET,    P_OCTET,    P_SHORTSTR, P_SHORTSTR,
    P_SHORTSTR, P_SHORTSTR, P_LONGLONG, P_SHORTSTR, P_SHORTSTR, P_SHORTSTR, P_SHORTSTR,
};

static uint8_t canon_props[OUT_CAP];
static size_t canon_props_len;
static size_t canon_props_list; /* where the property list starts in the input */

/*
 * Reference property decoder: flag words (bit 0 = another word follows; no
 * property may be named past basic's 14), then the present properties.
 * Canonical encoding (one flag word, continuation cleared) to canon_props.
 */
static int ref_props(const uint8_t *p, size_t len)
{
	size_t pos = 2;

	if (len < 2)
		return -AMQP_FRAME_ERROR;
	unsigned flags = (unsigned)be(p, 2), more = flags;
	if (flags & 2u)
		return -AMQP_SYNTAX_ERROR;
	while (more & 1u) {
		if (len - pos < 2)
			return -AMQP_FRAME_ERROR;
		more = (unsigned)be(p + pos, 2);
		pos += 2;
		if (more & ~1u)
			return -AMQP_SYNTAX_ERROR;
	}
	size_t list = pos;
	for (int i = 0; i < 14; i++) {
		if (!(flags & (1u << (15 - i))))
			continue;
		size_t n;
		switch (prop_kinds[i]) {
		case P_OCTET:
			n = 1;
			break;
		case P_LONGLONG:
			n = 8;
			break;
		case P_SHORTSTR:
			if (pos >= len)
				return -AMQP_FRAME_ERROR;
			n = 1 + (size_t)p[pos];
			break;
		default:
			if (len - pos < 4)
				return -AMQP_FRAME_ERROR;
			n = 4 + (size_t)be(p + pos, 4);
			break;
		}
		if (len - pos < n)
			return -AMQP_FRAME_ERROR;
		if (prop_kinds[i] == P_TABLE) {
			int rc = ref_validate(p + pos + 4, n - 4, true, 1);
			if (rc < 0)
				return rc;
		}
		pos += n;
	}
	if (pos != len)
		return -AMQP_FRAME_ERROR;
	canon_props[0] = (uint8_t)((flags & AMQP_PROP_ALL) >> 8);
	canon_props[1] = (uint8_t)(flags & AMQP_PROP_ALL);
	memcpy(canon_props + 2, p + list, len - list);
	canon_props_len = 2 + len - list;
	canon_props_list = list;
	return 0;
}

/* The headers property re-encoded from a built table (what the broker does
 * when it rewrites headers): canonical bytes, table included. */
static void check_headers_built(struct amqp_bytes raw, const struct amqp_basic_props *props)
{
	struct amqp_wr w;
	long n = collect_entries(props->headers, true);

	if (n < 0)
		return;
	struct amqp_table t = {built_entries, (size_t)n};
	struct amqp_basic_props b = *props;
	b.headers_built = &t;
	size_t at = 2 + (size_t)(props->headers.ptr - raw.ptr) - canon_props_list;
	size_t hl = props->headers.len;
	CHECK(at >= 6 && at + hl <= canon_props_len);
	amqp_wr_init(&w, built_buf, canon_props_len);
	guard_set(built_buf, canon_props_len);
	amqp_basic_props_encode(&w, &b);
	CHECK(amqp_wr_ok(&w) && w.len == canon_props_len && guard_ok(built_buf, canon_props_len));
	CHECK(memcmp(built_buf, canon_props, at) == 0);
	CHECK(hl == 0 || memcmp(built_buf + at, canon_table, hl) == 0);
	CHECK(memcmp(built_buf + at + hl, canon_props + at + hl, canon_props_len - at - hl) == 0);
}

static bool props_eq(const struct amqp_basic_props *a, const struct amqp_basic_props *b)
{
	uint16_t f = a->flags;
	if (a->flags != b->flags)
		return false;
#define PROP_STR(bit, name)                                                                        \
	if ((f & (bit)) && !amqp_bytes_eq(a->name, b->name))                                       \
		return false;
	PROP_STR(AMQP_PROP_CONTENT_TYPE, content_type)
	PROP_STR(AMQP_PROP_CONTENT_ENCODING, content_encoding)
	PROP_STR(AMQP_PROP_HEADERS, headers)
	PROP_STR(AMQP_PROP_CORRELATION_ID, correlation_id)
	PROP_STR(AMQP_PROP_REPLY_TO, reply_to)
	PROP_STR(AMQP_PROP_EXPIRATION, expiration)
	PROP_STR(AMQP_PROP_MESSAGE_ID, message_id)
	PROP_STR(AMQP_PROP_TYPE, type)
	PROP_STR(AMQP_PROP_USER_ID, user_id)
	PROP_STR(AMQP_PROP_APP_ID, app_id)
	PROP_STR(AMQP_PROP_CLUSTER_ID, cluster_id)
#undef PROP_STR
	if ((f & AMQP_PROP_DELIVERY_MODE) && a->delivery_mode != b->delivery_mode)
		return false;
	if ((f & AMQP_PROP_PRIORITY) && a->priority != b->priority)
		return false;
	if ((f & AMQP_PROP_TIMESTAMP) && a->timestamp != b->timestamp)
		return false;
	return true;
}

/* Decode property bytes; if they decode, re-encode them canonically. */
static int check_props(struct amqp_bytes raw, struct amqp_basic_props *props)
{
	struct amqp_err err = {0, NULL};
	struct amqp_wr w;

	int rc = amqp_basic_props_decode(raw, props, &err);
	CHECK(rc == ref_props(raw.ptr, raw.len));
	if (rc < 0) {
		check_err(rc, &err);
		return rc;
	}
	CHECK(rc == 0);
	CHECK((props->flags & ~AMQP_PROP_ALL) == 0 && props->headers_built == NULL);
	amqp_wr_init(&w, built_buf, canon_props_len);
	guard_set(built_buf, canon_props_len);
	amqp_basic_props_encode(&w, props);
	CHECK(amqp_wr_ok(&w) && w.len == canon_props_len && guard_ok(built_buf, canon_props_len));
	CHECK(memcmp(built_buf, canon_props, canon_props_len) == 0);

	struct amqp_basic_props again;
	CHECK(amqp_basic_props_decode((struct amqp_bytes){built_buf, canon_props_len}, &again,
	                              &err) == 0);
	CHECK(props_eq(props, &again));
	if (props->flags & AMQP_PROP_HEADERS) {
		walk_entries(props->headers, true, 1, true);
		check_headers_built(raw, props);
	}
	return 0;
}

static int ref_header(const uint8_t *p, size_t len)
{
	if (len < 12)
		return -AMQP_FRAME_ERROR;
	if (be(p + 2, 2) != 0)
		return -AMQP_SYNTAX_ERROR;
	if (be(p, 2) == AMQP_CLASS_BASIC)
		return ref_props(p + 12, len - 12);
	/* Other classes: one all-zero flag word and nothing after it. */
	if (len < 14)
		return -AMQP_FRAME_ERROR;
	if (be(p + 12, 2) != 0)
		return -AMQP_SYNTAX_ERROR;
	return len == 14 ? 0 : -AMQP_FRAME_ERROR;
}

/* Decode a content header payload; re-encode it raw and structured. */
static int check_header(const uint8_t *p, size_t len, uint16_t channel)
{
	struct amqp_content_header h;
	struct amqp_basic_props props;
	struct amqp_err err = {0, NULL};

	/* The property decoder on its own, whatever the class. */
	if (len >= 12)
		(void)check_props((struct amqp_bytes){p + 12, len - 12}, &props);

	int rc = amqp_content_header_decode(p, len, &h, &err);
	CHECK(rc == ref_header(p, len));

	/* The variant that also returns the properties agrees. */
	struct amqp_content_header hp;
	struct amqp_basic_props pp;
	struct amqp_err errp = {0, NULL};
	CHECK(amqp_content_header_decode_props(p, len, &hp, &pp, &errp) == rc);
	if (rc < 0) {
		check_err(rc, &err);
		CHECK(errp.code == err.code && strcmp(errp.text, err.text) == 0);
		return rc;
	}
	CHECK(hp.class_id == h.class_id && hp.body_size == h.body_size);
	CHECK(bytes_same(hp.raw_props, h.raw_props.ptr, h.raw_props.len));
	CHECK(rc == 0 && len <= FUZZ_MAX_INPUT);
	CHECK(h.class_id == be(p, 2) && h.weight == 0 && h.body_size == be(p + 4, 8));
	CHECK(bytes_same(h.raw_props, p + 12, len - 12));
	/* A header that decodes has properties that decode. */
	CHECK(check_props(h.raw_props, &props) == 0);
	CHECK(h.class_id == AMQP_CLASS_BASIC || props.flags == 0);
	CHECK(props_eq(&pp, &props));

	/* As received (the broker's hot path): identical bytes. */
	size_t small = (len + AMQP_FRAME_OVERHEAD) / 2;
	guard_set(frame_buf, small);
	CHECK(amqp_frame_header_raw(frame_buf, small, channel, h.class_id, h.body_size,
	                            h.raw_props) == len + AMQP_FRAME_OVERHEAD);
	CHECK(guard_ok(frame_buf, small));
	CHECK(amqp_frame_header_raw(frame_buf, OUT_CAP, channel, h.class_id, h.body_size,
	                            h.raw_props) == len + AMQP_FRAME_OVERHEAD);
	check_frame_head(frame_buf, AMQP_FRAME_HEADER, channel, len);
	CHECK(memcmp(frame_buf + 7, p, len) == 0);

	/* Structured: canonical flag word. */
	size_t clen = 12 + canon_props_len;
	size_t fn = amqp_frame_header(frame_buf, OUT_CAP, channel, h.class_id, h.body_size, &props);
	CHECK(fn == clen + AMQP_FRAME_OVERHEAD);
	check_frame_head(frame_buf, AMQP_FRAME_HEADER, channel, clen);
	CHECK(memcmp(frame_buf + 7, p, 2) == 0 && be(frame_buf + 9, 2) == 0);
	CHECK(memcmp(frame_buf + 11, p + 4, 8) == 0);
	CHECK(memcmp(frame_buf + 19, canon_props, canon_props_len) == 0);
	struct amqp_content_header h2;
	CHECK(amqp_content_header_decode(frame_buf + 7, clen, &h2, &err) == 0);
	CHECK(h2.class_id == h.class_id && h2.body_size == h.body_size);
	return 0;
}

/* ---- frame streams ------------------------------------------------------- */

struct event {
	int kind; /* AMQP_PARSE_FRAME or AMQP_PARSE_PROTOCOL_HEADER */
	struct amqp_frame f;
	int decode_rc;
};

static struct event events[MAX_EVENTS];

/* The chunked runs feed copies of the input placed here, each chunk at its
 * own offset and overwritten (and poisoned, under ASan) once consumed: a
 * frame that still points into an old chunk reads garbage or faults. */
static uint8_t staging[FUZZ_MAX_INPUT];

enum run_mode { RUN_WHOLE, RUN_CHUNKS, RUN_BYTES };

struct run {
	enum run_mode mode;
	bool server;
	const uint8_t *ctl; /* 4 chunk sizes */
	size_t expect;      /* events the whole-buffer run recorded */
	size_t nevents;
	int final_rc;
	const char *final_text;
};

static uint32_t initial_frame_max(uint8_t flags)
{
	switch (flags & 3) {
	case 0:
		return AMQP_FRAME_MIN_SIZE;
	case 1:
		return 131072;
	case 2:
		return 1u + (flags >> 2); /* 1..64: tiny limits */
	default:
		return flags == 0xFF ? 0 : 1u << 20; /* 0: no limit but the absolute one */
	}
}

/* tune-ok (server role) / tune (client role) sets frame_max for what follows;
 * values the fuzzer picks beyond 1 MiB are ignored to bound allocations. */
static void apply_tune(struct amqp_frame_parser *ps, bool server, const struct amqp_frame *f)
{
	uint32_t want = server ? AMQP_CONNECTION_TUNE_OK : AMQP_CONNECTION_TUNE;
	if (f->type != AMQP_FRAME_METHOD || f->size != 12 || be(f->payload, 4) != want)
		return;
	uint32_t fm = (uint32_t)be(f->payload + 6, 4);
	if (fm > 0 && fm <= (1u << 20))
		amqp_parser_set_frame_max(ps, fm);
}

/* Decode a frame by type: full checks in the whole-buffer run, otherwise
 * only the result code (the payload may live in the parser's buffer). */
static int decode_frame(const struct amqp_frame *f, bool full)
{
	struct amqp_method m;
	struct amqp_content_header h;
	const uint8_t *payload = f->payload;

#ifdef FUZZ_IGNORE_NULL_EMPTY_PAYLOAD
	/* Known issue, see README: an empty frame that arrived split comes
	 * back with payload NULL, and the decoders compute NULL + 0. */
	static const uint8_t empty[1];
	if (!payload && f->size == 0)
		payload = empty;
#endif
	switch (f->type) {
	case AMQP_FRAME_METHOD:
		if (full)
			return check_method(payload, f->size, f->channel);
		return amqp_method_decode(payload, f->size, &m, NULL);
	case AMQP_FRAME_HEADER:
		if (full)
			return check_header(payload, f->size, f->channel);
		return amqp_content_header_decode(payload, f->size, &h, NULL);
	case AMQP_FRAME_BODY:
		if (full) {
			struct amqp_bytes body = {f->payload, f->size};
			CHECK(amqp_frame_body(frame_buf, OUT_CAP, f->channel, body) ==
			      f->size + AMQP_FRAME_OVERHEAD);
			CHECK(memcmp(frame_buf, f->payload - 7, f->size + AMQP_FRAME_OVERHEAD) ==
			      0);
		}
		return 0;
	case AMQP_FRAME_HEARTBEAT:
		if (full) {
			CHECK(amqp_frame_heartbeat(frame_buf, OUT_CAP) == AMQP_FRAME_OVERHEAD);
			CHECK(memcmp(frame_buf, f->payload - 7, AMQP_FRAME_OVERHEAD) == 0);
		}
		return 0;
	default:
		CHECK(!"parser returned an unknown frame type");
		return 0;
	}
}

/* One event: the whole-buffer run records it, the others must match it. */
static void on_event(struct run *r, int kind, const struct amqp_frame *f, const uint8_t *at,
                     size_t used, uint32_t frame_max)
{
	CHECK(r->nevents < (r->mode == RUN_WHOLE ? MAX_EVENTS : r->expect));
	struct event *e = &events[r->nevents++];

	if (kind == AMQP_PARSE_FRAME) {
		uint64_t max = frame_max ? frame_max : AMQP_FRAME_MAX_ABSOLUTE;
		CHECK((uint64_t)f->size + AMQP_FRAME_OVERHEAD <= max);
		if (f->type == AMQP_FRAME_HEARTBEAT)
			CHECK(f->channel == 0 && f->size == 0);
		CHECK(f->size == 0 || f->payload != NULL);
	}
	if (r->mode == RUN_WHOLE) {
		e->kind = kind;
		if (kind == AMQP_PARSE_FRAME) {
			/* Whole frame in one chunk: borrowed from the input. */
			CHECK(f->payload == at + 7 && used == f->size + AMQP_FRAME_OVERHEAD);
			e->f = *f;
			e->decode_rc = decode_frame(f, true);
		}
		return;
	}
	CHECK(e->kind == kind);
	if (kind == AMQP_PARSE_FRAME) {
		CHECK(f->type == e->f.type && f->channel == e->f.channel && f->size == e->f.size);
		CHECK(f->size == 0 || memcmp(f->payload, e->f.payload, f->size) == 0);
		CHECK(decode_frame(f, false) == e->decode_rc);
	}
}

static void run_stream(struct run *r, const uint8_t *s, size_t n, uint32_t frame_max)
{
	struct amqp_frame_parser ps;
	size_t off = 0, ci = 0;
	int rc = AMQP_PARSE_NEED_MORE;
	struct amqp_err err = {0, NULL};
	uint32_t fm = frame_max;

	amqp_parser_init(&ps, r->server ? AMQP_PARSER_SERVER : AMQP_PARSER_CLIENT, frame_max);
	r->nevents = 0;
	UNPOISON(staging, n);
	while (off < n && rc >= 0) {
		size_t chunk = n - off;
		if (r->mode == RUN_BYTES) {
			chunk = 1;
		} else if (r->mode == RUN_CHUNKS) {
			size_t want = r->ctl[ci++ % 4];
			if (want)
				chunk = want;
		}
		if (chunk > n - off)
			chunk = n - off;
		const uint8_t *c = s + off;
		if (r->mode != RUN_WHOLE) {
			memcpy(staging + off, s + off, chunk);
			c = staging + off;
		}
		size_t left = chunk, used = 0;
		struct amqp_frame f;

		if (r->mode == RUN_CHUNKS) {
			/* An empty read changes nothing. */
			CHECK(amqp_parser_feed(&ps, c, 0, &used, &f, &err) ==
			          AMQP_PARSE_NEED_MORE &&
			      used == 0);
		}
		for (;;) {
			rc = amqp_parser_feed(&ps, c, left, &used, &f, &err);
			CHECK(used <= left);
			if (rc == AMQP_PARSE_FRAME || rc == AMQP_PARSE_PROTOCOL_HEADER) {
				CHECK(used > 0);
				on_event(r, rc, &f, c, used, fm);
				if (rc == AMQP_PARSE_FRAME) {
					apply_tune(&ps, r->server, &f);
					fm = ps.frame_max;
				}
				c += used;
				left -= used;
				if (left > 0)
					continue;
				rc = AMQP_PARSE_NEED_MORE; /* the chunk ended on a frame */
				break;
			}
			if (rc == AMQP_PARSE_NEED_MORE)
				CHECK(used == left);
			break;
		}
		if (r->mode != RUN_WHOLE) {
			memset(staging + off, 0xDD, chunk);
			POISON(staging + off, chunk);
		}
		off += chunk;
	}
	UNPOISON(staging, n);
	r->final_rc = rc;
	r->final_text = NULL;
	if (rc == AMQP_PARSE_BAD_PROTOCOL) {
		CHECK(r->server);
	} else if (rc < 0) {
		check_err(rc, &err);
		r->final_text = err.text;
	} else {
		CHECK(rc == AMQP_PARSE_NEED_MORE);
	}
	if (rc < 0) {
		/* Errors are sticky. */
		size_t used = 1;
		struct amqp_frame f;
		struct amqp_err err2 = {0, NULL};
		CHECK(amqp_parser_feed(&ps, s, n, &used, &f, &err2) == rc && used == 0);
		if (rc != AMQP_PARSE_BAD_PROTOCOL)
			CHECK(err2.code == err.code && strcmp(err2.text, err.text) == 0);
	}
	amqp_parser_free(&ps);
}

static void fuzz_stream(const uint8_t *data, size_t size, bool server)
{
	uint8_t params[STREAM_PARAMS] = {0};
	size_t np = size < STREAM_PARAMS ? size : STREAM_PARAMS;

	memcpy(params, data, np);
	const uint8_t *s = data + np;
	size_t n = size - np;
	uint32_t fm = initial_frame_max(params[0]);

	struct run whole = {RUN_WHOLE, server, params + 1, 0, 0, 0, NULL};
	run_stream(&whole, s, n, fm);

	struct run other[2] = {
	    {RUN_CHUNKS, server, params + 1, whole.nevents, 0, 0, NULL},
	    {RUN_BYTES, server, params + 1, whole.nevents, 0, 0, NULL},
	};
	for (int i = 0; i < 2; i++) {
		run_stream(&other[i], s, n, fm);
		CHECK(other[i].nevents == whole.nevents);
		CHECK(other[i].final_rc == whole.final_rc);
		CHECK((other[i].final_text == NULL) == (whole.final_text == NULL));
		CHECK(whole.final_text == NULL ||
		      strcmp(other[i].final_text, whole.final_text) == 0);
	}
}

/* ---- entry point --------------------------------------------------------- */

/* The method table and its lookup agree (once per process). */
static void check_method_table(void)
{
	static bool done;
	if (done)
		return;
	done = true;
	for (size_t i = 0; i < AMQP_METHOD_COUNT; i++) {
		const struct amqp_method_info *mi = &amqp_methods[i];
		CHECK(amqp_method_info(mi->id) == mi);
		CHECK(mi->decode != NULL && mi->encode != NULL && mi->name != NULL);
		CHECK(mi->nargs == 0 || mi->args != NULL);
		for (unsigned a = 0; a < mi->nargs; a++)
			CHECK(mi->args[a].offset < sizeof(struct amqp_method));
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check_method_table();
	if (size == 0)
		return 0;
	if (size > FUZZ_MAX_INPUT)
		size = FUZZ_MAX_INPUT;
	const uint8_t *p = data + 1;
	size_t n = size - 1;

	switch (data[0] % SEL_COUNT) {
	case SEL_STREAM_SERVER:
		fuzz_stream(p, n, true);
		break;
	case SEL_STREAM_CLIENT:
		fuzz_stream(p, n, false);
		break;
	case SEL_METHOD:
		(void)check_method(p, n, (uint16_t)n);
		break;
	case SEL_HEADER:
		(void)check_header(p, n, (uint16_t)n);
		break;
	case SEL_TABLE:
		fuzz_table(p, n, true);
		break;
	default:
		fuzz_table(p, n, false);
		break;
	}
	return 0;
}
