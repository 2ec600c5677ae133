/* qcache.c: see qcache.h. */
#include "qcache.h"

#include "hash.h"

#include <stdlib.h>
#include <string.h>

struct slot {
    int used;
    uint64_t fetched_ms;
    cmq_QueueInfo qi;
};

struct qcache {
    size_t slots;
    uint64_t ttl_ms;
    struct slot s[];
};

static size_t slot_of(const struct qcache *qc, uint64_t appid, const char *name)
{
    return (size_t)(hash_fnv1a64_str(HASH_FNV1A64_INIT ^ appid, name) % qc->slots);
}

struct qcache *qcache_new(size_t slots, uint64_t ttl_ms)
{
    struct qcache *qc = calloc(1, sizeof *qc + slots * sizeof(struct slot));
    if (!qc)
        return NULL;
    qc->slots = slots;
    qc->ttl_ms = ttl_ms;
    return qc;
}

void qcache_free(struct qcache *qc) { free(qc); }

int qcache_get(struct qcache *qc, uint64_t appid, const char *name, uint64_t now_ms,
               cmq_QueueInfo *out)
{
    const struct slot *s = &qc->s[slot_of(qc, appid, name)];
    if (!s->used || s->qi.appid != appid || strcmp(s->qi.name, name) != 0 ||
        now_ms - s->fetched_ms >= qc->ttl_ms)
        return -1;
    *out = s->qi;
    return 0;
}

void qcache_put(struct qcache *qc, const cmq_QueueInfo *qi, uint64_t now_ms)
{
    struct slot *s = &qc->s[slot_of(qc, qi->appid, qi->name)];
    s->used = 1;
    s->fetched_ms = now_ms;
    s->qi = *qi;
}

void qcache_forget(struct qcache *qc, uint64_t appid, const char *name)
{
    struct slot *s = &qc->s[slot_of(qc, appid, name)];
    if (s->used && s->qi.appid == appid && strcmp(s->qi.name, name) == 0)
        s->used = 0;
}
