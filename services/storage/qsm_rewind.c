/* qsm_rewind.c: the Rewind command (spec §6.6): moves the cursor back to the
 * first message enqueued at or after the given time and takes back what the
 * replay will deliver again (I4), keeping dequeue counts. */
#include "qsm_internal.h"

#include "status.h"

#include <stdlib.h>

int qsm_cmd_rewind(struct qsm *q, const cmq_RewindRequest *c, struct qsm_result *res)
{
    res->queue_id = c->queue_id;
    struct queue *qu = qsm_queue_find(q, c->queue_id, NULL);
    if (!qu)
        return CMQ_ENOTFOUND;
    if (!qu->a.rewind_s)
        return CMQ_EDENIED;
    uint64_t now = q->now_ms, now_s = now / 1000;
    if (c->start_consume_time_s > now_s + 1 || c->start_consume_time_s + qu->a.rewind_s < now_s)
        return CMQ_EINVAL;
    int rc = qsm_queue_advance(q, qu, now);
    if (rc)
        return rc;
    qsm_spans_trim(qu, now);
    uint64_t t_ms = S_TO_MS(c->start_consume_time_s);
    qsm_trace(q, QSM_EV_REWOUND, qu->id, 0, now, 0, 0, t_ms, NULL, 0);

    /* locate P: the first message of the queue enqueued at or after t */
    uint32_t pj = qu->n_spans;
    for (uint32_t j = 0; j < qu->n_spans; j++)
        if (qu->spans[j].max_ms >= t_ms) {
            pj = j;
            break;
        }
    uint64_t p_pos = 0, p_passed = 0;
    if (pj == qu->n_spans) {
        if (qu->n_spans) {
            pj = qu->n_spans - 1;
            p_pos = POS(qu->spans[pj].last + 1, 0);
            p_passed = qu->spans[pj].n_live;
        }
    } else {
        struct span *sp = &qu->spans[pj];
        p_pos = POS(sp->last + 1, 0);
        for (uint64_t idx = sp->first; idx <= sp->last; idx++) {
            const struct send_view *s;
            uint64_t lms;
            rc = qsm_entry_load(q, idx, qu->id, &s, &lms);
            if (rc)
                return rc;
            if (!s || idx < qu->create_index || qsm_send_validate(s, qu->a.ordered) != CMQ_OK)
                continue;
            if (lms >= t_ms) {
                p_pos = POS(idx, 0);
                break;
            }
            for (uint32_t i = 0; i < s->n; i++)
                p_passed += s->m[i].delay_s == 0 && !s->m[i].txn_check_ms;
        }
    }
    if (qu->n_spans && p_pos < qu->cur_pos) {
        qu->cur_span = pj;
        qu->cur_pos = p_pos;
        qu->cur_passed = p_passed;
        qu->head_ms = t_ms;
    }
    /* forget what the replay will deliver again (I4): everything tracked at or
     * after the cursor except messages still delayed */
    struct rec **v;
    size_t n;
    rc = qsm_recs_sorted(qu, &v, &n);
    if (rc)
        return rc;
    for (size_t i = n; i-- > 0;) {
        struct rec *r = v[i];
        if (r->pos < qu->cur_pos)
            break;
        if (r->state == REC_DELAYED || r->state == REC_REWOUND || r->state == REC_HALF)
            continue;
        qsm_rec_detach(qu, r); /* a lease's handle becomes stale */
        struct group *g = qsm_group_get(qu, r->group);
        if (g && g->head == r)
            qsm_group_advance(qu, g); /* its parked ones, all later, were rewound first: frees g */
        r->state = REC_REWOUND;
        qu->n_rewound++;
    }
    free(v);
    if (qu->n_spans) {
        uint64_t live = 0, del = 0;
        for (uint32_t j = qu->cur_span; j < qu->n_spans; j++) {
            live += qu->spans[j].n_live;
            del += qu->spans[j].n_deleted;
            qu->spans[j].n_deleted = 0;
        }
        qu->backlog = sat_sub(live, qu->cur_passed);
        qu->retained = sat_sub(qu->retained, del);
        qu->replay_end = POS(qu->spans[qu->n_spans - 1].last + 1, 0);
    }
    qu->rewind_ms = now;
    qu->scan_blocked = false;
    return CMQ_OK;
}
