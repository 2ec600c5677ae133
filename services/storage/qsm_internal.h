/* qsm_internal.h: the queue state machine's private model, shared by the
 * qsm*.c files and by nothing else (qsm.h is the public contract).
 *
 * The files stand on each other in one direction only (calls go down):
 *   qsm_apply.c                  qsm_apply: dispatch + the queue commands
 *   qsm_send.c qsm_deliver.c qsm_rewind.c qsm_tick.c qsm_snap.c
 *   qsm_txn.c qsm_dlq.c          transactions, dead-letter moves
 *   qsm_track.c                  tracked messages and the scan over the log
 *   qsm_span.c qsm_entry.c       log spans; entries peeked, parsed, read back
 *   qsm.c qsm_index.c            life cycle, queue table, queries; map + heaps
 *
 * Owns (in struct qsm): every queue of one partition: attributes, the log
 * spans that locate its messages, the consume cursor, and the tracked
 * messages (delayed, ready-again, leased, parked behind an ordered group).  A
 * one-entry cache of the last Send entry read back.  Does not own: the log
 * (read through the reader), time (leader_ms of each command), the reply
 * encoding.
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
#ifndef CMQ_STORAGE_QSM_INTERNAL_H
#define CMQ_STORAGE_QSM_INTERNAL_H

#include "qsm.h"

#include "dedupwin.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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

/* ---- binary min-heaps of recs, keeping rec->hpos ---- */
struct heap {
    struct rec **a;
    uint32_t n, cap;
    bool by_time; /* timers: (time_ms, pos); ready: pos */
};

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

static inline uint64_t u64_min(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}
static inline uint64_t u64_max(uint64_t a, uint64_t b)
{
    return a > b ? a : b;
}
static inline uint64_t sat_sub(uint64_t a, uint64_t b)
{
    return a > b ? a - b : 0;
}
static inline uint64_t sat_add(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

/* ---- the scan over the log ---- */

struct cand {
    uint64_t pos;
    uint64_t enqueue_ms;
    bool delayed;
    const struct send_item *item; /* valid until the next qsm_entry_load */
    struct rec *rewound;          /* REC_REWOUND rec of this position, or NULL */
};

/* ---- qsm.c (life cycle, queue table, failed state, trace) ---- */
void qsm_trace(const struct qsm *q, uint32_t event, uint64_t queue_id, uint64_t pos,
               uint64_t time_ms, uint64_t handle, uint64_t due_ms, uint64_t aux,
               const char *addr, size_t addr_len);
struct queue *qsm_queue_find(const struct qsm *q, uint64_t id, uint32_t *at);
void qsm_queue_free(struct queue *qu);
struct queue *qsm_queue_new(uint64_t id);
void qsm_cache_drop(struct qsm *q);
int qsm_fail(struct qsm *q, int status);
void qsm_queues_free(struct queue **v, uint32_t n);

/* ---- qsm_index.c (indexes: u64 map, heaps of recs) ---- */
void qsm_map_free(struct map *m);
void *qsm_map_get(const struct map *m, uint64_t key);
int qsm_map_put(struct map *m, uint64_t key, void *val);
void qsm_map_del(struct map *m, uint64_t key);
int qsm_heap_push(struct heap *h, struct rec *r);
void qsm_heap_remove(struct heap *h, struct rec *r);
struct rec *qsm_heap_top(const struct heap *h);

/* ---- qsm_entry.c (entries: peek, parse, validate, read back) ---- */
bool qsm_decode_cmd(const uint8_t *buf, size_t len, cmq_StorageCommand *out);
bool qsm_parse_send(const uint8_t *buf, size_t len, struct send_view *sv);
bool qsm_parse_send_entry(const uint8_t *buf, size_t len, struct send_view *sv,
                          uint64_t *leader_ms);
int qsm_send_validate(const struct send_view *s, bool ordered);
uint64_t qsm_group_key(const struct queue *qu, const struct send_item *m);
int qsm_entry_load(struct qsm *q, uint64_t index, uint64_t queue_id,
                   const struct send_view **send, uint64_t *leader_ms);
uint8_t *qsm_body_copy(const struct send_item *m, size_t *len);
int qsm_item_load(struct qsm *q, struct queue *qu, uint64_t pos, const struct send_item **item);

/* ---- qsm_span.c (spans) ---- */
int qsm_span_find(const struct queue *qu, uint64_t index);
void qsm_span_remove(struct queue *qu, uint32_t j);
uint32_t qsm_span_cap(const struct qsm *q);
int qsm_span_note_send(struct queue *qu, uint32_t cap_max, uint64_t index, uint64_t n_live,
                       uint64_t enqueue_ms);
bool qsm_span_behind(const struct queue *qu, uint32_t j);
void qsm_spans_trim(struct queue *qu, uint64_t now);

/* ---- qsm_track.c (tracked messages and the scan) ---- */
void qsm_sweep_note(struct queue *qu, const struct rec *r);
struct rec *qsm_rec_new(struct queue *qu, uint64_t pos, uint64_t enqueue_ms, uint64_t group);
struct group *qsm_group_get(struct queue *qu, uint64_t key);
void qsm_rec_detach(struct queue *qu, struct rec *r);
void qsm_group_advance(struct queue *qu, struct group *g);
void qsm_rec_forget(struct queue *qu, struct rec *r);
void qsm_rec_drop(struct queue *qu, struct rec *r);
int qsm_rec_make_ready(struct queue *qu, struct rec *r);
bool qsm_rec_expired(const struct queue *qu, const struct rec *r, uint64_t now);
int qsm_queue_advance(struct qsm *q, struct queue *qu, uint64_t now);
void qsm_cursor_pass(struct queue *qu, bool delayed);
int qsm_scan_peek(struct qsm *q, struct queue *qu, uint32_t *budget, struct cand *c,
                  bool *found);
struct rec *qsm_ready_top(struct queue *qu, uint64_t now);
int qsm_recs_sorted(const struct queue *qu, struct rec ***out, size_t *n);

/* ---- qsm_dlq.c (dead-letter moves) ---- */
bool qsm_dlq_room(const struct qsm *q);
int qsm_pend_add(struct qsm *q, const struct qsm_dlq_move *m);
int qsm_dlq_add(struct qsm *q, struct qsm_result *res, const struct queue *qu, uint64_t id,
                uint64_t enqueue_ms, uint64_t first_dequeue_ms, uint32_t dequeue_count,
                uint32_t reason, const struct send_item *item);
bool qsm_ttl_due(const struct queue *qu, uint64_t enqueue_ms, uint64_t now);
int qsm_rec_dead_letter(struct qsm *q, struct queue *qu, struct rec *r, uint32_t reason,
                        bool detached, struct qsm_result *res);
int qsm_cmd_dlq_delivered(struct qsm *q, const cmq_DlqDeliveredRequest *c);

/* ---- qsm_txn.c (transactions) ---- */
int qsm_queue_txn_due(struct qsm *q, struct queue *qu, struct qsm_result *res);
int qsm_cmd_txn_confirm(struct qsm *q, const cmq_TxnConfirmRequest *c, struct qsm_result *res);

/* ---- qsm_send.c (Send) ---- */
int qsm_cmd_send(struct qsm *q, uint64_t index, const struct send_view *c, uint64_t leader_ms,
                 struct qsm_result *res);

/* ---- qsm_deliver.c (Receive, Delete, ChangeVisibility) ---- */
int qsm_cmd_receive(struct qsm *q, uint64_t index, const cmq_ReceiveRequest *c,
                    struct qsm_result *res);
int qsm_cmd_delete(struct qsm *q, const cmq_DeleteRequest *c, struct qsm_result *res);
int qsm_cmd_change_visibility(struct qsm *q, const cmq_ChangeVisibilityRequest *c,
                              struct qsm_result *res);

/* ---- qsm_rewind.c (Rewind) ---- */
int qsm_cmd_rewind(struct qsm *q, const cmq_RewindRequest *c, struct qsm_result *res);

/* ---- qsm_tick.c (Tick) ---- */
int qsm_cmd_tick(struct qsm *q, struct qsm_result *res);

#endif
