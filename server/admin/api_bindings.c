/*
 * api_bindings.c - /api/bindings: list (all, per vhost), between a source
 * and a destination, create (POST; Location names the binding's
 * properties_key), get and delete one.  The default exchange's implicit
 * bindings are listed as RabbitMQ lists them.
 */
#include <event2/http.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/api.h"
#include "io/broker.h"
#include "model/exchange.h"
#include "model/queue.h"
#include "model/vhost.h"
#include "store/definitions.h"

/* RabbitMQ's properties_key: the routing key ("~" when empty), and with
 * arguments a "~" and a hash of them. */
static void props_key(const char *rk, const uint8_t *args, size_t len, char *out, size_t cap)
{
	if (!len) {
		snprintf(out, cap, "%s", rk[0] ? rk : "~");
		return;
	}
	uint64_t h = 1469598103934665603ULL;
	for (size_t i = 0; i < len; i++)
		h = (h ^ args[i]) * 1099511628211ULL;
	snprintf(out, cap, "%s~%016llx", rk, (unsigned long long)h);
}

static json_t *binding_json(const char *vhost, const char *src, const char *dst, bool to_queue,
                            const char *rk, const uint8_t *args, size_t len)
{
	char pk[600];
	props_key(rk, args, len, pk, sizeof(pk));
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:o, s:s}", "source", src, "vhost", vhost,
	                 "destination", dst, "destination_type", to_queue ? "queue" : "exchange",
	                 "routing_key", rk, "arguments", definitions_table_json(args, len),
	                 "properties_key", pk);
}

static const char *dest_name(const struct dest *d)
{
	return d->kind == DEST_QUEUE ? ((const struct queue *)d)->name
	                             : ((const struct exchange *)d)->name;
}

static bool hidden_dest(const struct dest *d)
{
	return d->kind == DEST_QUEUE && api_hidden_queue((const struct queue *)d);
}

static void add_exchange_bindings(json_t *arr, struct vhost *vh, struct exchange *x)
{
	struct binding *oldest = x->bindings;
	while (oldest && oldest->src_next)
		oldest = oldest->src_next;
	for (struct binding *b = oldest; b; b = b->src_prev) {
		if (hidden_dest(b->dest))
			continue;
		json_array_append_new(arr, binding_json(vh->name, x->name, dest_name(b->dest),
		                                        b->dest->kind == DEST_QUEUE, b->key,
		                                        b->args, b->args_len));
	}
}

static void default_binding(json_t *arr, struct vhost *vh, const struct queue *q)
{
	json_array_append_new(arr, binding_json(vh->name, "", q->name, true, q->name, NULL, 0));
}

void api_bindings_from(json_t *arr, struct vhost *vh, const char *exchange)
{
	if (!exchange[0]) {
		void *w;
		for (size_t j = 0; hmap_next(&vh->queues, &j, &w);)
			if (!api_hidden_queue(w))
				default_binding(arr, vh, w);
		return;
	}
	struct exchange *x = vhost_exchange(vh, exchange, strlen(exchange));
	if (x)
		add_exchange_bindings(arr, vh, x);
}

void api_bindings_to(json_t *arr, struct vhost *vh, struct dest *d, bool is_queue)
{
	if (is_queue)
		default_binding(arr, vh, (struct queue *)d);
	struct binding *in =
	    is_queue ? ((struct queue *)d)->incoming : ((struct exchange *)d)->incoming;
	for (struct binding *b = in; b; b = b->dst_next)
		json_array_append_new(arr, binding_json(vh->name, b->src->name, dest_name(d),
		                                        is_queue, b->key, b->args, b->args_len));
}

static void vhost_bindings(json_t *arr, struct vhost *vh)
{
	api_bindings_from(arr, vh, "");
	void *w;
	for (size_t j = 0; hmap_next(&vh->exchanges, &j, &w);)
		add_exchange_bindings(arr, vh, w);
}

void api_bindings_list(struct areq *r)
{
	json_t *arr = json_array();
	if (r->nseg == 3) {
		struct vhost *vh = areq_vhost(r, 2);
		if (!vh) {
			json_decref(arr);
			return;
		}
		vhost_bindings(arr, vh);
	} else {
		void *v;
		for (size_t i = 0; hmap_next(&r->a->b->model.vhosts, &i, &v);)
			if (areq_vhost_visible(r, v))
				vhost_bindings(arr, v);
	}
	areq_reply_json(r, 200, arr);
}

/* Path: api/bindings/{vhost}/e/{source}/{q|e}/{dest}[/{props}] */
struct ends {
	struct vhost *vh;
	struct exchange *src;
	struct dest *dst;
	bool to_queue;
};

static bool find_ends(struct areq *r, struct ends *e)
{
	e->vh = areq_vhost(r, 2);
	if (!e->vh)
		return false;
	if (strcmp(r->seg[3], "e") != 0 ||
	    (strcmp(r->seg[5], "q") != 0 && strcmp(r->seg[5], "e") != 0)) {
		areq_not_found(r);
		return false;
	}
	const char *s = r->seg[4], *d = r->seg[6];
	e->to_queue = r->seg[5][0] == 'q';
	e->src = strcmp(s, "amq.default") == 0 || !*s ? e->vh->default_exchange
	                                              : vhost_exchange(e->vh, s, strlen(s));
	if (e->to_queue) {
		struct queue *q = vhost_queue(e->vh, d, strlen(d));
		e->dst = q && !api_hidden_queue(q) ? &q->d : NULL;
	} else {
		struct exchange *x = vhost_exchange(e->vh, d, strlen(d));
		e->dst = x ? &x->d : NULL;
	}
	if (!e->src || !e->dst) {
		areq_not_found(r);
		return false;
	}
	return true;
}

static json_t *between(struct areq *r, struct ends *e)
{
	json_t *arr = json_array();
	if (e->src == e->vh->default_exchange) {
		if (e->to_queue)
			default_binding(arr, e->vh, (struct queue *)e->dst);
		return arr;
	}
	(void)r;
	struct binding *oldest = e->src->bindings;
	while (oldest && oldest->src_next)
		oldest = oldest->src_next;
	for (struct binding *b = oldest; b; b = b->src_prev)
		if (b->dest == e->dst)
			json_array_append_new(arr, binding_json(e->vh->name, e->src->name,
			                                        dest_name(e->dst), e->to_queue,
			                                        b->key, b->args, b->args_len));
	return arr;
}

void api_bindings_between(struct areq *r)
{
	struct ends e;
	if (find_ends(r, &e))
		areq_reply_json(r, 200, between(r, &e));
}

/* The binding named by segment 7 (its properties_key), or NULL. */
static json_t *find_one(struct areq *r, struct ends *e)
{
	json_t *arr = between(r, e);
	size_t i;
	json_t *b;
	json_array_foreach(arr, i, b)
	{
		if (strcmp(json_string_value(json_object_get(b, "properties_key")), r->seg[7]) ==
		    0) {
			json_incref(b);
			json_decref(arr);
			return b;
		}
	}
	json_decref(arr);
	return NULL;
}

void api_binding_get(struct areq *r)
{
	struct ends e;
	if (!find_ends(r, &e))
		return;
	json_t *b = find_one(r, &e);
	if (!b)
		areq_not_found(r);
	else
		areq_reply_json(r, 200, b);
}

struct bind_op {
	bool unbind, to_queue;
	char src[256], dst[256], rk[256];
	uint8_t *args;
	size_t args_len;
};

static void bind_step(struct areq *r, const struct aclient_event *ev, void *data)
{
	struct bind_op *o = data;
	if (!ev) {
		struct amqp_method m;
		memset(&m, 0, sizeof(m));
		struct amqp_bytes args = {o->args, o->args_len};
		if (o->to_queue) {
			m.id = o->unbind ? AMQP_QUEUE_UNBIND : AMQP_QUEUE_BIND;
			if (o->unbind) {
				m.u.queue_unbind.queue = amqp_cstr(o->dst);
				m.u.queue_unbind.exchange = amqp_cstr(o->src);
				m.u.queue_unbind.routing_key = amqp_cstr(o->rk);
				m.u.queue_unbind.arguments = args;
			} else {
				m.u.queue_bind.queue = amqp_cstr(o->dst);
				m.u.queue_bind.exchange = amqp_cstr(o->src);
				m.u.queue_bind.routing_key = amqp_cstr(o->rk);
				m.u.queue_bind.arguments = args;
			}
		} else {
			m.id = o->unbind ? AMQP_EXCHANGE_UNBIND : AMQP_EXCHANGE_BIND;
			m.u.exchange_bind.destination = amqp_cstr(o->dst);
			m.u.exchange_bind.source = amqp_cstr(o->src);
			m.u.exchange_bind.routing_key = amqp_cstr(o->rk);
			m.u.exchange_bind.arguments = args;
		}
		aclient_method(r->ac, 1, &m);
		return;
	}
	switch (ev->m.id) {
	case AMQP_QUEUE_BIND_OK:
	case AMQP_EXCHANGE_BIND_OK: {
		char pk[600], loc[1024];
		props_key(o->rk, o->args, o->args_len, pk, sizeof(pk));
		char *enc = evhttp_uriencode(pk, -1, 0);
		snprintf(loc, sizeof(loc), "%s", enc ? enc : pk);
		free(enc);
		free(o->args);
		o->args = NULL;
		areq_set_header(r, "Location", loc);
		areq_created(r);
		break;
	}
	case AMQP_QUEUE_UNBIND_OK:
	case AMQP_EXCHANGE_UNBIND_OK:
		free(o->args);
		o->args = NULL;
		areq_no_content(r);
		break;
	}
}

static void bind_free(void *arg)
{
	free(((struct bind_op *)arg)->args);
}

void api_binding_create(struct areq *r)
{
	struct ends e;
	if (!find_ends(r, &e))
		return;
	json_t *body = areq_body(r);
	if (!body)
		return;
	if (e.src == e.vh->default_exchange) {
		areq_error(r, 401, "not_authorised", "Access refused.");
		return;
	}
	const char *rk = json_string_value(json_object_get(body, "routing_key"));
	struct bind_op *o = calloc(1, sizeof(*o));
	if (!o) {
		areq_error(r, 500, "internal_error", "out of memory");
		return;
	}
	o->to_queue = e.to_queue;
	snprintf(o->src, sizeof(o->src), "%s", e.src->name);
	snprintf(o->dst, sizeof(o->dst), "%s", dest_name(e.dst));
	snprintf(o->rk, sizeof(o->rk), "%s", rk ? rk : "");
	if (api_args(r, body, &o->args, &o->args_len) < 0) {
		free(o);
		return;
	}
	api_on_free(r, bind_free, o);
	aop_start(r, e.vh->name, bind_step, o);
}

static struct binding *find_binding(struct ends *e, const char *pk)
{
	if (e->src == e->vh->default_exchange)
		return NULL;
	for (struct binding *b = e->src->bindings; b; b = b->src_next) {
		char k[600];
		props_key(b->key, b->args, b->args_len, k, sizeof(k));
		if (b->dest == e->dst && strcmp(k, pk) == 0)
			return b;
	}
	return NULL;
}

void api_binding_delete(struct areq *r)
{
	struct ends e;
	if (!find_ends(r, &e))
		return;
	struct binding *b = find_binding(&e, r->seg[7]);
	if (!b) {
		areq_not_found(r);
		return;
	}
	struct bind_op *o = calloc(1, sizeof(*o));
	if (!o || (b->args_len && !(o->args = malloc(b->args_len)))) {
		free(o);
		areq_error(r, 500, "internal_error", "out of memory");
		return;
	}
	o->unbind = true;
	o->to_queue = e.to_queue;
	snprintf(o->src, sizeof(o->src), "%s", e.src->name);
	snprintf(o->dst, sizeof(o->dst), "%s", dest_name(e.dst));
	snprintf(o->rk, sizeof(o->rk), "%s", b->key);
	if (b->args_len)
		memcpy(o->args, b->args, b->args_len);
	o->args_len = b->args_len;
	api_on_free(r, bind_free, o);
	aop_start(r, e.vh->name, bind_step, o);
}
