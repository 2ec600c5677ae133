/* qsm_deliver.c: receiving and the life of a lease: the Receive command
 * (ready recs and the scan's candidates merged in position order, dead-letter
 * policies applied on the way, leases made), Delete by receipt handle, and
 * ChangeVisibility. */
#include "qsm_internal.h"

#include "status.h"

#include <assert.h>
#include <pb_decode.h>
#include <stdio.h>
#include <stdlib.h>

static int lease(struct qsm *q, struct queue *qu, struct rec *r, uint64_t handle, uint32_t vis_s,
                 const struct send_item *item, struct qsm_result *res)
{
    uint64_t now = q->now_ms;
    r->state = REC_LEASED;
    r->dequeue_count++;
    if (!r->first_dequeue_ms)
        r->first_dequeue_ms = now;
    r->time_ms = now + S_TO_MS(vis_s);
    r->handle = handle;
    if (qsm_heap_push(&qu->timers, r) || qsm_map_put(&qu->handles, handle, r))
        return CMQ_ENOMEM;
    qu->n_leased++;
    if (r->group && !qsm_group_get(qu, r->group)) {
        struct group *g = calloc(1, sizeof *g);
        if (!g)
            return CMQ_ENOMEM;
        g->key = r->group;
        g->head = r;
        if (qsm_map_put(&qu->groups, g->key, g)) {
            free(g);
            return CMQ_ENOMEM;
        }
    }
    qsm_trace(q, QSM_EV_DELIVERED, qu->id, r->pos, now, handle, r->time_ms, 0, q->rx_addr,
              q->rx_addr ? 64 : 0);
    struct qsm_delivery *d = &res->delivered[res->n_delivered++];
    d->msg_id = qsm_id_make(q->partition, POS_INDEX(r->pos), POS_SLOT(r->pos));
    d->receipt_handle = handle;
    d->enqueue_ms = r->enqueue_ms;
    d->first_dequeue_ms = r->first_dequeue_ms;
    d->next_visible_ms = r->time_ms;
    d->dequeue_count = r->dequeue_count;
    if (item && item->origin) {
        cmq_DeadLetterOrigin o = cmq_DeadLetterOrigin_init_zero;
        pb_istream_t in = pb_istream_from_buffer(item->origin, item->origin_len);
        if (pb_decode(&in, cmq_DeadLetterOrigin_fields, &o)) {
            d->has_origin = true;
            d->origin.queue_id = o.queue_id;
            d->origin.msg_id = o.msg_id;
            d->origin.enqueue_ms = o.enqueue_time_ms;
            d->origin.first_dequeue_ms = o.first_dequeue_time_ms;
            d->origin.dequeue_count = o.dequeue_count;
            d->origin.reason = o.reason;
            snprintf(d->origin.queue_name, sizeof d->origin.queue_name, "%s", o.queue_name);
        }
    }
    if (!res->skip_bodies && item) {
        d->body = qsm_body_copy(item, &d->body_len);
        if (!d->body)
            return CMQ_ENOMEM;
    }
    return CMQ_OK;
}

int qsm_cmd_receive(struct qsm *q, uint64_t index, const cmq_ReceiveRequest *c,
                    struct qsm_result *res)
{
    res->queue_id = c->queue_id;
    struct queue *qu = qsm_queue_find(q, c->queue_id, NULL);
    if (!qu)
        return CMQ_ENOTFOUND;
    if (c->count < 1 || c->count > QSM_BATCH_MAX || c->visibility_timeout_s > QSM_VISIBILITY_S_MAX)
        return CMQ_EINVAL;
    uint64_t now = q->now_ms;
    int rc = qsm_queue_advance(q, qu, now);
    if (rc)
        return rc;
    if (qu->n_leased >= qu->a.max_inflight_num)
        return CMQ_ELIMIT;
    uint32_t want = c->count;
    if (want > qu->a.max_inflight_num - qu->n_leased)
        want = (uint32_t)(qu->a.max_inflight_num - qu->n_leased);
    uint32_t vis = c->visibility_timeout_s ? c->visibility_timeout_s : qu->a.visibility_timeout_s;
    uint32_t budget = QSM_RECEIVE_READS_MAX;
    q->rx_addr = c->consumer_addr[0] ? c->consumer_addr : NULL;
    while (res->n_delivered < want && res->n_dlq < QSM_DLQ_MOVES_MAX) {
        struct rec *r = qsm_ready_top(qu, now);
        struct cand cd;
        bool found;
        rc = qsm_scan_peek(q, qu, &budget, &cd, &found);
        if (rc)
            return rc;
        const struct send_item *item = NULL;
        if (r && (!found || r->pos < cd.pos)) {
            r = qsm_ready_top(qu, now); /* qsm_scan_peek may have parked, never dropped: r is still top */
            qsm_heap_remove(&qu->ready, r);
            r->state = 0;
            if (!res->skip_bodies) {
                rc = qsm_item_load(q, qu, r->pos, &item);
                if (rc)
                    return rc;
            }
        } else if (found) {
            if ((r = cd.rewound) != NULL)
                qsm_rec_detach(qu, r);
            else if (!(r = qsm_rec_new(qu, cd.pos, cd.enqueue_ms, qsm_group_key(qu, cd.item))))
                return CMQ_ENOMEM;
            item = cd.item;
            qsm_cursor_pass(qu, cd.delayed);
        } else {
            break;
        }
        /* r is now out of every container */
        /* with the pending list full (a DLQ unreachable for long), the message
         * stays here and is delivered: nothing is lost, the policy waits */
        bool over = qu->a.dlq_policy == QSM_DLQ_RECEIVES &&
                    r->dequeue_count + 1 > qu->a.dlq_max_receive_count && qsm_dlq_room(q);
        bool ttl = qsm_ttl_due(qu, r->enqueue_ms, now) && qsm_dlq_room(q);
        if (over || ttl) {
            rc = qsm_rec_dead_letter(q, qu, r, over ? QSM_DLQ_RECEIVES : QSM_DLQ_TTL, true, res);
            if (rc)
                return rc;
            continue;
        }
        rc = lease(q, qu, r, qsm_id_make(q->partition, index, res->n_delivered), vis, item, res);
        if (rc)
            return rc;
    }
    return res->n_delivered ? CMQ_OK : CMQ_EEMPTY;
}

/* The live lease of `handle`, or NULL (stale: unknown, re-leased, expired, deleted). */
static struct rec *lease_find(struct qsm *q, struct queue *qu, uint64_t handle)
{
    if (!handle || qsm_id_partition(handle) != q->partition)
        return NULL;
    struct rec *r = qsm_map_get(&qu->handles, handle);
    if (!r)
        return NULL;
    assert(r->state == REC_LEASED);
    if (r->time_ms <= q->now_ms)
        return NULL;
    if (qsm_rec_expired(qu, r, q->now_ms)) {
        qsm_rec_drop(qu, r);
        return NULL;
    }
    return r;
}

int qsm_cmd_delete(struct qsm *q, const cmq_DeleteRequest *c, struct qsm_result *res)
{
    res->queue_id = c->queue_id;
    struct queue *qu = qsm_queue_find(q, c->queue_id, NULL);
    if (!qu)
        return CMQ_ENOTFOUND;
    if (c->receipt_handles_count < 1 || c->receipt_handles_count > QSM_BATCH_MAX)
        return CMQ_EINVAL;
    int rc = qsm_queue_advance(q, qu, q->now_ms);
    if (rc)
        return rc;
    uint32_t ok = 0;
    for (pb_size_t i = 0; i < c->receipt_handles_count; i++) {
        struct rec *r = lease_find(q, qu, c->receipt_handles[i]);
        if (!r) {
            res->statuses[i] = CMQ_ESTALE;
            continue;
        }
        if (qu->a.rewind_s) {
            int j = qsm_span_find(qu, POS_INDEX(r->pos));
            if (j >= 0) {
                qu->spans[j].n_deleted++;
                qu->retained++;
            }
        }
        qsm_trace(q, QSM_EV_DELETED, qu->id, r->pos, q->now_ms, r->handle, 0, 0, NULL, 0);
        qsm_rec_drop(qu, r);
        res->statuses[i] = CMQ_OK;
        ok++;
    }
    res->n_statuses = c->receipt_handles_count;
    (void)ok;
    /* the outcome is per handle: the gateway builds 6010 / 6020 and errorList
     * from the statuses, so the command itself succeeded */
    return CMQ_OK;
}

int qsm_cmd_change_visibility(struct qsm *q, const cmq_ChangeVisibilityRequest *c,
                              struct qsm_result *res)
{
    res->queue_id = c->queue_id;
    struct queue *qu = qsm_queue_find(q, c->queue_id, NULL);
    if (!qu)
        return CMQ_ENOTFOUND;
    if (c->visibility_timeout_s > QSM_VISIBILITY_S_MAX)
        return CMQ_EINVAL;
    int rc = qsm_queue_advance(q, qu, q->now_ms);
    if (rc)
        return rc;
    struct rec *r = lease_find(q, qu, c->receipt_handle);
    if (!r)
        return CMQ_ESTALE;
    if (c->visibility_timeout_s == 0) {
        qsm_rec_detach(qu, r);
        res->next_visible_ms = q->now_ms;
        return qsm_rec_make_ready(qu, r);
    }
    qsm_heap_remove(&qu->timers, r);
    r->time_ms = q->now_ms + S_TO_MS(c->visibility_timeout_s);
    res->next_visible_ms = r->time_ms;
    return qsm_heap_push(&qu->timers, r);
}
