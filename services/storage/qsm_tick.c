/* qsm_tick.c: time passing for the whole partition: the Tick command (leases
 * and delays, transaction check-backs, span trimming, retention and dead-letter
 * TTL sweeps, the backlog's expired head), and qsm_next_due_ms, the earliest
 * time a Tick would change something. */
#include "qsm_internal.h"

#include "status.h"

#include <stdlib.h>

static int dlq_cmp(const void *a, const void *b)
{
    const struct qsm_dlq_move *x = a, *y = b;
    if (x->queue_id != y->queue_id)
        return x->queue_id < y->queue_id ? -1 : 1;
    return x->msg_id < y->msg_id ? -1 : x->msg_id > y->msg_id;
}

/* Retention and TTL over the tracked recs (in position order: deterministic
 * when the DLQ limit cuts the work short). */
static int queue_sweep(struct qsm *q, struct queue *qu, struct qsm_result *res)
{
    uint64_t now = q->now_ms;
    struct rec **v;
    size_t n;
    int rc = qsm_recs_sorted(qu, &v, &n);
    if (rc)
        return rc;
    qu->sweep_due_ms = NO_TIME;
    for (size_t i = 0; i < n; i++) {
        struct rec *r = v[i];
        if (qsm_rec_expired(qu, r, now)) {
            qsm_rec_drop(qu, r);
            continue;
        }
        bool movable = r->state == REC_READY || r->state == REC_PARKED;
        if (movable && qsm_ttl_due(qu, r->enqueue_ms, now)) {
            if (res->n_dlq >= QSM_DLQ_MOVES_MAX || !qsm_dlq_room(q)) {
                q->tick_pending = true;
                qsm_sweep_note(qu, r);
                continue;
            }
            rc = qsm_rec_dead_letter(q, qu, r, QSM_DLQ_TTL, false, res);
            if (rc)
                break;
            continue;
        }
        /* a leased or delayed message's TTL counts from when it is ready again */
        uint64_t d = r->enqueue_ms + S_TO_MS(qu->a.msg_retention_s);
        if (qu->a.dlq_policy == QSM_DLQ_TTL && r->state != REC_REWOUND) {
            /* (a rewound message's TTL is the scan's business, at the head) */
            uint64_t t = r->enqueue_ms + S_TO_MS(qu->a.dlq_max_ttl_s);
            if (!movable)
                t = u64_max(t, r->time_ms);
            d = u64_min(d, t);
        }
        qu->sweep_due_ms = u64_min(qu->sweep_due_ms, d);
    }
    free(v);
    return rc;
}

int qsm_cmd_tick(struct qsm *q, struct qsm_result *res)
{
    uint64_t now = q->now_ms;
    uint32_t budget = QSM_TICK_READS_MAX;
    q->tick_pending = false;
    for (uint32_t i = 0; i < q->n_queues; i++) {
        struct queue *qu = q->queues[i];
        int rc = qsm_queue_advance(q, qu, now);
        if (rc)
            return rc;
        if ((rc = qsm_queue_txn_due(q, qu, res)))
            return rc;
        qsm_spans_trim(qu, now);
        if (qu->sweep_due_ms <= now) {
            rc = queue_sweep(q, qu, res);
            if (rc)
                return rc;
        }
        /* the backlog's head: pass expired messages, dead-letter TTL ones */
        uint64_t head_due = qu->head_ms + S_TO_MS(qu->a.msg_retention_s);
        if (qu->a.dlq_policy == QSM_DLQ_TTL)
            head_due = u64_min(head_due, qu->head_ms + S_TO_MS(qu->a.dlq_max_ttl_s));
        while (qu->backlog && !qu->scan_blocked && head_due <= now) {
            struct cand cd;
            bool found;
            rc = qsm_scan_peek(q, qu, &budget, &cd, &found);
            if (rc)
                return rc;
            if (!found) {
                if (budget == 0)
                    q->tick_pending = true;
                break;
            }
            if (!qsm_ttl_due(qu, cd.enqueue_ms, now))
                break;
            if (res->n_dlq >= QSM_DLQ_MOVES_MAX || !qsm_dlq_room(q)) {
                q->tick_pending = true;
                break;
            }
            if (cd.rewound)
                rc = qsm_rec_dead_letter(q, qu, cd.rewound, QSM_DLQ_TTL, false, res);
            else
                rc = qsm_dlq_add(q, res, qu,
                                 qsm_id_make(q->partition, POS_INDEX(cd.pos), POS_SLOT(cd.pos)),
                                 cd.enqueue_ms, 0, 0, QSM_DLQ_TTL, cd.item);
            if (rc)
                return rc;
            qsm_cursor_pass(qu, cd.delayed);
        }
    }
    if (res->n_dlq > 1)
        qsort(res->dlq, res->n_dlq, sizeof *res->dlq, dlq_cmp);
    return CMQ_OK;
}

uint64_t qsm_next_due_ms(const struct qsm *q)
{
    if (q->failed)
        return NO_TIME;
    if (q->tick_pending)
        return q->now_ms;
    uint64_t due = NO_TIME;
    for (uint32_t i = 0; i < q->n_queues; i++) {
        const struct queue *qu = q->queues[i];
        const struct rec *t = qsm_heap_top(&qu->timers);
        if (t)
            due = u64_min(due, t->time_ms);
        if ((t = qsm_heap_top(&qu->half)))
            due = u64_min(due, t->time_ms);
        if (qu->recs.n)
            due = u64_min(due, qu->sweep_due_ms);
        uint64_t ret = S_TO_MS(qu->a.msg_retention_s);
        if (qu->backlog && !qu->scan_blocked) {
            due = u64_min(due, sat_add(qu->head_ms, ret));
            if (qu->a.dlq_policy == QSM_DLQ_TTL)
                due = u64_min(due, sat_add(qu->head_ms, S_TO_MS(qu->a.dlq_max_ttl_s)));
        }
        if (qu->n_spans) {
            const struct span *s = &qu->spans[0];
            uint64_t keep = ret;
            if (qsm_span_behind(qu, 0))
                keep = qu->a.rewind_s ? u64_min(ret, S_TO_MS(qu->a.rewind_s) + 1) : 0;
            due = u64_min(due, sat_add(s->max_ms, keep));
        }
    }
    return due;
}
