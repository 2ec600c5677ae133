/* node_raft.h: the storage node's Raft transport (node_raft.c): the peers
 * (struct peer in hosted.h, one DEALER each to their raft.listen), the
 * partition send callbacks that carry Raft messages and install chunks to
 * them, and the handler of raft.listen that steps what arrives into its
 * partition.  Messages are fire-and-forget: Raft and the install resend. */
#ifndef CMQ_STORAGE_NODE_RAFT_H
#define CMQ_STORAGE_NODE_RAFT_H

#include "hosted.h"

/* The Raft id of a storage node: FNV-1a 64 of its node id (never 0), FROZEN
 * (common/base/hash.h): it is in every Raft configuration on disk.  Node
 * ids are unique in the cluster (metadata enforces it); a collision of two
 * hashes is refused at partition creation rather than silently merged. */
uint64_t raft_id_of(const char *node_id);

/* Records (or refreshes) a peer node; connects to its raft endpoint once
 * known (an endpoint that changes is kept until restart).  Strings copied.
 * NULL when the table is full or the raft id collides with another node's. */
struct peer *node_peer_upsert(struct node *n, const char *node_id, const char *raft_ep,
                              const char *rpc_ep);

/* partition_send_fn and partition_chunk_fn (partition.h); arg: the node. */
void node_raft_send(void *arg, uint32_t partition_id, const struct raft_msg *m);
void node_raft_send_chunk(void *arg, uint32_t partition_id, const struct partition_chunk *c);
/* The rpc handler of raft.listen (arg: the node). */
void node_raft_handler(struct rpc_server *srv, struct rpc_call *call, void *arg);

#endif
