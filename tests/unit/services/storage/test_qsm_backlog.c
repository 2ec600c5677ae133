/* test_qsm_backlog.c: memory and read cost of the backlog design
 * (docs/queue-state-machine.md, "Finding the next message").
 *
 * Memory: a 1,000,000-message backlog must not grow the state machine (it
 * holds spans, not messages).  Cost: how many log entries the scan reads per
 * delivered message when queues share a partition log; the figures are
 * printed (--verbose) and bounded loosely so a regression fails. */
#include "qsm_fixture.h"

#include <string.h>

TestSuite(qsm_backlog, .init = NULL, .fini = NULL);

static double reads_per_msg(uint64_t qid, uint64_t expect)
{
    uint64_t r0 = qsm_entry_reads(F.q[0]);
    int n = drain(qid, NULL, 0, true);
    cr_assert_eq((uint64_t)n, expect);
    return (double)(qsm_entry_reads(F.q[0]) - r0) / (double)n;
}

Test(qsm_backlog, a_million_message_backlog_keeps_the_state_machine_small, .timeout = 600)
{
    fx_setup(1);
    fx_create_default(1);
    fx_create_default(2);
    size_t empty = qsm_memory_bytes(F.q[0]);
    const char *b[16];
    for (int i = 0; i < 16; i++)
        b[i] = "0123456789abcdef0123456789abcdef"; /* bodies live in the log, not in the qsm */
    for (int i = 0; i < 1000000 / 16; i++) {
        cr_assert_eq(fx_send(1, b, 16, 0, NULL), CMQ_OK);
        if (i % 4 == 0)
            cr_assert_eq(fx_send(2, b, 1, 0, NULL), CMQ_OK); /* another queue in between */
    }
    struct qsm_stats st;
    qsm_stats(F.q[0], 1, &st);
    cr_assert_eq(st.active, 1000000);
    size_t full = qsm_memory_bytes(F.q[0]);
    cr_log_info("memory: %zu bytes empty, %zu bytes with a 1,000,000-message backlog (%u spans)",
                empty, full, st.spans);
    size_t bound = empty + 2 * QSM_SPANS_MAX * 48 + 64 * 1024;
    cr_assert_lt(full, bound, "O(spans), not O(backlog): %zu bytes", full);

    /* consume 100,000 with a steady in-flight window, then check again */
    uint64_t r0 = qsm_entry_reads(F.q[0]);
    uint64_t handles[16];
    for (int i = 0; i < 100000 / 16; i++) {
        cr_assert_eq(fx_receive(1, 16, 0), CMQ_OK);
        for (uint32_t k = 0; k < F.res.n_delivered; k++)
            handles[k] = F.res.delivered[k].receipt_handle;
        cr_assert_eq(fx_delete(1, handles, (int)F.res.n_delivered), CMQ_OK);
    }
    double rpm = (double)(qsm_entry_reads(F.q[0]) - r0) / 100000.0;
    size_t after = qsm_memory_bytes(F.q[0]);
    cr_log_info("after 100,000 receive+delete: %zu bytes; %.3f entry reads per message "
                "(batches of 16, a second queue's entry every 4th)", after, rpm);
    cr_assert_lt(after, bound);
    cr_assert_lt(rpm, 0.2);
    /* 1,000 in flight */
    for (int i = 0; i < 1000 / 16; i++)
        cr_assert_eq(fx_receive(1, 16, 0), CMQ_OK);
    size_t inflight = qsm_memory_bytes(F.q[0]);
    cr_log_info("with 992 leases: %zu bytes (%.0f bytes per lease)", inflight,
                (double)(inflight - after) / 992.0);
    fx_teardown();
}

Test(qsm_backlog, scan_cost_when_queues_share_the_log, .timeout = 600)
{
    enum { N = 20000 };
    /* a: one queue alone */
    fx_setup(1);
    fx_create_default(1);
    for (int i = 0; i < N; i++)
        send_ok(1, "m");
    double alone = reads_per_msg(1, N);
    fx_teardown();

    /* b: two queues interleaved 1:1 */
    fx_setup(1);
    fx_create_default(1);
    fx_create_default(2);
    for (int i = 0; i < N; i++) {
        send_ok(1, "m");
        send_ok(2, "m");
    }
    double pair = reads_per_msg(1, N);
    fx_teardown();

    /* c: a sparse queue (1 in 100 entries) next to a busy one */
    fx_setup(1);
    fx_create_default(1);
    fx_create_default(2);
    for (int i = 0; i < N * 10; i++) {
        send_ok(1, "busy");
        if (i % 100 == 0)
            send_ok(2, "sparse");
    }
    double sparse = reads_per_msg(2, N / 10);
    double busy = reads_per_msg(1, N * 10);
    fx_teardown();

    /* d: 10 queues round robin */
    fx_setup(1);
    for (uint64_t q = 1; q <= 10; q++)
        fx_create_default(q);
    for (int i = 0; i < N; i++)
        send_ok(1 + (uint64_t)(i % 10), "m");
    double ten = reads_per_msg(3, N / 10);
    fx_teardown();

    /* e: steady state, the consumer keeps up: S R D S R D ... */
    fx_setup(1);
    fx_create_default(1);
    uint64_t r0 = qsm_entry_reads(F.q[0]);
    for (int i = 0; i < N; i++) {
        send_ok(1, "m");
        struct qsm_delivery d = receive_one(1, 0);
        cr_assert_eq(fx_delete1(1, d.receipt_handle), CMQ_OK);
    }
    double steady = (double)(qsm_entry_reads(F.q[0]) - r0) / N;
    fx_teardown();

    cr_log_info("entry reads per delivered message: alone %.2f, 1:1 pair %.2f, 10 round-robin %.2f, "
                "sparse 1:100 %.2f (its busy neighbour %.2f), steady send/receive/delete %.2f",
                alone, pair, ten, sparse, busy, steady);
    cr_assert_lt(alone, 1.01);
    cr_assert_lt(steady, 1.01);
    cr_assert_lt(pair, 2.01);
    cr_assert_lt(ten, 10.01);
    cr_assert_lt(sparse, 101.0);
}
