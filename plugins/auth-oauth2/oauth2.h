/*
 * oauth2.h - the auth-oauth2 plugin's internal interfaces: signing keys
 * (keys.c), JWS compact tokens (jwt.c), scopes and their matching
 * (scopes.c), all used by the backend (auth_oauth2.c).
 *
 * The plugin follows RabbitMQ's rabbitmq_auth_backend_oauth2: a JWT access
 * token (RS256 or ES256) is the password; its scopes, filtered by the
 * scope prefix, grant configure/write/read on vhost/name patterns
 * (wildcard.erl's matching) and tags ("<prefix>tag:administrator").
 *
 * Memory: every allocation of ours goes through the host's allocator
 * (oa_alloc & co, counted per plugin); Jansson values and OpenSSL objects
 * use their own (they never outlive a call, except the keys' EVP_PKEYs,
 * freed in keys_free()).
 *
 * Threading: loop thread only (the ABI's rule for every callback).
 */
#ifndef AMQPD_AUTH_OAUTH2_H
#define AMQPD_AUTH_OAUTH2_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "amqpd/auth.h"
#include "amqpd/plugin.h"

/* ---- allocation through the host (auth_oauth2.c) ----------------------- */

void *oa_alloc(size_t n);
void *oa_calloc(size_t n, size_t size);
void *oa_realloc(void *p, size_t n);
void oa_free(void *p);
char *oa_strndup(const char *s, size_t n);
char *oa_strdup(const char *s);
void oa_log(enum amqpd_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- keys.c -------------------------------------------------------------- */

enum oa_key_type { OA_KEY_RSA, OA_KEY_EC_P256 };

struct oa_key {
	char *kid;
	enum oa_key_type type;
	char *alg;  /* the JWK's "alg" when it had one (RS256/ES256), else NULL */
	void *pkey; /* EVP_PKEY * */
};

struct oa_keys {
	struct oa_key *v;
	size_t n, cap;
};

/* Add a PEM public key file (RSA, or EC on P-256) under kid.  0, or -1
 * with why (naming the file) in err. */
int keys_load_pem(struct oa_keys *ks, const char *kid, const char *path, char *err, size_t errlen);
/* Add every RSA and EC P-256 key of a JWKS file ({"keys": [...]}, each
 * with a "kid"); keys of other types are skipped (logged).  0, or -1 with
 * why in err. */
int keys_load_jwks(struct oa_keys *ks, const char *path, char *err, size_t errlen);
const struct oa_key *keys_find(const struct oa_keys *ks, const char *kid);
void keys_free(struct oa_keys *ks);

/* ---- jwt.c ---------------------------------------------------------------- */

/* base64url (RFC 4648 §5) without padding (as JWS has it: '=' and
 * non-canonical trailing bits are refused).  Returns a host-allocated buffer (NUL-terminated, *len
 * bytes before it), or NULL when malformed. */
uint8_t *b64url_decode(const char *s, size_t n, size_t *len);

/*
 * Verify a JWS compact token with ks: the header's alg (RS256 or ES256),
 * its kid (or default_kid when it has none), the key's type, the
 * signature.  On success (0) *claims is the payload, a JSON object (the
 * caller json_decref()s it).  -1: refused, why in err (never the token).
 */
int jwt_verify(const struct oa_keys *ks, const char *default_kid, const char *token, size_t len,
               json_t **claims, char *err, size_t errlen);

/* ---- scopes.c -------------------------------------------------------------- */

/* RabbitMQ's wildcard:match/2: `*` matches any run of bytes, the parts
 * between them are %-decoded (and '+' is a space); leftmost first, no
 * backtracking (as wildcard.erl scans).  A malformed %-escape makes the
 * pattern match nothing. */
bool oa_wildcard_match(const char *subject, const char *pattern);

struct oa_config; /* auth_oauth2.c */

/* One string claim of the token, kept for scope variables ({sub}). */
struct oa_claim {
	char *name, *value;
};

/* The user_state of a login: what checks need of its token. */
struct oa_user {
	uint32_t magic; /* OA_USER_MAGIC */
	char *username;
	char **scopes; /* prefix dropped, sorted, unique */
	size_t nscopes;
	struct oa_claim *claims; /* top-level string claims */
	size_t nclaims;
	int64_t exp; /* seconds */
};
#define OA_USER_MAGIC 0x6f617532u /* "oau2" */

/*
 * The token's scopes as RabbitMQ normalises them: the "scope" claim (a
 * space-separated string or an array of strings), with the scopes found
 * under Keycloak's "authorization.permissions.scopes" and under each path
 * of additional_keys (space-separated dotted paths) added in front; only
 * those starting with prefix are kept, with it dropped (prefix "" keeps
 * them all); sorted and unique.  0, or -1 (too many scopes, out of
 * memory) with why in err.
 */
int oa_scopes_from_claims(json_t *claims, const char *resource_server_id, const char *prefix,
                          const char *additional_keys, char ***out, size_t *nout, char *err,
                          size_t errlen);
void oa_scopes_free(char **scopes, size_t n);

/* Tags: the scopes "tag:X" as "X", space-separated, into buf (cut at a
 * whole tag when it does not fit). */
void oa_tags(char *const *scopes, size_t n, char *buf, size_t buflen);

/* A scope with its variables expanded: {vhost} and {claim} (a string
 * claim of the token; an unknown name becomes the bare name); a malformed
 * variable makes the scope "" (RabbitMQ's parse_scope).  Host-allocated. */
char *oa_expand_scope(const struct oa_user *u, const char *scope, const char *vhost);

/* Access, as rabbit_oauth2_scope.erl decides it; vhost is also the value
 * of {vhost}. */
bool oa_vhost_access(const struct oa_user *u, const char *vhost);
bool oa_resource_access(const struct oa_user *u, const char *vhost, const char *name,
                        enum amqpd_auth_permission perm);
bool oa_topic_access(const struct oa_user *u, const char *vhost, const char *exchange,
                     const char *key, enum amqpd_auth_permission perm);

void oa_user_free(struct oa_user *u);

#endif
