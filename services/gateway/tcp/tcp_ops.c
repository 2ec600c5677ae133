/* tcp_ops.c: the CMQ TCP protocol's queue operations (§7.1-§7.6) as a thin
 * codec over the gateway's back end (services/gateway/backend/backend.h):
 * the frame's fields become a back-end send / receive / delete / confirm on
 * the queue the back end looked up, and the back end's outcome becomes the
 * answer frame.  Routing, the heal, coalescing and the CMQ row of every
 * failure are the back end's, the same as the HTTP API's.  Result codes are
 * the HTTP API's rows (§8 suggests so), except 10200 for "no message" and
 * per-handle codes in a batch delete's del_result. */
#include "tcp_internal.h"

#include "action.h"
#include "backend.h"
#include "cmq_limits.h"
#include "log.h"
#include "status.h"
#include "storage.pb.h"
#include "pb_size.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct be_loop *be_of(struct treq *r) { return r->conn->srv->env.be; }

/* ---------- answers ---------- */

static void answer_send(struct treq *r, const struct be_result *res)
{
    struct cmq_frame *f = tconn_answer_new(r->seqno, r->cmd);
    if (!f) {
        treq_fail(r, CMQERR_INTERNAL, NULL);
        return;
    }
    for (size_t i = 0; i < res->n_ids && i < CMQ_FRAME_BODIES_MAX; i++)
        f->ids[f->n_ids++] = res->ids[i];
    int batch = r->cmd == cmqtcp_Cmd_CMD_BATCH_SEND_MSG;
    if (batch ? r->f.m.tcp_batch_send_msg.is_transaction : r->f.m.tcp_send_msg.is_transaction)
        tcp_txn_note(r->conn, r->queue, f->ids, f->n_ids); /* for check-backs (tcp_txn.c) */
    tconn_send(r->conn, f);
    free(f);
    treq_done(r);
}

static void fill_pull(cmqtcp_PullMsgRsp *p, const struct be_received *m)
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

static void answer_pull(struct treq *r, const struct be_result *res)
{
    struct cmq_frame *f = tconn_answer_new(r->seqno, r->cmd);
    if (!f) {
        treq_fail(r, CMQERR_INTERNAL, NULL);
        return;
    }
    const struct be_received *rs = res->received;
    if (r->cmd == cmqtcp_Cmd_CMD_PULL_MSG) {
        f->m.has_pull_rsp = true;
        fill_pull(&f->m.pull_rsp, &rs[0]);
        f->bodies[0] = (struct cmq_bytes){rs[0].body, rs[0].body_len};
        f->n_bodies = 1;
    } else {
        size_t n = res->n_received;
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

static void answer_delete(struct treq *r, const struct be_result *res)
{
    size_t n = res->n_statuses, failed = 0;
    for (size_t i = 0; i < n; i++)
        failed += res->statuses[i] != CMQ_OK;
    if (failed == 0) {
        tconn_reply(r->conn, r->seqno, r->cmd, 0, NULL);
        treq_done(r);
        return;
    }
    enum cmq_action act = tcp_action_of(r->cmd);
    if (r->cmd == cmqtcp_Cmd_CMD_DELETE_MSG) {
        treq_fail(r, be_status_row(act, res->statuses[0]), NULL);
        return;
    }
    /* §7.6: only the failed handles, each with all three fields. */
    struct cmq_frame *f = tconn_answer_new(r->seqno, r->cmd);
    if (!f) {
        treq_fail(r, CMQERR_INTERNAL, NULL);
        return;
    }
    enum cmq_err top = failed == n ? CMQERR_DELETE_ALL_FAILED : CMQERR_DELETE_PARTIAL;
    f->m.result = tcp_result_code(top);
    r->result = f->m.result;
    f->m.has_error = true;
    cmq_error_message(top, NULL, f->m.error, sizeof f->m.error);
    for (size_t i = 0; i < n; i++) {
        if (res->statuses[i] == CMQ_OK)
            continue;
        enum cmq_err e = be_status_row(act, res->statuses[i]);
        cmqtcp_MsgDeleteResult *d = &f->m.del_result[f->m.del_result_count++];
        d->receipt_handle = r->f.ids[i];
        d->err_code = tcp_result_code(e);
        cmq_error_message(e, NULL, d->err_msg, sizeof d->err_msg);
    }
    tconn_send(r->conn, f);
    free(f);
    treq_done(r);
}

static void on_done(void *arg, const struct be_result *res)
{
    struct treq *r = arg;
    if (r->conn->closed) { /* nobody to answer */
        treq_done(r);
        return;
    }
    if (res->err != CMQERR_OK) {
        treq_fail(r, res->err, NULL);
        return;
    }
    switch (r->cmd) {
    case cmqtcp_Cmd_CMD_TRANSACTION_CONFIRM: /* §9.6: the SDK drops it; libcmq waits for it */
        tconn_reply(r->conn, r->seqno, r->cmd, 0, NULL);
        treq_done(r);
        return;
    case cmqtcp_Cmd_CMD_SEND_MSG:
    case cmqtcp_Cmd_CMD_BATCH_SEND_MSG: answer_send(r, res); return;
    case cmqtcp_Cmd_CMD_PULL_MSG:
    case cmqtcp_Cmd_CMD_BATCH_PULL_MSG: answer_pull(r, res); return;
    default: answer_delete(r, res); return;
    }
}

/* ---------- requests ---------- */

static void do_send(struct treq *r, const cmq_QueueInfo *qi)
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
        treq_fail(r, CMQERR_MSG_BODY_EMPTY, NULL);
        return;
    }
    if (has_delay && !cmq_delay_ok(delay, r->conn->srv->lim.max_delay_s)) {
        treq_fail(r, CMQERR_DELAY_RANGE, NULL);
        return;
    }
    struct be_send_item items[CMQ_FRAME_BODIES_MAX];
    size_t total = 0;
    for (size_t i = 0; i < r->f.n_bodies; i++) {
        if (r->f.bodies[i].len == 0) {
            treq_fail(r, CMQERR_MSG_BODY_EMPTY, NULL);
            return;
        }
        if ((int64_t)r->f.bodies[i].len > qi->max_msg_size) {
            treq_fail(r, CMQERR_MSG_TOO_BIG, NULL);
            return;
        }
        total += r->f.bodies[i].len;
        items[i] = (struct be_send_item){(const char *)r->f.bodies[i].data, r->f.bodies[i].len,
                                         has_delay ? delay : 0, check_ms};
    }
    if (total > CMQ_BATCH_BYTES_MAX) {
        treq_fail(r, CMQERR_BATCH_TOO_BIG, NULL);
        return;
    }
    be_send(be_of(r), tcp_action_of(r->cmd), qi, items, r->f.n_bodies, r->conn->peer, on_done, r);
}

static void do_pull(struct treq *r, const cmq_QueueInfo *qi)
{
    const cmqtcp_TcpFrame *m = &r->f.m;
    cmq_ReceiveRequest q = cmq_ReceiveRequest_init_zero;
    q.queue_id = qi->num_id;
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
        wait = (int32_t)qi->polling_wait_seconds;
        if (wait > CMQ_POLL_WAIT_S_MAX)
            wait = CMQ_POLL_WAIT_S_MAX;
    }
    snprintf(q.consumer_addr, sizeof q.consumer_addr, "%s", r->conn->peer);
    be_queue_call(be_of(r), tcp_action_of(r->cmd), qi, cmq_StorageMsgType_STORAGE_MSG_RECEIVE,
                  cmq_ReceiveRequest_fields, &q, wait * 1000 + BE_STORAGE_TIMEOUT_MS, 0, on_done, r);
}

static void do_delete(struct treq *r, const cmq_QueueInfo *qi)
{
    uint64_t handles[CMQ_BATCH_MAX];
    size_t n;
    if (r->cmd == cmqtcp_Cmd_CMD_DELETE_MSG) {
        handles[0] = r->f.m.tcp_delete_msg.receipt_handle;
        n = 1;
    } else {
        if (r->f.n_ids == 0) {
            treq_fail(r, CMQERR_MISSING_PARAM, "receipt_handle_list");
            return;
        }
        n = r->f.n_ids;
        for (size_t i = 0; i < n; i++)
            handles[i] = r->f.ids[i];
    }
    for (size_t i = 0; i < n; i++)
        if (handles[i] == 0) {
            treq_fail(r, CMQERR_RECEIPT_HANDLE_FORMAT, NULL);
            return;
        }
    be_delete(be_of(r), tcp_action_of(r->cmd), qi, handles, n, on_done, r);
}

static void do_confirm(struct treq *r, const cmq_QueueInfo *qi)
{
    const cmqtcp_TransactionConfirm *t = &r->f.m.transaction_confirm;
    cmq_TxnConfirmRequest q = cmq_TxnConfirmRequest_init_zero;
    q.queue_id = qi->num_id;
    /* Both arrays are sized by their .options (16 each); a frame's count was
     * bounded by the decoder, and a confirm never carries more decisions
     * than the storage request holds. */
    _Static_assert(sizeof t->item / sizeof t->item[0] <= sizeof q.items / sizeof q.items[0],
                   "every decision of a TransactionConfirm fits the storage request");
    for (pb_size_t i = 0; i < t->item_count && i < sizeof t->item / sizeof t->item[0]; i++) {
        if (t->item[i].msg_id == 0 || (t->item[i].state != 1 && t->item[i].state != 2))
            continue; /* not a decision: nothing to apply */
        q.items[q.items_count].msg_id = t->item[i].msg_id;
        q.items[q.items_count].state = (uint32_t)t->item[i].state;
        q.items_count++;
    }
    if (q.items_count == 0) {
        tconn_reply(r->conn, r->seqno, r->cmd, 0, NULL);
        treq_done(r);
        return;
    }
    be_queue_call(be_of(r), tcp_action_of(r->cmd), qi, cmq_StorageMsgType_STORAGE_MSG_TXN_CONFIRM,
                  cmq_TxnConfirmRequest_fields, &q, 0, 0, on_done, r);
}

static void on_queue(void *arg, const cmq_QueueInfo *qi, const struct be_fault *f)
{
    struct treq *r = arg;
    if (r->conn->closed) {
        treq_done(r);
        return;
    }
    if (!qi) {
        treq_fault(r, f);
        return;
    }
    snprintf(r->queue, sizeof r->queue, "%s", qi->name);
    switch (r->cmd) {
    case cmqtcp_Cmd_CMD_SEND_MSG:
    case cmqtcp_Cmd_CMD_BATCH_SEND_MSG: do_send(r, qi); return;
    case cmqtcp_Cmd_CMD_PULL_MSG:
    case cmqtcp_Cmd_CMD_BATCH_PULL_MSG: do_pull(r, qi); return;
    case cmqtcp_Cmd_CMD_TRANSACTION_CONFIRM: do_confirm(r, qi); return;
    default: do_delete(r, qi); return;
    }
}

void tcp_op_queue(struct treq *r)
{
    int is_topic;
    const char *name = tcp_resource_of(r, &is_topic);
    if (!name || !name[0]) {
        treq_fail(r, CMQERR_MISSING_PARAM, "queue_name");
        return;
    }
    be_queue_get(be_of(r), r->conn->key.appid, name, 0, on_queue, r);
}
