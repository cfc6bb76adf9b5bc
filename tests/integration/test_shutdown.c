/*
 * test_shutdown.c - SIGTERM: amqpd stops accepting, closes every
 * connection with 320 CONNECTION_FORCED and exits 0.  Uses its own amqpd;
 * skipped against an external broker.
 */
#include <signal.h>
#include <string.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "itest.h"
#include "itest_util.h"

static void test_sigterm_forces_close(void)
{
	if (broker_external())
		return;
	struct broker b;
	CU_ASSERT_FATAL(broker_start(&b, NULL) == 0);
	amqp_connection_state_t c1 = broker_connect(&b), c2 = broker_connect(&b);
	CU_ASSERT_FATAL(c1 != NULL && c2 != NULL);

	CU_ASSERT_EQUAL(kill(b.pid, SIGTERM), 0);
	amqp_connection_state_t cs[2] = {c1, c2};
	for (int i = 0; i < 2; i++) {
		struct timeval tv = {5, 0};
		amqp_frame_t f;
		int rc = amqp_simple_wait_frame_noblock(cs[i], &f, &tv);
		CU_ASSERT_EQUAL(rc, AMQP_STATUS_OK);
		if (rc != AMQP_STATUS_OK)
			continue;
		CU_ASSERT_EQUAL(f.frame_type, AMQP_FRAME_METHOD);
		CU_ASSERT_EQUAL(f.channel, 0);
		CU_ASSERT_EQUAL(f.payload.method.id, AMQP_CONNECTION_CLOSE_METHOD);
		if (f.payload.method.id == AMQP_CONNECTION_CLOSE_METHOD) {
			amqp_connection_close_t *m = f.payload.method.decoded;
			CU_ASSERT_EQUAL(m->reply_code, 320);
			const char *want = "CONNECTION_FORCED - broker forced connection closure "
			                   "with reason 'shutdown'";
			CU_ASSERT(m->reply_text.len == strlen(want) &&
			          memcmp(m->reply_text.bytes, want, strlen(want)) == 0);
			amqp_connection_close_ok_t ok = {0};
			amqp_send_method(cs[i], 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
		}
	}
	/* Exits 0 once the connections are gone. */
	CU_ASSERT_EQUAL(broker_wait_exit(&b, 10000), 0);
	/* Nothing listens any more. */
	CU_ASSERT(broker_raw_connect(&b) < 0);
	amqp_destroy_connection(c1);
	amqp_destroy_connection(c2);
}

/* SIGTERM while persistent messages wait for their sync: the sync finishes
 * and every message the broker took is confirmed before the 320 close, so
 * clients do not retry (and duplicate) messages already made durable.  A
 * synchronous method after the publishes proves the broker took them all. */
static void test_sigterm_confirms_before_close(void)
{
	if (broker_external())
		return;
	struct broker b;
	CU_ASSERT_FATAL(broker_start(&b, NULL) == 0);
	amqp_connection_state_t c = broker_connect(&b);
	CU_ASSERT_FATAL(c != NULL);
	amqp_queue_declare(c, 1, amqp_cstring_bytes("shutdown-q"), 0, 1, 0, 0, amqp_empty_table);
	CU_ASSERT_FATAL(amqp_get_rpc_reply(c).reply_type == AMQP_RESPONSE_NORMAL);
	amqp_confirm_select(c, 1);
	CU_ASSERT_FATAL(amqp_get_rpc_reply(c).reply_type == AMQP_RESPONSE_NORMAL);
	enum { N = 3000 };
	static char body[1024];
	memset(body, 'x', sizeof(body));
	amqp_basic_properties_t props = {._flags = AMQP_BASIC_DELIVERY_MODE_FLAG,
	                                 .delivery_mode = 2};
	for (int i = 0; i < N; i++)
		CU_ASSERT_EQUAL_FATAL(
		    amqp_basic_publish(c, 1, amqp_empty_bytes, amqp_cstring_bytes("shutdown-q"), 0,
		                       0, &props, (amqp_bytes_t){sizeof(body), body}),
		    0);
	/* Frames are handled in order: once this answers, all N were taken. */
	CU_ASSERT_FATAL(open_channel(c, 2));
	CU_ASSERT_EQUAL(kill(b.pid, SIGTERM), 0);
	uint64_t acked = 0;
	bool nacked = false, closed = false;
	while (!closed) {
		struct timeval tv = {10, 0};
		amqp_frame_t f;
		int rc = amqp_simple_wait_frame_noblock(c, &f, &tv);
		CU_ASSERT_EQUAL_FATAL(rc, AMQP_STATUS_OK);
		if (f.frame_type != AMQP_FRAME_METHOD)
			continue;
		if (f.payload.method.id == AMQP_BASIC_ACK_METHOD) {
			amqp_basic_ack_t *a = f.payload.method.decoded;
			CU_ASSERT(a->delivery_tag > acked);
			acked = a->delivery_tag;
		} else if (f.payload.method.id == AMQP_BASIC_NACK_METHOD) {
			nacked = true;
		} else if (f.payload.method.id == AMQP_CONNECTION_CLOSE_METHOD) {
			amqp_connection_close_t *m = f.payload.method.decoded;
			CU_ASSERT_EQUAL(m->reply_code, 320);
			closed = true;
			amqp_connection_close_ok_t ok = {0};
			amqp_send_method(c, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
		}
	}
	CU_ASSERT_EQUAL(acked, N);
	CU_ASSERT(!nacked);
	CU_ASSERT_EQUAL(broker_wait_exit(&b, 20000), 0);
	amqp_destroy_connection(c);
}

void suite_shutdown(void)
{
	ITEST_SUITE("shutdown", ITEST(test_sigterm_forces_close),
	            ITEST(test_sigterm_confirms_before_close));
}
