/*
 * amqpd/exchange.h - the exchange-type plugin interface (ABI version 2).
 *
 * An exchange type is a vtable registered from a plugin's init with
 * host->register_exchange_type().  For every exchange of that type the host
 * calls create() once and keeps the returned state; the host owns the
 * authoritative list of bindings (for listing, deleting and recovery) and
 * tells the type about each through bind()/unbind(), so the type keeps
 * whatever index makes route() fast (a hash, a trie, ...).
 *
 * Every callback gets the plugin's userdata (what init returned) first.
 *
 * Destinations are opaque `const amqpd_dest *` handles (a queue or an
 * exchange); compare them by pointer.  The host never calls bind() twice
 * for the same (destination, key, arguments) and only calls unbind() for a
 * binding it bound.  route() reports each matching destination through
 * emit(); the host removes duplicates, so a type need not.
 *
 * Declining: several plugins may register the same type name.  When an
 * exchange of that name is declared, the host asks them in load order:
 * validate() then create() of the first; if either returns AMQPD_DECLINED
 * the next one is asked, and the first that creates the exchange serves
 * it for its lifetime.  When every one declines, the declare fails with
 * 406 PRECONDITION_FAILED ("no plugin of exchange type 'x' accepts these
 * arguments").
 *
 * Errors: validate and validate_binding return AMQPD_OK or an error (for
 * clients, normally AMQPD_ERR_PRECONDITION_FAILED) and write a
 * RabbitMQ-style reason into err (e.g. "Invalid x-match field value");
 * the host prefixes the code name.  A system error from create or bind
 * (e.g. AMQPD_ERR_ERRNO(ENOMEM)) fails the declare or bind with 541.
 *
 * Ownership: the state belongs to the plugin (define struct
 * amqpd_exchange_state in your source); bindings and messages are borrowed.
 * Threading: all callbacks run on the event-loop thread; route() is the
 * hot path and should not allocate.
 */
#ifndef AMQPD_EXCHANGE_H
#define AMQPD_EXCHANGE_H

#include "amqpd/plugin.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A destination (queue or exchange), owned by the host. */
typedef struct amqpd_dest amqpd_dest;
/* One exchange's state, owned by the plugin that created it. */
typedef struct amqpd_exchange_state amqpd_exchange_state;

/* One binding, borrowed for the duration of the call; copy what you keep. */
struct amqpd_binding {
	uint32_t struct_size;
	const amqpd_dest *dest;
	const char *key; /* binding (routing) key; NUL-terminated, <= 255 bytes */
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

typedef void (*amqpd_route_emit_fn)(void *emit_ctx, const amqpd_dest *dest);

struct amqpd_exchange_type {
	uint32_t struct_size;
	const char *name; /* the type name clients declare, e.g. "topic" */

	/* Optional: check exchange.declare arguments.  AMQPD_OK, an error, or
	 * AMQPD_DECLINED (ask the next type of this name). */
	amqpd_status (*validate)(void *userdata, struct amqpd_table_view args, char *err,
	                         size_t errlen);
	/* Create per-exchange state (*state may stay NULL).  AMQPD_OK, an
	 * error, or AMQPD_DECLINED (nothing created; ask the next). */
	amqpd_status (*create)(void *userdata, amqpd_exchange_state **state,
	                       struct amqpd_table_view args);
	void (*destroy)(void *userdata, amqpd_exchange_state *state);
	/* Optional: check a binding before it is added.  AMQPD_OK or an error. */
	amqpd_status (*validate_binding)(void *userdata, amqpd_exchange_state *state,
	                                 const struct amqpd_binding *b, char *err, size_t errlen);
	/* Add / remove a binding from the type's index.  bind: AMQPD_OK, or an
	 * error (the host then refuses the binding). */
	amqpd_status (*bind)(void *userdata, amqpd_exchange_state *state,
	                     const struct amqpd_binding *b);
	void (*unbind)(void *userdata, amqpd_exchange_state *state, const struct amqpd_binding *b);
	/* Report every destination the message goes to.  AMQPD_OK; on an
	 * error the host logs it and delivers to what was emitted. */
	amqpd_status (*route)(void *userdata, amqpd_exchange_state *state,
	                      const struct amqpd_route_msg *msg, amqpd_route_emit_fn emit,
	                      void *emit_ctx);
};

#ifdef __cplusplus
}
#endif

#endif
