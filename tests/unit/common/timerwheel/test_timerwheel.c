/* Tests for common/timerwheel: the invariants of timerwheel.h, each checked
 * directly, then all of them at once against a sorted-array model over
 * millions of simulated milliseconds (seeded: a failure prints its seed). */
#include "timerwheel.h"

#include <criterion/criterion.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct item {
    struct timer_entry e;
    int id;
    /* model state */
    int linked;
    int in_due;     /* linked when already due */
    uint64_t tick;  /* due tick */
    uint64_t seq;   /* link order */
};

#define ITEM(p) ((struct item *)((char *)(p) - offsetof(struct item, e)))

static struct timer_wheel wheel; /* 6 KiB: keep it off the stack */

/* Advances and returns the ids fired, in order, into ids[]; returns the count. */
static int advance_ids(struct timer_wheel *w, uint64_t now, int *ids, int max)
{
    struct timer_list out;
    timer_list_init(&out);
    uint64_t n = timer_wheel_advance(w, now, &out);
    int k = 0;
    struct timer_entry *e;
    while ((e = timer_list_pop(&out)) != NULL) {
        cr_assert_lt(k, max);
        ids[k++] = ITEM(e)->id;
    }
    cr_assert_eq((uint64_t)k, n, "advance counted %" PRIu64 ", handed out %d", n, k);
    return k;
}

static void assert_fires_exactly_at(struct timer_wheel *w, struct item *it, uint64_t at)
{
    int ids[4];
    cr_assert_eq(advance_ids(w, at - 1, ids, 4), 0, "entry %d fired early (before %" PRIu64 ")",
                 it->id, at);
    cr_assert_eq(advance_ids(w, at, ids, 4), 1, "entry %d did not fire at %" PRIu64, it->id, at);
    cr_assert_eq(ids[0], it->id);
}

Test(timerwheel, empty_wheel_has_nothing_due)
{
    timer_wheel_init(&wheel, 1, 1000);
    cr_assert_eq(timer_wheel_next_due(&wheel), TIMER_WHEEL_NEVER);
    cr_assert(timer_wheel_empty(&wheel));
    int ids[1];
    cr_assert_eq(advance_ids(&wheel, UINT64_MAX / 2, ids, 1), 0);
    cr_assert_eq(timer_wheel_next_due(&wheel), TIMER_WHEEL_NEVER);
}

Test(timerwheel, never_early_and_at_most_one_tick_late)
{
    timer_wheel_init(&wheel, 10, 3);
    struct item a = {.id = 1};
    timer_entry_init(&a.e);
    timer_wheel_link(&wheel, &a.e, 105);
    cr_assert_leq(timer_wheel_next_due(&wheel), 105 + 10);
    int ids[2];
    cr_assert_eq(advance_ids(&wheel, 104, ids, 2), 0);
    cr_assert_eq(advance_ids(&wheel, 109, ids, 2), 0, "fired before its tick (110) began");
    cr_assert_eq(advance_ids(&wheel, 110, ids, 2), 1, "more than one tick late");
    cr_assert(!timer_entry_linked(&a.e));
    cr_assert(timer_wheel_empty(&wheel));
}

Test(timerwheel, already_due_fires_on_next_advance_in_link_order)
{
    timer_wheel_init(&wheel, 1, 5000);
    struct item it[3] = {{.id = 0}, {.id = 1}, {.id = 2}};
    uint64_t due[3] = {4000, 10, 5000};
    for (int i = 0; i < 3; i++) {
        timer_entry_init(&it[i].e);
        timer_wheel_link(&wheel, &it[i].e, due[i]);
    }
    cr_assert_leq(timer_wheel_next_due(&wheel), 5000);
    int ids[3];
    cr_assert_eq(advance_ids(&wheel, 5000, ids, 3), 3, "same time, still handed out");
    for (int i = 0; i < 3; i++)
        cr_assert_eq(ids[i], i);
}

Test(timerwheel, clock_never_runs_back)
{
    timer_wheel_init(&wheel, 1, 0);
    struct item a = {.id = 7};
    timer_entry_init(&a.e);
    int ids[1];
    advance_ids(&wheel, 1000, ids, 1);
    timer_wheel_link(&wheel, &a.e, 1500);
    cr_assert_eq(advance_ids(&wheel, 10, ids, 1), 0);
    cr_assert_eq(advance_ids(&wheel, 1499, ids, 1), 0);
    cr_assert_eq(advance_ids(&wheel, 1500, ids, 1), 1);
}

Test(timerwheel, equal_due_times_fire_in_link_order_across_cascades)
{
    /* Due 3 levels up, linked at different moments, so some are linked into
     * level 2, some after the first cascade into level 1, some into level 0. */
    timer_wheel_init(&wheel, 1, 0);
    enum { N = 300 };
    static struct item it[N];
    uint64_t due = 64 * 64 * 5 + 64 * 3 + 17;
    int ids[N];
    for (int i = 0; i < N; i++) {
        it[i].id = i;
        timer_entry_init(&it[i].e);
        timer_wheel_link(&wheel, &it[i].e, due);
        if (i % 50 == 49) /* move time forward between groups */
            cr_assert_eq(advance_ids(&wheel, due - (uint64_t)(N - i) * 13, ids, N), 0);
    }
    cr_assert_eq(advance_ids(&wheel, due - 1, ids, N), 0);
    cr_assert_eq(advance_ids(&wheel, due, ids, N), N);
    for (int i = 0; i < N; i++)
        cr_assert_eq(ids[i], i, "position %d holds %d", i, ids[i]);
}

Test(timerwheel, cascade_boundaries_of_every_level)
{
    /* For each level, entries due one tick before, at and after the first
     * tick that level's slot spans, from a start just off the boundary. */
    for (int level = 1; level <= TIMER_WHEEL_LEVELS; level++) {
        uint64_t span = 1ull << (TIMER_WHEEL_BITS * level);
        for (int delta = -1; delta <= 1; delta++) {
            for (uint64_t start = 0; start < 3; start++) {
                timer_wheel_init(&wheel, 1, start);
                struct item a = {.id = level * 10 + delta};
                timer_entry_init(&a.e);
                uint64_t due = span + (uint64_t)((int64_t)delta);
                timer_wheel_link(&wheel, &a.e, due);
                cr_assert_leq(timer_wheel_next_due(&wheel), due);
                assert_fires_exactly_at(&wheel, &a, due);
            }
        }
    }
}

Test(timerwheel, cascade_boundaries_stepping_one_ms_at_a_time)
{
    timer_wheel_init(&wheel, 1, 0);
    enum { N = 64 * 64 * 2 + 70 };
    static struct item it[N];
    for (int i = 0; i < N; i++) {
        it[i].id = i;
        timer_entry_init(&it[i].e);
        timer_wheel_link(&wheel, &it[i].e, (uint64_t)i + 1);
    }
    int ids[2];
    for (int i = 0; i < N; i++) {
        cr_assert_eq(advance_ids(&wheel, (uint64_t)i + 1, ids, 2), 1, "tick %d", i + 1);
        cr_assert_eq(ids[0], i);
    }
}

Test(timerwheel, unlink_from_each_level_overflow_and_due_list)
{
    timer_wheel_init(&wheel, 1, 1000);
    /* Two entries per place: one at each level, the overflow, and the due list. */
    enum { PLACES = TIMER_WHEEL_LEVELS + 2 };
    static struct item it[PLACES][2];
    uint64_t due[PLACES];
    for (int p = 0; p < PLACES; p++) {
        if (p < TIMER_WHEEL_LEVELS)
            due[p] = 1000 + (1ull << (TIMER_WHEEL_BITS * p)) + 3;
        else if (p == TIMER_WHEEL_LEVELS)
            due[p] = 1000 + (1ull << 40); /* beyond 2^36 ticks */
        else
            due[p] = 10; /* already due */
        for (int k = 0; k < 2; k++) {
            it[p][k].id = p * 2 + k;
            timer_entry_init(&it[p][k].e);
            timer_wheel_link(&wheel, &it[p][k].e, due[p]);
        }
    }
    for (int p = 0; p < PLACES; p++) {
        timer_wheel_unlink(&it[p][0].e);
        cr_assert(!timer_entry_linked(&it[p][0].e));
        timer_wheel_unlink(&it[p][0].e); /* a second unlink is a no-op */
    }
    int ids[PLACES * 2];
    int n = advance_ids(&wheel, 1000 + (1ull << 41), ids, PLACES * 2);
    cr_assert_eq(n, PLACES);
    /* In due order: the due list first, then the levels, then the overflow. */
    cr_assert_eq(ids[0], (PLACES - 1) * 2 + 1);
    for (int p = 0; p < PLACES - 1; p++)
        cr_assert_eq(ids[p + 1], p * 2 + 1);
    cr_assert(timer_wheel_empty(&wheel));
}

Test(timerwheel, unlinking_the_only_entry_empties_the_wheel)
{
    for (int level = 0; level <= TIMER_WHEEL_LEVELS; level++) {
        timer_wheel_init(&wheel, 1, 77);
        struct item a = {.id = 1};
        timer_entry_init(&a.e);
        timer_wheel_link(&wheel, &a.e, 78 + (1ull << (TIMER_WHEEL_BITS * level)));
        cr_assert(!timer_wheel_empty(&wheel));
        timer_wheel_unlink(&a.e);
        cr_assert(timer_wheel_empty(&wheel), "level %d", level);
        cr_assert_eq(timer_wheel_next_due(&wheel), TIMER_WHEEL_NEVER);
    }
}

Test(timerwheel, far_future_times)
{
    /* Days, years, and the largest representable time. */
    uint64_t start = 1795000000000ull; /* a wall-clock-like start, ms */
    uint64_t offs[] = {7ull * 86400000, 30ull * 86400000, 800ull * 86400000,
                       (1ull << 36) - 1, 1ull << 36, (1ull << 36) + 1, 1ull << 45};
    for (size_t i = 0; i < sizeof offs / sizeof offs[0]; i++) {
        timer_wheel_init(&wheel, 1, start);
        struct item a = {.id = (int)i};
        timer_entry_init(&a.e);
        timer_wheel_link(&wheel, &a.e, start + offs[i]);
        cr_assert_leq(timer_wheel_next_due(&wheel), start + offs[i]);
        assert_fires_exactly_at(&wheel, &a, start + offs[i]);
    }
    timer_wheel_init(&wheel, 1, start);
    struct item m = {.id = 99};
    timer_entry_init(&m.e);
    timer_wheel_link(&wheel, &m.e, UINT64_MAX);
    int ids[1];
    cr_assert_eq(advance_ids(&wheel, UINT64_MAX - 1, ids, 1), 0);
    cr_assert_eq(advance_ids(&wheel, UINT64_MAX, ids, 1), 1);
}

Test(timerwheel, a_million_timers_over_seven_days)
{
    enum { N = 1000000 };
    struct item *it = calloc(N, sizeof *it);
    cr_assert_not_null(it);
    uint64_t start = 123456789;
    timer_wheel_init(&wheel, 1, start);
    srandom(4242);
    for (int i = 0; i < N; i++) {
        it[i].id = i;
        timer_entry_init(&it[i].e);
        uint64_t d = start + ((uint64_t)random() * 7919u) % (7ull * 86400000);
        timer_wheel_link(&wheel, &it[i].e, d);
    }
    uint64_t now = start, fired = 0, last_due = 0;
    struct timer_list out;
    timer_list_init(&out);
    while (fired < N) {
        now += 1 + (uint64_t)random() % 60000;
        timer_wheel_advance(&wheel, now, &out);
        struct timer_entry *e;
        while ((e = timer_list_pop(&out)) != NULL) {
            cr_assert_leq(e->due_ms, now, "early");
            cr_assert_geq(e->due_ms, last_due, "out of order");
            last_due = e->due_ms;
            fired++;
        }
        cr_assert_leq(now, start + 8ull * 86400000, "not all fired after 7 days");
    }
    cr_assert(timer_wheel_empty(&wheel));
    free(it);
}

/* ---------- randomized comparison with a sorted-array model ---------- */

struct model {
    struct item **sorted; /* by (tick, seq): entries in the wheel's slots */
    size_t n;
    struct item **due;    /* linked already due, in link order */
    size_t n_due;
    uint64_t cur_tick;
    uint64_t tick_ms;
    uint64_t seq;
};

static int key_less(const struct item *a, const struct item *b)
{
    return a->tick < b->tick || (a->tick == b->tick && a->seq < b->seq);
}

static size_t model_lower(const struct model *m, const struct item *x)
{
    size_t lo = 0, hi = m->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (key_less(m->sorted[mid], x))
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static void model_link(struct model *m, struct item *x, uint64_t due_ms)
{
    x->linked = 1;
    x->seq = m->seq++;
    x->tick = due_ms / m->tick_ms + (due_ms % m->tick_ms != 0);
    x->in_due = x->tick <= m->cur_tick;
    if (x->in_due) {
        m->due[m->n_due++] = x;
        return;
    }
    size_t at = model_lower(m, x);
    memmove(&m->sorted[at + 1], &m->sorted[at], (m->n - at) * sizeof m->sorted[0]);
    m->sorted[at] = x;
    m->n++;
}

static void model_unlink(struct model *m, struct item *x)
{
    x->linked = 0;
    if (x->in_due) {
        for (size_t i = 0; i < m->n_due; i++) {
            if (m->due[i] == x) {
                memmove(&m->due[i], &m->due[i + 1], (m->n_due - i - 1) * sizeof m->due[0]);
                m->n_due--;
                return;
            }
        }
        cr_assert_fail("model lost an entry");
    }
    size_t at = model_lower(m, x);
    cr_assert(at < m->n && m->sorted[at] == x);
    memmove(&m->sorted[at], &m->sorted[at + 1], (m->n - at - 1) * sizeof m->sorted[0]);
    m->n--;
}

static uint64_t rnd64(void) { return ((uint64_t)random() << 31) ^ (uint64_t)random(); }

static uint64_t random_delay(void)
{
    switch (random() % 10) {
    case 0: return 0;
    case 1: return rnd64() % 5;
    case 2: case 3: return rnd64() % 100;
    case 4: return rnd64() % 5000;
    case 5: return rnd64() % 300000;
    case 6: return rnd64() % 3600000;
    case 7: return rnd64() % (7ull * 86400000);
    case 8: return (1ull << (TIMER_WHEEL_BITS * (1 + random() % TIMER_WHEEL_LEVELS))) - 2 +
                   rnd64() % 4;
    default: return (1ull << 36) + rnd64() % (1ull << 38); /* beyond the levels */
    }
}

static void run_model(unsigned seed, uint64_t tick_ms, uint64_t start, uint64_t sim_ms)
{
    enum { POOL = 4000 };
    struct item *it = calloc(POOL, sizeof *it);
    struct model m = {.sorted = calloc(POOL, sizeof(struct item *)),
                      .due = calloc(POOL, sizeof(struct item *)), .tick_ms = tick_ms};
    struct item **got = calloc(POOL, sizeof(struct item *));
    struct item **want = calloc(POOL, sizeof(struct item *));
    cr_assert(it && m.sorted && m.due && got && want);
    srandom(seed);
    timer_wheel_init(&wheel, tick_ms, start);
    m.cur_tick = start / tick_ms;
    for (int i = 0; i < POOL; i++) {
        it[i].id = i;
        timer_entry_init(&it[i].e);
    }
    uint64_t now = start, end = start + sim_ms, steps = 0;
    struct timer_list out;
    timer_list_init(&out);
    while (now < end) {
        /* Link, relink or unlink a few random entries. */
        int ops = (int)(random() % 8);
        for (int k = 0; k < ops; k++) {
            struct item *x = &it[random() % POOL];
            if (x->linked && random() % 3 == 0) {
                timer_wheel_unlink(&x->e);
                model_unlink(&m, x);
                continue;
            }
            if (x->linked) { /* move it */
                timer_wheel_unlink(&x->e);
                model_unlink(&m, x);
            }
            uint64_t due = random() % 16 == 0 ? now - rnd64() % (now - start + 1)
                                               : now + random_delay();
            timer_wheel_link(&wheel, &x->e, due);
            model_link(&m, x, due);
        }
        /* next_due is a lower bound on the model's earliest due time. */
        uint64_t nd = timer_wheel_next_due(&wheel);
        if (m.n_due)
            cr_assert_leq(nd, now, "seed %u: an already-due entry waits", seed);
        else if (m.n)
            cr_assert_leq(nd, m.sorted[0]->tick * tick_ms, "seed %u: next_due too late", seed);
        else
            cr_assert_eq(nd, TIMER_WHEEL_NEVER, "seed %u", seed);
        /* Mostly small steps, sometimes jumping far (or to next_due). */
        long r = random() % 65536;
        if (r == 0)
            now += rnd64() % 4000000;
        else if (r <= 16)
            now += rnd64() % 70000;
        else if (r <= 80 && nd != TIMER_WHEEL_NEVER && nd > now && nd - now < 4000000)
            now = nd;
        else if (r > 300)
            now += rnd64() % 12; /* else: the same time again */
        uint64_t n = timer_wheel_advance(&wheel, now, &out);
        size_t ng = 0;
        struct timer_entry *e;
        while ((e = timer_list_pop(&out)) != NULL)
            got[ng++] = ITEM(e);
        cr_assert_eq(n, ng);
        /* The model: every already-due entry, then the sorted prefix due now. */
        uint64_t now_tick = now / tick_ms;
        size_t nw = 0;
        for (size_t i = 0; i < m.n_due; i++)
            want[nw++] = m.due[i];
        m.n_due = 0;
        size_t pre = 0;
        while (pre < m.n && m.sorted[pre]->tick <= now_tick)
            want[nw++] = m.sorted[pre++];
        memmove(m.sorted, &m.sorted[pre], (m.n - pre) * sizeof m.sorted[0]);
        m.n -= pre;
        if (now_tick > m.cur_tick)
            m.cur_tick = now_tick;
        cr_assert_eq(ng, nw, "seed %u step %" PRIu64 " now %" PRIu64 ": fired %zu, model %zu",
                     seed, steps, now, ng, nw);
        for (size_t i = 0; i < nw; i++) {
            cr_assert_eq(got[i], want[i], "seed %u step %" PRIu64 ": position %zu is %d, model %d",
                         seed, steps, i, got[i]->id, want[i]->id);
            cr_assert_leq(got[i]->e.due_ms, now, "seed %u: early", seed);
            got[i]->linked = 0;
        }
        steps++;
    }
    cr_log_info("seed %u: %" PRIu64 " steps over %" PRIu64 " ms", seed, steps, sim_ms);
    cr_assert_gt(steps, sim_ms / 2000, "seed %u: too few steps to mean anything", seed);
    free(it);
    free(m.sorted);
    free(m.due);
    free(got);
    free(want);
}

Test(timerwheel, random_against_sorted_model_1ms_tick, .timeout = 600)
{
    for (unsigned seed = 1; seed <= 4; seed++)
        run_model(seed, 1, 1000 + seed * 7, 5000000);
}

Test(timerwheel, random_against_sorted_model_7ms_tick, .timeout = 600)
{
    for (unsigned seed = 100; seed <= 101; seed++)
        run_model(seed, 7, 1795000000000ull + seed, 8000000);
}

Test(timerwheel, random_against_sorted_model_near_2_36_boundary, .timeout = 600)
{
    /* Start just before the top level's span ends, so the overflow cascades. */
    for (unsigned seed = 200; seed <= 201; seed++)
        run_model(seed, 1, (3ull << 36) - 2000000, 6000000);
}
