/*
 * test_tls.c - amqps listeners in a real amqpd, driven by rabbitmq-c's
 * OpenSSL socket: server-only TLS (publish and get through it), a client
 * that trusts another CA refused, mutual TLS (a client certificate
 * required: without one refused, with one let in, an expired one or one
 * of another CA refused), plaintext AMQP on the
 * TLS port and a handshake that never starts both closed, SIGHUP reloading
 * the certificate (and a bad one refused, the old one kept), and a bad key
 * refusing the start.
 *
 * Certificates are made by the openssl command in the run's scratch
 * directory.  Each test starts its own broker; waits are on conditions
 * (a connection's answer, a log line), with timeouts only against hangs.
 * Skipped against an external broker.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <amqp.h>
#include <amqp_framing.h>
#include <amqp_ssl_socket.h>

#include "harness.h"
#include "itest.h"
#include "itest_util.h"

static char dir[600]; /* certificates */

static bool sh(const char *cmd)
{
	char full[4096];
	snprintf(full, sizeof(full), "cd '%s' && (%s) >/dev/null 2>&1", dir, cmd);
	return system(full) == 0;
}

/* A CA (NAME-ca.pem) and a certificate it signed for CN (NAME-CN.pem,
 * NAME-CN.key), valid for 127.0.0.1. */
static bool make_ca(const char *name)
{
	char cmd[1024];
	snprintf(cmd, sizeof(cmd),
	         "openssl req -x509 -newkey rsa:2048 -nodes -keyout %s-ca.key -out %s-ca.pem "
	         "-days 2 -subj '/CN=%s test CA'",
	         name, name, name);
	return sh(cmd);
}

static bool make_cert(const char *ca, const char *cn)
{
	char cmd[2048];
	snprintf(cmd, sizeof(cmd),
	         "openssl req -newkey rsa:2048 -nodes -keyout %s-%s.key -out %s-%s.csr "
	         "-subj '/CN=%s' && printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > "
	         "san.cnf && openssl x509 -req -in %s-%s.csr -CA %s-ca.pem -CAkey %s-ca.key "
	         "-CAcreateserial -out %s-%s.pem -days 2 -extfile san.cnf",
	         ca, cn, ca, cn, cn, ca, cn, ca, ca, ca, cn);
	return sh(cmd);
}

/* A client certificate of CA `ca` that expired in 2020 (NAME-expired.*):
 * `openssl x509` cannot backdate, `openssl ca` can. */
static bool make_expired(const char *ca)
{
	char cmd[2048];
	snprintf(cmd, sizeof(cmd),
	         "mkdir -p ca-db && : > ca-db/index.txt && echo 01 > ca-db/serial && "
	         "printf '[ca]\\ndefault_ca = d\\n[d]\\ndir = .\\ndatabase = "
	         "ca-db/index.txt\\nserial = ca-db/serial\\nnew_certs_dir = "
	         "ca-db\\ndefault_md = sha256\\npolicy = p\\n[p]\\ncommonName = "
	         "supplied\\n' > ca.cnf && "
	         "openssl req -newkey rsa:2048 -nodes -keyout %s-expired.key -out "
	         "%s-expired.csr -subj '/CN=expired' && "
	         "openssl ca -batch -config ca.cnf -cert %s-ca.pem -keyfile %s-ca.key -in "
	         "%s-expired.csr -out %s-expired.pem -startdate 20200101000000Z -enddate "
	         "20200102000000Z -notext",
	         ca, ca, ca, ca, ca, ca);
	return sh(cmd);
}

static bool certs_ready(void)
{
	static int state; /* 0 not tried, 1 ready, -1 failed */
	if (state)
		return state > 0;
	state = -1;
	const char *scratch = itest_scratch_dir();
	if (!scratch)
		return false;
	snprintf(dir, sizeof(dir), "%s/tls", scratch);
	char cmd[700];
	snprintf(cmd, sizeof(cmd), "mkdir -p '%s'", dir);
	if (system(cmd) != 0)
		return false;
	if (!make_ca("one") || !make_cert("one", "localhost") || !make_cert("one", "client") ||
	    !make_ca("two") || !make_cert("two", "localhost") || !make_expired("one"))
		return false;
	/* The files the broker is started with; SIGHUP re-reads them. */
	if (!sh("cp one-localhost.pem server.pem && cp one-localhost.key server.key"))
		return false;
	state = 1;
	return true;
}

static char *path(const char *file)
{
	static char buf[4][700];
	static int i;
	i = (i + 1) % 4;
	snprintf(buf[i], sizeof(buf[i]), "%s/%s", dir, file);
	return buf[i];
}

struct tls_broker {
	struct broker b;
	int tls_port;
};

/* Start a broker with a TLS listener and these extra arguments. */
static bool start_tls(struct tls_broker *t, const char *const *extra)
{
	memset(t, 0, sizeof(*t));
	t->tls_port = harness_free_port();
	static char listen[64];
	snprintf(listen, sizeof(listen), "127.0.0.1:%d", t->tls_port);
	const char *args[32] = {"--listen-tls",        listen,      "--tls-cert",
	                        path("server.pem"),    "--tls-key", path("server.key"),
	                        "--handshake-timeout", "1500"};
	int n = 8;
	for (int i = 0; extra && extra[i] && n < 31; i++)
		args[n++] = extra[i];
	args[n] = NULL;
	return broker_start(&t->b, args) == 0;
}

/* Log in over TLS; NULL when the TLS or AMQP handshake fails.  The name
 * checked is "localhost": rabbitmq-c matches DNS names, not IP SANs. */
static amqp_connection_state_t tls_connect(int port, const char *ca, const char *cert,
                                           const char *key)
{
	amqp_connection_state_t c = amqp_new_connection();
	amqp_socket_t *s = amqp_ssl_socket_new(c);
	if (!s)
		goto fail;
	amqp_ssl_socket_set_verify_peer(s, 1);
	amqp_ssl_socket_set_verify_hostname(s, 1);
	if (amqp_ssl_socket_set_cacert(s, ca) != AMQP_STATUS_OK)
		goto fail;
	if (cert && amqp_ssl_socket_set_key(s, cert, key) != AMQP_STATUS_OK)
		goto fail;
	struct timeval tv = {5, 0};
	if (amqp_socket_open_noblock(s, "localhost", port, &tv) != AMQP_STATUS_OK)
		goto fail;
	amqp_set_rpc_timeout(c, &tv);
	amqp_rpc_reply_t r =
	    amqp_login(c, "/", 2047, 131072, 0, AMQP_SASL_METHOD_PLAIN, "guest", "guest");
	if (r.reply_type != AMQP_RESPONSE_NORMAL)
		goto fail;
	amqp_channel_open(c, 1);
	if (amqp_get_rpc_reply(c).reply_type != AMQP_RESPONSE_NORMAL)
		goto fail;
	return c;
fail:
	amqp_destroy_connection(c);
	return NULL;
}

/* Does the broker's log contain `what`?  Waits up to 10 s for it. */
static bool log_shows(struct broker *b, const char *what)
{
	int64_t end = now_ms() + 10000;
	do {
		FILE *f = fopen(b->log_path, "r");
		char line[2048];
		bool found = false;
		while (f && !found && fgets(line, sizeof(line), f))
			found = strstr(line, what) != NULL;
		if (f)
			fclose(f);
		if (found)
			return true;
		sleep_ms(20);
	} while (now_ms() < end);
	return false;
}

static void test_tls_publish_and_get(void)
{
	if (broker_external() || !certs_ready()) {
		CU_ASSERT(broker_external());
		return;
	}
	struct tls_broker t;
	CU_ASSERT_FATAL(start_tls(&t, NULL));
	amqp_connection_state_t c = tls_connect(t.tls_port, path("one-ca.pem"), NULL, NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT(qdecl(c, "tls-q"));
	char big[200000];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	CU_ASSERT_EQUAL(publish(c, "", "tls-q", "over tls"), AMQP_STATUS_OK);
	CU_ASSERT_EQUAL(publish(c, "", "tls-q", big), AMQP_STATUS_OK);
	struct got g = get1(c, "tls-q", true);
	CU_ASSERT(g.status == 1 && strcmp(g.body, "over tls") == 0);
	/* The large one, whole: frames over several TLS records. */
	amqp_basic_get(c, 1, amqp_cstring_bytes("tls-q"), 1);
	amqp_rpc_reply_t r = amqp_get_rpc_reply(c);
	CU_ASSERT_FATAL(r.reply_type == AMQP_RESPONSE_NORMAL &&
	                r.reply.id == AMQP_BASIC_GET_OK_METHOD);
	amqp_message_t m;
	r = amqp_read_message(c, 1, &m, 0);
	CU_ASSERT_FATAL(r.reply_type == AMQP_RESPONSE_NORMAL);
	CU_ASSERT_EQUAL(m.body.len, sizeof(big) - 1);
	CU_ASSERT(m.body.len == sizeof(big) - 1 && memcmp(m.body.bytes, big, m.body.len) == 0);
	amqp_destroy_message(&m);
	/* The plain listener still serves plain AMQP. */
	amqp_connection_state_t p = broker_connect(&t.b);
	CU_ASSERT_PTR_NOT_NULL(p);
	if (p)
		broker_disconnect(p);
	broker_disconnect(c);
	CU_ASSERT_EQUAL(broker_stop(&t.b), 0);
}

static void test_tls_wrong_ca_refused(void)
{
	if (broker_external() || !certs_ready())
		return;
	struct tls_broker t;
	CU_ASSERT_FATAL(start_tls(&t, NULL));
	CU_ASSERT_PTR_NULL(tls_connect(t.tls_port, path("two-ca.pem"), NULL, NULL));
	/* and the broker goes on serving */
	amqp_connection_state_t c = tls_connect(t.tls_port, path("one-ca.pem"), NULL, NULL);
	CU_ASSERT_PTR_NOT_NULL(c);
	if (c)
		broker_disconnect(c);
	CU_ASSERT_EQUAL(broker_stop(&t.b), 0);
}

static void test_tls_mutual(void)
{
	if (broker_external() || !certs_ready())
		return;
	struct tls_broker t;
	const char *extra[] = {"--tls-ca", path("one-ca.pem"),           "--tls-verify",
	                       "peer",     "--tls-fail-if-no-peer-cert", NULL};
	CU_ASSERT_FATAL(start_tls(&t, extra));
	CU_ASSERT_PTR_NULL(tls_connect(t.tls_port, path("one-ca.pem"), NULL, NULL));
	amqp_connection_state_t c = tls_connect(t.tls_port, path("one-ca.pem"),
	                                        path("one-client.pem"), path("one-client.key"));
	CU_ASSERT_PTR_NOT_NULL(c);
	if (c)
		broker_disconnect(c);
	/* A client certificate from a CA the broker does not trust. */
	CU_ASSERT_PTR_NULL(tls_connect(t.tls_port, path("one-ca.pem"), path("two-localhost.pem"),
	                               path("two-localhost.key")));
	/* One from the right CA that has expired. */
	CU_ASSERT_PTR_NULL(tls_connect(t.tls_port, path("one-ca.pem"), path("one-expired.pem"),
	                               path("one-expired.key")));
	CU_ASSERT(log_shows(&t.b, "client certificate: certificate has expired"));
	CU_ASSERT_EQUAL(broker_stop(&t.b), 0);
}

/* Connect to the TLS port with plain TCP; send `data` (may be NULL); true
 * when the broker closes the socket within 8 s without sending an AMQP
 * connection.start. */
static bool plain_on_tls_port_closed(int port, const void *data, size_t len)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		if (fd >= 0)
			close(fd);
		return false;
	}
	struct timeval tv = {8, 0};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (data && write(fd, data, len) != (ssize_t)len) {
		close(fd);
		return false;
	}
	bool closed = false, amqp = false;
	uint8_t buf[4096];
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n == 0 ||
		    (n < 0 && errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK)) {
			closed = true;
			break;
		}
		if (n < 0)
			break; /* timed out */
		if (n >= 1 && buf[0] == 1)
			amqp = true; /* a method frame: plaintext AMQP got through */
	}
	close(fd);
	return closed && !amqp;
}

static void test_tls_plaintext_and_stalled_closed(void)
{
	if (broker_external() || !certs_ready())
		return;
	struct tls_broker t;
	CU_ASSERT_FATAL(start_tls(&t, NULL));
	static const uint8_t hdr[] = {'A', 'M', 'Q', 'P', 0, 0, 9, 1};
	CU_ASSERT(plain_on_tls_port_closed(t.tls_port, hdr, sizeof(hdr)));
	/* Nothing at all: the handshake timeout (1.5 s here) ends it. */
	CU_ASSERT(plain_on_tls_port_closed(t.tls_port, NULL, 0));
	CU_ASSERT(log_shows(&t.b, "handshake not completed within 1500 ms"));
	/* Nobody else noticed. */
	amqp_connection_state_t c = tls_connect(t.tls_port, path("one-ca.pem"), NULL, NULL);
	CU_ASSERT_PTR_NOT_NULL(c);
	if (c)
		broker_disconnect(c);
	CU_ASSERT_EQUAL(broker_stop(&t.b), 0);
}

static void test_tls_sighup_reload(void)
{
	if (broker_external() || !certs_ready())
		return;
	CU_ASSERT_FATAL(sh("cp one-localhost.pem server.pem && cp one-localhost.key server.key"));
	struct tls_broker t;
	CU_ASSERT_FATAL(start_tls(&t, NULL));
	amqp_connection_state_t old = tls_connect(t.tls_port, path("one-ca.pem"), NULL, NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(old);
	/* New certificate files, then SIGHUP. */
	CU_ASSERT_FATAL(sh("cp two-localhost.pem server.pem && cp two-localhost.key server.key"));
	kill(t.b.pid, SIGHUP);
	CU_ASSERT_FATAL(log_shows(&t.b, "TLS certificate"));
	amqp_connection_state_t c = tls_connect(t.tls_port, path("two-ca.pem"), NULL, NULL);
	CU_ASSERT_PTR_NOT_NULL(c);
	CU_ASSERT_PTR_NULL(tls_connect(t.tls_port, path("one-ca.pem"), NULL, NULL));
	/* The connection from before the reload goes on. */
	CU_ASSERT(qdecl(old, "tls-reload-q"));
	/* A broken certificate: refused, the one in use stays. */
	CU_ASSERT_FATAL(sh("echo garbage > server.pem"));
	kill(t.b.pid, SIGHUP);
	CU_ASSERT(log_shows(&t.b, "TLS not reloaded"));
	amqp_connection_state_t c2 = tls_connect(t.tls_port, path("two-ca.pem"), NULL, NULL);
	CU_ASSERT_PTR_NOT_NULL(c2);
	if (c2)
		broker_disconnect(c2);
	if (c)
		broker_disconnect(c);
	broker_disconnect(old);
	CU_ASSERT_EQUAL(broker_stop(&t.b), 0);
	CU_ASSERT(sh("cp one-localhost.pem server.pem && cp one-localhost.key server.key"));
}

static void test_tls_bad_key_refuses_start(void)
{
	if (broker_external() || !certs_ready())
		return;
	struct tls_broker t;
	/* The key of another certificate. */
	const char *extra[] = {"--tls-key", path("two-localhost.key"), NULL};
	CU_ASSERT(!start_tls(&t, extra));
	CU_ASSERT(log_shows(&t.b, "cannot load the private key"));
	broker_stop(&t.b);
}

/* Command-line mistakes exit 2 before anything starts. */
static void test_tls_bad_arguments(void)
{
	if (broker_external())
		return;
	const char *top = getenv("top_builddir");
	char cmd[1200];
	const char *bad[] = {"--tls-cert x.pem", "--listen-tls 1 --tls-verify maybe",
	                     "--listen-tls 1 --tls-min-version sslv3"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(cmd, sizeof(cmd), "'%s/server/amqpd' %s >/dev/null 2>&1",
		         top && *top ? top : ".", bad[i]);
		int st = system(cmd);
		CU_ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 2);
	}
}

void suite_tls(void)
{
	ITEST_SUITE("tls", ITEST(test_tls_publish_and_get), ITEST(test_tls_wrong_ca_refused),
	            ITEST(test_tls_mutual), ITEST(test_tls_plaintext_and_stalled_closed),
	            ITEST(test_tls_sighup_reload), ITEST(test_tls_bad_key_refuses_start),
	            ITEST(test_tls_bad_arguments));
}
