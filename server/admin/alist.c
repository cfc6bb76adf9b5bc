/*
 * alist.c - list answers as RabbitMQ's management API gives them: the name
 * filter (substring, or a regular expression with use_regex=true), sort
 * and sort_reverse (any field, dotted into objects; by default vhost then
 * name), pagination (page, page_size up to 500, with RabbitMQ's counts)
 * and columns.  A whole list is streamed: a chunk of items is turned into
 * JSON only when the previous chunk has gone out, so 50,000 queues never
 * hold the loop for more than a few milliseconds at a time.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <event2/buffer.h>
#include <event2/http.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "admin/admin_priv.h"

#define CHUNK_ITEMS 200

struct alist {
	struct areq *r;
	const struct alist_type *t;
	void **items;
	size_t n, pos;
	char *columns;
	struct evbuffer *buf;
};

void alist_free(struct alist *l)
{
	if (!l)
		return;
	if (l->t->release)
		for (size_t i = 0; i < l->n; i++)
			l->t->release(l->items[i]);
	free(l->items);
	free(l->columns);
	if (l->buf)
		evbuffer_free(l->buf);
	free(l);
}

/* A dotted path into obj ("message_stats.publish"), borrowed or NULL. */
static json_t *path_get(json_t *obj, const char *path)
{
	char key[256];
	while (obj && *path) {
		const char *dot = strchr(path, '.');
		size_t n = dot ? (size_t)(dot - path) : strlen(path);
		if (n >= sizeof(key))
			return NULL;
		memcpy(key, path, n);
		key[n] = 0;
		obj = json_is_object(obj) ? json_object_get(obj, key) : NULL;
		path += n + (dot ? 1 : 0);
	}
	return obj;
}

static void path_set(json_t *out, const char *path, json_t *v)
{
	char key[256];
	for (;;) {
		const char *dot = strchr(path, '.');
		size_t n = dot ? (size_t)(dot - path) : strlen(path);
		if (n >= sizeof(key))
			return;
		memcpy(key, path, n);
		key[n] = 0;
		if (!dot) {
			json_object_set(out, key, v);
			return;
		}
		json_t *sub = json_object_get(out, key);
		if (!sub) {
			sub = json_object();
			json_object_set_new(out, key, sub);
		}
		out = sub;
		path = dot + 1;
	}
}

json_t *alist_columns(json_t *obj, const char *columns)
{
	json_t *out = json_object();
	char *copy = strdup(columns);
	for (char *save = NULL, *c = copy ? strtok_r(copy, ",", &save) : NULL; c;
	     c = strtok_r(NULL, ",", &save)) {
		json_t *v = path_get(obj, c);
		if (v)
			path_set(out, c, v);
	}
	free(copy);
	return out;
}

/* ---- sorting ---- */

struct sort_key {
	void *item;
	const char *vhost, *name;
	json_t *obj; /* only when sorting by another field */
	json_t *v;
};

static int cmp_str(const char *a, const char *b)
{
	return strcmp(a ? a : "", b ? b : "");
}

static int cmp_default(const void *pa, const void *pb)
{
	const struct sort_key *a = pa, *b = pb;
	int c = cmp_str(a->vhost, b->vhost);
	return c ? c : cmp_str(a->name, b->name);
}

static int cmp_value(const void *pa, const void *pb)
{
	const struct sort_key *a = pa, *b = pb;
	json_t *x = a->v, *y = b->v;
	if (json_is_number(x) && json_is_number(y)) {
		double d = json_number_value(x) - json_number_value(y);
		if (d != 0)
			return d < 0 ? -1 : 1;
	} else if (json_is_string(x) && json_is_string(y)) {
		int c = strcmp(json_string_value(x), json_string_value(y));
		if (c)
			return c;
	} else if (!x != !y) {
		return x ? 1 : -1; /* missing first */
	}
	return cmp_default(pa, pb);
}

static bool is_true(const char *s)
{
	return s && strcasecmp(s, "true") == 0;
}

/* ---- output ---- */

static void write_item(struct alist *l, struct evbuffer *out, void *item, bool first)
{
	json_t *o = l->t->to_json(l->r, item);
	if (l->columns) {
		json_t *c = alist_columns(o, l->columns);
		json_decref(o);
		o = c;
	}
	char *s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (!first)
		evbuffer_add(out, ",", 1);
	if (s) {
		evbuffer_add(out, s, strlen(s));
		free(s);
	}
}

static void next_chunk(struct evhttp_connection *evcon, void *arg)
{
	(void)evcon;
	struct alist *l = arg;
	struct areq *r = l->r;
	if (!r->req) {
		r->replied = true;
		areq_done(r);
		return;
	}
	struct evbuffer *out = evbuffer_new();
	size_t stop = l->pos + CHUNK_ITEMS < l->n ? l->pos + CHUNK_ITEMS : l->n;
	for (; l->pos < stop; l->pos++)
		write_item(l, out, l->items[l->pos], l->pos == 0);
	if (l->pos == l->n) {
		evbuffer_add(out, "]", 1);
		evhttp_send_reply_chunk(r->req, out);
		evbuffer_free(out);
		evhttp_send_reply_end(r->req);
		r->replied = true;
		areq_done(r);
		return;
	}
	evhttp_send_reply_chunk_with_cb(r->req, out, next_chunk, l);
	evbuffer_free(out);
}

void alist_reply(struct areq *r, const struct alist_type *t, void **items, size_t n)
{
	struct alist *l = calloc(1, sizeof(*l));
	if (!l) {
		if (t->release)
			for (size_t i = 0; i < n; i++)
				t->release(items[i]);
		free(items);
		areq_error(r, 500, "internal_error", "out of memory");
		return;
	}
	l->r = r;
	l->t = t;
	l->items = items;
	l->n = n;
	r->list = l;
	size_t total = n;
	/* Filter by name. */
	const char *name = areq_param(r, "name");
	if (name && *name) {
		pcre2_code *re = NULL;
		pcre2_match_data *md = NULL;
		if (is_true(areq_param(r, "use_regex"))) {
			int ec;
			PCRE2_SIZE eo;
			re = pcre2_compile((PCRE2_SPTR)name, PCRE2_ZERO_TERMINATED, 0, &ec, &eo,
			                   NULL);
			if (!re) {
				areq_bad_request(r, "invalid regular expression");
				return;
			}
			md = pcre2_match_data_create_from_pattern(re, NULL);
		}
		size_t k = 0;
		for (size_t i = 0; i < l->n; i++) {
			const char *nm = t->name(l->items[i]);
			bool hit =
			    re ? pcre2_match(re, (PCRE2_SPTR)nm, strlen(nm), 0, 0, md, NULL) >= 0
			       : strstr(nm, name) != NULL;
			if (hit)
				l->items[k++] = l->items[i];
			else if (t->release)
				t->release(l->items[i]);
		}
		l->n = k;
		pcre2_match_data_free(md);
		pcre2_code_free(re);
	}
	size_t filtered = l->n;
	/* Sort. */
	const char *sort = areq_param(r, "sort");
	bool reverse = is_true(areq_param(r, "sort_reverse"));
	struct sort_key *keys = l->n ? calloc(l->n, sizeof(*keys)) : NULL;
	if (l->n && !keys) {
		areq_error(r, 500, "internal_error", "out of memory");
		return;
	}
	bool by_field = sort && *sort && strcmp(sort, "name") != 0;
	for (size_t i = 0; i < l->n; i++) {
		keys[i].item = l->items[i];
		keys[i].name = t->name(l->items[i]);
		keys[i].vhost = t->vhost ? t->vhost(l->items[i]) : NULL;
		if (by_field) {
			keys[i].obj = t->to_json(r, l->items[i]);
			keys[i].v = path_get(keys[i].obj, sort);
		}
	}
	if (l->n)
		qsort(keys, l->n, sizeof(*keys), by_field ? cmp_value : cmp_default);
	for (size_t i = 0; i < l->n; i++) {
		l->items[reverse ? l->n - 1 - i : i] = keys[i].item;
		json_decref(keys[i].obj);
	}
	free(keys);
	const char *cols = areq_param(r, "columns");
	if (cols && *cols)
		l->columns = strdup(cols);
	/* One page. */
	const char *page_s = areq_param(r, "page");
	if (t->paginate && page_s) {
		const char *ps = areq_param(r, "page_size");
		char *end;
		long page = strtol(page_s, &end, 10);
		if (*end || page < 1) {
			areq_bad_request(r, "Parameter \"page\" must be a positive integer");
			return;
		}
		long size = 100;
		if (ps) {
			size = strtol(ps, &end, 10);
			if (*end || size < 1) {
				areq_bad_request(
				    r, "Parameter \"page_size\" must be a positive integer");
				return;
			}
			if (size > 500) {
				areq_bad_request(r, "Page size exceeds the maximum of 500");
				return;
			}
		}
		size_t pages = (l->n + (size_t)size - 1) / (size_t)size;
		if (l->n && (size_t)page > pages) {
			areq_bad_request(r, "Page out of range");
			return;
		}
		size_t from = (size_t)(page - 1) * (size_t)size;
		size_t to = from + (size_t)size < l->n ? from + (size_t)size : l->n;
		json_t *arr = json_array();
		for (size_t i = from; i < to; i++) {
			json_t *o = t->to_json(r, l->items[i]);
			if (l->columns) {
				json_t *c = alist_columns(o, l->columns);
				json_decref(o);
				o = c;
			}
			json_array_append_new(arr, o);
		}
		json_t *doc =
		    json_pack("{s:I, s:I, s:o, s:I, s:I, s:I, s:I}", "filtered_count",
		              (json_int_t)filtered, "item_count", (json_int_t)(to - from), "items",
		              arr, "page", (json_int_t)page, "page_count", (json_int_t)pages,
		              "page_size", (json_int_t)size, "total_count", (json_int_t)total);
		areq_reply_json(r, 200, doc);
		return;
	}
	if (!r->req) {
		r->replied = true;
		areq_done(r);
		return;
	}
	if (t->borrowed) {
		struct evbuffer *all = evbuffer_new();
		if (!all) {
			areq_error(r, 500, "internal_error", "out of memory");
			return;
		}
		evbuffer_add(all, "[", 1);
		for (size_t i = 0; i < l->n; i++)
			write_item(l, all, l->items[i], i == 0);
		evbuffer_add(all, "]", 1);
		areq_set_header(r, "Content-Type", "application/json");
		r->replied = true;
		evhttp_send_reply(r->req, 200, "OK", all);
		evbuffer_free(all);
		areq_done(r);
		return;
	}
	/* The whole list, a chunk at a time. */
	evhttp_add_header(evhttp_request_get_output_headers(r->req), "Content-Type",
	                  "application/json");
	evhttp_add_header(evhttp_request_get_output_headers(r->req), "Cache-Control", "no-cache");
	evhttp_send_reply_start(r->req, 200, "OK");
	struct evbuffer *out = evbuffer_new();
	evbuffer_add(out, "[", 1);
	evhttp_send_reply_chunk(r->req, out);
	evbuffer_free(out);
	next_chunk(NULL, l);
}
