/*
 * ahttp.h - the "http" user backend (plugin "auth-http"), RabbitMQ's
 * rabbitmq_auth_backend_http: every login and check is a request to an
 * HTTP service that answers "allow" (logins: "allow" and tags) or "deny".
 *
 * Files: auth_http.c  the plugin: options, the backend's callbacks, what
 *                     each request carries, answers;
 *        query.c      form encoding (quote_plus, as RabbitMQ's) and a
 *                     growing string;
 *        http_client.c the HTTP client: its own event_base on a thread of
 *                     its own, fed through a mutex-protected queue;
 *        cache.c      answers kept for cache_ttl ms (RabbitMQ's
 *                     rabbitmq_auth_backend_cache semantics).
 *
 * Threading: the backend's callbacks run on the broker's loop thread; they
 * copy what a request needs into a struct ah_job and queue it
 * (ah_client_submit); the client thread makes the request and answers it
 * with host->complete().  The cache is shared by both (its own mutex).
 * Nothing here blocks the broker's loop.
 *
 * Ownership: a job is the client thread's once submitted; it is freed
 * there after its answer.  Everything is allocated through the host's
 * allocator (any thread).  Passwords: sent to the service only; never
 * logged; the cache keys them by a salted HMAC-SHA256, as RabbitMQ's cache
 * does.
 */
#ifndef AMQPD_AUTH_HTTP_H
#define AMQPD_AUTH_HTTP_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "amqpd/auth.h"
#include "amqpd/plugin.h"

struct event_base;
struct event;
struct evhttp_connection;
struct evhttp_request;

/* The four kinds of request, one URL each. */
enum ah_kind { AH_USER = 0, AH_VHOST = 1, AH_RESOURCE = 2, AH_TOPIC = 3, AH_NKINDS = 4 };

struct ah_url {
	char *text; /* as configured, for log lines (never has credentials) */
	char *host; /* without brackets for an IPv6 literal */
	uint16_t port;
	char *path; /* "/auth/user", may carry a query of its own */
};

/* ---- a growing string (query.c) ---- */
struct ah_str {
	char *p;
	size_t len, cap;
	bool oom;
};

struct ahttp;
void ah_str_init(struct ah_str *s, struct ahttp *a);
void ah_str_add(struct ah_str *s, struct ahttp *a, const char *data, size_t len);
void ah_str_adds(struct ah_str *s, struct ahttp *a, const char *cstr);
/* "&" unless first, key, "=", quote_plus(value[0..len)). */
void ah_str_param(struct ah_str *s, struct ahttp *a, const char *key, const char *value,
                  size_t len);
/* The string (NUL-terminated, owned by the caller now) or NULL out of
 * memory (and s freed). */
char *ah_str_take(struct ah_str *s, struct ahttp *a);
void ah_str_free(struct ah_str *s, struct ahttp *a);
/* RabbitMQ's rabbit_http_util:quote_plus: A-Z a-z 0-9 . - ~ _ stay, space
 * becomes '+', every other byte %XX (upper case). */
void ah_quote_plus(struct ah_str *s, struct ahttp *a, const char *value, size_t len);

/* ---- the cache (cache.c) ---- */
struct ah_cache_entry;
struct ah_cache {
	pthread_mutex_t mu;
	uint64_t ttl_ms; /* 0: no cache */
	size_t max_entries;
	struct ah_cache_entry **buckets;
	size_t nbuckets;
	size_t count;
	/* Insertion order = expiry order (one ttl for all): oldest first. */
	struct ah_cache_entry *oldest, *newest;
	uint64_t hits, misses; /* counted, for tests and debug lines */
};

int ah_cache_init(struct ah_cache *c, struct ahttp *a, uint64_t ttl_ms, size_t max_entries);
void ah_cache_fini(struct ah_cache *c, struct ahttp *a);
/* 1: found (allow and tags, cut to tagslen, filled), 0: not there. */
int ah_cache_get(struct ah_cache *c, struct ahttp *a, const char *key, bool *allow, char *tags,
                 size_t tagslen);
void ah_cache_put(struct ah_cache *c, struct ahttp *a, const char *key, bool allow,
                  const char *tags);
uint64_t ah_now_ms(void); /* CLOCK_MONOTONIC */

/* ---- one request ---- */
struct ah_job {
	struct ah_job *next, *prev; /* queue (next only), then in flight */
	struct ahttp *a;
	enum ah_kind kind;
	amqpd_request *req;
	struct amqpd_auth_result *out; /* AH_USER: the host's result */
	char *query;                   /* form-encoded parameters */
	char *cache_key;               /* NULL: not cached */
	char *what;                    /* "login of user 'bob'", for log lines */
	/* Client thread only. */
	struct evhttp_connection *conn;
	struct evhttp_request *hreq;
	struct event *deadline;
	int http_error; /* enum evhttp_request_error + 1, or 0 */
	bool finished;  /* answered; the connection is freed by the reaper */
};

/* ---- the plugin's state ---- */
struct ahttp {
	amqpd_plugin *self;
	const struct amqpd_host_api *host;
	/* Options. */
	struct ah_url url[AH_NKINDS];
	bool post;
	unsigned timeout_ms;
	bool cache_refusals;
	uint8_t salt[32]; /* for the cache keys of passwords */
	struct ah_cache cache;
	/* The client. */
	struct event_base *base;
	struct event *wake, *reap;
	pthread_t thread;
	bool thread_started;
	pthread_mutex_t mu; /* queue, stopping */
	struct ah_job *queue_head, *queue_tail;
	bool stopping;
	struct ah_job *inflight; /* client thread only */
	struct ah_job *zombies;  /* answered; connection to free (client thread) */
};

void *ah_alloc(struct ahttp *a, size_t n);
void ah_free(struct ahttp *a, void *p);
char *ah_strdup(struct ahttp *a, const char *s);
void ah_job_free(struct ahttp *a, struct ah_job *j);

/* http_client.c.  start: 0, or -1 with why in err. */
int ah_client_start(struct ahttp *a, char *err, size_t errlen);
/* Hand j to the client thread (which answers it).  Loop thread. */
void ah_client_submit(struct ahttp *a, struct ah_job *j);
/* Deny what is queued or in flight, stop and join the thread. */
void ah_client_stop(struct ahttp *a);

/* auth_http.c: the answer to j (allow, or deny with why), given once:
 * writes the login's result, caches, logs, completes.  Client thread.
 * reason: NULL for an explicit allow; for a deny, denied_by_service tells
 * an answer "deny" from a failure. */
void ah_job_answer(struct ahttp *a, struct ah_job *j, bool allow, const char *tags,
                   bool denied_by_service, const char *reason);
/* Parse the service's answer (status, body): fills allow, tags, reason;
 * denied_by_service false for anything but "allow"/"deny". */
void ah_parse_answer(enum ah_kind kind, int status, const char *body, size_t len, bool *allow,
                     bool *denied_by_service, char *tags, size_t tagslen, char *reason,
                     size_t reasonlen);

#endif
