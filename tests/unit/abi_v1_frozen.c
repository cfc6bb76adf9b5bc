/*
 * abi_v1_frozen.c - the sizes and offsets of plugin ABI version 1 as the
 * frozen headers in tests/abi-v1 define them (built with only those on the
 * include path); see abi_v1_fields.h.
 */
#include <stddef.h>

#include "amqpd/exchange.h"
#include "amqpd/plugin.h"
#include "amqpd/storage.h"

#include "abi_v1_fields.h"

#define S(s)    {"sizeof " #s, sizeof(struct amqpd_##s)},
#define F(s, m) {#s "." #m, offsetof(struct amqpd_##s, m)},
const struct abi_layout abi_v1_frozen[] = {ABI_V1_FIELDS ABI_V1_SHARED};
#undef S
#undef F
const size_t abi_v1_frozen_n = sizeof(abi_v1_frozen) / sizeof(abi_v1_frozen[0]);
