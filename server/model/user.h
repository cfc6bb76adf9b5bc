/*
 * user.h - the internal user database and access rules: users (password
 * hash, tags, per-user limits), their permissions per vhost (configure,
 * write and read patterns) and topic permissions, as RabbitMQ keeps them.
 *
 * Patterns are PCRE2 regular expressions, RabbitMQ's dialect (Erlang's re
 * is PCRE), matched unanchored as re:run does; an empty pattern matches
 * only the empty name ("^$"), as in RabbitMQ.  Topic patterns may hold
 * {username}, {vhost} and {client_id}, expanded before matching.
 *
 * Every change bumps md->perm_epoch so that cached answers go stale.
 * Ownership: the model owns its users; a vhost owns its permissions (keyed
 * by user name, so permissions may name a user that does not exist yet, as
 * a definitions import can).  Loop thread only.
 */
#ifndef USER_H
#define USER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct model;
struct vhost;

struct user {
	char *name;
	char *password_hash;     /* RabbitMQ's base64 salt+digest; "" = no password login */
	char *hashing_algorithm; /* rabbit_password_hashing_sha256 (default), _sha512, _md5 */
	char *tags;              /* space-separated: "administrator monitoring" */
	int64_t max_connections; /* -1: no limit */
	int64_t max_channels;    /* -1: no limit (across its connections) */
};

/* Permission kinds (the same values as enum amqpd_auth_permission). */
enum perm_kind { PERM_CONFIGURE = 0, PERM_WRITE = 1, PERM_READ = 2 };

struct permission {
	char *user;
	char *pattern[3]; /* by enum perm_kind, as given */
	void *re[3];      /* compiled (pcre2_code *) */
};

struct topic_permission {
	struct topic_permission *next;
	char *user;
	char *exchange;
	char *write, *read;
};

/* Users. */
struct user *model_user(struct model *md, const char *name);
/* Create or replace a user.  hash: already hashed (may be ""); tags: a
 * comma- or space-separated list.  NULL on failure (err says why). */
struct user *model_user_put(struct model *md, const char *name, const char *hash,
                            const char *algorithm, const char *tags, char *err, size_t errlen);
/* Delete a user and every permission naming it.  false if none. */
bool model_user_delete(struct model *md, const char *name);
bool user_has_tag(const char *tags, const char *tag);

/* Permissions (vh may belong to any model). */
const struct permission *vhost_permission(const struct vhost *vh, const char *user);
/* Set a user's permissions; a bad pattern: -1 with why in err. */
int vhost_set_permission(struct vhost *vh, const char *user, const char *configure,
                         const char *write, const char *read, char *err, size_t errlen);
bool vhost_clear_permission(struct vhost *vh, const char *user);
/* Does name match the permission's pattern of this kind? */
bool permission_allows(const struct permission *p, enum perm_kind kind, const char *name,
                       size_t len);

/* Topic permissions: one per (user, exchange), as RabbitMQ. */
int vhost_set_topic_permission(struct vhost *vh, const char *user, const char *exchange,
                               const char *write, const char *read, char *err, size_t errlen);
bool vhost_clear_topic_permissions(struct vhost *vh, const char *user, const char *exchange);
const struct topic_permission *vhost_topic_permission(const struct vhost *vh, const char *user,
                                                      const char *exchange);
/* Does key match the pattern with the variables expanded?  (client_id may
 * be NULL: {client_id} then stays as it is.) */
bool topic_pattern_allows(const char *pattern, const char *user, const char *vhost,
                          const char *client_id, const char *key);

/* Does a pattern compile?  0, or -1 with why in err. */
int pattern_check(const char *pattern, char *err, size_t errlen);

/* Free a vhost's access rules (vhost_free calls it). */
void vhost_free_permissions(struct vhost *vh);
void model_free_users(struct model *md);

#endif
