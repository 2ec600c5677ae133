/* qsm_snap.c: the queue state machine's snapshot image: writing the whole
 * state (queues in id order, their spans and tracked messages, the pending
 * dead-letter moves, the dedup window) and reading it back into a fresh
 * state.  The format is docs/queue-state-machine.md's; it is replicated and
 * on disk, so it changes only with SNAP_VERSION. */
#include "qsm_internal.h"

#include "crc32c.h"
#include "status.h"

#include <stdlib.h>
#include <string.h>

/* ---- snapshots ----
 * Little-endian, fixed-width fields; see docs/queue-state-machine.md. */

#define SNAP_MAGIC 0x534d5351u /* "QSMS" */
#define SNAP_VERSION 3u /* 2: + pending dead-letter moves and the dedup window;
                          * 3: + each window entry's leader clock */

struct wbuf {
    uint8_t *p;
    size_t n, cap;
    bool oom;
};

static void w_bytes(struct wbuf *w, const void *src, size_t len)
{
    if (w->oom)
        return;
    if (w->n + len > w->cap) {
        size_t cap = w->cap ? w->cap : 4096;
        while (cap < w->n + len)
            cap *= 2;
        uint8_t *p = realloc(w->p, cap);
        if (!p) {
            w->oom = true;
            return;
        }
        w->p = p;
        w->cap = cap;
    }
    memcpy(w->p + w->n, src, len);
    w->n += len;
}

static void w_u64(struct wbuf *w, uint64_t v)
{
    uint8_t b[8];
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)(v >> (8 * i));
    w_bytes(w, b, 8);
}

static void w_u32(struct wbuf *w, uint32_t v)
{
    uint8_t b[4];
    for (int i = 0; i < 4; i++)
        b[i] = (uint8_t)(v >> (8 * i));
    w_bytes(w, b, 4);
}

static void w_u8(struct wbuf *w, uint8_t v)
{
    w_bytes(w, &v, 1);
}

static void w_attrs(struct wbuf *w, const struct qsm_attrs *a)
{
    w_u64(w, a->max_msg_heap_num);
    w_u32(w, a->polling_wait_s);
    w_u32(w, a->visibility_timeout_s);
    w_u32(w, a->max_msg_size);
    w_u32(w, a->msg_retention_s);
    w_u32(w, a->rewind_s);
    w_u32(w, a->dlq_policy);
    w_u64(w, a->dlq_queue_id);
    w_u32(w, a->dlq_max_receive_count);
    w_u32(w, a->dlq_max_ttl_s);
    w_u8(w, a->ordered);
    w_u32(w, a->max_inflight_num);
}

int qsm_snapshot_write(const struct qsm *q, qsm_sink_fn *sink, void *arg)
{
    if (q->failed)
        return q->failed;
    struct wbuf w = {0};
    w_u32(&w, SNAP_MAGIC);
    w_u32(&w, SNAP_VERSION);
    w_u32(&w, q->partition);
    w_u64(&w, q->applied_index);
    w_u64(&w, q->applied_term);
    w_u64(&w, q->now_ms);
    w_u8(&w, q->tick_pending);
    w_u32(&w, q->n_queues);
    int rc = CMQ_OK;
    for (uint32_t i = 0; i < q->n_queues && !rc; i++) {
        const struct queue *qu = q->queues[i];
        uint32_t nl = (uint32_t)strlen(qu->name);
        w_u64(&w, qu->id);
        w_u32(&w, nl);
        w_bytes(&w, qu->name, nl);
        w_attrs(&w, &qu->a);
        w_u64(&w, qu->create_index);
        w_u64(&w, qu->create_ms);
        w_u64(&w, qu->modify_ms);
        w_u32(&w, qu->n_spans);
        w_u32(&w, qu->cur_span);
        w_u64(&w, qu->cur_pos);
        w_u64(&w, qu->cur_passed);
        w_u64(&w, qu->replay_end);
        w_u64(&w, qu->rewind_ms);
        w_u64(&w, qu->head_ms);
        w_u64(&w, qu->backlog);
        w_u64(&w, qu->retained);
        w_u64(&w, qu->sweep_due_ms);
        w_u8(&w, qu->scan_blocked);
        for (uint32_t j = 0; j < qu->n_spans; j++) {
            const struct span *s = &qu->spans[j];
            w_u64(&w, s->first);
            w_u64(&w, s->last);
            w_u64(&w, s->n_live);
            w_u64(&w, s->n_deleted);
            w_u64(&w, s->min_ms);
            w_u64(&w, s->max_ms);
        }
        struct rec **v;
        size_t n;
        rc = qsm_recs_sorted(qu, &v, &n);
        if (rc)
            break;
        w_u64(&w, n);
        for (size_t j = 0; j < n; j++) {
            const struct rec *r = v[j];
            w_u64(&w, r->pos);
            w_u64(&w, r->handle);
            w_u64(&w, r->enqueue_ms);
            w_u64(&w, r->time_ms);
            w_u64(&w, r->first_dequeue_ms);
            w_u64(&w, r->group);
            w_u32(&w, r->dequeue_count);
            w_u8(&w, r->state);
        }
        free(v);
    }
    if (!rc) {
        w_u32(&w, q->n_pend);
        for (uint32_t i = 0; i < q->n_pend; i++) {
            const struct qsm_dlq_move *m = &q->pend[i];
            w_u64(&w, m->queue_id);
            w_u64(&w, m->dlq_queue_id);
            w_u64(&w, m->msg_id);
            w_u64(&w, m->enqueue_ms);
            w_u64(&w, m->first_dequeue_ms);
            w_u32(&w, m->dequeue_count);
            w_u32(&w, m->reason);
        }
        w_u32(&w, dedupwin_count(&q->dd)); /* oldest first: a reader rebuilds the same FIFO */
        for (uint32_t i = 0; i < dedupwin_count(&q->dd); i++) {
            const struct dedupwin_ent *d = dedupwin_at(&q->dd, i);
            w_u64(&w, d->scope);
            w_u64(&w, d->key);
            w_u64(&w, d->msg_id);
            w_u64(&w, d->ms);
        }
    }
    if (!rc && w.oom)
        rc = CMQ_ENOMEM;
    if (!rc) {
        uint32_t crc = crc32c(0, w.p, w.n);
        w_u32(&w, crc);
        rc = w.oom ? CMQ_ENOMEM : sink(arg, w.p, w.n);
    }
    free(w.p);
    return rc;
}

struct rbuf {
    const uint8_t *p, *end;
    bool bad;
};

static uint64_t r_uint(struct rbuf *r, int bytes)
{
    if (r->bad || (size_t)(r->end - r->p) < (size_t)bytes) {
        r->bad = true;
        return 0;
    }
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++)
        v |= (uint64_t)r->p[i] << (8 * i);
    r->p += bytes;
    return v;
}
#define R64(r) r_uint((r), 8)
#define R32(r) ((uint32_t)r_uint((r), 4))
#define R8(r) ((uint8_t)r_uint((r), 1))

static void r_attrs(struct rbuf *r, struct qsm_attrs *a)
{
    a->max_msg_heap_num = R64(r);
    a->polling_wait_s = R32(r);
    a->visibility_timeout_s = R32(r);
    a->max_msg_size = R32(r);
    a->msg_retention_s = R32(r);
    a->rewind_s = R32(r);
    a->dlq_policy = R32(r);
    a->dlq_queue_id = R64(r);
    a->dlq_max_receive_count = R32(r);
    a->dlq_max_ttl_s = R32(r);
    a->ordered = R8(r) != 0;
    a->max_inflight_num = R32(r);
}

/* Rebuilds one queue's containers from its recs (given in position order). */
static int queue_load_recs(struct queue *qu, struct rbuf *r, uint64_t n)
{
    uint64_t prev = 0;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t pos = R64(r);
        if (r->bad || pos <= prev)
            return CMQ_ECORRUPT;
        prev = pos;
        struct rec *x = qsm_rec_new(qu, pos, 0, 0);
        if (!x)
            return CMQ_ENOMEM;
        x->handle = R64(r);
        x->enqueue_ms = R64(r);
        x->time_ms = R64(r);
        x->first_dequeue_ms = R64(r);
        x->group = R64(r);
        x->dequeue_count = R32(r);
        uint8_t st = R8(r);
        if (r->bad)
            return CMQ_ECORRUPT;
        int rc = CMQ_OK;
        struct group *g = qsm_group_get(qu, x->group);
        switch (st) {
        case REC_READY:
        case REC_LEASED:
            if (x->group) {
                if (g)
                    return CMQ_ECORRUPT; /* two heads */
                g = calloc(1, sizeof *g);
                if (!g)
                    return CMQ_ENOMEM;
                g->key = x->group;
                g->head = x;
                if (qsm_map_put(&qu->groups, g->key, g)) {
                    free(g);
                    return CMQ_ENOMEM;
                }
            }
            x->state = st;
            if (st == REC_READY) {
                rc = qsm_heap_push(&qu->ready, x);
            } else {
                if (!x->handle || qsm_map_get(&qu->handles, x->handle))
                    return CMQ_ECORRUPT;
                rc = qsm_heap_push(&qu->timers, x);
                if (!rc)
                    rc = qsm_map_put(&qu->handles, x->handle, x);
                qu->n_leased++;
            }
            break;
        case REC_DELAYED:
            x->state = st;
            rc = qsm_heap_push(&qu->timers, x);
            qu->n_delayed++;
            break;
        case REC_REWOUND:
            x->state = st;
            qu->n_rewound++;
            break;
        case REC_HALF:
            if (x->group || !x->handle)
                return CMQ_ECORRUPT;
            x->state = st;
            rc = qsm_heap_push(&qu->half, x);
            qu->n_half++;
            break;
        case REC_PARKED:
            if (!g)
                return CMQ_ECORRUPT; /* a parked message follows its group's head */
            x->state = st;
            if (g->park_last)
                g->park_last->park_next = x;
            else
                g->park_first = x;
            g->park_last = x;
            qu->n_parked++;
            break;
        default:
            return CMQ_ECORRUPT;
        }
        if (rc)
            return rc;
    }
    return CMQ_OK;
}

int qsm_snapshot_read(struct qsm *q, const uint8_t *buf, size_t len)
{
    if (len < 8 || crc32c(0, buf, len - 4) != ((uint32_t)buf[len - 4] |
                                               (uint32_t)buf[len - 3] << 8 |
                                               (uint32_t)buf[len - 2] << 16 |
                                               (uint32_t)buf[len - 1] << 24))
        return CMQ_ECORRUPT;
    struct rbuf r = {buf, buf + len - 4, false};
    if (R32(&r) != SNAP_MAGIC)
        return CMQ_ECORRUPT;
    uint32_t version = R32(&r);
    if (version < 1 || version > SNAP_VERSION)
        return CMQ_ECORRUPT;
    if (R32(&r) != q->partition)
        return r.bad ? CMQ_ECORRUPT : CMQ_EINVAL;
    uint64_t applied = R64(&r), term = R64(&r), now = R64(&r);
    bool pending = R8(&r) != 0;
    uint32_t nq = R32(&r);
    if (r.bad || nq > QSM_QUEUES_MAX)
        return CMQ_ECORRUPT;
    struct queue **v = nq ? calloc(nq, sizeof *v) : NULL;
    if (nq && !v)
        return CMQ_ENOMEM;
    int rc = CMQ_OK;
    uint32_t made = 0;
    for (uint32_t i = 0; i < nq && !rc; i++) {
        uint64_t id = R64(&r);
        if (r.bad || !id || (i && id <= v[i - 1]->id)) {
            rc = CMQ_ECORRUPT;
            break;
        }
        struct queue *qu = v[made++] = qsm_queue_new(id);
        if (!qu) {
            rc = CMQ_ENOMEM;
            break;
        }
        uint32_t nl = R32(&r);
        if (r.bad || nl > QSM_NAME_LEN_MAX || (size_t)(r.end - r.p) < nl) {
            rc = CMQ_ECORRUPT;
            break;
        }
        memcpy(qu->name, r.p, nl);
        r.p += nl;
        r_attrs(&r, &qu->a);
        qu->create_index = R64(&r);
        qu->create_ms = R64(&r);
        qu->modify_ms = R64(&r);
        uint32_t ns = R32(&r);
        qu->cur_span = R32(&r);
        qu->cur_pos = R64(&r);
        qu->cur_passed = R64(&r);
        qu->replay_end = R64(&r);
        qu->rewind_ms = R64(&r);
        qu->head_ms = R64(&r);
        qu->backlog = R64(&r);
        qu->retained = R64(&r);
        uint64_t sweep = R64(&r);
        qu->scan_blocked = R8(&r) != 0;
        if (r.bad || ns > QSM_SPANS_MAX || (ns && qu->cur_span >= ns) || (!ns && qu->cur_span)) {
            rc = CMQ_ECORRUPT;
            break;
        }
        if (ns) {
            qu->spans = calloc(ns, sizeof *qu->spans);
            if (!qu->spans) {
                rc = CMQ_ENOMEM;
                break;
            }
            qu->cap_spans = ns;
        }
        for (uint32_t j = 0; j < ns; j++) {
            struct span *s = &qu->spans[j];
            s->first = R64(&r);
            s->last = R64(&r);
            s->n_live = R64(&r);
            s->n_deleted = R64(&r);
            s->min_ms = R64(&r);
            s->max_ms = R64(&r);
            if (s->last < s->first || (j && s->first <= qu->spans[j - 1].last))
                r.bad = true;
        }
        qu->n_spans = ns;
        uint64_t nr = R64(&r);
        if (r.bad || nr > (uint64_t)(r.end - r.p) / 49) {
            rc = CMQ_ECORRUPT;
            break;
        }
        rc = queue_load_recs(qu, &r, nr);
        qu->sweep_due_ms = sweep; /* qsm_rec_new lowered it while loading */
    }
    /* version 2: pending moves and the dedup window, into a scratch qsm
     * (version 2 entries have no clock: they count from the image's) */
    struct qsm t = {0};
    dedupwin_init(&t.dd, q->dd.soft_max, q->dd.hard_max, q->dd.keep_ms);
    if (!rc && version >= 2) {
        uint32_t np = R32(&r);
        if (r.bad || np > QSM_DLQ_PENDING_MAX + QSM_DLQ_MOVES_MAX)
            rc = CMQ_ECORRUPT;
        for (uint32_t i = 0; i < np && !rc; i++) {
            struct qsm_dlq_move m = {0};
            m.queue_id = R64(&r);
            m.dlq_queue_id = R64(&r);
            m.msg_id = R64(&r);
            m.enqueue_ms = R64(&r);
            m.first_dequeue_ms = R64(&r);
            m.dequeue_count = R32(&r);
            m.reason = R32(&r);
            if (r.bad || (t.n_pend && m.msg_id <= t.pend[t.n_pend - 1].msg_id))
                rc = CMQ_ECORRUPT;
            else
                rc = qsm_pend_add(&t, &m);
        }
        uint32_t nd = rc ? 0 : R32(&r);
        if (r.bad || nd > QSM_DEDUP_HARD_MAX)
            rc = CMQ_ECORRUPT;
        for (uint32_t i = 0; i < nd && !rc; i++) {
            uint64_t qid = R64(&r), key = R64(&r), id = R64(&r);
            uint64_t ms = version >= 3 ? R64(&r) : now;
            rc = r.bad || !key ? CMQ_ECORRUPT : dedupwin_note(&t.dd, qid, key, id, ms);
        }
    }
    if (!rc && (r.bad || r.p != r.end))
        rc = CMQ_ECORRUPT;
    if (rc) {
        free(t.pend);
        dedupwin_free(&t.dd);
        qsm_queues_free(v, made);
        return rc;
    }
    free(q->pend);
    dedupwin_free(&q->dd);
    q->pend = t.pend;
    q->n_pend = t.n_pend;
    q->cap_pend = t.cap_pend;
    q->dd = t.dd;
    qsm_cache_drop(q);
    qsm_queues_free(q->queues, q->n_queues);
    q->queues = v;
    q->n_queues = q->cap_queues = nq;
    q->applied_index = applied;
    q->applied_term = term;
    q->now_ms = now;
    q->tick_pending = pending;
    q->failed = 0;
    return CMQ_OK;
}
