/* test_salvage.c: seglog_salvage_last and seglog_hardstate_peek (salvage.c):
 * what a log that seglog_open refused still says for sure about its end, the
 * vote floor of a replica that is repaired (docs/raft.md §11). */
#include "helpers.h"

TestSuite(salvage, .init = t_setup, .fini = t_teardown);

#define N 40

static uint64_t write_log(uint64_t n, uint64_t term)
{
    struct seglog *log = t_open();
    t_append(log, 1, n, term);
    cr_assert_eq(seglog_sync(log), CMQ_OK);
    seglog_close(log);
    uint64_t firsts[64];
    size_t k = t_segments(firsts, 64);
    cr_assert_geq(k, 2, "the log spans at least two segments");
    return firsts[k - 1]; /* the live segment: the one open scans */
}

static void assert_salvage(int want_rc, uint64_t want_term, uint64_t want_index)
{
    uint64_t t = 99, i = 99;
    int rc = seglog_salvage_last(t_dir, &t, &i);
    cr_assert_eq(rc, want_rc, "salvage: %s, want %s", status_name(rc), status_name(want_rc));
    if (rc == CMQ_OK) {
        cr_assert_eq(t, want_term);
        cr_assert_eq(i, want_index, "last index %" PRIu64 ", want %" PRIu64, i, want_index);
    }
}

Test(salvage, an_intact_log_ends_where_it_ends)
{
    write_log(N, 3);
    assert_salvage(CMQ_OK, 3, N);
}

Test(salvage, a_bad_payload_mid_log_is_stepped_over)
{
    uint64_t first = write_log(N, 2);
    char path[512];
    t_path(path, sizeof path, first, ".seg");
    char err[SEGLOG_ERR_MAX];
    cr_assert_lt(first + 2, N - 1);
    t_flip_byte(path, t_offset(first, first + 2) + SEG_REC_HDR_BYTES + 1);
    cr_assert_eq(t_open_fails(err), CMQ_ECORRUPT, "the log itself is refused");
    assert_salvage(CMQ_OK, 2, N);
}

Test(salvage, an_unreadable_header_followed_by_data_is_uncertain)
{
    uint64_t first = write_log(N, 1);
    char path[512];
    t_path(path, sizeof path, first, ".seg");
    static const uint8_t zeros[512];
    t_write_at(path, t_offset(first, first + 1), zeros, seg_rec_bytes(t_len(first + 1)));
    assert_salvage(CMQ_ECORRUPT, 0, 0);
}

Test(salvage, a_bad_last_record_is_uncertain)
{
    write_log(N, 1);
    uint64_t firsts[64];
    size_t k = t_segments(firsts, 64);
    char path[512];
    t_path(path, sizeof path, firsts[k - 1], ".seg");
    t_flip_byte(path, t_offset(firsts[k - 1], N) + SEG_REC_HDR_BYTES);
    assert_salvage(CMQ_ECORRUPT, 0, 0);
}

Test(salvage, hardstate_peek_reads_without_opening_the_log)
{
    struct seglog_hardstate hs;
    cr_assert_eq(seglog_hardstate_peek(t_dir, &hs), CMQ_ENOTFOUND);
    struct seglog *log = t_open();
    struct seglog_hardstate w = {7, 3, 5};
    cr_assert_eq(seglog_hardstate_save(log, &w), CMQ_OK);
    seglog_close(log);
    cr_assert_eq(seglog_hardstate_peek(t_dir, &hs), CMQ_OK);
    cr_assert(hs.term == 7 && hs.vote == 3 && hs.commit == 5);
    char path[512];
    snprintf(path, sizeof path, "%s/hardstate", t_dir);
    t_flip_byte(path, 20);
    cr_assert_eq(seglog_hardstate_peek(t_dir, &hs), CMQ_ECORRUPT);
}
