/* test_dlq_policy.c: services/gateway/cmqapi/dlq_policy.c, the deadLetterPolicy
 * JSON reader (spec §6): the four keys, integers as numbers or quoted, JSON
 * escapes, skipped unknown members, and every malformed or oversized input
 * refused with the spec's code naming the parameter. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "dlq_policy.h"
#include "status.h"

static struct dlq_policy parse_ok(const char *text)
{
    struct dlq_policy p;
    struct cmq_fault f = {0};
    int rc = dlq_policy_parse(text, strlen(text), &p, &f);
    cr_assert_eq(rc, CMQ_OK, "%s: status %d (%s)", text, rc, cmq_error_id(f.err));
    return p;
}

static void assert_refused(const char *text, size_t len, enum cmq_err want)
{
    struct dlq_policy p;
    struct cmq_fault f = {0};
    int rc = dlq_policy_parse(text, len, &p, &f);
    cr_assert_eq(rc, CMQ_EINVAL, "'%.*s' must be refused, got %d", (int)len, text, rc);
    cr_assert_eq(f.err, want, "'%.*s': %s, want %s", (int)len, text, cmq_error_id(f.err),
                 cmq_error_id(want));
}

#define REFUSED(text, want) assert_refused((text), strlen(text), (want))

Test(dlq_policy, the_spec_keys)
{
    struct dlq_policy p = parse_ok("{\"deadLetterQueue\":\"dlq-1\",\"policy\":0,"
                                   "\"maxReceiveCount\":5}");
    cr_assert_str_eq(p.dead_letter_queue, "dlq-1");
    cr_assert(p.has_policy && p.policy == 0);
    cr_assert(p.has_max_receive_count && p.max_receive_count == 5);
    cr_assert(!p.has_max_time_to_live);
    p = parse_ok(" {\n\t\"policy\" : 1 , \"maxTimeToLive\":3600,\"deadLetterQueue\":\"d\"}\r\n");
    cr_assert(p.has_policy && p.policy == 1 && p.has_max_time_to_live &&
              p.max_time_to_live == 3600);
    cr_assert_str_eq(p.dead_letter_queue, "d");
}

Test(dlq_policy, quoted_integers_and_extremes)
{
    struct dlq_policy p = parse_ok("{\"policy\":\"1\",\"maxTimeToLive\":\"-300\"}");
    cr_assert(p.policy == 1 && p.max_time_to_live == -300); /* ranges are metadata's */
    p = parse_ok("{\"maxReceiveCount\":9223372036854775807}");
    cr_assert_eq(p.max_receive_count, INT64_MAX);
    p = parse_ok("{\"maxReceiveCount\":-9223372036854775808}");
    cr_assert_eq(p.max_receive_count, INT64_MIN);
    p = parse_ok("{\"policy\":-0}");
    cr_assert(p.has_policy && p.policy == 0);
}

Test(dlq_policy, escapes_decode)
{
    struct dlq_policy p = parse_ok("{\"deadLetterQueue\":\"a\\u0062\\/c\\\\\\\"\\u00e9\\ud83d\\ude00\"}");
    cr_assert_str_eq(p.dead_letter_queue, "ab/c\\\"\xc3\xa9\xf0\x9f\x98\x80");
    p = parse_ok("{\"dead\\u004cetterQueue\":\"x\"}"); /* an escaped key is the same key */
    cr_assert_str_eq(p.dead_letter_queue, "x");
}

Test(dlq_policy, unknown_members_are_skipped)
{
    struct dlq_policy p = parse_ok("{\"note\":{\"a\":[1,2.5e3,true,false,null,\"s\",{}]},"
                                   "\"policy\":1,\"x\":[],\"y\":-1.25E-2,"
                                   "\"averyveryveryverylongkeynamethatnobodyknows\":1}");
    cr_assert(p.has_policy && p.policy == 1);
    cr_assert_str_eq(p.dead_letter_queue, "");
}

Test(dlq_policy, empty_means_no_policy)
{
    struct dlq_policy p;
    struct cmq_fault f = {0};
    cr_assert_eq(dlq_policy_parse("", 0, &p, &f), CMQ_ENOTFOUND);
    cr_assert_eq(dlq_policy_parse(" \t\r\n", 4, &p, &f), CMQ_ENOTFOUND);
    p = parse_ok("{}");
    cr_assert(!p.has_policy && !p.dead_letter_queue[0]);
}

Test(dlq_policy, malformed_json_is_a_type_error)
{
    static const char *const bad[] = {
        "x", "[]", "\"{}\"", "{", "{\"policy\"}", "{\"policy\":}", "{\"policy\":1,}",
        "{\"policy\":1} x", "{\"policy\":1}}", "{policy:1}", "{'policy':1}", "{\"policy\":01}",
        "{\"policy\":1.0}", "{\"policy\":1e2}", "{\"policy\":+1}", "{\"policy\":true}",
        "{\"policy\":\"1 \"}", "{\"policy\":\"\"}", "{\"policy\":null}", "{\"deadLetterQueue\":1}",
        "{\"deadLetterQueue\":\"a\\x\"}", "{\"deadLetterQueue\":\"a\\u12\"}",
        "{\"deadLetterQueue\":\"\\udc00\"}", "{\"deadLetterQueue\":\"\\ud800x\"}",
        "{\"deadLetterQueue\":\"\\u0000\"}", "{\"deadLetterQueue\":\"a\nb\"}",
        "{\"deadLetterQueue\":\"abc", "{\"x\":tru}", "{\"x\":[1,]}", "{\"x\":{\"a\"}}",
        "{\"x\":-}", "{\"x\":1.}", "{\"x\":1e}", "{\"x\":[[[[[[[[[1]]]]]]]]]}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        REFUSED(bad[i], CMQERR_PARAM_TYPE);
}

Test(dlq_policy, limits_are_range_errors)
{
    REFUSED("{\"maxReceiveCount\":9223372036854775808}", CMQERR_PARAM_RANGE);
    REFUSED("{\"maxReceiveCount\":-9223372036854775809}", CMQERR_PARAM_RANGE);
    REFUSED("{\"maxReceiveCount\":\"99999999999999999999999999999999\"}", CMQERR_PARAM_RANGE);
    char name[300];
    memset(name, 'q', sizeof name);
    char text[400];
    snprintf(text, sizeof text, "{\"deadLetterQueue\":\"%.*s\"}", DLQ_POLICY_QUEUE_MAX + 1, name);
    REFUSED(text, CMQERR_PARAM_RANGE);
    snprintf(text, sizeof text, "{\"deadLetterQueue\":\"%.*s\"}", DLQ_POLICY_QUEUE_MAX, name);
    cr_assert_eq(strlen(parse_ok(text).dead_letter_queue), DLQ_POLICY_QUEUE_MAX);
    char big[DLQ_POLICY_TEXT_MAX + 2];
    memset(big, ' ', sizeof big);
    big[0] = '{';
    big[sizeof big - 1] = '}';
    assert_refused(big, sizeof big, CMQERR_PARAM_RANGE);
    char many[600] = "{";
    for (int i = 0; i <= DLQ_POLICY_MEMBERS_MAX; i++)
        snprintf(many + strlen(many), sizeof many - strlen(many), "%s\"k%d\":1", i ? "," : "", i);
    strcat(many, "}");
    REFUSED(many, CMQERR_PARAM_RANGE);
}

Test(dlq_policy, a_repeated_key_is_an_error)
{
    REFUSED("{\"policy\":0,\"policy\":1}", CMQERR_PARAM_ERROR);
    REFUSED("{\"deadLetterQueue\":\"a\",\"deadLetterQueue\":\"b\"}", CMQERR_PARAM_ERROR);
}

Test(dlq_policy, embedded_nul_is_refused)
{
    assert_refused("{\"policy\":1}\0", 13, CMQERR_PARAM_TYPE);
    assert_refused("{\"deadLetterQueue\":\"a\0b\"}", 25, CMQERR_PARAM_TYPE);
}

Test(dlq_policy, output_form_round_trips)
{
    char out[256];
    size_t n = dlq_policy_format("queue-ab\"c", 0, 5, 0, out, sizeof out);
    cr_assert_str_eq(out, "{\"deadLetterQueue\":\"queue-ab\\\"c\",\"policy\":0,"
                          "\"maxReceiveCount\":5,\"maxTimeToLive\":0}");
    cr_assert_eq(n, strlen(out));
    struct dlq_policy p = parse_ok(out);
    cr_assert_str_eq(p.dead_letter_queue, "queue-ab\"c");
    cr_assert(p.policy == 0 && p.max_receive_count == 5 && p.max_time_to_live == 0);
    cr_assert_eq(dlq_policy_format("q", 1, 1, 300, out, 10), 0, "too small: 0");
}
