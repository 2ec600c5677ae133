/* hash.h: the project's hashes, one definition each.
 *
 * Two kinds live here, and each says which it is:
 *  - FREE: no stored value is ever recomputed to be matched (in-memory
 *    tables, keys drawn from a counter: hash_fmix64, hash_splitmix64); it
 *    may be changed at any release.
 *  - FROZEN: the value is written to disk or into replicated state, so
 *    every node of every version must compute the same one forever
 *    (FNV-1a below).  Never change a frozen hash; add a new function for a
 *    new need.  tests/unit/common/base/test_hash.c pins their values.
 */
#ifndef CMQ_HASH_H
#define CMQ_HASH_H

#include <stddef.h>
#include <stdint.h>

/* FREE.  MurmurHash3's 64-bit finaliser (fmix64), a bijection on uint64_t. */
static inline uint64_t hash_fmix64(uint64_t k)
{
    k ^= k >> 33;
    k *= UINT64_C(0xff51afd7ed558ccd);
    k ^= k >> 33;
    k *= UINT64_C(0xc4ceb9fe1a85ec53);
    k ^= k >> 33;
    return k;
}

/* FREE.  splitmix64's finaliser, a bijection on uint64_t. */
static inline uint64_t hash_splitmix64(uint64_t x)
{
    x ^= x >> 30;
    x *= UINT64_C(0xbf58476d1ce4e5b9);
    x ^= x >> 27;
    x *= UINT64_C(0x94d049bb133111eb);
    x ^= x >> 31;
    return x;
}

/* ---- FNV-1a, 64 bits: FROZEN ----
 * Its values are stored and replicated:
 *  - a storage node's Raft id (raft_id_of, services/storage/node.c) is in
 *    every partition's Raft configuration and term/vote file on disk: a
 *    different hash would make a node a stranger to its own groups
 *    (tools/bench/failover.py computes it too, in Python);
 *  - an ordered queue's group key (qsm_group_key, services/storage/
 *    qsm_entry.c) is in the queue state machine's snapshot image and is
 *    recomputed from the log by every replica: a different hash would split
 *    or merge groups across a restart or between replicas of two versions;
 *  - a topic delivery's dedup key (services/storage/topics.c) is kept in
 *    the queue partitions' dedup windows (replicated, in snapshots): a
 *    different hash would let a retried delivery append a second copy.
 * The gateway's caches use it too, for in-memory slots only.
 * Bytes are fed in order; a uint64_t is fed as its 8 bytes little-endian. */
#define HASH_FNV1A64_INIT UINT64_C(0xcbf29ce484222325) /* the offset basis */
#define HASH_FNV1A64_PRIME UINT64_C(0x100000001b3)

/* Continues hash `h` over buf[0..len) (borrowed; may be NULL when len is 0). */
static inline uint64_t hash_fnv1a64(uint64_t h, const void *buf, size_t len)
{
    const unsigned char *p = (const unsigned char *)buf;
    for (size_t i = 0; i < len; i++)
        h = (h ^ p[i]) * HASH_FNV1A64_PRIME;
    return h;
}

/* Continues hash `h` over the bytes of the string `s` before its NUL. */
static inline uint64_t hash_fnv1a64_str(uint64_t h, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        h = (h ^ *p) * HASH_FNV1A64_PRIME;
    return h;
}

/* Continues hash `h` over the 8 bytes of `v`, least significant first. */
static inline uint64_t hash_fnv1a64_u64le(uint64_t h, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        h = (h ^ ((v >> (8 * i)) & 0xff)) * HASH_FNV1A64_PRIME;
    return h;
}

/* FROZEN with the above: the frozen users keep 0 free as "none" and map a
 * hash of 0 to 1. */
static inline uint64_t hash_nonzero(uint64_t h)
{
    return h ? h : 1;
}

#endif
