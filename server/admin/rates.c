/*
 * rates.c - the rate sampler and message_stats objects (see rates.h).
 */
#include <event2/event.h>

#include "admin/admin_priv.h"
#include "admin/api.h"
#include "admin/rates.h"
#include "io/broker.h"
#include "model/exchange.h"
#include "model/queue.h"
#include "model/vhost.h"
#include "session/channel.h"
#include "session/conn.h"

static void sample(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct admin_server *a = arg;
	struct broker *b = a->b;
	int64_t now = admin_wall_ms();
	int64_t dt = a->last_sample ? now - a->last_sample : RATES_PERIOD_MS;
	a->last_sample = now;
	msg_stats_sample(&b->model.stats, dt);
	/* Queue depth rates (overview's queue_totals *_details). */
	struct totals t;
	admin_totals(a, &t);
	double sec = dt > 0 ? (double)dt / 1000.0 : 1.0;
	a->ready_rate = ((double)t.ready - (double)a->prev_ready) / sec;
	a->unacked_rate = ((double)t.unacked - (double)a->prev_unacked) / sec;
	a->prev_ready = t.ready;
	a->prev_unacked = t.unacked;
	void *v;
	for (size_t i = 0; hmap_next(&b->model.vhosts, &i, &v);) {
		struct vhost *vh = v;
		void *w;
		for (size_t j = 0; hmap_next(&vh->queues, &j, &w);)
			msg_stats_sample(&((struct queue *)w)->stats, dt);
		for (size_t j = 0; hmap_next(&vh->exchanges, &j, &w);)
			msg_stats_sample(&((struct exchange *)w)->stats, dt);
	}
	for (struct conn *c = b->sess.conns; c; c = c->s_next) {
		for (unsigned k = 0; k < c->channels_cap; k++)
			if (c->channels[k])
				msg_stats_sample(&c->channels[k]->stats, dt);
		c->recv_rate =
		    dt > 0 ? (float)((double)(c->recv_oct - c->recv_prev) * 1000 / dt) : 0;
		c->send_rate =
		    dt > 0 ? (float)((double)(c->send_oct - c->send_prev) * 1000 / dt) : 0;
		c->recv_prev = c->recv_oct;
		c->send_prev = c->send_oct;
	}
}

int rates_start(struct admin_server *a)
{
	a->rate_timer = event_new(a->b->base, -1, EV_PERSIST, sample, a);
	if (!a->rate_timer)
		return -1;
	struct timeval tv = {RATES_PERIOD_MS / 1000, 0};
	a->last_sample = admin_wall_ms();
	return event_add(a->rate_timer, &tv);
}

void rates_stop(struct admin_server *a)
{
	if (a->rate_timer)
		event_free(a->rate_timer);
	a->rate_timer = NULL;
}

json_t *rates_details(double rate)
{
	return json_pack("{s:f}", "rate", rate);
}

static void put(json_t *o, const char *name, uint64_t n, double rate)
{
	char key[64];
	json_object_set_new(o, name, json_integer((json_int_t)n));
	snprintf(key, sizeof(key), "%s_details", name);
	json_object_set_new(o, key, rates_details(rate));
}

json_t *rates_message_stats(const struct msg_stats *s, bool exchange)
{
	json_t *o = json_object();
	static const struct {
		const char *name;
		enum msg_stat k;
	} one[] = {
	    {"publish", MS_PUBLISH},
	    {"publish_in", MS_PUBLISH_IN},
	    {"publish_out", MS_PUBLISH_OUT},
	    {"deliver", MS_DELIVER},
	    {"deliver_no_ack", MS_DELIVER_NO_ACK},
	    {"get", MS_GET},
	    {"get_no_ack", MS_GET_NO_ACK},
	    {"get_empty", MS_GET_EMPTY},
	    {"ack", MS_ACK},
	    {"redeliver", MS_REDELIVER},
	    {"confirm", MS_CONFIRM},
	    {"return_unroutable", MS_RETURN_UNROUTABLE},
	    {"drop_unroutable", MS_DROP_UNROUTABLE},
	};
	for (size_t i = 0; i < sizeof(one) / sizeof(one[0]); i++) {
		enum msg_stat k = one[i].k;
		if (exchange && k == MS_PUBLISH)
			continue;
		if (!exchange && (k == MS_PUBLISH_IN || k == MS_PUBLISH_OUT))
			continue;
		if (s->n[k])
			put(o, one[i].name, s->n[k], s->rate[k]);
	}
	uint64_t dg =
	    s->n[MS_DELIVER] + s->n[MS_DELIVER_NO_ACK] + s->n[MS_GET] + s->n[MS_GET_NO_ACK];
	if (dg)
		put(o, "deliver_get", dg,
		    (double)s->rate[MS_DELIVER] + s->rate[MS_DELIVER_NO_ACK] + s->rate[MS_GET] +
		        s->rate[MS_GET_NO_ACK]);
	return o;
}
