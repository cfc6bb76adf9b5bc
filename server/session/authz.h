/*
 * authz.h - the permission checks of channel operations, where RabbitMQ
 * makes them: configure on declare and delete, write on the exchange for
 * basic.publish, write on the destination and read on the source for
 * bindings, read on the queue for consume, get and purge; topic
 * permissions on topic exchanges (write for publish, read for bindings).
 *
 * Each check returns true when allowed.  False: either refused (the
 * channel is closed with 403 ACCESS_REFUSED and RabbitMQ's text) or the
 * answer is pending (the engine holds the frame and handles it again when
 * the answer is in, see conn_priv.h); either way the caller returns.
 * Answers are cached per channel (a few entries, most recent first) and
 * dropped when permissions change (model perm_epoch, plugin auth_epoch).
 *
 * Ownership: the cache is the channel's (authz_free).  Loop thread.
 */
#ifndef AUTHZ_H
#define AUTHZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "amqp.h"
#include "amqpd/auth.h"

struct channel;
struct exchange;

#define AUTHZ_CACHE 8

struct authz_entry {
	char *key; /* kind, perm, name [, routing key] */
	size_t len;
	bool allowed;
};

struct authz_cache {
	uint64_t epoch;
	struct authz_entry e[AUTHZ_CACHE];
	unsigned n;
	/* The last allowed resource check, compared before anything else:
	 * basic.publish asks the same one for every message. */
	uint64_t hot_epoch;
	bool hot_valid;
	uint8_t hot_kind, hot_perm, hot_len;
	char hot_name[255];
};

bool authz_resource(struct channel *ch, enum amqpd_auth_resource kind, struct amqp_bytes name,
                    enum amqpd_auth_permission perm, uint32_t method_id);
/* Topic permission on x when it is a topic exchange (true otherwise). */
bool authz_topic(struct channel *ch, const struct exchange *x, struct amqp_bytes key,
                 enum amqpd_auth_permission perm, uint32_t method_id);
void authz_free(struct channel *ch);

#endif
