/*
 * harness.c - see harness.h.
 */
#include "harness.h"

#include <amqp_tcp_socket.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct broker g_broker;

bool broker_external(void)
{
	const char *e = getenv("AMQPD_TEST_EXTERNAL");
	return e && *e;
}

static int free_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		return -1;
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &len) < 0) {
		close(fd);
		return -1;
	}
	close(fd);
	return ntohs(a.sin_port);
}

int broker_raw_connect(struct broker *b)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)b->port)};
	inet_pton(AF_INET, b->host, &a.sin_addr);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		close(fd);
		return -1;
	}
	struct timeval tv = {.tv_sec = 5};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return fd;
}

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

int broker_start(struct broker *b, const char *const *extra_args)
{
	memset(b, 0, sizeof(*b));
	if (broker_external()) {
		const char *e = getenv("AMQPD_TEST_EXTERNAL");
		const char *colon = strrchr(e, ':');
		if (!colon)
			return -1;
		snprintf(b->host, sizeof(b->host), "%.*s", (int)(colon - e), e);
		b->port = atoi(colon + 1);
		return 0;
	}
	const char *top = getenv("top_builddir");
	if (!top)
		top = ".";
	snprintf(b->host, sizeof(b->host), "127.0.0.1");
	b->port = free_port();
	if (b->port <= 0)
		return -1;
	snprintf(b->log_path, sizeof(b->log_path), "%s/tests/integration/amqpd-%d-%d.log", top,
	         (int)getpid(), b->port);

	char exe[512], listen[64], datadir[600];
	snprintf(exe, sizeof(exe), "%s/server/amqpd", top);
	snprintf(listen, sizeof(listen), "127.0.0.1:%d", b->port);
	snprintf(datadir, sizeof(datadir), "%s.data", b->log_path);
	const char *argv[64] = {exe,     "--listen",    listen, "--data-dir",
	                        datadir, "--log-level", "debug"};
	int argc = 7;
	for (int i = 0; extra_args && extra_args[i] && argc < 62; i++)
		argv[argc++] = extra_args[i];
	argv[argc] = NULL;

	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		FILE *f = freopen(b->log_path, "w", stderr);
		(void)f;
		execv(exe, (char *const *)argv);
		fprintf(stderr, "exec %s: %s\n", exe, strerror(errno));
		_exit(127);
	}
	b->pid = pid;
	for (int i = 0; i < 500; i++) { /* up to 10 s */
		int fd = broker_raw_connect(b);
		if (fd >= 0) {
			close(fd);
			return 0;
		}
		if (!broker_alive(b))
			return -1;
		sleep_ms(20);
	}
	broker_stop(b);
	return -1;
}

bool broker_alive(struct broker *b)
{
	if (!b->pid)
		return true;
	int st;
	return waitpid(b->pid, &st, WNOHANG) == 0;
}

int broker_stop(struct broker *b)
{
	if (!b->pid)
		return 0;
	int st = 0;
	kill(b->pid, SIGTERM);
	for (int i = 0; i < 500; i++) {
		pid_t r = waitpid(b->pid, &st, WNOHANG);
		if (r == b->pid) {
			b->pid = 0;
			return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
		}
		sleep_ms(20);
	}
	kill(b->pid, SIGKILL);
	waitpid(b->pid, &st, 0);
	b->pid = 0;
	return -1;
}

amqp_connection_state_t broker_connect_ex(struct broker *b, const char *user, const char *pass,
                                          const char *vhost, int frame_max, int heartbeat,
                                          amqp_rpc_reply_t *reply_out)
{
	amqp_connection_state_t c = amqp_new_connection();
	amqp_socket_t *s = amqp_tcp_socket_new(c);
	if (!s || amqp_socket_open(s, b->host, b->port) != AMQP_STATUS_OK) {
		amqp_destroy_connection(c);
		return NULL;
	}
	amqp_rpc_reply_t r =
	    amqp_login(c, vhost, 2047, frame_max, heartbeat, AMQP_SASL_METHOD_PLAIN, user, pass);
	if (reply_out)
		*reply_out = r;
	if (r.reply_type != AMQP_RESPONSE_NORMAL) {
		amqp_destroy_connection(c);
		return NULL;
	}
	amqp_channel_open(c, 1);
	r = amqp_get_rpc_reply(c);
	if (reply_out)
		*reply_out = r;
	if (r.reply_type != AMQP_RESPONSE_NORMAL) {
		amqp_destroy_connection(c);
		return NULL;
	}
	return c;
}

amqp_connection_state_t broker_connect(struct broker *b)
{
	return broker_connect_ex(b, "guest", "guest", "/", 131072, 0, NULL);
}

void broker_disconnect(amqp_connection_state_t c)
{
	if (!c)
		return;
	amqp_connection_close(c, AMQP_REPLY_SUCCESS);
	amqp_destroy_connection(c);
}
