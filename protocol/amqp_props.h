/*
 * amqp_props.h - the content header frame and basic's 14 properties.
 *
 * A decoded header keeps the property bytes exactly as received
 * (`raw_props`: flag words + property list) so the broker can store and
 * re-send them without re-encoding; the decoded view borrows from them.
 * Pure, allocation-free and thread-safe.
 */
#ifndef AMQP_PROPS_H
#define AMQP_PROPS_H

#include <stdbool.h>
#include <stdint.h>

#include "amqp_err.h"
#include "amqp_table.h"
#include "amqp_wire.h"

/* Property flag bits of class basic, first flag word (bit 15 first). */
#define AMQP_PROP_CONTENT_TYPE     (1u << 15)
#define AMQP_PROP_CONTENT_ENCODING (1u << 14)
#define AMQP_PROP_HEADERS          (1u << 13)
#define AMQP_PROP_DELIVERY_MODE    (1u << 12)
#define AMQP_PROP_PRIORITY         (1u << 11)
#define AMQP_PROP_CORRELATION_ID   (1u << 10)
#define AMQP_PROP_REPLY_TO         (1u << 9)
#define AMQP_PROP_EXPIRATION       (1u << 8)
#define AMQP_PROP_MESSAGE_ID       (1u << 7)
#define AMQP_PROP_TIMESTAMP        (1u << 6)
#define AMQP_PROP_TYPE             (1u << 5)
#define AMQP_PROP_USER_ID          (1u << 4)
#define AMQP_PROP_APP_ID           (1u << 3)
#define AMQP_PROP_CLUSTER_ID       (1u << 2)
#define AMQP_PROP_ALL              0xFFFCu
/* Bit 0 of every flag word: another flag word follows. */
#define AMQP_PROP_CONTINUATION 1u

/* Basic properties; a field is meaningful only when its flag is set. */
struct amqp_basic_props {
	uint16_t flags;
	struct amqp_bytes content_type;
	struct amqp_bytes content_encoding;
	struct amqp_bytes headers;              /* raw table contents (decoded) */
	const struct amqp_table *headers_built; /* encode: takes precedence */
	uint8_t delivery_mode;
	uint8_t priority;
	struct amqp_bytes correlation_id;
	struct amqp_bytes reply_to;
	struct amqp_bytes expiration;
	struct amqp_bytes message_id;
	uint64_t timestamp;
	struct amqp_bytes type;
	struct amqp_bytes user_id;
	struct amqp_bytes app_id;
	struct amqp_bytes cluster_id;
};

/* A content header frame's payload. */
struct amqp_content_header {
	uint16_t class_id;
	uint16_t weight; /* always 0 in 0-9-1 */
	uint64_t body_size;
	struct amqp_bytes raw_props; /* flag words + property list, as received */
};

/*
 * Decode a content header payload: class id, weight, body size and the
 * bounds of the property bytes; the properties themselves are validated
 * too (so a header that decodes is safe to store and re-send).
 * 0, or -AMQP_FRAME_ERROR (truncated, trailing bytes) / -AMQP_SYNTAX_ERROR
 * (unknown property flag, bad headers table, non-zero weight).
 */
int amqp_content_header_decode(const uint8_t *p, size_t len, struct amqp_content_header *h,
                               struct amqp_err *err);

/* The same, also returning the decoded basic properties (class 60; for
 * other classes props is zeroed) so a caller need not decode them again. */
int amqp_content_header_decode_props(const uint8_t *p, size_t len, struct amqp_content_header *h,
                                     struct amqp_basic_props *props, struct amqp_err *err);

/* Decode validated property bytes (for class basic) into a borrowed view. */
int amqp_basic_props_decode(struct amqp_bytes raw_props, struct amqp_basic_props *props,
                            struct amqp_err *err);

/* Encode basic properties (flag word + list), as they appear in a header. */
void amqp_basic_props_encode(struct amqp_wr *w, const struct amqp_basic_props *props);

/* Encode a whole content header payload from structured properties... */
void amqp_content_header_encode(struct amqp_wr *w, uint16_t class_id, uint64_t body_size,
                                const struct amqp_basic_props *props);
/* ...or from property bytes kept as received (the hot path). */
void amqp_content_header_encode_raw(struct amqp_wr *w, uint16_t class_id, uint64_t body_size,
                                    struct amqp_bytes raw_props);

#endif
