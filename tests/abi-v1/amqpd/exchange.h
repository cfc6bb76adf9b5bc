/*
 * amqpd/exchange.h - the exchange-type plugin interface.
 *
 * An exchange type is a vtable registered from a plugin's init with
 * host->register_exchange_type().  For every exchange of that type the host
 * calls create() once and keeps the returned state; the host owns the
 * authoritative list of bindings (for listing, deleting and recovery) and
 * tells the type about each through bind()/unbind(), so the type keeps
 * whatever index makes route() fast (a hash, a trie, ...).
 *
 * Destinations are opaque `const void *` handles (a queue or an exchange);
 * compare them by pointer.  The host never calls bind() twice for the same
 * (destination, key, arguments) and only calls unbind() for a binding it
 * bound.  route() reports each matching destination through emit(); the
 * host removes duplicates, so a type need not.
 *
 * Threading: all callbacks run on the event-loop thread; route() is the hot
 * path and should not allocate.
 */
#ifndef AMQPD_EXCHANGE_H
#define AMQPD_EXCHANGE_H

#include "amqpd/plugin.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One binding, borrowed for the duration of the call; copy what you keep. */
struct amqpd_binding {
	uint32_t struct_size;
	const void *dest; /* opaque destination handle */
	const char *key;  /* binding (routing) key; NUL-terminated, <= 255 bytes */
	size_t key_len;
	struct amqpd_table_view args; /* binding arguments */
};

/* What route() sees of a message. */
struct amqpd_route_msg {
	uint32_t struct_size;
	const char *routing_key; /* NUL-terminated, <= 255 bytes */
	size_t routing_key_len;
	struct amqpd_table_view headers; /* message headers; len 0 if none */
};

typedef void (*amqpd_route_emit_fn)(void *emit_ctx, const void *dest);

/*
 * Errors: validate and validate_binding return 0 or an AMQP reply code
 * (normally 406 PRECONDITION_FAILED) and write a RabbitMQ-style reason into
 * err (e.g. "Invalid x-match field value"); the host prefixes the code name.
 */
struct amqpd_exchange_type {
	uint32_t struct_size;
	const char *name; /* the type name clients declare, e.g. "topic" */

	/* Optional: check exchange.declare arguments. */
	int (*validate)(struct amqpd_table_view args, char *err, size_t errlen);
	/* Create per-exchange state (may set *state to NULL).  0 = ok. */
	int (*create)(void **state, struct amqpd_table_view args);
	void (*destroy)(void *state);
	/* Optional: check a binding before it is added. */
	int (*validate_binding)(void *state, const struct amqpd_binding *b, char *err,
	                        size_t errlen);
	/* Add / remove a binding from the type's index.  bind: 0 = ok,
	 * non-zero = out of memory (the host then refuses the binding). */
	int (*bind)(void *state, const struct amqpd_binding *b);
	void (*unbind)(void *state, const struct amqpd_binding *b);
	/* Report every destination the message goes to. */
	void (*route)(void *state, const struct amqpd_route_msg *msg, amqpd_route_emit_fn emit,
	              void *emit_ctx);
};

#ifdef __cplusplus
}
#endif

#endif
