/* test_meta_topic.c: services/metadata/meta_topic.c: topic attributes
 * (spec §7) and what DeleteTopic does with subscriptions. */
#include "meta_fixture.h"

TestSuite(topics, .init = fx_setup, .fini = fx_teardown);

/* ---- topics (spec §7) ---- */

Test(topics, defaults_ranges_and_filter_type)
{
    struct meta_err e = {0};
    cmq_TopicInfo t;
    cr_assert_eq(tcreate("t1", 0, &t, &e), CMQ_OK);
    cr_assert_eq(t.max_msg_size, 65536);
    cr_assert_eq(t.msg_retention_seconds, 86400);
    cr_assert_eq(t.filter_type, 1);
    cmq_TopicRequest r = cmq_TopicRequest_init_zero;
    r.appid = fx.appid;
    strcpy(r.name, "t0");
    r.has_filter_type = true;
    r.filter_type = 0; /* legacy numbering: 0 means tags */
    cr_assert_eq(meta_topic_create(fx.s, &r, &t, &e), CMQ_OK);
    cr_assert_eq(t.filter_type, 1);
    strcpy(r.name, "t3");
    r.filter_type = 3;
    assert_status(meta_topic_create(fx.s, &r, &t, &e), CMQ_EINVAL, e);
    assert_cmq(e, 4000, 10350);
    r.filter_type = 2;
    int64_t sizes[] = {1023, 1024, 1048576, 1048577};
    for (int i = 0; i < 4; i++) {
        snprintf(r.name, sizeof r.name, "size%d", i);
        r.has_max_msg_size = true;
        r.max_msg_size = sizes[i];
        int want = i == 0 || i == 3 ? CMQ_EINVAL : CMQ_OK;
        cr_assert_eq(meta_topic_create(fx.s, &r, &t, &e), want, "%lld", (long long)sizes[i]);
    }
    cr_assert_eq(t.filter_type, 2);
}

Test(topics, set_changes_size_only_and_missing_topic)
{
    struct meta_err e = {0};
    cmq_TopicInfo t;
    cr_assert_eq(tcreate("t", 2, &t, &e), CMQ_OK);
    cmq_TopicRequest r = cmq_TopicRequest_init_zero;
    r.appid = fx.appid;
    strcpy(r.name, "t");
    r.has_max_msg_size = true;
    r.max_msg_size = 4096;
    cr_assert_eq(meta_topic_set(fx.s, &r, &t, &e), CMQ_OK);
    cr_assert_eq(t.max_msg_size, 4096);
    r.has_filter_type = true;
    r.filter_type = 1;
    assert_status(meta_topic_set(fx.s, &r, &t, &e), CMQ_EINVAL, e);
    r.has_max_msg_size = true;
    r.max_msg_size = 100;
    r.has_filter_type = false;
    assert_status(meta_topic_set(fx.s, &r, &t, &e), CMQ_EINVAL, e);
    assert_cmq(e, 4000, 10350);
    strcpy(r.name, "missing");
    assert_status(meta_topic_set(fx.s, &r, &t, &e), CMQ_ENOTFOUND, e);
    assert_cmq(e, 4440, 10600);
}

Test(topics, delete_refuses_while_subscriptions_exist)
{
    struct meta_err e = {0};
    cr_assert_eq(tcreate("t", 0, NULL, &e), CMQ_OK);
    cmq_SubRequest r = sreq("t", "s", "http", "http://h/x");
    cmq_SubInfo si;
    cr_assert_eq(meta_sub_create(fx.s, &r, &si, &e), CMQ_OK, "%s", e.reason);
    cmq_NameRequest nr = nreq("t");
    cmq_TopicInfo t;
    assert_status(meta_topic_delete(fx.s, &nr, &t, &e), CMQ_EBUSY, e);
    assert_cmq(e, 4000, 10540);
    cmq_SubNameRequest snr = {.appid = fx.appid};
    strcpy(snr.topic_name, "t");
    strcpy(snr.subscription_name, "s");
    cr_assert_eq(meta_sub_delete(fx.s, &snr, &si, &e), CMQ_OK);
    cr_assert_eq(meta_topic_delete(fx.s, &nr, &t, &e), CMQ_OK);
    cr_assert_eq(fx_count_events("topic.deleted"), 1);
}

Test(topics, delete_with_subscriptions_when_configured)
{
    fx.opts.delete_topic_with_subs = 1;
    fx_reopen();
    struct meta_err e = {0};
    cr_assert_eq(tcreate("t", 0, NULL, &e), CMQ_OK);
    cmq_SubRequest r = sreq("t", "s", "http", "http://h/x");
    cmq_SubInfo si;
    cr_assert_eq(meta_sub_create(fx.s, &r, &si, &e), CMQ_OK);
    cmq_NameRequest nr = nreq("t");
    cmq_TopicInfo t;
    cr_assert_eq(meta_topic_delete(fx.s, &nr, &t, &e), CMQ_OK, "%s", e.reason);
    cr_assert_eq(fx_count_events("subscription.deleted"), 1);
    cr_assert_eq(tcreate("t2", 0, NULL, &e), CMQ_OK);
}
