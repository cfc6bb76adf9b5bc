/*
 * segment.h - the on-disk format of the file storage backend: record
 * encoding, validation, the damage-tolerant segment scanner and segment
 * file names.  No I/O and no state: pure functions over byte buffers,
 * callable from any thread.
 *
 * A segment file is a plain concatenation of records, no file header.
 * Record = 24-byte header + payload, all integers little-endian:
 *
 *   0  u32 magic   SEG_MAGIC
 *   4  u8  type    REC_MSG / REC_ACK / REC_DELIVERED / REC_PURGE
 *   5  u8  flags   REC_F_DELIVERED (MSG only), other bits 0
 *   6  u16 zero
 *   8  u32 len     payload length (0 for every type but MSG)
 *  12  u32 crc     CRC-32C of header bytes 0..11, 16..23, then the payload
 *  16  u64 seq     message seq (PURGE: every seq <= this one)
 *
 * Names: "%016llx.seg" by segment id.  Ordinary segments have ids that are
 * multiples of 1 << SEG_ID_SHIFT; the output of a compaction of every
 * segment up to id k is named k + 1, so it sorts after what it replaces and
 * before the next ordinary segment.  "<name>.tmp" is a compaction output
 * that was never completed (deleted on open).
 */
#ifndef AMQPD_STORAGE_SEGMENT_H
#define AMQPD_STORAGE_SEGMENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SEG_MAGIC       0x7EA95CD1u
#define SEG_HDR_SIZE    24
#define SEG_ID_SHIFT    20
#define SEG_NAME_MAX    32
#define REC_F_DELIVERED 0x01

enum rec_type {
	REC_MSG = 1,
	REC_ACK = 2,
	REC_DELIVERED = 3,
	REC_PURGE = 4,
};

/* One decoded record; payload points into the scanned buffer. */
struct rec {
	uint8_t type;
	uint8_t flags;
	uint32_t len;
	uint64_t seq;
	uint64_t off; /* offset of the header in its segment */
	const uint8_t *payload;
};

/* Write a header for a record whose payload is p[0..len) into hdr. */
void seg_encode(uint8_t hdr[SEG_HDR_SIZE], uint8_t type, uint8_t flags, uint64_t seq,
                const uint8_t *p, uint32_t len);

/* True when a whole valid record (CRC checked) starts at p. */
bool seg_decode(const uint8_t *p, size_t avail, struct rec *out);

/*
 * Scan a whole segment image and call fn for every valid record in file
 * order.  Damage rules (one "dropped" count per damaged region):
 *  - fewer than SEG_HDR_SIZE bytes left, or a record running past the end
 *    (torn tail, also an all-zero tail): dropped, scan ends;
 *  - an invalid record elsewhere (bad CRC, bad magic, bad fields): dropped;
 *    if its header looks sane and a valid record follows it, the scan goes
 *    on there, otherwise it resynchronises on the next offset where a valid
 *    record (magic + sane fields + CRC) starts; nothing valid after it means
 *    the rest of the segment is dropped.
 * Returns the number of dropped regions; *valid_end is the end of the last
 * valid record (size when the segment does not end in damage).
 */
typedef void (*seg_rec_fn)(void *ctx, const struct rec *r);
uint64_t seg_scan(const uint8_t *base, size_t size, seg_rec_fn fn, void *ctx, size_t *valid_end);

void seg_name(char buf[SEG_NAME_MAX], uint64_t id, bool tmp);
/* Parse a directory entry name; false if it is not a segment file. */
bool seg_parse_name(const char *name, uint64_t *id, bool *tmp);

#endif
