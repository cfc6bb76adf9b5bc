/*
 * segment.c - record encode/decode and the damage-tolerant scanner for the
 * file storage backend (format described in segment.h).  Stateless; safe
 * from any thread.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "crc32c.h"
#include "segment.h"

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get64(const uint8_t *p)
{
	return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

static uint32_t rec_crc(const uint8_t *hdr, const uint8_t *p, size_t len)
{
	uint32_t c = crc32c_update(0, hdr, 12);
	c = crc32c_update(c, hdr + 16, 8);
	return crc32c_update(c, p, len);
}

void seg_encode(uint8_t hdr[SEG_HDR_SIZE], uint8_t type, uint8_t flags, uint64_t seq,
                const uint8_t *p, uint32_t len)
{
	put32(hdr, SEG_MAGIC);
	hdr[4] = type;
	hdr[5] = flags;
	hdr[6] = hdr[7] = 0;
	put32(hdr + 8, len);
	put64(hdr + 16, seq);
	put32(hdr + 12, rec_crc(hdr, p, len));
}

/* Header fields alone are plausible and the record fits in avail. */
static bool hdr_sane(const uint8_t *p, size_t avail, uint32_t *len)
{
	if (avail < SEG_HDR_SIZE || get32(p) != SEG_MAGIC || p[6] || p[7])
		return false;
	uint8_t type = p[4], flags = p[5];
	uint32_t n = get32(p + 8);
	if (type < REC_MSG || type > REC_PURGE)
		return false;
	if (type == REC_MSG ? (flags & ~REC_F_DELIVERED) != 0 : (flags != 0 || n != 0))
		return false;
	if (n > avail - SEG_HDR_SIZE)
		return false;
	*len = n;
	return true;
}

bool seg_decode(const uint8_t *p, size_t avail, struct rec *out)
{
	uint32_t len;
	if (!hdr_sane(p, avail, &len))
		return false;
	if (rec_crc(p, p + SEG_HDR_SIZE, len) != get32(p + 12))
		return false;
	out->type = p[4];
	out->flags = p[5];
	out->len = len;
	out->seq = get64(p + 16);
	out->payload = p + SEG_HDR_SIZE;
	return true;
}

/* First offset >= from where a valid record starts, or size. */
static size_t resync(const uint8_t *base, size_t size, size_t from)
{
	static const uint8_t magic[4] = {SEG_MAGIC & 0xff, (SEG_MAGIC >> 8) & 0xff,
	                                 (SEG_MAGIC >> 16) & 0xff, SEG_MAGIC >> 24};
	struct rec r;
	while (from + SEG_HDR_SIZE <= size) {
		const uint8_t *m = memmem(base + from, size - from, magic, sizeof(magic));
		if (!m)
			break;
		size_t at = (size_t)(m - base);
		if (seg_decode(m, size - at, &r))
			return at;
		from = at + 1;
	}
	return size;
}

uint64_t seg_scan(const uint8_t *base, size_t size, seg_rec_fn fn, void *ctx, size_t *valid_end)
{
	uint64_t dropped = 0;
	size_t pos = 0;
	struct rec r;

	*valid_end = 0;
	while (pos < size) {
		if (seg_decode(base + pos, size - pos, &r)) {
			r.off = pos;
			fn(ctx, &r);
			pos += SEG_HDR_SIZE + r.len;
			*valid_end = pos;
			continue;
		}
		dropped++;
		/* A damaged payload under a sane header: the next record is
		 * right behind it - cheaper and safer than a byte scan. */
		uint32_t len;
		if (hdr_sane(base + pos, size - pos, &len)) {
			size_t next = pos + SEG_HDR_SIZE + len;
			if (next < size && seg_decode(base + next, size - next, &r)) {
				pos = next;
				continue;
			}
		}
		pos = resync(base, size, pos + 1);
	}
	return dropped;
}

void seg_name(char buf[SEG_NAME_MAX], uint64_t id, bool tmp)
{
	snprintf(buf, SEG_NAME_MAX, "%016" PRIx64 ".seg%s", id, tmp ? ".tmp" : "");
}

bool seg_parse_name(const char *name, uint64_t *id, bool *tmp)
{
	uint64_t v = 0;
	for (int i = 0; i < 16; i++) {
		char c = name[i];
		int d;
		if (c >= '0' && c <= '9')
			d = c - '0';
		else if (c >= 'a' && c <= 'f')
			d = c - 'a' + 10;
		else
			return false;
		v = v << 4 | (uint64_t)d;
	}
	if (strcmp(name + 16, ".seg") == 0)
		*tmp = false;
	else if (strcmp(name + 16, ".seg.tmp") == 0)
		*tmp = true;
	else
		return false;
	*id = v;
	return true;
}
