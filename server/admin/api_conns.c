/*
 * api_conns.c - /api/connections (list, get, DELETE closes with the
 * X-Reason header's text), /api/channels, /api/consumers, in RabbitMQ's
 * fields.  Only client connections (the broker's socket adapters) are
 * listed; the API's own engines are not.
 */
#include <event2/http.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/api.h"
#include "admin/rates.h"
#include "io/broker.h"
#include "io/conn_bev.h"
#include "model/queue.h"
#include "model/vhost.h"
#include "session/channel.h"
#include "session/conn.h"
#include "session/login.h"
#include "store/definitions.h"

static bool conn_visible(struct areq *r, const struct conn *c)
{
	if (r->tags & (TAG_ADMIN | TAG_MONITORING))
		return true;
	return strcmp(c->user, r->user) == 0;
}

/* The local end from "peer -> local". */
static void local_end(const struct conn *c, char *host, size_t hl, int *port)
{
	const char *arrow = strstr(c->name, " -> ");
	const char *l = arrow ? arrow + 4 : "";
	const char *colon = strrchr(l, ':');
	size_t n = colon ? (size_t)(colon - l) : strlen(l);
	snprintf(host, hl, "%.*s", (int)n, l);
	*port = colon ? atoi(colon + 1) : 0;
}

static json_t *conn_details(const struct conn *c)
{
	return json_pack("{s:s, s:s, s:i}", "name", c->name, "peer_host", c->peer_addr, "peer_port",
	                 (int)c->peer_port);
}

static json_t *conn_json(struct areq *r, void *item)
{
	struct conn *c = item;
	char host[128];
	int port;
	local_end(c, host, sizeof(host), &port);
	json_t *o = json_object();
	json_object_set_new(o, "name", json_string(c->name));
	json_object_set_new(o, "node", json_string(r->a->node));
	json_object_set_new(o, "type", json_string("network"));
	json_object_set_new(o, "state", json_string(c->blocked ? "blocked" : "running"));
	json_object_set_new(o, "vhost", c->vh ? json_string(c->vh->name) : json_null());
	json_object_set_new(o, "user", json_string(c->user));
	json_object_set_new(o, "user_who_performed_action", json_string(c->user));
	json_object_set_new(o, "protocol", json_string("AMQP 0-9-1"));
	json_object_set_new(o, "auth_mechanism",
	                    json_string(c->auth && c->auth->mech ? "PLAIN" : ""));
	json_object_set_new(o, "peer_host", json_string(c->peer_addr));
	json_object_set_new(o, "peer_port", json_integer(c->peer_port));
	json_object_set_new(o, "host", json_string(host));
	json_object_set_new(o, "port", json_integer(port));
	json_object_set_new(o, "ssl", json_boolean(c->peer_tls));
	json_object_set_new(o, "channels", json_integer(c->nchannels));
	json_object_set_new(o, "channel_max", json_integer(c->channel_max));
	json_object_set_new(o, "frame_max", json_integer((json_int_t)c->frame_max));
	json_object_set_new(o, "timeout", json_integer(c->heartbeat));
	json_object_set_new(o, "connected_at", json_integer(c->connected_at));
	json_object_set_new(o, "recv_oct", json_integer((json_int_t)c->recv_oct));
	json_object_set_new(o, "recv_oct_details", rates_details(c->recv_rate));
	json_object_set_new(o, "send_oct", json_integer((json_int_t)c->send_oct));
	json_object_set_new(o, "send_oct_details", rates_details(c->send_rate));
	/* Its channels' counts, the closed ones' included; rates of the open. */
	struct msg_stats ms = c->closed_stats;
	for (unsigned i = 0; i < c->channels_cap; i++) {
		const struct channel *ch = c->channels[i];
		for (int k = 0; ch && k < MS_COUNT; k++) {
			ms.n[k] += ch->stats.n[k];
			ms.rate[k] += ch->stats.rate[k];
		}
	}
	json_object_set_new(o, "message_stats", rates_message_stats(&ms, false));
	json_t *cp = json_object();
	if (c->client_name)
		json_object_set_new(cp, "connection_name", json_string(c->client_name));
	json_object_set_new(o, "client_properties", cp);
	json_object_set_new(o, "user_provided_name",
	                    c->client_name ? json_string(c->client_name) : json_null());
	return o;
}

static const char *conn_name(void *item)
{
	return ((struct conn *)item)->name;
}

static const char *conn_vhost(void *item)
{
	struct conn *c = item;
	return c->vh ? c->vh->name : "";
}

static const struct alist_type conn_list = {conn_json, conn_name, conn_vhost, NULL, true, true};

/* Items are borrowed: a list is answered before the loop runs again only
 * when paginated; a streamed one may outlive a connection, so whole
 * lists of connections are built at once (they are few). */
static void **collect_conns(struct areq *r, const char *vhost, size_t *n)
{
	size_t cap = r->a->b->nconns + 1, k = 0;
	void **items = calloc(cap, sizeof(*items));
	if (!items) {
		*n = 0;
		return NULL;
	}
	for (struct conn_bev *a = r->a->b->conns; a && k < cap; a = a->next) {
		struct conn *c = a->c;
		if (!c || c->state != CONN_OPEN || !conn_visible(r, c))
			continue;
		if (vhost && (!c->vh || strcmp(c->vh->name, vhost) != 0))
			continue;
		items[k++] = c;
	}
	*n = k;
	return items;
}

/* Borrowed items (connections and channels may go between two chunks):
 * the list is answered in one piece. */
static void reply_now(struct areq *r, const struct alist_type *t, void **items, size_t n)
{
	alist_reply(r, t, items, n);
}

void api_connections_list(struct areq *r)
{
	const char *vhost = NULL;
	if (r->nseg == 4) { /* api/vhosts/{vhost}/connections */
		struct vhost *vh = areq_vhost(r, 2);
		if (!vh)
			return;
		vhost = vh->name;
	}
	size_t n;
	void **items = collect_conns(r, vhost, &n);
	reply_now(r, &conn_list, items, n);
}

static struct conn_bev *find_conn(struct areq *r)
{
	for (struct conn_bev *a = r->a->b->conns; a; a = a->next)
		if (a->c && a->c->state == CONN_OPEN && strcmp(a->c->name, r->seg[2]) == 0 &&
		    conn_visible(r, a->c))
			return a;
	areq_not_found(r);
	return NULL;
}

void api_connection_get(struct areq *r)
{
	struct conn_bev *a = find_conn(r);
	if (a)
		areq_reply_json(r, 200, conn_json(r, a->c));
}

void api_connection_delete(struct areq *r)
{
	struct conn_bev *a = find_conn(r);
	if (!a)
		return;
	const char *why =
	    r->req ? evhttp_find_header(evhttp_request_get_input_headers(r->req), "X-Reason")
	           : NULL;
	conn_force_close(a->c, why ? why : "Closed via management plugin");
	broker_schedule(r->a->b);
	areq_no_content(r);
}

/* ---- channels ---- */

static json_t *channel_json(struct areq *r, void *item)
{
	(void)r;
	struct channel *ch = item;
	struct conn *c = ch->c;
	char name[200];
	snprintf(name, sizeof(name), "%s (%u)", c->name, ch->id);
	json_t *o = json_object();
	json_object_set_new(o, "name", json_string(name));
	json_object_set_new(o, "number", json_integer(ch->id));
	json_object_set_new(o, "node", json_string(r->a->node));
	json_object_set_new(o, "connection_details", conn_details(c));
	json_object_set_new(o, "user", json_string(c->user));
	json_object_set_new(o, "user_who_performed_action", json_string(c->user));
	json_object_set_new(o, "vhost", c->vh ? json_string(c->vh->name) : json_null());
	json_object_set_new(o, "state", json_string("running"));
	json_object_set_new(o, "confirm", json_boolean(ch->confirm));
	json_object_set_new(o, "transactional", json_boolean(ch->tx));
	json_object_set_new(o, "prefetch_count", json_integer(ch->prefetch_consumer));
	json_object_set_new(o, "global_prefetch_count", json_integer(ch->prefetch_global));
	json_object_set_new(o, "consumer_count", json_integer((json_int_t)ch->consumers.count));
	json_object_set_new(o, "messages_unacknowledged", json_integer((json_int_t)ch->ua_count));
	json_object_set_new(o, "messages_unconfirmed", json_integer((json_int_t)ch->cw_count));
	json_object_set_new(o, "messages_uncommitted", json_integer((json_int_t)ch->ntx));
	json_object_set_new(o, "acks_uncommitted", json_integer(0));
	json_object_set_new(o, "message_stats", rates_message_stats(&ch->stats, false));
	return o;
}

static const char *channel_name_of(void *item)
{
	return ((struct channel *)item)->c->name;
}

static const char *channel_vhost(void *item)
{
	struct channel *ch = item;
	return ch->c->vh ? ch->c->vh->name : "";
}

static const struct alist_type channel_list = {
    channel_json, channel_name_of, channel_vhost, NULL, true, true};

static void **collect_channels(struct areq *r, const char *vhost, const struct conn *only,
                               size_t *n)
{
	size_t cap = 64, k = 0;
	void **items = malloc(cap * sizeof(*items));
	for (struct conn_bev *a = r->a->b->conns; items && a; a = a->next) {
		struct conn *c = a->c;
		if (!c || c->state != CONN_OPEN || !conn_visible(r, c) || (only && c != only))
			continue;
		if (vhost && (!c->vh || strcmp(c->vh->name, vhost) != 0))
			continue;
		for (unsigned i = 0; i < c->channels_cap; i++) {
			if (!c->channels[i])
				continue;
			if (k == cap) {
				void **ni = realloc(items, 2 * cap * sizeof(*ni));
				if (!ni)
					break;
				items = ni;
				cap *= 2;
			}
			items[k++] = c->channels[i];
		}
	}
	*n = items ? k : 0;
	return items;
}

void api_channels_list(struct areq *r)
{
	const char *vhost = NULL;
	if (r->nseg == 4) {
		struct vhost *vh = areq_vhost(r, 2);
		if (!vh)
			return;
		vhost = vh->name;
	}
	size_t n;
	void **items = collect_channels(r, vhost, NULL, &n);
	reply_now(r, &channel_list, items, n);
}

void api_connection_channels(struct areq *r)
{
	struct conn_bev *a = find_conn(r);
	if (!a)
		return;
	size_t n;
	void **items = collect_channels(r, NULL, a->c, &n);
	reply_now(r, &channel_list, items, n);
}

void api_channel_get(struct areq *r)
{
	size_t n;
	void **items = collect_channels(r, NULL, NULL, &n);
	for (size_t i = 0; i < n; i++) {
		struct channel *ch = items[i];
		char name[200];
		snprintf(name, sizeof(name), "%s (%u)", ch->c->name, ch->id);
		if (strcmp(name, r->seg[2]) == 0) {
			free(items);
			areq_reply_json(r, 200, channel_json(r, ch));
			return;
		}
	}
	free(items);
	areq_not_found(r);
}

/* ---- consumers ---- */

static json_t *consumer_json(struct areq *r, struct channel *ch, struct consumer *k)
{
	(void)r;
	char name[200];
	snprintf(name, sizeof(name), "%s (%u)", ch->c->name, ch->id);
	json_t *cd = json_pack("{s:s, s:i, s:s, s:s, s:i, s:s}", "name", name, "number", ch->id,
	                       "connection_name", ch->c->name, "peer_host", ch->c->peer_addr,
	                       "peer_port", (int)ch->c->peer_port, "user", ch->c->user);
	json_t *qd = k->q ? json_pack("{s:s, s:s}", "name", k->q->name, "vhost", k->q->vh->name)
	                  : json_null();
	bool active = !k->q || !k->q->conf.single_active || queue_is_active_consumer(k->q, k);
	return json_pack("{s:s#, s:o, s:o, s:b, s:b, s:i, s:i, s:o, s:b, s:s}", "consumer_tag",
	                 k->tag, (int)k->tag_len, "channel_details", cd, "queue", qd,
	                 "ack_required", !k->no_ack, "exclusive", k->exclusive, "prefetch_count",
	                 (int)k->prefetch, "priority", (int)k->priority, "arguments",
	                 definitions_table_json(k->args, k->args_len), "active", active,
	                 "activity_status", active ? "up" : "waiting");
}

void api_consumers_list(struct areq *r)
{
	const char *vhost = NULL;
	if (r->nseg == 3) {
		struct vhost *vh = areq_vhost(r, 2);
		if (!vh)
			return;
		vhost = vh->name;
	}
	size_t n;
	void **items = collect_channels(r, vhost, NULL, &n);
	json_t *arr = json_array();
	for (size_t i = 0; i < n; i++) {
		struct channel *ch = items[i];
		void *v;
		for (size_t j = 0; hmap_next(&ch->consumers, &j, &v);)
			json_array_append_new(arr, consumer_json(r, ch, v));
	}
	free(items);
	areq_reply_json(r, 200, arr);
}
