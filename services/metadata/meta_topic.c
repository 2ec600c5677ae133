/* meta_topic.c: topics (spec §7): their descriptor for the namespace engine
 * (meta_ns.c) and their attributes.
 *
 *  - maxMsgSize has a default and a range; msgRetentionSeconds is fixed
 *    (META_TOPIC_RETENTION_S); filterType (1 tags, 2 routing keys; 0 is read
 *    as 1) is fixed when the topic is created.
 *  - DeleteTopic refuses while subscriptions exist, unless the store's
 *    delete_topic_with_subs option says they go with it (their
 *    "subscription.deleted" events are emitted then).
 */
#include "meta_ns_internal.h"

#include "status.h"

#include <stddef.h>
#include <stdio.h>

static const struct meta_range r_tsize = {"maxMsgSize", CMQ_MSG_SIZE_ATTR_MIN,   /* cmq_limits.h */
                                          CMQ_MSG_SIZE_ATTR_MAX, CMQ_MSG_SIZE_ATTR_DEFAULT};

#define TOPIC_SELECT                                                                         \
    "SELECT t.id, t.appid, t.name, t.topic_id, COALESCE(t.partition_id, 0), t.max_msg_size," \
    " t.msg_retention_s, t.filter_type, t.created_ms, t.modified_ms,"                       \
    " (SELECT COUNT(*) FROM subscriptions x WHERE x.topic_row = t.id), t.num_id FROM topics t"

static void topic_fill(sqlite3_stmt *q, void *info, int64_t *row)
{
    cmq_TopicInfo *out = info;
    *out = (cmq_TopicInfo)cmq_TopicInfo_init_zero;
    if (row)
        *row = sqlite3_column_int64(q, 0);
    out->appid = (uint64_t)sqlite3_column_int64(q, 1);
    meta_col_text(q, 2, out->name, sizeof out->name);
    meta_col_text(q, 3, out->topic_id, sizeof out->topic_id);
    out->partition_id = (uint32_t)sqlite3_column_int64(q, 4);
    out->max_msg_size = sqlite3_column_int64(q, 5);
    out->msg_retention_seconds = sqlite3_column_int64(q, 6);
    out->filter_type = sqlite3_column_int64(q, 7);
    out->create_time = (uint64_t)sqlite3_column_int64(q, 8) / 1000;
    out->last_modify_time = (uint64_t)sqlite3_column_int64(q, 9) / 1000;
    out->subscription_count = (uint32_t)sqlite3_column_int64(q, 10);
    out->num_id = (uint64_t)sqlite3_column_int64(q, 11);
}

static void topic_brief(const void *info, struct meta_brief *b)
{
    const cmq_TopicInfo *t = info;
    *b = (struct meta_brief){.appid = t->appid, .num_id = t->num_id,
                             .partition_id = t->partition_id, .name = t->name,
                             .id = t->topic_id};
}

static void topic_list_row(void *arg, const char *id, const char *name)
{
    cmq_TopicList *l = arg;
    if (l->topics_count >= sizeof l->topics / sizeof l->topics[0])
        return;
    cmq_TopicBrief *b = &l->topics[l->topics_count++];
    snprintf(b->topic_id, sizeof b->topic_id, "%s", id);
    snprintf(b->topic_name, sizeof b->topic_name, "%s", name);
}

/* A create request with its attributes checked and defaulted. */
struct topic_new {
    int64_t size, filter_type;
};

static int topic_insert(struct meta_store *s, const void *arg, const struct meta_new *n,
                        struct meta_err *e)
{
    const struct topic_new *a = arg;
    sqlite3_stmt *q = meta_prepare(s, "INSERT INTO topics (appid, name, name_lower, topic_id, partition_id,"
                        " max_msg_size, msg_retention_s, filter_type, created_ms, modified_ms,"
                        " num_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
    if (!q)
        return meta_db_fail(s, e, "topic create");
    sqlite3_bind_int64(q, 11, (int64_t)n->num_id);
    sqlite3_bind_int64(q, 1, (int64_t)n->appid);
    sqlite3_bind_text(q, 2, n->name, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 3, n->name_lower, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 4, n->id, -1, SQLITE_TRANSIENT);
    if (n->partition_id)
        sqlite3_bind_int64(q, 5, n->partition_id);
    sqlite3_bind_int64(q, 6, a->size);
    sqlite3_bind_int64(q, 7, META_TOPIC_RETENTION_S);
    sqlite3_bind_int64(q, 8, a->filter_type);
    sqlite3_bind_int64(q, 9, n->now_ms);
    sqlite3_bind_int64(q, 10, n->now_ms);
    if (meta_exec_step(q) != SQLITE_DONE)
        return meta_db_fail(s, e, "topic create");
    return CMQ_OK;
}

/* Subscriptions block the delete, or (delete_topic_with_subs) go with it. */
static int topic_before_delete(struct meta_store *s, int64_t row, const void *info,
                               struct meta_err *e)
{
    const cmq_TopicInfo *t = info;
    if (t->subscription_count == 0)
        return CMQ_OK;
    if (!s->o.delete_topic_with_subs)
        return meta_fail(e, CMQ_EBUSY, META_ROW(TOPIC_HAS_SUBSCRIPTIONS), "topicName",
                         "there exists subscriptions under this topic, please unsubscribe "
                         "all of them before DeleteTopic");
    return meta_sub_events_of_topic(s, row, e);
}

const struct meta_entity meta_topic_entity = {
    .kind = "topic",
    .table = "topics",
    .id_col = "topic_id",
    .id_prefix = "topic-",
    .name_param = "topicName",
    .select = TOPIC_SELECT,
    .alias = "t",
    .quota_off = offsetof(struct meta_store_opts, topics_per_account),
    .row_name_format = META_ROW(TOPIC_NAME_FORMAT),
    .row_not_found = META_ROW(TOPIC_NOT_EXIST),
    .row_exists = META_ROW(TOPIC_EXISTS),
    .row_quota = META_ROW(TOPIC_QUOTA),
    .row_recreate = META_ROW(TOPIC_RECREATE_TOO_SOON),
    .fill = topic_fill,
    .brief = topic_brief,
    .insert = topic_insert,
    .before_delete = topic_before_delete,
    .list_row = topic_list_row,
};

int meta_topic_create(struct meta_store *s, const cmq_TopicRequest *req, cmq_TopicInfo *out,
                      struct meta_err *e)
{
    int st = meta_entity_name_check(&meta_topic_entity, req->name, e);
    if (st != CMQ_OK)
        return st;
    struct topic_new a = {.filter_type = req->has_filter_type ? req->filter_type : 1};
    st = meta_attr(&r_tsize, req->has_max_msg_size, req->max_msg_size, r_tsize.dflt, &a.size, e);
    if (st != CMQ_OK)
        return st;
    if (a.filter_type == 0)
        a.filter_type = 1; /* the legacy GetTopicAttributes doc numbers tag filtering 0 */
    if (a.filter_type != 1 && a.filter_type != 2)
        return meta_fail(e, CMQ_EINVAL, META_ROW(PARAM_RANGE), "filterType",
                         "parameter filterType value or length is out of range: 1 (tags) or "
                         "2 (routing keys)");
    return meta_entity_create(s, &meta_topic_entity, req->appid, req->name, &a, out, e);
}

int meta_topic_get(struct meta_store *s, const cmq_NameRequest *req, cmq_TopicInfo *out,
                   struct meta_err *e)
{
    return meta_entity_find(s, &meta_topic_entity, req->appid, req->name, out, NULL, e);
}

/* SetTopicAttributes inside the transaction: maxMsgSize; filterType only
 * when it is the current one. */
static int topic_update(struct meta_store *s, const void *arg, const void *cur_info, int64_t row,
                        struct meta_err *e)
{
    const cmq_TopicRequest *req = arg;
    const cmq_TopicInfo *cur = cur_info;
    int64_t size;
    int st = meta_attr(&r_tsize, req->has_max_msg_size, req->max_msg_size, cur->max_msg_size,
                       &size, e);
    if (st != CMQ_OK)
        return st;
    if (req->has_filter_type && (req->filter_type == 0 ? 1 : req->filter_type) != cur->filter_type)
        return meta_fail(e, CMQ_EINVAL, META_ROW(PARAM_ERROR), "filterType",
                         "filterType is fixed when the topic is created");
    sqlite3_stmt *q =
        meta_prepare(s, "UPDATE topics SET max_msg_size = ?, modified_ms = ? WHERE id = ?");
    if (!q)
        return meta_db_fail(s, e, "topic set");
    sqlite3_bind_int64(q, 1, size);
    sqlite3_bind_int64(q, 2, (int64_t)meta_now_ms(s));
    sqlite3_bind_int64(q, 3, row);
    if (meta_exec_step(q) != SQLITE_DONE)
        return meta_db_fail(s, e, "topic set");
    return CMQ_OK;
}

int meta_topic_set(struct meta_store *s, const cmq_TopicRequest *req, cmq_TopicInfo *out,
                   struct meta_err *e)
{
    cmq_TopicInfo cur;
    return meta_entity_set(s, &meta_topic_entity, req->appid, req->name, req, topic_update, &cur,
                           out, e);
}

int meta_topic_delete(struct meta_store *s, const cmq_NameRequest *req, cmq_TopicInfo *out,
                      struct meta_err *e)
{
    return meta_entity_delete(s, &meta_topic_entity, req->appid, req->name, out, e);
}

int meta_topic_list(struct meta_store *s, const cmq_ListRequest *req, cmq_TopicList *out,
                    struct meta_err *e)
{
    *out = (cmq_TopicList)cmq_TopicList_init_zero;
    return meta_entity_list(s, &meta_topic_entity, req, &out->total_count, out, e);
}
