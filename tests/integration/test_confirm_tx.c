/*
 * test_confirm_tx.c - publisher confirms and transactions against what
 * RabbitMQ 3.10 does: every publish confirmed exactly once (single or
 * multiple acks), returns before acks, a nack when a reject-publish queue is
 * full, confirm mode and a missing exchange, tx commit/rollback of publishes
 * and of acks, and the mode-switch and not-transactional errors.
 *
 * Every expected reply code and text is RabbitMQ's own.  Names are unique
 * per test and process ("itest.ct.<what>.<pid>") and are deleted again.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include <amqp.h>
#include <amqp_framing.h>

#include "itest.h"

/* ---- helpers ------------------------------------------------------------ */

enum { CLOSE_NONE, CLOSE_CHANNEL, CLOSE_CONNECTION };

/* How an expected error ended: which close the server sent, and its reply. */
struct close_info {
	int kind;
	int code;
	char text[512];
};

static bool trace_on(void)
{
	const char *t = getenv("ITEST_TRACE");
	return t && *t;
}

static void name_of(char *buf, size_t n, const char *what)
{
	snprintf(buf, n, "itest.ct.%s.%d", what, (int)getpid());
}

/* A connection (channel 1 open) whose synchronous calls give up after
 * 10 s instead of hanging the run when a reply never comes. */
static amqp_connection_state_t conn_open(void)
{
	amqp_connection_state_t c = broker_connect(&g_broker);
	struct timeval tv = {10, 0};
	if (c)
		amqp_set_rpc_timeout(c, &tv);
	return c;
}

static bool rpc_ok(amqp_connection_state_t c)
{
	return amqp_get_rpc_reply(c).reply_type == AMQP_RESPONSE_NORMAL;
}

/* Record a server close method and answer it with the matching close-ok. */
static void take_close(amqp_connection_state_t c, amqp_channel_t ch, const amqp_method_t *m,
                       struct close_info *ci)
{
	if (m->id == AMQP_CHANNEL_CLOSE_METHOD) {
		const amqp_channel_close_t *cl = m->decoded;
		amqp_channel_close_ok_t ok = {0};
		ci->kind = CLOSE_CHANNEL;
		ci->code = cl->reply_code;
		snprintf(ci->text, sizeof(ci->text), "%.*s", (int)cl->reply_text.len,
		         (const char *)cl->reply_text.bytes);
		amqp_send_method(c, ch, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok);
	} else if (m->id == AMQP_CONNECTION_CLOSE_METHOD) {
		const amqp_connection_close_t *cl = m->decoded;
		amqp_connection_close_ok_t ok = {0};
		ci->kind = CLOSE_CONNECTION;
		ci->code = cl->reply_code;
		snprintf(ci->text, sizeof(ci->text), "%.*s", (int)cl->reply_text.len,
		         (const char *)cl->reply_text.bytes);
		amqp_send_method(c, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
	}
}

/* The close that ended the last synchronous call on channel ch. */
static struct close_info rpc_close(amqp_connection_state_t c, amqp_channel_t ch)
{
	struct close_info ci = {CLOSE_NONE, 0, ""};
	amqp_rpc_reply_t r = amqp_get_rpc_reply(c);
	if (r.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION)
		take_close(c, ch, &r.reply, &ci);
	return ci;
}

/* Wait up to ms for a close of channel ch (or of the connection), skipping
 * any other frame. */
static struct close_info wait_close(amqp_connection_state_t c, amqp_channel_t ch, int ms)
{
	struct close_info ci = {CLOSE_NONE, 0, ""};
	struct timeval end, now, tv;
	gettimeofday(&end, NULL);
	end.tv_sec += ms / 1000;
	end.tv_usec += (ms % 1000) * 1000L;
	if (end.tv_usec >= 1000000) {
		end.tv_sec++;
		end.tv_usec -= 1000000;
	}
	for (;;) {
		gettimeofday(&now, NULL);
		if (!timercmp(&now, &end, <))
			return ci;
		timersub(&end, &now, &tv);
		amqp_frame_t f;
		if (amqp_simple_wait_frame_noblock(c, &f, &tv) != AMQP_STATUS_OK)
			return ci;
		if (f.frame_type != AMQP_FRAME_METHOD)
			continue;
		if ((f.channel == ch && f.payload.method.id == AMQP_CHANNEL_CLOSE_METHOD) ||
		    (f.channel == 0 && f.payload.method.id == AMQP_CONNECTION_CLOSE_METHOD)) {
			take_close(c, ch, &f.payload.method, &ci);
			return ci;
		}
	}
}

static const char *kind_name(int kind)
{
	return kind == CLOSE_CHANNEL      ? "channel.close"
	       : kind == CLOSE_CONNECTION ? "connection.close"
	                                  : "no close";
}

/* Assert (at the caller's line) the kind, code and exact text of a close. */
static void check_close_at(const struct close_info *ci, int kind, int code, const char *text,
                           int line)
{
	char msg[1400];
	bool ok = ci->kind == kind && ci->code == code && strcmp(ci->text, text) == 0;
	snprintf(msg, sizeof(msg), "expected %s %d \"%s\", got %s %d \"%s\"", kind_name(kind), code,
	         text, kind_name(ci->kind), ci->code, ci->text);
	CU_assertImplementation(ok, (unsigned)line, msg, __FILE__, "", CU_FALSE);
	if (!ok || trace_on())
		fprintf(stderr, "\n  [confirm_tx:%d] %s %d \"%s\"\n", line, kind_name(ci->kind),
		        ci->code, ci->text);
}
#define CHECK_CLOSE(ci, kind, code, text) check_close_at(&(ci), kind, code, text, __LINE__)

static void chan_reopen(amqp_connection_state_t c, amqp_channel_t ch)
{
	amqp_channel_open(c, ch);
	CU_ASSERT(rpc_ok(c));
}

static bool qdecl_args(amqp_connection_state_t c, const char *name, amqp_table_t args)
{
	amqp_queue_declare(c, 1, amqp_cstring_bytes(name), 0, 0, 0, 0, args);
	return rpc_ok(c);
}

static bool qdecl(amqp_connection_state_t c, const char *name)
{
	return qdecl_args(c, name, amqp_empty_table);
}

static void qdelete(amqp_connection_state_t c, const char *name)
{
	amqp_queue_delete(c, 1, amqp_cstring_bytes(name), 0, 0);
	CU_ASSERT(rpc_ok(c));
}

static int publish_m(amqp_connection_state_t c, const char *x, const char *key, bool mandatory,
                     const char *body)
{
	return amqp_basic_publish(c, 1, amqp_cstring_bytes(x), amqp_cstring_bytes(key), mandatory,
	                          0, NULL, amqp_cstring_bytes(body));
}

static int publish(amqp_connection_state_t c, const char *q, const char *body)
{
	return publish_m(c, "", q, false, body);
}

/* basic.get on channel 1: 1 with the body / redelivered flag / tag, 0 on
 * get-empty, -1 on error. */
static int get_msg(amqp_connection_state_t c, const char *q, bool no_ack, char *buf, size_t n,
                   bool *redelivered, uint64_t *tag)
{
	amqp_rpc_reply_t r = amqp_basic_get(c, 1, amqp_cstring_bytes(q), no_ack);
	if (r.reply_type != AMQP_RESPONSE_NORMAL)
		return -1;
	if (r.reply.id == AMQP_BASIC_GET_EMPTY_METHOD)
		return 0;
	amqp_basic_get_ok_t *ok = r.reply.decoded;
	if (redelivered)
		*redelivered = ok->redelivered;
	if (tag)
		*tag = ok->delivery_tag;
	amqp_message_t m;
	r = amqp_read_message(c, 1, &m, 0);
	if (r.reply_type != AMQP_RESPONSE_NORMAL)
		return -1;
	if (buf)
		snprintf(buf, n, "%.*s", (int)m.body.len, (const char *)m.body.bytes);
	amqp_destroy_message(&m);
	return 1;
}

static int count_msgs(amqp_connection_state_t c, const char *q)
{
	int n = 0;
	while (get_msg(c, q, true, NULL, 0, NULL, NULL) == 1)
		n++;
	return n;
}

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
		CU_ASSERT_EQUAL(publish(c, q, "c"), AMQP_STATUS_OK);
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
	CU_ASSERT_EQUAL(count_msgs(c, q), N);

	/* unroutable messages are confirmed too (the tags go on: 1001..);
	 * a mandatory one gets its basic.return before the ack */
	struct confirms cf2;
	confirms_init(&cf2, N + 3);
	for (int t = 1; t <= N; t++)
		cf2.state[t] = 'a';
	cf2.pending = 2;
	char nowhere[256];
	name_of(nowhere, sizeof(nowhere), "acks-nowhere");
	CU_ASSERT_EQUAL(publish_m(c, "amq.direct", nowhere, false, "u1"), AMQP_STATUS_OK);
	CU_ASSERT_EQUAL(publish(c, q, "r"), AMQP_STATUS_OK);
	CU_ASSERT(collect_confirms(c, &cf2, 5000));
	CU_ASSERT_EQUAL(cf2.errors, 0);
	CU_ASSERT_EQUAL(cf2.pending, 0);
	CU_ASSERT_EQUAL(cf2.state[N + 1], 'a');
	CU_ASSERT_EQUAL(cf2.state[N + 2], 'a');
	CU_ASSERT_EQUAL(cf2.state[N + 3], 0);
	cf2.pending = 1;
	cf2.returned_before_ack = false;
	CU_ASSERT_EQUAL(publish_m(c, "amq.direct", nowhere, true, "u2"), AMQP_STATUS_OK);
	CU_ASSERT(collect_confirms(c, &cf2, 5000));
	CU_ASSERT_EQUAL(cf2.pending, 0);
	CU_ASSERT_EQUAL(cf2.errors, 0);
	CU_ASSERT_EQUAL(cf2.nacks, 0);
	CU_ASSERT_EQUAL(cf2.returns, 1);
	CU_ASSERT(cf2.returned_before_ack);
	CU_ASSERT_EQUAL(cf2.state[N + 3], 'a');
	CU_ASSERT_EQUAL(count_msgs(c, q), 1);
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
	CU_ASSERT_EQUAL(publish_m(c, x, "k", false, "lost"), AMQP_STATUS_OK);
	struct close_info ci = wait_close(c, 1, 5000);
	snprintf(want, sizeof(want), "NOT_FOUND - no exchange '%s' in vhost '/'", x);
	CHECK_CLOSE(ci, CLOSE_CHANNEL, 404, want);
	/* a reopened channel is out of confirm mode and counts afresh */
	chan_reopen(c, 1);
	CU_ASSERT_PTR_NOT_NULL_FATAL(amqp_confirm_select(c, 1));
	struct confirms cf;
	confirms_init(&cf, 1);
	CU_ASSERT_EQUAL(publish_m(c, "amq.direct", "none", false, "x"), AMQP_STATUS_OK);
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
	CU_ASSERT_FATAL(qdecl_args(c, q, args));
	CU_ASSERT_PTR_NOT_NULL_FATAL(amqp_confirm_select(c, 1));
	struct confirms cf;
	confirms_init(&cf, 3);
	CU_ASSERT_EQUAL(publish(c, q, "first"), AMQP_STATUS_OK);
	CU_ASSERT_EQUAL(publish(c, q, "second"), AMQP_STATUS_OK);
	CU_ASSERT_EQUAL(publish(c, q, "third"), AMQP_STATUS_OK);
	CU_ASSERT(collect_confirms(c, &cf, 5000));
	CU_ASSERT_EQUAL(cf.errors, 0);
	CU_ASSERT_EQUAL(cf.state[1], 'a');
	CU_ASSERT_EQUAL(cf.state[2], 'n');
	CU_ASSERT_EQUAL(cf.state[3], 'n');
	char buf[64];
	CU_ASSERT_EQUAL(get_msg(c, q, true, buf, sizeof(buf), NULL, NULL), 1);
	CU_ASSERT_STRING_EQUAL(buf, "first");
	CU_ASSERT_EQUAL(get_msg(c, q, true, NULL, 0, NULL, NULL), 0);
	/* room again: acked */
	confirms_init(&cf, 4);
	cf.state[1] = cf.state[2] = cf.state[3] = 'x';
	cf.pending = 1;
	CU_ASSERT_EQUAL(publish(c, q, "fourth"), AMQP_STATUS_OK);
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
	char q[256], buf[64];
	name_of(q, sizeof(q), "txpub");
	CU_ASSERT(qdecl(c, q));
	CU_ASSERT_PTR_NOT_NULL_FATAL(amqp_tx_select(c, 1));

	/* rollback: nothing is delivered */
	for (int i = 0; i < 3; i++)
		CU_ASSERT_EQUAL(publish(c, q, "rolled-back"), AMQP_STATUS_OK);
	CU_ASSERT_EQUAL(get_msg(c, q, true, NULL, 0, NULL, NULL), 0);
	CU_ASSERT_PTR_NOT_NULL(amqp_tx_rollback(c, 1));
	CU_ASSERT_EQUAL(get_msg(c, q, true, NULL, 0, NULL, NULL), 0);

	/* commit: delivered then, not before */
	CU_ASSERT_EQUAL(publish(c, q, "committed"), AMQP_STATUS_OK);
	CU_ASSERT_EQUAL(get_msg(c, q, true, NULL, 0, NULL, NULL), 0);
	CU_ASSERT_PTR_NOT_NULL(amqp_tx_commit(c, 1));
	CU_ASSERT_EQUAL(get_msg(c, q, true, buf, sizeof(buf), NULL, NULL), 1);
	CU_ASSERT_STRING_EQUAL(buf, "committed");
	CU_ASSERT_EQUAL(get_msg(c, q, true, NULL, 0, NULL, NULL), 0);

	/* the channel stays transactional: commit A, roll back B, commit C */
	CU_ASSERT_EQUAL(publish(c, q, "A"), AMQP_STATUS_OK);
	CU_ASSERT_PTR_NOT_NULL(amqp_tx_commit(c, 1));
	CU_ASSERT_EQUAL(publish(c, q, "B"), AMQP_STATUS_OK);
	CU_ASSERT_PTR_NOT_NULL(amqp_tx_rollback(c, 1));
	CU_ASSERT_EQUAL(publish(c, q, "C"), AMQP_STATUS_OK);
	CU_ASSERT_PTR_NOT_NULL(amqp_tx_commit(c, 1));
	CU_ASSERT_EQUAL(get_msg(c, q, true, buf, sizeof(buf), NULL, NULL), 1);
	CU_ASSERT_STRING_EQUAL(buf, "A");
	CU_ASSERT_EQUAL(get_msg(c, q, true, buf, sizeof(buf), NULL, NULL), 1);
	CU_ASSERT_STRING_EQUAL(buf, "C");
	CU_ASSERT_EQUAL(get_msg(c, q, true, NULL, 0, NULL, NULL), 0);
	/* an empty commit / rollback is fine; tx.select again too */
	CU_ASSERT_PTR_NOT_NULL(amqp_tx_commit(c, 1));
	CU_ASSERT_PTR_NOT_NULL(amqp_tx_rollback(c, 1));
	CU_ASSERT_PTR_NOT_NULL(amqp_tx_select(c, 1));

	/* uncommitted publishes are dropped when the channel closes */
	CU_ASSERT_EQUAL(publish(c, q, "uncommitted"), AMQP_STATUS_OK);
	amqp_channel_close(c, 1, AMQP_REPLY_SUCCESS);
	chan_reopen(c, 1);
	CU_ASSERT_EQUAL(get_msg(c, q, true, NULL, 0, NULL, NULL), 0);
	qdelete(c, q);
	broker_disconnect(c);
}

static void test_tx_ack(void)
{
	amqp_connection_state_t c = conn_open();
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	char q[256], buf[64];
	name_of(q, sizeof(q), "txack");
	CU_ASSERT(qdecl(c, q));
	CU_ASSERT_EQUAL(publish(c, q, "m1"), AMQP_STATUS_OK);
	CU_ASSERT_PTR_NOT_NULL_FATAL(amqp_tx_select(c, 1));
	CU_ASSERT_PTR_NOT_NULL(amqp_tx_commit(c, 1));

	/* ack inside the transaction, then roll back: still unacked */
	uint64_t tag = 0;
	bool redelivered = true;
	CU_ASSERT_EQUAL(get_msg(c, q, false, buf, sizeof(buf), &redelivered, &tag), 1);
	CU_ASSERT(!redelivered);
	CU_ASSERT_EQUAL(amqp_basic_ack(c, 1, tag, 0), AMQP_STATUS_OK);
	CU_ASSERT_PTR_NOT_NULL(amqp_tx_rollback(c, 1));
	/* recover(requeue) puts it back, marked redelivered */
	CU_ASSERT_PTR_NOT_NULL(amqp_basic_recover(c, 1, 1));
	CU_ASSERT_EQUAL(get_msg(c, q, false, buf, sizeof(buf), &redelivered, &tag), 1);
	CU_ASSERT_STRING_EQUAL(buf, "m1");
	CU_ASSERT(redelivered);

	/* ack then commit: gone for good, even after recover and close */
	CU_ASSERT_EQUAL(amqp_basic_ack(c, 1, tag, 0), AMQP_STATUS_OK);
	CU_ASSERT_PTR_NOT_NULL(amqp_tx_commit(c, 1));
	CU_ASSERT_PTR_NOT_NULL(amqp_basic_recover(c, 1, 1));
	CU_ASSERT_EQUAL(get_msg(c, q, true, NULL, 0, NULL, NULL), 0);

	/* a rolled-back reject leaves the message unacked as well */
	CU_ASSERT_EQUAL(publish(c, q, "m2"), AMQP_STATUS_OK);
	CU_ASSERT_PTR_NOT_NULL(amqp_tx_commit(c, 1));
	CU_ASSERT_EQUAL(get_msg(c, q, false, buf, sizeof(buf), NULL, &tag), 1);
	CU_ASSERT_EQUAL(amqp_basic_reject(c, 1, tag, 0), AMQP_STATUS_OK);
	CU_ASSERT_PTR_NOT_NULL(amqp_tx_rollback(c, 1));
	amqp_channel_close(c, 1, AMQP_REPLY_SUCCESS);
	chan_reopen(c, 1);
	CU_ASSERT_EQUAL(get_msg(c, q, true, buf, sizeof(buf), &redelivered, NULL), 1);
	CU_ASSERT_STRING_EQUAL(buf, "m2");
	CU_ASSERT(redelivered);
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
