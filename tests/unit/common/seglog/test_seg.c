/* test_seg.c: the segment layer under the log (common/seglog/seglog_seg.c):
 * record header and CRC checks, and the scan that rebuilds a .idx, which
 * stops at the first record that is not valid and names why.  The log is
 * opened for real in a temporary directory; the layer's functions are
 * called through the library's private header. */
#include <criterion/criterion.h>
#include <pthread.h>

#include "helpers.h"
#include "seglog_internal.h"

TestSuite(seg, .init = t_setup, .fini = t_teardown);

static void record(uint8_t *rec, uint64_t index, uint32_t len)
{
    uint8_t payload[256];
    t_fill(payload, index, 1, len);
    seg_rec_encode(rec, 1, index, 0, payload, len);
    memcpy(rec + SEG_REC_HDR_BYTES, payload, len);
}

Test(seg, record_header_problems_are_named)
{
    uint8_t rec[SEG_REC_HDR_BYTES + 256];
    const uint64_t off = SEG_FILE_HDR_BYTES, size = 4096;
    record(rec, 5, 100);
    cr_assert_null(sl_rec_hdr_problem(rec, off, size, 1024));
    cr_assert(sl_rec_crc_ok(rec));
    /* the record exactly fills the file: still plausible; one byte less is not */
    cr_assert_null(sl_rec_hdr_problem(rec, off, off + seg_rec_bytes(100), 1024));
    cr_assert_str_eq(sl_rec_hdr_problem(rec, off, off + seg_rec_bytes(100) - 1, 1024),
                     "record runs past the end of the file");
    cr_assert_str_eq(sl_rec_hdr_problem(rec, off, size, 99), "length over the record limit");

    uint8_t bad[sizeof rec];
    memcpy(bad, rec, sizeof rec);
    bad[0] ^= 1;
    cr_assert_str_eq(sl_rec_hdr_problem(bad, off, size, 1024), "bad magic");
    memcpy(bad, rec, sizeof rec);
    bad[8]++;
    cr_assert_str_eq(sl_rec_hdr_problem(bad, off, size, 1024), "unknown record version");
    memcpy(bad, rec, sizeof rec);
    bad[10] = 1;
    cr_assert_str_eq(sl_rec_hdr_problem(bad, off, size, 1024), "nonzero flags");
    /* a payload bit flip passes the header check but not the CRC */
    memcpy(bad, rec, sizeof rec);
    bad[SEG_REC_HDR_BYTES + 50] ^= 0x10;
    cr_assert_null(sl_rec_hdr_problem(bad, off, size, 1024));
    cr_assert_not(sl_rec_crc_ok(bad));
}

/* Scans the active segment as recovery does (to the end of the file). */
static int scan_active(struct seglog *log, struct scan *sc)
{
    pthread_mutex_lock(&log->mu);
    int st = sl_scan_segment(log, sl_active(log), UINT64_MAX, 0, sc);
    pthread_mutex_unlock(&log->mu);
    return st;
}

Test(seg, scan_finds_the_end_and_stops_at_a_damaged_record)
{
    struct seglog *log = t_open();
    t_append(log, 1, 9, 1);
    cr_assert_eq(seglog_sync(log), CMQ_OK);
    struct scan sc;
    cr_assert_eq(scan_active(log, &sc), CMQ_OK);
    cr_assert_eq(sc.last, 9);
    cr_assert_eq(sc.last_term, 1);
    cr_assert_not_null(sc.bad, "the zeroed tail after the last record stops the scan");
    uint64_t end = sc.end_off;

    /* Flip one payload byte of record 6 on disk: the scan ends after 5. */
    uint64_t off = SEG_FILE_HDR_BYTES;
    for (uint64_t i = 1; i < 6; i++)
        off += seg_rec_bytes(t_len(i));
    char path[PATH_MAX_];
    sl_seg_path(log, 1, ".seg", path);
    int fd = open(path, O_RDWR);
    cr_assert_geq(fd, 0);
    uint8_t b;
    cr_assert_eq(pread(fd, &b, 1, (off_t)(off + SEG_REC_HDR_BYTES)), 1);
    b ^= 0xff;
    cr_assert_eq(pwrite(fd, &b, 1, (off_t)(off + SEG_REC_HDR_BYTES)), 1);
    close(fd);
    cr_assert_eq(scan_active(log, &sc), CMQ_OK);
    cr_assert_eq(sc.last, 5, "last good index %" PRIu64, sc.last);
    cr_assert_eq(sc.end_off, off, "the scan ends where record 6 begins");
    cr_assert_not_null(sc.bad);
    cr_assert_lt(sc.end_off, end);
    seglog_close(log);
}
