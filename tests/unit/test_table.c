/*
 * test_table.c - field tables and arrays: round trips of every type
 * RabbitMQ accepts, nesting, byte-exact encodings, malformed input and
 * writer overflow.
 */
#include <float.h>
#include <limits.h>
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
#define FV(t, field, val)                                                                          \
	{                                                                                          \
		.type = (t), .v = {.field = val }                                                  \
	}
#define FT(tbl)                                                                                    \
	{                                                                                          \
		.type = 'F', .v = {.table = {.built = (tbl)} }                                     \
	}
#define FA(arr)                                                                                    \
	{                                                                                          \
		.type = 'A', .v = {.array = {.built = (arr)} }                                     \
	}
#define TABLE(e)                                                                                   \
	{                                                                                          \
		(e), N_ELEMS(e)                                                                    \
	}

#define S10  "0123456789"
#define S100 S10 S10 S10 S10 S10 S10 S10 S10 S10 S10
/* Longest possible key, and a longstr longer than any shortstr. */
#define S255 S100 S100 S10 S10 S10 S10 S10 "01234"
#define S300 S100 S100 S100

/* Report a failed check with a formatted message (CUnit copies the text). */
#define CHECKF(cond, ...)                                                                          \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			char m_[200];                                                              \
			snprintf(m_, sizeof(m_), __VA_ARGS__);                                     \
			CU_assertImplementation(CU_FALSE, __LINE__, m_, __FILE__, "", CU_FALSE);   \
		}                                                                                  \
	} while (0)

/* ---- fixtures ------------------------------------------------------------ */

static const struct amqp_table empty_table = {NULL, 0};
static const struct amqp_array empty_array = {NULL, 0};

static const struct amqp_table_entry small_inner_e[] = {
    {LIT("k"), FV('d', d, 2.5)},
};
static const struct amqp_table small_inner = TABLE(small_inner_e);
static const struct amqp_field_value small_array_v[] = {
    FV('I', i32, 1), FV('S', str, LIT("two")), {.type = 'V'}, FV('t', b, true), FT(&small_inner),
};
static const struct amqp_array small_array = TABLE(small_array_v);
static const struct amqp_table_entry small_table_e[] = {
    {LIT("k"), FV('B', u8, 7)},
    {LIT("a"), FA(&empty_array)},
};
static const struct amqp_table small_table = TABLE(small_table_e);

/* One or more entries of every type, with extreme and awkward values. */
static const struct amqp_table_entry scalar_e[] = {
    {LIT("bool_t"), FV('t', b, true)},
    {LIT("bool_f"), FV('t', b, false)},
    {LIT("i8_min"), FV('b', i8, INT8_MIN)},
    {LIT("i8_max"), FV('b', i8, INT8_MAX)},
    {LIT("i8_neg"), FV('b', i8, -2)},
    {LIT("u8_max"), FV('B', u8, UINT8_MAX)},
    {LIT("u8_hi"), FV('B', u8, 0x80)},
    {LIT("i16_min"), FV('s', i16, INT16_MIN)},
    {LIT("i16_max"), FV('s', i16, INT16_MAX)},
    {LIT("i16_neg"), FV('s', i16, -300)},
    {LIT("u16_max"), FV('u', u16, UINT16_MAX)},
    {LIT("u16"), FV('u', u16, 0x1234)},
    {LIT("i32_min"), FV('I', i32, INT32_MIN)},
    {LIT("i32_max"), FV('I', i32, INT32_MAX)},
    {LIT("i32_neg"), FV('I', i32, -123456789)},
    {LIT("u32_max"), FV('i', u32, UINT32_MAX)},
    {LIT("u32"), FV('i', u32, 0x80000001u)},
    {LIT("i64_min"), FV('l', i64, INT64_MIN)},
    {LIT("i64_max"), FV('l', i64, INT64_MAX)},
    {LIT("i64_neg"), FV('l', i64, -1234567890123LL)},
    {LIT("u64_max"), FV('L', u64, UINT64_MAX)},
    {LIT("u64"), FV('L', u64, 0x0102030405060708ull)},
    {LIT("f_neg"), FV('f', f, -1.5f)},
    {LIT("f_max"), FV('f', f, FLT_MAX)},
    {LIT("f_min"), FV('f', f, -FLT_MIN)},
    {LIT("f_denorm"), FV('f', f, FLT_TRUE_MIN)},
    {LIT("f_negzero"), FV('f', f, -0.0f)},
    {LIT("d_pi"), FV('d', d, 3.141592653589793)},
    {LIT("d_max"), FV('d', d, -DBL_MAX)},
    {LIT("d_min"), FV('d', d, DBL_MIN)},
    {LIT("d_denorm"), FV('d', d, DBL_TRUE_MIN)},
    {LIT("dec"), {.type = 'D', .v = {.dec = {2, 12345}}}},
    {LIT("dec_max"), {.type = 'D', .v = {.dec = {255, UINT32_MAX}}}},
    {LIT("str_empty"), FV('S', str, LIT(""))},
    {LIT("str"), FV('S', str, LIT("hello, world"))},
    {LIT("str_utf8"), FV('S', str, LIT("gr\xc3\xbc\xc3\x9f"))},
    {LIT("str_nul"), FV('S', str, LIT("a\0b"))},
    {LIT("str_long"), FV('S', str, LIT(S300))},
    {LIT("bin_empty"), FV('x', str, LIT(""))},
    {LIT("bin_nul"), FV('x', str, LIT("\0\xff\0\x01\0"))},
    {LIT("ts_0"), FV('T', u64, 0)},
    {LIT("ts"), FV('T', u64, 1700000000)},
    {LIT("ts_max"), FV('T', u64, UINT64_MAX)},
    {LIT("void"), {.type = 'V'}},
    {LIT(""), FV('I', i32, -1)},
    {LIT(S255), FV('b', i8, 1)},
    {LIT("arr"), FA(&small_array)},
    {LIT("tbl"), FT(&small_table)},
    {LIT("arr_empty"), FA(&empty_array)},
    {LIT("tbl_empty"), FT(&empty_table)},
};
static const struct amqp_table scalars = TABLE(scalar_e);

/* Seven levels: top F > list A > t1 F > inner A > t2 F > deep A > leaf F. */
static const struct amqp_table_entry leaf_e[] = {
    {LIT("leaf"), FV('S', str, LIT("x"))},
    {LIT("n"), FV('l', i64, -5)},
};
static const struct amqp_table leaf = TABLE(leaf_e);
static const struct amqp_field_value arr3_v[] = {FT(&leaf), {.type = 'V'}};
static const struct amqp_array arr3 = TABLE(arr3_v);
static const struct amqp_table_entry t2_e[] = {{LIT("deep"), FA(&arr3)}};
static const struct amqp_table t2 = TABLE(t2_e);
static const struct amqp_field_value arr_b_v[] = {FV('b', i8, -1)};
static const struct amqp_array arr_b = TABLE(arr_b_v);
static const struct amqp_field_value arr_ab_v[] = {FA(&arr_b)};
static const struct amqp_array arr_ab = TABLE(arr_ab_v);
static const struct amqp_field_value arr2_v[] = {FT(&t2), FA(&arr_ab), FA(&empty_array)};
static const struct amqp_array arr2 = TABLE(arr2_v);
static const struct amqp_table_entry t1_e[] = {
    {LIT("inner"), FA(&arr2)},
    {LIT("flag"), FV('t', b, true)},
};
static const struct amqp_table t1 = TABLE(t1_e);
static const struct amqp_field_value arr1_v[] = {FV('I', i32, 7), FT(&t1), FT(&empty_table)};
static const struct amqp_array arr1 = TABLE(arr1_v);
static const struct amqp_field_value arr_et_v[] = {FT(&empty_table)};
static const struct amqp_array arr_et = TABLE(arr_et_v);
static const struct amqp_table_entry tbl_a_e[] = {{LIT("a"), FA(&arr_et)}};
static const struct amqp_table tbl_a = TABLE(tbl_a_e);
static const struct amqp_table_entry top_e[] = {
    {LIT("name"), FV('S', str, LIT("outer"))},
    {LIT("list"), FA(&arr1)},
    {LIT("empty"), FT(&empty_table)},
    {LIT("tbl"), FT(&tbl_a)},
};
static const struct amqp_table top = TABLE(top_e);

/* ---- helpers ------------------------------------------------------------- */

/* Encode a built table's contents into buf; the table must fit. */
static size_t encode_contents(const struct amqp_table *t, uint8_t *buf, size_t cap)
{
	struct amqp_wr w;
	amqp_wr_init(&w, buf, cap);
	amqp_table_encode_contents(&w, t);
	CU_ASSERT_FATAL(amqp_wr_ok(&w));
	return w.len;
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

static int validate(const uint8_t *p, size_t len, bool keyed, struct amqp_err *err)
{
	struct amqp_bytes raw = {p, len};
	err->code = 0;
	err->text = NULL;
	return keyed ? amqp_table_validate(raw, err) : amqp_array_validate(raw, err);
}

static void check_table(const struct amqp_table *want, struct amqp_bytes raw);
static void check_array(const struct amqp_array *want, struct amqp_bytes raw);

/* Compare a decoded value with the value it was built from; nested built
 * tables/arrays are compared structurally, entry by entry. */
static void check_value(const struct amqp_field_value *want, const struct amqp_field_value *got)
{
	CU_ASSERT_EQUAL(got->type, want->type);
	if (got->type != want->type)
		return;
	switch (want->type) {
	case 't':
		CU_ASSERT_EQUAL(got->v.b, want->v.b);
		break;
	case 'b':
		CU_ASSERT_EQUAL(got->v.i8, want->v.i8);
		break;
	case 'B':
		CU_ASSERT_EQUAL(got->v.u8, want->v.u8);
		break;
	case 's':
		CU_ASSERT_EQUAL(got->v.i16, want->v.i16);
		break;
	case 'u':
		CU_ASSERT_EQUAL(got->v.u16, want->v.u16);
		break;
	case 'I':
		CU_ASSERT_EQUAL(got->v.i32, want->v.i32);
		break;
	case 'i':
		CU_ASSERT_EQUAL(got->v.u32, want->v.u32);
		break;
	case 'l':
		CU_ASSERT_EQUAL(got->v.i64, want->v.i64);
		break;
	case 'L':
	case 'T':
		CU_ASSERT_EQUAL(got->v.u64, want->v.u64);
		break;
	case 'f':
		/* Bitwise, so -0.0 and denormals must survive exactly. */
		CU_ASSERT_EQUAL(memcmp(&got->v.f, &want->v.f, sizeof(float)), 0);
		break;
	case 'd':
		CU_ASSERT_EQUAL(memcmp(&got->v.d, &want->v.d, sizeof(double)), 0);
		break;
	case 'D':
		CU_ASSERT_EQUAL(got->v.dec.scale, want->v.dec.scale);
		CU_ASSERT_EQUAL(got->v.dec.value, want->v.dec.value);
		break;
	case 'S':
	case 'x':
		CU_ASSERT(amqp_bytes_eq(got->v.str, want->v.str));
		break;
	case 'F':
		CU_ASSERT_PTR_NULL(got->v.table.built);
		if (want->v.table.built)
			check_table(want->v.table.built, got->v.table.raw);
		else
			CU_ASSERT(amqp_bytes_eq(got->v.table.raw, want->v.table.raw));
		break;
	case 'A':
		CU_ASSERT_PTR_NULL(got->v.array.built);
		if (want->v.array.built)
			check_array(want->v.array.built, got->v.array.raw);
		else
			CU_ASSERT(amqp_bytes_eq(got->v.array.raw, want->v.array.raw));
		break;
	case 'V':
		break;
	default:
		CU_FAIL("unexpected type in fixture");
	}
}

static void check_table(const struct amqp_table *want, struct amqp_bytes raw)
{
	struct amqp_table_iter it;
	struct amqp_bytes key;
	struct amqp_field_value v;

	amqp_table_iter_init(&it, raw);
	for (size_t i = 0; i < want->n; i++) {
		int rc = amqp_table_next(&it, &key, &v);
		CHECKF(rc == 1, "entry %zu: amqp_table_next returned %d", i, rc);
		if (rc != 1)
			return;
		CU_ASSERT(amqp_bytes_eq(key, want->entries[i].key));
		check_value(&want->entries[i].value, &v);
	}
	CU_ASSERT_EQUAL(amqp_table_next(&it, &key, &v), 0);
}

static void check_array(const struct amqp_array *want, struct amqp_bytes raw)
{
	struct amqp_table_iter it;
	struct amqp_field_value v;

	amqp_table_iter_init(&it, raw);
	for (size_t i = 0; i < want->n; i++) {
		int rc = amqp_array_next(&it, &v);
		CHECKF(rc == 1, "item %zu: amqp_array_next returned %d", i, rc);
		if (rc != 1)
			return;
		check_value(&want->items[i], &v);
	}
	CU_ASSERT_EQUAL(amqp_array_next(&it, &v), 0);
}

/* Storage for turning decoded raw views back into built structures. */
struct arena {
	struct amqp_table_entry ent[64];
	struct amqp_field_value val[64];
	struct amqp_table tbl[32];
	struct amqp_array arr[32];
	size_t ne, nv, nt, na;
};

static const struct amqp_table *rebuild_table(struct arena *a, struct amqp_bytes raw);
static const struct amqp_array *rebuild_array(struct arena *a, struct amqp_bytes raw);

/* Replace a decoded F/A value's raw view by a built copy (raw cleared so
 * the encoder cannot fall back on it). */
static void rebuild_value(struct arena *a, struct amqp_field_value *v)
{
	if (v->type == 'F') {
		const struct amqp_table *t = rebuild_table(a, v->v.table.raw);
		v->v.table.raw = (struct amqp_bytes){NULL, 0};
		v->v.table.built = t;
	} else if (v->type == 'A') {
		const struct amqp_array *arr = rebuild_array(a, v->v.array.raw);
		v->v.array.raw = (struct amqp_bytes){NULL, 0};
		v->v.array.built = arr;
	}
}

static const struct amqp_table *rebuild_table(struct arena *a, struct amqp_bytes raw)
{
	struct amqp_table_iter it;
	struct amqp_bytes key;
	struct amqp_field_value v;
	size_t n = 0;

	amqp_table_iter_init(&it, raw);
	while (amqp_table_next(&it, &key, &v) == 1)
		n++;
	CU_ASSERT_FATAL(a->nt < N_ELEMS(a->tbl) && a->ne + n <= N_ELEMS(a->ent));
	struct amqp_table *t = &a->tbl[a->nt++];
	struct amqp_table_entry *e = &a->ent[a->ne];
	a->ne += n; /* reserve before recursing, which allocates more */
	amqp_table_iter_init(&it, raw);
	for (size_t i = 0; i < n; i++) {
		CU_ASSERT_FATAL(amqp_table_next(&it, &e[i].key, &e[i].value) == 1);
		rebuild_value(a, &e[i].value);
	}
	t->entries = e;
	t->n = n;
	return t;
}

static const struct amqp_array *rebuild_array(struct arena *a, struct amqp_bytes raw)
{
	struct amqp_table_iter it;
	struct amqp_field_value v;
	size_t n = 0;

	amqp_table_iter_init(&it, raw);
	while (amqp_array_next(&it, &v) == 1)
		n++;
	CU_ASSERT_FATAL(a->na < N_ELEMS(a->arr) && a->nv + n <= N_ELEMS(a->val));
	struct amqp_array *arr = &a->arr[a->na++];
	struct amqp_field_value *items = &a->val[a->nv];
	a->nv += n;
	amqp_table_iter_init(&it, raw);
	for (size_t i = 0; i < n; i++) {
		CU_ASSERT_FATAL(amqp_array_next(&it, &items[i]) == 1);
		rebuild_value(a, &items[i]);
	}
	arr->items = items;
	arr->n = n;
	return arr;
}

/* ---- round trips --------------------------------------------------------- */

static void test_scalar_roundtrip(void)
{
	uint8_t buf[4096];
	struct amqp_err err = {0, NULL};
	size_t len = encode_contents(&scalars, buf, sizeof(buf));

	CU_ASSERT_EQUAL(validate(buf, len, true, &err), 0);
	check_table(&scalars, (struct amqp_bytes){buf, len});
}

/* The decoder must not depend on the encoder's choices: any non-zero
 * boolean octet is true, as in RabbitMQ. */
static void test_bool_nonzero(void)
{
	static const uint8_t in[] = {1, 'a', 't', 0x02, 1, 'b', 't', 0xff, 1, 'c', 't', 0x00};
	struct amqp_bytes raw = {in, sizeof(in)};
	struct amqp_field_value v;

	CU_ASSERT_EQUAL(amqp_table_validate(raw, NULL), 0);
	CU_ASSERT_TRUE(amqp_table_get(raw, "a", &v) && v.type == 't' && v.v.b);
	CU_ASSERT_TRUE(amqp_table_get(raw, "b", &v) && v.type == 't' && v.v.b);
	CU_ASSERT_TRUE(amqp_table_get(raw, "c", &v) && v.type == 't' && !v.v.b);
}

static void test_get(void)
{
	uint8_t buf[4096];
	size_t len = encode_contents(&scalars, buf, sizeof(buf));
	struct amqp_bytes raw = {buf, len};
	struct amqp_field_value v;

	memset(&v, 0, sizeof(v));
	CU_ASSERT_TRUE(amqp_table_get(raw, "bool_t", &v)); /* first entry */
	CU_ASSERT_EQUAL(v.type, 't');
	CU_ASSERT_TRUE(v.v.b);
	CU_ASSERT_TRUE(amqp_table_get(raw, "i32_min", &v));
	CU_ASSERT_EQUAL(v.type, 'I');
	CU_ASSERT_EQUAL(v.v.i32, INT32_MIN);
	CU_ASSERT_TRUE(amqp_table_get(raw, "i64_neg", &v));
	CU_ASSERT_EQUAL(v.type, 'l');
	CU_ASSERT_EQUAL(v.v.i64, -1234567890123LL);
	CU_ASSERT_TRUE(amqp_table_get(raw, "str_long", &v));
	CU_ASSERT_EQUAL(v.type, 'S');
	CU_ASSERT_TRUE(amqp_bytes_eq_cstr(v.v.str, S300));
	CU_ASSERT_TRUE(amqp_table_get(raw, "", &v));
	CU_ASSERT_EQUAL(v.type, 'I');
	CU_ASSERT_EQUAL(v.v.i32, -1);
	CU_ASSERT_TRUE(amqp_table_get(raw, S255, &v));
	CU_ASSERT_EQUAL(v.type, 'b');
	CU_ASSERT_EQUAL(v.v.i8, 1);
	CU_ASSERT_TRUE(amqp_table_get(raw, "tbl_empty", &v)); /* last entry */
	CU_ASSERT_EQUAL(v.type, 'F');
	CU_ASSERT_EQUAL(v.v.table.raw.len, 0);

	/* Lookups into a nested table's raw view. */
	CU_ASSERT_TRUE_FATAL(amqp_table_get(raw, "tbl", &v));
	CU_ASSERT_EQUAL_FATAL(v.type, 'F');
	struct amqp_bytes inner = v.v.table.raw;
	CU_ASSERT_TRUE(amqp_table_get(inner, "k", &v));
	CU_ASSERT_EQUAL(v.type, 'B');
	CU_ASSERT_EQUAL(v.v.u8, 7);
	CU_ASSERT_FALSE(amqp_table_get(inner, "bool_t", &v));

	/* Misses: absent, a prefix, an extension, another case. */
	CU_ASSERT_FALSE(amqp_table_get(raw, "nope", &v));
	CU_ASSERT_FALSE(amqp_table_get(raw, "i32", &v));
	CU_ASSERT_FALSE(amqp_table_get(raw, "i32_min_", &v));
	CU_ASSERT_FALSE(amqp_table_get(raw, "I32_MIN", &v));
	CU_ASSERT_FALSE(amqp_table_get((struct amqp_bytes){buf, 0}, "bool_t", &v));
}

static void test_get_int(void)
{
	uint8_t buf[4096];
	size_t len = encode_contents(&scalars, buf, sizeof(buf));
	struct amqp_bytes raw = {buf, len};
	int64_t n = 0;
	CU_ASSERT_TRUE(amqp_table_get_int(raw, "i32_min", &n));
	CU_ASSERT_EQUAL(n, INT32_MIN);
	CU_ASSERT_TRUE(amqp_table_get_int(raw, "i64_neg", &n));
	CU_ASSERT_EQUAL(n, -1234567890123LL);
	CU_ASSERT_TRUE(amqp_table_get_int(raw, S255, &n)); /* 'b' */
	CU_ASSERT_EQUAL(n, 1);
	n = 42;
	CU_ASSERT_FALSE(amqp_table_get_int(raw, "bool_t", &n)); /* not an integer */
	CU_ASSERT_FALSE(amqp_table_get_int(raw, "str_long", &n));
	CU_ASSERT_FALSE(amqp_table_get_int(raw, "nope", &n));
	CU_ASSERT_EQUAL(n, 42); /* untouched on a miss */
}

static void test_nested_roundtrip(void)
{
	uint8_t buf1[1024], buf2[1024], buf3[1024];
	struct amqp_err err = {0, NULL};
	size_t len1 = encode_contents(&top, buf1, sizeof(buf1));
	struct amqp_bytes raw = {buf1, len1};

	CU_ASSERT_EQUAL_FATAL(validate(buf1, len1, true, &err), 0);
	check_table(&top, raw);

	/* Walk down to the innermost table by lookups on raw views. */
	struct amqp_field_value v, w;
	struct amqp_table_iter it;
	CU_ASSERT_TRUE_FATAL(amqp_table_get(raw, "list", &v) && v.type == 'A');
	CU_ASSERT_EQUAL(amqp_array_validate(v.v.array.raw, NULL), 0);
	amqp_table_iter_init(&it, v.v.array.raw);
	CU_ASSERT_EQUAL_FATAL(amqp_array_next(&it, &w), 1);
	CU_ASSERT_EQUAL_FATAL(amqp_array_next(&it, &w), 1);
	CU_ASSERT_EQUAL_FATAL(w.type, 'F'); /* t1 */
	CU_ASSERT_TRUE_FATAL(amqp_table_get(w.v.table.raw, "inner", &v) && v.type == 'A');
	amqp_table_iter_init(&it, v.v.array.raw);
	CU_ASSERT_EQUAL_FATAL(amqp_array_next(&it, &w), 1);
	CU_ASSERT_EQUAL_FATAL(w.type, 'F'); /* t2 */
	CU_ASSERT_TRUE_FATAL(amqp_table_get(w.v.table.raw, "deep", &v) && v.type == 'A');
	amqp_table_iter_init(&it, v.v.array.raw);
	CU_ASSERT_EQUAL_FATAL(amqp_array_next(&it, &w), 1);
	CU_ASSERT_EQUAL_FATAL(w.type, 'F'); /* leaf */
	CU_ASSERT_TRUE(amqp_table_get(w.v.table.raw, "n", &v) && v.type == 'l' && v.v.i64 == -5);
	CU_ASSERT_TRUE(amqp_table_get(w.v.table.raw, "leaf", &v) && v.type == 'S' &&
	               amqp_bytes_eq_cstr(v.v.str, "x"));

	/* Shallow: top-level entries re-encoded from their decoded raw views. */
	struct amqp_table_entry e[8];
	size_t n = 0;
	amqp_table_iter_init(&it, raw);
	while (n < N_ELEMS(e) && amqp_table_next(&it, &e[n].key, &e[n].value) == 1)
		n++;
	CU_ASSERT_EQUAL_FATAL(n, top.n);
	struct amqp_table shallow = {e, n};
	size_t len2 = encode_contents(&shallow, buf2, sizeof(buf2));
	CU_ASSERT_EQUAL(len2, len1);
	CU_ASSERT_EQUAL(memcmp(buf2, buf1, len1), 0);

	/* Deep: every level rebuilt into `built` form from the decoded views. */
	static struct arena a;
	memset(&a, 0, sizeof(a));
	const struct amqp_table *deep = rebuild_table(&a, raw);
	size_t len3 = encode_contents(deep, buf3, sizeof(buf3));
	CU_ASSERT_EQUAL(len3, len1);
	CU_ASSERT_EQUAL(memcmp(buf3, buf1, len1), 0);
	check_table(deep, raw); /* the rebuilt structure equals the original */

	/* With length prefix: u32 big-endian length, then the same contents. */
	struct amqp_wr wr;
	amqp_wr_init(&wr, buf2, sizeof(buf2));
	amqp_table_encode(&wr, &top);
	CU_ASSERT_TRUE_FATAL(amqp_wr_ok(&wr));
	CU_ASSERT_EQUAL(wr.len, len1 + 4);
	CU_ASSERT_EQUAL(buf2[0], (uint8_t)(len1 >> 24));
	CU_ASSERT_EQUAL(buf2[1], (uint8_t)(len1 >> 16));
	CU_ASSERT_EQUAL(buf2[2], (uint8_t)(len1 >> 8));
	CU_ASSERT_EQUAL(buf2[3], (uint8_t)len1);
	CU_ASSERT_EQUAL(memcmp(buf2 + 4, buf1, len1), 0);
}

/* ---- byte-exact encodings ------------------------------------------------ */

static const struct amqp_table_entry nest_b_e[] = {{LIT("a"), FV('b', i8, -1)}};
static const struct amqp_table nest_b = TABLE(nest_b_e);
static const struct amqp_field_value arr_bv_v[] = {FV('B', u8, 0xff), {.type = 'V'}};
static const struct amqp_array arr_bv = TABLE(arr_bv_v);

struct exact_case {
	struct amqp_table_entry e;
	uint8_t bytes[24]; /* expected encoding */
	size_t len;
};
/* EXACT(key, value, expected bytes...) */
#define EXACT(key, val, ...)                                                                       \
	{                                                                                          \
		{LIT(key), val}, {__VA_ARGS__}, sizeof((const uint8_t[]){__VA_ARGS__})             \
	}
#define DEC(scale, val)                                                                            \
	{                                                                                          \
		.type = 'D', .v = {.dec = {scale, val} }                                           \
	}
#define VOID                                                                                       \
	{                                                                                          \
		.type = 'V'                                                                        \
	}

static const struct exact_case exact_cases[] = {
    EXACT("a", FV('I', i32, 1), 1, 'a', 'I', 0, 0, 0, 1),
    EXACT("a", FV('I', i32, -2), 1, 'a', 'I', 0xff, 0xff, 0xff, 0xfe),
    EXACT("b", FV('t', b, true), 1, 'b', 't', 1),
    EXACT("b", FV('t', b, false), 1, 'b', 't', 0),
    EXACT("c", FV('b', i8, -128), 1, 'c', 'b', 0x80),
    EXACT("c", FV('B', u8, 200), 1, 'c', 'B', 0xc8),
    EXACT("n", FV('s', i16, -2), 1, 'n', 's', 0xff, 0xfe),
    EXACT("n", FV('u', u16, 0xabcd), 1, 'n', 'u', 0xab, 0xcd),
    EXACT("u", FV('i', u32, 0xdeadbeef), 1, 'u', 'i', 0xde, 0xad, 0xbe, 0xef),
    EXACT("l", FV('l', i64, -1), 1, 'l', 'l', 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff),
    EXACT("L", FV('L', u64, 0x0102030405060708ull), 1, 'L', 'L', 1, 2, 3, 4, 5, 6, 7, 8),
    EXACT("f", FV('f', f, 1.0f), 1, 'f', 'f', 0x3f, 0x80, 0, 0),
    EXACT("d", FV('d', d, -2.0), 1, 'd', 'd', 0xc0, 0, 0, 0, 0, 0, 0, 0),
    EXACT("D", DEC(2, 1234), 1, 'D', 'D', 2, 0, 0, 0x04, 0xd2),
    EXACT("s", FV('S', str, LIT("hi")), 1, 's', 'S', 0, 0, 0, 2, 'h', 'i'),
    EXACT("s", FV('S', str, LIT("")), 1, 's', 'S', 0, 0, 0, 0),
    EXACT("x", FV('x', str, LIT("\0\xff")), 1, 'x', 'x', 0, 0, 0, 2, 0, 0xff),
    EXACT("T", FV('T', u64, 1700000000), 1, 'T', 'T', 0, 0, 0, 0, 0x65, 0x53, 0xf1, 0),
    EXACT("v", VOID, 1, 'v', 'V'),
    EXACT("t", FT(&nest_b), 1, 't', 'F', 0, 0, 0, 4, 1, 'a', 'b', 0xff),
    EXACT("t", FT(&empty_table), 1, 't', 'F', 0, 0, 0, 0),
    EXACT("A", FA(&arr_bv), 1, 'A', 'A', 0, 0, 0, 3, 'B', 0xff, 'V'),
    EXACT("", VOID, 0, 'V'),
};

static void test_exact_bytes(void)
{
	for (size_t i = 0; i < N_ELEMS(exact_cases); i++) {
		const struct exact_case *c = &exact_cases[i];
		struct amqp_table t = {&c->e, 1};
		uint8_t buf[64];
		size_t len = encode_contents(&t, buf, sizeof(buf));

		CHECKF(len == c->len && memcmp(buf, c->bytes, len) == 0,
		       "case %zu (key %.*s type %c): encoding differs", i, (int)c->e.key.len,
		       (const char *)c->e.key.ptr, c->e.value.type);
		/* ...and the hand-written bytes decode to the value. */
		struct amqp_bytes raw = {c->bytes, c->len};
		CHECKF(amqp_table_validate(raw, NULL) == 0, "case %zu: expected bytes rejected", i);
		check_table(&t, raw);
	}
}

static void test_exact_table_encode(void)
{
	static const struct amqp_table_entry e[] = {{LIT("a"), FV('I', i32, 1)}};
	static const struct amqp_table t = TABLE(e);
	static const uint8_t want[] = {0, 0, 0, 7, 1, 'a', 'I', 0, 0, 0, 1};
	uint8_t buf[32];
	struct amqp_wr w;

	amqp_wr_init(&w, buf, sizeof(buf));
	amqp_table_encode(&w, &t);
	CU_ASSERT_TRUE(amqp_wr_ok(&w));
	CU_ASSERT_EQUAL_FATAL(w.len, sizeof(want));
	CU_ASSERT_EQUAL(memcmp(buf, want, sizeof(want)), 0);

	/* Empty (and absent) tables are a zero length and nothing else. */
	amqp_wr_init(&w, buf, sizeof(buf));
	amqp_table_encode(&w, &empty_table);
	amqp_table_encode(&w, NULL);
	CU_ASSERT_TRUE(amqp_wr_ok(&w));
	CU_ASSERT_EQUAL_FATAL(w.len, 8);
	CU_ASSERT_EQUAL(memcmp(buf, "\0\0\0\0\0\0\0\0", 8), 0);

	/* A decoded raw view is copied through as a longstr. */
	struct amqp_field_value v = {.type = 'F', .v = {.table = {.raw = {want + 4, 7}}}};
	amqp_wr_init(&w, buf, sizeof(buf));
	amqp_field_value_encode(&w, &v);
	CU_ASSERT_TRUE(amqp_wr_ok(&w));
	CU_ASSERT_EQUAL_FATAL(w.len, 1 + sizeof(want));
	CU_ASSERT_EQUAL(buf[0], 'F');
	CU_ASSERT_EQUAL(memcmp(buf + 1, want, sizeof(want)), 0);
}

/* ---- malformed input ----------------------------------------------------- */

/*
 * Validate every proper prefix of a table's encoding, each in its own
 * exact-size heap block so ASan catches any read past the end.  A prefix
 * that ends on an entry boundary is a valid shorter table; any other is
 * truncated (501), and iterating it yields the whole entries then -501.
 */
static void check_prefixes(const struct amqp_table *t)
{
	uint8_t full[4096];
	size_t bound[128];
	size_t len = encode_contents(t, full, sizeof(full));

	CU_ASSERT_FATAL(t->n < N_ELEMS(bound));
	for (size_t k = 0; k <= t->n; k++) {
		struct amqp_table part = {t->entries, k};
		bound[k] = encode_contents(&part, full, sizeof(full));
	}
	CU_ASSERT_EQUAL_FATAL(bound[t->n], len);

	size_t k = 0; /* complete entries in the prefix */
	for (size_t cut = 0; cut < len; cut++) {
		while (bound[k + 1] <= cut)
			k++;
		uint8_t *p = malloc(cut ? cut : 1);
		CU_ASSERT_PTR_NOT_NULL_FATAL(p);
		memcpy(p, full, cut);
		struct amqp_err err = {0, NULL};
		int rc = validate(p, cut, true, &err);
		bool at_boundary = bound[k] == cut;
		if (at_boundary) {
			CHECKF(rc == 0, "prefix %zu (boundary): rc %d", cut, rc);
		} else {
			CHECKF(rc == -AMQP_FRAME_ERROR && err.code == AMQP_FRAME_ERROR &&
			           err.text != NULL,
			       "prefix %zu of %zu: rc %d code %u", cut, len, rc, err.code);
		}

		/* Iteration re-checks bounds, even without validation. */
		struct amqp_table_iter it;
		struct amqp_bytes key;
		struct amqp_field_value v;
		size_t seen = 0;
		amqp_table_iter_init(&it, (struct amqp_bytes){p, cut});
		while ((rc = amqp_table_next(&it, &key, &v)) == 1 && seen <= t->n)
			seen++;
		CHECKF(seen == k && rc == (at_boundary ? 0 : -AMQP_FRAME_ERROR),
		       "prefix %zu: iterated %zu entries (want %zu), rc %d", cut, seen, k, rc);

		/* A lookup of the cut entry's key misses cleanly. */
		char last[16];
		if (t->entries[t->n - 1].key.len < sizeof(last)) {
			memcpy(last, t->entries[t->n - 1].key.ptr, t->entries[t->n - 1].key.len);
			last[t->entries[t->n - 1].key.len] = 0;
			CU_ASSERT_FALSE(amqp_table_get((struct amqp_bytes){p, cut}, last, &v));
		}
		free(p);
	}
}

static void test_truncated_scalars(void)
{
	check_prefixes(&scalars);
}

static void test_truncated_nested(void)
{
	check_prefixes(&top);
}

static void test_truncated_array(void)
{
	uint8_t full[256];
	struct amqp_wr w;

	amqp_wr_init(&w, full, sizeof(full));
	amqp_array_encode_contents(&w, &small_array);
	CU_ASSERT_TRUE_FATAL(amqp_wr_ok(&w));
	size_t len = w.len;

	size_t bound[8];
	for (size_t k = 0; k <= small_array.n; k++) {
		struct amqp_array part = {small_array.items, k};
		amqp_wr_init(&w, full, sizeof(full));
		amqp_array_encode_contents(&w, &part);
		bound[k] = w.len;
	}
	for (size_t cut = 0, k = 0; cut < len; cut++) {
		while (bound[k + 1] <= cut)
			k++;
		uint8_t *p = malloc(cut ? cut : 1);
		CU_ASSERT_PTR_NOT_NULL_FATAL(p);
		memcpy(p, full, cut);
		struct amqp_err err = {0, NULL};
		int rc = validate(p, cut, false, &err);
		if (bound[k] == cut)
			CHECKF(rc == 0, "array prefix %zu (boundary): rc %d", cut, rc);
		else
			CHECKF(rc == -AMQP_FRAME_ERROR && err.code == AMQP_FRAME_ERROR &&
			           err.text != NULL,
			       "array prefix %zu: rc %d code %u", cut, rc, err.code);
		free(p);
	}
}

static bool known_type(unsigned t)
{
	return t != 0 && strchr("tbBsuIilLfdDSxATFV", (int)t) != NULL;
}

static void test_unknown_type(void)
{
	struct amqp_err err;
	int rejected = 0;

	/* Every octet outside RabbitMQ's set, with and without payload bytes
	 * after it, so "unknown" is not confused with "truncated". */
	for (unsigned t = 0; t < 256; t++) {
		if (known_type(t))
			continue;
		uint8_t in[] = {1, 'k', (uint8_t)t, 0, 0, 0, 0, 0, 0, 0, 0};
		int rc1 = validate(in, 3, true, &err);
		CHECKF(rc1 == -AMQP_SYNTAX_ERROR && err.code == AMQP_SYNTAX_ERROR && err.text,
		       "type 0x%02x alone: rc %d", t, rc1);
		int rc2 = validate(in, sizeof(in), true, &err);
		CHECKF(rc2 == -AMQP_SYNTAX_ERROR && err.code == AMQP_SYNTAX_ERROR,
		       "type 0x%02x with payload: rc %d", t, rc2);
		int rc3 = validate(in + 2, 1, false, &err);
		CHECKF(rc3 == -AMQP_SYNTAX_ERROR, "type 0x%02x in array: rc %d", t, rc3);
		rejected++;
	}
	CU_ASSERT_EQUAL(rejected, 256 - 18);

	/* After valid entries, inside a nested table, inside a nested array. */
	static const uint8_t after[] = {1, 'a', 'V', 1, 'b', 'U', 0, 0};
	check_err(validate(after, sizeof(after), true, &err), &err, AMQP_SYNTAX_ERROR);
	static const uint8_t in_tbl[] = {1, 'k', 'F', 0, 0, 0, 3, 1, 'z', 'Z'};
	check_err(validate(in_tbl, sizeof(in_tbl), true, &err), &err, AMQP_SYNTAX_ERROR);
	static const uint8_t in_arr[] = {1, 'k', 'A', 0, 0, 0, 2, 'V', 'Z'};
	check_err(validate(in_arr, sizeof(in_arr), true, &err), &err, AMQP_SYNTAX_ERROR);

	/* Iterating unvalidated input stops with an error, not a bogus value. */
	struct amqp_table_iter it;
	struct amqp_bytes key;
	struct amqp_field_value v;
	amqp_table_iter_init(&it, (struct amqp_bytes){after, sizeof(after)});
	CU_ASSERT_EQUAL(amqp_table_next(&it, &key, &v), 1);
	CU_ASSERT(amqp_table_next(&it, &key, &v) < 0);
}

static void test_length_overrun(void)
{
	struct amqp_err err;
	/* Declared length 5 with 2 bytes left, for every length-prefixed type. */
	static const char types[] = "SxFA";
	for (int i = 0; types[i]; i++) {
		uint8_t in[] = {1, 'k', (uint8_t)types[i], 0, 0, 0, 5, 'a', 'b'};
		int rc = validate(in, sizeof(in), true, &err);
		CHECKF(rc == -AMQP_FRAME_ERROR && err.code == AMQP_FRAME_ERROR && err.text,
		       "type %c: rc %d", types[i], rc);
		rc = validate(in + 2, sizeof(in) - 2, false, &err);
		CHECKF(rc == -AMQP_FRAME_ERROR, "type %c in array: rc %d", types[i], rc);
	}
	/* Off by one, and the largest length (no wrap-around). */
	static const uint8_t by_one[] = {1, 'k', 'S', 0, 0, 0, 3, 'a', 'b'};
	check_err(validate(by_one, sizeof(by_one), true, &err), &err, AMQP_FRAME_ERROR);
	static const uint8_t huge[] = {1, 'k', 'x', 0xff, 0xff, 0xff, 0xff, 'a'};
	check_err(validate(huge, sizeof(huge), true, &err), &err, AMQP_FRAME_ERROR);
	/* Key longer than what remains. */
	static const uint8_t key[] = {5, 'a', 'b'};
	check_err(validate(key, sizeof(key), true, &err), &err, AMQP_FRAME_ERROR);
	/* Nested table whose own length fits, but whose contents are cut. */
	static const uint8_t inner[] = {1, 'k', 'F', 0, 0, 0, 3, 1, 'a', 'S', 1, 'z', 'V'};
	check_err(validate(inner, sizeof(inner), true, &err), &err, AMQP_FRAME_ERROR);
	/* Nested table one byte longer than the outer has left. */
	static const uint8_t nest[] = {1, 'k', 'F', 0, 0, 0, 4, 1, 'a', 'V'};
	check_err(validate(nest, sizeof(nest), true, &err), &err, AMQP_FRAME_ERROR);
	/* Fixed-size value cut short. */
	static const uint8_t fixed[] = {1, 'k', 'L', 1, 2, 3, 4, 5, 6, 7};
	check_err(validate(fixed, sizeof(fixed), true, &err), &err, AMQP_FRAME_ERROR);
}

static void put_u32(uint8_t *p, size_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/*
 * Raw contents of `levels` containers nested inside each other (the
 * outermost counts as one; the innermost is empty).  kind(i) gives level
 * i's kind: 'F' (entries keyed "n") or 'A'.  Built back to front.
 */
static uint8_t *make_nested(size_t levels, char (*kind)(size_t), size_t *len)
{
	size_t cap = levels * 7 + 1;
	uint8_t *buf = malloc(cap);
	size_t pos = cap, inner_len = 0;

	CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
	for (size_t i = levels - 1; i-- > 0;) {
		pos -= 4;
		put_u32(buf + pos, inner_len);
		buf[--pos] = (uint8_t)kind(i + 1);
		if (kind(i) == 'F') {
			buf[--pos] = 'n';
			buf[--pos] = 1;
		}
		inner_len = cap - pos;
	}
	memmove(buf, buf + pos, cap - pos);
	*len = cap - pos;
	return buf;
}

static char all_tables(size_t i)
{
	(void)i;
	return 'F';
}

static char alternating(size_t i)
{
	return i % 2 ? 'A' : 'F';
}

static char array_rooted(size_t i)
{
	return i % 3 ? 'F' : 'A';
}

static void check_depth(size_t levels, char (*kind)(size_t), int want)
{
	struct amqp_err err;
	size_t len;
	uint8_t *p = make_nested(levels, kind, &len);
	int rc = validate(p, len, kind(0) == 'F', &err);

	CHECKF(rc == want, "%zu levels rooted at %c: rc %d, want %d", levels, kind(0), rc, want);
	if (want)
		check_err(rc, &err, (uint16_t)-want);
	free(p);
}

static void test_depth(void)
{
	/* The builder itself: two levels are the hand-written bytes. */
	size_t len;
	uint8_t *p = make_nested(2, all_tables, &len);
	static const uint8_t two[] = {1, 'n', 'F', 0, 0, 0, 0};
	CU_ASSERT_TRUE(len == sizeof(two) && memcmp(p, two, sizeof(two)) == 0);
	free(p);

	char (*kinds[])(size_t) = {all_tables, alternating, array_rooted};
	for (size_t i = 0; i < N_ELEMS(kinds); i++) {
		check_depth(1, kinds[i], 0);
		check_depth(2, kinds[i], 0);
		check_depth(AMQP_TABLE_MAX_DEPTH, kinds[i], 0);
		check_depth(AMQP_TABLE_MAX_DEPTH + 1, kinds[i], -AMQP_SYNTAX_ERROR);
		/* Far deeper input must be refused without deep recursion. */
		check_depth(100000, kinds[i], -AMQP_SYNTAX_ERROR);
	}
}

/* n entries of key "" + 'V' (table) or n 'V' items (array); returns the length. */
static size_t fill_voids(uint8_t *buf, size_t n, bool keyed)
{
	size_t pos = 0;
	for (size_t i = 0; i < n; i++) {
		if (keyed)
			buf[pos++] = 0;
		buf[pos++] = 'V';
	}
	return pos;
}

static void test_max_entries(void)
{
	const size_t max = AMQP_TABLE_MAX_ENTRIES;
	uint8_t *buf = malloc(2 * (2 * (max + 1) + 7));
	struct amqp_err err;
	size_t len;

	CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
	len = fill_voids(buf, max, true);
	CU_ASSERT_EQUAL(validate(buf, len, true, &err), 0);
	size_t seen = 0;
	struct amqp_table_iter it;
	struct amqp_bytes key;
	struct amqp_field_value v;
	amqp_table_iter_init(&it, (struct amqp_bytes){buf, len});
	while (amqp_table_next(&it, &key, &v) == 1)
		seen++;
	CU_ASSERT_EQUAL(seen, max);

	len = fill_voids(buf, max + 1, true);
	check_err(validate(buf, len, true, &err), &err, AMQP_SYNTAX_ERROR);

	len = fill_voids(buf, max, false);
	CU_ASSERT_EQUAL(validate(buf, len, false, &err), 0);
	len = fill_voids(buf, max + 1, false);
	check_err(validate(buf, len, false, &err), &err, AMQP_SYNTAX_ERROR);

	/* The limit is per table: two full nested tables are fine... */
	size_t pos = 0;
	for (int i = 0; i < 2; i++) {
		buf[pos++] = 1;
		buf[pos++] = (uint8_t)('a' + i);
		buf[pos++] = 'F';
		size_t n = fill_voids(buf + pos + 4, max, true);
		put_u32(buf + pos, n);
		pos += 4 + n;
	}
	CU_ASSERT_EQUAL(validate(buf, pos, true, &err), 0);
	/* ...but one too many inside a nested array is not. */
	buf[0] = 1;
	buf[1] = 'a';
	buf[2] = 'A';
	len = fill_voids(buf + 7, max + 1, false);
	put_u32(buf + 3, len);
	check_err(validate(buf, len + 7, true, &err), &err, AMQP_SYNTAX_ERROR);
	free(buf);
}

/* Input built by hand rather than by the encoder can be empty or absent. */
static void test_empty_input(void)
{
	static const uint8_t one[1] = {0};
	struct amqp_table_iter it;
	struct amqp_bytes key;
	struct amqp_field_value v;

	CU_ASSERT_EQUAL(amqp_table_validate((struct amqp_bytes){one, 0}, NULL), 0);
	CU_ASSERT_EQUAL(amqp_array_validate((struct amqp_bytes){one, 0}, NULL), 0);
	amqp_table_iter_init(&it, (struct amqp_bytes){one, 0});
	CU_ASSERT_EQUAL(amqp_table_next(&it, &key, &v), 0);
	/* A lone zero octet is an empty key with no value. */
	struct amqp_err err;
	check_err(validate(one, 1, true, &err), &err, AMQP_FRAME_ERROR);
}

/* ---- encoder errors ------------------------------------------------------ */

static void test_encode_bad_key(void)
{
	static const struct amqp_table_entry ok_e[] = {{LIT(S255), {.type = 'V'}}};
	static const struct amqp_table_entry bad_e[] = {{LIT(S255 "x"), {.type = 'V'}}};
	static const struct amqp_table bad = TABLE(bad_e);
	static const struct amqp_table_entry nested_e[] = {{LIT("k"), FT(&bad)}};
	static const struct amqp_field_value arr_v[] = {FT(&bad)};
	static const struct amqp_array arr = TABLE(arr_v);
	static const struct amqp_table_entry in_arr_e[] = {{LIT("k"), FA(&arr)}};
	static const struct amqp_table_entry type_e[] = {{LIT("k"), {.type = 'Z'}}};
	static const struct amqp_table_entry long_val_e[] = {{LIT("k"), FV('S', str, LIT(S300))}};
	static const struct {
		struct amqp_table t;
		bool ok;
	} cases[] = {
	    {TABLE(ok_e), true},      {TABLE(bad_e), false},  {TABLE(nested_e), false},
	    {TABLE(in_arr_e), false}, {TABLE(type_e), false}, {TABLE(long_val_e), true},
	};
	uint8_t buf[1024];
	struct amqp_wr w;

	for (size_t i = 0; i < N_ELEMS(cases); i++) {
		amqp_wr_init(&w, buf, sizeof(buf));
		amqp_table_encode_contents(&w, &cases[i].t);
		CHECKF(amqp_wr_ok(&w) == cases[i].ok, "case %zu: ok %d", i, amqp_wr_ok(&w));
		CHECKF(w.bad == !cases[i].ok, "case %zu: bad %d", i, w.bad);
		CHECKF(w.len <= sizeof(buf), "case %zu: len %zu", i, w.len);
	}
}

static void test_encode_small_buffer(void)
{
	uint8_t ref[1024], buf[1024 + 16];
	size_t need = encode_contents(&top, ref, sizeof(ref));
	struct amqp_wr w;

	CU_ASSERT_FATAL(need + 16 <= sizeof(buf));
	/* Every too-small capacity: needed length reported, nothing past cap. */
	for (size_t cap = 0; cap < need; cap++) {
		memset(buf, 0xa5, sizeof(buf));
		amqp_wr_init(&w, buf, cap);
		amqp_table_encode_contents(&w, &top);
		CHECKF(w.len == need && !amqp_wr_ok(&w), "cap %zu: len %zu ok %d", cap, w.len,
		       amqp_wr_ok(&w));
		size_t dirty = 0;
		for (size_t i = cap; i < sizeof(buf); i++)
			dirty += buf[i] != 0xa5;
		CHECKF(dirty == 0, "cap %zu: %zu bytes written past the end", cap, dirty);
	}

	/* Size query with no buffer, then exactly that size in a heap block. */
	amqp_wr_init(&w, NULL, 0);
	amqp_table_encode(&w, &top);
	CU_ASSERT_FALSE(amqp_wr_ok(&w));
	CU_ASSERT_EQUAL_FATAL(w.len, need + 4);
	uint8_t *p = malloc(w.len);
	CU_ASSERT_PTR_NOT_NULL_FATAL(p);
	amqp_wr_init(&w, p, need + 4);
	amqp_table_encode(&w, &top);
	CU_ASSERT_TRUE(amqp_wr_ok(&w));
	CU_ASSERT_EQUAL(w.len, need + 4);
	CU_ASSERT_EQUAL(p[3], (uint8_t)need);
	CU_ASSERT_EQUAL(memcmp(p + 4, ref, need), 0);
	free(p);
}

void suite_table(void)
{
	TEST_SUITE("table", TEST(test_scalar_roundtrip), TEST(test_bool_nonzero), TEST(test_get),
	           TEST(test_get_int), TEST(test_nested_roundtrip), TEST(test_exact_bytes),
	           TEST(test_exact_table_encode), TEST(test_truncated_scalars),
	           TEST(test_truncated_nested), TEST(test_truncated_array), TEST(test_unknown_type),
	           TEST(test_length_overrun), TEST(test_depth), TEST(test_max_entries),
	           TEST(test_empty_input), TEST(test_encode_bad_key),
	           TEST(test_encode_small_buffer));
}
