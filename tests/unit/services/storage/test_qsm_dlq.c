/* test_qsm_dlq.c: the dedup window (idempotent appends) and the bookkeeping
 * of dead-letter moves in the queue state machine (qsm.h, docs/
 * queue-state-machine.md §8).  Built with tiny bounds (QSM_DEDUP_MAX=4,
 * QSM_DLQ_PENDING_MAX=2, see meson.build) so eviction and a full pending list
 * are reached in a few commands.  Three replicas; the fixture checks every
 * result agrees and the teardown that the snapshots are byte-identical. */
#include "qsm_fixture.h"

#include <pb_encode.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(QSM_DEDUP_MAX == 4 && QSM_DLQ_PENDING_MAX == 2, "built with tiny bounds");

static void setup(void)
{
    fx_setup(3);
}

static void teardown(void)
{
    assert_replicas_identical();
    fx_teardown();
}

TestSuite(qsm_dlq, .init = setup, .fini = teardown);

#define Q 1
#define DLQ 77
#define SEC 1000u

/* ---- helpers ---- */

struct img {
    uint8_t **p;
    size_t *n;
};

static int sinkf(void *arg, const void *buf, size_t n)
{
    struct img *s = arg;
    *s->p = realloc(*s->p, *s->n + n);
    memcpy(*s->p + *s->n, buf, n);
    *s->n += n;
    return 0;
}

static int send_keyed(uint64_t qid, const char *body, uint64_t key)
{
    cmq_StorageCommand c = cmq_StorageCommand_init_zero;
    c.which_cmd = cmq_StorageCommand_send_tag;
    fx_send_request(&c.cmd.send, qid, &body, 1, 0, NULL);
    c.cmd.send.messages[0].dedup_key = key;
    return fx_apply(&c);
}

static uint64_t send_keyed_ok(uint64_t qid, const char *body, uint64_t key)
{
    cr_assert_eq(send_keyed(qid, body, key), CMQ_OK);
    return F.res.msg_ids[0];
}

/* qsm_dedup_check on every replica (they must agree) for a request of n
 * items with keys[]; returns replica 0's status, ids in ids[]. */
static int check(uint64_t qid, const uint64_t *keys, int n, uint64_t *ids, bool *keyed)
{
    const char *bodies[16] = {"a", "b", "c", "d"};
    cmq_SendRequest r;
    fx_send_request(&r, qid, bodies, n, 0, NULL);
    for (int i = 0; i < n; i++)
        r.messages[i].dedup_key = keys[i];
    uint8_t buf[1024];
    pb_ostream_t os = pb_ostream_from_buffer(buf, sizeof buf);
    cr_assert(pb_encode(&os, cmq_SendRequest_fields, &r));
    int first = 0;
    for (int k = 0; k < F.replicas; k++) {
        uint64_t got[16] = {0};
        uint32_t cnt = 0;
        uint64_t k0 = 0;
        int rc = qsm_dedup_check(F.q[k], buf, os.bytes_written, got, &cnt, &k0);
        if (k == 0) {
            first = rc;
            memcpy(ids, got, sizeof got);
            *keyed = k0 != 0;
        } else {
            cr_assert_eq(rc, first, "replica %d disagrees", k);
            cr_assert_arr_eq(got, ids, sizeof got);
        }
    }
    return first;
}

static void create_with_dlq(uint32_t max_receives)
{
    cmq_StorageQueueAttributes a = cmq_StorageQueueAttributes_init_zero;
    a.has_dead_letter_policy = true;
    a.dead_letter_policy.dead_letter_queue_id = DLQ;
    a.dead_letter_policy.policy = 0;
    a.dead_letter_policy.max_receive_count = max_receives;
    a.has_visibility_timeout_s = true;
    a.visibility_timeout_s = 10;
    cr_assert_eq(fx_create(Q, &a), CMQ_OK);
}

/* Receives `id` until the next receive dead-letters it (max_receives 1). */
static void move_one(uint64_t id)
{
    receive_one(Q, id);
    fx_sleep_ms(10 * SEC);
    cr_assert_eq(fx_receive(Q, 1, 0), CMQ_EEMPTY);
    cr_assert_eq(F.res.n_dlq, 1);
    cr_assert_eq(F.res.dlq[0].msg_id, id);
}

static size_t pending(struct qsm_dlq_move *out, size_t max)
{
    size_t n = qsm_dlq_pending(F.q[0], out, max);
    for (int k = 1; k < F.replicas; k++)
        cr_assert_eq(qsm_dlq_pending(F.q[k], NULL, 0), n, "replica %d disagrees", k);
    return n;
}

static int delivered(const uint64_t *ids, int n)
{
    cmq_StorageCommand c = cmq_StorageCommand_init_zero;
    c.which_cmd = cmq_StorageCommand_dlq_delivered_tag;
    for (int i = 0; i < n; i++)
        c.cmd.dlq_delivered.msg_ids[c.cmd.dlq_delivered.msg_ids_count++] = ids[i];
    return fx_apply(&c);
}

/* ---- the dedup window ---- */

Test(qsm_dlq, a_keyed_send_is_found_by_its_key_with_its_original_id)
{
    cr_assert_eq(fx_create_default(Q), CMQ_OK);
    uint64_t id = send_keyed_ok(Q, "once", 1001);
    uint64_t ids[16];
    bool keyed;
    cr_assert_eq(check(Q, (uint64_t[]){1001}, 1, ids, &keyed), CMQ_OK);
    cr_assert_eq(ids[0], id, "the retry is answered with the first append's id");
    cr_assert(keyed);
    cr_assert_eq(check(Q, (uint64_t[]){1002}, 1, ids, &keyed), CMQ_ENOTFOUND);
    cr_assert(keyed, "an unknown key: append");
    cr_assert_eq(check(Q, (uint64_t[]){0}, 1, ids, &keyed), CMQ_ENOTFOUND);
    cr_assert(!keyed, "no key: an ordinary send");
    cr_assert_eq(check(Q + 1, (uint64_t[]){1001}, 1, ids, &keyed), CMQ_ENOTFOUND,
                 "keys are per queue");
    cr_assert_eq(check(Q, (uint64_t[]){1001, 1002}, 2, ids, &keyed), CMQ_ENOTFOUND,
                 "a batch the window holds only in part is appended");
}

Test(qsm_dlq, the_window_keeps_the_first_id_and_evicts_the_oldest_key)
{
    cr_assert_eq(fx_create_default(Q), CMQ_OK);
    uint64_t first = send_keyed_ok(Q, "one", 1);
    send_keyed_ok(Q, "one again", 1); /* applied anyway (leader-side check only) */
    uint64_t ids[16];
    bool keyed;
    cr_assert_eq(check(Q, (uint64_t[]){1}, 1, ids, &keyed), CMQ_OK);
    cr_assert_eq(ids[0], first, "a key already held keeps its first msg id");
    uint64_t id[6];
    for (uint64_t k = 2; k <= 5; k++)
        id[k] = send_keyed_ok(Q, "more", k);
    cr_assert_eq(check(Q, (uint64_t[]){1}, 1, ids, &keyed), CMQ_ENOTFOUND,
                 "the oldest key left the window (QSM_DEDUP_MAX = 4)");
    for (uint64_t k = 2; k <= 5; k++) {
        cr_assert_eq(check(Q, (uint64_t[]){k}, 1, ids, &keyed), CMQ_OK);
        cr_assert_eq(ids[0], id[k]);
    }
    size_t mem = qsm_memory_bytes(F.q[0]);
    for (uint64_t k = 6; k < 200; k++)
        send_keyed_ok(Q, "x", k);
    drain(Q, NULL, 1000, true);
    cr_assert_leq(qsm_memory_bytes(F.q[0]), mem + 4096, "the window is bounded");
}

Test(qsm_dlq, the_window_survives_a_snapshot)
{
    cr_assert_eq(fx_create_default(Q), CMQ_OK);
    for (uint64_t k = 1; k <= 6; k++) /* wraps the ring */
        send_keyed_ok(Q, "x", k * 10);
    struct qsm_reader rd = {fx_log_read, &F.log};
    struct qsm *r;
    cr_assert_eq(qsm_create(FX_PARTITION, &rd, &r), CMQ_OK);
    uint8_t *img = NULL;
    size_t len = 0;
    struct img s = {&img, &len};
    cr_assert_eq(qsm_snapshot_write(F.q[0], sinkf, &s), CMQ_OK);
    cr_assert_eq(qsm_snapshot_read(r, img, len), CMQ_OK);
    struct qsm *keep = F.q[2];
    F.q[2] = r; /* the restored one takes a replica's place: results and images must agree */
    uint64_t ids[16];
    bool keyed;
    cr_assert_eq(check(Q, (uint64_t[]){60}, 1, ids, &keyed), CMQ_OK);
    cr_assert_eq(check(Q, (uint64_t[]){20}, 1, ids, &keyed), CMQ_ENOTFOUND);
    send_keyed_ok(Q, "y", 70); /* evicts 30 on every replica alike */
    cr_assert_eq(check(Q, (uint64_t[]){30}, 1, ids, &keyed), CMQ_ENOTFOUND);
    cr_assert_eq(check(Q, (uint64_t[]){40}, 1, ids, &keyed), CMQ_OK);
    assert_replicas_identical();
    F.q[2] = keep;
    qsm_destroy(r);
    free(img);
    /* keep replica 2 in step for the teardown comparison */
    F.failed_on_purpose = true;
}

/* ---- dead-letter moves ---- */

Test(qsm_dlq, a_move_stays_pending_until_acknowledged)
{
    create_with_dlq(1);
    uint64_t id = send_ok(Q, "poison");
    uint64_t t_send = F.now_ms;
    move_one(id);
    struct qsm_dlq_move m[4];
    cr_assert_eq(pending(m, 4), 1);
    cr_assert_eq(m[0].msg_id, id);
    cr_assert_eq(m[0].queue_id, Q);
    cr_assert_eq(m[0].dlq_queue_id, DLQ);
    cr_assert_eq(m[0].dequeue_count, 1);
    cr_assert_eq(m[0].enqueue_ms, t_send);
    cr_assert_eq(m[0].first_dequeue_ms, t_send);
    cr_assert_eq(m[0].reason, QSM_DLQ_RECEIVES);
    cr_assert_null(m[0].body);
    cr_assert_leq(qsm_first_needed_index(F.q[0]), qsm_id_index(id),
                  "the body must stay in the log until the move is delivered");
    uint8_t *body;
    size_t len;
    uint64_t enq;
    cr_assert_eq(qsm_message_read(F.q[0], Q, id, &body, &len, &enq), CMQ_OK);
    cr_assert_eq(len, 6);
    cr_assert_arr_eq(body, "poison", 6);
    cr_assert_eq(enq, t_send);
    free(body);
    cr_assert_eq(fx_tick(), CMQ_OK);
    cr_assert_eq(pending(m, 4), 1, "a Tick does not forget it");
    cr_assert_eq(delivered(&id, 1), CMQ_OK);
    cr_assert_eq(pending(m, 4), 0);
    cr_assert_gt(qsm_first_needed_index(F.q[0]), qsm_id_index(id));
    cr_assert_eq(delivered(&id, 1), CMQ_OK, "a repeated acknowledgement is a no-op");
    assert_empty(Q);
}

Test(qsm_dlq, pending_moves_survive_a_snapshot)
{
    create_with_dlq(1);
    uint64_t a = send_ok(Q, "a");
    move_one(a);
    uint64_t b = send_ok(Q, "b");
    move_one(b);
    struct qsm_reader rd = {fx_log_read, &F.log};
    struct qsm *r;
    cr_assert_eq(qsm_create(FX_PARTITION, &rd, &r), CMQ_OK);
    uint8_t *img = NULL;
    size_t len = 0;
    struct img s = {&img, &len};
    cr_assert_eq(qsm_snapshot_write(F.q[0], sinkf, &s), CMQ_OK);
    cr_assert_eq(qsm_snapshot_read(r, img, len), CMQ_OK);
    struct qsm_dlq_move m[4];
    cr_assert_eq(qsm_dlq_pending(r, m, 4), 2);
    cr_assert_eq(m[0].msg_id, a);
    cr_assert_eq(m[1].msg_id, b);
    cr_assert_eq(m[1].dequeue_count, 1);
    qsm_destroy(r);
    free(img);
    cr_assert_eq(delivered((uint64_t[]){a, b}, 2), CMQ_OK);
}

Test(qsm_dlq, with_the_pending_list_full_messages_are_delivered_not_moved)
{
    create_with_dlq(1);
    uint64_t a = send_ok(Q, "a");
    move_one(a);
    uint64_t b = send_ok(Q, "b");
    move_one(b);
    uint64_t c = send_ok(Q, "c");
    receive_one(Q, c);
    fx_sleep_ms(10 * SEC);
    struct qsm_delivery d = receive_one(Q, c);
    cr_assert_eq(d.dequeue_count, 2, "over maxReceiveCount, but nothing is lost (QSM_DLQ_PENDING_MAX = 2)");
    cr_assert_eq(pending(NULL, 0), 2);
    cr_assert_eq(delivered(&a, 1), CMQ_OK);
    fx_sleep_ms(10 * SEC);
    cr_assert_eq(fx_receive(Q, 1, 0), CMQ_EEMPTY);
    cr_assert_eq(F.res.n_dlq, 1, "with room again, the policy applies");
    cr_assert_eq(F.res.dlq[0].msg_id, c);
    cr_assert_eq(pending(NULL, 0), 2);
}

Test(qsm_dlq, a_dead_letter_copy_delivers_its_origin)
{
    cr_assert_eq(fx_create_default(Q), CMQ_OK);
    cmq_StorageCommand c = cmq_StorageCommand_init_zero;
    c.which_cmd = cmq_StorageCommand_send_tag;
    const char *body = "copy";
    fx_send_request(&c.cmd.send, Q, &body, 1, 0, NULL);
    cmq_SendItem *it = &c.cmd.send.messages[0];
    it->dedup_key = 12345;
    it->has_origin = true;
    it->origin.queue_id = 9;
    snprintf(it->origin.queue_name, sizeof it->origin.queue_name, "%s", "source");
    it->origin.msg_id = 12345;
    it->origin.enqueue_time_ms = 111;
    it->origin.first_dequeue_time_ms = 222;
    it->origin.dequeue_count = 3;
    it->origin.reason = QSM_DLQ_RECEIVES;
    cr_assert_eq(fx_apply(&c), CMQ_OK);
    struct qsm_delivery d = receive_one(Q, 0);
    cr_assert(d.has_origin);
    cr_assert_eq(d.origin.queue_id, 9);
    cr_assert_str_eq(d.origin.queue_name, "source");
    cr_assert_eq(d.origin.msg_id, 12345);
    cr_assert_eq(d.origin.enqueue_ms, 111);
    cr_assert_eq(d.origin.first_dequeue_ms, 222);
    cr_assert_eq(d.origin.dequeue_count, 3);
    cr_assert_eq(d.dequeue_count, 1, "the copy's own receives count from 1");
}
