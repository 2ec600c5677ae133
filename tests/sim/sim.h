/* sim.h: what the Raft simulator's files share: the simulated cluster (nodes,
 * disks, network, the oracle's records) and the functions each file calls in
 * another.  sim.c: helpers, a run and main(); sim_node.c: the network and a
 * node's life (boot, drain, crash, restart, disk); sim_oracle.c: the safety
 * checks; sim_schedule.c: the random schedule of faults and requests. */
#ifndef CMQ_SIM_H
#define CMQ_SIM_H

#include "raft.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MAX_SLOTS 6
#define NET_MAX 20000
#define TRACE_RING 64

struct map {
    uint64_t *k;
    uint64_t *v;
    size_t cap;
    size_t n;
};

struct vec {
    uint64_t *a;
    size_t cap;
};

struct dentry { /* an entry on a simulated disk or in a write */
    uint64_t term, index;
    uint32_t type, len;
    uint8_t *data;
};

struct write {
    uint64_t done_at;
    size_t n;
    struct dentry *e;
};

struct snapimg { /* what the simulated application puts in a snapshot */
    uint64_t applied;
    uint64_t sm_hash;
    uint64_t chain; /* log chain hash at `applied` */
};

struct node {
    uint64_t id;
    struct raft *r;
    bool up;
    bool original;
    uint32_t incarnation;
    uint32_t tick_period;
    uint32_t disk_delay; /* a write completes within this many steps */
    uint64_t next_tick;
    uint64_t down_until;
    uint64_t crash_at; /* scheduled crash (0 = none) */
    /* disk */
    struct raft_hard_state hs;
    struct dentry *log;
    size_t n_log;
    bool has_snap;
    struct raft_snapshot snap;
    uint8_t snapbuf[sizeof(struct snapimg)];
    struct write *wq;
    size_t n_wq;
    /* state machine (volatile) */
    uint64_t applied;
    uint64_t sm_hash;
    /* log mirror: chain hash per index (0 = unknown), conf tracking */
    struct vec chain;
    uint64_t mirror_last;
    uint64_t commit_seen;
    uint64_t leader_term_seen;
};

struct netmsg {
    uint64_t at;
    uint64_t sent_at;
    struct raft_msg m;
};

struct pendprop {
    uint64_t cmd, node, inc, index, term;
};

struct pendread {
    uint64_t ctx, node, inc, min_index;
};

struct sim {
    uint64_t seed;
    uint64_t rng;
    uint64_t now;
    uint32_t bugs;
    bool trace;
    int n_slots;
    int n_initial;
    struct raft_config initial;
    struct node nodes[MAX_SLOTS];
    /* network */
    struct netmsg **net;
    size_t n_net;
    bool blocked[MAX_SLOTS][MAX_SLOTS];
    uint32_t drop_pct, dup_pct, max_delay;
    uint32_t crash_rate, leader_crash_rate, partition_rate; /* per 10 000 steps */
    uint32_t new_leader_crash_pct; /* chance a new leader crashes within a few steps */
    uint32_t max_entries_per_msg, max_inflight, election_ticks;
    bool pre_vote, check_quorum;
    bool faults;
    /* oracle */
    struct map leader_of_term;  /* term -> leader id */
    struct map chain_of;        /* h(index, term) -> chain hash */
    struct vec gsm;             /* index -> state hash after applying it */
    struct vec gcommit;         /* index -> term of the committed entry */
    uint64_t max_commit;
    struct vec gconf;           /* index -> voters bitmask + 1 for committed CONF entries */
    struct map cmd_index;       /* cmd -> index where applied */
    uint64_t next_cmd;
    struct pendprop *props;
    size_t n_props, cap_props;
    struct map acked;           /* cmd -> index */
    uint64_t max_acked_index;
    uint64_t n_acked;
    struct pendread reads[64];
    size_t n_reads;
    uint64_t next_read;
    /* stats */
    uint64_t n_elections, n_crashes, n_snap_installs, n_conf, n_transfers, n_reads_done;
    /* failure */
    bool failed;
    char why[512];
    char ring[TRACE_RING][160];
    size_t n_ring;
};

/* ---- sim.c ---- */
uint64_t bytes_hash(const uint8_t *p, uint32_t n);
bool chance(struct sim *s, uint32_t per10k);
void ev(struct sim *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void fail(struct sim *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
uint64_t h2(uint64_t a, uint64_t b);
uint64_t *map_get(struct map *m, uint64_t key);
void map_put(struct map *m, uint64_t key, uint64_t val);
struct node *node_of(struct sim *s, uint64_t id);
int popcount64(uint64_t x);
uint32_t rn(struct sim *s, uint32_t n);
uint64_t vec_get(const struct vec *v, uint64_t i);
void vec_set(struct vec *v, uint64_t i, uint64_t x);
uint64_t voters_mask(const struct raft_config *c);
void *xmalloc(size_t n);
void *xrealloc(void *p, size_t n);
uint64_t rnd(struct sim *s);

/* ---- sim_node.c ---- */
void disk_truncate(struct node *n, uint64_t from);
void node_boot(struct sim *s, struct node *n);
void node_restart(struct sim *s, struct node *n);
void write_free(struct write *w);
void disk_progress(struct sim *s, struct node *n);
void node_crash(struct sim *s, struct node *n);
void drain(struct sim *s, struct node *n);

/* ---- sim_oracle.c ---- */
void apply_entry(struct sim *s, struct node *n, const struct raft_entry *e);
void check_leader(struct sim *s, struct node *n);
void mirror_append(struct sim *s, struct node *n, const struct raft_entry *e);
void record_commits(struct sim *s, struct node *n);

/* ---- sim_schedule.c ---- */
struct node *a_leader(struct sim *s);
void do_propose(struct sim *s);
void sim_step(struct sim *s);

#endif
