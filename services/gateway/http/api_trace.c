/* api_trace.c: the message trace extension action and client addresses.
 *
 * DescribeMessageTrace (queueName or topicName, msgId): every state change of
 * one message of the queue (or topic: published, and per subscription its
 * deliveries, failed attempts with the HTTP status, drop, dead letter),
 * oldest first, from the storage partition's trace index
 * (docs/queue-state-machine.md §9, docs/http-api.md).  api_msg.c resolves the
 * queue and routes the request to its partition like any message action
 * (api_publish.c the topic);
 * this file builds the request and the answer.  api_client_addr gives the
 * "ip:port" of the HTTP client, which Send and Receive requests carry for the
 * trace.
 */
#include "api_internal.h"

#include "storage.pb.h"

#include <arpa/inet.h>
#include <h2o.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

int api_trace_request(struct gw_call *c, uint64_t queue_num, uint32_t partition, void *req)
{
    struct api_call *a = gw_call_data(c);
    cmq_TraceRequest *r = req;
    struct param_view pv;
    char buf[24];
    uint64_t id = 0;
    if (!params_find(a->params, "msgId", &pv) || pv.val_len == 0) {
        api_reply_err(c, CMQERR_MISSING_PARAMS, "msgId");
        return -1;
    }
    if (pv.val_len >= sizeof buf) {
        api_reply_err(c, CMQERR_PARAM_RANGE, "msgId");
        return -1;
    }
    memcpy(buf, pv.val, pv.val_len);
    buf[pv.val_len] = 0;
    for (const char *p = buf; *p; p++) {
        if (*p < '0' || *p > '9' || id > (UINT64_MAX - 9) / 10) {
            api_reply_err(c, CMQERR_PARAM_TYPE, "msgId");
            return -1;
        }
        id = id * 10 + (uint64_t)(*p - '0');
    }
    /* bits 63..52 of a msgId name its partition: one of another partition
     * is not this queue's (and would be routed to the wrong group) */
    if (id == 0 || (uint32_t)(id >> 52) != partition) {
        r->msg_id = 0;
        return 0; /* answered as an empty trace by api_trace_answer */
    }
    r->msg_id = id;
    r->queue_id = queue_num;
    return 0;
}

static const char *event_name(uint32_t e)
{
    static const char *const topic_names[] = {"published", "delivered", "attemptFailed",
                                              "dropped", "deadLettered"};
    if (e >= 20 && e < 25)
        return topic_names[e - 20];
    static const char *const names[] = {"", "sent", "delayed", "visible", "delivered",
                                        "leaseExpired", "deleted", "rewound", "deadLettered",
                                        "expired"};
    return e < sizeof names / sizeof names[0] ? names[e] : "unknown";
}

void api_trace_answer(struct gw_call *c, uint64_t msg_id, const void *reply)
{
    const cmq_TraceReply *r = reply;
    struct json *j = api_begin_ok(c);
    if (!j)
        return;
    json_kv_id(j, "msgId", msg_id);
    json_key(j, "events");
    json_arr_begin(j);
    for (pb_size_t i = 0; r && i < r->events_count; i++) {
        const cmq_TraceEvent *e = &r->events[i];
        json_obj_begin(j);
        json_kv_cstr(j, "event", event_name(e->event));
        json_kv_int(j, "time", (int64_t)(e->time_ms / 1000));
        json_kv_int(j, "timeMs", (int64_t)e->time_ms);
        switch (e->event) {
        case 1: /* sent */
            json_kv_cstr(j, "clientAddr", e->addr);
            break;
        case 2: /* delayed */
            json_kv_int(j, "visibleTime", (int64_t)(e->due_ms / 1000));
            break;
        case 4: /* delivered */
            json_kv_id(j, "receiptHandle", e->receipt_handle);
            json_kv_cstr(j, "consumerAddr", e->addr);
            json_kv_int(j, "nextVisibleTime", (int64_t)(e->due_ms / 1000));
            break;
        case 5: /* lease expired */
        case 6: /* deleted */
            json_kv_id(j, "receiptHandle", e->receipt_handle);
            break;
        case 7: /* rewound */
            json_kv_int(j, "rewindTime", (int64_t)(e->rewind_ms / 1000));
            break;
        case 20: /* topic: published */
            json_kv_cstr(j, "clientAddr", e->addr);
            json_kv_cstr(j, "msgTag", e->tags);
            json_kv_cstr(j, "routingKey", e->routing_key);
            break;
        case 21: /* topic: delivered (queue) or pushed (2xx) */
        case 22: /* topic: an attempt failed */
        case 23: /* topic: dropped */
        case 24: /* topic: dead-lettered */
            json_kv_cstr(j, "subscriptionId", e->sub_id);
            json_kv_int(j, "attempt", e->attempt);
            if (e->event != 23)
                json_kv_int(j, "httpStatus", e->http_status);
            if (e->target_msg_id)
                json_kv_id(j, "targetMsgId", e->target_msg_id);
            if (e->event == 22)
                json_kv_int(j, "nextAttemptTime", (int64_t)(e->due_ms / 1000));
            break;
        default:
            break;
        }
        json_obj_end(j);
    }
    json_arr_end(j);
    json_kv_int(j, "truncated", r && r->truncated ? 1 : 0);
    api_finish_ok(c, j);
}
