/*
 * plugin_host.h - loads plugin .so files and keeps what they register.
 *
 * Loading: dlopen(RTLD_NOW | RTLD_LOCAL), resolve the one entry symbol,
 * negotiate the ABI version, call init with the host API table.  A plugin
 * with a missing entry symbol, no common ABI version or a failing init is
 * refused with a log line naming the file and the reason, and the load
 * fails (the broker then does not start).
 *
 * Registered exchange types are copied (min(struct_size, sizeof), rest
 * zero-filled), so a plugin built against an older, smaller struct works.
 *
 * Threading: loop thread only; loading happens at start-up.
 */
#ifndef PLUGIN_HOST_H
#define PLUGIN_HOST_H

#include <pthread.h>
#include <stddef.h>

#include "amqpd/exchange.h"
#include "amqpd/plugin.h"
#include "amqpd/storage.h"
#include "util/hmap.h"

struct event_base;
struct event;

struct amqpd_plugin {
	struct amqpd_plugin *next;
	void *dl;
	char *path;
	const struct amqpd_plugin_desc *desc;
	struct amqpd_plugin_desc d; /* copied descriptor */
	struct amqpd_host_api api;
	uint32_t abi;
};

/* A registered storage backend. */
struct storage_backend {
	struct storage_backend *next;
	char *name;
	struct amqpd_storage_ops ops;
	struct amqpd_plugin *owner;
};

/* Callbacks posted from other threads with run_on_loop(). */
struct loop_call {
	void (*fn)(void *arg);
	void *arg;
};

/* A registered exchange type. */
struct xtype {
	char *name;
	struct amqpd_exchange_type vt;
	struct amqpd_plugin *owner;
};

struct plugin_host {
	struct amqpd_plugin *plugins;
	struct hmap xtypes; /* name -> struct xtype */
	struct storage_backend *storages;
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
};

/* base: the loop that run_on_loop() callbacks run on (evthread-enabled);
 * call on the loop thread.  0, or -1 out of memory. */
int plugin_host_init(struct plugin_host *h, struct event_base *base);
const struct storage_backend *plugin_host_storage(const struct plugin_host *h, const char *name);
/* Load every *.so in dir (sorted).  0, or -1 after logging why. */
int plugin_host_load_dir(struct plugin_host *h, const char *dir);
int plugin_host_load(struct plugin_host *h, const char *path);
const struct xtype *plugin_host_xtype(const struct plugin_host *h, const char *name, size_t len);
/* fini and dlclose every plugin; nothing they registered may be in use. */
void plugin_host_unload_all(struct plugin_host *h);

#endif
