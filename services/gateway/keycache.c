/* keycache.c: see keycache.h.  Evicted and forgotten secrets are wiped. */
#include "keycache.h"

#include "hash.h"

#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

struct keycache {
    size_t slots;
    uint64_t ttl_ms, negative_ttl_ms;
    struct key_entry e[];
};

static size_t slot_of(const struct keycache *kc, const char *id)
{
    return (size_t)(hash_fnv1a64_str(HASH_FNV1A64_INIT, id) % kc->slots);
}

struct keycache *keycache_new(size_t slots, uint64_t ttl_ms, uint64_t negative_ttl_ms)
{
    struct keycache *kc = calloc(1, sizeof *kc + slots * sizeof(struct key_entry));
    if (!kc)
        return NULL;
    kc->slots = slots;
    kc->ttl_ms = ttl_ms;
    kc->negative_ttl_ms = negative_ttl_ms;
    return kc;
}

void keycache_free(struct keycache *kc)
{
    if (!kc)
        return;
    OPENSSL_cleanse(kc->e, kc->slots * sizeof kc->e[0]);
    free(kc);
}

const struct key_entry *keycache_get(struct keycache *kc, const char *secret_id, uint64_t now_ms)
{
    const struct key_entry *e = &kc->e[slot_of(kc, secret_id)];
    if (!e->secret_id[0] || strcmp(e->secret_id, secret_id) != 0)
        return NULL;
    uint64_t ttl = e->exists ? kc->ttl_ms : kc->negative_ttl_ms;
    if (now_ms - e->fetched_ms >= ttl)
        return NULL;
    return e;
}

void keycache_put(struct keycache *kc, const struct key_entry *in, uint64_t now_ms)
{
    struct key_entry *e = &kc->e[slot_of(kc, in->secret_id)];
    OPENSSL_cleanse(e, sizeof *e);
    *e = *in;
    e->fetched_ms = now_ms;
}

void keycache_forget(struct keycache *kc, const char *secret_id)
{
    struct key_entry *e = &kc->e[slot_of(kc, secret_id)];
    if (strcmp(e->secret_id, secret_id) == 0)
        OPENSSL_cleanse(e, sizeof *e);
}
