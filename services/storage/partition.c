/* partition.c: Raft core + segment log + writer thread; see partition.h.
 *
 * The ready loop (raft.h) is run by process() after every input.  Two rules
 * from the core shape it: nothing may call into the raft node between
 * raft_ready and raft_advance (so proposals made by callbacks during that
 * window are deferred to right after raft_advance), and entry data in a ready
 * is only valid until raft_advance (so a write request copies what it writes).
 */
#include "partition.h"
#include "partition_xfer.h"

#include "clock.h"
#include "log.h"
#include "seglog.h"
#include "seglog_writer.h"
#include "snapfile.h"
#include "status.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define WRITER_MAX_PENDING 4096
/* The largest entry: a full batch (16 bodies, 1 MiB in all) plus its framing. */
#define ENTRY_BYTES_MAX PARTITION_ENTRY_BYTES_MAX
/* Raft's bound on one AppendEntries: several full entries. */
#define APPEND_BYTES_MAX PARTITION_APPEND_BYTES_MAX
/* Install chunks: payload bytes and entries per chunk, and the silence (in
 * ticks) after which the leader resends one, or gives the transfer up. */
#define CHUNK_BYTES_MAX PARTITION_CHUNK_BYTES_MAX
/* Entries whose payloads Raft keeps in memory behind the applied index (the
 * rest are read back from the segments when a follower needs them). */
#define RAFT_KEEP_RECENT 256
#define CHUNK_ENTRIES_MAX PARTITION_CHUNK_ENTRIES_MAX
/* Proposals held while a leadership transfer runs (raft refuses them then;
 * the transfer ends within transfer_ticks): beyond these, CMQ_EBUSY. */
#define HELD_MAX 4096
#define HELD_BYTES_MAX (64u << 20)

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

/* A snapshot being written by the writer thread (snapshot_job). */
struct snapjob {
    struct seglog_write_req req;
    struct partition *p;
    struct snap_meta meta;
    uint8_t *image;
    size_t len;
    unsigned removed;      /* out: segments deleted */
    char err[SNAPFILE_ERR_MAX];
};

/* Follower side: the staged log of the install being received. */
struct staging {
    uint64_t leader, snap_index, snap_term, first_index;
    uint64_t next;         /* next entry wanted (staged and durable below it) */
    struct seglog *log;    /* install/ */
    struct seglog_writer *writer; /* its writes and fdatasyncs, off the loop */
    int busy;              /* a chunk is being written */
    int failed;            /* a write failed: start over at the next chunk */
};

/* One chunk being written into install/. */
struct stage_write {
    struct seglog_write_req req;
    struct partition *p;
    uint64_t next_after;
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
    int proposed;          /* batch_proposals: proposals not yet processed */
    int failed;              /* the log failed: no more writes until restart */
    int aside_pending;       /* partition_step_aside inside a ready: after raft_advance */
    int floor_file;          /* a `repair` file holds a vote floor (S7) not yet reached */
    int fail_status;         /* why (a status), for health */
    struct waiter *waiters, *waiters_tail; /* proposals in index order */
    struct deferred *deferred, *deferred_tail;
    size_t n_deferred, deferred_bytes;
    /* snapshots */
    struct snap_meta snap;     /* Raft's current snapshot (index 0: none) */
    struct snap_meta pending;  /* the newest one taken, handed to Raft at the next */
    uint8_t *pending_image;
    size_t pending_len;
    uint64_t last_taken;       /* index of the newest snapshot taken, loaded or installed */
    struct raft_config applied_config; /* configuration as of the applied index */
    uint64_t snap_durable;     /* index of the newest snapshot file on disk */
    uint64_t since_bytes;      /* payload applied since the last snapshot */
    int snap_inflight;         /* a snapjob is with the writer */
    int installing;            /* writer callbacks must not call raft */
    uint8_t *boot_image;       /* loaded at open, restored once */
    size_t boot_len;
    int boot_pending;
    struct xfer xfers[RAFT_MAX_NODES];
    struct xfer_ctx xctx;      /* what the leader side of an install reads (xctx()) */
    struct staging stage;
    int stage_stopping;        /* its writer is being stopped: callbacks only free */
    uint64_t taken, installed, segments_deleted;
};

static void process(struct partition *p);
static void stage_close(struct partition *p);
static void stage_discard(struct partition *p);

/* The leader side of an install (partition_xfer.c) sees the current log. */
static const struct xfer_ctx *xctx(struct partition *p)
{
    p->xctx = (struct xfer_ctx){.id = p->opts.id, .node_id = p->opts.node_id, .raft = p->raft,
                                .log = p->log, .send = p->opts.send,
                                .send_chunk = p->opts.send_chunk, .arg = p->opts.arg};
    return &p->xctx;
}

uint32_t partition_id(const struct partition *p) { return p->opts.id; }
struct raft *partition_raft(struct partition *p) { return p->raft; }
int partition_writer_fd(const struct partition *p)
{
    return p->writer ? seglog_writer_fd(p->writer) : -1;
}

/* Raft's log-storage seam: an evicted payload is read back from the
 * segments (pread through the page cache, on the loop thread). */
static int raft_read_back(void *arg, uint64_t index, uint64_t term, uint8_t **data, uint32_t *len)
{
    struct partition *p = arg;
    struct seglog_entry se;
    uint8_t *buf;
    if (!p->log || partition_read_raw(p->log, index, &buf, &se) != CMQ_OK)
        return RAFT_EINVAL;
    if (se.term != term) {
        free(buf);
        return RAFT_EINVAL;
    }
    *data = buf;
    *len = se.len;
    return RAFT_OK;
}

/* Reads the hard state and the stored entries after `after` (the snapshot
 * index) for raft_create. */
static int load_boot(struct partition *p, uint64_t after, struct seglog_hardstate *hs,
                     struct raft_entry **out, size_t *n_out, uint8_t ***bufs_out, char *err)
{
    int rc = seglog_hardstate_load(p->log, hs);
    if (rc == CMQ_ENOTFOUND) {
        memset(hs, 0, sizeof *hs);
    } else if (rc != CMQ_OK) {
        seglog_last_error(p->log, err);
        return rc;
    }
    uint64_t first = seglog_first_index(p->log), last = seglog_last_index(p->log);
    if (first <= after)
        first = after + 1;
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
        rc = partition_read_raw(p->log, first + i, &bufs[i], &se);
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

static int open_log(struct partition *p, struct seglog **out, const char *dir, uint64_t first,
                    char *err)
{
    struct seglog_opts lo;
    seglog_opts_default(&lo);
    lo.create = 1;
    lo.first_index = first;
    lo.max_record_bytes = ENTRY_BYTES_MAX;
    if (p->opts.segment_bytes)
        lo.segment_bytes = p->opts.segment_bytes;
    return seglog_open(dir, &lo, out, err);
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
    /* An install interrupted by a crash is finished (or discarded) first. */
    int rc = snapfile_install_finish(p->dir, err);
    if (rc != CMQ_OK) {
        free(p);
        return rc;
    }
    rc = snapfile_load_newest(p->dir, &p->snap, &p->boot_image, &p->boot_len, err);
    if (rc == CMQ_ENOTFOUND) {
        memset(&p->snap, 0, sizeof p->snap);
    } else if (rc != CMQ_OK) {
        free(p);
        return rc;
    } else {
        p->boot_pending = 1;
        p->snap_durable = p->snap.index;
        p->last_taken = p->snap.index;
    }
    rc = open_log(p, &p->log, p->dir, p->snap.index ? p->snap.first_needed : 1, err);
    if (rc != CMQ_OK) {
        free(p->boot_image);
        free(p);
        return rc;
    }
    if (p->snap.index && (seglog_first_index(p->log) > p->snap.first_needed ||
                          seglog_last_index(p->log) < p->snap.index)) {
        snprintf(err, 512, "%s: the segments [%llu, %llu] do not hold what snapshot %llu needs "
                 "([%llu, %llu])", p->dir, (unsigned long long)seglog_first_index(p->log),
                 (unsigned long long)seglog_last_index(p->log), (unsigned long long)p->snap.index,
                 (unsigned long long)p->snap.first_needed, (unsigned long long)p->snap.index);
        seglog_close(p->log);
        free(p->boot_image);
        free(p);
        return CMQ_ECORRUPT;
    }
    struct seglog_hardstate hs;
    struct raft_entry *ents = NULL;
    uint8_t **bufs = NULL;
    size_t n = 0;
    rc = load_boot(p, p->snap.index, &hs, &ents, &n, &bufs, err);
    if (rc != CMQ_OK) {
        seglog_close(p->log);
        free(p->boot_image);
        free(p);
        return rc;
    }
    struct raft_options ro = {
        .id = opts->node_id,
        .election_ticks = opts->election_ticks,
        .heartbeat_ticks = opts->heartbeat_ticks,
        .transfer_ticks = opts->transfer_ticks,
        .pre_vote = true,
        .check_quorum = true,
        .max_msg_bytes = APPEND_BYTES_MAX,
        .max_entries_per_msg = PARTITION_APPEND_ENTRIES_MAX,
        .max_snapshot_bytes = SNAPFILE_IMAGE_BYTES_MAX,
        .seed = opts->seed,
        .read_entry = raft_read_back,
        .read_arg = p,
        .keep_recent = RAFT_KEEP_RECENT,
    };
    struct raft_snapshot boot_snap = {
        .index = p->snap.index, .term = p->snap.term, .config = p->snap.config,
        .len = (uint32_t)p->boot_len, .data = p->boot_image,
    };
    struct raft_boot boot = {
        .hard_state = {hs.term, hs.vote, hs.commit},
        .snapshot = p->snap.index ? &boot_snap : NULL,
        .initial = &p->members,
        .entries = ents,
        .n_entries = n,
    };
    partition_read_floor(p->dir, hs.term, &boot.vote_floor.term, &boot.vote_floor.index);
    p->floor_file = boot.vote_floor.term || boot.vote_floor.index;
    rc = raft_create(&ro, &boot, &p->raft);
    for (size_t i = 0; i < n; i++)
        free(bufs[i]);
    free(bufs);
    free(ents);
    if (rc != RAFT_OK) {
        snprintf(err, 512, "%s: raft refused the stored state: %s", p->dir, raft_status_name(rc));
        seglog_close(p->log);
        free(p->boot_image);
        free(p);
        return rc;
    }
    p->saved_term = hs.term;
    p->saved_vote = hs.vote;
    p->submitted_last = seglog_last_index(p->log);
    /* Membership changes are not driven by the storage service yet, so the
     * configuration in force is the one at every applied index. */
    raft_get_config(p->raft, &p->applied_config);
    rc = seglog_writer_start(p->log, WRITER_MAX_PENDING, &p->writer);
    if (rc != CMQ_OK) {
        snprintf(err, 512, "%s: cannot start the writer thread", p->dir);
        raft_destroy(p->raft);
        seglog_close(p->log);
        free(p->boot_image);
        free(p);
        return rc;
    }
    log_info("partition_open", "partition=%u dir=%s entries=%zu term=%llu snapshot=%llu "
             "first_needed=%llu", opts->id, p->dir, n, (unsigned long long)hs.term,
             (unsigned long long)p->snap.index, (unsigned long long)p->snap.first_needed);
    *out = p;
    return CMQ_OK;
}

int partition_boot_restore(struct partition *p)
{
    if (!p->boot_pending)
        return CMQ_OK;
    p->boot_pending = 0;
    int rc = CMQ_OK;
    if (p->opts.restore)
        rc = p->opts.restore(p->opts.arg, p, p->boot_image, p->boot_len);
    free(p->boot_image);
    p->boot_image = NULL;
    if (rc != CMQ_OK) {
        log_error("partition_restore_failed", "partition=%u snapshot=%llu status=%s", p->opts.id,
                  (unsigned long long)p->snap.index, status_name(rc));
        p->failed = 1;
        p->fail_status = p->fail_status ? p->fail_status : rc;
    }
    return rc;
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
    stage_close(p);
    raft_destroy(p->raft);
    free(p->boot_image);
    free(p->pending_image);
    free(p);
}

/* ---------- writes ---------- */

static void write_done(struct seglog_write_req *req, int status)
{
    struct write *w = (struct write *)req;
    struct partition *p = w->p;
    if (status == CMQ_OK) {
        if (!p->failed && !p->installing)
            raft_persisted(p->raft, w->last_index, w->last_term);
    } else if (!p->failed) {
        /* The log is failed until reopened (seglog.h): stop acknowledging
         * anything; Raft keeps this node from counting toward commit. */
        p->failed = 1;
        p->fail_status = status;
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
    if (p->writer)
        seglog_writer_poll(p->writer);
    if (p->stage.writer)
        seglog_writer_poll(p->stage.writer);
    process(p);
}

/* ---------- snapshots (docs/storage-format.md §8) ---------- */

/* Runs on the writer thread: the file, then the segments nobody needs. */
static int snapshot_job(struct seglog_write_req *req, struct seglog *log)
{
    struct snapjob *j = req->user;
    char path[600];
    snapfile_path(j->p->dir, j->meta.index, path, sizeof path);
    int rc = snapfile_write(path, &j->meta, j->image, j->len, j->err);
    if (rc != CMQ_OK)
        return rc;
    uint64_t low = UINT64_MAX;
    rc = snapfile_prune(j->p->dir, &low);
    if (rc != CMQ_OK) {
        snprintf(j->err, sizeof j->err, "%.300s: cannot prune old snapshots", j->p->dir);
        return rc;
    }
    /* Segments wholly below what the kept snapshots need go (the newest's
     * first_needed, and the fallback's, which is normally smaller). */
    uint64_t keep = j->meta.first_needed < low ? j->meta.first_needed : low;
    if (keep > 1) {
        rc = seglog_compact_prefix(log, keep - 1, &j->removed);
        if (rc != CMQ_OK)
            seglog_last_error(log, j->err);
    }
    return rc;
}

static void snapshot_done(struct seglog_write_req *req, int status)
{
    struct snapjob *j = req->user;
    struct partition *p = j->p;
    p->snap_inflight = 0;
    if (status == CMQ_OK) {
        if (j->meta.index > p->snap_durable)
            p->snap_durable = j->meta.index;
        p->segments_deleted += j->removed;
        log_info("partition_snapshot", "partition=%u index=%llu term=%llu first_needed=%llu "
                 "image_bytes=%zu segments_deleted=%u first_index=%llu", p->opts.id,
                 (unsigned long long)j->meta.index, (unsigned long long)j->meta.term,
                 (unsigned long long)j->meta.first_needed, j->len, j->removed,
                 (unsigned long long)seglog_first_index(p->log));
    } else {
        log_error("partition_snapshot_failed", "partition=%u index=%llu status=%s error=\"%s\"",
                  p->opts.id, (unsigned long long)j->meta.index, status_name(status), j->err);
    }
    free(j->image);
    free(j);
}

/* Takes a snapshot when enough was applied since the last one.  Outside a
 * ready only (raft_compact changes the node).
 *
 * Raft is compacted one snapshot behind: the image taken now is written to
 * its file at once (restart and segment deletion use it), but handed to
 * raft_compact only when the next one is taken.  So the core's in-memory log
 * holds one to two thresholds of entries, and a follower that lags by less
 * than one threshold catches up with APPENDs instead of a whole install. */
static void maybe_snapshot(struct partition *p)
{
    if (p->stage.log && !p->stage.busy && raft_applied_index(p->raft) >= p->stage.snap_index)
        stage_discard(p); /* caught up another way (or the install was superseded) */
    if (!p->opts.image || !p->opts.snapshot_entries || p->snap_inflight || p->failed ||
        p->boot_pending || p->stage.log)
        return;
    uint64_t applied = raft_applied_index(p->raft);
    if (applied <= p->last_taken)
        return;
    if (applied - p->last_taken < p->opts.snapshot_entries &&
        (!p->opts.snapshot_bytes || p->since_bytes < p->opts.snapshot_bytes))
        return;
    struct snapjob *j = calloc(1, sizeof *j);
    if (!j)
        return;
    uint64_t first_needed = applied + 1;
    int rc = p->opts.image(p->opts.arg, p, &j->image, &j->len, &first_needed);
    if (rc == CMQ_OK && first_needed > applied + 1)
        first_needed = applied + 1;
    if (rc == CMQ_OK && j->len > SNAPFILE_IMAGE_BYTES_MAX)
        rc = CMQ_ETOOBIG;
    uint8_t *copy = NULL;
    if (rc == CMQ_OK && !(copy = malloc(j->len ? j->len : 1)))
        rc = CMQ_ENOMEM;
    if (rc == CMQ_OK && p->pending.index) {
        rc = raft_compact(p->raft, p->pending.index, p->pending_image,
                          (uint32_t)p->pending_len);
        if (rc == RAFT_OK)
            p->snap = p->pending;
    }
    if (rc != CMQ_OK) {
        if (rc == CMQ_EBUSY)
            log_warn("partition_snapshot_skipped", "partition=%u index=%llu reason=\"a state "
                     "machine on it cannot snapshot\"", p->opts.id, (unsigned long long)applied);
        else
            log_error("partition_snapshot_failed", "partition=%u index=%llu status=%s",
                      p->opts.id, (unsigned long long)applied, status_name(rc));
        free(copy);
        free(j->image);
        free(j);
        p->since_bytes = 0; /* not again before another threshold */
        p->last_taken = applied;
        return;
    }
    if (j->len)
        memcpy(copy, j->image, j->len);
    free(p->pending_image);
    p->pending = (struct snap_meta){applied, raft_term_at(p->raft, applied), first_needed,
                                    p->applied_config};
    p->pending_image = copy;
    p->pending_len = j->len;
    p->last_taken = applied;
    p->since_bytes = 0;
    p->taken++;
    j->p = p;
    j->meta = p->pending;
    j->req.job = snapshot_job;
    j->req.done = snapshot_done;
    j->req.user = j;
    if (seglog_writer_submit(p->writer, &j->req) != CMQ_OK) {
        free(j->image);
        free(j);
        return; /* the next one writes a file */
    }
    p->snap_inflight = 1;
}

/* ---------- install: follower side ---------- */

/* Stops the staging writer (finishing its writes) and closes the staged
 * log; the files stay. */
static void stage_close(struct partition *p)
{
    struct staging *st = &p->stage;
    if (st->writer) {
        if (p->opts.writer_fd)
            p->opts.writer_fd(p->opts.arg, p, seglog_writer_fd(st->writer), 0);
        p->stage_stopping = 1;
        seglog_writer_stop(st->writer);
        p->stage_stopping = 0;
        st->writer = NULL;
    }
    seglog_close(st->log);
    memset(st, 0, sizeof *st);
}

static void stage_discard(struct partition *p)
{
    stage_close(p);
    snapfile_install_discard(p->dir);
}

static void stage_ack(struct partition *p, uint64_t to)
{
    const struct staging *st = &p->stage;
    struct partition_chunk ack = {
        .from = p->opts.node_id, .to = to, .term = raft_term(p->raft),
        .snap_index = st->snap_index, .snap_term = st->snap_term,
        .first_index = st->first_index, .next = st->next, .ack = 1,
    };
    if (p->opts.send_chunk)
        p->opts.send_chunk(p->opts.arg, p->opts.id, &ack);
}

/* A chunk is durable in install/: acknowledge it (on the loop thread). */
static void stage_write_done(struct seglog_write_req *req, int status)
{
    struct stage_write *w = req->user;
    struct partition *p = w->p;
    if (!p->stage_stopping && p->stage.writer) {
        p->stage.busy = 0;
        if (status == CMQ_OK) {
            p->stage.next = w->next_after;
            stage_ack(p, p->stage.leader);
        } else {
            p->stage.failed = 1; /* discarded at the next chunk (not from inside its poll) */
            log_error("partition_install_failed", "partition=%u status=%s", p->opts.id,
                      status_name(status));
        }
    }
    free(w->entries);
    free(w->blob);
    free(w);
}

static int stage_complete(const struct partition *p, uint64_t index, uint64_t term)
{
    return p->stage.log && p->stage.snap_index == index && p->stage.snap_term == term &&
           p->stage.next > index;
}

static void stage_on_chunk(struct partition *p, const struct partition_chunk *c)
{
    if (c->first_index == 0 || c->first_index > c->snap_index + 1 || c->next < c->first_index)
        return;
    struct staging *st = &p->stage;
    if (raft_commit_index(p->raft) >= c->snap_index) {
        /* Already there: Raft will take the SNAPSHOT without installing it. */
        struct partition_chunk ack = {
            .from = p->opts.node_id, .to = c->from, .term = raft_term(p->raft),
            .snap_index = c->snap_index, .snap_term = c->snap_term,
            .first_index = c->first_index, .next = c->snap_index + 1, .ack = 1,
        };
        if (p->opts.send_chunk)
            p->opts.send_chunk(p->opts.arg, p->opts.id, &ack);
        return;
    }
    if (st->failed)
        stage_discard(p);
    if (st->log && st->leader == c->from && c->snap_index > st->snap_index &&
        c->first_index >= st->first_index && c->first_index <= st->next) {
        /* The leader moved on to a newer snapshot while we received: what is
         * staged is still its prefix (committed entries never change), so
         * keep it and aim further instead of starting over. */
        st->snap_index = c->snap_index;
        st->snap_term = c->snap_term;
        log_info("partition_install_retarget", "partition=%u snapshot=%llu staged_next=%llu",
                 p->opts.id, (unsigned long long)c->snap_index, (unsigned long long)st->next);
    }
    if (!st->log || st->snap_index != c->snap_index || st->snap_term != c->snap_term) {
        if (st->log)
            stage_discard(p);
        char inst[600], err[SEGLOG_ERR_MAX];
        snprintf(inst, sizeof inst, "%s/install", p->dir);
        snapfile_install_discard(p->dir); /* leftovers of an older transfer */
        if (mkdir(inst, 0750) != 0 && errno != EEXIST)
            return;
        if (open_log(p, &st->log, inst, c->first_index, err) != CMQ_OK) {
            static struct log_limit lim; /* the leader resends every second */
            uint64_t sup;
            if (log_limit_allow(&lim, clock_mono_ms(), 10000, &sup))
                log_error("partition_install_failed", "partition=%u error=\"%s\" suppressed=%llu",
                          p->opts.id, err, (unsigned long long)sup);
            st->log = NULL;
            return;
        }
        if (seglog_writer_start(st->log, 16, &st->writer) != CMQ_OK) {
            seglog_close(st->log);
            st->log = NULL;
            return;
        }
        if (p->opts.writer_fd)
            p->opts.writer_fd(p->opts.arg, p, seglog_writer_fd(st->writer), 1);
        st->leader = c->from;
        st->snap_index = c->snap_index;
        st->snap_term = c->snap_term;
        st->first_index = c->first_index;
        st->next = c->first_index;
        log_info("partition_install_receive", "partition=%u leader=%llu snapshot=%llu "
                 "first_needed=%llu", p->opts.id, (unsigned long long)c->from,
                 (unsigned long long)c->snap_index, (unsigned long long)c->first_index);
    }
    if (st->busy)
        return; /* the chunk being written is acknowledged when it is durable */
    if (c->next == st->next && c->n_entries && st->next <= st->snap_index) {
        uint32_t n = 0;
        size_t bytes = 0;
        for (uint32_t i = 0; i < c->n_entries && n < CHUNK_ENTRIES_MAX; i++) {
            const struct raft_entry *e = &c->entries[i];
            if (e->index != st->next + n || e->index > st->snap_index)
                break;
            bytes += e->len;
            n++;
        }
        struct stage_write *w = n ? calloc(1, sizeof *w) : NULL;
        if (w) {
            w->entries = calloc(n, sizeof *w->entries);
            w->blob = malloc(bytes ? bytes : 1);
        }
        if (n && (!w || !w->entries || !w->blob)) {
            if (w) {
                free(w->entries);
                free(w->blob);
                free(w);
            }
            return; /* the leader resends */
        }
        if (n) {
            /* Written and fdatasynced by the staging writer thread; the loop
             * acknowledges when it is durable (stage_write_done). */
            size_t off = 0;
            for (uint32_t i = 0; i < n; i++) {
                const struct raft_entry *e = &c->entries[i];
                if (e->len)
                    memcpy(w->blob + off, e->data, e->len);
                w->entries[i] = (struct seglog_entry){.term = e->term, .index = e->index,
                                                      .len = e->len, .type = (uint8_t)e->type,
                                                      .data = w->blob + off};
                off += e->len;
            }
            w->p = p;
            w->next_after = st->next + n;
            w->req.entries = w->entries;
            w->req.n = n;
            w->req.done = stage_write_done;
            w->req.user = w;
            if (seglog_writer_submit(st->writer, &w->req) == CMQ_OK) {
                st->busy = 1;
                return;
            }
            free(w->entries);
            free(w->blob);
            free(w);
        }
    }
    stage_ack(p, c->from);
}

void partition_on_chunk(struct partition *p, const struct partition_chunk *c)
{
    if (p->failed || c->to != p->opts.node_id)
        return;
    if (c->ack)
        xfer_on_ack(p->xfers, xctx(p), c);
    else
        stage_on_chunk(p, c);
}

static void set_writer_fd(struct partition *p, int add)
{
    if (p->opts.writer_fd && p->writer)
        p->opts.writer_fd(p->opts.arg, p, seglog_writer_fd(p->writer), add);
}

/* Installs the snapshot Raft handed over (inside the ready): the staged
 * entries become the log, the image the state machine.  Blocks the loop for
 * the file moves (a few renames and fsyncs); the data was synced as it came. */
static void install_snapshot(struct partition *p, const struct raft_snapshot *s)
{
    if (!stage_complete(p, s->index, s->term)) {
        log_error("partition_install_failed", "partition=%u snapshot=%llu "
                  "reason=\"the entries it needs were not received\"", p->opts.id,
                  (unsigned long long)s->index);
        p->failed = 1;
        p->fail_status = p->fail_status ? p->fail_status : CMQ_EIO;
        return;
    }
    char path[600], err[SNAPFILE_ERR_MAX];
    struct snap_meta m = {s->index, s->term, p->stage.first_index, s->config};
    snprintf(path, sizeof path, "%s/install/snapshot", p->dir);
    int rc = snapfile_write(path, &m, s->data, s->len, err); /* the commit point */
    if (rc == CMQ_OK) {
        /* The old log goes: stop its writer (its callbacks skip Raft now). */
        p->installing = 1;
        set_writer_fd(p, 0);
        seglog_writer_stop(p->writer);
        p->writer = NULL;
        p->installing = 0;
        seglog_close(p->log);
        p->log = NULL;
        stage_close(p);
        rc = snapfile_install_finish(p->dir, err);
        if (rc == CMQ_OK)
            rc = open_log(p, &p->log, p->dir, m.first_needed, err);
        if (rc == CMQ_OK && (seglog_first_index(p->log) > m.first_needed ||
                             seglog_last_index(p->log) != m.index)) {
            snprintf(err, sizeof err, "%s: installed log is [%llu, %llu], wanted [%llu, %llu]",
                     p->dir, (unsigned long long)seglog_first_index(p->log),
                     (unsigned long long)seglog_last_index(p->log),
                     (unsigned long long)m.first_needed, (unsigned long long)m.index);
            rc = CMQ_ECORRUPT;
        }
        if (rc == CMQ_OK) {
            struct seglog_hardstate hs = {p->saved_term, p->saved_vote, s->index};
            rc = seglog_hardstate_save(p->log, &hs);
        }
        if (rc == CMQ_OK)
            rc = seglog_writer_start(p->log, WRITER_MAX_PENDING, &p->writer);
        if (rc == CMQ_OK)
            set_writer_fd(p, 1);
    }
    memset(&p->stage, 0, sizeof p->stage);
    if (rc == CMQ_OK && p->opts.restore)
        rc = p->opts.restore(p->opts.arg, p, s->data, s->len);
    if (rc != CMQ_OK) {
        log_error("partition_install_failed", "partition=%u snapshot=%llu status=%s error=\"%s\"",
                  p->opts.id, (unsigned long long)s->index, status_name(rc), err);
        p->failed = 1;
        p->fail_status = p->fail_status ? p->fail_status : rc;
        return;
    }
    finish_waiters(p, CMQ_ENOTLEADER);
    p->snap = m;
    free(p->pending_image);
    p->pending_image = NULL;
    memset(&p->pending, 0, sizeof p->pending);
    p->last_taken = m.index;
    p->applied_config = s->config;
    p->snap_durable = m.index;
    p->submitted_last = m.index;
    p->since_bytes = 0;
    p->installed++;
    log_info("partition_snapshot_installed", "partition=%u index=%llu term=%llu "
             "first_needed=%llu image_bytes=%u", p->opts.id, (unsigned long long)m.index,
             (unsigned long long)m.term, (unsigned long long)m.first_needed, s->len);
}

/* Whether a received SNAPSHOT may reach Raft: only once its entries are
 * staged, unless Raft will not need to install it (it already holds it). */
static int snapshot_acceptable(struct partition *p, const struct raft_msg *m)
{
    const struct raft_snapshot *s = &m->snapshot;
    if (s->index <= raft_commit_index(p->raft) ||
        (s->index <= raft_last_index(p->raft) && raft_term_at(p->raft, s->index) == s->term))
        return 1;
    return stage_complete(p, s->index, s->term);
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

/* Proposes the held proposals in order; while a leadership transfer runs
 * they stay held (it ends within transfer_ticks: then they are proposed here,
 * or, if leadership moved, fail with CMQ_ENOTLEADER and their callers send
 * the leader hint). */
static void flush_deferred(struct partition *p)
{
    while (p->deferred && raft_transferee(p->raft) == 0) {
        struct deferred *d = p->deferred;
        p->deferred = d->next;
        if (!p->deferred)
            p->deferred_tail = NULL;
        p->n_deferred--;
        p->deferred_bytes -= d->len;
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
    if (p->boot_pending)
        partition_boot_restore(p);
    if (p->deferred)
        flush_deferred(p); /* held by a transfer that has ended since */
    while (raft_has_ready(p->raft)) {
        struct raft_ready rd;
        p->in_ready = 1;
        raft_ready(p->raft, &rd);
        if (rd.soft_state_changed && p->opts.on_role)
            p->opts.on_role(p->opts.arg, p, rd.role, rd.leader);
        if (rd.snapshot && !p->failed)
            install_snapshot(p, rd.snapshot);
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
                p->fail_status = p->fail_status ? p->fail_status : rc;
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
                p->fail_status = p->fail_status ? p->fail_status : rc;
            }
        }
        if (!p->failed)
            for (size_t i = 0; i < rd.n_msgs; i++) {
                if (rd.msgs[i].type == RAFT_MSG_SNAPSHOT)
                    xfer_snapshot_msg(p->xfers, xctx(p), &rd.msgs[i], &p->snap);
                else
                    p->opts.send(p->opts.arg, p->opts.id, &rd.msgs[i]);
            }
        for (size_t i = 0; i < rd.n_committed; i++) {
            const struct raft_entry *e = &rd.committed[i];
            int st = CMQ_OK;
            void *result = NULL;
            if (e->type == RAFT_ENTRY_NORMAL && p->opts.apply)
                st = p->opts.apply(p->opts.arg, p, e, &result);
            else if (e->type == RAFT_ENTRY_CONF)
                raft_config_decode(e->data, e->len, &p->applied_config);
            p->since_bytes += e->len;
            resolve(p, e, st, result);
            if (result && p->opts.release)
                p->opts.release(p->opts.arg, result);
        }
        raft_advance(p->raft);
        p->in_ready = 0;
        if (p->aside_pending) {
            p->aside_pending = 0;
            raft_step_aside(p->raft, true);
        }
        flush_deferred(p);
        maybe_snapshot(p);
    }
}

void partition_flush(struct partition *p)
{
    p->proposed = 0;
    process(p);
}

/* Once the durable log is at least as up to date as the vote floor, the log
 * itself carries the promises the floor stood for (docs/raft.md §11): the
 * `repair` file goes, and the repair is over. */
static void floor_check(struct partition *p)
{
    if (!p->floor_file || p->failed || raft_below_vote_floor(p->raft) ||
        raft_durable_index(p->raft) != raft_last_index(p->raft))
        return;
    char path[600];
    snprintf(path, sizeof path, "%s/repair", p->dir);
    if (unlink(path) != 0 && errno != ENOENT)
        return;
    int dfd = open(p->dir, O_RDONLY | O_DIRECTORY);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    p->floor_file = 0;
    log_info("partition_repaired", "partition=%u last_index=%llu term=%llu", p->opts.id,
             (unsigned long long)raft_last_index(p->raft),
             (unsigned long long)raft_term_at(p->raft, raft_last_index(p->raft)));
}

void partition_tick(struct partition *p)
{
    raft_tick(p->raft);
    xfer_tick(p->xfers, xctx(p));
    process(p);
    floor_check(p);
}

void partition_step(struct partition *p, const struct raft_msg *m)
{
    if (p->failed)
        return;
    if (m->type == RAFT_MSG_SNAPSHOT && !snapshot_acceptable(p, m))
        return; /* the leader streams the entries first; Raft resends it */
    raft_step(p->raft, m);
    process(p);
}

int partition_is_leader(const struct partition *p)
{
    return !p->failed && raft_role(p->raft) == RAFT_LEADER && !raft_is_aside(p->raft);
}

int partition_log_status(const struct partition *p)
{
    return p->failed ? (p->fail_status ? p->fail_status : CMQ_EIO) : CMQ_OK;
}

void partition_step_aside(struct partition *p)
{
    if (raft_is_aside(p->raft))
        return;
    if (p->in_ready) {
        p->aside_pending = 1;
        return;
    }
    raft_step_aside(p->raft, true);
    process(p);
}

int partition_repairing(const struct partition *p)
{
    return raft_below_vote_floor(p->raft);
}

int partition_propose(struct partition *p, const void *cmd, size_t len, partition_done_fn *done,
                      void *arg)
{
    if (p->failed)
        return CMQ_EIO;
    if (raft_role(p->raft) != RAFT_LEADER)
        return CMQ_ENOTLEADER;
    if (len > ENTRY_BYTES_MAX)
        return CMQ_ETOOBIG; /* the log and the wire carry no larger entry */
    /* During a leadership transfer Raft refuses proposals; holding them
     * instead (bounded) keeps a transfer invisible to clients but for the
     * wait.  Later proposals queue behind held ones, in order. */
    int hold = raft_transferee(p->raft) != 0 || p->deferred;
    if (hold && !p->in_ready &&
        (p->n_deferred >= HELD_MAX || p->deferred_bytes + len > HELD_BYTES_MAX))
        return CMQ_EBUSY;
    if (p->in_ready || hold) {
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
        p->n_deferred++;
        p->deferred_bytes += len;
        return CMQ_OK;
    }
    int rc = propose_now(p, cmd, len, done, arg);
    if (rc == CMQ_OK) {
        if (p->opts.batch_proposals)
            p->proposed = 1; /* partition_flush_proposals, at the end of the loop turn */
        else
            process(p);
    }
    return rc;
}

int partition_flush_proposals(struct partition *p)
{
    if (!p->proposed)
        return 0;
    p->proposed = 0;
    process(p);
    return 1;
}

/* Reads entry `index` into a malloc'd *buf; e->data points into it. */
int partition_read_entry(struct partition *p, uint64_t index, uint8_t **buf, size_t *len,
                         uint64_t *term)
{
    struct seglog_entry e;
    int rc = partition_read_raw(p->log, index, buf, &e);
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
    out->first_index = p->log ? seglog_first_index(p->log) : 0;
    out->snapshot_index = p->snap_durable;
    out->snapshots_taken = p->taken;
    out->snapshots_installed = p->installed;
    out->segments_deleted = p->segments_deleted;
}
