/*
 * plugin_host.c - see plugin_host.h.
 *
 * In this file, in order: the run_on_loop ring, logging, the accounting
 * allocator, timers, pending requests (complete), options, registration,
 * loading and unloading, and the wrappers the broker calls plugins through.
 */
#include "plugin/plugin_host.h"
#include "plugin/plugin_auth.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <event2/event.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plugin/plugin_values.h"
#include "util/log.h"

#define CALLS_INITIAL 256 /* preallocated: posting normally never allocates */
#define CALLS_BATCH   64

static bool on_loop(const struct plugin_host *h)
{
	return pthread_equal(pthread_self(), h->loop_thread);
}

/* ---- run_on_loop ------------------------------------------------------- */

/* Run what is queued, in order, a batch at a time (outside the lock, so
 * a callback may post again). */
static void calls_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct plugin_host *h = arg;
	for (;;) {
		struct loop_call batch[CALLS_BATCH];
		size_t n = 0;
		pthread_mutex_lock(&h->calls_lock);
		while (n < CALLS_BATCH && h->calls_count) {
			batch[n++] = h->calls[h->calls_head];
			h->calls_head = (h->calls_head + 1) % h->calls_cap;
			h->calls_count--;
		}
		if (n)
			pthread_cond_broadcast(&h->calls_space);
		pthread_mutex_unlock(&h->calls_lock);
		if (n == 0)
			return;
		for (size_t i = 0; i < n; i++) {
			if (batch[i].fn2)
				batch[i].fn2(batch[i].p->userdata, batch[i].arg);
			else
				batch[i].fn1(batch[i].arg);
		}
		h->calls_run += n;
	}
}

void plugin_host_run_queued(struct plugin_host *h)
{
	calls_cb(-1, 0, h);
}

int plugin_host_init(struct plugin_host *h, struct event_base *base)
{
	memset(h, 0, sizeof(*h));
	hmap_init(&h->xtypes);
	pthread_mutex_init(&h->calls_lock, NULL);
	pthread_cond_init(&h->calls_space, NULL);
	h->loop_thread = pthread_self();
	h->base = base;
	h->calls = malloc(CALLS_INITIAL * sizeof(*h->calls));
	if (!h->calls)
		return -1;
	h->calls_cap = CALLS_INITIAL;
	if (base) {
		h->calls_ev = event_new(base, -1, 0, calls_cb, h);
		if (!h->calls_ev)
			return -1;
	}
	return 0;
}

/* Double the ring (lock held).  0 or -1. */
static int calls_grow(struct plugin_host *h)
{
	size_t ncap = h->calls_cap * 2;
	struct loop_call *n = malloc(ncap * sizeof(*n));
	if (!n)
		return -1;
	for (size_t i = 0; i < h->calls_count; i++)
		n[i] = h->calls[(h->calls_head + i) % h->calls_cap];
	free(h->calls);
	h->calls = n;
	h->calls_cap = ncap;
	h->calls_head = 0;
	return 0;
}

/* Any thread: queue c and wake the loop (libevent is evthread-safe). */
static void calls_post(struct plugin_host *h, struct loop_call c)
{
	bool loop = on_loop(h);
	pthread_mutex_lock(&h->calls_lock);
	while (h->calls_count == h->calls_cap && calls_grow(h) < 0) {
		if (loop) {
			/* The loop cannot wait for itself: run what is queued
			 * now, which makes room, then queue this call. */
			pthread_mutex_unlock(&h->calls_lock);
			log_warning("run_on_loop: out of memory; running queued calls now");
			calls_cb(-1, 0, h);
			pthread_mutex_lock(&h->calls_lock);
		} else {
			if (h->calls_ev)
				event_active(h->calls_ev, 0, 0);
			pthread_cond_wait(&h->calls_space, &h->calls_lock);
		}
	}
	h->calls[(h->calls_head + h->calls_count) % h->calls_cap] = c;
	h->calls_count++;
	pthread_mutex_unlock(&h->calls_lock);
	if (h->calls_ev)
		event_active(h->calls_ev, 0, 0);
}

void plugin_host_post(struct plugin_host *h, void (*fn)(void *arg), void *arg)
{
	calls_post(h, (struct loop_call){fn, NULL, NULL, arg});
}

static amqpd_status host_run_on_loop(amqpd_plugin *self, amqpd_loop_fn fn, void *arg)
{
	if (!self || !fn)
		return AMQPD_ERR_PRECONDITION_FAILED;
	calls_post(self->host, (struct loop_call){NULL, fn, self, arg});
	return AMQPD_OK;
}

void plugin_host_v1_run_on_loop(amqpd_plugin *self, void (*fn)(void *arg), void *arg)
{
	if (self && fn)
		plugin_host_post(self->host, fn, arg);
}

/* ---- logging ------------------------------------------------------------ */

static void host_vlog(amqpd_plugin *self, enum amqpd_log_level level, const char *fmt, va_list ap)
{
	int lv = level <= AMQPD_LOG_DEBUG ? (int)level : LOG_DEBUG;
	log_vmsg((enum log_level)lv, self && self->name ? self->name : "plugin", fmt ? fmt : "",
	         ap);
}

void plugin_host_log(amqpd_plugin *self, enum amqpd_log_level level, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	host_vlog(self, level, fmt, ap);
	va_end(ap);
}

/* A loop-only host function called from another thread: a plugin bug. */
static bool loop_only(amqpd_plugin *self, const char *fn)
{
	if (on_loop(self->host))
		return true;
	log_error("plugin %s: %s called off the loop thread; refused", self->name, fn);
	return false;
}

/* ---- the accounting allocator ------------------------------------------
 * Each block carries its size and owner in front, so free knows what to
 * subtract and a block freed through another plugin is still charged to
 * the right one.  The header keeps malloc's alignment. */

struct mem_hdr {
	_Alignas(max_align_t) size_t size;
	struct amqpd_plugin *owner;
};

static bool alloc_should_fail(struct plugin_host *h)
{
	long n = __atomic_load_n(&h->alloc_fail_after, __ATOMIC_RELAXED);
	return n > 0 && __atomic_sub_fetch(&h->alloc_fail_after, 1, __ATOMIC_RELAXED) == 0;
}

static void mem_charge(struct amqpd_plugin *p, size_t add, size_t sub, int blocks)
{
	uint64_t now;
	if (add >= sub)
		now = __atomic_add_fetch(&p->mem_bytes, (uint64_t)(add - sub), __ATOMIC_RELAXED);
	else
		now = __atomic_sub_fetch(&p->mem_bytes, (uint64_t)(sub - add), __ATOMIC_RELAXED);
	if (blocks > 0)
		__atomic_add_fetch(&p->mem_blocks, 1, __ATOMIC_RELAXED);
	else if (blocks < 0)
		__atomic_sub_fetch(&p->mem_blocks, 1, __ATOMIC_RELAXED);
	uint64_t peak = __atomic_load_n(&p->mem_peak, __ATOMIC_RELAXED);
	while (now > peak && !__atomic_compare_exchange_n(&p->mem_peak, &peak, now, true,
	                                                  __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		;
}

static void *host_alloc(amqpd_plugin *self, size_t size)
{
	if (!self || size > SIZE_MAX - sizeof(struct mem_hdr) || alloc_should_fail(self->host))
		return NULL;
	struct mem_hdr *m = malloc(sizeof(*m) + size);
	if (!m)
		return NULL;
	m->size = size;
	m->owner = self;
	mem_charge(self, size, 0, 1);
	return m + 1;
}

static void *host_calloc(amqpd_plugin *self, size_t n, size_t size)
{
	if (size && n > SIZE_MAX / size)
		return NULL;
	void *p = host_alloc(self, n * size);
	if (p)
		memset(p, 0, n * size);
	return p;
}

static void host_free(amqpd_plugin *self, void *ptr)
{
	if (!ptr)
		return;
	struct mem_hdr *m = (struct mem_hdr *)ptr - 1;
	if (m->owner != self)
		log_error("plugin %s: freed a block of plugin %s (charged to its owner)",
		          self ? self->name : "?", m->owner ? m->owner->name : "?");
	mem_charge(m->owner, 0, m->size, -1);
	free(m);
}

static void *host_realloc(amqpd_plugin *self, void *ptr, size_t size)
{
	if (!ptr)
		return host_alloc(self, size);
	if (!self || size > SIZE_MAX - sizeof(struct mem_hdr) || alloc_should_fail(self->host))
		return NULL;
	struct mem_hdr *m = (struct mem_hdr *)ptr - 1;
	struct amqpd_plugin *owner = m->owner;
	size_t old = m->size;
	struct mem_hdr *n = realloc(m, sizeof(*n) + size);
	if (!n)
		return NULL; /* the old block is untouched */
	n->size = size;
	mem_charge(owner, size, old, 0);
	return n + 1;
}

static amqpd_status host_mem_usage(amqpd_plugin *self, struct amqpd_mem_usage *out)
{
	if (!self || !out || out->struct_size < sizeof(uint32_t))
		return AMQPD_ERR_PRECONDITION_FAILED;
	struct amqpd_mem_usage u;
	plugin_host_mem_usage(self, &u);
	size_t n = out->struct_size < sizeof(u) ? out->struct_size : sizeof(u);
	u.struct_size = (uint32_t)n;
	memcpy(out, &u, n);
	return AMQPD_OK;
}

void plugin_host_mem_usage(const struct amqpd_plugin *p, struct amqpd_mem_usage *out)
{
	memset(out, 0, sizeof(*out));
	out->struct_size = sizeof(*out);
	out->bytes = __atomic_load_n(&p->mem_bytes, __ATOMIC_RELAXED);
	out->blocks = __atomic_load_n(&p->mem_blocks, __ATOMIC_RELAXED);
	out->peak_bytes = __atomic_load_n(&p->mem_peak, __ATOMIC_RELAXED);
}

/* ---- timers ---------------------------------------------------------------- */

struct amqpd_timer {
	struct amqpd_timer *next, *prev; /* the owner's live timers */
	struct amqpd_plugin *p;
	struct event *ev;
	amqpd_timer_fn fn;
	void *arg;
	uint64_t interval_ms;
	bool firing;    /* its callback is running */
	bool cancelled; /* cancelled during its callback: freed after it */
};

static struct timeval ms_tv(uint64_t ms)
{
	struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
	return tv;
}

static void timer_unlink(struct amqpd_timer *t)
{
	if (t->prev)
		t->prev->next = t->next;
	else
		t->p->timers = t->next;
	if (t->next)
		t->next->prev = t->prev;
	t->next = t->prev = NULL;
}

static void timer_free(struct amqpd_timer *t)
{
	event_free(t->ev);
	free(t);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct amqpd_timer *t = arg;
	t->firing = true;
	t->fn(t->p->userdata, t, t->arg);
	t->firing = false;
	if (t->cancelled) {
		timer_free(t); /* unlinked by timer_cancel */
		return;
	}
	if (t->interval_ms) {
		struct timeval tv = ms_tv(t->interval_ms);
		if (event_add(t->ev, &tv) == 0)
			return;
		log_error("plugin %s: cannot re-arm a periodic timer; it stops", t->p->name);
	}
	timer_unlink(t); /* one-shot: its handle dies now */
	timer_free(t);
}

static amqpd_timer *host_timer_start(amqpd_plugin *self, uint64_t delay_ms, uint64_t interval_ms,
                                     amqpd_timer_fn fn, void *arg)
{
	if (!self || !fn || !self->host->base || !loop_only(self, "timer_start"))
		return NULL;
	struct amqpd_timer *t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->p = self;
	t->fn = fn;
	t->arg = arg;
	t->interval_ms = interval_ms;
	t->ev = event_new(self->host->base, -1, 0, timer_cb, t);
	struct timeval tv = ms_tv(delay_ms);
	if (!t->ev || event_add(t->ev, &tv) < 0) {
		if (t->ev)
			event_free(t->ev);
		free(t);
		return NULL;
	}
	t->next = self->timers;
	if (t->next)
		t->next->prev = t;
	self->timers = t;
	return t;
}

static amqpd_status host_timer_cancel(amqpd_plugin *self, amqpd_timer *timer)
{
	if (!self || !loop_only(self, "timer_cancel"))
		return AMQPD_ERR_NOT_ALLOWED;
	/* Look the handle up rather than trust it: a stale one is an error,
	 * not a crash. */
	struct amqpd_timer *t = self->timers;
	while (t && t != timer)
		t = t->next;
	if (!t)
		return AMQPD_ERR_NOT_FOUND;
	timer_unlink(t);
	if (t->firing) {
		t->cancelled = true; /* timer_cb frees it when the callback returns */
		return AMQPD_OK;
	}
	event_del(t->ev);
	timer_free(t);
	return AMQPD_OK;
}

/* ---- pending requests ---------------------------------------------------- */

struct amqpd_request {
	struct plugin_host *h;
	struct amqpd_plugin *p;
	const char *what; /* for log lines: "storage sync" */
	void (*done)(void *ctx, int status);
	void (*done_status)(void *ctx, amqpd_status status); /* or this: the raw status */
	void *ctx;
	amqpd_status status;
	int completed; /* atomic: complete() was called */
};

/* 0 or a negative errno for a status; AMQP errors and statuses that make
 * no sense as an answer become -EIO / -EPROTO. */
static int status_errno(struct amqpd_plugin *p, const char *what, amqpd_status s)
{
	if (s == AMQPD_OK)
		return 0;
	if ((int)s <= (int)AMQPD_ERR_ERRNO_BASE) {
		int e = amqpd_status_errno(s);
		return e > 0 ? -e : -EIO;
	}
	if (AMQPD_IS_ERROR(s))
		return -EIO;
	log_error("plugin %s: %s returned status %d, which it may not; taken as an error", p->name,
	          what, (int)s);
	return -EPROTO;
}

static void request_run(void *arg)
{
	struct amqpd_request *r = arg;
	if (r->done_status)
		r->done_status(r->ctx, r->status);
	else
		r->done(r->ctx, status_errno(r->p, r->what, r->status));
	free(r);
}

struct amqpd_request *plugin_host_request_new(struct plugin_host *h, struct amqpd_plugin *p,
                                              const char *what,
                                              void (*done)(void *ctx, amqpd_status status),
                                              void *ctx)
{
	struct amqpd_request *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->h = h;
	r->p = p;
	r->what = what;
	r->done_status = done;
	r->ctx = ctx;
	return r;
}

bool plugin_host_request_completed(const struct amqpd_request *r)
{
	return __atomic_load_n(&r->completed, __ATOMIC_ACQUIRE) != 0;
}

void plugin_host_complete(amqpd_plugin *self, amqpd_request *req, amqpd_status status)
{
	(void)self; /* the request knows its plugin */
	if (!req)
		return;
	if (__atomic_exchange_n(&req->completed, 1, __ATOMIC_ACQ_REL)) {
		log_error("plugin %s: %s completed twice; ignored",
		          req->p ? req->p->name : "(built in)", req->what);
		return;
	}
	req->status = status;
	/* Always through the loop: never inside the plugin's call. */
	plugin_host_post(req->h, request_run, req);
}

static struct amqpd_request *request_new(const struct storage_backend *be, const char *what,
                                         void (*done)(void *, int), void *ctx)
{
	struct amqpd_request *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->h = be->owner->host;
	r->p = be->owner;
	r->what = what;
	r->done = done;
	r->ctx = ctx;
	return r;
}

/* ---- options ------------------------------------------------------------------ */

int plugin_option_check(const char *spec, char *err, size_t errlen)
{
	const char *dot = strchr(spec, '.');
	const char *eq = strchr(spec, '=');
	if (!dot || !eq || eq < dot) {
		snprintf(err, errlen, "'%s' is not PLUGIN.KEY=VALUE (%s)", spec,
		         !dot || (eq && eq < dot) ? "no '.' after the plugin name" : "no '='");
		return -1;
	}
	if (dot == spec || eq == dot + 1) {
		snprintf(err, errlen, "'%s' is not PLUGIN.KEY=VALUE (empty %s)", spec,
		         dot == spec ? "plugin name" : "key");
		return -1;
	}
	return 0;
}

int plugin_host_add_option(struct plugin_host *h, const char *spec, char *err, size_t errlen)
{
	if (plugin_option_check(spec, err, errlen) < 0)
		return -1;
	const char *dot = strchr(spec, '.');
	const char *eq = strchr(spec, '=');
	struct plugin_option *n = realloc(h->opts, (h->nopts + 1) * sizeof(*n));
	if (!n) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	h->opts = n;
	struct plugin_option *o = &h->opts[h->nopts];
	memset(o, 0, sizeof(*o));
	o->plugin = strndup(spec, (size_t)(dot - spec));
	o->key = strndup(dot + 1, (size_t)(eq - dot - 1));
	o->value = strdup(eq + 1);
	if (!o->plugin || !o->key || !o->value) {
		free(o->plugin);
		free(o->key);
		free(o->value);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	h->nopts++;
	return 0;
}

int plugin_host_check_options(const struct plugin_host *h)
{
	int rc = 0;
	for (size_t i = 0; i < h->nopts; i++) {
		const struct plugin_option *o = &h->opts[i];
		if (o->used)
			continue;
		char names[512] = "";
		size_t len = 0;
		for (const struct amqpd_plugin *p = h->plugins; p; p = p->next) {
			int n = snprintf(names + len, sizeof(names) - len, "%s%s", len ? ", " : "",
			                 p->name);
			if (n < 0 || (size_t)n >= sizeof(names) - len)
				break;
			len += (size_t)n;
		}
		log_error("--plugin-opt %s.%s=%s: no plugin named '%s' is loaded (loaded: %s)",
		          o->plugin, o->key, o->value, o->plugin, len ? names : "none");
		rc = -1;
	}
	return rc;
}

/* ---- registration ----------------------------------------------------------- */

/* Take a copied, complete vtable into the registry (chained after others
 * of its name).  Owns x on success. */
static int xtype_add(struct plugin_host *h, amqpd_plugin *self, struct xtype *x)
{
	struct xtype *first = hmap_get(&h->xtypes, x->name, strlen(x->name));
	x->owner = self;
	if (first) {
		if (self->abi < 2 || first->owner->abi < 2) {
			log_error(
			    "plugin %s: exchange type '%s' is already registered by plugin %s",
			    self->name, x->name, first->owner->name);
			return -1;
		}
		struct xtype *last = first;
		while (last->next_same)
			last = last->next_same;
		last->next_same = x;
		x->head = first;
		log_info("exchange type '%s' registered by plugin %s too: asked when %s "
		         "declines",
		         x->name, self->name, last->owner->name);
		return 0;
	}
	x->head = x;
	if (hmap_put(&h->xtypes, x->name, strlen(x->name), x) < 0)
		return -1;
	log_info("exchange type '%s' registered by plugin %s", x->name, self->name);
	return 0;
}

static struct xtype *xtype_new(const char *name)
{
	struct xtype *x = calloc(1, sizeof(*x));
	if (!x || !(x->name = strdup(name))) {
		free(x);
		return NULL;
	}
	return x;
}

static void xtype_free(struct xtype *x)
{
	free(x->v1);
	free(x->name);
	free(x);
}

static amqpd_status host_register_exchange_type(amqpd_plugin *self,
                                                const struct amqpd_exchange_type *t)
{
	if (!self || !loop_only(self, "register_exchange_type"))
		return AMQPD_ERR_NOT_ALLOWED;
	if (!t || t->struct_size < offsetof(struct amqpd_exchange_type, route) + sizeof(t->route)) {
		log_error("plugin %s: exchange type descriptor too small", self->name);
		return AMQPD_ERR_PRECONDITION_FAILED;
	}
	struct amqpd_exchange_type vt;
	memset(&vt, 0, sizeof(vt));
	memcpy(&vt, t, t->struct_size < sizeof(vt) ? t->struct_size : sizeof(vt));
	if (!vt.name || !*vt.name || strlen(vt.name) > 255 || !vt.create || !vt.destroy ||
	    !vt.bind || !vt.unbind || !vt.route) {
		log_error("plugin %s: exchange type is missing a name or a required callback",
		          self->name);
		return AMQPD_ERR_PRECONDITION_FAILED;
	}
	struct xtype *x = xtype_new(vt.name);
	if (!x)
		return AMQPD_ERR_ERRNO(ENOMEM);
	x->vt = vt;
	x->vt.name = x->name;
	if (xtype_add(self->host, self, x) < 0) {
		xtype_free(x);
		return AMQPD_ERR_PRECONDITION_FAILED;
	}
	return AMQPD_OK;
}

int plugin_host_register_v1_xtype(amqpd_plugin *self, const struct amqpd_v1_exchange_type *t)
{
	if (!self || !t ||
	    t->struct_size < offsetof(struct amqpd_v1_exchange_type, route) + sizeof(t->route)) {
		log_error("plugin %s: exchange type descriptor too small", self ? self->name : "?");
		return -1;
	}
	struct v1_xtype *rec = calloc(1, sizeof(*rec));
	if (!rec)
		return -1;
	memcpy(&rec->vt1, t, t->struct_size < sizeof(rec->vt1) ? t->struct_size : sizeof(rec->vt1));
	const struct amqpd_v1_exchange_type *v = &rec->vt1;
	if (!v->name || !*v->name || strlen(v->name) > 255 || !v->create || !v->destroy ||
	    !v->bind || !v->unbind || !v->route) {
		log_error("plugin %s: exchange type is missing a name or a required callback",
		          self->name);
		free(rec);
		return -1;
	}
	struct xtype *x = xtype_new(v->name);
	if (!x) {
		free(rec);
		return -1;
	}
	x->v1 = rec;
	plugin_v1_exchange_adapters(&x->vt);
	rec->vt1.name = x->name;
	x->vt.name = x->name;
	if (!rec->vt1.validate)
		x->vt.validate = NULL;
	if (!rec->vt1.validate_binding)
		x->vt.validate_binding = NULL;
	if (xtype_add(self->host, self, x) < 0) {
		xtype_free(x);
		return -1;
	}
	return 0;
}

/* Take a copied storage vtable into the registry.  Owns s on success. */
static int storage_add(struct plugin_host *h, amqpd_plugin *self, struct storage_backend *s)
{
	const struct amqpd_storage_ops *o = &s->ops;
	if (!o->name || !*o->name || !o->start || !o->stop || !o->queue_open || !o->queue_close ||
	    !o->queue_delete || !o->recover || !o->append || !o->ack || !o->sync) {
		log_error("plugin %s: storage backend is incomplete", self->name);
		return -1;
	}
	if (plugin_host_storage(h, o->name)) {
		log_error("plugin %s: storage backend '%s' is already registered", self->name,
		          o->name);
		return -1;
	}
	if (!(s->name = strdup(o->name)))
		return -1;
	s->ops.name = s->name;
	s->owner = self;
	s->next = h->storages;
	h->storages = s;
	log_info("storage backend '%s' registered by plugin %s", s->name, self->name);
	return 0;
}

static amqpd_status host_register_storage(amqpd_plugin *self, const struct amqpd_storage_ops *ops)
{
	if (!self || !loop_only(self, "register_storage"))
		return AMQPD_ERR_NOT_ALLOWED;
	size_t need = offsetof(struct amqpd_storage_ops, sync) + sizeof(ops->sync);
	if (!ops || ops->struct_size < need) {
		log_error("plugin %s: storage descriptor too small", self->name);
		return AMQPD_ERR_PRECONDITION_FAILED;
	}
	struct storage_backend *s = calloc(1, sizeof(*s));
	if (!s)
		return AMQPD_ERR_ERRNO(ENOMEM);
	memcpy(&s->ops, ops, ops->struct_size < sizeof(s->ops) ? ops->struct_size : sizeof(s->ops));
	if (storage_add(self->host, self, s) < 0) {
		free(s);
		return AMQPD_ERR_PRECONDITION_FAILED;
	}
	return AMQPD_OK;
}

int plugin_host_register_v1_storage(amqpd_plugin *self, const struct amqpd_v1_storage_ops *ops)
{
	size_t need = offsetof(struct amqpd_v1_storage_ops, sync) + sizeof(ops->sync);
	if (!self || !ops || ops->struct_size < need) {
		log_error("plugin %s: storage descriptor too small", self ? self->name : "?");
		return -1;
	}
	struct storage_backend *s = calloc(1, sizeof(*s));
	struct v1_storage *rec = s ? calloc(1, sizeof(*rec)) : NULL;
	if (!rec) {
		free(s);
		return -1;
	}
	memcpy(&rec->ops1, ops,
	       ops->struct_size < sizeof(rec->ops1) ? ops->struct_size : sizeof(rec->ops1));
	rec->host = self->host;
	rec->owner = self;
	s->v1 = rec;
	plugin_v1_storage_adapters(rec, &s->ops);
	if (storage_add(self->host, self, s) < 0) {
		free(rec);
		free(s);
		return -1;
	}
	rec->ops1.name = s->name;
	return 0;
}

const struct storage_backend *plugin_host_storage(const struct plugin_host *h, const char *name)
{
	for (const struct storage_backend *s = h->storages; s; s = s->next)
		if (strcmp(s->name, name) == 0)
			return s;
	return NULL;
}

/* ---- loading ----------------------------------------------------------------- */

static void fill_api(struct amqpd_host_api *api)
{
	memset(api, 0, sizeof(*api));
	api->struct_size = sizeof(*api);
	api->abi_version = 2;
	api->log = plugin_host_log;
	api->vlog = host_vlog;
	api->alloc = host_alloc;
	api->calloc = host_calloc;
	api->realloc = host_realloc;
	api->free = host_free;
	api->mem_usage = host_mem_usage;
	api->register_exchange_type = host_register_exchange_type;
	api->register_storage = host_register_storage;
	api->table_get = plugin_table_get;
	api->table_iter_init = plugin_table_iter_init;
	api->table_next = plugin_table_next;
	api->array_next = plugin_array_next;
	api->value_equal = plugin_value_equal;
	api->run_on_loop = host_run_on_loop;
	api->timer_start = host_timer_start;
	api->timer_cancel = host_timer_cancel;
	api->complete = plugin_host_complete;
	api->register_sasl_mechanism = plugin_auth_register_mechanism;
	api->register_auth_backend = plugin_auth_register_backend;
	api->auth_invalidate = plugin_auth_invalidate;
}

/* Init a version 2 plugin with the options naming it.  0 or -1 (logged). */
static int init_v2(struct plugin_host *h, struct amqpd_plugin *p)
{
	size_t n = 0;
	for (size_t i = 0; i < h->nopts; i++)
		n += strcmp(h->opts[i].plugin, p->name) == 0;
	struct amqpd_option *opts = n ? calloc(n, sizeof(*opts)) : NULL;
	if (n && !opts) {
		log_error("plugin %s (%s) refused: out of memory", p->name, p->path);
		return -1;
	}
	n = 0;
	for (size_t i = 0; i < h->nopts; i++) {
		if (strcmp(h->opts[i].plugin, p->name) == 0) {
			h->opts[i].used = true;
			opts[n].key = h->opts[i].key;
			opts[n].value = h->opts[i].value;
			n++;
		}
	}
	char err[256] = "";
	void *ud = NULL;
	amqpd_status s = p->d.init(p, &p->api, opts, n, &ud, err, sizeof(err));
	free(opts);
	if (s != AMQPD_OK) {
		if (s == AMQPD_PENDING || s == AMQPD_DECLINED || !AMQPD_IS_ERROR(s))
			log_error(
			    "plugin %s (%s) refused: init returned status %d, which it may not",
			    p->name, p->path, (int)s);
		else
			log_error("plugin %s (%s) refused: init failed: %s", p->name, p->path,
			          err[0] ? err : "(no reason given)");
		p->userdata = ud; /* what it registered is torn down at unload */
		return -1;
	}
	p->userdata = ud;
	return 0;
}

/* dl_close: dlclose(dl) unless it is NULL (a built-in entry). */
static void dl_close(void *dl)
{
	if (dl)
		dlclose(dl);
}

static int load_entry(struct plugin_host *h, const char *path, void *dl,
                      amqpd_plugin_entry_fn entry);

int plugin_host_load(struct plugin_host *h, const char *path)
{
	void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!dl) {
		log_error("plugin %s refused: cannot load: %s", path, dlerror());
		return -1;
	}
	amqpd_plugin_entry_fn entry;
	*(void **)&entry = dlsym(dl, AMQPD_PLUGIN_ENTRY_SYMBOL);
	if (!entry) {
		log_error("plugin %s refused: no entry symbol '%s'", path,
		          AMQPD_PLUGIN_ENTRY_SYMBOL);
		dlclose(dl);
		return -1;
	}
	return load_entry(h, path, dl, entry);
}

int plugin_host_load_entry(struct plugin_host *h, const char *label, amqpd_plugin_entry_fn entry)
{
	return load_entry(h, label, NULL, entry);
}

/* Negotiate, copy the descriptor, init.  On failure dl is closed. */
static int load_entry(struct plugin_host *h, const char *path, void *dl,
                      amqpd_plugin_entry_fn entry)
{
	uint32_t chosen = 0;
	const struct amqpd_plugin_desc *desc =
	    entry(AMQPD_ABI_VERSION_MIN, AMQPD_ABI_VERSION, &chosen);
	if (!desc || chosen < AMQPD_ABI_VERSION_MIN || chosen > AMQPD_ABI_VERSION) {
		log_error("plugin %s refused: ABI mismatch (host offers versions %d..%d, plugin "
		          "chose %u)",
		          path, AMQPD_ABI_VERSION_MIN, AMQPD_ABI_VERSION, chosen);
		dl_close(dl);
		return -1;
	}
	struct amqpd_plugin *p = calloc(1, sizeof(*p));
	if (!p || !(p->path = strdup(path))) {
		free(p);
		dl_close(dl);
		return -1;
	}
	p->host = h;
	p->dl = dl;
	p->abi = chosen;
	/* The descriptor's first members are the same in every version. */
	if (chosen == 1) {
		const struct amqpd_v1_plugin_desc *d1 = (const void *)desc;
		memcpy(&p->d1, d1,
		       d1->struct_size < sizeof(p->d1) ? d1->struct_size : sizeof(p->d1));
		p->name = p->d1.name;
	} else {
		memcpy(&p->d, desc,
		       desc->struct_size < sizeof(p->d) ? desc->struct_size : sizeof(p->d));
		p->name = p->d.name;
	}
	bool has_init = chosen == 1 ? p->d1.init != NULL : p->d.init != NULL;
	if (!p->name || !*p->name || !has_init || strchr(p->name, '.') || strchr(p->name, '=')) {
		log_error("plugin %s refused: descriptor without a name (one without '.' and '=') "
		          "or init",
		          path);
		free(p->path);
		free(p);
		dl_close(dl);
		return -1;
	}
	if (plugin_host_find(h, p->name)) {
		log_error("plugin %s refused: a plugin named '%s' is already loaded", path,
		          p->name);
		free(p->path);
		free(p);
		dl_close(dl);
		return -1;
	}
	p->next = h->plugins;
	h->plugins = p;
	/* From here on it stays in the list, so unload_all cleans up. */
	if (chosen == 1) {
		for (size_t i = 0; i < h->nopts; i++) {
			if (strcmp(h->opts[i].plugin, p->name) == 0) {
				h->opts[i].used = true;
				log_error("plugin %s (%s) refused: it speaks ABI 1, which has no "
				          "options, and got --plugin-opt %s.%s",
				          p->name, path, p->name, h->opts[i].key);
				return -1;
			}
		}
		plugin_v1_fill_api(&p->api1);
		if (p->d1.init(p, &p->api1) != 0) {
			log_error("plugin %s (%s) refused: init failed", p->name, path);
			return -1;
		}
	} else {
		fill_api(&p->api);
		if (init_v2(h, p) < 0)
			return -1;
	}
	p->inited = true;
	const char *version = chosen == 1 ? p->d1.version : p->d.version;
	log_info("plugin %s %s loaded from %s (ABI %u)", p->name, version ? version : "", path,
	         chosen);
	return 0;
}

struct amqpd_plugin *plugin_host_find(const struct plugin_host *h, const char *name)
{
	for (struct amqpd_plugin *p = h->plugins; p; p = p->next)
		if (strcmp(p->name, name) == 0)
			return p;
	return NULL;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int plugin_host_load_dir(struct plugin_host *h, const char *dir)
{
	DIR *d = opendir(dir);
	if (!d) {
		log_error("plugin directory %s: cannot open", dir);
		return -1;
	}
	char **names = NULL;
	size_t n = 0, cap = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		size_t len = strlen(e->d_name);
		if (len < 4 || strcmp(e->d_name + len - 3, ".so") != 0)
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			char **nn = realloc(names, cap * sizeof(*nn));
			if (!nn)
				break;
			names = nn;
		}
		if (!(names[n] = strdup(e->d_name)))
			break;
		n++;
	}
	closedir(d);
	if (n)
		qsort(names, n, sizeof(*names), cmp_str);
	int rc = 0;
	for (size_t i = 0; i < n; i++) {
		char path[4096];
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		if (rc == 0 && plugin_host_load(h, path) != 0)
			rc = -1;
		free(names[i]);
	}
	free(names);
	return rc;
}

void plugin_host_unload_all(struct plugin_host *h)
{
	/* Run what is still queued while everything it may touch is there. */
	calls_cb(-1, 0, h);
	/* fini every plugin (its timers cancelled first) while the call ring
	 * and the registries still exist: a plugin answering what it has in
	 * flight from fini (host->complete, any thread) posts to the ring. */
	for (struct amqpd_plugin *p = h->plugins; p; p = p->next) {
		unsigned ntimers = 0;
		while (p->timers) {
			struct amqpd_timer *t = p->timers;
			timer_unlink(t);
			event_del(t->ev);
			timer_free(t);
			ntimers++;
		}
		if (ntimers)
			log_debug("plugin %s: %u timers cancelled at unload", p->name, ntimers);
		if (p->inited) {
			if (p->abi == 1 && p->d1.fini)
				p->d1.fini(p);
			else if (p->abi >= 2 && p->d.fini)
				p->d.fini(p, p->userdata);
			p->inited = false;
		}
	}
	/* The answers fini gave. */
	calls_cb(-1, 0, h);
	void *v;
	for (size_t i = 0; hmap_next(&h->xtypes, &i, &v);) {
		struct xtype *x = v;
		while (x) {
			struct xtype *next = x->next_same;
			xtype_free(x);
			x = next;
		}
	}
	hmap_free(&h->xtypes);
	plugin_auth_free_all(h);
	while (h->storages) {
		struct storage_backend *s = h->storages;
		h->storages = s->next;
		if (s->v1)
			free(s->v1->scratch);
		free(s->v1);
		free(s->name);
		free(s);
	}
	if (h->calls_ev) {
		calls_cb(-1, 0, h); /* run what is still queued */
		event_free(h->calls_ev);
		h->calls_ev = NULL;
	} else {
		calls_cb(-1, 0, h);
	}
	free(h->calls);
	h->calls = NULL;
	h->calls_cap = h->calls_count = h->calls_head = 0;
	while (h->plugins) {
		struct amqpd_plugin *p = h->plugins;
		h->plugins = p->next;
		struct amqpd_mem_usage u;
		plugin_host_mem_usage(p, &u);
		if (u.blocks)
			log_warning(
			    "plugin %s: %llu bytes in %llu blocks still allocated at unload "
			    "(peak %llu bytes)",
			    p->name, (unsigned long long)u.bytes, (unsigned long long)u.blocks,
			    (unsigned long long)u.peak_bytes);
		else if (p->abi >= 2)
			log_debug("plugin %s: all memory given back (peak %llu bytes)", p->name,
			          (unsigned long long)u.peak_bytes);
			/* Under ASan keep the code mapped so leak reports can symbolize. */
#ifndef __SANITIZE_ADDRESS__
		dl_close(p->dl);
#endif
		free(p->path);
		free(p);
	}
	for (size_t i = 0; i < h->nopts; i++) {
		free(h->opts[i].plugin);
		free(h->opts[i].key);
		free(h->opts[i].value);
	}
	free(h->opts);
	h->opts = NULL;
	h->nopts = 0;
}

/* ---- exchange-type wrappers ---------------------------------------------------- */

const struct xtype *plugin_host_xtype(const struct plugin_host *h, const char *name, size_t len)
{
	return hmap_get(&h->xtypes, name, len);
}

static void *xt_ud(const struct xtype *t)
{
	return t->v1 ? (void *)t->v1 : t->owner->userdata;
}

/* An error status as a reply code, with a reason in err when it has none. */
static uint16_t xt_error(const struct xtype *t, const char *what, amqpd_status s, char *err,
                         size_t errlen)
{
	uint16_t code = amqpd_status_reply_code(s);
	if (code < 300 || code > 599) {
		log_error("plugin %s: exchange type '%s': %s returned status %d, which it may not",
		          t->owner->name, t->name, what, (int)s);
		code = 541;
		snprintf(err, errlen, "exchange type '%s' failed", t->name);
	} else if (amqpd_status_errno(s)) {
		snprintf(err, errlen, "exchange type '%s': %s: %s", t->name, what,
		         strerror(amqpd_status_errno(s)));
	} else if (!err[0]) {
		snprintf(err, errlen, "refused by exchange type '%s'", t->name);
	}
	return code;
}

uint16_t plugin_xtype_create(const struct xtype **tp, struct amqpd_table_view args,
                             struct amqpd_exchange_state **state, char *err, size_t errlen)
{
	err[0] = 0;
	*state = NULL;
	for (const struct xtype *t = *tp; t; t = t->next_same) {
		amqpd_status s = AMQPD_OK;
		if (t->vt.validate)
			s = t->vt.validate(xt_ud(t), args, err, errlen);
		if (s == AMQPD_OK)
			s = t->vt.create(xt_ud(t), state, args);
		if (s == AMQPD_DECLINED) {
			*state = NULL;
			err[0] = 0;
			continue;
		}
		if (s != AMQPD_OK)
			return xt_error(t, "declare", s, err, errlen);
		*tp = t;
		return 0;
	}
	snprintf(err, errlen, "no plugin of exchange type '%s' accepts these arguments",
	         (*tp)->name);
	return 406; /* a channel error, as any other refused argument */
}

void plugin_xtype_destroy(const struct xtype *t, struct amqpd_exchange_state *state)
{
	t->vt.destroy(xt_ud(t), state);
}

uint16_t plugin_xtype_validate(const struct xtype *t, struct amqpd_table_view args, char *err,
                               size_t errlen)
{
	err[0] = 0;
	amqpd_status s = t->vt.validate ? t->vt.validate(xt_ud(t), args, err, errlen) : AMQPD_OK;
	return s == AMQPD_OK || s == AMQPD_DECLINED ? 0 : xt_error(t, "validate", s, err, errlen);
}

uint16_t plugin_xtype_validate_binding(const struct xtype *t, struct amqpd_exchange_state *state,
                                       const struct amqpd_binding *b, char *err, size_t errlen)
{
	err[0] = 0;
	amqpd_status s = AMQPD_OK;
	if (t->vt.validate_binding)
		s = t->vt.validate_binding(xt_ud(t), state, b, err, errlen);
	return s == AMQPD_OK ? 0 : xt_error(t, "bind", s, err, errlen);
}

uint16_t plugin_xtype_bind(const struct xtype *t, struct amqpd_exchange_state *state,
                           const struct amqpd_binding *b, char *err, size_t errlen)
{
	uint16_t rc = plugin_xtype_validate_binding(t, state, b, err, errlen);
	if (rc)
		return rc;
	amqpd_status s = t->vt.bind(xt_ud(t), state, b);
	return s == AMQPD_OK ? 0 : xt_error(t, "bind", s, err, errlen);
}

void plugin_xtype_unbind(const struct xtype *t, struct amqpd_exchange_state *state,
                         const struct amqpd_binding *b)
{
	t->vt.unbind(xt_ud(t), state, b);
}

void plugin_xtype_route(const struct xtype *t, struct amqpd_exchange_state *state,
                        const struct amqpd_route_msg *msg, amqpd_route_emit_fn emit, void *emit_ctx)
{
	amqpd_status s = t->vt.route(xt_ud(t), state, msg, emit, emit_ctx);
	if (s != AMQPD_OK && s != AMQPD_DECLINED)
		log_warning("plugin %s: exchange type '%s': route failed (status %d); "
		            "delivered to what it had matched",
		            t->owner->name, t->name, (int)s);
}

/* ---- storage wrappers --------------------------------------------------------------- */

static void *be_ud(const struct storage_backend *be)
{
	return be->v1 ? (void *)be->v1 : be->owner->userdata;
}

static int be_rc(const struct storage_backend *be, const char *what, amqpd_status s)
{
	return status_errno(be->owner, what, s);
}

int plugin_storage_start(const struct storage_backend *be, amqpd_store **store, const char *dir,
                         bool *clean, char *err, size_t errlen)
{
	*store = NULL;
	amqpd_status s = be->ops.start(be_ud(be), store, dir, clean, err, errlen);
	if (s != AMQPD_OK && !err[0])
		snprintf(err, errlen, "status %d", (int)s);
	return be_rc(be, "start", s);
}

void plugin_storage_stop(const struct storage_backend *be, amqpd_store *store, bool clean)
{
	be->ops.stop(be_ud(be), store, clean);
	/* stop() completed its in-flight sync; let the host hear of it now. */
	calls_cb(-1, 0, be->owner->host);
}

int plugin_storage_queue_open(const struct storage_backend *be, amqpd_store *store, const char *qid,
                              amqpd_store_queue **q)
{
	*q = NULL;
	int rc = be_rc(be, "queue_open", be->ops.queue_open(be_ud(be), store, qid, q));
	return rc == 0 && !*q ? -EPROTO : rc;
}

void plugin_storage_queue_close(const struct storage_backend *be, amqpd_store_queue *q)
{
	be->ops.queue_close(be_ud(be), q);
}

int plugin_storage_queue_delete(const struct storage_backend *be, amqpd_store *store,
                                const char *qid)
{
	return be_rc(be, "queue_delete", be->ops.queue_delete(be_ud(be), store, qid));
}

int plugin_storage_queue_list(const struct storage_backend *be, amqpd_store *store,
                              void (*fn)(void *ctx, const char *qid), void *ctx)
{
	if (!be->ops.queue_list)
		return -ENOTSUP;
	return be_rc(be, "queue_list", be->ops.queue_list(be_ud(be), store, fn, ctx));
}

int plugin_storage_recover(const struct storage_backend *be, amqpd_store_queue *q,
                           amqpd_stored_msg_fn fn, void *ctx)
{
	return be_rc(be, "recover", be->ops.recover(be_ud(be), q, fn, ctx));
}

int plugin_storage_append(const struct storage_backend *be, amqpd_store_queue *q, uint64_t seq,
                          const struct amqpd_iov *iov, int iovcnt)
{
	if (iovcnt < 0 || (iovcnt && !iov))
		return -EINVAL;
	return be_rc(be, "append", be->ops.append(be_ud(be), q, seq, iov, iovcnt));
}

int plugin_storage_ack(const struct storage_backend *be, amqpd_store_queue *q, uint64_t seq)
{
	return be_rc(be, "ack", be->ops.ack(be_ud(be), q, seq));
}

int plugin_storage_delivered(const struct storage_backend *be, amqpd_store_queue *q, uint64_t seq)
{
	if (!be->ops.delivered)
		return -ENOTSUP;
	return be_rc(be, "delivered", be->ops.delivered(be_ud(be), q, seq));
}

int plugin_storage_read(const struct storage_backend *be, amqpd_store_queue *q, uint64_t seq,
                        amqpd_stored_msg_fn fn, void *ctx)
{
	if (!be->ops.read)
		return -ENOTSUP;
	return be_rc(be, "read", be->ops.read(be_ud(be), q, seq, fn, ctx));
}

int plugin_storage_sync(const struct storage_backend *be, amqpd_store *store,
                        void (*done)(void *ctx, int status), void *ctx)
{
	if (!done)
		return -EINVAL;
	struct amqpd_request *r = request_new(be, "storage sync", done, ctx);
	if (!r)
		return -ENOMEM;
	amqpd_status s = be->ops.sync(be_ud(be), store, r);
	if (s == AMQPD_PENDING)
		return 0;
	if (s == AMQPD_OK) {
		plugin_host_complete(be->owner, r, AMQPD_OK); /* durable already */
		return 0;
	}
	int rc = be_rc(be, "sync", s);
	if (__atomic_load_n(&r->completed, __ATOMIC_ACQUIRE)) {
		/* Completed although it did not say PENDING: the completion is
		 * queued and owns the request. */
		log_error("plugin %s: storage sync completed a request it refused",
		          be->owner->name);
		return 0;
	}
	free(r);
	return rc ? rc : -EPROTO;
}

static int optional_rc(const struct storage_backend *be, const char *what, amqpd_status s)
{
	return s == AMQPD_DECLINED ? -ENOTSUP : be_rc(be, what, s);
}

int plugin_storage_purge(const struct storage_backend *be, amqpd_store_queue *q)
{
	if (!be->ops.purge)
		return -ENOTSUP;
	return optional_rc(be, "purge", be->ops.purge(be_ud(be), q));
}

int plugin_storage_compact(const struct storage_backend *be, amqpd_store *store)
{
	if (!be->ops.compact)
		return -ENOTSUP;
	return optional_rc(be, "compact", be->ops.compact(be_ud(be), store));
}

int plugin_storage_stats(const struct storage_backend *be, amqpd_store *store,
                         struct amqpd_storage_stats *out)
{
	if (!be->ops.stats)
		return -ENOTSUP;
	return optional_rc(be, "stats", be->ops.stats(be_ud(be), store, out));
}
