/*
 * storage_test_host.h - the test host shared by the storage backend tests
 * (test_storage.c, test_storage_file.c): the loaded plugins, the state the
 * fake host API records (live allocations, off-thread calls, captured log),
 * the loop the main thread drains, and the store/queue/payload helpers the
 * tests are written with.  Implemented in storage_test_host.c.
 */
#ifndef AMQPD_TESTS_STORAGE_TEST_HOST_H
#define AMQPD_TESTS_STORAGE_TEST_HOST_H

#include <CUnit/Basic.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "amqpd/plugin.h"
#include "amqpd/storage.h"

/* ---------------------------------------------------------------- host */

struct amqpd_plugin {
	const char *file;
	void *dl;
	const struct amqpd_plugin_desc *desc;
	struct amqpd_storage_ops ops; /* copied at registration */
	int nops;
};

extern struct amqpd_plugin plugins[2];
#define PFILE (&plugins[0])
#define PMEM  (&plugins[1])

extern pthread_t main_thread; /* the "loop" thread; set by main() */
extern atomic_long live_blocks;
extern atomic_long wrong_thread; /* host calls made off the loop thread */
extern bool verbose;

/* Captured log since the last log_reset(), and the dropped-record total. */
extern uint64_t dropped_logged;
void log_reset(void);
bool log_has(const char *s);

/* Run one posted call, waiting up to ms for it; false on timeout. */
bool loop_once(int ms);
void loop_drain(void);

/* dlopen both backends from $top_builddir/plugins/lib and init them. */
int load_plugins(void);

/* ------------------------------------------------------------- helpers */

extern struct amqpd_plugin *be; /* the backend under test */
extern char tmpdir[256];

void rm_rf(const char *path);
void new_tmpdir(void);
void *start_store(bool *clean);
/* Stop, drain stray callbacks, and check nothing leaked. */
void stop_store(void *st, bool clean);
amqpd_store_queue *open_q(void *st, const char *qid);

/* Payload of seq: 8 bytes of seq, then a pattern; checkable from itself. */
uint8_t *payload(uint64_t seq, size_t len);
bool payload_ok(const struct amqpd_stored_msg *m);
size_t len_of(uint64_t seq);
int append_n(amqpd_store_queue *q, uint64_t from, uint64_t to, size_t len);

struct got {
	size_t n, cap;
	uint64_t *seq;
	bool *dlv;
	size_t bad;
	size_t lenmismatch;
	size_t want_len; /* 0: len_of(seq) */
};

void got_free(struct got *g);
void recover_into(amqpd_store_queue *q, struct got *g, size_t want_len);
/* Recovered exactly the seqs for which keep(seq) over [from, to]. */
bool got_exactly(struct got *g, uint64_t from, uint64_t to, bool (*keep)(uint64_t));
bool keep_all(uint64_t s);

struct syncw {
	int calls;
	int status;
};

void on_done(void *ctx, int status);
/* Sync and run the loop until done; returns its status. */
int sync_wait(void *st);

struct readc {
	int calls;
	uint64_t seq;
	bool ok, delivered;
	size_t len;
};

void on_read(void *ctx, const struct amqpd_stored_msg *m);
void check_read(amqpd_store_queue *q, uint64_t seq, size_t len);

/* ------------------------------------------------ other test files */

/* A named test, for the tables the suites are built from. */
struct tdef {
	const char *name;
	void (*fn)(void);
};

/* test_storage_file.c: add the file-backend-only tests to suite sf. */
void add_file_backend_tests(CU_pSuite sf);

#endif
