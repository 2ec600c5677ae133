/* queues.h: queue requests from gateways, served by the queue state machine
 * (qsm.h) of the partition that holds the queue.
 *
 * A request that changes state becomes a StorageCommand proposed on the
 * partition's Raft group, stamped with the leader's wall clock; it is answered
 * when its entry is applied, i.e. after a majority has it on disk.  A receive
 * that finds nothing waits at the leader ("parked") until a send to the queue
 * is applied, a Tick makes a delayed message visible, or its wait ends.
 * Followers answer CMQ_ENOTLEADER with the leader's rpc endpoint.
 *
 * A leaf under the partition host (host.h): the host dispatches applied
 * entries, ticks and requests here; this module reaches the others only
 * through n->ops.
 */
#ifndef CMQ_STORAGE_QUEUES_H
#define CMQ_STORAGE_QUEUES_H

#include "hosted.h"

/* Creates the partition's state machine (reading entries back through the
 * partition's segment log). */
int queues_attach(struct hosted *h);
/* Answers parked receives with CMQ_ESHUTDOWN and frees the state machine. */
void queues_detach(struct hosted *h);

/* Applies a committed queue entry to h's state machine (the result in
 * h->res, reset by the host); a failed state machine is latched
 * (hosted_failed).  Returns qsm_apply's status. */
struct cmdcodec_view;
int queues_apply(struct hosted *h, const struct raft_entry *e, const struct cmdcodec_view *v);
/* Proposes the receives parked on `h` (for `queue_id`, or every queue when
 * 0) that would now find a message.  Safe inside apply. */
void queues_wake(struct hosted *h, uint64_t queue_id);

/* Handles a request if it is a queue request (STORAGE_MSG_*): returns 1 when
 * the call was taken (answered now or later), 0 otherwise. */
int queues_handle(struct node *n, struct rpc_call *call);
/* Once per raft tick for h: ends expired long polls, hands parked polls of
 * lost leaderships back, flushes the trace index. */
void queues_tick(struct hosted *h);
/* Proposes a Tick on a partition this node leads (one at a time):
 * CMQ_OK, CMQ_EBUSY (one is in flight), CMQ_ENOTLEADER, ... */
int queues_propose_tick(struct hosted *h);
/* svc stop hook: ends every parked long poll now (as empty). */
void queues_stop(void *arg);
/* svc busy check: proposals still waiting for their entries. */
int queues_busy(void *arg);

#endif
