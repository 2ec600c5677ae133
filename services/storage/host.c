/* host.c: the partition host: apply dispatch, snapshot image framing, the
 * tick and request routing over the feature modules; see host.h. */
#include "host.h"
#include "cmdcodec.h"
#include "dlq.h"
#include "forward.h"
#include "queues.h"
#include "timers.h"
#include "topics.h"
#include "trace.h"
#include "tsm.h"
#include "txnq.h"

#include "clock.h"
#include "log.h"
#include "raft.h"
#include "scheduler.pb.h"
#include "status.h"
#include "storage.pb.h"

#include <stdlib.h>
#include <string.h>

static const struct host_ops ops = {
    .propose_tick = queues_propose_tick,
    .wake_topics = topics_wake,
    .trace_publish = topics_trace_publish,
};

int host_open(struct node *n)
{
    n->ops = &ops;
    int rc = timers_open(n);
    if (rc == CMQ_OK)
        rc = forward_open(n, &n->fwd);
    return rc;
}

void host_quiesce(struct node *n)
{
    forward_close(n->fwd); /* ends forwarded sends (ESHUTDOWN) while partitions exist */
    n->fwd = NULL;
    topics_close(n);       /* ends pending pushes, likewise */
    txnq_close(n);         /* transaction check-backs (txnq.c) */
}

void host_close(struct node *n)
{
    timers_close(n);
}

int host_attach(struct hosted *h)
{
    int rc = queues_attach(h);
    if (rc == CMQ_OK)
        rc = topics_attach(h);
    return rc;
}

void host_detach(struct hosted *h)
{
    queues_detach(h); /* answers parked receives */
    dlq_detach(h);
    topics_detach(h);
}

/* ---------- apply ---------- */

int host_apply(void *arg, struct partition *p, const struct raft_entry *e, void **result)
{
    struct node *n = arg;
    struct hosted *h = hosted_by_id(n, partition_id(p));
    struct qsm_result *res = &h->res;
    memset(res, 0, sizeof *res);
    *result = res;
    if (h->sm_status)
        return h->sm_status; /* failed: apply nothing more until repaired */
    res->skip_bodies = !partition_is_leader(p); /* only the leader answers receives */
    struct cmdcodec_view v; /* the entry is peeked once, here, and routed by its kind */
    bool peeked = e->len && cmdcodec_peek(e->data, e->len, &v);
    if (peeked && cmdcodec_is_topic(v.kind)) { /* the queue machine sees an empty entry
                                                   (keeps its index) */
        qsm_apply(h->qsm, e->index, e->term, NULL, 0, res);
        return topics_apply(h, e, &v);
    }
    int st = queues_apply(h, e, peeked ? &v : NULL);
    if (!partition_is_leader(p))
        return st;
    if (res->n_dlq)
        dlq_pump(h); /* deliver the new moves now rather than at the next raft tick */
    if (res->n_txn)
        txnq_send(h, res); /* transaction check-backs: the gateways ask the producer */
    if (h->parked) {
        if (res->type == cmq_StorageMsgType_STORAGE_MSG_SEND && st == CMQ_OK)
            queues_wake(h, res->queue_id);
        else if (res->type == 0 || res->type == cmq_StorageMsgType_STORAGE_MSG_REWIND ||
                 res->type == cmq_StorageMsgType_STORAGE_MSG_CHANGE_VISIBILITY)
            queues_wake(h, 0);
    }
    return st;
}

void host_release(void *arg, void *result)
{
    (void)arg;
    qsm_result_release(result);
}

/* ---------- snapshot image: both state machines of a partition ----------
 *
 * "PIMG", the queue image's length (u32 little-endian), the queue image,
 * then the topic image; *first_needed is the smaller of both machines' first
 * needed index.  An image of the queue machine alone (older format, "QSMS")
 * restores it and empties the topics.  A bad image changes neither. */

struct image_buf {
    uint8_t *data;
    size_t len, cap;
};

static int image_sink(void *arg, const void *buf, size_t len)
{
    struct image_buf *b = arg;
    if (b->len + len > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + len)
            cap *= 2;
        uint8_t *d = realloc(b->data, cap);
        if (!d)
            return CMQ_ENOMEM;
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, buf, len);
    b->len += len;
    return 0;
}

int host_image(void *arg, struct partition *p, uint8_t **image, size_t *len,
               uint64_t *first_needed)
{
    struct hosted *h = hosted_by_id(arg, partition_id(p));
    if (!h || !h->qsm || !h->tsm)
        return CMQ_EINTERNAL;
    struct image_buf b = {0};
    uint8_t head[8] = {'P', 'I', 'M', 'G', 0, 0, 0, 0};
    int rc = image_sink(&b, head, sizeof head);
    if (rc == 0)
        rc = qsm_snapshot_write(h->qsm, image_sink, &b);
    size_t qlen = b.len - sizeof head;
    if (rc == 0 && qlen > UINT32_MAX)
        rc = CMQ_ETOOBIG;
    if (rc == 0)
        rc = tsm_snapshot_write(h->tsm, image_sink, &b);
    if (rc != 0) {
        free(b.data);
        return rc;
    }
    for (int i = 0; i < 4; i++)
        b.data[4 + i] = (uint8_t)(qlen >> (8 * i));
    *image = b.data;
    *len = b.len;
    uint64_t q = qsm_first_needed_index(h->qsm), t = tsm_first_needed_index(h->tsm);
    *first_needed = q < t ? q : t;
    return CMQ_OK;
}

int host_restore(void *arg, struct partition *p, const uint8_t *image, size_t len)
{
    struct hosted *h = hosted_by_id(arg, partition_id(p));
    if (!h || !h->qsm || !h->tsm)
        return CMQ_EINTERNAL;
    const uint8_t *qimg = image, *timg = NULL;
    size_t qlen = len, tlen = 0;
    if (len >= 8 && memcmp(image, "PIMG", 4) == 0) {
        qlen = (size_t)image[4] | (size_t)image[5] << 8 | (size_t)image[6] << 16 |
               (size_t)image[7] << 24;
        if (qlen > len - 8)
            return CMQ_ECORRUPT;
        qimg = image + 8;
        timg = qimg + qlen;
        tlen = len - 8 - qlen;
    }
    /* The topic image is checked into a fresh machine first, so a bad one
     * leaves both machines as they were. */
    struct tsm *fresh;
    int rc = tsm_create(h->id, &fresh);
    if (rc != CMQ_OK)
        return rc;
    if (timg && (rc = tsm_snapshot_read(fresh, timg, tlen)) != CMQ_OK) {
        tsm_destroy(fresh);
        return rc;
    }
    if ((rc = qsm_snapshot_read(h->qsm, qimg, qlen)) != CMQ_OK) {
        tsm_destroy(fresh);
        return rc;
    }
    if (h->trace) {
        struct qsm_tracer t = trace_tracer(h->trace);
        tsm_set_tracer(fresh, &t);
    }
    tsm_destroy(h->tsm);
    h->tsm = fresh;
    return CMQ_OK;
}

/* ---------- tick ---------- */

void host_tick(struct node *n)
{
    forward_tick(n->fwd);
    uint64_t now = clock_wall_ms();
    uint64_t fallback = (uint64_t)n->cfg->sched_fallback_ms;
    for (int i = 0; i < n->n_parts; i++) {
        struct hosted *h = n->parts[i];
        queues_tick(h);
        timers_sync(h);
        dlq_pump(h);
        if (!partition_is_leader(h->p)) {
            h->tick_inflight = 0;
            continue;
        }
        /* The scheduler's FIRE proposes the Tick (timers.c); this poll is the
         * fallback: at once while the scheduler does not hold the timer,
         * `scheduler.fallback_ms` late when it does (a lost fire). */
        uint64_t due = qsm_next_due_ms(h->qsm);
        if (due > now || (timers_covered(h, due) && now - due < fallback))
            continue;
        queues_propose_tick(h);
    }
    topics_tick(n);
}

/* ---------- request routing ---------- */

typedef int host_handler_fn(struct node *n, struct rpc_call *call);

static const struct route {
    uint32_t type;
    host_handler_fn *handle;
} routes[] = {
    {cmq_StorageMsgType_STORAGE_MSG_SEND, queues_handle},
    {cmq_StorageMsgType_STORAGE_MSG_RECEIVE, queues_handle},
    {cmq_StorageMsgType_STORAGE_MSG_DELETE, queues_handle},
    {cmq_StorageMsgType_STORAGE_MSG_CHANGE_VISIBILITY, queues_handle},
    {cmq_StorageMsgType_STORAGE_MSG_REWIND, queues_handle},
    {cmq_StorageMsgType_STORAGE_MSG_QUEUE_STATS, queues_handle},
    {cmq_StorageMsgType_STORAGE_MSG_CREATE_QUEUE, queues_handle},
    {cmq_StorageMsgType_STORAGE_MSG_DROP_QUEUE, queues_handle},
    {cmq_StorageMsgType_STORAGE_MSG_SET_QUEUE_ATTRIBUTES, queues_handle},
    {cmq_StorageMsgType_STORAGE_MSG_TRACE, queues_handle},
    {cmq_StorageMsgType_STORAGE_MSG_TXN_CONFIRM, queues_handle},
    {cmq_StorageMsgType_STORAGE_MSG_PUBLISH, topics_handle},
    {cmq_StorageMsgType_STORAGE_MSG_TOPIC_SYNC, topics_handle},
    {cmq_StorageMsgType_STORAGE_MSG_TOPIC_DROP, topics_handle},
    {cmq_StorageMsgType_STORAGE_MSG_TOPIC_STATS, topics_handle},
    {cmq_SchedMsgType_SCHED_MSG_FIRE, timers_handle},
};

int host_route(struct node *n, struct rpc_call *call)
{
    uint32_t type = rpc_call_request(call)->type;
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
        if (routes[i].type == type)
            return routes[i].handle(n, call);
    return 0;
}

void host_stop(void *arg)
{
    queues_stop(arg);
}

int host_busy(void *arg)
{
    return queues_busy(arg);
}
