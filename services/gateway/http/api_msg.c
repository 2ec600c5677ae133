/* api_msg.c: the HTTP API's queue actions that reach storage (spec §6.3,
 * §6.6-§6.12), and the storage half of CreateQueue / SetQueueAttributes /
 * DeleteQueue, as a thin codec over the gateway's back end
 * (services/gateway/backend/backend.h): the form parameters become a
 * back-end send / receive / delete / rewind / stats / trace on the queue the
 * back end looked up, and its outcome becomes the JSON answer.  Routing, the
 * heal, send and delete coalescing and the CMQ row of every storage failure
 * are the back end's, the same as the TCP protocol's. */
#include "api_internal.h"

#include "backend.h"
#include "cmq_limits.h"
#include "log.h"
#include "metadata.pb.h"
#include "status.h"
#include "storage.pb.h"
#include "pb_size.h"
#include "qcache.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct api_queue {
    cmq_QueueInfo qi;
    uint32_t meta_type;  /* create/set/delete: the metadata step that ran */
    struct json *ok;     /* create/set/delete: the success answer to send */
    struct param_value handles[CMQ_BATCH_MAX]; /* deletes: as received, for errorList */
    size_t n_handles;
    int long_poll;       /* receives: counted in metrics.long_polls */
    uint64_t trace_msg_id;
};

void api_msg_cleanup(struct api_call *a)
{
    if (!a->queue)
        return;
    if (a->queue->long_poll)
        metrics_sub(&api_gateway(a->api)->metrics.long_polls, 1);
    json_destroy(a->queue->ok);
    free(a->queue);
    a->queue = NULL;
}

static struct api_queue *queue_state(struct gw_call *c)
{
    struct api_call *a = gw_call_data(c);
    if (!a->queue)
        a->queue = calloc(1, sizeof *a->queue);
    return a->queue;
}

static struct be_loop *be_of(struct gw_call *c) { return &gw_call_gateway(c)->be; }

/* ---------- answers per action ---------- */

static void write_received(struct json *j, const struct be_received *r)
{
    json_kv_str(j, "msgBody", (const char *)r->body, r->body_len);
    json_kv_id(j, "msgId", r->msg_id);
    json_kv_id(j, "receiptHandle", r->handle);
    json_kv_int(j, "enqueueTime", (int64_t)(r->enqueue_ms / 1000));
    json_kv_int(j, "firstDequeueTime", (int64_t)(r->first_ms / 1000));
    json_kv_int(j, "nextVisibleTime", (int64_t)(r->next_ms / 1000));
    json_kv_int(j, "dequeueCount", r->count);
    if (r->has_origin) { /* extension: where a dead-letter copy came from (docs/http-api.md) */
        json_key(j, "deadLetterSource");
        json_obj_begin(j);
        json_kv_cstr(j, "queueName", r->origin_queue);
        json_kv_id(j, "msgId", r->origin_msg_id);
        json_kv_int(j, "enqueueTime", (int64_t)(r->origin_enqueue_ms / 1000));
        json_kv_int(j, "firstDequeueTime", (int64_t)(r->origin_first_ms / 1000));
        json_kv_int(j, "dequeueCount", r->origin_count);
        json_kv_cstr(j, "reason", r->origin_reason == 2 ? "maxTimeToLive" : "maxReceiveCount");
        json_obj_end(j);
    }
}

/* The JSON a receive answer may need: an escaped body byte takes at most 6
 * bytes (\u00XX), and each message's other members well under 1 KiB.  The
 * answer is never refused for its size: the messages are already leased,
 * and a refused answer would hide them for their visibility timeout. */
static size_t received_json_cap(const struct be_received *rs, size_t n)
{
    size_t cap = 4096;
    for (size_t i = 0; i < n; i++)
        cap += 6 * rs[i].body_len + 1024;
    return cap;
}

/* SendMessage / BatchSendMessage: the ids storage assigned to this call's
 * messages, in request order. */
static void answer_send(struct gw_call *c, const uint64_t *ids, size_t n)
{
    struct api_call *a = gw_call_data(c);
    struct json *j = api_begin_ok(c);
    if (!j)
        return;
    if (a->action == CMQ_ACTION_SEND_MESSAGE) {
        json_kv_id(j, "msgId", ids[0]);
    } else {
        json_key(j, "msgList");
        json_arr_begin(j);
        for (size_t i = 0; i < n; i++) {
            json_obj_begin(j);
            json_kv_id(j, "msgId", ids[i]);
            json_obj_end(j);
        }
        json_arr_end(j);
    }
    api_finish_ok(c, j);
}

static void answer_receive(struct gw_call *c, const struct be_received *rs, size_t n)
{
    struct api_call *a = gw_call_data(c);
    struct json *j = api_begin_ok_cap(c, received_json_cap(rs, n));
    if (!j)
        return;
    if (a->action == CMQ_ACTION_RECEIVE_MESSAGE) {
        write_received(j, &rs[0]);
    } else {
        json_key(j, "msgInfoList");
        json_arr_begin(j);
        for (size_t i = 0; i < n; i++) {
            json_obj_begin(j);
            write_received(j, &rs[i]);
            json_obj_end(j);
        }
        json_arr_end(j);
    }
    api_finish_ok(c, j);
}

/* DeleteMessage / BatchDeleteMessage: storage's outcome for each of this
 * call's handles, in request order. */
static void answer_delete(struct gw_call *c, const int32_t *statuses, size_t n)
{
    struct api_call *a = gw_call_data(c);
    struct api_queue *q = a->queue;
    size_t failed = 0;
    for (size_t i = 0; i < n; i++)
        failed += statuses[i] != CMQ_OK;
    if (failed == 0) {
        api_reply_err(c, CMQERR_OK, NULL);
        return;
    }
    if (a->action == CMQ_ACTION_DELETE_MESSAGE) {
        api_reply_err(c, be_status_row(a->action, statuses[0]), NULL);
        return;
    }
    /* §6.12: 6010 with errorList when some failed, 6020 (with it too) when all did. */
    struct json *j = json_create(API_JSON_MAX);
    if (!j)
        return;
    json_obj_begin(j);
    cmq_error_envelope(j, failed == n ? CMQERR_DELETE_ALL_FAILED : CMQERR_DELETE_PARTIAL, NULL,
                       a->request_id);
    json_key(j, "errorList");
    json_arr_begin(j);
    for (size_t i = 0; i < n && i < q->n_handles; i++)
        if (statuses[i] != CMQ_OK)
            cmq_error_item(j, be_status_row(a->action, statuses[i]), q->handles[i].val,
                           q->handles[i].len);
    json_arr_end(j);
    json_obj_end(j);
    api_respond_json(c, j);
    json_destroy(j);
}

static void answer_stats(struct gw_call *c, const struct rpc_msg *msg)
{
    struct api_queue *q = queue_state(c);
    cmq_QueueStatsReply r = cmq_QueueStatsReply_init_zero;
    if (!msg || rpc_pb_decode(cmq_QueueStatsReply_fields, &r, msg->body, msg->body_len) != CMQ_OK) {
        api_reply_err(c, CMQERR_GET_QUEUE_ATTRS_FAILED, NULL);
        return;
    }
    const cmq_QueueInfo *qi = &q->qi;
    struct json *j = api_begin_ok(c);
    if (!j)
        return;
    json_kv_int(j, "maxMsgHeapNum", qi->max_msg_heap_num);
    json_kv_int(j, "pollingWaitSeconds", qi->polling_wait_seconds);
    json_kv_int(j, "visibilityTimeout", qi->visibility_timeout);
    json_kv_int(j, "maxMsgSize", qi->max_msg_size);
    json_kv_int(j, "msgRetentionSeconds", qi->msg_retention_seconds);
    json_kv_int(j, "createTime", (int64_t)qi->create_time);
    json_kv_int(j, "lastModifyTime", (int64_t)qi->last_modify_time);
    json_kv_int(j, "activeMsgNum", (int64_t)r.active_msg_num);
    json_kv_int(j, "inactiveMsgNum", (int64_t)r.inactive_msg_num);
    json_kv_int(j, "rewindSeconds", qi->rewind_seconds);
    json_kv_int(j, "rewindmsgNum", (int64_t)r.rewind_msg_num);
    json_kv_int(j, "rewindMsgNum", (int64_t)r.rewind_msg_num);
    json_kv_int(j, "minMsgTime", (int64_t)r.min_msg_time_s);
    json_kv_int(j, "delayMsgNum", (int64_t)r.delay_msg_num);
    api_write_dead_letter_policy(j, qi);
    json_kv_cstr(j, "queueName", qi->name);
    json_kv_cstr(j, "queueId", qi->queue_id);
    api_finish_ok(c, j);
}

static void on_done(void *arg, const struct be_result *r)
{
    struct gw_call *c = arg;
    if (gw_call_gone(c)) {
        gw_call_release(c);
        return;
    }
    struct api_call *a = gw_call_data(c);
    if (r->err != CMQERR_OK) {
        api_reply_err(c, r->err, NULL);
        gw_call_release(c);
        return;
    }
    switch (a->action) {
    case CMQ_ACTION_SEND_MESSAGE:
    case CMQ_ACTION_BATCH_SEND_MESSAGE: answer_send(c, r->ids, r->n_ids); break;
    case CMQ_ACTION_RECEIVE_MESSAGE:
    case CMQ_ACTION_BATCH_RECEIVE_MESSAGE: answer_receive(c, r->received, r->n_received); break;
    case CMQ_ACTION_DELETE_MESSAGE:
    case CMQ_ACTION_BATCH_DELETE_MESSAGE: answer_delete(c, r->statuses, r->n_statuses); break;
    case CMQ_ACTION_GET_QUEUE_ATTRIBUTES: answer_stats(c, r->msg); break;
    case CMQ_ACTION_DESCRIBE_MESSAGE_TRACE: {
        cmq_TraceReply *t = calloc(1, sizeof *t);
        if (!t || !r->msg || rpc_pb_decode(cmq_TraceReply_fields, t, r->msg->body, r->msg->body_len) != CMQ_OK)
            api_reply_err(c, CMQERR_INTERNAL, NULL);
        else
            api_trace_answer(c, a->queue->trace_msg_id, t);
        free(t);
        break;
    }
    default: api_reply_err(c, CMQERR_OK, NULL); break;
    }
    gw_call_release(c);
}

/* ---------- building the requests ---------- */

static void do_send(struct gw_call *c, const cmq_QueueInfo *qi)
{
    struct api_call *a = gw_call_data(c);
    struct cmq_fault f = {0};
    struct param_value bodies[CMQ_BATCH_MAX];
    size_t n, total;
    if (api_read_bodies(c, a->action == CMQ_ACTION_SEND_MESSAGE, qi->max_msg_size, bodies, &n,
                        &total) != 0)
        return;
    int64_t delay = 0;
    int rc = params_get_int(a->params, "delaySeconds", INT64_MIN, INT64_MAX, &delay, &f);
    if (rc == CMQ_EINVAL) {
        api_reply_fault(c, &f);
        return;
    }
    if (!cmq_delay_ok(delay, gw_call_gateway(c)->cfg.max_delay_s)) {
        api_reply_err(c, CMQERR_DELAY_RANGE, NULL);
        return;
    }
    struct be_send_item items[CMQ_BATCH_MAX];
    for (size_t i = 0; i < n; i++)
        items[i] = (struct be_send_item){bodies[i].val, bodies[i].len, (uint32_t)delay, 0};
    char addr[64];
    api_client_addr(c, addr, sizeof addr);
    gw_call_hold(c);
    be_send(be_of(c), a->action, qi, items, n, addr, on_done, c);
}

static void do_receive(struct gw_call *c, const cmq_QueueInfo *qi)
{
    struct api_call *a = gw_call_data(c);
    struct api_queue *q = a->queue;
    struct cmq_fault f = {0};
    cmq_ReceiveRequest r = cmq_ReceiveRequest_init_zero;
    r.queue_id = qi->num_id;
    r.count = 1;
    api_client_addr(c, r.consumer_addr, sizeof r.consumer_addr);
    if (a->action == CMQ_ACTION_BATCH_RECEIVE_MESSAGE) {
        int64_t num;
        if (params_get_int(a->params, "numOfMsg", 1, CMQ_BATCH_MAX, &num, &f) != CMQ_OK) {
            api_reply_fault(c, &f);
            return;
        }
        r.count = (uint32_t)num;
    }
    int64_t wait;
    int rc = params_get_int(a->params, "pollingWaitSeconds", INT64_MIN, INT64_MAX, &wait, &f);
    if (rc == CMQ_EINVAL) {
        api_reply_fault(c, &f);
        return;
    }
    if (rc == CMQ_OK) {
        if (wait < 0) {
            api_reply_err(c, CMQERR_PARAM_RANGE, "pollingWaitSeconds");
            return;
        }
        r.has_wait_seconds = true;
        r.wait_seconds = (uint32_t)(wait > CMQ_POLL_WAIT_S_MAX ? CMQ_POLL_WAIT_S_MAX : wait);
    } else {
        wait = qi->polling_wait_seconds;
    }
    if (wait > CMQ_POLL_WAIT_S_MAX)
        wait = CMQ_POLL_WAIT_S_MAX;
    if (wait > 0 && !q->long_poll) {
        q->long_poll = 1;
        metrics_add(&gw_call_gateway(c)->metrics.long_polls, 1);
    }
    gw_call_hold(c);
    be_queue_call(be_of(c), a->action, qi, cmq_StorageMsgType_STORAGE_MSG_RECEIVE,
                  cmq_ReceiveRequest_fields, &r, (int)(wait * 1000) + BE_STORAGE_TIMEOUT_MS, 0,
                  on_done, c);
}

/* A receipt handle is a decimal uint64 naming its partition (bits 63..52). */
static int parse_handle(const char *s, size_t len, uint64_t *out)
{
    if (len == 0 || len > 20)
        return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9' || v > (UINT64_MAX - 9) / 10)
            return -1;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    *out = v;
    return v ? 0 : -1;
}

static void do_delete(struct gw_call *c, const cmq_QueueInfo *qi)
{
    struct api_call *a = gw_call_data(c);
    struct api_queue *q = a->queue;
    struct cmq_fault f = {0};
    uint64_t handles[CMQ_BATCH_MAX];
    if (a->action == CMQ_ACTION_DELETE_MESSAGE) {
        const char *v;
        size_t len;
        if (params_get_str(a->params, "receiptHandle", 64, &v, &len, &f) != CMQ_OK) {
            api_reply_fault(c, &f);
            return;
        }
        q->handles[0] = (struct param_value){v, len};
        q->n_handles = 1;
    } else if (params_get_list(a->params, "receiptHandle", CMQ_BATCH_MAX, 0, q->handles,
                               &q->n_handles, &f) != CMQ_OK) {
        api_reply_fault(c, &f);
        return;
    }
    for (size_t i = 0; i < q->n_handles; i++)
        if (parse_handle(q->handles[i].val, q->handles[i].len, &handles[i]) != 0) {
            api_reply_err(c, CMQERR_RECEIPT_HANDLE_FORMAT, NULL);
            return;
        }
    gw_call_hold(c);
    be_delete(be_of(c), a->action, qi, handles, q->n_handles, on_done, c);
}

static void do_rewind(struct gw_call *c, const cmq_QueueInfo *qi)
{
    struct api_call *a = gw_call_data(c);
    struct cmq_fault f = {0};
    int64_t t;
    if (params_get_int(a->params, "startConsumeTime", 0, INT64_MAX, &t, &f) != CMQ_OK) {
        api_reply_fault(c, &f);
        return;
    }
    cmq_RewindRequest r = cmq_RewindRequest_init_zero;
    r.queue_id = qi->num_id;
    r.start_consume_time_s = (uint64_t)t;
    gw_call_hold(c);
    be_queue_call(be_of(c), a->action, qi, cmq_StorageMsgType_STORAGE_MSG_REWIND,
                  cmq_RewindRequest_fields, &r, 0, 0, on_done, c);
}

static void do_stats(struct gw_call *c, const cmq_QueueInfo *qi)
{
    struct api_call *a = gw_call_data(c);
    cmq_QueueStatsRequest r = cmq_QueueStatsRequest_init_zero;
    r.queue_id = qi->num_id;
    gw_call_hold(c);
    be_queue_call(be_of(c), a->action, qi, cmq_StorageMsgType_STORAGE_MSG_QUEUE_STATS,
                  cmq_QueueStatsRequest_fields, &r, 0, 0, on_done, c);
}

static void do_trace(struct gw_call *c, const cmq_QueueInfo *qi)
{
    struct api_call *a = gw_call_data(c);
    cmq_TraceRequest tr = cmq_TraceRequest_init_zero;
    if (api_trace_request(c, qi->num_id, qi->partition_id, &tr) != 0)
        return; /* answered */
    if (tr.msg_id == 0) {
        api_trace_answer(c, 0, NULL); /* another partition's id: not this queue's */
        return;
    }
    a->queue->trace_msg_id = tr.msg_id;
    gw_call_hold(c);
    be_queue_call(be_of(c), a->action, qi, cmq_StorageMsgType_STORAGE_MSG_TRACE,
                  cmq_TraceRequest_fields, &tr, 0, 0, on_done, c);
}

/* Continues a message action once the back end found the queue. */
static void on_queue(void *arg, const cmq_QueueInfo *qi, const struct be_fault *f)
{
    struct gw_call *c = arg;
    if (gw_call_gone(c)) {
        gw_call_release(c);
        return;
    }
    struct api_call *a = gw_call_data(c);
    if (!qi) {
        api_reply_be_fault(c, f);
        gw_call_release(c);
        return;
    }
    a->queue->qi = *qi;
    switch (a->action) {
    case CMQ_ACTION_SEND_MESSAGE:
    case CMQ_ACTION_BATCH_SEND_MESSAGE: do_send(c, qi); break;
    case CMQ_ACTION_RECEIVE_MESSAGE:
    case CMQ_ACTION_BATCH_RECEIVE_MESSAGE: do_receive(c, qi); break;
    case CMQ_ACTION_DELETE_MESSAGE:
    case CMQ_ACTION_BATCH_DELETE_MESSAGE: do_delete(c, qi); break;
    case CMQ_ACTION_REWIND_QUEUE: do_rewind(c, qi); break;
    case CMQ_ACTION_GET_QUEUE_ATTRIBUTES: do_stats(c, qi); break;
    case CMQ_ACTION_DESCRIBE_MESSAGE_TRACE: do_trace(c, qi); break;
    default: api_reply_err(c, CMQERR_INTERNAL, NULL); break;
    }
    gw_call_release(c);
}

void api_do_queue_storage_action(struct gw_call *c)
{
    struct api_call *a = gw_call_data(c);
    if (!queue_state(c)) {
        api_reply_err(c, CMQERR_INTERNAL, NULL);
        return;
    }
    char name[130];
    if (api_need_str(c, "queueName", name, sizeof name))
        return;
    /* GetQueueAttributes always asks metadata: its times and attributes are
     * what it reports. */
    gw_call_hold(c);
    be_queue_get(be_of(c), a->key.appid, name, a->action == CMQ_ACTION_GET_QUEUE_ATTRIBUTES,
                 on_queue, c);
}

/* ---------- the storage half of CreateQueue / SetQueueAttributes / DeleteQueue ---------- */

static void on_meta_step(void *arg, const struct be_result *r)
{
    struct gw_call *c = arg;
    if (gw_call_gone(c)) {
        gw_call_release(c);
        return;
    }
    struct api_call *a = gw_call_data(c);
    struct api_queue *q = a->queue;
    int status = r->status;
    int fine = status == CMQ_OK ||
               (q->meta_type == cmq_MetaMsgType_META_MSG_QUEUE_CREATE && status == CMQ_EEXIST) ||
               (q->meta_type == cmq_MetaMsgType_META_MSG_QUEUE_DELETE && status == CMQ_ENOTFOUND);
    if (!fine && q->meta_type == cmq_MetaMsgType_META_MSG_QUEUE_SET) {
        api_reply_err(c, CMQERR_SET_QUEUE_ATTRS_FAILED, NULL);
        gw_call_release(c);
        return;
    }
    if (!fine)
        log_warn("queue_storage_step_failed", "queue=%s status=%s action=%s note=\"%s\"",
                 q->qi.name, status_name(status), action_name(a->action),
                 q->meta_type == cmq_MetaMsgType_META_MSG_QUEUE_CREATE
                     ? "storage creates it on first use" : "storage keeps orphan state");
    struct json *j = q->ok;
    q->ok = NULL;
    api_respond_json(c, j);
    json_destroy(j);
    gw_call_release(c);
}

void api_storage_after_meta(struct gw_call *c, uint32_t meta_type, const void *qinfo, struct json *ok)
{
    struct api_call *a = gw_call_data(c);
    struct api_queue *q = queue_state(c);
    if (!q) {
        json_destroy(ok);
        api_reply_err(c, CMQERR_INTERNAL, NULL);
        return;
    }
    q->qi = *(const cmq_QueueInfo *)qinfo;
    q->meta_type = meta_type;
    qcache_forget(be_of(c)->queues, q->qi.appid, q->qi.name);
    if (q->qi.num_id == 0 || q->qi.partition_id == 0) {
        /* Not placed yet (no storage partitions when it was created): storage
         * learns it on first use. */
        api_respond_json(c, ok);
        json_destroy(ok);
        return;
    }
    q->ok = ok;
    gw_call_hold(c);
    /* this is the storage step itself: no heal */
    if (meta_type == cmq_MetaMsgType_META_MSG_QUEUE_CREATE) {
        cmq_StorageCreateQueueRequest r = cmq_StorageCreateQueueRequest_init_zero;
        r.queue_id = q->qi.num_id;
        snprintf(r.name, sizeof r.name, "%s", q->qi.name);
        r.has_attributes = true;
        be_storage_attrs(&q->qi, &r.attributes);
        r.create_time_s = q->qi.create_time;
        r.partition_id = q->qi.partition_id;
        be_queue_call(be_of(c), a->action, &q->qi, cmq_StorageMsgType_STORAGE_MSG_CREATE_QUEUE,
                      cmq_StorageCreateQueueRequest_fields, &r, 0, 1, on_meta_step, c);
    } else if (meta_type == cmq_MetaMsgType_META_MSG_QUEUE_SET) {
        cmq_StorageSetQueueAttributesRequest r = cmq_StorageSetQueueAttributesRequest_init_zero;
        r.queue_id = q->qi.num_id;
        r.has_attributes = true;
        be_storage_attrs(&q->qi, &r.attributes);
        r.clear_dead_letter_policy = !q->qi.has_dead_letter_policy;
        be_queue_call(be_of(c), a->action, &q->qi,
                      cmq_StorageMsgType_STORAGE_MSG_SET_QUEUE_ATTRIBUTES,
                      cmq_StorageSetQueueAttributesRequest_fields, &r, 0, 1, on_meta_step, c);
    } else {
        cmq_StorageDropQueueRequest r = cmq_StorageDropQueueRequest_init_zero;
        r.queue_id = q->qi.num_id;
        be_queue_call(be_of(c), a->action, &q->qi, cmq_StorageMsgType_STORAGE_MSG_DROP_QUEUE,
                      cmq_StorageDropQueueRequest_fields, &r, 0, 1, on_meta_step, c);
    }
}
