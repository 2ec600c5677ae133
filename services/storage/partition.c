/* partition.c: Raft core + segment log + writer thread; see partition.h.
 *
 * The ready loop (raft.h) is run by process() after every input.  Two rules
 * from the core shape it: nothing may call into the raft node between
 * raft_ready and raft_advance (so proposals made by callbacks during that
 * window are deferred to right after raft_advance), and entry data in a ready
 * is only valid until raft_advance (so a write request copies what it writes).
 */
#include "partition.h"

#include "clock.h"
#include "log.h"
#include "seglog.h"
#include "seglog_writer.h"
#include "status.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define WRITER_MAX_PENDING 4096
/* The largest entry: a full batch (16 bodies, 1 MiB in all) plus its framing. */
#define ENTRY_BYTES_MAX (2u << 20)
/* Raft's bound on one AppendEntries: several full entries. */
#define APPEND_BYTES_MAX (4u << 20)

struct waiter {
    uint64_t index, term;
    partition_done_fn *done;
    void *arg;
    struct waiter *next;
};

struct deferred {
    partition_done_fn *done;
    void *arg;
    size_t len;
    struct deferred *next;
    uint8_t data[];
};

struct write {
    struct seglog_write_req req;
    struct partition *p;
    uint64_t last_index, last_term;
    struct seglog_entry *entries;
    uint8_t *blob;
};

struct partition {
    struct partition_opts opts;
    struct raft_config members;
    char dir[384];
    struct raft *raft;
    struct seglog *log;
    struct seglog_writer *writer;
    uint64_t submitted_last; /* last index handed to the writer */
    uint64_t saved_term, saved_vote;
    int in_ready;
    int failed;              /* the log failed: no more writes until restart */
    struct waiter *waiters, *waiters_tail; /* proposals in index order */
    struct deferred *deferred, *deferred_tail;
};

static void process(struct partition *p);
static int read_raw(struct seglog *log, uint64_t index, uint8_t **buf, struct seglog_entry *e);

uint32_t partition_id(const struct partition *p) { return p->opts.id; }
struct raft *partition_raft(struct partition *p) { return p->raft; }
int partition_writer_fd(const struct partition *p) { return seglog_writer_fd(p->writer); }

static int load_boot(struct partition *p, struct seglog_hardstate *hs, struct raft_entry **out,
                     size_t *n_out, uint8_t ***bufs_out, char *err)
{
    int rc = seglog_hardstate_load(p->log, hs);
    if (rc == CMQ_ENOTFOUND) {
        memset(hs, 0, sizeof *hs);
    } else if (rc != CMQ_OK) {
        seglog_last_error(p->log, err);
        return rc;
    }
    uint64_t first = seglog_first_index(p->log), last = seglog_last_index(p->log);
    size_t n = last >= first ? (size_t)(last - first + 1) : 0;
    struct raft_entry *ents = calloc(n ? n : 1, sizeof *ents);
    uint8_t **bufs = calloc(n ? n : 1, sizeof *bufs);
    if (!ents || !bufs) {
        free(ents);
        free(bufs);
        return CMQ_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        struct seglog_entry se;
        rc = read_raw(p->log, first + i, &bufs[i], &se);
        if (rc != CMQ_OK) {
            seglog_last_error(p->log, err);
            for (size_t k = 0; k <= i; k++)
                free(bufs[k]);
            free(bufs);
            free(ents);
            return rc;
        }
        ents[i] = (struct raft_entry){.term = se.term, .index = first + i, .type = se.type,
                                      .len = se.len, .data = bufs[i]};
    }
    *out = ents;
    *n_out = n;
    *bufs_out = bufs;
    return CMQ_OK;
}

int partition_open(const struct partition_opts *opts, struct partition **out, char err[512])
{
    err[0] = '\0';
    struct partition *p = calloc(1, sizeof *p);
    if (!p)
        return CMQ_ENOMEM;
    p->opts = *opts;
    p->members = *opts->members;
    p->opts.members = &p->members;
    snprintf(p->dir, sizeof p->dir, "%s", opts->dir);
    if (mkdir(p->dir, 0750) != 0 && errno != EEXIST) {
        snprintf(err, 512, "%s: cannot create: %s", p->dir, strerror(errno));
        free(p);
        return status_from_errno(errno);
    }
    struct seglog_opts lo;
    seglog_opts_default(&lo);
    lo.create = 1;
    lo.first_index = 1;
    lo.max_record_bytes = ENTRY_BYTES_MAX;
    if (opts->segment_bytes)
        lo.segment_bytes = opts->segment_bytes;
    int rc = seglog_open(p->dir, &lo, &p->log, err);
    if (rc != CMQ_OK) {
        free(p);
        return rc;
    }
    struct seglog_hardstate hs;
    struct raft_entry *ents = NULL;
    uint8_t **bufs = NULL;
    size_t n = 0;
    rc = load_boot(p, &hs, &ents, &n, &bufs, err);
    if (rc != CMQ_OK) {
        seglog_close(p->log);
        free(p);
        return rc;
    }
    struct raft_options ro = {
        .id = opts->node_id,
        .election_ticks = opts->election_ticks,
        .heartbeat_ticks = opts->heartbeat_ticks,
        .pre_vote = true,
        .check_quorum = true,
        .max_msg_bytes = APPEND_BYTES_MAX,
        .seed = opts->seed,
    };
    struct raft_boot boot = {
        .hard_state = {hs.term, hs.vote, hs.commit},
        .snapshot = NULL,
        .initial = &p->members,
        .entries = ents,
        .n_entries = n,
    };
    rc = raft_create(&ro, &boot, &p->raft);
    for (size_t i = 0; i < n; i++)
        free(bufs[i]);
    free(bufs);
    free(ents);
    if (rc != RAFT_OK) {
        snprintf(err, 512, "%s: raft refused the stored state: %s", p->dir, raft_status_name(rc));
        seglog_close(p->log);
        free(p);
        return rc;
    }
    p->saved_term = hs.term;
    p->saved_vote = hs.vote;
    p->submitted_last = seglog_last_index(p->log);
    rc = seglog_writer_start(p->log, WRITER_MAX_PENDING, &p->writer);
    if (rc != CMQ_OK) {
        snprintf(err, 512, "%s: cannot start the writer thread", p->dir);
        raft_destroy(p->raft);
        seglog_close(p->log);
        free(p);
        return rc;
    }
    log_info("partition_open", "partition=%u dir=%s entries=%zu term=%llu", opts->id, p->dir, n,
             (unsigned long long)hs.term);
    *out = p;
    return CMQ_OK;
}

static void finish_waiters(struct partition *p, int status)
{
    while (p->waiters) {
        struct waiter *w = p->waiters;
        p->waiters = w->next;
        if (w->done)
            w->done(w->arg, status, w->index, NULL);
        free(w);
    }
    p->waiters_tail = NULL;
}

void partition_close(struct partition *p)
{
    if (!p)
        return;
    seglog_writer_stop(p->writer); /* runs the remaining write callbacks */
    finish_waiters(p, CMQ_ESHUTDOWN);
    while (p->deferred) {
        struct deferred *d = p->deferred;
        p->deferred = d->next;
        if (d->done)
            d->done(d->arg, CMQ_ESHUTDOWN, 0, NULL);
        free(d);
    }
    if (p->log)
        seglog_sync(p->log);
    seglog_close(p->log);
    raft_destroy(p->raft);
    free(p);
}

/* ---------- writes ---------- */

static void write_done(struct seglog_write_req *req, int status)
{
    struct write *w = (struct write *)req;
    struct partition *p = w->p;
    if (status == CMQ_OK) {
        if (!p->failed)
            raft_persisted(p->raft, w->last_index, w->last_term);
    } else if (!p->failed) {
        /* The log is failed until reopened (seglog.h): stop acknowledging
         * anything; Raft keeps this node from counting toward commit. */
        p->failed = 1;
        char err[SEGLOG_ERR_MAX];
        seglog_last_error(p->log, err);
        log_error("partition_write_failed", "partition=%u status=%s error=\"%s\"", p->opts.id,
                  status_name(status), err);
    }
    free(w->entries);
    free(w->blob);
    free(w);
}

static int submit_entries(struct partition *p, const struct raft_entry *ents, size_t n)
{
    size_t bytes = 0;
    for (size_t i = 0; i < n; i++)
        bytes += ents[i].len;
    struct write *w = calloc(1, sizeof *w);
    if (!w)
        return CMQ_ENOMEM;
    w->entries = calloc(n, sizeof *w->entries);
    w->blob = malloc(bytes ? bytes : 1);
    if (!w->entries || !w->blob) {
        free(w->entries);
        free(w->blob);
        free(w);
        return CMQ_ENOMEM;
    }
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        if (ents[i].len)
            memcpy(w->blob + off, ents[i].data, ents[i].len);
        w->entries[i] = (struct seglog_entry){.term = ents[i].term, .index = ents[i].index,
                                              .len = ents[i].len, .type = (uint8_t)ents[i].type,
                                              .data = w->blob + off};
        off += ents[i].len;
    }
    w->p = p;
    w->last_index = ents[n - 1].index;
    w->last_term = ents[n - 1].term;
    if (ents[0].index <= p->submitted_last)
        w->req.truncate_from = ents[0].index;
    w->req.entries = w->entries;
    w->req.n = n;
    w->req.done = write_done;
    w->req.user = w;
    int rc = seglog_writer_submit(p->writer, &w->req);
    if (rc != CMQ_OK) {
        free(w->entries);
        free(w->blob);
        free(w);
        return rc;
    }
    p->submitted_last = w->last_index;
    return CMQ_OK;
}

void partition_on_writer(struct partition *p)
{
    seglog_writer_poll(p->writer);
    process(p);
}

/* ---------- the ready loop ---------- */

static void resolve(struct partition *p, const struct raft_entry *e, int status, void *result)
{
    /* Waiters are in index order; any waiter at or below an applied index is
     * decided now: its entry either is this one (same term) or was replaced. */
    while (p->waiters && p->waiters->index <= e->index) {
        struct waiter *w = p->waiters;
        p->waiters = w->next;
        if (!p->waiters)
            p->waiters_tail = NULL;
        int mine = w->index == e->index && w->term == e->term;
        if (w->done)
            w->done(w->arg, mine ? status : CMQ_ENOTLEADER, w->index, mine ? result : NULL);
        free(w);
    }
}

static int propose_now(struct partition *p, const void *cmd, size_t len, partition_done_fn *done,
                       void *arg)
{
    struct waiter *w = calloc(1, sizeof *w);
    if (!w)
        return CMQ_ENOMEM;
    struct raft_proposal prop = {.len = (uint32_t)len, .data = cmd};
    uint64_t first;
    int rc = raft_propose(p->raft, &prop, 1, &first);
    if (rc != RAFT_OK) {
        free(w);
        return rc; /* raft statuses equal cmq statuses by construction */
    }
    *w = (struct waiter){first, raft_term(p->raft), done, arg, NULL};
    if (p->waiters_tail)
        p->waiters_tail->next = w;
    else
        p->waiters = w;
    p->waiters_tail = w;
    return CMQ_OK;
}

static void flush_deferred(struct partition *p)
{
    while (p->deferred) {
        struct deferred *d = p->deferred;
        p->deferred = d->next;
        if (!p->deferred)
            p->deferred_tail = NULL;
        int rc = propose_now(p, d->data, d->len, d->done, d->arg);
        if (rc != CMQ_OK && d->done)
            d->done(d->arg, rc, 0, NULL);
        free(d);
    }
}

static void process(struct partition *p)
{
    if (p->in_ready)
        return;
    while (raft_has_ready(p->raft)) {
        struct raft_ready rd;
        p->in_ready = 1;
        raft_ready(p->raft, &rd);
        if (rd.soft_state_changed && p->opts.on_role)
            p->opts.on_role(p->opts.arg, p, rd.role, rd.leader);
        if (rd.snapshot)
            log_error("partition_snapshot_unsupported", "partition=%u index=%llu", p->opts.id,
                      (unsigned long long)rd.snapshot->index);
        if (rd.hard_state_changed &&
            (rd.hard_state.term != p->saved_term || rd.hard_state.vote != p->saved_vote)) {
            /* S1: the vote is durable before any message of this ready leaves.
             * Rare (elections only), so done inline. */
            struct seglog_hardstate hs = {rd.hard_state.term, rd.hard_state.vote,
                                          rd.hard_state.commit};
            int rc = seglog_hardstate_save(p->log, &hs);
            if (rc != CMQ_OK) {
                log_error("partition_hardstate_failed", "partition=%u status=%s", p->opts.id,
                          status_name(rc));
                p->failed = 1;
            } else {
                p->saved_term = hs.term;
                p->saved_vote = hs.vote;
            }
        }
        if (rd.n_entries && !p->failed) {
            int rc = submit_entries(p, rd.entries, rd.n_entries);
            if (rc != CMQ_OK) {
                log_error("partition_submit_failed", "partition=%u status=%s", p->opts.id,
                          status_name(rc));
                p->failed = 1;
            }
        }
        if (!p->failed)
            for (size_t i = 0; i < rd.n_msgs; i++)
                p->opts.send(p->opts.arg, p->opts.id, &rd.msgs[i]);
        for (size_t i = 0; i < rd.n_committed; i++) {
            const struct raft_entry *e = &rd.committed[i];
            int st = CMQ_OK;
            void *result = NULL;
            if (e->type == RAFT_ENTRY_NORMAL && p->opts.apply)
                st = p->opts.apply(p->opts.arg, p, e, &result);
            resolve(p, e, st, result);
            if (result && p->opts.release)
                p->opts.release(p->opts.arg, result);
        }
        raft_advance(p->raft);
        p->in_ready = 0;
        flush_deferred(p);
    }
}

void partition_flush(struct partition *p)
{
    process(p);
}

void partition_tick(struct partition *p)
{
    raft_tick(p->raft);
    process(p);
}

void partition_step(struct partition *p, const struct raft_msg *m)
{
    raft_step(p->raft, m);
    process(p);
}

int partition_is_leader(const struct partition *p)
{
    return !p->failed && raft_role(p->raft) == RAFT_LEADER;
}

int partition_propose(struct partition *p, const void *cmd, size_t len, partition_done_fn *done,
                      void *arg)
{
    if (p->failed)
        return CMQ_EIO;
    if (raft_role(p->raft) != RAFT_LEADER)
        return CMQ_ENOTLEADER;
    if (p->in_ready) {
        struct deferred *d = malloc(sizeof *d + len);
        if (!d)
            return CMQ_ENOMEM;
        d->done = done;
        d->arg = arg;
        d->len = len;
        d->next = NULL;
        memcpy(d->data, cmd, len);
        if (p->deferred_tail)
            p->deferred_tail->next = d;
        else
            p->deferred = d;
        p->deferred_tail = d;
        return CMQ_OK;
    }
    int rc = propose_now(p, cmd, len, done, arg);
    if (rc == CMQ_OK)
        process(p);
    return rc;
}

/* Reads entry `index` into a malloc'd *buf; e->data points into it. */
static int read_raw(struct seglog *log, uint64_t index, uint8_t **buf, struct seglog_entry *e)
{
    size_t cap = 4096;
    for (int attempt = 0; attempt < 2; attempt++) {
        uint8_t *b = malloc(cap);
        if (!b)
            return CMQ_ENOMEM;
        int rc = seglog_read(log, index, e, b, cap);
        if (rc == CMQ_OK) {
            *buf = b;
            return CMQ_OK;
        }
        free(b);
        if (rc != CMQ_ETOOBIG)
            return rc;
        cap = (size_t)e->len + 1;
    }
    return CMQ_EINTERNAL;
}

int partition_read_entry(struct partition *p, uint64_t index, uint8_t **buf, size_t *len,
                         uint64_t *term)
{
    struct seglog_entry e;
    int rc = read_raw(p->log, index, buf, &e);
    if (rc == CMQ_OK) {
        *len = e.len;
        if (term)
            *term = e.term;
    }
    return rc;
}

void partition_status(struct partition *p, struct partition_status *out)
{
    out->role = raft_role(p->raft);
    out->term = raft_term(p->raft);
    out->leader = raft_leader(p->raft);
    out->commit = raft_commit_index(p->raft);
    out->applied = raft_applied_index(p->raft);
    out->last_index = raft_last_index(p->raft);
    out->durable = raft_durable_index(p->raft);
    out->first_index = seglog_first_index(p->log);
}
