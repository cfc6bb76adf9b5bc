/*
 * plugin_host.h - loads plugin .so files, keeps what they register, and is
 * the only way the rest of the broker calls into a plugin.
 *
 * Loading: dlopen(RTLD_NOW | RTLD_LOCAL), resolve the one entry symbol,
 * negotiate the ABI version (the host speaks AMQPD_ABI_VERSION_MIN ..
 * AMQPD_ABI_VERSION: 1 and 2), call init with the host API table of that
 * version and, for version 2, the plugin's options.  A plugin with a
 * missing entry symbol, no common ABI version or a failing init is refused
 * with a log line naming the file and the reason, and the load fails (the
 * broker then does not start).  Version 1 plugins are adapted
 * (plugin_v1.h).
 *
 * Options: plugin_host_add_option() before loading; each plugin gets the
 * ones naming it at init; plugin_host_check_options() after loading refuses
 * options for a plugin that is not loaded.
 *
 * Registered vtables are copied (min(struct_size, sizeof), rest
 * zero-filled), so a plugin built against an older, smaller struct works.
 * Calls go through the plugin_xtype_* and plugin_storage_* wrappers below,
 * which pass the plugin's userdata and turn its amqpd_status into what the
 * broker uses (an AMQP reply code, or 0 / -errno).
 *
 * Memory: every allocation a v2 plugin makes through the host is counted
 * per plugin (plugin_host_mem_usage); blocks still live at unload are
 * logged.  Timers belong to the plugin that started them and are cancelled
 * at unload.
 *
 * Threading: loop thread only (the thread that called plugin_host_init),
 * except what the ABI marks "any thread": run_on_loop, complete, the
 * allocator and logging.  Loading happens at start-up.
 */
#ifndef PLUGIN_HOST_H
#define PLUGIN_HOST_H

#include <pthread.h>
#include <stddef.h>

#include "amqpd/exchange.h"
#include "amqpd/plugin.h"
#include "amqpd/storage.h"
#include "plugin/plugin_v1.h"
#include "util/hmap.h"

struct event_base;
struct event;

struct amqpd_plugin {
	struct amqpd_plugin *next;
	struct plugin_host *host;
	void *dl;
	char *path;
	const char *name;               /* d.name or d1.name */
	uint32_t abi;                   /* negotiated: 1 or 2 */
	struct amqpd_plugin_desc d;     /* copied descriptor (ABI 2) */
	struct amqpd_v1_plugin_desc d1; /* copied descriptor (ABI 1) */
	struct amqpd_host_api api;      /* the table handed to init (ABI 2) */
	struct amqpd_v1_host_api api1;  /* (ABI 1) */
	void *userdata;                 /* what init returned (ABI 2) */
	bool inited;                    /* init succeeded: fini is due */
	struct amqpd_timer *timers;     /* live timers, doubly linked */
	/* Allocation accounting (ABI 2); updated atomically, any thread. */
	uint64_t mem_bytes, mem_blocks, mem_peak;
};

/* A registered storage backend.  ud: the userdata its ops get. */
struct storage_backend {
	struct storage_backend *next;
	char *name;
	struct amqpd_storage_ops ops;
	struct amqpd_plugin *owner;
	struct v1_storage *v1; /* ABI 1 backends: the adapted record */
};

/* Callbacks posted with run_on_loop() (or by the host itself: fn1). */
struct loop_call {
	void (*fn1)(void *arg); /* host-internal and ABI 1 */
	amqpd_loop_fn fn2;      /* ABI 2: fn2(p->userdata, arg) */
	struct amqpd_plugin *p;
	void *arg;
};

/* A registered exchange type.  Types registered under one name form a
 * chain in load order (head .. next_same); the head is in the map. */
struct xtype {
	char *name;
	struct amqpd_exchange_type vt;
	struct amqpd_plugin *owner;
	struct xtype *head;      /* first of this name (itself for the first) */
	struct xtype *next_same; /* asked when this one declines */
	struct v1_xtype *v1;     /* ABI 1 types: the adapted record */
};

struct plugin_option {
	char *plugin, *key, *value;
	bool used; /* a loaded plugin of that name got it */
};

struct sasl_mech;
struct auth_backend;

struct plugin_host {
	struct amqpd_plugin *plugins;
	/* SASL mechanisms and user backends (plugin_auth.h), in registration
	 * order; auth_epoch grows when cached permission answers go stale. */
	struct sasl_mech *mechs;
	struct auth_backend *auth_backends;
	uint64_t auth_epoch;
	struct hmap xtypes; /* name -> struct xtype (chain head) */
	struct storage_backend *storages;
	struct event_base *base;
	struct plugin_option *opts;
	size_t nopts;
	/* run_on_loop: a mutex-protected ring drained by an event on the loop.
	 * It never drops a call (a lost storage-sync completion would leave
	 * every waiting confirm waiting for ever): it grows, and when it
	 * cannot, a poster on another thread waits for the loop to drain it
	 * (calls_space), and the loop thread drains it itself first. */
	struct event *calls_ev;
	pthread_mutex_t calls_lock;
	pthread_cond_t calls_space;
	pthread_t loop_thread; /* the thread that called plugin_host_init */
	struct loop_call *calls;
	size_t calls_cap, calls_head, calls_count;
	uint64_t calls_run; /* calls run so far (tests wait on it) */
	/* Tests: > 0 makes the plugin allocation that brings it to 0 fail. */
	long alloc_fail_after;
};

/* base: the loop that run_on_loop() callbacks and timers run on
 * (evthread-enabled); call on the loop thread.  0, or -1 out of memory. */
int plugin_host_init(struct plugin_host *h, struct event_base *base);
/* Is spec "PLUGIN.KEY=VALUE" (non-empty PLUGIN and KEY; the first '.'
 * ends PLUGIN, the first '=' after it ends KEY)?  0, or -1 with why. */
int plugin_option_check(const char *spec, char *err, size_t errlen);
/* "PLUGIN.KEY=VALUE" from --plugin-opt.  0, or -1 with the reason in err
 * (malformed: no '.', no '=', empty plugin name or key; out of memory). */
int plugin_host_add_option(struct plugin_host *h, const char *spec, char *err, size_t errlen);
/* After loading: -1 (each logged) if an option names no loaded plugin. */
int plugin_host_check_options(const struct plugin_host *h);
/* Load every *.so in dir (sorted).  0, or -1 after logging why. */
int plugin_host_load_dir(struct plugin_host *h, const char *dir);
int plugin_host_load(struct plugin_host *h, const char *path);
/* Load a plugin linked into this program: the same as plugin_host_load()
 * from its entry function, without dlopen (tests and the fuzzer build the
 * exchange types in, see tests/engine).  label names it in the log. */
int plugin_host_load_entry(struct plugin_host *h, const char *label, amqpd_plugin_entry_fn entry);
struct amqpd_plugin *plugin_host_find(const struct plugin_host *h, const char *name);
/* A plugin's allocation counts (ABI 2 plugins; zeros for ABI 1). */
void plugin_host_mem_usage(const struct amqpd_plugin *p, struct amqpd_mem_usage *out);
/* Run what run_on_loop / complete queued, now (loop thread). */
void plugin_host_run_queued(struct plugin_host *h);
/* fini and dlclose every plugin; nothing they registered may be in use. */
void plugin_host_unload_all(struct plugin_host *h);

/* ---- exchange types ------------------------------------------------------ */

const struct xtype *plugin_host_xtype(const struct plugin_host *h, const char *name, size_t len);
/* The chain a type belongs to (compare these to tell if two are "the same
 * type name"); NULL for NULL. */
static inline const struct xtype *plugin_xtype_head(const struct xtype *t)
{
	return t ? t->head : NULL;
}
/*
 * validate, then create, asking the types of *t's chain in order while
 * they decline; *t becomes the one that created the state.  0, or an AMQP
 * reply code with the reason (without the code name) in err.
 */
uint16_t plugin_xtype_create(const struct xtype **t, struct amqpd_table_view args,
                             struct amqpd_exchange_state **state, char *err, size_t errlen);
void plugin_xtype_destroy(const struct xtype *t, struct amqpd_exchange_state *state);
/* One type's validate / validate_binding alone (0 when it has none or it
 * declines): 0 or a reply code with the reason in err. */
uint16_t plugin_xtype_validate(const struct xtype *t, struct amqpd_table_view args, char *err,
                               size_t errlen);
uint16_t plugin_xtype_validate_binding(const struct xtype *t, struct amqpd_exchange_state *state,
                                       const struct amqpd_binding *b, char *err, size_t errlen);
/* validate_binding (if the type has one), then bind.  0 or a reply code
 * with the reason in err. */
uint16_t plugin_xtype_bind(const struct xtype *t, struct amqpd_exchange_state *state,
                           const struct amqpd_binding *b, char *err, size_t errlen);
void plugin_xtype_unbind(const struct xtype *t, struct amqpd_exchange_state *state,
                         const struct amqpd_binding *b);
void plugin_xtype_route(const struct xtype *t, struct amqpd_exchange_state *state,
                        const struct amqpd_route_msg *msg, amqpd_route_emit_fn emit,
                        void *emit_ctx);

/* ---- storage backends ------------------------------------------------------
 * Ints are 0 or a negative errno (AMQP errors from a backend become -EIO,
 * a status a call may not return -EPROTO, logged); -ENOTSUP when an
 * optional op is missing or declines. */

const struct storage_backend *plugin_host_storage(const struct plugin_host *h, const char *name);
int plugin_storage_start(const struct storage_backend *be, amqpd_store **store, const char *dir,
                         bool *clean, char *err, size_t errlen);
/* Also runs the completions stop() posted, so every sync it finished has
 * been reported when this returns. */
void plugin_storage_stop(const struct storage_backend *be, amqpd_store *store, bool clean);
int plugin_storage_queue_open(const struct storage_backend *be, amqpd_store *store, const char *qid,
                              amqpd_store_queue **q);
void plugin_storage_queue_close(const struct storage_backend *be, amqpd_store_queue *q);
int plugin_storage_queue_delete(const struct storage_backend *be, amqpd_store *store,
                                const char *qid);
int plugin_storage_queue_list(const struct storage_backend *be, amqpd_store *store,
                              void (*fn)(void *ctx, const char *qid), void *ctx);
int plugin_storage_recover(const struct storage_backend *be, amqpd_store_queue *q,
                           amqpd_stored_msg_fn fn, void *ctx);
int plugin_storage_append(const struct storage_backend *be, amqpd_store_queue *q, uint64_t seq,
                          const struct amqpd_iov *iov, int iovcnt);
int plugin_storage_ack(const struct storage_backend *be, amqpd_store_queue *q, uint64_t seq);
int plugin_storage_delivered(const struct storage_backend *be, amqpd_store_queue *q, uint64_t seq);
int plugin_storage_read(const struct storage_backend *be, amqpd_store_queue *q, uint64_t seq,
                        amqpd_stored_msg_fn fn, void *ctx);
/* 0: started, done(ctx, 0 or -errno) runs later on the loop thread (never
 * inside this call); or -errno: not started, done will not run. */
int plugin_storage_sync(const struct storage_backend *be, amqpd_store *store,
                        void (*done)(void *ctx, int status), void *ctx);
int plugin_storage_purge(const struct storage_backend *be, amqpd_store_queue *q);
int plugin_storage_compact(const struct storage_backend *be, amqpd_store *store);
int plugin_storage_stats(const struct storage_backend *be, amqpd_store *store,
                         struct amqpd_storage_stats *out);

/* ---- for plugin_v1.c -------------------------------------------------------- */

/* Queue fn1(arg) (host-internal form of run_on_loop).  Any thread. */
void plugin_host_post(struct plugin_host *h, void (*fn)(void *arg), void *arg);
/* The v1 table's run_on_loop. */
void plugin_host_v1_run_on_loop(amqpd_plugin *self, void (*fn)(void *arg), void *arg);
/* A request whose answer goes to done(ctx, status) on the loop thread
 * (p: the plugin that will complete it, NULL for a built-in).  NULL out
 * of memory.  The request frees itself after done has run. */
struct amqpd_request *plugin_host_request_new(struct plugin_host *h, struct amqpd_plugin *p,
                                              const char *what,
                                              void (*done)(void *ctx, amqpd_status status),
                                              void *ctx);
/* Has complete() been called for r (its done may not have run yet)? */
bool plugin_host_request_completed(const struct amqpd_request *r);
/* The v2 complete(), for adapters. */
void plugin_host_complete(amqpd_plugin *self, amqpd_request *req, amqpd_status status);
int plugin_host_register_v1_xtype(amqpd_plugin *self, const struct amqpd_v1_exchange_type *t);
int plugin_host_register_v1_storage(amqpd_plugin *self, const struct amqpd_v1_storage_ops *ops);
void plugin_host_log(amqpd_plugin *self, enum amqpd_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
