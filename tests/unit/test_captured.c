/*
 * test_captured.c - byte-exact compatibility with real clients.
 *
 * captured_frames.h holds the raw bytes pika, rabbitmq-c and RabbitMQ
 * exchanged (recorded by tests/tools/capture_frames.py).  Every stream must
 * parse into whole frames, every frame must decode, every field table in it
 * must validate and iterate, and re-encoding what was decoded must give
 * back exactly the bytes captured.  Then the values the capture scenarios
 * set are looked up in the decoded frames.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "captured_frames.h"
#include "test_util.h"

#define NPOS               ((size_t)-1)
#define MAX_CHANNELS       8
#define RABBITMQ_FRAME_MAX 131072 /* RabbitMQ's default, and rabbitmq-c's */

/* Check a condition (evaluated once); leave the test function (through
 * `out`) if it fails. */
#define REQUIRE(cond)                                                                              \
	do {                                                                                       \
		bool ok_ = (cond);                                                                 \
		CU_assertImplementation(ok_, __LINE__, "REQUIRE(" #cond ")", __FILE__, "",         \
		                        CU_FALSE);                                                 \
		if (!ok_)                                                                          \
			goto out;                                                                  \
	} while (0)

#define ASSERT_STR(b, s) CU_ASSERT(amqp_bytes_eq_cstr((b), (s)))

/* One frame of a stream parsed in one go (the payload borrows from the
 * fixture), with what it decoded to. */
struct cframe {
	struct amqp_frame f;
	size_t offset; /* of the frame's type octet in the stream */
	int rc;        /* method or content header decode result */
	struct amqp_err err;
	struct amqp_method m;          /* method frames */
	struct amqp_content_header h;  /* content header frames */
	struct amqp_basic_props props; /* content header frames of class basic */
};

struct cstream {
	const struct cap_stream *s;
	uint32_t frame_max; /* negotiated: the connection's tune-ok */
	bool proto_header;
	bool complete; /* every byte went into the header or a whole frame */
	struct cframe *fr;
	size_t n;
};

static size_t stream_index(const char *name)
{
	for (size_t i = 0; i < CAP_STREAM_COUNT; i++)
		if (strcmp(cap_streams[i].name, name) == 0)
			return i;
	fprintf(stderr, "\ncaptured stream %s not in captured_frames.h\n", name);
	return NPOS;
}

static enum amqp_parser_role role_of(const struct cap_stream *s)
{
	return s->dir == CAP_CLIENT_TO_SERVER ? AMQP_PARSER_SERVER : AMQP_PARSER_CLIENT;
}

static bool is_tune(const struct cframe *c)
{
	return c->f.type == AMQP_FRAME_METHOD && c->rc == 0 &&
	       (c->m.id == AMQP_CONNECTION_TUNE || c->m.id == AMQP_CONNECTION_TUNE_OK);
}

/* The frame_max the client agreed to in the connection's tune-ok. */
static uint32_t negotiated_frame_max(unsigned conn)
{
	for (size_t i = 0; i < CAP_STREAM_COUNT; i++) {
		const struct cap_stream *s = &cap_streams[i];
		if (s->conn != conn || s->dir != CAP_CLIENT_TO_SERVER)
			continue;
		struct amqp_frame_parser p;
		size_t pos = 0, used;
		struct amqp_frame f;
		struct amqp_method m;
		uint32_t fm = 0;
		amqp_parser_init(&p, AMQP_PARSER_SERVER, 0);
		while (pos < s->len && fm == 0) {
			int rc = amqp_parser_feed(&p, s->data + pos, s->len - pos, &used, &f, NULL);
			pos += used;
			if (rc == AMQP_PARSE_FRAME && f.type == AMQP_FRAME_METHOD &&
			    amqp_method_decode(f.payload, f.size, &m, NULL) == 0 &&
			    m.id == AMQP_CONNECTION_TUNE_OK)
				fm = m.u.connection_tune_ok.frame_max;
			else if (rc != AMQP_PARSE_FRAME && rc != AMQP_PARSE_PROTOCOL_HEADER)
				break;
		}
		amqp_parser_free(&p);
		return fm;
	}
	return 0;
}

/*
 * Parse a whole stream in one call per frame, the way a connection that
 * read everything at once would: frame_max is the pre-tune minimum until
 * connection.tune (client role) / tune-ok (server role), the negotiated
 * value after.  Decodes methods and content headers.
 */
static bool load(struct cstream *cs, size_t idx)
{
	memset(cs, 0, sizeof(*cs));
	if (idx == NPOS)
		return false;
	cs->s = &cap_streams[idx];
	cs->frame_max = negotiated_frame_max(cs->s->conn);
	CU_ASSERT(cs->frame_max >= AMQP_FRAME_MIN_SIZE);

	const uint8_t *data = cs->s->data;
	size_t len = cs->s->len, pos = 0, cap = 0;
	bool pending = false;
	struct amqp_frame_parser p;
	amqp_parser_init(&p, role_of(cs->s), AMQP_FRAME_MIN_SIZE);
	while (pos < len) {
		size_t used = 0;
		struct amqp_frame f;
		struct amqp_err err = {0, NULL};
		int rc = amqp_parser_feed(&p, data + pos, len - pos, &used, &f, &err);
		if (rc == AMQP_PARSE_PROTOCOL_HEADER) {
			CU_ASSERT(pos == 0 && used == AMQP_PROTOCOL_HEADER_LEN);
			cs->proto_header = true;
			pos += used;
			continue;
		}
		if (rc != AMQP_PARSE_FRAME) {
			pending = rc == AMQP_PARSE_NEED_MORE;
			if (!pending)
				fprintf(stderr, "\n%s: parse error %d at byte %zu: %s\n",
				        cs->s->name, rc, pos, err.text ? err.text : "?");
			CU_ASSERT(rc == AMQP_PARSE_FRAME);
			break;
		}
		/* The whole frame was in the input: it must borrow, not copy. */
		CU_ASSERT(f.payload == data + pos + 7);
		CU_ASSERT(used == (size_t)f.size + AMQP_FRAME_OVERHEAD);
		if (cs->n == cap) {
			cap = cap ? 2 * cap : 64;
			struct cframe *nf = realloc(cs->fr, cap * sizeof(*nf));
			if (!nf)
				break;
			cs->fr = nf;
		}
		struct cframe *c = &cs->fr[cs->n++];
		memset(c, 0, sizeof(*c));
		c->f = f;
		c->offset = pos;
		if (f.type == AMQP_FRAME_METHOD) {
			c->rc = amqp_method_decode(f.payload, f.size, &c->m, &c->err);
		} else if (f.type == AMQP_FRAME_HEADER) {
			c->rc = amqp_content_header_decode(f.payload, f.size, &c->h, &c->err);
			if (c->rc == 0 && c->h.class_id == AMQP_CLASS_BASIC)
				c->rc = amqp_basic_props_decode(c->h.raw_props, &c->props, &c->err);
		}
		if (c->rc < 0)
			fprintf(stderr, "\n%s: frame %zu (type %u, %u bytes): decode failed: %s\n",
			        cs->s->name, cs->n - 1, f.type, f.size,
			        c->err.text ? c->err.text : "?");
		if (is_tune(c))
			amqp_parser_set_frame_max(&p, cs->frame_max);
		pos += used;
	}
	amqp_parser_free(&p);
	cs->complete = pos == len && !pending;
	return true;
}

static void unload(struct cstream *cs)
{
	free(cs->fr);
	memset(cs, 0, sizeof(*cs));
}

/* Bytes of frame i as captured. */
static const uint8_t *wire_of(const struct cstream *cs, size_t i, size_t *len)
{
	*len = (size_t)cs->fr[i].f.size + AMQP_FRAME_OVERHEAD;
	return cs->s->data + cs->fr[i].offset;
}

static const char *frame_name(const struct cframe *c)
{
	switch (c->f.type) {
	case AMQP_FRAME_METHOD:
		return amqp_method_name(c->m.id);
	case AMQP_FRAME_HEADER:
		return "content header";
	case AMQP_FRAME_BODY:
		return "body";
	default:
		return "heartbeat";
	}
}

/* Assert that an encoder produced exactly the captured bytes; say where
 * not. */
static void expect_same(const struct cstream *cs, size_t i, const char *how, const uint8_t *want,
                        size_t want_len, const uint8_t *got, size_t got_len)
{
	bool same = want_len == got_len && memcmp(want, got, want_len) == 0;
	CU_ASSERT(same);
	if (same)
		return;
	size_t k = 0;
	while (k < want_len && k < got_len && want[k] == got[k])
		k++;
	fprintf(stderr,
	        "\n%s frame %zu (%s, channel %u) %s: %zu bytes captured, %zu produced; "
	        "first difference at byte %zu:",
	        cs->s->name, i, frame_name(&cs->fr[i]), cs->fr[i].f.channel, how, want_len, got_len,
	        k);
	size_t from = k > 8 ? k - 8 : 0;
	fprintf(stderr, "\n  captured [%zu..]:", from);
	for (size_t j = from; j < want_len && j < k + 16; j++)
		fprintf(stderr, " %02x", want[j]);
	fprintf(stderr, "\n  produced [%zu..]:", from);
	for (size_t j = from; j < got_len && j < k + 16; j++)
		fprintf(stderr, " %02x", got[j]);
	fprintf(stderr, "\n");
}

/* ---- field tables ------------------------------------------------------ */

/* How many values of each type the captures contained. */
static unsigned long type_seen[256];

/* Frees everything a rebuilt table allocated. */
struct arena {
	void **p;
	size_t n, cap;
};

static void *arena_calloc(struct arena *a, size_t n, size_t size)
{
	if (a->n == a->cap) {
		size_t cap = a->cap ? 2 * a->cap : 32;
		void **np = realloc(a->p, cap * sizeof(*np));
		if (!np)
			return NULL;
		a->p = np;
		a->cap = cap;
	}
	void *x = calloc(n ? n : 1, size);
	if (x)
		a->p[a->n++] = x;
	return x;
}

static void arena_free(struct arena *a)
{
	for (size_t i = 0; i < a->n; i++)
		free(a->p[i]);
	free(a->p);
	memset(a, 0, sizeof(*a));
}

/*
 * Iterate validated raw table (keyed) or array contents to the end: every
 * value, re-encoded alone, gives back its own bytes; nested tables and
 * arrays validate and are walked too.  Returns the number of entries, or
 * -1 if iteration failed.
 */
static long walk(struct amqp_bytes raw, bool keyed, int depth)
{
	struct amqp_table_iter it;
	long n = 0;

	CU_ASSERT(depth <= AMQP_TABLE_MAX_DEPTH);
	amqp_table_iter_init(&it, raw);
	for (;;) {
		const uint8_t *start = it.r.p;
		struct amqp_bytes key = {NULL, 0};
		struct amqp_field_value v;
		int rc = keyed ? amqp_table_next(&it, &key, &v) : amqp_array_next(&it, &v);
		if (rc == 0)
			break;
		CU_ASSERT_EQUAL(rc, 1);
		if (rc != 1)
			return -1;
		n++;
		const uint8_t *vstart = start;
		if (keyed) {
			CU_ASSERT(key.ptr == start + 1 && key.len == start[0]);
			vstart = key.ptr + key.len;
		}
		size_t vlen = (size_t)(it.r.p - vstart);
		uint8_t *buf = malloc(vlen + 1);
		if (!buf)
			return -1;
		struct amqp_wr w;
		amqp_wr_init(&w, buf, vlen);
		amqp_field_value_encode(&w, &v);
		CU_ASSERT(amqp_wr_ok(&w) && w.len == vlen && memcmp(buf, vstart, vlen) == 0);
		free(buf);
		type_seen[v.type]++;
		if (v.type == AMQP_FIELD_TABLE) {
			CU_ASSERT_EQUAL(amqp_table_validate(v.v.table.raw, NULL), 0);
			CU_ASSERT(walk(v.v.table.raw, true, depth + 1) >= 0);
		} else if (v.type == AMQP_FIELD_ARRAY) {
			CU_ASSERT_EQUAL(amqp_array_validate(v.v.array.raw, NULL), 0);
			CU_ASSERT(walk(v.v.array.raw, false, depth + 1) >= 0);
		}
	}
	CU_ASSERT(it.r.p == raw.ptr + raw.len);
	return n;
}

static const struct amqp_table *rebuild_table(struct amqp_bytes raw, struct arena *a);
static const struct amqp_array *rebuild_array(struct amqp_bytes raw, struct arena *a);

/* Replace a nested table's or array's raw bytes by a built copy, so that
 * encoding goes through the built path. */
static void rebuild_nested(struct amqp_field_value *v, struct arena *a)
{
	static const struct amqp_bytes none = {NULL, 0};
	if (v->type == AMQP_FIELD_TABLE) {
		v->v.table.built = rebuild_table(v->v.table.raw, a);
		v->v.table.raw = none;
	} else if (v->type == AMQP_FIELD_ARRAY) {
		v->v.array.built = rebuild_array(v->v.array.raw, a);
		v->v.array.raw = none;
	}
}

static const struct amqp_table *rebuild_table(struct amqp_bytes raw, struct arena *a)
{
	struct amqp_table_iter it;
	struct amqp_bytes k;
	struct amqp_field_value v;
	size_t n = 0;

	amqp_table_iter_init(&it, raw);
	while (amqp_table_next(&it, &k, &v) > 0)
		n++;
	struct amqp_table *t = arena_calloc(a, 1, sizeof(*t));
	struct amqp_table_entry *e = arena_calloc(a, n, sizeof(*e));
	if (!t || !e)
		return NULL;
	amqp_table_iter_init(&it, raw);
	for (size_t i = 0; i < n && amqp_table_next(&it, &e[i].key, &e[i].value) > 0; i++)
		rebuild_nested(&e[i].value, a);
	t->entries = e;
	t->n = n;
	return t;
}

static const struct amqp_array *rebuild_array(struct amqp_bytes raw, struct arena *a)
{
	struct amqp_table_iter it;
	struct amqp_field_value v;
	size_t n = 0;

	amqp_table_iter_init(&it, raw);
	while (amqp_array_next(&it, &v) > 0)
		n++;
	struct amqp_array *arr = arena_calloc(a, 1, sizeof(*arr));
	struct amqp_field_value *items = arena_calloc(a, n, sizeof(*items));
	if (!arr || !items)
		return NULL;
	amqp_table_iter_init(&it, raw);
	for (size_t i = 0; i < n && amqp_array_next(&it, &items[i]) > 0; i++)
		rebuild_nested(&items[i], a);
	arr->items = items;
	arr->n = n;
	return arr;
}

/* A table from a captured frame: validates, iterates fully, and encodes
 * back to the same bytes both value by value and rebuilt as a struct
 * amqp_table (nested tables and arrays included). */
static void check_table(const struct cstream *cs, size_t i, const char *what, struct amqp_bytes raw)
{
	struct amqp_err err = {0, NULL};
	int rc = amqp_table_validate(raw, &err);
	CU_ASSERT_EQUAL(rc, 0);
	if (rc != 0) {
		fprintf(stderr, "\n%s frame %zu: %s does not validate: %s\n", cs->s->name, i, what,
		        err.text);
		return;
	}
	CU_ASSERT(walk(raw, true, 1) >= 0);

	struct arena a = {NULL, 0, 0};
	const struct amqp_table *t = rebuild_table(raw, &a);
	CU_ASSERT_PTR_NOT_NULL(t);
	uint8_t *want = malloc(raw.len + 4), *got = malloc(raw.len + 4);
	if (t && want && got) {
		want[0] = (uint8_t)(raw.len >> 24);
		want[1] = (uint8_t)(raw.len >> 16);
		want[2] = (uint8_t)(raw.len >> 8);
		want[3] = (uint8_t)raw.len;
		if (raw.len)
			memcpy(want + 4, raw.ptr, raw.len);
		struct amqp_wr w;
		amqp_wr_init(&w, got, raw.len + 4);
		amqp_table_encode(&w, t);
		CU_ASSERT(amqp_wr_ok(&w));
		expect_same(cs, i, what, want, raw.len + 4, got, amqp_wr_ok(&w) ? w.len : 0);
	}
	free(want);
	free(got);
	arena_free(&a);
}

/* ---- every frame round-trips ------------------------------------------- */

struct chan_state {
	bool want_header;
	uint64_t body_left;
};

/* Decode, validate and re-encode frame i; track content on its channel. */
static void check_frame(const struct cstream *cs, size_t i, struct chan_state *chans)
{
	const struct cframe *c = &cs->fr[i];
	size_t wlen;
	const uint8_t *wire = wire_of(cs, i, &wlen);
	uint8_t *buf = malloc(wlen + 64);
	struct chan_state *ch = NULL;
	size_t n;

	if (!buf)
		return;
	CU_ASSERT(c->f.channel < MAX_CHANNELS);
	if (c->f.channel < MAX_CHANNELS)
		ch = &chans[c->f.channel];

	switch (c->f.type) {
	case AMQP_FRAME_METHOD: {
		CU_ASSERT_EQUAL(c->rc, 0);
		if (c->rc != 0)
			break;
		const struct amqp_method_info *mi = amqp_method_info(c->m.id);
		CU_ASSERT_PTR_NOT_NULL(mi);
		if (!mi)
			break;
		n = amqp_frame_method(buf, wlen + 64, c->f.channel, &c->m);
		expect_same(cs, i, "amqp_frame_method", wire, wlen, buf, n);
		for (unsigned a = 0; a < mi->nargs; a++) {
			if (mi->args[a].kind != AMQP_ARG_TABLE)
				continue;
			const struct amqp_bytes *t =
			    (const void *)((const char *)&c->m + mi->args[a].offset);
			check_table(cs, i, mi->args[a].name, *t);
		}
		if (ch) {
			/* A content's frames are not interleaved with methods. */
			CU_ASSERT(!ch->want_header && ch->body_left == 0);
			ch->want_header = mi->content;
			ch->body_left = 0;
		}
		break;
	}
	case AMQP_FRAME_HEADER:
		CU_ASSERT_EQUAL(c->rc, 0);
		if (c->rc != 0)
			break;
		CU_ASSERT_EQUAL(c->h.class_id, AMQP_CLASS_BASIC);
		CU_ASSERT_EQUAL(c->h.weight, 0);
		n = amqp_frame_header(buf, wlen + 64, c->f.channel, c->h.class_id, c->h.body_size,
		                      &c->props);
		expect_same(cs, i, "amqp_frame_header", wire, wlen, buf, n);
		n = amqp_frame_header_raw(buf, wlen + 64, c->f.channel, c->h.class_id,
		                          c->h.body_size, c->h.raw_props);
		expect_same(cs, i, "amqp_frame_header_raw", wire, wlen, buf, n);
		if (c->props.flags & AMQP_PROP_HEADERS)
			check_table(cs, i, "headers property", c->props.headers);
		if (ch) {
			CU_ASSERT(ch->want_header);
			ch->want_header = false;
			ch->body_left = c->h.body_size;
		}
		break;
	case AMQP_FRAME_BODY: {
		struct amqp_bytes body = {c->f.payload, c->f.size};
		n = amqp_frame_body(buf, wlen + 64, c->f.channel, body);
		expect_same(cs, i, "amqp_frame_body", wire, wlen, buf, n);
		if (ch) {
			CU_ASSERT(!ch->want_header);
			CU_ASSERT(c->f.size > 0 && c->f.size <= ch->body_left);
			if (c->f.size <= ch->body_left) {
				ch->body_left -= c->f.size;
				/* Both clients and RabbitMQ fill every body frame
				 * but the last one. */
				if (ch->body_left > 0)
					CU_ASSERT_EQUAL(c->f.size + AMQP_FRAME_OVERHEAD,
					                cs->frame_max);
			}
		}
		break;
	}
	case AMQP_FRAME_HEARTBEAT:
		n = amqp_frame_heartbeat(buf, wlen + 64);
		expect_same(cs, i, "amqp_frame_heartbeat", wire, wlen, buf, n);
		break;
	default:
		CU_FAIL("unexpected frame type");
	}
	free(buf);
}

static void test_every_frame_roundtrips(void)
{
	size_t total = 0;

	memset(type_seen, 0, sizeof(type_seen));
	for (size_t s = 0; s < CAP_STREAM_COUNT; s++) {
		struct cstream cs;
		struct chan_state chans[MAX_CHANNELS];

		memset(chans, 0, sizeof(chans));
		load(&cs, s);
		CU_ASSERT(cs.complete);
		CU_ASSERT(cs.proto_header == (cs.s->dir == CAP_CLIENT_TO_SERVER));
		CU_ASSERT(cs.n >= 5);
		for (size_t i = 0; i < cs.n; i++)
			check_frame(&cs, i, chans);
		for (size_t k = 0; k < MAX_CHANNELS; k++)
			CU_ASSERT(!chans[k].want_header && chans[k].body_left == 0);
		/* Every stream is a whole, cleanly closed connection. */
		if (cs.n > 0) {
			const struct cframe *first = &cs.fr[0], *last = &cs.fr[cs.n - 1];
			CU_ASSERT_EQUAL(first->m.id, cs.s->dir == CAP_CLIENT_TO_SERVER
			                                 ? AMQP_CONNECTION_START_OK
			                                 : AMQP_CONNECTION_START);
			CU_ASSERT_EQUAL(last->m.id, cs.s->dir == CAP_CLIENT_TO_SERVER
			                                ? AMQP_CONNECTION_CLOSE
			                                : AMQP_CONNECTION_CLOSE_OK);
		}
		total += cs.n;
		unload(&cs);
	}
	CU_ASSERT(total > 200);
	/* The field value types the clients sent (pika 1.2.0 cannot encode
	 * b/B/s/u/i/L/f/d; RabbitMQ only sends S, t, F, l and I). */
	const char *types = "tIlSDTxVFA";
	for (const char *t = types; *t; t++) {
		CU_ASSERT(type_seen[(uint8_t)*t] > 0);
		if (!type_seen[(uint8_t)*t])
			fprintf(stderr, "\nno field value of type '%c' in the captures\n", *t);
	}
}

/* ---- any split of the input gives the same frames ---------------------- */

/* Feed the stream in chunks of chunk(k) bytes; the frames must be those
 * parsed from the whole stream, in order, with the same payload bytes. */
static void feed_chunked(const struct cstream *cs, size_t (*chunk)(size_t k))
{
	const uint8_t *data = cs->s->data;
	size_t len = cs->s->len, pos = 0, nf = 0, k = 0;
	bool header = false, failed = false;
	struct amqp_frame_parser p;

	amqp_parser_init(&p, role_of(cs->s), AMQP_FRAME_MIN_SIZE);
	while (pos < len && !failed) {
		size_t n = chunk(k++);
		if (n > len - pos)
			n = len - pos;
		const uint8_t *in = data + pos;
		size_t left = n;
		while (left > 0) {
			size_t used = 0;
			struct amqp_frame f;
			int rc = amqp_parser_feed(&p, in, left, &used, &f, NULL);
			CU_ASSERT(used <= left);
			if (rc == AMQP_PARSE_PROTOCOL_HEADER) {
				CU_ASSERT(!header && nf == 0);
				header = true;
			} else if (rc == AMQP_PARSE_FRAME) {
				CU_ASSERT(nf < cs->n);
				if (nf >= cs->n) {
					failed = true;
					break;
				}
				const struct cframe *c = &cs->fr[nf++];
				CU_ASSERT(f.type == c->f.type && f.channel == c->f.channel &&
				          f.size == c->f.size);
				CU_ASSERT(f.size == c->f.size &&
				          memcmp(f.payload, data + c->offset + 7, f.size) == 0);
				if (is_tune(c))
					amqp_parser_set_frame_max(&p, cs->frame_max);
			} else {
				CU_ASSERT_EQUAL(rc, AMQP_PARSE_NEED_MORE);
				CU_ASSERT_EQUAL(used, left);
				if (rc != AMQP_PARSE_NEED_MORE || used != left)
					failed = true;
				break;
			}
			in += used;
			left -= used;
		}
		pos += n;
	}
	amqp_parser_free(&p);
	CU_ASSERT(!failed);
	CU_ASSERT_EQUAL(nf, cs->n);
	CU_ASSERT(header == cs->proto_header);
}

static size_t one_byte(size_t k)
{
	(void)k;
	return 1;
}

static size_t irregular(size_t k)
{
	static const size_t sizes[] = {3, 1, 7, 8, 500, 2, 4096, 13, 1, 65536, 6, 131080};
	return sizes[k % (sizeof(sizes) / sizeof(sizes[0]))];
}

static void test_split_feeds(void)
{
	for (size_t s = 0; s < CAP_STREAM_COUNT; s++) {
		struct cstream cs;
		load(&cs, s);
		feed_chunked(&cs, one_byte);
		feed_chunked(&cs, irregular);
		unload(&cs);
	}
}

/* ---- what the scenarios set --------------------------------------------- */

/* Index of the first method frame with this id at or after `from`. */
static size_t find_method(const struct cstream *cs, uint32_t id, size_t from)
{
	for (size_t i = from; i < cs->n; i++)
		if (cs->fr[i].f.type == AMQP_FRAME_METHOD && cs->fr[i].rc == 0 &&
		    cs->fr[i].m.id == id)
			return i;
	return NPOS;
}

static size_t count_methods(const struct cstream *cs, uint32_t id)
{
	size_t n = 0;
	for (size_t i = find_method(cs, id, 0); i != NPOS; i = find_method(cs, id, i + 1))
		n++;
	return n;
}

/* The content following method frame mi: its header frame index, and its
 * body gathered from the body frames (malloc'd; free it). */
struct content {
	size_t header;
	uint8_t *body;
	size_t len;
	unsigned frames;
};

static bool content_of(const struct cstream *cs, size_t mi, struct content *ct)
{
	uint16_t ch = cs->fr[mi].f.channel;
	size_t i = mi + 1;

	memset(ct, 0, sizeof(*ct));
	ct->header = NPOS;
	while (i < cs->n && cs->fr[i].f.channel != ch)
		i++;
	if (i >= cs->n || cs->fr[i].f.type != AMQP_FRAME_HEADER || cs->fr[i].rc != 0)
		return false;
	ct->header = i;
	uint64_t size = cs->fr[i].h.body_size;
	ct->body = malloc(size + 1);
	if (!ct->body)
		return false;
	for (i++; i < cs->n && ct->len < size; i++) {
		const struct cframe *c = &cs->fr[i];
		if (c->f.channel != ch)
			continue;
		if (c->f.type != AMQP_FRAME_BODY || c->f.size > size - ct->len)
			return false;
		memcpy(ct->body + ct->len, c->f.payload, c->f.size);
		ct->len += c->f.size;
		ct->frames++;
	}
	return ct->len == size;
}

static const struct amqp_basic_props *props_of(const struct cstream *cs, const struct content *ct)
{
	return &cs->fr[ct->header].props;
}

static struct amqp_bytes raw_props_of(const struct cstream *cs, const struct content *ct)
{
	return cs->fr[ct->header].h.raw_props;
}

static bool body_is(const struct content *ct, const char *s)
{
	return ct->len == strlen(s) && memcmp(ct->body, s, ct->len) == 0;
}

/* capture_frames.py's big pika body: byte i is (i * 31 + 7) & 0xff. */
static bool is_pika_body(const struct content *ct)
{
	if (ct->len != CAP_PIKA_BODY_SIZE)
		return false;
	for (size_t i = 0; i < ct->len; i++)
		if (ct->body[i] != (uint8_t)((i * 31 + 7) & 0xFF))
			return false;
	return true;
}

/* capture_frames.py's rmqc_body2(): 'a' + i % 26. */
static bool is_rmqc_body2(const struct content *ct)
{
	if (ct->len != CAP_RMQC_BODY2_SIZE)
		return false;
	for (size_t i = 0; i < ct->len; i++)
		if (ct->body[i] != (uint8_t)('a' + i % 26))
			return false;
	return true;
}

/* Look key up in raw table contents; assert it is there with this type. */
static bool tget(struct amqp_bytes raw, const char *key, uint8_t type, struct amqp_field_value *v)
{
	bool found = amqp_table_get(raw, key, v);
	CU_ASSERT(found);
	if (!found) {
		fprintf(stderr, "\ntable key %s missing\n", key);
		return false;
	}
	CU_ASSERT_EQUAL(v->type, type);
	if (v->type != type)
		fprintf(stderr, "\ntable key %s: type '%c', expected '%c'\n", key, v->type, type);
	return v->type == type;
}

/* Item n of raw array contents; assert it is there with this type. */
static bool aget(struct amqp_bytes raw, size_t n, uint8_t type, struct amqp_field_value *v)
{
	struct amqp_table_iter it;
	amqp_table_iter_init(&it, raw);
	for (size_t i = 0; i <= n; i++) {
		if (amqp_array_next(&it, v) != 1) {
			CU_FAIL("array item missing");
			return false;
		}
	}
	CU_ASSERT_EQUAL(v->type, type);
	return v->type == type;
}

static size_t table_len(struct amqp_bytes raw, bool keyed)
{
	struct amqp_table_iter it;
	struct amqp_bytes k;
	struct amqp_field_value v;
	size_t n = 0;
	amqp_table_iter_init(&it, raw);
	while ((keyed ? amqp_table_next(&it, &k, &v) : amqp_array_next(&it, &v)) > 0)
		n++;
	return n;
}

static void expect_table_str(struct amqp_bytes raw, const char *key, const char *want)
{
	struct amqp_field_value v;
	if (tget(raw, key, AMQP_FIELD_LONGSTR, &v))
		ASSERT_STR(v.v.str, want);
}

static void expect_table_bool(struct amqp_bytes raw, const char *key, bool want)
{
	struct amqp_field_value v;
	if (tget(raw, key, AMQP_FIELD_BOOL, &v))
		CU_ASSERT_EQUAL(v.v.b, want);
}

static void expect_table_i32(struct amqp_bytes raw, const char *key, int32_t want)
{
	struct amqp_field_value v;
	if (tget(raw, key, AMQP_FIELD_I32, &v))
		CU_ASSERT_EQUAL(v.v.i32, want);
}

/* connection.start-ok and tune-ok as every client sends them. */
static void check_client_handshake(const struct cstream *cs, const char *product, uint32_t fmax)
{
	size_t i = find_method(cs, AMQP_CONNECTION_START_OK, 0);
	CU_ASSERT(cs->proto_header);
	CU_ASSERT_EQUAL(i, 0);
	if (i != NPOS) {
		const struct amqp_connection_start_ok *so = &cs->fr[i].m.u.connection_start_ok;
		struct amqp_field_value v;
		ASSERT_STR(so->mechanism, "PLAIN");
		CU_ASSERT(so->response.len == 12 &&
		          memcmp(so->response.ptr, "\0guest\0guest", 12) == 0);
		ASSERT_STR(so->locale, "en_US");
		if (tget(so->client_properties, "product", AMQP_FIELD_LONGSTR, &v))
			CU_ASSERT(v.v.str.len >= strlen(product) &&
			          memcmp(v.v.str.ptr, product, strlen(product)) == 0);
		if (tget(so->client_properties, "capabilities", AMQP_FIELD_TABLE, &v)) {
			expect_table_bool(v.v.table.raw, "authentication_failure_close", true);
		}
	}
	i = find_method(cs, AMQP_CONNECTION_TUNE_OK, 0);
	CU_ASSERT_EQUAL(i, 1);
	if (i != NPOS) {
		CU_ASSERT_EQUAL(cs->fr[i].m.u.connection_tune_ok.frame_max, fmax);
		CU_ASSERT_EQUAL(cs->fr[i].m.u.connection_tune_ok.channel_max, 2047);
	}
	i = find_method(cs, AMQP_CONNECTION_OPEN, 0);
	CU_ASSERT_EQUAL(i, 2);
	if (i != NPOS)
		ASSERT_STR(cs->fr[i].m.u.connection_open.virtual_host, "/");
}

/* connection.start and tune as RabbitMQ sends them. */
static void check_server_handshake(const struct cstream *cs)
{
	size_t i = find_method(cs, AMQP_CONNECTION_START, 0);
	CU_ASSERT_EQUAL(i, 0);
	if (i != NPOS) {
		const struct amqp_connection_start *st = &cs->fr[i].m.u.connection_start;
		struct amqp_field_value v;
		CU_ASSERT_EQUAL(st->version_major, 0);
		CU_ASSERT_EQUAL(st->version_minor, 9);
		CU_ASSERT(memmem(st->mechanisms.ptr, st->mechanisms.len, "PLAIN", 5) != NULL);
		ASSERT_STR(st->locales, "en_US");
		expect_table_str(st->server_properties, "product", "RabbitMQ");
		expect_table_str(st->server_properties, "platform", "Erlang/OTP 25.2.3");
		if (tget(st->server_properties, "capabilities", AMQP_FIELD_TABLE, &v)) {
			struct amqp_bytes caps = v.v.table.raw;
			expect_table_bool(caps, "publisher_confirms", true);
			expect_table_bool(caps, "exchange_exchange_bindings", true);
			expect_table_bool(caps, "basic.nack", true);
			expect_table_bool(caps, "consumer_cancel_notify", true);
			expect_table_bool(caps, "per_consumer_qos", true);
			expect_table_bool(caps, "direct_reply_to", true);
		}
	}
	i = find_method(cs, AMQP_CONNECTION_TUNE, 0);
	CU_ASSERT_EQUAL(i, 1);
	if (i != NPOS) {
		CU_ASSERT_EQUAL(cs->fr[i].m.u.connection_tune.channel_max, 2047);
		CU_ASSERT_EQUAL(cs->fr[i].m.u.connection_tune.frame_max, RABBITMQ_FRAME_MAX);
		CU_ASSERT_EQUAL(cs->fr[i].m.u.connection_tune.heartbeat, 60);
	}
	CU_ASSERT(find_method(cs, AMQP_CONNECTION_OPEN_OK, 0) == 2);
}

/* The x-arguments of the pika queue.declare (capture_frames.py
 * pika_queue_args()). */
static void check_pika_queue_args(struct amqp_bytes args)
{
	struct amqp_field_value v, w, x;

	CU_ASSERT_EQUAL(table_len(args, true), 12);
	expect_table_i32(args, "x-message-ttl", 3600000);
	if (tget(args, "x-max-length-bytes", AMQP_FIELD_I64, &v))
		CU_ASSERT(v.v.i64 == 10000000000LL);
	expect_table_i32(args, "x-max-priority", 10);
	expect_table_str(args, "x-queue-mode", "lazy");
	expect_table_bool(args, "x-amqpd-bool", true);
	expect_table_i32(args, "x-amqpd-neg", -42);
	if (tget(args, "x-amqpd-decimal", AMQP_FIELD_DECIMAL, &v))
		CU_ASSERT(v.v.dec.scale == 2 && v.v.dec.value == 314);
	if (tget(args, "x-amqpd-ts", AMQP_FIELD_TIMESTAMP, &v))
		CU_ASSERT(v.v.u64 == 1704164645u); /* 2024-01-02T03:04:05Z */
	if (tget(args, "x-amqpd-bytes", AMQP_FIELD_BYTES, &v))
		CU_ASSERT(v.v.str.len == 5 && memcmp(v.v.str.ptr, "\0\xffraw", 5) == 0);
	tget(args, "x-amqpd-void", AMQP_FIELD_VOID, &v);
	if (tget(args, "x-amqpd-table", AMQP_FIELD_TABLE, &v)) {
		struct amqp_bytes t = v.v.table.raw;
		CU_ASSERT_EQUAL(table_len(t, true), 3);
		expect_table_str(t, "k", "v");
		expect_table_i32(t, "n", 1);
		if (tget(t, "deep", AMQP_FIELD_TABLE, &w) &&
		    tget(w.v.table.raw, "list", AMQP_FIELD_ARRAY, &x)) {
			CU_ASSERT_EQUAL(table_len(x.v.array.raw, false), 2);
			if (aget(x.v.array.raw, 0, AMQP_FIELD_I32, &w))
				CU_ASSERT_EQUAL(w.v.i32, 1);
			if (aget(x.v.array.raw, 1, AMQP_FIELD_LONGSTR, &w))
				ASSERT_STR(w.v.str, "a");
		}
	}
	/* [1, 'two', True, Decimal('-1.5'), {'in': 'list'}, []] */
	if (tget(args, "x-amqpd-list", AMQP_FIELD_ARRAY, &v)) {
		struct amqp_bytes a = v.v.array.raw;
		CU_ASSERT_EQUAL(table_len(a, false), 6);
		if (aget(a, 0, AMQP_FIELD_I32, &w))
			CU_ASSERT_EQUAL(w.v.i32, 1);
		if (aget(a, 1, AMQP_FIELD_LONGSTR, &w))
			ASSERT_STR(w.v.str, "two");
		if (aget(a, 2, AMQP_FIELD_BOOL, &w))
			CU_ASSERT(w.v.b);
		if (aget(a, 3, AMQP_FIELD_DECIMAL, &w))
			CU_ASSERT(w.v.dec.scale == 1 && (int32_t)w.v.dec.value == -15);
		if (aget(a, 4, AMQP_FIELD_TABLE, &w))
			expect_table_str(w.v.table.raw, "in", "list");
		if (aget(a, 5, AMQP_FIELD_ARRAY, &w))
			CU_ASSERT_EQUAL(w.v.array.raw.len, 0);
	}
}

/* The headers property of the big pika message (pika_headers()). */
static void check_pika_headers(struct amqp_bytes h)
{
	struct amqp_field_value v, w, x;

	CU_ASSERT_EQUAL(table_len(h, true), 11);
	expect_table_str(h, "str", "value");
	expect_table_i32(h, "int", 42);
	if (tget(h, "long", AMQP_FIELD_I64, &v))
		CU_ASSERT(v.v.i64 == (int64_t)1 << 40);
	expect_table_i32(h, "neg", -7);
	expect_table_bool(h, "bool", false);
	if (tget(h, "decimal", AMQP_FIELD_DECIMAL, &v))
		CU_ASSERT(v.v.dec.scale == 1 && v.v.dec.value == 125);
	if (tget(h, "ts", AMQP_FIELD_TIMESTAMP, &v))
		CU_ASSERT(v.v.u64 == 1700000000u);
	if (tget(h, "bytes", AMQP_FIELD_BYTES, &v))
		CU_ASSERT(v.v.str.len == 3 && memcmp(v.v.str.ptr, "\1\2\3", 3) == 0);
	tget(h, "void", AMQP_FIELD_VOID, &v);
	/* {'a': 1, 'b': ['x', 2, {'c': True}], 'empty': {}} */
	if (tget(h, "nested", AMQP_FIELD_TABLE, &v)) {
		struct amqp_bytes t = v.v.table.raw;
		CU_ASSERT_EQUAL(table_len(t, true), 3);
		expect_table_i32(t, "a", 1);
		if (tget(t, "b", AMQP_FIELD_ARRAY, &w)) {
			if (aget(w.v.array.raw, 0, AMQP_FIELD_LONGSTR, &x))
				ASSERT_STR(x.v.str, "x");
			if (aget(w.v.array.raw, 1, AMQP_FIELD_I32, &x))
				CU_ASSERT_EQUAL(x.v.i32, 2);
			if (aget(w.v.array.raw, 2, AMQP_FIELD_TABLE, &x))
				expect_table_bool(x.v.table.raw, "c", true);
		}
		if (tget(t, "empty", AMQP_FIELD_TABLE, &w))
			CU_ASSERT_EQUAL(w.v.table.raw.len, 0);
	}
	/* [1, 'two', [3, [4]]] */
	if (tget(h, "list", AMQP_FIELD_ARRAY, &v)) {
		struct amqp_bytes a = v.v.array.raw;
		CU_ASSERT_EQUAL(table_len(a, false), 3);
		if (aget(a, 0, AMQP_FIELD_I32, &w))
			CU_ASSERT_EQUAL(w.v.i32, 1);
		if (aget(a, 1, AMQP_FIELD_LONGSTR, &w))
			ASSERT_STR(w.v.str, "two");
		if (aget(a, 2, AMQP_FIELD_ARRAY, &w)) {
			if (aget(w.v.array.raw, 0, AMQP_FIELD_I32, &x))
				CU_ASSERT_EQUAL(x.v.i32, 3);
			if (aget(w.v.array.raw, 1, AMQP_FIELD_ARRAY, &x) &&
			    aget(x.v.array.raw, 0, AMQP_FIELD_I32, &w))
				CU_ASSERT_EQUAL(w.v.i32, 4);
		}
	}
}

/* All 14 basic properties of the big pika message. */
static void check_pika_props(const struct amqp_basic_props *p)
{
	CU_ASSERT_EQUAL(p->flags, AMQP_PROP_ALL);
	ASSERT_STR(p->content_type, CAP_PIKA_PROP_CONTENT_TYPE);
	ASSERT_STR(p->content_encoding, CAP_PIKA_PROP_CONTENT_ENCODING);
	check_pika_headers(p->headers);
	CU_ASSERT_EQUAL(p->delivery_mode, CAP_PIKA_PROP_DELIVERY_MODE);
	CU_ASSERT_EQUAL(p->priority, CAP_PIKA_PROP_PRIORITY);
	ASSERT_STR(p->correlation_id, CAP_PIKA_PROP_CORRELATION_ID);
	ASSERT_STR(p->reply_to, CAP_PIKA_PROP_REPLY_TO);
	ASSERT_STR(p->expiration, CAP_PIKA_PROP_EXPIRATION);
	ASSERT_STR(p->message_id, CAP_PIKA_PROP_MESSAGE_ID);
	CU_ASSERT_EQUAL(p->timestamp, CAP_PIKA_PROP_TIMESTAMP);
	ASSERT_STR(p->type, CAP_PIKA_PROP_TYPE);
	ASSERT_STR(p->user_id, CAP_PIKA_PROP_USER_ID);
	ASSERT_STR(p->app_id, CAP_PIKA_PROP_APP_ID);
	ASSERT_STR(p->cluster_id, CAP_PIKA_PROP_CLUSTER_ID);
}

static void test_pika_client(void)
{
	struct cstream cs;
	struct content ct = {NPOS, NULL, 0, 0};
	size_t i;

	REQUIRE(load(&cs, stream_index("pika.full.c2s")));
	REQUIRE(cs.complete);
	check_client_handshake(&cs, "Pika Python Client Library", CAP_PIKA_FRAME_MAX);
	i = find_method(&cs, AMQP_CONNECTION_START_OK, 0);
	REQUIRE(i != NPOS);
	{
		struct amqp_bytes cp = cs.fr[i].m.u.connection_start_ok.client_properties;
		struct amqp_field_value v;
		CU_ASSERT_EQUAL(table_len(cp, true), 5);
		if (tget(cp, "capabilities", AMQP_FIELD_TABLE, &v)) {
			CU_ASSERT_EQUAL(table_len(v.v.table.raw, true), 5);
			expect_table_bool(v.v.table.raw, "basic.nack", true);
			expect_table_bool(v.v.table.raw, "connection.blocked", true);
			expect_table_bool(v.v.table.raw, "consumer_cancel_notify", true);
			expect_table_bool(v.v.table.raw, "publisher_confirms", true);
		}
	}

	/* exchange.declare topic, durable, with arguments */
	i = find_method(&cs, AMQP_EXCHANGE_DECLARE, 0);
	REQUIRE(i != NPOS);
	{
		const struct amqp_exchange_declare *d = &cs.fr[i].m.u.exchange_declare;
		CU_ASSERT_EQUAL(cs.fr[i].f.channel, 1);
		ASSERT_STR(d->exchange, CAP_PIKA_EXCHANGE);
		ASSERT_STR(d->type, "topic");
		CU_ASSERT(d->durable && !d->passive && !d->auto_delete && !d->internal &&
		          !d->nowait);
		CU_ASSERT_EQUAL(table_len(d->arguments, true), 2);
		expect_table_str(d->arguments, "alternate-exchange", "amqpd.cap.ae");
		expect_table_i32(d->arguments, "x-amqpd-int", 7);
	}
	i = find_method(&cs, AMQP_EXCHANGE_DECLARE, i + 1);
	REQUIRE(i != NPOS);
	ASSERT_STR(cs.fr[i].m.u.exchange_declare.type, "fanout");
	CU_ASSERT(cs.fr[i].m.u.exchange_declare.auto_delete);
	CU_ASSERT_EQUAL(cs.fr[i].m.u.exchange_declare.arguments.len, 0);
	i = find_method(&cs, AMQP_EXCHANGE_BIND, 0);
	REQUIRE(i != NPOS);
	ASSERT_STR(cs.fr[i].m.u.exchange_bind.destination, CAP_PIKA_EXCHANGE2);
	ASSERT_STR(cs.fr[i].m.u.exchange_bind.source, CAP_PIKA_EXCHANGE);
	ASSERT_STR(cs.fr[i].m.u.exchange_bind.routing_key, CAP_PIKA_BIND_KEY);
	CU_ASSERT(find_method(&cs, AMQP_EXCHANGE_UNBIND, 0) != NPOS);

	/* queue.declare with an x-arguments table of many value types */
	i = find_method(&cs, AMQP_QUEUE_DECLARE, 0);
	REQUIRE(i != NPOS);
	ASSERT_STR(cs.fr[i].m.u.queue_declare.queue, CAP_PIKA_QUEUE);
	CU_ASSERT(cs.fr[i].m.u.queue_declare.durable && !cs.fr[i].m.u.queue_declare.exclusive &&
	          !cs.fr[i].m.u.queue_declare.auto_delete);
	check_pika_queue_args(cs.fr[i].m.u.queue_declare.arguments);

	i = find_method(&cs, AMQP_QUEUE_BIND, 0);
	REQUIRE(i != NPOS);
	ASSERT_STR(cs.fr[i].m.u.queue_bind.queue, CAP_PIKA_QUEUE);
	ASSERT_STR(cs.fr[i].m.u.queue_bind.exchange, CAP_PIKA_EXCHANGE);
	ASSERT_STR(cs.fr[i].m.u.queue_bind.routing_key, CAP_PIKA_BIND_KEY);
	i = find_method(&cs, AMQP_CONFIRM_SELECT, 0);
	REQUIRE(i != NPOS);
	CU_ASSERT(!cs.fr[i].m.u.confirm_select.nowait);

	/* The big publish: every property, a body over three frames. */
	i = find_method(&cs, AMQP_BASIC_PUBLISH, 0);
	REQUIRE(i != NPOS);
	ASSERT_STR(cs.fr[i].m.u.basic_publish.exchange, CAP_PIKA_EXCHANGE);
	ASSERT_STR(cs.fr[i].m.u.basic_publish.routing_key, CAP_PIKA_ROUTING_KEY);
	CU_ASSERT(cs.fr[i].m.u.basic_publish.mandatory && !cs.fr[i].m.u.basic_publish.immediate);
	CU_ASSERT(content_of(&cs, i, &ct));
	REQUIRE(ct.header != NPOS);
	CU_ASSERT_EQUAL(cs.fr[ct.header].h.body_size, CAP_PIKA_BODY_SIZE);
	CU_ASSERT_EQUAL(ct.len, cs.fr[ct.header].h.body_size);
	CU_ASSERT_EQUAL(ct.frames, 3);
	CU_ASSERT(is_pika_body(&ct));
	check_pika_props(props_of(&cs, &ct));
	free(ct.body);
	ct.body = NULL;

	/* qos, consume, acknowledgements */
	i = find_method(&cs, AMQP_BASIC_QOS, 0);
	REQUIRE(i != NPOS);
	CU_ASSERT_EQUAL(cs.fr[i].m.u.basic_qos.prefetch_count, CAP_PIKA_PREFETCH);
	CU_ASSERT_EQUAL(cs.fr[i].m.u.basic_qos.prefetch_size, 0);
	CU_ASSERT(!cs.fr[i].m.u.basic_qos.global);
	i = find_method(&cs, AMQP_BASIC_CONSUME, 0);
	REQUIRE(i != NPOS);
	{
		const struct amqp_basic_consume *c = &cs.fr[i].m.u.basic_consume;
		ASSERT_STR(c->queue, CAP_PIKA_QUEUE);
		ASSERT_STR(c->consumer_tag, CAP_PIKA_CONSUMER_TAG);
		CU_ASSERT(!c->no_ack && !c->exclusive && !c->no_local && !c->nowait);
		expect_table_i32(c->arguments, "x-priority", 3);
	}
	/* ack 1 (big); nack 2 requeue; reject 3; ack 4 (the redelivery);
	 * nack 6 multiple without requeue; ack 7 (basic.get) */
	CU_ASSERT_EQUAL(count_methods(&cs, AMQP_BASIC_ACK), 3);
	i = find_method(&cs, AMQP_BASIC_ACK, 0);
	REQUIRE(i != NPOS);
	CU_ASSERT(cs.fr[i].m.u.basic_ack.delivery_tag == 1 && !cs.fr[i].m.u.basic_ack.multiple);
	CU_ASSERT_EQUAL(count_methods(&cs, AMQP_BASIC_NACK), 2);
	i = find_method(&cs, AMQP_BASIC_NACK, 0);
	REQUIRE(i != NPOS);
	CU_ASSERT(cs.fr[i].m.u.basic_nack.delivery_tag == 2 && !cs.fr[i].m.u.basic_nack.multiple &&
	          cs.fr[i].m.u.basic_nack.requeue);
	i = find_method(&cs, AMQP_BASIC_NACK, i + 1);
	REQUIRE(i != NPOS);
	CU_ASSERT(cs.fr[i].m.u.basic_nack.delivery_tag == 6 && cs.fr[i].m.u.basic_nack.multiple &&
	          !cs.fr[i].m.u.basic_nack.requeue);
	i = find_method(&cs, AMQP_BASIC_REJECT, 0);
	REQUIRE(i != NPOS);
	CU_ASSERT(cs.fr[i].m.u.basic_reject.delivery_tag == 3 &&
	          !cs.fr[i].m.u.basic_reject.requeue);
	i = find_method(&cs, AMQP_BASIC_RECOVER, 0);
	REQUIRE(i != NPOS);
	CU_ASSERT(cs.fr[i].m.u.basic_recover.requeue);
	i = find_method(&cs, AMQP_BASIC_CANCEL, 0);
	REQUIRE(i != NPOS);
	ASSERT_STR(cs.fr[i].m.u.basic_cancel.consumer_tag, CAP_PIKA_CONSUMER_TAG);

	/* basic.get twice: with and without no-ack */
	CU_ASSERT_EQUAL(count_methods(&cs, AMQP_BASIC_GET), 2);
	i = find_method(&cs, AMQP_BASIC_GET, 0);
	REQUIRE(i != NPOS);
	ASSERT_STR(cs.fr[i].m.u.basic_get.queue, CAP_PIKA_QUEUE);
	CU_ASSERT(!cs.fr[i].m.u.basic_get.no_ack);
	i = find_method(&cs, AMQP_BASIC_GET, i + 1);
	REQUIRE(i != NPOS);
	CU_ASSERT(cs.fr[i].m.u.basic_get.no_ack);

	/* the mandatory publish nobody can route */
	i = find_method(&cs, AMQP_BASIC_PUBLISH, 0);
	for (size_t k = 0; k < 6 && i != NPOS; k++)
		i = find_method(&cs, AMQP_BASIC_PUBLISH, i + 1);
	REQUIRE(i != NPOS);
	ASSERT_STR(cs.fr[i].m.u.basic_publish.exchange, "");
	ASSERT_STR(cs.fr[i].m.u.basic_publish.routing_key, CAP_PIKA_UNROUTABLE);
	CU_ASSERT(cs.fr[i].m.u.basic_publish.mandatory);

	/* tx on a second channel */
	i = find_method(&cs, AMQP_TX_SELECT, 0);
	REQUIRE(i != NPOS);
	CU_ASSERT_EQUAL(cs.fr[i].f.channel, 2);
	i = find_method(&cs, AMQP_TX_COMMIT, i);
	REQUIRE(i != NPOS);
	CU_ASSERT_EQUAL(cs.fr[i].f.channel, 2);
	i = find_method(&cs, AMQP_TX_ROLLBACK, i);
	REQUIRE(i != NPOS);
	CU_ASSERT_EQUAL(cs.fr[i].f.channel, 2);
	CU_ASSERT_EQUAL(count_methods(&cs, AMQP_CHANNEL_OPEN), 2);
	CU_ASSERT_EQUAL(count_methods(&cs, AMQP_CHANNEL_CLOSE), 2);

	/* teardown */
	i = find_method(&cs, AMQP_QUEUE_PURGE, 0);
	REQUIRE(i != NPOS);
	ASSERT_STR(cs.fr[i].m.u.queue_purge.queue, CAP_PIKA_QUEUE);
	i = find_method(&cs, AMQP_QUEUE_UNBIND, 0);
	REQUIRE(i != NPOS);
	ASSERT_STR(cs.fr[i].m.u.queue_unbind.routing_key, CAP_PIKA_BIND_KEY);
	i = find_method(&cs, AMQP_QUEUE_DELETE, 0);
	REQUIRE(i != NPOS);
	ASSERT_STR(cs.fr[i].m.u.queue_delete.queue, CAP_PIKA_QUEUE);
	CU_ASSERT(!cs.fr[i].m.u.queue_delete.if_unused && !cs.fr[i].m.u.queue_delete.if_empty);
	i = find_method(&cs, AMQP_EXCHANGE_DELETE, 0);
	REQUIRE(i != NPOS);
	ASSERT_STR(cs.fr[i].m.u.exchange_delete.exchange, CAP_PIKA_EXCHANGE2);
	i = find_method(&cs, AMQP_EXCHANGE_DELETE, i + 1);
	REQUIRE(i != NPOS);
	ASSERT_STR(cs.fr[i].m.u.exchange_delete.exchange, CAP_PIKA_EXCHANGE);
	i = find_method(&cs, AMQP_CONNECTION_CLOSE, 0);
	REQUIRE(i == cs.n - 1);
	CU_ASSERT_EQUAL(cs.fr[i].m.u.connection_close.reply_code, AMQP_REPLY_SUCCESS);
out:
	free(ct.body);
	unload(&cs);
}

static void test_pika_server(void)
{
	struct cstream cs, cl;
	struct content ct = {NPOS, NULL, 0, 0}, pub = {NPOS, NULL, 0, 0};
	size_t i, redelivered = 0;

	memset(&cl, 0, sizeof(cl));
	REQUIRE(load(&cs, stream_index("pika.full.s2c")));
	REQUIRE(load(&cl, stream_index("pika.full.c2s")));
	REQUIRE(cs.complete);
	check_server_handshake(&cs);

	i = find_method(&cs, AMQP_QUEUE_DECLARE_OK, 0);
	REQUIRE(i != NPOS);
	ASSERT_STR(cs.fr[i].m.u.queue_declare_ok.queue, CAP_PIKA_QUEUE);
	CU_ASSERT_EQUAL(cs.fr[i].m.u.queue_declare_ok.message_count, 0);
	CU_ASSERT_EQUAL(cs.fr[i].m.u.queue_declare_ok.consumer_count, 0);
	i = find_method(&cs, AMQP_BASIC_CONSUME_OK, 0);
	REQUIRE(i != NPOS);
	ASSERT_STR(cs.fr[i].m.u.basic_consume_ok.consumer_tag, CAP_PIKA_CONSUMER_TAG);

	/* Publisher confirms: one basic.ack per publish on channel 1, in order. */
	i = find_method(&cs, AMQP_BASIC_ACK, 0);
	for (uint64_t tag = 1; tag <= 7; tag++) {
		REQUIRE(i != NPOS);
		CU_ASSERT_EQUAL(cs.fr[i].f.channel, 1);
		CU_ASSERT_EQUAL(cs.fr[i].m.u.basic_ack.delivery_tag, tag);
		CU_ASSERT(!cs.fr[i].m.u.basic_ack.multiple);
		i = find_method(&cs, AMQP_BASIC_ACK, i + 1);
	}
	CU_ASSERT(i == NPOS);

	/* The big message comes back with the publisher's property bytes,
	 * untouched, and its body split at the negotiated frame_max. */
	i = find_method(&cs, AMQP_BASIC_DELIVER, 0);
	REQUIRE(i != NPOS);
	{
		const struct amqp_basic_deliver *d = &cs.fr[i].m.u.basic_deliver;
		ASSERT_STR(d->consumer_tag, CAP_PIKA_CONSUMER_TAG);
		CU_ASSERT(d->delivery_tag == 1 && !d->redelivered);
		ASSERT_STR(d->exchange, CAP_PIKA_EXCHANGE);
		ASSERT_STR(d->routing_key, CAP_PIKA_ROUTING_KEY);
	}
	CU_ASSERT(content_of(&cs, i, &ct));
	REQUIRE(ct.header != NPOS);
	CU_ASSERT_EQUAL(ct.frames, 3);
	CU_ASSERT(is_pika_body(&ct));
	check_pika_props(props_of(&cs, &ct));
	i = find_method(&cl, AMQP_BASIC_PUBLISH, 0);
	REQUIRE(i != NPOS);
	CU_ASSERT(content_of(&cl, i, &pub));
	REQUIRE(pub.header != NPOS);
	CU_ASSERT(amqp_bytes_eq(raw_props_of(&cs, &ct), raw_props_of(&cl, &pub)));
	free(ct.body);
	ct.body = NULL;

	/* big, nack-requeue, reject, nack-requeue again, nack-multi-1/-2 */
	CU_ASSERT_EQUAL(count_methods(&cs, AMQP_BASIC_DELIVER), 6);
	for (i = find_method(&cs, AMQP_BASIC_DELIVER, 0); i != NPOS;
	     i = find_method(&cs, AMQP_BASIC_DELIVER, i + 1)) {
		if (!cs.fr[i].m.u.basic_deliver.redelivered)
			continue;
		redelivered++;
		CU_ASSERT_EQUAL(cs.fr[i].m.u.basic_deliver.delivery_tag, 4);
		CU_ASSERT(content_of(&cs, i, &ct) && body_is(&ct, "nack-requeue"));
		if (ct.header != NPOS) {
			ASSERT_STR(props_of(&cs, &ct)->content_type, "text/plain");
			CU_ASSERT_EQUAL(props_of(&cs, &ct)->flags, AMQP_PROP_CONTENT_TYPE);
		}
		free(ct.body);
		ct.body = NULL;
	}
	CU_ASSERT_EQUAL(redelivered, 1);
	CU_ASSERT(find_method(&cs, AMQP_BASIC_RECOVER_OK, 0) != NPOS);
	i = find_method(&cs, AMQP_BASIC_CANCEL_OK, 0);
	REQUIRE(i != NPOS);
	ASSERT_STR(cs.fr[i].m.u.basic_cancel_ok.consumer_tag, CAP_PIKA_CONSUMER_TAG);

	i = find_method(&cs, AMQP_BASIC_GET_OK, 0);
	REQUIRE(i != NPOS);
	CU_ASSERT(!cs.fr[i].m.u.basic_get_ok.redelivered);
	CU_ASSERT_EQUAL(cs.fr[i].m.u.basic_get_ok.message_count, 0);
	ASSERT_STR(cs.fr[i].m.u.basic_get_ok.routing_key, "cap.get");
	CU_ASSERT(content_of(&cs, i, &ct) && body_is(&ct, "get-me"));
	free(ct.body);
	ct.body = NULL;
	i = find_method(&cs, AMQP_BASIC_GET_EMPTY, 0);
	REQUIRE(i != NPOS);
	ASSERT_STR(cs.fr[i].m.u.basic_get_empty.cluster_id, "");

	i = find_method(&cs, AMQP_BASIC_RETURN, 0);
	REQUIRE(i != NPOS);
	{
		const struct amqp_basic_return *r = &cs.fr[i].m.u.basic_return;
		CU_ASSERT_EQUAL(r->reply_code, AMQP_NO_ROUTE);
		ASSERT_STR(r->reply_text, "NO_ROUTE");
		ASSERT_STR(r->exchange, "");
		ASSERT_STR(r->routing_key, CAP_PIKA_UNROUTABLE);
	}
	CU_ASSERT(content_of(&cs, i, &ct) && body_is(&ct, "returned"));

	i = find_method(&cs, AMQP_TX_SELECT_OK, 0);
	REQUIRE(i != NPOS);
	CU_ASSERT_EQUAL(cs.fr[i].f.channel, 2);
	CU_ASSERT(find_method(&cs, AMQP_TX_COMMIT_OK, i) != NPOS);
	CU_ASSERT(find_method(&cs, AMQP_TX_ROLLBACK_OK, i) != NPOS);

	/* Only the committed tx message was left to purge. */
	i = find_method(&cs, AMQP_QUEUE_PURGE_OK, 0);
	REQUIRE(i != NPOS);
	CU_ASSERT_EQUAL(cs.fr[i].m.u.queue_purge_ok.message_count, 1);
	i = find_method(&cs, AMQP_QUEUE_DELETE_OK, 0);
	REQUIRE(i != NPOS);
	CU_ASSERT_EQUAL(cs.fr[i].m.u.queue_delete_ok.message_count, 0);
	CU_ASSERT_EQUAL(count_methods(&cs, AMQP_EXCHANGE_DELETE_OK), 2);
	CU_ASSERT_EQUAL(count_methods(&cs, AMQP_CHANNEL_CLOSE_OK), 2);
	CU_ASSERT(find_method(&cs, AMQP_CONNECTION_CLOSE_OK, 0) == cs.n - 1);
out:
	free(ct.body);
	free(pub.body);
	unload(&cl);
	unload(&cs);
}

static void test_rabbitmq_c(void)
{
	static const char *const scenarios[] = {"declare_queue", "publish_props", "publish_stdin",
	                                        "get",           "consume",       "delete_queue"};
	struct cstream c2s[6], s2c[6];
	struct content ct = {NPOS, NULL, 0, 0}, pub = {NPOS, NULL, 0, 0};
	struct amqp_field_value v;
	char name[64];
	size_t i;

	memset(c2s, 0, sizeof(c2s));
	memset(s2c, 0, sizeof(s2c));
	for (size_t k = 0; k < 6; k++) {
		snprintf(name, sizeof(name), "rabbitmq-c.%s.c2s", scenarios[k]);
		REQUIRE(load(&c2s[k], stream_index(name)));
		snprintf(name, sizeof(name), "rabbitmq-c.%s.s2c", scenarios[k]);
		REQUIRE(load(&s2c[k], stream_index(name)));
		REQUIRE(c2s[k].complete && s2c[k].complete);
		check_client_handshake(&c2s[k], "rabbitmq-c", RABBITMQ_FRAME_MAX);
		check_server_handshake(&s2c[k]);
		CU_ASSERT(find_method(&c2s[k], AMQP_CHANNEL_OPEN, 0) == 3);
	}

	/* amqp-declare-queue -d */
	i = find_method(&c2s[0], AMQP_QUEUE_DECLARE, 0);
	REQUIRE(i != NPOS);
	ASSERT_STR(c2s[0].fr[i].m.u.queue_declare.queue, CAP_RMQC_QUEUE);
	CU_ASSERT(c2s[0].fr[i].m.u.queue_declare.durable);
	CU_ASSERT_EQUAL(c2s[0].fr[i].m.u.queue_declare.arguments.len, 0);
	i = find_method(&s2c[0], AMQP_QUEUE_DECLARE_OK, 0);
	REQUIRE(i != NPOS);
	ASSERT_STR(s2c[0].fr[i].m.u.queue_declare_ok.queue, CAP_RMQC_QUEUE);

	/* amqp-publish -p -C -E -t -H -H -b */
	i = find_method(&c2s[1], AMQP_BASIC_PUBLISH, 0);
	REQUIRE(i != NPOS);
	ASSERT_STR(c2s[1].fr[i].m.u.basic_publish.exchange, "");
	ASSERT_STR(c2s[1].fr[i].m.u.basic_publish.routing_key, CAP_RMQC_QUEUE);
	CU_ASSERT(content_of(&c2s[1], i, &pub));
	REQUIRE(pub.header != NPOS);
	CU_ASSERT(body_is(&pub, CAP_RMQC_BODY1));
	{
		const struct amqp_basic_props *p = props_of(&c2s[1], &pub);
		CU_ASSERT_EQUAL(p->flags, AMQP_PROP_CONTENT_TYPE | AMQP_PROP_CONTENT_ENCODING |
		                              AMQP_PROP_HEADERS | AMQP_PROP_DELIVERY_MODE |
		                              AMQP_PROP_REPLY_TO);
		ASSERT_STR(p->content_type, "application/json");
		ASSERT_STR(p->content_encoding, "utf-8");
		CU_ASSERT_EQUAL(p->delivery_mode, 2);
		ASSERT_STR(p->reply_to, "amqpd.cap.reply");
		CU_ASSERT_EQUAL(table_len(p->headers, true), 2);
		expect_table_str(p->headers, "x-trace", "abc-123");
		expect_table_str(p->headers, "x-count", "3");
	}

	/* amqp-publish < 6000 bytes */
	i = find_method(&c2s[2], AMQP_BASIC_PUBLISH, 0);
	REQUIRE(i != NPOS);
	CU_ASSERT(content_of(&c2s[2], i, &ct));
	REQUIRE(ct.header != NPOS);
	CU_ASSERT(is_rmqc_body2(&ct));
	/* amqp-publish always sends a delivery mode: 1 without -p */
	CU_ASSERT_EQUAL(props_of(&c2s[2], &ct)->flags,
	                AMQP_PROP_CONTENT_TYPE | AMQP_PROP_DELIVERY_MODE);
	ASSERT_STR(props_of(&c2s[2], &ct)->content_type, "text/plain");
	CU_ASSERT_EQUAL(props_of(&c2s[2], &ct)->delivery_mode, 1);
	free(ct.body);
	ct.body = NULL;

	/* amqp-get: the first message, properties as published */
	i = find_method(&c2s[3], AMQP_BASIC_GET, 0);
	REQUIRE(i != NPOS);
	ASSERT_STR(c2s[3].fr[i].m.u.basic_get.queue, CAP_RMQC_QUEUE);
	CU_ASSERT(c2s[3].fr[i].m.u.basic_get.no_ack);
	i = find_method(&s2c[3], AMQP_BASIC_GET_OK, 0);
	REQUIRE(i != NPOS);
	CU_ASSERT_EQUAL(s2c[3].fr[i].m.u.basic_get_ok.delivery_tag, 1);
	CU_ASSERT_EQUAL(s2c[3].fr[i].m.u.basic_get_ok.message_count, 1);
	ASSERT_STR(s2c[3].fr[i].m.u.basic_get_ok.routing_key, CAP_RMQC_QUEUE);
	CU_ASSERT(content_of(&s2c[3], i, &ct));
	REQUIRE(ct.header != NPOS);
	CU_ASSERT(body_is(&ct, CAP_RMQC_BODY1));
	CU_ASSERT(amqp_bytes_eq(raw_props_of(&s2c[3], &ct), raw_props_of(&c2s[1], &pub)));
	free(ct.body);
	ct.body = NULL;

	/* amqp-consume -c 1 -p 1: qos, consume, deliver, ack */
	i = find_method(&c2s[4], AMQP_BASIC_QOS, 0);
	REQUIRE(i != NPOS);
	CU_ASSERT_EQUAL(c2s[4].fr[i].m.u.basic_qos.prefetch_count, 1);
	i = find_method(&c2s[4], AMQP_BASIC_CONSUME, 0);
	REQUIRE(i != NPOS);
	ASSERT_STR(c2s[4].fr[i].m.u.basic_consume.queue, CAP_RMQC_QUEUE);
	CU_ASSERT(!c2s[4].fr[i].m.u.basic_consume.no_ack);
	i = find_method(&c2s[4], AMQP_BASIC_ACK, 0);
	REQUIRE(i != NPOS);
	CU_ASSERT_EQUAL(c2s[4].fr[i].m.u.basic_ack.delivery_tag, 1);
	i = find_method(&s2c[4], AMQP_BASIC_CONSUME_OK, 0);
	REQUIRE(i != NPOS);
	/* the server named the consumer: amq.ctag-... */
	CU_ASSERT(s2c[4].fr[i].m.u.basic_consume_ok.consumer_tag.len > 9 &&
	          memcmp(s2c[4].fr[i].m.u.basic_consume_ok.consumer_tag.ptr, "amq.ctag-", 9) == 0);
	i = find_method(&s2c[4], AMQP_BASIC_DELIVER, 0);
	REQUIRE(i != NPOS);
	CU_ASSERT_EQUAL(s2c[4].fr[i].m.u.basic_deliver.delivery_tag, 1);
	CU_ASSERT(content_of(&s2c[4], i, &ct));
	REQUIRE(ct.header != NPOS);
	CU_ASSERT(is_rmqc_body2(&ct));
	ASSERT_STR(props_of(&s2c[4], &ct)->content_type, "text/plain");
	free(ct.body);
	ct.body = NULL;

	/* amqp-delete-queue: nothing left in it */
	i = find_method(&c2s[5], AMQP_QUEUE_DELETE, 0);
	REQUIRE(i != NPOS);
	ASSERT_STR(c2s[5].fr[i].m.u.queue_delete.queue, CAP_RMQC_QUEUE);
	i = find_method(&s2c[5], AMQP_QUEUE_DELETE_OK, 0);
	REQUIRE(i != NPOS);
	CU_ASSERT_EQUAL(s2c[5].fr[i].m.u.queue_delete_ok.message_count, 0);

	/* rabbitmq-c 0.11's client properties */
	i = find_method(&c2s[0], AMQP_CONNECTION_START_OK, 0);
	REQUIRE(i != NPOS);
	{
		struct amqp_bytes cp = c2s[0].fr[i].m.u.connection_start_ok.client_properties;
		CU_ASSERT_EQUAL(table_len(cp, true), 6);
		expect_table_str(cp, "product", "rabbitmq-c");
		expect_table_str(cp, "platform", "Linux");
		if (tget(cp, "capabilities", AMQP_FIELD_TABLE, &v)) {
			CU_ASSERT_EQUAL(table_len(v.v.table.raw, true), 2);
			expect_table_bool(v.v.table.raw, "exchange_exchange_bindings", true);
		}
	}
out:
	free(ct.body);
	free(pub.body);
	for (size_t k = 0; k < 6; k++) {
		unload(&c2s[k]);
		unload(&s2c[k]);
	}
}

void suite_captured(void)
{
	TEST_SUITE("captured", TEST(test_every_frame_roundtrips), TEST(test_split_feeds),
	           TEST(test_pika_client), TEST(test_pika_server), TEST(test_rabbitmq_c));
}
