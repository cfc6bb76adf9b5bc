/*
 * conn.c - see conn.h.
 */
#include "session/conn.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "session/auth.h"
#include "io/broker.h"
#include "session/channel.h"
#include "config.h"
#include "store/definitions.h"
#include "util/log.h"
#include "model/message.h"
#include "model/queue.h"
#include "model/vhost.h"

#define OUT_HIGH_WATER (1u << 20) /* consumers wait above this */
#define OUT_LOW_WATER  (256u << 10)
#define CLOSE_GRACE_MS 2000 /* wait for close-ok this long */

static void conn_destroy(struct conn *c);
static void confirm_unlist(struct conn *c);
static void close_timeout_cb(evutil_socket_t fd, short what, void *arg);

/* ---- output ----------------------------------------------------------- */

void conn_send_method(struct conn *c, uint16_t channel, const struct amqp_method *m)
{
	if (c->state == CONN_CLOSED)
		return;
	uint8_t stack[1024];
	size_t n = amqp_frame_method(stack, sizeof(stack), channel, m);
	if (n == 0) {
		log_error("%s: cannot encode %s", c->name, amqp_method_name(m->id));
		return;
	}
	if (n <= sizeof(stack)) {
		evbuffer_add(c->out, stack, n);
		return;
	}
	uint8_t *big = malloc(n);
	if (!big)
		return;
	amqp_frame_method(big, n, channel, m);
	evbuffer_add(c->out, big, n);
	free(big);
}

static void unref_cleanup(const void *data, size_t len, void *arg)
{
	(void)data;
	(void)len;
	message_unref(arg);
}

/* Bodies at least this large are added to the output by reference. */
#define BODY_REF_MIN 4096

void conn_send_content(struct conn *c, uint16_t channel, const struct amqp_method *m,
                       struct message *msg)
{
	if (c->state == CONN_CLOSED)
		return;
	size_t max_chunk = c->frame_max - AMQP_FRAME_OVERHEAD;
	struct amqp_bytes props = {msg->props, msg->props_len};
	/* Method and header frames are written straight into the buffer. */
	size_t head_need = 1024 + 20 + msg->props_len;
	bool inline_body = msg->body_len < BODY_REF_MIN;
	size_t body_frames =
	    msg->body_len ? (size_t)((msg->body_len + max_chunk - 1) / max_chunk) : 0;
	size_t need = head_need + (inline_body ? (size_t)msg->body_len + body_frames * 8 : 0);
	struct evbuffer_iovec v;
	if (evbuffer_reserve_space(c->out, (ev_ssize_t)need, &v, 1) < 1)
		return;
	uint8_t *p = v.iov_base;
	size_t n = amqp_frame_method(p, need, channel, m);
	if (n == 0 || n > need)
		return; /* cannot happen: names are <= 255 bytes */
	size_t h =
	    amqp_frame_header_raw(p + n, need - n, channel, AMQP_CLASS_BASIC, msg->body_len, props);
	n += h;
	if (inline_body) {
		for (uint64_t off = 0; off < msg->body_len; off += max_chunk) {
			size_t chunk = msg->body_len - off < max_chunk
			                   ? (size_t)(msg->body_len - off)
			                   : max_chunk;
			struct amqp_bytes body = {msg->body + off, chunk};
			n += amqp_frame_body(p + n, need - n, channel, body);
		}
	}
	v.iov_len = n;
	evbuffer_commit_space(c->out, &v, 1);
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
		evbuffer_add(c->out, fh, sizeof(fh));
		message_ref(msg);
		evbuffer_add_reference(c->out, msg->body + off, chunk, unref_cleanup, msg);
		evbuffer_add(c->out, &end, 1);
	}
}

bool conn_output_full(struct conn *c)
{
	if (evbuffer_get_length(c->out) >= OUT_HIGH_WATER) {
		c->throttled = true;
		return true;
	}
	return false;
}

/* ---- closing ---------------------------------------------------------- */

static void close_socket_later(struct conn *c)
{
	/* Stop reading; the write callback frees the connection once what is
	 * queued (e.g. close-ok) has been written. */
	c->state = CONN_CLOSED;
	c->linger = true;
	bufferevent_disable(c->bev, EV_READ);
	if (evbuffer_get_length(c->out) == 0) {
		if (c->busy)
			c->free_pending = true;
		else
			conn_destroy(c);
	} else {
		bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
		/* A peer that never reads must not keep us waiting forever. */
		if (c->timer)
			event_free(c->timer);
		c->timer = evtimer_new(c->b->base, close_timeout_cb, c);
		struct timeval tv = {CLOSE_GRACE_MS / 1000, (CLOSE_GRACE_MS % 1000) * 1000};
		if (c->timer)
			evtimer_add(c->timer, &tv);
	}
}

static void close_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct conn *c = arg;
	if (c->state == CONN_CLOSING)
		log_warning("%s: no connection.close-ok in time, closing socket", c->name);
	c->linger = false;
	conn_destroy(c);
}

static void send_close(struct conn *c, uint16_t code, const char *text, uint32_t method_id)
{
	struct amqp_method m = {.id = AMQP_CONNECTION_CLOSE};
	m.u.connection_close.reply_code = code;
	m.u.connection_close.reply_text = amqp_cstr(text);
	m.u.connection_close.class_id = AMQP_METHOD_CLASS(method_id);
	m.u.connection_close.method_id = AMQP_METHOD_INDEX(method_id);
	conn_send_method(c, 0, &m);
	c->state = CONN_CLOSING;
	/* Wait a while for close-ok, then give up on the peer. */
	if (c->timer)
		event_free(c->timer);
	c->timer = evtimer_new(c->b->base, close_timeout_cb, c);
	struct timeval tv = {CLOSE_GRACE_MS / 1000, (CLOSE_GRACE_MS % 1000) * 1000};
	if (c->timer)
		evtimer_add(c->timer, &tv);
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
		close_socket_later(c);
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
		close_socket_later(c);
		return;
	}
	log_info("%s: closing connection: %s", c->name, text);
	send_close(c, AMQP_CONNECTION_FORCED, text, 0);
	/* Reading may have been stopped for the shutdown; close-ok must get in
	 * (anything else is discarded while closing). */
	bufferevent_enable(c->bev, EV_READ);
}

static void free_channels(struct conn *c)
{
	for (unsigned i = 0; i < c->channels_cap; i++) {
		struct channel *ch = c->channels[i];
		if (ch) {
			c->channels[i] = NULL;
			c->nchannels--;
			channel_free(ch);
		}
	}
}

void conn_channel_closed(struct conn *c, uint16_t id)
{
	if (id < c->channels_cap && c->channels[id]) {
		c->channels[id] = NULL;
		c->nchannels--;
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

/* A socket closed while the peer is still sending - e.g. the publishes an
 * amqplib client flushes after its connection.close - has unread input, and
 * closing such a socket makes the kernel answer with RST instead of FIN.  The
 * RST can reach the peer before it has read our close-ok, and its next write
 * fails (EPIPE/ECONNRESET): it never sees the close completed.  So a
 * connection we close cleanly only half-closes its socket (FIN after
 * everything written) and discards input until the peer closes too, or for
 * CLOSE_GRACE_MS at most, as RabbitMQ reads until the client hangs up. */
struct conn_linger {
	struct broker *b;
	struct conn_linger *next, *prev;
	struct bufferevent *bev;
	struct event *timer;
};

static void linger_free(struct conn_linger *l)
{
	if (l->prev)
		l->prev->next = l->next;
	else
		l->b->lingering = l->next;
	if (l->next)
		l->next->prev = l->prev;
	if (l->timer)
		event_free(l->timer);
	bufferevent_free(l->bev);
	free(l);
}

static void linger_read_cb(struct bufferevent *bev, void *arg)
{
	(void)arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	evbuffer_drain(in, evbuffer_get_length(in));
}

static void linger_event_cb(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
		linger_free(arg);
}

static void linger_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	linger_free(arg);
}

/* Takes over bev (everything written); frees it now if it cannot linger. */
static void linger_socket(struct broker *b, struct bufferevent *bev)
{
	struct conn_linger *l = calloc(1, sizeof(*l));
	evutil_socket_t fd = bufferevent_getfd(bev);
	if (!l || fd < 0 || shutdown(fd, SHUT_WR) < 0 ||
	    !(l->timer = evtimer_new(b->base, linger_timeout_cb, l))) {
		free(l);
		bufferevent_free(bev);
		return;
	}
	l->b = b;
	l->bev = bev;
	linger_read_cb(bev, l);
	bufferevent_setcb(bev, linger_read_cb, NULL, linger_event_cb, l);
	bufferevent_disable(bev, EV_WRITE);
	bufferevent_enable(bev, EV_READ);
	struct timeval tv = {CLOSE_GRACE_MS / 1000, (CLOSE_GRACE_MS % 1000) * 1000};
	evtimer_add(l->timer, &tv);
	l->next = b->lingering;
	if (l->next)
		l->next->prev = l;
	b->lingering = l;
}

void conn_free_lingering(struct broker *b)
{
	while (b->lingering)
		linger_free(b->lingering);
}

static void conn_destroy(struct conn *c)
{
	if (c->busy) {
		c->free_pending = true;
		return;
	}
	struct broker *b = c->b;
	c->state = CONN_CLOSED;
	free_channels(c);
	free(c->channels);
	c->channels = NULL;
	c->channels_cap = 0;
	/* Exclusive queues go with their connection. */
	queue_owner_release(&c->excl);
	if (c->timer)
		event_free(c->timer);
	if (c->bev) {
		if (c->linger && !b->stopping && evbuffer_get_length(c->out) == 0)
			linger_socket(b, c->bev);
		else
			bufferevent_free(c->bev);
	}
	amqp_parser_free(&c->parser);
	if (c->prev)
		c->prev->next = c->next;
	else
		b->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	b->nconns--;
	confirm_unlist(c);
	log_info("%s: connection closed", c->name);
	free(c);
	broker_schedule(b); /* exclusive queues may have gone: definitions */
}

void conn_free(struct conn *c)
{
	c->linger = false;
	conn_destroy(c);
}

/* ---- handshake -------------------------------------------------------- */

static void send_start(struct conn *c)
{
	char platform[64];
	snprintf(platform, sizeof(platform), "C11 / libevent %s", event_get_version());
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
	m.u.connection_start.mechanisms = amqp_cstr(AUTH_MECHANISMS);
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
	enum auth_result r =
	    auth_check(a->mechanism, a->response, c->peer_loopback, c->user, sizeof(c->user));
	if (r == AUTH_BAD_MECHANISM) {
		conn_error(c, AMQP_ACCESS_REFUSED, AMQP_CONNECTION_START_OK,
		           "ACCESS_REFUSED - unsupported authentication mechanism '%.*s'",
		           (int)a->mechanism.len, (const char *)a->mechanism.ptr);
		return;
	}
	if (r != AUTH_OK) {
		log_error("%s: user '%s' failed to authenticate with mechanism %.*s%s", c->name,
		          c->user, (int)a->mechanism.len, (const char *)a->mechanism.ptr,
		          strcmp(c->user, "guest") == 0 && !c->peer_loopback
		              ? " (guest may only connect from localhost)"
		              : "");
		conn_error(c, AMQP_ACCESS_REFUSED, 0,
		           "ACCESS_REFUSED - Login was refused using authentication mechanism "
		           "%.*s. For details see the broker logfile.",
		           (int)a->mechanism.len, (const char *)a->mechanism.ptr);
		return;
	}
	struct amqp_method m = {.id = AMQP_CONNECTION_TUNE};
	m.u.connection_tune.channel_max = c->b->cfg.channel_max;
	m.u.connection_tune.frame_max = c->b->cfg.frame_max;
	m.u.connection_tune.heartbeat = c->b->cfg.heartbeat;
	conn_send_method(c, 0, &m);
	c->state = CONN_AWAIT_TUNE_OK;
}

static void heartbeat_cb(evutil_socket_t fd, short what, void *arg);

static void handle_tune_ok(struct conn *c, const struct amqp_connection_tune_ok *a)
{
	const struct broker_config *cfg = &c->b->cfg;
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

static void handle_open(struct conn *c, const struct amqp_connection_open *a)
{
	struct vhost *vh =
	    broker_vhost(c->b, (const char *)a->virtual_host.ptr, a->virtual_host.len);
	if (!vh) {
		conn_error(c, AMQP_NOT_ALLOWED, AMQP_CONNECTION_OPEN,
		           "NOT_ALLOWED - vhost %.*s not found", (int)a->virtual_host.len,
		           (const char *)a->virtual_host.ptr);
		return;
	}
	c->vh = vh;
	struct amqp_method m = {.id = AMQP_CONNECTION_OPEN_OK};
	conn_send_method(c, 0, &m);
	c->state = CONN_OPEN;
	/* Handshake done: the timer now drives heartbeats. */
	if (c->timer)
		event_free(c->timer);
	c->timer = NULL;
	if (c->heartbeat) {
		c->timer = event_new(c->b->base, -1, EV_PERSIST, heartbeat_cb, c);
		/* Send at half the interval so the peer never sees a gap. */
		struct timeval tv = {c->heartbeat / 2, (c->heartbeat % 2) * 500000};
		if (c->timer)
			evtimer_add(c->timer, &tv);
	}
	log_info("%s: user '%s' authenticated and granted access to vhost '%s'", c->name, c->user,
	         vh->name);
	if (broker_alarm(c->b) && c->cap_blocked) {
		/* Tell it now, as RabbitMQ does, so it does not publish blind. */
		struct amqp_method bm = {.id = AMQP_CONNECTION_BLOCKED};
		bm.u.connection_blocked.reason = amqp_cstr(broker_alarm_reason(c->b));
		conn_send_method(c, 0, &bm);
	}
}

static void heartbeat_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct conn *c = arg;
	struct timeval now;
	event_base_gettimeofday_cached(c->b->base, &now);
	int64_t now_ms = (int64_t)now.tv_sec * 1000 + now.tv_usec / 1000;
	if (now_ms - c->last_recv >= 2000 * (int64_t)c->heartbeat) {
		log_error("%s: missed heartbeats from client, timeout: %us", c->name, c->heartbeat);
		conn_destroy(c);
		return;
	}
	uint8_t hb[8];
	amqp_frame_heartbeat(hb, sizeof(hb));
	evbuffer_add(c->out, hb, sizeof(hb));
}

static void handshake_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct conn *c = arg;
	log_error("%s: closing connection: handshake not completed within %u ms", c->name,
	          c->b->cfg.handshake_timeout);
	conn_destroy(c);
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
		close_socket_later(c);
		return;
	}
	case AMQP_CONNECTION_CLOSE_OK:
		if (c->state == CONN_CLOSING) {
			close_socket_later(c);
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
	case AMQP_CONNECTION_TUNE_OK:
		handle_tune_ok(c, &m->u.connection_tune_ok);
		return;
	case AMQP_CONNECTION_OPEN:
		handle_open(c, &m->u.connection_open);
		return;
	default:
		break;
	}
	switch (m->id) {
	case AMQP_CONNECTION_BLOCKED:
	case AMQP_CONNECTION_UNBLOCKED:
		return; /* a client may not block us; ignore as RabbitMQ does */
	case AMQP_CONNECTION_UPDATE_SECRET: {
		/* Only the built-in guest user exists, whose "secret" never
		 * expires; accept and acknowledge as RabbitMQ does. */
		struct amqp_method ok = {.id = AMQP_CONNECTION_UPDATE_SECRET_OK};
		conn_send_method(c, 0, &ok);
		return;
	}
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
			ch = channel_new(c, f->channel);
			if (!ch || conn_channel_add(c, ch) < 0) {
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

static void handle_frame(struct conn *c, const struct amqp_frame *f)
{
	if (f->type == AMQP_FRAME_HEARTBEAT)
		return;
	if (f->channel != 0) {
		handle_channel_frame(c, f);
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
	while (pos < len && c->state != CONN_CLOSED && !c->free_pending && !c->blocked) {
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
			evbuffer_add(c->out, amqp_protocol_header, AMQP_PROTOCOL_HEADER_LEN);
			close_socket_later(c);
			return len;
		}
		/* A corrupt stream (bad frame end, unknown frame type): close the
		 * socket without sending anything more (spec 4.2.3, RabbitMQ).
		 * Other framing errors: tell the client, then stop reading. */
		if (c->parser.corrupt) {
			log_error("%s: closing connection: %s", c->name, err.text);
			close_socket_later(c); /* what earlier frames queued still goes */
			return len;
		}
		if (c->state >= CONN_AWAIT_START_OK && c->state < CONN_CLOSING)
			conn_error(c, err.code, 0, "%s", err.text);
		else
			log_error("%s: closing connection: %s", c->name, err.text);
		bufferevent_disable(c->bev, EV_READ);
		if (c->state != CONN_CLOSING)
			close_socket_later(c);
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
		c->confirm_next = c->b->confirm_conns;
		c->b->confirm_conns = c;
	}
	broker_schedule(c->b);
}

static void confirm_unlist(struct conn *c)
{
	if (!c->confirm_listed)
		return;
	struct conn **pp = &c->b->confirm_conns;
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

void conn_flush_all_confirms(struct broker *b)
{
	while (b->confirm_conns) {
		struct conn *c = b->confirm_conns;
		b->confirm_conns = c->confirm_next;
		c->confirm_listed = false;
		flush_confirms(c);
	}
}

/* ---- libevent callbacks ----------------------------------------------- */

/* libevent 2.1's evbuffer_read() reads at most 4096 bytes per callback,
 * whatever max_single_read says: a 1 MiB body took ~250 readv + ioctl +
 * epoll_wait rounds (perf: half the broker's time).  So each callback tops
 * the input up with one large recv() into reserved space (the bufferevent
 * freezes its input's end while it owns it).  EOF and errors are left for
 * the bufferevent's next read, which sees them too. */
#define READ_TOPUP (256u * 1024)
static void read_more(struct conn *c, struct evbuffer *in)
{
	evutil_socket_t fd = bufferevent_getfd(c->bev);
	if (fd < 0 || evbuffer_get_length(in) >= READ_TOPUP)
		return;
	struct evbuffer_iovec v;
	evbuffer_unfreeze(in, 0);
	if (evbuffer_reserve_space(in, READ_TOPUP, &v, 1) == 1) {
		ssize_t n = recv(fd, v.iov_base, v.iov_len, MSG_DONTWAIT);
		v.iov_len = n > 0 ? (size_t)n : 0;
		evbuffer_commit_space(in, &v, 1);
	}
	evbuffer_freeze(in, 0);
}

static void read_cb(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	if (c->state != CONN_CLOSED && !c->blocked && !c->b->stopping)
		read_more(c, in);
	struct timeval now;
	event_base_gettimeofday_cached(c->b->base, &now);
	c->last_recv = (int64_t)now.tv_sec * 1000 + now.tv_usec / 1000;
	c->busy++;
	while (evbuffer_get_length(in) && c->state != CONN_CLOSED && !c->free_pending &&
	       !c->blocked) {
		struct evbuffer_iovec vec[16];
		int nv = evbuffer_peek(in, -1, NULL, vec, 16);
		size_t consumed = 0;
		bool stop = false;
		for (int i = 0; i < nv && i < 16; i++) {
			size_t n = conn_feed(c, vec[i].iov_base, vec[i].iov_len);
			consumed += n;
			if (n < vec[i].iov_len || c->state == CONN_CLOSED || c->free_pending ||
			    c->blocked) {
				stop = true;
				break;
			}
		}
		evbuffer_drain(in, consumed);
		if (stop || consumed == 0)
			break;
	}
	amqp_parser_trim(&c->parser, 16 * 1024); /* frames above are handled */
	broker_schedule(c->b);                   /* confirms, definitions, group commit, alarms */
	c->busy--;
	if (c->free_pending)
		conn_destroy(c);
}

static void write_cb(struct bufferevent *bev, void *arg)
{
	(void)bev;
	struct conn *c = arg;
	if (c->state == CONN_CLOSED) {
		if (evbuffer_get_length(c->out) == 0)
			conn_destroy(c);
		return;
	}
	if (c->throttled && evbuffer_get_length(c->out) < OUT_LOW_WATER) {
		c->throttled = false;
		c->busy++;
		for (unsigned i = 1; i < c->channels_cap; i++)
			if (c->channels[i])
				channel_resume(c->channels[i]);
		c->busy--;
		if (c->free_pending)
			conn_destroy(c);
	}
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	struct conn *c = arg;
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
		if (c->state != CONN_CLOSED && c->state != CONN_AWAIT_HEADER)
			log_warning("%s: client unexpectedly closed TCP connection", c->name);
		c->linger = false;
		conn_destroy(c);
	}
}

/* ---- accept ------------------------------------------------------------ */

static void addr_str(const struct sockaddr *sa, char *buf, size_t len, bool *loopback)
{
	char host[INET6_ADDRSTRLEN] = "?";
	int port = 0;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *s = (const struct sockaddr_in *)sa;
		inet_ntop(AF_INET, &s->sin_addr, host, sizeof(host));
		port = ntohs(s->sin_port);
		if (loopback)
			*loopback = (ntohl(s->sin_addr.s_addr) >> 24) == 127;
		snprintf(buf, len, "%s:%d", host, port);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)sa;
		inet_ntop(AF_INET6, &s->sin6_addr, host, sizeof(host));
		port = ntohs(s->sin6_port);
		if (loopback) {
			static const uint8_t v4mapped_lo[12] = {0, 0, 0, 0, 0,    0,
			                                        0, 0, 0, 0, 0xff, 0xff};
			*loopback = IN6_IS_ADDR_LOOPBACK(&s->sin6_addr) ||
			            (memcmp(&s->sin6_addr, v4mapped_lo, 12) == 0 &&
			             s->sin6_addr.s6_addr[12] == 127);
		}
		snprintf(buf, len, "[%s]:%d", host, port);
	} else {
		snprintf(buf, len, "unknown");
	}
}

void conn_accept(struct broker *b, int fd, const struct sockaddr *peer, int peerlen)
{
	(void)peerlen;
	struct conn *c = calloc(1, sizeof(*c));
	if (!c) {
		close(fd);
		return;
	}
	c->b = b;
	c->id = ++b->next_conn_id;
	char pa[80], la[80] = "?";
	addr_str(peer, pa, sizeof(pa), &c->peer_loopback);
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
		addr_str((struct sockaddr *)&ss, la, sizeof(la), NULL);
	snprintf(c->name, sizeof(c->name), "%s -> %s", pa, la);
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	evutil_make_socket_nonblocking(fd);
	c->bev = bufferevent_socket_new(b->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (!c->bev) {
		close(fd);
		free(c);
		return;
	}
	c->out = bufferevent_get_output(c->bev);
	/* Big reads and writes: fewer system calls per message. */
	bufferevent_set_max_single_read(c->bev, 256 * 1024);
	bufferevent_set_max_single_write(c->bev, 1024 * 1024);
	bufferevent_setcb(c->bev, read_cb, write_cb, event_cb, c);
	bufferevent_setwatermark(c->bev, EV_WRITE, OUT_LOW_WATER, 0);
	/* Until tune, frames may be at most frame-min-size (the spec). */
	amqp_parser_init(&c->parser, AMQP_PARSER_SERVER, AMQP_FRAME_MIN_SIZE);
	/* Split body frames go straight into the message being assembled. */
	amqp_parser_set_body_dest(&c->parser, channel_body_dest, c);
	c->frame_max = AMQP_FRAME_MIN_SIZE;
	c->state = CONN_AWAIT_HEADER;
	struct timeval now;
	event_base_gettimeofday_cached(b->base, &now);
	c->last_recv = (int64_t)now.tv_sec * 1000 + now.tv_usec / 1000;
	c->timer = evtimer_new(b->base, handshake_timeout_cb, c);
	struct timeval tv = {b->cfg.handshake_timeout / 1000,
	                     (b->cfg.handshake_timeout % 1000) * 1000};
	if (c->timer)
		evtimer_add(c->timer, &tv);
	c->next = b->conns;
	if (b->conns)
		b->conns->prev = c;
	b->conns = c;
	b->nconns++;
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	log_info("%s: accepting AMQP connection", c->name);
}

/* ---- exclusive queues, blocking --------------------------------------- */

void conn_block(struct conn *c)
{
	if (c->blocked || c->state != CONN_OPEN)
		return;
	c->blocked = true;
	bufferevent_disable(c->bev, EV_READ);
	if (c->cap_blocked) {
		struct amqp_method m = {.id = AMQP_CONNECTION_BLOCKED};
		m.u.connection_blocked.reason = amqp_cstr(broker_alarm_reason(c->b));
		conn_send_method(c, 0, &m);
	}
	log_warning("%s: publishing blocked: %s", c->name, broker_alarm_reason(c->b));
}

void conn_stop_reading(struct conn *c)
{
	if (c->state != CONN_CLOSED)
		bufferevent_disable(c->bev, EV_READ);
}

void conn_unblock(struct conn *c)
{
	if (!c->blocked)
		return;
	c->blocked = false;
	if (c->state != CONN_OPEN || c->b->stopping)
		return;
	bufferevent_enable(c->bev, EV_READ);
	if (c->cap_blocked) {
		struct amqp_method m = {.id = AMQP_CONNECTION_UNBLOCKED};
		conn_send_method(c, 0, &m);
	}
	/* Input that arrived while blocked is still buffered: process it. */
	if (evbuffer_get_length(bufferevent_get_input(c->bev)))
		bufferevent_trigger(c->bev, EV_READ, BEV_OPT_DEFER_CALLBACKS);
}
