/* api_publish.c: PublishMessage / BatchPublishMessage (spec §7.6, §7.7) and
 * the storage half of the subscription actions (the topic's subscription set
 * is copied to storage after every change in metadata: TopicSync).
 *
 * Publish: metadata's TopicInfo (partition, num_id, filterType, maxMsgSize)
 * -> checks of the spec's parameters -> one PublishRequest to the leader of
 * the topic's partition, answered after the entry is committed (majority
 * fsync).  When storage does not know the topic, or refuses the message for
 * want of a (matching) subscription, the gateway first copies the current
 * subscription set from metadata to storage and tries once more ("heal"):
 * a sync that failed earlier (a storage node was down) costs one request.
 *
 * Sync: TOPIC_GET + SUB_LIST (every page) from metadata, then TOPIC_SYNC.
 * Its failure does not fail the metadata action the client asked for (the
 * heal repairs it), but it is logged.
 *
 * For the TCP protocol: api_publish_encode builds the storage request from
 * already-parsed values, so another front end can reuse the same rules.
 */
#include "api_internal.h"
#include "api_publish.h"

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

#define STORAGE_TIMEOUT_MS 2000
#define STORAGE_ATTEMPTS 3
#define SUB_PAGE 100

enum step { STEP_PUBLISH = 1, STEP_SYNC = 2, STEP_DROP = 3, STEP_STATS = 4, STEP_TOPIC_STATS = 5,
            STEP_TRACE = 6 };

struct api_pub {
    cmq_TopicInfo ti;
    uint8_t *req;            /* the encoded PublishRequest, kept for the resend */
    size_t req_len;
    uint32_t count;
    int healed;
    /* sync */
    uint32_t seen;           /* subscription rows listed so far (the next page's offset) */
    struct json *ok;         /* after a metadata action: the answer to send once synced */
    cmq_TopicSyncRequest sync;
    size_t subs_cap;
    /* stats */
    cmq_SubInfo si;
    /* trace */
    uint64_t trace_msg_id;
};

void api_publish_cleanup(struct api_call *a)
{
    struct api_pub *p = a->pub;
    if (!p)
        return;
    free(p->req);
    json_destroy(p->ok);
    free(p->sync.subscriptions);
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

/* ---------- the storage request ---------- */

int api_publish_encode(uint64_t topic_num_id, const struct param_value *bodies, size_t n,
                       const struct param_value *tags, size_t n_tags, const char *routing_key,
                       const char *client_addr, uint8_t **out, size_t *out_len)
{
    /* Too big for the stack (16 tag arrays); one per thread because every
     * gateway loop thread (and the TCP listener on it) publishes. */
    static _Thread_local cmq_PublishRequest r;
    struct api_body_ref refs[CMQ_BATCH_MAX];
    if (n == 0 || n > CMQ_BATCH_MAX || n_tags > CMQ_TAGS_MAX)
        return CMQ_EINVAL;
    memset(&r, 0, sizeof r);
    r.topic_id = topic_num_id;
    for (size_t i = 0; i < n; i++) {
        refs[i] = (struct api_body_ref){bodies[i].val, bodies[i].len};
        r.messages[i].body.funcs.encode = api_encode_body_ref;
        r.messages[i].body.arg = &refs[i];
        r.messages[i].dedup_key = api_dedup_key(); /* the same on every resend */
    }
    r.messages_count = PB_COUNT(r.messages, n);
    for (size_t i = 0; i < n_tags; i++) {
        if (tags[i].len >= sizeof r.tags[0])
            return CMQ_EINVAL;
        memcpy(r.tags[i], tags[i].val, tags[i].len);
        r.tags[i][tags[i].len] = '\0';
    }
    r.tags_count = PB_COUNT(r.tags, n_tags);
    snprintf(r.routing_key, sizeof r.routing_key, "%s", routing_key ? routing_key : "");
    snprintf(r.client_addr, sizeof r.client_addr, "%s", client_addr ? client_addr : "");
    return rpc_pb_encode(cmq_PublishRequest_fields, &r, out, out_len);
}

static void on_storage(struct gw_call *c, int tag, int status, const struct rpc_msg *msg);

static void storage_send(struct gw_call *c, uint32_t type, const uint8_t *body, size_t len, int tag)
{
    struct gateway *gw = gw_call_gateway(c);
    struct api_pub *p = pub_state(c);
    uint32_t part = p->ti.partition_id;
    struct rpc_opts opts = {
        .timeout_ms = STORAGE_TIMEOUT_MS,
        .attempts = STORAGE_ATTEMPTS,
        .peer = part < sizeof gw->partition_peer ? gw->partition_peer[part] : -1,
        .retry_ms = type == cmq_StorageMsgType_STORAGE_MSG_PUBLISH ? API_STORAGE_RETRY_MS : 0,
    };
    int rc = gw_call_client(c, gw->storage, type, body, len, &opts, on_storage, tag);
    if (rc != CMQ_OK)
        api_reply_err(c, cmq_error_from_status(rc), NULL);
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

static void sync_failed(struct gw_call *c, int status, const char *why)
{
    struct api_pub *p = pub_state(c);
    log_warn("topic_sync_failed", "topic=%s status=%s reason=\"%s\"", p->ti.name,
             status_name(status), why);
    if (p->ok) {
        finish_meta_step(c); /* the metadata action succeeded; publish heals later */
        return;
    }
    api_reply_err(c, status == CMQ_ENOTFOUND ? CMQERR_TOPIC_NOT_EXIST : cmq_error_from_status(status),
                  NULL);
}

static uint32_t strategy_of(const char *s)
{
    return strcmp(s, "BACKOFF_RETRY") == 0 ? 1 : 2;
}

static void send_sync(struct gw_call *c)
{
    struct api_pub *p = pub_state(c);
    p->sync.topic_id = p->ti.num_id;
    snprintf(p->sync.name, sizeof p->sync.name, "%s", p->ti.name);
    p->sync.appid = p->ti.appid;
    p->sync.filter_type = p->ti.filter_type == 2 ? 2 : 1;
    p->sync.max_msg_size = (uint32_t)p->ti.max_msg_size;
    p->sync.partition_id = p->ti.partition_id;
    uint8_t *buf;
    size_t len;
    int rc = rpc_pb_encode(cmq_TopicSyncRequest_fields, &p->sync, &buf, &len);
    if (rc != CMQ_OK) {
        sync_failed(c, rc, "encode");
        return;
    }
    storage_send(c, cmq_StorageMsgType_STORAGE_MSG_TOPIC_SYNC, buf, len, STEP_SYNC);
    free(buf);
}

static void list_page(struct gw_call *c);

static void on_sub_page(struct gw_call *c, int tag, int status, const struct rpc_msg *msg)
{
    (void)tag;
    if (gw_call_gone(c))
        return;
    struct api_pub *p = pub_state(c);
    cmq_SubList sl = cmq_SubList_init_zero;
    if (status != CMQ_OK || rpc_pb_decode(cmq_SubList_fields, &sl, msg->body, msg->body_len)) {
        pb_release(cmq_SubList_fields, &sl);
        sync_failed(c, status ? status : CMQ_ECORRUPT, "subscription list");
        return;
    }
    size_t need = p->sync.subscriptions_count + sl.subscriptions_count;
    if (need > PB_SIZE_MAX) { /* TopicSyncRequest.subscriptions_count is a 16-bit pb_size_t */
        pb_release(cmq_SubList_fields, &sl);
        sync_failed(c, CMQ_ELIMIT, "subscriptions");
        return;
    }
    if (need > p->subs_cap) {
        size_t cap = need < 16 ? 16 : need;
        cmq_TopicSubscription *ns = realloc(p->sync.subscriptions, cap * sizeof *ns);
        if (!ns) {
            pb_release(cmq_SubList_fields, &sl);
            sync_failed(c, CMQ_ENOMEM, "memory");
            return;
        }
        p->sync.subscriptions = ns;
        p->subs_cap = cap;
    }
    for (pb_size_t i = 0; i < sl.subscriptions_count; i++) {
        const cmq_SubInfo *s = &sl.subscriptions[i];
        cmq_TopicSubscription *o = &p->sync.subscriptions[p->sync.subscriptions_count];
        *o = (cmq_TopicSubscription)cmq_TopicSubscription_init_zero;
        snprintf(o->sub_id, sizeof o->sub_id, "%s", s->subscription_id);
        snprintf(o->name, sizeof o->name, "%s", s->subscription_name);
        o->protocol = strcmp(s->protocol, "queue") == 0 ? 1 : 2;
        snprintf(o->endpoint, sizeof o->endpoint, "%s", s->endpoint);
        o->queue_id = s->endpoint_queue_num_id;
        o->dead_letter_queue_id = s->dead_letter_queue_num_id;
        o->format = strcmp(s->notify_content_format, "SIMPLIFIED") == 0 ? 2 : 1;
        o->strategy = strategy_of(s->notify_strategy);
        for (pb_size_t k = 0; k < s->filter_tags_count && k < 5; k++)
            snprintf(o->filter_tags[k], sizeof o->filter_tags[k], "%s", s->filter_tags[k]);
        o->filter_tags_count = s->filter_tags_count < 5 ? s->filter_tags_count : 5;
        for (pb_size_t k = 0; k < s->binding_keys_count && k < 5; k++)
            snprintf(o->binding_keys[k], sizeof o->binding_keys[k], "%s", s->binding_keys[k]);
        o->binding_keys_count = s->binding_keys_count < 5 ? s->binding_keys_count : 5;
        if (o->protocol == 1 && o->queue_id == 0)
            continue; /* its queue is gone: nothing to deliver to */
        p->sync.subscriptions_count++;
    }
    uint32_t got = sl.subscriptions_count, total = sl.total_count;
    pb_release(cmq_SubList_fields, &sl);
    p->seen += got;
    if (got == SUB_PAGE && p->seen < total) {
        list_page(c);
        return;
    }
    send_sync(c);
}

static void list_page(struct gw_call *c)
{
    struct api_pub *p = pub_state(c);
    cmq_ListRequest r = cmq_ListRequest_init_zero;
    r.appid = p->ti.appid;
    snprintf(r.topic_name, sizeof r.topic_name, "%s", p->ti.name);
    r.has_offset = true;
    r.offset = (int64_t)p->seen;
    r.has_limit = true;
    r.limit = SUB_PAGE;
    api_meta_call(c, cmq_MetaMsgType_META_MSG_SUB_LIST, cmq_ListRequest_fields, &r, on_sub_page);
}

/* Starts a sync of p->ti's subscriptions to storage. */
static void start_sync(struct gw_call *c)
{
    struct api_pub *p = pub_state(c);
    p->sync.subscriptions_count = 0;
    p->seen = 0;
    if (p->ti.num_id == 0 || p->ti.partition_id == 0) {
        sync_failed(c, CMQ_EUNAVAIL, "topic not placed");
        return;
    }
    list_page(c);
}

static void on_topic_for_sync(struct gw_call *c, int tag, int status, const struct rpc_msg *msg)
{
    (void)tag;
    if (gw_call_gone(c))
        return;
    struct api_pub *p = pub_state(c);
    if (status != CMQ_OK ||
        rpc_pb_decode(cmq_TopicInfo_fields, &p->ti, msg->body, msg->body_len) != CMQ_OK) {
        sync_failed(c, status ? status : CMQ_ECORRUPT, "topic");
        return;
    }
    start_sync(c);
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
    cmq_NameRequest r = cmq_NameRequest_init_zero;
    r.appid = appid;
    snprintf(r.name, sizeof r.name, "%s", topic_name);
    api_meta_call(c, cmq_MetaMsgType_META_MSG_TOPIC_GET, cmq_NameRequest_fields, &r,
                  on_topic_for_sync);
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

/* ---------- answers ---------- */

static enum cmq_err publish_error(int status)
{
    switch (status) {
    case CMQ_ENOTFOUND: return CMQERR_TOPIC_NOT_EXIST;
    case CMQ_ETOOBIG: return CMQERR_MSG_TOO_BIG;
    case CMQ_EINVAL: return CMQERR_INVALID_REQUEST;
    default: return cmq_error_from_status(status);
    }
}

static void answer_publish(struct gw_call *c, const struct rpc_msg *msg)
{
    struct api_call *a = gw_call_data(c);
    struct api_pub *p = a->pub;
    cmq_PublishReply r = cmq_PublishReply_init_zero;
    if (rpc_pb_decode(cmq_PublishReply_fields, &r, msg->body, msg->body_len) != CMQ_OK) {
        api_reply_err(c, CMQERR_INTERNAL, NULL);
        return;
    }
    if (r.refused) {
        if (!p->healed) { /* storage's subscription set may be stale: sync, then once more */
            p->healed = 1;
            start_sync(c);
            return;
        }
        api_reply_err(c, r.refused == 1 ? CMQERR_TOPIC_NO_SUBSCRIPTION : CMQERR_NO_MATCH, NULL);
        return;
    }
    if (r.msg_ids_count != p->count) {
        api_reply_err(c, CMQERR_INTERNAL, NULL);
        return;
    }
    struct json *j = api_begin_ok(c);
    if (!j)
        return;
    if (a->action == CMQ_ACTION_PUBLISH_MESSAGE) {
        json_kv_id(j, "msgId", r.msg_ids[0]);
    } else {
        json_key(j, "msgList");
        json_arr_begin(j);
        for (pb_size_t i = 0; i < r.msg_ids_count; i++) {
            json_obj_begin(j);
            json_kv_id(j, "msgId", r.msg_ids[i]);
            json_obj_end(j);
        }
        json_arr_end(j);
    }
    api_finish_ok(c, j);
}

static void answer_stats(struct gw_call *c, int status, const struct rpc_msg *msg);

static void on_storage(struct gw_call *c, int tag, int status, const struct rpc_msg *msg)
{
    if (gw_call_gone(c))
        return;
    struct gateway *gw = gw_call_gateway(c);
    struct api_pub *p = pub_state(c);
    if (status == CMQ_OK && p->ti.partition_id < sizeof gw->partition_peer)
        gw->partition_peer[p->ti.partition_id] = (signed char)gw_call_last_peer(c);
    switch (tag) {
    case STEP_SYNC:
        if (status != CMQ_OK) {
            sync_failed(c, status, "storage");
            return;
        }
        if (p->ok) {
            finish_meta_step(c);
            return;
        }
        storage_send(c, cmq_StorageMsgType_STORAGE_MSG_PUBLISH, p->req, p->req_len, STEP_PUBLISH);
        return;
    case STEP_DROP:
        if (status != CMQ_OK && status != CMQ_ENOTFOUND)
            log_warn("topic_drop_failed", "topic=%s status=%s note=\"storage keeps orphan state\"",
                     p->ti.name, status_name(status));
        finish_meta_step(c);
        return;
    case STEP_STATS:
        answer_stats(c, status, msg);
        return;
    case STEP_TRACE: {
        cmq_TraceReply *r = calloc(1, sizeof *r);
        if (status != CMQ_OK)
            api_reply_err(c, cmq_error_from_status(status), NULL);
        else if (!r || rpc_pb_decode(cmq_TraceReply_fields, r, msg->body, msg->body_len) != CMQ_OK)
            api_reply_err(c, CMQERR_INTERNAL, NULL);
        else
            api_trace_answer(c, p->trace_msg_id, r);
        free(r);
        return;
    }
    case STEP_TOPIC_STATS: {
        cmq_TopicStatsReply st = cmq_TopicStatsReply_init_zero;
        if (status != CMQ_OK ||
            rpc_pb_decode(cmq_TopicStatsReply_fields, &st, msg->body, msg->body_len) != CMQ_OK)
            st.msg_count = 0;
        api_write_topic_attrs(c, &p->ti, st.msg_count);
        return;
    }
    default:
        break;
    }
    /* "not here" after every replica was tried, or "not found" from one
     * node: the sync (addressed to the topic's partition) decides, once */
    if ((status == CMQ_ENOTFOUND || status == CMQ_ENOTLEADER) && !p->healed) {
        p->healed = 1;
        start_sync(c);
        return;
    }
    if (status != CMQ_OK) {
        api_reply_err(c, publish_error(status), NULL);
        return;
    }
    answer_publish(c, msg);
}

/* ---------- PublishMessage / BatchPublishMessage ---------- */

static int build_publish(struct gw_call *c)
{
    struct api_call *a = gw_call_data(c);
    struct api_pub *p = a->pub;
    struct cmq_fault f = {0};
    struct param_value bodies[CMQ_BATCH_MAX];
    size_t n, total;
    int rc;
    if (api_read_bodies(c, a->action == CMQ_ACTION_PUBLISH_MESSAGE, p->ti.max_msg_size, bodies, &n,
                        &total) != 0)
        return -1;
    /* msgTag.n: at most 5, each 1-16 characters (§7.6) */
    struct param_value tags[CMQ_TAGS_MAX + 1];
    size_t n_tags = 0;
    rc = params_get_list(a->params, "msgTag", CMQ_TAGS_MAX + 1, PARAMS_LIST_SKIP_EMPTY, tags,
                         &n_tags, &f);
    if (rc == CMQ_ELIMIT || (rc == CMQ_OK && n_tags > CMQ_TAGS_MAX)) {
        api_reply_err(c, CMQERR_MSG_TAG_TOO_MANY, NULL);
        return -1;
    }
    if (rc == CMQ_ENOTFOUND) {
        n_tags = 0;
    } else if (rc != CMQ_OK) {
        api_reply_fault(c, &f);
        return -1;
    }
    for (size_t i = 0; i < n_tags; i++)
        if (name_check_tag("msgTag", tags[i].val, tags[i].len, &f) != CMQ_OK) {
            api_reply_fault(c, &f);
            return -1;
        }
    /* routingKey: <= 64 bytes, <= 15 dots; required on a routing topic */
    char rk[CMQ_ROUTING_KEY_BYTES_MAX + 1] = "";
    const char *v;
    size_t len;
    rc = params_get_str(a->params, "routingKey", SIZE_MAX, &v, &len, &f);
    if (rc == CMQ_OK && len > 0) {
        if (name_check_routing_key("routingKey", v, len, &f) != CMQ_OK) {
            api_reply_fault(c, &f);
            return -1;
        }
        memcpy(rk, v, len);
        rk[len] = '\0';
    } else if (rc != CMQ_OK && rc != CMQ_ENOTFOUND) {
        api_reply_fault(c, &f);
        return -1;
    }
    if (p->ti.filter_type == 2 && rk[0] == '\0') {
        api_reply_err(c, CMQERR_ROUTING_KEY_MISSING, NULL);
        return -1;
    }
    char addr[64] = "";
    api_client_addr(c, addr, sizeof addr); /* ip:port, like SendMessage's (the trace) */
    p->count = (uint32_t)n;
    rc = api_publish_encode(p->ti.num_id, bodies, n, tags, n_tags, rk, addr, &p->req, &p->req_len);
    if (rc != CMQ_OK) {
        api_reply_err(c, rc == CMQ_ETOOBIG ? CMQERR_REQUEST_TOO_BIG : CMQERR_INTERNAL, NULL);
        return -1;
    }
    return 0;
}

static void on_topic_info(struct gw_call *c, int tag, int status, const struct rpc_msg *msg)
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
    if (p->ti.num_id == 0 || p->ti.partition_id == 0) {
        log_warn("topic_unplaced", "topic=%s partition=%u", p->ti.name, p->ti.partition_id);
        api_reply_err(c, CMQERR_INTERNAL, NULL);
        return;
    }
    if (build_publish(c) == 0)
        storage_send(c, cmq_StorageMsgType_STORAGE_MSG_PUBLISH, p->req, p->req_len, STEP_PUBLISH);
}

void api_do_publish(struct gw_call *c)
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
    api_meta_call(c, cmq_MetaMsgType_META_MSG_TOPIC_GET, cmq_NameRequest_fields, &r, on_topic_info);
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
