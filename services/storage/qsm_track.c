/* qsm_track.c: tracked messages and the scan over the log.  A `struct rec` is
 * a message the queue must remember (delayed, ready again, leased, parked
 * behind its ordered group, rewound, half); this file moves recs between
 * their containers (I2), hands an ordered group on (I5), lets time pass
 * (leases expire, delays end), and scans the untracked backlog through the
 * spans for the next deliverable message (I4), with a read budget per
 * command so every replica stops at the same place. */
#include "qsm_internal.h"

#include "status.h"

#include <assert.h>
#include <stdlib.h>

/* ---- tracked messages ---- */

void qsm_sweep_note(struct queue *qu, const struct rec *r)
{
    uint64_t d = r->enqueue_ms + S_TO_MS(qu->a.msg_retention_s);
    if (qu->a.dlq_policy == QSM_DLQ_TTL)
        d = u64_min(d, r->enqueue_ms + S_TO_MS(qu->a.dlq_max_ttl_s));
    qu->sweep_due_ms = u64_min(qu->sweep_due_ms, d);
}

struct rec *qsm_rec_new(struct queue *qu, uint64_t pos, uint64_t enqueue_ms, uint64_t group)
{
    struct rec *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->pos = pos;
    r->enqueue_ms = enqueue_ms;
    r->group = group;
    r->hpos = UINT32_MAX;
    if (qsm_map_put(&qu->recs, pos, r)) {
        free(r);
        return NULL;
    }
    qsm_sweep_note(qu, r);
    return r;
}

struct group *qsm_group_get(struct queue *qu, uint64_t key)
{
    return key ? qsm_map_get(&qu->groups, key) : NULL;
}

/* Takes `r` out of its container (I2) without freeing it. */
void qsm_rec_detach(struct queue *qu, struct rec *r)
{
    switch (r->state) {
    case REC_READY:
        qsm_heap_remove(&qu->ready, r);
        break;
    case REC_LEASED:
        qsm_heap_remove(&qu->timers, r);
        qsm_map_del(&qu->handles, r->handle);
        r->handle = 0;
        qu->n_leased--;
        break;
    case REC_DELAYED:
        qsm_heap_remove(&qu->timers, r);
        qu->n_delayed--;
        break;
    case REC_REWOUND:
        qu->n_rewound--;
        break;
    case REC_HALF:
        qsm_heap_remove(&qu->half, r);
        qu->n_half--;
        break;
    case REC_PARKED: {
        struct group *g = qsm_group_get(qu, r->group);
        assert(g);
        struct rec **pp = &g->park_first, *prev = NULL;
        while (*pp != r) {
            prev = *pp;
            pp = &(*pp)->park_next;
        }
        *pp = r->park_next;
        if (g->park_last == r)
            g->park_last = prev;
        r->park_next = NULL;
        qu->n_parked--;
        qu->scan_blocked = false;
        break;
    }
    default:
        assert(0);
    }
    r->state = 0;
}

/* The group's head left: its earliest parked message becomes the head (I5). */
void qsm_group_advance(struct queue *qu, struct group *g)
{
    struct rec *p = g->park_first;
    if (!p) {
        qsm_map_del(&qu->groups, g->key);
        free(g);
        return;
    }
    g->park_first = p->park_next;
    if (!g->park_first)
        g->park_last = NULL;
    p->park_next = NULL;
    qu->n_parked--;
    qu->scan_blocked = false;
    p->state = REC_READY;
    g->head = p;
    if (qsm_heap_push(&qu->ready, p))
        qu->oom = true;
}

/* Frees a rec already out of its container, handing its group on. */
void qsm_rec_forget(struct queue *qu, struct rec *r)
{
    assert(r->state == 0);
    qsm_map_del(&qu->recs, r->pos);
    struct group *g = qsm_group_get(qu, r->group);
    if (g && g->head == r)
        qsm_group_advance(qu, g);
    free(r);
}

/* Forgets a tracked message (deleted, expired, dead-lettered, rewound). */
void qsm_rec_drop(struct queue *qu, struct rec *r)
{
    qsm_rec_detach(qu, r);
    qsm_rec_forget(qu, r);
}

int qsm_rec_make_ready(struct queue *qu, struct rec *r)
{
    r->state = REC_READY;
    return qsm_heap_push(&qu->ready, r);
}

bool qsm_rec_expired(const struct queue *qu, const struct rec *r, uint64_t now)
{
    return r->enqueue_ms + S_TO_MS(qu->a.msg_retention_s) <= now;
}

/* Time passes for one queue: leases expire and delayed messages come due. */
int qsm_queue_advance(struct qsm *q, struct queue *qu, uint64_t now)
{
    struct rec *r;
    while ((r = qsm_heap_top(&qu->timers)) && r->time_ms <= now) {
        uint8_t was = r->state;
        qsm_trace(q, was == REC_LEASED ? QSM_EV_LEASE_EXPIRED : QSM_EV_VISIBLE, qu->id, r->pos,
                  r->time_ms, was == REC_LEASED ? r->handle : 0, 0, 0, NULL, 0);
        qsm_rec_detach(qu, r);
        if (qsm_rec_expired(qu, r, now)) {
            qsm_trace(q, QSM_EV_EXPIRED, qu->id, r->pos, now, 0, 0, 0, NULL, 0);
            qsm_rec_forget(qu, r);
            continue;
        }
        int rc = qsm_rec_make_ready(qu, r);
        if (rc)
            return rc;
        qsm_sweep_note(qu, r);
    }
    return CMQ_OK;
}

void qsm_cursor_pass(struct queue *qu, bool delayed)
{
    qu->cur_pos++;
    if (!delayed) {
        qu->cur_passed++;
        qu->backlog = sat_sub(qu->backlog, 1);
    }
}

/* Finds the next message the scan may deliver (I4), passing expired and
 * tracked ones, and, in ordered queues, parking messages of busy groups.
 * *found = false when the spans are exhausted, the read budget is spent or
 * the parked limit is reached.  Does not pass the candidate itself. */
int qsm_scan_peek(struct qsm *q, struct queue *qu, uint32_t *budget, struct cand *c,
                  bool *found)
{
    *found = false;
    uint64_t now = q->now_ms;
    while (qu->n_spans && !qu->scan_blocked) {
        struct span *sp = &qu->spans[qu->cur_span];
        if (qu->cur_pos < POS(sp->first, 0))
            qu->cur_pos = POS(sp->first, 0);
        uint64_t idx = POS_INDEX(qu->cur_pos);
        if (idx > sp->last) {
            if (qu->cur_span + 1 >= qu->n_spans) {
                qu->backlog = 0; /* everything ahead of the cursor is passed: exact again */
                return CMQ_OK;
            }
            qu->cur_span++;
            qu->cur_pos = POS(qu->spans[qu->cur_span].first, 0);
            qu->cur_passed = 0;
            qu->head_ms = qu->spans[qu->cur_span].min_ms;
            if (qu->a.rewind_s == 0)
                qsm_spans_trim(qu, now); /* drops the spans behind */
            continue;
        }
        /* every visit counts, cached or not: the budget must run out at the
         * same point on a replica whose cache differs (one restored from a
         * snapshot), or the results would differ */
        if (*budget == 0)
            return CMQ_OK;
        (*budget)--;
        const struct send_view *s;
        uint64_t lms;
        int rc = qsm_entry_load(q, idx, qu->id, &s, &lms);
        if (rc)
            return rc;
        uint32_t slot = POS_SLOT(qu->cur_pos);
        if (!s || idx < qu->create_index || slot >= s->n ||
            qsm_send_validate(s, qu->a.ordered) != CMQ_OK) {
            qu->cur_pos = POS(idx + 1, 0);
            continue;
        }
        const struct send_item *m = &s->m[slot];
        bool half = m->txn_check_ms > 0;
        bool delayed = m->delay_s > 0 || half;
        qu->head_ms = lms;
        if (delayed) {
            bool replay;
            if (half) { /* tracked since its Send; replayed only if committed and then rewound */
                const struct rec *hr = qu->n_rewound && qu->cur_pos < qu->replay_end
                                           ? qsm_map_get(&qu->recs, qu->cur_pos)
                                           : NULL;
                replay = hr && hr->state == REC_REWOUND;
            } else {
                replay = qu->cur_pos < qu->replay_end &&
                         lms + S_TO_MS(m->delay_s) <= qu->rewind_ms;
            }
            if (!replay) {
                qsm_cursor_pass(qu, true); /* tracked since its Send (I4) */
                continue;
            }
        }
        struct rec *rw = NULL;
        if (qu->n_rewound && qu->cur_pos < qu->replay_end) {
            rw = qsm_map_get(&qu->recs, qu->cur_pos);
            assert(!rw || rw->state == REC_REWOUND);
        }
        if (lms + S_TO_MS(qu->a.msg_retention_s) <= now) {
            if (rw)
                qsm_rec_drop(qu, rw);
            qsm_cursor_pass(qu, delayed);
            continue;
        }
        uint64_t gk = qsm_group_key(qu, m);
        struct group *g = qsm_group_get(qu, gk);
        if (g) {
            if (qu->n_parked >= QSM_PARKED_MAX) {
                qu->scan_blocked = true;
                return CMQ_OK;
            }
            struct rec *r = rw;
            if (r)
                qsm_rec_detach(qu, r);
            else if (!(r = qsm_rec_new(qu, qu->cur_pos, lms, gk)))
                return CMQ_ENOMEM;
            r->state = REC_PARKED;
            if (g->park_last)
                g->park_last->park_next = r;
            else
                g->park_first = r;
            g->park_last = r;
            qu->n_parked++;
            qsm_cursor_pass(qu, delayed);
            continue;
        }
        c->pos = qu->cur_pos;
        c->enqueue_ms = lms;
        c->delayed = delayed;
        c->item = m;
        c->rewound = rw;
        *found = true;
        return CMQ_OK;
    }
    return CMQ_OK;
}

/* Lowest READY rec, dropping expired ones on the way. */
struct rec *qsm_ready_top(struct queue *qu, uint64_t now)
{
    struct rec *r;
    while ((r = qsm_heap_top(&qu->ready)) && qsm_rec_expired(qu, r, now))
        qsm_rec_drop(qu, r);
    return r;
}

static int rec_cmp_pos(const void *a, const void *b)
{
    const struct rec *x = *(struct rec *const *)a, *y = *(struct rec *const *)b;
    return x->pos < y->pos ? -1 : x->pos > y->pos;
}

/* All tracked recs of `qu` in position order (malloc'd array, may be NULL when n = 0). */
int qsm_recs_sorted(const struct queue *qu, struct rec ***out, size_t *n)
{
    *n = 0;
    *out = NULL;
    if (!qu->recs.n)
        return CMQ_OK;
    struct rec **v = malloc(qu->recs.n * sizeof *v);
    if (!v)
        return CMQ_ENOMEM;
    for (uint32_t i = 0; i < qu->recs.cap; i++)
        if (qu->recs.keys[i])
            v[(*n)++] = qu->recs.vals[i];
    qsort(v, *n, sizeof *v, rec_cmp_pos);
    *out = v;
    return CMQ_OK;
}
