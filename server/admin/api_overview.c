/*
 * api_overview.c - /api/overview, /api/whoami, /api/nodes, the health
 * checks and the aliveness test, as RabbitMQ's management API answers
 * them.
 */
#include <dirent.h>
#include <event2/listener.h>
#include <event2/util.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "admin/api.h"
#include "admin/rates.h"
#include "config.h"
#include "io/broker.h"
#include "io/conn_bev.h"
#include "model/exchange.h"
#include "model/queue.h"
#include "model/user.h"
#include "model/vhost.h"
#include "session/channel.h"
#include "session/conn.h"

uint64_t admin_rss_bytes(void)
{
	FILE *f = fopen("/proc/self/statm", "r");
	unsigned long size = 0, rss = 0;
	if (f) {
		if (fscanf(f, "%lu %lu", &size, &rss) != 2)
			rss = 0;
		fclose(f);
	}
	return (uint64_t)rss * (uint64_t)sysconf(_SC_PAGESIZE);
}

unsigned admin_open_fds(void)
{
	unsigned n = 0;
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		return 0;
	struct dirent *e;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n > 0 ? n - 1 : 0; /* the directory's own fd */
}

uint64_t admin_disk_free(const struct broker *b)
{
	struct statvfs sv;
	if (statvfs(b->cfg.data_dir, &sv) < 0)
		return 0;
	return (uint64_t)sv.f_bavail * sv.f_frsize;
}

void admin_totals(struct admin_server *a, struct totals *t)
{
	memset(t, 0, sizeof(*t));
	void *v;
	for (size_t i = 0; hmap_next(&a->b->model.vhosts, &i, &v);) {
		struct vhost *vh = v;
		t->exchanges += vh->exchanges.count + 1;
		void *w;
		for (size_t j = 0; hmap_next(&vh->queues, &j, &w);) {
			struct queue *q = w;
			if (api_hidden_queue(q))
				continue;
			t->queues++;
			t->consumers += q->nconsumers;
			t->ready += q->count;
			t->unacked += q->unacked;
		}
	}
	for (struct conn_bev *c = a->b->conns; c; c = c->next)
		if (c->c && c->c->state == CONN_OPEN) {
			t->connections++;
			t->channels += c->c->nchannels;
		}
}

static json_t *listeners_json(struct admin_server *a)
{
	json_t *arr = json_array();
	struct broker *b = a->b;
	for (int i = 0; i < b->nlisteners; i++) {
		evutil_socket_t fd = evconnlistener_get_fd(b->listeners[i]);
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);
		if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
			continue;
		char host[128] = "";
		int port = 0;
		if (ss.ss_family == AF_INET) {
			struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
			evutil_inet_ntop(AF_INET, &s4->sin_addr, host, sizeof(host));
			port = ntohs(s4->sin_port);
		} else if (ss.ss_family == AF_INET6) {
			struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
			evutil_inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof(host));
			port = ntohs(s6->sin6_port);
		}
		bool tls = false;
		for (int k = 0; k < b->cfg.nlisten_tls; k++) {
			const char *spec = b->cfg.listen_tls[k];
			const char *colon = strrchr(spec, ':');
			if (atoi(colon ? colon + 1 : spec) == port)
				tls = true;
		}
		json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:i}", "node", a->node,
		                                     "protocol", tls ? "amqp/ssl" : "amqp",
		                                     "ip_address", host, "port", port));
	}
	return arr;
}

void api_overview(struct areq *r)
{
	struct admin_server *a = r->a;
	struct totals t;
	admin_totals(a, &t);
	const struct msg_stats *ms = &a->b->model.stats;
	json_t *qt = json_object();
	json_object_set_new(qt, "messages", json_integer((json_int_t)(t.ready + t.unacked)));
	json_object_set_new(qt, "messages_details", rates_details(a->ready_rate + a->unacked_rate));
	json_object_set_new(qt, "messages_ready", json_integer((json_int_t)t.ready));
	json_object_set_new(qt, "messages_ready_details", rates_details(a->ready_rate));
	json_object_set_new(qt, "messages_unacknowledged", json_integer((json_int_t)t.unacked));
	json_object_set_new(qt, "messages_unacknowledged_details", rates_details(a->unacked_rate));
	json_t *ot =
	    json_pack("{s:I, s:I, s:I, s:I, s:I}", "connections", (json_int_t)t.connections,
	              "channels", (json_int_t)t.channels, "exchanges", (json_int_t)t.exchanges,
	              "queues", (json_int_t)t.queues, "consumers", (json_int_t)t.consumers);
	json_t *types = json_array();
	const char *tn[] = {"direct", "fanout", "topic", "headers", "x-delayed-message"};
	for (size_t i = 0; i < sizeof(tn) / sizeof(tn[0]); i++)
		json_array_append_new(types, json_pack("{s:s, s:s, s:b}", "name", tn[i],
		                                       "description", "", "enabled", true));
	char product[64];
	snprintf(product, sizeof(product), "%s", PACKAGE_VERSION);
	json_t *o = json_object();
	json_object_set_new(o, "management_version", json_string(PACKAGE_VERSION));
	json_object_set_new(o, "rates_mode", json_string("basic"));
	json_object_set_new(o, "exchange_types", types);
	json_object_set_new(o, "product_version", json_string(product));
	json_object_set_new(o, "product_name", json_string("amqpd"));
	json_object_set_new(o, "rabbitmq_version", json_string("3.10.0"));
	json_object_set_new(o, "cluster_name", json_string(a->node));
	json_object_set_new(o, "erlang_version", json_string("none (C)"));
	json_object_set_new(o, "erlang_full_version", json_string("none (amqpd is written in C)"));
	json_object_set_new(o, "disable_stats", json_false());
	json_object_set_new(o, "enable_queue_totals", json_true());
	json_object_set_new(o, "message_stats", rates_message_stats(ms, false));
	json_object_set_new(o, "churn_rates", json_object());
	json_object_set_new(o, "queue_totals", qt);
	json_object_set_new(o, "object_totals", ot);
	json_object_set_new(o, "statistics_db_event_queue", json_integer(0));
	json_object_set_new(o, "node", json_string(a->node));
	json_object_set_new(o, "listeners", listeners_json(a));
	json_object_set_new(o, "contexts", json_array());
	areq_reply_json(r, 200, o);
}

void api_whoami(struct areq *r)
{
	const char *tags = aclient_tags(r->ac);
	areq_reply_json(r, 200,
	                json_pack("{s:s, s:o}", "name", r->user, "tags", api_tags_json(tags)));
}

static json_t *node_json(struct admin_server *a)
{
	struct broker *b = a->b;
	struct rlimit rl = {0};
	getrlimit(RLIMIT_NOFILE, &rl);
	uint64_t limit = b->cfg.mem_high_watermark;
	json_t *o = json_object();
	json_object_set_new(o, "name", json_string(a->node));
	json_object_set_new(o, "type", json_string("disc"));
	json_object_set_new(o, "running", json_true());
	json_object_set_new(o, "being_drained", json_false());
	json_object_set_new(o, "mem_used", json_integer((json_int_t)admin_rss_bytes()));
	json_object_set_new(o, "mem_limit", json_integer((json_int_t)limit));
	json_object_set_new(o, "mem_alarm", json_boolean(b->mem_alarm));
	json_object_set_new(o, "disk_free", json_integer((json_int_t)admin_disk_free(b)));
	json_object_set_new(o, "disk_free_limit", json_integer((json_int_t)b->cfg.disk_free_limit));
	json_object_set_new(o, "disk_free_alarm", json_boolean(b->disk_alarm));
	json_object_set_new(o, "fd_used", json_integer(admin_open_fds()));
	json_object_set_new(o, "fd_total", json_integer((json_int_t)rl.rlim_cur));
	json_object_set_new(o, "sockets_used", json_integer(b->nconns));
	json_object_set_new(o, "sockets_total", json_integer((json_int_t)rl.rlim_cur));
	json_object_set_new(o, "proc_used", json_integer(1));
	json_object_set_new(o, "proc_total", json_integer(1));
	json_object_set_new(o, "processors", json_integer(sysconf(_SC_NPROCESSORS_ONLN)));
	json_object_set_new(o, "uptime", json_integer(admin_wall_ms() - a->started_ms));
	json_object_set_new(o, "run_queue", json_integer(0));
	json_object_set_new(o, "os_pid", json_integer((json_int_t)getpid()));
	json_object_set_new(o, "rates_mode", json_string("basic"));
	json_object_set_new(o, "applications", json_array());
	json_object_set_new(o, "partitions", json_array());
	json_object_set_new(o, "enabled_plugins", json_array());
	return o;
}

void api_nodes(struct areq *r)
{
	json_t *arr = json_array();
	json_array_append_new(arr, node_json(r->a));
	areq_reply_json(r, 200, arr);
}

void api_node(struct areq *r)
{
	if (strcmp(r->seg[2], r->a->node) != 0) {
		areq_not_found(r);
		return;
	}
	areq_reply_json(r, 200, node_json(r->a));
}

void api_extensions(struct areq *r)
{
	areq_reply_json(r, 200, json_array());
}

void api_cluster_name(struct areq *r)
{
	areq_reply_json(r, 200, json_pack("{s:s}", "name", r->a->node));
}

void api_health_ok(struct areq *r)
{
	areq_reply_json(r, 200, json_pack("{s:s}", "status", "ok"));
}

static void alarms(struct areq *r)
{
	struct broker *b = r->a->b;
	if (!b->mem_alarm && !b->disk_alarm) {
		api_health_ok(r);
		return;
	}
	json_t *list = json_array();
	if (b->mem_alarm)
		json_array_append_new(
		    list, json_pack("{s:s, s:s}", "node", r->a->node, "resource", "memory"));
	if (b->disk_alarm)
		json_array_append_new(
		    list, json_pack("{s:s, s:s}", "node", r->a->node, "resource", "disk"));
	areq_reply_json(r, 503,
	                json_pack("{s:s, s:s, s:o}", "status", "failed", "reason",
	                          "resource alarm(s) in effect in the cluster", "alarms", list));
}

void api_health_alarms(struct areq *r)
{
	alarms(r);
}

void api_health_local_alarms(struct areq *r)
{
	alarms(r);
}

static bool listening_on(struct broker *b, int port, bool tls_only, bool plain_only)
{
	for (int i = 0; i < b->cfg.nlisten + b->cfg.nlisten_tls; i++) {
		bool tls = i >= b->cfg.nlisten;
		const char *spec = tls ? b->cfg.listen_tls[i - b->cfg.nlisten] : b->cfg.listen[i];
		const char *colon = strrchr(spec, ':');
		int p = atoi(colon ? colon + 1 : spec);
		if ((port < 0 || p == port) && !(tls_only && !tls) && !(plain_only && tls))
			return true;
	}
	/* No --listen: the default 5672. */
	return b->cfg.nlisten == 0 && !tls_only && (port < 0 || port == 5672);
}

void api_health_port(struct areq *r)
{
	int port = atoi(r->seg[4]);
	if (listening_on(r->a->b, port, false, false)) {
		areq_reply_json(r, 200, json_pack("{s:s, s:i}", "status", "ok", "port", port));
		return;
	}
	char why[128];
	snprintf(why, sizeof(why), "No active listener on port %d", port);
	areq_reply_json(
	    r, 503,
	    json_pack("{s:s, s:s, s:i}", "status", "failed", "reason", why, "missing", port));
}

void api_health_protocol(struct areq *r)
{
	const char *p = r->seg[4];
	bool ok = false;
	if (strcmp(p, "amqp") == 0 || strcmp(p, "amqp091") == 0 || strcmp(p, "amqp0-9-1") == 0)
		ok = listening_on(r->a->b, -1, false, true);
	else if (strcmp(p, "amqps") == 0 || strcmp(p, "amqp/ssl") == 0)
		ok = listening_on(r->a->b, -1, true, false);
	else if (strcmp(p, "http") == 0 || strcmp(p, "https") == 0)
		ok = true;
	if (ok) {
		areq_reply_json(r, 200, json_pack("{s:s, s:s}", "status", "ok", "protocol", p));
		return;
	}
	char why[128];
	snprintf(why, sizeof(why), "No active listener for protocol %s", p);
	areq_reply_json(
	    r, 503, json_pack("{s:s, s:s, s:s}", "status", "failed", "reason", why, "missing", p));
}

/* ---- aliveness test: declare aliveness-test, publish, get ---- */

static void alive_step(struct areq *r, const struct aclient_event *ev, void *data)
{
	int *phase = data;
	if (!ev) {
		struct amqp_method m = {.id = AMQP_QUEUE_DECLARE};
		m.u.queue_declare.queue = amqp_cstr("aliveness-test");
		aclient_method(r->ac, 1, &m);
		return;
	}
	switch (ev->m.id) {
	case AMQP_QUEUE_DECLARE_OK: {
		struct amqp_basic_publish bp = {0};
		bp.routing_key = amqp_cstr("aliveness-test");
		aclient_publish(r->ac, 1, &bp, NULL, amqp_cstr("test_message"));
		struct amqp_method g = {.id = AMQP_BASIC_GET};
		g.u.basic_get.queue = amqp_cstr("aliveness-test");
		g.u.basic_get.no_ack = true;
		aclient_method(r->ac, 1, &g);
		*phase = 1;
		break;
	}
	case AMQP_BASIC_GET_OK:
		if (ev->body.len == 12 && memcmp(ev->body.ptr, "test_message", 12) == 0)
			areq_reply_json(r, 200, json_pack("{s:s}", "status", "ok"));
		else
			areq_reply_json(r, 503,
			                json_pack("{s:s, s:s}", "status", "failed", "reason",
			                          "unexpected message"));
		break;
	case AMQP_BASIC_GET_EMPTY:
		areq_reply_json(r, 503,
		                json_pack("{s:s, s:s}", "status", "failed", "reason",
		                          "the test message did not come back"));
		break;
	}
}

void api_aliveness(struct areq *r)
{
	struct vhost *vh = areq_vhost(r, 2);
	if (!vh)
		return;
	int *phase = calloc(1, sizeof(int));
	if (!phase) {
		areq_error(r, 500, "internal_error", "out of memory");
		return;
	}
	aop_start(r, vh->name, alive_step, phase);
}
