/*
 * test_storage.c - CUnit tests for the storage backends ("file", "memory"),
 * run through a test host of their own (storage_test_host.c), and main().
 *
 * Suites: "plugins" (entry points), "memory" and "file" (the same API tests
 * run against both backends, here; the memory backend also checks that
 * nothing survives a restart, and the file backend gets the tests of
 * test_storage_file.c: restarts, kill -9, compaction, corrupt-file
 * fixtures, write failures, fd-cache churn), then "threading" (the host was
 * only ever called on the loop thread).
 * Stores live in mkdtemp directories under /tmp, removed afterwards.
 * Plugins are loaded from $top_builddir/plugins/lib; AMQPD_TEST_VERBOSE
 * echoes the plugins' log lines.
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
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "storage_test_host.h"

/* ------------------------------------------------------- suite fixtures */

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

static int init_v1(void)
{
	be = PV1;
	return 0;
}

/* ------------------------------------------------- tests, both backends */

static bool not_div3(uint64_t s)
{
	return s % 3 != 0;
}

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

/* ------------------------------- entry points, memory only, threading */

static void t_entry_point(void)
{
	for (int i = 0; i < 3; i++) {
		amqpd_plugin_entry_fn entry;
		uint32_t chosen = 0, abi = i < 2 ? 2 : 1;
		*(void **)&entry = dlsym(plugins[i].p->dl, AMQPD_PLUGIN_ENTRY_SYMBOL);
		CU_ASSERT_PTR_NOT_NULL_FATAL(entry);
		CU_ASSERT_PTR_NULL(entry(abi + 1, 5, &chosen));
		CU_ASSERT_PTR_NOT_NULL(entry(0, 7, &chosen));
		CU_ASSERT_EQUAL(chosen, abi);
		CU_ASSERT_EQUAL(plugins[i].p->abi, abi);
		/* Hidden visibility: nothing else is exported. */
		CU_ASSERT_PTR_NULL(dlsym(plugins[i].p->dl, "crc32c_update"));
		CU_ASSERT_PTR_NULL(dlsym(plugins[i].p->dl, "seg_scan"));
	}
	CU_ASSERT_STRING_EQUAL(PFILE->sb->name, "file");
	CU_ASSERT_STRING_EQUAL(PMEM->sb->name, "memory");
	CU_ASSERT_STRING_EQUAL(PV1->sb->name, "memory-v1");
	/* The file backend's options reached it as its userdata. */
	CU_ASSERT_PTR_NOT_NULL(PFILE->p->userdata);
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
	/* The same backend built for ABI 1, through the host's v1 adapter. */
	CU_pSuite s1 =
	    CU_add_suite_with_setup_and_teardown("memory-v1", init_v1, NULL, t_setup, t_teardown);
	for (size_t i = 0; i < sizeof(common) / sizeof(common[0]); i++) {
		CU_add_test(sm, common[i].name, common[i].fn);
		CU_add_test(sf, common[i].name, common[i].fn);
		CU_add_test(s1, common[i].name, common[i].fn);
	}
	CU_add_test(sm, "nothing survives a restart", t_memory_nothing_survives);
	CU_add_test(s1, "nothing survives a restart", t_memory_nothing_survives);
	add_file_backend_tests(sf);
	CU_pSuite se = CU_add_suite("threading", NULL, NULL);
	CU_add_test(se, "host called on the loop thread only", t_threading);

run:
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	unsigned failed = CU_get_number_of_failures();
	unsigned tests_failed = CU_get_number_of_tests_failed();
	CU_cleanup_registry();
	unload_plugins();
	log_reset();
	return failed || tests_failed ? 1 : 0;
}
