/*
 * test_auth.c - users, vhosts, permissions and logins in a real amqpd,
 * checked against RabbitMQ's reply codes and texts: a RabbitMQ definitions
 * export imported with --definitions (sha256, sha512 and plain-text
 * passwords; PLAIN and AMQPLAIN; bad files refuse the start; users kept
 * across a restart), vhost access and isolation, the configure/write/read
 * checks of each method, topic permissions, vhost and user limits, the
 * user_id property, login abuse (a flood of wrong passwords, the failure
 * delay, a 10 MiB start-ok), EXTERNAL over mutual TLS with each
 * --ssl-cert-login-from, and connection.update-secret.
 *
 * Each test starts its own broker with a definitions file it writes into
 * the run's scratch directory, with --login-failure-delay 50 unless the
 * delay is what is tested.  Waits are on conditions (an answer, EOF, a log
 * line), with timeouts only against hangs; the only duration asserted is a
 * lower bound.  Skipped against an external broker.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <amqp.h>
#include <amqp_framing.h>
#include <amqp_ssl_socket.h>
#include <amqp_tcp_socket.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>

#include "harness.h"
#include "itest.h"
#include "itest_util.h"
#include "raw.h"

/* ---- files and brokers ------------------------------------------------------ */

/* Writes text to a new file in the scratch directory; returns its path
 * (one of a few static buffers). */
static const char *scratch_file(const char *stem, const char *text)
{
	static char buf[8][700];
	static int i, n;
	i = (i + 1) % 8;
	const char *dir = itest_scratch_dir();
	CU_ASSERT_FATAL(dir != NULL);
	snprintf(buf[i], sizeof(buf[i]), "%s/auth-%s-%d", dir, stem, ++n);
	FILE *f = fopen(buf[i], "w");
	CU_ASSERT_FATAL(f != NULL);
	fputs(text, f);
	fclose(f);
	return buf[i];
}

/* Start b with definitions `json` (written to a file), a 50 ms login
 * failure delay and then extra (which may override it). */
/* Insert item into the list "key" of the one-line JSON object in buf (or
 * add the list), in place; buf has room for it. */
static void add_to_list(char *buf, size_t cap, const char *key, const char *item)
{
	char pat[64], ins[512];
	snprintf(pat, sizeof(pat), "\"%s\":[", key);
	char *at = strstr(buf, pat);
	if (at) {
		at += strlen(pat);
		snprintf(ins, sizeof(ins), "%s%s", item, *at == ']' ? "" : ",");
	} else {
		at = strchr(buf, '{');
		if (!at)
			return;
		at++;
		snprintf(ins, sizeof(ins), "%s%s]%s", pat, item, *at == '}' ? "" : ",");
	}
	size_t il = strlen(ins), tail = strlen(at);
	if (strlen(buf) + il + 1 > cap)
		return;
	memmove(at + il, at, tail + 1);
	memcpy(at, ins, il);
}

/* As RabbitMQ, a first start with definitions to load seeds no guest: the
 * tests that use guest beside their own users define it. */
static const char *with_guest(const char *json)
{
	static char buf[16384];
	snprintf(buf, sizeof(buf), "%s", json);
	if (strstr(buf, "\"guest\""))
		return buf;
	add_to_list(buf, sizeof(buf), "users",
	            "{\"name\":\"guest\",\"password\":\"guest\",\"tags\":[\"administrator\"]}");
	if (!strstr(buf, "{\"name\":\"/\"}"))
		add_to_list(buf, sizeof(buf), "vhosts", "{\"name\":\"/\"}");
	add_to_list(buf, sizeof(buf), "permissions",
	            "{\"user\":\"guest\",\"vhost\":\"/\",\"configure\":\".*\",\"write\":\".*\","
	            "\"read\":\".*\"}");
	return buf;
}

static bool start_defs(struct broker *b, const char *json, const char *const *extra)
{
	const char *args[48] = {"--definitions", scratch_file("defs.json", with_guest(json)),
	                        "--login-failure-delay", "50"};
	int n = 4;
	for (int i = 0; extra && extra[i] && n < 47; i++)
		args[n++] = extra[i];
	args[n] = NULL;
	bool ok = broker_start(b, args) == 0;
	if (!ok)
		fprintf(stderr, "\n  amqpd did not start (log %s)\n", b->log_path);
	return ok;
}

/* Does b's log contain `what`?  Waits up to 10 s for it. */
static bool log_has(struct broker *b, const char *what)
{
	int64_t end = now_ms() + 10000;
	do {
		FILE *f = fopen(b->log_path, "r");
		char line[4096];
		bool found = false;
		while (f && !found && fgets(line, sizeof(line), f))
			found = strstr(line, what) != NULL;
		if (f)
			fclose(f);
		if (found)
			return true;
		sleep_ms(20);
	} while (now_ms() < end);
	fprintf(stderr, "\n  log %s lacks \"%s\"\n", b->log_path, what);
	return false;
}

#define SKIP_EXTERNAL()                                                                            \
	do {                                                                                       \
		if (broker_external())                                                             \
			return;                                                                    \
	} while (0)

/* ---- rabbitmq-c logins ---------------------------------------------------------- */

static void close_from(const amqp_method_t *m, struct close_info *ci)
{
	if (m->id == AMQP_CONNECTION_CLOSE_METHOD) {
		const amqp_connection_close_t *cl = m->decoded;
		ci->kind = CLOSE_CONNECTION;
		ci->code = cl->reply_code;
		snprintf(ci->text, sizeof(ci->text), "%.*s", (int)cl->reply_text.len,
		         (const char *)cl->reply_text.bytes);
	}
}

/* Log in to b over TCP (PLAIN) and open channel 1; NULL on failure, with
 * the server's connection.close (if any) in *ci.  10 s RPC timeout. */
static amqp_connection_state_t try_login(struct broker *b, const char *user, const char *pass,
                                         const char *vhost, struct close_info *ci)
{
	struct close_info dummy;
	if (!ci)
		ci = &dummy;
	*ci = (struct close_info){CLOSE_NONE, 0, ""};
	amqp_connection_state_t c = amqp_new_connection();
	amqp_socket_t *s = amqp_tcp_socket_new(c);
	struct timeval tv = {10, 0};
	if (!s || amqp_socket_open_noblock(s, b->host, b->port, &tv) != AMQP_STATUS_OK) {
		amqp_destroy_connection(c);
		return NULL;
	}
	amqp_set_rpc_timeout(c, &tv);
	amqp_rpc_reply_t r =
	    amqp_login(c, vhost, 2047, 131072, 0, AMQP_SASL_METHOD_PLAIN, user, pass);
	if (r.reply_type == AMQP_RESPONSE_NORMAL) {
		amqp_channel_open(c, 1);
		r = amqp_get_rpc_reply(c);
		if (r.reply_type == AMQP_RESPONSE_NORMAL)
			return c;
	}
	if (r.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION)
		close_from(&r.reply, ci);
	else if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION)
		ci->code = r.library_error; /* negative: rabbitmq-c's status */
	amqp_destroy_connection(c);
	return NULL;
}

/* A logged-in connection that must work. */
static amqp_connection_state_t login_ok(struct broker *b, const char *user, const char *pass,
                                        const char *vhost)
{
	struct close_info ci;
	amqp_connection_state_t c = try_login(b, user, pass, vhost, &ci);
	if (!c)
		fprintf(stderr, "\n  login %s/%s on '%s' failed: %d \"%s\"\n", user, pass, vhost,
		        ci.code, ci.text);
	return c;
}

/* A login that must be refused at connection.open with this 530 text. */
static void open_refused_at(struct broker *b, const char *user, const char *pass, const char *vhost,
                            const char *text, int line)
{
	struct close_info ci;
	amqp_connection_state_t c = try_login(b, user, pass, vhost, &ci);
	CU_ASSERT_PTR_NULL(c);
	if (c)
		broker_disconnect(c);
	check_close_at(&ci, CLOSE_CONNECTION, 530, text, __FILE__, line);
}
#define OPEN_REFUSED(b, u, p, v, text) open_refused_at(b, u, p, v, text, __LINE__)

/* The last synchronous call on channel 1 ended in a channel.close with
 * this code and text; channel 1 is reopened. */
static void chan_refused_at(amqp_connection_state_t c, int code, const char *text, int line)
{
	struct close_info ci = rpc_close(c, 1);
	check_close_at(&ci, CLOSE_CHANNEL, code, text, __FILE__, line);
	if (ci.kind == CLOSE_CHANNEL)
		chan_reopen(c, 1);
}
#define CHAN_REFUSED(c, code, text) chan_refused_at(c, code, text, __LINE__)

/* After an asynchronous method (basic.publish): the channel.close. */
static void chan_closed_at(amqp_connection_state_t c, int code, const char *text, int line)
{
	struct close_info ci = wait_close(c, 1, 10000);
	check_close_at(&ci, CLOSE_CHANNEL, code, text, __FILE__, line);
	if (ci.kind == CLOSE_CHANNEL)
		chan_reopen(c, 1);
}
#define CHAN_CLOSED(c, code, text) chan_closed_at(c, code, text, __LINE__)

/* A synchronous no-op (basic.qos) after asynchronous methods: true when
 * the channel is still open, i.e. nothing before it was refused. */
static bool chan_alive(amqp_connection_state_t c)
{
	return amqp_basic_qos(c, 1, 0, 0, 0) != NULL;
}

/* The user name the broker has for c, as RabbitMQ lets one see it: a
 * message published with user_id = name is accepted (and comes back). */
static bool is_user(amqp_connection_state_t c, const char *name)
{
	amqp_queue_declare_ok_t *ok =
	    amqp_queue_declare(c, 1, amqp_empty_bytes, 0, 0, 1, 1, amqp_empty_table);
	if (!ok)
		return false;
	char q[256];
	snprintf(q, sizeof(q), "%.*s", (int)ok->queue.len, (const char *)ok->queue.bytes);
	amqp_basic_properties_t p = {._flags = AMQP_BASIC_USER_ID_FLAG,
	                             .user_id = amqp_cstring_bytes(name)};
	if (publish_full(c, 1, "", q, false, &p, amqp_cstring_bytes("who")) != AMQP_STATUS_OK)
		return false;
	struct got g = get1(c, q, true);
	return g.status == 1 && strcmp(g.body, "who") == 0;
}

/* ---- raw logins to a given broker ------------------------------------------------- */

static int raw_connect_to(struct broker *b, struct rframe *f)
{
	int fd = broker_raw_connect(b);
	if (fd < 0)
		return -1;
	if (send_all(fd, "AMQP\x00\x00\x09\x01", 8) < 0 || read_method(fd, f, 5000) != RF_OK ||
	    f->cls != 10 || f->mth != 10) {
		close(fd);
		return -1;
	}
	return fd;
}

/* The mechanisms of a connection.start frame. */
static void start_mechanisms(const struct rframe *f, char *out, size_t n)
{
	struct rd r = {.p = f->payload + 4, .n = f->size - 4};
	rd_u8(&r);
	rd_u8(&r);
	rd_take(&r, rd_u32(&r)); /* server-properties */
	uint32_t ml = rd_u32(&r);
	const uint8_t *m = rd_take(&r, ml);
	snprintf(out, n, "%.*s", m ? (int)ml : 0, m ? (const char *)m : "");
}

static bool has_word(const char *list, const char *w)
{
	size_t n = strlen(w);
	for (const char *p = list; (p = strstr(p, w)) != NULL; p += n)
		if ((p == list || p[-1] == ' ') && (p[n] == 0 || p[n] == ' '))
			return true;
	return false;
}

static void amqplain_response(struct wbuf *r, const char *user, const char *pass)
{
	wb_sstr(r, "LOGIN");
	wb_u8(r, 'S');
	wb_lstr(r, user, strlen(user));
	wb_sstr(r, "PASSWORD");
	wb_u8(r, 'S');
	wb_lstr(r, pass, strlen(pass));
}

enum { RAW_OPEN = 1, RAW_CLOSED = 2, RAW_ERROR = 3 };

/* start-ok with mech/resp (capability authentication_failure_close set),
 * then tune-ok and connection.open of vhost.  RAW_OPEN with *fd_out the
 * open connection, RAW_CLOSED with the server's connection.close in *cl
 * (socket closed), or RAW_ERROR. */
static int raw_login_to(struct broker *b, const char *mech, const void *resp, size_t len,
                        const char *vhost, struct rclose *cl, int *fd_out)
{
	static struct rframe f;
	int fd = raw_connect_to(b, &f);
	if (fd < 0)
		return RAW_ERROR;
	struct wbuf w = {0};
	wb_start_ok(&w, true, mech, resp, len);
	int rc = RAW_ERROR;
	if (send_wb(fd, &w) < 0 || read_method(fd, &f, 10000) != RF_OK)
		goto out;
	if (f.cls == 10 && f.mth == 30) {
		w.n = 0;
		wb_tune_ok(&w, 2047, 131072, 0);
		wb_conn_open(&w, vhost);
		if (send_wb(fd, &w) < 0 || read_method(fd, &f, 10000) != RF_OK)
			goto out;
	}
	if (f.cls == 10 && f.mth == 41) {
		*fd_out = fd;
		fd = -1;
		rc = RAW_OPEN;
	} else if (f.cls == 10 && f.mth == 50 && parse_close(&f, cl)) {
		rc = RAW_CLOSED;
	}
out:
	wb_free(&w);
	if (fd >= 0)
		close(fd);
	return rc;
}

static int raw_amqplain(struct broker *b, const char *user, const char *pass, struct rclose *cl,
                        int *fd)
{
	struct wbuf r = {0};
	amqplain_response(&r, user, pass);
	int rc = raw_login_to(b, "AMQPLAIN", r.p, r.n, "/", cl, fd);
	wb_free(&r);
	return rc;
}

static int raw_plain(struct broker *b, const char *user, const char *pass, struct rclose *cl,
                     int *fd)
{
	char resp[300];
	int n = snprintf(resp, sizeof(resp), "%c%s%c%s", 0, user, 0, pass);
	return raw_login_to(b, "PLAIN", resp, (size_t)n, "/", cl, fd);
}

static const char plain_refused[] = "ACCESS_REFUSED - Login was refused using authentication "
                                    "mechanism PLAIN. For details see the broker logfile.";
static const char amqplain_refused[] = "ACCESS_REFUSED - Login was refused using "
                                       "authentication mechanism AMQPLAIN. For details see the "
                                       "broker logfile.";

/* ---- password hashes ---------------------------------------------------------------- */

/* RabbitMQ's password_hash: base64(salt4 || H(salt4 || password)). */
static void rabbit_hash(const char *md_name, const char *pw, char *out, size_t n)
{
	uint8_t buf[4 + EVP_MAX_MD_SIZE];
	unsigned hl = 0;
	CU_ASSERT_FATAL(RAND_bytes(buf, 4) == 1);
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	CU_ASSERT_FATAL(ctx && EVP_DigestInit_ex(ctx, EVP_get_digestbyname(md_name), NULL) == 1 &&
	                EVP_DigestUpdate(ctx, buf, 4) == 1 &&
	                EVP_DigestUpdate(ctx, pw, strlen(pw)) == 1 &&
	                EVP_DigestFinal_ex(ctx, buf + 4, &hl) == 1);
	EVP_MD_CTX_free(ctx);
	CU_ASSERT_FATAL(n > 4 * ((4 + hl + 2) / 3));
	EVP_EncodeBlock((unsigned char *)out, buf, (int)(4 + hl));
}

/* ---- 1. definitions import ------------------------------------------------------------ */

static void test_auth_definitions_logins(void)
{
	SKIP_EXTERNAL();
	char h512[200], defs[4096];
	rabbit_hash("SHA512", "secret512", h512, sizeof(h512));
	snprintf(
	    defs, sizeof(defs),
	    "{\"rabbit_version\":\"3.12.0\",\"users\":["
	    "{\"name\":\"s256\",\"password_hash\":\"kI3GCqW5JLMJa4iX1lo7X4D6XbYqlLgxIs30+"
	    "P6tENUV2POR\","
	    "\"hashing_algorithm\":\"rabbit_password_hashing_sha256\",\"tags\":[],\"limits\":{}},"
	    "{\"name\":\"s512\",\"password_hash\":\"%s\","
	    "\"hashing_algorithm\":\"rabbit_password_hashing_sha512\",\"tags\":\"\"},"
	    "{\"name\":\"clear\",\"password\":\"pw-clear\",\"tags\":[\"management\"]}],"
	    "\"vhosts\":[{\"name\":\"/\"}],"
	    "\"permissions\":["
	    "{\"user\":\"s256\",\"vhost\":\"/"
	    "\",\"configure\":\".*\",\"write\":\".*\",\"read\":\".*\"},"
	    "{\"user\":\"s512\",\"vhost\":\"/"
	    "\",\"configure\":\".*\",\"write\":\".*\",\"read\":\".*\"},"
	    "{\"user\":\"clear\",\"vhost\":\"/"
	    "\",\"configure\":\".*\",\"write\":\".*\",\"read\":\".*\"}"
	    "]}",
	    h512);
	char data[700];
	snprintf(data, sizeof(data), "%s/auth-restart-%d.data", itest_scratch_dir(), (int)getpid());
	const char *extra[] = {"--data-dir", data, NULL};
	struct broker b;
	CU_ASSERT_FATAL(start_defs(&b, defs, extra));
	static const char *const users[][2] = {
	    {"s256", "test12"}, {"s512", "secret512"}, {"clear", "pw-clear"}};
	for (size_t i = 0; i < 3; i++) {
		const char *u = users[i][0], *p = users[i][1];
		amqp_connection_state_t c = login_ok(&b, u, p, "/");
		CU_ASSERT_PTR_NOT_NULL(c);
		if (c) {
			CU_ASSERT(is_user(c, u));
			broker_disconnect(c);
		}
		struct rclose cl;
		int fd = -1;
		CU_ASSERT_EQUAL(raw_amqplain(&b, u, p, &cl, &fd), RAW_OPEN);
		if (fd >= 0)
			close(fd);
		/* Wrong passwords: refused, with RabbitMQ's safe text. */
		memset(&cl, 0, sizeof(cl));
		CU_ASSERT_EQUAL(raw_plain(&b, u, "wrong", &cl, &fd), RAW_CLOSED);
		CU_ASSERT_EQUAL(cl.code, 403);
		CU_ASSERT_STRING_EQUAL(cl.text, plain_refused);
		CU_ASSERT(cl.cls == 0 && cl.mth == 0);
		memset(&cl, 0, sizeof(cl));
		CU_ASSERT_EQUAL(raw_amqplain(&b, u, "wrong", &cl, &fd), RAW_CLOSED);
		CU_ASSERT_EQUAL(cl.code, 403);
		CU_ASSERT_STRING_EQUAL(cl.text, amqplain_refused);
		char want[200];
		snprintf(want, sizeof(want), "PLAIN login refused: user '%s' - invalid credentials",
		         u);
		CU_ASSERT(log_has(&b, want));
	}
	/* rabbitmq-c (which sets authentication_failure_close) sees the 403. */
	struct close_info ci;
	CU_ASSERT_PTR_NULL(try_login(&b, "s256", "nope", "/", &ci));
	CHECK_CLOSE(ci, CLOSE_CONNECTION, 403, plain_refused);
	/* An unknown user: the same answer. */
	CU_ASSERT_PTR_NULL(try_login(&b, "nobody", "test12", "/", &ci));
	CHECK_CLOSE(ci, CLOSE_CONNECTION, 403, plain_refused);
	CU_ASSERT(log_has(&b, "PLAIN login refused: user 'nobody' - invalid credentials"));
	/* guest, defined beside them (with_guest). */
	amqp_connection_state_t g = login_ok(&b, "guest", "guest", "/");
	CU_ASSERT_PTR_NOT_NULL(g);
	broker_disconnect(g);
	CU_ASSERT_EQUAL(broker_stop(&b), 0);

	/* Restarted without --definitions: the data directory kept them. */
	char kept[800];
	snprintf(kept, sizeof(kept), "%s/definitions.json", data);
	CU_ASSERT(access(kept, R_OK) == 0);
	CU_ASSERT_FATAL(broker_start(&b, extra) == 0);
	for (size_t i = 0; i < 3; i++) {
		amqp_connection_state_t c = login_ok(&b, users[i][0], users[i][1], "/");
		CU_ASSERT_PTR_NOT_NULL(c);
		broker_disconnect(c);
		CU_ASSERT_PTR_NULL(try_login(&b, users[i][0], "wrong", "/", &ci));
		CU_ASSERT_EQUAL(ci.code, 403);
	}
	CU_ASSERT_EQUAL(broker_stop(&b), 0);
}

/* Run amqpd with these definitions; its exit status (-1 if it did not
 * exit within 10 s: it was killed), stderr in *log_out. */
static int run_bad_defs(const char *json, const char **log_out)
{
	const char *top = getenv("top_builddir");
	char exe[600], listen[64], data[700];
	snprintf(exe, sizeof(exe), "%s/server/amqpd", top && *top ? top : ".");
	snprintf(listen, sizeof(listen), "127.0.0.1:%d", harness_free_port());
	const char *defs = scratch_file("bad.json", json);
	const char *log = scratch_file("bad.log", "");
	snprintf(data, sizeof(data), "%s.data", log);
	*log_out = log;
	pid_t pid = fork();
	if (pid == 0) {
		if (!freopen(log, "w", stderr))
			_exit(126);
		execl(exe, exe, "--listen", listen, "--data-dir", data, "--definitions", defs,
		      (char *)NULL);
		_exit(127);
	}
	int st = 0;
	for (int64_t end = now_ms() + 10000; now_ms() < end; sleep_ms(10))
		if (waitpid(pid, &st, WNOHANG) == pid)
			return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	return -1;
}

static bool file_has(const char *path, const char *what)
{
	FILE *f = fopen(path, "r");
	char line[4096];
	bool found = false;
	while (f && !found && fgets(line, sizeof(line), f))
		found = strstr(line, what) != NULL;
	if (f)
		fclose(f);
	if (!found)
		fprintf(stderr, "\n  %s lacks \"%s\"\n", path, what);
	return found;
}

static void test_auth_bad_definitions(void)
{
	SKIP_EXTERNAL();
	static const struct {
		const char *json, *says, *says2;
	} bad[] = {
	    {"{\"users\":[{\"name\":\"rx\",\"password\":\"p\",\"tags\":[]}],"
	     "\"permissions\":[{\"user\":\"rx\",\"vhost\":\"/\",\"configure\":\"(\","
	     "\"write\":\".*\",\"read\":\".*\"}]}",
	     "user 'rx'", "configure"},
	    {"{\"users\":[{\"name\":\"alg\",\"password_hash\":"
	     "\"kI3GCqW5JLMJa4iX1lo7X4D6XbYqlLgxIs30+"
	     "P6tENUV2POR\",\"hashing_algorithm\":\"rabbit_password_hashing_sha3\",\"tags\":[]}]}",
	     "user 'alg'", "rabbit_password_hashing_sha3"},
	    {"{\"users\":[{\"name\":\"mv\",\"password\":\"p\",\"tags\":[]}],"
	     "\"permissions\":[{\"user\":\"mv\",\"vhost\":\"missing-vh\",\"configure\":\".*\","
	     "\"write\":\".*\",\"read\":\".*\"}]}",
	     "missing-vh", "user 'mv'"},
	    {"{\"users\":[{\"name\":\"js\",\"password\":\"p\",", ".json", "auth-bad.json"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *log;
		int rc = run_bad_defs(bad[i].json, &log);
		CU_ASSERT(rc > 0);
		if (rc <= 0)
			fprintf(stderr, "\n  bad definitions #%zu: amqpd exit %d (log %s)\n", i, rc,
			        log);
		CU_ASSERT(file_has(log, bad[i].says));
		CU_ASSERT(file_has(log, bad[i].says2));
	}
}

/* ---- 2. vhosts and permissions ------------------------------------------------------- */

#define FULL "\"configure\":\".*\",\"write\":\".*\",\"read\":\".*\""

static void test_auth_vhost_access(void)
{
	SKIP_EXTERNAL();
	struct broker b;
	CU_ASSERT_FATAL(
	    start_defs(&b,
	               "{\"users\":[{\"name\":\"u\",\"password\":\"pu\",\"tags\":[]},"
	               "{\"name\":\"w\",\"password\":\"pw\",\"tags\":[]}],"
	               "\"vhosts\":[{\"name\":\"/\"},{\"name\":\"v1\"},{\"name\":\"v2\"}],"
	               "\"permissions\":[{\"user\":\"u\",\"vhost\":\"v1\"," FULL "},"
	               "{\"user\":\"w\",\"vhost\":\"v1\"," FULL
	               "},{\"user\":\"w\",\"vhost\":\"v2\"," FULL "}]}",
	               NULL));
	OPEN_REFUSED(&b, "u", "pu", "/", "NOT_ALLOWED - access to vhost '/' refused for user 'u'");
	OPEN_REFUSED(&b, "u", "pu", "v2",
	             "NOT_ALLOWED - access to vhost 'v2' refused for user 'u'");
	OPEN_REFUSED(&b, "u", "pu", "nope", "NOT_ALLOWED - vhost nope not found");
	CU_ASSERT(log_has(&b, "access to vhost '/' refused for user 'u'"));
	/* On the wire: connection.close for connection.open (10, 40). */
	struct rclose cl = {0};
	int fd = -1;
	CU_ASSERT_EQUAL(raw_plain(&b, "u", "pu", &cl, &fd), RAW_CLOSED);
	CU_ASSERT(cl.code == 530 && cl.cls == 10 && cl.mth == 40);
	CU_ASSERT_STRING_EQUAL(cl.text, "NOT_ALLOWED - access to vhost '/' refused for user 'u'");
	if (fd >= 0)
		close(fd);
	amqp_connection_state_t u = login_ok(&b, "u", "pu", "v1");
	CU_ASSERT_PTR_NOT_NULL_FATAL(u);
	/* Isolation: a queue and an exchange of v1 do not exist in v2. */
	CU_ASSERT(qdecl(u, "iso-q"));
	CU_ASSERT(amqp_exchange_declare(u, 1, amqp_cstring_bytes("iso-x"),
	                                amqp_cstring_bytes("fanout"), 0, 0, 0, 0,
	                                amqp_empty_table) != NULL);
	CU_ASSERT_EQUAL(publish(u, "", "iso-q", "in v1"), AMQP_STATUS_OK);
	amqp_connection_state_t w = login_ok(&b, "w", "pw", "v2");
	CU_ASSERT_PTR_NOT_NULL_FATAL(w);
	CU_ASSERT_PTR_NULL(qdecl_full(w, 1, "iso-q", true, false, false, false, amqp_empty_table));
	CHAN_REFUSED(w, 404, "NOT_FOUND - no queue 'iso-q' in vhost 'v2'");
	CU_ASSERT_PTR_NULL(amqp_exchange_declare(w, 1, amqp_cstring_bytes("iso-x"),
	                                         amqp_cstring_bytes("fanout"), 1, 0, 0, 0,
	                                         amqp_empty_table));
	CHAN_REFUSED(w, 404, "NOT_FOUND - no exchange 'iso-x' in vhost 'v2'");
	/* Its own queue of the same name is another queue. */
	CU_ASSERT(qdecl(w, "iso-q"));
	CU_ASSERT_EQUAL(get1(w, "iso-q", true).status, 0);
	struct got g = get1(u, "iso-q", true);
	CU_ASSERT(g.status == 1 && strcmp(g.body, "in v1") == 0);
	broker_disconnect(w);
	broker_disconnect(u);
	CU_ASSERT_EQUAL(broker_stop(&b), 0);
}

static void test_auth_resource_permissions(void)
{
	SKIP_EXTERNAL();
	struct broker b;
	CU_ASSERT_FATAL(start_defs(
	    &b,
	    "{\"users\":[{\"name\":\"u\",\"password\":\"pu\",\"tags\":[]}],"
	    "\"vhosts\":[{\"name\":\"/\"}],"
	    "\"permissions\":[{\"user\":\"u\",\"vhost\":\"/\",\"configure\":\"^c-\","
	    "\"write\":\"^w-\",\"read\":\"^r-\"}],"
	    "\"queues\":[{\"name\":\"x\",\"vhost\":\"/\",\"durable\":true,\"auto_delete\":false,"
	    "\"arguments\":{}},{\"name\":\"w-q\",\"vhost\":\"/\",\"durable\":true,"
	    "\"auto_delete\":false,\"arguments\":{}},{\"name\":\"r-q\",\"vhost\":\"/\","
	    "\"durable\":true,\"auto_delete\":false,\"arguments\":{}}],"
	    "\"exchanges\":[{\"name\":\"w-x\",\"vhost\":\"/\",\"type\":\"direct\",\"durable\":true,"
	    "\"auto_delete\":false,\"internal\":false,\"arguments\":{}},{\"name\":\"r-x\","
	    "\"vhost\":\"/\",\"type\":\"direct\",\"durable\":true,\"auto_delete\":false,"
	    "\"internal\":false,\"arguments\":{}}],"
	    "\"bindings\":[{\"source\":\"w-x\",\"vhost\":\"/\",\"destination\":\"r-q\","
	    "\"destination_type\":\"queue\",\"routing_key\":\"k\",\"arguments\":{}}]}",
	    NULL));
	amqp_connection_state_t c = login_ok(&b, "u", "pu", "/");
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	const char *pre = "ACCESS_REFUSED - ";
	char t[300];
#define TXT(perm, kind, name)                                                                      \
	(snprintf(t, sizeof(t), "%s%s access to %s '%s' in vhost '/' refused for user 'u'", pre,   \
	          perm, kind, name),                                                               \
	 t)
	/* configure: queue.declare, queue.delete, exchange.declare/delete */
	CU_ASSERT(!qdecl(c, "x"));
	CHAN_REFUSED(c, 403, TXT("configure", "queue", "x"));
	CU_ASSERT(!qdecl(c, "new-q")); /* checked before it exists */
	CHAN_REFUSED(c, 403, TXT("configure", "queue", "new-q"));
	CU_ASSERT(qdecl(c, "c-q"));
	amqp_queue_delete(c, 1, amqp_cstring_bytes("x"), 0, 0);
	CHAN_REFUSED(c, 403, TXT("configure", "queue", "x"));
	amqp_queue_delete(c, 1, amqp_cstring_bytes("c-q"), 0, 0);
	CU_ASSERT(rpc_ok(c));
	CU_ASSERT_PTR_NULL(amqp_exchange_declare(c, 1, amqp_cstring_bytes("x"),
	                                         amqp_cstring_bytes("direct"), 0, 0, 0, 0,
	                                         amqp_empty_table));
	CHAN_REFUSED(c, 403, TXT("configure", "exchange", "x"));
	CU_ASSERT_PTR_NOT_NULL(amqp_exchange_declare(c, 1, amqp_cstring_bytes("c-x"),
	                                             amqp_cstring_bytes("direct"), 0, 0, 0, 0,
	                                             amqp_empty_table));
	CU_ASSERT_PTR_NULL(amqp_exchange_delete(c, 1, amqp_cstring_bytes("w-x"), 0));
	CHAN_REFUSED(c, 403, TXT("configure", "exchange", "w-x"));
	CU_ASSERT_PTR_NOT_NULL(amqp_exchange_delete(c, 1, amqp_cstring_bytes("c-x"), 0));
	/* write on the exchange: basic.publish; "" is checked as amq.default */
	CU_ASSERT_EQUAL(publish(c, "", "w-q", "m"), AMQP_STATUS_OK);
	CHAN_CLOSED(c, 403, TXT("write", "exchange", "amq.default"));
	CU_ASSERT_EQUAL(publish(c, "r-x", "k", "m"), AMQP_STATUS_OK);
	CHAN_CLOSED(c, 403, TXT("write", "exchange", "r-x"));
	CU_ASSERT_EQUAL(publish(c, "w-x", "k", "via w-x"), AMQP_STATUS_OK);
	CU_ASSERT(chan_alive(c));
	/* read: basic.get, basic.consume, queue.purge */
	struct got g = get1(c, "r-q", true);
	CU_ASSERT(g.status == 1 && strcmp(g.body, "via w-x") == 0);
	CU_ASSERT_EQUAL(get1(c, "x", true).status, -1);
	CHAN_REFUSED(c, 403, TXT("read", "queue", "x"));
	CU_ASSERT(!consume_on(c, 1, "w-q", NULL, true, false, NULL, 0));
	CHAN_REFUSED(c, 403, TXT("read", "queue", "w-q"));
	CU_ASSERT_PTR_NULL(amqp_queue_purge(c, 1, amqp_cstring_bytes("x")));
	CHAN_REFUSED(c, 403, TXT("read", "queue", "x"));
	CU_ASSERT_PTR_NOT_NULL(amqp_queue_purge(c, 1, amqp_cstring_bytes("r-q")));
	CU_ASSERT(consume_on(c, 1, "r-q", NULL, true, false, NULL, 0));
	/* queue.bind: write on the queue, read on the exchange */
	CU_ASSERT_PTR_NOT_NULL(amqp_queue_bind(c, 1, amqp_cstring_bytes("w-q"),
	                                       amqp_cstring_bytes("r-x"), amqp_cstring_bytes("b"),
	                                       amqp_empty_table));
	CU_ASSERT_PTR_NULL(amqp_queue_bind(c, 1, amqp_cstring_bytes("r-q"),
	                                   amqp_cstring_bytes("r-x"), amqp_cstring_bytes("b"),
	                                   amqp_empty_table));
	CHAN_REFUSED(c, 403, TXT("write", "queue", "r-q"));
	CU_ASSERT_PTR_NULL(amqp_queue_bind(c, 1, amqp_cstring_bytes("w-q"),
	                                   amqp_cstring_bytes("w-x"), amqp_cstring_bytes("b"),
	                                   amqp_empty_table));
	CHAN_REFUSED(c, 403, TXT("read", "exchange", "w-x"));
#undef TXT
	broker_disconnect(c);
	CU_ASSERT_EQUAL(broker_stop(&b), 0);
}

/* ---- 3. topic permissions ----------------------------------------------------------- */

static void test_auth_topic_permissions(void)
{
	SKIP_EXTERNAL();
	struct broker b;
	CU_ASSERT_FATAL(start_defs(
	    &b,
	    "{\"users\":[{\"name\":\"u\",\"password\":\"pu\",\"tags\":[]}],"
	    "\"vhosts\":[{\"name\":\"/\"}],"
	    "\"permissions\":[{\"user\":\"u\",\"vhost\":\"/\"," FULL "}],"
	    "\"topic_permissions\":[{\"user\":\"u\",\"vhost\":\"/\",\"exchange\":\"amq.topic\","
	    "\"write\":\"^x\\\\.\",\"read\":\"^x\\\\.\"},"
	    "{\"user\":\"u\",\"vhost\":\"/\",\"exchange\":\"tx\",\"write\":\"^{username}\\\\.\","
	    "\"read\":\"^{username}\\\\.\"}],"
	    "\"exchanges\":[{\"name\":\"tx\",\"vhost\":\"/\",\"type\":\"topic\",\"durable\":true,"
	    "\"auto_delete\":false,\"internal\":false,\"arguments\":{}},{\"name\":\"free\","
	    "\"vhost\":\"/\",\"type\":\"topic\",\"durable\":true,\"auto_delete\":false,"
	    "\"internal\":false,\"arguments\":{}}]}",
	    NULL));
	amqp_connection_state_t c = login_ok(&b, "u", "pu", "/");
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT(qdecl(c, "tq"));
	/* read: the binding key */
	CU_ASSERT_PTR_NOT_NULL(amqp_queue_bind(c, 1, amqp_cstring_bytes("tq"),
	                                       amqp_cstring_bytes("amq.topic"),
	                                       amqp_cstring_bytes("x.#"), amqp_empty_table));
	CU_ASSERT_PTR_NULL(amqp_queue_bind(c, 1, amqp_cstring_bytes("tq"),
	                                   amqp_cstring_bytes("amq.topic"),
	                                   amqp_cstring_bytes("zzz"), amqp_empty_table));
	CHAN_REFUSED(c, 403,
	             "ACCESS_REFUSED - read access to topic 'zzz' in exchange 'amq.topic' in vhost "
	             "'/' refused for user 'u'");
	/* write: the routing key */
	CU_ASSERT_EQUAL(publish(c, "amq.topic", "a.b", "m"), AMQP_STATUS_OK);
	CHAN_CLOSED(c, 403,
	            "ACCESS_REFUSED - write access to topic 'a.b' in exchange 'amq.topic' in vhost "
	            "'/' refused for user 'u'");
	CU_ASSERT_EQUAL(publish(c, "amq.topic", "x.y", "topic ok"), AMQP_STATUS_OK);
	CU_ASSERT(chan_alive(c));
	struct got g = get1(c, "tq", true);
	CU_ASSERT(g.status == 1 && strcmp(g.body, "topic ok") == 0);
	/* {username} expands to the user's name */
	CU_ASSERT_PTR_NOT_NULL(amqp_queue_bind(c, 1, amqp_cstring_bytes("tq"),
	                                       amqp_cstring_bytes("tx"), amqp_cstring_bytes("u.*"),
	                                       amqp_empty_table));
	CU_ASSERT_PTR_NULL(amqp_queue_bind(c, 1, amqp_cstring_bytes("tq"), amqp_cstring_bytes("tx"),
	                                   amqp_cstring_bytes("v.*"), amqp_empty_table));
	CHAN_REFUSED(c, 403,
	             "ACCESS_REFUSED - read access to topic 'v.*' in exchange 'tx' in vhost '/' "
	             "refused for user 'u'");
	CU_ASSERT_EQUAL(publish(c, "tx", "v.foo", "m"), AMQP_STATUS_OK);
	CHAN_CLOSED(c, 403,
	            "ACCESS_REFUSED - write access to topic 'v.foo' in exchange 'tx' in vhost '/' "
	            "refused for user 'u'");
	/* A literal "{username}" is not what the pattern means. */
	CU_ASSERT_EQUAL(publish(c, "tx", "{username}.foo", "m"), AMQP_STATUS_OK);
	CHAN_CLOSED(c, 403,
	            "ACCESS_REFUSED - write access to topic '{username}.foo' in exchange 'tx' in "
	            "vhost '/' refused for user 'u'");
	CU_ASSERT_EQUAL(publish(c, "tx", "u.foo", "mine"), AMQP_STATUS_OK);
	CU_ASSERT(chan_alive(c));
	g = get1(c, "tq", true);
	CU_ASSERT(g.status == 1 && strcmp(g.body, "mine") == 0);
	/* No topic permission for the exchange: anything goes. */
	CU_ASSERT_PTR_NOT_NULL(amqp_queue_bind(c, 1, amqp_cstring_bytes("tq"),
	                                       amqp_cstring_bytes("free"),
	                                       amqp_cstring_bytes("zzz"), amqp_empty_table));
	CU_ASSERT_EQUAL(publish(c, "free", "zzz", "free"), AMQP_STATUS_OK);
	CU_ASSERT(chan_alive(c));
	g = get1(c, "tq", true);
	CU_ASSERT(g.status == 1 && strcmp(g.body, "free") == 0);
	broker_disconnect(c);
	CU_ASSERT_EQUAL(broker_stop(&b), 0);
}

/* ---- 4. limits -------------------------------------------------------------------------- */

static void test_auth_vhost_limits(void)
{
	SKIP_EXTERNAL();
	struct broker b;
	CU_ASSERT_FATAL(start_defs(
	    &b,
	    "{\"users\":[{\"name\":\"u\",\"password\":\"pu\",\"tags\":[]}],"
	    "\"vhosts\":[{\"name\":\"/\"},{\"name\":\"lv\"}],"
	    "\"permissions\":[{\"user\":\"u\",\"vhost\":\"/\"," FULL "},"
	    "{\"user\":\"u\",\"vhost\":\"lv\"," FULL "}],"
	    "\"parameters\":[{\"vhost\":\"/\",\"component\":\"vhost-limits\",\"name\":\"limits\","
	    "\"value\":{\"max-queues\":2}},{\"vhost\":\"lv\",\"component\":\"vhost-limits\","
	    "\"name\":\"limits\",\"value\":{\"max-connections\":2}}]}",
	    NULL));
	amqp_connection_state_t c = login_ok(&b, "u", "pu", "/");
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT(qdecl(c, "q1"));
	CU_ASSERT(qdecl(c, "q2"));
	CU_ASSERT(qdecl(c, "q1")); /* not new: no limit */
	CU_ASSERT(!qdecl(c, "q3"));
	CHAN_REFUSED(
	    c, 406,
	    "PRECONDITION_FAILED - cannot declare queue 'q3': queue limit in vhost '/' (2) "
	    "is reached");
	qdelete(c, "q2");
	CU_ASSERT(qdecl(c, "q3"));

	amqp_connection_state_t l1 = login_ok(&b, "u", "pu", "lv");
	amqp_connection_state_t l2 = login_ok(&b, "u", "pu", "lv");
	CU_ASSERT(l1 && l2);
	OPEN_REFUSED(
	    &b, "u", "pu", "lv",
	    "NOT_ALLOWED - access to vhost 'lv' refused for user 'u': connection limit (2) "
	    "is reached");
	/* Others' connections elsewhere are not counted. */
	amqp_connection_state_t c2 = login_ok(&b, "u", "pu", "/");
	CU_ASSERT_PTR_NOT_NULL(c2);
	broker_disconnect(c2);
	/* One closed: there is room again (once the broker has seen it go). */
	broker_disconnect(l1);
	amqp_connection_state_t l3 = NULL;
	for (int64_t end = now_ms() + 10000; !l3 && now_ms() < end; sleep_ms(10))
		l3 = try_login(&b, "u", "pu", "lv", NULL);
	CU_ASSERT_PTR_NOT_NULL(l3);
	broker_disconnect(l3);
	broker_disconnect(l2);
	broker_disconnect(c);
	CU_ASSERT_EQUAL(broker_stop(&b), 0);
}

static void test_auth_user_limits(void)
{
	SKIP_EXTERNAL();
	struct broker b;
	CU_ASSERT_FATAL(start_defs(
	    &b,
	    "{\"users\":[{\"name\":\"uc\",\"password\":\"p\",\"tags\":[],"
	    "\"limits\":{\"max-connections\":1}},"
	    "{\"name\":\"uh\",\"password\":\"p\",\"tags\":[],\"limits\":{\"max-channels\":2}}],"
	    "\"vhosts\":[{\"name\":\"/\"}],"
	    "\"permissions\":[{\"user\":\"uc\",\"vhost\":\"/\"," FULL "},"
	    "{\"user\":\"uh\",\"vhost\":\"/\"," FULL "}]}",
	    NULL));
	amqp_connection_state_t c = login_ok(&b, "uc", "p", "/");
	CU_ASSERT_PTR_NOT_NULL(c);
	OPEN_REFUSED(&b, "uc", "p", "/",
	             "NOT_ALLOWED - connection refused for user 'uc': user connection limit (1) is "
	             "reached");
	broker_disconnect(c);
	c = NULL;
	for (int64_t end = now_ms() + 10000; !c && now_ms() < end; sleep_ms(10))
		c = try_login(&b, "uc", "p", "/", NULL);
	CU_ASSERT_PTR_NOT_NULL(c);
	broker_disconnect(c);

	/* max-channels counts the user's channels on all its connections. */
	amqp_connection_state_t h = login_ok(&b, "uh", "p", "/"); /* channel 1 */
	CU_ASSERT_PTR_NOT_NULL_FATAL(h);
	CU_ASSERT(open_channel(h, 2));
	amqp_channel_open(h, 3);
	struct close_info ci = rpc_close(h, 3);
	CHECK_CLOSE(ci, CLOSE_CONNECTION, 530,
	            "NOT_ALLOWED - number of channels opened for user 'uh' has reached the "
	            "maximum allowed user limit of 2");
	amqp_destroy_connection(h);
	h = NULL;
	for (int64_t end = now_ms() + 10000; !h && now_ms() < end; sleep_ms(10))
		h = try_login(&b, "uh", "p", "/", NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(h);
	CU_ASSERT(open_channel(h, 2));
	/* Another connection's first channel is the user's third. */
	amqp_connection_state_t h2 = try_login(&b, "uh", "p", "/", &ci);
	CU_ASSERT_PTR_NULL(h2);
	CHECK_CLOSE(ci, CLOSE_CONNECTION, 530,
	            "NOT_ALLOWED - number of channels opened for user 'uh' has reached the "
	            "maximum allowed user limit of 2");
	broker_disconnect(h);
	CU_ASSERT_EQUAL(broker_stop(&b), 0);
}

/* ---- 5. user_id --------------------------------------------------------------------------- */

static void test_auth_user_id(void)
{
	SKIP_EXTERNAL();
	struct broker b;
	CU_ASSERT_FATAL(
	    start_defs(&b,
	               "{\"users\":[{\"name\":\"u\",\"password\":\"pu\",\"tags\":[]},"
	               "{\"name\":\"imp\",\"password\":\"pi\",\"tags\":[\"impersonator\"]}],"
	               "\"vhosts\":[{\"name\":\"/\"}],"
	               "\"permissions\":[{\"user\":\"u\",\"vhost\":\"/\"," FULL "},"
	               "{\"user\":\"imp\",\"vhost\":\"/\"," FULL "}]}",
	               NULL));
	amqp_connection_state_t c = login_ok(&b, "u", "pu", "/");
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT(qdecl(c, "uq"));
	amqp_basic_properties_t p = {._flags = AMQP_BASIC_USER_ID_FLAG,
	                             .user_id = amqp_cstring_bytes("x")};
	CU_ASSERT_EQUAL(publish_full(c, 1, "", "uq", false, &p, amqp_cstring_bytes("forged")),
	                AMQP_STATUS_OK);
	CHAN_CLOSED(c, 406,
	            "PRECONDITION_FAILED - user_id property set to 'x' but authenticated user was "
	            "'u'");
	CU_ASSERT(is_user(c, "u"));
	CU_ASSERT_EQUAL(get1(c, "uq", true).status, 0); /* the forged one was dropped */
	amqp_connection_state_t i = login_ok(&b, "imp", "pi", "/");
	CU_ASSERT_PTR_NOT_NULL_FATAL(i);
	CU_ASSERT_EQUAL(publish_full(i, 1, "", "uq", false, &p, amqp_cstring_bytes("as x")),
	                AMQP_STATUS_OK);
	CU_ASSERT(chan_alive(i));
	amqp_rpc_reply_t r = amqp_basic_get(c, 1, amqp_cstring_bytes("uq"), 1);
	CU_ASSERT_FATAL(r.reply_type == AMQP_RESPONSE_NORMAL &&
	                r.reply.id == AMQP_BASIC_GET_OK_METHOD);
	amqp_message_t m;
	CU_ASSERT_FATAL(amqp_read_message(c, 1, &m, 0).reply_type == AMQP_RESPONSE_NORMAL);
	CU_ASSERT((m.properties._flags & AMQP_BASIC_USER_ID_FLAG) &&
	          bytes_eq(m.properties.user_id, "x"));
	amqp_destroy_message(&m);
	broker_disconnect(i);
	broker_disconnect(c);
	CU_ASSERT_EQUAL(broker_stop(&b), 0);
}

/* ---- 6. abuse ----------------------------------------------------------------------------- */

#define FLOOD_THREADS 2
#define FLOOD_EACH    500
#define FLOOD_BATCH   50

struct flood {
	struct broker *b;
	atomic_int *trips; /* round trips the good connection completed */
	atomic_int *done;  /* attempts finished, by all flooders */
	int refused, other, stalls;
};

/* FLOOD_EACH wrong-password logins, each read to its 403 and the close of
 * the socket.  After each batch, waits until the good connection has made
 * progress since the batch before (a stall of 20 s is counted). */
static void *flood_run(void *arg)
{
	struct flood *fl = arg;
	struct rframe *f = malloc(sizeof(*f));
	if (!f)
		return NULL;
	int seen = atomic_load(fl->trips);
	for (int i = 0; i < FLOOD_EACH; i++) {
		int fd = broker_raw_connect(fl->b);
		struct wbuf w = {0};
		wb_start_ok_plain(&w, true, "victim", "guess");
		struct rclose cl = {0};
		if (fd >= 0 && send_all(fd, "AMQP\x00\x00\x09\x01", 8) == 0 &&
		    read_method(fd, f, 10000) == RF_OK && f->cls == 10 && f->mth == 10 &&
		    send_wb(fd, &w) == 0 && read_method(fd, f, 10000) == RF_OK && f->cls == 10 &&
		    f->mth == 50 && parse_close(f, &cl) && cl.code == 403 &&
		    strcmp(cl.text, plain_refused) == 0 && await_eof(fd, 10000))
			fl->refused++;
		else
			fl->other++;
		wb_free(&w);
		if (fd >= 0)
			close(fd);
		atomic_fetch_add(fl->done, 1);
		if ((i + 1) % FLOOD_BATCH == 0) {
			int64_t end = now_ms() + 20000;
			while (atomic_load(fl->trips) == seen && now_ms() < end)
				sleep_ms(1);
			if (atomic_load(fl->trips) == seen)
				fl->stalls++;
			seen = atomic_load(fl->trips);
		}
	}
	free(f);
	return NULL;
}

static void test_auth_wrong_password_flood(void)
{
	SKIP_EXTERNAL();
	struct broker b;
	const char *extra[] = {"--login-failure-delay", "0", NULL};
	CU_ASSERT_FATAL(
	    start_defs(&b,
	               "{\"users\":[{\"name\":\"victim\",\"password\":\"right\",\"tags\":[]}],"
	               "\"vhosts\":[{\"name\":\"/\"}],"
	               "\"permissions\":[{\"user\":\"victim\",\"vhost\":\"/\"," FULL "}]}",
	               extra));
	amqp_connection_state_t c = login_ok(&b, "victim", "right", "/");
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_FATAL(qdecl(c, "rt"));
	atomic_int trips = 0, done = 0;
	struct flood fl[FLOOD_THREADS];
	pthread_t th[FLOOD_THREADS];
	for (int i = 0; i < FLOOD_THREADS; i++) {
		fl[i] = (struct flood){&b, &trips, &done, 0, 0, 0};
		CU_ASSERT_FATAL(pthread_create(&th[i], NULL, flood_run, &fl[i]) == 0);
	}
	/* Round trips until both flooders are done; each must be answered. */
	int answered = 0, wrong = 0;
	for (;;) {
		bool over = atomic_load(&done) >= FLOOD_THREADS * FLOOD_EACH;
		char body[32];
		snprintf(body, sizeof(body), "rt-%d", answered);
		if (publish(c, "", "rt", body) != AMQP_STATUS_OK)
			break;
		struct got g = get1(c, "rt", true);
		if (g.status == 1 && strcmp(g.body, body) == 0)
			answered++;
		else
			wrong++;
		if (wrong)
			break;
		atomic_store(&trips, answered);
		amqp_maybe_release_buffers(c);
		if (over)
			break;
	}
	int refused = 0, other = 0, stalls = 0;
	for (int i = 0; i < FLOOD_THREADS; i++) {
		if (wrong) /* the flooders wait for progress that will not come */
			atomic_store(&trips, -1);
		pthread_join(th[i], NULL);
		refused += fl[i].refused;
		other += fl[i].other;
		stalls += fl[i].stalls;
	}
	CU_ASSERT_EQUAL(wrong, 0);
	CU_ASSERT_EQUAL(refused, FLOOD_THREADS * FLOOD_EACH);
	CU_ASSERT_EQUAL(other, 0);
	CU_ASSERT_EQUAL(stalls, 0);
	CU_ASSERT(answered > FLOOD_THREADS * FLOOD_EACH / FLOOD_BATCH);
	if (trace_on())
		fprintf(stderr, "\n  %d round trips during %d refused logins\n", answered, refused);
	CU_ASSERT(rpc_ok(c) && chan_alive(c));
	amqp_connection_state_t ok = login_ok(&b, "victim", "right", "/");
	CU_ASSERT_PTR_NOT_NULL(ok);
	broker_disconnect(ok);
	broker_disconnect(c);
	CU_ASSERT(broker_alive(&b));
	CU_ASSERT_EQUAL(broker_stop(&b), 0);
}

/* Milliseconds until fd reaches EOF (or a reset), at most timeout_ms
 * (then -1); anything received first is ignored. */
static int64_t ms_to_eof(int fd, int64_t since, int timeout_ms)
{
	return await_eof(fd, timeout_ms) ? now_ms() - since : -1;
}

static void test_auth_failure_delay_default(void)
{
	SKIP_EXTERNAL();
	struct broker b;
	/* No --login-failure-delay: the default, 3000 ms. */
	const char *args[] = {"--definitions",
	                      scratch_file("defs.json",
	                                   "{\"users\":[{\"name\":\"u\",\"password\":\"pu\","
	                                   "\"tags\":[]}],\"vhosts\":[{\"name\":\"/\"}],"
	                                   "\"permissions\":[{\"user\":\"u\",\"vhost\":\"/\","
	                                   "" FULL "}]}"),
	                      NULL};
	CU_ASSERT_FATAL(broker_start(&b, args) == 0);
	static struct rframe f;
	/* a: with authentication_failure_close, told at once; n: without,
	 * told nothing.  Both closed no sooner than 3 s later. */
	int a = raw_connect_to(&b, &f);
	int n = raw_connect_to(&b, &f);
	CU_ASSERT_FATAL(a >= 0 && n >= 0);
	struct wbuf w = {0};
	wb_start_ok_plain(&w, true, "u", "wrong");
	int64_t t0 = now_ms();
	CU_ASSERT_FATAL(send_wb(a, &w) == 0);
	w.n = 0;
	wb_start_ok_plain(&w, false, "u", "wrong");
	CU_ASSERT_FATAL(send_wb(n, &w) == 0);
	wb_free(&w);
	CU_ASSERT_FATAL(read_method(a, &f, 10000) == RF_OK);
	struct rclose cl = {0};
	CU_ASSERT(f.cls == 10 && f.mth == 50 && parse_close(&f, &cl) && cl.code == 403);
	CU_ASSERT_STRING_EQUAL(cl.text, plain_refused);
	/* Meanwhile the broker serves others. */
	amqp_connection_state_t c = login_ok(&b, "u", "pu", "/");
	CU_ASSERT_PTR_NOT_NULL(c);
	CU_ASSERT(c && qdecl(c, "during-delay"));
	broker_disconnect(c);
	int64_t ta = ms_to_eof(a, t0, 15000);
	int64_t tn = ms_to_eof(n, t0, 15000);
	if (trace_on())
		fprintf(stderr, "\n  closed after %lld / %lld ms\n", (long long)ta, (long long)tn);
	CU_ASSERT(ta >= 3000);
	CU_ASSERT(tn >= 3000);
	close(a);
	close(n);
	CU_ASSERT_EQUAL(broker_stop(&b), 0);
}

static long vm_rss_kb(int pid)
{
	char p[64], line[256];
	snprintf(p, sizeof(p), "/proc/%d/status", pid);
	FILE *f = fopen(p, "r");
	long kb = -1;
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
			break;
	if (f)
		fclose(f);
	return kb;
}

static void test_auth_huge_start_ok(void)
{
	SKIP_EXTERNAL();
	struct broker b;
	CU_ASSERT_FATAL(start_defs(&b, "{}", NULL));
	amqp_connection_state_t c = login_ok(&b, "guest", "guest", "/");
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_FATAL(qdecl(c, "big-q"));
	CU_ASSERT(publish(c, "", "big-q", "before") == AMQP_STATUS_OK);
	CU_ASSERT_EQUAL(get1(c, "big-q", true).status, 1);
	long before = vm_rss_kb(b.pid);
	CU_ASSERT_FATAL(before > 0);
	static struct rframe f;
	int fd = raw_connect_to(&b, &f);
	CU_ASSERT_FATAL(fd >= 0);
	/* A start-ok whose client-properties table is 10 MiB. */
	const uint32_t big = 10u << 20;
	struct wbuf w = {0};
	uint8_t hdr[] = {1, 0, 0, 0, 0, 0, 0, 0, 10, 0, 11};
	uint32_t size = 4 + 4 + big + 1 + 5 + 4 + 2 + 1 + 5;
	hdr[3] = (uint8_t)(size >> 24);
	hdr[4] = (uint8_t)(size >> 16);
	hdr[5] = (uint8_t)(size >> 8);
	hdr[6] = (uint8_t)size;
	wb_put(&w, hdr, sizeof(hdr));
	wb_u32(&w, big);
	uint8_t *chunk = calloc(1, 1 << 20);
	CU_ASSERT_FATAL(chunk != NULL);
	int sent_all = send_wb(fd, &w) == 0;
	for (uint32_t off = 0; sent_all && off < big; off += 1u << 20)
		sent_all = send_all(fd, chunk, 1u << 20) == 0;
	free(chunk);
	wb_free(&w);
	/* Refused: the socket is closed, whatever the broker said first. */
	CU_ASSERT(await_eof(fd, 10000));
	close(fd);
	long after = vm_rss_kb(b.pid);
	if (trace_on())
		fprintf(stderr, "\n  VmRSS %ld -> %ld kB (all sent: %d)\n", before, after,
		        sent_all);
	CU_ASSERT(after > 0 && after - before < 5 * 1024);
	/* The others go on. */
	CU_ASSERT(publish(c, "", "big-q", "after") == AMQP_STATUS_OK);
	struct got g = get1(c, "big-q", true);
	CU_ASSERT(g.status == 1 && strcmp(g.body, "after") == 0);
	amqp_connection_state_t c2 = login_ok(&b, "guest", "guest", "/");
	CU_ASSERT_PTR_NOT_NULL(c2);
	broker_disconnect(c2);
	broker_disconnect(c);
	CU_ASSERT_EQUAL(broker_stop(&b), 0);
}

/* ---- 7. EXTERNAL over TLS -------------------------------------------------------------- */

static char tdir[600];

static bool tsh(const char *cmd)
{
	char full[4096];
	snprintf(full, sizeof(full), "cd '%s' && (%s) >/dev/null 2>&1", tdir, cmd);
	return system(full) == 0;
}

static char *tpath(const char *file)
{
	static char buf[4][700];
	static int i;
	i = (i + 1) % 4;
	snprintf(buf[i], sizeof(buf[i]), "%s/%s", tdir, file);
	return buf[i];
}

/* A CA, a server certificate (localhost, 127.0.0.1) and alice's client
 * certificate (C=US, O=Acme, CN=alice; DNS:alice.example and
 * email:alice@example.org). */
static bool tls_certs(void)
{
	static int state;
	if (state)
		return state > 0;
	state = -1;
	snprintf(tdir, sizeof(tdir), "%s/auth-tls", itest_scratch_dir());
	char cmd[800];
	snprintf(cmd, sizeof(cmd), "mkdir -p '%s'", tdir);
	if (system(cmd) != 0 ||
	    !tsh("openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 "
	         "-subj '/CN=auth test CA'") ||
	    !tsh("openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr "
	         "-subj '/CN=localhost' && printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' "
	         "> s.cnf && openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key "
	         "-CAcreateserial -out server.pem -days 2 -extfile s.cnf") ||
	    !tsh("openssl req -newkey rsa:2048 -nodes -keyout alice.key -out alice.csr "
	         "-subj '/C=US/O=Acme/CN=alice' && printf "
	         "'subjectAltName=DNS:alice.example,email:alice@example.org\\n"
	         "extendedKeyUsage=clientAuth\\n' > a.cnf && openssl x509 -req -in alice.csr -CA "
	         "ca.pem -CAkey ca.key -CAcreateserial -out alice.pem -days 2 -extfile a.cnf"))
		return false;
	state = 1;
	return true;
}

static const char ext_defs[] = "{\"users\":[{\"name\":\"alice\",\"tags\":[]},"
                               "{\"name\":\"CN=alice,O=Acme,C=US\",\"tags\":[]},"
                               "{\"name\":\"alice@example.org\",\"tags\":[]},"
                               "{\"name\":\"alice.example\",\"tags\":[]}],"
                               "\"vhosts\":[{\"name\":\"/\"},{\"name\":\"other\"}],"
                               "\"permissions\":[{\"user\":\"alice\",\"vhost\":\"/\"," FULL "},"
                               "{\"user\":\"CN=alice,O=Acme,C=US\",\"vhost\":\"/\"," FULL "},"
                               "{\"user\":\"alice@example.org\",\"vhost\":\"/\"," FULL "},"
                               "{\"user\":\"alice.example\",\"vhost\":\"/\"," FULL "}]}";

static int g_tls_port;

static bool start_ext(struct broker *b, const char *from, const char *san_type)
{
	g_tls_port = harness_free_port();
	static char listen[64];
	snprintf(listen, sizeof(listen), "127.0.0.1:%d", g_tls_port);
	const char *args[24] = {
	    "--listen-tls",      listen,     "--tls-cert",    tpath("server.pem"), "--tls-key",
	    tpath("server.key"), "--tls-ca", tpath("ca.pem"), "--tls-verify",      "peer"};
	int n = 10;
	if (from) {
		args[n++] = "--ssl-cert-login-from";
		args[n++] = from;
	}
	if (san_type) {
		args[n++] = "--ssl-cert-login-san-type";
		args[n++] = san_type;
	}
	args[n] = NULL;
	return start_defs(b, ext_defs, args);
}

/* rabbitmq-c over TLS without a client certificate: PLAIN guest/guest,
 * or EXTERNAL (which rabbitmq-c itself gives up on when it is not
 * offered).  NULL on failure. */
static amqp_connection_state_t tls_login_nocert(bool external)
{
	amqp_connection_state_t c = amqp_new_connection();
	amqp_socket_t *s = amqp_ssl_socket_new(c);
	struct timeval tv = {10, 0};
	if (!s)
		goto fail;
	amqp_ssl_socket_set_verify_peer(s, 1);
	amqp_ssl_socket_set_verify_hostname(s, 1);
	if (amqp_ssl_socket_set_cacert(s, tpath("ca.pem")) != AMQP_STATUS_OK ||
	    amqp_socket_open_noblock(s, "localhost", g_tls_port, &tv) != AMQP_STATUS_OK)
		goto fail;
	amqp_set_rpc_timeout(c, &tv);
	amqp_rpc_reply_t r =
	    external
	        ? amqp_login(c, "/", 2047, 131072, 0, AMQP_SASL_METHOD_EXTERNAL, "x")
	        : amqp_login(c, "/", 2047, 131072, 0, AMQP_SASL_METHOD_PLAIN, "guest", "guest");
	if (r.reply_type != AMQP_RESPONSE_NORMAL)
		goto fail;
	amqp_channel_open(c, 1);
	if (amqp_get_rpc_reply(c).reply_type != AMQP_RESPONSE_NORMAL)
		goto fail;
	return c;
fail:
	amqp_destroy_connection(c);
	return NULL;
}

/* A raw AMQP connection over TLS (OpenSSL), with or without alice's
 * certificate.  rabbitmq-c 0.11's EXTERNAL login fails on the client side
 * ("could not allocate memory"), so EXTERNAL logins are done here. */
struct traw {
	SSL_CTX *ctx;
	SSL *ssl;
	int fd;
};

static void traw_close(struct traw *t)
{
	if (t->ssl)
		SSL_free(t->ssl);
	if (t->fd >= 0)
		close(t->fd);
	SSL_CTX_free(t->ctx);
	memset(t, 0, sizeof(*t));
	t->fd = -1;
}

static bool traw_send(struct traw *t, const struct wbuf *w)
{
	return SSL_write(t->ssl, w->p, (int)w->n) == (int)w->n;
}

static bool traw_read(struct traw *t, void *buf, size_t n)
{
	for (size_t got = 0; got < n;) {
		int k = SSL_read(t->ssl, (uint8_t *)buf + got, (int)(n - got));
		if (k <= 0)
			return false;
		got += (size_t)k;
	}
	return true;
}

/* The next frame that is not a heartbeat; false on EOF or error. */
static bool traw_frame(struct traw *t, struct rframe *f)
{
	for (;;) {
		uint8_t h[7], end;
		if (!traw_read(t, h, 7))
			return false;
		f->type = h[0];
		f->ch = get16(h + 1);
		f->size = get32(h + 3);
		if (f->size > sizeof(f->payload) || !traw_read(t, f->payload, f->size) ||
		    !traw_read(t, &end, 1) || end != 0xCE)
			return false;
		f->cls = f->mth = 0;
		if (f->type == 1 && f->size >= 4) {
			f->cls = get16(f->payload);
			f->mth = get16(f->payload + 2);
		}
		if (f->type != 8)
			return true;
	}
}

/* Connects, sends the protocol header, reads connection.start into f. */
static bool traw_open(struct traw *t, bool cert, struct rframe *f)
{
	memset(t, 0, sizeof(*t));
	t->fd = -1;
	t->ctx = SSL_CTX_new(TLS_client_method());
	if (!t->ctx || SSL_CTX_load_verify_locations(t->ctx, tpath("ca.pem"), NULL) != 1)
		return false;
	SSL_CTX_set_verify(t->ctx, SSL_VERIFY_PEER, NULL);
	if (cert &&
	    (SSL_CTX_use_certificate_chain_file(t->ctx, tpath("alice.pem")) != 1 ||
	     SSL_CTX_use_PrivateKey_file(t->ctx, tpath("alice.key"), SSL_FILETYPE_PEM) != 1))
		return false;
	struct broker tb = {0};
	snprintf(tb.host, sizeof(tb.host), "127.0.0.1");
	tb.port = g_tls_port;
	t->fd = broker_raw_connect(&tb);
	struct wbuf w = {0};
	wb_put(&w, "AMQP\x00\x00\x09\x01", 8);
	bool ok = t->fd >= 0 && (t->ssl = SSL_new(t->ctx)) && SSL_set_fd(t->ssl, t->fd) == 1 &&
	          SSL_connect(t->ssl) == 1 && traw_send(t, &w) && traw_frame(t, f) &&
	          f->cls == 10 && f->mth == 10;
	wb_free(&w);
	return ok;
}

/* The mechanisms offered on a TLS connection with or without alice's
 * certificate; false when the TLS handshake or connection.start fails. */
static bool tls_mechanisms(bool cert, char *out, size_t n)
{
	static struct rframe f;
	struct traw t;
	bool ok = traw_open(&t, cert, &f);
	if (ok)
		start_mechanisms(&f, out, n);
	traw_close(&t);
	return ok;
}

/* An EXTERNAL login with alice's certificate and connection.open of vhost:
 * 1 open-ok; 0 a connection.close, in *cl; -1 anything else. */
static int tls_external(const char *vhost, struct rclose *cl)
{
	static struct rframe f;
	struct traw t;
	int rc = -1;
	struct wbuf w = {0};
	if (!traw_open(&t, true, &f))
		goto out;
	wb_start_ok(&w, true, "EXTERNAL", "", 0);
	if (!traw_send(&t, &w) || !traw_frame(&t, &f))
		goto out;
	if (f.cls == 10 && f.mth == 30) {
		w.n = 0;
		wb_tune_ok(&w, 2047, 131072, 0);
		wb_conn_open(&w, vhost);
		if (!traw_send(&t, &w) || !traw_frame(&t, &f))
			goto out;
	}
	if (f.cls == 10 && f.mth == 41)
		rc = 1;
	else if (f.cls == 10 && f.mth == 50 && parse_close(&f, cl))
		rc = 0;
out:
	wb_free(&w);
	traw_close(&t);
	return rc;
}

static void test_auth_external_offered(void)
{
	SKIP_EXTERNAL();
	CU_ASSERT_FATAL(tls_certs());
	struct broker b;
	CU_ASSERT_FATAL(start_ext(&b, NULL, NULL));
	char m[256];
	CU_ASSERT_FATAL(tls_mechanisms(true, m, sizeof(m)));
	CU_ASSERT(has_word(m, "EXTERNAL") && has_word(m, "PLAIN") && has_word(m, "AMQPLAIN"));
	CU_ASSERT(tls_mechanisms(false, m, sizeof(m)));
	CU_ASSERT(!has_word(m, "EXTERNAL") && has_word(m, "PLAIN"));
	static struct rframe f;
	int fd = raw_connect_to(&b, &f);
	CU_ASSERT_FATAL(fd >= 0);
	start_mechanisms(&f, m, sizeof(m));
	close(fd);
	CU_ASSERT(!has_word(m, "EXTERNAL") && has_word(m, "PLAIN"));
	/* Asked for anyway on plain TCP: an unknown mechanism, so nothing is
	 * said (as RabbitMQ) and the socket closed. */
	fd = raw_connect_to(&b, &f);
	CU_ASSERT_FATAL(fd >= 0);
	struct wbuf w = {0};
	wb_start_ok(&w, true, "EXTERNAL", "", 0);
	CU_ASSERT(send_wb(fd, &w) == 0);
	wb_free(&w);
	CU_ASSERT(read_method(fd, &f, 10000) == RF_EOF);
	close(fd);
	CU_ASSERT(log_has(&b, "unknown authentication mechanism 'EXTERNAL'"));
	/* Over TLS without a certificate: PLAIN still works, EXTERNAL not. */
	amqp_connection_state_t c = tls_login_nocert(false);
	CU_ASSERT_PTR_NOT_NULL(c);
	broker_disconnect(c);
	CU_ASSERT_PTR_NULL(tls_login_nocert(true));
	CU_ASSERT_EQUAL(broker_stop(&b), 0);
}

/* EXTERNAL with alice's certificate logs in as `user`: "/" opens, and
 * the refusal of vhost "other" (no permissions there) names the user. */
static void external_as(const char *from, const char *san_type, const char *user)
{
	CU_ASSERT_FATAL(tls_certs());
	struct broker b;
	CU_ASSERT_FATAL(start_ext(&b, from, san_type));
	struct rclose cl = {0};
	CU_ASSERT_EQUAL(tls_external("/", &cl), 1);
	memset(&cl, 0, sizeof(cl));
	CU_ASSERT_EQUAL(tls_external("other", &cl), 0);
	char want[300];
	snprintf(want, sizeof(want), "NOT_ALLOWED - access to vhost 'other' refused for user '%s'",
	         user);
	CU_ASSERT_EQUAL(cl.code, 530);
	CU_ASSERT_STRING_EQUAL(cl.text, want);
	CU_ASSERT_EQUAL(broker_stop(&b), 0);
}

static void test_auth_external_common_name(void)
{
	SKIP_EXTERNAL();
	external_as(NULL, NULL, "alice");
	external_as("common_name", NULL, "alice");
}

static void test_auth_external_dn(void)
{
	SKIP_EXTERNAL();
	external_as("distinguished_name", NULL, "CN=alice,O=Acme,C=US");
}

static void test_auth_external_san(void)
{
	SKIP_EXTERNAL();
	external_as("subject_alternative_name", "email", "alice@example.org");
	external_as("subject_alternative_name", NULL, "alice.example"); /* dns, index 0 */
}

/* ---- 8. update-secret ------------------------------------------------------------------ */

static void test_auth_update_secret(void)
{
	SKIP_EXTERNAL();
	struct broker b;
	CU_ASSERT_FATAL(start_defs(&b,
	                           "{\"users\":[{\"name\":\"u\",\"password\":\"pu\",\"tags\":[]}],"
	                           "\"vhosts\":[{\"name\":\"/\"}],"
	                           "\"permissions\":[{\"user\":\"u\",\"vhost\":\"/\"," FULL "}]}",
	                           NULL));
	struct rclose cl;
	int fd = -1;
	CU_ASSERT_FATAL(raw_plain(&b, "u", "pu", &cl, &fd) == RAW_OPEN);
	struct wbuf a = {0}, w = {0};
	wb_lstr(&a, "anything", 8); /* an internal user's secret is not checked */
	wb_sstr(&a, "rotation");
	wb_method(&w, 0, 10, 70, &a);
	CU_ASSERT(send_wb(fd, &w) == 0);
	static struct rframe f;
	CU_ASSERT(read_method(fd, &f, 10000) == RF_OK && f.ch == 0 && f.cls == 10 && f.mth == 71);
	/* and the connection goes on */
	w.n = 0;
	wb_channel_open(&w, 1);
	CU_ASSERT(send_wb(fd, &w) == 0);
	CU_ASSERT(read_method(fd, &f, 10000) == RF_OK && f.ch == 1 && f.cls == 20 && f.mth == 11);
	wb_free(&a);
	wb_free(&w);
	close(fd);
	CU_ASSERT(log_has(&b, "updated"));
	CU_ASSERT_EQUAL(broker_stop(&b), 0);
}

void suite_auth(void)
{
	ITEST_SUITE("auth", ITEST(test_auth_definitions_logins), ITEST(test_auth_bad_definitions),
	            ITEST(test_auth_vhost_access), ITEST(test_auth_resource_permissions),
	            ITEST(test_auth_topic_permissions), ITEST(test_auth_vhost_limits),
	            ITEST(test_auth_user_limits), ITEST(test_auth_user_id),
	            ITEST(test_auth_wrong_password_flood), ITEST(test_auth_failure_delay_default),
	            ITEST(test_auth_huge_start_ok), ITEST(test_auth_external_offered),
	            ITEST(test_auth_external_common_name), ITEST(test_auth_external_dn),
	            ITEST(test_auth_external_san), ITEST(test_auth_update_secret));
}
