/* sim_oracle.c: the simulator's safety checks (the "oracle" listed in
 * sim.c): log matching through a chained hash per (index, term), leader
 * completeness, commit safety against durable logs, state machine safety
 * and exactly-once as entries are applied, leader and membership checks. */
#include "sim.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ------------------------------------------------------------------------ */
/* oracle pieces */

static uint64_t entry_key(uint64_t index, uint64_t term) { return h2(index, term) | 1; }

/* Records that node n now holds entry e (in memory).  Log matching. */
void mirror_append(struct sim *s, struct node *n, const struct raft_entry *e)
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

void record_commits(struct sim *s, struct node *n)
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

void check_leader(struct sim *s, struct node *n)
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

void apply_entry(struct sim *s, struct node *n, const struct raft_entry *e)
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

