/*
 * listen.c - the AMQP listeners, plain and TLS (amqps): "[ADDR:]PORT"
 * specs, IPv4 and IPv6, and accepted sockets handed to conn_bev_accept()
 * (see broker.h).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "io/broker.h"
#include "io/conn_bev.h"
#include "util/log.h"

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen,
                      void *arg)
{
	(void)l;
	struct broker *b = arg;
	if (b->stopping) {
		close(fd);
		return;
	}
	(void)salen;
	conn_bev_accept(b, fd, sa, NULL);
}

/* An amqps listener: the connection speaks TLS with the current context. */
static void accept_tls_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                          int salen, void *arg)
{
	(void)l;
	(void)salen;
	struct broker *b = arg;
	if (b->stopping || !b->tls_ctx) {
		close(fd);
		return;
	}
	conn_bev_accept(b, fd, sa, b->tls_ctx);
}

static void accept_error_cb(struct evconnlistener *l, void *arg)
{
	(void)l;
	(void)arg;
	int err = EVUTIL_SOCKET_ERROR();
	/* EMFILE and friends: keep serving the connections we have. */
	log_error("accept failed: %s", evutil_socket_error_to_string(err));
}

static int listen_on(struct broker *b, const struct sockaddr *sa, socklen_t len, bool v6only,
                     const char *desc, bool tls)
{
	unsigned flags = LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC;
	if (v6only)
		flags |= LEV_OPT_BIND_IPV6ONLY;
	struct evconnlistener *l = evconnlistener_new_bind(b->base, tls ? accept_tls_cb : accept_cb,
	                                                   b, flags, 1024, sa, (int)len);
	if (!l) {
		log_error("cannot listen on %s: %s", desc, strerror(errno));
		return -1;
	}
	evconnlistener_set_error_cb(l, accept_error_cb);
	b->listeners[b->nlisteners++] = l;
	log_info("started %s listener on %s", tls ? "TLS" : "TCP", desc);
	return 0;
}

/* "[ADDR:]PORT", ADDR an IPv4 address or an IPv6 one in brackets. */
static int listen_spec(struct broker *b, const char *spec, bool tls)
{
	char host[128] = "";
	const char *port_s = spec;
	const char *colon = strrchr(spec, ':');
	if (colon) {
		size_t hl = (size_t)(colon - spec);
		if (hl >= sizeof(host))
			goto bad;
		memcpy(host, spec, hl);
		host[hl] = 0;
		port_s = colon + 1;
	}
	char *end;
	long port = strtol(port_s, &end, 10);
	if (!*port_s || *end || port < 0 || port > 65535)
		goto bad;
	if (!host[0]) {
		/* All addresses, IPv4 and IPv6 (IPv6 optional on this host). */
		struct sockaddr_in a4 = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
		struct sockaddr_in6 a6 = {.sin6_family = AF_INET6,
		                          .sin6_port = htons((uint16_t)port)};
		char d4[64], d6[64];
		snprintf(d4, sizeof(d4), "0.0.0.0:%ld", port);
		snprintf(d6, sizeof(d6), "[::]:%ld", port);
		if (listen_on(b, (struct sockaddr *)&a4, sizeof(a4), false, d4, tls) < 0)
			return -1;
		if (listen_on(b, (struct sockaddr *)&a6, sizeof(a6), true, d6, tls) < 0)
			log_warning("IPv6 listener not started; serving IPv4 only");
		return 0;
	}
	size_t hl = strlen(host);
	if (host[0] == '[' && hl > 2 && host[hl - 1] == ']') {
		host[hl - 1] = 0;
		struct sockaddr_in6 a6 = {.sin6_family = AF_INET6,
		                          .sin6_port = htons((uint16_t)port)};
		if (inet_pton(AF_INET6, host + 1, &a6.sin6_addr) != 1)
			goto bad;
		return listen_on(b, (struct sockaddr *)&a6, sizeof(a6), true, spec, tls);
	}
	struct sockaddr_in a4 = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	if (inet_pton(AF_INET, host, &a4.sin_addr) != 1)
		goto bad;
	return listen_on(b, (struct sockaddr *)&a4, sizeof(a4), false, spec, tls);
bad:
	log_error("invalid listener '%s': expected [ADDR:]PORT (e.g. 5672, 127.0.0.1:5672, "
	          "[::1]:5672)",
	          spec);
	return -1;
}

int broker_listen(struct broker *b)
{
	static const char *const dflt[] = {"5672"};
	const char *const *specs = b->cfg.nlisten ? b->cfg.listen : dflt;
	int n = b->cfg.nlisten ? b->cfg.nlisten : 1;
	for (int i = 0; i < n; i++)
		if (listen_spec(b, specs[i], false) < 0)
			return -1;
	for (int i = 0; i < b->cfg.nlisten_tls; i++)
		if (listen_spec(b, b->cfg.listen_tls[i], true) < 0)
			return -1;
	return 0;
}
