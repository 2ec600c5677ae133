/* test_trace.c: the message trace, from the state machine's events (qsm.h
 * qsm_set_tracer) through the derived index file (trace.c) to a query by msg
 * id.  Three replicas apply every entry; each writes its own index, and they
 * must answer alike (the index follows from the log). */
#include "qsm_fixture.h"
#include "trace.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define Q 1
#define Q2 2
#define SEC 1000u

static char dirs[FX_REPLICAS_MAX][64];
static struct trace_log *T[FX_REPLICAS_MAX];

static void open_traces(void)
{
    for (int i = 0; i < F.replicas; i++) {
        cr_assert_eq(trace_open(dirs[i], &T[i]), CMQ_OK);
        struct qsm_tracer t = trace_tracer(T[i]);
        qsm_set_tracer(F.q[i], &t);
    }
}

static void setup(void)
{
    fx_setup(3);
    for (int i = 0; i < F.replicas; i++) {
        snprintf(dirs[i], sizeof dirs[i], "/tmp/cmq-trace-test-XXXXXX");
        cr_assert_not_null(mkdtemp(dirs[i]));
    }
    open_traces();
}

static void teardown(void)
{
    for (int i = 0; i < F.replicas; i++) {
        trace_close(T[i]);
        char cmd[256];
        snprintf(cmd, sizeof cmd, "rm -rf %s", dirs[i]);
        cr_assert_eq(system(cmd), 0);
    }
    fx_teardown();
}

TestSuite(trace, .init = setup, .fini = teardown);

static cmq_TraceEvent ev[TRACE_EVENTS_MAX];

/* Queries every replica; they must agree.  Returns replica 0's count. */
static size_t query(uint64_t msg_id, uint64_t qid)
{
    size_t n0 = 0;
    for (int i = 0; i < F.replicas; i++) {
        static cmq_TraceEvent other[TRACE_EVENTS_MAX];
        bool trunc;
        size_t n = trace_query(T[i], msg_id, qid, false, i ? other : ev, TRACE_EVENTS_MAX, &trunc);
        cr_assert(!trunc);
        if (i == 0) {
            n0 = n;
        } else {
            cr_assert_eq(n, n0, "replica %d", i);
            cr_assert_arr_eq(other, ev, n * sizeof *ev, "replica %d", i);
        }
    }
    return n0;
}

static uint64_t send_from(uint64_t qid, const char *body, const char *addr, uint32_t delay)
{
    cmq_StorageCommand c = cmq_StorageCommand_init_zero;
    c.which_cmd = cmq_StorageCommand_send_tag;
    fx_send_request(&c.cmd.send, qid, &body, 1, delay, NULL);
    snprintf(c.cmd.send.messages[0].client_addr, sizeof c.cmd.send.messages[0].client_addr,
             "%s", addr);
    cr_assert_eq(fx_apply(&c), CMQ_OK);
    return F.res.msg_ids[0];
}

static struct qsm_delivery receive_by(uint64_t qid, const char *addr, uint32_t vis)
{
    cmq_StorageCommand c = cmq_StorageCommand_init_zero;
    c.which_cmd = cmq_StorageCommand_receive_tag;
    c.cmd.receive.queue_id = qid;
    c.cmd.receive.count = 1;
    c.cmd.receive.visibility_timeout_s = vis;
    snprintf(c.cmd.receive.consumer_addr, sizeof c.cmd.receive.consumer_addr, "%s", addr);
    cr_assert_eq(fx_apply(&c), CMQ_OK);
    return F.res.delivered[0];
}

Test(trace, send_receive_expire_receive_delete)
{
    cr_assert_eq(fx_create_default(Q), CMQ_OK);
    send_from(Q, "noise", "10.0.0.9:1", 0);
    uint64_t t0 = F.now_ms;
    uint64_t id = send_from(Q, "traced", "10.0.0.1:5000", 0);
    struct qsm_delivery n1 = receive_by(Q, "10.0.0.2:6000", 5); /* "noise" first */
    fx_delete1(Q, n1.receipt_handle);
    fx_sleep_ms(SEC);
    struct qsm_delivery d1 = receive_by(Q, "10.0.0.2:6000", 5);
    cr_assert_eq(d1.msg_id, id);
    fx_sleep_ms(6 * SEC);
    cr_assert_eq(fx_tick(), CMQ_OK); /* the lease expires */
    fx_sleep_ms(SEC);
    struct qsm_delivery d2 = receive_by(Q, "10.0.0.3:7000", 5);
    cr_assert_eq(d2.msg_id, id);
    cr_assert_eq(fx_delete1(Q, d2.receipt_handle), CMQ_OK);
    trace_flush(T[0]);

    cr_assert_eq(query(id, Q), 5);
    cr_assert_eq(ev[0].event, QSM_EV_SENT);
    cr_assert_eq(ev[0].time_ms, t0);
    cr_assert_str_eq(ev[0].addr, "10.0.0.1:5000");
    cr_assert_eq(ev[0].index, qsm_id_index(id));
    cr_assert_eq(ev[1].event, QSM_EV_DELIVERED);
    cr_assert_eq(ev[1].receipt_handle, d1.receipt_handle);
    cr_assert_str_eq(ev[1].addr, "10.0.0.2:6000");
    cr_assert_eq(ev[1].due_ms, d1.next_visible_ms);
    cr_assert_eq(ev[2].event, QSM_EV_LEASE_EXPIRED);
    cr_assert_eq(ev[2].time_ms, d1.next_visible_ms, "the lease's end, not the Tick's time");
    cr_assert_eq(ev[2].receipt_handle, d1.receipt_handle);
    cr_assert_eq(ev[3].event, QSM_EV_DELIVERED);
    cr_assert_str_eq(ev[3].addr, "10.0.0.3:7000");
    cr_assert_eq(ev[4].event, QSM_EV_DELETED);
    cr_assert_eq(ev[4].receipt_handle, d2.receipt_handle);
    for (int i = 1; i < 5; i++)
        cr_assert_gt(ev[i].index, ev[i - 1].index, "log order");
    cr_assert_eq(query(id, Q2), 0, "another queue's message shows nothing");
    cr_assert_eq(query(id + 1, Q), 0, "an unknown id shows nothing");
}

Test(trace, delayed_rewound_and_dead_lettered)
{
    cmq_StorageQueueAttributes a = cmq_StorageQueueAttributes_init_zero;
    a.has_rewind_s = true;
    a.rewind_s = 3600;
    a.has_dead_letter_policy = true;
    a.dead_letter_policy.dead_letter_queue_id = 77;
    a.dead_letter_policy.max_receive_count = 1;
    a.has_visibility_timeout_s = true;
    a.visibility_timeout_s = 1;
    cr_assert_eq(fx_create(Q, &a), CMQ_OK);
    uint64_t t0 = F.now_ms;
    uint64_t id = send_from(Q, "later", "c:1", 2);
    fx_sleep_ms(3 * SEC);
    struct qsm_delivery d = receive_by(Q, "r:1", 0);
    cr_assert_eq(d.msg_id, id);
    cr_assert_eq(fx_delete1(Q, d.receipt_handle), CMQ_OK);
    cr_assert_eq(fx_rewind(Q, t0 / 1000), CMQ_OK);
    d = receive_by(Q, "r:2", 0);
    cr_assert_eq(d.msg_id, id, "re-exposed by the rewind");
    fx_sleep_ms(2 * SEC);
    cr_assert_eq(fx_receive(Q, 1, 0), CMQ_EEMPTY);
    cr_assert_eq(F.res.n_dlq, 1);
    size_t n = query(id, Q);
    uint32_t want[] = {QSM_EV_SENT, QSM_EV_DELAYED, QSM_EV_VISIBLE, QSM_EV_DELIVERED,
                       QSM_EV_DELETED, QSM_EV_REWOUND, QSM_EV_DELIVERED, QSM_EV_LEASE_EXPIRED,
                       QSM_EV_DEAD_LETTERED};
    cr_assert_eq(n, sizeof want / sizeof want[0]);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(ev[i].event, want[i], "event %zu: %u", i, ev[i].event);
    cr_assert_eq(ev[1].due_ms, t0 + 2 * SEC);
    cr_assert_eq(ev[5].rewind_ms, (t0 / 1000) * 1000);
    cr_assert_eq(ev[8].dlq_queue_id, 77);
}

Test(trace, a_restarted_replica_rebuilds_the_same_index_from_the_log)
{
    cr_assert_eq(fx_create_default(Q), CMQ_OK);
    uint64_t id = send_from(Q, "m", "a:1", 0);
    struct qsm_delivery d = receive_by(Q, "b:1", 5);
    cr_assert_eq(fx_delete1(Q, d.receipt_handle), CMQ_OK);
    cr_assert_eq(query(id, Q), 3);
    /* replica 2 "restarts": a fresh state machine replays the whole log into
     * its existing index, which must not grow duplicates */
    trace_close(T[2]);
    cr_assert_eq(trace_open(dirs[2], &T[2]), CMQ_OK);
    struct qsm_reader rd = {fx_log_read, &F.log};
    struct qsm *fresh;
    cr_assert_eq(qsm_create(FX_PARTITION, &rd, &fresh), CMQ_OK);
    struct qsm_tracer t = trace_tracer(T[2]);
    qsm_set_tracer(fresh, &t);
    for (uint64_t i = 1; i <= F.log.n; i++) {
        struct qsm_result res = {.skip_bodies = true};
        qsm_apply(fresh, i, 1, F.log.buf[i], F.log.len[i], &res);
        qsm_result_release(&res);
    }
    qsm_destroy(F.q[2]);
    F.q[2] = fresh;
    cr_assert_eq(query(id, Q), 3, "the same events, once");
}
