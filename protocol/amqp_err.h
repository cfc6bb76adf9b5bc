/*
 * amqp_err.h - how the codec reports a protocol error.
 *
 * Every decoder returns 0 on success or -<reply code> on failure (e.g.
 * -501 for FRAME_ERROR) and, when given a struct amqp_err, fills it with the
 * code and a static, human-readable text.  Texts are string literals: the
 * codec never allocates to report an error.  Thread-safe, no state.
 */
#ifndef AMQP_ERR_H
#define AMQP_ERR_H

#include <stdint.h>

struct amqp_err {
	uint16_t code;    /* AMQP reply code (501, 502, 503, 505, ...) */
	const char *text; /* static text, RabbitMQ style: "FRAME_ERROR - ..." */
};

static inline int amqp_fail(struct amqp_err *e, uint16_t code, const char *text)
{
	if (e) {
		e->code = code;
		e->text = text;
	}
	return -(int)code;
}

#endif
