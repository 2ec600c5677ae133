/* api_publish.c: PublishMessage / BatchPublishMessage (spec §7.6, §7.7) and
 * the storage half of the subscription and topic actions, as a thin codec
 * over the gateway's back end (services/gateway/backend/backend.h).
 *
 * Publish: the back end's TopicInfo (partition, num_id, filterType,
 * maxMsgSize) -> checks of the spec's parameters -> the back end's publish
 * (one PublishRequest to the leader of the topic's partition, answered after
 * the entry is committed, with the heal of a stale subscription set: the
 * same for the TCP protocol).
 *
 * Sync: after every subscription change in metadata the topic's
 * subscription set is copied to storage (be_topic_sync).  Its failure does
 * not fail the metadata action the client asked for (the publish heal
 * repairs it), but it is logged.
 */
#include "api_internal.h"
#include "api_publish.h"
#include "backend.h"

#include "cmq_limits.h"
#include "log.h"
#include "metadata.pb.h"
#include "names.h"
#include "status.h"
#include "storage.pb.h"
#include "pb_size.h"

#include <inttypes.h>
#include <pb_decode.h>
#include <pb_encode.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum step { STEP_DROP = 3, STEP_STATS = 4, STEP_TOPIC_STATS = 5, STEP_TRACE = 6 };

struct api_pub {
    cmq_TopicInfo ti;
    struct json *ok;         /* after a metadata action: the answer to send once synced */
    cmq_SubInfo si;          /* stats */
    uint64_t trace_msg_id;   /* trace */
    int step;                /* the storage step in flight (enum step) */
};

void api_publish_cleanup(struct api_call *a)
{
    struct api_pub *p = a->pub;
    if (!p)
        return;
    json_destroy(p->ok);
    free(p);
    a->pub = NULL;
}

static struct api_pub *pub_state(struct gw_call *c)
{
    struct api_call *a = gw_call_data(c);
    if (!a->pub)
        a->pub = calloc(1, sizeof *a->pub);
    return a->pub;
}

static void on_storage(void *arg, int status, const struct rpc_msg *msg);

/* A storage step of this call (stats, drop, trace) routed by the back end. */
static void storage_send(struct gw_call *c, uint32_t type, const uint8_t *body, size_t len, int step)
{
    struct api_pub *p = pub_state(c);
    p->step = step;
    gw_call_hold(c);
    int rc = be_storage_call(&gw_call_gateway(c)->be, p->ti.partition_id, type, body, len, 0, 0,
                             on_storage, c);
    if (rc != CMQ_OK) {
        gw_call_release(c);
        api_reply_err(c, cmq_error_from_status(rc), NULL);
    }
}

/* ---------- sync ---------- */

static void finish_meta_step(struct gw_call *c)
{
    struct api_pub *p = pub_state(c);
    struct json *j = p->ok;
    p->ok = NULL;
    api_respond_json(c, j);
    json_destroy(j);
}

static void on_synced(void *arg, int status)
{
    struct gw_call *c = arg;
    (void)status; /* logged by the back end; the metadata action succeeded, publish heals later */
    if (!gw_call_gone(c))
        finish_meta_step(c);
    gw_call_release(c);
}

static void on_topic_for_sync(void *arg, const cmq_TopicInfo *ti, const struct be_fault *f)
{
    struct gw_call *c = arg;
    (void)f;
    if (gw_call_gone(c)) {
        gw_call_release(c);
        return;
    }
    if (!ti) {
        log_warn("topic_sync_failed", "topic=? reason=\"topic lookup\"");
        finish_meta_step(c);
        gw_call_release(c);
        return;
    }
    be_topic_sync(&gw_call_gateway(c)->be, ti, on_synced, c); /* keeps the hold */
}

void api_topic_sync_after_meta(struct gw_call *c, uint64_t appid, const char *topic_name,
                               struct json *ok)
{
    struct api_pub *p = pub_state(c);
    if (!p) {
        json_destroy(ok);
        api_reply_err(c, CMQERR_INTERNAL, NULL);
        return;
    }
    p->ok = ok;
    gw_call_hold(c);
    be_topic_get(&gw_call_gateway(c)->be, appid, topic_name, on_topic_for_sync, c);
}

void api_topic_drop_after_meta(struct gw_call *c, const void *topic_info, struct json *ok)
{
    struct api_pub *p = pub_state(c);
    if (!p) {
        json_destroy(ok);
        api_reply_err(c, CMQERR_INTERNAL, NULL);
        return;
    }
    p->ti = *(const cmq_TopicInfo *)topic_info;
    p->ok = ok;
    if (p->ti.num_id == 0 || p->ti.partition_id == 0) {
        finish_meta_step(c);
        return;
    }
    cmq_TopicDropRequest r = cmq_TopicDropRequest_init_zero;
    r.topic_id = p->ti.num_id;
    uint8_t *buf;
    size_t len;
    if (rpc_pb_encode(cmq_TopicDropRequest_fields, &r, &buf, &len) != CMQ_OK) {
        finish_meta_step(c);
        return;
    }
    storage_send(c, cmq_StorageMsgType_STORAGE_MSG_TOPIC_DROP, buf, len, STEP_DROP);
    free(buf);
}

/* ---------- GetTopicAttributes / GetSubscriptionAttributes answers ---------- */

void api_write_topic_attrs(struct gw_call *c, const void *topic_info, uint64_t msg_count)
{
    const cmq_TopicInfo t = *(const cmq_TopicInfo *)topic_info;
    struct json *j = api_begin_ok(c);
    if (!j)
        return;
    json_kv_int(j, "msgCount", (int64_t)msg_count);
    json_kv_int(j, "maxMsgSize", t.max_msg_size);
    json_kv_int(j, "msgRetentionSeconds", t.msg_retention_seconds);
    json_kv_int(j, "createTime", (int64_t)t.create_time);
    json_kv_int(j, "lastModifyTime", (int64_t)t.last_modify_time);
    json_kv_int(j, "filterType", t.filter_type);
    json_kv_int(j, "LoggingEnabled", 0);
    api_finish_ok(c, j);
}

static void write_str_array(struct json *j, const char *key, const char *vals, size_t stride,
                            pb_size_t n)
{
    json_key(j, key);
    json_arr_begin(j);
    for (pb_size_t i = 0; i < n; i++)
        json_cstr(j, vals + i * stride);
    json_arr_end(j);
}

/* Extension keys (docs/http-api.md): the delivery state of the
 * subscription as its topic's leader holds it. */
void api_write_sub_attrs(struct gw_call *c, const void *sub_info, const void *stats)
{
    const cmq_SubInfo *sp = sub_info;
    const cmq_SubInfo s = *sp;
    cmq_TopicStatsReply st = cmq_TopicStatsReply_init_zero;
    if (stats)
        st = *(const cmq_TopicStatsReply *)stats;
    struct json *j = api_begin_ok(c);
    if (!j)
        return;
    char owner[24];
    snprintf(owner, sizeof owner, "%" PRIu64, s.appid);
    json_kv_cstr(j, "topicOwner", owner);
    json_kv_int(j, "msgCount", (int64_t)st.sub_msg_count);
    json_kv_int(j, "retryingMsgNum", st.retrying);
    json_kv_int(j, "maxAttempts", st.max_attempts);
    json_kv_int(j, "nextAttemptTime", (int64_t)(st.next_attempt_ms / 1000));
    json_kv_int(j, "deliveredMsgNum", (int64_t)st.delivered);
    json_kv_int(j, "droppedMsgNum", (int64_t)st.dropped);
    json_kv_int(j, "deadLetteredMsgNum", (int64_t)st.dead_lettered);
    json_kv_cstr(j, "protocol", s.protocol);
    json_kv_cstr(j, "protocal", s.protocol);
    json_kv_cstr(j, "endpoint", s.endpoint);
    json_kv_cstr(j, "notifyStrategy", s.notify_strategy);
    json_kv_cstr(j, "notifyContentFormat", s.notify_content_format);
    write_str_array(j, "filterTag", &s.filter_tags[0][0], sizeof s.filter_tags[0],
                    s.filter_tags_count);
    write_str_array(j, "filterTags", &s.filter_tags[0][0], sizeof s.filter_tags[0],
                    s.filter_tags_count);
    write_str_array(j, "bindingKey", &s.binding_keys[0][0], sizeof s.binding_keys[0],
                    s.binding_keys_count);
    json_kv_cstr(j, "deadLetterQueueName", s.dead_letter_queue);
    json_kv_int(j, "createTime", (int64_t)s.create_time);
    json_kv_int(j, "lastModifyTime", (int64_t)s.last_modify_time);
    api_finish_ok(c, j);
}

/* ---------- answers ---------- */

static void answer_stats(struct gw_call *c, int status, const struct rpc_msg *msg);

static void on_storage(void *arg, int status, const struct rpc_msg *msg)
{
    struct gw_call *c = arg;
    if (gw_call_gone(c)) {
        gw_call_release(c);
        return;
    }
    struct api_pub *p = pub_state(c);
    switch (p->step) {
    case STEP_DROP:
        if (status != CMQ_OK && status != CMQ_ENOTFOUND)
            log_warn("topic_drop_failed", "topic=%s status=%s note=\"storage keeps orphan state\"",
                     p->ti.name, status_name(status));
        finish_meta_step(c);
        break;
    case STEP_STATS: answer_stats(c, status, msg); break;
    case STEP_TRACE: {
        cmq_TraceReply *r = calloc(1, sizeof *r);
        if (status != CMQ_OK)
            api_reply_err(c, cmq_error_from_status(status), NULL);
        else if (!r || !msg || rpc_pb_decode(cmq_TraceReply_fields, r, msg->body, msg->body_len) != CMQ_OK)
            api_reply_err(c, CMQERR_INTERNAL, NULL);
        else
            api_trace_answer(c, p->trace_msg_id, r);
        free(r);
        break;
    }
    case STEP_TOPIC_STATS: {
        cmq_TopicStatsReply st = cmq_TopicStatsReply_init_zero;
        if (status != CMQ_OK || !msg ||
            rpc_pb_decode(cmq_TopicStatsReply_fields, &st, msg->body, msg->body_len) != CMQ_OK)
            st.msg_count = 0;
        api_write_topic_attrs(c, &p->ti, st.msg_count);
        break;
    }
    default: api_reply_err(c, CMQERR_INTERNAL, NULL); break;
    }
    gw_call_release(c);
}

static void on_published(void *arg, const struct be_result *r)
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
    struct json *j = api_begin_ok(c);
    if (j) {
        if (a->action == CMQ_ACTION_PUBLISH_MESSAGE) {
            json_kv_id(j, "msgId", r->ids[0]);
        } else {
            json_key(j, "msgList");
            json_arr_begin(j);
            for (size_t i = 0; i < r->n_ids; i++) {
                json_obj_begin(j);
                json_kv_id(j, "msgId", r->ids[i]);
                json_obj_end(j);
            }
            json_arr_end(j);
        }
        api_finish_ok(c, j);
    }
    gw_call_release(c);
}

/* ---------- PublishMessage / BatchPublishMessage ---------- */

static void do_publish(struct gw_call *c, const cmq_TopicInfo *ti)
{
    struct api_call *a = gw_call_data(c);
    struct cmq_fault f = {0};
    struct param_value bodies[CMQ_BATCH_MAX];
    size_t n, total;
    int rc;
    if (api_read_bodies(c, a->action == CMQ_ACTION_PUBLISH_MESSAGE, ti->max_msg_size, bodies, &n,
                        &total) != 0)
        return;
    /* msgTag.n: at most 5, each 1-16 characters (§7.6) */
    struct param_value tags[CMQ_TAGS_MAX + 1];
    size_t n_tags = 0;
    rc = params_get_list(a->params, "msgTag", CMQ_TAGS_MAX + 1, PARAMS_LIST_SKIP_EMPTY, tags,
                         &n_tags, &f);
    if (rc == CMQ_ELIMIT || (rc == CMQ_OK && n_tags > CMQ_TAGS_MAX)) {
        api_reply_err(c, CMQERR_MSG_TAG_TOO_MANY, NULL);
        return;
    }
    if (rc == CMQ_ENOTFOUND) {
        n_tags = 0;
    } else if (rc != CMQ_OK) {
        api_reply_fault(c, &f);
        return;
    }
    for (size_t i = 0; i < n_tags; i++)
        if (name_check_tag("msgTag", tags[i].val, tags[i].len, &f) != CMQ_OK) {
            api_reply_fault(c, &f);
            return;
        }
    /* routingKey: <= 64 bytes, <= 15 dots; required on a routing topic */
    char rk[CMQ_ROUTING_KEY_BYTES_MAX + 1] = "";
    const char *v;
    size_t len;
    rc = params_get_str(a->params, "routingKey", SIZE_MAX, &v, &len, &f);
    if (rc == CMQ_OK && len > 0) {
        if (name_check_routing_key("routingKey", v, len, &f) != CMQ_OK) {
            api_reply_fault(c, &f);
            return;
        }
        memcpy(rk, v, len);
        rk[len] = '\0';
    } else if (rc != CMQ_OK && rc != CMQ_ENOTFOUND) {
        api_reply_fault(c, &f);
        return;
    }
    if (ti->filter_type == 2 && rk[0] == '\0') {
        api_reply_err(c, CMQERR_ROUTING_KEY_MISSING, NULL);
        return;
    }
    char addr[64] = "";
    api_client_addr(c, addr, sizeof addr); /* ip:port, like SendMessage's (the trace) */
    struct be_text bt[CMQ_BATCH_MAX], tt[CMQ_TAGS_MAX];
    for (size_t i = 0; i < n; i++)
        bt[i] = (struct be_text){bodies[i].val, bodies[i].len};
    for (size_t i = 0; i < n_tags; i++)
        tt[i] = (struct be_text){tags[i].val, tags[i].len};
    gw_call_hold(c);
    be_publish(&gw_call_gateway(c)->be, a->action, ti, bt, n, tt, n_tags, rk, addr, on_published, c);
}

static void on_topic_info(void *arg, const cmq_TopicInfo *ti, const struct be_fault *f)
{
    struct gw_call *c = arg;
    if (!gw_call_gone(c)) {
        if (!ti)
            api_reply_be_fault(c, f);
        else
            do_publish(c, ti);
    }
    gw_call_release(c);
}

void api_do_publish(struct gw_call *c)
{
    struct api_call *a = gw_call_data(c);
    char name[130];
    if (api_need_str(c, "topicName", name, sizeof name))
        return;
    gw_call_hold(c);
    be_topic_get(&gw_call_gateway(c)->be, a->key.appid, name, on_topic_info, c);
}

/* ---------- GetSubscriptionAttributes: storage's counters ---------- */

static void answer_stats(struct gw_call *c, int status, const struct rpc_msg *msg)
{
    struct api_pub *p = pub_state(c);
    cmq_TopicStatsReply st = cmq_TopicStatsReply_init_zero;
    if (status != CMQ_OK ||
        rpc_pb_decode(cmq_TopicStatsReply_fields, &st, msg->body, msg->body_len) != CMQ_OK)
        memset(&st, 0, sizeof st); /* storage unreachable: the metadata part still answers */
    api_write_sub_attrs(c, &p->si, &st);
}

static void on_topic_for_stats(struct gw_call *c, int tag, int status, const struct rpc_msg *msg)
{
    (void)tag;
    if (gw_call_gone(c))
        return;
    struct api_pub *p = pub_state(c);
    cmq_TopicStatsRequest r = cmq_TopicStatsRequest_init_zero;
    uint8_t *buf;
    size_t len;
    if (status != CMQ_OK ||
        rpc_pb_decode(cmq_TopicInfo_fields, &p->ti, msg->body, msg->body_len) != CMQ_OK ||
        p->ti.num_id == 0) {
        api_write_sub_attrs(c, &p->si, NULL);
        return;
    }
    r.topic_id = p->ti.num_id;
    snprintf(r.sub_id, sizeof r.sub_id, "%s", p->si.subscription_id);
    if (rpc_pb_encode(cmq_TopicStatsRequest_fields, &r, &buf, &len) != CMQ_OK) {
        api_write_sub_attrs(c, &p->si, NULL);
        return;
    }
    storage_send(c, cmq_StorageMsgType_STORAGE_MSG_TOPIC_STATS, buf, len, STEP_STATS);
    free(buf);
}

void api_sub_stats(struct gw_call *c, const void *sub_info)
{
    struct api_pub *p = pub_state(c);
    if (!p) {
        api_reply_err(c, CMQERR_INTERNAL, NULL);
        return;
    }
    p->si = *(const cmq_SubInfo *)sub_info;
    cmq_NameRequest r = cmq_NameRequest_init_zero;
    r.appid = p->si.appid;
    snprintf(r.name, sizeof r.name, "%s", p->si.topic_name);
    api_meta_call(c, cmq_MetaMsgType_META_MSG_TOPIC_GET, cmq_NameRequest_fields, &r,
                  on_topic_for_stats);
}

void api_topic_stats(struct gw_call *c, const void *topic_info)
{
    struct api_pub *p = pub_state(c);
    if (!p) {
        api_reply_err(c, CMQERR_INTERNAL, NULL);
        return;
    }
    p->ti = *(const cmq_TopicInfo *)topic_info;
    cmq_TopicStatsRequest r = cmq_TopicStatsRequest_init_zero;
    r.topic_id = p->ti.num_id;
    uint8_t *buf;
    size_t len;
    if (p->ti.num_id == 0 || p->ti.partition_id == 0 ||
        rpc_pb_encode(cmq_TopicStatsRequest_fields, &r, &buf, &len) != CMQ_OK) {
        api_write_topic_attrs(c, &p->ti, 0);
        return;
    }
    storage_send(c, cmq_StorageMsgType_STORAGE_MSG_TOPIC_STATS, buf, len, STEP_TOPIC_STATS);
    free(buf);
}

/* ---------- DescribeMessageTrace with topicName (api_trace.c answers) ---------- */

static void on_topic_for_trace(struct gw_call *c, int tag, int status, const struct rpc_msg *msg)
{
    (void)tag;
    if (gw_call_gone(c))
        return;
    struct api_pub *p = pub_state(c);
    if (status != CMQ_OK ||
        rpc_pb_decode(cmq_TopicInfo_fields, &p->ti, msg->body, msg->body_len) != CMQ_OK) {
        api_reply_backend_error(c, status, msg);
        return;
    }
    cmq_TraceRequest tr = cmq_TraceRequest_init_zero;
    if (api_trace_request(c, 0, p->ti.partition_id, &tr) != 0)
        return; /* answered */
    if (tr.msg_id == 0 || p->ti.num_id == 0) {
        api_trace_answer(c, 0, NULL); /* another partition's id: not this topic's */
        return;
    }
    tr.topic_id = p->ti.num_id;
    p->trace_msg_id = tr.msg_id;
    uint8_t *buf;
    size_t len;
    if (rpc_pb_encode(cmq_TraceRequest_fields, &tr, &buf, &len) != CMQ_OK) {
        api_reply_err(c, CMQERR_INTERNAL, NULL);
        return;
    }
    storage_send(c, cmq_StorageMsgType_STORAGE_MSG_TRACE, buf, len, STEP_TRACE);
    free(buf);
}

void api_do_topic_trace(struct gw_call *c)
{
    struct api_call *a = gw_call_data(c);
    if (!pub_state(c)) {
        api_reply_err(c, CMQERR_INTERNAL, NULL);
        return;
    }
    cmq_NameRequest r = cmq_NameRequest_init_zero;
    r.appid = a->key.appid;
    if (api_need_str(c, "topicName", r.name, sizeof r.name))
        return;
    api_meta_call(c, cmq_MetaMsgType_META_MSG_TOPIC_GET, cmq_NameRequest_fields, &r,
                  on_topic_for_trace);
}
