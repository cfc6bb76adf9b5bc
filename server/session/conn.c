/*
 * conn.c - see conn.h.
 */
#include "session/conn.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "model/message.h"
#include "model/queue.h"
#include "model/user.h"
#include "model/vhost.h"
#include "session/auth.h"
#include "session/conn_priv.h"
#include "session/login.h"
#include "session/channel.h"
#include "session/session.h"
#include "util/log.h"

#define OUT_HIGH_WATER (1u << 20) /* consumers wait above this */
#define OUT_LOW_WATER  (256u << 10)
/* A peer that does not read what it asks for (basic.get after basic.get,
 * declares by the thousand) is not read from either while this much of its
 * output waits: TCP pushes back, as from RabbitMQ, instead of the broker's
 * memory growing without bound.  Deliveries to consumers stop at
 * OUT_HIGH_WATER already; only one message larger than this gets past it. */
#define OUT_READ_PAUSE (16u << 20)
#define CLOSE_GRACE_MS 2000 /* wait for close-ok (or for a flush) this long */

static void confirm_unlist(struct conn *c);

/* Tell the owner there is news for conn_poll() / conn_take_output(). */
static void wake(struct conn *c)
{
	if (c->woken || !c->io)
		return;
	c->woken = true;
	c->io->wake(c->io);
}

void conn_wake(struct conn *c)
{
	wake(c);
}

void conn_deadlines_changed(struct conn *c)
{
	wake(c); /* conn_poll() reports the earliest */
}

static void set_deadline(struct conn *c, int64_t at)
{
	if (c->deadline == at)
		return;
	c->deadline = at;
	wake(c);
}

/* ---- output ----------------------------------------------------------- */

void conn_send_method(struct conn *c, uint16_t channel, const struct amqp_method *m)
{
	if (c->state == CONN_CLOSED)
		return;
	/* Methods without long strings or tables fit in 1 KiB; the others
	 * are measured by a trial encoding first. */
	size_t need = 1024;
	uint8_t *p = outq_reserve(&c->out, need);
	if (!p)
		return;
	size_t n = amqp_frame_method(p, need, channel, m);
	if (n > need) {
		need = n;
		if (!(p = outq_reserve(&c->out, need)))
			return;
		n = amqp_frame_method(p, need, channel, m);
	}
	if (n == 0 || n > need) {
		log_error("%s: cannot encode %s", c->name, amqp_method_name(m->id));
		return;
	}
	outq_commit(&c->out, n);
	wake(c);
}

/* Bodies at least this large are output by reference. */
#define BODY_REF_MIN 4096

void conn_send_content(struct conn *c, uint16_t channel, const struct amqp_method *m,
                       struct message *msg)
{
	if (c->state == CONN_CLOSED)
		return;
	size_t max_chunk = c->frame_max - AMQP_FRAME_OVERHEAD;
	struct amqp_bytes props = {msg->props, msg->props_len};
	/* Method and header frames (and a small body) are encoded in place. */
	size_t head_need = 1024 + 20 + msg->props_len;
	bool inline_body = msg->body_len < BODY_REF_MIN;
	size_t body_frames =
	    msg->body_len ? (size_t)((msg->body_len + max_chunk - 1) / max_chunk) : 0;
	size_t need = head_need + (inline_body ? (size_t)msg->body_len + body_frames * 8 : 0);
	uint8_t *p = outq_reserve(&c->out, need);
	if (!p)
		return;
	size_t n = amqp_frame_method(p, need, channel, m);
	if (n == 0 || n > need)
		return; /* cannot happen: names are <= 255 bytes */
	n +=
	    amqp_frame_header_raw(p + n, need - n, channel, AMQP_CLASS_BASIC, msg->body_len, props);
	if (inline_body) {
		for (uint64_t off = 0; off < msg->body_len; off += max_chunk) {
			size_t chunk = msg->body_len - off < max_chunk
			                   ? (size_t)(msg->body_len - off)
			                   : max_chunk;
			struct amqp_bytes body = {msg->body + off, chunk};
			n += amqp_frame_body(p + n, need - n, channel, body);
		}
	}
	outq_commit(&c->out, n);
	wake(c);
	if (inline_body)
		return;
	for (uint64_t off = 0; off < msg->body_len; off += max_chunk) {
		size_t chunk =
		    msg->body_len - off < max_chunk ? (size_t)(msg->body_len - off) : max_chunk;
		uint8_t fh[7] = {AMQP_FRAME_BODY,        (uint8_t)(channel >> 8),
		                 (uint8_t)channel,       (uint8_t)(chunk >> 24),
		                 (uint8_t)(chunk >> 16), (uint8_t)(chunk >> 8),
		                 (uint8_t)chunk};
		static const uint8_t end = AMQP_FRAME_END;
		/* Out of memory part-way: the connection is beyond saving. */
		if (outq_add(&c->out, fh, sizeof(fh)) < 0 ||
		    outq_add_ref(&c->out, msg, msg->body + off, chunk) < 0 ||
		    outq_add(&c->out, &end, 1) < 0) {
			log_error("%s: out of memory queueing a delivery; closing", c->name);
			c->state = CONN_CLOSED;
			c->reset = true;
			wake(c);
			return;
		}
	}
}

bool conn_output_full(struct conn *c)
{
	if (outq_bytes(&c->out) + c->io_pending >= OUT_HIGH_WATER) {
		c->throttled = true;
		return true;
	}
	return false;
}

size_t conn_take_output(struct conn *c, struct outq_chunk *out, size_t max)
{
	size_t n = outq_take(&c->out, out, max);
	for (size_t i = 0; i < n; i++) {
		c->io_pending += out[i].len;
		c->send_oct += out[i].len;
	}
	return n;
}

static bool output_backlog(const struct conn *c)
{
	return outq_bytes(&c->out) + c->io_pending >= OUT_READ_PAUSE;
}

void conn_output_pending(struct conn *c, size_t bytes)
{
	c->io_pending = bytes;
	if (c->out_paused && !output_backlog(c)) {
		c->out_paused = false;
		wake(c); /* reading again */
	}
	if (c->throttled && c->state == CONN_OPEN &&
	    outq_bytes(&c->out) + c->io_pending < OUT_LOW_WATER) {
		c->throttled = false;
		for (unsigned i = 1; i < c->channels_cap; i++)
			if (c->channels[i])
				channel_resume(c->channels[i]);
	}
}

/* ---- closing ---------------------------------------------------------- */

/* Done: flush what is queued (close-ok, say), then go.  A peer that never
 * reads must not keep us waiting for ever: the deadline drops it. */
static void close_after_flush(struct conn *c)
{
	c->state = CONN_CLOSED;
	c->linger = true;
	set_deadline(c, c->now + CLOSE_GRACE_MS);
	wake(c);
}

/* Drop the connection at once (timeouts, the peer gone). */
static void conn_reset(struct conn *c)
{
	c->state = CONN_CLOSED;
	c->reset = true;
	c->linger = false;
	wake(c);
}

void conn_close_after_flush(struct conn *c)
{
	close_after_flush(c);
}

static void send_close(struct conn *c, uint16_t code, const char *text, uint32_t method_id);

void conn_send_close(struct conn *c, uint16_t code, const char *text, uint32_t method_id)
{
	send_close(c, code, text, method_id);
}

static void send_close(struct conn *c, uint16_t code, const char *text, uint32_t method_id)
{
	login_abort_pending(c); /* close-ok must be read; no answer may reopen it */
	struct amqp_method m = {.id = AMQP_CONNECTION_CLOSE};
	m.u.connection_close.reply_code = code;
	m.u.connection_close.reply_text = amqp_cstr(text);
	m.u.connection_close.class_id = AMQP_METHOD_CLASS(method_id);
	m.u.connection_close.method_id = AMQP_METHOD_INDEX(method_id);
	conn_send_method(c, 0, &m);
	c->state = CONN_CLOSING;
	/* Wait a while for close-ok, then give up on the peer. */
	set_deadline(c, c->now + CLOSE_GRACE_MS);
}

void conn_error(struct conn *c, uint16_t code, uint32_t method_id, const char *fmt, ...)
{
	if (c->state == CONN_CLOSING || c->state == CONN_CLOSED)
		return;
	char text[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	if (text[0] && strlen(text) > 255)
		text[255] = 0; /* reply-text is a shortstr */
	log_error("%s: closing connection: %s", c->name, text);
	if (c->state < CONN_AWAIT_START_OK) {
		close_after_flush(c);
		return;
	}
	send_close(c, code, text, method_id);
}

void conn_force_close(struct conn *c, const char *reason)
{
	if (c->state == CONN_CLOSING || c->state == CONN_CLOSED)
		return;
	char text[256];
	snprintf(text, sizeof(text),
	         "CONNECTION_FORCED - broker forced connection closure with reason '%s'", reason);
	if (c->state == CONN_AWAIT_HEADER) {
		close_after_flush(c);
		return;
	}
	log_info("%s: closing connection: %s", c->name, text);
	send_close(c, AMQP_CONNECTION_FORCED, text, 0);
	/* Reading may have been stopped for the shutdown; close-ok must get in
	 * (anything else is discarded while closing). */
	c->read_stopped = false;
	wake(c);
}

static void free_channels(struct conn *c)
{
	for (unsigned i = 0; i < c->channels_cap; i++) {
		struct channel *ch = c->channels[i];
		if (ch) {
			c->channels[i] = NULL;
			c->nchannels--;
			login_channel_closed(c);
			channel_free(ch);
		}
	}
}

void conn_channel_closed(struct conn *c, uint16_t id)
{
	if (id < c->channels_cap && c->channels[id]) {
		c->channels[id] = NULL;
		c->nchannels--;
		login_channel_closed(c);
	}
}

/* Store a new channel in its slot, growing the table to fit.  0 or -1. */
static int conn_channel_add(struct conn *c, struct channel *ch)
{
	if (ch->id >= c->channels_cap) {
		unsigned ncap = c->channels_cap ? c->channels_cap : 4;
		while (ncap <= ch->id)
			ncap *= 2;
		struct channel **n = realloc(c->channels, ncap * sizeof(*n));
		if (!n)
			return -1;
		memset(n + c->channels_cap, 0, (ncap - c->channels_cap) * sizeof(*n));
		c->channels = n;
		c->channels_cap = ncap;
	}
	c->channels[ch->id] = ch;
	c->nchannels++;
	return 0;
}

/* ---- life cycle -------------------------------------------------------- */

struct conn *conn_new(struct session *s, struct conn_io *io, const char *name, bool peer_loopback,
                      int64_t now)
{
	struct conn *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->s = s;
	c->io = io;
	c->id = ++s->next_conn_id;
	snprintf(c->name, sizeof(c->name), "%s", name);
	c->peer_loopback = peer_loopback;
	/* Until tune, frames may be at most frame-min-size (the spec). */
	amqp_parser_init(&c->parser, AMQP_PARSER_SERVER, AMQP_FRAME_MIN_SIZE);
	/* Split body frames go straight into the message being assembled. */
	amqp_parser_set_body_dest(&c->parser, channel_body_dest, c);
	c->frame_max = AMQP_FRAME_MIN_SIZE;
	c->state = CONN_AWAIT_HEADER;
	c->now = c->last_recv = now;
	c->deadline = now + s->cfg.handshake_timeout;
	c->auth_deadline = c->expires_at = -1;
	if (s->wall_ms) {
		c->connected_at = s->wall_ms();
	} else {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		c->connected_at = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	}
	c->s_next = s->conns;
	if (s->conns)
		s->conns->s_prev = c;
	s->conns = c;
	return c;
}

void conn_set_peer(struct conn *c, const char *addr, uint16_t port, bool tls)
{
	snprintf(c->peer_addr, sizeof(c->peer_addr), "%s", addr);
	c->peer_port = port;
	c->peer_tls = tls;
}

static void free_cert(struct conn *c)
{
	for (size_t i = 0; i < c->cert_nsans; i++)
		free(c->cert_sans[i]);
	free(c->cert_sans);
	free(c->cert_dn);
	free(c->cert_cn);
	c->cert_sans = NULL;
	c->cert_dn = c->cert_cn = NULL;
	c->cert_nsans = 0;
	c->cert_verified = false;
}

void conn_set_peer_cert(struct conn *c, const char *dn, const char *cn, const char *const *sans,
                        size_t nsans)
{
	free_cert(c);
	c->cert_dn = dn ? strdup(dn) : NULL;
	c->cert_cn = cn ? strdup(cn) : NULL;
	c->cert_sans = nsans ? calloc(nsans, sizeof(char *)) : NULL;
	for (size_t i = 0; c->cert_sans && i < nsans; i++)
		if ((c->cert_sans[i] = strdup(sans[i])))
			c->cert_nsans++;
	c->cert_verified = c->cert_dn != NULL;
}

void conn_free(struct conn *c)
{
	struct session *s = c->s;
	c->io = NULL; /* its owner is going: nothing may wake it from here on */
	c->state = CONN_CLOSED;
	free_channels(c);
	login_free(c);
	free_cert(c);
	free(c->client_name);
	free(c->held);
	if (c->s_prev)
		c->s_prev->s_next = c->s_next;
	else
		s->conns = c->s_next;
	if (c->s_next)
		c->s_next->s_prev = c->s_prev;
	free(c->channels);
	c->channels = NULL;
	c->channels_cap = 0;
	/* Exclusive queues go with their connection. */
	queue_owner_release(&c->excl);
	amqp_parser_free(&c->parser);
	outq_free(&c->out);
	confirm_unlist(c);
	if (!c->internal)
		log_info("%s: connection closed", c->name);
	free(c);
	s->schedule(s); /* exclusive queues may have gone: definitions */
}

void conn_poll(struct conn *c, struct conn_poll *p)
{
	c->woken = false;
	p->reset = c->reset;
	p->close = c->state == CONN_CLOSED;
	p->linger = c->linger;
	p->want_read = conn_wants_read(c);
	p->deadline = c->deadline;
	if (c->auth_deadline >= 0 && (p->deadline < 0 || c->auth_deadline < p->deadline))
		p->deadline = c->auth_deadline;
	if (c->expires_at >= 0 && c->state == CONN_OPEN &&
	    (p->deadline < 0 || c->expires_at < p->deadline))
		p->deadline = c->expires_at;
}

bool conn_wants_read(const struct conn *c)
{
	return c->state != CONN_CLOSED && !c->blocked && !c->read_stopped && !c->out_paused &&
	       !c->auth_wait;
}

void conn_peer_closed(struct conn *c)
{
	if (c->state != CONN_CLOSED && c->state != CONN_AWAIT_HEADER)
		log_warning("%s: client unexpectedly closed TCP connection", c->name);
	conn_reset(c);
}

/* Heartbeats are sent at half the negotiated interval, so the peer never
 * sees a gap; two intervals without input from the peer end it. */
static int64_t heartbeat_period(const struct conn *c)
{
	return (int64_t)c->heartbeat * 500;
}

void conn_tick(struct conn *c, int64_t now)
{
	c->now = now;
	if (c->state == CONN_CLOSED && c->reset)
		return;
	if (c->auth && c->auth->failed && c->state != CONN_CLOSED) {
		login_tick(c, now); /* only the failure delay counts now */
		return;
	}
	/* The handshake's time is up while a backend thinks: its timeout. */
	if (c->auth_wait && c->auth_deadline >= 0 && c->deadline >= 0 && now >= c->deadline &&
	    c->state < CONN_OPEN)
		c->auth_deadline = now;
	login_tick(c, now);
	if (c->deadline < 0 || now < c->deadline || (c->state == CONN_CLOSED && c->reset))
		return;
	switch (c->state) {
	case CONN_AWAIT_HEADER:
	case CONN_AWAIT_START_OK:
	case CONN_AWAIT_SECURE_OK:
	case CONN_AWAIT_TUNE_OK:
	case CONN_AWAIT_OPEN:
		log_error("%s: closing connection: handshake not completed within %u ms", c->name,
		          c->s->cfg.handshake_timeout);
		conn_reset(c);
		return;
	case CONN_CLOSING:
		log_warning("%s: no connection.close-ok in time, closing socket", c->name);
		conn_reset(c);
		return;
	case CONN_CLOSED:
		conn_reset(c); /* the flush did not finish in time */
		return;
	case CONN_OPEN:
		break;
	}
	/* While we do not read (an alarm, a backlog, the shutdown) the peer's
	 * heartbeats wait unread in the socket: it is not the silent one.
	 * RabbitMQ, too, counts bytes arriving at the socket, not frames read. */
	if (!conn_wants_read(c))
		c->last_recv = now;
	if (now - c->last_recv >= 2000 * (int64_t)c->heartbeat) {
		log_error("%s: missed heartbeats from client, timeout: %us", c->name, c->heartbeat);
		conn_reset(c);
		return;
	}
	uint8_t hb[8];
	amqp_frame_heartbeat(hb, sizeof(hb));
	if (outq_add(&c->out, hb, sizeof(hb)) == 0)
		wake(c);
	set_deadline(c, now + heartbeat_period(c));
}

/* ---- handshake -------------------------------------------------------- */

static void send_start(struct conn *c)
{
	const char *platform = c->s->platform ? c->s->platform : "C11";
	struct amqp_table_entry caps_e[] = {
	    {amqp_cstr("publisher_confirms"), {.type = 't', .v.b = true}},
	    {amqp_cstr("exchange_exchange_bindings"), {.type = 't', .v.b = true}},
	    {amqp_cstr("basic.nack"), {.type = 't', .v.b = true}},
	    {amqp_cstr("consumer_cancel_notify"), {.type = 't', .v.b = true}},
	    {amqp_cstr("connection.blocked"), {.type = 't', .v.b = true}},
	    {amqp_cstr("consumer_priorities"), {.type = 't', .v.b = true}},
	    {amqp_cstr("authentication_failure_close"), {.type = 't', .v.b = true}},
	    {amqp_cstr("per_consumer_qos"), {.type = 't', .v.b = true}},
	    {amqp_cstr("direct_reply_to"), {.type = 't', .v.b = true}},
	};
	struct amqp_table caps = {caps_e, sizeof(caps_e) / sizeof(caps_e[0])};
	struct amqp_field_value capv = {.type = 'F'};
	capv.v.table.built = &caps;
#define S(x)                                                                                       \
	{                                                                                          \
		.type = 'S', .v.str = {(const uint8_t *)(x), sizeof(x) - 1 }                       \
	}
	struct amqp_table_entry props_e[] = {
	    {amqp_cstr("capabilities"), capv},
	    {amqp_cstr("cluster_name"), S("amqpd@localhost")},
	    {amqp_cstr("copyright"), S("Copyright (c) 2026 The amqpd developers")},
	    {amqp_cstr("information"), S("Licensed under the MIT License. See COPYING.")},
	    {amqp_cstr("platform"), {.type = 'S', .v.str = amqp_cstr(platform)}},
	    {amqp_cstr("product"), S("amqpd")},
	    {amqp_cstr("version"), S(PACKAGE_VERSION)},
	};
#undef S
	struct amqp_table props = {props_e, sizeof(props_e) / sizeof(props_e[0])};
	uint8_t buf[1024];
	struct amqp_wr w;
	amqp_wr_init(&w, buf, sizeof(buf));
	amqp_table_encode_contents(&w, &props);
	struct amqp_method m = {.id = AMQP_CONNECTION_START};
	m.u.connection_start.version_major = 0;
	m.u.connection_start.version_minor = 9;
	m.u.connection_start.server_properties = (struct amqp_bytes){buf, w.len};
	char mechs[256];
	login_mechanisms(c, mechs, sizeof(mechs));
	m.u.connection_start.mechanisms = amqp_cstr(mechs);
	m.u.connection_start.locales = amqp_cstr("en_US");
	conn_send_method(c, 0, &m);
	c->state = CONN_AWAIT_START_OK;
}

static bool table_flag(struct amqp_bytes table, const char *key)
{
	struct amqp_field_value v;
	return amqp_table_get(table, key, &v) && v.type == 't' && v.v.b;
}

static bool table_str_eq(struct amqp_bytes table, const char *key, const char *want)
{
	struct amqp_field_value v;
	size_t n = strlen(want);
	return amqp_table_get(table, key, &v) && (v.type == 'S' || v.type == 'x') &&
	       v.v.str.len == n && memcmp(v.v.str.ptr, want, n) == 0;
}

static void handle_start_ok(struct conn *c, const struct amqp_connection_start_ok *a)
{
	struct amqp_field_value caps;
	/* py-amqp (and so kombu and Celery on top of it) decides the meaning
	 * of basic.qos global from our server_properties: only a server whose
	 * product is "RabbitMQ" 3.3 or later is taken to count global=false per
	 * consumer, for any other it sends global=false to get the spec's
	 * channel-wide limit (Celery's worker prefetch).  Give that client the
	 * meaning it asked for; other clients keep RabbitMQ's per-consumer one. */
	c->qos_spec_shared = table_str_eq(a->client_properties, "product", "py-amqp");
	if (amqp_table_get(a->client_properties, "capabilities", &caps) && caps.type == 'F') {
		c->cap_blocked = table_flag(caps.v.table.raw, "connection.blocked");
		c->cap_cancel_notify = table_flag(caps.v.table.raw, "consumer_cancel_notify");
		c->cap_auth_failure_close =
		    table_flag(caps.v.table.raw, "authentication_failure_close");
	}
	login_start_ok(c, a);
}

void conn_send_tune(struct conn *c)
{
	struct amqp_method m = {.id = AMQP_CONNECTION_TUNE};
	m.u.connection_tune.channel_max = c->s->cfg.channel_max;
	m.u.connection_tune.frame_max = c->s->cfg.frame_max;
	m.u.connection_tune.heartbeat = c->s->cfg.heartbeat;
	conn_send_method(c, 0, &m);
	c->state = CONN_AWAIT_TUNE_OK;
}

static void handle_tune_ok(struct conn *c, const struct amqp_connection_tune_ok *a)
{
	const struct session_config *cfg = &c->s->cfg;
	uint32_t frame_max = a->frame_max ? a->frame_max : cfg->frame_max;
	if (a->frame_max && a->frame_max < AMQP_FRAME_MIN_SIZE) {
		conn_error(c, AMQP_NOT_ALLOWED, AMQP_CONNECTION_TUNE_OK,
		           "NOT_ALLOWED - frame_max=%u < %u min size", a->frame_max,
		           AMQP_FRAME_MIN_SIZE);
		return;
	}
	if (a->frame_max > cfg->frame_max) {
		conn_error(c, AMQP_NOT_ALLOWED, AMQP_CONNECTION_TUNE_OK,
		           "NOT_ALLOWED - frame_max=%u > %u max size", a->frame_max,
		           cfg->frame_max);
		return;
	}
	if (a->channel_max > cfg->channel_max) {
		conn_error(c, AMQP_NOT_ALLOWED, AMQP_CONNECTION_TUNE_OK,
		           "NOT_ALLOWED - channel_max=%u > %u max size", a->channel_max,
		           cfg->channel_max);
		return;
	}
	c->frame_max = frame_max;
	c->channel_max = a->channel_max ? a->channel_max : cfg->channel_max;
	c->heartbeat = a->heartbeat;
	amqp_parser_set_frame_max(&c->parser, c->frame_max);
	c->state = CONN_AWAIT_OPEN;
}

void conn_opened(struct conn *c)
{
	struct vhost *vh = c->vh;
	struct amqp_method m = {.id = AMQP_CONNECTION_OPEN_OK};
	conn_send_method(c, 0, &m);
	c->state = CONN_OPEN;
	/* Handshake done: the deadline now drives heartbeats. */
	set_deadline(c, c->heartbeat ? c->now + heartbeat_period(c) : -1);
	if (!c->internal)
		log_info("%s: user '%s' authenticated and granted access to vhost '%s'", c->name,
		         c->user, vh->name);
	if (c->s->alarm && c->cap_blocked) {
		/* Tell it now, as RabbitMQ does, so it does not publish blind. */
		struct amqp_method bm = {.id = AMQP_CONNECTION_BLOCKED};
		bm.u.connection_blocked.reason = amqp_cstr(c->s->alarm);
		conn_send_method(c, 0, &bm);
	}
}

/* ---- frame dispatch --------------------------------------------------- */

static void handle_connection_method(struct conn *c, const struct amqp_method *m)
{
	switch (m->id) {
	case AMQP_CONNECTION_CLOSE: {
		struct amqp_method ok = {.id = AMQP_CONNECTION_CLOSE_OK};
		conn_send_method(c, 0, &ok);
		if (m->u.connection_close.reply_code != AMQP_REPLY_SUCCESS)
			log_info("%s: client closed the connection: %u %.*s", c->name,
			         m->u.connection_close.reply_code,
			         (int)m->u.connection_close.reply_text.len,
			         (const char *)m->u.connection_close.reply_text.ptr);
		free_channels(c);
		close_after_flush(c);
		return;
	}
	case AMQP_CONNECTION_CLOSE_OK:
		if (c->state == CONN_CLOSING) {
			close_after_flush(c);
			return;
		}
		break;
	default:
		break;
	}
	if (c->state == CONN_CLOSING)
		return; /* discard everything but close / close-ok */

	uint32_t expect = 0;
	switch (c->state) {
	case CONN_AWAIT_START_OK:
		expect = AMQP_CONNECTION_START_OK;
		break;
	case CONN_AWAIT_SECURE_OK:
		expect = AMQP_CONNECTION_SECURE_OK;
		break;
	case CONN_AWAIT_TUNE_OK:
		expect = AMQP_CONNECTION_TUNE_OK;
		break;
	case CONN_AWAIT_OPEN:
		expect = AMQP_CONNECTION_OPEN;
		break;
	default:
		break;
	}
	if (expect && m->id != expect) {
		/* RabbitMQ calls this a handshake command error (503). */
		conn_error(c, AMQP_COMMAND_INVALID, m->id,
		           "COMMAND_INVALID - expected '%s', got '%s'", amqp_method_name(expect),
		           amqp_method_name(m->id));
		return;
	}
	switch (expect ? m->id : 0) {
	case AMQP_CONNECTION_START_OK:
		handle_start_ok(c, &m->u.connection_start_ok);
		return;
	case AMQP_CONNECTION_SECURE_OK:
		login_secure_ok(c, &m->u.connection_secure_ok);
		return;
	case AMQP_CONNECTION_TUNE_OK:
		handle_tune_ok(c, &m->u.connection_tune_ok);
		return;
	case AMQP_CONNECTION_OPEN:
		login_open(c, &m->u.connection_open);
		return;
	default:
		break;
	}
	switch (m->id) {
	case AMQP_CONNECTION_BLOCKED:
	case AMQP_CONNECTION_UNBLOCKED:
		return; /* a client may not block us; ignore as RabbitMQ does */
	case AMQP_CONNECTION_UPDATE_SECRET:
		login_update_secret(c, &m->u.connection_update_secret);
		return;
	default:
		if (c->state == CONN_OPEN)
			conn_error(c, AMQP_CHANNEL_ERROR, m->id,
			           "CHANNEL_ERROR - unexpected method in connection state running");
		else
			conn_error(c, AMQP_COMMAND_INVALID, m->id,
			           "COMMAND_INVALID - unexpected method %s",
			           amqp_method_name(m->id));
		return;
	}
}

static unsigned open_channels(const struct conn *c)
{
	return c->nchannels;
}

/* A frame for a channel number above channel_max: as RabbitMQ, the count
 * of open channels is checked first (530), then the number (504). */
static void channel_over_max(struct conn *c, const struct amqp_frame *f)
{
	uint32_t mid = 0;
	struct amqp_method m;
	if (f->type == AMQP_FRAME_METHOD && amqp_method_decode(f->payload, f->size, &m, NULL) == 0)
		mid = m.id;
	if (mid == AMQP_CHANNEL_OPEN && open_channels(c) >= c->channel_max) {
		conn_error(c, AMQP_NOT_ALLOWED, 0,
		           "NOT_ALLOWED - number of channels opened (%u) has reached the "
		           "negotiated channel_max (%u)",
		           open_channels(c), c->channel_max);
		return;
	}
	conn_error(c, AMQP_CHANNEL_ERROR, mid,
	           "CHANNEL_ERROR - channel id %u exceeds the negotiated channel_max (%u)",
	           f->channel, c->channel_max);
}

static void handle_channel_frame(struct conn *c, const struct amqp_frame *f)
{
	if (c->state != CONN_OPEN) {
		if (c->state != CONN_CLOSING)
			conn_error(c, AMQP_UNEXPECTED_FRAME, 0,
			           "UNEXPECTED_FRAME - frame on channel %u before connection.open",
			           f->channel);
		return;
	}
	if (f->channel > c->channel_max) {
		channel_over_max(c, f);
		return;
	}
	struct channel *ch = conn_channel(c, f->channel);
	if (f->type == AMQP_FRAME_METHOD) {
		struct amqp_method m;
		struct amqp_err err;
		if (amqp_method_decode(f->payload, f->size, &m, &err) < 0) {
			conn_error(c, err.code, f->size >= 4 ? m.id : 0, "%s", err.text);
			return;
		}
		if (AMQP_METHOD_CLASS(m.id) == AMQP_CLASS_CONNECTION) {
			conn_error(c, AMQP_COMMAND_INVALID, m.id,
			           "COMMAND_INVALID - %s on channel %u", amqp_method_name(m.id),
			           f->channel);
			return;
		}
		if (!ch) {
			if (m.id != AMQP_CHANNEL_OPEN) {
				if (m.id == AMQP_CHANNEL_CLOSE_OK)
					return; /* late close-ok after we freed it */
				conn_error(c, AMQP_CHANNEL_ERROR, m.id,
				           "CHANNEL_ERROR - expected 'channel.open'");
				return;
			}
			if (!login_channel_opened(c)) {
				const struct user *u = model_user(c->s->md, c->user);
				conn_error(
				    c, AMQP_NOT_ALLOWED, 0,
				    "NOT_ALLOWED - number of channels opened for user '%s' has "
				    "reached the maximum allowed user limit of %lld",
				    c->user, u ? (long long)u->max_channels : 0LL);
				return;
			}
			ch = channel_new(c, f->channel);
			if (!ch || conn_channel_add(c, ch) < 0) {
				login_channel_closed(c);
				if (ch)
					channel_free(ch);
				conn_error(c, AMQP_INTERNAL_ERROR, m.id,
				           "INTERNAL_ERROR - out of memory");
				return;
			}
			struct amqp_method ok = {.id = AMQP_CHANNEL_OPEN_OK};
			conn_send_method(c, f->channel, &ok);
			return;
		}
		if (m.id == AMQP_CHANNEL_OPEN && ch->state == CH_OPEN) {
			conn_error(c, AMQP_CHANNEL_ERROR, m.id,
			           "CHANNEL_ERROR - second 'channel.open' seen");
			return;
		}
		channel_handle_method(ch, &m);
		return;
	}
	if (!ch) {
		/* As RabbitMQ: content with no method before it, open or not. */
		conn_error(
		    c, AMQP_UNEXPECTED_FRAME, 0,
		    "UNEXPECTED_FRAME - expected method frame, got non method frame instead");
		return;
	}
	if (f->type == AMQP_FRAME_HEADER)
		channel_handle_header(ch, f->payload, f->size);
	else
		channel_handle_body(ch, f->payload, f->size);
}

int conn_hold_frame(struct conn *c)
{
	const struct amqp_frame *f = c->cur_frame;
	if (!f || c->held)
		return -1;
	c->held = malloc(f->size ? f->size : 1);
	if (!c->held)
		return -1;
	memcpy(c->held, f->payload, f->size);
	c->held_frame = *f;
	c->held_frame.payload = c->held;
	return 0;
}

void conn_replay_held(struct conn *c)
{
	uint8_t *buf = c->held;
	if (!buf)
		return;
	struct amqp_frame f = c->held_frame;
	c->held = NULL;
	if (c->state == CONN_OPEN) {
		c->cur_frame = &f;
		c->replaying = true;
		handle_channel_frame(c, &f);
		c->replaying = false;
		c->cur_frame = NULL;
	}
	free(buf);
	wake(c); /* reading again */
	c->s->schedule(c->s);
}

static void handle_frame(struct conn *c, const struct amqp_frame *f)
{
	if (f->type == AMQP_FRAME_HEARTBEAT)
		return;
	if (f->channel != 0) {
		c->cur_frame = f;
		handle_channel_frame(c, f);
		c->cur_frame = NULL;
		return;
	}
	if (f->type != AMQP_FRAME_METHOD) {
		if (c->state != CONN_CLOSING)
			conn_error(c, AMQP_UNEXPECTED_FRAME, 0,
			           "UNEXPECTED_FRAME - content frame on channel 0");
		return;
	}
	struct amqp_method m;
	struct amqp_err err;
	if (amqp_method_decode(f->payload, f->size, &m, &err) < 0) {
		if (c->state != CONN_CLOSING)
			conn_error(c, err.code, f->size >= 4 ? m.id : 0, "%s", err.text);
		return;
	}
	if (AMQP_METHOD_CLASS(m.id) != AMQP_CLASS_CONNECTION) {
		if (c->state == CONN_OPEN)
			conn_error(c, AMQP_CHANNEL_ERROR, m.id,
			           "CHANNEL_ERROR - unexpected method in connection state running");
		else if (c->state != CONN_CLOSING)
			conn_error(c, AMQP_COMMAND_INVALID, m.id,
			           "COMMAND_INVALID - %s on channel 0", amqp_method_name(m.id));
		return;
	}
	handle_connection_method(c, &m);
}

/* Feed input bytes; returns how many were consumed. */
static size_t conn_feed(struct conn *c, const uint8_t *data, size_t len)
{
	size_t pos = 0;
	/* Stop at a frame boundary once blocked: the rest stays buffered. */
	while (pos < len && conn_wants_read(c)) {
		if (output_backlog(c)) {
			c->out_paused = true; /* at a frame boundary; see OUT_READ_PAUSE */
			wake(c);
			break;
		}
		struct amqp_frame f;
		struct amqp_err err = {0, NULL};
		size_t used = 0;
		int rc = amqp_parser_feed(&c->parser, data + pos, len - pos, &used, &f, &err);
		pos += used;
		if (rc == AMQP_PARSE_FRAME) {
			handle_frame(c, &f);
			continue;
		}
		if (rc == AMQP_PARSE_PROTOCOL_HEADER) {
			send_start(c);
			continue;
		}
		if (rc == AMQP_PARSE_NEED_MORE)
			break;
		if (rc == AMQP_PARSE_BAD_PROTOCOL) {
			/* Tell the client what we speak, then hang up. */
			log_error("%s: closing connection: unsupported protocol header", c->name);
			outq_add(&c->out, amqp_protocol_header, AMQP_PROTOCOL_HEADER_LEN);
			close_after_flush(c);
			return len;
		}
		/* A corrupt stream (bad frame end, unknown frame type): close the
		 * socket without sending anything more (spec 4.2.3, RabbitMQ).
		 * Other framing errors: tell the client, then stop reading. */
		if (c->parser.corrupt) {
			log_error("%s: closing connection: %s", c->name, err.text);
			close_after_flush(c); /* what earlier frames queued still goes */
			return len;
		}
		if (c->state >= CONN_AWAIT_START_OK && c->state < CONN_CLOSING)
			conn_error(c, err.code, 0, "%s", err.text);
		else
			log_error("%s: closing connection: %s", c->name, err.text);
		if (c->state != CONN_CLOSING)
			close_after_flush(c);
		else
			c->read_stopped = true; /* only close-ok could come, and cannot */
		return len;
	}
	return pos;
}

void conn_mark_confirm(struct conn *c, struct channel *ch)
{
	if (ch->confirm_queued)
		return;
	ch->confirm_queued = true;
	ch->confirm_next = c->confirm_dirty;
	c->confirm_dirty = ch;
	if (!c->confirm_listed) {
		c->confirm_listed = true;
		c->confirm_next = c->s->confirm_conns;
		c->s->confirm_conns = c;
	}
	c->s->schedule(c->s);
}

static void confirm_unlist(struct conn *c)
{
	if (!c->confirm_listed)
		return;
	struct conn **pp = &c->s->confirm_conns;
	while (*pp && *pp != c)
		pp = &(*pp)->confirm_next;
	if (*pp)
		*pp = c->confirm_next;
	c->confirm_listed = false;
}

static void flush_confirms(struct conn *c)
{
	while (c->confirm_dirty) {
		struct channel *ch = c->confirm_dirty;
		c->confirm_dirty = ch->confirm_next;
		ch->confirm_queued = false;
		channel_flush_confirms(ch);
	}
}

bool session_vhost_delete(struct session *s, const char *name)
{
	struct vhost *vh = model_vhost(s->md, name, strlen(name));
	if (!vh)
		return false;
	char reason[300];
	snprintf(reason, sizeof(reason), "vhost '%s' is deleted", name);
	for (struct conn *c = s->conns; c; c = c->s_next) {
		if (c->vh != vh)
			continue;
		/* Nothing of the vhost may outlive it: channels (consumers,
		 * unacked deliveries) and exclusive queues go now. */
		free_channels(c);
		queue_owner_release(&c->excl);
		login_vhost_gone(c);
		c->vh = NULL;
		conn_force_close(c, reason);
	}
	return model_vhost_delete(s->md, name);
}

void session_flush_confirms(struct session *s)
{
	while (s->confirm_conns) {
		struct conn *c = s->confirm_conns;
		s->confirm_conns = c->confirm_next;
		c->confirm_listed = false;
		flush_confirms(c);
	}
}

size_t conn_input(struct conn *c, const uint8_t *data, size_t len, int64_t now)
{
	c->now = c->last_recv = now;
	size_t n = conn_feed(c, data, len);
	c->recv_oct += n;
	amqp_parser_trim(&c->parser, 16 * 1024); /* frames above are handled */
	c->s->schedule(c->s);                    /* confirms, definitions, group commit, alarms */
	return n;
}

/* ---- blocking ----------------------------------------------------------- */

void conn_block(struct conn *c)
{
	if (c->blocked || c->state != CONN_OPEN)
		return;
	c->blocked = true;
	wake(c);
	const char *why = c->s->alarm ? c->s->alarm : "alarm";
	if (c->cap_blocked) {
		struct amqp_method m = {.id = AMQP_CONNECTION_BLOCKED};
		m.u.connection_blocked.reason = amqp_cstr(why);
		conn_send_method(c, 0, &m);
	}
	log_warning("%s: publishing blocked: %s", c->name, why);
}

void conn_stop_reading(struct conn *c)
{
	if (c->state != CONN_CLOSED) {
		c->read_stopped = true;
		wake(c);
	}
}

void conn_unblock(struct conn *c)
{
	if (!c->blocked)
		return;
	c->blocked = false;
	if (c->state != CONN_OPEN)
		return;
	wake(c); /* reading again; input that arrived meanwhile is still there */
	if (c->cap_blocked) {
		struct amqp_method m = {.id = AMQP_CONNECTION_UNBLOCKED};
		conn_send_method(c, 0, &m);
	}
}
