/*
 * test_auth_oauth2.c - the oauth2 user backend (plugins/auth-oauth2) in a
 * real amqpd started with --auth-backends internal,oauth2 and an RSA
 * signing key made here (its PEM in the scratch directory); tokens are
 * minted here too (RS256, EVP_DigestSign) and given as the PLAIN password.
 *
 *   - a valid token logs in (the user name given is ignored) and may
 *     declare, publish and get where its scopes allow; elsewhere the
 *     channel is closed with 403 ACCESS_REFUSED; a topic scope's
 *     routing-key pattern decides publishes to amq.topic;
 *   - an expired token, one signed by another key, and one whose scopes
 *     grant nothing on the vhost are refused; guest (internal) still logs in;
 *   - connection.update-secret with a new token of the same user is
 *     accepted (update-secret-ok), one of another user is refused;
 *   - a connection whose token expires is closed by the broker.
 *
 * Waits are on protocol answers; timeouts only guard against hangs (the
 * expiry test waits for the broker's close, about two seconds).  Skipped
 * against an external broker.
 */
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <amqp.h>
#include <amqp_framing.h>

#include "harness.h"
#include "itest.h"
#include "itest_util.h"
#include "raw.h"

static EVP_PKEY *key, *other_key;
static struct broker ob; /* the oauth2 broker */
static bool started;

static void b64url(const uint8_t *in, size_t n, char *out)
{
	static const char tab[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	size_t o = 0;
	uint32_t acc = 0;
	int bits = 0;
	for (size_t i = 0; i < n; i++) {
		acc = (acc << 8) | in[i];
		bits += 8;
		while (bits >= 6) {
			bits -= 6;
			out[o++] = tab[(acc >> bits) & 63];
		}
	}
	if (bits > 0)
		out[o++] = tab[(acc << (6 - bits)) & 63];
	out[o] = 0;
}

/* An RS256 token for sub with these scopes, expiring exp_in seconds from
 * now, signed with k.  Static buffer. */
static const char *token(EVP_PKEY *k, const char *sub, const char *scopes, long exp_in)
{
	static char tok[8192];
	char payload[2048];
	snprintf(payload, sizeof(payload),
	         "{\"sub\":\"%s\",\"aud\":[\"rabbitmq\"],\"exp\":%lld,\"scope\":\"%s\"}", sub,
	         (long long)time(NULL) + exp_in, scopes);
	const char *hdr = "{\"alg\":\"RS256\",\"typ\":\"JWT\",\"kid\":\"k1\"}";
	b64url((const uint8_t *)hdr, strlen(hdr), tok);
	strcat(tok, ".");
	b64url((const uint8_t *)payload, strlen(payload), tok + strlen(tok));
	uint8_t sig[512];
	size_t sl = sizeof(sig);
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	CU_ASSERT_FATAL(EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, k) == 1);
	CU_ASSERT_FATAL(EVP_DigestSign(ctx, sig, &sl, (const uint8_t *)tok, strlen(tok)) == 1);
	EVP_MD_CTX_free(ctx);
	strcat(tok, ".");
	b64url(sig, sl, tok + strlen(tok));
	return tok;
}

/* What the tokens of most tests may do: everything on "oa-*" resources
 * of vhost "/", and write to the default exchange. */
#define SCOPES                                                                                     \
	"rabbitmq.configure:%2F/oa-* rabbitmq.write:%2F/oa-* rabbitmq.read:%2F/oa-* "              \
	"rabbitmq.write:%2F/amq.default rabbitmq.tag:monitoring"

static bool start_oauth2_broker(void)
{
	if (started)
		return true;
	const char *scratch = itest_scratch_dir();
	if (!scratch)
		return false;
	key = EVP_RSA_gen(2048);
	other_key = EVP_RSA_gen(2048);
	if (!key || !other_key)
		return false;
	static char pem[1024], opt_key[1200];
	snprintf(pem, sizeof(pem), "%s/oauth2-k1.pem", scratch);
	FILE *f = fopen(pem, "w");
	if (!f)
		return false;
	PEM_write_PUBKEY(f, key);
	fclose(f);
	snprintf(opt_key, sizeof(opt_key), "auth-oauth2.signing_key.k1=%s", pem);
	const char *args[] = {"--auth-backends",
	                      "internal,oauth2",
	                      "--plugin-opt",
	                      "auth-oauth2.resource_server_id=rabbitmq",
	                      "--plugin-opt",
	                      opt_key,
	                      NULL};
	if (broker_start(&ob, args) != 0)
		return false;
	started = true;
	return true;
}

static amqp_connection_state_t login(const char *user, const char *pass, const char *vhost,
                                     amqp_rpc_reply_t *r)
{
	return broker_connect_ex(&ob, user, pass, vhost, 131072, 0, r);
}

#define NEED_BROKER()                                                                              \
	do {                                                                                       \
		if (broker_external())                                                             \
			return;                                                                    \
		CU_ASSERT_FATAL(start_oauth2_broker());                                            \
	} while (0)

/* The close an RPC on channel 1 ended with; the channel is reopened. */
static int refused_code(amqp_connection_state_t c)
{
	struct close_info ci = rpc_close(c, 1);
	if (ci.kind == CLOSE_CHANNEL)
		chan_reopen(c, 1);
	return ci.kind == CLOSE_CHANNEL ? ci.code : -ci.kind;
}

static void test_oauth2_token_allows_its_scopes(void)
{
	NEED_BROKER();
	amqp_rpc_reply_t r;
	amqp_connection_state_t c = login("whoever", token(key, "alice", SCOPES, 3600), "/", &r);
	CU_ASSERT_FATAL(c != NULL);
	/* Declare, publish through the default exchange, get. */
	CU_ASSERT(qdecl(c, "oa-q1"));
	CU_ASSERT(publish(c, "", "oa-q1", "hello") == AMQP_STATUS_OK);
	struct got g = get1(c, "oa-q1", true);
	CU_ASSERT_EQUAL(g.status, 1);
	CU_ASSERT_STRING_EQUAL(g.body, "hello");
	/* Consume from it too (read). */
	CU_ASSERT(consume_on(c, 1, "oa-q1", NULL, true, false, NULL, 0));

	/* Not granted: configure on another name... */
	amqp_queue_declare(c, 1, amqp_cstring_bytes("elsewhere"), 0, 0, 0, 0, amqp_empty_table);
	CU_ASSERT_EQUAL(refused_code(c), 403);
	/* ...write to an exchange outside the scopes (publish is async: the
	 * channel close comes back on the next RPC)... */
	publish(c, "amq.fanout", "", "x");
	amqp_queue_declare(c, 1, amqp_cstring_bytes("oa-q1"), 1, 0, 0, 0, amqp_empty_table);
	CU_ASSERT_EQUAL(refused_code(c), 403);
	broker_disconnect(c);

	/* ...read of a queue the internal guest made. */
	amqp_connection_state_t gc = login("guest", "guest", "/", &r);
	CU_ASSERT_FATAL(gc != NULL); /* internal comes first in the chain */
	CU_ASSERT(qdecl(gc, "guest-only"));
	c = login("whoever", token(key, "alice", SCOPES, 3600), "/", &r);
	CU_ASSERT_FATAL(c != NULL);
	struct got g2 = get1(c, "guest-only", true);
	CU_ASSERT_EQUAL(g2.status, -1);
	CU_ASSERT_EQUAL(refused_code(c), 403);
	broker_disconnect(c);
	qdelete(gc, "guest-only");
	qdelete(gc, "oa-q1");
	broker_disconnect(gc);
}

static void test_oauth2_topic_scopes(void)
{
	NEED_BROKER();
	amqp_rpc_reply_t r;
	amqp_connection_state_t c =
	    login("x", token(key, "alice", SCOPES " rabbitmq.write:%2F/amq.topic/orders.*", 3600),
	          "/", &r);
	CU_ASSERT_FATAL(c != NULL);
	/* A routing key the topic scope allows: the next RPC works. */
	CU_ASSERT(publish(c, "amq.topic", "orders.eu", "o") == AMQP_STATUS_OK);
	CU_ASSERT(qdecl(c, "oa-t"));
	/* One it does not: the channel is closed with 403. */
	publish(c, "amq.topic", "payments.eu", "p");
	amqp_queue_declare(c, 1, amqp_cstring_bytes("oa-t"), 1, 0, 0, 0, amqp_empty_table);
	CU_ASSERT_EQUAL(refused_code(c), 403);
	qdelete(c, "oa-t");
	broker_disconnect(c);
}

static bool log_contains(const char *what)
{
	FILE *f = fopen(ob.log_path, "r");
	if (!f)
		return false;
	char line[4096];
	bool found = false;
	while (!found && fgets(line, sizeof(line), f))
		found = strstr(line, what) != NULL;
	fclose(f);
	return found;
}

/* The login fails; the broker logged why (written before it answered). */
static void check_login_refused(const char *pass, const char *vhost, const char *why)
{
	amqp_rpc_reply_t r;
	amqp_connection_state_t c = login("alice", pass, vhost, &r);
	CU_ASSERT(c == NULL);
	if (c)
		broker_disconnect(c);
	if (!log_contains(why)) {
		fprintf(stderr, "\nno '%s' in %s\n", why, ob.log_path);
		CU_FAIL("refusal not logged with its reason");
	}
}

static void test_oauth2_refused_tokens(void)
{
	NEED_BROKER();
	check_login_refused(token(key, "alice", SCOPES, -30), "/", "token expired at");
	check_login_refused(token(other_key, "alice", SCOPES, 3600), "/", "signature is invalid");
	check_login_refused("not a token", "/", "not a JWT");
	/* Valid, but nothing granted on vhost "/". */
	check_login_refused(token(key, "alice", "rabbitmq.read:other/*", 3600), "/",
	                    "access to vhost '/' refused for user 'alice'");
	/* The broker is still fine. */
	amqp_rpc_reply_t r;
	amqp_connection_state_t c = login("x", token(key, "alice", SCOPES, 3600), "/", &r);
	CU_ASSERT(c != NULL);
	broker_disconnect(c);
}

/* A raw connection to ob logged in with pass; the socket or -1. */
static int raw_token_login(const char *pass)
{
	struct broker saved = g_broker;
	g_broker = ob;
	static struct rframe f;
	int fd = raw_start(&f);
	g_broker = saved;
	if (fd < 0)
		return -1;
	/* The PLAIN response by hand: wb_start_ok_plain() is for short
	 * passwords, a token is some 600 bytes. */
	struct wbuf resp = {0}, b = {0};
	wb_put(&resp, "\0whoever\0", 9);
	wb_put(&resp, pass, strlen(pass));
	wb_start_ok(&b, true, "PLAIN", resp.p, resp.n);
	wb_free(&resp);
	send_wb(fd, &b);
	if (read_method(fd, &f, 5000) != RF_OK || f.cls != 10 || f.mth != 30) /* tune */
		goto fail;
	b.n = 0;
	wb_tune_ok(&b, 0, 131072, 0);
	wb_conn_open(&b, "/");
	send_wb(fd, &b);
	if (read_method(fd, &f, 5000) != RF_OK || f.cls != 10 || f.mth != 41) /* open-ok */
		goto fail;
	wb_free(&b);
	return fd;
fail:
	wb_free(&b);
	close(fd);
	return -1;
}

static void send_update_secret(int fd, const char *secret)
{
	struct wbuf args = {0}, b = {0};
	wb_lstr(&args, secret, strlen(secret));
	wb_sstr(&args, "refresh");
	wb_method(&b, 0, 10, 70, &args); /* connection.update-secret */
	send_wb(fd, &b);
	wb_free(&args);
	wb_free(&b);
}

static void test_oauth2_update_secret(void)
{
	NEED_BROKER();
	int fd = raw_token_login(token(key, "alice", SCOPES, 3600));
	CU_ASSERT_FATAL(fd >= 0);
	static struct rframe f;
	send_update_secret(fd, token(key, "alice", SCOPES " rabbitmq.read:%2F/more", 7200));
	CU_ASSERT(read_method(fd, &f, 5000) == RF_OK && f.cls == 10 && f.mth == 71);
	/* Another user's token: refused, the connection closed. */
	send_update_secret(fd, token(key, "mallory", SCOPES, 3600));
	struct rclose rc;
	CU_ASSERT_EQUAL(await_close(fd, &rc, 5000), RF_OK);
	CU_ASSERT_EQUAL(rc.kind, 10);
	CU_ASSERT_EQUAL(rc.code, 530); /* NOT_ALLOWED, as RabbitMQ's reader */
	close(fd);
}

static void test_oauth2_expiry_closes(void)
{
	NEED_BROKER();
	/* exp is in whole seconds: 2 s from now, so at most 2 s of waiting. */
	int fd = raw_token_login(token(key, "alice", SCOPES, 2));
	CU_ASSERT_FATAL(fd >= 0);
	struct rclose rc;
	CU_ASSERT_EQUAL(await_close(fd, &rc, 8000), RF_OK);
	CU_ASSERT_EQUAL(rc.kind, 10);
	CU_ASSERT_EQUAL(rc.code, 320); /* CONNECTION_FORCED: credential expired */
	close(fd);
}

static void test_oauth2_stop(void)
{
	if (started) {
		CU_ASSERT_EQUAL(broker_stop(&ob), 0);
		started = false;
	}
	EVP_PKEY_free(key);
	EVP_PKEY_free(other_key);
	key = other_key = NULL;
}

void suite_oauth2(void)
{
	ITEST_SUITE("auth_oauth2", ITEST(test_oauth2_token_allows_its_scopes),
	            ITEST(test_oauth2_topic_scopes), ITEST(test_oauth2_refused_tokens),
	            ITEST(test_oauth2_update_secret), ITEST(test_oauth2_expiry_closes),
	            ITEST(test_oauth2_stop));
}
