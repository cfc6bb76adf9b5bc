/*
 * crc32c.h - CRC-32C (Castagnoli), the checksum of every storage record.
 *
 * crc32c_update(crc, p, n) continues a running CRC (start with 0); the
 * result of one call can be fed to the next to checksum discontiguous
 * pieces.  Uses the SSE4.2 crc32 instruction when the CPU has it, else a
 * slicing-by-8 table.  Pure functions: callable from any thread; the table
 * is built once, at load time.
 */
#ifndef AMQPD_STORAGE_CRC32C_H
#define AMQPD_STORAGE_CRC32C_H

#include <stddef.h>
#include <stdint.h>

uint32_t crc32c_update(uint32_t crc, const void *p, size_t n);

#endif
