/*
 * test_durability.c - what survives a restart of amqpd, checked the way
 * RabbitMQ behaves: durable exchanges, queues and bindings (a binding only
 * when both ends are durable; exchange-to-exchange ones and bindings from
 * predeclared exchanges included) come back, transient ones do not;
 * persistent messages in durable queues come back byte-exact with all 14
 * properties, in order, acked (and rejected) ones gone, delivered-but-
 * unacked ones with redelivered set, never-delivered ones without it;
 * transient messages, purged messages, deleted and exclusive queues stay
 * gone; queue arguments stay in force; whatever was confirmed (or
 * committed) before a kill -9 is there afterwards; 40 MiB over several
 * segment files come back and their space is given back once acked; a
 * second amqpd on the same data directory refuses to start.
 *
 * Every test starts its own amqpd (not g_broker) on a fresh data directory
 * under $top_builddir/tests/integration, stops it with SIGTERM (expecting
 * exit status 0) or kills it with SIGKILL, and starts a new one on the same
 * directory.  Acks, reject and delivered marks are not confirmed by
 * themselves: before a kill -9 a test publishes one more persistent message
 * and waits for its confirm, since a sync covers everything written before
 * it.  A passing test removes its data directory and its amqpd logs; a
 * failed one keeps them and says where.  Skipped against an external
 * broker (AMQPD_TEST_EXTERNAL).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <amqp.h>
#include <amqp_framing.h>

#include "itest.h"
#include "itest_util.h"

/* ---- this suite's own broker ---------------------------------------------- */

static struct broker g_db;     /* pid 0 while not running */
static char g_dir[600];        /* its data directory, "" when none */
static pid_t g_extra;          /* a second amqpd started by hand */
static unsigned g_failures_at; /* CUnit's failure count when the test began */
static unsigned g_msg_reports; /* message mismatches printed by this test */
static char g_logs[16][512];   /* the logs of this test's brokers */
static int g_nlogs;

static int free_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		return 1;
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &len) < 0) {
		close(fd);
		return 1;
	}
	close(fd);
	return ntohs(a.sin_port);
}

static const char *top_builddir(void)
{
	const char *top = getenv("top_builddir");
	return top && *top ? top : ".";
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

static long long g_du;

static int du_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)path;
	(void)ftw;
	if (flag == FTW_F)
		g_du += (long long)sb->st_size;
	return 0;
}

/* The bytes in the regular files under dir. */
static long long dir_bytes(const char *dir)
{
	g_du = 0;
	nftw(dir, du_one, 16, FTW_PHYS);
	return g_du;
}

static void rm_rf(const char *dir)
{
	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void reap(pid_t *pid)
{
	if (*pid > 0) {
		kill(*pid, SIGKILL);
		waitpid(*pid, NULL, 0);
	}
	*pid = 0;
}

/* Whatever a test that failed fatally left behind: kill its brokers, keep
 * its data directory for a post-mortem. */
static void leftovers(void)
{
	pid_t p = g_db.pid;
	reap(&p);
	g_db.pid = 0;
	reap(&g_extra);
	if (g_dir[0])
		fprintf(stderr, "\n  [durability] data directory kept: %s (last log %s)\n", g_dir,
		        g_db.log_path);
	g_dir[0] = '\0';
	g_nlogs = 0;
}

static int suite_cleanup(void)
{
	leftovers();
	return 0;
}

static const char *g_opt[2]; /* one more amqpd option and its value, or NULL */

static bool db_start(void)
{
	const char *args[] = {"--data-dir", g_dir, g_opt[0], g_opt[1], NULL};
	int rc = broker_start(&g_db, args);
	if (g_nlogs < 16)
		snprintf(g_logs[g_nlogs++], sizeof(g_logs[0]), "%s", g_db.log_path);
	return rc == 0;
}

/* A fresh data directory and an amqpd on it. */
static void db_setup(void)
{
	leftovers();
	g_opt[0] = g_opt[1] = NULL;
	g_failures_at = CU_get_number_of_failures();
	g_msg_reports = 0;
	snprintf(g_dir, sizeof(g_dir), "%s/tests/integration/amqpd-dur-%d-XXXXXX", top_builddir(),
	         (int)getpid());
	if (!mkdtemp(g_dir)) {
		fprintf(stderr, "\n  [durability] mkdtemp %s: %s\n", g_dir, strerror(errno));
		g_dir[0] = '\0';
	}
	CU_ASSERT_FATAL(g_dir[0] != '\0');
	CU_ASSERT_FATAL(db_start());
}

static void db_kill9(void)
{
	pid_t p = g_db.pid;
	reap(&p);
	g_db.pid = 0;
}

/* Stop the broker (SIGTERM and exit status 0, or SIGKILL) and start a new
 * one on the same data directory. */
static void db_restart(bool kill9)
{
	if (kill9)
		db_kill9();
	else
		CU_ASSERT_EQUAL(broker_stop(&g_db), 0);
	CU_ASSERT_FATAL(db_start());
}

/* The end of a test: clean stop, and the data directory removed unless
 * something failed. */
static void db_done(void)
{
	if (g_db.pid)
		CU_ASSERT_EQUAL(broker_stop(&g_db), 0);
	if (CU_get_number_of_failures() == g_failures_at) {
		rm_rf(g_dir);
		for (int i = 0; i < g_nlogs; i++)
			remove(g_logs[i]);
	} else {
		fprintf(stderr, "\n  [durability] data directory kept: %s; logs:", g_dir);
		for (int i = 0; i < g_nlogs; i++)
			fprintf(stderr, " %s", g_logs[i]);
		fprintf(stderr, "\n");
	}
	g_dir[0] = '\0';
	g_nlogs = 0;
}

/* ---- connections and synchronous calls ---------------------------------- */

/* A connection to this suite's broker, channel 1 open, synchronous calls
 * giving up after 10 s. */
static amqp_connection_state_t dconn(void)
{
	amqp_connection_state_t c = broker_connect(&g_db);
	struct timeval tv = {10, 0};
	if (c)
		amqp_set_rpc_timeout(c, &tv);
	return c;
}

/* A connection whose broker was killed: nothing to say good-bye to. */
static void conn_drop(amqp_connection_state_t c)
{
	if (c)
		amqp_destroy_connection(c);
}

/* After a failed synchronous call on channel ch: the reply code of the
 * channel.close the server sent (answered, and the channel reopened), with
 * its text in text; 0 when something else went wrong. */
static int rpc_error(amqp_connection_state_t c, amqp_channel_t ch, char *text, size_t n)
{
	struct close_info ci = rpc_close(c, ch);
	if (text && n)
		snprintf(text, n, "%s", ci.text);
	if (ci.kind != CLOSE_CHANNEL)
		return 0;
	return open_channel(c, ch) ? ci.code : 0;
}

static bool xdecl(amqp_connection_state_t c, const char *x, const char *type, bool durable)
{
	amqp_exchange_declare(c, 1, amqp_cstring_bytes(x), amqp_cstring_bytes(type), 0, durable, 0,
	                      0, amqp_empty_table);
	return rpc_ok(c);
}

/* Exists: 1; gone (404): 0; anything else: -1. */
static int xexists(amqp_connection_state_t c, const char *x)
{
	amqp_exchange_declare(c, 1, amqp_cstring_bytes(x), amqp_cstring_bytes("direct"), 1, 0, 0, 0,
	                      amqp_empty_table);
	if (rpc_ok(c))
		return 1;
	return rpc_error(c, 1, NULL, 0) == 404 ? 0 : -1;
}

static bool dqdecl_args(amqp_connection_state_t c, const char *q, bool durable, bool exclusive,
                        amqp_table_t args)
{
	return amqp_queue_declare(c, 1, amqp_cstring_bytes(q), 0, durable, exclusive, 0, args) !=
	       NULL;
}

static bool dqdecl(amqp_connection_state_t c, const char *q, bool durable)
{
	return dqdecl_args(c, q, durable, false, amqp_empty_table);
}

/* The number of ready messages in q (passive declare); -404 when q does
 * not exist, -1 on any other error. */
static int qcount(amqp_connection_state_t c, const char *q)
{
	amqp_queue_declare_ok_t *ok =
	    amqp_queue_declare(c, 1, amqp_cstring_bytes(q), 1, 0, 0, 0, amqp_empty_table);
	if (ok)
		return (int)ok->message_count;
	return rpc_error(c, 1, NULL, 0) == 404 ? -404 : -1;
}

static bool qbind(amqp_connection_state_t c, const char *q, const char *x, const char *key,
                  amqp_table_t args)
{
	amqp_queue_bind(c, 1, amqp_cstring_bytes(q), amqp_cstring_bytes(x), amqp_cstring_bytes(key),
	                args);
	return rpc_ok(c);
}

/* Exchange-to-exchange: messages published to src flow on to dst. */
static bool xbind(amqp_connection_state_t c, const char *dst, const char *src, const char *key)
{
	amqp_exchange_bind(c, 1, amqp_cstring_bytes(dst), amqp_cstring_bytes(src),
	                   amqp_cstring_bytes(key), amqp_empty_table);
	return rpc_ok(c);
}

/* ---- publishing ------------------------------------------------------------ */

static int dpublish_h(amqp_connection_state_t c, amqp_channel_t ch, const char *x, const char *key,
                      const char *body, bool persistent, const amqp_table_t *headers)
{
	amqp_basic_properties_t p;
	memset(&p, 0, sizeof(p));
	p._flags = AMQP_BASIC_DELIVERY_MODE_FLAG;
	p.delivery_mode = persistent ? 2 : 1;
	if (headers) {
		p._flags |= AMQP_BASIC_HEADERS_FLAG;
		p.headers = *headers;
	}
	return amqp_basic_publish(c, ch, amqp_cstring_bytes(x), amqp_cstring_bytes(key), 0, 0, &p,
	                          amqp_cstring_bytes(body));
}

static int dpublish(amqp_connection_state_t c, amqp_channel_t ch, const char *x, const char *key,
                    const char *body, bool persistent)
{
	return dpublish_h(c, ch, x, key, body, persistent, NULL);
}

/* Publisher confirms seen on one channel. */
struct confirms {
	uint64_t acked; /* highest tag acked (acks come in order) */
	uint64_t nacks; /* how many basic.nack frames came */
	bool broken;    /* the connection failed or was closed */
};

/* Read one frame (waiting up to ms) and account for it: 1 a frame came,
 * 0 nothing came, -1 the connection is gone. */
static int confirms_poll(amqp_connection_state_t c, amqp_channel_t ch, struct confirms *cf, int ms)
{
	amqp_frame_t f;
	struct timeval tv = {ms / 1000, (long)(ms % 1000) * 1000L};
	amqp_maybe_release_buffers(c);
	int rc = amqp_simple_wait_frame_noblock(c, &f, &tv);
	if (rc == AMQP_STATUS_TIMEOUT)
		return 0;
	if (rc != AMQP_STATUS_OK) {
		cf->broken = true;
		return -1;
	}
	if (f.frame_type != AMQP_FRAME_METHOD || f.channel != ch)
		return 1;
	if (f.payload.method.id == AMQP_BASIC_ACK_METHOD) {
		const amqp_basic_ack_t *a = f.payload.method.decoded;
		if (a->delivery_tag > cf->acked)
			cf->acked = a->delivery_tag;
	} else if (f.payload.method.id == AMQP_BASIC_NACK_METHOD) {
		const amqp_basic_nack_t *a = f.payload.method.decoded;
		cf->nacks++;
		if (a->delivery_tag > cf->acked)
			cf->acked = a->delivery_tag; /* settled, though not as wanted */
	} else if (f.payload.method.id == AMQP_CHANNEL_CLOSE_METHOD ||
	           f.payload.method.id == AMQP_CONNECTION_CLOSE_METHOD) {
		cf->broken = true;
		return -1;
	}
	return 1;
}

/* Wait until tags up to `upto` are settled; true if all of them were acked
 * (no nack) within 10 s. */
static bool confirms_wait(amqp_connection_state_t c, amqp_channel_t ch, struct confirms *cf,
                          uint64_t upto)
{
	for (int waited = 0; cf->acked < upto && waited < 10000;) {
		int rc = confirms_poll(c, ch, cf, 100);
		if (rc < 0)
			return false;
		if (rc == 0)
			waited += 100;
	}
	return cf->acked >= upto && cf->nacks == 0;
}

static bool confirm_select(amqp_connection_state_t c, amqp_channel_t ch)
{
	return amqp_confirm_select(c, ch) != NULL;
}

/* ---- receiving ----------------------------------------------------------- */

/* A received message as far as most tests look at it. */
struct rmsg {
	char body[48];
	size_t len;
	bool redelivered;
	uint64_t tag;
};

struct rlist {
	struct rmsg *v;
	size_t n, cap;
};

static void rlist_add(struct rlist *l, const amqp_bytes_t body, bool redelivered, uint64_t tag)
{
	if (l->n == l->cap) {
		size_t ncap = l->cap ? l->cap * 2 : 64;
		struct rmsg *nv = realloc(l->v, ncap * sizeof(*nv));
		if (!nv)
			return;
		l->v = nv;
		l->cap = ncap;
	}
	struct rmsg *m = &l->v[l->n++];
	snprintf(m->body, sizeof(m->body), "%.*s", (int)(body.len < 47 ? body.len : 47),
	         (const char *)body.bytes);
	m->len = body.len;
	m->redelivered = redelivered;
	m->tag = tag;
}

static void rlist_free(struct rlist *l)
{
	free(l->v);
	memset(l, 0, sizeof(*l));
}

/* Consume q on channel ch (opened here) with manual acks until `expect`
 * messages came and then nothing more for 300 ms (or nothing at all for
 * 10 s); each is acked when ack is set, otherwise it stays unacked.  The
 * channel stays open. */
static void consume_all(amqp_connection_state_t c, amqp_channel_t ch, const char *q, bool ack,
                        size_t expect, struct rlist *out)
{
	if (!open_channel(c, ch))
		return;
	if (!amqp_basic_consume(c, ch, amqp_cstring_bytes(q), amqp_empty_bytes, 0, 0, 0,
	                        amqp_empty_table))
		return;
	for (;;) {
		int ms = out->n >= expect ? 300 : 10000;
		struct timeval tv = {ms / 1000, (long)(ms % 1000) * 1000L};
		amqp_envelope_t env;
		amqp_maybe_release_buffers(c);
		amqp_rpc_reply_t r = amqp_consume_message(c, &env, &tv, 0);
		if (r.reply_type != AMQP_RESPONSE_NORMAL)
			return;
		rlist_add(out, env.message.body, env.redelivered, env.delivery_tag);
		if (ack)
			amqp_basic_ack(c, env.channel, env.delivery_tag, 0);
		amqp_destroy_envelope(&env);
	}
}

/* Fetch one message with basic.get on channel ch: 1 (added to out),
 * 0 empty, -1 error. */
static int get_one(amqp_connection_state_t c, amqp_channel_t ch, const char *q, bool no_ack,
                   struct rlist *out)
{
	amqp_rpc_reply_t r = amqp_basic_get(c, ch, amqp_cstring_bytes(q), no_ack);
	if (r.reply_type != AMQP_RESPONSE_NORMAL)
		return -1;
	if (r.reply.id == AMQP_BASIC_GET_EMPTY_METHOD)
		return 0;
	const amqp_basic_get_ok_t *ok = r.reply.decoded;
	uint64_t tag = ok->delivery_tag;
	bool redelivered = ok->redelivered;
	amqp_message_t m;
	if (amqp_read_message(c, ch, &m, 0).reply_type != AMQP_RESPONSE_NORMAL)
		return -1;
	rlist_add(out, m.body, redelivered, tag);
	amqp_destroy_message(&m);
	return 1;
}

/* Assert (at the caller's line) that message i of l has this body and
 * redelivered flag. */
static bool check_msg_at(const struct rlist *l, size_t i, const char *body, bool redelivered,
                         int line)
{
	char msg[256];
	bool ok = i < l->n && strcmp(l->v[i].body, body) == 0 && l->v[i].redelivered == redelivered;
	if (i < l->n)
		snprintf(msg, sizeof(msg),
		         "message %zu: expected \"%s\" redelivered=%d, got \"%s\" %d", i, body,
		         redelivered, l->v[i].body, l->v[i].redelivered);
	else
		snprintf(msg, sizeof(msg), "message %zu: expected \"%s\", got only %zu messages", i,
		         body, l->n);
	CU_assertImplementation(ok, (unsigned)line, msg, __FILE__, "", CU_FALSE);
	if (!ok && ++g_msg_reports <= 5)
		fprintf(stderr, "\n  [durability:%d] %s\n", line, msg);
	return ok;
}
#define CHECK_MSG(l, i, body, redelivered) check_msg_at(l, i, body, redelivered, __LINE__)

static void check_count_at(size_t got, size_t want, const char *what, int line)
{
	char msg[256];
	snprintf(msg, sizeof(msg), "%s: expected %zu, got %zu", what, want, got);
	CU_assertImplementation(got == want, (unsigned)line, msg, __FILE__, "", CU_FALSE);
	if (got != want)
		fprintf(stderr, "\n  [durability:%d] %s\n", line, msg);
}
#define CHECK_COUNT(got, want, what) check_count_at((size_t)(got), (size_t)(want), what, __LINE__)

/* ---- definitions ------------------------------------------------------------ */

static void declare_transient_side(amqp_connection_state_t c)
{
	CU_ASSERT(xdecl(c, "t.fanout", "fanout", false));
	CU_ASSERT(xdecl(c, "t.dest", "fanout", false));
	CU_ASSERT(dqdecl(c, "t.q", false));
	CU_ASSERT(qbind(c, "t.q", "t.dest", "", amqp_empty_table));
}

/* One transient message through every route the test set up, then the
 * number of messages in each queue. */
static void route_all(amqp_connection_state_t c, int *q1, int *q2, int *tq)
{
	amqp_table_entry_t h1 = {amqp_cstring_bytes("h"),
	                         {AMQP_FIELD_KIND_UTF8, {.bytes = {1, "1"}}}};
	amqp_table_entry_t h2 = {amqp_cstring_bytes("h"),
	                         {AMQP_FIELD_KIND_UTF8, {.bytes = {1, "2"}}}};
	amqp_table_t m1 = {1, &h1}, m2 = {1, &h2};
	/* durable routes */
	dpublish(c, 1, "d.direct", "k1", "direct", false);     /* -> d.q1 */
	dpublish(c, 1, "d.topic", "k1", "e2e", false);         /* -> d.direct -> d.q1 */
	dpublish(c, 1, "amq.direct", "k2", "amq", false);      /* -> d.q2 */
	dpublish_h(c, 1, "d.headers", "", "hdr", false, &m1);  /* -> d.q2 */
	dpublish_h(c, 1, "d.headers", "", "hdr2", false, &m2); /* nowhere */
	dpublish(c, 1, "amq.topic", "x.k3", "topic", false);   /* -> d.q2 */
	/* routes that involve something transient */
	dpublish(c, 1, "d.direct", "kt", "to t.q", false);        /* -> t.q */
	dpublish(c, 1, "amq.direct", "k2t", "to t.q", false);     /* -> t.q */
	dpublish(c, 1, "d.direct", "kx", "to t.dest", false);     /* -> t.dest -> t.q */
	dpublish(c, 1, "d.direct", "kf", "kf", false);            /* -> d.q2 */
	dpublish(c, 1, "t.fanout", "kf", "from t.fanout", false); /* -> d.q1, -> d.direct -> d.q2 */
	*q1 = qcount(c, "d.q1");
	*q2 = qcount(c, "d.q2");
	*tq = qcount(c, "t.q");
}

/* After a restart: only the durable things are there, and only the
 * bindings between durable things route. */
static void check_definitions(void)
{
	amqp_connection_state_t c = dconn();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_EQUAL(xexists(c, "d.direct"), 1);
	CU_ASSERT_EQUAL(xexists(c, "d.topic"), 1);
	CU_ASSERT_EQUAL(xexists(c, "d.headers"), 1);
	CU_ASSERT_EQUAL(xexists(c, "t.fanout"), 0);
	CU_ASSERT_EQUAL(xexists(c, "t.dest"), 0);
	/* durable queues are back, empty: their messages were transient */
	CU_ASSERT_EQUAL(qcount(c, "d.q1"), 0);
	CU_ASSERT_EQUAL(qcount(c, "d.q2"), 0);
	CU_ASSERT_EQUAL(qcount(c, "t.q"), -404);
	/* they are durable (an equivalent redeclare is fine, durable=false is not) */
	CU_ASSERT(dqdecl(c, "d.q1", true));
	CU_ASSERT(!dqdecl(c, "d.q1", false));
	CU_ASSERT_EQUAL(rpc_error(c, 1, NULL, 0), 406);
	CU_ASSERT(xdecl(c, "d.topic", "topic", true));
	CU_ASSERT(!xdecl(c, "d.topic", "topic", false));
	CU_ASSERT_EQUAL(rpc_error(c, 1, NULL, 0), 406);
	CU_ASSERT(!xdecl(c, "d.topic", "direct", true));
	CU_ASSERT_EQUAL(rpc_error(c, 1, NULL, 0), 406);

	/* The transient names again, fresh (only t.q bound to t.dest): the
	 * old bindings that involved them must not have come back. */
	declare_transient_side(c);
	int q1, q2, tq;
	route_all(c, &q1, &q2, &tq);
	CHECK_COUNT(q1, 2, "d.q1 after restart (d.direct k1, d.topic -> d.direct)");
	CHECK_COUNT(q2, 4, "d.q2 after restart (amq.direct, d.headers, amq.topic, d.direct kf)");
	CHECK_COUNT(tq, 0, "t.q after restart (no binding to it survives)");
	broker_disconnect(c);
}

static void test_definitions(void)
{
	if (broker_external())
		return;
	db_setup();
	amqp_connection_state_t c = dconn();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT(xdecl(c, "d.direct", "direct", true));
	CU_ASSERT(xdecl(c, "d.topic", "topic", true));
	CU_ASSERT(xdecl(c, "d.headers", "headers", true));
	CU_ASSERT(dqdecl(c, "d.q1", true));
	CU_ASSERT(dqdecl(c, "d.q2", true));
	declare_transient_side(c);

	amqp_table_entry_t hb[] = {
	    {amqp_cstring_bytes("x-match"), {AMQP_FIELD_KIND_UTF8, {.bytes = {3, "all"}}}},
	    {amqp_cstring_bytes("h"), {AMQP_FIELD_KIND_UTF8, {.bytes = {1, "1"}}}}};
	amqp_table_t hargs = {2, hb};
	/* both ends durable: these come back */
	CU_ASSERT(qbind(c, "d.q1", "d.direct", "k1", amqp_empty_table));
	CU_ASSERT(xbind(c, "d.direct", "d.topic", "#"));
	CU_ASSERT(qbind(c, "d.q2", "amq.direct", "k2", amqp_empty_table));
	CU_ASSERT(qbind(c, "d.q2", "d.headers", "", hargs));
	CU_ASSERT(qbind(c, "d.q2", "amq.topic", "*.k3", amqp_empty_table));
	CU_ASSERT(qbind(c, "d.q2", "d.direct", "kf", amqp_empty_table));
	/* one end transient: these do not */
	CU_ASSERT(qbind(c, "t.q", "d.direct", "kt", amqp_empty_table));
	CU_ASSERT(qbind(c, "t.q", "amq.direct", "k2t", amqp_empty_table));
	CU_ASSERT(xbind(c, "t.dest", "d.direct", "kx"));
	CU_ASSERT(qbind(c, "d.q1", "t.fanout", "", amqp_empty_table));
	CU_ASSERT(xbind(c, "d.direct", "t.fanout", ""));

	/* Everything routes before the restart. */
	int q1, q2, tq;
	route_all(c, &q1, &q2, &tq);
	CHECK_COUNT(q1, 3, "d.q1 before restart");
	CHECK_COUNT(q2, 5, "d.q2 before restart");
	CHECK_COUNT(tq, 3, "t.q before restart");
	broker_disconnect(c);

	db_restart(false);
	check_definitions();
	/* check_definitions declared the transient side again: a kill -9
	 * loses it just the same, and keeps the durable side. */
	db_restart(true);
	check_definitions();
	db_done();
}

/* ---- message properties and bodies --------------------------------------- */

static bool str_eq(amqp_bytes_t a, amqp_bytes_t b)
{
	return a.len == b.len && (a.len == 0 || memcmp(a.bytes, b.bytes, a.len) == 0);
}

/* Every property that is present in want is present in got with the same
 * value, and no other is. */
static void check_props(const amqp_basic_properties_t *got, const amqp_basic_properties_t *want)
{
	amqp_flags_t f = want->_flags;
	CU_ASSERT_EQUAL(got->_flags, f);
	if (got->_flags != f)
		fprintf(stderr, "\n  property flags 0x%x, want 0x%x\n", (unsigned)got->_flags,
		        (unsigned)f);
	if (f & AMQP_BASIC_CONTENT_TYPE_FLAG)
		CU_ASSERT(str_eq(got->content_type, want->content_type));
	if (f & AMQP_BASIC_CONTENT_ENCODING_FLAG)
		CU_ASSERT(str_eq(got->content_encoding, want->content_encoding));
	if (f & AMQP_BASIC_HEADERS_FLAG)
		CU_ASSERT(table_eq(&got->headers, &want->headers));
	if (f & AMQP_BASIC_DELIVERY_MODE_FLAG)
		CU_ASSERT_EQUAL(got->delivery_mode, want->delivery_mode);
	if (f & AMQP_BASIC_PRIORITY_FLAG)
		CU_ASSERT_EQUAL(got->priority, want->priority);
	if (f & AMQP_BASIC_CORRELATION_ID_FLAG)
		CU_ASSERT(str_eq(got->correlation_id, want->correlation_id));
	if (f & AMQP_BASIC_REPLY_TO_FLAG)
		CU_ASSERT(str_eq(got->reply_to, want->reply_to));
	if (f & AMQP_BASIC_EXPIRATION_FLAG)
		CU_ASSERT(str_eq(got->expiration, want->expiration));
	if (f & AMQP_BASIC_MESSAGE_ID_FLAG)
		CU_ASSERT(str_eq(got->message_id, want->message_id));
	if (f & AMQP_BASIC_TIMESTAMP_FLAG)
		CU_ASSERT_EQUAL(got->timestamp, want->timestamp);
	if (f & AMQP_BASIC_TYPE_FLAG)
		CU_ASSERT(str_eq(got->type, want->type));
	if (f & AMQP_BASIC_USER_ID_FLAG)
		CU_ASSERT(str_eq(got->user_id, want->user_id));
	if (f & AMQP_BASIC_APP_ID_FLAG)
		CU_ASSERT(str_eq(got->app_id, want->app_id));
	if (f & AMQP_BASIC_CLUSTER_ID_FLAG)
		CU_ASSERT(str_eq(got->cluster_id, want->cluster_id));
}

/* The messages of the properties test, in publish order. */
struct pmsg {
	amqp_basic_properties_t props;
	amqp_bytes_t body;
};

/* Check one received message against the one published. */
static void check_pmsg(const struct pmsg *want, const amqp_basic_properties_t *props,
                       amqp_bytes_t body, amqp_bytes_t exchange, amqp_bytes_t rk, int i)
{
	bool body_ok = body.len == want->body.len &&
	               (body.len == 0 || memcmp(body.bytes, want->body.bytes, body.len) == 0);
	CU_ASSERT(body_ok);
	if (!body_ok)
		fprintf(stderr, "\n  message %d: body of %zu bytes differs (want %zu)\n", i,
		        body.len, want->body.len);
	CU_ASSERT(bytes_eq(exchange, "d.props"));
	CU_ASSERT(bytes_eq(rk, "rk.props"));
	check_props(props, &want->props);
}

#define ENTRY(k, kind_, member, ...)                                                               \
	{                                                                                          \
		amqp_cstring_bytes(k),                                                             \
		{                                                                                  \
			kind_,                                                                     \
			{                                                                          \
				.member = __VA_ARGS__                                              \
			}                                                                          \
		}                                                                                  \
	}

static void test_properties(void)
{
	if (broker_external())
		return;
	db_setup();

	/* every field type, nested tables and arrays included */
	amqp_table_entry_t deep[] = {ENTRY("k", AMQP_FIELD_KIND_UTF8, bytes, {1, "v"})};
	amqp_field_value_t in_arr[] = {{AMQP_FIELD_KIND_I64, {.i64 = -1}},
	                               {AMQP_FIELD_KIND_TABLE, {.table = {1, deep}}}};
	amqp_table_entry_t inner[] = {
	    ENTRY("s", AMQP_FIELD_KIND_UTF8, bytes, {2, "in"}),
	    ENTRY("t", AMQP_FIELD_KIND_TABLE, table, {1, deep}),
	    ENTRY("a", AMQP_FIELD_KIND_ARRAY, array, {2, in_arr}),
	    ENTRY("empty", AMQP_FIELD_KIND_TABLE, table, {0, NULL}),
	};
	amqp_decimal_t dec = {2, 12345};
	amqp_field_value_t arr[] = {{AMQP_FIELD_KIND_I32, {.i32 = 1}},
	                            {AMQP_FIELD_KIND_UTF8, {.bytes = {3, "two"}}},
	                            {AMQP_FIELD_KIND_BOOLEAN, {.boolean = 0}},
	                            {AMQP_FIELD_KIND_DECIMAL, {.decimal = {3, 7}}},
	                            {AMQP_FIELD_KIND_TIMESTAMP, {.u64 = 1600000000u}},
	                            {AMQP_FIELD_KIND_ARRAY, {.array = {2, in_arr}}},
	                            {AMQP_FIELD_KIND_TABLE, {.table = {4, inner}}},
	                            {AMQP_FIELD_KIND_VOID, {.boolean = 0}}};
	amqp_table_entry_t h[] = {
	    ENTRY("str", AMQP_FIELD_KIND_UTF8, bytes, {5, "hello"}),
	    ENTRY("empty-str", AMQP_FIELD_KIND_UTF8, bytes, {0, ""}),
	    ENTRY("bool", AMQP_FIELD_KIND_BOOLEAN, boolean, 1),
	    ENTRY("i8", AMQP_FIELD_KIND_I8, i8, -5),
	    ENTRY("u8", AMQP_FIELD_KIND_U8, u8, 250),
	    ENTRY("i16", AMQP_FIELD_KIND_I16, i16, -300),
	    ENTRY("u16", AMQP_FIELD_KIND_U16, u16, 65000),
	    ENTRY("i32", AMQP_FIELD_KIND_I32, i32, -42),
	    ENTRY("u32", AMQP_FIELD_KIND_U32, u32, 4000000000u),
	    ENTRY("i64", AMQP_FIELD_KIND_I64, i64, -((int64_t)1 << 40)),
	    ENTRY("f32", AMQP_FIELD_KIND_F32, f32, 1.5f),
	    ENTRY("f64", AMQP_FIELD_KIND_F64, f64, -3.25e100),
	    ENTRY("dec", AMQP_FIELD_KIND_DECIMAL, decimal, dec),
	    ENTRY("ts", AMQP_FIELD_KIND_TIMESTAMP, u64, 1700000001u),
	    ENTRY("bin", AMQP_FIELD_KIND_BYTES, bytes, {4, "\0\1\2\xff"}),
	    ENTRY("void", AMQP_FIELD_KIND_VOID, boolean, 0),
	    ENTRY("table", AMQP_FIELD_KIND_TABLE, table, {4, inner}),
	    ENTRY("array", AMQP_FIELD_KIND_ARRAY, array, {8, arr}),
	    ENTRY("empty-array", AMQP_FIELD_KIND_ARRAY, array, {0, NULL}),
	};

	enum { NMSG = 5 };
	struct pmsg pm[NMSG];
	memset(pm, 0, sizeof(pm));
	/* 0: all 14 properties, a binary body */
	static const char bin[] = "body with \0 a NUL and \xff bytes";
	amqp_basic_properties_t *p = &pm[0].props;
	p->_flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_CONTENT_ENCODING_FLAG |
	            AMQP_BASIC_HEADERS_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG |
	            AMQP_BASIC_PRIORITY_FLAG | AMQP_BASIC_CORRELATION_ID_FLAG |
	            AMQP_BASIC_REPLY_TO_FLAG | AMQP_BASIC_EXPIRATION_FLAG |
	            AMQP_BASIC_MESSAGE_ID_FLAG | AMQP_BASIC_TIMESTAMP_FLAG | AMQP_BASIC_TYPE_FLAG |
	            AMQP_BASIC_USER_ID_FLAG | AMQP_BASIC_APP_ID_FLAG | AMQP_BASIC_CLUSTER_ID_FLAG;
	p->content_type = amqp_cstring_bytes("application/x-itest");
	p->content_encoding = amqp_cstring_bytes("identity");
	p->headers = (amqp_table_t){(int)(sizeof(h) / sizeof(h[0])), h};
	p->delivery_mode = 2;
	p->priority = 7;
	p->correlation_id = amqp_cstring_bytes("corr-1");
	p->reply_to = amqp_cstring_bytes("reply.queue");
	p->expiration = amqp_cstring_bytes("3600000");
	p->message_id = amqp_cstring_bytes("msg-1");
	p->timestamp = 1700000000u;
	p->type = amqp_cstring_bytes("itest.type");
	p->user_id = amqp_cstring_bytes("guest");
	p->app_id = amqp_cstring_bytes("amqpd-itest");
	p->cluster_id = amqp_cstring_bytes("cluster-x");
	pm[0].body = (amqp_bytes_t){sizeof(bin), (void *)bin};
	/* 1: a 1 MiB body (several frames) */
	size_t big_len = 1024 * 1024;
	unsigned char *big = malloc(big_len);
	CU_ASSERT_PTR_NOT_NULL_FATAL(big);
	for (size_t i = 0; i < big_len; i++)
		big[i] = (unsigned char)((i * 7 + i / 4093) & 0xff);
	pm[1].props._flags = AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_CONTENT_TYPE_FLAG;
	pm[1].props.delivery_mode = 2;
	pm[1].props.content_type = amqp_cstring_bytes("application/octet-stream");
	pm[1].body = (amqp_bytes_t){big_len, big};
	/* 2: an empty body and only delivery-mode */
	pm[2].props._flags = AMQP_BASIC_DELIVERY_MODE_FLAG;
	pm[2].props.delivery_mode = 2;
	pm[2].body = amqp_empty_bytes;
	/* 3: every byte value; an empty headers table, priority 0, empty strings */
	static unsigned char all[256];
	for (int i = 0; i < 256; i++)
		all[i] = (unsigned char)i;
	pm[3].props._flags = AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_HEADERS_FLAG |
	                     AMQP_BASIC_PRIORITY_FLAG | AMQP_BASIC_MESSAGE_ID_FLAG |
	                     AMQP_BASIC_TYPE_FLAG;
	pm[3].props.delivery_mode = 2;
	pm[3].props.headers = amqp_empty_table;
	pm[3].props.priority = 0;
	pm[3].props.message_id = amqp_empty_bytes;
	pm[3].props.type = amqp_empty_bytes;
	pm[3].body = (amqp_bytes_t){sizeof(all), all};
	/* 4: a body of exactly one frame's payload (frame_max 131072 - 8) */
	size_t one_len = 131072 - 8;
	unsigned char *one = malloc(one_len);
	CU_ASSERT_PTR_NOT_NULL_FATAL(one);
	memset(one, 'f', one_len);
	pm[4].props._flags = AMQP_BASIC_DELIVERY_MODE_FLAG;
	pm[4].props.delivery_mode = 2;
	pm[4].body = (amqp_bytes_t){one_len, one};

	amqp_connection_state_t c = dconn();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT(xdecl(c, "d.props", "direct", true));
	CU_ASSERT(dqdecl(c, "d.pq", true));
	CU_ASSERT(qbind(c, "d.pq", "d.props", "rk.props", amqp_empty_table));
	CU_ASSERT_FATAL(confirm_select(c, 1));
	for (int i = 0; i < NMSG; i++)
		CU_ASSERT_EQUAL(amqp_basic_publish(c, 1, amqp_cstring_bytes("d.props"),
		                                   amqp_cstring_bytes("rk.props"), 0, 0,
		                                   &pm[i].props, pm[i].body),
		                AMQP_STATUS_OK);
	struct confirms cf = {0};
	CU_ASSERT(confirms_wait(c, 1, &cf, NMSG));
	broker_disconnect(c);

	/* Clean restart; read them with basic.get, unacked. */
	db_restart(false);
	c = dconn();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_EQUAL(qcount(c, "d.pq"), NMSG);
	for (int i = 0; i < NMSG; i++) {
		amqp_rpc_reply_t r = amqp_basic_get(c, 1, amqp_cstring_bytes("d.pq"), 0);
		CU_ASSERT_FATAL(r.reply_type == AMQP_RESPONSE_NORMAL &&
		                r.reply.id == AMQP_BASIC_GET_OK_METHOD);
		const amqp_basic_get_ok_t *ok = r.reply.decoded;
		CU_ASSERT(!ok->redelivered);
		amqp_bytes_t ex = amqp_bytes_malloc_dup(ok->exchange);
		amqp_bytes_t rk = amqp_bytes_malloc_dup(ok->routing_key);
		amqp_message_t m;
		r = amqp_read_message(c, 1, &m, 0);
		CU_ASSERT_FATAL(r.reply_type == AMQP_RESPONSE_NORMAL);
		check_pmsg(&pm[i], &m.properties, m.body, ex, rk, i);
		amqp_destroy_message(&m);
		amqp_bytes_free(ex);
		amqp_bytes_free(rk);
	}
	/* A confirmed persistent message makes sure the delivered marks are
	 * on disk too (a sync covers everything written before it). */
	CU_ASSERT(dqdecl(c, "d.fence", true));
	CU_ASSERT_FATAL(open_channel(c, 2) && confirm_select(c, 2));
	CU_ASSERT_EQUAL(dpublish(c, 2, "", "d.fence", "fence", true), AMQP_STATUS_OK);
	memset(&cf, 0, sizeof(cf));
	CU_ASSERT(confirms_wait(c, 2, &cf, 1));

	/* kill -9 with all five delivered and unacked: they come back
	 * redelivered, and still byte-exact; read them through basic.deliver. */
	db_restart(true);
	conn_drop(c);
	c = dconn();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_EQUAL(qcount(c, "d.pq"), NMSG);
	CU_ASSERT_PTR_NOT_NULL_FATAL(amqp_basic_consume(
	    c, 1, amqp_cstring_bytes("d.pq"), amqp_empty_bytes, 0, 0, 0, amqp_empty_table));
	for (int i = 0; i < NMSG; i++) {
		amqp_envelope_t env;
		struct timeval tv = {10, 0};
		amqp_maybe_release_buffers(c);
		amqp_rpc_reply_t r = amqp_consume_message(c, &env, &tv, 0);
		CU_ASSERT_FATAL(r.reply_type == AMQP_RESPONSE_NORMAL);
		CU_ASSERT(env.redelivered);
		check_pmsg(&pm[i], &env.message.properties, env.message.body, env.exchange,
		           env.routing_key, i);
		amqp_basic_ack(c, 1, env.delivery_tag, 0);
		amqp_destroy_envelope(&env);
	}
	CU_ASSERT_EQUAL(qcount(c, "d.pq"), 0);
	broker_disconnect(c);

	/* acked: gone for good */
	db_restart(false);
	c = dconn();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_EQUAL(qcount(c, "d.pq"), 0);
	broker_disconnect(c);
	free(big);
	free(one);
	db_done();
}

/* ---- order, acks, redelivered, transient messages -------------------------- */

static void order_case(bool kill9)
{
	db_setup();
	amqp_connection_state_t c = dconn();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT(dqdecl(c, "d.order", true));
	CU_ASSERT_FATAL(confirm_select(c, 1));
	/* 100 persistent messages, a transient one after every fifth */
	uint64_t n = 0;
	char body[32];
	for (int i = 0; i < 100; i++) {
		snprintf(body, sizeof(body), "p%03d", i);
		CU_ASSERT_EQUAL(dpublish(c, 1, "", "d.order", body, true), AMQP_STATUS_OK);
		n++;
		if (i % 5 == 0) {
			snprintf(body, sizeof(body), "t%03d", i);
			CU_ASSERT_EQUAL(dpublish(c, 1, "", "d.order", body, false), AMQP_STATUS_OK);
			n++;
		}
	}
	struct confirms cf = {0};
	CU_ASSERT(confirms_wait(c, 1, &cf, n));
	CU_ASSERT_EQUAL(qcount(c, "d.order"), 120);

	/* Deliver everything up to p029 with basic.get (on channel 2, no
	 * confirms there); ack what is before p010. */
	CU_ASSERT_FATAL(open_channel(c, 2));
	struct rlist got = {0};
	while (got.n == 0 || strcmp(got.v[got.n - 1].body, "p029") != 0) {
		if (get_one(c, 2, "d.order", false, &got) != 1) {
			CU_FAIL("basic.get ended early");
			break;
		}
		struct rmsg *m = &got.v[got.n - 1];
		CU_ASSERT(!m->redelivered);
		if (atoi(m->body + 1) < 10)
			CU_ASSERT_EQUAL(amqp_basic_ack(c, 2, m->tag, 0), 0);
	}
	CHECK_COUNT(got.n, 36, "messages fetched up to p029");
	rlist_free(&got);
	if (kill9) {
		/* The acks and delivered marks are written; a confirmed
		 * publish afterwards proves they are synced. */
		CU_ASSERT_EQUAL(dpublish(c, 1, "", "d.order", "fence", true), AMQP_STATUS_OK);
		CU_ASSERT(confirms_wait(c, 1, &cf, n + 1));
		db_restart(true);
		conn_drop(c);
	} else {
		/* still unacked when the broker stops */
		db_restart(false);
		conn_drop(c);
	}

	c = dconn();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	size_t want = 90 + (kill9 ? 1 : 0);
	CU_ASSERT_EQUAL(qcount(c, "d.order"), (int)want);
	consume_all(c, 2, "d.order", true, want, &got);
	CHECK_COUNT(got.n, want, "persistent messages after the restart");
	for (int i = 10; i < 100; i++) {
		snprintf(body, sizeof(body), "p%03d", i);
		if (!CHECK_MSG(&got, (size_t)(i - 10), body, i < 30))
			break; /* one failure says it */
	}
	if (kill9)
		CHECK_MSG(&got, 90, "fence", false);
	for (size_t i = 0; i < got.n; i++)
		CU_ASSERT(got.v[i].body[0] != 't');
	rlist_free(&got);
	amqp_basic_qos(c, 1, 0, 0, 0); /* a round trip: the acks are in */
	CU_ASSERT_EQUAL(qcount(c, "d.order"), 0);
	broker_disconnect(c);

	/* all acked now: nothing comes back */
	db_restart(false);
	c = dconn();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_EQUAL(qcount(c, "d.order"), 0);
	broker_disconnect(c);
	db_done();
}

static void test_order_acks_clean_stop(void)
{
	if (!broker_external())
		order_case(false);
}

static void test_order_acks_kill9(void)
{
	if (!broker_external())
		order_case(true);
}

/* ---- purge and delete ---------------------------------------------------------- */

static void publish_n(amqp_connection_state_t c, struct confirms *cf, uint64_t *n, const char *q,
                      const char *prefix, int count)
{
	char body[64];
	for (int i = 0; i < count; i++) {
		snprintf(body, sizeof(body), "%s%d", prefix, i);
		CU_ASSERT_EQUAL(dpublish(c, 1, "", q, body, true), AMQP_STATUS_OK);
		(*n)++;
	}
	CU_ASSERT(confirms_wait(c, 1, cf, *n));
}

/* ---- one message in two queues, reject and nack ------------------------------- */

/* A fanout puts each message in two durable queues: acking all of them in
 * one leaves the other untouched; in the other, a message rejected with
 * requeue=false stays gone, one nacked with requeue=true comes back
 * redelivered in its place, and acked ones stay gone. */
static void test_two_queues_reject(void)
{
	if (broker_external())
		return;
	db_setup();
	amqp_connection_state_t c = dconn();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT(xdecl(c, "d.fan2", "fanout", true));
	CU_ASSERT(dqdecl(c, "d.s1", true));
	CU_ASSERT(dqdecl(c, "d.s2", true));
	CU_ASSERT(qbind(c, "d.s1", "d.fan2", "", amqp_empty_table));
	CU_ASSERT(qbind(c, "d.s2", "d.fan2", "", amqp_empty_table));
	CU_ASSERT_FATAL(confirm_select(c, 1));
	char body[32];
	for (int i = 0; i < 10; i++) {
		snprintf(body, sizeof(body), "s%d", i);
		CU_ASSERT_EQUAL(dpublish(c, 1, "d.fan2", "", body, true), AMQP_STATUS_OK);
	}
	struct confirms cf = {0};
	CU_ASSERT(confirms_wait(c, 1, &cf, 10));

	struct rlist got = {0};
	consume_all(c, 2, "d.s1", true, 10, &got);
	CHECK_COUNT(got.n, 10, "messages in d.s1");
	rlist_free(&got);
	amqp_channel_close(c, 2, AMQP_REPLY_SUCCESS); /* no consumer on d.s1 any more */
	CU_ASSERT_FATAL(open_channel(c, 3));
	for (int i = 0; i < 6; i++)
		CU_ASSERT_EQUAL(get_one(c, 3, "d.s2", false, &got), 1);
	CU_ASSERT_FATAL(got.n == 6);
	CU_ASSERT_EQUAL(amqp_basic_reject(c, 3, got.v[0].tag, 0), 0);  /* s0: dropped */
	CU_ASSERT_EQUAL(amqp_basic_nack(c, 3, got.v[1].tag, 0, 1), 0); /* s1: requeued */
	CU_ASSERT_EQUAL(amqp_basic_ack(c, 3, got.v[2].tag, 0), 0);     /* s2: done */
	rlist_free(&got);                                              /* s3..s5 unacked */
	/* confirmed after all that: the acks, the reject and the delivered
	 * marks are on disk */
	CU_ASSERT_EQUAL(dpublish(c, 1, "d.fan2", "", "f", true), AMQP_STATUS_OK);
	CU_ASSERT(confirms_wait(c, 1, &cf, 11));
	db_restart(true);
	conn_drop(c);

	c = dconn();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	consume_all(c, 2, "d.s1", true, 1, &got);
	CHECK_COUNT(got.n, 1, "d.s1 after kill -9 (everything else was acked)");
	CHECK_MSG(&got, 0, "f", false);
	rlist_free(&got);
	consume_all(c, 3, "d.s2", true, 9, &got);
	CHECK_COUNT(got.n, 9, "d.s2 after kill -9");
	const char *want[] = {"s1", "s3", "s4", "s5", "s6", "s7", "s8", "s9", "f"};
	for (int i = 0; i < 9; i++)
		if (!CHECK_MSG(&got, (size_t)i, want[i], i < 4))
			break;
	rlist_free(&got);
	broker_disconnect(c);

	db_restart(false);
	c = dconn();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_EQUAL(qcount(c, "d.s1"), 0);
	CU_ASSERT_EQUAL(qcount(c, "d.s2"), 0);
	broker_disconnect(c);
	db_done();
}

static void test_purge_delete(void)
{
	if (broker_external())
		return;
	db_setup();
	amqp_connection_state_t c = dconn();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT(dqdecl(c, "d.purged", true));
	CU_ASSERT(dqdecl(c, "d.deleted", true));
	CU_ASSERT_FATAL(confirm_select(c, 1));
	struct confirms cf = {0};
	uint64_t n = 0;
	publish_n(c, &cf, &n, "d.purged", "old", 5);
	publish_n(c, &cf, &n, "d.deleted", "old", 5);

	amqp_queue_purge_ok_t *po = amqp_queue_purge(c, 1, amqp_cstring_bytes("d.purged"));
	CU_ASSERT(po && po->message_count == 5);
	amqp_queue_delete_ok_t *dok =
	    amqp_queue_delete(c, 1, amqp_cstring_bytes("d.deleted"), 0, 0);
	CU_ASSERT(dok && dok->message_count == 5);
	/* confirmed after the purge: the purge is on disk too */
	publish_n(c, &cf, &n, "d.purged", "new", 1);

	db_restart(true);
	conn_drop(c);
	c = dconn();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_EQUAL(qcount(c, "d.deleted"), -404);
	CU_ASSERT_EQUAL(qcount(c, "d.purged"), 1);
	/* the same name again: a new, empty queue */
	CU_ASSERT(dqdecl(c, "d.deleted", true));
	CU_ASSERT_EQUAL(qcount(c, "d.deleted"), 0);
	CU_ASSERT_FATAL(confirm_select(c, 1));
	memset(&cf, 0, sizeof(cf));
	n = 0;
	publish_n(c, &cf, &n, "d.deleted", "again", 2);
	/* and a purge of everything, then nothing new */
	po = amqp_queue_purge(c, 1, amqp_cstring_bytes("d.purged"));
	CU_ASSERT(po && po->message_count == 1);
	broker_disconnect(c);

	db_restart(false);
	c = dconn();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_EQUAL(qcount(c, "d.purged"), 0);
	struct rlist got = {0};
	consume_all(c, 2, "d.deleted", true, 2, &got);
	CHECK_COUNT(got.n, 2, "messages in the redeclared queue");
	CHECK_MSG(&got, 0, "again0", false);
	CHECK_MSG(&got, 1, "again1", false);
	rlist_free(&got);
	/* a delete without anything confirmed after it, then kill -9 */
	amqp_channel_close(c, 2, AMQP_REPLY_SUCCESS);
	dok = amqp_queue_delete(c, 1, amqp_cstring_bytes("d.deleted"), 0, 0);
	CU_ASSERT_PTR_NOT_NULL(dok);
	db_restart(true);
	conn_drop(c);
	c = dconn();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_EQUAL(qcount(c, "d.deleted"), -404);
	CU_ASSERT(dqdecl(c, "d.deleted", true));
	CU_ASSERT_EQUAL(qcount(c, "d.deleted"), 0);
	broker_disconnect(c);
	db_done();
}

/* ---- exclusive queues ------------------------------------------------------------ */

static void test_exclusive_not_recovered(void)
{
	if (broker_external())
		return;
	db_setup();
	amqp_connection_state_t c = dconn();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT(dqdecl_args(c, "d.excl", true, true, amqp_empty_table));
	CU_ASSERT(dqdecl(c, "d.kept", true));
	CU_ASSERT_FATAL(confirm_select(c, 1));
	struct confirms cf = {0};
	uint64_t n = 0;
	publish_n(c, &cf, &n, "d.excl", "x", 3);
	publish_n(c, &cf, &n, "d.kept", "k", 3);

	/* killed while its owner is still connected */
	db_restart(true);
	conn_drop(c);
	c = dconn();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_EQUAL(qcount(c, "d.excl"), -404);
	CU_ASSERT_EQUAL(qcount(c, "d.kept"), 3);
	/* a queue of that name now is a new one, without the old messages */
	CU_ASSERT(dqdecl(c, "d.excl", true));
	CU_ASSERT_EQUAL(qcount(c, "d.excl"), 0);
	/* and an exclusive durable queue at a clean stop */
	CU_ASSERT(dqdecl_args(c, "d.excl2", true, true, amqp_empty_table));
	CU_ASSERT_EQUAL(dpublish(c, 1, "", "d.excl2", "y", true), AMQP_STATUS_OK);
	db_restart(false);
	conn_drop(c);
	c = dconn();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_EQUAL(qcount(c, "d.excl2"), -404);
	CU_ASSERT_EQUAL(qcount(c, "d.excl"), 0);
	CU_ASSERT_EQUAL(qcount(c, "d.kept"), 3);
	broker_disconnect(c);
	db_done();
}

/* ---- queue arguments ---------------------------------------------------------------- */

static void test_queue_arguments(void)
{
	if (broker_external())
		return;
	db_setup();
	amqp_table_entry_t a[] = {
	    {amqp_cstring_bytes("x-max-length"), {AMQP_FIELD_KIND_I32, {.i32 = 5}}},
	    {amqp_cstring_bytes("x-message-ttl"), {AMQP_FIELD_KIND_I32, {.i32 = 3600000}}},
	    {amqp_cstring_bytes("x-dead-letter-exchange"),
	     {AMQP_FIELD_KIND_UTF8, {.bytes = {5, "d.dlx"}}}}};
	amqp_table_t args = {3, a};
	amqp_table_entry_t a6[] = {
	    {amqp_cstring_bytes("x-max-length"), {AMQP_FIELD_KIND_I32, {.i32 = 6}}},
	    {amqp_cstring_bytes("x-message-ttl"), {AMQP_FIELD_KIND_I32, {.i32 = 3600000}}},
	    {amqp_cstring_bytes("x-dead-letter-exchange"),
	     {AMQP_FIELD_KIND_UTF8, {.bytes = {5, "d.dlx"}}}}};
	amqp_table_t args6 = {3, a6};

	amqp_connection_state_t c = dconn();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT(dqdecl_args(c, "d.args", true, false, args));
	CU_ASSERT_FATAL(confirm_select(c, 1));
	struct confirms cf = {0};
	uint64_t n = 0;
	publish_n(c, &cf, &n, "d.args", "m", 10); /* drop-head keeps m5..m9 */
	CU_ASSERT_EQUAL(qcount(c, "d.args"), 5);

	db_restart(true);
	conn_drop(c);
	c = dconn();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	amqp_queue_declare_ok_t *ok =
	    amqp_queue_declare(c, 1, amqp_cstring_bytes("d.args"), 0, 1, 0, 0, args);
	CU_ASSERT(ok && ok->message_count == 5);
	if (!ok)
		rpc_error(c, 1, NULL, 0);
	char text[600];
	CU_ASSERT(!dqdecl_args(c, "d.args", true, false, args6));
	CU_ASSERT_EQUAL(rpc_error(c, 1, text, sizeof(text)), 406);
	CU_ASSERT_STRING_EQUAL(text, "PRECONDITION_FAILED - inequivalent arg 'x-max-length' for "
	                             "queue 'd.args' in vhost '/': received '6' but current is "
	                             "'5'");
	CU_ASSERT(!dqdecl(c, "d.args", true));
	CU_ASSERT_EQUAL(rpc_error(c, 1, text, sizeof(text)), 406);
	CU_ASSERT(strncmp(text, "PRECONDITION_FAILED - inequivalent arg 'x-", 42) == 0);

	/* the limit is still in force: three more push out m5..m7 */
	CU_ASSERT_FATAL(confirm_select(c, 1));
	memset(&cf, 0, sizeof(cf));
	n = 0;
	publish_n(c, &cf, &n, "d.args", "n", 3);
	CU_ASSERT_EQUAL(qcount(c, "d.args"), 5);
	broker_disconnect(c);

	db_restart(false);
	c = dconn();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	struct rlist got = {0};
	consume_all(c, 2, "d.args", true, 5, &got);
	CHECK_COUNT(got.n, 5, "messages in the x-max-length 5 queue");
	CHECK_MSG(&got, 0, "m8", false);
	CHECK_MSG(&got, 1, "m9", false);
	CHECK_MSG(&got, 2, "n0", false);
	CHECK_MSG(&got, 3, "n1", false);
	CHECK_MSG(&got, 4, "n2", false);
	rlist_free(&got);
	broker_disconnect(c);
	db_done();
}

/* ---- kill -9 right after confirms ------------------------------------------------ */

static void test_kill9_after_confirms(void)
{
	if (broker_external())
		return;
	db_setup();
	amqp_connection_state_t c = dconn();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT(xdecl(c, "d.fan", "fanout", true));
	CU_ASSERT(dqdecl(c, "d.k1", true));
	CU_ASSERT(dqdecl(c, "d.k2", true));
	CU_ASSERT(qbind(c, "d.k1", "d.fan", "", amqp_empty_table));
	CU_ASSERT(qbind(c, "d.k2", "d.fan", "", amqp_empty_table));
	CU_ASSERT_FATAL(confirm_select(c, 1));

	/* Publish in batches while reading confirms; the moment 1500 are
	 * confirmed, kill -9 (more are in flight then). */
	enum { TOTAL = 4000, KILL_AT = 1500 };
	char body[600];
	memset(body, '.', sizeof(body) - 1);
	body[sizeof(body) - 1] = '\0';
	struct confirms cf = {0};
	int sent = 0;
	while (cf.acked < KILL_AT && !cf.broken) {
		for (int i = 0; i < 50 && sent < TOTAL; i++, sent++) {
			char id[32];
			snprintf(id, sizeof(id), "k%05d", sent + 1); /* = its delivery tag */
			memcpy(body, id, strlen(id));
			if (dpublish(c, 1, "d.fan", "", body, true) != AMQP_STATUS_OK)
				cf.broken = true;
		}
		while (confirms_poll(c, 1, &cf, sent < TOTAL ? 0 : 100) > 0 && cf.acked < KILL_AT)
			;
	}
	uint64_t confirmed = cf.acked;
	db_kill9();
	CU_ASSERT_EQUAL(cf.nacks, 0);
	CU_ASSERT(confirmed >= KILL_AT);
	fprintf(stderr, "\n  [durability] kill -9 after %llu confirmed of %d sent ",
	        (unsigned long long)confirmed, sent);
	conn_drop(c);

	CU_ASSERT_FATAL(db_start());
	c = dconn();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	const char *qs[] = {"d.k1", "d.k2"};
	for (int k = 0; k < 2; k++) {
		struct rlist got = {0};
		consume_all(c, (amqp_channel_t)(2 + k), qs[k], true, confirmed, &got);
		if (got.n < confirmed)
			fprintf(stderr,
			        "\n  [durability] %s: %zu messages after kill -9, %llu were "
			        "confirmed\n",
			        qs[k], got.n, (unsigned long long)confirmed);
		CU_ASSERT(got.n >= confirmed);
		CU_ASSERT(got.n <= (size_t)sent);
		/* in order, no gaps, the confirmed ones first; none redelivered */
		size_t bad = 0;
		for (size_t i = 0; i < got.n; i++) {
			char id[32];
			snprintf(id, sizeof(id), "k%05zu", i + 1);
			if (strncmp(got.v[i].body, id, 6) != 0 || got.v[i].redelivered ||
			    got.v[i].len != sizeof(body) - 1) {
				if (!bad++)
					fprintf(stderr,
					        "\n  [durability] %s: message %zu is \"%.6s\" "
					        "(redelivered %d, %zu bytes), want %s\n",
					        qs[k], i, got.v[i].body, got.v[i].redelivered,
					        got.v[i].len, id);
			}
		}
		CU_ASSERT_EQUAL(bad, 0);
		rlist_free(&got);
	}
	broker_disconnect(c);
	db_done();
}

/* ---- big messages over several segment files ---------------------------------- */

enum { BIG_N = 40, BIG_LEN = 1024 * 1024 };

static void big_fill(unsigned char *b, int id)
{
	for (size_t i = 0; i < BIG_LEN; i++)
		b[i] = (unsigned char)((size_t)id * 31 + i * 7 + i / 1021);
	snprintf((char *)b, 16, "big%02d", id);
}

/* Consume everything in q on channel ch; every body must be big message
 * want[k] (byte for byte) with redelivered as given; acks when ack.
 * Returns how many came. */
static int big_consume(amqp_connection_state_t c, amqp_channel_t ch, const char *q, const int *want,
                       int nwant, bool redelivered, bool ack)
{
	unsigned char *exp = malloc(BIG_LEN);
	if (!exp || !open_channel(c, ch) ||
	    !amqp_basic_consume(c, ch, amqp_cstring_bytes(q), amqp_empty_bytes, 0, 0, 0,
	                        amqp_empty_table)) {
		free(exp);
		return -1;
	}
	int n = 0;
	for (;;) {
		struct timeval tv = {n < nwant ? 10 : 0, n < nwant ? 0 : 300000};
		amqp_envelope_t env;
		amqp_maybe_release_buffers(c);
		if (amqp_consume_message(c, &env, &tv, 0).reply_type != AMQP_RESPONSE_NORMAL)
			break;
		if (n < nwant) {
			big_fill(exp, want[n]);
			bool same = env.message.body.len == BIG_LEN &&
			            memcmp(env.message.body.bytes, exp, BIG_LEN) == 0;
			CU_ASSERT(same);
			CU_ASSERT(env.redelivered == redelivered);
			if ((!same || env.redelivered != redelivered) && ++g_msg_reports <= 5)
				fprintf(stderr,
				        "\n  [durability] %s message %d: want big%02d "
				        "redelivered=%d, got \"%.5s\" (%zu bytes) redelivered=%d\n",
				        q, n, want[n], redelivered,
				        env.message.body.len ? (const char *)env.message.body.bytes
				                             : "",
				        env.message.body.len, env.redelivered);
		}
		if (ack)
			amqp_basic_ack(c, ch, env.delivery_tag, 0);
		n++;
		amqp_destroy_envelope(&env);
	}
	free(exp);
	return n;
}

/* 40 MiB in one queue (the file backend rolls segments at 16 MiB): every
 * other message acked, kill -9, the rest back byte for byte; then all
 * acked, and the space is given back. */
static void test_big_messages_segments(void)
{
	if (broker_external())
		return;
	db_setup();
	amqp_connection_state_t c = dconn();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT(dqdecl(c, "d.big", true));
	CU_ASSERT_FATAL(confirm_select(c, 1));
	unsigned char *buf = malloc(BIG_LEN);
	CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
	amqp_basic_properties_t p;
	memset(&p, 0, sizeof(p));
	p._flags = AMQP_BASIC_DELIVERY_MODE_FLAG;
	p.delivery_mode = 2;
	struct confirms cf = {0};
	for (int i = 0; i < BIG_N; i++) {
		big_fill(buf, i);
		CU_ASSERT_EQUAL(amqp_basic_publish(c, 1, amqp_cstring_bytes(""),
		                                   amqp_cstring_bytes("d.big"), 0, 0, &p,
		                                   (amqp_bytes_t){BIG_LEN, buf}),
		                AMQP_STATUS_OK);
		while (confirms_poll(c, 1, &cf, 0) > 0)
			;
	}
	free(buf);
	CU_ASSERT(confirms_wait(c, 1, &cf, BIG_N));

	/* deliver all, ack the odd ones */
	struct rlist got = {0};
	CU_ASSERT_FATAL(open_channel(c, 2));
	while (get_one(c, 2, "d.big", false, &got) == 1)
		;
	CHECK_COUNT(got.n, BIG_N, "big messages delivered");
	for (size_t i = 1; i < got.n; i += 2)
		amqp_basic_ack(c, 2, got.v[i].tag, 0);
	rlist_free(&got);
	CU_ASSERT(dqdecl(c, "d.fence", true));
	CU_ASSERT_EQUAL(dpublish(c, 1, "", "d.fence", "fence", true), AMQP_STATUS_OK);
	CU_ASSERT(confirms_wait(c, 1, &cf, BIG_N + 1));
	db_restart(true);
	conn_drop(c);

	int even[BIG_N / 2];
	for (int i = 0; i < BIG_N / 2; i++)
		even[i] = 2 * i;
	c = dconn();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_EQUAL(qcount(c, "d.big"), BIG_N / 2);
	/* unacked again: they come back after a clean stop too */
	CU_ASSERT_EQUAL(big_consume(c, 2, "d.big", even, BIG_N / 2, true, false), BIG_N / 2);
	db_restart(false);
	conn_drop(c);

	c = dconn();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_EQUAL(big_consume(c, 2, "d.big", even, BIG_N / 2, true, true), BIG_N / 2);
	CU_ASSERT_EQUAL(qcount(c, "d.big"), 0);
	broker_disconnect(c);
	db_restart(false);
	c = dconn();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_EQUAL(qcount(c, "d.big"), 0);
	broker_disconnect(c);
	/* every message acked and two restarts later, the segment files
	 * holding them are gone */
	long long du = dir_bytes(g_dir);
	CU_ASSERT(du < 2 * BIG_LEN);
	if (du >= 2 * BIG_LEN)
		fprintf(stderr, "\n  [durability] %lld bytes left in %s with every message acked\n",
		        du, g_dir);
	db_done();
}

/* ---- messages paged out (--queue-memory-budget) --------------------------------- */

enum { PG_N = 300 };

static bool pg_persistent(int i)
{
	return i % 10 != 9;
}

static size_t pg_len(int i)
{
	return 500 + (size_t)(i * 997) % 3000;
}

static void pg_fill(unsigned char *b, int i)
{
	for (size_t k = 0; k < pg_len(i); k++)
		b[k] = (unsigned char)(i * 13 + k * 5);
	char hdr[24];
	int n = snprintf(hdr, sizeof(hdr), "pg%03d|", i);
	memcpy(b, hdr, (size_t)n);
}

/* Message number want (or -1: none expected) received with these
 * properties, body and flag: one assertion, and the first few differences
 * printed. */
static void pg_check(const char *q, int want, const amqp_basic_properties_t *p, amqp_bytes_t body,
                     bool redelivered, bool want_redelivered)
{
	unsigned char exp[4096];
	char id[16] = "";
	bool ok = want >= 0;
	if (ok) {
		pg_fill(exp, want);
		snprintf(id, sizeof(id), "id%03d", want);
		ok = body.len == pg_len(want) && memcmp(body.bytes, exp, body.len) == 0 &&
		     (p->_flags & AMQP_BASIC_MESSAGE_ID_FLAG) && bytes_eq(p->message_id, id) &&
		     p->delivery_mode == 2 && (p->_flags & AMQP_BASIC_HEADERS_FLAG) &&
		     p->headers.num_entries == 1 &&
		     p->headers.entries[0].value.kind == AMQP_FIELD_KIND_I32 &&
		     p->headers.entries[0].value.value.i32 == want &&
		     redelivered == want_redelivered;
	}
	CU_ASSERT(ok);
	if (!ok && ++g_msg_reports <= 5)
		fprintf(stderr,
		        "\n  [durability] %s: want %s redelivered=%d, got \"%.6s\" (%zu bytes, "
		        "message-id %.*s) redelivered=%d\n",
		        q, want >= 0 ? id : "nothing", want_redelivered,
		        body.len ? (const char *)body.bytes : "", body.len,
		        (p->_flags & AMQP_BASIC_MESSAGE_ID_FLAG) ? (int)p->message_id.len : 0,
		        (const char *)p->message_id.bytes, redelivered);
}

/* Consume all of q on channel ch and check it is the persistent messages
 * from..PG_N-1 in order, those below redelivered_below redelivered, then
 * a message with body trailer (unless NULL); ack them. */
static void pg_consume(amqp_connection_state_t c, amqp_channel_t ch, const char *q, int from,
                       int redelivered_below, const char *trailer)
{
	int want[PG_N], nwant = 0, n = 0;
	for (int i = from; i < PG_N; i++)
		if (pg_persistent(i))
			want[nwant++] = i;
	CU_ASSERT_FATAL(open_channel(c, ch));
	CU_ASSERT_FATAL(amqp_basic_consume(c, ch, amqp_cstring_bytes(q), amqp_empty_bytes, 0, 0, 0,
	                                   amqp_empty_table) != NULL);
	for (;;) {
		bool more = n < nwant + (trailer ? 1 : 0);
		struct timeval tv = {more ? 10 : 0, more ? 0 : 300000};
		amqp_envelope_t env;
		amqp_maybe_release_buffers(c);
		if (amqp_consume_message(c, &env, &tv, 0).reply_type != AMQP_RESPONSE_NORMAL)
			break;
		if (n == nwant && trailer) {
			CU_ASSERT(bytes_eq(env.message.body, trailer) && !env.redelivered);
		} else {
			int w = n < nwant ? want[n] : -1;
			pg_check(q, w, &env.message.properties, env.message.body, env.redelivered,
			         w >= 0 && w < redelivered_below);
		}
		amqp_basic_ack(c, ch, env.delivery_tag, 0);
		amqp_destroy_envelope(&env);
		n++;
	}
	char what[128];
	snprintf(what, sizeof(what), "messages in %s", q);
	CHECK_COUNT(n, nwant + (trailer ? 1 : 0), what);
	amqp_channel_close(c, ch, AMQP_REPLY_SUCCESS);
}

/* With a 64 KiB --queue-memory-budget most persistent messages of durable
 * queues wait on disk only and are read back for delivery, before and
 * after a restart (which then keeps only index entries in memory): bodies,
 * properties, order and redelivered flags must come through unchanged. */
static void test_paged_out_messages(void)
{
	if (broker_external())
		return;
	db_setup();
	g_opt[0] = "--queue-memory-budget";
	g_opt[1] = "65536";
	CU_ASSERT_EQUAL_FATAL(broker_stop(&g_db), 0);
	CU_ASSERT_FATAL(db_start());
	amqp_connection_state_t c = dconn();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT(xdecl(c, "d.pfan", "fanout", true));
	CU_ASSERT(dqdecl(c, "d.pg1", true));
	CU_ASSERT(dqdecl(c, "d.pg2", true));
	CU_ASSERT(qbind(c, "d.pg1", "d.pfan", "", amqp_empty_table));
	CU_ASSERT(qbind(c, "d.pg2", "d.pfan", "", amqp_empty_table));
	CU_ASSERT_FATAL(confirm_select(c, 1));
	unsigned char buf[4096];
	struct confirms cf = {0};
	for (int i = 0; i < PG_N; i++) {
		char id[16];
		snprintf(id, sizeof(id), "id%03d", i);
		amqp_table_entry_t h = {amqp_cstring_bytes("i"), {AMQP_FIELD_KIND_I32, {.i32 = i}}};
		amqp_basic_properties_t p;
		memset(&p, 0, sizeof(p));
		p._flags = AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_MESSAGE_ID_FLAG |
		           AMQP_BASIC_HEADERS_FLAG;
		p.delivery_mode = pg_persistent(i) ? 2 : 1;
		p.message_id = amqp_cstring_bytes(id);
		p.headers = (amqp_table_t){1, &h};
		pg_fill(buf, i);
		CU_ASSERT_EQUAL(amqp_basic_publish(c, 1, amqp_cstring_bytes("d.pfan"),
		                                   amqp_empty_bytes, 0, 0, &p,
		                                   (amqp_bytes_t){pg_len(i), buf}),
		                AMQP_STATUS_OK);
		while (confirms_poll(c, 1, &cf, 0) > 0)
			;
	}
	CU_ASSERT(confirms_wait(c, 1, &cf, PG_N));
	CU_ASSERT_EQUAL(qcount(c, "d.pg1"), PG_N);

	/* Read the first 100 of d.pg1 back (paged in) with basic.get; ack
	 * those below 50, leave the rest unacked. */
	CU_ASSERT_FATAL(open_channel(c, 2));
	for (int i = 0; i < 100; i++) {
		amqp_rpc_reply_t r = amqp_basic_get(c, 2, amqp_cstring_bytes("d.pg1"), 0);
		CU_ASSERT_FATAL(r.reply_type == AMQP_RESPONSE_NORMAL &&
		                r.reply.id == AMQP_BASIC_GET_OK_METHOD);
		const amqp_basic_get_ok_t *ok = r.reply.decoded;
		uint64_t tag = ok->delivery_tag;
		bool redelivered = ok->redelivered;
		amqp_message_t m;
		CU_ASSERT_FATAL(amqp_read_message(c, 2, &m, 0).reply_type == AMQP_RESPONSE_NORMAL);
		if (pg_persistent(i)) {
			pg_check("d.pg1", i, &m.properties, m.body, redelivered, false);
		} else {
			CU_ASSERT_EQUAL(m.properties.delivery_mode, 1);
			CU_ASSERT(m.body.len == pg_len(i));
		}
		amqp_destroy_message(&m);
		if (i < 50)
			amqp_basic_ack(c, 2, tag, 0);
	}
	CU_ASSERT_EQUAL(dpublish(c, 1, "", "d.pg1", "fence", true), AMQP_STATUS_OK);
	CU_ASSERT(confirms_wait(c, 1, &cf, PG_N + 1));
	db_restart(true);
	conn_drop(c);

	c = dconn();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_EQUAL(qcount(c, "d.pg1"), 225 + 1);
	CU_ASSERT_EQUAL(qcount(c, "d.pg2"), 270);
	pg_consume(c, 3, "d.pg2", 0, 0, NULL);
	/* d.pg1: 50..299 (persistent only), 50..99 redelivered, then the fence */
	pg_consume(c, 2, "d.pg1", 50, 100, "fence");
	CU_ASSERT_EQUAL(qcount(c, "d.pg1"), 0);
	broker_disconnect(c);

	db_restart(false);
	c = dconn();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_EQUAL(qcount(c, "d.pg1"), 0);
	CU_ASSERT_EQUAL(qcount(c, "d.pg2"), 0);
	broker_disconnect(c);
	db_done();
}

/* ---- one broker per data directory -------------------------------------------- */

static void test_second_instance_refused(void)
{
	if (broker_external())
		return;
	db_setup();
	char exe[600], listen[64], log_path[700];
	snprintf(exe, sizeof(exe), "%s/server/amqpd", top_builddir());
	snprintf(listen, sizeof(listen), "127.0.0.1:%d", free_port());
	snprintf(log_path, sizeof(log_path), "%s/tests/integration/amqpd-dur-second-%d.log",
	         top_builddir(), (int)getpid());
	/* the same directory under another name: the lock must not go by
	 * the path string */
	char other_name[700];
	snprintf(other_name, sizeof(other_name), "%s/./", g_dir);
	pid_t pid = fork();
	CU_ASSERT_FATAL(pid >= 0);
	if (pid == 0) {
		if (!freopen(log_path, "w", stderr))
			_exit(126);
		execl(exe, exe, "--listen", listen, "--data-dir", other_name, "--log-level",
		      "debug", (char *)NULL);
		fprintf(stderr, "exec %s: %s\n", exe, strerror(errno));
		_exit(127);
	}
	g_extra = pid;
	int st = 0;
	pid_t r = 0;
	for (int i = 0; i < 500 && r == 0; i++) { /* up to 10 s */
		r = waitpid(pid, &st, WNOHANG);
		if (r == 0)
			sleep_ms(20);
	}
	CU_ASSERT_EQUAL(r, pid);
	if (r != pid) {
		fprintf(stderr, "\n  [durability] a second amqpd on %s is still running\n", g_dir);
		reap(&g_extra);
	} else {
		g_extra = 0;
		CU_ASSERT(WIFEXITED(st) && WEXITSTATUS(st) != 0);
		if (WIFEXITED(st) && WEXITSTATUS(st) == 127)
			fprintf(stderr, "\n  [durability] could not run %s\n", exe);
	}
	char log[8192] = "";
	FILE *f = fopen(log_path, "r");
	if (f) {
		size_t len = fread(log, 1, sizeof(log) - 1, f);
		log[len] = '\0';
		fclose(f);
	}
	CU_ASSERT_PTR_NOT_NULL(strstr(log, "in use"));
	if (!strstr(log, "in use"))
		fprintf(stderr, "\n  [durability] second amqpd's log (%s):\n%s\n", log_path, log);
	else
		remove(log_path);

	/* The first one is unharmed and its data too. */
	CU_ASSERT(broker_alive(&g_db));
	amqp_connection_state_t c = dconn();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT(dqdecl(c, "d.lock", true));
	CU_ASSERT_FATAL(confirm_select(c, 1));
	struct confirms cf = {0};
	uint64_t n = 0;
	publish_n(c, &cf, &n, "d.lock", "l", 3);
	broker_disconnect(c);
	db_restart(false);
	c = dconn();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_EQUAL(qcount(c, "d.lock"), 3);
	broker_disconnect(c);
	db_done();
}

/* ---- transactions ------------------------------------------------------------- */

static void test_tx_commit_kill9(void)
{
	if (broker_external())
		return;
	db_setup();
	amqp_connection_state_t c = dconn();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT(dqdecl(c, "d.tx", true));
	CU_ASSERT_PTR_NOT_NULL_FATAL(amqp_tx_select(c, 1));
	char body[32];
	for (int i = 0; i < 50; i++) {
		snprintf(body, sizeof(body), "c%02d", i);
		CU_ASSERT_EQUAL(dpublish(c, 1, "", "d.tx", body, true), AMQP_STATUS_OK);
	}
	CU_ASSERT_PTR_NOT_NULL(amqp_tx_commit(c, 1));
	for (int i = 0; i < 10; i++) {
		snprintf(body, sizeof(body), "r%02d", i);
		CU_ASSERT_EQUAL(dpublish(c, 1, "", "d.tx", body, true), AMQP_STATUS_OK);
	}
	CU_ASSERT_PTR_NOT_NULL(amqp_tx_rollback(c, 1));
	for (int i = 0; i < 5; i++) {
		snprintf(body, sizeof(body), "u%02d", i);
		CU_ASSERT_EQUAL(dpublish(c, 1, "", "d.tx", body, true), AMQP_STATUS_OK);
	}
	/* the uncommitted ones reach the broker before it dies */
	CU_ASSERT_EQUAL(qcount(c, "d.tx"), 50);
	db_restart(true);
	conn_drop(c);

	c = dconn();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_EQUAL(qcount(c, "d.tx"), 50);
	/* Fetch all 50 in a transaction, ack the first 20, commit, kill -9:
	 * the acks are durable, the other 30 come back redelivered. */
	CU_ASSERT_FATAL(open_channel(c, 2));
	CU_ASSERT_PTR_NOT_NULL_FATAL(amqp_tx_select(c, 2));
	struct rlist got = {0};
	while (get_one(c, 2, "d.tx", false, &got) == 1)
		;
	CHECK_COUNT(got.n, 50, "committed messages after kill -9");
	for (int i = 0; i < 50; i++) {
		snprintf(body, sizeof(body), "c%02d", i);
		if (!CHECK_MSG(&got, (size_t)i, body, false))
			break;
	}
	if (got.n >= 20)
		CU_ASSERT_EQUAL(amqp_basic_ack(c, 2, got.v[19].tag, 1), 0);
	rlist_free(&got);
	CU_ASSERT_PTR_NOT_NULL(amqp_tx_commit(c, 2));
	db_restart(true);
	conn_drop(c);

	c = dconn();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	consume_all(c, 2, "d.tx", true, 30, &got);
	CHECK_COUNT(got.n, 30, "messages left after the committed acks");
	for (int i = 20; i < 50; i++) {
		snprintf(body, sizeof(body), "c%02d", i);
		if (!CHECK_MSG(&got, (size_t)(i - 20), body, true))
			break;
	}
	rlist_free(&got);
	broker_disconnect(c);
	db_done();
}

/* ---- registration ------------------------------------------------------------- */

void suite_durability(void)
{
	/* Its own cleanup: a test that failed fatally leaves an amqpd behind. */
	CU_pSuite s = CU_add_suite("durability", NULL, suite_cleanup);
	if (!s)
		return;
	CU_add_test(s, "test_definitions", test_definitions);
	CU_add_test(s, "test_properties", test_properties);
	CU_add_test(s, "test_order_acks_clean_stop", test_order_acks_clean_stop);
	CU_add_test(s, "test_order_acks_kill9", test_order_acks_kill9);
	CU_add_test(s, "test_two_queues_reject", test_two_queues_reject);
	CU_add_test(s, "test_purge_delete", test_purge_delete);
	CU_add_test(s, "test_exclusive_not_recovered", test_exclusive_not_recovered);
	CU_add_test(s, "test_queue_arguments", test_queue_arguments);
	CU_add_test(s, "test_kill9_after_confirms", test_kill9_after_confirms);
	CU_add_test(s, "test_big_messages_segments", test_big_messages_segments);
	CU_add_test(s, "test_paged_out_messages", test_paged_out_messages);
	CU_add_test(s, "test_second_instance_refused", test_second_instance_refused);
	CU_add_test(s, "test_tx_commit_kill9", test_tx_commit_kill9);
}
