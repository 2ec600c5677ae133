/* dlq.h: delivers a partition's dead-letter moves (docs/queue-state-machine.md
 * §8).  The state machine decides moves and keeps them pending
 * (qsm_dlq_pending) until a DlqDelivered entry acknowledges them; the leader
 * appends each to its DLQ through forward_send with dedup key = the source
 * msg id and a DeadLetterOrigin, then proposes DlqDelivered.  A new leader
 * starts over from the pending list: appends already made are answered from
 * the DLQ's dedup window, so nothing is lost and nothing is doubled. */
#ifndef CMQ_STORAGE_DLQ_H
#define CMQ_STORAGE_DLQ_H

#include "hosted.h"

/* Starts deliveries of pending moves and acknowledges finished ones; on a
 * partition this node does not lead (or has not caught up in its term) it
 * forgets its in-flight state.  Call every raft tick and after new moves. */
void dlq_pump(struct hosted *h);
/* Frees the partition's pump (late callbacks find nothing). */
void dlq_detach(struct hosted *h);

#endif
