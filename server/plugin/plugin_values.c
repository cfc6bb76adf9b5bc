/*
 * plugin_values.c - field-table readers and RabbitMQ-style value equality
 * offered to plugins through struct amqpd_host_api.
 *
 * Pure and allocation-free: values borrow from the (host-validated) table
 * bytes they were read from.  Thread-safe.  See plugin_values.h.
 */
#include "plugin/plugin_values.h"

#include <string.h>

static void set_signed(struct amqpd_value *out, int64_t v)
{
	out->is_integer = true;
	out->fits_i64 = true;
	out->as_i64 = v;
	out->i = v;
}

static void set_unsigned(struct amqpd_value *out, uint64_t v)
{
	out->is_integer = true;
	out->fits_i64 = v <= (uint64_t)INT64_MAX;
	out->as_i64 = out->fits_i64 ? (int64_t)v : 0;
	out->u = v;
}

void plugin_value_from_field(const struct amqp_field_value *f, struct amqpd_value *out)
{
	memset(out, 0, sizeof(*out));
	out->struct_size = sizeof(*out);
	out->type = f->type;
	switch (f->type) {
	case AMQP_FIELD_BOOL:
		out->b = f->v.b;
		break;
	case AMQP_FIELD_I8:
		set_signed(out, f->v.i8);
		break;
	case AMQP_FIELD_I16:
		set_signed(out, f->v.i16);
		break;
	case AMQP_FIELD_I32:
		set_signed(out, f->v.i32);
		break;
	case AMQP_FIELD_I64:
		set_signed(out, f->v.i64);
		break;
	case AMQP_FIELD_U8:
		set_unsigned(out, f->v.u8);
		break;
	case AMQP_FIELD_U16:
		set_unsigned(out, f->v.u16);
		break;
	case AMQP_FIELD_U32:
		set_unsigned(out, f->v.u32);
		break;
	case AMQP_FIELD_U64:
	case AMQP_FIELD_TIMESTAMP:
		/* RabbitMQ decodes a timestamp to a plain integer, so it compares
		 * equal to the same number of any integer type. */
		set_unsigned(out, f->v.u64);
		break;
	case AMQP_FIELD_FLOAT:
		out->d = f->v.f;
		break;
	case AMQP_FIELD_DOUBLE:
		out->d = f->v.d;
		break;
	case AMQP_FIELD_DECIMAL:
		out->u = f->v.dec.value;
		out->decimal_scale = f->v.dec.scale;
		break;
	case AMQP_FIELD_LONGSTR:
	case AMQP_FIELD_BYTES:
		out->str = f->v.str.ptr;
		out->len = f->v.str.len;
		break;
	case AMQP_FIELD_TABLE:
		out->table.data = f->v.table.raw.ptr;
		out->table.len = f->v.table.raw.len;
		break;
	case AMQP_FIELD_ARRAY:
		out->table.data = f->v.array.raw.ptr;
		out->table.len = f->v.array.raw.len;
		break;
	default: /* 'V' and nothing else reach here from a validated table */
		break;
	}
}

static struct amqp_bytes bytes_of(struct amqpd_table_view v)
{
	struct amqp_bytes b = {v.data, v.len};
	return b;
}

bool plugin_table_get(struct amqpd_table_view table, const char *key, struct amqpd_value *out)
{
	struct amqp_field_value f;

	if (!table.data || !amqp_table_get(bytes_of(table), key, &f))
		return false;
	plugin_value_from_field(&f, out);
	return true;
}

void plugin_table_iter_init(struct amqpd_table_iter *it, struct amqpd_table_view table)
{
	it->p = table.data;
	it->end = table.data ? table.data + table.len : NULL;
}

int plugin_table_next(struct amqpd_table_iter *it, const uint8_t **key, size_t *key_len,
                      struct amqpd_value *out)
{
	struct amqp_table_iter ti = {{it->p, it->end}};
	struct amqp_bytes k;
	struct amqp_field_value f;

	if (!it->p)
		return 0;
	int rc = amqp_table_next(&ti, &k, &f);
	if (rc <= 0)
		return rc < 0 ? -1 : 0;
	it->p = ti.r.p;
	if (key)
		*key = k.ptr;
	if (key_len)
		*key_len = k.len;
	plugin_value_from_field(&f, out);
	return 1;
}

int plugin_array_next(struct amqpd_table_iter *it, struct amqpd_value *out)
{
	struct amqp_table_iter ti = {{it->p, it->end}};
	struct amqp_field_value f;

	if (!it->p)
		return 0;
	int rc = amqp_array_next(&ti, &f);
	if (rc <= 0)
		return rc < 0 ? -1 : 0;
	it->p = ti.r.p;
	plugin_value_from_field(&f, out);
	return 1;
}

static bool is_float(const struct amqpd_value *v)
{
	return v->type == AMQPD_VALUE_FLOAT || v->type == AMQPD_VALUE_DOUBLE;
}

static bool is_string(const struct amqpd_value *v)
{
	return v->type == AMQPD_VALUE_LONGSTR || v->type == AMQPD_VALUE_BYTES;
}

/* Exact integer == double, as Erlang compares 1 == 1.0: only an integral,
 * finite double in the integer's range can be equal. */
static bool int_equals_double(const struct amqpd_value *n, double d)
{
	const double two63 = 9223372036854775808.0;

	if (d != d) /* NaN; infinities fail the range checks below */
		return false;
	if (n->fits_i64) {
		if (d < -two63 || d >= two63)
			return false;
		int64_t t = (int64_t)d;
		return (double)t == d && t == n->as_i64;
	}
	if (d < two63 || d >= 2.0 * two63)
		return false;
	uint64_t t = (uint64_t)d;
	return (double)t == d && t == n->u;
}

bool plugin_value_equal(const struct amqpd_value *a, const struct amqpd_value *b)
{
	if (a->is_integer && b->is_integer) {
		if (a->fits_i64 != b->fits_i64)
			return false; /* one is above INT64_MAX, the other is not */
		return a->fits_i64 ? a->as_i64 == b->as_i64 : a->u == b->u;
	}
	if (a->is_integer && is_float(b))
		return int_equals_double(a, b->d);
	if (is_float(a) && b->is_integer)
		return int_equals_double(b, a->d);
	if (is_float(a) && is_float(b))
		return a->d == b->d;
	if (is_string(a) && is_string(b))
		return a->len == b->len && (a->len == 0 || memcmp(a->str, b->str, a->len) == 0);
	if ((a->type == AMQPD_VALUE_TABLE || a->type == AMQPD_VALUE_ARRAY) &&
	    (b->type == AMQPD_VALUE_TABLE || b->type == AMQPD_VALUE_ARRAY)) {
		/* Both decode to Erlang lists, so an empty table equals an empty
		 * array; otherwise the kinds differ and so do the lists. */
		if (a->table.len == 0 && b->table.len == 0)
			return true;
		return a->type == b->type && a->table.len == b->table.len &&
		       memcmp(a->table.data, b->table.data, a->table.len) == 0;
	}
	if (a->type != b->type)
		return false;
	switch (a->type) {
	case AMQPD_VALUE_BOOL:
		return a->b == b->b;
	case AMQPD_VALUE_VOID:
		return true;
	case AMQPD_VALUE_DECIMAL:
		return a->decimal_scale == b->decimal_scale && a->u == b->u;
	default:
		return false;
	}
}
