/*
 * exchange.c - see exchange.h.
 */
#include "model/exchange.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/dedup.h"
#include "model/delayed.h"
#include "model/model.h"
#include "util/log.h"
#include "model/message.h"
#include "model/queue.h"
#include "model/vhost.h"

static uint8_t *dup_bytes(struct amqp_bytes b)
{
	uint8_t *p = malloc(b.len ? b.len : 1);
	if (p && b.len)
		memcpy(p, b.ptr, b.len);
	return p;
}

static char *dup_name(struct amqp_bytes b)
{
	char *p = malloc(b.len + 1);
	if (p) {
		if (b.len)
			memcpy(p, b.ptr, b.len);
		p[b.len] = 0;
	}
	return p;
}

const char *exchange_type_name(const struct exchange *x)
{
	if (x->delayed)
		return DELAYED_TYPE;
	return x->type ? x->type->name : "direct";
}

struct exchange *exchange_new(struct vhost *vh, struct amqp_bytes name, const struct xtype *type,
                              bool durable, bool auto_delete, bool internal, struct amqp_bytes args,
                              uint16_t *code, char *text, size_t textlen)
{
	*code = 0;
	struct exchange *x = calloc(1, sizeof(*x));
	if (!x)
		goto oom;
	x->d.kind = DEST_EXCHANGE;
	x->refs = 1;
	x->vh = vh;
	x->type = type;
	x->durable = durable;
	x->auto_delete = auto_delete;
	x->internal = internal;
	x->name = dup_name(name);
	x->name_len = name.len;
	x->args = dup_bytes(args);
	x->args_len = args.len;
	dedup_conf_from_args(&x->dedup, args);
	if (!x->name || !x->args)
		goto oom;
	if (type) {
		/* validate + create; a type may decline in favour of the next
		 * one registered under its name, which then serves x. */
		char err[256];
		struct amqpd_table_view av = {args.ptr, args.len};
		uint16_t rc = plugin_xtype_create(&x->type, av, &x->state, err, sizeof(err));
		if (rc) {
			*code = rc;
			snprintf(text, textlen, "%s - %s", amqp_reply_code_name(rc), err);
			free(x->name);
			free(x->args);
			free(x);
			return NULL;
		}
	}
	if (durable)
		model_definitions_changed(vh->md);
	if (name.len && hmap_put(&vh->exchanges, x->name, x->name_len, x) < 0) {
		if (type)
			plugin_xtype_destroy(x->type, x->state);
		goto oom;
	}
	return x;
oom:
	if (x) {
		free(x->name);
		free(x->args);
		free(x);
	}
	*code = AMQP_INTERNAL_ERROR;
	snprintf(text, textlen, "INTERNAL_ERROR - out of memory");
	return NULL;
}

static struct binding **incoming_list(struct dest *d)
{
	if (d->kind == DEST_QUEUE)
		return &((struct queue *)d)->incoming;
	return &((struct exchange *)d)->incoming;
}

static void binding_free(struct binding *bd)
{
	free(bd->key);
	free(bd->args);
	free(bd);
}

/* Unlink from both lists, tell the type, free. */
static bool dest_is_durable(const struct dest *d)
{
	if (d->kind == DEST_QUEUE)
		return ((const struct queue *)d)->durable;
	return ((const struct exchange *)d)->durable;
}

static void binding_unlink(struct binding *bd)
{
	struct exchange *src = bd->src;
	if (src->durable && dest_is_durable(bd->dest))
		model_definitions_changed(src->vh->md);
	if (src->type) {
		struct amqpd_binding ab = {sizeof(ab),
		                           (const amqpd_dest *)bd->dest,
		                           bd->key,
		                           bd->key_len,
		                           {bd->args, bd->args_len}};
		plugin_xtype_unbind(src->type, src->state, &ab);
	}
	if (bd->src_prev)
		bd->src_prev->src_next = bd->src_next;
	else
		src->bindings = bd->src_next;
	if (bd->src_next)
		bd->src_next->src_prev = bd->src_prev;
	struct binding **in = incoming_list(bd->dest);
	if (bd->dst_prev)
		bd->dst_prev->dst_next = bd->dst_next;
	else
		*in = bd->dst_next;
	if (bd->dst_next)
		bd->dst_next->dst_prev = bd->dst_prev;
	src->nbindings--;
	binding_free(bd);
}

static struct binding *binding_find(struct exchange *src, struct dest *dest, struct amqp_bytes key,
                                    struct amqp_bytes args)
{
	for (struct binding *bd = src->bindings; bd; bd = bd->src_next) {
		if (bd->dest == dest && bd->key_len == key.len &&
		    memcmp(bd->key, key.ptr, key.len) == 0 && bd->args_len == args.len &&
		    (args.len == 0 || memcmp(bd->args, args.ptr, args.len) == 0))
			return bd;
	}
	return NULL;
}

int binding_add(struct exchange *src, struct dest *dest, struct amqp_bytes key,
                struct amqp_bytes args, char *text, size_t textlen)
{
	if (binding_find(src, dest, key, args))
		return 0;
	struct binding *bd = calloc(1, sizeof(*bd));
	if (!bd)
		goto oom;
	bd->src = src;
	bd->dest = dest;
	bd->key = dup_name(key);
	bd->key_len = key.len;
	bd->args = dup_bytes(args);
	bd->args_len = args.len;
	if (!bd->key || !bd->args)
		goto oom;
	if (src->type) {
		struct amqpd_binding ab = {sizeof(ab),
		                           (const amqpd_dest *)dest,
		                           bd->key,
		                           bd->key_len,
		                           {bd->args, bd->args_len}};
		char err[256];
		uint16_t rc = plugin_xtype_bind(src->type, src->state, &ab, err, sizeof(err));
		if (rc) {
			snprintf(text, textlen, "%s - %s", amqp_reply_code_name(rc), err);
			binding_free(bd);
			return rc;
		}
	}
	bd->src_next = src->bindings;
	if (src->bindings)
		src->bindings->src_prev = bd;
	src->bindings = bd;
	src->nbindings++;
	if (src->durable && dest_is_durable(dest))
		model_definitions_changed(src->vh->md);
	struct binding **in = incoming_list(dest);
	bd->dst_next = *in;
	if (*in)
		(*in)->dst_prev = bd;
	*in = bd;
	return 0;
oom:
	if (bd)
		binding_free(bd);
	snprintf(text, textlen, "INTERNAL_ERROR - out of memory");
	return AMQP_INTERNAL_ERROR;
}

static void maybe_auto_delete(struct exchange *x)
{
	if (x->auto_delete && x->nbindings == 0 && x->name_len) {
		log_debug("auto-deleting exchange '%s' in vhost '%s'", x->name, x->vh->name);
		exchange_delete(x);
	}
}

bool binding_remove(struct exchange *src, struct dest *dest, struct amqp_bytes key,
                    struct amqp_bytes args)
{
	struct binding *bd = binding_find(src, dest, key, args);
	if (!bd)
		return false;
	binding_unlink(bd);
	maybe_auto_delete(src);
	return true;
}

void bindings_remove_dest(struct binding **incoming)
{
	while (*incoming) {
		struct binding *bd = *incoming;
		struct exchange *src = bd->src;
		binding_unlink(bd);
		maybe_auto_delete(src);
	}
}

void exchange_unref(struct exchange *x)
{
	if (--x->refs > 0)
		return;
	free(x->name);
	free(x->args);
	free(x);
}

void exchange_delete(struct exchange *x)
{
	if (x->deleted)
		return;
	x->deleted = true;
	if (x->durable)
		model_definitions_changed(x->vh->md);
	while (x->bindings)
		binding_unlink(x->bindings);
	bindings_remove_dest(&x->incoming);
	if (x->name_len)
		hmap_del(&x->vh->exchanges, x->name, x->name_len);
	if (x->delayed)
		delayed_exchange_deleted(x);
	if (x->dedup.on)
		dedup_owner_deleted(x->vh, 'x', x->name, x->name_len);
	if (x->type)
		plugin_xtype_destroy(x->type, x->state);
	x->state = NULL;
	exchange_unref(x);
}

struct route_ctx {
	struct model *md;
	struct route_out *out;
	struct amqpd_route_msg *rm; /* its routing key is each of keys in turn */
	const struct amqp_bytes *keys;
	size_t nkeys;
	int depth;
	unsigned emits; /* destinations the exchange types named, seen or not */
};

static void route_into(struct exchange *x, struct route_ctx *ctx);

static void route_emit(void *arg, const amqpd_dest *dest)
{
	struct route_ctx *ctx = arg;
	struct dest *d = (struct dest *)dest;
	ctx->emits++;
	if (d->route_mark == ctx->md->route_epoch)
		return; /* already reached through another binding */
	d->route_mark = ctx->md->route_epoch;
	if (d->kind == DEST_QUEUE) {
		struct route_out *o = ctx->out;
		if (o->n == o->cap) {
			size_t ncap = o->cap ? o->cap * 2 : 8;
			struct queue **nq = realloc(o->qs, ncap * sizeof(*nq));
			if (!nq)
				return;
			o->qs = nq;
			o->cap = ncap;
		}
		o->qs[o->n++] = (struct queue *)d;
	} else if (ctx->depth < 64) {
		ctx->depth++;
		route_into((struct exchange *)d, ctx);
		ctx->depth--;
	}
}

static void route_into(struct exchange *x, struct route_ctx *ctx)
{
	unsigned before = ctx->emits;
	for (size_t i = 0; i < ctx->nkeys; i++) {
		ctx->rm->routing_key = (const char *)ctx->keys[i].ptr;
		ctx->rm->routing_key_len = ctx->keys[i].len;
		if (!x->type) {
			/* Default exchange: the routing key names the queue. */
			struct queue *q =
			    vhost_queue(x->vh, ctx->rm->routing_key, ctx->rm->routing_key_len);
			if (q)
				route_emit(ctx, (const amqpd_dest *)q);
		} else if (x->bindings) {
			plugin_xtype_route(x->type, x->state, ctx->rm, route_emit, ctx);
		}
	}
	if (!x->type || ctx->emits != before || !x->args_len)
		return;
	/* As RabbitMQ: an exchange that named no destination for any key
	 * hands the message to its alternate exchange, if that exists and
	 * this routing has not been through it yet (a cycle of alternates
	 * ends). */
	struct amqp_field_value ae;
	if (!amqp_table_get((struct amqp_bytes){x->args, x->args_len}, "alternate-exchange", &ae) ||
	    (ae.type != 'S' && ae.type != 'x') || ctx->depth >= 64)
		return;
	struct exchange *alt = vhost_exchange(x->vh, (const char *)ae.v.str.ptr, ae.v.str.len);
	if (!alt || alt == x || alt->deleted || alt->d.route_mark == ctx->md->route_epoch)
		return;
	alt->d.route_mark = ctx->md->route_epoch;
	ctx->depth++;
	route_into(alt, ctx);
	ctx->depth--;
}

static bool add_key(struct route_out *o, struct amqp_bytes k)
{
	if (o->nkeys == o->keys_cap) {
		size_t ncap = o->keys_cap ? o->keys_cap * 2 : 8;
		struct amqp_bytes *nk = realloc(o->keys, ncap * sizeof(*nk));
		if (!nk)
			return false; /* routed by the keys we have */
		o->keys = nk;
		o->keys_cap = ncap;
	}
	o->keys[o->nkeys++] = k;
	return true;
}

/* The keys of the CC and BCC headers, as RabbitMQ's header_routes. */
static bool collect_header_keys(const struct message *msg, struct route_out *o)
{
	struct amqp_table_iter it;
	amqp_table_iter_init(&it,
	                     (struct amqp_bytes){msg->props + msg->headers_off, msg->headers_len});
	struct amqp_bytes key;
	struct amqp_field_value v;
	while (amqp_table_next(&it, &key, &v) == 1) {
		bool cc = amqp_bytes_eq_cstr(key, "CC");
		if (!cc && !amqp_bytes_eq_cstr(key, "BCC"))
			continue;
		if (v.type != 'A') {
			o->bad_header = cc ? "CC" : "BCC";
			o->bad_type = v.type;
			return false;
		}
		if (!cc)
			o->has_bcc = true;
		struct amqp_table_iter ai;
		amqp_table_iter_init(&ai, v.v.table.raw);
		struct amqp_field_value e;
		while (amqp_array_next(&ai, &e) == 1)
			if (e.type == 'S' && e.v.str.len <= 255 && !add_key(o, e.v.str))
				return true;
	}
	return true;
}

bool exchange_route(struct exchange *x, const struct message *msg, struct route_out *out)
{
	struct model *md = x->vh->md;
	struct amqpd_route_msg rm = {
	    sizeof(rm), msg->rk, msg->rk_len, {msg->props + msg->headers_off, msg->headers_len}};
	struct amqp_bytes own = {(const uint8_t *)msg->rk, msg->rk_len};
	struct route_ctx ctx = {md, out, &rm, &own, 1, 0, 0};
	out->n = 0;
	out->nkeys = 0;
	out->has_bcc = false;
	out->bad_header = NULL;
	if (msg->headers_len) {
		if (!collect_header_keys(msg, out))
			return false;
		/* CC or BCC keys: the message's own goes with them (the order
		 * does not matter, each destination is taken once). */
		if (out->nkeys && add_key(out, own)) {
			ctx.keys = out->keys;
			ctx.nkeys = out->nkeys;
		}
	}
	md->route_epoch++;
	x->d.route_mark = md->route_epoch;
	route_into(x, &ctx);
	return true;
}

void route_out_free(struct route_out *out)
{
	free(out->qs);
	free(out->keys);
	memset(out, 0, sizeof(*out));
}
