/* meta_ns.c: the namespace engine: create / get / set / delete / list of
 * queues and topics from one entity descriptor (meta_ns_internal.h), and
 * the helpers the namespace files share (attribute ranges, paging).
 *
 * Rules kept here (docs/metadata.md lists each with its status and row):
 *  - names: 1-64 chars, an ASCII letter first, then letters, digits, '-';
 *    unique per account compared case-insensitively; the spelling given at
 *    creation is kept, and lookups are exact (spec §5.1 recommendation).
 *  - every attribute has a default and a range; a value outside it changes
 *    nothing and names the parameter.
 *  - a deleted queue or topic name can be created again only after
 *    name_reuse_wait_ms (a tombstone row remembers the deletion).
 *  - an account holds at most its quota of queues, and of topics.
 * Lists are ordered by creation (the row id), so offset/limit pages are stable.
 * What differs between queues and topics lives in meta_queue.c and
 * meta_topic.c; subscriptions in meta_sub.c.
 */
#include "meta_ns_internal.h"

#include "status.h"

#include <stdio.h>
#include <string.h>

/* ---- shared helpers ---- */

int meta_range_check(const struct meta_range *r, int64_t v, struct meta_err *e)
{
    if (v >= r->lo && v <= r->hi)
        return CMQ_OK;
    return meta_fail(e, CMQ_EINVAL, META_ROW(PARAM_RANGE), r->param,
                     "parameter %s value or length is out of range: %lld not in [%lld, %lld]",
                     r->param, (long long)v, (long long)r->lo, (long long)r->hi);
}

int meta_attr(const struct meta_range *r, bool has, int64_t v, int64_t keep, int64_t *out,
              struct meta_err *e)
{
    if (!has) {
        *out = keep;
        return CMQ_OK;
    }
    *out = v;
    return meta_range_check(r, v, e);
}

int meta_exec_step(sqlite3_stmt *q)
{
    int rc = q ? sqlite3_step(q) : SQLITE_ERROR;
    sqlite3_finalize(q);
    return rc;
}

int64_t meta_count_where(struct meta_store *s, const char *sql, int64_t key)
{
    sqlite3_stmt *q = meta_prepare(s, sql);
    if (!q)
        return -1;
    sqlite3_bind_int64(q, 1, key);
    int64_t n = sqlite3_step(q) == SQLITE_ROW ? sqlite3_column_int64(q, 0) : -1;
    sqlite3_finalize(q);
    return n;
}

/* ---- list paging (spec §6.2, §5.4) ---- */

int meta_page(const cmq_ListRequest *req, int64_t limit_max, int64_t offset_max,
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

/* ---- tombstones and quotas ---- */

static int reuse_check(struct meta_store *s, const struct meta_entity *d, uint64_t appid,
                       const char *name_lower, struct meta_err *e)
{
    if (s->o.name_reuse_wait_ms < 0)
        return CMQ_OK;
    sqlite3_stmt *q = meta_prepare(s, "SELECT deleted_ms FROM tombstones WHERE kind = ? AND"
                                      " appid = ? AND name_lower = ?");
    if (!q)
        return meta_db_fail(s, e, "tombstone lookup");
    sqlite3_bind_text(q, 1, d->kind, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(q, 2, (int64_t)appid);
    sqlite3_bind_text(q, 3, name_lower, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(q);
    int64_t deleted = rc == SQLITE_ROW ? sqlite3_column_int64(q, 0) : 0;
    sqlite3_finalize(q);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return meta_db_fail(s, e, "tombstone lookup");
    int64_t now = (int64_t)meta_now_ms(s);
    if (rc == SQLITE_ROW && now - deleted < s->o.name_reuse_wait_ms)
        return meta_fail(e, CMQ_EBUSY, d->row_recreate, NULL,
                         "it will take some time to release resources of previous %s before "
                         "you create a new one with the same name, please try later (%lld ms)",
                         d->kind, (long long)(s->o.name_reuse_wait_ms - (now - deleted)));
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
    if (meta_exec_step(q) != SQLITE_DONE)
        return CMQ_EIO;
    /* Tombstones older than the waiting period have done their job. */
    int64_t wait = s->o.name_reuse_wait_ms > 0 ? s->o.name_reuse_wait_ms : 0;
    q = meta_prepare(s, "DELETE FROM tombstones WHERE deleted_ms < ?");
    if (!q)
        return CMQ_EIO;
    sqlite3_bind_int64(q, 1, now - wait);
    return meta_exec_step(q) == SQLITE_DONE ? CMQ_OK : CMQ_EIO;
}

/* Inside the create's transaction: the name is free in the account
 * (case-insensitively), not waiting out the reuse period, and the account's
 * quota has room.  A database failure is reported as CMQ_EIO with `e` left
 * for the caller's meta_db_fail. */
static int create_name_check(struct meta_store *s, const struct meta_entity *d, uint64_t appid,
                             const char *lower, struct meta_err *e)
{
    char sql[96];
    snprintf(sql, sizeof sql, "SELECT name FROM %s WHERE appid = ? AND name_lower = ?", d->table);
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
        return meta_fail(e, CMQ_EEXIST, d->row_exists, d->name_param,
                         "%s is already existed, case insensitive: %s", d->kind, existing);
    if (rc != SQLITE_DONE)
        return CMQ_EIO;
    int st = reuse_check(s, d, appid, lower, e);
    if (st != CMQ_OK)
        return st;
    snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM %s WHERE appid = ?", d->table);
    int64_t n = meta_count_where(s, sql, (int64_t)appid);
    if (n < 0)
        return CMQ_EIO;
    int64_t quota;
    memcpy(&quota, (const char *)&s->o + d->quota_off, sizeof quota);
    if (n >= quota)
        return meta_fail(e, CMQ_ELIMIT, d->row_quota, NULL,
                         "number of %ss has reached the limit (%lld)", d->kind, (long long)quota);
    return CMQ_OK;
}

/* ---- the entity operations ---- */

static int db_fail(struct meta_store *s, const struct meta_entity *d, const char *op,
                   struct meta_err *e)
{
    char what[48];
    snprintf(what, sizeof what, "%s %s", d->kind, op);
    return meta_db_fail(s, e, what);
}

int meta_entity_name_check(const struct meta_entity *d, const char *name, struct meta_err *e)
{
    if (meta_name_valid(name))
        return CMQ_OK;
    return meta_fail(e, CMQ_EINVAL, d->row_name_format, d->name_param,
                     "%s name format error: 1-64 letters, digits or '-', starting with a letter",
                     d->kind);
}

int meta_entity_find(struct meta_store *s, const struct meta_entity *d, uint64_t appid,
                     const char *name, void *info, int64_t *row, struct meta_err *e)
{
    char sql[1024];
    snprintf(sql, sizeof sql, "%s WHERE %s.appid = ? AND %s.name = ?", d->select, d->alias,
             d->alias);
    sqlite3_stmt *q = meta_prepare(s, sql);
    if (!q)
        return db_fail(s, d, "lookup", e);
    sqlite3_bind_int64(q, 1, (int64_t)appid);
    sqlite3_bind_text(q, 2, name, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(q);
    if (rc == SQLITE_ROW)
        d->fill(q, info, row);
    sqlite3_finalize(q);
    if (rc == SQLITE_DONE)
        return meta_fail(e, CMQ_ENOTFOUND, d->row_not_found, d->name_param,
                         "%s is not existed, or deleted: %s", d->kind, name);
    return rc == SQLITE_ROW ? CMQ_OK : db_fail(s, d, "lookup", e);
}

int meta_entity_by_row(struct meta_store *s, const struct meta_entity *d, int64_t row,
                       void *info, struct meta_err *e)
{
    char sql[1024];
    snprintf(sql, sizeof sql, "%s WHERE %s.id = ?", d->select, d->alias);
    sqlite3_stmt *q = meta_prepare(s, sql);
    if (!q)
        return db_fail(s, d, "load", e);
    sqlite3_bind_int64(q, 1, row);
    int rc = sqlite3_step(q);
    if (rc == SQLITE_ROW)
        d->fill(q, info, NULL);
    sqlite3_finalize(q);
    return rc == SQLITE_ROW ? CMQ_OK : db_fail(s, d, "load", e);
}

void meta_entity_event(struct meta_store *s, const struct meta_entity *d, const char *what,
                       const void *info)
{
    char kind[32];
    snprintf(kind, sizeof kind, "%s.%s", d->kind, what);
    cmq_MetaEvent *ev = meta_event_add(s, kind);
    if (!ev)
        return;
    struct meta_brief b;
    d->brief(info, &b);
    ev->appid = b.appid;
    snprintf(ev->name, sizeof ev->name, "%s", b.name);
    snprintf(ev->id, sizeof ev->id, "%s", b.id);
    ev->partition_id = b.partition_id;
    ev->num_id = b.num_id;
}

int meta_entity_create(struct meta_store *s, const struct meta_entity *d, uint64_t appid,
                       const char *name, const void *req, void *out, struct meta_err *e)
{
    char lower[META_NAME_MAX + 1], id[40];
    meta_lower(name, lower, sizeof lower);
    if (meta_random_id(d->id_prefix, id, sizeof id) != CMQ_OK)
        return meta_fail(e, CMQ_EINTERNAL, META_ROW(INTERNAL), NULL, "no random id");
    int st = meta_tx_begin(s, e);
    if (st != CMQ_OK)
        return st;
    struct meta_new n = {.appid = appid, .name = name, .name_lower = lower, .id = id};
    if ((st = meta_account_exists(s, appid, e)) != CMQ_OK)
        goto fail;
    st = create_name_check(s, d, appid, lower, e);
    if (st == CMQ_EIO)
        goto db;
    if (st != CMQ_OK)
        goto fail;
    if ((st = meta_place_pick(s, &n.partition_id, e)) != CMQ_OK)
        goto fail;
    if (meta_next_num_id(s, &n.num_id) != CMQ_OK)
        goto db;
    n.now_ms = (int64_t)meta_now_ms(s);
    if ((st = d->insert(s, req, &n, e)) != CMQ_OK)
        goto fail;
    if ((st = meta_entity_by_row(s, d, sqlite3_last_insert_rowid(s->db), out, e)) != CMQ_OK)
        goto fail;
    meta_entity_event(s, d, "created", out);
    return meta_tx_commit(s, e);
db:
    st = db_fail(s, d, "create", e);
fail:
    meta_tx_rollback(s);
    return st;
}

int meta_entity_set(struct meta_store *s, const struct meta_entity *d, uint64_t appid,
                    const char *name, const void *req, meta_update_fn update, void *cur,
                    void *out, struct meta_err *e)
{
    int st = meta_tx_begin(s, e);
    if (st != CMQ_OK)
        return st;
    int64_t row;
    if ((st = meta_entity_find(s, d, appid, name, cur, &row, e)) != CMQ_OK ||
        (st = update(s, req, cur, row, e)) != CMQ_OK ||
        (st = meta_entity_by_row(s, d, row, out, e)) != CMQ_OK) {
        meta_tx_rollback(s);
        return st;
    }
    meta_entity_event(s, d, "updated", out);
    return meta_tx_commit(s, e);
}

int meta_entity_delete(struct meta_store *s, const struct meta_entity *d, uint64_t appid,
                       const char *name, void *out, struct meta_err *e)
{
    int st = meta_tx_begin(s, e);
    if (st != CMQ_OK)
        return st;
    int64_t row;
    if ((st = meta_entity_find(s, d, appid, name, out, &row, e)) != CMQ_OK)
        goto fail;
    if (d->before_delete && (st = d->before_delete(s, row, out, e)) != CMQ_OK)
        goto fail;
    char sql[64];
    snprintf(sql, sizeof sql, "DELETE FROM %s WHERE id = ?", d->table); /* cascades */
    sqlite3_stmt *q = meta_prepare(s, sql);
    if (!q)
        goto db;
    sqlite3_bind_int64(q, 1, row);
    if (meta_exec_step(q) != SQLITE_DONE)
        goto db;
    struct meta_brief b;
    d->brief(out, &b);
    char lower[META_NAME_MAX + 1];
    meta_lower(b.name, lower, sizeof lower);
    if (tombstone_add(s, d->kind, appid, lower) != CMQ_OK)
        goto db;
    meta_entity_event(s, d, "deleted", out);
    return meta_tx_commit(s, e);
db:
    st = db_fail(s, d, "delete", e);
fail:
    meta_tx_rollback(s);
    return st;
}

int meta_entity_list(struct meta_store *s, const struct meta_entity *d,
                     const cmq_ListRequest *req, uint32_t *total, void *list,
                     struct meta_err *e)
{
    int64_t offset, limit;
    int st = meta_page(req, META_LIST_LIMIT_MAX, 0, &offset, &limit, e);
    if (st != CMQ_OK)
        return st;
    char word[sizeof req->search_word];
    meta_lower(req->search_word, word, sizeof word);
    char sql[320];
    snprintf(sql, sizeof sql,
             "SELECT COUNT(*) FROM %s WHERE appid = ?1 AND instr(name_lower, ?2) > 0", d->table);
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
             d->id_col, d->table);
    q = meta_prepare(s, sql);
    if (!q)
        return meta_db_fail(s, e, "list");
    sqlite3_bind_int64(q, 1, (int64_t)req->appid);
    sqlite3_bind_text(q, 2, word, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(q, 3, limit);
    sqlite3_bind_int64(q, 4, offset);
    int rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW)
        d->list_row(list, (const char *)sqlite3_column_text(q, 0),
                    (const char *)sqlite3_column_text(q, 1));
    sqlite3_finalize(q);
    return rc == SQLITE_DONE ? CMQ_OK : meta_db_fail(s, e, "list");
}
