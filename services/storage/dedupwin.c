/* dedupwin.c: the dedup window; see dedupwin.h.
 *
 * The ring holds the entries in note order; the hash table maps
 * hash(scope, key) by linear probing to ring slots (deletion by backward
 * shift, so no tombstones).  When the ring grows it is laid out again from
 * slot 0 and the table rebuilt (doubling: amortised O(1) a note). */
#include "dedupwin.h"
#include "hash.h"

#include "status.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static uint32_t home(const struct dedupwin *w, uint64_t scope, uint64_t key)
{
    return (uint32_t)(hash_fmix64(scope ^ hash_fmix64(key ^ UINT64_C(0x9e3779b97f4a7c15))) &
                      (w->tab_cap - 1));
}

void dedupwin_init(struct dedupwin *w, uint32_t soft_max, uint32_t hard_max, uint64_t keep_ms)
{
    memset(w, 0, sizeof *w);
    w->soft_max = soft_max ? soft_max : 1;
    w->hard_max = hard_max < w->soft_max ? w->soft_max : hard_max;
    w->keep_ms = keep_ms;
}

void dedupwin_free(struct dedupwin *w)
{
    free(w->ring);
    free(w->tab);
    dedupwin_init(w, w->soft_max, w->hard_max, w->keep_ms);
}

uint64_t dedupwin_find(const struct dedupwin *w, uint64_t scope, uint64_t key)
{
    if (!w->n || !key)
        return 0;
    uint32_t mask = w->tab_cap - 1;
    for (uint32_t j = home(w, scope, key); w->tab[j]; j = (j + 1) & mask) {
        const struct dedupwin_ent *e = &w->ring[w->tab[j] - 1];
        if (e->scope == scope && e->key == key)
            return e->msg_id;
    }
    return 0;
}

static void tab_insert(struct dedupwin *w, uint32_t slot)
{
    const struct dedupwin_ent *e = &w->ring[slot];
    uint32_t mask = w->tab_cap - 1, j = home(w, e->scope, e->key);
    while (w->tab[j])
        j = (j + 1) & mask;
    w->tab[j] = slot + 1;
}

static void tab_remove(struct dedupwin *w, uint32_t slot)
{
    const struct dedupwin_ent *e = &w->ring[slot];
    uint32_t mask = w->tab_cap - 1, j = home(w, e->scope, e->key);
    while (w->tab[j] != slot + 1)
        j = (j + 1) & mask; /* present: every ring entry is indexed */
    uint32_t hole = j;
    w->tab[hole] = 0;
    for (uint32_t k = (hole + 1) & mask; w->tab[k]; k = (k + 1) & mask) {
        const struct dedupwin_ent *o = &w->ring[w->tab[k] - 1];
        uint32_t h = home(w, o->scope, o->key);
        /* the member at k stays when its home lies in (hole, k] cyclically */
        bool stays = hole <= k ? (h > hole && h <= k) : (h > hole || h <= k);
        if (!stays) {
            w->tab[hole] = w->tab[k];
            w->tab[k] = 0;
            hole = k;
        }
    }
}

static int grow(struct dedupwin *w)
{
    uint32_t cap = w->cap ? w->cap * 2 : 64;
    if (cap > w->hard_max)
        cap = w->hard_max;
    uint32_t tcap = 16;
    while (tcap < 2 * cap)
        tcap *= 2;
    struct dedupwin_ent *ring = malloc((size_t)cap * sizeof *ring);
    uint32_t *tab = calloc(tcap, sizeof *tab);
    if (!ring || !tab) {
        free(ring);
        free(tab);
        return CMQ_ENOMEM;
    }
    for (uint32_t i = 0; i < w->n; i++)
        ring[i] = w->ring[(w->head + i) % w->cap];
    free(w->ring);
    free(w->tab);
    w->ring = ring;
    w->tab = tab;
    w->cap = cap;
    w->tab_cap = tcap;
    w->head = 0;
    for (uint32_t i = 0; i < w->n; i++)
        tab_insert(w, i);
    return CMQ_OK;
}

int dedupwin_note(struct dedupwin *w, uint64_t scope, uint64_t key, uint64_t msg_id, uint64_t ms)
{
    if (!key || dedupwin_find(w, scope, key))
        return CMQ_OK; /* a key already held keeps its first id */
    while (w->n && (w->n >= w->hard_max ||
                    (w->n >= w->soft_max &&
                     (ms > w->ring[w->head].ms ? ms - w->ring[w->head].ms : 0) >= w->keep_ms))) {
        tab_remove(w, w->head);
        w->head = (w->head + 1) % w->cap;
        w->n--;
    }
    if (w->n == w->cap) {
        int rc = grow(w);
        if (rc)
            return rc;
    }
    uint32_t slot = (w->head + w->n) % w->cap;
    w->ring[slot] = (struct dedupwin_ent){scope, key, msg_id, ms};
    tab_insert(w, slot);
    w->n++;
    return CMQ_OK;
}

size_t dedupwin_memory(const struct dedupwin *w)
{
    return (size_t)w->cap * sizeof *w->ring + (size_t)w->tab_cap * sizeof *w->tab;
}
