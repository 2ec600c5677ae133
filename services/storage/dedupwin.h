/* dedupwin.h: the dedup window of a partition's state machine (qsm.c for
 * SendItem.dedup_key, tsm.c for PublishItem.dedup_key).
 *
 * A FIFO of (scope, key) -> first msg id, stamped with the leader clock of
 * the entry that added it, with a hash index for lookups.  Pure and
 * deterministic: replicas noting the same keys at the same stamps hold the
 * same window, so it is part of the replicated state (snapshots carry it,
 * oldest first; dedupwin_note of the same sequence rebuilds it).
 *
 * Eviction, at each note, from the oldest end:
 *   - always while the window holds `hard_max` entries (memory bound);
 *   - while it holds more than `soft_max` entries AND the oldest is older
 *     than `keep_ms` (by the stamp of the entry being noted).
 * So a key stays at least until both `soft_max` newer keys were noted and
 * `keep_ms` passed, unless `hard_max` newer keys were noted first: the
 * window covers a retry that comes `keep_ms` late at any rate up to
 * hard_max / keep_ms keyed items a second, and the last soft_max items
 * whatever their age.  keep_ms 0 gives a plain FIFO of soft_max.
 *
 * Memory: 32 bytes an entry plus 8 a hash slot (the ring doubles as it
 * fills, up to hard_max; allocated on the first note).
 */
#ifndef CMQ_STORAGE_DEDUPWIN_H
#define CMQ_STORAGE_DEDUPWIN_H

#include <stddef.h>
#include <stdint.h>

struct dedupwin_ent {
    uint64_t scope;  /* queue or topic id */
    uint64_t key;    /* != 0 */
    uint64_t msg_id; /* the first id noted with (scope, key) */
    uint64_t ms;     /* the leader clock of the entry that noted it */
};

struct dedupwin {
    uint32_t soft_max, hard_max; /* hard_max >= soft_max >= 1 */
    uint64_t keep_ms;
    struct dedupwin_ent *ring;
    uint32_t cap, head, n;       /* ring capacity, oldest slot, count */
    uint32_t *tab;               /* hash slots: ring slot + 1, 0 empty */
    uint32_t tab_cap;            /* power of two >= 2 * cap */
};

/* An empty window with these bounds (nothing allocated yet). */
void dedupwin_init(struct dedupwin *w, uint32_t soft_max, uint32_t hard_max, uint64_t keep_ms);
void dedupwin_free(struct dedupwin *w); /* back to empty, bounds kept */

/* The msg id held for (scope, key), or 0. */
uint64_t dedupwin_find(const struct dedupwin *w, uint64_t scope, uint64_t key);

/* Remembers (scope, key) -> msg_id at leader clock `ms`, evicting as above
 * first; a key already held keeps its first id (and its place).  key 0 is
 * ignored.  CMQ_OK or CMQ_ENOMEM (the window is unchanged then). */
int dedupwin_note(struct dedupwin *w, uint64_t scope, uint64_t key, uint64_t msg_id, uint64_t ms);

/* Entries oldest first: i in [0, dedupwin_count). */
static inline uint32_t dedupwin_count(const struct dedupwin *w) { return w->n; }
static inline const struct dedupwin_ent *dedupwin_at(const struct dedupwin *w, uint32_t i)
{
    return &w->ring[(w->head + i) % w->cap];
}

size_t dedupwin_memory(const struct dedupwin *w);

#endif
