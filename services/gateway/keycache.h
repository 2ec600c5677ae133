/* keycache.h: the gateway's cache of secret keys (for signatures) fetched
 * from metadata.  Direct-mapped by a hash of the SecretId, so its memory is
 * fixed at creation (slots) and a flood of unknown ids evicts, never grows.
 * Unknown ids are cached too (briefly), so they do not hammer metadata.
 * Entries expire after a TTL; metadata change events drop them sooner. */
#ifndef CMQ_GATEWAY_KEYCACHE_H
#define CMQ_GATEWAY_KEYCACHE_H

#include <stddef.h>
#include <stdint.h>

#define KEY_ID_MAX 65
#define KEY_SECRET_MAX 65

struct key_entry {
    char secret_id[KEY_ID_MAX];
    char secret_key[KEY_SECRET_MAX];
    uint64_t appid;
    int exists;     /* 0: metadata said there is no such key */
    int enabled;
    int restricted; /* only ACL grants apply */
    uint64_t fetched_ms;
};

struct keycache;

struct keycache *keycache_new(size_t slots, uint64_t ttl_ms, uint64_t negative_ttl_ms);
void keycache_free(struct keycache *kc);
/* A fresh entry for `secret_id` (borrowed until the next put/forget), or NULL. */
const struct key_entry *keycache_get(struct keycache *kc, const char *secret_id, uint64_t now_ms);
/* Stores a copy of `e` (e->fetched_ms is set to now_ms). */
void keycache_put(struct keycache *kc, const struct key_entry *e, uint64_t now_ms);
/* Drops `secret_id`, if cached. */
void keycache_forget(struct keycache *kc, const char *secret_id);

#endif
