/* qsm.c: the replicated queue state machine's floor (see qsm.h for the
 * contract, qsm_internal.h for the model and its invariants I1-I6, and
 * docs/queue-state-machine.md for the design).
 *
 * Owns: the life cycle of a `struct qsm`, its table of queues (sorted by id),
 * the failed state and the read-back cache's release, the trace hook, and the
 * read-only queries that need nothing but the model (stats, visibility,
 * compaction point, memory).  Calls nothing of the other qsm_*.c files but
 * the indexes: they all stand on it.  The apply dispatch is qsm_apply.c. */
#include "qsm_internal.h"

#include "status.h"

#include <stdlib.h>
#include <string.h>

/* Reports one state change of a message to the tracer (docs §9). */
void qsm_trace(const struct qsm *q, uint32_t event, uint64_t queue_id, uint64_t pos,
               uint64_t time_ms, uint64_t handle, uint64_t due_ms, uint64_t aux,
               const char *addr, size_t addr_len)
{
    if (!q->tracer.event)
        return;
    struct qsm_trace_ev ev = {
        .event = event, .queue_id = queue_id,
        .msg_id = pos ? qsm_id_make(q->partition, pos >> QSM_ID_SLOT_BITS, (uint32_t)(pos & 15u)) : 0,
        .time_ms = time_ms, .handle = handle, .due_ms = due_ms, .aux = aux,
        .addr = addr, .addr_len = addr ? strnlen(addr, addr_len) : 0,
    };
    q->tracer.event(q->tracer.arg, q->applied_index, &ev);
}

struct queue *qsm_queue_find(const struct qsm *q, uint64_t id, uint32_t *at)
{
    uint32_t lo = 0, hi = q->n_queues;
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        if (q->queues[mid]->id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (at)
        *at = lo;
    return lo < q->n_queues && q->queues[lo]->id == id ? q->queues[lo] : NULL;
}

void qsm_queue_free(struct queue *qu)
{
    if (!qu)
        return;
    for (uint32_t i = 0; i < qu->recs.cap; i++)
        free(qu->recs.vals[i]);
    for (uint32_t i = 0; i < qu->groups.cap; i++)
        free(qu->groups.vals[i]);
    qsm_map_free(&qu->recs);
    qsm_map_free(&qu->handles);
    qsm_map_free(&qu->groups);
    free(qu->ready.a);
    free(qu->timers.a);
    free(qu->half.a);
    free(qu->spans);
    free(qu);
}

struct queue *qsm_queue_new(uint64_t id)
{
    struct queue *qu = calloc(1, sizeof *qu);
    if (!qu)
        return NULL;
    qu->id = id;
    qu->timers.by_time = true;
    qu->half.by_time = true;
    qu->sweep_due_ms = NO_TIME;
    return qu;
}

void qsm_cache_drop(struct qsm *q)
{
    free(q->cache_buf);
    q->cache_buf = NULL;
    q->cache_is_send = false;
    q->cache_index = 0;
}

int qsm_fail(struct qsm *q, int status)
{
    if (!q->failed)
        q->failed = status ? status : CMQ_EIO;
    return q->failed;
}

/* ---- results ---- */

void qsm_result_release(struct qsm_result *res)
{
    if (!res)
        return;
    for (uint32_t i = 0; i < res->n_delivered; i++)
        free(res->delivered[i].body);
    for (uint32_t i = 0; i < res->n_dlq; i++)
        free(res->dlq[i].body);
    free(res->dlq);
    bool skip = res->skip_bodies;
    memset(res, 0, sizeof *res);
    res->skip_bodies = skip;
}

/* ---- life cycle ---- */

int qsm_create(uint32_t partition_id, const struct qsm_reader *reader, struct qsm **out)
{
    *out = NULL;
    if (partition_id < 1 || partition_id > QSM_PARTITION_MAX || !reader || !reader->read_entry)
        return CMQ_EINVAL;
    struct qsm *q = calloc(1, sizeof *q);
    if (!q)
        return CMQ_ENOMEM;
    q->partition = partition_id;
    q->reader = *reader;
    dedupwin_init(&q->dd, QSM_DEDUP_MAX, QSM_DEDUP_HARD_MAX, QSM_DEDUP_KEEP_MS);
    q->cmd = calloc(1, sizeof *q->cmd);
    if (!q->cmd) {
        qsm_destroy(q);
        return CMQ_ENOMEM;
    }
    *out = q;
    return CMQ_OK;
}

void qsm_queues_free(struct queue **v, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        qsm_queue_free(v[i]);
    free(v);
}

void qsm_destroy(struct qsm *q)
{
    if (!q)
        return;
    qsm_cache_drop(q);
    qsm_queues_free(q->queues, q->n_queues);
    free(q->cmd);
    free(q->pend);
    dedupwin_free(&q->dd);
    free(q);
}

int qsm_stats(const struct qsm *q, uint64_t queue_id, struct qsm_stats *out)
{
    memset(out, 0, sizeof *out);
    const struct queue *qu = qsm_queue_find(q, queue_id, NULL);
    if (!qu)
        return CMQ_ENOTFOUND;
    out->active = qu->ready.n + qu->backlog;
    out->inactive = qu->n_leased;
    out->delayed = qu->n_delayed;
    out->parked = qu->n_parked;
    out->rewound = qu->n_rewound;
    out->half = qu->n_half;
    out->retained = qu->retained;
    out->spans = qu->n_spans;
    out->create_index = qu->create_index;
    out->attrs = qu->a;
    memcpy(out->name, qu->name, sizeof out->name);
    uint64_t min = qu->backlog ? qu->head_ms : NO_TIME;
    for (uint32_t i = 0; i < qu->recs.cap; i++)
        if (qu->recs.keys[i])
            min = u64_min(min, ((const struct rec *)qu->recs.vals[i])->enqueue_ms);
    out->min_msg_time_ms = min == NO_TIME ? 0 : min;
    return CMQ_OK;
}

bool qsm_has_visible(const struct qsm *q, uint64_t queue_id, uint64_t now_ms)
{
    const struct queue *qu = qsm_queue_find(q, queue_id, NULL);
    if (!qu || q->failed)
        return false;
    if (qu->ready.n)
        return true;
    const struct rec *t = qsm_heap_top(&qu->timers);
    if (t && t->time_ms <= now_ms)
        return true;
    /* rewound messages the backlog does not count (delayed or transaction
     * messages taken back by a rewind) are found by the scan too */
    return (qu->backlog > 0 || qu->n_rewound > 0) && !qu->scan_blocked;
}

uint64_t qsm_first_needed_index(const struct qsm *q)
{
    uint64_t first = q->applied_index + 1;
    if (q->n_pend) /* bodies of undelivered dead-letter moves */
        for (uint32_t i = 0; i < q->n_pend; i++)
            first = u64_min(first, qsm_id_index(q->pend[i].msg_id));
    for (uint32_t i = 0; i < q->n_queues; i++) {
        const struct queue *qu = q->queues[i];
        if (qu->n_spans)
            first = u64_min(first, qu->spans[0].first);
        for (uint32_t j = 0; j < qu->recs.cap; j++)
            if (qu->recs.keys[j])
                first = u64_min(first, POS_INDEX(qu->recs.keys[j]));
    }
    return first;
}

void qsm_set_tracer(struct qsm *q, const struct qsm_tracer *t)
{
    if (t)
        q->tracer = *t;
    else
        memset(&q->tracer, 0, sizeof q->tracer);
}

uint64_t qsm_applied_index(const struct qsm *q)
{
    return q->applied_index;
}

uint64_t qsm_entry_reads(const struct qsm *q)
{
    return q->reads;
}

size_t qsm_queue_ids(const struct qsm *q, uint64_t *ids, size_t max)
{
    for (uint32_t i = 0; i < q->n_queues && i < max; i++)
        ids[i] = q->queues[i]->id;
    return q->n_queues;
}

size_t qsm_memory_bytes(const struct qsm *q)
{
    size_t b = sizeof *q + sizeof(cmq_StorageCommand) + q->cap_queues * sizeof(void *);
    for (uint32_t i = 0; i < q->n_queues; i++) {
        const struct queue *qu = q->queues[i];
        b += sizeof *qu + qu->cap_spans * sizeof(struct span);
        b += (size_t)(qu->recs.cap + qu->handles.cap + qu->groups.cap) *
             (sizeof(uint64_t) + sizeof(void *));
        b += (size_t)(qu->ready.cap + qu->timers.cap + qu->half.cap) * sizeof(void *);
        b += (size_t)qu->recs.n * sizeof(struct rec) + (size_t)qu->groups.n * sizeof(struct group);
    }
    b += (size_t)q->cap_pend * sizeof(struct qsm_dlq_move);
    b += dedupwin_memory(&q->dd);
    return b;
}
