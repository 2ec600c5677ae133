/* Tests for common/base/crypto.c: HMAC (RFC 2202, RFC 4231), base64 (RFC 4648). */
#include "crypto.h"
#include "status.h"

#include <criterion/criterion.h>
#include <string.h>

static void hmac_hex(enum crypto_hash alg, const char *key, const char *data, char *hex)
{
    uint8_t out[CRYPTO_MAX_DIGEST];
    int n = crypto_hmac(alg, key, strlen(key), data, strlen(data), out);
    cr_assert_gt(n, 0);
    hex_encode(out, (size_t)n, hex);
}

Test(crypto, hmac_sha1_rfc2202_case2)
{
    char hex[129];
    hmac_hex(CRYPTO_SHA1, "Jefe", "what do ya want for nothing?", hex);
    cr_assert_str_eq(hex, "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79");
}

Test(crypto, hmac_sha256_rfc4231_case2)
{
    char hex[129];
    hmac_hex(CRYPTO_SHA256, "Jefe", "what do ya want for nothing?", hex);
    cr_assert_str_eq(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

Test(crypto, base64_rfc4648_vectors_both_ways)
{
    static const char *const plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *const enc[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    for (int i = 0; i < 7; i++) {
        char out[32];
        cr_assert_eq(base64_encode(plain[i], strlen(plain[i]), out, sizeof out), (long)strlen(enc[i]));
        cr_assert_str_eq(out, enc[i]);
        char dec[32];
        long n = base64_decode(enc[i], strlen(enc[i]), dec, sizeof dec);
        cr_assert_eq(n, (long)strlen(plain[i]));
        cr_assert_arr_eq(dec, plain[i], (size_t)n);
    }
}

Test(crypto, base64_rejects_malformed)
{
    static const char *const bad[] = {"Zg=", "Z===", "Zm9v!A==", "Zg==Zg==", "Zm 9v", "=Zg="};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char dec[32];
        cr_assert_eq(base64_decode(bad[i], strlen(bad[i]), dec, sizeof dec), -1, "%s", bad[i]);
    }
    char small[2];
    cr_assert_eq(base64_decode("Zm9v", 4, small, sizeof small), -1, "short output buffer");
    char out[4];
    cr_assert_eq(base64_encode("foo", 3, out, sizeof out), -1, "no room for the NUL");
}

Test(crypto, random_bytes_differ)
{
    uint8_t a[32], b[32];
    cr_assert_eq(crypto_random(a, sizeof a), CMQ_OK);
    cr_assert_eq(crypto_random(b, sizeof b), CMQ_OK);
    cr_assert_neq(memcmp(a, b, sizeof a), 0);
    cr_assert_eq(crypto_memcmp(a, a, sizeof a), 0);
}
