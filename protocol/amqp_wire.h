/*
 * amqp_wire.h - byte slices and bounds-checked big-endian readers/writers.
 *
 * Ownership: a struct amqp_bytes never owns memory; it borrows from whatever
 * buffer it was decoded from (or whatever the caller points it at).  All
 * helpers here are pure, allocation-free and thread-safe.
 */
#ifndef AMQP_WIRE_H
#define AMQP_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* A borrowed byte slice (shortstr, longstr, raw table contents, body). */
struct amqp_bytes {
	const uint8_t *ptr;
	size_t len;
};

static inline struct amqp_bytes amqp_cstr(const char *s)
{
	struct amqp_bytes b = {(const uint8_t *)s, s ? strlen(s) : 0};
	return b;
}

static inline bool amqp_bytes_eq(struct amqp_bytes a, struct amqp_bytes b)
{
	return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

static inline bool amqp_bytes_eq_cstr(struct amqp_bytes a, const char *s)
{
	return amqp_bytes_eq(a, amqp_cstr(s));
}

/* Read cursor over a borrowed buffer.  Every read checks what remains. */
struct amqp_rd {
	const uint8_t *p;
	const uint8_t *end;
};

static inline size_t amqp_rd_left(const struct amqp_rd *r)
{
	return (size_t)(r->end - r->p);
}

static inline bool amqp_rd_u8(struct amqp_rd *r, uint8_t *v)
{
	if (r->p >= r->end)
		return false;
	*v = *r->p++;
	return true;
}

static inline bool amqp_rd_u16(struct amqp_rd *r, uint16_t *v)
{
	if (amqp_rd_left(r) < 2)
		return false;
	*v = (uint16_t)((r->p[0] << 8) | r->p[1]);
	r->p += 2;
	return true;
}

static inline bool amqp_rd_u32(struct amqp_rd *r, uint32_t *v)
{
	if (amqp_rd_left(r) < 4)
		return false;
	*v = ((uint32_t)r->p[0] << 24) | ((uint32_t)r->p[1] << 16) | ((uint32_t)r->p[2] << 8) |
	     (uint32_t)r->p[3];
	r->p += 4;
	return true;
}

static inline bool amqp_rd_u64(struct amqp_rd *r, uint64_t *v)
{
	if (amqp_rd_left(r) < 8)
		return false;
	uint64_t x = 0;
	for (int i = 0; i < 8; i++)
		x = (x << 8) | r->p[i];
	*v = x;
	r->p += 8;
	return true;
}

/* Borrow n bytes; n has already been bounded by the caller's length field. */
static inline bool amqp_rd_bytes(struct amqp_rd *r, size_t n, struct amqp_bytes *out)
{
	if (amqp_rd_left(r) < n)
		return false;
	out->ptr = r->p;
	out->len = n;
	r->p += n;
	return true;
}

static inline bool amqp_rd_shortstr(struct amqp_rd *r, struct amqp_bytes *out)
{
	uint8_t n;
	return amqp_rd_u8(r, &n) && amqp_rd_bytes(r, n, out);
}

static inline bool amqp_rd_longstr(struct amqp_rd *r, struct amqp_bytes *out)
{
	uint32_t n;
	return amqp_rd_u32(r, &n) && amqp_rd_bytes(r, n, out);
}

/*
 * Write cursor over a caller-supplied buffer.  Writes past the end are not
 * performed but are counted, so after encoding `need` tells the caller how
 * large a buffer it must supply; `amqp_wr_ok` tells whether everything fit.
 */
struct amqp_wr {
	uint8_t *p;
	size_t cap;
	size_t len;
	bool bad; /* a value could not be encoded (e.g. shortstr > 255) */
};

static inline void amqp_wr_init(struct amqp_wr *w, void *buf, size_t cap)
{
	w->p = (uint8_t *)buf;
	w->cap = cap;
	w->len = 0;
	w->bad = false;
}

/* True when everything was encodable and fit in the buffer. */
static inline bool amqp_wr_ok(const struct amqp_wr *w)
{
	return !w->bad && w->len <= w->cap;
}

static inline void amqp_wr_raw(struct amqp_wr *w, const void *src, size_t n)
{
	if (n && w->len + n <= w->cap && w->len <= w->cap)
		memcpy(w->p + w->len, src, n);
	w->len += n;
}

static inline void amqp_wr_u8(struct amqp_wr *w, uint8_t v)
{
	if (w->len < w->cap)
		w->p[w->len] = v;
	w->len++;
}

static inline void amqp_wr_u16(struct amqp_wr *w, uint16_t v)
{
	uint8_t b[2] = {(uint8_t)(v >> 8), (uint8_t)v};
	amqp_wr_raw(w, b, 2);
}

static inline void amqp_wr_u32(struct amqp_wr *w, uint32_t v)
{
	uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
	amqp_wr_raw(w, b, 4);
}

static inline void amqp_wr_u64(struct amqp_wr *w, uint64_t v)
{
	amqp_wr_u32(w, (uint32_t)(v >> 32));
	amqp_wr_u32(w, (uint32_t)v);
}

/* Patch a u32 written earlier at offset `at` (e.g. a length prefix). */
static inline void amqp_wr_patch_u32(struct amqp_wr *w, size_t at, uint32_t v)
{
	if (at + 4 <= w->cap && at + 4 <= w->len) {
		w->p[at] = (uint8_t)(v >> 24);
		w->p[at + 1] = (uint8_t)(v >> 16);
		w->p[at + 2] = (uint8_t)(v >> 8);
		w->p[at + 3] = (uint8_t)v;
	}
}

/* A shortstr longer than 255 bytes cannot be encoded: it marks the writer
 * bad instead of silently truncating. */
static inline void amqp_wr_shortstr(struct amqp_wr *w, struct amqp_bytes b)
{
	if (b.len > 255) {
		w->bad = true;
		return;
	}
	amqp_wr_u8(w, (uint8_t)b.len);
	amqp_wr_raw(w, b.ptr, b.len);
}

static inline void amqp_wr_longstr(struct amqp_wr *w, struct amqp_bytes b)
{
	if (b.len > UINT32_MAX) {
		w->bad = true;
		return;
	}
	amqp_wr_u32(w, (uint32_t)b.len);
	amqp_wr_raw(w, b.ptr, b.len);
}

#endif
