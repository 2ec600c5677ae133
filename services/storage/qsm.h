/* qsm.h: the replicated queue state machine of one storage partition.
 *
 * A partition is one Raft group; its log holds StorageCommands
 * (proto/storage.proto), one per entry.  A `struct qsm` applies committed
 * entries in log order and holds the consumption state of every queue placed
 * on the partition: attributes, a consume cursor over the log, leases
 * (in-flight messages), delayed messages, and a bounded list of log spans that
 * say where each queue's messages are.  It is a PURE core: no I/O, no clock,
 * no sockets, no threads, no globals.  Time comes only from `leader_ms` in each
 * command; message bodies are not kept in memory: the Send entries stay in the
 * log and are read back through `struct qsm_reader` when delivered.
 *
 * Determinism (invariant 1): replicas that apply the same entries, and a
 * replica that restored a snapshot taken at index i and then applied the
 * entries after i, hold the same state, return the same results and write
 * byte-identical snapshots.  Everything iterated in an order-sensitive way is
 * iterated in id order; hash tables are used for lookups only.
 *
 * Memory (invariant 2): per queue O(in-flight + delayed + parked ordered
 * messages + a span list capped at QSM_SPANS_MIN..MAX), never O(backlog).  docs/queue-state-machine.md
 * explains the span list and its measured cost.
 *
 * Failure (invariant 3): if the reader fails (an entry the state machine still
 * needs is gone or unreadable), the qsm enters a failed state, like SQLite's
 * pager after an I/O error: every later qsm_apply returns that status and
 * changes nothing.  The lead must stop the partition (or restore a snapshot).
 *
 * Changes to the contract with the lead (storage node):
 *  - maxMsgHeapNum and maxMsgSize are checked by qsm_check_send (call it on the
 *    leader before proposing a Send).  qsm_apply accepts every statelessly
 *    valid Send to an existing queue, so the heap limit can be overshot by the
 *    Sends already in flight.  Reason: a rejected Send entry would have to be
 *    remembered forever to be skipped when the log is scanned; a decision that
 *    depends only on the entry itself (and the queue's immutable `ordered`
 *    flag) can be re-derived by the scan.
 *  - Rewind with rewindSeconds = 0 returns CMQ_EDENIED (spec 6050/10670);
 *    a time outside the window returns CMQ_EINVAL (spec 4000/10680).
 *  - Receive returns CMQ_EEMPTY when nothing is deliverable and CMQ_ELIMIT
 *    when the queue already has maxInflightNum leases (spec 6070/10690).
 *  - Message bodies are nanopb callbacks (SendItem.body, ReceivedMessage.body):
 *    this nanopb build has 16-bit sizes, so `bytes` cannot hold a 1 MiB body.
 *    qsm parses Send entries itself, in place; qsm_check_send therefore takes
 *    the encoded SendRequest.
 *  - The scan's work per command is bounded (QSM_RECEIVE_READS_MAX,
 *    QSM_TICK_READS_MAX): a Receive may answer CMQ_EEMPTY while
 *    qsm_has_visible still says yes; propose another (it continues where the
 *    last one stopped).
 *  - Idempotent appends: a SendItem may carry a dedup_key; the partition
 *    remembers keyed items (queue, key -> first msg id, in the snapshot):
 *    the last QSM_DEDUP_MAX of them whatever their age, and beyond that
 *    those younger than QSM_DEDUP_KEEP_MS (leader clock), up to
 *    QSM_DEDUP_HARD_MAX (dedupwin.h).  The window is only read before
 *    proposing (qsm_dedup_lookup, on a leader that applied an entry of its
 *    own term); applying a Send never refuses it, so the scan re-derives
 *    acceptance from the entry alone (I6 in qsm_internal.h).
 *  - Transaction (half) messages (SendItem.txn_check_ms > 0, not with a delay,
 *    not on ordered queues) are tracked from their Send and never delivered
 *    until a TxnConfirm commits them (they become visible at that entry's
 *    time) or rolls them back (dropped).  A Tick at or after the check time
 *    lists the message in res->txn (the leader asks the producer) and
 *    schedules the next check txn_check_ms later; the Tick that finds
 *    QSM_TXN_QUERIES_MAX check-backs unanswered rolls it back.  Check-back
 *    attempts are state (Ticks are entries), so a new leader continues them.
 *    qsm_check_send answers CMQ_ELIMIT when the queue holds
 *    QSM_TXN_HALF_MAX undecided ones (in-flight Sends may overshoot).
 *    A rewind does not replay undecided half messages.
 *  - Dead-letter moves stay in a pending list (qsm_dlq_pending, in the
 *    snapshot) until a DlqDelivered command acknowledges them.
 */
#ifndef CMQ_STORAGE_QSM_H
#define CMQ_STORAGE_QSM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cmq_limits.h"
#include "storage.pb.h"

/* ---- identifiers (DESIGN §6) ----
 * msgId and receiptHandle share one layout:
 *   bits 63..52  partition id (1..4095)
 *   bits 51..4   Raft log index of the entry (Send for a msgId, Receive for a handle)
 *   bits  3..0   slot: position in the batch (0..15)
 * Unique in the cluster because a (partition, index) names one entry forever,
 * never 0 because partition ids start at 1, and a handle names the partition
 * that issued it (the gateway routes deletes by it). */
#define QSM_ID_PARTITION_BITS 12
#define QSM_ID_INDEX_BITS 48
#define QSM_ID_SLOT_BITS 4
#define QSM_PARTITION_MAX ((1u << QSM_ID_PARTITION_BITS) - 1)
#define QSM_INDEX_MAX ((UINT64_C(1) << QSM_ID_INDEX_BITS) - 1)

static inline uint64_t qsm_id_make(uint32_t partition, uint64_t index, uint32_t slot)
{
    return ((uint64_t)partition << (QSM_ID_INDEX_BITS + QSM_ID_SLOT_BITS)) |
           ((index & QSM_INDEX_MAX) << QSM_ID_SLOT_BITS) | (slot & 15u);
}
static inline uint32_t qsm_id_partition(uint64_t id)
{
    return (uint32_t)(id >> (QSM_ID_INDEX_BITS + QSM_ID_SLOT_BITS));
}
static inline uint64_t qsm_id_index(uint64_t id)
{
    return (id >> QSM_ID_SLOT_BITS) & QSM_INDEX_MAX;
}
static inline uint32_t qsm_id_slot(uint64_t id)
{
    return (uint32_t)(id & 15u);
}

/* ---- limits ---- */
#define QSM_BATCH_MAX 16                   /* messages per Send, count per Receive, handles per Delete */
#define QSM_BODY_BYTES_MAX 1048576         /* one body; the queue's maxMsgSize is <= this */
#define QSM_BATCH_BYTES_MAX 1048576        /* all bodies of one Send */
#define QSM_DELAY_S_MAX (7 * 86400)        /* storage bound; the API's default cap is 3600 */
#define QSM_VISIBILITY_S_MAX 43200
#define QSM_GROUP_ID_LEN_MAX 128
#define QSM_NAME_LEN_MAX 128
#define QSM_QUEUES_MAX 100000              /* queues per partition */
/* The #ifndef bounds can be overridden at compile time (the stress tests build
 * qsm*.c with tiny ones to drive the coarse paths); every replica of a
 * partition must use the same values, and so must snapshots. */
#ifndef QSM_SPANS_MIN
#define QSM_SPANS_MIN 256                  /* log spans a queue may always keep (see docs) */
#endif
#ifndef QSM_SPANS_MAX
#define QSM_SPANS_MAX 4096                 /* ... and at most, when few queues share the partition */
#endif
#ifndef QSM_SPANS_BUDGET
#define QSM_SPANS_BUDGET 65536             /* per partition: the queues share it (48 bytes a span) */
#endif
#ifndef QSM_PARKED_MAX
#define QSM_PARKED_MAX 4096                /* ordered queues: messages parked behind busy groups */
#endif
#define QSM_INFLIGHT_DEFAULT 20000         /* maxInflightNum default (spec §9.1) */
#define QSM_INFLIGHT_MAX 1000000
#ifndef QSM_RECEIVE_READS_MAX
#define QSM_RECEIVE_READS_MAX 16384        /* log entries one Receive may visit before it answers */
#endif
#ifndef QSM_TICK_READS_MAX
#define QSM_TICK_READS_MAX 4096            /* log entries a Tick may read; the rest waits for the next */
#endif
#ifndef QSM_DLQ_MOVES_MAX
#define QSM_DLQ_MOVES_MAX 256              /* dead-letter moves listed by one command */
#endif
#ifndef QSM_DLQ_PENDING_MAX
#define QSM_DLQ_PENDING_MAX 4096           /* moves decided, not yet acknowledged, per partition */
#endif
#ifndef QSM_TXN_HALF_MAX
#define QSM_TXN_HALF_MAX 4096              /* undecided half messages per queue (qsm_check_send) */
#endif
#ifndef QSM_TXN_QUERIES_MAX
#define QSM_TXN_QUERIES_MAX 5              /* check-backs of a half message before its rollback */
#endif
#ifndef QSM_TXN_TICK_MAX
#define QSM_TXN_TICK_MAX 64                /* check-backs one Tick may decide */
#endif
#define QSM_TXN_CHECK_MS_MAX (12 * 3600 * 1000)
#ifndef QSM_DEDUP_MAX
#define QSM_DEDUP_MAX 8192                 /* dedup window: keyed items always remembered */
#endif
#ifndef QSM_DEDUP_KEEP_MS
#define QSM_DEDUP_KEEP_MS 30000            /* ... and beyond, those younger than this */
#endif
#ifndef QSM_DEDUP_HARD_MAX
#define QSM_DEDUP_HARD_MAX (1u << 18)      /* ... up to this many (8 MiB + 2 MiB index; 8 MiB of
                                              * snapshot image: topics.c asserts it fits) */
#endif

_Static_assert(QSM_BATCH_MAX <= (1 << QSM_ID_SLOT_BITS), "a batch must fit the id's slot bits");
/* The API's bounds (common/base/cmq_limits.h) must fit the state machine's. */
_Static_assert(QSM_BATCH_MAX == CMQ_BATCH_MAX, "API batches are the state machine's");
_Static_assert(QSM_BODY_BYTES_MAX >= CMQ_MSG_SIZE_ATTR_MAX, "the largest maxMsgSize is stored");
_Static_assert(QSM_BATCH_BYTES_MAX >= CMQ_BATCH_BYTES_MAX, "the largest API batch is stored");
_Static_assert(QSM_DELAY_S_MAX == CMQ_DELAY_S_CAP_MAX,
               "gateway.max_delay_seconds may go up to exactly what storage supports");
_Static_assert(QSM_VISIBILITY_S_MAX >= CMQ_VISIBILITY_S_MAX, "every visibilityTimeout is stored");
_Static_assert(QSM_NAME_LEN_MAX >= CMQ_NAME_LEN_MAX, "every queue name is stored");
_Static_assert(QSM_INFLIGHT_DEFAULT == CMQ_INFLIGHT_MAX, "the spec's in-flight bound (§9.1)");
_Static_assert(QSM_TXN_CHECK_MS_MAX == CMQ_TXN_CHECK_MS_MAX, "the TCP check-back bound");
_Static_assert(QSM_SPANS_MIN >= 4 && QSM_SPANS_MIN <= QSM_SPANS_MAX, "span caps");
_Static_assert(QSM_RECEIVE_READS_MAX >= 1 && QSM_TICK_READS_MAX >= 1 && QSM_DLQ_MOVES_MAX >= 1 &&
               QSM_PARKED_MAX >= 1, "work bounds");
_Static_assert(QSM_GROUP_ID_LEN_MAX < sizeof(((cmq_SendItem *)0)->group_id), "group id bound");
_Static_assert(QSM_NAME_LEN_MAX < sizeof(((cmq_StorageCreateQueueRequest *)0)->name), "name bound");
_Static_assert(QSM_BATCH_MAX == sizeof(((cmq_SendRequest *)0)->messages) / sizeof(cmq_SendItem),
               "proto batch bound");

/* ---- the reader seam ----
 * Reads back the committed entry at `index` (the bytes given to qsm_apply).
 * On CMQ_OK *buf is malloc'd and the qsm free()s it.  Any other status puts
 * the qsm in its failed state (invariant 3). */
struct qsm_reader {
    int (*read_entry)(void *arg, uint64_t index, uint8_t **buf, size_t *len);
    void *arg;
};

enum qsm_dlq_policy { QSM_DLQ_NONE = 0, QSM_DLQ_RECEIVES = 1, QSM_DLQ_TTL = 2 };

/* Effective attributes of a queue (all present). */
struct qsm_attrs {
    uint64_t max_msg_heap_num;
    uint32_t polling_wait_s;
    uint32_t visibility_timeout_s;
    uint32_t max_msg_size;
    uint32_t msg_retention_s;
    uint32_t rewind_s;
    uint32_t dlq_policy;       /* enum qsm_dlq_policy */
    uint64_t dlq_queue_id;
    uint32_t dlq_max_receive_count;
    uint32_t dlq_max_ttl_s;
    bool ordered;
    uint32_t max_inflight_num;
};

struct qsm_stats {
    uint64_t active;           /* visible now (approximate after a rewind) */
    uint64_t inactive;         /* leased */
    uint64_t delayed;
    uint64_t retained;         /* deleted but kept for rewind (approximate) */
    uint64_t min_msg_time_ms;  /* enqueue time of the oldest undeleted message, 0 if none */
    uint64_t parked;           /* ordered queues: waiting behind their group */
    uint64_t rewound;          /* taken back by a rewind, waiting for the scan (in `active`) */
    uint64_t half;             /* transaction messages not yet committed or rolled back */
    uint32_t spans;            /* log spans held */
    uint64_t create_index;
    struct qsm_attrs attrs;
    char name[QSM_NAME_LEN_MAX + 1];
};

/* Where a dead-letter copy came from (SendItem.origin). */
struct qsm_origin {
    uint64_t queue_id, msg_id, enqueue_ms, first_dequeue_ms;
    uint32_t dequeue_count, reason;
    char queue_name[QSM_NAME_LEN_MAX + 1];
};

/* One delivered message (Receive). */
struct qsm_delivery {
    uint64_t msg_id;
    uint64_t receipt_handle;
    uint64_t enqueue_ms;
    uint64_t first_dequeue_ms;
    uint64_t next_visible_ms;
    uint32_t dequeue_count;    /* including this receive */
    uint8_t *body;             /* owned by the result; NULL when skip_bodies */
    size_t body_len;
    bool has_origin;           /* a dead-letter copy */
    struct qsm_origin origin;
};

/* One message to append to a dead-letter queue (the lead appends it to the
 * DLQ's partition as a Send; it is already gone from the source queue). */
struct qsm_dlq_move {
    uint64_t queue_id;         /* source */
    uint64_t dlq_queue_id;
    uint64_t msg_id;
    uint64_t enqueue_ms;
    uint64_t first_dequeue_ms; /* 0 if never delivered */
    uint32_t dequeue_count;
    uint32_t reason;           /* QSM_DLQ_RECEIVES or QSM_DLQ_TTL */
    uint8_t *body;             /* owned by the result; NULL when skip_bodies */
    size_t body_len;
};

/* A check-back the leader should send (transaction messages, Tick). */
struct qsm_txn_query {
    uint64_t queue_id;
    uint64_t msg_id;
    uint32_t attempt;          /* 1 for the first check-back */
};

/* The outcome of one qsm_apply.  The caller zeroes it (or sets skip_bodies)
 * before the call and releases it with qsm_result_release after. */
struct qsm_result {
    /* in */
    bool skip_bodies;          /* followers: do not copy bodies into the result */
    /* out */
    int status;                /* also the return value of qsm_apply */
    uint32_t type;             /* StorageMsgType of the command, or 0 for Tick/no-op */
    uint64_t queue_id;
    uint32_t n_msg_ids;        /* Send: assigned ids, request order */
    uint64_t msg_ids[QSM_BATCH_MAX];
    uint32_t n_delivered;      /* Receive */
    struct qsm_delivery delivered[QSM_BATCH_MAX];
    uint32_t n_txn;            /* Tick: check-backs now due (queue id order, then due time) */
    struct qsm_txn_query txn[QSM_TXN_TICK_MAX];
    uint32_t n_statuses;       /* Delete: per handle, request order (CMQ_OK or CMQ_ESTALE);
                                  the command's status is CMQ_OK even when every handle failed.
                                  TxnConfirm: per item (CMQ_ESTALE: not an undecided half
                                  message of the queue, ignored) */
    int32_t statuses[QSM_BATCH_MAX];
    uint64_t next_visible_ms;  /* ChangeVisibility */
    struct qsm_attrs attrs;    /* CreateQueue, SetQueueAttributes: effective values */
    uint32_t n_dlq;            /* Receive (policy 0) and Tick: moves, sorted by msg id */
    struct qsm_dlq_move *dlq;
};

void qsm_result_release(struct qsm_result *res);

struct qsm;

/* Creates an empty state machine for `partition_id` (1..QSM_PARTITION_MAX).
 * `reader` is copied; its arg is borrowed for the qsm's life. */
int qsm_create(uint32_t partition_id, const struct qsm_reader *reader, struct qsm **out);
/* Accepts NULL. */
void qsm_destroy(struct qsm *q);

/* Applies the committed entry (index, term) holding an encoded StorageCommand
 * (borrowed for the call).  `index` must grow; an empty entry is a no-op.  An
 * entry that does not decode is refused with CMQ_EINVAL and changes nothing.
 * Returns res->status: the command's outcome (CMQ_OK, CMQ_ENOTFOUND,
 * CMQ_EINVAL, CMQ_ESTALE, CMQ_EEMPTY, ...) or the failed state's status. */
int qsm_apply(struct qsm *q, uint64_t index, uint64_t term, const uint8_t *cmd, size_t len,
              struct qsm_result *res);
/* The same for an entry its caller has peeked already: `v` is cmdcodec_peek's
 * view of cmd (cmdcodec.h, borrowed for the call), or NULL (then qsm peeks
 * it), so a host that routes entries by their kind parses each one once. */
struct cmdcodec_view;
int qsm_apply_peeked(struct qsm *q, uint64_t index, uint64_t term, const uint8_t *cmd, size_t len,
                     const struct cmdcodec_view *v, struct qsm_result *res);

/* ---- read-only queries (leader, no log entry) ---- */

/* Pre-propose check of an encoded SendRequest (borrowed): CMQ_EINVAL (does
 * not parse, bad count, empty body, delay too long, delay on an ordered
 * queue), CMQ_ENOTFOUND, CMQ_ETOOBIG (a body over the queue's maxMsgSize, or
 * the batch over QSM_BATCH_BYTES_MAX), CMQ_ELIMIT (maxMsgHeapNum reached). */
int qsm_check_send(const struct qsm *q, const uint8_t *req, size_t len);
/* CMQ_OK or CMQ_ENOTFOUND. */
int qsm_stats(const struct qsm *q, uint64_t queue_id, struct qsm_stats *out);
/* Whether a Receive applied at now_ms would find a message (for long-poll
 * parking).  May say yes when a rewind made counts approximate. */
bool qsm_has_visible(const struct qsm *q, uint64_t queue_id, uint64_t now_ms);
/* The earliest time at which a Tick would change something (a delayed message
 * becomes visible, a lease expires, retention or a dead-letter TTL is due, or
 * a previous Tick left work); UINT64_MAX if nothing is pending. */
uint64_t qsm_next_due_ms(const struct qsm *q);
/* The smallest log index the state machine may still read; entries before it
 * may be compacted once a snapshot covers them.  last applied + 1 if none. */
uint64_t qsm_first_needed_index(const struct qsm *q);
uint64_t qsm_applied_index(const struct qsm *q);
/* Dead-letter moves decided and not yet acknowledged by a DlqDelivered
 * command, ascending msg id, without bodies (copied into out[<max]); returns
 * the total.  They survive leader changes and snapshots: the leader appends
 * each to its DLQ (idempotently: dedup key = the source msg id) and then
 * proposes DlqDelivered (docs/queue-state-machine.md §8). */
size_t qsm_dlq_pending(const struct qsm *q, struct qsm_dlq_move *out, size_t max);
/* Dedup window lookup for an encoded SendRequest (borrowed), per item: keys[i]
 * its dedup key (0: none) and ids[i] the msg id the window holds for it in
 * that queue (0: none), *n the item count.  Returns the number of items
 * found (0..*n), or -1 when the request does not parse. */
int qsm_dedup_lookup(const struct qsm *q, const uint8_t *req, size_t len, uint64_t *keys,
                     uint64_t *ids, uint32_t *n);
/* For a Send the window holds in part: the encoded SendRequest `req`
 * (borrowed) without the items whose held[i] != 0 (other fields and items
 * as they were, in order), malloc'd (caller frees), or NULL (malformed, out
 * of memory). */
uint8_t *qsm_send_strip(const uint8_t *req, size_t len, const uint64_t *held, size_t *out_len);
/* The reply to such a Send in request order: out[i] = held[i] when set,
 * else the next of the stripped request's new_ids.  Returns n (out has
 * room for n <= QSM_BATCH_MAX). */
uint32_t qsm_send_merge(const uint64_t *held, uint32_t n, const uint64_t *new_ids, uint32_t n_new,
                        uint64_t *out);
/* Dedup window lookup for an encoded SendRequest (borrowed): CMQ_OK when every
 * item has a dedup key the window holds for that queue (ids[0..n) are the
 * original msg ids: answer them, do not propose); CMQ_ENOTFOUND otherwise
 * (*first_key: the first item's key, 0 if no item has one); CMQ_EINVAL when
 * it does not parse. */
int qsm_dedup_check(const struct qsm *q, const uint8_t *req, size_t len, uint64_t *ids,
                    uint32_t *n, uint64_t *first_key);
/* Reads the body of message `msg_id` of `queue_id` back from the log (through
 * the reader; a failure here does not put the qsm in its failed state).  On
 * CMQ_OK *body is malloc'd (caller frees). */
int qsm_message_read(const struct qsm *q, uint64_t queue_id, uint64_t msg_id, uint8_t **body,
                     size_t *len, uint64_t *enqueue_ms);
/* Bytes held by the state machine (structures and tracked messages). */
size_t qsm_memory_bytes(const struct qsm *q);
/* Log entries read through the reader since creation (for the cost bench). */
uint64_t qsm_entry_reads(const struct qsm *q);
/* Queue ids on this partition, ascending; returns the total count. */
size_t qsm_queue_ids(const struct qsm *q, uint64_t *ids, size_t max);

/* ---- the message trace (docs/queue-state-machine.md §9) ----
 * Every state change of a message is reported, while an entry is applied, to
 * an optional tracer: deterministic (the same events on every replica, in the
 * same order), so a derived index built from them is the log's, not a second
 * source of truth.  The event struct and its strings are borrowed for the
 * call. */
enum qsm_trace_event {
    QSM_EV_SENT = 1, QSM_EV_DELAYED = 2, QSM_EV_VISIBLE = 3, QSM_EV_DELIVERED = 4,
    QSM_EV_LEASE_EXPIRED = 5, QSM_EV_DELETED = 6, QSM_EV_REWOUND = 7,
    QSM_EV_DEAD_LETTERED = 8, QSM_EV_EXPIRED = 9,
};
struct qsm_trace_ev {
    uint32_t event;
    uint64_t queue_id;
    uint64_t msg_id;      /* 0 for REWOUND: a queue-level event (it re-exposes the messages
                             enqueued at or after aux) */
    uint64_t time_ms;     /* the entry's time; LEASE_EXPIRED / VISIBLE: when the lease or
                             delay ended */
    uint64_t handle;      /* DELIVERED, DELETED, LEASE_EXPIRED */
    uint64_t due_ms;      /* DELAYED: visible at; DELIVERED: visible again at */
    uint64_t aux;         /* DEAD_LETTERED: the DLQ's id; REWOUND: the rewind time (ms) */
    const char *addr;     /* SENT: client; DELIVERED: consumer; not NUL-terminated */
    size_t addr_len;
};
struct qsm_tracer {
    void (*event)(void *arg, uint64_t index, const struct qsm_trace_ev *ev);
    void *arg;
};
/* Sets (copied) or clears (NULL) the tracer. */
void qsm_set_tracer(struct qsm *q, const struct qsm_tracer *t);

/* ---- snapshots ----
 * Format (docs/queue-state-machine.md): "QSMS" magic, version, partition id,
 * applied index and term, then every queue in id order with its tracked
 * messages in id order, then CRC32C of everything before it.  No bodies.
 * The sink is called one or more times with consecutive pieces (borrowed for
 * the call); a non-zero return stops the write and is returned. */
typedef int qsm_sink_fn(void *arg, const void *buf, size_t len);
int qsm_snapshot_write(const struct qsm *q, qsm_sink_fn *sink, void *arg);
/* Replaces the whole state with the image (borrowed).  CMQ_ECORRUPT (bad CRC,
 * framing or version) or CMQ_EINVAL (another partition's image) leaves the
 * state unchanged. */
int qsm_snapshot_read(struct qsm *q, const uint8_t *buf, size_t len);

#endif
