/*
 * test_frame.c - the incremental frame parser (any split of the input must
 * give the same frames), its sticky errors, method decoding errors and the
 * frame writers.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_util.h"

/* ---- helpers ------------------------------------------------------------ */

#define MAX_EVENTS 64
#define ARENA_SIZE 16384

/* One parser result.  The payload is copied out at once because a frame
 * only borrows until the next feed. */
struct event {
	int rc;
	uint8_t type;
	uint16_t channel;
	uint32_t size;
	size_t off;         /* payload copy in the log's arena */
	const uint8_t *ptr; /* payload pointer as the parser returned it */
};

struct log {
	struct event ev[MAX_EVENTS];
	size_t n;
	uint8_t arena[ARENA_SIZE];
	size_t arena_used;
	int final_rc; /* NEED_MORE, or the error that stopped the run */
	uint16_t err_code;
	size_t consumed;
	bool broken; /* the parser misbehaved (no progress, overflow, ...) */
};

static void log_event(struct log *lg, int rc, const struct amqp_frame *f)
{
	if (lg->n >= MAX_EVENTS) {
		lg->broken = true;
		return;
	}
	struct event *e = &lg->ev[lg->n++];
	memset(e, 0, sizeof(*e));
	e->rc = rc;
	if (rc != AMQP_PARSE_FRAME)
		return;
	e->type = f->type;
	e->channel = f->channel;
	e->size = f->size;
	e->ptr = f->payload;
	e->off = lg->arena_used;
	if (f->size > ARENA_SIZE - lg->arena_used) {
		lg->broken = true;
		return;
	}
	if (f->size)
		memcpy(lg->arena + lg->arena_used, f->payload, f->size);
	lg->arena_used += f->size;
}

/* Body destinations for run(): split body frames are gathered into store,
 * one after the other, as a channel gathers them into a message body. */
struct dest_ctx {
	uint8_t store[ARENA_SIZE];
	size_t used;
	unsigned calls;
	bool bad_call; /* asked for a frame that is not a non-empty body frame */
};
static struct dest_ctx *run_dest; /* NULL: no destination (scratch only) */

static uint8_t *test_dest(void *arg, uint16_t channel, uint32_t size)
{
	struct dest_ctx *d = arg;
	(void)channel;
	d->calls++;
	if (size == 0)
		d->bad_call = true;
	if (size > sizeof(d->store) - d->used)
		return NULL;
	uint8_t *p = d->store + d->used;
	d->used += size;
	return p;
}

/*
 * Feed data[0..len) to a fresh parser in chunks of the given sizes.  With
 * `copy`, every chunk is fed from its own malloc'd block that is freed once
 * consumed, so ASan catches a parser that reads past a chunk or keeps
 * pointing into an old one.
 */
static void run(struct log *lg, enum amqp_parser_role role, uint32_t frame_max, const uint8_t *data,
                size_t len, const size_t *chunks, size_t nchunks, bool copy)
{
	struct amqp_frame_parser p;
	size_t off = 0;

	memset(lg, 0, sizeof(*lg));
	amqp_parser_init(&p, role, frame_max);
	if (run_dest)
		amqp_parser_set_body_dest(&p, test_dest, run_dest);
	for (size_t c = 0; c < nchunks && lg->final_rc == 0 && !lg->broken; c++) {
		size_t n = chunks[c];
		const uint8_t *in = data + off;
		uint8_t *block = NULL;
		if (copy) {
			block = malloc(n ? n : 1);
			CU_ASSERT_PTR_NOT_NULL_FATAL(block);
			memcpy(block, in, n);
			in = block;
		}
		size_t left = n;
		for (;;) {
			size_t used = (size_t)-1;
			struct amqp_frame f;
			struct amqp_err err = {0, NULL};
			int rc = amqp_parser_feed(&p, in, left, &used, &f, &err);
			if (used > left) {
				lg->broken = true;
				break;
			}
			in += used;
			left -= used;
			lg->consumed += used;
			if (rc == AMQP_PARSE_FRAME || rc == AMQP_PARSE_PROTOCOL_HEADER) {
				/* A result always consumes something, or the
				 * caller's loop would never end. */
				if (used == 0) {
					lg->broken = true;
					break;
				}
				log_event(lg, rc, &f);
				continue;
			}
			if (rc == AMQP_PARSE_NEED_MORE) {
				if (left != 0)
					lg->broken = true;
				break;
			}
			lg->final_rc = rc;
			lg->err_code = err.code;
			break;
		}
		free(block);
		off += n;
	}
	amqp_parser_free(&p);
}

static void assert_same_log(const struct log *a, const struct log *b, const char *what)
{
	bool same = !a->broken && !b->broken && a->n == b->n && a->final_rc == b->final_rc &&
	            a->err_code == b->err_code && a->consumed == b->consumed;
	for (size_t i = 0; same && i < a->n; i++) {
		const struct event *x = &a->ev[i], *y = &b->ev[i];
		same = x->rc == y->rc && x->type == y->type && x->channel == y->channel &&
		       x->size == y->size &&
		       memcmp(a->arena + x->off, b->arena + y->off, x->size) == 0;
	}
	if (!same)
		fprintf(stderr, "\n  frame sequence differs: %s\n", what);
	CU_ASSERT(same);
}

/* Feed one byte at a time (or all at once) until a result other than
 * NEED_MORE; *at is the index of the byte that produced it. */
static int feed(struct amqp_frame_parser *p, const uint8_t *d, size_t len, bool bytewise,
                size_t *at, struct amqp_frame *f, struct amqp_err *err)
{
	size_t used = 0;
	if (!bytewise) {
		*at = 0;
		return amqp_parser_feed(p, d, len, &used, f, err);
	}
	for (size_t i = 0; i < len; i++) {
		int rc = amqp_parser_feed(p, d + i, 1, &used, f, err);
		if (rc != AMQP_PARSE_NEED_MORE) {
			*at = i;
			return rc;
		}
		CU_ASSERT_EQUAL(used, 1);
	}
	*at = len;
	return AMQP_PARSE_NEED_MORE;
}

static const uint8_t heartbeat[8] = {0x08, 0, 0, 0, 0, 0, 0, 0xCE};

/* ---- protocol header ---------------------------------------------------- */

static void test_protocol_header_valid(void)
{
	static const uint8_t hdr[8] = {'A', 'M', 'Q', 'P', 0, 0, 9, 1};
	struct amqp_frame_parser p;
	struct amqp_frame f;
	struct amqp_err err = {0, NULL};
	size_t used = 0, at = 0;

	CU_ASSERT(memcmp(amqp_protocol_header, hdr, 8) == 0);

	amqp_parser_init(&p, AMQP_PARSER_SERVER, 4096);
	CU_ASSERT_EQUAL(amqp_parser_feed(&p, hdr, 8, &used, &f, &err), AMQP_PARSE_PROTOCOL_HEADER);
	CU_ASSERT_EQUAL(used, 8);
	/* Frames follow the header. */
	CU_ASSERT_EQUAL(amqp_parser_feed(&p, heartbeat, 8, &used, &f, &err), AMQP_PARSE_FRAME);
	CU_ASSERT_EQUAL(f.type, AMQP_FRAME_HEARTBEAT);
	amqp_parser_free(&p);

	amqp_parser_init(&p, AMQP_PARSER_SERVER, 4096);
	CU_ASSERT_EQUAL(feed(&p, hdr, 8, true, &at, &f, &err), AMQP_PARSE_PROTOCOL_HEADER);
	CU_ASSERT_EQUAL(at, 7);
	amqp_parser_free(&p);

	/* Header and a frame in one chunk: the header is consumed alone. */
	uint8_t both[16];
	memcpy(both, hdr, 8);
	memcpy(both + 8, heartbeat, 8);
	amqp_parser_init(&p, AMQP_PARSER_SERVER, 4096);
	CU_ASSERT_EQUAL(amqp_parser_feed(&p, both, 16, &used, &f, &err),
	                AMQP_PARSE_PROTOCOL_HEADER);
	CU_ASSERT_EQUAL(used, 8);
	CU_ASSERT_EQUAL(amqp_parser_feed(&p, both + 8, 8, &used, &f, &err), AMQP_PARSE_FRAME);
	CU_ASSERT_EQUAL(used, 8);
	CU_ASSERT_EQUAL(f.type, AMQP_FRAME_HEARTBEAT);
	amqp_parser_free(&p);
}

static void test_protocol_header_bad(void)
{
	static const struct {
		const char *bytes;
		size_t len;
		size_t first_diff;
	} cases[] = {
	    {"AMQP\0\0\x09\x00", 8, 7},
	    {"AMQP\x01\x01\x00\x09", 8, 4},
	    {"GET / HTTP/1.1", 14, 0},
	    {"\x08\0\0\0\0\0\0\xCE", 8, 0}, /* a frame before the header */
	    {"AMQP\0\0\x08\x00", 8, 6},     /* 0-8 */
	    {"AMQX", 4, 3},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const uint8_t *d = (const uint8_t *)cases[i].bytes;
		for (int bytewise = 0; bytewise < 2; bytewise++) {
			struct amqp_frame_parser p;
			struct amqp_frame f;
			struct amqp_err err = {0, NULL};
			size_t at = 99, used = 99;

			amqp_parser_init(&p, AMQP_PARSER_SERVER, 4096);
			int rc = feed(&p, d, cases[i].len, bytewise, &at, &f, &err);
			CU_ASSERT_EQUAL(rc, AMQP_PARSE_BAD_PROTOCOL);
			if (bytewise)
				CU_ASSERT_EQUAL(at, cases[i].first_diff);
			/* Stays failed, even when given the right header. */
			CU_ASSERT_EQUAL(
			    amqp_parser_feed(&p, amqp_protocol_header, 8, &used, &f, &err),
			    AMQP_PARSE_BAD_PROTOCOL);
			CU_ASSERT_EQUAL(used, 0);
			CU_ASSERT_EQUAL(amqp_parser_feed(&p, heartbeat, 8, &used, &f, &err),
			                AMQP_PARSE_BAD_PROTOCOL);
			CU_ASSERT_EQUAL(used, 0);
			CU_ASSERT_PTR_NULL(p.buf);
			amqp_parser_free(&p);
		}
	}
}

static void test_client_role(void)
{
	struct amqp_frame_parser p;
	struct amqp_frame f;
	struct amqp_err err = {0, NULL};
	size_t used = 0;

	amqp_parser_init(&p, AMQP_PARSER_CLIENT, 4096);
	CU_ASSERT_EQUAL(amqp_parser_feed(&p, heartbeat, 8, &used, &f, &err), AMQP_PARSE_FRAME);
	CU_ASSERT_EQUAL(used, 8);
	CU_ASSERT_EQUAL(f.type, AMQP_FRAME_HEARTBEAT);
	CU_ASSERT_EQUAL(f.channel, 0);
	CU_ASSERT_EQUAL(f.size, 0);
	amqp_parser_free(&p);

	/* A client parser does not expect a header: 'A' is frame type 65. */
	amqp_parser_init(&p, AMQP_PARSER_CLIENT, 4096);
	CU_ASSERT_EQUAL(amqp_parser_feed(&p, amqp_protocol_header, 8, &used, &f, &err),
	                -AMQP_FRAME_ERROR);
	CU_ASSERT_EQUAL(err.code, AMQP_FRAME_ERROR);
	amqp_parser_free(&p);
}

/* ---- a stream of many frames, split every which way ---------------------- */

struct expect {
	uint8_t type;
	uint16_t channel;
	size_t off; /* payload offset in the stream */
	uint32_t size;
};

struct stream {
	uint8_t buf[4096];
	size_t len;
	struct expect exp[32];
	size_t n;
};

static void add_frame(struct stream *s, size_t n, uint8_t type, uint16_t channel)
{
	CU_ASSERT_FATAL(n >= 8 && s->len + n <= sizeof(s->buf) && s->n < 32);
	s->exp[s->n].type = type;
	s->exp[s->n].channel = channel;
	s->exp[s->n].off = s->len + 7;
	s->exp[s->n].size = (uint32_t)(n - 8);
	s->n++;
	s->len += n;
}

static void build_stream(struct stream *s)
{
	struct amqp_method m;
	uint8_t body[120];
	size_t n;

	memset(s, 0, sizeof(*s));
	memcpy(s->buf, amqp_protocol_header, 8);
	s->len = 8;

	/* connection.start-ok with a real table and a longstr holding NULs. */
	static const uint8_t sasl[] = {0, 'g', 'u', 'e', 's', 't', 0, 'g', 'u', 'e', 's', 't'};
	struct amqp_table_entry e[2] = {
	    {amqp_cstr("product"), {.type = AMQP_FIELD_LONGSTR, .v = {.str = amqp_cstr("t")}}},
	    {amqp_cstr("n"), {.type = AMQP_FIELD_I32, .v = {.i32 = -7}}},
	};
	struct amqp_table t = {e, 2};
	uint8_t tbl[128];
	struct amqp_wr w;
	amqp_wr_init(&w, tbl, sizeof(tbl));
	amqp_table_encode_contents(&w, &t);
	CU_ASSERT_FATAL(amqp_wr_ok(&w));

	memset(&m, 0, sizeof(m));
	m.id = AMQP_CONNECTION_START_OK;
	m.u.connection_start_ok.client_properties = (struct amqp_bytes){tbl, w.len};
	m.u.connection_start_ok.mechanism = amqp_cstr("PLAIN");
	m.u.connection_start_ok.response = (struct amqp_bytes){sasl, sizeof(sasl)};
	m.u.connection_start_ok.locale = amqp_cstr("en_US");
	n = amqp_frame_method(s->buf + s->len, sizeof(s->buf) - s->len, 0, &m);
	add_frame(s, n, AMQP_FRAME_METHOD, 0);

	memset(&m, 0, sizeof(m));
	m.id = AMQP_CONNECTION_TUNE_OK;
	m.u.connection_tune_ok.channel_max = 2047;
	m.u.connection_tune_ok.frame_max = 131072;
	m.u.connection_tune_ok.heartbeat = 60;
	n = amqp_frame_method(s->buf + s->len, sizeof(s->buf) - s->len, 0, &m);
	add_frame(s, n, AMQP_FRAME_METHOD, 0);

	memset(&m, 0, sizeof(m));
	m.id = AMQP_CHANNEL_OPEN;
	n = amqp_frame_method(s->buf + s->len, sizeof(s->buf) - s->len, 1, &m);
	add_frame(s, n, AMQP_FRAME_METHOD, 1);

	memset(&m, 0, sizeof(m));
	m.id = AMQP_BASIC_PUBLISH;
	m.u.basic_publish.exchange = amqp_cstr("amq.direct");
	m.u.basic_publish.routing_key = amqp_cstr("rk");
	m.u.basic_publish.mandatory = true;
	n = amqp_frame_method(s->buf + s->len, sizeof(s->buf) - s->len, 0x1234, &m);
	add_frame(s, n, AMQP_FRAME_METHOD, 0x1234);

	struct amqp_basic_props props;
	memset(&props, 0, sizeof(props));
	props.flags = AMQP_PROP_CONTENT_TYPE | AMQP_PROP_DELIVERY_MODE;
	props.content_type = amqp_cstr("text/plain");
	props.delivery_mode = 2;
	n = amqp_frame_header(s->buf + s->len, sizeof(s->buf) - s->len, 0x1234, AMQP_CLASS_BASIC,
	                      171, &props);
	add_frame(s, n, AMQP_FRAME_HEADER, 0x1234);

	for (size_t i = 0; i < sizeof(body); i++)
		body[i] = (uint8_t)(i * 7 + 1);
	static const size_t body_sizes[] = {100, 0, 1, 50, 20};
	for (size_t i = 0; i < sizeof(body_sizes) / sizeof(body_sizes[0]); i++) {
		n = amqp_frame_body(s->buf + s->len, sizeof(s->buf) - s->len, 0x1234,
		                    (struct amqp_bytes){body + i, body_sizes[i]});
		add_frame(s, n, AMQP_FRAME_BODY, 0x1234);
		if (i == 2) {
			n = amqp_frame_heartbeat(s->buf + s->len, sizeof(s->buf) - s->len);
			add_frame(s, n, AMQP_FRAME_HEARTBEAT, 0);
		}
	}

	memset(&m, 0, sizeof(m));
	m.id = AMQP_BASIC_ACK;
	m.u.basic_ack.delivery_tag = 0x0102030405060708ull;
	m.u.basic_ack.multiple = true;
	n = amqp_frame_method(s->buf + s->len, sizeof(s->buf) - s->len, 0xFFFF, &m);
	add_frame(s, n, AMQP_FRAME_METHOD, 0xFFFF);

	n = amqp_frame_heartbeat(s->buf + s->len, sizeof(s->buf) - s->len);
	add_frame(s, n, AMQP_FRAME_HEARTBEAT, 0);
}

static uint32_t rng_state;

static uint32_t rng(void)
{
	/* xorshift32: deterministic, so a failure reproduces. */
	uint32_t x = rng_state;
	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	return rng_state = x;
}

static void test_stream_whole_buffer(void)
{
	static struct stream s;
	static struct log lg;
	build_stream(&s);

	size_t chunk = s.len;
	run(&lg, AMQP_PARSER_SERVER, 4096, s.buf, s.len, &chunk, 1, false);
	CU_ASSERT_FALSE(lg.broken);
	CU_ASSERT_EQUAL(lg.final_rc, AMQP_PARSE_NEED_MORE);
	CU_ASSERT_EQUAL(lg.consumed, s.len);
	CU_ASSERT_EQUAL_FATAL(lg.n, s.n + 1);
	CU_ASSERT_EQUAL(lg.ev[0].rc, AMQP_PARSE_PROTOCOL_HEADER);
	for (size_t i = 0; i < s.n; i++) {
		const struct event *e = &lg.ev[i + 1];
		const struct expect *x = &s.exp[i];
		CU_ASSERT_EQUAL(e->rc, AMQP_PARSE_FRAME);
		CU_ASSERT_EQUAL(e->type, x->type);
		CU_ASSERT_EQUAL(e->channel, x->channel);
		CU_ASSERT_EQUAL(e->size, x->size);
		/* Whole frames in one chunk are returned without copying. */
		if (x->size)
			CU_ASSERT_PTR_EQUAL(e->ptr, s.buf + x->off);
		CU_ASSERT(memcmp(lg.arena + e->off, s.buf + x->off, x->size) == 0);
	}
	/* The empty body frame really is in the stream. */
	bool saw_empty_body = false;
	for (size_t i = 0; i < s.n; i++)
		saw_empty_body |= s.exp[i].type == AMQP_FRAME_BODY && s.exp[i].size == 0;
	CU_ASSERT(saw_empty_body);
}

static void test_stream_splits(void)
{
	static struct stream s;
	static struct log ref, lg;
	static size_t chunks[sizeof(s.buf)];
	build_stream(&s);

	chunks[0] = s.len;
	run(&ref, AMQP_PARSER_SERVER, 4096, s.buf, s.len, chunks, 1, false);
	CU_ASSERT_EQUAL_FATAL(ref.n, s.n + 1);

	/* (b) one byte at a time */
	for (size_t i = 0; i < s.len; i++)
		chunks[i] = 1;
	run(&lg, AMQP_PARSER_SERVER, 4096, s.buf, s.len, chunks, s.len, true);
	assert_same_log(&ref, &lg, "byte by byte");

	/* (c) every split point into two pieces (including empty ones) */
	for (size_t cut = 0; cut <= s.len; cut++) {
		chunks[0] = cut;
		chunks[1] = s.len - cut;
		run(&lg, AMQP_PARSER_SERVER, 4096, s.buf, s.len, chunks, 2, true);
		char what[64];
		snprintf(what, sizeof(what), "split at %zu", cut);
		assert_same_log(&ref, &lg, what);
	}

	/* (d) random chunk sizes, small and large */
	for (uint32_t seed = 1; seed <= 300; seed++) {
		size_t nchunks = 0, off = 0;
		rng_state = seed * 2654435761u;
		uint32_t maxc = seed % 3 == 0 ? 200 : seed % 3 == 1 ? 13 : 40;
		while (off < s.len) {
			size_t c = rng() % (maxc + 1); /* 0 too: empty feeds */
			if (c > s.len - off)
				c = s.len - off;
			chunks[nchunks++] = c;
			off += c;
		}
		run(&lg, AMQP_PARSER_SERVER, 4096, s.buf, s.len, chunks, nchunks, true);
		char what[64];
		snprintf(what, sizeof(what), "random chunks, seed %u", seed);
		assert_same_log(&ref, &lg, what);
	}

	/* The same frames from a client-role parser, minus the header. */
	static struct log cl;
	chunks[0] = s.len - 8;
	run(&cl, AMQP_PARSER_CLIENT, 4096, s.buf + 8, s.len - 8, chunks, 1, false);
	CU_ASSERT_EQUAL_FATAL(cl.n, s.n);
	for (size_t i = 0; i < s.n; i++) {
		CU_ASSERT_EQUAL(cl.ev[i].type, s.exp[i].type);
		CU_ASSERT_EQUAL(cl.ev[i].channel, s.exp[i].channel);
		CU_ASSERT_EQUAL(cl.ev[i].size, s.exp[i].size);
	}
}

/* With a body destination the frames are the same; a body frame that
 * arrived split is gathered straight into the destination (no scratch copy),
 * one that lay whole in a chunk still borrows from the input. */
static void test_stream_body_dest(void)
{
	static struct stream s;
	static struct log ref, lg;
	static struct dest_ctx d;
	static size_t chunks[sizeof(s.buf)];
	build_stream(&s);

	chunks[0] = s.len;
	run(&ref, AMQP_PARSER_SERVER, 4096, s.buf, s.len, chunks, 1, false);
	CU_ASSERT_EQUAL_FATAL(ref.n, s.n + 1);

	for (uint32_t seed = 0; seed <= 300; seed++) {
		size_t nchunks = 0, off = 0;
		if (seed == 0) { /* byte by byte: every frame split */
			for (; off < s.len; off++)
				chunks[nchunks++] = 1;
		}
		rng_state = (seed + 1) * 2246822519u;
		while (off < s.len) {
			size_t c = rng() % (seed % 2 ? 60 : 300);
			if (c > s.len - off)
				c = s.len - off;
			chunks[nchunks++] = c;
			off += c;
		}
		memset(&d, 0, sizeof(d));
		run_dest = &d;
		run(&lg, AMQP_PARSER_SERVER, 4096, s.buf, s.len, chunks, nchunks, true);
		run_dest = NULL;
		char what[64];
		snprintf(what, sizeof(what), "body dest, seed %u", seed);
		assert_same_log(&ref, &lg, what);
		CU_ASSERT_FALSE(d.bad_call);
		unsigned in_dest = 0;
		for (size_t i = 0; i < s.n && i + 1 < lg.n; i++) {
			const struct event *e = &lg.ev[i + 1];
			bool ours = e->ptr >= d.store && e->ptr < d.store + sizeof(d.store);
			if (ours) {
				in_dest++;
				CU_ASSERT_EQUAL(s.exp[i].type, AMQP_FRAME_BODY);
				CU_ASSERT(memcmp(e->ptr, s.buf + s.exp[i].off, e->size) == 0);
			}
		}
		/* Every destination handed out was used by its frame. */
		CU_ASSERT_EQUAL(in_dest, d.calls);
		if (seed == 0)
			CU_ASSERT_EQUAL(d.calls, 4); /* the non-empty body frames */
	}
}

/* A destination withdrawn while its frame is half gathered is written no
 * more; the frame still comes out, from the scratch buffer, with zeros
 * where the withdrawn part was. */
static void test_body_dest_release(void)
{
	uint8_t body[100], frame[108], mem[100];
	for (size_t i = 0; i < sizeof(body); i++)
		body[i] = (uint8_t)(i + 1);
	size_t n = amqp_frame_body(frame, sizeof(frame), 3, (struct amqp_bytes){body, 100});
	CU_ASSERT_EQUAL_FATAL(n, sizeof(frame));

	static struct dest_ctx d;
	memset(&d, 0, sizeof(d));
	struct amqp_frame_parser p;
	amqp_parser_init(&p, AMQP_PARSER_CLIENT, 4096);
	amqp_parser_set_body_dest(&p, test_dest, &d);
	struct amqp_frame f;
	struct amqp_err err;
	size_t used;
	CU_ASSERT_EQUAL(amqp_parser_feed(&p, frame, 47, &used, &f, &err), AMQP_PARSE_NEED_MORE);
	CU_ASSERT_EQUAL(d.calls, 1);
	CU_ASSERT(memcmp(d.store, body, 40) == 0);
	/* Memory that is not the destination: nothing changes. */
	CU_ASSERT_EQUAL(amqp_parser_release_dest(&p, mem, sizeof(mem)), 0);
	CU_ASSERT_EQUAL(amqp_parser_release_dest(&p, d.store + 100, 100), 0);
	CU_ASSERT_EQUAL(amqp_parser_feed(&p, frame + 47, 10, &used, &f, &err),
	                AMQP_PARSE_NEED_MORE);
	CU_ASSERT(memcmp(d.store, body, 50) == 0);
	/* The destination's owner withdraws it (a range holding it). */
	CU_ASSERT_EQUAL(amqp_parser_release_dest(&p, d.store, 100), 0);
	memset(d.store, 0xAA, sizeof(d.store));
	CU_ASSERT_EQUAL(amqp_parser_feed(&p, frame + 57, n - 57, &used, &f, &err),
	                AMQP_PARSE_FRAME);
	CU_ASSERT_EQUAL(used, n - 57);
	CU_ASSERT_EQUAL(f.type, AMQP_FRAME_BODY);
	CU_ASSERT_EQUAL(f.channel, 3);
	CU_ASSERT_EQUAL(f.size, 100);
	CU_ASSERT(f.payload < d.store || f.payload >= d.store + sizeof(d.store));
	static const uint8_t zeros[50];
	CU_ASSERT(memcmp(f.payload, zeros, 50) == 0);
	CU_ASSERT(memcmp(f.payload + 50, body + 50, 50) == 0);
	CU_ASSERT_EQUAL(d.store[0], 0xAA); /* not written after the release */
	CU_ASSERT_EQUAL(d.store[99], 0xAA);
	/* Between frames a release is a no-op; the next frame asks again. */
	CU_ASSERT_EQUAL(amqp_parser_release_dest(&p, d.store, sizeof(d.store)), 0);
	CU_ASSERT_EQUAL(amqp_parser_feed(&p, frame, 60, &used, &f, &err), AMQP_PARSE_NEED_MORE);
	CU_ASSERT_EQUAL(d.calls, 2);
	amqp_parser_free(&p);
}

/* ---- frame errors -------------------------------------------------------- */

/*
 * Feed a bad frame (client role) all at once and byte by byte: it must fail
 * with 501 when byte `fail_at` arrives, fill err, keep failing afterwards,
 * and (for header rejections) not have allocated the scratch buffer.
 */
static void expect_frame_error(uint32_t frame_max, const uint8_t *d, size_t len, size_t fail_at)
{
	for (int bytewise = 0; bytewise < 2; bytewise++) {
		struct amqp_frame_parser p;
		struct amqp_frame f;
		struct amqp_err err = {0, NULL};
		size_t at = 0, used = 99;

		amqp_parser_init(&p, AMQP_PARSER_CLIENT, frame_max);
		int rc = feed(&p, d, len, bytewise, &at, &f, &err);
		CU_ASSERT_EQUAL(rc, -AMQP_FRAME_ERROR);
		CU_ASSERT_EQUAL(err.code, AMQP_FRAME_ERROR);
		CU_ASSERT(err.text && strncmp(err.text, "FRAME_ERROR", 11) == 0);
		if (bytewise) {
			CU_ASSERT_EQUAL(at, fail_at);
			if (at != fail_at)
				fprintf(stderr, "\n  failed at byte %zu, expected %zu\n", at,
				        fail_at);
		}
		if (fail_at < 7) {
			/* Rejected from its header: nothing buffered for it. */
			CU_ASSERT_PTR_NULL(p.buf);
			CU_ASSERT_EQUAL(p.buf_cap, 0);
		}
		/* Sticky: later input, even valid, gets the same error. */
		struct amqp_err err2 = {0, NULL};
		CU_ASSERT_EQUAL(amqp_parser_feed(&p, heartbeat, 8, &used, &f, &err2),
		                -AMQP_FRAME_ERROR);
		CU_ASSERT_EQUAL(used, 0);
		CU_ASSERT_EQUAL(err2.code, AMQP_FRAME_ERROR);
		CU_ASSERT_PTR_NOT_NULL(err2.text);
		/* ...also when the caller passes no err. */
		CU_ASSERT_EQUAL(amqp_parser_feed(&p, heartbeat, 8, &used, &f, NULL),
		                -AMQP_FRAME_ERROR);
		amqp_parser_free(&p);
	}
}

static void test_unknown_frame_type(void)
{
	static const uint8_t types[] = {0, 4, 5, 7, 9, 'A', 0xCE, 0xFF};
	for (size_t i = 0; i < sizeof(types); i++) {
		uint8_t fr[12] = {types[i], 0, 1, 0, 0, 0, 4, 0, 10, 0, 10, 0xCE};
		expect_frame_error(4096, fr, sizeof(fr), 6);
	}
}

static void test_bad_frame_end(void)
{
	uint8_t hb[8] = {0x08, 0, 0, 0, 0, 0, 0, 0x00};
	expect_frame_error(4096, hb, sizeof(hb), 7);
	uint8_t fr[12] = {0x01, 0, 1, 0, 0, 0, 4, 0, 20, 0, 41, 0xCD};
	expect_frame_error(4096, fr, sizeof(fr), 11);
	uint8_t empty_body[8] = {0x03, 0, 1, 0, 0, 0, 0, 0xCF};
	expect_frame_error(4096, empty_body, sizeof(empty_body), 7);
}

static void test_bad_heartbeat(void)
{
	uint8_t on_channel[8] = {0x08, 0, 1, 0, 0, 0, 0, 0xCE};
	expect_frame_error(4096, on_channel, sizeof(on_channel), 6);
	uint8_t with_payload[9] = {0x08, 0, 0, 0, 0, 0, 1, 0, 0xCE};
	expect_frame_error(4096, with_payload, sizeof(with_payload), 6);
}

/* A body frame with `size` payload bytes (caller frees). */
static uint8_t *body_frame(uint32_t size, size_t *len)
{
	uint8_t *fr = malloc((size_t)size + 8);
	CU_ASSERT_PTR_NOT_NULL_FATAL(fr);
	fr[0] = AMQP_FRAME_BODY;
	fr[1] = 0;
	fr[2] = 1;
	fr[3] = (uint8_t)(size >> 24);
	fr[4] = (uint8_t)(size >> 16);
	fr[5] = (uint8_t)(size >> 8);
	fr[6] = (uint8_t)size;
	for (uint32_t i = 0; i < size; i++)
		fr[7 + i] = (uint8_t)(i * 13);
	fr[7 + (size_t)size] = 0xCE;
	*len = (size_t)size + 8;
	return fr;
}

static void expect_frame_ok(struct amqp_frame_parser *p, const uint8_t *d, size_t len,
                            bool bytewise)
{
	struct amqp_frame f;
	struct amqp_err err = {0, NULL};
	size_t at = 0;
	int rc = feed(p, d, len, bytewise, &at, &f, &err);
	CU_ASSERT_EQUAL(rc, AMQP_PARSE_FRAME);
	if (rc != AMQP_PARSE_FRAME)
		return;
	if (bytewise)
		CU_ASSERT_EQUAL(at, len - 1);
	CU_ASSERT_EQUAL(f.size, len - 8);
	CU_ASSERT(memcmp(f.payload, d + 7, len - 8) == 0);
}

static void test_frame_max_boundary(void)
{
	static const uint32_t maxes[] = {4096, 131072};
	for (size_t i = 0; i < 2; i++) {
		uint32_t fm = maxes[i];
		size_t len;
		/* size == frame_max - 8: accepted, whole or byte by byte */
		uint8_t *ok = body_frame(fm - 8, &len);
		CU_ASSERT_EQUAL(len, fm);
		for (int bytewise = 0; bytewise < 2; bytewise++) {
			struct amqp_frame_parser p;
			amqp_parser_init(&p, AMQP_PARSER_CLIENT, fm);
			expect_frame_ok(&p, ok, len, bytewise);
			amqp_parser_free(&p);
		}
		free(ok);
		/* one more: rejected as soon as the size is known */
		uint8_t *big = body_frame(fm - 7, &len);
		expect_frame_error(fm, big, len, 6);
		free(big);
	}
}

static void test_huge_size_not_allocated(void)
{
	uint8_t hdr[8] = {AMQP_FRAME_BODY, 0, 1, 0xFF, 0xFF, 0xFF, 0xFF, 0};
	/* Only the 7 header bytes are needed to fail. */
	expect_frame_error(4096, hdr, 7, 6);
	expect_frame_error(131072, hdr, 7, 6);
	/* frame_max 0 means no negotiated limit, but a ceiling remains. */
	expect_frame_error(0, hdr, 7, 6);
	uint32_t over = AMQP_FRAME_MAX_ABSOLUTE - 7;
	uint8_t hdr2[7] = {AMQP_FRAME_METHOD,
	                   0,
	                   1,
	                   (uint8_t)(over >> 24),
	                   (uint8_t)(over >> 16),
	                   (uint8_t)(over >> 8),
	                   (uint8_t)over};
	expect_frame_error(0, hdr2, 7, 6);
	/* Below the ceiling a size is accepted (nothing but the header fed,
	 * so only the header is checked here). */
	uint32_t under = 1000000;
	uint8_t hdr3[7] = {AMQP_FRAME_BODY,
	                   0,
	                   1,
	                   (uint8_t)(under >> 24),
	                   (uint8_t)(under >> 16),
	                   (uint8_t)(under >> 8),
	                   (uint8_t)under};
	struct amqp_frame_parser p;
	struct amqp_frame f;
	struct amqp_err err = {0, NULL};
	size_t at = 0;
	amqp_parser_init(&p, AMQP_PARSER_CLIENT, 0);
	CU_ASSERT_EQUAL(feed(&p, hdr3, 7, true, &at, &f, &err), AMQP_PARSE_NEED_MORE);
	amqp_parser_free(&p);
}

static void test_set_frame_max(void)
{
	size_t len;
	uint8_t *fr = body_frame(5000, &len);
	struct amqp_frame_parser p;

	for (int bytewise = 0; bytewise < 2; bytewise++) {
		amqp_parser_init(&p, AMQP_PARSER_CLIENT, 4096);
		amqp_parser_set_frame_max(&p, 131072);
		CU_ASSERT_EQUAL(p.frame_max, 131072);
		expect_frame_ok(&p, fr, len, bytewise);
		expect_frame_ok(&p, fr, len, bytewise);
		/* Lowered again: the next frame is checked against it. */
		amqp_parser_set_frame_max(&p, 4096);
		struct amqp_frame f;
		struct amqp_err err = {0, NULL};
		size_t at = 0;
		CU_ASSERT_EQUAL(feed(&p, fr, len, bytewise, &at, &f, &err), -AMQP_FRAME_ERROR);
		CU_ASSERT_EQUAL(err.code, AMQP_FRAME_ERROR);
		amqp_parser_free(&p);
	}

	/* Without the change the same frame is rejected. */
	expect_frame_error(4096, fr, len, 6);
	free(fr);
}

/* ---- writers ------------------------------------------------------------- */

static void test_write_heartbeat(void)
{
	uint8_t buf[16];
	memset(buf, 0xAA, sizeof(buf));
	CU_ASSERT_EQUAL(amqp_frame_heartbeat(buf, sizeof(buf)), 8);
	CU_ASSERT(memcmp(buf, heartbeat, 8) == 0);
	CU_ASSERT_EQUAL(buf[8], 0xAA);
}

static void test_write_body(void)
{
	uint8_t buf[32];
	static const uint8_t want[] = {0x03, 0x00, 0x05, 0, 0, 0, 3, 'a', 0, 'c', 0xCE};
	memset(buf, 0xAA, sizeof(buf));
	CU_ASSERT_EQUAL(
	    amqp_frame_body(buf, sizeof(buf), 5, (struct amqp_bytes){(const uint8_t *)"a\0c", 3}),
	    sizeof(want));
	CU_ASSERT(memcmp(buf, want, sizeof(want)) == 0);
	CU_ASSERT_EQUAL(buf[sizeof(want)], 0xAA);

	static const uint8_t empty[] = {0x03, 0xAB, 0xCD, 0, 0, 0, 0, 0xCE};
	CU_ASSERT_EQUAL(amqp_frame_body(buf, sizeof(buf), 0xABCD, (struct amqp_bytes){NULL, 0}),
	                sizeof(empty));
	CU_ASSERT(memcmp(buf, empty, sizeof(empty)) == 0);
}

static void test_write_header_raw(void)
{
	uint8_t buf[64];
	static const uint8_t props[] = {0x90, 0x00, 0x03, 'a', '/', 'b', 0x02};
	static const uint8_t want[] = {0x02, 0x00, 0x07, 0,    0,    0,    19,   0x00, 0x3C,
	                               0x00, 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07,
	                               0x08, 0x90, 0x00, 0x03, 'a',  '/',  'b',  0x02, 0xCE};
	memset(buf, 0xAA, sizeof(buf));
	CU_ASSERT_EQUAL(amqp_frame_header_raw(buf, sizeof(buf), 7, AMQP_CLASS_BASIC,
	                                      0x0102030405060708ull,
	                                      (struct amqp_bytes){props, sizeof(props)}),
	                sizeof(want));
	CU_ASSERT(memcmp(buf, want, sizeof(want)) == 0);
	CU_ASSERT_EQUAL(buf[sizeof(want)], 0xAA);

	/* The structured writer gives the same bytes for the same props. */
	struct amqp_basic_props p;
	memset(&p, 0, sizeof(p));
	p.flags = AMQP_PROP_CONTENT_TYPE | AMQP_PROP_DELIVERY_MODE;
	p.content_type = amqp_cstr("a/b");
	p.delivery_mode = 2;
	memset(buf, 0xAA, sizeof(buf));
	CU_ASSERT_EQUAL(
	    amqp_frame_header(buf, sizeof(buf), 7, AMQP_CLASS_BASIC, 0x0102030405060708ull, &p),
	    sizeof(want));
	CU_ASSERT(memcmp(buf, want, sizeof(want)) == 0);
}

/* Every writer, at every capacity below what it needs: returns the needed
 * size and leaves the bytes past the capacity alone. */
static void test_write_small_buffer(void)
{
	struct amqp_method m;
	memset(&m, 0, sizeof(m));
	m.id = AMQP_QUEUE_DECLARE;
	m.u.queue_declare.queue = amqp_cstr("a-queue-name");
	m.u.queue_declare.durable = true;
	static const uint8_t props[] = {0x80, 0x00, 0x03, 'a', '/', 'b'};
	static const uint8_t body[] = "0123456789";

	for (int which = 0; which < 4; which++) {
		uint8_t buf[160];
		size_t need = 0;
		for (size_t cap = 0;; cap++) {
			memset(buf, 0xAA, sizeof(buf));
			size_t n = 0;
			switch (which) {
			case 0:
				n = amqp_frame_method(buf, cap, 3, &m);
				break;
			case 1:
				n = amqp_frame_header_raw(
				    buf, cap, 3, AMQP_CLASS_BASIC, 10,
				    (struct amqp_bytes){props, sizeof(props)});
				break;
			case 2:
				n = amqp_frame_body(buf, cap, 3, (struct amqp_bytes){body, 10});
				break;
			case 3:
				n = amqp_frame_heartbeat(buf, cap);
				break;
			}
			if (cap == 0) {
				need = n;
				CU_ASSERT_FATAL(need >= 8 && need <= 128);
			}
			CU_ASSERT_EQUAL(n, need);
			for (size_t i = cap; i < sizeof(buf); i++) {
				if (buf[i] != 0xAA) {
					CU_FAIL("writer wrote past its capacity");
					fprintf(stderr, "\n  writer %d cap %zu wrote byte %zu\n",
					        which, cap, i);
					break;
				}
			}
			if (cap == need) {
				/* Fits: the frame is complete and well formed. */
				CU_ASSERT_EQUAL(buf[need - 1], 0xCE);
				uint32_t size = ((uint32_t)buf[3] << 24) |
				                ((uint32_t)buf[4] << 16) | ((uint32_t)buf[5] << 8) |
				                buf[6];
				CU_ASSERT_EQUAL(size, need - 8);
				break;
			}
		}
	}
}

static void test_write_unencodable(void)
{
	char name[300];
	uint8_t buf[1024];
	struct amqp_method m;

	memset(name, 'q', sizeof(name));
	memset(&m, 0, sizeof(m));
	m.id = AMQP_QUEUE_DECLARE;
	m.u.queue_declare.queue = (struct amqp_bytes){(const uint8_t *)name, 255};
	CU_ASSERT_EQUAL(amqp_frame_method(buf, sizeof(buf), 1, &m), 7 + 4 + 2 + 256 + 1 + 4 + 1);
	m.u.queue_declare.queue.len = 256;
	CU_ASSERT_EQUAL(amqp_frame_method(buf, sizeof(buf), 1, &m), 0);
	/* Also when the buffer would have been too small anyway. */
	CU_ASSERT_EQUAL(amqp_frame_method(buf, 10, 1, &m), 0);

	/* An id that is not in the spec cannot be encoded either. */
	memset(&m, 0, sizeof(m));
	m.id = AMQP_METHOD_ID(10, 12);
	CU_ASSERT_EQUAL(amqp_frame_method(buf, sizeof(buf), 1, &m), 0);

	struct amqp_basic_props p;
	memset(&p, 0, sizeof(p));
	p.flags = AMQP_PROP_CONTENT_TYPE;
	p.content_type = (struct amqp_bytes){(const uint8_t *)name, 256};
	CU_ASSERT_EQUAL(amqp_frame_header(buf, sizeof(buf), 1, AMQP_CLASS_BASIC, 0, &p), 0);
}

/* ---- method decoding errors ---------------------------------------------- */

static void test_decode_unknown_method(void)
{
	static const uint16_t ids[][2] = {{10, 12}, {0, 0},   {40, 41},     {60, 41},
	                                  {85, 20}, {90, 40}, {100, 10},    {20, 30},
	                                  {30, 12}, {50, 60}, {0xFFFF, 10}, {60, 0xFFFF}};
	for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
		uint8_t pl[8] = {(uint8_t)(ids[i][0] >> 8),
		                 (uint8_t)ids[i][0],
		                 (uint8_t)(ids[i][1] >> 8),
		                 (uint8_t)ids[i][1],
		                 0,
		                 0,
		                 0,
		                 0};
		for (size_t len = 4; len <= 8; len += 4) {
			struct amqp_method m;
			struct amqp_err err = {0, NULL};
			CU_ASSERT_EQUAL(amqp_method_decode(pl, len, &m, &err),
			                -AMQP_COMMAND_INVALID);
			CU_ASSERT_EQUAL(err.code, AMQP_COMMAND_INVALID);
			CU_ASSERT_PTR_NOT_NULL(err.text);
		}
	}
}

static void test_decode_too_short(void)
{
	static const uint8_t pl[4] = {0, 90, 0, 10}; /* tx.select */
	for (size_t len = 0; len < 4; len++) {
		struct amqp_method m;
		struct amqp_err err = {0, NULL};
		CU_ASSERT_EQUAL(amqp_method_decode(pl, len, &m, &err), -AMQP_FRAME_ERROR);
		CU_ASSERT_EQUAL(err.code, AMQP_FRAME_ERROR);
		CU_ASSERT_PTR_NOT_NULL(err.text);
	}
	struct amqp_method m;
	CU_ASSERT_EQUAL(amqp_method_decode(pl, 4, &m, NULL), 0);
	CU_ASSERT_EQUAL(m.id, AMQP_TX_SELECT);
}

/* queue.declare with a non-empty arguments table, encoded. */
static size_t queue_declare_payload(uint8_t *out, size_t cap, struct amqp_bytes args)
{
	struct amqp_method m;
	struct amqp_wr w;
	memset(&m, 0, sizeof(m));
	m.id = AMQP_QUEUE_DECLARE;
	m.u.queue_declare.ticket = 7;
	m.u.queue_declare.queue = amqp_cstr("orders");
	m.u.queue_declare.durable = true;
	m.u.queue_declare.arguments = args;
	amqp_wr_init(&w, out, cap);
	CU_ASSERT_FATAL(amqp_method_encode(&w, &m) && amqp_wr_ok(&w));
	return w.len;
}

static void test_decode_truncated_and_trailing(void)
{
	struct amqp_table_entry e[2] = {
	    {amqp_cstr("x-max-length"), {.type = AMQP_FIELD_I32, .v = {.i32 = 10}}},
	    {amqp_cstr("x-queue-type"),
	     {.type = AMQP_FIELD_LONGSTR, .v = {.str = amqp_cstr("quorum")}}},
	};
	struct amqp_table t = {e, 2};
	uint8_t tbl[128], pl[256];
	struct amqp_wr w;
	amqp_wr_init(&w, tbl, sizeof(tbl));
	amqp_table_encode_contents(&w, &t);
	CU_ASSERT_FATAL(amqp_wr_ok(&w));
	size_t len = queue_declare_payload(pl, sizeof(pl), (struct amqp_bytes){tbl, w.len});

	struct amqp_method m;
	struct amqp_err err = {0, NULL};
	CU_ASSERT_EQUAL_FATAL(amqp_method_decode(pl, len, &m, &err), 0);
	CU_ASSERT_EQUAL(m.id, AMQP_QUEUE_DECLARE);
	CU_ASSERT(amqp_bytes_eq_cstr(m.u.queue_declare.queue, "orders"));
	CU_ASSERT_EQUAL(m.u.queue_declare.arguments.len, w.len);

	/* Every truncation, each from an exact-size copy so ASan sees any
	 * read past the end. */
	for (size_t cut = 0; cut < len; cut++) {
		uint8_t *c = malloc(cut ? cut : 1);
		CU_ASSERT_PTR_NOT_NULL_FATAL(c);
		memcpy(c, pl, cut);
		err.code = 0;
		err.text = NULL;
		int rc = amqp_method_decode(c, cut, &m, &err);
		if (rc != -AMQP_FRAME_ERROR)
			fprintf(stderr, "\n  truncated at %zu: rc %d\n", cut, rc);
		CU_ASSERT_EQUAL(rc, -AMQP_FRAME_ERROR);
		CU_ASSERT_EQUAL(err.code, AMQP_FRAME_ERROR);
		CU_ASSERT_PTR_NOT_NULL(err.text);
		free(c);
	}

	/* Trailing bytes after the last argument. */
	pl[len] = 0;
	err.code = 0;
	CU_ASSERT_EQUAL(amqp_method_decode(pl, len + 1, &m, &err), -AMQP_FRAME_ERROR);
	CU_ASSERT_EQUAL(err.code, AMQP_FRAME_ERROR);
	static const uint8_t sel[5] = {0, 90, 0, 10, 0}; /* tx.select + 1 */
	CU_ASSERT_EQUAL(amqp_method_decode(sel, 5, &m, &err), -AMQP_FRAME_ERROR);
	static const uint8_t ack[] = {0, 60, 0, 80, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0xCE};
	CU_ASSERT_EQUAL(amqp_method_decode(ack, sizeof(ack) - 1, &m, &err), 0);
	CU_ASSERT_EQUAL(amqp_method_decode(ack, sizeof(ack), &m, &err), -AMQP_FRAME_ERROR);
}

static void test_decode_bad_table(void)
{
	uint8_t pl[256];
	struct amqp_method m;
	struct amqp_err err = {0, NULL};

	/* Unknown field type 'Z'. */
	static const uint8_t bad_type[] = {1, 'k', 'Z', 0, 0, 0, 0};
	size_t len = queue_declare_payload(pl, sizeof(pl), (struct amqp_bytes){bad_type, 7});
	CU_ASSERT_EQUAL(amqp_method_decode(pl, len, &m, &err), -AMQP_SYNTAX_ERROR);
	CU_ASSERT_EQUAL(err.code, AMQP_SYNTAX_ERROR);
	CU_ASSERT_PTR_NOT_NULL(err.text);

	/* The same in connection.start's server-properties. */
	memset(&m, 0, sizeof(m));
	m.id = AMQP_CONNECTION_START;
	m.u.connection_start.server_properties = (struct amqp_bytes){bad_type, 7};
	m.u.connection_start.mechanisms = amqp_cstr("PLAIN");
	struct amqp_wr w;
	amqp_wr_init(&w, pl, sizeof(pl));
	CU_ASSERT_FATAL(amqp_method_encode(&w, &m) && amqp_wr_ok(&w));
	err.code = 0;
	CU_ASSERT_EQUAL(amqp_method_decode(pl, w.len, &m, &err), -AMQP_SYNTAX_ERROR);
	CU_ASSERT_EQUAL(err.code, AMQP_SYNTAX_ERROR);

	/* A valid one-entry table decodes. */
	static const uint8_t good[] = {1, 'k', 'I', 0, 0, 0, 5};
	len = queue_declare_payload(pl, sizeof(pl), (struct amqp_bytes){good, 7});
	CU_ASSERT_EQUAL(amqp_method_decode(pl, len, &m, &err), 0);
}

void suite_frame(void)
{
	TEST_SUITE("frame", TEST(test_protocol_header_valid), TEST(test_protocol_header_bad),
	           TEST(test_client_role), TEST(test_stream_whole_buffer), TEST(test_stream_splits),
	           TEST(test_stream_body_dest), TEST(test_body_dest_release),
	           TEST(test_unknown_frame_type), TEST(test_bad_frame_end),
	           TEST(test_bad_heartbeat), TEST(test_frame_max_boundary),
	           TEST(test_huge_size_not_allocated), TEST(test_set_frame_max),
	           TEST(test_write_heartbeat), TEST(test_write_body), TEST(test_write_header_raw),
	           TEST(test_write_small_buffer), TEST(test_write_unencodable),
	           TEST(test_decode_unknown_method), TEST(test_decode_too_short),
	           TEST(test_decode_truncated_and_trailing), TEST(test_decode_bad_table));
}
