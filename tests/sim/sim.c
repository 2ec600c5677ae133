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
 */
#include "raft.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_SLOTS 6
#define NET_MAX 20000
#define TRACE_RING 64

static uint64_t mix64(uint64_t z)
{
    z += 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}
static uint64_t h2(uint64_t a, uint64_t b) { return mix64(a ^ mix64(b + 0x51ED27ULL)); }

static uint64_t bytes_hash(const uint8_t *p, uint32_t n)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (uint32_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3ULL;
    return h;
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL) {
        fprintf(stderr, "sim: out of memory\n");
        exit(2);
    }
    return p;
}
static void *xrealloc(void *p, size_t n)
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

struct map {
    uint64_t *k;
    uint64_t *v;
    size_t cap;
    size_t n;
};

static void map_put(struct map *m, uint64_t key, uint64_t val);
static uint64_t *map_get(struct map *m, uint64_t key)
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
static void map_put(struct map *m, uint64_t key, uint64_t val)
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
struct vec {
    uint64_t *a;
    size_t cap;
};
static uint64_t vec_get(const struct vec *v, uint64_t i) { return i < v->cap ? v->a[i] : 0; }
static void vec_set(struct vec *v, uint64_t i, uint64_t x)
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

static uint64_t rnd(struct sim *s)
{
    s->rng += 0x9E3779B97F4A7C15ULL;
    return mix64(s->rng);
}
static uint32_t rn(struct sim *s, uint32_t n) { return n ? (uint32_t)(rnd(s) % n) : 0; }
static bool chance(struct sim *s, uint32_t per10k) { return rn(s, 10000) < per10k; }

static void ev(struct sim *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void ev(struct sim *s, const char *fmt, ...)
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

static void fail(struct sim *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(struct sim *s, const char *fmt, ...)
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

static struct node *node_of(struct sim *s, uint64_t id)
{
    return id >= 1 && id <= (uint64_t)s->n_slots ? &s->nodes[id - 1] : NULL;
}

static uint64_t voters_mask(const struct raft_config *c)
{
    uint64_t m = 0;
    for (uint32_t i = 0; i < c->n; i++)
        if (c->nodes[i].role == RAFT_VOTER)
            m |= 1ULL << (c->nodes[i].id & 63);
    return m;
}

static int popcount64(uint64_t x) { return __builtin_popcountll(x); }

/* ------------------------------------------------------------------------ */
/* network */

static void net_send(struct sim *s, const struct raft_msg *m)
{
    struct node *to = node_of(s, m->to);
    if (to == NULL)
        return;
    if (s->blocked[m->from - 1][m->to - 1])
        return;
    if (s->faults && chance(s, s->drop_pct * 100))
        return;
    int copies = s->faults && chance(s, s->dup_pct * 100) ? 2 : 1;
    for (int c = 0; c < copies; c++) {
        if (s->n_net >= NET_MAX)
            return;
        size_t pay = 0;
        for (uint32_t i = 0; i < m->n_entries; i++)
            pay += m->entries[i].len;
        size_t sz = sizeof(struct netmsg) + m->n_entries * sizeof(struct raft_entry) + pay +
                    m->snapshot.len;
        struct netmsg *nm = xmalloc(sz);
        nm->at = s->now + 1 + rn(s, s->max_delay);
        nm->sent_at = s->now;
        nm->m = *m;
        struct raft_entry *ents = (struct raft_entry *)(nm + 1);
        uint8_t *p = (uint8_t *)(ents + m->n_entries);
        for (uint32_t i = 0; i < m->n_entries; i++) {
            ents[i] = m->entries[i];
            if (ents[i].len) {
                memcpy(p, m->entries[i].data, ents[i].len);
                ents[i].data = p;
                p += ents[i].len;
            } else {
                ents[i].data = NULL;
            }
        }
        nm->m.entries = m->n_entries ? ents : NULL;
        if (m->snapshot.len) {
            memcpy(p, m->snapshot.data, m->snapshot.len);
            nm->m.snapshot.data = p;
        } else {
            nm->m.snapshot.data = NULL;
        }
        s->net[s->n_net++] = nm;
    }
}

/* ------------------------------------------------------------------------ */
/* oracle pieces */

static uint64_t entry_key(uint64_t index, uint64_t term) { return h2(index, term) | 1; }

/* Records that node n now holds entry e (in memory).  Log matching. */
static void mirror_append(struct sim *s, struct node *n, const struct raft_entry *e)
{
    uint64_t prev = e->index > 0 ? vec_get(&n->chain, e->index - 1) : 0;
    if (e->index > 1 && prev == 0) {
        fail(s, "node %" PRIu64 " got entry %" PRIu64 " without a known predecessor",
             n->id, e->index);
        return;
    }
    uint64_t c = h2(h2(prev, e->term), h2(e->type, bytes_hash(e->data, e->len)));
    vec_set(&n->chain, e->index, c);
    n->mirror_last = e->index;
    uint64_t key = entry_key(e->index, e->term);
    uint64_t *have = map_get(&s->chain_of, key);
    if (have == NULL)
        map_put(&s->chain_of, key, c);
    else if (*have != c)
        fail(s, "log matching: node %" PRIu64 " entry (%" PRIu64 ",%" PRIu64
             ") has a different history", n->id, e->index, e->term);
    if (e->type == RAFT_ENTRY_CONF) {
        /* membership: differs from the previous config in this log by <= 1 voter */
        struct raft_config now_c, prev_c;
        if (raft_config_decode(e->data, e->len, &now_c) != RAFT_OK) {
            fail(s, "undecodable configuration at %" PRIu64, e->index);
            return;
        }
        const struct raft_entry *pe = NULL;
        for (uint64_t i = e->index - 1; i > raft_snapshot_index(n->r); i--) {
            const struct raft_entry *x = raft_entry_at(n->r, i);
            if (x && x->type == RAFT_ENTRY_CONF) {
                pe = x;
                break;
            }
        }
        if (pe != NULL)
            raft_config_decode(pe->data, pe->len, &prev_c);
        else if (raft_snapshot_index(n->r) > 0 || !n->original)
            return; /* the previous one is inside a snapshot; checked when committed */
        else
            prev_c = s->initial;
        if (popcount64(voters_mask(&now_c) ^ voters_mask(&prev_c)) > 1)
            fail(s, "membership: config at %" PRIu64 " changes more than one voter", e->index);
    }
}

/* The durable end of a node's log: (term, index) of its last stored entry. */
static void disk_last(const struct node *n, uint64_t *term, uint64_t *index)
{
    if (n->n_log > 0) {
        *term = n->log[n->n_log - 1].term;
        *index = n->log[n->n_log - 1].index;
    } else if (n->has_snap) {
        *term = n->snap.term;
        *index = n->snap.index;
    } else {
        *term = *index = 0;
    }
}

/* Whether a node's stored log holds (index, term); a snapshot past index
 * counts as holding it (snapshots cover committed entries only). */
static bool disk_has(const struct node *n, uint64_t index, uint64_t term)
{
    if (n->has_snap && n->snap.index >= index)
        return true;
    if (n->n_log == 0 || index < n->log[0].index || index > n->log[n->n_log - 1].index)
        return false;
    return n->log[index - n->log[0].index].term == term;
}

static bool later(uint64_t t1, uint64_t i1, uint64_t t2, uint64_t i2)
{
    return t1 > t2 || (t1 == t2 && i1 >= i2);
}

/* Commit safety, checked the moment a leader commits (c, tc): no voter that
 * lacks the entry (in memory or on disk) may be able to collect a quorum of
 * votes from voters judged by their durable logs (§5.4: every committed entry
 * must be in every future leader's log).  In correct Raft a quorum holds the
 * entry durably and refuses such a candidate; this catches an unsafe commit
 * at once instead of waiting for a later election to overwrite it. */
static void check_commit_safe(struct sim *s, struct node *l, uint64_t c, uint64_t tc)
{
    struct raft_config cfg;
    raft_get_config(l->r, &cfg);
    uint32_t q = raft_config_voters(&cfg) / 2 + 1;
    for (uint32_t a = 0; a < cfg.n; a++) {
        struct node *cand = node_of(s, cfg.nodes[a].id);
        if (cand == NULL || cfg.nodes[a].role != RAFT_VOTER)
            continue;
        /* the candidate's log: in memory, or on disk after a crash */
        for (int view = 0; view < 2; view++) {
            uint64_t ct, ci;
            if (view == 0) {
                if (!cand->up)
                    continue;
                if (raft_snapshot_index(cand->r) >= c || raft_term_at(cand->r, c) == tc)
                    continue;
                ci = raft_last_index(cand->r);
                ct = raft_term_at(cand->r, ci);
            } else {
                if (disk_has(cand, c, tc))
                    continue;
                disk_last(cand, &ct, &ci);
            }
            uint32_t votes = 0;
            for (uint32_t b = 0; b < cfg.n; b++) {
                struct node *v = node_of(s, cfg.nodes[b].id);
                if (v == NULL || cfg.nodes[b].role != RAFT_VOTER)
                    continue;
                uint64_t vt, vi;
                disk_last(v, &vt, &vi);
                if (v == cand || later(ct, ci, vt, vi))
                    votes++;
            }
            if (votes >= q) {
                fail(s, "commit safety: leader %" PRIu64 " committed (%" PRIu64 ",%" PRIu64
                     ") but node %" PRIu64 " could be elected without it", l->id, c, tc,
                     cand->id);
                return;
            }
        }
    }
}

static void record_commits(struct sim *s, struct node *n)
{
    if (raft_role(n->r) == RAFT_LEADER && raft_commit_index(n->r) > n->commit_seen) {
        uint64_t c = raft_commit_index(n->r);
        uint64_t tc = raft_term_at(n->r, c);
        if (tc != 0)
            check_commit_safe(s, n, c, tc);
    }
    uint64_t c = raft_commit_index(n->r);
    for (uint64_t i = n->commit_seen + 1; i <= c; i++) {
        uint64_t t = raft_term_at(n->r, i);
        if (t == 0)
            continue; /* compacted */
        uint64_t g = vec_get(&s->gcommit, i);
        if (g == 0) {
            vec_set(&s->gcommit, i, t);
            const struct raft_entry *e = raft_entry_at(n->r, i);
            if (e && e->type == RAFT_ENTRY_CONF) {
                struct raft_config cc;
                raft_config_decode(e->data, e->len, &cc);
                vec_set(&s->gconf, i, voters_mask(&cc) + 1);
                /* committed configurations form a one-voter-at-a-time chain */
                for (uint64_t j = i - 1; j > 0; j--) {
                    uint64_t pm = vec_get(&s->gconf, j);
                    if (pm) {
                        if (popcount64((pm - 1) ^ voters_mask(&cc)) > 1)
                            fail(s, "membership: committed configs %" PRIu64 " and %" PRIu64
                                 " differ by more than one voter", j, i);
                        break;
                    }
                    if (j == 1 && popcount64(voters_mask(&s->initial) ^ voters_mask(&cc)) > 1)
                        fail(s, "membership: first committed config differs by >1 voter");
                }
            }
        } else if (g != t) {
            fail(s, "state machine safety: node %" PRIu64 " committed term %" PRIu64
                 " at %" PRIu64 ", another committed term %" PRIu64, n->id, t, i, g);
            return;
        }
        if (i > s->max_commit)
            s->max_commit = i;
    }
    if (c > n->commit_seen)
        n->commit_seen = c;
}

static void check_leader(struct sim *s, struct node *n)
{
    if (raft_role(n->r) != RAFT_LEADER)
        return;
    uint64_t term = raft_term(n->r);
    uint64_t *l = map_get(&s->leader_of_term, term);
    if (l == NULL) {
        map_put(&s->leader_of_term, term, n->id);
        s->n_elections++;
        if (s->faults && rn(s, 100) < s->new_leader_crash_pct)
            n->crash_at = s->now + 1 + (rn(s, 2) ? rn(s, 3) : rn(s, 40));
        ev(s, "n%" PRIu64 " leader term=%" PRIu64 " last=%" PRIu64, n->id, term,
           raft_last_index(n->r));
    } else if (*l != n->id) {
        fail(s, "election safety: nodes %" PRIu64 " and %" PRIu64 " both lead term %" PRIu64,
             *l, n->id, term);
        return;
    }
    if (n->leader_term_seen == term)
        return;
    n->leader_term_seen = term;
    /* leader completeness */
    if (raft_last_index(n->r) < s->max_commit) {
        fail(s, "leader completeness: leader %" PRIu64 " term %" PRIu64 " last %" PRIu64
             " < committed %" PRIu64, n->id, term, raft_last_index(n->r), s->max_commit);
        return;
    }
    for (uint64_t i = raft_snapshot_index(n->r) + 1; i <= s->max_commit; i++) {
        uint64_t g = vec_get(&s->gcommit, i);
        if (g != 0 && raft_term_at(n->r, i) != g) {
            fail(s, "leader completeness: leader %" PRIu64 " term %" PRIu64
                 " lacks committed entry %" PRIu64, n->id, term, i);
            return;
        }
    }
}

static void apply_entry(struct sim *s, struct node *n, const struct raft_entry *e)
{
    if (e->index != n->applied + 1) {
        fail(s, "node %" PRIu64 " applies %" PRIu64 " after %" PRIu64, n->id, e->index,
             n->applied);
        return;
    }
    uint64_t cmd = 0;
    if (e->type == RAFT_ENTRY_NORMAL && e->len >= 8)
        memcpy(&cmd, e->data, 8);
    n->sm_hash = h2(n->sm_hash, h2(e->type, bytes_hash(e->data, e->len)));
    n->applied = e->index;
    uint64_t g = vec_get(&s->gsm, e->index);
    if (g == 0) {
        vec_set(&s->gsm, e->index, n->sm_hash);
        if (cmd) {
            uint64_t *at = map_get(&s->cmd_index, cmd);
            if (at != NULL)
                fail(s, "exactly once: command %" PRIu64 " applied at %" PRIu64
                     " and %" PRIu64, cmd, *at, e->index);
            else
                map_put(&s->cmd_index, cmd, e->index);
        }
    } else if (g != n->sm_hash) {
        fail(s, "state machine safety: node %" PRIu64 " diverges at index %" PRIu64, n->id,
             e->index);
        return;
    }
    /* acknowledge the client if this node proposed it in this incarnation */
    for (size_t i = 0; i < s->n_props; i++) {
        struct pendprop *p = &s->props[i];
        if (p->node != n->id || p->index != e->index)
            continue;
        if (p->inc == n->incarnation && p->term == e->term && p->cmd == cmd) {
            map_put(&s->acked, p->cmd, e->index);
            s->n_acked++;
            if (e->index > s->max_acked_index)
                s->max_acked_index = e->index;
        }
        s->props[i] = s->props[--s->n_props];
        i--;
    }
}

/* ------------------------------------------------------------------------ */
/* node lifecycle */

/* The log-storage seam (raft_options.read_entry): reads an evicted payload
 * back from the node's simulated disk. */
static int sim_read_entry(void *arg, uint64_t index, uint64_t term, uint8_t **data, uint32_t *len)
{
    struct node *n = arg;
    if (n->n_log == 0 || index < n->log[0].index || index > n->log[n->n_log - 1].index)
        return RAFT_EINVAL;
    const struct dentry *d = &n->log[index - n->log[0].index];
    if (d->term != term)
        return RAFT_EINVAL;
    *data = xmalloc(d->len ? d->len : 1);
    if (d->len)
        memcpy(*data, d->data, d->len);
    *len = d->len;
    return RAFT_OK;
}

static struct raft_options node_options(struct sim *s, struct node *n)
{
    struct raft_options o = {0};
    o.id = n->id;
    o.election_ticks = s->election_ticks;
    o.heartbeat_ticks = 2;
    o.max_inflight = s->max_inflight;
    o.max_entries_per_msg = s->max_entries_per_msg;
    o.max_msg_bytes = 4096;
    o.max_uncommitted = 512;
    o.max_pending_reads = 16;
    o.pre_vote = s->pre_vote;
    o.check_quorum = s->check_quorum;
    /* every third seed abandons a leadership transfer after 2 ticks (the
     * storage node's short bound) instead of one election timeout; taken from
     * the seed, not the PRNG, so every seed's weather stays as it was */
    o.transfer_ticks = s->seed % 3 == 0 ? 2 : 0;
    o.seed = s->seed * 1000003ULL + n->incarnation;
    o.test_bugs = s->bugs;
    if (s->seed % 2) { /* odd seeds: payloads evicted to the disk, read back */
        o.read_entry = sim_read_entry;
        o.read_arg = n;
        o.keep_recent = 1 + (uint32_t)(s->seed / 2 % 8);
    }
    return o;
}

static void node_boot(struct sim *s, struct node *n)
{
    struct raft_entry *ents = xmalloc((n->n_log + 1) * sizeof(*ents));
    for (size_t i = 0; i < n->n_log; i++)
        ents[i] = (struct raft_entry){n->log[i].term, n->log[i].index, n->log[i].type,
                                      n->log[i].len, n->log[i].data};
    struct raft_boot b = {0};
    b.hard_state = n->hs;
    b.snapshot = n->has_snap ? &n->snap : NULL;
    b.initial = n->original ? &s->initial : NULL;
    b.entries = ents;
    b.n_entries = n->n_log;
    struct raft_options o = node_options(s, n);
    int rc = raft_create(&o, &b, &n->r);
    free(ents);
    if (rc != RAFT_OK) {
        fail(s, "node %" PRIu64 " failed to boot: %s", n->id, raft_status_name(rc));
        return;
    }
    n->up = true;
    /* state machine restarts from the snapshot */
    free(n->chain.a);
    memset(&n->chain, 0, sizeof(n->chain));
    n->applied = 0;
    n->sm_hash = 0;
    if (n->has_snap) {
        struct snapimg img;
        memcpy(&img, n->snapbuf, sizeof(img));
        n->applied = img.applied;
        n->sm_hash = img.sm_hash;
        vec_set(&n->chain, img.applied, img.chain);
    }
    for (size_t i = 0; i < n->n_log; i++) {
        struct raft_entry e = {n->log[i].term, n->log[i].index, n->log[i].type, n->log[i].len,
                               n->log[i].data};
        mirror_append(s, n, &e);
    }
    n->commit_seen = raft_snapshot_index(n->r);
    n->leader_term_seen = 0;
    n->next_tick = s->now + 1 + rn(s, n->tick_period);
}

static void disk_truncate(struct node *n, uint64_t from)
{
    while (n->n_log > 0 && n->log[n->n_log - 1].index >= from) {
        free(n->log[n->n_log - 1].data);
        n->n_log--;
    }
}

static void disk_append(struct node *n, const struct dentry *e)
{
    n->log = xrealloc(n->log, (n->n_log + 1) * sizeof(*n->log));
    struct dentry *d = &n->log[n->n_log++];
    *d = *e;
    d->data = NULL;
    if (e->len) {
        d->data = xmalloc(e->len);
        memcpy(d->data, e->data, e->len);
    }
}

static void write_free(struct write *w)
{
    for (size_t i = 0; i < w->n; i++)
        free(w->e[i].data);
    free(w->e);
}

static void node_crash(struct sim *s, struct node *n)
{
    if (!n->up)
        return;
    s->n_crashes++;
    /* the oldest unfinished write may be torn: a prefix of it reached the disk */
    if (n->n_wq > 0 && chance(s, 5000)) {
        struct write *w = &n->wq[0];
        size_t keep = rn(s, (uint32_t)w->n + 1);
        disk_truncate(n, w->e[0].index);
        for (size_t i = 0; i < keep; i++)
            disk_append(n, &w->e[i]);
        ev(s, "n%" PRIu64 " torn write kept %zu/%zu", n->id, keep, w->n);
    }
    for (size_t i = 0; i < n->n_wq; i++)
        write_free(&n->wq[i]);
    n->n_wq = 0;
    /* what it sent in the last two steps may still sit in its send buffers */
    size_t kept = 0;
    for (size_t i = 0; i < s->n_net; i++) {
        struct netmsg *nm = s->net[i];
        if (nm->m.from == n->id && nm->sent_at + 2 >= s->now && rn(s, 2)) {
            free(nm);
            continue;
        }
        s->net[kept++] = nm;
    }
    s->n_net = kept;
    raft_destroy(n->r);
    n->r = NULL;
    n->up = false;
    n->crash_at = 0;
    n->incarnation++;
    n->down_until = s->now + 10 + rn(s, rn(s, 2) ? 60 : 400);
    ev(s, "n%" PRIu64 " crash", n->id);
}

static void node_restart(struct sim *s, struct node *n)
{
    ev(s, "n%" PRIu64 " restart disk_last=%" PRIu64 " snap=%" PRIu64, n->id,
       n->n_log ? n->log[n->n_log - 1].index : 0, n->has_snap ? n->snap.index : 0);
    node_boot(s, n);
}

/* Carries out every ready batch of a node (the "application" loop). */
static void drain(struct sim *s, struct node *n)
{
    if (!n->up)
        return;
    for (int guard = 0; guard < 100 && raft_has_ready(n->r) && !s->failed; guard++) {
        struct raft_ready rd;
        raft_ready(n->r, &rd);
        if (rd.snapshot) {
            const struct raft_snapshot *sn = rd.snapshot;
            struct snapimg img;
            if (sn->len != sizeof(img)) {
                fail(s, "bad snapshot size");
                raft_advance(n->r);
                return;
            }
            memcpy(&img, sn->data, sizeof(img));
            if (img.applied != sn->index ||
                (vec_get(&s->gsm, sn->index) && vec_get(&s->gsm, sn->index) != img.sm_hash))
                fail(s, "state machine safety: snapshot at %" PRIu64 " installed on node %"
                     PRIu64 " differs", sn->index, n->id);
            /* persist: the snapshot replaces the whole stored log */
            for (size_t i = 0; i < n->n_wq; i++)
                write_free(&n->wq[i]);
            n->n_wq = 0;
            disk_truncate(n, 0);
            n->has_snap = true;
            n->snap = *sn;
            memcpy(n->snapbuf, sn->data, sizeof(img));
            n->snap.data = n->snapbuf;
            n->applied = img.applied;
            n->sm_hash = img.sm_hash;
            free(n->chain.a);
            memset(&n->chain, 0, sizeof(n->chain));
            vec_set(&n->chain, img.applied, img.chain);
            s->n_snap_installs++;
            ev(s, "n%" PRIu64 " install snapshot %" PRIu64, n->id, sn->index);
        }
        if (rd.hard_state_changed) {
            if (rd.hard_state.term < n->hs.term ||
                (rd.hard_state.term == n->hs.term && n->hs.vote &&
                 rd.hard_state.vote != n->hs.vote))
                fail(s, "node %" PRIu64 " rewrote its vote in term %" PRIu64, n->id,
                     rd.hard_state.term);
            n->hs = rd.hard_state;
        }
        if (rd.n_entries > 0) {
            for (size_t i = 0; i < rd.n_entries; i++)
                mirror_append(s, n, &rd.entries[i]);
            struct write w;
            uint64_t last_done = n->n_wq ? n->wq[n->n_wq - 1].done_at : s->now;
            /* latency counts from submission; writes still finish in order */
            w.done_at = s->now + rn(s, n->disk_delay + 1);
            if (w.done_at < last_done)
                w.done_at = last_done;
            w.n = rd.n_entries;
            w.e = xmalloc(w.n * sizeof(*w.e));
            for (size_t i = 0; i < w.n; i++) {
                const struct raft_entry *e = &rd.entries[i];
                w.e[i] = (struct dentry){e->term, e->index, e->type, e->len, NULL};
                if (e->len) {
                    w.e[i].data = xmalloc(e->len);
                    memcpy(w.e[i].data, e->data, e->len);
                }
            }
            n->wq = xrealloc(n->wq, (n->n_wq + 1) * sizeof(*n->wq));
            n->wq[n->n_wq++] = w;
        }
        for (size_t i = 0; i < rd.n_msgs; i++) {
            if (s->trace)
                ev(s, "send %s %" PRIu64 "->%" PRIu64 " term=%" PRIu64 " idx=%" PRIu64
                   " n=%u rej=%u", raft_msg_type_name(rd.msgs[i].type), rd.msgs[i].from,
                   rd.msgs[i].to, rd.msgs[i].term, rd.msgs[i].index, rd.msgs[i].n_entries,
                   rd.msgs[i].reject);
            net_send(s, &rd.msgs[i]);
        }
        for (size_t i = 0; i < rd.n_committed && !s->failed; i++)
            apply_entry(s, n, &rd.committed[i]);
        for (size_t i = 0; i < rd.n_reads; i++) {
            for (size_t k = 0; k < s->n_reads; k++) {
                struct pendread *p = &s->reads[k];
                if (p->ctx != rd.reads[i].ctx)
                    continue;
                if (rd.reads[i].index < p->min_index)
                    fail(s, "read index: read %" PRIu64 " at %" PRIu64
                         " misses a write acknowledged at %" PRIu64, p->ctx,
                         rd.reads[i].index, p->min_index);
                s->n_reads_done++;
                s->reads[k] = s->reads[--s->n_reads];
                break;
            }
        }
        raft_advance(n->r);
    }
    record_commits(s, n);
    check_leader(s, n);
}

static void disk_progress(struct sim *s, struct node *n)
{
    while (n->up && n->n_wq > 0 && n->wq[0].done_at <= s->now) {
        struct write w = n->wq[0];
        memmove(n->wq, n->wq + 1, (n->n_wq - 1) * sizeof(*n->wq));
        n->n_wq--;
        disk_truncate(n, w.e[0].index);
        for (size_t i = 0; i < w.n; i++)
            disk_append(n, &w.e[i]);
        raft_persisted(n->r, w.e[w.n - 1].index, w.e[w.n - 1].term);
        write_free(&w);
        drain(s, n);
    }
}

/* ------------------------------------------------------------------------ */
/* the schedule */

static struct node *a_leader(struct sim *s)
{
    struct node *best = NULL;
    for (int i = 0; i < s->n_slots; i++) {
        struct node *n = &s->nodes[i];
        if (n->up && raft_role(n->r) == RAFT_LEADER &&
            (best == NULL || raft_term(n->r) > raft_term(best->r)))
            best = n;
    }
    return best;
}

/* Any node that believes it leads, newest term or not: a client that talks to a
 * deposed leader creates the divergent suffixes that Figure 8 needs. */
static struct node *any_leader(struct sim *s)
{
    struct node *c[MAX_SLOTS];
    int n = 0;
    for (int i = 0; i < s->n_slots; i++)
        if (s->nodes[i].up && raft_role(s->nodes[i].r) == RAFT_LEADER)
            c[n++] = &s->nodes[i];
    return n ? c[rn(s, (uint32_t)n)] : NULL;
}

static void do_propose(struct sim *s)
{
    struct node *l = rn(s, 2) ? a_leader(s) : any_leader(s);
    if (l == NULL)
        return;
    uint32_t k = chance(s, 1000) ? 16 : 1 + rn(s, 4);
    struct raft_proposal batch[16];
    uint8_t bufs[16][24];
    uint64_t cmds[16];
    for (uint32_t i = 0; i < k; i++) {
        cmds[i] = ++s->next_cmd;
        memset(bufs[i], 0, sizeof(bufs[i]));
        memcpy(bufs[i], &cmds[i], 8);
        uint64_t noise = rnd(s);
        memcpy(bufs[i] + 8, &noise, 8);
        batch[i].len = 8 + rn(s, 17);
        batch[i].data = bufs[i];
    }
    uint64_t first;
    int rc = raft_propose(l->r, batch, k, &first);
    ev(s, "n%" PRIu64 " propose %u cmds from %" PRIu64 " rc=%s", l->id, k, s->next_cmd - k + 1,
       raft_status_name(rc));
    if (rc != RAFT_OK)
        return;
    for (uint32_t i = 0; i < k; i++) {
        if (s->n_props == s->cap_props) {
            s->cap_props = s->cap_props ? s->cap_props * 2 : 256;
            s->props = xrealloc(s->props, s->cap_props * sizeof(*s->props));
        }
        s->props[s->n_props++] = (struct pendprop){cmds[i], l->id, l->incarnation, first + i,
                                                   raft_term(l->r)};
    }
    drain(s, l);
}

static void do_member_change(struct sim *s)
{
    struct node *l = a_leader(s);
    if (l == NULL)
        return;
    struct raft_config c;
    raft_get_config(l->r, &c);
    uint64_t id = 1 + rn(s, (uint32_t)s->n_slots);
    int at = -1;
    for (uint32_t i = 0; i < c.n; i++)
        if (c.nodes[i].id == id)
            at = (int)i;
    uint32_t voters = raft_config_voters(&c);
    int rc;
    const char *what;
    if (at < 0) {
        what = "add-learner";
        rc = raft_change_member(l->r, id, RAFT_LEARNER, false, NULL);
    } else if (c.nodes[at].role == RAFT_LEARNER) {
        if (chance(s, 7000)) {
            what = "promote";
            rc = raft_change_member(l->r, id, RAFT_VOTER, false, NULL);
        } else {
            what = "remove-learner";
            rc = raft_change_member(l->r, id, 0, true, NULL);
        }
    } else {
        if (voters <= 3 && s->n_initial >= 3) {
            return; /* keep at least three voters so faults stay survivable */
        }
        if (chance(s, 5000)) {
            what = "demote";
            rc = raft_change_member(l->r, id, RAFT_LEARNER, false, NULL);
        } else {
            what = "remove-voter";
            rc = raft_change_member(l->r, id, 0, true, NULL);
        }
    }
    ev(s, "n%" PRIu64 " member %s %" PRIu64 " rc=%s", l->id, what, id, raft_status_name(rc));
    if (rc == RAFT_OK)
        s->n_conf++;
    drain(s, l);
}

static void do_transfer(struct sim *s)
{
    struct node *l = a_leader(s);
    if (l == NULL)
        return;
    uint64_t to = 1 + rn(s, (uint32_t)s->n_slots);
    int rc = raft_transfer_leadership(l->r, to);
    ev(s, "n%" PRIu64 " transfer to %" PRIu64 " rc=%s", l->id, to, raft_status_name(rc));
    if (rc == RAFT_OK)
        s->n_transfers++;
    drain(s, l);
}

static void do_read(struct sim *s)
{
    struct node *l = a_leader(s);
    if (l == NULL || s->n_reads >= 64)
        return;
    uint64_t ctx = ++s->next_read;
    int rc = raft_read_index(l->r, ctx);
    if (rc == RAFT_OK) {
        s->reads[s->n_reads++] = (struct pendread){ctx, l->id, l->incarnation, s->max_acked_index};
        drain(s, l);
    }
}

static void do_compact(struct sim *s, struct node *n)
{
    if (!n->up)
        return;
    uint64_t applied = raft_applied_index(n->r);
    if (applied < raft_snapshot_index(n->r) + 10 || n->applied != applied)
        return;
    /* the application's image is of its state now, so it snapshots at applied */
    uint64_t at = applied;
    struct snapimg img = {n->applied, n->sm_hash, vec_get(&n->chain, n->applied)};
    int rc = raft_compact(n->r, at, (const uint8_t *)&img, sizeof(img));
    if (rc != RAFT_OK) {
        fail(s, "compact at %" PRIu64 " on node %" PRIu64 ": %s", at, n->id, raft_status_name(rc));
        return;
    }
    /* persist the snapshot and drop the covered part of the stored log */
    n->has_snap = true;
    n->snap = *raft_get_snapshot(n->r);
    if (n->snap.index != at || n->snap.term != raft_term_at(n->r, at))
        fail(s, "snapshot metadata after compact");
    memcpy(n->snapbuf, &img, sizeof(img));
    n->snap.len = sizeof(img);
    n->snap.data = n->snapbuf;
    size_t drop = 0;
    while (drop < n->n_log && n->log[drop].index <= at) {
        free(n->log[drop].data);
        drop++;
    }
    memmove(n->log, n->log + drop, (n->n_log - drop) * sizeof(*n->log));
    n->n_log -= drop;
    ev(s, "n%" PRIu64 " compact at %" PRIu64, n->id, at);
}

static void do_partition(struct sim *s)
{
    memset(s->blocked, 0, sizeof(s->blocked));
    int kind = (int)rn(s, 6);
    int k = (int)rn(s, (uint32_t)s->n_slots);
    switch (kind) {
    case 0:
        ev(s, "heal");
        break;
    case 1: /* symmetric: isolate k */
        for (int j = 0; j < s->n_slots; j++)
            if (j != k)
                s->blocked[k][j] = s->blocked[j][k] = true;
        ev(s, "isolate n%d", k + 1);
        break;
    case 2: /* asymmetric: k can hear but not speak */
        for (int j = 0; j < s->n_slots; j++)
            if (j != k)
                s->blocked[k][j] = true;
        ev(s, "mute n%d", k + 1);
        break;
    case 3: /* asymmetric: k can speak but not hear */
        for (int j = 0; j < s->n_slots; j++)
            if (j != k)
                s->blocked[j][k] = true;
        ev(s, "deafen n%d", k + 1);
        break;
    case 4: { /* split into two groups */
        uint32_t mask = rn(s, 1u << s->n_slots);
        for (int i = 0; i < s->n_slots; i++)
            for (int j = 0; j < s->n_slots; j++)
                if (((mask >> i) & 1) != ((mask >> j) & 1))
                    s->blocked[i][j] = true;
        ev(s, "split mask=%x", mask);
        break;
    }
    default: /* partial: random links cut */
        for (int i = 0; i < s->n_slots; i++)
            for (int j = 0; j < s->n_slots; j++)
                if (i != j && chance(s, 2500))
                    s->blocked[i][j] = true;
        ev(s, "partial");
        break;
    }
}

static void deliver(struct sim *s)
{
    /* pick due messages in random order: the network reorders */
    size_t due = 0;
    for (size_t i = 0; i < s->n_net; i++) {
        if (s->net[i]->at <= s->now) {
            struct netmsg *t = s->net[due];
            s->net[due] = s->net[i];
            s->net[i] = t;
            due++;
        }
    }
    for (size_t i = due; i > 1; i--) {
        size_t j = rn(s, (uint32_t)i);
        struct netmsg *t = s->net[i - 1];
        s->net[i - 1] = s->net[j];
        s->net[j] = t;
    }
    struct netmsg **batch = xmalloc((due + 1) * sizeof(*batch));
    memcpy(batch, s->net, due * sizeof(*batch));
    memmove(s->net, s->net + due, (s->n_net - due) * sizeof(*s->net));
    s->n_net -= due;
    for (size_t i = 0; i < due && !s->failed; i++) {
        struct netmsg *nm = batch[i];
        struct node *n = node_of(s, nm->m.to);
        if (n && n->up) {
            if (s->trace)
                ev(s, "recv %s %" PRIu64 "->%" PRIu64 " term=%" PRIu64 " idx=%" PRIu64,
                   raft_msg_type_name(nm->m.type), nm->m.from, nm->m.to, nm->m.term,
                   nm->m.index);
            int rc = raft_step(n->r, &nm->m);
            if (rc != RAFT_OK)
                fail(s, "node %" PRIu64 " rejected a well-formed message: %s", n->id,
                     raft_status_name(rc));
            drain(s, n);
        }
    }
    for (size_t i = 0; i < due; i++)
        free(batch[i]);
    free(batch);
}

static void sim_step(struct sim *s)
{
    s->now++;
    if (s->faults) {
        if (chance(s, 1000))
            do_propose(s);
        if (chance(s, s->partition_rate))
            do_partition(s);
        if (chance(s, s->crash_rate)) {
            struct node *n = &s->nodes[rn(s, (uint32_t)s->n_slots)];
            node_crash(s, n);
        }
        if (chance(s, s->leader_crash_rate)) {
            struct node *l = a_leader(s);
            if (l != NULL)
                node_crash(s, l);
        }
        if (chance(s, 25))
            do_member_change(s);
        if (chance(s, 10))
            do_transfer(s);
        if (chance(s, 150))
            do_read(s);
        if (chance(s, 60))
            do_compact(s, &s->nodes[rn(s, (uint32_t)s->n_slots)]);
        if (chance(s, 20)) {
            s->drop_pct = rn(s, 4) == 0 ? 20 : rn(s, 6);
            s->dup_pct = rn(s, 5);
            s->max_delay = 2 + rn(s, 10);
        }
    }
    for (int i = 0; i < s->n_slots && !s->failed; i++) {
        struct node *n = &s->nodes[i];
        if (!n->up && n->down_until <= s->now)
            node_restart(s, n);
        else if (n->up && n->crash_at != 0 && n->crash_at <= s->now && s->faults)
            node_crash(s, n);
    }
    deliver(s);
    for (int i = 0; i < s->n_slots && !s->failed; i++) {
        struct node *n = &s->nodes[i];
        if (!n->up)
            continue;
        disk_progress(s, n);
        if (n->next_tick <= s->now) {
            n->next_tick = s->now + n->tick_period;
            raft_tick(n->r);
            drain(s, n);
        }
    }
}

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
