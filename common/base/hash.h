/* hash.h: the 64-bit mixers, one definition each.
 *
 * Both are bijections on uint64_t (distinct inputs give distinct outputs),
 * used for in-memory hash tables and for turning a counter into a key.  No
 * value either computes is stored on disk or replicated, so either may be
 * changed; a hash that is frozen into durable or replicated state must not
 * live here without being marked so.
 */
#ifndef CMQ_HASH_H
#define CMQ_HASH_H

#include <stdint.h>

/* MurmurHash3's 64-bit finaliser (fmix64). */
static inline uint64_t hash_fmix64(uint64_t k)
{
    k ^= k >> 33;
    k *= UINT64_C(0xff51afd7ed558ccd);
    k ^= k >> 33;
    k *= UINT64_C(0xc4ceb9fe1a85ec53);
    k ^= k >> 33;
    return k;
}

/* splitmix64's finaliser. */
static inline uint64_t hash_splitmix64(uint64_t x)
{
    x ^= x >> 30;
    x *= UINT64_C(0xbf58476d1ce4e5b9);
    x ^= x >> 27;
    x *= UINT64_C(0x94d049bb133111eb);
    x ^= x >> 31;
    return x;
}

#endif
