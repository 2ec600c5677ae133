/* storage_cfg.h: the storage node's configuration (one table of keys,
 * storage_cfg.c) and the bounds sized from it.  A leaf: every room of the
 * node may include it. */
#ifndef CMQ_STORAGE_CFG_H
#define CMQ_STORAGE_CFG_H

#include "config.h"
#include "svc.h"

#define NODE_MAX_PARTITIONS 64

struct storage_cfg {
    struct svc_common_cfg common;
    char data_dir[256];
    char raft_listen[RPC_ENDPOINT_MAX];
    char metadata[RPC_ENDPOINT_MAX];
    char scheduler[RPC_ENDPOINT_MAX];
    int64_t heartbeat_ms;
    char advertise_rpc[RPC_ENDPOINT_MAX];
    char advertise_raft[RPC_ENDPOINT_MAX];
    int64_t tick_ms;
    int64_t election_ticks;
    int64_t segment_bytes;
    int64_t sched_fallback_ms;
    char gateways[8 * RPC_ENDPOINT_MAX];
    int64_t retry_scale_permille;
    int64_t snapshot_entries;
    int64_t snapshot_bytes;
    int64_t fault_unsynced; /* test only: file_fault_unsynced_enable() at start */
};

extern const struct config_key storage_config_keys[];
extern const size_t storage_config_n_keys;

#endif
