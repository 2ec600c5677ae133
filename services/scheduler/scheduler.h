/* scheduler.h: the cmq-scheduler service library (main.c only wires it).
 *
 * What it owns: soft state only (DESIGN.md §2-3).  Storage partition leaders
 * ("owners": one partition at one epoch, its leader term) register timers
 * (key, wall-clock due time, a small opaque payload) over SCHED_MSG_REGISTER;
 * when a timer is due the scheduler sends it back to the owner's endpoint in a
 * SCHED_MSG_FIRE batch and retries, with backoff, until the owner answers OK
 * or the timer is cancelled, moved, or superseded by a newer epoch.  Nothing
 * is written to disk: a restarted scheduler announces a new `instance` in
 * every reply and owners re-register everything.  Protocol, time mapping and
 * limits: docs/scheduler.md and proto/scheduler.proto.
 *
 * What it does not do: decide anything about messages.  A fire is a hint; the
 * owner checks the due time against its own clock and its replicated state.
 *
 * Memory: one struct per pending timer (120 bytes, payload inline; a 128-byte
 * malloc chunk) plus about one hash bucket pointer: about 136 bytes, bounded
 * by limits.timers_max.  The wheel itself is a fixed 6 KiB.
 *
 * Threading: everything runs on the svc loop's thread.
 */
#ifndef CMQ_SCHEDULER_H
#define CMQ_SCHEDULER_H

#include "svc.h"

#include <stdint.h>

#define SCHED_BATCH_MAX 512   /* timers per REGISTER and per FIRE (scheduler.options) */
#define SCHED_PAYLOAD_MAX 32  /* bytes of opaque payload per timer */
#define SCHED_CANCEL_MAX 1024 /* keys per CANCEL */

struct scheduler_opts {
    uint64_t tick_ms;              /* wheel resolution */
    uint64_t timers_max;           /* over all owners */
    uint64_t owner_timers_max;     /* per partition */
    uint64_t owners_max;           /* partitions known at once */
    uint64_t delay_max_ms;         /* due_ms further ahead than this: EINVAL */
    uint32_t fire_batch_max;       /* timers per FIRE, 1..SCHED_BATCH_MAX */
    uint32_t fire_timeout_ms;      /* wait for an owner's OK before retrying */
    uint32_t retry_min_ms;         /* first backoff after a failed FIRE */
    uint32_t retry_max_ms;         /* backoff cap (doubling in between) */
};

/* Checks opts; returns CMQ_OK or CMQ_EINVAL with a reason in err (len bytes). */
int scheduler_opts_check(const struct scheduler_opts *opts, char *err, size_t len);

struct scheduler;

/* Creates the scheduler on `svc` (borrowed; it must outlive the scheduler):
 * sets the svc handler and health detail, and hooks the wheel and the fire
 * clients into the svc loop.  opts is copied.  Returns CMQ_OK, CMQ_EINVAL or
 * CMQ_ENOMEM. */
int scheduler_open(struct svc *svc, const struct scheduler_opts *opts, struct scheduler **out);

/* Closes every fire client (in-flight fires are abandoned: the owner gets
 * them again from whoever it registers with next) and frees all state.  Call
 * after svc_run returned and before svc_close.  NULL allowed. */
void scheduler_close(struct scheduler *s);

/* Writes "key=value ..." stats (the health detail) into buf. */
void scheduler_detail(struct scheduler *s, char *buf, size_t len);

#endif
