/* cluster.h: a scripted in-memory cluster for the Raft unit tests.
 *
 * Unlike the simulator (tests/sim), nothing here is random: messages move only
 * when a test calls tc_deliver, links are cut and healed explicitly, and each
 * node's disk either persists at once (the default) or holds writes until
 * tc_flush.  Each test reads like a scenario from the paper.
 */
#ifndef CMQ_TEST_RAFT_CLUSTER_H
#define CMQ_TEST_RAFT_CLUSTER_H

#include "raft.h"

#define TC_MAX 6
#define TC_MAXQ 4096

struct tc_write {
    uint64_t index, term;
};

struct tc_node {
    struct raft *r;
    bool manual_disk;          /* hold writes until tc_flush */
    struct tc_write pending[256];
    int n_pending;
    uint64_t applied[4096];    /* payload value (first 8 bytes) per applied index */
    uint64_t last_applied;
    int snapshots_installed;
    struct raft_read reads[64];
    int n_reads;
};

struct tc_msg {
    struct raft_msg m;
    struct raft_entry ents[64];
    uint8_t data[64][48];
    uint8_t snap[64];
};

struct tc {
    int n;
    struct tc_node nodes[TC_MAX + 1]; /* by id, 1-based */
    bool cut[TC_MAX + 1][TC_MAX + 1];
    struct tc_msg *q;
    int nq;
    int sent_by_type[16];
    int rejects;
};

/* Creates n nodes; the first `voters` form the initial configuration (the
 * rest start empty and wait to be added).  Options tweak is optional. */
void tc_init(struct tc *c, int n, int voters, void (*tweak)(struct raft_options *));
void tc_free(struct tc *c);
/* Runs the ready loop of node id (persist, queue messages, apply). */
void tc_drain(struct tc *c, int id);
void tc_tick(struct tc *c, int id, int times);
/* Delivers queued messages (and what they cause) until the queue is empty. */
void tc_deliver(struct tc *c);
/* Drops everything queued. */
void tc_drop_all(struct tc *c);
void tc_isolate(struct tc *c, int id);
void tc_heal(struct tc *c);
/* Completes held writes on a node with manual_disk. */
void tc_flush(struct tc *c, int id);
/* Ticks `id` until it campaigns, then delivers; returns its role. */
uint32_t tc_campaign(struct tc *c, int id);
/* Proposes one command whose payload starts with `value`. */
int tc_propose(struct tc *c, int id, uint64_t value);

#endif
