/*
 * exchange_test_host.h - the test host shared by the exchange-type plugin
 * tests (test_exchanges.c, test_topic.c): the loaded plugins, the counting
 * allocator's state, field tables built from a one-line spec, and helpers
 * that create an exchange of a type, bind / unbind destinations and collect
 * what route() returns.  Implemented in exchange_test_host.c.
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

/* ---------------------------------------------------------------- host */

struct amqpd_plugin {
	char path[1024];
	void *dl;
	const struct amqpd_plugin_desc *desc;
	struct amqpd_exchange_type type; /* copied at registration */
	int ntypes;
};

extern struct amqpd_plugin plugins[5];
extern size_t nplugins;
extern struct amqpd_plugin *extra; /* AMQPD_EXTRA_PLUGIN, if loaded */

extern long live_blocks;    /* allocations not yet freed */
extern long fail_countdown; /* > 0: the allocation that brings it to 0 fails */

/* The host API's register_exchange_type. */
int h_register_exchange_type(amqpd_plugin *self, const struct amqpd_exchange_type *t);
amqpd_plugin_entry_fn entry_of(struct amqpd_plugin *p);
/* dlopen, negotiate, init; NULL (after saying why) on failure. */
struct amqpd_plugin *load_plugin(const char *path);
void unload_plugins(void);
const struct amqpd_exchange_type *find_type(const char *name);

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
	const struct amqpd_exchange_type *t;
	void *st;
};

extern const struct amqpd_table_view no_table;

int ex_new(struct ex *x, const char *type, struct amqpd_table_view args);
void ex_free(struct ex *x);
struct amqpd_binding binding(const void *dest, const char *key, struct amqpd_table_view args);
/* Like the host: validate_binding (when the type has one), then bind. */
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

#endif
