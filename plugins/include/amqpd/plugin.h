/*
 * amqpd/plugin.h - the amqpd plugin ABI, version 2: entry point,
 * descriptor, status codes, opaque handles and the host API.
 *
 * A plugin is a shared object exporting exactly one symbol,
 * AMQPD_PLUGIN_ENTRY_SYMBOL ("amqpd_plugin_entry"), of type
 * amqpd_plugin_entry_fn.  The host calls it with the range of ABI versions
 * it offers; the plugin picks one it speaks (writes it to *chosen) and
 * returns its descriptor, or returns NULL if it speaks none of them.
 * AMQPD_PLUGIN_DEFINE() below writes the entry point and the descriptor.
 *
 * The host then calls desc->init with the plugin's context, the host API
 * table and the plugin's options (`amqpd --plugin-opt NAME.KEY=VALUE`).
 * init registers what the plugin provides (exchange types, amqpd/exchange.h;
 * storage backends, amqpd/storage.h; SASL mechanisms and user backends,
 * amqpd/auth.h) and may return a userdata pointer:
 * the host passes it as the first argument of every callback of that
 * plugin (exchange-type and storage callbacks, timers, run_on_loop calls)
 * and to fini.  No callback runs before init has returned.
 *
 * Status: every callback that can fail returns an amqpd_status (below):
 * AMQPD_OK, an error (negative; carries an AMQP reply code or an errno),
 * AMQPD_PENDING (the answer comes later through host->complete) or
 * AMQPD_DECLINED (ask the next plugin of the same kind).  Each callback's
 * comment says which of these it may return; anything else is treated as
 * AMQPD_ERR_INTERNAL and logged.  Teardown callbacks (fini, destroy,
 * unbind, stop, queue_close) cannot fail and return void.
 *
 * Stability rules: every struct crossing the ABI starts with
 * `uint32_t struct_size` (except the frozen array elements amqpd_option
 * and amqpd_iov) and, within a major ABI version, only ever grows at the
 * end; a reader copies min(struct_size, sizeof) and zero-fills the rest,
 * so a member the other side does not know about reads as 0 / NULL.
 * Enum and status values are frozen.  Members are never repurposed; new
 * ones are appended (test for host functions with AMQPD_HOST_HAS).  A new
 * major version (a changed signature) gets a new version number; the host
 * keeps speaking the old ones (version 1 plugins, built against the
 * version 1 headers, still load: the host adapts their callbacks).
 *
 * Ownership: what the host passes in (strings, tables, bindings, options)
 * is borrowed for the duration of the call; copy what you keep.  What a
 * plugin registers (vtables, names) is copied by the host.  Handles are
 * opaque: amqpd_plugin, amqpd_dest, amqpd_timer and amqpd_request belong
 * to the host; amqpd_exchange_state, amqpd_store and amqpd_store_queue
 * are the plugin's own structs (define them in your source), which the
 * host only stores and passes back.
 *
 * Threading: every callback is invoked on the broker's event-loop thread,
 * and every host function must be called from it, except those marked
 * "any thread" (run_on_loop, complete, the allocator, log/vlog).  A plugin
 * may run threads of its own; they hand results back with run_on_loop or
 * complete.  No libevent, OpenSSL or Jansson type appears in these headers.
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

/* The oldest ABI version a host built from these headers speaks, and the
 * version these headers describe. */
#define AMQPD_ABI_VERSION_MIN 1
#define AMQPD_ABI_VERSION     2

#define AMQPD_PLUGIN_ENTRY_SYMBOL "amqpd_plugin_entry"

/* Plugins are built with -fvisibility=hidden; this exports the entry. */
#define AMQPD_PLUGIN_EXPORT __attribute__((visibility("default")))

/* ------------------------------------------------------------ status */

/*
 * The result of a call.  Encoding (frozen):
 *    0  AMQPD_OK        done
 *    1  AMQPD_PENDING   accepted; the result comes later: the plugin calls
 *                       host->complete(self, req, status) exactly once,
 *                       from any thread (only calls given an amqpd_request)
 *    2  AMQPD_DECLINED  not mine: the host asks the next plugin of the
 *                       same kind (see each callback)
 *   -300 .. -999        an AMQP error: AMQPD_ERR_REPLY(406) is -406, "406
 *                       PRECONDITION_FAILED"; the host sends that reply code
 *   <= -1000            a system error: AMQPD_ERR_ERRNO(ENOSPC) is
 *                       -(1000 + ENOSPC); the host reports strerror(errno)
 *                       and, where a client must be told, 541 INTERNAL_ERROR
 * Test with AMQPD_IS_ERROR(); decode with amqpd_status_reply_code() and
 * amqpd_status_errno().
 */
typedef enum amqpd_status {
	AMQPD_OK = 0,
	AMQPD_PENDING = 1,
	AMQPD_DECLINED = 2,
	AMQPD_ERR_NOT_FOUND = -404,           /* 404 NOT_FOUND */
	AMQPD_ERR_PRECONDITION_FAILED = -406, /* 406 PRECONDITION_FAILED */
	AMQPD_ERR_NOT_ALLOWED = -530,         /* 530 NOT_ALLOWED */
	AMQPD_ERR_NOT_IMPLEMENTED = -540,     /* 540 NOT_IMPLEMENTED */
	AMQPD_ERR_INTERNAL = -541,            /* 541 INTERNAL_ERROR */
	AMQPD_ERR_ERRNO_BASE = -1000,         /* AMQPD_ERR_ERRNO(e) = base - e */
} amqpd_status;

#define AMQPD_ERR_REPLY(code) ((amqpd_status)(-(int)(code)))
#define AMQPD_ERR_ERRNO(e)    ((amqpd_status)((int)AMQPD_ERR_ERRNO_BASE - (int)(e)))
#define AMQPD_IS_ERROR(s)     ((int)(s) < 0)

/* The AMQP reply code of an error: the code itself for AMQP errors, 541
 * for system errors, 0 for a status that is not an error. */
static inline uint16_t amqpd_status_reply_code(amqpd_status s)
{
	if ((int)s >= 0)
		return 0;
	if ((int)s > (int)AMQPD_ERR_ERRNO_BASE)
		return (uint16_t)(-(int)s);
	return 541;
}

/* The errno of a system error; 0 for anything else. */
static inline int amqpd_status_errno(amqpd_status s)
{
	return (int)s <= (int)AMQPD_ERR_ERRNO_BASE ? (int)AMQPD_ERR_ERRNO_BASE - (int)s : 0;
}

/* ----------------------------------------------------------- handles */

/* The host's record of one loaded plugin: the context of every host call. */
typedef struct amqpd_plugin amqpd_plugin;
/* A host-owned timer (host->timer_start). */
typedef struct amqpd_timer amqpd_timer;
/* A host-owned pending request: the way back for an AMQPD_PENDING answer. */
typedef struct amqpd_request amqpd_request;

/* Log levels (frozen values). */
enum amqpd_log_level {
	AMQPD_LOG_ERROR = 0,
	AMQPD_LOG_WARNING = 1,
	AMQPD_LOG_INFO = 2,
	AMQPD_LOG_DEBUG = 3,
};

/* One plugin option, KEY=VALUE from `--plugin-opt NAME.KEY=VALUE` (frozen
 * layout; both strings NUL-terminated, borrowed during init). */
struct amqpd_option {
	const char *key;
	const char *value;
};

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
 * One field value, borrowed (same layout in ABI versions 1 and 2).  A
 * plugin passing one to the host to be filled sets struct_size to its own
 * sizeof.  Integers of every width are widened: signed ones into `i`,
 * unsigned ones (and timestamps) into `u`; also `is_integer` and
 * `as_i64`/`fits_i64` make numeric comparisons easy.  Strings and byte
 * arrays: `str`/`len`.  Nested tables: `table`; arrays: `table` holds the
 * raw array contents (iterate with array_next).  Decimal: `u` = value,
 * `decimal_scale` = scale.
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

/* Allocation accounting of one plugin (host->mem_usage). */
struct amqpd_mem_usage {
	uint32_t struct_size;
	uint64_t bytes;      /* live bytes allocated through the host */
	uint64_t blocks;     /* live blocks */
	uint64_t peak_bytes; /* highest `bytes` so far */
};

struct amqpd_exchange_type;  /* amqpd/exchange.h */
struct amqpd_storage_ops;    /* amqpd/storage.h */
struct amqpd_sasl_mechanism; /* amqpd/auth.h */
struct amqpd_auth_backend;   /* amqpd/auth.h */

/* A timer callback: userdata of the plugin, the timer, the start arg. */
typedef void (*amqpd_timer_fn)(void *userdata, amqpd_timer *timer, void *arg);
/* A run_on_loop callback. */
typedef void (*amqpd_loop_fn)(void *userdata, void *arg);

/*
 * Functions the host offers to a plugin.  Passed to init; valid until fini
 * returns.  Every member of version 2 is present in a version 2 host; test
 * members appended later with AMQPD_HOST_HAS(host, member).
 */
struct amqpd_host_api {
	uint32_t struct_size;
	uint32_t abi_version; /* the version negotiated for this plugin */

	/* Log a line tagged with the plugin's name.  Any thread. */
	void (*log)(amqpd_plugin *self, enum amqpd_log_level level, const char *fmt, ...)
	    __attribute__((format(printf, 3, 4)));
	void (*vlog)(amqpd_plugin *self, enum amqpd_log_level level, const char *fmt, va_list ap)
	    __attribute__((format(printf, 3, 0)));

	/* Memory, counted per plugin (mem_usage; logged when the plugin is
	 * unloaded with blocks still live).  Any thread.  Blocks are aligned
	 * as malloc's; free(self, NULL) is allowed; a block must be freed or
	 * reallocated by the plugin that allocated it. */
	void *(*alloc)(amqpd_plugin *self, size_t size);
	void *(*calloc)(amqpd_plugin *self, size_t n, size_t size);
	void *(*realloc)(amqpd_plugin *self, void *ptr, size_t size);
	void (*free)(amqpd_plugin *self, void *ptr);
	/* Fill *out (set out->struct_size first).  AMQPD_OK. */
	amqpd_status (*mem_usage)(amqpd_plugin *self, struct amqpd_mem_usage *out);

	/* Register an exchange type or a storage backend (copied by the host).
	 * AMQPD_OK, or AMQPD_ERR_PRECONDITION_FAILED if it is incomplete or
	 * (storage) its name is taken; an exchange type name may be
	 * registered by several plugins: they are asked in load order, the
	 * next when one returns AMQPD_DECLINED (amqpd/exchange.h). */
	amqpd_status (*register_exchange_type)(amqpd_plugin *self,
	                                       const struct amqpd_exchange_type *type);
	amqpd_status (*register_storage)(amqpd_plugin *self, const struct amqpd_storage_ops *ops);

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

	/* Run fn(userdata, arg) on the loop thread soon, in posting order.
	 * Any thread.  Never drops a call (it waits for room rather than
	 * fail); AMQPD_OK, or AMQPD_ERR_PRECONDITION_FAILED when fn is NULL. */
	amqpd_status (*run_on_loop)(amqpd_plugin *self, amqpd_loop_fn fn, void *arg);

	/* Timers, on the loop thread.  fn(userdata, timer, arg) runs after
	 * delay_ms, then (interval_ms > 0) every interval_ms until cancelled.
	 * NULL when out of memory.  A one-shot timer's handle is valid until
	 * its callback has returned or it is cancelled, a periodic one's until
	 * it is cancelled (also from inside its callback).  timer_cancel:
	 * AMQPD_OK, or AMQPD_ERR_NOT_FOUND for a handle that is not one of this
	 * plugin's live timers.  Timers still live at unload are cancelled. */
	amqpd_timer *(*timer_start)(amqpd_plugin *self, uint64_t delay_ms, uint64_t interval_ms,
	                            amqpd_timer_fn fn, void *arg);
	amqpd_status (*timer_cancel)(amqpd_plugin *self, amqpd_timer *timer);

	/* Answer a request a callback returned AMQPD_PENDING for: status is
	 * AMQPD_OK or an error.  Exactly once per request; any thread; the
	 * host acts on it on the loop thread, never inside this call. */
	void (*complete)(amqpd_plugin *self, amqpd_request *req, amqpd_status status);

	/* Appended to version 2: authentication (amqpd/auth.h).  Register a
	 * SASL mechanism or a user backend (copied by the host): AMQPD_OK, or
	 * AMQPD_ERR_PRECONDITION_FAILED when incomplete or its name is taken.
	 * auth_invalidate: answers this plugin gave may have changed; the
	 * host drops the permission answers it cached.  Loop thread. */
	amqpd_status (*register_sasl_mechanism)(amqpd_plugin *self,
	                                        const struct amqpd_sasl_mechanism *mech);
	amqpd_status (*register_auth_backend)(amqpd_plugin *self,
	                                      const struct amqpd_auth_backend *backend);
	void (*auth_invalidate)(amqpd_plugin *self);
};

/*
 * True when the host table has member `m` (it is inside the table the host
 * gave, by struct_size, and set).  For members appended after version 2.
 */
#define AMQPD_HOST_HAS(api, m)                                                                     \
	((api) != NULL &&                                                                          \
	 (api)->struct_size >= offsetof(struct amqpd_host_api, m) + sizeof((api)->m) &&            \
	 (api)->m != NULL)

/*
 * What a plugin returns from its entry point.
 *
 * init: register what the plugin provides, parse opts[0..nopts) (reject
 * what you do not know: write why into err and return an error; the host
 * logs it and the broker does not start) and set *userdata.  AMQPD_OK or an
 * error.  fini: optional; called at shutdown after everything the plugin
 * registered is gone and its timers are cancelled.
 */
struct amqpd_plugin_desc {
	uint32_t struct_size;
	const char *name; /* unique, e.g. "exchange-topic"; no '.' or '=' */
	const char *version;
	const char *description;
	amqpd_status (*init)(amqpd_plugin *self, const struct amqpd_host_api *host,
	                     const struct amqpd_option *opts, size_t nopts, void **userdata,
	                     char *err, size_t errlen);
	void (*fini)(amqpd_plugin *self, void *userdata);
};

/*
 * For a plugin that takes no options: AMQPD_OK when there are none, else an
 * error naming the first one (return it from init).
 */
static inline amqpd_status amqpd_no_options(const struct amqpd_option *opts, size_t nopts,
                                            char *err, size_t errlen)
{
	if (nopts == 0)
		return AMQPD_OK;
	if (err && errlen) {
		/* snprintf-free: a header must not require <stdio.h> */
		const char *a = "unknown option '", *k = opts[0].key ? opts[0].key : "";
		const char *z = "' (this plugin takes no options)";
		size_t n = 0;
		for (const char *parts[3] = {a, k, z}, **pp = parts; pp < parts + 3; pp++)
			for (const char *c = *pp; *c && n + 1 < errlen; c++)
				err[n++] = *c;
		err[n] = 0;
	}
	return AMQPD_ERR_PRECONDITION_FAILED;
}

/*
 * The one exported symbol (the same in every ABI version).  host_min ..
 * host_max: ABI versions the host can speak.  Write the chosen version to
 * *chosen and return the descriptor, or return NULL when no version in the
 * range is supported.
 */
typedef const struct amqpd_plugin_desc *(*amqpd_plugin_entry_fn)(uint32_t host_min,
                                                                 uint32_t host_max,
                                                                 uint32_t *chosen);

/*
 * The descriptor and the entry point, speaking version AMQPD_ABI_VERSION:
 *
 *   AMQPD_PLUGIN_DEFINE("exchange-x", "1.0", "what it does", x_init, x_fini);
 *
 * fini may be NULL.  Use once per plugin, at file scope.
 */
#define AMQPD_PLUGIN_DEFINE(NAME, VERSION, DESCRIPTION, INIT, FINI)                                \
	static const struct amqpd_plugin_desc amqpd_plugin_desc_ = {                               \
	    sizeof(struct amqpd_plugin_desc), NAME, VERSION, DESCRIPTION, INIT, FINI};             \
	AMQPD_PLUGIN_EXPORT const struct amqpd_plugin_desc *amqpd_plugin_entry(                    \
	    uint32_t host_min, uint32_t host_max, uint32_t *chosen);                               \
	const struct amqpd_plugin_desc *amqpd_plugin_entry(uint32_t host_min, uint32_t host_max,   \
	                                                   uint32_t *chosen)                       \
	{                                                                                          \
		if (host_min > AMQPD_ABI_VERSION || host_max < AMQPD_ABI_VERSION)                  \
			return NULL;                                                               \
		if (chosen)                                                                        \
			*chosen = AMQPD_ABI_VERSION;                                               \
		return &amqpd_plugin_desc_;                                                        \
	}                                                                                          \
	typedef int amqpd_plugin_define_needs_a_semicolon_

#ifdef __cplusplus
}
#endif

#endif
