/* test_meta_ns.c: services/metadata/meta_ns.c: the namespace engine: one
 * entity descriptor runs create/get/set/delete/list for queues and topics
 * (each rule once, with each entity's own rows), names (spec §5.1), lists,
 * quotas (§11) and deleted names.  Entity-specific rules are in
 * test_meta_queue.c, test_meta_topic.c and test_meta_sub.c. */
#include "cmq_error.h"
#include "meta_fixture.h"
#include "meta_ns_internal.h"

TestSuite(entity, .init = fx_setup, .fini = fx_teardown);
TestSuite(names, .init = fx_setup, .fini = fx_teardown);
TestSuite(lists, .init = fx_setup, .fini = fx_teardown);
TestSuite(quotas, .init = fx_setup, .fini = fx_teardown);
TestSuite(reuse, .init = fx_setup, .fini = fx_teardown);

/* ---- the entity engine, once for each descriptor ---- */

union info {
    cmq_QueueInfo q;
    cmq_TopicInfo t;
};

static int create(const struct meta_entity *d, const char *name, struct meta_err *e)
{
    return d == &meta_queue_entity ? qcreate(name, NULL, e) : tcreate(name, 0, NULL, e);
}

static const struct meta_entity *const entities[] = {&meta_queue_entity, &meta_topic_entity};

/* The rules meta_ns.c keeps hold for queues and topics alike, and each
 * failure names the entity's own row (checked through the gateway's table:
 * QUEUE_... for a queue, TOPIC_... for a topic). */
Test(entity, same_rules_for_queues_and_topics_with_their_own_rows)
{
    for (size_t i = 0; i < sizeof entities / sizeof entities[0]; i++) {
        const struct meta_entity *d = entities[i];
        const char *want = d == &meta_queue_entity ? "QUEUE" : "TOPIC";
        struct meta_err e = {0};
        union info a, b;
        int64_t row = 0;
        cr_assert_eq(meta_entity_name_check(d, "1bad", &e), CMQ_EINVAL);
        cr_assert_eq(e.row, d->row_name_format);
        cr_assert_str_eq(e.param, d->name_param);
        cr_assert_eq(meta_entity_name_check(d, "good-1", &e), CMQ_OK);

        cr_assert_eq(create(d, "Abc", &e), CMQ_OK, "%s: %s", d->kind, e.reason);
        cr_assert_eq(fx_count_events(d == &meta_queue_entity ? "queue.created" : "topic.created"), 1);
        /* lookups are exact-case; uniqueness is not */
        cr_assert_eq(meta_entity_find(fx.s, d, fx.appid, "abc", &a, NULL, &e), CMQ_ENOTFOUND);
        cr_assert_eq(e.row, d->row_not_found);
        cr_assert_str_eq(e.param, d->name_param);
        cr_assert_eq(create(d, "ABC", &e), CMQ_EEXIST);
        cr_assert_eq(e.row, d->row_exists);
        cr_assert_eq(meta_entity_find(fx.s, d, fx.appid, "Abc", &a, &row, &e), CMQ_OK);
        cr_assert_gt(row, 0);
        cr_assert_eq(meta_entity_by_row(fx.s, d, row, &b, &e), CMQ_OK);
        struct meta_brief ba, bb;
        d->brief(&a, &ba);
        d->brief(&b, &bb);
        cr_assert_str_eq(ba.name, "Abc");
        cr_assert_str_eq(ba.id, bb.id);
        cr_assert(strncmp(ba.id, d->id_prefix, strlen(d->id_prefix)) == 0, "%s", ba.id);
        cr_assert_eq(ba.num_id, bb.num_id);
        cr_assert_eq(ba.appid, fx.appid);

        cr_assert_eq(meta_entity_delete(fx.s, d, fx.appid, "Abc", &b, &e), CMQ_OK, "%s", e.reason);
        d->brief(&b, &bb);
        cr_assert_str_eq(bb.id, ba.id); /* the entity as it was */
        cr_assert_eq(meta_entity_delete(fx.s, d, fx.appid, "Abc", &b, &e), CMQ_ENOTFOUND);
        cr_assert_eq(create(d, "abc", &e), CMQ_EBUSY); /* the tombstone, any case */
        cr_assert_eq(e.row, d->row_recreate);

        /* every row the descriptor names is its entity's row of the table */
        const cmq_MetaRow rows[] = {d->row_name_format, d->row_not_found, d->row_exists,
                                    d->row_quota, d->row_recreate};
        for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++) {
            enum cmq_err ce = cmq_error_from_meta(CMQ_EINVAL, (int)rows[r]);
            cr_assert(strstr(cmq_error_id(ce), want) || (d == &meta_queue_entity &&
                                                          ce == CMQERR_RECREATE_TOO_SOON),
                      "%s: %s", d->kind, cmq_error_id(ce));
        }
    }
    cr_assert_eq(fx_count_events("queue.deleted"), 1);
    cr_assert_eq(fx_count_events("topic.deleted"), 1);
}

struct names {
    int n;
    char name[8][80];
};

static void collect(void *arg, const char *id, const char *name)
{
    (void)id;
    struct names *l = arg;
    if (l->n < 8)
        snprintf(l->name[l->n++], sizeof l->name[0], "%s", name);
}

Test(entity, list_and_quota_per_entity)
{
    fx.opts.queues_per_account = 3;
    fx.opts.topics_per_account = 3;
    fx_reopen();
    for (size_t i = 0; i < sizeof entities / sizeof entities[0]; i++) {
        struct meta_entity d = *entities[i];
        d.list_row = collect; /* the engine calls the descriptor's hook */
        struct meta_err e = {0};
        cr_assert_eq(create(entities[i], "b-one", &e), CMQ_OK);
        cr_assert_eq(create(entities[i], "a-two", &e), CMQ_OK);
        cr_assert_eq(create(entities[i], "c-one", &e), CMQ_OK);
        cr_assert_eq(create(entities[i], "d", &e), CMQ_ELIMIT);
        cr_assert_eq(e.row, d.row_quota);
        cmq_ListRequest req = cmq_ListRequest_init_zero;
        req.appid = fx.appid;
        snprintf(req.search_word, sizeof req.search_word, "ONE");
        struct names l = {0};
        uint32_t total = 0;
        cr_assert_eq(meta_entity_list(fx.s, &d, &req, &total, &l, &e), CMQ_OK);
        cr_assert_eq(total, 2);
        cr_assert_eq(l.n, 2);
        cr_assert_str_eq(l.name[0], "b-one"); /* creation order */
        cr_assert_str_eq(l.name[1], "c-one");
        req.has_limit = true;
        req.limit = -1;
        cr_assert_eq(meta_entity_list(fx.s, &d, &req, &total, &l, &e), CMQ_EINVAL);
        cr_assert_eq(e.row, META_ROW(PARAM_RANGE));
    }
}

/* ---- names (spec §5.1) ---- */

Test(names, valid_and_invalid_queue_names)
{
    struct meta_err e = {0};
    const char *good[] = {"a", "Q", "queue-1", "a0-b1-C2",
                          "a234567890123456789012345678901234567890123456789012345678901234"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        cr_assert_eq(qcreate(good[i], NULL, &e), CMQ_OK, "%s: %s", good[i], e.reason);
    const char *bad[] = {"", "1abc", "-abc", "a_b", "a.b", "a b", "ab\xc3\xa9", "a/b",
                         "a2345678901234567890123456789012345678901234567890123456789012345"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_eq(qcreate(bad[i], NULL, &e), CMQ_EINVAL, "%s accepted", bad[i]);
        assert_cmq(e, 4000, 10020);
        cr_assert_str_eq(e.param, "queueName");
    }
}

Test(names, topic_and_subscription_names_have_their_own_codes)
{
    struct meta_err e = {0};
    assert_status(tcreate("9t", 0, NULL, &e), CMQ_EINVAL, e);
    assert_cmq(e, 4000, 10590);
    cr_assert_eq(tcreate("t", 0, NULL, &e), CMQ_OK);
    cmq_SubRequest r = sreq("t", "bad_name", "http", "http://example.com/x");
    cmq_SubInfo si;
    assert_status(meta_sub_create(fx.s, &r, &si, &e), CMQ_EINVAL, e);
    assert_cmq(e, 4000, 10580);
}

Test(names, uniqueness_is_case_insensitive_lookup_is_exact_spelling_kept)
{
    struct meta_err e = {0};
    cmq_QueueInfo qi;
    cr_assert_eq(qcreate("MyQueue", &qi, &e), CMQ_OK);
    assert_status(qcreate("myqueue", NULL, &e), CMQ_EEXIST, e);
    assert_cmq(e, 4460, 0);
    cr_assert(strstr(e.reason, "case insensitive") != NULL);
    cmq_NameRequest nr = nreq("MyQueue");
    cr_assert_eq(meta_queue_get(fx.s, &nr, &qi, &e), CMQ_OK);
    cr_assert_str_eq(qi.name, "MyQueue");
    nr = nreq("myqueue");
    assert_status(meta_queue_get(fx.s, &nr, &qi, &e), CMQ_ENOTFOUND, e);
    assert_cmq(e, 4440, 10100);
    /* topics likewise; a topic and a queue may share a name */
    cr_assert_eq(tcreate("MyQueue", 0, NULL, &e), CMQ_OK);
    assert_status(tcreate("MYQUEUE", 0, NULL, &e), CMQ_EEXIST, e);
    assert_cmq(e, 4460, 0);
}

Test(names, ids_are_prefixed_and_unique)
{
    struct meta_err e = {0};
    cmq_QueueInfo a, b;
    cmq_TopicInfo t;
    cr_assert_eq(qcreate("a", &a, &e), CMQ_OK);
    cr_assert_eq(qcreate("b", &b, &e), CMQ_OK);
    cr_assert_eq(tcreate("t", 0, &t, &e), CMQ_OK);
    cr_assert_eq(strncmp(a.queue_id, "queue-", 6), 0);
    cr_assert_eq(strncmp(t.topic_id, "topic-", 6), 0);
    cr_assert_str_neq(a.queue_id, b.queue_id);
}

/* ---- lists (spec §6.2, §7.3, §8.2) ---- */

Test(lists, creation_order_search_offset_limit)
{
    struct meta_err e = {0};
    const char *names[] = {"zeta", "Alpha-1", "beta", "alpha-2", "gamma", "ALPHA-3"};
    for (int i = 0; i < 6; i++)
        cr_assert_eq(qcreate(names[i], NULL, &e), CMQ_OK);
    cmq_ListRequest lr = cmq_ListRequest_init_zero;
    lr.appid = fx.appid;
    cmq_QueueList l;
    cr_assert_eq(meta_queue_list(fx.s, &lr, &l, &e), CMQ_OK);
    cr_assert_eq(l.total_count, 6);
    cr_assert_eq(l.queues_count, 6);
    for (int i = 0; i < 6; i++)
        cr_assert_str_eq(l.queues[i].queue_name, names[i]);
    /* fuzzy search: case-insensitive substring; totalCount counts matches */
    strcpy(lr.search_word, "alpha");
    lr.has_offset = true;
    lr.offset = 1;
    lr.has_limit = true;
    lr.limit = 1;
    cr_assert_eq(meta_queue_list(fx.s, &lr, &l, &e), CMQ_OK);
    cr_assert_eq(l.total_count, 3);
    cr_assert_eq(l.queues_count, 1);
    cr_assert_str_eq(l.queues[0].queue_name, "alpha-2");
    /* offset without limit (Java, C++ SDKs): default limit */
    lr.has_limit = false;
    lr.offset = 2;
    cr_assert_eq(meta_queue_list(fx.s, &lr, &l, &e), CMQ_OK);
    cr_assert_eq(l.queues_count, 1);
    cr_assert_str_eq(l.queues[0].queue_name, "ALPHA-3");
    /* a search word that is an SQL pattern matches literally */
    strcpy(lr.search_word, "%");
    lr.has_offset = false;
    cr_assert_eq(meta_queue_list(fx.s, &lr, &l, &e), CMQ_OK);
    cr_assert_eq(l.total_count, 0);
    lr.has_offset = true;
    lr.offset = -1;
    assert_status(meta_queue_list(fx.s, &lr, &l, &e), CMQ_EINVAL, e);
    assert_cmq(e, 4000, 10350);
}

Test(lists, default_twenty_and_clamp_fifty_and_stable_after_delete)
{
    struct meta_err e = {0};
    fx.opts.name_reuse_wait_ms = -1;
    fx_reopen();
    for (int i = 0; i < 60; i++) {
        char n[16];
        snprintf(n, sizeof n, "q%02d", i);
        cr_assert_eq(qcreate(n, NULL, &e), CMQ_OK);
    }
    cmq_ListRequest lr = cmq_ListRequest_init_zero;
    lr.appid = fx.appid;
    cmq_QueueList l;
    cr_assert_eq(meta_queue_list(fx.s, &lr, &l, &e), CMQ_OK);
    cr_assert_eq(l.queues_count, 20);
    cr_assert_eq(l.total_count, 60);
    lr.has_limit = true;
    lr.limit = 500;
    cr_assert_eq(meta_queue_list(fx.s, &lr, &l, &e), CMQ_OK);
    cr_assert_eq(l.queues_count, 50);
    cr_assert_str_eq(l.queues[49].queue_name, "q49");
    /* deleting and re-creating a name puts it at the end */
    cmq_NameRequest nr = nreq("q00");
    cmq_QueueInfo q;
    cr_assert_eq(meta_queue_delete(fx.s, &nr, &q, &e), CMQ_OK);
    cr_assert_eq(qcreate("q00", NULL, &e), CMQ_OK);
    lr.has_offset = true;
    lr.offset = 59;
    cr_assert_eq(meta_queue_list(fx.s, &lr, &l, &e), CMQ_OK);
    cr_assert_eq(l.queues_count, 1);
    cr_assert_str_eq(l.queues[0].queue_name, "q00");
}

Test(lists, topics_and_subscriptions)
{
    struct meta_err e = {0};
    cr_assert_eq(tcreate("news", 0, NULL, &e), CMQ_OK);
    cr_assert_eq(tcreate("sport", 0, NULL, &e), CMQ_OK);
    cmq_ListRequest lr = cmq_ListRequest_init_zero;
    lr.appid = fx.appid;
    strcpy(lr.search_word, "EW");
    cmq_TopicList tl;
    cr_assert_eq(meta_topic_list(fx.s, &lr, &tl, &e), CMQ_OK);
    cr_assert_eq(tl.total_count, 1);
    cr_assert_str_eq(tl.topics[0].topic_name, "news");
    for (int i = 0; i < 30; i++) {
        char n[16];
        snprintf(n, sizeof n, "s%02d", i);
        cmq_SubRequest r = sreq("news", n, "http", "http://h/");
        cmq_SubInfo si;
        cr_assert_eq(meta_sub_create(fx.s, &r, &si, &e), CMQ_OK);
    }
    lr = (cmq_ListRequest)cmq_ListRequest_init_zero;
    lr.appid = fx.appid;
    strcpy(lr.topic_name, "news");
    cmq_SubList sl;
    cr_assert_eq(meta_sub_list(fx.s, &lr, &sl, &e), CMQ_OK);
    cr_assert_eq(sl.total_count, 30);
    cr_assert_eq(sl.subscriptions_count, 20);
    cr_assert_str_eq(sl.subscriptions[0].subscription_name, "s00");
    pb_release(cmq_SubList_fields, &sl);
    lr.has_offset = true;
    lr.offset = 1001;
    assert_status(meta_sub_list(fx.s, &lr, &sl, &e), CMQ_EINVAL, e);
    pb_release(cmq_SubList_fields, &sl);
    lr.offset = 25;
    lr.has_limit = true;
    lr.limit = 1000; /* clamped to 100 */
    cr_assert_eq(meta_sub_list(fx.s, &lr, &sl, &e), CMQ_OK);
    cr_assert_eq(sl.subscriptions_count, 5);
    cr_assert_str_eq(sl.subscriptions[0].subscription_name, "s25");
    pb_release(cmq_SubList_fields, &sl);
    strcpy(lr.topic_name, "missing");
    assert_status(meta_sub_list(fx.s, &lr, &sl, &e), CMQ_ENOTFOUND, e);
    pb_release(cmq_SubList_fields, &sl);
}

/* ---- quotas (spec §11) ---- */

Test(quotas, queues_topics_subscriptions)
{
    fx.opts.queues_per_account = 3;
    fx.opts.topics_per_account = 2;
    fx.opts.subs_per_topic = 2;
    fx_reopen();
    struct meta_err e = {0};
    for (int i = 0; i < 3; i++) {
        char n[8];
        snprintf(n, sizeof n, "q%d", i);
        cr_assert_eq(qcreate(n, NULL, &e), CMQ_OK);
    }
    assert_status(qcreate("q3", NULL, &e), CMQ_ELIMIT, e);
    assert_cmq(e, 4450, 10220);
    cr_assert_eq(tcreate("t0", 0, NULL, &e), CMQ_OK);
    cr_assert_eq(tcreate("t1", 0, NULL, &e), CMQ_OK);
    assert_status(tcreate("t2", 0, NULL, &e), CMQ_ELIMIT, e);
    assert_cmq(e, 4450, 10610);
    cmq_SubInfo si;
    cmq_SubRequest r = sreq("t0", "a", "http", "http://h/");
    cr_assert_eq(meta_sub_create(fx.s, &r, &si, &e), CMQ_OK);
    r = sreq("t0", "b", "http", "http://h/");
    cr_assert_eq(meta_sub_create(fx.s, &r, &si, &e), CMQ_OK);
    r = sreq("t0", "c", "http", "http://h/");
    assert_status(meta_sub_create(fx.s, &r, &si, &e), CMQ_ELIMIT, e);
    assert_cmq(e, 4500, 10480);
    r = sreq("t1", "c", "http", "http://h/"); /* per topic */
    cr_assert_eq(meta_sub_create(fx.s, &r, &si, &e), CMQ_OK);
    /* quotas are per account */
    cmq_AccountCreateRequest ar = cmq_AccountCreateRequest_init_zero;
    cmq_Account other;
    cr_assert_eq(meta_account_create(fx.s, &ar, &other, &e), CMQ_OK);
    cmq_QueueRequest qr = qreq("q3");
    qr.appid = other.appid;
    cmq_QueueInfo q;
    cr_assert_eq(meta_queue_create(fx.s, &qr, &q, &e), CMQ_OK);
}

Test(quotas, default_limits)
{
    struct meta_err e = {0};
    fx.opts.name_reuse_wait_ms = -1;
    fx_reopen();
    for (int i = 0; i < 1000; i++) {
        char n[16];
        snprintf(n, sizeof n, "q%d", i);
        cr_assert_eq(qcreate(n, NULL, &e), CMQ_OK, "%d: %s", i, e.reason);
    }
    assert_status(qcreate("one-more", NULL, &e), CMQ_ELIMIT, e);
}

/* ---- deleted names (spec §5.1, 6040/10660) ---- */

Test(reuse, deleted_name_waits_then_frees)
{
    struct meta_err e = {0};
    cr_assert_eq(qcreate("q", NULL, &e), CMQ_OK);
    cmq_NameRequest nr = nreq("q");
    cmq_QueueInfo q;
    cr_assert_eq(meta_queue_delete(fx.s, &nr, &q, &e), CMQ_OK);
    cr_assert_eq(fx_count_events("queue.deleted"), 1);
    cr_assert_eq(fx.events[fx.n_events - 1].partition_id, q.partition_id);
    assert_status(qcreate("Q", NULL, &e), CMQ_EBUSY, e); /* case-insensitive too */
    assert_cmq(e, 6040, 10660);
    fx.now_ms += 9999;
    assert_status(qcreate("q", NULL, &e), CMQ_EBUSY, e);
    fx.now_ms += 1;
    cr_assert_eq(qcreate("q", NULL, &e), CMQ_OK, "%s", e.reason);
    /* topics too */
    cr_assert_eq(tcreate("t", 0, NULL, &e), CMQ_OK);
    nr = nreq("t");
    cmq_TopicInfo t;
    cr_assert_eq(meta_topic_delete(fx.s, &nr, &t, &e), CMQ_OK);
    assert_status(tcreate("t", 0, NULL, &e), CMQ_EBUSY, e);
    assert_cmq(e, 6040, 10660);
    fx.now_ms += 10000;
    cr_assert_eq(tcreate("t", 0, NULL, &e), CMQ_OK);
}

Test(reuse, waiting_period_can_be_disabled)
{
    fx.opts.name_reuse_wait_ms = -1;
    fx_reopen();
    struct meta_err e = {0};
    cr_assert_eq(qcreate("q", NULL, &e), CMQ_OK);
    cmq_NameRequest nr = nreq("q");
    cmq_QueueInfo q;
    cr_assert_eq(meta_queue_delete(fx.s, &nr, &q, &e), CMQ_OK);
    cr_assert_eq(qcreate("q", NULL, &e), CMQ_OK);
}
