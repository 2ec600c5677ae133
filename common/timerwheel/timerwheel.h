/* timerwheel.h: a hierarchical timing wheel, pure (no clock, no I/O, no
 * allocation).
 *
 * What it is: a set of timer entries, each with a due time in milliseconds of
 * the owner's clock, that the owner drives forward with timer_wheel_advance.
 * Entries live inside their owners (a pending timer of the scheduler, a
 * delayed message); the wheel only links them.  Link and unlink are O(1);
 * advance costs O(entries fired + entries cascaded + levels) per call, plus
 * one step per occupied slot it passes, however far time jumps.
 *
 * Shape: TIMER_WHEEL_LEVELS levels of TIMER_WHEEL_SLOTS slots.  Level L holds
 * entries whose due tick differs from the wheel's current tick first in bits
 * [6L, 6L+6); each slot of level L spans 64^L ticks.  With 6 levels the wheel
 * spans 2^36 ticks (795 days at 1 ms per tick); entries further out wait in an
 * overflow list that is re-sorted each time the current tick crosses a 2^36
 * boundary, so any uint64 due time works.
 *
 * Invariants (tests/unit/common/timerwheel/ checks each against a sorted model):
 *  1. Never early: an entry is handed out by the first advance whose now_ms is
 *     >= its due_ms, and never by an earlier one.
 *  2. At most one tick late: that advance is the first one with now_ms >=
 *     ceil(due_ms / tick_ms) * tick_ms; an entry linked with a due time already
 *     reached goes out on the very next advance.
 *  3. Order: one advance hands entries out in order of due tick; entries of
 *     the same tick (in particular of equal due_ms) in the order they were
 *     linked.  Entries linked already due come first, in link order.
 *  4. An entry is in at most one list at a time (a wheel slot, the overflow,
 *     the already-due list, or a caller's timer_list); timer_wheel_unlink
 *     removes it from whichever it is in.
 *
 * Not thread-safe; the owner serialises every call.  The wheel never frees or
 * allocates entries: ownership stays with the caller throughout.
 */
#ifndef CMQ_TIMERWHEEL_H
#define CMQ_TIMERWHEEL_H

#include <stdint.h>

#define TIMER_WHEEL_BITS 6
#define TIMER_WHEEL_SLOTS (1u << TIMER_WHEEL_BITS)
#define TIMER_WHEEL_LEVELS 6
#define TIMER_WHEEL_NEVER UINT64_MAX

/* Embedded in its owner.  Public so it can be embedded; touch the fields only
 * through the functions below (due_ms may be read). */
struct timer_entry {
    struct timer_entry *prev, *next; /* NULL when not linked anywhere */
    uint64_t due_ms;
};

/* A caller-owned list of entries (circular, with a sentinel).  advance
 * appends expired entries to one; the scheduler keeps its ready and in-flight
 * timers in others. */
struct timer_list {
    struct timer_entry head;
};

struct timer_wheel {
    uint64_t tick_ms;
    uint64_t cur_tick;  /* every entry due at or before this tick has been handed out */
    uint64_t occupied[TIMER_WHEEL_LEVELS]; /* bit i set: slot i may be non-empty */
    struct timer_list slots[TIMER_WHEEL_LEVELS][TIMER_WHEEL_SLOTS];
    struct timer_list overflow; /* beyond the top level's span */
    struct timer_list due;      /* linked when already due: out on the next advance */
};

/* Marks an entry unlinked.  Call once before its first use. */
void timer_entry_init(struct timer_entry *e);
/* Nonzero when the entry is in a wheel or a list. */
int timer_entry_linked(const struct timer_entry *e);

void timer_list_init(struct timer_list *l);
int timer_list_empty(const struct timer_list *l);
/* Appends an unlinked entry at the tail. */
void timer_list_append(struct timer_list *l, struct timer_entry *e);
/* Moves every entry of `from` to the head of `to`, keeping their order. */
void timer_list_prepend_all(struct timer_list *to, struct timer_list *from);
/* Moves every entry of `from` to the tail of `to`, keeping their order. */
void timer_list_append_all(struct timer_list *to, struct timer_list *from);
/* Unlinks and returns the first entry, or NULL when the list is empty. */
struct timer_entry *timer_list_pop(struct timer_list *l);

/* Starts an empty wheel whose clock reads start_ms.  tick_ms >= 1.  The wheel
 * lives in caller storage (it is about 6 KiB) and holds no resources, so it
 * needs no destructor; entries still linked simply stay linked to it. */
void timer_wheel_init(struct timer_wheel *w, uint64_t tick_ms, uint64_t start_ms);

/* Links an unlinked entry (asserted) to fire at due_ms.  A due time at or
 * before the wheel's current time fires on the next advance. */
void timer_wheel_link(struct timer_wheel *w, struct timer_entry *e, uint64_t due_ms);

/* Unlinks the entry from whatever it is in (a no-op when unlinked).  Does not
 * need the wheel: slots emptied this way are noticed lazily. */
void timer_wheel_unlink(struct timer_entry *e);

/* Moves the wheel's clock to now_ms and appends every entry now due to
 * `expired` (caller-owned, initialised), in the order of invariant 3.  The
 * entries are unlinked from the wheel and linked into `expired`; the caller
 * pops them (and may link them again).  A now_ms earlier than a previous one
 * is treated as that previous time (the clock never runs back).  Returns the
 * number of entries appended. */
uint64_t timer_wheel_advance(struct timer_wheel *w, uint64_t now_ms, struct timer_list *expired);

/* A lower bound on the earliest due time of any linked entry, in ms, or
 * TIMER_WHEEL_NEVER when the wheel is empty.  Exact to the tick when the
 * earliest entry is within the current level-0 span (64 ticks); otherwise the
 * start of the slot that holds it, so an owner sleeping until then and calling
 * advance never sleeps past a due time.  The value may be earlier than the
 * wheel's clock (entries already due). */
uint64_t timer_wheel_next_due(struct timer_wheel *w);

/* Nonzero when nothing is linked (checks every slot: O(levels * slots) at
 * worst; for tests and stats, not for hot paths). */
int timer_wheel_empty(struct timer_wheel *w);

#endif
