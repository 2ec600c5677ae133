/* trace.h: the message trace index of one partition (docs/queue-state-
 * machine.md §9).
 *
 * A derived file, like the segment log's sidecar index: every replica writes
 * the state changes its state machine reports while applying entries
 * (qsm_set_tracer), so its content follows from the log alone and is rebuilt
 * by replaying it.  Fixed-size records in log order; a query for one message
 * finds its Send entry's index by binary search and scans forward.
 *
 * Owns: `<partition dir>/trace` (current) and `trace.old` (the previous one,
 * after rotation at TRACE_FILE_BYTES): at most twice that on disk.  Writes go
 * through stdio (no fsync: a lost tail is written again by the replay after a
 * restart; records of an entry are skipped only if the file already has a
 * later entry's).
 */
#ifndef CMQ_STORAGE_TRACE_H
#define CMQ_STORAGE_TRACE_H

#include "qsm.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TRACE_FILE_BYTES (64u << 20)  /* rotation size of one file */
#define TRACE_SCAN_RECORDS (1u << 20) /* records one query may read */
#define TRACE_EVENTS_MAX 64           /* events one query returns */

struct trace_log;

/* Opens (creating) the trace files in `dir` (copied).  Drops a torn tail and
 * the records of the last entry (it is applied again).  CMQ_OK or a status. */
int trace_open(const char *dir, struct trace_log **out);
/* Flushes and closes.  Accepts NULL. */
void trace_close(struct trace_log *t);
/* The qsm tracer that appends to `t`. */
struct qsm_tracer trace_tracer(struct trace_log *t);
/* Pushes buffered records to the file (call every raft tick). */
void trace_flush(struct trace_log *t);

/* The events of message `msg_id` (of `queue_id`, 0 = any; with `topic`, of
 * that topic: its PUBLISHED and subscription events), oldest first, into
 * out[<max] (StorageProto TraceEvent).  Returns the count; *truncated when
 * more exist or the scan bound was reached.  0 events: unknown here (never
 * sent, another queue's, or older than the files). */
struct _cmq_TraceEvent;
size_t trace_query(struct trace_log *t, uint64_t msg_id, uint64_t queue_id, bool topic,
                   struct _cmq_TraceEvent *out, size_t max, bool *truncated);

#endif
