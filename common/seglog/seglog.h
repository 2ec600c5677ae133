/* seglog.h: the segment log, a partition's on-disk Raft log and message store.
 *
 * A log is a directory of segment files `<first-index, 20 digits>.seg`, each
 * with a sidecar `.idx` (index -> byte offset and term), plus a `hardstate`
 * file (term, vote, commit).  Records carry term, index, an entry type and an
 * opaque payload, framed with a CRC32C.  The byte-exact format and the
 * recovery rules are in docs/storage-format.md.
 *
 * What it owns: the files in its directory, one open file descriptor per
 * cached segment (at most opts.max_open_segments sealed segments plus the
 * active one), a read-ahead buffer sized by opts.max_record_bytes used only
 * while recovering, and O(number of segments) bookkeeping.  Memory never
 * grows with the number of entries: entries are read back with pread.
 *
 * What it deliberately does not do: decide what is committed (Raft does),
 * hold snapshots, or run fsync off the caller's thread by itself (see
 * seglog_writer.h for the thread that does).
 *
 * Threads: every function may be called from any thread; one mutex guards
 * the bookkeeping.  seglog_read() looks up the offset under it but preads the
 * record with it released (the segment is pinned meanwhile), and
 * seglog_sync() releases it while it waits for
 * fdatasync, so readers (seglog_read, seglog_term_at, ...) on an event loop
 * are never stalled by a group-commit sync.  Two rarer operations do sync
 * with the mutex held: the append that rolls over to a new segment (it
 * fdatasyncs the full segment first, so a sealed segment is always complete
 * on disk) and seglog_truncate_suffix / seglog_reset (the cut is durable when
 * they return).  Appends, truncations and compactions must be
 * issued in a meaningful order by one owner (normally the writer thread).
 *
 * Failure: after a write or fsync error the log is failed (like SQLite's
 * pager): every later mutating call returns CMQ_EIO until the log is closed
 * and reopened, which recovers from what is on disk.
 */
#ifndef CMQ_SEGLOG_SEGLOG_H
#define CMQ_SEGLOG_SEGLOG_H

#include <stddef.h>
#include <stdint.h>

#define SEGLOG_ERR_MAX 512

/* Limits.  The relations between them are _Static_asserted in seglog.c. */
#define SEGLOG_SEGMENT_BYTES_MIN (4u * 1024)
#define SEGLOG_SEGMENT_BYTES_MAX (1024u * 1024 * 1024)   /* offsets are u32 on disk */
#define SEGLOG_SEGMENT_BYTES_DEFAULT (64u * 1024 * 1024)
#define SEGLOG_RECORD_BYTES_DEFAULT (1024u * 1024)       /* max payload per entry */
#define SEGLOG_OPEN_SEGMENTS_DEFAULT 8u

/* One log entry.  For seglog_append, `data` is borrowed for the duration of
 * the call (the bytes are copied to the file before it returns).  For
 * seglog_read, `data` points into the caller's buffer. */
struct seglog_entry {
    uint64_t term;
    uint64_t index;
    uint32_t len;    /* payload bytes */
    uint8_t type;    /* opaque to the log; Raft's entry kind */
    const void *data;
};

/* Caller-filled, copied by seglog_open.  Start from seglog_opts_default(). */
struct seglog_opts {
    uint64_t segment_bytes;      /* preallocated size of each segment file */
    uint32_t max_record_bytes;   /* largest payload accepted or read back */
    uint32_t max_open_segments;  /* sealed segments kept open for reads (>= 1) */
    uint64_t first_index;        /* first index of a brand-new log (>= 1) */
    int create;                  /* nonzero: create the directory / log if missing */
    /* Fault-injection seam for tests; NULL in production.  Called before
     * each write-side file operation with its name ("write", "fdatasync",
     * "create", "truncate", "hardstate"); a nonzero return makes that
     * operation fail with that status as if the system call had.  May be
     * called from the writer thread.  `fault_arg` is borrowed. */
    int (*fault)(void *fault_arg, const char *op);
    void *fault_arg;
};

/* The Raft hard state (Raft paper fig. 2: currentTerm, votedFor; plus the
 * commit index, which lets a restart re-apply without waiting for a leader). */
struct seglog_hardstate {
    uint64_t term;
    uint64_t vote;    /* 0: voted for nobody in `term` */
    uint64_t commit;
};

struct seglog;

void seglog_opts_default(struct seglog_opts *opts);

/* Opens (and with opts->create, creates) the log in directory `dir` (copied),
 * recovering it: sealed segments are checked through their .idx files (rebuilt
 * from the segment when missing or bad), the last segment is scanned and its
 * torn tail truncated.  A bad record anywhere else is CMQ_ECORRUPT.  On
 * success *out owns the log (free it with seglog_close).  On failure returns
 * a status and writes a message naming the file and byte offset into `err`
 * (may be NULL). */
int seglog_open(const char *dir, const struct seglog_opts *opts, struct seglog **out,
                char err[SEGLOG_ERR_MAX]);

/* Closes the files and frees the log.  Does not sync: call seglog_sync first
 * for durability.  Accepts NULL. */
void seglog_close(struct seglog *log);

/* Appends `n` entries (array and payloads borrowed for the call).  Entry
 * indexes must continue the log (last_index+1, +2, ...), terms must not
 * decrease, payloads must be <= max_record_bytes.  The data is written to the
 * page cache (readable at once) but is durable only after seglog_sync.
 * Rolls over to a new segment when the active one is full.
 * Returns CMQ_OK, CMQ_EINVAL, CMQ_ETOOBIG, or CMQ_EIO (log now failed). */
int seglog_append(struct seglog *log, const struct seglog_entry *entries, size_t n);

/* Makes every appended entry durable (fdatasync of each segment written since
 * the last sync).  Many appends per sync is the intended use (group commit).
 * The mutex is released during fdatasync.  Returns CMQ_OK or CMQ_EIO. */
int seglog_sync(struct seglog *log);

/* Reads entry `index` into `out`; the payload is copied into `buf` (`cap`
 * bytes, caller-owned) and out->data points at buf.  Every byte is validated.
 * Returns CMQ_OK; CMQ_ENOTFOUND outside [first, last]; CMQ_ETOOBIG when cap
 * is short (out->len then holds the size needed); CMQ_ECORRUPT with a message
 * in seglog_last_error; CMQ_EIO. */
int seglog_read(struct seglog *log, uint64_t index, struct seglog_entry *out, void *buf,
                size_t cap);

/* The first index still stored, and the last appended (first-1 when empty). */
uint64_t seglog_first_index(struct seglog *log);
uint64_t seglog_last_index(struct seglog *log);
/* The last index known to be on disk (after seglog_sync). */
uint64_t seglog_durable_index(struct seglog *log);

/* The term of entry `index` into *term.  CMQ_ENOTFOUND outside [first, last]. */
int seglog_term_at(struct seglog *log, uint64_t index, uint64_t *term);

/* Drops every entry >= from_index (Raft: a conflicting suffix), across
 * segments; the cut is durable when this returns (it fsyncs the segment and
 * the directory).  from_index > last_index is a no-op; from_index below
 * first_index is CMQ_EINVAL; from_index == first_index empties the log, whose
 * next append must then carry from_index. */
int seglog_truncate_suffix(struct seglog *log, uint64_t from_index);

/* Deletes every segment all of whose entries are <= up_to_index, except the
 * active (last) segment.  Entries of a partially covered segment stay
 * readable; first_index becomes the first index of the oldest segment left.
 * Returns the status; *removed (may be NULL) gets the number of segments. */
int seglog_compact_prefix(struct seglog *log, uint64_t up_to_index, unsigned *removed);

/* Drops everything and restarts the log empty at `next_index` (a follower
 * installing a snapshot beyond its log).  Durable when it returns. */
int seglog_reset(struct seglog *log, uint64_t next_index);

/* Saves the hard state atomically (write tmp, fsync, rename, fsync dir);
 * blocks for two fsyncs.  `hs` is copied. */
int seglog_hardstate_save(struct seglog *log, const struct seglog_hardstate *hs);

/* Loads the hard state into *hs.  CMQ_ENOTFOUND when never saved (hs zeroed);
 * CMQ_ECORRUPT (with a message) when the file fails its checks. */
int seglog_hardstate_load(struct seglog *log, struct seglog_hardstate *hs);

/* Copies the message of the last error (file and byte offset for corruption)
 * into buf; empty when none. */
void seglog_last_error(struct seglog *log, char buf[SEGLOG_ERR_MAX]);

/* For a log seglog_open refused (a bad record in the middle): the term and
 * index of the last record in the directory's segments, stepping over a
 * record whose CRC fails when the record after it is valid where its header
 * says (salvage.c).  CMQ_OK with *term and *index (0, 0 when there is no
 * record); CMQ_ECORRUPT when the end cannot be known for sure (the last
 * record is bad, a header is unreadable and non-zero bytes follow); CMQ_EIO.
 * Read-only; needs no open log. */
int seglog_salvage_last(const char *dir, uint64_t *term, uint64_t *index);
/* Reads `dir/hardstate` without opening the log (same checks as
 * seglog_hardstate_load): CMQ_OK, CMQ_ENOTFOUND (never saved), CMQ_ECORRUPT. */
int seglog_hardstate_peek(const char *dir, struct seglog_hardstate *hs);

/* Counters for tests and the benchmark. */
struct seglog_stats {
    uint64_t appends;       /* entries appended */
    uint64_t bytes;         /* record bytes written */
    uint64_t syncs;         /* seglog_sync calls that ran fdatasync */
    uint64_t segments;      /* segment files now in the log */
    uint64_t idx_rebuilds;  /* .idx files rebuilt from their segment */
    uint64_t tail_cuts;     /* torn tails cut at open (also logged as seglog_torn_tail) */
};
void seglog_stats(struct seglog *log, struct seglog_stats *out);

#endif
