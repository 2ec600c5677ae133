/* test_json.c: services/gateway/cmqapi/json.c: structure, RFC 8259 escaping,
 * the invalid-UTF-8 policy, the hard cap, and the §13.4 key types. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <signal.h>
#include <string.h>

#include "json.h"
#include "status.h"

static const char *finish(struct json *j)
{
    const char *out;
    size_t len;
    cr_assert_eq(json_finish(j, &out, &len), CMQ_OK);
    cr_assert_eq(strlen(out), len);
    return out;
}

static void assert_escaped(const char *in, size_t len, const char *want)
{
    struct json *j = json_create(4096);
    json_str(j, in, len);
    char quoted[512];
    snprintf(quoted, sizeof(quoted), "\"%s\"", want);
    cr_assert_str_eq(finish(j), quoted);
    json_destroy(j);
}

Test(json, nesting_commas_and_types)
{
    struct json *j = json_create(4096);
    json_obj_begin(j);
    json_kv_int(j, "code", 0);
    json_kv_cstr(j, "message", "");
    json_kv_cstr(j, "requestId", "r-1");
    json_key(j, "msgList");
    json_arr_begin(j);
    for (uint64_t id = 1; id <= 2; id++) {
        json_obj_begin(j);
        json_kv_id(j, "msgId", 18446744073709551615ULL - id + 1);
        json_obj_end(j);
    }
    json_arr_end(j);
    json_key(j, "x");
    json_arr_begin(j);
    json_int(j, -5);
    json_uint(j, 5);
    json_bool(j, true);
    json_bool(j, false);
    json_null(j);
    json_arr_begin(j);
    json_arr_end(j);
    json_obj_begin(j);
    json_obj_end(j);
    json_arr_end(j);
    json_obj_end(j);
    cr_assert_str_eq(finish(j), "{\"code\":0,\"message\":\"\",\"requestId\":\"r-1\",\"msgList\":"
                                "[{\"msgId\":\"18446744073709551615\"},{\"msgId\":"
                                "\"18446744073709551614\"}],\"x\":[-5,5,true,false,null,[],{}]}");
    json_destroy(j);
}

Test(json, reset_reuses_the_writer)
{
    struct json *j = json_create(64);
    json_obj_begin(j);
    json_obj_end(j);
    finish(j);
    json_reset(j);
    json_arr_begin(j);
    json_arr_end(j);
    cr_assert_str_eq(finish(j), "[]");
    json_destroy(j);
    json_destroy(NULL);
}

Test(json_escape, quotes_backslash_and_controls)
{
    assert_escaped("a\"b\\c/", 6, "a\\\"b\\\\c/");
    assert_escaped("\b\f\n\r\t", 5, "\\b\\f\\n\\r\\t");
    assert_escaped("\x01\x1f\x7f", 3, "\\u0001\\u001f\x7f");
    assert_escaped("a\0b", 3, "a\\u0000b");
}

Test(json_escape, utf8_kept_and_line_separators_escaped)
{
    assert_escaped("h\xC3\xA9llo \xE4\xB8\x96\xE7\x95\x8C \xF0\x9F\x98\x80", 18,
                   "h\xC3\xA9llo \xE4\xB8\x96\xE7\x95\x8C \xF0\x9F\x98\x80");
    assert_escaped("\xE2\x80\xA8\xE2\x80\xA9", 6, "\\u2028\\u2029");
}

Test(json_escape, invalid_utf8_becomes_replacement_characters)
{
#define FFFD "\xEF\xBF\xBD"
    assert_escaped("\xFF", 1, FFFD);
    assert_escaped("a\x80z", 3, "a" FFFD "z");
    assert_escaped("\xC0\xAF", 2, FFFD FFFD);              /* overlong: two bad bytes */
    assert_escaped("\xED\xA0\x80", 3, FFFD FFFD FFFD);     /* surrogate */
    assert_escaped("\xE4\xB8", 2, FFFD);                   /* truncated: one prefix */
    assert_escaped("\xE4\xB8z", 3, FFFD "z");
    assert_escaped("\xF4\x90\x80\x80", 4, FFFD FFFD FFFD FFFD); /* above U+10FFFF */
    assert_escaped("\xF0\x9F\x98", 3, FFFD);
#undef FFFD
}

Test(json_escape, into_a_fixed_buffer)
{
    char out[8];
    cr_assert_eq(json_escape("ab\"cd", 5, out, sizeof(out)), 6);
    cr_assert_str_eq(out, "ab\\\"cd");
    /* Truncation keeps whole escapes only. */
    cr_assert_eq(json_escape("abcdef\n", 7, out, sizeof(out)), 8);
    cr_assert_str_eq(out, "abcdef");
    cr_assert_eq(json_escape("x", 1, out, 0), 1);
}

Test(json_cap, hard_cap_is_sticky)
{
    struct json *j = json_create(16);
    json_obj_begin(j);
    json_kv_cstr(j, "message", "this is longer than sixteen bytes");
    cr_assert_eq(json_status(j), CMQ_ETOOBIG);
    json_kv_int(j, "code", 1); /* no-ops now */
    json_obj_end(j);
    const char *out;
    size_t len;
    cr_assert_eq(json_finish(j, &out, &len), CMQ_ETOOBIG);
    json_reset(j);
    json_arr_begin(j);
    json_arr_end(j);
    cr_assert_str_eq(finish(j), "[]", "reset clears the failure");
    json_destroy(j);
}

Test(json_cap, grows_to_exactly_the_cap)
{
    /* 1 MiB string in a 1 MiB + 3 writer: quotes + NUL fit exactly. */
    size_t n = 1 << 20;
    char *big = malloc(n);
    memset(big, 'x', n);
    struct json *j = json_create(n + 3);
    json_str(j, big, n);
    const char *out;
    size_t len;
    cr_assert_eq(json_finish(j, &out, &len), CMQ_OK);
    cr_assert_eq(len, n + 2);
    json_reset(j);
    json_str(j, big, n);
    json_reset(j);
    big[0] = '\n'; /* one escape makes it two bytes longer: over the cap */
    json_str(j, big, n);
    cr_assert_eq(json_status(j), CMQ_ETOOBIG);
    json_destroy(j);
    free(big);
}

Test(json_keys, spec_types)
{
    const char *ints[] = {"code", "totalCount", "enqueueTime", "dequeueCount", "rewindmsgNum",
                          "rewindMsgNum", "createTime", "msgCount", "filterType",
                          "LoggingEnabled", "delayMsgNum", "minMsgTime"};
    const char *strs[] = {"message", "requestId", "msgId", "receiptHandle", "msgBody",
                          "queueId", "topicId", "subscriptionId", "protocal", "topicOwner"};
    const char *arrays[] = {"msgList", "msgInfoList", "errorList", "filterTag", "filterTags",
                            "bindingKey", "queueList"};
    for (size_t i = 0; i < sizeof(ints) / sizeof(*ints); i++)
        cr_assert_eq(json_key_type(ints[i]), JSON_KEY_INT, "%s", ints[i]);
    for (size_t i = 0; i < sizeof(strs) / sizeof(*strs); i++)
        cr_assert_eq(json_key_type(strs[i]), JSON_KEY_STRING, "%s", strs[i]);
    for (size_t i = 0; i < sizeof(arrays) / sizeof(*arrays); i++)
        cr_assert_eq(json_key_type(arrays[i]), JSON_KEY_ARRAY, "%s", arrays[i]);
    cr_assert_eq(json_key_type("MsgId"), JSON_KEY_UNKNOWN, "case-sensitive");
}

Test(json_keys, msg_id_as_a_number_is_caught, .signal = SIGABRT)
{
    struct json *j = json_create(64);
    json_obj_begin(j);
    json_kv_int(j, "msgId", 1);
}

Test(json_keys, code_as_a_string_is_caught, .signal = SIGABRT)
{
    struct json *j = json_create(64);
    json_obj_begin(j);
    json_kv_cstr(j, "code", "0");
}

Test(json_misuse, value_without_key_asserts, .signal = SIGABRT)
{
    struct json *j = json_create(64);
    json_obj_begin(j);
    json_int(j, 1);
}

Test(json_misuse, unbalanced_end_asserts, .signal = SIGABRT)
{
    struct json *j = json_create(64);
    json_arr_begin(j);
    json_obj_end(j);
}
