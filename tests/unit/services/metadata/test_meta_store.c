/* test_meta_store.c: services/metadata/meta_store.c and meta_secret.c:
 * schema and migrations, restart, the master key, the change counter and
 * events, sealed secrets.  Accounts and keys: test_meta_account.c; ACL:
 * test_meta_acl.c. */
#include "meta_fixture.h"
#include "meta_secret.h"
#include "../../tmpdir.h"

#include <sqlite3.h>

TestSuite(store, .init = fx_setup, .fini = fx_teardown);

static int db_int(const char *sql)
{
    sqlite3 *db;
    cr_assert_eq(sqlite3_open(fx.path, &db), SQLITE_OK);
    sqlite3_stmt *st;
    cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK, "%s", sqlite3_errmsg(db));
    int v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : -1;
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

Test(store, migrates_an_empty_file_to_the_current_schema)
{
    cr_assert_eq(meta_store_schema_version(fx.s), META_SCHEMA_VERSION);
    cr_assert_eq(db_int("PRAGMA user_version"), META_SCHEMA_VERSION);
    cr_assert_eq(db_int("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name IN"
                        " ('accounts','keys','acl','queues','topics','subscriptions','nodes',"
                        "'partitions','replicas','tombstones','meta','sub_lists')"),
                 12);
}

Test(store, uses_wal_and_foreign_keys)
{
    sqlite3 *db;
    cr_assert_eq(sqlite3_open(fx.path, &db), SQLITE_OK);
    sqlite3_stmt *st;
    sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL);
    cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
    cr_assert_str_eq((const char *)sqlite3_column_text(st, 0), "wal");
    sqlite3_finalize(st);
    sqlite3_close(db);
}

Test(store, refuses_a_schema_newer_than_the_binary)
{
    meta_store_close(fx.s);
    fx.s = NULL;
    sqlite3 *db;
    cr_assert_eq(sqlite3_open(fx.path, &db), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    struct meta_err e = {0};
    cr_assert_eq(meta_store_open(&fx.opts, &fx.s, &e), CMQ_EUNSUPPORTED);
    cr_assert(strstr(e.reason, "99") != NULL, "%s", e.reason);
}

Test(store, refuses_a_different_master_key)
{
    meta_store_close(fx.s);
    fx.s = NULL;
    uint8_t other[32] = {9};
    struct meta_store_opts o = fx.opts;
    o.master_key = other;
    struct meta_err e = {0};
    cr_assert_eq(meta_store_open(&o, &fx.s, &e), CMQ_EAUTH);
    cr_assert(strstr(e.reason, "master key") != NULL, "%s", e.reason);
    fx_reopen(); /* the right key still opens it */
}

Test(store, master_key_rotation_reseals_every_secret)
{
    struct meta_err e = {0};
    cmq_KeyCreateRequest kr = {.appid = fx.appid};
    cmq_Key k1, k2, got;
    cr_assert_eq(meta_key_create(fx.s, &kr, &k1, &e), CMQ_OK);
    cr_assert_eq(meta_key_create(fx.s, &kr, &k2, &e), CMQ_OK);
    uint8_t old[32], fresh[32], wrong[32];
    memcpy(old, fx.key, 32);
    memset(fresh, 0x5a, 32);
    memset(wrong, 0x11, 32);
    /* new key with a wrong previous one: refused, nothing changed */
    memcpy(fx.key, fresh, 32);
    fx.opts.previous_master_key = wrong;
    meta_store_close(fx.s);
    fx.s = NULL;
    cr_assert_eq(meta_store_open(&fx.opts, &fx.s, &e), CMQ_EAUTH);
    /* new key with the right previous one: re-sealed */
    fx.opts.previous_master_key = old;
    fx_reopen();
    cr_assert_eq(meta_key_get_secret(fx.s, k1.secret_id, &got, &e), CMQ_OK, "%s", e.reason);
    cr_assert_str_eq(got.secret_key, k1.secret_key);
    /* from now on the new key alone opens it, the old one no longer */
    fx.opts.previous_master_key = NULL;
    fx_reopen();
    cr_assert_eq(meta_key_get_secret(fx.s, k2.secret_id, &got, &e), CMQ_OK, "%s", e.reason);
    cr_assert_str_eq(got.secret_key, k2.secret_key);
    memcpy(fx.key, old, 32);
    meta_store_close(fx.s);
    fx.s = NULL;
    cr_assert_eq(meta_store_open(&fx.opts, &fx.s, &e), CMQ_EAUTH);
    memcpy(fx.key, fresh, 32);
    fx_reopen();
}

Test(store, version_counts_committed_changes_and_events_carry_it)
{
    uint64_t v0 = meta_store_version(fx.s);
    struct meta_err e = {0};
    cr_assert_eq(qcreate("a1", NULL, &e), CMQ_OK);
    cr_assert_eq(meta_store_version(fx.s), v0 + 1);
    cr_assert_eq(fx.events[fx.n_events - 1].version, v0 + 1);
    cr_assert_str_eq(fx.events[fx.n_events - 1].kind, "queue.created");
    /* a rejected request changes nothing and publishes nothing */
    int n = fx.n_events;
    cr_assert_eq(qcreate("a1", NULL, &e), CMQ_EEXIST);
    cr_assert_eq(meta_store_version(fx.s), v0 + 1);
    cr_assert_eq(fx.n_events, n);
}

Test(store, restart_keeps_everything)
{
    struct meta_err e = {0};
    cmq_KeyCreateRequest kr = {.appid = fx.appid};
    cmq_Key k;
    cr_assert_eq(meta_key_create(fx.s, &kr, &k, &e), CMQ_OK);
    cr_assert_eq(qcreate("keepme", NULL, &e), CMQ_OK);
    cr_assert_eq(tcreate("keeptopic", 2, NULL, &e), CMQ_OK);
    cmq_SubRequest sr = sreq("keeptopic", "s1", "queue", "keepme");
    sr.binding_keys_count = 1;
    strcpy(sr.binding_keys[0], "a.*.c");
    cmq_SubInfo si;
    cr_assert_eq(meta_sub_create(fx.s, &sr, &si, &e), CMQ_OK, "%s", e.reason);
    uint64_t v = meta_store_version(fx.s);

    fx_reopen();
    cr_assert_eq(meta_store_version(fx.s), v);
    cmq_Key k2;
    cr_assert_eq(meta_key_get_secret(fx.s, k.secret_id, &k2, &e), CMQ_OK, "%s", e.reason);
    cr_assert_str_eq(k2.secret_key, k.secret_key);
    cmq_QueueInfo qi;
    cmq_NameRequest nr = nreq("keepme");
    cr_assert_eq(meta_queue_get(fx.s, &nr, &qi, &e), CMQ_OK);
    cr_assert_eq(qi.visibility_timeout, 30);
    cmq_SubNameRequest snr = {.appid = fx.appid};
    strcpy(snr.topic_name, "keeptopic");
    strcpy(snr.subscription_name, "s1");
    cr_assert_eq(meta_sub_get(fx.s, &snr, &si, &e), CMQ_OK);
    cr_assert_eq(si.binding_keys_count, 1);
    cr_assert_str_eq(si.binding_keys[0], "a.*.c");
    cr_assert_str_eq(si.notify_content_format, "SIMPLIFIED");
}

/* ---- secrets (meta_secret.c) ---- */

Test(secret, seal_open_round_trip_and_binding_to_the_row)
{
    uint8_t key[32] = {1, 2, 3}, nonce[12], tag[16], ct[32], plain[33] = {0};
    const char *secret = "0123456789abcdefABCDEF0123456789";
    cr_assert_eq(meta_secret_seal(key, "AKIDone", secret, 32, nonce, ct, tag), CMQ_OK);
    cr_assert_neq(memcmp(ct, secret, 32), 0);
    cr_assert_eq(meta_secret_open(key, "AKIDone", nonce, ct, 32, tag, plain), CMQ_OK);
    cr_assert_str_eq((char *)plain, secret);
    /* same ciphertext under another SecretId, or another key, fails */
    cr_assert_eq(meta_secret_open(key, "AKIDtwo", nonce, ct, 32, tag, plain), CMQ_ECORRUPT);
    uint8_t other[32] = {1, 2, 4};
    cr_assert_eq(meta_secret_open(other, "AKIDone", nonce, ct, 32, tag, plain), CMQ_ECORRUPT);
    ct[5] ^= 1;
    cr_assert_eq(meta_secret_open(key, "AKIDone", nonce, ct, 32, tag, plain), CMQ_ECORRUPT);
}

Test(secret, nonces_differ_per_seal)
{
    uint8_t key[32] = {0}, n1[12], n2[12], t[16], ct[8];
    cr_assert_eq(meta_secret_seal(key, "AKIDx", "abcdefgh", 8, n1, ct, t), CMQ_OK);
    cr_assert_eq(meta_secret_seal(key, "AKIDx", "abcdefgh", 8, n2, ct, t), CMQ_OK);
    cr_assert_neq(memcmp(n1, n2, 12), 0);
}

Test(secret, master_key_parse_and_file)
{
    uint8_t k[32];
    cr_assert_eq(meta_master_key_parse("  000102030405060708090a0b0c0d0e0f"
                                       "101112131415161718191A1B1C1D1E1F\n",
                                       k),
                 CMQ_OK);
    cr_assert_eq(k[31], 0x1f);
    cr_assert_eq(meta_master_key_parse("0011", k), CMQ_EINVAL);
    cr_assert_eq(meta_master_key_parse("zz0102030405060708090a0b0c0d0e0f"
                                       "101112131415161718191a1b1c1d1e1f",
                                       k),
                 CMQ_EINVAL);
    char dir[64], path[96];
    tmpdir_make(dir, sizeof dir, "mk");
    snprintf(path, sizeof path, "%s/master.key", dir);
    uint8_t a[32], b[32];
    int created;
    cr_assert_eq(meta_master_key_load(path, 0, a, &created), CMQ_ENOTFOUND);
    cr_assert_eq(meta_master_key_load(path, 1, a, &created), CMQ_OK);
    cr_assert(created);
    cr_assert_eq(meta_master_key_load(path, 1, b, &created), CMQ_OK);
    cr_assert_not(created);
    cr_assert_eq(memcmp(a, b, 32), 0);
    struct stat sb;
    cr_assert_eq(stat(path, &sb), 0);
    cr_assert_eq(sb.st_mode & 0777, 0600);
    tmpdir_remove(dir);
}

/* ---- numeric ids (schema v2) ---- */

Test(store, num_ids_share_one_sequence_and_are_never_reused)
{
    struct meta_err e = {0};
    fx.opts.name_reuse_wait_ms = -1;
    fx_reopen();
    cmq_QueueInfo q1, q2;
    cmq_TopicInfo t;
    cr_assert_eq(qcreate("a", &q1, &e), CMQ_OK);
    cr_assert_eq(tcreate("a", 0, &t, &e), CMQ_OK);
    cr_assert_eq(q1.num_id, 1);
    cr_assert_eq(t.num_id, 2);
    cmq_NameRequest nr = nreq("a");
    cr_assert_eq(meta_queue_delete(fx.s, &nr, &q2, &e), CMQ_OK);
    cr_assert_eq(fx.events[fx.n_events - 1].num_id, 1);
    cr_assert_eq(qcreate("a", &q2, &e), CMQ_OK);
    cr_assert_eq(q2.num_id, 3);
    /* a rejected create does not use up a number */
    cr_assert_eq(qcreate("A", NULL, &e), CMQ_EEXIST);
    fx_reopen();
    cr_assert_eq(qcreate("b", &q2, &e), CMQ_OK);
    cr_assert_eq(q2.num_id, 4);
}

Test(store, migrates_a_v1_database_numbering_existing_rows)
{
    struct meta_err e = {0};
    cr_assert_eq(qcreate("q1", NULL, &e), CMQ_OK);
    cr_assert_eq(tcreate("t1", 0, NULL, &e), CMQ_OK);
    cr_assert_eq(qcreate("q2", NULL, &e), CMQ_OK);
    meta_store_close(fx.s);
    fx.s = NULL;
    /* turn the file back into schema v1 */
    sqlite3 *db;
    cr_assert_eq(sqlite3_open(fx.path, &db), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(db,
                              "DROP INDEX queues_num_id; DROP INDEX topics_num_id;"
                              "ALTER TABLE queues DROP COLUMN num_id;"
                              "ALTER TABLE topics DROP COLUMN num_id;"
                              "ALTER TABLE subscriptions DROP COLUMN dlq_queue_id;"
                              "DELETE FROM meta WHERE key IN ('next_num_id', 'placement_version');"
                              "PRAGMA user_version = 1;",
                              NULL, NULL, NULL),
                 SQLITE_OK, "%s", sqlite3_errmsg(db));
    sqlite3_close(db);
    fx_reopen();
    cr_assert_eq(meta_store_schema_version(fx.s), META_SCHEMA_VERSION);
    cmq_QueueInfo q;
    cmq_TopicInfo t;
    cmq_NameRequest nr = nreq("q2");
    cr_assert_eq(meta_queue_get(fx.s, &nr, &q, &e), CMQ_OK);
    cr_assert_eq(q.num_id, 2);
    nr = nreq("t1");
    cr_assert_eq(meta_topic_get(fx.s, &nr, &t, &e), CMQ_OK);
    cr_assert_eq(t.num_id, 3);
    cr_assert_eq(qcreate("q3", &q, &e), CMQ_OK);
    cr_assert_eq(q.num_id, 4);
}
