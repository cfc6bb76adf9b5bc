/*
 * hmap.c - see hmap.h.
 */
#include "util/hmap.h"

#include <stdlib.h>
#include <string.h>

static const char tombstone_mark;
#define HMAP_TOMBSTONE (&tombstone_mark)

void hmap_init(struct hmap *m)
{
	memset(m, 0, sizeof(*m));
}

void hmap_free(struct hmap *m)
{
	free(m->slots);
	hmap_init(m);
}

/* FNV-1a: short keys (names), cheap, good enough spread for a power-of-two
 * table once mixed. */
uint32_t hmap_hash(const void *key, size_t len)
{
	const unsigned char *p = key;
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < len; i++)
		h = (h ^ p[i]) * 16777619u;
	h ^= h >> 15;
	h *= 0x2c1b3c6du;
	h ^= h >> 12;
	return h;
}

static struct hmap_slot *find(const struct hmap *m, const void *key, size_t len, uint32_t h)
{
	if (!m->cap)
		return NULL;
	size_t mask = m->cap - 1;
	for (size_t i = h & mask;; i = (i + 1) & mask) {
		struct hmap_slot *s = &m->slots[i];
		if (!s->key)
			return NULL;
		if (s->key != HMAP_TOMBSTONE && s->hash == h && s->len == len &&
		    memcmp(s->key, key, len) == 0)
			return s;
	}
}

void *hmap_get(const struct hmap *m, const void *key, size_t len)
{
	struct hmap_slot *s = find(m, key, len, hmap_hash(key, len));
	return s ? s->value : NULL;
}

static int grow(struct hmap *m)
{
	size_t ncap = m->cap ? m->cap * 2 : 16;
	if (m->count * 2 < m->cap)
		ncap = m->cap; /* mostly tombstones: rehash in place size */
	struct hmap_slot *ns = calloc(ncap, sizeof(*ns));
	if (!ns)
		return -1;
	for (size_t i = 0; i < m->cap; i++) {
		struct hmap_slot *s = &m->slots[i];
		if (!s->key || s->key == HMAP_TOMBSTONE)
			continue;
		size_t j = s->hash & (ncap - 1);
		while (ns[j].key)
			j = (j + 1) & (ncap - 1);
		ns[j] = *s;
	}
	free(m->slots);
	m->slots = ns;
	m->cap = ncap;
	m->used = m->count;
	return 0;
}

int hmap_put(struct hmap *m, const char *key, size_t len, void *value)
{
	uint32_t h = hmap_hash(key, len);
	struct hmap_slot *s = find(m, key, len, h);
	if (s) {
		s->key = key;
		s->value = value;
		return 0;
	}
	if ((m->used + 1) * 4 >= m->cap * 3 && grow(m) < 0)
		return -1;
	size_t mask = m->cap - 1;
	size_t i = h & mask;
	while (m->slots[i].key && m->slots[i].key != HMAP_TOMBSTONE)
		i = (i + 1) & mask;
	if (!m->slots[i].key)
		m->used++;
	m->slots[i] = (struct hmap_slot){key, len, h, value};
	m->count++;
	return 0;
}

void *hmap_del(struct hmap *m, const void *key, size_t len)
{
	struct hmap_slot *s = find(m, key, len, hmap_hash(key, len));
	if (!s)
		return NULL;
	void *v = s->value;
	s->key = HMAP_TOMBSTONE;
	s->value = NULL;
	m->count--;
	return v;
}

int hmap_next(const struct hmap *m, size_t *iter, void **value)
{
	while (*iter < m->cap) {
		struct hmap_slot *s = &m->slots[(*iter)++];
		if (s->key && s->key != HMAP_TOMBSTONE) {
			*value = s->value;
			return 1;
		}
	}
	return 0;
}
