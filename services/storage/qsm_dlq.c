/* qsm_dlq.c: dead-letter moves: the partition's pending list of moves decided
 * and not yet acknowledged (kept in the snapshot, ascending msg id), adding a
 * move to a command's result, the TTL test, moving a tracked message out of
 * its queue, and the DlqDelivered command that acknowledges moves.
 *
 * The lead appends each move to the DLQ's partition; this file only decides
 * and remembers (docs/queue-state-machine.md §8). */
#include "qsm_internal.h"

#include "status.h"

#include <stdlib.h>
#include <string.h>

static uint32_t qsm_pend_find(const struct qsm *q, uint64_t msg_id)
{
    uint32_t lo = 0, hi = q->n_pend;
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        if (q->pend[mid].msg_id < msg_id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

bool qsm_dlq_room(const struct qsm *q)
{
    return q->n_pend < QSM_DLQ_PENDING_MAX;
}

int qsm_pend_add(struct qsm *q, const struct qsm_dlq_move *m)
{
    uint32_t at = qsm_pend_find(q, m->msg_id);
    if (at < q->n_pend && q->pend[at].msg_id == m->msg_id)
        return CMQ_OK; /* a rewound message moved again before its first move was acknowledged */
    if (q->n_pend == q->cap_pend) {
        uint32_t cap = q->cap_pend ? q->cap_pend * 2 : 16;
        struct qsm_dlq_move *v = realloc(q->pend, cap * sizeof *v);
        if (!v)
            return CMQ_ENOMEM;
        q->pend = v;
        q->cap_pend = cap;
    }
    memmove(&q->pend[at + 1], &q->pend[at], (q->n_pend - at) * sizeof *q->pend);
    q->pend[at] = *m;
    q->pend[at].body = NULL;
    q->pend[at].body_len = 0;
    q->n_pend++;
    return CMQ_OK;
}

int qsm_dlq_add(struct qsm *q, struct qsm_result *res, const struct queue *qu, uint64_t id,
                uint64_t enqueue_ms, uint64_t first_dequeue_ms, uint32_t dequeue_count,
                uint32_t reason, const struct send_item *item)
{
    if (res->n_dlq % 16 == 0) {
        struct qsm_dlq_move *d = realloc(res->dlq, (res->n_dlq + 16) * sizeof *d);
        if (!d)
            return CMQ_ENOMEM;
        res->dlq = d;
    }
    qsm_trace(q, QSM_EV_DEAD_LETTERED, qu->id, id & ((UINT64_C(1) << (QSM_ID_INDEX_BITS + QSM_ID_SLOT_BITS)) - 1),
              q->now_ms, 0, 0, qu->a.dlq_queue_id, NULL, 0);
    struct qsm_dlq_move *m = &res->dlq[res->n_dlq++];
    memset(m, 0, sizeof *m);
    m->queue_id = qu->id;
    m->dlq_queue_id = qu->a.dlq_queue_id;
    m->msg_id = id;
    m->enqueue_ms = enqueue_ms;
    m->first_dequeue_ms = first_dequeue_ms;
    m->dequeue_count = dequeue_count;
    m->reason = reason;
    if (!res->skip_bodies && item)
        m->body = qsm_body_copy(item, &m->body_len);
    return qsm_pend_add(q, m);
}

bool qsm_ttl_due(const struct queue *qu, uint64_t enqueue_ms, uint64_t now)
{
    return qu->a.dlq_policy == QSM_DLQ_TTL && enqueue_ms + S_TO_MS(qu->a.dlq_max_ttl_s) <= now;
}

/* Moves a tracked rec to the DLQ list of `res` and forgets it.  `detached`:
 * already out of its container. */
int qsm_rec_dead_letter(struct qsm *q, struct queue *qu, struct rec *r, uint32_t reason,
                        bool detached, struct qsm_result *res)
{
    const struct send_item *item = NULL;
    if (!res->skip_bodies) {
        int rc = qsm_item_load(q, qu, r->pos, &item);
        if (rc)
            return rc;
    }
    int rc = qsm_dlq_add(q, res, qu, qsm_id_make(q->partition, POS_INDEX(r->pos), POS_SLOT(r->pos)),
                         r->enqueue_ms, r->first_dequeue_ms, r->dequeue_count, reason, item);
    if (rc)
        return rc;
    if (detached)
        qsm_rec_forget(qu, r);
    else
        qsm_rec_drop(qu, r);
    return CMQ_OK;
}

int qsm_cmd_dlq_delivered(struct qsm *q, const cmq_DlqDeliveredRequest *c)
{
    /* unknown ids: acknowledged already (a retried command) */
    for (pb_size_t i = 0; i < c->msg_ids_count; i++) {
        uint32_t at = qsm_pend_find(q, c->msg_ids[i]);
        if (at < q->n_pend && q->pend[at].msg_id == c->msg_ids[i]) {
            memmove(&q->pend[at], &q->pend[at + 1], (q->n_pend - at - 1) * sizeof *q->pend);
            q->n_pend--;
        }
    }
    return CMQ_OK;
}

size_t qsm_dlq_pending(const struct qsm *q, struct qsm_dlq_move *out, size_t max)
{
    for (uint32_t i = 0; i < q->n_pend && i < max; i++)
        out[i] = q->pend[i];
    return q->n_pend;
}
