/* test_meta_ns.c: services/metadata/meta_ns.c: the CMQ namespace rules of
 * spec §5-§8 and §11, each with the code the gateway will answer. */
#include "meta_fixture.h"

TestSuite(names, .init = fx_setup, .fini = fx_teardown);
TestSuite(queue_attrs, .init = fx_setup, .fini = fx_teardown);
TestSuite(topics, .init = fx_setup, .fini = fx_teardown);
TestSuite(subs, .init = fx_setup, .fini = fx_teardown);
TestSuite(lists, .init = fx_setup, .fini = fx_teardown);
TestSuite(quotas, .init = fx_setup, .fini = fx_teardown);
TestSuite(dlq, .init = fx_setup, .fini = fx_teardown);
TestSuite(reuse, .init = fx_setup, .fini = fx_teardown);

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

/* ---- queue attributes (spec §6) ---- */

Test(queue_attrs, defaults)
{
    struct meta_err e = {0};
    cmq_QueueInfo q;
    fx.now_ms += 1000;
    cr_assert_eq(qcreate("d", &q, &e), CMQ_OK);
    cr_assert_eq(q.max_msg_heap_num, 10000000);
    cr_assert_eq(q.polling_wait_seconds, 0);
    cr_assert_eq(q.visibility_timeout, 30);
    cr_assert_eq(q.max_msg_size, 65536);
    cr_assert_eq(q.msg_retention_seconds, 345600);
    cr_assert_eq(q.rewind_seconds, 0);
    cr_assert_not(q.has_dead_letter_policy);
    cr_assert_eq(q.create_time, fx.now_ms / 1000);
    cr_assert_eq(q.last_modify_time, q.create_time);
    cr_assert_eq(q.appid, fx.appid);
}

struct range_case {
    const char *param;
    int64_t lo, hi;
};

static void set_attr(cmq_QueueRequest *r, const char *param, int64_t v)
{
    if (!strcmp(param, "maxMsgHeapNum"))
        r->has_max_msg_heap_num = true, r->max_msg_heap_num = v;
    else if (!strcmp(param, "pollingWaitSeconds"))
        r->has_polling_wait_seconds = true, r->polling_wait_seconds = v;
    else if (!strcmp(param, "visibilityTimeout"))
        r->has_visibility_timeout = true, r->visibility_timeout = v;
    else if (!strcmp(param, "maxMsgSize"))
        r->has_max_msg_size = true, r->max_msg_size = v;
    else if (!strcmp(param, "msgRetentionSeconds"))
        r->has_msg_retention_seconds = true, r->msg_retention_seconds = v;
    else
        cr_assert_fail("unknown %s", param);
}

Test(queue_attrs, every_range_on_create_and_set)
{
    static const struct range_case cases[] = {
        {"maxMsgHeapNum", 1000000, 1000000000},
        {"pollingWaitSeconds", 0, 30},
        {"visibilityTimeout", 1, 43200},
        {"maxMsgSize", 1024, 1048576},
        {"msgRetentionSeconds", 60, 1296000},
    };
    struct meta_err e = {0};
    cr_assert_eq(qcreate("target", NULL, &e), CMQ_OK);
    int n = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct range_case *c = &cases[i];
        int64_t vals[] = {c->lo, c->hi, c->lo - 1, c->hi + 1};
        for (int j = 0; j < 4; j++) {
            char name[32];
            snprintf(name, sizeof name, "q%d", n++);
            cmq_QueueRequest r = qreq(name);
            set_attr(&r, c->param, vals[j]);
            cmq_QueueInfo q;
            int st = meta_queue_create(fx.s, &r, &q, &e);
            int want = j < 2 ? CMQ_OK : CMQ_EINVAL;
            cr_assert_eq(st, want, "create %s=%lld: %s", c->param, (long long)vals[j], e.reason);
            if (j >= 2) {
                assert_cmq(e, 4000, 10350);
                cr_assert_str_eq(e.param, c->param);
            }
            r = qreq("target");
            set_attr(&r, c->param, vals[j]);
            st = meta_queue_set(fx.s, &r, &q, &e);
            cr_assert_eq(st, want, "set %s=%lld: %s", c->param, (long long)vals[j], e.reason);
        }
    }
}

Test(queue_attrs, rewind_seconds_bounded_by_retention)
{
    struct meta_err e = {0};
    cmq_QueueRequest r = qreq("r");
    cmq_QueueInfo q;
    r.has_rewind_seconds = true;
    r.rewind_seconds = -1;
    assert_status(meta_queue_create(fx.s, &r, &q, &e), CMQ_EINVAL, e);
    assert_cmq(e, 4000, 10350);
    r.rewind_seconds = 345601; /* default retention 345600 */
    assert_status(meta_queue_create(fx.s, &r, &q, &e), CMQ_EINVAL, e);
    assert_cmq(e, 4000, 10700);
    r.rewind_seconds = 345600;
    cr_assert_eq(meta_queue_create(fx.s, &r, &q, &e), CMQ_OK, "%s", e.reason);
    /* lowering retention below rewind is refused; both together is fine */
    cmq_QueueRequest s = qreq("r");
    s.has_msg_retention_seconds = true;
    s.msg_retention_seconds = 3600;
    assert_status(meta_queue_set(fx.s, &s, &q, &e), CMQ_EINVAL, e);
    assert_cmq(e, 4000, 10700);
    s.has_rewind_seconds = true;
    s.rewind_seconds = 3600;
    cr_assert_eq(meta_queue_set(fx.s, &s, &q, &e), CMQ_OK, "%s", e.reason);
    cr_assert_eq(q.rewind_seconds, 3600);
}

Test(queue_attrs, set_keeps_omitted_values_and_updates_modify_time)
{
    struct meta_err e = {0};
    cmq_QueueRequest r = qreq("s");
    r.has_visibility_timeout = true;
    r.visibility_timeout = 99;
    cmq_QueueInfo q;
    cr_assert_eq(meta_queue_create(fx.s, &r, &q, &e), CMQ_OK);
    uint64_t created = q.create_time;
    fx.now_ms += 5000;
    r = qreq("s");
    r.has_max_msg_size = true;
    r.max_msg_size = 2048;
    cr_assert_eq(meta_queue_set(fx.s, &r, &q, &e), CMQ_OK);
    cr_assert_eq(q.visibility_timeout, 99);
    cr_assert_eq(q.max_msg_size, 2048);
    cr_assert_eq(q.create_time, created);
    cr_assert_eq(q.last_modify_time, created + 5);
    cr_assert_eq(fx_count_events("queue.updated"), 1);
    /* a failed set changes nothing */
    r = qreq("s");
    r.has_max_msg_size = true;
    r.max_msg_size = 4096;
    r.has_visibility_timeout = true;
    r.visibility_timeout = 0;
    assert_status(meta_queue_set(fx.s, &r, &q, &e), CMQ_EINVAL, e);
    cmq_NameRequest nr = nreq("s");
    cr_assert_eq(meta_queue_get(fx.s, &nr, &q, &e), CMQ_OK);
    cr_assert_eq(q.max_msg_size, 2048);
}

Test(queue_attrs, missing_queue)
{
    struct meta_err e = {0};
    cmq_QueueRequest r = qreq("nope");
    cmq_QueueInfo q;
    assert_status(meta_queue_set(fx.s, &r, &q, &e), CMQ_ENOTFOUND, e);
    assert_cmq(e, 4440, 10100);
    cmq_NameRequest nr = nreq("nope");
    assert_status(meta_queue_delete(fx.s, &nr, &q, &e), CMQ_ENOTFOUND, e);
    assert_cmq(e, 4440, 10100);
}

Test(queue_attrs, unknown_account)
{
    struct meta_err e = {0};
    cmq_QueueRequest r = qreq("x");
    r.appid = 77;
    cmq_QueueInfo q;
    assert_status(meta_queue_create(fx.s, &r, &q, &e), CMQ_ENOTFOUND, e);
}

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

/* ---- subscriptions (spec §8) ---- */

Test(subs, http_defaults_and_queue_coerced_to_simplified)
{
    struct meta_err e = {0};
    cr_assert_eq(tcreate("t", 0, NULL, &e), CMQ_OK);
    cr_assert_eq(qcreate("dest", NULL, &e), CMQ_OK);
    cmq_SubRequest r = sreq("t", "h", "HTTP", "http://example.com:8080/push");
    cmq_SubInfo si;
    cr_assert_eq(meta_sub_create(fx.s, &r, &si, &e), CMQ_OK, "%s", e.reason);
    cr_assert_str_eq(si.protocol, "http");
    cr_assert_str_eq(si.notify_strategy, "EXPONENTIAL_DECAY_RETRY");
    cr_assert_str_eq(si.notify_content_format, "JSON");
    cr_assert_eq(strncmp(si.subscription_id, "subscription-", 13), 0);
    cr_assert_eq(si.appid, fx.appid);
    r = sreq("t", "q", "queue", "dest");
    strcpy(r.notify_content_format, "JSON");
    cr_assert_eq(meta_sub_create(fx.s, &r, &si, &e), CMQ_OK, "%s", e.reason);
    cr_assert_str_eq(si.notify_content_format, "SIMPLIFIED");
    cr_assert(si.endpoint_queue_id[0]);
}

Test(subs, protocol_endpoint_strategy_format_rules)
{
    struct meta_err e = {0};
    cr_assert_eq(tcreate("t", 0, NULL, &e), CMQ_OK);
    struct {
        const char *protocol, *endpoint, *strategy, *format;
        int status, code, module;
    } cases[] = {
        {"smtp", "http://h", "", "", CMQ_EINVAL, 4000, 10510},
        {"http", "ftp://h/x", "", "", CMQ_EINVAL, 4000, 10500},
        {"http", "http://h/a b", "", "", CMQ_EINVAL, 4510, 10570},
        {"http", "http://", "", "", CMQ_EINVAL, 4000, 10630},
        {"http", "http://bad host", "", "", CMQ_EINVAL, 4510, 10570},
        {"http", "http://h:99999/", "", "", CMQ_EINVAL, 4000, 10630},
        {"http", "http://a@b/", "", "", CMQ_EINVAL, 4000, 10630},
        {"http", "http://h/x", "RETRY", "", CMQ_EINVAL, 4000, 10520},
        {"http", "http://h/x", "", "XML", CMQ_EINVAL, 4000, 10530},
        {"queue", "missing", "", "", CMQ_ENOTFOUND, 4440, 10100},
        {"queue", "http://h", "", "", CMQ_EINVAL, 4000, 10500},
        {"http", "", "", "", CMQ_EINVAL, 4000, 10500},
        {"http", "https://10.0.0.1:443/p?q=1", "backoff_retry", "simplified", CMQ_OK, 0, 0},
        {"http", "http://[::1]:8080/p", "BACKOFF_RETRY", "JSON", CMQ_OK, 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char name[16];
        snprintf(name, sizeof name, "s%zu", i);
        cmq_SubRequest r = sreq("t", name, cases[i].protocol, cases[i].endpoint);
        strcpy(r.notify_strategy, cases[i].strategy);
        strcpy(r.notify_content_format, cases[i].format);
        cmq_SubInfo si;
        int st = meta_sub_create(fx.s, &r, &si, &e);
        cr_assert_eq(st, cases[i].status, "case %zu (%s): %s", i, cases[i].endpoint, e.reason);
        if (st != CMQ_OK)
            assert_cmq(e, cases[i].code, cases[i].module);
    }
    char longurl[600] = "http://h/";
    memset(longurl + 9, 'x', 492);
    longurl[501] = '\0';
    cmq_SubRequest r = sreq("t", "long", "http", longurl);
    cmq_SubInfo si;
    assert_status(meta_sub_create(fx.s, &r, &si, &e), CMQ_EINVAL, e);
    assert_cmq(e, 4000, 10350);
    longurl[500] = '\0';
    r = sreq("t", "long", "http", longurl);
    cr_assert_eq(meta_sub_create(fx.s, &r, &si, &e), CMQ_OK, "%s", e.reason);
}

Test(subs, filter_tags_and_binding_keys_limits)
{
    struct meta_err e = {0};
    cr_assert_eq(tcreate("tags", 1, NULL, &e), CMQ_OK);
    cr_assert_eq(tcreate("route", 2, NULL, &e), CMQ_OK);
    cmq_SubInfo si;
    cmq_SubRequest r = sreq("tags", "a", "http", "http://h/");
    r.filter_tags_count = 7;
    for (int i = 0; i < 7; i++)
        snprintf(r.filter_tags[i], sizeof r.filter_tags[i], i == 2 ? "" : "tag%d", i);
    /* 6 non-empty tags: one too many */
    assert_status(meta_sub_create(fx.s, &r, &si, &e), CMQ_EINVAL, e);
    assert_cmq(e, 4000, 10490);
    r.filter_tags_count = 6; /* 5 non-empty: the empty one is ignored */
    cr_assert_eq(meta_sub_create(fx.s, &r, &si, &e), CMQ_OK, "%s", e.reason);
    cr_assert_eq(si.filter_tags_count, 5);
    cr_assert_str_eq(si.filter_tags[2], "tag3");
    r = sreq("tags", "b", "http", "http://h/");
    r.filter_tags_count = 1;
    strcpy(r.filter_tags[0], "12345678901234567");
    assert_status(meta_sub_create(fx.s, &r, &si, &e), CMQ_EINVAL, e);
    assert_cmq(e, 4000, 10350);

    r = sreq("route", "c", "http", "http://h/");
    assert_status(meta_sub_create(fx.s, &r, &si, &e), CMQ_EINVAL, e);
    assert_cmq(e, 4000, 10710);
    r.binding_keys_count = 6;
    for (int i = 0; i < 6; i++)
        snprintf(r.binding_keys[i], sizeof r.binding_keys[i], "k%d.*.#", i);
    assert_status(meta_sub_create(fx.s, &r, &si, &e), CMQ_EINVAL, e);
    assert_cmq(e, 4000, 10680);
    r.binding_keys_count = 1;
    strcpy(r.binding_keys[0], "a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q");  /* 16 dots */
    assert_status(meta_sub_create(fx.s, &r, &si, &e), CMQ_EINVAL, e);
    assert_cmq(e, 4000, 10691);
    strcpy(r.binding_keys[0], "a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p");    /* 15 dots */
    cr_assert_eq(meta_sub_create(fx.s, &r, &si, &e), CMQ_OK, "%s", e.reason);
    r = sreq("route", "d", "http", "http://h/");
    r.binding_keys_count = 1;
    memset(r.binding_keys[0], 'k', 65);
    r.binding_keys[0][65] = '\0';
    assert_status(meta_sub_create(fx.s, &r, &si, &e), CMQ_EINVAL, e);
    assert_cmq(e, 4000, 10350);
}

Test(subs, duplicate_missing_set_and_clear)
{
    struct meta_err e = {0};
    cr_assert_eq(tcreate("t", 0, NULL, &e), CMQ_OK);
    cmq_SubRequest r = sreq("t", "Sub", "http", "http://h/");
    r.filter_tags_count = 2;
    strcpy(r.filter_tags[0], "x");
    strcpy(r.filter_tags[1], "y");
    cmq_SubInfo si;
    cr_assert_eq(meta_sub_create(fx.s, &r, &si, &e), CMQ_OK);
    r = sreq("t", "sub", "http", "http://h/");
    assert_status(meta_sub_create(fx.s, &r, &si, &e), CMQ_EEXIST, e);
    assert_cmq(e, 4490, 10470);
    r = sreq("nope", "s", "http", "http://h/");
    assert_status(meta_sub_create(fx.s, &r, &si, &e), CMQ_ENOTFOUND, e);
    assert_cmq(e, 4440, 10600);

    /* set: empty strings keep values; a given list replaces the stored one */
    cmq_SubRequest s = sreq("t", "Sub", "", "");
    strcpy(s.notify_strategy, "BACKOFF_RETRY");
    s.has_filter_tags = true;
    s.filter_tags_count = 1;
    strcpy(s.filter_tags[0], "z");
    fx.now_ms += 2000;
    cr_assert_eq(meta_sub_set(fx.s, &s, &si, &e), CMQ_OK, "%s", e.reason);
    cr_assert_str_eq(si.notify_strategy, "BACKOFF_RETRY");
    cr_assert_str_eq(si.notify_content_format, "JSON");
    cr_assert_eq(si.filter_tags_count, 1);
    cr_assert_str_eq(si.filter_tags[0], "z");
    cr_assert_eq(si.last_modify_time, si.create_time + 2);
    s = sreq("t", "Sub", "queue", "");
    assert_status(meta_sub_set(fx.s, &s, &si, &e), CMQ_EINVAL, e);
    s = sreq("t", "Sub", "", "");
    strcpy(s.notify_content_format, "bogus");
    assert_status(meta_sub_set(fx.s, &s, &si, &e), CMQ_EINVAL, e);
    assert_cmq(e, 4000, 10530);

    cmq_SubNameRequest nr = {.appid = fx.appid};
    strcpy(nr.topic_name, "t");
    strcpy(nr.subscription_name, "Sub");
    cr_assert_eq(meta_sub_clear_tags(fx.s, &nr, &si, &e), CMQ_OK);
    cr_assert_eq(si.filter_tags_count, 0);
    strcpy(nr.subscription_name, "missing");
    assert_status(meta_sub_get(fx.s, &nr, &si, &e), CMQ_ENOTFOUND, e);
    assert_cmq(e, 4440, 10600);
    assert_status(meta_sub_delete(fx.s, &nr, &si, &e), CMQ_ENOTFOUND, e);
}

Test(subs, queue_endpoint_survives_queue_deletion)
{
    struct meta_err e = {0};
    cr_assert_eq(tcreate("t", 0, NULL, &e), CMQ_OK);
    cr_assert_eq(qcreate("dest", NULL, &e), CMQ_OK);
    cmq_SubRequest r = sreq("t", "s", "queue", "dest");
    cmq_SubInfo si;
    cr_assert_eq(meta_sub_create(fx.s, &r, &si, &e), CMQ_OK);
    cmq_NameRequest nr = nreq("dest");
    cmq_QueueInfo q;
    cr_assert_eq(meta_queue_delete(fx.s, &nr, &q, &e), CMQ_OK);
    cmq_SubNameRequest snr = {.appid = fx.appid};
    strcpy(snr.topic_name, "t");
    strcpy(snr.subscription_name, "s");
    cr_assert_eq(meta_sub_get(fx.s, &snr, &si, &e), CMQ_OK);
    cr_assert_str_eq(si.endpoint, "dest");
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

/* ---- dead-letter policy (spec §6) ---- */

static int set_dlq(const char *queue, const char *dlq, int policy, int64_t v, struct meta_err *e)
{
    cmq_QueueRequest r = qreq(queue);
    r.has_dead_letter_policy = true;
    snprintf(r.dead_letter_policy.dead_letter_queue, sizeof r.dead_letter_policy.dead_letter_queue,
             "%s", dlq);
    r.dead_letter_policy.policy = policy;
    if (policy == 0)
        r.dead_letter_policy.max_receive_count = v;
    else
        r.dead_letter_policy.max_time_to_live = v;
    cmq_QueueInfo q;
    return meta_queue_set(fx.s, &r, &q, e);
}

Test(dlq, set_get_and_value_ranges)
{
    struct meta_err e = {0};
    cr_assert_eq(qcreate("src", NULL, &e), CMQ_OK);
    cmq_QueueInfo dl;
    cr_assert_eq(qcreate("dead", &dl, &e), CMQ_OK);
    assert_status(set_dlq("src", "dead", 0, 0, &e), CMQ_EINVAL, e);
    assert_cmq(e, 4000, 10350);
    cr_assert_str_eq(e.param, "maxReceiveCount");
    assert_status(set_dlq("src", "dead", 0, 1001, &e), CMQ_EINVAL, e);
    assert_status(set_dlq("src", "dead", 1, 299, &e), CMQ_EINVAL, e);
    assert_status(set_dlq("src", "dead", 1, 43201, &e), CMQ_EINVAL, e);
    assert_status(set_dlq("src", "dead", 2, 5, &e), CMQ_EINVAL, e);
    cr_assert_str_eq(e.param, "policy");
    cr_assert_eq(set_dlq("src", "dead", 0, 1000, &e), CMQ_OK, "%s", e.reason);
    cmq_NameRequest nr = nreq("src");
    cmq_QueueInfo q;
    cr_assert_eq(meta_queue_get(fx.s, &nr, &q, &e), CMQ_OK);
    cr_assert(q.has_dead_letter_policy);
    cr_assert_str_eq(q.dead_letter_policy.dead_letter_queue, "dead");
    cr_assert_str_eq(q.dead_letter_policy.dead_letter_queue_id, dl.queue_id);
    cr_assert_eq(q.dead_letter_policy.dead_letter_queue_num_id, dl.num_id);
    cr_assert_eq(q.dead_letter_policy.max_receive_count, 1000);
    nr = nreq("dead");
    cr_assert_eq(meta_queue_get(fx.s, &nr, &q, &e), CMQ_OK);
    cr_assert_eq(q.dead_letter_source_count, 1);
    /* ttl must be below the retention */
    cmq_QueueRequest r = qreq("src");
    r.has_msg_retention_seconds = true;
    r.msg_retention_seconds = 600;
    cr_assert_eq(meta_queue_set(fx.s, &r, &q, &e), CMQ_OK);
    cr_assert(q.has_dead_letter_policy); /* an unrelated set keeps the policy */
    cr_assert_str_eq(q.dead_letter_policy.dead_letter_queue, "dead");
    cr_assert_eq(q.dead_letter_policy.max_receive_count, 1000);
    assert_status(set_dlq("src", "dead", 1, 600, &e), CMQ_EINVAL, e);
    cr_assert_eq(set_dlq("src", "dead", 1, 599, &e), CMQ_OK, "%s", e.reason);
    r = qreq("src");
    r.has_msg_retention_seconds = true;
    r.msg_retention_seconds = 599;
    assert_status(meta_queue_set(fx.s, &r, &q, &e), CMQ_EINVAL, e);
    /* clearing */
    r = qreq("src");
    r.clear_dead_letter_policy = true;
    cr_assert_eq(meta_queue_set(fx.s, &r, &q, &e), CMQ_OK);
    cr_assert_not(q.has_dead_letter_policy);
}

Test(dlq, must_exist_not_self_no_nesting)
{
    struct meta_err e = {0};
    cr_assert_eq(qcreate("a", NULL, &e), CMQ_OK);
    cr_assert_eq(qcreate("b", NULL, &e), CMQ_OK);
    cr_assert_eq(qcreate("c", NULL, &e), CMQ_OK);
    assert_status(set_dlq("a", "missing", 0, 5, &e), CMQ_ENOTFOUND, e);
    assert_cmq(e, 4000, 10110);
    assert_status(set_dlq("a", "a", 0, 5, &e), CMQ_EINVAL, e);
    cr_assert_eq(set_dlq("a", "b", 0, 5, &e), CMQ_OK);
    /* b is a DLQ: it cannot get one itself */
    assert_status(set_dlq("b", "c", 0, 5, &e), CMQ_EINVAL, e);
    cr_assert(strstr(e.reason, "nesting") != NULL);
    /* a has a DLQ: it cannot be one */
    assert_status(set_dlq("c", "a", 0, 5, &e), CMQ_EINVAL, e);
    cr_assert(strstr(e.reason, "nesting") != NULL);
    /* the DLQ must be in the same account */
    cmq_AccountCreateRequest ar = cmq_AccountCreateRequest_init_zero;
    cmq_Account other;
    cr_assert_eq(meta_account_create(fx.s, &ar, &other, &e), CMQ_OK);
    cmq_QueueRequest r = qreq("x");
    r.appid = other.appid;
    r.has_dead_letter_policy = true;
    strcpy(r.dead_letter_policy.dead_letter_queue, "c");
    r.dead_letter_policy.max_receive_count = 3;
    cmq_QueueInfo q;
    assert_status(meta_queue_create(fx.s, &r, &q, &e), CMQ_ENOTFOUND, e);
    /* and on create, in the same account, it works; nothing half-written on failure */
    r.appid = fx.appid;
    cr_assert_eq(meta_queue_create(fx.s, &r, &q, &e), CMQ_OK, "%s", e.reason);
    cr_assert(q.has_dead_letter_policy);
}

Test(dlq, at_most_six_sources_and_delete_clears_them)
{
    struct meta_err e = {0};
    cr_assert_eq(qcreate("dead", NULL, &e), CMQ_OK);
    for (int i = 0; i < 7; i++) {
        char n[8];
        snprintf(n, sizeof n, "s%d", i);
        cr_assert_eq(qcreate(n, NULL, &e), CMQ_OK);
        int st = set_dlq(n, "dead", 0, 3, &e);
        cr_assert_eq(st, i < 6 ? CMQ_OK : CMQ_ELIMIT, "%d: %s", i, e.reason);
    }
    /* re-setting an existing source does not count twice */
    cr_assert_eq(set_dlq("s0", "dead", 0, 4, &e), CMQ_OK, "%s", e.reason);
    cmq_NameRequest nr = nreq("dead");
    cmq_QueueInfo q;
    int before = fx_count_events("queue.updated");
    cr_assert_eq(meta_queue_delete(fx.s, &nr, &q, &e), CMQ_OK);
    cr_assert_eq(fx_count_events("queue.updated"), before + 6);
    nr = nreq("s0");
    cr_assert_eq(meta_queue_get(fx.s, &nr, &q, &e), CMQ_OK);
    cr_assert_not(q.has_dead_letter_policy);
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
