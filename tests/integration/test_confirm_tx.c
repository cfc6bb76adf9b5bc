/*
 * test_confirm_tx.c - publisher confirms and transactions against what
 * RabbitMQ 3.10 does: every publish confirmed exactly once (single or
 * multiple acks), returns before acks, a nack when a reject-publish queue is
 * full, confirm mode and a missing exchange, tx commit/rollback of publishes
 * and of acks, and the mode-switch and not-transactional errors.
 *
 * Every expected reply code and text is RabbitMQ's own.  Names are unique
 * per test and process ("itest.confirm_tx.<what>.<pid>") and are deleted again.
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>

#include <amqp.h>
#include <amqp_framing.h>

#include "itest.h"
#include "itest_util.h"

/* ---- helpers ------------------------------------------------------------ */

/* Confirm bookkeeping for delivery tags 1..n: state[t] is 0 (pending),
 * 'a' (acked) or 'n' (nacked); errors counts tags confirmed twice or out
 * of range. */
struct confirms {
	int n;
	char state[1100];
	int errors;
	int acks, nacks, multiples;
	int pending;
	bool returned_before_ack; /* a basic.return preceded the ack of its tag */
	int returns;
};

static void confirm_one(struct confirms *cf, uint64_t tag, bool multiple, char how)
{
	if (tag == 0 || tag > (uint64_t)cf->n) {
		cf->errors++;
		return;
	}
	if (multiple) {
		cf->multiples++;
		if (cf->state[tag])
			cf->errors++; /* the newest tag of a multiple must be new */
		for (uint64_t t = 1; t <= tag; t++)
			if (!cf->state[t]) {
				cf->state[t] = how;
				cf->pending--;
			}
	} else {
		if (cf->state[tag]) {
			cf->errors++;
			return;
		}
		cf->state[tag] = how;
		cf->pending--;
	}
}

/* Read frames on channel 1 until every one of the n tags is confirmed, or
 * ms pass without progress.  Returns false if the channel was closed or a
 * frame could not be read. */
static bool collect_confirms(amqp_connection_state_t c, struct confirms *cf, int ms)
{
	while (cf->pending > 0) {
		amqp_frame_t f;
		struct timeval tv = {ms / 1000, (ms % 1000) * 1000L};
		if (amqp_simple_wait_frame_noblock(c, &f, &tv) != AMQP_STATUS_OK)
			return false;
		if (f.frame_type != AMQP_FRAME_METHOD || f.channel != 1)
			continue;
		switch (f.payload.method.id) {
		case AMQP_BASIC_ACK_METHOD: {
			amqp_basic_ack_t *a = f.payload.method.decoded;
			cf->acks++;
			confirm_one(cf, a->delivery_tag, a->multiple, 'a');
			break;
		}
		case AMQP_BASIC_NACK_METHOD: {
			amqp_basic_nack_t *a = f.payload.method.decoded;
			cf->nacks++;
			confirm_one(cf, a->delivery_tag, a->multiple, 'n');
			break;
		}
		case AMQP_BASIC_RETURN_METHOD: {
			/* the content follows; a return comes before its ack */
			amqp_message_t m;
			cf->returns++;
			if (amqp_read_message(c, 1, &m, 0).reply_type != AMQP_RESPONSE_NORMAL)
				return false;
			amqp_destroy_message(&m);
			cf->returned_before_ack = true;
			break;
		}
		case AMQP_CHANNEL_CLOSE_METHOD:
			return false;
		default:
			break;
		}
		amqp_maybe_release_buffers(c);
	}
	return true;
}

static void confirms_init(struct confirms *cf, int n)
{
	memset(cf, 0, sizeof(*cf));
	cf->n = n;
	cf->pending = n;
}

/* ---- confirms ------------------------------------------------------------- */

static void test_confirm_acks(void)
{
	amqp_connection_state_t c = conn_open();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	char q[256];
	name_of(q, sizeof(q), "acks");
	CU_ASSERT(qdecl(c, q));
	CU_ASSERT_PTR_NOT_NULL_FATAL(amqp_confirm_select(c, 1));
	/* selecting again is harmless */
	CU_ASSERT_PTR_NOT_NULL(amqp_confirm_select(c, 1));

	enum { N = 1000 };
	struct confirms cf;
	confirms_init(&cf, N);
	for (int i = 0; i < N; i++)
		CU_ASSERT_EQUAL(publish(c, "", q, "c"), AMQP_STATUS_OK);
	CU_ASSERT(collect_confirms(c, &cf, 5000));
	CU_ASSERT_EQUAL(cf.pending, 0);
	CU_ASSERT_EQUAL(cf.errors, 0);
	CU_ASSERT_EQUAL(cf.nacks, 0);
	int acked = 0;
	for (int t = 1; t <= N; t++)
		acked += cf.state[t] == 'a';
	CU_ASSERT_EQUAL(acked, N);
	if (trace_on())
		fprintf(stderr, "\n  [confirm_tx] %d publishes: %d acks (%d multiple)\n", N,
		        cf.acks, cf.multiples);
	/* nothing more arrives afterwards */
	amqp_frame_t f;
	struct timeval tv = {0, 200 * 1000};
	CU_ASSERT(!amqp_frames_enqueued(c));
	CU_ASSERT_EQUAL(amqp_simple_wait_frame_noblock(c, &f, &tv), AMQP_STATUS_TIMEOUT);
	CU_ASSERT_EQUAL(drain(c, q), N);

	/* unroutable messages are confirmed too (the tags go on: 1001..);
	 * a mandatory one gets its basic.return before the ack */
	struct confirms cf2;
	confirms_init(&cf2, N + 3);
	for (int t = 1; t <= N; t++)
		cf2.state[t] = 'a';
	cf2.pending = 2;
	char nowhere[256];
	name_of(nowhere, sizeof(nowhere), "acks-nowhere");
	CU_ASSERT_EQUAL(publish(c, "amq.direct", nowhere, "u1"), AMQP_STATUS_OK);
	CU_ASSERT_EQUAL(publish(c, "", q, "r"), AMQP_STATUS_OK);
	CU_ASSERT(collect_confirms(c, &cf2, 5000));
	CU_ASSERT_EQUAL(cf2.errors, 0);
	CU_ASSERT_EQUAL(cf2.pending, 0);
	CU_ASSERT_EQUAL(cf2.state[N + 1], 'a');
	CU_ASSERT_EQUAL(cf2.state[N + 2], 'a');
	CU_ASSERT_EQUAL(cf2.state[N + 3], 0);
	cf2.pending = 1;
	cf2.returned_before_ack = false;
	CU_ASSERT_EQUAL(
	    publish_full(c, 1, "amq.direct", nowhere, true, NULL, amqp_cstring_bytes("u2")),
	    AMQP_STATUS_OK);
	CU_ASSERT(collect_confirms(c, &cf2, 5000));
	CU_ASSERT_EQUAL(cf2.pending, 0);
	CU_ASSERT_EQUAL(cf2.errors, 0);
	CU_ASSERT_EQUAL(cf2.nacks, 0);
	CU_ASSERT_EQUAL(cf2.returns, 1);
	CU_ASSERT(cf2.returned_before_ack);
	CU_ASSERT_EQUAL(cf2.state[N + 3], 'a');
	CU_ASSERT_EQUAL(drain(c, q), 1);
	qdelete(c, q);
	broker_disconnect(c);
}

static void test_confirm_missing_exchange(void)
{
	amqp_connection_state_t c = conn_open();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	char x[256], want[512];
	name_of(x, sizeof(x), "nosuch-x");
	CU_ASSERT_PTR_NOT_NULL_FATAL(amqp_confirm_select(c, 1));
	CU_ASSERT_EQUAL(publish(c, x, "k", "lost"), AMQP_STATUS_OK);
	struct close_info ci = wait_close(c, 1, 5000);
	snprintf(want, sizeof(want), "NOT_FOUND - no exchange '%s' in vhost '/'", x);
	CHECK_CLOSE(ci, CLOSE_CHANNEL, 404, want);
	/* a reopened channel is out of confirm mode and counts afresh */
	chan_reopen(c, 1);
	CU_ASSERT_PTR_NOT_NULL_FATAL(amqp_confirm_select(c, 1));
	struct confirms cf;
	confirms_init(&cf, 1);
	CU_ASSERT_EQUAL(publish(c, "amq.direct", "none", "x"), AMQP_STATUS_OK);
	CU_ASSERT(collect_confirms(c, &cf, 5000));
	CU_ASSERT_EQUAL(cf.state[1], 'a');
	CU_ASSERT_EQUAL(cf.errors, 0);
	broker_disconnect(c);
}

/* RabbitMQ nacks a publish that a full x-overflow=reject-publish queue
 * refuses. */
static void test_confirm_nack(void)
{
	amqp_connection_state_t c = conn_open();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	char q[256];
	name_of(q, sizeof(q), "nack");
	amqp_table_entry_t e[] = {
	    {amqp_cstring_bytes("x-max-length"), {AMQP_FIELD_KIND_I32, {.i32 = 1}}},
	    {amqp_cstring_bytes("x-overflow"),
	     {AMQP_FIELD_KIND_UTF8, {.bytes = amqp_cstring_bytes("reject-publish")}}}};
	amqp_table_t args = {2, e};
	CU_ASSERT_FATAL(qdecl_full(c, 1, q, false, false, false, false, args) != NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(amqp_confirm_select(c, 1));
	struct confirms cf;
	confirms_init(&cf, 3);
	CU_ASSERT_EQUAL(publish(c, "", q, "first"), AMQP_STATUS_OK);
	CU_ASSERT_EQUAL(publish(c, "", q, "second"), AMQP_STATUS_OK);
	CU_ASSERT_EQUAL(publish(c, "", q, "third"), AMQP_STATUS_OK);
	CU_ASSERT(collect_confirms(c, &cf, 5000));
	CU_ASSERT_EQUAL(cf.errors, 0);
	CU_ASSERT_EQUAL(cf.state[1], 'a');
	CU_ASSERT_EQUAL(cf.state[2], 'n');
	CU_ASSERT_EQUAL(cf.state[3], 'n');
	struct got g = get1(c, q, true);
	CU_ASSERT_EQUAL(g.status, 1);
	CU_ASSERT_STRING_EQUAL(g.body, "first");
	CU_ASSERT_EQUAL(get1(c, q, true).status, 0);
	/* room again: acked */
	confirms_init(&cf, 4);
	cf.state[1] = cf.state[2] = cf.state[3] = 'x';
	cf.pending = 1;
	CU_ASSERT_EQUAL(publish(c, "", q, "fourth"), AMQP_STATUS_OK);
	CU_ASSERT(collect_confirms(c, &cf, 5000));
	CU_ASSERT_EQUAL(cf.state[4], 'a');
	CU_ASSERT_EQUAL(cf.errors, 0);
	qdelete(c, q);
	broker_disconnect(c);
}

/* ---- transactions --------------------------------------------------------- */

static void test_tx_publish(void)
{
	amqp_connection_state_t c = conn_open();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	char q[256];
	struct got g;
	name_of(q, sizeof(q), "txpub");
	CU_ASSERT(qdecl(c, q));
	CU_ASSERT_PTR_NOT_NULL_FATAL(amqp_tx_select(c, 1));

	/* rollback: nothing is delivered */
	for (int i = 0; i < 3; i++)
		CU_ASSERT_EQUAL(publish(c, "", q, "rolled-back"), AMQP_STATUS_OK);
	CU_ASSERT_EQUAL(get1(c, q, true).status, 0);
	CU_ASSERT_PTR_NOT_NULL(amqp_tx_rollback(c, 1));
	CU_ASSERT_EQUAL(get1(c, q, true).status, 0);

	/* commit: delivered then, not before */
	CU_ASSERT_EQUAL(publish(c, "", q, "committed"), AMQP_STATUS_OK);
	CU_ASSERT_EQUAL(get1(c, q, true).status, 0);
	CU_ASSERT_PTR_NOT_NULL(amqp_tx_commit(c, 1));
	g = get1(c, q, true);
	CU_ASSERT_EQUAL(g.status, 1);
	CU_ASSERT_STRING_EQUAL(g.body, "committed");
	CU_ASSERT_EQUAL(get1(c, q, true).status, 0);

	/* the channel stays transactional: commit A, roll back B, commit C */
	CU_ASSERT_EQUAL(publish(c, "", q, "A"), AMQP_STATUS_OK);
	CU_ASSERT_PTR_NOT_NULL(amqp_tx_commit(c, 1));
	CU_ASSERT_EQUAL(publish(c, "", q, "B"), AMQP_STATUS_OK);
	CU_ASSERT_PTR_NOT_NULL(amqp_tx_rollback(c, 1));
	CU_ASSERT_EQUAL(publish(c, "", q, "C"), AMQP_STATUS_OK);
	CU_ASSERT_PTR_NOT_NULL(amqp_tx_commit(c, 1));
	g = get1(c, q, true);
	CU_ASSERT_EQUAL(g.status, 1);
	CU_ASSERT_STRING_EQUAL(g.body, "A");
	g = get1(c, q, true);
	CU_ASSERT_EQUAL(g.status, 1);
	CU_ASSERT_STRING_EQUAL(g.body, "C");
	CU_ASSERT_EQUAL(get1(c, q, true).status, 0);
	/* an empty commit / rollback is fine; tx.select again too */
	CU_ASSERT_PTR_NOT_NULL(amqp_tx_commit(c, 1));
	CU_ASSERT_PTR_NOT_NULL(amqp_tx_rollback(c, 1));
	CU_ASSERT_PTR_NOT_NULL(amqp_tx_select(c, 1));

	/* uncommitted publishes are dropped when the channel closes */
	CU_ASSERT_EQUAL(publish(c, "", q, "uncommitted"), AMQP_STATUS_OK);
	amqp_channel_close(c, 1, AMQP_REPLY_SUCCESS);
	chan_reopen(c, 1);
	CU_ASSERT_EQUAL(get1(c, q, true).status, 0);
	qdelete(c, q);
	broker_disconnect(c);
}

static void test_tx_ack(void)
{
	amqp_connection_state_t c = conn_open();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	char q[256];
	struct got g;
	name_of(q, sizeof(q), "txack");
	CU_ASSERT(qdecl(c, q));
	CU_ASSERT_EQUAL(publish(c, "", q, "m1"), AMQP_STATUS_OK);
	CU_ASSERT_PTR_NOT_NULL_FATAL(amqp_tx_select(c, 1));
	CU_ASSERT_PTR_NOT_NULL(amqp_tx_commit(c, 1));

	/* ack inside the transaction, then roll back: still unacked */
	g = get1(c, q, false);
	CU_ASSERT_EQUAL(g.status, 1);
	CU_ASSERT(!g.redelivered);
	CU_ASSERT_EQUAL(amqp_basic_ack(c, 1, g.tag, 0), AMQP_STATUS_OK);
	CU_ASSERT_PTR_NOT_NULL(amqp_tx_rollback(c, 1));
	/* recover(requeue) puts it back, marked redelivered */
	CU_ASSERT_PTR_NOT_NULL(amqp_basic_recover(c, 1, 1));
	g = get1(c, q, false);
	CU_ASSERT_EQUAL(g.status, 1);
	CU_ASSERT_STRING_EQUAL(g.body, "m1");
	CU_ASSERT(g.redelivered);

	/* ack then commit: gone for good, even after recover and close */
	CU_ASSERT_EQUAL(amqp_basic_ack(c, 1, g.tag, 0), AMQP_STATUS_OK);
	CU_ASSERT_PTR_NOT_NULL(amqp_tx_commit(c, 1));
	CU_ASSERT_PTR_NOT_NULL(amqp_basic_recover(c, 1, 1));
	CU_ASSERT_EQUAL(get1(c, q, true).status, 0);

	/* a rolled-back reject leaves the message unacked as well */
	CU_ASSERT_EQUAL(publish(c, "", q, "m2"), AMQP_STATUS_OK);
	CU_ASSERT_PTR_NOT_NULL(amqp_tx_commit(c, 1));
	g = get1(c, q, false);
	CU_ASSERT_EQUAL(g.status, 1);
	CU_ASSERT_EQUAL(amqp_basic_reject(c, 1, g.tag, 0), AMQP_STATUS_OK);
	CU_ASSERT_PTR_NOT_NULL(amqp_tx_rollback(c, 1));
	amqp_channel_close(c, 1, AMQP_REPLY_SUCCESS);
	chan_reopen(c, 1);
	g = get1(c, q, true);
	CU_ASSERT_EQUAL(g.status, 1);
	CU_ASSERT_STRING_EQUAL(g.body, "m2");
	CU_ASSERT(g.redelivered);
	qdelete(c, q);
	broker_disconnect(c);
}

static void test_tx_not_selected(void)
{
	amqp_connection_state_t c = conn_open();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_PTR_NULL(amqp_tx_commit(c, 1));
	struct close_info ci = rpc_close(c, 1);
	CHECK_CLOSE(ci, CLOSE_CHANNEL, 406, "PRECONDITION_FAILED - channel is not transactional");
	chan_reopen(c, 1);
	CU_ASSERT_PTR_NULL(amqp_tx_rollback(c, 1));
	ci = rpc_close(c, 1);
	CHECK_CLOSE(ci, CLOSE_CHANNEL, 406, "PRECONDITION_FAILED - channel is not transactional");
	chan_reopen(c, 1);
	broker_disconnect(c);
}

static void test_mode_switch(void)
{
	amqp_connection_state_t c = conn_open();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	CU_ASSERT_PTR_NOT_NULL(amqp_tx_select(c, 1));
	CU_ASSERT_PTR_NULL(amqp_confirm_select(c, 1));
	struct close_info ci = rpc_close(c, 1);
	CHECK_CLOSE(ci, CLOSE_CHANNEL, 406,
	            "PRECONDITION_FAILED - cannot switch from tx to confirm mode");
	chan_reopen(c, 1);

	CU_ASSERT_PTR_NOT_NULL(amqp_confirm_select(c, 1));
	CU_ASSERT_PTR_NULL(amqp_tx_select(c, 1));
	ci = rpc_close(c, 1);
	CHECK_CLOSE(ci, CLOSE_CHANNEL, 406,
	            "PRECONDITION_FAILED - cannot switch from confirm to tx mode");
	chan_reopen(c, 1);
	/* a fresh channel can choose either */
	CU_ASSERT_PTR_NOT_NULL(amqp_tx_select(c, 1));
	broker_disconnect(c);
}

void suite_confirm_tx(void)
{
	ITEST_SUITE("confirm_tx", ITEST(test_confirm_acks), ITEST(test_confirm_missing_exchange),
	            ITEST(test_confirm_nack), ITEST(test_tx_publish), ITEST(test_tx_ack),
	            ITEST(test_tx_not_selected), ITEST(test_mode_switch));
}
