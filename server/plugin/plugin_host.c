/*
 * plugin_host.c - see plugin_host.h.
 */
#include "plugin/plugin_host.h"

#include <dirent.h>
#include <event2/event.h>
#include <dlfcn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/log.h"
#include "plugin/plugin_values.h"

#define CALLS_INITIAL 256 /* preallocated: posting normally never allocates */
#define CALLS_BATCH   64

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
		for (size_t i = 0; i < n; i++)
			batch[i].fn(batch[i].arg);
	}
}

int plugin_host_init(struct plugin_host *h, struct event_base *base)
{
	memset(h, 0, sizeof(*h));
	hmap_init(&h->xtypes);
	pthread_mutex_init(&h->calls_lock, NULL);
	pthread_cond_init(&h->calls_space, NULL);
	h->loop_thread = pthread_self();
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

static void host_log(amqpd_plugin *self, enum amqpd_log_level level, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int lv = level <= AMQPD_LOG_DEBUG ? (int)level : LOG_DEBUG;
	log_vmsg((enum log_level)lv, self && self->d.name ? self->d.name : "plugin", fmt, ap);
	va_end(ap);
}

/* The host is reached through the plugin's own record, so the registry is
 * found from `self`; there is no global. */
static struct plugin_host *owner_host(amqpd_plugin *self);

static int host_register_exchange_type(amqpd_plugin *self, const struct amqpd_exchange_type *t)
{
	struct plugin_host *h = owner_host(self);
	if (!h || !t ||
	    t->struct_size < offsetof(struct amqpd_exchange_type, route) + sizeof(t->route)) {
		log_error("plugin %s: exchange type descriptor too small", self->d.name);
		return -1;
	}
	struct amqpd_exchange_type vt;
	memset(&vt, 0, sizeof(vt));
	memcpy(&vt, t, t->struct_size < sizeof(vt) ? t->struct_size : sizeof(vt));
	if (!vt.name || !*vt.name || strlen(vt.name) > 255 || !vt.create || !vt.destroy ||
	    !vt.bind || !vt.unbind || !vt.route) {
		log_error("plugin %s: exchange type is missing a name or a required callback",
		          self->d.name);
		return -1;
	}
	if (hmap_get(&h->xtypes, vt.name, strlen(vt.name))) {
		log_error("plugin %s: exchange type '%s' is already registered", self->d.name,
		          vt.name);
		return -1;
	}
	struct xtype *x = calloc(1, sizeof(*x));
	if (!x || !(x->name = strdup(vt.name))) {
		free(x);
		return -1;
	}
	x->vt = vt;
	x->vt.name = x->name;
	x->owner = self;
	if (hmap_put(&h->xtypes, x->name, strlen(x->name), x) < 0) {
		free(x->name);
		free(x);
		return -1;
	}
	log_info("exchange type '%s' registered by plugin %s", x->name, self->d.name);
	return 0;
}

static int host_register_storage(amqpd_plugin *self, const struct amqpd_storage_ops *ops)
{
	struct plugin_host *h = owner_host(self);
	size_t need = offsetof(struct amqpd_storage_ops, sync) + sizeof(ops->sync);
	if (!h || !ops || ops->struct_size < need) {
		log_error("plugin %s: storage descriptor too small", self->d.name);
		return -1;
	}
	struct storage_backend *s = calloc(1, sizeof(*s));
	if (!s)
		return -1;
	memcpy(&s->ops, ops, ops->struct_size < sizeof(s->ops) ? ops->struct_size : sizeof(s->ops));
	const struct amqpd_storage_ops *o = &s->ops;
	if (!o->name || !o->start || !o->stop || !o->queue_open || !o->queue_close ||
	    !o->queue_delete || !o->recover || !o->append || !o->ack || !o->sync ||
	    plugin_host_storage(h, o->name) || !(s->name = strdup(o->name))) {
		log_error("plugin %s: storage backend is incomplete or its name is taken",
		          self->d.name);
		free(s);
		return -1;
	}
	s->ops.name = s->name;
	s->owner = self;
	s->next = h->storages;
	h->storages = s;
	log_info("storage backend '%s' registered by plugin %s", s->name, self->d.name);
	return 0;
}

/* Any thread: queue fn(arg) and wake the loop (libevent is evthread-safe). */
static void host_run_on_loop(amqpd_plugin *self, void (*fn)(void *arg), void *arg)
{
	struct plugin_host *h = owner_host(self);
	if (!h || !fn)
		return;
	bool on_loop = pthread_equal(pthread_self(), h->loop_thread);
	pthread_mutex_lock(&h->calls_lock);
	while (h->calls_count == h->calls_cap && calls_grow(h) < 0) {
		if (on_loop) {
			/* The loop cannot wait for itself: run what is queued
			 * now, which makes room, then queue this call. */
			pthread_mutex_unlock(&h->calls_lock);
			log_warning("run_on_loop: out of memory; running queued calls now");
			calls_cb(-1, 0, h);
			pthread_mutex_lock(&h->calls_lock);
		} else {
			event_active(h->calls_ev, 0, 0);
			pthread_cond_wait(&h->calls_space, &h->calls_lock);
		}
	}
	h->calls[(h->calls_head + h->calls_count) % h->calls_cap] = (struct loop_call){fn, arg};
	h->calls_count++;
	pthread_mutex_unlock(&h->calls_lock);
	if (h->calls_ev)
		event_active(h->calls_ev, 0, 0);
}

const struct storage_backend *plugin_host_storage(const struct plugin_host *h, const char *name)
{
	for (const struct storage_backend *s = h->storages; s; s = s->next)
		if (strcmp(s->name, name) == 0)
			return s;
	return NULL;
}

/* Each loaded plugin record is allocated together with a back pointer. */
struct plugin_rec {
	struct amqpd_plugin p;
	struct plugin_host *host;
};

static struct plugin_host *owner_host(amqpd_plugin *self)
{
	return self ? ((struct plugin_rec *)self)->host : NULL;
}

static void fill_api(struct amqpd_host_api *api, uint32_t abi)
{
	memset(api, 0, sizeof(*api));
	api->struct_size = sizeof(*api);
	api->abi_version = abi;
	api->alloc = malloc;
	api->calloc = calloc;
	api->realloc = realloc;
	api->free = free;
	api->log = host_log;
	api->register_exchange_type = host_register_exchange_type;
	api->table_get = plugin_table_get;
	api->table_iter_init = plugin_table_iter_init;
	api->table_next = plugin_table_next;
	api->array_next = plugin_array_next;
	api->value_equal = plugin_value_equal;
	api->register_storage = host_register_storage;
	api->run_on_loop = host_run_on_loop;
}

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
	uint32_t chosen = 0;
	const struct amqpd_plugin_desc *desc =
	    entry(AMQPD_ABI_VERSION_MIN, AMQPD_ABI_VERSION, &chosen);
	if (!desc || chosen < AMQPD_ABI_VERSION_MIN || chosen > AMQPD_ABI_VERSION) {
		log_error("plugin %s refused: ABI mismatch (host offers versions %d..%d, plugin "
		          "chose %u)",
		          path, AMQPD_ABI_VERSION_MIN, AMQPD_ABI_VERSION, chosen);
		dlclose(dl);
		return -1;
	}
	struct plugin_rec *rec = calloc(1, sizeof(*rec));
	if (!rec) {
		dlclose(dl);
		return -1;
	}
	struct amqpd_plugin *p = &rec->p;
	rec->host = h;
	p->dl = dl;
	p->path = strdup(path);
	p->desc = desc;
	memcpy(&p->d, desc, desc->struct_size < sizeof(p->d) ? desc->struct_size : sizeof(p->d));
	p->abi = chosen;
	if (!p->d.name || !p->d.init) {
		log_error("plugin %s refused: descriptor without name or init", path);
		free(p->path);
		free(rec);
		dlclose(dl);
		return -1;
	}
	fill_api(&p->api, chosen);
	p->next = h->plugins;
	h->plugins = p;
	if (p->d.init(p, &p->api) != 0) {
		log_error("plugin %s (%s) refused: init failed", p->d.name, path);
		return -1; /* stays in the list so unload_all cleans up */
	}
	log_info("plugin %s %s loaded from %s (ABI %u)", p->d.name,
	         p->d.version ? p->d.version : "", path, chosen);
	return 0;
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
		names[n++] = strdup(e->d_name);
	}
	closedir(d);
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

const struct xtype *plugin_host_xtype(const struct plugin_host *h, const char *name, size_t len)
{
	return hmap_get(&h->xtypes, name, len);
}

void plugin_host_unload_all(struct plugin_host *h)
{
	void *v;
	for (size_t i = 0; hmap_next(&h->xtypes, &i, &v);) {
		struct xtype *x = v;
		free(x->name);
		free(x);
	}
	hmap_free(&h->xtypes);
	while (h->storages) {
		struct storage_backend *s = h->storages;
		h->storages = s->next;
		free(s->name);
		free(s);
	}
	if (h->calls_ev) {
		calls_cb(-1, 0, h); /* run what is still queued */
		event_free(h->calls_ev);
		h->calls_ev = NULL;
	}
	free(h->calls);
	h->calls = NULL;
	h->calls_cap = h->calls_count = h->calls_head = 0;
	while (h->plugins) {
		struct amqpd_plugin *p = h->plugins;
		h->plugins = p->next;
		if (p->d.fini)
			p->d.fini(p);
			/* Under ASan keep the code mapped so leak reports can symbolize. */
#ifndef __SANITIZE_ADDRESS__
		dlclose(p->dl);
#endif
		free(p->path);
		free((struct plugin_rec *)p);
	}
}
