/* queues.c: queue requests over the replicated queue state machine; see
 * queues.h.
 *
 * A StorageCommand wraps the gateway's request bytes unchanged (cmdcodec.h:
 * field 1 the leader's clock, the oneof member the request), so message
 * bodies are copied once into the Raft entry and never decoded on the way.
 */
#include "queues.h"
#include "cmdcodec.h"
#include "forward.h"
#include "trace.h"
#include "txnq.h"

#include "clock.h"
#include "log.h"
#include "raft.h"
#include "status.h"
#include "storage.pb.h"
#include "pb_size.h"

#include <pb_decode.h>
#include <pb_encode.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WAIT_S_MAX 30 /* spec §5.4: pollingWaitSeconds is clamped to 30 */

/* StorageCommand members (the generated tags, cmdcodec.h). */
enum {
    CMD_CREATE_QUEUE = cmq_StorageCommand_create_queue_tag,
    CMD_DROP_QUEUE = cmq_StorageCommand_drop_queue_tag,
    CMD_SET_QUEUE_ATTRIBUTES = cmq_StorageCommand_set_queue_attributes_tag,
    CMD_SEND = cmq_StorageCommand_send_tag,
    CMD_RECEIVE = cmq_StorageCommand_receive_tag,
    CMD_DELETE = cmq_StorageCommand_delete_msgs_tag,
    CMD_CHANGE_VISIBILITY = cmq_StorageCommand_change_visibility_tag,
    CMD_REWIND = cmq_StorageCommand_rewind_tag,
    CMD_TICK = cmq_StorageCommand_tick_tag,
    CMD_TXN_CONFIRM = cmq_StorageCommand_txn_confirm_tag,
};

/* A request waiting for its entry. */
struct op {
    struct node *n;
    struct hosted *h;
    struct rpc_call *call; /* NULL for our own Ticks */
    uint32_t type;
    uint64_t deadline_ms;  /* receives: when the long poll ends (monotonic) */
    uint8_t *req;          /* receives: the request, to propose again after an empty result */
    size_t req_len;
    uint64_t queue_id;
    /* keyed sends: the keys in flight (on hosted->keyed), and when the window
     * held some items already, their ids (pre_ids[i] != 0: not proposed
     * again; the reply merges them with the new ids in request order) */
    uint32_t n_keys, n_items;
    uint64_t keys[QSM_BATCH_MAX];
    uint64_t pre_ids[QSM_BATCH_MAX];
    struct op *keyed_next;
};

/* A parked long poll. */
struct rx {
    struct op *op;
    struct rx *next;
};

/* ---------- helpers ---------- */

static int read_entry(void *arg, uint64_t index, uint8_t **buf, size_t *len)
{
    struct hosted *h = arg;
    return partition_read_entry(h->p, index, buf, len, NULL);
}

int queues_attach(struct hosted *h)
{
    struct qsm_reader reader = {read_entry, h};
    int rc = qsm_create(h->id, &reader, &h->qsm);
    if (rc != CMQ_OK)
        return rc;
    char dir[300];
    snprintf(dir, sizeof dir, "%s/p-%u", h->n->cfg->data_dir, h->id);
    if (trace_open(dir, &h->trace) == CMQ_OK) {
        struct qsm_tracer t = trace_tracer(h->trace);
        qsm_set_tracer(h->qsm, &t);
    } else {
        h->trace = NULL; /* the queues work without it; DescribeMessageTrace says unavailable */
        log_warn("trace_unavailable", "partition=%u dir=%s", h->id, dir);
    }
    return CMQ_OK;
}

static struct hosted *find_queue(struct node *n, uint64_t queue_id)
{
    struct qsm_stats st;
    for (int i = 0; i < n->n_parts; i++)
        if (qsm_stats(n->parts[i]->qsm, queue_id, &st) == CMQ_OK)
            return n->parts[i];
    return NULL;
}

static void op_free(struct op *o)
{
    if (o->n_keys)
        for (struct op **pp = (struct op **)&o->h->keyed; *pp; pp = &(*pp)->keyed_next)
            if (*pp == o) {
                *pp = o->keyed_next;
                break;
            }
    if (o->call)
        o->n->ops_inflight--;
    free(o->req);
    free(o);
}

/* ---------- replies ---------- */

struct body_ref {
    const uint8_t *data;
    size_t len;
};

static bool encode_body(pb_ostream_t *os, const pb_field_t *field, void *const *arg)
{
    const struct body_ref *b = *arg;
    return pb_encode_tag_for_field(os, field) && pb_encode_string(os, b->data, b->len);
}

/* The largest receive reply, 16 bodies of the largest size, fits one rpc
 * frame (rpc.h): besides its body a message has six varints, a length prefix
 * and the dead-letter origin (a queue name of at most 128 bytes), well under
 * 1 KiB.  A reply that did not fit would be dropped after the messages were
 * leased, hiding them for their visibility timeout. */
_Static_assert((uint64_t)QSM_BATCH_MAX * (QSM_BODY_BYTES_MAX + 1024u) + 4096u <= RPC_MAX_MSG_BYTES,
               "a receive of QSM_BATCH_MAX largest bodies must fit RPC_MAX_MSG_BYTES");

static void reply_received(struct rpc_call *call, const struct qsm_result *res)
{
    cmq_ReceiveReply r = cmq_ReceiveReply_init_zero;
    struct body_ref bodies[QSM_BATCH_MAX];
    for (uint32_t i = 0; i < res->n_delivered && i < QSM_BATCH_MAX; i++) {
        const struct qsm_delivery *d = &res->delivered[i];
        cmq_ReceivedMessage *m = &r.messages[r.messages_count++];
        m->msg_id = d->msg_id;
        m->receipt_handle = d->receipt_handle;
        m->enqueue_time_ms = d->enqueue_ms;
        m->first_dequeue_time_ms = d->first_dequeue_ms;
        m->next_visible_time_ms = d->next_visible_ms;
        m->dequeue_count = d->dequeue_count;
        bodies[i] = (struct body_ref){d->body, d->body_len};
        m->body.funcs.encode = encode_body;
        m->body.arg = &bodies[i];
        if (d->has_origin) {
            m->has_origin = true;
            m->origin.queue_id = d->origin.queue_id;
            snprintf(m->origin.queue_name, sizeof m->origin.queue_name, "%s", d->origin.queue_name);
            m->origin.msg_id = d->origin.msg_id;
            m->origin.enqueue_time_ms = d->origin.enqueue_ms;
            m->origin.first_dequeue_time_ms = d->origin.first_dequeue_ms;
            m->origin.dequeue_count = d->origin.dequeue_count;
            m->origin.reason = d->origin.reason;
        }
    }
    rpc_reply_pb(call, cmq_ReceiveReply_fields, &r);
}

static void attrs_out(const struct qsm_attrs *a, cmq_StorageQueueAttributes *o)
{
    o->has_max_msg_heap_num = true;
    o->max_msg_heap_num = a->max_msg_heap_num;
    o->has_polling_wait_seconds = true;
    o->polling_wait_seconds = a->polling_wait_s;
    o->has_visibility_timeout_s = true;
    o->visibility_timeout_s = a->visibility_timeout_s;
    o->has_max_msg_size = true;
    o->max_msg_size = a->max_msg_size;
    o->has_msg_retention_s = true;
    o->msg_retention_s = a->msg_retention_s;
    o->has_rewind_s = true;
    o->rewind_s = a->rewind_s;
    o->has_ordered = true;
    o->ordered = a->ordered;
    o->has_max_inflight_num = true;
    o->max_inflight_num = a->max_inflight_num;
    if (a->dlq_policy != QSM_DLQ_NONE) {
        o->has_dead_letter_policy = true;
        o->dead_letter_policy.dead_letter_queue_id = a->dlq_queue_id;
        o->dead_letter_policy.policy = a->dlq_policy == QSM_DLQ_TTL ? 1 : 0;
        o->dead_letter_policy.max_receive_count = a->dlq_max_receive_count;
        o->dead_letter_policy.max_time_to_live_s = a->dlq_max_ttl_s;
    }
}

static void park(struct op *o);
static int propose_op(struct op *o, uint32_t field, const uint8_t *payload, size_t len);

static void op_done(void *arg, int status, uint64_t index, void *result)
{
    (void)index;
    struct op *o = arg;
    const struct qsm_result *res = result;
    if (!o->call) { /* our own Tick */
        o->h->tick_inflight = 0;
        op_free(o);
        return;
    }
    if (o->type == cmq_StorageMsgType_STORAGE_MSG_DELETE && res && res->n_statuses) {
        status = CMQ_OK; /* per-handle outcomes travel in the reply */
    }
    if (status != CMQ_OK || !res) {
        if (o->type == cmq_StorageMsgType_STORAGE_MSG_RECEIVE && status == CMQ_EEMPTY &&
            clock_mono_ms() < o->deadline_ms) {
            park(o); /* raced with another consumer: wait for the next message */
            return;
        }
        if (status == CMQ_ENOTLEADER || o->h->sm_status)
            hosted_reply_not_leader(o->h, o->call); /* a failed replica: ask another */
        else
            rpc_reply_status(o->call, status, NULL);
        op_free(o);
        return;
    }
    switch (o->type) {
    case cmq_StorageMsgType_STORAGE_MSG_SEND: {
        cmq_SendReply r = cmq_SendReply_init_zero;
        if (o->n_items) { /* partly held by the window: merge in request order */
            r.msg_ids_count = (pb_size_t)qsm_send_merge(o->pre_ids, o->n_items, res->msg_ids,
                                                        res->n_msg_ids, r.msg_ids);
        } else {
            for (uint32_t i = 0; i < res->n_msg_ids && i < QSM_BATCH_MAX; i++)
                r.msg_ids[r.msg_ids_count++] = res->msg_ids[i];
        }
        rpc_reply_pb(o->call, cmq_SendReply_fields, &r);
        break;
    }
    case cmq_StorageMsgType_STORAGE_MSG_RECEIVE:
        reply_received(o->call, res);
        break;
    case cmq_StorageMsgType_STORAGE_MSG_DELETE: {
        cmq_DeleteReply r = cmq_DeleteReply_init_zero;
        for (uint32_t i = 0; i < res->n_statuses && i < QSM_BATCH_MAX; i++)
            r.statuses[r.statuses_count++] = res->statuses[i];
        rpc_reply_pb(o->call, cmq_DeleteReply_fields, &r);
        break;
    }
    case cmq_StorageMsgType_STORAGE_MSG_CHANGE_VISIBILITY: {
        cmq_ChangeVisibilityReply r = cmq_ChangeVisibilityReply_init_zero;
        r.next_visible_time_ms = res->next_visible_ms;
        rpc_reply_pb(o->call, cmq_ChangeVisibilityReply_fields, &r);
        break;
    }
    case cmq_StorageMsgType_STORAGE_MSG_CREATE_QUEUE:
    case cmq_StorageMsgType_STORAGE_MSG_SET_QUEUE_ATTRIBUTES: {
        cmq_StorageQueueReply r = cmq_StorageQueueReply_init_zero;
        r.queue_id = o->queue_id;
        r.has_attributes = true;
        attrs_out(&res->attrs, &r.attributes);
        rpc_reply_pb(o->call, cmq_StorageQueueReply_fields, &r);
        break;
    }
    default:
        rpc_reply_status(o->call, CMQ_OK, NULL);
    }
    op_free(o);
}

static int propose_op(struct op *o, uint32_t field, const uint8_t *payload, size_t len)
{
    size_t cmd_len;
    uint8_t *cmd;
    if (cmdcodec_build(clock_wall_ms(), field, payload, len, &cmd, &cmd_len) != CMQ_OK)
        return CMQ_ENOMEM;
    int rc = partition_propose(o->h->p, cmd, cmd_len, op_done, o);
    free(cmd);
    return rc;
}

/* ---------- long polls ---------- */

static void park(struct op *o)
{
    struct rx *r = malloc(sizeof *r);
    if (!r) {
        rpc_reply_status(o->call, CMQ_ENOMEM, NULL);
        op_free(o);
        return;
    }
    r->op = o;
    r->next = NULL;
    struct rx **tail = &o->h->parked;
    while (*tail)
        tail = &(*tail)->next;
    *tail = r;
    o->n->parked++;
}

/* Proposes the receives parked on `h` (for `queue_id`, or every queue when
 * 0) that would now find a message.  Safe inside apply: partition_propose
 * defers proposals made while the ready is being processed. */
void queues_wake(struct hosted *h, uint64_t queue_id)
{
    uint64_t now = clock_wall_ms();
    for (struct rx **pp = &h->parked; *pp;) {
        struct rx *r = *pp;
        struct op *o = r->op;
        if ((queue_id && o->queue_id != queue_id) || !qsm_has_visible(h->qsm, o->queue_id, now)) {
            pp = &r->next;
            continue;
        }
        *pp = r->next;
        free(r);
        h->n->parked--;
        int rc = propose_op(o, CMD_RECEIVE, o->req, o->req_len);
        if (rc != CMQ_OK) {
            if (rc == CMQ_ENOTLEADER)
                hosted_reply_not_leader(h, o->call);
            else
                rpc_reply_status(o->call, rc, NULL);
            op_free(o);
        }
    }
}

/* Ends parked polls: those past their deadline (or all, when `all`) answer
 * empty; on a partition this node no longer leads they answer not-leader. */
static void expire_parked(struct hosted *h, int all)
{
    uint64_t now = clock_mono_ms();
    int leader = partition_is_leader(h->p);
    for (struct rx **pp = &h->parked; *pp;) {
        struct rx *r = *pp;
        struct op *o = r->op;
        if (!all && leader && now < o->deadline_ms) {
            pp = &r->next;
            continue;
        }
        *pp = r->next;
        free(r);
        h->n->parked--;
        if (!leader && !all)
            hosted_reply_not_leader(h, o->call);
        else
            rpc_reply_status(o->call, CMQ_EEMPTY, NULL);
        op_free(o);
    }
}

void queues_detach(struct hosted *h)
{
    for (struct rx *r = h->parked; r;) {
        struct rx *next = r->next;
        rpc_reply_status(r->op->call, CMQ_ESHUTDOWN, NULL);
        op_free(r->op);
        free(r);
        h->n->parked--;
        r = next;
    }
    h->parked = NULL;
    trace_close(h->trace);
    h->trace = NULL;
    qsm_destroy(h->qsm);
    h->qsm = NULL;
}

/* ---------- apply ---------- */

int queues_apply(struct hosted *h, const struct raft_entry *e, const struct cmdcodec_view *v)
{
    int st = qsm_apply_peeked(h->qsm, e->index, e->term, e->data, e->len, v, &h->res);
    if (st == CMQ_ECORRUPT || st == CMQ_EIO || st == CMQ_ENOSPC || st == CMQ_EINTERNAL)
        hosted_failed(h, st); /* latched (qsm.h invariant 3): step aside, repair */
    if (st != CMQ_OK && st != CMQ_EEMPTY && st != CMQ_ENOTFOUND && st != CMQ_ESTALE &&
        st != CMQ_EINVAL && st != CMQ_EEXIST && st != CMQ_EDENIED && st != CMQ_ELIMIT &&
        st != CMQ_ETOOBIG) {
        static struct log_limit lim;
        uint64_t n_sup;
        if (log_limit_allow(&lim, clock_mono_ms(), 10000, &n_sup))
            log_error("qsm_apply_failed", "partition=%u index=%llu status=%s suppressed=%llu",
                      h->id, (unsigned long long)e->index, status_name(st),
                      (unsigned long long)n_sup);
    }
    return st;
}

/* ---------- requests ---------- */

static int command_field(uint32_t type)
{
    switch (type) {
    case cmq_StorageMsgType_STORAGE_MSG_SEND: return CMD_SEND;
    case cmq_StorageMsgType_STORAGE_MSG_RECEIVE: return CMD_RECEIVE;
    case cmq_StorageMsgType_STORAGE_MSG_DELETE: return CMD_DELETE;
    case cmq_StorageMsgType_STORAGE_MSG_CHANGE_VISIBILITY: return CMD_CHANGE_VISIBILITY;
    case cmq_StorageMsgType_STORAGE_MSG_REWIND: return CMD_REWIND;
    case cmq_StorageMsgType_STORAGE_MSG_TXN_CONFIRM: return CMD_TXN_CONFIRM;
    case cmq_StorageMsgType_STORAGE_MSG_CREATE_QUEUE: return CMD_CREATE_QUEUE;
    case cmq_StorageMsgType_STORAGE_MSG_DROP_QUEUE: return CMD_DROP_QUEUE;
    case cmq_StorageMsgType_STORAGE_MSG_SET_QUEUE_ATTRIBUTES: return CMD_SET_QUEUE_ATTRIBUTES;
    case cmq_StorageMsgType_STORAGE_MSG_QUEUE_STATS: return -1; /* read-only */
    default: return 0;
    }
}

static void on_stats(struct node *n, struct hosted *h, struct rpc_call *call, uint64_t qid)
{
    (void)n;
    struct qsm_stats st;
    int rc = qsm_stats(h->qsm, qid, &st);
    if (rc != CMQ_OK) {
        rpc_reply_status(call, rc, NULL);
        return;
    }
    cmq_QueueStatsReply r = cmq_QueueStatsReply_init_zero;
    r.active_msg_num = st.active;
    r.inactive_msg_num = st.inactive;
    r.delay_msg_num = st.delayed;
    r.rewind_msg_num = st.retained;
    r.min_msg_time_s = st.min_msg_time_ms / 1000;
    r.has_attributes = true;
    attrs_out(&st.attrs, &r.attributes);
    rpc_reply_pb(call, cmq_QueueStatsReply_fields, &r);
}

/* The message trace: any replica hosting the message's partition answers. */
static void on_trace(struct node *n, struct rpc_call *call)
{
    cmq_TraceRequest tr = cmq_TraceRequest_init_zero;
    if (rpc_call_decode(call, cmq_TraceRequest_fields, &tr) != CMQ_OK || !tr.msg_id) {
        rpc_reply_status(call, CMQ_EINVAL, "bad trace request");
        return;
    }
    struct hosted *h = hosted_by_id(n, qsm_id_partition(tr.msg_id));
    if (!h || !hosted_serves(h)) {
        hosted_reply_not_here(n, call, "partition not hosted or being repaired here");
        return;
    }
    if (!h->trace) {
        rpc_reply_status(call, CMQ_EUNAVAIL, "trace index unavailable on this node");
        return;
    }
    cmq_TraceReply *r = calloc(1, sizeof *r);
    if (!r) {
        rpc_reply_status(call, CMQ_ENOMEM, NULL);
        return;
    }
    bool truncated = false;
    bool topic = tr.topic_id != 0;
    r->events_count = PB_COUNT(r->events, trace_query(h->trace, tr.msg_id,
                                                         topic ? tr.topic_id : tr.queue_id, topic,
                                                         r->events, TRACE_EVENTS_MAX, &truncated));
    r->truncated = truncated;
    n->ops->trace_publish(h, r->events, r->events_count);
    rpc_reply_pb(call, cmq_TraceReply_fields, r);
    free(r);
}

/* Idempotent appends (forward.h, docs/queue-state-machine.md §8) for the
 * Send `req` of op `o`: CMQ_EEXIST when the window holds every item (the
 * original ids are answered here); CMQ_EBUSY while this leader has not
 * applied an entry of its own term (the window may miss entries an earlier
 * leader committed) or an item's key is in flight here; otherwise CMQ_OK,
 * o's keys are registered as in flight and, when the window holds some
 * items, *stripped is the request without them (o->pre_ids keeps their
 * ids for the reply). */
static int send_dedup(struct hosted *h, struct op *o, const uint8_t *req, size_t len,
                      uint8_t **stripped, size_t *stripped_len)
{
    uint64_t keys[QSM_BATCH_MAX], ids[QSM_BATCH_MAX];
    uint32_t n = 0, n_keyed = 0;
    int found = qsm_dedup_lookup(h->qsm, req, len, keys, ids, &n);
    if (found < 0)
        return CMQ_EINVAL;
    if (found && (uint32_t)found == n) {
        cmq_SendReply r = cmq_SendReply_init_zero;
        for (uint32_t i = 0; i < n; i++)
            r.msg_ids[r.msg_ids_count++] = ids[i];
        rpc_reply_pb(o->call, cmq_SendReply_fields, &r);
        o->call = NULL; /* answered */
        o->n->ops_inflight--;
        return CMQ_EEXIST;
    }
    for (uint32_t i = 0; i < n; i++)
        n_keyed += keys[i] != 0;
    if (!n_keyed)
        return CMQ_OK;
    if (!hosted_leader_ready(h))
        return CMQ_EBUSY;
    for (struct op *k = h->keyed; k; k = k->keyed_next) {
        if (k->queue_id != o->queue_id)
            continue;
        for (uint32_t a = 0; a < k->n_keys; a++)
            for (uint32_t b = 0; b < n; b++)
                if (keys[b] && k->keys[a] == keys[b])
                    return CMQ_EBUSY;
    }
    if (found) {
        *stripped = qsm_send_strip(req, len, ids, stripped_len);
        if (!*stripped)
            return CMQ_ENOMEM;
        o->n_items = n;
        memcpy(o->pre_ids, ids, n * sizeof ids[0]);
    }
    for (uint32_t i = 0; i < n; i++)
        if (keys[i] && !ids[i])
            o->keys[o->n_keys++] = keys[i];
    if (o->n_keys) { /* op_free unlinks it */
        o->keyed_next = h->keyed;
        h->keyed = o;
    }
    return CMQ_OK;
}

int queues_handle(struct node *n, struct rpc_call *call)
{
    const struct rpc_msg *m = rpc_call_request(call);
    if (m->type == cmq_StorageMsgType_STORAGE_MSG_TRACE) {
        on_trace(n, call);
        return 1;
    }
    int field = command_field(m->type);
    if (field == 0)
        return 0;
    uint64_t qid = rpc_pb_first_varint(m->body, m->body_len, 1);
    if (qid == 0) {
        rpc_reply_status(call, CMQ_EINVAL, "queue_id missing");
        return 1;
    }
    struct hosted *h;
    if (field == CMD_CREATE_QUEUE) {
        cmq_StorageCreateQueueRequest cq = cmq_StorageCreateQueueRequest_init_zero;
        if (rpc_call_decode(call, cmq_StorageCreateQueueRequest_fields, &cq) != CMQ_OK) {
            rpc_reply_status(call, CMQ_EINVAL, "bad create request");
            return 1;
        }
        h = hosted_by_id(n, cq.partition_id);
        if (!h) {
            hosted_reply_not_here(n, call, "partition not hosted here");
            return 1;
        }
    } else {
        h = find_queue(n, qid);
        if (!h) {
            /* not here: the partition is elsewhere, or this replica is failed or
             * still being refilled; never "not found" (docs/status-codes.md) */
            hosted_reply_not_here(n, call, "queue not here");
            return 1;
        }
    }
    if (!partition_is_leader(h->p) || h->sm_status) {
        hosted_reply_not_leader(h, call);
        return 1;
    }
    if (field < 0) {
        on_stats(n, h, call, qid);
        return 1;
    }
    struct op *o = calloc(1, sizeof *o);
    if (!o) {
        rpc_reply_status(call, CMQ_ENOMEM, NULL);
        return 1;
    }
    *o = (struct op){.n = n, .h = h, .call = call, .type = m->type, .queue_id = qid};
    n->ops_inflight++;
    const uint8_t *payload = m->body;
    size_t payload_len = m->body_len;
    uint8_t *stripped = NULL;
    if (field == CMD_SEND) {
        int rc = send_dedup(h, o, m->body, m->body_len, &stripped, &payload_len);
        if (rc != CMQ_OK) {
            if (rc == CMQ_EEXIST) { /* every item held: answered */
                rc = CMQ_OK;
            } else if (rc == CMQ_EBUSY) {
                rpc_reply_status(call, CMQ_EBUSY, "partition busy (leader change or the same "
                                 "dedup key in flight): retry");
            } else {
                rpc_reply_status(call, rc, NULL);
            }
            op_free(o);
            return 1;
        }
        if (stripped)
            payload = stripped;
        rc = qsm_check_send(h->qsm, payload, payload_len);
        if (rc != CMQ_OK) {
            free(stripped);
            rpc_reply_status(call, rc, NULL);
            op_free(o);
            return 1;
        }
    }
    if (field == CMD_RECEIVE) {
        cmq_ReceiveRequest rr = cmq_ReceiveRequest_init_zero;
        struct qsm_stats st;
        if (rpc_call_decode(call, cmq_ReceiveRequest_fields, &rr) != CMQ_OK ||
            qsm_stats(h->qsm, qid, &st) != CMQ_OK) {
            rpc_reply_status(call, CMQ_EINVAL, "bad receive request");
            op_free(o);
            return 1;
        }
        uint32_t wait = rr.has_wait_seconds ? rr.wait_seconds : st.attrs.polling_wait_s;
        if (wait > WAIT_S_MAX)
            wait = WAIT_S_MAX;
        o->deadline_ms = clock_mono_ms() + (uint64_t)wait * 1000;
        o->req = malloc(m->body_len ? m->body_len : 1);
        if (!o->req) {
            rpc_reply_status(call, CMQ_ENOMEM, NULL);
            op_free(o);
            return 1;
        }
        memcpy(o->req, m->body, m->body_len);
        o->req_len = m->body_len;
        if (!qsm_has_visible(h->qsm, qid, clock_wall_ms())) {
            if (wait == 0) {
                rpc_reply_status(call, CMQ_EEMPTY, NULL);
                op_free(o);
            } else {
                park(o);
            }
            return 1;
        }
    }
    int rc = propose_op(o, (uint32_t)field, payload, payload_len);
    free(stripped);
    if (rc != CMQ_OK) {
        if (rc == CMQ_ENOTLEADER)
            hosted_reply_not_leader(h, call);
        else
            rpc_reply_status(call, rc, NULL);
        op_free(o);
    }
    return 1;
}

/* ---------- periodic work ---------- */

int queues_propose_tick(struct hosted *h)
{
    if (!partition_is_leader(h->p))
        return CMQ_ENOTLEADER;
    /* A Tick lost with a leadership change never answers: retry after 10 s. */
    if (h->tick_inflight && clock_mono_ms() - h->tick_at_ms > 10000)
        h->tick_inflight = 0;
    if (h->tick_inflight)
        return CMQ_EBUSY;
    struct op *o = calloc(1, sizeof *o);
    if (!o)
        return CMQ_ENOMEM;
    *o = (struct op){.n = h->n, .h = h};
    h->tick_inflight = 1;
    h->tick_at_ms = clock_mono_ms();
    int rc = propose_op(o, CMD_TICK, NULL, 0);
    if (rc != CMQ_OK) {
        h->tick_inflight = 0;
        op_free(o);
    }
    return rc;
}

void queues_tick(struct hosted *h)
{
    expire_parked(h, 0);
    trace_flush(h->trace);
}

void queues_stop(void *arg)
{
    struct node *n = arg;
    for (int i = 0; i < n->n_parts; i++)
        expire_parked(n->parts[i], 1);
}

int queues_busy(void *arg)
{
    struct node *n = arg;
    return n->ops_inflight > 0;
}
