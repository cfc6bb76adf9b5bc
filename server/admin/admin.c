/*
 * admin.c - the admin listener: evhttp servers (plain and HTTPS), a
 * request's parsing, login and routing, and replies in the shape of
 * RabbitMQ's management API (see admin_priv.h).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "admin/admin_priv.h"
#include "admin/console.h"
#include "admin/metrics.h"
#include "admin/rates.h"
#include "io/broker.h"
#include "model/user.h"
#include "model/vhost.h"
#include "util/log.h"

#define ADMIN_MAX_BODY (128u << 20) /* definitions imports can be large */

int64_t admin_wall_ms(void)
{
	struct timeval tv;
	gettimeofday(&tv, NULL);
	return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

/* ---- replies ------------------------------------------------------------ */

void areq_done(struct areq *r)
{
	struct admin_server *a = r->a;
	if (r->prev)
		r->prev->next = r->next;
	else
		a->reqs = r->next;
	if (r->next)
		r->next->prev = r->prev;
	if (r->evcon)
		evhttp_connection_set_closecb(r->evcon, NULL, NULL);
	if (r->cleanup)
		r->cleanup(r->cleanup_arg);
	aclient_free(r->ac);
	aop_free(r->op);
	alist_free(r->list);
	for (int i = 0; i < r->nseg; i++)
		free(r->seg[i]);
	if (r->query_ok)
		evhttp_clear_headers(&r->query);
	json_decref(r->body);
	if (r->password) {
		memset(r->password, 0, strlen(r->password));
		free(r->password);
	}
	free(r);
}

void areq_set_header(struct areq *r, const char *name, const char *value)
{
	if (r->req)
		evhttp_add_header(evhttp_request_get_output_headers(r->req), name, value);
}

static void send_reply(struct areq *r, int status, const char *text, struct evbuffer *body)
{
	if (r->replied)
		return;
	r->replied = true;
	if (r->req) {
		evhttp_add_header(evhttp_request_get_output_headers(r->req), "Cache-Control",
		                  "no-cache");
		evhttp_send_reply(r->req, status, text, body);
	}
	areq_done(r);
}

static const char *status_text(int status)
{
	switch (status) {
	case 200:
		return "OK";
	case 201:
		return "Created";
	case 204:
		return "No Content";
	case 400:
		return "Bad Request";
	case 401:
		return "Unauthorized";
	case 403:
		return "Forbidden";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 413:
		return "Payload Too Large";
	case 415:
		return "Unsupported Media Type";
	case 500:
		return "Internal Server Error";
	case 503:
		return "Service Unavailable";
	default:
		return "";
	}
}

void areq_reply_json(struct areq *r, int status, json_t *doc)
{
	if (r->replied) {
		json_decref(doc);
		return;
	}
	struct evbuffer *buf = evbuffer_new();
	if (doc && buf) {
		char *s = json_dumps(doc, JSON_COMPACT | JSON_ENCODE_ANY);
		if (s) {
			evbuffer_add(buf, s, strlen(s));
			free(s);
		}
		areq_set_header(r, "Content-Type", "application/json");
	}
	json_decref(doc);
	send_reply(r, status, status_text(status), buf);
	if (buf)
		evbuffer_free(buf);
}

void areq_error(struct areq *r, int status, const char *error, const char *reason)
{
	areq_reply_json(r, status, json_pack("{s:s, s:s}", "error", error, "reason", reason));
}

void areq_not_found(struct areq *r)
{
	areq_error(r, 404, "Object Not Found", "Not Found");
}

void areq_bad_request(struct areq *r, const char *reason)
{
	areq_error(r, 400, "bad_request", reason);
}

void areq_no_content(struct areq *r)
{
	send_reply(r, 204, "No Content", NULL);
}

void areq_created(struct areq *r)
{
	send_reply(r, 201, "Created", NULL);
}

const char *areq_param(struct areq *r, const char *name)
{
	return r->query_ok ? evhttp_find_header(&r->query, name) : NULL;
}

json_t *areq_body(struct areq *r)
{
	if (r->body)
		return r->body;
	struct evbuffer *in = r->req ? evhttp_request_get_input_buffer(r->req) : NULL;
	size_t len = in ? evbuffer_get_length(in) : 0;
	if (len == 0) {
		r->body = json_object();
		return r->body;
	}
	const char *data = (const char *)evbuffer_pullup(in, -1);
	json_error_t err;
	r->body = data ? json_loadb(data, len, JSON_DECODE_ANY, &err) : NULL;
	if (!r->body) {
		areq_bad_request(r, "not_json");
		return NULL;
	}
	return r->body;
}

bool areq_vhost_visible(struct areq *r, const struct vhost *vh)
{
	if (r->tags & (TAG_ADMIN | TAG_MONITORING))
		return true;
	return vhost_permission(vh, r->user) != NULL;
}

struct vhost *areq_vhost(struct areq *r, int i)
{
	if (i >= r->nseg) {
		areq_not_found(r);
		return NULL;
	}
	struct vhost *vh = broker_vhost(r->a->b, r->seg[i], strlen(r->seg[i]));
	if (!vh) {
		areq_not_found(r);
		return NULL;
	}
	if (!areq_vhost_visible(r, vh)) {
		areq_error(r, 401, "not_authorised", "User not authorised to access virtual host");
		return NULL;
	}
	return vh;
}

/* ---- login and routing ---------------------------------------------------- */

static int parse_tags(const char *tags)
{
	int t = 0;
	if (user_has_tag(tags, "administrator"))
		t |= TAG_ADMIN | TAG_MONITORING | TAG_POLICYMAKER | TAG_MANAGEMENT;
	if (user_has_tag(tags, "monitoring"))
		t |= TAG_MONITORING | TAG_MANAGEMENT;
	if (user_has_tag(tags, "policymaker"))
		t |= TAG_POLICYMAKER | TAG_MANAGEMENT;
	if (user_has_tag(tags, "management"))
		t |= TAG_MANAGEMENT;
	return t;
}

static bool route_match(const struct route *rt, struct areq *r)
{
	const char *p = rt->path;
	int i = 0;
	while (*p) {
		if (i >= r->nseg)
			return false;
		const char *end = strchr(p, '/');
		size_t n = end ? (size_t)(end - p) : strlen(p);
		if (!(p[0] == '{' && p[n - 1] == '}') &&
		    (strlen(r->seg[i]) != n || memcmp(r->seg[i], p, n) != 0))
			return false;
		i++;
		p += n;
		if (*p == '/')
			p++;
	}
	return i == r->nseg;
}

static void dispatch(struct areq *r)
{
	const struct route *path_hit = NULL;
	for (size_t i = 0; i < admin_nroutes; i++) {
		const struct route *rt = &admin_routes[i];
		if (!route_match(rt, r))
			continue;
		path_hit = rt;
		if (!(rt->methods & r->method))
			continue;
		if (rt->need && !(r->tags & rt->need)) {
			areq_error(r, 401, "not_authorised", "Not administrator user");
			return;
		}
		r->route = rt;
		rt->fn(r);
		return;
	}
	if (path_hit)
		areq_error(r, 405, "method_not_allowed", "Method Not Allowed");
	else
		areq_not_found(r);
}

/* The login's answer, from the request's engine. */
static void login_event(struct aclient *ac, const struct aclient_event *ev, void *arg)
{
	(void)ac;
	struct areq *r = arg;
	if (ev->kind == ACLIENT_METHOD && ev->m.id == AMQP_CONNECTION_TUNE) {
		r->tags = parse_tags(aclient_tags(r->ac));
		if (!(r->tags & TAG_MANAGEMENT)) {
			areq_error(r, 401, "not_authorised", "Not management user");
			return;
		}
		dispatch(r);
		return;
	}
	/* connection.close (403) or the engine gone: the login failed. */
	if (!r->replied)
		areq_error(r, 401, "not_authorized", "Login failed");
}

static int b64_decode(const char *in, char *out, size_t cap)
{
	size_t n = strlen(in);
	if (n % 4 || n / 4 * 3 >= cap)
		return -1;
	int m = EVP_DecodeBlock((unsigned char *)out, (const unsigned char *)in, (int)n);
	if (m < 0)
		return -1;
	while (n > 0 && in[n - 1] == '=') {
		n--;
		m--;
	}
	out[m] = 0;
	return m;
}

static void conn_closed(struct evhttp_connection *evcon, void *arg)
{
	(void)evcon;
	struct areq *r = arg;
	r->req = NULL; /* answered into the void, then freed */
	r->evcon = NULL;
	/* A list being streamed waits for chunks that will never be written:
	 * end it now (its items hold references). */
	if (r->list && !r->replied) {
		r->replied = true;
		areq_done(r);
	}
}

static int split_path(struct areq *r, const char *uri)
{
	struct evhttp_uri *u = evhttp_uri_parse_with_flags(uri, EVHTTP_URI_NONCONFORMANT);
	if (!u)
		return -1;
	const char *path = evhttp_uri_get_path(u);
	const char *q = evhttp_uri_get_query(u);
	/* An empty string initialises the list too. */
	if (evhttp_parse_query_str(q ? q : "", &r->query) == 0)
		r->query_ok = true;
	const char *p = path && *path ? path : "/";
	while (*p == '/')
		p++;
	while (*p) {
		const char *end = strchr(p, '/');
		size_t n = end ? (size_t)(end - p) : strlen(p);
		if (r->nseg == ADMIN_MAX_SEGS) {
			evhttp_uri_free(u);
			return -1;
		}
		char *raw = strndup(p, n);
		char *dec = raw ? evhttp_uridecode(raw, 0, NULL) : NULL;
		free(raw);
		if (!dec) {
			evhttp_uri_free(u);
			return -1;
		}
		r->seg[r->nseg++] = dec;
		p += n;
		if (*p == '/') {
			p++;
			/* A trailing slash after a vhost: "/api/queues/" */
		}
	}
	evhttp_uri_free(u);
	return 0;
}

static void handle(struct evhttp_request *req, struct admin_server *a, bool metrics_only)
{
	struct areq *r = calloc(1, sizeof(*r));
	if (!r) {
		evhttp_send_error(req, 500, "out of memory");
		return;
	}
	r->a = a;
	r->req = req;
	r->method = (int)evhttp_request_get_command(req);
	r->next = a->reqs;
	if (a->reqs)
		a->reqs->prev = r;
	a->reqs = r;
	r->evcon = evhttp_request_get_connection(req);
	if (r->evcon) {
		char *addr = NULL;
		ev_uint16_t port = 0;
		evhttp_connection_get_peer(r->evcon, &addr, &port);
		snprintf(r->peer, sizeof(r->peer), "%s", addr ? addr : "?");
		r->peer_port = port;
		evhttp_connection_set_closecb(r->evcon, conn_closed, r);
	}
	if (split_path(r, evhttp_request_get_uri(req)) < 0) {
		areq_bad_request(r, "bad path");
		return;
	}
	if (r->nseg >= 1 && strcmp(r->seg[0], "metrics") == 0) {
		metrics_reply(r);
		return;
	}
	if (metrics_only) {
		areq_not_found(r);
		return;
	}
	if (r->nseg == 0 || strcmp(r->seg[0], "api") != 0) {
		console_reply(r);
		return;
	}
	const char *auth =
	    evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
	char cred[1024];
	char *colon = NULL;
	if (auth && strncasecmp(auth, "Basic ", 6) == 0 &&
	    b64_decode(auth + 6, cred, sizeof(cred)) > 0)
		colon = strchr(cred, ':');
	if (!colon) {
		areq_set_header(r, "WWW-Authenticate", "Basic realm=\"RabbitMQ Management\"");
		areq_error(r, 401, "not_authorized", "Not_Authorized");
		return;
	}
	*colon = 0;
	if (strlen(cred) >= sizeof(r->user)) {
		areq_error(r, 401, "not_authorized", "Login failed");
		return;
	}
	memcpy(r->user, cred, strlen(cred) + 1);
	r->password = strdup(colon + 1);
	memset(cred, 0, sizeof(cred));
	if (!r->password) {
		areq_error(r, 500, "internal_error", "out of memory");
		return;
	}
	bool loopback = strcmp(r->peer, "127.0.0.1") == 0 || strcmp(r->peer, "::1") == 0 ||
	                strncmp(r->peer, "127.", 4) == 0 ||
	                strcmp(r->peer, "::ffff:127.0.0.1") == 0;
	r->ac = aclient_new(&a->b->sess, a->b->base, r->user, r->password, r->peer, r->peer_port,
	                    loopback, login_event, r);
	if (!r->ac)
		areq_error(r, 500, "internal_error", "out of memory");
}

static void on_request(struct evhttp_request *req, void *arg)
{
	handle(req, arg, false);
}

static void on_metrics_request(struct evhttp_request *req, void *arg)
{
	handle(req, arg, true);
}

/* ---- listeners -------------------------------------------------------------- */

static struct bufferevent *tls_bev(struct event_base *base, void *arg)
{
	struct admin_server *a = arg;
	SSL *ssl = SSL_new(a->tls);
	if (!ssl)
		return NULL;
	return bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING,
	                                      BEV_OPT_CLOSE_ON_FREE);
}

static int add_listener(struct admin_server *a, const char *spec, bool tls, bool metrics_only,
                        bool is_default)
{
	char host[256] = "";
	const char *port = spec;
	const char *colon = strrchr(spec, ':');
	if (colon) {
		size_t n = (size_t)(colon - spec);
		if (n >= sizeof(host))
			n = sizeof(host) - 1;
		memcpy(host, spec, n);
		host[n] = 0;
		port = colon + 1;
		if (host[0] == '[' && n >= 2 && host[n - 1] == ']') {
			memmove(host, host + 1, n - 2);
			host[n - 2] = 0;
		}
	}
	char *end;
	long p = strtol(port, &end, 10);
	if (!*port || *end || p < 0 || p > 65535) {
		log_error("admin: bad listener '%s' (want [ADDR:]PORT)", spec);
		return -1;
	}
	struct evhttp *h = evhttp_new(a->b->base);
	if (!h)
		return -1;
	evhttp_set_allowed_methods(h, EVHTTP_REQ_GET | EVHTTP_REQ_PUT | EVHTTP_REQ_POST |
	                                  EVHTTP_REQ_DELETE | EVHTTP_REQ_HEAD | EVHTTP_REQ_OPTIONS);
	evhttp_set_max_body_size(h, ADMIN_MAX_BODY);
	evhttp_set_timeout(h, 120);
	evhttp_set_gencb(h, metrics_only ? on_metrics_request : on_request, a);
	if (tls)
		evhttp_set_bevcb(h, tls_bev, a);
	const char *addrs[2] = {host[0] ? host : "0.0.0.0", host[0] ? NULL : "::"};
	int bound = 0;
	for (int i = 0; i < 2 && addrs[i]; i++) {
		if (evhttp_bind_socket(h, addrs[i], (ev_uint16_t)p) == 0)
			bound++;
		else if (i == 0 || host[0])
			break;
	}
	if (!bound) {
		if (is_default) {
			log_warning("admin: cannot listen on port %ld (%s): the HTTP API is off; "
			            "set management.tcp.port to another port",
			            p, strerror(errno));
			evhttp_free(h);
			return 0;
		}
		log_error("admin: cannot listen on %s: %s", spec, strerror(errno));
		evhttp_free(h);
		return -1;
	}
	a->http_metrics_only[a->nhttp] = metrics_only;
	a->http[a->nhttp++] = h;
	log_info("admin: %s listening on %s%s", metrics_only ? "Prometheus metrics" : "HTTP API",
	         spec, tls ? " (HTTPS)" : "");
	return 0;
}

static SSL_CTX *build_tls(const struct admin_server *a, char *err, size_t errlen)
{
	/* management.ssl.* fields left unset come from ssl_options.*. */
	struct tls_config t = a->cfg.tls;
	const struct tls_config *amqp = &a->b->cfg.tls;
	if (!t.cert)
		t.cert = amqp->cert;
	if (!t.key)
		t.key = amqp->key;
	if (!t.key_password)
		t.key_password = amqp->key_password;
	if (!t.ca)
		t.ca = amqp->ca;
	if (!t.min_version)
		t.min_version = amqp->min_version;
	if (!t.ciphers)
		t.ciphers = amqp->ciphers;
	if (!t.ciphersuites)
		t.ciphersuites = amqp->ciphersuites;
	if (!t.cert || !t.key) {
		snprintf(err, errlen,
		         "HTTPS needs a certificate and a key (management.ssl.certfile "
		         "and .keyfile, or ssl_options.*)");
		return NULL;
	}
	return tls_ctx_new(&t, err, errlen);
}

void admin_config_defaults(struct admin_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
}

struct admin_server *admin_start(struct broker *b, const struct admin_config *cfg)
{
	struct admin_server *a = calloc(1, sizeof(*a));
	if (!a)
		return NULL;
	a->b = b;
	a->cfg = *cfg;
	a->started_ms = admin_wall_ms();
	char host[256] = "localhost";
	gethostname(host, sizeof(host) - 1);
	char *dot = strchr(host, '.');
	if (dot)
		*dot = 0;
	snprintf(a->node, sizeof(a->node), "amqpd@%s", host);
	int rc = 0;
	if (!cfg->disabled) {
		if (cfg->nlisten == 0 && cfg->nlisten_tls == 0)
			rc = add_listener(a, "15672", false, false, true);
		for (int i = 0; rc == 0 && i < cfg->nlisten; i++)
			rc = add_listener(a, cfg->listen[i], false, false, false);
		if (rc == 0 && cfg->nlisten_tls) {
			char err[512];
			a->tls = build_tls(a, err, sizeof(err));
			if (!a->tls) {
				log_error("admin: HTTPS: %s", err);
				rc = -1;
			}
		}
		for (int i = 0; rc == 0 && i < cfg->nlisten_tls; i++)
			rc = add_listener(a, cfg->listen_tls[i], true, false, false);
	}
	for (int i = 0; rc == 0 && i < cfg->nprometheus_listen; i++)
		rc = add_listener(a, cfg->prometheus_listen[i], false, true, false);
	if (rc == 0)
		rc = rates_start(a);
	if (rc < 0) {
		admin_stop(a);
		return NULL;
	}
	return a;
}

void admin_reload_tls(struct admin_server *a)
{
	if (!a || !a->tls)
		return;
	char err[512];
	SSL_CTX *n = build_tls(a, err, sizeof(err));
	if (!n) {
		log_error("admin: HTTPS context not reloaded, the current one stays: %s", err);
		return;
	}
	tls_ctx_free(a->tls);
	a->tls = n;
	log_info("admin: HTTPS certificate reloaded");
}

void admin_stop(struct admin_server *a)
{
	if (!a)
		return;
	while (a->reqs) {
		struct areq *r = a->reqs;
		r->req = NULL;
		r->replied = true;
		areq_done(r);
	}
	for (int i = 0; i < a->nhttp; i++)
		evhttp_free(a->http[i]);
	rates_stop(a);
	if (a->tls)
		tls_ctx_free(a->tls);
	free(a);
}
