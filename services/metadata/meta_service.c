/* meta_service.c: decode, run, answer; publish changes.  See meta_service.h. */
#include "meta_service.h"

#include "log.h"
#include "metadata.pb.h"
#include "status.h"

#include <pb_decode.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

struct meta_service {
    struct meta_store *store;
    void *pub;
    uint64_t events;
    uint64_t events_dropped;
};

static void publish(void *arg, const cmq_MetaEvent *ev)
{
    struct meta_service *m = arg;
    m->events++;
    if (!m->pub)
        return;
    uint8_t *buf;
    size_t len;
    if (rpc_pb_encode(cmq_MetaEvent_fields, ev, &buf, &len) != CMQ_OK) {
        m->events_dropped++;
        return;
    }
    /* PUB never blocks: a slow subscriber loses events and sees the gap in
     * MetaEvent.version. */
    if (zmq_send(m->pub, ev->kind, strlen(ev->kind), ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 ||
        zmq_send(m->pub, buf, len, ZMQ_DONTWAIT) < 0)
        m->events_dropped++;
    free(buf);
    log_debug("event", "kind=%s version=%llu appid=%llu name=%s", ev->kind,
              (unsigned long long)ev->version, (unsigned long long)ev->appid, ev->name);
}

int meta_service_open(void *zctx, const struct meta_store_opts *opts, const char *pub_endpoint,
                      struct meta_service **out, struct meta_err *err)
{
    *out = NULL;
    struct meta_service *m = calloc(1, sizeof *m);
    if (!m)
        return CMQ_ENOMEM;
    struct meta_store_opts o = *opts;
    o.on_event = publish;
    o.event_arg = m;
    int st = meta_store_open(&o, &m->store, err);
    if (st != CMQ_OK) {
        free(m);
        return st;
    }
    if (pub_endpoint && pub_endpoint[0]) {
        m->pub = zmq_socket(zctx, ZMQ_PUB);
        int linger = 0;
        if (m->pub)
            zmq_setsockopt(m->pub, ZMQ_LINGER, &linger, sizeof linger);
        if (!m->pub || zmq_bind(m->pub, pub_endpoint) != 0) {
            snprintf(err->reason, sizeof err->reason, "cannot bind pub.listen %s: %s",
                     pub_endpoint, zmq_strerror(zmq_errno()));
            err->status = CMQ_EBUSY;
            meta_service_close(m);
            return CMQ_EBUSY;
        }
    }
    *out = m;
    return CMQ_OK;
}

void meta_service_close(struct meta_service *m)
{
    if (!m)
        return;
    if (m->pub)
        zmq_close(m->pub);
    meta_store_close(m->store);
    free(m);
}

struct meta_store *meta_service_store(struct meta_service *m)
{
    return m->store;
}

void meta_service_tick(struct meta_service *m)
{
    int n = meta_nodes_check(m->store);
    if (n > 0)
        log_warn("nodes_down", "count=%d", n);
    else if (n < 0)
        log_error("nodes_check", "status=%s", status_name(-n));
}

void meta_service_detail(void *arg, char *buf, size_t len)
{
    struct meta_service *m = arg;
    snprintf(buf, len, "schema=%d version=%llu events=%llu events_dropped=%llu",
             meta_store_schema_version(m->store),
             (unsigned long long)meta_store_version(m->store), (unsigned long long)m->events,
             (unsigned long long)m->events_dropped);
}

/* ---- dispatch ---- */

typedef int (*op_fn)(struct meta_store *s, const void *req, void *rep, struct meta_err *e);

#define WRAP(fn, Req, Rep)                                                                   \
    static int w_##fn(struct meta_store *s, const void *rq, void *rp, struct meta_err *e)    \
    {                                                                                        \
        return fn(s, (const Req *)rq, (Rep *)rp, e);                                         \
    }

WRAP(meta_account_create, cmq_AccountCreateRequest, cmq_Account)
WRAP(meta_account_list, cmq_ListRequest, cmq_AccountList)
WRAP(meta_key_create, cmq_KeyCreateRequest, cmq_Key)
WRAP(meta_acl_grant, cmq_AclEntry, cmq_AclEntry)
WRAP(meta_acl_revoke, cmq_AclEntry, cmq_AclEntry)
WRAP(meta_acl_check, cmq_AclCheckRequest, cmq_AclCheckReply)
WRAP(meta_queue_create, cmq_QueueRequest, cmq_QueueInfo)
WRAP(meta_queue_get, cmq_NameRequest, cmq_QueueInfo)
WRAP(meta_queue_set, cmq_QueueRequest, cmq_QueueInfo)
WRAP(meta_queue_delete, cmq_NameRequest, cmq_QueueInfo)
WRAP(meta_queue_list, cmq_ListRequest, cmq_QueueList)
WRAP(meta_topic_create, cmq_TopicRequest, cmq_TopicInfo)
WRAP(meta_topic_get, cmq_NameRequest, cmq_TopicInfo)
WRAP(meta_topic_set, cmq_TopicRequest, cmq_TopicInfo)
WRAP(meta_topic_delete, cmq_NameRequest, cmq_TopicInfo)
WRAP(meta_topic_list, cmq_ListRequest, cmq_TopicList)
WRAP(meta_sub_create, cmq_SubRequest, cmq_SubInfo)
WRAP(meta_sub_get, cmq_SubNameRequest, cmq_SubInfo)
WRAP(meta_sub_set, cmq_SubRequest, cmq_SubInfo)
WRAP(meta_sub_delete, cmq_SubNameRequest, cmq_SubInfo)
WRAP(meta_sub_list, cmq_ListRequest, cmq_SubList)
WRAP(meta_sub_clear_tags, cmq_SubNameRequest, cmq_SubInfo)
WRAP(meta_node_register, cmq_NodeRequest, cmq_NodeReply)
WRAP(meta_node_heartbeat, cmq_NodeRequest, cmq_NodeReply)

static int w_key_disable(struct meta_store *s, const void *rq, void *rp, struct meta_err *e)
{
    return meta_key_set_enabled(s, ((const cmq_KeyRequest *)rq)->secret_id, 0, rp, e);
}
static int w_key_enable(struct meta_store *s, const void *rq, void *rp, struct meta_err *e)
{
    return meta_key_set_enabled(s, ((const cmq_KeyRequest *)rq)->secret_id, 1, rp, e);
}
static int w_key_get_secret(struct meta_store *s, const void *rq, void *rp, struct meta_err *e)
{
    return meta_key_get_secret(s, ((const cmq_KeyRequest *)rq)->secret_id, rp, e);
}
static int w_key_list(struct meta_store *s, const void *rq, void *rp, struct meta_err *e)
{
    return meta_key_list(s, ((const cmq_KeyListRequest *)rq)->appid, rp, e);
}
static int w_acl_list(struct meta_store *s, const void *rq, void *rp, struct meta_err *e)
{
    return meta_acl_list(s, ((const cmq_KeyRequest *)rq)->secret_id, rp, e);
}
static int w_partition_map(struct meta_store *s, const void *rq, void *rp, struct meta_err *e)
{
    (void)rq;
    return meta_partition_map(s, rp, e);
}
static int w_node_list(struct meta_store *s, const void *rq, void *rp, struct meta_err *e)
{
    (void)rq;
    return meta_node_list(s, rp, e);
}

struct op {
    uint32_t type;
    const char *name;
    const pb_msgdesc_t *req_fields;
    size_t req_size;
    const pb_msgdesc_t *rep_fields;
    size_t rep_size;
    op_fn fn;
};

#define OP(T, fn, Req, Rep)                                                                  \
    {cmq_MetaMsgType_META_MSG_##T, #T, Req##_fields, sizeof(Req), Rep##_fields, sizeof(Rep), fn}

static const struct op ops[] = {
    OP(ACCOUNT_CREATE, w_meta_account_create, cmq_AccountCreateRequest, cmq_Account),
    OP(ACCOUNT_LIST, w_meta_account_list, cmq_ListRequest, cmq_AccountList),
    OP(KEY_CREATE, w_meta_key_create, cmq_KeyCreateRequest, cmq_Key),
    OP(KEY_DISABLE, w_key_disable, cmq_KeyRequest, cmq_Key),
    OP(KEY_ENABLE, w_key_enable, cmq_KeyRequest, cmq_Key),
    OP(KEY_LIST, w_key_list, cmq_KeyListRequest, cmq_KeyList),
    OP(KEY_GET_SECRET, w_key_get_secret, cmq_KeyRequest, cmq_Key),
    OP(ACL_GRANT, w_meta_acl_grant, cmq_AclEntry, cmq_AclEntry),
    OP(ACL_REVOKE, w_meta_acl_revoke, cmq_AclEntry, cmq_AclEntry),
    OP(ACL_LIST, w_acl_list, cmq_KeyRequest, cmq_AclList),
    OP(ACL_CHECK, w_meta_acl_check, cmq_AclCheckRequest, cmq_AclCheckReply),
    OP(QUEUE_CREATE, w_meta_queue_create, cmq_QueueRequest, cmq_QueueInfo),
    OP(QUEUE_GET, w_meta_queue_get, cmq_NameRequest, cmq_QueueInfo),
    OP(QUEUE_SET, w_meta_queue_set, cmq_QueueRequest, cmq_QueueInfo),
    OP(QUEUE_DELETE, w_meta_queue_delete, cmq_NameRequest, cmq_QueueInfo),
    OP(QUEUE_LIST, w_meta_queue_list, cmq_ListRequest, cmq_QueueList),
    OP(TOPIC_CREATE, w_meta_topic_create, cmq_TopicRequest, cmq_TopicInfo),
    OP(TOPIC_GET, w_meta_topic_get, cmq_NameRequest, cmq_TopicInfo),
    OP(TOPIC_SET, w_meta_topic_set, cmq_TopicRequest, cmq_TopicInfo),
    OP(TOPIC_DELETE, w_meta_topic_delete, cmq_NameRequest, cmq_TopicInfo),
    OP(TOPIC_LIST, w_meta_topic_list, cmq_ListRequest, cmq_TopicList),
    OP(SUB_CREATE, w_meta_sub_create, cmq_SubRequest, cmq_SubInfo),
    OP(SUB_GET, w_meta_sub_get, cmq_SubNameRequest, cmq_SubInfo),
    OP(SUB_SET, w_meta_sub_set, cmq_SubRequest, cmq_SubInfo),
    OP(SUB_DELETE, w_meta_sub_delete, cmq_SubNameRequest, cmq_SubInfo),
    OP(SUB_LIST, w_meta_sub_list, cmq_ListRequest, cmq_SubList),
    OP(SUB_CLEAR_TAGS, w_meta_sub_clear_tags, cmq_SubNameRequest, cmq_SubInfo),
    OP(NODE_REGISTER, w_meta_node_register, cmq_NodeRequest, cmq_NodeReply),
    OP(NODE_HEARTBEAT, w_meta_node_heartbeat, cmq_NodeRequest, cmq_NodeReply),
    OP(NODE_LIST, w_node_list, cmq_ListRequest, cmq_NodeList),
    OP(PARTITION_MAP, w_partition_map, cmq_ListRequest, cmq_PartitionMap),
};

static void reply_error(struct rpc_call *call, const struct meta_err *e)
{
    cmq_MetaError me = cmq_MetaError_init_zero;
    me.row = e->row;
    snprintf(me.reason, sizeof me.reason, "%s", e->reason);
    snprintf(me.param, sizeof me.param, "%s", e->param);
    uint8_t *buf = NULL;
    size_t len = 0;
    rpc_pb_encode(cmq_MetaError_fields, &me, &buf, &len);
    rpc_reply(call, e->status, buf, len, NULL, e->reason);
    free(buf);
}

void meta_service_handle(struct rpc_server *srv, struct rpc_call *call, void *arg)
{
    (void)srv;
    struct meta_service *m = arg;
    uint32_t type = rpc_call_request(call)->type;
    const struct op *op = NULL;
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
        if (ops[i].type == type)
            op = &ops[i];
    if (!op) {
        rpc_reply_status(call, CMQ_EUNSUPPORTED, "unknown metadata request type");
        return;
    }
    struct meta_err e = {0};
    void *req = calloc(1, op->req_size), *rep = calloc(1, op->rep_size);
    if (!req || !rep) {
        free(req);
        free(rep);
        rpc_reply_status(call, CMQ_ENOMEM, "out of memory");
        return;
    }
    int st;
    if (rpc_call_decode(call, op->req_fields, req) != CMQ_OK) {
        st = CMQ_EINVAL;
        snprintf(e.reason, sizeof e.reason, "malformed %s request (a field exceeds its bound?)",
                 op->name);
        e.status = st;
        e.row = cmq_MetaRow_META_ROW_PARAM_ERROR;
    } else {
        st = op->fn(m->store, req, rep, &e);
    }
    if (st == CMQ_OK) {
        rpc_reply_pb(call, op->rep_fields, rep);
        log_debug("request", "type=%s status=OK", op->name);
    } else {
        e.status = st;
        reply_error(call, &e);
        if (st == CMQ_EIO || st == CMQ_EINTERNAL || st == CMQ_ECORRUPT)
            log_error("request", "type=%s status=%s reason=\"%s\"", op->name, status_name(st),
                      e.reason);
        else
            log_info("request", "type=%s status=%s row=%d reason=\"%s\"", op->name,
                     status_name(st), (int)e.row, e.reason);
    }
    pb_release(op->rep_fields, rep);
    pb_release(op->req_fields, req);
    /* secrets pass through key replies: wipe before freeing */
    memset(rep, 0, op->rep_size);
    free(rep);
    free(req);
}
