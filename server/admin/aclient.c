/*
 * aclient.c - the admin API's in-process AMQP client (see aclient.h).
 */
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#include "admin/aclient.h"
#include "amqp_frame.h"
#include "io/conn_bev.h"
#include "session/conn.h"
#include "session/login.h"

struct aclient {
	struct conn_io io; /* handed to the engine */
	struct conn *c;    /* NULL once gone */
	struct event *wake_ev;
	struct event *timer;
	int64_t armed;
	aclient_fn fn;
	void *arg;
	struct amqp_frame_parser fp;
	uint8_t *out; /* engine output not yet parsed */
	size_t out_len, out_cap;
	uint8_t *in; /* input the engine has not consumed (it paused) */
	size_t in_len, in_cap;
	char *user, *password;
	/* Content being assembled after a get-ok / return / deliver. */
	bool in_content;
	struct aclient_event pending;
	uint8_t *method_copy; /* the method's payload, which pending borrows */
	uint8_t *props;
	size_t props_len;
	uint8_t *body;
	uint64_t body_size, body_have;
	int depth;          /* pump() nesting */
	bool dead;          /* aclient_free() asked inside a callback */
	bool gone_told;     /* ACLIENT_GONE delivered */
	bool start_pending; /* the protocol header is still to be sent */
};

static int grow(uint8_t **buf, size_t *cap, size_t need)
{
	if (need <= *cap)
		return 0;
	size_t n = *cap ? *cap : 4096;
	while (n < need)
		n *= 2;
	uint8_t *nb = realloc(*buf, n);
	if (!nb)
		return -1;
	*buf = nb;
	*cap = n;
	return 0;
}

static void pump(struct aclient *ac);
static void start_ok(struct aclient *ac);

static void send_bytes(struct aclient *ac, const void *data, size_t len);

static void wake_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct aclient *ac = arg;
	if (ac->start_pending) {
		/* connection.start comes back at once; on_frame answers it. */
		ac->start_pending = false;
		send_bytes(ac, amqp_protocol_header, AMQP_PROTOCOL_HEADER_LEN);
		return;
	}
	pump(ac);
}

static void engine_wake(struct conn_io *io)
{
	struct aclient *ac = (struct aclient *)io;
	event_active(ac->wake_ev, 0, 0);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct aclient *ac = arg;
	ac->armed = -1;
	if (ac->c)
		conn_tick(ac->c, conn_bev_now());
	pump(ac);
}

static void emit(struct aclient *ac, const struct aclient_event *ev)
{
	if (!ac->dead)
		ac->fn(ac, ev, ac->arg);
}

static void gone(struct aclient *ac)
{
	if (ac->c) {
		conn_free(ac->c);
		ac->c = NULL;
	}
	if (!ac->gone_told) {
		ac->gone_told = true;
		struct aclient_event ev = {.kind = ACLIENT_GONE};
		emit(ac, &ev);
	}
}

static bool has_content(uint32_t id)
{
	return id == AMQP_BASIC_GET_OK || id == AMQP_BASIC_RETURN || id == AMQP_BASIC_DELIVER;
}

static void content_done(struct aclient *ac)
{
	ac->in_content = false;
	ac->pending.has_content = true;
	ac->pending.props = (struct amqp_bytes){ac->props, ac->props_len};
	ac->pending.body = (struct amqp_bytes){ac->body, (size_t)ac->body_have};
	emit(ac, &ac->pending);
	free(ac->method_copy);
	free(ac->props);
	free(ac->body);
	ac->method_copy = ac->props = ac->body = NULL;
}

/* One frame from the engine. */
static void on_frame(struct aclient *ac, const struct amqp_frame *f)
{
	if (f->type == AMQP_FRAME_METHOD) {
		struct aclient_event ev = {.kind = ACLIENT_METHOD, .channel = f->channel};
		if (amqp_method_decode(f->payload, f->size, &ev.m, NULL) < 0)
			return;
		if (ev.m.id == AMQP_CONNECTION_START) {
			start_ok(ac);
			return;
		}
		if (!has_content(ev.m.id)) {
			emit(ac, &ev);
			/* Finish what the server closed, so the engine can go. */
			if (ev.m.id == AMQP_CONNECTION_CLOSE) {
				struct amqp_method ok = {.id = AMQP_CONNECTION_CLOSE_OK};
				aclient_method(ac, 0, &ok);
			} else if (ev.m.id == AMQP_CHANNEL_CLOSE) {
				struct amqp_method ok = {.id = AMQP_CHANNEL_CLOSE_OK};
				aclient_method(ac, f->channel, &ok);
			}
			return;
		}
		/* The method borrows the frame: keep a copy until the body is in. */
		ac->method_copy = malloc(f->size ? f->size : 1);
		if (!ac->method_copy)
			return;
		memcpy(ac->method_copy, f->payload, f->size);
		amqp_method_decode(ac->method_copy, f->size, &ac->pending.m, NULL);
		ac->pending.kind = ACLIENT_METHOD;
		ac->pending.channel = f->channel;
		ac->in_content = true;
		return;
	}
	if (!ac->in_content)
		return;
	if (f->type == AMQP_FRAME_HEADER && f->size >= 14) {
		const uint8_t *p = f->payload;
		uint64_t size = 0;
		for (int i = 4; i < 12; i++)
			size = size << 8 | p[i];
		ac->body_size = size;
		ac->body_have = 0;
		ac->props_len = f->size - 12;
		ac->props = malloc(ac->props_len ? ac->props_len : 1);
		ac->body = malloc(size ? (size_t)size : 1);
		if (!ac->props || !ac->body) {
			ac->in_content = false;
			return;
		}
		memcpy(ac->props, p + 12, ac->props_len);
		if (size == 0)
			content_done(ac);
	} else if (f->type == AMQP_FRAME_BODY && ac->body) {
		size_t n = f->size;
		if (ac->body_have + n > ac->body_size)
			n = (size_t)(ac->body_size - ac->body_have);
		memcpy(ac->body + ac->body_have, f->payload, n);
		ac->body_have += n;
		if (ac->body_have == ac->body_size)
			content_done(ac);
	}
}

static void parse_output(struct aclient *ac)
{
	size_t off = 0;
	while (off < ac->out_len && !ac->dead) {
		struct amqp_frame f;
		struct amqp_err err;
		size_t used = 0;
		int rc =
		    amqp_parser_feed(&ac->fp, ac->out + off, ac->out_len - off, &used, &f, &err);
		off += used;
		if (rc == AMQP_PARSE_FRAME)
			on_frame(ac, &f);
		else if (rc != AMQP_PARSE_NEED_MORE || used == 0)
			break;
	}
	/* The parser copied a split frame's start; the rest is consumed. */
	memmove(ac->out, ac->out + off, ac->out_len - off);
	ac->out_len -= off;
}

static void feed(struct aclient *ac)
{
	if (!ac->c || !ac->in_len || !conn_wants_read(ac->c))
		return;
	size_t n = conn_input(ac->c, ac->in, ac->in_len, conn_bev_now());
	memmove(ac->in, ac->in + n, ac->in_len - n);
	ac->in_len -= n;
}

/* Apply the engine's requests, parse its output, hand events over. */
static void pump(struct aclient *ac)
{
	ac->depth++;
	for (int round = 0; ac->c && !ac->dead && round < 1000; round++) {
		struct conn_poll p;
		conn_poll(ac->c, &p);
		if (p.reset) {
			gone(ac);
			break;
		}
		struct outq_chunk ch[16];
		size_t n, took = 0;
		while ((n = conn_take_output(ac->c, ch, 16)) > 0) {
			for (size_t i = 0; i < n; i++) {
				if (grow(&ac->out, &ac->out_cap, ac->out_len + ch[i].len) == 0) {
					memcpy(ac->out + ac->out_len, ch[i].ptr, ch[i].len);
					ac->out_len += ch[i].len;
				}
				took += ch[i].len;
				outq_chunk_release(&ch[i]);
			}
		}
		conn_output_pending(ac->c, 0);
		if (ac->depth == 1)
			parse_output(ac);
		if (!ac->c || ac->dead)
			break;
		if (p.close) {
			gone(ac);
			break;
		}
		size_t before = ac->in_len;
		if (p.want_read)
			feed(ac);
		if (p.deadline >= 0 && p.deadline != ac->armed) {
			int64_t d = p.deadline - conn_bev_now();
			if (d < 0)
				d = 0;
			struct timeval tv = {d / 1000, (d % 1000) * 1000};
			evtimer_add(ac->timer, &tv);
			ac->armed = p.deadline;
		}
		if (!took && ac->in_len == before)
			break;
	}
	ac->depth--;
	if (ac->depth == 0 && ac->dead)
		aclient_free(ac);
}

static void send_bytes(struct aclient *ac, const void *data, size_t len)
{
	if (!ac->c || grow(&ac->in, &ac->in_cap, ac->in_len + len) < 0)
		return;
	memcpy(ac->in + ac->in_len, data, len);
	ac->in_len += len;
	feed(ac);
	if (ac->depth == 0)
		pump(ac);
}

void aclient_method(struct aclient *ac, uint16_t ch, const struct amqp_method *m)
{
	uint8_t stack[4096];
	size_t n = amqp_frame_method(stack, sizeof(stack), ch, m);
	if (n > sizeof(stack)) {
		uint8_t *buf = malloc(n);
		if (!buf)
			return;
		amqp_frame_method(buf, n, ch, m);
		send_bytes(ac, buf, n);
		free(buf);
		return;
	}
	if (n)
		send_bytes(ac, stack, n);
}

void aclient_publish(struct aclient *ac, uint16_t ch, const struct amqp_basic_publish *p,
                     const struct amqp_basic_props *props, struct amqp_bytes body)
{
	if (!ac->c)
		return;
	static const struct amqp_basic_props none;
	size_t max = ac->c->frame_max ? ac->c->frame_max - AMQP_FRAME_OVERHEAD : 131064;
	size_t cap = 2 * 65536 + body.len + (body.len / max + 1) * 8;
	uint8_t *buf = malloc(cap);
	if (!buf)
		return;
	struct amqp_method m = {.id = AMQP_BASIC_PUBLISH};
	m.u.basic_publish = *p;
	size_t n = amqp_frame_method(buf, 65536, ch, &m);
	size_t h = n && n <= 65536 ? amqp_frame_header(buf + n, 65536, ch, AMQP_CLASS_BASIC,
	                                               body.len, props ? props : &none)
	                           : 0;
	if (!n || n > 65536 || !h || h > 65536) {
		free(buf);
		return;
	}
	n += h;
	for (size_t off = 0; off < body.len; off += max) {
		size_t k = body.len - off < max ? body.len - off : max;
		n += amqp_frame_body(buf + n, k + 8, ch, (struct amqp_bytes){body.ptr + off, k});
	}
	send_bytes(ac, buf, n);
	free(buf);
}

static void start_ok(struct aclient *ac)
{
	size_t ul = strlen(ac->user), pl = strlen(ac->password);
	uint8_t *resp = malloc(ul + pl + 2);
	if (!resp)
		return;
	resp[0] = 0;
	memcpy(resp + 1, ac->user, ul);
	resp[1 + ul] = 0;
	memcpy(resp + 2 + ul, ac->password, pl);
	/* A failed login is told at once (connection.close 403). */
	struct amqp_table_entry caps_e[] = {
	    {amqp_cstr("authentication_failure_close"), {.type = 't', .v.b = true}},
	    {amqp_cstr("publisher_confirms"), {.type = 't', .v.b = true}},
	};
	struct amqp_table caps = {caps_e, 2};
	struct amqp_field_value capv = {.type = 'F'};
	capv.v.table.built = &caps;
	struct amqp_table_entry props_e[] = {
	    {amqp_cstr("capabilities"), capv},
	    {amqp_cstr("connection_name"),
	     {.type = 'S', .v.str = {(const uint8_t *)"amqpd admin API", 15}}},
	};
	struct amqp_table props = {props_e, 2};
	uint8_t pbuf[512];
	struct amqp_wr w;
	amqp_wr_init(&w, pbuf, sizeof(pbuf));
	amqp_table_encode_contents(&w, &props);
	struct amqp_method so = {.id = AMQP_CONNECTION_START_OK};
	so.u.connection_start_ok.client_properties = (struct amqp_bytes){pbuf, w.len};
	so.u.connection_start_ok.mechanism = amqp_cstr("PLAIN");
	so.u.connection_start_ok.response = (struct amqp_bytes){resp, ul + pl + 2};
	so.u.connection_start_ok.locale = amqp_cstr("en_US");
	aclient_method(ac, 0, &so);
	memset(resp, 0, ul + pl + 2);
	free(resp);
}

struct aclient *aclient_new(struct session *s, struct event_base *base, const char *user,
                            const char *password, const char *peer_addr, uint16_t peer_port,
                            bool peer_loopback, aclient_fn fn, void *arg)
{
	struct aclient *ac = calloc(1, sizeof(*ac));
	if (!ac)
		return NULL;
	ac->io.wake = engine_wake;
	ac->fn = fn;
	ac->arg = arg;
	ac->armed = -1;
	ac->user = strdup(user);
	ac->password = strdup(password);
	ac->wake_ev = event_new(base, -1, 0, wake_cb, ac);
	ac->timer = evtimer_new(base, timer_cb, ac);
	char name[160];
	snprintf(name, sizeof(name), "%s:%u -> admin API", peer_addr, (unsigned)peer_port);
	if (ac->user && ac->password && ac->wake_ev && ac->timer)
		ac->c = conn_new(s, &ac->io, name, peer_loopback, conn_bev_now());
	if (!ac->c) {
		aclient_free(ac);
		return NULL;
	}
	ac->c->internal = true;
	conn_set_peer(ac->c, peer_addr, peer_port, false);
	amqp_parser_init(&ac->fp, AMQP_PARSER_CLIENT, 0);
	/* The handshake starts from the loop, not inside this call: the owner
	 * has its handle before the first event. */
	ac->start_pending = true;
	event_active(ac->wake_ev, 0, 0);
	return ac;
}

void aclient_open(struct aclient *ac, const char *vhost)
{
	if (!ac->c)
		return;
	struct amqp_method to = {.id = AMQP_CONNECTION_TUNE_OK};
	to.u.connection_tune_ok.channel_max = ac->c->channel_max;
	to.u.connection_tune_ok.frame_max = ac->c->frame_max;
	to.u.connection_tune_ok.heartbeat = 0;
	aclient_method(ac, 0, &to);
	struct amqp_method op = {.id = AMQP_CONNECTION_OPEN};
	op.u.connection_open.virtual_host = amqp_cstr(vhost);
	aclient_method(ac, 0, &op);
}

void aclient_set_handler(struct aclient *ac, aclient_fn fn, void *arg)
{
	ac->fn = fn;
	ac->arg = arg;
}

const char *aclient_tags(const struct aclient *ac)
{
	if (!ac->c || !ac->c->auth || !ac->c->auth->tags)
		return "";
	return ac->c->auth->tags;
}

void aclient_free(struct aclient *ac)
{
	if (!ac)
		return;
	if (ac->depth > 0) {
		ac->dead = true;
		return;
	}
	if (ac->c)
		conn_free(ac->c);
	if (ac->wake_ev)
		event_free(ac->wake_ev);
	if (ac->timer)
		event_free(ac->timer);
	amqp_parser_free(&ac->fp);
	free(ac->out);
	free(ac->in);
	free(ac->method_copy);
	free(ac->props);
	free(ac->body);
	if (ac->password)
		memset(ac->password, 0, strlen(ac->password));
	free(ac->user);
	free(ac->password);
	free(ac);
}
