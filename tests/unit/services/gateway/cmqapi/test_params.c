/* test_params.c: services/gateway/cmqapi/params.c: form decoding (§2.2), the
 * duplicate rule, bounds, typed getters and indexed lists (§5.2, §5.3). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmq_limits.h"
#include "params.h"
#include "status.h"

static struct params *parsed(const char *form)
{
    struct params *p = params_create();
    struct cmq_fault f;
    cr_assert_eq(params_parse(p, form, strlen(form), &f), CMQ_OK, "%s: %s %s", form,
                 cmq_error_id(f.err), f.arg);
    return p;
}

static void assert_parse_fails(const char *form, int status, enum cmq_err err, const char *arg)
{
    struct params *p = params_create();
    struct cmq_fault f = {0};
    cr_assert_eq(params_parse(p, form, strlen(form), &f), status, "%s", form);
    cr_assert_eq(f.err, err, "%s: got %s", form, cmq_error_id(f.err));
    if (arg)
        cr_assert_str_eq(f.arg, arg);
    cr_assert_eq(params_count(p), 0, "all or nothing");
    params_destroy(p);
}

static void assert_value(const struct params *p, const char *key, const char *val, size_t len)
{
    struct param_view v;
    cr_assert(params_find(p, key, &v), "%s missing", key);
    cr_assert_eq(v.val_len, len, "%s: length %zu", key, v.val_len);
    cr_assert(memcmp(v.val, val, len) == 0, "%s = %.*s", key, (int)v.val_len, v.val);
    cr_assert_eq(v.val[len], '\0');
}

Test(params_decode, plus_percent_and_every_sdk_spelling)
{
    /* Python quote_plus, Java URLEncoder and C++ spell "a b/ * ~" differently. */
    struct params *p = parsed("py=a+b%2F%2A%7E&java=a+b%2F*%7E&cpp=a%20b/*~&raw=()!'");
    assert_value(p, "py", "a b/*~", 6);
    assert_value(p, "java", "a b/*~", 6);
    assert_value(p, "cpp", "a b/*~", 6);
    assert_value(p, "raw", "()!'", 4);
    params_destroy(p);
}

Test(params_decode, hex_either_case_and_encoded_separators)
{
    struct params *p = parsed("k=%3d%3D%26%2b%25&k%5F2=x");
    assert_value(p, "k", "==&+%", 5);
    assert_value(p, "k_2", "x", 1);
    params_destroy(p);
}

Test(params_decode, empty_segments_missing_equals_and_empty_values)
{
    struct params *p = parsed("&&a=1&&b&c=&");
    cr_assert_eq(params_count(p), 3, "empty segments are skipped");
    assert_value(p, "b", "", 0);
    assert_value(p, "c", "", 0);
    params_destroy(p);
}

Test(params_decode, empty_name_is_a_key_format_error)
{
    assert_parse_fails("a=1&=v", CMQ_EINVAL, CMQERR_PARAM_KEY_FORMAT, "");
}

Test(params_decode, value_may_contain_equals)
{
    struct params *p = parsed("a=b=c");
    assert_value(p, "a", "b=c", 3);
    params_destroy(p);
}

Test(params_decode, nul_byte_in_value_kept_with_length)
{
    struct params *p = parsed("a=x%00y");
    assert_value(p, "a", "x\0y", 3);
    params_destroy(p);
}

Test(params_decode, bad_escapes_rejected)
{
    const char *bad[] = {"a=%", "a=%4", "a=%zz", "a=1%g0", "%=1", "a%2=1", "a=%%41"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_parse_fails(bad[i], CMQ_EINVAL, CMQERR_REQUEST_TOO_BIG, NULL);
}

Test(params_decode, decode_function_directly)
{
    char out[16];
    cr_assert_eq(params_decode("a+%41%62", 8, out), 4);
    cr_assert(memcmp(out, "a Ab", 4) == 0);
    cr_assert_eq(params_decode("%4", 2, out), -1);
}

Test(params_names, bad_names_rejected)
{
    assert_parse_fails("a%20b=1", CMQ_EINVAL, CMQERR_PARAM_KEY_FORMAT, "a b");
    assert_parse_fails("a+b=1", CMQ_EINVAL, CMQERR_PARAM_KEY_FORMAT, "a b");
    assert_parse_fails("a%00=1", CMQ_EINVAL, CMQERR_PARAM_KEY_FORMAT, NULL);
    assert_parse_fails("%C3%A9=1", CMQ_EINVAL, CMQERR_PARAM_KEY_FORMAT, NULL);
    char form[512];
    memset(form, 'k', CMQ_PARAM_NAME_LEN_MAX + 1);
    strcpy(form + CMQ_PARAM_NAME_LEN_MAX + 1, "=1");
    assert_parse_fails(form, CMQ_EINVAL, CMQERR_PARAM_KEY_FORMAT, NULL);
    form[CMQ_PARAM_NAME_LEN_MAX] = '=';
    form[CMQ_PARAM_NAME_LEN_MAX + 1] = '\0';
    struct params *p = parsed(form);
    cr_assert_eq(params_count(p), 1, "a name of exactly the maximum is fine");
    params_destroy(p);
}

Test(params_duplicates, rejected_in_one_part_and_across_query_and_body)
{
    assert_parse_fails("queueName=a&queueName=a", CMQ_EINVAL, CMQERR_PARAM_NOT_REPEATABLE,
                       "queueName");
    struct params *p = parsed("Action=SendMessage&queueName=a");
    struct cmq_fault f;
    const char *body = "msgBody=x&queueName=b";
    cr_assert_eq(params_parse(p, body, strlen(body), &f), CMQ_EINVAL);
    cr_assert_eq(f.err, CMQERR_PARAM_NOT_REPEATABLE);
    cr_assert_str_eq(f.arg, "queueName");
    cr_assert_eq(params_count(p), 2, "the failed body added nothing");
    cr_assert_not(params_find(p, "msgBody", NULL));
    /* Names are case-sensitive: these are two parameters. */
    const char *ok = "queuename=c";
    cr_assert_eq(params_parse(p, ok, strlen(ok), &f), CMQ_OK);
    params_destroy(p);
}

Test(params_merge, query_then_body)
{
    struct params *p = parsed("Action=SendMessage");
    struct cmq_fault f;
    const char *body = "queueName=q&msgBody=hi";
    cr_assert_eq(params_parse(p, body, strlen(body), &f), CMQ_OK);
    cr_assert_eq(params_count(p), 3);
    struct param_view v;
    params_at(p, 2, &v);
    cr_assert_str_eq(v.key, "msgBody");
    params_destroy(p);
}

Test(params_utf8, valid_values_accepted_invalid_rejected)
{
    struct params *p = parsed("a=%E4%B8%96%F0%9F%98%80&b=%7F");
    params_destroy(p);
    const char *bad[] = {"a=%FF", "a=%C0%AF", "a=%ED%A0%80", "a=%E4%B8", "a=%F4%90%80%80",
                         "a=%80"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_parse_fails(bad[i], CMQ_EINVAL, CMQERR_PARAM_ERROR, "a");
}

Test(params_limits, too_many_parameters)
{
    size_t cap = (CMQ_PARAMS_MAX + 2) * 12;
    char *form = malloc(cap);
    size_t n = 0;
    for (int i = 0; i < CMQ_PARAMS_MAX; i++)
        n += (size_t)snprintf(form + n, cap - n, "%sk%d=1", i ? "&" : "", i);
    struct params *p = params_create();
    struct cmq_fault f;
    cr_assert_eq(params_parse(p, form, n, &f), CMQ_OK);
    const char *one_more = "x=1";
    cr_assert_eq(params_parse(p, one_more, 3, &f), CMQ_ELIMIT);
    cr_assert_eq(f.err, CMQERR_REQUEST_TOO_BIG);
    params_destroy(p);
    n += (size_t)snprintf(form + n, cap - n, "&last=1");
    assert_parse_fails(form, CMQ_ELIMIT, CMQERR_REQUEST_TOO_BIG, "parameters");
    free(form);
}

Test(params_limits, raw_request_size)
{
    size_t len = CMQ_REQUEST_BYTES_MAX + 1;
    char *form = malloc(len);
    memset(form, 'a', len);
    struct params *p = params_create();
    struct cmq_fault f;
    cr_assert_eq(params_parse(p, form, len, &f), CMQ_ETOOBIG);
    cr_assert_eq(f.err, CMQERR_REQUEST_TOO_BIG);
    cr_assert_str_eq(f.arg, "request");
    /* The bound is over all parse calls (query and body) together. */
    size_t part = CMQ_PARAM_VALUE_BYTES_MAX + 2;
    for (int i = 0; i < 3; i++) {
        form[0] = (char)('a' + i);
        form[1] = '=';
        cr_assert_eq(params_parse(p, form, part, &f), CMQ_OK, "part %d", i);
    }
    form[0] = 'z';
    cr_assert_eq(params_parse(p, form, CMQ_REQUEST_OVERHEAD_BYTES, &f), CMQ_ETOOBIG);
    cr_assert_eq(f.err, CMQERR_REQUEST_TOO_BIG);
    cr_assert_eq(params_count(p), 3);
    params_destroy(p);
    free(form);
}

Test(params_limits, value_size_and_msg_body_row)
{
    size_t vlen = CMQ_PARAM_VALUE_BYTES_MAX + 1;
    char *form = malloc(vlen + 16);
    memcpy(form, "msgBody=", 8);
    memset(form + 8, 'x', vlen);
    struct params *p = params_create();
    struct cmq_fault f;
    cr_assert_eq(params_parse(p, form, 8 + vlen, &f), CMQ_ETOOBIG);
    cr_assert_eq(f.err, CMQERR_MSG_TOO_BIG);
    memcpy(form, "endpoint=", 9);
    memset(form + 9, 'x', vlen);
    cr_assert_eq(params_parse(p, form, 9 + vlen, &f), CMQ_ETOOBIG);
    cr_assert_eq(f.err, CMQERR_PARAM_RANGE);
    cr_assert_str_eq(f.arg, "endpoint");
    /* Exactly the maximum is accepted. */
    memcpy(form, "msgBody=", 8);
    cr_assert_eq(params_parse(p, form, 8 + vlen - 1, &f), CMQ_OK);
    params_destroy(p);
    free(form);
}

Test(params_getters, int_type_and_range)
{
    struct params *p = parsed("a=42&neg=-7&big=9223372036854775807&huge=9223372036854775808&"
                              "min=-9223372036854775808&x=4x&plus=%2B1&sp=+1&empty=&dash=-&"
                              "digits=00012&garbage=%01");
    struct cmq_fault f;
    int64_t v;
    cr_assert_eq(params_get_int(p, "a", 0, 100, &v, &f), CMQ_OK);
    cr_assert_eq(v, 42);
    cr_assert_eq(params_get_int(p, "neg", -10, 10, &v, &f), CMQ_OK);
    cr_assert_eq(v, -7);
    cr_assert_eq(params_get_int(p, "big", 0, INT64_MAX, &v, &f), CMQ_OK);
    cr_assert_eq(v, INT64_MAX);
    cr_assert_eq(params_get_int(p, "min", INT64_MIN, 0, &v, &f), CMQ_OK);
    cr_assert_eq(v, INT64_MIN);
    cr_assert_eq(params_get_int(p, "digits", 0, 100, &v, &f), CMQ_OK);
    cr_assert_eq(v, 12);
    cr_assert_eq(params_get_int(p, "huge", 0, INT64_MAX, &v, &f), CMQ_EINVAL);
    cr_assert_eq(f.err, CMQERR_PARAM_RANGE);
    cr_assert_str_eq(f.arg, "huge");
    cr_assert_eq(params_get_int(p, "a", 0, 41, &v, &f), CMQ_EINVAL);
    cr_assert_eq(f.err, CMQERR_PARAM_RANGE);
    cr_assert_str_eq(f.arg, "a");
    const char *type_errors[] = {"x", "plus", "sp", "dash", "garbage"};
    for (size_t i = 0; i < 5; i++) {
        cr_assert_eq(params_get_int(p, type_errors[i], INT64_MIN, INT64_MAX, &v, &f), CMQ_EINVAL);
        cr_assert_eq(f.err, CMQERR_PARAM_TYPE, "%s", type_errors[i]);
        cr_assert_str_eq(f.arg, type_errors[i]);
    }
    cr_assert_eq(params_get_int(p, "empty", 0, 1, &v, &f), CMQ_ENOTFOUND, "empty = absent");
    cr_assert_eq(params_get_int(p, "nope", 0, 1, &v, &f), CMQ_ENOTFOUND);
    cr_assert_eq(f.err, CMQERR_MISSING_PARAM);
    cr_assert_str_eq(f.arg, "nope");
    params_destroy(p);
}

Test(params_getters, uint)
{
    struct params *p = parsed("t=18446744073709551615&o=18446744073709551616&n=-1&z=0");
    struct cmq_fault f;
    uint64_t v;
    cr_assert_eq(params_get_uint(p, "t", UINT64_MAX, &v, &f), CMQ_OK);
    cr_assert_eq(v, UINT64_MAX);
    cr_assert_eq(params_get_uint(p, "z", 10, &v, &f), CMQ_OK);
    cr_assert_eq(v, 0);
    cr_assert_eq(params_get_uint(p, "o", UINT64_MAX, &v, &f), CMQ_EINVAL);
    cr_assert_eq(f.err, CMQERR_PARAM_RANGE);
    cr_assert_eq(params_get_uint(p, "n", UINT64_MAX, &v, &f), CMQ_EINVAL);
    cr_assert_eq(f.err, CMQERR_PARAM_TYPE);
    params_destroy(p);
}

Test(params_getters, bool_ish)
{
    struct params *p = parsed("a=1&b=TRUE&c=0&d=False&e=yes&f=2&g=true%00");
    struct cmq_fault f;
    bool v;
    cr_assert_eq(params_get_bool(p, "a", &v, &f), CMQ_OK);
    cr_assert(v);
    cr_assert_eq(params_get_bool(p, "b", &v, &f), CMQ_OK);
    cr_assert(v);
    cr_assert_eq(params_get_bool(p, "c", &v, &f), CMQ_OK);
    cr_assert_not(v);
    cr_assert_eq(params_get_bool(p, "d", &v, &f), CMQ_OK);
    cr_assert_not(v);
    const char *bad[] = {"e", "f", "g"};
    for (size_t i = 0; i < 3; i++) {
        cr_assert_eq(params_get_bool(p, bad[i], &v, &f), CMQ_EINVAL, "%s", bad[i]);
        cr_assert_eq(f.err, CMQERR_PARAM_TYPE);
    }
    params_destroy(p);
}

Test(params_getters, string_max_length_and_empty)
{
    struct params *p = parsed("queueName=abcd&routingKey=");
    struct cmq_fault f;
    const char *s;
    size_t n;
    cr_assert_eq(params_get_str(p, "queueName", 4, &s, &n, &f), CMQ_OK);
    cr_assert_eq(n, 4);
    cr_assert_str_eq(s, "abcd");
    cr_assert_eq(params_get_str(p, "queueName", 3, &s, &n, &f), CMQ_ETOOBIG);
    cr_assert_eq(f.err, CMQERR_PARAM_RANGE);
    cr_assert_str_eq(f.arg, "queueName");
    cr_assert_eq(params_get_str(p, "routingKey", 64, &s, &n, &f), CMQ_ENOTFOUND);
    struct param_view v;
    cr_assert(params_find(p, "routingKey", &v), "find still sees the empty value");
    cr_assert_eq(v.val_len, 0);
    params_destroy(p);
}

static size_t list(const char *form, const char *base, size_t max, unsigned flags, int want,
                   enum cmq_err err, struct param_value *vals, struct params **keep)
{
    struct params *p = parsed(form);
    struct cmq_fault f = {0};
    size_t n = 0;
    cr_assert_eq(params_get_list(p, base, max, flags, vals, &n, &f), want, "%s", form);
    if (want != CMQ_OK)
        cr_assert_eq(f.err, err, "%s: %s", form, cmq_error_id(f.err));
    if (keep)
        *keep = p;
    else
        params_destroy(p);
    return n;
}

Test(params_list, one_based_in_numeric_order)
{
    struct param_value v[16];
    struct params *p;
    size_t n = list("msgBody.2=b&msgBody.10=j&msgBody.1=a&msgBody.3=c&msgBody.4=d&msgBody.5=e&"
                    "msgBody.6=f&msgBody.7=g&msgBody.8=h&msgBody.9=i&msgBody.11=k&queueName=q",
                    "msgBody", 16, 0, CMQ_OK, 0, v, &p);
    cr_assert_eq(n, 11);
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(v[i].len, 1);
        cr_assert_eq(v[i].val[0], (char)('a' + i));
    }
    params_destroy(p);
}

Test(params_list, zero_based_like_the_cpp_subscribe)
{
    struct param_value v[5];
    struct params *p;
    size_t n = list("bindingKey.0=a.*&bindingKey.1=%23", "bindingKey", 5, 0, CMQ_OK, 0, v, &p);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(v[0].val, "a.*");
    cr_assert_str_eq(v[1].val, "#");
    params_destroy(p);
}

Test(params_list, errors)
{
    struct param_value v[16];
    list("msgBody.1=a&msgBody.3=c", "msgBody", 16, 0, CMQ_EINVAL, CMQERR_NOT_CONSEQUENT, v, NULL);
    list("msgBody.2=a&msgBody.3=c", "msgBody", 16, 0, CMQ_EINVAL, CMQERR_NOT_CONSEQUENT, v, NULL);
    list("msgBody.0=a&msgBody.2=c", "msgBody", 16, 0, CMQ_EINVAL, CMQERR_NOT_CONSEQUENT, v, NULL);
    list("msgBody.01=a", "msgBody", 16, 0, CMQ_EINVAL, CMQERR_PARAM_KEY_FORMAT, v, NULL);
    list("msgBody.1x=a", "msgBody", 16, 0, CMQ_EINVAL, CMQERR_PARAM_KEY_FORMAT, v, NULL);
    list("msgBody.1000=a", "msgBody", 16, 0, CMQ_EINVAL, CMQERR_PARAM_KEY_FORMAT, v, NULL);
    list("msgBody.=a", "msgBody", 16, 0, CMQ_ENOTFOUND, CMQERR_MISSING_PARAM, v, NULL);
    list("msgBody=a", "msgBody", 16, 0, CMQ_ENOTFOUND, CMQERR_MISSING_PARAM, v, NULL);
    list("msgBodyX.1=a", "msgBody", 16, 0, CMQ_ENOTFOUND, CMQERR_MISSING_PARAM, v, NULL);
    list("receiptHandle.1=1&receiptHandle.2=2&receiptHandle.3=3", "receiptHandle", 2, 0,
         CMQ_ELIMIT, CMQERR_BATCH_SIZE, v, NULL);
}

Test(params_list, seventeen_bodies_is_batch_size_not_a_gap)
{
    char form[512];
    size_t n = 0;
    for (int i = 1; i <= 17; i++)
        n += (size_t)snprintf(form + n, sizeof(form) - n, "%smsgBody.%d=m", i > 1 ? "&" : "", i);
    struct param_value v[16];
    list(form, "msgBody", 16, 0, CMQ_ELIMIT, CMQERR_BATCH_SIZE, v, NULL);
}

Test(params_list, skip_empty_entries_after_checks)
{
    struct param_value v[5];
    struct params *p;
    size_t n = list("filterTag.1=&filterTag.2=b&filterTag.3=", "filterTag", 5,
                    PARAMS_LIST_SKIP_EMPTY, CMQ_OK, 0, v, &p);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(v[0].val, "b");
    params_destroy(p);
    list("filterTag.1=&filterTag.2=", "filterTag", 5, PARAMS_LIST_SKIP_EMPTY, CMQ_ENOTFOUND,
         CMQERR_MISSING_PARAM, v, NULL);
    n = list("filterTag.1=&filterTag.2=", "filterTag", 5, 0, CMQ_OK, 0, v, &p);
    cr_assert_eq(n, 2, "kept without the flag");
    params_destroy(p);
}

Test(params_encode, round_trip_and_truncation)
{
    struct params *p = params_create();
    struct cmq_fault f;
    const char body[] = "h\xC3\xA9 /+&=~*";
    cr_assert_eq(params_add(p, "msgBody", body, sizeof(body) - 1, &f), CMQ_OK);
    cr_assert_eq(params_add(p, "a_b.c", "", 0, &f), CMQ_OK);
    char out[128];
    size_t n = params_encode(p, out, sizeof(out));
    cr_assert_str_eq(out, "msgBody=h%C3%A9+%2F%2B%26%3D~%2A&a_b.c=");
    cr_assert_eq(n, strlen(out));
    struct params *q = parsed(out);
    struct param_view v;
    cr_assert(params_find(q, "msgBody", &v));
    cr_assert_eq(v.val_len, sizeof(body) - 1);
    cr_assert(memcmp(v.val, body, v.val_len) == 0);
    char small[8];
    cr_assert_eq(params_encode(p, small, sizeof(small)), n);
    cr_assert_str_eq(small, "msgBody");
    params_destroy(q);
    params_destroy(p);
}

Test(params_add, same_checks_as_parse)
{
    struct params *p = params_create();
    struct cmq_fault f;
    cr_assert_eq(params_add(p, "a", "1", 1, &f), CMQ_OK);
    cr_assert_eq(params_add(p, "a", "2", 1, &f), CMQ_EINVAL);
    cr_assert_eq(f.err, CMQERR_PARAM_NOT_REPEATABLE);
    cr_assert_eq(params_add(p, "b", "\xFF", 1, &f), CMQ_EINVAL);
    cr_assert_eq(f.err, CMQERR_PARAM_ERROR);
    cr_assert_eq(params_add(p, "", "1", 1, &f), CMQ_EINVAL);
    cr_assert_eq(f.err, CMQERR_PARAM_KEY_FORMAT);
    cr_assert_eq(params_count(p), 1);
    params_reset(p);
    cr_assert_eq(params_count(p), 0);
    cr_assert_eq(params_add(p, "a", "1", 1, &f), CMQ_OK, "reset forgets names");
    params_destroy(p);
    params_destroy(NULL);
}

/* The obvious byte-at-a-time decoder, to check the optimised one against. */
static long reference_decode(const char *in, size_t len, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (in[i] == '+') {
            out[o++] = ' ';
        } else if (in[i] == '%') {
            if (len - i < 3)
                return -1;
            char h[3] = {in[i + 1], in[i + 2], 0};
            char *end;
            if (h[0] == '+' || h[0] == '-' || h[0] == ' ' || h[1] == ' ')
                return -1;
            long v = strtol(h, &end, 16);
            if (*end)
                return -1;
            out[o++] = (char)v;
            i += 2;
        } else {
            out[o++] = in[i];
        }
    }
    return (long)o;
}

Test(params_decode, agrees_with_a_reference_decoder)
{
    static const char alphabet[] = "a+%4F1Gz %";
    uint64_t s = 88172645463325252ULL;
    char in[64], a[64], b[64];
    for (int round = 0; round < 200000; round++) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        size_t len = (size_t)(s % sizeof(in));
        uint64_t r = s;
        for (size_t i = 0; i < len; i++) {
            if (i % 16 == 0) {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                r = s;
            }
            in[i] = alphabet[r % (sizeof(alphabet) - 1)];
            r /= sizeof(alphabet) - 1;
        }
        long x = params_decode(in, len, a);
        long y = reference_decode(in, len, b);
        cr_assert_eq(x, y, "%.*s", (int)len, in);
        if (x > 0)
            cr_assert(memcmp(a, b, (size_t)x) == 0, "%.*s", (int)len, in);
    }
}
