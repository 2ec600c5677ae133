/* node.h: a storage node: the partitions it hosts and their transport.
 *
 * Owns: the partitions (each a Raft group with its segment log), one ZeroMQ
 * ROUTER on raft.listen for Raft traffic from peer nodes, one DEALER client per
 * peer node for outgoing Raft messages, a client to metadata, and the tick and
 * heartbeat timers.  Requests from gateways arrive on the svc's ROUTER
 * (rpc.listen).
 *
 * Placement comes from metadata: the node registers (node.id, rpc.listen,
 * raft.listen) and heartbeats, reporting the partitions it leads; each reply
 * lists the partitions it holds a replica of, with their replicas' node ids,
 * and the partition map gives every node's endpoints.  A new partition is
 * created on disk with its membership (the `members` file) so a restart
 * reopens it before metadata answers.  Raft ids are derived from node ids
 * (raft_id_of), so every replica computes the same membership.
 */
#ifndef CMQ_STORAGE_NODE_H
#define CMQ_STORAGE_NODE_H

#include "storage_cfg.h"

struct node;

/* raft_id_of (node_raft.h): the Raft id of a node id. */

/* Opens every partition under cfg->data_dir (recovering their logs), binds
 * raft.listen, connects to the peers and starts ticking, all on `svc`'s loop.
 * `svc` and `cfg` are borrowed for the node's life.  Logs and returns a status
 * on failure. */
int node_open(struct svc *svc, const struct storage_cfg *cfg, struct node **out);
/* Stops the partitions (their writers finish what was submitted).  Accepts NULL. */
void node_close(struct node *n);

#endif
