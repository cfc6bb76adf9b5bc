/*
 * test_rmq_defs.c - a definitions file exported from Debian's
 * rabbitmq-server 3.10.8 (tests/fixtures/rabbitmq-3.10-definitions.json,
 * made with rabbitmqctl: users alice and bob with their RabbitMQ password
 * hashes, a vhost with limits, permissions, a topic permission, a user
 * limit, exchanges with an alternate exchange, a queue, a binding)
 * imported with --definitions: the users log in with their RabbitMQ
 * passwords and get exactly the permissions and limits RabbitMQ gave them;
 * the import survives a restart without the file.
 *
 * Passwords: alice "alice-pw", bob "b0b secret", guest "guest".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <amqp.h>
#include <amqp_framing.h>

#include "harness.h"
#include "itest.h"
#include "itest_util.h"

static const char *fixture(void)
{
	static char path[1024];
	const char *top = getenv("top_srcdir");
	snprintf(path, sizeof(path), "%s/tests/fixtures/rabbitmq-3.10-definitions.json",
	         top && *top ? top : ".");
	return path;
}

static bool start(struct broker *b, const char *data, bool with_file)
{
	const char *args[] = {
	    "--data-dir", data, "--login-failure-delay", "0", with_file ? "--definitions" : NULL,
	    fixture(),    NULL};
	return broker_start(b, args) == 0;
}

static amqp_connection_state_t as(struct broker *b, const char *user, const char *pass,
                                  const char *vhost, amqp_rpc_reply_t *r)
{
	return broker_connect_ex(b, user, pass, vhost, 131072, 0, r);
}

static void test_rmq_users_log_in(void)
{
	if (broker_external())
		return;
	char data[700];
	snprintf(data, sizeof(data), "%s/rmqdefs-login", itest_scratch_dir());
	struct broker b;
	CU_ASSERT_FATAL(start(&b, data, true));
	amqp_rpc_reply_t r;
	amqp_connection_state_t a = as(&b, "alice", "alice-pw", "fixture-vh", &r);
	CU_ASSERT_PTR_NOT_NULL(a);
	/* configure ^alice\..*: her own names only. */
	amqp_queue_declare(a, 1, amqp_cstring_bytes("alice.mine"), 0, 0, 0, 0, amqp_empty_table);
	CU_ASSERT(rpc_ok(a));
	amqp_queue_declare(a, 1, amqp_cstring_bytes("other"), 0, 0, 0, 0, amqp_empty_table);
	struct close_info ci = rpc_close(a, 1);
	CHECK_CLOSE(ci, CLOSE_CHANNEL, 403,
	            "ACCESS_REFUSED - configure access to queue 'other' in vhost 'fixture-vh' "
	            "refused for user 'alice'");
	/* The queue, exchanges and binding came along: a message to
	 * alice.events with orders.* reaches alice.q. */
	chan_reopen(a, 1);
	CU_ASSERT_EQUAL(publish(a, "alice.events", "orders.new", "o1"), 0);
	struct got g = get1(a, "alice.q", true);
	CU_ASSERT(g.status == 1 && strcmp(g.body, "o1") == 0);
	broker_disconnect(a);
	/* alice's permissions on "/" are all empty: vhost access is allowed
	 * (she has a permission entry) but nothing can be declared. */
	a = as(&b, "alice", "alice-pw", "/", &r);
	CU_ASSERT_PTR_NOT_NULL_FATAL(a);
	amqp_queue_declare(a, 1, amqp_cstring_bytes("x"), 0, 0, 0, 0, amqp_empty_table);
	ci = rpc_close(a, 1);
	CU_ASSERT_EQUAL(ci.code, 403);
	broker_disconnect(a);
	/* A wrong password is refused. */
	CU_ASSERT_PTR_NULL(as(&b, "alice", "not-it", "fixture-vh", &r));
	/* bob: write only on amq.topic, and there only bob.* routing keys. */
	amqp_connection_state_t c = as(&b, "bob", "b0b secret", "/", &r);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT(qdecl(c, "bobq"));
	amqp_queue_bind(c, 1, amqp_cstring_bytes("bobq"), amqp_cstring_bytes("amq.topic"),
	                amqp_cstring_bytes("#"), amqp_empty_table);
	ci = rpc_close(c, 1); /* queue.bind needs write on the queue */
	CHECK_CLOSE(ci, CLOSE_CHANNEL, 403,
	            "ACCESS_REFUSED - write access to queue 'bobq' in vhost '/' refused for user "
	            "'bob'");
	chan_reopen(c, 1);
	CU_ASSERT_EQUAL(publish(c, "amq.topic", "bob.news", "fine"), 0);
	CU_ASSERT(qdecl(c, "sync")); /* a round trip: the publish was accepted */
	publish(c, "amq.topic", "carol.news", "no");
	ci = wait_close(c, 1, 10000);
	CHECK_CLOSE(
	    ci, CLOSE_CHANNEL, 403,
	    "ACCESS_REFUSED - write access to topic 'carol.news' in exchange 'amq.topic' in "
	    "vhost '/' refused for user 'bob'");
	chan_reopen(c, 1);
	publish(c, "amq.direct", "k", "no");
	ci = wait_close(c, 1, 10000);
	CHECK_CLOSE(ci, CLOSE_CHANNEL, 403,
	            "ACCESS_REFUSED - write access to exchange 'amq.direct' in vhost '/' refused "
	            "for user 'bob'");
	/* max-channels 4 (channel 1 was closed by the last error). */
	for (amqp_channel_t ch = 2; ch <= 5; ch++)
		CU_ASSERT(open_channel(c, ch));
	amqp_channel_open(c, 6);
	amqp_rpc_reply_t rr = amqp_get_rpc_reply(c);
	CU_ASSERT_EQUAL(rr.reply_type, AMQP_RESPONSE_SERVER_EXCEPTION);
	if (rr.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION &&
	    rr.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
		amqp_connection_close_t *cc = rr.reply.decoded;
		CU_ASSERT_EQUAL(cc->reply_code, 530);
		CU_ASSERT(bytes_eq(cc->reply_text,
		                   "NOT_ALLOWED - number of channels opened for user 'bob' has "
		                   "reached the maximum allowed user limit of 4"));
	}
	amqp_destroy_connection(c);
	CU_ASSERT_EQUAL(broker_stop(&b), 0);
}

static void test_rmq_vhost_limits_and_restart(void)
{
	if (broker_external())
		return;
	char data[700];
	snprintf(data, sizeof(data), "%s/rmqdefs-limits", itest_scratch_dir());
	struct broker b;
	CU_ASSERT_FATAL(start(&b, data, true));
	amqp_rpc_reply_t r;
	amqp_connection_state_t a = as(&b, "alice", "alice-pw", "fixture-vh", &r);
	CU_ASSERT_PTR_NOT_NULL_FATAL(a);
	/* max-queues 3: alice.q is one. */
	CU_ASSERT(qdecl(a, "alice.1"));
	CU_ASSERT(qdecl(a, "alice.2"));
	amqp_queue_declare(a, 1, amqp_cstring_bytes("alice.3"), 0, 0, 0, 0, amqp_empty_table);
	struct close_info ci = rpc_close(a, 1);
	CHECK_CLOSE(ci, CLOSE_CHANNEL, 406,
	            "PRECONDITION_FAILED - cannot declare queue 'alice.3': queue limit in vhost "
	            "'fixture-vh' (3) is reached");
	/* max-connections 5: this is the first. */
	amqp_connection_state_t more[4];
	for (int i = 0; i < 4; i++) {
		more[i] = as(&b, "alice", "alice-pw", "fixture-vh", &r);
		CU_ASSERT_PTR_NOT_NULL(more[i]);
	}
	CU_ASSERT_PTR_NULL(as(&b, "guest", "guest", "fixture-vh", &r));
	for (int i = 0; i < 4; i++)
		if (more[i])
			broker_disconnect(more[i]);
	broker_disconnect(a);
	CU_ASSERT_EQUAL(broker_stop(&b), 0);
	/* Restart without the file: everything came from the data dir. */
	CU_ASSERT_FATAL(start(&b, data, false));
	a = as(&b, "bob", "b0b secret", "/", &r);
	CU_ASSERT_PTR_NOT_NULL(a);
	if (a)
		broker_disconnect(a);
	a = as(&b, "alice", "alice-pw", "fixture-vh", &r);
	CU_ASSERT_PTR_NOT_NULL_FATAL(a);
	amqp_queue_declare(a, 1, amqp_cstring_bytes("alice.q"), 1, 0, 0, 0, amqp_empty_table);
	CU_ASSERT(rpc_ok(a)); /* passive: still there */
	broker_disconnect(a);
	CU_ASSERT_EQUAL(broker_stop(&b), 0);
}

void suite_rmq_defs(void)
{
	ITEST_SUITE("rmqdefs", ITEST(test_rmq_users_log_in),
	            ITEST(test_rmq_vhost_limits_and_restart));
}
