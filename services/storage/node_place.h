/* node_place.h: the storage node's placement client (node_place.c).  The
 * node registers with metadata (node.id, rpc.listen, raft.listen) and
 * heartbeats every metadata.heartbeat_ms, reporting the partitions it leads;
 * each reply lists the partitions it holds a replica of, and when one is
 * unknown here (or a replica's endpoints are) it asks for the partition map
 * and opens the partitions it is given through n->open_partition.  A leader
 * that is not its partition's preferred leader hands leadership over when
 * the preferred node can take it (see balance_leader). */
#ifndef CMQ_STORAGE_NODE_PLACE_H
#define CMQ_STORAGE_NODE_PLACE_H

#include "hosted.h"
#include "evloop.h"

/* The heartbeat timer (arg: the node): sends one heartbeat unless one is in
 * flight, and re-arms itself. */
void node_place_heartbeat(struct evloop *loop, void *arg);

#endif
