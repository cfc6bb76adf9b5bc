/*
 * login.c - see login.h.
 */
#include "session/login.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "model/model.h"
#include "model/user.h"
#include "model/vhost.h"
#include "plugin/plugin_auth.h"
#include "session/auth.h"
#include "session/conn.h"
#include "session/conn_priv.h"
#include "session/session.h"
#include "util/log.h"

/* The login's scratch space (login.h); NULL out of memory. */
static struct login_scratch *scratch(struct conn_auth *a)
{
	if (!a->x)
		a->x = calloc(1, sizeof(*a->x));
	return a->x;
}

static struct conn_auth *auth_of(struct conn *c)
{
	if (!c->auth) {
		c->auth = calloc(1, sizeof(*c->auth));
		if (c->auth && !scratch(c->auth)) {
			free(c->auth);
			c->auth = NULL;
		}
		if (c->auth) {
			struct amqpd_auth_conn *i = &c->auth->info;
			i->struct_size = sizeof(*i);
			i->peer_addr = c->peer_addr;
			i->peer_port = c->peer_port;
			i->loopback = c->peer_loopback;
			i->tls = c->peer_tls;
			i->peer_cert_verified = c->cert_verified;
			i->peer_cert_dn = c->cert_dn;
			i->peer_cert_cn = c->cert_cn;
			i->peer_cert_sans = (const char *const *)c->cert_sans;
			i->peer_cert_nsans = c->cert_nsans;
		}
	}
	return c->auth;
}

static int64_t wall_ms(const struct session *s)
{
	if (s->wall_ms)
		return s->wall_ms();
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void login_mechanisms(struct conn *c, char *buf, size_t len)
{
	struct conn_auth *a = auth_of(c);
	size_t n = 0;
	buf[0] = 0;
	for (const struct sasl_mech *m = c->s->md->plugins->mechs; m && a; m = m->next) {
		if (m->vt.offer && !m->vt.offer(plugin_auth_mech_ud(m), &a->info))
			continue;
		int w = snprintf(buf + n, len - n, "%s%s", n ? " " : "", m->name);
		if (w < 0 || (size_t)w >= len - n)
			break;
		n += (size_t)w;
	}
}

static void forget_secret(struct conn_auth *a)
{
	if (a->secret) {
		memset(a->secret, 0, a->secret_len);
		free(a->secret);
	}
	a->secret = NULL;
	a->secret_len = 0;
}

static void end_mechanism(struct conn_auth *a)
{
	if (a->mech && a->mech_started)
		a->mech->vt.finish(plugin_auth_mech_ud(a->mech), a->mech_state);
	a->mech_started = false;
	a->mech_state = NULL;
}

static void call_started(struct conn *c, const struct auth_backend *b)
{
	c->auth->asking = b;
	c->auth_wait = true;
	c->auth_deadline = c->now + c->s->auth.timeout_ms;
	conn_deadlines_changed(c);
}

static void call_over(struct conn *c)
{
	c->auth->call = NULL;
	c->auth->asking = NULL;
	c->auth->step = STEP_NONE;
	c->auth_wait = false;
	c->auth_deadline = -1;
	conn_deadlines_changed(c);
	conn_wake(c);
}

/* ---- login failure ------------------------------------------------------------ */

/* As RabbitMQ: the reason goes to the log only.  A client with
 * authentication_failure_close is told that the login was refused and
 * the socket closes on its close-ok, or after the failure delay; any other
 * client (and every handshake error: a malformed response, an unknown
 * mechanism, tell false) is told nothing and read no more, and the socket
 * closes after the failure delay, so that guessing is slow. */
static void fail(struct conn *c, const char *reason, bool tell)
{
	struct conn_auth *a = c->auth;
	const char *mech = a && a->mech ? a->mech->name : "?";
	if (tell)
		log_error("%s: %s login refused: %s", c->name, mech, reason);
	else
		log_error("%s: closing connection: %s", c->name, reason);
	forget_secret(a);
	end_mechanism(a);
	a->failed = true;
	if (tell && c->cap_auth_failure_close) {
		char text[256];
		snprintf(text, sizeof(text),
		         "ACCESS_REFUSED - Login was refused using authentication mechanism %s. "
		         "For details see the broker logfile.",
		         mech);
		conn_send_close(c, AMQP_ACCESS_REFUSED, text, 0);
		c->auth_wait = false; /* for the close-ok (nothing else is taken) */
	} else {
		c->state = CONN_CLOSING; /* nothing more is read or answered */
		c->auth_wait = true;
	}
	c->auth_deadline = c->now + c->s->auth.failure_delay_ms;
	conn_deadlines_changed(c);
	conn_wake(c);
}

static void login_failed(struct conn *c, const char *reason)
{
	fail(c, reason, true);
}

/* ---- the backend chain ---------------------------------------------------------- */

static void logged_in(struct conn *c, const struct auth_backend *b, struct amqpd_auth_result *r);
static void ask_next(struct conn *c);

static void login_answer(void *ctx, amqpd_status st, struct amqpd_auth_result *r)
{
	struct conn *c = ctx;
	struct conn_auth *a = c->auth;
	const struct auth_backend *b = a->asking;
	call_over(c);
	if (c->state >= CONN_CLOSING)
		return; /* closed meanwhile (the call is cancelled then; defensive) */
	if (st == AMQPD_OK) {
		logged_in(c, b, r);
		return;
	}
	if (r && r->reason[0])
		snprintf(a->x->reason, sizeof(a->x->reason), "%s", r->reason);
	ask_next(c);
}

static void ask_next(struct conn *c)
{
	struct conn_auth *a = c->auth;
	const struct auth_config *cfg = &c->s->auth;
	while (a->next < cfg->nchain) {
		const struct auth_backend *b = cfg->chain[a->next++];
		struct amqpd_auth_login l = {sizeof(l),  a->username, a->secret, a->secret_len,
		                             a->preauth, &a->info,    false,     NULL};
		struct amqpd_auth_result r;
		memset(&r, 0, sizeof(r));
		r.struct_size = sizeof(r);
		struct auth_call *call;
		amqpd_status st = plugin_auth_authenticate(b, &l, &r, login_answer, c, &call);
		if (st == AMQPD_PENDING) {
			a->call = call;
			a->step = STEP_LOGIN;
			call_started(c, b);
			return;
		}
		if (st == AMQPD_OK) {
			logged_in(c, b, &r);
			return;
		}
		if (r.reason[0])
			snprintf(a->x->reason, sizeof(a->x->reason), "%s", r.reason);
		else if (st != AMQPD_DECLINED)
			snprintf(a->x->reason, sizeof(a->x->reason),
			         "user '%s' refused by backend '%s'", a->username, b->name);
	}
	char reason[300];
	snprintf(reason, sizeof(reason), "%s",
	         a->x->reason[0] ? a->x->reason : "no auth backend accepted the login");
	login_failed(c, reason);
}

static void logged_in(struct conn *c, const struct auth_backend *b, struct amqpd_auth_result *r)
{
	struct conn_auth *a = c->auth;
	const char *name = r->username[0] ? r->username : a->username;
	snprintf(c->user, sizeof(c->user), "%s", name);
	free(a->tags);
	a->tags = strdup(r->tags);
	a->backend = b;
	a->user_state = r->user_state;
	r->user_state = NULL;
	forget_secret(a);
	end_mechanism(a);
	if (auth_loopback_only(&c->s->auth, c->user) && !c->peer_loopback) {
		char reason[320];
		snprintf(reason, sizeof(reason), "user '%s' can only connect via localhost",
		         c->user);
		login_failed(c, reason);
		return;
	}
	a->user =
	    (struct amqpd_auth_user){sizeof(a->user), c->user, a->tags, a->user_state, &a->info};
	if (r->expires_at_ms && r->expires_at_ms <= (uint64_t)INT64_MAX / 2) {
		int64_t left = (int64_t)r->expires_at_ms - wall_ms(c->s);
		c->expires_at = c->now + (left > 0 ? left : 0);
		conn_deadlines_changed(c);
	}
	conn_send_tune(c);
}

/* The mechanism's answer: a challenge, or credentials for the chain. */
static void mechanism_said(struct conn *c, amqpd_status st, const struct amqpd_sasl_out *out,
                           const char *err)
{
	struct conn_auth *a = c->auth;
	if (st != AMQPD_OK) {
		/* A response that cannot be parsed: a handshake error (502 at
		 * RabbitMQ), told to no one. */
		fail(c, err[0] ? err : "the SASL response was refused", false);
		return;
	}
	if (out->challenge) {
		struct amqp_method m = {.id = AMQP_CONNECTION_SECURE};
		m.u.connection_secure.challenge =
		    (struct amqp_bytes){out->challenge, out->challenge_len};
		conn_send_method(c, 0, &m);
		c->state = CONN_AWAIT_SECURE_OK;
		return;
	}
	size_t ul = out->username_len;
	if (ul > 255 || (ul && memchr(out->username, 0, ul))) {
		/* Cut, it would name another user. */
		fail(c, "SYNTAX_ERROR - the user name is longer than 255 bytes or holds a NUL",
		     false);
		return;
	}
	free(a->username);
	a->username = malloc(ul + 1);
	a->secret = malloc(out->secret_len + 1);
	if (!a->username || !a->secret) {
		login_failed(c, "out of memory");
		return;
	}
	memcpy(a->username, out->username, ul);
	a->username[ul] = 0;
	if (out->secret_len)
		memcpy(a->secret, out->secret, out->secret_len);
	a->secret_len = out->secret_len;
	a->preauth = out->preauthenticated;
	snprintf(c->user, sizeof(c->user), "%s", a->username);
	a->next = 0;
	a->x->reason[0] = 0;
	ask_next(c);
}

void login_start_ok(struct conn *c, const struct amqp_connection_start_ok *s)
{
	struct conn_auth *a = auth_of(c);
	if (!a) {
		conn_error(c, AMQP_INTERNAL_ERROR, 0, "INTERNAL_ERROR - out of memory");
		return;
	}
	struct amqp_field_value v;
	if (amqp_table_get(s->client_properties, "connection_name", &v) && v.type == 'S' &&
	    !c->client_name) {
		c->client_name = strndup((const char *)v.v.str.ptr, v.v.str.len);
		a->info.client_name = c->client_name;
	}
	const struct sasl_mech *m = plugin_auth_mechanism(
	    c->s->md->plugins, (const char *)s->mechanism.ptr, s->mechanism.len);
	if (m && m->vt.offer && !m->vt.offer(plugin_auth_mech_ud(m), &a->info))
		m = NULL; /* not offered here: as unknown */
	if (!m) {
		/* As RabbitMQ: a handshake error, told to no one; the socket
		 * closes after the failure delay. */
		char reason[300];
		snprintf(reason, sizeof(reason),
		         "COMMAND_INVALID - unknown authentication mechanism '%.*s'",
		         (int)(s->mechanism.len > 64 ? 64 : s->mechanism.len),
		         (const char *)s->mechanism.ptr);
		fail(c, reason, false);
		return;
	}
	a->mech = m;
	struct amqpd_sasl_out out;
	memset(&out, 0, sizeof(out));
	out.struct_size = sizeof(out);
	char err[256] = "";
	a->mech_started = true;
	amqpd_status st = m->vt.start(plugin_auth_mech_ud(m), &a->info, s->response.ptr,
	                              s->response.len, &a->mech_state, &out, err, sizeof(err));
	mechanism_said(c, st, &out, err);
}

void login_secure_ok(struct conn *c, const struct amqp_connection_secure_ok *s)
{
	struct conn_auth *a = c->auth;
	c->state = CONN_AWAIT_START_OK; /* until the mechanism says otherwise */
	struct amqpd_sasl_out out;
	memset(&out, 0, sizeof(out));
	out.struct_size = sizeof(out);
	char err[256] = "";
	amqpd_status st = AMQPD_ERR_REPLY(403);
	if (a && a->mech && a->mech->vt.step)
		st = a->mech->vt.step(plugin_auth_mech_ud(a->mech), a->mech_state, s->response.ptr,
		                      s->response.len, &out, err, sizeof(err));
	mechanism_said(c, st, &out, err);
}

/* ---- access questions --------------------------------------------------------------- */

/* The backend to ask for index i: the one that logged the user in first,
 * then the rest of the chain in order.  NULL past the end. */
static const struct auth_backend *nth_backend(struct conn *c, size_t i)
{
	const struct auth_config *cfg = &c->s->auth;
	const struct auth_backend *first = c->auth->backend;
	if (i == 0)
		return first;
	for (size_t k = 0, n = 0; k < cfg->nchain; k++) {
		if (cfg->chain[k] == first)
			continue;
		if (++n == i)
			return cfg->chain[k];
	}
	return NULL;
}

static amqpd_status ask_one(struct conn *c, const struct auth_backend *b, const struct access_q *q,
                            const char *vhost, auth_done_fn done, struct auth_call **call)
{
	struct conn_auth *a = c->auth;
	/* A backend's own record goes to that backend only: another one
	 * asked after it declined cannot tell it is not its own. */
	a->user.user_state = b == a->backend ? a->user_state : NULL;
	switch (q->kind) {
	case ACCESS_VHOST:
		return plugin_auth_check_vhost(b, &a->user, vhost, done, c, call);
	case ACCESS_RESOURCE:
		return plugin_auth_check_resource(b, &a->user, vhost, q->resource, q->name, q->perm,
		                                  done, c, call);
	case ACCESS_TOPIC:
	default:
		return plugin_auth_check_topic(b, &a->user, vhost, q->name, q->key, q->perm, done,
		                               c, call);
	}
}

static void q_answer(void *ctx, amqpd_status st, struct amqpd_auth_result *r);

/* Ask q from backend index *next on: 0 allowed, 403 refused, -1 pending
 * (then q is kept in a->x for the answer). */
static int ask_from(struct conn *c, const char *vhost, const struct access_q *q, size_t *next)
{
	struct conn_auth *a = c->auth;
	const struct auth_backend *b;
	while ((b = nth_backend(c, *next)) != NULL) {
		(*next)++;
		struct auth_call *call;
		amqpd_status st = ask_one(c, b, q, vhost, q_answer, &call);
		if (st == AMQPD_PENDING) {
			if (!scratch(a)) {
				plugin_auth_cancel(call);
				return 403;
			}
			if (q != &a->x->q)
				a->x->q = *q;
			a->x->q_next = *next;
			a->call = call;
			call_started(c, b);
			return -1;
		}
		if (st == AMQPD_OK)
			return 0;
		if (st != AMQPD_DECLINED)
			return 403;
	}
	/* Everyone declined: topics are allowed, the rest refused. */
	return q->kind == ACCESS_TOPIC ? 0 : 403;
}

static void open_answered(struct conn *c, bool ok);

static void q_answer(void *ctx, amqpd_status st, struct amqpd_auth_result *r)
{
	(void)r;
	struct conn *c = ctx;
	struct conn_auth *a = c->auth;
	int step = a->step;
	call_over(c);
	if (c->state >= CONN_CLOSING)
		return;
	int verdict = st == AMQPD_OK ? 0 : st == AMQPD_DECLINED ? -2 : 403;
	const char *vhost = step == STEP_OPEN ? a->x->open_vhost : c->vh ? c->vh->name : "";
	if (verdict == -2) {
		verdict = ask_from(c, vhost, &a->x->q, &a->x->q_next);
		if (verdict < 0) {
			a->step = step; /* still waiting */
			return;
		}
	}
	if (step == STEP_OPEN) {
		open_answered(c, verdict == 0);
		return;
	}
	if (a->x->q_done)
		a->x->q_done(c, &a->x->q, verdict == 0);
	conn_replay_held(c);
}

int access_ask(struct conn *c, const struct access_q *q, access_done_fn done)
{
	struct conn_auth *a = c->auth;
	if (!a || !a->backend)
		return 403;
	size_t next = 0;
	int v = ask_from(c, c->vh ? c->vh->name : "", q, &next);
	if (v < 0) {
		a->step = STEP_CHECK;
		a->x->q_done = done;
		if (conn_hold_frame(c) < 0) {
			/* Nothing to replay: give up on the question. */
			plugin_auth_cancel(a->call);
			call_over(c);
			return 403;
		}
	}
	return v;
}

/* ---- connection.open -------------------------------------------------------------- */

struct user_usage {
	char *name;
	unsigned conns, channels;
};

static struct user_usage *usage(struct session *s, const char *user, bool create)
{
	struct user_usage *u = hmap_get(&s->user_usage, user, strlen(user));
	if (u || !create)
		return u;
	u = calloc(1, sizeof(*u));
	if (!u || !(u->name = strdup(user)) ||
	    hmap_put(&s->user_usage, u->name, strlen(u->name), u) < 0) {
		if (u)
			free(u->name);
		free(u);
		return NULL;
	}
	return u;
}

static void usage_drop(struct session *s, struct user_usage *u)
{
	if (u->conns || u->channels)
		return;
	hmap_del(&s->user_usage, u->name, strlen(u->name));
	free(u->name);
	free(u);
}

/* The vhost's and the user's connection limits, checked as RabbitMQ does
 * before the vhost access. */
static bool limits_ok(struct conn *c, struct vhost *vh)
{
	if (vh->max_connections >= 0 && vh->nconnections >= (uint64_t)vh->max_connections) {
		conn_error(c, AMQP_NOT_ALLOWED, AMQP_CONNECTION_OPEN,
		           "NOT_ALLOWED - access to vhost '%s' refused for user '%s': connection "
		           "limit (%lld) is reached",
		           vh->name, c->user, (long long)vh->max_connections);
		return false;
	}
	const struct user *u = model_user(c->s->md, c->user);
	const struct user_usage *uu = usage(c->s, c->user, false);
	unsigned have = uu ? uu->conns : 0;
	if (u && u->max_connections >= 0 && have >= (uint64_t)u->max_connections) {
		conn_error(c, AMQP_NOT_ALLOWED, AMQP_CONNECTION_OPEN,
		           "NOT_ALLOWED - connection refused for user '%s': user connection limit "
		           "(%lld) is reached",
		           c->user, (long long)u->max_connections);
		return false;
	}
	return true;
}

static void open_answered(struct conn *c, bool ok)
{
	struct conn_auth *a = c->auth;
	const char *vname = a->x->open_vhost;
	struct vhost *vh = model_vhost(c->s->md, vname, strlen(vname));
	if (!vh) {
		conn_error(c, AMQP_NOT_ALLOWED, AMQP_CONNECTION_OPEN,
		           "NOT_ALLOWED - vhost %s not found", vname);
		return;
	}
	if (!limits_ok(c, vh)) /* again: others may have opened meanwhile */
		return;
	if (!ok) {
		conn_error(c, AMQP_NOT_ALLOWED, AMQP_CONNECTION_OPEN,
		           "NOT_ALLOWED - access to vhost '%s' refused for user '%s'", vname,
		           c->user);
		return;
	}
	struct user_usage *uu = usage(c->s, c->user, true);
	if (!uu) {
		conn_error(c, AMQP_INTERNAL_ERROR, AMQP_CONNECTION_OPEN,
		           "INTERNAL_ERROR - out of memory");
		return;
	}
	uu->conns++;
	vh->nconnections++;
	a->counted = true;
	c->vh = vh;
	free(a->x); /* the login is over: channels' questions get one if they wait */
	a->x = NULL;
	conn_opened(c);
}

void login_open(struct conn *c, const struct amqp_connection_open *o)
{
	struct conn_auth *a = c->auth;
	snprintf(a->x->open_vhost, sizeof(a->x->open_vhost), "%.*s", (int)o->virtual_host.len,
	         (const char *)o->virtual_host.ptr);
	if (!model_vhost(c->s->md, a->x->open_vhost, strlen(a->x->open_vhost)) ||
	    memchr(o->virtual_host.ptr, 0, o->virtual_host.len)) {
		conn_error(c, AMQP_NOT_ALLOWED, AMQP_CONNECTION_OPEN,
		           "NOT_ALLOWED - vhost %.*s not found", (int)o->virtual_host.len,
		           (const char *)o->virtual_host.ptr);
		return;
	}
	if (!limits_ok(c, model_vhost(c->s->md, a->x->open_vhost, strlen(a->x->open_vhost))))
		return;
	struct access_q vq = {.kind = ACCESS_VHOST};
	size_t next = 0;
	int v = ask_from(c, a->x->open_vhost, &vq, &next);
	if (v < 0) {
		a->step = STEP_OPEN;
		return;
	}
	open_answered(c, v == 0);
}

/* A channel opened or closed: the user's channel count (max-channels). */
bool login_channel_opened(struct conn *c)
{
	const struct user *u = model_user(c->s->md, c->user);
	struct user_usage *uu = usage(c->s, c->user, true);
	if (!uu)
		return false;
	if (u && u->max_channels >= 0 && uu->channels >= (uint64_t)u->max_channels) {
		usage_drop(c->s, uu);
		return false;
	}
	uu->channels++;
	return true;
}

void login_channel_closed(struct conn *c)
{
	struct user_usage *uu = usage(c->s, c->user, false);
	if (uu && uu->channels) {
		uu->channels--;
		usage_drop(c->s, uu);
	}
}

/* ---- update-secret and expiry ------------------------------------------------------ */

static void update_answer(void *ctx, amqpd_status st, struct amqpd_auth_result *r);

static void update_done(struct conn *c, amqpd_status st, struct amqpd_auth_result *r)
{
	struct conn_auth *a = c->auth;
	if (st != AMQPD_OK || (r->username[0] && strcmp(r->username, c->user) != 0)) {
		if (r && r->user_state && r->user_state != a->user_state)
			plugin_auth_release_user(a->backend, r->user_state);
		if (r)
			r->user_state = NULL;
		log_error("%s: update-secret for user '%s' refused: %s", c->name, c->user,
		          st == AMQPD_OK      ? "the new secret is for another user"
		          : r && r->reason[0] ? r->reason
		                              : "refused by the backend");
		conn_error(c, AMQP_NOT_ALLOWED, AMQP_CONNECTION_UPDATE_SECRET,
		           "NOT_ALLOWED - New secret was refused by one of the backends");
		return;
	}
	if (r->user_state) {
		if (r->user_state != a->user_state) /* a backend may renew in place */
			plugin_auth_release_user(a->backend, a->user_state);
		a->user_state = r->user_state;
		r->user_state = NULL;
	}
	if (r->tags[0]) {
		char *t = strdup(r->tags);
		if (t) {
			free(a->tags);
			a->tags = t;
			a->user.tags = t;
		}
	}
	c->expires_at = -1;
	if (r->expires_at_ms && r->expires_at_ms <= (uint64_t)INT64_MAX / 2) {
		int64_t left = (int64_t)r->expires_at_ms - wall_ms(c->s);
		c->expires_at = c->now + (left > 0 ? left : 0);
	}
	conn_deadlines_changed(c);
	plugin_auth_bump_epoch((struct plugin_host *)c->s->md->plugins); /* new scopes */
	struct amqp_method ok = {.id = AMQP_CONNECTION_UPDATE_SECRET_OK};
	conn_send_method(c, 0, &ok);
	log_info("%s: user '%s' updated its secret", c->name, c->user);
}

static void update_answer(void *ctx, amqpd_status st, struct amqpd_auth_result *r)
{
	struct conn *c = ctx;
	call_over(c);
	if (c->state >= CONN_CLOSING)
		return;
	update_done(c, st, r);
}

void login_update_secret(struct conn *c, const struct amqp_connection_update_secret *u)
{
	struct conn_auth *a = c->auth;
	if (!a || !a->backend) {
		conn_error(c, AMQP_NOT_ALLOWED, AMQP_CONNECTION_UPDATE_SECRET,
		           "NOT_ALLOWED - New secret was refused by one of the backends");
		return;
	}
	struct amqpd_auth_login l = {
	    sizeof(l), c->user, u->new_secret.ptr, u->new_secret.len, false,
	    &a->info,  true,    a->user_state};
	struct amqpd_auth_result r;
	memset(&r, 0, sizeof(r));
	r.struct_size = sizeof(r);
	struct auth_call *call;
	amqpd_status st = plugin_auth_authenticate(a->backend, &l, &r, update_answer, c, &call);
	if (st == AMQPD_PENDING) {
		a->call = call;
		a->step = STEP_UPDATE;
		call_started(c, a->backend);
		return;
	}
	update_done(c, st, &r);
}

void login_tick(struct conn *c, int64_t now)
{
	struct conn_auth *a = c->auth;
	if (a && c->auth_deadline >= 0 && now >= c->auth_deadline) {
		if (a->failed) {
			c->auth_deadline = -1;
			conn_close_after_flush(c); /* the failure delay is over */
			return;
		}
		const char *bname = a->asking ? a->asking->name : "?";
		int step = a->step;
		plugin_auth_cancel(a->call);
		call_over(c);
		log_error("%s: auth backend '%s' did not answer within %u ms", c->name, bname,
		          c->s->auth.timeout_ms);
		if (step == STEP_LOGIN) {
			char reason[200];
			snprintf(reason, sizeof(reason), "auth backend '%s' did not answer in time",
			         bname);
			a->next = c->s->auth.nchain; /* no further backend either */
			login_failed(c, reason);
		} else if (step == STEP_OPEN) {
			open_answered(c, false);
		} else if (step == STEP_UPDATE) {
			conn_error(c, AMQP_NOT_ALLOWED, AMQP_CONNECTION_UPDATE_SECRET,
			           "NOT_ALLOWED - New secret was refused by one of the backends");
		} else {
			if (a->x->q_done)
				a->x->q_done(c, &a->x->q, false);
			conn_replay_held(c);
		}
		return;
	}
	if (c->expires_at >= 0 && now >= c->expires_at && c->state == CONN_OPEN) {
		c->expires_at = -1;
		log_warning("%s: closing connection: the credential of user '%s' expired", c->name,
		            c->user);
		conn_error(c, AMQP_CONNECTION_FORCED, 0, "CONNECTION_FORCED - credential expired");
	}
}

void login_abort_pending(struct conn *c)
{
	struct conn_auth *a = c->auth;
	if (!a || !a->call)
		return;
	plugin_auth_cancel(a->call);
	call_over(c);
	free(c->held); /* a frame waiting for its answer is never handled */
	c->held = NULL;
}

void login_vhost_gone(struct conn *c)
{
	struct conn_auth *a = c->auth;
	if (!a || !a->counted)
		return;
	a->counted = false;
	struct user_usage *uu = usage(c->s, c->user, false);
	if (uu && uu->conns) {
		uu->conns--;
		usage_drop(c->s, uu);
	}
	if (c->vh && c->vh->nconnections)
		c->vh->nconnections--;
}

void login_free(struct conn *c)
{
	struct conn_auth *a = c->auth;
	if (!a)
		return;
	plugin_auth_cancel(a->call);
	forget_secret(a);
	end_mechanism(a);
	if (a->user_state && a->backend)
		plugin_auth_release_user(a->backend, a->user_state);
	login_vhost_gone(c);
	free(a->username);
	free(a->tags);
	free(a->x);
	free(a);
	c->auth = NULL;
}
