/* meta_ns.c: the namespace: queues, topics and subscriptions (spec §5-§8).
 *
 * Rules kept here (docs/metadata.md lists each with its status and row):
 *  - names: 1-64 chars, an ASCII letter first, then letters, digits, '-';
 *    unique per account (queues, topics) or per topic (subscriptions)
 *    compared case-insensitively; the spelling given at creation is kept, and
 *    lookups are exact (spec §5.1 recommendation).
 *  - every attribute has a default and a range; a value outside it changes
 *    nothing and names the parameter.
 *  - a deleted queue or topic name can be created again only after
 *    name_reuse_wait_ms (a tombstone row remembers the deletion).
 *  - dead-letter policy: the DLQ exists in the same account, is not the queue
 *    itself, has no DLQ of its own, the queue is not itself a DLQ, and a DLQ
 *    serves at most 6 queues.  Deleting a DLQ clears its sources' policies.
 *  - a subscription whose endpoint is a queue outlives that queue (spec §6.5
 *    recommendation: pushes then fail and are retried).
 * Lists are ordered by creation (the row id), so offset/limit pages are stable.
 */
#include "meta_internal.h"

#include "status.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct range {
    const char *param;
    int64_t lo, hi, dflt;
};

static const struct range r_heap = {"maxMsgHeapNum", 1000000, 1000000000, 10000000};
static const struct range r_polling = {"pollingWaitSeconds", 0, 30, 0};
static const struct range r_visibility = {"visibilityTimeout", 1, 43200, 30};
static const struct range r_qsize = {"maxMsgSize", 1024, 1048576, 65536};
static const struct range r_retention = {"msgRetentionSeconds", 60, 1296000, 345600};
static const struct range r_rewind = {"rewindSeconds", 0, 1296000, 0};
static const struct range r_tsize = {"maxMsgSize", 1024, 1048576, 65536};
static const struct range r_receive = {"maxReceiveCount", 1, 1000, 0};
static const struct range r_ttl = {"maxTimeToLive", 300, 43200, 0};

static int range_check(const struct range *r, int64_t v, struct meta_err *e)
{
    if (v >= r->lo && v <= r->hi)
        return CMQ_OK;
    return meta_fail(e, CMQ_EINVAL, META_ROW(PARAM_RANGE), r->param,
                     "parameter %s value or length is out of range: %lld not in [%lld, %lld]",
                     r->param, (long long)v, (long long)r->lo, (long long)r->hi);
}

/* Applies an optional attribute: the given value (checked) or `keep`. */
static int attr(const struct range *r, bool has, int64_t v, int64_t keep, int64_t *out,
                struct meta_err *e)
{
    if (!has) {
        *out = keep;
        return CMQ_OK;
    }
    *out = v;
    return range_check(r, v, e);
}

static int exec_step(sqlite3_stmt *q)
{
    int rc = q ? sqlite3_step(q) : SQLITE_ERROR;
    sqlite3_finalize(q);
    return rc;
}

/* ---- tombstones and quotas ---- */

static int reuse_check(struct meta_store *s, const char *kind, uint64_t appid,
                       const char *name_lower, struct meta_err *e)
{
    if (s->o.name_reuse_wait_ms < 0)
        return CMQ_OK;
    sqlite3_stmt *q = meta_prepare(s, "SELECT deleted_ms FROM tombstones WHERE kind = ? AND"
                                      " appid = ? AND name_lower = ?");
    if (!q)
        return meta_db_fail(s, e, "tombstone lookup");
    sqlite3_bind_text(q, 1, kind, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(q, 2, (int64_t)appid);
    sqlite3_bind_text(q, 3, name_lower, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(q);
    int64_t deleted = rc == SQLITE_ROW ? sqlite3_column_int64(q, 0) : 0;
    sqlite3_finalize(q);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return meta_db_fail(s, e, "tombstone lookup");
    int64_t now = (int64_t)meta_now_ms(s);
    if (rc == SQLITE_ROW && now - deleted < s->o.name_reuse_wait_ms)
        return meta_fail(e, CMQ_EBUSY,
                         strcmp(kind, "topic") == 0 ? META_ROW(TOPIC_RECREATE_TOO_SOON)
                                                    : META_ROW(RECREATE_TOO_SOON),
                         NULL,
                         "it will take some time to release resources of previous %s before "
                         "you create a new one with the same name, please try later (%lld ms)",
                         kind, (long long)(s->o.name_reuse_wait_ms - (now - deleted)));
    return CMQ_OK;
}

static int tombstone_add(struct meta_store *s, const char *kind, uint64_t appid,
                         const char *name_lower)
{
    int64_t now = (int64_t)meta_now_ms(s);
    sqlite3_stmt *q = meta_prepare(s, "INSERT OR REPLACE INTO tombstones VALUES (?, ?, ?, ?)");
    if (!q)
        return CMQ_EIO;
    sqlite3_bind_text(q, 1, kind, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(q, 2, (int64_t)appid);
    sqlite3_bind_text(q, 3, name_lower, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(q, 4, now);
    if (exec_step(q) != SQLITE_DONE)
        return CMQ_EIO;
    /* Tombstones older than the waiting period have done their job. */
    int64_t wait = s->o.name_reuse_wait_ms > 0 ? s->o.name_reuse_wait_ms : 0;
    q = meta_prepare(s, "DELETE FROM tombstones WHERE deleted_ms < ?");
    if (!q)
        return CMQ_EIO;
    sqlite3_bind_int64(q, 1, now - wait);
    return exec_step(q) == SQLITE_DONE ? CMQ_OK : CMQ_EIO;
}

static int64_t count_where(struct meta_store *s, const char *sql, int64_t key)
{
    sqlite3_stmt *q = meta_prepare(s, sql);
    if (!q)
        return -1;
    sqlite3_bind_int64(q, 1, key);
    int64_t n = sqlite3_step(q) == SQLITE_ROW ? sqlite3_column_int64(q, 0) : -1;
    sqlite3_finalize(q);
    return n;
}

/* The checks CreateQueue and CreateTopic share, inside their transaction:
 * the name is free in the account (case-insensitively), not waiting out the
 * reuse period, and the account's quota has room.  `kind` is "queue" or "topic".  A database failure is reported as
 * CMQ_EIO with `e` left for the caller's meta_db_fail. */
static int create_name_check(struct meta_store *s, const char *kind, uint64_t appid,
                             const char *lower, int64_t quota, struct meta_err *e)
{
    int topic = strcmp(kind, "topic") == 0;
    char sql[96], param[16];
    snprintf(sql, sizeof sql, "SELECT name FROM %ss WHERE appid = ? AND name_lower = ?", kind);
    snprintf(param, sizeof param, "%sName", kind);
    sqlite3_stmt *q = meta_prepare(s, sql);
    if (!q)
        return CMQ_EIO;
    sqlite3_bind_int64(q, 1, (int64_t)appid);
    sqlite3_bind_text(q, 2, lower, -1, SQLITE_TRANSIENT);
    char existing[80] = "";
    int rc = sqlite3_step(q);
    if (rc == SQLITE_ROW)
        meta_col_text(q, 0, existing, sizeof existing);
    sqlite3_finalize(q);
    if (rc == SQLITE_ROW)
        return meta_fail(e, CMQ_EEXIST, topic ? META_ROW(TOPIC_EXISTS) : META_ROW(QUEUE_EXISTS), param, "%s is already existed, case insensitive: %s",
                         kind, existing);
    if (rc != SQLITE_DONE)
        return CMQ_EIO;
    int st = reuse_check(s, kind, appid, lower, e);
    if (st != CMQ_OK)
        return st;
    snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM %ss WHERE appid = ?", kind);
    int64_t n = count_where(s, sql, (int64_t)appid);
    if (n < 0)
        return CMQ_EIO;
    if (n >= quota)
        return meta_fail(e, CMQ_ELIMIT, topic ? META_ROW(TOPIC_QUOTA) : META_ROW(QUEUE_QUOTA), NULL,
                         "number of %ss has reached the limit (%lld)", kind, (long long)quota);
    return CMQ_OK;
}


/* ---- list paging (spec §6.2, §5.4) ---- */

static int page(const cmq_ListRequest *req, int64_t limit_max, int64_t offset_max,
                int64_t *offset, int64_t *limit, struct meta_err *e)
{
    *offset = 0;
    *limit = META_LIST_LIMIT_DEFAULT;
    if (req->has_offset) {
        if (req->offset < 0 || (offset_max > 0 && req->offset > offset_max))
            return meta_fail(e, CMQ_EINVAL, META_ROW(PARAM_RANGE), "offset",
                             "parameter offset value or length is out of range");
        *offset = req->offset;
    }
    if (req->has_limit) {
        if (req->limit < 0)
            return meta_fail(e, CMQ_EINVAL, META_ROW(PARAM_RANGE), "limit",
                             "parameter limit value or length is out of range");
        if (req->limit > 0)
            *limit = req->limit < limit_max ? req->limit : limit_max;
    }
    return CMQ_OK;
}

/* Counts and pages rows of `table` of one account ("queues", "topics") whose
 * lower-cased name contains the lower-cased search word.  Calls `row` with
 * (id-column text, name) for each row of the page. */
typedef void (*row_fn)(void *arg, const char *id, const char *name);

static int ns_list(struct meta_store *s, const char *table, const char *id_col,
                   const cmq_ListRequest *req, int64_t limit_max, uint32_t *total, row_fn row,
                   void *arg, struct meta_err *e)
{
    int64_t offset, limit;
    int st = page(req, limit_max, 0, &offset, &limit, e);
    if (st != CMQ_OK)
        return st;
    char word[sizeof req->search_word];
    meta_lower(req->search_word, word, sizeof word);
    char sql[320];
    snprintf(sql, sizeof sql,
             "SELECT COUNT(*) FROM %s WHERE appid = ?1 AND instr(name_lower, ?2) > 0", table);
    sqlite3_stmt *q = meta_prepare(s, sql);
    if (!q)
        return meta_db_fail(s, e, "list count");
    sqlite3_bind_int64(q, 1, (int64_t)req->appid);
    sqlite3_bind_text(q, 2, word, -1, SQLITE_TRANSIENT);
    *total = sqlite3_step(q) == SQLITE_ROW ? (uint32_t)sqlite3_column_int64(q, 0) : 0;
    sqlite3_finalize(q);
    snprintf(sql, sizeof sql,
             "SELECT %s, name FROM %s WHERE appid = ?1 AND instr(name_lower, ?2) > 0"
             " ORDER BY id LIMIT ?3 OFFSET ?4",
             id_col, table);
    q = meta_prepare(s, sql);
    if (!q)
        return meta_db_fail(s, e, "list");
    sqlite3_bind_int64(q, 1, (int64_t)req->appid);
    sqlite3_bind_text(q, 2, word, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(q, 3, limit);
    sqlite3_bind_int64(q, 4, offset);
    int rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW)
        row(arg, (const char *)sqlite3_column_text(q, 0), (const char *)sqlite3_column_text(q, 1));
    sqlite3_finalize(q);
    return rc == SQLITE_DONE ? CMQ_OK : meta_db_fail(s, e, "list");
}

/* ---- queues ---- */

#define QUEUE_COLS                                                                             \
    "q.id, q.appid, q.name, q.queue_id, COALESCE(q.partition_id, 0), q.max_msg_heap_num,"    \
    " q.polling_wait_s, q.visibility_timeout_s, q.max_msg_size, q.msg_retention_s,"          \
    " q.rewind_s, COALESCE(q.dlq_row, 0), COALESCE(d.name, ''), COALESCE(d.queue_id, ''),"   \
    " q.dlq_policy, q.dlq_max_receive_count, q.dlq_max_ttl_s, q.created_ms, q.modified_ms,"  \
    " (SELECT COUNT(*) FROM queues x WHERE x.dlq_row = q.id), q.num_id, COALESCE(d.num_id, 0)"  \
    " FROM queues q LEFT JOIN queues d ON d.id = q.dlq_row"

static void queue_fill(sqlite3_stmt *q, cmq_QueueInfo *out, int64_t *row)
{
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

/* Exact-name lookup within an account. */
static int queue_find(struct meta_store *s, uint64_t appid, const char *name, cmq_QueueInfo *out,
                      int64_t *row, struct meta_err *e)
{
    sqlite3_stmt *q = meta_prepare(s, "SELECT " QUEUE_COLS " WHERE q.appid = ? AND q.name = ?");
    if (!q)
        return meta_db_fail(s, e, "queue lookup");
    sqlite3_bind_int64(q, 1, (int64_t)appid);
    sqlite3_bind_text(q, 2, name, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(q);
    if (rc == SQLITE_ROW)
        queue_fill(q, out, row);
    sqlite3_finalize(q);
    if (rc == SQLITE_DONE)
        return meta_fail(e, CMQ_ENOTFOUND, META_ROW(QUEUE_NOT_EXIST), "queueName",
                         "queue is not existed, or deleted: %s", name);
    return rc == SQLITE_ROW ? CMQ_OK : meta_db_fail(s, e, "queue lookup");
}

static int queue_by_row(struct meta_store *s, int64_t row, cmq_QueueInfo *out, struct meta_err *e)
{
    sqlite3_stmt *q = meta_prepare(s, "SELECT " QUEUE_COLS " WHERE q.id = ?");
    if (!q)
        return meta_db_fail(s, e, "queue load");
    sqlite3_bind_int64(q, 1, row);
    int rc = sqlite3_step(q);
    if (rc == SQLITE_ROW)
        queue_fill(q, out, NULL);
    sqlite3_finalize(q);
    return rc == SQLITE_ROW ? CMQ_OK : meta_db_fail(s, e, "queue load");
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
    int st = p->policy == 0 ? range_check(&r_receive, p->max_receive_count, e)
                            : range_check(&r_ttl, p->max_time_to_live, e);
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
    st = queue_find(s, appid, p->dead_letter_queue, &dlq, dlq_row, NULL);
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
        int64_t n = count_where(s, "SELECT COUNT(*) FROM queues WHERE dlq_row = ?", self_row);
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

static void event_queue(struct meta_store *s, const char *kind, const cmq_QueueInfo *qi)
{
    cmq_MetaEvent *ev = meta_event_add(s, kind);
    if (!ev)
        return;
    ev->appid = qi->appid;
    snprintf(ev->name, sizeof ev->name, "%s", qi->name);
    snprintf(ev->id, sizeof ev->id, "%s", qi->queue_id);
    ev->partition_id = qi->partition_id;
    ev->num_id = qi->num_id;
}

int meta_queue_create(struct meta_store *s, const cmq_QueueRequest *req, cmq_QueueInfo *out,
                      struct meta_err *e)
{
    if (!meta_name_valid(req->name))
        return meta_fail(e, CMQ_EINVAL, META_ROW(QUEUE_NAME_FORMAT), "queueName",
                         "queue name format error: 1-64 letters, digits or '-', starting "
                         "with a letter");
    int64_t heap, polling, vis, size, ret, rew;
    int st;
    if ((st = attr(&r_heap, req->has_max_msg_heap_num, req->max_msg_heap_num, r_heap.dflt, &heap,
                   e)) != CMQ_OK ||
        (st = attr(&r_polling, req->has_polling_wait_seconds, req->polling_wait_seconds,
                   r_polling.dflt, &polling, e)) != CMQ_OK ||
        (st = attr(&r_visibility, req->has_visibility_timeout, req->visibility_timeout,
                   r_visibility.dflt, &vis, e)) != CMQ_OK ||
        (st = attr(&r_qsize, req->has_max_msg_size, req->max_msg_size, r_qsize.dflt, &size, e)) !=
            CMQ_OK ||
        (st = attr(&r_retention, req->has_msg_retention_seconds, req->msg_retention_seconds,
                   r_retention.dflt, &ret, e)) != CMQ_OK)
        return st;
    if (req->has_rewind_seconds && req->rewind_seconds < 0)
        return range_check(&r_rewind, req->rewind_seconds, e);
    rew = req->has_rewind_seconds ? req->rewind_seconds : r_rewind.dflt;
    if (rew > ret)
        return meta_fail(e, CMQ_EINVAL, META_ROW(REWIND_ABOVE_RETENTION), "rewindSeconds",
                         "rewindSeconds cannot be greater than msgRetentionSeconds");
    char lower[META_NAME_MAX + 1], qid[40];
    meta_lower(req->name, lower, sizeof lower);
    if (meta_random_id("queue-", qid, sizeof qid) != CMQ_OK)
        return meta_fail(e, CMQ_EINTERNAL, META_ROW(INTERNAL), NULL, "no random id");

    if ((st = meta_tx_begin(s, e)) != CMQ_OK)
        return st;
    int64_t dlq_row = 0;
    uint32_t pid = 0;
    if ((st = meta_account_exists(s, req->appid, e)) != CMQ_OK)
        goto fail;
    st = create_name_check(s, "queue", req->appid, lower, s->o.queues_per_account, e);
    if (st == CMQ_EIO)
        goto db;
    if (st != CMQ_OK)
        goto fail;
    if (req->has_dead_letter_policy &&
        (st = dlq_check(s, req->appid, 0, &req->dead_letter_policy, ret, &dlq_row, e)) != CMQ_OK)
        goto fail;
    if ((st = meta_place_pick(s, &pid, e)) != CMQ_OK)
        goto fail;
    uint64_t num_id;
    if (meta_next_num_id(s, &num_id) != CMQ_OK)
        goto db;
    int64_t now = (int64_t)meta_now_ms(s);
    sqlite3_stmt *q = meta_prepare(s, "INSERT INTO queues (appid, name, name_lower, queue_id, partition_id,"
                        " max_msg_heap_num, polling_wait_s, visibility_timeout_s, max_msg_size,"
                        " msg_retention_s, rewind_s, dlq_row, dlq_policy, dlq_max_receive_count,"
                        " dlq_max_ttl_s, created_ms, modified_ms, num_id)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
    if (!q)
        goto db;
    sqlite3_bind_int64(q, 18, (int64_t)num_id);
    sqlite3_bind_int64(q, 1, (int64_t)req->appid);
    sqlite3_bind_text(q, 2, req->name, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 3, lower, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 4, qid, -1, SQLITE_TRANSIENT);
    if (pid)
        sqlite3_bind_int64(q, 5, pid);
    sqlite3_bind_int64(q, 6, heap);
    sqlite3_bind_int64(q, 7, polling);
    sqlite3_bind_int64(q, 8, vis);
    sqlite3_bind_int64(q, 9, size);
    sqlite3_bind_int64(q, 10, ret);
    sqlite3_bind_int64(q, 11, rew);
    if (dlq_row) {
        sqlite3_bind_int64(q, 12, dlq_row);
        sqlite3_bind_int64(q, 13, req->dead_letter_policy.policy);
        sqlite3_bind_int64(q, 14, req->dead_letter_policy.policy == 0
                                      ? req->dead_letter_policy.max_receive_count
                                      : 0);
        sqlite3_bind_int64(q, 15, req->dead_letter_policy.policy == 1
                                      ? req->dead_letter_policy.max_time_to_live
                                      : 0);
    } else {
        sqlite3_bind_int64(q, 13, 0);
        sqlite3_bind_int64(q, 14, 0);
        sqlite3_bind_int64(q, 15, 0);
    }
    sqlite3_bind_int64(q, 16, now);
    sqlite3_bind_int64(q, 17, now);
    if (exec_step(q) != SQLITE_DONE)
        goto db;
    if ((st = queue_by_row(s, sqlite3_last_insert_rowid(s->db), out, e)) != CMQ_OK)
        goto fail;
    event_queue(s, "queue.created", out);
    return meta_tx_commit(s, e);
db:
    st = meta_db_fail(s, e, "queue create");
fail:
    meta_tx_rollback(s);
    return st;
}

int meta_queue_get(struct meta_store *s, const cmq_NameRequest *req, cmq_QueueInfo *out,
                   struct meta_err *e)
{
    return queue_find(s, req->appid, req->name, out, NULL, e);
}

int meta_queue_set(struct meta_store *s, const cmq_QueueRequest *req, cmq_QueueInfo *out,
                   struct meta_err *e)
{
    int st = meta_tx_begin(s, e);
    if (st != CMQ_OK)
        return st;
    cmq_QueueInfo cur;
    int64_t row, heap, polling, vis, size, ret, rew, dlq_row = 0;
    if ((st = queue_find(s, req->appid, req->name, &cur, &row, e)) != CMQ_OK)
        goto fail;
    if ((st = attr(&r_heap, req->has_max_msg_heap_num, req->max_msg_heap_num,
                   cur.max_msg_heap_num, &heap, e)) != CMQ_OK ||
        (st = attr(&r_polling, req->has_polling_wait_seconds, req->polling_wait_seconds,
                   cur.polling_wait_seconds, &polling, e)) != CMQ_OK ||
        (st = attr(&r_visibility, req->has_visibility_timeout, req->visibility_timeout,
                   cur.visibility_timeout, &vis, e)) != CMQ_OK ||
        (st = attr(&r_qsize, req->has_max_msg_size, req->max_msg_size, cur.max_msg_size, &size,
                   e)) != CMQ_OK ||
        (st = attr(&r_retention, req->has_msg_retention_seconds, req->msg_retention_seconds,
                   cur.msg_retention_seconds, &ret, e)) != CMQ_OK)
        goto fail;
    if (req->has_rewind_seconds && req->rewind_seconds < 0) {
        st = range_check(&r_rewind, req->rewind_seconds, e);
        goto fail;
    }
    rew = req->has_rewind_seconds ? req->rewind_seconds : cur.rewind_seconds;
    if (rew > ret) {
        st = meta_fail(e, CMQ_EINVAL, META_ROW(REWIND_ABOVE_RETENTION), "rewindSeconds",
                       "rewindSeconds cannot be greater than msgRetentionSeconds");
        goto fail;
    }
    /* The policy after this request: the new one, none, or the current one
     * (re-checked, because msgRetentionSeconds may have changed). */
    cmq_DeadLetterPolicy pol = cmq_DeadLetterPolicy_init_zero;
    int has_pol = 0;
    if (req->has_dead_letter_policy) {
        pol = req->dead_letter_policy;
        has_pol = 1;
        if ((st = dlq_check(s, req->appid, row, &pol, ret, &dlq_row, e)) != CMQ_OK)
            goto fail;
    } else if (!req->clear_dead_letter_policy && cur.has_dead_letter_policy) {
        pol = cur.dead_letter_policy;
        has_pol = 1;
        if (pol.policy == 1 && pol.max_time_to_live >= ret) {
            st = meta_fail(e, CMQ_EINVAL, META_ROW(PARAM_RANGE), "msgRetentionSeconds",
                           "msgRetentionSeconds (%lld) must stay greater than the dead letter "
                           "policy's maxTimeToLive (%lld)",
                           (long long)ret, (long long)pol.max_time_to_live);
            goto fail;
        }
        dlq_row = count_where(s, "SELECT dlq_row FROM queues WHERE id = ?", row);
        if (dlq_row <= 0)
            goto db;
    }
    sqlite3_stmt *q = meta_prepare(
        s, "UPDATE queues SET max_msg_heap_num = ?, polling_wait_s = ?, visibility_timeout_s = ?,"
           " max_msg_size = ?, msg_retention_s = ?, rewind_s = ?, dlq_row = ?, dlq_policy = ?,"
           " dlq_max_receive_count = ?, dlq_max_ttl_s = ?, modified_ms = ? WHERE id = ?");
    if (!q)
        goto db;
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
    if (exec_step(q) != SQLITE_DONE)
        goto db;
    if ((st = queue_by_row(s, row, out, e)) != CMQ_OK)
        goto fail;
    event_queue(s, "queue.updated", out);
    return meta_tx_commit(s, e);
db:
    st = meta_db_fail(s, e, "queue set");
fail:
    meta_tx_rollback(s);
    return st;
}

int meta_queue_delete(struct meta_store *s, const cmq_NameRequest *req, cmq_QueueInfo *out,
                      struct meta_err *e)
{
    int st = meta_tx_begin(s, e);
    if (st != CMQ_OK)
        return st;
    int64_t row;
    if ((st = queue_find(s, req->appid, req->name, out, &row, e)) != CMQ_OK)
        goto fail;
    /* Queues that used this one as their DLQ lose their policy. */
    int64_t sources[META_DLQ_SOURCES_MAX + 8];
    int n = 0;
    sqlite3_stmt *q = meta_prepare(s, "SELECT id FROM queues WHERE dlq_row = ?");
    if (!q)
        goto db;
    sqlite3_bind_int64(q, 1, row);
    while (n < (int)(sizeof sources / sizeof sources[0]) && sqlite3_step(q) == SQLITE_ROW)
        sources[n++] = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    q = meta_prepare(s, "UPDATE queues SET dlq_row = NULL, dlq_policy = 0,"
                        " dlq_max_receive_count = 0, dlq_max_ttl_s = 0, modified_ms = ?"
                        " WHERE dlq_row = ?");
    if (!q)
        goto db;
    sqlite3_bind_int64(q, 1, (int64_t)meta_now_ms(s));
    sqlite3_bind_int64(q, 2, row);
    if (exec_step(q) != SQLITE_DONE)
        goto db;
    for (int i = 0; i < n; i++) {
        cmq_QueueInfo src;
        if (queue_by_row(s, sources[i], &src, NULL) == CMQ_OK)
            event_queue(s, "queue.updated", &src);
    }
    q = meta_prepare(s, "DELETE FROM queues WHERE id = ?");
    if (!q)
        goto db;
    sqlite3_bind_int64(q, 1, row);
    if (exec_step(q) != SQLITE_DONE)
        goto db;
    char lower[META_NAME_MAX + 1];
    meta_lower(out->name, lower, sizeof lower);
    if (tombstone_add(s, "queue", req->appid, lower) != CMQ_OK)
        goto db;
    event_queue(s, "queue.deleted", out);
    return meta_tx_commit(s, e);
db:
    st = meta_db_fail(s, e, "queue delete");
fail:
    meta_tx_rollback(s);
    return st;
}

static void queue_row(void *arg, const char *id, const char *name)
{
    cmq_QueueList *l = arg;
    if (l->queues_count >= sizeof l->queues / sizeof l->queues[0])
        return;
    cmq_QueueBrief *b = &l->queues[l->queues_count++];
    snprintf(b->queue_id, sizeof b->queue_id, "%s", id);
    snprintf(b->queue_name, sizeof b->queue_name, "%s", name);
}

int meta_queue_list(struct meta_store *s, const cmq_ListRequest *req, cmq_QueueList *out,
                    struct meta_err *e)
{
    *out = (cmq_QueueList)cmq_QueueList_init_zero;
    return ns_list(s, "queues", "queue_id", req, META_LIST_LIMIT_MAX, &out->total_count,
                   queue_row, out, e);
}

/* ---- topics ---- */

#define TOPIC_COLS                                                                           \
    "t.id, t.appid, t.name, t.topic_id, COALESCE(t.partition_id, 0), t.max_msg_size,"       \
    " t.msg_retention_s, t.filter_type, t.created_ms, t.modified_ms,"                       \
    " (SELECT COUNT(*) FROM subscriptions x WHERE x.topic_row = t.id), t.num_id FROM topics t"

static void topic_fill(sqlite3_stmt *q, cmq_TopicInfo *out, int64_t *row)
{
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

static int topic_find(struct meta_store *s, uint64_t appid, const char *name, cmq_TopicInfo *out,
                      int64_t *row, struct meta_err *e)
{
    sqlite3_stmt *q = meta_prepare(s, "SELECT " TOPIC_COLS " WHERE t.appid = ? AND t.name = ?");
    if (!q)
        return meta_db_fail(s, e, "topic lookup");
    sqlite3_bind_int64(q, 1, (int64_t)appid);
    sqlite3_bind_text(q, 2, name, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(q);
    if (rc == SQLITE_ROW)
        topic_fill(q, out, row);
    sqlite3_finalize(q);
    if (rc == SQLITE_DONE)
        return meta_fail(e, CMQ_ENOTFOUND, META_ROW(TOPIC_NOT_EXIST), "topicName",
                         "topic is not existed, or deleted: %s", name);
    return rc == SQLITE_ROW ? CMQ_OK : meta_db_fail(s, e, "topic lookup");
}

static int topic_by_row(struct meta_store *s, int64_t row, cmq_TopicInfo *out, struct meta_err *e)
{
    sqlite3_stmt *q = meta_prepare(s, "SELECT " TOPIC_COLS " WHERE t.id = ?");
    if (!q)
        return meta_db_fail(s, e, "topic load");
    sqlite3_bind_int64(q, 1, row);
    int rc = sqlite3_step(q);
    if (rc == SQLITE_ROW)
        topic_fill(q, out, NULL);
    sqlite3_finalize(q);
    return rc == SQLITE_ROW ? CMQ_OK : meta_db_fail(s, e, "topic load");
}

static void event_topic(struct meta_store *s, const char *kind, const cmq_TopicInfo *t)
{
    cmq_MetaEvent *ev = meta_event_add(s, kind);
    if (!ev)
        return;
    ev->appid = t->appid;
    snprintf(ev->name, sizeof ev->name, "%s", t->name);
    snprintf(ev->id, sizeof ev->id, "%s", t->topic_id);
    ev->partition_id = t->partition_id;
    ev->num_id = t->num_id;
}

int meta_topic_create(struct meta_store *s, const cmq_TopicRequest *req, cmq_TopicInfo *out,
                      struct meta_err *e)
{
    if (!meta_name_valid(req->name))
        return meta_fail(e, CMQ_EINVAL, META_ROW(TOPIC_NAME_FORMAT), "topicName",
                         "topic name format error: 1-64 letters, digits or '-', starting "
                         "with a letter");
    int64_t size, ftype = req->has_filter_type ? req->filter_type : 1;
    int st = attr(&r_tsize, req->has_max_msg_size, req->max_msg_size, r_tsize.dflt, &size, e);
    if (st != CMQ_OK)
        return st;
    if (ftype == 0)
        ftype = 1; /* the legacy GetTopicAttributes doc numbers tag filtering 0 */
    if (ftype != 1 && ftype != 2)
        return meta_fail(e, CMQ_EINVAL, META_ROW(PARAM_RANGE), "filterType",
                         "parameter filterType value or length is out of range: 1 (tags) or "
                         "2 (routing keys)");
    char lower[META_NAME_MAX + 1], tid[40];
    meta_lower(req->name, lower, sizeof lower);
    if (meta_random_id("topic-", tid, sizeof tid) != CMQ_OK)
        return meta_fail(e, CMQ_EINTERNAL, META_ROW(INTERNAL), NULL, "no random id");
    if ((st = meta_tx_begin(s, e)) != CMQ_OK)
        return st;
    uint32_t pid = 0;
    if ((st = meta_account_exists(s, req->appid, e)) != CMQ_OK)
        goto fail;
    st = create_name_check(s, "topic", req->appid, lower, s->o.topics_per_account, e);
    if (st == CMQ_EIO)
        goto db;
    if (st != CMQ_OK)
        goto fail;
    if ((st = meta_place_pick(s, &pid, e)) != CMQ_OK)
        goto fail;
    uint64_t num_id;
    if (meta_next_num_id(s, &num_id) != CMQ_OK)
        goto db;
    int64_t now = (int64_t)meta_now_ms(s);
    sqlite3_stmt *q = meta_prepare(s, "INSERT INTO topics (appid, name, name_lower, topic_id, partition_id,"
                        " max_msg_size, msg_retention_s, filter_type, created_ms, modified_ms,"
                        " num_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
    if (!q)
        goto db;
    sqlite3_bind_int64(q, 11, (int64_t)num_id);
    sqlite3_bind_int64(q, 1, (int64_t)req->appid);
    sqlite3_bind_text(q, 2, req->name, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 3, lower, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 4, tid, -1, SQLITE_TRANSIENT);
    if (pid)
        sqlite3_bind_int64(q, 5, pid);
    sqlite3_bind_int64(q, 6, size);
    sqlite3_bind_int64(q, 7, META_TOPIC_RETENTION_S);
    sqlite3_bind_int64(q, 8, ftype);
    sqlite3_bind_int64(q, 9, now);
    sqlite3_bind_int64(q, 10, now);
    if (exec_step(q) != SQLITE_DONE)
        goto db;
    if ((st = topic_by_row(s, sqlite3_last_insert_rowid(s->db), out, e)) != CMQ_OK)
        goto fail;
    event_topic(s, "topic.created", out);
    return meta_tx_commit(s, e);
db:
    st = meta_db_fail(s, e, "topic create");
fail:
    meta_tx_rollback(s);
    return st;
}

int meta_topic_get(struct meta_store *s, const cmq_NameRequest *req, cmq_TopicInfo *out,
                   struct meta_err *e)
{
    return topic_find(s, req->appid, req->name, out, NULL, e);
}

int meta_topic_set(struct meta_store *s, const cmq_TopicRequest *req, cmq_TopicInfo *out,
                   struct meta_err *e)
{
    int st = meta_tx_begin(s, e);
    if (st != CMQ_OK)
        return st;
    cmq_TopicInfo cur;
    int64_t row, size;
    if ((st = topic_find(s, req->appid, req->name, &cur, &row, e)) != CMQ_OK)
        goto fail;
    if ((st = attr(&r_tsize, req->has_max_msg_size, req->max_msg_size, cur.max_msg_size, &size,
                   e)) != CMQ_OK)
        goto fail;
    if (req->has_filter_type &&
        (req->filter_type == 0 ? 1 : req->filter_type) != cur.filter_type) {
        st = meta_fail(e, CMQ_EINVAL, META_ROW(PARAM_ERROR), "filterType",
                       "filterType is fixed when the topic is created");
        goto fail;
    }
    sqlite3_stmt *q =
        meta_prepare(s, "UPDATE topics SET max_msg_size = ?, modified_ms = ? WHERE id = ?");
    if (!q)
        goto db;
    sqlite3_bind_int64(q, 1, size);
    sqlite3_bind_int64(q, 2, (int64_t)meta_now_ms(s));
    sqlite3_bind_int64(q, 3, row);
    if (exec_step(q) != SQLITE_DONE)
        goto db;
    if ((st = topic_by_row(s, row, out, e)) != CMQ_OK)
        goto fail;
    event_topic(s, "topic.updated", out);
    return meta_tx_commit(s, e);
db:
    st = meta_db_fail(s, e, "topic set");
fail:
    meta_tx_rollback(s);
    return st;
}

/* ---- subscriptions ---- */

#define SUB_COLS                                                                             \
    "s.id, t.appid, t.name, t.topic_id, s.name, s.sub_id, s.protocol, s.endpoint,"          \
    " s.notify_strategy, s.notify_content_format, s.created_ms, s.modified_ms,"            \
    " s.endpoint_queue_id, COALESCE(t.partition_id, 0), t.num_id,"                         \
    " COALESCE((SELECT q.num_id FROM queues q WHERE q.queue_id = s.endpoint_queue_id), 0),"  \
    " COALESCE((SELECT q.name FROM queues q WHERE q.queue_id = s.dlq_queue_id), ''),"        \
    " COALESCE((SELECT q.num_id FROM queues q WHERE q.queue_id = s.dlq_queue_id), 0)"        \
    " FROM subscriptions s JOIN topics t ON t.id = s.topic_row"

static int sub_fill(struct meta_store *s, sqlite3_stmt *q, cmq_SubInfo *out, int64_t *row,
                    uint32_t *partition)
{
    *out = (cmq_SubInfo)cmq_SubInfo_init_zero;
    int64_t id = sqlite3_column_int64(q, 0);
    if (row)
        *row = id;
    out->appid = (uint64_t)sqlite3_column_int64(q, 1);
    meta_col_text(q, 2, out->topic_name, sizeof out->topic_name);
    meta_col_text(q, 3, out->topic_id, sizeof out->topic_id);
    meta_col_text(q, 4, out->subscription_name, sizeof out->subscription_name);
    meta_col_text(q, 5, out->subscription_id, sizeof out->subscription_id);
    meta_col_text(q, 6, out->protocol, sizeof out->protocol);
    meta_col_text(q, 7, out->endpoint, sizeof out->endpoint);
    meta_col_text(q, 8, out->notify_strategy, sizeof out->notify_strategy);
    meta_col_text(q, 9, out->notify_content_format, sizeof out->notify_content_format);
    out->create_time = (uint64_t)sqlite3_column_int64(q, 10) / 1000;
    out->last_modify_time = (uint64_t)sqlite3_column_int64(q, 11) / 1000;
    meta_col_text(q, 12, out->endpoint_queue_id, sizeof out->endpoint_queue_id);
    if (partition)
        *partition = (uint32_t)sqlite3_column_int64(q, 13);
    out->topic_num_id = (uint64_t)sqlite3_column_int64(q, 14);
    out->endpoint_queue_num_id = (uint64_t)sqlite3_column_int64(q, 15);
    meta_col_text(q, 16, out->dead_letter_queue, sizeof out->dead_letter_queue);
    out->dead_letter_queue_num_id = (uint64_t)sqlite3_column_int64(q, 17);
    sqlite3_stmt *l =
        meta_prepare(s, "SELECT kind, value FROM sub_lists WHERE sub_row = ? ORDER BY kind, idx");
    if (!l)
        return CMQ_EIO;
    sqlite3_bind_int64(l, 1, id);
    while (sqlite3_step(l) == SQLITE_ROW) {
        if (sqlite3_column_int(l, 0) == 1 && out->filter_tags_count < META_TAGS_MAX)
            meta_col_text(l, 1, out->filter_tags[out->filter_tags_count++],
                          sizeof out->filter_tags[0]);
        else if (sqlite3_column_int(l, 0) == 2 && out->binding_keys_count < META_BINDING_KEYS_MAX)
            meta_col_text(l, 1, out->binding_keys[out->binding_keys_count++],
                          sizeof out->binding_keys[0]);
    }
    sqlite3_finalize(l);
    return CMQ_OK;
}

static int sub_find(struct meta_store *s, int64_t topic_row, const char *name, cmq_SubInfo *out,
                    int64_t *row, uint32_t *partition, struct meta_err *e)
{
    sqlite3_stmt *q = meta_prepare(s, "SELECT " SUB_COLS " WHERE s.topic_row = ? AND s.name = ?");
    if (!q)
        return meta_db_fail(s, e, "subscription lookup");
    sqlite3_bind_int64(q, 1, topic_row);
    sqlite3_bind_text(q, 2, name, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(q), st = CMQ_OK;
    if (rc == SQLITE_ROW)
        st = sub_fill(s, q, out, row, partition);
    sqlite3_finalize(q);
    if (rc == SQLITE_DONE)
        return meta_fail(e, CMQ_ENOTFOUND, META_ROW(SUBSCRIPTION_NOT_EXIST), "subscriptionName",
                         "subscription is not existed: %s", name);
    if (rc != SQLITE_ROW || st != CMQ_OK)
        return meta_db_fail(s, e, "subscription lookup");
    return CMQ_OK;
}

static void event_sub(struct meta_store *s, const char *kind, const cmq_SubInfo *si,
                      uint32_t partition)
{
    cmq_MetaEvent *ev = meta_event_add(s, kind);
    if (!ev)
        return;
    ev->appid = si->appid;
    snprintf(ev->name, sizeof ev->name, "%s", si->topic_name);
    snprintf(ev->sub_name, sizeof ev->sub_name, "%s", si->subscription_name);
    snprintf(ev->id, sizeof ev->id, "%s", si->subscription_id);
    ev->partition_id = partition;
}

int meta_topic_delete(struct meta_store *s, const cmq_NameRequest *req, cmq_TopicInfo *out,
                      struct meta_err *e)
{
    int st = meta_tx_begin(s, e);
    if (st != CMQ_OK)
        return st;
    int64_t row;
    if ((st = topic_find(s, req->appid, req->name, out, &row, e)) != CMQ_OK)
        goto fail;
    if (out->subscription_count > 0) {
        if (!s->o.delete_topic_with_subs) {
            st = meta_fail(e, CMQ_EBUSY, META_ROW(TOPIC_HAS_SUBSCRIPTIONS), "topicName",
                           "there exists subscriptions under this topic, please unsubscribe "
                           "all of them before DeleteTopic");
            goto fail;
        }
        sqlite3_stmt *q = meta_prepare(s, "SELECT " SUB_COLS " WHERE s.topic_row = ? ORDER BY s.id");
        if (!q)
            goto db;
        sqlite3_bind_int64(q, 1, row);
        while (sqlite3_step(q) == SQLITE_ROW) {
            cmq_SubInfo si;
            uint32_t part;
            if (sub_fill(s, q, &si, NULL, &part) == CMQ_OK)
                event_sub(s, "subscription.deleted", &si, part);
        }
        sqlite3_finalize(q);
    }
    sqlite3_stmt *q = meta_prepare(s, "DELETE FROM topics WHERE id = ?"); /* cascades */
    if (!q)
        goto db;
    sqlite3_bind_int64(q, 1, row);
    if (exec_step(q) != SQLITE_DONE)
        goto db;
    char lower[META_NAME_MAX + 1];
    meta_lower(out->name, lower, sizeof lower);
    if (tombstone_add(s, "topic", req->appid, lower) != CMQ_OK)
        goto db;
    event_topic(s, "topic.deleted", out);
    return meta_tx_commit(s, e);
db:
    st = meta_db_fail(s, e, "topic delete");
fail:
    meta_tx_rollback(s);
    return st;
}

static void topic_row_cb(void *arg, const char *id, const char *name)
{
    cmq_TopicList *l = arg;
    if (l->topics_count >= sizeof l->topics / sizeof l->topics[0])
        return;
    cmq_TopicBrief *b = &l->topics[l->topics_count++];
    snprintf(b->topic_id, sizeof b->topic_id, "%s", id);
    snprintf(b->topic_name, sizeof b->topic_name, "%s", name);
}

int meta_topic_list(struct meta_store *s, const cmq_ListRequest *req, cmq_TopicList *out,
                    struct meta_err *e)
{
    *out = (cmq_TopicList)cmq_TopicList_init_zero;
    return ns_list(s, "topics", "topic_id", req, META_LIST_LIMIT_MAX, &out->total_count,
                   topic_row_cb, out, e);
}

/* http(s)://host[:port][/...]: host a DNS name, IPv4 or [IPv6] (spec §8.1). */
static int http_endpoint_check(const char *ep, struct meta_err *e)
{
    size_t n = strlen(ep);
    if (n > META_ENDPOINT_LEN_MAX)
        return meta_fail(e, CMQ_EINVAL, META_ROW(PARAM_RANGE), "endpoint",
                         "parameter endpoint value or length is out of range (max %d)",
                         META_ENDPOINT_LEN_MAX);
    for (size_t i = 0; i < n; i++)
        if (isspace((unsigned char)ep[i]))
            return meta_fail(e, CMQ_EINVAL, META_ROW(ENDPOINT_BLANK), "endpoint",
                             "url connot contain any blank characters");
    const char *h;
    if (strncasecmp(ep, "http://", 7) == 0)
        h = ep + 7;
    else if (strncasecmp(ep, "https://", 8) == 0)
        h = ep + 8;
    else
        return meta_fail(e, CMQ_EINVAL, META_ROW(ENDPOINT_FORMAT), "endpoint",
                         "endpoint format error: an http endpoint starts with http:// or "
                         "https://");
    size_t hl = strcspn(h, "/?#");
    const char *port = NULL;
    size_t host_len = hl;
    int ok = hl > 0;
    if (ok && h[0] == '[') {
        const char *close = memchr(h, ']', hl);
        ok = close != NULL && close > h + 1;
        for (const char *c = h + 1; ok && c < close; c++)
            ok = isxdigit((unsigned char)*c) || *c == ':' || *c == '.';
        if (ok && (size_t)(close + 1 - h) < hl) {
            ok = close[1] == ':';
            port = close + 2;
        }
        host_len = ok ? (size_t)(close + 1 - h) : 0;
    } else if (ok) {
        const char *colon = memchr(h, ':', hl);
        if (colon) {
            port = colon + 1;
            host_len = (size_t)(colon - h);
        }
        ok = host_len > 0 && h[0] != '.' && h[0] != '-';
        for (size_t i = 0; ok && i < host_len; i++)
            ok = isalnum((unsigned char)h[i]) || h[i] == '.' || h[i] == '-' || h[i] == '_';
    }
    if (ok && port) {
        size_t pl = (size_t)(h + hl - port);
        long v = 0;
        ok = pl >= 1 && pl <= 5;
        for (size_t i = 0; ok && i < pl; i++) {
            ok = isdigit((unsigned char)port[i]);
            v = v * 10 + (port[i] - '0');
        }
        ok = ok && v >= 1 && v <= 65535;
    }
    if (!ok)
        return meta_fail(e, CMQ_EINVAL, META_ROW(ENDPOINT_ILLEGAL), "endpoint",
                         "illegal endpoint: the host must be a domain name or an IP address");
    return CMQ_OK;
}

/* Copies the non-empty entries of a request list into `out` after checking
 * count, length and dots.  kind 1 = filterTag, 2 = bindingKey. */
static int list_check(int kind, const char (*in)[129], size_t in_stride, pb_size_t n_in,
                      char (*out)[65], pb_size_t *n_out, struct meta_err *e)
{
    *n_out = 0;
    size_t max = kind == 1 ? META_TAGS_MAX : META_BINDING_KEYS_MAX;
    size_t len_max = kind == 1 ? META_TAG_LEN_MAX : META_BINDING_KEY_LEN_MAX;
    const char *param = kind == 1 ? "filterTag" : "bindingKey";
    for (pb_size_t i = 0; i < n_in; i++) {
        const char *v = (const char *)in + i * in_stride;
        if (!v[0])
            continue; /* spec §5.2: empty entries count as absent */
        if (*n_out >= max)
            return kind == 1 ? meta_fail(e, CMQ_EINVAL, META_ROW(FILTER_TAG_COUNT), param,
                                         "number of filterTag exceed limit (%d)", META_TAGS_MAX)
                             : meta_fail(e, CMQ_EINVAL, META_ROW(BINDING_KEY_TOO_MANY), param,
                                         "too many bindingKey (max %d)", META_BINDING_KEYS_MAX);
        size_t l = strlen(v);
        if (l > len_max)
            return meta_fail(e, CMQ_EINVAL, META_ROW(PARAM_RANGE), param,
                             "parameter %s value or length is out of range (max %zu)", param,
                             len_max);
        if (kind == 2) {
            int dots = 0;
            for (size_t j = 0; j < l; j++)
                dots += v[j] == '.';
            if (dots > META_BINDING_KEY_DOTS_MAX)
                return meta_fail(e, CMQ_EINVAL, META_ROW(TOO_MANY_DELIMITERS), param,
                                 "too many delimeters in bindingKey (max %d '.')",
                                 META_BINDING_KEY_DOTS_MAX);
        }
        snprintf(out[*n_out], 65, "%s", v);
        (*n_out)++;
    }
    return CMQ_OK;
}

static int strategy_norm(const char *in, char *out, size_t cap, struct meta_err *e)
{
    if (strcasecmp(in, "BACKOFF_RETRY") == 0 || strcasecmp(in, "EXPONENTIAL_DECAY_RETRY") == 0) {
        meta_lower(in, out, cap);
        for (char *c = out; *c; c++)
            *c = (char)toupper((unsigned char)*c);
        return CMQ_OK;
    }
    return meta_fail(e, CMQ_EINVAL, META_ROW(NOTIFY_STRATEGY_UNDEFINED), "notifyStrategy",
                     "undefined notify retry stragety: BACKOFF_RETRY or "
                     "EXPONENTIAL_DECAY_RETRY");
}

static int format_norm(const char *in, const char *protocol, char *out, size_t cap,
                       struct meta_err *e)
{
    if (strcasecmp(in, "JSON") != 0 && strcasecmp(in, "SIMPLIFIED") != 0)
        return meta_fail(e, CMQ_EINVAL, META_ROW(NOTIFY_FORMAT_UNDEFINED), "notifyContentFormat",
                         "undefined notify content format: JSON or SIMPLIFIED");
    /* Spec §8.1: a queue endpoint receives SIMPLIFIED.  The Python and Java
     * SDKs send JSON for queue subscriptions by default, so we coerce rather
     * than answer 10640. */
    if (strcmp(protocol, "queue") == 0 || strcasecmp(in, "SIMPLIFIED") == 0)
        snprintf(out, cap, "SIMPLIFIED");
    else
        snprintf(out, cap, "JSON");
    return CMQ_OK;
}

static int sub_lists_write(struct meta_store *s, int64_t sub_row, int kind, char (*vals)[65],
                           pb_size_t n)
{
    sqlite3_stmt *q = meta_prepare(s, "DELETE FROM sub_lists WHERE sub_row = ? AND kind = ?");
    if (!q)
        return CMQ_EIO;
    sqlite3_bind_int64(q, 1, sub_row);
    sqlite3_bind_int(q, 2, kind);
    if (exec_step(q) != SQLITE_DONE)
        return CMQ_EIO;
    for (pb_size_t i = 0; i < n; i++) {
        q = meta_prepare(s, "INSERT INTO sub_lists VALUES (?, ?, ?, ?)");
        if (!q)
            return CMQ_EIO;
        sqlite3_bind_int64(q, 1, sub_row);
        sqlite3_bind_int(q, 2, kind);
        sqlite3_bind_int(q, 3, (int)i);
        sqlite3_bind_text(q, 4, vals[i], -1, SQLITE_TRANSIENT);
        if (exec_step(q) != SQLITE_DONE)
            return CMQ_EIO;
    }
    return CMQ_OK;
}

int meta_sub_create(struct meta_store *s, const cmq_SubRequest *req, cmq_SubInfo *out,
                    struct meta_err *e)
{
    char protocol[8], strategy[32], format[16], lower[META_NAME_MAX + 1], sid[40];
    char tags[META_TAGS_MAX][65], keys[META_BINDING_KEYS_MAX][65];
    pb_size_t n_tags, n_keys;
    int st;
    if (!meta_name_valid(req->subscription_name))
        return meta_fail(e, CMQ_EINVAL, META_ROW(SUBSCRIPTION_NAME_FORMAT), "subscriptionName",
                         "subscription name format error: 1-64 letters, digits or '-', "
                         "starting with a letter");
    if (strcasecmp(req->protocol, "http") == 0)
        strcpy(protocol, "http");
    else if (strcasecmp(req->protocol, "queue") == 0)
        strcpy(protocol, "queue");
    else
        return meta_fail(e, CMQ_EINVAL, META_ROW(PROTOCOL_UNDEFINED), "protocol",
                         "undefined protocol: http or queue");
    if (!req->endpoint[0])
        return meta_fail(e, CMQ_EINVAL, META_ROW(ENDPOINT_FORMAT), "endpoint", "endpoint format error: empty");
    if (strcmp(protocol, "http") == 0) {
        if ((st = http_endpoint_check(req->endpoint, e)) != CMQ_OK)
            return st;
    } else if (!meta_name_valid(req->endpoint)) {
        return meta_fail(e, CMQ_EINVAL, META_ROW(ENDPOINT_FORMAT), "endpoint",
                         "endpoint format error: a queue endpoint is a queue name");
    }
    if ((st = strategy_norm(req->notify_strategy[0] ? req->notify_strategy
                                                     : "EXPONENTIAL_DECAY_RETRY",
                            strategy, sizeof strategy, e)) != CMQ_OK ||
        (st = format_norm(req->notify_content_format[0] ? req->notify_content_format : "JSON",
                          protocol, format, sizeof format, e)) != CMQ_OK)
        return st;
    if ((st = list_check(1, (const char(*)[129])req->filter_tags, sizeof req->filter_tags[0],
                         req->filter_tags_count, tags, &n_tags, e)) != CMQ_OK ||
        (st = list_check(2, (const char(*)[129])req->binding_keys, sizeof req->binding_keys[0],
                         req->binding_keys_count, keys, &n_keys, e)) != CMQ_OK)
        return st;
    meta_lower(req->subscription_name, lower, sizeof lower);
    if (meta_random_id("subscription-", sid, sizeof sid) != CMQ_OK)
        return meta_fail(e, CMQ_EINTERNAL, META_ROW(INTERNAL), NULL, "no random id");

    if ((st = meta_tx_begin(s, e)) != CMQ_OK)
        return st;
    cmq_TopicInfo t;
    int64_t trow;
    char queue_id[40] = "";
    if ((st = topic_find(s, req->appid, req->topic_name, &t, &trow, e)) != CMQ_OK)
        goto fail;
    if (t.filter_type == 2 && n_keys == 0) {
        st = meta_fail(e, CMQ_EINVAL, META_ROW(BINDING_KEY_MISSING), "bindingKey",
                       "parameters lack of bindingKey: the topic routes by key (filterType 2)");
        goto fail;
    }
    if (strcmp(protocol, "queue") == 0) {
        cmq_QueueInfo qi;
        if ((st = queue_find(s, req->appid, req->endpoint, &qi, NULL, e)) != CMQ_OK)
            goto fail;
        snprintf(queue_id, sizeof queue_id, "%s", qi.queue_id);
    }
    char dlq_id[40] = "";
    if (req->dead_letter_queue[0]) {
        cmq_QueueInfo qi;
        if ((st = queue_find(s, req->appid, req->dead_letter_queue, &qi, NULL, e)) != CMQ_OK)
            goto fail;
        snprintf(dlq_id, sizeof dlq_id, "%s", qi.queue_id);
    }
    sqlite3_stmt *q =
        meta_prepare(s, "SELECT name FROM subscriptions WHERE topic_row = ? AND name_lower = ?");
    if (!q)
        goto db;
    sqlite3_bind_int64(q, 1, trow);
    sqlite3_bind_text(q, 2, lower, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(q);
    sqlite3_finalize(q);
    if (rc == SQLITE_ROW) {
        st = meta_fail(e, CMQ_EEXIST, META_ROW(SUBSCRIPTION_EXISTS), "subscriptionName",
                       "subscribtion is already existed, case insensitive");
        goto fail;
    }
    if (rc != SQLITE_DONE)
        goto db;
    if ((int64_t)t.subscription_count >= s->o.subs_per_topic) {
        st = meta_fail(e, CMQ_ELIMIT, META_ROW(SUBSCRIPTION_QUOTA), NULL,
                       "number of subscription has reached the limit (%lld)",
                       (long long)s->o.subs_per_topic);
        goto fail;
    }
    int64_t now = (int64_t)meta_now_ms(s);
    q = meta_prepare(s, "INSERT INTO subscriptions (topic_row, name, name_lower, sub_id, protocol,"
                        " endpoint, endpoint_queue_id, notify_strategy, notify_content_format,"
                        " created_ms, modified_ms, dlq_queue_id)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
    if (!q)
        goto db;
    sqlite3_bind_int64(q, 1, trow);
    sqlite3_bind_text(q, 2, req->subscription_name, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 3, lower, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 4, sid, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 5, protocol, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 6, req->endpoint, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 7, queue_id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 8, strategy, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 9, format, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(q, 10, now);
    sqlite3_bind_int64(q, 11, now);
    sqlite3_bind_text(q, 12, dlq_id, -1, SQLITE_TRANSIENT);
    if (exec_step(q) != SQLITE_DONE)
        goto db;
    int64_t row = sqlite3_last_insert_rowid(s->db);
    if (sub_lists_write(s, row, 1, tags, n_tags) != CMQ_OK ||
        sub_lists_write(s, row, 2, keys, n_keys) != CMQ_OK)
        goto db;
    if ((st = sub_find(s, trow, req->subscription_name, out, NULL, NULL, e)) != CMQ_OK)
        goto fail;
    event_sub(s, "subscription.created", out, t.partition_id);
    return meta_tx_commit(s, e);
db:
    st = meta_db_fail(s, e, "subscribe");
fail:
    meta_tx_rollback(s);
    return st;
}

/* Finds topic and subscription; used by get, set, delete, clear. */
static int sub_locate(struct meta_store *s, uint64_t appid, const char *topic, const char *name,
                      cmq_SubInfo *out, int64_t *row, cmq_TopicInfo *t, struct meta_err *e)
{
    int64_t trow;
    int st = topic_find(s, appid, topic, t, &trow, e);
    if (st != CMQ_OK)
        return st;
    return sub_find(s, trow, name, out, row, NULL, e);
}

int meta_sub_get(struct meta_store *s, const cmq_SubNameRequest *req, cmq_SubInfo *out,
                 struct meta_err *e)
{
    cmq_TopicInfo t;
    return sub_locate(s, req->appid, req->topic_name, req->subscription_name, out, NULL, &t, e);
}

int meta_sub_set(struct meta_store *s, const cmq_SubRequest *req, cmq_SubInfo *out,
                 struct meta_err *e)
{
    char tags[META_TAGS_MAX][65], keys[META_BINDING_KEYS_MAX][65], strategy[32], format[16];
    pb_size_t n_tags = 0, n_keys = 0;
    int st;
    if ((st = list_check(1, (const char(*)[129])req->filter_tags, sizeof req->filter_tags[0],
                         req->filter_tags_count, tags, &n_tags, e)) != CMQ_OK ||
        (st = list_check(2, (const char(*)[129])req->binding_keys, sizeof req->binding_keys[0],
                         req->binding_keys_count, keys, &n_keys, e)) != CMQ_OK)
        return st;
    if ((st = meta_tx_begin(s, e)) != CMQ_OK)
        return st;
    cmq_SubInfo cur;
    cmq_TopicInfo t;
    int64_t row;
    if ((st = sub_locate(s, req->appid, req->topic_name, req->subscription_name, &cur, &row, &t,
                         e)) != CMQ_OK)
        goto fail;
    if ((req->protocol[0] && strcasecmp(req->protocol, cur.protocol) != 0) ||
        (req->endpoint[0] && strcmp(req->endpoint, cur.endpoint) != 0)) {
        st = meta_fail(e, CMQ_EINVAL, META_ROW(PARAM_ERROR), req->protocol[0] ? "protocol" : "endpoint",
                       "protocol and endpoint of a subscription cannot be changed");
        goto fail;
    }
    snprintf(strategy, sizeof strategy, "%s", cur.notify_strategy);
    snprintf(format, sizeof format, "%s", cur.notify_content_format);
    if (req->notify_strategy[0] &&
        (st = strategy_norm(req->notify_strategy, strategy, sizeof strategy, e)) != CMQ_OK)
        goto fail;
    if (req->notify_content_format[0] &&
        (st = format_norm(req->notify_content_format, cur.protocol, format, sizeof format, e)) !=
            CMQ_OK)
        goto fail;
    if (req->has_binding_keys && t.filter_type == 2 && n_keys == 0) {
        st = meta_fail(e, CMQ_EINVAL, META_ROW(BINDING_KEY_MISSING), "bindingKey",
                       "parameters lack of bindingKey: the topic routes by key (filterType 2)");
        goto fail;
    }
    if (req->dead_letter_queue[0] || req->clear_dead_letter_queue) {
        char dlq_id[40] = "";
        if (req->dead_letter_queue[0]) {
            cmq_QueueInfo qi;
            if ((st = queue_find(s, req->appid, req->dead_letter_queue, &qi, NULL, e)) != CMQ_OK)
                goto fail;
            snprintf(dlq_id, sizeof dlq_id, "%s", qi.queue_id);
        }
        sqlite3_stmt *d = meta_prepare(s, "UPDATE subscriptions SET dlq_queue_id = ? WHERE id = ?");
        if (!d)
            goto db;
        sqlite3_bind_text(d, 1, dlq_id, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(d, 2, row);
        if (exec_step(d) != SQLITE_DONE)
            goto db;
    }
    sqlite3_stmt *q = meta_prepare(s, "UPDATE subscriptions SET notify_strategy = ?,"
                                      " notify_content_format = ?, modified_ms = ? WHERE id = ?");
    if (!q)
        goto db;
    sqlite3_bind_text(q, 1, strategy, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 2, format, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(q, 3, (int64_t)meta_now_ms(s));
    sqlite3_bind_int64(q, 4, row);
    if (exec_step(q) != SQLITE_DONE)
        goto db;
    if ((req->has_filter_tags && sub_lists_write(s, row, 1, tags, n_tags) != CMQ_OK) ||
        (req->has_binding_keys && sub_lists_write(s, row, 2, keys, n_keys) != CMQ_OK))
        goto db;
    cmq_SubNameRequest nr = cmq_SubNameRequest_init_zero;
    nr.appid = req->appid;
    snprintf(nr.topic_name, sizeof nr.topic_name, "%s", req->topic_name);
    snprintf(nr.subscription_name, sizeof nr.subscription_name, "%s", req->subscription_name);
    if ((st = meta_sub_get(s, &nr, out, e)) != CMQ_OK)
        goto fail;
    event_sub(s, "subscription.updated", out, t.partition_id);
    return meta_tx_commit(s, e);
db:
    st = meta_db_fail(s, e, "subscription set");
fail:
    meta_tx_rollback(s);
    return st;
}

int meta_sub_delete(struct meta_store *s, const cmq_SubNameRequest *req, cmq_SubInfo *out,
                    struct meta_err *e)
{
    int st = meta_tx_begin(s, e);
    if (st != CMQ_OK)
        return st;
    cmq_TopicInfo t;
    int64_t row;
    if ((st = sub_locate(s, req->appid, req->topic_name, req->subscription_name, out, &row, &t,
                         e)) != CMQ_OK)
        goto fail;
    sqlite3_stmt *q = meta_prepare(s, "DELETE FROM subscriptions WHERE id = ?");
    if (!q)
        goto db;
    sqlite3_bind_int64(q, 1, row);
    if (exec_step(q) != SQLITE_DONE)
        goto db;
    event_sub(s, "subscription.deleted", out, t.partition_id);
    return meta_tx_commit(s, e);
db:
    st = meta_db_fail(s, e, "unsubscribe");
fail:
    meta_tx_rollback(s);
    return st;
}

int meta_sub_clear_tags(struct meta_store *s, const cmq_SubNameRequest *req, cmq_SubInfo *out,
                        struct meta_err *e)
{
    int st = meta_tx_begin(s, e);
    if (st != CMQ_OK)
        return st;
    cmq_TopicInfo t;
    int64_t row;
    if ((st = sub_locate(s, req->appid, req->topic_name, req->subscription_name, out, &row, &t,
                         e)) != CMQ_OK)
        goto fail;
    if (sub_lists_write(s, row, 1, NULL, 0) != CMQ_OK)
        goto db;
    sqlite3_stmt *q = meta_prepare(s, "UPDATE subscriptions SET modified_ms = ? WHERE id = ?");
    if (!q)
        goto db;
    sqlite3_bind_int64(q, 1, (int64_t)meta_now_ms(s));
    sqlite3_bind_int64(q, 2, row);
    if (exec_step(q) != SQLITE_DONE)
        goto db;
    if ((st = meta_sub_get(s, req, out, e)) != CMQ_OK)
        goto fail;
    event_sub(s, "subscription.updated", out, t.partition_id);
    return meta_tx_commit(s, e);
db:
    st = meta_db_fail(s, e, "clear filter tags");
fail:
    meta_tx_rollback(s);
    return st;
}

int meta_sub_list(struct meta_store *s, const cmq_ListRequest *req, cmq_SubList *out,
                  struct meta_err *e)
{
    *out = (cmq_SubList)cmq_SubList_init_zero;
    int64_t offset, limit, trow;
    int st = page(req, META_SUB_LIST_LIMIT_MAX, META_SUB_LIST_OFFSET_MAX, &offset, &limit, e);
    if (st != CMQ_OK)
        return st;
    cmq_TopicInfo t;
    if ((st = topic_find(s, req->appid, req->topic_name, &t, &trow, e)) != CMQ_OK)
        return st;
    char word[sizeof req->search_word];
    meta_lower(req->search_word, word, sizeof word);
    sqlite3_stmt *q = meta_prepare(s, "SELECT COUNT(*) FROM subscriptions WHERE topic_row = ? AND"
                                      " instr(name_lower, ?) > 0");
    if (!q)
        return meta_db_fail(s, e, "subscription count");
    sqlite3_bind_int64(q, 1, trow);
    sqlite3_bind_text(q, 2, word, -1, SQLITE_TRANSIENT);
    out->total_count = sqlite3_step(q) == SQLITE_ROW ? (uint32_t)sqlite3_column_int64(q, 0) : 0;
    sqlite3_finalize(q);
    out->subscriptions = calloc((size_t)limit, sizeof *out->subscriptions);
    if (!out->subscriptions)
        return meta_fail(e, CMQ_ENOMEM, META_ROW(INTERNAL), NULL, "out of memory");
    q = meta_prepare(s, "SELECT " SUB_COLS " WHERE s.topic_row = ? AND instr(s.name_lower, ?) > 0"
                        " ORDER BY s.id LIMIT ? OFFSET ?");
    if (!q)
        return meta_db_fail(s, e, "subscription list");
    sqlite3_bind_int64(q, 1, trow);
    sqlite3_bind_text(q, 2, word, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(q, 3, limit);
    sqlite3_bind_int64(q, 4, offset);
    int rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW && out->subscriptions_count < limit)
        if (sub_fill(s, q, &out->subscriptions[out->subscriptions_count], NULL, NULL) == CMQ_OK)
            out->subscriptions_count++;
    sqlite3_finalize(q);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? CMQ_OK : meta_db_fail(s, e, "subscription list");
}
