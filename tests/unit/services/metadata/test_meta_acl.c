/* test_meta_acl.c: services/metadata/meta_acl.c: grants of restricted keys
 * and the check the gateway asks for (denials answer EDENIED). */
#include "meta_fixture.h"

/* ---- ACL ---- */

TestSuite(acl, .init = fx_setup, .fini = fx_teardown);

static cmq_Key new_key(uint64_t appid, int restricted)
{
    struct meta_err e = {0};
    cmq_KeyCreateRequest kr = {.appid = appid, .restricted = restricted};
    cmq_Key k;
    cr_assert_eq(meta_key_create(fx.s, &kr, &k, &e), CMQ_OK, "%s", e.reason);
    return k;
}

static int grant(const char *sid, const char *action, const char *resource, struct meta_err *e)
{
    cmq_AclEntry r = cmq_AclEntry_init_zero, out;
    snprintf(r.secret_id, sizeof r.secret_id, "%s", sid);
    snprintf(r.action, sizeof r.action, "%s", action);
    snprintf(r.resource, sizeof r.resource, "%s", resource);
    return meta_acl_grant(fx.s, &r, &out, e);
}

static bool allowed(const char *sid, const char *action, const char *type, const char *name,
                    uint64_t owner)
{
    cmq_AclCheckRequest r = cmq_AclCheckRequest_init_zero;
    snprintf(r.secret_id, sizeof r.secret_id, "%s", sid);
    snprintf(r.action, sizeof r.action, "%s", action);
    snprintf(r.resource_type, sizeof r.resource_type, "%s", type);
    snprintf(r.resource_name, sizeof r.resource_name, "%s", name);
    r.owner_appid = owner;
    cmq_AclCheckReply out;
    struct meta_err e = {0};
    cr_assert_eq(meta_acl_check(fx.s, &r, &out, &e), CMQ_OK, "%s", e.reason);
    if (!out.allowed) {
        cr_assert(out.reason[0]);
    }
    return out.allowed;
}

Test(acl, unrestricted_key_may_do_anything_in_its_own_account_only)
{
    cmq_Key k = new_key(fx.appid, 0);
    cr_assert(allowed(k.secret_id, "SendMessage", "queue", "q1", 0));
    cr_assert(allowed(k.secret_id, "SendMessage", "queue", "q1", fx.appid));
    cr_assert_not(allowed(k.secret_id, "SendMessage", "queue", "q1", fx.appid + 999));
}

Test(acl, restricted_key_needs_a_grant_exact_or_prefix)
{
    cmq_Key k = new_key(fx.appid, 1);
    struct meta_err e = {0};
    cr_assert_not(allowed(k.secret_id, "SendMessage", "queue", "orders", 0));
    cr_assert_eq(grant(k.secret_id, "SendMessage", "queue:orders", &e), CMQ_OK, "%s", e.reason);
    cr_assert(allowed(k.secret_id, "SendMessage", "queue", "orders", 0));
    cr_assert(allowed(k.secret_id, "sendmessage", "queue", "orders", 0)); /* action: any case */
    cr_assert_not(allowed(k.secret_id, "SendMessage", "queue", "orders2", 0));
    cr_assert_not(allowed(k.secret_id, "ReceiveMessage", "queue", "orders", 0));
    cr_assert_not(allowed(k.secret_id, "SendMessage", "topic", "orders", 0));

    cr_assert_eq(grant(k.secret_id, "ReceiveMessage", "queue:ord-*", &e), CMQ_OK);
    cr_assert(allowed(k.secret_id, "ReceiveMessage", "queue", "ord-1", 0));
    cr_assert(allowed(k.secret_id, "ReceiveMessage", "queue", "ord-", 0));
    cr_assert_not(allowed(k.secret_id, "ReceiveMessage", "queue", "ord1", 0));
    cr_assert_not(allowed(k.secret_id, "ReceiveMessage", "queue", "Ord-1", 0)); /* names: exact case */
    /* account-level actions (ListQueue) need a grant on every name of the type */
    cr_assert_not(allowed(k.secret_id, "ListQueue", "queue", "", 0));
    cr_assert_not(allowed(k.secret_id, "ListQueue", "", "", 0));
    cr_assert_eq(grant(k.secret_id, "ListQueue", "queue:*", &e), CMQ_OK);
    cr_assert(allowed(k.secret_id, "ListQueue", "queue", "", 0));
    cr_assert(allowed(k.secret_id, "ListQueue", "", "", 0)); /* no type given */
    cr_assert_not(allowed(k.secret_id, "ListTopic", "", "", 0));

    cr_assert_eq(grant(k.secret_id, "*", "topic:news*", &e), CMQ_OK);
    cr_assert(allowed(k.secret_id, "PublishMessage", "topic", "news-eu", 0));
    cr_assert_not(allowed(k.secret_id, "PublishMessage", "topic", "sport", 0));
    cr_assert_eq(grant(k.secret_id, "PublishMessage", "*", &e), CMQ_OK);
    cr_assert(allowed(k.secret_id, "PublishMessage", "topic", "sport", 0));
}

Test(acl, grants_never_cross_accounts)
{
    cmq_AccountCreateRequest ar = cmq_AccountCreateRequest_init_zero;
    cmq_Account other;
    struct meta_err e = {0};
    cr_assert_eq(meta_account_create(fx.s, &ar, &other, &e), CMQ_OK);
    cmq_Key k = new_key(other.appid, 1);
    cr_assert_eq(grant(k.secret_id, "*", "*", &e), CMQ_OK);
    cr_assert(allowed(k.secret_id, "SendMessage", "queue", "q", other.appid));
    cr_assert_not(allowed(k.secret_id, "SendMessage", "queue", "q", fx.appid));
}

Test(acl, revoke_by_fields_or_id_and_list)
{
    cmq_Key k = new_key(fx.appid, 1);
    struct meta_err e = {0};
    cr_assert_eq(grant(k.secret_id, "SendMessage", "queue:a", &e), CMQ_OK);
    cr_assert_eq(grant(k.secret_id, "SendMessage", "queue:b*", &e), CMQ_OK);
    assert_status(grant(k.secret_id, "sendMESSAGE", "queue:a", &e), CMQ_EEXIST, e);
    cmq_AclList l;
    cr_assert_eq(meta_acl_list(fx.s, k.secret_id, &l, &e), CMQ_OK);
    cr_assert_eq(l.entries_count, 2);
    cr_assert_str_eq(l.entries[1].resource, "queue:b*");

    cmq_AclEntry r = cmq_AclEntry_init_zero, out;
    strcpy(r.secret_id, k.secret_id);
    strcpy(r.action, "SendMessage");
    strcpy(r.resource, "queue:a");
    cr_assert_eq(meta_acl_revoke(fx.s, &r, &out, &e), CMQ_OK, "%s", e.reason);
    cr_assert_not(allowed(k.secret_id, "SendMessage", "queue", "a", 0));
    assert_status(meta_acl_revoke(fx.s, &r, &out, &e), CMQ_ENOTFOUND, e);
    r = (cmq_AclEntry)cmq_AclEntry_init_zero;
    r.id = l.entries[1].id;
    cr_assert_eq(meta_acl_revoke(fx.s, &r, &out, &e), CMQ_OK);
    cr_assert_eq(meta_acl_list(fx.s, k.secret_id, &l, &e), CMQ_OK);
    cr_assert_eq(l.entries_count, 0);
}

Test(acl, bad_grants_and_disabled_keys)
{
    cmq_Key k = new_key(fx.appid, 1);
    struct meta_err e = {0};
    assert_status(grant(k.secret_id, "Send Message", "queue:a", &e), CMQ_EINVAL, e);
    assert_status(grant(k.secret_id, "SendMessage", "queues:a", &e), CMQ_EINVAL, e);
    assert_status(grant(k.secret_id, "SendMessage", "queue:1a", &e), CMQ_EINVAL, e);
    assert_status(grant(k.secret_id, "SendMessage", "queue:a_b", &e), CMQ_EINVAL, e);
    assert_status(grant("AKIDmissing", "SendMessage", "queue:a", &e), CMQ_ENOTFOUND, e);
    cmq_Key out;
    cr_assert_eq(meta_key_set_enabled(fx.s, k.secret_id, 0, &out, &e), CMQ_OK);
    cmq_AclCheckRequest r = cmq_AclCheckRequest_init_zero;
    strcpy(r.secret_id, k.secret_id);
    strcpy(r.action, "SendMessage");
    strcpy(r.resource_type, "queue");
    strcpy(r.resource_name, "a");
    cmq_AclCheckReply rep;
    assert_status(meta_acl_check(fx.s, &r, &rep, &e), CMQ_EAUTH, e);
    assert_cmq(e, 4100, 10080);
}
