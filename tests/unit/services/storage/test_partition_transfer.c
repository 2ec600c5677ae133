/* test_partition_transfer.c: what a partition (services/storage/partition.c)
 * does with proposals while its Raft leader hands leadership over.  Raft
 * refuses proposals during a transfer; the partition holds them instead, so a
 * transfer is invisible to clients but for the wait: they go ahead when the
 * transfer is abandoned (transfer_ticks) and fail with CMQ_ENOTLEADER (the
 * caller answers with the new leader's hint) when it succeeds.
 *
 * Three real partitions (segment log, writer thread) in one process, each in
 * its own mkdtemp directory; Raft messages travel through a queue this file
 * delivers, and a node can be cut off. */
#include <criterion/criterion.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "partition.h"
#include "raft.h"
#include "status.h"
#include "../../tmpdir.h"

#define N 3
#define QMAX 4096

struct qmsg {
    struct raft_msg m;
    struct raft_entry *ents;
    uint8_t **data;
};

static char t_dir[256];
static struct partition *P[N];
static int cut[N];
static struct qmsg q[QMAX];
static int nq;

static int idx_of(uint64_t raft_id) { return (int)raft_id - 1; }

/* Copies the message: a ready's memory lives only until raft_advance. */
static void send_q(void *arg, uint32_t pid, const struct raft_msg *m)
{
    (void)arg;
    (void)pid;
    if (nq == QMAX)
        return;
    struct qmsg *o = &q[nq++];
    o->m = *m;
    o->ents = m->n_entries ? calloc(m->n_entries, sizeof *o->ents) : NULL;
    o->data = m->n_entries ? calloc(m->n_entries, sizeof *o->data) : NULL;
    for (uint32_t i = 0; i < m->n_entries; i++) {
        o->ents[i] = m->entries[i];
        if (m->entries[i].len) {
            o->data[i] = malloc(m->entries[i].len);
            memcpy(o->data[i], m->entries[i].data, m->entries[i].len);
            o->ents[i].data = o->data[i];
        }
    }
    o->m.entries = o->ents;
}

static int apply_ok(void *arg, struct partition *p, const struct raft_entry *e, void **result)
{
    (void)arg;
    (void)p;
    (void)e;
    (void)result;
    return CMQ_OK;
}

/* Delivers queued messages and writer completions for about `ms`. */
static void pump(int ms)
{
    for (int t = 0; t < ms; t++) {
        while (nq > 0) {
            struct qmsg batch[64];
            int k = nq < 64 ? nq : 64;
            memcpy(batch, q, (size_t)k * sizeof *q);
            memmove(q, q + k, (size_t)(nq - k) * sizeof *q);
            nq -= k;
            for (int i = 0; i < k; i++) {
                int to = idx_of(batch[i].m.to), from = idx_of(batch[i].m.from);
                if (!cut[to] && !cut[from])
                    partition_step(P[to], &batch[i].m);
                for (uint32_t e = 0; e < batch[i].m.n_entries; e++)
                    free(batch[i].data[e]);
                free(batch[i].data);
                free(batch[i].ents);
            }
        }
        struct pollfd pfd[N];
        for (int i = 0; i < N; i++)
            pfd[i] = (struct pollfd){partition_writer_fd(P[i]), POLLIN, 0};
        poll(pfd, N, 1);
        for (int i = 0; i < N; i++)
            if (pfd[i].revents & POLLIN)
                partition_on_writer(P[i]);
    }
}

static void tick(int i, int times)
{
    for (int k = 0; k < times; k++) {
        partition_tick(P[i]);
        pump(2);
    }
}

static void setup(void)
{
    log_init("test", CMQ_LOG_ERROR);
    tmpdir_make(t_dir, sizeof t_dir, "xfer-test");
    static struct raft_config members;
    members.n = N;
    for (int i = 0; i < N; i++)
        members.nodes[i] = (typeof(members.nodes[0])){.id = (uint64_t)i + 1, .role = RAFT_VOTER};
    for (int i = 0; i < N; i++) {
        char dir[300], err[512];
        snprintf(dir, sizeof dir, "%s/n%d", t_dir, i + 1);
        struct partition_opts o = {
            .id = 1, .node_id = (uint64_t)i + 1, .members = &members, .dir = dir,
            .election_ticks = 5, .heartbeat_ticks = 1, .transfer_ticks = 2,
            .seed = (uint64_t)i + 11, .segment_bytes = 4u << 20, .send = send_q,
            .apply = apply_ok,
        };
        cr_assert_eq(partition_open(&o, &P[i], err), CMQ_OK, "%s", err);
        cut[i] = 0;
    }
    nq = 0;
    /* node 1 times out first and wins */
    for (int k = 0; k < 40 && !partition_is_leader(P[0]); k++)
        tick(0, 1);
    cr_assert(partition_is_leader(P[0]));
    tick(0, 2);
}

static void teardown(void)
{
    for (int i = 0; i < N; i++)
        partition_close(P[i]);
    for (int i = 0; i < nq; i++) {
        for (uint32_t e = 0; e < q[i].m.n_entries; e++)
            free(q[i].data[e]);
        free(q[i].data);
        free(q[i].ents);
    }
    nq = 0;
    tmpdir_remove(t_dir);
}

TestSuite(partition_transfer, .init = setup, .fini = teardown);

struct outcome {
    int done;
    int status;
};

static void on_done(void *arg, int status, uint64_t index, void *result)
{
    (void)index;
    (void)result;
    struct outcome *o = arg;
    o->done++;
    o->status = status;
}

Test(partition_transfer, a_proposal_during_a_failed_transfer_is_held_then_committed)
{
    cut[1] = 1; /* node 2 is dead: TIMEOUT_NOW never arrives */
    struct raft *r = partition_raft(P[0]);
    cr_assert_eq(raft_transfer_leadership(r, 2), RAFT_OK);
    partition_flush(P[0]);
    struct outcome o = {0};
    cr_assert_eq(partition_propose(P[0], "x", 1, on_done, &o), CMQ_OK, "held, not refused");
    pump(50);
    cr_assert_eq(o.done, 0, "still held while the transfer runs");
    tick(0, 2); /* transfer_ticks: the transfer is abandoned */
    pump(50);
    cr_assert_eq(raft_transferee(r), 0);
    cr_assert(partition_is_leader(P[0]));
    cr_assert_eq(o.done, 1, "proposed once the transfer ended, committed with node 3");
    cr_assert_eq(o.status, CMQ_OK);
}

Test(partition_transfer, a_proposal_during_a_successful_transfer_fails_not_leader)
{
    struct raft *r = partition_raft(P[0]);
    cr_assert_eq(raft_transfer_leadership(r, 3), RAFT_OK);
    struct outcome o[3] = {{0}};
    for (int i = 0; i < 3; i++)
        cr_assert_eq(partition_propose(P[0], "y", 1, on_done, &o[i]), CMQ_OK);
    partition_flush(P[0]);
    pump(100);
    cr_assert(partition_is_leader(P[2]), "node 3 took over");
    cr_assert_not(partition_is_leader(P[0]));
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(o[i].done, 1, "proposal %d answered", i);
        cr_assert_eq(o[i].status, CMQ_ENOTLEADER, "its caller sends the new leader's hint");
    }
    cr_assert_eq(partition_propose(P[0], "z", 1, on_done, &o[0]), CMQ_ENOTLEADER);
}
