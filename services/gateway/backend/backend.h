/* backend.h: the gateway's protocol-neutral back end.  Both front ends (the
 * h2o handlers in http/ and the CMQ TCP listener in tcp/) call it for every
 * storage and metadata operation, so every behaviour behind the wire (codes,
 * heal, coalescing, routing, retries) is the same for both by construction.
 * The back end imports no front end.
 *
 * One `struct be_loop` per event loop (not thread-safe; its loop only):
 *   - routing: the storage peer that last answered for each partition id
 *     (be_peer_*); the rpc layer follows "not leader" hints from there;
 *   - metadata lookups: queues (with the queue cache), topics, keys
 *     (be_auth.h), ACL checks;
 *   - queue operations (be_queue_call, be_send, be_delete), with the heal: a
 *     storage "no such queue" (or "not here" from every replica) creates the
 *     queue from its metadata attributes, addressed to its partition, and
 *     sends the request again, once;
 *   - send and delete coalescing (be_group.h): the sends (deletes) to one
 *     queue submitted during one loop turn go as ONE storage request at
 *     be_flush, each caller answered with its slice;
 *   - publish (be_publish) with its heal: a topic storage does not know, or
 *     a refusal for want of a (matching) subscription, first copies the
 *     subscription set from metadata to storage (be_topic_sync), once;
 *   - replies decoded with the generated structs (be_codec.h) and every
 *     failure mapped to ONE CMQ row (be_status.h).
 *
 * Completion: each operation calls its `fn` exactly once (possibly before
 * the submitting call returns), then forgets `arg`.  A caller whose client
 * went away still gets its callback; it keeps `arg` alive until then. */
#ifndef CMQ_GATEWAY_BACKEND_H
#define CMQ_GATEWAY_BACKEND_H

#include "be_codec.h"
#include "be_group.h"
#include "be_status.h"

#include "action.h"
#include "metadata.pb.h"
#include "rpc.h"

#include <pb.h>
#include <stddef.h>
#include <stdint.h>

#define BE_PARTITIONS 4096
#define BE_STORAGE_TIMEOUT_MS 2000 /* per attempt: a commit takes milliseconds */
#define BE_STORAGE_ATTEMPTS 3
#define BE_META_TIMEOUT_MS 3000
/* How long a keyed send or publish is retried on the partition's replicas
 * (rpc_opts.retry_ms: timeouts, not-leader, busy) before its failure is the
 * answer: longer than a leader change (election 1-3 s). */
#define BE_STORAGE_RETRY_MS 6000

struct keycache;
struct qcache;
struct gw_metrics;
struct metrics_queues;

struct be_loop {
    struct rpc_client *metadata;     /* borrowed */
    struct rpc_client *storage;      /* borrowed: one client over every storage node */
    struct keycache *keys;           /* owned */
    struct qcache *queues;           /* owned */
    struct gw_metrics *metrics;      /* this loop's counters (borrowed) */
    struct metrics_queues *mqueues;  /* the /metrics queue table (borrowed, locks) */
    int coalesce;                    /* send.coalesce */
    signed char partition_peer[BE_PARTITIONS];
    struct be_groups groups;
};

/* Sets `be` up (caches of 4096 keys / queues).  CMQ_OK or CMQ_ENOMEM. */
int be_loop_init(struct be_loop *be, struct rpc_client *metadata, struct rpc_client *storage,
                 struct gw_metrics *metrics, struct metrics_queues *mqueues, int coalesce);
/* Frees the caches (the groups were flushed: be_flush). */
void be_loop_close(struct be_loop *be);
/* Sends the groups coalesced this loop turn (call once per turn, before the
 * loop waits). */
void be_flush(struct be_loop *be);

/* Routing: the first storage peer to ask for `partition` (-1: any), and a
 * peer that answered for it. */
int be_peer_of(const struct be_loop *be, uint32_t partition);
void be_peer_note(struct be_loop *be, uint32_t partition, int peer);

/* ---------- raw calls ---------- */

typedef void be_reply_fn(void *arg, int status, const struct rpc_msg *msg);
/* A metadata request (one attempt).  CMQ_OK, or a status (fn never runs). */
int be_meta_call(struct be_loop *be, uint32_t type, const pb_msgdesc_t *fields, const void *msg,
                 be_reply_fn *fn, void *arg);
/* A storage request routed to `partition`'s leader (no heal): `retry_ms` > 0
 * for requests safe to repeat.  CMQ_OK, or a status (fn never runs). */
int be_storage_call(struct be_loop *be, uint32_t partition, uint32_t type, const void *body,
                    size_t len, int timeout_ms, int retry_ms, be_reply_fn *fn, void *arg);

/* ---------- lookups ---------- */

/* The queue (cache unless `fresh`, else metadata QUEUE_GET); placed (a
 * partition and num_id) or a fault.  fn gets qi (borrowed) or NULL and f. */
typedef void be_queue_fn(void *arg, const cmq_QueueInfo *qi, const struct be_fault *f);
void be_queue_get(struct be_loop *be, uint64_t appid, const char *name, int fresh, be_queue_fn *fn,
                  void *arg);
typedef void be_topic_fn(void *arg, const cmq_TopicInfo *ti, const struct be_fault *f);
/* The topic from metadata (TOPIC_GET); placed or a fault. */
void be_topic_get(struct be_loop *be, uint64_t appid, const char *name, be_topic_fn *fn, void *arg);

/* ---------- operations ---------- */

/* What an operation came to. */
struct be_result {
    int status;                 /* CMQ_OK, or the failure after heals and retries */
    enum cmq_err err;           /* its row (CMQERR_OK on success) */
    const struct rpc_msg *msg;  /* the storage reply (queue calls; NULL otherwise) */
    const uint64_t *ids;        /* sends and publishes: this caller's msg ids */
    size_t n_ids;
    const int32_t *statuses;    /* deletes: this caller's per-handle statuses */
    size_t n_statuses;
    const struct be_received *received; /* receives: the messages (bodies in msg) */
    size_t n_received;
};
typedef void be_done_fn(void *arg, const struct be_result *r);

/* A request of storage type `type` (struct `msg` of `fields`, encoded here)
 * to queue `qi`'s partition, healed unless `no_heal`.  Receives: the reply
 * is decoded into r->received (none: CMQERR_NO_MESSAGE). */
void be_queue_call(struct be_loop *be, enum cmq_action action, const cmq_QueueInfo *qi,
                   uint32_t type, const pb_msgdesc_t *fields, const void *msg, int timeout_ms,
                   int no_heal, be_done_fn *fn, void *arg);
/* Sends items[0..n) (bodies borrowed until this returns) to queue `qi`:
 * coalesced when the loop coalesces; r->ids are this caller's. */
void be_send(struct be_loop *be, enum cmq_action action, const cmq_QueueInfo *qi,
             const struct be_send_item *items, size_t n, const char *client_addr, be_done_fn *fn,
             void *arg);
/* Deletes handles[0..n) of queue `qi`: coalesced like sends; r->statuses
 * are storage's per handle (CMQ_OK or CMQ_ESTALE), in order. */
void be_delete(struct be_loop *be, enum cmq_action action, const cmq_QueueInfo *qi,
               const uint64_t *handles, size_t n, be_done_fn *fn, void *arg);
/* Publishes bodies[0..n) to topic `ti` (tags, routing key: checked by the
 * caller); r->ids on success. */
void be_publish(struct be_loop *be, enum cmq_action action, const cmq_TopicInfo *ti,
                const struct be_text *bodies, size_t n, const struct be_text *tags, size_t n_tags,
                const char *routing_key, const char *client_addr, be_done_fn *fn, void *arg);
/* Copies topic `ti`'s subscription set from metadata to storage
 * (SUB_LIST pages, then TOPIC_SYNC); fn gets CMQ_OK or the failure. */
typedef void be_sync_fn(void *arg, int status);
void be_topic_sync(struct be_loop *be, const cmq_TopicInfo *ti, be_sync_fn *fn, void *arg);

#endif
