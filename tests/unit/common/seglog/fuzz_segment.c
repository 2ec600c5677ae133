/* fuzz_segment.c: libFuzzer target for the segment reader (recovery and
 * reads).  The input becomes the files of a log directory:
 *
 *   byte 0 bit 0 clear: the input (after byte 0) is the body of the only
 *                       segment, after a valid 32-byte segment header;
 *   byte 0 bit 0 set:   the first half is the body of a sealed segment whose
 *                       successor starts at index 1 + byte 1, the second half
 *                       its .idx body after a valid .idx header;
 *   byte 0 bit 1 set:   record and .idx-entry CRCs are fixed up first, so the
 *                       fuzzer reaches the checks behind the CRC.
 *
 * seglog_open must return a status (never crash or read out of bounds), and
 * every entry it then reports must read back or be CMQ_ECORRUPT.
 *
 *   CC=clang meson setup build-fuzz -Dsanitize=true
 *   ninja -C build-fuzz tests/unit/common/seglog/fuzz_segment
 *   ./build-fuzz/tests/unit/common/seglog/fuzz_segment -max_len=8192
 */
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "format.h"
#include "seglog.h"
#include "status.h"

#define SEG_BYTES 16384u

static char dir[64];

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    if (ftw->level > 0)
        remove(path);
    return 0;
}

static void put_file(uint64_t first, const char *ext, uint32_t magic, uint64_t word6,
                     uint32_t word3, const uint8_t *body, size_t len, size_t size)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%020llu%s", dir, (unsigned long long)first, ext);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        abort();
    uint8_t h[32];
    file_hdr_encode(h, magic, word3, first, word6);
    if (write(fd, h, sizeof h) != (ssize_t)sizeof h)
        abort();
    if (len > size - 32)
        len = size - 32;
    if (len && write(fd, body, len) != (ssize_t)len)
        abort();
    if (size && ftruncate(fd, (off_t)size) != 0)
        abort();
    close(fd);
}

/* Recomputes the CRC of every record header found at an 8-aligned offset
 * of a segment body (body[0] is file offset 32). */
static void fix_records(uint8_t *b, size_t len)
{
    for (size_t o = 0; o + SEG_REC_HDR_BYTES <= len; o += 8) {
        if (get_le32(b + o) != SEG_REC_MAGIC)
            continue;
        uint32_t n = get_le32(b + o + 12);
        if (n > len - o - SEG_REC_HDR_BYTES)
            continue;
        uint32_t crc = crc32c(0, b + o + 8, SEG_REC_HDR_BYTES - 8);
        put_le32(b + o + 4, crc32c(crc, b + o + SEG_REC_HDR_BYTES, n));
    }
}

static void fix_idx(uint8_t *b, size_t len)
{
    for (size_t k = 0; (k + 1) * IDX_ENTRY_BYTES <= len; k++) {
        uint8_t *e = b + k * IDX_ENTRY_BYTES;
        idx_entry_encode(e, 1 + k, get_le64(e), get_le32(e + 8));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "/tmp/seglog-fuzz-XXXXXX");
        if (!mkdtemp(dir))
            abort();
    }
    nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
    if (size < 2)
        return 0;
    uint8_t *copy = malloc(size);
    if (!copy)
        abort();
    memcpy(copy, data, size);
    if (copy[0] & 1) {
        size_t half = (size - 2) / 2;
        uint64_t next = 2 + copy[1];
        if (copy[0] & 2) {
            fix_records(copy + 2, half);
            fix_idx(copy + 2 + half, size - 2 - half);
        }
        put_file(1, ".seg", SEG_FILE_MAGIC, SEG_BYTES, 0, copy + 2, half, SEG_BYTES);
        put_file(1, ".idx", IDX_FILE_MAGIC, 0, IDX_ENTRY_BYTES, copy + 2 + half, size - 2 - half,
                 32 + (size - 2 - half));
        put_file(next, ".seg", SEG_FILE_MAGIC, SEG_BYTES, 0, NULL, 0, SEG_BYTES);
    } else {
        if (copy[0] & 2)
            fix_records(copy + 1, size - 1);
        put_file(1, ".seg", SEG_FILE_MAGIC, SEG_BYTES, 0, copy + 1, size - 1, SEG_BYTES);
    }
    free(copy);
    struct seglog_opts o;
    seglog_opts_default(&o);
    o.segment_bytes = SEG_BYTES;
    o.max_record_bytes = 4096;
    o.create = 0;
    struct seglog *log;
    char err[SEGLOG_ERR_MAX];
    if (seglog_open(dir, &o, &log, err) != CMQ_OK)
        return 0;
    static uint8_t buf[4096];
    for (uint64_t i = seglog_first_index(log); i <= seglog_last_index(log); i++) {
        struct seglog_entry e;
        int st = seglog_read(log, i, &e, buf, sizeof buf);
        if (st != CMQ_OK && st != CMQ_ECORRUPT)
            abort();
    }
    seglog_close(log);
    return 0;
}
