/* partition_xfer.h: the leader side of a snapshot install (partition_xfer.c)
 * and the types an install chunk crosses the wire with.  partition.h
 * includes it; only partition.c calls the xfer_* functions. */
#ifndef CMQ_STORAGE_PARTITION_XFER_H
#define CMQ_STORAGE_PARTITION_XFER_H

#include "raft.h"
#include "seglog.h"
#include "snapfile.h"

#include <stdint.h>

/* An install chunk's bounds (partition.h, "Limits that cross the wire"). */
#define PARTITION_CHUNK_BYTES_MAX (1u << 20)
#define PARTITION_CHUNK_ENTRIES_MAX 256u

/* Sends `m` (borrowed for the call) to node m->to for partition `id`. */
typedef void partition_send_fn(void *arg, uint32_t partition_id, const struct raft_msg *m);
/* One install chunk (leader -> follower: entries from `next`) or its answer
 * (follower -> leader, ack = 1: the next index it wants; > snap_index when it
 * holds them all).  Entries are borrowed for the call. */
struct partition_chunk {
    uint64_t from, to, term;
    uint64_t snap_index, snap_term, first_index;
    uint64_t next;
    int ack;
    uint32_t n_entries;
    const struct raft_entry *entries;
};
typedef void partition_chunk_fn(void *arg, uint32_t partition_id, const struct partition_chunk *c);

/* Leader side of an install: one per follower being fed. */
struct xfer {
    uint64_t peer;
    uint64_t snap_index, snap_term, first_index;
    uint64_t next;         /* first entry of the chunk in flight */
    uint32_t idle_ticks;
    int complete;          /* the follower holds [first_index, snap_index] */
};

/* What the leader side reads of its partition (set at open; the log
 * pointer changes when an install swaps the log). */
struct xfer_ctx {
    uint32_t id;                   /* partition id */
    uint64_t node_id;              /* this node's raft id */
    struct raft *raft;
    struct seglog *log;
    partition_send_fn *send;
    partition_chunk_fn *send_chunk;
    void *arg;
};

/* Reads entry `index` of `log` into a malloc'd *buf (the caller frees):
 * CMQ_OK, CMQ_ENOTFOUND, CMQ_ENOMEM, or the log's status. */
int partition_read_raw(struct seglog *log, uint64_t index, uint8_t **buf, struct seglog_entry *e);

/* Raft wants to send SNAPSHOT `m` (snapshot `snap`, Raft's current one):
 * first the follower gets the entries the image reads back, then `m`.
 * xfers: RAFT_MAX_NODES slots. */
void xfer_snapshot_msg(struct xfer *xfers, const struct xfer_ctx *c, const struct raft_msg *m,
                       const struct snap_meta *snap);
/* A follower's answer to a chunk: the next chunk, or SNAPSHOT when it holds
 * them all. */
void xfer_on_ack(struct xfer *xfers, const struct xfer_ctx *c, const struct partition_chunk *ch);
/* Once per raft tick: resends silent chunks, gives up on dead transfers. */
void xfer_tick(struct xfer *xfers, const struct xfer_ctx *c);

#endif
