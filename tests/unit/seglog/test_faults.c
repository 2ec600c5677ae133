/* test_faults.c: I/O errors through the fault seam (seglog_opts.fault).
 * After a failed write or fsync the log is failed (like SQLite's pager):
 * every later mutating call returns the error until it is reopened, and
 * reopening recovers from what is on disk. */
#include <poll.h>

#include "helpers.h"
#include "seglog_writer.h"

TestSuite(faults, .init = t_setup, .fini = t_teardown);

struct fault_plan {
    const char *op; /* operation to fail */
    int after;      /* let this many through first */
    int hits;       /* how many times it failed */
};

static int fault_fn(void *arg, const char *op)
{
    struct fault_plan *f = arg;
    if (!f->op || strcmp(op, f->op) != 0)
        return CMQ_OK;
    if (f->after > 0) {
        f->after--;
        return CMQ_OK;
    }
    f->hits++;
    return CMQ_EIO;
}

static struct seglog *open_with(struct fault_plan *f)
{
    struct seglog_opts o = t_opts();
    o.fault = fault_fn;
    o.fault_arg = f;
    struct seglog *log;
    char err[SEGLOG_ERR_MAX];
    cr_assert_eq(seglog_open(t_dir, &o, &log, err), CMQ_OK, "%s", err);
    return log;
}

static void assert_failed_state(struct seglog *log)
{
    uint8_t b[4] = {0};
    struct seglog_entry e = {.term = 9, .index = seglog_last_index(log) + 1, .len = 4, .data = b};
    cr_assert_eq(seglog_append(log, &e, 1), CMQ_EIO);
    cr_assert_eq(seglog_sync(log), CMQ_EIO);
    cr_assert_eq(seglog_truncate_suffix(log, seglog_first_index(log)), CMQ_EIO);
    char err[SEGLOG_ERR_MAX];
    seglog_last_error(log, err);
    cr_assert_not_null(strstr(err, "failed"), "%s", err);
}

Test(faults, a_failed_fsync_fails_the_log_until_reopened)
{
    struct fault_plan f = {.op = "fdatasync"};
    struct seglog *log = open_with(&f);
    t_append(log, 1, 50, 1);
    cr_assert_eq(seglog_sync(log), CMQ_EIO);
    cr_assert_eq(seglog_durable_index(log), 0, "nothing claimed durable");
    assert_failed_state(log);
    assert_range(log, 1, 50, 1); /* reads still work */
    seglog_close(log);
    log = t_open();
    cr_assert_eq(seglog_last_index(log), 50);
    t_append(log, 51, 60, 2);
    cr_assert_eq(seglog_sync(log), CMQ_OK);
    seglog_close(log);
}

Test(faults, a_failed_write_fails_the_log_and_writes_nothing)
{
    struct fault_plan f = {.op = "write", .after = 3};
    struct seglog *log = open_with(&f);
    t_append(log, 1, 21, 1); /* three batches of 7 */
    uint8_t b[4] = {0};
    struct seglog_entry e = {.term = 1, .index = 22, .len = 4, .data = b};
    cr_assert_eq(seglog_append(log, &e, 1), CMQ_EIO);
    cr_assert_eq(seglog_last_index(log), 21);
    assert_failed_state(log);
    seglog_close(log);
    log = t_open();
    cr_assert_eq(seglog_last_index(log), 21);
    assert_range(log, 1, 21, 1);
    seglog_close(log);
}

Test(faults, a_failed_first_segment_creation_fails_the_open)
{
    struct fault_plan f = {.op = "create"};
    struct seglog_opts o = t_opts();
    o.fault = fault_fn;
    o.fault_arg = &f;
    struct seglog *log;
    char err[SEGLOG_ERR_MAX];
    cr_assert_eq(seglog_open(t_dir, &o, &log, err), CMQ_EIO);
    cr_assert_null(log);
    cr_assert_not_null(strstr(err, "segment creation"), "%s", err);
}

Test(faults, a_failed_rollover_keeps_what_was_written)
{
    struct seglog *log = t_open();
    seglog_close(log);
    struct fault_plan f = {.op = "create"};
    log = open_with(&f);
    struct seglog_entry e[40];
    static uint8_t b[200];
    int st = CMQ_OK;
    uint64_t i;
    for (i = 1; i <= 40 && st == CMQ_OK; i++) {
        e[0] = (struct seglog_entry){.term = 1, .index = i, .len = sizeof b, .data = b};
        st = seglog_append(log, e, 1);
    }
    cr_assert_eq(st, CMQ_EIO, "a 4 KiB segment holds fewer than 40 records of 232 bytes");
    cr_assert_eq(f.hits, 1);
    uint64_t last = seglog_last_index(log);
    cr_assert_eq(last, i - 2);
    assert_failed_state(log);
    seglog_close(log);
    log = t_open();
    cr_assert_eq(seglog_last_index(log), last);
    seglog_close(log);
}

Test(faults, a_failed_hard_state_save_keeps_the_old_one)
{
    struct fault_plan f = {0};
    struct seglog *log = open_with(&f);
    struct seglog_hardstate a = {.term = 3, .vote = 1, .commit = 0}, b = {.term = 4}, back;
    cr_assert_eq(seglog_hardstate_save(log, &a), CMQ_OK);
    f.op = "hardstate";
    cr_assert_eq(seglog_hardstate_save(log, &b), CMQ_EIO);
    cr_assert_eq(seglog_hardstate_load(log, &back), CMQ_OK);
    cr_assert_eq(memcmp(&a, &back, sizeof a), 0);
    seglog_close(log);
}

static int g_eio;
static void eio_done(struct seglog_write_req *req, int status)
{
    (void)req;
    cr_assert_eq(status, CMQ_EIO, "%s", status_name(status));
    g_eio++;
}

Test(faults, the_writer_reports_a_failed_fsync_to_every_request_of_the_batch)
{
    struct fault_plan f = {.op = "fdatasync"};
    struct seglog *log = open_with(&f);
    struct seglog_writer *w;
    cr_assert_eq(seglog_writer_start(log, 16, &w), CMQ_OK);
    struct seglog_entry e[8];
    struct seglog_write_req r[8];
    static uint8_t b[8];
    g_eio = 0;
    for (int k = 0; k < 8; k++) {
        e[k] = (struct seglog_entry){.term = 1, .index = (uint64_t)k + 1, .len = 8, .data = b};
        r[k] = (struct seglog_write_req){.entries = &e[k], .n = 1, .done = eio_done};
        cr_assert_eq(seglog_writer_submit(w, &r[k]), CMQ_OK);
    }
    while (g_eio < 8) {
        struct pollfd p = {.fd = seglog_writer_fd(w), .events = POLLIN};
        cr_assert_geq(poll(&p, 1, 5000), 1);
        seglog_writer_poll(w);
    }
    seglog_writer_stop(w);
    cr_assert_eq(seglog_durable_index(log), 0);
    seglog_close(log);
}
