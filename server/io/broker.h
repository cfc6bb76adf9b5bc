/*
 * broker.h - the broker context, the top of the layers (server/README):
 * configuration, the event loop and its end-of-iteration scheduler, the
 * plugin host, the model, the storage and definitions hosts, the session
 * context the connection engines share, listeners (listen.c), connections
 * (conn_bev.h), signals and the alarms.
 *
 * Threading: one event-loop thread owns a struct broker and everything
 * reachable from it.  There are no globals: the layers below get the part
 * of it they need (a struct model, a struct session, a storage host), so a
 * later step can run several loops.
 */
#ifndef BROKER_H
#define BROKER_H

#include <stdbool.h>
#include <stdint.h>

#include "util/hmap.h"
#include "model/model.h"
#include "plugin/plugin_host.h"
#include "session/session.h"
#include "store/definitions.h"
#include "store/storage_host.h"
#include "io/tls.h"

struct event_base;
struct evconnlistener;
struct event;
struct conn_bev;
struct vhost;

#define BROKER_MAX_LISTENERS 16

struct broker_config {
	const char *listen[BROKER_MAX_LISTENERS]; /* "[ADDR:]PORT" */
	int nlisten;
	const char *listen_tls[BROKER_MAX_LISTENERS]; /* amqps: "[ADDR:]PORT" */
	int nlisten_tls;
	struct tls_config tls;
	const char *plugin_dir;
	const char *data_dir;
	const char *pid_file;
	uint16_t channel_max;         /* 2047 */
	uint32_t frame_max;           /* 131072 */
	uint16_t heartbeat;           /* 60 s */
	uint64_t max_message_size;    /* 128 MiB */
	uint32_t handshake_timeout;   /* ms, 10000 */
	uint64_t consumer_timeout;    /* ms, 1800000; 0 = none */
	bool consumer_timeout_notify; /* notify_consumer instead of a 406 close */
	uint64_t mem_high_watermark;  /* bytes of message data; 0 = none */
	const char *storage;          /* storage backend name ("file") */
	uint64_t disk_free_limit;     /* bytes; below it publishers block (50 MB) */
	uint64_t queue_memory_budget; /* message bytes in RAM before paging to disk */
	const char **plugin_opts;     /* "PLUGIN.KEY=VALUE" (--plugin-opt), in order */
	int nplugin_opts;
	struct auth_config auth;      /* --auth-backends, --loopback-users, ... */
	const char *definitions_file; /* --definitions: imported at start */
};

struct broker {
	struct event_base *base;
	struct broker_config cfg;
	struct plugin_host plugins;
	struct model model;        /* vhosts, exchanges, queues, messages */
	struct model_observer obs; /* the model's news: definitions, memory */
	struct definitions defs;
	struct session sess;    /* what the connection engines share */
	struct conn_bev *conns; /* doubly linked through next/prev */
	struct conn_bev *dirty; /* woken engines, serviced in phase 5 */
	unsigned nconns;
	struct conn_linger *lingering; /* sockets of closed connections, draining */
	struct evconnlistener *listeners[BROKER_MAX_LISTENERS * 4];
	SSL_CTX *tls_ctx; /* for amqps listeners; replaced by SIGHUP */
	int nlisteners;
	struct event *sig_term, *sig_int, *sig_hup, *stop_timer;
	bool mem_alarm;     /* over the watermark: publishers blocked */
	int64_t mem_high;   /* message memory at its highest since the last trim */
	bool disk_alarm;    /* free disk below disk_free_limit: publishers blocked */
	bool alarm_applied; /* broker_alarm() as last told to the connections */
	/* The end-of-iteration scheduler (see broker_schedule). */
	struct event *sched_ev;
	bool sched_pending;
	struct event *model_timer_ev; /* the model's earliest timer (model/timer.h) */
	struct event *disk_timer;
	uint64_t next_conn_id;
	bool stopping;
	bool stop_closing; /* shutdown: the 320 closes were sent */
	int stop_ticks;
	int lock_fd;       /* data directory lock, held while running */
	char platform[64]; /* server_properties.platform */
	struct storage_host st;
};

void broker_config_defaults(struct broker_config *cfg);
/* Create the loop, load plugins, create the default vhost.  0 or -1. */
int broker_init(struct broker *b);
/* Open the listeners.  0 or -1 (logged). */
int broker_listen(struct broker *b);
/* Run until SIGTERM/SIGINT and a clean shutdown; returns the exit code. */
int broker_run(struct broker *b);
void broker_free(struct broker *b);
struct vhost *broker_vhost(struct broker *b, const char *name, size_t len);

/*
 * The end-of-iteration scheduler.  Work that is batched per loop iteration
 * is not done where it arises (a read callback, a message freed, a sync
 * completing) but requested with broker_schedule(); once everything the loop
 * found ready in this iteration has run, one callback runs, in this order:
 *   1. confirms flushed: pending publisher confirms (basic.ack multiple)
 *      of every connection that has some;
 *   2. definitions written: durable definitions saved if they changed;
 *   3. group commit started: a storage sync if something is unsynced and
 *      none is running;
 *   4. alarms evaluated: the memory alarm from the message-data counter,
 *      and, if the state (memory or disk) changed, publishers blocked or
 *      unblocked;
 *   5. output moved: every connection engine that has news gets its
 *      requests applied and its output written (io/conn_bev.h), last, so
 *      that what phases 1-4 produced goes out in this iteration too.
 * Requests are idempotent and cheap (a flag, then one event_active per
 * iteration).
 */
void broker_schedule(struct broker *b);

/* Either alarm set: publishers are blocked. */
static inline bool broker_alarm(const struct broker *b)
{
	return b->mem_alarm || b->disk_alarm;
}
/* Why publishers are blocked, for connection.blocked. */
const char *broker_alarm_reason(const struct broker *b);

#endif
