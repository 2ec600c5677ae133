/* test_meta_queue.c: services/metadata/meta_queue.c: queue attributes
 * (spec §6) and the dead-letter rules, through the public store API. */
#include "meta_fixture.h"

TestSuite(queue_attrs, .init = fx_setup, .fini = fx_teardown);
TestSuite(dlq, .init = fx_setup, .fini = fx_teardown);

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
