/* raft.c: the Raft core (see raft.h for the contract and the safety rules
 * S1..S6 cited below).
 *
 * Layout of the state:
 *   - The log window: ents[0..n_ents) hold indexes snap.index+1 .. last.  Each
 *     payload is its own allocation; when an entry leaves the window (conflict
 *     truncation, compaction) its payload goes to `garbage` and is freed at the
 *     next raft_advance, because messages already in the outbox may point at it.
 *   - Three cursors over the log: `handed` (entries given to the caller to
 *     write), `stable` (reported durable, S2/S3), `applied` (handed to the state
 *     machine).  Invariants: applied <= commit, applied <= stable <= handed <=
 *     last, except while a received snapshot is pending (snap_pending), when
 *     nothing is applied or acknowledged until the caller installed it.
 *   - prs[]: one progress record per member of the configuration in force,
 *     including this node.  The leader uses match/next/state; candidates use
 *     vote_state; the read-index round uses read_ack.
 *   - The outbox: messages produced since the last raft_advance.  Entries in
 *     messages are copied struct-wise into `arena` (payload pointers shared with
 *     the log) and fixed up in raft_ready, since both arrays may grow.
 *
 * Replication states per follower (like etcd's Progress): PROBE sends one
 * APPEND and waits for its answer; REPLICATE streams up to max_inflight APPENDs
 * optimistically; SNAPSHOT waits for the snapshot to be acknowledged (or gives
 * up after an election timeout and probes again).
 */
#include "raft.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

enum { PR_PROBE = 0, PR_REPLICATE = 1, PR_SNAPSHOT = 2 };
enum { VOTE_NONE = 0, VOTE_GRANTED = 1, VOTE_REJECTED = 2 };

struct progress {
    uint64_t id;
    bool voter;
    int state;
    uint64_t match;
    uint64_t next;
    bool probe_sent;
    bool recent_active;
    uint64_t pending_snapshot;
    uint32_t snap_elapsed;
    uint64_t read_ack;
    bool departing; /* removed by an uncommitted configuration (leader only) */
    uint64_t hb_match; /* match at the previous heartbeat answer */
    uint32_t stall_rounds; /* heartbeat answers in a row without progress */
    uint64_t resp_tick; /* leader: r->ticks + 1 at its last answer this term; 0 none */
    int vote_state;
    uint64_t *infl; /* ring of last indexes of APPENDs in flight */
    uint32_t infl_start;
    uint32_t infl_count;
};

struct pending_read {
    uint64_t ctx;
    uint64_t index;
    uint64_t seq;
};

struct raft {
    struct raft_options o;

    /* persistent */
    uint64_t term;
    uint64_t vote;
    uint64_t floor_term, floor_index; /* S7: the lost log's up-to-dateness; 0, 0: none */

    /* the application cannot serve: never campaign (raft_step_aside) */
    bool aside;

    /* volatile */
    uint32_t role;
    uint64_t leader;
    uint64_t commit;
    uint64_t applied;
    uint64_t stable;
    uint64_t handed;

    /* log window */
    struct raft_entry *ents;
    size_t n_ents;
    size_t cap_ents;

    /* snapshot (data owned) */
    struct raft_snapshot snap;
    uint8_t *snap_data;
    bool snap_pending;      /* received, not yet installed by the caller */

    /* configuration in force */
    struct raft_config config;
    uint64_t config_index;
    struct progress prs[RAFT_MAX_NODES + 1]; /* see PR_SLOTS */
    uint32_t n_prs;
    uint64_t *infl_mem;

    /* follower acknowledgement (S2) */
    uint64_t ack_pending; /* log matches the leader of this term up to here */
    uint64_t ack_sent;

    /* timers */
    uint32_t election_elapsed;
    uint32_t heartbeat_elapsed;
    uint32_t randomized_timeout;
    uint64_t rng;
    uint64_t ticks; /* raft_tick calls since creation (peer answer ages) */

    /* leader */
    uint64_t term_start; /* index of this leader's no-op */
    uint64_t transferee;
    uint32_t transfer_elapsed; /* ticks since the transfer began */
    uint64_t read_seq;
    struct pending_read *pending;
    uint32_t n_pending;
    struct raft_read *reads;
    uint32_t n_reads;

    /* outbox */
    struct raft_msg *out;
    size_t *out_off;
    size_t n_out;
    size_t cap_out;
    struct raft_entry *arena;
    size_t n_arena;
    size_t cap_arena;

    /* payloads of entries up to here may have been evicted (read_entry seam) */
    uint64_t evicted;

    /* payloads to free at the next advance */
    void **garbage;
    size_t n_garbage;
    size_t cap_garbage;

    /* what the last raft_ready handed out */
    bool in_ready;
    size_t rd_n_entries;
    size_t rd_n_committed;
    bool rd_snapshot;
    struct raft_hard_state rd_hs;
    uint32_t prev_role;
    uint64_t prev_leader;
    struct raft_hard_state prev_hs;
};

/* ------------------------------------------------------------------------ */
/* small helpers */

static uint64_t min_u64(uint64_t a, uint64_t b) { return a < b ? a : b; }
static uint64_t max_u64(uint64_t a, uint64_t b) { return a > b ? a : b; }

static uint64_t rng_next(struct raft *r)
{
    /* xorshift64*: deterministic, seeded at creation (no global rand). */
    uint64_t x = r->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    r->rng = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static uint64_t last_index(const struct raft *r) { return r->snap.index + r->n_ents; }

static uint64_t term_at(const struct raft *r, uint64_t idx)
{
    if (idx == r->snap.index)
        return r->snap.term;
    if (idx < r->snap.index || idx > last_index(r))
        return 0;
    return r->ents[idx - r->snap.index - 1].term;
}

static const struct raft_entry *ent_at(const struct raft *r, uint64_t idx)
{
    if (idx <= r->snap.index || idx > last_index(r))
        return NULL;
    return &r->ents[idx - r->snap.index - 1];
}

static uint64_t last_term(const struct raft *r) { return term_at(r, last_index(r)); }

static bool bug(const struct raft *r, uint32_t b) { return (r->o.test_bugs & b) != 0; }

static void garbage_drop_outbox(struct raft *r)
{
    r->n_out = 0;
    r->n_arena = 0;
}

/* Defers freeing p until the next raft_advance.  If the list cannot grow, the
 * outbox (the only other holder of payload pointers outside a ready) is
 * dropped, which Raft tolerates like any message loss, and p is freed now. */
static void garbage_push(struct raft *r, void *p)
{
    if (p == NULL)
        return;
    if (r->n_garbage == r->cap_garbage) {
        size_t cap = r->cap_garbage ? r->cap_garbage * 2 : 64;
        void **g = realloc(r->garbage, cap * sizeof(*g));
        if (g == NULL) {
            garbage_drop_outbox(r);
            free(p);
            return;
        }
        r->garbage = g;
        r->cap_garbage = cap;
    }
    r->garbage[r->n_garbage++] = p;
}

/* ------------------------------------------------------------------------ */
/* configuration */

bool raft_config_is_voter(const struct raft_config *c, uint64_t id)
{
    for (uint32_t i = 0; i < c->n; i++)
        if (c->nodes[i].id == id)
            return c->nodes[i].role == RAFT_VOTER;
    return false;
}

static int config_find(const struct raft_config *c, uint64_t id)
{
    for (uint32_t i = 0; i < c->n; i++)
        if (c->nodes[i].id == id)
            return (int)i;
    return -1;
}

uint32_t raft_config_voters(const struct raft_config *c)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < c->n; i++)
        n += c->nodes[i].role == RAFT_VOTER;
    return n;
}

size_t raft_config_encode(const struct raft_config *c, uint8_t *buf, size_t cap)
{
    size_t need = 4 + (size_t)c->n * 9;
    if (c->n > RAFT_MAX_NODES || cap < need)
        return 0;
    uint8_t *p = buf;
    for (int i = 0; i < 4; i++)
        *p++ = (uint8_t)(c->n >> (8 * i));
    for (uint32_t k = 0; k < c->n; k++) {
        for (int i = 0; i < 8; i++)
            *p++ = (uint8_t)(c->nodes[k].id >> (8 * i));
        *p++ = (uint8_t)c->nodes[k].role;
    }
    return need;
}

int raft_config_decode(const uint8_t *buf, size_t len, struct raft_config *out)
{
    if (len < 4)
        return RAFT_EINVAL;
    uint32_t n = 0;
    for (int i = 0; i < 4; i++)
        n |= (uint32_t)buf[i] << (8 * i);
    if (n > RAFT_MAX_NODES || len != 4 + (size_t)n * 9)
        return RAFT_EINVAL;
    memset(out, 0, sizeof(*out));
    const uint8_t *p = buf + 4;
    for (uint32_t k = 0; k < n; k++) {
        uint64_t id = 0;
        for (int i = 0; i < 8; i++)
            id |= (uint64_t)p[i] << (8 * i);
        uint8_t role = p[8];
        p += 9;
        if (id == 0 || role > RAFT_LEARNER || config_find(out, id) >= 0)
            return RAFT_EINVAL;
        out->nodes[k].id = id;
        out->nodes[k].role = role;
        out->n = k + 1;
    }
    out->n = n;
    return RAFT_OK;
}

static bool config_valid(const struct raft_config *c)
{
    if (c->n > RAFT_MAX_NODES)
        return false;
    for (uint32_t i = 0; i < c->n; i++) {
        if (c->nodes[i].id == 0 || c->nodes[i].role > RAFT_LEARNER)
            return false;
        for (uint32_t j = 0; j < i; j++)
            if (c->nodes[j].id == c->nodes[i].id)
                return false;
    }
    return true;
}

static struct progress *pr_find(struct raft *r, uint64_t id)
{
    for (uint32_t i = 0; i < r->n_prs; i++)
        if (r->prs[i].id == id)
            return &r->prs[i];
    return NULL;
}

static void pr_reset(struct raft *r, struct progress *pr)
{
    pr->state = PR_PROBE;
    pr->match = 0;
    pr->next = last_index(r) + 1;
    pr->probe_sent = false;
    pr->recent_active = false;
    pr->pending_snapshot = 0;
    pr->snap_elapsed = 0;
    pr->read_ack = 0;
    pr->resp_tick = 0;
    pr->vote_state = VOTE_NONE;
    pr->infl_start = 0;
    pr->infl_count = 0;
}

/* Progress slots: every member, plus one member a leader is removing (it
 * keeps replicating to it until the removal commits, so the removed node
 * learns it and stops campaigning; thesis §4.2.2). */
#define PR_SLOTS (RAFT_MAX_NODES + 1)

/* Makes `c` (set by the entry at `index`) the configuration in force and
 * rebuilds the progress table: members kept keep their progress.  A leader
 * whose new configuration is not committed yet keeps departed members as
 * non-voting "departing" entries. */
static void config_apply(struct raft *r, const struct raft_config *c, uint64_t index)
{
    struct progress old[PR_SLOTS];
    uint32_t n_old = r->n_prs;
    memcpy(old, r->prs, sizeof(old));
    uint64_t *bufs[PR_SLOTS];
    bool used[PR_SLOTS] = {false};
    for (uint32_t i = 0; i < PR_SLOTS; i++)
        bufs[i] = r->infl_mem + (size_t)i * r->o.max_inflight;

    r->config = *c;
    r->config_index = index;
    r->n_prs = 0;
    for (uint32_t i = 0; i < c->n; i++) {
        struct progress *np = &r->prs[r->n_prs++];
        bool found = false;
        for (uint32_t j = 0; j < n_old; j++) {
            if (old[j].id == c->nodes[i].id) {
                *np = old[j];
                found = true;
                break;
            }
        }
        if (!found) {
            memset(np, 0, sizeof(*np));
            np->id = c->nodes[i].id;
            pr_reset(r, np);
        }
        np->voter = c->nodes[i].role == RAFT_VOTER;
        np->departing = false;
    }
    bool keep_departed = r->role == RAFT_LEADER && index > r->commit;
    for (uint32_t j = 0; j < n_old && keep_departed; j++) {
        if (old[j].id == r->o.id || config_find(c, old[j].id) >= 0 || r->n_prs >= PR_SLOTS)
            continue;
        struct progress *np = &r->prs[r->n_prs++];
        *np = old[j];
        np->voter = false;
        np->departing = true;
    }
    /* ring buffers: kept entries keep theirs, new ones take free ones */
    for (uint32_t i = 0; i < r->n_prs; i++)
        for (uint32_t b = 0; b < PR_SLOTS; b++)
            if (r->prs[i].infl != NULL && bufs[b] == r->prs[i].infl)
                used[b] = true;
    for (uint32_t i = 0; i < r->n_prs; i++) {
        if (r->prs[i].infl != NULL)
            continue;
        for (uint32_t b = 0; b < PR_SLOTS; b++) {
            if (!used[b]) {
                used[b] = true;
                r->prs[i].infl = bufs[b];
                break;
            }
        }
        assert(r->prs[i].infl != NULL);
    }
    struct progress *self = pr_find(r, r->o.id);
    if (self != NULL)
        self->match = r->stable;
}

/* Drops departing members (the removal committed, or leadership ended). */
static void drop_departing(struct raft *r)
{
    uint32_t k = 0;
    for (uint32_t i = 0; i < r->n_prs; i++)
        if (!r->prs[i].departing)
            r->prs[k++] = r->prs[i];
    r->n_prs = k;
}

/* The configuration in force is the latest one in the log, committed or not
 * (thesis §4.1); after a truncation it must be found again. */
static void config_recompute(struct raft *r)
{
    for (size_t i = r->n_ents; i-- > 0;) {
        const struct raft_entry *e = &r->ents[i];
        if (e->type != RAFT_ENTRY_CONF)
            continue;
        struct raft_config c;
        if (raft_config_decode(e->data, e->len, &c) == RAFT_OK) {
            if (r->config_index != e->index)
                config_apply(r, &c, e->index);
            return;
        }
    }
    if (r->config_index != r->snap.index || r->config_index == 0)
        config_apply(r, &r->snap.config, r->snap.index);
}

static bool promotable(const struct raft *r) { return raft_config_is_voter(&r->config, r->o.id); }

static uint32_t quorum(const struct raft *r) { return raft_config_voters(&r->config) / 2 + 1; }

/* ------------------------------------------------------------------------ */
/* the log */

/* Replaces everything after index `from - 1` with n copies of src (whose
 * indexes must start at `from`).  All allocations happen before any change,
 * so on RAFT_ENOMEM the log is untouched. */
static int log_replace(struct raft *r, uint64_t from, const struct raft_entry *src, size_t n)
{
    assert(from > r->snap.index && from <= last_index(r) + 1);
    size_t keep = (size_t)(from - r->snap.index - 1);
    size_t need = keep + n;
    if (need > r->cap_ents) {
        size_t cap = r->cap_ents ? r->cap_ents : 64;
        while (cap < need)
            cap *= 2;
        struct raft_entry *e = realloc(r->ents, cap * sizeof(*e));
        if (e == NULL)
            return RAFT_ENOMEM;
        r->ents = e;
        r->cap_ents = cap;
    }
    /* copy payloads first */
    uint8_t *bufs[64];
    uint8_t **pp = n <= 64 ? bufs : malloc(n * sizeof(*pp));
    if (pp == NULL)
        return RAFT_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        pp[i] = NULL;
        if (src[i].len == 0)
            continue;
        pp[i] = malloc(src[i].len);
        if (pp[i] == NULL) {
            for (size_t j = 0; j < i; j++)
                free(pp[j]);
            if (pp != bufs)
                free(pp);
            return RAFT_ENOMEM;
        }
        memcpy(pp[i], src[i].data, src[i].len);
    }
    /* truncate */
    bool conf_dropped = false;
    for (size_t i = keep; i < r->n_ents; i++) {
        conf_dropped |= r->ents[i].type == RAFT_ENTRY_CONF;
        garbage_push(r, (void *)r->ents[i].data);
    }
    r->n_ents = keep;
    if (from <= r->stable)
        r->stable = from - 1;
    if (from <= r->handed)
        r->handed = from - 1;
    /* append */
    bool conf_added = false;
    for (size_t i = 0; i < n; i++) {
        struct raft_entry *d = &r->ents[r->n_ents++];
        *d = src[i];
        d->index = from + i;
        d->data = pp[i];
        conf_added |= d->type == RAFT_ENTRY_CONF;
    }
    if (pp != bufs)
        free(pp);
    if (conf_dropped || conf_added)
        config_recompute(r);
    return RAFT_OK;
}

/* ------------------------------------------------------------------------ */
/* outbox */

static struct raft_msg *msg_new(struct raft *r, uint32_t type, uint64_t to)
{
    if (r->n_out >= r->o.max_outbox)
        return NULL; /* bounded; a dropped message is an ordinary network loss */
    if (r->n_out == r->cap_out) {
        size_t cap = r->cap_out ? r->cap_out * 2 : 32;
        struct raft_msg *m = realloc(r->out, cap * sizeof(*m));
        if (m == NULL)
            return NULL;
        r->out = m;
        size_t *o = realloc(r->out_off, cap * sizeof(*o));
        if (o == NULL)
            return NULL;
        r->out_off = o;
        r->cap_out = cap;
    }
    struct raft_msg *m = &r->out[r->n_out];
    memset(m, 0, sizeof(*m));
    r->out_off[r->n_out] = 0;
    r->n_out++;
    m->type = type;
    m->from = r->o.id;
    m->to = to;
    m->term = r->term;
    return m;
}

/* Makes room for k more garbage pointers without dropping the outbox. */
static bool garbage_reserve(struct raft *r, size_t k)
{
    if (r->n_garbage + k <= r->cap_garbage)
        return true;
    size_t cap = r->cap_garbage ? r->cap_garbage : 64;
    while (cap < r->n_garbage + k)
        cap *= 2;
    void **g = realloc(r->garbage, cap * sizeof(*g));
    if (g == NULL)
        return false;
    r->garbage = g;
    r->cap_garbage = cap;
    return true;
}

/* Attaches copies of log entries [lo, hi] to the last message; evicted
 * payloads are read back from the caller's log (freed at the next advance). */
static bool msg_attach(struct raft *r, uint64_t lo, uint64_t hi)
{
    size_t n = (size_t)(hi - lo + 1);
    if (r->n_arena + n > r->cap_arena) {
        size_t cap = r->cap_arena ? r->cap_arena : 256;
        while (cap < r->n_arena + n)
            cap *= 2;
        struct raft_entry *a = realloc(r->arena, cap * sizeof(*a));
        if (a == NULL)
            return false;
        r->arena = a;
        r->cap_arena = cap;
    }
    struct raft_entry *dst = &r->arena[r->n_arena];
    memcpy(dst, ent_at(r, lo), n * sizeof(struct raft_entry));
    for (size_t i = 0; i < n; i++) {
        if (dst[i].data != NULL || dst[i].len == 0)
            continue;
        uint8_t *buf = NULL;
        uint32_t len = 0;
        if (r->o.read_entry == NULL || !garbage_reserve(r, 1) ||
            r->o.read_entry(r->o.read_arg, dst[i].index, dst[i].term, &buf, &len) != RAFT_OK ||
            buf == NULL || len != dst[i].len) {
            free(buf);
            return false;
        }
        r->garbage[r->n_garbage++] = buf;
        dst[i].data = buf;
    }
    r->out_off[r->n_out - 1] = r->n_arena;
    r->n_arena += n;
    r->out[r->n_out - 1].n_entries = (uint32_t)n;
    return true;
}

/* ------------------------------------------------------------------------ */
/* role changes */

static void reset_randomized_timeout(struct raft *r)
{
    r->randomized_timeout = r->o.election_ticks + (uint32_t)(rng_next(r) % r->o.election_ticks);
}

static void reset_common(struct raft *r, uint64_t term)
{
    if (r->term != term) {
        r->term = term;
        r->vote = 0;
        r->ack_pending = 0;
        r->ack_sent = 0;
    }
    r->leader = 0;
    r->election_elapsed = 0;
    r->heartbeat_elapsed = 0;
    reset_randomized_timeout(r);
    r->transferee = 0;
    r->n_pending = 0;
    drop_departing(r);
    for (uint32_t i = 0; i < r->n_prs; i++) {
        pr_reset(r, &r->prs[i]);
        if (r->prs[i].id == r->o.id)
            r->prs[i].match = r->stable;
    }
}

static void become_follower(struct raft *r, uint64_t term, uint64_t leader)
{
    reset_common(r, term);
    r->role = RAFT_FOLLOWER;
    r->leader = leader;
}

static void send_appends(struct raft *r, struct progress *pr, bool allow_empty);

static void bcast_appends(struct raft *r, bool allow_empty)
{
    for (uint32_t i = 0; i < r->n_prs; i++)
        if (r->prs[i].id != r->o.id)
            send_appends(r, &r->prs[i], allow_empty);
}

static void become_leader(struct raft *r)
{
    reset_common(r, r->term);
    r->role = RAFT_LEADER;
    r->leader = r->o.id;
    for (uint32_t i = 0; i < r->n_prs; i++)
        r->prs[i].recent_active = true;
    struct raft_entry noop = {.term = r->term, .type = RAFT_ENTRY_NOOP};
    if (log_replace(r, last_index(r) + 1, &noop, 1) != RAFT_OK) {
        /* Without its no-op the leader could never commit; give up the term. */
        become_follower(r, r->term, 0);
        return;
    }
    r->term_start = last_index(r);
    bcast_appends(r, true);
}

static void send_vote_requests(struct raft *r, bool pre, bool transfer)
{
    for (uint32_t i = 0; i < r->n_prs; i++) {
        struct progress *pr = &r->prs[i];
        if (pr->id == r->o.id || !pr->voter)
            continue;
        struct raft_msg *m = msg_new(r, pre ? RAFT_MSG_PREVOTE : RAFT_MSG_VOTE, pr->id);
        if (m == NULL)
            continue;
        m->term = pre ? r->term + 1 : r->term;
        m->log_term = last_term(r);
        m->index = last_index(r);
        m->flags = transfer ? RAFT_MSG_FLAG_TRANSFER : 0;
    }
}

/* Counts votes; returns +1 won, -1 lost, 0 undecided. */
static int tally(const struct raft *r)
{
    uint32_t yes = 0, no = 0, q = quorum(r);
    for (uint32_t i = 0; i < r->n_prs; i++) {
        if (!r->prs[i].voter)
            continue;
        yes += r->prs[i].vote_state == VOTE_GRANTED;
        no += r->prs[i].vote_state == VOTE_REJECTED;
    }
    return yes >= q ? 1 : no >= q ? -1 : 0;
}

static void campaign(struct raft *r, bool pre, bool transfer)
{
    if (!promotable(r) || r->aside)
        return;
    if (pre) {
        uint64_t t = r->term;
        reset_common(r, t);
        r->role = RAFT_PRE_CANDIDATE;
    } else {
        reset_common(r, r->term + 1);
        r->role = RAFT_CANDIDATE;
        r->vote = r->o.id;
    }
    pr_find(r, r->o.id)->vote_state = VOTE_GRANTED;
    if (tally(r) > 0) {
        if (pre)
            campaign(r, false, transfer);
        else
            become_leader(r);
        return;
    }
    send_vote_requests(r, pre, transfer);
}

/* ------------------------------------------------------------------------ */
/* leader: replication */

static bool pr_paused(const struct raft *r, const struct progress *pr)
{
    switch (pr->state) {
    case PR_PROBE:
        return pr->probe_sent;
    case PR_REPLICATE:
        return pr->infl_count >= r->o.max_inflight;
    default:
        return true;
    }
}

static void infl_free_to(struct progress *pr, uint32_t cap, uint64_t idx)
{
    while (pr->infl_count > 0 && pr->infl[pr->infl_start] <= idx) {
        pr->infl_start = (pr->infl_start + 1) % cap;
        pr->infl_count--;
    }
}

static void become_probe(struct raft *r, struct progress *pr)
{
    (void)r;
    pr->state = PR_PROBE;
    pr->probe_sent = false;
    pr->infl_count = 0;
    pr->infl_start = 0;
    pr->stall_rounds = 0;
    pr->next = max_u64(pr->next, pr->match + 1);
}

static void become_replicate(struct progress *pr)
{
    pr->state = PR_REPLICATE;
    pr->probe_sent = false;
    pr->infl_count = 0;
    pr->infl_start = 0;
    pr->next = pr->match + 1;
}

static void send_snapshot(struct raft *r, struct progress *pr)
{
    struct raft_msg *m = msg_new(r, RAFT_MSG_SNAPSHOT, pr->id);
    if (m == NULL)
        return;
    m->snapshot = r->snap;
    m->snapshot.data = r->snap_data;
    pr->state = PR_SNAPSHOT;
    pr->pending_snapshot = r->snap.index;
    pr->snap_elapsed = 0;
    pr->infl_count = 0;
}

/* Sends as many APPENDs as the follower's state allows (one when probing, up to
 * max_inflight when replicating); with allow_empty, at least one message even
 * without new entries, to carry the commit index. */
static void send_appends(struct raft *r, struct progress *pr, bool allow_empty)
{
    bool sent = false;
    while (!pr_paused(r, pr)) {
        uint64_t prev = pr->next - 1;
        if (prev < r->snap.index) {
            send_snapshot(r, pr);
            return;
        }
        uint64_t last = last_index(r);
        uint64_t hi = prev;
        uint64_t bytes = 0;
        while (hi < last && hi - prev < r->o.max_entries_per_msg) {
            const struct raft_entry *e = ent_at(r, hi + 1);
            if (hi > prev && bytes + e->len > r->o.max_msg_bytes)
                break;
            bytes += e->len;
            hi++;
        }
        if (hi == prev && (sent || !allow_empty))
            return;
        struct raft_msg *m = msg_new(r, RAFT_MSG_APPEND, pr->id);
        if (m == NULL)
            return;
        m->index = prev;
        m->log_term = term_at(r, prev);
        m->commit = r->commit;
        if (hi > prev && !msg_attach(r, prev + 1, hi)) {
            r->n_out--;
            return;
        }
        sent = true;
        if (pr->state == PR_PROBE) {
            pr->probe_sent = true;
        } else if (hi > prev) {
            pr->next = hi + 1;
            pr->infl[(pr->infl_start + pr->infl_count) % r->o.max_inflight] = hi;
            pr->infl_count++;
        } else {
            return; /* an empty append does not take an in-flight slot */
        }
    }
}

static void send_heartbeats(struct raft *r)
{
    for (uint32_t i = 0; i < r->n_prs; i++) {
        struct progress *pr = &r->prs[i];
        if (pr->id == r->o.id)
            continue;
        struct raft_msg *m = msg_new(r, RAFT_MSG_HEARTBEAT, pr->id);
        if (m == NULL)
            continue;
        m->commit = min_u64(pr->match, r->commit);
        m->read_seq = r->read_seq;
    }
}

static void send_timeout_now(struct raft *r, uint64_t to)
{
    struct raft_msg *m = msg_new(r, RAFT_MSG_TIMEOUT_NOW, to);
    (void)m;
}

static int cmp_desc(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

static void check_reads(struct raft *r);

/* S3/S4: the quorum's durable index, committed only if it is of this term. */
static void maybe_commit(struct raft *r)
{
    uint64_t m[PR_SLOTS];
    uint32_t n = 0;
    for (uint32_t i = 0; i < r->n_prs; i++) {
        if (!r->prs[i].voter)
            continue;
        m[n++] = r->prs[i].id == r->o.id ? r->stable : r->prs[i].match;
    }
    if (n == 0)
        return;
    qsort(m, n, sizeof(m[0]), cmp_desc);
    uint64_t idx = m[quorum(r) - 1];
    if (idx <= r->commit)
        return;
    if (term_at(r, idx) != r->term && !bug(r, RAFT_BUG_COMMIT_OLD_TERM))
        return;
    r->commit = idx;
    if (r->config_index <= r->commit)
        drop_departing(r);
    if (r->config_index <= r->commit && !promotable(r)) {
        /* The change removing this leader is committed: step down (thesis §4.2.2). */
        become_follower(r, r->term, 0);
        return;
    }
    bcast_appends(r, true);
}

static void handle_append_resp(struct raft *r, struct progress *pr, const struct raft_msg *m)
{
    pr->recent_active = true;
    if (m->reject && (m->flags & RAFT_MSG_FLAG_LOG_LOST) && pr->state != PR_SNAPSHOT &&
        m->hint_index < pr->match) {
        /* S7: the follower discarded its log (a repaired replica) and holds
         * less than it once acknowledged.  Its old acknowledgements stay
         * valid promises through its vote floor; from now on count only what
         * it holds again, and probe from where its log ends. */
        pr->match = m->hint_index;
        pr->hb_match = pr->match;
        pr->next = m->index + 1;
        become_probe(r, pr);
        pr->next = m->index + 1;
    }
    if (m->reject) {
        if (pr->state == PR_REPLICATE && m->index <= pr->match)
            return; /* stale */
        if (pr->state == PR_PROBE && m->index != pr->next - 1)
            return; /* stale */
        if (pr->state == PR_SNAPSHOT)
            return;
        /* Fast backtracking: skip the follower's conflicting term at once. */
        uint64_t probe = min_u64(m->hint_index, m->index);
        if (m->hint_term > 0) {
            while (probe > r->snap.index && term_at(r, probe) > m->hint_term)
                probe--;
        }
        /* next never passes the rejected index itself: it did not match */
        pr->next = max_u64(min_u64(probe + 1, m->index), pr->match + 1);
        become_probe(r, pr);
        send_appends(r, pr, false);
        return;
    }
    bool advanced = false;
    if (m->index > pr->match) {
        pr->match = m->index;
        advanced = true;
    }
    pr->next = max_u64(pr->next, pr->match + 1);
    switch (pr->state) {
    case PR_PROBE:
        become_replicate(pr);
        break;
    case PR_SNAPSHOT:
        if (pr->match >= pr->pending_snapshot)
            become_replicate(pr);
        break;
    default:
        infl_free_to(pr, r->o.max_inflight, m->index);
        break;
    }
    if (advanced)
        maybe_commit(r);
    if (r->role != RAFT_LEADER)
        return;
    if (r->transferee == pr->id && pr->match == last_index(r))
        send_timeout_now(r, pr->id);
    send_appends(r, pr, false);
}

static void check_reads(struct raft *r)
{
    uint32_t done = 0;
    while (done < r->n_pending) {
        uint64_t seq = r->pending[done].seq;
        uint32_t acks = 0;
        for (uint32_t i = 0; i < r->n_prs; i++) {
            const struct progress *pr = &r->prs[i];
            if (pr->voter && (pr->id == r->o.id || pr->read_ack >= seq))
                acks++;
        }
        if (acks < quorum(r))
            break;
        r->reads[r->n_reads].ctx = r->pending[done].ctx;
        r->reads[r->n_reads].index = r->pending[done].index;
        r->n_reads++;
        done++;
    }
    if (done > 0) {
        memmove(r->pending, r->pending + done, (r->n_pending - done) * sizeof(*r->pending));
        r->n_pending -= done;
    }
}

static void step_leader(struct raft *r, const struct raft_msg *m)
{
    struct progress *pr = pr_find(r, m->from);
    if (pr == NULL)
        return;
    if (m->type == RAFT_MSG_APPEND_RESP || m->type == RAFT_MSG_HEARTBEAT_RESP)
        pr->resp_tick = r->ticks + 1;
    switch (m->type) {
    case RAFT_MSG_APPEND_RESP:
        handle_append_resp(r, pr, m);
        break;
    case RAFT_MSG_HEARTBEAT_RESP:
        pr->recent_active = true;
        pr->probe_sent = false;
        if (pr->state == PR_REPLICATE && pr->infl_count > 0 && pr->match == pr->hb_match &&
            pr->match < last_index(r)) {
            /* Heartbeat rounds without progress: the APPENDs in flight (or
             * their answers) were probably lost.  After two such rounds (one
             * may just be a slow disk on the follower), probe again from match. */
            if (++pr->stall_rounds >= 2) {
                pr->next = pr->match + 1;
                become_probe(r, pr);
            }
        } else {
            pr->stall_rounds = 0;
        }
        pr->hb_match = pr->match;
        if (m->read_seq > pr->read_ack) {
            pr->read_ack = m->read_seq;
            check_reads(r);
        }
        if (pr->match < last_index(r))
            send_appends(r, pr, true);
        break;
    default:
        break;
    }
}

/* ------------------------------------------------------------------------ */
/* follower */

/* S7: a log ending at (lterm, lindex) is at least as up to date as the
 * floor (always true without one). */
static bool above_floor(const struct raft *r, uint64_t lterm, uint64_t lindex)
{
    if (r->floor_term == 0 && r->floor_index == 0)
        return true;
    return lterm > r->floor_term || (lterm == r->floor_term && lindex >= r->floor_index);
}

/* S2: acknowledges to the leader the longest prefix that both matches the
 * leader's log (ack_pending) and is durable (stable). */
static void follower_ack(struct raft *r, bool force)
{
    if (r->leader == 0 || r->leader == r->o.id || r->snap_pending)
        return;
    uint64_t a = bug(r, RAFT_BUG_ACK_UNPERSISTED) ? r->ack_pending
                                                   : min_u64(r->ack_pending, r->stable);
    if (a < r->snap.index)
        return;
    if (!force && a <= r->ack_sent)
        return;
    struct raft_msg *m = msg_new(r, RAFT_MSG_APPEND_RESP, r->leader);
    if (m == NULL)
        return;
    m->index = a;
    r->ack_sent = max_u64(r->ack_sent, a);
}

static void send_reject(struct raft *r, const struct raft_msg *req)
{
    struct raft_msg *m = msg_new(r, RAFT_MSG_APPEND_RESP, req->from);
    if (m == NULL)
        return;
    m->reject = 1;
    m->index = req->index;
    if (!above_floor(r, last_term(r), last_index(r)))
        m->flags = RAFT_MSG_FLAG_LOG_LOST; /* S7: what we acknowledged may be gone */
    uint64_t last = last_index(r);
    if (req->index > last) {
        m->hint_index = last;
    } else {
        /* the last index whose term is <= the leader's term at req->index */
        uint64_t i = req->index;
        while (i > r->snap.index && term_at(r, i) > req->log_term)
            i--;
        m->hint_index = i;
    }
    m->hint_term = term_at(r, m->hint_index);
}

static void handle_append(struct raft *r, const struct raft_msg *m)
{
    if (m->index < r->commit) {
        /* Everything up to commit matches every leader's log. */
        r->ack_pending = max_u64(r->ack_pending, r->commit);
        follower_ack(r, true);
        return;
    }
    if (m->index > last_index(r) || term_at(r, m->index) != m->log_term) {
        send_reject(r, m);
        return;
    }
    /* Find the first entry that is new or conflicts (paper §5.3 step 3/4). */
    uint32_t k = 0;
    while (k < m->n_entries) {
        const struct raft_entry *e = &m->entries[k];
        if (e->index > last_index(r) || term_at(r, e->index) != e->term)
            break;
        k++;
    }
    if (k < m->n_entries) {
        uint64_t from = m->entries[k].index;
        if (from <= r->commit && !r->o.test_bugs)
            assert(!"truncating a committed entry");
        if (from <= r->commit)
            return; /* planted-bug runs: refuse, let the checker see the damage */
        if (log_replace(r, from, &m->entries[k], m->n_entries - k) != RAFT_OK)
            return; /* out of memory: as if the message was lost */
    }
    uint64_t last_new = m->index + m->n_entries;
    uint64_t c = min_u64(m->commit, last_new);
    if (c > r->commit)
        r->commit = c;
    r->ack_pending = max_u64(r->ack_pending, last_new);
    follower_ack(r, true);
}

static void handle_heartbeat(struct raft *r, const struct raft_msg *m)
{
    /* The leader sends min(match, commit): those entries match ours. */
    uint64_t c = min_u64(m->commit, last_index(r));
    if (c > r->commit)
        r->commit = c;
    struct raft_msg *resp = msg_new(r, RAFT_MSG_HEARTBEAT_RESP, m->from);
    if (resp != NULL)
        resp->read_seq = m->read_seq;
    if (m->commit > last_index(r) && !above_floor(r, last_term(r), last_index(r))) {
        /* S7: the leader believes we hold up to m->commit, which we lost;
         * an APPEND would find out, but a leader that thinks we are up to
         * date sends none: reject as if it had probed there. */
        struct raft_msg req = {.from = m->from, .index = m->commit, .log_term = m->term};
        send_reject(r, &req);
    }
}

static void handle_snapshot(struct raft *r, const struct raft_msg *m)
{
    const struct raft_snapshot *s = &m->snapshot;
    if (s->index <= r->commit) {
        r->ack_pending = max_u64(r->ack_pending, r->commit);
        follower_ack(r, true);
        return;
    }
    if (term_at(r, s->index) == s->term && s->index <= last_index(r)) {
        /* We already hold that entry: it is committed, nothing to restore. */
        r->commit = s->index;
        r->ack_pending = max_u64(r->ack_pending, s->index);
        follower_ack(r, true);
        return;
    }
    uint8_t *data = NULL;
    if (s->len > 0) {
        data = malloc(s->len);
        if (data == NULL)
            return;
        memcpy(data, s->data, s->len);
    }
    for (size_t i = 0; i < r->n_ents; i++)
        garbage_push(r, (void *)r->ents[i].data);
    r->n_ents = 0;
    garbage_push(r, r->snap_data);
    r->snap = *s;
    r->snap_data = data;
    r->snap.data = data;
    r->snap_pending = true;
    r->commit = s->index;
    r->stable = min_u64(r->stable, s->index - 1);
    r->handed = s->index;
    r->ack_pending = s->index;
    config_apply(r, &s->config, s->index);
}

/* ------------------------------------------------------------------------ */
/* votes */

static bool log_up_to_date(const struct raft *r, uint64_t lterm, uint64_t lindex)
{
    uint64_t t = last_term(r);
    return (lterm > t || (lterm == t && lindex >= last_index(r))) &&
           above_floor(r, lterm, lindex);
}

static void handle_vote(struct raft *r, const struct raft_msg *m)
{
    bool pre = m->type == RAFT_MSG_PREVOTE;
    bool can_vote = r->vote == m->from || (r->vote == 0 && r->leader == 0) ||
                    (pre && m->term > r->term);
    bool ok = can_vote && (bug(r, RAFT_BUG_VOTE_NO_LOG_CHECK) ||
                           log_up_to_date(r, m->log_term, m->index));
    struct raft_msg *resp = msg_new(r, pre ? RAFT_MSG_PREVOTE_RESP : RAFT_MSG_VOTE_RESP, m->from);
    if (ok) {
        if (resp != NULL)
            resp->term = m->term;
        if (!pre) {
            r->vote = m->from; /* S1: persisted (hard state) before resp is sent */
            r->election_elapsed = 0;
        }
    } else if (resp != NULL) {
        resp->reject = 1;
    }
}

static void step_candidate(struct raft *r, const struct raft_msg *m)
{
    bool pre = r->role == RAFT_PRE_CANDIDATE;
    uint32_t want = pre ? RAFT_MSG_PREVOTE_RESP : RAFT_MSG_VOTE_RESP;
    switch (m->type) {
    case RAFT_MSG_APPEND:
        become_follower(r, m->term, m->from);
        handle_append(r, m);
        return;
    case RAFT_MSG_HEARTBEAT:
        become_follower(r, m->term, m->from);
        handle_heartbeat(r, m);
        return;
    case RAFT_MSG_SNAPSHOT:
        become_follower(r, m->term, m->from);
        handle_snapshot(r, m);
        return;
    default:
        break;
    }
    if (m->type != want)
        return;
    struct progress *pr = pr_find(r, m->from);
    if (pr == NULL || !pr->voter || pr->vote_state != VOTE_NONE)
        return;
    if (pre && !m->reject && m->term != r->term + 1)
        return; /* a grant from an earlier pre-vote round */
    pr->vote_state = m->reject ? VOTE_REJECTED : VOTE_GRANTED;
    int t = tally(r);
    if (t > 0) {
        if (pre)
            campaign(r, false, false);
        else
            become_leader(r);
    } else if (t < 0) {
        become_follower(r, r->term, 0);
    }
}

static void step_follower(struct raft *r, const struct raft_msg *m)
{
    switch (m->type) {
    case RAFT_MSG_APPEND:
        r->election_elapsed = 0;
        r->leader = m->from;
        handle_append(r, m);
        break;
    case RAFT_MSG_HEARTBEAT:
        r->election_elapsed = 0;
        r->leader = m->from;
        handle_heartbeat(r, m);
        break;
    case RAFT_MSG_SNAPSHOT:
        r->election_elapsed = 0;
        r->leader = m->from;
        handle_snapshot(r, m);
        break;
    case RAFT_MSG_TIMEOUT_NOW:
        campaign(r, false, true); /* thesis §3.10: skip pre-vote */
        break;
    default:
        break;
    }
}

/* ------------------------------------------------------------------------ */
/* public: stepping */

static bool msg_valid(const struct raft *r, const struct raft_msg *m)
{
    if (m->to != r->o.id || m->from == 0 || m->from == r->o.id)
        return false;
    if (m->type < RAFT_MSG_APPEND || m->type > RAFT_MSG_TIMEOUT_NOW)
        return false;
    if (m->n_entries > 0 && (m->type != RAFT_MSG_APPEND || m->entries == NULL))
        return false;
    if (m->n_entries > r->o.max_entries_per_msg)
        return false;
    uint64_t t = m->log_term;
    for (uint32_t i = 0; i < m->n_entries; i++) {
        const struct raft_entry *e = &m->entries[i];
        if (e->index != m->index + 1 + i || e->term < t || e->term > m->term ||
            e->type > RAFT_ENTRY_NOOP || e->len > r->o.max_msg_bytes ||
            (e->len > 0 && e->data == NULL))
            return false;
        t = e->term;
    }
    if (m->type == RAFT_MSG_SNAPSHOT) {
        const struct raft_snapshot *s = &m->snapshot;
        if (s->index == 0 || s->len > r->o.max_snapshot_bytes ||
            (s->len > 0 && s->data == NULL) || !config_valid(&s->config))
            return false;
    }
    return true;
}

int raft_step(struct raft *r, const struct raft_msg *m)
{
    assert(!r->in_ready);
    if (!msg_valid(r, m))
        return RAFT_EINVAL;
    bool is_vote = m->type == RAFT_MSG_VOTE || m->type == RAFT_MSG_PREVOTE;

    if (m->term > r->term) {
        if (is_vote) {
            bool force = (m->flags & RAFT_MSG_FLAG_TRANSFER) != 0;
            bool in_lease = r->o.check_quorum && r->leader != 0 &&
                            r->election_elapsed < r->o.election_ticks;
            if (!force && in_lease)
                return RAFT_OK; /* a live leader exists: do not be disrupted */
        }
        if (m->type == RAFT_MSG_PREVOTE) {
            /* a pre-vote never changes our term */
        } else if (m->type == RAFT_MSG_PREVOTE_RESP && !m->reject) {
            /* a granted pre-vote echoes the term we would campaign in */
        } else if (m->type == RAFT_MSG_APPEND || m->type == RAFT_MSG_HEARTBEAT ||
                   m->type == RAFT_MSG_SNAPSHOT) {
            become_follower(r, m->term, m->from);
        } else {
            /* Only a leader's message or a granted vote resets the election
             * timer (paper, Figure 2); a stale node that keeps asking for
             * votes in ever higher terms must not keep everyone else from
             * timing out. */
            uint32_t elapsed = r->election_elapsed;
            bool was_leader = r->role == RAFT_LEADER;
            become_follower(r, m->term, 0);
            if (!was_leader)
                r->election_elapsed = elapsed;
        }
    } else if (m->term < r->term) {
        if ((r->o.check_quorum || r->o.pre_vote) &&
            (m->type == RAFT_MSG_APPEND || m->type == RAFT_MSG_HEARTBEAT)) {
            /* Tell a stale leader about our term so it steps down; otherwise a
             * node whose term rose while partitioned could stay stranded. */
            (void)msg_new(r, RAFT_MSG_APPEND_RESP, m->from);
        } else if (m->type == RAFT_MSG_PREVOTE) {
            struct raft_msg *resp = msg_new(r, RAFT_MSG_PREVOTE_RESP, m->from);
            if (resp != NULL)
                resp->reject = 1;
        }
        return RAFT_OK;
    }

    if (is_vote) {
        handle_vote(r, m);
        return RAFT_OK;
    }
    switch (r->role) {
    case RAFT_LEADER:
        step_leader(r, m);
        break;
    case RAFT_CANDIDATE:
    case RAFT_PRE_CANDIDATE:
        step_candidate(r, m);
        break;
    default:
        step_follower(r, m);
        break;
    }
    return RAFT_OK;
}

void raft_tick(struct raft *r)
{
    assert(!r->in_ready);
    r->ticks++;
    if (r->role != RAFT_LEADER) {
        r->election_elapsed++;
        if (promotable(r) && !r->aside && r->election_elapsed >= r->randomized_timeout)
            campaign(r, r->o.pre_vote, false);
        return;
    }
    r->heartbeat_elapsed++;
    r->election_elapsed++;
    for (uint32_t i = 0; i < r->n_prs; i++) {
        struct progress *pr = &r->prs[i];
        if (pr->state == PR_SNAPSHOT && ++pr->snap_elapsed >= r->o.election_ticks) {
            /* the snapshot (or its answer) was lost: probe again */
            pr->next = pr->match + 1;
            become_probe(r, pr);
        }
    }
    if (r->election_elapsed >= r->o.election_ticks) {
        r->election_elapsed = 0;
        if (r->o.check_quorum) {
            uint32_t active = 0;
            for (uint32_t i = 0; i < r->n_prs; i++) {
                struct progress *pr = &r->prs[i];
                if (pr->voter && (pr->id == r->o.id || pr->recent_active))
                    active++;
                if (pr->id != r->o.id)
                    pr->recent_active = false;
            }
            if (active < quorum(r)) {
                become_follower(r, r->term, 0);
                return;
            }
        }
        if (r->aside) {
            /* nobody took over within an election timeout: step down anyway */
            r->transferee = 0;
            become_follower(r, r->term, 0);
            return;
        }
    }
    /* A transfer that did not finish in time is abandoned and proposals
     * resume; a leader stepping aside keeps refusing them until it steps
     * down (above). */
    if (r->transferee != 0 && !r->aside && ++r->transfer_elapsed >= r->o.transfer_ticks)
        r->transferee = 0;
    if (r->heartbeat_elapsed >= r->o.heartbeat_ticks) {
        r->heartbeat_elapsed = 0;
        send_heartbeats(r);
    }
}

/* ------------------------------------------------------------------------ */
/* public: leader operations */

int raft_propose(struct raft *r, const struct raft_proposal *batch, size_t n,
                 uint64_t *first_index)
{
    assert(!r->in_ready);
    if (r->role != RAFT_LEADER)
        return RAFT_ENOTLEADER;
    if (n == 0 || batch == NULL)
        return RAFT_EINVAL;
    if (r->transferee != 0)
        return RAFT_EBUSY;
    if (last_index(r) - r->commit + n > r->o.max_uncommitted)
        return RAFT_ELIMIT;
    struct raft_entry local[64];
    struct raft_entry *es = n <= 64 ? local : malloc(n * sizeof(*es));
    if (es == NULL)
        return RAFT_ENOMEM;
    int rc = RAFT_OK;
    uint64_t first = last_index(r) + 1;
    for (size_t i = 0; i < n; i++) {
        if (batch[i].len > r->o.max_msg_bytes || (batch[i].len > 0 && batch[i].data == NULL)) {
            rc = batch[i].len > r->o.max_msg_bytes ? RAFT_ETOOBIG : RAFT_EINVAL;
            break;
        }
        es[i] = (struct raft_entry){.term = r->term, .index = first + i,
                                    .type = RAFT_ENTRY_NORMAL, .len = batch[i].len,
                                    .data = batch[i].data};
    }
    if (rc == RAFT_OK)
        rc = log_replace(r, first, es, n);
    if (es != local)
        free(es);
    if (rc != RAFT_OK)
        return rc;
    if (first_index != NULL)
        *first_index = first;
    bcast_appends(r, false);
    return RAFT_OK;
}

int raft_change_member(struct raft *r, uint64_t id, uint32_t role, bool remove, uint64_t *index)
{
    assert(!r->in_ready);
    if (r->role != RAFT_LEADER)
        return RAFT_ENOTLEADER;
    if (id == 0 || role > RAFT_LEARNER)
        return RAFT_EINVAL;
    /* S5: one change at a time, and only once this term has a committed entry */
    if (r->transferee != 0 ||
        (!bug(r, RAFT_BUG_CONF_ANYTIME) &&
         (r->commit < r->term_start || r->config_index > r->commit)))
        return RAFT_EBUSY;
    if (last_index(r) - r->commit + 1 > r->o.max_uncommitted)
        return RAFT_ELIMIT;
    struct raft_config c = r->config;
    int at = config_find(&c, id);
    if (remove) {
        if (at < 0)
            return RAFT_EINVAL;
        c.nodes[at] = c.nodes[c.n - 1];
        c.n--;
    } else if (at >= 0) {
        if (c.nodes[at].role == role)
            return RAFT_EINVAL;
        c.nodes[at].role = role;
    } else {
        if (c.n >= RAFT_MAX_NODES)
            return RAFT_EINVAL;
        c.nodes[c.n].id = id;
        c.nodes[c.n].role = role;
        c.n++;
    }
    if (raft_config_voters(&c) == 0)
        return RAFT_EINVAL;
    uint8_t buf[4 + RAFT_MAX_NODES * 9];
    size_t len = raft_config_encode(&c, buf, sizeof(buf));
    assert(len > 0);
    struct raft_entry e = {.term = r->term, .index = last_index(r) + 1,
                           .type = RAFT_ENTRY_CONF, .len = (uint32_t)len, .data = buf};
    int rc = log_replace(r, e.index, &e, 1);
    if (rc != RAFT_OK)
        return rc;
    if (index != NULL)
        *index = e.index;
    bcast_appends(r, false);
    maybe_commit(r); /* a removal can make the quorum already durable */
    return RAFT_OK;
}

int raft_transfer_leadership(struct raft *r, uint64_t target)
{
    assert(!r->in_ready);
    if (r->role != RAFT_LEADER)
        return RAFT_ENOTLEADER;
    if (target == r->o.id || !raft_config_is_voter(&r->config, target))
        return RAFT_EINVAL;
    if (r->transferee != 0)
        return RAFT_EBUSY;
    r->transferee = target;
    r->transfer_elapsed = 0;
    struct progress *pr = pr_find(r, target);
    if (pr->match == last_index(r))
        send_timeout_now(r, target);
    else
        send_appends(r, pr, false);
    return RAFT_OK;
}

void raft_step_aside(struct raft *r, bool on)
{
    assert(!r->in_ready);
    r->aside = on;
    if (!on)
        return;
    if (r->role == RAFT_PRE_CANDIDATE || r->role == RAFT_CANDIDATE) {
        become_follower(r, r->term, 0);
        return;
    }
    if (r->role != RAFT_LEADER)
        return;
    /* Hand over to the most caught-up voter that answered lately. */
    struct progress *best = NULL;
    for (uint32_t i = 0; i < r->n_prs; i++) {
        struct progress *pr = &r->prs[i];
        if (pr->id == r->o.id || !pr->voter || pr->departing)
            continue;
        if (!best || (pr->recent_active && !best->recent_active) ||
            (pr->recent_active == best->recent_active && pr->match > best->match))
            best = pr;
    }
    if (best == NULL) {
        become_follower(r, r->term, 0);
        return;
    }
    r->transferee = best->id;
    r->election_elapsed = 0;
    if (best->match == last_index(r))
        send_timeout_now(r, best->id);
    else
        send_appends(r, best, false);
}

bool raft_is_aside(const struct raft *r) { return r->aside; }

bool raft_below_vote_floor(const struct raft *r)
{
    return !above_floor(r, last_term(r), last_index(r));
}

int raft_read_index(struct raft *r, uint64_t ctx)
{
    assert(!r->in_ready);
    if (r->role != RAFT_LEADER)
        return RAFT_ENOTLEADER;
    if (r->commit < r->term_start)
        return RAFT_EBUSY; /* the commit index may lag until our no-op commits */
    if (r->n_pending + r->n_reads >= r->o.max_pending_reads)
        return RAFT_ELIMIT;
    r->read_seq++;
    r->pending[r->n_pending++] = (struct pending_read){ctx, r->commit, r->read_seq};
    check_reads(r); /* a one-voter group answers at once */
    if (r->n_pending > 0)
        send_heartbeats(r);
    return RAFT_OK;
}

int raft_compact(struct raft *r, uint64_t index, const uint8_t *data, uint32_t len)
{
    assert(!r->in_ready);
    if (index <= r->snap.index || index > r->applied || (len > 0 && data == NULL))
        return RAFT_EINVAL;
    if (len > r->o.max_snapshot_bytes)
        return RAFT_ETOOBIG;
    uint8_t *copy = NULL;
    if (len > 0) {
        copy = malloc(len);
        if (copy == NULL)
            return RAFT_ENOMEM;
        memcpy(copy, data, len);
    }
    /* the configuration as of `index` */
    struct raft_config cfg = r->snap.config;
    for (uint64_t i = index; i > r->snap.index; i--) {
        const struct raft_entry *e = ent_at(r, i);
        if (e->type == RAFT_ENTRY_CONF && raft_config_decode(e->data, e->len, &cfg) == RAFT_OK)
            break;
    }
    uint64_t term = term_at(r, index);
    size_t drop = (size_t)(index - r->snap.index);
    for (size_t i = 0; i < drop; i++)
        garbage_push(r, (void *)r->ents[i].data);
    memmove(r->ents, r->ents + drop, (r->n_ents - drop) * sizeof(*r->ents));
    r->n_ents -= drop;
    garbage_push(r, r->snap_data);
    r->snap_data = copy;
    r->snap.index = index;
    r->snap.term = term;
    r->snap.config = cfg;
    r->snap.len = len;
    r->snap.data = copy;
    if (r->config_index < index)
        r->config_index = index; /* the config in force now comes from the snapshot */
    return RAFT_OK;
}

/* ------------------------------------------------------------------------ */
/* public: ready / advance */

static uint64_t applicable(const struct raft *r)
{
    if (r->snap_pending)
        return r->applied;
    return max_u64(r->applied, min_u64(r->commit, r->stable)); /* S6 */
}

static struct raft_hard_state hard_state(const struct raft *r)
{
    struct raft_hard_state hs = {r->term, r->vote, min_u64(r->commit, r->stable)};
    if (r->snap_pending)
        hs.commit = r->prev_hs.commit;
    return hs;
}

bool raft_has_ready(const struct raft *r)
{
    struct raft_hard_state hs = hard_state(r);
    return r->role != r->prev_role || r->leader != r->prev_leader ||
           memcmp(&hs, &r->prev_hs, sizeof(hs)) != 0 || r->snap_pending ||
           last_index(r) > r->handed || r->n_out > 0 || applicable(r) > r->applied ||
           r->n_reads > 0;
}

void raft_ready(struct raft *r, struct raft_ready *rd)
{
    assert(!r->in_ready);
    memset(rd, 0, sizeof(*rd));
    r->in_ready = true;
    rd->role = r->role;
    rd->leader = r->leader;
    rd->soft_state_changed = r->role != r->prev_role || r->leader != r->prev_leader;
    r->rd_hs = hard_state(r);
    rd->hard_state = r->rd_hs;
    rd->hard_state_changed = memcmp(&r->rd_hs, &r->prev_hs, sizeof(r->rd_hs)) != 0;
    r->rd_snapshot = r->snap_pending;
    if (r->snap_pending)
        rd->snapshot = &r->snap;
    r->rd_n_entries = (size_t)(last_index(r) - r->handed);
    if (r->rd_n_entries > 0)
        rd->entries = ent_at(r, r->handed + 1);
    rd->n_entries = r->rd_n_entries;
    for (size_t i = 0; i < r->n_out; i++)
        r->out[i].entries = r->out[i].n_entries > 0 ? &r->arena[r->out_off[i]] : NULL;
    rd->msgs = r->out;
    rd->n_msgs = r->n_out;
    uint64_t hi = applicable(r);
    r->rd_n_committed = (size_t)(hi - r->applied);
    if (r->rd_n_committed > 0)
        rd->committed = ent_at(r, r->applied + 1);
    rd->n_committed = r->rd_n_committed;
    rd->reads = r->reads;
    rd->n_reads = r->n_reads;
}

/* With the read_entry seam: frees the payloads of NORMAL entries that are
 * applied, durable and keep_recent behind.  Only at the end of raft_advance,
 * when no message or ready points at a payload. */
static void evict(struct raft *r)
{
    if (r->o.read_entry == NULL)
        return;
    uint64_t upto = min_u64(r->applied, r->stable);
    if (upto <= r->o.keep_recent)
        return;
    upto -= r->o.keep_recent;
    if (upto > last_index(r))
        upto = last_index(r);
    for (uint64_t i = max_u64(r->evicted, r->snap.index) + 1; i <= upto; i++) {
        struct raft_entry *e = &r->ents[i - r->snap.index - 1];
        if (e->type == RAFT_ENTRY_NORMAL && e->data != NULL) {
            free((void *)e->data);
            e->data = NULL;
        }
    }
    r->evicted = max_u64(r->evicted, upto);
}

void raft_advance(struct raft *r)
{
    assert(r->in_ready);
    r->in_ready = false;
    r->prev_role = r->role;
    r->prev_leader = r->leader;
    r->prev_hs = r->rd_hs;
    if (r->rd_snapshot) {
        r->snap_pending = false;
        r->applied = r->snap.index;
        r->stable = max_u64(r->stable, r->snap.index);
    }
    r->handed += r->rd_n_entries;
    r->applied += r->rd_n_committed;
    r->n_out = 0;
    r->n_arena = 0;
    r->n_reads = 0;
    for (size_t i = 0; i < r->n_garbage; i++)
        free(r->garbage[i]);
    r->n_garbage = 0;
    evict(r);
    if (r->rd_snapshot)
        follower_ack(r, true);
}

void raft_persisted(struct raft *r, uint64_t index, uint64_t term)
{
    assert(!r->in_ready);
    if (index <= r->stable || index > r->handed || term_at(r, index) != term)
        return; /* stale: the entry was overwritten since */
    r->stable = index;
    if (r->role == RAFT_LEADER) {
        struct progress *self = pr_find(r, r->o.id);
        if (self != NULL)
            self->match = index;
        maybe_commit(r);
    } else {
        follower_ack(r, false);
    }
}

/* ------------------------------------------------------------------------ */
/* creation */

int raft_create(const struct raft_options *opts, const struct raft_boot *boot, struct raft **out)
{
    *out = NULL;
    struct raft_options o = *opts;
    if (o.id == 0)
        return RAFT_EINVAL;
    if (o.election_ticks == 0)
        o.election_ticks = 10;
    if (o.heartbeat_ticks == 0)
        o.heartbeat_ticks = 1;
    if (o.max_inflight == 0)
        o.max_inflight = 8;
    if (o.max_entries_per_msg == 0)
        o.max_entries_per_msg = 64;
    if (o.max_msg_bytes == 0)
        o.max_msg_bytes = 1u << 20;
    if (o.max_uncommitted == 0)
        o.max_uncommitted = 4096;
    if (o.max_pending_reads == 0)
        o.max_pending_reads = 256;
    if (o.max_outbox == 0)
        o.max_outbox = 4096;
    if (o.max_snapshot_bytes == 0)
        o.max_snapshot_bytes = 64u << 20;
    if (o.keep_recent == 0)
        o.keep_recent = 1024;
    if (o.transfer_ticks == 0 || o.transfer_ticks > o.election_ticks)
        o.transfer_ticks = o.election_ticks;
    if (o.heartbeat_ticks >= o.election_ticks)
        return RAFT_EINVAL;

    /* validate the boot state */
    const struct raft_snapshot *s = boot->snapshot;
    uint64_t base = s ? s->index : 0;
    if (s && (s->len > o.max_snapshot_bytes || (s->len > 0 && s->data == NULL) ||
              !config_valid(&s->config) || s->term > boot->hard_state.term))
        return RAFT_EINVAL;
    uint64_t pt = s ? s->term : 0;
    for (size_t i = 0; i < boot->n_entries; i++) {
        const struct raft_entry *e = &boot->entries[i];
        if (e->index != base + 1 + i || e->term < pt || e->term > boot->hard_state.term ||
            e->type > RAFT_ENTRY_NOOP || (e->len > 0 && e->data == NULL))
            return RAFT_EINVAL;
        pt = e->term;
    }
    if (boot->initial && !config_valid(boot->initial))
        return RAFT_EINVAL;

    struct raft *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return RAFT_ENOMEM;
    r->o = o;
    r->infl_mem = calloc((size_t)PR_SLOTS * o.max_inflight, sizeof(uint64_t));
    r->pending = calloc(o.max_pending_reads, sizeof(*r->pending));
    r->reads = calloc(o.max_pending_reads, sizeof(*r->reads));
    if (r->infl_mem == NULL || r->pending == NULL || r->reads == NULL)
        goto nomem;
    uint64_t z = o.seed ^ (o.id * 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    r->rng = (z ^ (z >> 31)) | 1;

    r->term = boot->hard_state.term;
    r->vote = boot->hard_state.vote;
    r->floor_term = boot->vote_floor.term;
    r->floor_index = boot->vote_floor.index;
    if (s) {
        r->snap = *s;
        if (s->len > 0) {
            r->snap_data = malloc(s->len);
            if (r->snap_data == NULL)
                goto nomem;
            memcpy(r->snap_data, s->data, s->len);
        }
        r->snap.data = r->snap_data;
    } else if (boot->initial) {
        r->snap.config = *boot->initial;
    }
    r->config_index = 0;
    config_apply(r, &r->snap.config, r->snap.index);
    if (boot->n_entries > 0 && log_replace(r, base + 1, boot->entries, boot->n_entries) != RAFT_OK)
        goto nomem;
    config_recompute(r);
    r->stable = r->handed = last_index(r);
    r->applied = base;
    r->commit = max_u64(base, min_u64(boot->hard_state.commit, last_index(r)));
    r->role = RAFT_FOLLOWER;
    reset_randomized_timeout(r);
    struct progress *self = pr_find(r, o.id);
    if (self != NULL)
        self->match = r->stable;
    r->prev_hs = hard_state(r);
    r->prev_role = r->role;
    *out = r;
    return RAFT_OK;
nomem:
    raft_destroy(r);
    return RAFT_ENOMEM;
}

void raft_destroy(struct raft *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->n_ents; i++)
        free((void *)r->ents[i].data);
    for (size_t i = 0; i < r->n_garbage; i++)
        free(r->garbage[i]);
    free(r->garbage);
    free(r->ents);
    free(r->snap_data);
    free(r->infl_mem);
    free(r->pending);
    free(r->reads);
    free(r->out);
    free(r->out_off);
    free(r->arena);
    free(r);
}

/* ------------------------------------------------------------------------ */
/* accessors */

uint64_t raft_id(const struct raft *r) { return r->o.id; }
uint64_t raft_term(const struct raft *r) { return r->term; }
uint32_t raft_role(const struct raft *r) { return r->role; }
uint64_t raft_leader(const struct raft *r) { return r->leader; }
uint64_t raft_commit_index(const struct raft *r) { return r->commit; }
uint64_t raft_applied_index(const struct raft *r) { return r->applied; }
uint64_t raft_last_index(const struct raft *r) { return last_index(r); }
uint64_t raft_snapshot_index(const struct raft *r) { return r->snap.index; }
uint64_t raft_durable_index(const struct raft *r) { return r->stable; }
uint64_t raft_transferee(const struct raft *r)
{
    return r->role == RAFT_LEADER ? r->transferee : 0;
}

int raft_progress(const struct raft *r, uint64_t id, struct raft_progress *out)
{
    if (r->role != RAFT_LEADER)
        return RAFT_ENOTLEADER;
    const struct progress *pr = NULL;
    for (uint32_t i = 0; i < r->n_prs; i++)
        if (r->prs[i].id == id && !r->prs[i].departing)
            pr = &r->prs[i];
    if (pr == NULL)
        return RAFT_EINVAL;
    out->voter = pr->voter;
    out->match = id == r->o.id ? r->stable : pr->match;
    out->next = pr->next;
    if (id == r->o.id)
        out->silent_ticks = 0;
    else if (pr->resp_tick == 0)
        out->silent_ticks = UINT32_MAX;
    else
        out->silent_ticks = (uint32_t)min_u64(r->ticks + 1 - pr->resp_tick, UINT32_MAX - 1);
    return RAFT_OK;
}

bool raft_peer_can_lead(const struct raft *r, uint64_t id, uint32_t max_silent_ticks)
{
    struct raft_progress p;
    if (id == r->o.id || raft_progress(r, id, &p) != RAFT_OK)
        return false;
    return p.voter && p.silent_ticks <= max_silent_ticks && p.match >= r->commit;
}
uint64_t raft_term_at(const struct raft *r, uint64_t index) { return term_at(r, index); }
const struct raft_entry *raft_entry_at(const struct raft *r, uint64_t index)
{
    return ent_at(r, index);
}
const struct raft_snapshot *raft_get_snapshot(const struct raft *r) { return &r->snap; }
void raft_get_config(const struct raft *r, struct raft_config *out) { *out = r->config; }
uint64_t raft_config_index(const struct raft *r) { return r->config_index; }

const char *raft_status_name(int status)
{
    switch (status) {
    case RAFT_OK: return "OK";
    case RAFT_EINVAL: return "EINVAL";
    case RAFT_ENOTLEADER: return "ENOTLEADER";
    case RAFT_ENOMEM: return "ENOMEM";
    case RAFT_ETOOBIG: return "ETOOBIG";
    case RAFT_ELIMIT: return "ELIMIT";
    case RAFT_EBUSY: return "EBUSY";
    default: return "E?";
    }
}

const char *raft_msg_type_name(uint32_t type)
{
    static const char *const names[] = {
        "?", "APPEND", "APPEND_RESP", "VOTE", "VOTE_RESP", "PREVOTE", "PREVOTE_RESP",
        "HEARTBEAT", "HEARTBEAT_RESP", "SNAPSHOT", "TIMEOUT_NOW",
    };
    return type < sizeof(names) / sizeof(names[0]) ? names[type] : "?";
}
