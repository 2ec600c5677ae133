/* qsm_send.c: sending: the Send command (ids, delayed and half messages
 * tracked, spans noted, dedup keys remembered), the leader's pre-propose
 * check (qsm_check_send), and the dedup window's queries on an encoded
 * SendRequest (lookup, strip the items already held, merge the reply). */
#include "qsm_internal.h"

#include "pbwire.h"
#include "status.h"

#include <stdlib.h>
#include <string.h>

int qsm_cmd_send(struct qsm *q, uint64_t index, const struct send_view *c, uint64_t leader_ms,
                 struct qsm_result *res)
{
    res->queue_id = c->queue_id;
    struct queue *qu = qsm_queue_find(q, c->queue_id, NULL);
    if (!qu)
        return CMQ_ENOTFOUND;
    int rc = qsm_send_validate(c, qu->a.ordered);
    if (rc)
        return rc;
    rc = qsm_queue_advance(q, qu, q->now_ms);
    if (rc)
        return rc;
    uint64_t n_live = 0;
    for (uint32_t i = 0; i < c->n; i++) {
        const struct send_item *m = &c->m[i];
        if (m->txn_check_ms) {
            struct rec *r = qsm_rec_new(qu, POS(index, i), leader_ms, 0);
            if (!r)
                return CMQ_ENOMEM;
            r->state = REC_HALF;
            r->handle = m->txn_check_ms;
            r->time_ms = leader_ms + m->txn_check_ms;
            if (qsm_heap_push(&qu->half, r))
                return CMQ_ENOMEM;
            qu->n_half++;
        } else if (m->delay_s == 0) {
            n_live++;
        } else {
            struct rec *r = qsm_rec_new(qu, POS(index, i), leader_ms, 0);
            if (!r)
                return CMQ_ENOMEM;
            r->state = REC_DELAYED;
            r->time_ms = leader_ms + S_TO_MS(m->delay_s);
            if (qsm_heap_push(&qu->timers, r))
                return CMQ_ENOMEM;
            qu->n_delayed++;
        }
        res->msg_ids[i] = qsm_id_make(q->partition, index, i);
        const char *addr = m->addr ? m->addr : c->addr;
        size_t addr_len = m->addr ? m->addr_len : c->addr_len;
        qsm_trace(q, QSM_EV_SENT, qu->id, POS(index, i), leader_ms, 0, 0, 0, addr, addr_len);
        if (m->delay_s)
            qsm_trace(q, QSM_EV_DELAYED, qu->id, POS(index, i), leader_ms, 0,
                      leader_ms + S_TO_MS(m->delay_s), 0, NULL, 0);
    }
    res->n_msg_ids = c->n;
    for (uint32_t i = 0; i < c->n; i++)
        if (c->m[i].dedup_key &&
            (rc = dedupwin_note(&q->dd, qu->id, c->m[i].dedup_key, res->msg_ids[i], leader_ms)))
            return rc;
    rc = qsm_span_note_send(qu, qsm_span_cap(q), index, n_live, leader_ms);
    if (rc)
        return rc;
    qu->backlog += n_live;
    return CMQ_OK;
}

/* ---- queries ---- */

int qsm_check_send(const struct qsm *q, const uint8_t *req, size_t len)
{
    struct send_view sv;
    if (!qsm_parse_send(req, len, &sv))
        return CMQ_EINVAL;
    const struct queue *qu = qsm_queue_find(q, sv.queue_id, NULL);
    if (!qu)
        return CMQ_ENOTFOUND;
    int rc = qsm_send_validate(&sv, qu->a.ordered);
    if (rc)
        return rc;
    for (uint32_t i = 0; i < sv.n; i++)
        if (sv.m[i].len > qu->a.max_msg_size)
            return CMQ_ETOOBIG;
    uint64_t held = qu->backlog + qu->recs.n - qu->n_rewound;
    if (held + sv.n > qu->a.max_msg_heap_num)
        return CMQ_ELIMIT;
    uint32_t n_half = 0;
    for (uint32_t i = 0; i < sv.n; i++)
        n_half += sv.m[i].txn_check_ms > 0;
    if (n_half && qu->n_half + n_half > QSM_TXN_HALF_MAX)
        return CMQ_ELIMIT;
    return CMQ_OK;
}

int qsm_dedup_lookup(const struct qsm *q, const uint8_t *req, size_t len, uint64_t *keys,
                     uint64_t *ids, uint32_t *n)
{
    struct send_view sv;
    *n = 0;
    if (!qsm_parse_send(req, len, &sv) || sv.n < 1 || sv.n > QSM_BATCH_MAX)
        return -1;
    int found = 0;
    for (uint32_t i = 0; i < sv.n; i++) {
        keys[i] = sv.m[i].dedup_key;
        ids[i] = dedupwin_find(&q->dd, sv.queue_id, keys[i]);
        found += ids[i] != 0;
    }
    *n = sv.n;
    return found;
}

uint8_t *qsm_send_strip(const uint8_t *req, size_t len, const uint64_t *held, size_t *out_len)
{
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf)
        return NULL;
    uint8_t *o = buf;
    uint32_t item = 0;
    struct pbwire_reader r;
    struct pbwire_field f;
    pbwire_reader_init(&r, req, len);
    for (const uint8_t *start = r.p; pbwire_next(&r, &f); start = r.p) {
        if (f.num == cmq_SendRequest_messages_tag && f.wt == PBWIRE_LEN && item < QSM_BATCH_MAX &&
            held[item++])
            continue; /* an item the window holds */
        memcpy(o, start, (size_t)(r.p - start)); /* the field as it was, tag included */
        o += r.p - start;
    }
    if (r.err) {
        free(buf);
        return NULL;
    }
    *out_len = (size_t)(o - buf);
    return buf;
}

uint32_t qsm_send_merge(const uint64_t *held, uint32_t n, const uint64_t *new_ids, uint32_t n_new,
                        uint64_t *out)
{
    uint32_t j = 0;
    for (uint32_t i = 0; i < n && i < QSM_BATCH_MAX; i++)
        out[i] = held[i] ? held[i] : j < n_new ? new_ids[j++] : 0;
    return n < QSM_BATCH_MAX ? n : QSM_BATCH_MAX;
}

int qsm_dedup_check(const struct qsm *q, const uint8_t *req, size_t len, uint64_t *ids,
                    uint32_t *n, uint64_t *first_key)
{
    uint64_t keys[QSM_BATCH_MAX];
    uint32_t cnt;
    *first_key = 0;
    int found = qsm_dedup_lookup(q, req, len, keys, ids, &cnt);
    *n = 0;
    if (found < 0)
        return CMQ_EINVAL;
    for (uint32_t i = 0; i < cnt && !*first_key; i++)
        *first_key = keys[i];
    if (!found || (uint32_t)found != cnt)
        return CMQ_ENOTFOUND; /* none, or a batch the window holds only part of */
    *n = cnt;
    return CMQ_OK;
}
