/* test_hardstate.c: the hard-state file (term, vote, commit): atomic save,
 * validated load. */
#include "helpers.h"

TestSuite(hardstate, .init = t_setup, .fini = t_teardown);

static void hs_path(char *buf, size_t cap)
{
    snprintf(buf, cap, "%s/hardstate", t_dir);
}

Test(hardstate, absent_until_saved)
{
    struct seglog *log = t_open();
    struct seglog_hardstate hs = {1, 2, 3};
    cr_assert_eq(seglog_hardstate_load(log, &hs), CMQ_ENOTFOUND);
    cr_assert_eq(hs.term, 0);
    cr_assert_eq(hs.vote, 0);
    cr_assert_eq(hs.commit, 0);
    seglog_close(log);
}

Test(hardstate, save_and_load_round_trip_across_restarts)
{
    struct seglog *log = t_open();
    struct seglog_hardstate a = {.term = 7, .vote = 3, .commit = 1000}, b;
    cr_assert_eq(seglog_hardstate_save(log, &a), CMQ_OK);
    cr_assert_eq(seglog_hardstate_load(log, &b), CMQ_OK);
    cr_assert_eq(memcmp(&a, &b, sizeof a), 0);
    a = (struct seglog_hardstate){.term = UINT64_MAX, .vote = 0, .commit = UINT64_MAX - 1};
    cr_assert_eq(seglog_hardstate_save(log, &a), CMQ_OK);
    seglog_close(log);
    log = t_open();
    cr_assert_eq(seglog_hardstate_load(log, &b), CMQ_OK);
    cr_assert_eq(memcmp(&a, &b, sizeof a), 0);
    char tmp[512];
    snprintf(tmp, sizeof tmp, "%s/hardstate.tmp", t_dir);
    cr_assert_neq(access(tmp, F_OK), 0, "no temporary file left behind");
    struct stat st;
    char path[512];
    hs_path(path, sizeof path);
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq(st.st_size, HS_FILE_BYTES);
    seglog_close(log);
}

Test(hardstate, any_flipped_byte_is_detected)
{
    struct seglog *log = t_open();
    struct seglog_hardstate a = {.term = 5, .vote = 2, .commit = 77}, b;
    char path[512];
    hs_path(path, sizeof path);
    for (uint64_t off = 0; off < HS_FILE_BYTES; off++) {
        cr_assert_eq(seglog_hardstate_save(log, &a), CMQ_OK);
        t_flip_byte(path, off);
        cr_assert_eq(seglog_hardstate_load(log, &b), CMQ_ECORRUPT, "flip at %" PRIu64, off);
        char err[SEGLOG_ERR_MAX];
        seglog_last_error(log, err);
        cr_assert_not_null(strstr(err, path), "%s", err);
    }
    seglog_close(log);
}

Test(hardstate, a_short_or_long_file_is_detected)
{
    struct seglog *log = t_open();
    struct seglog_hardstate a = {.term = 5, .vote = 2, .commit = 77}, b;
    char path[512];
    hs_path(path, sizeof path);
    cr_assert_eq(seglog_hardstate_save(log, &a), CMQ_OK);
    cr_assert_eq(truncate(path, 20), 0);
    cr_assert_eq(seglog_hardstate_load(log, &b), CMQ_ECORRUPT);
    cr_assert_eq(seglog_hardstate_save(log, &a), CMQ_OK);
    t_write_at(path, HS_FILE_BYTES, "x", 1);
    cr_assert_eq(seglog_hardstate_load(log, &b), CMQ_ECORRUPT);
    seglog_close(log);
}

Test(hardstate, a_torn_temporary_file_does_not_matter)
{
    struct seglog *log = t_open();
    struct seglog_hardstate a = {.term = 9, .vote = 1, .commit = 5}, b;
    cr_assert_eq(seglog_hardstate_save(log, &a), CMQ_OK);
    seglog_close(log);
    /* A crash between writing the temporary file and the rename. */
    char tmp[512];
    snprintf(tmp, sizeof tmp, "%s/hardstate.tmp", t_dir);
    int fd = open(tmp, O_CREAT | O_WRONLY, 0644);
    cr_assert(fd >= 0);
    cr_assert_eq(write(fd, "garbage", 7), 7);
    close(fd);
    log = t_open();
    cr_assert_neq(access(tmp, F_OK), 0, "open removes the temporary file");
    cr_assert_eq(seglog_hardstate_load(log, &b), CMQ_OK);
    cr_assert_eq(memcmp(&a, &b, sizeof a), 0);
    seglog_close(log);
}
