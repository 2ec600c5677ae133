/* sign.h: CMQ request signatures (spec §4), server and client side.
 *
 * The string to sign is METHOD HOST PATH "?" k=v&k=v... over every parameter
 * except Signature, sorted by name in byte order as sent, then with every
 * `_` in a name replaced by `.`; values raw (decoded), names and values
 * unescaped (§4.1).  It is built from the decoded parameter list, never from
 * the raw request.  The MAC is HMAC-SHA256 when SignatureMethod is exactly
 * "HmacSHA256" and HMAC-SHA1 otherwise; Signature is its standard base64.
 *
 * Verification (sign_verify) checks, in this order, cheapest first: the
 * Timestamp window, the signature against each candidate host (the Host
 * header first, then the caller's alternates: the same host with the port
 * added or removed, configured canonical names; §4.2), with the Python SDK's
 * POST "@" quirk as a second variant; and last, when a nonce cache is given,
 * that (SecretId, Nonce, Timestamp) was not seen before.  The nonce is
 * recorded only after the signature is good, so unsigned junk cannot fill the
 * cache.  Replay protection is off unless the caller passes a cache
 * (DESIGN §7: the C++ SDK repeats nonces within one second).
 *
 * Nothing here logs, reads the clock or looks up keys: the caller finds the
 * secret key for SecretId, passes `now`, and logs the outcome with the key id.
 */
#ifndef CMQ_GWAPI_SIGN_H
#define CMQ_GWAPI_SIGN_H

#include <stddef.h>
#include <stdint.h>

#include "cmq_error.h"

struct params;

enum sign_alg { SIGN_HMAC_SHA1 = 1, SIGN_HMAC_SHA256 = 2 };

/* Room for a base64 signature with its NUL (44 characters for SHA-256). */
#define SIGN_B64_MAX 48

/* Leave out parameters whose value starts with '@' (the Python SDK does so
 * for POST, §4.2). */
#define SIGN_SKIP_AT_VALUES 1u

/* The algorithm the request's SignatureMethod selects. */
enum sign_alg sign_alg_of(const struct params *p);

/* Builds the string to sign.  `method`, `host`, `path` are borrowed and must
 * be at most 7, CMQ_HOST_LEN_MAX and CMQ_PATH_LEN_MAX bytes.  On CMQ_OK,
 * *out is a malloc'd NUL-terminated string the caller frees and *out_len its
 * length.  Returns CMQ_EINVAL for an over-long method/host/path, CMQ_ENOMEM. */
int sign_canonical(const struct params *p, const char *method, const char *host,
                   const char *path, unsigned flags, char **out, size_t *out_len);

/* Computes the base64 signature of the request `p` (its Signature parameter,
 * if any, is ignored) into `out` with `alg` under `key` (borrowed).
 * Returns CMQ_OK, CMQ_EINVAL, CMQ_ENOMEM or CMQ_EINTERNAL (HMAC failure). */
int sign_compute(const struct params *p, const char *method, const char *host,
                 const char *path, unsigned flags, enum sign_alg alg, const void *key,
                 size_t key_len, char out[SIGN_B64_MAX]);

/* Client side: signs `p` like the SDKs do (adds SignatureMethod first when
 * absent, then computes and adds Signature).  Afterwards params_encode(p)
 * gives the query string or POST body.  Returns as sign_compute or
 * params_add; `fault` may be NULL. */
int sign_client_request(struct params *p, const char *method, const char *host,
                        const char *path, enum sign_alg alg, const void *key, size_t key_len,
                        struct cmq_fault *fault);

/* Replay protection: remembers (SecretId, Nonce, Timestamp) until Timestamp
 * + window_s has passed.  A fixed table sized at creation; probes are
 * bounded, so a full neighbourhood rejects (CMQ_ELIMIT) rather than grows.
 * Not thread-safe: one per event loop (a replay to another loop then passes)
 * or one behind a lock.  `seed` keys the hash against chosen collisions. */
struct nonce_cache;
/* Returns NULL when out of memory.  capacity > 0; window_s > 0. */
struct nonce_cache *nonce_cache_create(size_t capacity, uint32_t window_s, uint64_t seed);
/* Accepts NULL. */
void nonce_cache_destroy(struct nonce_cache *c);
/* Records the triple; CMQ_OK when new, CMQ_EEXIST when seen and not yet
 * expired, CMQ_ELIMIT when no slot is free near its home.  `secret_id`
 * borrowed. */
int nonce_cache_check(struct nonce_cache *c, const char *secret_id, size_t secret_id_len,
                      uint64_t nonce, uint64_t timestamp_s, uint64_t now_s);

/* What the server knows about one request besides its parameters. */
struct sign_request {
    const char *method;       /* "GET" or "POST", as received */
    const char *const *hosts; /* candidates, hosts[0] = Host header; borrowed */
    size_t n_hosts;           /* >= 1 */
    const char *path;         /* request path without the query string */
    uint64_t now_s;           /* the server's wall clock, Unix seconds */
    uint32_t window_s;        /* allowed |now - Timestamp|; 0 = not checked */
    struct nonce_cache *nonces; /* NULL = replay protection off (default) */
};

/* Verifies the request `p` under `key` (the SecretId's secret key, borrowed).
 * Returns CMQ_OK, or with `fault` (may be NULL) filled:
 *   CMQ_ENOTFOUND  Signature, Timestamp, Nonce or SecretId missing (10390);
 *   CMQ_EINVAL     Timestamp or Nonce not an unsigned integer (10360/10350),
 *                  or a host/path too long (10000);
 *   CMQ_EAUTH      timestamp outside the window (REQUEST_EXPIRED), no
 *                  candidate matches (AUTH_FAILED), nonce replayed (REPLAYED);
 *   CMQ_ELIMIT     the nonce cache is full here (REPLAYED: refuse rather than
 *                  forget);
 *   CMQ_ENOMEM / CMQ_EINTERNAL (INTERNAL). */
int sign_verify(const struct params *p, const struct sign_request *req, const void *key,
                size_t key_len, struct cmq_fault *fault);

/* Writes `host` with its port toggled into `out` (borrowed, `cap` bytes):
 * "h:8080" -> "h", and "h" -> "h:<port>".  Bracketed IPv6 literals are
 * handled ("[::1]:80" -> "[::1]").  Returns the length, or -1 when it does
 * not fit.  The gateway passes this as the second candidate host. */
int sign_host_toggle_port(const char *host, unsigned port, char *out, size_t cap);

/* The CMQ TCP protocol's auth frame (cmq-tcp-protocol.md §6.2): the
 * algorithm named exactly "HmacSHA1" or "HmacSHA256" (else CMQ_EINVAL), and
 * the signature Base64(HMAC(key, client_id + secret_id)) into `out`.
 * Returns CMQ_OK, CMQ_ENOMEM or CMQ_EINTERNAL.  Used by the gateway's TCP
 * listener to verify and by libcmq to sign. */
int sign_alg_from_name(const char *name, enum sign_alg *alg);
int sign_tcp_auth(const char *client_id, const char *secret_id, enum sign_alg alg,
                  const void *key, size_t key_len, char out[SIGN_B64_MAX]);

#endif
