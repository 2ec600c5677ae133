/* qsm.c: the replicated queue state machine (see qsm.h for the contract and
 * docs/queue-state-machine.md for the design).
 *
 * Owns: every queue of one partition: attributes, the log spans that locate
 * its messages, the consume cursor, and the tracked messages (delayed,
 * ready-again, leased, parked behind an ordered group).  A one-entry cache of
 * the last Send entry read back.  Does not own: the log (read through the
 * reader), time (leader_ms of each command), the reply encoding.
 *
 * Positions.  A message's position `pos` is (log index << 4) | slot, i.e. its
 * msgId without the partition bits; positions order messages as the log does.
 *
 * Invariants (checked by asserts where cheap):
 *  I1. Every message of queue Q that is neither deleted nor expired is exactly
 *      one of: tracked (a `struct rec` in Q's `recs`), or untracked backlog at
 *      a position >= Q's cursor inside one of Q's spans.
 *  I2. A tracked rec is in exactly one container by state: READY in `ready`
 *      (min-heap by pos), DELAYED and LEASED in `timers` (min-heap by time,
 *      then pos), PARKED in its group's FIFO.  LEASED recs are also in
 *      `handles` under their current receipt handle.
 *  I3. Every Send entry of Q at or after Q's create index lies inside one of
 *      Q's spans.  Spans are sorted and disjoint; they may also cover entries
 *      of other queues or other commands, which the scan reads and skips.
 *  I4. Scan rule (which untracked messages the scan may deliver): a message
 *      sent without delay always; a delayed message only in the replay region
 *      (pos < replay_end, after a rewind) and only if it was due at the rewind
 *      (due <= rewind_ms).  Every other delayed message was tracked when its
 *      Send was applied, and still is (or was delivered/deleted from there).
 *  I5. Ordered queues: each group has at most one message READY or LEASED
 *      (its head, the group's earliest undeleted message); later messages of
 *      the group the scan has passed are PARKED in position order.
 *  I6. Whether a Send entry was accepted depends only on the entry itself and
 *      on the queue's immutable `ordered` flag (qsm_send_validate), so the scan
 *      re-derives it.
 */
#include "qsm.h"
#include "hash.h"

#include "dedupwin.h"

#include "crc32c.h"
#include "status.h"

#include <assert.h>
#include <pb_decode.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SLOT_BITS QSM_ID_SLOT_BITS
#define POS(index, slot) (((uint64_t)(index) << SLOT_BITS) | (slot))
#define POS_INDEX(pos) ((pos) >> SLOT_BITS)
#define POS_SLOT(pos) ((uint32_t)((pos) & 15u))
#define S_TO_MS(s) ((uint64_t)(s) * 1000u)
#define NO_TIME UINT64_MAX


struct send_item {
    const uint8_t *body;
    size_t len;
    uint64_t delay_s;
    const char *group;
    size_t group_len;
    uint64_t dedup_key;        /* 0: none */
    uint64_t txn_check_ms;     /* > 0: a transaction (half) message */
    const uint8_t *origin;     /* encoded DeadLetterOrigin, NULL: none */
    size_t origin_len;
    const char *addr;          /* SendItem.client_addr (trace), NULL: none */
    size_t addr_len;
};

struct send_view {
    uint64_t queue_id;
    const char *addr;  /* SendRequest.client_addr, NULL: none */
    size_t addr_len;
    uint32_t n;        /* > QSM_BATCH_MAX means "too many" (only the first 16 kept) */
    struct send_item m[QSM_BATCH_MAX];
};

/* REC_REWOUND: a message a rewind took back from READY/LEASED/PARKED; it sits
 * in the replay region, in no container, only to keep its dequeue count and
 * first dequeue time until the scan reaches it again (spec §6.6: "keep
 * dequeueCount"). */
/* REC_HALF: a transaction message not yet committed or rolled back, in
 * `half` (min-heap by next check-back time); its `handle` holds the check
 * interval (ms) and `dequeue_count` the check-backs sent so far. */
enum rec_state {
    REC_DELAYED = 1, REC_READY = 2, REC_LEASED = 3, REC_PARKED = 4, REC_REWOUND = 5, REC_HALF = 6
};

struct rec {
    uint64_t pos;
    uint64_t handle;           /* LEASED: current receipt handle */
    uint64_t enqueue_ms;
    uint64_t time_ms;          /* DELAYED: due; LEASED: next visible */
    uint64_t first_dequeue_ms; /* 0 until first delivered */
    uint64_t group;            /* ordered queues: group key, 0 = none */
    uint32_t dequeue_count;
    uint8_t state;
    uint32_t hpos;             /* index in ready or timers */
    struct rec *park_next;
};

/* ---- u64 -> pointer hash map (open addressing, linear probing, backward
 * shift deletion).  Key 0 is the empty marker; callers never use it.  Used
 * for lookups only: never iterated where order matters. ---- */
struct map {
    uint64_t *keys;
    void **vals;
    uint32_t cap, n;
};

static int map_resize(struct map *m, uint32_t cap)
{
    uint64_t *keys = calloc(cap, sizeof *keys);
    void **vals = calloc(cap, sizeof *vals);
    if (!keys || !vals) {
        free(keys);
        free(vals);
        return CMQ_ENOMEM;
    }
    for (uint32_t i = 0; i < m->cap; i++) {
        if (!m->keys[i])
            continue;
        uint32_t j = (uint32_t)(hash_fmix64(m->keys[i]) & (cap - 1));
        while (keys[j])
            j = (j + 1) & (cap - 1);
        keys[j] = m->keys[i];
        vals[j] = m->vals[i];
    }
    free(m->keys);
    free(m->vals);
    m->keys = keys;
    m->vals = vals;
    m->cap = cap;
    return CMQ_OK;
}

static void qsm_map_free(struct map *m)
{
    free(m->keys);
    free(m->vals);
    memset(m, 0, sizeof *m);
}

static void *qsm_map_get(const struct map *m, uint64_t key)
{
    assert(key);
    if (!m->cap)
        return NULL;
    uint32_t j = (uint32_t)(hash_fmix64(key) & (m->cap - 1));
    while (m->keys[j]) {
        if (m->keys[j] == key)
            return m->vals[j];
        j = (j + 1) & (m->cap - 1);
    }
    return NULL;
}

/* Inserts a key that is not present. */
static int qsm_map_put(struct map *m, uint64_t key, void *val)
{
    assert(key && val);
    if ((m->n + 1) * 2 > m->cap) {
        int rc = map_resize(m, m->cap ? m->cap * 2 : 16);
        if (rc)
            return rc;
    }
    uint32_t j = (uint32_t)(hash_fmix64(key) & (m->cap - 1));
    while (m->keys[j]) {
        assert(m->keys[j] != key);
        j = (j + 1) & (m->cap - 1);
    }
    m->keys[j] = key;
    m->vals[j] = val;
    m->n++;
    return CMQ_OK;
}

static void qsm_map_del(struct map *m, uint64_t key)
{
    assert(key && m->cap);
    uint32_t mask = m->cap - 1, j = (uint32_t)(hash_fmix64(key) & mask);
    while (m->keys[j] != key) {
        assert(m->keys[j]);
        j = (j + 1) & mask;
    }
    /* backward shift: move later members of the probe run into the hole */
    uint32_t hole = j;
    for (uint32_t k = (j + 1) & mask; m->keys[k]; k = (k + 1) & mask) {
        uint32_t home = (uint32_t)(hash_fmix64(m->keys[k]) & mask);
        /* k may move to hole if home is not in (hole, k] cyclically */
        bool stays = hole <= k ? (home > hole && home <= k) : (home > hole || home <= k);
        if (!stays) {
            m->keys[hole] = m->keys[k];
            m->vals[hole] = m->vals[k];
            hole = k;
        }
    }
    m->keys[hole] = 0;
    m->vals[hole] = NULL;
    m->n--;
    if (m->cap > 64 && m->n * 8 < m->cap)
        (void)map_resize(m, m->cap / 4); /* on failure keep the larger table */
}

/* ---- binary min-heaps of recs, keeping rec->hpos ---- */
struct heap {
    struct rec **a;
    uint32_t n, cap;
    bool by_time; /* timers: (time_ms, pos); ready: pos */
};

static bool heap_less(const struct heap *h, const struct rec *x, const struct rec *y)
{
    if (h->by_time && x->time_ms != y->time_ms)
        return x->time_ms < y->time_ms;
    return x->pos < y->pos;
}

static void heap_set(struct heap *h, uint32_t i, struct rec *r)
{
    h->a[i] = r;
    r->hpos = i;
}

static void heap_up(struct heap *h, uint32_t i)
{
    struct rec *r = h->a[i];
    while (i > 0) {
        uint32_t p = (i - 1) / 2;
        if (!heap_less(h, r, h->a[p]))
            break;
        heap_set(h, i, h->a[p]);
        i = p;
    }
    heap_set(h, i, r);
}

static void heap_down(struct heap *h, uint32_t i)
{
    struct rec *r = h->a[i];
    for (;;) {
        uint32_t c = 2 * i + 1;
        if (c >= h->n)
            break;
        if (c + 1 < h->n && heap_less(h, h->a[c + 1], h->a[c]))
            c++;
        if (!heap_less(h, h->a[c], r))
            break;
        heap_set(h, i, h->a[c]);
        i = c;
    }
    heap_set(h, i, r);
}

static int qsm_heap_push(struct heap *h, struct rec *r)
{
    if (h->n == h->cap) {
        uint32_t cap = h->cap ? h->cap * 2 : 16;
        struct rec **a = realloc(h->a, cap * sizeof *a);
        if (!a)
            return CMQ_ENOMEM;
        h->a = a;
        h->cap = cap;
    }
    h->a[h->n] = r;
    r->hpos = h->n++;
    heap_up(h, r->hpos);
    return CMQ_OK;
}

static void qsm_heap_remove(struct heap *h, struct rec *r)
{
    uint32_t i = r->hpos;
    assert(i < h->n && h->a[i] == r);
    h->n--;
    if (i != h->n) {
        heap_set(h, i, h->a[h->n]);
        heap_down(h, i);
        heap_up(h, h->a[i]->hpos);
    }
    r->hpos = UINT32_MAX;
    if (h->cap > 64 && h->n * 8 < h->cap) {
        struct rec **a = realloc(h->a, (h->cap / 4) * sizeof *a);
        if (a) {
            h->a = a;
            h->cap /= 4;
        }
    }
}

static struct rec *qsm_heap_top(const struct heap *h)
{
    return h->n ? h->a[0] : NULL;
}

/* ---- queues ---- */

/* A run of log entries [first, last] holding every Send entry of the queue in
 * that range (I3), plus counters used to keep statistics without reading. */
struct span {
    uint64_t first, last;
    uint64_t n_live;    /* messages sent without delay */
    uint64_t n_deleted; /* deleted while rewind was enabled (retained) */
    uint64_t min_ms, max_ms; /* enqueue times */
};

struct group {
    uint64_t key;
    struct rec *head;  /* READY or LEASED */
    struct rec *park_first, *park_last;
};

struct queue {
    uint64_t id;
    char name[QSM_NAME_LEN_MAX + 1];
    struct qsm_attrs a;
    uint64_t create_index, create_ms, modify_ms;

    struct span *spans;
    uint32_t n_spans, cap_spans;
    uint32_t cur_span;     /* the cursor's span; spans before it are kept for rewind only */
    uint64_t cur_pos;      /* next position the scan examines */
    uint64_t cur_passed;   /* n_live messages of spans[cur_span] before cur_pos */
    uint64_t replay_end;   /* I4 */
    uint64_t rewind_ms;
    uint64_t head_ms;      /* lower bound of the enqueue time at the cursor */
    uint64_t backlog;      /* untracked deliverable messages ahead of the cursor */
    uint64_t retained;     /* deleted and kept for rewind */
    bool scan_blocked;     /* ordered: parked limit reached */
    bool oom;              /* an allocation failed inside a void helper */

    struct map recs;       /* pos -> rec */
    struct map handles;    /* receipt handle -> rec */
    struct map groups;     /* group key -> group */
    struct heap ready, timers;
    struct heap half;      /* REC_HALF by (next check-back, pos) */
    uint64_t n_delayed, n_leased, n_parked, n_rewound, n_half;
    uint64_t sweep_due_ms; /* lower bound of the next retention / TTL deadline of a tracked rec */
};

struct qsm {
    uint32_t partition;
    struct qsm_reader reader;
    uint64_t applied_index, applied_term;
    uint64_t now_ms;        /* max leader_ms seen: time never goes back */
    struct queue **queues;  /* sorted by id */
    uint32_t n_queues, cap_queues;
    int failed;
    bool tick_pending;
    uint64_t reads;

    /* one-entry read cache: the last entry read back (decoded if a Send) */
    uint64_t cache_index;   /* 0: empty */
    uint64_t cache_leader_ms;
    bool cache_is_send;     /* cache_send is valid (points into cache_buf) */
    uint8_t *cache_buf;
    struct send_view cache_send;
    struct send_view send;  /* the Send being applied (points into the entry) */
    cmq_StorageCommand *cmd; /* decode buffer of the (non-Send) entry being applied */

    /* dead-letter moves decided and not yet acknowledged (DlqDelivered),
     * ascending msg id; bodies are read back from the log when delivered */
    struct qsm_dlq_move *pend;
    uint32_t n_pend, cap_pend;
    /* the dedup window (dedupwin.h): (queue, key) -> first msg id */
    struct dedupwin dd;
    struct qsm_tracer tracer; /* message trace events (optional) */
    const char *rx_addr;    /* the consumer of the Receive being applied */
};

/* Reports one state change of a message to the tracer (docs §9). */
static void qsm_trace(const struct qsm *q, uint32_t event, uint64_t queue_id, uint64_t pos,
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

static bool qsm_dlq_room(const struct qsm *q)
{
    return q->n_pend < QSM_DLQ_PENDING_MAX;
}

static int qsm_pend_add(struct qsm *q, const struct qsm_dlq_move *m)
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

static uint64_t u64_min(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}
static uint64_t u64_max(uint64_t a, uint64_t b)
{
    return a > b ? a : b;
}
static uint64_t sat_sub(uint64_t a, uint64_t b)
{
    return a > b ? a - b : 0;
}
static uint64_t sat_add(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static struct queue *qsm_queue_find(const struct qsm *q, uint64_t id, uint32_t *at)
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

static void qsm_queue_free(struct queue *qu)
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

static struct queue *qsm_queue_new(uint64_t id)
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

/* ---- protobuf peeking: the command kind, queue id and stamp of an entry
 * without decoding its bodies ---- */

static bool qsm_pb_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    uint64_t x = 0;
    for (unsigned shift = 0; shift < 64; shift += 7) {
        if (*p >= end)
            return false;
        uint8_t b = *(*p)++;
        x |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = x;
            return true;
        }
    }
    return false;
}

static bool qsm_pb_skip(const uint8_t **p, const uint8_t *end, uint32_t wt)
{
    uint64_t n;
    switch (wt) {
    case 0:
        return qsm_pb_varint(p, end, &n);
    case 1:
        n = 8;
        break;
    case 2:
        if (!qsm_pb_varint(p, end, &n))
            return false;
        break;
    case 5:
        n = 4;
        break;
    default:
        return false;
    }
    if (n > (uint64_t)(end - *p))
        return false;
    *p += n;
    return true;
}

/* kind: the oneof field number of StorageCommand (10..18), 0 if none;
 * *sub, *sub_len: that member's encoded bytes (inside buf). */
static bool qsm_peek_cmd(const uint8_t *buf, size_t len, uint32_t *kind, uint64_t *queue_id,
                     uint64_t *leader_ms, const uint8_t **sub, size_t *sub_len)
{
    const uint8_t *p = buf, *end = buf + len;
    *kind = 0;
    *sub = NULL;
    *sub_len = 0;
    *queue_id = 0;
    *leader_ms = 0;
    while (p < end) {
        uint64_t tag;
        if (!qsm_pb_varint(&p, end, &tag))
            return false;
        uint32_t field = (uint32_t)(tag >> 3), wt = (uint32_t)(tag & 7);
        if (field == 1 && wt == 0) {
            if (!qsm_pb_varint(&p, end, leader_ms))
                return false;
        } else if (field >= 10 && field <= 20 && wt == 2) {
            uint64_t n;
            if (!qsm_pb_varint(&p, end, &n) || n > (uint64_t)(end - p))
                return false;
            const uint8_t *s = p, *send = p + n;
            *kind = field;
            *queue_id = 0;
            *sub = p;
            *sub_len = (size_t)n;
            while (s < send) {
                uint64_t t2;
                if (!qsm_pb_varint(&s, send, &t2))
                    return false;
                if ((t2 >> 3) == 1 && (t2 & 7) == 0) {
                    if (!qsm_pb_varint(&s, send, queue_id))
                        return false;
                } else if (!qsm_pb_skip(&s, send, (uint32_t)(t2 & 7))) {
                    return false;
                }
            }
            p = send;
        } else if (!qsm_pb_skip(&p, end, wt)) {
            return false;
        }
    }
    return true;
}

static bool qsm_decode_cmd(const uint8_t *buf, size_t len, cmq_StorageCommand *out)
{
    pb_istream_t in = pb_istream_from_buffer(buf, len);
    return pb_decode(&in, cmq_StorageCommand_fields, out); /* releases on failure */
}

/* A Send entry parsed in place: bodies and group ids point into the entry.
 * nanopb cannot hold a body over 64 KiB here (16-bit sizes), and a parse
 * without copies is what a scan over the log wants anyway. */
static bool parse_item(const uint8_t *p, const uint8_t *end, struct send_item *it)
{
    memset(it, 0, sizeof *it);
    it->body = p; /* non-NULL even when empty */
    while (p < end) {
        uint64_t tag, v;
        if (!qsm_pb_varint(&p, end, &tag))
            return false;
        uint32_t f = (uint32_t)(tag >> 3), wt = (uint32_t)(tag & 7);
        if ((f == 1 || f == 3 || f == 5 || f == 6) && wt == 2) {
            if (!qsm_pb_varint(&p, end, &v) || v > (uint64_t)(end - p))
                return false;
            if (f == 1) {
                it->body = p;
                it->len = (size_t)v;
            } else if (f == 3) {
                it->group = (const char *)p;
                it->group_len = (size_t)v;
            } else if (f == 5) {
                it->origin = p;
                it->origin_len = (size_t)v;
            } else {
                it->addr = (const char *)p;
                it->addr_len = (size_t)v;
            }
            p += v;
        } else if (f == 2 && wt == 0) {
            if (!qsm_pb_varint(&p, end, &it->delay_s))
                return false;
        } else if (f == 4 && wt == 0) {
            if (!qsm_pb_varint(&p, end, &it->dedup_key))
                return false;
        } else if (f == 7 && wt == 0) {
            if (!qsm_pb_varint(&p, end, &it->txn_check_ms))
                return false;
        } else if (!qsm_pb_skip(&p, end, wt)) {
            return false;
        }
    }
    return true;
}

/* Parses an encoded SendRequest (storage.proto field numbers). */
static bool qsm_parse_send(const uint8_t *buf, size_t len, struct send_view *sv)
{
    const uint8_t *p = buf, *end = buf + len;
    sv->queue_id = 0;
    sv->n = 0;
    sv->addr = NULL;
    sv->addr_len = 0;
    while (p < end) {
        uint64_t tag, v;
        if (!qsm_pb_varint(&p, end, &tag))
            return false;
        uint32_t f = (uint32_t)(tag >> 3), wt = (uint32_t)(tag & 7);
        if (f == 1 && wt == 0) {
            if (!qsm_pb_varint(&p, end, &sv->queue_id))
                return false;
        } else if (f == 3 && wt == 2) {
            if (!qsm_pb_varint(&p, end, &v) || v > (uint64_t)(end - p))
                return false;
            sv->addr = (const char *)p;
            sv->addr_len = (size_t)v;
            p += v;
        } else if (f == 2 && wt == 2) {
            if (!qsm_pb_varint(&p, end, &v) || v > (uint64_t)(end - p))
                return false;
            if (sv->n < QSM_BATCH_MAX && !parse_item(p, p + v, &sv->m[sv->n]))
                return false;
            if (sv->n <= QSM_BATCH_MAX)
                sv->n++;
            p += v;
        } else if (!qsm_pb_skip(&p, end, wt)) {
            return false;
        }
    }
    return true;
}

/* ---- validation ---- */

/* I6: depends on the entry and the queue's immutable `ordered` flag only. */
static int qsm_send_validate(const struct send_view *s, bool ordered)
{
    if (s->n < 1 || s->n > QSM_BATCH_MAX)
        return CMQ_EINVAL;
    uint64_t total = 0;
    for (uint32_t i = 0; i < s->n; i++) {
        const struct send_item *m = &s->m[i];
        if (m->len == 0)
            return CMQ_EINVAL;
        if (m->len > QSM_BODY_BYTES_MAX)
            return CMQ_ETOOBIG;
        if (m->delay_s > QSM_DELAY_S_MAX)
            return CMQ_EINVAL;
        if (ordered && m->delay_s > 0)
            return CMQ_EINVAL;
        if (m->txn_check_ms && (ordered || m->delay_s || m->txn_check_ms > QSM_TXN_CHECK_MS_MAX))
            return CMQ_EINVAL;
        if (m->group_len > QSM_GROUP_ID_LEN_MAX || (m->group && memchr(m->group, 0, m->group_len)))
            return CMQ_EINVAL;
        total += m->len;
    }
    return total > QSM_BATCH_BYTES_MAX ? CMQ_ETOOBIG : CMQ_OK;
}

static uint64_t qsm_group_key(const struct queue *qu, const struct send_item *m)
{
    if (!qu->a.ordered || !m->group_len)
        return 0;
    uint64_t h = UINT64_C(0xcbf29ce484222325); /* FNV-1a; a collision only serialises two groups */
    for (size_t i = 0; i < m->group_len; i++)
        h = (h ^ (uint8_t)m->group[i]) * UINT64_C(0x100000001b3);
    return h ? h : 1;
}

static void attrs_default(struct qsm_attrs *a)
{
    memset(a, 0, sizeof *a);
    a->max_msg_heap_num = 10000000;
    a->polling_wait_s = 0;
    a->visibility_timeout_s = 30;
    a->max_msg_size = 65536;
    a->msg_retention_s = 345600;
    a->rewind_s = 0;
    a->dlq_policy = QSM_DLQ_NONE;
    a->ordered = false;
    a->max_inflight_num = QSM_INFLIGHT_DEFAULT;
}

/* Merges `in` over `a` (absent fields keep their value) and validates the
 * result.  `creating` allows `ordered`. */
static int attrs_merge(struct qsm_attrs *a, const cmq_StorageQueueAttributes *in, bool has_in,
                       bool clear_dlq, bool creating, uint64_t self_id)
{
    struct qsm_attrs n = *a;
    if (has_in) {
        if (in->has_max_msg_heap_num)
            n.max_msg_heap_num = in->max_msg_heap_num;
        if (in->has_polling_wait_seconds)
            n.polling_wait_s = in->polling_wait_seconds;
        if (in->has_visibility_timeout_s)
            n.visibility_timeout_s = in->visibility_timeout_s;
        if (in->has_max_msg_size)
            n.max_msg_size = in->max_msg_size;
        if (in->has_msg_retention_s)
            n.msg_retention_s = in->msg_retention_s;
        if (in->has_rewind_s)
            n.rewind_s = in->rewind_s;
        if (in->has_max_inflight_num)
            n.max_inflight_num = in->max_inflight_num;
        if (in->has_ordered) {
            if (!creating && in->ordered != a->ordered)
                return CMQ_EINVAL;
            n.ordered = in->ordered;
        }
        if (in->has_dead_letter_policy) {
            const cmq_StorageDeadLetterPolicy *d = &in->dead_letter_policy;
            if (d->dead_letter_queue_id == 0 || d->dead_letter_queue_id == self_id)
                return CMQ_EINVAL;
            n.dlq_queue_id = d->dead_letter_queue_id;
            n.dlq_max_receive_count = 0;
            n.dlq_max_ttl_s = 0;
            if (d->policy == 0) {
                n.dlq_policy = QSM_DLQ_RECEIVES;
                n.dlq_max_receive_count = d->max_receive_count;
            } else if (d->policy == 1) {
                n.dlq_policy = QSM_DLQ_TTL;
                n.dlq_max_ttl_s = d->max_time_to_live_s;
            } else {
                return CMQ_EINVAL;
            }
        }
    }
    if (clear_dlq) {
        n.dlq_policy = QSM_DLQ_NONE;
        n.dlq_queue_id = 0;
        n.dlq_max_receive_count = 0;
        n.dlq_max_ttl_s = 0;
    }
    if (n.max_msg_heap_num < 1000000 || n.max_msg_heap_num > 1000000000)
        return CMQ_EINVAL;
    if (n.polling_wait_s > 30)
        return CMQ_EINVAL;
    if (n.visibility_timeout_s < 1 || n.visibility_timeout_s > QSM_VISIBILITY_S_MAX)
        return CMQ_EINVAL;
    if (n.max_msg_size < 1024 || n.max_msg_size > QSM_BODY_BYTES_MAX)
        return CMQ_EINVAL;
    if (n.msg_retention_s < 60 || n.msg_retention_s > 1296000)
        return CMQ_EINVAL;
    if (n.rewind_s > n.msg_retention_s)
        return CMQ_EINVAL;
    if (n.max_inflight_num < 1 || n.max_inflight_num > QSM_INFLIGHT_MAX)
        return CMQ_EINVAL;
    if (n.dlq_policy == QSM_DLQ_RECEIVES &&
        (n.dlq_max_receive_count < 1 || n.dlq_max_receive_count > 1000))
        return CMQ_EINVAL;
    if (n.dlq_policy == QSM_DLQ_TTL &&
        (n.dlq_max_ttl_s < 300 || n.dlq_max_ttl_s > 43200 || n.dlq_max_ttl_s >= n.msg_retention_s))
        return CMQ_EINVAL;
    *a = n;
    return CMQ_OK;
}

/* ---- reading entries back ---- */

static void qsm_cache_drop(struct qsm *q)
{
    free(q->cache_buf);
    q->cache_buf = NULL;
    q->cache_is_send = false;
    q->cache_index = 0;
}

static int qsm_fail(struct qsm *q, int status)
{
    if (!q->failed)
        q->failed = status ? status : CMQ_EIO;
    return q->failed;
}

/* Loads entry `index` into the cache.  On CMQ_OK *send is the parsed Send if
 * the entry is a Send of `queue_id`, else NULL. */
static int qsm_entry_load(struct qsm *q, uint64_t index, uint64_t queue_id,
                      const struct send_view **send, uint64_t *leader_ms)
{
    *send = NULL;
    if (q->cache_index != index) {
        qsm_cache_drop(q);
        uint8_t *buf = NULL;
        size_t len = 0;
        int rc = q->reader.read_entry(q->reader.arg, index, &buf, &len);
        q->reads++;
        if (rc != CMQ_OK) {
            free(buf);
            return qsm_fail(q, rc == CMQ_ENOTFOUND ? CMQ_EIO : rc);
        }
        uint32_t kind = 0;
        uint64_t qid, lms = 0;
        const uint8_t *sub;
        size_t sub_len;
        q->cache_buf = buf;
        q->cache_index = index;
        if (len && qsm_peek_cmd(buf, len, &kind, &qid, &lms, &sub, &sub_len) &&
            kind == cmq_StorageCommand_send_tag && qsm_parse_send(sub, sub_len, &q->cache_send))
            q->cache_is_send = true;
        q->cache_leader_ms = lms;
    }
    *leader_ms = q->cache_leader_ms;
    if (q->cache_is_send && q->cache_send.queue_id == queue_id)
        *send = &q->cache_send;
    return CMQ_OK;
}

static uint8_t *qsm_body_copy(const struct send_item *m, size_t *len)
{
    *len = m->len;
    uint8_t *b = malloc(m->len ? m->len : 1);
    if (b)
        memcpy(b, m->body, m->len);
    return b;
}

/* The Send item at `pos` of queue `qu`, read back (for tracked recs). */
static int qsm_item_load(struct qsm *q, struct queue *qu, uint64_t pos, const struct send_item **item)
{
    const struct send_view *s;
    uint64_t lms;
    int rc = qsm_entry_load(q, POS_INDEX(pos), qu->id, &s, &lms);
    if (rc)
        return rc;
    if (!s || POS_SLOT(pos) >= s->n)
        return qsm_fail(q, CMQ_EINTERNAL);
    *item = &s->m[POS_SLOT(pos)];
    return CMQ_OK;
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

static int qsm_dlq_add(struct qsm *q, struct qsm_result *res, const struct queue *qu, uint64_t id,
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

/* ---- spans ---- */

static int qsm_span_find(const struct queue *qu, uint64_t index)
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

static void qsm_span_remove(struct queue *qu, uint32_t j)
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
static uint32_t qsm_span_cap(const struct qsm *q)
{
    uint32_t c = QSM_SPANS_BUDGET / (q->n_queues ? q->n_queues : 1);
    return c < QSM_SPANS_MIN ? QSM_SPANS_MIN : c > QSM_SPANS_MAX ? QSM_SPANS_MAX : c;
}

static int qsm_span_note_send(struct queue *qu, uint32_t cap_max, uint64_t index, uint64_t n_live,
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
static bool qsm_span_behind(const struct queue *qu, uint32_t j)
{
    return j < qu->cur_span || (j == qu->cur_span && POS_INDEX(qu->cur_pos) > qu->spans[j].last);
}

/* Drops spans that neither the scan nor a rewind can need any more. */
static void qsm_spans_trim(struct queue *qu, uint64_t now)
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

/* ---- tracked messages ---- */

static void qsm_sweep_note(struct queue *qu, const struct rec *r)
{
    uint64_t d = r->enqueue_ms + S_TO_MS(qu->a.msg_retention_s);
    if (qu->a.dlq_policy == QSM_DLQ_TTL)
        d = u64_min(d, r->enqueue_ms + S_TO_MS(qu->a.dlq_max_ttl_s));
    qu->sweep_due_ms = u64_min(qu->sweep_due_ms, d);
}

static struct rec *qsm_rec_new(struct queue *qu, uint64_t pos, uint64_t enqueue_ms, uint64_t group)
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

static struct group *qsm_group_get(struct queue *qu, uint64_t key)
{
    return key ? qsm_map_get(&qu->groups, key) : NULL;
}

/* Takes `r` out of its container (I2) without freeing it. */
static void qsm_rec_detach(struct queue *qu, struct rec *r)
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
static void qsm_group_advance(struct queue *qu, struct group *g)
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
static void qsm_rec_forget(struct queue *qu, struct rec *r)
{
    assert(r->state == 0);
    qsm_map_del(&qu->recs, r->pos);
    struct group *g = qsm_group_get(qu, r->group);
    if (g && g->head == r)
        qsm_group_advance(qu, g);
    free(r);
}

/* Forgets a tracked message (deleted, expired, dead-lettered, rewound). */
static void qsm_rec_drop(struct queue *qu, struct rec *r)
{
    qsm_rec_detach(qu, r);
    qsm_rec_forget(qu, r);
}

static int qsm_rec_make_ready(struct queue *qu, struct rec *r)
{
    r->state = REC_READY;
    return qsm_heap_push(&qu->ready, r);
}

static bool qsm_rec_expired(const struct queue *qu, const struct rec *r, uint64_t now)
{
    return r->enqueue_ms + S_TO_MS(qu->a.msg_retention_s) <= now;
}

/* Time passes for one queue: leases expire and delayed messages come due. */
static int qsm_queue_advance(struct qsm *q, struct queue *qu, uint64_t now)
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

/* ---- the scan over the log ---- */

struct cand {
    uint64_t pos;
    uint64_t enqueue_ms;
    bool delayed;
    const struct send_item *item; /* valid until the next qsm_entry_load */
    struct rec *rewound;          /* REC_REWOUND rec of this position, or NULL */
};

static void qsm_cursor_pass(struct queue *qu, bool delayed)
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
static int qsm_scan_peek(struct qsm *q, struct queue *qu, uint32_t *budget, struct cand *c,
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
static struct rec *qsm_ready_top(struct queue *qu, uint64_t now)
{
    struct rec *r;
    while ((r = qsm_heap_top(&qu->ready)) && qsm_rec_expired(qu, r, now))
        qsm_rec_drop(qu, r);
    return r;
}

static bool qsm_ttl_due(const struct queue *qu, uint64_t enqueue_ms, uint64_t now)
{
    return qu->a.dlq_policy == QSM_DLQ_TTL && enqueue_ms + S_TO_MS(qu->a.dlq_max_ttl_s) <= now;
}

/* Moves a tracked rec to the DLQ list of `res` and forgets it.  `detached`:
 * already out of its container. */
static int qsm_rec_dead_letter(struct qsm *q, struct queue *qu, struct rec *r, uint32_t reason,
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

/* ---- commands ---- */

static int cmd_create(struct qsm *q, uint64_t index, const cmq_StorageCreateQueueRequest *c,
                      struct qsm_result *res)
{
    res->queue_id = c->queue_id;
    if (c->queue_id == 0 || strnlen(c->name, sizeof c->name) > QSM_NAME_LEN_MAX)
        return CMQ_EINVAL;
    uint32_t at;
    if (qsm_queue_find(q, c->queue_id, &at))
        return CMQ_EEXIST;
    if (q->n_queues >= QSM_QUEUES_MAX)
        return CMQ_ELIMIT;
    struct qsm_attrs a;
    attrs_default(&a);
    int rc = attrs_merge(&a, &c->attributes, c->has_attributes, false, true, c->queue_id);
    if (rc)
        return rc;
    if (q->n_queues == q->cap_queues) {
        uint32_t cap = q->cap_queues ? q->cap_queues * 2 : 8;
        struct queue **v = realloc(q->queues, cap * sizeof *v);
        if (!v)
            return CMQ_ENOMEM;
        q->queues = v;
        q->cap_queues = cap;
    }
    struct queue *qu = qsm_queue_new(c->queue_id);
    if (!qu)
        return CMQ_ENOMEM;
    snprintf(qu->name, sizeof qu->name, "%s", c->name);
    qu->a = a;
    qu->create_index = index;
    qu->create_ms = q->now_ms;
    qu->modify_ms = q->now_ms;
    memmove(&q->queues[at + 1], &q->queues[at], (q->n_queues - at) * sizeof *q->queues);
    q->queues[at] = qu;
    q->n_queues++;
    res->attrs = a;
    return CMQ_OK;
}

static int cmd_drop(struct qsm *q, const cmq_StorageDropQueueRequest *c, struct qsm_result *res)
{
    uint32_t at;
    res->queue_id = c->queue_id;
    struct queue *qu = qsm_queue_find(q, c->queue_id, &at);
    if (!qu)
        return CMQ_ENOTFOUND;
    qsm_queue_free(qu);
    memmove(&q->queues[at], &q->queues[at + 1], (q->n_queues - at - 1) * sizeof *q->queues);
    q->n_queues--;
    return CMQ_OK;
}

static int cmd_set(struct qsm *q, const cmq_StorageSetQueueAttributesRequest *c,
                   struct qsm_result *res)
{
    res->queue_id = c->queue_id;
    struct queue *qu = qsm_queue_find(q, c->queue_id, NULL);
    if (!qu)
        return CMQ_ENOTFOUND;
    uint32_t old_rewind = qu->a.rewind_s;
    int rc = attrs_merge(&qu->a, &c->attributes, c->has_attributes, c->clear_dead_letter_policy,
                         false, qu->id);
    if (rc)
        return rc;
    qu->modify_ms = q->now_ms;
    if (old_rewind && !qu->a.rewind_s) {
        /* spec §9.3: disabling rewind purges the retained messages */
        qu->retained = 0;
        for (uint32_t j = 0; j < qu->n_spans; j++)
            qu->spans[j].n_deleted = 0;
        qsm_spans_trim(qu, q->now_ms); /* drops the spans behind the cursor */
        if (qu->n_spans) {
            /* and the passed part of the cursor's span */
            assert(qu->cur_span == 0);
            struct span *sp = &qu->spans[0];
            uint64_t idx = POS_INDEX(qu->cur_pos);
            if (idx > sp->last) {
                qsm_span_remove(qu, 0);
                qsm_spans_trim(qu, q->now_ms); /* resets the cursor when none is left */
            } else if (idx > sp->first) {
                sp->first = idx;
                sp->n_live = sat_sub(sp->n_live, qu->cur_passed);
                qu->cur_passed = 0;
            }
        }
    }
    qu->sweep_due_ms = q->now_ms; /* retention or TTL may have shrunk: let the next Tick look */
    res->attrs = qu->a;
    return CMQ_OK;
}

static int qsm_cmd_send(struct qsm *q, uint64_t index, const struct send_view *c, uint64_t leader_ms,
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

static int qsm_cmd_receive(struct qsm *q, uint64_t index, const cmq_ReceiveRequest *c,
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

static int qsm_cmd_delete(struct qsm *q, const cmq_DeleteRequest *c, struct qsm_result *res)
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

static int qsm_cmd_change_visibility(struct qsm *q, const cmq_ChangeVisibilityRequest *c,
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

static int rec_cmp_pos(const void *a, const void *b)
{
    const struct rec *x = *(struct rec *const *)a, *y = *(struct rec *const *)b;
    return x->pos < y->pos ? -1 : x->pos > y->pos;
}

/* All tracked recs of `qu` in position order (malloc'd array, may be NULL when n = 0). */
static int qsm_recs_sorted(const struct queue *qu, struct rec ***out, size_t *n)
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

static int qsm_cmd_rewind(struct qsm *q, const cmq_RewindRequest *c, struct qsm_result *res)
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

static int qsm_cmd_dlq_delivered(struct qsm *q, const cmq_DlqDeliveredRequest *c)
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

/* Check-backs of half messages now due (one queue): list them in res->txn and
 * schedule the next; roll back those asked QSM_TXN_QUERIES_MAX times. */
static int qsm_queue_txn_due(struct qsm *q, struct queue *qu, struct qsm_result *res)
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

static int qsm_cmd_txn_confirm(struct qsm *q, const cmq_TxnConfirmRequest *c, struct qsm_result *res)
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

static int qsm_cmd_tick(struct qsm *q, struct qsm_result *res)
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

/* ---- apply ---- */

int qsm_apply(struct qsm *q, uint64_t index, uint64_t term, const uint8_t *cmd, size_t len,
              struct qsm_result *res)
{
    bool skip = res->skip_bodies;
    memset(res, 0, sizeof *res);
    res->skip_bodies = skip;
    if (q->failed)
        return res->status = q->failed;
    assert(index > q->applied_index && index <= QSM_INDEX_MAX);
    q->applied_index = index;
    q->applied_term = term;
    if (len == 0)
        return res->status = CMQ_OK;
    uint32_t kind;
    uint64_t qid, leader_ms;
    const uint8_t *sub;
    size_t sub_len;
    if (!qsm_peek_cmd(cmd, len, &kind, &qid, &leader_ms, &sub, &sub_len))
        return res->status = CMQ_EINVAL;
    cmq_StorageCommand *c = q->cmd;
    if (kind == cmq_StorageCommand_send_tag) {
        if (!qsm_parse_send(sub, sub_len, &q->send))
            return res->status = CMQ_EINVAL;
        memset(c, 0, sizeof *c);
        c->which_cmd = cmq_StorageCommand_send_tag;
        c->leader_ms = leader_ms;
    } else if (!qsm_decode_cmd(cmd, len, c)) {
        return res->status = CMQ_EINVAL;
    }
    q->now_ms = u64_max(q->now_ms, c->leader_ms);
    int rc;
    switch (c->which_cmd) {
    case cmq_StorageCommand_create_queue_tag:
        res->type = cmq_StorageMsgType_STORAGE_MSG_CREATE_QUEUE;
        rc = cmd_create(q, index, &c->cmd.create_queue, res);
        break;
    case cmq_StorageCommand_drop_queue_tag:
        res->type = cmq_StorageMsgType_STORAGE_MSG_DROP_QUEUE;
        rc = cmd_drop(q, &c->cmd.drop_queue, res);
        break;
    case cmq_StorageCommand_set_queue_attributes_tag:
        res->type = cmq_StorageMsgType_STORAGE_MSG_SET_QUEUE_ATTRIBUTES;
        rc = cmd_set(q, &c->cmd.set_queue_attributes, res);
        break;
    case cmq_StorageCommand_send_tag:
        res->type = cmq_StorageMsgType_STORAGE_MSG_SEND;
        rc = qsm_cmd_send(q, index, &q->send, c->leader_ms, res);
        break;
    case cmq_StorageCommand_receive_tag:
        res->type = cmq_StorageMsgType_STORAGE_MSG_RECEIVE;
        rc = qsm_cmd_receive(q, index, &c->cmd.receive, res);
        break;
    case cmq_StorageCommand_delete_msgs_tag:
        res->type = cmq_StorageMsgType_STORAGE_MSG_DELETE;
        rc = qsm_cmd_delete(q, &c->cmd.delete_msgs, res);
        break;
    case cmq_StorageCommand_change_visibility_tag:
        res->type = cmq_StorageMsgType_STORAGE_MSG_CHANGE_VISIBILITY;
        rc = qsm_cmd_change_visibility(q, &c->cmd.change_visibility, res);
        break;
    case cmq_StorageCommand_rewind_tag:
        res->type = cmq_StorageMsgType_STORAGE_MSG_REWIND;
        rc = qsm_cmd_rewind(q, &c->cmd.rewind, res);
        break;
    case cmq_StorageCommand_tick_tag:
        rc = qsm_cmd_tick(q, res);
        break;
    case cmq_StorageCommand_dlq_delivered_tag:
        rc = qsm_cmd_dlq_delivered(q, &c->cmd.dlq_delivered);
        break;
    case cmq_StorageCommand_txn_confirm_tag: /* type 0: the lead wakes parked receivers */
        rc = qsm_cmd_txn_confirm(q, &c->cmd.txn_confirm, res);
        break;
    default:
        rc = CMQ_EINVAL;
        break;
    }
    pb_release(cmq_StorageCommand_fields, q->cmd);
    for (uint32_t i = 0; i < q->n_queues; i++)
        if (q->queues[i]->oom)
            rc = CMQ_ENOMEM;
    if (rc == CMQ_ENOMEM || rc == CMQ_EINTERNAL)
        rc = qsm_fail(q, rc); /* a half-applied command: this replica can no longer be trusted */
    if (q->failed)
        rc = q->failed;
    return res->status = rc;
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

static void qsm_queues_free(struct queue **v, uint32_t n)
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

size_t qsm_dlq_pending(const struct qsm *q, struct qsm_dlq_move *out, size_t max)
{
    for (uint32_t i = 0; i < q->n_pend && i < max; i++)
        out[i] = q->pend[i];
    return q->n_pend;
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
    const uint8_t *p = req, *end = req + len;
    uint8_t *o = buf;
    uint32_t item = 0;
    while (p < end) {
        const uint8_t *start = p;
        uint64_t tag;
        if (!qsm_pb_varint(&p, end, &tag) || !qsm_pb_skip(&p, end, (uint32_t)(tag & 7))) {
            free(buf);
            return NULL;
        }
        if ((tag >> 3) == 2 && (tag & 7) == 2 && item < QSM_BATCH_MAX && held[item++])
            continue; /* SendRequest.messages: an item the window holds */
        memcpy(o, start, (size_t)(p - start));
        o += p - start;
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

int qsm_message_read(const struct qsm *q, uint64_t queue_id, uint64_t msg_id, uint8_t **body,
                     size_t *len, uint64_t *enqueue_ms)
{
    *body = NULL;
    *len = 0;
    if (qsm_id_partition(msg_id) != q->partition)
        return CMQ_EINVAL;
    uint8_t *buf = NULL;
    size_t blen = 0;
    int rc = q->reader.read_entry(q->reader.arg, qsm_id_index(msg_id), &buf, &blen);
    if (rc != CMQ_OK)
        return rc;
    uint32_t kind;
    uint64_t qid, lms;
    const uint8_t *sub;
    size_t sub_len;
    struct send_view sv;
    rc = CMQ_ENOTFOUND;
    if (qsm_peek_cmd(buf, blen, &kind, &qid, &lms, &sub, &sub_len) &&
        kind == cmq_StorageCommand_send_tag && qsm_parse_send(sub, sub_len, &sv) &&
        sv.queue_id == queue_id && qsm_id_slot(msg_id) < sv.n && sv.n <= QSM_BATCH_MAX) {
        *body = qsm_body_copy(&sv.m[qsm_id_slot(msg_id)], len);
        if (enqueue_ms)
            *enqueue_ms = lms;
        rc = *body ? CMQ_OK : CMQ_ENOMEM;
    }
    free(buf);
    return rc;
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
