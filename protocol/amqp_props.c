/*
 * amqp_props.c - content header and basic property codec.
 */
#include "amqp_props.h"

#include "amqp_gen.h"

#define TRUNC "FRAME_ERROR - content header truncated"

int amqp_basic_props_decode(struct amqp_bytes raw, struct amqp_basic_props *p, struct amqp_err *err)
{
	struct amqp_rd r = {raw.ptr, raw.ptr + raw.len};
	uint16_t flags, more;
	bool ok = true;

	memset(p, 0, sizeof(*p));
	if (!amqp_rd_u16(&r, &flags))
		return amqp_fail(err, AMQP_FRAME_ERROR, TRUNC);
	/* Continuation rule: bit 0 set means another flag word follows.  basic
	 * has 14 properties, so any property bit in a later word, or bit 1 of
	 * the first, names a property that does not exist. */
	if (flags & 2u)
		return amqp_fail(err, AMQP_SYNTAX_ERROR,
		                 "SYNTAX_ERROR - unknown content property flag");
	more = flags;
	while (more & AMQP_PROP_CONTINUATION) {
		if (!amqp_rd_u16(&r, &more))
			return amqp_fail(err, AMQP_FRAME_ERROR, TRUNC);
		if (more & ~AMQP_PROP_CONTINUATION)
			return amqp_fail(err, AMQP_SYNTAX_ERROR,
			                 "SYNTAX_ERROR - unknown content property flag");
	}
	p->flags = flags & AMQP_PROP_ALL;

	if (flags & AMQP_PROP_CONTENT_TYPE)
		ok = ok && amqp_rd_shortstr(&r, &p->content_type);
	if (flags & AMQP_PROP_CONTENT_ENCODING)
		ok = ok && amqp_rd_shortstr(&r, &p->content_encoding);
	if (flags & AMQP_PROP_HEADERS) {
		ok = ok && amqp_rd_longstr(&r, &p->headers);
		if (ok) {
			int rc = amqp_table_validate(p->headers, err);
			if (rc < 0)
				return rc;
		}
	}
	if (flags & AMQP_PROP_DELIVERY_MODE)
		ok = ok && amqp_rd_u8(&r, &p->delivery_mode);
	if (flags & AMQP_PROP_PRIORITY)
		ok = ok && amqp_rd_u8(&r, &p->priority);
	if (flags & AMQP_PROP_CORRELATION_ID)
		ok = ok && amqp_rd_shortstr(&r, &p->correlation_id);
	if (flags & AMQP_PROP_REPLY_TO)
		ok = ok && amqp_rd_shortstr(&r, &p->reply_to);
	if (flags & AMQP_PROP_EXPIRATION)
		ok = ok && amqp_rd_shortstr(&r, &p->expiration);
	if (flags & AMQP_PROP_MESSAGE_ID)
		ok = ok && amqp_rd_shortstr(&r, &p->message_id);
	if (flags & AMQP_PROP_TIMESTAMP)
		ok = ok && amqp_rd_u64(&r, &p->timestamp);
	if (flags & AMQP_PROP_TYPE)
		ok = ok && amqp_rd_shortstr(&r, &p->type);
	if (flags & AMQP_PROP_USER_ID)
		ok = ok && amqp_rd_shortstr(&r, &p->user_id);
	if (flags & AMQP_PROP_APP_ID)
		ok = ok && amqp_rd_shortstr(&r, &p->app_id);
	if (flags & AMQP_PROP_CLUSTER_ID)
		ok = ok && amqp_rd_shortstr(&r, &p->cluster_id);
	if (!ok)
		return amqp_fail(err, AMQP_FRAME_ERROR, TRUNC);
	if (amqp_rd_left(&r) != 0)
		return amqp_fail(err, AMQP_FRAME_ERROR,
		                 "FRAME_ERROR - trailing bytes after content properties");
	return 0;
}

int amqp_content_header_decode(const uint8_t *p, size_t len, struct amqp_content_header *h,
                               struct amqp_err *err)
{
	struct amqp_basic_props props;
	return amqp_content_header_decode_props(p, len, h, &props, err);
}

int amqp_content_header_decode_props(const uint8_t *p, size_t len, struct amqp_content_header *h,
                                     struct amqp_basic_props *props, struct amqp_err *err)
{
	struct amqp_rd r = {p, p + len};

	if (!amqp_rd_u16(&r, &h->class_id) || !amqp_rd_u16(&r, &h->weight) ||
	    !amqp_rd_u64(&r, &h->body_size))
		return amqp_fail(err, AMQP_FRAME_ERROR, TRUNC);
	if (h->weight != 0)
		return amqp_fail(err, AMQP_SYNTAX_ERROR,
		                 "SYNTAX_ERROR - content header weight must be 0");
	h->raw_props.ptr = r.p;
	h->raw_props.len = amqp_rd_left(&r);
	if (h->class_id == AMQP_CLASS_BASIC)
		return amqp_basic_props_decode(h->raw_props, props, err);
	memset(props, 0, sizeof(*props));
	/* Other classes define no properties: only an all-zero flag word. */
	uint16_t flags;
	if (!amqp_rd_u16(&r, &flags))
		return amqp_fail(err, AMQP_FRAME_ERROR, TRUNC);
	if (flags != 0)
		return amqp_fail(err, AMQP_SYNTAX_ERROR,
		                 "SYNTAX_ERROR - properties on a class that has none");
	if (amqp_rd_left(&r) != 0)
		return amqp_fail(err, AMQP_FRAME_ERROR,
		                 "FRAME_ERROR - trailing bytes after content properties");
	return 0;
}

void amqp_basic_props_encode(struct amqp_wr *w, const struct amqp_basic_props *p)
{
	uint16_t f = p->flags & AMQP_PROP_ALL;

	amqp_wr_u16(w, f);
	if (f & AMQP_PROP_CONTENT_TYPE)
		amqp_wr_shortstr(w, p->content_type);
	if (f & AMQP_PROP_CONTENT_ENCODING)
		amqp_wr_shortstr(w, p->content_encoding);
	if (f & AMQP_PROP_HEADERS) {
		if (p->headers_built)
			amqp_table_encode(w, p->headers_built);
		else
			amqp_wr_longstr(w, p->headers);
	}
	if (f & AMQP_PROP_DELIVERY_MODE)
		amqp_wr_u8(w, p->delivery_mode);
	if (f & AMQP_PROP_PRIORITY)
		amqp_wr_u8(w, p->priority);
	if (f & AMQP_PROP_CORRELATION_ID)
		amqp_wr_shortstr(w, p->correlation_id);
	if (f & AMQP_PROP_REPLY_TO)
		amqp_wr_shortstr(w, p->reply_to);
	if (f & AMQP_PROP_EXPIRATION)
		amqp_wr_shortstr(w, p->expiration);
	if (f & AMQP_PROP_MESSAGE_ID)
		amqp_wr_shortstr(w, p->message_id);
	if (f & AMQP_PROP_TIMESTAMP)
		amqp_wr_u64(w, p->timestamp);
	if (f & AMQP_PROP_TYPE)
		amqp_wr_shortstr(w, p->type);
	if (f & AMQP_PROP_USER_ID)
		amqp_wr_shortstr(w, p->user_id);
	if (f & AMQP_PROP_APP_ID)
		amqp_wr_shortstr(w, p->app_id);
	if (f & AMQP_PROP_CLUSTER_ID)
		amqp_wr_shortstr(w, p->cluster_id);
}

void amqp_content_header_encode(struct amqp_wr *w, uint16_t class_id, uint64_t body_size,
                                const struct amqp_basic_props *props)
{
	amqp_wr_u16(w, class_id);
	amqp_wr_u16(w, 0);
	amqp_wr_u64(w, body_size);
	amqp_basic_props_encode(w, props);
}

void amqp_content_header_encode_raw(struct amqp_wr *w, uint16_t class_id, uint64_t body_size,
                                    struct amqp_bytes raw_props)
{
	amqp_wr_u16(w, class_id);
	amqp_wr_u16(w, 0);
	amqp_wr_u64(w, body_size);
	amqp_wr_raw(w, raw_props.ptr, raw_props.len);
}
