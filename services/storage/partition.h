/* partition.h: one Raft group on this storage node.
 *
 * A partition joins the pure Raft core (common/raft) to its durable log
 * (common/seglog, written by a seglog_writer thread so the loop never waits
 * on fsync) and to the node's transport.  Its log *is* the message store:
 * committed entries are handed to the owner's apply callback in order, and
 * can be read back later by index (partition_read_entry).
 *
 * Owns: the raft node, the segment log and its writer thread, in-flight write
 * requests, and the proposals waiting for their entries to commit.
 * Does not own: the transport (send callback), the state machine (apply
 * callback), the event loop (the owner watches partition_writer_fd and calls
 * partition_on_writer, and calls partition_tick on its timer).
 *
 * Durability: an entry is reported to Raft as persisted only after the writer
 * thread's fdatasync covering it returned; a changed term or vote is saved
 * synchronously (write, fsync, rename, fsync dir) before any message of the
 * same ready is sent.  Raft then commits only majority-durable entries.
 *
 * Snapshots (docs/storage-format.md §8): after `snapshot_entries` applied
 * entries or `snapshot_bytes` of applied payload since the last one, the
 * partition asks its owner for the state machine image (image callback), hands
 * it to Raft (raft_compact drops the in-memory log up to there) and has the
 * writer thread write the snapshot file and delete the segments that both the
 * newest kept snapshots no longer need (below their first_needed).  At open,
 * the newest valid snapshot is loaded (restore callback, via
 * partition_boot_restore) and only the segments after it are replayed.
 *
 * Raft keeps payloads only for the last entries; older ones are read back
 * from the segments when a follower needs them (raft_options.read_entry).
 *
 * Install (a follower whose next index was compacted away): the leader's
 * partition streams the retained entries [first_needed, snapshot index] in
 * chunks (chunk callback / partition_on_chunk, stop-and-wait, resent on
 * silence) before Raft's SNAPSHOT message; the follower stages them in
 * `install/` and accepts the SNAPSHOT only once it holds all of them, then
 * swaps the staged log in and restores the image.
 *
 * Repair (docs/raft.md §11): a replica whose state machine or log failed
 * steps aside (partition_step_aside: Raft never campaigns again and a leader
 * hands over); its owner then closes it, moves the directory aside with
 * partition_discard (kept as `<dir>.failed-<unix s>`, the newest
 * PARTITION_FAILED_KEEP of them) and opens it again empty: the term/vote file
 * is carried over and a `repair` file records the vote floor (raft.h S7), so
 * the empty replica never votes as if it had promised nothing.  It then
 * catches up from the leader like any lagging follower (APPENDs, or the
 * install below).
 *
 * Not yet: membership changes driven by metadata.
 */
#ifndef CMQ_STORAGE_PARTITION_H
#define CMQ_STORAGE_PARTITION_H

#include "partition_repair.h"
#include "partition_xfer.h"
#include "raft.h"

#include <stddef.h>
#include <stdint.h>

/* Limits that cross the wire (services/storage/raftwire.h asserts them
 * against the transport; docs/raft.md §4.1).
 * PARTITION_ENTRY_BYTES_MAX is the largest entry the system makes: a full
 * Send (QSM_BATCH_MAX bodies, QSM_BATCH_BYTES_MAX in all) plus its framing;
 * it is also the segment log's record limit.  partition_propose refuses a
 * larger command (CMQ_ETOOBIG).  An APPEND carries at most
 * PARTITION_APPEND_ENTRIES_MAX entries and PARTITION_APPEND_BYTES_MAX payload
 * bytes (one entry alone may reach PARTITION_ENTRY_BYTES_MAX); an install
 * chunk stops after PARTITION_CHUNK_ENTRIES_MAX entries or once it holds
 * PARTITION_CHUNK_BYTES_MAX payload bytes (so at most that plus one entry). */
#define PARTITION_ENTRY_BYTES_MAX (2u << 20)
#define PARTITION_APPEND_BYTES_MAX (4u << 20)
#define PARTITION_APPEND_ENTRIES_MAX 64u
/* PARTITION_CHUNK_BYTES_MAX, PARTITION_CHUNK_ENTRIES_MAX: partition_xfer.h */
_Static_assert(PARTITION_ENTRY_BYTES_MAX <= PARTITION_APPEND_BYTES_MAX,
               "raft's max_msg_bytes is also its largest entry");

struct partition;

/* Applies one committed entry (borrowed for the call), in log order, exactly
 * once per process life.  Returns a status that becomes the result of the
 * proposal that created the entry (if it is still waiting on this node), and
 * may set *result to an object handed to that proposal's done callback and
 * then to the release callback. */
typedef int partition_apply_fn(void *arg, struct partition *p, const struct raft_entry *e,
                               void **result);
/* Releases what apply put in *result, after the waiting proposal saw it. */
typedef void partition_release_fn(void *arg, void *result);
/* The role or the leader changed. */
typedef void partition_role_fn(void *arg, struct partition *p, uint32_t role, uint64_t leader);
/* Produces the state machine image as of the last applied entry: *image is
 * malloc'd (ownership passes to the partition), *first_needed is the first
 * log index the state machine may still read.  Any status but CMQ_OK skips this
 * snapshot (CMQ_EBUSY: a state machine there cannot snapshot; logged as a
 * warning) until another threshold has passed. */
typedef int partition_image_fn(void *arg, struct partition *p, uint8_t **image, size_t *len,
                               uint64_t *first_needed);
/* Replaces the state machine with an image (borrowed for the call). */
typedef int partition_restore_fn(void *arg, struct partition *p, const uint8_t *image,
                                 size_t len);
/* The writer's fd changes (install swaps the log): stop watching `fd`
 * (add = 0, before it is closed) or start watching it (add = 1). */
typedef void partition_writer_fd_fn(void *arg, struct partition *p, int fd, int add);

struct partition_opts {
    uint32_t id;                   /* partition id, > 0 */
    uint64_t node_id;              /* this node's raft id, > 0 */
    const struct raft_config *members; /* bootstrap membership (copied) */
    const char *dir;               /* the log directory (copied); created if missing */
    uint32_t election_ticks;
    uint32_t heartbeat_ticks;
    uint32_t transfer_ticks;       /* a leadership transfer's bound (raft_options;
                                    * 0: one election timeout); proposals made
                                    * meanwhile are held, not refused */
    uint64_t seed;
    uint64_t segment_bytes;        /* 0: seglog default */
    partition_send_fn *send;
    partition_apply_fn *apply;
    partition_release_fn *release; /* may be NULL */
    partition_role_fn *on_role;    /* may be NULL */
    uint64_t snapshot_entries;     /* applied entries between snapshots; 0: never */
    uint64_t snapshot_bytes;       /* applied payload bytes between snapshots; 0: no bound */
    partition_image_fn *image;     /* NULL: no snapshots are taken */
    partition_restore_fn *restore;
    partition_writer_fd_fn *writer_fd;
    partition_chunk_fn *send_chunk;
    /* Proposals only enter the Raft log; the owner calls
     * partition_flush_proposals once per loop turn, so the proposals of one
     * turn leave as one ready: one AppendEntries per follower and one write. */
    int batch_proposals;
    void *arg;
};

/* Opens the log (recovering it), replays nothing yet, and starts the writer.
 * On failure returns a status and a message in err (file and offset for a
 * corrupt log). */
int partition_open(const struct partition_opts *opts, struct partition **out, char err[512]);
/* Stops the writer (finishing submitted writes), fails waiting proposals with
 * CMQ_ESHUTDOWN, closes the log.  Accepts NULL. */
void partition_close(struct partition *p);

uint32_t partition_id(const struct partition *p);
struct raft *partition_raft(struct partition *p);
int partition_writer_fd(const struct partition *p);

/* Drives the node: one clock tick; a message from a peer (borrowed); writer
 * completions (call when partition_writer_fd is readable). */
void partition_tick(struct partition *p);
void partition_step(struct partition *p, const struct raft_msg *m);
void partition_on_writer(struct partition *p);
/* An install chunk or answer from a peer (borrowed). */
void partition_on_chunk(struct partition *p, const struct partition_chunk *c);
/* Restores the state machine from the snapshot loaded at open (restore
 * callback), once, before anything is applied.  Call after the owner set up
 * its state machine; process() does it otherwise. */
int partition_boot_restore(struct partition *p);
/* Carries out what a direct call on partition_raft() produced (e.g. a
 * leadership transfer).  Never call it from inside a partition callback. */
void partition_flush(struct partition *p);
/* With opts.batch_proposals: processes what proposals since the last call
 * produced.  Returns 1 when it did anything (messages may have been sent). */
int partition_flush_proposals(struct partition *p);

/* Called once the entry created by a proposal is applied (status and result
 * from the apply callback; result is borrowed for the call and NULL when the
 * proposal failed), or fails (CMQ_ENOTLEADER when leadership was lost and the
 * entry was overwritten, CMQ_ESHUTDOWN at close).  `index` is the entry's. */
typedef void partition_done_fn(void *arg, int status, uint64_t index, void *result);

/* Proposes one command (copied) on the leader.  Returns CMQ_OK (done runs
 * later, never inside this call), CMQ_ENOTLEADER, CMQ_EBUSY, CMQ_ELIMIT,
 * CMQ_ETOOBIG.  `done` may be NULL. */
int partition_propose(struct partition *p, const void *cmd, size_t len, partition_done_fn *done,
                      void *arg);

/* Reads entry `index` back from the segment files; *buf is malloc'd (caller
 * frees).  CMQ_ENOTFOUND when it is not stored. */
int partition_read_entry(struct partition *p, uint64_t index, uint8_t **buf, size_t *len,
                         uint64_t *term);

struct partition_status {
    uint32_t role;
    uint64_t term, leader, commit, applied, last_index, durable, first_index;
    uint64_t snapshot_index;   /* newest durable snapshot, 0 when none */
    uint64_t snapshots_taken, snapshots_installed, segments_deleted;
};
void partition_status(struct partition *p, struct partition_status *out);
/* Whether the node leads and may propose (leader and not transferring). */
int partition_is_leader(const struct partition *p);
/* CMQ_OK, or the status that failed the log (a write, the term/vote file,
 * an install): the partition stopped until it is reopened. */
int partition_log_status(const struct partition *p);
/* The state machine on this replica failed (or its log did): Raft stops
 * campaigning and a leader hands over (raft_step_aside).  From inside a
 * callback (apply) it takes effect right after the ready being processed. */
void partition_step_aside(struct partition *p);
/* Whether this replica was repaired and has not yet caught up past what it
 * lost (its vote floor is above its log: raft.h S7). */
int partition_repairing(const struct partition *p);

#endif
