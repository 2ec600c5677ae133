/* meta_internal.h: what the files of the metadata store share (not public).
 *
 * meta_store.c: open, schema and migrations, transactions and events.
 * meta_account.c: accounts, keys.  meta_acl.c: ACL grants and checks.
 * meta_ns.c (+ meta_ns_internal.h): the entity engine for queues and topics;
 * meta_queue.c, meta_topic.c, meta_sub.c: what is theirs.
 * meta_place.c: nodes, partitions, placement.
 */
#ifndef CMQ_META_INTERNAL_H
#define CMQ_META_INTERNAL_H

#include "meta_secret.h"
#include "meta_store.h"

#include <sqlite3.h>
#include <stdarg.h>

#define META_NODES_MAX 64

struct meta_hb {
    char node_id[64];
    uint64_t last_ms;
};

struct meta_store {
    sqlite3 *db;
    struct meta_store_opts o;
    uint8_t master_key[META_MASTER_KEY_LEN];
    uint64_t opened_ms;
    int in_tx;
    /* events of the open transaction, emitted after COMMIT */
    cmq_MetaEvent *pending;
    size_t n_pending, cap_pending;
    /* Heartbeat times live in memory only: persisting each one would cost an
     * fsync per node per interval.  The database keeps the up/down state;
     * after a restart every node gets a full timeout from opened_ms. */
    struct meta_hb hb[META_NODES_MAX];
    int n_hb;
};

uint64_t meta_now_ms(struct meta_store *s);

/* A row of the gateway's CMQ error table, by its short name (metadata.proto
 * MetaRow): META_ROW(QUEUE_NOT_EXIST).  DEFAULT: the status's own row. */
#define META_ROW(name) cmq_MetaRow_META_ROW_##name

/* Fills err and returns `status`.  `row` names the CMQ row when the status
 * alone does not say it; `param` the offending parameter (NULL: none); the
 * formatted reason is for logs and cmqctl, never for CMQ clients. */
int meta_fail(struct meta_err *e, int status, cmq_MetaRow row, const char *param,
              const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* An SQLite failure: CMQ_EIO (row INTERNAL) naming `what` and SQLite's message. */
int meta_db_fail(struct meta_store *s, struct meta_err *e, const char *what);

/* BEGIN IMMEDIATE / COMMIT (bumping the version and emitting pending events) /
 * ROLLBACK (dropping them). */
int meta_tx_begin(struct meta_store *s, struct meta_err *e);
int meta_tx_commit(struct meta_store *s, struct meta_err *e);
void meta_tx_rollback(struct meta_store *s);
/* A zeroed event of `kind` queued in the open transaction (NULL on OOM). */
cmq_MetaEvent *meta_event_add(struct meta_store *s, const char *kind);

sqlite3_stmt *meta_prepare(struct meta_store *s, const char *sql);
void meta_col_text(sqlite3_stmt *st, int col, char *out, size_t cap);
/* Runs a query that yields one integer (or `dflt` when no row). */
int64_t meta_query_int(struct meta_store *s, const char *sql, int64_t dflt, int *ok);

/* Spec §5.1: 1-64 chars, an ASCII letter first, then letters, digits, '-'. */
int meta_name_valid(const char *name);
void meta_lower(const char *in, char *out, size_t cap);
/* n characters drawn uniformly from `alphabet` (OpenSSL's generator). */
int meta_random_chars(const char *alphabet, char *out, size_t n);
/* prefix + 12 random [0-9a-z] (cap >= strlen(prefix) + 13). */
int meta_random_id(const char *prefix, char *out, size_t cap);
int meta_account_exists(struct meta_store *s, uint64_t appid, struct meta_err *e);

/* A key by SecretId (meta_account.c); with_secret: the SecretKey unsealed. */
int meta_key_row(struct meta_store *s, const char *secret_id, cmq_Key *out, int with_secret,
                 struct meta_err *e);

/* The next numeric queue/topic id (inside an open transaction). */
int meta_next_num_id(struct meta_store *s, uint64_t *out);

/* Placement (meta_place.c), inside an open transaction: the partition a new
 * queue or topic goes to, or 0 when there is none yet. */
int meta_place_pick(struct meta_store *s, uint32_t *pid, struct meta_err *e);

#endif
