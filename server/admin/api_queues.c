/*
 * api_queues.c - /api/queues: list (all, per vhost), get, declare (PUT),
 * delete, purge (DELETE .../contents), get messages (POST .../get), and
 * a queue's bindings; RabbitMQ's fields and codes.  Writes go through
 * the request's engine (aop.c), so they behave exactly as over AMQP.
 */
#include <event2/http.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/api.h"
#include "admin/rates.h"
#include "io/broker.h"
#include "model/exchange.h"
#include "model/queue.h"
#include "model/vhost.h"
#include "store/definitions.h"

/* Broker-owned queues (delayed messages, deduplication caches) are not
 * the user's: the API does not list them (delayed messages have their
 * own path under the exchange). */
bool api_hidden_queue(const struct queue *q)
{
	return q->holding || q->dedup_store;
}

static const char *queue_type(const struct queue *q)
{
	return q->conf.quorum ? "quorum" : "classic";
}

json_t *api_queue_json(struct areq *r, void *item)
{
	(void)r;
	struct queue *q = item;
	uint64_t ready = q->count, unacked = q->unacked;
	json_t *o = json_object();
	json_object_set_new(o, "name", json_stringn(q->name, q->name_len));
	json_object_set_new(o, "vhost", json_string(q->vh->name));
	json_object_set_new(o, "durable", json_boolean(q->durable));
	json_object_set_new(o, "auto_delete", json_boolean(q->auto_delete));
	json_object_set_new(o, "exclusive", json_boolean(q->exclusive));
	json_object_set_new(o, "arguments", definitions_table_json(q->args, q->args_len));
	json_object_set_new(o, "type", json_string(queue_type(q)));
	json_object_set_new(o, "node", json_string(r->a->node));
	json_object_set_new(o, "state", json_string("running"));
	json_object_set_new(o, "consumers", json_integer((json_int_t)q->nconsumers));
	json_object_set_new(o, "messages", json_integer((json_int_t)(ready + unacked)));
	json_object_set_new(o, "messages_ready", json_integer((json_int_t)ready));
	json_object_set_new(o, "messages_unacknowledged", json_integer((json_int_t)unacked));
	json_object_set_new(o, "message_bytes_ready", json_integer((json_int_t)q->ready_bytes));
	json_object_set_new(o, "message_bytes", json_integer((json_int_t)q->ready_bytes));
	json_object_set_new(o, "exclusive_consumer_tag", json_null());
	api_policy_fields(o, q->vh, q->name, true);
	json_object_set_new(o, "message_stats", rates_message_stats(&q->stats, false));
	return o;
}

static const char *queue_name(void *item)
{
	return ((struct queue *)item)->name;
}

static const char *queue_vhost(void *item)
{
	return ((struct queue *)item)->vh->name;
}

static void queue_release(void *item)
{
	queue_unref(item);
}

static const struct alist_type queue_list = {api_queue_json, queue_name, queue_vhost,
                                             queue_release,  true,       false};

static void collect(struct areq *r, struct vhost *vh, void ***items, size_t *n, size_t *cap)
{
	void *w;
	for (size_t j = 0; hmap_next(&vh->queues, &j, &w);) {
		struct queue *q = w;
		if (q->deleted || api_hidden_queue(q))
			continue;
		if (*n == *cap) {
			size_t nc = *cap ? *cap * 2 : 64;
			void **ni = realloc(*items, nc * sizeof(*ni));
			if (!ni)
				return;
			*items = ni;
			*cap = nc;
		}
		q->refs++;
		(*items)[(*n)++] = q;
	}
	(void)r;
}

void api_queues_list(struct areq *r)
{
	void **items = NULL;
	size_t n = 0, cap = 0;
	if (r->nseg == 3) {
		struct vhost *vh = areq_vhost(r, 2);
		if (!vh)
			return;
		collect(r, vh, &items, &n, &cap);
	} else {
		void *v;
		for (size_t i = 0; hmap_next(&r->a->b->model.vhosts, &i, &v);)
			if (areq_vhost_visible(r, v))
				collect(r, v, &items, &n, &cap);
	}
	alist_reply(r, &queue_list, items, n);
}

/* The queue of segments 2 (vhost) and 3 (name), or NULL after a 404. */
static struct queue *find_queue(struct areq *r)
{
	struct vhost *vh = areq_vhost(r, 2);
	if (!vh)
		return NULL;
	struct queue *q = vhost_queue(vh, r->seg[3], strlen(r->seg[3]));
	if (!q || q->deleted || api_hidden_queue(q)) {
		areq_not_found(r);
		return NULL;
	}
	return q;
}

void api_queue_get(struct areq *r)
{
	struct queue *q = find_queue(r);
	if (!q)
		return;
	json_t *o = api_queue_json(r, q);
	const char *cols = areq_param(r, "columns");
	if (cols && *cols) {
		json_t *c = alist_columns(o, cols);
		json_decref(o);
		o = c;
	}
	areq_reply_json(r, 200, o);
}

/* ---- declare ---- */

struct declare_op {
	bool existed;
	char name[256];
	bool durable, auto_delete, exclusive;
	uint8_t *args;
	size_t args_len;
};

static void declare_step(struct areq *r, const struct aclient_event *ev, void *data)
{
	struct declare_op *d = data;
	if (!ev) {
		struct amqp_method m = {.id = AMQP_QUEUE_DECLARE};
		struct amqp_queue_declare *qd = &m.u.queue_declare;
		qd->queue = amqp_cstr(d->name);
		qd->durable = d->durable;
		qd->auto_delete = d->auto_delete;
		qd->exclusive = false;
		qd->arguments = (struct amqp_bytes){d->args, d->args_len};
		aclient_method(r->ac, 1, &m);
		return;
	}
	if (ev->m.id == AMQP_QUEUE_DECLARE_OK) {
		free(d->args);
		d->args = NULL;
		if (d->existed)
			areq_no_content(r);
		else
			areq_created(r);
	}
}

/* Booleans as RabbitMQ's API takes them: true/false or "true"/"false". */
bool api_bool(json_t *o, const char *key, bool dflt, bool *out)
{
	json_t *v = json_object_get(o, key);
	if (!v || json_is_null(v)) {
		*out = dflt;
		return true;
	}
	if (json_is_boolean(v)) {
		*out = json_is_true(v);
		return true;
	}
	if (json_is_string(v)) {
		const char *s = json_string_value(v);
		if (strcmp(s, "true") == 0 || strcmp(s, "false") == 0) {
			*out = s[0] == 't';
			return true;
		}
	}
	return false;
}

int api_args(struct areq *r, json_t *body, uint8_t **args, size_t *len)
{
	json_t *a = json_object_get(body, "arguments");
	if (definitions_json_table(a, args, len) < 0) {
		areq_bad_request(r, "arguments must be an object");
		return -1;
	}
	return 0;
}

void api_queue_put(struct areq *r)
{
	struct vhost *vh = areq_vhost(r, 2);
	json_t *body = vh ? areq_body(r) : NULL;
	if (!body)
		return;
	if (!json_is_object(body)) {
		areq_bad_request(r, "not_json");
		return;
	}
	struct declare_op *d = calloc(1, sizeof(*d));
	if (!d) {
		areq_error(r, 500, "internal_error", "out of memory");
		return;
	}
	if (strlen(r->seg[3]) > 255) {
		free(d);
		areq_bad_request(r, "queue name too long");
		return;
	}
	snprintf(d->name, sizeof(d->name), "%s", r->seg[3]);
	if (!api_bool(body, "durable", true, &d->durable) ||
	    !api_bool(body, "auto_delete", false, &d->auto_delete)) {
		free(d);
		areq_bad_request(r, "durable and auto_delete must be booleans");
		return;
	}
	if (api_args(r, body, &d->args, &d->args_len) < 0) {
		free(d);
		return;
	}
	d->existed = vhost_queue(vh, d->name, strlen(d->name)) != NULL;
	aop_start(r, vh->name, declare_step, d);
}

/* ---- delete and purge ---- */

static void delete_step(struct areq *r, const struct aclient_event *ev, void *data)
{
	bool *flags = data; /* [if_empty, if_unused, purge] */
	if (!ev) {
		struct amqp_method m;
		memset(&m, 0, sizeof(m));
		if (flags[2]) {
			m.id = AMQP_QUEUE_PURGE;
			m.u.queue_purge.queue = amqp_cstr(r->seg[3]);
		} else {
			m.id = AMQP_QUEUE_DELETE;
			m.u.queue_delete.queue = amqp_cstr(r->seg[3]);
			m.u.queue_delete.if_empty = flags[0];
			m.u.queue_delete.if_unused = flags[1];
		}
		aclient_method(r->ac, 1, &m);
		return;
	}
	if (ev->m.id == AMQP_QUEUE_DELETE_OK || ev->m.id == AMQP_QUEUE_PURGE_OK)
		areq_no_content(r);
}

static void start_delete(struct areq *r, bool purge)
{
	struct queue *q = find_queue(r);
	if (!q)
		return;
	bool *flags = calloc(3, sizeof(bool));
	if (!flags) {
		areq_error(r, 500, "internal_error", "out of memory");
		return;
	}
	const char *e = areq_param(r, "if-empty"), *u = areq_param(r, "if-unused");
	flags[0] = e && strcmp(e, "true") == 0;
	flags[1] = u && strcmp(u, "true") == 0;
	flags[2] = purge;
	aop_start(r, q->vh->name, delete_step, flags);
}

void api_queue_delete(struct areq *r)
{
	start_delete(r, false);
}

void api_queue_purge(struct areq *r)
{
	start_delete(r, true);
}

/* ---- get messages ---- */

struct get_op {
	long count, got;
	bool ack, requeue;
	bool base64_always;
	long truncate;
	uint64_t last_tag;
	json_t *out;
};

static json_t *payload_json(struct amqp_bytes body, bool force_b64, long truncate, const char **enc)
{
	size_t n = body.len;
	if (truncate >= 0 && (size_t)truncate < n)
		n = (size_t)truncate;
	bool text = !force_b64;
	for (size_t i = 0; text && i < n; i++)
		if (body.ptr[i] == 0)
			text = false;
	if (text) {
		json_t *s = json_stringn((const char *)body.ptr, n);
		if (s) {
			*enc = "string";
			return s;
		}
	}
	char *b = malloc(4 * ((n + 2) / 3) + 1);
	if (!b)
		return json_string("");
	int m = EVP_EncodeBlock((unsigned char *)b, body.ptr, (int)n);
	json_t *s = json_stringn(b, (size_t)(m > 0 ? m : 0));
	free(b);
	*enc = "base64";
	return s;
}

static void get_finish(struct areq *r, struct get_op *g)
{
	if (g->last_tag) {
		struct amqp_method m;
		memset(&m, 0, sizeof(m));
		if (g->ack) {
			m.id = AMQP_BASIC_ACK;
			m.u.basic_ack.delivery_tag = g->last_tag;
			m.u.basic_ack.multiple = true;
		} else {
			m.id = AMQP_BASIC_NACK;
			m.u.basic_nack.delivery_tag = g->last_tag;
			m.u.basic_nack.multiple = true;
			m.u.basic_nack.requeue = g->requeue;
		}
		aclient_method(r->ac, 1, &m);
	}
	json_t *out = g->out;
	g->out = NULL;
	areq_reply_json(r, 200, out);
}

static void get_step(struct areq *r, const struct aclient_event *ev, void *data)
{
	struct get_op *g = data;
	if (ev && ev->m.id == AMQP_BASIC_GET_OK) {
		const struct amqp_basic_get_ok *ok = &ev->m.u.basic_get_ok;
		g->last_tag = ok->delivery_tag;
		json_t *o = json_object();
		json_object_set_new(o, "payload_bytes", json_integer((json_int_t)ev->body.len));
		json_object_set_new(o, "redelivered", json_boolean(ok->redelivered));
		json_object_set_new(o, "exchange",
		                    json_stringn((const char *)ok->exchange.ptr, ok->exchange.len));
		json_object_set_new(
		    o, "routing_key",
		    json_stringn((const char *)ok->routing_key.ptr, ok->routing_key.len));
		json_object_set_new(o, "message_count", json_integer(ok->message_count));
		json_object_set_new(o, "properties", api_props_json(ev->props));
		const char *enc = "string";
		json_t *p = payload_json(ev->body, g->base64_always, g->truncate, &enc);
		json_object_set_new(o, "payload", p);
		json_object_set_new(o, "payload_encoding", json_string(enc));
		json_array_append_new(g->out, o);
		g->got++;
	} else if (ev && ev->m.id == AMQP_BASIC_GET_EMPTY) {
		get_finish(r, g);
		return;
	} else if (ev) {
		return;
	}
	if (g->got >= g->count) {
		get_finish(r, g);
		return;
	}
	struct amqp_method m = {.id = AMQP_BASIC_GET};
	m.u.basic_get.queue = amqp_cstr(r->seg[3]);
	m.u.basic_get.no_ack = false;
	aclient_method(r->ac, 1, &m);
}

static void get_free_out(struct get_op *g)
{
	json_decref(g->out);
}

void api_queue_get_messages(struct areq *r)
{
	struct queue *q = find_queue(r);
	json_t *body = q ? areq_body(r) : NULL;
	if (!body)
		return;
	json_t *count = json_object_get(body, "count");
	const char *ackmode = json_string_value(json_object_get(body, "ackmode"));
	const char *enc = json_string_value(json_object_get(body, "encoding"));
	if (!ackmode) /* RabbitMQ < 3.7 said requeue: true|false */
		ackmode = json_is_false(json_object_get(body, "requeue")) ? "ack_requeue_false"
		                                                          : "ack_requeue_true";
	long n = json_is_integer(count)  ? (long)json_integer_value(count)
	         : json_is_string(count) ? strtol(json_string_value(count), NULL, 10)
	                                 : 1;
	struct get_op *g = calloc(1, sizeof(*g));
	if (!g) {
		areq_error(r, 500, "internal_error", "out of memory");
		return;
	}
	g->count = n < 1 ? 1 : n;
	g->truncate = -1;
	json_t *t = json_object_get(body, "truncate");
	if (json_is_integer(t))
		g->truncate = (long)json_integer_value(t);
	else if (json_is_string(t))
		g->truncate = strtol(json_string_value(t), NULL, 10);
	if (strcmp(ackmode, "ack_requeue_true") == 0) {
		g->requeue = true;
	} else if (strcmp(ackmode, "ack_requeue_false") == 0) {
		g->ack = true;
	} else if (strcmp(ackmode, "reject_requeue_true") == 0) {
		g->requeue = true;
	} else if (strcmp(ackmode, "reject_requeue_false") == 0) {
		g->requeue = false;
	} else {
		free(g);
		areq_bad_request(r, "ackmode must be ack_requeue_true, ack_requeue_false, "
		                    "reject_requeue_true or reject_requeue_false");
		return;
	}
	if (enc && strcmp(enc, "base64") == 0)
		g->base64_always = true;
	else if (enc && strcmp(enc, "auto") != 0) {
		free(g);
		areq_bad_request(r, "encoding must be auto or base64");
		return;
	}
	g->out = json_array();
	api_on_free(r, (void (*)(void *))get_free_out, g);
	aop_start(r, q->vh->name, get_step, g);
}

/* ---- a queue's bindings ---- */

void api_queue_bindings(struct areq *r)
{
	struct queue *q = find_queue(r);
	if (!q)
		return;
	json_t *arr = json_array();
	api_bindings_to(arr, q->vh, &q->d, true);
	areq_reply_json(r, 200, arr);
}
