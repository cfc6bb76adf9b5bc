/*
 * api_exchanges.c - /api/exchanges: list, get, declare (PUT), delete,
 * publish, bindings as source and destination, and amqpd's delayed
 * messages of an x-delayed-message exchange (list, cancel by message id).
 */
#include <event2/http.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/api.h"
#include "admin/rates.h"
#include "io/broker.h"
#include "model/delayed.h"
#include "model/exchange.h"
#include "model/key_index.h"
#include "model/message.h"
#include "model/qring.h"
#include "model/queue.h"
#include "model/vhost.h"
#include "store/definitions.h"

static bool predeclared_default(const char *name)
{
	return strcmp(name, "amq.default") == 0 || name[0] == 0;
}

static json_t *exchange_json(struct areq *r, void *item)
{
	(void)r;
	struct exchange *x = item;
	json_t *o = json_object();
	json_object_set_new(o, "name", json_stringn(x->name, x->name_len));
	json_object_set_new(o, "vhost", json_string(x->vh->name));
	json_object_set_new(o, "type",
	                    json_string(x->delayed ? "x-delayed-message" : exchange_type_name(x)));
	json_object_set_new(o, "durable", json_boolean(x->durable));
	json_object_set_new(o, "auto_delete", json_boolean(x->auto_delete));
	json_object_set_new(o, "internal", json_boolean(x->internal));
	json_object_set_new(o, "arguments", definitions_table_json(x->args, x->args_len));
	json_object_set_new(o, "user_who_performed_action", json_string("rmq-internal"));
	api_policy_fields(o, x->vh, x->name, false);
	json_object_set_new(o, "message_stats", rates_message_stats(&x->stats, true));
	return o;
}

static const char *x_name(void *item)
{
	return ((struct exchange *)item)->name;
}

static const char *x_vhost(void *item)
{
	return ((struct exchange *)item)->vh->name;
}

static void x_release(void *item)
{
	exchange_unref(item);
}

static const struct alist_type exchange_list = {exchange_json, x_name, x_vhost,
                                                x_release,     true,   false};

static void push(void ***items, size_t *n, size_t *cap, struct exchange *x)
{
	if (*n == *cap) {
		size_t nc = *cap ? *cap * 2 : 64;
		void **ni = realloc(*items, nc * sizeof(*ni));
		if (!ni)
			return;
		*items = ni;
		*cap = nc;
	}
	(*items)[(*n)++] = exchange_ref(x);
}

static void collect(struct vhost *vh, void ***items, size_t *n, size_t *cap)
{
	if (vh->default_exchange)
		push(items, n, cap, vh->default_exchange);
	void *w;
	for (size_t j = 0; hmap_next(&vh->exchanges, &j, &w);)
		if (!((struct exchange *)w)->deleted)
			push(items, n, cap, w);
}

void api_exchanges_list(struct areq *r)
{
	void **items = NULL;
	size_t n = 0, cap = 0;
	if (r->nseg == 3) {
		struct vhost *vh = areq_vhost(r, 2);
		if (!vh)
			return;
		collect(vh, &items, &n, &cap);
	} else {
		void *v;
		for (size_t i = 0; hmap_next(&r->a->b->model.vhosts, &i, &v);)
			if (areq_vhost_visible(r, v))
				collect(v, &items, &n, &cap);
	}
	alist_reply(r, &exchange_list, items, n);
}

static struct exchange *find_exchange(struct areq *r)
{
	struct vhost *vh = areq_vhost(r, 2);
	if (!vh)
		return NULL;
	const char *name = r->seg[3];
	struct exchange *x = predeclared_default(name) ? vh->default_exchange
	                                               : vhost_exchange(vh, name, strlen(name));
	if (!x || x->deleted) {
		areq_not_found(r);
		return NULL;
	}
	return x;
}

void api_exchange_get(struct areq *r)
{
	struct exchange *x = find_exchange(r);
	if (x)
		areq_reply_json(r, 200, exchange_json(r, x));
}

/* ---- declare, delete ---- */

struct xdeclare_op {
	bool existed, durable, auto_delete, internal, delete_if_unused, is_delete;
	char name[256], type[256];
	uint8_t *args;
	size_t args_len;
};

static void xstep(struct areq *r, const struct aclient_event *ev, void *data)
{
	struct xdeclare_op *d = data;
	if (!ev) {
		struct amqp_method m;
		memset(&m, 0, sizeof(m));
		if (d->is_delete) {
			m.id = AMQP_EXCHANGE_DELETE;
			m.u.exchange_delete.exchange = amqp_cstr(d->name);
			m.u.exchange_delete.if_unused = d->delete_if_unused;
		} else {
			m.id = AMQP_EXCHANGE_DECLARE;
			struct amqp_exchange_declare *xd = &m.u.exchange_declare;
			xd->exchange = amqp_cstr(d->name);
			xd->type = amqp_cstr(d->type);
			xd->durable = d->durable;
			xd->auto_delete = d->auto_delete;
			xd->internal = d->internal;
			xd->arguments = (struct amqp_bytes){d->args, d->args_len};
		}
		aclient_method(r->ac, 1, &m);
		return;
	}
	if (ev->m.id == AMQP_EXCHANGE_DECLARE_OK || ev->m.id == AMQP_EXCHANGE_DELETE_OK) {
		free(d->args);
		d->args = NULL;
		if (d->existed || d->is_delete)
			areq_no_content(r);
		else
			areq_created(r);
	}
}

void api_exchange_put(struct areq *r)
{
	struct vhost *vh = areq_vhost(r, 2);
	json_t *body = vh ? areq_body(r) : NULL;
	if (!body)
		return;
	const char *type = json_string_value(json_object_get(body, "type"));
	if (!json_is_object(body) || !type) {
		areq_bad_request(r, "[{<<\"type\">>,<<\"is required\">>}]");
		return;
	}
	if (predeclared_default(r->seg[3]) || strlen(r->seg[3]) > 255 || strlen(type) > 255) {
		areq_error(r, 401, "not_authorised", "Access refused.");
		return;
	}
	struct xdeclare_op *d = calloc(1, sizeof(*d));
	if (!d) {
		areq_error(r, 500, "internal_error", "out of memory");
		return;
	}
	snprintf(d->name, sizeof(d->name), "%s", r->seg[3]);
	snprintf(d->type, sizeof(d->type), "%s", type);
	if (!api_bool(body, "durable", true, &d->durable) ||
	    !api_bool(body, "auto_delete", false, &d->auto_delete) ||
	    !api_bool(body, "internal", false, &d->internal)) {
		free(d);
		areq_bad_request(r, "durable, auto_delete and internal must be booleans");
		return;
	}
	if (api_args(r, body, &d->args, &d->args_len) < 0) {
		free(d);
		return;
	}
	d->existed = vhost_exchange(vh, d->name, strlen(d->name)) != NULL;
	aop_start(r, vh->name, xstep, d);
}

void api_exchange_delete(struct areq *r)
{
	struct exchange *x = find_exchange(r);
	if (!x)
		return;
	if (predeclared_default(r->seg[3])) {
		areq_error(r, 401, "not_authorised", "Access refused.");
		return;
	}
	struct xdeclare_op *d = calloc(1, sizeof(*d));
	if (!d) {
		areq_error(r, 500, "internal_error", "out of memory");
		return;
	}
	d->is_delete = true;
	snprintf(d->name, sizeof(d->name), "%s", r->seg[3]);
	const char *u = areq_param(r, "if-unused");
	d->delete_if_unused = u && strcmp(u, "true") == 0;
	aop_start(r, x->vh->name, xstep, d);
}

/* ---- publish ---- */

struct pub_op {
	json_t *body; /* borrowed from the request */
	bool returned;
	uint8_t *payload, *headers, *cancel_headers;
	size_t payload_len;
	char exchange[256];
	const char *rk;
	bool cancel; /* a delayed-message cancel (x-delay-cancel) */
	char cancel_id[256];
};

static void pub_free(void *arg)
{
	struct pub_op *p = arg;
	free(p->payload);
	free(p->headers);
	free(p->cancel_headers);
}

static void pub_step(struct areq *r, const struct aclient_event *ev, void *data)
{
	struct pub_op *p = data;
	if (!ev) {
		struct amqp_method cs = {.id = AMQP_CONFIRM_SELECT};
		aclient_method(r->ac, 1, &cs);
		return;
	}
	if (ev->m.id == AMQP_CONFIRM_SELECT_OK) {
		struct amqp_basic_props props;
		char err[256];
		if (p->cancel) {
			/* {"x-delay-cancel": true} and the message id: delayed.h */
			static const uint8_t hdr[] = "\x0ex-delay-cancelt\x01";
			p->cancel_headers = malloc(sizeof(hdr) - 1);
			if (!p->cancel_headers) {
				areq_error(r, 500, "internal_error", "out of memory");
				return;
			}
			memcpy(p->cancel_headers, hdr, sizeof(hdr) - 1);
			memset(&props, 0, sizeof(props));
			props.flags = AMQP_PROP_HEADERS | AMQP_PROP_MESSAGE_ID;
			props.headers = (struct amqp_bytes){p->cancel_headers, sizeof(hdr) - 1};
			props.message_id = amqp_cstr(p->cancel_id);
		} else if (api_props_from_json(json_object_get(p->body, "properties"), &props,
		                               &p->headers, err, sizeof(err)) < 0) {
			areq_bad_request(r, err);
			return;
		}
		struct amqp_basic_publish bp = {0};
		bp.exchange = amqp_cstr(p->exchange);
		bp.routing_key = amqp_cstr(p->rk);
		bp.mandatory = !p->cancel;
		aclient_publish(r->ac, 1, &bp, &props,
		                (struct amqp_bytes){p->payload, p->payload_len});
		return;
	}
	if (ev->m.id == AMQP_BASIC_RETURN) {
		p->returned = true;
		return;
	}
	if (ev->m.id == AMQP_BASIC_ACK) {
		if (p->cancel)
			areq_no_content(r);
		else
			areq_reply_json(r, 200, json_pack("{s:b}", "routed", !p->returned));
	} else if (ev->m.id == AMQP_BASIC_NACK) {
		areq_error(r, 500, "internal_error", "the message was refused (basic.nack)");
	}
}

static int b64_decode(const char *in, uint8_t **out, size_t *len)
{
	size_t n = strlen(in);
	*out = malloc(n / 4 * 3 + 3);
	if (!*out || n % 4)
		return -1;
	int m = EVP_DecodeBlock(*out, (const unsigned char *)in, (int)n);
	if (m < 0)
		return -1;
	while (n > 0 && in[n - 1] == '=' && m > 0) {
		n--;
		m--;
	}
	*len = (size_t)m;
	return 0;
}

void api_exchange_publish(struct areq *r)
{
	struct exchange *x = find_exchange(r);
	json_t *body = x ? areq_body(r) : NULL;
	if (!body)
		return;
	const char *rk = json_string_value(json_object_get(body, "routing_key"));
	const char *payload = json_string_value(json_object_get(body, "payload"));
	const char *enc = json_string_value(json_object_get(body, "payload_encoding"));
	if (!rk || !payload || !enc) {
		areq_bad_request(r, "[{<<\"routing_key\">>,<<\"is required\">>},{<<\"payload\">>,"
		                    "<<\"is required\">>},{<<\"payload_encoding\">>,<<\"is "
		                    "required\">>}]");
		return;
	}
	struct pub_op *p = calloc(1, sizeof(*p));
	if (!p) {
		areq_error(r, 500, "internal_error", "out of memory");
		return;
	}
	p->body = body;
	p->rk = rk;
	snprintf(p->exchange, sizeof(p->exchange), "%s", x->name);
	if (strcmp(enc, "string") == 0) {
		p->payload_len = strlen(payload);
		p->payload = malloc(p->payload_len + 1);
		if (p->payload)
			memcpy(p->payload, payload, p->payload_len);
	} else if (strcmp(enc, "base64") == 0) {
		if (b64_decode(payload, &p->payload, &p->payload_len) < 0) {
			pub_free(p);
			free(p);
			areq_bad_request(r, "payload is not valid base64");
			return;
		}
	} else {
		free(p);
		areq_bad_request(r, "payload_encoding must be string or base64");
		return;
	}
	api_on_free(r, pub_free, p);
	aop_start(r, x->vh->name, pub_step, p);
}

/* ---- bindings of an exchange ---- */

void api_exchange_bindings_source(struct areq *r)
{
	struct exchange *x = find_exchange(r);
	if (!x)
		return;
	json_t *arr = json_array();
	api_bindings_from(arr, x->vh, x->name);
	areq_reply_json(r, 200, arr);
}

void api_exchange_bindings_destination(struct areq *r)
{
	struct exchange *x = find_exchange(r);
	if (!x)
		return;
	json_t *arr = json_array();
	api_bindings_to(arr, x->vh, &x->d, false);
	areq_reply_json(r, 200, arr);
}

/* ---- delayed messages (amqpd's) ---- */

static struct queue *holding_of(struct areq *r, struct exchange **px)
{
	struct exchange *x = find_exchange(r);
	if (!x)
		return NULL;
	struct queue *q = x->delayed ? delayed_holding(x) : NULL;
	if (!q) {
		areq_not_found(r);
		return NULL;
	}
	*px = x;
	return q;
}

static json_t *delayed_item(const struct qentry *e, struct amqp_bytes id, int64_t now)
{
	json_t *o = json_object();
	json_object_set_new(o, "message_id",
	                    id.len ? json_stringn((const char *)id.ptr, id.len) : json_null());
	if (e->msg) {
		json_object_set_new(o, "routing_key", json_stringn(e->msg->rk, e->msg->rk_len));
		json_object_set_new(o, "payload_bytes", json_integer((json_int_t)e->msg->body_len));
	} else {
		json_object_set_new(o, "payload_bytes", json_integer((json_int_t)e->len));
	}
	json_object_set_new(o, "due", json_integer((json_int_t)e->expires));
	int64_t left = (int64_t)e->expires - now;
	json_object_set_new(o, "delay", json_integer(left > 0 ? left : 0));
	json_object_set_new(o, "paged_out", json_boolean(e->msg == NULL));
	return o;
}

void api_exchange_delayed(struct areq *r)
{
	struct exchange *x;
	struct queue *q = holding_of(r, &x);
	if (!q)
		return;
	/* seq -> message id, for entries whose message is on disk only. */
	struct hmap ids;
	hmap_init(&ids);
	struct amqp_bytes key;
	const uint64_t *seqs;
	size_t ns;
	for (size_t i = 0; key_index_next(q, &i, &key, &seqs, &ns);)
		for (size_t k = 0; k < ns; k++) {
			struct amqp_bytes *kb = malloc(sizeof(*kb));
			if (!kb)
				break;
			*kb = key;
			if (hmap_put(&ids, (const char *)&seqs[k], sizeof(uint64_t), kb) < 0)
				free(kb);
		}
	long limit = 1000;
	const char *ls = areq_param(r, "limit");
	if (ls)
		limit = strtol(ls, NULL, 10);
	if (limit < 1)
		limit = 1;
	json_t *items = json_array();
	int64_t now = admin_wall_ms();
	size_t total = 0;
	for (size_t l = 0; l < q->nlevels; l++) {
		const struct qring *ring = &q->levels[l];
		for (size_t k = 0; k < ring->n; k++) {
			const struct qentry *e = &ring->e[(ring->head + k) % ring->cap];
			if (e->dead)
				continue;
			total++;
			if ((long)json_array_size(items) >= limit)
				continue;
			struct amqp_bytes id = {0};
			if (e->msg)
				id = delayed_message_id(e->msg);
			else {
				struct amqp_bytes *kb = hmap_get(&ids, &e->seq, sizeof(uint64_t));
				if (kb)
					id = *kb;
			}
			json_array_append_new(items, delayed_item(e, id, now));
		}
	}
	void *v;
	for (size_t i = 0; hmap_next(&ids, &i, &v);)
		free(v);
	hmap_free(&ids);
	areq_reply_json(r, 200,
	                json_pack("{s:s, s:s, s:I, s:o}", "exchange", x->name, "vhost", x->vh->name,
	                          "count", (json_int_t)total, "items", items));
}

void api_exchange_delayed_cancel(struct areq *r)
{
	struct exchange *x;
	struct queue *q = holding_of(r, &x);
	if (!q)
		return;
	const char *id = r->seg[5];
	uint64_t seq;
	if (!*id || strlen(id) > 255 || key_index_seqs(q, amqp_cstr(id), &seq, 1) == 0) {
		areq_not_found(r);
		return;
	}
	struct pub_op *p = calloc(1, sizeof(*p));
	if (!p) {
		areq_error(r, 500, "internal_error", "out of memory");
		return;
	}
	api_on_free(r, pub_free, p);
	p->cancel = true;
	p->rk = "";
	snprintf(p->cancel_id, sizeof(p->cancel_id), "%s", id);
	snprintf(p->exchange, sizeof(p->exchange), "%s", x->name);
	aop_start(r, x->vh->name, pub_step, p);
}
