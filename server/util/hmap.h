/*
 * hmap.h - a hash map from byte-string keys to pointers (open addressing,
 * linear probing, tombstones).
 *
 * Ownership: the map does not copy keys; a key must stay valid (usually it
 * is the name inside the object stored as value) while it is in the map.
 * Not thread-safe: owned by whoever owns the objects (the loop thread).
 */
#ifndef HMAP_H
#define HMAP_H

#include <stddef.h>
#include <stdint.h>

struct hmap_slot {
	const char *key; /* NULL = empty; HMAP_TOMBSTONE = deleted */
	size_t len;
	uint32_t hash;
	void *value;
};

struct hmap {
	struct hmap_slot *slots;
	size_t cap; /* power of two, or 0 */
	size_t count;
	size_t used; /* count + tombstones */
};

void hmap_init(struct hmap *m);
void hmap_free(struct hmap *m);
uint32_t hmap_hash(const void *key, size_t len);
void *hmap_get(const struct hmap *m, const void *key, size_t len);
/* Insert or replace; 0 or -1 (out of memory). */
int hmap_put(struct hmap *m, const char *key, size_t len, void *value);
/* Remove; returns the value that was there, or NULL. */
void *hmap_del(struct hmap *m, const void *key, size_t len);

/* Iterate: `for (size_t i = 0; hmap_next(m, &i, &v);)`.  Do not insert
 * while iterating; deleting the current entry is allowed. */
int hmap_next(const struct hmap *m, size_t *iter, void **value);

#endif
