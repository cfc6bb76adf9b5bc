/*
 * itest.h - shared declarations for the rabbitmq-c integration tests.
 * Each test_*.c defines its suite functions below; main.c starts one amqpd
 * (g_broker) for the whole run, then runs every suite against it.
 */
#ifndef ITEST_H
#define ITEST_H

#include <CUnit/CUnit.h>

#include "harness.h"

void suite_connection(void); /* test_connection.c: handshake, auth, tune, heartbeats */
void suite_channel(void);    /* test_channel.c: channels, flow, errors, close */
void suite_badinput(void);   /* test_badinput.c: malformed frames over raw sockets */
void suite_exchange(void);   /* test_exchange.c: exchanges, bindings, routing */
void suite_queue(void);      /* test_queue.c: queues: declare, bind, purge, delete */
void suite_basic(void);      /* test_basic.c: publish, consume, get, ack, qos */
void suite_bodies(void);     /* test_bodies.c: bodies split across frames and reads */
void suite_tls(void);        /* test_tls.c: amqps listeners, mutual TLS, SIGHUP reload */
void suite_confirm_tx(void); /* test_confirm_tx.c: confirms and transactions */
void suite_limits(void);     /* test_limits.c: memory alarm, blocked publishers */
void suite_durability(void); /* test_durability.c: restarts, kill -9, what survives */
void suite_shutdown(void);   /* test_shutdown.c: SIGTERM closes with 320 */
void suite_plugins(void);    /* test_plugins.c: an ABI 1 plugin, --plugin-opt */
void suite_auth_http(void);  /* test_auth_http.c: --auth-backends http against a service */
void suite_rmq_defs(void);   /* test_rmq_defs.c: a RabbitMQ definitions export imported */
void suite_auth(void);       /* test_auth.c: users, permissions, limits, EXTERNAL */
void suite_oauth2(void);     /* test_auth_oauth2.c: JWT logins, scopes, update-secret */
void suite_queue_ext(void);  /* test_queue_ext.c: consumer timeout, restarts, kill -9 */

#define ITEST_SUITE(name, ...)                                                                     \
	do {                                                                                       \
		CU_pSuite s_ = CU_add_suite(name, NULL, NULL);                                     \
		struct {                                                                           \
			const char *n;                                                             \
			CU_TestFunc f;                                                             \
		} t_[] = {__VA_ARGS__};                                                            \
		for (size_t i_ = 0; s_ && i_ < sizeof(t_) / sizeof(t_[0]); i_++)                   \
			CU_add_test(s_, t_[i_].n, t_[i_].f);                                       \
	} while (0)
#define ITEST(f)                                                                                   \
	{                                                                                          \
#f, f                                                                              \
	}

#endif
