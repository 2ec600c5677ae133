/* be_storage.c: the back end's loop state, routing, metadata lookups and
 * queue operations with the heal and send/delete coalescing (backend.h).
 *
 * Coalescing (DESIGN §3): sends that reach the back end during one turn of
 * the event loop are grouped per queue (be_group.h); at the end of the turn
 * (be_flush) each group goes to the partition leader as ONE SendRequest,
 * hence one Raft entry, and each caller gets its slice of the returned msg
 * ids (storage answers them in request order).  Grouping is per queue, not
 * per partition, so a Send entry stays a plain single-queue SendRequest.
 * Per-caller outcomes stay those of an uncoalesced send: a group is
 * all-or-nothing for storage, so when the leader refuses it with a status
 * that may depend on one member (CMQ_EINVAL, CMQ_ETOOBIG, CMQ_ELIMIT: heap
 * full, CMQ_ENOTFOUND / CMQ_ENOTLEADER: heal), nothing was stored and every
 * member is sent again on its own.  Any other failure (timeout, unavailable)
 * is every member's answer.  Deletes to one queue are grouped the same way
 * (storage answers a status per handle, so each caller gets its own).
 *
 * The heal: storage learns a queue when the gateway that created it in
 * metadata creates it there.  If that step failed, the first request that
 * storage answers "no such queue" (or "not here" from every replica: none
 * of them serves it right now) creates it from the metadata attributes,
 * addressed to its partition (EEXIST: it exists), and is sent again to the
 * node that answered, once per request.  One node's "not here" is never a
 * 4440 by itself. */
#include "backend.h"

#include "clock.h"
#include "keycache.h"
#include "log.h"
#include "metrics.h"
#include "pb_size.h"
#include "qcache.h"
#include "status.h"
#include "storage.pb.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int be_loop_init(struct be_loop *be, struct rpc_client *metadata, struct rpc_client *storage,
                 struct gw_metrics *metrics, struct metrics_queues *mqueues, int coalesce)
{
    memset(be, 0, sizeof *be);
    be->metadata = metadata;
    be->storage = storage;
    be->metrics = metrics;
    be->mqueues = mqueues;
    be->coalesce = coalesce;
    memset(be->partition_peer, -1, sizeof be->partition_peer);
    be->keys = keycache_new(4096, 30000, 2000);
    be->queues = qcache_new(4096, 10000);
    if (!be->keys || !be->queues) {
        be_loop_close(be);
        return CMQ_ENOMEM;
    }
    return CMQ_OK;
}

void be_loop_close(struct be_loop *be)
{
    keycache_free(be->keys);
    be->keys = NULL;
    qcache_free(be->queues);
    be->queues = NULL;
}

int be_peer_of(const struct be_loop *be, uint32_t partition)
{
    return partition < BE_PARTITIONS ? be->partition_peer[partition] : -1;
}

void be_peer_note(struct be_loop *be, uint32_t partition, int peer)
{
    if (partition < BE_PARTITIONS && peer >= 0 && peer < 127)
        be->partition_peer[partition] = (signed char)peer;
}

/* ---------- raw calls ---------- */

struct raw {
    be_reply_fn *fn;
    void *arg;
    struct be_loop *be;
    uint32_t partition; /* storage: noted on success; UINT32_MAX none */
};

static void on_raw(void *arg, const struct rpc_result *res)
{
    struct raw *w = arg;
    if (res->status == CMQ_OK && w->partition != UINT32_MAX)
        be_peer_note(w->be, w->partition, res->peer);
    w->fn(w->arg, res->status, res->msg);
    free(w);
}

static int raw_call(struct be_loop *be, struct rpc_client *cl, uint32_t partition, uint32_t type,
                    const void *body, size_t len, const struct rpc_opts *opts, be_reply_fn *fn,
                    void *arg)
{
    struct raw *w = malloc(sizeof *w);
    if (!w)
        return CMQ_ENOMEM;
    *w = (struct raw){fn, arg, be, partition};
    int rc = rpc_client_call(cl, type, body, len, opts, on_raw, w);
    if (rc != CMQ_OK)
        free(w);
    return rc;
}

static int meta_call(struct be_loop *be, uint32_t type, const pb_msgdesc_t *fields, const void *msg,
                     int attempts, be_reply_fn *fn, void *arg)
{
    uint8_t *body;
    size_t len;
    int rc = rpc_pb_encode(fields, msg, &body, &len);
    if (rc != CMQ_OK)
        return rc;
    struct rpc_opts opts = {.timeout_ms = BE_META_TIMEOUT_MS, .attempts = attempts, .peer = -1};
    rc = raw_call(be, be->metadata, UINT32_MAX, type, body, len, &opts, fn, arg);
    free(body);
    return rc;
}

int be_meta_call(struct be_loop *be, uint32_t type, const pb_msgdesc_t *fields, const void *msg,
                 be_reply_fn *fn, void *arg)
{
    return meta_call(be, type, fields, msg, 1, fn, arg);
}

int be_storage_call(struct be_loop *be, uint32_t partition, uint32_t type, const void *body,
                    size_t len, int timeout_ms, int retry_ms, be_reply_fn *fn, void *arg)
{
    struct rpc_opts opts = {
        .timeout_ms = timeout_ms ? timeout_ms : BE_STORAGE_TIMEOUT_MS,
        .attempts = BE_STORAGE_ATTEMPTS,
        .peer = be_peer_of(be, partition),
        .retry_ms = retry_ms,
    };
    return raw_call(be, be->storage, partition, type, body, len, &opts, fn, arg);
}

/* ---------- lookups ---------- */

struct lookup {
    struct be_loop *be;
    be_queue_fn *qfn;
    be_topic_fn *tfn;
    void *arg;
};

static int unplaced(uint64_t num_id, uint32_t partition, const char *kind, const char *name,
                    struct be_fault *f)
{
    if (num_id && partition)
        return 0;
    log_warn("unplaced", "%s=%s partition=%u", kind, name, partition);
    be_fault_row(f, CMQERR_INTERNAL, NULL);
    return 1;
}

/* Asks metadata for the queue or topic `name` of `appid` (request `type`);
 * `l` (malloc'd, freed by `done`) carries the caller.  On a failure to send,
 * the caller's callback gets the fault at once. */
static void name_get(struct be_loop *be, uint32_t type, uint64_t appid, const char *name,
                     struct lookup *l, be_reply_fn *done)
{
    cmq_NameRequest q = cmq_NameRequest_init_zero;
    q.appid = appid;
    snprintf(q.name, sizeof q.name, "%s", name);
    int rc = l ? meta_call(be, type, cmq_NameRequest_fields, &q, 2, done, l) : CMQ_ENOMEM;
    if (rc == CMQ_OK)
        return;
    struct be_fault f;
    be_fault_row(&f, cmq_error_from_status(rc), NULL);
    if (l && l->qfn)
        l->qfn(l->arg, NULL, &f);
    else if (l)
        l->tfn(l->arg, NULL, &f);
    free(l);
}

static void queue_found(struct be_loop *be, const cmq_QueueInfo *qi, be_queue_fn *fn, void *arg)
{
    struct be_fault f;
    if (unplaced(qi->num_id, qi->partition_id, "queue", qi->name, &f)) {
        fn(arg, NULL, &f);
        return;
    }
    if (be->mqueues)
        metrics_queue_seen(be->mqueues, qi->num_id, qi->appid, qi->partition_id, qi->name);
    fn(arg, qi, NULL);
}

static void on_queue_info(void *arg, int status, const struct rpc_msg *msg)
{
    struct lookup *l = arg;
    static _Thread_local cmq_QueueInfo qi;
    struct be_fault f;
    memset(&qi, 0, sizeof qi);
    if (status != CMQ_OK || !msg ||
        rpc_pb_decode(cmq_QueueInfo_fields, &qi, msg->body, msg->body_len) != CMQ_OK) {
        be_meta_fault(status, status == CMQ_OK ? NULL : msg, CMQERR_QUEUE_NOT_EXIST, &f);
        l->qfn(l->arg, NULL, &f);
    } else {
        if (qi.partition_id)
            qcache_put(l->be->queues, &qi, clock_mono_ms());
        queue_found(l->be, &qi, l->qfn, l->arg);
    }
    free(l);
}

void be_queue_get(struct be_loop *be, uint64_t appid, const char *name, int fresh, be_queue_fn *fn,
                  void *arg)
{
    static _Thread_local cmq_QueueInfo qi;
    if (!fresh && qcache_get(be->queues, appid, name, clock_mono_ms(), &qi) == 0) {
        queue_found(be, &qi, fn, arg);
        return;
    }
    struct lookup *l = malloc(sizeof *l);
    if (!l) {
        struct be_fault f;
        be_fault_row(&f, CMQERR_INTERNAL, NULL);
        fn(arg, NULL, &f);
        return;
    }
    *l = (struct lookup){.be = be, .qfn = fn, .arg = arg};
    name_get(be, cmq_MetaMsgType_META_MSG_QUEUE_GET, appid, name, l, on_queue_info);
}

static void on_topic_info(void *arg, int status, const struct rpc_msg *msg)
{
    struct lookup *l = arg;
    static _Thread_local cmq_TopicInfo ti;
    struct be_fault f;
    memset(&ti, 0, sizeof ti);
    if (status != CMQ_OK || !msg ||
        rpc_pb_decode(cmq_TopicInfo_fields, &ti, msg->body, msg->body_len) != CMQ_OK) {
        be_meta_fault(status, status == CMQ_OK ? NULL : msg, CMQERR_TOPIC_NOT_EXIST, &f);
        l->tfn(l->arg, NULL, &f);
    } else if (unplaced(ti.num_id, ti.partition_id, "topic", ti.name, &f)) {
        l->tfn(l->arg, NULL, &f);
    } else {
        l->tfn(l->arg, &ti, NULL);
    }
    free(l);
}

void be_topic_get(struct be_loop *be, uint64_t appid, const char *name, be_topic_fn *fn, void *arg)
{
    struct lookup *l = malloc(sizeof *l);
    if (!l) {
        struct be_fault f;
        be_fault_row(&f, CMQERR_INTERNAL, NULL);
        fn(arg, NULL, &f);
        return;
    }
    *l = (struct lookup){.be = be, .tfn = fn, .arg = arg};
    name_get(be, cmq_MetaMsgType_META_MSG_TOPIC_GET, appid, name, l, on_topic_info);
}

/* ---------- queue operations ---------- */

struct be_op {
    struct be_loop *be;
    enum cmq_action action;
    cmq_QueueInfo qi;
    uint32_t type;
    uint8_t *req;            /* the encoded request (sends: the items, without queue_id) */
    size_t len;
    uint64_t handles[CMQ_BATCH_MAX]; /* deletes */
    uint32_t n_msgs;         /* sends: messages; deletes: handles */
    size_t bytes;            /* sends: body bytes */
    int timeout_ms;
    int healed;
    be_done_fn *fn;
    void *arg;
};

static void op_free(struct be_op *op)
{
    free(op->req);
    free(op);
}

/* Ends `op` with a failure (or a bare success) and frees it. */
static void op_fail(struct be_op *op, int status, enum cmq_err err)
{
    struct be_result r = {.status = status, .err = err};
    op->fn(op->arg, &r);
    op_free(op);
}

static enum cmq_err corrupt_row(uint32_t type)
{
    switch (type) {
    case cmq_StorageMsgType_STORAGE_MSG_SEND: return CMQERR_SEND_FAILED;
    case cmq_StorageMsgType_STORAGE_MSG_DELETE: return CMQERR_DELETE_FAILED;
    case cmq_StorageMsgType_STORAGE_MSG_RECEIVE: return CMQERR_RECEIVE_FAILED;
    default: return CMQERR_INTERNAL;
    }
}

/* The request as storage gets it (sends: the frame; deletes: built). */
static int op_body(const struct be_op *op, uint8_t **out, size_t *len)
{
    if (op->type == cmq_StorageMsgType_STORAGE_MSG_SEND) {
        const uint8_t *parts[1] = {op->req};
        return be_send_frame(op->qi.num_id, parts, &op->len, 1, out, len);
    }
    if (op->type == cmq_StorageMsgType_STORAGE_MSG_DELETE) {
        cmq_DeleteRequest d = cmq_DeleteRequest_init_zero;
        d.queue_id = op->qi.num_id;
        for (size_t i = 0; i < op->n_msgs; i++)
            d.receipt_handles[i] = op->handles[i];
        d.receipt_handles_count = PB_COUNT(d.receipt_handles, op->n_msgs);
        return rpc_pb_encode(cmq_DeleteRequest_fields, &d, out, len);
    }
    *out = NULL;
    *len = op->len;
    return CMQ_OK;
}

static void op_reply(void *arg, int status, const struct rpc_msg *msg);

static void op_send(struct be_op *op)
{
    uint8_t *buf;
    size_t len;
    int rc = op_body(op, &buf, &len);
    if (rc == CMQ_OK)
        rc = be_storage_call(op->be, op->qi.partition_id, op->type, buf ? buf : op->req, len,
                             op->timeout_ms,
                             op->type == cmq_StorageMsgType_STORAGE_MSG_SEND ? BE_STORAGE_RETRY_MS : 0,
                             op_reply, op);
    free(buf);
    if (rc != CMQ_OK) {
        op_fail(op, rc, rc == CMQ_ETOOBIG ? CMQERR_REQUEST_TOO_BIG : be_status_row(op->action, rc));
        return;
    }
    if (op->type == cmq_StorageMsgType_STORAGE_MSG_SEND && op->be->metrics)
        metrics_add(&op->be->metrics->send_storage_requests, 1);
}

static void on_healed(void *arg, int status, const struct rpc_msg *msg)
{
    (void)msg;
    struct be_op *op = arg;
    if (status != CMQ_OK && status != CMQ_EEXIST) {
        op_fail(op, status, be_status_row(op->action, status));
        return;
    }
    log_info("queue_healed", "queue=%s queue_num=%llu partition=%u", op->qi.name,
             (unsigned long long)op->qi.num_id, op->qi.partition_id);
    op_send(op); /* to the node that answered the create: it leads the partition */
}

static void heal(struct be_op *op)
{
    op->healed = 1;
    cmq_StorageCreateQueueRequest c = cmq_StorageCreateQueueRequest_init_zero;
    c.queue_id = op->qi.num_id;
    snprintf(c.name, sizeof c.name, "%s", op->qi.name);
    c.has_attributes = true;
    be_storage_attrs(&op->qi, &c.attributes);
    c.create_time_s = op->qi.create_time;
    c.partition_id = op->qi.partition_id;
    uint8_t *buf;
    size_t len;
    int rc = rpc_pb_encode(cmq_StorageCreateQueueRequest_fields, &c, &buf, &len);
    if (rc == CMQ_OK) {
        rc = be_storage_call(op->be, op->qi.partition_id, cmq_StorageMsgType_STORAGE_MSG_CREATE_QUEUE,
                             buf, len, 0, 0, on_healed, op);
        free(buf);
    }
    if (rc != CMQ_OK)
        op_fail(op, rc, CMQERR_INTERNAL);
}

/* Answers `op` with the reply of a request of its own. */
static void op_answer(struct be_op *op, const struct rpc_msg *msg)
{
    struct be_result r = {.status = CMQ_OK, .err = CMQERR_OK, .msg = msg};
    if (op->type == cmq_StorageMsgType_STORAGE_MSG_SEND) {
        cmq_SendReply s = cmq_SendReply_init_zero;
        if (!msg || rpc_pb_decode(cmq_SendReply_fields, &s, msg->body, msg->body_len) != CMQ_OK ||
            s.msg_ids_count == 0) {
            op_fail(op, CMQ_ECORRUPT, CMQERR_SEND_FAILED);
            return;
        }
        r.ids = s.msg_ids;
        r.n_ids = s.msg_ids_count;
        op->fn(op->arg, &r);
    } else if (op->type == cmq_StorageMsgType_STORAGE_MSG_DELETE) {
        cmq_DeleteReply d = cmq_DeleteReply_init_zero;
        if (!msg || rpc_pb_decode(cmq_DeleteReply_fields, &d, msg->body, msg->body_len) != CMQ_OK ||
            d.statuses_count != op->n_msgs) {
            op_fail(op, CMQ_ECORRUPT, CMQERR_DELETE_FAILED);
            return;
        }
        r.statuses = d.statuses;
        r.n_statuses = d.statuses_count;
        op->fn(op->arg, &r);
    } else if (op->type == cmq_StorageMsgType_STORAGE_MSG_RECEIVE) {
        struct be_received rs[CMQ_BATCH_MAX];
        size_t n = 0;
        if (!msg || be_decode_received(msg->body, msg->body_len, rs, CMQ_BATCH_MAX, &n) != CMQ_OK ||
            n == 0) {
            op_fail(op, n == 0 ? CMQ_EEMPTY : CMQ_ECORRUPT,
                    n == 0 ? CMQERR_NO_MESSAGE : CMQERR_RECEIVE_FAILED);
            return;
        }
        r.received = rs;
        r.n_received = n;
        op->fn(op->arg, &r);
    } else {
        op->fn(op->arg, &r);
    }
    op_free(op);
}

static void op_reply(void *arg, int status, const struct rpc_msg *msg)
{
    struct be_op *op = arg;
    /* "Not here" (ENOTLEADER after every replica was tried) or "no such
     * queue" from one node: the create, addressed to the queue's partition,
     * decides, once per request. */
    if ((status == CMQ_ENOTFOUND || status == CMQ_ENOTLEADER) && !op->healed) {
        heal(op);
        return;
    }
    if (status != CMQ_OK) {
        struct be_result r = {.status = status, .err = be_status_row(op->action, status), .msg = msg};
        op->fn(op->arg, &r);
        op_free(op);
        return;
    }
    op_answer(op, msg);
}

static struct be_op *op_new(struct be_loop *be, enum cmq_action action, const cmq_QueueInfo *qi,
                            uint32_t type, be_done_fn *fn, void *arg)
{
    struct be_op *op = calloc(1, sizeof *op);
    if (!op) {
        struct be_result r = {.status = CMQ_ENOMEM, .err = CMQERR_INTERNAL};
        fn(arg, &r);
        return NULL;
    }
    op->be = be;
    op->action = action;
    op->qi = *qi;
    op->type = type;
    op->fn = fn;
    op->arg = arg;
    return op;
}

void be_queue_call(struct be_loop *be, enum cmq_action action, const cmq_QueueInfo *qi,
                   uint32_t type, const pb_msgdesc_t *fields, const void *msg, int timeout_ms,
                   int no_heal, be_done_fn *fn, void *arg)
{
    struct be_op *op = op_new(be, action, qi, type, fn, arg);
    if (!op)
        return;
    op->timeout_ms = timeout_ms;
    op->healed = no_heal || type == cmq_StorageMsgType_STORAGE_MSG_DROP_QUEUE;
    int rc = rpc_pb_encode(fields, msg, &op->req, &op->len);
    if (rc != CMQ_OK) {
        op_fail(op, rc, rc == CMQ_ETOOBIG ? CMQERR_REQUEST_TOO_BIG : CMQERR_INTERNAL);
        return;
    }
    op_send(op);
}

/* ---------- coalescing ---------- */

static void group_reply(void *arg, int status, const struct rpc_msg *msg)
{
    struct be_group *g = arg;
    int sends = g->type == cmq_StorageMsgType_STORAGE_MSG_SEND;
    cmq_SendReply rep = cmq_SendReply_init_zero;
    cmq_DeleteReply drep = cmq_DeleteReply_init_zero;
    int st = status;
    if (st == CMQ_OK &&
        (!msg ||
         (sends ? rpc_pb_decode(cmq_SendReply_fields, &rep, msg->body, msg->body_len) != CMQ_OK ||
                      rep.msg_ids_count != g->msgs
                : rpc_pb_decode(cmq_DeleteReply_fields, &drep, msg->body, msg->body_len) != CMQ_OK ||
                      drep.statuses_count != g->msgs)))
        st = CMQ_ECORRUPT;
    int alone = st == CMQ_EINVAL || st == CMQ_ETOOBIG || st == CMQ_ELIMIT || st == CMQ_ENOTFOUND ||
                st == CMQ_ENOTLEADER;
    for (int i = 0; i < g->n; i++) {
        struct be_op *op = g->members[i];
        if (st == CMQ_OK) {
            struct be_result r = {.status = CMQ_OK, .err = CMQERR_OK};
            if (sends) {
                r.ids = rep.msg_ids + g->first[i];
                r.n_ids = g->count[i];
            } else {
                r.statuses = drep.statuses + g->first[i];
                r.n_statuses = g->count[i];
            }
            op->fn(op->arg, &r);
            op_free(op);
        } else if (alone) {
            op_send(op); /* nothing was stored: each on its own, as if never grouped */
        } else {
            op_fail(op, st, st == CMQ_ECORRUPT ? corrupt_row(g->type) : be_status_row(op->action, st));
        }
    }
    free(g);
}

static void group_send(struct be_loop *be, struct be_group *g)
{
    if (g->n == 1) { /* nothing to merge: the ordinary path */
        op_send(g->members[0]);
        free(g);
        return;
    }
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc;
    if (g->type == cmq_StorageMsgType_STORAGE_MSG_DELETE) {
        cmq_DeleteRequest m = cmq_DeleteRequest_init_zero;
        m.queue_id = g->queue_num;
        for (int i = 0; i < g->n; i++) {
            const struct be_op *op = g->members[i];
            for (size_t k = 0; k < op->n_msgs; k++)
                m.receipt_handles[m.receipt_handles_count++] = op->handles[k];
        }
        rc = rpc_pb_encode(cmq_DeleteRequest_fields, &m, &buf, &len);
    } else {
        const uint8_t *parts[CMQ_BATCH_MAX];
        size_t lens[CMQ_BATCH_MAX];
        for (int i = 0; i < g->n; i++) {
            const struct be_op *op = g->members[i];
            parts[i] = op->req;
            lens[i] = op->len;
        }
        rc = be_send_frame(g->queue_num, parts, lens, (size_t)g->n, &buf, &len);
    }
    if (rc == CMQ_OK)
        rc = be_storage_call(be, g->partition, g->type, buf, len, 0,
                             g->type == cmq_StorageMsgType_STORAGE_MSG_SEND ? BE_STORAGE_RETRY_MS : 0,
                             group_reply, g);
    free(buf);
    if (rc == CMQ_OK) {
        if (g->type == cmq_StorageMsgType_STORAGE_MSG_SEND && be->metrics)
            metrics_add(&be->metrics->send_storage_requests, 1);
        return;
    }
    for (int i = 0; i < g->n; i++) {
        struct be_op *op = g->members[i];
        op_fail(op, rc, be_status_row(op->action, rc));
    }
    free(g);
}

/* Counts one storage request carrying `members` sends (deletes). */
static void count_append(struct be_loop *be, uint32_t type, int members)
{
    if (!be->metrics)
        return;
    if (type == cmq_StorageMsgType_STORAGE_MSG_SEND) {
        metrics_add(&be->metrics->sends_coalesced, (uint64_t)members);
        metrics_add(&be->metrics->send_appends, 1);
    } else {
        metrics_add(&be->metrics->deletes_coalesced, (uint64_t)members);
        metrics_add(&be->metrics->delete_appends, 1);
    }
}

static void group_go(struct be_loop *be, struct be_group *g)
{
    if (g->n > 1)
        count_append(be, g->type, g->n);
    group_send(be, g);
}

static void submit(struct be_op *op)
{
    struct be_loop *be = op->be;
    if (!be->coalesce) {
        op_send(op);
        return;
    }
    struct be_group *closed;
    struct be_group *g = be_groups_find(&be->groups, op->type, op->qi.num_id, op->n_msgs,
                                        op->bytes, &closed);
    if (closed)
        group_go(be, closed);
    if (!g) {
        g = be_groups_open(&be->groups, op->type, op->qi.num_id, op->qi.partition_id);
        if (!g && be->groups.n == BE_GROUPS_MAX) {
            be_flush(be);
            g = be_groups_open(&be->groups, op->type, op->qi.num_id, op->qi.partition_id);
        }
        if (!g) {
            op_send(op);
            return;
        }
    }
    if (be_group_add(&be->groups, g, op, op->n_msgs, op->bytes))
        group_go(be, g);
}

void be_flush(struct be_loop *be)
{
    struct be_group *g;
    while ((g = be_groups_pop(&be->groups)))
        group_go(be, g);
}

void be_send(struct be_loop *be, enum cmq_action action, const cmq_QueueInfo *qi,
             const struct be_send_item *items, size_t n, const char *client_addr, be_done_fn *fn,
             void *arg)
{
    struct be_op *op = op_new(be, action, qi, cmq_StorageMsgType_STORAGE_MSG_SEND, fn, arg);
    if (!op)
        return;
    int rc = be_encode_send_items(items, n, client_addr, &op->req, &op->len);
    if (rc != CMQ_OK) {
        op_fail(op, rc, rc == CMQ_ETOOBIG ? CMQERR_REQUEST_TOO_BIG : CMQERR_INTERNAL);
        return;
    }
    op->n_msgs = (uint32_t)n;
    for (size_t i = 0; i < n; i++)
        op->bytes += items[i].len;
    if (be->metrics)
        metrics_add(&be->metrics->send_requests, 1);
    submit(op);
}

void be_delete(struct be_loop *be, enum cmq_action action, const cmq_QueueInfo *qi,
               const uint64_t *handles, size_t n, be_done_fn *fn, void *arg)
{
    struct be_op *op = op_new(be, action, qi, cmq_StorageMsgType_STORAGE_MSG_DELETE, fn, arg);
    if (!op)
        return;
    if (n == 0 || n > CMQ_BATCH_MAX) {
        op_fail(op, CMQ_EINVAL, CMQERR_INVALID_REQUEST);
        return;
    }
    memcpy(op->handles, handles, n * sizeof *handles);
    op->n_msgs = (uint32_t)n;
    submit(op);
}
