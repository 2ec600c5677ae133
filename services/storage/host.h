/* host.h: the partition host.  Between node.c (placement, Raft transport,
 * opening and repairing partitions) and the feature modules (queues.c,
 * topics.c, timers.c, dlq.c, txnq.c, forward.c), it owns what concerns every
 * hosted partition as a whole:
 *
 *   - the apply dispatch: each committed entry goes to the topic or the
 *     queue state machine, then to its effects on the leader (dead-letter
 *     moves, transaction check-backs, waking parked receives);
 *   - the snapshot image framing: one image holds both state machines
 *     ("PIMG", the queue image's length, the queue image, the topic image);
 *   - the tick: per partition, parked receives, the trace flush, the
 *     scheduler timer, the dead-letter pump and the fallback Tick;
 *   - request routing: a table from request type to the module answering it;
 *   - the features' state hung off each struct hosted (host_attach/detach)
 *     and the callbacks they use to reach each other (struct host_ops).
 *
 * The features are leaves: they include hosted.h, never host.h, node.h or
 * each other's headers.  Single-threaded, on the node's loop. */
#ifndef CMQ_STORAGE_HOST_H
#define CMQ_STORAGE_HOST_H

#include "hosted.h"

/* Opens the node-wide parts of the features (scheduler client, forwarder)
 * and sets n->ops.  Logs and returns a status on failure. */
int host_open(struct node *n);
/* Ends what the features have in flight toward other processes (forwarded
 * sends, topic pushes, check-backs), while partitions still exist. */
void host_quiesce(struct node *n);
/* Closes the node-wide parts, after every partition is detached. */
void host_close(struct node *n);

/* Creates the features' state on h (h->p open); on failure the caller
 * closes the partition, then calls host_detach. */
int host_attach(struct hosted *h);
/* Drops the features' state on h (answering what waits on it).  Accepts a
 * half-attached h. */
void host_detach(struct hosted *h);

/* Partition callbacks (partition.h), `arg` the node. */
int host_apply(void *arg, struct partition *p, const struct raft_entry *e, void **result);
void host_release(void *arg, void *result);
int host_image(void *arg, struct partition *p, uint8_t **image, size_t *len,
               uint64_t *first_needed);
int host_restore(void *arg, struct partition *p, const uint8_t *image, size_t len);

/* Once per raft tick, after the partitions ticked. */
void host_tick(struct node *n);
/* Answers a request from a gateway, the scheduler or a tool: 1 when a
 * module took it, 0 for a type no module serves. */
int host_route(struct node *n, struct rpc_call *call);
/* svc hooks: stop (end long polls), busy (requests waiting for entries);
 * `arg` the node. */
void host_stop(void *arg);
int host_busy(void *arg);

#endif
