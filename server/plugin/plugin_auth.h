/*
 * plugin_auth.h - the SASL mechanisms and user backends registered through
 * amqpd/auth.h, by plugins or built in, and the calls into them.
 *
 * Built-ins (the PLAIN, AMQPLAIN and EXTERNAL mechanisms, the internal
 * backend) use the same vtables as plugins; they are added with
 * plugin_auth_add_builtin_*() and get the userdata given there.
 *
 * A call that a backend answers later (AMQPD_PENDING) is a struct
 * auth_call: its done() runs on the loop thread when the backend
 * completes, unless the caller cancelled it first (the connection went, or
 * gave up after its timeout); the record lives until the backend has
 * completed, so a late answer is always safe.  Statuses a callback may not
 * return are logged and taken as a refusal.
 *
 * Ownership: the host owns the registry (freed by plugin_auth_free_all at
 * unload).  Threading: loop thread, except what the ABI allows (complete).
 */
#ifndef PLUGIN_AUTH_H
#define PLUGIN_AUTH_H

#include <stdbool.h>
#include <stddef.h>

#include "amqpd/auth.h"
#include "plugin/plugin_host.h"

struct sasl_mech {
	struct sasl_mech *next;
	char *name;
	struct amqpd_sasl_mechanism vt;
	struct amqpd_plugin *owner; /* NULL: built in */
	void *ud;
};

struct auth_backend {
	struct auth_backend *next;
	char *name;
	struct amqpd_auth_backend vt;
	struct amqpd_plugin *owner; /* NULL: built in */
	struct plugin_host *host;
	void *ud;
};

/* The userdata a mechanism's callbacks get. */
static inline void *plugin_auth_mech_ud(const struct sasl_mech *m)
{
	return m->owner ? m->owner->userdata : m->ud;
}

/* The host API members (amqpd/plugin.h). */
amqpd_status plugin_auth_register_mechanism(amqpd_plugin *self,
                                            const struct amqpd_sasl_mechanism *m);
amqpd_status plugin_auth_register_backend(amqpd_plugin *self, const struct amqpd_auth_backend *b);
void plugin_auth_invalidate(amqpd_plugin *self);

/* Built-ins.  0, or -1 (logged) when incomplete or the name is taken. */
int plugin_auth_add_builtin_mechanism(struct plugin_host *h, const struct amqpd_sasl_mechanism *m,
                                      void *ud);
int plugin_auth_add_builtin_backend(struct plugin_host *h, const struct amqpd_auth_backend *b,
                                    void *ud);
/* Permission answers cached anywhere are stale from now on. */
static inline void plugin_auth_bump_epoch(struct plugin_host *h)
{
	h->auth_epoch++;
}

const struct sasl_mech *plugin_auth_mechanism(const struct plugin_host *h, const char *name,
                                              size_t len);
const struct auth_backend *plugin_auth_backend(const struct plugin_host *h, const char *name);
void plugin_auth_free_all(struct plugin_host *h);

/* ---- calls --------------------------------------------------------------- */

struct auth_call;
/* res: the login's result (authenticate), NULL for checks. */
typedef void (*auth_done_fn)(void *ctx, amqpd_status status, struct amqpd_auth_result *res);

/*
 * Each returns the answer (AMQPD_OK, AMQPD_DECLINED or an error), with
 * *res filled for authenticate; or AMQPD_PENDING with *call set: done(ctx,
 * status, res) follows on the loop thread unless plugin_auth_cancel(*call)
 * comes first.  A check the backend lacks declines.
 */
amqpd_status plugin_auth_authenticate(const struct auth_backend *b,
                                      const struct amqpd_auth_login *login,
                                      struct amqpd_auth_result *res, auth_done_fn done, void *ctx,
                                      struct auth_call **call);
amqpd_status plugin_auth_check_vhost(const struct auth_backend *b,
                                     const struct amqpd_auth_user *user, const char *vhost,
                                     auth_done_fn done, void *ctx, struct auth_call **call);
amqpd_status plugin_auth_check_resource(const struct auth_backend *b,
                                        const struct amqpd_auth_user *user, const char *vhost,
                                        enum amqpd_auth_resource kind, const char *name,
                                        enum amqpd_auth_permission perm, auth_done_fn done,
                                        void *ctx, struct auth_call **call);
amqpd_status plugin_auth_check_topic(const struct auth_backend *b,
                                     const struct amqpd_auth_user *user, const char *vhost,
                                     const char *exchange, const char *key,
                                     enum amqpd_auth_permission perm, auth_done_fn done, void *ctx,
                                     struct auth_call **call);
/* done() will not run; a late answer is dropped (a login's user_state is
 * released). */
void plugin_auth_cancel(struct auth_call *call);
void plugin_auth_release_user(const struct auth_backend *b, void *user_state);

#endif
