/*
 * linger.c - see linger.h.
 */
#include "io/linger.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <stdlib.h>
#include <sys/socket.h>

#include "io/broker.h"

struct conn_linger {
	struct broker *b;
	struct conn_linger *next, *prev;
	struct bufferevent *bev;
	struct event *timer;
};

static void linger_free(struct conn_linger *l)
{
	if (l->prev)
		l->prev->next = l->next;
	else
		l->b->lingering = l->next;
	if (l->next)
		l->next->prev = l->prev;
	if (l->timer)
		event_free(l->timer);
	bufferevent_free(l->bev);
	free(l);
}

static void linger_read_cb(struct bufferevent *bev, void *arg)
{
	(void)arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	evbuffer_drain(in, evbuffer_get_length(in));
}

static void linger_event_cb(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
		linger_free(arg);
}

static void linger_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	linger_free(arg);
}

void linger_socket(struct broker *b, struct bufferevent *bev)
{
	struct conn_linger *l = calloc(1, sizeof(*l));
	evutil_socket_t fd = bufferevent_getfd(bev);
	if (!l || fd < 0 || shutdown(fd, SHUT_WR) < 0 ||
	    !(l->timer = evtimer_new(b->base, linger_timeout_cb, l))) {
		free(l);
		bufferevent_free(bev);
		return;
	}
	l->b = b;
	l->bev = bev;
	linger_read_cb(bev, l);
	bufferevent_setcb(bev, linger_read_cb, NULL, linger_event_cb, l);
	bufferevent_disable(bev, EV_WRITE);
	bufferevent_enable(bev, EV_READ);
	struct timeval tv = {LINGER_MS / 1000, (LINGER_MS % 1000) * 1000};
	evtimer_add(l->timer, &tv);
	l->next = b->lingering;
	if (l->next)
		l->next->prev = l;
	b->lingering = l;
}

void linger_free_all(struct broker *b)
{
	while (b->lingering)
		linger_free(b->lingering);
}
