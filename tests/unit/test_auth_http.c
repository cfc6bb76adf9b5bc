/*
 * test_auth_http.c - the "http" user backend (plugins/auth-http), loaded
 * from $top_builddir/plugins/lib/auth_http.so through the broker's real
 * plugin host and driven through the host's calls (plugin_auth.h), against
 * an HTTP service this test runs itself: an evhttp server on 127.0.0.1
 * (port 0) on the same loop as the host.  Also a port that refuses (a
 * socket bound, never listening) and one that accepts and never answers
 * (listening, never accepted: the kernel completes the handshake).
 *
 * Each test loads the plugin with the options it needs (host_up) and
 * unloads it (host_down), which also checks that the plugin gave back all
 * its memory.  Waiting is on conditions only: the loop runs until the
 * answer came, bounded by a deadline.  Logging: this file provides the
 * log functions (captured, to check what the plugin logs and that a
 * password never appears).
 */
#include <CUnit/Basic.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/thread.h>

#include "amqpd/auth.h"
#include "plugin/plugin_auth.h"
#include "plugin/plugin_host.h"
#include "util/log.h"

/* ---------------------------------------------------------------- log */

static char *logbuf;
static size_t loglen;
static bool verbose;
static pthread_mutex_t log_mtx = PTHREAD_MUTEX_INITIALIZER;

static void log_reset(void)
{
	pthread_mutex_lock(&log_mtx);
	free(logbuf);
	logbuf = NULL;
	loglen = 0;
	pthread_mutex_unlock(&log_mtx);
}

static bool log_has(const char *s)
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

int log_parse_level(const char *s)
{
	(void)s;
	return LOG_DEBUG;
}

void log_vmsg(enum log_level level, const char *prefix, const char *fmt, va_list ap)
{
	char line[1024];
	vsnprintf(line, sizeof(line), fmt, ap);
	if (verbose)
		fprintf(stderr, "[%s] %d: %s\n", prefix ? prefix : "host", (int)level, line);
	pthread_mutex_lock(&log_mtx);
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

/* --------------------------------------------------------- the service */

static struct event_base *base;
static struct evhttp *http;
static uint16_t http_port;
static int refuse_fd = -1, hang_fd = -1;
static uint16_t refuse_port, hang_port;

/* What the service answers, per path (/auth/user, ...). */
struct reply {
	int status;
	const char *body;
};
static struct reply replies[4];
static const char *const paths[4] = {"/auth/user", "/auth/vhost", "/auth/resource", "/auth/topic"};

/* What it saw last. */
static struct seen {
	unsigned count;
	char method[8];
	char uri[2048];
	char body[2048];
	char ctype[128];
	char hosthdr[128];
} seen;

static void serve(struct evhttp_request *req, void *arg)
{
	(void)arg;
	seen.count++;
	enum evhttp_cmd_type m = evhttp_request_get_command(req);
	snprintf(seen.method, sizeof(seen.method), "%s",
	         m == EVHTTP_REQ_GET    ? "GET"
	         : m == EVHTTP_REQ_POST ? "POST"
	                                : "OTHER");
	snprintf(seen.uri, sizeof(seen.uri), "%s", evhttp_request_get_uri(req));
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t n = evbuffer_get_length(in);
	if (n >= sizeof(seen.body))
		n = sizeof(seen.body) - 1;
	evbuffer_copyout(in, seen.body, n);
	seen.body[n] = 0;
	const char *ct = evhttp_find_header(evhttp_request_get_input_headers(req), "Content-Type");
	snprintf(seen.ctype, sizeof(seen.ctype), "%s", ct ? ct : "");
	const char *hh = evhttp_find_header(evhttp_request_get_input_headers(req), "Host");
	snprintf(seen.hosthdr, sizeof(seen.hosthdr), "%s", hh ? hh : "");
	struct reply r = {404, "no such path"};
	for (int i = 0; i < 4; i++)
		if (strncmp(seen.uri, paths[i], strlen(paths[i])) == 0)
			r = replies[i];
	struct evbuffer *out = evbuffer_new();
	evbuffer_add(out, r.body, strlen(r.body));
	evhttp_send_reply(req, r.status, r.status == 200 ? "OK" : "Whatever", out);
	evbuffer_free(out);
}

static void set_reply(int i, int status, const char *body)
{
	replies[i].status = status;
	replies[i].body = body;
}

static void replies_allow(void)
{
	for (int i = 0; i < 4; i++)
		set_reply(i, 200, "allow");
}

/* A TCP socket on 127.0.0.1, port 0; listening or not. */
static int local_socket(bool listening, uint16_t *port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t sl = sizeof(sa);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    (listening && listen(fd, 64) != 0) || getsockname(fd, (struct sockaddr *)&sa, &sl) != 0)
		return -1;
	*port = ntohs(sa.sin_port);
	return fd;
}

static int service_start(void)
{
	http = evhttp_new(base);
	if (!http)
		return -1;
	evhttp_set_gencb(http, serve, NULL);
	evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_POST);
	struct evhttp_bound_socket *bs = evhttp_bind_socket_with_handle(http, "127.0.0.1", 0);
	if (!bs)
		return -1;
	struct sockaddr_in sa;
	socklen_t sl = sizeof(sa);
	if (getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&sa, &sl) != 0)
		return -1;
	http_port = ntohs(sa.sin_port);
	refuse_fd = local_socket(false, &refuse_port);
	hang_fd = local_socket(true, &hang_port);
	return refuse_fd >= 0 && hang_fd >= 0 ? 0 : -1;
}

/* ------------------------------------------------------------ the host */

static struct plugin_host h;
static const struct auth_backend *be;

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
}

/* Run the loop until *flag, at most ms.  True if it came. */
static bool wait_for(const bool *flag, unsigned ms)
{
	uint64_t end = now_ms() + ms;
	struct event *t = evtimer_new(base, tick, NULL);
	while (!*flag && now_ms() < end) {
		struct timeval tv = {0, 20000};
		evtimer_add(t, &tv);
		event_base_loop(base, EVLOOP_ONCE);
	}
	event_free(t);
	return *flag;
}

static char plugin_path[1024];

static void add_opt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void add_opt(const char *fmt, ...)
{
	char spec[512], err[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(spec, sizeof(spec), fmt, ap);
	va_end(ap);
	CU_ASSERT_EQUAL_FATAL(plugin_host_add_option(&h, spec, err, sizeof(err)), 0);
}

/* Load the plugin with the four paths on the service (user_path on
 * user_port) and the extra options given (NULL-terminated).  0 or -1. */
static int host_try(uint16_t user_port, const char *const *extra)
{
	CU_ASSERT_EQUAL_FATAL(plugin_host_init(&h, base), 0);
	add_opt("auth-http.user_path=http://127.0.0.1:%u/auth/user", (unsigned)user_port);
	add_opt("auth-http.vhost_path=http://127.0.0.1:%u/auth/vhost", (unsigned)http_port);
	add_opt("auth-http.resource_path=http://127.0.0.1:%u/auth/resource", (unsigned)http_port);
	add_opt("auth-http.topic_path=http://127.0.0.1:%u/auth/topic", (unsigned)http_port);
	for (; extra && *extra; extra++)
		add_opt("auth-http.%s", *extra);
	if (plugin_host_load(&h, plugin_path) != 0)
		return -1;
	be = plugin_auth_backend(&h, "http");
	return be ? 0 : -1;
}

static void host_up(uint16_t user_port, const char *const *extra)
{
	log_reset();
	memset(&seen, 0, sizeof(seen));
	replies_allow();
	CU_ASSERT_EQUAL_FATAL(host_try(user_port, extra), 0);
}

static void host_down(void)
{
	plugin_host_unload_all(&h);
	be = NULL;
	/* Every block the plugin allocated through the host came back. */
	CU_ASSERT(!log_has("still allocated at unload"));
}

/* ------------------------------------------------------------ the calls */

static const struct amqpd_auth_conn conn = {
    .struct_size = sizeof(conn),
    .peer_addr = "127.0.0.1",
    .peer_port = 40000,
    .loopback = true,
};

struct answer {
	bool done;
	bool pending; /* the backend answered later */
	amqpd_status st;
	struct amqpd_auth_result res;
};

static void on_done(void *ctx, amqpd_status st, struct amqpd_auth_result *res)
{
	struct answer *a = ctx;
	a->st = st;
	if (res)
		a->res = *res;
	a->done = true;
}

/* Start a login; the answer in *a (now, or when a->done). */
static void login_start(const char *user, const char *pw, struct answer *a)
{
	memset(a, 0, sizeof(*a));
	a->res.struct_size = sizeof(a->res);
	struct amqpd_auth_login l = {
	    .struct_size = sizeof(l),
	    .username = user,
	    .secret = (const uint8_t *)pw,
	    .secret_len = pw ? strlen(pw) : 0,
	    .preauthenticated = pw == NULL,
	    .conn = &conn,
	};
	struct auth_call *call = NULL;
	amqpd_status st = plugin_auth_authenticate(be, &l, &a->res, on_done, a, &call);
	if (st == AMQPD_PENDING) {
		a->pending = true;
	} else {
		a->st = st;
		a->done = true;
	}
}

static amqpd_status login(const char *user, const char *pw, struct answer *a)
{
	login_start(user, pw, a);
	CU_ASSERT(wait_for(&a->done, 10000));
	return a->st;
}

static struct amqpd_auth_user user_of(const char *name, const char *tags)
{
	struct amqpd_auth_user u = {
	    .struct_size = sizeof(u), .username = name, .tags = tags, .conn = &conn};
	return u;
}

static void finish_check(amqpd_status st, struct answer *a)
{
	if (st == AMQPD_PENDING) {
		a->pending = true;
		CU_ASSERT(wait_for(&a->done, 10000));
	} else {
		a->st = st;
		a->done = true;
	}
}

static amqpd_status vhost(const char *user, const char *tags, const char *vh, struct answer *a)
{
	memset(a, 0, sizeof(*a));
	struct amqpd_auth_user u = user_of(user, tags);
	struct auth_call *call;
	finish_check(plugin_auth_check_vhost(be, &u, vh, on_done, a, &call), a);
	return a->st;
}

static amqpd_status resource(const char *user, const char *vh, enum amqpd_auth_resource kind,
                             const char *name, enum amqpd_auth_permission perm, struct answer *a)
{
	memset(a, 0, sizeof(*a));
	struct amqpd_auth_user u = user_of(user, "");
	struct auth_call *call;
	finish_check(plugin_auth_check_resource(be, &u, vh, kind, name, perm, on_done, a, &call),
	             a);
	return a->st;
}

static amqpd_status topic(const char *user, const char *tags, const char *vh, const char *x,
                          const char *key, enum amqpd_auth_permission perm, struct answer *a)
{
	memset(a, 0, sizeof(*a));
	struct amqpd_auth_user u = user_of(user, tags);
	struct auth_call *call;
	finish_check(plugin_auth_check_topic(be, &u, vh, x, key, perm, on_done, a, &call), a);
	return a->st;
}

#define DENIED AMQPD_ERR_REPLY(403)

/* --------------------------------------------------------------- tests */

static void t_login_allow_tags(void)
{
	host_up(http_port, NULL);
	set_reply(0, 200, "  Allow Management   policymaker\r\n");
	struct answer a;
	CU_ASSERT_EQUAL(login("alice", "s3cr\xc3\xa9t x&y=z", &a), AMQPD_OK);
	CU_ASSERT(a.pending); /* never answered on the loop thread */
	CU_ASSERT_STRING_EQUAL(a.res.tags, "management policymaker");
	CU_ASSERT_EQUAL(seen.count, 1);
	CU_ASSERT_STRING_EQUAL(seen.method, "GET");
	CU_ASSERT_STRING_EQUAL(seen.uri,
	                       "/auth/user?username=alice&password=s3cr%C3%A9t+x%26y%3Dz");
	char hh[64];
	snprintf(hh, sizeof(hh), "127.0.0.1:%u", (unsigned)http_port);
	CU_ASSERT_STRING_EQUAL(seen.hosthdr, hh);
	/* 201 is a success too, as RabbitMQ's; "allow" alone: no tags. */
	set_reply(0, 201, "ALLOW");
	CU_ASSERT_EQUAL(login("alice", "pw", &a), AMQPD_OK);
	CU_ASSERT_STRING_EQUAL(a.res.tags, "");
	/* A login the transport proved (EXTERNAL) sends no password. */
	set_reply(0, 200, "allow");
	CU_ASSERT_EQUAL(login("CN=alice,O=Example", NULL, &a), AMQPD_OK);
	CU_ASSERT_STRING_EQUAL(seen.uri, "/auth/user?username=CN%3Dalice%2CO%3DExample");
	host_down();
}

static void t_login_deny(void)
{
	host_up(http_port, NULL);
	set_reply(0, 200, "deny\n");
	struct answer a;
	CU_ASSERT_EQUAL(login("bob", "hunter2-secret", &a), DENIED);
	CU_ASSERT(strstr(a.res.reason, "denied by the HTTP service") != NULL);
	CU_ASSERT(log_has("auth backend 'http': login of user 'bob' refused: denied by the HTTP "
	                  "service"));
	/* "deny <why>", any case. */
	set_reply(0, 200, "DeNy account locked");
	CU_ASSERT_EQUAL(login("bob", "hunter2-secret", &a), DENIED);
	CU_ASSERT(strstr(a.res.reason, "account locked") != NULL);
	/* "allowed" is not "allow". */
	set_reply(0, 200, "allowed");
	CU_ASSERT_EQUAL(login("bob", "hunter2-secret", &a), DENIED);
	CU_ASSERT(!log_has("hunter2"));
	host_down();
	CU_ASSERT(!log_has("hunter2"));
}

static void t_garbage(void)
{
	host_up(http_port, NULL);
	set_reply(0, 200, "maybe");
	set_reply(2, 200, "allow management"); /* tags only mean something for logins */
	set_reply(1, 200, "");
	struct answer a;
	CU_ASSERT_EQUAL(login("carol", "pw-carol", &a), DENIED);
	CU_ASSERT(strstr(a.res.reason, "unexpected answer 'maybe'") != NULL);
	CU_ASSERT(log_has("auth backend 'http': login of user 'carol' refused: unexpected answer "
	                  "'maybe'"));
	CU_ASSERT_EQUAL(resource("carol", "/", AMQPD_RESOURCE_QUEUE, "q", AMQPD_PERM_READ, &a),
	                DENIED);
	CU_ASSERT_EQUAL(vhost("carol", "", "/", &a), DENIED);
	CU_ASSERT(log_has("access to vhost '/' for user 'carol' refused: unexpected answer ''"));
	CU_ASSERT(!log_has("pw-carol"));
	host_down();
}

static void t_status_500(void)
{
	host_up(http_port, NULL);
	set_reply(0, 500, "allow");
	set_reply(3, 403, "allow");
	struct answer a;
	CU_ASSERT_EQUAL(login("dave", "pw-dave", &a), DENIED);
	CU_ASSERT(strstr(a.res.reason, "HTTP status 500") != NULL);
	char want[200];
	snprintf(want, sizeof(want),
	         "login of user 'dave' refused: HTTP status 500 from "
	         "http://127.0.0.1:%u/auth/user",
	         (unsigned)http_port);
	CU_ASSERT(log_has(want));
	CU_ASSERT_EQUAL(topic("dave", "", "/", "amq.topic", "a.b", AMQPD_PERM_WRITE, &a), DENIED);
	CU_ASSERT(log_has("HTTP status 403"));
	CU_ASSERT(!log_has("pw-dave"));
	host_down();
}

static void t_refused(void)
{
	host_up(refuse_port, NULL);
	struct answer a;
	uint64_t t0 = now_ms();
	CU_ASSERT_EQUAL(login("erin", "pw-erin", &a), DENIED);
	CU_ASSERT(a.pending);
	CU_ASSERT(now_ms() - t0 < 5000);
	char want[200];
	snprintf(want, sizeof(want), "from http://127.0.0.1:%u/auth/user", (unsigned)refuse_port);
	CU_ASSERT(strstr(a.res.reason, want) != NULL);
	CU_ASSERT(log_has("auth backend 'http': login of user 'erin' refused: "));
	CU_ASSERT(log_has(want));
	CU_ASSERT(!log_has("pw-erin"));
	host_down();
}

static void t_timeout(void)
{
	static const char *const opts[] = {"request_timeout=300", NULL};
	host_up(hang_port, opts);
	struct answer hung, other;
	uint64_t t0 = now_ms();
	login_start("frank", "pw-frank", &hung);
	CU_ASSERT(hung.pending);
	/* Meanwhile the client thread serves others. */
	CU_ASSERT_EQUAL(vhost("frank", "", "/", &other), AMQPD_OK);
	CU_ASSERT(other.pending);
	CU_ASSERT(!hung.done);
	CU_ASSERT(wait_for(&hung.done, 5000));
	uint64_t took = now_ms() - t0;
	CU_ASSERT_EQUAL(hung.st, DENIED);
	CU_ASSERT(took >= 300);
	CU_ASSERT(took < 3000);
	CU_ASSERT(strstr(hung.res.reason, "no answer within 300 ms") != NULL);
	CU_ASSERT(log_has("login of user 'frank' refused: no answer within 300 ms from "
	                  "http://127.0.0.1:"));
	host_down();
}

static void t_get_params(void)
{
	host_up(http_port, NULL);
	struct answer a;
	CU_ASSERT_EQUAL(vhost("bob", "management monitoring", "/", &a), AMQPD_OK);
	CU_ASSERT_STRING_EQUAL(seen.method, "GET");
	CU_ASSERT_STRING_EQUAL(
	    seen.uri, "/auth/vhost?username=bob&vhost=%2F&ip=127.0.0.1&tags=management+monitoring");
	CU_ASSERT_EQUAL(resource("bob", "/", AMQPD_RESOURCE_QUEUE, "q1", AMQPD_PERM_CONFIGURE, &a),
	                AMQPD_OK);
	CU_ASSERT_STRING_EQUAL(seen.uri, "/auth/resource?username=bob&vhost=%2F&resource=queue&"
	                                 "name=q1&permission=configure&tags=");
	CU_ASSERT_EQUAL(
	    resource("bob", "prod", AMQPD_RESOURCE_EXCHANGE, "amq.default", AMQPD_PERM_WRITE, &a),
	    AMQPD_OK);
	CU_ASSERT_STRING_EQUAL(seen.uri, "/auth/resource?username=bob&vhost=prod&resource=exchange&"
	                                 "name=amq.default&permission=write&tags=");
	CU_ASSERT_EQUAL(topic("bob", "management", "/", "amq.topic", "a.*.#", AMQPD_PERM_READ, &a),
	                AMQPD_OK);
	CU_ASSERT_STRING_EQUAL(seen.uri,
	                       "/auth/topic?username=bob&vhost=%2F&resource=topic&name=amq.topic&"
	                       "permission=read&tags=management&routing_key=a.%2A.%23&"
	                       "variable_map.username=bob&variable_map.vhost=%2F");
	CU_ASSERT_STRING_EQUAL(seen.body, "");
	set_reply(2, 200, "deny");
	CU_ASSERT_EQUAL(resource("bob", "/", AMQPD_RESOURCE_QUEUE, "q1", AMQPD_PERM_READ, &a),
	                DENIED);
	CU_ASSERT(log_has("read access to queue 'q1' in vhost '/' for user 'bob' refused: denied "
	                  "by the HTTP service"));
	host_down();
}

static void t_encoding(void)
{
	host_up(http_port, NULL);
	struct answer a;
	/* Safe: A-Z a-z 0-9 . - ~ _; space is '+'; every other byte %XX. */
	CU_ASSERT_EQUAL(resource("us er+1@x", "v/h %", AMQPD_RESOURCE_QUEUE,
	                         "odd name/\xc3\xbc&=+%?#~_-.", AMQPD_PERM_READ, &a),
	                AMQPD_OK);
	CU_ASSERT_STRING_EQUAL(seen.uri,
	                       "/auth/resource?username=us+er%2B1%40x&vhost=v%2Fh+%25&"
	                       "resource=queue&name=odd+name%2F%C3%BC%26%3D%2B%25%3F%23~_-.&"
	                       "permission=read&tags=");
	host_down();
}

static void t_post(void)
{
	static const char *const opts[] = {"http_method=post", NULL};
	host_up(http_port, opts);
	set_reply(0, 200, "allow administrator");
	struct answer a;
	CU_ASSERT_EQUAL(login("alice", "p w&", &a), AMQPD_OK);
	CU_ASSERT_STRING_EQUAL(a.res.tags, "administrator");
	CU_ASSERT_STRING_EQUAL(seen.method, "POST");
	CU_ASSERT_STRING_EQUAL(seen.uri, "/auth/user");
	CU_ASSERT_STRING_EQUAL(seen.ctype, "application/x-www-form-urlencoded");
	CU_ASSERT_STRING_EQUAL(seen.body, "username=alice&password=p+w%26");
	CU_ASSERT_EQUAL(
	    topic("alice", "administrator", "/", "logs", "kern.crit", AMQPD_PERM_WRITE, &a),
	    AMQPD_OK);
	CU_ASSERT_STRING_EQUAL(seen.method, "POST");
	CU_ASSERT_STRING_EQUAL(seen.uri, "/auth/topic");
	CU_ASSERT_STRING_EQUAL(seen.body,
	                       "username=alice&vhost=%2F&resource=topic&name=logs&permission=write&"
	                       "tags=administrator&routing_key=kern.crit&variable_map.username="
	                       "alice&variable_map.vhost=%2F");
	host_down();
}

static void t_cache(void)
{
	static const char *const opts[] = {"cache_ttl=400", NULL};
	host_up(http_port, opts);
	set_reply(0, 200, "allow monitoring");
	struct answer a;
	uint64_t t0 = now_ms();
	CU_ASSERT_EQUAL(login("gina", "pw-gina", &a), AMQPD_OK);
	CU_ASSERT(a.pending);
	CU_ASSERT_EQUAL(seen.count, 1);
	/* The same request again: answered at once, nothing sent. */
	CU_ASSERT_EQUAL(login("gina", "pw-gina", &a), AMQPD_OK);
	CU_ASSERT(!a.pending);
	CU_ASSERT_STRING_EQUAL(a.res.tags, "monitoring");
	CU_ASSERT_EQUAL(seen.count, 1);
	/* Another password is another request. */
	set_reply(0, 200, "deny");
	CU_ASSERT_EQUAL(login("gina", "wrong", &a), DENIED);
	CU_ASSERT(a.pending);
	CU_ASSERT_EQUAL(seen.count, 2);
	/* Refusals are not kept (RabbitMQ's cache_refusals = false). */
	CU_ASSERT_EQUAL(login("gina", "wrong", &a), DENIED);
	CU_ASSERT(a.pending);
	CU_ASSERT_EQUAL(seen.count, 3);
	/* Checks too; failures are never kept. */
	CU_ASSERT_EQUAL(vhost("gina", "monitoring", "/", &a), AMQPD_OK);
	CU_ASSERT_EQUAL(vhost("gina", "monitoring", "/", &a), AMQPD_OK);
	CU_ASSERT(!a.pending);
	CU_ASSERT_EQUAL(vhost("gina", "monitoring", "other", &a), AMQPD_OK);
	CU_ASSERT(a.pending);
	CU_ASSERT_EQUAL(seen.count, 5);
	set_reply(2, 500, "oops");
	CU_ASSERT_EQUAL(resource("gina", "/", AMQPD_RESOURCE_QUEUE, "q", AMQPD_PERM_READ, &a),
	                DENIED);
	set_reply(2, 200, "allow");
	CU_ASSERT_EQUAL(resource("gina", "/", AMQPD_RESOURCE_QUEUE, "q", AMQPD_PERM_READ, &a),
	                AMQPD_OK);
	CU_ASSERT(a.pending);
	CU_ASSERT_EQUAL(seen.count, 7);
	/* Expiry: the first login goes to the service again once its ttl
	 * is over, and not before. */
	set_reply(0, 200, "allow");
	bool asked = false;
	uint64_t asked_at = 0;
	while (!asked && now_ms() - t0 < 5000) {
		uint64_t before = now_ms();
		login_start("gina", "pw-gina", &a);
		if (a.pending) {
			asked = true;
			asked_at = before;
			CU_ASSERT(wait_for(&a.done, 5000));
			CU_ASSERT_EQUAL(a.st, AMQPD_OK);
			CU_ASSERT_STRING_EQUAL(a.res.tags, "");
		} else {
			CU_ASSERT_EQUAL(a.st, AMQPD_OK);
			CU_ASSERT_STRING_EQUAL(a.res.tags, "monitoring");
			bool never = false;
			wait_for(&never, 20); /* let time pass on the loop */
		}
	}
	CU_ASSERT(asked);
	CU_ASSERT(asked_at - t0 >= 400);
	CU_ASSERT_EQUAL(seen.count, 8);
	CU_ASSERT(!log_has("pw-gina"));
	host_down();
}

static void t_cache_refusals_and_size(void)
{
	static const char *const opts[] = {"cache_ttl=60000", "cache_refusals=true",
	                                   "max_cache_entries=2", NULL};
	host_up(http_port, opts);
	set_reply(0, 200, "deny");
	struct answer a;
	CU_ASSERT_EQUAL(login("hank", "pw", &a), DENIED);
	CU_ASSERT(a.pending);
	CU_ASSERT_EQUAL(login("hank", "pw", &a), DENIED);
	CU_ASSERT(!a.pending);
	CU_ASSERT_EQUAL(seen.count, 1);
	/* Two more entries push the first one out. */
	CU_ASSERT_EQUAL(vhost("hank", "", "a", &a), AMQPD_OK);
	CU_ASSERT_EQUAL(vhost("hank", "", "b", &a), AMQPD_OK);
	CU_ASSERT_EQUAL(seen.count, 3);
	CU_ASSERT_EQUAL(vhost("hank", "", "b", &a), AMQPD_OK);
	CU_ASSERT(!a.pending);
	CU_ASSERT_EQUAL(login("hank", "pw", &a), DENIED);
	CU_ASSERT(a.pending);
	CU_ASSERT_EQUAL(seen.count, 4);
	host_down();
}

static void t_fini_in_flight(void)
{
	host_up(hang_port, NULL); /* 15 s timeout */
	struct answer a;
	uint64_t t0 = now_ms();
	login_start("ivy", "pw-ivy", &a);
	CU_ASSERT(a.pending);
	bool never = false;
	wait_for(&never, 50); /* the request is on its way */
	CU_ASSERT(!a.done);
	host_down();
	CU_ASSERT(a.done);
	CU_ASSERT_EQUAL(a.st, DENIED);
	CU_ASSERT(strstr(a.res.reason, "stopping") != NULL);
	CU_ASSERT(now_ms() - t0 < 5000);
}

static void t_options(void)
{
	static const struct {
		const char *opt, *want;
	} bad[] = {
	    {"colour=blue", "unknown option 'colour'"},
	    {"http_method=put", "option http_method"},
	    {"request_timeout=abc", "option request_timeout"},
	    {"request_timeout=0", "option request_timeout"},
	    {"cache_ttl=-5", "option cache_ttl"},
	    {"max_cache_entries=0", "option max_cache_entries"},
	    {"cache_refusals=maybe", "option cache_refusals"},
	    {"vhost_path=https://example.com/auth/vhost", "option vhost_path: https"},
	    {"topic_path=ftp://x/y", "option topic_path"},
	    {"resource_path=http://:80/x", "option resource_path"},
	    {"user_path=http://127.0.0.1:99999/x", "option user_path"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		log_reset();
		const char *opts[] = {bad[i].opt, NULL};
		CU_ASSERT_EQUAL(host_try(http_port, opts), -1);
		if (!log_has(bad[i].want))
			fprintf(stderr, "\n  option %s: no log line with \"%s\"\n", bad[i].opt,
			        bad[i].want);
		CU_ASSERT(log_has(bad[i].want));
		host_down();
	}
	/* Good ones load; no path given: RabbitMQ's defaults. */
	static const char *const good[] = {"http_method=POST",     "request_timeout=1",
	                                   "cache_ttl=0",          "max_cache_entries=1",
	                                   "cache_refusals=false", NULL};
	log_reset();
	CU_ASSERT_EQUAL(host_try(http_port, good), 0);
	host_down();
}

int main(void)
{
	verbose = getenv("AMQPD_TEST_VERBOSE") != NULL;
	signal(SIGPIPE, SIG_IGN);
	const char *bd = getenv("top_builddir");
	snprintf(plugin_path, sizeof(plugin_path), "%s/plugins/lib/auth_http.so", bd ? bd : ".");
	if (evthread_use_pthreads() != 0)
		return 1;
	base = event_base_new();
	if (!base || service_start() != 0) {
		fprintf(stderr, "cannot start the test's HTTP service\n");
		return 1;
	}
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	CU_pSuite s = CU_add_suite("auth-http", NULL, NULL);
	CU_add_test(s, "login allowed, with tags", t_login_allow_tags);
	CU_add_test(s, "login denied", t_login_deny);
	CU_add_test(s, "garbage answer", t_garbage);
	CU_add_test(s, "HTTP status other than 200/201", t_status_500);
	CU_add_test(s, "service down (connection refused)", t_refused);
	CU_add_test(s, "service that never answers (timeout)", t_timeout);
	CU_add_test(s, "GET parameters", t_get_params);
	CU_add_test(s, "URL encoding", t_encoding);
	CU_add_test(s, "POST bodies", t_post);
	CU_add_test(s, "cache hit and expiry", t_cache);
	CU_add_test(s, "cache_refusals, max_cache_entries", t_cache_refusals_and_size);
	CU_add_test(s, "fini answers what is in flight", t_fini_in_flight);
	CU_add_test(s, "options", t_options);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	unsigned failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
	CU_cleanup_registry();
	evhttp_free(http);
	close(refuse_fd);
	close(hang_fd);
	event_base_free(base);
	log_reset();
	return failed ? 1 : 0;
}
