/*
 * test_storage.c - CUnit tests for the storage backends ("file", "memory"),
 * run through a test host of their own.
 *
 * The host dlopens $top_builddir/plugins/lib/storage_{file,memory}.so
 * (RTLD_NOW | RTLD_LOCAL), negotiates the ABI and calls init with a host API
 * table: a counting allocator, a log that captures lines (the number of
 * damaged records a file store dropped is read back from its "dropped N
 * damaged records" line), register_storage, and run_on_loop, which queues
 * the call on a mutex-protected list that the test's main thread (the
 * "loop") drains while it waits for a sync.  Every host function but
 * run_on_loop checks that it is called from the main thread.
 *
 * The same API tests run against both backends; the file backend also gets
 * restarts (clean, dirty, a real kill -9 of a forked child), segment
 * deletion, compaction (and a crash in its middle, rebuilt from copies of
 * the old segments), corrupt-file fixtures built by the test, an injected
 * write failure (AMQPD_STORAGE_FAIL_WRITES), a real one (RLIMIT_FSIZE in a
 * forked child) and fd-cache churn.
 * Stores live in mkdtemp directories under /tmp, removed afterwards.
 *
 * `test_storage --bench [n]` instead measures append+sync throughput and
 * recovery time of the file backend (n messages of 1 KiB, default 1M).
 *
 * Ownership: each test starts and stops its own store; after stop and a
 * drain of the loop queue the allocator must be back to zero live blocks.
 * Exit status: 0 when every test passed.
 */
#include <CUnit/Basic.h>
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

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

static struct amqpd_plugin plugins[2] = {{.file = "storage_file.so"},
                                         {.file = "storage_memory.so"}};
#define PFILE (&plugins[0])
#define PMEM  (&plugins[1])

static pthread_t main_thread;
static atomic_long live_blocks;
static atomic_long wrong_thread; /* host calls made off the loop thread */
static bool verbose;

static void check_thread(void)
{
	if (!pthread_equal(pthread_self(), main_thread))
		atomic_fetch_add(&wrong_thread, 1);
}

static void *h_alloc(size_t n)
{
	check_thread();
	void *p = malloc(n);
	if (p)
		atomic_fetch_add(&live_blocks, 1);
	return p;
}

static void *h_calloc(size_t n, size_t size)
{
	check_thread();
	void *p = calloc(n, size);
	if (p)
		atomic_fetch_add(&live_blocks, 1);
	return p;
}

static void *h_realloc(void *ptr, size_t size)
{
	check_thread();
	void *p = realloc(ptr, size);
	if (p && !ptr)
		atomic_fetch_add(&live_blocks, 1);
	return p;
}

static void h_free(void *ptr)
{
	check_thread();
	if (ptr)
		atomic_fetch_sub(&live_blocks, 1);
	free(ptr);
}

/* Captured log since the last log_reset(), and the dropped-record total. */
static char *logbuf;
static size_t loglen;
static uint64_t dropped_logged;

static void log_reset(void)
{
	free(logbuf);
	logbuf = NULL;
	loglen = 0;
	dropped_logged = 0;
}

static bool log_has(const char *s)
{
	return logbuf && strstr(logbuf, s);
}

static void h_log(amqpd_plugin *self, enum amqpd_log_level level, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	check_thread();
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (verbose)
		fprintf(stderr, "[%s] %d: %s\n", self ? self->desc->name : "?", (int)level, line);
	const char *p = strstr(line, ": dropped ");
	unsigned long long n;
	if (p && sscanf(p, ": dropped %llu damaged records", &n) == 1)
		dropped_logged += n;
	size_t l = strlen(line);
	char *nb = realloc(logbuf, loglen + l + 2);
	if (nb) {
		logbuf = nb;
		memcpy(logbuf + loglen, line, l);
		loglen += l;
		logbuf[loglen++] = '\n';
		logbuf[loglen] = 0;
	}
}

static int h_register_storage(amqpd_plugin *self, const struct amqpd_storage_ops *ops)
{
	check_thread();
	size_t need = offsetof(struct amqpd_storage_ops, sync) + sizeof(ops->sync);
	if (!ops || ops->struct_size < need || !ops->name || !ops->start || !ops->stop ||
	    !ops->queue_open || !ops->append || !ops->sync || self->nops)
		return -1;
	memset(&self->ops, 0, sizeof(self->ops));
	memcpy(&self->ops, ops, ops->struct_size < sizeof(*ops) ? ops->struct_size : sizeof(*ops));
	self->nops++;
	return 0;
}

/* The loop: calls posted by run_on_loop, run by the main thread. */
struct call {
	struct call *next;
	void (*fn)(void *);
	void *arg;
};
static pthread_mutex_t loop_mtx = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t loop_cv = PTHREAD_COND_INITIALIZER;
static struct call *calls_head, *calls_tail;

static void h_run_on_loop(amqpd_plugin *self, void (*fn)(void *arg), void *arg)
{
	(void)self;
	struct call *c = malloc(sizeof(*c)); /* any thread: plain malloc */
	if (!c)
		abort();
	c->fn = fn;
	c->arg = arg;
	c->next = NULL;
	pthread_mutex_lock(&loop_mtx);
	if (calls_tail)
		calls_tail->next = c;
	else
		calls_head = c;
	calls_tail = c;
	pthread_cond_signal(&loop_cv);
	pthread_mutex_unlock(&loop_mtx);
}

/* Run one posted call, waiting up to ms for it; false on timeout. */
static bool loop_once(int ms)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&loop_mtx);
	while (!calls_head)
		if (pthread_cond_timedwait(&loop_cv, &loop_mtx, &ts) == ETIMEDOUT)
			break;
	struct call *c = calls_head;
	if (c) {
		calls_head = c->next;
		if (!calls_head)
			calls_tail = NULL;
	}
	pthread_mutex_unlock(&loop_mtx);
	if (!c)
		return false;
	c->fn(c->arg);
	free(c);
	return true;
}

static void loop_drain(void)
{
	while (loop_once(0))
		;
}

static const struct amqpd_host_api host_api = {
    .struct_size = sizeof(struct amqpd_host_api),
    .abi_version = AMQPD_ABI_VERSION,
    .alloc = h_alloc,
    .calloc = h_calloc,
    .realloc = h_realloc,
    .free = h_free,
    .log = h_log,
    .register_storage = h_register_storage,
    .run_on_loop = h_run_on_loop,
};

static int load_plugins(void)
{
	const char *top = getenv("top_builddir");
	for (int i = 0; i < 2; i++) {
		struct amqpd_plugin *p = &plugins[i];
		char path[1024];
		snprintf(path, sizeof(path), "%s/plugins/lib/%s", top ? top : ".", p->file);
		p->dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
		if (!p->dl) {
			fprintf(stderr, "dlopen %s: %s\n", path, dlerror());
			return -1;
		}
		amqpd_plugin_entry_fn entry;
		*(void **)&entry = dlsym(p->dl, AMQPD_PLUGIN_ENTRY_SYMBOL);
		uint32_t chosen = 0;
		p->desc = entry ? entry(AMQPD_ABI_VERSION_MIN, AMQPD_ABI_VERSION, &chosen) : NULL;
		if (!p->desc || chosen != AMQPD_ABI_VERSION || p->desc->init(p, &host_api) != 0 ||
		    p->nops != 1) {
			fprintf(stderr, "%s: did not load\n", path);
			return -1;
		}
	}
	return 0;
}

/* ------------------------------------------------------------- helpers */

static struct amqpd_plugin *be; /* the backend under test */
static char tmpdir[256];

static int rm_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	chmod(path, 0700);
	return remove(path);
}

static void rm_rf(const char *path)
{
	nftw(path, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static void new_tmpdir(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/amqpd-storage-XXXXXX");
	if (!mkdtemp(tmpdir))
		abort();
}

static void *start_store(bool *clean)
{
	void *st = NULL;
	char err[256] = "";
	bool c = false;
	int rc = be->ops.start(&st, tmpdir, &c, err, sizeof(err));
	CU_ASSERT_EQUAL_FATAL(rc, 0);
	if (rc)
		fprintf(stderr, "start: %s\n", err);
	if (clean)
		*clean = c;
	return st;
}

/* Stop, drain stray callbacks, and check nothing leaked. */
static void stop_store(void *st, bool clean)
{
	be->ops.stop(st, clean);
	loop_drain();
	CU_ASSERT_EQUAL(atomic_load(&live_blocks), 0);
}

static amqpd_store_queue *open_q(void *st, const char *qid)
{
	amqpd_store_queue *q = NULL;
	int rc = be->ops.queue_open(st, qid, &q);
	CU_ASSERT_EQUAL_FATAL(rc, 0);
	return q;
}

/* Payload of seq: 8 bytes of seq, then a pattern; checkable from itself. */
static uint8_t *payload(uint64_t seq, size_t len)
{
	static uint8_t *buf;
	static size_t cap;
	if (len > cap) {
		free(buf);
		buf = malloc(len);
		cap = len;
	}
	for (size_t i = 0; i < len; i++)
		buf[i] = i < 8 ? (uint8_t)(seq >> (8 * i)) : (uint8_t)(seq * 131 + i * 7);
	return buf;
}

static bool payload_ok(const struct amqpd_stored_msg *m)
{
	if (m->len < 8)
		return false;
	uint64_t s = 0;
	for (int i = 0; i < 8; i++)
		s |= (uint64_t)m->data[i] << (8 * i);
	if (s != m->seq)
		return false;
	for (size_t i = 8; i < m->len; i++)
		if (m->data[i] != (uint8_t)(m->seq * 131 + i * 7))
			return false;
	return true;
}

static size_t len_of(uint64_t seq)
{
	return 16 + (size_t)(seq * 37 % 300);
}

static int append_n(amqpd_store_queue *q, uint64_t from, uint64_t to, size_t len)
{
	for (uint64_t s = from; s <= to; s++) {
		size_t l = len ? len : len_of(s);
		int rc = be->ops.append(q, s, payload(s, l), l);
		if (rc)
			return rc;
	}
	return 0;
}

struct got {
	size_t n, cap;
	uint64_t *seq;
	bool *dlv;
	size_t bad;
	size_t lenmismatch;
	size_t want_len; /* 0: len_of(seq) */
};

static void collect(void *ctx, const struct amqpd_stored_msg *m)
{
	struct got *g = ctx;
	if (g->n == g->cap) {
		g->cap = g->cap ? g->cap * 2 : 256;
		g->seq = realloc(g->seq, g->cap * sizeof(*g->seq));
		g->dlv = realloc(g->dlv, g->cap * sizeof(*g->dlv));
	}
	g->seq[g->n] = m->seq;
	g->dlv[g->n] = m->delivered;
	g->n++;
	if (m->struct_size < sizeof(*m) || !payload_ok(m))
		g->bad++;
	if (m->len != (g->want_len ? g->want_len : len_of(m->seq)))
		g->lenmismatch++;
}

static void got_free(struct got *g)
{
	free(g->seq);
	free(g->dlv);
	memset(g, 0, sizeof(*g));
}

static void recover_into(amqpd_store_queue *q, struct got *g, size_t want_len)
{
	memset(g, 0, sizeof(*g));
	g->want_len = want_len;
	CU_ASSERT_EQUAL(be->ops.recover(q, collect, g), 0);
	CU_ASSERT_EQUAL(g->bad, 0);
	CU_ASSERT_EQUAL(g->lenmismatch, 0);
}

/* Recovered exactly the seqs for which keep(seq) over [from, to]. */
static bool got_exactly(struct got *g, uint64_t from, uint64_t to, bool (*keep)(uint64_t))
{
	size_t k = 0;
	for (uint64_t s = from; s <= to; s++) {
		if (!keep(s))
			continue;
		if (k >= g->n || g->seq[k] != s) {
			fprintf(stderr, "  recovered[%zu] = %" PRIu64 ", expected %" PRIu64 "\n", k,
			        k < g->n ? g->seq[k] : 0, s);
			return false;
		}
		k++;
	}
	if (k != g->n)
		fprintf(stderr, "  recovered %zu, expected %zu\n", g->n, k);
	return k == g->n;
}

static bool keep_all(uint64_t s)
{
	(void)s;
	return true;
}

static bool not_div3(uint64_t s)
{
	return s % 3 != 0;
}

struct syncw {
	int calls;
	int status;
};

static void on_done(void *ctx, int status)
{
	struct syncw *w = ctx;
	check_thread();
	w->calls++;
	w->status = status;
}

/* Sync and run the loop until done; returns its status. */
static int sync_wait(void *st)
{
	struct syncw w = {0};
	int rc = be->ops.sync(st, on_done, &w);
	CU_ASSERT_EQUAL(rc, 0);
	if (rc)
		return rc;
	for (int i = 0; i < 3000 && w.calls == 0; i++)
		loop_once(10);
	CU_ASSERT_EQUAL(w.calls, 1);
	return w.status;
}

static void set_be_file(void)
{
	be = PFILE;
}

static void set_be_mem(void)
{
	be = PMEM;
}

static void t_setup(void)
{
	new_tmpdir();
	log_reset();
}

static void t_teardown(void)
{
	loop_drain();
	rm_rf(tmpdir);
}

static int init_file(void)
{
	set_be_file();
	return 0;
}

static int init_mem(void)
{
	set_be_mem();
	return 0;
}

/* ------------------------------------------------- tests, both backends */

static void t_order_ack_recover(void)
{
	void *st = start_store(NULL);
	amqpd_store_queue *q = open_q(st, "q1");
	CU_ASSERT_EQUAL(append_n(q, 1, 600, 0), 0);
	for (uint64_t s = 3; s <= 600; s += 3)
		CU_ASSERT_EQUAL(be->ops.ack(q, s), 0);
	CU_ASSERT_EQUAL(sync_wait(st), 0);

	struct got g;
	recover_into(q, &g, 0);
	CU_ASSERT(got_exactly(&g, 1, 600, not_div3));
	got_free(&g);

	/* Close and open again in the same store: the data is still there. */
	be->ops.queue_close(q);
	q = open_q(st, "q1");
	recover_into(q, &g, 0);
	CU_ASSERT(got_exactly(&g, 1, 600, not_div3));
	got_free(&g);
	be->ops.queue_close(q);
	stop_store(st, true);
}

static void t_delivered(void)
{
	void *st = start_store(NULL);
	amqpd_store_queue *q = open_q(st, "dq");
	CU_ASSERT_EQUAL(append_n(q, 1, 50, 0), 0);
	for (uint64_t s = 5; s <= 50; s += 5)
		CU_ASSERT_EQUAL(be->ops.delivered(q, s), 0);
	CU_ASSERT_EQUAL(be->ops.delivered(q, 5), 0); /* twice is fine */
	CU_ASSERT_EQUAL(be->ops.ack(q, 10), 0);
	CU_ASSERT_EQUAL(be->ops.delivered(q, 10), -ENOENT);
	CU_ASSERT_EQUAL(be->ops.delivered(q, 51), -ENOENT);
	CU_ASSERT_EQUAL(sync_wait(st), 0);
	struct got g;
	recover_into(q, &g, 0);
	CU_ASSERT_EQUAL(g.n, 49);
	for (size_t i = 0; i < g.n; i++)
		CU_ASSERT_EQUAL(g.dlv[i], g.seq[i] % 5 == 0);
	got_free(&g);
	be->ops.queue_close(q);
	stop_store(st, true);
}

struct readc {
	int calls;
	uint64_t seq;
	bool ok, delivered;
	size_t len;
};

static void on_read(void *ctx, const struct amqpd_stored_msg *m)
{
	struct readc *r = ctx;
	r->calls++;
	r->seq = m->seq;
	r->len = m->len;
	r->delivered = m->delivered;
	r->ok = payload_ok(m);
}

static void check_read(amqpd_store_queue *q, uint64_t seq, size_t len)
{
	struct readc r = {0};
	CU_ASSERT_EQUAL(be->ops.read(q, seq, on_read, &r), 0);
	CU_ASSERT_EQUAL(r.calls, 1);
	CU_ASSERT_EQUAL(r.seq, seq);
	CU_ASSERT_EQUAL(r.len, len);
	CU_ASSERT(r.ok);
}

static void t_read(void)
{
	void *st = start_store(NULL);
	amqpd_store_queue *q = open_q(st, "rq");
	CU_ASSERT_EQUAL(append_n(q, 1, 20, 0), 0);
	check_read(q, 7, len_of(7)); /* still buffered */
	CU_ASSERT_EQUAL(sync_wait(st), 0);
	check_read(q, 7, len_of(7)); /* on disk now (file) */
	check_read(q, 1, len_of(1));
	check_read(q, 20, len_of(20));
	CU_ASSERT_EQUAL(be->ops.ack(q, 7), 0);
	struct readc r = {0};
	CU_ASSERT_EQUAL(be->ops.read(q, 7, on_read, &r), -ENOENT);
	CU_ASSERT_EQUAL(be->ops.read(q, 21, on_read, &r), -ENOENT);
	CU_ASSERT_EQUAL(r.calls, 0);
	CU_ASSERT_EQUAL(be->ops.delivered(q, 8), 0);
	CU_ASSERT_EQUAL(be->ops.read(q, 8, on_read, &r), 0);
	CU_ASSERT(r.delivered);
	be->ops.queue_close(q);
	stop_store(st, true);
}

static void t_purge(void)
{
	void *st = start_store(NULL);
	amqpd_store_queue *q = open_q(st, "pq");
	CU_ASSERT_EQUAL(append_n(q, 1, 300, 0), 0);
	CU_ASSERT_EQUAL(sync_wait(st), 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(be->ops.purge);
	CU_ASSERT_EQUAL(be->ops.purge(q), 0);
	CU_ASSERT_EQUAL(be->ops.purge(q), 0); /* nothing left: fine */
	struct got g;
	recover_into(q, &g, 0);
	CU_ASSERT_EQUAL(g.n, 0);
	got_free(&g);
	struct amqpd_storage_stats s = {.struct_size = sizeof(s)};
	CU_ASSERT_EQUAL(be->ops.stats(st, &s), 0);
	CU_ASSERT_EQUAL(s.live_messages, 0);
	CU_ASSERT_EQUAL(s.live_bytes, 0);
	CU_ASSERT_EQUAL(append_n(q, 301, 305, 0), 0);
	CU_ASSERT_EQUAL(be->ops.ack(q, 150), -ENOENT);
	CU_ASSERT_EQUAL(sync_wait(st), 0);
	be->ops.queue_close(q);
	q = open_q(st, "pq");
	recover_into(q, &g, 0);
	CU_ASSERT(got_exactly(&g, 301, 305, keep_all));
	got_free(&g);
	be->ops.queue_close(q);
	stop_store(st, true);
}

struct names {
	int n;
	char ids[16][72];
};

static void on_name(void *ctx, const char *qid)
{
	struct names *nm = ctx;
	if (nm->n < 16)
		snprintf(nm->ids[nm->n++], sizeof(nm->ids[0]), "%s", qid);
}

static bool names_has(struct names *nm, const char *qid)
{
	for (int i = 0; i < nm->n; i++)
		if (strcmp(nm->ids[i], qid) == 0)
			return true;
	return false;
}

static void t_list_delete(void)
{
	void *st = start_store(NULL);
	amqpd_store_queue *a = open_q(st, "alpha"), *b = open_q(st, "beta-2"),
	                  *c = open_q(st, "Gamma_3");
	CU_ASSERT_EQUAL(append_n(a, 1, 10, 0), 0);
	CU_ASSERT_EQUAL(append_n(b, 1, 10, 0), 0);
	CU_ASSERT_EQUAL(append_n(c, 1, 10, 0), 0);
	CU_ASSERT_EQUAL(sync_wait(st), 0);
	struct names nm = {0};
	CU_ASSERT_EQUAL(be->ops.queue_list(st, on_name, &nm), 0);
	CU_ASSERT_EQUAL(nm.n, 3);
	CU_ASSERT(names_has(&nm, "alpha") && names_has(&nm, "beta-2") && names_has(&nm, "Gamma_3"));

	/* Delete a closed queue. */
	be->ops.queue_close(b);
	CU_ASSERT_EQUAL(be->ops.queue_delete(st, "beta-2"), 0);
	/* Delete an open one: the handle stays usable only for close. */
	CU_ASSERT_EQUAL(be->ops.queue_delete(st, "Gamma_3"), 0);
	CU_ASSERT(be->ops.append(c, 11, payload(11, 16), 16) < 0);
	be->ops.queue_close(c);
	CU_ASSERT_EQUAL(be->ops.queue_delete(st, "never-there"), 0);
	memset(&nm, 0, sizeof(nm));
	CU_ASSERT_EQUAL(be->ops.queue_list(st, on_name, &nm), 0);
	CU_ASSERT_EQUAL(nm.n, 1);
	CU_ASSERT(names_has(&nm, "alpha"));

	/* A deleted queue comes back empty. */
	b = open_q(st, "beta-2");
	struct got g;
	recover_into(b, &g, 0);
	CU_ASSERT_EQUAL(g.n, 0);
	got_free(&g);
	CU_ASSERT_EQUAL(append_n(b, 1, 3, 0), 0);
	CU_ASSERT_EQUAL(sync_wait(st), 0);
	be->ops.queue_close(b);
	be->ops.queue_close(a);
	stop_store(st, true);
}

static void t_stats(void)
{
	void *st = start_store(NULL);
	amqpd_store_queue *a = open_q(st, "sa"), *b = open_q(st, "sb");
	uint64_t bytes = 0;
	CU_ASSERT_EQUAL(append_n(a, 1, 100, 0), 0);
	CU_ASSERT_EQUAL(append_n(b, 1, 50, 0), 0);
	for (uint64_t s = 1; s <= 100; s++)
		bytes += len_of(s);
	for (uint64_t s = 1; s <= 50; s++)
		bytes += len_of(s);
	CU_ASSERT_PTR_NOT_NULL_FATAL(be->ops.stats);
	struct amqpd_storage_stats s = {.struct_size = sizeof(s)};
	CU_ASSERT_EQUAL(be->ops.stats(st, &s), 0);
	CU_ASSERT_EQUAL(s.struct_size, sizeof(s));
	CU_ASSERT_EQUAL(s.live_messages, 150);
	CU_ASSERT_EQUAL(s.live_bytes, bytes);
	if (be == PFILE) {
		CU_ASSERT(s.bytes_on_disk >= bytes + 150 * 24);
		CU_ASSERT_EQUAL(s.segments, 2);
	}
	CU_ASSERT_EQUAL(be->ops.ack(a, 1), 0);
	CU_ASSERT_EQUAL(be->ops.ack(b, 50), 0);
	CU_ASSERT_EQUAL(be->ops.stats(st, &s), 0);
	CU_ASSERT_EQUAL(s.live_messages, 148);
	CU_ASSERT_EQUAL(s.live_bytes, bytes - len_of(1) - len_of(50));
	/* An older, smaller struct gets only what it has room for. */
	struct {
		uint32_t struct_size;
		uint64_t bytes_on_disk;
		uint64_t canary;
	} small = {.struct_size = offsetof(struct amqpd_storage_stats, live_messages),
	           .canary = 0xfeed};
	CU_ASSERT_EQUAL(be->ops.stats(st, (struct amqpd_storage_stats *)&small), 0);
	CU_ASSERT_EQUAL(small.canary, 0xfeed);
	CU_ASSERT_EQUAL(sync_wait(st), 0);
	be->ops.queue_close(a);
	be->ops.queue_close(b);
	stop_store(st, true);
}

static void t_errors(void)
{
	void *st = start_store(NULL);
	amqpd_store_queue *q = NULL;
	char longid[80];
	memset(longid, 'x', 65);
	longid[65] = 0;
	CU_ASSERT_EQUAL(be->ops.queue_open(st, "", &q), -EINVAL);
	CU_ASSERT_EQUAL(be->ops.queue_open(st, "a/b", &q), -EINVAL);
	CU_ASSERT_EQUAL(be->ops.queue_open(st, "..", &q), -EINVAL);
	CU_ASSERT_EQUAL(be->ops.queue_open(st, longid, &q), -EINVAL);
	longid[64] = 0;
	q = open_q(st, longid);
	amqpd_store_queue *q2 = NULL;
	CU_ASSERT_EQUAL(be->ops.queue_open(st, longid, &q2), -EBUSY);
	CU_ASSERT_EQUAL(be->ops.append(q, 5, payload(5, 20), 20), 0);
	CU_ASSERT_EQUAL(be->ops.append(q, 5, payload(5, 20), 20), -EEXIST);
	CU_ASSERT_EQUAL(be->ops.ack(q, 6), -ENOENT);
	CU_ASSERT_EQUAL(be->ops.ack(q, 5), 0);
	CU_ASSERT_EQUAL(be->ops.ack(q, 5), -ENOENT);
	CU_ASSERT_EQUAL(be->ops.sync(st, NULL, NULL), -EINVAL);
	/* Out-of-order seqs are kept in seq order. */
	CU_ASSERT_EQUAL(be->ops.append(q, 40, payload(40, len_of(40)), len_of(40)), 0);
	CU_ASSERT_EQUAL(be->ops.append(q, 30, payload(30, len_of(30)), len_of(30)), 0);
	CU_ASSERT_EQUAL(be->ops.append(q, 35, payload(35, len_of(35)), len_of(35)), 0);
	/* A seq acked before may come back (seqs restart after a restart). */
	CU_ASSERT_EQUAL(be->ops.append(q, 5, payload(5, len_of(5)), len_of(5)), 0);
	CU_ASSERT_EQUAL(sync_wait(st), 0);
	be->ops.queue_close(q);
	q = open_q(st, longid);
	struct got g;
	recover_into(q, &g, 0);
	CU_ASSERT_EQUAL_FATAL(g.n, 4);
	CU_ASSERT(g.seq[0] == 5 && g.seq[1] == 30 && g.seq[2] == 35 && g.seq[3] == 40);
	got_free(&g);
	be->ops.queue_close(q);
	stop_store(st, true);
}

/* The host may stop the store with queues still open: nothing leaks. */
static void t_stop_open_queues(void)
{
	void *st = start_store(NULL);
	amqpd_store_queue *a = open_q(st, "open1"), *b = open_q(st, "open2");
	CU_ASSERT_EQUAL(append_n(a, 1, 100, 0), 0);
	CU_ASSERT_EQUAL(append_n(b, 1, 100, 0), 0);
	CU_ASSERT_EQUAL(be->ops.ack(b, 7), 0);
	stop_store(st, true);
}

static void t_group_sync(void)
{
	void *st = start_store(NULL);
	amqpd_store_queue *q[3];
	char id[8];
	for (int i = 0; i < 3; i++) {
		snprintf(id, sizeof(id), "g%d", i);
		q[i] = open_q(st, id);
		CU_ASSERT_EQUAL(append_n(q[i], 1, 1000, 0), 0);
	}
	struct syncw w = {0};
	CU_ASSERT_EQUAL(be->ops.sync(st, on_done, &w), 0);
	CU_ASSERT_EQUAL(w.calls, 0); /* never synchronously */
	for (int i = 0; i < 1000 && w.calls == 0; i++)
		loop_once(10);
	loop_drain();
	CU_ASSERT_EQUAL(w.calls, 1);
	CU_ASSERT_EQUAL(w.status, 0);
	/* A sync with nothing new still completes. */
	CU_ASSERT_EQUAL(sync_wait(st), 0);
	for (int i = 0; i < 3; i++)
		be->ops.queue_close(q[i]);
	stop_store(st, true);
}

/* ---------------------------------------------------- file backend only */

static bool odd_not_div3(uint64_t s)
{
	return s % 3 != 0;
}

static void t_restart_clean_dirty(void)
{
	bool clean = false;
	void *st = start_store(&clean);
	CU_ASSERT(clean); /* a fresh directory */
	amqpd_store_queue *q = open_q(st, "r");
	CU_ASSERT_EQUAL(append_n(q, 1, 900, 0), 0);
	for (uint64_t s = 3; s <= 900; s += 3)
		CU_ASSERT_EQUAL(be->ops.ack(q, s), 0);
	CU_ASSERT_EQUAL(be->ops.delivered(q, 100), 0);
	CU_ASSERT_EQUAL(sync_wait(st), 0);
	be->ops.queue_close(q);
	stop_store(st, true);

	st = start_store(&clean);
	CU_ASSERT(clean);
	q = open_q(st, "r");
	struct got g;
	recover_into(q, &g, 0);
	CU_ASSERT(got_exactly(&g, 1, 900, odd_not_div3));
	for (size_t i = 0; i < g.n; i++)
		CU_ASSERT_EQUAL(g.dlv[i], g.seq[i] == 100);
	got_free(&g);
	/* More work, then a dirty stop. */
	CU_ASSERT_EQUAL(append_n(q, 901, 950, 0), 0);
	CU_ASSERT_EQUAL(be->ops.ack(q, 1), 0);
	be->ops.queue_close(q);
	stop_store(st, false);

	st = start_store(&clean);
	CU_ASSERT(!clean);
	q = open_q(st, "r");
	recover_into(q, &g, 0);
	CU_ASSERT_EQUAL(g.n, 600 - 1 + 50);
	CU_ASSERT_EQUAL(g.seq[0], 2);
	CU_ASSERT_EQUAL(g.seq[g.n - 1], 950);
	got_free(&g);
	CU_ASSERT_EQUAL(dropped_logged, 0);
	be->ops.queue_close(q);

	/* Restart from the store: a second start on a locked dir fails. */
	void *st2 = NULL;
	char err[256] = "";
	bool c2;
	CU_ASSERT_NOT_EQUAL(be->ops.start(&st2, tmpdir, &c2, err, sizeof(err)), 0);
	CU_ASSERT(strstr(err, "in use") != NULL);
	stop_store(st, true);
}

static bool from301_to1000(uint64_t s)
{
	return s > 300 && s <= 1000;
}

static void t_kill9(void)
{
	fflush(NULL);
	pid_t pid = fork();
	CU_ASSERT_FATAL(pid >= 0);
	if (pid == 0) {
		/* Child: a broker that gets SIGKILLed after a sync. */
		void *st = NULL;
		char err[256];
		bool clean;
		amqpd_store_queue *q = NULL;
		if (be->ops.start(&st, tmpdir, &clean, err, sizeof(err)) ||
		    be->ops.queue_open(st, "k", &q))
			_exit(2);
		if (append_n(q, 1, 1000, 0))
			_exit(3);
		for (uint64_t s = 1; s <= 300; s++)
			if (be->ops.ack(q, s))
				_exit(4);
		if (be->ops.delivered(q, 400))
			_exit(5);
		struct syncw w = {0};
		if (be->ops.sync(st, on_done, &w))
			_exit(6);
		while (w.calls == 0)
			loop_once(100);
		if (w.status)
			_exit(7);
		/* Not synced: buffered in the process, gone with it. */
		append_n(q, 1001, 1010, 0);
		be->ops.ack(q, 500);
		raise(SIGKILL);
		_exit(8);
	}
	int ws;
	CU_ASSERT_EQUAL(waitpid(pid, &ws, 0), pid);
	CU_ASSERT(WIFSIGNALED(ws) && WTERMSIG(ws) == SIGKILL);
	bool clean = true;
	void *st = start_store(&clean);
	CU_ASSERT(!clean);
	amqpd_store_queue *q = open_q(st, "k");
	struct got g;
	recover_into(q, &g, 0);
	CU_ASSERT(got_exactly(&g, 1, 1010, from301_to1000));
	for (size_t i = 0; i < g.n; i++)
		CU_ASSERT_EQUAL(g.dlv[i], g.seq[i] == 400);
	got_free(&g);
	CU_ASSERT_EQUAL(dropped_logged, 0);
	be->ops.queue_close(q);
	stop_store(st, true);
}

/* Segment files of a queue, sorted; returns how many. */
static int list_segs(const char *qid, char names[][64], int max, uint64_t *total)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", tmpdir, qid);
	DIR *d = opendir(path);
	int n = 0;
	if (total)
		*total = 0;
	if (!d)
		return 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		size_t l = strlen(de->d_name);
		if (l < 5 || strcmp(de->d_name + l - 4, ".seg") != 0)
			continue;
		if (total) {
			struct stat sb;
			char p[1024];
			snprintf(p, sizeof(p), "%s/%s", path, de->d_name);
			if (stat(p, &sb) == 0)
				*total += (uint64_t)sb.st_size;
		}
		if (n < max && names && (size_t)snprintf(names[n], 64, "%s", de->d_name) >= 64)
			abort(); /* segment names are 20 characters */
		n++;
	}
	closedir(d);
	if (names && n <= max)
		qsort(names, (size_t)n, 64, (int (*)(const void *, const void *))strcmp);
	return n;
}

#define BIG (256u << 10)

static void t_segment_deletion(void)
{
	void *st = start_store(NULL);
	amqpd_store_queue *q = open_q(st, "seg");
	CU_ASSERT_EQUAL(append_n(q, 1, 200, BIG), 0); /* 50 MiB: 4 segments */
	CU_ASSERT_EQUAL(sync_wait(st), 0);
	int before = list_segs("seg", NULL, 0, NULL);
	CU_ASSERT(before >= 4);
	/* Ack all but the last; every old segment goes, oldest first. */
	for (uint64_t s = 1; s < 200; s++)
		CU_ASSERT_EQUAL(be->ops.ack(q, s), 0);
	CU_ASSERT_EQUAL(sync_wait(st), 0);
	CU_ASSERT_EQUAL(list_segs("seg", NULL, 0, NULL), 1);
	struct amqpd_storage_stats s = {.struct_size = sizeof(s)};
	CU_ASSERT_EQUAL(be->ops.stats(st, &s), 0);
	CU_ASSERT_EQUAL(s.segments, 1);
	CU_ASSERT_EQUAL(s.live_messages, 1);
	be->ops.queue_close(q);
	stop_store(st, false);

	st = start_store(NULL);
	q = open_q(st, "seg");
	struct got g;
	recover_into(q, &g, BIG);
	CU_ASSERT_EQUAL(g.n, 1);
	CU_ASSERT(g.n == 1 && g.seq[0] == 200);
	got_free(&g);
	be->ops.queue_close(q);
	stop_store(st, true);
}

static bool every10(uint64_t s)
{
	return s % 10 == 0;
}

static void t_compaction(void)
{
	void *st = start_store(NULL);
	amqpd_store_queue *q = open_q(st, "cmp");
	uint64_t before, after;
	CU_ASSERT_EQUAL(append_n(q, 1, 200, BIG), 0);
	/* Ack 90%, spread out so no segment empties by itself.  The store
	 * may compact on its own along the way; compact() finishes the job. */
	for (uint64_t s = 1; s <= 200; s++)
		if (s % 10)
			CU_ASSERT_EQUAL(be->ops.ack(q, s), 0);
	CU_ASSERT_EQUAL(sync_wait(st), 0);
	list_segs("cmp", NULL, 0, &before);
	CU_ASSERT_PTR_NOT_NULL_FATAL(be->ops.compact);
	CU_ASSERT_EQUAL(be->ops.compact(st), 0);
	CU_ASSERT_EQUAL(sync_wait(st), 0); /* jobs run in order: compaction is done */
	loop_drain();
	list_segs("cmp", NULL, 0, &after);
	uint64_t live = 20 * (uint64_t)(BIG + 24);
	if (verbose)
		fprintf(stderr, "compaction: %" PRIu64 " -> %" PRIu64 " bytes (live %" PRIu64 ")\n",
		        before, after, live);
	CU_ASSERT(after < 52u << 20);
	CU_ASSERT(after <= live + (1u << 20));
	CU_ASSERT(after >= live);
	check_read(q, 100, BIG); /* read() follows the move */
	struct got g;
	recover_into(q, &g, BIG);
	CU_ASSERT(got_exactly(&g, 1, 200, every10));
	got_free(&g);
	/* New work after compaction lands after it. */
	CU_ASSERT_EQUAL(be->ops.ack(q, 10), 0);
	CU_ASSERT_EQUAL(append_n(q, 201, 202, BIG), 0);
	CU_ASSERT_EQUAL(be->ops.delivered(q, 20), 0);
	CU_ASSERT_EQUAL(sync_wait(st), 0);
	be->ops.queue_close(q);
	stop_store(st, false);

	st = start_store(NULL);
	q = open_q(st, "cmp");
	recover_into(q, &g, BIG);
	CU_ASSERT_EQUAL(g.n, 21);
	CU_ASSERT(g.n == 21 && g.seq[0] == 20 && g.dlv[0] && g.seq[20] == 202);
	got_free(&g);
	CU_ASSERT_EQUAL(dropped_logged, 0);
	be->ops.queue_close(q);
	stop_store(st, true);
}

static void t_auto_compaction(void)
{
	void *st = start_store(NULL);
	amqpd_store_queue *q = open_q(st, "auto");
	/* Message 1 stays; everything after it is consumed as it comes, so
	 * only compaction can free the segments behind message 1. */
	CU_ASSERT_EQUAL(append_n(q, 1, 1, BIG), 0);
	for (uint64_t s = 2; s <= 400; s++) {
		CU_ASSERT_EQUAL(append_n(q, s, s, BIG), 0);
		CU_ASSERT_EQUAL(be->ops.ack(q, s), 0);
		if (s % 50 == 0)
			CU_ASSERT_EQUAL(sync_wait(st), 0);
	}
	CU_ASSERT_EQUAL(sync_wait(st), 0);
	loop_drain();
	uint64_t total;
	list_segs("auto", NULL, 0, &total);
	if (verbose)
		fprintf(stderr, "auto compaction: 100 MiB written, %" PRIu64 " on disk\n", total);
	CU_ASSERT(total < 30u << 20);
	be->ops.queue_close(q);
	stop_store(st, false);

	st = start_store(NULL);
	q = open_q(st, "auto");
	struct got g;
	recover_into(q, &g, BIG);
	CU_ASSERT(g.n == 1 && g.seq[0] == 1);
	got_free(&g);
	be->ops.queue_close(q);
	stop_store(st, true);
}

static void seg_path(char *out, size_t n, const char *qid, const char *name)
{
	if ((size_t)snprintf(out, n, "%s/%s/%s", tmpdir, qid, name) >= n)
		abort();
}

static int copy_file(const char *from, const char *to)
{
	FILE *in = fopen(from, "rb"), *out = in ? fopen(to, "wb") : NULL;
	char buf[65536];
	size_t n;
	int rc = in && out ? 0 : -1;
	while (rc == 0 && (n = fread(buf, 1, sizeof(buf), in)) > 0)
		if (fwrite(buf, 1, n, out) != n)
			rc = -1;
	if (in)
		fclose(in);
	if (out && fclose(out))
		rc = -1;
	return rc;
}

static bool every10_but10(uint64_t s)
{
	return s % 10 == 0 && s != 10;
}

/* A crash after the compacted segment was renamed into place but before the
 * old ones were unlinked: replay sees every live message twice, and acks
 * written after the compaction must still win. */
static void t_compaction_crash(void)
{
	char names[16][64], snap[1024], path[1024];
	void *st = start_store(NULL);
	amqpd_store_queue *q = open_q(st, "cc");
	CU_ASSERT_EQUAL(append_n(q, 1, 200, BIG), 0);
	for (uint64_t s = 1; s <= 200; s++)
		if (s % 10)
			CU_ASSERT_EQUAL(be->ops.ack(q, s), 0);
	CU_ASSERT_EQUAL(sync_wait(st), 0);
	loop_drain();
	int n = list_segs("cc", names, 16, NULL);
	CU_ASSERT_FATAL(n >= 2 && n <= 16);
	snprintf(snap, sizeof(snap), "%s/snap", tmpdir);
	CU_ASSERT_FATAL(mkdir(snap, 0700) == 0);
	for (int i = 0; i < n; i++) {
		char to[2048];
		seg_path(path, sizeof(path), "cc", names[i]);
		snprintf(to, sizeof(to), "%s/%s", snap, names[i]);
		CU_ASSERT_EQUAL(copy_file(path, to), 0);
	}
	CU_ASSERT_EQUAL(be->ops.compact(st), 0);
	CU_ASSERT_EQUAL(sync_wait(st), 0);
	loop_drain();
	CU_ASSERT_EQUAL(be->ops.ack(q, 10), 0);
	CU_ASSERT_EQUAL(be->ops.delivered(q, 20), 0);
	CU_ASSERT_EQUAL(sync_wait(st), 0);
	be->ops.queue_close(q);
	stop_store(st, false);
	/* Put back the files the compaction removed. */
	int restored = 0;
	for (int i = 0; i < n; i++) {
		char from[2048];
		seg_path(path, sizeof(path), "cc", names[i]);
		if (access(path, F_OK) == 0)
			continue;
		snprintf(from, sizeof(from), "%s/%s", snap, names[i]);
		CU_ASSERT_EQUAL(copy_file(from, path), 0);
		restored++;
	}
	CU_ASSERT(restored >= 1);
	rm_rf(snap);

	struct got g;
	log_reset();
	st = start_store(NULL);
	q = open_q(st, "cc");
	recover_into(q, &g, BIG);
	CU_ASSERT(got_exactly(&g, 1, 200, every10_but10));
	for (size_t i = 0; i < g.n; i++)
		CU_ASSERT_EQUAL(g.dlv[i], g.seq[i] == 20);
	got_free(&g);
	CU_ASSERT_EQUAL(dropped_logged, 0);
	be->ops.queue_close(q);
	stop_store(st, true);
}

static bool upto3(uint64_t s)
{
	return s <= 3;
}

/* After everything was acked and the broker restarted, seqs may start over:
 * replay is ordered, so an old ACK does not kill the new message. */
static void t_seq_reuse_after_restart(void)
{
	void *st = start_store(NULL);
	amqpd_store_queue *q = open_q(st, "reuse");
	CU_ASSERT_EQUAL(append_n(q, 1, 5, 0), 0);
	for (uint64_t s = 1; s <= 5; s++)
		CU_ASSERT_EQUAL(be->ops.ack(q, s), 0);
	CU_ASSERT_EQUAL(sync_wait(st), 0);
	be->ops.queue_close(q);
	stop_store(st, false);
	st = start_store(NULL);
	q = open_q(st, "reuse");
	CU_ASSERT_EQUAL(append_n(q, 1, 3, 0), 0);
	CU_ASSERT_EQUAL(sync_wait(st), 0);
	be->ops.queue_close(q);
	stop_store(st, false);
	st = start_store(NULL);
	q = open_q(st, "reuse");
	struct got g;
	recover_into(q, &g, 0);
	CU_ASSERT(got_exactly(&g, 1, 5, upto3));
	got_free(&g);
	be->ops.queue_close(q);
	stop_store(st, true);
}

/* Write n messages of len bytes to queue qid and stop dirty. */
static void build(const char *qid, uint64_t n, size_t len)
{
	void *st = start_store(NULL);
	amqpd_store_queue *q = open_q(st, qid);
	CU_ASSERT_EQUAL(append_n(q, 1, n, len), 0);
	CU_ASSERT_EQUAL(sync_wait(st), 0);
	be->ops.queue_close(q);
	stop_store(st, false);
}

/* Open the store again and recover qid; returns what came back. */
static void reopen_recover(const char *qid, struct got *g, size_t len)
{
	log_reset();
	bool clean = true;
	void *st = start_store(&clean);
	CU_ASSERT(!clean);
	amqpd_store_queue *q = open_q(st, qid);
	recover_into(q, g, len);
	/* The store keeps working after a damaged start. */
	static uint64_t extra = 100000;
	extra++;
	CU_ASSERT_EQUAL(be->ops.append(q, extra, payload(extra, len), len), 0);
	CU_ASSERT_EQUAL(sync_wait(st), 0);
	be->ops.queue_close(q);
	stop_store(st, false);
}

#define REC(len) (24 + (len))

static void corrupt_byte(const char *path, off_t off, uint8_t x)
{
	int fd = open(path, O_RDWR);
	uint8_t b;
	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_EQUAL(pread(fd, &b, 1, off), 1);
	b ^= x;
	CU_ASSERT_EQUAL(pwrite(fd, &b, 1, off), 1);
	close(fd);
}

static bool not5(uint64_t s)
{
	return s != 5;
}

static bool upto9(uint64_t s)
{
	return s <= 9;
}

static void t_corrupt_truncated(void)
{
	char names[4][64], path[600];
	struct got g;
	build("t", 10, 100);
	CU_ASSERT_EQUAL_FATAL(list_segs("t", names, 4, NULL), 1);
	seg_path(path, sizeof(path), "t", names[0]);
	CU_ASSERT_EQUAL(truncate(path, 10 * REC(100) - 50), 0);
	reopen_recover("t", &g, 100);
	CU_ASSERT(got_exactly(&g, 1, 10, upto9));
	CU_ASSERT_EQUAL(dropped_logged, 1);
	CU_ASSERT(log_has("storage: queue t: dropped 1 damaged records"));
	got_free(&g);
	/* The torn tail was cut off: the next start finds no damage, and what
	 * the last round added (behind it, in a new segment) is there. */
	reopen_recover("t", &g, 100);
	CU_ASSERT_EQUAL(g.n, 10);
	CU_ASSERT_EQUAL(dropped_logged, 0);
	got_free(&g);
	CU_ASSERT_EQUAL(list_segs("t", names, 4, NULL), 3);
	seg_path(path, sizeof(path), "t", names[0]);
	struct stat sb;
	CU_ASSERT(stat(path, &sb) == 0 && sb.st_size == 9 * REC(100));
}

static void t_corrupt_crc(void)
{
	char names[4][64], path[600];
	struct got g;
	/* (a) one flipped payload byte in record 5 */
	build("c", 10, 100);
	CU_ASSERT_EQUAL_FATAL(list_segs("c", names, 4, NULL), 1);
	seg_path(path, sizeof(path), "c", names[0]);
	corrupt_byte(path, 4 * REC(100) + 24 + 50, 0x40);
	reopen_recover("c", &g, 100);
	CU_ASSERT(got_exactly(&g, 1, 10, not5));
	CU_ASSERT_EQUAL(dropped_logged, 1);
	got_free(&g);
	rm_rf(tmpdir);
	new_tmpdir();

	/* (b) record 5's length field: the scanner resyncs on the magic */
	build("c", 10, 100);
	CU_ASSERT_EQUAL_FATAL(list_segs("c", names, 4, NULL), 1);
	seg_path(path, sizeof(path), "c", names[0]);
	corrupt_byte(path, 4 * REC(100) + 9, 0x11);
	reopen_recover("c", &g, 100);
	CU_ASSERT(got_exactly(&g, 1, 10, not5));
	CU_ASSERT_EQUAL(dropped_logged, 1);
	got_free(&g);
	rm_rf(tmpdir);
	new_tmpdir();

	/* (c) record 5's magic */
	build("c", 10, 100);
	CU_ASSERT_EQUAL_FATAL(list_segs("c", names, 4, NULL), 1);
	seg_path(path, sizeof(path), "c", names[0]);
	corrupt_byte(path, 4 * REC(100), 0xff);
	reopen_recover("c", &g, 100);
	CU_ASSERT(got_exactly(&g, 1, 10, not5));
	CU_ASSERT_EQUAL(dropped_logged, 1);
	got_free(&g);
}

#define HUGE_MSG (4u << 20) /* three per 16 MiB segment */

static bool not_4to6(uint64_t s)
{
	return s < 4 || s > 6;
}

static void t_corrupt_missing_segment(void)
{
	char names[8][64], path[600];
	struct got g;
	build("m", 9, HUGE_MSG);
	CU_ASSERT_EQUAL_FATAL(list_segs("m", names, 8, NULL), 3);
	seg_path(path, sizeof(path), "m", names[1]);
	CU_ASSERT_EQUAL(unlink(path), 0);
	reopen_recover("m", &g, HUGE_MSG);
	CU_ASSERT(got_exactly(&g, 1, 9, not_4to6));
	CU_ASSERT_EQUAL(dropped_logged, 0);
	CU_ASSERT(log_has("segment files missing"));
	got_free(&g);
}

static void t_corrupt_empty_and_garbage(void)
{
	char names[8][64], path[600];
	struct got g;
	build("z", 10, 100);
	CU_ASSERT_EQUAL_FATAL(list_segs("z", names, 8, NULL), 1);
	/* A zero-length segment before and after the real one, and a stale
	 * compaction output: ignored, removed, nothing dropped. */
	seg_path(path, sizeof(path), "z", "0000000000000001.seg");
	CU_ASSERT_EQUAL(close(open(path, O_CREAT | O_WRONLY, 0640)), 0);
	seg_path(path, sizeof(path), "z", "0000000000100001.seg");
	CU_ASSERT_EQUAL(close(open(path, O_CREAT | O_WRONLY, 0640)), 0);
	seg_path(path, sizeof(path), "z", "0000000000100002.seg.tmp");
	CU_ASSERT_EQUAL(close(open(path, O_CREAT | O_WRONLY, 0640)), 0);
	reopen_recover("z", &g, 100);
	CU_ASSERT(got_exactly(&g, 1, 10, keep_all));
	CU_ASSERT_EQUAL(dropped_logged, 0);
	CU_ASSERT(!log_has("missing"));
	CU_ASSERT_EQUAL(access(path, F_OK), -1);
	got_free(&g);

	/* A segment of random bytes after them (numbered past a gap, which is
	 * reported as missing segments too): one damaged region. */
	seg_path(path, sizeof(path), "z", "0000000000f00000.seg");
	FILE *f = fopen(path, "w");
	CU_ASSERT_FATAL(f != NULL);
	srand(7);
	for (int i = 0; i < 5000; i++)
		fputc(rand() & 0xff, f);
	fclose(f);
	reopen_recover("z", &g, 100);
	CU_ASSERT_EQUAL(g.n, 11); /* 1..10 and the one added by the last round */
	CU_ASSERT_EQUAL(dropped_logged, 1);
	got_free(&g);
	reopen_recover("z", &g, 100); /* reported once: the garbage was cut */
	CU_ASSERT_EQUAL(g.n, 12);
	CU_ASSERT_EQUAL(dropped_logged, 0);
	got_free(&g);
}

static void t_write_failure(void)
{
	void *st = start_store(NULL);
	amqpd_store_queue *q = open_q(st, "wf");
	CU_ASSERT_EQUAL(append_n(q, 1, 100, 0), 0);
	setenv("AMQPD_STORAGE_FAIL_WRITES", "1", 1);
	int rc = sync_wait(st);
	unsetenv("AMQPD_STORAGE_FAIL_WRITES");
	CU_ASSERT_EQUAL(rc, -EIO);
	CU_ASSERT(log_has("injected write failure"));
	check_read(q, 50, len_of(50)); /* still served from memory */
	CU_ASSERT_EQUAL(append_n(q, 101, 110, 0), 0);
	CU_ASSERT_EQUAL(sync_wait(st), 0); /* rewrites the failed data too */
	be->ops.queue_close(q);
	stop_store(st, false);

	st = start_store(NULL);
	q = open_q(st, "wf");
	struct got g;
	recover_into(q, &g, 0);
	CU_ASSERT(got_exactly(&g, 1, 110, keep_all));
	got_free(&g);
	CU_ASSERT_EQUAL(dropped_logged, 0);

	/* A failed final sync: stop(clean) must not claim a clean store. */
	CU_ASSERT_EQUAL(append_n(q, 111, 120, 0), 0);
	be->ops.queue_close(q);
	setenv("AMQPD_STORAGE_FAIL_WRITES", "1", 1);
	stop_store(st, true);
	unsetenv("AMQPD_STORAGE_FAIL_WRITES");
	bool clean = true;
	st = start_store(&clean);
	CU_ASSERT(!clean);
	stop_store(st, true);
}

/* A real failing write on the fsync thread: RLIMIT_FSIZE cuts a pwrite
 * short (EFBIG) in the middle of a record.  In a child, so the limit cannot
 * hit the test's own output. */
static void t_real_write_failure(void)
{
	fflush(NULL);
	pid_t pid = fork();
	CU_ASSERT_FATAL(pid >= 0);
	if (pid == 0) {
		void *st = NULL;
		char err[256];
		bool clean;
		amqpd_store_queue *q = NULL;
		uint64_t size;
		struct rlimit old, lim;
		if (be->ops.start(&st, tmpdir, &clean, err, sizeof(err)) ||
		    be->ops.queue_open(st, "rw", &q) || append_n(q, 1, 100, 0) || sync_wait(st))
			_exit(2);
		list_segs("rw", NULL, 0, &size);
		signal(SIGXFSZ, SIG_IGN);
		getrlimit(RLIMIT_FSIZE, &old);
		lim = old;
		lim.rlim_cur = size + 100;
		if (setrlimit(RLIMIT_FSIZE, &lim) || append_n(q, 101, 200, 0))
			_exit(3);
		if (sync_wait(st) != -EFBIG || !log_has("File too large"))
			_exit(4);
		check_read(q, 150, len_of(150));
		if (sync_wait(st) != -EFBIG) /* still failing: never success */
			_exit(5);
		setrlimit(RLIMIT_FSIZE, &old);
		if (sync_wait(st) != 0) /* rewrites everything since the last good one */
			_exit(6);
		be->ops.queue_close(q);
		be->ops.stop(st, true);
		_exit(0);
	}
	int ws;
	CU_ASSERT_EQUAL(waitpid(pid, &ws, 0), pid);
	CU_ASSERT(WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
	if (!WIFEXITED(ws) || WEXITSTATUS(ws))
		fprintf(stderr, "  child status %d\n", ws);
	bool clean = false;
	void *st = start_store(&clean);
	CU_ASSERT(clean);
	amqpd_store_queue *q = open_q(st, "rw");
	struct got g;
	recover_into(q, &g, 0);
	CU_ASSERT(got_exactly(&g, 1, 200, keep_all));
	got_free(&g);
	CU_ASSERT_EQUAL(dropped_logged, 0);
	be->ops.queue_close(q);
	stop_store(st, true);
}

static void t_stop_with_sync_in_flight(void)
{
	void *st = start_store(NULL);
	amqpd_store_queue *q = open_q(st, "inflight");
	CU_ASSERT_EQUAL(append_n(q, 1, 2000, 0), 0);
	struct syncw w = {0};
	CU_ASSERT_EQUAL(be->ops.sync(st, on_done, &w), 0);
	be->ops.queue_close(q);
	be->ops.stop(st, true); /* waits for the sync and reports it */
	CU_ASSERT_EQUAL(w.calls, 1);
	CU_ASSERT_EQUAL(w.status, 0);
	loop_drain();
	CU_ASSERT_EQUAL(w.calls, 1);
	CU_ASSERT_EQUAL(atomic_load(&live_blocks), 0);
	bool clean = false;
	st = start_store(&clean);
	CU_ASSERT(clean);
	q = open_q(st, "inflight");
	struct got g;
	recover_into(q, &g, 0);
	CU_ASSERT(got_exactly(&g, 1, 2000, keep_all));
	got_free(&g);
	be->ops.queue_close(q);
	stop_store(st, true);
}

static void t_close_reopen_unsynced(void)
{
	void *st = start_store(NULL);
	amqpd_store_queue *q = open_q(st, "cr");
	/* Over 1 MiB so part of it is on its way to disk when we close. */
	CU_ASSERT_EQUAL(append_n(q, 1, 5000, 0), 0);
	CU_ASSERT_EQUAL(be->ops.delivered(q, 4999), 0);
	be->ops.queue_close(q);
	q = open_q(st, "cr");
	struct got g;
	recover_into(q, &g, 0);
	CU_ASSERT(got_exactly(&g, 1, 5000, keep_all));
	CU_ASSERT(g.n == 5000 && g.dlv[4998]);
	got_free(&g);
	be->ops.queue_close(q);
	stop_store(st, true);
}

static void t_big_message(void)
{
	const size_t big = 20u << 20; /* larger than a segment */
	void *st = start_store(NULL);
	amqpd_store_queue *q = open_q(st, "big");
	CU_ASSERT_EQUAL(append_n(q, 1, 3, big), 0);
	CU_ASSERT_EQUAL(sync_wait(st), 0);
	check_read(q, 2, big);
	be->ops.queue_close(q);
	stop_store(st, false);
	st = start_store(NULL);
	q = open_q(st, "big");
	struct got g;
	recover_into(q, &g, big);
	CU_ASSERT(got_exactly(&g, 1, 3, keep_all));
	got_free(&g);
	check_read(q, 3, big);
	be->ops.queue_close(q);
	stop_store(st, true);
}

static void t_many_queues(void)
{
	/* More queues than the store keeps idle fds open for. */
	enum { NQ = 300 };
	static amqpd_store_queue *qs[NQ];
	char id[16];
	void *st = start_store(NULL);
	for (int i = 0; i < NQ; i++) {
		snprintf(id, sizeof(id), "mq%d", i);
		qs[i] = open_q(st, id);
		CU_ASSERT_EQUAL(append_n(qs[i], 1, 3, 0), 0);
	}
	CU_ASSERT_EQUAL(sync_wait(st), 0);
	for (int round = 0; round < 2; round++)
		for (int i = 0; i < NQ; i++)
			check_read(qs[i], 2, len_of(2));
	for (int i = 0; i < NQ; i++)
		CU_ASSERT_EQUAL(append_n(qs[i], 4, 4, 0), 0);
	CU_ASSERT_EQUAL(sync_wait(st), 0);
	for (int i = 0; i < NQ; i++)
		be->ops.queue_close(qs[i]);
	stop_store(st, false);
	st = start_store(NULL);
	for (int i = 0; i < NQ; i++) {
		snprintf(id, sizeof(id), "mq%d", i);
		qs[i] = open_q(st, id);
	}
	for (int i = 0; i < NQ; i++) {
		struct got g;
		recover_into(qs[i], &g, 0);
		CU_ASSERT(got_exactly(&g, 1, 4, keep_all));
		got_free(&g);
	}
	for (int i = 0; i < NQ; i++)
		be->ops.queue_close(qs[i]);
	stop_store(st, true);
}

static void t_entry_point(void)
{
	for (int i = 0; i < 2; i++) {
		amqpd_plugin_entry_fn entry;
		uint32_t chosen = 0;
		*(void **)&entry = dlsym(plugins[i].dl, AMQPD_PLUGIN_ENTRY_SYMBOL);
		CU_ASSERT_PTR_NOT_NULL_FATAL(entry);
		CU_ASSERT_PTR_NULL(entry(2, 5, &chosen));
		CU_ASSERT_PTR_NOT_NULL(entry(0, 7, &chosen));
		CU_ASSERT_EQUAL(chosen, 1);
		/* Hidden visibility: nothing else is exported. */
		CU_ASSERT_PTR_NULL(dlsym(plugins[i].dl, "crc32c_update"));
		CU_ASSERT_PTR_NULL(dlsym(plugins[i].dl, "seg_scan"));
	}
	CU_ASSERT_STRING_EQUAL(PFILE->ops.name, "file");
	CU_ASSERT_STRING_EQUAL(PMEM->ops.name, "memory");
	CU_ASSERT_EQUAL(atomic_load(&wrong_thread), 0);
}

static void t_memory_nothing_survives(void)
{
	bool clean = false;
	void *st = start_store(&clean);
	CU_ASSERT(clean);
	amqpd_store_queue *q = open_q(st, "m");
	CU_ASSERT_EQUAL(append_n(q, 1, 10, 0), 0);
	CU_ASSERT_EQUAL(sync_wait(st), 0);
	be->ops.queue_close(q);
	stop_store(st, false);
	st = start_store(&clean);
	CU_ASSERT(clean);
	q = open_q(st, "m");
	struct got g;
	recover_into(q, &g, 0);
	CU_ASSERT_EQUAL(g.n, 0);
	got_free(&g);
	be->ops.queue_close(q);
	stop_store(st, true);
}

static void t_threading(void)
{
	CU_ASSERT_EQUAL(atomic_load(&wrong_thread), 0);
}

/* ----------------------------------------------------------- benchmark */

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Copy each message out, as a host loading it into RAM would. */
static void count_msg(void *ctx, const struct amqpd_stored_msg *m)
{
	static uint8_t copy[1024];
	uint64_t *n = ctx;
	if (m->len == sizeof(copy)) {
		memcpy(copy, m->data, m->len);
		(*n) += copy[m->seq % sizeof(copy)] == 'x';
	}
}

static int bench(uint64_t n)
{
	be = PFILE;
	new_tmpdir();
	uint8_t msg[1024];
	memset(msg, 'x', sizeof(msg));

	/* 1: append + sync every 1000, 100k messages, waiting for each sync. */
	void *st = start_store(NULL);
	amqpd_store_queue *q = open_q(st, "bench");
	double t0 = now();
	for (uint64_t s = 1; s <= 100000; s++) {
		if (be->ops.append(q, s, msg, sizeof(msg)))
			return 1;
		if (s % 1000 == 0 && sync_wait(st))
			return 1;
	}
	double t1 = now();
	printf("append+sync: 100000 x 1 KiB, sync every 1000: %.3f s, %.0f msg/s, %.1f MiB/s\n",
	       t1 - t0, 100000 / (t1 - t0), 100000 * 1024.0 / (1 << 20) / (t1 - t0));
	t0 = now();
	for (uint64_t s = 1; s <= 100000; s++)
		be->ops.ack(q, s);
	if (sync_wait(st))
		return 1;
	t1 = now();
	printf("ack+sync: 100000 acks, one sync: %.3f s\n", t1 - t0);
	be->ops.queue_close(q);
	be->ops.stop(st, true);
	loop_drain();
	rm_rf(tmpdir);
	new_tmpdir();

	/* 2: recovery of n live messages. */
	st = start_store(NULL);
	q = open_q(st, "bench");
	t0 = now();
	for (uint64_t s = 1; s <= n; s++) {
		if (be->ops.append(q, s, msg, sizeof(msg)))
			return 1;
		if (s % 10000 == 0 && sync_wait(st))
			return 1;
	}
	if (sync_wait(st))
		return 1;
	t1 = now();
	printf("load: %" PRIu64 " x 1 KiB, sync every 10000: %.3f s, %.0f msg/s\n", n, t1 - t0,
	       (double)n / (t1 - t0));
	be->ops.queue_close(q);
	be->ops.stop(st, false);
	loop_drain();
	for (int cold = 0; cold < 2; cold++) {
		if (cold) { /* evict the queue's files from the page cache */
			char path[512];
			snprintf(path, sizeof(path), "%s/bench", tmpdir);
			DIR *d = opendir(path);
			struct dirent *de;
			while (d && (de = readdir(d))) {
				char p[800];
				snprintf(p, sizeof(p), "%s/%s", path, de->d_name);
				int fd = open(p, O_RDONLY);
				if (fd >= 0) {
					fdatasync(fd);
					posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
					close(fd);
				}
			}
			if (d)
				closedir(d);
		}
		t0 = now();
		st = start_store(NULL);
		q = open_q(st, "bench");
		double t2 = now();
		uint64_t got = 0;
		be->ops.recover(q, count_msg, &got);
		t1 = now();
		printf("recovery (%s cache): %" PRIu64 " messages in %.3f s (open+scan %.3f s, "
		       "replay %.3f s)%s\n",
		       cold ? "cold" : "warm", got, t1 - t0, t2 - t0, t1 - t2,
		       got == n ? "" : "  MISMATCH");
		be->ops.queue_close(q);
		be->ops.stop(st, false);
		loop_drain();
		if (got != n)
			return 1;
	}
	rm_rf(tmpdir);
	return 0;
}

static uint64_t bench_n;

static void t_bench(void)
{
	CU_ASSERT_EQUAL(bench(bench_n), 0);
}

/* ---------------------------------------------------------------- main */

struct tdef {
	const char *name;
	void (*fn)(void);
};

int main(int argc, char **argv)
{
	main_thread = pthread_self();
	verbose = getenv("AMQPD_TEST_VERBOSE") != NULL;
	signal(SIGPIPE, SIG_IGN);
	if (load_plugins())
		return 1;
	bool benchmark = argc > 1 && strcmp(argv[1], "--bench") == 0;
	if (benchmark)
		bench_n = argc > 2 ? strtoull(argv[2], NULL, 10) : 1000000;

	static const struct tdef common[] = {
	    {"append/ack/recover order", t_order_ack_recover},
	    {"delivered flag", t_delivered},
	    {"read", t_read},
	    {"purge", t_purge},
	    {"queue_list and queue_delete", t_list_delete},
	    {"stats", t_stats},
	    {"errors and seq order", t_errors},
	    {"group sync", t_group_sync},
	    {"stop with queues open", t_stop_open_queues},
	};
	static const struct tdef file_only[] = {
	    {"restart clean and dirty, lock", t_restart_clean_dirty},
	    {"kill -9 of a forked broker", t_kill9},
	    {"segments deleted once acked", t_segment_deletion},
	    {"compaction shrinks disk use", t_compaction},
	    {"automatic compaction", t_auto_compaction},
	    {"crash in the middle of a compaction", t_compaction_crash},
	    {"seq reuse after a restart", t_seq_reuse_after_restart},
	    {"corrupt: truncated segment", t_corrupt_truncated},
	    {"corrupt: bad CRC / length / magic", t_corrupt_crc},
	    {"corrupt: missing segment", t_corrupt_missing_segment},
	    {"corrupt: empty and garbage segments", t_corrupt_empty_and_garbage},
	    {"injected write failure", t_write_failure},
	    {"real write failure (RLIMIT_FSIZE)", t_real_write_failure},
	    {"stop with a sync in flight", t_stop_with_sync_in_flight},
	    {"close and reopen before sync", t_close_reopen_unsynced},
	    {"message larger than a segment", t_big_message},
	    {"many queues (fd cache)", t_many_queues},
	};

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	if (benchmark) {
		CU_add_test(CU_add_suite("bench", NULL, NULL), "file backend", t_bench);
		goto run;
	}
	CU_pSuite s0 = CU_add_suite("plugins", NULL, NULL);
	CU_add_test(s0, "entry points", t_entry_point);
	CU_pSuite sm =
	    CU_add_suite_with_setup_and_teardown("memory", init_mem, NULL, t_setup, t_teardown);
	CU_pSuite sf =
	    CU_add_suite_with_setup_and_teardown("file", init_file, NULL, t_setup, t_teardown);
	for (size_t i = 0; i < sizeof(common) / sizeof(common[0]); i++) {
		CU_add_test(sm, common[i].name, common[i].fn);
		CU_add_test(sf, common[i].name, common[i].fn);
	}
	CU_add_test(sm, "nothing survives a restart", t_memory_nothing_survives);
	for (size_t i = 0; i < sizeof(file_only) / sizeof(file_only[0]); i++)
		CU_add_test(sf, file_only[i].name, file_only[i].fn);
	CU_pSuite se = CU_add_suite("threading", NULL, NULL);
	CU_add_test(se, "host called on the loop thread only", t_threading);

run:
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	unsigned failed = CU_get_number_of_failures();
	unsigned tests_failed = CU_get_number_of_tests_failed();
	CU_cleanup_registry();
	log_reset();
	return failed || tests_failed ? 1 : 0;
}
