/* tcp_txn.c: transaction check-backs (cmq-tcp-protocol §9.3) on the TCP
 * listener.
 *
 * A queue's partition leader sends TxnQueryRequest (proto/push.proto,
 * services/storage/txnq.c) to the gateway's rpc server (loop 0); the query
 * is handed to every loop's tcp_server through an h2o multithread queue,
 * and each loop sends CMQ_TRANSACTION_QUERY (1042) on one of its own
 * connections: the one that carried the half message if it is still open
 * (each connection remembers its last TCP_TXN_IDS half-message ids), else
 * the first authenticated connection that sent half messages to that queue
 * (the connection's last such queue).  With several loops, more than one
 * loop may ask (one connection each); confirms are idempotent.  The
 * producer's answer is an ordinary confirm (1041, tcp_ops.c). */
#include "tcp_internal.h"

#include "log.h"
#include "push.pb.h"
#include "rpc.h"
#include "status.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct txn_msg {
    h2o_multithread_message_t super;
    uint64_t msg_id;
    uint32_t attempt;
    char queue[65]; /* TransactionQuery.queue_name's bound */
};

void tcp_txn_note(struct tconn *c, const char *queue, const uint64_t *ids, size_t n)
{
    snprintf(c->txn_queue, sizeof c->txn_queue, "%s", queue);
    for (size_t i = 0; i < n; i++)
        c->txn_ids[c->txn_next++ % TCP_TXN_IDS] = ids[i];
}

static struct tconn *pick(struct tcp_server *s, const char *queue, uint64_t id)
{
    struct tconn *by_queue = NULL;
    for (struct tconn *c = s->conns; c; c = c->next) {
        if (!c->authed || c->closed)
            continue;
        for (unsigned i = 0; i < TCP_TXN_IDS; i++)
            if (c->txn_ids[i] == id)
                return c;
        if (!by_queue && strcmp(c->txn_queue, queue) == 0)
            by_queue = c;
    }
    return by_queue;
}

static void ask(struct tcp_server *s, const struct txn_msg *m)
{
    struct tconn *c = pick(s, m->queue, m->msg_id);
    if (!c)
        return;
    struct cmq_frame *f = malloc(sizeof *f);
    if (!f)
        return;
    cmq_frame_init(f, s->txn_seqno++, cmqtcp_Cmd_CMD_TRANSACTION_QUERY);
    f->m.has_transaction_query = true;
    snprintf(f->m.transaction_query.queue_name, sizeof f->m.transaction_query.queue_name, "%s",
             m->queue);
    f->m.transaction_query.msg_id = m->msg_id;
    tconn_send(c, f);
    free(f);
    s->txn_queries++;
    log_info("tcp_txn_query", "peer=%s client_id=%s queue=%s msg_id=%" PRIu64 " attempt=%u",
             c->peer, c->client_id[0] ? c->client_id : "-", m->queue, m->msg_id, m->attempt);
}

static void on_msgs(h2o_multithread_receiver_t *rx, h2o_linklist_t *msgs)
{
    struct tcp_server *s = H2O_STRUCT_FROM_MEMBER(struct tcp_server, txn_rx, rx);
    while (!h2o_linklist_is_empty(msgs)) {
        struct txn_msg *m = H2O_STRUCT_FROM_MEMBER(struct txn_msg, super.link, msgs->next);
        h2o_linklist_unlink(&m->super.link);
        if (!s->closing)
            ask(s, m);
        free(m);
    }
}

void tcp_txn_open(struct tcp_server *s)
{
    s->txn_seqno = (int64_t)1 << 40; /* §9.3: any value; the client does not match it */
    s->txn_q = h2o_multithread_create_queue(s->env.loop);
    if (s->txn_q)
        h2o_multithread_register_receiver(s->txn_q, &s->txn_rx, on_msgs);
}

void tcp_txn_close(struct tcp_server *s)
{
    if (!s->txn_q)
        return;
    /* no sender is left (the rpc server stopped with the loops): drop what
     * was not received */
    while (!h2o_linklist_is_empty(&s->txn_rx._messages)) {
        struct txn_msg *m =
            H2O_STRUCT_FROM_MEMBER(struct txn_msg, super.link, s->txn_rx._messages.next);
        h2o_linklist_unlink(&m->super.link);
        free(m);
    }
    h2o_multithread_unregister_receiver(s->txn_q, &s->txn_rx);
    h2o_multithread_destroy_queue(s->txn_q);
    s->txn_q = NULL;
}

void tcp_server_txn_query(struct tcp_server *s, const char *queue, uint64_t msg_id,
                          uint32_t attempt)
{
    if (!s || !s->txn_q || strlen(queue) >= sizeof((struct txn_msg *)0)->queue)
        return;
    struct txn_msg *m = calloc(1, sizeof *m);
    if (!m)
        return;
    m->msg_id = msg_id;
    m->attempt = attempt;
    snprintf(m->queue, sizeof m->queue, "%s", queue);
    h2o_multithread_send_message(&s->txn_rx, &m->super);
}

void tcp_txn_rpc(struct tcp_server *const *servers, int n, struct rpc_call *call)
{
    cmq_TxnQueryRequest q = cmq_TxnQueryRequest_init_zero;
    if (rpc_call_decode(call, cmq_TxnQueryRequest_fields, &q) != CMQ_OK || !q.msg_id ||
        !q.queue_name[0]) {
        rpc_reply_status(call, CMQ_EINVAL, "bad transaction query");
        return;
    }
    for (int i = 0; i < n; i++)
        tcp_server_txn_query(servers[i], q.queue_name, q.msg_id, q.attempt);
    rpc_reply_status(call, CMQ_OK, NULL);
}
