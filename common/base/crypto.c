/* crypto.c: OpenSSL-backed primitives; see crypto.h. */
#include "crypto.h"

#include "status.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <string.h>

int crypto_hmac(enum crypto_hash alg, const void *key, size_t key_len, const void *data,
                size_t data_len, uint8_t out[CRYPTO_MAX_DIGEST])
{
    const EVP_MD *md = alg == CRYPTO_SHA1 ? EVP_sha1() : alg == CRYPTO_SHA256 ? EVP_sha256() : NULL;
    if (!md || key_len > INT32_MAX)
        return -1;
    unsigned int n = 0;
    if (!HMAC(md, key, (int)key_len, data, data_len, out, &n))
        return -1;
    return (int)n;
}

void crypto_sha256(const void *data, size_t len, uint8_t out[32])
{
    unsigned int n = 32;
    EVP_Digest(data, len, out, &n, EVP_sha256(), NULL);
}

int crypto_random(void *buf, size_t len)
{
    if (len > INT32_MAX || RAND_bytes(buf, (int)len) != 1)
        return CMQ_EINTERNAL;
    return CMQ_OK;
}

long base64_encode(const void *data, size_t len, char *out, size_t out_cap)
{
    if (out_cap < BASE64_ENCODED_LEN(len) + 1 || len > INT32_MAX / 2)
        return -1;
    return EVP_EncodeBlock((unsigned char *)out, data, (int)len);
}

static int b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

long base64_decode(const char *in, size_t in_len, void *out, size_t out_cap)
{
    /* Written by hand rather than EVP_DecodeBlock, which accepts whitespace and
     * reports padding bytes as data. */
    if (in_len % 4)
        return -1;
    unsigned char *o = out;
    size_t n = 0;
    for (size_t i = 0; i < in_len; i += 4) {
        int v[4];
        int pad = 0;
        for (int k = 0; k < 4; k++) {
            unsigned char c = (unsigned char)in[i + k];
            if (c == '=' && i + 4 == in_len && k >= 2) {
                v[k] = 0;
                pad++;
            } else {
                if (pad)
                    return -1; /* data after padding */
                v[k] = b64_value(c);
                if (v[k] < 0)
                    return -1;
            }
        }
        uint32_t w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
        int bytes = 3 - pad;
        if (n + (size_t)bytes > out_cap)
            return -1;
        o[n++] = (unsigned char)(w >> 16);
        if (bytes > 1)
            o[n++] = (unsigned char)(w >> 8);
        if (bytes > 2)
            o[n++] = (unsigned char)w;
    }
    return (long)n;
}

int crypto_memcmp(const void *a, const void *b, size_t len)
{
    return CRYPTO_memcmp(a, b, len);
}

void hex_encode(const void *data, size_t len, char *out)
{
    static const char digits[] = "0123456789abcdef";
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * len] = '\0';
}
