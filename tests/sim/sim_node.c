/* sim_node.c: the simulator's network (send with drops, delays, duplicates
 * and partitions) and a node's life: boot, the drain of its Raft ready
 * (writes, messages, commits, snapshots), its disk completing writes late,
 * crash (losing unfinished writes, the oldest maybe torn) and restart. */
#include "sim.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

void node_boot(struct sim *s, struct node *n)
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

void disk_truncate(struct node *n, uint64_t from)
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

void write_free(struct write *w)
{
    for (size_t i = 0; i < w->n; i++)
        free(w->e[i].data);
    free(w->e);
}

void node_crash(struct sim *s, struct node *n)
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

void node_restart(struct sim *s, struct node *n)
{
    ev(s, "n%" PRIu64 " restart disk_last=%" PRIu64 " snap=%" PRIu64, n->id,
       n->n_log ? n->log[n->n_log - 1].index : 0, n->has_snap ? n->snap.index : 0);
    node_boot(s, n);
}

/* Carries out every ready batch of a node (the "application" loop). */
void drain(struct sim *s, struct node *n)
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

void disk_progress(struct sim *s, struct node *n)
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

