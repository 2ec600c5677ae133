/* txnq.c: transaction check-backs to the gateways; see txnq.h. */
#include "txnq.h"

#include "log.h"
#include "push.pb.h"
#include "rpc.h"
#include "status.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TXNQ_GATEWAYS_MAX 8
#define TXNQ_TIMEOUT_MS 2000

static struct rpc_client *client(struct node *n)
{
    if (n->txnq_gw || !n->cfg->gateways[0])
        return n->txnq_gw;
    char list[sizeof n->cfg->gateways];
    memcpy(list, n->cfg->gateways, sizeof list);
    const char *eps[TXNQ_GATEWAYS_MAX];
    int k = 0;
    for (char *save, *ep = strtok_r(list, ",", &save); ep && k < TXNQ_GATEWAYS_MAX;
         ep = strtok_r(NULL, ",", &save)) {
        while (*ep == ' ')
            ep++;
        if (*ep)
            eps[k++] = ep;
    }
    if (k && rpc_client_open(svc_zctx(n->svc), eps, k, &n->txnq_gw) == CMQ_OK)
        svc_watch_client(n->svc, n->txnq_gw);
    else
        n->txnq_gw = NULL;
    return n->txnq_gw;
}

static void on_sent(void *arg, const struct rpc_result *res)
{
    (void)arg;
    if (res->status != CMQ_OK && res->status != CMQ_ESHUTDOWN)
        log_info("txn_query_failed", "status=%s", status_name(res->status));
}

void txnq_send(struct hosted *h, const struct qsm_result *res)
{
    struct rpc_client *c = client(h->n);
    for (uint32_t i = 0; i < res->n_txn; i++) {
        const struct qsm_txn_query *t = &res->txn[i];
        struct qsm_stats st;
        if (qsm_stats(h->qsm, t->queue_id, &st) != CMQ_OK)
            continue;
        log_info("txn_query", "partition=%u queue=%s msg_id=%" PRIu64 " attempt=%u gateways=%d",
                 h->id, st.name, t->msg_id, t->attempt, c ? rpc_client_npeers(c) : 0);
        if (!c)
            continue;
        cmq_TxnQueryRequest q = cmq_TxnQueryRequest_init_zero;
        snprintf(q.queue_name, sizeof q.queue_name, "%s", st.name);
        q.msg_id = t->msg_id;
        q.attempt = t->attempt;
        uint8_t *buf;
        size_t len;
        if (rpc_pb_encode(cmq_TxnQueryRequest_fields, &q, &buf, &len) != CMQ_OK)
            continue;
        for (int p = 0; p < rpc_client_npeers(c); p++) {
            struct rpc_opts o = {.timeout_ms = TXNQ_TIMEOUT_MS, .attempts = 1, .peer = p};
            (void)rpc_client_call(c, cmq_PushMsgType_PUSH_MSG_TXN_QUERY, buf, len, &o, on_sent,
                                  NULL);
        }
        free(buf);
    }
}

void txnq_close(struct node *n)
{
    rpc_client_close(n->txnq_gw);
    n->txnq_gw = NULL;
}
