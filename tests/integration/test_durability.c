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
 * in the run's scratch directory (itest_scratch_dir(), under $TMPDIR), stops
 * it with SIGTERM (expecting exit status 0) or kills it with SIGKILL, and
 * starts a new one on the same directory.  Acks, reject and delivered marks are not confirmed by
 * themselves: before a kill -9 a test publishes one more persistent message
 * and waits for its confirm, since a sync covers everything written before
 * it.  A passing test removes its data directory and its amqpd logs; a
 * failed one keeps them and says where.  Skipped against an external
 * broker (AMQPD_TEST_EXTERNAL).
 *
 * This file holds the suite's own broker, the helpers both files use
 * (durability.h), the tests of definitions, purge and delete, exclusive
 * queues, queue arguments, the data directory lock and transactions, and
 * the registration; test_durability_msgs.c holds the tests of messages
 * surviving: properties and bodies, order, acks and redelivered, one
 * message in two queues, kill -9 after confirms, big and paged-out
 * messages.
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
#include "durability.h"

/* ---- this suite's own broker ---------------------------------------------- */

struct broker g_db;            /* pid 0 while not running */
char g_dir[600];               /* its data directory, "" when none */
static pid_t g_extra;          /* a second amqpd started by hand */
static unsigned g_failures_at; /* CUnit's failure count when the test began */
unsigned g_msg_reports;        /* message mismatches printed by this test */
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
long long dir_bytes(const char *dir)
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

const char *g_opt[2]; /* one more amqpd option and its value, or NULL */

bool db_start(void)
{
	const char *args[] = {"--data-dir", g_dir, g_opt[0], g_opt[1], NULL};
	int rc = broker_start(&g_db, args);
	if (g_nlogs < 16)
		snprintf(g_logs[g_nlogs++], sizeof(g_logs[0]), "%s", g_db.log_path);
	return rc == 0;
}

/* A fresh data directory and an amqpd on it. */
void db_setup(void)
{
	leftovers();
	g_opt[0] = g_opt[1] = NULL;
	g_failures_at = CU_get_number_of_failures();
	g_msg_reports = 0;
	const char *scratch = itest_scratch_dir();
	snprintf(g_dir, sizeof(g_dir), "%s/amqpd-dur-XXXXXX", scratch ? scratch : ".");
	if (!scratch || !mkdtemp(g_dir)) {
		fprintf(stderr, "\n  [durability] mkdtemp %s: %s\n", g_dir, strerror(errno));
		g_dir[0] = '\0';
	}
	CU_ASSERT_FATAL(g_dir[0] != '\0');
	CU_ASSERT_FATAL(db_start());
}

void db_kill9(void)
{
	pid_t p = g_db.pid;
	reap(&p);
	g_db.pid = 0;
}

/* Stop the broker (SIGTERM and exit status 0, or SIGKILL) and start a new
 * one on the same data directory. */
void db_restart(bool kill9)
{
	if (kill9)
		db_kill9();
	else
		CU_ASSERT_EQUAL(broker_stop(&g_db), 0);
	CU_ASSERT_FATAL(db_start());
}

/* The end of a test: clean stop, and the data directory removed unless
 * something failed. */
void db_done(void)
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
amqp_connection_state_t dconn(void)
{
	amqp_connection_state_t c = broker_connect(&g_db);
	struct timeval tv = {10, 0};
	if (c)
		amqp_set_rpc_timeout(c, &tv);
	return c;
}

/* A connection whose broker was killed: nothing to say good-bye to. */
void conn_drop(amqp_connection_state_t c)
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

bool xdecl(amqp_connection_state_t c, const char *x, const char *type, bool durable)
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

bool dqdecl(amqp_connection_state_t c, const char *q, bool durable)
{
	return dqdecl_args(c, q, durable, false, amqp_empty_table);
}

/* The number of ready messages in q (passive declare); -404 when q does
 * not exist, -1 on any other error. */
int qcount(amqp_connection_state_t c, const char *q)
{
	amqp_queue_declare_ok_t *ok =
	    amqp_queue_declare(c, 1, amqp_cstring_bytes(q), 1, 0, 0, 0, amqp_empty_table);
	if (ok)
		return (int)ok->message_count;
	return rpc_error(c, 1, NULL, 0) == 404 ? -404 : -1;
}

bool qbind(amqp_connection_state_t c, const char *q, const char *x, const char *key,
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

int dpublish(amqp_connection_state_t c, amqp_channel_t ch, const char *x, const char *key,
             const char *body, bool persistent)
{
	return dpublish_h(c, ch, x, key, body, persistent, NULL);
}

/* Read one frame (waiting up to ms) and account for it: 1 a frame came,
 * 0 nothing came, -1 the connection is gone. */
int confirms_poll(amqp_connection_state_t c, amqp_channel_t ch, struct confirms *cf, int ms)
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
bool confirms_wait(amqp_connection_state_t c, amqp_channel_t ch, struct confirms *cf, uint64_t upto)
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

bool confirm_select(amqp_connection_state_t c, amqp_channel_t ch)
{
	return amqp_confirm_select(c, ch) != NULL;
}

/* ---- receiving ----------------------------------------------------------- */

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

void rlist_free(struct rlist *l)
{
	free(l->v);
	memset(l, 0, sizeof(*l));
}

/* Consume q on channel ch (opened here) with manual acks until `expect`
 * messages came and then nothing more for 300 ms (or nothing at all for
 * 10 s); each is acked when ack is set, otherwise it stays unacked.  The
 * channel stays open. */
void consume_all(amqp_connection_state_t c, amqp_channel_t ch, const char *q, bool ack,
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
int get_one(amqp_connection_state_t c, amqp_channel_t ch, const char *q, bool no_ack,
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

/* Assert (at the caller's file and line) that message i of l has this body
 * and redelivered flag. */
bool check_msg_at(const struct rlist *l, size_t i, const char *body, bool redelivered,
                  const char *file, int line)
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
	CU_assertImplementation(ok, (unsigned)line, msg, file, "", CU_FALSE);
	if (!ok && ++g_msg_reports <= 5)
		fprintf(stderr, "\n  [durability:%d] %s\n", line, msg);
	return ok;
}

void check_count_at(size_t got, size_t want, const char *what, const char *file, int line)
{
	char msg[256];
	snprintf(msg, sizeof(msg), "%s: expected %zu, got %zu", what, want, got);
	CU_assertImplementation(got == want, (unsigned)line, msg, file, "", CU_FALSE);
	if (got != want)
		fprintf(stderr, "\n  [durability:%d] %s\n", line, msg);
}

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

/* ---- one broker per data directory -------------------------------------------- */

static void test_second_instance_refused(void)
{
	if (broker_external())
		return;
	db_setup();
	char exe[600], listen[64], log_path[700];
	snprintf(exe, sizeof(exe), "%s/server/amqpd", top_builddir());
	snprintf(listen, sizeof(listen), "127.0.0.1:%d", free_port());
	snprintf(log_path, sizeof(log_path), "%s/amqpd-dur-second.log", itest_scratch_dir());
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
