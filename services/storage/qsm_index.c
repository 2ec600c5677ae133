/* qsm_index.c: the queue state machine's in-memory indexes: a u64 -> pointer
 * hash map (recs by position, leases by receipt handle, ordered groups by
 * key) and binary min-heaps of recs that keep each rec's heap position.
 *
 * Pure data structures over `struct rec` (qsm_internal.h): no knowledge of
 * queues, the log or time.  The map is for lookups only: determinism
 * (invariant 1 of qsm.h) forbids iterating it where order matters. */
#include "qsm_internal.h"
#include "hash.h"

#include "status.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

static int map_resize(struct map *m, uint32_t cap)
{
    uint64_t *keys = calloc(cap, sizeof *keys);
    void **vals = calloc(cap, sizeof *vals);
    if (!keys || !vals) {
        free(keys);
        free(vals);
        return CMQ_ENOMEM;
    }
    for (uint32_t i = 0; i < m->cap; i++) {
        if (!m->keys[i])
            continue;
        uint32_t j = (uint32_t)(hash_fmix64(m->keys[i]) & (cap - 1));
        while (keys[j])
            j = (j + 1) & (cap - 1);
        keys[j] = m->keys[i];
        vals[j] = m->vals[i];
    }
    free(m->keys);
    free(m->vals);
    m->keys = keys;
    m->vals = vals;
    m->cap = cap;
    return CMQ_OK;
}

void qsm_map_free(struct map *m)
{
    free(m->keys);
    free(m->vals);
    memset(m, 0, sizeof *m);
}

void *qsm_map_get(const struct map *m, uint64_t key)
{
    assert(key);
    if (!m->cap)
        return NULL;
    uint32_t j = (uint32_t)(hash_fmix64(key) & (m->cap - 1));
    while (m->keys[j]) {
        if (m->keys[j] == key)
            return m->vals[j];
        j = (j + 1) & (m->cap - 1);
    }
    return NULL;
}

/* Inserts a key that is not present. */
int qsm_map_put(struct map *m, uint64_t key, void *val)
{
    assert(key && val);
    if ((m->n + 1) * 2 > m->cap) {
        int rc = map_resize(m, m->cap ? m->cap * 2 : 16);
        if (rc)
            return rc;
    }
    uint32_t j = (uint32_t)(hash_fmix64(key) & (m->cap - 1));
    while (m->keys[j]) {
        assert(m->keys[j] != key);
        j = (j + 1) & (m->cap - 1);
    }
    m->keys[j] = key;
    m->vals[j] = val;
    m->n++;
    return CMQ_OK;
}

void qsm_map_del(struct map *m, uint64_t key)
{
    assert(key && m->cap);
    uint32_t mask = m->cap - 1, j = (uint32_t)(hash_fmix64(key) & mask);
    while (m->keys[j] != key) {
        assert(m->keys[j]);
        j = (j + 1) & mask;
    }
    /* backward shift: move later members of the probe run into the hole */
    uint32_t hole = j;
    for (uint32_t k = (j + 1) & mask; m->keys[k]; k = (k + 1) & mask) {
        uint32_t home = (uint32_t)(hash_fmix64(m->keys[k]) & mask);
        /* k may move to hole if home is not in (hole, k] cyclically */
        bool stays = hole <= k ? (home > hole && home <= k) : (home > hole || home <= k);
        if (!stays) {
            m->keys[hole] = m->keys[k];
            m->vals[hole] = m->vals[k];
            hole = k;
        }
    }
    m->keys[hole] = 0;
    m->vals[hole] = NULL;
    m->n--;
    if (m->cap > 64 && m->n * 8 < m->cap)
        (void)map_resize(m, m->cap / 4); /* on failure keep the larger table */
}


static bool heap_less(const struct heap *h, const struct rec *x, const struct rec *y)
{
    if (h->by_time && x->time_ms != y->time_ms)
        return x->time_ms < y->time_ms;
    return x->pos < y->pos;
}

static void heap_set(struct heap *h, uint32_t i, struct rec *r)
{
    h->a[i] = r;
    r->hpos = i;
}

static void heap_up(struct heap *h, uint32_t i)
{
    struct rec *r = h->a[i];
    while (i > 0) {
        uint32_t p = (i - 1) / 2;
        if (!heap_less(h, r, h->a[p]))
            break;
        heap_set(h, i, h->a[p]);
        i = p;
    }
    heap_set(h, i, r);
}

static void heap_down(struct heap *h, uint32_t i)
{
    struct rec *r = h->a[i];
    for (;;) {
        uint32_t c = 2 * i + 1;
        if (c >= h->n)
            break;
        if (c + 1 < h->n && heap_less(h, h->a[c + 1], h->a[c]))
            c++;
        if (!heap_less(h, h->a[c], r))
            break;
        heap_set(h, i, h->a[c]);
        i = c;
    }
    heap_set(h, i, r);
}

int qsm_heap_push(struct heap *h, struct rec *r)
{
    if (h->n == h->cap) {
        uint32_t cap = h->cap ? h->cap * 2 : 16;
        struct rec **a = realloc(h->a, cap * sizeof *a);
        if (!a)
            return CMQ_ENOMEM;
        h->a = a;
        h->cap = cap;
    }
    h->a[h->n] = r;
    r->hpos = h->n++;
    heap_up(h, r->hpos);
    return CMQ_OK;
}

void qsm_heap_remove(struct heap *h, struct rec *r)
{
    uint32_t i = r->hpos;
    assert(i < h->n && h->a[i] == r);
    h->n--;
    if (i != h->n) {
        heap_set(h, i, h->a[h->n]);
        heap_down(h, i);
        heap_up(h, h->a[i]->hpos);
    }
    r->hpos = UINT32_MAX;
    if (h->cap > 64 && h->n * 8 < h->cap) {
        struct rec **a = realloc(h->a, (h->cap / 4) * sizeof *a);
        if (a) {
            h->a = a;
            h->cap /= 4;
        }
    }
}

struct rec *qsm_heap_top(const struct heap *h)
{
    return h->n ? h->a[0] : NULL;
}
