/* bench.c: cmq-raft-bench, a microbenchmark (prints figures; not a test).
 *
 * Committed proposals per second through a 3-node in-memory cluster: a perfect
 * network (a FIFO queue), disks that persist the moment a ready is processed,
 * 64-byte payloads, and batch sizes 1, 16 and 256 per raft_propose.  It
 * measures the core's own cost (log, replication bookkeeping, copies), which
 * bounds what the storage service can reach before fsync and the network.
 *
 * usage: cmq-raft-bench [total-proposals]   (default 200000)
 */
#include "raft.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define N 3
#define QMAX 65536

struct qmsg {
    struct raft_msg m;
    struct raft_entry *ents; /* owned copies */
    uint8_t *buf;
};

static struct raft *nodes[N + 1];
static struct qmsg q[QMAX];
static size_t qhead, qtail;
static uint64_t applied_on_leader;

static void enqueue(const struct raft_msg *m)
{
    struct qmsg *t = &q[qtail++ % QMAX];
    assert(qtail - qhead <= QMAX);
    t->m = *m;
    size_t bytes = 0;
    for (uint32_t i = 0; i < m->n_entries; i++)
        bytes += m->entries[i].len;
    t->ents = m->n_entries ? malloc(m->n_entries * sizeof(*t->ents)) : NULL;
    t->buf = bytes ? malloc(bytes) : NULL;
    uint8_t *p = t->buf;
    for (uint32_t i = 0; i < m->n_entries; i++) {
        t->ents[i] = m->entries[i];
        if (m->entries[i].len) {
            memcpy(p, m->entries[i].data, m->entries[i].len);
            t->ents[i].data = p;
            p += m->entries[i].len;
        }
    }
    t->m.entries = t->ents;
}

static void drain(int id)
{
    struct raft *r = nodes[id];
    while (raft_has_ready(r)) {
        struct raft_ready rd;
        raft_ready(r, &rd);
        uint64_t li = 0, lt = 0;
        if (rd.n_entries) {
            li = rd.entries[rd.n_entries - 1].index;
            lt = rd.entries[rd.n_entries - 1].term;
        }
        for (size_t i = 0; i < rd.n_msgs; i++)
            enqueue(&rd.msgs[i]);
        if (id == 1)
            for (size_t i = 0; i < rd.n_committed; i++)
                applied_on_leader += rd.committed[i].type == RAFT_ENTRY_NORMAL;
        raft_advance(r);
        if (li)
            raft_persisted(r, li, lt);
    }
}

static void pump(void)
{
    while (qhead < qtail) {
        struct qmsg *t = &q[qhead++ % QMAX];
        int to = (int)t->m.to;
        int rc = raft_step(nodes[to], &t->m);
        assert(rc == RAFT_OK);
        (void)rc;
        drain(to);
        free(t->ents);
        free(t->buf);
    }
}

static double run(int batch, uint64_t total)
{
    struct raft_config cfg = {0};
    cfg.n = N;
    for (int i = 0; i < N; i++)
        cfg.nodes[i].id = (uint64_t)i + 1;
    for (int id = 1; id <= N; id++) {
        struct raft_options o = {0};
        o.id = (uint64_t)id;
        o.seed = 1;
        o.pre_vote = true;
        o.check_quorum = true;
        o.max_entries_per_msg = 256;
        o.max_inflight = 8;
        o.max_uncommitted = 8192;
        struct raft_boot b = {0};
        b.initial = &cfg;
        if (raft_create(&o, &b, &nodes[id]) != RAFT_OK)
            abort();
    }
    while (raft_role(nodes[1]) != RAFT_LEADER) {
        raft_tick(nodes[1]);
        drain(1);
        pump();
    }
    applied_on_leader = 0;
    uint8_t payload[256][64];
    struct raft_proposal props[256];
    for (int i = 0; i < batch; i++) {
        memset(payload[i], i, sizeof(payload[i]));
        props[i] = (struct raft_proposal){64, payload[i]};
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    uint64_t proposed = 0;
    while (applied_on_leader < total) {
        /* keep a few batches in flight, then let the network catch up */
        for (int k = 0; k < 4 && proposed < total; k++) {
            int rc = raft_propose(nodes[1], props, (size_t)batch, NULL);
            if (rc == RAFT_ELIMIT)
                break;
            assert(rc == RAFT_OK);
            proposed += (uint64_t)batch;
            drain(1);
        }
        pump();
        if (proposed >= total && qhead == qtail && applied_on_leader < total) {
            raft_tick(nodes[1]); /* heartbeats flush the last commit index */
            drain(1);
            pump();
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    for (int id = 1; id <= N; id++)
        raft_destroy(nodes[id]);
    return (double)applied_on_leader / secs;
}

int main(int argc, char **argv)
{
    uint64_t total = argc > 1 ? strtoull(argv[1], NULL, 10) : 200000;
    static const int batches[] = {1, 16, 256};
    printf("3-node in-memory cluster, 64-byte payloads, %llu proposals per run\n",
           (unsigned long long)total);
    for (size_t i = 0; i < sizeof(batches) / sizeof(batches[0]); i++)
        printf("batch %3d: %12.0f committed proposals/s\n", batches[i], run(batches[i], total));
    return 0;
}
