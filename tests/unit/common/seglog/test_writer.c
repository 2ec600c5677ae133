/* test_writer.c: the writer thread (common/seglog/writer.c): submissions
 * coalesce into few fdatasyncs, completions run on the polling thread in
 * submission order, and a completion means durable. */
#include <poll.h>
#include <pthread.h>

#include "helpers.h"
#include "seglog_writer.h"

TestSuite(writer, .init = t_setup, .fini = t_teardown);

struct job {
    struct seglog_write_req req;
    struct seglog_entry e;
    uint8_t payload[256];
};

static struct seglog *g_log;
static uint64_t g_next_done; /* index whose completion is expected next */
static int g_status;

static void on_done(struct seglog_write_req *req, int status)
{
    struct job *j = req->user;
    cr_assert_eq(status, g_status, "index %" PRIu64 ": %s", j->e.index, status_name(status));
    cr_assert_eq(j->e.index, g_next_done, "completions in submission order");
    if (status == CMQ_OK)
        cr_assert_geq(seglog_durable_index(g_log), j->e.index, "done means durable");
    g_next_done++;
}

static void job_init(struct job *j, uint64_t index, uint64_t term)
{
    memset(j, 0, sizeof *j);
    uint32_t len = t_len(index);
    t_fill(j->payload, index, term, len);
    j->e = (struct seglog_entry){.term = term, .index = index, .len = len,
                                 .type = (uint8_t)(index % 3), .data = j->payload};
    j->req.entries = &j->e;
    j->req.n = 1;
    j->req.done = on_done;
    j->req.user = j;
}

/* The caller's event loop: waits on the eventfd and runs completions. */
static void loop_until(struct seglog_writer *w, uint64_t done_index)
{
    while (g_next_done <= done_index) {
        struct pollfd p = {.fd = seglog_writer_fd(w), .events = POLLIN};
        cr_assert_geq(poll(&p, 1, 5000), 1, "writer completes within 5 s");
        seglog_writer_poll(w);
        /* Reads on the loop thread while the writer works. */
        uint64_t last = seglog_last_index(g_log);
        if (last >= 1) {
            uint8_t buf[T_MAX_RECORD];
            struct seglog_entry e;
            cr_assert_eq(seglog_read(g_log, last, &e, buf, sizeof buf), CMQ_OK);
        }
    }
}

#define JOBS 2000

Test(writer, many_submissions_share_few_fsyncs)
{
    g_log = t_open();
    g_next_done = 1;
    g_status = CMQ_OK;
    struct seglog_writer *w;
    cr_assert_eq(seglog_writer_start(g_log, JOBS, &w), CMQ_OK);
    struct job *jobs = calloc(JOBS, sizeof *jobs);
    for (uint64_t i = 0; i < JOBS; i++) {
        job_init(&jobs[i], i + 1, 1);
        cr_assert_eq(seglog_writer_submit(w, &jobs[i].req), CMQ_OK);
    }
    loop_until(w, JOBS);
    struct seglog_writer_stats ws;
    struct seglog_stats ls;
    seglog_writer_stats(w, &ws);
    seglog_stats(g_log, &ls);
    cr_assert_eq(ws.submitted, JOBS);
    cr_assert_eq(ws.completed, JOBS);
    cr_assert_lt(ls.syncs, JOBS / 4, "coalesced: %" PRIu64 " fsyncs for %d requests", ls.syncs,
                 JOBS);
    cr_log_info("%d requests, %" PRIu64 " batches, %" PRIu64 " fsyncs", JOBS, ws.batches, ls.syncs);
    seglog_writer_stop(w);
    cr_assert_eq(seglog_durable_index(g_log), JOBS);
    seglog_close(g_log);
    free(jobs);
    g_log = t_open();
    assert_range(g_log, 1, JOBS, 1);
    seglog_close(g_log);
}

/* Several producer threads; a lock makes "take the next index and submit"
 * atomic, as a Raft leader's proposal path would. */
static pthread_mutex_t g_prod_mu = PTHREAD_MUTEX_INITIALIZER;
static uint64_t g_prod_next;
static struct job *g_jobs;
static struct seglog_writer *g_w;

static void *producer(void *arg)
{
    (void)arg;
    for (;;) {
        pthread_mutex_lock(&g_prod_mu);
        uint64_t i = g_prod_next;
        if (i > JOBS) {
            pthread_mutex_unlock(&g_prod_mu);
            return NULL;
        }
        job_init(&g_jobs[i - 1], i, 1 + i / 500);
        int st = seglog_writer_submit(g_w, &g_jobs[i - 1].req);
        if (st == CMQ_OK)
            g_prod_next++;
        pthread_mutex_unlock(&g_prod_mu);
        if (st != CMQ_OK) {
            cr_assert_eq(st, CMQ_ELIMIT);
            sched_yield();
        }
    }
}

Test(writer, concurrent_producers_complete_in_order_on_the_loop)
{
    g_log = t_open();
    g_next_done = 1;
    g_status = CMQ_OK;
    g_prod_next = 1;
    g_jobs = calloc(JOBS, sizeof *g_jobs);
    cr_assert_eq(seglog_writer_start(g_log, 64, &g_w), CMQ_OK);
    pthread_t th[4];
    for (int k = 0; k < 4; k++)
        pthread_create(&th[k], NULL, producer, NULL);
    loop_until(g_w, JOBS);
    for (int k = 0; k < 4; k++)
        pthread_join(th[k], NULL);
    struct seglog_stats ls;
    seglog_stats(g_log, &ls);
    cr_assert_lt(ls.syncs, JOBS, "coalesced: %" PRIu64 " fsyncs", ls.syncs);
    seglog_writer_stop(g_w);
    for (uint64_t i = 1; i <= JOBS; i++)
        assert_entry(g_log, i, 1 + i / 500);
    seglog_close(g_log);
    free(g_jobs);
}

Test(writer, truncation_and_hard_state_go_through_the_writer)
{
    g_log = t_open();
    struct seglog_writer *w;
    cr_assert_eq(seglog_writer_start(g_log, 16, &w), CMQ_OK);
    g_status = CMQ_OK;
    struct job a[10];
    g_next_done = 1;
    for (uint64_t i = 0; i < 10; i++) {
        job_init(&a[i], i + 1, 1);
        cr_assert_eq(seglog_writer_submit(w, &a[i].req), CMQ_OK);
    }
    loop_until(w, 10);
    /* A new leader's entries replace 6..10. */
    struct job b;
    job_init(&b, 6, 2);
    b.req.truncate_from = 6;
    struct seglog_hardstate hs = {.term = 2, .vote = 3, .commit = 5};
    b.req.hardstate = &hs;
    g_next_done = 6;
    cr_assert_eq(seglog_writer_submit(w, &b.req), CMQ_OK);
    loop_until(w, 6);
    seglog_writer_stop(w);
    cr_assert_eq(seglog_last_index(g_log), 6);
    assert_range(g_log, 1, 5, 1);
    assert_entry(g_log, 6, 2);
    seglog_close(g_log);
    g_log = t_open();
    struct seglog_hardstate back;
    cr_assert_eq(seglog_hardstate_load(g_log, &back), CMQ_OK);
    cr_assert_eq(memcmp(&hs, &back, sizeof hs), 0);
    cr_assert_eq(seglog_last_index(g_log), 6);
    seglog_close(g_log);
}

static int g_count;
static void count_done(struct seglog_write_req *req, int status)
{
    (void)req;
    cr_assert_eq(status, CMQ_OK);
    g_count++;
}

Test(writer, pending_requests_are_bounded_and_stop_drains)
{
    g_log = t_open();
    struct seglog_writer *w;
    cr_assert_eq(seglog_writer_start(g_log, 2, &w), CMQ_OK);
    struct job j[3];
    for (uint64_t i = 0; i < 3; i++) {
        job_init(&j[i], i + 1, 1);
        j[i].req.done = count_done;
    }
    g_count = 0;
    cr_assert_eq(seglog_writer_submit(w, &j[0].req), CMQ_OK);
    cr_assert_eq(seglog_writer_submit(w, &j[1].req), CMQ_OK);
    cr_assert_eq(seglog_writer_submit(w, &j[2].req), CMQ_ELIMIT);
    struct seglog_write_req bad = {0};
    cr_assert_eq(seglog_writer_submit(w, &bad), CMQ_EINVAL, "a request needs a callback");
    seglog_writer_stop(w); /* finishes and runs both callbacks here */
    cr_assert_eq(g_count, 2);
    cr_assert_eq(seglog_durable_index(g_log), 2);
    seglog_close(g_log);
}

Test(writer, a_failed_append_reports_its_status)
{
    g_log = t_open();
    struct seglog_writer *w;
    cr_assert_eq(seglog_writer_start(g_log, 4, &w), CMQ_OK);
    struct job j;
    job_init(&j, 5, 1); /* the log is empty: index 5 does not continue it */
    g_next_done = 5;
    g_status = CMQ_EINVAL;
    cr_assert_eq(seglog_writer_submit(w, &j.req), CMQ_OK);
    loop_until(w, 5);
    seglog_writer_stop(w);
    cr_assert_eq(seglog_last_index(g_log), 0);
    seglog_close(g_log);
}

static int g_snap_done;
static void snap_done(struct seglog_write_req *req, int status)
{
    (void)req;
    cr_assert_eq(status, CMQ_OK);
    cr_assert_eq(g_next_done, 6, "after the five earlier requests");
    g_snap_done = 1;
}

Test(writer, a_snapshot_reset_goes_through_the_writer_in_order)
{
    g_log = t_open();
    struct seglog_writer *w;
    cr_assert_eq(seglog_writer_start(g_log, 16, &w), CMQ_OK);
    g_status = CMQ_OK;
    struct job a[5], b;
    g_next_done = 1;
    g_snap_done = 0;
    for (uint64_t i = 0; i < 5; i++) {
        job_init(&a[i], i + 1, 1);
        cr_assert_eq(seglog_writer_submit(w, &a[i].req), CMQ_OK);
    }
    /* Queued behind them: install a snapshot at 100, then append 101. */
    job_init(&b, 101, 3);
    b.req.reset_next = 101;
    b.req.truncate_from = 101;
    b.req.done = snap_done;
    cr_assert_eq(seglog_writer_submit(w, &b.req), CMQ_OK);
    while (!g_snap_done) {
        struct pollfd p = {.fd = seglog_writer_fd(w), .events = POLLIN};
        cr_assert_geq(poll(&p, 1, 5000), 1);
        seglog_writer_poll(w);
    }
    seglog_writer_stop(w);
    cr_assert_eq(seglog_first_index(g_log), 101);
    cr_assert_eq(seglog_last_index(g_log), 101);
    assert_entry(g_log, 101, 3);
    seglog_close(g_log);
}

static int g_st[3];
static void record_done(struct seglog_write_req *req, int status)
{
    g_st[(uintptr_t)req->user] = status + 100;
}

Test(writer, a_bad_request_in_a_batch_fails_alone)
{
    g_log = t_open();
    struct seglog_writer *w;
    cr_assert_eq(seglog_writer_start(g_log, 8, &w), CMQ_OK);
    static uint8_t b[16];
    struct seglog_entry e[3] = {{.term = 1, .index = 1, .len = 16, .data = b},
                                {.term = 1, .index = 5, .len = 16, .data = b},
                                {.term = 1, .index = 2, .len = 16, .data = b}};
    struct seglog_write_req r[3];
    memset(g_st, 0, sizeof g_st);
    for (uintptr_t k = 0; k < 3; k++) {
        r[k] = (struct seglog_write_req){.entries = &e[k], .n = 1, .done = record_done,
                                         .user = (void *)k};
        cr_assert_eq(seglog_writer_submit(w, &r[k]), CMQ_OK);
    }
    seglog_writer_stop(w);
    cr_assert_eq(g_st[0], 100 + CMQ_OK);
    cr_assert_eq(g_st[1], 100 + CMQ_EINVAL);
    cr_assert_eq(g_st[2], 100 + CMQ_OK);
    cr_assert_eq(seglog_last_index(g_log), 2);
    seglog_close(g_log);
}

static _Atomic int g_stop_reader;
static _Atomic long g_read_ok, g_read_bad;

static void *reader_thread(void *arg)
{
    (void)arg;
    uint8_t buf[T_MAX_RECORD], want[256];
    uint64_t n = 0;
    while (!g_stop_reader) {
        uint64_t f = seglog_first_index(g_log), l = seglog_last_index(g_log);
        if (l < f)
            continue;
        uint64_t i = f + (n++ * 7919) % (l - f + 1);
        struct seglog_entry e;
        int st = seglog_read(g_log, i, &e, buf, sizeof buf);
        if (st == CMQ_ENOTFOUND)
            continue; /* compacted meanwhile */
        t_fill(want, i, 1 + i / 500, t_len(i));
        if (st == CMQ_OK && e.len == t_len(i) && memcmp(buf, want, e.len) == 0)
            g_read_ok++;
        else
            g_read_bad++;
    }
    return NULL;
}

Test(writer, readers_on_other_threads_during_writes_and_compaction)
{
    g_log = t_open();
    g_next_done = 1;
    g_status = CMQ_OK;
    g_prod_next = 1;
    g_stop_reader = 0;
    g_read_ok = g_read_bad = 0;
    g_jobs = calloc(JOBS, sizeof *g_jobs);
    cr_assert_eq(seglog_writer_start(g_log, 64, &g_w), CMQ_OK);
    pthread_t prod, rd[2];
    for (int k = 0; k < 2; k++)
        pthread_create(&rd[k], NULL, reader_thread, NULL);
    pthread_create(&prod, NULL, producer, NULL);
    while (g_next_done <= JOBS) {
        struct pollfd p = {.fd = seglog_writer_fd(g_w), .events = POLLIN};
        cr_assert_geq(poll(&p, 1, 5000), 1);
        seglog_writer_poll(g_w);
        uint64_t l = seglog_last_index(g_log);
        if (l > 300)
            cr_assert_eq(seglog_compact_prefix(g_log, l - 300, NULL), CMQ_OK);
    }
    pthread_join(prod, NULL);
    g_stop_reader = 1;
    for (int k = 0; k < 2; k++)
        pthread_join(rd[k], NULL);
    seglog_writer_stop(g_w);
    cr_assert_eq(g_read_bad, 0, "%ld bad reads", (long)g_read_bad);
    cr_assert_gt(g_read_ok, 0);
    seglog_close(g_log);
    free(g_jobs);
}

/* A job request runs on the writer thread after its batch is durable, in
 * submission order, and its return is the request's status. */
static pthread_t g_loop_thread;
static uint64_t g_job_saw_durable;
static int g_job_done_status;

static int job_fn(struct seglog_write_req *req, struct seglog *log)
{
    (void)req;
    cr_assert(!pthread_equal(pthread_self(), g_loop_thread), "jobs run on the writer thread");
    g_job_saw_durable = seglog_durable_index(log);
    return seglog_compact_prefix(log, 0, NULL) == CMQ_OK ? CMQ_ECORRUPT : CMQ_EIO;
}

static void job_done(struct seglog_write_req *req, int status)
{
    (void)req;
    g_job_done_status = status;
}

Test(writer, a_job_runs_after_its_batch_is_durable)
{
    g_log = t_open();
    g_next_done = 1;
    g_status = CMQ_OK;
    g_loop_thread = pthread_self();
    struct seglog_writer *w;
    cr_assert_eq(seglog_writer_start(g_log, 64, &w), CMQ_OK);
    struct job jobs[20];
    for (uint64_t i = 0; i < 20; i++) {
        job_init(&jobs[i], i + 1, 1);
        cr_assert_eq(seglog_writer_submit(w, &jobs[i].req), CMQ_OK);
    }
    struct seglog_write_req jr = {.job = job_fn, .done = job_done};
    g_job_done_status = -1;
    cr_assert_eq(seglog_writer_submit(w, &jr), CMQ_OK);
    loop_until(w, 20);
    while (g_job_done_status == -1) {
        struct pollfd p = {.fd = seglog_writer_fd(w), .events = POLLIN};
        cr_assert_geq(poll(&p, 1, 5000), 1);
        seglog_writer_poll(w);
    }
    cr_assert_eq(g_job_saw_durable, 20, "everything before the job was durable");
    cr_assert_eq(g_job_done_status, CMQ_ECORRUPT, "the job's status is the request's");
    seglog_writer_stop(w);
    seglog_close(g_log);
}
