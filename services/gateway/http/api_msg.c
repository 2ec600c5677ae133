/* api_msg.c: the queue actions that reach storage (spec §6.3, §6.6-§6.12),
 * and the storage half of CreateQueue / SetQueueAttributes / DeleteQueue.
 *
 * Each action first asks metadata for the queue (QUEUE_GET: its partition
 * and attributes), then sends one request to the storage node that leads the
 * queue's partition.  The gateway remembers, per partition, the storage peer
 * that last answered, and the rpc layer follows "not leader" hints, so a
 * leader change costs one extra hop.
 *
 * Storage learns a queue when the gateway that created it in metadata
 * creates it there.  If that step failed (a storage node was down), the
 * first request that storage answers "no such queue" creates it from the
 * metadata attributes and is sent again ("heal"), once per request.
 *
 * The numeric queue id storage uses is metadata's num_id (never reused).
 */
#include "api_internal.h"
#include "qcache.h"

#include "clock.h"
#include "hash.h"
#include "cmq_limits.h"
#include "crypto.h"
#include "log.h"
#include "metadata.pb.h"
#include "status.h"
#include "storage.pb.h"
#include "pb_size.h"

#include <pb_decode.h>
#include <pb_encode.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STORAGE_TIMEOUT_MS 2000 /* per attempt: a commit takes milliseconds; a lost request costs this much */
#define STORAGE_ATTEMPTS 3

struct api_queue {
    cmq_QueueInfo qi;
    uint64_t queue_num;
    uint32_t stype;      /* the storage request type */
    uint8_t *sreq;       /* the encoded storage request, kept for a resend */
    size_t sreq_len;
    int timeout_ms;
    int healed;
    uint32_t meta_type;  /* create/set/delete: the metadata step that ran */
    struct json *ok;     /* create/set/delete: the success answer to send */
    struct param_value handles[CMQ_BATCH_MAX]; /* deletes: as received, for errorList */
    size_t n_handles;
    int long_poll;       /* receives: counted in metrics.long_polls */
    uint32_t n_msgs;     /* sends: messages and body bytes in sreq (coalescing) */
    size_t msg_bytes;
};

void api_msg_cleanup(struct api_call *a)
{
    if (!a->queue)
        return;
    if (a->queue->long_poll)
        metrics_sub(&api_gateway(a->api)->metrics.long_polls, 1);
    free(a->queue->sreq);
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

static void storage_attrs(const cmq_QueueInfo *qi, cmq_StorageQueueAttributes *o)
{
    o->has_max_msg_heap_num = true;
    o->max_msg_heap_num = (uint64_t)qi->max_msg_heap_num;
    o->has_polling_wait_seconds = true;
    o->polling_wait_seconds = (uint32_t)qi->polling_wait_seconds;
    o->has_visibility_timeout_s = true;
    o->visibility_timeout_s = (uint32_t)qi->visibility_timeout;
    o->has_max_msg_size = true;
    o->max_msg_size = (uint32_t)qi->max_msg_size;
    o->has_msg_retention_s = true;
    o->msg_retention_s = (uint32_t)qi->msg_retention_seconds;
    o->has_rewind_s = true;
    o->rewind_s = (uint32_t)qi->rewind_seconds;
    if (qi->has_dead_letter_policy && qi->dead_letter_policy.dead_letter_queue_id[0]) {
        o->has_dead_letter_policy = true;
        o->dead_letter_policy.dead_letter_queue_id = qi->dead_letter_policy.dead_letter_queue_num_id;
        o->dead_letter_policy.policy = (uint32_t)qi->dead_letter_policy.policy;
        o->dead_letter_policy.max_receive_count = (uint32_t)qi->dead_letter_policy.max_receive_count;
        o->dead_letter_policy.max_time_to_live_s = (uint32_t)qi->dead_letter_policy.max_time_to_live;
    }
}

/* ---------- talking to storage ---------- */

static void on_storage(struct gw_call *c, int tag, int status, const struct rpc_msg *msg);

static uint64_t key_base, key_seq;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;

static void key_init(void)
{
    if (crypto_random(&key_base, sizeof key_base) != CMQ_OK)
        key_base = clock_wall_ms() << 20 ^ clock_mono_ns(); /* not expected */
}

uint64_t api_dedup_key(void)
{
    pthread_once(&key_once, key_init);
    for (;;) {
        /* a bijection, so distinct counters give distinct keys */
        uint64_t z = hash_splitmix64(key_base + __atomic_add_fetch(&key_seq, 1, __ATOMIC_RELAXED));
        if (z)
            return z;
    }
}

static void storage_send(struct gw_call *c, uint32_t type, const uint8_t *body, size_t len, int tag)
{
    struct gateway *gw = gw_call_gateway(c);
    struct api_queue *q = queue_state(c);
    uint32_t part = q->qi.partition_id;
    struct rpc_opts opts = {
        .timeout_ms = q->timeout_ms ? q->timeout_ms : STORAGE_TIMEOUT_MS,
        .attempts = STORAGE_ATTEMPTS,
        .peer = part < sizeof gw->partition_peer ? gw->partition_peer[part] : -1,
        .retry_ms = type == cmq_StorageMsgType_STORAGE_MSG_SEND ? API_STORAGE_RETRY_MS : 0,
    };
    int rc = gw_call_client(c, gw->storage, type, body, len, &opts, on_storage, tag);
    if (rc != CMQ_OK)
        api_reply_err(c, cmq_error_from_status(rc), NULL);
}

/* Encodes `msg` as the request to send (and resend after a heal). */
static int set_request(struct gw_call *c, uint32_t type, const pb_msgdesc_t *fields, const void *msg)
{
    struct api_queue *q = queue_state(c);
    free(q->sreq);
    q->sreq = NULL;
    q->stype = type;
    int rc = rpc_pb_encode(fields, msg, &q->sreq, &q->sreq_len);
    if (rc != CMQ_OK) {
        api_reply_err(c, rc == CMQ_ETOOBIG ? CMQERR_REQUEST_TOO_BIG : CMQERR_INTERNAL, NULL);
        return -1;
    }
    return 0;
}

enum { TAG_REQUEST = 0, TAG_HEAL = 1 };

static void send_create(struct gw_call *c, int tag)
{
    struct api_queue *q = queue_state(c);
    cmq_StorageCreateQueueRequest r = cmq_StorageCreateQueueRequest_init_zero;
    r.queue_id = q->queue_num;
    snprintf(r.name, sizeof r.name, "%s", q->qi.name);
    r.has_attributes = true;
    storage_attrs(&q->qi, &r.attributes);
    r.create_time_s = q->qi.create_time;
    r.partition_id = q->qi.partition_id;
    uint8_t *buf;
    size_t len;
    if (rpc_pb_encode(cmq_StorageCreateQueueRequest_fields, &r, &buf, &len) != CMQ_OK) {
        api_reply_err(c, CMQERR_INTERNAL, NULL);
        return;
    }
    storage_send(c, cmq_StorageMsgType_STORAGE_MSG_CREATE_QUEUE, buf, len, tag);
    free(buf);
}

/* ---------- answers per action ---------- */

/* Walks a ReceiveReply without copying bodies (they are nanopb callbacks). */
static int parse_received(const uint8_t *buf, size_t len, struct api_received *out, size_t max, size_t *n)
{
    pb_istream_t is = pb_istream_from_buffer(buf, len);
    pb_wire_type_t wt;
    uint32_t tag;
    bool eof;
    *n = 0;
    while (pb_decode_tag(&is, &wt, &tag, &eof)) {
        if (tag != 1 || wt != PB_WT_STRING) {
            if (!pb_skip_field(&is, wt))
                return CMQ_ECORRUPT;
            continue;
        }
        pb_istream_t sub;
        if (*n == max || !pb_make_string_substream(&is, &sub))
            return CMQ_ECORRUPT;
        struct api_received *r = &out[(*n)++];
        memset(r, 0, sizeof *r);
        while (pb_decode_tag(&sub, &wt, &tag, &eof)) {
            uint64_t v = 0;
            if (tag == 2 && wt == PB_WT_STRING) {
                uint32_t blen;
                if (!pb_decode_varint32(&sub, &blen) || blen > sub.bytes_left)
                    return CMQ_ECORRUPT;
                r->body = sub.state;
                r->body_len = blen;
                if (!pb_read(&sub, NULL, blen))
                    return CMQ_ECORRUPT;
                continue;
            }
            if (tag == 8 && wt == PB_WT_STRING) {
                pb_istream_t o;
                cmq_DeadLetterOrigin og = cmq_DeadLetterOrigin_init_zero;
                if (!pb_make_string_substream(&sub, &o) ||
                    !pb_decode(&o, cmq_DeadLetterOrigin_fields, &og) ||
                    !pb_close_string_substream(&sub, &o))
                    return CMQ_ECORRUPT;
                r->has_origin = true;
                snprintf(r->origin_queue, sizeof r->origin_queue, "%s", og.queue_name);
                r->origin_msg_id = og.msg_id;
                r->origin_enqueue_ms = og.enqueue_time_ms;
                r->origin_first_ms = og.first_dequeue_time_ms;
                r->origin_count = og.dequeue_count;
                r->origin_reason = og.reason;
                continue;
            }
            if (wt != PB_WT_VARINT) {
                if (!pb_skip_field(&sub, wt))
                    return CMQ_ECORRUPT;
                continue;
            }
            if (!pb_decode_varint(&sub, &v))
                return CMQ_ECORRUPT;
            switch (tag) {
            case 1: r->msg_id = v; break;
            case 3: r->handle = v; break;
            case 4: r->enqueue_ms = v; break;
            case 5: r->first_ms = v; break;
            case 6: r->next_ms = v; break;
            case 7: r->count = (uint32_t)v; break;
            default: break;
            }
        }
        if (!pb_close_string_substream(&is, &sub))
            return CMQ_ECORRUPT;
    }
    return eof ? CMQ_OK : CMQ_ECORRUPT;
}

static void write_received(struct json *j, const struct api_received *r)
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
size_t api_received_json_cap(const struct api_received *rs, size_t n)
{
    size_t cap = 4096;
    for (size_t i = 0; i < n; i++)
        cap += 6 * rs[i].body_len + 1024;
    return cap;
}

static enum cmq_err storage_error(enum cmq_action action, int status)
{
    switch (status) {
    case CMQ_ENOTFOUND: return CMQERR_QUEUE_NOT_EXIST;
    case CMQ_EEMPTY: return CMQERR_NO_MESSAGE;
    case CMQ_ETOOBIG: return CMQERR_MSG_TOO_BIG;
    case CMQ_ESTALE: return CMQERR_RECEIPT_HANDLE_INVALID;
    case CMQ_ELIMIT:
        return action == CMQ_ACTION_RECEIVE_MESSAGE || action == CMQ_ACTION_BATCH_RECEIVE_MESSAGE
                   ? CMQERR_TOO_MANY_UNACKED : CMQERR_HEAP_FULL;
    case CMQ_EDENIED: return action == CMQ_ACTION_REWIND_QUEUE ? CMQERR_REWIND_DISABLED
                                                                : CMQERR_NO_CAM_AUTH;
    case CMQ_EINVAL: return action == CMQ_ACTION_REWIND_QUEUE ? CMQERR_REWIND_TIME
                                                               : CMQERR_INVALID_REQUEST;
    default: return cmq_error_from_status(status);
    }
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
        api_reply_err(c, storage_error(a->action, statuses[0]), NULL);
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
    for (size_t i = 0; i < n; i++)
        if (statuses[i] != CMQ_OK)
            cmq_error_item(j, storage_error(a->action, statuses[i]), q->handles[i].val,
                           q->handles[i].len);
    json_arr_end(j);
    json_obj_end(j);
    api_respond_json(c, j);
    json_destroy(j);
}

static void answer(struct gw_call *c, const struct rpc_msg *msg)
{
    struct api_call *a = gw_call_data(c);
    struct api_queue *q = a->queue;
    struct json *j;
    switch (a->action) {
    case CMQ_ACTION_SEND_MESSAGE:
    case CMQ_ACTION_BATCH_SEND_MESSAGE: {
        cmq_SendReply r = cmq_SendReply_init_zero;
        if (rpc_pb_decode(cmq_SendReply_fields, &r, msg->body, msg->body_len) != CMQ_OK ||
            r.msg_ids_count == 0) {
            api_reply_err(c, CMQERR_SEND_FAILED, NULL);
            return;
        }
        answer_send(c, r.msg_ids, r.msg_ids_count);
        return;
    }
    case CMQ_ACTION_RECEIVE_MESSAGE:
    case CMQ_ACTION_BATCH_RECEIVE_MESSAGE: {
        struct api_received rs[CMQ_BATCH_MAX];
        size_t n;
        if (parse_received(msg->body, msg->body_len, rs, CMQ_BATCH_MAX, &n) != CMQ_OK || n == 0) {
            api_reply_err(c, n == 0 ? CMQERR_NO_MESSAGE : CMQERR_RECEIVE_FAILED, NULL);
            return;
        }
        if (!(j = api_begin_ok_cap(c, api_received_json_cap(rs, n))))
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
        return;
    }
    case CMQ_ACTION_DELETE_MESSAGE:
    case CMQ_ACTION_BATCH_DELETE_MESSAGE: {
        cmq_DeleteReply r = cmq_DeleteReply_init_zero;
        if (rpc_pb_decode(cmq_DeleteReply_fields, &r, msg->body, msg->body_len) != CMQ_OK ||
            r.statuses_count != q->n_handles) {
            api_reply_err(c, CMQERR_DELETE_FAILED, NULL);
            return;
        }
        answer_delete(c, r.statuses, r.statuses_count);
        return;
    }
    case CMQ_ACTION_GET_QUEUE_ATTRIBUTES: {
        cmq_QueueStatsReply r = cmq_QueueStatsReply_init_zero;
        if (rpc_pb_decode(cmq_QueueStatsReply_fields, &r, msg->body, msg->body_len) != CMQ_OK) {
            api_reply_err(c, CMQERR_GET_QUEUE_ATTRS_FAILED, NULL);
            return;
        }
        const cmq_QueueInfo *qi = &q->qi;
        if (!(j = api_begin_ok(c)))
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
        return;
    }
    case CMQ_ACTION_DESCRIBE_MESSAGE_TRACE: {
        cmq_TraceReply *r = calloc(1, sizeof *r);
        cmq_TraceRequest tr = cmq_TraceRequest_init_zero;
        if (!r || rpc_pb_decode(cmq_TraceReply_fields, r, msg->body, msg->body_len) != CMQ_OK ||
            rpc_pb_decode(cmq_TraceRequest_fields, &tr, q->sreq, q->sreq_len) != CMQ_OK)
            api_reply_err(c, CMQERR_INTERNAL, NULL);
        else
            api_trace_answer(c, tr.msg_id, r);
        free(r);
        return;
    }
    default:
        api_reply_err(c, CMQERR_OK, NULL);
    }
}

static void on_storage(struct gw_call *c, int tag, int status, const struct rpc_msg *msg)
{
    if (gw_call_gone(c))
        return;
    struct api_call *a = gw_call_data(c);
    struct gateway *gw = gw_call_gateway(c);
    struct api_queue *q = a->queue;
    if (status == CMQ_OK && q->qi.partition_id < sizeof gw->partition_peer)
        gw->partition_peer[q->qi.partition_id] = (signed char)gw_call_last_peer(c);
    if (tag == TAG_HEAL) {
        if (status != CMQ_OK && status != CMQ_EEXIST) {
            api_reply_err(c, storage_error(a->action, status), NULL);
            return;
        }
        log_info("queue_healed", "queue=%s queue_num=%llu partition=%u", q->qi.name,
                 (unsigned long long)q->queue_num, q->qi.partition_id);
        /* the node that answered the create leads the partition: ask it */
        if (q->qi.partition_id < sizeof gw->partition_peer)
            gw->partition_peer[q->qi.partition_id] = (signed char)gw_call_last_peer(c);
        storage_send(c, q->stype, q->sreq, q->sreq_len, TAG_REQUEST);
        return;
    }
    /* "Not here" (ENOTLEADER after every replica was tried: none of them
     * serves the queue right now) or "no such queue" from one node is never
     * a 4440 by itself: the create, addressed to the queue's partition,
     * decides (EEXIST: it exists; then the request goes to the node that
     * answered), once per request. */
    if ((status == CMQ_ENOTFOUND || status == CMQ_ENOTLEADER) && !q->healed &&
        q->stype != cmq_StorageMsgType_STORAGE_MSG_DROP_QUEUE) {
        q->healed = 1;
        send_create(c, TAG_HEAL);
        return;
    }
    if (q->ok) { /* the storage half of create / set / delete */
        int fine = status == CMQ_OK || (q->meta_type == cmq_MetaMsgType_META_MSG_QUEUE_CREATE &&
                                        status == CMQ_EEXIST) ||
                   (q->meta_type == cmq_MetaMsgType_META_MSG_QUEUE_DELETE && status == CMQ_ENOTFOUND);
        if (!fine && q->meta_type == cmq_MetaMsgType_META_MSG_QUEUE_SET) {
            api_reply_err(c, CMQERR_SET_QUEUE_ATTRS_FAILED, NULL);
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
        return;
    }
    if (status != CMQ_OK) {
        api_reply_err(c, storage_error(a->action, status), NULL);
        return;
    }
    answer(c, msg);
}

/* ---------- building the storage request ---------- */

bool api_encode_body_ref(pb_ostream_t *os, const pb_field_t *field, void *const *arg)
{
    const struct api_body_ref *b = *arg;
    return pb_encode_tag_for_field(os, field) && pb_encode_string(os, (const uint8_t *)b->data, b->len);
}

int api_read_bodies(struct gw_call *c, bool single, int64_t max_msg_size,
                    struct param_value bodies[CMQ_BATCH_MAX], size_t *n, size_t *total)
{
    struct api_call *a = gw_call_data(c);
    struct cmq_fault f = {0};
    int rc;
    *n = 0;
    *total = 0;
    if (single) {
        const char *v;
        size_t len;
        rc = params_get_str(a->params, "msgBody", SIZE_MAX, &v, &len, &f);
        if (rc == CMQ_ENOTFOUND) {
            api_reply_err(c, CMQERR_MSG_BODY_EMPTY, NULL);
            return -1;
        }
        if (rc != CMQ_OK) {
            api_reply_fault(c, &f);
            return -1;
        }
        bodies[(*n)++] = (struct param_value){v, len};
    } else if ((rc = params_get_list(a->params, "msgBody", CMQ_BATCH_MAX, 0, bodies, n, &f)) !=
               CMQ_OK) {
        api_reply_fault(c, &f);
        return -1;
    }
    for (size_t i = 0; i < *n; i++) {
        if (bodies[i].len == 0) {
            api_reply_err(c, CMQERR_MSG_BODY_EMPTY, NULL);
            return -1;
        }
        if ((int64_t)bodies[i].len > max_msg_size) {
            api_reply_err(c, CMQERR_MSG_TOO_BIG, NULL);
            return -1;
        }
        *total += bodies[i].len;
    }
    if (*total > CMQ_BATCH_BYTES_MAX) {
        api_reply_err(c, CMQERR_BATCH_TOO_BIG, NULL);
        return -1;
    }
    return 0;
}

static int build_send(struct gw_call *c)
{
    struct api_call *a = gw_call_data(c);
    struct api_queue *q = a->queue;
    struct cmq_fault f = {0};
    struct param_value bodies[CMQ_BATCH_MAX];
    size_t n, total;
    if (api_read_bodies(c, a->action == CMQ_ACTION_SEND_MESSAGE, q->qi.max_msg_size, bodies, &n,
                        &total) != 0)
        return -1;
    int64_t delay = 0;
    int rc = params_get_int(a->params, "delaySeconds", INT64_MIN, INT64_MAX, &delay, &f);
    if (rc == CMQ_EINVAL) {
        api_reply_fault(c, &f);
        return -1;
    }
    if (!cmq_delay_ok(delay, gw_call_gateway(c)->cfg.max_delay_s)) {
        api_reply_err(c, CMQERR_DELAY_RANGE, NULL);
        return -1;
    }
    cmq_SendRequest r = cmq_SendRequest_init_zero;
    struct api_body_ref refs[CMQ_BATCH_MAX];
    r.queue_id = q->queue_num;
    for (size_t i = 0; i < n; i++) {
        refs[i] = (struct api_body_ref){bodies[i].val, bodies[i].len};
        r.messages[i].delay_seconds = (uint32_t)delay;
        r.messages[i].dedup_key = api_dedup_key(); /* the same on every resend */
        api_client_addr(c, r.messages[i].client_addr, sizeof r.messages[i].client_addr);
        r.messages[i].body.funcs.encode = api_encode_body_ref;
        r.messages[i].body.arg = &refs[i];
        r.messages_count = PB_COUNT(r.messages, i + 1);
    }
    q->n_msgs = (uint32_t)n;
    q->msg_bytes = total;
    return set_request(c, cmq_StorageMsgType_STORAGE_MSG_SEND, cmq_SendRequest_fields, &r);
}

static int build_receive(struct gw_call *c)
{
    struct api_call *a = gw_call_data(c);
    struct api_queue *q = a->queue;
    struct cmq_fault f = {0};
    cmq_ReceiveRequest r = cmq_ReceiveRequest_init_zero;
    r.queue_id = q->queue_num;
    r.count = 1;
    api_client_addr(c, r.consumer_addr, sizeof r.consumer_addr);
    if (a->action == CMQ_ACTION_BATCH_RECEIVE_MESSAGE) {
        int64_t num;
        if (params_get_int(a->params, "numOfMsg", 1, CMQ_BATCH_MAX, &num, &f) != CMQ_OK) {
            api_reply_fault(c, &f);
            return -1;
        }
        r.count = (uint32_t)num;
    }
    int64_t wait;
    int rc = params_get_int(a->params, "pollingWaitSeconds", INT64_MIN, INT64_MAX, &wait, &f);
    if (rc == CMQ_EINVAL) {
        api_reply_fault(c, &f);
        return -1;
    }
    if (rc == CMQ_OK) {
        if (wait < 0) {
            api_reply_err(c, CMQERR_PARAM_RANGE, "pollingWaitSeconds");
            return -1;
        }
        r.has_wait_seconds = true;
        r.wait_seconds = (uint32_t)(wait > CMQ_POLL_WAIT_S_MAX ? CMQ_POLL_WAIT_S_MAX : wait);
    } else {
        wait = q->qi.polling_wait_seconds;
    }
    if (wait > CMQ_POLL_WAIT_S_MAX)
        wait = CMQ_POLL_WAIT_S_MAX;
    q->timeout_ms = (int)(wait * 1000) + STORAGE_TIMEOUT_MS;
    if (wait > 0 && !q->long_poll) {
        q->long_poll = 1;
        metrics_add(&gw_call_gateway(c)->metrics.long_polls, 1);
    }
    return set_request(c, cmq_StorageMsgType_STORAGE_MSG_RECEIVE, cmq_ReceiveRequest_fields, &r);
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

static int build_delete(struct gw_call *c)
{
    struct api_call *a = gw_call_data(c);
    struct api_queue *q = a->queue;
    struct cmq_fault f = {0};
    cmq_DeleteRequest r = cmq_DeleteRequest_init_zero;
    r.queue_id = q->queue_num;
    if (a->action == CMQ_ACTION_DELETE_MESSAGE) {
        const char *v;
        size_t len;
        if (params_get_str(a->params, "receiptHandle", 64, &v, &len, &f) != CMQ_OK) {
            api_reply_fault(c, &f);
            return -1;
        }
        q->handles[0] = (struct param_value){v, len};
        q->n_handles = 1;
    } else if (params_get_list(a->params, "receiptHandle", CMQ_BATCH_MAX, 0, q->handles,
                               &q->n_handles, &f) != CMQ_OK) {
        api_reply_fault(c, &f);
        return -1;
    }
    for (size_t i = 0; i < q->n_handles; i++) {
        if (parse_handle(q->handles[i].val, q->handles[i].len, &r.receipt_handles[i]) != 0) {
            api_reply_err(c, CMQERR_RECEIPT_HANDLE_FORMAT, NULL);
            return -1;
        }
        r.receipt_handles_count = PB_COUNT(r.receipt_handles, i + 1);
    }
    q->n_msgs = (uint32_t)q->n_handles;
    q->msg_bytes = 0;
    return set_request(c, cmq_StorageMsgType_STORAGE_MSG_DELETE, cmq_DeleteRequest_fields, &r);
}

static int build_rewind(struct gw_call *c)
{
    struct api_call *a = gw_call_data(c);
    struct cmq_fault f = {0};
    int64_t t;
    if (params_get_int(a->params, "startConsumeTime", 0, INT64_MAX, &t, &f) != CMQ_OK) {
        api_reply_fault(c, &f);
        return -1;
    }
    cmq_RewindRequest r = cmq_RewindRequest_init_zero;
    r.queue_id = a->queue->queue_num;
    r.start_consume_time_s = (uint64_t)t;
    return set_request(c, cmq_StorageMsgType_STORAGE_MSG_REWIND, cmq_RewindRequest_fields, &r);
}

static int build_stats(struct gw_call *c)
{
    cmq_QueueStatsRequest r = cmq_QueueStatsRequest_init_zero;
    r.queue_id = queue_state(c)->queue_num;
    return set_request(c, cmq_StorageMsgType_STORAGE_MSG_QUEUE_STATS, cmq_QueueStatsRequest_fields, &r);
}

/* ---------- send and delete coalescing ----------
 *
 * DESIGN §3: concurrent sends to one partition become one append.  Sends
 * that reach this point during one turn of the event loop are grouped per
 * queue; at the end of the turn (api_msg_flush) each group goes to the
 * partition leader as ONE SendRequest, hence one Raft entry, and each caller
 * gets its slice of the returned msg ids (storage answers them in request
 * order).  Grouping is per queue, not per partition, on purpose: a Send
 * entry then stays a plain single-queue SendRequest, so the log format, the
 * state machine and its scan are unchanged, and the msgId layout (4 slot
 * bits: 16 messages per entry) bounds a group to 16 messages (and 1 MiB of
 * bodies, QSM_BATCH_BYTES_MAX); a full group is sent at once.  Nothing waits
 * for a timer: with one request per turn a send goes out alone, as before.
 *
 * Per-caller outcomes stay exactly those of an uncoalesced send: a group is
 * all-or-nothing for storage, so when the leader refuses it with a status
 * that may depend on one member (CMQ_EINVAL, CMQ_ETOOBIG, CMQ_ELIMIT: heap
 * full, CMQ_ENOTFOUND: heal), nothing was stored and every member is sent
 * again on its own.  Any other failure (timeout, unavailable) is every
 * member's answer, as it would have been for each alone.
 *
 * Deletes to one queue are grouped the same way (one DeleteRequest of at most
 * 16 handles, one Raft entry): storage already answers a status per handle,
 * so each caller gets its own slice; no delete outcome depends on another
 * handle of the request. */

struct send_batch {
    uint32_t type;          /* STORAGE_MSG_SEND or STORAGE_MSG_DELETE */
    uint64_t queue_num;
    uint32_t partition;
    int n;
    uint32_t msgs;
    size_t bytes;
    struct gw_call *members[CMQ_BATCH_MAX];
    uint8_t first[CMQ_BATCH_MAX];
    uint8_t count[CMQ_BATCH_MAX];
};

/* The member's SendRequest bytes without field 1 (queue_id): its messages. */
static int append_items(pb_ostream_t *os, const uint8_t *req, size_t len)
{
    pb_istream_t is = pb_istream_from_buffer(req, len);
    pb_wire_type_t wt;
    uint32_t tag;
    bool eof;
    while (pb_decode_tag(&is, &wt, &tag, &eof)) {
        const uint8_t *start = (const uint8_t *)is.state;
        if (!pb_skip_field(&is, wt))
            return -1;
        if (tag == 1)
            continue;
        /* re-emit the tag, then the field's bytes as they were */
        if (!pb_encode_tag(os, wt, tag) ||
            !pb_write(os, start, (size_t)((const uint8_t *)is.state - start)))
            return -1;
    }
    return eof ? 0 : -1;
}

static void on_batch_reply(void *arg, const struct rpc_result *r)
{
    struct send_batch *b = arg;
    int sends = b->type == cmq_StorageMsgType_STORAGE_MSG_SEND;
    cmq_SendReply rep = cmq_SendReply_init_zero;
    cmq_DeleteReply drep = cmq_DeleteReply_init_zero;
    int st = r->status;
    if (st == CMQ_OK &&
        (!r->msg ||
         (sends ? rpc_pb_decode(cmq_SendReply_fields, &rep, r->msg->body, r->msg->body_len) !=
                          CMQ_OK ||
                      rep.msg_ids_count != b->msgs
                : rpc_pb_decode(cmq_DeleteReply_fields, &drep, r->msg->body, r->msg->body_len) !=
                          CMQ_OK ||
                      drep.statuses_count != b->msgs)))
        st = CMQ_ECORRUPT;
    int alone = st == CMQ_EINVAL || st == CMQ_ETOOBIG || st == CMQ_ELIMIT || st == CMQ_ENOTFOUND;
    for (int i = 0; i < b->n; i++) {
        struct gw_call *c = b->members[i];
        if (!gw_call_gone(c)) {
            struct gateway *gw = gw_call_gateway(c);
            struct api_call *a = gw_call_data(c);
            struct api_queue *q = a->queue;
            if (st == CMQ_OK) {
                if (b->partition < sizeof gw->partition_peer)
                    gw->partition_peer[b->partition] = (signed char)r->peer;
                if (sends)
                    answer_send(c, rep.msg_ids + b->first[i], b->count[i]);
                else
                    answer_delete(c, drep.statuses + b->first[i], b->count[i]);
            } else if (alone) {
                storage_send(c, q->stype, q->sreq, q->sreq_len, TAG_REQUEST);
            } else if (st == CMQ_ECORRUPT) {
                api_reply_err(c, sends ? CMQERR_SEND_FAILED : CMQERR_DELETE_FAILED, NULL);
            } else {
                api_reply_err(c, storage_error(a->action, st), NULL);
            }
        }
        gw_call_release(c);
    }
    free(b);
}

/* The merged DeleteRequest: the members' handles in member order. */
static int merge_deletes(const struct send_batch *b, uint8_t **out, size_t *len)
{
    cmq_DeleteRequest m = cmq_DeleteRequest_init_zero;
    m.queue_id = b->queue_num;
    for (int i = 0; i < b->n; i++) {
        const struct api_queue *q = ((struct api_call *)gw_call_data(b->members[i]))->queue;
        cmq_DeleteRequest one = cmq_DeleteRequest_init_zero;
        if (rpc_pb_decode(cmq_DeleteRequest_fields, &one, q->sreq, q->sreq_len) != CMQ_OK ||
            m.receipt_handles_count + one.receipt_handles_count > CMQ_BATCH_MAX)
            return CMQ_EINTERNAL;
        for (pb_size_t k = 0; k < one.receipt_handles_count; k++)
            m.receipt_handles[m.receipt_handles_count++] = one.receipt_handles[k];
    }
    return rpc_pb_encode(cmq_DeleteRequest_fields, &m, out, len);
}

static void batch_send(struct gateway *gw, struct send_batch *b)
{
    if (b->n == 1) { /* nothing to merge: the ordinary path */
        struct gw_call *c = b->members[0];
        struct api_queue *q = ((struct api_call *)gw_call_data(c))->queue;
        if (!gw_call_gone(c))
            storage_send(c, q->stype, q->sreq, q->sreq_len, TAG_REQUEST);
        gw_call_release(c);
        free(b);
        return;
    }
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = CMQ_OK;
    if (b->type == cmq_StorageMsgType_STORAGE_MSG_DELETE) {
        rc = merge_deletes(b, &buf, &len);
    } else {
        size_t cap = 16;
        for (int i = 0; i < b->n; i++)
            cap += ((struct api_call *)gw_call_data(b->members[i]))->queue->sreq_len;
        buf = malloc(cap);
        rc = buf ? CMQ_OK : CMQ_ENOMEM;
        pb_ostream_t os = pb_ostream_from_buffer(buf, cap);
        if (rc == CMQ_OK && (!pb_encode_tag(&os, PB_WT_VARINT, 1) ||
                             !pb_encode_varint(&os, b->queue_num)))
            rc = CMQ_EINTERNAL;
        for (int i = 0; rc == CMQ_OK && i < b->n; i++) {
            struct api_queue *q = ((struct api_call *)gw_call_data(b->members[i]))->queue;
            if (append_items(&os, q->sreq, q->sreq_len) != 0)
                rc = CMQ_EINTERNAL;
        }
        len = os.bytes_written;
    }
    if (rc == CMQ_OK) {
        struct rpc_opts opts = {
            .timeout_ms = STORAGE_TIMEOUT_MS,
            .attempts = STORAGE_ATTEMPTS,
            .peer = b->partition < sizeof gw->partition_peer ? gw->partition_peer[b->partition] : -1,
            .retry_ms = b->type == cmq_StorageMsgType_STORAGE_MSG_SEND ? API_STORAGE_RETRY_MS : 0,
        };
        rc = rpc_client_call(gw->storage, b->type, buf, len, &opts, on_batch_reply, b);
    }
    free(buf);
    if (rc == CMQ_OK) {
        if (b->type == cmq_StorageMsgType_STORAGE_MSG_SEND) {
            metrics_add(&gw->metrics.sends_coalesced, (uint64_t)b->n);
            metrics_add(&gw->metrics.send_appends, 1);
        } else {
            metrics_add(&gw->metrics.deletes_coalesced, (uint64_t)b->n);
            metrics_add(&gw->metrics.delete_appends, 1);
        }
        return;
    }
    for (int i = 0; i < b->n; i++) {
        api_reply_err(b->members[i], cmq_error_from_status(rc), NULL);
        gw_call_release(b->members[i]);
    }
    free(b);
}

static void coalesce_add(struct gw_call *c)
{
    struct gateway *gw = gw_call_gateway(c);
    struct api_queue *q = ((struct api_call *)gw_call_data(c))->queue;
    struct send_batch *b = NULL;
    int slot = -1;
    for (int i = 0; i < gw->n_coalesce; i++)
        if (gw->coalesce[i]->queue_num == q->queue_num && gw->coalesce[i]->type == q->stype) {
            slot = i;
            break;
        }
    if (slot >= 0) {
        b = gw->coalesce[slot];
        if (b->msgs + q->n_msgs > CMQ_BATCH_MAX || b->bytes + q->msg_bytes > CMQ_BATCH_BYTES_MAX) {
            gw->coalesce[slot] = gw->coalesce[--gw->n_coalesce];
            batch_send(gw, b); /* full: goes now, a new group starts */
            b = NULL;
        }
    }
    if (!b) {
        if (gw->n_coalesce == GW_COALESCE_QUEUES)
            api_msg_flush(gw);
        b = calloc(1, sizeof *b);
        if (!b) {
            storage_send(c, q->stype, q->sreq, q->sreq_len, TAG_REQUEST);
            return;
        }
        b->type = q->stype;
        b->queue_num = q->queue_num;
        b->partition = q->qi.partition_id;
        gw->coalesce[gw->n_coalesce++] = b;
    }
    gw_call_hold(c);
    b->members[b->n] = c;
    b->first[b->n] = (uint8_t)b->msgs;
    b->count[b->n] = (uint8_t)q->n_msgs;
    b->n++;
    b->msgs += q->n_msgs;
    b->bytes += q->msg_bytes;
    if (b->msgs == CMQ_BATCH_MAX) {
        for (int i = 0; i < gw->n_coalesce; i++)
            if (gw->coalesce[i] == b) {
                gw->coalesce[i] = gw->coalesce[--gw->n_coalesce];
                break;
            }
        batch_send(gw, b);
    }
}

void api_msg_flush(struct gateway *gw)
{
    while (gw->n_coalesce > 0)
        batch_send(gw, gw->coalesce[--gw->n_coalesce]);
}

/* Continues a message action once q->qi holds the queue's metadata. */
static void with_queue(struct gw_call *c)
{
    struct api_call *a = gw_call_data(c);
    struct api_queue *q = a->queue;
    q->queue_num = q->qi.num_id;
    if (q->queue_num && q->qi.partition_id)
        metrics_queue_seen(gw_call_gateway(c)->mqueues, q->queue_num, q->qi.appid,
                           q->qi.partition_id, q->qi.name);
    if (q->queue_num == 0 || q->qi.partition_id == 0) {
        log_warn("queue_unplaced", "queue=%s queue_id=%s partition=%u", q->qi.name,
                 q->qi.queue_id, q->qi.partition_id);
        api_reply_err(c, CMQERR_INTERNAL, NULL);
        return;
    }
    int rc;
    switch (a->action) {
    case CMQ_ACTION_SEND_MESSAGE:
    case CMQ_ACTION_BATCH_SEND_MESSAGE: rc = build_send(c); break;
    case CMQ_ACTION_RECEIVE_MESSAGE:
    case CMQ_ACTION_BATCH_RECEIVE_MESSAGE: rc = build_receive(c); break;
    case CMQ_ACTION_DELETE_MESSAGE:
    case CMQ_ACTION_BATCH_DELETE_MESSAGE: rc = build_delete(c); break;
    case CMQ_ACTION_REWIND_QUEUE: rc = build_rewind(c); break;
    case CMQ_ACTION_GET_QUEUE_ATTRIBUTES: rc = build_stats(c); break;
    case CMQ_ACTION_DESCRIBE_MESSAGE_TRACE: { /* api_trace.c */
        cmq_TraceRequest tr = cmq_TraceRequest_init_zero;
        rc = api_trace_request(c, q->queue_num, q->qi.partition_id, &tr);
        if (rc == 0 && tr.msg_id == 0) {
            api_trace_answer(c, 0, NULL);
            return;
        }
        if (rc == 0)
            rc = set_request(c, cmq_StorageMsgType_STORAGE_MSG_TRACE, cmq_TraceRequest_fields, &tr);
        break;
    }
    default: api_reply_err(c, CMQERR_INTERNAL, NULL); return;
    }
    if (rc != 0)
        return;
    if ((q->stype == cmq_StorageMsgType_STORAGE_MSG_SEND ||
         q->stype == cmq_StorageMsgType_STORAGE_MSG_DELETE) &&
        gw_call_gateway(c)->cfg.send_coalesce)
        coalesce_add(c);
    else
        storage_send(c, q->stype, q->sreq, q->sreq_len, TAG_REQUEST);
}

static void on_queue_info(struct gw_call *c, int tag, int status, const struct rpc_msg *msg)
{
    (void)tag;
    if (gw_call_gone(c))
        return;
    struct api_queue *q = queue_state(c);
    if (status != CMQ_OK ||
        rpc_pb_decode(cmq_QueueInfo_fields, &q->qi, msg->body, msg->body_len) != CMQ_OK) {
        api_reply_backend_error(c, status, msg);
        return;
    }
    if (q->qi.partition_id)
        qcache_put(gw_call_gateway(c)->queues, &q->qi, clock_mono_ms());
    with_queue(c);
}

void api_do_queue_storage_action(struct gw_call *c)
{
    struct api_call *a = gw_call_data(c);
    struct api_queue *q = queue_state(c);
    if (!q) {
        api_reply_err(c, CMQERR_INTERNAL, NULL);
        return;
    }
    cmq_NameRequest r = cmq_NameRequest_init_zero;
    r.appid = a->key.appid;
    if (api_need_str(c, "queueName", r.name, sizeof r.name))
        return;
    /* GetQueueAttributes always asks metadata: its times and attributes are
     * what it reports. */
    if (a->action != CMQ_ACTION_GET_QUEUE_ATTRIBUTES &&
        qcache_get(gw_call_gateway(c)->queues, r.appid, r.name, clock_mono_ms(), &q->qi) == 0) {
        with_queue(c);
        return;
    }
    api_meta_call(c, cmq_MetaMsgType_META_MSG_QUEUE_GET, cmq_NameRequest_fields, &r, on_queue_info);
}

void api_storage_after_meta(struct gw_call *c, uint32_t meta_type, const void *qinfo, struct json *ok)
{
    struct api_queue *q = queue_state(c);
    if (!q) {
        json_destroy(ok);
        api_reply_err(c, CMQERR_INTERNAL, NULL);
        return;
    }
    q->qi = *(const cmq_QueueInfo *)qinfo;
    q->queue_num = q->qi.num_id;
    q->meta_type = meta_type;
    qcache_forget(gw_call_gateway(c)->queues, q->qi.appid, q->qi.name);
    q->ok = ok;
    q->healed = 1; /* this is the storage step itself: no heal loop */
    if (q->queue_num == 0 || q->qi.partition_id == 0) {
        /* Not placed yet (no storage partitions when it was created): storage
         * learns it on first use. */
        q->ok = NULL;
        api_respond_json(c, ok);
        json_destroy(ok);
        return;
    }
    if (meta_type == cmq_MetaMsgType_META_MSG_QUEUE_CREATE) {
        send_create(c, TAG_REQUEST);
        return;
    }
    int rc;
    if (meta_type == cmq_MetaMsgType_META_MSG_QUEUE_SET) {
        cmq_StorageSetQueueAttributesRequest r = cmq_StorageSetQueueAttributesRequest_init_zero;
        r.queue_id = q->queue_num;
        r.has_attributes = true;
        storage_attrs(&q->qi, &r.attributes);
        r.clear_dead_letter_policy = !q->qi.has_dead_letter_policy;
        rc = set_request(c, cmq_StorageMsgType_STORAGE_MSG_SET_QUEUE_ATTRIBUTES,
                         cmq_StorageSetQueueAttributesRequest_fields, &r);
    } else {
        cmq_StorageDropQueueRequest r = cmq_StorageDropQueueRequest_init_zero;
        r.queue_id = q->queue_num;
        rc = set_request(c, cmq_StorageMsgType_STORAGE_MSG_DROP_QUEUE,
                         cmq_StorageDropQueueRequest_fields, &r);
    }
    if (rc == 0)
        storage_send(c, q->stype, q->sreq, q->sreq_len, TAG_REQUEST);
}

/* ---------- shared with the TCP listener (services/gateway/tcp/) ---------- */

void api_storage_attrs(const cmq_QueueInfo *qi, cmq_StorageQueueAttributes *o) { storage_attrs(qi, o); }

int api_parse_received(const uint8_t *buf, size_t len, struct api_received *out, size_t max,
                       size_t *n)
{
    return parse_received(buf, len, out, max, n);
}

enum cmq_err api_storage_error(enum cmq_action action, int status) { return storage_error(action, status); }
