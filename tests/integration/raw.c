/*
 * raw.c - raw-socket AMQP frame building and reading for the integration
 * tests (see raw.h).
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "itest.h"
#include "itest_util.h"
#include "raw.h"

/* ---------------------------------------------------------------------------
 * Building frames
 */

void wb_put(struct wbuf *b, const void *d, size_t n)
{
	if (b->n + n > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap < b->n + n)
			cap *= 2;
		uint8_t *np = realloc(b->p, cap);
		if (!np)
			abort();
		b->p = np;
		b->cap = cap;
	}
	if (n)
		memcpy(b->p + b->n, d, n);
	b->n += n;
}

void wb_u8(struct wbuf *b, uint8_t v)
{
	wb_put(b, &v, 1);
}

void wb_u16(struct wbuf *b, uint16_t v)
{
	uint8_t x[2] = {(uint8_t)(v >> 8), (uint8_t)v};
	wb_put(b, x, 2);
}

void wb_u32(struct wbuf *b, uint32_t v)
{
	uint8_t x[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
	wb_put(b, x, 4);
}

void wb_u64(struct wbuf *b, uint64_t v)
{
	wb_u32(b, (uint32_t)(v >> 32));
	wb_u32(b, (uint32_t)v);
}

void wb_sstr(struct wbuf *b, const char *s)
{
	size_t n = strlen(s);
	wb_u8(b, (uint8_t)n);
	wb_put(b, s, n);
}

void wb_lstr(struct wbuf *b, const void *s, size_t n)
{
	wb_u32(b, (uint32_t)n);
	wb_put(b, s, n);
}

void wb_free(struct wbuf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

void wb_frame(struct wbuf *b, uint8_t type, uint16_t ch, const void *payload, size_t n)
{
	wb_u8(b, type);
	wb_u16(b, ch);
	wb_u32(b, (uint32_t)n);
	wb_put(b, payload, n);
	wb_u8(b, 0xCE);
}

void wb_method(struct wbuf *b, uint16_t ch, uint16_t cls, uint16_t mth, const struct wbuf *args)
{
	struct wbuf p = {0};
	wb_u16(&p, cls);
	wb_u16(&p, mth);
	if (args)
		wb_put(&p, args->p, args->n);
	wb_frame(b, 1, ch, p.p, p.n);
	wb_free(&p);
}

/* Client properties for start-ok: product, plus capabilities
 * {authentication_failure_close: true} when auth_close is set. */
static void wb_client_props(struct wbuf *b, bool auth_close)
{
	struct wbuf t = {0};
	wb_sstr(&t, "product");
	wb_u8(&t, 'S');
	wb_lstr(&t, "amqpd-itest", 11);
	if (auth_close) {
		struct wbuf caps = {0};
		wb_sstr(&caps, "authentication_failure_close");
		wb_u8(&caps, 't');
		wb_u8(&caps, 1);
		wb_sstr(&t, "capabilities");
		wb_u8(&t, 'F');
		wb_lstr(&t, caps.p, caps.n);
		wb_free(&caps);
	}
	wb_lstr(b, t.p, t.n);
	wb_free(&t);
}

void wb_start_ok(struct wbuf *b, bool auth_close, const char *mech, const void *resp,
                 size_t resp_len)
{
	struct wbuf a = {0};
	wb_client_props(&a, auth_close);
	wb_sstr(&a, mech);
	wb_lstr(&a, resp, resp_len);
	wb_sstr(&a, "en_US");
	wb_method(b, 0, 10, 11, &a);
	wb_free(&a);
}

void wb_start_ok_plain(struct wbuf *b, bool auth_close, const char *user, const char *pass)
{
	size_t ul = strlen(user), pl = strlen(pass);
	char *resp = malloc(ul + pl + 2); /* a password may be a token of kilobytes */
	if (!resp)
		abort();
	resp[0] = 0;
	memcpy(resp + 1, user, ul);
	resp[1 + ul] = 0;
	memcpy(resp + 2 + ul, pass, pl);
	wb_start_ok(b, auth_close, "PLAIN", resp, 2 + ul + pl);
	free(resp);
}

void wb_tune_ok(struct wbuf *b, uint16_t channel_max, uint32_t frame_max, uint16_t heartbeat)
{
	struct wbuf a = {0};
	wb_u16(&a, channel_max);
	wb_u32(&a, frame_max);
	wb_u16(&a, heartbeat);
	wb_method(b, 0, 10, 31, &a);
	wb_free(&a);
}

void wb_conn_open(struct wbuf *b, const char *vhost)
{
	struct wbuf a = {0};
	wb_sstr(&a, vhost);
	wb_sstr(&a, "");
	wb_u8(&a, 0);
	wb_method(b, 0, 10, 40, &a);
	wb_free(&a);
}

void wb_channel_open(struct wbuf *b, uint16_t ch)
{
	struct wbuf a = {0};
	wb_sstr(&a, "");
	wb_method(b, ch, 20, 10, &a);
	wb_free(&a);
}

void wb_flow(struct wbuf *b, uint16_t ch, bool active)
{
	struct wbuf a = {0};
	wb_u8(&a, active);
	wb_method(b, ch, 20, 20, &a);
	wb_free(&a);
}

void wb_close(struct wbuf *b, uint16_t ch, uint16_t code, const char *text)
{
	struct wbuf a = {0};
	wb_u16(&a, code);
	wb_sstr(&a, text);
	wb_u16(&a, 0);
	wb_u16(&a, 0);
	if (ch == 0)
		wb_method(b, 0, 10, 50, &a);
	else
		wb_method(b, ch, 20, 40, &a);
	wb_free(&a);
}

void wb_queue_declare(struct wbuf *b, uint16_t ch, const char *q, uint8_t bits,
                      const struct wbuf *table)
{
	struct wbuf a = {0};
	wb_u16(&a, 0);
	wb_sstr(&a, q);
	wb_u8(&a, bits);
	if (table)
		wb_put(&a, table->p, table->n);
	else
		wb_u32(&a, 0);
	wb_method(b, ch, 50, 10, &a);
	wb_free(&a);
}

void wb_publish(struct wbuf *b, uint16_t ch, const char *rk, uint8_t bits)
{
	struct wbuf a = {0};
	wb_u16(&a, 0);
	wb_sstr(&a, "");
	wb_sstr(&a, rk);
	wb_u8(&a, bits);
	wb_method(b, ch, 60, 40, &a);
	wb_free(&a);
}

void wb_header(struct wbuf *b, uint16_t ch, uint16_t cls, uint64_t body_size)
{
	struct wbuf a = {0};
	wb_u16(&a, cls);
	wb_u16(&a, 0);
	wb_u64(&a, body_size);
	wb_u16(&a, 0);
	wb_frame(b, 2, ch, a.p, a.n);
	wb_free(&a);
}

/* ---------------------------------------------------------------------------
 * Sending and reading
 */

int send_all(int fd, const void *p, size_t n)
{
	const uint8_t *q = p;
	while (n) {
		ssize_t k = send(fd, q, n, MSG_NOSIGNAL);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return -1;
		q += k;
		n -= (size_t)k;
	}
	return 0;
}

int send_wb(int fd, const struct wbuf *b)
{
	return send_all(fd, b->p, b->n);
}

int recv_exact(int fd, void *buf, size_t n, int64_t deadline)
{
	uint8_t *p = buf;
	size_t got = 0;
	while (got < n) {
		int64_t left = deadline - now_ms();
		if (left <= 0)
			return RF_TIMEOUT;
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		int r = poll(&pfd, 1, (int)left);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return RF_EOF;
		if (r == 0)
			return RF_TIMEOUT;
		ssize_t k = recv(fd, p + got, n - got, 0);
		if (k < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
			continue;
		if (k <= 0)
			return RF_EOF;
		got += (size_t)k;
	}
	return RF_OK;
}

uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

int read_frame(int fd, struct rframe *f, int timeout_ms)
{
	int64_t deadline = now_ms() + timeout_ms;
	uint8_t h[7], end;
	int r = recv_exact(fd, h, 7, deadline);
	if (r != RF_OK)
		return r;
	f->type = h[0];
	f->ch = get16(h + 1);
	f->size = get32(h + 3);
	if (f->size > RF_MAX)
		return RF_BAD;
	/* A frame that has started arriving is finished even past a short
	 * deadline: leaving its tail in the socket would desynchronise the
	 * next read. */
	int64_t rest = now_ms() + 5000;
	if (rest > deadline)
		deadline = rest;
	r = recv_exact(fd, f->payload, f->size, deadline);
	if (r == RF_OK)
		r = recv_exact(fd, &end, 1, deadline);
	if (r != RF_OK)
		return r;
	if (end != 0xCE)
		return RF_BAD;
	f->cls = f->mth = 0;
	if (f->type == 1 && f->size >= 4) {
		f->cls = get16(f->payload);
		f->mth = get16(f->payload + 2);
	}
	return RF_OK;
}

int read_method(int fd, struct rframe *f, int timeout_ms)
{
	int64_t deadline = now_ms() + timeout_ms;
	for (;;) {
		int left = (int)(deadline - now_ms());
		int r = read_frame(fd, f, left > 0 ? left : 0);
		if (r != RF_OK || f->type != 8)
			return r;
	}
}

const uint8_t *rd_take(struct rd *r, size_t n)
{
	if (r->bad || r->n - r->off < n) {
		r->bad = true;
		return NULL;
	}
	const uint8_t *p = r->p + r->off;
	r->off += n;
	return p;
}

uint8_t rd_u8(struct rd *r)
{
	const uint8_t *p = rd_take(r, 1);
	return p ? p[0] : 0;
}

uint16_t rd_u16(struct rd *r)
{
	const uint8_t *p = rd_take(r, 2);
	return p ? get16(p) : 0;
}

uint32_t rd_u32(struct rd *r)
{
	const uint8_t *p = rd_take(r, 4);
	return p ? get32(p) : 0;
}

void rd_sstr(struct rd *r, char *out)
{
	uint8_t n = rd_u8(r);
	const uint8_t *p = rd_take(r, n);
	out[0] = 0;
	if (p) {
		memcpy(out, p, n);
		out[n] = 0;
	}
}

bool parse_close(const struct rframe *f, struct rclose *c)
{
	struct rd r = {.p = f->payload + 4, .n = f->size - 4};
	c->code = rd_u16(&r);
	rd_sstr(&r, c->text);
	c->cls = rd_u16(&r);
	c->mth = rd_u16(&r);
	return !r.bad;
}

bool await_eof(int fd, int timeout_ms)
{
	int64_t deadline = now_ms() + timeout_ms;
	for (;;) {
		uint8_t buf[4096];
		int64_t left = deadline - now_ms();
		if (left <= 0)
			return false;
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		int r = poll(&pfd, 1, (int)left);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r < 0;
		ssize_t k = recv(fd, buf, sizeof(buf), 0);
		if (k < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (k <= 0)
			return true;
	}
}

int await_close(int fd, struct rclose *c, int timeout_ms)
{
	static struct rframe f;
	int64_t deadline = now_ms() + timeout_ms;
	memset(c, 0, sizeof(*c));
	for (;;) {
		int left = (int)(deadline - now_ms());
		int r = read_method(fd, &f, left > 0 ? left : 0);
		if (r == RF_BAD)
			return RF_EOF;
		if (r != RF_OK)
			return r;
		bool conn_close = f.type == 1 && f.ch == 0 && f.cls == 10 && f.mth == 50;
		bool chan_close = f.type == 1 && f.ch != 0 && f.cls == 20 && f.mth == 40;
		if (conn_close || chan_close) {
			parse_close(&f, c);
			c->kind = f.cls;
			c->ch = f.ch;
			struct wbuf b = {0};
			wb_method(&b, f.ch, f.cls, f.mth + 1, NULL);
			send_wb(fd, &b);
			wb_free(&b);
			return RF_OK;
		}
	}
}

/* ---------------------------------------------------------------------------
 * Connecting to g_broker
 */

int raw_start(struct rframe *f)
{
	int fd = broker_raw_connect(&g_broker);
	if (fd < 0)
		return -1;
	if (send_all(fd, "AMQP\x00\x00\x09\x01", 8) < 0 || read_method(fd, f, 5000) != RF_OK ||
	    f->type != 1 || f->cls != 10 || f->mth != 10) {
		close(fd);
		return -1;
	}
	return fd;
}

int raw_login(uint32_t frame_max, uint16_t heartbeat)
{
	static struct rframe f;
	int fd = raw_start(&f);
	if (fd < 0)
		return -1;
	struct wbuf b = {0};
	wb_start_ok_plain(&b, true, "guest", "guest");
	int ok = send_wb(fd, &b) == 0 && read_method(fd, &f, 5000) == RF_OK && f.cls == 10 &&
	         f.mth == 30;
	b.n = 0;
	wb_tune_ok(&b, 2047, frame_max, heartbeat);
	wb_conn_open(&b, "/");
	ok = ok && send_wb(fd, &b) == 0 && read_method(fd, &f, 5000) == RF_OK && f.cls == 10 &&
	     f.mth == 41;
	wb_free(&b);
	if (!ok) {
		close(fd);
		return -1;
	}
	return fd;
}

int raw_open(uint32_t frame_max)
{
	static struct rframe f;
	int fd = raw_login(frame_max, 0);
	if (fd < 0)
		return -1;
	struct wbuf b = {0};
	wb_channel_open(&b, 1);
	bool ok = send_wb(fd, &b) == 0 && read_method(fd, &f, 5000) == RF_OK && f.ch == 1 &&
	          f.cls == 20 && f.mth == 11;
	wb_free(&b);
	if (!ok) {
		close(fd);
		return -1;
	}
	return fd;
}
