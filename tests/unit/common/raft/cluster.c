/* cluster.c: see cluster.h. */
#include "cluster.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

void tc_init(struct tc *c, int n, int voters, void (*tweak)(struct raft_options *))
{
    memset(c, 0, sizeof(*c));
    assert(n <= TC_MAX);
    c->n = n;
    c->q = calloc(TC_MAXQ, sizeof(*c->q));
    assert(c->q != NULL);
    struct raft_config cfg = {0};
    for (int i = 0; i < voters; i++) {
        cfg.nodes[i].id = (uint64_t)i + 1;
        cfg.nodes[i].role = RAFT_VOTER;
    }
    cfg.n = (uint32_t)voters;
    for (int id = 1; id <= n; id++) {
        struct raft_options o = {0};
        o.id = (uint64_t)id;
        o.election_ticks = 10;
        o.heartbeat_ticks = 1;
        o.pre_vote = true;
        o.check_quorum = true;
        o.seed = 42;
        if (tweak)
            tweak(&o);
        struct raft_boot b = {0};
        b.initial = id <= voters ? &cfg : NULL;
        int rc = raft_create(&o, &b, &c->nodes[id].r);
        assert(rc == RAFT_OK);
        (void)rc;
    }
}

void tc_free(struct tc *c)
{
    for (int id = 1; id <= c->n; id++)
        raft_destroy(c->nodes[id].r);
    free(c->q);
}

static void enqueue(struct tc *c, const struct raft_msg *m)
{
    if (c->cut[m->from][m->to])
        return;
    assert(c->nq < TC_MAXQ);
    struct tc_msg *t = &c->q[c->nq++];
    t->m = *m;
    assert(m->n_entries <= 64);
    for (uint32_t i = 0; i < m->n_entries; i++) {
        t->ents[i] = m->entries[i];
        assert(m->entries[i].len <= sizeof(t->data[i]));
        if (m->entries[i].len)
            memcpy(t->data[i], m->entries[i].data, m->entries[i].len);
        t->ents[i].data = t->data[i];
    }
    t->m.entries = t->ents;
    if (m->type == RAFT_MSG_SNAPSHOT) {
        assert(m->snapshot.len <= sizeof(t->snap));
        memcpy(t->snap, m->snapshot.data, m->snapshot.len);
        t->m.snapshot.data = t->snap;
    }
    c->sent_by_type[m->type]++;
    if (m->type == RAFT_MSG_APPEND_RESP && m->reject)
        c->rejects++;
}

void tc_drain(struct tc *c, int id)
{
    struct tc_node *n = &c->nodes[id];
    while (raft_has_ready(n->r)) {
        struct raft_ready rd;
        raft_ready(n->r, &rd);
        if (rd.snapshot) {
            /* the test state machine's image is its applied array prefix */
            n->last_applied = rd.snapshot->index;
            n->snapshots_installed++;
        }
        uint64_t li = 0, lt = 0;
        if (rd.n_entries > 0) {
            li = rd.entries[rd.n_entries - 1].index;
            lt = rd.entries[rd.n_entries - 1].term;
        }
        for (size_t i = 0; i < rd.n_msgs; i++)
            enqueue(c, &rd.msgs[i]);
        for (size_t i = 0; i < rd.n_committed; i++) {
            const struct raft_entry *e = &rd.committed[i];
            assert(e->index == n->last_applied + 1);
            uint64_t v = 0;
            if (e->type == RAFT_ENTRY_NORMAL && e->len >= 8)
                memcpy(&v, e->data, 8);
            if (e->index < 4096)
                n->applied[e->index] = v;
            n->last_applied = e->index;
        }
        for (size_t i = 0; i < rd.n_reads && n->n_reads < 64; i++)
            n->reads[n->n_reads++] = rd.reads[i];
        raft_advance(n->r);
        if (li) {
            if (n->manual_disk) {
                assert(n->n_pending < 256);
                n->pending[n->n_pending++] = (struct tc_write){li, lt};
            } else {
                raft_persisted(n->r, li, lt);
            }
        }
    }
}

void tc_flush(struct tc *c, int id)
{
    struct tc_node *n = &c->nodes[id];
    for (int i = 0; i < n->n_pending; i++)
        raft_persisted(n->r, n->pending[i].index, n->pending[i].term);
    n->n_pending = 0;
    tc_drain(c, id);
}

void tc_tick(struct tc *c, int id, int times)
{
    for (int i = 0; i < times; i++) {
        raft_tick(c->nodes[id].r);
        tc_drain(c, id);
    }
}

void tc_deliver(struct tc *c)
{
    for (int rounds = 0; c->nq > 0 && rounds < 10000; rounds++) {
        struct tc_msg *batch = malloc((size_t)c->nq * sizeof(*batch));
        assert(batch != NULL);
        int nb = c->nq;
        memcpy(batch, c->q, (size_t)nb * sizeof(*batch));
        c->nq = 0;
        for (int i = 0; i < nb; i++) {
            struct tc_msg *t = &batch[i];
            t->m.entries = t->ents; /* re-point after the copy */
            if (t->m.type == RAFT_MSG_SNAPSHOT)
                t->m.snapshot.data = t->snap;
            int to = (int)t->m.to;
            if (c->cut[t->m.from][to])
                continue;
            int rc = raft_step(c->nodes[to].r, &t->m);
            assert(rc == RAFT_OK);
            (void)rc;
            tc_drain(c, to);
        }
        free(batch);
    }
}

void tc_drop_all(struct tc *c) { c->nq = 0; }

void tc_isolate(struct tc *c, int id)
{
    for (int j = 1; j <= TC_MAX; j++)
        if (j != id)
            c->cut[id][j] = c->cut[j][id] = true;
}

void tc_heal(struct tc *c) { memset(c->cut, 0, sizeof(c->cut)); }

uint32_t tc_campaign(struct tc *c, int id)
{
    struct raft *r = c->nodes[id].r;
    for (int i = 0; i < 40 && raft_role(r) == RAFT_FOLLOWER; i++)
        tc_tick(c, id, 1);
    tc_deliver(c);
    return raft_role(r);
}

int tc_propose(struct tc *c, int id, uint64_t value)
{
    uint8_t buf[8];
    memcpy(buf, &value, 8);
    struct raft_proposal p = {8, buf};
    int rc = raft_propose(c->nodes[id].r, &p, 1, NULL);
    tc_drain(c, id);
    return rc;
}
