/* sign.c: string-to-sign, HMAC, verification and the nonce cache; see sign.h.
 *
 * The canonical parameter part ("k=v&k=v") is the same for every candidate
 * host, so it is built once at the end of a buffer that leaves room in front
 * for the longest prefix (METHOD HOST PATH "?"); each candidate writes its
 * prefix right before it and HMACs the contiguous bytes.  A request thus
 * costs one copy of its parameters however many hosts are tried.
 */
#include "sign.h"

#include <assert.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto.h"
#include "hash.h"
#include "cmq_limits.h"
#include "params.h"
#include "status.h"

#define SIGN_METHOD_LEN_MAX 7
#define SIGN_PREFIX_MAX (SIGN_METHOD_LEN_MAX + CMQ_HOST_LEN_MAX + CMQ_PATH_LEN_MAX + 1)

_Static_assert(BASE64_ENCODED_LEN(32) + 1 <= SIGN_B64_MAX, "SIGN_B64_MAX holds a SHA-256 MAC");

enum sign_alg sign_alg_of(const struct params *p)
{
    struct param_view v;
    if (params_find(p, "SignatureMethod", &v) && v.val_len == 10 &&
        memcmp(v.val, "HmacSHA256", 10) == 0)
        return SIGN_HMAC_SHA256;
    return SIGN_HMAC_SHA1;
}

static int cmp_key(const void *a, const void *b)
{
    const struct param_view *x = a, *y = b;
    /* Keys are printable ASCII without NUL: strcmp is byte order. */
    return strcmp(x->key, y->key);
}

/* The canonical parameter part. */
struct body {
    char *buf;    /* SIGN_PREFIX_MAX bytes of room, then the body, then NUL */
    size_t len;   /* body length */
};

static bool skipped(const struct param_view *e, unsigned flags)
{
    if (e->key_len == 9 && memcmp(e->key, "Signature", 9) == 0)
        return true;
    return (flags & SIGN_SKIP_AT_VALUES) && e->val_len > 0 && e->val[0] == '@';
}

static int body_build(const struct params *p, unsigned flags, struct body *b)
{
    size_t n = params_count(p);
    struct param_view sorted[CMQ_PARAMS_MAX];
    size_t m = 0, len = 0;
    for (size_t i = 0; i < n; i++) {
        params_at(p, i, &sorted[m]);
        if (skipped(&sorted[m], flags))
            continue;
        len += (m > 0) + sorted[m].key_len + 1 + sorted[m].val_len;
        m++;
    }
    qsort(sorted, m, sizeof(sorted[0]), cmp_key);
    b->buf = malloc(SIGN_PREFIX_MAX + len + 1);
    if (!b->buf)
        return CMQ_ENOMEM;
    char *w = b->buf + SIGN_PREFIX_MAX;
    for (size_t i = 0; i < m; i++) {
        if (i > 0)
            *w++ = '&';
        for (size_t k = 0; k < sorted[i].key_len; k++)
            *w++ = sorted[i].key[k] == '_' ? '.' : sorted[i].key[k];
        *w++ = '=';
        memcpy(w, sorted[i].val, sorted[i].val_len);
        w += sorted[i].val_len;
    }
    *w = '\0';
    b->len = len;
    assert((size_t)(w - (b->buf + SIGN_PREFIX_MAX)) == len);
    return CMQ_OK;
}

/* Writes the prefix for one host right before the body; returns its start
 * (the string to sign runs from there to the body's end), or NULL when a
 * part is too long. */
static char *prefix_put(struct body *b, const char *method, const char *host, const char *path)
{
    size_t ml = strlen(method), hl = strlen(host), pl = strlen(path);
    if (ml > SIGN_METHOD_LEN_MAX || hl > CMQ_HOST_LEN_MAX || pl > CMQ_PATH_LEN_MAX)
        return NULL;
    char *start = b->buf + SIGN_PREFIX_MAX - (ml + hl + pl + 1);
    memcpy(start, method, ml);
    memcpy(start + ml, host, hl);
    memcpy(start + ml + hl, path, pl);
    start[ml + hl + pl] = '?';
    return start;
}

int sign_canonical(const struct params *p, const char *method, const char *host,
                   const char *path, unsigned flags, char **out, size_t *out_len)
{
    struct body b;
    int rc = body_build(p, flags, &b);
    if (rc != CMQ_OK)
        return rc;
    char *start = prefix_put(&b, method, host, path);
    if (!start) {
        free(b.buf);
        return CMQ_EINVAL;
    }
    size_t len = (size_t)(b.buf + SIGN_PREFIX_MAX - start) + b.len;
    memmove(b.buf, start, len + 1);
    *out = b.buf;
    *out_len = len;
    return CMQ_OK;
}

/* The base64 MAC of the string to sign starting at `start`. */
static int mac_b64(const struct body *b, const char *start, enum sign_alg alg, const void *key,
                   size_t key_len, char out[SIGN_B64_MAX])
{
    uint8_t mac[CRYPTO_MAX_DIGEST];
    size_t len = (size_t)(b->buf + SIGN_PREFIX_MAX - start) + b->len;
    int n = crypto_hmac(alg == SIGN_HMAC_SHA256 ? CRYPTO_SHA256 : CRYPTO_SHA1, key, key_len,
                        start, len, mac);
    if (n < 0)
        return CMQ_EINTERNAL;
    if (base64_encode(mac, (size_t)n, out, SIGN_B64_MAX) < 0)
        return CMQ_EINTERNAL;
    return CMQ_OK;
}

int sign_compute(const struct params *p, const char *method, const char *host,
                 const char *path, unsigned flags, enum sign_alg alg, const void *key,
                 size_t key_len, char out[SIGN_B64_MAX])
{
    struct body b;
    int rc = body_build(p, flags, &b);
    if (rc != CMQ_OK)
        return rc;
    char *start = prefix_put(&b, method, host, path);
    rc = start ? mac_b64(&b, start, alg, key, key_len, out) : CMQ_EINVAL;
    free(b.buf);
    return rc;
}

int sign_client_request(struct params *p, const char *method, const char *host,
                        const char *path, enum sign_alg alg, const void *key, size_t key_len,
                        struct cmq_fault *fault)
{
    if (!params_find(p, "SignatureMethod", NULL)) {
        const char *m = alg == SIGN_HMAC_SHA256 ? "HmacSHA256" : "HmacSHA1";
        int rc = params_add(p, "SignatureMethod", m, strlen(m), fault);
        if (rc != CMQ_OK)
            return rc;
    }
    char sig[SIGN_B64_MAX];
    int rc = sign_compute(p, method, host, path, 0, alg, key, key_len, sig);
    if (rc != CMQ_OK)
        return cmq_fault_set(fault, CMQERR_INTERNAL, NULL, rc);
    return params_add(p, "Signature", sig, strlen(sig), fault);
}

/* ---- verification ---- */

static bool any_at_value(const struct params *p)
{
    size_t n = params_count(p);
    for (size_t i = 0; i < n; i++) {
        struct param_view v;
        params_at(p, i, &v);
        if (v.val_len > 0 && v.val[0] == '@')
            return true;
    }
    return false;
}

/* Tries every candidate host for one variant; CMQ_OK on a match, CMQ_EAUTH
 * when none matches, CMQ_EINVAL / CMQ_ENOMEM / CMQ_EINTERNAL. */
static int try_variant(const struct params *p, const struct sign_request *req, unsigned flags,
                       enum sign_alg alg, const void *key, size_t key_len,
                       const struct param_view *sig)
{
    struct body b;
    int rc = body_build(p, flags, &b);
    if (rc != CMQ_OK)
        return rc;
    /* A candidate that is too long is skipped (the Host header is the
     * client's; the alternates may still fit); none usable is EINVAL. */
    rc = CMQ_EINVAL;
    for (size_t h = 0; h < req->n_hosts && rc != CMQ_OK; h++) {
        char *start = prefix_put(&b, req->method, req->hosts[h], req->path);
        if (!start)
            continue;
        rc = CMQ_EAUTH;
        char mine[SIGN_B64_MAX];
        int m = mac_b64(&b, start, alg, key, key_len, mine);
        if (m != CMQ_OK) {
            rc = m;
            break;
        }
        /* The length of a signature is not secret; its bytes are. */
        if (strlen(mine) == sig->val_len && crypto_memcmp(mine, sig->val, sig->val_len) == 0)
            rc = CMQ_OK;
    }
    free(b.buf);
    return rc;
}

int sign_verify(const struct params *p, const struct sign_request *req, const void *key,
                size_t key_len, struct cmq_fault *fault)
{
    assert(req->n_hosts >= 1);
    struct param_view sig, secret_id;
    uint64_t ts, nonce;
    int rc;
    if (!params_find(p, "Signature", &sig) || sig.val_len == 0)
        return cmq_fault_set(fault, CMQERR_MISSING_PARAM, "Signature", CMQ_ENOTFOUND);
    if (!params_find(p, "SecretId", &secret_id) || secret_id.val_len == 0)
        return cmq_fault_set(fault, CMQERR_MISSING_PARAM, "SecretId", CMQ_ENOTFOUND);
    rc = params_get_uint(p, "Timestamp", UINT64_MAX, &ts, fault);
    if (rc != CMQ_OK)
        return rc;
    rc = params_get_uint(p, "Nonce", UINT64_MAX, &nonce, fault);
    if (rc != CMQ_OK)
        return rc;

    if (req->window_s > 0) {
        uint64_t skew = ts > req->now_s ? ts - req->now_s : req->now_s - ts;
        if (skew > req->window_s)
            return cmq_fault_set(fault, CMQERR_REQUEST_EXPIRED, NULL, CMQ_EAUTH);
    }

    enum sign_alg alg = sign_alg_of(p);
    rc = try_variant(p, req, 0, alg, key, key_len, &sig);
    if (rc == CMQ_EAUTH && strcmp(req->method, "POST") == 0 && any_at_value(p))
        rc = try_variant(p, req, SIGN_SKIP_AT_VALUES, alg, key, key_len, &sig);
    switch (rc) {
    case CMQ_OK:
        break;
    case CMQ_EAUTH:
        return cmq_fault_set(fault, CMQERR_AUTH_FAILED, NULL, CMQ_EAUTH);
    case CMQ_EINVAL:
        return cmq_fault_set(fault, CMQERR_INVALID_REQUEST, NULL, CMQ_EINVAL);
    default:
        return cmq_fault_set(fault, CMQERR_INTERNAL, NULL, rc);
    }

    if (req->nonces) {
        rc = nonce_cache_check(req->nonces, secret_id.val, secret_id.val_len, nonce, ts,
                               req->now_s);
        if (rc == CMQ_EEXIST)
            return cmq_fault_set(fault, CMQERR_REPLAYED, NULL, CMQ_EAUTH);
        if (rc != CMQ_OK)
            return cmq_fault_set(fault, CMQERR_REPLAYED, NULL, rc);
    }
    return CMQ_OK;
}

int sign_host_toggle_port(const char *host, unsigned port, char *out, size_t cap)
{
    /* The port separator is the last ':' after any "]" of an IPv6 literal;
     * a bare IPv6 address (more than one ':' and no brackets) has no port. */
    const char *colon = strrchr(host, ':');
    const char *bracket = strrchr(host, ']');
    bool has_port = colon && (!bracket || colon > bracket) &&
                    (host[0] == '[' || strchr(host, ':') == colon) && colon[1] != '\0';
    if (has_port) {
        for (const char *d = colon + 1; *d; d++)
            if (*d < '0' || *d > '9')
                has_port = false;
    }
    int n;
    if (has_port)
        n = snprintf(out, cap, "%.*s", (int)(colon - host), host);
    else
        n = snprintf(out, cap, "%s:%u", host, port);
    if (n < 0 || (size_t)n >= cap)
        return -1;
    return n;
}

/* ---- nonce cache ---- */

#define NONCE_PROBE_MAX 64

struct nonce_slot {
    uint64_t hash;      /* 0 = never used */
    uint64_t expires_s; /* free again once now passes this */
};

struct nonce_cache {
    size_t mask;
    uint32_t window_s;
    uint64_t seed;
    struct nonce_slot slots[];
};

struct nonce_cache *nonce_cache_create(size_t capacity, uint32_t window_s, uint64_t seed)
{
    assert(capacity > 0 && window_s > 0);
    size_t n = 64;
    while (n < capacity * 2) {
        if (n > SIZE_MAX / 4 / sizeof(struct nonce_slot))
            return NULL;
        n *= 2;
    }
    struct nonce_cache *c = calloc(1, sizeof(*c) + n * sizeof(struct nonce_slot));
    if (!c)
        return NULL;
    c->mask = n - 1;
    c->window_s = window_s;
    c->seed = seed;
    return c;
}

void nonce_cache_destroy(struct nonce_cache *c) { free(c); }

static uint64_t triple_hash(uint64_t seed, const char *id, size_t id_len, uint64_t nonce,
                            uint64_t ts)
{
    uint64_t h = hash_splitmix64(seed ^ 0x9e3779b97f4a7c15ULL);
    for (size_t i = 0; i < id_len; i++)
        h = hash_splitmix64(h ^ (uint8_t)id[i]);
    h = hash_splitmix64(h ^ (uint64_t)id_len);
    h = hash_splitmix64(h ^ nonce);
    h = hash_splitmix64(h ^ ts);
    return h ? h : 1;
}

int nonce_cache_check(struct nonce_cache *c, const char *secret_id, size_t secret_id_len,
                      uint64_t nonce, uint64_t timestamp_s, uint64_t now_s)
{
    uint64_t h = triple_hash(c->seed, secret_id, secret_id_len, nonce, timestamp_s);
    /* Remember until no request with this timestamp can pass the window. */
    uint64_t expires = (timestamp_s > now_s ? timestamp_s : now_s) + c->window_s;
    struct nonce_slot *free_slot = NULL;
    for (size_t i = 0; i < NONCE_PROBE_MAX; i++) {
        struct nonce_slot *s = &c->slots[(h + i) & c->mask];
        bool live = s->hash != 0 && s->expires_s >= now_s;
        if (live && s->hash == h)
            return CMQ_EEXIST;
        if (!live && !free_slot)
            free_slot = s;
    }
    if (!free_slot)
        return CMQ_ELIMIT;
    free_slot->hash = h;
    free_slot->expires_s = expires;
    return CMQ_OK;
}

/* ---- the CMQ TCP protocol's auth frame (cmq-tcp-protocol.md §6.2) ---- */

int sign_alg_from_name(const char *name, enum sign_alg *alg)
{
    if (strcmp(name, "HmacSHA1") == 0)
        *alg = SIGN_HMAC_SHA1;
    else if (strcmp(name, "HmacSHA256") == 0)
        *alg = SIGN_HMAC_SHA256;
    else
        return CMQ_EINVAL;
    return CMQ_OK;
}

int sign_tcp_auth(const char *client_id, const char *secret_id, enum sign_alg alg,
                  const void *key, size_t key_len, char out[SIGN_B64_MAX])
{
    size_t a = strlen(client_id), b = strlen(secret_id);
    char *msg = malloc(a + b + 1);
    if (!msg)
        return CMQ_ENOMEM;
    memcpy(msg, client_id, a);
    memcpy(msg + a, secret_id, b);
    uint8_t mac[CRYPTO_MAX_DIGEST];
    int n = crypto_hmac(alg == SIGN_HMAC_SHA256 ? CRYPTO_SHA256 : CRYPTO_SHA1, key, key_len, msg,
                        a + b, mac);
    free(msg);
    if (n < 0 || base64_encode(mac, (size_t)n, out, SIGN_B64_MAX) < 0)
        return CMQ_EINTERNAL;
    return CMQ_OK;
}
