/* test_qsm_index.c: the queue state machine's indexes (services/storage/
 * qsm_index.c): the u64 -> pointer map (open addressing, backward-shift
 * deletion, shrinking) checked against a plain array, and the heaps of recs
 * (by position, or by time then position) that keep each rec's heap slot. */
#include "qsm_internal.h"
#include "status.h"

#include <criterion/criterion.h>
#include <stdlib.h>

/* A deterministic stream of keys, some colliding in the low bits. */
static uint64_t key_of(uint32_t i)
{
    return (uint64_t)(i % 7 + 1) << 40 | (uint64_t)(i * 16u + 16u);
}

Test(qsm_map, puts_gets_and_deletes_agree_with_a_reference_through_growth_and_shrinking)
{
    enum { N = 5000 };
    struct map m = {0};
    static int vals[N];
    static bool in[N];
    for (uint32_t i = 0; i < N; i++)
        cr_assert_eq(qsm_map_put(&m, key_of(i), &vals[i]), CMQ_OK);
    for (uint32_t i = 0; i < N; i++)
        in[i] = true;
    cr_assert_eq(m.n, N);
    /* delete two thirds, in an order that breaks probe runs in the middle */
    for (uint32_t i = 0; i < N; i++) {
        uint32_t k = (i * 2654435761u) % N;
        if (k % 3 && in[k]) {
            qsm_map_del(&m, key_of(k));
            in[k] = false;
        }
    }
    uint32_t left = 0;
    for (uint32_t i = 0; i < N; i++) {
        void *v = qsm_map_get(&m, key_of(i));
        cr_assert_eq(v, in[i] ? (void *)&vals[i] : NULL, "key %u", i);
        left += in[i];
    }
    cr_assert_eq(m.n, left);
    /* delete the rest: the table shrinks and stays consistent */
    for (uint32_t i = 0; i < N; i++)
        if (in[i]) {
            qsm_map_del(&m, key_of(i));
            in[i] = false;
            if (i % 97 == 0)
                for (uint32_t j = 0; j < N; j++)
                    cr_assert_eq(qsm_map_get(&m, key_of(j)), in[j] ? (void *)&vals[j] : NULL);
        }
    cr_assert_eq(m.n, 0);
    cr_assert_leq(m.cap, 64, "an emptied map gives its memory back (cap %u)", m.cap);
    qsm_map_free(&m);
    cr_assert_null(qsm_map_get(&m, 1));
}

static void heap_check(const struct heap *h)
{
    for (uint32_t i = 0; i < h->n; i++) {
        cr_assert_eq(h->a[i]->hpos, i, "a rec knows its slot");
        if (i) {
            const struct rec *p = h->a[(i - 1) / 2], *c = h->a[i];
            bool ok = h->by_time && p->time_ms != c->time_ms ? p->time_ms < c->time_ms
                                                             : p->pos < c->pos;
            cr_assert(ok, "heap order at %u", i);
        }
    }
}

Test(qsm_heap, pops_in_order_and_removes_from_the_middle)
{
    enum { N = 1000 };
    struct rec *r = calloc(N, sizeof *r);
    cr_assert_not_null(r);
    struct heap h = {.by_time = true};
    for (uint32_t i = 0; i < N; i++) {
        r[i].pos = (uint64_t)(i * 7919u % N) + 1;
        r[i].time_ms = (uint64_t)(i * 31u % 50); /* many ties: broken by position */
        cr_assert_eq(qsm_heap_push(&h, &r[i]), CMQ_OK);
    }
    heap_check(&h);
    for (uint32_t i = 0; i < N; i += 3) /* arbitrary removals keep the order */
        qsm_heap_remove(&h, &r[i]);
    heap_check(&h);
    const struct rec *prev = NULL, *t;
    while ((t = qsm_heap_top(&h))) {
        if (prev)
            cr_assert(prev->time_ms < t->time_ms ||
                      (prev->time_ms == t->time_ms && prev->pos < t->pos));
        prev = t;
        qsm_heap_remove(&h, (struct rec *)t);
        cr_assert_eq(t->hpos, UINT32_MAX, "a removed rec is in no slot");
    }
    cr_assert_eq(h.n, 0);
    free(h.a);
    free(r);
}

Test(qsm_heap, by_position_ignores_time)
{
    struct rec a = {.pos = 3, .time_ms = 1}, b = {.pos = 1, .time_ms = 9}, c = {.pos = 2};
    struct heap h = {0};
    qsm_heap_push(&h, &a);
    qsm_heap_push(&h, &b);
    qsm_heap_push(&h, &c);
    cr_assert_eq(qsm_heap_top(&h), &b);
    qsm_heap_remove(&h, &b);
    cr_assert_eq(qsm_heap_top(&h), &c);
    free(h.a);
}
