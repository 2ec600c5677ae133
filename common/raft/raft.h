/* raft.h: a pure Raft consensus core (Ongaro & Ousterhout, "In Search of an
 * Understandable Consensus Algorithm", and Ongaro's thesis, "Consensus: Bridging
 * Theory and Practice", cited below as "thesis §N").
 *
 * What it is.  One `struct raft` is one member of one Raft group.  It is a state
 * machine with no I/O, no clock, no threads and no globals: the caller feeds it
 * messages (raft_step), clock ticks (raft_tick) and proposals (raft_propose), and
 * pulls out one batch of effects at a time (raft_ready) that the caller carries
 * out and then acknowledges (raft_advance, raft_persisted).  The storage service
 * and the metadata service embed it; the simulator in tests/sim drives the very
 * same code with a fake network and a fake disk.
 *
 * What it owns.  The in-memory log window (entries after the last snapshot), a
 * copy of the latest snapshot's bytes, per-peer replication progress, and the
 * outbox of messages produced since the last raft_advance.
 *
 * What it does not do.  It never reads or writes a file or a socket, never
 * encodes a message for the wire (the caller maps struct raft_msg 1:1 onto a
 * protobuf message), never chooses when to take a snapshot (the application
 * does, through raft_compact), and never forwards proposals from followers.
 *
 * The loop the caller runs (see docs/raft.md for the full contract):
 *
 *     raft_step(...) / raft_tick(...) / raft_propose(...) / raft_read_index(...)
 *     if (raft_has_ready(r)) {
 *         struct raft_ready rd;
 *         raft_ready(r, &rd);
 *         1. if rd.snapshot: persist it, drop the whole stored log, restore the
 *            state machine from it;
 *         2. if rd.hard_state_changed: persist rd.hard_state (atomically, synced);
 *         3. start writing rd.entries (truncating the stored log from
 *            rd.entries[0].index first); this may finish later, in order;
 *         4. send rd.msgs (only after 1 and 2 are durable);
 *         5. apply rd.committed in order; serve rd.reads once applied;
 *         raft_advance(r);
 *     }
 *     when a write of entries up to (index, term) is durable:
 *         raft_persisted(r, index, term);
 *
 * Between raft_ready() and raft_advance() the caller must not call any function
 * that changes the node (the read-only accessors are fine): every pointer in
 * the ready stays valid until raft_advance() returns, and not after.
 *
 * Safety rules this core keeps (numbered so the code can cite them):
 *   S1 at most one vote per term, persisted in the hard state before the vote
 *      response leaves (step 2 before step 4 above);
 *   S2 a follower acknowledges an index only once the entries up to it are
 *      reported durable by raft_persisted (or came with an applied snapshot);
 *   S3 the leader counts its own log only up to what raft_persisted reported,
 *      so it may write in parallel with replication;
 *   S4 the leader commits by counting replicas only an entry of its own term
 *      (paper §5.4.2); earlier entries commit with it;
 *   S5 a membership change adds or removes at most one voter, takes effect when
 *      appended, and is accepted only when the leader has committed an entry of
 *      its term and no other change is uncommitted (thesis §4.1, and the fix in
 *      Ongaro's 2015 raft-dev post);
 *   S6 committed entries are handed to the application only up to the locally
 *      durable index;
 *   S7 a node that lost (discarded) its log keeps its term and vote and boots
 *      with a vote floor: the up-to-dateness of the log it lost (or a bound of
 *      it).  It grants votes and pre-votes only to candidates at least that up
 *      to date, so its old acknowledgements stay promises (docs/raft.md §11),
 *      and until its own log reaches the floor its rejections carry
 *      RAFT_MSG_FLAG_LOG_LOST, on which a leader lowers its match for it.
 *
 * Thread-safety: none; one node is used by one thread at a time.
 */
#ifndef CMQ_RAFT_H
#define CMQ_RAFT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Status codes.  The numbers equal the project's enum cmq_status
 * (common/base/status.h) so the storage service can pass them through
 * unchanged; this header stays free of any dependency. */
enum raft_status {
    RAFT_OK = 0,
    RAFT_EINVAL = 1,     /* malformed argument or message */
    RAFT_ENOTLEADER = 4, /* only the leader can do that; raft_leader() says who */
    RAFT_ENOMEM = 7,     /* allocation failed; the node is unchanged */
    RAFT_ETOOBIG = 10,   /* an entry, batch or snapshot exceeds its size limit */
    RAFT_ELIMIT = 11,    /* a count limit was reached (uncommitted entries, reads) */
    RAFT_EBUSY = 19,     /* retry later: transfer or membership change in progress,
                          * or the leader has not yet committed an entry of its term */
};

/* Limits.  RAFT_MAX_NODES bounds a configuration (voters + learners). */
#define RAFT_MAX_NODES 16

enum raft_role {
    RAFT_FOLLOWER = 0,
    RAFT_PRE_CANDIDATE = 1,
    RAFT_CANDIDATE = 2,
    RAFT_LEADER = 3,
};

enum raft_entry_type {
    RAFT_ENTRY_NORMAL = 0, /* application payload */
    RAFT_ENTRY_CONF = 1,   /* a new configuration, encoded by raft_config_encode */
    RAFT_ENTRY_NOOP = 2,   /* appended by every new leader; empty payload */
};

/* One log entry.  In every structure returned by this library, `data` points
 * into memory owned by the node and stays valid until the next raft_advance(). */
struct raft_entry {
    uint64_t term;
    uint64_t index;
    uint32_t type; /* enum raft_entry_type */
    uint32_t len;  /* bytes at data */
    const uint8_t *data;
};

enum raft_node_role {
    RAFT_VOTER = 0,
    RAFT_LEARNER = 1, /* receives the log, never votes, never counts to a quorum */
};

/* A configuration: the members of the group.  A fixed-size value type. */
struct raft_config {
    uint32_t n;
    struct {
        uint64_t id;   /* non-zero, unique */
        uint32_t role; /* enum raft_node_role */
    } nodes[RAFT_MAX_NODES];
};

/* Persistent state that must be written atomically and synced before the
 * messages of the same ready are sent. */
struct raft_hard_state {
    uint64_t term;
    uint64_t vote;   /* node voted for in `term`, 0 for none */
    uint64_t commit; /* a known-committed, locally durable index (may lag) */
};

/* Snapshot metadata plus the application's opaque state-machine image. */
struct raft_snapshot {
    uint64_t index; /* last entry the snapshot covers */
    uint64_t term;  /* term of that entry */
    struct raft_config config; /* configuration as of `index` */
    uint32_t len;
    const uint8_t *data; /* application bytes; borrowed (see each use) */
};

enum raft_msg_type {
    RAFT_MSG_APPEND = 1,         /* AppendEntries (paper §5.3) */
    RAFT_MSG_APPEND_RESP = 2,    /* ack (index = match) or reject (hint) */
    RAFT_MSG_VOTE = 3,           /* RequestVote (§5.2) */
    RAFT_MSG_VOTE_RESP = 4,
    RAFT_MSG_PREVOTE = 5,        /* thesis §9.6: ask before disrupting */
    RAFT_MSG_PREVOTE_RESP = 6,
    RAFT_MSG_HEARTBEAT = 7,      /* leader liveness + commit + read-index round */
    RAFT_MSG_HEARTBEAT_RESP = 8,
    RAFT_MSG_SNAPSHOT = 9,       /* InstallSnapshot (§7), one message, not chunked */
    RAFT_MSG_TIMEOUT_NOW = 10,   /* leadership transfer: start an election now */
};

#define RAFT_MSG_FLAG_TRANSFER 1u /* VOTE/PREVOTE: caused by a leadership transfer */
#define RAFT_MSG_FLAG_LOG_LOST 2u /* APPEND_RESP reject from a node below its vote floor:
                                   * it lost entries it may have acknowledged, so the
                                   * leader lowers its match to hint_index (S7) */

/* A message.  Plain data, one field per protobuf field; the meaning of the
 * generic fields depends on the type:
 *
 *   type           log_term              index              commit   other
 *   APPEND         term of entry `index` prev index          leader's entries
 *   APPEND_RESP    -                     match (or rejected  -        reject,
 *                                        prev index)                  hint_*
 *   VOTE/PREVOTE   candidate last term   candidate last idx  -        flags
 *   *_RESP         -                     -                   -        reject
 *   HEARTBEAT      -                     -                   min(match, commit)
 *                                                                     read_seq
 *   HEARTBEAT_RESP -                     -                   -        read_seq
 *   SNAPSHOT       -                     -                   -        snapshot
 *   TIMEOUT_NOW    -                     -                   -        -
 *
 * For a PREVOTE, `term` is the term the sender would campaign in (its term + 1);
 * a granted PREVOTE_RESP echoes it.
 *
 * Ownership: messages returned in a ready (and their entries and snapshot data)
 * are owned by the node until raft_advance().  A message passed to raft_step()
 * is borrowed for the call only; everything needed is copied. */
struct raft_msg {
    uint32_t type; /* enum raft_msg_type */
    uint32_t flags;
    uint64_t from;
    uint64_t to;
    uint64_t term;
    uint64_t log_term;
    uint64_t index;
    uint64_t commit;
    uint32_t reject;     /* 0 or 1 */
    uint64_t hint_index; /* APPEND_RESP reject: where the leader should probe */
    uint64_t hint_term;  /* APPEND_RESP reject: term of the follower at hint_index */
    uint64_t read_seq;   /* HEARTBEAT(_RESP): read-index round */
    uint32_t n_entries;
    const struct raft_entry *entries;
    struct raft_snapshot snapshot; /* SNAPSHOT only */
};

struct raft_read {
    uint64_t ctx;   /* as given to raft_read_index */
    uint64_t index; /* serve the read once the state machine applied this index */
};

/* One batch of effects; see the loop at the top of this file. */
struct raft_ready {
    bool soft_state_changed; /* role or leader changed since the last ready */
    uint32_t role;           /* enum raft_role */
    uint64_t leader;         /* 0 when unknown */

    bool hard_state_changed;
    struct raft_hard_state hard_state;

    const struct raft_snapshot *snapshot; /* NULL, or one to persist and restore */

    const struct raft_entry *entries; /* to append; first one may truncate */
    size_t n_entries;

    const struct raft_msg *msgs; /* to send after snapshot and hard state are durable */
    size_t n_msgs;

    const struct raft_entry *committed; /* to apply, in order */
    size_t n_committed;

    const struct raft_read *reads; /* read-index results, in request order */
    size_t n_reads;
};

/* Creation options.  Zero values take the documented defaults. */
struct raft_options {
    uint64_t id;                 /* this node, non-zero */
    uint32_t election_ticks;     /* base election timeout (default 10); the
                                  * randomized timeout is in [e, 2e) */
    uint32_t heartbeat_ticks;    /* default 1; must be < election_ticks */
    uint32_t max_inflight;       /* APPENDs in flight per follower (default 8) */
    uint32_t max_entries_per_msg;/* default 64 */
    uint32_t max_msg_bytes;      /* payload bytes per APPEND (default 1 MiB); also
                                  * the largest single entry accepted */
    uint32_t max_uncommitted;    /* entries past commit the leader accepts (default 4096) */
    uint32_t max_pending_reads;  /* read-index requests waiting (default 256) */
    uint32_t max_outbox;         /* messages held between readies (default 4096);
                                  * more are dropped, which Raft tolerates */
    uint32_t max_snapshot_bytes; /* default 64 MiB */
    bool pre_vote;               /* thesis §9.6 */
    bool check_quorum;           /* leader steps down without a quorum; followers
                                  * ignore votes while they have a live leader */
    uint32_t transfer_ticks;     /* a leadership transfer not finished after this
                                  * many ticks is abandoned and proposals resume
                                  * (default and maximum: election_ticks) */
    uint64_t seed;               /* seeds the election-timeout PRNG */
    /* Optional log-storage seam.  With read_entry set, the core frees the
     * payload of a NORMAL entry once it is applied and durable and more than
     * keep_recent entries behind (its index, term, type and length stay), and
     * reads it back through read_entry when an APPEND needs it: the stored
     * log (the caller's) holds every durable entry after the snapshot.
     * read_entry returns RAFT_OK with *data malloc'd (ownership passes to the
     * core) and *len, for the entry (index, term); any other status, or a
     * different length, drops that APPEND as if lost (it is resent).  Called
     * from raft_step / raft_tick / raft_propose, never between raft_ready
     * and raft_advance. */
    int (*read_entry)(void *arg, uint64_t index, uint64_t term, uint8_t **data, uint32_t *len);
    void *read_arg;
    uint32_t keep_recent;        /* entries kept in memory behind applied (default 1024) */
    uint32_t test_bugs;          /* test-only planted bugs (RAFT_BUG_*); 0 in production */
};

/* Test-only planted bugs: the simulator must catch each of them. */
#define RAFT_BUG_COMMIT_OLD_TERM 1u  /* count replicas for entries of earlier terms */
#define RAFT_BUG_VOTE_NO_LOG_CHECK 2u /* grant votes without the up-to-date check */
#define RAFT_BUG_ACK_UNPERSISTED 4u  /* followers ack entries before they are durable */
#define RAFT_BUG_CONF_ANYTIME 8u     /* accept a membership change while another is
                                      * uncommitted or before the term's no-op commits */

/* What a node restores from its storage at start.  All pointers are borrowed
 * for the duration of raft_create; the node copies what it keeps. */
struct raft_boot {
    struct raft_hard_state hard_state;   /* zeros for a new node */
    const struct raft_snapshot *snapshot; /* NULL when none was ever taken */
    const struct raft_config *initial;   /* used only when snapshot is NULL and no
                                          * stored entry is a configuration: the
                                          * bootstrap configuration, or NULL for a
                                          * node that waits to be added */
    const struct raft_entry *entries;    /* stored log after the snapshot, in order */
    size_t n_entries;
    /* S7: the node discarded a log whose last entry was (term, index); zeros
     * for none.  index UINT64_MAX when only a bound of the term is known
     * (the log could not be read): then only candidates whose last term is
     * higher get this node's vote. */
    struct {
        uint64_t term, index;
    } vote_floor;
};

struct raft;

/* Creates a node.  `opts` and `boot` are borrowed for the call.  On success
 * *out owns a node the caller frees with raft_destroy.  Returns RAFT_EINVAL for
 * inconsistent options or boot state, RAFT_ENOMEM. */
int raft_create(const struct raft_options *opts, const struct raft_boot *boot,
                struct raft **out);

/* Frees the node and everything it owns.  Accepts NULL. */
void raft_destroy(struct raft *r);

/* Advances the logical clock by one tick (heartbeats, election timeouts). */
void raft_tick(struct raft *r);

/* Feeds one received message (borrowed for the call).  Returns RAFT_EINVAL for
 * a malformed message (not addressed to this node, over a limit), else RAFT_OK;
 * stale or irrelevant messages are ignored with RAFT_OK. */
int raft_step(struct raft *r, const struct raft_msg *m);

/* One proposed command. */
struct raft_proposal {
    uint32_t len;
    const uint8_t *data; /* copied by raft_propose */
};

/* Appends a batch of normal entries on the leader.  Payloads are copied.  On
 * success *first_index (if not NULL) is the index of the first entry and all n
 * entries share the current term (raft_term): entry i is committed when the
 * application sees index first+i with that term in ready.committed.  Errors:
 * RAFT_ENOTLEADER, RAFT_EBUSY (leadership transfer in progress), RAFT_ELIMIT
 * (too many uncommitted entries), RAFT_ETOOBIG (an entry over max_msg_bytes),
 * RAFT_EINVAL (n == 0), RAFT_ENOMEM.  All or nothing. */
int raft_propose(struct raft *r, const struct raft_proposal *batch, size_t n,
                 uint64_t *first_index);

/* Proposes a single-server membership change on the leader: `id` becomes a
 * voter, becomes a learner, or (remove = true) leaves.  `role` is enum
 * raft_node_role.  Errors: RAFT_ENOTLEADER; RAFT_EBUSY when a change is still
 * uncommitted, no entry of this term is committed yet, or a transfer runs;
 * RAFT_EINVAL when it would change more than one voter, leave no voter, or
 * exceed RAFT_MAX_NODES; RAFT_ELIMIT; RAFT_ENOMEM.  On success *index (if not
 * NULL) is the entry's index. */
int raft_change_member(struct raft *r, uint64_t id, uint32_t role, bool remove,
                       uint64_t *index);

/* Asks the leader to hand leadership to voter `target` (thesis §3.10).  The
 * leader stops accepting proposals (RAFT_EBUSY), brings the target up to date
 * and sends it TIMEOUT_NOW; it gives up after transfer_ticks (at most one
 * election timeout) and accepts proposals again.  It does not check that the
 * target is alive: callers that transfer on their own initiative ask
 * raft_peer_can_lead first, or a dead target costs transfer_ticks of refused
 * proposals.  Errors: RAFT_ENOTLEADER, RAFT_EINVAL (target is not another
 * voter), RAFT_EBUSY (one already runs). */
int raft_transfer_leadership(struct raft *r, uint64_t target);

/* Steps the node aside (on = true) because the application cannot serve
 * (its state machine or log failed) or back (on = false).  Aside, the node
 * never campaigns (election timeouts and TIMEOUT_NOW are ignored) but still
 * votes for others, replicates and applies as a follower.  A leader stepping
 * aside hands leadership to the most caught-up other voter (like
 * raft_transfer_leadership) and, if none takes it within an election timeout
 * (or there is no other voter), steps down; it accepts no proposals
 * meanwhile (RAFT_EBUSY).  A candidate becomes a follower at once. */
void raft_step_aside(struct raft *r, bool on);
bool raft_is_aside(const struct raft *r);
/* Whether the vote floor (S7) is above this node's log: it has not yet
 * caught up past what it lost. */
bool raft_below_vote_floor(const struct raft *r);

/* The target of the transfer in progress, 0 when none (or not leader). */
uint64_t raft_transferee(const struct raft *r);

/* A member's replication progress as the leader sees it (thesis §3.5). */
struct raft_progress {
    bool voter;
    uint64_t match;        /* highest index known durable on it (self: durable index) */
    uint64_t next;         /* next index the leader sends it */
    uint32_t silent_ticks; /* ticks since its last answer (APPEND_RESP or
                            * HEARTBEAT_RESP) in this term; UINT32_MAX when it has
                            * not answered since this node became leader; 0 for self */
};
/* Fills *out for member `id`.  RAFT_ENOTLEADER on a non-leader, RAFT_EINVAL
 * when `id` is not a member. */
int raft_progress(const struct raft *r, uint64_t id, struct raft_progress *out);

/* Whether voter `id` (not this node) could take leadership now: this node
 * leads, `id` answered within the last max_silent_ticks ticks of this term,
 * and it holds every committed entry (match >= commit index; whatever it
 * lacks is still in flight, so a transfer's catch-up is one round trip).
 * False on a non-leader. */
bool raft_peer_can_lead(const struct raft *r, uint64_t id, uint32_t max_silent_ticks);

/* Starts a linearizable read (thesis §6.4).  When a quorum has confirmed this
 * node is still the leader, ready.reads carries {ctx, index}: the read may be
 * served once the application applied `index`.  Errors: RAFT_ENOTLEADER,
 * RAFT_EBUSY (no entry of this term committed yet), RAFT_ELIMIT (too many
 * pending).  Pending reads are dropped silently if the node loses leadership;
 * the caller times them out. */
int raft_read_index(struct raft *r, uint64_t ctx);

/* Compacts the log: the application took a snapshot of its state machine as of
 * `index` (which it has applied).  `data` is copied (up to max_snapshot_bytes);
 * entries up to `index` are dropped from memory; followers that need them get
 * this snapshot instead.  Errors: RAFT_EINVAL (index not applied, or older than
 * the current snapshot), RAFT_ETOOBIG, RAFT_ENOMEM. */
int raft_compact(struct raft *r, uint64_t index, const uint8_t *data, uint32_t len);

/* True when raft_ready would return a non-empty batch. */
bool raft_has_ready(const struct raft *r);

/* Fills *rd with the pending effects.  Every pointer in *rd is owned by the node
 * and valid until raft_advance(); only read-only accessors in between. */
void raft_ready(struct raft *r, struct raft_ready *rd);

/* Acknowledges the last ready: snapshot installed, hard state durable, entries
 * being written, messages sent, committed entries applied (or queued to apply
 * in order).  Frees the memory the ready pointed to. */
void raft_advance(struct raft *r);

/* Reports that the stored log is durable up to `index`, whose entry has term
 * `term`.  Writes must be reported in the order they were handed out; a report
 * for an entry since overwritten is ignored. */
void raft_persisted(struct raft *r, uint64_t index, uint64_t term);

/* Read-only accessors. */
uint64_t raft_id(const struct raft *r);
uint64_t raft_term(const struct raft *r);
uint32_t raft_role(const struct raft *r);       /* enum raft_role */
uint64_t raft_leader(const struct raft *r);     /* 0 when unknown */
uint64_t raft_commit_index(const struct raft *r);
uint64_t raft_applied_index(const struct raft *r);
uint64_t raft_last_index(const struct raft *r);
uint64_t raft_snapshot_index(const struct raft *r);
uint64_t raft_durable_index(const struct raft *r);
/* Term of the entry at `index`, or 0 when unknown (compacted below the
 * snapshot index or beyond the last index). */
uint64_t raft_term_at(const struct raft *r, uint64_t index);
/* The entry at `index` if it is still in memory (borrowed until the next call
 * that changes the log), else NULL.  With a read_entry seam, a NORMAL entry's
 * data may be NULL (len > 0): its payload was evicted to the stored log. */
const struct raft_entry *raft_entry_at(const struct raft *r, uint64_t index);
/* The latest snapshot (metadata and data), owned by the node and valid until
 * the next call that changes it (raft_compact, raft_step, raft_advance).  After
 * raft_compact, this is what the caller persists as the new snapshot. */
const struct raft_snapshot *raft_get_snapshot(const struct raft *r);
/* The configuration in force (the latest one in the log, committed or not). */
void raft_get_config(const struct raft *r, struct raft_config *out);
/* Index of the entry that set the configuration in force (the snapshot index
 * when it came from the snapshot). */
uint64_t raft_config_index(const struct raft *r);

/* Configuration helpers.  raft_config_encode writes the payload of a CONF entry
 * into buf (cap bytes) and returns its length, or 0 if cap is too small;
 * raft_config_decode parses one and returns RAFT_OK or RAFT_EINVAL.  Format
 * (little endian): u32 count, then count x {u64 id, u8 role}. */
size_t raft_config_encode(const struct raft_config *c, uint8_t *buf, size_t cap);
int raft_config_decode(const uint8_t *buf, size_t len, struct raft_config *out);
bool raft_config_is_voter(const struct raft_config *c, uint64_t id);
/* Number of voters. */
uint32_t raft_config_voters(const struct raft_config *c);

const char *raft_status_name(int status);
const char *raft_msg_type_name(uint32_t type);

#endif
