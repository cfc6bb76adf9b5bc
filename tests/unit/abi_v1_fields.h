/*
 * abi_v1_fields.h - every struct and member of plugin ABI version 1 whose
 * layout the host mirrors in server/plugin/plugin_v1.h, as an X-macro list:
 * S(name) for sizeof(struct amqpd_<name>), F(name, member) for its offset.
 * abi_v1_frozen.c expands it against the frozen headers (tests/abi-v1),
 * test_host_abi.c against the host's amqpd_v1_* copies; the test compares
 * the two tables, so the host's copy cannot drift from what v1 plugins
 * were built with.
 */
#define ABI_V1_FIELDS                                                                              \
	S(host_api)                                                                                \
	F(host_api, abi_version)                                                                   \
	F(host_api, alloc)                                                                         \
	F(host_api, calloc)                                                                        \
	F(host_api, realloc)                                                                       \
	F(host_api, free)                                                                          \
	F(host_api, log)                                                                           \
	F(host_api, register_exchange_type)                                                        \
	F(host_api, table_get)                                                                     \
	F(host_api, table_iter_init)                                                               \
	F(host_api, table_next)                                                                    \
	F(host_api, array_next)                                                                    \
	F(host_api, value_equal)                                                                   \
	F(host_api, register_storage)                                                              \
	F(host_api, run_on_loop)                                                                   \
	S(plugin_desc)                                                                             \
	F(plugin_desc, name)                                                                       \
	F(plugin_desc, version)                                                                    \
	F(plugin_desc, description)                                                                \
	F(plugin_desc, init)                                                                       \
	F(plugin_desc, fini)                                                                       \
	S(binding)                                                                                 \
	F(binding, dest)                                                                           \
	F(binding, key)                                                                            \
	F(binding, key_len)                                                                        \
	F(binding, args)                                                                           \
	S(route_msg)                                                                               \
	F(route_msg, routing_key)                                                                  \
	F(route_msg, routing_key_len)                                                              \
	F(route_msg, headers)                                                                      \
	S(exchange_type)                                                                           \
	F(exchange_type, name)                                                                     \
	F(exchange_type, validate)                                                                 \
	F(exchange_type, create)                                                                   \
	F(exchange_type, destroy)                                                                  \
	F(exchange_type, validate_binding)                                                         \
	F(exchange_type, bind)                                                                     \
	F(exchange_type, unbind)                                                                   \
	F(exchange_type, route)                                                                    \
	S(storage_ops)                                                                             \
	F(storage_ops, name)                                                                       \
	F(storage_ops, start)                                                                      \
	F(storage_ops, stop)                                                                       \
	F(storage_ops, queue_open)                                                                 \
	F(storage_ops, queue_close)                                                                \
	F(storage_ops, queue_delete)                                                               \
	F(storage_ops, queue_list)                                                                 \
	F(storage_ops, recover)                                                                    \
	F(storage_ops, append)                                                                     \
	F(storage_ops, ack)                                                                        \
	F(storage_ops, delivered)                                                                  \
	F(storage_ops, read)                                                                       \
	F(storage_ops, sync)                                                                       \
	F(storage_ops, purge)                                                                      \
	F(storage_ops, compact)                                                                    \
	F(storage_ops, stats)

/* The v1 structs the host shares with v2 unchanged (same names). */
#define ABI_V1_SHARED                                                                              \
	S(value)                                                                                   \
	F(value, type)                                                                             \
	F(value, as_i64)                                                                           \
	F(value, u)                                                                                \
	F(value, str)                                                                              \
	F(value, table)                                                                            \
	S(table_view)                                                                              \
	S(table_iter)                                                                              \
	S(stored_msg)                                                                              \
	F(stored_msg, seq)                                                                         \
	F(stored_msg, data)                                                                        \
	F(stored_msg, len)                                                                         \
	F(stored_msg, delivered)                                                                   \
	S(storage_stats)                                                                           \
	F(storage_stats, segments)

struct abi_layout {
	const char *what;
	size_t value;
};

/* abi_v1_frozen.c: the frozen headers' values, in list order. */
extern const struct abi_layout abi_v1_frozen[];
extern const size_t abi_v1_frozen_n;
