/*
 * conn_bev.c - see conn_bev.h.
 */
#include "io/conn_bev.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "io/broker.h"
#include "io/linger.h"
#include "model/message.h"
#include "util/log.h"

/* Consumers resume once what the bufferevent holds is below this. */
#define OUT_LOW_WATER (256u << 10)
/* Body slices at least this large go into the bufferevent by reference. */
#define REF_MIN 4096

int64_t conn_bev_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void service(struct conn_bev *a);

static void wake_cb(struct conn_io *io)
{
	struct conn_bev *a = (struct conn_bev *)((char *)io - offsetof(struct conn_bev, io));
	if (a->dirty)
		return;
	a->dirty = true;
	a->dirty_next = a->b->dirty;
	a->b->dirty = a;
	broker_schedule(a->b);
}

static void destroy(struct conn_bev *a, bool linger)
{
	struct broker *b = a->b;
	if (a->dirty) {
		struct conn_bev **pp = &b->dirty;
		while (*pp && *pp != a)
			pp = &(*pp)->dirty_next;
		if (*pp)
			*pp = a->dirty_next;
	}
	if (a->prev)
		a->prev->next = a->next;
	else
		b->conns = a->next;
	if (a->next)
		a->next->prev = a->prev;
	b->nconns--;
	conn_free(a->c);
	if (a->timer)
		event_free(a->timer);
	if (linger)
		linger_socket(b, a->bev);
	else
		bufferevent_free(a->bev);
	free(a);
}

void conn_bev_free(struct conn_bev *a)
{
	destroy(a, false);
}

/* ---- output ------------------------------------------------------------ */

static void unref_cleanup(const void *data, size_t len, void *arg)
{
	(void)data;
	(void)len;
	message_unref(arg);
}

/* Queue the rest of a chunk in the bufferevent (and release it).  0 or -1. */
static int buffer_chunk(struct evbuffer *out, struct outq_chunk *ch)
{
	if (ch->msg && ch->len >= REF_MIN &&
	    evbuffer_add_reference(out, ch->ptr, ch->len, unref_cleanup, ch->msg) == 0) {
		ch->msg = NULL; /* the reference now belongs to the buffer */
		outq_chunk_release(ch);
		return 0;
	}
	int rc = evbuffer_add(out, ch->ptr, ch->len);
	outq_chunk_release(ch);
	return rc;
}

/* Move the engine's output out: straight to the socket while nothing is
 * queued ahead of it, else into the bufferevent.  0, or -errno when the
 * connection must go (the socket failed, or out of memory). */
static int move_output(struct conn_bev *a)
{
	struct evbuffer *out = bufferevent_get_output(a->bev);
	evutil_socket_t fd = a->tls ? -1 : bufferevent_getfd(a->bev);
	struct outq_chunk ch[64];
	struct iovec iov[64];
	size_t n;
	int rc = 0;
	while ((n = conn_take_output(a->c, ch, 64)) > 0) {
		size_t i = 0;
		if (fd >= 0 && evbuffer_get_length(out) == 0 && rc == 0) {
			for (size_t k = 0; k < n; k++)
				iov[k] = (struct iovec){(void *)ch[k].ptr, ch[k].len};
			ssize_t w;
			do
				w = writev(fd, iov, (int)n);
			while (w < 0 && errno == EINTR);
			if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
				rc = -errno;
			size_t left = w > 0 ? (size_t)w : 0;
			while (i < n && left >= ch[i].len) {
				left -= ch[i].len;
				outq_chunk_release(&ch[i++]);
			}
			if (i < n) {
				ch[i].ptr += left;
				ch[i].len -= left;
			}
		}
		for (; i < n; i++) {
			if (rc == 0 && buffer_chunk(out, &ch[i]) < 0) /* releases it */
				rc = -ENOMEM;
			else if (rc != 0)
				outq_chunk_release(&ch[i]); /* the connection is going */
		}
	}
	return rc;
}

/* ---- requests ---------------------------------------------------------- */

static void arm_timer(struct conn_bev *a, int64_t deadline)
{
	if (deadline == a->armed)
		return;
	a->armed = deadline;
	if (deadline < 0) {
		evtimer_del(a->timer);
		return;
	}
	int64_t ms = deadline - conn_bev_now();
	if (ms < 0)
		ms = 0;
	struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
	evtimer_add(a->timer, &tv);
}

static void finish_close(struct conn_bev *a)
{
	/* Lingering half-closes the raw socket: not under TLS. */
	destroy(a, a->linger && !a->tls && !a->b->stopping);
}

static void service(struct conn_bev *a)
{
	struct conn_poll p;
	conn_poll(a->c, &p);
	if (p.reset) {
		destroy(a, false);
		return;
	}
	int rc = move_output(a);
	if (rc < 0) {
		log_warning("%s: cannot write to the socket: %s", a->c->name, strerror(-rc));
		destroy(a, false);
		return;
	}
	struct evbuffer *out = bufferevent_get_output(a->bev);
	arm_timer(a, p.deadline);
	if (p.close) {
		if (!a->closing) {
			a->closing = true;
			a->linger = p.linger;
			a->reading = false;
			bufferevent_disable(a->bev, EV_READ);
			bufferevent_setwatermark(a->bev, EV_WRITE, 0, 0);
		}
		if (evbuffer_get_length(out) == 0)
			finish_close(a);
		return;
	}
	if (p.want_read && a->reading && a->input_left_behind) {
		/* The engine stopped part-way through the input and wants more
		 * before this adapter saw it stop (an auth answer that came in
		 * the same loop iteration): nothing new may arrive on the
		 * socket, so hand it what is buffered now. */
		a->input_left_behind = false;
		if (evbuffer_get_length(bufferevent_get_input(a->bev)))
			bufferevent_trigger(a->bev, EV_READ, BEV_OPT_DEFER_CALLBACKS);
	}
	if (p.want_read != a->reading) {
		a->reading = p.want_read;
		if (p.want_read) {
			bufferevent_enable(a->bev, EV_READ);
			/* Input that arrived while paused is still buffered. */
			if (evbuffer_get_length(bufferevent_get_input(a->bev)))
				bufferevent_trigger(a->bev, EV_READ, BEV_OPT_DEFER_CALLBACKS);
		} else {
			bufferevent_disable(a->bev, EV_READ);
		}
	}
	conn_output_pending(a->c, evbuffer_get_length(out));
}

void conn_bev_flush_all(struct broker *b)
{
	while (b->dirty) {
		struct conn_bev *a = b->dirty;
		b->dirty = a->dirty_next;
		a->dirty = false;
		service(a);
	}
}

/* ---- libevent callbacks ------------------------------------------------ */

/* libevent 2.1's evbuffer_read() reads at most 4096 bytes per callback,
 * whatever max_single_read says: a 1 MiB body took ~250 readv + ioctl +
 * epoll_wait rounds (perf: half the broker's time).  So each callback tops
 * the input up with one large recv() into reserved space (the bufferevent
 * freezes its input's end while it owns it).  EOF and errors are left for
 * the bufferevent's next read, which sees them too. */
#define READ_TOPUP        (256u * 1024)
#define LIBEVENT_READ_MAX 4096 /* what one evbuffer_read() takes at most */
static void read_more(struct conn_bev *a, struct evbuffer *in)
{
	evutil_socket_t fd = bufferevent_getfd(a->bev);
	if (fd < 0 || evbuffer_get_length(in) >= READ_TOPUP)
		return;
	struct evbuffer_iovec v;
	evbuffer_unfreeze(in, 0);
	if (evbuffer_reserve_space(in, READ_TOPUP, &v, 1) == 1) {
		ssize_t n = recv(fd, v.iov_base, v.iov_len, MSG_DONTWAIT);
		v.iov_len = n > 0 ? (size_t)n : 0;
		evbuffer_commit_space(in, &v, 1);
	}
	evbuffer_freeze(in, 0);
}

/* The verified client certificate, for EXTERNAL and the backends: taken
 * once, when the first bytes arrive (the handshake is over then). */
static void take_peer_cert(struct conn_bev *a)
{
	a->peer_cert_taken = true;
	SSL *ssl = bufferevent_openssl_get_ssl(a->bev);
	X509 *x = ssl ? SSL_get0_peer_certificate(ssl) : NULL;
	if (!x || SSL_get_verify_result(ssl) != X509_V_OK)
		return;
	X509_NAME *subj = X509_get_subject_name(x);
	char dn[1024] = "", cn[256] = "";
	BIO *bio = BIO_new(BIO_s_mem());
	if (bio && X509_NAME_print_ex(bio, subj, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB) >= 0) {
		int n = BIO_read(bio, dn, sizeof(dn) - 1);
		dn[n > 0 ? n : 0] = 0;
		if (BIO_pending(bio) > 0 || (n > 0 && memchr(dn, 0, (size_t)n)))
			dn[0] = 0; /* too long, or not a name: no DN rather than a cut one */
	}
	BIO_free(bio);
	/* The CN as UTF-8, whatever string type holds it; one with a NUL
	 * inside would name someone else: none. */
	int ci = X509_NAME_get_index_by_NID(subj, NID_commonName, -1);
	if (ci >= 0) {
		unsigned char *u = NULL;
		int n = ASN1_STRING_to_UTF8(
		    &u, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subj, ci)));
		if (n > 0 && (size_t)n < sizeof(cn) && !memchr(u, 0, (size_t)n)) {
			memcpy(cn, u, (size_t)n);
			cn[n] = 0;
		}
		OPENSSL_free(u);
	}
	const char *sans[16];
	char sanbuf[16][300];
	size_t ns = 0;
	GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	for (int i = 0; gens && i < sk_GENERAL_NAME_num(gens) && ns < 16; i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
		const char *type = NULL;
		const ASN1_STRING *v = NULL;
		switch (g->type) {
		case GEN_DNS:
			type = "DNS", v = g->d.dNSName;
			break;
		case GEN_EMAIL:
			type = "email", v = g->d.rfc822Name;
			break;
		case GEN_URI:
			type = "URI", v = g->d.uniformResourceIdentifier;
			break;
		case GEN_IPADD: {
			char ip[INET6_ADDRSTRLEN] = "";
			int len = ASN1_STRING_length(g->d.iPAddress);
			const unsigned char *d = ASN1_STRING_get0_data(g->d.iPAddress);
			if (len == 4 || len == 16)
				inet_ntop(len == 4 ? AF_INET : AF_INET6, d, ip, sizeof(ip));
			snprintf(sanbuf[ns], sizeof(sanbuf[ns]), "IP:%s", ip);
			sans[ns] = sanbuf[ns];
			ns++;
			continue;
		}
		default:
			continue;
		}
		int vl = ASN1_STRING_length(v);
		if (vl <= 0 || (size_t)vl > sizeof(sanbuf[ns]) - 8 ||
		    memchr(ASN1_STRING_get0_data(v), 0, (size_t)vl))
			continue; /* cut or NUL-bearing: it would name someone else */
		snprintf(sanbuf[ns], sizeof(sanbuf[ns]), "%s:%.*s", type, vl,
		         (const char *)ASN1_STRING_get0_data(v));
		sans[ns] = sanbuf[ns];
		ns++;
	}
	GENERAL_NAMES_free(gens);
	conn_set_peer_cert(a->c, dn, cn[0] ? cn : NULL, sans, ns);
}

static void read_cb(struct bufferevent *bev, void *arg)
{
	struct conn_bev *a = arg;
	if (!a->reading || a->closing)
		return; /* paused: the input waits in the buffer */
	if (a->tls && !a->peer_cert_taken)
		take_peer_cert(a);
	struct evbuffer *in = bufferevent_get_input(bev);
	/* A read that came back short emptied the socket: a top-up would only
	 * meet EAGAIN (a system call per small message for nothing). */
	size_t len = evbuffer_get_length(in);
	if (!a->tls && (len < a->in_left || len - a->in_left >= LIBEVENT_READ_MAX))
		read_more(a, in);
	int64_t now = conn_bev_now();
	while (evbuffer_get_length(in)) {
		struct evbuffer_iovec vec[16];
		int nv = evbuffer_peek(in, -1, NULL, vec, 16);
		size_t consumed = 0;
		bool stop = false;
		for (int i = 0; i < nv && i < 16; i++) {
			size_t n = conn_input(a->c, vec[i].iov_base, vec[i].iov_len, now);
			consumed += n;
			if (n < vec[i].iov_len) {
				stop = true; /* paused or closed, at a frame boundary */
				break;
			}
		}
		evbuffer_drain(in, consumed);
		if (stop || consumed == 0) {
			a->input_left_behind = evbuffer_get_length(in) > 0;
			break;
		}
	}
	a->in_left = evbuffer_get_length(in);
}

static void write_cb(struct bufferevent *bev, void *arg)
{
	struct conn_bev *a = arg;
	size_t left = evbuffer_get_length(bufferevent_get_output(bev));
	if (a->closing) {
		if (left == 0)
			finish_close(a);
		return;
	}
	conn_output_pending(a->c, left);
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct conn_bev *a = arg;
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
		unsigned long e = a->tls ? bufferevent_get_openssl_error(bev) : 0;
		if (e && ERR_GET_REASON(e) != SSL_R_UNEXPECTED_EOF_WHILE_READING) {
			/* A failed handshake, plaintext on the amqps port, a bad
			 * record: say which, then the connection goes. */
			char reason[256];
			ERR_error_string_n(e, reason, sizeof(reason));
			/* A refused client certificate: say why (expired, unknown CA). */
			SSL *ssl = bufferevent_openssl_get_ssl(bev);
			long vr = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
			log_warning("%s: TLS error: %s%s%s", a->c->name, reason,
			            vr != X509_V_OK ? ": client certificate: " : "",
			            vr != X509_V_OK ? X509_verify_cert_error_string(vr) : "");
			while (bufferevent_get_openssl_error(bev))
				;
		}
		/* A peer that just hangs up without a TLS close_notify is gone,
		 * like any other: that is no TLS error worth a warning. */
		if (e && ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING)
			e = 0;
		if (!a->closing && !e)
			conn_peer_closed(a->c);
		destroy(a, false);
	}
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct conn_bev *a = arg;
	a->armed = -1;
	conn_tick(a->c, conn_bev_now());
	service(a);
}

/* ---- accept ------------------------------------------------------------ */

static void addr_str(const struct sockaddr *sa, char *buf, size_t len, bool *loopback)
{
	char host[INET6_ADDRSTRLEN] = "?";
	int port = 0;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *s = (const struct sockaddr_in *)sa;
		inet_ntop(AF_INET, &s->sin_addr, host, sizeof(host));
		port = ntohs(s->sin_port);
		if (loopback)
			*loopback = (ntohl(s->sin_addr.s_addr) >> 24) == 127;
		snprintf(buf, len, "%s:%d", host, port);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)sa;
		inet_ntop(AF_INET6, &s->sin6_addr, host, sizeof(host));
		port = ntohs(s->sin6_port);
		if (loopback) {
			static const uint8_t v4mapped_lo[12] = {0, 0, 0, 0, 0,    0,
			                                        0, 0, 0, 0, 0xff, 0xff};
			*loopback = IN6_IS_ADDR_LOOPBACK(&s->sin6_addr) ||
			            (memcmp(&s->sin6_addr, v4mapped_lo, 12) == 0 &&
			             s->sin6_addr.s6_addr[12] == 127);
		}
		snprintf(buf, len, "[%s]:%d", host, port);
	} else {
		snprintf(buf, len, "unknown");
	}
}

void conn_bev_accept(struct broker *b, int fd, const struct sockaddr *peer, SSL_CTX *tls)
{
	struct conn_bev *a = calloc(1, sizeof(*a));
	if (!a) {
		close(fd);
		return;
	}
	a->b = b;
	a->io.wake = wake_cb;
	a->armed = -1;
	char pa[80], la[80] = "?", name[170];
	bool loopback = false;
	addr_str(peer, pa, sizeof(pa), &loopback);
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
		addr_str((struct sockaddr *)&ss, la, sizeof(la), NULL);
	snprintf(name, sizeof(name), "%s -> %s", pa, la);
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	evutil_make_socket_nonblocking(fd);
	if (tls) {
		/* The handshake runs inside the bufferevent; one that stalls is
		 * ended by the engine's handshake deadline. */
		SSL *ssl = SSL_new(tls);
		a->tls = true;
		a->bev = ssl ? bufferevent_openssl_socket_new(b->base, fd, ssl,
		                                              BUFFEREVENT_SSL_ACCEPTING,
		                                              BEV_OPT_CLOSE_ON_FREE)
		             : NULL;
		if (ssl && !a->bev)
			SSL_free(ssl);
	} else {
		a->bev = bufferevent_socket_new(b->base, fd, BEV_OPT_CLOSE_ON_FREE);
	}
	a->timer = evtimer_new(b->base, timer_cb, a);
	a->c = conn_new(&b->sess, &a->io, name, loopback, conn_bev_now());
	if (a->c) {
		char host[INET6_ADDRSTRLEN] = "?";
		uint16_t port = 0;
		if (peer->sa_family == AF_INET) {
			const struct sockaddr_in *s4 = (const struct sockaddr_in *)peer;
			inet_ntop(AF_INET, &s4->sin_addr, host, sizeof(host));
			port = ntohs(s4->sin_port);
		} else if (peer->sa_family == AF_INET6) {
			const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)peer;
			inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof(host));
			port = ntohs(s6->sin6_port);
		}
		conn_set_peer(a->c, host, port, tls != NULL);
	}
	if (!a->bev || !a->timer || !a->c) {
		log_error("%s: out of memory accepting a connection", name);
		if (a->bev)
			bufferevent_free(a->bev);
		else
			close(fd);
		if (a->timer)
			event_free(a->timer);
		if (a->c)
			conn_free(a->c);
		free(a);
		return;
	}
	/* Big reads and writes: fewer system calls per message. */
	bufferevent_set_max_single_read(a->bev, 256 * 1024);
	bufferevent_set_max_single_write(a->bev, 1024 * 1024);
	bufferevent_setcb(a->bev, read_cb, write_cb, event_cb, a);
	bufferevent_setwatermark(a->bev, EV_WRITE, OUT_LOW_WATER, 0);
	a->next = b->conns;
	if (b->conns)
		b->conns->prev = a;
	b->conns = a;
	b->nconns++;
	a->reading = true;
	bufferevent_enable(a->bev, EV_READ | EV_WRITE);
	struct conn_poll p;
	conn_poll(a->c, &p);
	arm_timer(a, p.deadline); /* the handshake timeout */
	log_info("%s: accepting AMQP connection", name);
}
