/*
 * key_index.c - see key_index.h.
 */
#include "model/key_index.h"

#include <stdlib.h>
#include <string.h>

#include "model/delayed.h"
#include "model/message.h"
#include "model/queue.h"
#include "util/hmap.h"

/* The entries of one key. */
struct key_entry {
	uint64_t *seqs;
	size_t n, cap;
	uint64_t token;
	size_t len;
	char key[]; /* owned here */
};

void key_index_add(struct queue *q, struct amqp_bytes key, uint64_t seq, uint64_t token)
{
	if (!key.len)
		return;
	if (!q->key_index) {
		q->key_index = malloc(sizeof(*q->key_index));
		if (!q->key_index)
			return;
		hmap_init(q->key_index);
	}
	struct key_entry *e = hmap_get(q->key_index, key.ptr, key.len);
	if (!e) {
		e = calloc(1, sizeof(*e) + key.len);
		if (!e)
			return;
		memcpy(e->key, key.ptr, key.len);
		e->len = key.len;
		if (hmap_put(q->key_index, e->key, e->len, e) < 0) {
			free(e);
			return;
		}
	}
	if (e->n == e->cap) {
		size_t ncap = e->cap ? e->cap * 2 : 1;
		uint64_t *ns = realloc(e->seqs, ncap * sizeof(*ns));
		if (!ns)
			return; /* that entry is not found by its key */
		e->seqs = ns;
		e->cap = ncap;
	}
	e->seqs[e->n++] = seq;
	if (token > e->token)
		e->token = token;
}

static void entry_free(struct queue *q, struct key_entry *e)
{
	hmap_del(q->key_index, e->key, e->len);
	free(e->seqs);
	free(e);
}

void key_index_del(struct queue *q, struct amqp_bytes key, uint64_t seq)
{
	struct key_entry *e = q->key_index ? hmap_get(q->key_index, key.ptr, key.len) : NULL;
	if (!e)
		return;
	for (size_t i = 0; i < e->n; i++)
		if (e->seqs[i] == seq) {
			e->seqs[i] = e->seqs[--e->n];
			break;
		}
	if (!e->n)
		entry_free(q, e);
}

bool key_index_has(const struct queue *q, struct amqp_bytes key, uint64_t *token)
{
	const struct key_entry *e =
	    q->key_index && key.len ? hmap_get(q->key_index, key.ptr, key.len) : NULL;
	if (e && token && e->token > *token)
		*token = e->token;
	return e != NULL;
}

size_t key_index_seqs(const struct queue *q, struct amqp_bytes key, uint64_t *out, size_t cap)
{
	const struct key_entry *e =
	    q->key_index && key.len ? hmap_get(q->key_index, key.ptr, key.len) : NULL;
	size_t n = e ? (e->n < cap ? e->n : cap) : 0;
	if (n)
		memcpy(out, e->seqs, n * sizeof(*out));
	return n;
}

struct amqp_bytes key_index_key(const struct queue *q, const struct message *m)
{
	if (q->holding)
		return delayed_message_id(m);
	return (struct amqp_bytes){m->body, (size_t)m->body_len}; /* a dedup entry */
}

void key_index_left(struct queue *q, const struct message *m, uint64_t seq)
{
	if (q->key_index && m)
		key_index_del(q, key_index_key(q, m), seq);
}

void key_index_restore(struct queue *q, const struct amqp_basic_props *p, struct amqp_bytes body,
                       uint64_t seq)
{
	if (q->holding && (p->flags & AMQP_PROP_MESSAGE_ID))
		key_index_add(q, p->message_id, seq, 0);
	else if (q->dedup_store)
		key_index_add(q, body, seq, 0);
}

void key_index_clear(struct queue *q)
{
	if (!q->key_index)
		return;
	void *v;
	for (size_t i = 0; hmap_next(q->key_index, &i, &v);)
		entry_free(q, v);
}

void key_index_free(struct queue *q)
{
	key_index_clear(q);
	if (q->key_index)
		hmap_free(q->key_index);
	free(q->key_index);
	q->key_index = NULL;
}

bool key_index_next(const struct queue *q, size_t *i, struct amqp_bytes *key, const uint64_t **seqs,
                    size_t *n)
{
	void *v;
	if (!q->key_index || !hmap_next(q->key_index, i, &v))
		return false;
	const struct key_entry *e = v;
	*key = (struct amqp_bytes){(const uint8_t *)e->key, e->len};
	*seqs = e->seqs;
	*n = e->n;
	return true;
}
