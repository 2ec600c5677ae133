/* crc32c.h: CRC-32C (Castagnoli, polynomial 0x1EDC6F41, reflected 0x82F63B78).
 *
 * Used to frame segment records and checksum snapshots.  Uses the SSE4.2
 * crc32 instruction when the CPU has it (checked once, at first call), and a
 * portable slicing-by-8 table otherwise; both give identical results, which
 * tests/unit/common/base/test_crc32c.c checks against the RFC 3720 vectors.
 */
#ifndef CMQ_BASE_CRC32C_H
#define CMQ_BASE_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Extends `crc` (0 for a fresh checksum) over `len` bytes at `buf` (borrowed).
 * crc32c(crc32c(0, a, n), b, m) == crc32c(0, a||b, n+m). */
uint32_t crc32c(uint32_t crc, const void *buf, size_t len);

/* The portable implementation, exported so tests can compare both paths. */
uint32_t crc32c_sw(uint32_t crc, const void *buf, size_t len);

/* Nonzero when the hardware path is in use. */
int crc32c_hw_available(void);

#endif
