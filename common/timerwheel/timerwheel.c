/* timerwheel.c: the hierarchical timing wheel; contract and invariants in
 * timerwheel.h.
 *
 * Times are kept as ticks: an entry due at due_ms belongs to tick
 * ceil(due_ms / tick_ms), and the wheel's clock is floor(now_ms / tick_ms), so
 * an entry is handed out only when now_ms >= its tick's start >= due_ms
 * (never early) and by the first advance that reaches that tick (at most one
 * tick late).
 *
 * Placement rule (the one invariant everything else rests on): with the
 * current tick T, an entry due at tick D > T sits at the level of the highest
 * 6-bit group in which D and T differ, in slot (D >> 6L) & 63 of that level;
 * if they differ above the top level it sits in the overflow list.  Hence
 * every entry of level L is due before every entry of level L+1, the occupied
 * slots of a level all lie after T's own index there, and a slot of level L
 * must be emptied ("cascaded") exactly when T reaches the first tick it spans,
 * i.e. when T's low 6L bits are zero.  Cascading re-places each entry relative
 * to the new T, highest level first, appending to the target slots: since
 * entries of equal D always share a slot and are moved together in list
 * order, link order among equal due ticks survives any number of cascades.
 *
 * Advance does not walk tick by tick: it jumps to the next tick at which
 * something happens (the first occupied slot of the lowest occupied level, or
 * the start of the 2^36 block of the earliest overflow entry when only the
 * overflow is occupied).  Jumping over
 * empty stretches keeps the placement rule, because every linked entry is due
 * at or after that tick and so stays in the same enclosing block.
 *
 * The occupancy bitmaps may overstate (unlink does not know its wheel); a set
 * bit over an empty slot is cleared when a scan finds it.
 */
#include "timerwheel.h"

#include <assert.h>
#include <stddef.h>

#define SPAN_BITS (TIMER_WHEEL_BITS * TIMER_WHEEL_LEVELS)
_Static_assert(SPAN_BITS < 64, "the wheel's span must fit in a tick counter");
_Static_assert(TIMER_WHEEL_SLOTS == 64, "occupancy bitmaps are one uint64_t per level");

/* ---------- lists ---------- */

void timer_entry_init(struct timer_entry *e)
{
    e->prev = e->next = NULL;
    e->due_ms = 0;
}

int timer_entry_linked(const struct timer_entry *e) { return e->next != NULL; }

void timer_list_init(struct timer_list *l)
{
    l->head.prev = l->head.next = &l->head;
    l->head.due_ms = 0;
}

int timer_list_empty(const struct timer_list *l) { return l->head.next == &l->head; }

void timer_list_append(struct timer_list *l, struct timer_entry *e)
{
    assert(!timer_entry_linked(e));
    e->prev = l->head.prev;
    e->next = &l->head;
    l->head.prev->next = e;
    l->head.prev = e;
}

void timer_list_append_all(struct timer_list *to, struct timer_list *from)
{
    if (timer_list_empty(from))
        return;
    struct timer_entry *first = from->head.next, *last = from->head.prev;
    first->prev = to->head.prev;
    to->head.prev->next = first;
    last->next = &to->head;
    to->head.prev = last;
    timer_list_init(from);
}

void timer_list_prepend_all(struct timer_list *to, struct timer_list *from)
{
    if (timer_list_empty(from))
        return;
    struct timer_entry *first = from->head.next, *last = from->head.prev;
    last->next = to->head.next;
    to->head.next->prev = last;
    first->prev = &to->head;
    to->head.next = first;
    timer_list_init(from);
}

void timer_wheel_unlink(struct timer_entry *e)
{
    if (!timer_entry_linked(e))
        return;
    e->prev->next = e->next;
    e->next->prev = e->prev;
    e->prev = e->next = NULL;
}

struct timer_entry *timer_list_pop(struct timer_list *l)
{
    if (timer_list_empty(l))
        return NULL;
    struct timer_entry *e = l->head.next;
    timer_wheel_unlink(e);
    return e;
}

/* ---------- the wheel ---------- */

static uint64_t tick_of(const struct timer_wheel *w, uint64_t due_ms)
{
    return due_ms / w->tick_ms + (due_ms % w->tick_ms != 0);
}

void timer_wheel_init(struct timer_wheel *w, uint64_t tick_ms, uint64_t start_ms)
{
    assert(tick_ms >= 1);
    w->tick_ms = tick_ms;
    w->cur_tick = start_ms / tick_ms;
    for (int l = 0; l < TIMER_WHEEL_LEVELS; l++) {
        w->occupied[l] = 0;
        for (unsigned s = 0; s < TIMER_WHEEL_SLOTS; s++)
            timer_list_init(&w->slots[l][s]);
    }
    timer_list_init(&w->overflow);
    timer_list_init(&w->due);
}

/* Places e (unlinked, due at tick d >= t) relative to the current tick t. */
static void place(struct timer_wheel *w, struct timer_entry *e, uint64_t d, uint64_t t)
{
    uint64_t diff = d ^ t;
    int level = diff ? (63 - __builtin_clzll(diff)) / TIMER_WHEEL_BITS : 0;
    if (level >= TIMER_WHEEL_LEVELS) {
        timer_list_append(&w->overflow, e);
        return;
    }
    unsigned slot = (unsigned)(d >> (level * TIMER_WHEEL_BITS)) & (TIMER_WHEEL_SLOTS - 1);
    timer_list_append(&w->slots[level][slot], e);
    w->occupied[level] |= 1ull << slot;
}

void timer_wheel_link(struct timer_wheel *w, struct timer_entry *e, uint64_t due_ms)
{
    assert(!timer_entry_linked(e));
    e->due_ms = due_ms;
    uint64_t d = tick_of(w, due_ms);
    if (d <= w->cur_tick)
        timer_list_append(&w->due, e);
    else
        place(w, e, d, w->cur_tick);
}

/* The first tick after cur_tick at which a slot must be cascaded or fired, or
 * TIMER_WHEEL_NEVER when nothing is linked in the slots or the overflow.
 * Clears occupancy bits of slots found empty. */
static uint64_t next_event(struct timer_wheel *w)
{
    uint64_t t = w->cur_tick;
    for (int l = 0; l < TIMER_WHEEL_LEVELS; l++) {
        unsigned shift = (unsigned)l * TIMER_WHEEL_BITS;
        unsigned cur = (unsigned)(t >> shift) & (TIMER_WHEEL_SLOTS - 1);
        /* Occupied slots of a level all lie after T's own index there. */
        uint64_t later = cur == TIMER_WHEEL_SLOTS - 1 ? 0 : ~0ull << (cur + 1);
        while (w->occupied[l] & later) {
            unsigned s = (unsigned)__builtin_ctzll(w->occupied[l] & later);
            if (timer_list_empty(&w->slots[l][s])) {
                w->occupied[l] &= ~(1ull << s);
                continue;
            }
            uint64_t block = (t >> (shift + TIMER_WHEEL_BITS)) << (shift + TIMER_WHEEL_BITS);
            return block + ((uint64_t)s << shift);
        }
        /* Bits at or before cur can only be stale. */
        w->occupied[l] &= later;
    }
    /* Only the overflow is left: jump straight to the 2^36 block of its
     * earliest entry (a scan, but the overflow holds only entries more than
     * 2^36 ticks away, which services bound far below). */
    if (timer_list_empty(&w->overflow))
        return TIMER_WHEEL_NEVER;
    uint64_t min = UINT64_MAX;
    for (struct timer_entry *e = w->overflow.head.next; e != &w->overflow.head; e = e->next) {
        uint64_t d = tick_of(w, e->due_ms);
        if (d < min)
            min = d;
    }
    assert((min >> SPAN_BITS) > (t >> SPAN_BITS));
    return (min >> SPAN_BITS) << SPAN_BITS;
}

/* Empties `from` and re-places each entry relative to tick t, in order. */
static void replace_all(struct timer_wheel *w, struct timer_list *from, uint64_t t)
{
    struct timer_list tmp;
    timer_list_init(&tmp);
    timer_list_append_all(&tmp, from);
    struct timer_entry *e;
    while ((e = timer_list_pop(&tmp)) != NULL) {
        uint64_t d = tick_of(w, e->due_ms);
        assert(d >= t); /* the placement rule: nothing cascades late */
        place(w, e, d, t);
    }
}

/* Makes t the current tick (t is the result of next_event): cascades every
 * slot that starts at t, highest first, then hands out level 0's slot t. */
static void step_to(struct timer_wheel *w, uint64_t t, struct timer_list *expired)
{
    if ((t & ((1ull << SPAN_BITS) - 1)) == 0)
        replace_all(w, &w->overflow, t);
    for (int l = TIMER_WHEEL_LEVELS - 1; l >= 1; l--) {
        unsigned shift = (unsigned)l * TIMER_WHEEL_BITS;
        if ((t & ((1ull << shift) - 1)) != 0)
            continue;
        unsigned s = (unsigned)(t >> shift) & (TIMER_WHEEL_SLOTS - 1);
        w->occupied[l] &= ~(1ull << s);
        replace_all(w, &w->slots[l][s], t);
    }
    unsigned s0 = (unsigned)t & (TIMER_WHEEL_SLOTS - 1);
    w->occupied[0] &= ~(1ull << s0);
    timer_list_append_all(expired, &w->slots[0][s0]);
    w->cur_tick = t;
}

uint64_t timer_wheel_advance(struct timer_wheel *w, uint64_t now_ms, struct timer_list *expired)
{
    uint64_t n = 0;
    /* Count by walking what we append: O(fired), which the caller pays anyway. */
    struct timer_entry *mark = expired->head.prev;
    timer_list_append_all(expired, &w->due);
    uint64_t now_tick = now_ms / w->tick_ms;
    while (w->cur_tick < now_tick) {
        uint64_t t = next_event(w);
        if (t > now_tick) {
            w->cur_tick = now_tick;
            break;
        }
        step_to(w, t, expired);
    }
    for (struct timer_entry *e = mark->next; e != &expired->head; e = e->next)
        n++;
    return n;
}

uint64_t timer_wheel_next_due(struct timer_wheel *w)
{
    if (!timer_list_empty(&w->due))
        return w->cur_tick * w->tick_ms;
    uint64_t t = next_event(w);
    if (t == TIMER_WHEEL_NEVER)
        return TIMER_WHEEL_NEVER;
    return t > UINT64_MAX / w->tick_ms ? TIMER_WHEEL_NEVER - 1 : t * w->tick_ms;
}

int timer_wheel_empty(struct timer_wheel *w)
{
    return timer_list_empty(&w->due) && next_event(w) == TIMER_WHEEL_NEVER;
}
