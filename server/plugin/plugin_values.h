/*
 * plugin_values.h - the host side of the plugin ABI's field-table readers
 * (struct amqpd_host_api: table_get, table_iter_init, table_next,
 * array_next, value_equal), built on protocol/amqp_table.h.
 *
 * Ownership: nothing here allocates or owns memory.  Every struct
 * amqpd_value filled in borrows from the table view it was read from (which
 * the host validated with amqp_table_validate before handing it out), so
 * it is valid only as long as that buffer is.
 *
 * Size: these functions write a whole struct amqpd_value as this header
 * version defines it, so the host must hand them only to plugins that
 * negotiated this ABI version (a later version that grows the struct wraps
 * them per version).
 *
 * Threading: pure functions of their arguments; safe from any thread.
 */
#ifndef AMQPD_PLUGIN_VALUES_H
#define AMQPD_PLUGIN_VALUES_H

#include <stdbool.h>

#include "amqp_table.h"
#include "amqpd/plugin.h"

/* Convert one decoded codec value into the ABI form (borrowing). */
void plugin_value_from_field(const struct amqp_field_value *f, struct amqpd_value *out);

/* Look `key` up (first match); true and fills *out if found. */
bool plugin_table_get(struct amqpd_table_view table, const char *key, struct amqpd_value *out);

void plugin_table_iter_init(struct amqpd_table_iter *it, struct amqpd_table_view table);
/* 1 = got an entry, 0 = end, -1 = malformed.  key/key_len may be NULL. */
int plugin_table_next(struct amqpd_table_iter *it, const uint8_t **key, size_t *key_len,
                      struct amqpd_value *out);
int plugin_array_next(struct amqpd_table_iter *it, struct amqpd_value *out);

/*
 * RabbitMQ's header equality (Erlang ==): integers of any width, timestamps
 * and floats compare by exact numeric value; longstr and byte arrays by
 * bytes (either type); booleans; void equals void; decimals by scale and
 * value; tables and arrays by their encoding.  Anything else is unequal.
 */
bool plugin_value_equal(const struct amqpd_value *a, const struct amqpd_value *b);

#endif
