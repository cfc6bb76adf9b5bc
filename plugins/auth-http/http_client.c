/*
 * http_client.c - the HTTP client of the http backend: an event_base of
 * its own, run on a thread of its own, with libevent's evhttp client.
 *
 * The loop thread queues jobs (ah_client_submit: a mutex-protected list,
 * then event_active on the `wake` event); the client thread takes them,
 * opens one evhttp connection per request, and gives each a deadline of
 * request_timeout ms (an event of its own, so that a service trickling
 * bytes cannot hold a login longer; evhttp's own timeout, a little
 * longer, only backs it up).  A request that answers, fails or runs out of
 * time is answered once (ah_job_answer) and becomes a zombie: its
 * connection cannot be freed inside evhttp's callback, so the `reap`
 * event frees it just after.
 *
 * Stopping (ah_client_stop, from fini): the flag is set and the thread
 * woken; it denies what is queued and in flight, frees it, and breaks its
 * loop; then the thread is joined.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/thread.h>

#include "ahttp.h"

static void reap_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct ahttp *a = arg;
	while (a->zombies) {
		struct ah_job *j = a->zombies;
		a->zombies = j->next;
		if (j->conn)
			evhttp_connection_free(j->conn);
		j->conn = NULL;
		if (j->deadline)
			event_free(j->deadline);
		j->deadline = NULL;
		ah_job_free(a, j);
	}
}

/* Answer j once and hand it to the reaper.  Client thread. */
static void finish(struct ah_job *j, bool allow, const char *tags, bool by_service,
                   const char *reason)
{
	struct ahttp *a = j->a;
	if (j->finished)
		return;
	j->finished = true;
	j->hreq = NULL;
	if (j->deadline)
		event_del(j->deadline);
	if (j->prev)
		j->prev->next = j->next;
	else if (a->inflight == j)
		a->inflight = j->next;
	if (j->next)
		j->next->prev = j->prev;
	j->prev = NULL;
	ah_job_answer(a, j, allow, tags, by_service, reason);
	j->next = a->zombies;
	a->zombies = j;
	event_active(a->reap, 0, 0);
}

static const char *error_text(int e)
{
	switch (e - 1) {
	case EVREQ_HTTP_TIMEOUT:
		return "timed out";
	case EVREQ_HTTP_EOF:
		return "the connection closed before an answer";
	case EVREQ_HTTP_INVALID_HEADER:
		return "an invalid HTTP answer";
	case EVREQ_HTTP_BUFFER_ERROR:
		return "a connection error";
	case EVREQ_HTTP_REQUEST_CANCEL:
		return "cancelled";
	case EVREQ_HTTP_DATA_TOO_LONG:
		return "an answer too long";
	default:
		return "no answer (connection refused or closed)";
	}
}

static void http_error_cb(enum evhttp_request_error e, void *arg)
{
	struct ah_job *j = arg;
	j->http_error = (int)e + 1;
}

static void http_done_cb(struct evhttp_request *req, void *arg)
{
	struct ah_job *j = arg;
	struct ahttp *a = j->a;
	if (j->finished)
		return;
	char reason[256];
	int code = req ? evhttp_request_get_response_code(req) : 0;
	if (code == 0) {
		snprintf(reason, sizeof(reason), "%s from %s", error_text(j->http_error),
		         a->url[j->kind].text);
		finish(j, false, NULL, false, reason);
		return;
	}
	char body[4096];
	size_t n = 0;
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	if (in) {
		n = evbuffer_get_length(in);
		if (n > sizeof(body))
			n = sizeof(body);
		if (evbuffer_copyout(in, body, n) < 0)
			n = 0;
	}
	bool allow = false, by_service = false;
	char tags[256];
	char why[200];
	ah_parse_answer(j->kind, code, body, n, &allow, &by_service, tags, sizeof(tags), why,
	                sizeof(why));
	if (allow) {
		finish(j, true, tags, true, NULL);
		return;
	}
	if (by_service)
		snprintf(reason, sizeof(reason), "%s", why);
	else
		snprintf(reason, sizeof(reason), "%s from %s", why, a->url[j->kind].text);
	finish(j, false, NULL, by_service, reason);
}

static void deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct ah_job *j = arg;
	struct ahttp *a = j->a;
	if (j->finished)
		return;
	/* Frees the request without calling its callbacks. */
	if (j->conn)
		evhttp_connection_free(j->conn);
	j->conn = NULL;
	char reason[256];
	snprintf(reason, sizeof(reason), "no answer within %u ms from %s", a->timeout_ms,
	         a->url[j->kind].text);
	finish(j, false, NULL, false, reason);
}

static void start_job(struct ahttp *a, struct ah_job *j)
{
	const struct ah_url *u = &a->url[j->kind];
	char reason[256];
	j->next = a->inflight;
	j->prev = NULL;
	if (a->inflight)
		a->inflight->prev = j;
	a->inflight = j;

	j->deadline = evtimer_new(a->base, deadline_cb, j);
	j->conn = evhttp_connection_base_new(a->base, NULL, u->host, u->port);
	struct ah_str uri;
	ah_str_init(&uri, a);
	ah_str_adds(&uri, a, u->path);
	if (!a->post) {
		ah_str_adds(&uri, a, strchr(u->path, '?') ? "&" : "?");
		ah_str_adds(&uri, a, j->query);
	}
	char *uri_s = ah_str_take(&uri, a);
	if (!j->deadline || !j->conn || !uri_s) {
		ah_free(a, uri_s);
		snprintf(reason, sizeof(reason), "out of memory for a request to %s", u->text);
		finish(j, false, NULL, false, reason);
		return;
	}
	struct timeval tv = {(time_t)(a->timeout_ms / 1000),
	                     (suseconds_t)(a->timeout_ms % 1000) * 1000};
	struct timeval tv_lib = tv;
	tv_lib.tv_sec += 1; /* the deadline event answers first */
	evhttp_connection_set_timeout_tv(j->conn, &tv_lib);
	evhttp_connection_set_retries(j->conn, 0);
	evhttp_connection_set_max_body_size(j->conn, 65536);
	evtimer_add(j->deadline, &tv);

	struct evhttp_request *r = evhttp_request_new(http_done_cb, j);
	if (!r) {
		ah_free(a, uri_s);
		snprintf(reason, sizeof(reason), "out of memory for a request to %s", u->text);
		finish(j, false, NULL, false, reason);
		return;
	}
	evhttp_request_set_error_cb(r, http_error_cb);
	struct evkeyvalq *hdr = evhttp_request_get_output_headers(r);
	char host[300];
	if (strchr(u->host, ':'))
		snprintf(host, sizeof(host), "[%s]:%u", u->host, (unsigned)u->port);
	else
		snprintf(host, sizeof(host), "%s:%u", u->host, (unsigned)u->port);
	evhttp_add_header(hdr, "Host", host);
	if (a->post) {
		evhttp_add_header(hdr, "Content-Type", "application/x-www-form-urlencoded");
		evbuffer_add(evhttp_request_get_output_buffer(r), j->query, strlen(j->query));
	}
	j->hreq = r;
	int rc = evhttp_make_request(j->conn, r, a->post ? EVHTTP_REQ_POST : EVHTTP_REQ_GET, uri_s);
	ah_free(a, uri_s);
	if (rc != 0) {
		/* Already answered if evhttp failed it through its callback. */
		snprintf(reason, sizeof(reason), "could not send a request to %s", u->text);
		finish(j, false, NULL, false, reason);
	}
}

static void deny_all(struct ahttp *a, struct ah_job *queued)
{
	while (queued) {
		struct ah_job *j = queued;
		queued = j->next;
		j->next = j->prev = NULL;
		j->finished = true;
		ah_job_answer(a, j, false, NULL, false, "the broker is stopping");
		ah_job_free(a, j);
	}
	while (a->inflight) {
		struct ah_job *j = a->inflight;
		if (j->conn)
			evhttp_connection_free(j->conn);
		j->conn = NULL;
		finish(j, false, NULL, false, "the broker is stopping");
	}
	reap_cb(-1, 0, a);
}

static void wake_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct ahttp *a = arg;
	pthread_mutex_lock(&a->mu);
	struct ah_job *q = a->queue_head;
	a->queue_head = a->queue_tail = NULL;
	bool stopping = a->stopping;
	pthread_mutex_unlock(&a->mu);
	if (stopping) {
		deny_all(a, q);
		event_base_loopbreak(a->base);
		return;
	}
	while (q) {
		struct ah_job *j = q;
		q = j->next;
		start_job(a, j);
	}
}

static void *client_main(void *arg)
{
	struct ahttp *a = arg;
	event_base_loop(a->base, EVLOOP_NO_EXIT_ON_EMPTY);
	return NULL;
}

int ah_client_start(struct ahttp *a, char *err, size_t errlen)
{
	pthread_mutex_init(&a->mu, NULL);
	if (evthread_use_pthreads() != 0) {
		snprintf(err, errlen, "libevent has no pthreads support");
		return -1;
	}
	/* A precise clock: libevent's default (CLOCK_MONOTONIC_COARSE) could
	 * end a request some milliseconds before request_timeout. */
	struct event_config *cfg = event_config_new();
	if (cfg) {
		event_config_set_flag(cfg, EVENT_BASE_FLAG_PRECISE_TIMER);
		a->base = event_base_new_with_config(cfg);
		event_config_free(cfg);
	}
	if (a->base) {
		a->wake = event_new(a->base, -1, 0, wake_cb, a);
		a->reap = event_new(a->base, -1, 0, reap_cb, a);
	}
	if (!a->base || !a->wake || !a->reap) {
		snprintf(err, errlen, "cannot make an event loop for the HTTP client");
		return -1;
	}
	int e = pthread_create(&a->thread, NULL, client_main, a);
	if (e != 0) {
		snprintf(err, errlen, "cannot start the HTTP client thread: %s", strerror(e));
		return -1;
	}
	a->thread_started = true;
	return 0;
}

void ah_client_submit(struct ahttp *a, struct ah_job *j)
{
	j->a = a;
	j->next = j->prev = NULL;
	pthread_mutex_lock(&a->mu);
	bool stopping = a->stopping;
	if (!stopping) {
		if (a->queue_tail)
			a->queue_tail->next = j;
		else
			a->queue_head = j;
		a->queue_tail = j;
	}
	pthread_mutex_unlock(&a->mu);
	if (stopping) {
		j->finished = true;
		ah_job_answer(a, j, false, NULL, false, "the broker is stopping");
		ah_job_free(a, j);
		return;
	}
	event_active(a->wake, 0, 0);
}

void ah_client_stop(struct ahttp *a)
{
	if (a->thread_started) {
		pthread_mutex_lock(&a->mu);
		a->stopping = true;
		pthread_mutex_unlock(&a->mu);
		event_active(a->wake, 0, 0);
		pthread_join(a->thread, NULL);
		a->thread_started = false;
	}
	/* Anything left (the thread never ran, or a wake came too late). */
	pthread_mutex_lock(&a->mu);
	struct ah_job *q = a->queue_head;
	a->queue_head = a->queue_tail = NULL;
	a->stopping = true;
	pthread_mutex_unlock(&a->mu);
	if (a->base)
		deny_all(a, q);
	if (a->wake)
		event_free(a->wake);
	if (a->reap)
		event_free(a->reap);
	a->wake = a->reap = NULL;
	if (a->base)
		event_base_free(a->base);
	a->base = NULL;
	pthread_mutex_destroy(&a->mu);
}
