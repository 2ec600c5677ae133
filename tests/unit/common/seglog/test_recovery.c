/* test_recovery.c: what seglog_open does with damaged files (the recovery
 * rules of docs/storage-format.md): a torn tail is cut at the last good
 * record; damage anywhere else is CMQ_ECORRUPT naming the file and offset. */
#include "helpers.h"

TestSuite(recovery, .init = t_setup, .fini = t_teardown);

/* Writes 1..n with term 1, syncs and closes; returns the last segment's first index. */
static uint64_t write_log(uint64_t n)
{
    struct seglog *log = t_open();
    t_append(log, 1, n, 1);
    cr_assert_eq(seglog_sync(log), CMQ_OK);
    seglog_close(log);
    uint64_t firsts[64];
    size_t k = t_segments(firsts, 64);
    cr_assert_geq(k, 2, "the log spans at least two segments");
    return firsts[k - 1];
}

static void clear_dir(void)
{
    t_teardown();
    cr_assert_eq(mkdir(t_dir, 0700), 0);
}

/* After recovery to `last`: the content is intact and appends continue. */
static void assert_recovered_to(uint64_t last)
{
    struct seglog *log = t_open();
    cr_assert_eq(seglog_last_index(log), last);
    assert_range(log, 1, last, 1);
    t_append(log, last + 1, last + 5, 2);
    cr_assert_eq(seglog_sync(log), CMQ_OK);
    seglog_close(log);
    log = t_open();
    cr_assert_eq(seglog_last_index(log), last + 5);
    assert_range(log, last + 1, last + 5, 2);
    seglog_close(log);
}

static void assert_corrupt_at(const char *path, uint64_t off)
{
    char err[SEGLOG_ERR_MAX], want[64];
    cr_assert_eq(t_open_fails(err), CMQ_ECORRUPT, "%s", err);
    cr_assert_not_null(strstr(err, path), "message names the file: %s", err);
    snprintf(want, sizeof want, "offset %" PRIu64 ":", off);
    cr_assert_not_null(strstr(err, want), "message names offset %" PRIu64 ": %s", off, err);
}

#define N 40

Test(recovery, torn_tail_at_every_byte_of_the_last_record)
{
    uint64_t first = write_log(N);
    uint64_t off = t_offset(first, N), end = off + seg_rec_bytes(t_len(N));
    char path[512];
    t_path(path, sizeof path, first, ".seg");
    for (uint64_t cut = off; cut < end; cut++) {
        clear_dir();
        write_log(N);
        cr_assert_eq(truncate(path, (off_t)cut), 0);
        assert_recovered_to(N - 1);
    }
}

Test(recovery, zeroed_tail_at_every_byte_of_the_last_record)
{
    uint64_t first = write_log(N);
    uint64_t off = t_offset(first, N), len = t_len(N);
    uint64_t end = off + seg_rec_bytes((uint32_t)len);
    char path[512];
    t_path(path, sizeof path, first, ".seg");
    static const uint8_t zeros[512];
    for (uint64_t z = off; z < end; z++) {
        clear_dir();
        write_log(N);
        t_write_at(path, z, zeros, end - z);
        /* Zeroing only the padding leaves the record whole. */
        assert_recovered_to(z >= off + SEG_REC_HDR_BYTES + len ? N : N - 1);
    }
}

Test(recovery, clean_restart_on_a_preallocated_zero_tail)
{
    uint64_t first = write_log(N);
    struct seglog *log = t_open();
    struct seglog_stats stats;
    seglog_stats(log, &stats);
    cr_assert_eq(stats.tail_cuts, 0, "nothing to cut after a clean close");
    seglog_close(log);
    char path[512];
    t_path(path, sizeof path, first, ".seg");
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq((uint64_t)st.st_size, T_SEGMENT_BYTES, "segments are preallocated");
    assert_recovered_to(N);
}

Test(recovery, bad_crc_in_the_last_record_is_a_torn_tail)
{
    uint64_t first = write_log(N);
    char path[512];
    t_path(path, sizeof path, first, ".seg");
    t_flip_byte(path, t_offset(first, N) + SEG_REC_HDR_BYTES);
    struct seglog *log = t_open();
    struct seglog_stats st;
    seglog_stats(log, &st);
    cr_assert_eq(st.tail_cuts, 1);
    seglog_close(log);
    assert_recovered_to(N - 1);
}

Test(recovery, garbage_after_the_tail_is_cut_and_zeroed)
{
    uint64_t first = write_log(N);
    char path[512];
    t_path(path, sizeof path, first, ".seg");
    uint64_t end = t_offset(first, N + 1);
    uint8_t junk[300];
    for (size_t k = 0; k < sizeof junk; k++)
        junk[k] = (uint8_t)(k * 29 + 1);
    t_write_at(path, end + 8, junk, sizeof junk);
    struct seglog *log = t_open();
    cr_assert_eq(seglog_last_index(log), N);
    seglog_close(log);
    int fd = open(path, O_RDONLY);
    uint8_t back[sizeof junk];
    cr_assert_eq(pread(fd, back, sizeof back, (off_t)end + 8), (ssize_t)sizeof back);
    close(fd);
    static const uint8_t zeros[sizeof junk];
    cr_assert_eq(memcmp(back, zeros, sizeof back), 0, "the torn tail was zeroed");
    assert_recovered_to(N);
}

Test(recovery, bad_crc_followed_by_valid_records_is_corruption)
{
    uint64_t first = write_log(N);
    char path[512];
    t_path(path, sizeof path, first, ".seg");
    uint64_t victim = first + 2;
    cr_assert_lt(victim, N - 1);
    uint64_t off = t_offset(first, victim);
    t_flip_byte(path, off + SEG_REC_HDR_BYTES + 1);
    assert_corrupt_at(path, off);
}

Test(recovery, a_zeroed_record_followed_by_valid_records_is_corruption)
{
    uint64_t first = write_log(N);
    char path[512];
    t_path(path, sizeof path, first, ".seg");
    uint64_t victim = first + 1, off = t_offset(first, victim);
    static const uint8_t zeros[512];
    t_write_at(path, off, zeros, seg_rec_bytes(t_len(victim)));
    assert_corrupt_at(path, off);
}

Test(recovery, an_index_gap_is_corruption)
{
    uint64_t first = write_log(N);
    char path[512];
    t_path(path, sizeof path, first, ".seg");
    uint64_t victim = first + 1, off = t_offset(first, victim);
    /* A well-formed record carrying the wrong index. */
    uint8_t payload[256], h[SEG_REC_HDR_BYTES];
    t_fill(payload, victim, 1, t_len(victim));
    seg_rec_encode(h, 1, victim + 1, (uint8_t)(victim % 3), payload, t_len(victim));
    t_write_at(path, off, h, sizeof h);
    assert_corrupt_at(path, off);
    char err[SEGLOG_ERR_MAX];
    t_open_fails(err);
    cr_assert_not_null(strstr(err, "index"), "%s", err);
}

Test(recovery, a_bad_record_in_a_sealed_segment_without_idx_is_corruption)
{
    write_log(N);
    uint64_t firsts[64];
    t_segments(firsts, 64);
    char path[512], ipath[512];
    t_path(path, sizeof path, firsts[0], ".seg");
    t_path(ipath, sizeof ipath, firsts[0], ".idx");
    uint64_t off = t_offset(firsts[0], 3);
    t_flip_byte(path, off + SEG_REC_HDR_BYTES);
    cr_assert_eq(unlink(ipath), 0);
    assert_corrupt_at(path, off);
}

Test(recovery, a_bad_record_in_a_sealed_segment_is_found_on_read_and_nothing_else_is_lost)
{
    write_log(N);
    uint64_t firsts[64];
    t_segments(firsts, 64);
    char path[512];
    t_path(path, sizeof path, firsts[0], ".seg");
    uint64_t off = t_offset(firsts[0], 3);
    t_flip_byte(path, off + SEG_REC_HDR_BYTES);
    struct seglog *log = t_open(); /* sealed segments are not rescanned */
    uint8_t buf[T_MAX_RECORD];
    struct seglog_entry e;
    cr_assert_eq(seglog_read(log, 3, &e, buf, sizeof buf), CMQ_ECORRUPT);
    char err[SEGLOG_ERR_MAX], want[64];
    seglog_last_error(log, err);
    snprintf(want, sizeof want, "offset %" PRIu64 ":", off);
    cr_assert_not_null(strstr(err, path), "%s", err);
    cr_assert_not_null(strstr(err, want), "%s", err);
    assert_range(log, 1, 2, 1);
    assert_range(log, 4, N, 1);
    seglog_close(log);
}

Test(recovery, a_bad_segment_header_is_corruption)
{
    uint64_t first = write_log(N);
    char path[512];
    t_path(path, sizeof path, first, ".seg");
    t_flip_byte(path, 17);
    assert_corrupt_at(path, 0);
}

Test(recovery, a_missing_middle_segment_is_corruption)
{
    write_log(3 * N);
    uint64_t firsts[64];
    size_t n = t_segments(firsts, 64);
    cr_assert_geq(n, 3);
    char path[512];
    t_path(path, sizeof path, firsts[1], ".seg");
    cr_assert_eq(unlink(path), 0);
    char err[SEGLOG_ERR_MAX];
    cr_assert_eq(t_open_fails(err), CMQ_ECORRUPT, "%s", err);
}

Test(recovery, leftovers_of_interrupted_creations_are_removed)
{
    write_log(N);
    char path[512];
    t_path(path, sizeof path, 999999, ".seg.tmp");
    int fd = open(path, O_CREAT | O_WRONLY, 0644);
    cr_assert(fd >= 0);
    close(fd);
    t_path(path, sizeof path, 999999, ".idx");
    fd = open(path, O_CREAT | O_WRONLY, 0644);
    close(fd);
    assert_recovered_to(N);
    cr_assert_neq(access(path, F_OK), 0, "orphan .idx removed");
}

/* Random damage (flipped bytes, cut files, in segments and .idx files) must
 * give a clean status, never a crash or an out-of-bounds read (run under
 * ASan/UBSan), and whatever open accepts must read back as written or as
 * CMQ_ECORRUPT. */
Test(recovery, random_damage_never_crashes)
{
    uint64_t seed = 0x5eed;
    for (int round = 0; round < 60; round++) {
        clear_dir();
        write_log(3 * N);
        uint64_t firsts[64];
        size_t n = t_segments(firsts, 64);
        for (int hit = 0; hit < 3; hit++) {
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            uint64_t r = seed >> 17;
            char path[512];
            t_path(path, sizeof path, firsts[r % n], (r >> 8) % 3 ? ".seg" : ".idx");
            struct stat st;
            if (stat(path, &st) != 0 || st.st_size == 0)
                continue;
            uint64_t off = (r >> 12) % (uint64_t)st.st_size;
            if ((r >> 40) % 5 == 0)
                cr_assert_eq(truncate(path, (off_t)off), 0);
            else
                t_flip_byte(path, off);
        }
        struct seglog_opts o = t_opts();
        struct seglog *log;
        char err[SEGLOG_ERR_MAX];
        int st = seglog_open(t_dir, &o, &log, err);
        if (st != CMQ_OK) {
            cr_assert_eq(st, CMQ_ECORRUPT, "round %d: %s: %s", round, status_name(st), err);
            cr_assert_neq(err[0], '\0');
            continue;
        }
        uint64_t last = seglog_last_index(log);
        cr_assert_leq(last, 3 * N);
        for (uint64_t i = 1; i <= last; i++) {
            uint8_t buf[T_MAX_RECORD], want[256];
            struct seglog_entry e;
            int rs = seglog_read(log, i, &e, buf, sizeof buf);
            if (rs == CMQ_ECORRUPT)
                continue;
            cr_assert_eq(rs, CMQ_OK, "round %d index %" PRIu64 ": %s", round, i, status_name(rs));
            cr_assert_eq(e.len, t_len(i));
            t_fill(want, i, 1, e.len);
            cr_assert_eq(memcmp(buf, want, e.len), 0, "round %d index %" PRIu64, round, i);
        }
        seglog_close(log);
    }
}

Test(recovery, without_create_an_empty_directory_is_not_a_log)
{
    struct seglog_opts o = t_opts();
    o.create = 0;
    struct seglog *log;
    char err[SEGLOG_ERR_MAX];
    cr_assert_eq(seglog_open(t_dir, &o, &log, err), CMQ_ENOTFOUND);
    cr_assert_not_null(strstr(err, t_dir));
}
