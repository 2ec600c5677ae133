/* hosted.h: the records a storage node keeps for what it hosts: the node
 * (struct node), its peers, and one struct hosted per partition, with the
 * lookups and the health answers every module may use (hosted.c).
 *
 * This is the bottom of the node's rooms: node.c (placement, partitions),
 * host.c (the partition host: apply dispatch, snapshot framing, tick,
 * request routing) and the feature modules (queues.c, topics.c, timers.c,
 * dlq.c, txnq.c, forward.c) all include it, and it includes none of them.
 * A feature module never calls another feature module or node.c: what it
 * needs from the others comes through the host's struct host_ops (n->ops),
 * filled by host.c.  Not a public header. */
#ifndef CMQ_STORAGE_HOSTED_H
#define CMQ_STORAGE_HOSTED_H

#include "storage_cfg.h"
#include "partition.h"
#include "qsm.h"
#include "log.h"

#define NODE_MAX_PEERS 64

struct peer {
    uint64_t raft_id;
    char node_id[64];
    char raft_ep[RPC_ENDPOINT_MAX];
    char rpc_ep[RPC_ENDPOINT_MAX];
    struct rpc_client *client; /* NULL for this node or while the endpoint is unknown */
};

struct rx;
struct op;
struct hosted;
struct node;
struct _cmq_TraceEvent;

/* What a feature module may ask of the others, through the host (host.c
 * fills it; every pointer is set once the node is open). */
struct host_ops {
    /* Proposes a Tick for h's queues (queues.c): CMQ_OK or why not. */
    int (*propose_tick)(struct hosted *h);
    /* Topic deliveries may be due: pump them now (topics.c). */
    void (*wake_topics)(struct node *n);
    /* Adds the publish details (tags, routing key) to the trace events of
     * published topic messages (topics.c); ev borrowed for the call. */
    void (*trace_publish)(struct hosted *h, struct _cmq_TraceEvent *ev, size_t n);
};
struct dlq_pump;
struct trace_log;

/* One partition hosted here, with its queue state machine. */
struct hosted {
    uint32_t id;
    struct node *n;
    struct partition *p;
    struct qsm *qsm;
    struct tsm *tsm;         /* topics on this partition (topics.c) */
    struct qsm_result res;   /* the result of the entry being applied */
    struct rx *parked;       /* long polls waiting for a message, oldest first */
    int tick_inflight;
    uint64_t tick_at_ms;     /* when the in-flight Tick was proposed */
    uint64_t transfer_at_ms; /* last leadership transfer toward the preferred leader */
    struct balance {         /* balance_leader (node.c) */
        uint64_t target;     /* raft id of the last transfer's target; 0 none */
        uint64_t term;       /* the term it was started in */
        uint64_t healthy_since_ms; /* the preferred node could lead since; 0 not */
        uint64_t retry_at_ms; /* after a failed transfer: none before this */
        uint32_t failures;   /* failed transfers in a row */
        int skip_logged;     /* "not healthy" logged since the last attempt */
    } bal;
    /* the scheduler timer (timers.c) */
    uint64_t sched_epoch;    /* term the timer is registered under; 0: none */
    uint64_t sched_due_ms;   /* due time the scheduler holds; UINT64_MAX: none */
    uint64_t sched_retry_ms; /* monotonic: no registration before this (after a failure) */
    int sched_inflight;
    int sched_failed;        /* the last registration failed: the leader polls */
    struct dlq_pump *pump;   /* dead-letter moves being delivered (dlq.c) */
    struct op *keyed;        /* keyed sends in flight (queues.c) */
    void *pub_keyed;         /* keyed publishes in flight (topics.c: struct pub_op) */
    struct trace_log *trace; /* the message trace index (trace.c); NULL if it failed */
    /* health and repair (node.c, docs/raft.md §11) */
    int sm_status;           /* the state machine failed with this status; 0: it serves */
    int repair_cause;        /* 0, or why the last repair discarded the replica: */
#define REPAIR_SM_FAILED 1   /*   its state machine failed */
#define REPAIR_REFUSED 2     /*   its log was refused at open (bad record) */
    uint64_t failed_at_ms;   /* monotonic: when sm_status was set */
    uint64_t repair_retry_ms;/* monotonic: no repair attempt before this */
    uint64_t no_leader_since_ms; /* monotonic: since when no leader is known; 0: one is */
    uint64_t repairs;        /* times this replica was discarded and refilled */
};

/* A partition placed here that could not be opened (health; retried with a
 * growing delay, each failure logged with its count). */
struct unopened {
    uint32_t id;
    int status;
    uint32_t attempts;
    uint64_t retry_ms;       /* monotonic */
};
#define NODE_MAX_UNOPENED 16

struct node {
    struct svc *svc;
    const struct storage_cfg *cfg;
    uint64_t raft_id;
    struct peer peers[NODE_MAX_PEERS];
    int n_peers;
    struct rpc_server *raft_server;
    struct rpc_client *meta;
    struct hosted *parts[NODE_MAX_PARTITIONS];
    int n_parts;
    int registered;
    int hb_inflight, map_inflight;
    uint64_t sent, send_failed, received;
    uint64_t ops_inflight;   /* queue requests waiting for their entry */
    uint64_t parked;         /* long polls parked */
    struct rpc_client *sched; /* cmq-scheduler (timers.c) */
    uint64_t sched_instance;  /* the scheduler life our timers are registered with */
    struct forward *fwd;      /* appends to other queues (forward.c) */
    struct topics *topics;   /* fan-out clients and counters (topics.c) */
    struct rpc_client *txnq_gw; /* transaction check-backs to the gateways (txnq.c) */
    /* Raft messages refused by raftwire (malformed, over a limit, bad CRC),
     * and the CRC log's state: the last (partition, index) logged, how often
     * it came again since (node.c, wire_refused). */
    uint64_t wire_refused, crc_refused;
    uint32_t crc_last_partition;
    uint64_t crc_last_index, crc_repeats;
    struct log_limit crc_repeat_lim;
    struct unopened unopened[NODE_MAX_UNOPENED];
    int n_unopened;
    const struct host_ops *ops; /* the host's callbacks (host.c) */
    /* Opens partition `id` replicated on `names` (node.c), for placement
     * (node_place.c): a status; a partition open already is CMQ_OK. */
    int (*open_partition)(struct node *n, uint32_t id, char names[][64], int count);
};

struct peer *peer_by_id(struct node *n, uint64_t id);
struct hosted *hosted_by_id(struct node *n, uint32_t id);
/* The state machine of `h` failed with `status` (from inside apply is fine):
 * the replica steps aside now and is repaired from the leader (node.c's
 * health tick). */
void hosted_failed(struct hosted *h, int status);
/* Answers a request this node cannot serve for want of the data ("not
 * here": the partition is not hosted, or its replica is failed or being
 * repaired): CMQ_ENOTLEADER with the leader of such a replica as the hint
 * when one is known, so the caller tries another replica.  Never
 * CMQ_ENOTFOUND: only a serving leader knows that something does not exist. */
void hosted_reply_not_here(struct node *n, struct rpc_call *call, const char *what);
/* Answers CMQ_ENOTLEADER with h's leader as the hint (when known). */
void hosted_reply_not_leader(struct hosted *h, struct rpc_call *call);
/* Whether `h` serves: its state machine and log are fine and it is not
 * being repaired. */
int hosted_serves(const struct hosted *h);
/* Whether this node leads h's partition and has applied an entry of its
 * own term (so its state machines hold everything committed before). */
int hosted_leader_ready(struct hosted *h);

#endif
