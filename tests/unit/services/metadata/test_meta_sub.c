/* test_meta_sub.c: services/metadata/meta_sub.c: subscriptions (spec §8):
 * protocol, endpoint, strategy and format rules, tags and keys, lifecycle. */
#include "meta_fixture.h"

TestSuite(subs, .init = fx_setup, .fini = fx_teardown);

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
