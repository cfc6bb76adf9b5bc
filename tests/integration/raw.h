/*
 * raw.h - raw-socket AMQP 0-9-1 for the integration tests that need to send
 * what rabbitmq-c cannot express (malformed frames, odd handshakes) or to see
 * exactly what the broker sends.
 *
 * Holds a growable write buffer with big-endian field and frame builders
 * (wb_*), the handshake and a few method/content builders, blocking sends,
 * frame reads with a deadline (read_frame/read_method), a bounds-checked
 * argument reader (rd_*), and close/EOF waits.  The connect helpers use
 * g_broker.
 *
 * Single-threaded test helpers: nothing here is thread-safe, and the frame
 * reads may use static buffers.
 */
#ifndef RAW_H
#define RAW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- building frames ---------------------------------------------------- */

/* A growable byte buffer; {0} is empty.  Reset with b.n = 0, free with
 * wb_free().  Allocation failure aborts. */
struct wbuf {
	uint8_t *p;
	size_t n, cap;
};

void wb_put(struct wbuf *b, const void *d, size_t n);
void wb_u8(struct wbuf *b, uint8_t v);
void wb_u16(struct wbuf *b, uint16_t v);
void wb_u32(struct wbuf *b, uint32_t v);
void wb_u64(struct wbuf *b, uint64_t v);
void wb_sstr(struct wbuf *b, const char *s);           /* short string */
void wb_lstr(struct wbuf *b, const void *s, size_t n); /* long string */
void wb_free(struct wbuf *b);

/* Appends one frame: header, payload, frame-end octet. */
void wb_frame(struct wbuf *b, uint8_t type, uint16_t ch, const void *payload, size_t n);
/* Appends a method frame; args may be NULL. */
void wb_method(struct wbuf *b, uint16_t ch, uint16_t cls, uint16_t mth, const struct wbuf *args);

/* connection.start-ok with client properties {product, and capabilities
 * {authentication_failure_close: true} when auth_close}; resp is the SASL
 * response for mech. */
void wb_start_ok(struct wbuf *b, bool auth_close, const char *mech, const void *resp,
                 size_t resp_len);
void wb_start_ok_plain(struct wbuf *b, bool auth_close, const char *user, const char *pass);
void wb_tune_ok(struct wbuf *b, uint16_t channel_max, uint32_t frame_max, uint16_t heartbeat);
void wb_conn_open(struct wbuf *b, const char *vhost);
void wb_channel_open(struct wbuf *b, uint16_t ch);
void wb_flow(struct wbuf *b, uint16_t ch, bool active);
/* connection.close on channel 0, else channel.close on ch; class/method 0. */
void wb_close(struct wbuf *b, uint16_t ch, uint16_t code, const char *text);
/* queue.declare (passive=1, durable=2, exclusive=4, auto-delete=8) with the
 * raw arguments table (length included), or an empty one when NULL. */
void wb_queue_declare(struct wbuf *b, uint16_t ch, const char *q, uint8_t bits,
                      const struct wbuf *table);
/* basic.publish to the default exchange; bits: 1 = mandatory, 2 = immediate */
void wb_publish(struct wbuf *b, uint16_t ch, const char *rk, uint8_t bits);
/* A content header frame without properties. */
void wb_header(struct wbuf *b, uint16_t ch, uint16_t cls, uint64_t body_size);

/* ---- sending and reading ------------------------------------------------ */

/* 0, or -1 when the peer has gone (no SIGPIPE). */
int send_all(int fd, const void *p, size_t n);
int send_wb(int fd, const struct wbuf *b);

enum { RF_OK = 1, RF_EOF = 0, RF_TIMEOUT = -1, RF_BAD = -2 };

/* RF_OK once n bytes are in, RF_EOF on EOF or reset, RF_TIMEOUT after
 * deadline (a now_ms() value). */
int recv_exact(int fd, void *buf, size_t n, int64_t deadline);

#define RF_MAX (140 * 1024)

/* A frame as read; large, so callers keep it static. */
struct rframe {
	uint8_t type;
	uint16_t ch;
	uint32_t size;
	uint16_t cls, mth; /* method frames only */
	uint8_t payload[RF_MAX];
};

uint16_t get16(const uint8_t *p);
uint32_t get32(const uint8_t *p);

/* One frame: RF_OK, RF_EOF, RF_TIMEOUT, or RF_BAD (oversized or a bad
 * frame-end octet). */
int read_frame(int fd, struct rframe *f, int timeout_ms);
/* The next frame that is not a heartbeat. */
int read_method(int fd, struct rframe *f, int timeout_ms);

/* Bounds-checked reader over a method's arguments: {.p, .n}; once a read
 * runs past the end, bad is set and reads return 0 / NULL. */
struct rd {
	const uint8_t *p;
	size_t n, off;
	bool bad;
};

const uint8_t *rd_take(struct rd *r, size_t n);
uint8_t rd_u8(struct rd *r);
uint16_t rd_u16(struct rd *r);
uint32_t rd_u32(struct rd *r);
/* Copies a short string into out (NUL-terminated, out holds >= 256). */
void rd_sstr(struct rd *r, char *out);

/* A connection.close or channel.close as received. */
struct rclose {
	uint16_t kind; /* 10: connection.close, 20: channel.close */
	uint16_t ch;
	uint16_t code, cls, mth;
	char text[256];
};

/* Fills code, text, cls and mth from a close method frame. */
bool parse_close(const struct rframe *f, struct rclose *c);

/* True when the peer closes the socket (EOF or reset) within timeout_ms;
 * whatever it sends first is discarded. */
bool await_eof(int fd, int timeout_ms);
/* Reads until a connection.close or channel.close (answered with the
 * matching close-ok).  RF_OK with *c filled (c->kind 10 or 20), RF_EOF if
 * the socket closed first, RF_TIMEOUT. */
int await_close(int fd, struct rclose *c, int timeout_ms);

/* ---- connecting to g_broker --------------------------------------------- */

/* Connects, sends the protocol header and reads connection.start into f.
 * Returns the socket or -1. */
int raw_start(struct rframe *f);
/* Full PLAIN guest/guest handshake to an open connection on vhost "/", with
 * the given tune-ok values.  Returns the socket or -1. */
int raw_login(uint32_t frame_max, uint16_t heartbeat);
/* raw_login(frame_max, 0) with channel 1 open; -1 on failure. */
int raw_open(uint32_t frame_max);

#endif
