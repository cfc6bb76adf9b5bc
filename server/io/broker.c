/*
 * broker.c - see broker.h.
 */
#include "io/broker.h"
#include "io/sd_notify.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/statvfs.h>
#include <unistd.h>
#ifdef __GLIBC__ /* malloc_trim */
#include <malloc.h>
#endif

#include "io/conn_bev.h"
#include "io/linger.h"
#include "session/conn.h"
#include "store/definitions.h"
#include "util/log.h"
#include "model/vhost.h"

void broker_config_defaults(struct broker_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->channel_max = 2047;
	cfg->frame_max = 131072;
	cfg->heartbeat = 60;
	cfg->max_message_size = 128ull * 1024 * 1024;
	cfg->handshake_timeout = 10000;
	cfg->consumer_timeout = 1800000; /* RabbitMQ's, 30 minutes */
	cfg->storage = "file";
	auth_config_defaults(&cfg->auth);
	cfg->disk_free_limit = 50ull * 1000 * 1000; /* RabbitMQ: 50MB */
	/* Beyond this, persistent messages of durable queues wait on disk
	 * with only an index entry in memory. */
	cfg->queue_memory_budget = 256ull << 20;
	/* RabbitMQ's vm_memory_high_watermark.relative default, 0.4 of RAM,
	 * applied to message data (the bulk of a broker's memory). */
	long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGESIZE);
	if (pages > 0 && psize > 0)
		cfg->mem_high_watermark = (uint64_t)pages * (uint64_t)psize / 10 * 4;
}

struct vhost *broker_vhost(struct broker *b, const char *name, size_t len)
{
	return model_vhost(&b->model, name, len);
}

const char *broker_alarm_reason(const struct broker *b)
{
	return b->disk_alarm ? "low on disk" : "low on memory";
}

/* An alarm was raised or cleared: block or unblock publishers. */
static void alarm_changed(struct broker *b)
{
	b->alarm_applied = broker_alarm(b);
	b->sess.alarm = broker_alarm(b) ? broker_alarm_reason(b) : NULL;
	for (struct conn_bev *a = b->conns; a; a = a->next) {
		struct conn *c = a->c;
		if (broker_alarm(b)) {
			if (c->publisher)
				conn_block(c);
		} else {
			conn_unblock(c);
		}
	}
}

static void session_schedule_cb(struct session *s)
{
	broker_schedule((struct broker *)((char *)s - offsetof(struct broker, sess)));
}

/* The model's news (model.h): only noted, acted on by the scheduler. */
static void definitions_changed_cb(struct model_observer *o)
{
	struct broker *b = (struct broker *)((char *)o - offsetof(struct broker, obs));
	definitions_changed(&b->defs);
	broker_schedule(b);
}

static void memory_changed_cb(struct model_observer *o)
{
	struct broker *b = (struct broker *)((char *)o - offsetof(struct broker, obs));
	if (b->cfg.mem_high_watermark)
		broker_schedule(b);
}

static void timers_changed_cb(struct model_observer *o);

/* The model's timers (model/timer.h) share one event, armed for the
 * earliest deadline; the model says when that moves. */
static void model_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct broker *b = arg;
	model_timers_run(&b->model, model_now_ms(&b->model));
	/* Re-armed whatever the model says: the loop's clock may wake us a
	 * little before the wall clock reaches the deadline, and then
	 * nothing fired and the earliest deadline did not move. */
	timers_changed_cb(&b->obs);
	broker_schedule(b); /* what the timers did (deliveries, deletions) goes out */
}

static void timers_changed_cb(struct model_observer *o)
{
	struct broker *b = (struct broker *)((char *)o - offsetof(struct broker, obs));
	if (!b->model_timer_ev)
		return;
	uint64_t next = model_timers_next(&b->model);
	if (next == UINT64_MAX) {
		event_del(b->model_timer_ev);
		return;
	}
	uint64_t now = model_now_ms(&b->model);
	uint64_t in = next > now ? next - now + 1 : 0; /* +1: never early by a fraction */
	if (in > 86400000)
		in = 86400000; /* a far deadline: woken daily, re-armed then */
	struct timeval tv = {(time_t)(in / 1000), (suseconds_t)(in % 1000) * 1000};
	event_add(b->model_timer_ev, &tv);
}

/* Phase 4: the memory alarm from the counter (cleared below 90 % of the
 * watermark, so it does not flap), then tell the connections if either
 * alarm changed. */
/* When message memory has fallen 64 MiB below its high point, or to a
 * quarter of it (a queue drained, messages expired), hand the freed heap
 * back to the system: glibc keeps it otherwise, and the broker's RSS
 * would stay at its peak. */
#define TRIM_STEP (64ll << 20)
static void give_back_memory(struct broker *b)
{
	int64_t used = b->model.mem_used;
	if (used > b->mem_high)
		b->mem_high = used;
	/* Also as it nears empty: freed messages are scattered among live
	 * ones (random TTLs), so pages come free mostly at the end. */
	bool fell = b->mem_high - used >= TRIM_STEP ||
	            (b->mem_high >= (16ll << 20) && used <= b->mem_high / 4);
	if (!fell)
		return;
	b->mem_high = used;
#ifdef __GLIBC__
	malloc_trim(0);
#endif
}

static void alarms_evaluate(struct broker *b)
{
	uint64_t hi = b->cfg.mem_high_watermark;
	if (hi && !b->mem_alarm && b->model.mem_used > (int64_t)hi) {
		b->mem_alarm = true;
		log_warning("memory alarm: message data %lld bytes over the high watermark %llu; "
		            "blocking publishers",
		            (long long)b->model.mem_used, (unsigned long long)hi);
	} else if (hi && b->mem_alarm && b->model.mem_used < (int64_t)(hi / 10 * 9)) {
		b->mem_alarm = false;
		log_info("memory alarm cleared");
	}
	if (broker_alarm(b) != b->alarm_applied)
		alarm_changed(b);
	give_back_memory(b);
}

static void sched_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct broker *b = arg;
	b->sched_pending = false;
	session_flush_confirms(&b->sess); /* 1 */
	definitions_flush(&b->defs);      /* 2 */
	storage_maybe_sync(&b->st);       /* 3 */
	alarms_evaluate(b);               /* 4 */
	conn_bev_flush_all(b);            /* 5 */
}

void broker_schedule(struct broker *b)
{
	if (b->sched_pending || !b->sched_ev)
		return;
	b->sched_pending = true;
	/* Active events run in order: this one after every callback the loop
	 * already has ready in this iteration. */
	event_active(b->sched_ev, EV_TIMEOUT, 1);
}

/* RabbitMQ's disk_free_limit: checked every second on the data directory. */
static void disk_check_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct broker *b = arg;
	struct statvfs sv;
	if (!b->cfg.data_dir || statvfs(b->cfg.data_dir, &sv) < 0)
		return;
	uint64_t avail = (uint64_t)sv.f_bavail * sv.f_frsize;
	bool low = avail < b->cfg.disk_free_limit;
	if (low == b->disk_alarm)
		return;
	b->disk_alarm = low;
	broker_schedule(b); /* evaluated and applied with the others */
	if (low)
		log_warning("disk alarm: %llu bytes free on %s, below disk_free_limit %llu; "
		            "blocking publishers",
		            (unsigned long long)avail, b->cfg.data_dir,
		            (unsigned long long)b->cfg.disk_free_limit);
	else
		log_info("disk alarm cleared: %llu bytes free", (unsigned long long)avail);
}

int broker_init(struct broker *b)
{
	/* Storage threads hand results back through event_active(). */
	evthread_use_pthreads();
	/* Precise timers: libevent's default clock is the coarse monotonic
	 * one (4 ms steps here), which made delayed messages and TTLs fire up
	 * to a step late (p99 7.6 ms -> 2.8 ms at 10,000 due per second). */
	struct event_config *ecfg = event_config_new();
	if (ecfg)
		event_config_set_flag(ecfg, EVENT_BASE_FLAG_PRECISE_TIMER);
	b->base = ecfg ? event_base_new_with_config(ecfg) : event_base_new();
	if (ecfg)
		event_config_free(ecfg);
	if (!b->base) {
		log_error("cannot create the event loop");
		return -1;
	}
	if (b->cfg.nlisten_tls) {
		char err[512];
		b->tls_ctx = tls_ctx_new(&b->cfg.tls, err, sizeof(err));
		if (!b->tls_ctx) {
			log_error("TLS: %s; not starting", err);
			return -1;
		}
	}
	model_init(&b->model, &b->plugins);
	b->model.queue_memory_budget = b->cfg.queue_memory_budget;
	b->obs =
	    (struct model_observer){definitions_changed_cb, memory_changed_cb, timers_changed_cb};
	b->model.obs = &b->obs;
	b->defs = (struct definitions){.md = &b->model, .data_dir = b->cfg.data_dir};
	b->defs.no_seed = b->cfg.definitions_file != NULL;
	hmap_init(&b->sess.reply_tokens);
	b->sess.cfg = (struct session_config){b->cfg.channel_max,
	                                      b->cfg.frame_max,
	                                      b->cfg.heartbeat,
	                                      b->cfg.max_message_size,
	                                      b->cfg.handshake_timeout,
	                                      b->cfg.consumer_timeout,
	                                      b->cfg.consumer_timeout_notify};
	b->sess.md = &b->model;
	b->sess.st = &b->st;
	b->sess.schedule = session_schedule_cb;
	snprintf(b->platform, sizeof(b->platform), "C11 / libevent %s", event_get_version());
	b->sess.platform = b->platform;
	b->sched_ev = event_new(b->base, -1, 0, sched_cb, b);
	b->model_timer_ev = event_new(b->base, -1, 0, model_timer_cb, b);
	if (!b->sched_ev || !b->model_timer_ev) {
		log_error("cannot create the scheduler event");
		return -1;
	}
	if (plugin_host_init(&b->plugins, b->base) < 0) {
		log_error("out of memory starting the plugin host");
		return -1;
	}
	for (int i = 0; i < b->cfg.nplugin_opts; i++) {
		char err[300];
		if (plugin_host_add_option(&b->plugins, b->cfg.plugin_opts[i], err, sizeof(err)) <
		    0) {
			log_error("--plugin-opt %s; not starting", err);
			return -1;
		}
	}
	if (plugin_host_load_dir(&b->plugins, b->cfg.plugin_dir) != 0) {
		log_error("plugins could not be loaded from %s; not starting", b->cfg.plugin_dir);
		return -1;
	}
	if (plugin_host_check_options(&b->plugins) != 0) {
		log_error("--plugin-opt for a plugin that is not loaded; not starting");
		return -1;
	}
	hmap_init(&b->sess.user_usage);
	b->sess.auth = b->cfg.auth;
	char aerr[300];
	if (auth_register_mechanisms(&b->plugins, &b->sess.auth) < 0 ||
	    auth_register_internal(&b->plugins, &b->model) < 0)
		return -1;
	if (auth_config_resolve(&b->sess.auth, &b->plugins, aerr, sizeof(aerr)) < 0) {
		log_error("--auth-backends: %s; not starting", aerr);
		return -1;
	}
	/* Start-up order: definitions (and an import), then storage, then
	 * listeners. */
	if (definitions_load(&b->defs) < 0)
		return -1;
	if (b->cfg.definitions_file && definitions_import(&b->defs, b->cfg.definitions_file) < 0) {
		log_error("definitions in %s could not be imported; not starting",
		          b->cfg.definitions_file);
		return -1;
	}
	if (b->cfg.data_dir &&
	    storage_start(&b->st, &b->model, b->cfg.data_dir, b->cfg.storage) < 0)
		return -1;
	/* Save what recovery may have changed (e.g. new store ids). */
	definitions_flush(&b->defs);
	if (b->cfg.data_dir && b->cfg.disk_free_limit) {
		b->disk_timer = event_new(b->base, -1, EV_PERSIST, disk_check_cb, b);
		struct timeval tv = {1, 0};
		if (b->disk_timer)
			event_add(b->disk_timer, &tv);
		disk_check_cb(-1, 0, b);
	}
	return 0;
}

static void force_close_all(struct broker *b)
{
	int64_t now = conn_bev_now();
	for (struct conn_bev *a = b->conns; a; a = a->next) {
		conn_tick(a->c, now); /* the close-ok wait counts from now */
		conn_force_close(a->c, "shutdown");
	}
}

/* Shutdown, every 100 ms: first the storage sync that covers what was
 * already accepted (its confirms go out before the close, so clients do
 * not retry durable messages), then the 320 closes, then exit once every
 * connection has gone.  Each phase gives up after ~5 s. */
static void stop_check_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct broker *b = arg;
	if (!b->stop_closing) {
		bool synced =
		    !b->st.be || (!b->st.sync_in_flight && b->st.write_gen == b->st.synced_gen);
		if (!synced && ++b->stop_ticks <= 50) {
			storage_maybe_sync(&b->st);
			return;
		}
		b->stop_closing = true;
		b->stop_ticks = 0;
		force_close_all(b);
	}
	if (b->nconns == 0 || ++b->stop_ticks > 50)
		event_base_loopexit(b->base, NULL);
}

static void signal_cb(evutil_socket_t sig, short what, void *arg)
{
	(void)what;
	struct broker *b = arg;
	if (b->stopping)
		return;
	b->stopping = true;
	log_info("received %s: shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT");
	for (int i = 0; i < b->nlisteners; i++)
		evconnlistener_free(b->listeners[i]);
	b->nlisteners = 0;
	/* Take nothing more in; finish making durable what was taken. */
	for (struct conn_bev *a = b->conns; a; a = a->next)
		conn_stop_reading(a->c);
	storage_maybe_sync(&b->st);
	b->stop_timer = event_new(b->base, -1, EV_PERSIST, stop_check_cb, b);
	struct timeval tv = {0, 100000};
	if (b->stop_timer)
		event_add(b->stop_timer, &tv);
	else
		event_base_loopexit(b->base, NULL);
	stop_check_cb(-1, 0, b); /* nothing to wait for: close right away */
}

/* SIGHUP: reload the TLS certificate, key and CA.  Connections keep the
 * context they were accepted with; a context that cannot be built leaves
 * the current one in use. */
static void reload_cb(evutil_socket_t sig, short what, void *arg)
{
	(void)sig;
	(void)what;
	struct broker *b = arg;
	if (!b->tls_ctx) {
		log_info("received SIGHUP: nothing to reload (no TLS listener)");
		return;
	}
	char err[512];
	SSL_CTX *ctx = tls_ctx_new(&b->cfg.tls, err, sizeof(err));
	if (!ctx) {
		log_error("received SIGHUP: TLS not reloaded, the current certificate stays "
		          "in use: %s",
		          err);
		return;
	}
	tls_ctx_free(b->tls_ctx);
	b->tls_ctx = ctx;
	log_info("received SIGHUP: TLS certificate %s and key %s reloaded", b->cfg.tls.cert,
	         b->cfg.tls.key);
}

int broker_run(struct broker *b)
{
	signal(SIGPIPE, SIG_IGN);
	b->sig_term = evsignal_new(b->base, SIGTERM, signal_cb, b);
	b->sig_int = evsignal_new(b->base, SIGINT, signal_cb, b);
	b->sig_hup = evsignal_new(b->base, SIGHUP, reload_cb, b);
	if (b->sig_hup)
		evsignal_add(b->sig_hup, NULL);
	if (!b->sig_term || !b->sig_int || evsignal_add(b->sig_term, NULL) < 0 ||
	    evsignal_add(b->sig_int, NULL) < 0) {
		log_error("cannot install signal handlers");
		return 1;
	}
	/* Everything listens (the admin listener opened before this call):
	 * tell systemd (Type=notify). */
	sd_notify_send("READY=1\nSTATUS=accepting connections");
	log_info("server startup complete; %d listener(s) started", b->nlisteners);
	if (event_base_dispatch(b->base) < 0)
		return 1;
	log_info("stopped");
	return 0;
}

void broker_free(struct broker *b)
{
	for (int i = 0; i < b->nlisteners; i++)
		evconnlistener_free(b->listeners[i]);
	b->nlisteners = 0;
	while (b->conns)
		conn_bev_free(b->conns);
	linger_free_all(b);
	definitions_flush(&b->defs);
	b->defs.frozen = true; /* freeing memory is not deleting */
	b->st.stopping = true;
	storage_stop(&b->st, true);
	model_free(&b->model);
	hmap_free(&b->sess.reply_tokens);
	hmap_free(&b->sess.user_usage);
	plugin_host_unload_all(&b->plugins);
	if (b->sig_term)
		event_free(b->sig_term);
	if (b->sig_int)
		event_free(b->sig_int);
	if (b->sig_hup)
		event_free(b->sig_hup);
	if (b->tls_ctx)
		tls_ctx_free(b->tls_ctx);
	b->tls_ctx = NULL;
	if (b->stop_timer)
		event_free(b->stop_timer);
	if (b->disk_timer)
		event_free(b->disk_timer);
	if (b->sched_ev)
		event_free(b->sched_ev);
	b->sched_ev = NULL;
	if (b->model_timer_ev)
		event_free(b->model_timer_ev);
	b->model_timer_ev = NULL;
	if (b->base)
		event_base_free(b->base);
}
