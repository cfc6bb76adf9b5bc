/*
 * harness.c - see harness.h.
 */
#include "harness.h"

#include <amqp_tcp_socket.h>
#include <arpa/inet.h>
#include <errno.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct broker g_broker;

bool broker_external(void)
{
	const char *e = getenv("AMQPD_TEST_EXTERNAL");
	return e && *e;
}

int harness_free_port(void)
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

/* ---- the run's scratch directory ------------------------------------------ */

static char g_scratch[400]; /* "" until created */
static pid_t g_scratch_owner;
static unsigned g_nstarted; /* brokers started so far: unique file names */
static bool g_rm_failed;

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	if (remove(path) != 0 && errno != ENOENT)
		g_rm_failed = true;
	return 0;
}

/* At exit (status is what main returned or passed to exit()): remove the
 * directory after a passing run, keep it and say where otherwise. */
static void scratch_at_exit(int status, void *arg)
{
	(void)arg;
	if (!g_scratch[0] || getpid() != g_scratch_owner)
		return; /* not created, or a forked child */
	fflush(stdout);
	const char *keep = getenv("ITEST_KEEP");
	if (status == 0 && !(keep && *keep)) {
		g_rm_failed = false;
		nftw(g_scratch, rm_one, 16, FTW_DEPTH | FTW_PHYS);
		if (g_rm_failed)
			fprintf(stderr, "harness: could not remove all of %s\n", g_scratch);
		return;
	}
	fprintf(stderr, "harness: %s; broker logs and data directories kept in %s\n",
	        status ? "the run failed" : "ITEST_KEEP is set", g_scratch);
}

const char *itest_scratch_dir(void)
{
	if (g_scratch[0])
		return g_scratch;
	const char *env = getenv("TMPDIR");
	const char *bases[] = {env && *env ? env : "/tmp", "/tmp"};
	for (int i = 0; i < 2 && !g_scratch[0]; i++) {
		if (i == 1 && strcmp(bases[0], bases[1]) == 0)
			break;
		int n = snprintf(g_scratch, sizeof(g_scratch), "%s/amqpd-itest-%d-XXXXXX", bases[i],
		                 (int)getpid());
		if (n < 0 || (size_t)n >= sizeof(g_scratch)) {
			fprintf(stderr, "harness: scratch directory name under %s too long\n",
			        bases[i]);
			g_scratch[0] = '\0';
		} else if (!mkdtemp(g_scratch)) {
			fprintf(stderr, "harness: mkdtemp %s: %s\n", g_scratch, strerror(errno));
			g_scratch[0] = '\0';
		}
	}
	if (!g_scratch[0])
		return NULL;
	g_scratch_owner = getpid();
	if (on_exit(scratch_at_exit, NULL) != 0)
		fprintf(stderr, "harness: on_exit failed; %s will not be removed\n", g_scratch);
	fprintf(stderr, "harness: scratch files in %s (removed if the run passes)\n", g_scratch);
	return g_scratch;
}

/* extra_args choose the data directory themselves. */
static bool has_data_dir(const char *const *args)
{
	for (int i = 0; args && args[i]; i++)
		if (strcmp(args[i], "--data-dir") == 0 || strcmp(args[i], "-d") == 0 ||
		    strncmp(args[i], "--data-dir=", 11) == 0)
			return true;
	return false;
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
	b->port = harness_free_port();
	if (b->port <= 0)
		return -1;
	const char *dir = itest_scratch_dir();
	if (!dir)
		return -1;
	unsigned n = ++g_nstarted;
	snprintf(b->log_path, sizeof(b->log_path), "%s/amqpd-%u-%d.log", dir, n, b->port);

	char exe[512], listen[64], datadir[600];
	snprintf(exe, sizeof(exe), "%s/server/amqpd", top);
	snprintf(listen, sizeof(listen), "127.0.0.1:%d", b->port);
	snprintf(datadir, sizeof(datadir), "%s/amqpd-%u-%d.data", dir, n, b->port);
	const char *argv[64] = {exe, "--listen", listen, "--log-level", "debug"};
	int argc = 5;
	if (!has_data_dir(extra_args)) {
		argv[argc++] = "--data-dir";
		argv[argc++] = datadir;
	}
	/* No admin listener unless the test asks for one: the default 15672
	 * is one port for every broker the suite starts. */
	bool admin = false;
	for (int i = 0; extra_args && extra_args[i]; i++)
		admin |= strcmp(extra_args[i], "--management-listen") == 0;
	if (!admin) {
		argv[argc++] = "--management-listen";
		argv[argc++] = "none";
	}
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

int broker_wait_exit(struct broker *b, int timeout_ms)
{
	if (!b->pid)
		return 0;
	int st = 0;
	for (int waited = 0; waited < timeout_ms; waited += 20) {
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

int broker_stop(struct broker *b)
{
	if (!b->pid)
		return 0;
	kill(b->pid, SIGTERM);
	return broker_wait_exit(b, 10000);
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
