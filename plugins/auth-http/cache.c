/*
 * cache.c - answers of the HTTP service kept for cache_ttl ms, keyed by
 * the whole request (its kind and parameters, a password replaced by a
 * salted HMAC), as RabbitMQ's rabbitmq_auth_backend_cache keys them by
 * the backend call and its arguments.
 *
 * A chained hash table plus a list in insertion order: every entry lives
 * exactly ttl ms, so the oldest is also the first to expire; a lookup
 * drops expired entries from the old end, and an insert into a full cache
 * drops the oldest.  One mutex: lookups come from the loop thread,
 * inserts from the client thread.
 */
#include <string.h>
#include <time.h>

#include "ahttp.h"

struct ah_cache_entry {
	struct ah_cache_entry *chain;         /* same bucket */
	struct ah_cache_entry *older, *newer; /* insertion order */
	uint64_t hash;
	uint64_t expires_ms;
	bool allow;
	char *tags; /* or NULL */
	char key[];
};

uint64_t ah_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint64_t hash_key(const char *k)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a */
	for (const unsigned char *p = (const unsigned char *)k; *p; p++) {
		h ^= *p;
		h *= 1099511628211ULL;
	}
	return h;
}

int ah_cache_init(struct ah_cache *c, struct ahttp *a, uint64_t ttl_ms, size_t max_entries)
{
	memset(c, 0, sizeof(*c));
	pthread_mutex_init(&c->mu, NULL);
	c->ttl_ms = ttl_ms;
	c->max_entries = max_entries;
	if (!ttl_ms)
		return 0;
	size_t n = 16;
	while (n < max_entries && n < ((size_t)1 << 20))
		n *= 2;
	c->buckets = ah_alloc(a, n * sizeof(*c->buckets));
	if (!c->buckets)
		return -1;
	memset(c->buckets, 0, n * sizeof(*c->buckets));
	c->nbuckets = n;
	return 0;
}

/* Unlink e (lock held) and free it. */
static void drop(struct ah_cache *c, struct ahttp *a, struct ah_cache_entry *e)
{
	struct ah_cache_entry **pp = &c->buckets[e->hash & (c->nbuckets - 1)];
	while (*pp != e)
		pp = &(*pp)->chain;
	*pp = e->chain;
	if (e->older)
		e->older->newer = e->newer;
	else
		c->oldest = e->newer;
	if (e->newer)
		e->newer->older = e->older;
	else
		c->newest = e->older;
	c->count--;
	ah_free(a, e->tags);
	ah_free(a, e);
}

static void expire(struct ah_cache *c, struct ahttp *a, uint64_t now)
{
	while (c->oldest && c->oldest->expires_ms <= now)
		drop(c, a, c->oldest);
}

void ah_cache_fini(struct ah_cache *c, struct ahttp *a)
{
	if (c->buckets) {
		while (c->oldest)
			drop(c, a, c->oldest);
		ah_free(a, c->buckets);
		c->buckets = NULL;
	}
	pthread_mutex_destroy(&c->mu);
}

static struct ah_cache_entry *find(struct ah_cache *c, const char *key, uint64_t h)
{
	for (struct ah_cache_entry *e = c->buckets[h & (c->nbuckets - 1)]; e; e = e->chain)
		if (e->hash == h && strcmp(e->key, key) == 0)
			return e;
	return NULL;
}

int ah_cache_get(struct ah_cache *c, struct ahttp *a, const char *key, bool *allow, char *tags,
                 size_t tagslen)
{
	if (!c->ttl_ms || !key)
		return 0;
	uint64_t h = hash_key(key);
	int found = 0;
	pthread_mutex_lock(&c->mu);
	expire(c, a, ah_now_ms());
	struct ah_cache_entry *e = find(c, key, h);
	if (e) {
		*allow = e->allow;
		if (tags && tagslen) {
			const char *t = e->tags ? e->tags : "";
			size_t n = strlen(t);
			if (n >= tagslen)
				n = tagslen - 1;
			memcpy(tags, t, n);
			tags[n] = 0;
		}
		c->hits++;
		found = 1;
	} else {
		c->misses++;
	}
	pthread_mutex_unlock(&c->mu);
	return found;
}

void ah_cache_put(struct ah_cache *c, struct ahttp *a, const char *key, bool allow,
                  const char *tags)
{
	if (!c->ttl_ms || !key)
		return;
	size_t klen = strlen(key);
	struct ah_cache_entry *e = ah_alloc(a, sizeof(*e) + klen + 1);
	if (!e)
		return; /* not cached: only a later request more */
	memset(e, 0, sizeof(*e));
	memcpy(e->key, key, klen + 1);
	e->hash = hash_key(key);
	e->allow = allow;
	if (tags && *tags) {
		e->tags = ah_strdup(a, tags);
		if (!e->tags) {
			ah_free(a, e);
			return;
		}
	}
	pthread_mutex_lock(&c->mu);
	uint64_t now = ah_now_ms();
	expire(c, a, now);
	struct ah_cache_entry *old = find(c, key, e->hash);
	if (old)
		drop(c, a, old);
	while (c->count >= c->max_entries && c->oldest)
		drop(c, a, c->oldest);
	e->expires_ms = now + c->ttl_ms;
	struct ah_cache_entry **b = &c->buckets[e->hash & (c->nbuckets - 1)];
	e->chain = *b;
	*b = e;
	e->older = c->newest;
	if (c->newest)
		c->newest->newer = e;
	else
		c->oldest = e;
	c->newest = e;
	c->count++;
	pthread_mutex_unlock(&c->mu);
}
