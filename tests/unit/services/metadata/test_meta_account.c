/* test_meta_account.c: services/metadata/meta_account.c: accounts (numeric
 * appids) and keys (AKID ids, secrets sealed at rest, enable/disable). */
#include "meta_fixture.h"
#include "meta_secret.h"

#include <sqlite3.h>

TestSuite(store, .init = fx_setup, .fini = fx_teardown);

/* ---- accounts ---- */

Test(store, accounts_get_numeric_appids_and_may_choose_one)
{
    struct meta_err e = {0};
    cmq_AccountCreateRequest r = cmq_AccountCreateRequest_init_zero;
    cmq_Account a;
    cr_assert_eq(meta_account_create(fx.s, &r, &a, &e), CMQ_OK);
    cr_assert_eq(a.appid, fx.appid + 1);
    r.appid = 1251234567;
    cr_assert_eq(meta_account_create(fx.s, &r, &a, &e), CMQ_OK);
    cr_assert_eq(a.appid, 1251234567);
    assert_status(meta_account_create(fx.s, &r, &a, &e), CMQ_EEXIST, e);
    cmq_ListRequest lr = cmq_ListRequest_init_zero;
    cmq_AccountList al;
    cr_assert_eq(meta_account_list(fx.s, &lr, &al, &e), CMQ_OK);
    cr_assert_eq(al.total_count, 3);
    cr_assert_eq(al.accounts[0].appid, 1251234567); /* ordered by appid */
}

/* ---- keys ---- */

Test(store, key_has_akid_id_and_random_secret_that_round_trips)
{
    struct meta_err e = {0};
    cmq_KeyCreateRequest kr = {.appid = fx.appid};
    cmq_Key a, b, got;
    cr_assert_eq(meta_key_create(fx.s, &kr, &a, &e), CMQ_OK, "%s", e.reason);
    cr_assert_eq(meta_key_create(fx.s, &kr, &b, &e), CMQ_OK);
    cr_assert_eq(strncmp(a.secret_id, "AKID", 4), 0);
    cr_assert_eq(strlen(a.secret_id), 36);
    cr_assert_eq(strlen(a.secret_key), 32);
    cr_assert_str_neq(a.secret_key, b.secret_key);
    cr_assert_str_neq(a.secret_id, b.secret_id);
    cr_assert(a.enabled);
    cr_assert_eq(meta_key_get_secret(fx.s, a.secret_id, &got, &e), CMQ_OK);
    cr_assert_str_eq(got.secret_key, a.secret_key);
    cr_assert_eq(got.appid, fx.appid);
}

Test(store, secret_is_not_stored_in_clear)
{
    struct meta_err e = {0};
    cmq_KeyCreateRequest kr = {.appid = fx.appid};
    cmq_Key k;
    cr_assert_eq(meta_key_create(fx.s, &kr, &k, &e), CMQ_OK);
    meta_store_close(fx.s);
    fx.s = NULL;
    /* no byte sequence of the secret in the database or its WAL */
    const char *files[] = {"metadata.db", "metadata.db-wal"};
    for (int f = 0; f < 2; f++) {
        char p[400];
        snprintf(p, sizeof p, "%s/%s", fx.dir, files[f]);
        FILE *fp = fopen(p, "rb");
        if (!fp)
            continue;
        static char buf[1 << 20];
        size_t n = fread(buf, 1, sizeof buf, fp);
        fclose(fp);
        cr_assert_null(memmem(buf, n, k.secret_key, strlen(k.secret_key)), "secret in %s",
                       files[f]);
    }
    fx_reopen();
}

Test(store, disabled_key_gives_no_secret_and_can_be_enabled_again)
{
    struct meta_err e = {0};
    cmq_KeyCreateRequest kr = {.appid = fx.appid};
    cmq_Key k, got;
    cr_assert_eq(meta_key_create(fx.s, &kr, &k, &e), CMQ_OK);
    cr_assert_eq(meta_key_set_enabled(fx.s, k.secret_id, 0, &got, &e), CMQ_OK);
    cr_assert_not(got.enabled);
    cr_assert_eq(got.secret_key[0], '\0');
    assert_status(meta_key_get_secret(fx.s, k.secret_id, &got, &e), CMQ_EAUTH, e);
    assert_cmq(e, 4100, 10080);
    cr_assert_eq(got.secret_key[0], '\0');
    cr_assert_eq(fx_count_events("key.disabled"), 1);
    cr_assert_eq(meta_key_set_enabled(fx.s, k.secret_id, 1, &got, &e), CMQ_OK);
    cr_assert_eq(meta_key_get_secret(fx.s, k.secret_id, &got, &e), CMQ_OK);
}

Test(store, unknown_and_malformed_secret_ids)
{
    struct meta_err e = {0};
    cmq_Key got;
    assert_status(meta_key_get_secret(fx.s, "AKIDnope", &got, &e), CMQ_ENOTFOUND, e);
    assert_cmq(e, 4100, 10270);
    assert_status(meta_key_get_secret(fx.s, "XKIDnope", &got, &e), CMQ_EAUTH, e);
    assert_cmq(e, 4000, 10450);
    cmq_Key k;
    cr_assert_eq(meta_key_set_enabled(fx.s, "AKIDnope", 0, &k, &e), CMQ_ENOTFOUND);
}

Test(store, key_needs_an_existing_account_and_list_hides_secrets)
{
    struct meta_err e = {0};
    cmq_KeyCreateRequest kr = {.appid = 42};
    cmq_Key k;
    assert_status(meta_key_create(fx.s, &kr, &k, &e), CMQ_ENOTFOUND, e);
    kr.appid = fx.appid;
    cr_assert_eq(meta_key_create(fx.s, &kr, &k, &e), CMQ_OK);
    cmq_KeyList kl;
    cr_assert_eq(meta_key_list(fx.s, fx.appid, &kl, &e), CMQ_OK);
    cr_assert_eq(kl.keys_count, 1);
    cr_assert_str_eq(kl.keys[0].secret_id, k.secret_id);
    cr_assert_eq(kl.keys[0].secret_key[0], '\0');
}

Test(store, tampered_ciphertext_does_not_decrypt)
{
    struct meta_err e = {0};
    cmq_KeyCreateRequest kr = {.appid = fx.appid};
    cmq_Key k, got;
    cr_assert_eq(meta_key_create(fx.s, &kr, &k, &e), CMQ_OK);
    meta_store_close(fx.s);
    fx.s = NULL;
    sqlite3 *db;
    cr_assert_eq(sqlite3_open(fx.path, &db), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(db, "UPDATE keys SET secret_ct = zeroblob(32)", NULL, NULL, NULL),
                 SQLITE_OK);
    sqlite3_close(db);
    fx_reopen();
    cr_assert_eq(meta_key_get_secret(fx.s, k.secret_id, &got, &e), CMQ_ECORRUPT);
    cr_assert_eq(got.secret_key[0], '\0');
}
