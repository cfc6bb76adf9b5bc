/*
 * test_limits.c - resource limits: the memory high watermark blocks
 * publishers (connection.blocked / unblocked to clients that advertise the
 * capability) while consumers keep working.  Uses its own amqpd started
 * with a small --memory-high-watermark; skipped against an external broker.
 */
#include <amqp_tcp_socket.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "itest.h"

static amqp_connection_state_t login_blocked_capable(struct broker *b)
{
	amqp_connection_state_t c = amqp_new_connection();
	amqp_socket_t *s = amqp_tcp_socket_new(c);
	if (!s || amqp_socket_open(s, b->host, b->port) != AMQP_STATUS_OK) {
		amqp_destroy_connection(c);
		return NULL;
	}
	amqp_table_entry_t cap = {amqp_cstring_bytes("connection.blocked"),
	                          {.kind = AMQP_FIELD_KIND_BOOLEAN, .value.boolean = 1}};
	amqp_table_t caps = {1, &cap};
	amqp_table_entry_t prop = {amqp_cstring_bytes("capabilities"),
	                           {.kind = AMQP_FIELD_KIND_TABLE, .value.table = caps}};
	amqp_table_t props = {1, &prop};
	amqp_rpc_reply_t r = amqp_login_with_properties(c, "/", 0, 131072, 0, &props,
	                                                AMQP_SASL_METHOD_PLAIN, "guest", "guest");
	if (r.reply_type != AMQP_RESPONSE_NORMAL || !amqp_channel_open(c, 1)) {
		amqp_destroy_connection(c);
		return NULL;
	}
	return c;
}

/* Wait for a connection.blocked / unblocked method; true if it came. */
static bool wait_method(amqp_connection_state_t c, amqp_method_number_t id, int secs)
{
	struct timeval tv = {secs, 0};
	amqp_frame_t f;
	for (;;) {
		int rc = amqp_simple_wait_frame_noblock(c, &f, &tv);
		if (rc != AMQP_STATUS_OK)
			return false;
		if (f.frame_type == AMQP_FRAME_METHOD && f.payload.method.id == id)
			return true;
	}
}

static void test_memory_alarm_blocks_publishers(void)
{
	if (broker_external())
		return;
	struct broker b;
	const char *args[] = {"--memory-high-watermark", "1000000", NULL};
	CU_ASSERT_FATAL(broker_start(&b, args) == 0);
	amqp_connection_state_t pub = login_blocked_capable(&b);
	amqp_connection_state_t other = broker_connect(&b);
	CU_ASSERT_FATAL(pub != NULL && other != NULL);

	amqp_bytes_t q = amqp_cstring_bytes("limits-q");
	amqp_queue_declare(other, 1, q, 0, 0, 0, 0, amqp_empty_table);
	CU_ASSERT_EQUAL(amqp_get_rpc_reply(other).reply_type, AMQP_RESPONSE_NORMAL);

	static char big[100000];
	memset(big, 'x', sizeof(big));
	amqp_bytes_t body = {sizeof(big), big};
	for (int i = 0; i < 15; i++)
		CU_ASSERT_EQUAL(amqp_basic_publish(pub, 1, amqp_empty_bytes, q, 0, 0, NULL, body),
		                AMQP_STATUS_OK);
	/* 1.5 MB queued: over the 1 MB watermark. */
	CU_ASSERT(wait_method(pub, AMQP_CONNECTION_BLOCKED_METHOD, 5));

	/* A connection that never published is not blocked: it drains. */
	amqp_queue_purge_ok_t *p = amqp_queue_purge(other, 1, q);
	CU_ASSERT_PTR_NOT_NULL(p);
	if (p)
		CU_ASSERT(p->message_count >= 9);
	CU_ASSERT(wait_method(pub, AMQP_CONNECTION_UNBLOCKED_METHOD, 5));

	/* Publishing works again. */
	CU_ASSERT_EQUAL(amqp_basic_publish(pub, 1, amqp_empty_bytes, q, 0, 0, NULL,
	                                   amqp_cstring_bytes("after")),
	                AMQP_STATUS_OK);
	amqp_queue_declare_ok_t *d = amqp_queue_declare(pub, 1, q, 1, 0, 0, 0, amqp_empty_table);
	CU_ASSERT(d != NULL && d->message_count >= 1);

	broker_disconnect(pub);
	broker_disconnect(other);
	CU_ASSERT_EQUAL(broker_stop(&b), 0);
}

/* disk_free_limit above the free space: publishers are blocked at once
 * ("low on disk"); a consumer connection keeps working. */
static void test_disk_alarm_blocks_publishers(void)
{
	if (broker_external())
		return;
	struct broker b;
	const char *args[] = {"--disk-free-limit", "1000000000000000000", NULL};
	CU_ASSERT_FATAL(broker_start(&b, args) == 0);
	amqp_connection_state_t other = broker_connect(&b);
	amqp_connection_state_t pub = login_blocked_capable(&b);
	CU_ASSERT_FATAL(pub != NULL && other != NULL);
	/* Told at connection.open already, as RabbitMQ does. */
	CU_ASSERT(wait_method(pub, AMQP_CONNECTION_BLOCKED_METHOD, 5));

	amqp_bytes_t q = amqp_cstring_bytes("limits-disk-q");
	amqp_queue_declare(other, 1, q, 0, 0, 0, 0, amqp_empty_table);
	CU_ASSERT_EQUAL(amqp_get_rpc_reply(other).reply_type, AMQP_RESPONSE_NORMAL);
	/* The first publish is read, then the connection's socket is not. */
	amqp_basic_publish(pub, 1, amqp_empty_bytes, q, 0, 0, NULL, amqp_cstring_bytes("one"));
	amqp_basic_publish(pub, 1, amqp_empty_bytes, q, 0, 0, NULL, amqp_cstring_bytes("two"));
	/* Give the broker time to read what it will read (separate sockets). */
	struct timespec ts = {0, 300 * 1000 * 1000};
	nanosleep(&ts, NULL);
	/* The other connection (not a publisher) still gets what arrived. */
	amqp_rpc_reply_t r = amqp_basic_get(other, 1, q, 1);
	CU_ASSERT_EQUAL(r.reply_type, AMQP_RESPONSE_NORMAL);
	if (r.reply_type == AMQP_RESPONSE_NORMAL && r.reply.id == AMQP_BASIC_GET_OK_METHOD) {
		amqp_message_t msg;
		CU_ASSERT_EQUAL(amqp_read_message(other, 1, &msg, 0).reply_type,
		                AMQP_RESPONSE_NORMAL);
		amqp_destroy_message(&msg);
	} else {
		CU_FAIL("basic.get found nothing: the first publish was not routed");
	}
	amqp_queue_declare_ok_t *d = amqp_queue_declare(other, 1, q, 1, 0, 0, 0, amqp_empty_table);
	CU_ASSERT(d != NULL && d->message_count == 0); /* "two" was never read */
	amqp_destroy_connection(pub);
	broker_disconnect(other);
	CU_ASSERT_EQUAL(broker_stop(&b), 0);
}

void suite_limits(void)
{
	ITEST_SUITE("limits", ITEST(test_memory_alarm_blocks_publishers),
	            ITEST(test_disk_alarm_blocks_publishers));
}
