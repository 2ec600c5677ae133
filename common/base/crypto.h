/* crypto.h: HMAC, SHA-256, base64 and random bytes, all from OpenSSL 3.
 *
 * OpenSSL is the one TLS/crypto library in every process (Debian's h2o is
 * linked against it).  Nothing here allocates on the caller's behalf.
 */
#ifndef CMQ_BASE_CRYPTO_H
#define CMQ_BASE_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

enum crypto_hash { CRYPTO_SHA1 = 1, CRYPTO_SHA256 = 2 };

#define CRYPTO_MAX_DIGEST 64

/* HMAC of `data` under `key` (both borrowed) into `out` (CRYPTO_MAX_DIGEST
 * bytes); returns the digest length (20 or 32), or -1 on failure. */
int crypto_hmac(enum crypto_hash alg, const void *key, size_t key_len, const void *data,
                size_t data_len, uint8_t out[CRYPTO_MAX_DIGEST]);

/* SHA-256 of `data` into `out` (32 bytes). */
void crypto_sha256(const void *data, size_t len, uint8_t out[32]);

/* Fills `buf` with `len` bytes from OpenSSL's CSPRNG; returns 0 or CMQ_EINTERNAL. */
int crypto_random(void *buf, size_t len);

/* The encoded length of `len` bytes, without the terminating NUL. */
#define BASE64_ENCODED_LEN(len) ((((len) + 2) / 3) * 4)

/* Standard base64 (with padding) of `len` bytes into `out`, NUL-terminated;
 * `out_cap` must be at least BASE64_ENCODED_LEN(len) + 1.  Returns the length
 * written (without NUL), or -1 when out_cap is too small. */
long base64_encode(const void *data, size_t len, char *out, size_t out_cap);

/* Decodes standard base64 (padding required; no whitespace) into `out`.
 * Returns the decoded length, or -1 for malformed input or a short buffer. */
long base64_decode(const char *in, size_t in_len, void *out, size_t out_cap);

/* Constant-time comparison; returns 0 when equal. */
int crypto_memcmp(const void *a, const void *b, size_t len);

/* Lower-case hex of `len` bytes into `out` (2*len+1 bytes). */
void hex_encode(const void *data, size_t len, char *out);

#endif
