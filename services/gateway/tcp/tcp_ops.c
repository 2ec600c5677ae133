/* tcp_ops.c: the CMQ TCP protocol's queue operations (§7.1-§7.6) on the
 * same storage calls as the HTTP API (services/gateway/api_msg.c): the
 * queue's metadata (qcache, else metadata QUEUE_GET), then one request to
 * the storage node leading the queue's partition, with the same "heal" of a
 * queue storage does not know yet.  Result codes are the HTTP API's rows
 * (§8 suggests so), except 10200 for "no message" and per-handle codes in a
 * batch delete's del_result. */
#include "tcp_internal.h"

#include "action.h"
#include "api_internal.h"
#include "clock.h"
#include "cmq_limits.h"
#include "log.h"
#include "status.h"
#include "storage.pb.h"
#include "pb_size.h"

#include <pb_encode.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TCP_STORAGE_TIMEOUT_MS 2000
#define TCP_STORAGE_ATTEMPTS 3
#define TCP_META_TIMEOUT_MS 3000

enum { TAG_REQUEST = 0, TAG_HEAL = 1 };

static void fail(struct treq *r, enum cmq_err e, const char *arg)
{
    tconn_reply_err(r->conn, r->seqno, r->cmd, e, arg);
    treq_done(r);
}

/* ---------- storage ---------- */

static void on_storage(void *arg, const struct rpc_result *res);

struct scall {
    struct treq *r;
    int tag;
};

static void storage_send(struct treq *r, const uint8_t *body, size_t len, uint32_t type, int tag)
{
    struct tcp_env *env = &r->conn->srv->env;
    uint32_t part = r->qi.partition_id;
    struct rpc_opts opts = {
        .timeout_ms = r->timeout_ms ? r->timeout_ms : TCP_STORAGE_TIMEOUT_MS,
        .attempts = TCP_STORAGE_ATTEMPTS,
        .peer = part < env->n_partition_peer ? env->partition_peer[part] : -1,
        /* sends are keyed (build_send): safe to repeat across a leader change */
        .retry_ms = type == cmq_StorageMsgType_STORAGE_MSG_SEND ? API_STORAGE_RETRY_MS : 0,
    };
    struct scall *sc = malloc(sizeof *sc);
    if (!sc) {
        fail(r, CMQERR_INTERNAL, NULL);
        return;
    }
    *sc = (struct scall){r, tag};
    int rc = rpc_client_call(env->storage, type, body, len, &opts, on_storage, sc);
    if (rc != CMQ_OK) {
        free(sc);
        fail(r, cmq_error_from_status(rc), NULL);
    }
}

static void send_create(struct treq *r)
{
    cmq_StorageCreateQueueRequest c = cmq_StorageCreateQueueRequest_init_zero;
    c.queue_id = r->qi.num_id;
    snprintf(c.name, sizeof c.name, "%s", r->qi.name);
    c.has_attributes = true;
    api_storage_attrs(&r->qi, &c.attributes);
    c.create_time_s = r->qi.create_time;
    c.partition_id = r->qi.partition_id;
    uint8_t *buf;
    size_t len;
    if (rpc_pb_encode(cmq_StorageCreateQueueRequest_fields, &c, &buf, &len) != CMQ_OK) {
        fail(r, CMQERR_INTERNAL, NULL);
        return;
    }
    storage_send(r, buf, len, cmq_StorageMsgType_STORAGE_MSG_CREATE_QUEUE, TAG_HEAL);
    free(buf);
}

static void answer_send(struct treq *r, const struct rpc_msg *msg)
{
    cmq_SendReply sr = cmq_SendReply_init_zero;
    if (rpc_pb_decode(cmq_SendReply_fields, &sr, msg->body, msg->body_len) != CMQ_OK ||
        sr.msg_ids_count == 0) {
        fail(r, CMQERR_SEND_FAILED, NULL);
        return;
    }
    struct cmq_frame *f = tconn_answer_new(r->seqno, r->cmd);
    if (!f) {
        fail(r, CMQERR_INTERNAL, NULL);
        return;
    }
    for (pb_size_t i = 0; i < sr.msg_ids_count && i < CMQ_FRAME_BODIES_MAX; i++)
        f->ids[f->n_ids++] = sr.msg_ids[i];
    int batch = r->cmd == cmqtcp_Cmd_CMD_BATCH_SEND_MSG;
    if (batch ? r->f.m.tcp_batch_send_msg.is_transaction : r->f.m.tcp_send_msg.is_transaction)
        tcp_txn_note(r->conn, r->qi.name, f->ids, f->n_ids); /* for check-backs (tcp_txn.c) */
    tconn_send(r->conn, f);
    free(f);
    treq_done(r);
}

static void fill_pull(cmqtcp_PullMsgRsp *p, const struct api_received *m)
{
    p->msg_id = m->msg_id;
    p->has_receipt_handle = true;
    p->receipt_handle = m->handle;
    p->has_enqueue_time = true;
    p->enqueue_time = (int64_t)(m->enqueue_ms / 1000);
    p->has_next_visible_time = true;
    p->next_visible_time = (int64_t)(m->next_ms / 1000);
    p->has_first_dequeue_time = true;
    p->first_dequeue_time = (int64_t)(m->first_ms / 1000);
    p->has_dequeue_count = true;
    p->dequeue_count = m->count;
}

static void answer_pull(struct treq *r, const struct rpc_msg *msg)
{
    struct api_received rs[CMQ_BATCH_MAX];
    size_t n = 0;
    if (api_parse_received(msg->body, msg->body_len, rs, CMQ_BATCH_MAX, &n) != CMQ_OK || n == 0) {
        fail(r, n == 0 ? CMQERR_NO_MESSAGE : CMQERR_RECEIVE_FAILED, NULL);
        return;
    }
    struct cmq_frame *f = tconn_answer_new(r->seqno, r->cmd);
    if (!f) {
        fail(r, CMQERR_INTERNAL, NULL);
        return;
    }
    if (r->cmd == cmqtcp_Cmd_CMD_PULL_MSG) {
        f->m.has_pull_rsp = true;
        fill_pull(&f->m.pull_rsp, &rs[0]);
        f->bodies[0] = (struct cmq_bytes){rs[0].body, rs[0].body_len};
        f->n_bodies = 1;
    } else {
        f->m.has_batch_pull_rsp = true;
        for (size_t i = 0; i < n; i++) {
            fill_pull(&f->m.batch_pull_rsp.msg_list[i], &rs[i]);
            f->bodies[i] = (struct cmq_bytes){rs[i].body, rs[i].body_len};
        }
        f->m.batch_pull_rsp.msg_list_count = PB_COUNT(f->m.batch_pull_rsp.msg_list, n);
        f->n_bodies = n;
    }
    tconn_send(r->conn, f);
    free(f);
    treq_done(r);
}

static void answer_delete(struct treq *r, const struct rpc_msg *msg)
{
    cmq_DeleteReply dr = cmq_DeleteReply_init_zero;
    size_t n = r->cmd == cmqtcp_Cmd_CMD_DELETE_MSG ? 1 : r->f.n_ids;
    if (rpc_pb_decode(cmq_DeleteReply_fields, &dr, msg->body, msg->body_len) != CMQ_OK ||
        dr.statuses_count != n) {
        fail(r, CMQERR_DELETE_FAILED, NULL);
        return;
    }
    size_t failed = 0;
    for (pb_size_t i = 0; i < dr.statuses_count; i++)
        failed += dr.statuses[i] != CMQ_OK;
    if (failed == 0) {
        tconn_reply(r->conn, r->seqno, r->cmd, 0, NULL);
        treq_done(r);
        return;
    }
    enum cmq_action act = tcp_action_of(r->cmd);
    if (r->cmd == cmqtcp_Cmd_CMD_DELETE_MSG) {
        fail(r, api_storage_error(act, dr.statuses[0]), NULL);
        return;
    }
    /* §7.6: only the failed handles, each with all three fields. */
    struct cmq_frame *f = tconn_answer_new(r->seqno, r->cmd);
    if (!f) {
        fail(r, CMQERR_INTERNAL, NULL);
        return;
    }
    enum cmq_err top = failed == n ? CMQERR_DELETE_ALL_FAILED : CMQERR_DELETE_PARTIAL;
    f->m.result = tcp_result_code(top);
    f->m.has_error = true;
    cmq_error_message(top, NULL, f->m.error, sizeof f->m.error);
    for (pb_size_t i = 0; i < dr.statuses_count; i++) {
        if (dr.statuses[i] == CMQ_OK)
            continue;
        enum cmq_err e = api_storage_error(act, dr.statuses[i]);
        cmqtcp_MsgDeleteResult *d = &f->m.del_result[f->m.del_result_count++];
        d->receipt_handle = r->f.ids[i];
        d->err_code = tcp_result_code(e);
        cmq_error_message(e, NULL, d->err_msg, sizeof d->err_msg);
    }
    tconn_send(r->conn, f);
    free(f);
    treq_done(r);
}

static void on_storage(void *arg, const struct rpc_result *res)
{
    struct scall *sc = arg;
    struct treq *r = sc->r;
    int tag = sc->tag;
    free(sc);
    struct tcp_env *env = &r->conn->srv->env;
    if (r->conn->closed) { /* nobody to answer */
        treq_done(r);
        return;
    }
    if (res->status == CMQ_OK && r->qi.partition_id < env->n_partition_peer)
        env->partition_peer[r->qi.partition_id] = (signed char)res->peer;
    if (tag == TAG_HEAL) {
        if (res->status != CMQ_OK && res->status != CMQ_EEXIST) {
            fail(r, api_storage_error(tcp_action_of(r->cmd), res->status), NULL);
            return;
        }
        log_info("queue_healed", "queue=%s queue_num=%llu partition=%u via=tcp", r->qi.name,
                 (unsigned long long)r->qi.num_id, r->qi.partition_id);
        if (r->qi.partition_id < env->n_partition_peer) /* it leads the partition */
            env->partition_peer[r->qi.partition_id] = (signed char)res->peer;
        storage_send(r, r->sreq, r->sreq_len, r->stype, TAG_REQUEST);
        return;
    }
    /* not here / not found from one node: the create decides (api_msg.c) */
    if ((res->status == CMQ_ENOTFOUND || res->status == CMQ_ENOTLEADER) && !r->healed) {
        r->healed = 1;
        send_create(r);
        return;
    }
    if (res->status != CMQ_OK || !res->msg) {
        fail(r, api_storage_error(tcp_action_of(r->cmd), res->status), NULL);
        return;
    }
    switch (r->cmd) {
    case cmqtcp_Cmd_CMD_TRANSACTION_CONFIRM: /* §9.6: the SDK drops it; libcmq waits for it */
        tconn_reply(r->conn, r->seqno, r->cmd, 0, NULL);
        treq_done(r);
        return;
    case cmqtcp_Cmd_CMD_SEND_MSG:
    case cmqtcp_Cmd_CMD_BATCH_SEND_MSG: answer_send(r, res->msg); return;
    case cmqtcp_Cmd_CMD_PULL_MSG:
    case cmqtcp_Cmd_CMD_BATCH_PULL_MSG: answer_pull(r, res->msg); return;
    default: answer_delete(r, res->msg); return;
    }
}

/* ---------- building the storage request ---------- */

static bool encode_body(pb_ostream_t *os, const pb_field_t *field, void *const *arg)
{
    const struct cmq_bytes *b = *arg;
    return pb_encode_tag_for_field(os, field) && pb_encode_string(os, b->data, b->len);
}

static int set_request(struct treq *r, uint32_t type, const pb_msgdesc_t *fields, const void *msg)
{
    r->stype = type;
    int rc = rpc_pb_encode(fields, msg, &r->sreq, &r->sreq_len);
    if (rc != CMQ_OK) {
        fail(r, rc == CMQ_ETOOBIG ? CMQERR_REQUEST_TOO_BIG : CMQERR_INTERNAL, NULL);
        return -1;
    }
    return 0;
}

static int build_send(struct treq *r)
{
    const cmqtcp_TcpFrame *m = &r->f.m;
    int batch = r->cmd == cmqtcp_Cmd_CMD_BATCH_SEND_MSG;
    bool has_delay = batch ? m->tcp_batch_send_msg.has_delay_seconds : m->tcp_send_msg.has_delay_seconds;
    uint32_t delay = batch ? m->tcp_batch_send_msg.delay_seconds : m->tcp_send_msg.delay_seconds;
    int32_t tx = batch ? m->tcp_batch_send_msg.is_transaction : m->tcp_send_msg.is_transaction;
    int32_t fqi = batch ? m->tcp_batch_send_msg.first_query_interval
                        : m->tcp_send_msg.first_query_interval;
    uint32_t check_ms = 0;
    if (tx) {
        /* §9.5: >= 1000 is milliseconds, 1..999 seconds, absent / <= 0 the
         * default; a half message is never delayed (§9.1) */
        int64_t ms = fqi >= 1000 ? fqi : fqi > 0 ? (int64_t)fqi * 1000 : CMQ_TXN_CHECK_MS_DEFAULT;
        check_ms = (uint32_t)(ms > CMQ_TXN_CHECK_MS_MAX ? CMQ_TXN_CHECK_MS_MAX : ms);
        has_delay = false;
    }
    if (r->f.n_bodies == 0) {
        fail(r, CMQERR_MSG_BODY_EMPTY, NULL);
        return -1;
    }
    if (has_delay && !cmq_delay_ok(delay, r->conn->srv->lim.max_delay_s)) {
        fail(r, CMQERR_DELAY_RANGE, NULL);
        return -1;
    }
    cmq_SendRequest s = cmq_SendRequest_init_zero;
    s.queue_id = r->qi.num_id;
    snprintf(s.client_addr, sizeof s.client_addr, "%s", r->conn->peer);
    size_t total = 0;
    for (size_t i = 0; i < r->f.n_bodies; i++) {
        if (r->f.bodies[i].len == 0) {
            fail(r, CMQERR_MSG_BODY_EMPTY, NULL);
            return -1;
        }
        if ((int64_t)r->f.bodies[i].len > r->qi.max_msg_size) {
            fail(r, CMQERR_MSG_TOO_BIG, NULL);
            return -1;
        }
        total += r->f.bodies[i].len;
        s.messages[i].delay_seconds = has_delay ? delay : 0;
        s.messages[i].txn_check_ms = check_ms;
        s.messages[i].dedup_key = api_dedup_key(); /* the same on every resend */
        s.messages[i].body.funcs.encode = encode_body;
        s.messages[i].body.arg = &r->f.bodies[i];
        s.messages_count = PB_COUNT(s.messages, i + 1);
    }
    if (total > CMQ_BATCH_BYTES_MAX) {
        fail(r, CMQERR_BATCH_TOO_BIG, NULL);
        return -1;
    }
    return set_request(r, cmq_StorageMsgType_STORAGE_MSG_SEND, cmq_SendRequest_fields, &s);
}

static int build_pull(struct treq *r)
{
    const cmqtcp_TcpFrame *m = &r->f.m;
    cmq_ReceiveRequest q = cmq_ReceiveRequest_init_zero;
    q.queue_id = r->qi.num_id;
    q.count = 1;
    bool has_wait;
    int32_t wait;
    uint32_t vis;
    if (r->cmd == cmqtcp_Cmd_CMD_BATCH_PULL_MSG) {
        int32_t num = m->tcp_batch_pull_msg.num_msg; /* §7.4: clamp into 1..16 */
        q.count = (uint32_t)(num < 1 ? 1 : num > CMQ_BATCH_MAX ? CMQ_BATCH_MAX : num);
        has_wait = m->tcp_batch_pull_msg.has_poll_wait_seconds;
        wait = m->tcp_batch_pull_msg.poll_wait_seconds;
        vis = m->tcp_batch_pull_msg.visible_timeout;
    } else {
        has_wait = m->tcp_pull_msg.has_poll_wait_seconds;
        wait = m->tcp_pull_msg.poll_wait_seconds;
        vis = m->tcp_pull_msg.visible_timeout;
    }
    if (vis > CMQ_VISIBILITY_S_MAX)
        vis = CMQ_VISIBILITY_S_MAX;
    q.visibility_timeout_s = vis; /* 0 (absent): the queue's (§7.3) */
    if (has_wait) {
        if (wait < 0)
            wait = 0;
        if (wait > CMQ_POLL_WAIT_S_MAX)
            wait = CMQ_POLL_WAIT_S_MAX;
        q.has_wait_seconds = true;
        q.wait_seconds = (uint32_t)wait;
    } else {
        wait = (int32_t)r->qi.polling_wait_seconds;
        if (wait > CMQ_POLL_WAIT_S_MAX)
            wait = CMQ_POLL_WAIT_S_MAX;
    }
    snprintf(q.consumer_addr, sizeof q.consumer_addr, "%s", r->conn->peer);
    r->timeout_ms = wait * 1000 + TCP_STORAGE_TIMEOUT_MS;
    return set_request(r, cmq_StorageMsgType_STORAGE_MSG_RECEIVE, cmq_ReceiveRequest_fields, &q);
}

static int build_delete(struct treq *r)
{
    cmq_DeleteRequest d = cmq_DeleteRequest_init_zero;
    d.queue_id = r->qi.num_id;
    if (r->cmd == cmqtcp_Cmd_CMD_DELETE_MSG) {
        d.receipt_handles[0] = r->f.m.tcp_delete_msg.receipt_handle;
        d.receipt_handles_count = 1;
    } else {
        if (r->f.n_ids == 0) {
            fail(r, CMQERR_MISSING_PARAM, "receipt_handle_list");
            return -1;
        }
        for (size_t i = 0; i < r->f.n_ids; i++)
            d.receipt_handles[i] = r->f.ids[i];
        d.receipt_handles_count = PB_COUNT(d.receipt_handles, r->f.n_ids);
    }
    for (pb_size_t i = 0; i < d.receipt_handles_count; i++)
        if (d.receipt_handles[i] == 0) {
            fail(r, CMQERR_RECEIPT_HANDLE_FORMAT, NULL);
            return -1;
        }
    return set_request(r, cmq_StorageMsgType_STORAGE_MSG_DELETE, cmq_DeleteRequest_fields, &d);
}

static int build_confirm(struct treq *r)
{
    const cmqtcp_TransactionConfirm *t = &r->f.m.transaction_confirm;
    cmq_TxnConfirmRequest q = cmq_TxnConfirmRequest_init_zero;
    q.queue_id = r->qi.num_id;
    for (pb_size_t i = 0; i < t->item_count && i < 16; i++) {
        if (t->item[i].msg_id == 0 || (t->item[i].state != 1 && t->item[i].state != 2))
            continue; /* not a decision: nothing to apply */
        q.items[q.items_count].msg_id = t->item[i].msg_id;
        q.items[q.items_count].state = (uint32_t)t->item[i].state;
        q.items_count++;
    }
    if (q.items_count == 0) {
        tconn_reply(r->conn, r->seqno, r->cmd, 0, NULL);
        treq_done(r);
        return -1;
    }
    return set_request(r, cmq_StorageMsgType_STORAGE_MSG_TXN_CONFIRM, cmq_TxnConfirmRequest_fields,
                       &q);
}

static void with_queue(struct treq *r)
{
    if (r->qi.num_id == 0 || r->qi.partition_id == 0) {
        log_warn("queue_unplaced", "queue=%s queue_id=%s partition=%u via=tcp", r->qi.name,
                 r->qi.queue_id, r->qi.partition_id);
        fail(r, CMQERR_INTERNAL, NULL);
        return;
    }
    int rc;
    switch (r->cmd) {
    case cmqtcp_Cmd_CMD_SEND_MSG:
    case cmqtcp_Cmd_CMD_BATCH_SEND_MSG: rc = build_send(r); break;
    case cmqtcp_Cmd_CMD_PULL_MSG:
    case cmqtcp_Cmd_CMD_BATCH_PULL_MSG: rc = build_pull(r); break;
    case cmqtcp_Cmd_CMD_TRANSACTION_CONFIRM: rc = build_confirm(r); break;
    default: rc = build_delete(r); break;
    }
    if (rc == 0)
        storage_send(r, r->sreq, r->sreq_len, r->stype, TAG_REQUEST);
}

static void on_queue_info(void *arg, const struct rpc_result *res)
{
    struct treq *r = arg;
    if (r->conn->closed) {
        treq_done(r);
        return;
    }
    if (res->status != CMQ_OK || !res->msg ||
        rpc_pb_decode(cmq_QueueInfo_fields, &r->qi, res->msg->body, res->msg->body_len) != CMQ_OK) {
        int st = res->status == CMQ_OK ? CMQ_ECORRUPT : res->status;
        fail(r, st == CMQ_ENOTFOUND ? CMQERR_QUEUE_NOT_EXIST : cmq_error_from_status(st), NULL);
        return;
    }
    if (r->qi.partition_id)
        qcache_put(r->conn->srv->env.queues, &r->qi, clock_mono_ms());
    with_queue(r);
}

void tcp_op_queue(struct treq *r)
{
    struct tconn *c = r->conn;
    int is_topic;
    const char *name = tcp_resource_of(r, &is_topic);
    if (!name || !name[0]) {
        fail(r, CMQERR_MISSING_PARAM, "queue_name");
        return;
    }
    if (qcache_get(c->srv->env.queues, c->key.appid, name, clock_mono_ms(), &r->qi) == 0) {
        with_queue(r);
        return;
    }
    cmq_NameRequest q = cmq_NameRequest_init_zero;
    q.appid = c->key.appid;
    snprintf(q.name, sizeof q.name, "%s", name);
    uint8_t *body;
    size_t len;
    struct rpc_opts opts = {.timeout_ms = TCP_META_TIMEOUT_MS, .attempts = 2, .peer = -1};
    int rc = rpc_pb_encode(cmq_NameRequest_fields, &q, &body, &len);
    if (rc == CMQ_OK) {
        rc = rpc_client_call(c->srv->env.metadata, cmq_MetaMsgType_META_MSG_QUEUE_GET, body, len,
                             &opts, on_queue_info, r);
        free(body);
    }
    if (rc != CMQ_OK)
        fail(r, cmq_error_from_status(rc), NULL);
}
