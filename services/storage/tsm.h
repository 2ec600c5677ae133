/* tsm.h: the replicated topic state machine of one storage partition.
 *
 * A topic lives on one partition (metadata places it, like a queue).  Its
 * published messages are Publish entries of the partition's Raft log
 * (StorageCommand.publish, proto/storage.proto) and are never copied into
 * memory: the topic's leader reads them back from the log when it delivers.
 * A `struct tsm` holds, per topic, its attributes and its subscriptions, and
 * per subscription its delivery state: a cursor (a msg id: every message of
 * the topic with a smaller id was delivered, dropped, or is a pending retry)
 * and at most TSM_RETRIES_MAX pending retries (msg id, failed attempts,
 * next attempt time).  Memory is O(topics + subscriptions x retries), never
 * O(backlog).
 *
 * It is a PURE core like qsm (no I/O, no clock, no randomness): time is the
 * leader's stamp in each command, and every decision that needs a clock or
 * a random number (when to retry, whether an attempt succeeded) is made by
 * the leader and arrives as a TopicProgress command.  Replicas applying the
 * same entries hold the same state (invariant 1).  A subscription's cursor
 * only moves forward, and only through TopicProgress (invariant 2: a message
 * is passed only after the leader saw its delivery succeed, gave up on it,
 * or found it filtered out or expired).  Subscriptions arrive as whole sets
 * (TopicSync): one missing from a sync is removed with its state; a new one
 * starts after the sync entry (it receives what is published after it).
 *
 * Leader-local marks (struct tsm_sub.busy) are not replicated and not in
 * snapshots.  Snapshots: tsm_snapshot_write / tsm_snapshot_read below (the
 * partition's snapshot must carry them next to qsm's, and compaction must
 * keep tsm_first_needed_index).
 */
#ifndef CMQ_STORAGE_TSM_H
#define CMQ_STORAGE_TSM_H

#include "qsm.h"
#include "topic_filter.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TSM_TOPICS_MAX 100000       /* topics per partition */
#define TSM_SUBS_MAX 1000           /* subscriptions per topic (metadata's quota is lower) */
#define TSM_RETRIES_MAX 16          /* pending retries per subscription; beyond, the cursor waits */
#define TSM_BATCH_MAX 16            /* messages per Publish */
#define TSM_RETENTION_MS (86400ull * 1000) /* spec §7: a topic message lives one day */
#define TSM_NAME_MAX 64
#define TSM_SUB_ID_MAX 32
#define TSM_ENDPOINT_MAX 500
/* The API's bounds (common/base/cmq_limits.h) must fit the state machine's. */
_Static_assert(TSM_BATCH_MAX == CMQ_BATCH_MAX, "API batches are the state machine's");
_Static_assert(TSM_NAME_MAX >= CMQ_NAME_LEN_MAX, "every topic name is stored");
_Static_assert(TSM_ENDPOINT_MAX >= CMQ_ENDPOINT_CHARS_MAX, "every endpoint is stored");
_Static_assert(TSM_SUBS_MAX >= CMQ_SUBS_PER_TOPIC_DEFAULT, "the default quota of subscriptions");
_Static_assert(TSM_RETENTION_MS == CMQ_TOPIC_RETENTION_S * 1000ull, "a topic message lives a day");
/* The publish dedup window (dedupwin.h, like qsm's): (topic, key) -> first
 * msg id; the last TSM_DEDUP_MAX keyed messages whatever their age, beyond
 * that those younger than TSM_DEDUP_KEEP_MS, up to TSM_DEDUP_HARD_MAX. */
#ifndef TSM_DEDUP_MAX
#define TSM_DEDUP_MAX 8192
#endif
#ifndef TSM_DEDUP_KEEP_MS
#define TSM_DEDUP_KEEP_MS 30000
#endif
#ifndef TSM_DEDUP_HARD_MAX
#define TSM_DEDUP_HARD_MAX (1u << 16)      /* 2 MiB of snapshot image (topics.c) */
#endif

enum tsm_protocol { TSM_PROTO_QUEUE = 1, TSM_PROTO_HTTP = 2 };
enum tsm_format { TSM_FORMAT_JSON = 1, TSM_FORMAT_SIMPLIFIED = 2 };
enum tsm_strategy { TSM_BACKOFF_RETRY = 1, TSM_EXPONENTIAL_DECAY_RETRY = 2 };

struct tsm_retry {
    uint64_t msg_id;
    uint32_t attempts;          /* failed attempts so far (>= 1) */
    uint64_t next_ms;           /* leader clock */
};

struct tsm_sub {
    char sub_id[TSM_SUB_ID_MAX + 1];
    char name[TSM_NAME_MAX + 1];
    uint32_t protocol, format, strategy;
    char endpoint[TSM_ENDPOINT_MAX + 1];
    uint64_t queue_id;          /* protocol queue */
    uint64_t dlq_queue_id;      /* extension: where exhausted messages go, 0 = dropped */
    uint32_t n_tags, n_keys;
    char tags[TOPIC_TAGS_MAX][TOPIC_TAG_BYTES_MAX + 1];
    char keys[TOPIC_KEYS_MAX][TOPIC_KEY_BYTES_MAX + 1];
    /* replicated delivery state */
    uint64_t cursor;
    uint32_t n_retries;         /* sorted by msg_id */
    struct tsm_retry retries[TSM_RETRIES_MAX];
    uint64_t delivered, dropped, dead_lettered;
    uint64_t published_base;    /* the topic's `published` when the subscription was created */
    uint64_t passed;            /* topic messages its cursor moved past */
    /* leader-local (not replicated): a delivery or a progress entry is in flight;
     * messages still to deliver one per request (after a leader change) */
    uint32_t busy;
    uint32_t singles;
    uint64_t singles_term;
};

struct tsm_topic {
    uint64_t topic_id;
    char name[TSM_NAME_MAX + 1];
    uint64_t appid;
    uint32_t filter_type, max_msg_size;
    uint64_t create_index;
    uint64_t last_publish_id;   /* the highest msg id published, 0 if none */
    uint64_t published;         /* messages published (counter) */
    uint32_t n_subs;            /* sorted by sub_id */
    struct tsm_sub **subs;
};

/* A Publish entry parsed in place (pointers into the entry). */
struct tsm_publish {
    uint64_t topic_id;
    uint64_t leader_ms;
    uint32_t n;                 /* messages */
    const uint8_t *body[TSM_BATCH_MAX];
    size_t body_len[TSM_BATCH_MAX];
    uint64_t dedup_key[TSM_BATCH_MAX]; /* PublishItem.dedup_key, 0: none */
    uint32_t n_tags;
    char tags[TOPIC_TAGS_MAX][TOPIC_TAG_BYTES_MAX + 1];
    char routing_key[TOPIC_KEY_BYTES_MAX + 1];
    char client_addr[64];       /* the publisher's (trace), "" if none */
};

struct tsm;

/* Creates an empty state machine for partition `partition_id` (1..4095). */
int tsm_create(uint32_t partition_id, struct tsm **out);
void tsm_destroy(struct tsm *t); /* accepts NULL */

/* Applies a committed topic command at (index).  Returns CMQ_OK,
 * CMQ_ENOTFOUND (unknown topic), CMQ_EINVAL (malformed), CMQ_ELIMIT,
 * CMQ_ENOMEM.  A refused command changes nothing. */
int tsm_apply(struct tsm *t, uint64_t index, const uint8_t *cmd, size_t len);
/* The same for an entry its caller has peeked already (`v`: cmdcodec_peek's
 * view of cmd, borrowed; NULL: tsm peeks it).  A host routes an entry to
 * this machine when cmdcodec_is_topic(v->kind), to the queue machine else. */
struct cmdcodec_view;
int tsm_apply_peeked(struct tsm *t, uint64_t index, const uint8_t *cmd, size_t len,
                     const struct cmdcodec_view *v);

/* Parses an encoded StorageCommand (borrowed) holding a Publish: true and
 * *out filled (pointing into cmd), or false when it is anything else. */
bool tsm_parse_publish(const uint8_t *cmd, size_t len, struct tsm_publish *out);

/* Whether `s` of topic `tp` receives message `m` (spec §9.4). */
bool tsm_sub_matches(const struct tsm_topic *tp, const struct tsm_sub *s,
                     const struct tsm_publish *m);

/* Idempotent publishes: per item of `m`, the msg id the publish dedup window
 * holds for its key in that topic (ids[i], 0: none).  Returns how many were
 * found.  Read before proposing, like qsm_dedup_lookup: applying a Publish
 * never refuses it (a leader answers keyed publishes only once it applied an
 * entry of its own term, and never proposes a key twice at once). */
uint32_t tsm_dedup_lookup(const struct tsm *t, const struct tsm_publish *m, uint64_t *ids);

/* Pre-propose check of a Publish (leader): CMQ_ENOTFOUND (topic unknown
 * here), CMQ_EEMPTY (no subscription), CMQ_ESTALE (none matches), or
 * CMQ_OK. */
int tsm_check_publish(const struct tsm *t, const struct tsm_publish *m);

/* ---- the message trace (docs/topics.md, docs/queue-state-machine.md §9) ----
 * Like qsm, the machine reports while applying entries, to the same tracer
 * type: a Publish gives PUBLISHED per message (queue_id: the topic, addr: the
 * client); a TopicProgress gives one event per TopicAttempt it carries (addr:
 * the subscription id, handle: attempt | http_status << 32, aux: the target
 * msg id, due_ms: FAILED the retry time, DEAD_LETTERED the DLQ's id).  Only
 * replicated facts, so the index is rebuilt by replaying the log. */
enum tsm_trace_event {
    TSM_EV_PUBLISHED = 20, TSM_EV_DELIVERED = 21, TSM_EV_FAILED = 22, TSM_EV_DROPPED = 23,
    TSM_EV_DEAD_LETTERED = 24,
};
/* Sets (copied) or clears (NULL) the tracer. */
void tsm_set_tracer(struct tsm *t, const struct qsm_tracer *tr);

/* Lookups; pointers stay valid until the next tsm_apply. */
struct tsm_topic *tsm_topic(const struct tsm *t, uint64_t topic_id);
struct tsm_sub *tsm_sub(const struct tsm_topic *tp, const char *sub_id);
size_t tsm_topic_count(const struct tsm *t);
struct tsm_topic *tsm_topic_at(const struct tsm *t, size_t i); /* id order */

/* Messages of the topic not yet through `s`'s cursor, plus its pending
 * retries (spec §8.4 msgCount). */
uint64_t tsm_sub_pending(const struct tsm_topic *tp, const struct tsm_sub *s);

/* The earliest next attempt time of a pending retry (leader clock), or
 * UINT64_MAX when none: what the partition's scheduler timer covers too. */
uint64_t tsm_next_due_ms(const struct tsm *t);

/* The smallest log index a cursor or retry still needs (entries before it
 * may be compacted); UINT64_MAX when nothing is needed. */
uint64_t tsm_first_needed_index(const struct tsm *t);

/* Retry schedule (spec §9.5).  After `failed` failed attempts (>= 1) of one
 * message, the delay before the next attempt in ms, or 0 when the strategy
 * is exhausted (give up: drop, or the dead-letter queue).
 *   BACKOFF_RETRY: 3 retries, each after a uniform 10-20 s (`rnd` picks it);
 *   EXPONENTIAL_DECAY_RETRY: 176 retries after 1, 2, 4, ..., 512 s, then
 *   512 s each (about one day in all).
 * `scale_permille` shortens (or keeps, 1000) the delays for tests. */
uint64_t tsm_retry_delay_ms(uint32_t strategy, uint32_t failed, uint32_t rnd,
                            uint32_t scale_permille);
#define TSM_BACKOFF_RETRIES 3
#define TSM_DECAY_RETRIES 176

/* ---- snapshots ----
 * Format: "TSMS", u32 version (2), u32 partition id, u64 applied index, u32
 * topic count, then each topic in id order with its subscriptions in id
 * order (attributes, configuration, cursor, retries, counters; fixed-width
 * little-endian integers, strings as u32 length + bytes), then (version 2)
 * u32 publish dedup window entries, oldest first, each u64 topic id, key,
 * msg id, leader clock; then CRC32C of all before it.  Version 1 images
 * (no window) are read with an empty window.  Leader-local marks are not written.  The sink is called with
 * consecutive pieces (borrowed); a non-zero return stops and is returned. */
typedef int tsm_sink_fn(void *arg, const void *buf, size_t len);
int tsm_snapshot_write(const struct tsm *t, tsm_sink_fn *sink, void *arg);
/* Replaces the whole state with the image (borrowed).  CMQ_ECORRUPT (CRC,
 * framing, version) or CMQ_EINVAL (another partition's) leaves it unchanged. */
int tsm_snapshot_read(struct tsm *t, const uint8_t *buf, size_t len);

#endif
