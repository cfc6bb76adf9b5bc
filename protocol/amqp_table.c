/*
 * amqp_table.c - field table and array validation, iteration and encoding.
 */
#include "amqp_table.h"

#include "amqp_gen.h"

#define TRUNC "FRAME_ERROR - field table truncated"

static int validate_value(struct amqp_rd *r, int depth, struct amqp_err *err);

static int validate_entries(struct amqp_bytes raw, bool keyed, int depth, struct amqp_err *err)
{
	struct amqp_rd r = {raw.ptr, raw.ptr + raw.len};
	size_t count = 0;

	if (depth > AMQP_TABLE_MAX_DEPTH)
		return amqp_fail(err, AMQP_SYNTAX_ERROR,
		                 "SYNTAX_ERROR - field table nested too deep");
	while (amqp_rd_left(&r) > 0) {
		if (++count > AMQP_TABLE_MAX_ENTRIES)
			return amqp_fail(err, AMQP_SYNTAX_ERROR,
			                 "SYNTAX_ERROR - too many entries in field table");
		if (keyed) {
			struct amqp_bytes key;
			if (!amqp_rd_shortstr(&r, &key))
				return amqp_fail(err, AMQP_FRAME_ERROR, TRUNC);
		}
		int rc = validate_value(&r, depth, err);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* Size in bytes of a fixed-size value of type t, or -1 if not fixed. */
static int fixed_size(uint8_t t)
{
	switch (t) {
	case 't':
	case 'b':
	case 'B':
		return 1;
	case 's':
	case 'u':
		return 2;
	case 'I':
	case 'i':
	case 'f':
		return 4;
	case 'D':
		return 5;
	case 'l':
	case 'L':
	case 'd':
	case 'T':
		return 8;
	case 'V':
		return 0;
	default:
		return -1;
	}
}

static int validate_value(struct amqp_rd *r, int depth, struct amqp_err *err)
{
	uint8_t t;
	struct amqp_bytes b;

	if (!amqp_rd_u8(r, &t))
		return amqp_fail(err, AMQP_FRAME_ERROR, TRUNC);
	int fs = fixed_size(t);
	if (fs >= 0) {
		if (!amqp_rd_bytes(r, (size_t)fs, &b))
			return amqp_fail(err, AMQP_FRAME_ERROR, TRUNC);
		return 0;
	}
	switch (t) {
	case 'S':
	case 'x':
		if (!amqp_rd_longstr(r, &b))
			return amqp_fail(err, AMQP_FRAME_ERROR, TRUNC);
		return 0;
	case 'F':
	case 'A':
		if (!amqp_rd_longstr(r, &b))
			return amqp_fail(err, AMQP_FRAME_ERROR, TRUNC);
		return validate_entries(b, t == 'F', depth + 1, err);
	default:
		return amqp_fail(err, AMQP_SYNTAX_ERROR,
		                 "SYNTAX_ERROR - unknown field table value type");
	}
}

int amqp_table_validate(struct amqp_bytes raw, struct amqp_err *err)
{
	return validate_entries(raw, true, 1, err);
}

int amqp_array_validate(struct amqp_bytes raw, struct amqp_err *err)
{
	return validate_entries(raw, false, 1, err);
}

void amqp_table_iter_init(struct amqp_table_iter *it, struct amqp_bytes raw)
{
	it->r.p = raw.ptr;
	it->r.end = raw.ptr + raw.len;
}

/* Decode one value; bounds are checked again so iteration of unvalidated
 * input fails cleanly instead of reading past the end. */
static int read_value(struct amqp_rd *r, struct amqp_field_value *v)
{
	uint8_t t, u8 = 0;
	uint16_t u16 = 0;
	uint32_t u32 = 0;
	uint64_t u64 = 0;
	bool ok;

	if (!amqp_rd_u8(r, &t))
		return -AMQP_FRAME_ERROR;
	v->type = t;
	switch (t) {
	case 't':
		ok = amqp_rd_u8(r, &u8);
		v->v.b = u8 != 0;
		break;
	case 'b':
		ok = amqp_rd_u8(r, &u8);
		v->v.i8 = (int8_t)u8;
		break;
	case 'B':
		ok = amqp_rd_u8(r, &v->v.u8);
		break;
	case 's':
		ok = amqp_rd_u16(r, &u16);
		v->v.i16 = (int16_t)u16;
		break;
	case 'u':
		ok = amqp_rd_u16(r, &v->v.u16);
		break;
	case 'I':
		ok = amqp_rd_u32(r, &u32);
		v->v.i32 = (int32_t)u32;
		break;
	case 'i':
		ok = amqp_rd_u32(r, &v->v.u32);
		break;
	case 'l':
		ok = amqp_rd_u64(r, &u64);
		v->v.i64 = (int64_t)u64;
		break;
	case 'L':
	case 'T':
		ok = amqp_rd_u64(r, &v->v.u64);
		break;
	case 'f':
		ok = amqp_rd_u32(r, &u32);
		memcpy(&v->v.f, &u32, sizeof(float));
		break;
	case 'd':
		ok = amqp_rd_u64(r, &u64);
		memcpy(&v->v.d, &u64, sizeof(double));
		break;
	case 'D':
		ok = amqp_rd_u8(r, &v->v.dec.scale) && amqp_rd_u32(r, &v->v.dec.value);
		break;
	case 'S':
	case 'x':
		ok = amqp_rd_longstr(r, &v->v.str);
		break;
	case 'F':
		ok = amqp_rd_longstr(r, &v->v.table.raw);
		v->v.table.built = NULL;
		break;
	case 'A':
		ok = amqp_rd_longstr(r, &v->v.array.raw);
		v->v.array.built = NULL;
		break;
	case 'V':
		ok = true;
		break;
	default:
		return -AMQP_SYNTAX_ERROR;
	}
	return ok ? 1 : -AMQP_FRAME_ERROR;
}

int amqp_table_next(struct amqp_table_iter *it, struct amqp_bytes *key,
                    struct amqp_field_value *val)
{
	if (amqp_rd_left(&it->r) == 0)
		return 0;
	if (!amqp_rd_shortstr(&it->r, key))
		return -AMQP_FRAME_ERROR;
	return read_value(&it->r, val);
}

int amqp_array_next(struct amqp_table_iter *it, struct amqp_field_value *val)
{
	if (amqp_rd_left(&it->r) == 0)
		return 0;
	return read_value(&it->r, val);
}

bool amqp_table_get(struct amqp_bytes raw, const char *key, struct amqp_field_value *val)
{
	struct amqp_table_iter it;
	struct amqp_bytes k;

	amqp_table_iter_init(&it, raw);
	while (amqp_table_next(&it, &k, val) > 0) {
		if (amqp_bytes_eq_cstr(k, key))
			return true;
	}
	return false;
}

/* Encode a nested table/array: u32 length placeholder, contents, patch. */
static void encode_nested(struct amqp_wr *w, const struct amqp_table *t, const struct amqp_array *a)
{
	size_t at = w->len;
	amqp_wr_u32(w, 0);
	if (t)
		amqp_table_encode_contents(w, t);
	else
		amqp_array_encode_contents(w, a);
	size_t n = w->len - at - 4;
	if (n > UINT32_MAX)
		w->bad = true;
	amqp_wr_patch_u32(w, at, (uint32_t)n);
}

void amqp_field_value_encode(struct amqp_wr *w, const struct amqp_field_value *v)
{
	uint32_t u32 = 0;
	uint64_t u64 = 0;

	amqp_wr_u8(w, v->type);
	switch (v->type) {
	case 't':
		amqp_wr_u8(w, v->v.b ? 1 : 0);
		break;
	case 'b':
		amqp_wr_u8(w, (uint8_t)v->v.i8);
		break;
	case 'B':
		amqp_wr_u8(w, v->v.u8);
		break;
	case 's':
		amqp_wr_u16(w, (uint16_t)v->v.i16);
		break;
	case 'u':
		amqp_wr_u16(w, v->v.u16);
		break;
	case 'I':
		amqp_wr_u32(w, (uint32_t)v->v.i32);
		break;
	case 'i':
		amqp_wr_u32(w, v->v.u32);
		break;
	case 'l':
		amqp_wr_u64(w, (uint64_t)v->v.i64);
		break;
	case 'L':
	case 'T':
		amqp_wr_u64(w, v->v.u64);
		break;
	case 'f':
		memcpy(&u32, &v->v.f, sizeof(float));
		amqp_wr_u32(w, u32);
		break;
	case 'd':
		memcpy(&u64, &v->v.d, sizeof(double));
		amqp_wr_u64(w, u64);
		break;
	case 'D':
		amqp_wr_u8(w, v->v.dec.scale);
		amqp_wr_u32(w, v->v.dec.value);
		break;
	case 'S':
	case 'x':
		amqp_wr_longstr(w, v->v.str);
		break;
	case 'F':
		if (v->v.table.built)
			encode_nested(w, v->v.table.built, NULL);
		else
			amqp_wr_longstr(w, v->v.table.raw);
		break;
	case 'A':
		if (v->v.array.built)
			encode_nested(w, NULL, v->v.array.built);
		else
			amqp_wr_longstr(w, v->v.array.raw);
		break;
	case 'V':
		break;
	default:
		w->bad = true; /* not a type RabbitMQ accepts */
		break;
	}
}

void amqp_table_encode_contents(struct amqp_wr *w, const struct amqp_table *t)
{
	for (size_t i = 0; t && i < t->n; i++) {
		amqp_wr_shortstr(w, t->entries[i].key);
		amqp_field_value_encode(w, &t->entries[i].value);
	}
}

void amqp_table_encode(struct amqp_wr *w, const struct amqp_table *t)
{
	encode_nested(w, t, NULL);
}

void amqp_array_encode_contents(struct amqp_wr *w, const struct amqp_array *a)
{
	for (size_t i = 0; a && i < a->n; i++)
		amqp_field_value_encode(w, &a->items[i]);
}

bool amqp_table_get_int(struct amqp_bytes raw, const char *key, int64_t *out)
{
	struct amqp_field_value v;
	if (!amqp_table_get(raw, key, &v))
		return false;
	switch (v.type) {
	case 'b':
		*out = v.v.i8;
		return true;
	case 'B':
		*out = v.v.u8;
		return true;
	case 's':
		*out = v.v.i16;
		return true;
	case 'u':
		*out = v.v.u16;
		return true;
	case 'I':
		*out = v.v.i32;
		return true;
	case 'i':
		*out = v.v.u32;
		return true;
	case 'l':
		*out = v.v.i64;
		return true;
	default:
		return false;
	}
}
