/*
 * storage_test_host.c - the storage backend tests' host (declared in
 * storage_test_host.h): the broker's own plugin host, not a copy of its
 * rules.
 *
 * load_plugins() starts a plugin host on a private event base and loads
 * storage_file.so and storage_memory.so from $top_builddir/plugins/lib and
 * the ABI 1 memory backend from tests/abi-v1 through plugin_host_load (the
 * file backend with its fail_writes_flag option pointing at a scratch
 * file).  The tests call backends through `be->ops`, forwarders to the
 * host's plugin_storage_* wrappers.  The main thread is the loop:
 * loop_once() runs the event base until a run_on_loop / complete call has
 * run.  Logging: this file provides log_vmsg / log_msg / log_enabled (the
 * link seam of server/util/log.c) and captures the lines, so the tests can
 * read back e.g. a file store's "dropped N damaged records".
 *
 * Also here: the helpers the tests are written with - stores in mkdtemp
 * directories under /tmp (removed afterwards), start/stop with a leak check
 * against the host's per-plugin accounting, self-checking payloads,
 * recovery into a list of seqs, sync-and-wait and read-and-check.
 *
 * Ownership: each test starts and stops its own store; after stop and a
 * drain of the loop the plugin must hold no more blocks than after loading.
 */
#include <dlfcn.h>
#include <errno.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "storage_test_host.h"
#include "util/log.h"

/* ---------------------------------------------------------------- host */

struct plugin_host th;
static struct event_base *base;
struct tbe plugins[3] = {
    {.file = "plugins/lib/storage_file.so", .backend = "file"},
    {.file = "plugins/lib/storage_memory.so", .backend = "memory"},
    {.file = "tests/abi-v1/.libs/v1_storage_memory.so", .backend = "memory-v1"},
};
struct tbe *be; /* the backend under test */

pthread_t main_thread;
atomic_long wrong_thread;
bool verbose;
static char flag_path[128];

void fail_writes(bool on)
{
	if (on) {
		int fd = open(flag_path, O_WRONLY | O_CREAT, 0600);
		CU_ASSERT_FATAL(fd >= 0);
		close(fd);
	} else {
		unlink(flag_path);
	}
}

static long blocks_of(const struct tbe *t)
{
	struct amqpd_mem_usage u;
	plugin_host_mem_usage(t->p, &u);
	return (long)u.blocks;
}

long live_blocks_now(void)
{
	return blocks_of(be) - be->base_blocks;
}

/* ---- the log (link seam of server/util/log.c) ---- */

static char *logbuf;
static size_t loglen;
uint64_t dropped_logged;
static pthread_mutex_t log_mtx = PTHREAD_MUTEX_INITIALIZER;

void log_reset(void)
{
	pthread_mutex_lock(&log_mtx);
	free(logbuf);
	logbuf = NULL;
	loglen = 0;
	dropped_logged = 0;
	pthread_mutex_unlock(&log_mtx);
}

bool log_has(const char *s)
{
	pthread_mutex_lock(&log_mtx);
	bool r = logbuf && strstr(logbuf, s);
	pthread_mutex_unlock(&log_mtx);
	return r;
}

bool log_enabled(enum log_level level)
{
	(void)level;
	return true;
}

void log_set_level(enum log_level level)
{
	(void)level;
}

void log_vmsg(enum log_level level, const char *prefix, const char *fmt, va_list ap)
{
	char line[1024];
	vsnprintf(line, sizeof(line), fmt, ap);
	if (verbose)
		fprintf(stderr, "[%s] %d: %s\n", prefix ? prefix : "host", (int)level, line);
	pthread_mutex_lock(&log_mtx);
	if (strstr(line, "called off the loop thread"))
		atomic_fetch_add(&wrong_thread, 1);
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
	pthread_mutex_unlock(&log_mtx);
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_vmsg(level, NULL, fmt, ap);
	va_end(ap);
}

/* ---- forwarders: the tests' calls through the host's wrappers ---- */

static int f_start(void **store, const char *dir, bool *clean, char *err, size_t errlen)
{
	amqpd_store *st = NULL;
	int rc = plugin_storage_start(be->sb, &st, dir, clean, err, errlen);
	*store = st;
	return rc;
}

static void f_stop(void *store, bool clean)
{
	plugin_storage_stop(be->sb, store, clean);
}

static int f_queue_open(void *store, const char *qid, amqpd_store_queue **q)
{
	return plugin_storage_queue_open(be->sb, store, qid, q);
}

static void f_queue_close(amqpd_store_queue *q)
{
	plugin_storage_queue_close(be->sb, q);
}

static int f_queue_delete(void *store, const char *qid)
{
	return plugin_storage_queue_delete(be->sb, store, qid);
}

static int f_queue_list(void *store, void (*fn)(void *ctx, const char *qid), void *ctx)
{
	return plugin_storage_queue_list(be->sb, store, fn, ctx);
}

static int f_recover(amqpd_store_queue *q, amqpd_stored_msg_fn fn, void *ctx)
{
	return plugin_storage_recover(be->sb, q, fn, ctx);
}

/* One buffer as a gather list of up to three pieces, so backends see
 * split messages as the broker hands them. */
static int f_append(amqpd_store_queue *q, uint64_t seq, const uint8_t *data, size_t len)
{
	struct amqpd_iov iov[3];
	size_t a = len / 3, b = len / 2;
	iov[0] = (struct amqpd_iov){data, a};
	iov[1] = (struct amqpd_iov){data ? data + a : NULL, b - a};
	iov[2] = (struct amqpd_iov){data ? data + b : NULL, len - b};
	return plugin_storage_append(be->sb, q, seq, iov, 3);
}

static int f_ack(amqpd_store_queue *q, uint64_t seq)
{
	return plugin_storage_ack(be->sb, q, seq);
}

static int f_delivered(amqpd_store_queue *q, uint64_t seq)
{
	return plugin_storage_delivered(be->sb, q, seq);
}

static int f_read(amqpd_store_queue *q, uint64_t seq, amqpd_stored_msg_fn fn, void *ctx)
{
	return plugin_storage_read(be->sb, q, seq, fn, ctx);
}

static int f_sync(void *store, void (*done)(void *ctx, int status), void *ctx)
{
	return plugin_storage_sync(be->sb, store, done, ctx);
}

static int f_purge(amqpd_store_queue *q)
{
	return plugin_storage_purge(be->sb, q);
}

static int f_compact(void *store)
{
	return plugin_storage_compact(be->sb, store);
}

static int f_stats(void *store, struct amqpd_storage_stats *out)
{
	return plugin_storage_stats(be->sb, store, out);
}

static const struct tops forwarders = {
    f_start,      f_stop,    f_queue_open, f_queue_close, f_queue_delete,
    f_queue_list, f_recover, f_append,     f_ack,         f_delivered,
    f_read,       f_sync,    f_purge,      f_compact,     f_stats,
};

/* ---- the loop ---- */

static void wake_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
}

/* Run posted calls, waiting up to ms for one; false if none ran. */
bool loop_once(int ms)
{
	uint64_t before = th.calls_run;
	event_base_loop(base, EVLOOP_NONBLOCK);
	if (th.calls_run != before || ms <= 0)
		return th.calls_run != before;
	struct event *t = evtimer_new(base, wake_cb, NULL);
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
	CU_ASSERT_FATAL(t != NULL);
	evtimer_add(t, &tv);
	event_base_loop(base, EVLOOP_ONCE);
	event_free(t);
	return th.calls_run != before;
}

void loop_drain(void)
{
	while (loop_once(0))
		;
}

int load_plugins(void)
{
	const char *top = getenv("top_builddir");
	evthread_use_pthreads();
	base = event_base_new();
	if (!base || plugin_host_init(&th, base) < 0)
		return -1;
	snprintf(flag_path, sizeof(flag_path), "/tmp/amqpd-storage-failflag-%ld", (long)getpid());
	unlink(flag_path);
	char opt[256], err[256];
	snprintf(opt, sizeof(opt), "storage-file.fail_writes_flag=%s", flag_path);
	if (plugin_host_add_option(&th, opt, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s\n", err);
		return -1;
	}
	for (int i = 0; i < 3; i++) {
		struct tbe *t = &plugins[i];
		char path[1024];
		snprintf(path, sizeof(path), "%s/%s", top ? top : ".", t->file);
		if (plugin_host_load(&th, path) != 0) {
			fprintf(stderr, "%s: did not load (AMQPD_TEST_VERBOSE=1 says why)\n", path);
			return -1;
		}
		t->p = th.plugins; /* the newest is first */
		t->sb = plugin_host_storage(&th, t->backend);
		if (!t->sb) {
			fprintf(stderr, "%s: registered no backend '%s'\n", path, t->backend);
			return -1;
		}
		t->ops = forwarders;
		t->base_blocks = blocks_of(t);
	}
	return plugin_host_check_options(&th);
}

void unload_plugins(void)
{
	plugin_host_unload_all(&th);
	event_base_free(base);
	base = NULL;
	unlink(flag_path);
}

/* ------------------------------------------------------------- helpers */

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
	CU_ASSERT_EQUAL(live_blocks_now(), 0);
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
	if (!pthread_equal(pthread_self(), main_thread))
		atomic_fetch_add(&wrong_thread, 1);
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
