/*
 * loadgen.c - load generator for AMQP 0-9-1 brokers (amqpd, RabbitMQ), built
 * on the project's own codec so that it is not the bottleneck: publish frames
 * (basic.publish + content header + body) are encoded once into a large
 * buffer (copies of one message, or with --size-min/--size-max messages of
 * sizes drawn once at start-up) and written many messages per send(); input
 * is read in large chunks and every complete frame in a chunk is parsed with
 * the incremental parser.
 * Each body starts with the send time (CLOCK_MONOTONIC ns, native byte
 * order) so consumers measure end-to-end latency into a log-linear
 * histogram.  It reports publish/confirm/consume rates, latency percentiles
 * and its own CPU time per message, then a machine-readable RESULT line.
 *
 * Threading: main() parses the options, declares the topology on an admin
 * connection and starts one thread per producer and per consumer; each
 * thread owns its connection (socket, parser, buffers) and its histogram.
 * Threads share only atomics: the phase and the latency window (written by
 * main()), the fatal flag (set by any thread) and per-worker counters
 * (written by their worker, read by main()).  main()
 * samples the counters at the start and end of the measured window, joins
 * the threads, merges their histograms and deletes what it declared.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "amqp.h"

#define RBUF_SIZE     (256 * 1024) /* one recv() */
#define BATCH_BYTES   (64 * 1024)  /* publish bytes per send() */
#define BATCH_MAX_MSG 4096
#define MIX_MSGS      256     /* --size-min/--size-max: messages per publish buffer */
#define FRAME_MAX     131072u /* what we propose in tune-ok */
#define RPC_TIMEOUT   30000   /* ms, for setup methods */
#define CLOSE_TIMEOUT 2000    /* ms, for an orderly close */
/* A producer's kernel send buffer: small, so that "published" counts what
 * the broker took, not megabytes parked in the socket (the kernel doubles
 * it; 0 would leave it to autotuning, up to tcp_wmem's maximum). */
#define PRODUCER_SNDBUF (128 * 1024)

/* ---- options -------------------------------------------------------------- */

static struct {
	char host[256];
	char port[16];
	const char *user, *password, *vhost;
	int producers, consumers, queues;
	bool consumers_set;
	size_t size;
	size_t size_min, size_max; /* both set: body sizes drawn per message */
	bool confirm;
	uint64_t max_inflight;
	bool manual_ack;
	unsigned prefetch, ack_every;
	bool fanout;
	double rate;
	double duration, warmup;
	bool persistent, durable;
	char prefix[128];
	bool quiet;
	bool keep;               /* leave the queues (and their messages) behind */
	bool tls;                /* every connection speaks TLS (amqps) */
	const char *tls_ca;      /* verify the broker against this CA file */
	const char *tls_version; /* pin "tlsv1.2" or "tlsv1.3" (else both) */
	bool tls_resume;         /* --connect-rate: resume the previous session */
	bool connect_rate;       /* open/close connections instead of messages */
} opt = {
    .host = "127.0.0.1",
    .port = "5672",
    .user = "guest",
    .password = "guest",
    .vhost = "/",
    .producers = 1,
    .consumers = 1,
    .queues = 1,
    .size = 16,
    .max_inflight = 1000,
    .prefetch = 0,
    .duration = 10,
    .warmup = 1,
};

/* ---- shared state --------------------------------------------------------- */

/* DRAIN: producers have stopped, consumers still take what was sent during
 * the window, so that its latency counts even when it arrives late. */
enum { PH_SETUP, PH_WARMUP, PH_MEASURE, PH_DRAIN, PH_STOP };
static atomic_int phase = PH_SETUP;
/* Latency is recorded for messages sent in [win_start, win_end). */
static _Atomic uint64_t win_start = UINT64_MAX, win_end = UINT64_MAX;
static atomic_int fatal;       /* some connection failed: stop, exit non-zero */
static atomic_int ready_count; /* workers connected and set up */
static atomic_int failed_count;
static volatile sig_atomic_t interrupted;

static char exchange_name[160]; /* "" = default exchange */

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	nanosleep(&ts, NULL); /* a signal cuts it short: callers re-check */
}

static int load_phase(void)
{
	return atomic_load_explicit(&phase, memory_order_relaxed);
}

#include "hist.h"

/* ---- one AMQP connection (one channel) ------------------------------------- */

struct conn {
	char name[32]; /* "producer 3", for messages */
	int fd;
	SSL *ssl;             /* with --tls */
	SSL_SESSION *session; /* --tls-resume: to offer on the next connect */
	bool resumed;         /* the last handshake resumed a session */
	struct amqp_frame_parser parser;
	uint8_t *rbuf; /* input not yet parsed: rbuf[rpos..rlen) */
	size_t rpos, rlen;
	uint8_t *obuf; /* control frames not yet sent: obuf[ooff..olen) */
	size_t ooff, olen, ocap;
	uint32_t frame_max;
	bool blocked;     /* connection.blocked received */
	bool closed;      /* connection.close exchanged: do not send close */
	bool chan_closed; /* channel 1 was closed by the broker */
	bool closing;     /* our own close: errors are not fatal */
	struct amqp_err err;
};

static void conn_err(struct conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void conn_err(struct conn *c, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (c->closing) {
		fprintf(stderr, "loadgen: %s: while closing: %s\n", c->name, msg);
		return;
	}
	fprintf(stderr, "loadgen: %s: %s\n", c->name, msg);
	atomic_store(&fatal, 1);
}

static void conn_init(struct conn *c, const char *fmt, int n)
{
	memset(c, 0, sizeof(*c));
	snprintf(c->name, sizeof(c->name), fmt, n);
	c->fd = -1;
}

/* recv/send on the connection, through TLS with --tls; a TLS record that
 * cannot go on yet reads as EAGAIN, like a full or empty socket (TLS 1.3
 * without renegotiation: a read waits for input, a write for room). */
static ssize_t io_recv(struct conn *c, void *buf, size_t len)
{
	if (!c->ssl)
		return recv(c->fd, buf, len, MSG_DONTWAIT);
	int n = SSL_read(c->ssl, buf, len > INT_MAX ? INT_MAX : (int)len);
	if (n > 0)
		return n;
	int e = SSL_get_error(c->ssl, n);
	if (e == SSL_ERROR_ZERO_RETURN)
		return 0;
	errno = e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE ? EAGAIN : EPROTO;
	return -1;
}

static ssize_t io_send(struct conn *c, const void *buf, size_t len)
{
	if (!c->ssl)
		return send(c->fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
	int n = SSL_write(c->ssl, buf, len > INT_MAX ? INT_MAX : (int)len);
	if (n > 0)
		return n;
	int e = SSL_get_error(c->ssl, n);
	errno = e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE ? EAGAIN : EPIPE;
	return -1;
}

/* Make sure unparsed input is buffered: 1 yes, 0 timed out, -1 failed. */
static int conn_read(struct conn *c, int timeout_ms)
{
	if (c->rpos < c->rlen)
		return 1;
	for (;;) {
		ssize_t n = io_recv(c, c->rbuf, RBUF_SIZE);
		if (n > 0) {
			c->rpos = 0;
			c->rlen = (size_t)n;
			return 1;
		}
		if (n == 0) {
			conn_err(c, "broker closed the TCP connection");
			return -1;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK) {
			conn_err(c, "recv: %s", strerror(errno));
			return -1;
		}
		if (timeout_ms == 0)
			return 0;
		struct pollfd p = {c->fd, POLLIN, 0};
		int r = poll(&p, 1, timeout_ms);
		if (r == 0)
			return 0;
		if (r < 0 && errno != EINTR) {
			conn_err(c, "poll: %s", strerror(errno));
			return -1;
		}
	}
}

/* Next complete frame from buffered input: 1 got one, 0 need more, -1 bad. */
static int conn_next(struct conn *c, struct amqp_frame *f)
{
	while (c->rpos < c->rlen) {
		size_t used;
		int rc = amqp_parser_feed(&c->parser, c->rbuf + c->rpos, c->rlen - c->rpos, &used,
		                          f, &c->err);
		c->rpos += used;
		if (rc == AMQP_PARSE_FRAME)
			return 1;
		if (rc < 0) {
			conn_err(c, "bad input from broker: %s",
			         c->err.text ? c->err.text : "unparseable frame");
			return -1;
		}
	}
	return 0;
}

/* Send buffered control frames; with timeout_ms > 0 wait until all are
 * sent.  1 all sent, 0 some left (timeout 0), -1 failed. */
static int conn_flush(struct conn *c, int timeout_ms)
{
	uint64_t deadline = mono_ns() + (uint64_t)timeout_ms * 1000000u;
	while (c->ooff < c->olen) {
		ssize_t n = io_send(c, c->obuf + c->ooff, c->olen - c->ooff);
		if (n > 0) {
			c->ooff += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
			conn_err(c, "send: %s", strerror(errno));
			return -1;
		}
		uint64_t now = mono_ns();
		if (timeout_ms == 0)
			return 0;
		if (now >= deadline) {
			conn_err(c, "timed out sending to the broker");
			return -1;
		}
		struct pollfd p = {c->fd, POLLOUT, 0};
		poll(&p, 1, (int)((deadline - now) / 1000000u) + 1);
	}
	c->ooff = c->olen = 0;
	return 1;
}

static void conn_reserve(struct conn *c, size_t need)
{
	if (c->ooff == c->olen)
		c->ooff = c->olen = 0;
	if (c->olen + need <= c->ocap)
		return;
	size_t cap = c->ocap ? c->ocap : 4096;
	while (cap < c->olen + need)
		cap *= 2;
	uint8_t *nb = realloc(c->obuf, cap);
	if (!nb) {
		fprintf(stderr, "loadgen: out of memory\n");
		exit(1);
	}
	c->obuf = nb;
	c->ocap = cap;
}

static void conn_put_raw(struct conn *c, const void *p, size_t n)
{
	conn_reserve(c, n);
	memcpy(c->obuf + c->olen, p, n);
	c->olen += n;
}

/* Queue a method frame on channel ch. */
static bool conn_put_method(struct conn *c, uint16_t ch, const struct amqp_method *m)
{
	conn_reserve(c, 256);
	size_t n = amqp_frame_method(c->obuf + c->olen, c->ocap - c->olen, ch, m);
	if (n > c->ocap - c->olen) {
		conn_reserve(c, n);
		n = amqp_frame_method(c->obuf + c->olen, c->ocap - c->olen, ch, m);
	}
	if (n == 0) {
		conn_err(c, "cannot encode %s", amqp_method_name(m->id));
		return false;
	}
	c->olen += n;
	return true;
}

static void print_close(struct conn *c, const char *what, uint16_t code, struct amqp_bytes text,
                        uint16_t cls, uint16_t meth)
{
	conn_err(c, "broker closed the %s: %u %s \"%.*s\" (on %s)", what, code,
	         amqp_reply_code_name(code), (int)text.len, (const char *)text.ptr,
	         cls ? amqp_method_name(AMQP_METHOD_ID(cls, meth)) : "-");
}

/* Methods any connection may receive at any time.  1 handled, 0 not one of
 * them, -1 fatal (already reported). */
static int conn_common(struct conn *c, const struct amqp_method *m)
{
	struct amqp_method r;
	switch (m->id) {
	case AMQP_CONNECTION_CLOSE: {
		const struct amqp_connection_close *a = &m->u.connection_close;
		print_close(c, "connection", a->reply_code, a->reply_text, a->class_id,
		            a->method_id);
		r.id = AMQP_CONNECTION_CLOSE_OK;
		if (conn_put_method(c, 0, &r))
			conn_flush(c, 200);
		c->closed = true;
		return -1;
	}
	case AMQP_CHANNEL_CLOSE: {
		const struct amqp_channel_close *a = &m->u.channel_close;
		print_close(c, "channel", a->reply_code, a->reply_text, a->class_id, a->method_id);
		r.id = AMQP_CHANNEL_CLOSE_OK;
		if (conn_put_method(c, 1, &r))
			conn_flush(c, 200);
		c->chan_closed = true;
		return -1;
	}
	case AMQP_CONNECTION_BLOCKED:
		if (!c->blocked && !opt.quiet)
			fprintf(stderr, "loadgen: %s: connection.blocked by the broker (%.*s)\n",
			        c->name, (int)m->u.connection_blocked.reason.len,
			        (const char *)m->u.connection_blocked.reason.ptr);
		c->blocked = true;
		return 1;
	case AMQP_CONNECTION_UNBLOCKED:
		if (c->blocked && !opt.quiet)
			fprintf(stderr, "loadgen: %s: connection.unblocked\n", c->name);
		c->blocked = false;
		return 1;
	case AMQP_CHANNEL_FLOW:
		r.id = AMQP_CHANNEL_FLOW_OK;
		r.u.channel_flow_ok.active = m->u.channel_flow.active;
		c->blocked = !m->u.channel_flow.active;
		return conn_put_method(c, 1, &r) ? 1 : -1;
	case AMQP_BASIC_CANCEL:
		conn_err(c, "the broker cancelled the consumer (queue deleted?)");
		return -1;
	}
	return 0;
}

/*
 * Wait for method want (on any channel); other methods are handled by
 * conn_common() and, unless ignore_other, anything else is an error.
 * 0 got it (*reply filled, borrowing from the input), -1 failed.
 */
static int conn_wait(struct conn *c, uint32_t want, struct amqp_method *reply, bool ignore_other,
                     int timeout_ms)
{
	uint64_t deadline = mono_ns() + (uint64_t)timeout_ms * 1000000u;
	for (;;) {
		struct amqp_frame f;
		int r = conn_next(c, &f);
		if (r < 0)
			return -1;
		if (r == 0) {
			uint64_t now = mono_ns();
			if (now >= deadline) {
				conn_err(c, "timed out waiting for %s", amqp_method_name(want));
				return -1;
			}
			r = conn_read(c, (int)((deadline - now) / 1000000u) + 1);
			if (r < 0)
				return -1;
			continue;
		}
		if (f.type != AMQP_FRAME_METHOD) {
			if (ignore_other || f.type == AMQP_FRAME_HEARTBEAT)
				continue;
			conn_err(c, "unexpected frame type %u while waiting for %s", f.type,
			         amqp_method_name(want));
			return -1;
		}
		struct amqp_method m;
		if (amqp_method_decode(f.payload, f.size, &m, &c->err) < 0) {
			conn_err(c, "bad method from broker: %s", c->err.text);
			return -1;
		}
		if (m.id == want) {
			if (reply)
				*reply = m;
			return 0;
		}
		if (want == AMQP_CONNECTION_CLOSE_OK && m.id == AMQP_CONNECTION_CLOSE) {
			/* Both sides closing at once: answer and stop. */
			struct amqp_method ok = {.id = AMQP_CONNECTION_CLOSE_OK};
			if (m.u.connection_close.reply_code != AMQP_REPLY_SUCCESS)
				print_close(c, "connection", m.u.connection_close.reply_code,
				            m.u.connection_close.reply_text,
				            m.u.connection_close.class_id,
				            m.u.connection_close.method_id);
			if (conn_put_method(c, 0, &ok))
				conn_flush(c, 200);
			return 0;
		}
		r = conn_common(c, &m);
		if (r < 0)
			return -1;
		if (r > 0 || ignore_other)
			continue;
		conn_err(c, "unexpected %s while waiting for %s", amqp_method_name(m.id),
		         amqp_method_name(want));
		return -1;
	}
}

/* Send a synchronous method on channel 1 (or 0) and wait for its reply. */
static int conn_rpc(struct conn *c, uint16_t ch, const struct amqp_method *m, uint32_t want,
                    struct amqp_method *reply)
{
	if (!conn_put_method(c, ch, m) || conn_flush(c, RPC_TIMEOUT) < 0)
		return -1;
	return conn_wait(c, want, reply, false, RPC_TIMEOUT);
}

/* One client context for every connection (--tls, --tls-ca). */
static SSL_CTX *tls_client_ctx(void)
{
	static SSL_CTX *ctx;
	static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	pthread_mutex_lock(&lock);
	if (!ctx) {
		ctx = SSL_CTX_new(TLS_client_method());
		if (ctx && opt.tls_version) {
			int v = strcmp(opt.tls_version, "tlsv1.3") == 0 ? TLS1_3_VERSION
			                                                : TLS1_2_VERSION;
			SSL_CTX_set_min_proto_version(ctx, v);
			SSL_CTX_set_max_proto_version(ctx, v);
		}
		if (ctx && opt.tls_ca) {
			SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
			if (SSL_CTX_load_verify_locations(ctx, opt.tls_ca, NULL) != 1) {
				fprintf(stderr, "loadgen: cannot load --tls-ca %s\n", opt.tls_ca);
				exit(2);
			}
		}
	}
	pthread_mutex_unlock(&lock);
	return ctx;
}

static int tcp_connect(struct conn *c, int sndbuf)
{
	c->resumed = false;
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res, *ai;
	int rc = getaddrinfo(opt.host, opt.port, &hints, &res);
	if (rc != 0) {
		conn_err(c, "%s:%s: %s", opt.host, opt.port, gai_strerror(rc));
		return -1;
	}
	int fd = -1, saved = 0;
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
		if (fd < 0)
			continue;
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		saved = errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0) {
		conn_err(c, "connect to %s:%s: %s", opt.host, opt.port, strerror(saved));
		return -1;
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (sndbuf > 0)
		setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
	c->fd = fd;
	if (opt.tls) {
		/* The handshake blocks (the socket is still blocking); then the
		 * session runs non-blocking like a plain one. */
		c->ssl = SSL_new(tls_client_ctx());
		/* --tls-resume: offer the previous connection's session. */
		if (c->ssl && c->session && SSL_set_session(c->ssl, c->session) != 1) {
			conn_err(c, "SSL_set_session failed");
			return -1;
		}
		if (!c->ssl || SSL_set_fd(c->ssl, fd) != 1 ||
		    SSL_set_tlsext_host_name(c->ssl, opt.host) != 1 || SSL_connect(c->ssl) != 1) {
			char reason[256] = "";
			ERR_error_string_n(ERR_get_error(), reason, sizeof(reason));
			conn_err(c, "TLS handshake with %s:%s failed: %s", opt.host, opt.port,
			         reason);
			return -1;
		}
		SSL_set_mode(c->ssl,
		             SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
		c->resumed = SSL_session_reused(c->ssl) == 1;
	}
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	return 0;
}

/* Encode our client-properties table (capabilities matter: RabbitMQ sends
 * connection.blocked and confirm nacks only to clients that announce them). */
static size_t client_properties(uint8_t *buf, size_t cap)
{
	static const char *caps[] = {"publisher_confirms", "connection.blocked",
	                             "consumer_cancel_notify", "basic.nack",
	                             "authentication_failure_close"};
	struct amqp_table_entry ce[5];
	for (int i = 0; i < 5; i++) {
		ce[i].key = amqp_cstr(caps[i]);
		ce[i].value.type = AMQP_FIELD_BOOL;
		ce[i].value.v.b = true;
	}
	struct amqp_table ct = {ce, 5};
	struct amqp_table_entry e[3];
	e[0].key = amqp_cstr("product");
	e[0].value.type = AMQP_FIELD_LONGSTR;
	e[0].value.v.str = amqp_cstr("amqpd-loadgen");
	e[1].key = amqp_cstr("platform");
	e[1].value.type = AMQP_FIELD_LONGSTR;
	e[1].value.v.str = amqp_cstr("C");
	e[2].key = amqp_cstr("capabilities");
	e[2].value.type = AMQP_FIELD_TABLE;
	e[2].value.v.table.raw.ptr = NULL;
	e[2].value.v.table.raw.len = 0;
	e[2].value.v.table.built = &ct;
	struct amqp_table t = {e, 3};
	struct amqp_wr w;
	amqp_wr_init(&w, buf, cap);
	amqp_table_encode_contents(&w, &t);
	return amqp_wr_ok(&w) ? w.len : 0;
}

/* Connect, log in, tune, open the vhost and (unless no_channel) channel 1. */
static int conn_open_ex(struct conn *c, int sndbuf, bool no_channel)
{
	struct amqp_method m, r;

	c->rpos = c->rlen = c->ooff = c->olen = 0;
	c->blocked = c->closed = c->chan_closed = c->closing = false;
	if (!c->rbuf)
		c->rbuf = malloc(RBUF_SIZE);
	if (!c->rbuf) {
		conn_err(c, "out of memory");
		return -1;
	}
	amqp_parser_init(&c->parser, AMQP_PARSER_CLIENT, FRAME_MAX);
	if (tcp_connect(c, sndbuf) < 0)
		return -1;
	conn_put_raw(c, amqp_protocol_header, AMQP_PROTOCOL_HEADER_LEN);
	if (conn_flush(c, RPC_TIMEOUT) < 0)
		return -1;
	if (conn_read(c, RPC_TIMEOUT) <= 0) {
		if (!atomic_load(&fatal))
			conn_err(c, "no connection.start from the broker");
		return -1;
	}
	if (c->rlen - c->rpos >= 4 && memcmp(c->rbuf + c->rpos, "AMQP", 4) == 0) {
		conn_err(c, "the broker does not speak AMQP 0-9-1 (it sent its protocol header)");
		return -1;
	}
	if (conn_wait(c, AMQP_CONNECTION_START, &r, false, RPC_TIMEOUT) < 0)
		return -1;
	if (!memmem(r.u.connection_start.mechanisms.ptr, r.u.connection_start.mechanisms.len,
	            "PLAIN", 5)) {
		conn_err(c, "the broker does not offer SASL PLAIN");
		return -1;
	}

	uint8_t props[512], resp[600];
	size_t ul = strlen(opt.user), pl = strlen(opt.password);
	if (ul + pl + 2 > sizeof(resp)) {
		conn_err(c, "user name or password too long");
		return -1;
	}
	resp[0] = 0;
	memcpy(resp + 1, opt.user, ul);
	resp[1 + ul] = 0;
	memcpy(resp + 2 + ul, opt.password, pl);
	m.id = AMQP_CONNECTION_START_OK;
	m.u.connection_start_ok.client_properties.ptr = props;
	m.u.connection_start_ok.client_properties.len = client_properties(props, sizeof(props));
	m.u.connection_start_ok.mechanism = amqp_cstr("PLAIN");
	m.u.connection_start_ok.response.ptr = resp;
	m.u.connection_start_ok.response.len = ul + pl + 2;
	m.u.connection_start_ok.locale = amqp_cstr("en_US");
	if (conn_rpc(c, 0, &m, AMQP_CONNECTION_TUNE, &r) < 0)
		return -1;

	uint32_t fm = r.u.connection_tune.frame_max;
	c->frame_max = (fm == 0 || fm > FRAME_MAX) ? FRAME_MAX : fm;
	if (c->frame_max < AMQP_FRAME_MIN_SIZE) {
		conn_err(c, "broker frame_max %u is below the minimum", c->frame_max);
		return -1;
	}
	m.id = AMQP_CONNECTION_TUNE_OK;
	m.u.connection_tune_ok.channel_max = r.u.connection_tune.channel_max;
	m.u.connection_tune_ok.frame_max = c->frame_max;
	m.u.connection_tune_ok.heartbeat = 0; /* no heartbeats: runs are short */
	if (!conn_put_method(c, 0, &m))
		return -1;
	amqp_parser_set_frame_max(&c->parser, c->frame_max);

	memset(&m, 0, sizeof(m));
	m.id = AMQP_CONNECTION_OPEN;
	m.u.connection_open.virtual_host = amqp_cstr(opt.vhost);
	if (conn_rpc(c, 0, &m, AMQP_CONNECTION_OPEN_OK, NULL) < 0)
		return -1;
	if (no_channel)
		return 0;
	memset(&m, 0, sizeof(m));
	m.id = AMQP_CHANNEL_OPEN;
	return conn_rpc(c, 1, &m, AMQP_CHANNEL_OPEN_OK, NULL);
}

static int conn_open(struct conn *c, int sndbuf)
{
	return conn_open_ex(c, sndbuf, false);
}

/* Orderly AMQP close; 0 when close-ok came, -1 otherwise (bounded). */
static int conn_close_amqp(struct conn *c)
{
	int rc = -1;
	if (c->fd >= 0 && !c->closed) {
		/* A slow or failed close is not a benchmark failure. */
		c->closing = true;
		struct amqp_method m = {.id = AMQP_CONNECTION_CLOSE};
		m.u.connection_close.reply_code = AMQP_REPLY_SUCCESS;
		m.u.connection_close.reply_text = amqp_cstr("loadgen done");
		if (conn_put_method(c, 0, &m) && conn_flush(c, CLOSE_TIMEOUT) > 0)
			rc = conn_wait(c, AMQP_CONNECTION_CLOSE_OK, NULL, true, CLOSE_TIMEOUT);
		c->closed = true;
	}
	if (c->ssl) {
		/* close_notify (not waiting for the broker's): a session that
		 * ends without one must not be resumed (RFC 5246 7.2.1). */
		if (SSL_is_init_finished(c->ssl))
			SSL_shutdown(c->ssl);
		SSL_free(c->ssl);
		ERR_clear_error();
	}
	c->ssl = NULL;
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	amqp_parser_free(&c->parser);
	return rc;
}

/* Orderly close (best effort, bounded), then release everything. */
static void conn_close(struct conn *c)
{
	conn_close_amqp(c);
	if (c->session)
		SSL_SESSION_free(c->session);
	c->session = NULL;
	free(c->rbuf);
	free(c->obuf);
	c->rbuf = c->obuf = NULL;
	c->ocap = c->ooff = c->olen = c->rpos = c->rlen = 0;
}

/* ---- workers -------------------------------------------------------------- */

struct worker {
	pthread_t tid;
	int index;
	bool producer;
	bool started;
	struct conn c;
	char queue[160]; /* consumer: queue; producer: routing key */
	/* Written by the worker only, read by main(). */
	_Atomic uint64_t published, confirmed, nacked, consumed;
	_Atomic uint64_t published_bytes, confirmed_bytes, consumed_bytes; /* body bytes */
	struct hist *hist; /* consumer: end-to-end latency; producer: confirm latency */
	struct hist *lag;  /* producer at --rate: how late it woke up to send */
	/* --connect-rate: connections opened (open-ok), of which resumed a TLS
	 * session; closes that got no close-ok. */
	_Atomic uint64_t opens, resumed, close_failed;
};

static void worker_ready(void)
{
	atomic_fetch_add(&ready_count, 1);
}

static void *worker_failed(struct worker *w)
{
	atomic_fetch_add(&failed_count, 1);
	conn_close(&w->c);
	return NULL;
}

/* The publish buffer: nmsg encoded messages (method, header and body
 * frames) back to back; message i is buf[off[i] .. off[i + 1]) with a body of
 * blen[i] bytes, and its timestamp is at off[i] + ts_off.  With a fixed size
 * they are nmsg copies of one message; with --size-min/--size-max each has
 * its own size, drawn once here, and batches walk the buffer from cur. */
struct pubbuf {
	uint8_t *buf;
	size_t *off;    /* [nmsg + 1] */
	uint32_t *blen; /* [nmsg] */
	size_t ts_off;
	unsigned nmsg;
	unsigned cur; /* first message of the next batch */
	bool mixed;
};

/* Uniform in [lo, hi], from a per-producer xorshift64 (reproducible runs). */
static size_t draw_size(uint64_t *s, size_t lo, size_t hi)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return lo + (size_t)(*s % (uint64_t)(hi - lo + 1));
}

static int pubbuf_build(struct pubbuf *pb, struct conn *c, const char *rk, int index)
{
	size_t chunk = c->frame_max - AMQP_FRAME_OVERHEAD;
	size_t smax = pb->mixed ? opt.size_max : opt.size;
	uint8_t *body = calloc(1, smax);
	if (!body) {
		conn_err(c, "out of memory");
		return -1;
	}
	for (size_t i = 8; i < smax; i++)
		body[i] = (uint8_t)('a' + i % 26);

	struct amqp_method m;
	memset(&m, 0, sizeof(m));
	m.id = AMQP_BASIC_PUBLISH;
	m.u.basic_publish.exchange = amqp_cstr(exchange_name);
	m.u.basic_publish.routing_key = amqp_cstr(rk);
	struct amqp_basic_props props;
	memset(&props, 0, sizeof(props));
	if (opt.persistent) {
		props.flags = AMQP_PROP_DELIVERY_MODE;
		props.delivery_mode = 2;
	}

	/* The method and header frames are the same size for every message
	 * (the body size is a fixed-width field): measure them once, so that
	 * sizes and the one allocation for all frames are exact. */
	uint8_t tmp[1024];
	size_t ml = amqp_frame_method(tmp, sizeof(tmp), 1, &m);
	size_t hl = amqp_frame_header(tmp, sizeof(tmp), 1, AMQP_CLASS_BASIC, 0, &props);
	if (ml == 0 || ml > sizeof(tmp) || hl == 0 || hl > sizeof(tmp)) {
		conn_err(c, "cannot encode the publish frames");
		free(body);
		return -1;
	}
	pb->ts_off = ml + hl + 7; /* the first body frame's payload */
#define MSGLEN(sz) (ml + hl + (sz) + ((sz) + chunk - 1) / chunk * AMQP_FRAME_OVERHEAD)
	if (pb->mixed) {
		pb->nmsg = MIX_MSGS;
	} else {
		size_t n = BATCH_BYTES / MSGLEN(opt.size);
		pb->nmsg = n < 1 ? 1 : n > BATCH_MAX_MSG ? BATCH_MAX_MSG : (unsigned)n;
	}
	pb->off = calloc(pb->nmsg + 1, sizeof(*pb->off));
	pb->blen = calloc(pb->nmsg, sizeof(*pb->blen));
	if (!pb->off || !pb->blen) {
		conn_err(c, "out of memory");
		free(body);
		return -1;
	}
	uint64_t seed = 0x9e3779b97f4a7c15ull * (uint64_t)(index + 1);
	size_t cap = 0;
	for (unsigned i = 0; i < pb->nmsg; i++) {
		size_t sz = pb->mixed ? draw_size(&seed, opt.size_min, opt.size_max) : opt.size;
		pb->blen[i] = (uint32_t)sz;
		cap += MSGLEN(sz);
	}
#undef MSGLEN
	pb->buf = malloc(cap);
	if (!pb->buf) {
		conn_err(c, "out of memory");
		free(body);
		return -1;
	}
	size_t len = 0;
	for (unsigned i = 0; i < pb->nmsg; i++) {
		size_t sz = pb->blen[i];
		len += amqp_frame_method(pb->buf + len, cap - len, 1, &m);
		len += amqp_frame_header(pb->buf + len, cap - len, 1, AMQP_CLASS_BASIC, sz, &props);
		for (size_t off = 0; off < sz; off += chunk) {
			size_t n = sz - off < chunk ? sz - off : chunk;
			struct amqp_bytes b = {body + off, n};
			len += amqp_frame_body(pb->buf + len, cap - len, 1, b);
		}
		pb->off[i + 1] = len;
	}
	free(body);
	if (len != cap) {
		conn_err(c, "publish buffer: encoded %zu bytes, expected %zu", len, cap);
		return -1;
	}
	return 0;
}

static void pubbuf_free(struct pubbuf *pb)
{
	free(pb->buf);
	free(pb->off);
	free(pb->blen);
}

/* Confirm bookkeeping: tags are 1, 2, ... in publish order.  The send
 * stamp and body size of every unconfirmed tag sit in rings (tag & mask) so
 * confirm latency and confirmed bytes can be measured; the rings cover
 * max_inflight + one batch. */
struct confirms {
	uint64_t hi; /* highest tag seen */
	uint64_t acked, nacked, acked_bytes;
	uint64_t *stamp;
	uint32_t *blen;
	uint64_t mask;
	struct hist *hist;
};

static void confirm_note(struct confirms *cf, uint64_t tag, bool multiple, bool ack)
{
	uint64_t n;
	if (cf->stamp && cf->blen) {
		uint64_t now = mono_ns();
		uint64_t lo = multiple ? cf->hi + 1 : tag;
		uint64_t ws = atomic_load_explicit(&win_start, memory_order_relaxed);
		uint64_t we = atomic_load_explicit(&win_end, memory_order_relaxed);
		for (uint64_t t = lo; t <= tag; t++) {
			uint64_t s = cf->stamp[t & cf->mask];
			if (cf->hist && s >= ws && s < we)
				hist_record(cf->hist, now > s ? now - s : 0);
			if (ack)
				cf->acked_bytes += cf->blen[t & cf->mask];
		}
	}
	if (tag > cf->hi) {
		n = multiple ? tag - cf->hi : 1;
		cf->hi = tag;
	} else {
		n = multiple ? 0 : 1;
	}
	if (ack)
		cf->acked += n;
	else
		cf->nacked += n;
}

/* Track when the producer became free to send (see free_since). */
static void producer_note_free(bool is_free, bool *was_free, uint64_t *free_since)
{
	if (is_free && !*was_free)
		*free_since = mono_ns();
	else if (!is_free)
		*free_since = UINT64_MAX;
	*was_free = is_free;
}

/* Handle everything the broker sent a producer.  0 ok, -1 fatal. */
static int producer_input(struct worker *w, struct confirms *cf)
{
	struct conn *c = &w->c;
	struct amqp_frame f;
	int r;
	while ((r = conn_next(c, &f)) > 0) {
		if (f.type != AMQP_FRAME_METHOD)
			continue; /* heartbeats; bodies of basic.return */
		struct amqp_method m;
		if (amqp_method_decode(f.payload, f.size, &m, &c->err) < 0) {
			conn_err(c, "bad method from broker: %s", c->err.text);
			return -1;
		}
		if (m.id == AMQP_BASIC_ACK)
			confirm_note(cf, m.u.basic_ack.delivery_tag, m.u.basic_ack.multiple, true);
		else if (m.id == AMQP_BASIC_NACK)
			confirm_note(cf, m.u.basic_nack.delivery_tag, m.u.basic_nack.multiple,
			             false);
		else if (conn_common(c, &m) < 0)
			return -1;
	}
	if (r < 0)
		return -1;
	atomic_store_explicit(&w->confirmed, cf->acked, memory_order_relaxed);
	atomic_store_explicit(&w->confirmed_bytes, cf->acked_bytes, memory_order_relaxed);
	atomic_store_explicit(&w->nacked, cf->nacked, memory_order_relaxed);
	return 0;
}

static void *producer_main(void *arg)
{
	struct worker *w = arg;
	struct conn *c = &w->c;
	struct pubbuf pb = {.mixed = opt.size_max > 0};

	if (conn_open(c, PRODUCER_SNDBUF) < 0)
		return worker_failed(w);
	if (opt.confirm) {
		struct amqp_method m = {.id = AMQP_CONFIRM_SELECT};
		if (conn_rpc(c, 1, &m, AMQP_CONFIRM_SELECT_OK, NULL) < 0)
			return worker_failed(w);
	}
	if (pubbuf_build(&pb, c, w->queue, w->index) < 0) {
		pubbuf_free(&pb);
		return worker_failed(w);
	}
	worker_ready();
	while (load_phase() == PH_SETUP && !atomic_load(&fatal))
		sleep_ms(1);

	/* Fixed rate: message k is due at t0 + k * period; producers are
	 * staggered by a fraction of a period. */
	double period = opt.rate > 0 ? 1e9 * opt.producers / opt.rate : 0;
#ifdef PR_SET_TIMERSLACK
	/* The default 50 us timer slack lets ppoll() wake us late on purpose. */
	if (period > 0)
		prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
#endif
	/* Since when the producer has been free to send (nothing pending, not
	 * blocked, room for more unconfirmed messages).  A message scheduled
	 * while it was free and sent late was late because this thread woke up
	 * late (timer, CPU scheduling): the client's error, not the broker's,
	 * so it is stamped when it is actually sent (and the delay goes to the
	 * wake-up lag figure).  A message scheduled while the broker held the
	 * producer back keeps its scheduled time: that wait is latency. */
	uint64_t free_since = UINT64_MAX;
	bool was_free = false;
	uint64_t t0 = mono_ns() + (uint64_t)(period * w->index / opt.producers);
	uint64_t queued = 0;    /* messages handed to batches */
	uint64_t pub_msgs = 0;  /* messages fully written */
	uint64_t pub_bytes = 0; /* their body bytes */
	/* The batch being sent: bat_n messages from bat_first, bat_done of them
	 * written completely. */
	unsigned bat_first = 0, bat_n = 0, bat_done = 0;
	size_t pend_off = 0, pend_len = 0;
	bool writable = true;
	uint64_t stop_at = 0;
	struct confirms cf = {0};
	if (opt.confirm) {
		uint64_t need = opt.max_inflight + pb.nmsg + 1, cap = 1;
		while (cap < need)
			cap <<= 1;
		cf.stamp = calloc(cap, sizeof(*cf.stamp));
		cf.blen = calloc(cap, sizeof(*cf.blen));
		cf.mask = cap - 1;
		cf.hist = w->hist;
	}

	for (;;) {
		int ph = load_phase();
		if (atomic_load_explicit(&fatal, memory_order_relaxed))
			break;
		uint64_t now = mono_ns();
		if (ph >= PH_DRAIN) {
			if (pend_len == 0)
				break;
			/* Finish the message in flight, but not forever
			 * (a blocked broker reads nothing). */
			if (!stop_at)
				stop_at = now + (uint64_t)CLOSE_TIMEOUT * 1000000u;
			else if (now > stop_at) {
				/* Cannot close cleanly mid-frame: reset the
				 * connection, dropping what the kernel holds. */
				struct linger lg = {1, 0};
				setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
				c->closed = true;
				break;
			}
		}

		/* Start a new batch when allowed: from message pb.cur on, up to
		 * the end of the buffer and (mixed sizes) about BATCH_BYTES. */
		if (pend_len == 0 && ph < PH_DRAIN && !c->blocked) {
			uint64_t n = pb.nmsg - pb.cur;
			if (pb.mixed) {
				uint64_t k = 1;
				while (k < n &&
				       pb.off[pb.cur + k + 1] - pb.off[pb.cur] <= BATCH_BYTES)
					k++;
				n = k;
			}
			if (opt.confirm) {
				uint64_t infl = queued - cf.acked - cf.nacked;
				uint64_t room =
				    infl >= opt.max_inflight ? 0 : opt.max_inflight - infl;
				n = room < n ? room : n;
			}
			if (period > 0) {
				uint64_t due = now < t0 ? 0 : (uint64_t)((now - t0) / period) + 1;
				due = due > queued ? due - queued : 0;
				n = due < n ? due : n;
			}
			uint64_t ws = atomic_load_explicit(&win_start, memory_order_relaxed);
			uint64_t we = atomic_load_explicit(&win_end, memory_order_relaxed);
			for (uint64_t i = 0; i < n; i++) {
				/* At a fixed rate, stamp the scheduled time when the
				 * broker held us back: a late send then shows as
				 * latency (no coordinated omission); see free_since. */
				uint64_t stamp = now;
				if (period > 0) {
					uint64_t due_at = t0 + (uint64_t)((queued + i) * period);
					if (due_at < free_since)
						stamp = due_at;
					else if (w->lag && due_at >= ws && due_at < we)
						hist_record(w->lag, now - due_at);
				}
				memcpy(pb.buf + pb.off[pb.cur + i] + pb.ts_off, &stamp, 8);
				if (cf.stamp)
					cf.stamp[(queued + i + 1) & cf.mask] = stamp;
				if (cf.blen)
					cf.blen[(queued + i + 1) & cf.mask] = pb.blen[pb.cur + i];
			}
			bat_first = pb.cur;
			bat_n = (unsigned)n;
			bat_done = 0;
			pend_off = pb.off[pb.cur];
			pend_len = pb.off[pb.cur + n] - pend_off;
			queued += n;
			/* Fixed size: every message is the same, start at 0 again. */
			pb.cur = pb.mixed ? (unsigned)((pb.cur + n) % pb.nmsg) : 0;
		}

		if (pend_len > 0 && writable) {
			ssize_t k = io_send(c, pb.buf + pend_off, pend_len);
			if (k > 0) {
				pend_off += (size_t)k;
				pend_len -= (size_t)k;
				/* Count the messages now written completely. */
				unsigned d0 = bat_done;
				while (bat_done < bat_n &&
				       pb.off[bat_first + bat_done + 1] <= pend_off)
					pub_bytes += pb.blen[bat_first + bat_done++];
				if (bat_done != d0) {
					pub_msgs += bat_done - d0;
					atomic_store_explicit(&w->published, pub_msgs,
					                      memory_order_relaxed);
					atomic_store_explicit(&w->published_bytes, pub_bytes,
					                      memory_order_relaxed);
				}
			} else if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
				writable = false;
			} else if (k < 0 && errno != EINTR) {
				conn_err(c, "send: %s", strerror(errno));
				break;
			}
		}

		/* How long may we sleep in poll?  0 when there is more to do now;
		 * otherwise until the next scheduled message, POLLOUT, input
		 * (confirms, unblock) or 100 ms (to see the phase change). */
		int64_t wait_ns = 100000000;
		if (pend_len > 0) {
			if (writable)
				wait_ns = 0;
		} else if (ph < PH_DRAIN && !c->blocked &&
		           (!opt.confirm || queued - cf.acked - cf.nacked < opt.max_inflight)) {
			if (period == 0) {
				wait_ns = 0;
			} else {
				uint64_t next = t0 + (uint64_t)(queued * period), t = mono_ns();
				wait_ns = next > t ? (int64_t)(next - t) : 0;
				if (wait_ns > 100000000)
					wait_ns = 100000000;
			}
		}
		producer_note_free(
		    pend_len == 0 && !c->blocked &&
		        (!opt.confirm || queued - cf.acked - cf.nacked < opt.max_inflight),
		    &was_free, &free_since);
		struct pollfd p = {c->fd, POLLIN | (pend_len > 0 && !writable ? POLLOUT : 0), 0};
		struct timespec tmo = {wait_ns / 1000000000, wait_ns % 1000000000};
		int r = ppoll(&p, 1, &tmo, NULL);
		if (r < 0 && errno != EINTR) {
			conn_err(c, "poll: %s", strerror(errno));
			break;
		}
		if (r > 0 && (p.revents & POLLOUT))
			writable = true;
		if (r > 0 && (p.revents & (POLLIN | POLLERR | POLLHUP))) {
			if (conn_read(c, 0) < 0 || producer_input(w, &cf) < 0)
				break;
			/* confirms may have made room, connection.unblocked */
			producer_note_free(
			    pend_len == 0 && !c->blocked &&
			        (!opt.confirm || queued - cf.acked - cf.nacked < opt.max_inflight),
			    &was_free, &free_since);
		}
	}
	pubbuf_free(&pb);
	free(cf.stamp);
	free(cf.blen);
	conn_close(c);
	return NULL;
}

/* Consumer side: assemble deliveries, time them, ack them. */
struct delivery {
	int state; /* 0 method, 1 header, 2 body */
	uint64_t tag, left, ts;
	uint64_t size; /* body size from the content header */
	bool have_ts, first;
	uint64_t unacked, last_tag, consumed, bytes;
	uint64_t win_start, win_end; /* copies of the globals */
};

static void consumer_done(struct worker *w, struct delivery *d, uint64_t now)
{
	d->state = 0;
	d->consumed++;
	d->bytes += d->size;
	if (d->have_ts && d->ts >= d->win_start && d->ts < d->win_end)
		hist_record(w->hist, now > d->ts ? now - d->ts : 0);
	if (!opt.manual_ack)
		return;
	d->last_tag = d->tag;
	if (++d->unacked >= opt.ack_every) {
		struct amqp_method m = {.id = AMQP_BASIC_ACK};
		m.u.basic_ack.delivery_tag = d->last_tag;
		m.u.basic_ack.multiple = opt.ack_every > 1;
		conn_put_method(&w->c, 1, &m);
		d->unacked = 0;
	}
}

/* Handle everything buffered.  0 ok, -1 fatal. */
static int consumer_input(struct worker *w, struct delivery *d, uint64_t now)
{
	struct conn *c = &w->c;
	struct amqp_frame f;
	int r;
	while ((r = conn_next(c, &f)) > 0) {
		if (f.type == AMQP_FRAME_BODY && d->state == 2) {
			if (d->first && f.size >= 8) {
				memcpy(&d->ts, f.payload, 8);
				d->have_ts = true;
			}
			d->first = false;
			d->left -= f.size < d->left ? f.size : d->left;
			if (d->left == 0)
				consumer_done(w, d, now);
		} else if (f.type == AMQP_FRAME_HEADER && d->state == 1) {
			struct amqp_rd rd = {f.payload + 4, f.payload + f.size};
			if (f.size < 12 || !amqp_rd_u64(&rd, &d->left)) {
				conn_err(c, "bad content header from broker");
				return -1;
			}
			d->size = d->left;
			d->state = 2;
			d->first = true;
			d->have_ts = false;
			if (d->left == 0)
				consumer_done(w, d, now);
		} else if (f.type == AMQP_FRAME_METHOD && d->state == 0) {
			/* Fast path for basic.deliver: the ids, then the consumer
			 * tag (shortstr) and the delivery tag are all we need. */
			struct amqp_rd rd = {f.payload, f.payload + f.size};
			uint32_t id;
			struct amqp_bytes ctag;
			if (amqp_rd_u32(&rd, &id) && id == AMQP_BASIC_DELIVER &&
			    amqp_rd_shortstr(&rd, &ctag) && amqp_rd_u64(&rd, &d->tag)) {
				d->state = 1;
				continue;
			}
			struct amqp_method m;
			if (amqp_method_decode(f.payload, f.size, &m, &c->err) < 0) {
				conn_err(c, "bad method from broker: %s", c->err.text);
				return -1;
			}
			if (m.id == AMQP_BASIC_DELIVER) {
				d->tag = m.u.basic_deliver.delivery_tag;
				d->state = 1;
			} else if (conn_common(c, &m) < 0) {
				return -1;
			}
		} else if (f.type != AMQP_FRAME_HEARTBEAT) {
			conn_err(c, "unexpected frame type %u from broker", f.type);
			return -1;
		}
	}
	atomic_store_explicit(&w->consumed, d->consumed, memory_order_relaxed);
	atomic_store_explicit(&w->consumed_bytes, d->bytes, memory_order_relaxed);
	return r;
}

static void *consumer_main(void *arg)
{
	struct worker *w = arg;
	struct conn *c = &w->c;
	struct amqp_method m;

	if (conn_open(c, 0) < 0)
		return worker_failed(w);
	if (opt.manual_ack && opt.prefetch > 0) {
		memset(&m, 0, sizeof(m));
		m.id = AMQP_BASIC_QOS;
		m.u.basic_qos.prefetch_count = (uint16_t)opt.prefetch;
		if (conn_rpc(c, 1, &m, AMQP_BASIC_QOS_OK, NULL) < 0)
			return worker_failed(w);
	}
	memset(&m, 0, sizeof(m));
	m.id = AMQP_BASIC_CONSUME;
	m.u.basic_consume.queue = amqp_cstr(w->queue);
	m.u.basic_consume.no_ack = !opt.manual_ack;
	if (conn_rpc(c, 1, &m, AMQP_BASIC_CONSUME_OK, NULL) < 0)
		return worker_failed(w);
	worker_ready();

	struct delivery d = {0};
	for (;;) {
		int ph = load_phase();
		if (ph == PH_STOP || atomic_load_explicit(&fatal, memory_order_relaxed))
			break;
		int r = conn_read(c, 0);
		if (r < 0)
			break;
		if (r > 0) {
			d.win_start = atomic_load_explicit(&win_start, memory_order_relaxed);
			d.win_end = atomic_load_explicit(&win_end, memory_order_relaxed);
			if (consumer_input(w, &d, mono_ns()) < 0)
				break;
			if (c->olen > c->ooff && conn_flush(c, 0) < 0)
				break;
			continue;
		}
		struct pollfd p = {c->fd, POLLIN | (c->olen > c->ooff ? POLLOUT : 0), 0};
		if (poll(&p, 1, 100) < 0 && errno != EINTR) {
			conn_err(c, "poll: %s", strerror(errno));
			break;
		}
		if ((p.revents & POLLOUT) && conn_flush(c, 0) < 0)
			break;
	}
	conn_close(c);
	return NULL;
}

/* ---- topology (admin connection) -------------------------------------------- */

static void queue_name(char *buf, size_t n, int i)
{
	snprintf(buf, n, "%s-%d", opt.prefix, i);
}

static int declare_topology(struct conn *a)
{
	struct amqp_method m;
	char q[160];

	if (opt.fanout) {
		memset(&m, 0, sizeof(m));
		m.id = AMQP_EXCHANGE_DECLARE;
		m.u.exchange_declare.exchange = amqp_cstr(exchange_name);
		m.u.exchange_declare.type = amqp_cstr("fanout");
		m.u.exchange_declare.durable = opt.durable;
		if (conn_rpc(a, 1, &m, AMQP_EXCHANGE_DECLARE_OK, NULL) < 0)
			return -1;
	}
	for (int i = 0; i < opt.queues; i++) {
		queue_name(q, sizeof(q), i);
		memset(&m, 0, sizeof(m));
		m.id = AMQP_QUEUE_DECLARE;
		m.u.queue_declare.queue = amqp_cstr(q);
		m.u.queue_declare.durable = opt.durable;
		if (conn_rpc(a, 1, &m, AMQP_QUEUE_DECLARE_OK, NULL) < 0)
			return -1;
		if (opt.fanout) {
			memset(&m, 0, sizeof(m));
			m.id = AMQP_QUEUE_BIND;
			m.u.queue_bind.queue = amqp_cstr(q);
			m.u.queue_bind.exchange = amqp_cstr(exchange_name);
			if (conn_rpc(a, 1, &m, AMQP_QUEUE_BIND_OK, NULL) < 0)
				return -1;
		}
	}
	return 0;
}

/* Delete what we declared; best effort. */
static void delete_topology(struct conn *a, int nqueues, bool exchange)
{
	struct amqp_method m;
	char q[160];

	/* On a fresh connection: the broker may have closed the old one
	 * without our noticing (nothing reads it during the run). */
	conn_close(a);
	if (conn_open(a, 0) < 0) {
		fprintf(stderr, "loadgen: could not delete queues %s-*\n", opt.prefix);
		return;
	}
	for (int i = 0; i < nqueues; i++) {
		queue_name(q, sizeof(q), i);
		memset(&m, 0, sizeof(m));
		m.id = AMQP_QUEUE_DELETE;
		m.u.queue_delete.queue = amqp_cstr(q);
		if (conn_rpc(a, 1, &m, AMQP_QUEUE_DELETE_OK, NULL) < 0)
			return;
	}
	if (exchange) {
		memset(&m, 0, sizeof(m));
		m.id = AMQP_EXCHANGE_DELETE;
		m.u.exchange_delete.exchange = amqp_cstr(exchange_name);
		conn_rpc(a, 1, &m, AMQP_EXCHANGE_DELETE_OK, NULL);
	}
}

/* ---- main ----------------------------------------------------------------- */

static void usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: loadgen [options]\n"
	    "  --uri HOST:PORT       broker address (127.0.0.1:5672)\n"
	    "  --user U --password P credentials (guest/guest); --vhost V (/)\n"
	    "  --producers N         publishing connections, one thread each (1)\n"
	    "  --consumers N         consuming connections, one thread each\n"
	    "                        (1; with --fanout, one per queue)\n"
	    "  --queues N            queues (1); 0 = publish to an unroutable key\n"
	    "  --fanout              publish to a fanout exchange bound to every queue\n"
	    "  --size BYTES          body size, >= 8 (16)\n"
	    "  --size-min A --size-max B  body sizes drawn uniformly from [A, B] per\n"
	    "                        message, instead of --size (both, >= 8)\n"
	    "  --confirm             publisher confirms, --max-inflight N unconfirmed (1000)\n"
	    "  --manual-ack          consumers ack; --prefetch N (100), --ack-every N\n"
	    "                        (prefetch/2: one multiple ack per N deliveries)\n"
	    "  --rate R              total msgs/s over all producers (0 = as fast as possible)\n"
	    "  --duration S          measured seconds (10); --warmup S before it (1)\n"
	    "  --persistent          delivery_mode 2; --durable: durable queues\n"
	    "  --queue-prefix NAME   queue names NAME-0.. (loadgen-PID)\n"
	    "  --keep                leave the queues and their messages at the end\n"
	    "  --tls                 connect with TLS (amqps; the port is the broker's TLS one)\n"
	    "  --tls-ca FILE         with --tls: verify the broker against this CA\n"
	    "  --tls-version V       with --tls: only tlsv1.2 or only tlsv1.3 (both)\n"
	    "  --connect-rate        measure connections/s instead of messages: each of\n"
	    "                        --producers N clients opens a connection (TCP, TLS,\n"
	    "                        AMQP up to connection.open-ok) and closes it, over\n"
	    "                        and over; open time p50/p99\n"
	    "  --tls-resume          with --connect-rate --tls: resume each client's\n"
	    "                        previous TLS session (resumed handshakes are counted)\n"
	    "  --quiet               no per-second progress on stderr\n");
}

static void bad_arg(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void bad_arg(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "loadgen: ");
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(2);
}

/* One command-line option: 'f' flag, 's' string, or a number stored as
 * 'i' int, 'u' unsigned, 'l' uint64_t, 'z' size_t, 'd' double (>= min). */
struct optdef {
	const char *name;
	char type;
	void *p;
	double min;
};

static void parse_args(int argc, char **argv)
{
	static const char *uri, *prefix;
	static bool help;
	const struct optdef defs[] = {
	    {"uri", 's', &uri, 0},
	    {"user", 's', &opt.user, 0},
	    {"password", 's', &opt.password, 0},
	    {"vhost", 's', &opt.vhost, 0},
	    {"producers", 'i', &opt.producers, 0},
	    {"consumers", 'i', &opt.consumers, 0},
	    {"queues", 'i', &opt.queues, 0},
	    {"fanout", 'f', &opt.fanout, 0},
	    {"size", 'z', &opt.size, 8},
	    {"size-min", 'z', &opt.size_min, 8},
	    {"size-max", 'z', &opt.size_max, 8},
	    {"confirm", 'f', &opt.confirm, 0},
	    {"max-inflight", 'l', &opt.max_inflight, 1},
	    {"manual-ack", 'f', &opt.manual_ack, 0},
	    {"prefetch", 'u', &opt.prefetch, 0},
	    {"ack-every", 'u', &opt.ack_every, 1},
	    {"rate", 'd', &opt.rate, 0},
	    {"duration", 'd', &opt.duration, 0.1},
	    {"warmup", 'd', &opt.warmup, 0},
	    {"persistent", 'f', &opt.persistent, 0},
	    {"durable", 'f', &opt.durable, 0},
	    {"queue-prefix", 's', &prefix, 0},
	    {"quiet", 'f', &opt.quiet, 0},
	    {"keep", 'f', &opt.keep, 0},
	    {"tls", 'f', &opt.tls, 0},
	    {"tls-ca", 's', &opt.tls_ca, 0},
	    {"tls-version", 's', &opt.tls_version, 0},
	    {"tls-resume", 'f', &opt.tls_resume, 0},
	    {"connect-rate", 'f', &opt.connect_rate, 0},
	    {"help", 'f', &help, 0},
	};
	enum { NOPT = sizeof(defs) / sizeof(defs[0]) };
	struct option lo[NOPT + 1];
	memset(lo, 0, sizeof(lo));
	for (int i = 0; i < NOPT; i++) {
		lo[i].name = defs[i].name;
		lo[i].has_arg = defs[i].type == 'f' ? no_argument : required_argument;
		lo[i].val = 256 + i;
	}
	int o;
	while ((o = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		if (o == 'h') {
			help = true;
			continue;
		}
		if (o < 256 || o >= 256 + NOPT) {
			usage(stderr);
			exit(2);
		}
		const struct optdef *d = &defs[o - 256];
		if (d->p == &opt.consumers)
			opt.consumers_set = true;
		if (d->type == 'f') {
			*(bool *)d->p = true;
			continue;
		}
		if (d->type == 's') {
			*(const char **)d->p = optarg;
			continue;
		}
		char *end;
		double v = strtod(optarg, &end);
		if (end == optarg || *end || !(v >= d->min) || v > 1e15)
			bad_arg("bad value for --%s: %s", d->name, optarg);
		switch (d->type) {
		case 'i':
			*(int *)d->p = v > 1e6 ? 1000000 : (int)v;
			break;
		case 'u':
			*(unsigned *)d->p = v > 1e9 ? 1000000000u : (unsigned)v;
			break;
		case 'l':
			*(uint64_t *)d->p = (uint64_t)v;
			break;
		case 'z':
			*(size_t *)d->p = (size_t)v;
			break;
		default:
			*(double *)d->p = v;
		}
	}
	if (help) {
		usage(stdout);
		exit(0);
	}
	if (uri) {
		const char *h = strncmp(uri, "amqp://", 7) == 0 ? uri + 7 : uri;
		const char *colon = strrchr(h, ':');
		size_t hl = colon ? (size_t)(colon - h) : strlen(h);
		if (hl == 0 || hl >= sizeof(opt.host) ||
		    (colon && strlen(colon + 1) >= sizeof(opt.port)))
			bad_arg("bad --uri %s (want host:port)", uri);
		memcpy(opt.host, h, hl);
		opt.host[hl] = 0;
		if (colon)
			snprintf(opt.port, sizeof(opt.port), "%s", colon + 1);
	}
	if (prefix && (strlen(prefix) == 0 || strlen(prefix) > 100))
		bad_arg("--queue-prefix must be 1..100 bytes: %s", prefix);
	if (optind < argc) {
		bad_arg("unexpected argument %s", argv[optind]);
	}
	if (prefix)
		snprintf(opt.prefix, sizeof(opt.prefix), "%s", prefix);
	else
		snprintf(opt.prefix, sizeof(opt.prefix), "loadgen-%d", (int)getpid());
	if (opt.tls_version && strcmp(opt.tls_version, "tlsv1.2") != 0 &&
	    strcmp(opt.tls_version, "tlsv1.3") != 0)
		bad_arg("--tls-version is tlsv1.2 or tlsv1.3: %s", opt.tls_version);
	if ((opt.tls_version || opt.tls_resume) && !opt.tls)
		bad_arg("--tls-version and --tls-resume need --tls");
	if (opt.tls_resume && !opt.connect_rate)
		bad_arg("--tls-resume goes with --connect-rate");
	if (opt.connect_rate) {
		if (opt.consumers_set || opt.fanout || opt.confirm || opt.rate > 0)
			bad_arg("--connect-rate takes --producers N (clients), --duration, "
			        "--warmup and the TLS options only");
		opt.consumers = 0;
		opt.queues = 0;
	}
	if (opt.fanout && !opt.consumers_set)
		opt.consumers = opt.queues;
	if (opt.queues == 0)
		opt.consumers = 0;
	if (opt.size > (1u << 30))
		bad_arg("--size too large");
	if ((opt.size_min > 0) != (opt.size_max > 0))
		bad_arg("--size-min and --size-max go together");
	if (opt.size_min > opt.size_max)
		bad_arg("--size-min %zu is above --size-max %zu", opt.size_min, opt.size_max);
	if (opt.size_max > (1u << 30))
		bad_arg("--size-max too large");
	if (opt.producers + opt.consumers > 4000)
		bad_arg("too many connections");
	if (opt.manual_ack) {
		if (opt.prefetch == 0)
			opt.prefetch = 100;
		if (opt.prefetch > 65535)
			bad_arg("--prefetch must be <= 65535");
		if (opt.ack_every == 0)
			opt.ack_every = opt.prefetch / 2 ? opt.prefetch / 2 : 1;
		if (opt.ack_every > opt.prefetch) {
			fprintf(stderr,
			        "loadgen: --ack-every above --prefetch would stall; using %u\n",
			        opt.prefetch);
			opt.ack_every = opt.prefetch;
		}
	}
	if (opt.fanout)
		snprintf(exchange_name, sizeof(exchange_name), "%s-fanout", opt.prefix);
	else if (opt.queues == 0)
		snprintf(exchange_name, sizeof(exchange_name), "amq.direct");
}

struct totals {
	uint64_t published, confirmed, nacked, consumed;
	uint64_t published_bytes, confirmed_bytes, consumed_bytes;
	uint64_t opens, resumed, close_failed; /* --connect-rate */
	uint64_t t_ns, cpu_ns;
};

static void snapshot(struct worker *ws, int n, struct totals *t)
{
	memset(t, 0, sizeof(*t));
	for (int i = 0; i < n; i++) {
		t->published += atomic_load_explicit(&ws[i].published, memory_order_relaxed);
		t->confirmed += atomic_load_explicit(&ws[i].confirmed, memory_order_relaxed);
		t->nacked += atomic_load_explicit(&ws[i].nacked, memory_order_relaxed);
		t->consumed += atomic_load_explicit(&ws[i].consumed, memory_order_relaxed);
		t->published_bytes +=
		    atomic_load_explicit(&ws[i].published_bytes, memory_order_relaxed);
		t->confirmed_bytes +=
		    atomic_load_explicit(&ws[i].confirmed_bytes, memory_order_relaxed);
		t->consumed_bytes +=
		    atomic_load_explicit(&ws[i].consumed_bytes, memory_order_relaxed);
		t->opens += atomic_load_explicit(&ws[i].opens, memory_order_relaxed);
		t->resumed += atomic_load_explicit(&ws[i].resumed, memory_order_relaxed);
		t->close_failed += atomic_load_explicit(&ws[i].close_failed, memory_order_relaxed);
	}
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	t->cpu_ns = ((uint64_t)ru.ru_utime.tv_sec + (uint64_t)ru.ru_stime.tv_sec) * 1000000000u +
	            ((uint64_t)ru.ru_utime.tv_usec + (uint64_t)ru.ru_stime.tv_usec) * 1000u;
	t->t_ns = mono_ns();
}

static void on_signal(int sig)
{
	(void)sig;
	interrupted = 1;
}

/* Sleep for s seconds (or until something fails), printing progress. */
static void run_for(double s, struct worker *ws, int n, const char *label)
{
	uint64_t end = mono_ns() + (uint64_t)(s * 1e9);
	struct totals prev;
	snapshot(ws, n, &prev);
	uint64_t next_print = prev.t_ns + 1000000000u;
	int sec = 0;
	while (!interrupted && !atomic_load(&fatal)) {
		uint64_t now = mono_ns();
		if (now >= end)
			break;
		uint64_t until = end < next_print ? end : next_print;
		sleep_ms((unsigned)((until - now) / 1000000u) + 1);
		if (mono_ns() < next_print)
			continue;
		next_print += 1000000000u;
		if (!opt.quiet) {
			struct totals t;
			snapshot(ws, n, &t);
			double dt = (double)(t.t_ns - prev.t_ns) / 1e9;
			if (opt.connect_rate)
				fprintf(stderr, "[%s %3ds] connections %9.0f/s  resumed %9.0f/s\n",
				        label, ++sec, (double)(t.opens - prev.opens) / dt,
				        (double)(t.resumed - prev.resumed) / dt);
			else
				fprintf(stderr,
				        "[%s %3ds] published %9.0f/s  confirmed %9.0f/s  consumed "
				        "%9.0f/s\n",
				        label, ++sec, (double)(t.published - prev.published) / dt,
				        (double)(t.confirmed - prev.confirmed) / dt,
				        (double)(t.consumed - prev.consumed) / dt);
			prev = t;
		}
	}
}

/* Give consumers up to DRAIN_MAX ms to receive what was published. */
#define DRAIN_MAX 2000
static void drain(struct worker *ws, int n)
{
	if (opt.consumers == 0)
		return;
	uint64_t copies = opt.fanout ? (uint64_t)opt.queues : 1;
	uint64_t end = mono_ns() + DRAIN_MAX * 1000000ull;
	sleep_ms(20); /* let the producers finish their last send */
	while (!interrupted && !atomic_load(&fatal) && mono_ns() < end) {
		struct totals t;
		snapshot(ws, n, &t);
		if (t.consumed >= t.published * copies)
			break;
		sleep_ms(10);
	}
}

/* --connect-rate: open a connection (TCP, TLS, AMQP up to
 * connection.open-ok), close it (connection.close / close-ok, TLS
 * close_notify), again and again.  The open time of connections started in
 * the window goes to the histogram. */
static void *connector_main(void *arg)
{
	struct worker *w = arg;
	struct conn *c = &w->c;
	uint64_t opens = 0, resumed = 0, close_failed = 0;

	worker_ready();
	while (load_phase() == PH_SETUP && !atomic_load(&fatal))
		sleep_ms(1);
	while (load_phase() < PH_DRAIN && !atomic_load_explicit(&fatal, memory_order_relaxed)) {
		uint64_t t0 = mono_ns();
		if (conn_open_ex(c, 0, true) < 0)
			break;
		uint64_t t1 = mono_ns();
		uint64_t ws = atomic_load_explicit(&win_start, memory_order_relaxed);
		uint64_t we = atomic_load_explicit(&win_end, memory_order_relaxed);
		if (t0 >= ws && t0 < we)
			hist_record(w->hist, t1 - t0);
		opens++;
		resumed += c->resumed;
		atomic_store_explicit(&w->opens, opens, memory_order_relaxed);
		atomic_store_explicit(&w->resumed, resumed, memory_order_relaxed);
		if (opt.tls_resume && c->ssl) {
			/* TLS 1.3: the tickets came after the handshake, before
			 * connection.start; the latest one is here by now. */
			SSL_SESSION *s = SSL_get1_session(c->ssl);
			if (c->session)
				SSL_SESSION_free(c->session);
			c->session = s;
		}
		if (conn_close_amqp(c) < 0) {
			close_failed++;
			atomic_store_explicit(&w->close_failed, close_failed, memory_order_relaxed);
		}
	}
	conn_close(c);
	return NULL;
}

static int connect_rate_main(void)
{
	int nw = opt.producers;
	struct worker *ws = calloc((size_t)(nw ? nw : 1), sizeof(*ws));
	if (!ws) {
		fprintf(stderr, "loadgen: out of memory\n");
		return 1;
	}
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 256 * 1024);
	for (int i = 0; i < nw; i++) {
		struct worker *w = &ws[i];
		w->index = i;
		conn_init(&w->c, "client %d", i);
		w->hist = malloc(sizeof(*w->hist));
		if (!w->hist) {
			fprintf(stderr, "loadgen: out of memory\n");
			return 1;
		}
		hist_init(w->hist);
		if (pthread_create(&w->tid, &attr, connector_main, w) != 0) {
			fprintf(stderr, "loadgen: cannot start a thread: %s\n", strerror(errno));
			atomic_store(&fatal, 1);
			break;
		}
		w->started = true;
	}
	while (!atomic_load(&fatal) && !interrupted && atomic_load(&ready_count) < nw)
		sleep_ms(1);

	struct totals t0 = {0}, t1 = {0};
	bool measured = false;
	if (!atomic_load(&fatal) && !interrupted) {
		atomic_store(&phase, PH_WARMUP);
		if (opt.warmup > 0)
			run_for(opt.warmup, ws, nw, "warmup");
		snapshot(ws, nw, &t0);
		atomic_store(&win_start, t0.t_ns);
		atomic_store(&phase, PH_MEASURE);
		run_for(opt.duration, ws, nw, "run");
		snapshot(ws, nw, &t1);
		atomic_store(&win_end, t1.t_ns);
		measured = !atomic_load(&fatal) && !interrupted;
	}
	atomic_store(&phase, PH_STOP);
	for (int i = 0; i < nw; i++)
		if (ws[i].started)
			pthread_join(ws[i].tid, NULL);
	int failed = atomic_load(&fatal);
	if (!measured) {
		fprintf(stderr, "loadgen: %s, no results\n",
		        interrupted && !failed ? "interrupted" : "failed");
		return 1;
	}
	struct hist *h = malloc(sizeof(*h));
	if (!h)
		return 1;
	hist_init(h);
	for (int i = 0; i < nw; i++) {
		hist_merge(h, ws[i].hist);
		free(ws[i].hist);
	}
	double dt = (double)(t1.t_ns - t0.t_ns) / 1e9;
	uint64_t opens = t1.opens - t0.opens, resumed = t1.resumed - t0.resumed;
	uint64_t cfail = t1.close_failed - t0.close_failed, cpu = t1.cpu_ns - t0.cpu_ns;
	double us[6] = {
	    hist_pct(h, 50) / 1e3,         hist_pct(h, 95) / 1e3,
	    hist_pct(h, 99) / 1e3,         hist_pct(h, 99.9) / 1e3,
	    (h->count ? h->max : 0) / 1e3, h->count ? (double)h->sum / (double)h->count / 1e3 : 0};
	double rpct = opens ? 100.0 * (double)resumed / (double)opens : 0;
	printf("loadgen: %s:%s, %d client(s) opening and closing connections (%s%s%s)\n", opt.host,
	       opt.port, nw, opt.tls ? "TLS" : "plain TCP", opt.tls_version ? " " : "",
	       opt.tls_version ? opt.tls_version : "");
	if (opt.tls)
		printf("  %s\n", opt.tls_resume ? "each client resumes its previous TLS session"
		                                : "full TLS handshakes");
	printf("measured %.2f s after %.1f s warm-up\n", dt, opt.warmup);
	printf("  connections %11.0f conn/s  (%" PRIu64 " opened and closed", (double)opens / dt,
	       opens);
	if (cfail)
		printf(", %" PRIu64 " without close-ok", cfail);
	printf(")\n");
	if (opt.tls)
		printf("  resumed    %" PRIu64 " of %" PRIu64 " TLS handshakes (%.1f%%)\n", resumed,
		       opens, rpct);
	if (h->count)
		printf("  open time us p50 %.1f  p95 %.1f  p99 %.1f  p99.9 %.1f  max %.1f  mean "
		       "%.1f  (%" PRIu64 " samples: TCP connect to connection.open-ok)\n",
		       us[0], us[1], us[2], us[3], us[4], us[5], h->count);
	printf("  loadgen cpu %.2f s = %.0f%% of one core, %.0f ns per connection\n",
	       (double)cpu / 1e9, (double)cpu / 1e9 / dt * 100,
	       opens ? (double)cpu / (double)opens : 0);
	printf("RESULT connect_rate=%.0f p50_us=%.1f p95_us=%.1f p99_us=%.1f p999_us=%.1f "
	       "max_us=%.1f mean_us=%.1f samples=%" PRIu64 " opens=%" PRIu64 " resumed=%" PRIu64
	       " resumed_pct=%.1f close_failed=%" PRIu64 " cpu_pct=%.1f cpu_ns_per_conn=%.0f\n",
	       (double)opens / dt, us[0], us[1], us[2], us[3], us[4], us[5], h->count, opens,
	       resumed, rpct, cfail, (double)cpu / 1e9 / dt * 100,
	       opens ? (double)cpu / (double)opens : 0);
	free(h);
	free(ws);
	return failed ? 1 : 0;
}

int main(int argc, char **argv)
{
	parse_args(argc, argv);
	signal(SIGPIPE, SIG_IGN);
	struct sigaction sa = {.sa_handler = on_signal};
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	if (opt.connect_rate)
		return connect_rate_main();

	struct conn admin;
	conn_init(&admin, "admin", 0);
	if (conn_open(&admin, 0) < 0) {
		conn_close(&admin);
		return 1;
	}
	if (declare_topology(&admin) < 0) {
		atomic_store(&fatal, 0);
		delete_topology(&admin, opt.queues, opt.fanout);
		conn_close(&admin);
		return 1;
	}

	int nw = opt.producers + opt.consumers;
	struct worker *ws = calloc((size_t)(nw ? nw : 1), sizeof(*ws));
	if (!ws) {
		fprintf(stderr, "loadgen: out of memory\n");
		return 1;
	}
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 256 * 1024);
	/* Consumers first, so nothing published is missed. */
	for (int i = 0; i < nw && !atomic_load(&fatal); i++) {
		struct worker *w = &ws[i];
		w->producer = i >= opt.consumers;
		w->index = w->producer ? i - opt.consumers : i;
		conn_init(&w->c, w->producer ? "producer %d" : "consumer %d", w->index);
		if (w->producer) {
			if (opt.fanout)
				w->queue[0] = 0;
			else if (opt.queues == 0)
				snprintf(w->queue, sizeof(w->queue), "%s-nowhere", opt.prefix);
			else
				queue_name(w->queue, sizeof(w->queue), w->index % opt.queues);
		} else {
			queue_name(w->queue, sizeof(w->queue), w->index % opt.queues);
		}
		if (!w->producer || opt.confirm) {
			w->hist = malloc(sizeof(*w->hist));
			if (!w->hist) {
				fprintf(stderr, "loadgen: out of memory\n");
				return 1;
			}
			hist_init(w->hist);
		}
		if (w->producer && opt.rate > 0) {
			w->lag = malloc(sizeof(*w->lag));
			if (!w->lag) {
				fprintf(stderr, "loadgen: out of memory\n");
				return 1;
			}
			hist_init(w->lag);
		}
		if (pthread_create(&w->tid, &attr, w->producer ? producer_main : consumer_main,
		                   w) != 0) {
			fprintf(stderr, "loadgen: cannot start a thread: %s\n", strerror(errno));
			atomic_store(&fatal, 1);
			break;
		}
		w->started = true;
	}

	/* Wait until every connection is set up. */
	uint64_t deadline = mono_ns() + 120 * 1000000000ull;
	while (!atomic_load(&fatal) && !interrupted &&
	       atomic_load(&ready_count) + atomic_load(&failed_count) < nw) {
		if (mono_ns() > deadline) {
			fprintf(stderr, "loadgen: connections not ready after 120 s\n");
			atomic_store(&fatal, 1);
		}
		sleep_ms(5);
	}

	struct totals t0 = {0}, t1 = {0};
	bool measured = false;
	if (!atomic_load(&fatal) && !interrupted) {
		atomic_store(&phase, PH_WARMUP);
		if (opt.warmup > 0)
			run_for(opt.warmup, ws, nw, "warmup");
		snapshot(ws, nw, &t0);
		atomic_store(&win_start, t0.t_ns);
		atomic_store(&phase, PH_MEASURE);
		run_for(opt.duration, ws, nw, "run");
		snapshot(ws, nw, &t1);
		atomic_store(&win_end, t1.t_ns);
		atomic_store(&phase, PH_DRAIN);
		drain(ws, nw);
		measured = !atomic_load(&fatal);
	}
	atomic_store(&phase, PH_STOP);
	for (int i = 0; i < nw; i++)
		if (ws[i].started)
			pthread_join(ws[i].tid, NULL);
	int failed = atomic_load(&fatal);
	atomic_store(&fatal, 0); /* let the cleanup run */
	if (!opt.keep)
		delete_topology(&admin, opt.queues, opt.fanout);
	conn_close(&admin);

	if (!measured) {
		fprintf(stderr, "loadgen: %s, no results\n",
		        interrupted && !failed ? "interrupted" : "failed");
		return 1;
	}

	struct hist *h = malloc(sizeof(*h)), *hc = malloc(sizeof(*hc)), *hl = malloc(sizeof(*hl));
	if (!h || !hc || !hl)
		return 1;
	hist_init(h);
	hist_init(hc);
	hist_init(hl);
	for (int i = 0; i < nw; i++) {
		if (ws[i].hist) {
			hist_merge(ws[i].producer ? hc : h, ws[i].hist);
			free(ws[i].hist);
		}
		if (ws[i].lag) {
			hist_merge(hl, ws[i].lag);
			free(ws[i].lag);
		}
	}

	double dt = (double)(t1.t_ns - t0.t_ns) / 1e9;
	uint64_t pub = t1.published - t0.published, con = t1.consumed - t0.consumed;
	uint64_t conf = t1.confirmed - t0.confirmed, nack = t1.nacked - t0.nacked;
	uint64_t cpu = t1.cpu_ns - t0.cpu_ns;
	/* Body bytes per second (MB = 10^6 bytes; framing not counted). */
	double pub_bps = (double)(t1.published_bytes - t0.published_bytes) / dt;
	double conf_bps = (double)(t1.confirmed_bytes - t0.confirmed_bytes) / dt;
	double con_bps = (double)(t1.consumed_bytes - t0.consumed_bytes) / dt;
	double cpu_per = pub + con ? (double)cpu / (double)(pub + con) : 0;
	double us[6] = {
	    hist_pct(h, 50) / 1e3,         hist_pct(h, 95) / 1e3,
	    hist_pct(h, 99) / 1e3,         hist_pct(h, 99.9) / 1e3,
	    (h->count ? h->max : 0) / 1e3, h->count ? (double)h->sum / (double)h->count / 1e3 : 0};

	char sizes[64];
	if (opt.size_max)
		snprintf(sizes, sizeof(sizes), "%zu..%zu-byte (uniform)", opt.size_min,
		         opt.size_max);
	else
		snprintf(sizes, sizeof(sizes), "%zu-byte", opt.size);
	printf("loadgen: %s:%s, %d producer(s), %d consumer(s), %d queue(s)%s, %s %s "
	       "bodies, %s%s%s",
	       opt.host, opt.port, opt.producers, opt.consumers, opt.queues,
	       opt.fanout ? " (fanout)" : "", sizes, opt.persistent ? "persistent" : "transient",
	       opt.manual_ack ? "manual ack" : "auto-ack", opt.confirm ? ", confirms" : "",
	       opt.durable ? ", durable queues" : "");
	if (opt.manual_ack)
		printf(" (prefetch %u, ack every %u)", opt.prefetch, opt.ack_every);
	if (opt.rate > 0)
		printf(", fixed rate %.0f msg/s", opt.rate);
	printf("\nmeasured %.2f s after %.1f s warm-up\n", dt, opt.warmup);
	printf("  published  %12.0f msg/s  %9.2f MB/s  (%" PRIu64 " msgs)\n", (double)pub / dt,
	       pub_bps / 1e6, pub);
	if (opt.confirm)
		printf("  confirmed  %12.0f msg/s  %9.2f MB/s  (%" PRIu64 " acks, %" PRIu64
		       " nacks)\n",
		       (double)conf / dt, conf_bps / 1e6, conf, nack);
	printf("  consumed   %12.0f msg/s  %9.2f MB/s  (%" PRIu64 " msgs)\n", (double)con / dt,
	       con_bps / 1e6, con);
	if (h->count)
		printf(
		    "  latency us p50 %.1f  p95 %.1f  p99 %.1f  p99.9 %.1f  max %.1f  mean %.1f  "
		    "(%" PRIu64 " samples)\n",
		    us[0], us[1], us[2], us[3], us[4], us[5], h->count);
	else if (opt.consumers)
		printf("  latency    no samples: nothing sent during the window was consumed "
		       "within %d ms after it\n",
		       DRAIN_MAX);
	if (hc->count)
		printf("  confirm latency us p50 %.1f  p99 %.1f  max %.1f  (%" PRIu64 " samples)\n",
		       hist_pct(hc, 50) / 1e3, hist_pct(hc, 99) / 1e3, hc->max / 1e3, hc->count);
	if (hl->count)
		printf("  producer wake-up lag us p50 %.1f  p99 %.1f  max %.1f  (%" PRIu64
		       " messages sent late by the client itself; not counted as latency)\n",
		       hist_pct(hl, 50) / 1e3, hist_pct(hl, 99) / 1e3, hl->max / 1e3, hl->count);
	printf("  loadgen cpu %.2f s = %.0f%% of one core, %.0f ns per message handled "
	       "(published + consumed)\n",
	       (double)cpu / 1e9, (double)cpu / 1e9 / dt * 100, cpu_per);
	printf("RESULT publish_rate=%.0f confirm_rate=%.0f consume_rate=%.0f p50_us=%.1f "
	       "p95_us=%.1f p99_us=%.1f p999_us=%.1f max_us=%.1f mean_us=%.1f samples=%" PRIu64
	       " nacks=%" PRIu64 " cpu_pct=%.1f cpu_ns_per_msg=%.0f confirm_p50_us=%.1f "
	       "confirm_p99_us=%.1f publish_bytes_rate=%.0f confirm_bytes_rate=%.0f "
	       "consume_bytes_rate=%.0f wake_lag_p50_us=%.1f wake_lag_p99_us=%.1f\n",
	       (double)pub / dt, (double)conf / dt, (double)con / dt, us[0], us[1], us[2], us[3],
	       us[4], us[5], h->count, nack, (double)cpu / 1e9 / dt * 100, cpu_per,
	       hist_pct(hc, 50) / 1e3, hist_pct(hc, 99) / 1e3, pub_bps, conf_bps, con_bps,
	       hist_pct(hl, 50) / 1e3, hist_pct(hl, 99) / 1e3);
	free(h);
	free(hc);
	free(hl);
	free(ws);
	return failed ? 1 : 0;
}
