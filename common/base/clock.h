/* clock.h: monotonic and wall-clock time.
 *
 * Services read time through these functions only.  Pure cores (raft, the
 * queue state machine, the timer wheel) never call them: they are handed
 * times by their owner, so simulation can drive them.
 */
#ifndef CMQ_BASE_CLOCK_H
#define CMQ_BASE_CLOCK_H

#include <stdint.h>

/* Nanoseconds / milliseconds since an arbitrary fixed point; never goes back. */
uint64_t clock_mono_ns(void);
uint64_t clock_mono_ms(void);

/* Milliseconds / seconds since the Unix epoch (may jump when the clock is set). */
uint64_t clock_wall_ms(void);
uint64_t clock_wall_s(void);

/* Formats a wall-clock time in ms as RFC 3339 UTC with milliseconds
 * ("2026-11-27T18:00:00.123Z") into buf (at least 32 bytes).  Returns buf. */
char *clock_format_rfc3339(uint64_t wall_ms, char *buf, int buf_len);

#endif
