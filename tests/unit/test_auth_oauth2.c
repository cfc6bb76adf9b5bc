/*
 * test_auth_oauth2.c - the auth-oauth2 plugin (the "oauth2" user backend),
 * loaded from $top_builddir/plugins/lib/auth_oauth2.so through the
 * broker's real plugin host and called through plugin_auth's wrappers.
 *
 * Fixtures are made at run time in a mkdtemp directory: two RSA keys and
 * two P-256 keys (OpenSSL), their PEM public keys and a JWKS file; tokens
 * are minted here (base64url header and payload, EVP_DigestSign; ES256
 * signatures turned from DER into r || s).  What is checked follows
 * RabbitMQ's rabbitmq_auth_backend_oauth2 (see plugins/auth-oauth2).
 *
 * Suites, in order (each loads the plugin into its own host and unloads
 * it, as the plugin keeps its host pointer in a static):
 *   init    - bad options and unreadable keys fail init, naming them;
 *   noaud   - verify_aud=false, scope_prefix="", other username claims;
 *   main    - tokens accepted and refused, scopes, checks, update.
 * Logging: this file provides the log seam (log_msg & co) and keeps the
 * lines, so init errors can be read back.  scopes.c is also linked in
 * (with malloc for the host allocator) to test scope variable expansion
 * by itself; the plugin's own copy is the one the backend uses.
 */
#include <CUnit/Basic.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../../plugins/auth-oauth2/oauth2.h"
#include "plugin/plugin_auth.h"
#include "plugin/plugin_host.h"
#include "util/log.h"

/* ---- the log seam ---------------------------------------------------------- */

static char logbuf[65536];
static size_t loglen;
static bool verbose;

bool log_enabled(enum log_level level)
{
	return level <= LOG_INFO || verbose;
}

void log_set_level(enum log_level level)
{
	(void)level;
}

void log_vmsg(enum log_level level, const char *prefix, const char *fmt, va_list ap)
{
	char line[2048];
	int n = 0;
	if (prefix)
		n = snprintf(line, sizeof(line), "%s", prefix);
	vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	if (verbose)
		fprintf(stderr, "[%d] %s\n", (int)level, line);
	size_t l = strlen(line);
	if (loglen + l + 2 < sizeof(logbuf)) {
		memcpy(logbuf + loglen, line, l);
		loglen += l;
		logbuf[loglen++] = '\n';
		logbuf[loglen] = 0;
	}
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_vmsg(level, NULL, fmt, ap);
	va_end(ap);
}

static void log_reset(void)
{
	loglen = 0;
	logbuf[0] = 0;
}

static bool log_has(const char *s)
{
	return strstr(logbuf, s) != NULL;
}

/* ---- scopes.c, linked in too (its variable expansion is tested alone) ------ */

void *oa_alloc(size_t n)
{
	return malloc(n ? n : 1);
}

void *oa_calloc(size_t n, size_t size)
{
	return calloc(n ? n : 1, size ? size : 1);
}

void *oa_realloc(void *p, size_t n)
{
	return realloc(p, n ? n : 1);
}

void oa_free(void *p)
{
	free(p);
}

char *oa_strndup(const char *s, size_t n)
{
	return strndup(s, n);
}

char *oa_strdup(const char *s)
{
	return strdup(s);
}

void oa_log(enum amqpd_log_level level, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_vmsg((enum log_level)level, NULL, fmt, ap);
	va_end(ap);
}

/* ---- fixtures -------------------------------------------------------------- */

/* Fixture set-up runs outside any test: a failure there ends the run. */
#define REQUIRE(cond)                                                                              \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "%s:%d: fixture: %s failed\n", __FILE__, __LINE__, #cond); \
			exit(1);                                                                   \
		}                                                                                  \
	} while (0)

static char tmpdir[256];
static EVP_PKEY *rsa1, *rsa2, *ec1, *ec2, *ec384;
static char rsa1_pem[320], ec1_pem[320], ec384_pem[320], jwks_path[320], bad_jwks[320],
    not_pem[320];
static struct event_base *base;
static char so_path[1024];

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

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	REQUIRE(f != NULL);
	fputs(text, f);
	fclose(f);
}

static void write_pubkey(EVP_PKEY *k, const char *path)
{
	FILE *f = fopen(path, "w");
	REQUIRE(f != NULL);
	REQUIRE(PEM_write_PUBKEY(f, k) == 1);
	fclose(f);
}

static json_t *jwk_rsa(EVP_PKEY *k, const char *kid)
{
	BIGNUM *n = NULL, *e = NULL;
	REQUIRE(EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_RSA_N, &n) == 1);
	REQUIRE(EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_RSA_E, &e) == 1);
	uint8_t nb[1024], eb[16];
	int nl = BN_bn2bin(n, nb), el = BN_bn2bin(e, eb);
	char ns[1400], es[32];
	b64url(nb, (size_t)nl, ns);
	b64url(eb, (size_t)el, es);
	BN_free(n);
	BN_free(e);
	return json_pack("{s:s, s:s, s:s, s:s, s:s}", "kty", "RSA", "kid", kid, "use", "sig", "n",
	                 ns, "e", es);
}

static json_t *jwk_ec(EVP_PKEY *k, const char *kid)
{
	uint8_t pub[65];
	size_t len = 0;
	REQUIRE(EVP_PKEY_get_octet_string_param(k, OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof(pub),
	                                        &len) == 1);
	REQUIRE(len == 65 && pub[0] == 4);
	char xs[64], ys[64];
	b64url(pub + 1, 32, xs);
	b64url(pub + 33, 32, ys);
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "kty", "EC", "kid", kid, "crv", "P-256",
	                 "alg", "ES256", "x", xs, "y", ys);
}

static int make_fixtures(void)
{
	char tmpl[] = "/tmp/amqpd-oauth2-XXXXXX";
	if (!mkdtemp(tmpl))
		return -1;
	snprintf(tmpdir, sizeof(tmpdir), "%s", tmpl);
	rsa1 = EVP_RSA_gen(2048);
	rsa2 = EVP_RSA_gen(2048);
	ec1 = EVP_EC_gen("P-256");
	ec2 = EVP_EC_gen("P-256");
	ec384 = EVP_EC_gen("P-384");
	if (!rsa1 || !rsa2 || !ec1 || !ec2 || !ec384)
		return -1;
	snprintf(rsa1_pem, sizeof(rsa1_pem), "%s/rsa1.pem", tmpdir);
	snprintf(ec1_pem, sizeof(ec1_pem), "%s/ec1.pem", tmpdir);
	snprintf(ec384_pem, sizeof(ec384_pem), "%s/ec384.pem", tmpdir);
	snprintf(jwks_path, sizeof(jwks_path), "%s/jwks.json", tmpdir);
	snprintf(bad_jwks, sizeof(bad_jwks), "%s/bad-jwks.json", tmpdir);
	snprintf(not_pem, sizeof(not_pem), "%s/not.pem", tmpdir);
	write_pubkey(rsa1, rsa1_pem);
	write_pubkey(ec1, ec1_pem);
	write_pubkey(ec384, ec384_pem);
	write_file(not_pem, "this is not a key\n");
	write_file(bad_jwks, "{\"keys\": [ {\"kty\": \"RSA\", \"kid\": \"x\"");
	/* JWKS: rsa2 and ec2 (the PEM files hold rsa1 and ec1), and a key
	 * of a type the plugin skips. */
	json_t *keys = json_array();
	json_array_append_new(keys, jwk_rsa(rsa2, "jwks-rsa"));
	json_array_append_new(keys, jwk_ec(ec2, "jwks-ec"));
	json_array_append_new(
	    keys, json_pack("{s:s, s:s, s:s}", "kty", "oct", "kid", "hmac", "k", "c2VjcmV0"));
	json_t *doc = json_pack("{s:o}", "keys", keys);
	if (json_dump_file(doc, jwks_path, 0) != 0)
		return -1;
	json_decref(doc);
	const char *top = getenv("top_builddir");
	snprintf(so_path, sizeof(so_path), "%s/plugins/lib/auth_oauth2.so", top ? top : ".");
	evthread_use_pthreads();
	base = event_base_new();
	return base ? 0 : -1;
}

static void free_fixtures(void)
{
	const char *files[] = {rsa1_pem, ec1_pem, ec384_pem, jwks_path, bad_jwks, not_pem};
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
		unlink(files[i]);
	rmdir(tmpdir);
	EVP_PKEY_free(rsa1);
	EVP_PKEY_free(rsa2);
	EVP_PKEY_free(ec1);
	EVP_PKEY_free(ec2);
	EVP_PKEY_free(ec384);
	if (base)
		event_base_free(base);
}

/* ---- tokens ------------------------------------------------------------------ */

static int64_t now(void)
{
	return (int64_t)time(NULL);
}

/* A signature over data with key for alg ("RS256", "ES256"; "HS256" keys
 * the HMAC with hkey; anything else: no signature). */
static size_t sign(const char *alg, EVP_PKEY *key, const uint8_t *hkey, size_t hkeylen,
                   const char *data, uint8_t *sig)
{
	size_t n = 0;
	if (strcmp(alg, "HS256") == 0) {
		unsigned int l = 0;
		HMAC(EVP_sha256(), hkey, (int)hkeylen, (const uint8_t *)data, strlen(data), sig,
		     &l);
		return l;
	}
	if (!key ||
	    (strcmp(alg, "RS256") != 0 && strcmp(alg, "ES256") != 0 && strcmp(alg, "RS512") != 0))
		return 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	uint8_t der[1024];
	size_t dl = sizeof(der);
	const EVP_MD *md = strcmp(alg, "RS512") == 0 ? EVP_sha512() : EVP_sha256();
	CU_ASSERT_FATAL(EVP_DigestSignInit(ctx, NULL, md, NULL, key) == 1);
	CU_ASSERT_FATAL(EVP_DigestSign(ctx, der, &dl, (const uint8_t *)data, strlen(data)) == 1);
	EVP_MD_CTX_free(ctx);
	if (EVP_PKEY_is_a(key, "EC")) {
		const uint8_t *p = der;
		ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)dl);
		CU_ASSERT_FATAL(es != NULL);
		BN_bn2binpad(ECDSA_SIG_get0_r(es), sig, 32);
		BN_bn2binpad(ECDSA_SIG_get0_s(es), sig + 32, 32);
		ECDSA_SIG_free(es);
		n = 64;
	} else {
		memcpy(sig, der, dl);
		n = dl;
	}
	return n;
}

/* header "." payload "." signature from the raw JSON texts. */
static char *mint_raw(const char *alg, const char *header, const char *payload, EVP_PKEY *key)
{
	size_t hl = strlen(header), pl = strlen(payload);
	char *tok = malloc(hl * 2 + pl * 2 + 2048);
	b64url((const uint8_t *)header, hl, tok);
	strcat(tok, ".");
	b64url((const uint8_t *)payload, pl, tok + strlen(tok));
	uint8_t sig[1024];
	size_t sl = sign(alg, key, (const uint8_t *)"k", 1, tok, sig);
	strcat(tok, ".");
	b64url(sig, sl, tok + strlen(tok));
	return tok;
}

static char *mint(const char *alg, const char *kid, EVP_PKEY *key, json_t *claims)
{
	json_t *h = kid ? json_pack("{s:s, s:s, s:s}", "alg", alg, "typ", "JWT", "kid", kid)
	                : json_pack("{s:s, s:s}", "alg", alg, "typ", "JWT");
	char *hs = json_dumps(h, JSON_COMPACT), *ps = json_dumps(claims, JSON_COMPACT);
	char *tok = mint_raw(alg, hs, ps, key);
	free(hs);
	free(ps);
	json_decref(h);
	json_decref(claims);
	return tok;
}

/* The usual claims: sub alice, aud rabbitmq, exp in an hour, scope. */
static json_t *claims_with(const char *scope)
{
	json_t *c = json_pack("{s:s, s:s, s:I}", "sub", "alice", "aud", "rabbitmq", "exp",
	                      (json_int_t)(now() + 3600));
	if (scope)
		json_object_set_new(c, "scope", json_string(scope));
	return c;
}

static char *rs(json_t *claims)
{
	return mint("RS256", "rsa1", rsa1, claims);
}

/* ---- the host ----------------------------------------------------------------- */

static struct plugin_host host;
static const struct auth_backend *be;
static struct amqpd_auth_conn conn = {.struct_size = sizeof(conn), .peer_addr = "127.0.0.1"};

static void never_done(void *ctx, amqpd_status st, struct amqpd_auth_result *res)
{
	(void)ctx, (void)st, (void)res;
	CU_FAIL("the oauth2 backend answered later");
}

/* Load the plugin with these options; 0 or -1 (init failed). */
static int load_with(const char *const *opts)
{
	log_reset();
	if (plugin_host_init(&host, base) < 0)
		return -1;
	char err[256];
	for (; *opts; opts++)
		if (plugin_host_add_option(&host, *opts, err, sizeof(err)) < 0)
			return -1;
	if (plugin_host_load(&host, so_path) < 0)
		return -1;
	be = plugin_auth_backend(&host, "oauth2");
	return be ? 0 : -1;
}

static void unload(void)
{
	plugin_host_unload_all(&host);
	be = NULL;
}

/* Would init fail with opts, logging want? */
static void init_fails(const char *const *opts, const char *want)
{
	CU_ASSERT(load_with(opts) < 0);
	if (!log_has(want)) {
		fprintf(stderr, "\nexpected '%s' in the log:\n%s", want, logbuf);
		CU_FAIL("init error does not say why");
	}
	unload();
}

static amqpd_status login_ex(const char *token, bool update, void *old,
                             struct amqpd_auth_result *res)
{
	memset(res, 0, sizeof(*res));
	res->struct_size = sizeof(*res);
	struct amqpd_auth_login l = {
	    .struct_size = sizeof(l),
	    .username = "mallory", /* ignored: the name comes from the token */
	    .secret = (const uint8_t *)token,
	    .secret_len = token ? strlen(token) : 0,
	    .conn = &conn,
	    .update = update,
	    .user_state = old,
	};
	struct auth_call *call = NULL;
	amqpd_status st = plugin_auth_authenticate(be, &l, res, never_done, NULL, &call);
	CU_ASSERT(call == NULL);
	CU_ASSERT(st != AMQPD_PENDING);
	/* A reason never quotes the token. */
	if (token && strlen(token) > 20)
		CU_ASSERT(strstr(res->reason, token + strlen(token) - 20) == NULL);
	return st;
}

static amqpd_status login(const char *token, struct amqpd_auth_result *res)
{
	return login_ex(token, false, NULL, res);
}

/* Log in with token (freed), expecting success; the user_state. */
static void *login_ok(char *token)
{
	struct amqpd_auth_result res;
	amqpd_status st = login(token, &res);
	if (st != AMQPD_OK)
		fprintf(stderr, "\nrefused: %s\n", res.reason);
	CU_ASSERT_EQUAL(st, AMQPD_OK);
	free(token);
	return st == AMQPD_OK ? res.user_state : NULL;
}

/* Expect a refusal whose reason has want in it. */
static void login_refused(char *token, const char *want)
{
	struct amqpd_auth_result res;
	amqpd_status st = login(token, &res);
	CU_ASSERT_EQUAL(st, AMQPD_ERR_REPLY(403));
	CU_ASSERT(res.user_state == NULL);
	if (st == AMQPD_OK)
		plugin_auth_release_user(be, res.user_state);
	if (!strstr(res.reason, want)) {
		fprintf(stderr, "\nreason '%s' lacks '%s'\n", res.reason, want);
		CU_FAIL("wrong reason");
	}
	free(token);
}

static void release(void *st)
{
	if (st)
		plugin_auth_release_user(be, st);
}

static struct amqpd_auth_user user_of(void *st)
{
	struct amqpd_auth_user u = {.struct_size = sizeof(u),
	                            .username = "alice",
	                            .tags = "",
	                            .user_state = st,
	                            .conn = &conn};
	return u;
}

static bool vhost_ok(void *st, const char *vhost)
{
	struct amqpd_auth_user u = user_of(st);
	struct auth_call *call;
	amqpd_status s = plugin_auth_check_vhost(be, &u, vhost, never_done, NULL, &call);
	CU_ASSERT(s == AMQPD_OK || s == AMQPD_ERR_REPLY(403));
	return s == AMQPD_OK;
}

static bool res_ok(void *st, const char *vhost, const char *name, enum amqpd_auth_permission p)
{
	struct amqpd_auth_user u = user_of(st);
	struct auth_call *call;
	amqpd_status s = plugin_auth_check_resource(be, &u, vhost, AMQPD_RESOURCE_QUEUE, name, p,
	                                            never_done, NULL, &call);
	CU_ASSERT(s == AMQPD_OK || s == AMQPD_ERR_REPLY(403));
	/* The kind does not matter (RabbitMQ's resource_access/3). */
	amqpd_status s2 = plugin_auth_check_resource(be, &u, vhost, AMQPD_RESOURCE_EXCHANGE, name,
	                                             p, never_done, NULL, &call);
	CU_ASSERT_EQUAL(s, s2);
	return s == AMQPD_OK;
}

static bool topic_ok(void *st, const char *vhost, const char *x, const char *key,
                     enum amqpd_auth_permission p)
{
	struct amqpd_auth_user u = user_of(st);
	struct auth_call *call;
	amqpd_status s = plugin_auth_check_topic(be, &u, vhost, x, key, p, never_done, NULL, &call);
	CU_ASSERT(s == AMQPD_OK || s == AMQPD_ERR_REPLY(403));
	return s == AMQPD_OK;
}

#define R AMQPD_PERM_READ
#define W AMQPD_PERM_WRITE
#define C AMQPD_PERM_CONFIGURE

static uint64_t live_blocks(void)
{
	struct amqpd_mem_usage mu;
	plugin_host_mem_usage(plugin_host_find(&host, "auth-oauth2"), &mu);
	return mu.blocks;
}

/* ---- suite init ------------------------------------------------------------------ */

static char opt_rsa1[400], opt_ec1[400], opt_jwks[400], opt_ec384[400], opt_badjwks[400],
    opt_notpem[400];

static int init_suite_init(void)
{
	snprintf(opt_rsa1, sizeof(opt_rsa1), "auth-oauth2.signing_key.rsa1=%s", rsa1_pem);
	snprintf(opt_ec1, sizeof(opt_ec1), "auth-oauth2.signing_key.ec1=%s", ec1_pem);
	snprintf(opt_jwks, sizeof(opt_jwks), "auth-oauth2.jwks_file=%s", jwks_path);
	snprintf(opt_ec384, sizeof(opt_ec384), "auth-oauth2.signing_key.big=%s", ec384_pem);
	snprintf(opt_badjwks, sizeof(opt_badjwks), "auth-oauth2.jwks_file=%s", bad_jwks);
	snprintf(opt_notpem, sizeof(opt_notpem), "auth-oauth2.signing_key.junk=%s", not_pem);
	return 0;
}

static void test_init_errors(void)
{
	init_fails((const char *[]){opt_rsa1, NULL}, "'resource_server_id' is required");
	init_fails((const char *[]){"auth-oauth2.resource_server_id=rabbitmq", NULL},
	           "no signing keys");
	init_fails((const char *[]){"auth-oauth2.resource_server_id=rabbitmq", opt_rsa1,
	                            "auth-oauth2.colour=blue", NULL},
	           "unknown option 'colour'");
	init_fails((const char *[]){"auth-oauth2.resource_server_id=rabbitmq", opt_rsa1,
	                            "auth-oauth2.verify_aud=maybe", NULL},
	           "'verify_aud': 'maybe'");
	init_fails((const char *[]){"auth-oauth2.resource_server_id=rabbitmq",
	                            "auth-oauth2.signing_key.k1=/nonexistent/key.pem", NULL},
	           "/nonexistent/key.pem");
	init_fails((const char *[]){"auth-oauth2.resource_server_id=rabbitmq", opt_notpem, NULL},
	           "signing_key.junk");
	init_fails((const char *[]){"auth-oauth2.resource_server_id=rabbitmq", opt_ec384, NULL},
	           "neither an RSA nor a P-256 EC key");
	init_fails((const char *[]){"auth-oauth2.resource_server_id=rabbitmq", opt_badjwks, NULL},
	           bad_jwks);
	init_fails((const char *[]){"auth-oauth2.resource_server_id=rabbitmq",
	                            "auth-oauth2.jwks_file=/nonexistent/jwks.json", NULL},
	           "/nonexistent/jwks.json");
	init_fails((const char *[]){"auth-oauth2.resource_server_id=rabbitmq", opt_rsa1,
	                            "auth-oauth2.default_key=nope", NULL},
	           "'default_key': no signing key 'nope'");
	init_fails((const char *[]){"auth-oauth2.resource_server_id=rabbitmq", opt_rsa1,
	                            "auth-oauth2.preferred_username_claims=sub,,x", NULL},
	           "preferred_username_claims");
	/* The same kid twice. */
	char dup[400];
	snprintf(dup, sizeof(dup), "auth-oauth2.signing_key.jwks-rsa=%s", rsa1_pem);
	init_fails((const char *[]){"auth-oauth2.resource_server_id=rabbitmq", opt_jwks, dup, NULL},
	           "'jwks-rsa' is already defined");
	/* No options at all: loads (amqpd loads every plugin of its
	 * directory) but registers no backend. */
	CU_ASSERT(load_with((const char *[]){NULL}) < 0);
	CU_ASSERT(plugin_host_find(&host, "auth-oauth2") != NULL);
	CU_ASSERT(plugin_auth_backend(&host, "oauth2") == NULL);
	CU_ASSERT(log_has("not configured"));
	unload();
	/* And a good one loads (the JWKS's oct key is skipped, logged). */
	CU_ASSERT(load_with((const char *[]){"auth-oauth2.resource_server_id=rabbitmq", opt_jwks,
	                                     NULL}) == 0);
	CU_ASSERT(log_has("key type oct is not supported"));
	unload();
}

/* ---- suite noaud: verify_aud=false, scope_prefix="", username claims ------------- */

static int noaud_init(void)
{
	return load_with(
	    (const char *[]){"auth-oauth2.resource_server_id=rabbitmq",
	                     "auth-oauth2.verify_aud=false", "auth-oauth2.scope_prefix=",
	                     "auth-oauth2.preferred_username_claims=preferred_username, "
	                     "client_id",
	                     opt_rsa1, NULL});
}

static int suite_unload(void)
{
	unload();
	return 0;
}

static void test_noaud(void)
{
	/* No aud, or another one: accepted. */
	json_t *c = claims_with("read:*/* tag:management");
	json_object_del(c, "aud");
	json_object_set_new(c, "preferred_username", json_string("Alice Smith"));
	struct amqpd_auth_result res;
	char *t = rs(c);
	CU_ASSERT_EQUAL(login(t, &res), AMQPD_OK);
	free(t);
	CU_ASSERT_STRING_EQUAL(res.username, "Alice Smith");
	/* With an empty prefix every scope counts, unprefixed ones too. */
	CU_ASSERT_STRING_EQUAL(res.tags, "management");
	CU_ASSERT(res_ok(res.user_state, "/", "q", R));
	release(res.user_state);

	c = claims_with("read:*/*");
	json_object_set_new(c, "aud", json_string("someone-else"));
	json_object_set_new(c, "client_id", json_string("svc-1"));
	void *st = login_ok(rs(c));
	release(st);
	/* The username: client_id when preferred_username is missing. */
	c = claims_with(NULL);
	json_object_set_new(c, "client_id", json_string("svc-1"));
	t = rs(c);
	CU_ASSERT_EQUAL(login(t, &res), AMQPD_OK);
	free(t);
	CU_ASSERT_STRING_EQUAL(res.username, "svc-1");
	release(res.user_state);
	/* Neither: "unknown" (not "sub", which is not in the list). */
	t = rs(claims_with(NULL));
	CU_ASSERT_EQUAL(login(t, &res), AMQPD_OK);
	free(t);
	CU_ASSERT_STRING_EQUAL(res.username, "unknown");
	release(res.user_state);
}

/* ---- suite main ---------------------------------------------------------------------- */

static uint64_t base_blocks;

static int main_init(void)
{
	if (load_with((const char *[]){"auth-oauth2.resource_server_id=rabbitmq", opt_rsa1, opt_ec1,
	                               opt_jwks, "auth-oauth2.default_key=rsa1",
	                               "auth-oauth2.additional_scopes_key=extra "
	                               "more.nested",
	                               NULL}) < 0)
		return -1;
	base_blocks = live_blocks();
	return 0;
}

static void test_rs256_valid(void)
{
	int64_t exp = now() + 3600;
	json_t *c =
	    claims_with("rabbitmq.read:*/* rabbitmq.tag:monitoring "
	                "rabbitmq.tag:administrator other.tag:impersonator tag:policymaker");
	json_object_set_new(c, "exp", json_integer(exp));
	char *t = rs(c);
	struct amqpd_auth_result res;
	CU_ASSERT_EQUAL(login(t, &res), AMQPD_OK);
	free(t);
	CU_ASSERT_STRING_EQUAL(res.username, "alice");
	/* Sorted (lists:usort), other prefixes and unprefixed ones ignored. */
	CU_ASSERT_STRING_EQUAL(res.tags, "administrator monitoring");
	CU_ASSERT_EQUAL(res.expires_at_ms, (uint64_t)exp * 1000);
	CU_ASSERT_STRING_EQUAL(res.reason, "");
	CU_ASSERT(res.user_state != NULL);
	release(res.user_state);
	CU_ASSERT_EQUAL(live_blocks(), base_blocks);
}

static void test_es256_valid(void)
{
	int64_t exp = now() + 60;
	json_t *c = claims_with("rabbitmq.write:vh/q");
	json_object_set_new(c, "exp", json_integer(exp));
	json_object_set_new(c, "sub", json_string("bob"));
	char *t = mint("ES256", "ec1", ec1, c);
	struct amqpd_auth_result res;
	CU_ASSERT_EQUAL(login(t, &res), AMQPD_OK);
	free(t);
	CU_ASSERT_STRING_EQUAL(res.username, "bob");
	CU_ASSERT_STRING_EQUAL(res.tags, "");
	CU_ASSERT_EQUAL(res.expires_at_ms, (uint64_t)exp * 1000);
	CU_ASSERT(res_ok(res.user_state, "vh", "q", W));
	release(res.user_state);
	/* Keys from the JWKS file, RSA and EC. */
	release(login_ok(mint("ES256", "jwks-ec", ec2, claims_with("rabbitmq.read:*/*"))));
	release(login_ok(mint("RS256", "jwks-rsa", rsa2, claims_with("rabbitmq.read:*/*"))));
	/* No kid: default_key (rsa1). */
	release(login_ok(mint("RS256", NULL, rsa1, claims_with("rabbitmq.read:*/*"))));
	login_refused(mint("RS256", NULL, rsa2, claims_with(NULL)), "signature is invalid");
	login_refused(mint("ES256", NULL, ec1, claims_with(NULL)), "does not fit");
	/* A fractional exp is truncated. */
	c = claims_with(NULL);
	json_object_set_new(c, "exp", json_real((double)exp + 0.75));
	t = rs(c);
	CU_ASSERT_EQUAL(login(t, &res), AMQPD_OK);
	free(t);
	CU_ASSERT_EQUAL(res.expires_at_ms, (uint64_t)exp * 1000);
	release(res.user_state);
	CU_ASSERT_EQUAL(live_blocks(), base_blocks);
}

static void test_bad_signature(void)
{
	/* Signed by another key than the kid's. */
	login_refused(mint("RS256", "rsa1", rsa2, claims_with(NULL)), "signature is invalid");
	login_refused(mint("ES256", "ec1", ec2, claims_with(NULL)), "signature is invalid");
	login_refused(mint("ES256", "jwks-ec", ec1, claims_with(NULL)), "signature is invalid");
	/* A payload changed after signing (aud dropped, scopes added). */
	char *good = rs(claims_with("rabbitmq.read:*/x"));
	char *evil = mint("RS256", "rsa1", rsa2, claims_with("rabbitmq.configure:*/*"));
	char *gd1 = strchr(good, '.'), *gd2 = strchr(gd1 + 1, '.');
	char *ed1 = strchr(evil, '.'), *ed2 = strchr(ed1 + 1, '.');
	char *spliced = malloc(strlen(good) + strlen(evil));
	sprintf(spliced, "%.*s%.*s%s", (int)(gd1 - good), good, (int)(ed2 - ed1), ed1, gd2);
	login_refused(spliced, "signature is invalid");
	/* A truncated ES256 signature, and one with a flipped bit. */
	char *e = mint("ES256", "ec1", ec1, claims_with(NULL));
	e[strlen(e) - 4] = 0;
	login_refused(e, "signature");
	e = mint("ES256", "ec1", ec1, claims_with(NULL));
	char *last = e + strlen(e) - 10;
	*last = *last == 'A' ? 'B' : 'A';
	login_refused(e, "signature is invalid");
	/* An RSA signature on an ES256 header. */
	login_refused(mint_raw("RS256", "{\"alg\":\"ES256\",\"kid\":\"ec1\"}",
	                       "{\"sub\":\"x\",\"aud\":\"rabbitmq\",\"exp\":99999999999}", rsa1),
	              "signature");
	free(good);
	free(evil);
	CU_ASSERT_EQUAL(live_blocks(), base_blocks);
}

static void test_wrong_alg(void)
{
	login_refused(mint("none", "rsa1", NULL, claims_with("rabbitmq.read:*/*")),
	              "alg 'none' is not accepted");
	login_refused(mint("none", NULL, NULL, claims_with(NULL)), "alg 'none'");
	/* HS256 keyed with the public key's PEM text: the confusion attack. */
	FILE *f = fopen(rsa1_pem, "r");
	char pem[4096];
	size_t pl = fread(pem, 1, sizeof(pem), f);
	fclose(f);
	json_t *h = json_pack("{s:s, s:s}", "alg", "HS256", "kid", "rsa1");
	char *hs = json_dumps(h, JSON_COMPACT);
	json_decref(h);
	json_t *c = claims_with("rabbitmq.configure:*/*");
	char *ps = json_dumps(c, JSON_COMPACT);
	json_decref(c);
	char tok[8192];
	b64url((uint8_t *)hs, strlen(hs), tok);
	strcat(tok, ".");
	b64url((uint8_t *)ps, strlen(ps), tok + strlen(tok));
	uint8_t sig[64];
	size_t sl = sign("HS256", NULL, (uint8_t *)pem, pl, tok, sig);
	strcat(tok, ".");
	b64url(sig, sl, tok + strlen(tok));
	free(hs);
	free(ps);
	login_refused(strdup(tok), "alg 'HS256' is not accepted");
	login_refused(mint("RS512", "rsa1", rsa1, claims_with(NULL)), "alg 'RS512'");
	login_refused(mint_raw("RS256", "{\"kid\":\"rsa1\"}", "{}", rsa1), "no alg");
	login_refused(mint_raw("RS256", "{\"alg\":\"RS256\",\"kid\":\"rsa1\",\"crit\":[\"b64\"]}",
	                       "{}", rsa1),
	              "crit");
	/* An RSA kid with ES256, an EC kid with RS256. */
	login_refused(mint("ES256", "rsa1", ec1, claims_with(NULL)), "does not fit");
	login_refused(mint("RS256", "ec1", rsa1, claims_with(NULL)), "does not fit");
}

static void test_unknown_kid(void)
{
	login_refused(mint("RS256", "nobody", rsa1, claims_with(NULL)),
	              "signing key 'nobody' is unknown");
	login_refused(mint("RS256", "hmac", rsa1, claims_with(NULL)), "'hmac' is unknown");
	login_refused(mint_raw("RS256", "{\"alg\":\"RS256\",\"kid\":7}", "{}", rsa1),
	              "kid is not a string");
}

static void test_expiry(void)
{
	json_t *c = claims_with(NULL);
	json_object_set_new(c, "exp", json_integer(now() - 10));
	login_refused(rs(c), "expired");
	c = claims_with(NULL);
	json_object_set_new(c, "exp", json_integer(now() - 1));
	login_refused(rs(c), "expired");
	c = claims_with(NULL);
	json_object_del(c, "exp");
	login_refused(rs(c), "no exp claim");
	c = claims_with(NULL);
	json_object_set_new(c, "exp", json_string("tomorrow"));
	login_refused(rs(c), "exp claim is not a number");
	/* nbf: in the future refused, in the past fine. */
	c = claims_with(NULL);
	json_object_set_new(c, "nbf", json_integer(now() + 600));
	login_refused(rs(c), "not valid before");
	c = claims_with(NULL);
	json_object_set_new(c, "nbf", json_integer(now() - 600));
	release(login_ok(rs(c)));
	c = claims_with(NULL);
	json_object_set_new(c, "nbf", json_string("x"));
	login_refused(rs(c), "nbf");
	/* Checks refuse once the token has expired (RabbitMQ checks exp at
	 * every access): the record's exp moved into the past. */
	void *st = login_ok(rs(claims_with("rabbitmq.read:*/*")));
	CU_ASSERT(res_ok(st, "/", "q", R));
	CU_ASSERT(vhost_ok(st, "/"));
	((struct oa_user *)st)->exp = now() - 1;
	CU_ASSERT(!res_ok(st, "/", "q", R));
	CU_ASSERT(!vhost_ok(st, "/"));
	release(st);
}

static void test_audience(void)
{
	json_t *c = claims_with(NULL);
	json_object_set_new(c, "aud", json_string("other"));
	login_refused(rs(c), "audience does not include 'rabbitmq'");
	c = claims_with(NULL);
	json_object_set_new(c, "aud", json_pack("[s,s]", "other", "rabbitmq2"));
	login_refused(rs(c), "audience");
	c = claims_with(NULL);
	json_object_set_new(c, "aud", json_string("rabbitmqx"));
	login_refused(rs(c), "audience");
	c = claims_with(NULL);
	json_object_del(c, "aud");
	login_refused(rs(c), "no audience");
	c = claims_with(NULL);
	json_object_set_new(c, "aud", json_pack("[s,s]", "other", "rabbitmq"));
	release(login_ok(rs(c)));
	/* A string audience is split on spaces, as find_audience/2 does. */
	c = claims_with(NULL);
	json_object_set_new(c, "aud", json_string("other rabbitmq"));
	release(login_ok(rs(c)));
}

static void test_malformed(void)
{
	login_refused(strdup("not-a-token"), "not a JWT");
	login_refused(strdup("a.b"), "not a JWT");
	login_refused(strdup("a.b.c.d.e"), "JWE");
	login_refused(strdup("!!!.e30.e30"), "header is not base64url");
	login_refused(strdup("e30=.e30.e30"), "header");        /* padding */
	login_refused(strdup("bm90IGpzb24.e30.e30"), "header"); /* "not json" */
	login_refused(strdup("WzFd.e30.e30"), "header");        /* [1] */
	login_refused(strdup(""), "no token");
	/* A correctly signed payload that is not a JSON object. */
	login_refused(mint_raw("RS256", "{\"alg\":\"RS256\",\"kid\":\"rsa1\"}", "not json", rsa1),
	              "payload is not");
	login_refused(mint_raw("RS256", "{\"alg\":\"RS256\",\"kid\":\"rsa1\"}", "[1,2]", rsa1),
	              "payload is not");
	/* A signature with a character outside base64url. */
	char *t = rs(claims_with(NULL));
	t[strlen(t) - 3] = '+';
	login_refused(t, "signature is not base64url");
	/* No secret (EXTERNAL): declined, for the next backend. */
	struct amqpd_auth_result res = {.struct_size = sizeof(res)};
	struct amqpd_auth_login l = {.struct_size = sizeof(l),
	                             .username = "CN=alice",
	                             .preauthenticated = true,
	                             .conn = &conn};
	struct auth_call *call;
	CU_ASSERT_EQUAL(plugin_auth_authenticate(be, &l, &res, never_done, NULL, &call),
	                AMQPD_DECLINED);
	CU_ASSERT_EQUAL(live_blocks(), base_blocks);
}

static void test_scope_claim_forms(void)
{
	/* An array of scopes. */
	json_t *c = claims_with(NULL);
	json_object_set_new(
	    c, "scope", json_pack("[s,s,i]", "rabbitmq.read:vh/a", "rabbitmq.tag:management", 5));
	struct amqpd_auth_result res;
	char *t = rs(c);
	CU_ASSERT_EQUAL(login(t, &res), AMQPD_OK);
	free(t);
	CU_ASSERT_STRING_EQUAL(res.tags, "management");
	CU_ASSERT(res_ok(res.user_state, "vh", "a", R));
	CU_ASSERT(!res_ok(res.user_state, "vh", "b", R));
	release(res.user_state);
	/* Several spaces between scopes. */
	void *st = login_ok(rs(claims_with("  rabbitmq.read:vh/a   rabbitmq.write:vh/b ")));
	CU_ASSERT(res_ok(st, "vh", "a", R));
	CU_ASSERT(res_ok(st, "vh", "b", W));
	release(st);
	/* additional_scopes_key: "extra" (a list, prefixed scopes), and the
	 * nested path "more.nested" (a map keyed by resource server id:
	 * unprefixed scopes, the id and '.' put in front). */
	c = claims_with("rabbitmq.read:vh/a");
	json_object_set_new(c, "extra", json_pack("[s]", "rabbitmq.write:vh/x"));
	json_object_set_new(c, "more",
	                    json_pack("{s:{s:s}}", "nested", "rabbitmq", "configure:vh/y tag:ops"));
	t = rs(c);
	CU_ASSERT_EQUAL(login(t, &res), AMQPD_OK);
	free(t);
	CU_ASSERT(res_ok(res.user_state, "vh", "a", R));
	CU_ASSERT(res_ok(res.user_state, "vh", "x", W));
	CU_ASSERT(res_ok(res.user_state, "vh", "y", C));
	CU_ASSERT_STRING_EQUAL(res.tags, "ops");
	release(res.user_state);
	/* An additional claim as a space-separated string; no "scope". */
	c = claims_with(NULL);
	json_object_set_new(c, "extra", json_string("rabbitmq.read:vh/s other.read:vh/t"));
	st = login_ok(rs(c));
	CU_ASSERT(res_ok(st, "vh", "s", R));
	CU_ASSERT(!res_ok(st, "vh", "t", R));
	release(st);
	/* Keycloak's requesting party token. */
	c = claims_with(NULL);
	json_object_set_new(c, "authorization",
	                    json_pack("{s:[{s:[s]},{s:s}]}", "permissions", "scopes",
	                              "rabbitmq.read:vh/kc", "scopes", "rabbitmq.write:vh/kc2"));
	st = login_ok(rs(c));
	CU_ASSERT(res_ok(st, "vh", "kc", R));
	CU_ASSERT(res_ok(st, "vh", "kc2", W));
	release(st);
	/* More than 2048 scopes: refused. */
	char *many = malloc(2100 * 32);
	many[0] = 0;
	for (int i = 0; i < 2100; i++)
		sprintf(many + strlen(many), "rabbitmq.read:vh/q%d ", i);
	login_refused(rs(claims_with(many)), "too many scopes");
	free(many);
	CU_ASSERT_EQUAL(live_blocks(), base_blocks);
}

static void test_check_vhost(void)
{
	void *st = login_ok(rs(claims_with("rabbitmq.read:vh*/q rabbitmq.tag:administrator "
	                                   "read:*/* other.write:*/* rabbitmq.configure:*")));
	CU_ASSERT(vhost_ok(st, "vh"));
	CU_ASSERT(vhost_ok(st, "vh1"));
	CU_ASSERT(!vhost_ok(st, "/"));
	CU_ASSERT(!vhost_ok(st, "v"));
	release(st);
	/* Any permission will do; "%2F" is the vhost "/". */
	st = login_ok(rs(claims_with("rabbitmq.configure:%2F/x rabbitmq.write:prod-*/y")));
	CU_ASSERT(vhost_ok(st, "/"));
	CU_ASSERT(vhost_ok(st, "prod-eu"));
	CU_ASSERT(!vhost_ok(st, "staging"));
	release(st);
	/* Only tags: no vhost. */
	st = login_ok(rs(claims_with("rabbitmq.tag:administrator")));
	CU_ASSERT(!vhost_ok(st, "/"));
	release(st);
	/* No scope claim at all. */
	st = login_ok(rs(claims_with(NULL)));
	CU_ASSERT(!vhost_ok(st, "/"));
	CU_ASSERT(!res_ok(st, "/", "q", R));
	release(st);
}

static void test_check_resource(void)
{
	void *st = login_ok(rs(claims_with(
	    "rabbitmq.configure:*/q-* rabbitmq.write:%2F/amq.default rabbitmq.read:vh/a+b "
	    "rabbitmq.read:vh/lit%2Astar rabbitmq.read:vh/bad%zz rabbitmq.read:vh/ex/rk "
	    "rabbitmq.write:vh/a/b/c rabbitmq.read:vh/*.log rabbitmq.write:vh2/*a")));
	CU_ASSERT(res_ok(st, "any", "q-1", C));
	CU_ASSERT(res_ok(st, "any", "q-", C));
	CU_ASSERT(!res_ok(st, "any", "q-1", W));
	CU_ASSERT(!res_ok(st, "any", "q-1", R));
	CU_ASSERT(!res_ok(st, "any", "x-q-1", C));
	CU_ASSERT(!res_ok(st, "any", "Q-1", C)); /* case-sensitive */
	CU_ASSERT(res_ok(st, "/", "amq.default", W));
	CU_ASSERT(!res_ok(st, "vh", "amq.default", W));
	/* '+' is a space; %2A a literal '*'. */
	CU_ASSERT(res_ok(st, "vh", "a b", R));
	CU_ASSERT(!res_ok(st, "vh", "a+b", R));
	CU_ASSERT(res_ok(st, "vh", "lit*star", R));
	CU_ASSERT(!res_ok(st, "vh", "litXstar", R));
	/* A malformed %-escape matches nothing. */
	CU_ASSERT(!res_ok(st, "vh", "bad%zz", R));
	/* A three-part scope grants the resource too; four parts: ignored. */
	CU_ASSERT(res_ok(st, "vh", "ex", R));
	CU_ASSERT(!res_ok(st, "vh", "a", W));
	CU_ASSERT(!res_ok(st, "vh", "a/b/c", W));
	CU_ASSERT(res_ok(st, "vh", "app.log", R));
	CU_ASSERT(res_ok(st, "vh", ".log", R));
	CU_ASSERT(!res_ok(st, "vh", "app.log.1", R));
	/* wildcard.erl takes the leftmost occurrence and never backtracks:
	 * "*a" matches "ba" but not "aba" (its first 'a' is not at the end). */
	CU_ASSERT(res_ok(st, "vh2", "ba", W));
	CU_ASSERT(!res_ok(st, "vh2", "aba", W));
	release(st);

	/* Special characters in names and vhosts, %-encoded in scopes. */
	st = login_ok(rs(claims_with("rabbitmq.read:my%2Fvhost/orders%20%28eu%29 "
	                             "rabbitmq.write:*/*")));
	CU_ASSERT(res_ok(st, "my/vhost", "orders (eu)", R));
	CU_ASSERT(!res_ok(st, "my/vhost", "orders", R));
	CU_ASSERT(res_ok(st, "my/vhost", "anything/at all*", W));
	CU_ASSERT(res_ok(st, "", "", W));
	release(st);
}

static void test_check_topic(void)
{
	void *st = login_ok(rs(claims_with("rabbitmq.write:*/amq.topic/orders.* "
	                                   "rabbitmq.read:vh/x/* rabbitmq.write:vh/plain")));
	CU_ASSERT(topic_ok(st, "any", "amq.topic", "orders.eu", W));
	CU_ASSERT(topic_ok(st, "any", "amq.topic", "orders.", W));
	CU_ASSERT(!topic_ok(st, "any", "amq.topic", "payments.eu", W));
	CU_ASSERT(!topic_ok(st, "any", "amq.topic", "orders.eu", R));
	CU_ASSERT(!topic_ok(st, "any", "other", "orders.eu", W));
	CU_ASSERT(topic_ok(st, "vh", "x", "", R));
	CU_ASSERT(topic_ok(st, "vh", "x", "a.#", R));
	CU_ASSERT(!topic_ok(st, "vh2", "x", "a", R));
	/* A scope without a routing-key part grants no topic access
	 * (rabbit_oauth2_scope:topic_access/4 wants a binary pattern). */
	CU_ASSERT(res_ok(st, "vh", "plain", W));
	CU_ASSERT(!topic_ok(st, "vh", "plain", "k", W));
	release(st);
	st = login_ok(rs(claims_with("rabbitmq.write:*/*")));
	CU_ASSERT(!topic_ok(st, "/", "amq.topic", "k", W));
	release(st);
}

static void test_variables(void)
{
	json_t *c = claims_with("rabbitmq.read:{vhost}/q-{sub} rabbitmq.write:*/{client_id}.* "
	                        "rabbitmq.configure:*/{nope} rabbitmq.read:*/x/{sub}");
	json_object_set_new(c, "client_id", json_string("svc"));
	void *st = login_ok(rs(c));
	CU_ASSERT(res_ok(st, "anything", "q-alice", R));
	CU_ASSERT(!res_ok(st, "anything", "q-bob", R));
	CU_ASSERT(vhost_ok(st, "whatever"));
	CU_ASSERT(res_ok(st, "/", "svc.1", W));
	CU_ASSERT(!res_ok(st, "/", "other.1", W));
	/* An unknown variable is its bare name. */
	CU_ASSERT(res_ok(st, "/", "nope", C));
	CU_ASSERT(!res_ok(st, "/", "{nope}", C));
	CU_ASSERT(topic_ok(st, "/", "x", "alice", R));
	CU_ASSERT(!topic_ok(st, "/", "x", "bob", R));
	/* The expansion itself, as parse_scope/2 does it. */
	struct oa_user *u = st;
	struct {
		const char *in, *out;
	} cases[] = {
	    {"read:{vhost}/x", "read:VH/x"},
	    {"read:{sub}/{client_id}", "read:alice/svc"},
	    {"read:{}/x", "read:/x"},
	    {"read:{vhost.x}/y", ""},
	    {"read:{{vhost}}/y", ""},
	    {"read:a}b", "read:a}b"},
	    {"read:x/{vhost", "read:x/VH"},
	    {"read:x/{", "read:x/"},
	    {"read:{vhost}{sub}", "read:VHalice"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *e = oa_expand_scope(u, cases[i].in, "VH");
		if (strcmp(e, cases[i].out) != 0) {
			fprintf(stderr, "\nexpand '%s' -> '%s', want '%s'\n", cases[i].in, e,
			        cases[i].out);
			CU_FAIL("scope expansion");
		}
		free(e);
	}
	release(st);
}

static void test_update(void)
{
	void *st = login_ok(rs(claims_with("rabbitmq.read:*/old")));
	CU_ASSERT(res_ok(st, "/", "old", R));
	/* A new token, same user, other scopes and expiry. */
	int64_t exp = now() + 7200;
	json_t *c = claims_with("rabbitmq.read:*/new rabbitmq.tag:monitoring");
	json_object_set_new(c, "exp", json_integer(exp));
	char *t = mint("ES256", "ec1", ec1, c);
	struct amqpd_auth_result res;
	CU_ASSERT_EQUAL(login_ex(t, true, st, &res), AMQPD_OK);
	free(t);
	CU_ASSERT_STRING_EQUAL(res.username, "alice");
	CU_ASSERT_STRING_EQUAL(res.tags, "monitoring");
	CU_ASSERT_EQUAL(res.expires_at_ms, (uint64_t)exp * 1000);
	CU_ASSERT(res.user_state != NULL && res.user_state != st);
	CU_ASSERT(res_ok(res.user_state, "/", "new", R));
	CU_ASSERT(!res_ok(res.user_state, "/", "old", R));
	/* The old record is untouched until the host releases it. */
	CU_ASSERT(res_ok(st, "/", "old", R));
	release(st);
	st = res.user_state;
	/* Another user's token, an expired one, a bad one: refused. */
	c = claims_with("rabbitmq.read:*/*");
	json_object_set_new(c, "sub", json_string("bob"));
	t = rs(c);
	CU_ASSERT_EQUAL(login_ex(t, true, st, &res), AMQPD_ERR_REPLY(403));
	free(t);
	CU_ASSERT(strstr(res.reason, "username") != NULL);
	CU_ASSERT(res.user_state == NULL);
	c = claims_with("rabbitmq.read:*/*");
	json_object_set_new(c, "exp", json_integer(now() - 5));
	t = rs(c);
	CU_ASSERT_EQUAL(login_ex(t, true, st, &res), AMQPD_ERR_REPLY(403));
	free(t);
	CU_ASSERT(strstr(res.reason, "expired") != NULL);
	CU_ASSERT_EQUAL(login_ex("x.y.z", true, st, &res), AMQPD_ERR_REPLY(403));
	CU_ASSERT(res_ok(st, "/", "new", R));
	release(st);
	CU_ASSERT_EQUAL(live_blocks(), base_blocks);
}

static void test_foreign_user_state(void)
{
	/* A user another backend logged in (its user_state, or none): the
	 * checks decline, for the next backend. */
	int foreign[8] = {0};
	struct amqpd_auth_user u = user_of(foreign);
	struct auth_call *call;
	CU_ASSERT_EQUAL(plugin_auth_check_vhost(be, &u, "/", never_done, NULL, &call),
	                AMQPD_DECLINED);
	u.user_state = NULL;
	CU_ASSERT_EQUAL(plugin_auth_check_resource(be, &u, "/", AMQPD_RESOURCE_QUEUE, "q", R,
	                                           never_done, NULL, &call),
	                AMQPD_DECLINED);
	CU_ASSERT_EQUAL(plugin_auth_check_topic(be, &u, "/", "x", "k", R, never_done, NULL, &call),
	                AMQPD_DECLINED);
}

int main(int argc, char **argv)
{
	verbose = argc > 1 && strcmp(argv[1], "-v") == 0;
	if (make_fixtures() < 0) {
		fprintf(stderr, "cannot make the key fixtures\n");
		return 1;
	}
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	CU_pSuite s = CU_add_suite("oauth2 init", init_suite_init, NULL);
	CU_add_test(s, "bad options and keys fail init", test_init_errors);
	s = CU_add_suite("oauth2 verify_aud=false", noaud_init, suite_unload);
	CU_add_test(s, "no audience check, empty prefix, username claims", test_noaud);
	s = CU_add_suite("oauth2", main_init, suite_unload);
	CU_add_test(s, "RS256 token accepted", test_rs256_valid);
	CU_add_test(s, "ES256 and JWKS keys, default key", test_es256_valid);
	CU_add_test(s, "bad signatures refused", test_bad_signature);
	CU_add_test(s, "algorithms other than RS256/ES256 refused", test_wrong_alg);
	CU_add_test(s, "unknown kid refused", test_unknown_kid);
	CU_add_test(s, "exp and nbf", test_expiry);
	CU_add_test(s, "audience", test_audience);
	CU_add_test(s, "malformed tokens refused", test_malformed);
	CU_add_test(s, "scope claim forms and additional scopes", test_scope_claim_forms);
	CU_add_test(s, "check_vhost", test_check_vhost);
	CU_add_test(s, "check_resource and wildcards", test_check_resource);
	CU_add_test(s, "check_topic", test_check_topic);
	CU_add_test(s, "scope variables", test_variables);
	CU_add_test(s, "update-secret", test_update);
	CU_add_test(s, "another backend's user", test_foreign_user_state);
	CU_basic_set_mode(verbose ? CU_BRM_VERBOSE : CU_BRM_NORMAL);
	CU_basic_run_tests();
	unsigned failed = CU_get_number_of_failures() + CU_get_number_of_suites_failed() +
	                  CU_get_number_of_tests_failed();
	CU_cleanup_registry();
	free_fixtures();
	return failed ? 1 : 0;
}
