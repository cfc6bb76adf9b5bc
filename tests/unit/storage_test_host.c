/*
 * storage_test_host.c - the test host of the storage backend tests
 * (declared in storage_test_host.h).
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
 * Also here: the helpers the tests are written with - stores in mkdtemp
 * directories under /tmp (removed afterwards), start/stop with a leak check,
 * self-checking payloads, recovery into a list of seqs, sync-and-wait and
 * read-and-check.
 *
 * Ownership: each test starts and stops its own store; after stop and a
 * drain of the loop queue the allocator must be back to zero live blocks.
 */
#include <dlfcn.h>
#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "storage_test_host.h"

/* ---------------------------------------------------------------- host */

struct amqpd_plugin plugins[2] = {{.file = "storage_file.so"}, {.file = "storage_memory.so"}};

pthread_t main_thread;
atomic_long live_blocks;
atomic_long wrong_thread; /* host calls made off the loop thread */
bool verbose;

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
uint64_t dropped_logged;

void log_reset(void)
{
	free(logbuf);
	logbuf = NULL;
	loglen = 0;
	dropped_logged = 0;
}

bool log_has(const char *s)
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
bool loop_once(int ms)
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

void loop_drain(void)
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

int load_plugins(void)
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

struct amqpd_plugin *be; /* the backend under test */
char tmpdir[256];

static int rm_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	chmod(path, 0700);
	return remove(path);
}

void rm_rf(const char *path)
{
	nftw(path, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

void new_tmpdir(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/amqpd-storage-XXXXXX");
	if (!mkdtemp(tmpdir))
		abort();
}

void *start_store(bool *clean)
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
void stop_store(void *st, bool clean)
{
	be->ops.stop(st, clean);
	loop_drain();
	CU_ASSERT_EQUAL(atomic_load(&live_blocks), 0);
}

amqpd_store_queue *open_q(void *st, const char *qid)
{
	amqpd_store_queue *q = NULL;
	int rc = be->ops.queue_open(st, qid, &q);
	CU_ASSERT_EQUAL_FATAL(rc, 0);
	return q;
}

/* Payload of seq: 8 bytes of seq, then a pattern; checkable from itself. */
uint8_t *payload(uint64_t seq, size_t len)
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

bool payload_ok(const struct amqpd_stored_msg *m)
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

size_t len_of(uint64_t seq)
{
	return 16 + (size_t)(seq * 37 % 300);
}

int append_n(amqpd_store_queue *q, uint64_t from, uint64_t to, size_t len)
{
	for (uint64_t s = from; s <= to; s++) {
		size_t l = len ? len : len_of(s);
		int rc = be->ops.append(q, s, payload(s, l), l);
		if (rc)
			return rc;
	}
	return 0;
}

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

void got_free(struct got *g)
{
	free(g->seq);
	free(g->dlv);
	memset(g, 0, sizeof(*g));
}

void recover_into(amqpd_store_queue *q, struct got *g, size_t want_len)
{
	memset(g, 0, sizeof(*g));
	g->want_len = want_len;
	CU_ASSERT_EQUAL(be->ops.recover(q, collect, g), 0);
	CU_ASSERT_EQUAL(g->bad, 0);
	CU_ASSERT_EQUAL(g->lenmismatch, 0);
}

/* Recovered exactly the seqs for which keep(seq) over [from, to]. */
bool got_exactly(struct got *g, uint64_t from, uint64_t to, bool (*keep)(uint64_t))
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

bool keep_all(uint64_t s)
{
	(void)s;
	return true;
}

void on_done(void *ctx, int status)
{
	struct syncw *w = ctx;
	check_thread();
	w->calls++;
	w->status = status;
}

/* Sync and run the loop until done; returns its status. */
int sync_wait(void *st)
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

void on_read(void *ctx, const struct amqpd_stored_msg *m)
{
	struct readc *r = ctx;
	r->calls++;
	r->seq = m->seq;
	r->len = m->len;
	r->delivered = m->delivered;
	r->ok = payload_ok(m);
}

void check_read(amqpd_store_queue *q, uint64_t seq, size_t len)
{
	struct readc r = {0};
	CU_ASSERT_EQUAL(be->ops.read(q, seq, on_read, &r), 0);
	CU_ASSERT_EQUAL(r.calls, 1);
	CU_ASSERT_EQUAL(r.seq, seq);
	CU_ASSERT_EQUAL(r.len, len);
	CU_ASSERT(r.ok);
}
