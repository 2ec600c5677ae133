/* test_seglog.c: the segment log's append / read / restart / truncate /
 * compact contract (common/seglog/seglog.c). */
#include "helpers.h"

TestSuite(seglog, .init = t_setup, .fini = t_teardown);

Test(seglog, new_log_is_empty)
{
    struct seglog *log = t_open();
    cr_assert_eq(seglog_first_index(log), 1);
    cr_assert_eq(seglog_last_index(log), 0);
    uint8_t buf[8];
    struct seglog_entry e;
    cr_assert_eq(seglog_read(log, 1, &e, buf, sizeof buf), CMQ_ENOTFOUND);
    uint64_t t;
    cr_assert_eq(seglog_term_at(log, 0, &t), CMQ_ENOTFOUND);
    seglog_close(log);
}

Test(seglog, round_trip_across_rollovers)
{
    struct seglog *log = t_open();
    t_append(log, 1, 300, 1);
    t_append(log, 301, 500, 3);
    cr_assert_eq(seglog_last_index(log), 500);
    uint64_t firsts[64];
    size_t n = t_segments(firsts, 64);
    cr_assert_gt(n, 10, "500 entries of ~130 bytes span many 4 KiB segments, got %zu", n);
    assert_range(log, 1, 300, 1);
    assert_range(log, 301, 500, 3);
    struct seglog_stats st;
    seglog_stats(log, &st);
    cr_assert_eq(st.appends, 500);
    cr_assert_eq(st.segments, n);
    cr_assert_eq(seglog_sync(log), CMQ_OK);
    cr_assert_eq(seglog_durable_index(log), 500);
    seglog_close(log);
}

Test(seglog, read_with_a_short_buffer_says_how_much)
{
    struct seglog *log = t_open();
    t_append(log, 1, 5, 1);
    uint8_t buf[1];
    struct seglog_entry e;
    cr_assert_eq(seglog_read(log, 4, &e, buf, 0), CMQ_ETOOBIG);
    cr_assert_eq(e.len, t_len(4));
    seglog_close(log);
}

Test(seglog, append_rejects_what_does_not_continue_the_log)
{
    struct seglog *log = t_open();
    t_append(log, 1, 3, 2);
    uint8_t b[T_MAX_RECORD + 1] = {0};
    struct seglog_entry gap = {.term = 2, .index = 5, .len = 1, .data = b};
    cr_assert_eq(seglog_append(log, &gap, 1), CMQ_EINVAL);
    struct seglog_entry old_term = {.term = 1, .index = 4, .len = 1, .data = b};
    cr_assert_eq(seglog_append(log, &old_term, 1), CMQ_EINVAL);
    struct seglog_entry big = {.term = 2, .index = 4, .len = T_MAX_RECORD + 1, .data = b};
    cr_assert_eq(seglog_append(log, &big, 1), CMQ_ETOOBIG);
    /* A batch is checked before anything is written. */
    struct seglog_entry batch[2] = {{.term = 2, .index = 4, .len = 1, .data = b},
                                    {.term = 2, .index = 6, .len = 1, .data = b}};
    cr_assert_eq(seglog_append(log, batch, 2), CMQ_EINVAL);
    cr_assert_eq(seglog_last_index(log), 3);
    struct seglog_entry ok = {.term = 2, .index = 4, .len = T_MAX_RECORD, .data = b};
    cr_assert_eq(seglog_append(log, &ok, 1), CMQ_OK);
    seglog_close(log);
}

Test(seglog, options_out_of_range_are_refused)
{
    struct seglog_opts o = t_opts();
    struct seglog *log;
    char err[SEGLOG_ERR_MAX];
    o.max_record_bytes = T_SEGMENT_BYTES;
    cr_assert_eq(seglog_open(t_dir, &o, &log, err), CMQ_EINVAL);
    o = t_opts();
    o.segment_bytes = 100;
    cr_assert_eq(seglog_open(t_dir, &o, &log, err), CMQ_EINVAL);
}

Test(seglog, restart_uses_the_index_files)
{
    struct seglog *log = t_open();
    t_append(log, 1, 400, 2);
    cr_assert_eq(seglog_sync(log), CMQ_OK);
    seglog_close(log);

    log = t_open();
    struct seglog_stats st;
    seglog_stats(log, &st);
    cr_assert_eq(st.idx_rebuilds, 0, "sealed segments trusted through their .idx");
    cr_assert_eq(seglog_last_index(log), 400);
    assert_range(log, 1, 400, 2);
    t_append(log, 401, 450, 3);
    assert_range(log, 401, 450, 3);
    seglog_close(log);
}

Test(seglog, restart_without_index_files_rebuilds_them)
{
    struct seglog *log = t_open();
    t_append(log, 1, 400, 2);
    cr_assert_eq(seglog_sync(log), CMQ_OK);
    seglog_close(log);
    uint64_t firsts[64];
    size_t n = t_segments(firsts, 64);
    char path[512];
    for (size_t i = 0; i < n; i++) {
        t_path(path, sizeof path, firsts[i], ".idx");
        cr_assert_eq(unlink(path), 0);
    }
    log = t_open();
    struct seglog_stats st;
    seglog_stats(log, &st);
    cr_assert_eq(st.idx_rebuilds, n - 1, "every sealed .idx rebuilt (the last is scanned)");
    assert_range(log, 1, 400, 2);
    seglog_close(log);
    /* And the rebuilt files are trusted next time. */
    log = t_open();
    seglog_stats(log, &st);
    cr_assert_eq(st.idx_rebuilds, 0);
    assert_range(log, 1, 400, 2);
    seglog_close(log);
}

Test(seglog, a_bad_index_entry_is_rebuilt_on_read)
{
    struct seglog *log = t_open();
    t_append(log, 1, 200, 1);
    cr_assert_eq(seglog_sync(log), CMQ_OK);
    seglog_close(log);
    uint64_t firsts[64];
    cr_assert_gt(t_segments(firsts, 64), 3);
    char path[512];
    t_path(path, sizeof path, firsts[1], ".idx");
    uint64_t victim = firsts[1] + 2;
    t_flip_byte(path, IDX_FILE_HDR_BYTES + (victim - firsts[1]) * IDX_ENTRY_BYTES + 8);
    log = t_open();
    assert_entry(log, victim, 1);
    struct seglog_stats st;
    seglog_stats(log, &st);
    cr_assert_eq(st.idx_rebuilds, 1);
    assert_range(log, 1, 200, 1);
    seglog_close(log);
}

Test(seglog, truncate_suffix_across_segments_then_new_terms)
{
    struct seglog *log = t_open();
    t_append(log, 1, 300, 1);
    uint64_t firsts[64];
    size_t n = t_segments(firsts, 64);
    cr_assert_gt(n, 5);
    /* Cut a few entries before the start of the third-to-last segment. */
    uint64_t from = firsts[n - 3] - 4;
    cr_assert_eq(seglog_truncate_suffix(log, from), CMQ_OK);
    cr_assert_eq(seglog_last_index(log), from - 1);
    uint64_t t;
    cr_assert_eq(seglog_term_at(log, from, &t), CMQ_ENOTFOUND);
    cr_assert_eq(t_segments(firsts, 64), n - 3, "the later segments are deleted");
    t_append(log, from, from + 150, 2);
    assert_range(log, 1, from - 1, 1);
    assert_range(log, from, from + 150, 2);
    cr_assert_eq(seglog_sync(log), CMQ_OK);
    seglog_close(log);

    log = t_open();
    cr_assert_eq(seglog_last_index(log), from + 150);
    assert_range(log, 1, from - 1, 1);
    assert_range(log, from, from + 150, 2);
    /* Truncating inside the active segment, and a no-op past the end. */
    cr_assert_eq(seglog_truncate_suffix(log, from + 200), CMQ_OK);
    cr_assert_eq(seglog_truncate_suffix(log, from + 149), CMQ_OK);
    t_append(log, from + 149, from + 160, 3);
    assert_range(log, from, from + 148, 2);
    assert_range(log, from + 149, from + 160, 3);
    seglog_close(log);
}

Test(seglog, truncate_suffix_exactly_at_a_segment_start)
{
    struct seglog *log = t_open();
    t_append(log, 1, 200, 1);
    uint64_t firsts[64];
    size_t n = t_segments(firsts, 64);
    uint64_t from = firsts[n - 2];
    cr_assert_eq(seglog_truncate_suffix(log, from), CMQ_OK);
    cr_assert_eq(seglog_last_index(log), from - 1);
    t_append(log, from, from + 60, 4);
    seglog_close(log);
    log = t_open();
    assert_range(log, 1, from - 1, 1);
    assert_range(log, from, from + 60, 4);
    seglog_close(log);
}

Test(seglog, truncate_everything_then_start_again)
{
    struct seglog *log = t_open();
    t_append(log, 1, 100, 1);
    cr_assert_eq(seglog_truncate_suffix(log, 1), CMQ_OK);
    cr_assert_eq(seglog_last_index(log), 0);
    uint64_t firsts[8];
    cr_assert_eq(t_segments(firsts, 8), 1);
    t_append(log, 1, 10, 5);
    seglog_close(log);
    log = t_open();
    assert_range(log, 1, 10, 5);
    seglog_close(log);
}

Test(seglog, compact_prefix_deletes_only_covered_segments)
{
    struct seglog *log = t_open();
    t_append(log, 1, 300, 1);
    uint64_t firsts[64];
    size_t n = t_segments(firsts, 64);
    cr_assert_gt(n, 5);
    unsigned removed;
    /* One short of covering the second segment: only the first goes. */
    cr_assert_eq(seglog_compact_prefix(log, firsts[2] - 2, &removed), CMQ_OK);
    cr_assert_eq(removed, 1);
    cr_assert_eq(seglog_first_index(log), firsts[1]);
    cr_assert_eq(seglog_compact_prefix(log, firsts[2] - 1, &removed), CMQ_OK);
    cr_assert_eq(removed, 1);
    cr_assert_eq(seglog_first_index(log), firsts[2]);
    cr_assert_eq(t_segments(firsts + 32, 32), n - 2);
    uint8_t buf[T_MAX_RECORD];
    struct seglog_entry e;
    cr_assert_eq(seglog_read(log, firsts[2] - 1, &e, buf, sizeof buf), CMQ_ENOTFOUND);
    assert_range(log, firsts[2], 300, 1);
    /* Covering everything still keeps the active segment. */
    cr_assert_eq(seglog_compact_prefix(log, 1000, &removed), CMQ_OK);
    cr_assert_eq(removed, n - 3);
    cr_assert_eq(seglog_first_index(log), firsts[n - 1]);
    cr_assert_eq(seglog_last_index(log), 300);
    t_append(log, 301, 320, 2);
    seglog_close(log);
    log = t_open();
    cr_assert_eq(seglog_first_index(log), firsts[n - 1]);
    assert_range(log, firsts[n - 1], 300, 1);
    assert_range(log, 301, 320, 2);
    cr_assert_eq(seglog_truncate_suffix(log, firsts[n - 1] - 1), CMQ_EINVAL);
    seglog_close(log);
}

Test(seglog, reset_restarts_the_log_at_an_index)
{
    struct seglog *log = t_open();
    t_append(log, 1, 100, 1);
    cr_assert_eq(seglog_reset(log, 5000), CMQ_OK);
    cr_assert_eq(seglog_first_index(log), 5000);
    cr_assert_eq(seglog_last_index(log), 4999);
    t_append(log, 5000, 5100, 7);
    seglog_close(log);
    log = t_open();
    cr_assert_eq(seglog_first_index(log), 5000);
    assert_range(log, 5000, 5100, 7);
    seglog_close(log);
}

Test(seglog, many_segments_with_few_open_descriptors)
{
    struct seglog *log = t_open(); /* max_open_segments = 2 */
    t_append(log, 1, 1000, 1);
    cr_assert_eq(seglog_sync(log), CMQ_OK);
    /* Random-ish access order forces opens and evictions. */
    for (uint64_t k = 0; k < 1000; k++)
        assert_entry(log, (k * 7919) % 1000 + 1, 1);
    seglog_close(log);
}

Test(seglog, empty_payloads_round_trip)
{
    /* Raft's leader no-op entries carry no payload. */
    struct seglog *log = t_open();
    struct seglog_entry e[3] = {{.term = 1, .index = 1, .type = 9},
                                {.term = 1, .index = 2, .type = 9},
                                {.term = 2, .index = 3, .type = 9}};
    cr_assert_eq(seglog_append(log, e, 3), CMQ_OK);
    cr_assert_eq(seglog_sync(log), CMQ_OK);
    seglog_close(log);
    log = t_open();
    cr_assert_eq(seglog_last_index(log), 3);
    struct seglog_entry back;
    cr_assert_eq(seglog_read(log, 3, &back, NULL, 0), CMQ_OK);
    cr_assert_eq(back.len, 0);
    cr_assert_eq(back.term, 2);
    cr_assert_eq(back.type, 9);
    seglog_close(log);
}

Test(seglog, segment_size_may_change_across_restarts)
{
    struct seglog *log = t_open();
    t_append(log, 1, 100, 1);
    cr_assert_eq(seglog_sync(log), CMQ_OK);
    seglog_close(log);
    /* Bigger segments and records from now on; old segments keep their size. */
    struct seglog_opts o = t_opts();
    o.segment_bytes = 4 * T_SEGMENT_BYTES;
    o.max_record_bytes = 2 * T_SEGMENT_BYTES;
    char err[SEGLOG_ERR_MAX];
    cr_assert_eq(seglog_open(t_dir, &o, &log, err), CMQ_OK, "%s", err);
    static uint8_t big[2 * T_SEGMENT_BYTES];
    struct seglog_entry e = {.term = 1, .index = 101, .len = sizeof big, .data = big};
    cr_assert_eq(seglog_append(log, &e, 1), CMQ_OK);
    t_append(log, 102, 200, 1);
    cr_assert_eq(seglog_sync(log), CMQ_OK);
    seglog_close(log);
    cr_assert_eq(seglog_open(t_dir, &o, &log, err), CMQ_OK, "%s", err);
    assert_range(log, 1, 100, 1);
    assert_range(log, 102, 200, 1);
    seglog_close(log);
}

Test(seglog, an_empty_small_active_segment_is_replaced_for_a_bigger_record)
{
    struct seglog *log = t_open();
    t_append(log, 1, 100, 1);
    cr_assert_eq(seglog_reset(log, 200), CMQ_OK); /* one empty 4 KiB segment */
    seglog_close(log);
    struct seglog_opts o = t_opts();
    o.segment_bytes = 4 * T_SEGMENT_BYTES;
    o.max_record_bytes = 2 * T_SEGMENT_BYTES;
    char err[SEGLOG_ERR_MAX];
    cr_assert_eq(seglog_open(t_dir, &o, &log, err), CMQ_OK, "%s", err);
    static uint8_t big[2 * T_SEGMENT_BYTES];
    struct seglog_entry e = {.term = 1, .index = 200, .len = sizeof big, .data = big};
    cr_assert_eq(seglog_append(log, &e, 1), CMQ_OK);
    t_append(log, 201, 230, 2);
    cr_assert_eq(seglog_sync(log), CMQ_OK);
    seglog_close(log);
    char path[512];
    t_path(path, sizeof path, 200, ".seg");
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq((uint64_t)st.st_size, 4 * T_SEGMENT_BYTES, "recreated at the new size");
    cr_assert_eq(seglog_open(t_dir, &o, &log, err), CMQ_OK, "%s", err);
    uint8_t buf[sizeof big];
    struct seglog_entry back;
    cr_assert_eq(seglog_read(log, 200, &back, buf, sizeof buf), CMQ_OK);
    cr_assert_eq(back.len, sizeof big);
    assert_range(log, 201, 230, 2);
    seglog_close(log);
}
