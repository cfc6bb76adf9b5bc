/*
 * queue_ext.c - benchmarks of the queue extensions (message TTL,
 * dead-lettering, priority queues, delayed messages) that run unchanged
 * against amqpd and RabbitMQ (delayed: amqpd only, see below).  Built on rabbitmq-c: its connection
 * does the handshake, the RPCs and the consuming; publishes (and the dead-letter scenario's
 * rejects) are encoded with rabbitmq-c's own encoders into a 64 KiB batch and written to its socket
 * in one send(), because one send() per frame made the client, not the broker, the bottleneck
 * (about 180,000 msg/s of 16 B on the 2-core test VM, a third of what amqpd takes).
 *
 *   ttl       --count messages (1,000,000) with a random per-message
 *             expiration in [--ttl-min, --ttl-max] ms to a queue nobody
 *             consumes, with publisher confirms (the end of publishing is
 *             the last confirm); then polls the message count
 *             (queue.declare passive) until it is 0 or --cap seconds have
 *             passed, comparing it with the messages whose deadline (their
 *             confirm's arrival + TTL) is still ahead.
 *   dlx       a consumer on queue A rejects every delivery (requeue=false);
 *             A dead-letters through the default exchange to queue B, whose
 *             no-ack consumer counts; --count (200,000) messages to A.
 *   priority  x-max-priority 10, --count (500,000) messages with priorities
 *             0..9 round-robin, then one consumer (prefetch --prefetch,
 *             manual ack) drains and checks the order.
 *   delayed   a durable x-delayed-message exchange (x-delayed-type direct)
 *             and a queue bound to it, consumed (manual ack, prefetch
 *             --prefetch, or --no-ack) on its own connection from before
 *             the first publish; --count (1,000,000) messages with an
 *             x-delay header, with publisher confirms.  Each body holds its
 *             due time (wall-clock ms: publish time + x-delay), so the
 *             consumer measures lateness = arrival - due.  x-delay is
 *             random in [--delay-min, --delay-max] ms, or with --spread-ms
 *             S the due times are S ms worth of evenly spaced slots
 *             starting --lead-ms after the start, taken in random order.
 *             --publish-rate paces the publisher (each message is sent as
 *             soon as its time comes): flat out, messages wait in socket
 *             buffers and amqpd's input, and amqpd's due time (its clock
 *             + x-delay) is that much later than the body's.
 *             amqpd only: RabbitMQ needs the rabbitmq_delayed_message_exchange
 *             plugin, which Debian's rabbitmq-server does not ship.
 *
 * With --pid PID (the broker's process) it also reports that process's
 * VmRSS and CPU time from /proc.  Human-readable lines go to stdout, then
 * one "RESULT scenario=... key=value ..." line for scripts; progress and
 * errors go to stderr.  Exit 1 on a broker or connection error (the queues
 * it declared are deleted on a fresh connection first), 2 on bad options.
 *
 * Threading: the ttl and priority scenarios run on the main thread.  dlx
 * starts two threads (the rejecting consumer on A and the counting consumer
 * on B), each owning its connection; main() publishes on a third; delayed
 * likewise starts one consumer thread.  They share only atomics (ready and
 * delivered counts, stop flag) and each thread's result struct, read by
 * main() after pthread_join().
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <amqp.h>
#include <amqp_framing.h>
#include <amqp_tcp_socket.h>

#define FRAME_MAX   131072
#define BATCH_BYTES (64 * 1024) /* bytes per send() */
#define MAX_SIZE    (FRAME_MAX - 8)
#define NQUEUES     2

static struct {
	char host[256];
	int port;
	const char *user, *password, *vhost;
	const char *scenario;
	long count; /* 0: the scenario's default */
	size_t size;
	int ttl_min, ttl_max;
	int delay_min, delay_max; /* delayed: x-delay range, ms */
	int spread_ms, lead_ms;   /* delayed: due times spread over spread_ms */
	long publish_rate;        /* delayed: msg/s at most (0: flat out) */
	bool persistent;          /* delayed: delivery_mode 2, durable queue */
	bool no_ack;              /* delayed: no-ack consumer */
	double cap;
	int prefetch;
	int poll_ms;
	long pid;
	char prefix[128];
	uint64_t seed;
} opt = {
    .host = "127.0.0.1",
    .port = 5672,
    .user = "guest",
    .password = "guest",
    .vhost = "/",
    .size = 16,
    .ttl_min = 1000,
    .ttl_max = 10000,
    .delay_min = 1000,
    .delay_max = 11000,
    .lead_ms = 2000,
    .cap = 120,
    .prefetch = 100,
    .poll_ms = 25,
    .seed = 1,
};

static atomic_bool stop_flag;
static atomic_bool dying;
/* Queues (and the delayed scenario's exchange) declared so far, deleted at
 * the end or after a failure. */
static char declared[NQUEUES][200];
static atomic_int ndeclared;
static char declared_x[200];
static atomic_bool have_x;

static void cleanup_queues(void);

static void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "queue_ext: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	/* Only the first failing thread cleans up; the others wait for exit. */
	if (atomic_exchange(&dying, true)) {
		for (;;)
			pause();
	}
	cleanup_queues();
	exit(1);
}

static void on_signal(int sig)
{
	(void)sig;
	atomic_store(&stop_flag, true);
}

static void check_stop(void)
{
	if (atomic_load(&stop_flag))
		die("interrupted");
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Wall-clock ms since the epoch: the clock amqpd's due times are on. */
static double wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void sleep_s(double s)
{
	struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
	nanosleep(&ts, NULL);
}

/* xorshift64*: the same expirations on both brokers for the same --seed. */
static uint64_t rng_next(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ull;
}

/* ---------------------------------------------------------------------------
 * The broker's process: VmRSS and CPU time (0 / -1 without --pid)
 */

static long broker_rss_kb(void)
{
	char path[64], line[256];
	long kb = -1;
	if (opt.pid <= 0)
		return -1;
	snprintf(path, sizeof path, "/proc/%ld/status", opt.pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof line, f)) {
		if (strncmp(line, "VmRSS:", 6) == 0) {
			kb = strtol(line + 6, NULL, 10);
			break;
		}
	}
	fclose(f);
	return kb;
}

static double broker_cpu_s(void)
{
	char path[64], buf[1024];
	if (opt.pid <= 0)
		return -1;
	snprintf(path, sizeof path, "/proc/%ld/stat", opt.pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = 0;
	/* Fields after the command name, which may hold spaces: state is field
	 * 3, utime and stime fields 14 and 15. */
	char *p = strrchr(buf, ')');
	if (!p)
		return -1;
	unsigned long ut = 0, st = 0;
	if (sscanf(p + 2, "%*c %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %lu %lu", &ut, &st) != 2)
		return -1;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static double self_cpu_s(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* ---------------------------------------------------------------------------
 * Connections (rabbitmq-c)
 */

static void check_reply(amqp_rpc_reply_t r, const char *what)
{
	switch (r.reply_type) {
	case AMQP_RESPONSE_NORMAL:
		return;
	case AMQP_RESPONSE_NONE:
		die("%s: no reply", what);
		break;
	case AMQP_RESPONSE_LIBRARY_EXCEPTION:
		die("%s: %s", what, amqp_error_string2(r.library_error));
		break;
	case AMQP_RESPONSE_SERVER_EXCEPTION:
		if (r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
			amqp_connection_close_t *m = r.reply.decoded;
			die("%s: connection closed by the broker: %u %.*s", what, m->reply_code,
			    (int)m->reply_text.len, (char *)m->reply_text.bytes);
		} else if (r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
			amqp_channel_close_t *m = r.reply.decoded;
			die("%s: channel closed by the broker: %u %.*s", what, m->reply_code,
			    (int)m->reply_text.len, (char *)m->reply_text.bytes);
		}
		die("%s: unexpected method 0x%08x from the broker", what, r.reply.id);
		break;
	}
}

static amqp_connection_state_t broker_connect(const char *what)
{
	amqp_connection_state_t c = amqp_new_connection();
	amqp_socket_t *s = c ? amqp_tcp_socket_new(c) : NULL;
	if (!s)
		die("%s: out of memory", what);
	int rc = amqp_socket_open(s, opt.host, opt.port);
	if (rc != AMQP_STATUS_OK)
		die("%s: connect to %s:%d: %s", what, opt.host, opt.port, amqp_error_string2(rc));
	check_reply(amqp_login(c, opt.vhost, 0, FRAME_MAX, 0, AMQP_SASL_METHOD_PLAIN, opt.user,
	                       opt.password),
	            what);
	amqp_channel_open(c, 1);
	check_reply(amqp_get_rpc_reply(c), what);
	return c;
}

static void broker_close(amqp_connection_state_t c)
{
	amqp_channel_close(c, 1, AMQP_REPLY_SUCCESS);
	amqp_connection_close(c, AMQP_REPLY_SUCCESS);
	amqp_destroy_connection(c);
}

/* Declares NAME (non-exclusive, durable or not) with ARGS and remembers it
 * for the clean-up; an old queue of that name is deleted first. */
static void declare_queue(amqp_connection_state_t c, const char *name, bool durable,
                          amqp_table_t args)
{
	amqp_queue_delete(c, 1, amqp_cstring_bytes(name), 0, 0);
	check_reply(amqp_get_rpc_reply(c), "queue.delete");
	int i = atomic_load(&ndeclared);
	if (i < NQUEUES) {
		snprintf(declared[i], sizeof declared[i], "%s", name);
		atomic_store(&ndeclared, i + 1);
	}
	amqp_queue_declare(c, 1, amqp_cstring_bytes(name), 0, durable, 0, 0, args);
	check_reply(amqp_get_rpc_reply(c), "queue.declare");
}

/* Declares exchange NAME of TYPE (durable) with ARGS and remembers it for
 * the clean-up; an old exchange of that name is deleted first.  HINT (or
 * NULL) goes to stderr when the broker refuses. */
static void declare_exchange(amqp_connection_state_t c, const char *name, const char *type,
                             amqp_table_t args, const char *hint)
{
	amqp_exchange_delete(c, 1, amqp_cstring_bytes(name), 0);
	check_reply(amqp_get_rpc_reply(c), "exchange.delete");
	snprintf(declared_x, sizeof declared_x, "%s", name);
	atomic_store(&have_x, true);
	amqp_exchange_declare(c, 1, amqp_cstring_bytes(name), amqp_cstring_bytes(type), 0, 1, 0, 0,
	                      args);
	amqp_rpc_reply_t r = amqp_get_rpc_reply(c);
	if (r.reply_type != AMQP_RESPONSE_NORMAL && hint)
		fprintf(stderr, "queue_ext: %s\n", hint);
	check_reply(r, "exchange.declare");
}

/* Messages in NAME now (queue.declare passive).  The reply comes after
 * every publish sent before it on this channel has been routed. */
static long queue_count(amqp_connection_state_t c, const char *name)
{
	amqp_queue_declare_ok_t *ok =
	    amqp_queue_declare(c, 1, amqp_cstring_bytes(name), 1, 0, 0, 0, amqp_empty_table);
	check_reply(amqp_get_rpc_reply(c), "queue.declare passive");
	long n = ok ? (long)ok->message_count : -1;
	amqp_maybe_release_buffers(c);
	return n;
}

static void cleanup_queues(void)
{
	int n = atomic_load(&ndeclared);
	if (n == 0 && !atomic_load(&have_x))
		return;
	amqp_connection_state_t c = amqp_new_connection();
	amqp_socket_t *s = c ? amqp_tcp_socket_new(c) : NULL;
	if (!s || amqp_socket_open(s, opt.host, opt.port) != AMQP_STATUS_OK)
		goto out;
	if (amqp_login(c, opt.vhost, 0, FRAME_MAX, 0, AMQP_SASL_METHOD_PLAIN, opt.user,
	               opt.password)
	        .reply_type != AMQP_RESPONSE_NORMAL)
		goto out;
	amqp_channel_open(c, 1);
	for (int i = 0; i < n; i++) {
		amqp_queue_delete(c, 1, amqp_cstring_bytes(declared[i]), 0, 0);
		if (amqp_get_rpc_reply(c).reply_type != AMQP_RESPONSE_NORMAL)
			fprintf(stderr, "queue_ext: could not delete queue %s\n", declared[i]);
	}
	atomic_store(&ndeclared, 0);
	if (atomic_exchange(&have_x, false)) {
		amqp_exchange_delete(c, 1, amqp_cstring_bytes(declared_x), 0);
		if (amqp_get_rpc_reply(c).reply_type != AMQP_RESPONSE_NORMAL)
			fprintf(stderr, "queue_ext: could not delete exchange %s\n", declared_x);
	}
	amqp_channel_close(c, 1, AMQP_REPLY_SUCCESS);
	amqp_connection_close(c, AMQP_REPLY_SUCCESS);
out:
	if (c)
		amqp_destroy_connection(c);
}

static amqp_table_entry_t entry_int(const char *key, int32_t v)
{
	amqp_table_entry_t e = {.key = amqp_cstring_bytes(key)};
	e.value.kind = AMQP_FIELD_KIND_I32;
	e.value.value.i32 = v;
	return e;
}

static amqp_table_entry_t entry_str(const char *key, const char *v)
{
	amqp_table_entry_t e = {.key = amqp_cstring_bytes(key)};
	e.value.kind = AMQP_FIELD_KIND_UTF8;
	e.value.value.bytes = amqp_cstring_bytes(v);
	return e;
}

/* ---------------------------------------------------------------------------
 * Batched output: frames encoded by rabbitmq-c's encoders, sent many per
 * send() on the connection's socket.  Only methods that get no reply are
 * sent this way (basic.publish, basic.reject), and every batch is written
 * whole before rabbitmq-c writes anything itself, so the library's view of
 * the connection stays right.
 */

struct batch {
	amqp_connection_state_t conn;
	int fd;
	uint8_t *buf;
	size_t len, cap;
	/* Called when the broker sends something while we wait to write (the
	 * confirms, which must be read or the broker stops reading us). */
	void (*on_input)(void *arg);
	void *arg;
};

static void batch_init(struct batch *b, amqp_connection_state_t c)
{
	b->conn = c;
	b->fd = amqp_get_sockfd(c);
	b->cap = BATCH_BYTES + MAX_SIZE + 4096;
	b->buf = malloc(b->cap);
	b->len = 0;
	b->on_input = NULL;
	b->arg = NULL;
	if (!b->buf)
		die("out of memory");
}

static void batch_flush(struct batch *b)
{
	size_t off = 0;
	while (off < b->len) {
		ssize_t n = send(b->fd, b->buf + off, b->len - off, MSG_NOSIGNAL);
		if (n > 0) {
			off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR) {
			check_stop();
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			/* rabbitmq-c's socket is non-blocking: the broker is
			 * reading slower than we write (TCP backpressure). */
			short ev = (short)(POLLOUT | (b->on_input ? POLLIN : 0));
			struct pollfd p = {.fd = b->fd, .events = ev};
			double t0 = now();
			while (poll(&p, 1, 1000) == 0 || (p.revents & POLLOUT) == 0) {
				check_stop();
				if (p.revents & (POLLERR | POLLHUP))
					die("connection lost while publishing");
				if (p.revents & POLLIN)
					b->on_input(b->arg);
				if (now() - t0 > opt.cap)
					die("the broker read nothing for %.0f s (blocked?)",
					    opt.cap);
			}
			continue;
		}
		die("send: %s", n < 0 ? strerror(errno) : "connection closed");
	}
	b->len = 0;
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
	put16(p, (uint16_t)(v >> 16));
	put16(p + 2, (uint16_t)v);
}

static void put64(uint8_t *p, uint64_t v)
{
	put32(p, (uint32_t)(v >> 32));
	put32(p + 4, (uint32_t)v);
}

/* Starts a frame of TYPE on channel 1 at the end of the batch; returns its
 * payload.  frame_end() writes the size and the frame-end octet. */
static uint8_t *frame_begin(struct batch *b, uint8_t type)
{
	uint8_t *f = b->buf + b->len;
	f[0] = type;
	put16(f + 1, 1);
	return f + 7;
}

static void frame_end(struct batch *b, size_t payload)
{
	uint8_t *f = b->buf + b->len;
	put32(f + 3, (uint32_t)payload);
	f[7 + payload] = AMQP_FRAME_END;
	b->len += 8 + payload;
}

static size_t room(const struct batch *b)
{
	return b->cap - b->len - 8;
}

static void batch_method(struct batch *b, amqp_method_number_t id, void *m)
{
	uint8_t *p = frame_begin(b, AMQP_FRAME_METHOD);
	put32(p, id);
	amqp_bytes_t out = {room(b) - 4, p + 4};
	int n = amqp_encode_method(id, m, out);
	if (n < 0)
		die("encoding method 0x%08x: %s", id, amqp_error_string2(n));
	frame_end(b, 4 + (size_t)n);
}

/* One basic.publish to exchange X ("": the default) with routing key KEY. */
static void batch_publish(struct batch *b, const char *x, const char *key,
                          amqp_basic_properties_t *props, const void *body, size_t size)
{
	if (b->len + size + 2048 > b->cap)
		batch_flush(b);
	amqp_basic_publish_t m = {.exchange = amqp_cstring_bytes(x),
	                          .routing_key = amqp_cstring_bytes(key)};
	batch_method(b, AMQP_BASIC_PUBLISH_METHOD, &m);

	uint8_t *p = frame_begin(b, AMQP_FRAME_HEADER);
	put16(p, AMQP_BASIC_CLASS);
	put16(p + 2, 0);
	put64(p + 4, size);
	amqp_bytes_t out = {room(b) - 12, p + 12};
	int n = amqp_encode_properties(AMQP_BASIC_CLASS, props, out);
	if (n < 0)
		die("encoding properties: %s", amqp_error_string2(n));
	frame_end(b, 12 + (size_t)n);

	p = frame_begin(b, AMQP_FRAME_BODY);
	memcpy(p, body, size);
	frame_end(b, size);
	if (b->len >= BATCH_BYTES)
		batch_flush(b);
}

/* ---------------------------------------------------------------------------
 * Consuming
 */

/* basic.consume on channel 1; returns when consume-ok has arrived. */
static void start_consume(amqp_connection_state_t c, const char *queue, bool no_ack)
{
	if (!no_ack) {
		amqp_basic_qos(c, 1, 0, (uint16_t)opt.prefetch, 0);
		check_reply(amqp_get_rpc_reply(c), "basic.qos");
	}
	amqp_basic_consume(c, 1, amqp_cstring_bytes(queue), amqp_empty_bytes, 0, no_ack, 0,
	                   amqp_empty_table);
	check_reply(amqp_get_rpc_reply(c), "basic.consume");
}

/* The next delivery into ENV: true, or false after DEADLINE (now() clock). */
static bool next_delivery(amqp_connection_state_t c, amqp_envelope_t *env, double deadline,
                          const char *what)
{
	for (;;) {
		check_stop();
		if (now() > deadline)
			return false;
		struct timeval tv = {0, 200 * 1000};
		amqp_maybe_release_buffers(c);
		amqp_rpc_reply_t r = amqp_consume_message(c, env, &tv, 0);
		if (r.reply_type == AMQP_RESPONSE_NORMAL)
			return true;
		if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
		    r.library_error == AMQP_STATUS_TIMEOUT)
			continue;
		if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
		    r.library_error == AMQP_STATUS_UNEXPECTED_STATE) {
			/* Not a delivery: a close, most likely. */
			amqp_frame_t f;
			if (amqp_simple_wait_frame(c, &f) != AMQP_STATUS_OK)
				die("%s: connection lost", what);
			if (f.frame_type == AMQP_FRAME_METHOD &&
			    (f.payload.method.id == AMQP_CHANNEL_CLOSE_METHOD ||
			     f.payload.method.id == AMQP_CONNECTION_CLOSE_METHOD)) {
				amqp_rpc_reply_t x = {.reply_type = AMQP_RESPONSE_SERVER_EXCEPTION,
				                      .reply = f.payload.method};
				check_reply(x, what);
			}
			continue;
		}
		check_reply(r, what);
	}
}

/* ---------------------------------------------------------------------------
 * Publisher confirms (ttl): the barrier that says the broker has routed
 * every message.  queue.declare passive is none on RabbitMQ: its queue
 * process answers the count ahead of deliveries still in its mailbox.
 */

struct confirms {
	amqp_connection_state_t conn;
	/* Message i's TTL in seconds until its confirm (tag i + 1) arrives,
	 * then its deadline: the broker had it by then, so a broker that
	 * expires on time holds no message past that deadline. */
	double *deadline;
	uint8_t *bits;   /* confirmed delivery tags */
	uint64_t lowest; /* lowest tag not yet confirmed (tags start at 1) */
	uint64_t n;
	long nacks;
};

static void confirm_tag(struct confirms *k, uint64_t tag, double t)
{
	if (tag < 1 || tag > k->n || (k->bits[tag / 8] & (1u << (tag % 8))))
		return;
	k->bits[tag / 8] |= (uint8_t)(1u << (tag % 8));
	k->deadline[tag - 1] += t;
}

/* Reads what the broker has sent; with WAIT, blocks up to 200 ms for it. */
static void read_confirms(struct confirms *k, bool wait)
{
	for (;;) {
		amqp_frame_t f;
		struct timeval tv = {0, wait ? 200 * 1000 : 0};
		int rc = amqp_simple_wait_frame_noblock(k->conn, &f, &tv);
		if (rc == AMQP_STATUS_TIMEOUT)
			return;
		if (rc != AMQP_STATUS_OK)
			die("reading confirms: %s", amqp_error_string2(rc));
		wait = false;
		if (f.frame_type != AMQP_FRAME_METHOD)
			continue;
		amqp_method_t *m = &f.payload.method;
		uint64_t tag;
		bool multiple;
		if (m->id == AMQP_BASIC_ACK_METHOD) {
			amqp_basic_ack_t *a = m->decoded;
			tag = a->delivery_tag;
			multiple = a->multiple;
		} else if (m->id == AMQP_BASIC_NACK_METHOD) {
			amqp_basic_nack_t *a = m->decoded;
			tag = a->delivery_tag;
			multiple = a->multiple;
			k->nacks++;
		} else if (m->id == AMQP_CHANNEL_CLOSE_METHOD ||
		           m->id == AMQP_CONNECTION_CLOSE_METHOD) {
			amqp_rpc_reply_t x = {.reply_type = AMQP_RESPONSE_SERVER_EXCEPTION,
			                      .reply = *m};
			check_reply(x, "publishing");
			continue;
		} else {
			continue;
		}
		double t_now = now();
		if (multiple)
			for (uint64_t t = k->lowest; t <= tag && t <= k->n; t++)
				confirm_tag(k, t, t_now);
		else
			confirm_tag(k, tag, t_now);
		while (k->lowest <= k->n && (k->bits[k->lowest / 8] & (1u << (k->lowest % 8))))
			k->lowest++;
		amqp_maybe_release_buffers(k->conn);
	}
}

static void on_confirm_input(void *arg)
{
	read_confirms(arg, false);
}

/* ---------------------------------------------------------------------------
 * (a) ttl
 */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* Messages whose deadline (confirm + TTL) is after T (DL sorted). */
static long alive_at(const double *dl, long n, double t)
{
	long lo = 0, hi = n;
	while (lo < hi) {
		long mid = lo + (hi - lo) / 2;
		if (dl[mid] <= t)
			lo = mid + 1;
		else
			hi = mid;
	}
	return n - lo;
}

static void run_ttl(void)
{
	long n = opt.count ? opt.count : 1000000;
	char q[200];
	snprintf(q, sizeof q, "%s-ttl", opt.prefix);
	amqp_connection_state_t c = broker_connect("ttl");
	declare_queue(c, q, false, amqp_empty_table);

	double *deadline = malloc((size_t)n * sizeof *deadline);
	uint8_t *body = calloc(1, opt.size);
	if (!deadline || !body)
		die("out of memory");
	amqp_confirm_select(c, 1);
	check_reply(amqp_get_rpc_reply(c), "confirm.select");
	struct confirms k = {.conn = c, .deadline = deadline, .lowest = 1, .n = (uint64_t)n};
	k.bits = calloc((size_t)n / 8 + 1, 1);
	if (!k.bits)
		die("out of memory");
	struct batch b;
	batch_init(&b, c);
	b.on_input = on_confirm_input;
	b.arg = &k;
	uint64_t rng = opt.seed;
	long rss0 = broker_rss_kb();
	double cpu0 = broker_cpu_s(), self0 = self_cpu_s();
	double t_start = now();
	char exp[16];
	amqp_basic_properties_t props = {._flags = AMQP_BASIC_EXPIRATION_FLAG};
	for (long i = 0; i < n; i++) {
		int ttl =
		    opt.ttl_min + (int)(rng_next(&rng) % (uint64_t)(opt.ttl_max - opt.ttl_min + 1));
		snprintf(exp, sizeof exp, "%d", ttl);
		props.expiration = amqp_cstring_bytes(exp);
		memcpy(body, &i, sizeof i < opt.size ? sizeof i : opt.size);
		if ((i & 1023) == 0) {
			check_stop();
			read_confirms(&k, false);
		}
		deadline[i] = ttl / 1000.0;
		batch_publish(&b, "", q, &props, body, opt.size);
	}
	batch_flush(&b);
	double t_sent = now();
	/* t0: every message has been confirmed, so routed. */
	while (k.lowest <= k.n) {
		check_stop();
		read_confirms(&k, true);
		if (now() - t_sent > opt.cap)
			die("ttl: %" PRIu64 " of %ld messages confirmed after %.0f s", k.lowest - 1,
			    n, opt.cap);
	}
	double t0 = now();
	long rss_pub = broker_rss_kb();
	double cpu_pub = broker_cpu_s();
	long count0 = queue_count(c, q);
	if (k.nacks)
		fprintf(stderr, "ttl: WARNING: %ld basic.nack\n", k.nacks);
	qsort(deadline, (size_t)n, sizeof *deadline, cmp_double);
	long alive0 = alive_at(deadline, n, t0);
	double ideal_empty = deadline[n - 1] - t0;
	fprintf(stderr, "ttl: %ld published in %.2f s, %ld in the queue (%ld not yet expired)\n", n,
	        t0 - t_start, count0, alive0);

	/* Poll until empty: how many expired messages the broker still holds
	 * (count - messages whose deadline is still ahead), on average. */
	double excess_sum = 0, excess_max = 0, t_empty = -1;
	long samples = 0, count = count0;
	for (;;) {
		double tn = now();
		double excess = (double)(count - alive_at(deadline, n, tn));
		if (excess < 0)
			excess = 0;
		excess_sum += excess;
		if (excess > excess_max)
			excess_max = excess;
		samples++;
		if (count == 0) {
			t_empty = tn;
			break;
		}
		if (tn - t0 > opt.cap)
			break;
		sleep_s(opt.poll_ms / 1000.0);
		check_stop();
		count = queue_count(c, q);
	}
	long rss_empty = broker_rss_kb();
	double cpu_end = broker_cpu_s(), self_end = self_cpu_s();
	sleep_s(2);
	long rss_settled = broker_rss_kb();

	bool emptied = t_empty >= 0;
	printf("ttl: %ld messages of %zu B, expiration %d-%d ms\n", n, opt.size, opt.ttl_min,
	       opt.ttl_max);
	printf("  published in %.2f s (%.0f msg/s confirmed; the last confirm came %.3f s "
	       "after the last send)\n",
	       t0 - t_start, n / (t0 - t_start), t0 - t_sent);
	printf("  at the end of publishing: %ld in the queue, %ld not yet expired\n", count0,
	       alive0);
	if (emptied)
		printf("  empty %.2f s after the end of publishing (the last deadline was %.2f s "
		       "after it)\n",
		       t_empty - t0, ideal_empty);
	else
		printf("  did not empty within %.0f s (%ld left; the last deadline was %.2f s "
		       "after the end of publishing)\n",
		       opt.cap, count, ideal_empty);
	printf("  expired messages still held: mean %.0f, max %.0f over %ld polls\n",
	       excess_sum / (double)samples, excess_max, samples);
	if (opt.pid > 0)
		printf("  broker RSS: %ld kB before, %ld kB at the end of publishing, %ld kB "
		       "when empty, %ld kB 2 s later; broker CPU %.2f s publishing, %.2f s "
		       "expiring\n",
		       rss0, rss_pub, rss_empty, rss_settled, cpu_pub - cpu0, cpu_end - cpu_pub);
	printf("  client CPU %.2f s\n", self_end - self0);
	printf("RESULT scenario=ttl count=%ld size=%zu publish_s=%.3f publish_rate=%.0f "
	       "count_at_publish_end=%ld alive_at_publish_end=%ld emptied=%d empty_s=%.3f "
	       "ideal_empty_s=%.3f left=%ld excess_mean=%.0f excess_max=%.0f rss_start_kb=%ld "
	       "rss_published_kb=%ld rss_empty_kb=%ld rss_settled_kb=%ld "
	       "broker_cpu_publish_s=%.2f broker_cpu_expire_s=%.2f client_cpu_s=%.2f nacks=%ld\n",
	       n, opt.size, t0 - t_start, n / (t0 - t_start), count0, alive0, emptied ? 1 : 0,
	       emptied ? t_empty - t0 : opt.cap, ideal_empty, count, excess_sum / (double)samples,
	       excess_max, rss0, rss_pub, rss_empty, rss_settled, cpu_pub - cpu0, cpu_end - cpu_pub,
	       self_end - self0, k.nacks);
	free(k.bits);
	free(deadline);
	free(body);
	free(b.buf);
	cleanup_queues();
	broker_close(c);
}

/* ---------------------------------------------------------------------------
 * (b) dlx
 */

struct dlx_worker {
	char queue[200];
	long n;
	atomic_int *ready;
	double t_first, t_last;
	long got;
	double deadline; /* give up after this (now() clock) */
};

/* The consumer on A: rejects every delivery without requeue, the rejects
 * batched until no more input is buffered. */
static void *rejecter(void *arg)
{
	struct dlx_worker *w = arg;
	amqp_connection_state_t c = broker_connect("rejecter");
	start_consume(c, w->queue, false);
	struct batch b;
	batch_init(&b, c);
	atomic_fetch_add(w->ready, 1);
	amqp_envelope_t env;
	while (w->got < w->n && next_delivery(c, &env, w->deadline, "rejecter")) {
		amqp_basic_reject_t m = {.delivery_tag = env.delivery_tag, .requeue = 0};
		amqp_destroy_envelope(&env);
		batch_method(&b, AMQP_BASIC_REJECT_METHOD, &m);
		w->got++;
		if (b.len >= BATCH_BYTES || (!amqp_data_in_buffer(c) && !amqp_frames_enqueued(c)))
			batch_flush(&b);
	}
	batch_flush(&b);
	free(b.buf);
	broker_close(c);
	return NULL;
}

/* The no-ack consumer on B: counts. */
static void *counter(void *arg)
{
	struct dlx_worker *w = arg;
	amqp_connection_state_t c = broker_connect("counter");
	start_consume(c, w->queue, true);
	atomic_fetch_add(w->ready, 1);
	amqp_envelope_t env;
	while (w->got < w->n && next_delivery(c, &env, w->deadline, "counter")) {
		double t = now();
		if (w->got == 0)
			w->t_first = t;
		w->t_last = t;
		amqp_destroy_envelope(&env);
		w->got++;
	}
	broker_close(c);
	return NULL;
}

static void run_dlx(void)
{
	long n = opt.count ? opt.count : 200000;
	char qa[200], qb[200];
	snprintf(qa, sizeof qa, "%s-dlx-a", opt.prefix);
	snprintf(qb, sizeof qb, "%s-dlx-b", opt.prefix);
	amqp_connection_state_t c = broker_connect("dlx");
	declare_queue(c, qb, false, amqp_empty_table);
	amqp_table_entry_t ea[] = {entry_str("x-dead-letter-exchange", ""),
	                           entry_str("x-dead-letter-routing-key", qb)};
	declare_queue(c, qa, false, (amqp_table_t){2, ea});

	atomic_int ready = 0;
	struct dlx_worker wa = {.n = n, .ready = &ready}, wb = {.n = n, .ready = &ready};
	snprintf(wa.queue, sizeof wa.queue, "%s", qa);
	snprintf(wb.queue, sizeof wb.queue, "%s", qb);
	/* Overall limit: generous, but a stall must not run forever. */
	wa.deadline = wb.deadline = now() + opt.cap + 30;
	pthread_t ta, tb;
	if (pthread_create(&tb, NULL, counter, &wb) || pthread_create(&ta, NULL, rejecter, &wa))
		die("pthread_create failed");
	while (atomic_load(&ready) < 2)
		sleep_s(0.001);

	uint8_t *body = calloc(1, opt.size);
	if (!body)
		die("out of memory");
	struct batch b;
	batch_init(&b, c);
	amqp_basic_properties_t props = {._flags = 0};
	double cpu0 = broker_cpu_s(), self0 = self_cpu_s();
	long rss0 = broker_rss_kb();
	double t_start = now();
	for (long i = 0; i < n; i++) {
		memcpy(body, &i, sizeof i < opt.size ? sizeof i : opt.size);
		if ((i & 1023) == 0)
			check_stop();
		batch_publish(&b, "", qa, &props, body, opt.size);
	}
	batch_flush(&b);
	double t_pub = now(); /* written, not necessarily routed */
	pthread_join(ta, NULL);
	pthread_join(tb, NULL);
	double cpu_end = broker_cpu_s(), self_end = self_cpu_s();
	long rss_end = broker_rss_kb();
	long left_b = queue_count(c, qb);

	bool done = wb.got == n;
	double span = wb.t_last - t_start;
	double rate = wb.got > 0 ? (double)wb.got / span : 0;
	printf("dlx: %ld messages of %zu B to A, every one rejected (requeue=false) and "
	       "dead-lettered to B\n",
	       n, opt.size);
	printf("  sent in %.2f s (%.0f msg/s written to the socket)\n", t_pub - t_start,
	       n / (t_pub - t_start));
	printf("  B received %ld in %.2f s from the first publish: %.0f msg/s, %.2f MB/s%s\n",
	       wb.got, span, rate, rate * (double)opt.size / 1e6,
	       done ? "" : " (INCOMPLETE: gave up)");
	printf("  rejected %ld; %ld left in B\n", wa.got, left_b);
	if (opt.pid > 0)
		printf("  broker CPU %.2f s (%.1f us per message); RSS %ld kB before, %ld kB "
		       "after\n",
		       cpu_end - cpu0, (cpu_end - cpu0) * 1e6 / (double)n, rss0, rss_end);
	printf("  client CPU %.2f s\n", self_end - self0);
	printf("RESULT scenario=dlx count=%ld size=%zu complete=%d send_rate=%.0f "
	       "dlx_rate=%.0f dlx_mb_s=%.2f received=%ld rejected=%ld broker_cpu_s=%.2f "
	       "broker_us_per_msg=%.1f rss_start_kb=%ld rss_end_kb=%ld client_cpu_s=%.2f\n",
	       n, opt.size, done ? 1 : 0, n / (t_pub - t_start), rate,
	       rate * (double)opt.size / 1e6, wb.got, wa.got, cpu_end - cpu0,
	       (cpu_end - cpu0) * 1e6 / (double)n, rss0, rss_end, self_end - self0);
	free(body);
	free(b.buf);
	cleanup_queues();
	broker_close(c);
	if (!done)
		exit(1);
}

/* ---------------------------------------------------------------------------
 * (c) priority
 */

static void run_priority(void)
{
	long n = opt.count ? opt.count : 500000;
	if (opt.size < 5)
		die("--size must be at least 5 for the priority scenario");
	char q[200];
	snprintf(q, sizeof q, "%s-prio", opt.prefix);
	amqp_connection_state_t c = broker_connect("priority");
	amqp_table_entry_t e = entry_int("x-max-priority", 10);
	declare_queue(c, q, false, (amqp_table_t){1, &e});

	uint8_t *body = calloc(1, opt.size);
	uint8_t *seen = calloc((size_t)n / 8 + 1, 1);
	if (!body || !seen)
		die("out of memory");
	struct batch b;
	batch_init(&b, c);
	amqp_basic_properties_t props = {._flags = AMQP_BASIC_PRIORITY_FLAG};
	long rss0 = broker_rss_kb();
	double cpu0 = broker_cpu_s(), self0 = self_cpu_s();
	double t_start = now();
	for (long i = 0; i < n; i++) {
		uint32_t seq = (uint32_t)i;
		props.priority = (uint8_t)(i % 10);
		memcpy(body, &seq, 4);
		body[4] = props.priority;
		if ((i & 1023) == 0)
			check_stop();
		batch_publish(&b, "", q, &props, body, opt.size);
	}
	batch_flush(&b);
	/* Published = all in the queue (the count may lag the deliveries). */
	double t_sent = now();
	long filled;
	while ((filled = queue_count(c, q)) < n) {
		check_stop();
		if (now() - t_sent > opt.cap)
			die("priority: %ld of %ld in the queue after %.0f s", filled, n, opt.cap);
		sleep_s(0.005);
	}
	double t_pub = now();
	double cpu_pub = broker_cpu_s();
	long rss_full = broker_rss_kb();
	if (filled != n)
		fprintf(stderr, "priority: WARNING: %ld in the queue after publishing %ld\n",
		        filled, n);
	fprintf(stderr, "priority: %ld published in %.2f s; draining\n", n, t_pub - t_start);

	/* Drain: prefetch --prefetch, one multiple ack per prefetch/2. */
	double t_drain = now();
	start_consume(c, q, false);
	long got = 0, violations = 0, fifo_violations = 0, dups = 0, redelivered = 0;
	long prev_prio = 255, prev_seq = -1, unacked = 0;
	long ack_every = opt.prefetch / 2 > 0 ? opt.prefetch / 2 : 1;
	uint64_t last_tag = 0;
	double t_last = t_drain, deadline = t_drain + opt.cap;
	amqp_envelope_t env;
	while (got < filled && next_delivery(c, &env, deadline, "drain")) {
		amqp_bytes_t bd = env.message.body;
		if (bd.len < 5)
			die("drain: a body of %zu bytes", bd.len);
		uint32_t seq;
		memcpy(&seq, bd.bytes, 4);
		long prio = ((uint8_t *)bd.bytes)[4];
		if (prio > prev_prio)
			violations++;
		else if (prio == prev_prio && (long)seq < prev_seq)
			fifo_violations++;
		if (seq < (uint64_t)n) {
			if (seen[seq / 8] & (1u << (seq % 8)))
				dups++;
			seen[seq / 8] |= (uint8_t)(1u << (seq % 8));
		}
		if (env.redelivered)
			redelivered++;
		prev_prio = prio;
		prev_seq = (long)seq;
		last_tag = env.delivery_tag;
		amqp_destroy_envelope(&env);
		got++;
		t_last = now();
		if (++unacked >= ack_every) {
			amqp_basic_ack(c, 1, last_tag, 1);
			unacked = 0;
		}
	}
	if (unacked)
		amqp_basic_ack(c, 1, last_tag, 1);
	double cpu_end = broker_cpu_s(), self_end = self_cpu_s();
	bool done = got == n;
	double drain_rate = got > 0 ? (double)got / (t_last - t_drain) : 0;
	printf("priority: x-max-priority 10, %ld messages of %zu B, priorities 0-9 "
	       "round-robin\n",
	       n, opt.size);
	printf("  published in %.2f s (%.0f msg/s), %ld in the queue\n", t_pub - t_start,
	       n / (t_pub - t_start), filled);
	printf("  drained %ld in %.2f s (%.0f msg/s, prefetch %d, manual ack)%s\n", got,
	       t_last - t_drain, drain_rate, opt.prefetch, done ? "" : " (INCOMPLETE)");
	printf("  order: %ld priority increases, %ld FIFO inversions within a priority, %ld "
	       "duplicates, %ld redelivered\n",
	       violations, fifo_violations, dups, redelivered);
	if (opt.pid > 0)
		printf("  broker CPU %.2f s publishing, %.2f s draining; RSS %ld kB before, %ld "
		       "kB full\n",
		       cpu_pub - cpu0, cpu_end - cpu_pub, rss0, rss_full);
	printf("  client CPU %.2f s\n", self_end - self0);
	printf("RESULT scenario=priority count=%ld size=%zu complete=%d publish_rate=%.0f "
	       "drain_rate=%.0f drained=%ld violations=%ld fifo_violations=%ld duplicates=%ld "
	       "redelivered=%ld broker_cpu_publish_s=%.2f broker_cpu_drain_s=%.2f "
	       "rss_start_kb=%ld rss_full_kb=%ld client_cpu_s=%.2f\n",
	       n, opt.size, done ? 1 : 0, n / (t_pub - t_start), drain_rate, got, violations,
	       fifo_violations, dups, redelivered, cpu_pub - cpu0, cpu_end - cpu_pub, rss0,
	       rss_full, self_end - self0);
	free(body);
	free(seen);
	free(b.buf);
	cleanup_queues();
	broker_close(c);
	if (!done)
		exit(1);
}

/* ---------------------------------------------------------------------------
 * (d) delayed
 */

#define DELAYED_ONLY                                                                               \
	"amqpd only: RabbitMQ needs the rabbitmq_delayed_message_exchange plugin, which "          \
	"Debian's rabbitmq-server 3.10 does not ship"

/* The P quantile (0..1) of the N ascending values V (nearest rank). */
static double quantile(const double *v, long n, double p)
{
	if (n <= 0)
		return 0;
	long i = (long)(p * (double)n + 0.999999) - 1;
	if (i < 0)
		i = 0;
	if (i >= n)
		i = n - 1;
	return v[i];
}

struct delayed_consumer {
	char queue[200];
	long n;
	atomic_int *ready;
	atomic_long got;  /* deliveries so far; main() reads it at the end of publishing */
	double *lateness; /* ms (arrival - due) by sequence number */
	uint8_t *seen;    /* sequence numbers delivered */
	long early, dups, redelivered;
	double deadline; /* give up after this (now() clock) */
};

/* The consumer on the bound queue: lateness of every delivery; manual acks
 * (one multiple ack per prefetch/2, or when no more input is buffered) or
 * --no-ack. */
static void *delayed_consumer(void *arg)
{
	struct delayed_consumer *w = arg;
	amqp_connection_state_t c = broker_connect("delayed consumer");
	start_consume(c, w->queue, opt.no_ack);
	atomic_fetch_add(w->ready, 1);
	long got = 0, unacked = 0;
	long ack_every = opt.prefetch / 2 > 0 ? opt.prefetch / 2 : 1;
	uint64_t last_tag = 0;
	amqp_envelope_t env;
	while (got < w->n && next_delivery(c, &env, w->deadline, "delayed consumer")) {
		double t = wall_ms();
		amqp_bytes_t bd = env.message.body;
		if (bd.len < 16)
			die("delayed consumer: a body of %zu bytes", bd.len);
		uint64_t due, seq;
		memcpy(&due, bd.bytes, 8);
		memcpy(&seq, (uint8_t *)bd.bytes + 8, 8);
		double late = t - (double)due;
		if (late < 0)
			w->early++;
		if (seq < (uint64_t)w->n) {
			if (w->seen[seq / 8] & (1u << (seq % 8)))
				w->dups++;
			else
				w->lateness[seq] = late;
			w->seen[seq / 8] |= (uint8_t)(1u << (seq % 8));
		}
		if (env.redelivered)
			w->redelivered++;
		last_tag = env.delivery_tag;
		amqp_destroy_envelope(&env);
		atomic_store(&w->got, ++got);
		if (!opt.no_ack && (++unacked >= ack_every ||
		                    (!amqp_data_in_buffer(c) && !amqp_frames_enqueued(c)))) {
			amqp_basic_ack(c, 1, last_tag, 1);
			unacked = 0;
		}
	}
	if (unacked)
		amqp_basic_ack(c, 1, last_tag, 1);
	broker_close(c);
	return NULL;
}

static void run_delayed(void)
{
	long n = opt.count ? opt.count : 1000000;
	bool spread = opt.spread_ms > 0;
	if (opt.size < 16)
		die("--size must be at least 16 for the delayed scenario");
	char x[200], q[200], hold[220];
	snprintf(x, sizeof x, "%s-delayed", opt.prefix);
	snprintf(q, sizeof q, "%s-delayed-q", opt.prefix);
	snprintf(hold, sizeof hold, "amq.delayed.%s", x);
	printf("delayed: %s\n", DELAYED_ONLY);
	amqp_connection_state_t c = broker_connect("delayed");
	amqp_table_entry_t xe = entry_str("x-delayed-type", "direct");
	declare_exchange(c, x, "x-delayed-message", (amqp_table_t){1, &xe},
	                 "the delayed scenario is " DELAYED_ONLY);
	declare_queue(c, q, opt.persistent, amqp_empty_table);
	amqp_queue_bind(c, 1, amqp_cstring_bytes(q), amqp_cstring_bytes(x), amqp_cstring_bytes(q),
	                amqp_empty_table);
	check_reply(amqp_get_rpc_reply(c), "queue.bind");

	atomic_int ready = 0;
	struct delayed_consumer w = {.n = n, .ready = &ready};
	snprintf(w.queue, sizeof w.queue, "%s", q);
	w.lateness = malloc((size_t)n * sizeof *w.lateness);
	w.seen = calloc((size_t)n / 8 + 1, 1);
	double *lag = malloc((size_t)n * sizeof *lag);
	uint8_t *body = calloc(1, opt.size);
	uint32_t *slot = spread ? malloc((size_t)n * sizeof *slot) : NULL;
	if (!w.lateness || !w.seen || !lag || !body || (spread && !slot))
		die("out of memory");
	double last_ms = spread ? opt.lead_ms + opt.spread_ms : opt.delay_max;
	w.deadline = now() + opt.cap + last_ms / 1000.0;
	pthread_t tc;
	if (pthread_create(&tc, NULL, delayed_consumer, &w))
		die("pthread_create failed");
	while (atomic_load(&ready) < 1)
		sleep_s(0.001);

	uint64_t rng = opt.seed;
	/* Spread: slot j of n is due lead + j * spread / n ms after the start;
	 * the messages take the slots in random order (Fisher-Yates). */
	if (spread) {
		for (long i = 0; i < n; i++)
			slot[i] = (uint32_t)i;
		for (long i = n - 1; i > 0; i--) {
			long j = (long)(rng_next(&rng) % (uint64_t)(i + 1));
			uint32_t t = slot[i];
			slot[i] = slot[j];
			slot[j] = t;
		}
	}
	amqp_confirm_select(c, 1);
	check_reply(amqp_get_rpc_reply(c), "confirm.select");
	/* The confirms' "deadline" is -publish time here: a confirm adds its
	 * arrival, leaving the confirm's lag. */
	struct confirms k = {.conn = c, .deadline = lag, .lowest = 1, .n = (uint64_t)n};
	k.bits = calloc((size_t)n / 8 + 1, 1);
	if (!k.bits)
		die("out of memory");
	struct batch b;
	batch_init(&b, c);
	b.on_input = on_confirm_input;
	b.arg = &k;
	amqp_table_entry_t he = entry_int("x-delay", 0);
	amqp_basic_properties_t props = {._flags = AMQP_BASIC_HEADERS_FLAG, .headers = {1, &he}};
	if (opt.persistent) {
		props._flags |= AMQP_BASIC_DELIVERY_MODE_FLAG;
		props.delivery_mode = AMQP_DELIVERY_PERSISTENT;
	}
	long rss0 = broker_rss_kb();
	double cpu0 = broker_cpu_s(), self0 = self_cpu_s();
	double t_start = now();
	uint64_t base = (uint64_t)wall_ms() + (uint64_t)opt.lead_ms;
	long published_late = 0;
	for (long i = 0; i < n; i++) {
		/* Whole ms, rounded down like amqpd's clock, which reads it
		 * later: the broker's due time is never before the body's. */
		uint64_t t = (uint64_t)wall_ms(), due;
		int64_t delay;
		if (spread) {
			due = base + (uint64_t)((double)slot[i] * opt.spread_ms / (double)n);
			delay = (int64_t)due - (int64_t)t;
			if (delay < 1) { /* x-delay <= 0 is routed at once */
				published_late++;
				delay = 1;
			}
		} else {
			delay = opt.delay_min +
			        (int64_t)(rng_next(&rng) %
			                  (uint64_t)(opt.delay_max - opt.delay_min + 1));
			due = t + (uint64_t)delay;
		}
		he.value.value.i32 = (int32_t)delay;
		uint64_t seq = (uint64_t)i;
		memcpy(body, &due, 8);
		memcpy(body + 8, &seq, 8);
		if ((i & 1023) == 0) {
			check_stop();
			read_confirms(&k, false);
		}
		lag[i] = -now();
		batch_publish(&b, x, q, &props, body, opt.size);
		if (opt.publish_rate > 0) {
			double ahead = t_start + (double)(i + 1) / (double)opt.publish_rate - now();
			if (ahead > 0) {
				batch_flush(&b);
				read_confirms(&k, false);
				sleep_s(ahead);
			}
		}
	}
	batch_flush(&b);
	double t_sent = now();
	while (k.lowest <= k.n) {
		check_stop();
		read_confirms(&k, true);
		if (now() - t_sent > opt.cap)
			die("delayed: %" PRIu64 " of %ld messages confirmed after %.0f s",
			    k.lowest - 1, n, opt.cap);
	}
	double t_pub = now();
	long rss_pub = broker_rss_kb();
	double cpu_pub = broker_cpu_s();
	long delivered_pub = atomic_load(&w.got);
	long pending_pub = queue_count(c, hold);
	if (k.nacks)
		fprintf(stderr, "delayed: WARNING: %ld basic.nack\n", k.nacks);
	fprintf(stderr, "delayed: %ld published in %.2f s, %ld pending, %ld delivered\n", n,
	        t_pub - t_start, pending_pub, delivered_pub);

	pthread_join(tc, NULL);
	double t_end = now();
	long rss_end = broker_rss_kb();
	double cpu_end = broker_cpu_s(), self_end = self_cpu_s();
	long pending_end = queue_count(c, hold);
	long got = atomic_load(&w.got);
	bool done = got == n;

	/* The body's due time is publish time + x-delay; amqpd's is its own
	 * reading of the clock when it routed the message + x-delay, which is
	 * later by the time the message spent in the socket buffers and the
	 * broker's input: up to the confirm's lag.  So amqpd's own lateness is
	 * between the lateness from the body (la) and that minus the lag (lb). */
	double *la = malloc((size_t)n * sizeof *la), *lb = malloc((size_t)n * sizeof *lb);
	if (!la || !lb)
		die("out of memory");
	long nl = 0;
	double late_sum = 0;
	for (long i = 0; i < n; i++) {
		if (!(w.seen[i / 8] & (1u << (i % 8))))
			continue;
		la[nl] = w.lateness[i];
		lb[nl] = w.lateness[i] - lag[i] * 1e3;
		late_sum += la[nl];
		nl++;
	}
	qsort(la, (size_t)nl, sizeof *la, cmp_double);
	qsort(lb, (size_t)nl, sizeof *lb, cmp_double);
	qsort(lag, (size_t)n, sizeof *lag, cmp_double);
	double p50 = quantile(la, nl, 0.5), p99 = quantile(la, nl, 0.99);
	double p999 = quantile(la, nl, 0.999);
	double lmax = nl ? la[nl - 1] : 0, lmin = nl ? la[0] : 0;
	double lmean = nl ? late_sum / (double)nl : 0;
	double b50 = quantile(lb, nl, 0.5), b99 = quantile(lb, nl, 0.99);
	double b999 = quantile(lb, nl, 0.999), bmax = nl ? lb[nl - 1] : 0;
	double due_per_s = spread ? (double)n * 1000.0 / opt.spread_ms : 0;

	printf("delayed: %ld messages of %zu B (%s) to a durable x-delayed-message exchange "
	       "(x-delayed-type direct), one bound queue, publisher confirms\n",
	       n, opt.size, opt.persistent ? "persistent" : "transient");
	if (spread)
		printf("  due times evenly over %d ms from %d ms after the start (%.0f due per "
		       "second), in random order; %ld published after their due time\n",
		       opt.spread_ms, opt.lead_ms, due_per_s, published_late);
	else
		printf("  x-delay random in %d-%d ms\n", opt.delay_min, opt.delay_max);
	if (opt.publish_rate > 0)
		printf("  publisher paced at %ld msg/s at most\n", opt.publish_rate);
	printf("  published in %.2f s (%.0f msg/s confirmed); confirm lag ms p50 %.1f, p99 "
	       "%.1f, max %.1f\n",
	       t_pub - t_start, n / (t_pub - t_start), quantile(lag, n, 0.5) * 1e3,
	       quantile(lag, n, 0.99) * 1e3, lag[n - 1] * 1e3);
	printf("  at the end of publishing: %ld pending in %s, %ld delivered\n", pending_pub, hold,
	       delivered_pub);
	printf("  delivered %ld in %.2f s after the end of publishing (%s)%s; %ld pending "
	       "then\n",
	       got, t_end - t_pub, opt.no_ack ? "no-ack" : "manual ack",
	       done ? "" : " (INCOMPLETE: gave up)", pending_end);
	printf("  lateness ms (arrival - due): p50 %.2f, p99 %.2f, p99.9 %.2f, max %.2f, mean "
	       "%.2f, min %.2f\n",
	       p50, p99, p999, lmax, lmean, lmin);
	printf("  lateness ms counted from the confirm's arrival + x-delay (a lower bound of "
	       "amqpd's own): p50 %.2f, p99 %.2f, p99.9 %.2f, max %.2f\n",
	       b50, b99, b999, bmax);
	printf("  %ld delivered before their due time, %ld duplicates, %ld redelivered\n", w.early,
	       w.dups, w.redelivered);
	if (opt.pid > 0)
		printf("  broker RSS: %ld kB before, %ld kB at the end of publishing, %ld kB "
		       "when all are delivered; broker CPU %.2f s publishing, %.2f s "
		       "delivering\n",
		       rss0, rss_pub, rss_end, cpu_pub - cpu0, cpu_end - cpu_pub);
	printf("  client CPU %.2f s\n", self_end - self0);
	printf("RESULT scenario=delayed count=%ld size=%zu persistent=%d no_ack=%d "
	       "prefetch=%d spread_ms=%d due_per_s=%.0f paced_rate=%ld complete=%d publish_s=%.3f "
	       "publish_rate=%.0f confirm_lag_p50_ms=%.1f confirm_lag_p99_ms=%.1f "
	       "confirm_lag_max_ms=%.1f pending_at_publish_end=%ld "
	       "delivered_at_publish_end=%ld pending_end=%ld delivered=%ld late_p50_ms=%.2f "
	       "late_p99_ms=%.2f late_p999_ms=%.2f late_max_ms=%.2f late_mean_ms=%.2f "
	       "late_min_ms=%.2f late_confirm_p50_ms=%.2f late_confirm_p99_ms=%.2f "
	       "late_confirm_p999_ms=%.2f late_confirm_max_ms=%.2f early=%ld duplicates=%ld "
	       "redelivered=%ld published_late=%ld "
	       "rss_start_kb=%ld rss_published_kb=%ld rss_delivered_kb=%ld "
	       "broker_cpu_publish_s=%.2f broker_cpu_deliver_s=%.2f client_cpu_s=%.2f "
	       "nacks=%ld\n",
	       n, opt.size, opt.persistent ? 1 : 0, opt.no_ack ? 1 : 0, opt.prefetch, opt.spread_ms,
	       due_per_s, opt.publish_rate, done ? 1 : 0, t_pub - t_start, n / (t_pub - t_start),
	       quantile(lag, n, 0.5) * 1e3, quantile(lag, n, 0.99) * 1e3, lag[n - 1] * 1e3,
	       pending_pub, delivered_pub, pending_end, got, p50, p99, p999, lmax, lmean, lmin, b50,
	       b99, b999, bmax, w.early, w.dups, w.redelivered, published_late, rss0, rss_pub,
	       rss_end, cpu_pub - cpu0, cpu_end - cpu_pub, self_end - self0, k.nacks);
	free(la);
	free(lb);
	free(k.bits);
	free(lag);
	free(slot);
	free(body);
	free(w.lateness);
	free(w.seen);
	free(b.buf);
	cleanup_queues();
	broker_close(c);
	if (!done)
		exit(1);
}

/* ---------------------------------------------------------------------------
 * Options
 */

static void usage(FILE *f)
{
	fprintf(f, "usage: queue_ext --scenario ttl|dlx|priority|delayed [options]\n"
	           "  --uri HOST:PORT     broker (127.0.0.1:5672); --user, --password (guest),\n"
	           "                      --vhost (/)\n"
	           "  --count N           messages (ttl 1000000, dlx 200000, priority 500000,\n"
	           "                      delayed 1000000)\n"
	           "  --size BYTES        body size (16; priority needs 5, delayed 16)\n"
	           "  --ttl-min MS --ttl-max MS  ttl: expiration range (1000, 10000)\n"
	           "  --delay-min MS --delay-max MS  delayed: x-delay range (1000, 11000)\n"
	           "  --spread-ms MS      delayed: due times evenly over MS ms instead, from\n"
	           "  --lead-ms MS        ... MS ms after the start (2000)\n"
	           "  --publish-rate N    delayed: publish at most N msg/s (0: flat out)\n"
	           "  --persistent        delayed: persistent messages, durable queue\n"
	           "  --no-ack            delayed: no-ack consumer (default manual ack)\n"
	           "  --cap S             give up waiting after S seconds (120)\n"
	           "  --prefetch N        dlx rejecter, priority drain, delayed consumer (100)\n"
	           "  --poll-ms MS        ttl: message count poll interval (25)\n"
	           "  --pid PID           the broker's process: report its RSS and CPU time\n"
	           "  --queue-prefix NAME queue names (qext-PID)\n"
	           "  --seed N            ttl: expirations (1)\n");
}

static long num_arg(const char *name, const char *s, long min, long max)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || *end || end == s || v < min || v > max) {
		fprintf(stderr, "queue_ext: bad %s '%s' (%ld..%ld)\n", name, s, min, max);
		exit(2);
	}
	return v;
}

static void parse_args(int argc, char **argv)
{
	static const struct option lo[] = {{"uri", required_argument, 0, 'u'},
	                                   {"user", required_argument, 0, 'U'},
	                                   {"password", required_argument, 0, 'W'},
	                                   {"vhost", required_argument, 0, 'V'},
	                                   {"scenario", required_argument, 0, 's'},
	                                   {"count", required_argument, 0, 'n'},
	                                   {"size", required_argument, 0, 'z'},
	                                   {"ttl-min", required_argument, 0, 'm'},
	                                   {"ttl-max", required_argument, 0, 'M'},
	                                   {"cap", required_argument, 0, 'c'},
	                                   {"prefetch", required_argument, 0, 'f'},
	                                   {"poll-ms", required_argument, 0, 'o'},
	                                   {"pid", required_argument, 0, 'p'},
	                                   {"queue-prefix", required_argument, 0, 'q'},
	                                   {"seed", required_argument, 0, 'S'},
	                                   {"delay-min", required_argument, 0, 'd'},
	                                   {"delay-max", required_argument, 0, 'D'},
	                                   {"spread-ms", required_argument, 0, 'r'},
	                                   {"lead-ms", required_argument, 0, 'l'},
	                                   {"persistent", no_argument, 0, 'P'},
	                                   {"publish-rate", required_argument, 0, 'R'},
	                                   {"no-ack", no_argument, 0, 'A'},
	                                   {"help", no_argument, 0, 'h'},
	                                   {0, 0, 0, 0}};
	int ch;
	snprintf(opt.prefix, sizeof opt.prefix, "qext-%d", (int)getpid());
	while ((ch = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (ch) {
		case 'u': {
			const char *colon = strrchr(optarg, ':');
			if (!colon || colon == optarg ||
			    (size_t)(colon - optarg) >= sizeof opt.host) {
				fprintf(stderr, "queue_ext: --uri wants HOST:PORT\n");
				exit(2);
			}
			memcpy(opt.host, optarg, (size_t)(colon - optarg));
			opt.host[colon - optarg] = 0;
			opt.port = (int)num_arg("port", colon + 1, 1, 65535);
			break;
		}
		case 'U':
			opt.user = optarg;
			break;
		case 'W':
			opt.password = optarg;
			break;
		case 'V':
			opt.vhost = optarg;
			break;
		case 's':
			opt.scenario = optarg;
			break;
		case 'n':
			opt.count = num_arg("--count", optarg, 1, 100000000);
			break;
		case 'z':
			opt.size = (size_t)num_arg("--size", optarg, 0, MAX_SIZE);
			break;
		case 'm':
			opt.ttl_min = (int)num_arg("--ttl-min", optarg, 0, 100000000);
			break;
		case 'M':
			opt.ttl_max = (int)num_arg("--ttl-max", optarg, 0, 100000000);
			break;
		case 'c':
			opt.cap = (double)num_arg("--cap", optarg, 1, 86400);
			break;
		case 'f':
			opt.prefetch = (int)num_arg("--prefetch", optarg, 1, 65535);
			break;
		case 'o':
			opt.poll_ms = (int)num_arg("--poll-ms", optarg, 1, 10000);
			break;
		case 'p':
			opt.pid = num_arg("--pid", optarg, 1, 1L << 30);
			break;
		case 'q':
			snprintf(opt.prefix, sizeof opt.prefix, "%s", optarg);
			break;
		case 'S':
			opt.seed = (uint64_t)num_arg("--seed", optarg, 1, 1L << 62);
			break;
		case 'd':
			opt.delay_min = (int)num_arg("--delay-min", optarg, 1, 1000000000);
			break;
		case 'D':
			opt.delay_max = (int)num_arg("--delay-max", optarg, 1, 1000000000);
			break;
		case 'r':
			opt.spread_ms = (int)num_arg("--spread-ms", optarg, 1, 1000000000);
			break;
		case 'l':
			opt.lead_ms = (int)num_arg("--lead-ms", optarg, 0, 1000000000);
			break;
		case 'P':
			opt.persistent = true;
			break;
		case 'R':
			opt.publish_rate = num_arg("--publish-rate", optarg, 0, 100000000);
			break;
		case 'A':
			opt.no_ack = true;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			exit(2);
		}
	}
	if (optind < argc || !opt.scenario || opt.ttl_max < opt.ttl_min ||
	    opt.delay_max < opt.delay_min) {
		usage(stderr);
		exit(2);
	}
}

int main(int argc, char **argv)
{
	parse_args(argc, argv);
	struct sigaction sa = {.sa_handler = on_signal};
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);

	if (strcmp(opt.scenario, "ttl") == 0)
		run_ttl();
	else if (strcmp(opt.scenario, "dlx") == 0)
		run_dlx();
	else if (strcmp(opt.scenario, "priority") == 0)
		run_priority();
	else if (strcmp(opt.scenario, "delayed") == 0)
		run_delayed();
	else {
		fprintf(stderr, "queue_ext: unknown scenario '%s' (ttl, dlx, priority, delayed)\n",
		        opt.scenario);
		exit(2);
	}
	return 0;
}
