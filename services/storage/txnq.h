/* txnq.h: transaction check-backs (cmq-tcp-protocol §9.3) from a queue's
 * partition leader to the gateways.
 *
 * The queue state machine decides when a half message is due for a
 * check-back (a Tick lists it in qsm_result.txn, docs/queue-state-machine.md
 * §10); storage cannot reach the producer's TCP connection, so the leader
 * sends a TxnQueryRequest (proto/push.proto) to every configured gateway
 * (gateway.endpoints) and each sends CMQ_TRANSACTION_QUERY (1042) on a
 * connection of the producer, if it has one.  Fire and forget: a lost query
 * is the next attempt's business (the attempts are replicated state). */
#ifndef CMQ_STORAGE_TXNQ_H
#define CMQ_STORAGE_TXNQ_H

#include "hosted.h"
#include "qsm.h"

/* On the leader, after applying an entry whose result lists check-backs. */
void txnq_send(struct hosted *h, const struct qsm_result *res);
/* Ends the gateway client (node_close). */
void txnq_close(struct node *n);

#endif
