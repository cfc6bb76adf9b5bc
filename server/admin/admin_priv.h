/*
 * admin_priv.h - what the admin API's files share: the server, one HTTP
 * request as it is handled (struct areq), replies and errors in RabbitMQ's
 * shape, the route table, and the list pipeline (alist.c: filter, sort,
 * paginate, columns, answers streamed in chunks).
 *
 * A request's life: admin.c parses the path and the basic-auth header and
 * logs the user in through an in-process engine (aclient.h); once the
 * login answered, the route's handler runs with r->tags known.  Reads
 * answer at once from the model; writes go through the same engine
 * (aop_* in aop.c) and answer when the broker replied.  Every request
 * gets exactly one reply (areq_reply*), after which it is freed.
 *
 * Ownership: the server owns its in-flight requests; a request owns its
 * aclient, its parsed body and its query.  Loop thread only.
 */
#ifndef ADMIN_PRIV_H
#define ADMIN_PRIV_H

#include <event2/keyvalq_struct.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "admin/aclient.h"
#include "admin/admin.h"

struct evhttp;
struct evhttp_request;
struct evhttp_bound_socket;
struct broker;
struct vhost;
struct areq;

#define ADMIN_MAX_SEGS 8

struct admin_server {
	struct broker *b;
	struct admin_config cfg;
	struct evhttp *http[ADMIN_MAX_LISTENERS * 3];
	bool http_metrics_only[ADMIN_MAX_LISTENERS * 3];
	int nhttp;
	SSL_CTX *tls;
	struct areq *reqs;        /* in flight */
	struct event *rate_timer; /* samples the message rates (rates.c) */
	int64_t started_ms;       /* wall clock */
	int64_t last_sample;      /* wall ms of the last rate sample */
	char node[300];           /* "amqpd@host", RabbitMQ's node name */
	/* Broker-wide queue depth at the last sample and its rates. */
	uint64_t prev_ready, prev_unacked;
	double ready_rate, unacked_rate;
};

/* What a user's tags allow, as RabbitMQ's management tags. */
enum admin_tag {
	TAG_MANAGEMENT = 1, /* own vhosts */
	TAG_POLICYMAKER = 2,
	TAG_MONITORING = 4, /* reads of everything */
	TAG_ADMIN = 8,      /* everything */
};

typedef void (*areq_fn)(struct areq *r);

struct route {
	int methods;      /* EVHTTP_REQ_GET | ... */
	const char *path; /* "api/queues/{vhost}/{name}/get"; {x} is any one segment */
	int need;         /* enum admin_tag the handler needs at least (0: any management user) */
	areq_fn fn;
};

struct areq {
	struct admin_server *a;
	struct evhttp_request *req; /* NULL when the client went away */
	struct evhttp_connection *evcon;
	int method;
	char *seg[ADMIN_MAX_SEGS]; /* decoded path segments */
	int nseg;
	struct evkeyvalq query;
	bool query_ok;
	json_t *body; /* parsed lazily by areq_body() */
	char user[256];
	char *password;
	char peer[64];
	uint16_t peer_port;
	int tags; /* enum admin_tag bits */
	const struct route *route;
	struct aclient *ac;
	/* An operation through the engine (aop.c). */
	struct aop *op;
	bool replied;
	/* Called when the request ends, however it ends (api_on_free). */
	void (*cleanup)(void *arg);
	void *cleanup_arg;
	/* A streamed list answer (alist.c). */
	struct alist *list;
	struct areq *next, *prev;
};

/* ---- replies (admin.c) ---- */
/* Reply with status and the JSON document (taken: its reference is
 * dropped).  NULL: no body. */
void areq_reply_json(struct areq *r, int status, json_t *doc);
/* RabbitMQ's error shape: {"error": error, "reason": reason}. */
void areq_error(struct areq *r, int status, const char *error, const char *reason);
void areq_not_found(struct areq *r);
void areq_bad_request(struct areq *r, const char *reason);
void areq_no_content(struct areq *r); /* 204 */
void areq_created(struct areq *r);    /* 201 */
/* A request parameter from the query string, or NULL. */
const char *areq_param(struct areq *r, const char *name);
/* The body as JSON: NULL after replying 400 not_json (bad or missing body
 * when required). An empty body is an empty object. */
json_t *areq_body(struct areq *r);
/* The vhost named in segment i: NULL after replying 404. */
struct vhost *areq_vhost(struct areq *r, int i);
/* May the user see / act on this vhost (administrator, monitoring for
 * reads, or a permission there)? */
bool areq_vhost_visible(struct areq *r, const struct vhost *vh);
void areq_set_header(struct areq *r, const char *name, const char *value);
/* Free the request once replied (called by the reply functions). */
void areq_done(struct areq *r);

/* ---- operations through the engine (aop.c) ---- */
struct aop;
/* Called for every event after the channel opened (the first call has
 * ev == NULL: send the operation now).  Errors (channel or connection
 * closed by the broker) are answered by aop itself, as RabbitMQ's API:
 * 404 not found, 400 bad_request with the text, 401 access refused. */
typedef void (*aop_fn)(struct areq *r, const struct aclient_event *ev, void *data);
/* Open vhost on the request's engine and a channel 1, then fn.  data is
 * freed with free() when the request ends (may be NULL). */
void aop_start(struct areq *r, const char *vhost, aop_fn fn, void *data);
/* The AMQP reply text without its "CODE_NAME - " prefix. */
const char *aop_reason(struct amqp_bytes text, char *buf, size_t len);
void aop_free(struct aop *op);

/* ---- lists (alist.c) ---- */
struct alist_type {
	/* The full JSON object of an item. */
	json_t *(*to_json)(struct areq *r, void *item);
	/* Its name, for the name filter and the default sort. */
	const char *(*name)(void *item);
	/* Its vhost name, or NULL. */
	const char *(*vhost)(void *item);
	/* Release an item (the collector took a reference), or NULL. */
	void (*release)(void *item);
	bool paginate; /* RabbitMQ paginates this list (queues, exchanges, ...) */
	bool borrowed; /* items without references: answered in one piece */
};
/* Answer r with the items: RabbitMQ's filter (name, use_regex), sort
 * (sort, sort_reverse; default vhost then name), pagination (page,
 * page_size) and columns; takes the items array (and the references). */
void alist_reply(struct areq *r, const struct alist_type *t, void **items, size_t n);
void alist_free(struct alist *l);
/* Only the columns (dotted paths) of obj; obj is kept. */
json_t *alist_columns(json_t *obj, const char *columns);

/* ---- handlers ---- */
extern const struct route admin_routes[];
extern const size_t admin_nroutes;

/* JSON helpers (ajson.c). */
json_t *ajson_table(const uint8_t *raw, size_t len); /* AMQP field table -> object */
/* A JSON object -> an AMQP field table (malloc'd into *out); -1 on a value
 * with no AMQP type, with the reason in err. */
int ajson_to_table(json_t *obj, uint8_t **out, size_t *len, char *err, size_t errlen);
json_t *ajson_rate(uint64_t count, double rate); /* {"rate": r} beside a count */
int64_t admin_wall_ms(void);

#endif
