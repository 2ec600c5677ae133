/* seglog_writer.h: runs a segment log's writes and fsyncs on a dedicated
 * thread, so an event loop never blocks on the disk (DESIGN.md section 4).
 *
 * The seam is deliberately narrow.  The loop thread owns a request (struct
 * seglog_write_req, caller-allocated) and submits it; the writer thread
 * takes every request queued so far, applies them in order (reset, truncate,
 * then append) to the log, runs ONE seglog_sync for the whole batch (group
 * commit: everything submitted while the previous fdatasync ran shares the
 * next one), saves the newest hard state in the batch if any, and queues the
 * requests as done.  It then writes to an eventfd.  The loop watches that fd
 * (seglog_writer_fd, readable when completions are waiting) and calls
 * seglog_writer_poll, which runs the `done` callbacks on the loop thread, in
 * submission order.  Callbacks never run on the writer thread.
 *
 * Reads (seglog_read, seglog_term_at, ...) stay on the loop thread and call
 * the log directly: the log's mutex is not held during the group-commit
 * fdatasync, so they usually wait at most for one append's pwritev; only a
 * rollover (once per segment) or a truncation holds it across an fsync.  A
 * request's entries are readable as soon as the writer has appended them,
 * before they are durable.  Consecutive requests without reset/truncate are
 * appended with one call.
 *
 * Not done here: retries (a failed write fails the log; reopen to recover),
 * and priorities.
 */
#ifndef CMQ_SEGLOG_WRITER_H
#define CMQ_SEGLOG_WRITER_H

#include <stddef.h>
#include <stdint.h>

#include "seglog.h"

struct seglog_write_req;
typedef void seglog_write_done_fn(struct seglog_write_req *req, int status);

/* Allocated and filled by the caller; everything it points to is borrowed
 * until `done` runs.  Zero-initialise it, then set the public fields. */
struct seglog_write_req {
    uint64_t reset_next;                      /* 0: none; else seglog_reset(reset_next)
                                                 first (a snapshot was installed) */
    uint64_t truncate_from;                   /* 0: none; else truncate_suffix (after the
                                                 reset); from > last_index is a no-op */
    const struct seglog_entry *entries;       /* n entries to append (may be 0) */
    size_t n;
    const struct seglog_hardstate *hardstate; /* NULL, or saved once the batch is durable */
    int (*job)(struct seglog_write_req *req, struct seglog *log);
                                              /* NULL, or run on the writer thread after
                                                 the batch's sync and hard state, in
                                                 submission order; its return is the
                                                 request's status (a failed job does not
                                                 fail the log).  For file work that must
                                                 stay off the loop: snapshot files,
                                                 deleting segments. */
    seglog_write_done_fn *done;               /* runs in seglog_writer_poll; status CMQ_OK
                                                 means durable */
    void *user;
    /* Private to the writer. */
    int status_;
    struct seglog_write_req *next_;
};

struct seglog_writer;

struct seglog_writer_stats {
    uint64_t submitted;
    uint64_t completed;  /* callbacks run */
    uint64_t batches;    /* rounds of the writer thread = fdatasync rounds */
};

/* Mapping from common/raft's ready loop (raft.h): a ready's snapshot gives
 * reset_next = snapshot.index + 1; its entries give truncate_from =
 * entries[0].index and the entries; a changed hard state goes in `hardstate`.
 * Messages of that ready are sent from `done` (the hard state is durable
 * then), and `done` with CMQ_OK is when to call raft_persisted(last index,
 * last term). */

/* Starts the writer thread for `log` (borrowed: it must outlive the writer;
 * while the writer runs, only it may append, sync, truncate or reset the log,
 * so those stay in submission order; seglog_compact_prefix and the readers
 * may be called from any thread).
 * At most `max_pending` requests may be submitted and not yet polled.
 * On success *out owns the writer. */
int seglog_writer_start(struct seglog *log, unsigned max_pending, struct seglog_writer **out);

/* The eventfd to watch for readability; owned by the writer. */
int seglog_writer_fd(const struct seglog_writer *w);

/* Queues `req` (borrowed until its callback).  CMQ_ELIMIT when max_pending
 * requests are outstanding, CMQ_ESHUTDOWN after stop, CMQ_EINVAL for a
 * request without a callback.  Call from the loop thread. */
int seglog_writer_submit(struct seglog_writer *w, struct seglog_write_req *req);

/* Runs the callbacks of finished requests, in submission order, on the
 * calling thread; returns how many ran.  Never blocks. */
size_t seglog_writer_poll(struct seglog_writer *w);

void seglog_writer_stats(struct seglog_writer *w, struct seglog_writer_stats *out);

/* Finishes every submitted request, stops the thread, runs the remaining
 * callbacks on the calling thread and frees the writer.  Accepts NULL. */
void seglog_writer_stop(struct seglog_writer *w);

#endif
