/* meta_acl.c: ACL grants of restricted keys and the check the gateway asks
 * for every request of such a key.
 *
 * A grant is (action or '*', resource): '*', or "queue:" / "topic:" with an
 * exact name or a prefix ending in '*'.  A key holds at most
 * GRANTS_PER_KEY_MAX grants.  An unrestricted key may do anything in its own
 * account; a key of another account is denied (EDENIED: the gateway answers
 * its row, no cam authentication).
 */
#include "meta_internal.h"

#include "clock.h"
#include "crypto.h"
#include "status.h"

#include <ctype.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- ACL ---- */

#define GRANTS_PER_KEY_MAX 100

struct acl_resource {
    char rtype[8];     /* "*", "queue", "topic" */
    char pattern[72];
    int is_prefix;
};

/* "*" | ("queue"|"topic") ":" (NAME | PREFIX "*") */
static int acl_parse_resource(const char *r, struct acl_resource *out)
{
    memset(out, 0, sizeof *out);
    if (strcmp(r, "*") == 0) {
        strcpy(out->rtype, "*");
        out->is_prefix = 1;
        return CMQ_OK;
    }
    const char *colon = strchr(r, ':');
    if (!colon)
        return CMQ_EINVAL;
    size_t tl = (size_t)(colon - r);
    if (!((tl == 5 && strncmp(r, "queue", 5) == 0) || (tl == 5 && strncmp(r, "topic", 5) == 0)))
        return CMQ_EINVAL;
    memcpy(out->rtype, r, tl);
    const char *name = colon + 1;
    size_t nl = strlen(name);
    if (nl > 0 && name[nl - 1] == '*') {
        out->is_prefix = 1;
        nl--;
    }
    if (nl > META_NAME_MAX)
        return CMQ_EINVAL;
    memcpy(out->pattern, name, nl);
    out->pattern[nl] = '\0';
    if (!out->is_prefix)
        return meta_name_valid(out->pattern) ? CMQ_OK : CMQ_EINVAL;
    /* A prefix is the start of a valid name: letter first, then name chars. */
    for (size_t i = 0; i < nl; i++) {
        unsigned char c = (unsigned char)out->pattern[i];
        if (c >= 0x80 || !(i == 0 ? isalpha(c) : (isalnum(c) || c == '-')))
            return CMQ_EINVAL;
    }
    return CMQ_OK;
}

static void acl_format_resource(const char *rtype, const char *pattern, int is_prefix, char *out,
                                size_t cap)
{
    if (strcmp(rtype, "*") == 0)
        snprintf(out, cap, "*");
    else
        snprintf(out, cap, "%s:%s%s", rtype, pattern, is_prefix ? "*" : "");
}

static int acl_action_valid(const char *a)
{
    if (strcmp(a, "*") == 0)
        return 1;
    size_t n = strlen(a);
    if (n < 1 || n > 64)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)a[i] >= 0x80 || !isalpha((unsigned char)a[i]))
            return 0;
    return 1;
}

static void acl_fill(sqlite3_stmt *st, cmq_AclEntry *out)
{
    /* columns: id, secret_id, action, rtype, pattern, is_prefix, created_ms */
    char rtype[8], pattern[72];
    *out = (cmq_AclEntry)cmq_AclEntry_init_zero;
    out->id = (uint64_t)sqlite3_column_int64(st, 0);
    meta_col_text(st, 1, out->secret_id, sizeof out->secret_id);
    meta_col_text(st, 2, out->action, sizeof out->action);
    meta_col_text(st, 3, rtype, sizeof rtype);
    meta_col_text(st, 4, pattern, sizeof pattern);
    acl_format_resource(rtype, pattern, sqlite3_column_int(st, 5), out->resource,
                        sizeof out->resource);
    out->create_time = (uint64_t)sqlite3_column_int64(st, 6) / 1000;
}

#define ACL_COLS "id, secret_id, action, rtype, pattern, is_prefix, created_ms"

int meta_acl_grant(struct meta_store *s, const cmq_AclEntry *req, cmq_AclEntry *out,
                   struct meta_err *e)
{
    struct acl_resource r;
    if (!acl_action_valid(req->action))
        return meta_fail(e, CMQ_EINVAL, META_ROW(PARAM_ERROR), "action",
                         "action must be an Action name (letters) or '*'");
    if (acl_parse_resource(req->resource, &r) != CMQ_OK)
        return meta_fail(e, CMQ_EINVAL, META_ROW(PARAM_ERROR), "resource",
                         "resource must be '*', 'queue:NAME', 'topic:NAME', or a prefix "
                         "ending in '*' such as 'queue:orders-*'");
    char action_lower[72];
    meta_lower(req->action, action_lower, sizeof action_lower);
    int st = meta_tx_begin(s, e);
    if (st != CMQ_OK)
        return st;
    cmq_Key k;
    if ((st = meta_key_row(s, req->secret_id, &k, 0, e)) != CMQ_OK) {
        meta_tx_rollback(s);
        return st;
    }
    sqlite3_stmt *q = meta_prepare(s, "SELECT COUNT(*) FROM acl WHERE secret_id = ?");
    if (!q)
        goto db;
    sqlite3_bind_text(q, 1, req->secret_id, -1, SQLITE_TRANSIENT);
    int64_t n = sqlite3_step(q) == SQLITE_ROW ? sqlite3_column_int64(q, 0) : -1;
    sqlite3_finalize(q);
    if (n < 0)
        goto db;
    if (n >= GRANTS_PER_KEY_MAX) {
        meta_tx_rollback(s);
        return meta_fail(e, CMQ_ELIMIT, META_ROW(DEFAULT), "secret_id", "key already has %d grants",
                         GRANTS_PER_KEY_MAX);
    }
    q = meta_prepare(s, "INSERT INTO acl (secret_id, action, action_lower, rtype, pattern,"
                        " is_prefix, created_ms) VALUES (?, ?, ?, ?, ?, ?, ?)");
    if (!q)
        goto db;
    sqlite3_bind_text(q, 1, req->secret_id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 2, req->action, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 3, action_lower, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 4, r.rtype, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 5, r.pattern, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int(q, 6, r.is_prefix);
    sqlite3_bind_int64(q, 7, (int64_t)meta_now_ms(s));
    int rc = sqlite3_step(q);
    sqlite3_finalize(q);
    if (rc == SQLITE_CONSTRAINT) {
        meta_tx_rollback(s);
        return meta_fail(e, CMQ_EEXIST, META_ROW(DEFAULT), NULL, "the key already has this grant");
    }
    if (rc != SQLITE_DONE)
        goto db;
    int64_t id = sqlite3_last_insert_rowid(s->db);
    cmq_MetaEvent *ev = meta_event_add(s, "acl.granted");
    if (ev) {
        ev->appid = k.appid;
        snprintf(ev->id, sizeof ev->id, "%s", req->secret_id);
    }
    if ((st = meta_tx_commit(s, e)) != CMQ_OK)
        return st;
    q = meta_prepare(s, "SELECT " ACL_COLS " FROM acl WHERE id = ?");
    if (!q)
        return meta_db_fail(s, e, "acl load");
    sqlite3_bind_int64(q, 1, id);
    if (sqlite3_step(q) == SQLITE_ROW)
        acl_fill(q, out);
    sqlite3_finalize(q);
    return CMQ_OK;
db:
    st = meta_db_fail(s, e, "acl grant");
    meta_tx_rollback(s);
    return st;
}

int meta_acl_revoke(struct meta_store *s, const cmq_AclEntry *req, cmq_AclEntry *out,
                    struct meta_err *e)
{
    struct acl_resource r;
    char action_lower[72];
    sqlite3_stmt *q;
    if (req->id == 0) {
        if (acl_parse_resource(req->resource, &r) != CMQ_OK || !acl_action_valid(req->action))
            return meta_fail(e, CMQ_EINVAL, META_ROW(PARAM_ERROR), NULL,
                             "revoke needs a grant id, or secret id, action and resource");
        meta_lower(req->action, action_lower, sizeof action_lower);
    }
    int st = meta_tx_begin(s, e);
    if (st != CMQ_OK)
        return st;
    if (req->id) {
        q = meta_prepare(s, "SELECT " ACL_COLS " FROM acl WHERE id = ?");
        if (!q)
            goto db;
        sqlite3_bind_int64(q, 1, (int64_t)req->id);
    } else {
        q = meta_prepare(s, "SELECT " ACL_COLS " FROM acl WHERE secret_id = ? AND"
                            " action_lower = ? AND rtype = ? AND pattern = ? AND is_prefix = ?");
        if (!q)
            goto db;
        sqlite3_bind_text(q, 1, req->secret_id, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(q, 2, action_lower, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(q, 3, r.rtype, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(q, 4, r.pattern, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int(q, 5, r.is_prefix);
    }
    int rc = sqlite3_step(q);
    if (rc == SQLITE_ROW)
        acl_fill(q, out);
    sqlite3_finalize(q);
    if (rc == SQLITE_DONE || (rc == SQLITE_ROW && req->secret_id[0] &&
                              strcmp(req->secret_id, out->secret_id) != 0)) {
        meta_tx_rollback(s);
        return meta_fail(e, CMQ_ENOTFOUND, META_ROW(DEFAULT), NULL, "no such grant");
    }
    if (rc != SQLITE_ROW)
        goto db;
    q = meta_prepare(s, "DELETE FROM acl WHERE id = ?");
    if (!q)
        goto db;
    sqlite3_bind_int64(q, 1, (int64_t)out->id);
    rc = sqlite3_step(q);
    sqlite3_finalize(q);
    if (rc != SQLITE_DONE)
        goto db;
    cmq_MetaEvent *ev = meta_event_add(s, "acl.revoked");
    if (ev)
        snprintf(ev->id, sizeof ev->id, "%s", out->secret_id);
    return meta_tx_commit(s, e);
db:
    st = meta_db_fail(s, e, "acl revoke");
    meta_tx_rollback(s);
    return st;
}

int meta_acl_list(struct meta_store *s, const char *secret_id, cmq_AclList *out,
                  struct meta_err *e)
{
    *out = (cmq_AclList)cmq_AclList_init_zero;
    cmq_Key k;
    int st = meta_key_row(s, secret_id, &k, 0, e);
    if (st != CMQ_OK)
        return st;
    sqlite3_stmt *q = meta_prepare(s, "SELECT " ACL_COLS " FROM acl WHERE secret_id = ? ORDER BY id");
    if (!q)
        return meta_db_fail(s, e, "acl list");
    sqlite3_bind_text(q, 1, secret_id, -1, SQLITE_TRANSIENT);
    while (out->entries_count < sizeof out->entries / sizeof out->entries[0] &&
           sqlite3_step(q) == SQLITE_ROW)
        acl_fill(q, &out->entries[out->entries_count++]);
    sqlite3_finalize(q);
    return CMQ_OK;
}

static void acl_denied(cmq_AclCheckReply *out, const struct meta_err *e)
{
    out->allowed = false;
    if (!e)
        return;
    snprintf(out->reason, sizeof out->reason, "%s", e->reason);
}

int meta_acl_check(struct meta_store *s, const cmq_AclCheckRequest *req, cmq_AclCheckReply *out,
                   struct meta_err *err)
{
    /* a denial's reason goes into the reply even when the caller passes no err */
    struct meta_err local = {0}, *e = err ? err : &local;
    *out = (cmq_AclCheckReply)cmq_AclCheckReply_init_zero;
    cmq_Key k;
    int st = meta_key_row(s, req->secret_id, &k, 0, e);
    if (st != CMQ_OK)
        return st;
    if (!k.enabled)
        return meta_fail(e, CMQ_EAUTH, META_ROW(SECRET_ID_STATUS), "SecretId", "secret id status error");
    out->appid = k.appid;
    const char *rt = req->resource_type;
    if (rt[0] && strcmp(rt, "queue") != 0 && strcmp(rt, "topic") != 0)
        return meta_fail(e, CMQ_EINVAL, META_ROW(PARAM_ERROR), "resource_type",
                         "resource type must be queue, topic or empty");
    if (req->owner_appid && req->owner_appid != k.appid) {
        meta_fail(e, CMQ_EDENIED, META_ROW(NO_CAM_AUTH), NULL,
                  "no cam authentication: the key belongs to account %llu, not %llu",
                  (unsigned long long)k.appid, (unsigned long long)req->owner_appid);
        acl_denied(out, e);
        return CMQ_OK;
    }
    if (!k.restricted) {
        out->allowed = true;
        return CMQ_OK;
    }
    char action_lower[72];
    meta_lower(req->action, action_lower, sizeof action_lower);
    /* A grant matches when its action is '*' or the action, and its resource
     * is '*', or the same type with the exact name, or the same type with a
     * prefix of the name.  An account-level action (no name, e.g. ListQueue)
     * matches only grants on every name of its type ("queue:*") or '*'; with
     * no type at all (how the gateway asks for ListQueue), a grant on every
     * name of either type. */
    sqlite3_stmt *q = meta_prepare(
        s, "SELECT id FROM acl WHERE secret_id = ?1"
           " AND (action = '*' OR action_lower = ?2)"
           " AND (rtype = '*' OR (?3 = '' AND is_prefix = 1 AND pattern = '')"
           "   OR (rtype = ?3 AND ("
           "   (?4 = '' AND is_prefix = 1 AND pattern = '')"
           "   OR (?4 <> '' AND is_prefix = 0 AND pattern = ?4)"
           "   OR (?4 <> '' AND is_prefix = 1 AND substr(?4, 1, length(pattern)) = pattern))))"
           " ORDER BY id LIMIT 1");
    if (!q)
        return meta_db_fail(s, e, "acl check");
    sqlite3_bind_text(q, 1, req->secret_id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 2, action_lower, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 3, rt, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 4, req->resource_name, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(q);
    if (rc == SQLITE_ROW) {
        out->allowed = true;
        out->grant_id = (uint64_t)sqlite3_column_int64(q, 0);
    }
    sqlite3_finalize(q);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return meta_db_fail(s, e, "acl check");
    if (!out->allowed) {
        meta_fail(e, CMQ_EDENIED, META_ROW(NO_CAM_AUTH), NULL,
                  "no cam authentication: no grant for %s on %s%s%s", req->action,
                  rt[0] ? rt : "account", req->resource_name[0] ? ":" : "", req->resource_name);
        acl_denied(out, e);
    }
    return CMQ_OK;
}
