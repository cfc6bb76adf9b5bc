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
#include "model/key_index.h"
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
 * routing key, u32 len, properties, [meta], body.  Bit 31 of the
 * properties' length (never set by a real length) says a meta block
 * follows them: u16 length, then tag-length-value items of the queue's
 * own about this copy (META_EXPIRES: u64 due time in ms since the epoch;
 * META_ORIGIN: u64 seq then the store id of the queue it was
 * dead-lettered from).  Records without it are read as before. */
#define PROPS_META_FLAG 0x80000000u
enum { META_EXPIRES = 1, META_ORIGIN = 2 };

struct record_hdr {
	uint8_t fixed[6];
	uint8_t meta[2 + 10 + 2 + 8 + 64];
};

static void put_u64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static int serialise(const struct message *m, const struct qentry *e,
                     const struct store_origin *from, struct record_hdr *h, struct amqpd_iov iov[8])
{
	size_t ml = 2;
	if (e && e->expires) {
		h->meta[ml++] = META_EXPIRES;
		h->meta[ml++] = 8;
		put_u64(h->meta + ml, e->expires);
		ml += 8;
	}
	if (from && from->store_id) {
		size_t idl = strlen(from->store_id);
		if (idl > 64)
			idl = 64;
		h->meta[ml++] = META_ORIGIN;
		h->meta[ml++] = (uint8_t)(8 + idl);
		put_u64(h->meta + ml, from->seq);
		memcpy(h->meta + ml + 8, from->store_id, idl);
		ml += 8 + idl;
	}
	uint32_t pl = m->props_len;
	if (ml > 2) {
		pl |= PROPS_META_FLAG;
		h->meta[0] = (uint8_t)((ml - 2) >> 8);
		h->meta[1] = (uint8_t)(ml - 2);
	}
	h->fixed[0] = m->exchange_len;
	h->fixed[1] = m->rk_len;
	h->fixed[2] = (uint8_t)(pl >> 24);
	h->fixed[3] = (uint8_t)(pl >> 16);
	h->fixed[4] = (uint8_t)(pl >> 8);
	h->fixed[5] = (uint8_t)pl;
	int n = 0;
	iov[n++] = (struct amqpd_iov){h->fixed, 1};
	iov[n++] = (struct amqpd_iov){m->exchange, m->exchange_len};
	iov[n++] = (struct amqpd_iov){h->fixed + 1, 1};
	iov[n++] = (struct amqpd_iov){m->rk, m->rk_len};
	iov[n++] = (struct amqpd_iov){h->fixed + 2, 4};
	iov[n++] = (struct amqpd_iov){m->props, m->props_len};
	if (ml > 2)
		iov[n++] = (struct amqpd_iov){h->meta, ml};
	iov[n++] = (struct amqpd_iov){m->body, (size_t)m->body_len};
	return n;
}

/* A stored record taken apart (borrowing from its bytes). */
struct record {
	struct amqp_bytes exchange, rk, props, body;
	uint64_t expires;
	bool has_origin;
	uint64_t origin_seq;
	char origin_id[65];
};

static bool parse_record(const uint8_t *d, size_t len, struct record *rec)
{
	struct amqp_rd r = {d, d + len};
	uint32_t pl;
	uint8_t n;
	memset(rec, 0, sizeof(*rec));
	if (!amqp_rd_u8(&r, &n) || !amqp_rd_bytes(&r, n, &rec->exchange) || !amqp_rd_u8(&r, &n) ||
	    !amqp_rd_bytes(&r, n, &rec->rk) || !amqp_rd_u32(&r, &pl) ||
	    !amqp_rd_bytes(&r, pl & ~PROPS_META_FLAG, &rec->props))
		return false;
	if (pl & PROPS_META_FLAG) {
		uint16_t ml;
		struct amqp_bytes meta;
		if (!amqp_rd_u16(&r, &ml) || !amqp_rd_bytes(&r, ml, &meta))
			return false;
		struct amqp_rd mr = {meta.ptr, meta.ptr + meta.len};
		uint8_t tag, tl;
		struct amqp_bytes v;
		while (amqp_rd_left(&mr)) {
			if (!amqp_rd_u8(&mr, &tag) || !amqp_rd_u8(&mr, &tl) ||
			    !amqp_rd_bytes(&mr, tl, &v))
				return false;
			struct amqp_rd vr = {v.ptr, v.ptr + v.len};
			if (tag == META_EXPIRES && tl == 8) {
				amqp_rd_u64(&vr, &rec->expires);
			} else if (tag == META_ORIGIN && tl > 8 && tl <= 8 + 64) {
				amqp_rd_u64(&vr, &rec->origin_seq);
				memcpy(rec->origin_id, v.ptr + 8, tl - 8u);
				rec->origin_id[tl - 8] = 0;
				rec->has_origin = true;
			} /* unknown tags: from a later version, skipped */
		}
	}
	rec->body = (struct amqp_bytes){r.p, amqp_rd_left(&r)};
	return true;
}

static struct message *deserialise(struct model *md, const uint8_t *d, size_t len)
{
	struct record rec;
	if (!parse_record(d, len, &rec))
		return NULL;
	struct amqp_basic_props bp;
	if (amqp_basic_props_decode(rec.props, &bp, NULL) < 0)
		return NULL;
	struct message *m = message_new(md, rec.exchange, rec.rk, rec.props, &bp, rec.body.len);
	if (!m)
		return NULL;
	if (rec.body.len)
		memcpy(m->body, rec.body.ptr, rec.body.len);
	m->body_have = rec.body.len;
	return m;
}

struct recover_ctx {
	struct storage_host *st;
	struct queue *q;
	uint64_t n, bad;
};

/* A dead-lettered copy recovered: its origin goes once every queue is
 * back (storage_start), in case both survived a crash. */
static void note_origin(struct storage_host *st, const struct record *rec)
{
	if (st->norigins == st->origins_cap) {
		size_t ncap = st->origins_cap ? st->origins_cap * 2 : 64;
		struct storage_origin_note *no = realloc(st->origins, ncap * sizeof(*no));
		if (!no) {
			log_error("storage: out of memory noting dead-lettered messages' origins");
			return;
		}
		st->origins = no;
		st->origins_cap = ncap;
	}
	struct storage_origin_note *o = &st->origins[st->norigins++];
	snprintf(o->store_id, sizeof(o->store_id), "%s", rec->origin_id);
	o->seq = rec->origin_seq;
}

static void recover_one(void *arg, const struct amqpd_stored_msg *sm)
{
	struct recover_ctx *rc = arg;
	struct record rec;
	struct amqp_basic_props bp;
	if (!parse_record(sm->data, sm->len, &rec) ||
	    amqp_basic_props_decode(rec.props, &bp, NULL) < 0) {
		rc->bad++;
		return;
	}
	if (rec.has_origin && rc->st->starting)
		note_origin(rc->st, &rec);
	struct qentry e = {.seq = sm->seq,
	                   .expires = rec.expires,
	                   .len = rec.body.len > UINT32_MAX ? UINT32_MAX : (uint32_t)rec.body.len,
	                   .prio = (bp.flags & AMQP_PROP_PRIORITY) ? bp.priority : 0,
	                   .redelivered = sm->delivered};
	/* Over the memory budget only the index entry is kept in memory. */
	if (!model_over_budget(rc->st->md) || rc->q->dedup_store) { /* caches stay in */
		e.msg = deserialise(rc->st->md, sm->data, sm->len);
		if (!e.msg) {
			rc->bad++;
			return;
		}
	}
	queue_restore(rc->q, &e);
	if (rc->q->holding || rc->q->dedup_store)
		key_index_restore(rc->q, &bp, rec.body, sm->seq);
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
	struct recover_ctx rc = {st, q, 0, 0};
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

storage_token storage_append(struct storage_host *st, struct queue *q, const struct qentry *e,
                             const struct message *m, const struct store_origin *from)
{
	if (!persisted(q, m))
		return 0;
	struct record_hdr hdr;
	struct amqpd_iov iov[8];
	int n = serialise(m, e, from, &hdr, iov);
	int rc = plugin_storage_append(st->be, q->sq, e->seq, iov, n);
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

/* ---- acks that wait for a sync (dead-lettering) ------------------------- */

void storage_ack_after(struct storage_host *st, struct queue *q, uint64_t seq, storage_token token)
{
	if (!q->sq)
		return;
	if (!token || token <= st->synced_gen) {
		storage_ack_seq(st, q, seq);
		return;
	}
	if (st->nlate == st->late_cap) {
		size_t ncap = st->late_cap ? st->late_cap * 2 : 64;
		struct storage_late_ack *nl = realloc(st->late, ncap * sizeof(*nl));
		if (!nl) {
			/* The copy is not on disk yet; acking now could lose the
			 * message in a crash, keeping it could duplicate it: the
			 * duplicate is the lesser harm, and recovery removes it. */
			log_error("storage: out of memory deferring an ack; the origin stays");
			return;
		}
		st->late = nl;
		st->late_cap = ncap;
	}
	q->refs++;
	st->late[st->nlate++] = (struct storage_late_ack){q, seq, token};
}

/* After a successful sync: the acks whose copies it covered. */
static void late_acks_run(struct storage_host *st)
{
	size_t k = 0;
	for (size_t i = 0; i < st->nlate; i++) {
		struct storage_late_ack *a = &st->late[i];
		if (a->token <= st->synced_gen) {
			storage_ack_seq(st, a->q, a->seq);
			queue_unref(a->q);
		} else {
			st->late[k++] = *a;
		}
	}
	st->nlate = k;
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
	if (status == 0) /* after a failure they wait for the next good sync */
		late_acks_run(st);
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

static storage_token ops_append(void *ud, struct queue *q, const struct qentry *e,
                                const struct message *m, const struct store_origin *from)
{
	return storage_append(ud, q, e, m, from);
}

static void ops_ack_after(void *ud, struct queue *q, uint64_t seq, storage_token token)
{
	storage_ack_after(ud, q, seq, token);
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

static void ops_queue_created(void *ud, struct queue *q)
{
	storage_queue_created(ud, q);
}

static const struct model_store_ops storage_model_ops = {
    ops_append, ops_ack, ops_ack_seq, ops_ack_after, ops_read, ops_queue_deleted, ops_queue_created,
};

/* ---- start / stop ------------------------------------------------------ */

/* Messages dead-lettered just before a crash may be in both queues: the
 * copy names its origin, which goes now. */
static void drop_moved_origins(struct storage_host *st)
{
	if (!st->norigins)
		goto out;
	struct hmap by_id;
	hmap_init(&by_id);
	void *v, *w;
	for (size_t i = 0; hmap_next(&st->md->vhosts, &i, &v);) {
		struct vhost *vh = v;
		for (size_t j = 0; hmap_next(&vh->queues, &j, &w);) {
			struct queue *q = w;
			if (q->sq && q->store_id[0])
				hmap_put(&by_id, q->store_id, strlen(q->store_id), q);
		}
	}
	size_t dropped = 0;
	for (size_t i = 0; i < st->norigins; i++) {
		struct storage_origin_note *o = &st->origins[i];
		struct queue *q = hmap_get(&by_id, o->store_id, strlen(o->store_id));
		if (!q)
			continue;
		size_t before = q->count;
		queue_forget(q, o->seq);
		dropped += before - q->count;
	}
	hmap_free(&by_id);
	if (dropped)
		log_info("storage: %zu dead-lettered messages were also in their old queue after "
		         "an unclean stop; removed there",
		         dropped);
out:
	free(st->origins);
	st->origins = NULL;
	st->norigins = st->origins_cap = 0;
}

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
	st->starting = true;
	for (size_t i = 0; hmap_next(&md->vhosts, &i, &v);) {
		struct vhost *vh = v;
		for (size_t j = 0; hmap_next(&vh->queues, &j, &w);)
			storage_queue_created(st, w);
	}
	st->starting = false;
	md->store = &storage_model_ops;
	md->store_ud = st;
	drop_moved_origins(st);
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
	for (size_t i = 0; i < st->nlate; i++)
		queue_unref(st->late[i].q); /* not acked: recovery resolves them */
	free(st->late);
	st->late = NULL;
	st->nlate = st->late_cap = 0;
	plugin_storage_stop(st->be, st->store, clean);
	st->be = NULL;
	st->store = NULL;
	st->md->store = NULL;
}
