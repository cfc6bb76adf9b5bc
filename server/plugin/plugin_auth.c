/*
 * plugin_auth.c - see plugin_auth.h.
 */
#include "plugin/plugin_auth.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/log.h"

/* ---- registry ------------------------------------------------------------- */

static const char *owner_name(const struct amqpd_plugin *p)
{
	return p ? p->name : "(built in)";
}

static bool name_ok(const char *n)
{
	return n && *n && strlen(n) <= 64;
}

static int add_mechanism(struct plugin_host *h, struct amqpd_plugin *owner,
                         const struct amqpd_sasl_mechanism *m, void *ud)
{
	if (!m ||
	    m->struct_size < offsetof(struct amqpd_sasl_mechanism, finish) + sizeof(m->finish)) {
		log_error("plugin %s: SASL mechanism descriptor too small", owner_name(owner));
		return -1;
	}
	struct sasl_mech *rec = calloc(1, sizeof(*rec));
	if (!rec)
		return -1;
	memcpy(&rec->vt, m, m->struct_size < sizeof(rec->vt) ? m->struct_size : sizeof(rec->vt));
	if (!name_ok(rec->vt.name) || !rec->vt.start || !rec->vt.finish) {
		log_error("plugin %s: SASL mechanism is missing a name, start or finish",
		          owner_name(owner));
		free(rec);
		return -1;
	}
	if (plugin_auth_mechanism(h, rec->vt.name, strlen(rec->vt.name))) {
		log_error("plugin %s: SASL mechanism %s is already registered", owner_name(owner),
		          rec->vt.name);
		free(rec);
		return -1;
	}
	if (!(rec->name = strdup(rec->vt.name))) {
		free(rec);
		return -1;
	}
	rec->vt.name = rec->name;
	rec->owner = owner;
	rec->ud = ud;
	struct sasl_mech **pp = &h->mechs;
	while (*pp)
		pp = &(*pp)->next;
	*pp = rec;
	log_info("SASL mechanism %s registered by %s", rec->name,
	         owner ? owner->name : "the broker");
	return 0;
}

static int add_backend(struct plugin_host *h, struct amqpd_plugin *owner,
                       const struct amqpd_auth_backend *b, void *ud)
{
	if (!b || b->struct_size <
	              offsetof(struct amqpd_auth_backend, authenticate) + sizeof(b->authenticate)) {
		log_error("plugin %s: auth backend descriptor too small", owner_name(owner));
		return -1;
	}
	struct auth_backend *rec = calloc(1, sizeof(*rec));
	if (!rec)
		return -1;
	memcpy(&rec->vt, b, b->struct_size < sizeof(rec->vt) ? b->struct_size : sizeof(rec->vt));
	if (!name_ok(rec->vt.name) || !rec->vt.authenticate || strchr(rec->vt.name, ',')) {
		log_error("plugin %s: auth backend is missing a name or authenticate",
		          owner_name(owner));
		free(rec);
		return -1;
	}
	if (plugin_auth_backend(h, rec->vt.name)) {
		log_error("plugin %s: auth backend '%s' is already registered", owner_name(owner),
		          rec->vt.name);
		free(rec);
		return -1;
	}
	if (!(rec->name = strdup(rec->vt.name))) {
		free(rec);
		return -1;
	}
	rec->vt.name = rec->name;
	rec->owner = owner;
	rec->host = h;
	rec->ud = ud;
	struct auth_backend **pp = &h->auth_backends;
	while (*pp)
		pp = &(*pp)->next;
	*pp = rec;
	log_info("auth backend '%s' registered by %s", rec->name,
	         owner ? owner->name : "the broker");
	return 0;
}

amqpd_status plugin_auth_register_mechanism(amqpd_plugin *self,
                                            const struct amqpd_sasl_mechanism *m)
{
	if (!self)
		return AMQPD_ERR_NOT_ALLOWED;
	return add_mechanism(self->host, self, m, NULL) == 0 ? AMQPD_OK
	                                                     : AMQPD_ERR_PRECONDITION_FAILED;
}

amqpd_status plugin_auth_register_backend(amqpd_plugin *self, const struct amqpd_auth_backend *b)
{
	if (!self)
		return AMQPD_ERR_NOT_ALLOWED;
	return add_backend(self->host, self, b, NULL) == 0 ? AMQPD_OK
	                                                   : AMQPD_ERR_PRECONDITION_FAILED;
}

void plugin_auth_invalidate(amqpd_plugin *self)
{
	if (self)
		plugin_auth_bump_epoch(self->host);
}

int plugin_auth_add_builtin_mechanism(struct plugin_host *h, const struct amqpd_sasl_mechanism *m,
                                      void *ud)
{
	return add_mechanism(h, NULL, m, ud);
}

int plugin_auth_add_builtin_backend(struct plugin_host *h, const struct amqpd_auth_backend *b,
                                    void *ud)
{
	return add_backend(h, NULL, b, ud);
}

const struct sasl_mech *plugin_auth_mechanism(const struct plugin_host *h, const char *name,
                                              size_t len)
{
	for (const struct sasl_mech *m = h->mechs; m; m = m->next)
		if (strlen(m->name) == len && memcmp(m->name, name, len) == 0)
			return m;
	return NULL;
}

const struct auth_backend *plugin_auth_backend(const struct plugin_host *h, const char *name)
{
	for (const struct auth_backend *b = h->auth_backends; b; b = b->next)
		if (strcmp(b->name, name) == 0)
			return b;
	return NULL;
}

void plugin_auth_free_all(struct plugin_host *h)
{
	while (h->mechs) {
		struct sasl_mech *m = h->mechs;
		h->mechs = m->next;
		free(m->name);
		free(m);
	}
	while (h->auth_backends) {
		struct auth_backend *b = h->auth_backends;
		h->auth_backends = b->next;
		free(b->name);
		free(b);
	}
}

/* ---- calls ------------------------------------------------------------------ */

struct auth_call {
	const struct auth_backend *b;
	const char *what;
	auth_done_fn done;
	void *ctx;
	bool cancelled;
	bool is_login;
	bool answered_now; /* the callback answered synchronously */
	struct amqpd_request *req;
	struct amqpd_auth_result res;
};

static void *backend_ud(const struct auth_backend *b)
{
	return b->owner ? b->owner->userdata : b->ud;
}

void plugin_auth_release_user(const struct auth_backend *b, void *user_state)
{
	if (user_state && b->vt.release_user)
		b->vt.release_user(backend_ud(b), user_state);
}

/* What the backend answered, made one of OK, DECLINED, PENDING or an error. */
static amqpd_status normalise(const struct auth_backend *b, const char *what, amqpd_status st)
{
	if (st == AMQPD_OK || st == AMQPD_DECLINED || st == AMQPD_PENDING)
		return st;
	if (AMQPD_IS_ERROR(st))
		return st;
	log_error("auth backend '%s': %s returned status %d, which it may not; taken as a refusal",
	          b->name, what, (int)st);
	return AMQPD_ERR_REPLY(403);
}

static void call_done(void *arg, amqpd_status st)
{
	struct auth_call *c = arg;
	if (c->answered_now) {
		log_error("auth backend '%s': %s answered and also completed; the late answer is "
		          "ignored",
		          c->b->name, c->what);
	} else {
		st = normalise(c->b, c->what, st);
		if (st == AMQPD_PENDING) {
			log_error(
			    "auth backend '%s': %s completed with PENDING; taken as a refusal",
			    c->b->name, c->what);
			st = AMQPD_ERR_REPLY(403);
		}
		if (!c->cancelled) /* done() takes user_state by clearing it */
			c->done(c->ctx, st, c->is_login ? &c->res : NULL);
		if (c->is_login && c->res.user_state)
			plugin_auth_release_user(c->b, c->res.user_state);
	}
	free(c);
}

static struct auth_call *call_new(const struct auth_backend *b, const char *what, bool login,
                                  auth_done_fn done, void *ctx)
{
	struct auth_call *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->b = b;
	c->what = what;
	c->done = done;
	c->ctx = ctx;
	c->is_login = login;
	c->res.struct_size = sizeof(c->res);
	c->req = plugin_host_request_new(b->host, b->owner, what, call_done, c);
	if (!c->req) {
		free(c);
		return NULL;
	}
	return c;
}

/* After the callback: hand the call out (pending) or finish it now. */
static amqpd_status call_finish(struct auth_call *c, amqpd_status st, struct amqpd_auth_result *res,
                                struct auth_call **out)
{
	st = normalise(c->b, c->what, st);
	if (st == AMQPD_PENDING) {
		*out = c;
		return st;
	}
	if (res)
		*res = c->res;
	if (plugin_host_request_completed(c->req)) {
		/* It also called complete(): the request is queued and will
		 * come to call_done, which frees the call. */
		c->answered_now = true;
		if (c->res.user_state && !res)
			plugin_auth_release_user(c->b, c->res.user_state);
		return st;
	}
	free(c->req);
	free(c);
	return st;
}

amqpd_status plugin_auth_authenticate(const struct auth_backend *b,
                                      const struct amqpd_auth_login *login,
                                      struct amqpd_auth_result *res, auth_done_fn done, void *ctx,
                                      struct auth_call **call)
{
	*call = NULL;
	struct auth_call *c = call_new(b, "authenticate", true, done, ctx);
	if (!c) {
		snprintf(res->reason, sizeof(res->reason), "out of memory");
		return AMQPD_ERR_ERRNO(ENOMEM);
	}
	amqpd_status st = b->vt.authenticate(backend_ud(b), login, &c->res, c->req);
	if (st != AMQPD_OK && st != AMQPD_PENDING && c->res.user_state) {
		plugin_auth_release_user(b, c->res.user_state); /* not a login */
		c->res.user_state = NULL;
	}
	return call_finish(c, st, res, call);
}

amqpd_status plugin_auth_check_vhost(const struct auth_backend *b,
                                     const struct amqpd_auth_user *user, const char *vhost,
                                     auth_done_fn done, void *ctx, struct auth_call **call)
{
	*call = NULL;
	if (!b->vt.check_vhost)
		return AMQPD_DECLINED;
	struct auth_call *c = call_new(b, "check_vhost", false, done, ctx);
	if (!c)
		return AMQPD_ERR_ERRNO(ENOMEM);
	return call_finish(c, b->vt.check_vhost(backend_ud(b), user, vhost, c->req), NULL, call);
}

amqpd_status plugin_auth_check_resource(const struct auth_backend *b,
                                        const struct amqpd_auth_user *user, const char *vhost,
                                        enum amqpd_auth_resource kind, const char *name,
                                        enum amqpd_auth_permission perm, auth_done_fn done,
                                        void *ctx, struct auth_call **call)
{
	*call = NULL;
	if (!b->vt.check_resource)
		return AMQPD_DECLINED;
	struct auth_call *c = call_new(b, "check_resource", false, done, ctx);
	if (!c)
		return AMQPD_ERR_ERRNO(ENOMEM);
	return call_finish(
	    c, b->vt.check_resource(backend_ud(b), user, vhost, kind, name, perm, c->req), NULL,
	    call);
}

amqpd_status plugin_auth_check_topic(const struct auth_backend *b,
                                     const struct amqpd_auth_user *user, const char *vhost,
                                     const char *exchange, const char *key,
                                     enum amqpd_auth_permission perm, auth_done_fn done, void *ctx,
                                     struct auth_call **call)
{
	*call = NULL;
	if (!b->vt.check_topic)
		return AMQPD_DECLINED;
	struct auth_call *c = call_new(b, "check_topic", false, done, ctx);
	if (!c)
		return AMQPD_ERR_ERRNO(ENOMEM);
	return call_finish(
	    c, b->vt.check_topic(backend_ud(b), user, vhost, exchange, key, perm, c->req), NULL,
	    call);
}

void plugin_auth_cancel(struct auth_call *call)
{
	if (call)
		call->cancelled = true;
}
