/* test_sign.c: services/gateway/cmqapi/sign.c against spec §4.
 *
 * Every worked example of §4.3 is checked byte for byte: the string to sign
 * and the signature, from parameters added one by one and from the raw body
 * or query the SDK sends; then the server side (verification, host
 * fallback, the Python "@" quirk, the timestamp window, replay protection)
 * and the client side (sign_client_request round trip).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "params.h"
#include "sign.h"
#include "status.h"

#define KEY "ExampleSecretKeyForCmqSpec0123456"
#define HOST "cmq-queue-gz.api.qcloud.com"
#define PATH "/v2/index.php"

static const char *const example_a_body =
    "Action=SendMessage&Nonce=2889712707&RequestClient=SDK_Python_1.3&SecretId="
    "AKIDexampleSecretId0000000000000000&SignatureMethod=HmacSHA1&Timestamp=1534154812&"
    "delaySeconds=0&msgBody=hello+world%2F%2B%26%3D&queueName=test-queue-1&Signature="
    "NtLR40c8Vt6faGzZpsJDwDrKXSg%3D";

static const char *const example_b_query =
    "Action=SendMessage&Nonce=2889712707&RequestClient=SDK_Python_1.3&SecretId="
    "AKIDexampleSecretId0000000000000000&SignatureMethod=HmacSHA1&Timestamp=1534154812&"
    "delaySeconds=0&msgBody=hello+world%2F%2B%26%3D&queueName=test-queue-1&Signature="
    "cmSorbsfCWW5bJY%2BbajAWBat5tM%3D";

static const char *const canonical_ab_tail =
    "cmq-queue-gz.api.qcloud.com/v2/index.php?Action=SendMessage&Nonce=2889712707&"
    "RequestClient=SDK_Python_1.3&SecretId=AKIDexampleSecretId0000000000000000&"
    "SignatureMethod=HmacSHA1&Timestamp=1534154812&delaySeconds=0&msgBody=hello world/+&=&"
    "queueName=test-queue-1";

static const char *const canonical_d =
    "POSTlocalhost:8080/v2/index.php?Action=BatchSendMessage&Nonce=12345&RequestClient="
    "SDK_JAVA_1.3&SecretId=AKIDexampleSecretId0000000000000000&SignatureMethod=HmacSHA256&"
    "Timestamp=1700000000&delaySeconds=0&msgBody.1=m1&msgBody.10=m10&msgBody.11=m11&"
    "msgBody.2=m2&msgBody.3=h\xC3\xA9llo \xE4\xB8\x96\xE7\x95\x8C&msgBody.4=m4&msgBody.5=m5&"
    "msgBody.6=m6&msgBody.7=m7&msgBody.8=m8&msgBody.9=m9&queueName=q1";

static void add(struct params *p, const char *k, const char *v)
{
    struct cmq_fault f;
    cr_assert_eq(params_add(p, k, v, strlen(v), &f), CMQ_OK, "add %s", k);
}

/* The parameters of examples A-C, in a deliberately unsorted order. */
static struct params *example_abc(const char *method_name)
{
    struct params *p = params_create();
    cr_assert_not_null(p);
    add(p, "queueName", "test-queue-1");
    add(p, "msgBody", "hello world/+&=");
    add(p, "Timestamp", "1534154812");
    add(p, "SignatureMethod", method_name);
    add(p, "Action", "SendMessage");
    add(p, "delaySeconds", "0");
    add(p, "Nonce", "2889712707");
    add(p, "SecretId", "AKIDexampleSecretId0000000000000000");
    add(p, "RequestClient", "SDK_Python_1.3");
    return p;
}

static struct params *example_d(void)
{
    struct params *p = params_create();
    add(p, "Action", "BatchSendMessage");
    add(p, "Nonce", "12345");
    add(p, "RequestClient", "SDK_JAVA_1.3");
    add(p, "SecretId", "AKIDexampleSecretId0000000000000000");
    add(p, "SignatureMethod", "HmacSHA256");
    add(p, "Timestamp", "1700000000");
    add(p, "queueName", "q1");
    add(p, "delaySeconds", "0");
    for (int i = 1; i <= 11; i++) {
        char k[16], v[16];
        snprintf(k, sizeof(k), "msgBody.%d", i);
        snprintf(v, sizeof(v), "m%d", i);
        add(p, k, i == 3 ? "h\xC3\xA9llo \xE4\xB8\x96\xE7\x95\x8C" : v);
    }
    return p;
}

static void expect_canonical(struct params *p, const char *method, const char *host,
                             const char *expected)
{
    char *s = NULL;
    size_t len = 0;
    cr_assert_eq(sign_canonical(p, method, host, PATH, 0, &s, &len), CMQ_OK);
    cr_assert_eq(len, strlen(expected), "length %zu vs %zu", len, strlen(expected));
    cr_assert(memcmp(s, expected, len) == 0, "string to sign:\n%s\nexpected:\n%s", s, expected);
    cr_assert_eq(s[len], '\0');
    free(s);
}

static void expect_signature(struct params *p, const char *method, const char *host,
                             enum sign_alg alg, const char *expected)
{
    char sig[SIGN_B64_MAX];
    cr_assert_eq(sign_compute(p, method, host, PATH, 0, alg, KEY, strlen(KEY), sig), CMQ_OK);
    cr_assert_str_eq(sig, expected);
}

static int verify(struct params *p, const char *method, const char *host, uint64_t now,
                  uint32_t window, struct cmq_fault *f)
{
    const char *hosts[] = {host};
    struct sign_request req = {.method = method, .hosts = hosts, .n_hosts = 1, .path = PATH,
                               .now_s = now, .window_s = window};
    return sign_verify(p, &req, KEY, strlen(KEY), f);
}

Test(sign_examples, a_post_sha1_canonical_and_signature)
{
    struct params *p = example_abc("HmacSHA1");
    char expected[1024];
    snprintf(expected, sizeof(expected), "POST%s", canonical_ab_tail);
    expect_canonical(p, "POST", HOST, expected);
    cr_assert_eq(sign_alg_of(p), SIGN_HMAC_SHA1);
    expect_signature(p, "POST", HOST, SIGN_HMAC_SHA1, "NtLR40c8Vt6faGzZpsJDwDrKXSg=");
    params_destroy(p);
}

Test(sign_examples, a_body_as_python_sends_it_verifies)
{
    struct params *p = params_create();
    struct cmq_fault f;
    cr_assert_eq(params_parse(p, example_a_body, strlen(example_a_body), &f), CMQ_OK);
    char expected[1024];
    snprintf(expected, sizeof(expected), "POST%s", canonical_ab_tail);
    expect_canonical(p, "POST", HOST, expected); /* Signature is excluded */
    cr_assert_eq(verify(p, "POST", HOST, 1534154812, 7200, &f), CMQ_OK);
    /* The same body as a GET does not verify: the method is signed. */
    cr_assert_eq(verify(p, "GET", HOST, 1534154812, 7200, &f), CMQ_EAUTH);
    cr_assert_eq(f.err, CMQERR_AUTH_FAILED);
    params_destroy(p);
}

Test(sign_examples, b_get_sha1)
{
    struct params *p = example_abc("HmacSHA1");
    char expected[1024];
    snprintf(expected, sizeof(expected), "GET%s", canonical_ab_tail);
    expect_canonical(p, "GET", HOST, expected);
    expect_signature(p, "GET", HOST, SIGN_HMAC_SHA1, "cmSorbsfCWW5bJY+bajAWBat5tM=");
    params_destroy(p);

    /* The request target of example B, parsed as a query string. */
    p = params_create();
    struct cmq_fault f;
    cr_assert_eq(params_parse(p, example_b_query, strlen(example_b_query), &f), CMQ_OK);
    cr_assert_eq(verify(p, "GET", HOST, 1534154812, 0, &f), CMQ_OK);
    params_destroy(p);
}

Test(sign_examples, c_post_sha256)
{
    struct params *p = example_abc("HmacSHA256");
    cr_assert_eq(sign_alg_of(p), SIGN_HMAC_SHA256);
    expect_signature(p, "POST", HOST, SIGN_HMAC_SHA256,
                     "Gxa7s2yvl9U7yz42ru5261p3AYpn41az7zcpe0CnnFM=");
    add(p, "Signature", "Gxa7s2yvl9U7yz42ru5261p3AYpn41az7zcpe0CnnFM=");
    struct cmq_fault f;
    cr_assert_eq(verify(p, "POST", HOST, 1534154812, 7200, &f), CMQ_OK);
    params_destroy(p);
}

Test(sign_examples, d_batch_order_utf8_port_sha256)
{
    struct params *p = example_d();
    expect_canonical(p, "POST", "localhost:8080", canonical_d);
    expect_signature(p, "POST", "localhost:8080", SIGN_HMAC_SHA256,
                     "3+twGMETRpJXbrDf0zbLsh/GnM+nx8jgfcqmflURQuo=");
    params_destroy(p);
}

Test(sign_examples, d_from_the_wire)
{
    /* msgBody.3 travels as h%C3%A9llo+%E4%B8%96%E7%95%8C (§4.3 D). */
    const char *body =
        "Action=BatchSendMessage&Nonce=12345&RequestClient=SDK_JAVA_1.3&SecretId="
        "AKIDexampleSecretId0000000000000000&SignatureMethod=HmacSHA256&Timestamp=1700000000&"
        "queueName=q1&delaySeconds=0&msgBody.1=m1&msgBody.2=m2&"
        "msgBody.3=h%C3%A9llo+%E4%B8%96%E7%95%8C&msgBody.4=m4&msgBody.5=m5&msgBody.6=m6&"
        "msgBody.7=m7&msgBody.8=m8&msgBody.9=m9&msgBody.10=m10&msgBody.11=m11&Signature="
        "3%2BtwGMETRpJXbrDf0zbLsh%2FGnM%2Bnx8jgfcqmflURQuo%3D";
    struct params *p = params_create();
    struct cmq_fault f;
    cr_assert_eq(params_parse(p, body, strlen(body), &f), CMQ_OK);
    expect_canonical(p, "POST", "localhost:8080", canonical_d);
    cr_assert_eq(verify(p, "POST", "localhost:8080", 1700000100, 7200, &f), CMQ_OK);
    params_destroy(p);
}

Test(sign_canonical, underscore_becomes_dot_after_sorting)
{
    struct params *p = params_create();
    /* Sorted as sent: "a.c" < "a_b" (0x2E < 0x5F); then '_' -> '.'. */
    add(p, "a_b", "1");
    add(p, "a.c", "2");
    add(p, "Z", "3");
    char *s;
    size_t len;
    cr_assert_eq(sign_canonical(p, "GET", "h", "/", 0, &s, &len), CMQ_OK);
    cr_assert_str_eq(s, "GETh/?Z=3&a.c=2&a.b=1");
    free(s);
    params_destroy(p);
}

Test(sign_canonical, empty_request_and_limits)
{
    struct params *p = params_create();
    char *s;
    size_t len;
    cr_assert_eq(sign_canonical(p, "POST", "h:1", "/", 0, &s, &len), CMQ_OK);
    cr_assert_str_eq(s, "POSTh:1/?");
    free(s);
    char host[400];
    memset(host, 'h', sizeof(host) - 1);
    host[sizeof(host) - 1] = '\0';
    cr_assert_eq(sign_canonical(p, "POST", host, "/", 0, &s, &len), CMQ_EINVAL);
    cr_assert_eq(sign_canonical(p, "PROPFIND", "h", "/", 0, &s, &len), CMQ_EINVAL);
    params_destroy(p);
}

Test(sign_canonical, at_values_skipped_only_on_request)
{
    struct params *p = params_create();
    add(p, "msgBody", "@file");
    add(p, "Action", "SendMessage");
    char *s;
    size_t len;
    cr_assert_eq(sign_canonical(p, "POST", "h", "/", 0, &s, &len), CMQ_OK);
    cr_assert_str_eq(s, "POSTh/?Action=SendMessage&msgBody=@file");
    free(s);
    cr_assert_eq(sign_canonical(p, "POST", "h", "/", SIGN_SKIP_AT_VALUES, &s, &len), CMQ_OK);
    cr_assert_str_eq(s, "POSTh/?Action=SendMessage");
    free(s);
    params_destroy(p);
}

Test(sign_alg, only_the_literal_hmacsha256_selects_sha256)
{
    const char *sha1[] = {"HmacSHA1", "hmacsha256", "HMACSHA256", "HmacSHA256 ", "sha256", ""};
    for (size_t i = 0; i < sizeof(sha1) / sizeof(sha1[0]); i++) {
        struct params *p = params_create();
        add(p, "SignatureMethod", sha1[i]);
        cr_assert_eq(sign_alg_of(p), SIGN_HMAC_SHA1, "%s", sha1[i]);
        params_destroy(p);
    }
    struct params *p = params_create();
    cr_assert_eq(sign_alg_of(p), SIGN_HMAC_SHA1, "absent means SHA-1");
    params_destroy(p);
}

/* A signed example-A request whose Timestamp and one other value we choose. */
static struct params *signed_request(const char *method, const char *host, const char *ts,
                                     enum sign_alg alg)
{
    struct params *p = params_create();
    add(p, "Action", "SendMessage");
    add(p, "Nonce", "7");
    add(p, "SecretId", "AKIDexampleSecretId0000000000000000");
    add(p, "Timestamp", ts);
    add(p, "queueName", "q1");
    add(p, "msgBody", "body & more = \xE4\xB8\x96");
    struct cmq_fault f;
    cr_assert_eq(sign_client_request(p, method, host, PATH, alg, KEY, strlen(KEY), &f), CMQ_OK);
    return p;
}

/* Encodes `p` and parses it back, as the server would receive it. */
static struct params *over_the_wire(const struct params *p)
{
    size_t n = params_encode(p, NULL, 0);
    char *buf = malloc(n + 1);
    cr_assert_eq(params_encode(p, buf, n + 1), n);
    struct params *q = params_create();
    struct cmq_fault f;
    cr_assert_eq(params_parse(q, buf, n, &f), CMQ_OK, "%s", buf);
    free(buf);
    return q;
}

Test(sign_client, round_trip_both_algorithms_both_methods)
{
    const char *methods[] = {"GET", "POST"};
    enum sign_alg algs[] = {SIGN_HMAC_SHA1, SIGN_HMAC_SHA256};
    for (int m = 0; m < 2; m++) {
        for (int a = 0; a < 2; a++) {
            struct params *p = signed_request(methods[m], "localhost:8080", "1000", algs[a]);
            cr_assert_eq(sign_alg_of(p), algs[a]);
            struct params *q = over_the_wire(p);
            struct cmq_fault f;
            cr_assert_eq(verify(q, methods[m], "localhost:8080", 1000, 7200, &f), CMQ_OK);
            cr_assert_eq(verify(q, methods[1 - m], "localhost:8080", 1000, 7200, &f), CMQ_EAUTH);
            params_destroy(q);
            params_destroy(p);
        }
    }
}

Test(sign_verify, tampering_any_value_fails)
{
    struct params *p = signed_request("POST", "h", "1000", SIGN_HMAC_SHA1);
    size_t n = params_encode(p, NULL, 0);
    char *buf = malloc(n + 1);
    params_encode(p, buf, n + 1);
    char *at = strstr(buf, "queueName=q1");
    cr_assert_not_null(at);
    at[11] = '2';
    struct params *q = params_create();
    struct cmq_fault f;
    cr_assert_eq(params_parse(q, buf, n, &f), CMQ_OK);
    cr_assert_eq(verify(q, "POST", "h", 1000, 0, &f), CMQ_EAUTH);
    cr_assert_eq(f.err, CMQERR_AUTH_FAILED);
    params_destroy(q);
    free(buf);
    params_destroy(p);
}

Test(sign_verify, wrong_key_path_or_host_fails)
{
    struct params *p = signed_request("POST", "h:80", "1000", SIGN_HMAC_SHA256);
    const char *hosts[] = {"h:80"};
    struct sign_request req = {.method = "POST", .hosts = hosts, .n_hosts = 1, .path = PATH,
                               .now_s = 1000};
    struct cmq_fault f;
    cr_assert_eq(sign_verify(p, &req, KEY, strlen(KEY), &f), CMQ_OK);
    cr_assert_eq(sign_verify(p, &req, "other", 5, &f), CMQ_EAUTH);
    req.path = "/";
    cr_assert_eq(sign_verify(p, &req, KEY, strlen(KEY), &f), CMQ_EAUTH);
    req.path = PATH;
    hosts[0] = "h";
    cr_assert_eq(sign_verify(p, &req, KEY, strlen(KEY), &f), CMQ_EAUTH);
    params_destroy(p);
}

Test(sign_verify, host_fallback_with_toggled_port)
{
    /* The client signed "h:80"; its HTTP library sent "Host: h". */
    struct params *p = signed_request("POST", "h:80", "1000", SIGN_HMAC_SHA1);
    char alt[300];
    cr_assert_eq(sign_host_toggle_port("h", 80, alt, sizeof(alt)), 4);
    cr_assert_str_eq(alt, "h:80");
    const char *hosts[] = {"h", alt};
    struct sign_request req = {.method = "POST", .hosts = hosts, .n_hosts = 2, .path = PATH,
                               .now_s = 1000};
    struct cmq_fault f;
    cr_assert_eq(sign_verify(p, &req, KEY, strlen(KEY), &f), CMQ_OK);
    params_destroy(p);
}

Test(sign_host, toggle_port)
{
    char out[64];
    cr_assert_eq(sign_host_toggle_port("localhost:8080", 80, out, sizeof(out)), 9);
    cr_assert_str_eq(out, "localhost");
    sign_host_toggle_port("localhost", 8080, out, sizeof(out));
    cr_assert_str_eq(out, "localhost:8080");
    sign_host_toggle_port("[::1]:8080", 80, out, sizeof(out));
    cr_assert_str_eq(out, "[::1]");
    sign_host_toggle_port("[::1]", 80, out, sizeof(out));
    cr_assert_str_eq(out, "[::1]:80");
    sign_host_toggle_port("h:", 80, out, sizeof(out));
    cr_assert_str_eq(out, "h::80");
    cr_assert_eq(sign_host_toggle_port("localhost", 8080, out, 5), -1);
}

Test(sign_verify, python_at_quirk_accepts_either_variant_on_post)
{
    /* Python leaves '@' values out of the signature on POST (§4.2). */
    struct params *p = params_create();
    add(p, "Action", "SendMessage");
    add(p, "Nonce", "1");
    add(p, "SecretId", "AKIDx");
    add(p, "Timestamp", "1000");
    add(p, "msgBody", "@mention");
    char sig[SIGN_B64_MAX];
    cr_assert_eq(sign_compute(p, "POST", "h", PATH, SIGN_SKIP_AT_VALUES, SIGN_HMAC_SHA1, KEY,
                              strlen(KEY), sig),
                 CMQ_OK);
    add(p, "Signature", sig);
    struct cmq_fault f;
    cr_assert_eq(verify(p, "POST", "h", 1000, 0, &f), CMQ_OK);
    /* Not for GET: Python never skips there. */
    struct params *g = params_create();
    add(g, "Action", "SendMessage");
    add(g, "Nonce", "1");
    add(g, "SecretId", "AKIDx");
    add(g, "Timestamp", "1000");
    add(g, "msgBody", "@mention");
    cr_assert_eq(sign_compute(g, "GET", "h", PATH, SIGN_SKIP_AT_VALUES, SIGN_HMAC_SHA1, KEY,
                              strlen(KEY), sig),
                 CMQ_OK);
    add(g, "Signature", sig);
    cr_assert_eq(verify(g, "GET", "h", 1000, 0, &f), CMQ_EAUTH);
    params_destroy(g);
    params_destroy(p);
}

Test(sign_verify, timestamp_window)
{
    struct params *p = signed_request("POST", "h", "100000", SIGN_HMAC_SHA1);
    struct cmq_fault f;
    cr_assert_eq(verify(p, "POST", "h", 100000 + 7200, 7200, &f), CMQ_OK);
    cr_assert_eq(verify(p, "POST", "h", 100000 - 7200, 7200, &f), CMQ_OK);
    cr_assert_eq(verify(p, "POST", "h", 100000 + 7201, 7200, &f), CMQ_EAUTH);
    cr_assert_eq(f.err, CMQERR_REQUEST_EXPIRED);
    cr_assert_eq(cmq_error_code(f.err), 4100);
    cr_assert_eq(verify(p, "POST", "h", 100000 - 7201, 7200, &f), CMQ_EAUTH);
    cr_assert_eq(verify(p, "POST", "h", 999999999, 0, &f), CMQ_OK, "window 0 = unchecked");
    params_destroy(p);
}

Test(sign_verify, missing_or_malformed_common_parameters)
{
    static const struct {
        const char *drop;
        const char *replace_key, *replace_val;
        int status;
        enum cmq_err err;
    } cases[] = {
        {"Signature", NULL, NULL, CMQ_ENOTFOUND, CMQERR_MISSING_PARAM},
        {"SecretId", NULL, NULL, CMQ_ENOTFOUND, CMQERR_MISSING_PARAM},
        {"Timestamp", NULL, NULL, CMQ_ENOTFOUND, CMQERR_MISSING_PARAM},
        {"Nonce", NULL, NULL, CMQ_ENOTFOUND, CMQERR_MISSING_PARAM},
        {"Timestamp", "Timestamp", "12x", CMQ_EINVAL, CMQERR_PARAM_TYPE},
        {"Nonce", "Nonce", "-1", CMQ_EINVAL, CMQERR_PARAM_TYPE},
        {"Nonce", "Nonce", "99999999999999999999", CMQ_EINVAL, CMQERR_PARAM_RANGE},
        {"Signature", "Signature", "", CMQ_ENOTFOUND, CMQERR_MISSING_PARAM},
        {"Signature", "Signature", "AAAA", CMQ_EAUTH, CMQERR_AUTH_FAILED},
    };
    const char *all[][2] = {{"Action", "SendMessage"}, {"Nonce", "0"}, {"SecretId", "AKIDx"},
                            {"Timestamp", "1000"}, {"Signature", "NtLR40c8Vt6faGzZpsJDwDrKXSg="}};
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        struct params *p = params_create();
        for (size_t i = 0; i < 5; i++)
            if (strcmp(all[i][0], cases[c].drop) != 0)
                add(p, all[i][0], all[i][1]);
        if (cases[c].replace_key)
            add(p, cases[c].replace_key, cases[c].replace_val);
        struct cmq_fault f = {0};
        cr_assert_eq(verify(p, "POST", "h", 1000, 0, &f), cases[c].status, "case %zu", c);
        cr_assert_eq(f.err, cases[c].err, "case %zu: %s", c, cmq_error_id(f.err));
        params_destroy(p);
    }
}

Test(sign_verify, nonce_zero_is_accepted)
{
    struct params *p = params_create();
    add(p, "Action", "ListQueue");
    add(p, "Nonce", "0");
    add(p, "SecretId", "AKIDx");
    add(p, "Timestamp", "1000");
    struct cmq_fault f;
    cr_assert_eq(sign_client_request(p, "POST", "h", PATH, SIGN_HMAC_SHA256, KEY, strlen(KEY),
                                     &f),
                 CMQ_OK);
    cr_assert_eq(verify(p, "POST", "h", 1000, 7200, &f), CMQ_OK);
    params_destroy(p);
}

Test(sign_verify, replay_protection_when_enabled)
{
    struct nonce_cache *c = nonce_cache_create(1024, 7200, 42);
    cr_assert_not_null(c);
    struct params *p = signed_request("POST", "h", "1000", SIGN_HMAC_SHA1);
    const char *hosts[] = {"h"};
    struct sign_request req = {.method = "POST", .hosts = hosts, .n_hosts = 1, .path = PATH,
                               .now_s = 1000, .window_s = 7200, .nonces = c};
    struct cmq_fault f;
    cr_assert_eq(sign_verify(p, &req, KEY, strlen(KEY), &f), CMQ_OK);
    cr_assert_eq(sign_verify(p, &req, KEY, strlen(KEY), &f), CMQ_EAUTH);
    cr_assert_eq(f.err, CMQERR_REPLAYED);
    /* A bad signature does not consume a nonce. */
    struct params *q = signed_request("POST", "h", "1001", SIGN_HMAC_SHA1);
    cr_assert_eq(sign_verify(q, &req, "wrong", 5, &f), CMQ_EAUTH);
    cr_assert_eq(f.err, CMQERR_AUTH_FAILED);
    cr_assert_eq(sign_verify(q, &req, KEY, strlen(KEY), &f), CMQ_OK);
    /* Off (the default): the same request passes twice. */
    req.nonces = NULL;
    cr_assert_eq(sign_verify(p, &req, KEY, strlen(KEY), &f), CMQ_OK);
    cr_assert_eq(sign_verify(p, &req, KEY, strlen(KEY), &f), CMQ_OK);
    params_destroy(q);
    params_destroy(p);
    nonce_cache_destroy(c);
}

Test(nonce_cache, expiry_keys_and_bounded_table)
{
    struct nonce_cache *c = nonce_cache_create(8, 10, 1);
    cr_assert_eq(nonce_cache_check(c, "A", 1, 5, 100, 100), CMQ_OK);
    cr_assert_eq(nonce_cache_check(c, "A", 1, 5, 100, 105), CMQ_EEXIST);
    cr_assert_eq(nonce_cache_check(c, "B", 1, 5, 100, 105), CMQ_OK, "other key id");
    cr_assert_eq(nonce_cache_check(c, "A", 1, 5, 101, 105), CMQ_OK, "other timestamp");
    cr_assert_eq(nonce_cache_check(c, "A", 1, 5, 100, 111), CMQ_OK, "expired, so forgotten");
    /* Fill it: the table is bounded and says so instead of growing. */
    int limited = 0;
    for (uint64_t n = 0; n < 10000; n++) {
        int rc = nonce_cache_check(c, "A", 1, 1000 + n, 200, 200);
        cr_assert(rc == CMQ_OK || rc == CMQ_ELIMIT);
        limited += rc == CMQ_ELIMIT;
    }
    cr_assert_gt(limited, 0);
    /* Once their window passes, the slots are reused. */
    cr_assert_eq(nonce_cache_check(c, "A", 1, 99999, 300, 300), CMQ_OK);
    nonce_cache_destroy(c);
    nonce_cache_destroy(NULL);
}

Test(sign_verify, over_long_host_candidates_are_skipped)
{
    struct params *p = signed_request("POST", "h", "1000", SIGN_HMAC_SHA1);
    char huge[600];
    memset(huge, 'x', sizeof(huge) - 1);
    huge[sizeof(huge) - 1] = '\0';
    const char *hosts[] = {huge, "h"};
    struct sign_request req = {.method = "POST", .hosts = hosts, .n_hosts = 2, .path = PATH,
                               .now_s = 1000};
    struct cmq_fault f;
    cr_assert_eq(sign_verify(p, &req, KEY, strlen(KEY), &f), CMQ_OK);
    req.n_hosts = 1;
    cr_assert_eq(sign_verify(p, &req, KEY, strlen(KEY), &f), CMQ_EINVAL);
    cr_assert_eq(f.err, CMQERR_INVALID_REQUEST);
    params_destroy(p);
}

/* cmq-tcp-protocol.md §6.2 test vector: both methods. */
Test(sign, tcp_auth_vector)
{
    char out[SIGN_B64_MAX];
    enum sign_alg alg;
    cr_assert_eq(sign_alg_from_name("HmacSHA1", &alg), CMQ_OK);
    cr_assert_eq(sign_tcp_auth("10.0.0.1@DEFAULT", "AKIDexample", alg, "secretKeyExample", 16, out),
                 CMQ_OK);
    cr_assert_str_eq(out, "r8bP6ioCnf8MKmtimp8F9G/obTM=");
    cr_assert_eq(sign_alg_from_name("HmacSHA256", &alg), CMQ_OK);
    cr_assert_eq(sign_tcp_auth("10.0.0.1@DEFAULT", "AKIDexample", alg, "secretKeyExample", 16, out),
                 CMQ_OK);
    cr_assert_str_eq(out, "K7u9GdjwyPh6U7Wmvp45ogzE5wxWT3nGPR+zr6K5s9I=");
    cr_assert_eq(sign_alg_from_name("hmacsha1", &alg), CMQ_EINVAL);
}
