/*
 * harness.h - start a real amqpd for an integration test, or use an
 * external broker.
 *
 * broker_start() runs $top_builddir/server/amqpd on a free loopback port
 * (never a fixed one) and waits until it accepts connections.  Its stderr
 * goes to amqpd-<n>-<port>.log and, unless extra_args name a --data-dir, its
 * data directory is amqpd-<n>-<port>.data, both in the run's scratch
 * directory (itest_scratch_dir()): never in the source or build tree.  With
 * AMQPD_TEST_EXTERNAL=host:port set, no broker is started and that one is
 * used instead (to check the tests themselves against RabbitMQ).
 * Single-threaded test use only.
 */
#ifndef HARNESS_H
#define HARNESS_H

#include <stdbool.h>
#include <stdint.h>

#include <amqp.h>

struct broker {
	int pid; /* 0 when external */
	char host[64];
	int port;
	char log_path[512];
};

/* Start (or attach to) a broker; extra_args are appended to amqpd's command
 * line (NULL-terminated, may be NULL).  Returns 0 or -1. */
int broker_start(struct broker *b, const char *const *extra_args);
/* SIGTERM and wait; returns amqpd's exit status (or -1). */
int broker_stop(struct broker *b);
/* Wait up to timeout_ms for the broker to exit (killed after that);
 * returns its exit status, or -1 if it was killed or did not exit 0-255. */
int broker_wait_exit(struct broker *b, int timeout_ms);
/* True while the broker process is alive (always true when external). */
bool broker_alive(struct broker *b);
bool broker_external(void);
/* A TCP port on 127.0.0.1 that nothing listens on (just now). */
int harness_free_port(void);

/* The run's scratch directory, $TMPDIR/amqpd-itest-<pid>-XXXXXX (or under
 * /tmp), created (mkdtemp) on first use and said on stderr.  When the
 * process exits with status 0 it is removed with everything in it; after a
 * failing run (or with ITEST_KEEP set) it is kept and its path printed.
 * NULL if it cannot be created. */
const char *itest_scratch_dir(void);

/* rabbitmq-c helpers: open a logged-in connection (guest/guest, vhost "/"),
 * with channel 1 open.  NULL on failure. */
amqp_connection_state_t broker_connect(struct broker *b);
amqp_connection_state_t broker_connect_ex(struct broker *b, const char *user, const char *pass,
                                          const char *vhost, int frame_max, int heartbeat,
                                          amqp_rpc_reply_t *reply_out);
void broker_disconnect(amqp_connection_state_t c);

/* Raw TCP socket to the broker (for malformed-input tests); -1 on error. */
int broker_raw_connect(struct broker *b);

/* The test process's global broker (started once by the test main). */
extern struct broker g_broker;

#endif
