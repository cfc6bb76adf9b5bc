/*
 * test_queue_args.c - CUnit tests of queue.declare argument checking
 * (server/model/queue_args.h) against RabbitMQ's texts.
 * Exit status: 0 when every test passed.
 */
#include <CUnit/Basic.h>
#include <stdio.h>
#include <string.h>

#include "amqp.h"
#include "model/queue_args.h"

/* A table of one or two entries, encoded. */
static struct amqp_bytes table2(uint8_t *buf, size_t cap, const char *k1,
                                struct amqp_field_value v1, const char *k2,
                                struct amqp_field_value v2)
{
	struct amqp_table_entry e[2] = {{amqp_cstr(k1), v1}, {amqp_cstr(k2 ? k2 : ""), v2}};
	struct amqp_table t = {e, k2 ? 2 : 1};
	struct amqp_wr w;
	amqp_wr_init(&w, buf, cap);
	amqp_table_encode_contents(&w, &t);
	return (struct amqp_bytes){buf, w.len};
}

static struct amqp_bytes table1(uint8_t *buf, size_t cap, const char *k, struct amqp_field_value v)
{
	return table2(buf, cap, k, v, NULL, v);
}

static struct amqp_field_value i32(int32_t n)
{
	return (struct amqp_field_value){.type = 'I', .v.i32 = n};
}

static struct amqp_field_value amqp_str(const char *v)
{
	return (struct amqp_field_value){.type = 'S', .v.str = amqp_cstr(v)};
}

static struct amqp_field_value lng(int64_t n)
{
	return (struct amqp_field_value){.type = 'l', .v.i64 = n};
}

static struct amqp_field_value str(const char *s)
{
	return (struct amqp_field_value){.type = 'S', .v.str = amqp_cstr(s)};
}

static void expect(struct amqp_bytes args, const char *text)
{
	char err[600] = "";
	uint16_t code = queue_args_check(args, "q", "/", err, sizeof(err));
	if (text) {
		CU_ASSERT_EQUAL(code, 406);
		CU_ASSERT_STRING_EQUAL(err, text);
		if (strcmp(err, text) != 0)
			fprintf(stderr, "\n  got  %s\n  want %s\n", err, text);
	} else {
		CU_ASSERT_EQUAL(code, 0);
		if (code)
			fprintf(stderr, "\n  refused: %s\n", err);
	}
}

#define P "PRECONDITION_FAILED - invalid arg "

static void test_values(void)
{
	uint8_t b[512];
	expect(table1(b, sizeof(b), "x-message-ttl", i32(1000)), NULL);
	expect(table1(b, sizeof(b), "x-message-ttl", i32(0)), NULL);
	expect(table1(b, sizeof(b), "x-message-ttl", i32(-1)),
	       P "'x-message-ttl' for queue 'q' in vhost '/': {value_negative,-1}");
	expect(table1(b, sizeof(b), "x-message-ttl", str("1000")),
	       P "'x-message-ttl' for queue 'q' in vhost '/': \"expected integer, got longstr\"");
	expect(table1(b, sizeof(b), "x-message-ttl", lng(315360000001LL)),
	       P "'x-message-ttl' for queue 'q' in vhost '/': {value_too_large,315360000001}");
	expect(table1(b, sizeof(b), "x-expires", i32(0)),
	       P "'x-expires' for queue 'q' in vhost '/': {value_zero,0}");
	expect(table1(b, sizeof(b), "x-max-length", i32(-5)),
	       P "'x-max-length' for queue 'q' in vhost '/': {value_negative,-5}");
	expect(table1(b, sizeof(b), "x-max-priority", i32(256)),
	       P "'x-max-priority' for queue 'q' in vhost '/': {max_value_exceeded,256}");
	expect(table1(b, sizeof(b), "x-max-priority", i32(255)), NULL);
	expect(table1(b, sizeof(b), "x-overflow", str("drop-tail")),
	       P "'x-overflow' for queue 'q' in vhost '/': invalid_overflow");
	expect(table1(b, sizeof(b), "x-overflow", str("reject-publish-dlx")), NULL);
	expect(table1(b, sizeof(b), "x-dead-letter-exchange", lng(1)),
	       P "'x-dead-letter-exchange' for queue 'q' in vhost '/': {unacceptable_type,long}");
	expect(table1(b, sizeof(b), "x-dead-letter-routing-key", str("rk")),
	       P "'x-dead-letter-routing-key' for queue 'q' in vhost '/': "
	         "routing_key_but_no_dlx_defined");
	expect(table2(b, sizeof(b), "x-dead-letter-exchange", str("dlx"),
	              "x-dead-letter-routing-key", str("rk")),
	       NULL);
	expect(table1(b, sizeof(b), "x-single-active-consumer", str("true")),
	       P "'x-single-active-consumer' for queue 'q' in vhost '/': "
	         "{unacceptable_type,longstr}");
	expect(table1(b, sizeof(b), "x-queue-mode", str("eager")),
	       P "'x-queue-mode' for queue 'q' in vhost '/': \"unsupported queue mode 'eager'\"");
	expect(table1(b, sizeof(b), "x-queue-mode", str("lazy")), NULL);
	expect(table1(b, sizeof(b), "x-unknown-thing", str("anything")), NULL); /* as RabbitMQ */
}

static void test_queue_types(void)
{
	uint8_t b[512];
	expect(table1(b, sizeof(b), "x-queue-type", str("quorum")), NULL);
	expect(table1(b, sizeof(b), "x-queue-type", str("classic")), NULL);
	expect(table1(b, sizeof(b), "x-queue-type", str("fast")),
	       P "'x-queue-type' for queue 'q' in vhost '/': \"unsupported queue type 'fast'\"");
	expect(table1(b, sizeof(b), "x-queue-type", lng(1)),
	       P "'x-queue-type' for queue 'q' in vhost '/': {unacceptable_type,long}");
	/* An argument of another queue type. */
	expect(table1(b, sizeof(b), "x-delivery-limit", i32(5)), P
	       "'x-delivery-limit' for queue 'q' in vhost '/' of queue type rabbit_classic_queue");
	expect(table2(b, sizeof(b), "x-queue-type", str("quorum"), "x-delivery-limit", i32(5)),
	       NULL);
	expect(table2(b, sizeof(b), "x-queue-type", str("quorum"), "x-max-priority", i32(5)),
	       P "'x-max-priority' for queue 'q' in vhost '/' of queue type rabbit_quorum_queue");
}

static void test_unsupported_named(void)
{
	uint8_t b[512];
	char out[200];
	queue_args_unsupported(table2(b, sizeof(b), "x-queue-leader-locator", amqp_str("balanced"),
	                              "x-message-ttl", i32(5)),
	                       out, sizeof(out));
	CU_ASSERT_STRING_EQUAL(out, "x-queue-leader-locator"); /* x-message-ttl acts */
	queue_args_unsupported(table1(b, sizeof(b), "x-max-length", i32(3)), out, sizeof(out));
	CU_ASSERT_STRING_EQUAL(out, "");
}

/* The arguments that act now are no longer named; their values are
 * checked; deduplication and the consumer settings are read. */
static void test_sac_timeout_dedup(void)
{
	uint8_t b[512];
	char out[200];
	struct amqp_field_value t = {.type = 't', .v.b = true};
	queue_args_unsupported(
	    table2(b, sizeof(b), "x-single-active-consumer", t, "x-consumer-timeout", i32(5)), out,
	    sizeof(out));
	CU_ASSERT_STRING_EQUAL(out, "");
	expect(table1(b, sizeof(b), "x-consumer-timeout", i32(-1)),
	       P "'x-consumer-timeout' for queue 'q' in vhost '/': {value_negative,-1}");
	expect(table1(b, sizeof(b), "x-message-deduplication", str("yes")), P
	       "'x-message-deduplication' for queue 'q' in vhost '/': {unacceptable_type,longstr}");
	expect(table1(b, sizeof(b), "x-cache-ttl", str("1")),
	       P "'x-cache-ttl' for queue 'q' in vhost '/': \"expected integer, got longstr\"");
	expect(
	    table1(b, sizeof(b), "x-deduplication-header", i32(1)),
	    P "'x-deduplication-header' for queue 'q' in vhost '/': {unacceptable_type,signedint}");
	struct queue_conf c;
	queue_conf_from_args(&c, table2(b, sizeof(b), "x-single-active-consumer", t,
	                                "x-consumer-timeout", lng(1500)));
	CU_ASSERT(c.single_active);
	CU_ASSERT_EQUAL(c.consumer_timeout, 1500);
	CU_ASSERT(!c.dedup.on);
	queue_conf_from_args(&c, table2(b, sizeof(b), "x-message-deduplication", t,
	                                "x-deduplication-header", str("id")));
	CU_ASSERT(c.dedup.on);
	CU_ASSERT_EQUAL(c.dedup.cache_size, DEDUP_DEFAULT_SIZE);
	CU_ASSERT_EQUAL(c.dedup.ttl, -1);
	CU_ASSERT_EQUAL(c.dedup.header_len, 2);
	struct dedup_conf d;
	dedup_conf_from_args(
	    &d, table2(b, sizeof(b), "x-cache-size", i32(10), "x-cache-ttl", i32(2000)));
	CU_ASSERT(!d.on);
	CU_ASSERT_EQUAL(d.cache_size, 10);
	CU_ASSERT_EQUAL(d.ttl, 2000);
	CU_ASSERT_EQUAL(memcmp(d.header, DEDUP_DEFAULT_HEADER, d.header_len), 0);
	char err[300];
	CU_ASSERT_EQUAL(exchange_dedup_args_check(table1(b, sizeof(b), "x-cache-size", i32(-2)),
	                                          "x", "/", err, sizeof(err)),
	                406);
	CU_ASSERT_STRING_EQUAL(err, P "'x-cache-size' for exchange 'x' in vhost '/': "
	                              "{value_negative,-2}");
	CU_ASSERT_EQUAL(exchange_dedup_args_check(table1(b, sizeof(b), "x-cache-size", i32(2)), "x",
	                                          "/", err, sizeof(err)),
	                0);
}

int main(void)
{
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	CU_pSuite s = CU_add_suite("queue_args", NULL, NULL);
	CU_add_test(s, "values", test_values);
	CU_add_test(s, "queue types", test_queue_types);
	CU_add_test(s, "unsupported arguments named", test_unsupported_named);
	CU_add_test(s, "single active consumer, timeout, deduplication", test_sac_timeout_dedup);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	unsigned failed = CU_get_number_of_failures();
	CU_cleanup_registry();
	return failed ? 1 : 0;
}
