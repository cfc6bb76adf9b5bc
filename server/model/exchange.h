/*
 * exchange.h - exchanges, bindings and routing.
 *
 * An exchange delegates matching to its exchange type (a plugin, see
 * plugin_host.h), except the default exchange, which is a hash lookup of
 * the queue named by the routing key.  The host keeps the authoritative
 * binding lists: outgoing ones on the source exchange and incoming ones on
 * the destination (queue or exchange), so deleting either end removes the
 * binding everywhere.
 *
 * Ownership: the vhost owns exchanges; a binding is owned by its source
 * exchange and linked into its destination's incoming list.  Loop thread.
 */
#ifndef EXCHANGE_H
#define EXCHANGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "amqp.h"
#include "model/dest.h"
#include "model/queue_args.h"
#include "model/stats.h"

struct vhost;
struct xtype;
struct queue;
struct message;

struct binding {
	struct exchange *src;
	struct dest *dest;
	char *key; /* NUL-terminated */
	size_t key_len;
	uint8_t *args; /* raw table contents */
	size_t args_len;
	struct binding *src_next, *src_prev; /* in src->bindings */
	struct binding *dst_next, *dst_prev; /* in the destination's incoming list */
};

struct exchange {
	struct dest d; /* kind == DEST_EXCHANGE; must be first */
	char *name;
	size_t name_len;
	struct vhost *vh;
	const struct xtype *type;           /* NULL for the default exchange */
	struct amqpd_exchange_state *state; /* the type's per-exchange state */
	bool durable, auto_delete, internal;
	/* x-delayed-message (delayed.h): type is the x-delayed-type one. */
	bool delayed;
	struct dedup_conf dedup; /* x-message-deduplication (dedup.h) */
	uint8_t *args;
	size_t args_len;
	struct binding *bindings; /* outgoing */
	size_t nbindings;
	struct binding *incoming; /* exchange-to-exchange bindings into this one */
	/* The vhost's map holds one reference, a channel assembling a publish
	 * to it another; a deleted exchange stays readable until the last. */
	unsigned refs;
	bool deleted;
	struct msg_stats stats; /* publish_in, publish_out (stats.h) */
};

/* Where routing collects its queues and the routing keys it used
 * (reused between publishes). */
struct route_out {
	struct queue **qs;
	size_t n, cap;
	/* The routing keys of the CC and BCC headers, then the message's own
	 * (borrowed from the message); none when it has no CC or BCC. */
	struct amqp_bytes *keys;
	size_t nkeys, keys_cap;
	bool has_bcc; /* BCC present: deliver a copy without it */
	/* A CC or BCC header that is not an array: its name and type. */
	const char *bad_header;
	uint8_t bad_type;
};

/* Create and register an exchange in vh.  On failure returns NULL and
 * writes a reply code and text (e.g. 406 from the type's validate). */
struct exchange *exchange_new(struct vhost *vh, struct amqp_bytes name, const struct xtype *type,
                              bool durable, bool auto_delete, bool internal, struct amqp_bytes args,
                              uint16_t *code, char *text, size_t textlen);
/* Unregister, remove every binding from and to it, and drop the vhost's
 * reference (freed with the last one). */
void exchange_delete(struct exchange *x);
static inline struct exchange *exchange_ref(struct exchange *x)
{
	x->refs++;
	return x;
}
void exchange_unref(struct exchange *x);

/* Add a binding.  0 if added or already there; else a reply code with a
 * text (406 when the type refuses the arguments, 541 out of memory). */
int binding_add(struct exchange *src, struct dest *dest, struct amqp_bytes key,
                struct amqp_bytes args, char *text, size_t textlen);
/* Remove a binding; false if there was none.  An auto-delete source
 * exchange that loses its last binding is deleted. */
bool binding_remove(struct exchange *src, struct dest *dest, struct amqp_bytes key,
                    struct amqp_bytes args);
/* Remove every binding whose destination is `dest` (it is going away). */
void bindings_remove_dest(struct binding **incoming);

/* Route a message; appends each destination queue once to out (out->n
 * reset first).  Follows exchange-to-exchange bindings, safe on cycles.
 * Sender-selected distribution as RabbitMQ: the longstr elements of the
 * CC and BCC array headers are routing keys besides the message's own
 * (other elements are skipped).  false, routing nothing, when CC or BCC
 * is not an array (out->bad_header, out->bad_type say which). */
bool exchange_route(struct exchange *x, const struct message *msg, struct route_out *out);
void route_out_free(struct route_out *out);

/* "direct", "topic", ... or "" for the default exchange. */
const char *exchange_type_name(const struct exchange *x);

#endif
