/*
 * test_channel.c - suite "channel": channel lifecycle as RabbitMQ 3.10
 * implements it, through rabbitmq-c.
 *
 * Covers: using channels 1, 2, 100 and 2047 side by side; channel_max
 * (opening a 2048th channel: 530; channel number 2048 on an otherwise idle
 * connection: 504 for amqpd, accepted by RabbitMQ); channel.open on an open
 * channel (504); channel.flow (active=true -> flow-ok, active=false -> 540);
 * channel errors closing only their channel (404 on passive declare; the
 * other channel keeps working, the number can be reopened after close-ok);
 * methods on a closing channel being discarded until close-ok; the
 * client-initiated channel.close handshake; a method on a closed channel
 * (504); unacked deliveries requeued when their channel closes.
 *
 * Reply codes, texts and class/method ids are asserted exactly as RabbitMQ
 * sends them.  Every RPC has a timeout, so a broker that ignores a frame
 * fails the test instead of hanging it.
 */
#include <stdio.h>
#include <string.h>
#include <sys/time.h>

#include "itest.h"
#include "itest_util.h"

/* Checks r is a server channel.close / connection.close (kind) with the given
 * code, reply text (exact, or just a prefix when prefix_only) and offending
 * class/method.  Prints what arrived on a mismatch. */
static bool check_close(amqp_rpc_reply_t r, amqp_method_number_t kind, uint16_t code,
                        const char *text, bool prefix_only, uint16_t cls, uint16_t mth)
{
	CU_ASSERT_EQUAL(r.reply_type, AMQP_RESPONSE_SERVER_EXCEPTION);
	CU_ASSERT_EQUAL(r.reply.id, kind);
	if (r.reply_type != AMQP_RESPONSE_SERVER_EXCEPTION || r.reply.id != kind) {
		fprintf(stderr, "\n  want %s %u, got reply_type %d method 0x%08x\n",
		        kind == AMQP_CHANNEL_CLOSE_METHOD ? "channel.close" : "connection.close",
		        code, r.reply_type, r.reply.id);
		return false;
	}
	/* amqp_channel_close_t and amqp_connection_close_t share a layout */
	amqp_channel_close_t *m = r.reply.decoded;
	bool text_ok =
	    prefix_only ? bytes_prefix(m->reply_text, text) : bytes_eq(m->reply_text, text);
	CU_ASSERT_EQUAL(m->reply_code, code);
	CU_ASSERT(text_ok);
	CU_ASSERT_EQUAL(m->class_id, cls);
	CU_ASSERT_EQUAL(m->method_id, mth);
	if (m->reply_code != code || !text_ok || m->class_id != cls || m->method_id != mth)
		fprintf(stderr, "\n  want %u '%s' (%u,%u), got %u '%.*s' (%u,%u)\n", code, text,
		        cls, mth, m->reply_code, (int)m->reply_text.len,
		        (char *)m->reply_text.bytes, m->class_id, m->method_id);
	return true;
}

/* After a server channel.close: acknowledge it. */
static void send_channel_close_ok(amqp_connection_state_t c, amqp_channel_t ch)
{
	amqp_channel_close_ok_t ok = {0};
	CU_ASSERT_EQUAL(amqp_send_method(c, ch, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok), AMQP_STATUS_OK);
}

/* Declares an exclusive queue on ch, publishes body to it and gets it back
 * on the same channel; true when the round trip works. */
static bool roundtrip(amqp_connection_state_t c, amqp_channel_t ch, const char *body)
{
	amqp_queue_declare_ok_t *ok =
	    amqp_queue_declare(c, ch, amqp_empty_bytes, 0, 0, 1, 1, amqp_empty_table);
	if (!ok)
		return false;
	char q[256];
	snprintf(q, sizeof(q), "%.*s", (int)ok->queue.len, (char *)ok->queue.bytes);
	if (amqp_basic_publish(c, ch, amqp_empty_bytes, amqp_cstring_bytes(q), 0, 0, NULL,
	                       amqp_cstring_bytes(body)) != AMQP_STATUS_OK)
		return false;
	amqp_rpc_reply_t g = amqp_basic_get(c, ch, amqp_cstring_bytes(q), 1);
	if (g.reply_type != AMQP_RESPONSE_NORMAL || g.reply.id != AMQP_BASIC_GET_OK_METHOD)
		return false;
	amqp_message_t m;
	if (amqp_read_message(c, ch, &m, 0).reply_type != AMQP_RESPONSE_NORMAL)
		return false;
	bool same = bytes_eq(m.body, body);
	amqp_destroy_message(&m);
	amqp_queue_delete(c, ch, amqp_cstring_bytes(q), 0, 0);
	return same && amqp_get_rpc_reply(c).reply_type == AMQP_RESPONSE_NORMAL;
}

static void test_channel_numbers(void)
{
	static const amqp_channel_t chans[] = {1, 2, 100, 2047};
	amqp_connection_state_t c = conn_open();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	for (size_t i = 1; i < sizeof(chans) / sizeof(chans[0]); i++)
		CU_ASSERT(open_channel(c, chans[i]));
	/* interleaved use: each channel keeps its own state */
	for (int round = 0; round < 2; round++) {
		for (size_t i = 0; i < sizeof(chans) / sizeof(chans[0]); i++) {
			char body[32];
			snprintf(body, sizeof(body), "ch%u-r%d", chans[i], round);
			CU_ASSERT(roundtrip(c, chans[i], body));
		}
	}
	for (size_t i = 1; i < sizeof(chans) / sizeof(chans[0]); i++)
		CU_ASSERT_EQUAL(amqp_channel_close(c, chans[i], AMQP_REPLY_SUCCESS).reply_type,
		                AMQP_RESPONSE_NORMAL);
	CU_ASSERT(roundtrip(c, 1, "still"));
	broker_disconnect(c);
}

/* channel_max 2047: with channels 1..2047 open, a 2048th is refused with a
 * connection error (RabbitMQ counts channels: 530, class/method 0/0). */
static void test_channel_max_exhausted(void)
{
	amqp_connection_state_t c = conn_open();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_EQUAL(amqp_get_channel_max(c), 2047);
	int opened = 1;
	for (amqp_channel_t ch = 2; ch <= 2047; ch++) {
		if (!open_channel(c, ch))
			break;
		opened++;
		amqp_maybe_release_buffers(c);
	}
	CU_ASSERT_EQUAL_FATAL(opened, 2047);
	CU_ASSERT(roundtrip(c, 2047, "last"));
	amqp_channel_open(c, 2048);
	amqp_rpc_reply_t r = amqp_get_rpc_reply(c);
	if (check_close(r, AMQP_CONNECTION_CLOSE_METHOD, 530,
	                "NOT_ALLOWED - number of channels opened (2047) has reached the "
	                "negotiated channel_max (2047)",
	                false, 0, 0))
		finish_server_close(c);
	else
		amqp_destroy_connection(c);
}

/* A channel number above the negotiated channel_max.  Requirement for amqpd:
 * connection.close 504 CHANNEL_ERROR.  RabbitMQ 3.10 deviates: it only limits
 * the number of open channels, so it opens channel 2048 (and even 65535) on
 * a connection that has fewer than 2047 channels open. */
static void test_channel_number_above_max(void)
{
	amqp_connection_state_t c = conn_open();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	amqp_channel_open(c, 2048);
	amqp_rpc_reply_t r = amqp_get_rpc_reply(c);
	if (broker_external()) {
		CU_ASSERT_EQUAL(r.reply_type, AMQP_RESPONSE_NORMAL);
		broker_disconnect(c);
		return;
	}
	if (check_close(r, AMQP_CONNECTION_CLOSE_METHOD, 504, "CHANNEL_ERROR - ", true, 20, 10))
		finish_server_close(c);
	else
		amqp_destroy_connection(c);
}

static void test_channel_open_twice(void)
{
	amqp_connection_state_t c = conn_open();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	amqp_channel_open(c, 1);
	amqp_rpc_reply_t r = amqp_get_rpc_reply(c);
	if (check_close(r, AMQP_CONNECTION_CLOSE_METHOD, 504,
	                "CHANNEL_ERROR - second 'channel.open' seen", false, 20, 10))
		finish_server_close(c);
	else
		amqp_destroy_connection(c);
}

static void test_channel_flow_active(void)
{
	amqp_connection_state_t c = conn_open();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	amqp_channel_flow_ok_t *ok = amqp_channel_flow(c, 1, 1);
	CU_ASSERT_PTR_NOT_NULL(ok);
	CU_ASSERT(ok && ok->active == 1);
	CU_ASSERT(roundtrip(c, 1, "after flow"));
	broker_disconnect(c);
}

/* RabbitMQ does not implement flow(active=false) from clients: 540, a
 * connection error naming channel.flow (amqp091-go's suite relies on it). */
static void test_channel_flow_inactive(void)
{
	amqp_connection_state_t c = conn_open();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	amqp_channel_flow_ok_t *ok = amqp_channel_flow(c, 1, 0);
	CU_ASSERT_PTR_NULL(ok);
	if (check_close(amqp_get_rpc_reply(c), AMQP_CONNECTION_CLOSE_METHOD, 540,
	                "NOT_IMPLEMENTED - active=false", false, 20, 20))
		finish_server_close(c);
	else
		amqp_destroy_connection(c);
}

/* Passive declare of a missing queue on ch: the 404 channel.close, exactly. */
static bool provoke_404(amqp_connection_state_t c, amqp_channel_t ch, const char *missing)
{
	char text[512];
	snprintf(text, sizeof(text), "NOT_FOUND - no queue '%s' in vhost '/'", missing);
	amqp_queue_declare_ok_t *ok =
	    amqp_queue_declare(c, ch, amqp_cstring_bytes(missing), 1, 0, 0, 0, amqp_empty_table);
	CU_ASSERT_PTR_NULL(ok);
	return check_close(amqp_get_rpc_reply(c), AMQP_CHANNEL_CLOSE_METHOD, 404, text, false, 50,
	                   10);
}

static void test_channel_error_isolated(void)
{
	char missing[128];
	name_of(missing, sizeof(missing), "missing");
	amqp_connection_state_t c = conn_open();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_FATAL(open_channel(c, 2));
	CU_ASSERT_FATAL(provoke_404(c, 1, missing));
	/* channel 2 is unaffected, before and after channel 1's close-ok */
	CU_ASSERT(roundtrip(c, 2, "ch2 works"));
	send_channel_close_ok(c, 1);
	CU_ASSERT(roundtrip(c, 2, "ch2 still works"));
	/* channel 1 can be reopened and used */
	CU_ASSERT(open_channel(c, 1));
	CU_ASSERT(roundtrip(c, 1, "ch1 reopened"));
	/* and fail and recover once more */
	CU_ASSERT(provoke_404(c, 1, missing));
	send_channel_close_ok(c, 1);
	CU_ASSERT(open_channel(c, 1));
	CU_ASSERT(roundtrip(c, 1, "ch1 reopened again"));
	broker_disconnect(c);
}

/* After the server's channel.close, everything but close/close-ok on that
 * channel is discarded until the client's close-ok (AMQP 0-9-1 spec). */
static void test_channel_closing_discards_methods(void)
{
	char missing[128];
	name_of(missing, sizeof(missing), "missing2");
	amqp_connection_state_t c = conn_open();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_FATAL(provoke_404(c, 1, missing));
	/* neither answered nor a second error */
	amqp_queue_declare_t qd = {
	    .queue = amqp_cstring_bytes(missing), .passive = 1, .arguments = amqp_empty_table};
	CU_ASSERT_EQUAL(amqp_send_method(c, 1, AMQP_QUEUE_DECLARE_METHOD, &qd), AMQP_STATUS_OK);
	amqp_basic_qos_t qos = {.prefetch_count = 10};
	CU_ASSERT_EQUAL(amqp_send_method(c, 1, AMQP_BASIC_QOS_METHOD, &qos), AMQP_STATUS_OK);
	/* (Not channel.open: RabbitMQ 3.10 does not discard that one; it answers
	 * it after the close-ok and then sees the next open as a second one.) */
	send_channel_close_ok(c, 1);
	/* the reply to this open must be the first thing to arrive on channel 1 */
	amqp_channel_open(c, 1);
	CU_ASSERT_EQUAL(amqp_get_rpc_reply(c).reply_type, AMQP_RESPONSE_NORMAL);
	CU_ASSERT(roundtrip(c, 1, "after discard"));
	broker_disconnect(c);
}

static void test_channel_close_by_client(void)
{
	amqp_connection_state_t c = conn_open();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_FATAL(open_channel(c, 3));
	CU_ASSERT(roundtrip(c, 3, "before close"));
	amqp_rpc_reply_t r = amqp_channel_close(c, 3, AMQP_REPLY_SUCCESS);
	CU_ASSERT_EQUAL(r.reply_type, AMQP_RESPONSE_NORMAL);
	CU_ASSERT_EQUAL(r.reply.id, AMQP_CHANNEL_CLOSE_OK_METHOD);
	CU_ASSERT(open_channel(c, 3));
	CU_ASSERT(roundtrip(c, 3, "after reopen"));
	CU_ASSERT(roundtrip(c, 1, "ch1"));
	broker_disconnect(c);
}

static void test_method_on_closed_channel(void)
{
	amqp_connection_state_t c = conn_open();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_FATAL(open_channel(c, 3));
	CU_ASSERT_EQUAL(amqp_channel_close(c, 3, AMQP_REPLY_SUCCESS).reply_type,
	                AMQP_RESPONSE_NORMAL);
	amqp_queue_declare(c, 3, amqp_empty_bytes, 0, 0, 1, 1, amqp_empty_table);
	if (check_close(amqp_get_rpc_reply(c), AMQP_CONNECTION_CLOSE_METHOD, 504,
	                "CHANNEL_ERROR - expected 'channel.open'", false, 50, 10))
		finish_server_close(c);
	else
		amqp_destroy_connection(c);
}

/* Unacked deliveries go back to their queue (redelivered) when the channel
 * that received them is closed; the connection's exclusive queue stays. */
static void test_channel_close_requeues_unacked(void)
{
	char q[128];
	name_of(q, sizeof(q), "requeue");
	amqp_connection_state_t c = conn_open();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	amqp_queue_declare(c, 1, amqp_cstring_bytes(q), 0, 0, 1, 0, amqp_empty_table);
	CU_ASSERT_EQUAL_FATAL(amqp_get_rpc_reply(c).reply_type, AMQP_RESPONSE_NORMAL);
	CU_ASSERT(amqp_basic_publish(c, 1, amqp_empty_bytes, amqp_cstring_bytes(q), 0, 0, NULL,
	                             amqp_cstring_bytes("m")) == AMQP_STATUS_OK);
	CU_ASSERT_FATAL(open_channel(c, 2));
	amqp_rpc_reply_t g = amqp_basic_get(c, 2, amqp_cstring_bytes(q), 0);
	CU_ASSERT_EQUAL_FATAL(g.reply.id, AMQP_BASIC_GET_OK_METHOD);
	CU_ASSERT_FALSE(((amqp_basic_get_ok_t *)g.reply.decoded)->redelivered);
	amqp_message_t m;
	CU_ASSERT_EQUAL(amqp_read_message(c, 2, &m, 0).reply_type, AMQP_RESPONSE_NORMAL);
	amqp_destroy_message(&m);
	amqp_queue_declare_ok_t *ok =
	    amqp_queue_declare(c, 1, amqp_cstring_bytes(q), 1, 0, 0, 0, amqp_empty_table);
	CU_ASSERT(ok && ok->message_count == 0);
	CU_ASSERT_EQUAL(amqp_channel_close(c, 2, AMQP_REPLY_SUCCESS).reply_type,
	                AMQP_RESPONSE_NORMAL);
	g = amqp_basic_get(c, 1, amqp_cstring_bytes(q), 1);
	CU_ASSERT_EQUAL_FATAL(g.reply.id, AMQP_BASIC_GET_OK_METHOD);
	CU_ASSERT_TRUE(((amqp_basic_get_ok_t *)g.reply.decoded)->redelivered);
	CU_ASSERT_EQUAL(amqp_read_message(c, 1, &m, 0).reply_type, AMQP_RESPONSE_NORMAL);
	CU_ASSERT(bytes_eq(m.body, "m"));
	amqp_destroy_message(&m);
	amqp_queue_delete(c, 1, amqp_cstring_bytes(q), 0, 0);
	broker_disconnect(c);
}

void suite_channel(void)
{
	ITEST_SUITE("channel", ITEST(test_channel_numbers), ITEST(test_channel_max_exhausted),
	            ITEST(test_channel_number_above_max), ITEST(test_channel_open_twice),
	            ITEST(test_channel_flow_active), ITEST(test_channel_flow_inactive),
	            ITEST(test_channel_error_isolated),
	            ITEST(test_channel_closing_discards_methods),
	            ITEST(test_channel_close_by_client), ITEST(test_method_on_closed_channel),
	            ITEST(test_channel_close_requeues_unacked));
}
