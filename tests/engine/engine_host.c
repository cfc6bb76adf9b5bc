/*
 * engine_host.c - see engine_host.h.
 */
#include "engine_host.h"

#include <string.h>

#include "model/user.h"
#include "session/auth.h"
#include "util/password.h"

#include <event2/event.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/vhost.h"
#include "util/hmap.h"

static void host_schedule(struct session *s)
{
	struct eh *h = (struct eh *)((char *)s - offsetof(struct eh, s));
	h->sched = true;
}

/* The exchange-type plugins, linked in (Makefile.am: BUILTIN_XTYPES). */
#define BUILTIN(name)                                                                              \
	const struct amqpd_plugin_desc *amqpd_builtin_##name##_entry(uint32_t, uint32_t, uint32_t *)
BUILTIN(direct);
BUILTIN(fanout);
BUILTIN(topic);
BUILTIN(headers);

int eh_init(struct eh *h)
{
	memset(h, 0, sizeof(*h));
	h->base = event_base_new();
	if (!h->base || plugin_host_init(&h->plugins, h->base) < 0 ||
	    plugin_host_load_entry(&h->plugins, "built-in direct", amqpd_builtin_direct_entry) <
	        0 ||
	    plugin_host_load_entry(&h->plugins, "built-in fanout", amqpd_builtin_fanout_entry) <
	        0 ||
	    plugin_host_load_entry(&h->plugins, "built-in topic", amqpd_builtin_topic_entry) < 0 ||
	    plugin_host_load_entry(&h->plugins, "built-in headers", amqpd_builtin_headers_entry) <
	        0) {
		fprintf(stderr, "engine_host: cannot register the built-in exchange types\n");
		return -1;
	}
	model_init(&h->md, &h->plugins);
	h->st.md = &h->md;
	h->s.cfg = (struct session_config){2047, 131072, 60, 128ull << 20, 10000, 1800000, false};
	h->s.md = &h->md;
	h->s.st = &h->st;
	h->s.schedule = host_schedule;
	h->s.platform = "engine host";
	hmap_init(&h->s.reply_tokens);
	hmap_init(&h->s.user_usage);
	auth_config_defaults(&h->s.auth);
	char err[300];
	if (auth_register_mechanisms(&h->plugins, &h->s.auth) < 0 ||
	    auth_register_internal(&h->plugins, &h->md) < 0 ||
	    auth_config_resolve(&h->s.auth, &h->plugins, err, sizeof(err)) < 0) {
		fprintf(stderr, "engine_host: cannot set up authentication\n");
		return -1;
	}
	return eh_reset_vhost(h);
}

int eh_add_user(struct eh *h, const char *name, const char *password, const char *tags)
{
	char hash[200], err[300];
	if (password_hash(PASSWORD_SHA256, password, strlen(password), hash, sizeof(hash)) < 0 ||
	    !model_user_put(&h->md, name, hash, PASSWORD_SHA256, tags, err, sizeof(err)))
		return -1;
	struct vhost *vh = model_vhost(&h->md, "/", 1);
	return vh && vhost_set_permission(vh, name, ".*", ".*", ".*", err, sizeof(err)) == 0 ? 0
	                                                                                     : -1;
}

int eh_reset_vhost(struct eh *h)
{
	struct vhost *vh = model_vhost(&h->md, "/", 1);
	if (vh) {
		hmap_del(&h->md.vhosts, "/", 1);
		vhost_free(vh);
	}
	if (!vhost_new(&h->md, "/"))
		return -1;
	return eh_add_user(h, "guest", "guest", "administrator");
}

void eh_free(struct eh *h)
{
	while (h->clients)
		ec_free(h->clients);
	model_free(&h->md);
	hmap_free(&h->s.reply_tokens);
	hmap_free(&h->s.user_usage);
	plugin_host_unload_all(&h->plugins);
	if (h->base)
		event_base_free(h->base);
}

/* ---- clients ----------------------------------------------------------- */

static void client_wake(struct conn_io *io)
{
	struct ec *e = (struct ec *)((char *)io - offsetof(struct ec, io));
	e->woken = true;
}

struct ec *ec_new(struct eh *h, int64_t now)
{
	struct ec *e = calloc(1, sizeof(*e));
	if (!e)
		return NULL;
	e->h = h;
	e->io.wake = client_wake;
	e->now = now;
	e->c = conn_new(&h->s, &e->io, "engine-test", true, now);
	if (!e->c) {
		free(e);
		return NULL;
	}
	amqp_parser_init(&e->fp, AMQP_PARSER_CLIENT, 0);
	e->next = h->clients;
	h->clients = e;
	return e;
}

static void gone(struct ec *e)
{
	if (e->c) {
		conn_free(e->c);
		e->c = NULL;
	}
}

void ec_free(struct ec *e)
{
	struct ec **pp = &e->h->clients;
	while (*pp && *pp != e)
		pp = &(*pp)->next;
	if (*pp)
		*pp = e->next;
	gone(e);
	amqp_parser_free(&e->fp);
	free(e->out);
	free(e->in);
	free(e);
}

static void append(uint8_t **buf, size_t *len, size_t *cap, const void *data, size_t n)
{
	if (*len + n > *cap) {
		size_t ncap = *cap ? *cap : 4096;
		while (ncap < *len + n)
			ncap *= 2;
		uint8_t *nb = realloc(*buf, ncap);
		if (!nb)
			abort();
		*buf = nb;
		*cap = ncap;
	}
	memcpy(*buf + *len, data, n);
	*len += n;
}

/* Feed what is waiting while the engine reads. */
static void feed(struct ec *e)
{
	if (!e->c || !e->in_len || !conn_wants_read(e->c))
		return;
	size_t n = conn_input(e->c, e->in, e->in_len, e->now);
	if (n) {
		memmove(e->in, e->in + n, e->in_len - n);
		e->in_len -= n;
	}
}

/* Apply one client's requests; true if something happened. */
static bool service(struct ec *e)
{
	if (!e->c)
		return false;
	bool did = e->woken;
	struct conn_poll p;
	conn_poll(e->c, &p);
	e->woken = false;
	e->last = p;
	if (p.reset) {
		e->was_reset = true;
		gone(e);
		return true;
	}
	struct outq_chunk ch[16];
	size_t n;
	while (!e->stalled && (n = conn_take_output(e->c, ch, 16)) > 0) {
		for (size_t i = 0; i < n; i++) {
			append(&e->out, &e->out_len, &e->out_cap, ch[i].ptr, ch[i].len);
			e->out_total += ch[i].len;
			outq_chunk_release(&ch[i]);
		}
		did = true;
	}
	if (!e->stalled)
		conn_output_pending(e->c, 0); /* everything "written" */
	if (p.close) {
		e->closed_clean = true;
		gone(e);
		return true;
	}
	if (p.want_read && e->in_len) {
		size_t before = e->in_len;
		feed(e);
		did |= e->in_len != before;
	}
	return did;
}

void eh_settle(struct eh *h)
{
	for (int round = 0; round < 10000; round++) {
		bool did = false;
		if (h->sched) {
			h->sched = false;
			session_flush_confirms(&h->s);
			did = true;
		}
		for (struct ec *e = h->clients; e; e = e->next)
			did |= service(e);
		if (!did && !h->sched)
			return;
	}
	fprintf(stderr, "engine_host: the engines do not settle\n");
	abort();
}

void ec_send(struct ec *e, const void *data, size_t len)
{
	append(&e->in, &e->in_len, &e->in_cap, data, len);
	feed(e);
	eh_settle(e->h);
}

void ec_method(struct ec *e, uint16_t ch, const struct amqp_method *m)
{
	uint8_t buf[4096];
	size_t n = amqp_frame_method(buf, sizeof(buf), ch, m);
	if (n == 0 || n > sizeof(buf))
		abort();
	ec_send(e, buf, n);
}

void ec_publish(struct ec *e, uint16_t ch, const char *exchange, const char *rk,
                const struct amqp_basic_props *props, const void *body, size_t len)
{
	static const struct amqp_basic_props none;
	uint8_t *buf = malloc(8192 + len + len / 1000 * 8);
	if (!buf)
		abort();
	struct amqp_method m = {.id = AMQP_BASIC_PUBLISH};
	m.u.basic_publish.exchange = amqp_cstr(exchange);
	m.u.basic_publish.routing_key = amqp_cstr(rk);
	size_t n = amqp_frame_method(buf, 4096, ch, &m);
	n += amqp_frame_header(buf + n, 4096, ch, AMQP_CLASS_BASIC, len, props ? props : &none);
	size_t max = e->c ? e->c->frame_max - AMQP_FRAME_OVERHEAD : 4096;
	for (size_t off = 0; off < len; off += max) {
		size_t k = len - off < max ? len - off : max;
		n += amqp_frame_body(buf + n, k + 8, ch,
		                     (struct amqp_bytes){(const uint8_t *)body + off, k});
	}
	ec_send(e, buf, n);
	free(buf);
}

void ec_advance(struct ec *e, int64_t now)
{
	e->now = now;
	if (e->c)
		conn_tick(e->c, now);
	eh_settle(e->h);
}

int ec_frame(struct ec *e, struct amqp_frame *f)
{
	/* The previous frame pointed into out: drop its bytes only now. */
	if (e->out_off) {
		memmove(e->out, e->out + e->out_off, e->out_len - e->out_off);
		e->out_len -= e->out_off;
		e->out_off = 0;
	}
	if (!e->out_len)
		return 0;
	struct amqp_err err;
	size_t used = 0;
	int rc = amqp_parser_feed(&e->fp, e->out, e->out_len, &used, f, &err);
	e->out_off = used;
	if (rc == AMQP_PARSE_FRAME)
		return 1;
	return rc == AMQP_PARSE_NEED_MORE ? 0 : -1;
}

bool ec_next_method(struct ec *e, struct amqp_method *m, uint16_t *ch)
{
	struct amqp_frame f;
	int rc;
	while ((rc = ec_frame(e, &f)) == 1) {
		if (f.type != AMQP_FRAME_METHOD)
			continue;
		if (amqp_method_decode(f.payload, f.size, m, NULL) < 0)
			return false;
		if (ch)
			*ch = f.channel;
		return true;
	}
	return false;
}

bool ec_handshake(struct ec *e, uint16_t heartbeat)
{
	ec_send(e, amqp_protocol_header, AMQP_PROTOCOL_HEADER_LEN);
	struct amqp_method m;
	if (!ec_next_method(e, &m, NULL) || m.id != AMQP_CONNECTION_START)
		return false;
	static const uint8_t plain[] = "\0guest\0guest";
	/* A modern client: it understands connection.blocked and basic.cancel. */
	struct amqp_table_entry caps_e[] = {
	    {amqp_cstr("connection.blocked"), {.type = 't', .v.b = true}},
	    {amqp_cstr("consumer_cancel_notify"), {.type = 't', .v.b = true}},
	};
	struct amqp_table caps = {caps_e, 2};
	struct amqp_field_value capv = {.type = 'F'};
	capv.v.table.built = &caps;
	struct amqp_table_entry props_e[] = {{amqp_cstr("capabilities"), capv}};
	struct amqp_table props = {props_e, 1};
	uint8_t pbuf[256];
	struct amqp_wr w;
	amqp_wr_init(&w, pbuf, sizeof(pbuf));
	amqp_table_encode_contents(&w, &props);
	struct amqp_method so = {.id = AMQP_CONNECTION_START_OK};
	so.u.connection_start_ok.client_properties = (struct amqp_bytes){pbuf, w.len};
	so.u.connection_start_ok.mechanism = amqp_cstr("PLAIN");
	so.u.connection_start_ok.response = (struct amqp_bytes){plain, sizeof(plain) - 1};
	so.u.connection_start_ok.locale = amqp_cstr("en_US");
	ec_method(e, 0, &so);
	if (!ec_next_method(e, &m, NULL) || m.id != AMQP_CONNECTION_TUNE)
		return false;
	struct amqp_method to = {.id = AMQP_CONNECTION_TUNE_OK};
	to.u.connection_tune_ok.channel_max = m.u.connection_tune.channel_max;
	to.u.connection_tune_ok.frame_max = m.u.connection_tune.frame_max;
	to.u.connection_tune_ok.heartbeat = heartbeat;
	ec_method(e, 0, &to);
	struct amqp_method op = {.id = AMQP_CONNECTION_OPEN};
	op.u.connection_open.virtual_host = amqp_cstr("/");
	ec_method(e, 0, &op);
	return ec_next_method(e, &m, NULL) && m.id == AMQP_CONNECTION_OPEN_OK;
}
