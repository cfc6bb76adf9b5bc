/*
 * plugin_v1.c - run ABI version 1 plugins in a version 2 host; see
 * plugin_v1.h for the rules.  Every adapter's userdata is the host's
 * record of the v1 vtable (struct v1_xtype or struct v1_storage).
 */
#include "plugin/plugin_v1.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "plugin/plugin_host.h"
#include "plugin/plugin_values.h"

/* ---- the v1 host table --------------------------------------------------- */

void plugin_v1_fill_api(struct amqpd_v1_host_api *api)
{
	memset(api, 0, sizeof(*api));
	api->struct_size = sizeof(*api);
	api->abi_version = 1;
	/* No plugin context in v1 allocator calls: plain, unaccounted. */
	api->alloc = malloc;
	api->calloc = calloc;
	api->realloc = realloc;
	api->free = free;
	api->log = plugin_host_log;
	api->register_exchange_type = plugin_host_register_v1_xtype;
	api->table_get = plugin_table_get;
	api->table_iter_init = plugin_table_iter_init;
	api->table_next = plugin_table_next;
	api->array_next = plugin_array_next;
	api->value_equal = plugin_value_equal;
	api->register_storage = plugin_host_register_v1_storage;
	api->run_on_loop = plugin_host_v1_run_on_loop;
}

/* v1 storage: 0 or -errno (any other non-zero: EIO). */
amqpd_status plugin_v1_status(int rc)
{
	if (rc == 0)
		return AMQPD_OK;
	return AMQPD_ERR_ERRNO(rc < 0 ? -rc : EIO);
}

/* v1 validate / validate_binding: 0 or an AMQP reply code. */
static amqpd_status reply_status(int rc)
{
	if (rc == 0)
		return AMQPD_OK;
	return rc >= 300 && rc <= 999 ? AMQPD_ERR_REPLY(rc) : AMQPD_ERR_INTERNAL;
}

/* ---- exchange types -------------------------------------------------------- */

static struct amqpd_v1_binding v1_binding(const struct amqpd_binding *b)
{
	struct amqpd_v1_binding b1 = {sizeof(b1), b->dest, b->key, b->key_len, b->args};
	return b1;
}

static amqpd_status x_validate(void *ud, struct amqpd_table_view args, char *err, size_t errlen)
{
	struct v1_xtype *x = ud;
	return reply_status(x->vt1.validate(args, err, errlen));
}

static amqpd_status x_create(void *ud, amqpd_exchange_state **state, struct amqpd_table_view args)
{
	struct v1_xtype *x = ud;
	void *s = NULL;
	/* v1: non-zero means out of memory */
	if (x->vt1.create(&s, args) != 0)
		return AMQPD_ERR_ERRNO(ENOMEM);
	*state = s;
	return AMQPD_OK;
}

static void x_destroy(void *ud, amqpd_exchange_state *state)
{
	struct v1_xtype *x = ud;
	x->vt1.destroy(state);
}

static amqpd_status x_validate_binding(void *ud, amqpd_exchange_state *state,
                                       const struct amqpd_binding *b, char *err, size_t errlen)
{
	struct v1_xtype *x = ud;
	struct amqpd_v1_binding b1 = v1_binding(b);
	return reply_status(x->vt1.validate_binding(state, &b1, err, errlen));
}

static amqpd_status x_bind(void *ud, amqpd_exchange_state *state, const struct amqpd_binding *b)
{
	struct v1_xtype *x = ud;
	struct amqpd_v1_binding b1 = v1_binding(b);
	return x->vt1.bind(state, &b1) == 0 ? AMQPD_OK : AMQPD_ERR_ERRNO(ENOMEM);
}

static void x_unbind(void *ud, amqpd_exchange_state *state, const struct amqpd_binding *b)
{
	struct v1_xtype *x = ud;
	struct amqpd_v1_binding b1 = v1_binding(b);
	x->vt1.unbind(state, &b1);
}

/* v1 emits `const void *`; forward each to the v2 emit. */
struct emit_fwd {
	amqpd_route_emit_fn emit;
	void *ctx;
};

static void emit1(void *ctx, const void *dest)
{
	struct emit_fwd *f = ctx;
	f->emit(f->ctx, dest);
}

static amqpd_status x_route(void *ud, amqpd_exchange_state *state,
                            const struct amqpd_route_msg *msg, amqpd_route_emit_fn emit,
                            void *emit_ctx)
{
	struct v1_xtype *x = ud;
	struct amqpd_v1_route_msg m1 = {sizeof(m1), msg->routing_key, msg->routing_key_len,
	                                msg->headers};
	struct emit_fwd f = {emit, emit_ctx};
	x->vt1.route(state, &m1, emit1, &f);
	return AMQPD_OK;
}

void plugin_v1_exchange_adapters(struct amqpd_exchange_type *vt)
{
	memset(vt, 0, sizeof(*vt));
	vt->struct_size = sizeof(*vt);
	vt->validate = x_validate;
	vt->create = x_create;
	vt->destroy = x_destroy;
	vt->validate_binding = x_validate_binding;
	vt->bind = x_bind;
	vt->unbind = x_unbind;
	vt->route = x_route;
}

/* ---- storage backends ---------------------------------------------------------- */

static amqpd_status s_start(void *ud, amqpd_store **store, const char *dir, bool *clean, char *err,
                            size_t errlen)
{
	struct v1_storage *r = ud;
	void *s = NULL;
	if (r->ops1.start(&s, dir, clean, err, errlen) != 0)
		return AMQPD_ERR_ERRNO(EIO);
	*store = s;
	return AMQPD_OK;
}

static void s_stop(void *ud, amqpd_store *store, bool clean)
{
	struct v1_storage *r = ud;
	r->ops1.stop(store, clean);
}

static amqpd_status s_queue_open(void *ud, amqpd_store *store, const char *qid,
                                 amqpd_store_queue **q)
{
	struct v1_storage *r = ud;
	return plugin_v1_status(r->ops1.queue_open(store, qid, q));
}

static void s_queue_close(void *ud, amqpd_store_queue *q)
{
	struct v1_storage *r = ud;
	r->ops1.queue_close(q);
}

static amqpd_status s_queue_delete(void *ud, amqpd_store *store, const char *qid)
{
	struct v1_storage *r = ud;
	return plugin_v1_status(r->ops1.queue_delete(store, qid));
}

static amqpd_status s_queue_list(void *ud, amqpd_store *store,
                                 void (*fn)(void *ctx, const char *qid), void *ctx)
{
	struct v1_storage *r = ud;
	return plugin_v1_status(r->ops1.queue_list(store, fn, ctx));
}

static amqpd_status s_recover(void *ud, amqpd_store_queue *q, amqpd_stored_msg_fn fn, void *ctx)
{
	struct v1_storage *r = ud;
	return plugin_v1_status(r->ops1.recover(q, fn, ctx));
}

/* v1 takes one buffer: join the gather list (one piece goes as it is). */
static amqpd_status s_append(void *ud, amqpd_store_queue *q, uint64_t seq,
                             const struct amqpd_iov *iov, int iovcnt)
{
	struct v1_storage *r = ud;
	if (iovcnt == 1)
		return plugin_v1_status(r->ops1.append(q, seq, iov[0].base, iov[0].len));
	size_t len = 0;
	for (int i = 0; i < iovcnt; i++) {
		if (iov[i].len > SIZE_MAX - len)
			return AMQPD_ERR_ERRNO(EMSGSIZE);
		len += iov[i].len;
	}
	if (len > r->scratch_cap) {
		uint8_t *n = realloc(r->scratch, len);
		if (!n)
			return AMQPD_ERR_ERRNO(ENOMEM);
		r->scratch = n;
		r->scratch_cap = len;
	}
	size_t off = 0;
	for (int i = 0; i < iovcnt; i++) {
		if (iov[i].len)
			memcpy(r->scratch + off, iov[i].base, iov[i].len);
		off += iov[i].len;
	}
	return plugin_v1_status(r->ops1.append(q, seq, r->scratch, len));
}

static amqpd_status s_ack(void *ud, amqpd_store_queue *q, uint64_t seq)
{
	struct v1_storage *r = ud;
	return plugin_v1_status(r->ops1.ack(q, seq));
}

static amqpd_status s_delivered(void *ud, amqpd_store_queue *q, uint64_t seq)
{
	struct v1_storage *r = ud;
	return plugin_v1_status(r->ops1.delivered(q, seq));
}

static amqpd_status s_read(void *ud, amqpd_store_queue *q, uint64_t seq, amqpd_stored_msg_fn fn,
                           void *ctx)
{
	struct v1_storage *r = ud;
	return plugin_v1_status(r->ops1.read(q, seq, fn, ctx));
}

/* A v1 sync reports done(ctx, 0 or -errno) on the loop: complete the
 * request with it. */
static void s_sync_done(void *ctx, int status)
{
	plugin_host_complete(NULL, ctx, plugin_v1_status(status));
}

static amqpd_status s_sync(void *ud, amqpd_store *store, amqpd_request *req)
{
	struct v1_storage *r = ud;
	int rc = r->ops1.sync(store, s_sync_done, req);
	return rc == 0 ? AMQPD_PENDING : plugin_v1_status(rc);
}

static amqpd_status s_purge(void *ud, amqpd_store_queue *q)
{
	struct v1_storage *r = ud;
	return plugin_v1_status(r->ops1.purge(q));
}

static amqpd_status s_compact(void *ud, amqpd_store *store)
{
	struct v1_storage *r = ud;
	return plugin_v1_status(r->ops1.compact(store));
}

static amqpd_status s_stats(void *ud, amqpd_store *store, struct amqpd_storage_stats *out)
{
	struct v1_storage *r = ud;
	return plugin_v1_status(r->ops1.stats(store, out));
}

void plugin_v1_storage_adapters(const struct v1_storage *rec, struct amqpd_storage_ops *ops)
{
	const struct amqpd_v1_storage_ops *o = &rec->ops1;
	memset(ops, 0, sizeof(*ops));
	ops->struct_size = sizeof(*ops);
	ops->name = o->name;
	/* Required ones stay NULL when v1 lacks them: registration refuses. */
	ops->start = o->start ? s_start : NULL;
	ops->stop = o->stop ? s_stop : NULL;
	ops->queue_open = o->queue_open ? s_queue_open : NULL;
	ops->queue_close = o->queue_close ? s_queue_close : NULL;
	ops->queue_delete = o->queue_delete ? s_queue_delete : NULL;
	ops->queue_list = o->queue_list ? s_queue_list : NULL;
	ops->recover = o->recover ? s_recover : NULL;
	ops->append = o->append ? s_append : NULL;
	ops->ack = o->ack ? s_ack : NULL;
	ops->delivered = o->delivered ? s_delivered : NULL;
	ops->read = o->read ? s_read : NULL;
	ops->sync = o->sync ? s_sync : NULL;
	ops->purge = o->purge ? s_purge : NULL;
	ops->compact = o->compact ? s_compact : NULL;
	ops->stats = o->stats ? s_stats : NULL;
}
