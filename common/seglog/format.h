/* format.h: the on-disk layouts of the segment log (docs/storage-format.md).
 *
 * Everything on disk is little-endian and written field by field through the
 * put/get helpers below, never by copying structs, so the layout does not
 * depend on the compiler.  The structs exist to document the layout and to
 * _Static_assert its sizes and offsets.  Internal to common/seglog.
 */
#ifndef CMQ_SEGLOG_FORMAT_H
#define CMQ_SEGLOG_FORMAT_H

#include <stddef.h>
#include <stdint.h>

#include "crc32c.h"

#define SEG_FORMAT_VERSION 1u

/* Segment file header, at byte 0 of every `.seg`. */
#define SEG_FILE_MAGIC 0x53514d43u /* "CMQS" */
struct seg_file_hdr {
    uint32_t magic;
    uint32_t crc;          /* CRC32C of bytes [8, 32) */
    uint32_t version;
    uint32_t reserved;     /* 0 */
    uint64_t first_index;  /* equals the number in the file name */
    uint64_t segment_bytes;/* preallocated size when created */
};
#define SEG_FILE_HDR_BYTES 32u
_Static_assert(sizeof(struct seg_file_hdr) == SEG_FILE_HDR_BYTES, "segment header size");
_Static_assert(offsetof(struct seg_file_hdr, first_index) == 16, "segment header layout");

/* Record header; the payload follows, then zero padding to a multiple of 8. */
#define SEG_REC_MAGIC 0x52514d43u /* "CMQR" */
struct seg_rec_hdr {
    uint32_t magic;
    uint32_t crc;      /* CRC32C of header bytes [8, 32) then the payload */
    uint8_t version;
    uint8_t type;
    uint16_t flags;    /* 0 */
    uint32_t len;      /* payload bytes */
    uint64_t term;
    uint64_t index;
};
#define SEG_REC_HDR_BYTES 32u
#define SEG_REC_ALIGN 8u
_Static_assert(sizeof(struct seg_rec_hdr) == SEG_REC_HDR_BYTES, "record header size");
_Static_assert(offsetof(struct seg_rec_hdr, len) == 12, "record header layout");
_Static_assert(offsetof(struct seg_rec_hdr, index) == 24, "record header layout");
_Static_assert(SEG_FILE_HDR_BYTES % SEG_REC_ALIGN == 0, "records start aligned");

/* Index sidecar header, at byte 0 of every `.idx`; entry i (for index
 * first_index + i) follows at 32 + 16*i. */
#define IDX_FILE_MAGIC 0x49514d43u /* "CMQI" */
struct idx_file_hdr {
    uint32_t magic;
    uint32_t crc;          /* CRC32C of bytes [8, 32) */
    uint32_t version;
    uint32_t entry_bytes;  /* 16 */
    uint64_t first_index;
    uint64_t reserved;     /* 0 */
};
#define IDX_FILE_HDR_BYTES 32u
_Static_assert(sizeof(struct idx_file_hdr) == IDX_FILE_HDR_BYTES, "index header size");

struct idx_entry {
    uint64_t term;
    uint32_t offset;   /* byte offset of the record in the segment */
    uint32_t crc;      /* CRC32C of (index as u64 LE) then bytes [0, 12) */
};
#define IDX_ENTRY_BYTES 16u
_Static_assert(sizeof(struct idx_entry) == IDX_ENTRY_BYTES, "index entry size");

/* Hard-state file `hardstate`. */
#define HS_FILE_MAGIC 0x53484d43u /* "CMHS" */
struct hs_file {
    uint32_t magic;
    uint32_t crc;       /* CRC32C of bytes [8, 40) */
    uint32_t version;
    uint32_t reserved;  /* 0 */
    uint64_t term;
    uint64_t vote;
    uint64_t commit;
};
#define HS_FILE_BYTES 40u
_Static_assert(sizeof(struct hs_file) == HS_FILE_BYTES, "hard-state file size");

static inline void put_le16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
static inline void put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static inline void put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static inline uint16_t get_le16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}
static inline uint32_t get_le32(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}
static inline uint64_t get_le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

/* On-disk size of a record with `len` payload bytes. */
static inline uint64_t seg_rec_bytes(uint32_t len)
{
    return ((uint64_t)SEG_REC_HDR_BYTES + len + SEG_REC_ALIGN - 1) & ~(uint64_t)(SEG_REC_ALIGN - 1);
}

/* Fills a record header (crc included). */
static inline void seg_rec_encode(uint8_t h[SEG_REC_HDR_BYTES], uint64_t term, uint64_t index,
                                  uint8_t type, const void *payload, uint32_t len)
{
    put_le32(h, SEG_REC_MAGIC);
    h[8] = (uint8_t)SEG_FORMAT_VERSION;
    h[9] = type;
    put_le16(h + 10, 0);
    put_le32(h + 12, len);
    put_le64(h + 16, term);
    put_le64(h + 24, index);
    uint32_t crc = crc32c(0, h + 8, SEG_REC_HDR_BYTES - 8);
    if (len)
        crc = crc32c(crc, payload, len);
    put_le32(h + 4, crc);
}

/* Fills a 32-byte file header (segment or index) with its crc. */
static inline void file_hdr_encode(uint8_t h[32], uint32_t magic, uint32_t word3,
                                   uint64_t first_index, uint64_t word6)
{
    put_le32(h, magic);
    put_le32(h + 8, SEG_FORMAT_VERSION);
    put_le32(h + 12, word3);
    put_le64(h + 16, first_index);
    put_le64(h + 24, word6);
    put_le32(h + 4, crc32c(0, h + 8, 24));
}

static inline void idx_entry_encode(uint8_t e[IDX_ENTRY_BYTES], uint64_t index, uint64_t term,
                                    uint32_t offset)
{
    uint8_t ix[8];
    put_le64(ix, index);
    put_le64(e, term);
    put_le32(e + 8, offset);
    put_le32(e + 12, crc32c(crc32c(0, ix, 8), e, 12));
}

/* Returns 1 when the entry's crc matches for `index`. */
static inline int idx_entry_valid(const uint8_t e[IDX_ENTRY_BYTES], uint64_t index)
{
    uint8_t ix[8];
    put_le64(ix, index);
    return get_le32(e + 12) == crc32c(crc32c(0, ix, 8), e, 12);
}

#endif
