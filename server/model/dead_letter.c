/*
 * dead_letter.c - see dead_letter.h.
 */
#include "model/dead_letter.h"

#include <stdlib.h>
#include <string.h>

#include "model/delayed.h"
#include "model/exchange.h"
#include "model/message.h"
#include "model/message_edit.h"
#include "model/model.h"
#include "model/vhost.h"
#include "util/log.h"

const char *dl_reason_name(enum dl_reason why)
{
	switch (why) {
	case DL_REJECTED:
		return "rejected";
	case DL_EXPIRED:
		return "expired";
	case DL_MAXLEN:
		return "maxlen";
	case DL_DELIVERY_LIMIT:
	default:
		return "delivery_limit";
	}
}

static bool key_is(struct amqp_bytes k, const char *s)
{
	return amqp_bytes_eq_cstr(k, s);
}

static bool key_has_prefix(struct amqp_bytes k, const char *p)
{
	size_t n = strlen(p);
	return k.len >= n && memcmp(k.ptr, p, n) == 0;
}

static bool str_value(struct amqp_bytes table, const char *key, struct amqp_bytes *out)
{
	struct amqp_field_value v;
	if (!amqp_table_get(table, key, &v) || (v.type != 'S' && v.type != 'x'))
		return false;
	*out = v.v.str;
	return true;
}

/* Work space for one dead-lettering, freed at the end. */
struct dl_work {
	struct amqp_table_entry *hdrs; /* the copy's headers */
	size_t nh;
	struct amqp_field_value *deaths; /* the new x-death array */
	size_t nd;
	struct amqp_table_entry first[7]; /* a new (or updated) x-death entry */
	struct amqp_table_entry *upd;     /* an updated entry's fields */
	struct amqp_field_value *rks;     /* its routing-keys */
	struct amqp_array rk_arr, death_arr;
	struct amqp_table first_t;
};

static void work_free(struct dl_work *w)
{
	free(w->hdrs);
	free(w->deaths);
	free(w->upd);
	free(w->rks);
}

/* The routing keys the message was published with: its own and its CC
 * header's (BCC never reaches a queue). */
static bool collect_rks(struct dl_work *w, const struct message *m, struct amqp_bytes headers)
{
	size_t n = 1;
	struct amqp_field_value cc;
	bool has_cc = amqp_table_get(headers, "CC", &cc) && cc.type == 'A';
	struct amqp_table_iter it;
	struct amqp_field_value v;
	if (has_cc) {
		amqp_table_iter_init(&it, cc.v.array.raw);
		while (amqp_array_next(&it, &v) == 1)
			n++;
	}
	w->rks = calloc(n, sizeof(*w->rks));
	if (!w->rks)
		return false;
	w->rks[0] = (struct amqp_field_value){.type = 'S'};
	w->rks[0].v.str = (struct amqp_bytes){(const uint8_t *)m->rk, m->rk_len};
	size_t k = 1;
	if (has_cc) {
		amqp_table_iter_init(&it, cc.v.array.raw);
		while (k < n && amqp_array_next(&it, &v) == 1)
			if (v.type == 'S')
				w->rks[k++] = v;
	}
	w->rk_arr = (struct amqp_array){w->rks, k};
	return true;
}

/* A copy of an old x-death entry with its count one higher. */
static bool bump_entry(struct dl_work *w, struct amqp_bytes raw)
{
	size_t n = 0;
	struct amqp_table_iter it;
	struct amqp_bytes k;
	struct amqp_field_value v;
	amqp_table_iter_init(&it, raw);
	while (amqp_table_next(&it, &k, &v) == 1)
		n++;
	w->upd = calloc(n + 1, sizeof(*w->upd));
	if (!w->upd)
		return false;
	size_t i = 0;
	bool counted = false;
	amqp_table_iter_init(&it, raw);
	while (i < n && amqp_table_next(&it, &k, &v) == 1) {
		w->upd[i] = (struct amqp_table_entry){k, v};
		if (key_is(k, "count")) {
			int64_t c = 0;
			amqp_table_get_int(raw, "count", &c);
			w->upd[i].value = (struct amqp_field_value){.type = 'l', .v.i64 = c + 1};
			counted = true;
		}
		i++;
	}
	if (!counted)
		w->upd[i++] =
		    (struct amqp_table_entry){amqp_cstr("count"), {.type = 'l', .v.i64 = 1}};
	w->first_t = (struct amqp_table){w->upd, i};
	return true;
}

/* Whether sending the message to target closes a cycle with no rejection
 * in it (RabbitMQ's is_cycle): deaths[0] is the death just recorded. */
static bool is_cycle(const struct dl_work *w, const struct queue *target)
{
	struct amqp_bytes tq = {(const uint8_t *)target->name, target->name_len};
	for (size_t i = 0; i < w->nd; i++) {
		struct amqp_bytes raw = w->deaths[i].v.table.raw, qn, rsn;
		const struct amqp_table *t = w->deaths[i].v.table.built;
		bool found = false, rejected = false;
		if (t) { /* the entry built here */
			for (size_t j = 0; j < t->n; j++) {
				if (key_is(t->entries[j].key, "queue"))
					found = amqp_bytes_eq(t->entries[j].value.v.str, tq);
				if (key_is(t->entries[j].key, "reason"))
					rejected = key_is(t->entries[j].value.v.str, "rejected");
			}
		} else {
			found = str_value(raw, "queue", &qn) && amqp_bytes_eq(qn, tq);
			rejected = str_value(raw, "reason", &rsn) && key_is(rsn, "rejected");
		}
		if (rejected)
			return false;
		if (found)
			return true;
	}
	return false;
}

uint64_t dead_letter(struct queue *q, struct message *m, uint64_t seq, enum dl_reason why)
{
	struct model *md = q->vh->md;
	if (!q->conf.has_dlx)
		return 0;
	struct exchange *x = vhost_exchange(q->vh, q->conf.dlx, q->conf.dlx_len);
	if (!x || x->deleted) {
		log_debug("queue '%s': dead-letter exchange '%s' does not exist; message dropped",
		          q->name, q->conf.dlx);
		return 0;
	}
	if (md->dl_depth >= 16) {
		log_warning("queue '%s': dead-lettering nested too deep; message dropped", q->name);
		return 0;
	}
	struct dl_work w = {0};
	uint64_t token = 0;
	struct amqp_bytes headers = {m->props + m->headers_off, m->headers_len};
	long nold = message_headers(m, NULL, 0);
	if (nold < 0)
		nold = 0;
	const char *reason = dl_reason_name(why);
	struct amqp_basic_props p;
	if (message_props(m, &p) < 0 || !collect_rks(&w, m, headers))
		goto out;
	w.hdrs = calloc((size_t)nold + 8, sizeof(*w.hdrs));
	if (!w.hdrs)
		goto out;

	/* The x-death history: an entry for this queue and reason moves to
	 * the front with its count raised, the rest keep their order. */
	struct amqp_field_value old_deaths;
	bool had_deaths = amqp_table_get(headers, "x-death", &old_deaths) && old_deaths.type == 'A';
	size_t nold_d = 0;
	struct amqp_table_iter it;
	struct amqp_field_value v;
	if (had_deaths) {
		amqp_table_iter_init(&it, old_deaths.v.array.raw);
		while (amqp_array_next(&it, &v) == 1)
			nold_d++;
	}
	w.deaths = calloc(nold_d + 1, sizeof(*w.deaths));
	if (!w.deaths)
		goto out;
	struct amqp_bytes qname = {(const uint8_t *)q->name, q->name_len};
	bool matched = false;
	w.nd = 1;
	if (had_deaths) {
		amqp_table_iter_init(&it, old_deaths.v.array.raw);
		while (amqp_array_next(&it, &v) == 1) {
			if (v.type != 'F')
				continue;
			struct amqp_bytes qn, rsn;
			if (!matched && str_value(v.v.table.raw, "queue", &qn) &&
			    amqp_bytes_eq(qn, qname) && str_value(v.v.table.raw, "reason", &rsn) &&
			    key_is(rsn, reason)) {
				matched = true;
				if (!bump_entry(&w, v.v.table.raw))
					goto out;
				continue;
			}
			w.deaths[w.nd++] = v;
		}
	}
	if (!matched) {
		size_t k = 0;
		w.first[k++] =
		    (struct amqp_table_entry){amqp_cstr("count"), {.type = 'l', .v.i64 = 1}};
		w.first[k++] = (struct amqp_table_entry){
		    amqp_cstr("exchange"),
		    {.type = 'S', .v.str = {(const uint8_t *)m->exchange, m->exchange_len}}};
		if (p.flags & AMQP_PROP_EXPIRATION)
			w.first[k++] = (struct amqp_table_entry){
			    amqp_cstr("original-expiration"), {.type = 'S', .v.str = p.expiration}};
		w.first[k++] =
		    (struct amqp_table_entry){amqp_cstr("queue"), {.type = 'S', .v.str = qname}};
		w.first[k++] = (struct amqp_table_entry){amqp_cstr("reason"),
		                                         {.type = 'S', .v.str = amqp_cstr(reason)}};
		struct amqp_field_value rkv = {.type = 'A'};
		rkv.v.array.built = &w.rk_arr;
		w.first[k++] = (struct amqp_table_entry){amqp_cstr("routing-keys"), rkv};
		w.first[k++] = (struct amqp_table_entry){
		    amqp_cstr("time"), {.type = 'T', .v.u64 = model_now_ms(md) / 1000}};
		w.first_t = (struct amqp_table){w.first, k};
	}
	w.deaths[0] = (struct amqp_field_value){.type = 'F'};
	w.deaths[0].v.table.built = &w.first_t;
	w.death_arr = (struct amqp_array){w.deaths, w.nd};

	/* The copy's headers: the old ones but the death headers (and CC
	 * when the dead-letter routing key replaces the keys), then those. */
	long got = message_headers(m, w.hdrs, (size_t)nold);
	for (long i = 0; i < got; i++) {
		struct amqp_bytes k = w.hdrs[i].key;
		if (key_is(k, "x-death") || key_has_prefix(k, "x-last-death-") ||
		    (q->conf.has_dlrk && key_is(k, "CC")))
			continue;
		if (key_has_prefix(k, "x-first-death-") && had_deaths)
			; /* kept: the first death stays the first */
		else if (key_has_prefix(k, "x-first-death-"))
			continue;
		w.hdrs[w.nh++] = w.hdrs[i];
	}
	struct amqp_bytes orig_x = {(const uint8_t *)m->exchange, m->exchange_len};
	struct amqp_field_value dv = {.type = 'A'};
	dv.v.array.built = &w.death_arr;
	w.hdrs[w.nh++] = (struct amqp_table_entry){amqp_cstr("x-death"), dv};
	if (!had_deaths) {
		w.hdrs[w.nh++] = (struct amqp_table_entry){amqp_cstr("x-first-death-exchange"),
		                                           {.type = 'S', .v.str = orig_x}};
		w.hdrs[w.nh++] = (struct amqp_table_entry){amqp_cstr("x-first-death-queue"),
		                                           {.type = 'S', .v.str = qname}};
		w.hdrs[w.nh++] = (struct amqp_table_entry){
		    amqp_cstr("x-first-death-reason"), {.type = 'S', .v.str = amqp_cstr(reason)}};
	}
	w.hdrs[w.nh++] = (struct amqp_table_entry){amqp_cstr("x-last-death-exchange"),
	                                           {.type = 'S', .v.str = orig_x}};
	w.hdrs[w.nh++] = (struct amqp_table_entry){amqp_cstr("x-last-death-queue"),
	                                           {.type = 'S', .v.str = qname}};
	w.hdrs[w.nh++] = (struct amqp_table_entry){amqp_cstr("x-last-death-reason"),
	                                           {.type = 'S', .v.str = amqp_cstr(reason)}};

	struct amqp_bytes rk =
	    q->conf.has_dlrk ? (struct amqp_bytes){(const uint8_t *)q->conf.dlrk, q->conf.dlrk_len}
	                     : (struct amqp_bytes){(const uint8_t *)m->rk, m->rk_len};
	struct message *c = message_edit(
	    m, (struct amqp_bytes){(const uint8_t *)x->name, x->name_len}, rk, w.hdrs, w.nh, true);
	if (!c) {
		log_error("queue '%s': out of memory dead-lettering a message; dropped", q->name);
		goto out;
	}
	struct store_origin from = {q->sq ? q->store_id : NULL, seq};
	uint64_t delay = x->delayed ? delayed_delay(c) : 0;
	if (delay) {
		/* A delayed-message exchange as the DLX: a retry after x-delay. */
		delayed_hold_from(x, c, delay, &token, m->persistent && q->sq ? &from : NULL);
		message_unref(c);
		goto out;
	}
	struct route_out out = {0};
	exchange_route(x, c, &out);
	md->dl_depth++;
	for (size_t i = 0; i < out.n; i++) {
		struct queue *t = out.qs[i];
		if (why != DL_REJECTED && is_cycle(&w, t)) {
			log_debug(
			    "queue '%s': dead-lettering to '%s' would cycle; not delivered there",
			    q->name, t->name);
			continue;
		}
		queue_publish_from(t, c, &token, m->persistent && q->sq ? &from : NULL);
	}
	md->dl_depth--;
	route_out_free(&out);
	message_unref(c);
out:
	work_free(&w);
	return token;
}
