/*
 * login.h - a connection's authentication and its access questions:
 * connection.start-ok / secure-ok through the SASL mechanism and the
 * backend chain, connection.open's vhost access and limits,
 * connection.update-secret, a credential's expiry, and the questions
 * channels ask (authz.h) along the chain.
 *
 * An answer that comes later (AMQPD_PENDING) makes the engine stop reading
 * (conn_wants_read() is false while c->auth_wait) until it arrives or the
 * auth timeout passes; the loop serves everyone else meanwhile.  A failed
 * login is logged with the reason, told to the client (connection.close
 * 403 when it has the authentication_failure_close capability) and the
 * socket closed after the failure delay, as RabbitMQ.
 *
 * Ownership: the conn owns its struct conn_auth (freed by login_free).
 * Threading: loop thread.
 */
#ifndef LOGIN_H
#define LOGIN_H

#include <stdbool.h>
#include <stdint.h>

#include "amqp.h"
#include "amqpd/auth.h"

struct conn;
struct auth_call;
struct auth_backend;
struct sasl_mech;

struct access_q;
typedef void (*access_done_fn)(struct conn *c, const struct access_q *q, bool ok);

/* An access question, asked along the chain (access_ask). */
struct access_q {
	enum { ACCESS_VHOST, ACCESS_RESOURCE, ACCESS_TOPIC } kind;
	enum amqpd_auth_resource resource;
	enum amqpd_auth_permission perm;
	char name[256]; /* queue or exchange ("amq.default" for "") */
	char key[256];  /* routing or binding key (topic) */
};

/* What only the login and a waiting question need: allocated for them, so
 * that an open connection carries none of it. */
struct login_scratch {
	struct access_q q;     /* the question waiting for its answer */
	size_t q_next;         /* next backend index for it */
	access_done_fn q_done; /* its continuation */
	char reason[256];      /* why the last backend refused the login */
	char open_vhost[256];  /* connection.open's vhost */
};

struct conn_auth {
	struct amqpd_auth_conn info; /* what mechanisms and backends see */
	const struct sasl_mech *mech;
	void *mech_state;
	bool mech_started;
	/* The login being checked. */
	char *username;
	uint8_t *secret;
	size_t secret_len;
	bool preauth;
	size_t next; /* next backend of the chain to ask */
	/* The logged-in user. */
	const struct auth_backend *backend;
	void *user_state;
	char *tags; /* space-separated, from the backend */
	struct amqpd_auth_user user;
	bool failed;  /* waiting out the failure delay */
	bool counted; /* counted in its vhost's and user's connections */
	/* A pending call and what it is for. */
	struct auth_call *call;
	const struct auth_backend *asking;
	enum { STEP_NONE, STEP_LOGIN, STEP_UPDATE, STEP_OPEN, STEP_CHECK } step;
	struct login_scratch *x; /* during the login, and while a question waits */
};

/* The mechanisms offered on this connection ("PLAIN AMQPLAIN"). */
void login_mechanisms(struct conn *c, char *buf, size_t len);
void login_start_ok(struct conn *c, const struct amqp_connection_start_ok *a);
void login_secure_ok(struct conn *c, const struct amqp_connection_secure_ok *a);
void login_open(struct conn *c, const struct amqp_connection_open *a);
void login_update_secret(struct conn *c, const struct amqp_connection_update_secret *a);
/* Deadlines: a pending call's timeout, the credential's expiry. */
void login_tick(struct conn *c, int64_t now);
void login_free(struct conn *c);
/* The connection's vhost is being deleted: stop counting it there. */
void login_vhost_gone(struct conn *c);
/* The server closes the connection: a pending call is cancelled (its
 * answer would reopen what is closing) and a held frame dropped. */
void login_abort_pending(struct conn *c);
/* A channel opens (false: over the user's max-channels) or closes. */
bool login_channel_opened(struct conn *c);
void login_channel_closed(struct conn *c);

/*
 * Ask a channel's question along the chain.  0: allowed; 403: refused;
 * -1: pending (the engine replays the frame when the answer is in, see
 * conn_priv.h); done(c, q, allowed) is called with the answer first.
 */
int access_ask(struct conn *c, const struct access_q *q, access_done_fn done);

#endif
