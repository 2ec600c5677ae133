/* qsm_span.c: a queue's log spans (invariant I3): the bounded, sorted list of
 * log ranges that hold every Send entry of the queue, with per-span counters
 * that keep statistics without reading the log.  Appending a Send, compacting
 * the list when it is full (merging the smallest gaps), and trimming spans
 * neither the scan nor a rewind can need.
 *
 * Knows spans and the cursor's place in them; nothing of tracked messages. */
#include "qsm_internal.h"

#include "status.h"

#include <stdlib.h>
#include <string.h>

/* ---- spans ---- */

int qsm_span_find(const struct queue *qu, uint64_t index)
{
    uint32_t lo = 0, hi = qu->n_spans;
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        if (qu->spans[mid].last < index)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < qu->n_spans && qu->spans[lo].first <= index ? (int)lo : -1;
}

void qsm_span_remove(struct queue *qu, uint32_t j)
{
    memmove(&qu->spans[j], &qu->spans[j + 1], (qu->n_spans - j - 1) * sizeof *qu->spans);
    qu->n_spans--;
}

static int u64_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* When the list is full: merge the `merges` neighbour pairs with the smallest
 * gaps (entries the scan would then read in vain; gaps behind the cursor, read
 * only by a rewind, cost a sixteenth), in one pass, keeping the cursor where
 * it was.  Called with merges ~ cap / 4, so its O(n log n) is O(log n) per
 * Send.  Ties are broken by position: deterministic. */
static int spans_compact(struct queue *qu, uint32_t merges)
{
    uint32_t n = qu->n_spans;
    if (n < 2 || merges == 0)
        return CMQ_OK;
    if (merges > n - 1)
        merges = n - 1;
    uint64_t *gap = malloc(2 * (size_t)(n - 1) * sizeof *gap);
    if (!gap)
        return CMQ_ENOMEM;
    uint64_t *sorted = gap + (n - 1);
    for (uint32_t j = 0; j + 1 < n; j++) {
        gap[j] = qu->spans[j + 1].first - qu->spans[j].last - 1;
        if (j + 1 < qu->cur_span)
            gap[j] >>= 4;
        sorted[j] = gap[j];
    }
    qsort(sorted, n - 1, sizeof *sorted, u64_cmp);
    uint64_t t = sorted[merges - 1];
    uint32_t below = 0;
    for (uint32_t j = 0; j + 1 < n; j++)
        below += gap[j] < t;
    uint32_t ties = merges - below;
    uint32_t w = 0, cur = 0;
    for (uint32_t j = 0; j < n; j++) {
        bool merge = false;
        if (j > 0) {
            if (gap[j - 1] < t) {
                merge = true;
            } else if (gap[j - 1] == t && ties) {
                ties--;
                merge = true;
            }
        }
        if (merge) {
            struct span *a = &qu->spans[w - 1];
            const struct span *b = &qu->spans[j];
            if (qu->cur_span == j) {
                cur = w - 1;
                qu->cur_passed += a->n_live; /* all of a is behind the cursor */
            }
            a->last = b->last;
            a->n_live += b->n_live;
            a->n_deleted += b->n_deleted;
            a->min_ms = u64_min(a->min_ms, b->min_ms);
            a->max_ms = u64_max(a->max_ms, b->max_ms);
        } else {
            if (qu->cur_span == j)
                cur = w;
            qu->spans[w++] = qu->spans[j];
        }
    }
    qu->n_spans = w;
    qu->cur_span = cur;
    free(gap);
    return CMQ_OK;
}

/* Spans a queue may keep: the partition's budget shared by its queues. */
uint32_t qsm_span_cap(const struct qsm *q)
{
    uint32_t c = QSM_SPANS_BUDGET / (q->n_queues ? q->n_queues : 1);
    return c < QSM_SPANS_MIN ? QSM_SPANS_MIN : c > QSM_SPANS_MAX ? QSM_SPANS_MAX : c;
}

int qsm_span_note_send(struct queue *qu, uint32_t cap_max, uint64_t index, uint64_t n_live,
                       uint64_t enqueue_ms)
{
    if (qu->n_spans && qu->spans[qu->n_spans - 1].last + 1 == index) {
        struct span *s = &qu->spans[qu->n_spans - 1];
        s->last = index;
        s->n_live += n_live;
        s->min_ms = u64_min(s->min_ms, enqueue_ms);
        s->max_ms = u64_max(s->max_ms, enqueue_ms);
        return CMQ_OK;
    }
    if (qu->n_spans >= cap_max) {
        int rc = spans_compact(qu, qu->n_spans - cap_max * 3 / 4);
        if (rc)
            return rc;
    }
    if (qu->n_spans == qu->cap_spans) {
        uint32_t cap = qu->cap_spans ? qu->cap_spans * 2 : 4;
        if (cap > QSM_SPANS_MAX)
            cap = QSM_SPANS_MAX;
        if (cap <= qu->n_spans)
            return CMQ_EINTERNAL;
        struct span *s = realloc(qu->spans, cap * sizeof *s);
        if (!s)
            return CMQ_ENOMEM;
        qu->spans = s;
        qu->cap_spans = cap;
    }
    qu->spans[qu->n_spans++] = (struct span){
        .first = index, .last = index, .n_live = n_live, .min_ms = enqueue_ms, .max_ms = enqueue_ms};
    if (qu->n_spans == 1) {
        qu->cur_span = 0;
        qu->cur_pos = POS(index, 0);
        qu->cur_passed = 0;
        qu->head_ms = enqueue_ms;
    }
    return CMQ_OK;
}

/* Whether the scan has passed all of span j (only a rewind can need it). */
bool qsm_span_behind(const struct queue *qu, uint32_t j)
{
    return j < qu->cur_span || (j == qu->cur_span && POS_INDEX(qu->cur_pos) > qu->spans[j].last);
}

/* Drops spans that neither the scan nor a rewind can need any more. */
void qsm_spans_trim(struct queue *qu, uint64_t now)
{
    uint64_t ret = S_TO_MS(qu->a.msg_retention_s), rew = S_TO_MS(qu->a.rewind_s);
    while (qu->n_spans) {
        struct span *s = &qu->spans[0];
        bool expired = s->max_ms + ret <= now;
        bool behind = qsm_span_behind(qu, 0);
        if (behind && !expired && (qu->a.rewind_s == 0 || s->max_ms + rew < now))
            expired = true; /* out of the rewind window: only the cursor could need it, and it is past */
        if (!expired)
            break;
        if (!behind) {
            /* the cursor's span expired whole: skip what the scan has not passed */
            qu->backlog = sat_sub(qu->backlog, sat_sub(s->n_live, qu->cur_passed));
            qu->cur_passed = 0;
            if (qu->n_spans > 1) {
                qu->cur_pos = POS(qu->spans[1].first, 0);
                qu->head_ms = qu->spans[1].min_ms;
            }
        } else if (qu->cur_span > 0) {
            qu->cur_span--;
        } else {
            qu->cur_passed = 0; /* the cursor's own span, wholly passed */
        }
        qu->retained = sat_sub(qu->retained, s->n_deleted);
        qsm_span_remove(qu, 0);
    }
    if (!qu->n_spans) {
        qu->cur_span = 0;
        qu->cur_pos = 0;
        qu->cur_passed = 0;
        qu->backlog = 0;
    }
}
