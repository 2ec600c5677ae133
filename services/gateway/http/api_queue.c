/* api_queue.c: queue management actions (spec §6.1-6.5) over metadata. */
#include "api_internal.h"

#include "dlq_policy.h"
#include "metadata.pb.h"
#include "status.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

/* ---------- queue management ---------- */

static int queue_attrs_from_params(struct gw_call *c, cmq_QueueRequest *q)
{
    static const struct {
        const char *key;
        size_t has_off, val_off;
    } attrs[] = {
#define ATTR(k, f) {k, offsetof(cmq_QueueRequest, has_##f), offsetof(cmq_QueueRequest, f)}
        ATTR("maxMsgHeapNum", max_msg_heap_num),
        ATTR("pollingWaitSeconds", polling_wait_seconds),
        ATTR("visibilityTimeout", visibility_timeout),
        ATTR("maxMsgSize", max_msg_size),
        ATTR("msgRetentionSeconds", msg_retention_seconds),
        ATTR("rewindSeconds", rewind_seconds),
#undef ATTR
    };
    for (size_t i = 0; i < sizeof attrs / sizeof attrs[0]; i++) {
        int64_t v;
        int r = api_opt_int(c, attrs[i].key, &v);
        if (r < 0)
            return -1;
        if (r) {
            *(bool *)((char *)q + attrs[i].has_off) = true;
            memcpy((char *)q + attrs[i].val_off, &v, sizeof v);
        }
    }
    return 0;
}

/* deadLetterPolicy (spec §6): JSON text into a cmq_DeadLetterPolicy; an empty
 * value means none on create and "remove it" on set.  0, or -1 after
 * answering.  Ranges and the DLQ rules are metadata's. */
static int dead_letter_from_params(struct gw_call *c, cmq_QueueRequest *q, int set)
{
    struct api_call *a = gw_call_data(c);
    struct param_view pv;
    if (!params_find(a->params, "deadLetterPolicy", &pv))
        return 0;
    struct dlq_policy d;
    struct cmq_fault f = {0};
    int rc = dlq_policy_parse(pv.val, pv.val_len, &d, &f);
    if (rc == CMQ_ENOTFOUND) {
        q->clear_dead_letter_policy = set;
        return 0;
    }
    if (rc != CMQ_OK) {
        api_reply_fault(c, &f);
        return -1;
    }
    _Static_assert(sizeof d.dead_letter_queue <= sizeof q->dead_letter_policy.dead_letter_queue,
                   "the DLQ name fits metadata's field");
    q->has_dead_letter_policy = true;
    memcpy(q->dead_letter_policy.dead_letter_queue, d.dead_letter_queue,
           sizeof d.dead_letter_queue);
    q->dead_letter_policy.policy = d.policy;
    q->dead_letter_policy.max_receive_count = d.max_receive_count;
    q->dead_letter_policy.max_time_to_live = d.max_time_to_live;
    return 0;
}

static void write_queue_attrs(struct json *j, const cmq_QueueInfo *qi)
{
    json_kv_int(j, "maxMsgHeapNum", qi->max_msg_heap_num);
    json_kv_int(j, "pollingWaitSeconds", qi->polling_wait_seconds);
    json_kv_int(j, "visibilityTimeout", qi->visibility_timeout);
    json_kv_int(j, "maxMsgSize", qi->max_msg_size);
    json_kv_int(j, "msgRetentionSeconds", qi->msg_retention_seconds);
    json_kv_int(j, "rewindSeconds", qi->rewind_seconds);
    api_write_dead_letter_policy(j, qi);
}

/* Metadata created, changed or deleted the queue (`meta_type`, carried in the
 * tag): build the success answer, then let api_msg.c apply it on storage. */
static void on_queue_changed(struct gw_call *c, int meta_type, int status, const struct rpc_msg *msg)
{
    if (gw_call_gone(c))
        return;
    cmq_QueueInfo qi = cmq_QueueInfo_init_zero;
    if (status != CMQ_OK || rpc_pb_decode(cmq_QueueInfo_fields, &qi, msg->body, msg->body_len)) {
        api_reply_backend_error(c, status, msg);
        return;
    }
    struct json *j = api_begin_ok(c);
    if (!j)
        return;
    if (meta_type == cmq_MetaMsgType_META_MSG_QUEUE_SET)
        write_queue_attrs(j, &qi);
    if (meta_type != cmq_MetaMsgType_META_MSG_QUEUE_DELETE)
        json_kv_cstr(j, "queueId", qi.queue_id);
    json_obj_end(j);
    api_storage_after_meta(c, (uint32_t)meta_type, &qi, j);
}

static void on_queue_list(struct gw_call *c, int tag, int status, const struct rpc_msg *msg)
{
    (void)tag;
    if (gw_call_gone(c))
        return;
    cmq_QueueList ql = cmq_QueueList_init_zero;
    if (status != CMQ_OK || rpc_pb_decode(cmq_QueueList_fields, &ql, msg->body, msg->body_len)) {
        api_reply_backend_error(c, status, msg);
        return;
    }
    struct json *j = api_begin_ok(c);
    if (!j)
        return;
    json_kv_int(j, "totalCount", ql.total_count);
    json_key(j, "queueList");
    json_arr_begin(j);
    for (pb_size_t i = 0; i < ql.queues_count; i++) {
        json_obj_begin(j);
        json_kv_cstr(j, "queueId", ql.queues[i].queue_id);
        json_kv_cstr(j, "queueName", ql.queues[i].queue_name);
        json_obj_end(j);
    }
    json_arr_end(j);
    api_finish_ok(c, j);
}

void api_do_create_or_set_queue(struct gw_call *c, int set)
{
    struct api_call *a = gw_call_data(c);
    cmq_QueueRequest q = cmq_QueueRequest_init_zero;
    q.appid = a->key.appid;
    if (api_need_str(c, "queueName", q.name, sizeof q.name) || queue_attrs_from_params(c, &q) ||
        dead_letter_from_params(c, &q, set))
        return;
    api_meta_call(c, set ? cmq_MetaMsgType_META_MSG_QUEUE_SET : cmq_MetaMsgType_META_MSG_QUEUE_CREATE,
              cmq_QueueRequest_fields, &q, on_queue_changed);
}

void api_do_delete_queue(struct gw_call *c)
{
    struct api_call *a = gw_call_data(c);
    cmq_NameRequest r = cmq_NameRequest_init_zero;
    r.appid = a->key.appid;
    if (api_need_str(c, "queueName", r.name, sizeof r.name))
        return;
    api_meta_call(c, cmq_MetaMsgType_META_MSG_QUEUE_DELETE, cmq_NameRequest_fields, &r,
                  on_queue_changed);
}

void api_do_list_queue(struct gw_call *c)
{
    struct api_call *a = gw_call_data(c);
    cmq_ListRequest r = cmq_ListRequest_init_zero;
    r.appid = a->key.appid;
    if (api_list_params(c, &r))
        return;
    api_meta_call(c, cmq_MetaMsgType_META_MSG_QUEUE_LIST, cmq_ListRequest_fields, &r, on_queue_list);
}

