/*
 * auth.h - authentication and authorisation as the connection engines use
 * them: the configured backend chain (RabbitMQ's auth_backends), the
 * built-in SASL mechanisms (sasl.c: PLAIN, AMQPLAIN, EXTERNAL) and the
 * built-in `internal` backend (auth_internal.c: the users, permissions
 * and topic permissions of the model, user.h).
 *
 * The engines' side of it lives in login.c (connection.start-ok to
 * connection.open, update-secret, expiry) and authz.c (each operation's
 * permission check, cached per channel).
 *
 * Ownership: the session owns its auth_config.  Threading: loop thread.
 */
#ifndef AUTH_H
#define AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct plugin_host;
struct model;
struct auth_backend;

#define AUTH_MAX_BACKENDS 8

/* Where EXTERNAL takes the user name from (RabbitMQ's ssl_cert_login_from;
 * amqpd's default is the common name). */
enum cert_login_from { CERT_LOGIN_CN, CERT_LOGIN_DN, CERT_LOGIN_SAN };

struct auth_config {
	/* --auth-backends, resolved by auth_config_resolve(). */
	const char *backend_names; /* "internal,http"; NULL: "internal" */
	const struct auth_backend *chain[AUTH_MAX_BACKENDS];
	size_t nchain;
	const struct auth_backend *internal; /* the built-in one (resolved too) */
	/* Users who may only connect from loopback (loopback_users); comma
	 * separated; NULL: "guest"; "": nobody. */
	const char *loopback_users;
	uint32_t timeout_ms;       /* a backend's pending answer (15000) */
	uint32_t failure_delay_ms; /* a failed login's wait before the close (3000) */
	enum cert_login_from cert_login_from;
	const char *cert_san_type; /* "dns", "email", "uri" (SAN only) */
	unsigned cert_san_index;
};

void auth_config_defaults(struct auth_config *cfg);
/* Register PLAIN, AMQPLAIN and EXTERNAL (cfg is their userdata), and the
 * internal backend over md.  0 or -1 (logged). */
int auth_register_mechanisms(struct plugin_host *h, const struct auth_config *cfg);
int auth_register_internal(struct plugin_host *h, struct model *md);
/* Resolve backend_names against the registry.  0, or -1 with the unknown
 * name in err. */
int auth_config_resolve(struct auth_config *cfg, const struct plugin_host *h, char *err,
                        size_t errlen);
/* May this user connect only from loopback? */
bool auth_loopback_only(const struct auth_config *cfg, const char *user);

#endif
