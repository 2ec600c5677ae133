/* Transaction (half) messages in the queue state machine: invisible until a
 * TxnConfirm commits them, dropped by a rollback, check-backs listed by Ticks
 * and a rollback after QSM_TXN_QUERIES_MAX of them, all kept in snapshots. */
#include "qsm_fixture.h"

#include <pb_encode.h>
#include <stdlib.h>
#include <string.h>

struct sbuf {
    uint8_t *p;
    size_t n;
};

static int sink(void *arg, const void *buf, size_t len)
{
    struct sbuf *s = arg;
    s->p = realloc(s->p, s->n + len);
    memcpy(s->p + s->n, buf, len);
    s->n += len;
    return 0;
}

static struct sbuf snap(struct qsm *q)
{
    struct sbuf s = {0};
    cr_assert_eq(qsm_snapshot_write(q, sink, &s), CMQ_OK);
    return s;
}

#define Q 11

/* Sends n half messages (check after check_ms); returns the first id. */
static uint64_t send_half(const char *const *bodies, int n, uint32_t check_ms, int *rc_out)
{
    cmq_StorageCommand c = cmq_StorageCommand_init_zero;
    c.which_cmd = cmq_StorageCommand_send_tag;
    fx_send_request(&c.cmd.send, Q, bodies, n, 0, NULL);
    for (int i = 0; i < n; i++)
        c.cmd.send.messages[i].txn_check_ms = check_ms;
    int rc = fx_apply(&c);
    if (rc_out)
        *rc_out = rc;
    else
        cr_assert_eq(rc, CMQ_OK);
    return rc == CMQ_OK ? F.res.msg_ids[0] : 0;
}

static uint64_t half1(const char *body, uint32_t check_ms)
{
    const char *b[1] = {body};
    return send_half(b, 1, check_ms, NULL);
}

static int confirm(uint64_t id, uint32_t state)
{
    cmq_StorageCommand c = cmq_StorageCommand_init_zero;
    c.which_cmd = cmq_StorageCommand_txn_confirm_tag;
    c.cmd.txn_confirm.queue_id = Q;
    c.cmd.txn_confirm.items_count = 1;
    c.cmd.txn_confirm.items[0].msg_id = id;
    c.cmd.txn_confirm.items[0].state = state;
    int rc = fx_apply(&c);
    cr_assert_eq(rc, CMQ_OK);
    cr_assert_eq(F.res.n_statuses, 1);
    return F.res.statuses[0];
}

static uint64_t half_count(void)
{
    struct qsm_stats st;
    cr_assert_eq(qsm_stats(F.q[0], Q, &st), CMQ_OK);
    return st.half;
}

static void setup(void)
{
    fx_setup(3);
    cr_assert_eq(fx_create_default(Q), CMQ_OK);
}

TestSuite(qsm_txn, .init = setup, .fini = fx_teardown);

Test(qsm_txn, a_half_message_is_invisible_until_committed_then_delivered)
{
    uint64_t before = send_ok(Q, "plain-1");
    uint64_t h = half1("half", 5000);
    uint64_t after = send_ok(Q, "plain-2");
    cr_assert_eq(half_count(), 1);
    assert_visible(Q, before);
    assert_visible(Q, after);
    assert_empty(Q);
    fx_sleep_ms(1000);
    assert_empty(Q);
    cr_assert_eq(confirm(h, 1), CMQ_OK);
    cr_assert_eq(half_count(), 0);
    struct qsm_delivery d = receive_one(Q, h);
    cr_assert_eq(d.dequeue_count, 1);
    assert_empty(Q);
    /* a second confirm (late or repeated) is ignored */
    cr_assert_eq(confirm(h, 2), CMQ_ESTALE);
    assert_replicas_identical();
}

Test(qsm_txn, a_rollback_drops_it_and_an_unknown_id_is_ignored)
{
    uint64_t h = half1("half", 5000);
    cr_assert_eq(confirm(h, 2), CMQ_OK);
    cr_assert_eq(half_count(), 0);
    assert_empty(Q);
    cr_assert_eq(confirm(h, 1), CMQ_ESTALE, "a rolled-back message cannot be committed");
    cr_assert_eq(confirm(qsm_id_make(FX_PARTITION, 999999, 0), 1), CMQ_ESTALE);
    cr_assert_eq(confirm(qsm_id_make(FX_PARTITION + 1, 3, 0), 1), CMQ_ESTALE);
    uint64_t p = send_ok(Q, "plain");
    cr_assert_eq(confirm(p, 2), CMQ_ESTALE, "a normal message is not a half message");
    assert_visible(Q, p);
    fx_sleep_ms(100000);
    cr_assert_eq(fx_tick(), CMQ_OK);
    cr_assert_eq(F.res.n_txn, 0);
    assert_replicas_identical();
}

Test(qsm_txn, a_batch_is_confirmed_per_item)
{
    const char *b[3] = {"a", "b", "c"};
    uint64_t first = send_half(b, 3, 2000, NULL);
    uint64_t ids[3] = {first, F.res.msg_ids[1], F.res.msg_ids[2]};
    cr_assert_eq(F.res.n_msg_ids, 3);
    cmq_StorageCommand c = cmq_StorageCommand_init_zero;
    c.which_cmd = cmq_StorageCommand_txn_confirm_tag;
    c.cmd.txn_confirm.queue_id = Q;
    c.cmd.txn_confirm.items_count = 2;
    c.cmd.txn_confirm.items[0] = (cmq_TxnConfirmItem){.msg_id = ids[2], .state = 1};
    c.cmd.txn_confirm.items[1] = (cmq_TxnConfirmItem){.msg_id = ids[0], .state = 2};
    cr_assert_eq(fx_apply(&c), CMQ_OK);
    cr_assert_eq(F.res.statuses[0], CMQ_OK);
    cr_assert_eq(F.res.statuses[1], CMQ_OK);
    assert_visible(Q, ids[2]);
    assert_empty(Q);
    cr_assert_eq(half_count(), 1);
}

Test(qsm_txn, ticks_list_check_backs_on_schedule_and_roll_back_after_the_last)
{
    uint64_t h = half1("half", 5000);
    cr_assert_eq(qsm_next_due_ms(F.q[0]), F.now_ms + 5000);
    fx_sleep_ms(4999);
    cr_assert_eq(fx_tick(), CMQ_OK);
    cr_assert_eq(F.res.n_txn, 0);
    for (uint32_t attempt = 1; attempt <= QSM_TXN_QUERIES_MAX; attempt++) {
        fx_sleep_ms(attempt == 1 ? 1 : 5000);
        cr_assert(qsm_next_due_ms(F.q[0]) <= F.now_ms);
        cr_assert_eq(fx_tick(), CMQ_OK);
        cr_assert_eq(F.res.n_txn, 1, "attempt %u", attempt);
        cr_assert_eq(F.res.txn[0].msg_id, h);
        cr_assert_eq(F.res.txn[0].queue_id, Q);
        cr_assert_eq(F.res.txn[0].attempt, attempt);
        cr_assert_eq(qsm_next_due_ms(F.q[0]), F.now_ms + 5000);
        cr_assert_eq(fx_tick(), CMQ_OK);
        cr_assert_eq(F.res.n_txn, 0, "asked once per interval");
        assert_empty(Q);
    }
    fx_sleep_ms(5000);
    cr_assert_eq(fx_tick(), CMQ_OK);
    cr_assert_eq(F.res.n_txn, 0);
    cr_assert_eq(half_count(), 0, "rolled back after the last unanswered check-back");
    cr_assert_eq(confirm(h, 1), CMQ_ESTALE);
    assert_empty(Q);
    assert_replicas_identical();
}

Test(qsm_txn, a_check_back_answered_by_a_commit_delivers_it)
{
    uint64_t h = half1("half", 3000);
    fx_sleep_ms(3000);
    cr_assert_eq(fx_tick(), CMQ_OK);
    cr_assert_eq(F.res.n_txn, 1);
    cr_assert_eq(confirm(h, 1), CMQ_OK);
    assert_visible(Q, h);
}

Test(qsm_txn, invalid_half_messages_are_refused_and_the_queue_bound_is_checked)
{
    cmq_StorageCommand c = cmq_StorageCommand_init_zero;
    c.which_cmd = cmq_StorageCommand_send_tag;
    const char *b[1] = {"x"};
    fx_send_request(&c.cmd.send, Q, b, 1, 5, NULL);
    c.cmd.send.messages[0].txn_check_ms = 1000;
    cr_assert_eq(fx_apply(&c), CMQ_EINVAL, "a half message cannot be delayed");
    /* qsm_check_send: CMQ_ELIMIT when the queue holds QSM_TXN_HALF_MAX */
    uint8_t buf[256];
    cmq_SendRequest sr;
    fx_send_request(&sr, Q, b, 1, 0, NULL);
    sr.messages[0].txn_check_ms = 1000;
    pb_ostream_t os = pb_ostream_from_buffer(buf, sizeof buf);
    cr_assert(pb_encode(&os, cmq_SendRequest_fields, &sr));
    cr_assert_eq(qsm_check_send(F.q[0], buf, os.bytes_written), CMQ_OK);
    for (int i = 0; i < QSM_TXN_HALF_MAX; i++)
        half1("h", 60000);
    cr_assert_eq(half_count(), QSM_TXN_HALF_MAX);
    cr_assert_eq(qsm_check_send(F.q[0], buf, os.bytes_written), CMQ_ELIMIT);
}

Test(qsm_txn, snapshot_round_trip_and_a_new_leader_replaying_reach_the_same_state)
{
    uint64_t a = half1("a", 2000);
    uint64_t b = half1("b", 2000);
    uint64_t c = half1("c", 2000);
    fx_sleep_ms(2000);
    cr_assert_eq(fx_tick(), CMQ_OK);
    cr_assert_eq(F.res.n_txn, 3);
    struct sbuf mid = snap(F.q[0]);
    uint64_t mid_index = F.log.n;
    uint64_t mid_due = qsm_next_due_ms(F.q[0]);

    /* a replica restored from the image writes it back unchanged */
    struct qsm *late;
    struct qsm_reader rd = {.read_entry = fx_log_read, .arg = &F.log};
    cr_assert_eq(qsm_create(FX_PARTITION, &rd, &late), CMQ_OK);
    cr_assert_eq(qsm_snapshot_read(late, mid.p, mid.n), CMQ_OK);
    struct sbuf again = snap(late);
    cr_assert_eq(again.n, mid.n);
    cr_assert_arr_eq(again.p, mid.p, mid.n, "write(read(s)) == s");
    cr_assert_eq(qsm_next_due_ms(late), mid_due);
    struct qsm_stats st;
    cr_assert_eq(qsm_stats(late, Q, &st), CMQ_OK);
    cr_assert_eq(st.half, 3);

    /* the old leader goes on: commit a, roll back b, c gets another check-back */
    cr_assert_eq(confirm(a, 1), CMQ_OK);
    cr_assert_eq(confirm(b, 2), CMQ_OK);
    fx_sleep_ms(2000);
    cr_assert_eq(fx_tick(), CMQ_OK);
    cr_assert_eq(F.res.n_txn, 1);
    cr_assert_eq(F.res.txn[0].msg_id, c);
    cr_assert_eq(F.res.txn[0].attempt, 2, "the attempt count survived the snapshot");

    /* the restored replica (a new leader) replays the same entries: same state */
    for (uint64_t i = mid_index + 1; i <= F.log.n; i++) {
        struct qsm_result r = {0};
        qsm_apply(late, i, 1, F.log.buf[i], F.log.len[i], &r);
        if (i == F.log.n) {
            cr_assert_eq(r.n_txn, 1);
            cr_assert_eq(r.txn[0].msg_id, c);
            cr_assert_eq(r.txn[0].attempt, 2);
        }
        qsm_result_release(&r);
    }
    struct sbuf x = snap(F.q[0]), y = snap(late);
    cr_assert_eq(x.n, y.n);
    cr_assert_arr_eq(x.p, y.p, x.n, "restored replica differs");
    cr_assert_eq(qsm_next_due_ms(late), qsm_next_due_ms(F.q[0]));
    assert_visible(Q, a);
    assert_empty(Q);
    free(mid.p);
    free(again.p);
    free(x.p);
    free(y.p);
    qsm_destroy(late);
}
