/*
 * auth_oauth2.c - the "oauth2" user backend (plugin "auth-oauth2"), after
 * RabbitMQ's rabbitmq_auth_backend_oauth2: the password is a JWT access
 * token; the user name given is ignored.
 *
 * authenticate: verify the token (jwt.c: RS256/ES256 with the configured
 * keys), then its claims as RabbitMQ does: "exp" is required and must be
 * in the future (a fractional one is truncated), "nbf" when present must
 * not be, "aud" (a space-separated string or an array) must name
 * resource_server_id unless verify_aud=false.  The user name is the first
 * of preferred_username_claims ("sub", "client_id" by default) that is a
 * string claim, else "unknown"; the tags are the "tag:" scopes; the login
 * expires at exp.  The user_state (struct oa_user) keeps the scopes and
 * the string claims ({claim} variables) for the checks (scopes.c), which
 * also refuse once the token has expired (RabbitMQ's with_decoded_token).
 * update-secret: the same, and the user name must stay the same.
 *
 * Options (auth-oauth2.KEY=VALUE): resource_server_id (required once any
 * option is given; with none the plugin registers nothing, since amqpd
 * loads every plugin of its directory),
 * verify_aud, scope_prefix, preferred_username_claims (comma-separated),
 * default_key, signing_key.<kid>=PEM file, jwks_file, additional_scopes_key
 * (space-separated claim paths, RabbitMQ's extra_scopes_source).
 *
 * Answers are synchronous.  Threading: loop thread.  Memory: the host's
 * allocator for everything of ours.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "oauth2.h"

static const struct amqpd_host_api *host; /* set once by init */
static amqpd_plugin *plugin;

void *oa_alloc(size_t n)
{
	return host->alloc(plugin, n ? n : 1);
}

void *oa_calloc(size_t n, size_t size)
{
	return host->calloc(plugin, n ? n : 1, size ? size : 1);
}

void *oa_realloc(void *p, size_t n)
{
	return host->realloc(plugin, p, n ? n : 1);
}

void oa_free(void *p)
{
	host->free(plugin, p);
}

char *oa_strndup(const char *s, size_t n)
{
	char *d = oa_alloc(n + 1);
	if (d) {
		memcpy(d, s, n);
		d[n] = 0;
	}
	return d;
}

char *oa_strdup(const char *s)
{
	return oa_strndup(s, strlen(s));
}

void oa_log(enum amqpd_log_level level, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	host->vlog(plugin, level, fmt, ap);
	va_end(ap);
}

struct oa_config {
	char *resource_server_id;
	bool verify_aud;
	char *scope_prefix;
	char **username_claims;
	size_t nusername_claims;
	char *default_key;
	char *additional_scopes_key;
	struct oa_keys keys;
};

static void config_free(struct oa_config *c)
{
	if (!c)
		return;
	oa_free(c->resource_server_id);
	oa_free(c->scope_prefix);
	oa_scopes_free(c->username_claims, c->nusername_claims);
	oa_free(c->default_key);
	oa_free(c->additional_scopes_key);
	keys_free(&c->keys);
	oa_free(c);
}

/* ---- authenticate -------------------------------------------------------- */

static int64_t now_s(void)
{
	return (int64_t)time(NULL);
}

/* A NumericDate claim, truncated; false when absent (*present false) or
 * not a number. */
static bool numeric_date(json_t *claims, const char *name, bool *present, int64_t *out)
{
	json_t *v = json_object_get(claims, name);
	*present = v != NULL;
	if (!v)
		return false;
	if (json_is_integer(v)) {
		*out = (int64_t)json_integer_value(v);
		return true;
	}
	if (json_is_real(v)) {
		double d = json_real_value(v);
		if (!isfinite(d) || d > 9.2e18 || d < -9.2e18)
			return false;
		*out = (int64_t)trunc(d);
		return true;
	}
	return false;
}

static bool aud_has(json_t *aud, const char *id)
{
	size_t idl = strlen(id);
	if (json_is_string(aud)) {
		/* space-separated, as find_audience/2 splits it */
		const char *s = json_string_value(aud), *end = s + json_string_length(aud);
		while (s < end) {
			while (s < end && *s == ' ')
				s++;
			const char *e = s;
			while (e < end && *e != ' ')
				e++;
			if ((size_t)(e - s) == idl && memcmp(s, id, idl) == 0)
				return true;
			s = e;
		}
		return false;
	}
	if (json_is_array(aud)) {
		size_t i;
		json_t *e;
		json_array_foreach(aud, i, e)
		{
			if (json_is_string(e) && json_string_length(e) == idl &&
			    memcmp(json_string_value(e), id, idl) == 0)
				return true;
		}
	}
	return false;
}

static bool plain_string(json_t *v)
{
	return json_is_string(v) && strlen(json_string_value(v)) == json_string_length(v);
}

/* The checks of the claims, and the user record; NULL with why in err. */
static struct oa_user *user_from_claims(const struct oa_config *c, json_t *claims, char *err,
                                        size_t errlen)
{
	int64_t now = now_s(), exp = 0, nbf = 0;
	bool present;
	if (!numeric_date(claims, "exp", &present, &exp)) {
		snprintf(err, errlen,
		         present ? "the token's exp claim is not a number"
		                 : "the token has no exp claim");
		return NULL;
	}
	if (exp <= now) {
		snprintf(err, errlen, "the token expired at %lld (validated at %lld)",
		         (long long)exp, (long long)now);
		return NULL;
	}
	if (!numeric_date(claims, "nbf", &present, &nbf) && present) {
		snprintf(err, errlen, "the token's nbf claim is not a number");
		return NULL;
	}
	if (present && nbf > now) {
		snprintf(err, errlen, "the token is not valid before %lld (validated at %lld)",
		         (long long)nbf, (long long)now);
		return NULL;
	}
	if (c->verify_aud) {
		json_t *aud = json_object_get(claims, "aud");
		if (!aud) {
			snprintf(err, errlen, "the token has no audience (aud)");
			return NULL;
		}
		if (!aud_has(aud, c->resource_server_id)) {
			snprintf(err, errlen, "the token's audience does not include '%s'",
			         c->resource_server_id);
			return NULL;
		}
	}
	struct oa_user *u = oa_calloc(1, sizeof(*u));
	if (!u) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	u->magic = OA_USER_MAGIC;
	u->exp = exp;
	if (oa_scopes_from_claims(claims, c->resource_server_id, c->scope_prefix,
	                          c->additional_scopes_key, &u->scopes, &u->nscopes, err,
	                          errlen) < 0) {
		oa_user_free(u);
		return NULL;
	}
	const char *name = "unknown";
	for (size_t i = 0; i < c->nusername_claims; i++) {
		json_t *v = json_object_get(claims, c->username_claims[i]);
		if (plain_string(v) && *json_string_value(v)) { /* "" names nobody */
			name = json_string_value(v);
			break;
		}
	}
	if (!(u->username = oa_strdup(name)))
		goto oom;
	/* The string claims, for {claim} in scopes ("scope" is a list by
	 * then, in RabbitMQ's decoded token, so never a variable). */
	u->claims = oa_calloc(json_object_size(claims), sizeof(*u->claims));
	if (!u->claims)
		goto oom;
	const char *key;
	json_t *v;
	json_object_foreach(claims, key, v)
	{
		if (!plain_string(v) || strcmp(key, "scope") == 0)
			continue;
		struct oa_claim *cl = &u->claims[u->nclaims];
		if (!(cl->name = oa_strdup(key)) ||
		    !(cl->value = oa_strdup(json_string_value(v)))) {
			oa_free(cl->name);
			goto oom;
		}
		u->nclaims++;
	}
	return u;
oom:
	oa_user_free(u);
	snprintf(err, errlen, "out of memory");
	return NULL;
}

static amqpd_status refuse(struct amqpd_auth_result *out, const char *why)
{
	snprintf(out->reason, sizeof(out->reason), "OAuth 2/JWT token refused: %s", why);
	return AMQPD_ERR_REPLY(403);
}

static struct oa_user *own_user(void *user_state)
{
	struct oa_user *u = user_state;
	return u && u->magic == OA_USER_MAGIC ? u : NULL;
}

static amqpd_status oa_authenticate(void *userdata, const struct amqpd_auth_login *login,
                                    struct amqpd_auth_result *out, amqpd_request *req)
{
	(void)req;
	const struct oa_config *c = userdata;
	char why[200];
	if (out->struct_size <
	    offsetof(struct amqpd_auth_result, user_state) + sizeof(out->user_state))
		return AMQPD_ERR_INTERNAL;
	if (login->preauthenticated || !login->secret)
		return AMQPD_DECLINED; /* no token (EXTERNAL) */
	if (login->secret_len == 0)
		return refuse(out, "no token given (the password is the token)");
	if (memchr(login->secret, 0, login->secret_len))
		return refuse(out, "the token is not a JWT (JWS compact form)");
	json_t *claims;
	if (jwt_verify(&c->keys, c->default_key, (const char *)login->secret, login->secret_len,
	               &claims, why, sizeof(why)) < 0)
		return refuse(out, why);
	struct oa_user *u = user_from_claims(c, claims, why, sizeof(why));
	json_decref(claims);
	if (!u)
		return refuse(out, why);
	if (login->update) {
		const struct oa_user *old = own_user(login->user_state);
		if (old && strcmp(old->username, u->username) != 0) {
			oa_user_free(u);
			return refuse(out, "not allowed to change username on refreshed token");
		}
	}
	snprintf(out->username, sizeof(out->username), "%s", u->username);
	oa_tags(u->scopes, u->nscopes, out->tags, sizeof(out->tags));
	out->expires_at_ms = u->exp > 0 && (uint64_t)u->exp < UINT64_MAX / 1000
	                         ? (uint64_t)u->exp * 1000
	                         : UINT64_MAX;
	out->reason[0] = 0;
	out->user_state = u;
	return AMQPD_OK;
}

/* ---- checks -------------------------------------------------------------- */

/* The checks' answer for u: declined when it is not ours, refused once the
 * token has expired. */
static bool usable(const struct amqpd_auth_user *user, struct oa_user **u, amqpd_status *st)
{
	*u = own_user(user->user_state);
	if (!*u) {
		*st = AMQPD_DECLINED;
		return false;
	}
	if ((*u)->exp <= now_s()) {
		*st = AMQPD_ERR_REPLY(403);
		return false;
	}
	return true;
}

static amqpd_status answer(bool ok)
{
	return ok ? AMQPD_OK : AMQPD_ERR_REPLY(403);
}

static amqpd_status oa_check_vhost(void *userdata, const struct amqpd_auth_user *user,
                                   const char *vhost, amqpd_request *req)
{
	(void)userdata, (void)req;
	struct oa_user *u;
	amqpd_status st;
	if (!usable(user, &u, &st))
		return st;
	return answer(oa_vhost_access(u, vhost));
}

static amqpd_status oa_check_resource(void *userdata, const struct amqpd_auth_user *user,
                                      const char *vhost, enum amqpd_auth_resource kind,
                                      const char *name, enum amqpd_auth_permission perm,
                                      amqpd_request *req)
{
	(void)userdata, (void)req, (void)kind;
	struct oa_user *u;
	amqpd_status st;
	if (!usable(user, &u, &st))
		return st;
	return answer(oa_resource_access(u, vhost, name, perm));
}

static amqpd_status oa_check_topic(void *userdata, const struct amqpd_auth_user *user,
                                   const char *vhost, const char *exchange, const char *key,
                                   enum amqpd_auth_permission perm, amqpd_request *req)
{
	(void)userdata, (void)req;
	struct oa_user *u;
	amqpd_status st;
	if (!usable(user, &u, &st))
		return st;
	return answer(oa_topic_access(u, vhost, exchange, key, perm));
}

static void oa_release_user(void *userdata, void *user_state)
{
	(void)userdata;
	oa_user_free(own_user(user_state));
}

static const struct amqpd_auth_backend backend = {
    .struct_size = sizeof(struct amqpd_auth_backend),
    .name = "oauth2",
    .authenticate = oa_authenticate,
    .check_vhost = oa_check_vhost,
    .check_resource = oa_check_resource,
    .check_topic = oa_check_topic,
    .release_user = oa_release_user,
};

/* ---- init ------------------------------------------------------------------ */

static int parse_bool(const char *v, bool *out)
{
	if (strcmp(v, "true") == 0) {
		*out = true;
		return 0;
	}
	if (strcmp(v, "false") == 0) {
		*out = false;
		return 0;
	}
	return -1;
}

/* "a, b,c" -> {"a", "b", "c"}; -1 for an empty list or item. */
static int parse_list(const char *v, char ***out, size_t *nout)
{
	size_t n = 1;
	for (const char *p = v; *p; p++)
		n += *p == ',';
	char **items = oa_calloc(n, sizeof(*items));
	if (!items)
		return -1;
	size_t k = 0;
	const char *s = v;
	for (;;) {
		const char *e = strchr(s, ',');
		if (!e)
			e = s + strlen(s);
		const char *a = s, *b = e;
		while (a < b && (*a == ' ' || *a == '\t'))
			a++;
		while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
			b--;
		if (a == b || !(items[k] = oa_strndup(a, (size_t)(b - a)))) {
			oa_scopes_free(items, k);
			return -1;
		}
		k++;
		if (!*e)
			break;
		s = e + 1;
	}
	*out = items;
	*nout = k;
	return 0;
}

static int set_string(char **slot, const char *key, const char *value, char *err, size_t errlen)
{
	if (*slot) {
		snprintf(err, errlen, "option '%s' is given twice", key);
		return -1;
	}
	if (!(*slot = oa_strdup(value))) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}

static amqpd_status oa_init(amqpd_plugin *self, const struct amqpd_host_api *api,
                            const struct amqpd_option *opts, size_t nopts, void **userdata,
                            char *err, size_t errlen)
{
	host = api;
	plugin = self;
	if (!AMQPD_HOST_HAS(api, register_auth_backend)) {
		snprintf(err, errlen, "the host cannot register user backends");
		return AMQPD_ERR_NOT_IMPLEMENTED;
	}
	if (nopts == 0) {
		/* amqpd loads every plugin of its plugin directory: unconfigured,
		 * this one must not stop the broker, it just offers nothing
		 * (--auth-backends oauth2 then names an unknown backend). */
		api->log(self, AMQPD_LOG_INFO,
		         "not configured (no auth-oauth2.* options): the oauth2 backend is not "
		         "registered");
		*userdata = NULL;
		return AMQPD_OK;
	}
	struct oa_config *c = oa_calloc(1, sizeof(*c));
	if (!c) {
		snprintf(err, errlen, "out of memory");
		return AMQPD_ERR_ERRNO(ENOMEM);
	}
	c->verify_aud = true;
	bool verify_aud_set = false, prefix_set = false;
	for (size_t i = 0; i < nopts; i++) {
		const char *k = opts[i].key, *v = opts[i].value;
		if (strcmp(k, "resource_server_id") == 0) {
			if (!*v) {
				snprintf(err, errlen, "option 'resource_server_id' is empty");
				goto fail;
			}
			if (set_string(&c->resource_server_id, k, v, err, errlen) < 0)
				goto fail;
		} else if (strcmp(k, "verify_aud") == 0) {
			if (verify_aud_set) {
				snprintf(err, errlen, "option 'verify_aud' is given twice");
				goto fail;
			}
			if (parse_bool(v, &c->verify_aud) < 0) {
				snprintf(err, errlen,
				         "option 'verify_aud': '%s' is not true or false", v);
				goto fail;
			}
			verify_aud_set = true;
		} else if (strcmp(k, "scope_prefix") == 0) {
			prefix_set = true;
			if (set_string(&c->scope_prefix, k, v, err, errlen) < 0)
				goto fail;
		} else if (strcmp(k, "preferred_username_claims") == 0) {
			if (c->username_claims) {
				snprintf(err, errlen, "option '%s' is given twice", k);
				goto fail;
			}
			if (parse_list(v, &c->username_claims, &c->nusername_claims) < 0) {
				snprintf(err, errlen,
				         "option 'preferred_username_claims': '%s' is not a "
				         "comma-separated list of claim names",
				         v);
				goto fail;
			}
		} else if (strcmp(k, "default_key") == 0) {
			if (set_string(&c->default_key, k, v, err, errlen) < 0)
				goto fail;
		} else if (strcmp(k, "additional_scopes_key") == 0) {
			if (set_string(&c->additional_scopes_key, k, v, err, errlen) < 0)
				goto fail;
		} else if (strncmp(k, "signing_key.", 12) == 0 && k[12]) {
			if (keys_load_pem(&c->keys, k + 12, v, err, errlen) < 0)
				goto fail;
		} else if (strcmp(k, "jwks_file") == 0) {
			if (keys_load_jwks(&c->keys, v, err, errlen) < 0)
				goto fail;
		} else {
			snprintf(
			    err, errlen,
			    "unknown option '%s' (resource_server_id, verify_aud, scope_prefix, "
			    "preferred_username_claims, default_key, signing_key.<kid>, "
			    "jwks_file, additional_scopes_key)",
			    k);
			goto fail;
		}
	}
	if (!c->resource_server_id) {
		snprintf(err, errlen, "option 'resource_server_id' is required");
		goto fail;
	}
	if (c->keys.n == 0) {
		snprintf(err, errlen,
		         "no signing keys: give signing_key.<kid>=PEM-FILE or jwks_file");
		goto fail;
	}
	if (c->default_key && !keys_find(&c->keys, c->default_key)) {
		snprintf(err, errlen, "option 'default_key': no signing key '%s'", c->default_key);
		goto fail;
	}
	if (!prefix_set) {
		size_t n = strlen(c->resource_server_id) + 2;
		if (!(c->scope_prefix = oa_alloc(n)))
			goto oom;
		snprintf(c->scope_prefix, n, "%s.", c->resource_server_id);
	}
	if (!c->username_claims &&
	    parse_list("sub,client_id", &c->username_claims, &c->nusername_claims) < 0)
		goto oom;
	amqpd_status st = api->register_auth_backend(self, &backend);
	if (st != AMQPD_OK) {
		snprintf(err, errlen, "cannot register the oauth2 backend");
		config_free(c);
		return st;
	}
	api->log(self, AMQPD_LOG_INFO,
	         "oauth2 backend: resource server '%s', scope prefix '%s', %zu signing key(s)%s",
	         c->resource_server_id, c->scope_prefix, c->keys.n,
	         c->verify_aud ? "" : ", audience not verified");
	*userdata = c;
	return AMQPD_OK;
oom:
	snprintf(err, errlen, "out of memory");
fail:
	config_free(c);
	return AMQPD_ERR_PRECONDITION_FAILED;
}

static void oa_fini(amqpd_plugin *self, void *userdata)
{
	(void)self;
	config_free(userdata);
}

AMQPD_PLUGIN_DEFINE("auth-oauth2", "1.0",
                    "OAuth 2.0 (JWT) user backend \"oauth2\", as RabbitMQ's "
                    "rabbitmq_auth_backend_oauth2",
                    oa_init, oa_fini);
