/* test_qsm_snapshot.c: determinism and snapshots of the queue state machine.
 *
 * A seeded random workload (sends with delays and groups, receives, deletes
 * with stale handles, visibility changes, rewinds, ticks, clock jumps) runs on
 * three replicas; the fixture checks every result agrees, and the tests here
 * check the snapshots are byte-identical, that a replica restored from a
 * snapshot taken mid-run and fed the rest of the log ends identical, and that
 * the semantics hold throughout (no message leased twice at once, deleted
 * messages never come back, one message per ordered group in flight). */
#include "qsm_fixture.h"

#include <stdio.h>
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

static uint64_t rng;
static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* ---- the model the workload checks against ---- */
#define MAX_ENTRIES 20000
struct mstate {
    uint64_t lease_until; /* 0: not leased */
    uint64_t handle;
    uint8_t deleted;
    uint8_t queue;
    uint8_t group;        /* 1..4, 0 none */
    uint8_t sent;
    uint64_t enqueue_ms;
};
static struct mstate *M; /* by index * 16 + slot */

static struct mstate *mget(uint64_t msg_id)
{
    uint64_t k = qsm_id_index(msg_id) * 16 + qsm_id_slot(msg_id);
    cr_assert_lt(k, (uint64_t)MAX_ENTRIES * 16);
    return &M[k];
}

#define NQ 4
/* queue 1: rewind 3600 s, retention 600 s; 2: ordered; 3: DLQ after 3
 * receives; 4: DLQ after 300 s unconsumed, retention 1200 s */
static void create_queues(void)
{
    cmq_StorageQueueAttributes a = cmq_StorageQueueAttributes_init_zero;
    a.has_rewind_s = a.has_msg_retention_s = true;
    a.rewind_s = 3600;
    a.msg_retention_s = 3600;
    cr_assert_eq(fx_create(1, &a), CMQ_OK);
    a = (cmq_StorageQueueAttributes)cmq_StorageQueueAttributes_init_zero;
    a.has_ordered = a.has_visibility_timeout_s = true;
    a.ordered = true;
    a.visibility_timeout_s = 15;
    cr_assert_eq(fx_create(2, &a), CMQ_OK);
    a = (cmq_StorageQueueAttributes)cmq_StorageQueueAttributes_init_zero;
    a.has_dead_letter_policy = a.has_visibility_timeout_s = true;
    a.visibility_timeout_s = 5;
    a.dead_letter_policy.dead_letter_queue_id = 9;
    a.dead_letter_policy.policy = 0;
    a.dead_letter_policy.max_receive_count = 3;
    cr_assert_eq(fx_create(3, &a), CMQ_OK);
    a = (cmq_StorageQueueAttributes)cmq_StorageQueueAttributes_init_zero;
    a.has_dead_letter_policy = a.has_msg_retention_s = true;
    a.msg_retention_s = 1200;
    a.dead_letter_policy.dead_letter_queue_id = 9;
    a.dead_letter_policy.policy = 1;
    a.dead_letter_policy.max_time_to_live_s = 300;
    cr_assert_eq(fx_create(4, &a), CMQ_OK);
}

struct held {
    uint64_t handle, msg_id, queue;
};
static struct held pool[256];
static int npool;
static uint32_t pool_head;

/* Mostly a handle just received (still live), sometimes an old one (stale). */
static struct held *pick(void)
{
    if (rnd() % 10 < 7)
        return &pool[(pool_head - 1 - (uint32_t)(rnd() % (npool < 4 ? npool : 4))) % 256];
    return &pool[rnd() % npool];
}
static uint64_t group_inflight[8];
static struct {
    uint64_t delivered, deleted, dlq, redelivered, stale;
    uint64_t half_committed, half_queries;
} seen; /* queue 2: msg id of the group's last lease */

static void check_delivery(uint64_t qid, const struct qsm_delivery *d)
{
    struct mstate *m = mget(d->msg_id);
    cr_assert_eq(m->queue, qid, "a message of queue %u delivered from queue %llu", m->queue,
                 (unsigned long long)qid);
    if (qid != 1) { /* queue 1 rewinds: leases and deletions are undone on purpose */
        cr_assert_not(m->deleted, "msg %llx delivered after delete", (unsigned long long)d->msg_id);
        cr_assert_leq(m->lease_until, F.now_ms, "msg %llx delivered while leased",
                      (unsigned long long)d->msg_id);
    }
    if (qid == 2 && m->group) {
        uint64_t other = group_inflight[m->group];
        if (other && other != d->msg_id) {
            struct mstate *o = mget(other);
            cr_assert(o->deleted || o->lease_until <= F.now_ms,
                      "two messages of group %u in flight", m->group);
        }
        group_inflight[m->group] = d->msg_id;
    }
    m->lease_until = d->next_visible_ms;
    m->handle = d->receipt_handle;
    seen.delivered++;
    seen.redelivered += d->dequeue_count > 1;
}

/* Transaction (half) messages: sent now and then to the unordered queues,
 * committed (then counted as sent), rolled back, or left to the check-backs
 * (rolled back after QSM_TXN_QUERIES_MAX). */
static uint64_t halfs[64];
static int nhalf;

static void half_send(uint64_t qid)
{
    cmq_StorageCommand c = cmq_StorageCommand_init_zero;
    c.which_cmd = cmq_StorageCommand_send_tag;
    const char *b[1] = {"half"};
    fx_send_request(&c.cmd.send, qid, b, 1, 0, NULL);
    c.cmd.send.messages[0].txn_check_ms = 1000 + (uint32_t)(rnd() % 5000);
    cr_assert_eq(fx_apply(&c), CMQ_OK);
    struct mstate *m = mget(F.res.msg_ids[0]);
    m->queue = (uint8_t)qid;
    m->enqueue_ms = F.now_ms; /* m->sent once committed */
    if (nhalf < 64)
        halfs[nhalf++] = F.res.msg_ids[0];
}

static void half_confirm(void)
{
    int i = (int)(rnd() % (uint64_t)nhalf);
    uint64_t id = halfs[i];
    halfs[i] = halfs[--nhalf];
    uint32_t state = 1 + (uint32_t)(rnd() % 2);
    struct mstate *m = mget(id);
    cmq_StorageCommand c = cmq_StorageCommand_init_zero;
    c.which_cmd = cmq_StorageCommand_txn_confirm_tag;
    c.cmd.txn_confirm.queue_id = m->queue;
    c.cmd.txn_confirm.items_count = 1;
    c.cmd.txn_confirm.items[0].msg_id = id;
    c.cmd.txn_confirm.items[0].state = state;
    cr_assert_eq(fx_apply(&c), CMQ_OK);
    if (F.res.statuses[0] == CMQ_OK && state == 1) {
        m->sent = 1; /* else rolled back now or by its check-backs already */
        seen.half_committed++;
    }
}

static void one_op(void)
{
    uint64_t r = rnd() % 100;
    uint64_t qid = 1 + rnd() % NQ;
    if (r < 35 && qid != 2 && rnd() % 8 == 0) {
        half_send(qid);
    } else if (r < 35) {
        int n = 1 + (int)(rnd() % 4);
        const char *bodies[4] = {"alpha", "beta", "gamma-gamma", "d"};
        uint32_t delay = (qid != 2 && rnd() % 3 == 0) ? (uint32_t)(rnd() % 20) : 0;
        int g = qid == 2 ? (int)(rnd() % 5) : 0;
        char gname[8];
        snprintf(gname, sizeof gname, "g%d", g);
        int rc = fx_send(qid, bodies, n, delay, g ? gname : NULL);
        cr_assert_eq(rc, CMQ_OK);
        for (uint32_t i = 0; i < F.res.n_msg_ids; i++) {
            struct mstate *m = mget(F.res.msg_ids[i]);
            m->queue = (uint8_t)qid;
            m->group = (uint8_t)g;
            m->sent = 1;
            m->enqueue_ms = F.now_ms;
        }
    } else if (r < 60) {
        uint32_t vis = rnd() % 2 ? 0 : 1 + (uint32_t)(rnd() % 20);
        int rc = fx_receive(qid, 1 + (uint32_t)(rnd() % 16), vis);
        cr_assert(rc == CMQ_OK || rc == CMQ_EEMPTY, "receive: %d", rc);
        for (uint32_t i = 0; i < F.res.n_delivered; i++) {
            check_delivery(qid, &F.res.delivered[i]);
            struct held h = {F.res.delivered[i].receipt_handle, F.res.delivered[i].msg_id, qid};
            pool[pool_head++ % 256] = h;
            if (npool < 256)
                npool++;
        }
        for (uint32_t i = 0; i < F.res.n_dlq; i++) {
            mget(F.res.dlq[i].msg_id)->deleted = 1;
            seen.dlq++;
        }
    } else if (r < 80 && npool) {
        struct held *p[4];
        uint64_t h[4];
        int n = 1 + (int)(rnd() % 4);
        p[0] = pick();
        h[0] = p[0]->handle;
        for (int i = 1; i < n; i++) {
            p[i] = pick();
            if (p[i]->queue != p[0]->queue)
                p[i] = p[0]; /* a batch names one queue */
            h[i] = p[i]->handle;
        }
        int rc = fx_delete(p[0]->queue, h, n);
        cr_assert_eq(rc, CMQ_OK);
        for (int i = 0; i < n; i++)
            if (F.res.statuses[i] == CMQ_OK) {
                struct mstate *m = mget(p[i]->msg_id);
                cr_assert_eq(m->handle, h[i], "only the latest handle deletes");
                cr_assert_gt(m->lease_until, F.now_ms, "deleted after its lease expired");
                m->deleted = 1;
                m->lease_until = 0;
                seen.deleted++;
            } else {
                seen.stale++;
            }
    } else if (r < 85 && npool) {
        struct held *p = pick();
        uint32_t vis = (uint32_t)(rnd() % 10);
        int rc = fx_change_visibility(p->queue, p->handle, vis);
        cr_assert(rc == CMQ_OK || rc == CMQ_ESTALE);
        if (rc == CMQ_OK)
            mget(p->msg_id)->lease_until = vis ? F.res.next_visible_ms : 0;
    } else if (r < 88) {
        uint64_t back = rnd() % 600;
        cr_assert_eq(fx_rewind(1, F.now_ms / 1000 - back), CMQ_OK);
    } else {
        if (nhalf && rnd() % 2)
            half_confirm();
        cr_assert_eq(fx_tick(), CMQ_OK);
        for (uint32_t i = 0; i < F.res.n_txn; i++) {
            struct mstate *m = mget(F.res.txn[i].msg_id);
            cr_assert(!m->sent && m->queue == F.res.txn[i].queue_id, "a check-back of a decided "
                      "or unknown message");
            seen.half_queries++;
        }
        for (uint32_t i = 0; i < F.res.n_dlq; i++) {
            struct mstate *m = mget(F.res.dlq[i].msg_id);
            cr_assert(m->queue == 3 || m->queue == 4);
            m->deleted = 1;
            seen.dlq++;
        }
    }
    fx_sleep_ms(rnd() % 4000);
}

static void note_dlq(void)
{
    for (uint32_t i = 0; i < F.res.n_dlq; i++) {
        struct mstate *m = mget(F.res.dlq[i].msg_id);
        cr_assert(m->queue == 3 || m->queue == 4);
        m->deleted = 1;
        seen.dlq++;
    }
}

/* Liveness: once the clock has moved past every lease and delay, receiving
 * and deleting until the queue says nothing is visible accounts for every
 * message sent to queues 2-4 (delivered and deleted, dead-lettered, or
 * expired by retention).  Queue 1 rewinds, so "deleted" is not final there. */
static void drain_and_account(void)
{
    fx_sleep_ms(60 * 1000);
    static const uint64_t retention_s[NQ + 1] = {0, 3600, 345600, 345600, 1200};
    for (uint64_t q = 1; q <= NQ; q++) {
        int it;
        for (it = 0; it < 200000; it++) {
            if (it % 4 == 0) {
                cr_assert_eq(fx_tick(), CMQ_OK);
                note_dlq();
            }
            if (!qsm_has_visible(F.q[0], q, F.now_ms))
                break;
            int rc = fx_receive(q, 16, 0);
            cr_assert(rc == CMQ_OK || rc == CMQ_EEMPTY, "drain receive: %d", rc);
            note_dlq();
            uint64_t h[16];
            uint32_t n = F.res.n_delivered;
            for (uint32_t i = 0; i < n; i++) {
                if (q != 1)
                    check_delivery(q, &F.res.delivered[i]);
                h[i] = F.res.delivered[i].receipt_handle;
            }
            uint64_t ids[16];
            for (uint32_t i = 0; i < n; i++)
                ids[i] = F.res.delivered[i].msg_id;
            if (n) {
                cr_assert_eq(fx_delete(q, h, (int)n), CMQ_OK);
                for (uint32_t i = 0; i < n; i++) {
                    cr_assert_eq(F.res.statuses[i], CMQ_OK);
                    mget(ids[i])->deleted = 1;
                }
            }
        }
        cr_assert_lt(it, 200000, "queue %llu never drains", (unsigned long long)q);
        struct qsm_stats st;
        cr_assert_eq(qsm_stats(F.q[0], q, &st), CMQ_OK);
        cr_assert(st.active == 0 && st.inactive == 0 && st.rewound == 0 && st.parked == 0,
                  "queue %llu drained: active %llu inactive %llu rewound %llu parked %llu",
                  (unsigned long long)q, (unsigned long long)st.active,
                  (unsigned long long)st.inactive, (unsigned long long)st.rewound,
                  (unsigned long long)st.parked);
        if (q == 1)
            continue; /* rewinds make "deleted" provisional there */
        for (uint64_t k = 0; k < (uint64_t)MAX_ENTRIES * 16; k++) {
            struct mstate *m = &M[k];
            if (m->sent && m->queue == q && !m->deleted)
                cr_assert_leq(m->enqueue_ms + retention_s[q] * 1000, F.now_ms,
                              "queue %llu lost msg at index %llu slot %llu (enqueued %llu, now %llu)",
                              (unsigned long long)q, (unsigned long long)(k / 16),
                              (unsigned long long)(k % 16), (unsigned long long)m->enqueue_ms,
                              (unsigned long long)F.now_ms);
        }
    }
}

static void run_workload(uint64_t seed, int ops, int snap_at, struct sbuf *mid, uint64_t *mid_index)
{
    rng = seed;
    nhalf = 0;
    npool = 0;
    pool_head = 0;
    memset(group_inflight, 0, sizeof group_inflight);
    M = calloc((size_t)MAX_ENTRIES * 16, sizeof *M);
    create_queues();
    for (int i = 0; i < ops; i++) {
        one_op();
        if (i == snap_at && mid) {
            *mid = snap(F.q[0]);
            *mid_index = F.log.n;
        }
    }
    drain_and_account();
    free(M);
    M = NULL;
}

TestSuite(qsm_snapshot, .init = NULL, .fini = NULL);

Test(qsm_snapshot, replicas_applying_the_same_log_end_identical_and_a_restored_one_too)
{
    for (uint64_t seed = 1; seed <= 6; seed++) {
        fx_setup(3);
        memset(&seen, 0, sizeof seen);
        struct sbuf mid = {0};
        uint64_t mid_index = 0;
        run_workload(seed * 0x9e3779b97f4a7c15ULL, 1500, 700, &mid, &mid_index);
        assert_replicas_identical();
        cr_log_info("seed %llu: %llu entries, delivered %llu (again %llu), deleted %llu, stale %llu, "
                    "dead-lettered %llu", (unsigned long long)seed, (unsigned long long)F.log.n,
                    (unsigned long long)seen.delivered, (unsigned long long)seen.redelivered,
                    (unsigned long long)seen.deleted, (unsigned long long)seen.stale,
                    (unsigned long long)seen.dlq);
        cr_assert(seen.delivered > 100 && seen.redelivered > 10 && seen.deleted > 50 &&
                  seen.stale > 10 && seen.dlq > 0 && seen.half_committed > 0 &&
                  seen.half_queries > 0, "the workload exercises every path");

        /* a fourth replica restored from the mid-run snapshot, then fed the rest */
        struct qsm *late;
        struct qsm_reader rd = {.read_entry = fx_log_read, .arg = &F.log};
        cr_assert_eq(qsm_create(FX_PARTITION, &rd, &late), CMQ_OK);
        cr_assert_eq(qsm_snapshot_read(late, mid.p, mid.n), CMQ_OK);
        cr_assert_eq(qsm_applied_index(late), mid_index);
        struct sbuf again = snap(late);
        cr_assert_eq(again.n, mid.n);
        cr_assert_arr_eq(again.p, mid.p, mid.n, "write(read(s)) == s");
        for (uint64_t i = mid_index + 1; i <= F.log.n; i++) {
            struct qsm_result r = {0};
            qsm_apply(late, i, 1, F.log.buf[i], F.log.len[i], &r);
            qsm_result_release(&r);
        }
        struct sbuf a = snap(F.q[0]), b = snap(late);
        cr_assert_eq(a.n, b.n, "seed %llu: restored replica differs in size",
                     (unsigned long long)seed);
        cr_assert_arr_eq(a.p, b.p, a.n, "seed %llu: restored replica differs",
                         (unsigned long long)seed);
        cr_assert_eq(qsm_next_due_ms(late), qsm_next_due_ms(F.q[0]));
        free(a.p);
        free(b.p);
        free(again.p);
        free(mid.p);
        qsm_destroy(late);
        fx_teardown();
    }
}

Test(qsm_snapshot, a_damaged_or_foreign_image_is_refused_and_changes_nothing)
{
    fx_setup(1);
    rng = 42;
    npool = 0;
    pool_head = 0;
    memset(group_inflight, 0, sizeof group_inflight);
    M = calloc((size_t)MAX_ENTRIES * 16, sizeof *M);
    create_queues();
    for (int i = 0; i < 200; i++)
        one_op();
    free(M);
    M = NULL;
    struct sbuf s = snap(F.q[0]);
    cr_assert_gt(s.n, 100);

    struct qsm *other;
    struct qsm_reader rd = {.read_entry = fx_log_read, .arg = &F.log};
    cr_assert_eq(qsm_create(FX_PARTITION, &rd, &other), CMQ_OK);
    struct sbuf empty = snap(other);
    for (size_t i = 0; i < s.n; i += 1 + i / 64) {
        s.p[i] ^= 0x40;
        cr_assert_eq(qsm_snapshot_read(other, s.p, s.n), CMQ_ECORRUPT, "flip at %zu", i);
        s.p[i] ^= 0x40;
    }
    for (size_t n = 0; n < s.n; n += 1 + n / 16)
        cr_assert_eq(qsm_snapshot_read(other, s.p, n), CMQ_ECORRUPT, "truncated to %zu", n);
    struct sbuf still = snap(other);
    cr_assert_eq(still.n, empty.n);
    cr_assert_arr_eq(still.p, empty.p, empty.n, "a refused image changes nothing");

    struct qsm *foreign;
    cr_assert_eq(qsm_create(FX_PARTITION + 1, &rd, &foreign), CMQ_OK);
    cr_assert_eq(qsm_snapshot_read(foreign, s.p, s.n), CMQ_EINVAL, "another partition's image");
    cr_assert_eq(qsm_snapshot_read(other, s.p, s.n), CMQ_OK);
    qsm_destroy(foreign);
    qsm_destroy(other);
    free(s.p);
    free(empty.p);
    free(still.p);
    fx_teardown();
}
