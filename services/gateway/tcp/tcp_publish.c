/* tcp_publish.c: publish and batch publish over the CMQ TCP protocol
 * (§7.7, §7.8) as a thin codec over the gateway's back end: the topic from
 * the back end (metadata TOPIC_GET), the HTTP API's limits on bodies, tags
 * (<= 5, 1-16 characters) and routing key, then the back end's publish,
 * which heals a stale subscription set like the HTTP API's (so a topic
 * without subscriptions answers 6030/10650 on both). */
#include "tcp_internal.h"

#include "backend.h"
#include "cmq_limits.h"
#include "names.h"
#include "status.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void on_published(void *arg, const struct be_result *res)
{
    struct treq *r = arg;
    if (r->conn->closed) {
        treq_done(r);
        return;
    }
    if (res->err != CMQERR_OK) {
        treq_fail(r, res->err, NULL);
        return;
    }
    struct cmq_frame *f = tconn_answer_new(r->seqno, r->cmd);
    if (!f) {
        treq_fail(r, CMQERR_INTERNAL, NULL);
        return;
    }
    for (size_t i = 0; i < res->n_ids && i < CMQ_FRAME_BODIES_MAX; i++)
        f->ids[f->n_ids++] = res->ids[i];
    tconn_send(r->conn, f);
    free(f);
    treq_done(r);
}

static void on_topic(void *arg, const cmq_TopicInfo *ti, const struct be_fault *fault)
{
    struct treq *r = arg;
    if (r->conn->closed) {
        treq_done(r);
        return;
    }
    if (!ti) {
        treq_fault(r, fault);
        return;
    }
    int batch = r->cmd == cmqtcp_Cmd_CMD_BATCH_PUBLISH_MSG;
    const cmqtcp_TcpFrame *m = &r->f.m;
    pb_size_t n_tags = batch ? m->tcp_batch_publish_msg.msgTags_count : m->tcp_publish_msg.msgTags_count;
    const char (*tagv)[65] = batch ? m->tcp_batch_publish_msg.msgTags : m->tcp_publish_msg.msgTags;
    bool has_rk = batch ? m->tcp_batch_publish_msg.has_routing_key : m->tcp_publish_msg.has_routing_key;
    const char *rk = batch ? m->tcp_batch_publish_msg.routing_key : m->tcp_publish_msg.routing_key;
    struct cmq_fault f = {0};
    if (r->f.n_bodies == 0) {
        treq_fail(r, CMQERR_MSG_BODY_EMPTY, NULL);
        return;
    }
    struct be_text bodies[CMQ_FRAME_BODIES_MAX], tags[CMQ_TAGS_MAX];
    size_t total = 0;
    for (size_t i = 0; i < r->f.n_bodies; i++) {
        if (r->f.bodies[i].len == 0) {
            treq_fail(r, CMQERR_MSG_BODY_EMPTY, NULL);
            return;
        }
        if ((int64_t)r->f.bodies[i].len > ti->max_msg_size) {
            treq_fail(r, CMQERR_MSG_TOO_BIG, NULL);
            return;
        }
        total += r->f.bodies[i].len;
        bodies[i] = (struct be_text){(const char *)r->f.bodies[i].data, r->f.bodies[i].len};
    }
    if (total > CMQ_BATCH_BYTES_MAX) {
        treq_fail(r, CMQERR_BATCH_TOO_BIG, NULL);
        return;
    }
    if (n_tags > CMQ_TAGS_MAX) {
        treq_fail(r, CMQERR_MSG_TAG_TOO_MANY, NULL);
        return;
    }
    for (pb_size_t i = 0; i < n_tags; i++) {
        tags[i] = (struct be_text){tagv[i], strlen(tagv[i])};
        if (name_check_tag("msgTags", tags[i].val, tags[i].len, &f) != CMQ_OK) {
            treq_fail(r, f.err, f.arg);
            return;
        }
    }
    if (has_rk && rk[0] && name_check_routing_key("routing_key", rk, strlen(rk), &f) != CMQ_OK) {
        treq_fail(r, f.err, f.arg);
        return;
    }
    if (ti->filter_type == 2 && !(has_rk && rk[0])) {
        treq_fail(r, CMQERR_ROUTING_KEY_MISSING, NULL);
        return;
    }
    be_publish(r->conn->srv->env.be, tcp_action_of(r->cmd), ti, bodies, r->f.n_bodies, tags, n_tags,
               has_rk ? rk : "", r->conn->peer, on_published, r);
}

void tcp_op_publish(struct treq *r)
{
    int is_topic;
    const char *name = tcp_resource_of(r, &is_topic);
    if (!name || !name[0]) {
        treq_fail(r, CMQERR_MISSING_PARAM, "topic_name");
        return;
    }
    be_topic_get(r->conn->srv->env.be, r->conn->key.appid, name, on_topic, r);
}
