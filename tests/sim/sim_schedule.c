/* sim_schedule.c: the simulator's random schedule: proposals, membership
 * changes, leadership transfers, reads, compactions, partitions, message
 * delivery and one step of the whole cluster (sim_step). */
#include "sim.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ------------------------------------------------------------------------ */
/* the schedule */

struct node *a_leader(struct sim *s)
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

void do_propose(struct sim *s)
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

void sim_step(struct sim *s)
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

