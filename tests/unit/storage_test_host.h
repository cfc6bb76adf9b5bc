/*
 * storage_test_host.h - the test host shared by the storage backend tests
 * (test_storage.c, test_storage_file.c): the broker's real plugin host
 * (server/plugin/plugin_host.c) with the backends loaded into it, its
 * per-plugin allocation counts, a captured log, the loop the main thread
 * runs, and the store/queue/payload helpers the tests are written with.
 * Implemented in storage_test_host.c.
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
#include "plugin/plugin_host.h"

/* ---------------------------------------------------------------- host */

/*
 * The calls the tests make, in the shape they were written in (void *
 * stores, one buffer per append, done callbacks; ints are 0 or -errno):
 * each forwards to the host's plugin_storage_* wrapper for `be`, so every
 * call goes through the real host (status mapping, v1 adaptation,
 * requests for sync).
 */
struct tops {
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
	int (*sync)(void *store, void (*done)(void *ctx, int status), void *ctx);
	int (*purge)(amqpd_store_queue *q);
	int (*compact)(void *store);
	int (*stats)(void *store, struct amqpd_storage_stats *out);
};

struct tbe {
	const char *file;    /* under $top_builddir */
	const char *backend; /* the name it registers */
	struct amqpd_plugin *p;
	const struct storage_backend *sb;
	struct tops ops;
	long base_blocks; /* live blocks right after loading (its userdata) */
};

extern struct tbe plugins[3];
#define PFILE (&plugins[0])
#define PMEM  (&plugins[1])
#define PV1   (&plugins[2]) /* memory backend built for ABI 1 */

extern struct plugin_host th;
extern pthread_t main_thread;    /* the "loop" thread; set by main() */
extern atomic_long wrong_thread; /* loop-only calls seen off the loop thread */
extern bool verbose;
/* The file named by storage-file's fail_writes_flag option: while it
 * exists every sync fails (fail_writes(true/false) creates/removes it). */
void fail_writes(bool on);

/* Live blocks `be`'s plugin holds beyond what it held after loading. */
long live_blocks_now(void);

/* Captured log since the last log_reset(), and the dropped-record total. */
extern uint64_t dropped_logged;
void log_reset(void);
bool log_has(const char *s);

/* Run one posted call, waiting up to ms for it; false on timeout. */
bool loop_once(int ms);
void loop_drain(void);

/* Start the host and load the backends from $top_builddir. */
int load_plugins(void);
void unload_plugins(void);

/* ------------------------------------------------------------- helpers */

extern struct tbe *be; /* the backend under test */
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
