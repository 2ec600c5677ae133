/* fuzz_one.h: one fuzzing step over the gateway API library, shared by the
 * corpus replay (test_corpus.c) and the libFuzzer target (fuzz_gwapi.c).
 *
 * The input is a raw request: the bytes before the first '\n' are the query
 * string and the rest the body (no '\n': all body).  It is parsed, then every
 * consumer of parsed parameters runs on it: the action lookup, the typed
 * getters, every indexed list, the string to sign, verification for GET and
 * POST against two hosts, a form-encode/parse round trip, and a JSON error
 * reply.  Internal consistency is checked with abort(), so both the fuzzer
 * and Criterion see a violation as a crash.
 */
#ifndef GW_FUZZ_ONE_H
#define GW_FUZZ_ONE_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "action.h"
#include "json.h"
#include "cmq_limits.h"
#include "dlq_policy.h"
#include "names.h"
#include "params.h"
#include "sign.h"
#include "status.h"

#define FUZZ_KEY "ExampleSecretKeyForCmqSpec0123456"

struct fuzz_result {
    int parse_status;  /* params_parse of query then body */
    int verify_status; /* CMQ_OK when GET or POST verified */
};

#define FUZZ_CHECK(cond)                                                                \
    do {                                                                                \
        if (!(cond))                                                                    \
            abort();                                                                    \
    } while (0)

static void fuzz_consumers(struct params *p, struct fuzz_result *r)
{
    struct cmq_fault f;
    enum cmq_action a;
    int rc = action_from_params(p, &a, &f);
    FUZZ_CHECK(rc == CMQ_OK || rc == CMQ_ENOTFOUND || rc == CMQ_EUNSUPPORTED);

    const char *ints[] = {"delaySeconds", "pollingWaitSeconds", "numOfMsg", "offset", "limit",
                          "visibilityTimeout", "maxMsgSize", "startConsumeTime", "filterType"};
    for (size_t i = 0; i < sizeof(ints) / sizeof(*ints); i++) {
        int64_t v;
        rc = params_get_int(p, ints[i], 0, 1000000, &v, &f);
        FUZZ_CHECK(rc != CMQ_OK || (v >= 0 && v <= 1000000));
    }
    const char *s;
    size_t n;
    if (params_get_str(p, "queueName", CMQ_NAME_LEN_MAX, &s, &n, &f) == CMQ_OK) {
        FUZZ_CHECK(n <= CMQ_NAME_LEN_MAX);
        (void)name_check_queue(s, n, &f);
    }
    if (params_get_str(p, "endpoint", 4 * CMQ_ENDPOINT_CHARS_MAX, &s, &n, &f) == CMQ_OK)
        (void)name_check_endpoint(s, n, &f);
    bool b;
    (void)params_get_bool(p, "b", &b, &f);

    struct param_view dv;
    if (params_find(p, "deadLetterPolicy", &dv)) {
        struct dlq_policy d;
        rc = dlq_policy_parse(dv.val, dv.val_len, &d, &f);
        FUZZ_CHECK(rc == CMQ_OK || rc == CMQ_ENOTFOUND || rc == CMQ_EINVAL);
        FUZZ_CHECK(strlen(d.dead_letter_queue) <= DLQ_POLICY_QUEUE_MAX);
        if (rc == CMQ_OK && d.dead_letter_queue[0]) { /* the output form parses back */
            char text[2 * DLQ_POLICY_QUEUE_MAX + 128];
            size_t tn = dlq_policy_format(d.dead_letter_queue, d.policy, d.max_receive_count,
                                          d.max_time_to_live, text, sizeof text);
            struct dlq_policy back;
            FUZZ_CHECK(tn > 0 && dlq_policy_parse(text, tn, &back, &f) == CMQ_OK &&
                       strcmp(back.dead_letter_queue, d.dead_letter_queue) == 0 &&
                       back.policy == d.policy);
        }
    }

    const char *lists[] = {"msgBody", "receiptHandle", "msgTag", "filterTag", "bindingKey"};
    for (size_t i = 0; i < sizeof(lists) / sizeof(*lists); i++) {
        struct param_value vals[CMQ_BATCH_MAX];
        size_t count = 0;
        rc = params_get_list(p, lists[i], CMQ_BATCH_MAX, PARAMS_LIST_SKIP_EMPTY, vals, &count,
                             &f);
        FUZZ_CHECK(rc != CMQ_OK || (count >= 1 && count <= CMQ_BATCH_MAX));
        for (size_t k = 0; rc == CMQ_OK && k < count; k++)
            FUZZ_CHECK(vals[k].val != NULL && vals[k].len > 0);
    }

    char *canon;
    size_t canon_len;
    rc = sign_canonical(p, "POST", "h", "/", 0, &canon, &canon_len);
    FUZZ_CHECK(rc == CMQ_OK || rc == CMQ_ENOMEM);
    if (rc == CMQ_OK) {
        FUZZ_CHECK(canon_len >= 7 && memcmp(canon, "POSTh/?", 7) == 0);
        free(canon);
    }

    const char *hosts[] = {"cmq-queue-gz.api.qcloud.com", "localhost:8080"};
    struct sign_request req = {.method = "POST", .hosts = hosts, .n_hosts = 2,
                               .path = "/v2/index.php", .now_s = 0, .window_s = 0};
    r->verify_status = sign_verify(p, &req, FUZZ_KEY, strlen(FUZZ_KEY), &f);
    if (r->verify_status != CMQ_OK) {
        req.method = "GET";
        r->verify_status = sign_verify(p, &req, FUZZ_KEY, strlen(FUZZ_KEY), &f);
    }

    /* Encoding what was parsed and parsing it again gives the same set. */
    size_t enc_len = params_encode(p, NULL, 0);
    char *enc = malloc(enc_len + 1);
    FUZZ_CHECK(enc != NULL);
    FUZZ_CHECK(params_encode(p, enc, enc_len + 1) == enc_len);
    struct params *q = params_create();
    FUZZ_CHECK(q != NULL);
    rc = params_parse(q, enc, enc_len, &f);
    /* Re-encoding can only grow past the raw bound, never fail otherwise. */
    FUZZ_CHECK(rc == CMQ_OK || rc == CMQ_ETOOBIG);
    if (rc == CMQ_OK) {
        FUZZ_CHECK(params_count(q) == params_count(p));
        for (size_t i = 0; i < params_count(p); i++) {
            struct param_view x, y;
            params_at(p, i, &x);
            params_at(q, i, &y);
            FUZZ_CHECK(x.key_len == y.key_len && memcmp(x.key, y.key, x.key_len) == 0);
            FUZZ_CHECK(x.val_len == y.val_len && memcmp(x.val, y.val, x.val_len) == 0);
        }
    }
    params_destroy(q);
    free(enc);
}

static struct fuzz_result fuzz_one(const uint8_t *data, size_t len)
{
    struct fuzz_result r = {.parse_status = CMQ_OK, .verify_status = -1};
    struct params *p = params_create();
    FUZZ_CHECK(p != NULL);
    const char *text = (const char *)data;
    const char *nl = memchr(text, '\n', len);
    struct cmq_fault f = {0};
    if (nl) {
        r.parse_status = params_parse(p, text, (size_t)(nl - text), &f);
        if (r.parse_status == CMQ_OK)
            r.parse_status = params_parse(p, nl + 1, len - (size_t)(nl - text) - 1, &f);
    } else {
        r.parse_status = params_parse(p, text, len, &f);
    }
    if (r.parse_status == CMQ_OK)
        fuzz_consumers(p, &r);
    else
        FUZZ_CHECK(f.err != CMQERR_OK);

    /* Whatever happened, the fault renders as a valid reply. */
    struct json *j = json_create(4096);
    FUZZ_CHECK(j != NULL);
    if (r.parse_status != CMQ_OK) {
        FUZZ_CHECK(cmq_error_reply_fault(j, &f, "fuzz") == CMQ_OK);
        const char *out;
        size_t out_len;
        FUZZ_CHECK(json_finish(j, &out, &out_len) == CMQ_OK);
    }
    json_destroy(j);
    params_destroy(p);
    return r;
}

#endif
