/*
 * auth_internal.c - the `internal` user backend: users, permissions and
 * topic permissions kept in the model (user.h) and in the definitions,
 * registered through the same vtable as a plugin's (amqpd/auth.h).  Always
 * answers at once.
 */
#include "session/auth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"
#include "model/user.h"
#include "model/vhost.h"
#include "plugin/plugin_auth.h"
#include "util/password.h"

static amqpd_status internal_authenticate(void *ud, const struct amqpd_auth_login *l,
                                          struct amqpd_auth_result *out, amqpd_request *req)
{
	struct model *md = ud;
	(void)req;
	struct user *u = model_user(md, l->username);
	if (u && l->update) {
		/* As RabbitMQ: an internal user's secret does not expire, so a
		 * new one is taken without a check. */
		snprintf(out->tags, sizeof(out->tags), "%s", u->tags);
		return AMQPD_OK;
	}
	if (!u) {
		snprintf(out->reason, sizeof(out->reason), "user '%s' - invalid credentials",
		         l->username);
		return AMQPD_ERR_REPLY(403);
	}
	if (!l->preauthenticated && l->secret_len == 0) {
		snprintf(out->reason, sizeof(out->reason),
		         "user '%s' attempted to log in with a blank password, which is prohibited "
		         "by the internal authN backend.",
		         l->username);
		return AMQPD_ERR_REPLY(403);
	}
	if (!l->preauthenticated &&
	    (!*u->password_hash ||
	     !password_check(u->hashing_algorithm, u->password_hash, l->secret, l->secret_len))) {
		snprintf(out->reason, sizeof(out->reason), "user '%s' - invalid credentials",
		         l->username);
		return AMQPD_ERR_REPLY(403);
	}
	snprintf(out->tags, sizeof(out->tags), "%s", u->tags);
	return AMQPD_OK;
}

static amqpd_status internal_check_vhost(void *ud, const struct amqpd_auth_user *user,
                                         const char *vhost, amqpd_request *req)
{
	struct model *md = ud;
	(void)req;
	struct vhost *vh = model_vhost(md, vhost, strlen(vhost));
	return vh && vhost_permission(vh, user->username) ? AMQPD_OK : AMQPD_ERR_REPLY(403);
}

static amqpd_status internal_check_resource(void *ud, const struct amqpd_auth_user *user,
                                            const char *vhost, enum amqpd_auth_resource kind,
                                            const char *name, enum amqpd_auth_permission perm,
                                            amqpd_request *req)
{
	struct model *md = ud;
	(void)kind;
	(void)req;
	struct vhost *vh = model_vhost(md, vhost, strlen(vhost));
	const struct permission *p = vh ? vhost_permission(vh, user->username) : NULL;
	return permission_allows(p, (enum perm_kind)perm, name, strlen(name))
	           ? AMQPD_OK
	           : AMQPD_ERR_REPLY(403);
}

static amqpd_status internal_check_topic(void *ud, const struct amqpd_auth_user *user,
                                         const char *vhost, const char *exchange, const char *key,
                                         enum amqpd_auth_permission perm, amqpd_request *req)
{
	struct model *md = ud;
	(void)req;
	struct vhost *vh = model_vhost(md, vhost, strlen(vhost));
	const struct topic_permission *t =
	    vh ? vhost_topic_permission(vh, user->username, exchange) : NULL;
	if (!t)
		return AMQPD_OK; /* no topic permission for it: allowed, as RabbitMQ */
	const char *pattern = perm == AMQPD_PERM_WRITE ? t->write : t->read;
	return topic_pattern_allows(pattern, user->username, vhost,
	                            user->conn ? user->conn->client_name : NULL, key)
	           ? AMQPD_OK
	           : AMQPD_ERR_REPLY(403);
}

int auth_register_internal(struct plugin_host *h, struct model *md)
{
	static const struct amqpd_auth_backend internal = {
	    sizeof(struct amqpd_auth_backend),
	    "internal",
	    internal_authenticate,
	    internal_check_vhost,
	    internal_check_resource,
	    internal_check_topic,
	    NULL,
	};
	if (plugin_auth_backend(h, "internal"))
		return 0;
	return plugin_auth_add_builtin_backend(h, &internal, md);
}

/* ---- configuration ------------------------------------------------------------ */

void auth_config_defaults(struct auth_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->timeout_ms = 15000;
	cfg->failure_delay_ms = 3000;
	cfg->cert_login_from = CERT_LOGIN_CN;
	cfg->cert_san_type = "dns";
}

int auth_config_resolve(struct auth_config *cfg, const struct plugin_host *h, char *err,
                        size_t errlen)
{
	const char *names = cfg->backend_names ? cfg->backend_names : "internal";
	cfg->nchain = 0;
	cfg->internal = plugin_auth_backend(h, "internal");
	for (const char *p = names; *p;) {
		while (*p == ',' || *p == ' ')
			p++;
		const char *e = p;
		while (*e && *e != ',' && *e != ' ')
			e++;
		if (e == p)
			break;
		char name[80];
		snprintf(name, sizeof(name), "%.*s", (int)(e - p), p);
		const struct auth_backend *b = plugin_auth_backend(h, name);
		if (!b) {
			int n =
			    snprintf(err, errlen, "auth backend '%s' is not loaded (known:", name);
			for (const struct auth_backend *k = h->auth_backends; k && n > 0;
			     k = k->next)
				if ((size_t)n < errlen)
					n += snprintf(err + n, errlen - (size_t)n, " %s", k->name);
			if (n > 0 && (size_t)n < errlen)
				snprintf(err + n, errlen - (size_t)n, ")");
			return -1;
		}
		if (cfg->nchain == AUTH_MAX_BACKENDS) {
			snprintf(err, errlen, "more than %d auth backends", AUTH_MAX_BACKENDS);
			return -1;
		}
		cfg->chain[cfg->nchain++] = b;
		p = e;
	}
	if (cfg->nchain == 0) {
		snprintf(err, errlen, "no auth backend named");
		return -1;
	}
	return 0;
}

bool auth_loopback_only(const struct auth_config *cfg, const char *user)
{
	return user_has_tag(cfg->loopback_users ? cfg->loopback_users : "guest", user);
}
