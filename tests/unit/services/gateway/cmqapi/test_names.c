/* test_names.c: services/gateway/cmqapi/names.c: the §5.1 name rule, case
 * folding, tags, routing keys, endpoints and subscription enums (§7.6, §8.1). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "cmq_limits.h"
#include "names.h"
#include "status.h"

static bool ok(const char *s) { return name_valid(s, strlen(s)); }

Test(names, the_rule)
{
    cr_assert(ok("a"));
    cr_assert(ok("test-queue-1"));
    cr_assert(ok("Q9-"));
    char max[CMQ_NAME_LEN_MAX + 2];
    memset(max, 'a', sizeof(max));
    cr_assert(name_valid(max, CMQ_NAME_LEN_MAX));
    cr_assert_not(name_valid(max, CMQ_NAME_LEN_MAX + 1));
    const char *bad[] = {"", "1abc", "-abc", "a_b", "a b", "a.b", "\xC3\xA9t\xC3\xA9", "a/b"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
        cr_assert_not(ok(bad[i]), "%s", bad[i]);
    cr_assert_not(name_valid("ab\0c", 4));
}

Test(names, rows_per_resource)
{
    struct cmq_fault f;
    cr_assert_eq(name_check_queue("1q", 2, &f), CMQ_EINVAL);
    cr_assert_eq(cmq_error_module(f.err), 10020);
    cr_assert_eq(name_check_topic("1q", 2, &f), CMQ_EINVAL);
    cr_assert_eq(cmq_error_module(f.err), 10590);
    cr_assert_eq(name_check_subscription("1q", 2, &f), CMQ_EINVAL);
    cr_assert_eq(cmq_error_module(f.err), 10580);
    cr_assert_eq(name_check_queue("q", 1, &f), CMQ_OK);
}

Test(names, case_folding_for_uniqueness)
{
    char out[16];
    name_fold("My-Queue-1", 10, out);
    cr_assert_str_eq(out, "my-queue-1");
    cr_assert(name_equal_ci("MyQueue", 7, "myqueue", 7));
    cr_assert_not(name_equal_ci("MyQueue", 7, "myqueue2", 8));
    cr_assert_not(name_equal_ci("a-b", 3, "a_b", 3));
}

Test(names, tags_count_characters)
{
    struct cmq_fault f;
    cr_assert_eq(name_check_tag("msgTag", "abcdefghijklmnop", 16, &f), CMQ_OK);
    cr_assert_eq(name_check_tag("msgTag", "abcdefghijklmnopq", 17, &f), CMQ_EINVAL);
    cr_assert_eq(f.err, CMQERR_PARAM_RANGE);
    cr_assert_str_eq(f.arg, "msgTag");
    /* 16 CJK characters are 48 bytes and still one tag. */
    char cjk[64] = "";
    for (int i = 0; i < 16; i++)
        strcat(cjk, "\xE4\xB8\x96");
    cr_assert_eq(name_check_tag("filterTag", cjk, strlen(cjk), &f), CMQ_OK);
    cr_assert_eq(name_check_tag("filterTag", "", 0, &f), CMQ_EINVAL);
}

Test(names, routing_keys)
{
    struct cmq_fault f;
    cr_assert_eq(name_check_routing_key("routingKey", "a.b.*.#", 7, &f), CMQ_OK);
    const char *dots16 = "a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a";
    cr_assert_eq(name_check_routing_key("bindingKey", dots16, strlen(dots16), &f), CMQ_EINVAL);
    cr_assert_eq(f.err, CMQERR_TOO_MANY_DELIMITERS);
    cr_assert_eq(name_check_routing_key("bindingKey", dots16 + 2, strlen(dots16) - 2, &f),
                 CMQ_OK, "15 dots");
    char long_key[80];
    memset(long_key, 'k', sizeof(long_key));
    cr_assert_eq(name_check_routing_key("routingKey", long_key, 64, &f), CMQ_OK);
    cr_assert_eq(name_check_routing_key("routingKey", long_key, 65, &f), CMQ_EINVAL);
    cr_assert_eq(f.err, CMQERR_PARAM_RANGE);
}

Test(names, endpoints)
{
    struct cmq_fault f;
    const char *good[] = {"http://example.com", "https://1.2.3.4:8080/push?x=1", "HTTP://h/"};
    for (size_t i = 0; i < 3; i++)
        cr_assert_eq(name_check_endpoint(good[i], strlen(good[i]), &f), CMQ_OK, "%s", good[i]);
    static const struct {
        const char *s;
        enum cmq_err e;
    } bad[] = {
        {"http://a b", CMQERR_ENDPOINT_BLANK}, {"http://a\tb", CMQERR_ENDPOINT_BLANK},
        {"ftp://a", CMQERR_ENDPOINT_FORMAT},   {"http://", CMQERR_ENDPOINT_FORMAT},
        {"http:///x", CMQERR_ENDPOINT_FORMAT}, {"example.com", CMQERR_ENDPOINT_FORMAT},
        {"http://:80/", CMQERR_ENDPOINT_FORMAT},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        cr_assert_eq(name_check_endpoint(bad[i].s, strlen(bad[i].s), &f), CMQ_EINVAL, "%s",
                     bad[i].s);
        cr_assert_eq(f.err, bad[i].e, "%s: %s", bad[i].s, cmq_error_id(f.err));
    }
    char big[CMQ_ENDPOINT_CHARS_MAX + 2];
    memcpy(big, "http://", 7);
    memset(big + 7, 'h', sizeof(big) - 7);
    cr_assert_eq(name_check_endpoint(big, CMQ_ENDPOINT_CHARS_MAX, &f), CMQ_OK);
    cr_assert_eq(name_check_endpoint(big, CMQ_ENDPOINT_CHARS_MAX + 1, &f), CMQ_EINVAL);
    cr_assert_eq(f.err, CMQERR_PARAM_RANGE);
}

Test(names, subscription_enums)
{
    struct cmq_fault f;
    enum sub_protocol p;
    cr_assert_eq(name_parse_protocol("HTTP", 4, &p, &f), CMQ_OK);
    cr_assert_eq(p, SUB_PROTOCOL_HTTP);
    cr_assert_str_eq(name_protocol_str(p), "http");
    cr_assert_eq(name_parse_protocol("queue", 5, &p, &f), CMQ_OK);
    cr_assert_eq(p, SUB_PROTOCOL_QUEUE);
    cr_assert_eq(name_parse_protocol("https", 5, &p, &f), CMQ_EINVAL);
    cr_assert_eq(f.err, CMQERR_PROTOCOL_UNDEFINED);
    enum notify_strategy s;
    cr_assert_eq(name_parse_notify_strategy("BACKOFF_RETRY", 13, &s, &f), CMQ_OK);
    cr_assert_eq(s, NOTIFY_BACKOFF_RETRY);
    cr_assert_eq(name_parse_notify_strategy("EXPONENTIAL_DECAY_RETRY", 23, &s, &f), CMQ_OK);
    cr_assert_str_eq(name_notify_strategy_str(s), "EXPONENTIAL_DECAY_RETRY");
    cr_assert_eq(name_parse_notify_strategy("RETRY", 5, &s, &f), CMQ_EINVAL);
    cr_assert_eq(f.err, CMQERR_NOTIFY_STRATEGY_UNDEFINED);
    enum notify_format nf;
    cr_assert_eq(name_parse_notify_format("simplified", 10, &nf, &f), CMQ_OK);
    cr_assert_str_eq(name_notify_format_str(nf), "SIMPLIFIED");
    cr_assert_eq(name_parse_notify_format("XML", 3, &nf, &f), CMQ_EINVAL);
    cr_assert_eq(f.err, CMQERR_NOTIFY_FORMAT_UNDEFINED);
}
