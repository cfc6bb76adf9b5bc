/*
 * test_storage_file.c - CUnit tests for what only the file storage backend
 * does, added to the "file" suite of test_storage after the tests both
 * backends get (through the host in storage_test_host.c).
 *
 * Restarts (clean, dirty, a real kill -9 of a forked child), segment
 * deletion, compaction (and a crash in its middle, rebuilt from copies of
 * the old segments), corrupt-file fixtures built by the test (truncated
 * segment, bad CRC / length / magic, missing, empty and garbage segments),
 * an injected write failure (option fail_writes_flag), a real one
 * (RLIMIT_FSIZE in a forked child), stop with a sync in flight, messages
 * larger than a segment and fd-cache churn.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "storage_test_host.h"

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
	fail_writes(true);
	int rc = sync_wait(st);
	fail_writes(false);
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
	fail_writes(true);
	stop_store(st, true);
	fail_writes(false);
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
	CU_ASSERT_EQUAL(live_blocks_now(), 0);
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

/* ----------------------------------------------------------- the suite */

void add_file_backend_tests(CU_pSuite sf)
{
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

	for (size_t i = 0; i < sizeof(file_only) / sizeof(file_only[0]); i++)
		CU_add_test(sf, file_only[i].name, file_only[i].fn);
}
