/*
 * exchange_test_host.h - the test host shared by the exchange-type plugin
 * tests (test_exchanges.c, test_topic.c): the real plugin host with the
 * loaded plugins, its per-plugin allocation counts, field tables built from
 * a one-line spec, and helpers that create an exchange of a type, bind /
 * unbind destinations and collect what route() returns, all through the
 * host's plugin_xtype_* calls.  Implemented in exchange_test_host.c.
 */
#ifndef AMQPD_TESTS_EXCHANGE_TEST_HOST_H
#define AMQPD_TESTS_EXCHANGE_TEST_HOST_H

#include <CUnit/Basic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "amqp_table.h"
#include "amqpd/exchange.h"
#include "amqpd/plugin.h"
#include "plugin/plugin_host.h"

/* ---------------------------------------------------------------- host */

/* The real plugin host (server/plugin/plugin_host.c) on a private loop. */
extern struct plugin_host phost;
extern struct event_base *th_base;
extern struct amqpd_plugin *plugins[12]; /* in load order */
extern size_t nplugins;
extern struct amqpd_plugin *extra; /* AMQPD_EXTRA_PLUGIN, if loaded */

/* Live blocks the loaded plugins hold (the host's per-plugin accounting). */
long live_blocks_now(void);
#define live_blocks (live_blocks_now())
/* > 0: the plugin allocation that brings it to 0 fails (a host hook). */
#define fail_countdown (phost.alloc_fail_after)

/* Start the host (once); then options (before loading), loading. */
void host_start(void);
amqpd_plugin_entry_fn entry_of(struct amqpd_plugin *p);
/* Load through the real host; NULL (after saying why) on failure. */
struct amqpd_plugin *load_plugin(const char *path);
void unload_plugins(void);
const struct xtype *find_type(const char *name);
/* Exchange types a plugin registered. */
int ntypes_of(const struct amqpd_plugin *p);
/* A type's validate / validate_binding through the host: 0 or a code. */
int xvalidate(const struct xtype *t, struct amqpd_table_view args, char *err, size_t errlen);
int xvalidate_binding(const struct xtype *t, struct amqpd_exchange_state *st,
                      const struct amqpd_binding *b, char *err, size_t errlen);

/* ------------------------------------------------- tables, exchanges */

/*
 * Build a field table from a spec "key:T=value;key:T=value": T is the wire
 * type letter (S x b B s u I i l L T f d t V); V takes no value.
 */
struct tbl {
	char spec[1024];
	struct amqp_table_entry e[32];
	size_t n;
	uint8_t buf[4096];
};

struct amqpd_table_view mk(struct tbl *t, const char *spec);

struct ex {
	const struct xtype *t;
	struct amqpd_exchange_state *st;
};

extern const struct amqpd_table_view no_table;

int ex_new(struct ex *x, const char *type, struct amqpd_table_view args);
void ex_free(struct ex *x);
struct amqpd_binding binding(const void *dest, const char *key, struct amqpd_table_view args);
/* Through the host: validate_binding (when the type has one), then bind. */
int ex_bind_args(struct ex *x, const void *dest, const char *key, struct amqpd_table_view args);
int ex_bind(struct ex *x, const void *dest, const char *key);
void ex_unbind_args(struct ex *x, const void *dest, const char *key, struct amqpd_table_view args);
void ex_unbind(struct ex *x, const void *dest, const char *key);

#define MAX_GOT 4096

struct got {
	const void *d[MAX_GOT];
	size_t n;
};

void ex_route_h(struct ex *x, const char *key, struct amqpd_table_view headers, struct got *g);
void ex_route(struct ex *x, const char *key, struct got *g);
bool got_has(const struct got *g, const void *d);
size_t got_unique(const struct got *g);

/* ------------------------------------------------ other test files */

#define ADD(suite, fn) CU_add_test(suite, #fn, fn)

/* test_topic.c: add the topic exchange tests to suite s. */
void add_topic_tests(CU_pSuite s);
/* test_host_abi.c: the ABI 2 host features; needs these two loaded. */
extern struct amqpd_plugin *probe;    /* tests/unit/probe_plugin.c */
extern struct amqpd_plugin *v1plugin; /* tests/abi-v1/v1_direct.c */
void add_host_abi_tests(CU_pSuite s);

#endif
