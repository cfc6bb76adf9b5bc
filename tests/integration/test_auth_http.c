/*
 * test_auth_http.c - logins and permissions asked of an HTTP service
 * through the auth-http plugin (`--auth-backends http`), with rabbitmq-c:
 * a user the service allows logs in and works (its queue checked through
 * resource_path), a user it denies gets 403 ACCESS_REFUSED, a queue it
 * denies closes the channel with 403, and a service that never answers
 * fails that login after request_timeout while another connection goes on
 * being served.
 *
 * The service runs in this process: an evhttp server on 127.0.0.1 (port 0)
 * on a thread of its own.  It allows "alice" (tags "management"), denies
 * everyone else, and holds the request of "slow" unanswered.  Each test
 * starts its own broker; waits are on conditions (a login's answer, the
 * service having the held request), with timeouts only against hangs.
 * Skipped against an external broker.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <amqp.h>
#include <amqp_framing.h>
#include <amqp_tcp_socket.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/thread.h>

#include "harness.h"
#include "itest.h"
#include "itest_util.h"

/* ---------------------------------------------------------- the service */

static struct {
	struct event_base *base;
	struct evhttp *http;
	pthread_t thread;
	int port;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	unsigned held;      /* requests of "slow" left unanswered */
	unsigned user_reqs; /* requests to /auth/user */
	unsigned resource_reqs;
	char last_user_query[512];
	char last_vhost_query[512];
} svc = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static void svc_reply(struct evhttp_request *req, const char *body)
{
	struct evbuffer *out = evbuffer_new();
	evbuffer_add(out, body, strlen(body));
	evhttp_send_reply(req, 200, "OK", out);
	evbuffer_free(out);
}

static void svc_handle(struct evhttp_request *req, void *arg)
{
	(void)arg;
	const char *uri = evhttp_request_get_uri(req);
	const char *q = strchr(uri, '?');
	q = q ? q + 1 : "";
	struct evkeyvalq params;
	evhttp_parse_query_str(q, &params);
	const char *user = evhttp_find_header(&params, "username");
	const char *name = evhttp_find_header(&params, "name");
	bool is_user = strncmp(uri, "/auth/user", 10) == 0;
	bool slow = is_user && user && strcmp(user, "slow") == 0;
	pthread_mutex_lock(&svc.mu);
	if (is_user) {
		svc.user_reqs++;
		snprintf(svc.last_user_query, sizeof(svc.last_user_query), "%s", q);
	} else if (strncmp(uri, "/auth/vhost", 11) == 0) {
		snprintf(svc.last_vhost_query, sizeof(svc.last_vhost_query), "%s", q);
	} else if (strncmp(uri, "/auth/resource", 14) == 0) {
		svc.resource_reqs++;
	}
	if (slow)
		svc.held++;
	pthread_cond_broadcast(&svc.cv);
	pthread_mutex_unlock(&svc.mu);
	if (slow) {
		/* Never answered: evhttp frees it when the broker gives up. */
	} else if (is_user) {
		svc_reply(req, user && strcmp(user, "alice") == 0 ? "allow management" : "deny");
	} else if (name && strcmp(name, "itest-http-forbidden") == 0) {
		svc_reply(req, "deny");
	} else {
		svc_reply(req, "allow");
	}
	evhttp_clear_headers(&params);
}

static void *svc_main(void *arg)
{
	(void)arg;
	event_base_loop(svc.base, EVLOOP_NO_EXIT_ON_EMPTY);
	return NULL;
}

static bool svc_start(void)
{
	if (evthread_use_pthreads() != 0)
		return false;
	svc.base = event_base_new();
	svc.http = svc.base ? evhttp_new(svc.base) : NULL;
	if (!svc.http)
		return false;
	evhttp_set_gencb(svc.http, svc_handle, NULL);
	struct evhttp_bound_socket *bs = evhttp_bind_socket_with_handle(svc.http, "127.0.0.1", 0);
	if (!bs)
		return false;
	struct sockaddr_in sa;
	socklen_t sl = sizeof(sa);
	if (getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&sa, &sl) != 0)
		return false;
	svc.port = ntohs(sa.sin_port);
	svc.held = svc.user_reqs = svc.resource_reqs = 0;
	return pthread_create(&svc.thread, NULL, svc_main, NULL) == 0;
}

static void svc_stop(void)
{
	if (!svc.base)
		return;
	event_base_loopbreak(svc.base);
	pthread_join(svc.thread, NULL);
	evhttp_free(svc.http);
	event_base_free(svc.base);
	svc.base = NULL;
	svc.http = NULL;
}

/* Wait until the service holds n requests of "slow" (at most ms). */
static bool svc_wait_held(unsigned n, int ms)
{
	struct timespec end;
	clock_gettime(CLOCK_REALTIME, &end);
	end.tv_sec += ms / 1000;
	end.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (end.tv_nsec >= 1000000000L) {
		end.tv_sec++;
		end.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&svc.mu);
	int rc = 0;
	while (svc.held < n && rc == 0)
		rc = pthread_cond_timedwait(&svc.cv, &svc.mu, &end);
	bool ok = svc.held >= n;
	pthread_mutex_unlock(&svc.mu);
	return ok;
}

/* ---------------------------------------------------------- the broker */

static struct broker hb;

static bool start(void)
{
	memset(&hb, 0, sizeof(hb));
	if (!svc_start())
		return false;
	static char o[4][160];
	static const char *const kinds[4] = {"user", "vhost", "resource", "topic"};
	for (int i = 0; i < 4; i++)
		snprintf(o[i], sizeof(o[i]), "auth-http.%s_path=http://127.0.0.1:%d/auth/%s",
		         kinds[i], svc.port, kinds[i]);
	const char *args[] = {"--auth-backends",
	                      "http",
	                      "--login-failure-delay",
	                      "100",
	                      "--plugin-opt",
	                      o[0],
	                      "--plugin-opt",
	                      o[1],
	                      "--plugin-opt",
	                      o[2],
	                      "--plugin-opt",
	                      o[3],
	                      "--plugin-opt",
	                      "auth-http.request_timeout=500",
	                      NULL};
	return broker_start(&hb, args) == 0;
}

static void stop(void)
{
	CU_ASSERT_EQUAL(broker_stop(&hb), 0);
	svc_stop();
}

static bool log_has(const char *s)
{
	FILE *f = fopen(hb.log_path, "r");
	if (!f)
		return false;
	static char buf[1 << 20];
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	return strstr(buf, s) != NULL;
}

/* How a login ended: copied out of rabbitmq-c's reply (which points into
 * the connection's memory) while the connection is alive. */
struct login_end {
	int reply_type;
	uint32_t method;
	unsigned code;
	char text[256];
};

static struct login_end login_end_of(const amqp_rpc_reply_t *r)
{
	struct login_end e = {.reply_type = r->reply_type};
	if (r->reply_type == AMQP_RESPONSE_SERVER_EXCEPTION) {
		e.method = r->reply.id;
		if (r->reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
			amqp_connection_close_t *m = r->reply.decoded;
			e.code = m->reply_code;
			snprintf(e.text, sizeof(e.text), "%.*s", (int)m->reply_text.len,
			         (const char *)m->reply_text.bytes);
		}
	}
	return e;
}

/* A login refused with connection.close 403 ACCESS_REFUSED. */
static void check_refused(const struct login_end *e)
{
	CU_ASSERT_EQUAL(e->reply_type, AMQP_RESPONSE_SERVER_EXCEPTION);
	CU_ASSERT_EQUAL(e->method, AMQP_CONNECTION_CLOSE_METHOD);
	if (e->code != 403 || strncmp(e->text, "ACCESS_REFUSED - ", 17) != 0)
		fprintf(stderr, "\n  login ended with %d, close %u '%s'\n", e->reply_type, e->code,
		        e->text);
	CU_ASSERT_EQUAL(e->code, 403);
	CU_ASSERT(strncmp(e->text, "ACCESS_REFUSED - ", 17) == 0);
}

/* amqp_login as user/pass; the connection (still open) or NULL. */
static amqp_connection_state_t login(const char *user, const char *pass, amqp_rpc_reply_t *r)
{
	amqp_connection_state_t c = amqp_new_connection();
	amqp_socket_t *s = amqp_tcp_socket_new(c);
	if (!s || amqp_socket_open(s, hb.host, hb.port) != AMQP_STATUS_OK) {
		amqp_destroy_connection(c);
		return NULL;
	}
	*r = amqp_login(c, "/", 2047, 131072, 0, AMQP_SASL_METHOD_PLAIN, user, pass);
	return c;
}

/* ---------------------------------------------------------------- tests */

static void test_http_allowed_user_works(void)
{
	if (broker_external())
		return;
	CU_ASSERT_FATAL(start());
	amqp_rpc_reply_t r;
	amqp_connection_state_t c =
	    broker_connect_ex(&hb, "alice", "alice pw&", "/", 131072, 0, &r);
	CU_ASSERT_PTR_NOT_NULL(c);
	if (c) {
		pthread_mutex_lock(&svc.mu);
		CU_ASSERT_STRING_EQUAL(svc.last_user_query, "username=alice&password=alice+pw%26");
		CU_ASSERT_STRING_EQUAL(svc.last_vhost_query,
		                       "username=alice&vhost=%2F&ip=127.0.0.1&tags=management");
		unsigned before = svc.resource_reqs;
		pthread_mutex_unlock(&svc.mu);
		CU_ASSERT(qdecl(c, "itest-http-q"));
		CU_ASSERT_EQUAL(publish(c, "", "itest-http-q", "hello"), AMQP_STATUS_OK);
		struct got g = get1(c, "itest-http-q", true);
		CU_ASSERT_EQUAL(g.status, 1);
		CU_ASSERT_STRING_EQUAL(g.body, "hello");
		pthread_mutex_lock(&svc.mu);
		CU_ASSERT(svc.resource_reqs > before); /* checked through resource_path */
		pthread_mutex_unlock(&svc.mu);
		/* A queue the service denies: the channel closes with 403. */
		CU_ASSERT(!qdecl(c, "itest-http-forbidden"));
		struct close_info ci = rpc_close(c, 1);
		CU_ASSERT_EQUAL(ci.kind, CLOSE_CHANNEL);
		CU_ASSERT_EQUAL(ci.code, 403);
		CU_ASSERT(strncmp(ci.text, "ACCESS_REFUSED - ", 17) == 0);
		broker_disconnect(c);
	}
	CU_ASSERT(!log_has("alice pw"));
	stop();
}

static void test_http_denied_user_refused(void)
{
	if (broker_external())
		return;
	CU_ASSERT_FATAL(start());
	amqp_rpc_reply_t r;
	amqp_connection_state_t c = login("bob", "bob-secret-pw", &r);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	struct login_end e = login_end_of(&r);
	amqp_destroy_connection(c);
	check_refused(&e);
	CU_ASSERT(log_has("auth backend 'http': login of user 'bob' refused: denied by the HTTP "
	                  "service"));
	CU_ASSERT(!log_has("bob-secret-pw"));
	stop();
}

struct slow_login {
	struct login_end e;
	int64_t took_ms;
	bool connected;
	int done; /* atomic */
};

static void *slow_main(void *arg)
{
	struct slow_login *s = arg;
	int64_t t0 = now_ms();
	amqp_rpc_reply_t r;
	amqp_connection_state_t c = login("slow", "slow-pw", &r);
	s->took_ms = now_ms() - t0;
	s->connected = c != NULL;
	if (c) {
		s->e = login_end_of(&r);
		amqp_destroy_connection(c);
	}
	__atomic_store_n(&s->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

static void test_http_hanging_service_times_out(void)
{
	if (broker_external())
		return;
	CU_ASSERT_FATAL(start());
	amqp_rpc_reply_t r;
	amqp_connection_state_t a = broker_connect_ex(&hb, "alice", "pw", "/", 131072, 0, &r);
	CU_ASSERT_PTR_NOT_NULL_FATAL(a);
	CU_ASSERT(qdecl(a, "itest-http-meanwhile"));

	struct slow_login s = {0};
	pthread_t t;
	CU_ASSERT_EQUAL_FATAL(pthread_create(&t, NULL, slow_main, &s), 0);
	CU_ASSERT(svc_wait_held(1, 5000));
	/* While that login waits for the service, alice is served. */
	CU_ASSERT_EQUAL(publish(a, "", "itest-http-meanwhile", "m1"), AMQP_STATUS_OK);
	struct got g = get1(a, "itest-http-meanwhile", true);
	CU_ASSERT_EQUAL(g.status, 1);
	CU_ASSERT_STRING_EQUAL(g.body, "m1");
	CU_ASSERT(!__atomic_load_n(&s.done, __ATOMIC_ACQUIRE));
	/* A new login is served too. */
	amqp_connection_state_t a2 = broker_connect_ex(&hb, "alice", "pw", "/", 131072, 0, &r);
	CU_ASSERT_PTR_NOT_NULL(a2);
	if (a2)
		broker_disconnect(a2);

	pthread_join(t, NULL);
	CU_ASSERT(s.connected);
	check_refused(&s.e);
	CU_ASSERT(s.took_ms >= 500);
	CU_ASSERT(s.took_ms < 10000);
	CU_ASSERT(log_has("login of user 'slow' refused: no answer within 500 ms"));
	CU_ASSERT(!log_has("slow-pw"));
	/* alice still works after it. */
	CU_ASSERT_EQUAL(publish(a, "", "itest-http-meanwhile", "m2"), AMQP_STATUS_OK);
	g = get1(a, "itest-http-meanwhile", true);
	CU_ASSERT_EQUAL(g.status, 1);
	CU_ASSERT_STRING_EQUAL(g.body, "m2");
	broker_disconnect(a);
	stop();
}

void suite_auth_http(void)
{
	ITEST_SUITE("auth_http", ITEST(test_http_allowed_user_works),
	            ITEST(test_http_denied_user_refused),
	            ITEST(test_http_hanging_service_times_out));
}
