/* namespace.c: conformance checks of the namespace (spec §6.1-6.5, §7.1-7.5,
 * §8, §11): queues(), topics(), subscriptions(), dead_letter_policy() and
 * quotas().  Part of the conformance suite (conformance.c). */
#include "conformance.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---------- queues (§6.1-6.5) ---------- */

void queues(void)
{
    struct jv *v;
    char q[80];
    snprintf(q, sizeof q, "%s", nm("q1"));
    v = CALL("CreateQueue", "queueName", q);
    expect_ok(v, "CreateQueue");
    expect_types(v, J_STR, "queueId", "CreateQueue");
    jv_free(v);
    v = CALL("CreateQueue", "queueName", q);
    expect_err(v, 4460, 0, "CreateQueue with an existing name");
    jv_free(v);
    char upper[80];
    snprintf(upper, sizeof upper, "%s", q);
    for (char *c = upper; *c; c++)
        if (*c >= 'a' && *c <= 'z')
            *c = (char)(*c - 32);
    v = CALL("CreateQueue", "queueName", upper);
    expect_err(v, 4460, 0, "CreateQueue: names are unique case-insensitively");
    jv_free(v);
    static const char *bad[] = {"1abc", "a_b", "a.b", "-ab",
                                "a1234567890123456789012345678901234567890123456789012345678901234"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        v = CALL("CreateQueue", "queueName", bad[i]);
        expect_err(v, 4000, 10020, "CreateQueue queueName=%.20s%s", bad[i],
                   strlen(bad[i]) > 20 ? "... (65 chars)" : "");
        jv_free(v);
    }
    v = CALL("CreateQueue");
    expect_err(v, 4000, 10390, "CreateQueue without queueName");
    jv_free(v);
    v = CALL("CreateQueue", "queueName", "");
    expect_err(v, 4000, 10390, "CreateQueue with queueName= (empty is absent, §5.3)");
    jv_free(v);
    v = CALL("CreateQueue", "queueName", nm("q2"), "visibilityTimeout", "abc");
    expect_err(v, 4000, 10360, "CreateQueue visibilityTimeout=abc");
    jv_free(v);
    struct {
        const char *k, *v;
    } ranges[] = {{"visibilityTimeout", "0"},       {"visibilityTimeout", "43201"},
                  {"maxMsgSize", "1023"},           {"maxMsgSize", "1048577"},
                  {"msgRetentionSeconds", "59"},    {"msgRetentionSeconds", "1296001"},
                  {"pollingWaitSeconds", "31"},     {"pollingWaitSeconds", "-1"},
                  {"maxMsgHeapNum", "999999"},      {"maxMsgHeapNum", "1000000001"}};
    for (size_t i = 0; i < sizeof ranges / sizeof ranges[0]; i++) {
        v = CALL("CreateQueue", "queueName", nm("q2"), ranges[i].k, ranges[i].v);
        expect_err(v, 4000, 10350, "CreateQueue %s=%s", ranges[i].k, ranges[i].v);
        jv_free(v);
    }
    v = CALL("CreateQueue", "queueName", nm("q2"), "msgRetentionSeconds", "600", "rewindSeconds",
             "601");
    expect_err(v, 4000, 10700, "CreateQueue rewindSeconds > msgRetentionSeconds");
    jv_free(v);
    v = CALL("CreateQueue", "queueName", nm("q2"), "maxMsgHeapNum", "1000000", "pollingWaitSeconds",
             "30", "visibilityTimeout", "43200", "maxMsgSize", "1048576", "msgRetentionSeconds",
             "1296000", "rewindSeconds", "1296000");
    expect_ok(v, "CreateQueue with every attribute at its maximum (Java sends maxMsgSize=1048576)");
    jv_free(v);
    v = CALL("CreateQueue", "queueName", nm("q3"), "visibilityTimeout", "");
    expect_ok(v, "CreateQueue with visibilityTimeout= (empty is absent)");
    jv_free(v);

    v = CALL("SetQueueAttributes", "queueName", q, "visibilityTimeout", "60", "maxMsgSize", "2048");
    expect_ok(v, "SetQueueAttributes");
    expect_types(v, J_NUM,
                 "maxMsgHeapNum pollingWaitSeconds visibilityTimeout maxMsgSize "
                 "msgRetentionSeconds rewindSeconds",
                 "SetQueueAttributes");
    check(iget(v, "visibilityTimeout") == 60 && iget(v, "maxMsgSize") == 2048,
          "SetQueueAttributes answers the new values");
    jv_free(v);
    v = CALL("SetQueueAttributes", "queueName", q, "visibilityTimeout", "43201");
    expect_err(v, 4000, 10350, "SetQueueAttributes visibilityTimeout=43201");
    jv_free(v);
    v = CALL("SetQueueAttributes", "queueName", nm("nope"), "visibilityTimeout", "60");
    expect_err(v, 4440, 10100, "SetQueueAttributes on a missing queue");
    jv_free(v);

    v = CALL("ListQueue", "searchWord", g_prefix);
    expect_ok(v, "ListQueue searchWord");
    const struct jv *l = jv_get(v, "queueList");
    int64_t total = iget(v, "totalCount");
    check(total >= 3, "ListQueue totalCount counts every match (%lld)", (long long)total);
    int shape = l && l->t == J_ARR && l->n > 0;
    for (size_t i = 0; shape && i < l->n; i++)
        shape = is_type(&l->kids[i], "queueId", J_STR) && is_type(&l->kids[i], "queueName", J_STR);
    check(shape, "ListQueue queueList entries have string queueId and queueName");
    jv_free(v);
    v = CALL("ListQueue", "searchWord", g_prefix, "limit", "1");
    check(v && jv_get(v, "queueList") && jv_get(v, "queueList")->n == 1 &&
              iget(v, "totalCount") == total,
          "ListQueue limit=1: one entry, totalCount unchanged");
    jv_free(v);
    v = CALL("ListQueue", "searchWord", g_prefix, "offset", "1");
    expect_ok(v, "ListQueue offset without limit (Java/C++ SDKs) is accepted");
    jv_free(v);
    v = CALL("ListQueue", "limit", "1000");
    check(v && iget(v, "code") == 0 && jv_get(v, "queueList") && jv_get(v, "queueList")->n <= 50,
          "ListQueue limit=1000 is clamped to 50");
    jv_free(v);

    v = CALL("DeleteQueue", "queueName", nm("q3"));
    expect_ok(v, "DeleteQueue");
    jv_free(v);
    v = CALL("DeleteQueue", "queueName", nm("q3"));
    expect_err(v, 4440, 10100, "DeleteQueue again");
    jv_free(v);
    v = CALL("DeleteQueue");
    expect_err(v, 4000, 10390, "DeleteQueue without queueName");
    jv_free(v);
    v = CALL("CreateQueue", "queueName", nm("q3"));
    check(v && (iget(v, "code") == 0 || iget(v, "code") == 6040),
          "CreateQueue right after DeleteQueue: created or 6040 cool-down (%s)", brief(v));
    jv_free(v);
}

/* ---------- topics (§7.1-7.5) ---------- */

void topics(void)
{
    struct jv *v;
    char t[80], t2[80];
    snprintf(t, sizeof t, "%s", nm("t1"));
    snprintf(t2, sizeof t2, "%s", nm("t2"));
    v = CALL("CreateTopic", "topicName", t);
    expect_ok(v, "CreateTopic");
    expect_types(v, J_STR, "topicId", "CreateTopic");
    jv_free(v);
    v = CALL("CreateTopic", "topicName", t2, "filterType", "2", "maxMsgSize", "1048576");
    expect_ok(v, "CreateTopic filterType=2 maxMsgSize=1048576 (Java client-side max)");
    jv_free(v);
    v = CALL("CreateTopic", "topicName", t);
    expect_err(v, 4460, 0, "CreateTopic with an existing name");
    check(v && strstr(sget(v, "message"), "topic") != NULL,
          "its message names a topic, not a queue (%s)", sget(v, "message"));
    jv_free(v);
    static const char *bad[] = {"9t", "t_1", "t 1",
                                "t1234567890123456789012345678901234567890123456789012345678901234"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        v = CALL("CreateTopic", "topicName", bad[i]);
        expect_err(v, 4000, 10590, "CreateTopic topicName=%.12s%s", bad[i],
                   strlen(bad[i]) > 12 ? "... (65 chars)" : "");
        jv_free(v);
    }
    char longname[200];
    memset(longname, 'a', 150);
    longname[150] = '\0';
    v = CALL("CreateTopic", "topicName", longname);
    expect_err(v, 4000, 10590, "CreateTopic topicName of 150 characters");
    jv_free(v);
    v = CALL("GetTopicAttributes", "topicName", longname);
    expect_err(v, 4000, 10350, "GetTopicAttributes topicName of 150 characters");
    jv_free(v);
    v = CALL("CreateTopic");
    expect_err(v, 4000, 10390, "CreateTopic without topicName");
    jv_free(v);
    v = CALL("CreateTopic", "topicName", nm("t3"), "maxMsgSize", "", "filterType", "");
    expect_ok(v, "CreateTopic maxMsgSize= filterType= (empty is absent)");
    jv_free(v);
    v = CALL("GetTopicAttributes", "topicName", nm("t3"));
    check(v && iget(v, "maxMsgSize") == 65536 && iget(v, "filterType") == 1,
          "and the defaults apply");
    jv_free(v);
    v = CALL("DeleteTopic", "topicName", nm("t3"));
    expect_ok(v, "DeleteTopic t3");
    jv_free(v);
    v = CALL("CreateTopic", "topicName", nm("t3"), "filterType", "3");
    expect_err(v, 4000, 10350, "CreateTopic filterType=3");
    jv_free(v);
    v = CALL("CreateTopic", "topicName", nm("t3"), "maxMsgSize", "1023");
    expect_err(v, 4000, 10350, "CreateTopic maxMsgSize=1023");
    jv_free(v);
    v = CALL("CreateTopic", "topicName", nm("t3"), "maxMsgSize", "big");
    expect_err(v, 4000, 10360, "CreateTopic maxMsgSize=big");
    jv_free(v);
    v = CALL("CreateTopic", "topicName", nm("t0"), "filterType", "0");
    expect_ok(v, "CreateTopic filterType=0 (legacy numbering) is accepted as tags");
    jv_free(v);
    v = CALL("GetTopicAttributes", "topicName", nm("t0"));
    check(v && iget(v, "filterType") == 1, "filterType=0 is stored and answered as 1");
    jv_free(v);

    v = CALL("GetTopicAttributes", "topicName", t);
    expect_ok(v, "GetTopicAttributes");
    expect_types(v, J_NUM,
                 "msgCount maxMsgSize msgRetentionSeconds createTime lastModifyTime filterType "
                 "LoggingEnabled",
                 "GetTopicAttributes");
    check(v && iget(v, "msgRetentionSeconds") == 86400 && iget(v, "filterType") == 1 &&
              iget(v, "maxMsgSize") == 65536,
          "GetTopicAttributes defaults: retention 86400, filterType 1, maxMsgSize 65536");
    int64_t now = (int64_t)time(NULL);
    check(v && llabs(iget(v, "createTime") - now) < 120,
          "createTime is Unix seconds (not milliseconds)");
    jv_free(v);
    v = CALL("GetTopicAttributes", "topicName", t2);
    check(v && iget(v, "filterType") == 2 && iget(v, "maxMsgSize") == 1048576,
          "GetTopicAttributes of a routing topic: filterType 2, maxMsgSize as created");
    jv_free(v);
    v = CALL("GetTopicAttributes", "topicName", nm("nope"));
    expect_err(v, 4440, 10600, "GetTopicAttributes of a missing topic");
    jv_free(v);
    v = CALL("GetTopicAttributes");
    expect_err(v, 4000, 10390, "GetTopicAttributes without topicName");
    jv_free(v);

    v = CALL("SetTopicAttributes", "topicName", t, "maxMsgSize", "4096");
    expect_ok(v, "SetTopicAttributes maxMsgSize=4096");
    jv_free(v);
    v = CALL("GetTopicAttributes", "topicName", t);
    check(v && iget(v, "maxMsgSize") == 4096, "GetTopicAttributes shows the new maxMsgSize");
    jv_free(v);
    v = CALL("SetTopicAttributes", "topicName", t, "maxMsgSize", "1048577");
    expect_err(v, 4000, 10350, "SetTopicAttributes maxMsgSize=1048577");
    jv_free(v);
    v = CALL("SetTopicAttributes", "topicName", t, "maxMsgSize", "x1");
    expect_err(v, 4000, 10360, "SetTopicAttributes maxMsgSize=x1");
    jv_free(v);
    v = CALL("SetTopicAttributes", "topicName", nm("nope"), "maxMsgSize", "4096");
    expect_err(v, 4440, 10600, "SetTopicAttributes on a missing topic");
    jv_free(v);

    v = CALL("ListTopic", "searchWord", g_prefix);
    expect_ok(v, "ListTopic searchWord");
    expect_types(v, J_NUM, "totalCount", "ListTopic");
    expect_types(v, J_ARR, "topicList", "ListTopic");
    const struct jv *l = jv_get(v, "topicList");
    int shape = l && l->t == J_ARR && l->n >= 3;
    for (size_t i = 0; shape && i < l->n; i++)
        shape = is_type(&l->kids[i], "topicId", J_STR) && is_type(&l->kids[i], "topicName", J_STR);
    check(shape, "ListTopic topicList entries have string topicId and topicName");
    int64_t total = iget(v, "totalCount");
    jv_free(v);
    v = CALL("ListTopic", "searchWord", g_prefix, "offset", "1", "limit", "1");
    check(v && jv_get(v, "topicList") && jv_get(v, "topicList")->n == 1 &&
              iget(v, "totalCount") == total,
          "ListTopic offset=1 limit=1: one entry, same totalCount");
    jv_free(v);
    v = CALL("ListTopic", "searchWord", "no-such-topic-anywhere");
    check(v && iget(v, "totalCount") == 0 && jv_get(v, "topicList") &&
              jv_get(v, "topicList")->t == J_ARR && jv_get(v, "topicList")->n == 0,
          "ListTopic with no match: totalCount 0 and an empty array");
    jv_free(v);
    v = CALL("ListTopic", "limit", "-5");
    expect_err(v, 4000, 10350, "ListTopic limit=-5");
    jv_free(v);

    v = CALL("DeleteTopic", "topicName", nm("t0"));
    expect_ok(v, "DeleteTopic");
    jv_free(v);
    v = CALL("DeleteTopic", "topicName", nm("t0"));
    expect_err(v, 4440, 10600, "DeleteTopic again");
    jv_free(v);
}

/* ---------- subscriptions (§8.1-8.6) ---------- */

void subscriptions(void)
{
    struct jv *v;
    char t[80], rt[80], q[80];
    snprintf(t, sizeof t, "%s", nm("t1"));
    snprintf(rt, sizeof rt, "%s", nm("t2"));
    snprintf(q, sizeof q, "%s", nm("q1"));
    v = CALL("Subscribe", "topicName", t, "subscriptionName", "s1", "protocol", "http", "endpoint",
             "http://127.0.0.1:9/push");
    expect_ok(v, "Subscribe http endpoint");
    expect_types(v, J_STR, "subscriptionId", "Subscribe");
    jv_free(v);
    v = CALL("Subscribe", "topicName", t, "subscriptionName", "s1", "protocol", "http", "endpoint",
             "http://127.0.0.1:9/push");
    expect_err(v, 4490, 10470, "Subscribe with an existing name");
    jv_free(v);
    v = CALL("Subscribe", "topicName", t, "subscriptionName", "S1", "protocol", "http", "endpoint",
             "http://127.0.0.1:9/push");
    expect_err(v, 4490, 10470, "Subscribe: names unique case-insensitively");
    jv_free(v);
    /* C++ SDK: 0-based lists; Python/Java defaults JSON for a queue. */
    v = CALL("Subscribe", "topicName", t, "subscriptionName", "s2", "protocol", "QUEUE", "endpoint",
             q, "notifyStrategy", "BACKOFF_RETRY", "notifyContentFormat", "JSON", "filterTag.0",
             "a", "filterTag.1", "b");
    expect_ok(v, "Subscribe queue endpoint, protocol=QUEUE, filterTag.0.., format JSON");
    jv_free(v);
    v = CALL("GetSubscriptionAttributes", "topicName", t, "subscriptionName", "s2");
    expect_ok(v, "GetSubscriptionAttributes");
    expect_types(v, J_STR,
                 "topicOwner protocol protocal endpoint notifyStrategy notifyContentFormat",
                 "GetSubscriptionAttributes");
    expect_types(v, J_NUM, "msgCount createTime lastModifyTime", "GetSubscriptionAttributes");
    expect_types(v, J_ARR, "filterTag filterTags bindingKey", "GetSubscriptionAttributes");
    check(v && strcmp(sget(v, "protocol"), "queue") == 0 &&
              strcmp(sget(v, "protocal"), "queue") == 0,
          "protocol stored lower-case, protocal repeats it");
    check(v && strcmp(sget(v, "endpoint"), q) == 0, "endpoint is the queue name");
    check(v && strcmp(sget(v, "notifyContentFormat"), "SIMPLIFIED") == 0,
          "a queue subscription's format is SIMPLIFIED (JSON coerced)");
    check(v && strcmp(sget(v, "notifyStrategy"), "BACKOFF_RETRY") == 0,
          "notifyStrategy as given");
    check(v && strcmp(sget(v, "topicOwner"), g_appid) == 0, "topicOwner is the APPID (%s)",
          sget(v, "topicOwner"));
    const struct jv *ft = jv_get(v, "filterTag"), *fts = jv_get(v, "filterTags");
    check(ft && fts && ft->n == 2 && fts->n == 2 && ft->kids[0].t == J_STR &&
              strcmp(ft->kids[0].s, "a") == 0 && strcmp(ft->kids[1].s, "b") == 0 &&
              strcmp(fts->kids[1].s, "b") == 0,
          "filterTag and filterTags: [\"a\",\"b\"] in index order");
    check(jv_get(v, "bindingKey") && jv_get(v, "bindingKey")->n == 0,
          "bindingKey is an empty array, not null");
    jv_free(v);
    v = CALL("GetSubscriptionAttributes", "topicName", t, "subscriptionName", "s1");
    check(v && strcmp(sget(v, "notifyStrategy"), "EXPONENTIAL_DECAY_RETRY") == 0 &&
              strcmp(sget(v, "notifyContentFormat"), "JSON") == 0,
          "defaults: EXPONENTIAL_DECAY_RETRY and JSON for http");
    jv_free(v);

    /* Parameter errors of Subscribe. */
    struct {
        const char *k1, *v1, *k2, *v2;
        int code, module;
        const char *what;
    } errs[] = {
        {"protocol", "ftp", "endpoint", "http://h/", 4000, 10510, "protocol=ftp"},
        {"protocol", "http", "endpoint", "ftp://h/", 4000, 10500, "endpoint not http(s)://"},
        {"protocol", "http", "endpoint", "http://a b/", 4510, 10570, "endpoint with a blank"},
        {"protocol", "queue", "endpoint", "no-such-queue-x", 4440, 10100,
         "queue endpoint that does not exist"},
        {"notifyStrategy", "SOMETIMES", "endpoint", "http://h/", 4000, 10520,
         "notifyStrategy=SOMETIMES"},
        {"notifyContentFormat", "XML", "endpoint", "http://h/", 4000, 10530,
         "notifyContentFormat=XML"},
        {"filterTag.1", "a", "filterTag.3", "c", 4000, 10380, "filterTag gap (1, 3)"},
        {"filterTag.1", "abcdefghijklmnopq", "endpoint", "http://h/", 4000, 10350,
         "filterTag of 17 characters"},
    };
    for (size_t i = 0; i < sizeof errs / sizeof errs[0]; i++) {
        const char *kv[] = {"topicName", t,        "subscriptionName", "sx",
                            "protocol",  "http",   "endpoint",         "http://h/",
                            errs[i].k1,  errs[i].v1, errs[i].k2,       errs[i].v2};
        /* later duplicates of protocol/endpoint replace the defaults */
        const char *args[12];
        size_t n = 0;
        for (size_t k = 0; k < 8; k += 2) {
            if (strcmp(kv[k], errs[i].k1) == 0 || strcmp(kv[k], errs[i].k2) == 0)
                continue;
            args[n++] = kv[k];
            args[n++] = kv[k + 1];
        }
        args[n++] = errs[i].k1;
        args[n++] = errs[i].v1;
        args[n++] = errs[i].k2;
        args[n++] = errs[i].v2;
        v = cmq_callv(&g_cl, 0, NULL, "Subscribe", args, n);
        expect_err(v, errs[i].code, errs[i].module, "Subscribe %s", errs[i].what);
        jv_free(v);
    }
    v = CALL("Subscribe", "topicName", t, "subscriptionName", "sx", "protocol", "http", "endpoint",
             "http://h/", "filterTag.1", "a", "filterTag.2", "b", "filterTag.3", "c",
             "filterTag.4", "d", "filterTag.5", "e", "filterTag.6", "f");
    expect_err(v, 4000, 10490, "Subscribe with 6 filterTags");
    jv_free(v);
    v = CALL("Subscribe", "topicName", t, "subscriptionName", "sx", "protocol", "http", "endpoint",
             "http://h/", "filterTag.1", "a", "filterTag.2", "", "filterTag.3", "");
    expect_ok(v, "Subscribe: empty filterTag entries count as absent");
    jv_free(v);
    v = CALL("GetSubscriptionAttributes", "topicName", t, "subscriptionName", "sx");
    check(v && jv_get(v, "filterTag") && jv_get(v, "filterTag")->n == 1,
          "only the non-empty filterTag was stored");
    jv_free(v);
    char longsub[200];
    memset(longsub, 's', 150);
    longsub[150] = '\0';
    v = CALL("Subscribe", "topicName", t, "subscriptionName", longsub, "protocol", "http",
             "endpoint", "http://h/");
    expect_err(v, 4000, 10580, "Subscribe subscriptionName of 150 characters");
    jv_free(v);
    char longep[600] = "http://h/";
    memset(longep + 9, 'p', 500);
    longep[509] = '\0';
    v = CALL("Subscribe", "topicName", t, "subscriptionName", "sz", "protocol", "http",
             "endpoint", longep);
    expect_err(v, 4000, 10350, "Subscribe endpoint of 509 characters");
    jv_free(v);
    v = CALL("Subscribe", "topicName", t, "subscriptionName", "sh", "protocol", "HTTP",
             "endpoint", "https://example.com:8443/cmq?x=1", "notifyStrategy",
             "exponential_decay_retry");
    expect_ok(v, "Subscribe https:// endpoint with port and query, protocol=HTTP, strategy in lower case");
    jv_free(v);
    v = CALL("GetSubscriptionAttributes", "topicName", t, "subscriptionName", "sh");
    check(v && strcmp(sget(v, "protocol"), "http") == 0 &&
              strcmp(sget(v, "notifyStrategy"), "EXPONENTIAL_DECAY_RETRY") == 0 &&
              strcmp(sget(v, "endpoint"), "https://example.com:8443/cmq?x=1") == 0,
          "stored in canonical spelling, endpoint verbatim");
    jv_free(v);
    jv_free(CALL("Unsubscribe", "topicName", t, "subscriptionName", "sh"));
    static const char *badsub[] = {"1s", "s_1", "s.1"};
    for (size_t i = 0; i < 3; i++) {
        v = CALL("Subscribe", "topicName", t, "subscriptionName", badsub[i], "protocol", "http",
                 "endpoint", "http://h/");
        expect_err(v, 4000, 10580, "Subscribe subscriptionName=%s", badsub[i]);
        jv_free(v);
    }
    static const char *missing[] = {"topicName", "subscriptionName", "protocol", "endpoint"};
    for (size_t i = 0; i < 4; i++) {
        const char *all[] = {"topicName", t, "subscriptionName", "sy", "protocol", "http",
                             "endpoint", "http://h/"};
        const char *args[8];
        size_t n = 0;
        for (size_t k = 0; k < 8; k += 2)
            if (strcmp(all[k], missing[i]) != 0) {
                args[n++] = all[k];
                args[n++] = all[k + 1];
            }
        v = cmq_callv(&g_cl, 0, NULL, "Subscribe", args, n);
        expect_err(v, 4000, 10390, "Subscribe without %s", missing[i]);
        jv_free(v);
    }
    v = CALL("Subscribe", "topicName", nm("nope"), "subscriptionName", "s1", "protocol", "http",
             "endpoint", "http://h/");
    expect_err(v, 4440, 10600, "Subscribe to a missing topic");
    jv_free(v);

    /* Routing topic: binding keys. */
    v = CALL("Subscribe", "topicName", rt, "subscriptionName", "r1", "protocol", "http",
             "endpoint", "http://h/");
    expect_err(v, 4000, 10710, "Subscribe to a filterType 2 topic without bindingKey");
    jv_free(v);
    v = CALL("Subscribe", "topicName", rt, "subscriptionName", "r1", "protocol", "http",
             "endpoint", "http://h/", "bindingKey.1", "a.*.c", "bindingKey.2", "x.#");
    expect_ok(v, "Subscribe with bindingKey.1, bindingKey.2");
    jv_free(v);
    v = CALL("GetSubscriptionAttributes", "topicName", rt, "subscriptionName", "r1");
    const struct jv *bk = v ? jv_get(v, "bindingKey") : NULL;
    check(bk && bk->n == 2 && strcmp(bk->kids[0].s, "a.*.c") == 0 &&
              strcmp(bk->kids[1].s, "x.#") == 0,
          "bindingKey answered as [\"a.*.c\",\"x.#\"]");
    jv_free(v);
    v = CALL("Subscribe", "topicName", rt, "subscriptionName", "r2", "protocol", "http",
             "endpoint", "http://h/", "bindingKey.1", "a", "bindingKey.2", "b", "bindingKey.3", "c",
             "bindingKey.4", "d", "bindingKey.5", "e", "bindingKey.6", "f");
    expect_err(v, 4000, 10680, "Subscribe with 6 bindingKeys");
    jv_free(v);
    v = CALL("Subscribe", "topicName", rt, "subscriptionName", "r2", "protocol", "http",
             "endpoint", "http://h/", "bindingKey.1", "a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q");
    expect_err(v, 4000, 10691, "Subscribe with a bindingKey of 16 dots");
    jv_free(v);
    char longkey[80];
    memset(longkey, 'k', 65);
    longkey[65] = '\0';
    v = CALL("Subscribe", "topicName", rt, "subscriptionName", "r2", "protocol", "http",
             "endpoint", "http://h/", "bindingKey.1", longkey);
    expect_err(v, 4000, 10350, "Subscribe with a bindingKey of 65 bytes");
    jv_free(v);

    /* ListSubscriptionByTopic. */
    v = CALL("ListSubscriptionByTopic", "topicName", t);
    expect_ok(v, "ListSubscriptionByTopic");
    expect_types(v, J_NUM, "totalCount", "ListSubscriptionByTopic");
    expect_types(v, J_ARR, "subscriptionList", "ListSubscriptionByTopic");
    const struct jv *sl = v ? jv_get(v, "subscriptionList") : NULL;
    int shape = sl && sl->n == 3 && iget(v, "totalCount") == 3;
    for (size_t i = 0; shape && i < sl->n; i++)
        shape = is_type(&sl->kids[i], "subscriptionId", J_STR) &&
                is_type(&sl->kids[i], "subscriptionName", J_STR) &&
                is_type(&sl->kids[i], "protocol", J_STR) && is_type(&sl->kids[i], "endpoint", J_STR);
    check(shape, "ListSubscriptionByTopic: 3 entries with string subscriptionId, "
                 "subscriptionName, protocol, endpoint");
    jv_free(v);
    v = CALL("ListSubscriptionByTopic", "topicName", t, "searchWord", "s2");
    check(v && iget(v, "totalCount") == 1 && jv_get(v, "subscriptionList")->n == 1 &&
              strcmp(sget(&jv_get(v, "subscriptionList")->kids[0], "subscriptionName"), "s2") == 0,
          "ListSubscriptionByTopic searchWord=s2");
    jv_free(v);
    v = CALL("ListSubscriptionByTopic", "topicName", t, "offset", "2", "limit", "5");
    check(v && iget(v, "totalCount") == 3 && jv_get(v, "subscriptionList")->n == 1,
          "ListSubscriptionByTopic offset=2 limit=5: the last one, totalCount 3");
    jv_free(v);
    v = CALL("ListSubscriptionByTopic", "topicName", t, "offset", "1001");
    expect_err(v, 4000, 10350, "ListSubscriptionByTopic offset=1001");
    jv_free(v);
    v = CALL("ListSubscriptionByTopic", "topicName", nm("nope"));
    expect_err(v, 4440, 10600, "ListSubscriptionByTopic of a missing topic");
    jv_free(v);
    v = CALL("ListSubscriptionByTopic");
    expect_err(v, 4000, 10390, "ListSubscriptionByTopic without topicName");
    jv_free(v);

    /* SetSubscriptionAttributes. */
    v = CALL("SetSubscriptionAttributes", "topicName", t, "subscriptionName", "s1",
             "notifyStrategy", "BACKOFF_RETRY", "notifyContentFormat", "SIMPLIFIED", "filterTag.1",
             "x", "filterTag.2", "y", "filterTag.3", "z");
    expect_ok(v, "SetSubscriptionAttributes strategy, format, filterTag list");
    jv_free(v);
    v = CALL("GetSubscriptionAttributes", "topicName", t, "subscriptionName", "s1");
    check(v && strcmp(sget(v, "notifyStrategy"), "BACKOFF_RETRY") == 0 &&
              strcmp(sget(v, "notifyContentFormat"), "SIMPLIFIED") == 0 &&
              jv_get(v, "filterTag")->n == 3,
          "GetSubscriptionAttributes shows the new settings and 3 tags");
    int64_t modified = iget(v, "lastModifyTime");
    jv_free(v);
    v = CALL("SetSubscriptionAttributes", "topicName", t, "subscriptionName", "s1",
             "notifyStrategy", "", "notifyContentFormat", "");
    expect_ok(v, "SetSubscriptionAttributes with empty notifyStrategy= notifyContentFormat= (C++)");
    jv_free(v);
    v = CALL("GetSubscriptionAttributes", "topicName", t, "subscriptionName", "s1");
    check(v && strcmp(sget(v, "notifyStrategy"), "BACKOFF_RETRY") == 0 &&
              jv_get(v, "filterTag")->n == 3 && iget(v, "lastModifyTime") >= modified,
          "empty values changed nothing");
    jv_free(v);
    v = CALL("SetSubscriptionAttributes", "topicName", t, "subscriptionName", "s1", "filterTag.1",
             "only");
    expect_ok(v, "SetSubscriptionAttributes with a new filterTag list");
    jv_free(v);
    v = CALL("GetSubscriptionAttributes", "topicName", t, "subscriptionName", "s1");
    check(v && jv_get(v, "filterTag")->n == 1 && strcmp(jv_get(v, "filterTag")->kids[0].s, "only") == 0,
          "a supplied list replaces the stored one");
    jv_free(v);
    v = CALL("SetSubscriptionAttributes", "topicName", t, "subscriptionName", "s1",
             "notifyStrategy", "NEVER");
    expect_err(v, 4000, 10520, "SetSubscriptionAttributes notifyStrategy=NEVER");
    jv_free(v);
    v = CALL("SetSubscriptionAttributes", "topicName", t, "subscriptionName", "s1",
             "notifyContentFormat", "YAML");
    expect_err(v, 4000, 10530, "SetSubscriptionAttributes notifyContentFormat=YAML");
    jv_free(v);
    v = CALL("SetSubscriptionAttributes", "topicName", t, "subscriptionName", "nope",
             "notifyStrategy", "BACKOFF_RETRY");
    expect_err(v, 4440, 0, "SetSubscriptionAttributes of a missing subscription");
    jv_free(v);
    v = CALL("SetSubscriptionAttributes", "topicName", rt, "subscriptionName", "r1",
             "bindingKey.0", "k.#");
    expect_ok(v, "SetSubscriptionAttributes bindingKey.0 (0-based)");
    jv_free(v);

    /* ClearSubscriptionFilterTags, with the Java SDK's spelling. */
    v = CALL("ClearSUbscriptionFIlterTags", "topicName", t, "subscriptionName", "s2");
    expect_ok(v, "ClearSUbscriptionFIlterTags (Java SDK spelling)");
    jv_free(v);
    v = CALL("GetSubscriptionAttributes", "topicName", t, "subscriptionName", "s2");
    check(v && jv_get(v, "filterTag") && jv_get(v, "filterTag")->n == 0 &&
              jv_get(v, "filterTags")->n == 0,
          "filter tags cleared: empty arrays");
    jv_free(v);
    v = CALL("ClearSubscriptionFilterTags", "topicName", t, "subscriptionName", "nope");
    expect_err(v, 4440, 0, "ClearSubscriptionFilterTags of a missing subscription");
    jv_free(v);

    /* DeleteTopic refuses while subscriptions exist (§7.5). */
    v = CALL("DeleteTopic", "topicName", t);
    expect_err(v, 4000, 10540, "DeleteTopic with subscriptions");
    jv_free(v);

    /* Unsubscribe. */
    v = CALL("Unsubscribe", "topicName", t, "subscriptionName", "s1");
    expect_ok(v, "Unsubscribe");
    jv_free(v);
    v = CALL("Unsubscribe", "topicName", t, "subscriptionName", "s1");
    expect_err(v, 4440, 10600, "Unsubscribe again (subscription missing)");
    check(v && strstr(sget(v, "message"), "subscription is not existed") != NULL,
          "its message names the subscription (%s)", sget(v, "message"));
    jv_free(v);
    v = CALL("Unsubscribe", "topicName", nm("nope"), "subscriptionName", "s1");
    expect_err(v, 4440, 10600, "Unsubscribe on a missing topic");
    jv_free(v);
    v = CALL("GetSubscriptionAttributes", "topicName", t, "subscriptionName", "s1");
    expect_err(v, 4440, 0, "GetSubscriptionAttributes after Unsubscribe");
    jv_free(v);
    v = CALL("Unsubscribe", "topicName", t);
    expect_err(v, 4000, 10390, "Unsubscribe without subscriptionName");
    jv_free(v);
    jv_free(CALL("Unsubscribe", "topicName", t, "subscriptionName", "s2"));
    jv_free(CALL("Unsubscribe", "topicName", t, "subscriptionName", "sx"));
    v = CALL("DeleteTopic", "topicName", t);
    expect_ok(v, "DeleteTopic once its subscriptions are gone");
    jv_free(v);
}

/* ---------- quotas (§11) ---------- */

void quotas(void)
{
    struct jv *v;
    /* Subscriptions per topic: 100. */
    char t[80];
    snprintf(t, sizeof t, "%s", nm("quota-t"));
    jv_free(CALL("CreateTopic", "topicName", t));
    int created = 0;
    for (int i = 0; i < 100; i++) {
        char sub[16];
        snprintf(sub, sizeof sub, "s%d", i);
        v = CALL("Subscribe", "topicName", t, "subscriptionName", sub, "protocol", "http",
                 "endpoint", "http://127.0.0.1:9/");
        created += v && iget(v, "code") == 0;
        jv_free(v);
    }
    check(created == 100, "100 subscriptions on one topic (%d)", created);
    v = CALL("Subscribe", "topicName", t, "subscriptionName", "s100", "protocol", "http",
             "endpoint", "http://127.0.0.1:9/");
    expect_err(v, 4500, 10480, "the 101st subscription");
    jv_free(v);
    v = CALL("ListSubscriptionByTopic", "topicName", t, "limit", "500");
    check(v && iget(v, "totalCount") == 100 && jv_get(v, "subscriptionList")->n == 100,
          "ListSubscriptionByTopic limit=500 clamped to 100 of 100");
    jv_free(v);

    /* Queues and topics per account: 1000 each, on a fresh account. */
    char out[1024], appid[32], kid[80], kkey[80];
    if (ctl(out, sizeof out, "account create --name conformance-quota") != 0 ||
        env_val(out, "CMQ_APPID", appid, sizeof appid) ||
        new_key(appid, 0, kid, sizeof kid, kkey, sizeof kkey)) {
        report(0, "quota account", "cmqctl account/key create failed");
        return;
    }
    struct cmq_client k;
    cmq_client_init(&k, g_ip, g_port, kid, kkey);
    int nq = 0, nt = 0;
    time_t t0 = time(NULL);
    for (int i = 0; i < 1000; i++) {
        char name[32];
        snprintf(name, sizeof name, "q%d", i);
        v = cmq_call(&k, 0, "CreateQueue", "queueName", name, (const char *)NULL);
        nq += v && iget(v, "code") == 0;
        jv_free(v);
        snprintf(name, sizeof name, "t%d", i);
        v = cmq_call(&k, 0, "CreateTopic", "topicName", name, (const char *)NULL);
        nt += v && iget(v, "code") == 0;
        jv_free(v);
    }
    check(nq == 1000 && nt == 1000, "1000 queues and 1000 topics on a new account (%d, %d; %ld s)",
          nq, nt, (long)(time(NULL) - t0));
    v = cmq_call(&k, 0, "CreateQueue", "queueName", "q1000", (const char *)NULL);
    expect_err(v, 4450, 10220, "the 1001st queue");
    jv_free(v);
    v = cmq_call(&k, 0, "CreateTopic", "topicName", "t1000", (const char *)NULL);
    expect_err(v, 4450, 10610, "the 1001st topic");
    jv_free(v);
    v = cmq_call(&k, 0, "ListQueue", (const char *)NULL);
    check(v && iget(v, "totalCount") == 1000 && jv_get(v, "queueList")->n == 20,
          "ListQueue default page: 20 of 1000");
    jv_free(v);
    /* Accounts are separate namespaces. */
    v = CALL("GetTopicAttributes", "topicName", "t1");
    expect_err(v, 4440, 10600, "another account's topic is not visible");
    jv_free(v);
    http_close(&k.http);
}



/* deadLetterPolicy (spec §6): JSON text in, JSON text with the DLQ's id out. */
void dead_letter_policy(void)
{
    char src[80], dlq[80], pol[300];
    snprintf(src, sizeof src, "%s", nm("dl-src"));
    snprintf(dlq, sizeof dlq, "%s", nm("dl-q"));
    struct jv *v = CALL("CreateQueue", "queueName", dlq);
    char dlq_id[80];
    snprintf(dlq_id, sizeof dlq_id, "%s", sget(v, "queueId"));
    jv_free(v);
    snprintf(pol, sizeof pol, "{\"deadLetterQueue\":\"%s\",\"policy\":0,\"maxReceiveCount\":3}",
             dlq);
    v = CALL("CreateQueue", "queueName", src, "deadLetterPolicy", pol);
    expect_ok(v, "CreateQueue with deadLetterPolicy (policy 0, maxReceiveCount 3)");
    jv_free(v);
    v = CALL("GetQueueAttributes", "queueName", src);
    const struct jv *dp = jv_get(v, "deadLetterPolicy");
    struct jv *in = dp && dp->t == J_STR ? json_parse(dp->s, strlen(dp->s)) : NULL;
    check(in && strcmp(sget(in, "deadLetterQueue"), dlq_id) == 0 && iget(in, "policy") == 0 &&
              iget(in, "maxReceiveCount") == 3,
          "GetQueueAttributes: deadLetterPolicy is JSON text naming the DLQ by id (%s)",
          dp && dp->t == J_STR ? dp->s : "absent");
    jv_free(in);
    jv_free(v);
    snprintf(pol, sizeof pol, " { \"policy\" : \"1\", \"maxTimeToLive\": 600, "
             "\"deadLetterQueue\": \"%s\", \"comment\": [1, {\"x\": null}] } ", dlq);
    v = CALL("SetQueueAttributes", "queueName", src, "deadLetterPolicy", pol);
    expect_ok(v, "SetQueueAttributes deadLetterPolicy policy 1 (quoted number, blanks, an "
                 "unknown member)");
    dp = jv_get(v, "deadLetterPolicy");
    in = dp && dp->t == J_STR ? json_parse(dp->s, strlen(dp->s)) : NULL;
    check(in && iget(in, "policy") == 1 && iget(in, "maxTimeToLive") == 600,
          "SetQueueAttributes answers the new deadLetterPolicy (%s)",
          dp && dp->t == J_STR ? dp->s : "absent");
    jv_free(in);
    jv_free(v);
    static const struct {
        const char *text;
        int code, module;
        const char *what;
    } bad[] = {
        {"{\"policy\":0,", 4000, 10360, "malformed JSON"},
        {"[1]", 4000, 10360, "not an object"},
        {"{\"policy\":0.5}", 4000, 10360, "policy not an integer"},
        {"{\"policy\":2,\"deadLetterQueue\":\"x\"}", 4000, 10350, "policy 2"},
        {"{\"policy\":0,\"maxReceiveCount\":0,\"deadLetterQueue\":\"x\"}", 4000, 10350,
         "maxReceiveCount 0"},
        {"{\"policy\":0,\"maxReceiveCount\":3,\"deadLetterQueue\":\"no-such-dlq-x\"}", 4000,
         10110, "a DLQ that does not exist"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        v = CALL("SetQueueAttributes", "queueName", src, "deadLetterPolicy", bad[i].text);
        expect_err(v, bad[i].code, bad[i].module, "deadLetterPolicy %s", bad[i].what);
        jv_free(v);
    }
    v = CALL("SetQueueAttributes", "queueName", src, "deadLetterPolicy", "");
    expect_ok(v, "SetQueueAttributes deadLetterPolicy=\"\" removes the policy");
    jv_free(v);
    v = CALL("GetQueueAttributes", "queueName", src);
    check(v && iget(v, "code") == 0 && !jv_get(v, "deadLetterPolicy"),
          "after removal GetQueueAttributes has no deadLetterPolicy");
    jv_free(v);
}
