/* tcp_publish.c: publish and batch publish over the CMQ TCP protocol
 * (§7.7, §7.8) on the same storage request as the HTTP API's
 * PublishMessage (api_publish.c: api_publish_encode): the topic from
 * metadata (TOPIC_GET), the HTTP API's limits on bodies, tags (<= 5, 1-16
 * characters) and routing key, then one PublishRequest to the leader of the
 * topic's partition.  Not done here: the HTTP path's "heal" (re-syncing a
 * stale subscription set to storage before one retry); a TCP publish
 * answers storage's refusal as it stands (a topic storage has never been
 * told about, i.e. one that never had a subscription, answers 4440). */
#include "tcp_internal.h"

#include "api_internal.h"
#include "api_publish.h"
#include "clock.h"
#include "cmq_limits.h"
#include "log.h"
#include "names.h"
#include "status.h"
#include "storage.pb.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TCP_STORAGE_TIMEOUT_MS 2000
#define TCP_STORAGE_ATTEMPTS 3
#define TCP_META_TIMEOUT_MS 3000

struct tpub {
    struct treq *r;
    cmq_TopicInfo ti;
};

static void pub_fail(struct tpub *p, enum cmq_err e, const char *arg)
{
    tconn_reply_err(p->r->conn, p->r->seqno, p->r->cmd, e, arg);
    treq_done(p->r);
    free(p);
}

static enum cmq_err publish_error(int status)
{
    switch (status) {
    case CMQ_ENOTFOUND: return CMQERR_TOPIC_NOT_EXIST;
    case CMQ_ETOOBIG: return CMQERR_MSG_TOO_BIG;
    case CMQ_EINVAL: return CMQERR_INVALID_REQUEST;
    default: return cmq_error_from_status(status);
    }
}

static void on_published(void *arg, const struct rpc_result *res)
{
    struct tpub *p = arg;
    struct treq *r = p->r;
    struct tcp_env *env = &r->conn->srv->env;
    if (r->conn->closed) {
        treq_done(r);
        free(p);
        return;
    }
    if (res->status == CMQ_OK && p->ti.partition_id < env->n_partition_peer)
        env->partition_peer[p->ti.partition_id] = (signed char)res->peer;
    if (res->status != CMQ_OK || !res->msg) {
        pub_fail(p, publish_error(res->status), NULL);
        return;
    }
    cmq_PublishReply pr = cmq_PublishReply_init_zero;
    if (rpc_pb_decode(cmq_PublishReply_fields, &pr, res->msg->body, res->msg->body_len) != CMQ_OK) {
        pub_fail(p, CMQERR_INTERNAL, NULL);
        return;
    }
    if (pr.refused) {
        pub_fail(p, pr.refused == 1 ? CMQERR_TOPIC_NO_SUBSCRIPTION : CMQERR_NO_MATCH, NULL);
        return;
    }
    if (pr.msg_ids_count != r->f.n_bodies) {
        pub_fail(p, CMQERR_INTERNAL, NULL);
        return;
    }
    struct cmq_frame *f = tconn_answer_new(r->seqno, r->cmd);
    if (!f) {
        pub_fail(p, CMQERR_INTERNAL, NULL);
        return;
    }
    for (pb_size_t i = 0; i < pr.msg_ids_count && i < CMQ_FRAME_BODIES_MAX; i++)
        f->ids[f->n_ids++] = pr.msg_ids[i];
    tconn_send(r->conn, f);
    free(f);
    treq_done(r);
    free(p);
}

static void with_topic(struct tpub *p)
{
    struct treq *r = p->r;
    int batch = r->cmd == cmqtcp_Cmd_CMD_BATCH_PUBLISH_MSG;
    const cmqtcp_TcpFrame *m = &r->f.m;
    pb_size_t n_tags = batch ? m->tcp_batch_publish_msg.msgTags_count : m->tcp_publish_msg.msgTags_count;
    const char (*tagv)[65] = batch ? m->tcp_batch_publish_msg.msgTags : m->tcp_publish_msg.msgTags;
    bool has_rk = batch ? m->tcp_batch_publish_msg.has_routing_key : m->tcp_publish_msg.has_routing_key;
    const char *rk = batch ? m->tcp_batch_publish_msg.routing_key : m->tcp_publish_msg.routing_key;
    struct cmq_fault fault = {0};
    if (r->f.n_bodies == 0) {
        pub_fail(p, CMQERR_MSG_BODY_EMPTY, NULL);
        return;
    }
    struct param_value bodies[CMQ_FRAME_BODIES_MAX], tags[CMQ_TAGS_MAX];
    size_t total = 0;
    for (size_t i = 0; i < r->f.n_bodies; i++) {
        if (r->f.bodies[i].len == 0) {
            pub_fail(p, CMQERR_MSG_BODY_EMPTY, NULL);
            return;
        }
        if ((int64_t)r->f.bodies[i].len > p->ti.max_msg_size) {
            pub_fail(p, CMQERR_MSG_TOO_BIG, NULL);
            return;
        }
        total += r->f.bodies[i].len;
        bodies[i] = (struct param_value){(const char *)r->f.bodies[i].data, r->f.bodies[i].len};
    }
    if (total > CMQ_BATCH_BYTES_MAX) {
        pub_fail(p, CMQERR_BATCH_TOO_BIG, NULL);
        return;
    }
    if (n_tags > CMQ_TAGS_MAX) {
        pub_fail(p, CMQERR_MSG_TAG_TOO_MANY, NULL);
        return;
    }
    for (pb_size_t i = 0; i < n_tags; i++) {
        tags[i] = (struct param_value){tagv[i], strlen(tagv[i])};
        if (name_check_tag("msgTags", tags[i].val, tags[i].len, &fault) != CMQ_OK) {
            pub_fail(p, fault.err, fault.arg);
            return;
        }
    }
    if (has_rk && rk[0] && name_check_routing_key("routing_key", rk, strlen(rk), &fault) != CMQ_OK) {
        pub_fail(p, fault.err, fault.arg);
        return;
    }
    if (p->ti.filter_type == 2 && !(has_rk && rk[0])) {
        pub_fail(p, CMQERR_ROUTING_KEY_MISSING, NULL);
        return;
    }
    uint8_t *req;
    size_t len;
    int rc = api_publish_encode(p->ti.num_id, bodies, r->f.n_bodies, tags, n_tags,
                                has_rk ? rk : "", r->conn->peer, &req, &len);
    if (rc != CMQ_OK) {
        pub_fail(p, rc == CMQ_ETOOBIG ? CMQERR_REQUEST_TOO_BIG : CMQERR_INTERNAL, NULL);
        return;
    }
    struct tcp_env *env = &r->conn->srv->env;
    uint32_t part = p->ti.partition_id;
    struct rpc_opts opts = {
        .timeout_ms = TCP_STORAGE_TIMEOUT_MS,
        .attempts = TCP_STORAGE_ATTEMPTS,
        .peer = part < env->n_partition_peer ? env->partition_peer[part] : -1,
        .retry_ms = API_STORAGE_RETRY_MS, /* keyed: api_publish_encode */
    };
    rc = rpc_client_call(env->storage, cmq_StorageMsgType_STORAGE_MSG_PUBLISH, req, len, &opts,
                         on_published, p);
    free(req);
    if (rc != CMQ_OK)
        pub_fail(p, cmq_error_from_status(rc), NULL);
}

static void on_topic_info(void *arg, const struct rpc_result *res)
{
    struct tpub *p = arg;
    if (p->r->conn->closed) {
        treq_done(p->r);
        free(p);
        return;
    }
    if (res->status != CMQ_OK || !res->msg ||
        rpc_pb_decode(cmq_TopicInfo_fields, &p->ti, res->msg->body, res->msg->body_len) != CMQ_OK) {
        int st = res->status == CMQ_OK ? CMQ_ECORRUPT : res->status;
        pub_fail(p, st == CMQ_ENOTFOUND ? CMQERR_TOPIC_NOT_EXIST : cmq_error_from_status(st), NULL);
        return;
    }
    if (p->ti.num_id == 0 || p->ti.partition_id == 0) {
        log_warn("topic_unplaced", "topic=%s partition=%u via=tcp", p->ti.name, p->ti.partition_id);
        pub_fail(p, CMQERR_INTERNAL, NULL);
        return;
    }
    with_topic(p);
}

void tcp_op_publish(struct treq *r)
{
    const cmqtcp_TcpFrame *m = &r->f.m;
    int batch = r->cmd == cmqtcp_Cmd_CMD_BATCH_PUBLISH_MSG;
    const char *name = batch ? (m->has_tcp_batch_publish_msg ? m->tcp_batch_publish_msg.topic_name : NULL)
                             : (m->has_tcp_publish_msg ? m->tcp_publish_msg.topic_name : NULL);
    struct tpub *p = calloc(1, sizeof *p);
    if (!p) {
        tconn_reply_err(r->conn, r->seqno, r->cmd, CMQERR_INTERNAL, NULL);
        treq_done(r);
        return;
    }
    p->r = r;
    if (!name || !name[0]) {
        pub_fail(p, CMQERR_MISSING_PARAM, "topic_name");
        return;
    }
    cmq_NameRequest q = cmq_NameRequest_init_zero;
    q.appid = r->conn->key.appid;
    snprintf(q.name, sizeof q.name, "%s", name);
    uint8_t *body;
    size_t len;
    struct rpc_opts opts = {.timeout_ms = TCP_META_TIMEOUT_MS, .attempts = 2, .peer = -1};
    int rc = rpc_pb_encode(cmq_NameRequest_fields, &q, &body, &len);
    if (rc == CMQ_OK) {
        rc = rpc_client_call(r->conn->srv->env.metadata, cmq_MetaMsgType_META_MSG_TOPIC_GET, body,
                             len, &opts, on_topic_info, p);
        free(body);
    }
    if (rc != CMQ_OK)
        pub_fail(p, cmq_error_from_status(rc), NULL);
}
