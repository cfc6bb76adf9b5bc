/*
 * amqp_frame.c - incremental frame parser, method decoding, frame writers.
 */
#include "amqp_frame.h"

#include <stdlib.h>

const uint8_t amqp_protocol_header[AMQP_PROTOCOL_HEADER_LEN] = {'A', 'M', 'Q', 'P', 0, 0, 9, 1};

enum { ST_PROTO_HEADER, ST_FRAME_HEADER, ST_PAYLOAD, ST_FRAME_END };

#define FRAME_HEADER_LEN 7

void amqp_parser_init(struct amqp_frame_parser *p, enum amqp_parser_role role, uint32_t frame_max)
{
	memset(p, 0, sizeof(*p));
	p->frame_max = frame_max;
	p->state = role == AMQP_PARSER_SERVER ? ST_PROTO_HEADER : ST_FRAME_HEADER;
}

void amqp_parser_set_frame_max(struct amqp_frame_parser *p, uint32_t frame_max)
{
	p->frame_max = frame_max;
}

void amqp_parser_set_body_dest(struct amqp_frame_parser *p, amqp_body_dest_fn fn, void *arg)
{
	p->body_dest = fn;
	p->body_dest_arg = arg;
}

void amqp_parser_free(struct amqp_frame_parser *p)
{
	p->gather = NULL;
	free(p->buf);
	p->buf = NULL;
	p->buf_cap = 0;
}

void amqp_parser_trim(struct amqp_frame_parser *p, size_t keep)
{
	if (p->buf_cap > keep && p->state == ST_FRAME_HEADER && p->hdr_have == 0)
		amqp_parser_free(p);
}

static int parser_fail(struct amqp_frame_parser *p, struct amqp_err *err, uint16_t code,
                       const char *text)
{
	p->error = -(int)code;
	p->error_text = text;
	return amqp_fail(err, code, text);
}

/* Make the scratch buffer hold at least size bytes (size was checked
 * against frame_max).  false if out of memory. */
static bool scratch_reserve(struct amqp_frame_parser *p, size_t size)
{
	if (p->buf_cap >= size)
		return true;
	uint8_t *nb = realloc(p->buf, size);
	if (!nb)
		return false;
	p->buf = nb;
	p->buf_cap = size;
	return true;
}

int amqp_parser_release_dest(struct amqp_frame_parser *p, const uint8_t *mem, size_t len)
{
	bool gathering = p->state == ST_PAYLOAD || p->state == ST_FRAME_END;
	/* Compare as integers: mem is an unrelated object when not ours. */
	uintptr_t g = (uintptr_t)p->gather, m = (uintptr_t)mem;
	if (!gathering || !p->gather || p->gather == p->buf || g < m || g - m >= len)
		return 0;
	if (!scratch_reserve(p, p->size)) {
		p->gather = NULL;
		return parser_fail(p, NULL, AMQP_INTERNAL_ERROR, "INTERNAL_ERROR - out of memory");
	}
	memset(p->buf, 0, p->have);
	p->gather = p->buf;
	return 0;
}

/* Check a frame header (type, channel, size) before anything is buffered. */
static int check_header(struct amqp_frame_parser *p, struct amqp_err *err)
{
	uint32_t max = p->frame_max ? p->frame_max : AMQP_FRAME_MAX_ABSOLUTE;

	switch (p->type) {
	case AMQP_FRAME_METHOD:
	case AMQP_FRAME_HEADER:
	case AMQP_FRAME_BODY:
		break;
	case AMQP_FRAME_HEARTBEAT:
		if (p->channel != 0)
			return parser_fail(p, err, AMQP_FRAME_ERROR,
			                   "FRAME_ERROR - heartbeat frame on a non-zero channel");
		if (p->size != 0)
			return parser_fail(p, err, AMQP_FRAME_ERROR,
			                   "FRAME_ERROR - heartbeat frame with a payload");
		break;
	default:
		p->corrupt = true;
		return parser_fail(p, err, AMQP_FRAME_ERROR, "FRAME_ERROR - unknown frame type");
	}
	if ((uint64_t)p->size + AMQP_FRAME_OVERHEAD > max)
		return parser_fail(p, err, AMQP_FRAME_ERROR,
		                   "FRAME_ERROR - frame larger than frame_max");
	return 0;
}

static void decode_frame_header(struct amqp_frame_parser *p, const uint8_t *h)
{
	p->type = h[0];
	p->channel = (uint16_t)((h[1] << 8) | h[2]);
	p->size = ((uint32_t)h[3] << 24) | ((uint32_t)h[4] << 16) | ((uint32_t)h[5] << 8) | h[6];
}

static int protocol_header_step(struct amqp_frame_parser *p, const uint8_t *data, size_t len,
                                size_t *used)
{
	size_t n = AMQP_PROTOCOL_HEADER_LEN - p->hdr_have;
	if (n > len)
		n = len;
	memcpy(p->hdr + p->hdr_have, data, n);
	p->hdr_have += n;
	*used = n;
	/* Fail as soon as a byte disagrees, so a client speaking something
	 * else (HTTP, TLS) is answered without waiting for 8 bytes. */
	if (memcmp(p->hdr, amqp_protocol_header, p->hdr_have) != 0) {
		p->error = AMQP_PARSE_BAD_PROTOCOL;
		return AMQP_PARSE_BAD_PROTOCOL;
	}
	if (p->hdr_have < AMQP_PROTOCOL_HEADER_LEN)
		return AMQP_PARSE_NEED_MORE;
	p->state = ST_FRAME_HEADER;
	p->hdr_have = 0;
	return AMQP_PARSE_PROTOCOL_HEADER;
}

int amqp_parser_feed(struct amqp_frame_parser *p, const uint8_t *data, size_t len, size_t *used,
                     struct amqp_frame *out, struct amqp_err *err)
{
	size_t pos = 0;

	*used = 0;
	if (p->error == AMQP_PARSE_BAD_PROTOCOL)
		return AMQP_PARSE_BAD_PROTOCOL;
	if (p->error)
		return amqp_fail(err, (uint16_t)-p->error, p->error_text);

	if (p->state == ST_PROTO_HEADER)
		return protocol_header_step(p, data, len, used);

	while (pos < len) {
		switch (p->state) {
		case ST_FRAME_HEADER: {
			/* Fast path: whole frame in this chunk, nothing pending. */
			if (p->hdr_have == 0 && len - pos >= FRAME_HEADER_LEN) {
				decode_frame_header(p, data + pos);
				int rc = check_header(p, err);
				if (rc < 0) {
					*used = pos;
					return rc;
				}
				size_t total = FRAME_HEADER_LEN + (size_t)p->size + 1;
				if (len - pos >= total) {
					if (data[pos + total - 1] != AMQP_FRAME_END) {
						*used = pos + total;
						p->corrupt = true;
						return parser_fail(
						    p, err, AMQP_FRAME_ERROR,
						    "FRAME_ERROR - bad frame end octet");
					}
					out->type = p->type;
					out->channel = p->channel;
					out->size = p->size;
					out->payload = data + pos + FRAME_HEADER_LEN;
					*used = pos + total;
					return AMQP_PARSE_FRAME;
				}
				memcpy(p->hdr, data + pos, FRAME_HEADER_LEN);
				p->hdr_have = FRAME_HEADER_LEN;
				pos += FRAME_HEADER_LEN;
			} else {
				size_t n = FRAME_HEADER_LEN - p->hdr_have;
				if (n > len - pos)
					n = len - pos;
				memcpy(p->hdr + p->hdr_have, data + pos, n);
				p->hdr_have += n;
				pos += n;
				if (p->hdr_have < FRAME_HEADER_LEN)
					break;
				decode_frame_header(p, p->hdr);
				int rc = check_header(p, err);
				if (rc < 0) {
					*used = pos;
					return rc;
				}
			}
			/* Slow path: gather the payload - a body frame's where its
			 * user wants it, any other in the scratch buffer, sized
			 * only now that the size has been checked. */
			p->gather = NULL;
			if (p->type == AMQP_FRAME_BODY && p->size && p->body_dest)
				p->gather = p->body_dest(p->body_dest_arg, p->channel, p->size);
			if (!p->gather && p->size) {
				if (!scratch_reserve(p, p->size)) {
					*used = pos;
					return parser_fail(p, err, AMQP_INTERNAL_ERROR,
					                   "INTERNAL_ERROR - out of memory");
				}
				p->gather = p->buf;
			}
			p->have = 0;
			p->state = p->size ? ST_PAYLOAD : ST_FRAME_END;
			break;
		}
		case ST_PAYLOAD: {
			size_t n = p->size - p->have;
			if (n > len - pos)
				n = len - pos;
			memcpy(p->gather + p->have, data + pos, n);
			p->have += n;
			pos += n;
			if (p->have == p->size)
				p->state = ST_FRAME_END;
			break;
		}
		case ST_FRAME_END:
			if (data[pos++] != AMQP_FRAME_END) {
				*used = pos;
				p->corrupt = true;
				return parser_fail(p, err, AMQP_FRAME_ERROR,
				                   "FRAME_ERROR - bad frame end octet");
			}
			out->type = p->type;
			out->channel = p->channel;
			out->size = p->size;
			/* Never NULL, even for an empty frame (no buffer yet). */
			out->payload = p->size ? p->gather : p->hdr;
			p->gather = NULL;
			p->hdr_have = 0;
			p->state = ST_FRAME_HEADER;
			*used = pos;
			return AMQP_PARSE_FRAME;
		}
	}
	*used = pos;
	return AMQP_PARSE_NEED_MORE;
}

int amqp_method_decode(const uint8_t *p, size_t len, struct amqp_method *m, struct amqp_err *err)
{
	struct amqp_rd r = {p, p + len};
	uint16_t cls, meth;

	if (!amqp_rd_u16(&r, &cls) || !amqp_rd_u16(&r, &meth))
		return amqp_fail(err, AMQP_FRAME_ERROR, "FRAME_ERROR - method frame too short");
	m->id = AMQP_METHOD_ID(cls, meth);
	const struct amqp_method_info *mi = amqp_method_info(m->id);
	if (!mi)
		return amqp_fail(err, AMQP_COMMAND_INVALID, "COMMAND_INVALID - unknown method");
	int rc = mi->decode(&r, m, err);
	if (rc < 0)
		return rc;
	if (amqp_rd_left(&r) != 0)
		return amqp_fail(err, AMQP_FRAME_ERROR,
		                 "FRAME_ERROR - trailing bytes after method arguments");
	return 0;
}

bool amqp_method_encode(struct amqp_wr *w, const struct amqp_method *m)
{
	const struct amqp_method_info *mi = amqp_method_info(m->id);
	if (!mi) {
		w->bad = true;
		return false;
	}
	amqp_wr_u32(w, m->id);
	mi->encode(w, m);
	return !w->bad;
}

void amqp_frame_begin(struct amqp_wr *w, uint8_t type, uint16_t channel)
{
	amqp_wr_u8(w, type);
	amqp_wr_u16(w, channel);
	amqp_wr_u32(w, 0); /* size, patched by amqp_frame_end */
}

size_t amqp_frame_end(struct amqp_wr *w, size_t start)
{
	size_t size = w->len - start - FRAME_HEADER_LEN;
	if (size > UINT32_MAX)
		w->bad = true;
	amqp_wr_patch_u32(w, start + 3, (uint32_t)size);
	amqp_wr_u8(w, AMQP_FRAME_END);
	return w->bad ? 0 : w->len - start;
}

size_t amqp_frame_method(uint8_t *buf, size_t cap, uint16_t channel, const struct amqp_method *m)
{
	struct amqp_wr w;
	amqp_wr_init(&w, buf, cap);
	amqp_frame_begin(&w, AMQP_FRAME_METHOD, channel);
	amqp_method_encode(&w, m);
	return amqp_frame_end(&w, 0);
}

size_t amqp_frame_header(uint8_t *buf, size_t cap, uint16_t channel, uint16_t class_id,
                         uint64_t body_size, const struct amqp_basic_props *props)
{
	struct amqp_wr w;
	amqp_wr_init(&w, buf, cap);
	amqp_frame_begin(&w, AMQP_FRAME_HEADER, channel);
	amqp_content_header_encode(&w, class_id, body_size, props);
	return amqp_frame_end(&w, 0);
}

size_t amqp_frame_header_raw(uint8_t *buf, size_t cap, uint16_t channel, uint16_t class_id,
                             uint64_t body_size, struct amqp_bytes raw_props)
{
	struct amqp_wr w;
	amqp_wr_init(&w, buf, cap);
	amqp_frame_begin(&w, AMQP_FRAME_HEADER, channel);
	amqp_content_header_encode_raw(&w, class_id, body_size, raw_props);
	return amqp_frame_end(&w, 0);
}

size_t amqp_frame_body(uint8_t *buf, size_t cap, uint16_t channel, struct amqp_bytes body)
{
	struct amqp_wr w;
	amqp_wr_init(&w, buf, cap);
	amqp_frame_begin(&w, AMQP_FRAME_BODY, channel);
	amqp_wr_raw(&w, body.ptr, body.len);
	return amqp_frame_end(&w, 0);
}

size_t amqp_frame_heartbeat(uint8_t *buf, size_t cap)
{
	struct amqp_wr w;
	amqp_wr_init(&w, buf, cap);
	amqp_frame_begin(&w, AMQP_FRAME_HEARTBEAT, 0);
	return amqp_frame_end(&w, 0);
}
