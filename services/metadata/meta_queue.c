/* meta_queue.c: queues (spec §6): their descriptor for the namespace
 * engine (meta_ns.c), their attributes and the dead-letter rules.
 *
 *  - attributes: maxMsgHeapNum, pollingWaitSeconds, visibilityTimeout,
 *    maxMsgSize, msgRetentionSeconds, rewindSeconds (<= retention), each
 *    with its default and range.
 *  - dead-letter policy: the DLQ exists in the same account, is not the queue
 *    itself, has no DLQ of its own, the queue is not itself a DLQ, and a DLQ
 *    serves at most 6 queues.  Deleting a DLQ clears its sources' policies.
 */
#include "meta_ns_internal.h"

#include "status.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

/* The attribute ranges are the API's (common/base/cmq_limits.h). */
static const struct meta_range r_heap = {"maxMsgHeapNum", CMQ_HEAP_NUM_MIN, CMQ_HEAP_NUM_MAX,
                                         CMQ_HEAP_NUM_DEFAULT};
static const struct meta_range r_polling = {"pollingWaitSeconds", 0, CMQ_POLL_WAIT_S_MAX,
                                            CMQ_POLL_WAIT_S_DEFAULT};
static const struct meta_range r_visibility = {"visibilityTimeout", CMQ_VISIBILITY_S_MIN,
                                               CMQ_VISIBILITY_S_MAX, CMQ_VISIBILITY_S_DEFAULT};
static const struct meta_range r_qsize = {"maxMsgSize", CMQ_MSG_SIZE_ATTR_MIN,
                                          CMQ_MSG_SIZE_ATTR_MAX, CMQ_MSG_SIZE_ATTR_DEFAULT};
static const struct meta_range r_retention = {"msgRetentionSeconds", CMQ_RETENTION_S_MIN,
                                              CMQ_RETENTION_S_MAX, CMQ_RETENTION_S_DEFAULT};
static const struct meta_range r_rewind = {"rewindSeconds", 0, CMQ_REWIND_S_MAX, 0};
static const struct meta_range r_receive = {"maxReceiveCount", CMQ_DLQ_MAX_RECEIVE_MIN,
                                            CMQ_DLQ_MAX_RECEIVE_MAX, 0};
static const struct meta_range r_ttl = {"maxTimeToLive", CMQ_DLQ_TTL_S_MIN, CMQ_DLQ_TTL_S_MAX, 0};

#define QUEUE_SELECT                                                                           \
    "SELECT q.id, q.appid, q.name, q.queue_id, COALESCE(q.partition_id, 0), q.max_msg_heap_num," \
    " q.polling_wait_s, q.visibility_timeout_s, q.max_msg_size, q.msg_retention_s,"          \
    " q.rewind_s, COALESCE(q.dlq_row, 0), COALESCE(d.name, ''), COALESCE(d.queue_id, ''),"   \
    " q.dlq_policy, q.dlq_max_receive_count, q.dlq_max_ttl_s, q.created_ms, q.modified_ms,"  \
    " (SELECT COUNT(*) FROM queues x WHERE x.dlq_row = q.id), q.num_id, COALESCE(d.num_id, 0)"  \
    " FROM queues q LEFT JOIN queues d ON d.id = q.dlq_row"

static void queue_fill(sqlite3_stmt *q, void *info, int64_t *row)
{
    cmq_QueueInfo *out = info;
    *out = (cmq_QueueInfo)cmq_QueueInfo_init_zero;
    if (row)
        *row = sqlite3_column_int64(q, 0);
    out->appid = (uint64_t)sqlite3_column_int64(q, 1);
    meta_col_text(q, 2, out->name, sizeof out->name);
    meta_col_text(q, 3, out->queue_id, sizeof out->queue_id);
    out->partition_id = (uint32_t)sqlite3_column_int64(q, 4);
    out->max_msg_heap_num = sqlite3_column_int64(q, 5);
    out->polling_wait_seconds = sqlite3_column_int64(q, 6);
    out->visibility_timeout = sqlite3_column_int64(q, 7);
    out->max_msg_size = sqlite3_column_int64(q, 8);
    out->msg_retention_seconds = sqlite3_column_int64(q, 9);
    out->rewind_seconds = sqlite3_column_int64(q, 10);
    if (sqlite3_column_int64(q, 11) != 0) {
        out->has_dead_letter_policy = true;
        cmq_DeadLetterPolicy *p = &out->dead_letter_policy;
        meta_col_text(q, 12, p->dead_letter_queue, sizeof p->dead_letter_queue);
        meta_col_text(q, 13, p->dead_letter_queue_id, sizeof p->dead_letter_queue_id);
        p->policy = sqlite3_column_int64(q, 14);
        p->max_receive_count = sqlite3_column_int64(q, 15);
        p->max_time_to_live = sqlite3_column_int64(q, 16);
        p->dead_letter_queue_num_id = (uint64_t)sqlite3_column_int64(q, 21);
    }
    out->create_time = (uint64_t)sqlite3_column_int64(q, 17) / 1000;
    out->last_modify_time = (uint64_t)sqlite3_column_int64(q, 18) / 1000;
    out->dead_letter_source_count = (uint32_t)sqlite3_column_int64(q, 19);
    out->num_id = (uint64_t)sqlite3_column_int64(q, 20);
}

static void queue_brief(const void *info, struct meta_brief *b)
{
    const cmq_QueueInfo *qi = info;
    *b = (struct meta_brief){.appid = qi->appid, .num_id = qi->num_id,
                             .partition_id = qi->partition_id, .name = qi->name,
                             .id = qi->queue_id};
}

static void queue_list_row(void *arg, const char *id, const char *name)
{
    cmq_QueueList *l = arg;
    if (l->queues_count >= sizeof l->queues / sizeof l->queues[0])
        return;
    cmq_QueueBrief *b = &l->queues[l->queues_count++];
    snprintf(b->queue_id, sizeof b->queue_id, "%s", id);
    snprintf(b->queue_name, sizeof b->queue_name, "%s", name);
}

/* The dead-letter rules (spec §6).  self_row is 0 on create.  On success
 * *dlq_row is the DLQ's row. */
static int dlq_check(struct meta_store *s, uint64_t appid, int64_t self_row,
                     const cmq_DeadLetterPolicy *p, int64_t retention, int64_t *dlq_row,
                     struct meta_err *e)
{
    if (p->policy != 0 && p->policy != 1)
        return meta_fail(e, CMQ_EINVAL, META_ROW(PARAM_RANGE), "policy",
                         "deadLetterPolicy.policy must be 0 (max receive count) or 1 (time to "
                         "live), not %lld",
                         (long long)p->policy);
    int st = p->policy == 0 ? meta_range_check(&r_receive, p->max_receive_count, e)
                            : meta_range_check(&r_ttl, p->max_time_to_live, e);
    if (st != CMQ_OK)
        return st;
    if (p->policy == 1 && p->max_time_to_live >= retention)
        return meta_fail(e, CMQ_EINVAL, META_ROW(PARAM_RANGE), "maxTimeToLive",
                         "maxTimeToLive (%lld) must be less than msgRetentionSeconds (%lld)",
                         (long long)p->max_time_to_live, (long long)retention);
    if (!p->dead_letter_queue[0])
        return meta_fail(e, CMQ_EINVAL, META_ROW(PARAM_ERROR), "deadLetterQueue",
                         "deadLetterPolicy needs deadLetterQueue");
    cmq_QueueInfo dlq;
    st = meta_entity_find(s, &meta_queue_entity, appid, p->dead_letter_queue, &dlq, dlq_row,
                          NULL);
    if (st == CMQ_ENOTFOUND)
        return meta_fail(e, CMQ_ENOTFOUND, META_ROW(PARAM_ERROR), "deadLetterQueue",
                         "dead letter queue %s is not existed", p->dead_letter_queue);
    if (st != CMQ_OK)
        return meta_db_fail(s, e, "dead letter queue lookup");
    if (*dlq_row == self_row)
        return meta_fail(e, CMQ_EINVAL, META_ROW(PARAM_ERROR), "deadLetterQueue",
                         "a queue cannot be its own dead letter queue");
    if (dlq.has_dead_letter_policy)
        return meta_fail(e, CMQ_EINVAL, META_ROW(PARAM_ERROR), "deadLetterQueue",
                         "dead letter queue %s has a dead letter queue itself (no nesting)",
                         p->dead_letter_queue);
    if (self_row) {
        int64_t n = meta_count_where(s, "SELECT COUNT(*) FROM queues WHERE dlq_row = ?", self_row);
        if (n < 0)
            return meta_db_fail(s, e, "dead letter sources");
        if (n > 0)
            return meta_fail(e, CMQ_EINVAL, META_ROW(PARAM_ERROR), "deadLetterPolicy",
                             "this queue is the dead letter queue of %lld queues and cannot "
                             "have one itself (no nesting)",
                             (long long)n);
    }
    int64_t sources;
    sqlite3_stmt *q =
        meta_prepare(s, "SELECT COUNT(*) FROM queues WHERE dlq_row = ? AND id <> ?");
    if (!q)
        return meta_db_fail(s, e, "dead letter sources");
    sqlite3_bind_int64(q, 1, *dlq_row);
    sqlite3_bind_int64(q, 2, self_row);
    sources = sqlite3_step(q) == SQLITE_ROW ? sqlite3_column_int64(q, 0) : -1;
    sqlite3_finalize(q);
    if (sources < 0)
        return meta_db_fail(s, e, "dead letter sources");
    if (sources >= META_DLQ_SOURCES_MAX)
        return meta_fail(e, CMQ_ELIMIT, META_ROW(PARAM_ERROR), "deadLetterQueue",
                         "dead letter queue %s already serves %d queues", p->dead_letter_queue,
                         META_DLQ_SOURCES_MAX);
    return CMQ_OK;
}

/* A create request with its attributes checked and defaulted. */
struct queue_new {
    const cmq_QueueRequest *req;
    int64_t heap, polling, vis, size, ret, rew;
};

static int queue_insert(struct meta_store *s, const void *arg, const struct meta_new *n,
                        struct meta_err *e)
{
    const struct queue_new *a = arg;
    const cmq_QueueRequest *req = a->req;
    int64_t dlq_row = 0;
    int st;
    if (req->has_dead_letter_policy &&
        (st = dlq_check(s, n->appid, 0, &req->dead_letter_policy, a->ret, &dlq_row, e)) != CMQ_OK)
        return st;
    sqlite3_stmt *q = meta_prepare(s, "INSERT INTO queues (appid, name, name_lower, queue_id, partition_id,"
                        " max_msg_heap_num, polling_wait_s, visibility_timeout_s, max_msg_size,"
                        " msg_retention_s, rewind_s, dlq_row, dlq_policy, dlq_max_receive_count,"
                        " dlq_max_ttl_s, created_ms, modified_ms, num_id)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
    if (!q)
        return meta_db_fail(s, e, "queue create");
    sqlite3_bind_int64(q, 18, (int64_t)n->num_id);
    sqlite3_bind_int64(q, 1, (int64_t)n->appid);
    sqlite3_bind_text(q, 2, n->name, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 3, n->name_lower, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 4, n->id, -1, SQLITE_TRANSIENT);
    if (n->partition_id)
        sqlite3_bind_int64(q, 5, n->partition_id);
    sqlite3_bind_int64(q, 6, a->heap);
    sqlite3_bind_int64(q, 7, a->polling);
    sqlite3_bind_int64(q, 8, a->vis);
    sqlite3_bind_int64(q, 9, a->size);
    sqlite3_bind_int64(q, 10, a->ret);
    sqlite3_bind_int64(q, 11, a->rew);
    const cmq_DeadLetterPolicy *p = &req->dead_letter_policy;
    if (dlq_row) {
        sqlite3_bind_int64(q, 12, dlq_row);
        sqlite3_bind_int64(q, 13, p->policy);
        sqlite3_bind_int64(q, 14, p->policy == 0 ? p->max_receive_count : 0);
        sqlite3_bind_int64(q, 15, p->policy == 1 ? p->max_time_to_live : 0);
    } else {
        sqlite3_bind_int64(q, 13, 0);
        sqlite3_bind_int64(q, 14, 0);
        sqlite3_bind_int64(q, 15, 0);
    }
    sqlite3_bind_int64(q, 16, n->now_ms);
    sqlite3_bind_int64(q, 17, n->now_ms);
    if (meta_exec_step(q) != SQLITE_DONE)
        return meta_db_fail(s, e, "queue create");
    return CMQ_OK;
}

/* Queues that used this one as their DLQ lose their policy. */
static int queue_before_delete(struct meta_store *s, int64_t row, const void *info,
                               struct meta_err *e)
{
    (void)info;
    int64_t sources[META_DLQ_SOURCES_MAX + 8];
    int n = 0;
    sqlite3_stmt *q = meta_prepare(s, "SELECT id FROM queues WHERE dlq_row = ?");
    if (!q)
        return meta_db_fail(s, e, "queue delete");
    sqlite3_bind_int64(q, 1, row);
    while (n < (int)(sizeof sources / sizeof sources[0]) && sqlite3_step(q) == SQLITE_ROW)
        sources[n++] = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    q = meta_prepare(s, "UPDATE queues SET dlq_row = NULL, dlq_policy = 0,"
                        " dlq_max_receive_count = 0, dlq_max_ttl_s = 0, modified_ms = ?"
                        " WHERE dlq_row = ?");
    if (!q)
        return meta_db_fail(s, e, "queue delete");
    sqlite3_bind_int64(q, 1, (int64_t)meta_now_ms(s));
    sqlite3_bind_int64(q, 2, row);
    if (meta_exec_step(q) != SQLITE_DONE)
        return meta_db_fail(s, e, "queue delete");
    for (int i = 0; i < n; i++) {
        cmq_QueueInfo src;
        if (meta_entity_by_row(s, &meta_queue_entity, sources[i], &src, NULL) == CMQ_OK)
            meta_entity_event(s, &meta_queue_entity, "updated", &src);
    }
    return CMQ_OK;
}

const struct meta_entity meta_queue_entity = {
    .kind = "queue",
    .table = "queues",
    .id_col = "queue_id",
    .id_prefix = "queue-",
    .name_param = "queueName",
    .select = QUEUE_SELECT,
    .alias = "q",
    .quota_off = offsetof(struct meta_store_opts, queues_per_account),
    .row_name_format = META_ROW(QUEUE_NAME_FORMAT),
    .row_not_found = META_ROW(QUEUE_NOT_EXIST),
    .row_exists = META_ROW(QUEUE_EXISTS),
    .row_quota = META_ROW(QUEUE_QUOTA),
    .row_recreate = META_ROW(RECREATE_TOO_SOON),
    .fill = queue_fill,
    .brief = queue_brief,
    .insert = queue_insert,
    .before_delete = queue_before_delete,
    .list_row = queue_list_row,
};

int meta_queue_create(struct meta_store *s, const cmq_QueueRequest *req, cmq_QueueInfo *out,
                      struct meta_err *e)
{
    int st = meta_entity_name_check(&meta_queue_entity, req->name, e);
    if (st != CMQ_OK)
        return st;
    struct queue_new a = {.req = req};
    if ((st = meta_attr(&r_heap, req->has_max_msg_heap_num, req->max_msg_heap_num, r_heap.dflt,
                        &a.heap, e)) != CMQ_OK ||
        (st = meta_attr(&r_polling, req->has_polling_wait_seconds, req->polling_wait_seconds,
                        r_polling.dflt, &a.polling, e)) != CMQ_OK ||
        (st = meta_attr(&r_visibility, req->has_visibility_timeout, req->visibility_timeout,
                        r_visibility.dflt, &a.vis, e)) != CMQ_OK ||
        (st = meta_attr(&r_qsize, req->has_max_msg_size, req->max_msg_size, r_qsize.dflt,
                        &a.size, e)) != CMQ_OK ||
        (st = meta_attr(&r_retention, req->has_msg_retention_seconds, req->msg_retention_seconds,
                        r_retention.dflt, &a.ret, e)) != CMQ_OK)
        return st;
    if (req->has_rewind_seconds && req->rewind_seconds < 0)
        return meta_range_check(&r_rewind, req->rewind_seconds, e);
    a.rew = req->has_rewind_seconds ? req->rewind_seconds : r_rewind.dflt;
    if (a.rew > a.ret)
        return meta_fail(e, CMQ_EINVAL, META_ROW(REWIND_ABOVE_RETENTION), "rewindSeconds",
                         "rewindSeconds cannot be greater than msgRetentionSeconds");
    return meta_entity_create(s, &meta_queue_entity, req->appid, req->name, &a, out, e);
}

int meta_queue_get(struct meta_store *s, const cmq_NameRequest *req, cmq_QueueInfo *out,
                   struct meta_err *e)
{
    return meta_entity_find(s, &meta_queue_entity, req->appid, req->name, out, NULL, e);
}

/* SetQueueAttributes inside the transaction: the attributes given, the
 * policy (new, cleared, or the current one re-checked against a changed
 * retention), then the row. */
static int queue_update(struct meta_store *s, const void *arg, const void *cur_info, int64_t row,
                        struct meta_err *e)
{
    const cmq_QueueRequest *req = arg;
    const cmq_QueueInfo *cur = cur_info;
    int64_t heap, polling, vis, size, ret, rew, dlq_row = 0;
    int st;
    if ((st = meta_attr(&r_heap, req->has_max_msg_heap_num, req->max_msg_heap_num,
                        cur->max_msg_heap_num, &heap, e)) != CMQ_OK ||
        (st = meta_attr(&r_polling, req->has_polling_wait_seconds, req->polling_wait_seconds,
                        cur->polling_wait_seconds, &polling, e)) != CMQ_OK ||
        (st = meta_attr(&r_visibility, req->has_visibility_timeout, req->visibility_timeout,
                        cur->visibility_timeout, &vis, e)) != CMQ_OK ||
        (st = meta_attr(&r_qsize, req->has_max_msg_size, req->max_msg_size, cur->max_msg_size,
                        &size, e)) != CMQ_OK ||
        (st = meta_attr(&r_retention, req->has_msg_retention_seconds, req->msg_retention_seconds,
                        cur->msg_retention_seconds, &ret, e)) != CMQ_OK)
        return st;
    if (req->has_rewind_seconds && req->rewind_seconds < 0)
        return meta_range_check(&r_rewind, req->rewind_seconds, e);
    rew = req->has_rewind_seconds ? req->rewind_seconds : cur->rewind_seconds;
    if (rew > ret)
        return meta_fail(e, CMQ_EINVAL, META_ROW(REWIND_ABOVE_RETENTION), "rewindSeconds",
                         "rewindSeconds cannot be greater than msgRetentionSeconds");
    cmq_DeadLetterPolicy pol = cmq_DeadLetterPolicy_init_zero;
    int has_pol = 0;
    if (req->has_dead_letter_policy) {
        pol = req->dead_letter_policy;
        has_pol = 1;
        if ((st = dlq_check(s, req->appid, row, &pol, ret, &dlq_row, e)) != CMQ_OK)
            return st;
    } else if (!req->clear_dead_letter_policy && cur->has_dead_letter_policy) {
        pol = cur->dead_letter_policy;
        has_pol = 1;
        if (pol.policy == 1 && pol.max_time_to_live >= ret)
            return meta_fail(e, CMQ_EINVAL, META_ROW(PARAM_RANGE), "msgRetentionSeconds",
                             "msgRetentionSeconds (%lld) must stay greater than the dead letter "
                             "policy's maxTimeToLive (%lld)",
                             (long long)ret, (long long)pol.max_time_to_live);
        dlq_row = meta_count_where(s, "SELECT dlq_row FROM queues WHERE id = ?", row);
        if (dlq_row <= 0)
            return meta_db_fail(s, e, "queue set");
    }
    sqlite3_stmt *q = meta_prepare(
        s, "UPDATE queues SET max_msg_heap_num = ?, polling_wait_s = ?, visibility_timeout_s = ?,"
           " max_msg_size = ?, msg_retention_s = ?, rewind_s = ?, dlq_row = ?, dlq_policy = ?,"
           " dlq_max_receive_count = ?, dlq_max_ttl_s = ?, modified_ms = ? WHERE id = ?");
    if (!q)
        return meta_db_fail(s, e, "queue set");
    sqlite3_bind_int64(q, 1, heap);
    sqlite3_bind_int64(q, 2, polling);
    sqlite3_bind_int64(q, 3, vis);
    sqlite3_bind_int64(q, 4, size);
    sqlite3_bind_int64(q, 5, ret);
    sqlite3_bind_int64(q, 6, rew);
    if (has_pol && dlq_row)
        sqlite3_bind_int64(q, 7, dlq_row);
    sqlite3_bind_int64(q, 8, has_pol ? pol.policy : 0);
    sqlite3_bind_int64(q, 9, has_pol && pol.policy == 0 ? pol.max_receive_count : 0);
    sqlite3_bind_int64(q, 10, has_pol && pol.policy == 1 ? pol.max_time_to_live : 0);
    sqlite3_bind_int64(q, 11, (int64_t)meta_now_ms(s));
    sqlite3_bind_int64(q, 12, row);
    if (meta_exec_step(q) != SQLITE_DONE)
        return meta_db_fail(s, e, "queue set");
    return CMQ_OK;
}

int meta_queue_set(struct meta_store *s, const cmq_QueueRequest *req, cmq_QueueInfo *out,
                   struct meta_err *e)
{
    cmq_QueueInfo cur;
    return meta_entity_set(s, &meta_queue_entity, req->appid, req->name, req, queue_update, &cur,
                           out, e);
}

int meta_queue_delete(struct meta_store *s, const cmq_NameRequest *req, cmq_QueueInfo *out,
                      struct meta_err *e)
{
    return meta_entity_delete(s, &meta_queue_entity, req->appid, req->name, out, e);
}

int meta_queue_list(struct meta_store *s, const cmq_ListRequest *req, cmq_QueueList *out,
                    struct meta_err *e)
{
    *out = (cmq_QueueList)cmq_QueueList_init_zero;
    return meta_entity_list(s, &meta_queue_entity, req, &out->total_count, out, e);
}
