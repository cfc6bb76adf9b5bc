/*
 * itest_util.c - rabbitmq-c helpers shared by the integration test suites
 * (see itest_util.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <CUnit/TestRun.h>
#include <amqp_tcp_socket.h>

#include "itest.h"
#include "itest_util.h"
#include "raw.h"

/* ---------------------------------------------------------------------------
 * Time
 */

int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

/* ---------------------------------------------------------------------------
 * Names and bytes
 */

/* The running suite's name ("exchange", "queue", ...). */
static const char *suite_name(void)
{
	CU_pSuite s = CU_get_current_suite();
	return s && s->pName ? s->pName : "itest";
}

void name_of(char *buf, size_t n, const char *what)
{
	snprintf(buf, n, "itest.%s.%s.%d", suite_name(), what, (int)getpid());
}

bool trace_on(void)
{
	const char *t = getenv("ITEST_TRACE");
	return t && *t;
}

bool bytes_eq(amqp_bytes_t b, const char *s)
{
	return b.len == strlen(s) && (b.len == 0 || memcmp(b.bytes, s, b.len) == 0);
}

bool bytes_prefix(amqp_bytes_t b, const char *s)
{
	size_t n = strlen(s);
	return b.len >= n && memcmp(b.bytes, s, n) == 0;
}

static bool field_eq(const amqp_field_value_t *a, const amqp_field_value_t *b)
{
	if (a->kind != b->kind)
		return false;
	switch (a->kind) {
	case AMQP_FIELD_KIND_BOOLEAN:
		return !a->value.boolean == !b->value.boolean;
	case AMQP_FIELD_KIND_I8:
		return a->value.i8 == b->value.i8;
	case AMQP_FIELD_KIND_U8:
		return a->value.u8 == b->value.u8;
	case AMQP_FIELD_KIND_I16:
		return a->value.i16 == b->value.i16;
	case AMQP_FIELD_KIND_U16:
		return a->value.u16 == b->value.u16;
	case AMQP_FIELD_KIND_I32:
		return a->value.i32 == b->value.i32;
	case AMQP_FIELD_KIND_U32:
		return a->value.u32 == b->value.u32;
	case AMQP_FIELD_KIND_I64:
		return a->value.i64 == b->value.i64;
	case AMQP_FIELD_KIND_U64:
	case AMQP_FIELD_KIND_TIMESTAMP:
		return a->value.u64 == b->value.u64;
	case AMQP_FIELD_KIND_F32:
		return memcmp(&a->value.f32, &b->value.f32, sizeof(float)) == 0;
	case AMQP_FIELD_KIND_F64:
		return memcmp(&a->value.f64, &b->value.f64, sizeof(double)) == 0;
	case AMQP_FIELD_KIND_DECIMAL:
		return a->value.decimal.decimals == b->value.decimal.decimals &&
		       a->value.decimal.value == b->value.decimal.value;
	case AMQP_FIELD_KIND_UTF8:
	case AMQP_FIELD_KIND_BYTES:
		return a->value.bytes.len == b->value.bytes.len &&
		       (a->value.bytes.len == 0 ||
		        memcmp(a->value.bytes.bytes, b->value.bytes.bytes, a->value.bytes.len) ==
		            0);
	case AMQP_FIELD_KIND_VOID:
		return true;
	case AMQP_FIELD_KIND_TABLE:
		return table_eq(&a->value.table, &b->value.table);
	case AMQP_FIELD_KIND_ARRAY:
		if (a->value.array.num_entries != b->value.array.num_entries)
			return false;
		for (int i = 0; i < a->value.array.num_entries; i++)
			if (!field_eq(&a->value.array.entries[i], &b->value.array.entries[i]))
				return false;
		return true;
	default:
		return false;
	}
}

bool table_eq(const amqp_table_t *a, const amqp_table_t *b)
{
	if (a->num_entries != b->num_entries)
		return false;
	for (int i = 0; i < a->num_entries; i++) {
		const amqp_table_entry_t *x = &a->entries[i], *y = &b->entries[i];
		if (x->key.len != y->key.len ||
		    memcmp(x->key.bytes, y->key.bytes, x->key.len) != 0 ||
		    !field_eq(&x->value, &y->value)) {
			fprintf(stderr, "\n  header %.*s differs (kind %c / %c)\n", (int)x->key.len,
			        (const char *)x->key.bytes, x->value.kind, y->value.kind);
			return false;
		}
	}
	return true;
}

/* ---------------------------------------------------------------------------
 * Connections and channels
 */

amqp_connection_state_t conn_open_fm(int frame_max)
{
	amqp_connection_state_t c =
	    broker_connect_ex(&g_broker, "guest", "guest", "/", frame_max, 0, NULL);
	struct timeval tv = {10, 0};
	if (c)
		amqp_set_rpc_timeout(c, &tv);
	return c;
}

amqp_connection_state_t conn_open(void)
{
	return conn_open_fm(131072);
}

bool rpc_ok(amqp_connection_state_t c)
{
	return amqp_get_rpc_reply(c).reply_type == AMQP_RESPONSE_NORMAL;
}

bool open_channel(amqp_connection_state_t c, amqp_channel_t ch)
{
	amqp_channel_open(c, ch);
	return rpc_ok(c);
}

void chan_reopen(amqp_connection_state_t c, amqp_channel_t ch)
{
	CU_ASSERT(open_channel(c, ch));
}

/* ---------------------------------------------------------------------------
 * Server-sent closes
 */

void take_close(amqp_connection_state_t c, amqp_channel_t ch, const amqp_method_t *m,
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

struct close_info rpc_close(amqp_connection_state_t c, amqp_channel_t ch)
{
	struct close_info ci = {CLOSE_NONE, 0, ""};
	amqp_rpc_reply_t r = amqp_get_rpc_reply(c);
	if (r.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION)
		take_close(c, ch, &r.reply, &ci);
	return ci;
}

struct close_info wait_close(amqp_connection_state_t c, amqp_channel_t ch, int ms)
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

void check_close_at(const struct close_info *ci, int kind, int code, const char *text,
                    const char *file, int line)
{
	char msg[1400];
	bool ok = ci->kind == kind && ci->code == code && strcmp(ci->text, text) == 0;
	snprintf(msg, sizeof(msg), "expected %s %d \"%s\", got %s %d \"%s\"", kind_name(kind), code,
	         text, kind_name(ci->kind), ci->code, ci->text);
	CU_assertImplementation(ok, (unsigned)line, msg, file, "", CU_FALSE);
	if (!ok || trace_on())
		fprintf(stderr, "\n  [%s:%d] %s %d \"%s\"\n", suite_name(), line,
		        kind_name(ci->kind), ci->code, ci->text);
}

void finish_server_close(amqp_connection_state_t c)
{
	amqp_connection_close_ok_t ok = {0};
	amqp_send_method(c, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
	CU_ASSERT(await_eof(amqp_get_sockfd(c), 5000));
	amqp_destroy_connection(c);
}

/* ---------------------------------------------------------------------------
 * Queues, publish, get, consume
 */

amqp_queue_declare_ok_t *qdecl_full(amqp_connection_state_t c, amqp_channel_t ch, const char *name,
                                    bool passive, bool durable, bool exclusive, bool auto_delete,
                                    amqp_table_t args)
{
	return amqp_queue_declare(c, ch, amqp_cstring_bytes(name), passive, durable, exclusive,
	                          auto_delete, args);
}

bool qdecl(amqp_connection_state_t c, const char *name)
{
	return qdecl_full(c, 1, name, false, false, false, false, amqp_empty_table) != NULL;
}

void qdelete(amqp_connection_state_t c, const char *name)
{
	amqp_queue_delete(c, 1, amqp_cstring_bytes(name), 0, 0);
	CU_ASSERT(rpc_ok(c));
}

int publish_full(amqp_connection_state_t c, amqp_channel_t ch, const char *x, const char *key,
                 bool mandatory, const amqp_basic_properties_t *props, amqp_bytes_t body)
{
	return amqp_basic_publish(c, ch, amqp_cstring_bytes(x), amqp_cstring_bytes(key), mandatory,
	                          0, props, body);
}

int publish(amqp_connection_state_t c, const char *x, const char *key, const char *body)
{
	return publish_full(c, 1, x, key, false, NULL, amqp_cstring_bytes(body));
}

struct got get_on(amqp_connection_state_t c, amqp_channel_t ch, const char *q, bool no_ack)
{
	struct got g = {-1, 0, false, 0, ""};
	amqp_rpc_reply_t r = amqp_basic_get(c, ch, amqp_cstring_bytes(q), no_ack);
	if (r.reply_type != AMQP_RESPONSE_NORMAL)
		return g;
	if (r.reply.id == AMQP_BASIC_GET_EMPTY_METHOD) {
		g.status = 0;
		return g;
	}
	amqp_basic_get_ok_t *ok = r.reply.decoded;
	g.tag = ok->delivery_tag;
	g.redelivered = ok->redelivered;
	g.message_count = ok->message_count;
	amqp_message_t m;
	r = amqp_read_message(c, ch, &m, 0);
	if (r.reply_type != AMQP_RESPONSE_NORMAL)
		return g;
	snprintf(g.body, sizeof(g.body), "%.*s", (int)m.body.len, (const char *)m.body.bytes);
	amqp_destroy_message(&m);
	g.status = 1;
	return g;
}

struct got get1(amqp_connection_state_t c, const char *q, bool no_ack)
{
	return get_on(c, 1, q, no_ack);
}

int drain(amqp_connection_state_t c, const char *q)
{
	int n = 0;
	while (get1(c, q, true).status == 1) {
		n++;
		amqp_maybe_release_buffers(c);
	}
	return n;
}

bool consume_on(amqp_connection_state_t c, amqp_channel_t ch, const char *q, const char *tag,
                bool no_ack, bool exclusive, char *tag_out, size_t n)
{
	amqp_basic_consume_ok_t *ok = amqp_basic_consume(
	    c, ch, amqp_cstring_bytes(q), tag ? amqp_cstring_bytes(tag) : amqp_empty_bytes, 0,
	    no_ack, exclusive, amqp_empty_table);
	if (!ok)
		return false;
	if (tag_out)
		snprintf(tag_out, n, "%.*s", (int)ok->consumer_tag.len,
		         (const char *)ok->consumer_tag.bytes);
	return true;
}

/* A connection that tells the broker it understands server-sent
 * basic.cancel (capability consumer_cancel_notify); channel 1 open. */
amqp_connection_state_t conn_open_cancel_notify(struct broker *b)
{
	amqp_connection_state_t c = amqp_new_connection();
	amqp_socket_t *s = amqp_tcp_socket_new(c);
	if (!s || amqp_socket_open(s, b->host, b->port) != AMQP_STATUS_OK) {
		amqp_destroy_connection(c);
		return NULL;
	}
	amqp_table_entry_t cap = {amqp_cstring_bytes("consumer_cancel_notify"),
	                          {AMQP_FIELD_KIND_BOOLEAN, {.boolean = 1}}};
	amqp_table_entry_t prop = {amqp_cstring_bytes("capabilities"),
	                           {AMQP_FIELD_KIND_TABLE, {.table = {1, &cap}}}};
	amqp_table_t props = {1, &prop};
	amqp_rpc_reply_t r = amqp_login_with_properties(c, "/", 2047, 131072, 0, &props,
	                                                AMQP_SASL_METHOD_PLAIN, "guest", "guest");
	if (r.reply_type != AMQP_RESPONSE_NORMAL) {
		amqp_destroy_connection(c);
		return NULL;
	}
	if (!open_channel(c, 1)) {
		amqp_destroy_connection(c);
		return NULL;
	}
	struct timeval tv = {10, 0};
	amqp_set_rpc_timeout(c, &tv);
	return c;
}
