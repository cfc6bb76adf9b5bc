/*
 * plugin_v1.h - the host's private copy of the ABI version 1 layouts that
 * differ from version 2, renamed amqpd_v1_*, and the adapters that let a
 * v1 plugin run in a v2 host (plugin_v1.c).
 *
 * These mirror the headers in tests/abi-v1/amqpd member for member and are frozen
 * like them (tests/unit/test_abi_v1_layout.c compares sizes and offsets).
 * Types whose layout did not change (amqpd_value, amqpd_table_view,
 * amqpd_table_iter, amqpd_stored_msg, amqpd_storage_stats) are shared.
 *
 * Adaptation: a v1 plugin gets a v1 host table (unaccounted malloc, since
 * v1 allocator calls carry no plugin context; log; registration; table
 * readers; run_on_loop).  What it registers is kept as a v1 vtable and
 * wrapped in v2 callbacks whose userdata is the host's record of it; v1
 * int results become amqpd_status (0 -> AMQPD_OK, a reply code -> that
 * AMQP error, -errno -> AMQPD_ERR_ERRNO, other non-zero -> INTERNAL); an
 * append's gather list is joined into one buffer for the v1 call; a v1
 * sync's done(ctx, status) becomes host->complete.
 *
 * Threading: as the host (loop thread, run_on_loop from any thread).
 */
#ifndef PLUGIN_V1_H
#define PLUGIN_V1_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "amqpd/exchange.h"
#include "amqpd/plugin.h"
#include "amqpd/storage.h"

struct plugin_host;

/* ---- version 1 layouts (frozen) ---------------------------------------- */

struct amqpd_v1_exchange_type;
struct amqpd_v1_storage_ops;

struct amqpd_v1_host_api {
	uint32_t struct_size;
	uint32_t abi_version;
	void *(*alloc)(size_t size);
	void *(*calloc)(size_t n, size_t size);
	void *(*realloc)(void *ptr, size_t size);
	void (*free)(void *ptr);
	void (*log)(amqpd_plugin *self, enum amqpd_log_level level, const char *fmt, ...)
	    __attribute__((format(printf, 3, 4)));
	int (*register_exchange_type)(amqpd_plugin *self, const struct amqpd_v1_exchange_type *t);
	bool (*table_get)(struct amqpd_table_view table, const char *key, struct amqpd_value *out);
	void (*table_iter_init)(struct amqpd_table_iter *it, struct amqpd_table_view table);
	int (*table_next)(struct amqpd_table_iter *it, const uint8_t **key, size_t *key_len,
	                  struct amqpd_value *out);
	int (*array_next)(struct amqpd_table_iter *it, struct amqpd_value *out);
	bool (*value_equal)(const struct amqpd_value *a, const struct amqpd_value *b);
	int (*register_storage)(amqpd_plugin *self, const struct amqpd_v1_storage_ops *ops);
	void (*run_on_loop)(amqpd_plugin *self, void (*fn)(void *arg), void *arg);
};

struct amqpd_v1_plugin_desc {
	uint32_t struct_size;
	const char *name;
	const char *version;
	const char *description;
	int (*init)(amqpd_plugin *self, const struct amqpd_v1_host_api *host);
	void (*fini)(amqpd_plugin *self);
};

struct amqpd_v1_binding {
	uint32_t struct_size;
	const void *dest;
	const char *key;
	size_t key_len;
	struct amqpd_table_view args;
};

struct amqpd_v1_route_msg {
	uint32_t struct_size;
	const char *routing_key;
	size_t routing_key_len;
	struct amqpd_table_view headers;
};

typedef void (*amqpd_v1_route_emit_fn)(void *emit_ctx, const void *dest);

struct amqpd_v1_exchange_type {
	uint32_t struct_size;
	const char *name;
	int (*validate)(struct amqpd_table_view args, char *err, size_t errlen);
	int (*create)(void **state, struct amqpd_table_view args);
	void (*destroy)(void *state);
	int (*validate_binding)(void *state, const struct amqpd_v1_binding *b, char *err,
	                        size_t errlen);
	int (*bind)(void *state, const struct amqpd_v1_binding *b);
	void (*unbind)(void *state, const struct amqpd_v1_binding *b);
	void (*route)(void *state, const struct amqpd_v1_route_msg *msg,
	              amqpd_v1_route_emit_fn emit, void *emit_ctx);
};

typedef void (*amqpd_v1_storage_done_fn)(void *ctx, int status);

struct amqpd_v1_storage_ops {
	uint32_t struct_size;
	const char *name;
	int (*start)(void **store, const char *dir, bool *clean, char *err, size_t errlen);
	void (*stop)(void *store, bool clean);
	int (*queue_open)(void *store, const char *qid, amqpd_store_queue **q);
	void (*queue_close)(amqpd_store_queue *q);
	int (*queue_delete)(void *store, const char *qid);
	int (*queue_list)(void *store, void (*fn)(void *ctx, const char *qid), void *ctx);
	int (*recover)(amqpd_store_queue *q, amqpd_stored_msg_fn fn, void *ctx);
	int (*append)(amqpd_store_queue *q, uint64_t seq, const uint8_t *data, size_t len);
	int (*ack)(amqpd_store_queue *q, uint64_t seq);
	int (*delivered)(amqpd_store_queue *q, uint64_t seq);
	int (*read)(amqpd_store_queue *q, uint64_t seq, amqpd_stored_msg_fn fn, void *ctx);
	int (*sync)(void *store, amqpd_v1_storage_done_fn done, void *ctx);
	int (*purge)(amqpd_store_queue *q);
	int (*compact)(void *store);
	int (*stats)(void *store, struct amqpd_storage_stats *out);
};

/* ---- adapters (plugin_v1.c) ------------------------------------------- */

/* The v1 host table for a plugin that negotiated version 1. */
void plugin_v1_fill_api(struct amqpd_v1_host_api *api);

/* A v1 exchange type as the host keeps it: the v2 vtable of adapters
 * (userdata = this record) and the plugin's v1 vtable they call. */
struct v1_xtype {
	struct amqpd_v1_exchange_type vt1;
};
/* Fill *vt with adapters calling rec->vt1 (copied by the caller). */
void plugin_v1_exchange_adapters(struct amqpd_exchange_type *vt);

/* A v1 storage backend as the host keeps it. */
struct v1_storage {
	struct amqpd_v1_storage_ops ops1;
	struct plugin_host *host;
	amqpd_plugin *owner;
	uint8_t *scratch; /* joins an append's gather list; grows to the largest */
	size_t scratch_cap;
};
/* Fill *ops with adapters calling rec->ops1 (NULL where v1 had none). */
void plugin_v1_storage_adapters(const struct v1_storage *rec, struct amqpd_storage_ops *ops);

/* 0 / reply code / -errno from a v1 call as a status. */
amqpd_status plugin_v1_status(int rc);

#endif
