/*
 * auth_http.c - the plugin "auth-http": the user backend "http", as
 * RabbitMQ's rabbitmq_auth_backend_http.
 *
 * Options (--plugin-opt auth-http.KEY=VALUE):
 *   user_path, vhost_path, resource_path, topic_path  http:// URLs
 *       (defaults: RabbitMQ's, http://localhost:8000/auth/user and so on)
 *   http_method        get (default) | post (form-encoded body)
 *   request_timeout    ms, default 15000
 *   cache_ttl          ms, default 0: no cache
 *   max_cache_entries  default 10000
 *   cache_refusals     false (default, as RabbitMQ's cache) | true: keep
 *                      "deny" answers too (failures are never kept)
 *
 * Requests, with RabbitMQ's parameters in RabbitMQ's order:
 *   user_path      username, password (none for a login the transport
 *                  proved, EXTERNAL: RabbitMQ sends no AuthProps then)
 *   vhost_path     username, vhost, ip, tags
 *   resource_path  username, vhost, resource (queue|exchange), name,
 *                  permission (configure|write|read), tags
 *   topic_path     username, vhost, resource=topic, name (the exchange),
 *                  permission, tags, routing_key, variable_map.username,
 *                  variable_map.vhost (what rabbit_channel passes for an
 *                  AMQP 0-9-1 connection)
 * Answers (status 200 or 201; the body trimmed, case-insensitive):
 * "allow" (logins: "allow tag1 tag2"), "deny" or "deny <why>"; anything
 * else, another status, no connection or no answer within
 * request_timeout is a refusal, logged with why.
 *
 * Every call answers AMQPD_PENDING and completes from the client thread,
 * except a cache hit, answered at once.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "ahttp.h"

#define BACKEND_NAME "http"

/* ---- memory ---- */

void *ah_alloc(struct ahttp *a, size_t n)
{
	return a->host->alloc(a->self, n ? n : 1);
}

void ah_free(struct ahttp *a, void *p)
{
	if (p)
		a->host->free(a->self, p);
}

char *ah_strdup(struct ahttp *a, const char *s)
{
	size_t n = strlen(s);
	char *p = ah_alloc(a, n + 1);
	if (p)
		memcpy(p, s, n + 1);
	return p;
}

void ah_job_free(struct ahttp *a, struct ah_job *j)
{
	if (!j)
		return;
	ah_free(a, j->query);
	ah_free(a, j->cache_key);
	ah_free(a, j->what);
	ah_free(a, j);
}

/* ---- options ---- */

static const char *const default_urls[AH_NKINDS] = {
    "http://localhost:8000/auth/user",
    "http://localhost:8000/auth/vhost",
    "http://localhost:8000/auth/resource",
    "http://localhost:8000/auth/topic",
};
static const char *const url_keys[AH_NKINDS] = {"user_path", "vhost_path", "resource_path",
                                                "topic_path"};

static void url_free(struct ahttp *a, struct ah_url *u)
{
	ah_free(a, u->text);
	ah_free(a, u->host);
	ah_free(a, u->path);
	memset(u, 0, sizeof(*u));
}

/* "http://host[:port][/path]"; 0, or -1 with why in err. */
static int url_parse(struct ahttp *a, const char *key, const char *s, struct ah_url *u, char *err,
                     size_t errlen)
{
	struct ah_url n = {0};
	if (strncasecmp(s, "https://", 8) == 0) {
		snprintf(err, errlen, "option %s: https is not supported (use http://): '%s'", key,
		         s);
		return -1;
	}
	if (strncasecmp(s, "http://", 7) != 0) {
		snprintf(err, errlen, "option %s: not an http:// URL: '%s'", key, s);
		return -1;
	}
	const char *h = s + 7, *hend, *p;
	if (*h == '[') {
		hend = strchr(h, ']');
		if (!hend) {
			snprintf(err, errlen, "option %s: bad IPv6 address in '%s'", key, s);
			return -1;
		}
		h++;
		p = hend + 1;
	} else {
		hend = h + strcspn(h, ":/?#");
		p = hend;
	}
	if (hend == h) {
		snprintf(err, errlen, "option %s: no host in '%s'", key, s);
		return -1;
	}
	unsigned long port = 80;
	if (*p == ':') {
		char *end;
		errno = 0;
		port = strtoul(p + 1, &end, 10);
		if (end == p + 1 || errno || port == 0 || port > 65535 ||
		    (*end && *end != '/' && *end != '?')) {
			snprintf(err, errlen, "option %s: bad port in '%s'", key, s);
			return -1;
		}
		p = end;
	} else if (*p && *p != '/' && *p != '?') {
		snprintf(err, errlen, "option %s: bad URL '%s'", key, s);
		return -1;
	}
	if (strchr(p, '#') || strpbrk(s, " \t\r\n")) {
		snprintf(err, errlen, "option %s: bad URL '%s'", key, s);
		return -1;
	}
	n.port = (uint16_t)port;
	n.text = ah_strdup(a, s);
	n.host = ah_alloc(a, (size_t)(hend - h) + 1);
	if (n.host) {
		memcpy(n.host, h, (size_t)(hend - h));
		n.host[hend - h] = 0;
	}
	if (*p == '/') {
		n.path = ah_strdup(a, p);
	} else {
		n.path = ah_alloc(a, strlen(p) + 2);
		if (n.path) {
			n.path[0] = '/';
			strcpy(n.path + 1, p);
		}
	}
	if (!n.text || !n.host || !n.path) {
		url_free(a, &n);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	url_free(a, u);
	*u = n;
	return 0;
}

static int parse_u64(const char *key, const char *v, uint64_t min, uint64_t max, uint64_t *out,
                     char *err, size_t errlen)
{
	char *end;
	errno = 0;
	unsigned long long x = strtoull(v, &end, 10);
	if (!*v || *end || errno || v[0] == '-' || x < min || x > max) {
		snprintf(err, errlen, "option %s: '%s' is not a number from %llu to %llu", key, v,
		         (unsigned long long)min, (unsigned long long)max);
		return -1;
	}
	*out = x;
	return 0;
}

/* ---- answers ---- */

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

/* Copy s for a log line: printable ASCII only, cut to outlen. */
static void printable(char *out, size_t outlen, const char *s, size_t len)
{
	size_t n = 0;
	for (size_t i = 0; i < len && n + 1 < outlen; i++) {
		unsigned char c = (unsigned char)s[i];
		out[n++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
	}
	out[n] = 0;
}

void ah_parse_answer(enum ah_kind kind, int status, const char *body, size_t len, bool *allow,
                     bool *denied_by_service, char *tags, size_t tagslen, char *reason,
                     size_t reasonlen)
{
	*allow = false;
	*denied_by_service = false;
	tags[0] = 0;
	reason[0] = 0;
	if (status != 200 && status != 201) {
		snprintf(reason, reasonlen, "HTTP status %d", status);
		return;
	}
	while (len && is_space(body[0])) {
		body++;
		len--;
	}
	while (len && is_space(body[len - 1]))
		len--;
	if (len >= 4 && strncasecmp(body, "deny", 4) == 0 && (len == 4 || is_space(body[4]))) {
		*denied_by_service = true;
		size_t i = 4;
		while (i < len && is_space(body[i]))
			i++;
		if (i < len) {
			char why[160];
			printable(why, sizeof(why), body + i, len - i);
			snprintf(reason, reasonlen, "denied by the HTTP service: %s", why);
		} else {
			snprintf(reason, reasonlen, "denied by the HTTP service");
		}
		return;
	}
	if (len >= 5 && strncasecmp(body, "allow", 5) == 0 && (len == 5 || is_space(body[5]))) {
		if (len == 5) {
			*allow = true;
			return;
		}
		if (kind == AH_USER) {
			/* RabbitMQ lower-cases the answer, then splits the
			 * rest on spaces. */
			size_t n = 0;
			for (size_t i = 5; i < len;) {
				while (i < len && is_space(body[i]))
					i++;
				if (i == len)
					break;
				if (n && n + 1 < tagslen)
					tags[n++] = ' ';
				while (i < len && !is_space(body[i])) {
					if (n + 1 < tagslen)
						tags[n++] = (char)tolower((unsigned char)body[i]);
					i++;
				}
			}
			tags[n] = 0;
			*allow = true;
			return;
		}
	}
	char what[80];
	printable(what, sizeof(what), body, len < 60 ? len : 60);
	snprintf(reason, reasonlen, "unexpected answer '%s%s'", what, len > 60 ? "..." : "");
}

void ah_job_answer(struct ahttp *a, struct ah_job *j, bool allow, const char *tags,
                   bool denied_by_service, const char *reason)
{
	if (j->cache_key && (allow || (denied_by_service && a->cache_refusals)))
		ah_cache_put(&a->cache, a, j->cache_key, allow, allow ? tags : NULL);
	if (j->kind == AH_USER && j->out) {
		if (allow)
			snprintf(j->out->tags, sizeof(j->out->tags), "%s", tags ? tags : "");
		else
			snprintf(j->out->reason, sizeof(j->out->reason), "%s",
			         reason ? reason : "refused");
	}
	if (allow)
		a->host->log(a->self, AMQPD_LOG_DEBUG, "auth backend '%s': %s allowed",
		             BACKEND_NAME, j->what);
	else
		a->host->log(a->self, denied_by_service ? AMQPD_LOG_INFO : AMQPD_LOG_WARNING,
		             "auth backend '%s': %s refused: %s", BACKEND_NAME, j->what,
		             reason ? reason : "refused");
	a->host->complete(a->self, j->req, allow ? AMQPD_OK : AMQPD_ERR_REPLY(403));
}

/* ---- requests ---- */

static const char *perm_name(enum amqpd_auth_permission p)
{
	switch (p) {
	case AMQPD_PERM_CONFIGURE:
		return "configure";
	case AMQPD_PERM_WRITE:
		return "write";
	case AMQPD_PERM_READ:
		return "read";
	}
	return NULL;
}

static const char *resource_name(enum amqpd_auth_resource r)
{
	switch (r) {
	case AMQPD_RESOURCE_QUEUE:
		return "queue";
	case AMQPD_RESOURCE_EXCHANGE:
		return "exchange";
	}
	return NULL;
}

static void param(struct ah_str *s, struct ahttp *a, const char *k, const char *v)
{
	ah_str_param(s, a, k, v ? v : "", v ? strlen(v) : 0);
}

/* The cache key: the kind, then the parameters; pw (if any) as its HMAC. */
static char *cache_key(struct ahttp *a, enum ah_kind kind, const char *query_nopw,
                       const uint8_t *pw, size_t pwlen, bool has_pw)
{
	if (!a->cache.ttl_ms)
		return NULL;
	struct ah_str k;
	ah_str_init(&k, a);
	char c = (char)('0' + kind);
	ah_str_add(&k, a, &c, 1);
	ah_str_add(&k, a, "\n", 1);
	ah_str_adds(&k, a, query_nopw);
	if (has_pw) {
		unsigned char mac[EVP_MAX_MD_SIZE];
		unsigned int maclen = 0;
		static const uint8_t empty[1];
		if (!HMAC(EVP_sha256(), a->salt, (int)sizeof(a->salt), pw ? pw : empty, pwlen, mac,
		          &maclen)) {
			ah_str_free(&k, a);
			return NULL;
		}
		char hex[2 * EVP_MAX_MD_SIZE + 1];
		for (unsigned i = 0; i < maclen; i++)
			snprintf(hex + 2 * i, 3, "%02x", mac[i]);
		ah_str_adds(&k, a, "\npassword-hmac=");
		ah_str_adds(&k, a, hex);
	}
	return ah_str_take(&k, a);
}

/* For a log line: "'name'" printable and cut. */
static void q(char *out, size_t outlen, const char *s)
{
	char tmp[128];
	printable(tmp, sizeof(tmp), s ? s : "", s ? strlen(s) : 0);
	snprintf(out, outlen, "'%s'", tmp);
}

/* Answer from the cache, or queue a job.  Takes query, key and what. */
static amqpd_status dispatch(struct ahttp *a, enum ah_kind kind, char *query, char *key, char *what,
                             struct amqpd_auth_result *out, amqpd_request *req)
{
	if (!query || !what || (a->cache.ttl_ms && !key)) {
		ah_free(a, query);
		ah_free(a, key);
		ah_free(a, what);
		if (out)
			snprintf(out->reason, sizeof(out->reason), "out of memory");
		return AMQPD_ERR_ERRNO(ENOMEM);
	}
	bool allow = false;
	char tags[256];
	if (key && ah_cache_get(&a->cache, a, key, &allow, tags, sizeof(tags))) {
		if (out) {
			if (allow)
				snprintf(out->tags, sizeof(out->tags), "%s", tags);
			else
				snprintf(out->reason, sizeof(out->reason),
				         "denied by the HTTP service (cached)");
		}
		a->host->log(a->self, allow ? AMQPD_LOG_DEBUG : AMQPD_LOG_INFO,
		             "auth backend '%s': %s %s (cached answer)", BACKEND_NAME, what,
		             allow ? "allowed" : "refused: denied by the HTTP service");
		ah_free(a, query);
		ah_free(a, key);
		ah_free(a, what);
		return allow ? AMQPD_OK : AMQPD_ERR_REPLY(403);
	}
	struct ah_job *j = ah_alloc(a, sizeof(*j));
	if (!j) {
		ah_free(a, query);
		ah_free(a, key);
		ah_free(a, what);
		if (out)
			snprintf(out->reason, sizeof(out->reason), "out of memory");
		return AMQPD_ERR_ERRNO(ENOMEM);
	}
	memset(j, 0, sizeof(*j));
	j->kind = kind;
	j->req = req;
	j->out = out;
	j->query = query;
	j->cache_key = key;
	j->what = what;
	ah_client_submit(a, j);
	return AMQPD_PENDING;
}

static char *fmt_what(struct ahttp *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static char *fmt_what(struct ahttp *a, const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	return ah_strdup(a, buf);
}

static amqpd_status http_authenticate(void *ud, const struct amqpd_auth_login *login,
                                      struct amqpd_auth_result *out, amqpd_request *req)
{
	struct ahttp *a = ud;
	const char *user = login->username ? login->username : "";
	bool has_pw = !login->preauthenticated && login->secret;
	struct ah_str s;
	ah_str_init(&s, a);
	param(&s, a, "username", user);
	char *key = NULL;
	if (a->cache.ttl_ms && !s.oom)
		key =
		    cache_key(a, AH_USER, s.p ? s.p : "", login->secret, login->secret_len, has_pw);
	if (has_pw)
		ah_str_param(&s, a, "password", (const char *)login->secret, login->secret_len);
	char *query = ah_str_take(&s, a);
	char u[140];
	q(u, sizeof(u), user);
	char *what = fmt_what(a, "%s of user %s", login->update ? "secret update" : "login", u);
	return dispatch(a, AH_USER, query, key, what, out, req);
}

static amqpd_status http_check_vhost(void *ud, const struct amqpd_auth_user *user,
                                     const char *vhost, amqpd_request *req)
{
	struct ahttp *a = ud;
	struct ah_str s;
	ah_str_init(&s, a);
	param(&s, a, "username", user->username);
	param(&s, a, "vhost", vhost);
	param(&s, a, "ip", user->conn && user->conn->peer_addr ? user->conn->peer_addr : "");
	param(&s, a, "tags", user->tags);
	char *query = ah_str_take(&s, a);
	char *key = query ? cache_key(a, AH_VHOST, query, NULL, 0, false) : NULL;
	char u[140], v[140];
	q(u, sizeof(u), user->username);
	q(v, sizeof(v), vhost);
	char *what = fmt_what(a, "access to vhost %s for user %s", v, u);
	return dispatch(a, AH_VHOST, query, key, what, NULL, req);
}

static amqpd_status http_check_resource(void *ud, const struct amqpd_auth_user *user,
                                        const char *vhost, enum amqpd_auth_resource kind,
                                        const char *name, enum amqpd_auth_permission perm,
                                        amqpd_request *req)
{
	struct ahttp *a = ud;
	const char *rn = resource_name(kind), *pn = perm_name(perm);
	if (!rn || !pn)
		return AMQPD_ERR_REPLY(403);
	struct ah_str s;
	ah_str_init(&s, a);
	param(&s, a, "username", user->username);
	param(&s, a, "vhost", vhost);
	param(&s, a, "resource", rn);
	param(&s, a, "name", name);
	param(&s, a, "permission", pn);
	param(&s, a, "tags", user->tags);
	char *query = ah_str_take(&s, a);
	char *key = query ? cache_key(a, AH_RESOURCE, query, NULL, 0, false) : NULL;
	char u[140], v[140], n[140];
	q(u, sizeof(u), user->username);
	q(v, sizeof(v), vhost);
	q(n, sizeof(n), name);
	char *what = fmt_what(a, "%s access to %s %s in vhost %s for user %s", pn, rn, n, v, u);
	return dispatch(a, AH_RESOURCE, query, key, what, NULL, req);
}

static amqpd_status http_check_topic(void *ud, const struct amqpd_auth_user *user,
                                     const char *vhost, const char *exchange, const char *key_rk,
                                     enum amqpd_auth_permission perm, amqpd_request *req)
{
	struct ahttp *a = ud;
	const char *pn = perm_name(perm);
	if (!pn)
		return AMQPD_ERR_REPLY(403);
	struct ah_str s;
	ah_str_init(&s, a);
	param(&s, a, "username", user->username);
	param(&s, a, "vhost", vhost);
	param(&s, a, "resource", "topic");
	param(&s, a, "name", exchange);
	param(&s, a, "permission", pn);
	param(&s, a, "tags", user->tags);
	param(&s, a, "routing_key", key_rk);
	param(&s, a, "variable_map.username", user->username);
	param(&s, a, "variable_map.vhost", vhost);
	char *query = ah_str_take(&s, a);
	char *key = query ? cache_key(a, AH_TOPIC, query, NULL, 0, false) : NULL;
	char u[140], v[140], x[140], k[140];
	q(u, sizeof(u), user->username);
	q(v, sizeof(v), vhost);
	q(x, sizeof(x), exchange);
	q(k, sizeof(k), key_rk);
	char *what = fmt_what(a, "%s access to topic %s of exchange %s in vhost %s for user %s", pn,
	                      k, x, v, u);
	return dispatch(a, AH_TOPIC, query, key, what, NULL, req);
}

/* ---- the plugin ---- */

static void state_free(struct ahttp *a)
{
	for (int i = 0; i < AH_NKINDS; i++)
		url_free(a, &a->url[i]);
	ah_cache_fini(&a->cache, a);
	const struct amqpd_host_api *host = a->host;
	amqpd_plugin *self = a->self;
	host->free(self, a);
}

static amqpd_status http_init(amqpd_plugin *self, const struct amqpd_host_api *host,
                              const struct amqpd_option *opts, size_t nopts, void **userdata,
                              char *err, size_t errlen)
{
	if (!AMQPD_HOST_HAS(host, register_auth_backend)) {
		snprintf(err, errlen, "the host has no user backends (register_auth_backend)");
		return AMQPD_ERR_NOT_IMPLEMENTED;
	}
	struct ahttp *a = host->calloc(self, 1, sizeof(*a));
	if (!a) {
		snprintf(err, errlen, "out of memory");
		return AMQPD_ERR_ERRNO(ENOMEM);
	}
	a->self = self;
	a->host = host;
	a->timeout_ms = 15000;
	uint64_t ttl = 0, max_entries = 10000;
	bool ok = true;
	for (int i = 0; i < AH_NKINDS && ok; i++)
		ok = url_parse(a, url_keys[i], default_urls[i], &a->url[i], err, errlen) == 0;
	for (size_t i = 0; i < nopts && ok; i++) {
		const char *k = opts[i].key ? opts[i].key : "",
		           *v = opts[i].value ? opts[i].value : "";
		int kind = -1;
		for (int u = 0; u < AH_NKINDS; u++)
			if (strcmp(k, url_keys[u]) == 0)
				kind = u;
		uint64_t x;
		if (kind >= 0) {
			ok = url_parse(a, k, v, &a->url[kind], err, errlen) == 0;
		} else if (strcmp(k, "http_method") == 0) {
			if (strcasecmp(v, "get") == 0) {
				a->post = false;
			} else if (strcasecmp(v, "post") == 0) {
				a->post = true;
			} else {
				snprintf(err, errlen, "option http_method: '%s' is not get or post",
				         v);
				ok = false;
			}
		} else if (strcmp(k, "request_timeout") == 0) {
			ok = parse_u64(k, v, 1, 86400000, &x, err, errlen) == 0;
			if (ok)
				a->timeout_ms = (unsigned)x;
		} else if (strcmp(k, "cache_ttl") == 0) {
			ok = parse_u64(k, v, 0, 86400000ULL * 365, &ttl, err, errlen) == 0;
		} else if (strcmp(k, "max_cache_entries") == 0) {
			ok = parse_u64(k, v, 1, 100000000, &max_entries, err, errlen) == 0;
		} else if (strcmp(k, "cache_refusals") == 0) {
			if (strcmp(v, "true") == 0) {
				a->cache_refusals = true;
			} else if (strcmp(v, "false") == 0) {
				a->cache_refusals = false;
			} else {
				snprintf(err, errlen,
				         "option cache_refusals: '%s' is not true or false", v);
				ok = false;
			}
		} else {
			snprintf(
			    err, errlen,
			    "unknown option '%s' (known: user_path, vhost_path, resource_path, "
			    "topic_path, http_method, request_timeout, cache_ttl, "
			    "max_cache_entries, cache_refusals)",
			    k);
			ok = false;
		}
	}
	if (ok && ah_cache_init(&a->cache, a, ttl, (size_t)max_entries) != 0) {
		snprintf(err, errlen, "out of memory");
		ok = false;
	} else if (!ok) {
		ah_cache_init(&a->cache, a, 0, 1);
	}
	if (ok && RAND_bytes(a->salt, (int)sizeof(a->salt)) != 1) {
		snprintf(err, errlen, "no random bytes for the cache keys");
		ok = false;
	}
	if (!ok) {
		state_free(a);
		return AMQPD_ERR_PRECONDITION_FAILED;
	}
	if (ah_client_start(a, err, errlen) != 0) {
		ah_client_stop(a);
		state_free(a);
		return AMQPD_ERR_INTERNAL;
	}
	const struct amqpd_auth_backend be = {
	    .struct_size = sizeof(be),
	    .name = BACKEND_NAME,
	    .authenticate = http_authenticate,
	    .check_vhost = http_check_vhost,
	    .check_resource = http_check_resource,
	    .check_topic = http_check_topic,
	    .release_user = NULL,
	};
	amqpd_status st = host->register_auth_backend(self, &be);
	if (st != AMQPD_OK) {
		snprintf(err, errlen, "cannot register the user backend '%s'", BACKEND_NAME);
		ah_client_stop(a);
		state_free(a);
		return st;
	}
	host->log(self, AMQPD_LOG_INFO,
	          "user backend '%s': %s %s, timeout %u ms, cache %llu ms (%llu entries%s)",
	          BACKEND_NAME, a->post ? "POST" : "GET", a->url[AH_USER].text, a->timeout_ms,
	          (unsigned long long)ttl, (unsigned long long)max_entries,
	          a->cache_refusals ? ", refusals too" : "");
	*userdata = a;
	return AMQPD_OK;
}

static void http_fini(amqpd_plugin *self, void *userdata)
{
	(void)self;
	struct ahttp *a = userdata;
	if (!a)
		return;
	ah_client_stop(a);
	state_free(a);
}

AMQPD_PLUGIN_DEFINE("auth-http", "1.0",
                    "user backend 'http': logins and permissions asked of an HTTP service "
                    "(RabbitMQ's rabbitmq_auth_backend_http)",
                    http_init, http_fini);
