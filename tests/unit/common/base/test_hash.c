/* test_hash.c: common/base/hash.h.  The FROZEN hashes' values are pinned here:
 * they are on disk and in replicated state (a node's Raft id, an ordered
 * queue's group key in qsm snapshots, a topic delivery's dedup key in the
 * queues' dedup windows), so a change that moves any of these numbers breaks
 * existing clusters and must not pass.  The expected values come from the
 * FNV-1a 64 reference vectors and from the hand loops these helpers replaced
 * (node.c, qsm.c, topics.c; tools/bench/failover.py computes the Raft id the
 * same way in Python). */
#include "hash.h"

#include <criterion/criterion.h>
#include <string.h>

static uint64_t fnv(const char *s)
{
    return hash_fnv1a64(HASH_FNV1A64_INIT, s, strlen(s));
}

Test(hash_fnv1a64, reference_vectors)
{
    cr_assert_eq(HASH_FNV1A64_INIT, UINT64_C(0xcbf29ce484222325));
    cr_assert_eq(HASH_FNV1A64_PRIME, UINT64_C(0x100000001b3));
    cr_assert_eq(fnv(""), UINT64_C(0xcbf29ce484222325));
    cr_assert_eq(fnv("a"), UINT64_C(0xaf63dc4c8601ec8c));
    cr_assert_eq(fnv("foobar"), UINT64_C(0x85944171f73967e8));
    cr_assert_eq(hash_fnv1a64(HASH_FNV1A64_INIT, NULL, 0), HASH_FNV1A64_INIT);
}

Test(hash_fnv1a64, str_and_bytes_agree_and_continue)
{
    const char *s = "storage-1";
    cr_assert_eq(hash_fnv1a64_str(HASH_FNV1A64_INIT, s), fnv(s));
    /* feeding in two pieces is feeding the whole */
    uint64_t h = hash_fnv1a64(HASH_FNV1A64_INIT, "stor", 4);
    cr_assert_eq(hash_fnv1a64_str(h, "age-1"), fnv(s));
    /* a group id is hashed by length, not up to a NUL */
    cr_assert_neq(hash_fnv1a64(HASH_FNV1A64_INIT, "ab\0c", 4), fnv("ab"));
}

/* raft_id_of (services/storage/node.c): these ids are in the Raft
 * configurations of every partition a node holds. */
Test(hash_fnv1a64, frozen_raft_ids)
{
    cr_assert_eq(hash_nonzero(hash_fnv1a64_str(HASH_FNV1A64_INIT, "storage-1")),
                 UINT64_C(0x9f5db5d7ad068600));
    cr_assert_eq(hash_nonzero(hash_fnv1a64_str(HASH_FNV1A64_INIT, "storage-2")),
                 UINT64_C(0x9f5db8d7ad068b19));
    cr_assert_eq(hash_nonzero(hash_fnv1a64_str(HASH_FNV1A64_INIT, "storage-3")),
                 UINT64_C(0x9f5db7d7ad068966));
}

/* qsm_group_key (services/storage/qsm_entry.c): in qsm snapshot images. */
Test(hash_fnv1a64, frozen_group_key)
{
    const char g[] = "order-42";
    cr_assert_eq(hash_nonzero(hash_fnv1a64(HASH_FNV1A64_INIT, g, sizeof g - 1)),
                 UINT64_C(0x7d1deb86a05662d4));
}

/* dedup_key (services/storage/topics.c): the subscription id's bytes, then
 * the msg id's 8 bytes least significant first; in the dedup windows. */
Test(hash_fnv1a64, frozen_forward_dedup_key)
{
    uint64_t msg_id = UINT64_C(0x0010000000000123);
    uint64_t h = hash_fnv1a64_u64le(hash_fnv1a64_str(HASH_FNV1A64_INIT, "sub-1"), msg_id);
    cr_assert_eq(hash_nonzero(h), UINT64_C(0xcf336f3b0d495f43));
    uint8_t le[8];
    for (int i = 0; i < 8; i++)
        le[i] = (uint8_t)(msg_id >> (8 * i));
    cr_assert_eq(h, hash_fnv1a64(hash_fnv1a64_str(HASH_FNV1A64_INIT, "sub-1"), le, 8));
}

Test(hash_nonzero, keeps_zero_free)
{
    cr_assert_eq(hash_nonzero(0), 1);
    cr_assert_eq(hash_nonzero(1), 1);
    cr_assert_eq(hash_nonzero(UINT64_MAX), UINT64_MAX);
}

/* The gateway's caches seed with the app id (in-memory slots, not frozen,
 * but the seeding must still mix the app id in). */
Test(hash_fnv1a64, seeded)
{
    cr_assert_eq(hash_fnv1a64_str(HASH_FNV1A64_INIT ^ 1251, "q1"), UINT64_C(0x17ba8307c21d4e0c));
    cr_assert_neq(hash_fnv1a64_str(HASH_FNV1A64_INIT ^ 1251, "q1"),
                  hash_fnv1a64_str(HASH_FNV1A64_INIT ^ 1252, "q1"));
}

/* The FREE mixers: bijections, so distinct inputs stay distinct. */
Test(hash_mixers, distinct_inputs_distinct_outputs)
{
    for (uint64_t i = 0; i < 1000; i++) {
        cr_assert_neq(hash_fmix64(i), hash_fmix64(i + 1));
        cr_assert_neq(hash_splitmix64(i), hash_splitmix64(i + 1));
    }
    cr_assert_eq(hash_fmix64(0), 0); /* fmix64 fixes 0: callers never hash key 0 */
}
