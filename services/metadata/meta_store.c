/* meta_store.c: the database: open, schema migrations, transactions, change
 * events, and the helpers the other store files share (meta_internal.h).
 * Accounts and keys are in meta_account.c, ACL grants in meta_acl.c,
 * queues/topics/subscriptions in meta_ns.c and its neighbours, placement in
 * meta_place.c.
 *
 * Invariants:
 *  1. Every mutation is one BEGIN IMMEDIATE ... COMMIT; a failed check rolls
 *     back everything the request wrote.  Events are emitted only after the
 *     COMMIT succeeded, each with the version that COMMIT wrote.
 *  2. meta.version grows by one per committed mutation (never reused), so a
 *     subscriber that sees a gap in MetaEvent.version knows to re-read.
 *  3. A SecretKey is never stored or logged in clear (meta_secret.h); a key's
 *     ciphertext is bound to its SecretId.
 *  4. PRAGMA user_version is the schema version; migrations run in order, each
 *     in its own transaction, at open.
 */
#include "meta_internal.h"

#include "clock.h"
#include "crypto.h"
#include "status.h"

#include <ctype.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- schema ---- */

static const char schema_v1[] =
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;"
    "INSERT INTO meta VALUES ('version', '0');"
    "CREATE TABLE accounts ("
    "  appid INTEGER PRIMARY KEY, name TEXT NOT NULL, created_ms INTEGER NOT NULL);"
    "CREATE TABLE keys ("
    "  secret_id TEXT PRIMARY KEY,"
    "  appid INTEGER NOT NULL REFERENCES accounts(appid),"
    "  enabled INTEGER NOT NULL CHECK (enabled IN (0, 1)),"
    "  restricted INTEGER NOT NULL CHECK (restricted IN (0, 1)),"
    "  secret_nonce BLOB NOT NULL, secret_ct BLOB NOT NULL, secret_tag BLOB NOT NULL,"
    "  created_ms INTEGER NOT NULL, modified_ms INTEGER NOT NULL);"
    "CREATE INDEX keys_appid ON keys(appid);"
    "CREATE TABLE acl ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  secret_id TEXT NOT NULL REFERENCES keys(secret_id) ON DELETE CASCADE,"
    "  action TEXT NOT NULL, action_lower TEXT NOT NULL,"
    "  rtype TEXT NOT NULL CHECK (rtype IN ('*', 'queue', 'topic')),"
    "  pattern TEXT NOT NULL, is_prefix INTEGER NOT NULL CHECK (is_prefix IN (0, 1)),"
    "  created_ms INTEGER NOT NULL,"
    "  UNIQUE (secret_id, action_lower, rtype, pattern, is_prefix));"
    "CREATE TABLE nodes ("
    "  node_id TEXT PRIMARY KEY, endpoint TEXT NOT NULL, raft_endpoint TEXT NOT NULL,"
    "  up INTEGER NOT NULL CHECK (up IN (0, 1)),"
    "  registered_ms INTEGER NOT NULL, state_ms INTEGER NOT NULL);"
    "CREATE TABLE partitions ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  preferred_leader TEXT NOT NULL REFERENCES nodes(node_id),"
    "  leader TEXT REFERENCES nodes(node_id),"
    "  leader_term INTEGER NOT NULL DEFAULT 0,"
    "  created_ms INTEGER NOT NULL);"
    "CREATE TABLE replicas ("
    "  partition_id INTEGER NOT NULL REFERENCES partitions(id),"
    "  node_id TEXT NOT NULL REFERENCES nodes(node_id),"
    "  slot INTEGER NOT NULL,"
    "  PRIMARY KEY (partition_id, node_id));"
    "CREATE INDEX replicas_node ON replicas(node_id);"
    "CREATE TABLE queues ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  appid INTEGER NOT NULL REFERENCES accounts(appid),"
    "  name TEXT NOT NULL, name_lower TEXT NOT NULL,"
    "  queue_id TEXT NOT NULL UNIQUE,"
    "  partition_id INTEGER REFERENCES partitions(id),"
    "  max_msg_heap_num INTEGER NOT NULL, polling_wait_s INTEGER NOT NULL,"
    "  visibility_timeout_s INTEGER NOT NULL, max_msg_size INTEGER NOT NULL,"
    "  msg_retention_s INTEGER NOT NULL, rewind_s INTEGER NOT NULL,"
    "  dlq_row INTEGER REFERENCES queues(id), dlq_policy INTEGER NOT NULL DEFAULT 0,"
    "  dlq_max_receive_count INTEGER NOT NULL DEFAULT 0,"
    "  dlq_max_ttl_s INTEGER NOT NULL DEFAULT 0,"
    "  created_ms INTEGER NOT NULL, modified_ms INTEGER NOT NULL,"
    "  UNIQUE (appid, name_lower));"
    "CREATE INDEX queues_partition ON queues(partition_id);"
    "CREATE INDEX queues_dlq ON queues(dlq_row);"
    "CREATE TABLE topics ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  appid INTEGER NOT NULL REFERENCES accounts(appid),"
    "  name TEXT NOT NULL, name_lower TEXT NOT NULL,"
    "  topic_id TEXT NOT NULL UNIQUE,"
    "  partition_id INTEGER REFERENCES partitions(id),"
    "  max_msg_size INTEGER NOT NULL, msg_retention_s INTEGER NOT NULL,"
    "  filter_type INTEGER NOT NULL CHECK (filter_type IN (1, 2)),"
    "  created_ms INTEGER NOT NULL, modified_ms INTEGER NOT NULL,"
    "  UNIQUE (appid, name_lower));"
    "CREATE INDEX topics_partition ON topics(partition_id);"
    "CREATE TABLE subscriptions ("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  topic_row INTEGER NOT NULL REFERENCES topics(id) ON DELETE CASCADE,"
    "  name TEXT NOT NULL, name_lower TEXT NOT NULL,"
    "  sub_id TEXT NOT NULL UNIQUE,"
    "  protocol TEXT NOT NULL CHECK (protocol IN ('http', 'queue')),"
    "  endpoint TEXT NOT NULL, endpoint_queue_id TEXT NOT NULL DEFAULT '',"
    "  notify_strategy TEXT NOT NULL, notify_content_format TEXT NOT NULL,"
    "  created_ms INTEGER NOT NULL, modified_ms INTEGER NOT NULL,"
    "  UNIQUE (topic_row, name_lower));"
    "CREATE TABLE sub_lists ("
    "  sub_row INTEGER NOT NULL REFERENCES subscriptions(id) ON DELETE CASCADE,"
    "  kind INTEGER NOT NULL CHECK (kind IN (1, 2)),"   /* 1 filter tag, 2 binding key */
    "  idx INTEGER NOT NULL, value TEXT NOT NULL,"
    "  PRIMARY KEY (sub_row, kind, idx));"
    "CREATE TABLE tombstones ("
    "  kind TEXT NOT NULL, appid INTEGER NOT NULL, name_lower TEXT NOT NULL,"
    "  deleted_ms INTEGER NOT NULL,"
    "  PRIMARY KEY (kind, appid, name_lower)) WITHOUT ROWID;";

/* v2: a numeric id per queue and topic for storage (QueueInfo.num_id), from
 * one sequence shared by both kinds so that ids never collide inside a
 * partition and are never reused.  Existing rows are numbered in creation
 * order, queues first. */
static const char schema_v2[] =
    "ALTER TABLE queues ADD COLUMN num_id INTEGER;"
    "ALTER TABLE topics ADD COLUMN num_id INTEGER;"
    "UPDATE queues SET num_id = id;"
    "UPDATE topics SET num_id = id + (SELECT COALESCE(MAX(id), 0) FROM queues);"
    "INSERT INTO meta VALUES ('next_num_id', CAST(1 + (SELECT COALESCE(MAX(n), 0) FROM"
    " (SELECT num_id AS n FROM queues UNION ALL SELECT num_id FROM topics)) AS TEXT));"
    "CREATE UNIQUE INDEX queues_num_id ON queues(num_id);"
    "CREATE UNIQUE INDEX topics_num_id ON topics(num_id);";

/* v3: the placement version (the change counter at the last node or
 * partition change), so map readers refetch only when placement moved. */
static const char schema_v3[] =
    "INSERT OR IGNORE INTO meta"
    " SELECT 'placement_version', value FROM meta WHERE key = 'version';";

/* v4: a subscription's dead-letter queue (extension deadLetterQueueName): the
 * queue_id of a queue of the same account, '' for none. */
static const char schema_v4[] =
    "ALTER TABLE subscriptions ADD COLUMN dlq_queue_id TEXT NOT NULL DEFAULT '';";

/* migrations[i] takes user_version i to i + 1.  Append only. */
static const char *const migrations[] = {schema_v1, schema_v2, schema_v3, schema_v4};
_Static_assert(sizeof migrations / sizeof migrations[0] == META_SCHEMA_VERSION,
               "one migration per schema version");

/* ---- helpers shared with the other store files ---- */

uint64_t meta_now_ms(struct meta_store *s)
{
    return s->o.now_ms ? s->o.now_ms(s->o.clock_arg) : clock_wall_ms();
}

int meta_fail(struct meta_err *e, int status, cmq_MetaRow row, const char *param,
              const char *fmt, ...)
{
    if (!e)
        return status;
    e->status = status;
    e->row = row;
    snprintf(e->param, sizeof e->param, "%s", param ? param : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->reason, sizeof e->reason, fmt, ap);
    va_end(ap);
    return status;
}

int meta_db_fail(struct meta_store *s, struct meta_err *e, const char *what)
{
    return meta_fail(e, CMQ_EIO, META_ROW(INTERNAL), NULL, "database error in %s: %s", what,
                     sqlite3_errmsg(s->db));
}

sqlite3_stmt *meta_prepare(struct meta_store *s, const char *sql)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK) {
        sqlite3_finalize(st);
        return NULL;
    }
    return st;
}

void meta_col_text(sqlite3_stmt *st, int col, char *out, size_t cap)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    snprintf(out, cap, "%s", t ? (const char *)t : "");
}

int64_t meta_query_int(struct meta_store *s, const char *sql, int64_t dflt, int *ok)
{
    sqlite3_stmt *st = meta_prepare(s, sql);
    int64_t v = dflt;
    int rc = st ? sqlite3_step(st) : SQLITE_ERROR;
    if (rc == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    if (ok)
        *ok = rc == SQLITE_ROW || rc == SQLITE_DONE;
    sqlite3_finalize(st);
    return v;
}

int meta_name_valid(const char *name)
{
    size_t n = strlen(name);
    if (n < 1 || n > META_NAME_MAX || !isalpha((unsigned char)name[0]) ||
        (unsigned char)name[0] >= 0x80)
        return 0;
    for (size_t i = 1; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c >= 0x80 || !(isalnum(c) || c == '-'))
            return 0;
    }
    return 1;
}

void meta_lower(const char *in, char *out, size_t cap)
{
    size_t i = 0;
    for (; in[i] && i + 1 < cap; i++)
        out[i] = (char)tolower((unsigned char)in[i]);
    out[i] = '\0';
}

/* Draws from `alphabet` without modulo bias. */
int meta_random_chars(const char *alphabet, char *out, size_t n)
{
    size_t m = strlen(alphabet), limit = 256 - 256 % m, i = 0;
    uint8_t buf[64];
    while (i < n) {
        if (crypto_random(buf, sizeof buf) != 0)
            return CMQ_EINTERNAL;
        for (size_t j = 0; j < sizeof buf && i < n; j++)
            if (buf[j] < limit)
                out[i++] = alphabet[buf[j] % m];
    }
    OPENSSL_cleanse(buf, sizeof buf);
    out[n] = '\0';
    return CMQ_OK;
}

int meta_random_id(const char *prefix, char *out, size_t cap)
{
    size_t p = strlen(prefix);
    if (cap < p + 13)
        return CMQ_EINVAL;
    memcpy(out, prefix, p);
    return meta_random_chars("0123456789abcdefghijklmnopqrstuvwxyz", out + p, 12);
}

int meta_account_exists(struct meta_store *s, uint64_t appid, struct meta_err *e)
{
    sqlite3_stmt *st = meta_prepare(s, "SELECT 1 FROM accounts WHERE appid = ?");
    if (!st)
        return meta_db_fail(s, e, "account lookup");
    sqlite3_bind_int64(st, 1, (int64_t)appid);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc == SQLITE_ROW)
        return CMQ_OK;
    if (rc != SQLITE_DONE)
        return meta_db_fail(s, e, "account lookup");
    return meta_fail(e, CMQ_ENOTFOUND, META_ROW(ACCOUNT_ILLEGAL), "appid", "account %llu does not exist",
                     (unsigned long long)appid);
}

/* ---- transactions and events ---- */

static int exec_sql(struct meta_store *s, const char *sql)
{
    return sqlite3_exec(s->db, sql, NULL, NULL, NULL) == SQLITE_OK ? CMQ_OK : CMQ_EIO;
}

int meta_tx_begin(struct meta_store *s, struct meta_err *e)
{
    if (s->in_tx)
        return meta_fail(e, CMQ_EINTERNAL, META_ROW(INTERNAL), NULL, "nested transaction");
    if (exec_sql(s, "BEGIN IMMEDIATE") != CMQ_OK)
        return meta_db_fail(s, e, "begin");
    s->in_tx = 1;
    s->n_pending = 0;
    return CMQ_OK;
}

void meta_tx_rollback(struct meta_store *s)
{
    if (!s->in_tx)
        return;
    exec_sql(s, "ROLLBACK");
    s->in_tx = 0;
    s->n_pending = 0;
}

int meta_tx_commit(struct meta_store *s, struct meta_err *e)
{
    uint64_t version = 0;
    if (s->n_pending > 0) {
        if (exec_sql(s, "UPDATE meta SET value = CAST(value AS INTEGER) + 1 "
                        "WHERE key = 'version'") != CMQ_OK) {
            int st = meta_db_fail(s, e, "version bump");
            meta_tx_rollback(s);
            return st;
        }
        version = (uint64_t)meta_query_int(
            s, "SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'version'", 0, NULL);
        int placement = 0;
        for (size_t i = 0; i < s->n_pending; i++)
            placement |= strncmp(s->pending[i].kind, "node.", 5) == 0 ||
                         strncmp(s->pending[i].kind, "partition.", 10) == 0;
        if (placement && exec_sql(s, "UPDATE meta SET value = (SELECT value FROM meta WHERE"
                                     " key = 'version') WHERE key = 'placement_version'") !=
                             CMQ_OK) {
            int st = meta_db_fail(s, e, "placement version");
            meta_tx_rollback(s);
            return st;
        }
    }
    if (exec_sql(s, "COMMIT") != CMQ_OK) {
        int st = meta_db_fail(s, e, "commit");
        meta_tx_rollback(s);
        return st;
    }
    s->in_tx = 0;
    size_t n = s->n_pending;
    s->n_pending = 0;
    for (size_t i = 0; i < n; i++) {
        s->pending[i].version = version;
        if (s->o.on_event)
            s->o.on_event(s->o.event_arg, &s->pending[i]);
    }
    return CMQ_OK;
}

cmq_MetaEvent *meta_event_add(struct meta_store *s, const char *kind)
{
    if (s->n_pending == s->cap_pending) {
        size_t cap = s->cap_pending ? 2 * s->cap_pending : 16;
        cmq_MetaEvent *p = realloc(s->pending, cap * sizeof *p);
        if (!p)
            return NULL;
        s->pending = p;
        s->cap_pending = cap;
    }
    cmq_MetaEvent *ev = &s->pending[s->n_pending++];
    *ev = (cmq_MetaEvent)cmq_MetaEvent_init_zero;
    snprintf(ev->kind, sizeof ev->kind, "%s", kind);
    return ev;
}

int meta_next_num_id(struct meta_store *s, uint64_t *out)
{
    int ok;
    int64_t v = meta_query_int(
        s, "SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'next_num_id'", 0, &ok);
    if (!ok || v <= 0 ||
        exec_sql(s, "UPDATE meta SET value = CAST(value AS INTEGER) + 1 "
                    "WHERE key = 'next_num_id'") != CMQ_OK)
        return CMQ_EIO;
    *out = (uint64_t)v;
    return CMQ_OK;
}

uint64_t meta_store_version(struct meta_store *s)
{
    return (uint64_t)meta_query_int(
        s, "SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'version'", 0, NULL);
}

uint64_t meta_store_placement_version(struct meta_store *s)
{
    return (uint64_t)meta_query_int(
        s, "SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'placement_version'", 0, NULL);
}

int meta_store_schema_version(struct meta_store *s)
{
    return (int)meta_query_int(s, "PRAGMA user_version", -1, NULL);
}

/* ---- open / close ---- */

static int migrate(struct meta_store *s, struct meta_err *e)
{
    int ok;
    int64_t v = meta_query_int(s, "PRAGMA user_version", 0, &ok);
    if (!ok)
        return meta_db_fail(s, e, "reading user_version");
    if (v > META_SCHEMA_VERSION)
        return meta_fail(e, CMQ_EUNSUPPORTED, META_ROW(DEFAULT), NULL,
                         "database schema version %lld is newer than this binary's (%d)",
                         (long long)v, META_SCHEMA_VERSION);
    for (; v < META_SCHEMA_VERSION; v++) {
        char pragma[64];
        snprintf(pragma, sizeof pragma, "PRAGMA user_version = %lld", (long long)v + 1);
        if (exec_sql(s, "BEGIN IMMEDIATE") != CMQ_OK)
            return meta_db_fail(s, e, "migration begin");
        if (exec_sql(s, migrations[v]) != CMQ_OK || exec_sql(s, pragma) != CMQ_OK) {
            int st = meta_db_fail(s, e, "migration");
            exec_sql(s, "ROLLBACK");
            return st;
        }
        if (exec_sql(s, "COMMIT") != CMQ_OK) {
            int st = meta_db_fail(s, e, "migration commit");
            exec_sql(s, "ROLLBACK");
            return st;
        }
    }
    return CMQ_OK;
}

/* Re-seals every secret from `old` to the store's master key and records the
 * new key's id, in one transaction (all or nothing). */
static int rekey(struct meta_store *s, const uint8_t *old, const char *new_id,
                 struct meta_err *e)
{
    if (exec_sql(s, "BEGIN IMMEDIATE") != CMQ_OK)
        return meta_db_fail(s, e, "rekey begin");
    sqlite3_stmt *q = meta_prepare(s, "SELECT secret_id, secret_nonce, secret_ct, secret_tag"
                                      " FROM keys");
    int st = q ? CMQ_OK : meta_db_fail(s, e, "rekey");
    while (st == CMQ_OK && sqlite3_step(q) == SQLITE_ROW) {
        char sid[80];
        uint8_t plain[META_SECRET_MAX], nonce[META_SECRET_NONCE_LEN], tag[META_SECRET_TAG_LEN],
            ct[META_SECRET_MAX];
        meta_col_text(q, 0, sid, sizeof sid);
        int cl = sqlite3_column_bytes(q, 2);
        if (sqlite3_column_bytes(q, 1) != META_SECRET_NONCE_LEN ||
            sqlite3_column_bytes(q, 3) != META_SECRET_TAG_LEN || cl <= 0 ||
            cl > META_SECRET_MAX ||
            meta_secret_open(old, sid, sqlite3_column_blob(q, 1), sqlite3_column_blob(q, 2),
                             (size_t)cl, sqlite3_column_blob(q, 3), plain) != CMQ_OK) {
            st = meta_fail(e, CMQ_ECORRUPT, META_ROW(DEFAULT), NULL,
                           "rekey: the secret of %s does not open with the previous key", sid);
            break;
        }
        st = meta_secret_seal(s->master_key, sid, plain, (size_t)cl, nonce, ct, tag);
        OPENSSL_cleanse(plain, sizeof plain);
        if (st != CMQ_OK) {
            meta_fail(e, st, META_ROW(DEFAULT), NULL, "rekey: cannot seal");
            break;
        }
        sqlite3_stmt *u = meta_prepare(s, "UPDATE keys SET secret_nonce = ?, secret_ct = ?,"
                                          " secret_tag = ? WHERE secret_id = ?");
        if (!u) {
            st = meta_db_fail(s, e, "rekey");
            break;
        }
        sqlite3_bind_blob(u, 1, nonce, sizeof nonce, SQLITE_TRANSIENT);
        sqlite3_bind_blob(u, 2, ct, (size_t)cl, SQLITE_TRANSIENT);
        sqlite3_bind_blob(u, 3, tag, sizeof tag, SQLITE_TRANSIENT);
        sqlite3_bind_text(u, 4, sid, -1, SQLITE_TRANSIENT);
        int rc = sqlite3_step(u);
        sqlite3_finalize(u);
        if (rc != SQLITE_DONE)
            st = meta_db_fail(s, e, "rekey");
    }
    sqlite3_finalize(q);
    if (st == CMQ_OK) {
        q = meta_prepare(s, "UPDATE meta SET value = ? WHERE key = 'master_key_id'");
        if (q)
            sqlite3_bind_text(q, 1, new_id, -1, SQLITE_TRANSIENT);
        if (!q || sqlite3_step(q) != SQLITE_DONE)
            st = meta_db_fail(s, e, "rekey");
        sqlite3_finalize(q);
    }
    if (st == CMQ_OK && exec_sql(s, "COMMIT") != CMQ_OK)
        st = meta_db_fail(s, e, "rekey commit");
    if (st != CMQ_OK)
        exec_sql(s, "ROLLBACK");
    return st;
}

/* Records the master key's id on first use; refuses a different key later
 * (or re-seals from the previous key, see meta_store_opts). */
static int check_master_key(struct meta_store *s, const uint8_t *previous, struct meta_err *e)
{
    char id[META_MASTER_KEY_ID_LEN + 1], stored[64] = "";
    meta_master_key_id(s->master_key, id);
    sqlite3_stmt *st = meta_prepare(s, "SELECT value FROM meta WHERE key = 'master_key_id'");
    if (!st)
        return meta_db_fail(s, e, "master key id");
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        meta_col_text(st, 0, stored, sizeof stored);
    sqlite3_finalize(st);
    if (rc == SQLITE_ROW && strcmp(stored, id) != 0 && previous) {
        char prev_id[META_MASTER_KEY_ID_LEN + 1];
        meta_master_key_id(previous, prev_id);
        if (strcmp(stored, prev_id) == 0)
            return rekey(s, previous, id, e);
    }
    if (rc == SQLITE_ROW)
        return strcmp(stored, id) == 0
                   ? CMQ_OK
                   : meta_fail(e, CMQ_EAUTH, META_ROW(DEFAULT), NULL,
                               "the master key (id %s) is not the one this database's secrets "
                               "were encrypted with (id %s)",
                               id, stored);
    st = meta_prepare(s, "INSERT INTO meta VALUES ('master_key_id', ?)");
    if (!st)
        return meta_db_fail(s, e, "master key id");
    sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? CMQ_OK : meta_db_fail(s, e, "master key id");
}

int meta_store_open(const struct meta_store_opts *opts, struct meta_store **out,
                    struct meta_err *err)
{
    *out = NULL;
    if (!opts->path || !opts->master_key)
        return meta_fail(err, CMQ_EINVAL, META_ROW(DEFAULT), NULL, "path and master key are required");
    struct meta_store *s = calloc(1, sizeof *s);
    if (!s)
        return meta_fail(err, CMQ_ENOMEM, META_ROW(DEFAULT), NULL, "out of memory");
    s->o = *opts;
    s->o.path = NULL; /* borrowed only during open */
    s->o.master_key = NULL;
    memcpy(s->master_key, opts->master_key, META_MASTER_KEY_LEN);
    if (s->o.queues_per_account <= 0)
        s->o.queues_per_account = META_QUEUES_PER_ACCOUNT_DEFAULT;
    if (s->o.topics_per_account <= 0)
        s->o.topics_per_account = META_TOPICS_PER_ACCOUNT_DEFAULT;
    if (s->o.subs_per_topic <= 0)
        s->o.subs_per_topic = META_SUBS_PER_TOPIC_DEFAULT;
    if (s->o.name_reuse_wait_ms == 0)
        s->o.name_reuse_wait_ms = 10000;
    if (s->o.node_timeout_ms <= 0)
        s->o.node_timeout_ms = 10000;
    if (s->o.replicas <= 0)
        s->o.replicas = 3;
    if (s->o.partitions_per_node <= 0)
        s->o.partitions_per_node = 2;
    if (s->o.replicas > 5)
        return meta_store_close(s),
               meta_fail(err, CMQ_EINVAL, META_ROW(DEFAULT), NULL, "replicas must be 1..5");

    int st;
    /* The file holds sealed secrets: create it private (SQLite gives the WAL
     * and shm files the same mode). */
    int fd = open(opts->path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd >= 0)
        close(fd);
    if (sqlite3_open_v2(opts->path, &s->db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK) {
        st = meta_fail(err, CMQ_EIO, META_ROW(DEFAULT), NULL, "cannot open %s: %s", opts->path,
                       s->db ? sqlite3_errmsg(s->db) : "out of memory");
        meta_store_close(s);
        return st;
    }
    sqlite3_busy_timeout(s->db, 5000);
    /* WAL: readers never block the writer.  synchronous=FULL: a COMMIT is on
     * disk when it returns, so a reply never promises what a crash loses. */
    if (exec_sql(s, "PRAGMA journal_mode = WAL") != CMQ_OK ||
        exec_sql(s, "PRAGMA synchronous = FULL") != CMQ_OK ||
        exec_sql(s, "PRAGMA foreign_keys = ON") != CMQ_OK) {
        st = meta_db_fail(s, err, "pragmas");
        meta_store_close(s);
        return st;
    }
    char mode[16] = "";
    sqlite3_stmt *q = meta_prepare(s, "PRAGMA journal_mode");
    if (q && sqlite3_step(q) == SQLITE_ROW)
        meta_col_text(q, 0, mode, sizeof mode);
    sqlite3_finalize(q);
    if (strcmp(mode, "wal") != 0) {
        st = meta_fail(err, CMQ_EIO, META_ROW(DEFAULT), NULL, "%s: WAL mode not available (mode %s)",
                       opts->path, mode);
        meta_store_close(s);
        return st;
    }
    if ((st = migrate(s, err)) != CMQ_OK || (st = check_master_key(s, opts->previous_master_key, err)) != CMQ_OK) {
        meta_store_close(s);
        return st;
    }
    s->opened_ms = meta_now_ms(s);
    *out = s;
    return CMQ_OK;
}

void meta_store_close(struct meta_store *s)
{
    if (!s)
        return;
    if (s->in_tx)
        meta_tx_rollback(s);
    if (s->db)
        sqlite3_close_v2(s->db);
    OPENSSL_cleanse(s->master_key, sizeof s->master_key);
    free(s->pending);
    free(s);
}
