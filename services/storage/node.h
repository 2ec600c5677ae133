/* node.h: a storage node: the partitions it hosts and their transport.
 *
 * Owns: the partitions (each a Raft group with its segment log), one ZeroMQ
 * ROUTER on raft.listen for Raft traffic from peer nodes, one DEALER client per
 * peer for outgoing Raft messages, and the tick timer.  Requests from gateways
 * arrive on the svc's ROUTER (rpc.listen).
 *
 * Placement today is static: every node hosts partitions 1..partitions.count,
 * each replicated on every node listed in raft.peers (the dev cluster's three).
 */
#ifndef CMQ_STORAGE_NODE_H
#define CMQ_STORAGE_NODE_H

#include "config.h"
#include "svc.h"

#define NODE_MAX_PARTITIONS 64
#define NODE_PEERS_MAX 2048

struct storage_cfg {
    struct svc_common_cfg common;
    char data_dir[256];
    char raft_listen[RPC_ENDPOINT_MAX];
    char metadata[RPC_ENDPOINT_MAX];
    char scheduler[RPC_ENDPOINT_MAX];
    int64_t raft_id;
    char raft_peers[NODE_PEERS_MAX];
    char rpc_peers[NODE_PEERS_MAX];
    int64_t partitions;
    int64_t tick_ms;
    int64_t election_ticks;
    int64_t segment_bytes;
};

extern const struct config_key storage_config_keys[];
extern const size_t storage_config_n_keys;

struct node;

/* Opens every partition under cfg->data_dir (recovering their logs), binds
 * raft.listen, connects to the peers and starts ticking, all on `svc`'s loop.
 * `svc` and `cfg` are borrowed for the node's life.  Logs and returns a status
 * on failure. */
int node_open(struct svc *svc, const struct storage_cfg *cfg, struct node **out);
/* Stops the partitions (their writers finish what was submitted).  Accepts NULL. */
void node_close(struct node *n);

#endif
