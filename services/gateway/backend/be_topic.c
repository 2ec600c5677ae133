/* be_topic.c: publishes and the topic sync of the gateway's back end
 * (backend.h).
 *
 * Publish: one PublishRequest to the leader of the topic's partition,
 * answered after the entry is committed.  When storage does not know the
 * topic ("no such topic" from one node, or "not here" from every replica),
 * or refuses the message for want of a (matching) subscription, the back end
 * first copies the current subscription set from metadata to storage
 * (be_topic_sync) and tries once more ("heal"): a sync that failed earlier (a
 * storage node was down) costs one request, and a topic that never had a
 * subscription answers 6030/10650 on every front end.
 *
 * Sync: SUB_LIST (every page) from metadata, then TOPIC_SYNC to storage. */
#include "backend.h"

#include "log.h"
#include "pb_size.h"
#include "status.h"
#include "storage.pb.h"

#include <pb_decode.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SUB_PAGE 100

/* ---------- sync ---------- */

struct sync {
    struct be_loop *be;
    cmq_TopicInfo ti;
    cmq_TopicSyncRequest req;
    size_t cap;
    uint32_t seen;           /* subscription rows listed so far (the next page's offset) */
    be_sync_fn *fn;
    void *arg;
};

static void sync_end(struct sync *s, int status, const char *why)
{
    if (status != CMQ_OK)
        log_warn("topic_sync_failed", "topic=%s status=%s reason=\"%s\"", s->ti.name,
                 status_name(status), why);
    s->fn(s->arg, status);
    free(s->req.subscriptions);
    free(s);
}

static void on_synced(void *arg, int status, const struct rpc_msg *msg)
{
    (void)msg;
    sync_end(arg, status, "storage");
}

static void send_sync(struct sync *s)
{
    s->req.topic_id = s->ti.num_id;
    snprintf(s->req.name, sizeof s->req.name, "%s", s->ti.name);
    s->req.appid = s->ti.appid;
    s->req.filter_type = s->ti.filter_type == 2 ? 2 : 1;
    s->req.max_msg_size = (uint32_t)s->ti.max_msg_size;
    s->req.partition_id = s->ti.partition_id;
    uint8_t *buf;
    size_t len;
    int rc = rpc_pb_encode(cmq_TopicSyncRequest_fields, &s->req, &buf, &len);
    if (rc == CMQ_OK) {
        rc = be_storage_call(s->be, s->ti.partition_id, cmq_StorageMsgType_STORAGE_MSG_TOPIC_SYNC,
                             buf, len, 0, 0, on_synced, s);
        free(buf);
    }
    if (rc != CMQ_OK)
        sync_end(s, rc, "encode");
}

static uint32_t strategy_of(const char *v) { return strcmp(v, "BACKOFF_RETRY") == 0 ? 1 : 2; }

static void list_page(struct sync *s);

static void on_sub_page(void *arg, int status, const struct rpc_msg *msg)
{
    struct sync *s = arg;
    cmq_SubList sl = cmq_SubList_init_zero;
    if (status != CMQ_OK || !msg || rpc_pb_decode(cmq_SubList_fields, &sl, msg->body, msg->body_len)) {
        pb_release(cmq_SubList_fields, &sl);
        sync_end(s, status ? status : CMQ_ECORRUPT, "subscription list");
        return;
    }
    size_t need = s->req.subscriptions_count + sl.subscriptions_count;
    if (need > PB_SIZE_MAX) { /* TopicSyncRequest.subscriptions_count is a 16-bit pb_size_t */
        pb_release(cmq_SubList_fields, &sl);
        sync_end(s, CMQ_ELIMIT, "subscriptions");
        return;
    }
    if (need > s->cap) {
        size_t cap = need < 16 ? 16 : need;
        cmq_TopicSubscription *ns = realloc(s->req.subscriptions, cap * sizeof *ns);
        if (!ns) {
            pb_release(cmq_SubList_fields, &sl);
            sync_end(s, CMQ_ENOMEM, "memory");
            return;
        }
        s->req.subscriptions = ns;
        s->cap = cap;
    }
    for (pb_size_t i = 0; i < sl.subscriptions_count; i++) {
        const cmq_SubInfo *u = &sl.subscriptions[i];
        cmq_TopicSubscription *o = &s->req.subscriptions[s->req.subscriptions_count];
        *o = (cmq_TopicSubscription)cmq_TopicSubscription_init_zero;
        snprintf(o->sub_id, sizeof o->sub_id, "%s", u->subscription_id);
        snprintf(o->name, sizeof o->name, "%s", u->subscription_name);
        o->protocol = strcmp(u->protocol, "queue") == 0 ? 1 : 2;
        snprintf(o->endpoint, sizeof o->endpoint, "%s", u->endpoint);
        o->queue_id = u->endpoint_queue_num_id;
        o->dead_letter_queue_id = u->dead_letter_queue_num_id;
        o->format = strcmp(u->notify_content_format, "SIMPLIFIED") == 0 ? 2 : 1;
        o->strategy = strategy_of(u->notify_strategy);
        for (pb_size_t k = 0; k < u->filter_tags_count && k < 5; k++)
            snprintf(o->filter_tags[k], sizeof o->filter_tags[k], "%s", u->filter_tags[k]);
        o->filter_tags_count = u->filter_tags_count < 5 ? u->filter_tags_count : 5;
        for (pb_size_t k = 0; k < u->binding_keys_count && k < 5; k++)
            snprintf(o->binding_keys[k], sizeof o->binding_keys[k], "%s", u->binding_keys[k]);
        o->binding_keys_count = u->binding_keys_count < 5 ? u->binding_keys_count : 5;
        if (o->protocol == 1 && o->queue_id == 0)
            continue; /* its queue is gone: nothing to deliver to */
        s->req.subscriptions_count++;
    }
    uint32_t got = sl.subscriptions_count, total = sl.total_count;
    pb_release(cmq_SubList_fields, &sl);
    s->seen += got;
    if (got == SUB_PAGE && s->seen < total) {
        list_page(s);
        return;
    }
    send_sync(s);
}

static void list_page(struct sync *s)
{
    cmq_ListRequest r = cmq_ListRequest_init_zero;
    r.appid = s->ti.appid;
    snprintf(r.topic_name, sizeof r.topic_name, "%s", s->ti.name);
    r.has_offset = true;
    r.offset = (int64_t)s->seen;
    r.has_limit = true;
    r.limit = SUB_PAGE;
    int rc = be_meta_call(s->be, cmq_MetaMsgType_META_MSG_SUB_LIST, cmq_ListRequest_fields, &r,
                          on_sub_page, s);
    if (rc != CMQ_OK)
        sync_end(s, rc, "subscription list");
}

void be_topic_sync(struct be_loop *be, const cmq_TopicInfo *ti, be_sync_fn *fn, void *arg)
{
    struct sync *s = calloc(1, sizeof *s);
    if (!s) {
        fn(arg, CMQ_ENOMEM);
        return;
    }
    s->be = be;
    s->ti = *ti;
    s->fn = fn;
    s->arg = arg;
    if (ti->num_id == 0 || ti->partition_id == 0) {
        sync_end(s, CMQ_EUNAVAIL, "topic not placed");
        return;
    }
    list_page(s);
}

/* ---------- publish ---------- */

struct pub {
    struct be_loop *be;
    enum cmq_action action;
    cmq_TopicInfo ti;
    uint8_t *req;            /* the encoded PublishRequest, kept for the resend */
    size_t len;
    uint32_t count;
    int healed;
    be_done_fn *fn;
    void *arg;
};

static void pub_end(struct pub *p, int status, enum cmq_err err, const uint64_t *ids, size_t n)
{
    struct be_result r = {.status = status, .err = err, .ids = ids, .n_ids = n};
    p->fn(p->arg, &r);
    free(p->req);
    free(p);
}

static void pub_send(struct pub *p);

static void on_pub_synced(void *arg, int status)
{
    struct pub *p = arg;
    if (status != CMQ_OK) {
        pub_end(p, status, be_status_row(p->action, status), NULL, 0);
        return;
    }
    pub_send(p);
}

static void pub_heal(struct pub *p)
{
    p->healed = 1;
    be_topic_sync(p->be, &p->ti, on_pub_synced, p);
}

static void on_published(void *arg, int status, const struct rpc_msg *msg)
{
    struct pub *p = arg;
    /* "not here" after every replica was tried, or "not found" from one
     * node: the sync (addressed to the topic's partition) decides, once */
    if ((status == CMQ_ENOTFOUND || status == CMQ_ENOTLEADER) && !p->healed) {
        pub_heal(p);
        return;
    }
    if (status != CMQ_OK) {
        pub_end(p, status, be_status_row(p->action, status), NULL, 0);
        return;
    }
    cmq_PublishReply r = cmq_PublishReply_init_zero;
    if (!msg || rpc_pb_decode(cmq_PublishReply_fields, &r, msg->body, msg->body_len) != CMQ_OK) {
        pub_end(p, CMQ_ECORRUPT, CMQERR_INTERNAL, NULL, 0);
        return;
    }
    if (r.refused) {
        if (!p->healed) { /* storage's subscription set may be stale: sync, then once more */
            pub_heal(p);
            return;
        }
        pub_end(p, CMQ_EDENIED, be_refused_row(r.refused), NULL, 0);
        return;
    }
    if (r.msg_ids_count != p->count) {
        pub_end(p, CMQ_ECORRUPT, CMQERR_INTERNAL, NULL, 0);
        return;
    }
    pub_end(p, CMQ_OK, CMQERR_OK, r.msg_ids, r.msg_ids_count);
}

static void pub_send(struct pub *p)
{
    int rc = be_storage_call(p->be, p->ti.partition_id, cmq_StorageMsgType_STORAGE_MSG_PUBLISH,
                             p->req, p->len, 0, BE_STORAGE_RETRY_MS /* keyed */, on_published, p);
    if (rc != CMQ_OK)
        pub_end(p, rc, be_status_row(p->action, rc), NULL, 0);
}

void be_publish(struct be_loop *be, enum cmq_action action, const cmq_TopicInfo *ti,
                const struct be_text *bodies, size_t n, const struct be_text *tags, size_t n_tags,
                const char *routing_key, const char *client_addr, be_done_fn *fn, void *arg)
{
    struct pub *p = calloc(1, sizeof *p);
    if (!p) {
        struct be_result r = {.status = CMQ_ENOMEM, .err = CMQERR_INTERNAL};
        fn(arg, &r);
        return;
    }
    *p = (struct pub){.be = be, .action = action, .ti = *ti, .count = (uint32_t)n, .fn = fn,
                      .arg = arg};
    int rc = be_encode_publish(ti->num_id, bodies, n, tags, n_tags, routing_key, client_addr,
                               &p->req, &p->len);
    if (rc != CMQ_OK) {
        pub_end(p, rc, rc == CMQ_ETOOBIG ? CMQERR_REQUEST_TOO_BIG : CMQERR_INTERNAL, NULL, 0);
        return;
    }
    pub_send(p);
}
