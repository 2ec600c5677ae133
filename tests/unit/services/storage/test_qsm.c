/* test_qsm.c: queue semantics of the state machine (services/storage/qsm.c),
 * written as specifications of shared/spec/cmq-http-api.md §6 and §9.
 * Every scenario runs on three replicas; the fixture checks after each entry
 * that they agree. */
#include "qsm_fixture.h"

#include <pb_encode.h>
#include <string.h>

static void setup(void)
{
    fx_setup(3);
}

static void teardown(void)
{
    assert_replicas_identical();
    fx_teardown();
}

TestSuite(qsm, .init = setup, .fini = teardown);

#define Q 1
#define Q2 2
#define SEC 1000u

static cmq_StorageQueueAttributes attrs(void)
{
    cmq_StorageQueueAttributes a = cmq_StorageQueueAttributes_init_zero;
    return a;
}

/* ---- §9.1 lifecycle ---- */

Test(qsm, a_sent_message_is_received_then_deleted)
{
    cr_assert_eq(fx_create_default(Q), CMQ_OK);
    uint64_t t0 = F.now_ms;
    uint64_t id = send_ok(Q, "hello");
    assert_counts(Q, 1, 0, 0);

    struct qsm_delivery d = receive_one(Q, id);
    cr_assert_eq(d.dequeue_count, 1);
    cr_assert_eq(d.enqueue_ms, t0);
    cr_assert_eq(d.first_dequeue_ms, t0);
    cr_assert_eq(d.next_visible_ms, t0 + 30 * SEC, "the queue's default visibilityTimeout is 30 s");
    cr_assert_eq(F.res.delivered[0].body_len, 5);
    cr_assert_arr_eq(F.res.delivered[0].body, "hello", 5);
    assert_counts(Q, 0, 1, 0);
    assert_empty(Q); /* concurrent consumers never get an inactive message */

    cr_assert_eq(fx_delete1(Q, d.receipt_handle), CMQ_OK);
    cr_assert_eq(F.res.statuses[0], CMQ_OK);
    assert_counts(Q, 0, 0, 0);
    assert_empty(Q);
}

Test(qsm, ids_name_partition_entry_and_slot)
{
    fx_create_default(Q);
    const char *b[3] = {"a", "b", "c"};
    cr_assert_eq(fx_send(Q, b, 3, 0, NULL), CMQ_OK);
    uint64_t index = F.log.n;
    for (uint32_t i = 0; i < 3; i++) {
        uint64_t id = F.res.msg_ids[i];
        cr_assert_eq(qsm_id_partition(id), FX_PARTITION);
        cr_assert_eq(qsm_id_index(id), index);
        cr_assert_eq(qsm_id_slot(id), i);
        cr_assert_eq(id, qsm_id_make(FX_PARTITION, index, i));
    }
    cr_assert_eq(fx_receive(Q, 3, 0), CMQ_OK);
    cr_assert_eq(F.res.n_delivered, 3);
    for (uint32_t i = 0; i < 3; i++) {
        cr_assert_eq(qsm_id_index(F.res.delivered[i].receipt_handle), F.log.n,
                     "a handle names the Receive entry");
        cr_assert_eq(qsm_id_slot(F.res.delivered[i].receipt_handle), i);
    }
}

Test(qsm, receive_delivers_in_send_order_and_batches_up_to_16)
{
    fx_create_default(Q);
    uint64_t ids[20];
    for (int i = 0; i < 20; i++)
        ids[i] = send_ok(Q, "m");
    cr_assert_eq(fx_receive(Q, 16, 0), CMQ_OK);
    cr_assert_eq(F.res.n_delivered, 16);
    for (int i = 0; i < 16; i++)
        cr_assert_eq(F.res.delivered[i].msg_id, ids[i]);
    cr_assert_eq(fx_receive(Q, 16, 0), CMQ_OK);
    cr_assert_eq(F.res.n_delivered, 4);
    cr_assert_eq(F.res.delivered[3].msg_id, ids[19]);
    cr_assert_eq(fx_receive(Q, 17, 0), CMQ_EINVAL, "numOfMsg is 1..16");
    cr_assert_eq(fx_receive(Q, 0, 0), CMQ_EINVAL);
}

Test(qsm, batch_delete_reports_each_handle)
{
    fx_create_default(Q);
    send_ok(Q, "a");
    send_ok(Q, "b");
    cr_assert_eq(fx_receive(Q, 2, 0), CMQ_OK);
    uint64_t h[3] = {F.res.delivered[0].receipt_handle, F.res.delivered[1].receipt_handle,
                     F.res.delivered[0].receipt_handle};
    cr_assert_eq(fx_delete(Q, h, 3), CMQ_OK, "some deleted: OK with per-handle statuses");
    cr_assert_eq(F.res.n_statuses, 3);
    cr_assert_eq(F.res.statuses[0], CMQ_OK);
    cr_assert_eq(F.res.statuses[1], CMQ_OK);
    cr_assert_eq(F.res.statuses[2], CMQ_ESTALE, "already used");
    cr_assert_eq(fx_delete(Q, h, 2), CMQ_OK, "all failed: still per handle (spec 6020 + errorList)");
    cr_assert_eq(F.res.n_statuses, 2);
    cr_assert_eq(F.res.statuses[0], CMQ_ESTALE);
    cr_assert_eq(F.res.statuses[1], CMQ_ESTALE);
    cr_assert_eq(fx_delete(99, h, 1), CMQ_ENOTFOUND);
    cr_assert_eq(fx_delete(Q, h, 0), CMQ_EINVAL);
}

/* ---- visibility timeout and receipt handles ---- */

Test(qsm, an_expired_lease_makes_the_message_visible_again_with_dequeue_count_plus_one)
{
    fx_create_default(Q);
    uint64_t id = send_ok(Q, "x");
    uint64_t t0 = F.now_ms;
    struct qsm_delivery d1 = receive_one(Q, id);
    fx_sleep_ms(30 * SEC - 1);
    assert_empty(Q);
    fx_sleep_ms(1);
    cr_assert(qsm_has_visible(F.q[0], Q, F.now_ms));
    struct qsm_delivery d2 = receive_one(Q, id);
    cr_assert_eq(d2.dequeue_count, 2);
    cr_assert_eq(d2.first_dequeue_ms, t0, "firstDequeueTime stays");
    cr_assert_neq(d2.receipt_handle, d1.receipt_handle, "a new handle per receive");
}

Test(qsm, per_request_visibility_timeout_overrides_the_queue)
{
    fx_create_default(Q);
    uint64_t id = send_ok(Q, "x");
    cr_assert_eq(fx_receive(Q, 1, 5), CMQ_OK);
    cr_assert_eq(F.res.delivered[0].next_visible_ms, F.now_ms + 5 * SEC);
    fx_sleep_ms(5 * SEC);
    assert_visible(Q, id);
}

Test(qsm, a_handle_is_stale_after_re_lease)
{
    fx_create_default(Q);
    uint64_t id = send_ok(Q, "x");
    struct qsm_delivery d1 = receive_one(Q, id);
    fx_sleep_ms(31 * SEC);
    struct qsm_delivery d2 = receive_one(Q, id);
    cr_assert_eq(fx_delete1(Q, d1.receipt_handle), CMQ_ESTALE);
    cr_assert_eq(fx_delete1(Q, d2.receipt_handle), CMQ_OK);
}

Test(qsm, a_handle_is_stale_after_delete)
{
    fx_create_default(Q);
    struct qsm_delivery d = receive_one(Q, send_ok(Q, "x"));
    cr_assert_eq(fx_delete1(Q, d.receipt_handle), CMQ_OK);
    cr_assert_eq(fx_delete1(Q, d.receipt_handle), CMQ_ESTALE);
    cr_assert_eq(fx_change_visibility(Q, d.receipt_handle, 10), CMQ_ESTALE);
}

Test(qsm, a_handle_is_stale_once_its_lease_expired_even_if_nobody_received_again)
{
    fx_create_default(Q);
    uint64_t id = send_ok(Q, "x");
    struct qsm_delivery d = receive_one(Q, id);
    fx_sleep_ms(30 * SEC);
    cr_assert_eq(fx_delete1(Q, d.receipt_handle), CMQ_ESTALE);
    assert_counts(Q, 1, 0, 0);
    assert_visible(Q, id);
}

Test(qsm, unknown_and_foreign_handles_are_stale)
{
    fx_create_default(Q);
    struct qsm_delivery d = receive_one(Q, send_ok(Q, "x"));
    uint64_t foreign = qsm_id_make(FX_PARTITION + 1, qsm_id_index(d.receipt_handle),
                                   qsm_id_slot(d.receipt_handle));
    cr_assert_eq(fx_delete1(Q, foreign), CMQ_ESTALE);
    cr_assert_eq(fx_delete1(Q, d.receipt_handle + 1), CMQ_ESTALE);
    cr_assert_eq(fx_delete1(Q, d.msg_id), CMQ_ESTALE, "a msgId is not a handle");
    cr_assert_eq(fx_delete1(Q, d.receipt_handle), CMQ_OK);
}

Test(qsm, change_visibility_extends_or_releases_a_lease)
{
    fx_create_default(Q);
    uint64_t id = send_ok(Q, "x");
    struct qsm_delivery d = receive_one(Q, id);
    cr_assert_eq(fx_change_visibility(Q, d.receipt_handle, 100), CMQ_OK);
    cr_assert_eq(F.res.next_visible_ms, F.now_ms + 100 * SEC);
    fx_sleep_ms(99 * SEC);
    assert_empty(Q);
    cr_assert_eq(fx_change_visibility(Q, d.receipt_handle, 0), CMQ_OK);
    cr_assert_eq(fx_delete1(Q, d.receipt_handle), CMQ_ESTALE, "released: the handle is spent");
    struct qsm_delivery d2 = receive_one(Q, id);
    cr_assert_eq(d2.dequeue_count, 2);
    cr_assert_eq(fx_change_visibility(Q, d2.receipt_handle, 43201), CMQ_EINVAL);
}

Test(qsm, in_flight_limit_refuses_receives)
{
    cmq_StorageQueueAttributes a = attrs();
    a.has_max_inflight_num = true;
    a.max_inflight_num = 2;
    cr_assert_eq(fx_create(Q, &a), CMQ_OK);
    for (int i = 0; i < 4; i++)
        send_ok(Q, "x");
    cr_assert_eq(fx_receive(Q, 16, 0), CMQ_OK);
    cr_assert_eq(F.res.n_delivered, 2, "a batch is cut at the limit");
    cr_assert_eq(fx_receive(Q, 1, 0), CMQ_ELIMIT, "spec 6070/10690");
}

/* ---- §9.1 delayed messages ---- */

Test(qsm, a_delayed_message_is_never_visible_early)
{
    fx_create_default(Q);
    uint64_t t0 = F.now_ms;
    uint64_t id = send_delayed(Q, "later", 10);
    uint64_t now_id = send_ok(Q, "now");
    assert_counts(Q, 1, 0, 1);
    cr_assert_eq(qsm_next_due_ms(F.q[0]), t0 + 10 * SEC);
    assert_visible(Q, now_id);
    fx_sleep_ms(10 * SEC - 1);
    cr_assert_not(qsm_has_visible(F.q[0], Q, F.now_ms));
    assert_empty(Q);
    fx_sleep_ms(1);
    cr_assert(qsm_has_visible(F.q[0], Q, F.now_ms));
    struct qsm_delivery d = receive_one(Q, id);
    cr_assert_eq(d.enqueue_ms, t0, "enqueueTime is the send time");
    cr_assert_eq(F.res.delivered[0].body_len, 5);
}

Test(qsm, a_tick_makes_due_delayed_messages_active)
{
    fx_create_default(Q);
    send_delayed(Q, "a", 5);
    fx_sleep_ms(5 * SEC);
    cr_assert_eq(fx_tick(), CMQ_OK);
    assert_counts(Q, 1, 0, 0);
}

Test(qsm, delayed_messages_come_out_in_due_then_send_order)
{
    fx_create_default(Q);
    uint64_t late = send_delayed(Q, "late", 20);
    uint64_t early = send_delayed(Q, "early", 10);
    fx_sleep_ms(25 * SEC);
    uint64_t plain = send_ok(Q, "plain");
    /* both are visible now; receive picks in queue (send) order */
    assert_visible(Q, late);
    assert_visible(Q, early);
    assert_visible(Q, plain);
}

/* ---- §6.7, §6.8 send validation ---- */

Test(qsm, send_rejects_empty_bodies_and_unknown_queues)
{
    fx_create_default(Q);
    const char *empty = "";
    cr_assert_eq(fx_send(Q, &empty, 1, 0, NULL), CMQ_EINVAL);
    const char *b = "x";
    cr_assert_eq(fx_send(99, &b, 1, 0, NULL), CMQ_ENOTFOUND);
    cr_assert_eq(fx_send(Q, &b, 1, QSM_DELAY_S_MAX + 1, NULL), CMQ_EINVAL);
    assert_counts(Q, 0, 0, 0);
    assert_empty(Q);
    /* a refused Send stays in the log: the scan must never deliver it */
    send_ok(Q, "ok");
    cr_assert_eq(drain(Q, NULL, 0, true), 1);
}

Test(qsm, a_batch_of_16_gets_16_ids_and_is_all_or_nothing)
{
    fx_create_default(Q);
    const char *b[16];
    for (int i = 0; i < 16; i++)
        b[i] = "m";
    cr_assert_eq(fx_send(Q, b, 16, 0, NULL), CMQ_OK);
    cr_assert_eq(F.res.n_msg_ids, 16);
    b[7] = "";
    cr_assert_eq(fx_send(Q, b, 16, 0, NULL), CMQ_EINVAL);
    assert_counts(Q, 16, 0, 0);
}

static uint8_t *encode_send(cmq_SendRequest *s, size_t *len)
{
    cr_assert(pb_get_encoded_size(len, cmq_SendRequest_fields, s));
    uint8_t *buf = malloc(*len);
    pb_ostream_t os = pb_ostream_from_buffer(buf, *len);
    cr_assert(pb_encode(&os, cmq_SendRequest_fields, s));
    return buf;
}

Test(qsm, check_send_enforces_max_msg_size_and_batch_bytes)
{
    cmq_StorageQueueAttributes a = attrs();
    a.has_max_msg_size = true;
    a.max_msg_size = 1024;
    fx_create(Q, &a);
    char *big = malloc(1025);
    memset(big, 'x', 1024);
    big[1024] = 0;
    const char *bodies[1] = {big};
    cmq_SendRequest s;
    fx_send_request(&s, Q, bodies, 1, 0, NULL);
    size_t len;
    uint8_t *buf = encode_send(&s, &len);
    cr_assert_eq(qsm_check_send(F.q[0], buf, len), CMQ_OK, "exactly maxMsgSize is fine");
    free(buf);
    big[1024] = 'x';
    char *bigger = malloc(1026);
    memcpy(bigger, big, 1025);
    bigger[1025] = 0;
    bodies[0] = bigger;
    fx_send_request(&s, Q, bodies, 1, 0, NULL);
    buf = encode_send(&s, &len);
    cr_assert_eq(qsm_check_send(F.q[0], buf, len), CMQ_ETOOBIG, "spec 4400/10230");
    free(buf);
    fx_send_request(&s, 42, bodies, 1, 0, NULL);
    buf = encode_send(&s, &len);
    cr_assert_eq(qsm_check_send(F.q[0], buf, len), CMQ_ENOTFOUND);
    free(buf);
    cr_assert_eq(qsm_check_send(F.q[0], (const uint8_t *)"\xff", 1), CMQ_EINVAL);
    free(big);
    free(bigger);
}

Test(qsm, a_body_over_64k_round_trips)
{
    cmq_StorageQueueAttributes a = attrs();
    a.has_max_msg_size = true;
    a.max_msg_size = QSM_BODY_BYTES_MAX;
    fx_create(Q, &a);
    size_t n = 300000;
    char *big = malloc(n + 1);
    for (size_t i = 0; i < n; i++)
        big[i] = (char)('a' + i % 26);
    big[n] = 0;
    const char *b = big;
    cr_assert_eq(fx_send(Q, &b, 1, 0, NULL), CMQ_OK);
    receive_one(Q, F.res.msg_ids[0]);
    cr_assert_eq(F.res.delivered[0].body_len, n);
    cr_assert_arr_eq(F.res.delivered[0].body, big, n);
    free(big);
}

/* ---- queues ---- */

Test(qsm, queue_create_drop_and_attribute_errors)
{
    cr_assert_eq(fx_create_default(Q), CMQ_OK);
    cr_assert_eq(F.res.attrs.visibility_timeout_s, 30);
    cr_assert_eq(F.res.attrs.msg_retention_s, 345600);
    cr_assert_eq(F.res.attrs.max_msg_heap_num, 10000000);
    cr_assert_eq(fx_create_default(Q), CMQ_EEXIST);
    cmq_StorageQueueAttributes a = attrs();
    a.has_rewind_s = true;
    a.rewind_s = 400000;
    cr_assert_eq(fx_create(Q2, &a), CMQ_EINVAL, "rewindSeconds > msgRetentionSeconds");
    a = attrs();
    a.has_visibility_timeout_s = true;
    a.visibility_timeout_s = 0;
    cr_assert_eq(fx_set(Q, &a, false), CMQ_EINVAL);
    a.visibility_timeout_s = 60;
    cr_assert_eq(fx_set(Q, &a, false), CMQ_OK);
    cr_assert_eq(F.res.attrs.visibility_timeout_s, 60);
    cr_assert_eq(F.res.attrs.msg_retention_s, 345600, "omitted attributes keep their value");
    a = attrs();
    a.has_ordered = true;
    a.ordered = true;
    cr_assert_eq(fx_set(Q, &a, false), CMQ_EINVAL, "ordered is fixed at creation");
    send_ok(Q, "x");
    cr_assert_eq(fx_drop(Q), CMQ_OK);
    cr_assert_eq(fx_receive(Q, 1, 0), CMQ_ENOTFOUND);
    cr_assert_eq(fx_drop(Q), CMQ_ENOTFOUND);
    struct qsm_stats st;
    cr_assert_eq(qsm_stats(F.q[0], Q, &st), CMQ_ENOTFOUND);
    /* a queue created again under the same id starts empty */
    cr_assert_eq(fx_create_default(Q), CMQ_OK);
    assert_empty(Q);
}

Test(qsm, queues_sharing_a_partition_see_only_their_messages)
{
    fx_create_default(Q);
    fx_create_default(Q2);
    uint64_t a[50], b[50];
    for (int i = 0; i < 50; i++) {
        a[i] = send_ok(Q, "a");
        b[i] = send_ok(Q2, "b");
    }
    uint64_t got[60];
    cr_assert_eq(drain(Q2, got, 60, true), 50);
    cr_assert_arr_eq(got, b, sizeof b);
    cr_assert_eq(drain(Q, got, 60, true), 50);
    cr_assert_arr_eq(got, a, sizeof a);
}

Test(qsm, many_interleaved_queues_overflow_the_span_list_without_losing_order)
{
    enum { NQ = 3, PER = 400 };
    /* 300 queues on the partition: each may keep only QSM_SPANS_MIN spans */
    for (uint64_t q = 1; q <= 300; q++)
        fx_create_default(q);
    static uint64_t ids[NQ][PER];
    for (int i = 0; i < PER; i++)
        for (int q = 0; q < NQ; q++) {
            ids[q][i] = send_ok((uint64_t)q + 1, "m");
            if (i % 7 == 0)
                fx_tick(); /* non-Send entries inside the gaps */
        }
    struct qsm_stats st;
    qsm_stats(F.q[0], 1, &st);
    cr_assert(st.spans < QSM_SPANS_MIN && st.spans >= QSM_SPANS_MIN / 2, "merged under the cap: %u", st.spans);
    cr_assert_eq(st.active, PER);
    static uint64_t got[PER + 1];
    for (int q = NQ - 1; q >= 0; q--) {
        cr_assert_eq(drain((uint64_t)q + 1, got, PER + 1, true), PER);
        cr_assert_arr_eq(got, ids[q], sizeof ids[q]);
    }
}

/* ---- §9.1 maxMsgHeapNum ---- */

Test(qsm, check_send_refuses_at_max_msg_heap_num)
{
    cmq_StorageQueueAttributes a = attrs();
    a.has_max_msg_heap_num = true;
    a.max_msg_heap_num = 1000000; /* the smallest allowed */
    fx_create(Q, &a);
    a.max_msg_heap_num = 999999;
    cr_assert_eq(fx_set(Q, &a, false), CMQ_EINVAL);
    /* fill to the limit with batches of 16 on one replica only (speed) */
    const char *b[16];
    for (int i = 0; i < 16; i++)
        b[i] = "m";
    int saved = F.replicas;
    F.replicas = 1;
    for (int i = 0; i < 1000000 / 16; i++)
        cr_assert_eq(fx_send(Q, b, 16, 0, NULL), CMQ_OK);
    cmq_SendRequest s;
    fx_send_request(&s, Q, b, 1, 0, NULL);
    size_t len;
    uint8_t *buf = encode_send(&s, &len);
    cr_assert_eq(qsm_check_send(F.q[0], buf, len), CMQ_ELIMIT, "spec 4410/10240");
    /* receiving does not free room (inactive counts), deleting does */
    cr_assert_eq(fx_receive(Q, 1, 0), CMQ_OK);
    cr_assert_eq(qsm_check_send(F.q[0], buf, len), CMQ_ELIMIT);
    cr_assert_eq(fx_delete1(Q, F.res.delivered[0].receipt_handle), CMQ_OK);
    cr_assert_eq(qsm_check_send(F.q[0], buf, len), CMQ_OK);
    free(buf);
    /* the other replicas catch up from the log */
    for (int r = 1; r < saved; r++)
        for (uint64_t i = qsm_applied_index(F.q[r]) + 1; i <= F.log.n; i++) {
            struct qsm_result res = {.skip_bodies = true};
            qsm_apply(F.q[r], i, 1, F.log.buf[i], F.log.len[i], &res);
            qsm_result_release(&res);
        }
    F.replicas = saved;
}

/* ---- §9.3 rewind ---- */

static void create_rewindable(uint64_t qid, uint32_t rewind_s)
{
    cmq_StorageQueueAttributes a = attrs();
    a.has_rewind_s = true;
    a.rewind_s = rewind_s;
    cr_assert_eq(fx_create(qid, &a), CMQ_OK);
}

Test(qsm, rewind_re_exposes_messages_from_a_time_including_deleted_ones)
{
    create_rewindable(Q, 3600);
    uint64_t t0 = F.now_ms;
    uint64_t a = send_ok(Q, "a");
    fx_sleep_ms(10 * SEC);
    uint64_t b = send_ok(Q, "b");
    fx_sleep_ms(10 * SEC);
    uint64_t c = send_ok(Q, "c");
    fx_sleep_ms(SEC);
    uint64_t got[4];
    cr_assert_eq(drain(Q, got, 4, true), 3);
    struct qsm_stats st;
    qsm_stats(F.q[0], Q, &st);
    cr_assert_eq(st.retained, 3, "deleted messages are retained while rewind is enabled");

    cr_assert_eq(fx_rewind(Q, (t0 + 10 * SEC) / 1000), CMQ_OK);
    assert_counts(Q, 2, 0, 0);
    qsm_stats(F.q[0], Q, &st);
    cr_assert_leq(st.retained, 1, "approximate after a rewind (docs)");
    assert_visible(Q, b);
    assert_visible(Q, c);
    assert_empty(Q);
    (void)a;
}

Test(qsm, rewind_resets_in_flight_messages_and_invalidates_their_handles)
{
    create_rewindable(Q, 3600);
    uint64_t t0 = F.now_ms;
    uint64_t a = send_ok(Q, "a");
    uint64_t b = send_ok(Q, "b");
    struct qsm_delivery da = receive_one(Q, a);
    fx_sleep_ms(SEC);
    cr_assert_eq(fx_rewind(Q, t0 / 1000), CMQ_OK);
    cr_assert_eq(fx_delete1(Q, da.receipt_handle), CMQ_ESTALE);
    struct qsm_delivery again = receive_one(Q, a);
    cr_assert_eq(again.dequeue_count, 2, "a rewound in-flight message keeps its dequeueCount");
    cr_assert_eq(again.first_dequeue_ms, da.first_dequeue_ms);
    assert_visible(Q, b);
    assert_empty(Q);
    assert_counts(Q, 0, 2, 0);
}

Test(qsm, rewind_replays_delayed_messages_that_were_due_and_keeps_pending_ones_delayed)
{
    create_rewindable(Q, 3600);
    uint64_t t0 = F.now_ms;
    uint64_t d1 = send_delayed(Q, "due", 5);
    uint64_t d2 = send_delayed(Q, "pending", 100);
    fx_sleep_ms(6 * SEC);
    cr_assert_eq(drain(Q, NULL, 0, true), 1);
    cr_assert_eq(fx_rewind(Q, t0 / 1000), CMQ_OK);
    struct qsm_delivery d = receive_one(Q, d1);
    assert_empty(Q);
    assert_counts(Q, 0, 1, 1);
    cr_assert_eq(fx_delete1(Q, d.receipt_handle), CMQ_OK);
    fx_sleep_ms(100 * SEC);
    assert_visible(Q, d2);
    assert_empty(Q);
}

Test(qsm, rewind_is_refused_when_disabled_or_outside_the_window)
{
    fx_create_default(Q);
    cr_assert_eq(fx_rewind(Q, F.now_ms / 1000), CMQ_EDENIED, "spec 6050/10670");
    create_rewindable(Q2, 60);
    cr_assert_eq(fx_rewind(Q2, F.now_ms / 1000 - 61), CMQ_EINVAL, "spec 4000/10680");
    cr_assert_eq(fx_rewind(Q2, F.now_ms / 1000 + 10), CMQ_EINVAL);
    cr_assert_eq(fx_rewind(Q2, F.now_ms / 1000 - 60), CMQ_OK);
    cr_assert_eq(fx_rewind(99, F.now_ms / 1000), CMQ_ENOTFOUND);
}

Test(qsm, disabling_rewind_purges_retained_messages)
{
    create_rewindable(Q, 3600);
    uint64_t t0 = F.now_ms;
    send_ok(Q, "a");
    drain(Q, NULL, 0, true);
    cmq_StorageQueueAttributes a = attrs();
    a.has_rewind_s = true;
    a.rewind_s = 0;
    cr_assert_eq(fx_set(Q, &a, false), CMQ_OK);
    struct qsm_stats st;
    qsm_stats(F.q[0], Q, &st);
    cr_assert_eq(st.retained, 0);
    a.rewind_s = 3600;
    cr_assert_eq(fx_set(Q, &a, false), CMQ_OK);
    cr_assert_eq(fx_rewind(Q, t0 / 1000), CMQ_OK);
    assert_empty(Q);
}

Test(qsm, messages_sent_after_a_rewind_are_delivered_once)
{
    create_rewindable(Q, 3600);
    uint64_t t0 = F.now_ms;
    uint64_t a = send_ok(Q, "a");
    drain(Q, NULL, 0, true);
    fx_sleep_ms(SEC);
    cr_assert_eq(fx_rewind(Q, t0 / 1000), CMQ_OK);
    uint64_t b = send_ok(Q, "b");
    uint64_t d = send_delayed(Q, "d", 1);
    uint64_t got[5];
    cr_assert_eq(drain(Q, got, 5, true), 2);
    cr_assert_eq(got[0], a);
    cr_assert_eq(got[1], b);
    fx_sleep_ms(SEC);
    assert_visible(Q, d);
    assert_empty(Q);
}

Test(qsm, rewind_to_a_time_after_the_unconsumed_backlog_leaves_the_backlog_alone)
{
    create_rewindable(Q, 3600);
    uint64_t t0 = F.now_ms;
    uint64_t a = send_ok(Q, "a");
    fx_sleep_ms(10 * SEC);
    uint64_t b = send_ok(Q, "b");
    fx_sleep_ms(SEC);
    cr_assert_eq(fx_rewind(Q, (t0 + 10 * SEC) / 1000), CMQ_OK);
    uint64_t got[4];
    cr_assert_eq(drain(Q, got, 4, true), 2, "each once");
    cr_assert_eq(got[0], a);
    cr_assert_eq(got[1], b);
}

Test(qsm, rewinding_twice_replays_twice)
{
    create_rewindable(Q, 3600);
    uint64_t t0 = F.now_ms;
    for (int i = 0; i < 5; i++) {
        send_ok(Q, "m");
        fx_sleep_ms(SEC);
    }
    cr_assert_eq(drain(Q, NULL, 0, true), 5);
    cr_assert_eq(fx_rewind(Q, (t0 + 2 * SEC) / 1000), CMQ_OK);
    cr_assert_eq(drain(Q, NULL, 0, true), 3);
    cr_assert_eq(fx_rewind(Q, t0 / 1000), CMQ_OK);
    cr_assert_eq(drain(Q, NULL, 0, true), 5);
    assert_empty(Q);
}

Test(qsm, the_log_is_kept_for_the_rewind_window_and_released_after_it)
{
    create_rewindable(Q, 120);
    fx_create_default(Q2);
    uint64_t first = F.log.n + 1;
    send_ok(Q, "a");
    send_ok(Q2, "b");
    cr_assert_eq(drain(Q, NULL, 0, true), 1);
    cr_assert_eq(drain(Q2, NULL, 0, true), 1);
    fx_tick();
    cr_assert_eq(qsm_first_needed_index(F.q[0]), first, "queue 1 may still rewind to it");
    cr_assert_leq(qsm_next_due_ms(F.q[0]), F.now_ms + 121 * SEC);
    fx_sleep_ms(121 * SEC);
    fx_tick();
    cr_assert_eq(qsm_first_needed_index(F.q[0]), F.log.n + 1, "out of the window: compactable");
}

/* ---- retention ---- */

Test(qsm, retention_expires_messages_in_every_state)
{
    cmq_StorageQueueAttributes a = attrs();
    a.has_msg_retention_s = true;
    a.msg_retention_s = 60;
    a.has_visibility_timeout_s = true;
    a.visibility_timeout_s = 3600;
    fx_create(Q, &a);
    send_ok(Q, "backlog");
    send_ok(Q, "leased");
    send_delayed(Q, "delayed", 120);
    cr_assert_eq(fx_receive(Q, 1, 0), CMQ_OK);
    uint64_t h = F.res.delivered[0].receipt_handle;
    fx_sleep_ms(59 * SEC);
    fx_tick();
    assert_counts(Q, 1, 1, 1);
    cr_assert_eq(qsm_next_due_ms(F.q[0]), F.now_ms + SEC, "retention of the oldest");
    fx_sleep_ms(SEC);
    cr_assert_eq(fx_tick(), CMQ_OK);
    assert_counts(Q, 0, 0, 0);
    cr_assert_eq(fx_delete1(Q, h), CMQ_ESTALE);
    assert_empty(Q);
    cr_assert_eq(qsm_first_needed_index(F.q[0]), F.log.n + 1, "the log may be compacted");
}

Test(qsm, retention_passes_an_expired_backlog_without_delivering_it)
{
    cmq_StorageQueueAttributes a = attrs();
    a.has_msg_retention_s = true;
    a.msg_retention_s = 60;
    fx_create(Q, &a);
    for (int i = 0; i < 10; i++)
        send_ok(Q, "old");
    fx_sleep_ms(30 * SEC);
    uint64_t fresh = send_ok(Q, "fresh");
    fx_sleep_ms(30 * SEC);
    assert_visible(Q, fresh);
    assert_empty(Q);
}

/* ---- dead-letter policy ---- */

static void create_with_dlq(uint64_t qid, uint32_t policy, uint32_t n)
{
    cmq_StorageQueueAttributes a = attrs();
    a.has_dead_letter_policy = true;
    a.dead_letter_policy.dead_letter_queue_id = 77;
    a.dead_letter_policy.policy = policy;
    if (policy == 0)
        a.dead_letter_policy.max_receive_count = n;
    else
        a.dead_letter_policy.max_time_to_live_s = n;
    a.has_visibility_timeout_s = true;
    a.visibility_timeout_s = 10;
    cr_assert_eq(fx_create(qid, &a), CMQ_OK);
}

Test(qsm, a_message_received_max_receive_count_times_goes_to_the_dlq)
{
    create_with_dlq(Q, 0, 2);
    uint64_t id = send_ok(Q, "poison");
    receive_one(Q, id);
    fx_sleep_ms(10 * SEC);
    struct qsm_delivery d = receive_one(Q, id);
    cr_assert_eq(d.dequeue_count, 2);
    fx_sleep_ms(10 * SEC);
    cr_assert_eq(fx_receive(Q, 1, 0), CMQ_EEMPTY, "the third receive would exceed the count");
    cr_assert_eq(F.res.n_dlq, 1);
    cr_assert_eq(F.res.dlq[0].msg_id, id);
    cr_assert_eq(F.res.dlq[0].dlq_queue_id, 77);
    cr_assert_eq(F.res.dlq[0].queue_id, Q);
    cr_assert_eq(F.res.dlq[0].dequeue_count, 2);
    cr_assert_eq(F.res.dlq[0].reason, QSM_DLQ_RECEIVES);
    cr_assert_eq(F.res.dlq[0].body_len, 6);
    cr_assert_arr_eq(F.res.dlq[0].body, "poison", 6);
    assert_counts(Q, 0, 0, 0);
}

Test(qsm, a_message_unconsumed_for_max_time_to_live_goes_to_the_dlq_on_tick)
{
    create_with_dlq(Q, 1, 300);
    uint64_t backlog = send_ok(Q, "a");
    uint64_t ready_again = send_ok(Q, "b");
    fx_sleep_ms(SEC);
    uint64_t fresh = send_ok(Q, "c");
    cr_assert_eq(fx_receive(Q, 1, 0), CMQ_OK);
    cr_assert_eq(F.res.delivered[0].msg_id, backlog);
    fx_sleep_ms(10 * SEC); /* a's lease expires: a is ready again */
    fx_sleep_ms(288 * SEC);
    cr_assert_eq(fx_tick(), CMQ_OK);
    cr_assert_eq(F.res.n_dlq, 0);
    fx_sleep_ms(SEC - 1);
    cr_assert_lt(qsm_next_due_ms(F.q[0]), F.now_ms + 2);
    fx_sleep_ms(1);
    cr_assert_eq(fx_tick(), CMQ_OK);
    cr_assert_eq(F.res.n_dlq, 2);
    cr_assert_eq(F.res.dlq[0].msg_id, backlog);
    cr_assert_eq(F.res.dlq[0].dequeue_count, 1);
    cr_assert_eq(F.res.dlq[1].msg_id, ready_again);
    cr_assert_eq(F.res.dlq[1].reason, QSM_DLQ_TTL);
    assert_visible(Q, fresh);
}

Test(qsm, dead_letter_policy_is_validated)
{
    cmq_StorageQueueAttributes a = attrs();
    a.has_dead_letter_policy = true;
    a.dead_letter_policy.dead_letter_queue_id = Q;
    a.dead_letter_policy.policy = 0;
    a.dead_letter_policy.max_receive_count = 3;
    cr_assert_eq(fx_create(Q, &a), CMQ_EINVAL, "a queue is not its own DLQ");
    a.dead_letter_policy.dead_letter_queue_id = 5;
    a.dead_letter_policy.max_receive_count = 1001;
    cr_assert_eq(fx_create(Q, &a), CMQ_EINVAL);
    a.dead_letter_policy.policy = 1;
    a.dead_letter_policy.max_time_to_live_s = 299;
    cr_assert_eq(fx_create(Q, &a), CMQ_EINVAL);
    a.dead_letter_policy.max_time_to_live_s = 300;
    cr_assert_eq(fx_create(Q, &a), CMQ_OK);
    cr_assert_eq(F.res.attrs.dlq_policy, QSM_DLQ_TTL);
    cr_assert_eq(fx_set(Q, NULL, true), CMQ_OK);
    cr_assert_eq(F.res.attrs.dlq_policy, QSM_DLQ_NONE);
}

/* ---- ordered queues (extension: orderedQueue, msgGroupId) ---- */

static void create_ordered(uint64_t qid)
{
    cmq_StorageQueueAttributes a = attrs();
    a.has_ordered = true;
    a.ordered = true;
    a.has_visibility_timeout_s = true;
    a.visibility_timeout_s = 10;
    cr_assert_eq(fx_create(qid, &a), CMQ_OK);
}

Test(qsm, an_ordered_group_delivers_one_message_at_a_time_in_send_order)
{
    create_ordered(Q);
    uint64_t a1 = send_group(Q, "a1", "A");
    uint64_t a2 = send_group(Q, "a2", "A");
    uint64_t b1 = send_group(Q, "b1", "B");
    uint64_t a3 = send_group(Q, "a3", "A");
    uint64_t n1 = send_ok(Q, "no group");
    cr_assert_eq(fx_receive(Q, 16, 0), CMQ_OK);
    cr_assert_eq(F.res.n_delivered, 3, "one per group, plus ungrouped messages");
    cr_assert_eq(F.res.delivered[0].msg_id, a1);
    cr_assert_eq(F.res.delivered[1].msg_id, b1);
    cr_assert_eq(F.res.delivered[2].msg_id, n1);
    uint64_t ha1 = F.res.delivered[0].receipt_handle;
    assert_empty(Q);
    /* a lease that expires redelivers the same message, not the next one */
    fx_sleep_ms(10 * SEC);
    cr_assert_eq(fx_receive(Q, 16, 0), CMQ_OK);
    cr_assert_eq(F.res.n_delivered, 3, "the same three again");
    struct qsm_delivery d = F.res.delivered[0];
    cr_assert_eq(d.msg_id, a1);
    cr_assert_eq(d.dequeue_count, 2);
    cr_assert_eq(F.res.delivered[1].msg_id, b1);
    cr_assert_eq(F.res.delivered[2].msg_id, n1);
    cr_assert_eq(fx_delete1(Q, ha1), CMQ_ESTALE);
    cr_assert_eq(fx_delete1(Q, d.receipt_handle), CMQ_OK);
    struct qsm_delivery d2 = receive_one(Q, a2);
    assert_empty(Q);
    cr_assert_eq(fx_delete1(Q, d2.receipt_handle), CMQ_OK);
    assert_visible(Q, a3);
}

Test(qsm, ordered_queues_refuse_delayed_messages)
{
    create_ordered(Q);
    const char *b = "x";
    cr_assert_eq(fx_send(Q, &b, 1, 5, "A"), CMQ_EINVAL);
    assert_empty(Q);
}

/* ---- the time seam ---- */

Test(qsm, the_clock_never_goes_back_across_leaders)
{
    fx_create_default(Q);
    uint64_t id = send_ok(Q, "x");
    struct qsm_delivery d = receive_one(Q, id);
    F.now_ms -= 60 * SEC; /* a new leader with a slow clock */
    cr_assert_eq(fx_delete1(Q, d.receipt_handle), CMQ_OK,
                 "lease times are measured on the state machine's monotone clock");
}

Test(qsm, next_due_tracks_leases_and_delays)
{
    fx_create_default(Q);
    cr_assert_eq(qsm_next_due_ms(F.q[0]), UINT64_MAX);
    send_ok(Q, "x");
    uint64_t t0 = F.now_ms;
    cr_assert_eq(qsm_next_due_ms(F.q[0]), t0 + 345600 * SEC, "the backlog's retention");
    cr_assert_eq(fx_receive(Q, 1, 7), CMQ_OK);
    cr_assert_eq(qsm_next_due_ms(F.q[0]), t0 + 7 * SEC);
    send_delayed(Q, "d", 3);
    cr_assert_eq(qsm_next_due_ms(F.q[0]), t0 + 3 * SEC);
}

/* ---- failures ---- */

Test(qsm, an_unreadable_entry_puts_the_state_machine_in_a_failed_state)
{
    fx_create_default(Q);
    send_ok(Q, "x");
    F.log.first = F.log.n + 1; /* "compacted" too eagerly */
    int rc = fx_receive(Q, 1, 0);
    cr_assert_eq(rc, CMQ_EIO);
    cr_assert_eq(fx_tick(), CMQ_EIO, "sticky");
    struct qsm_result r = {0};
    cr_assert_eq(qsm_apply(F.q[0], F.log.n + 1, 1, NULL, 0, &r), CMQ_EIO);
    F.log.first = 1;
    F.failed_on_purpose = true;
}

Test(qsm, garbage_entries_are_refused_without_changing_anything)
{
    fx_create_default(Q);
    uint8_t junk[] = {0x0a, 0xff, 0xff};
    struct qsm_result r = {0};
    for (int i = 0; i < F.replicas; i++)
        cr_assert_eq(qsm_apply(F.q[i], F.log.n + 1, 1, junk, sizeof junk, &r), CMQ_EINVAL);
    /* keep the fake log in step with the replicas */
    uint8_t *copy = malloc(sizeof junk);
    memcpy(copy, junk, sizeof junk);
    fx_log_append(copy, sizeof junk);
    uint64_t id = send_ok(Q, "x");
    assert_visible(Q, id);
}
