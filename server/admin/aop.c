/*
 * aop.c - an API operation through the request's engine: connection.open
 * of the vhost, channel.open, then the handler's methods; the broker's
 * refusals answered as RabbitMQ's management API answers them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/admin_priv.h"

struct aop {
	aop_fn fn;
	void *data;
	bool channel_open;
};

void aop_free(struct aop *op)
{
	if (!op)
		return;
	free(op->data);
	free(op);
}

const char *aop_reason(struct amqp_bytes text, char *buf, size_t len)
{
	snprintf(buf, len, "%.*s", (int)text.len, (const char *)text.ptr);
	char *dash = strstr(buf, " - ");
	if (dash && dash - buf < 40) {
		bool upper = true;
		for (char *p = buf; p < dash; p++)
			if (!((*p >= 'A' && *p <= 'Z') || *p == '_'))
				upper = false;
		if (upper)
			memmove(buf, dash + 3, strlen(dash + 3) + 1);
	}
	return buf;
}

/* A close by the broker, as the API answers it. */
static void refused(struct areq *r, uint16_t code, struct amqp_bytes text)
{
	char reason[1024];
	aop_reason(text, reason, sizeof(reason));
	switch (code) {
	case AMQP_NOT_FOUND:
		areq_not_found(r);
		break;
	case AMQP_ACCESS_REFUSED:
		areq_error(r, 401, "not_authorised", "Access refused.");
		break;
	case AMQP_NOT_ALLOWED:
		areq_error(r, 401, "not_authorised", "User not authorised to access virtual host");
		break;
	case AMQP_RESOURCE_LOCKED:
	case AMQP_PRECONDITION_FAILED:
	default:
		areq_bad_request(r, reason);
		break;
	}
}

static void op_event(struct aclient *ac, const struct aclient_event *ev, void *arg)
{
	struct areq *r = arg;
	struct aop *op = r->op;
	if (r->replied)
		return;
	if (ev->kind == ACLIENT_GONE) {
		areq_error(r, 500, "internal_error", "the broker closed the connection");
		return;
	}
	switch (ev->m.id) {
	case AMQP_CONNECTION_OPEN_OK: {
		struct amqp_method m = {.id = AMQP_CHANNEL_OPEN};
		aclient_method(ac, 1, &m);
		return;
	}
	case AMQP_CHANNEL_OPEN_OK:
		op->channel_open = true;
		op->fn(r, NULL, op->data);
		return;
	case AMQP_CONNECTION_CLOSE:
		refused(r, ev->m.u.connection_close.reply_code,
		        ev->m.u.connection_close.reply_text);
		return;
	case AMQP_CHANNEL_CLOSE:
		refused(r, ev->m.u.channel_close.reply_code, ev->m.u.channel_close.reply_text);
		return;
	case AMQP_CONNECTION_BLOCKED:
	case AMQP_CONNECTION_UNBLOCKED:
		return;
	default:
		if (op->channel_open)
			op->fn(r, ev, op->data);
	}
}

/* The login event handler hands over to op_event from here on. */
void aop_start(struct areq *r, const char *vhost, aop_fn fn, void *data)
{
	struct aop *op = calloc(1, sizeof(*op));
	if (!op) {
		if (r->cleanup) {
			r->cleanup(r->cleanup_arg);
			r->cleanup = NULL;
		}
		free(data);
		areq_error(r, 500, "internal_error", "out of memory");
		return;
	}
	op->fn = fn;
	op->data = data;
	r->op = op;
	aclient_set_handler(r->ac, op_event, r);
	aclient_open(r->ac, vhost);
}
