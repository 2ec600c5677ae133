/* timers.h: a storage node's side of cmq-scheduler (docs/scheduler.md §7).
 *
 * Each partition this node leads keeps ONE timer in the scheduler: the
 * state machine's next due time (qsm_next_due_ms: the earliest delayed
 * message, lease expiry, retention or dead-letter TTL deadline, or work a
 * Tick left), or a topic subscription's next retry when earlier
 * (tsm_next_due_ms; its FIRE wakes topics.c's fan-out).  When it fires, the leader proposes a Tick (queues.c), which
 * applies everything due by the leader's clock, and registers the next due
 * time.  Why one timer per partition and not one per message: the Tick
 * already handles every due thing of the partition in one entry, so per
 * message timers would only multiply scheduler memory (O(messages) instead
 * of O(partitions)) and registration traffic, for the same entries in the
 * log.  docs/scheduler.md §7 has the rest.
 *
 * Owns: one rpc client to scheduler.endpoint and the per-partition
 * registration state (in struct hosted).  Soft state only: on becoming
 * leader, and whenever the scheduler's instance changes (a restart), the
 * timer is registered again with replace = true.  A dead scheduler degrades
 * latency, not correctness: queues_tick falls back to proposing a Tick when
 * the due time passed by `scheduler.fallback_ms` (or at once while
 * registrations fail).
 */
#ifndef CMQ_STORAGE_TIMERS_H
#define CMQ_STORAGE_TIMERS_H

#include "hosted.h"

/* Opens the client to the scheduler (on the node's svc loop). */
int timers_open(struct node *n);
/* Closes it (pending requests end without effect).  Accepts a node without one. */
void timers_close(struct node *n);

/* Once per raft tick, per partition: registers the partition's next due time
 * when it moved earlier, the term changed or the scheduler restarted; cancels
 * everything (best effort) when leadership was lost. */
void timers_sync(struct hosted *h);
/* Whether the scheduler holds a timer for `h` at or before `due_ms` (so the
 * leader need not poll for it). */
int timers_covered(const struct hosted *h, uint64_t due_ms);

/* Handles SCHED_MSG_FIRE; returns 1 when the call was taken. */
int timers_handle(struct node *n, struct rpc_call *call);

#endif
