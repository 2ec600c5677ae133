/* api_topic.c: topic management (spec §7.1-7.5) and subscription actions
 * (§8.1-8.6) over metadata.
 *
 * What this file does: reads each action's parameters with the spec's names
 * (empty optional values count as absent, §5.3; filterTag.n / bindingKey.n
 * as indexed lists starting at 0 or 1, §5.2), checks what only the gateway
 * can check (that lists are well formed, the enumerated values, lengths that
 * would not fit the metadata request), sends one metadata request, and
 * writes the spec's response keys with their §13 JSON types.  Everything
 * that needs the stored state (names, quotas, existence, endpoint syntax,
 * filterType 2 needs a bindingKey) is metadata's rule: its MetaError names
 * the exact CMQ row and api_reply_backend_error answers with it.
 *
 * Storage: after every subscription change (and SetTopicAttributes) the
 * topic's subscription set is copied to storage, and DeleteTopic frees the
 * topic there, before the answer (api_publish.c).  GetSubscriptionAttributes
 * adds storage's delivery counters.  Publishing is api_publish.c.
 */
#include "api_internal.h"
#include "api_publish.h"

#include "cmq_limits.h"
#include "metadata.pb.h"
#include "names.h"
#include "status.h"
#include "storage.pb.h"
#include "pb_size.h"

#include <inttypes.h>
#include <pb_decode.h>
#include <stdio.h>
#include <string.h>

/* More list entries than this cannot be right and are not even looked at
 * (the metadata request has room for this many, so a list of 6..16 still
 * gets the precise "too many" row from one place: check_list below). */
#define TOPIC_LIST_PARSE_MAX 16

_Static_assert(TOPIC_LIST_PARSE_MAX <= sizeof(((cmq_SubRequest *)0)->filter_tags) /
                                           sizeof(((cmq_SubRequest *)0)->filter_tags[0]),
               "parsed filterTag list fits the request");
_Static_assert(TOPIC_LIST_PARSE_MAX <= sizeof(((cmq_SubRequest *)0)->binding_keys) /
                                           sizeof(((cmq_SubRequest *)0)->binding_keys[0]),
               "parsed bindingKey list fits the request");
_Static_assert(CMQ_TAGS_MAX < TOPIC_LIST_PARSE_MAX && CMQ_BINDING_KEYS_MAX < TOPIC_LIST_PARSE_MAX,
               "a list one too long must still parse, so it gets its own row");

/* ---------- parameters ---------- */

/* Optional string `key` into `out` (cap bytes, NUL-terminated).  Returns 1
 * when present and non-empty, 0 when absent or empty (§5.3), -1 after
 * answering: `too_long` (naming the key) when it does not fit. */
static int opt_str(struct gw_call *c, const char *key, char *out, size_t cap,
                   enum cmq_err too_long)
{
    struct api_call *a = gw_call_data(c);
    struct param_view pv;
    if (!params_find(a->params, key, &pv) || pv.val_len == 0)
        return 0;
    if (pv.val_len >= cap) {
        api_reply_err(c, too_long, key);
        return -1;
    }
    memcpy(out, pv.val, pv.val_len);
    out[pv.val_len] = '\0';
    return 1;
}

/* Required name `key` into `out`: absent or empty is 10390; longer than the
 * request field is `too_long` (the name-format row on create, where a long
 * name is a malformed name; 10350 elsewhere).  0, or -1 after answering. */
static int need_name(struct gw_call *c, const char *key, char *out, size_t cap,
                     enum cmq_err too_long)
{
    int r = opt_str(c, key, out, cap, too_long);
    if (r == 0)
        api_reply_err(c, CMQERR_MISSING_PARAM, key);
    return r == 1 ? 0 : -1;
}

enum list_kind { LIST_FILTER_TAG, LIST_BINDING_KEY };

/* filterTag.n or bindingKey.n (§5.2, §8.1) into `vals` (rows of `stride`
 * bytes, at most TOPIC_LIST_PARSE_MAX).  Empty entries count as absent.
 * Returns the number of entries (0 = no list), or -1 after answering:
 * a gap 10380, a malformed index 10310, too many entries 10490 / 10680, a
 * tag over 16 characters or a key over 64 bytes 10350, a key with more
 * than 15 dots 10691. */
static int get_list(struct gw_call *c, enum list_kind kind, char *vals, size_t stride)
{
    struct api_call *a = gw_call_data(c);
    const char *base = kind == LIST_FILTER_TAG ? "filterTag" : "bindingKey";
    enum cmq_err too_many =
        kind == LIST_FILTER_TAG ? CMQERR_FILTER_TAG_COUNT : CMQERR_BINDING_KEY_TOO_MANY;
    size_t max = kind == LIST_FILTER_TAG ? CMQ_TAGS_MAX : CMQ_BINDING_KEYS_MAX;
    struct param_value pv[TOPIC_LIST_PARSE_MAX];
    size_t n = 0;
    struct cmq_fault f = {0};
    int rc = params_get_list(a->params, base, TOPIC_LIST_PARSE_MAX, PARAMS_LIST_SKIP_EMPTY, pv,
                             &n, &f);
    if (rc == CMQ_ENOTFOUND)
        return 0;
    if (rc == CMQ_ELIMIT || (rc == CMQ_OK && n > max)) {
        api_reply_err(c, too_many, NULL);
        return -1;
    }
    if (rc != CMQ_OK) {
        api_reply_fault(c, &f);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        rc = kind == LIST_FILTER_TAG ? name_check_tag(base, pv[i].val, pv[i].len, &f)
                                     : name_check_routing_key(base, pv[i].val, pv[i].len, &f);
        if (rc == CMQ_OK && pv[i].len >= stride)
            rc = cmq_fault_set(&f, CMQERR_PARAM_RANGE, base, CMQ_EINVAL);
        if (rc != CMQ_OK) {
            api_reply_fault(c, &f);
            return -1;
        }
        memcpy(vals + i * stride, pv[i].val, pv[i].len);
        vals[i * stride + pv[i].len] = '\0';
    }
    return (int)n;
}

/* The optional settings shared by Subscribe and SetSubscriptionAttributes:
 * notifyStrategy, notifyContentFormat (checked here against the two values
 * each may take, then sent in canonical spelling), filterTag.n, bindingKey.n.
 * 0 or -1 (answered). */
static int sub_settings(struct gw_call *c, cmq_SubRequest *r)
{
    struct cmq_fault f = {0};
    int n;
    if ((n = opt_str(c, "notifyStrategy", r->notify_strategy, sizeof r->notify_strategy,
                     CMQERR_NOTIFY_STRATEGY_UNDEFINED)) < 0)
        return -1;
    if (n) {
        enum notify_strategy s;
        if (name_parse_notify_strategy(r->notify_strategy, strlen(r->notify_strategy), &s, &f) !=
            CMQ_OK) {
            api_reply_fault(c, &f);
            return -1;
        }
        snprintf(r->notify_strategy, sizeof r->notify_strategy, "%s", name_notify_strategy_str(s));
    }
    if ((n = opt_str(c, "notifyContentFormat", r->notify_content_format,
                     sizeof r->notify_content_format, CMQERR_NOTIFY_FORMAT_UNDEFINED)) < 0)
        return -1;
    if (n) {
        enum notify_format fm;
        if (name_parse_notify_format(r->notify_content_format, strlen(r->notify_content_format),
                                     &fm, &f) != CMQ_OK) {
            api_reply_fault(c, &f);
            return -1;
        }
        snprintf(r->notify_content_format, sizeof r->notify_content_format, "%s",
                 name_notify_format_str(fm));
    }
    if ((n = get_list(c, LIST_FILTER_TAG, (char *)r->filter_tags, sizeof r->filter_tags[0])) < 0)
        return -1;
    r->has_filter_tags = n > 0;
    r->filter_tags_count = PB_COUNT(r->filter_tags, n);
    if ((n = get_list(c, LIST_BINDING_KEY, (char *)r->binding_keys, sizeof r->binding_keys[0])) < 0)
        return -1;
    r->has_binding_keys = n > 0;
    r->binding_keys_count = PB_COUNT(r->binding_keys, n);
    /* Extension (docs/http-api.md): a dead-letter queue for messages whose
     * push retries are exhausted; clearDeadLetterQueue=1 removes it. */
    if (opt_str(c, "deadLetterQueueName", r->dead_letter_queue, sizeof r->dead_letter_queue,
                CMQERR_PARAM_RANGE) < 0)
        return -1;
    int64_t clear = 0;
    int rc = api_opt_int(c, "clearDeadLetterQueue", &clear);
    if (rc < 0)
        return -1;
    r->clear_dead_letter_queue = rc == 1 && clear != 0;
    return 0;
}

/* topicName and subscriptionName of every subscription action. */
static int sub_names(struct gw_call *c, char *topic, size_t topic_cap, char *sub, size_t sub_cap,
                     int create)
{
    if (need_name(c, "topicName", topic, topic_cap, CMQERR_PARAM_RANGE))
        return -1;
    return need_name(c, "subscriptionName", sub, sub_cap,
                     create ? CMQERR_SUBSCRIPTION_NAME_FORMAT : CMQERR_PARAM_RANGE);
}

/* ---------- replies ---------- */

/* Success with the bare envelope (Set..., Delete..., Unsubscribe, Clear...),
 * after the storage step of the metadata request `tag`. */
static void on_envelope(struct gw_call *c, int tag, int status, const struct rpc_msg *msg)
{
    if (gw_call_gone(c))
        return;
    if (status != CMQ_OK) {
        api_reply_backend_error(c, status, msg);
        return;
    }
    struct json *j = api_begin_ok(c);
    if (!j)
        return;
    json_obj_end(j);
    if (tag == cmq_MetaMsgType_META_MSG_TOPIC_DELETE || tag == cmq_MetaMsgType_META_MSG_TOPIC_SET) {
        cmq_TopicInfo t = cmq_TopicInfo_init_zero;
        if (rpc_pb_decode(cmq_TopicInfo_fields, &t, msg->body, msg->body_len) == CMQ_OK) {
            if (tag == cmq_MetaMsgType_META_MSG_TOPIC_DELETE)
                api_topic_drop_after_meta(c, &t, j);
            else
                api_topic_sync_after_meta(c, t.appid, t.name, j);
            return;
        }
    } else {
        cmq_SubInfo s = cmq_SubInfo_init_zero;
        if (rpc_pb_decode(cmq_SubInfo_fields, &s, msg->body, msg->body_len) == CMQ_OK) {
            api_topic_sync_after_meta(c, s.appid, s.topic_name, j);
            return;
        }
    }
    api_respond_json(c, j);
    json_destroy(j);
}

static void on_topic_created(struct gw_call *c, int tag, int status, const struct rpc_msg *msg)
{
    (void)tag;
    if (gw_call_gone(c))
        return;
    cmq_TopicInfo t = cmq_TopicInfo_init_zero;
    if (status != CMQ_OK || rpc_pb_decode(cmq_TopicInfo_fields, &t, msg->body, msg->body_len)) {
        api_reply_backend_error(c, status, msg);
        return;
    }
    struct json *j = api_begin_ok(c);
    if (!j)
        return;
    json_kv_cstr(j, "topicId", t.topic_id);
    api_finish_ok(c, j);
}

/* §7.4: the six integers Java reads with getInt, and LoggingEnabled for C++. */
static void on_topic_attrs(struct gw_call *c, int tag, int status, const struct rpc_msg *msg)
{
    (void)tag;
    if (gw_call_gone(c))
        return;
    cmq_TopicInfo t = cmq_TopicInfo_init_zero;
    if (status != CMQ_OK || rpc_pb_decode(cmq_TopicInfo_fields, &t, msg->body, msg->body_len)) {
        api_reply_backend_error(c, status, msg);
        return;
    }
    api_topic_stats(c, &t); /* msgCount from storage, then api_write_topic_attrs */
}

static void on_topic_list(struct gw_call *c, int tag, int status, const struct rpc_msg *msg)
{
    (void)tag;
    if (gw_call_gone(c))
        return;
    cmq_TopicList tl = cmq_TopicList_init_zero;
    if (status != CMQ_OK || rpc_pb_decode(cmq_TopicList_fields, &tl, msg->body, msg->body_len)) {
        api_reply_backend_error(c, status, msg);
        return;
    }
    struct json *j = api_begin_ok(c);
    if (!j)
        return;
    json_kv_int(j, "totalCount", tl.total_count);
    json_key(j, "topicList");
    json_arr_begin(j);
    for (pb_size_t i = 0; i < tl.topics_count; i++) {
        json_obj_begin(j);
        json_kv_cstr(j, "topicId", tl.topics[i].topic_id);
        json_kv_cstr(j, "topicName", tl.topics[i].topic_name);
        json_obj_end(j);
    }
    json_arr_end(j);
    api_finish_ok(c, j);
}

static void on_subscribed(struct gw_call *c, int tag, int status, const struct rpc_msg *msg)
{
    (void)tag;
    if (gw_call_gone(c))
        return;
    cmq_SubInfo s = cmq_SubInfo_init_zero;
    if (status != CMQ_OK || rpc_pb_decode(cmq_SubInfo_fields, &s, msg->body, msg->body_len)) {
        api_reply_backend_error(c, status, msg);
        return;
    }
    struct json *j = api_begin_ok(c);
    if (!j)
        return;
    json_kv_cstr(j, "subscriptionId", s.subscription_id);
    json_obj_end(j);
    api_topic_sync_after_meta(c, s.appid, s.topic_name, j);
}

/* §8.4 with both spellings the SDKs disagree on: protocol/protocal and
 * filterTag/filterTags.  Lists are always arrays, possibly empty. */
static void on_sub_attrs(struct gw_call *c, int tag, int status, const struct rpc_msg *msg)
{
    (void)tag;
    if (gw_call_gone(c))
        return;
    cmq_SubInfo s = cmq_SubInfo_init_zero;
    if (status != CMQ_OK || rpc_pb_decode(cmq_SubInfo_fields, &s, msg->body, msg->body_len)) {
        api_reply_backend_error(c, status, msg);
        return;
    }
    api_sub_stats(c, &s);
}

static void on_sub_list(struct gw_call *c, int tag, int status, const struct rpc_msg *msg)
{
    (void)tag;
    if (gw_call_gone(c))
        return;
    cmq_SubList sl = cmq_SubList_init_zero;
    if (status != CMQ_OK || rpc_pb_decode(cmq_SubList_fields, &sl, msg->body, msg->body_len)) {
        pb_release(cmq_SubList_fields, &sl); /* a partial decode may hold memory */
        api_reply_backend_error(c, status, msg);
        return;
    }
    struct json *j = api_begin_ok(c);
    if (j) {
        json_kv_int(j, "totalCount", sl.total_count);
        json_key(j, "subscriptionList");
        json_arr_begin(j);
        for (pb_size_t i = 0; i < sl.subscriptions_count; i++) {
            const cmq_SubInfo *s = &sl.subscriptions[i];
            json_obj_begin(j);
            json_kv_cstr(j, "subscriptionId", s->subscription_id);
            json_kv_cstr(j, "subscriptionName", s->subscription_name);
            json_kv_cstr(j, "protocol", s->protocol);
            json_kv_cstr(j, "endpoint", s->endpoint);
            json_obj_end(j);
        }
        json_arr_end(j);
        api_finish_ok(c, j);
    }
    pb_release(cmq_SubList_fields, &sl);
}

/* ---------- topics (§7.1-7.5) ---------- */

void api_do_create_topic(struct gw_call *c)
{
    struct api_call *a = gw_call_data(c);
    cmq_TopicRequest r = cmq_TopicRequest_init_zero;
    r.appid = a->key.appid;
    struct cmq_fault f = {0};
    if (need_name(c, "topicName", r.name, sizeof r.name, CMQERR_TOPIC_NAME_FORMAT))
        return;
    if (name_check_topic(r.name, strlen(r.name), &f) != CMQ_OK) {
        api_reply_fault(c, &f);
        return;
    }
    int rc;
    if ((rc = api_opt_int(c, "maxMsgSize", &r.max_msg_size)) < 0)
        return;
    r.has_max_msg_size = rc;
    if ((rc = api_opt_int(c, "filterType", &r.filter_type)) < 0)
        return;
    r.has_filter_type = rc;
    api_meta_call(c, cmq_MetaMsgType_META_MSG_TOPIC_CREATE, cmq_TopicRequest_fields, &r,
                  on_topic_created);
}

void api_do_set_topic(struct gw_call *c)
{
    struct api_call *a = gw_call_data(c);
    cmq_TopicRequest r = cmq_TopicRequest_init_zero;
    r.appid = a->key.appid;
    if (need_name(c, "topicName", r.name, sizeof r.name, CMQERR_PARAM_RANGE))
        return;
    int rc;
    if ((rc = api_opt_int(c, "maxMsgSize", &r.max_msg_size)) < 0)
        return;
    r.has_max_msg_size = rc;
    /* filterType is fixed at creation and not a parameter of §7.2: ignored. */
    api_meta_call(c, cmq_MetaMsgType_META_MSG_TOPIC_SET, cmq_TopicRequest_fields, &r, on_envelope);
}

static void topic_by_name(struct gw_call *c, uint32_t type, gw_reply_fn *fn)
{
    struct api_call *a = gw_call_data(c);
    cmq_NameRequest r = cmq_NameRequest_init_zero;
    r.appid = a->key.appid;
    if (need_name(c, "topicName", r.name, sizeof r.name, CMQERR_PARAM_RANGE))
        return;
    api_meta_call(c, type, cmq_NameRequest_fields, &r, fn);
}

void api_do_get_topic(struct gw_call *c)
{
    topic_by_name(c, cmq_MetaMsgType_META_MSG_TOPIC_GET, on_topic_attrs);
}

void api_do_delete_topic(struct gw_call *c)
{
    topic_by_name(c, cmq_MetaMsgType_META_MSG_TOPIC_DELETE, on_envelope);
}

void api_do_list_topic(struct gw_call *c)
{
    struct api_call *a = gw_call_data(c);
    cmq_ListRequest r = cmq_ListRequest_init_zero;
    r.appid = a->key.appid;
    if (api_list_params(c, &r))
        return;
    api_meta_call(c, cmq_MetaMsgType_META_MSG_TOPIC_LIST, cmq_ListRequest_fields, &r, on_topic_list);
}

/* ---------- subscriptions (§8.1-8.6) ---------- */

void api_do_subscribe(struct gw_call *c)
{
    struct api_call *a = gw_call_data(c);
    cmq_SubRequest r = cmq_SubRequest_init_zero;
    r.appid = a->key.appid;
    struct cmq_fault f = {0};
    if (sub_names(c, r.topic_name, sizeof r.topic_name, r.subscription_name,
                  sizeof r.subscription_name, 1))
        return;
    if (name_check_subscription(r.subscription_name, strlen(r.subscription_name), &f) != CMQ_OK) {
        api_reply_fault(c, &f);
        return;
    }
    if (need_name(c, "protocol", r.protocol, sizeof r.protocol, CMQERR_PROTOCOL_UNDEFINED))
        return;
    enum sub_protocol p;
    if (name_parse_protocol(r.protocol, strlen(r.protocol), &p, &f) != CMQ_OK) {
        api_reply_fault(c, &f);
        return;
    }
    snprintf(r.protocol, sizeof r.protocol, "%s", name_protocol_str(p));
    /* The endpoint's syntax (URL or queue name) and the queue's existence
     * are metadata's checks; here only that it fits. */
    if (need_name(c, "endpoint", r.endpoint, sizeof r.endpoint, CMQERR_PARAM_RANGE))
        return;
    if (sub_settings(c, &r))
        return;
    api_meta_call(c, cmq_MetaMsgType_META_MSG_SUB_CREATE, cmq_SubRequest_fields, &r, on_subscribed);
}

void api_do_set_subscription(struct gw_call *c)
{
    struct api_call *a = gw_call_data(c);
    cmq_SubRequest r = cmq_SubRequest_init_zero;
    r.appid = a->key.appid;
    if (sub_names(c, r.topic_name, sizeof r.topic_name, r.subscription_name,
                  sizeof r.subscription_name, 0))
        return;
    /* protocol and endpoint cannot change (§8.3); when a client repeats them
     * metadata checks that they are the stored ones. */
    if (opt_str(c, "protocol", r.protocol, sizeof r.protocol, CMQERR_PROTOCOL_UNDEFINED) < 0 ||
        opt_str(c, "endpoint", r.endpoint, sizeof r.endpoint, CMQERR_PARAM_RANGE) < 0 ||
        sub_settings(c, &r))
        return;
    api_meta_call(c, cmq_MetaMsgType_META_MSG_SUB_SET, cmq_SubRequest_fields, &r, on_envelope);
}

static void sub_by_name(struct gw_call *c, uint32_t type, gw_reply_fn *fn)
{
    struct api_call *a = gw_call_data(c);
    cmq_SubNameRequest r = cmq_SubNameRequest_init_zero;
    r.appid = a->key.appid;
    if (sub_names(c, r.topic_name, sizeof r.topic_name, r.subscription_name,
                  sizeof r.subscription_name, 0))
        return;
    api_meta_call(c, type, cmq_SubNameRequest_fields, &r, fn);
}

void api_do_get_subscription(struct gw_call *c)
{
    sub_by_name(c, cmq_MetaMsgType_META_MSG_SUB_GET, on_sub_attrs);
}

void api_do_unsubscribe(struct gw_call *c)
{
    sub_by_name(c, cmq_MetaMsgType_META_MSG_SUB_DELETE, on_envelope);
}

void api_do_clear_filter_tags(struct gw_call *c)
{
    sub_by_name(c, cmq_MetaMsgType_META_MSG_SUB_CLEAR_TAGS, on_envelope);
}

void api_do_list_subscriptions(struct gw_call *c)
{
    struct api_call *a = gw_call_data(c);
    cmq_ListRequest r = cmq_ListRequest_init_zero;
    r.appid = a->key.appid;
    if (need_name(c, "topicName", r.topic_name, sizeof r.topic_name, CMQERR_PARAM_RANGE) ||
        api_list_params(c, &r))
        return;
    api_meta_call(c, cmq_MetaMsgType_META_MSG_SUB_LIST, cmq_ListRequest_fields, &r, on_sub_list);
}
