/* topics.h: topics on a storage node: the requests (publish, subscription
 * sync, drop, stats) over the replicated topic state machine (tsm.h), and
 * the fan-out that the leader of each topic's partition drives.
 *
 * Fan-out: for every subscription of every topic on a partition this node
 * leads, at most one delivery is in flight.  It is either the due retries
 * (one message) or the next messages after the subscription's cursor that
 * pass its filter (up to 16 for a queue, one for HTTP).  Queue
 * subscriptions append to the target queue's partition leader (a storage
 * SendRequest over every storage node, following not-leader hints); HTTP
 * subscriptions are pushed by a gateway (PushRequest, proto/push.proto).
 * The outcome becomes a TopicProgress entry (cursor, retries, counters); the
 * subscription takes its next delivery only once that entry is applied, so
 * a new leader continues from the replicated cursor (at least once: a
 * delivery whose progress entry was lost is delivered again).
 *
 * Retry times come from tsm_retry_delay_ms scaled by
 * topics.retry_scale_permille and are checked on every raft tick.
 */
#ifndef CMQ_STORAGE_TOPICS_H
#define CMQ_STORAGE_TOPICS_H

#include "hosted.h"

#include <stdbool.h>

int topics_attach(struct hosted *h);
void topics_detach(struct hosted *h);
/* Applies a committed topic command (cmdcodec_is_topic(v->kind)); `v` is the
 * host's peek of the entry (borrowed, NULL: tsm peeks it). */
struct cmdcodec_view;
int topics_apply(struct hosted *h, const struct raft_entry *e, const struct cmdcodec_view *v);
/* 1 when the request was a topic request (answered or kept), else 0. */
int topics_handle(struct node *n, struct rpc_call *call);
/* Every raft tick: starts due deliveries. */
void topics_tick(struct node *n);
/* Starts due deliveries soon (a scheduler FIRE for a retry, timers.c). */
void topics_wake(struct node *n);
/* Ends pending pushes (ESHUTDOWN) and frees the fan-out state; call at node
 * close while the partitions still exist. */
void topics_close(struct node *n);

/* Fills the tags and routing key of the trace's PUBLISHED events (n events,
 * cmq_TraceEvent) from their Publish entries: the index keeps only ids. */
struct _cmq_TraceEvent;
void topics_trace_publish(struct hosted *h, struct _cmq_TraceEvent *ev, size_t n);

#endif
