/*
 * amqp_table.h - AMQP field tables and arrays, as RabbitMQ accepts them.
 *
 * Decoding borrows: a table is carried as its raw encoded contents (the bytes
 * after the 4-byte length) in a struct amqp_bytes.  amqp_table_validate()
 * checks such bytes once (types, lengths, nesting depth, element count);
 * after that, iterators walk them without copying or allocating.
 *
 * Encoding writes into a caller-supplied buffer through struct amqp_wr; a
 * table to encode is either a raw view (copied through as is) or a built
 * struct amqp_table of entries the caller owns.
 *
 * Pure, allocation-free and thread-safe.
 */
#ifndef AMQP_TABLE_H
#define AMQP_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "amqp_err.h"
#include "amqp_wire.h"

/* Limits applied when validating untrusted input. */
#define AMQP_TABLE_MAX_DEPTH   32    /* tables/arrays nested inside each other */
#define AMQP_TABLE_MAX_ENTRIES 65536 /* entries in one table or array */

/* Field value type octets, as on the wire (RabbitMQ's set). */
enum amqp_field_type {
	AMQP_FIELD_BOOL = 't',
	AMQP_FIELD_I8 = 'b',
	AMQP_FIELD_U8 = 'B',
	AMQP_FIELD_I16 = 's',
	AMQP_FIELD_U16 = 'u',
	AMQP_FIELD_I32 = 'I',
	AMQP_FIELD_U32 = 'i',
	AMQP_FIELD_I64 = 'l',
	AMQP_FIELD_U64 = 'L',
	AMQP_FIELD_FLOAT = 'f',
	AMQP_FIELD_DOUBLE = 'd',
	AMQP_FIELD_DECIMAL = 'D',
	AMQP_FIELD_LONGSTR = 'S',
	AMQP_FIELD_BYTES = 'x',
	AMQP_FIELD_ARRAY = 'A',
	AMQP_FIELD_TIMESTAMP = 'T',
	AMQP_FIELD_TABLE = 'F',
	AMQP_FIELD_VOID = 'V',
};

struct amqp_table;
struct amqp_array;

struct amqp_decimal {
	uint8_t scale;
	uint32_t value;
};

/*
 * One field value.  For 'F' and 'A', a decoded value has `raw` set (borrowed
 * contents); a value built for encoding may set `built` instead, which then
 * takes precedence.
 */
struct amqp_field_value {
	uint8_t type; /* enum amqp_field_type */
	union {
		bool b;
		int8_t i8;
		uint8_t u8;
		int16_t i16;
		uint16_t u16;
		int32_t i32;
		uint32_t u32;
		int64_t i64;
		uint64_t u64; /* also 'T' */
		float f;
		double d;
		struct amqp_decimal dec;
		struct amqp_bytes str; /* 'S' and 'x' */
		struct {
			struct amqp_bytes raw;
			const struct amqp_table *built;
		} table;
		struct {
			struct amqp_bytes raw;
			const struct amqp_array *built;
		} array;
	} v;
};

struct amqp_table_entry {
	struct amqp_bytes key;
	struct amqp_field_value value;
};

/* A table built by the caller for encoding; the caller owns the entries. */
struct amqp_table {
	const struct amqp_table_entry *entries;
	size_t n;
};

struct amqp_array {
	const struct amqp_field_value *items;
	size_t n;
};

/*
 * Check raw table contents (bytes after the 4-byte length): every key a
 * shortstr, every value a known type whose length fits, depth and counts
 * within the limits above.  0, or -AMQP_FRAME_ERROR (truncated) /
 * -AMQP_SYNTAX_ERROR (unknown type, too deep, too many entries).
 */
int amqp_table_validate(struct amqp_bytes raw, struct amqp_err *err);
int amqp_array_validate(struct amqp_bytes raw, struct amqp_err *err);

/* Iterator over validated raw contents.  Values borrow from the input. */
struct amqp_table_iter {
	struct amqp_rd r;
};

void amqp_table_iter_init(struct amqp_table_iter *it, struct amqp_bytes raw);
/* 1 and fills key/val; 0 at the end; -AMQP_FRAME_ERROR on malformed input. */
int amqp_table_next(struct amqp_table_iter *it, struct amqp_bytes *key,
                    struct amqp_field_value *val);
int amqp_array_next(struct amqp_table_iter *it, struct amqp_field_value *val);

/* Look a key up in validated raw contents; true and fills *val if found. */
bool amqp_table_get(struct amqp_bytes raw, const char *key, struct amqp_field_value *val);
/* An integer entry of any integer type (b B s u I i l); false if the key
 * is missing or holds something else. */
bool amqp_table_get_int(struct amqp_bytes raw, const char *key, int64_t *out);

/* Encode a field value (type octet + value). */
void amqp_field_value_encode(struct amqp_wr *w, const struct amqp_field_value *v);
/* Encode a built table's contents only (no length prefix). */
void amqp_table_encode_contents(struct amqp_wr *w, const struct amqp_table *t);
/* Encode a built table as it appears on the wire (u32 length + contents). */
void amqp_table_encode(struct amqp_wr *w, const struct amqp_table *t);
void amqp_array_encode_contents(struct amqp_wr *w, const struct amqp_array *a);

#endif
