/* qsm_txn.c: transaction (half) messages: check-backs that come due on a Tick
 * (listed for the leader, rolled back after QSM_TXN_QUERIES_MAX), and the
 * TxnConfirm command that commits (visible from then) or rolls them back. */
#include "qsm_internal.h"

#include "status.h"

/* Check-backs of half messages now due (one queue): list them in res->txn and
 * schedule the next; roll back those asked QSM_TXN_QUERIES_MAX times. */
int qsm_queue_txn_due(struct qsm *q, struct queue *qu, struct qsm_result *res)
{
    uint64_t now = q->now_ms;
    struct rec *r;
    while ((r = qsm_heap_top(&qu->half)) && r->time_ms <= now) {
        if (qsm_rec_expired(qu, r, now) || r->dequeue_count >= QSM_TXN_QUERIES_MAX) {
            qsm_trace(q, QSM_EV_DELETED, qu->id, r->pos, now, 0, 0, 0, NULL, 0);
            qsm_rec_drop(qu, r);
            continue;
        }
        if (res->n_txn >= QSM_TXN_TICK_MAX) {
            q->tick_pending = true;
            break;
        }
        qsm_heap_remove(&qu->half, r);
        r->dequeue_count++;
        r->time_ms = sat_add(now, r->handle);
        if (qsm_heap_push(&qu->half, r))
            return CMQ_ENOMEM;
        struct qsm_txn_query *t = &res->txn[res->n_txn++];
        t->queue_id = qu->id;
        t->msg_id = qsm_id_make(q->partition, POS_INDEX(r->pos), POS_SLOT(r->pos));
        t->attempt = r->dequeue_count;
    }
    return CMQ_OK;
}

int qsm_cmd_txn_confirm(struct qsm *q, const cmq_TxnConfirmRequest *c, struct qsm_result *res)
{
    res->queue_id = c->queue_id;
    struct queue *qu = qsm_queue_find(q, c->queue_id, NULL);
    if (!qu)
        return CMQ_ENOTFOUND;
    if (c->items_count < 1 || c->items_count > QSM_BATCH_MAX)
        return CMQ_EINVAL;
    uint64_t now = q->now_ms;
    for (pb_size_t i = 0; i < c->items_count; i++) {
        const cmq_TxnConfirmItem *it = &c->items[i];
        uint64_t id = it->msg_id;
        struct rec *r = NULL;
        if (id && qsm_id_partition(id) == q->partition &&
            (it->state == 1 || it->state == 2))
            r = qsm_map_get(&qu->recs, POS(qsm_id_index(id), qsm_id_slot(id)));
        if (!r || r->state != REC_HALF) {
            res->statuses[i] = CMQ_ESTALE; /* unknown or decided already: ignored (spec 9.5) */
            continue;
        }
        qsm_rec_detach(qu, r);
        if (it->state == 2 || qsm_rec_expired(qu, r, now)) {
            qsm_trace(q, QSM_EV_DELETED, qu->id, r->pos, now, 0, 0, 0, NULL, 0);
            qsm_rec_forget(qu, r);
        } else {
            r->time_ms = 0;
            r->dequeue_count = 0;
            r->handle = 0;
            qsm_trace(q, QSM_EV_VISIBLE, qu->id, r->pos, now, 0, 0, 0, NULL, 0);
            int rc = qsm_rec_make_ready(qu, r);
            if (rc)
                return rc;
        }
        res->statuses[i] = CMQ_OK;
    }
    res->n_statuses = c->items_count;
    return CMQ_OK;
}
