/*
 * amqpd/auth.h - authentication and authorisation plugins, ABI version 2:
 * SASL mechanisms and user backends.
 *
 * Two vtables, registered from a plugin's init with
 * host->register_sasl_mechanism() and host->register_auth_backend() (test
 * for both with AMQPD_HOST_HAS: they were appended to version 2).
 *
 * A SASL mechanism only turns the client's start-ok / secure-ok responses
 * into credentials (a user name and a secret, or a user name the transport
 * proved, as EXTERNAL's client certificate does).  It is synchronous: it
 * parses bytes.  A mechanism is offered in connection.start when its
 * offer() says so for that connection (EXTERNAL: only on TLS with a
 * verified client certificate).
 *
 * A user backend decides.  The backends named by `--auth-backends`
 * (RabbitMQ's auth_backends; default "internal") form a chain, asked in
 * that order:
 *   - authenticate: the first backend that answers AMQPD_OK logs the user
 *     in; a backend that refuses (AMQPD_ERR_REPLY(403)) or declines
 *     (AMQPD_DECLINED) passes the login to the next one, as RabbitMQ's
 *     chain does; when none accepts, the login fails (403).
 *   - check_vhost, check_resource, check_topic: asked of the backend that
 *     authenticated the user first; AMQPD_OK allows, AMQPD_ERR_REPLY(403)
 *     denies (final), AMQPD_DECLINED asks the next backend of the chain
 *     that has the callback; when every one declines, the access is
 *     refused (check_topic: allowed, as RabbitMQ allows topics that no
 *     topic permission covers).
 * Every one of these may also answer AMQPD_PENDING: the answer comes later
 * through host->complete(self, req, status) with one of the statuses
 * above, from any thread; the connection waits (it reads nothing more)
 * and the loop goes on serving everyone else.  The host gives a pending
 * call at most its auth timeout (then the login or the operation fails
 * with 403, logged with the backend's name) and forgets a request whose
 * connection closed meanwhile (complete() is still required, and safe).
 *
 * The host caches allow/deny answers of check_resource and check_topic per
 * channel and drops the cache when permissions change (internal backend)
 * or the backend calls host->auth_invalidate().  A backend with a cache
 * of its own (http) keeps it; the host's only saves the calls.
 *
 * Ownership: everything passed in is borrowed for the call only; a
 * backend that answers later copies what it needs before returning
 * AMQPD_PENDING.  The one exception is the result a login writes (struct
 * amqpd_auth_result): it is the host's and stays valid until complete()
 * is called for that request; write it before calling complete(), never
 * after.  user_state that authenticate sets belongs to the backend: it
 * comes back in struct amqpd_auth_user with every check of that user's
 * connection and is released with release_user when the connection goes
 * (or at once, when the login it came with is not used).
 *
 * Threading: every callback runs on the loop thread; complete() may be
 * called from any thread.  A password or token never appears in a log:
 * neither the host nor a backend may print one.
 */
#ifndef AMQPD_AUTH_H
#define AMQPD_AUTH_H

#include "amqpd/plugin.h"

#ifdef __cplusplus
extern "C" {
#endif

/* What a mechanism or backend may know of the connection (borrowed). */
struct amqpd_auth_conn {
	uint32_t struct_size;
	const char *peer_addr; /* "127.0.0.1", "::1" */
	uint16_t peer_port;
	bool loopback; /* the peer is on a loopback address */
	bool tls;      /* amqps */
	/* A client certificate that the TLS layer verified against the CA,
	 * or all NULL / 0.  dn: the subject in RFC 4514 form, as RabbitMQ
	 * prints it ("CN=alice,O=Example"); cn: its common name; sans: the
	 * subject alternative names, each "DNS:x", "email:x", "URI:x" or
	 * "IP:x", in certificate order. */
	bool peer_cert_verified;
	const char *peer_cert_dn;
	const char *peer_cert_cn;
	const char *const *peer_cert_sans;
	size_t peer_cert_nsans;
	/* client_properties.connection_name, or NULL ({client_id} in topic
	 * permissions expands to it). */
	const char *client_name;
};

/* What a mechanism found in the client's responses (start, step). */
struct amqpd_sasl_out {
	uint32_t struct_size;
	/* Not done yet: send this challenge in connection.secure and call
	 * step() with the secure-ok response.  Owned by the mechanism; valid
	 * until its next call with this state. */
	const uint8_t *challenge;
	size_t challenge_len;
	/* Done (challenge NULL): the credentials, owned by the mechanism,
	 * valid until finish(). */
	const char *username;
	size_t username_len;
	const uint8_t *secret;
	size_t secret_len;
	/* The transport proved the name (EXTERNAL); backends are asked for
	 * the user with no secret. */
	bool preauthenticated;
};

/*
 * A SASL mechanism.  start: the start-ok response; step: a secure-ok
 * response.  Both AMQPD_OK (out says what next) or AMQPD_ERR_REPLY(403) for
 * a response that cannot be parsed (write why, without secrets, into err).
 * *state is the mechanism's own (start may set it; it is passed to step
 * and finish).  finish: always called once start was, to free state.
 * offer: optional (NULL: always offered).
 */
struct amqpd_sasl_mechanism {
	uint32_t struct_size;
	const char *name; /* "PLAIN"; upper case, as it is offered */
	bool (*offer)(void *userdata, const struct amqpd_auth_conn *conn);
	amqpd_status (*start)(void *userdata, const struct amqpd_auth_conn *conn,
	                      const uint8_t *response, size_t len, void **state,
	                      struct amqpd_sasl_out *out, char *err, size_t errlen);
	amqpd_status (*step)(void *userdata, void *state, const uint8_t *response, size_t len,
	                     struct amqpd_sasl_out *out, char *err, size_t errlen);
	void (*finish)(void *userdata, void *state);
};

/* A login to check (borrowed until the answer). */
struct amqpd_auth_login {
	uint32_t struct_size;
	const char *username;  /* NUL-terminated; may be empty */
	const uint8_t *secret; /* password or token; NULL when preauthenticated */
	size_t secret_len;
	bool preauthenticated;
	const struct amqpd_auth_conn *conn;
	/* connection.update-secret: a new secret for the user already logged
	 * in (user_state is that login's); else false / NULL. */
	bool update;
	void *user_state;
};

/* A login's answer, the host's: the backend writes it before answering.
 * Strings are NUL-terminated and cut to fit. */
struct amqpd_auth_result {
	uint32_t struct_size;
	/* Tags, space-separated ("administrator monitoring"). */
	char tags[256];
	/* The user's name when the backend finds it in the secret (oauth2:
	 * from the token's claims); empty: the name given. */
	char username[256];
	/* The credential stops being valid at this time (Unix ms); the
	 * connection is closed then unless update-secret renews it.  0: never. */
	uint64_t expires_at_ms;
	/* Why it was refused, for the broker log (never a secret). */
	char reason[256];
	/* The backend's own record of this login (released by release_user). */
	void *user_state;
};

/* A logged-in user, as checks see it (borrowed). */
struct amqpd_auth_user {
	uint32_t struct_size;
	const char *username;
	const char *tags; /* space-separated, as the login gave them */
	void *user_state; /* what this backend set at login; NULL for any other backend */
	const struct amqpd_auth_conn *conn;
};

/* Frozen values. */
enum amqpd_auth_permission {
	AMQPD_PERM_CONFIGURE = 0,
	AMQPD_PERM_WRITE = 1,
	AMQPD_PERM_READ = 2,
};

enum amqpd_auth_resource {
	AMQPD_RESOURCE_QUEUE = 0,
	AMQPD_RESOURCE_EXCHANGE = 1,
};

/*
 * A user backend.  Every check takes req for an AMQPD_PENDING answer; each
 * callback except authenticate is optional (NULL: declines).
 *
 * check_resource: the default exchange is named "amq.default", as in
 * RabbitMQ's checks.  check_topic: exchange is a topic exchange and key
 * the routing key (publish: AMQPD_PERM_WRITE) or binding key (queue.bind,
 * queue.unbind, exchange.bind, exchange.unbind: AMQPD_PERM_READ).
 */
struct amqpd_auth_backend {
	uint32_t struct_size;
	const char *name; /* as --auth-backends names it: "internal", "http" */
	amqpd_status (*authenticate)(void *userdata, const struct amqpd_auth_login *login,
	                             struct amqpd_auth_result *out, amqpd_request *req);
	amqpd_status (*check_vhost)(void *userdata, const struct amqpd_auth_user *user,
	                            const char *vhost, amqpd_request *req);
	amqpd_status (*check_resource)(void *userdata, const struct amqpd_auth_user *user,
	                               const char *vhost, enum amqpd_auth_resource kind,
	                               const char *name, enum amqpd_auth_permission perm,
	                               amqpd_request *req);
	amqpd_status (*check_topic)(void *userdata, const struct amqpd_auth_user *user,
	                            const char *vhost, const char *exchange, const char *key,
	                            enum amqpd_auth_permission perm, amqpd_request *req);
	void (*release_user)(void *userdata, void *user_state);
};

/*
 * The host functions of this header, appended to struct amqpd_host_api
 * (AMQPD_HOST_HAS(host, register_auth_backend) and so on):
 *
 *   amqpd_status register_sasl_mechanism(self, const struct amqpd_sasl_mechanism *);
 *   amqpd_status register_auth_backend(self, const struct amqpd_auth_backend *);
 *       AMQPD_OK, or AMQPD_ERR_PRECONDITION_FAILED when incomplete or
 *       the name is taken.
 *   void auth_invalidate(self);
 *       answers this plugin gave may have changed: the host drops the
 *       permission answers it cached.  Loop thread.
 */

#ifdef __cplusplus
}
#endif

#endif
