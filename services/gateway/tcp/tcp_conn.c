/* tcp_conn.c: the CMQ TCP front end's connections and requests: lifetime
 * (references held by requests in flight), the write queue, answer frames
 * (tconn_*), a request's lifetime and its count in /metrics (treq_*), and
 * what a command is (its CMQ action and the queue or topic it names).  The
 * layer tcp_server.c (listener, auth, dispatch), tcp_ops.c, tcp_publish.c
 * and tcp_txn.c stand on; it calls none of them. */
#include "tcp_internal.h"

#include "backend.h"
#include "clock.h"
#include "log.h"
#include "metrics.h"
#include "status.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------- connection lifetime ---------- */

void server_maybe_free(struct tcp_server *s)
{
    if (s->closing && s->live == 0)
        free(s);
}

void conn_unref(struct tconn *c)
{
    if (--c->refs > 0)
        return;
    struct tcp_server *s = c->srv;
    free(c->wq);
    free(c->wfly);
    OPENSSL_cleanse(&c->key, sizeof c->key);
    free(c);
    s->live--;
    server_maybe_free(s);
}

void tconn_close(struct tconn *c, const char *why)
{
    if (c->closed)
        return;
    c->closed = 1;
    log_info("tcp_close", "peer=%s client_id=%s reason=%s inflight=%d", c->peer,
             c->client_id[0] ? c->client_id : "-", why, c->inflight);
    if (c->sock) {
        h2o_socket_read_stop(c->sock);
        h2o_socket_close(c->sock);
        c->sock = NULL;
    }
    /* off the server's list */
    if (c->prev)
        c->prev->next = c->next;
    else
        c->srv->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
    c->srv->n_conns--;
    conn_unref(c);
}

/* ---------- writing ---------- */

static void flush(struct tconn *c);

static void on_written(h2o_socket_t *sock, const char *err)
{
    struct tconn *c = sock->data;
    c->writing = 0;
    free(c->wfly);
    c->wfly = NULL;
    if (err) {
        tconn_close(c, "write_error");
        return;
    }
    if (c->wq_len)
        flush(c);
    else if (c->close_after_write)
        tconn_close(c, c->close_after_write_reason);
}

static void flush(struct tconn *c)
{
    if (c->closed || c->writing || c->wq_len == 0)
        return;
    c->wfly = c->wq;
    h2o_iovec_t buf = h2o_iovec_init(c->wfly, c->wq_len);
    c->wq = NULL;
    c->wq_len = c->wq_cap = 0;
    c->writing = 1;
    h2o_socket_write(c->sock, &buf, 1, on_written);
}

void tconn_send(struct tconn *c, struct cmq_frame *f)
{
    if (c->closed)
        return;
    uint8_t *buf;
    size_t len;
    if (cmq_frame_encode(f, &buf, &len) != CMQ_FRAME_OK) {
        log_error("tcp_encode_failed", "peer=%s seqno=%lld cmd=%d", c->peer,
                  (long long)f->m.seqno, (int)f->m.cmd);
        tconn_close(c, "encode_failed");
        return;
    }
    if (c->wq_len + len > c->wq_cap) {
        size_t cap = c->wq_cap ? c->wq_cap : 4096;
        while (cap < c->wq_len + len)
            cap *= 2;
        uint8_t *nb = realloc(c->wq, cap);
        if (!nb) {
            free(buf);
            tconn_close(c, "out_of_memory");
            return;
        }
        c->wq = nb;
        c->wq_cap = cap;
    }
    memcpy(c->wq + c->wq_len, buf, len);
    c->wq_len += len;
    free(buf);
    flush(c);
}

struct cmq_frame *tconn_answer_new(int64_t seqno, int32_t cmd)
{
    struct cmq_frame *f = malloc(sizeof *f);
    if (!f)
        return NULL;
    cmq_frame_init(f, seqno, cmd);
    f->m.has_result = true;
    return f;
}

void tconn_reply(struct tconn *c, int64_t seqno, int32_t cmd, int result, const char *error)
{
    struct cmq_frame *f = tconn_answer_new(seqno, cmd);
    if (!f) {
        tconn_close(c, "out_of_memory");
        return;
    }
    f->m.result = result;
    if (error && error[0]) {
        f->m.has_error = true;
        snprintf(f->m.error, sizeof f->m.error, "%s", error);
    }
    tconn_send(c, f);
    free(f);
}

void tconn_reply_err(struct tconn *c, int64_t seqno, int32_t cmd, enum cmq_err e, const char *arg)
{
    char msg[256];
    cmq_error_message(e, arg, msg, sizeof msg);
    tconn_reply(c, seqno, cmd, tcp_result_code(e), msg);
}

int tcp_result_code(enum cmq_err e)
{
    /* §7.3: the SDK knows "no message" only as 10200 (the HTTP API's module
     * code), not the HTTP top-level 7000. */
    if (e == CMQERR_NO_MESSAGE)
        return TCP_NO_MESSAGE;
    return cmq_error_code(e);
}

/* ---------- requests ---------- */

struct treq *treq_new(struct tconn *c, const uint8_t *payload, size_t len, const cmqtcp_TcpHead *h)
{
    struct treq *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->payload = malloc(len ? len : 1);
    if (!r->payload) {
        free(r);
        return NULL;
    }
    memcpy(r->payload, payload, len);
    r->payload_len = len;
    r->conn = c;
    r->seqno = h->seqno;
    r->cmd = h->cmd;
    r->start_ns = clock_mono_ns();
    c->refs++;
    c->inflight++;
    c->srv->inflight++;
    return r;
}

/* Closes `c` once what was queued for it is written. */
void close_when_flushed(struct tconn *c, const char *why)
{
    if (c->closed)
        return;
    if (!c->writing && c->wq_len == 0) {
        tconn_close(c, why);
        return;
    }
    c->close_after_write = 1;
    c->close_after_write_reason = why;
}

void treq_done(struct treq *r)
{
    struct tconn *c = r->conn;
    struct be_loop *be = c->srv->env.be;
    uint64_t now = clock_mono_ns();
    if (be->metrics)
        metrics_request_proto(be->metrics, METRICS_TCP, tcp_action_of(r->cmd), r->result,
                              now > r->start_ns ? (now - r->start_ns) / 1000 : 0);
    c->inflight--;
    c->srv->inflight--;
    free(r->payload);
    free(r);
    if (c->srv->draining && c->inflight == 0)
        close_when_flushed(c, "stopping");
    conn_unref(c);
}

void treq_fail(struct treq *r, enum cmq_err e, const char *arg)
{
    r->result = tcp_result_code(e);
    tconn_reply_err(r->conn, r->seqno, r->cmd, e, arg);
    treq_done(r);
}

void treq_fault(struct treq *r, const struct be_fault *f)
{
    if (f->err != CMQERR_COUNT_) {
        treq_fail(r, f->err, f->arg[0] ? f->arg : NULL);
        return;
    }
    char msg[300];
    snprintf(msg, sizeof msg, "(%d)%s", f->module, f->reason);
    r->result = f->code;
    tconn_reply(r->conn, r->seqno, r->cmd, f->code, msg);
    treq_done(r);
}

/* ---------- what a request names ---------- */

enum cmq_action tcp_action_of(int32_t cmd)
{
    switch (cmd) {
    case cmqtcp_Cmd_CMD_SEND_MSG:
    case cmqtcp_Cmd_CMD_TRANSACTION_CONFIRM: return CMQ_ACTION_SEND_MESSAGE;
    case cmqtcp_Cmd_CMD_BATCH_SEND_MSG: return CMQ_ACTION_BATCH_SEND_MESSAGE;
    case cmqtcp_Cmd_CMD_PULL_MSG: return CMQ_ACTION_RECEIVE_MESSAGE;
    case cmqtcp_Cmd_CMD_BATCH_PULL_MSG: return CMQ_ACTION_BATCH_RECEIVE_MESSAGE;
    case cmqtcp_Cmd_CMD_DELETE_MSG: return CMQ_ACTION_DELETE_MESSAGE;
    case cmqtcp_Cmd_CMD_BATCH_DELETE_MSG: return CMQ_ACTION_BATCH_DELETE_MESSAGE;
    case cmqtcp_Cmd_CMD_PUBLISH_MSG: return CMQ_ACTION_PUBLISH_MESSAGE;
    case cmqtcp_Cmd_CMD_BATCH_PUBLISH_MSG: return CMQ_ACTION_BATCH_PUBLISH_MESSAGE;
    default: return CMQ_ACTION_NONE;
    }
}

const char *tcp_resource_of(const struct treq *r, int *is_topic)
{
    const cmqtcp_TcpFrame *m = &r->f.m;
    *is_topic = 0;
    switch (r->cmd) {
    case cmqtcp_Cmd_CMD_SEND_MSG: return m->has_tcp_send_msg ? m->tcp_send_msg.queue_name : NULL;
    case cmqtcp_Cmd_CMD_BATCH_SEND_MSG:
        return m->has_tcp_batch_send_msg ? m->tcp_batch_send_msg.queue_name : NULL;
    case cmqtcp_Cmd_CMD_PULL_MSG: return m->has_tcp_pull_msg ? m->tcp_pull_msg.queue_name : NULL;
    case cmqtcp_Cmd_CMD_BATCH_PULL_MSG:
        return m->has_tcp_batch_pull_msg ? m->tcp_batch_pull_msg.queue_name : NULL;
    case cmqtcp_Cmd_CMD_DELETE_MSG: return m->has_tcp_delete_msg ? m->tcp_delete_msg.queue_name : NULL;
    case cmqtcp_Cmd_CMD_BATCH_DELETE_MSG:
        return m->has_tcp_batch_delete_msg ? m->tcp_batch_delete_msg.queue_name : NULL;
    case cmqtcp_Cmd_CMD_TRANSACTION_CONFIRM:
        return m->has_transaction_confirm ? m->transaction_confirm.queue_name : NULL;
    case cmqtcp_Cmd_CMD_PUBLISH_MSG:
        *is_topic = 1;
        return m->has_tcp_publish_msg ? m->tcp_publish_msg.topic_name : NULL;
    case cmqtcp_Cmd_CMD_BATCH_PUBLISH_MSG:
        *is_topic = 1;
        return m->has_tcp_batch_publish_msg ? m->tcp_batch_publish_msg.topic_name : NULL;
    default: return NULL;
    }
}
