/*
 * amqp_frame.h - AMQP 0-9-1 framing: the incremental frame parser, the
 * method decoder on top of it, and frame writers.
 *
 * Parser ownership: a struct amqp_frame_parser is owned by one connection
 * and used from one thread.  A frame it returns borrows either from the
 * caller's input (when the whole frame lay in one chunk: no copy) or from
 * the parser's own scratch buffer (when the frame arrived split); either
 * way it is valid until the next call to amqp_parser_feed() or until the
 * input is released.  The scratch buffer is sized from a frame size only
 * after that size was checked against frame_max; amqp_parser_free()
 * releases it.  A split body frame can instead be gathered straight into
 * memory its user supplies (amqp_parser_set_body_dest()), so that a large
 * message body is copied once, from the input to where it is stored.
 *
 * Writers encode into caller-supplied buffers and return the number of
 * bytes the frame needs (snprintf style): the frame was written iff the
 * result is non-zero and <= the capacity given.  0 means a value could not
 * be encoded (e.g. a shortstr longer than 255 bytes).
 */
#ifndef AMQP_FRAME_H
#define AMQP_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "amqp_err.h"
#include "amqp_gen.h"
#include "amqp_props.h"
#include "amqp_wire.h"

#define AMQP_FRAME_OVERHEAD      8 /* type(1) channel(2) size(4) ... end(1) */
#define AMQP_PROTOCOL_HEADER_LEN 8
/* "AMQP" 0 0 9 1: what a 0-9-1 client sends first and what a server sends
 * back (then closes) when it does not like the client's header. */
extern const uint8_t amqp_protocol_header[AMQP_PROTOCOL_HEADER_LEN];

/* Used when frame_max is 0 ("no limit" in tune): a hard ceiling still. */
#define AMQP_FRAME_MAX_ABSOLUTE (1u << 28)

struct amqp_frame {
	uint8_t type; /* AMQP_FRAME_METHOD, _HEADER, _BODY, _HEARTBEAT */
	uint16_t channel;
	uint32_t size;
	const uint8_t *payload; /* borrowed; see above */
};

enum amqp_parser_role {
	AMQP_PARSER_SERVER, /* expects the protocol header first */
	AMQP_PARSER_CLIENT, /* frames from the first byte */
};

/* Results of amqp_parser_feed() (errors are -<reply code>). */
enum {
	AMQP_PARSE_NEED_MORE = 0,
	AMQP_PARSE_FRAME = 1,
	AMQP_PARSE_PROTOCOL_HEADER = 2,
	/* The peer's protocol header is not AMQP 0-9-1: send
	 * amqp_protocol_header and close the socket. */
	AMQP_PARSE_BAD_PROTOCOL = -1,
};

/* Asked once per body frame that arrives split, after its size passed the
 * frame_max check: where its size payload bytes should be gathered.  NULL
 * means the scratch buffer, as for any other frame.  The memory must stay
 * writable until the frame is returned, or be withdrawn first with
 * amqp_parser_release_dest(). */
typedef uint8_t *(*amqp_body_dest_fn)(void *arg, uint16_t channel, uint32_t size);

struct amqp_frame_parser {
	uint32_t frame_max; /* includes AMQP_FRAME_OVERHEAD; 0 = no limit */
	int state;          /* internal */
	int error;          /* sticky: once failed, always fails */
	const char *error_text;
	/* The failure means the byte stream itself is corrupt (bad frame-end
	 * octet, unknown frame type): as section 4.2.3 says, the peer then
	 * closes the socket without sending anything more. */
	bool corrupt;
	uint8_t hdr[AMQP_PROTOCOL_HEADER_LEN];
	size_t hdr_have;
	uint8_t type;
	uint16_t channel;
	uint32_t size;
	uint8_t *buf; /* scratch for frames that arrive split */
	size_t buf_cap;
	uint8_t *gather; /* where this frame's payload goes: buf or a body dest */
	size_t have;     /* payload bytes gathered there */
	amqp_body_dest_fn body_dest;
	void *body_dest_arg;
};

void amqp_parser_init(struct amqp_frame_parser *p, enum amqp_parser_role role, uint32_t frame_max);
/* The negotiated frame_max (connection.tune-ok); applies to the next frame. */
void amqp_parser_set_frame_max(struct amqp_frame_parser *p, uint32_t frame_max);
void amqp_parser_free(struct amqp_frame_parser *p);
/* Between frames, give back a scratch buffer larger than keep bytes (one
 * frame split across reads grew it up to frame_max; without this every
 * connection that ever received one keeps it).  Any frame returned before
 * is no longer valid afterwards. */
void amqp_parser_trim(struct amqp_frame_parser *p, size_t keep);

/* Gather split body frames where fn says (see amqp_body_dest_fn); the
 * returned frame's payload is then that memory. */
void amqp_parser_set_body_dest(struct amqp_frame_parser *p, amqp_body_dest_fn fn, void *arg);
/* The memory [mem, mem + len) is going away: if the frame being gathered
 * was headed there, its payload goes to the scratch buffer instead (what
 * was gathered so far reads as zeros: whoever withdrew the memory has no
 * use for the frame's contents).  0, or -AMQP_INTERNAL_ERROR if the scratch
 * buffer could not be allocated (the parser then stays failed). */
int amqp_parser_release_dest(struct amqp_frame_parser *p, const uint8_t *mem, size_t len);

/*
 * Consume bytes from data[0..len).  *used says how many were consumed.
 *   AMQP_PARSE_FRAME:           *out holds one frame; call again with the rest.
 *   AMQP_PARSE_PROTOCOL_HEADER: a valid 0-9-1 protocol header was read.
 *   AMQP_PARSE_NEED_MORE:       everything consumed, no complete frame yet.
 *   AMQP_PARSE_BAD_PROTOCOL:    see above.
 *   -AMQP_FRAME_ERROR etc.:     *err says why; the parser stays failed.
 *   -AMQP_INTERNAL_ERROR:       the scratch buffer could not be allocated.
 * Input can be split at any byte boundary: feeding one byte at a time gives
 * the same frames as feeding everything at once.
 */
int amqp_parser_feed(struct amqp_frame_parser *p, const uint8_t *data, size_t len, size_t *used,
                     struct amqp_frame *out, struct amqp_err *err);

/* Decode a method frame's payload (class id, method id, arguments).
 * 0, -AMQP_FRAME_ERROR (truncated or trailing bytes), -AMQP_SYNTAX_ERROR
 * (bad table), -AMQP_COMMAND_INVALID (class or method not in the spec). */
int amqp_method_decode(const uint8_t *p, size_t len, struct amqp_method *m, struct amqp_err *err);

/* Encode a method payload (ids + arguments) into w; false if unencodable. */
bool amqp_method_encode(struct amqp_wr *w, const struct amqp_method *m);

/* Whole frames: type, channel, size, payload, frame-end. */
size_t amqp_frame_method(uint8_t *buf, size_t cap, uint16_t channel, const struct amqp_method *m);
size_t amqp_frame_header(uint8_t *buf, size_t cap, uint16_t channel, uint16_t class_id,
                         uint64_t body_size, const struct amqp_basic_props *props);
size_t amqp_frame_header_raw(uint8_t *buf, size_t cap, uint16_t channel, uint16_t class_id,
                             uint64_t body_size, struct amqp_bytes raw_props);
/* One body frame; the caller splits bodies at frame_max - 8. */
size_t amqp_frame_body(uint8_t *buf, size_t cap, uint16_t channel, struct amqp_bytes body);
size_t amqp_frame_heartbeat(uint8_t *buf, size_t cap);

/* Helpers for writing a frame around a payload encoded in place. */
void amqp_frame_begin(struct amqp_wr *w, uint8_t type, uint16_t channel);
/* Patches the size; returns bytes needed, or 0 if something was unencodable. */
size_t amqp_frame_end(struct amqp_wr *w, size_t start);

#endif
