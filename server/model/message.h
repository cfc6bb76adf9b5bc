/*
 * message.h - a published message: parsed once, stored once.
 *
 * One allocation holds the header, the exchange name, the routing key, the
 * content-header property bytes exactly as received (re-sent without
 * re-encoding) and the body.  Fan-out to N queues shares the one object
 * through its reference count; no delivery copies the body.
 *
 * Threading: loop thread only (the count is not atomic).  Ownership: every
 * queue entry, unacked delivery and pending output that points at a
 * message holds one reference.
 */
#ifndef MESSAGE_H
#define MESSAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "amqp.h"

struct model;

struct message {
	uint32_t refs;
	uint8_t exchange_len;
	uint8_t rk_len;
	bool persistent; /* delivery_mode 2 */
	uint8_t priority;
	uint32_t props_len;
	int64_t ttl;          /* the expiration property in ms; -1 = none */
	uint32_t headers_off; /* the headers table inside props, if any */
	uint32_t headers_len;
	uint64_t body_len;
	uint64_t body_have; /* while being assembled from body frames */
	struct model *md;   /* for memory accounting */
	char *exchange;     /* NUL-terminated, inside this allocation */
	char *rk;
	uint8_t *props; /* flag words + property list */
	uint8_t *body;
	uint8_t data[];
};

/* Allocate a message for content whose header announced body_len bytes.
 * NULL if out of memory.  The caller holds the one reference. */
struct message *message_new(struct model *md, struct amqp_bytes exchange, struct amqp_bytes rk,
                            struct amqp_bytes raw_props, const struct amqp_basic_props *props,
                            uint64_t body_len);
/* Size accounted for this message (struct + names + props + body). */
size_t message_size(const struct message *m);
static inline struct message *message_ref(struct message *m)
{
	m->refs++;
	return m;
}
void message_unref(struct message *m);
/* Decoded properties (borrowing from the message). */
int message_props(const struct message *m, struct amqp_basic_props *out);

#endif
