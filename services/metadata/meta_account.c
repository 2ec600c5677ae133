/* meta_account.c: accounts and their API keys.
 *
 * An account is an appid (assigned from APPID_FIRST up, or given) and a
 * name.  A key is a SecretId ("AKID" + 32 random characters) and a SecretKey
 * that is stored only sealed with the master key (meta_secret.h, bound to its
 * SecretId) and returned in clear only by create and get-secret (for the
 * gateway).  An account has at most KEYS_PER_ACCOUNT_MAX keys; a key can be
 * disabled and enabled again, and restricted keys need ACL grants
 * (meta_acl.c).
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

/* ---- accounts ---- */

#define APPID_FIRST 1300000001ull
#define APPID_MAX 9999999999ull

static int account_load(struct meta_store *s, uint64_t appid, cmq_Account *out,
                        struct meta_err *e)
{
    sqlite3_stmt *st = meta_prepare(
        s, "SELECT name, created_ms,"
           " (SELECT COUNT(*) FROM keys k WHERE k.appid = a.appid),"
           " (SELECT COUNT(*) FROM queues q WHERE q.appid = a.appid),"
           " (SELECT COUNT(*) FROM topics t WHERE t.appid = a.appid)"
           " FROM accounts a WHERE appid = ?");
    if (!st)
        return meta_db_fail(s, e, "account load");
    sqlite3_bind_int64(st, 1, (int64_t)appid);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *out = (cmq_Account)cmq_Account_init_zero;
        out->appid = appid;
        meta_col_text(st, 0, out->name, sizeof out->name);
        out->create_time = (uint64_t)sqlite3_column_int64(st, 1) / 1000;
        out->key_count = (uint32_t)sqlite3_column_int(st, 2);
        out->queue_count = (uint32_t)sqlite3_column_int(st, 3);
        out->topic_count = (uint32_t)sqlite3_column_int(st, 4);
    }
    sqlite3_finalize(st);
    if (rc == SQLITE_DONE)
        return meta_fail(e, CMQ_ENOTFOUND, META_ROW(ACCOUNT_ILLEGAL), "appid", "account %llu does not exist",
                         (unsigned long long)appid);
    return rc == SQLITE_ROW ? CMQ_OK : meta_db_fail(s, e, "account load");
}

static int printable(const char *t)
{
    for (; *t; t++)
        if ((unsigned char)*t < 0x20 || *t == 0x7f)
            return 0;
    return 1;
}

int meta_account_create(struct meta_store *s, const cmq_AccountCreateRequest *req,
                        cmq_Account *out, struct meta_err *e)
{
    if (strlen(req->name) > META_NAME_MAX || !printable(req->name))
        return meta_fail(e, CMQ_EINVAL, META_ROW(PARAM_RANGE), "name",
                         "account name must be at most 64 printable characters");
    if (req->appid > APPID_MAX)
        return meta_fail(e, CMQ_EINVAL, META_ROW(PARAM_RANGE), "appid", "appid must be 1..%llu",
                         (unsigned long long)APPID_MAX);
    int st = meta_tx_begin(s, e);
    if (st != CMQ_OK)
        return st;
    uint64_t appid = req->appid;
    if (appid == 0) {
        int ok;
        int64_t max = meta_query_int(s, "SELECT MAX(appid) FROM accounts", 0, &ok);
        if (!ok)
            goto db;
        appid = (uint64_t)max < APPID_FIRST ? APPID_FIRST : (uint64_t)max + 1;
        if (appid > APPID_MAX) {
            meta_tx_rollback(s);
            return meta_fail(e, CMQ_ELIMIT, META_ROW(DEFAULT), "appid", "no appid left");
        }
    } else if (meta_account_exists(s, appid, NULL) == CMQ_OK) {
        meta_tx_rollback(s);
        return meta_fail(e, CMQ_EEXIST, META_ROW(DEFAULT), "appid", "account %llu already exists",
                         (unsigned long long)appid);
    }
    sqlite3_stmt *ins = meta_prepare(s, "INSERT INTO accounts VALUES (?, ?, ?)");
    if (!ins)
        goto db;
    sqlite3_bind_int64(ins, 1, (int64_t)appid);
    sqlite3_bind_text(ins, 2, req->name, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(ins, 3, (int64_t)meta_now_ms(s));
    int rc = sqlite3_step(ins);
    sqlite3_finalize(ins);
    if (rc != SQLITE_DONE)
        goto db;
    cmq_MetaEvent *ev = meta_event_add(s, "account.created");
    if (ev)
        ev->appid = appid;
    if ((st = meta_tx_commit(s, e)) != CMQ_OK)
        return st;
    return account_load(s, appid, out, e);
db:
    st = meta_db_fail(s, e, "account create");
    meta_tx_rollback(s);
    return st;
}

/* offset / limit for operator lists (not the CMQ list rules). */
static void plain_page(const cmq_ListRequest *req, int64_t max, int64_t *offset, int64_t *limit)
{
    *offset = req->has_offset && req->offset > 0 ? req->offset : 0;
    *limit = req->has_limit && req->limit > 0 ? req->limit : max;
    if (*limit > max)
        *limit = max;
}

int meta_account_list(struct meta_store *s, const cmq_ListRequest *req, cmq_AccountList *out,
                      struct meta_err *e)
{
    *out = (cmq_AccountList)cmq_AccountList_init_zero;
    int64_t offset, limit;
    plain_page(req, (int64_t)(sizeof out->accounts / sizeof out->accounts[0]), &offset, &limit);
    int ok;
    out->total_count = (uint32_t)meta_query_int(s, "SELECT COUNT(*) FROM accounts", 0, &ok);
    sqlite3_stmt *st = meta_prepare(s, "SELECT appid FROM accounts ORDER BY appid LIMIT ? OFFSET ?");
    if (!ok || !st) {
        sqlite3_finalize(st);
        return meta_db_fail(s, e, "account list");
    }
    sqlite3_bind_int64(st, 1, limit);
    sqlite3_bind_int64(st, 2, offset);
    uint64_t ids[sizeof out->accounts / sizeof out->accounts[0]];
    pb_size_t n = 0;
    while (n < limit && sqlite3_step(st) == SQLITE_ROW)
        ids[n++] = (uint64_t)sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    for (pb_size_t i = 0; i < n; i++) {
        int rc = account_load(s, ids[i], &out->accounts[i], e);
        if (rc != CMQ_OK)
            return rc;
    }
    out->accounts_count = n;
    return CMQ_OK;
}

/* ---- keys ---- */

#define KEYS_PER_ACCOUNT_MAX 20
#define SECRET_ID_RANDOM 32
#define SECRET_KEY_LEN 32
static const char alnum62[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

int meta_key_row(struct meta_store *s, const char *secret_id, cmq_Key *out, int with_secret,
                 struct meta_err *e)
{
    sqlite3_stmt *st = meta_prepare(
        s, "SELECT appid, enabled, restricted, secret_nonce, secret_ct, secret_tag,"
           " created_ms, modified_ms FROM keys WHERE secret_id = ?");
    if (!st)
        return meta_db_fail(s, e, "key load");
    sqlite3_bind_text(st, 1, secret_id, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(st), res = CMQ_OK;
    if (rc == SQLITE_DONE) {
        res = meta_fail(e, CMQ_ENOTFOUND, META_ROW(SECRET_ID_NOT_EXIST), "SecretId", "secret id is not existed");
    } else if (rc != SQLITE_ROW) {
        res = meta_db_fail(s, e, "key load");
    } else {
        *out = (cmq_Key)cmq_Key_init_zero;
        snprintf(out->secret_id, sizeof out->secret_id, "%s", secret_id);
        out->appid = (uint64_t)sqlite3_column_int64(st, 0);
        out->enabled = sqlite3_column_int(st, 1) != 0;
        out->restricted = sqlite3_column_int(st, 2) != 0;
        out->create_time = (uint64_t)sqlite3_column_int64(st, 6) / 1000;
        out->modify_time = (uint64_t)sqlite3_column_int64(st, 7) / 1000;
        if (with_secret) {
            int nl = sqlite3_column_bytes(st, 3), cl = sqlite3_column_bytes(st, 4),
                tl = sqlite3_column_bytes(st, 5);
            if (nl != META_SECRET_NONCE_LEN || tl != META_SECRET_TAG_LEN || cl <= 0 ||
                cl >= (int)sizeof out->secret_key) {
                res = meta_fail(e, CMQ_ECORRUPT, META_ROW(INTERNAL), NULL,
                                "stored secret of %s is malformed", secret_id);
            } else {
                res = meta_secret_open(s->master_key, secret_id, sqlite3_column_blob(st, 3),
                                       sqlite3_column_blob(st, 4), (size_t)cl,
                                       sqlite3_column_blob(st, 5), out->secret_key);
                out->secret_key[cl] = '\0';
                if (res != CMQ_OK)
                    res = meta_fail(e, res, META_ROW(INTERNAL), NULL,
                                    "stored secret of %s does not decrypt", secret_id);
            }
        }
    }
    sqlite3_finalize(st);
    return res;
}

int meta_key_create(struct meta_store *s, const cmq_KeyCreateRequest *req, cmq_Key *out,
                    struct meta_err *e)
{
    char secret_id[4 + SECRET_ID_RANDOM + 1], secret[SECRET_KEY_LEN + 1];
    uint8_t nonce[META_SECRET_NONCE_LEN], tag[META_SECRET_TAG_LEN], ct[SECRET_KEY_LEN];
    memcpy(secret_id, "AKID", 4);
    if (meta_random_chars(alnum62, secret_id + 4, SECRET_ID_RANDOM) != CMQ_OK ||
        meta_random_chars(alnum62, secret, SECRET_KEY_LEN) != CMQ_OK ||
        meta_secret_seal(s->master_key, secret_id, secret, SECRET_KEY_LEN, nonce, ct, tag) !=
            CMQ_OK) {
        OPENSSL_cleanse(secret, sizeof secret);
        return meta_fail(e, CMQ_EINTERNAL, META_ROW(INTERNAL), NULL, "cannot generate a key");
    }
    int st = meta_tx_begin(s, e);
    if (st != CMQ_OK)
        goto out;
    if ((st = meta_account_exists(s, req->appid, e)) != CMQ_OK) {
        meta_tx_rollback(s);
        goto out;
    }
    sqlite3_stmt *q = meta_prepare(s, "SELECT COUNT(*) FROM keys WHERE appid = ?");
    if (!q)
        goto db;
    sqlite3_bind_int64(q, 1, (int64_t)req->appid);
    int64_t n = sqlite3_step(q) == SQLITE_ROW ? sqlite3_column_int64(q, 0) : -1;
    sqlite3_finalize(q);
    if (n < 0)
        goto db;
    if (n >= KEYS_PER_ACCOUNT_MAX) {
        meta_tx_rollback(s);
        st = meta_fail(e, CMQ_ELIMIT, META_ROW(DEFAULT), "appid", "account %llu already has %d keys",
                       (unsigned long long)req->appid, KEYS_PER_ACCOUNT_MAX);
        goto out;
    }
    uint64_t now = meta_now_ms(s);
    q = meta_prepare(s, "INSERT INTO keys VALUES (?, ?, 1, ?, ?, ?, ?, ?, ?)");
    if (!q)
        goto db;
    sqlite3_bind_text(q, 1, secret_id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(q, 2, (int64_t)req->appid);
    sqlite3_bind_int(q, 3, req->restricted ? 1 : 0);
    sqlite3_bind_blob(q, 4, nonce, sizeof nonce, SQLITE_TRANSIENT);
    sqlite3_bind_blob(q, 5, ct, SECRET_KEY_LEN, SQLITE_TRANSIENT);
    sqlite3_bind_blob(q, 6, tag, sizeof tag, SQLITE_TRANSIENT);
    sqlite3_bind_int64(q, 7, (int64_t)now);
    sqlite3_bind_int64(q, 8, (int64_t)now);
    int rc = sqlite3_step(q);
    sqlite3_finalize(q);
    if (rc != SQLITE_DONE)
        goto db;
    cmq_MetaEvent *ev = meta_event_add(s, "key.created");
    if (ev) {
        ev->appid = req->appid;
        snprintf(ev->id, sizeof ev->id, "%s", secret_id);
    }
    if ((st = meta_tx_commit(s, e)) != CMQ_OK)
        goto out;
    st = meta_key_row(s, secret_id, out, 0, e);
    if (st == CMQ_OK)
        memcpy(out->secret_key, secret, sizeof secret);
    goto out;
db:
    st = meta_db_fail(s, e, "key create");
    meta_tx_rollback(s);
out:
    OPENSSL_cleanse(secret, sizeof secret);
    return st;
}

int meta_key_set_enabled(struct meta_store *s, const char *secret_id, int enabled, cmq_Key *out,
                         struct meta_err *e)
{
    int st = meta_tx_begin(s, e);
    if (st != CMQ_OK)
        return st;
    cmq_Key k;
    if ((st = meta_key_row(s, secret_id, &k, 0, e)) != CMQ_OK) {
        meta_tx_rollback(s);
        return st;
    }
    sqlite3_stmt *q =
        meta_prepare(s, "UPDATE keys SET enabled = ?, modified_ms = ? WHERE secret_id = ?");
    if (!q) {
        st = meta_db_fail(s, e, "key update");
        meta_tx_rollback(s);
        return st;
    }
    sqlite3_bind_int(q, 1, enabled ? 1 : 0);
    sqlite3_bind_int64(q, 2, (int64_t)meta_now_ms(s));
    sqlite3_bind_text(q, 3, secret_id, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(q);
    sqlite3_finalize(q);
    if (rc != SQLITE_DONE) {
        st = meta_db_fail(s, e, "key update");
        meta_tx_rollback(s);
        return st;
    }
    cmq_MetaEvent *ev = meta_event_add(s, enabled ? "key.enabled" : "key.disabled");
    if (ev) {
        ev->appid = k.appid;
        snprintf(ev->id, sizeof ev->id, "%s", secret_id);
    }
    if ((st = meta_tx_commit(s, e)) != CMQ_OK)
        return st;
    return meta_key_row(s, secret_id, out, 0, e);
}

int meta_key_get_secret(struct meta_store *s, const char *secret_id, cmq_Key *out,
                        struct meta_err *e)
{
    if (strncmp(secret_id, "AKID", 4) != 0)
        return meta_fail(e, CMQ_EAUTH, META_ROW(SECRET_ID_PREFIX), "SecretId",
                         "secret id dosen't begin with AKID");
    int st = meta_key_row(s, secret_id, out, 0, e);
    if (st != CMQ_OK)
        return st;
    if (!out->enabled)
        return meta_fail(e, CMQ_EAUTH, META_ROW(SECRET_ID_STATUS), "SecretId", "secret id status error");
    return meta_key_row(s, secret_id, out, 1, e);
}

int meta_key_list(struct meta_store *s, uint64_t appid, cmq_KeyList *out, struct meta_err *e)
{
    *out = (cmq_KeyList)cmq_KeyList_init_zero;
    sqlite3_stmt *st = meta_prepare(
        s, appid ? "SELECT secret_id FROM keys WHERE appid = ? ORDER BY created_ms, secret_id"
                 : "SELECT secret_id FROM keys ORDER BY appid, created_ms, secret_id");
    if (!st)
        return meta_db_fail(s, e, "key list");
    if (appid)
        sqlite3_bind_int64(st, 1, (int64_t)appid);
    char ids[sizeof out->keys / sizeof out->keys[0]][sizeof out->keys[0].secret_id];
    pb_size_t n = 0;
    while (n < sizeof out->keys / sizeof out->keys[0] && sqlite3_step(st) == SQLITE_ROW)
        meta_col_text(st, 0, ids[n++], sizeof ids[0]);
    sqlite3_finalize(st);
    for (pb_size_t i = 0; i < n; i++) {
        int rc = meta_key_row(s, ids[i], &out->keys[i], 0, e);
        if (rc != CMQ_OK)
            return rc;
    }
    out->keys_count = n;
    return CMQ_OK;
}

