/* meta_fixture.c: see meta_fixture.h. */
#include "meta_fixture.h"
#include "../../tmpdir.h"


struct fixture fx;

static uint64_t fake_now(void *arg)
{
    (void)arg;
    return fx.now_ms;
}

static void on_event(void *arg, const cmq_MetaEvent *ev)
{
    (void)arg;
    if (fx.n_events < FIX_EVENTS_MAX)
        fx.events[fx.n_events++] = *ev;
}

int fx_count_events(const char *kind)
{
    int n = 0;
    for (int i = 0; i < fx.n_events; i++)
        n += strcmp(fx.events[i].kind, kind) == 0;
    return n;
}

void fx_reopen(void)
{
    meta_store_close(fx.s);
    fx.s = NULL;
    struct meta_err e = {0};
    int st = meta_store_open(&fx.opts, &fx.s, &e);
    cr_assert_eq(st, CMQ_OK, "reopen: %s", e.reason);
}

void fx_setup(void)
{
    memset(&fx, 0, sizeof fx);
    tmpdir_make(fx.dir, sizeof fx.dir, "meta-test");
    snprintf(fx.path, sizeof fx.path, "%s/metadata.db", fx.dir);
    for (int i = 0; i < 32; i++)
        fx.key[i] = (uint8_t)(i * 7 + 1);
    fx.now_ms = 1795780800000ull; /* 2026-11-27T08:00:00Z */
    fx.opts = (struct meta_store_opts){
        .path = fx.path,
        .master_key = fx.key,
        .now_ms = fake_now,
        .on_event = on_event,
    };
    fx_reopen();
    cmq_AccountCreateRequest ar = cmq_AccountCreateRequest_init_zero;
    snprintf(ar.name, sizeof ar.name, "test");
    cmq_Account a;
    struct meta_err e = {0};
    cr_assert_eq(meta_account_create(fx.s, &ar, &a, &e), CMQ_OK, "%s", e.reason);
    fx.appid = a.appid;
}

void fx_teardown(void)
{
    meta_store_close(fx.s);
    fx.s = NULL;
    tmpdir_remove(fx.dir);
}

cmq_QueueRequest qreq(const char *name)
{
    cmq_QueueRequest r = cmq_QueueRequest_init_zero;
    r.appid = fx.appid;
    snprintf(r.name, sizeof r.name, "%s", name);
    return r;
}

cmq_NameRequest nreq(const char *name)
{
    cmq_NameRequest r = cmq_NameRequest_init_zero;
    r.appid = fx.appid;
    snprintf(r.name, sizeof r.name, "%s", name);
    return r;
}

int qcreate(const char *name, cmq_QueueInfo *out, struct meta_err *e)
{
    cmq_QueueRequest r = qreq(name);
    cmq_QueueInfo tmp;
    return meta_queue_create(fx.s, &r, out ? out : &tmp, e);
}

int tcreate(const char *name, int filter_type, cmq_TopicInfo *out, struct meta_err *e)
{
    cmq_TopicRequest r = cmq_TopicRequest_init_zero;
    r.appid = fx.appid;
    snprintf(r.name, sizeof r.name, "%s", name);
    if (filter_type) {
        r.has_filter_type = true;
        r.filter_type = filter_type;
    }
    cmq_TopicInfo tmp;
    return meta_topic_create(fx.s, &r, out ? out : &tmp, e);
}

cmq_SubRequest sreq(const char *topic, const char *name, const char *protocol,
                    const char *endpoint)
{
    cmq_SubRequest r = cmq_SubRequest_init_zero;
    r.appid = fx.appid;
    snprintf(r.topic_name, sizeof r.topic_name, "%s", topic);
    snprintf(r.subscription_name, sizeof r.subscription_name, "%s", name);
    snprintf(r.protocol, sizeof r.protocol, "%s", protocol);
    snprintf(r.endpoint, sizeof r.endpoint, "%s", endpoint);
    return r;
}
