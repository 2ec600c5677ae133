/* Tests for services/gateway/keycache.c and qcache.c: the gateway's fixed-size
 * caches of secret keys and queue metadata (hits, expiry, negative entries,
 * forgetting, and eviction by a colliding key). */
#include "keycache.h"
#include "qcache.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

static struct key_entry key(const char *id, int exists)
{
    struct key_entry e = {0};
    snprintf(e.secret_id, sizeof e.secret_id, "%s", id);
    snprintf(e.secret_key, sizeof e.secret_key, "secret-of-%s", id);
    e.exists = exists;
    e.enabled = 1;
    e.appid = 42;
    return e;
}

Test(keycache, hit_until_the_ttl_then_miss)
{
    struct keycache *kc = keycache_new(64, 1000, 100);
    struct key_entry e = key("AKIDone", 1);
    keycache_put(kc, &e, 5000);
    const struct key_entry *got = keycache_get(kc, "AKIDone", 5999);
    cr_assert_not_null(got);
    cr_assert_str_eq(got->secret_key, "secret-of-AKIDone");
    cr_assert_eq(got->appid, 42);
    cr_assert_null(keycache_get(kc, "AKIDone", 6000), "expired at the TTL");
    cr_assert_null(keycache_get(kc, "AKIDother", 5001));
    keycache_free(kc);
}

Test(keycache, unknown_keys_are_remembered_briefly)
{
    struct keycache *kc = keycache_new(64, 1000, 100);
    struct key_entry e = key("AKIDnobody", 0);
    keycache_put(kc, &e, 0);
    const struct key_entry *got = keycache_get(kc, "AKIDnobody", 99);
    cr_assert_not_null(got);
    cr_assert_eq(got->exists, 0);
    cr_assert_null(keycache_get(kc, "AKIDnobody", 100), "negative entries use the short TTL");
    keycache_free(kc);
}

Test(keycache, forget_drops_only_that_key)
{
    struct keycache *kc = keycache_new(1024, 1000, 100);
    struct key_entry a = key("AKIDa", 1), b = key("AKIDb", 1);
    keycache_put(kc, &a, 0);
    keycache_put(kc, &b, 0);
    keycache_forget(kc, "AKIDa");
    keycache_forget(kc, "AKIDnever");
    cr_assert_null(keycache_get(kc, "AKIDa", 1));
    cr_assert_not_null(keycache_get(kc, "AKIDb", 1));
    keycache_free(kc);
}

Test(keycache, a_colliding_key_evicts_and_never_aliases)
{
    struct keycache *kc = keycache_new(1, 1000, 100); /* every key shares the slot */
    struct key_entry a = key("AKIDa", 1), b = key("AKIDb", 1);
    keycache_put(kc, &a, 0);
    keycache_put(kc, &b, 0);
    cr_assert_null(keycache_get(kc, "AKIDa", 1), "a is evicted, not answered with b's secret");
    cr_assert_str_eq(keycache_get(kc, "AKIDb", 1)->secret_key, "secret-of-AKIDb");
    keycache_free(kc);
}

static cmq_QueueInfo queue(uint64_t appid, const char *name, uint32_t partition)
{
    cmq_QueueInfo qi = cmq_QueueInfo_init_zero;
    qi.appid = appid;
    snprintf(qi.name, sizeof qi.name, "%s", name);
    qi.partition_id = partition;
    qi.num_id = partition * 100;
    return qi;
}

Test(qcache, keyed_by_account_and_name)
{
    struct qcache *qc = qcache_new(256, 1000);
    cmq_QueueInfo a = queue(1, "orders", 3), b = queue(2, "orders", 4), out;
    qcache_put(qc, &a, 0);
    qcache_put(qc, &b, 0);
    cr_assert_eq(qcache_get(qc, 1, "orders", 10, &out), 0);
    cr_assert_eq(out.partition_id, 3);
    cr_assert_eq(qcache_get(qc, 2, "orders", 10, &out), 0);
    cr_assert_eq(out.partition_id, 4);
    cr_assert_eq(qcache_get(qc, 1, "Orders", 10, &out), -1, "lookups are exact");
    cr_assert_eq(qcache_get(qc, 1, "orders", 1000, &out), -1, "expired at the TTL");
    qcache_free(qc);
}

Test(qcache, forget_and_collisions)
{
    struct qcache *qc = qcache_new(1, 1000);
    cmq_QueueInfo a = queue(1, "a", 1), b = queue(1, "b", 2), out;
    qcache_put(qc, &a, 0);
    qcache_put(qc, &b, 0);
    cr_assert_eq(qcache_get(qc, 1, "a", 1, &out), -1, "evicted by the colliding entry");
    cr_assert_eq(qcache_get(qc, 1, "b", 1, &out), 0);
    qcache_forget(qc, 1, "a"); /* not cached: nothing happens */
    cr_assert_eq(qcache_get(qc, 1, "b", 1, &out), 0);
    qcache_forget(qc, 1, "b");
    cr_assert_eq(qcache_get(qc, 1, "b", 1, &out), -1);
    qcache_free(qc);
}
