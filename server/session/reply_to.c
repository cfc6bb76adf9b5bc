/*
 * reply_to.c - see reply_to.h.
 */
#include "session/reply_to.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "session/session.h"
#include "util/names.h"
#include "session/channel.h"
#include "session/conn.h"
#include "model/message.h"
#include "model/queue.h"

bool reply_to_is_queue(struct amqp_bytes name)
{
	return amqp_bytes_eq_cstr(name, REPLY_TO_QUEUE);
}

void reply_to_consume(struct channel *ch, const struct amqp_basic_consume *a)
{
	struct conn *c = ch->c;
	if (!a->no_ack) {
		channel_error(ch, AMQP_PRECONDITION_FAILED, AMQP_BASIC_CONSUME,
		              "PRECONDITION_FAILED - reply consumer cannot acknowledge");
		return;
	}
	if (ch->reply_consumer) {
		channel_error(ch, AMQP_PRECONDITION_FAILED, AMQP_BASIC_CONSUME,
		              "PRECONDITION_FAILED - reply consumer already set");
		return;
	}
	char gen[64];
	struct amqp_bytes tag = a->consumer_tag;
	if (tag.len == 0) {
		random_name("amq.ctag-", gen, sizeof(gen));
		tag = amqp_cstr(gen);
	}
	if (hmap_get(&ch->consumers, tag.ptr, tag.len)) {
		conn_error(c, AMQP_NOT_ALLOWED, AMQP_BASIC_CONSUME,
		           "NOT_ALLOWED - attempt to reuse consumer tag '%.*s'", (int)tag.len,
		           (const char *)tag.ptr);
		return;
	}
	struct consumer *k = calloc(1, sizeof(*k));
	char *t = malloc(tag.len + 1);
	if (!k || !t) {
		free(k);
		free(t);
		conn_error(c, AMQP_INTERNAL_ERROR, AMQP_BASIC_CONSUME,
		           "INTERNAL_ERROR - out of memory");
		return;
	}
	memcpy(t, tag.ptr, tag.len);
	t[tag.len] = 0;
	k->tag = t;
	k->tag_len = tag.len;
	k->ch = ch;
	k->ops = &channel_consumer_ops;
	k->no_ack = true;
	/* The token names this channel: connection id, channel, randomness. */
	char rnd[40];
	random_name("", rnd, sizeof(rnd));
	snprintf(ch->reply_token, sizeof(ch->reply_token), "%llu.%u.%s", (unsigned long long)c->id,
	         ch->id, rnd);
	if (hmap_put(&ch->consumers, k->tag, k->tag_len, k) < 0 ||
	    hmap_put(&c->s->reply_tokens, ch->reply_token, strlen(ch->reply_token), ch) < 0) {
		hmap_del(&ch->consumers, k->tag, k->tag_len);
		free(k->tag);
		free(k);
		ch->reply_token[0] = 0;
		conn_error(c, AMQP_INTERNAL_ERROR, AMQP_BASIC_CONSUME,
		           "INTERNAL_ERROR - out of memory");
		return;
	}
	k->ack_timeout = -1;
	ch->reply_consumer = k;
	if (!a->nowait) {
		struct amqp_method ok = {.id = AMQP_BASIC_CONSUME_OK};
		ok.u.basic_consume_ok.consumer_tag = tag;
		conn_send_method(c, ch->id, &ok);
	}
}

void reply_to_forget(struct channel *ch)
{
	if (ch->reply_token[0])
		hmap_del(&ch->c->s->reply_tokens, ch->reply_token, strlen(ch->reply_token));
	ch->reply_token[0] = 0;
	ch->reply_consumer = NULL;
}

long reply_to_rewrite(struct channel *ch, const struct amqp_basic_props *props, uint8_t *out,
                      size_t outlen)
{
	if (!(props->flags & AMQP_PROP_REPLY_TO) ||
	    !amqp_bytes_eq_cstr(props->reply_to, REPLY_TO_QUEUE))
		return 0;
	struct amqp_basic_props p = *props;
	if (!ch->reply_consumer) {
		channel_error(ch, AMQP_PRECONDITION_FAILED, AMQP_BASIC_PUBLISH,
		              "PRECONDITION_FAILED - fast reply consumer does not exist");
		return -1;
	}
	char rt[256];
	snprintf(rt, sizeof(rt), "%s%s", REPLY_TO_PREFIX, ch->reply_token);
	p.reply_to = amqp_cstr(rt);
	struct amqp_wr w;
	amqp_wr_init(&w, out, outlen);
	amqp_basic_props_encode(&w, &p);
	if (!amqp_wr_ok(&w)) {
		channel_error(ch, AMQP_INTERNAL_ERROR, AMQP_BASIC_PUBLISH,
		              "INTERNAL_ERROR - properties too large to rewrite reply_to");
		return -1;
	}
	return (long)w.len;
}

bool reply_to_route(struct channel *ch, struct message *m, bool mandatory)
{
	size_t pl = strlen(REPLY_TO_PREFIX);
	if (m->rk_len <= pl || memcmp(m->rk, REPLY_TO_PREFIX, pl) != 0)
		return false;
	struct channel *to = hmap_get(&ch->c->s->reply_tokens, m->rk + pl, m->rk_len - pl);
	if (to && to->reply_consumer && to->state == CH_OPEN) {
		struct qentry e = {.msg = message_ref(m), .len = (uint32_t)m->body_len};
		channel_deliver(to, to->reply_consumer, NULL, &e);
	} else if (mandatory) {
		channel_send_return(ch, m);
	}
	return true;
}
