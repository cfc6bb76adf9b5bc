/*
 * storage_host.c - see storage_host.h.
 */
#include "store/storage_host.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util/log.h"
#include "util/names.h"
#include "model/message.h"
#include "model/model.h"
#include "model/queue.h"
#include "model/vhost.h"

static void write_failed(struct queue *q, const char *what, int rc);

static bool persisted(const struct queue *q, const struct message *m)
{
	return q->sq && m->persistent;
}

/* exchange, routing key, properties and body as one byte string, handed
 * to the backend as a gather list (no copy): u8 len, exchange, u8 len,
 * routing key, u32 len, properties, body.  hdr holds the length fields. */
static int serialise(const struct message *m, uint8_t hdr[6], struct amqpd_iov iov[7])
{
	uint32_t pl = m->props_len;
	hdr[0] = m->exchange_len;
	hdr[1] = m->rk_len;
	hdr[2] = (uint8_t)(pl >> 24);
	hdr[3] = (uint8_t)(pl >> 16);
	hdr[4] = (uint8_t)(pl >> 8);
	hdr[5] = (uint8_t)pl;
	iov[0] = (struct amqpd_iov){hdr, 1};
	iov[1] = (struct amqpd_iov){m->exchange, m->exchange_len};
	iov[2] = (struct amqpd_iov){hdr + 1, 1};
	iov[3] = (struct amqpd_iov){m->rk, m->rk_len};
	iov[4] = (struct amqpd_iov){hdr + 2, 4};
	iov[5] = (struct amqpd_iov){m->props, m->props_len};
	iov[6] = (struct amqpd_iov){m->body, (size_t)m->body_len};
	return 7;
}

static struct message *deserialise(struct model *md, const uint8_t *d, size_t len)
{
	struct amqp_rd r = {d, d + len};
	struct amqp_bytes ex, rk, props;
	uint32_t pl;
	uint8_t n;
	if (!amqp_rd_u8(&r, &n) || !amqp_rd_bytes(&r, n, &ex) || !amqp_rd_u8(&r, &n) ||
	    !amqp_rd_bytes(&r, n, &rk) || !amqp_rd_u32(&r, &pl) || !amqp_rd_bytes(&r, pl, &props))
		return NULL;
	struct amqp_basic_props bp;
	if (amqp_basic_props_decode(props, &bp, NULL) < 0)
		return NULL;
	size_t body_len = amqp_rd_left(&r);
	struct message *m = message_new(md, ex, rk, props, &bp, body_len);
	if (!m)
		return NULL;
	if (body_len)
		memcpy(m->body, r.p, body_len);
	m->body_have = body_len;
	return m;
}

struct recover_ctx {
	struct model *md;
	struct queue *q;
	uint64_t n, bad;
};

/* Body size of a stored message without building it (for paged entries). */
static bool stored_body_len(const uint8_t *d, size_t len, uint32_t *body)
{
	struct amqp_rd r = {d, d + len};
	struct amqp_bytes skip;
	uint32_t pl;
	uint8_t n;
	if (!amqp_rd_u8(&r, &n) || !amqp_rd_bytes(&r, n, &skip) || !amqp_rd_u8(&r, &n) ||
	    !amqp_rd_bytes(&r, n, &skip) || !amqp_rd_u32(&r, &pl) || !amqp_rd_bytes(&r, pl, &skip))
		return false;
	size_t left = amqp_rd_left(&r);
	*body = left > UINT32_MAX ? UINT32_MAX : (uint32_t)left;
	return true;
}

static void recover_one(void *arg, const struct amqpd_stored_msg *sm)
{
	struct recover_ctx *rc = arg;
	uint32_t body;
	if (!stored_body_len(sm->data, sm->len, &body)) {
		rc->bad++;
		return;
	}
	/* Over the memory budget only the index entry is kept in memory. */
	if (model_over_budget(rc->md)) {
		queue_restore(rc->q, NULL, sm->seq, body, sm->delivered);
		rc->n++;
		return;
	}
	struct message *m = deserialise(rc->md, sm->data, sm->len);
	if (!m) {
		rc->bad++;
		return;
	}
	queue_restore(rc->q, m, sm->seq, body, sm->delivered);
	rc->n++;
}

struct read_ctx {
	struct model *md;
	struct message *m;
};

static void read_one(void *arg, const struct amqpd_stored_msg *sm)
{
	struct read_ctx *rc = arg;
	rc->m = deserialise(rc->md, sm->data, sm->len);
}

struct message *storage_read(struct storage_host *st, struct queue *q, uint64_t seq)
{
	if (!q->sq || !st->be->ops.read) {
		log_error("storage: queue '%s': message %llu is paged out but cannot be read",
		          q->name, (unsigned long long)seq);
		return NULL;
	}
	struct read_ctx rc = {st->md, NULL};
	int err = plugin_storage_read(st->be, q->sq, seq, read_one, &rc);
	if (err < 0 || !rc.m) {
		log_error("storage: queue '%s': cannot read message %llu back: %s; dropped",
		          q->name, (unsigned long long)seq, err < 0 ? strerror(-err) : "corrupt");
		if (rc.m)
			message_unref(rc.m);
		return NULL;
	}
	return rc.m;
}

void storage_ack_seq(struct storage_host *st, struct queue *q, uint64_t seq)
{
	if (!q->sq)
		return;
	int rc = plugin_storage_ack(st->be, q->sq, seq);
	if (rc < 0)
		write_failed(q, "ack", rc);
	st->write_gen++;
}

void storage_queue_created(struct storage_host *st, struct queue *q)
{
	if (!st->be || !q->durable || q->exclusive || q->sq)
		return;
	if (!q->store_id[0]) {
		random_name("q", q->store_id, sizeof(q->store_id));
		for (char *p = q->store_id; *p; p++)
			if (*p == '-')
				*p = '_';          /* ids are [A-Za-z0-9_-]; keep them simple */
		model_definitions_changed(st->md); /* the id is part of the definition */
	}
	amqpd_store_queue *sq = NULL;
	if (plugin_storage_queue_open(st->be, st->store, q->store_id, &sq) != 0 || !sq) {
		log_error("storage: cannot open the store of queue '%s' in vhost '%s'; its "
		          "messages will not be persisted",
		          q->name, q->vh->name);
		return;
	}
	q->sq = sq;
	struct recover_ctx rc = {st->md, q, 0, 0};
	plugin_storage_recover(st->be, sq, recover_one, &rc);
	if (rc.n || rc.bad)
		log_info("storage: queue '%s' in vhost '%s': recovered %llu messages%s", q->name,
		         q->vh->name, (unsigned long long)rc.n, rc.bad ? " (some unreadable)" : "");
}

void storage_queue_deleted(struct storage_host *st, struct queue *q)
{
	if (!q->sq)
		return;
	plugin_storage_queue_close(st->be, q->sq);
	q->sq = NULL;
	/* At shutdown a queue is only closed; its data stays. */
	if (!st->stopping)
		plugin_storage_queue_delete(st->be, st->store, q->store_id);
	st->write_gen++;
}

static void write_failed(struct queue *q, const char *what, int rc)
{
	log_error("storage: queue '%s': %s failed: %s", q->name, what, strerror(-rc));
}

storage_token storage_append(struct storage_host *st, struct queue *q, uint64_t seq,
                             const struct message *m)
{
	if (!persisted(q, m))
		return 0;
	uint8_t hdr[6];
	struct amqpd_iov iov[7];
	int n = serialise(m, hdr, iov);
	int rc = plugin_storage_append(st->be, q->sq, seq, iov, n);
	if (rc < 0)
		write_failed(q, "append", rc);
	/* Even a failed append needs a sync to report it (as a nack). */
	st->write_gen++;
	if (rc < 0)
		st->failed_gen = st->write_gen;
	return st->write_gen;
}

storage_token storage_ack(struct storage_host *st, struct queue *q, uint64_t seq,
                          const struct message *m)
{
	if (!persisted(q, m))
		return 0;
	int rc = plugin_storage_ack(st->be, q->sq, seq);
	if (rc < 0)
		write_failed(q, "ack", rc);
	return ++st->write_gen;
}

void storage_delivered(struct storage_host *st, struct queue *q, uint64_t seq,
                       const struct message *m)
{
	if (!persisted(q, m) || !st->be->ops.delivered)
		return;
	int rc = plugin_storage_delivered(st->be, q->sq, seq);
	if (rc < 0)
		write_failed(q, "delivered mark", rc);
	st->write_gen++;
}

/* ---- group commit ------------------------------------------------------ */

static void sync_done(void *ctx, int status)
{
	struct storage_host *st = ctx;
	/* An append this sync covers failed: what it covers is not durable. */
	if (status == 0 && st->failed_gen > st->synced_gen && st->failed_gen <= st->sync_target)
		status = -EIO;
	st->sync_in_flight = false;
	st->synced_gen = st->sync_target;
	if (status != 0)
		log_error("storage: sync failed: %s; publishers get basic.nack",
		          strerror(status < 0 ? -status : status));
	for (struct storage_waiter *w = st->waiting, *next; w; w = next) {
		next = w->next;
		w->done(w, st->synced_gen, status);
	}
	storage_maybe_sync(st);
}

void storage_maybe_sync(struct storage_host *st)
{
	if (!st->be || st->sync_in_flight || st->write_gen == st->synced_gen)
		return;
	st->sync_in_flight = true;
	st->sync_target = st->write_gen;
	int rc = plugin_storage_sync(st->be, st->store, sync_done, st);
	if (rc != 0) {
		/* Not started: report it as a failed sync right away. */
		sync_done(st, rc < 0 ? rc : -EIO);
	}
}

void storage_wait(struct storage_host *st, struct storage_waiter *w)
{
	if (w->listed)
		return;
	w->listed = true;
	w->prev = NULL;
	w->next = st->waiting;
	if (st->waiting)
		st->waiting->prev = w;
	st->waiting = w;
}

void storage_unwait(struct storage_host *st, struct storage_waiter *w)
{
	if (!w->listed)
		return;
	w->listed = false;
	if (w->prev)
		w->prev->next = w->next;
	else
		st->waiting = w->next;
	if (w->next)
		w->next->prev = w->prev;
}

/* ---- the model's store interface (model.h) ----------------------------- */

static storage_token ops_append(void *ud, struct queue *q, uint64_t seq, const struct message *m)
{
	return storage_append(ud, q, seq, m);
}

static storage_token ops_ack(void *ud, struct queue *q, uint64_t seq, const struct message *m)
{
	return storage_ack(ud, q, seq, m);
}

static void ops_ack_seq(void *ud, struct queue *q, uint64_t seq)
{
	storage_ack_seq(ud, q, seq);
}

static struct message *ops_read(void *ud, struct queue *q, uint64_t seq)
{
	return storage_read(ud, q, seq);
}

static void ops_queue_deleted(void *ud, struct queue *q)
{
	storage_queue_deleted(ud, q);
}

static const struct model_store_ops storage_model_ops = {
    ops_append, ops_ack, ops_ack_seq, ops_read, ops_queue_deleted,
};

/* ---- start / stop ------------------------------------------------------ */

int storage_start(struct storage_host *st, struct model *md, const char *data_dir, const char *name)
{
	st->md = md;
	const struct storage_backend *be = plugin_host_storage(md->plugins, name);
	if (!be) {
		log_error("storage backend '%s' is not loaded (no storage plugin in the plugin "
		          "directory)",
		          name);
		return -1;
	}
	char dir[4096];
	snprintf(dir, sizeof(dir), "%s/msgs", data_dir);
	if (mkdir(dir, 0750) < 0 && errno != EEXIST) {
		log_error("storage: cannot create %s: %s", dir, strerror(errno));
		return -1;
	}
	bool clean = false;
	char err[256] = "";
	if (plugin_storage_start(be, &st->store, dir, &clean, err, sizeof(err)) != 0) {
		log_error("storage '%s': cannot start in %s: %s", name, dir, err);
		return -1;
	}
	st->be = be;
	log_info("storage '%s' started in %s (%s shutdown before)", name, dir,
	         clean ? "clean" : "unclean");
	void *v, *w;
	for (size_t i = 0; hmap_next(&md->vhosts, &i, &v);) {
		struct vhost *vh = v;
		for (size_t j = 0; hmap_next(&vh->queues, &j, &w);)
			storage_queue_created(st, w);
	}
	md->store = &storage_model_ops;
	md->store_ud = st;
	return 0;
}

void storage_stop(struct storage_host *st, bool clean)
{
	if (!st->be)
		return;
	void *v, *w;
	for (size_t i = 0; hmap_next(&st->md->vhosts, &i, &v);) {
		struct vhost *vh = v;
		for (size_t j = 0; hmap_next(&vh->queues, &j, &w);) {
			struct queue *q = w;
			if (q->sq) {
				plugin_storage_queue_close(st->be, q->sq);
				q->sq = NULL;
			}
		}
	}
	plugin_storage_stop(st->be, st->store, clean);
	st->be = NULL;
	st->store = NULL;
	st->md->store = NULL;
}
