/*
 * test_auth.c - CUnit tests of authentication and authorisation in the
 * connection engine (tests/engine/engine_host.h, a fake clock, no
 * socket): the backend chain with answers that come later (PENDING), the
 * held frame replayed once its permission answer is in, the per-channel
 * cache and its invalidation, backend timeouts, loopback_users, limits,
 * vhost deletion, and RabbitMQ's password hashes.
 *
 * A test backend "slow" answers what the test tells it to, now or later.
 * Exit status: 0 when every test passed.
 */
#include <CUnit/Basic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine_host.h"
#include "model/queue.h"
#include "model/user.h"
#include "model/vhost.h"
#include "plugin/plugin_auth.h"
#include "session/conn.h"
#include "session/login.h"
#include "session/session.h"
#include "util/log.h"
#include "util/password.h"

static struct eh host;

/* ---- the test backend ------------------------------------------------------ */

static struct {
	amqpd_status authn, vhost, resource; /* what to answer now */
	amqpd_request *req;                  /* the last pending request */
	struct amqpd_auth_result *res;       /* its login result */
	unsigned calls;                      /* check_resource calls */
	char last_name[256];
} slow;

static amqpd_status slow_authenticate(void *ud, const struct amqpd_auth_login *l,
                                      struct amqpd_auth_result *out, amqpd_request *req)
{
	(void)ud;
	(void)l;
	snprintf(out->tags, sizeof(out->tags), "monitoring");
	if (slow.authn == AMQPD_PENDING) {
		slow.req = req;
		slow.res = out;
	}
	return slow.authn;
}

static amqpd_status slow_vhost(void *ud, const struct amqpd_auth_user *u, const char *vhost,
                               amqpd_request *req)
{
	(void)ud;
	(void)u;
	(void)vhost;
	if (slow.vhost == AMQPD_PENDING)
		slow.req = req;
	return slow.vhost;
}

static amqpd_status slow_resource(void *ud, const struct amqpd_auth_user *u, const char *vhost,
                                  enum amqpd_auth_resource kind, const char *name,
                                  enum amqpd_auth_permission perm, amqpd_request *req)
{
	(void)ud;
	(void)u;
	(void)vhost;
	(void)kind;
	(void)perm;
	slow.calls++;
	snprintf(slow.last_name, sizeof(slow.last_name), "%s", name);
	if (slow.resource == AMQPD_PENDING)
		slow.req = req;
	return slow.resource;
}

static void use_chain(const char *names)
{
	char err[300];
	host.s.auth.backend_names = names;
	CU_ASSERT_EQUAL_FATAL(auth_config_resolve(&host.s.auth, &host.plugins, err, sizeof(err)),
	                      0);
}

/* Answer the pending request and let everything settle. */
static void answer(amqpd_status st)
{
	CU_ASSERT_PTR_NOT_NULL_FATAL(slow.req);
	amqpd_request *r = slow.req;
	slow.req = NULL;
	plugin_host_complete(NULL, r, st);
	plugin_host_run_queued(&host.plugins);
	eh_settle(&host);
}

/* ---- helpers --------------------------------------------------------------- */

static const uint8_t caps_afc[] = "\x0c"
                                  "capabilities"
                                  "F\x00\x00\x00\x1f"
                                  "\x1c"
                                  "authentication_failure_close"
                                  "t\x01";

/* Header and start-ok (PLAIN user/pass, with authentication_failure_close). */
static struct ec *start(const char *user, const char *pass, bool loopback)
{
	struct ec *e = ec_new(&host, 1000);
	CU_ASSERT_PTR_NOT_NULL_FATAL(e);
	e->c->peer_loopback = loopback;
	ec_send(e, amqp_protocol_header, AMQP_PROTOCOL_HEADER_LEN);
	struct amqp_method m;
	CU_ASSERT_FATAL(ec_next_method(e, &m, NULL) && m.id == AMQP_CONNECTION_START);
	uint8_t resp[300];
	size_t ul = strlen(user), pl = strlen(pass);
	resp[0] = 0;
	memcpy(resp + 1, user, ul);
	resp[1 + ul] = 0;
	memcpy(resp + 2 + ul, pass, pl);
	struct amqp_method so = {.id = AMQP_CONNECTION_START_OK};
	so.u.connection_start_ok.mechanism = amqp_cstr("PLAIN");
	so.u.connection_start_ok.response = (struct amqp_bytes){resp, ul + pl + 2};
	so.u.connection_start_ok.client_properties =
	    (struct amqp_bytes){caps_afc, sizeof(caps_afc) - 1};
	ec_method(e, 0, &so);
	return e;
}

/* After tune: tune-ok and open vhost; the reply's id (open-ok or close). */
static uint32_t open_vhost(struct ec *e, const char *vhost, struct amqp_method *reply)
{
	struct amqp_method to = {.id = AMQP_CONNECTION_TUNE_OK};
	to.u.connection_tune_ok.channel_max = 2047;
	to.u.connection_tune_ok.frame_max = 131072;
	ec_method(e, 0, &to);
	struct amqp_method op = {.id = AMQP_CONNECTION_OPEN};
	op.u.connection_open.virtual_host = amqp_cstr(vhost);
	ec_method(e, 0, &op);
	struct amqp_method m;
	if (!ec_next_method(e, &m, NULL))
		return 0;
	if (reply)
		*reply = m;
	return m.id;
}

static struct ec *login(const char *user, const char *pass, const char *vhost)
{
	struct ec *e = start(user, pass, true);
	struct amqp_method m;
	CU_ASSERT_FATAL(ec_next_method(e, &m, NULL) && m.id == AMQP_CONNECTION_TUNE);
	CU_ASSERT_EQUAL_FATAL(open_vhost(e, vhost, NULL), AMQP_CONNECTION_OPEN_OK);
	return e;
}

static bool call(struct ec *e, uint16_t ch, const struct amqp_method *m, uint32_t want,
                 struct amqp_method *reply)
{
	ec_method(e, ch, m);
	struct amqp_method r;
	if (!ec_next_method(e, &r, NULL))
		return false;
	if (reply)
		*reply = r;
	return r.id == want;
}

static void open_channel(struct ec *e, uint16_t ch)
{
	struct amqp_method m = {.id = AMQP_CHANNEL_OPEN};
	CU_ASSERT_FATAL(call(e, ch, &m, AMQP_CHANNEL_OPEN_OK, NULL));
}

static struct amqp_method declare_m(const char *q)
{
	struct amqp_method m = {.id = AMQP_QUEUE_DECLARE};
	m.u.queue_declare.queue = amqp_cstr(q);
	return m;
}

static void done(struct ec *e)
{
	ec_free(e);
	eh_settle(&host);
	use_chain("internal");
	memset(&slow, 0, sizeof(slow));
	CU_ASSERT_EQUAL(eh_reset_vhost(&host), 0);
}

static uint32_t ready_count_of(const char *q)
{
	struct vhost *vh = model_vhost(&host.md, "/", 1);
	struct queue *qq = vh ? vhost_queue(vh, q, strlen(q)) : NULL;
	return qq ? (uint32_t)qq->count : UINT32_MAX;
}

/* ---- tests ------------------------------------------------------------------ */

static void test_password_hashes(void)
{
	/* RabbitMQ's documented example: salt 908DC60A, password test12. */
	CU_ASSERT(password_check(PASSWORD_SHA256,
	                         "kI3GCqW5JLMJa4iX1lo7X4D6XbYqlLgxIs30+P6tENUV2POR", "test12", 6));
	CU_ASSERT_FALSE(password_check(
	    PASSWORD_SHA256, "kI3GCqW5JLMJa4iX1lo7X4D6XbYqlLgxIs30+P6tENUV2POR", "test13", 6));
	CU_ASSERT_FALSE(password_check(PASSWORD_SHA256, "not base64!", "x", 1));
	CU_ASSERT_FALSE(password_check("rabbit_password_hashing_rot13", "AAAA", "x", 1));
	char h[200];
	CU_ASSERT_EQUAL_FATAL(password_hash(PASSWORD_SHA512, "s3cret", 6, h, sizeof(h)), 0);
	CU_ASSERT(password_hash_valid(PASSWORD_SHA512, h));
	CU_ASSERT_FALSE(password_hash_valid(PASSWORD_SHA256, h)); /* a 512-bit digest */
	CU_ASSERT(password_check(PASSWORD_SHA512, h, "s3cret", 6));
	CU_ASSERT_FALSE(password_check(PASSWORD_SHA512, h, "s3cre", 5));
	char h2[200];
	CU_ASSERT_EQUAL(password_hash(PASSWORD_SHA512, "s3cret", 6, h2, sizeof(h2)), 0);
	CU_ASSERT(strcmp(h, h2) != 0); /* fresh salt each time */
}

static void test_pending_login(void)
{
	use_chain("slow,internal");
	slow.authn = AMQPD_PENDING;
	struct ec *e = start("bob", "anything", true);
	struct amqp_method m;
	CU_ASSERT_FALSE(ec_next_method(e, &m, NULL)); /* nothing yet */
	CU_ASSERT_FALSE(conn_wants_read(e->c));       /* and it reads nothing meanwhile */
	snprintf(slow.res->username, sizeof(slow.res->username), "robert");
	answer(AMQPD_OK);
	CU_ASSERT_FATAL(ec_next_method(e, &m, NULL) && m.id == AMQP_CONNECTION_TUNE);
	CU_ASSERT_STRING_EQUAL(e->c->user, "robert");
	CU_ASSERT_STRING_EQUAL(e->c->auth->tags, "monitoring");
	slow.vhost = AMQPD_OK;
	CU_ASSERT_EQUAL(open_vhost(e, "/", NULL), AMQP_CONNECTION_OPEN_OK);
	done(e);
}

static void test_declined_goes_on(void)
{
	use_chain("slow,internal");
	slow.authn = AMQPD_DECLINED;
	struct ec *e = start("guest", "guest", true);
	struct amqp_method m;
	CU_ASSERT_FATAL(ec_next_method(e, &m, NULL) && m.id == AMQP_CONNECTION_TUNE);
	CU_ASSERT_PTR_EQUAL(e->c->auth->backend, plugin_auth_backend(&host.plugins, "internal"));
	done(e);
	/* A refusal goes on too (RabbitMQ's chain); all refusing fails. */
	use_chain("slow,internal");
	slow.authn = AMQPD_ERR_REPLY(403);
	e = start("guest", "wrong", true);
	CU_ASSERT_FATAL(ec_next_method(e, &m, NULL) && m.id == AMQP_CONNECTION_CLOSE);
	CU_ASSERT_EQUAL(m.u.connection_close.reply_code, 403);
	done(e);
}

static void test_backend_timeout(void)
{
	use_chain("slow");
	slow.authn = AMQPD_PENDING;
	struct ec *e = start("bob", "x", true);
	amqpd_request *late = slow.req;
	/* The handshake timeout (10 s) comes first: the login fails as a
	 * backend timeout, told with 403. */
	ec_advance(e, 1000 + 9999);
	struct amqp_method m;
	CU_ASSERT_FALSE(ec_next_method(e, &m, NULL));
	ec_advance(e, 1000 + 10000);
	CU_ASSERT_FATAL(ec_next_method(e, &m, NULL) && m.id == AMQP_CONNECTION_CLOSE);
	CU_ASSERT_EQUAL(m.u.connection_close.reply_code, 403);
	/* The answer that comes too late is dropped safely. */
	slow.req = late;
	answer(AMQPD_OK);
	ec_advance(e, 1000 + 10000 + 3000); /* the failure delay */
	CU_ASSERT_PTR_NULL(e->c);
	done(e);
}

static void test_pending_check_replays(void)
{
	use_chain("slow,internal");
	slow.authn = AMQPD_OK;
	slow.vhost = AMQPD_OK;
	slow.resource = AMQPD_PENDING;
	struct ec *e = login("bob", "x", "/");
	open_channel(e, 1);
	struct amqp_method d1 = declare_m("q1"), d2 = declare_m("q2"), m;
	ec_method(e, 1, &d1);
	ec_method(e, 1, &d2); /* waits unread behind q1 */
	CU_ASSERT_FALSE(ec_next_method(e, &m, NULL));
	CU_ASSERT_EQUAL(slow.calls, 1);
	CU_ASSERT_STRING_EQUAL(slow.last_name, "q1");
	answer(AMQPD_OK);
	CU_ASSERT_FATAL(ec_next_method(e, &m, NULL) && m.id == AMQP_QUEUE_DECLARE_OK);
	CU_ASSERT(amqp_bytes_eq_cstr(m.u.queue_declare_ok.queue, "q1"));
	/* q2's check went to the backend in turn. */
	CU_ASSERT_EQUAL(slow.calls, 2);
	CU_ASSERT_STRING_EQUAL(slow.last_name, "q2");
	answer(AMQPD_ERR_REPLY(403));
	CU_ASSERT_FATAL(ec_next_method(e, &m, NULL) && m.id == AMQP_CHANNEL_CLOSE);
	CU_ASSERT_EQUAL(m.u.channel_close.reply_code, 403);
	CU_ASSERT(amqp_bytes_eq_cstr(m.u.channel_close.reply_text,
	                             "ACCESS_REFUSED - configure access to queue 'q2' in vhost '/' "
	                             "refused for user 'bob'"));
	done(e);
}

static void test_cache_and_invalidation(void)
{
	use_chain("slow,internal");
	slow.authn = AMQPD_OK;
	slow.vhost = AMQPD_OK;
	slow.resource = AMQPD_OK;
	struct ec *e = login("bob", "x", "/");
	open_channel(e, 1);
	struct amqp_method d = declare_m("cached"), m;
	CU_ASSERT(call(e, 1, &d, AMQP_QUEUE_DECLARE_OK, NULL));
	CU_ASSERT(call(e, 1, &d, AMQP_QUEUE_DECLARE_OK, NULL));
	CU_ASSERT_EQUAL(slow.calls, 1); /* the second from the channel's cache */
	/* A server-named queue: the name checked is the generated one. */
	struct amqp_method g = declare_m("");
	CU_ASSERT(call(e, 1, &g, AMQP_QUEUE_DECLARE_OK, &m));
	CU_ASSERT(strncmp(slow.last_name, "amq.gen-", 8) == 0);
	CU_ASSERT(amqp_bytes_eq_cstr(m.u.queue_declare_ok.queue, slow.last_name));
	/* The backend says answers changed: asked again. */
	unsigned before = slow.calls;
	slow.resource = AMQPD_ERR_REPLY(403);
	plugin_auth_bump_epoch(&host.plugins);
	CU_ASSERT(call(e, 1, &d, AMQP_CHANNEL_CLOSE, &m));
	CU_ASSERT_EQUAL(slow.calls, before + 1);
	done(e);
	/* Internal permissions: changing them drops cached answers. */
	struct ec *f = login("guest", "guest", "/");
	open_channel(f, 1);
	CU_ASSERT(call(f, 1, &d, AMQP_QUEUE_DECLARE_OK, NULL));
	char err[200];
	struct vhost *vh = model_vhost(&host.md, "/", 1);
	CU_ASSERT_EQUAL(vhost_set_permission(vh, "guest", "^other$", ".*", ".*", err, sizeof(err)),
	                0);
	CU_ASSERT(call(f, 1, &d, AMQP_CHANNEL_CLOSE, &m));
	CU_ASSERT_EQUAL(m.u.channel_close.reply_code, 403);
	done(f);
}

static void test_pending_publish_keeps_content(void)
{
	use_chain("slow,internal");
	slow.authn = AMQPD_OK;
	slow.vhost = AMQPD_OK;
	slow.resource = AMQPD_OK;
	struct ec *e = login("bob", "x", "/");
	open_channel(e, 1);
	struct amqp_method d = declare_m("pq");
	CU_ASSERT_FATAL(call(e, 1, &d, AMQP_QUEUE_DECLARE_OK, NULL));
	slow.resource = AMQPD_PENDING;
	ec_publish(e, 1, "", "pq", NULL, "hello", 5);
	CU_ASSERT_STRING_EQUAL(slow.last_name, "amq.default");
	CU_ASSERT_EQUAL(ready_count_of("pq"), 0);
	/* A basic.get right behind the publish waits its turn too. */
	struct amqp_method g = {.id = AMQP_BASIC_GET};
	g.u.basic_get.queue = amqp_cstr("pq");
	g.u.basic_get.no_ack = true;
	ec_method(e, 1, &g);
	struct amqp_method m;
	CU_ASSERT_FALSE(ec_next_method(e, &m, NULL));
	answer(AMQPD_OK);
	CU_ASSERT_EQUAL(ready_count_of("pq"), 1); /* header and body followed */
	/* Then the get's own read check went to the backend. */
	CU_ASSERT_STRING_EQUAL(slow.last_name, "pq");
	CU_ASSERT_PTR_NOT_NULL_FATAL(slow.req);
	answer(AMQPD_OK);
	CU_ASSERT_FATAL(ec_next_method(e, &m, NULL));
	CU_ASSERT_EQUAL(m.id, AMQP_BASIC_GET_OK);
	CU_ASSERT_EQUAL(ready_count_of("pq"), 0);
	done(e);
}

static void test_loopback_users(void)
{
	struct ec *e = start("guest", "guest", false);
	struct amqp_method m;
	CU_ASSERT_FATAL(ec_next_method(e, &m, NULL) && m.id == AMQP_CONNECTION_CLOSE);
	CU_ASSERT_EQUAL(m.u.connection_close.reply_code, 403);
	done(e);
	CU_ASSERT_EQUAL_FATAL(eh_add_user(&host, "remote", "pw", ""), 0);
	e = start("remote", "pw", false);
	CU_ASSERT_FATAL(ec_next_method(e, &m, NULL) && m.id == AMQP_CONNECTION_TUNE);
	done(e);
	host.s.auth.loopback_users = "";
	e = start("guest", "guest", false);
	CU_ASSERT_FATAL(ec_next_method(e, &m, NULL) && m.id == AMQP_CONNECTION_TUNE);
	host.s.auth.loopback_users = NULL;
	done(e);
}

static void test_vhost_access_and_limits(void)
{
	struct vhost *v = vhost_new(&host.md, "v");
	CU_ASSERT_PTR_NOT_NULL_FATAL(v);
	struct amqp_method m;
	/* guest has no permissions on v. */
	struct ec *e = start("guest", "guest", true);
	CU_ASSERT_FATAL(ec_next_method(e, &m, NULL) && m.id == AMQP_CONNECTION_TUNE);
	CU_ASSERT_EQUAL(open_vhost(e, "v", &m), AMQP_CONNECTION_CLOSE);
	CU_ASSERT_EQUAL(m.u.connection_close.reply_code, 530);
	CU_ASSERT(amqp_bytes_eq_cstr(m.u.connection_close.reply_text,
	                             "NOT_ALLOWED - access to vhost 'v' refused for user 'guest'"));
	ec_free(e);
	char err[200];
	CU_ASSERT_EQUAL(vhost_set_permission(v, "guest", ".*", ".*", ".*", err, sizeof(err)), 0);
	v->max_connections = 1;
	struct ec *a = login("guest", "guest", "v");
	e = start("guest", "guest", true);
	CU_ASSERT_FATAL(ec_next_method(e, &m, NULL) && m.id == AMQP_CONNECTION_TUNE);
	CU_ASSERT_EQUAL(open_vhost(e, "v", &m), AMQP_CONNECTION_CLOSE);
	CU_ASSERT(amqp_bytes_eq_cstr(m.u.connection_close.reply_text,
	                             "NOT_ALLOWED - access to vhost 'v' refused for user 'guest': "
	                             "connection limit (1) is reached"));
	ec_free(e);
	/* Deleting the vhost closes its connections (320) and it is gone. */
	CU_ASSERT(session_vhost_delete(&host.s, "v"));
	eh_settle(&host);
	CU_ASSERT_FATAL(ec_next_method(a, &m, NULL) && m.id == AMQP_CONNECTION_CLOSE);
	CU_ASSERT_EQUAL(m.u.connection_close.reply_code, 320);
	CU_ASSERT(amqp_bytes_eq_cstr(m.u.connection_close.reply_text,
	                             "CONNECTION_FORCED - broker forced connection closure with "
	                             "reason 'vhost 'v' is deleted'"));
	CU_ASSERT_PTR_NULL(model_vhost(&host.md, "v", 1));
	ec_free(a);
	e = start("guest", "guest", true);
	CU_ASSERT_FATAL(ec_next_method(e, &m, NULL) && m.id == AMQP_CONNECTION_TUNE);
	CU_ASSERT_EQUAL(open_vhost(e, "v", &m), AMQP_CONNECTION_CLOSE);
	CU_ASSERT(
	    amqp_bytes_eq_cstr(m.u.connection_close.reply_text, "NOT_ALLOWED - vhost v not found"));
	done(e);
}

static void test_user_limits(void)
{
	CU_ASSERT_EQUAL_FATAL(eh_add_user(&host, "lim", "pw", ""), 0);
	struct user *u = model_user(&host.md, "lim");
	u->max_connections = 1;
	u->max_channels = 2;
	struct ec *a = login("lim", "pw", "/");
	open_channel(a, 1);
	open_channel(a, 2);
	struct amqp_method m = {.id = AMQP_CHANNEL_OPEN};
	CU_ASSERT(call(a, 3, &m, AMQP_CONNECTION_CLOSE, &m));
	CU_ASSERT_EQUAL(m.u.connection_close.reply_code, 530);
	CU_ASSERT(amqp_bytes_eq_cstr(m.u.connection_close.reply_text,
	                             "NOT_ALLOWED - number of channels opened for user 'lim' has "
	                             "reached the maximum allowed user limit of 2"));
	struct ec *b = start("lim", "pw", true);
	CU_ASSERT_FATAL(ec_next_method(b, &m, NULL) && m.id == AMQP_CONNECTION_TUNE);
	CU_ASSERT_EQUAL(open_vhost(b, "/", &m), AMQP_CONNECTION_CLOSE);
	CU_ASSERT(amqp_bytes_eq_cstr(m.u.connection_close.reply_text,
	                             "NOT_ALLOWED - connection refused for user 'lim': user "
	                             "connection limit (1) is reached"));
	ec_free(b);
	ec_free(a);
	eh_settle(&host);
	/* Both gone: nothing is counted any more. */
	CU_ASSERT_EQUAL(host.s.user_usage.count, 0);
	a = login("lim", "pw", "/");
	done(a);
}

static void test_unknown_mechanism_is_silent(void)
{
	struct ec *e = ec_new(&host, 0);
	ec_send(e, amqp_protocol_header, AMQP_PROTOCOL_HEADER_LEN);
	struct amqp_method m;
	CU_ASSERT_FATAL(ec_next_method(e, &m, NULL));
	/* EXTERNAL is not offered without a verified client certificate. */
	CU_ASSERT(amqp_bytes_eq_cstr(m.u.connection_start.mechanisms, "PLAIN AMQPLAIN"));
	struct amqp_method so = {.id = AMQP_CONNECTION_START_OK};
	so.u.connection_start_ok.mechanism = amqp_cstr("EXTERNAL");
	ec_method(e, 0, &so);
	CU_ASSERT_FALSE(ec_next_method(e, &m, NULL));
	ec_advance(e, 3000);
	CU_ASSERT_PTR_NULL(e->c);
	done(e);
}

static void test_external_from_cert(void)
{
	CU_ASSERT_EQUAL_FATAL(eh_add_user(&host, "alice", "unused", ""), 0);
	struct ec *e = ec_new(&host, 0);
	const char *sans[] = {"DNS:alice.example", "email:alice@example.org"};
	conn_set_peer(e->c, "127.0.0.1", 5000, true);
	conn_set_peer_cert(e->c, "CN=alice,O=Example", "alice", sans, 2);
	ec_send(e, amqp_protocol_header, AMQP_PROTOCOL_HEADER_LEN);
	struct amqp_method m;
	CU_ASSERT_FATAL(ec_next_method(e, &m, NULL));
	CU_ASSERT(amqp_bytes_eq_cstr(m.u.connection_start.mechanisms, "PLAIN AMQPLAIN EXTERNAL"));
	struct amqp_method so = {.id = AMQP_CONNECTION_START_OK};
	so.u.connection_start_ok.mechanism = amqp_cstr("EXTERNAL");
	ec_method(e, 0, &so);
	CU_ASSERT_FATAL(ec_next_method(e, &m, NULL) && m.id == AMQP_CONNECTION_TUNE);
	CU_ASSERT_STRING_EQUAL(e->c->user, "alice");
	done(e);
}

int main(void)
{
	log_set_level(getenv("AMQPD_TEST_LOG") ? LOG_DEBUG : (enum log_level) - 1);
	if (eh_init(&host) < 0)
		return 1;
	static const struct amqpd_auth_backend slow_vt = {sizeof(struct amqpd_auth_backend),
	                                                  "slow",
	                                                  slow_authenticate,
	                                                  slow_vhost,
	                                                  slow_resource,
	                                                  NULL,
	                                                  NULL};
	if (plugin_auth_add_builtin_backend(&host.plugins, &slow_vt, NULL) < 0)
		return 1;
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	CU_pSuite s = CU_add_suite("auth", NULL, NULL);
	CU_add_test(s, "password hashes", test_password_hashes);
	CU_add_test(s, "pending login", test_pending_login);
	CU_add_test(s, "declined and refused go on", test_declined_goes_on);
	CU_add_test(s, "backend timeout", test_backend_timeout);
	CU_add_test(s, "pending check replays the frame", test_pending_check_replays);
	CU_add_test(s, "cache and invalidation", test_cache_and_invalidation);
	CU_add_test(s, "pending publish keeps its content", test_pending_publish_keeps_content);
	CU_add_test(s, "loopback users", test_loopback_users);
	CU_add_test(s, "vhost access, limits, deletion", test_vhost_access_and_limits);
	CU_add_test(s, "user limits", test_user_limits);
	CU_add_test(s, "unknown mechanism is silent", test_unknown_mechanism_is_silent);
	CU_add_test(s, "EXTERNAL from the certificate", test_external_from_cert);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	unsigned failed = CU_get_number_of_failures();
	CU_cleanup_registry();
	eh_free(&host);
	return failed ? 1 : 0;
}
