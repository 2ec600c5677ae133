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
    t_append(log, 1, 20, 1); /* fits the first segment: no rollover sync */
    cr_assert_eq(seglog_sync(log), CMQ_EIO);
    cr_assert_eq(seglog_durable_index(log), 0, "nothing claimed durable");
    assert_failed_state(log);
    assert_range(log, 1, 20, 1); /* reads still work */
    seglog_close(log);
    log = t_open();
    cr_assert_eq(seglog_last_index(log), 20);
    t_append(log, 21, 60, 2);
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

static int g_syncs;
static int count_syncs(void *arg, const char *op)
{
    (void)arg;
    if (strcmp(op, "fdatasync") == 0)
        g_syncs++;
    return CMQ_OK;
}

Test(faults, a_failed_rollover_sync_fails_the_log)
{
    struct fault_plan f = {.op = "fdatasync"};
    struct seglog *log = open_with(&f);
    static uint8_t b[200];
    int st = CMQ_OK;
    for (uint64_t i = 1; i <= 40 && st == CMQ_OK; i++) {
        struct seglog_entry e = {.term = 1, .index = i, .len = sizeof b, .data = b};
        st = seglog_append(log, &e, 1);
    }
    cr_assert_eq(st, CMQ_EIO);
    cr_assert_eq(f.hits, 1);
    uint64_t firsts[8];
    cr_assert_eq(t_segments(firsts, 8), 1, "no successor without a synced segment");
    assert_failed_state(log);
    seglog_close(log);
}

Test(faults, a_full_segment_is_synced_before_its_successor_exists)
{
    struct seglog_opts o = t_opts();
    o.fault = count_syncs;
    struct seglog *log;
    char err[SEGLOG_ERR_MAX];
    cr_assert_eq(seglog_open(t_dir, &o, &log, err), CMQ_OK, "%s", err);
    g_syncs = 0;
    t_append(log, 1, 300, 1); /* no seglog_sync */
    uint64_t firsts[64];
    size_t n = t_segments(firsts, 64);
    cr_assert_eq((size_t)g_syncs, n - 1, "one fdatasync per rollover");
    seglog_close(log);
}

/* A simulated power cut: everything after the last sync is lost, except
 * what the protocol made durable on the way (full segments, I6).  Replayed
 * for several seeds; the log must reopen with every synced entry. */
Test(faults, a_crash_loses_only_what_was_not_synced)
{
    uint64_t seed = 12345;
    for (int round = 0; round < 12; round++) {
        t_teardown();
        cr_assert_eq(mkdir(t_dir, 0700), 0);
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        uint64_t d = 1 + (seed >> 33) % 150, u = 1 + (seed >> 20) % 120;
        struct seglog *log = t_open();
        t_append(log, 1, d, 1);
        cr_assert_eq(seglog_sync(log), CMQ_OK);
        t_append(log, d + 1, d + u, 1);
        seglog_close(log); /* no sync: the tail is only in the page cache */

        uint64_t firsts[64];
        size_t n = t_segments(firsts, 64);
        uint64_t last_first = firsts[n - 1];
        /* What survives in the last segment: up to d if it holds d, else
         * nothing (it was created after the last sync). */
        uint64_t keep = last_first <= d ? d : last_first - 1;
        uint64_t from = t_offset(last_first, keep + 1);
        uint64_t end = t_offset(last_first, d + u + 1);
        char path[512];
        t_path(path, sizeof path, last_first, ".seg");
        if (end > from) {
            uint8_t *zeros = calloc(1, end - from);
            /* Lost writes come back as zeros, or as a prefix of them torn
             * at a 512-byte sector. */
            uint64_t torn = from + ((seed >> 7) % (end - from + 1));
            torn = torn & ~(uint64_t)511;
            if (torn < from)
                torn = from;
            t_write_at(path, torn, zeros, end - torn);
            free(zeros);
        }
        if ((seed >> 11) & 1) {
            t_path(path, sizeof path, last_first, ".idx");
            unlink(path);
        }
        log = t_open();
        uint64_t last = seglog_last_index(log);
        cr_assert_geq(last, keep, "round %d: every synced entry survives (last %" PRIu64
                      ", synced %" PRIu64 ")", round, last, keep);
        cr_assert_leq(last, d + u);
        assert_range(log, 1, last, 1);
        t_append(log, last + 1, last + 3, 2);
        seglog_close(log);
    }
}
