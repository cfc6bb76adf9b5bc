/*
 * channel.h - one AMQP channel: the exchange, queue, basic, confirm and tx
 * classes, content assembly, deliveries awaiting acknowledgement,
 * prefetch, publisher confirms and transactions.
 *
 * Deliveries: tags are sequential per channel, so unacked deliveries live
 * in a ring indexed by (tag - base tag); settling the oldest pops the ring.
 *
 * Ownership: a connection owns its channels; a channel owns its consumers
 * (also linked into their queues), the unacked deliveries (each holding a
 * message reference and a queue reference) and any content being
 * assembled.  Loop thread only.
 */
#ifndef CHANNEL_H
#define CHANNEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "amqp.h"
#include "model/exchange.h"
#include "model/timer.h"
#include "session/authz.h"
#include "util/hmap.h"
#include "store/storage_host.h"

struct conn;
struct consumer;
struct queue;
struct message;
struct qentry;

enum channel_state { CH_OPEN, CH_CLOSING };
enum content_state { CONTENT_NONE, CONTENT_HEADER, CONTENT_BODY };

struct unacked {
	struct message *msg;
	uint64_t seq;     /* position in its queue, for requeueing in order */
	uint64_t expires; /* its TTL's due time (0 = none): expired if requeued late */
	uint16_t returns; /* times requeued before (quorum delivery count) */
	uint8_t prio;     /* its priority level in the queue */
	struct queue *q;
	struct consumer *c; /* NULL for basic.get or a cancelled consumer */
	bool settled;
	bool sac_held;     /* its single active consumer left: the queue waits for it */
	uint64_t deadline; /* consumer timeout: ms since the epoch; 0 = none */
	uint64_t timeout;  /* the timeout that set it, ms (for the 406 text) */
};

/* A publisher confirm (or tx.commit-ok) that cannot go out yet. */
enum confirm_kind { CW_SYNC, CW_NACK, CW_COMMIT };
struct confirm_wait {
	uint64_t seq; /* publish sequence number (0 for CW_COMMIT) */
	uint64_t gen; /* storage generation that must be synced */
	enum confirm_kind kind;
};

/* A publish or an ack held back by a transaction until commit. */
struct tx_op {
	struct message *msg; /* publish (NULL for an ack-type op) */
	bool mandatory;
	uint32_t method_id; /* basic.ack / nack / reject */
	uint64_t tag;
	bool multiple, requeue;
};

struct channel {
	struct conn *c;
	uint16_t id;
	enum channel_state state;
	bool flow_active; /* channel.flow from the client */

	/* content being assembled: publish method, then header, then body */
	enum content_state content;
	char pub_exchange[256];
	char pub_rk[256];
	uint8_t pub_exchange_len, pub_rk_len;
	bool pub_mandatory;
	struct exchange *pub_x; /* referenced from basic.publish to the body's end */
	struct message *pub_msg;

	/* deliveries awaiting ack */
	struct unacked *ua;
	size_t ua_cap, ua_head, ua_count;
	uint64_t ua_base;          /* tag of ua[ua_head] */
	uint32_t consumer_unacked; /* unsettled deliveries to consumers */

	uint16_t prefetch_global;   /* basic.qos global=true */
	uint16_t prefetch_consumer; /* basic.qos global=false: for new consumers */
	uint16_t prefetch_shared;   /* global=false from a client wanting the spec's
	                             * meaning (conn qos_spec_shared): whole channel */
	struct hmap consumers;      /* tag -> struct consumer */
	uint64_t ctag_seq;

	/* publisher confirms */
	bool confirm;
	uint64_t pub_seq;      /* last publish sequence number assigned */
	uint64_t confirm_sent; /* everything <= this has been confirmed */
	bool confirm_queued;   /* in c->confirm_dirty */
	struct channel *confirm_next;
	struct confirm_wait *cw; /* FIFO, in publish order */
	size_t cw_cap, cw_head, cw_count;
	struct storage_waiter waiter; /* while confirms wait for a sync */

	/* transactions */
	bool tx;
	uint64_t ack_token; /* storage token of the latest persistent ack */
	struct tx_op *tx_ops;
	size_t ntx, tx_cap;

	/* direct reply-to (reply_to.c) */
	struct consumer *reply_consumer;
	char reply_token[96];

	struct authz_cache *authz; /* permission answers (authz.h); made when first asked */
	char gen_name[64];         /* a server-named queue's name, kept for a replay */
	struct msg_stats stats;    /* message_stats of the admin API (model/stats.h) */

	/* Consumer timeout: fires at the earliest deadline of the unacked
	 * (or later; a firing rescans them).  Delivery tags taken back from a
	 * timed-out consumer (notify_consumer), whose late acks are ignored
	 * rather than refused: the newest ones, a bounded list. */
	struct model_timer ack_timer;
	uint64_t *reclaimed;
	size_t nreclaimed;

	char last_queue[256]; /* for the "" queue name shortcut */
	uint8_t last_queue_len;
	struct route_out route;
};

struct channel *channel_new(struct conn *c, uint16_t id);
/* Requeue unacked deliveries, cancel consumers, drop partial content,
 * free.  Called on channel.close(-ok) and when the connection goes. */
void channel_free(struct channel *ch);

/* A method frame for this channel (not channel.open). */
void channel_handle_method(struct channel *ch, const struct amqp_method *m);
/* Content header / body frames. */
void channel_handle_header(struct channel *ch, const uint8_t *payload, size_t len);
void channel_handle_body(struct channel *ch, const uint8_t *payload, size_t len);
/* The connection's amqp_body_dest_fn (arg: the struct conn): a body frame
 * of size bytes arriving split on this channel is gathered straight into
 * the body of the message being assembled, where it fits; NULL where the
 * frame is not expected or too large (channel_handle_body() then reports
 * it as for a frame that arrived whole). */
uint8_t *channel_body_dest(void *conn, uint16_t channel, uint32_t size);

/* Channel exception: send channel.close and ignore the channel's frames
 * until close-ok. */
void channel_error(struct channel *ch, uint16_t code, uint32_t method_id, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* The consumer interface (queue.h) every consumer of a channel carries. */
extern const struct consumer_ops channel_consumer_ops;

/* Can this consumer take a message now? */
bool channel_consumer_ready(struct channel *ch, struct consumer *c);
/* Deliver (takes over the message reference). */
void channel_deliver(struct channel *ch, struct consumer *c, struct queue *q,
                     const struct qentry *e);
/* The consumer's queue was deleted: notify the client, free the consumer. */
void channel_consumer_gone(struct channel *ch, struct consumer *c);
/* Output drained: let this channel's consumers take messages again. */
void channel_resume(struct channel *ch);
/* basic.return 312 NO_ROUTE with the message. */
void channel_send_return(struct channel *ch, struct message *m);
/* A sync covering everything up to `gen` finished with status (0 = ok). */
void channel_sync_done(struct channel *ch, uint64_t gen, int status);
/* Send pending publisher confirms (basic.ack multiple). */
void channel_flush_confirms(struct channel *ch);

/* Internal to channel*.c: the exchange and queue classes (channel_admin.c)
 * and shared helpers. */
void channel_exchange_method(struct channel *ch, const struct amqp_method *m);
void channel_queue_method(struct channel *ch, const struct amqp_method *m);
/* Resolve a queue name ("" = the last one declared on the channel); on
 * failure raises the channel error (404 / 405) and returns NULL. */
struct queue *channel_find_queue(struct channel *ch, struct amqp_bytes name, uint32_t method_id);
/* The name a queue argument means ("" is the channel's last queue). */
struct amqp_bytes channel_queue_name(const struct channel *ch, struct amqp_bytes name);

#endif
