/* storage_cfg.c: the storage node's configuration keys, one row each with
 * its type, default, range and help (config.h parses, checks and dumps
 * them); see storage_cfg.h. */
#include "storage_cfg.h"

const struct config_key storage_config_keys[] = {
    SVC_COMMON_KEYS(struct storage_cfg, "storage-1", "tcp://127.0.0.1:17120"),
    CONFIG_STR_KEY("data.dir", struct storage_cfg, data_dir, "var/dev/storage-1",
                   "directory holding this node's partitions (segment files)"),
    CONFIG_STR_KEY("raft.listen", struct storage_cfg, raft_listen, "tcp://127.0.0.1:17121",
                   "ZeroMQ endpoint for raft traffic from peer storage nodes"),
    CONFIG_INT_KEY("raft.tick_ms", struct storage_cfg, tick_ms, "50", 5, 10000,
                   "length of one raft tick; a leader heartbeats every tick (docs/raft.md §10)"),
    CONFIG_INT_KEY("raft.election_ticks", struct storage_cfg, election_ticks, "10", 3, 1000,
                   "election timeout in ticks (randomized in [e, 2e): 0.5-1 s by default); "
                   "failover takes about one timeout"),
    CONFIG_INT_KEY("data.segment_bytes", struct storage_cfg, segment_bytes, "67108864", 4194304,
                   1073741824, "size of each preallocated segment file (at least 4 MiB: "
                   "one record may be 2 MiB)"),
    CONFIG_INT_KEY("snapshot.entries", struct storage_cfg, snapshot_entries, "10000", 0,
                   100000000, "applied log entries between two snapshots of a partition "
                   "(0: never snapshot; the raft core keeps one to two of these in memory)"),
    CONFIG_INT_KEY("snapshot.bytes", struct storage_cfg, snapshot_bytes, "33554432", 0,
                   4294967296, "applied payload bytes that also trigger a snapshot (0: no bound)"),
    CONFIG_STR_KEY("metadata.endpoint", struct storage_cfg, metadata, "tcp://127.0.0.1:17100",
                   "the metadata service (registration, heartbeats, placement)"),
    CONFIG_INT_KEY("metadata.heartbeat_ms", struct storage_cfg, heartbeat_ms, "1000", 50, 60000,
                   "how often the node heartbeats to metadata"),
    CONFIG_STR_KEY("scheduler.endpoint", struct storage_cfg, scheduler, "tcp://127.0.0.1:17110",
                   "the scheduler service (empty: none; leaders poll every raft tick)"),
    CONFIG_INT_KEY("scheduler.fallback_ms", struct storage_cfg, sched_fallback_ms, "1000", 0,
                   600000, "a leader proposes a Tick itself when a due time it registered "
                   "with the scheduler passed by this much without a fire"),
    CONFIG_STR_KEY("cluster.advertise_rpc", struct storage_cfg, advertise_rpc, "",
                   "rpc endpoint other processes use to reach this node (empty: rpc.listen)"),
    CONFIG_STR_KEY("cluster.advertise_raft", struct storage_cfg, advertise_raft, "",
                   "raft endpoint peers use to reach this node (empty: raft.listen)"),
    CONFIG_STR_KEY("gateway.endpoints", struct storage_cfg, gateways, "",
                   "comma-separated gateway rpc endpoints that push topic messages to HTTP "
                   "subscriptions (empty: HTTP subscriptions are not served)"),
    CONFIG_INT_KEY("topics.retry_scale_permille", struct storage_cfg, retry_scale_permille, "1000",
                   1, 1000, "topic push retry delays scaled by this/1000 (tests shorten them)"),
    CONFIG_INT_KEY("fault.unsynced_in_memory", struct storage_cfg, fault_unsynced, "0", 0, 1,
                   "TEST ONLY: hold every write not yet fsynced in process memory, so kill -9 "
                   "loses it as a power loss would (docs/storage-format.md); never in production"),
};
const size_t storage_config_n_keys = sizeof storage_config_keys / sizeof storage_config_keys[0];
