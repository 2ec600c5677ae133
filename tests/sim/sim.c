/* sim.c: a deterministic simulator for the Raft core (common/raft).
 *
 * One seed drives everything: a cluster of 3 or 5 voters (plus spare nodes the
 * schedule may add as learners and promote), a network that drops, delays,
 * reorders and duplicates messages and can be partitioned (symmetric,
 * asymmetric, partial), disks that complete writes late and in order and
 * lose unfinished writes at a crash (the oldest unfinished one may be torn:
 * a prefix of it survives), crashes and restarts, per-node tick rates, client
 * proposals with an acknowledged set, membership changes, leadership
 * transfers, compactions (snapshots) and read-index requests.
 *
 * After every step it checks (the "oracle"):
 *   election safety      at most one leader per term;
 *   log matching         two logs holding an entry with the same index and
 *                        term hold the same prefix (a chained hash per
 *                        (index, term), checked whenever a node gets an entry);
 *   leader completeness  a node that becomes leader holds every entry any node
 *                        has reported committed;
 *   commit safety        when a leader commits an entry, no voter lacking it
 *                        could win an election judged by durable logs;
 *   state machine safety every node applies the same entry at each index, in
 *                        index order (a chained state hash per index), and a
 *                        snapshot a node installs equals that chain;
 *   exactly once         no command appears at two indexes;
 *   durability           at the end, with faults healed, every member applied
 *                        every acknowledged command (same chain as above);
 *   membership           every configuration in any log differs from the one
 *                        before it by at most one voter, and committed
 *                        configurations form such a chain too;
 *   read index           a read is served at an index at or after every write
 *                        acknowledged before it was asked.
 * A failing seed prints the violation, the last events, and the command that
 * replays it with a full trace.
 *
 * Files: sim.c (helpers, a run, main), sim_node.c (network, node life),
 * sim_oracle.c (the checks above), sim_schedule.c (the schedule); sim.h is
 * what they share.
 */
#include "sim.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>


static uint64_t mix64(uint64_t z)
{
    z += 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}
uint64_t h2(uint64_t a, uint64_t b) { return mix64(a ^ mix64(b + 0x51ED27ULL)); }

uint64_t bytes_hash(const uint8_t *p, uint32_t n)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (uint32_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3ULL;
    return h;
}

void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL) {
        fprintf(stderr, "sim: out of memory\n");
        exit(2);
    }
    return p;
}
void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n ? n : 1);
    if (p == NULL) {
        fprintf(stderr, "sim: out of memory\n");
        exit(2);
    }
    return p;
}

/* ------------------------------------------------------------------------ */
/* growable u64 map (open addressing), key != 0 */


uint64_t *map_get(struct map *m, uint64_t key)
{
    if (m->cap == 0)
        return NULL;
    size_t i = mix64(key) & (m->cap - 1);
    while (m->k[i] != 0) {
        if (m->k[i] == key)
            return &m->v[i];
        i = (i + 1) & (m->cap - 1);
    }
    return NULL;
}
static void map_grow(struct map *m)
{
    struct map n = {0};
    n.cap = m->cap ? m->cap * 2 : 1024;
    n.k = calloc(n.cap, sizeof(uint64_t));
    n.v = calloc(n.cap, sizeof(uint64_t));
    if (!n.k || !n.v) {
        fprintf(stderr, "sim: out of memory\n");
        exit(2);
    }
    for (size_t i = 0; i < m->cap; i++)
        if (m->k[i])
            map_put(&n, m->k[i], m->v[i]);
    free(m->k);
    free(m->v);
    *m = n;
}
void map_put(struct map *m, uint64_t key, uint64_t val)
{
    if ((m->n + 1) * 2 > m->cap)
        map_grow(m);
    size_t i = mix64(key) & (m->cap - 1);
    while (m->k[i] != 0 && m->k[i] != key)
        i = (i + 1) & (m->cap - 1);
    if (m->k[i] == 0)
        m->n++;
    m->k[i] = key;
    m->v[i] = val;
}
static void map_free(struct map *m)
{
    free(m->k);
    free(m->v);
    memset(m, 0, sizeof(*m));
}

/* growable u64 array indexed from 1 */
uint64_t vec_get(const struct vec *v, uint64_t i) { return i < v->cap ? v->a[i] : 0; }
void vec_set(struct vec *v, uint64_t i, uint64_t x)
{
    if (i >= v->cap) {
        size_t cap = v->cap ? v->cap : 1024;
        while (cap <= i)
            cap *= 2;
        v->a = xrealloc(v->a, cap * sizeof(uint64_t));
        memset(v->a + v->cap, 0, (cap - v->cap) * sizeof(uint64_t));
        v->cap = cap;
    }
    v->a[i] = x;
}

/* ------------------------------------------------------------------------ */
/* simulation state */









uint64_t rnd(struct sim *s)
{
    s->rng += 0x9E3779B97F4A7C15ULL;
    return mix64(s->rng);
}
uint32_t rn(struct sim *s, uint32_t n) { return n ? (uint32_t)(rnd(s) % n) : 0; }
bool chance(struct sim *s, uint32_t per10k) { return rn(s, 10000) < per10k; }

void ev(struct sim *s, const char *fmt, ...)
{
    char *line = s->ring[s->n_ring++ % TRACE_RING];
    int k = snprintf(line, 160, "t=%" PRIu64 " ", s->now);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + k, (size_t)(160 - k), fmt, ap);
    va_end(ap);
    if (s->trace)
        printf("%s\n", line);
}

void fail(struct sim *s, const char *fmt, ...)
{
    if (s->failed)
        return;
    s->failed = true;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->why, sizeof(s->why), fmt, ap);
    va_end(ap);
    ev(s, "VIOLATION %s", s->why);
}

struct node *node_of(struct sim *s, uint64_t id)
{
    return id >= 1 && id <= (uint64_t)s->n_slots ? &s->nodes[id - 1] : NULL;
}

uint64_t voters_mask(const struct raft_config *c)
{
    uint64_t m = 0;
    for (uint32_t i = 0; i < c->n; i++)
        if (c->nodes[i].role == RAFT_VOTER)
            m |= 1ULL << (c->nodes[i].id & 63);
    return m;
}

int popcount64(uint64_t x) { return __builtin_popcountll(x); }

/* ------------------------------------------------------------------------ */

static void sim_init(struct sim *s, uint64_t seed, uint32_t bugs, bool trace)
{
    memset(s, 0, sizeof(*s));
    s->seed = seed;
    s->rng = seed * 0x2545F4914F6CDD1DULL + 7;
    s->bugs = bugs;
    s->trace = trace;
    s->n_initial = (seed & 1) ? 5 : 3;
    s->n_slots = s->n_initial + ((seed & 1) ? 1 : 2);
    s->drop_pct = 2;
    s->dup_pct = 1;
    s->max_delay = 6;
    s->faults = true;
    /* each seed picks its own weather: calm, stormy, or in between */
    s->crash_rate = 5 + rn(s, 40);
    s->leader_crash_rate = rn(s, 3) == 0 ? 0 : rn(s, 40);
    s->partition_rate = 5 + rn(s, 30);
    s->new_leader_crash_pct = rn(s, 3) == 0 ? 0 : 20 + rn(s, 60);
    static const uint32_t epm[] = {1, 2, 8, 64}, infl[] = {1, 2, 4, 8};
    s->max_entries_per_msg = epm[rn(s, 4)];
    s->max_inflight = infl[rn(s, 4)];
    s->election_ticks = rn(s, 3) == 0 ? 5 : 10;
    s->pre_vote = rn(s, 5) != 0;
    s->check_quorum = rn(s, 5) != 0;
    s->net = xmalloc(NET_MAX * sizeof(*s->net));
    s->initial.n = (uint32_t)s->n_initial;
    for (int i = 0; i < s->n_initial; i++) {
        s->initial.nodes[i].id = (uint64_t)i + 1;
        s->initial.nodes[i].role = RAFT_VOTER;
    }
    ev(s, "seed=%" PRIu64 " voters=%d slots=%d crash=%u leader_crash=%u new_leader_crash=%u%%"
       " partition=%u entries/msg=%u inflight=%u election_ticks=%u pre_vote=%d check_quorum=%d",
       seed, s->n_initial, s->n_slots, s->crash_rate, s->leader_crash_rate,
       s->new_leader_crash_pct, s->partition_rate, s->max_entries_per_msg, s->max_inflight,
       s->election_ticks, s->pre_vote, s->check_quorum);
    for (int i = 0; i < s->n_slots; i++) {
        struct node *n = &s->nodes[i];
        n->id = (uint64_t)i + 1;
        n->original = i < s->n_initial;
        n->tick_period = 8 + rn(s, 7);
        n->disk_delay = rn(s, 2) ? 5 : 1 + rn(s, 40);
        ev(s, "n%d tick_period=%u disk_delay=%u%s", i + 1, n->tick_period, n->disk_delay,
           n->original ? "" : " (spare)");
        node_boot(s, n);
    }
}

static void sim_free(struct sim *s)
{
    for (int i = 0; i < s->n_slots; i++) {
        struct node *n = &s->nodes[i];
        raft_destroy(n->r);
        disk_truncate(n, 0);
        free(n->log);
        for (size_t k = 0; k < n->n_wq; k++)
            write_free(&n->wq[k]);
        free(n->wq);
        free(n->chain.a);
    }
    for (size_t i = 0; i < s->n_net; i++)
        free(s->net[i]);
    free(s->net);
    map_free(&s->leader_of_term);
    map_free(&s->chain_of);
    map_free(&s->cmd_index);
    map_free(&s->acked);
    free(s->gsm.a);
    free(s->gcommit.a);
    free(s->gconf.a);
    free(s->props);
}

/* True when every member of the leader's configuration applied every
 * acknowledged command. */
static bool converged(struct sim *s, struct node *l, bool report)
{
    struct raft_config c;
    raft_get_config(l->r, &c);
    bool ok = true;
    for (uint32_t i = 0; i < c.n; i++) {
        struct node *n = node_of(s, c.nodes[i].id);
        if (n->up && n->applied >= s->max_acked_index)
            continue;
        ok = false;
        if (report)
            fail(s, "durability: member %" PRIu64 " applied %" PRIu64
                 " < acknowledged %" PRIu64 " (up=%d role=%u term=%" PRIu64 " commit=%" PRIu64
                 " durable=%" PRIu64 " last=%" PRIu64 " snap=%" PRIu64 ")", n->id, n->applied,
                 s->max_acked_index, n->up, n->up ? raft_role(n->r) : 0,
                 n->up ? raft_term(n->r) : 0, n->up ? raft_commit_index(n->r) : 0,
                 n->up ? raft_durable_index(n->r) : 0, n->up ? raft_last_index(n->r) : 0,
                 n->up ? raft_snapshot_index(n->r) : 0);
    }
    return ok;
}

/* Heals every fault, lets the cluster settle (up to `settle` steps), and checks
 * durability: every member of the final configuration applied every
 * acknowledged command. */
static void sim_final(struct sim *s, uint64_t settle)
{
    s->faults = false;
    memset(s->blocked, 0, sizeof(s->blocked));
    ev(s, "final: heal, restart all, settle");
    for (int i = 0; i < s->n_slots; i++)
        if (!s->nodes[i].up)
            node_restart(s, &s->nodes[i]);
    uint64_t end = s->now + settle;
    bool proposed = false;
    uint64_t progress_sum = 0, progress_at = s->now;
    while (s->now < end && !s->failed) {
        sim_step(s);
        struct node *l = a_leader(s);
        if (l && !proposed && raft_commit_index(l->r) >= s->max_acked_index) {
            /* one more command of the final term makes every member catch up */
            s->faults = true; /* do_propose only */
            uint64_t before = s->next_cmd;
            do_propose(s);
            s->faults = false;
            proposed = s->next_cmd != before;
        }
        if ((s->now & 63) == 0) {
            if (l && proposed && converged(s, l, false))
                break;
            /* give up early when nothing moves any more */
            uint64_t sum = 0;
            for (int i = 0; i < s->n_slots; i++) {
                struct node *x = &s->nodes[i];
                sum += x->applied + (x->up ? raft_durable_index(x->r) : 0);
            }
            if (sum != progress_sum) {
                progress_sum = sum;
                progress_at = s->now;
            } else if (s->now - progress_at > 8000) {
                break;
            }
        }
    }
    if (s->failed)
        return;
    struct node *l = a_leader(s);
    if (l == NULL) {
        char buf[256];
        size_t k = 0;
        for (int i = 0; i < s->n_slots && k < sizeof(buf) - 64; i++) {
            struct node *x = &s->nodes[i];
            struct raft_config c;
            raft_get_config(x->r, &c);
            k += (size_t)snprintf(buf + k, sizeof(buf) - k, " n%d:t%" PRIu64 "/v%" PRIx64
                                  "/last%" PRIu64, i + 1, raft_term(x->r), voters_mask(&c),
                                  raft_last_index(x->r));
        }
        fail(s, "liveness: no leader after healing (%s)", buf);
        return;
    }
    converged(s, l, true);
    /* every acknowledged command sits where the state machines agree it is */
    for (size_t i = 0; i < s->acked.cap; i++) {
        if (!s->acked.k[i])
            continue;
        uint64_t *at = map_get(&s->cmd_index, s->acked.k[i]);
        if (at == NULL || *at != s->acked.v[i])
            fail(s, "durability: acknowledged command %" PRIu64 " lost", s->acked.k[i]);
    }
}

static bool run_seed(uint64_t seed, uint64_t steps, uint32_t bugs, bool trace, bool verbose)
{
    struct sim *s = xmalloc(sizeof(*s));
    sim_init(s, seed, bugs, trace);
    for (uint64_t i = 0; i < steps && !s->failed; i++)
        sim_step(s);
    if (!s->failed)
        sim_final(s, 40000);
    bool ok = !s->failed;
    if (!ok && !trace) {
        printf("FAIL seed=%" PRIu64 ": %s\n", seed, s->why);
        printf("  last events:\n");
        size_t from = s->n_ring > TRACE_RING ? s->n_ring - TRACE_RING : 0;
        for (size_t i = from; i < s->n_ring; i++)
            printf("    %s\n", s->ring[i % TRACE_RING]);
        printf("  replay: cmq-raft-sim --seed %" PRIu64 " --steps %" PRIu64 "%s%s%s%s --trace\n",
               seed, steps, (bugs & RAFT_BUG_COMMIT_OLD_TERM) ? " --bug commit-old-term" : "",
               (bugs & RAFT_BUG_VOTE_NO_LOG_CHECK) ? " --bug vote-no-log-check" : "",
               (bugs & RAFT_BUG_ACK_UNPERSISTED) ? " --bug ack-unpersisted" : "",
               (bugs & RAFT_BUG_CONF_ANYTIME) ? " --bug conf-anytime" : "");
    } else if (!ok) {
        printf("FAIL seed=%" PRIu64 ": %s\n", seed, s->why);
    }
    if (verbose)
        printf("seed=%" PRIu64 " nodes=%d elections=%" PRIu64 " acked=%" PRIu64
               " commit=%" PRIu64 " crashes=%" PRIu64 " snap_installs=%" PRIu64
               " conf=%" PRIu64 " transfers=%" PRIu64 " reads=%" PRIu64 " %s\n",
               seed, s->n_initial, s->n_elections, s->n_acked, s->max_commit, s->n_crashes,
               s->n_snap_installs, s->n_conf, s->n_transfers, s->n_reads_done,
               ok ? "ok" : "FAIL");
    sim_free(s);
    free(s);
    return ok;
}

static uint32_t bug_from_name(const char *n)
{
    if (strcmp(n, "commit-old-term") == 0)
        return RAFT_BUG_COMMIT_OLD_TERM;
    if (strcmp(n, "vote-no-log-check") == 0)
        return RAFT_BUG_VOTE_NO_LOG_CHECK;
    if (strcmp(n, "ack-unpersisted") == 0)
        return RAFT_BUG_ACK_UNPERSISTED;
    if (strcmp(n, "conf-anytime") == 0)
        return RAFT_BUG_CONF_ANYTIME;
    fprintf(stderr, "unknown bug %s (commit-old-term, vote-no-log-check, ack-unpersisted,"
            " conf-anytime)\n", n);
    exit(2);
}

static void usage(void)
{
    fprintf(stderr,
            "usage: cmq-raft-sim [--seeds N] [--start S] [--steps K] [--verbose]\n"
            "       cmq-raft-sim --seed S [--steps K] [--trace]\n"
            "       cmq-raft-sim --bug NAME --expect-violation [--seeds N] [--start S]\n"
            "  runs N seeded simulations of K steps each; exits 1 if any fails.\n"
            "  --bug plants a known bug (commit-old-term, vote-no-log-check,\n"
            "  ack-unpersisted, conf-anytime); with --expect-violation, exits 0 only\n"
            "  if some seed catches it.\n");
}

int main(int argc, char **argv)
{
    uint64_t seeds = 100, start = 1, steps = 3000;
    bool one = false, trace = false, verbose = false, expect = false;
    uint32_t bugs = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--seeds") == 0 && v) {
            seeds = strtoull(v, NULL, 10);
            i++;
        } else if (strcmp(a, "--start") == 0 && v) {
            start = strtoull(v, NULL, 10);
            i++;
        } else if (strcmp(a, "--steps") == 0 && v) {
            steps = strtoull(v, NULL, 10);
            i++;
        } else if (strcmp(a, "--seed") == 0 && v) {
            start = strtoull(v, NULL, 10);
            seeds = 1;
            one = true;
            i++;
        } else if (strcmp(a, "--bug") == 0 && v) {
            bugs |= bug_from_name(v);
            i++;
        } else if (strcmp(a, "--trace") == 0) {
            trace = true;
        } else if (strcmp(a, "--verbose") == 0) {
            verbose = true;
        } else if (strcmp(a, "--expect-violation") == 0) {
            expect = true;
        } else {
            usage();
            return 2;
        }
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    uint64_t failed = 0, first_fail = 0;
    for (uint64_t k = 0; k < seeds; k++) {
        bool ok = run_seed(start + k, steps, bugs, trace, verbose || one);
        if (!ok) {
            if (failed++ == 0)
                first_fail = start + k;
            if (expect)
                break;
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    if (expect) {
        if (failed) {
            printf("planted bug caught at seed %" PRIu64 " (%.1fs)\n", first_fail, secs);
            return 0;
        }
        printf("planted bug NOT caught in %" PRIu64 " seeds from %" PRIu64 "\n", seeds, start);
        return 1;
    }
    printf("%" PRIu64 " seeds from %" PRIu64 ", %" PRIu64 " steps each: %" PRIu64
           " failed (%.1fs)\n", seeds, start, steps, failed, secs);
    return failed ? 1 : 0;
}

