/*
 * amqpd/plugin.h - the amqpd plugin ABI: entry point, descriptor, host API.
 *
 * A plugin is a shared object exporting exactly one symbol,
 * AMQPD_PLUGIN_ENTRY_SYMBOL ("amqpd_plugin_entry"), of type
 * amqpd_plugin_entry_fn.  The host calls it with the range of ABI versions
 * it offers; the plugin picks one it speaks (writes it to *chosen) and
 * returns its descriptor, or returns NULL if it speaks none of them.  The
 * host then calls desc->init with an opaque handle for the plugin and the
 * host API table; init registers what the plugin provides (exchange types,
 * see amqpd/exchange.h).
 *
 * Stability rules: every struct crossing the ABI starts with
 * `uint32_t struct_size` and only ever grows at the end; a reader copies
 * min(struct_size, sizeof) and zero-fills the rest.  Enum values are frozen.
 * Members are never repurposed; new ones are appended.
 *
 * Threading: unless a function says otherwise, every callback is invoked on
 * the broker's event-loop thread, and every host function must be called
 * from it.  Plugins see only opaque handles, never broker structs, and no
 * libevent, OpenSSL or Jansson type appears in these headers.
 */
#ifndef AMQPD_PLUGIN_H
#define AMQPD_PLUGIN_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ABI versions this header describes. */
#define AMQPD_ABI_VERSION_MIN 1
#define AMQPD_ABI_VERSION     1

#define AMQPD_PLUGIN_ENTRY_SYMBOL "amqpd_plugin_entry"

/* Plugins are built with -fvisibility=hidden; this exports the entry. */
#define AMQPD_PLUGIN_EXPORT __attribute__((visibility("default")))

/* Log levels (frozen values). */
enum amqpd_log_level {
	AMQPD_LOG_ERROR = 0,
	AMQPD_LOG_WARNING = 1,
	AMQPD_LOG_INFO = 2,
	AMQPD_LOG_DEBUG = 3,
};

/* Opaque: the host's record of one loaded plugin. */
typedef struct amqpd_plugin amqpd_plugin;

/*
 * A borrowed AMQP field table: the raw encoded contents (the bytes after the
 * 4-byte length), already validated by the host.  Valid only during the
 * callback it was passed to unless the callback copies it.
 */
struct amqpd_table_view {
	const uint8_t *data;
	size_t len;
};

/* Value types (frozen; same letters as on the AMQP wire). */
enum amqpd_value_type {
	AMQPD_VALUE_BOOL = 't',
	AMQPD_VALUE_I8 = 'b',
	AMQPD_VALUE_U8 = 'B',
	AMQPD_VALUE_I16 = 's',
	AMQPD_VALUE_U16 = 'u',
	AMQPD_VALUE_I32 = 'I',
	AMQPD_VALUE_U32 = 'i',
	AMQPD_VALUE_I64 = 'l',
	AMQPD_VALUE_U64 = 'L',
	AMQPD_VALUE_FLOAT = 'f',
	AMQPD_VALUE_DOUBLE = 'd',
	AMQPD_VALUE_DECIMAL = 'D',
	AMQPD_VALUE_LONGSTR = 'S',
	AMQPD_VALUE_BYTES = 'x',
	AMQPD_VALUE_ARRAY = 'A',
	AMQPD_VALUE_TIMESTAMP = 'T',
	AMQPD_VALUE_TABLE = 'F',
	AMQPD_VALUE_VOID = 'V',
};

/*
 * One field value, borrowed.  A plugin passing one to the host to be
 * filled sets struct_size to its own sizeof: ABI version 1 hosts fill the
 * whole version-1 struct; later hosts write no more than struct_size.  Integers of every width are
 * widened: signed ones into `i`, unsigned ones (and timestamps) into `u`; also `is_integer` and
 * `as_i64`/`fits_i64` make numeric comparisons easy.  Strings and byte arrays: `str`/`len`.  Nested
 * tables: `table`; arrays: `table` holds the raw array contents (iterate with array_next). Decimal:
 * `u` = value, `decimal_scale` = scale.
 */
struct amqpd_value {
	uint32_t struct_size;
	uint8_t type; /* enum amqpd_value_type */
	bool is_integer;
	bool fits_i64;  /* as_i64 holds the exact value */
	int64_t as_i64; /* integers only */
	int64_t i;
	uint64_t u;
	double d; /* float and double */
	bool b;
	uint8_t decimal_scale;
	const uint8_t *str;
	size_t len;
	struct amqpd_table_view table;
};

/* Iterator over a table or array view. */
struct amqpd_table_iter {
	const uint8_t *p;
	const uint8_t *end;
};

struct amqpd_exchange_type; /* amqpd/exchange.h */
struct amqpd_storage_ops;   /* amqpd/storage.h */

/*
 * Functions the host offers to a plugin.  Passed to init; valid until fini
 * returns.  Check struct_size before using a member added after version 1.
 */
struct amqpd_host_api {
	uint32_t struct_size;
	uint32_t abi_version; /* the version negotiated for this plugin */

	/* Memory: the broker's allocator.  free(NULL) is allowed. */
	void *(*alloc)(size_t size);
	void *(*calloc)(size_t n, size_t size);
	void *(*realloc)(void *ptr, size_t size);
	void (*free)(void *ptr);

	/* Log a line, tagged with the plugin's name. */
	void (*log)(amqpd_plugin *self, enum amqpd_log_level level, const char *fmt, ...)
	    __attribute__((format(printf, 3, 4)));

	/* Register an exchange type (copied by the host; its name must be
	 * unique).  0 on success, -1 if invalid or the name is taken. */
	int (*register_exchange_type)(amqpd_plugin *self, const struct amqpd_exchange_type *type);

	/* Field tables: look a key up (first match); true if found. */
	bool (*table_get)(struct amqpd_table_view table, const char *key, struct amqpd_value *out);
	/* Iterate: 1 = got one (key is NULL for arrays), 0 = end, -1 = malformed. */
	void (*table_iter_init)(struct amqpd_table_iter *it, struct amqpd_table_view table);
	int (*table_next)(struct amqpd_table_iter *it, const uint8_t **key, size_t *key_len,
	                  struct amqpd_value *out);
	int (*array_next)(struct amqpd_table_iter *it, struct amqpd_value *out);
	/* True when two values are equal as RabbitMQ compares header values:
	 * numbers by numeric value whatever their width, strings by bytes,
	 * tables and arrays by their encoding. */
	bool (*value_equal)(const struct amqpd_value *a, const struct amqpd_value *b);

	/* --- added with storage backends (check struct_size) --- */
	/* Register a storage backend (amqpd/storage.h; copied by the host). */
	int (*register_storage)(amqpd_plugin *self, const struct amqpd_storage_ops *ops);
	/* Run fn(arg) on the loop thread soon.  Callable from ANY thread. */
	void (*run_on_loop)(amqpd_plugin *self, void (*fn)(void *arg), void *arg);
};

/* What a plugin returns from its entry point. */
struct amqpd_plugin_desc {
	uint32_t struct_size;
	const char *name; /* unique, e.g. "exchange-topic" */
	const char *version;
	const char *description;
	/* Register what the plugin provides.  0 = ok; non-zero refuses the
	 * plugin and the broker does not start. */
	int (*init)(amqpd_plugin *self, const struct amqpd_host_api *host);
	/* Optional; called at shutdown after everything it registered is gone. */
	void (*fini)(amqpd_plugin *self);
};

/*
 * The one exported symbol.  host_min..host_max: ABI versions the host can
 * speak.  Write the chosen version to *chosen and return the descriptor, or
 * return NULL when no version in the range is supported.
 */
typedef const struct amqpd_plugin_desc *(*amqpd_plugin_entry_fn)(uint32_t host_min,
                                                                 uint32_t host_max,
                                                                 uint32_t *chosen);

#ifdef __cplusplus
}
#endif

#endif
