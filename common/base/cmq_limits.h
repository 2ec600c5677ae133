/* cmq_limits.h: every bound of the CMQ API, in one place.
 *
 * The numbers come from shared/spec/cmq-http-api.md §6-§8 (attribute ranges)
 * and §11 (limits summary); where the spec offers a choice, the value here is
 * its "recommended default" and docs/http-api-notes.md says why.  Request-level
 * bounds (raw size, parameter count, name length) are ours: the parser in
 * services/gateway/cmqapi/params.c enforces them so a hostile request costs
 * bounded memory and time.
 *
 * One home for three readers: the gateway (its pure library cmqapi and both
 * front ends, HTTP and TCP), metadata (attribute ranges, quotas, name and tag
 * bounds) and storage.  The state machines keep their own bounds (QSM_* in
 * services/storage/qsm.h, TSM_* in tsm.h: they are part of the replicated
 * model); _Static_asserts next to those tie them to the numbers here.
 *
 * The delay cap is the one configurable bound: gateway.max_delay_seconds
 * (default CMQ_DELAY_S_DEFAULT, the spec's 3600 s; at most CMQ_DELAY_S_CAP_MAX,
 * the 7 days storage keeps a delayed message; a larger value is refused at
 * start-up).  Both front ends check a request against it with cmq_delay_ok;
 * the queue state machine checks the storage bound once more.
 *
 * (Named cmq_limits.h, not limits.h: base is on the include path of
 * everything, and a "limits.h" there would shadow the C library's <limits.h>.)
 *
 * Constants, plus the one inline check above.  The relations between them are
 * checked by the _Static_asserts at the end, so changing one number cannot
 * silently break another.
 */
#ifndef CMQ_BASE_CMQ_LIMITS_H
#define CMQ_BASE_CMQ_LIMITS_H

#include <stdbool.h>
#include <stdint.h>

/* ---- names (§5.1) ---- */
#define CMQ_NAME_LEN_MIN 1
#define CMQ_NAME_LEN_MAX 64 /* queue, topic and subscription names */

/* ---- messages and batches (§6.7, §6.8, §11) ---- */
#define CMQ_MSG_SIZE_ATTR_MIN 1024        /* smallest maxMsgSize attribute */
#define CMQ_MSG_SIZE_ATTR_MAX 1048576     /* largest maxMsgSize attribute (§5.4 leniency) */
#define CMQ_MSG_SIZE_ATTR_DEFAULT 65536   /* maxMsgSize when CreateQueue omits it */
#define CMQ_BATCH_MAX 16                  /* msgBody.n / receiptHandle.n / numOfMsg */
#define CMQ_BATCH_BYTES_MAX 1048576       /* sum of body sizes in one batch (§6.8) */
#define CMQ_INFLIGHT_MAX 20000            /* delayed/in-flight messages per queue (§9.1) */

/* ---- delay (§9.1 delaySeconds, TCP delay_seconds) ---- */
#define CMQ_DELAY_S_DEFAULT 3600          /* the spec's cap: gateway.max_delay_seconds default */
#define CMQ_DELAY_S_CAP_MAX (7 * 86400)   /* the largest cap allowed: what storage supports */

/* A delay is accepted when 0 <= delay_s <= cap_s (the configured cap, itself
 * never above CMQ_DELAY_S_CAP_MAX).  The one check of both front ends. */
static inline bool cmq_delay_ok(int64_t delay_s, int64_t cap_s)
{
    if (cap_s > CMQ_DELAY_S_CAP_MAX)
        cap_s = CMQ_DELAY_S_CAP_MAX;
    return delay_s >= 0 && delay_s <= cap_s;
}

/* ---- transaction messages (TCP §9.5 first_query_interval) ---- */
#define CMQ_TXN_CHECK_MS_DEFAULT 5000             /* the SDK's default first check-back */
#define CMQ_TXN_CHECK_MS_MAX (12 * 3600 * 1000)   /* the latest first check-back accepted */

/* ---- queue attributes (§6) ---- */
#define CMQ_HEAP_NUM_MIN 1000000LL
#define CMQ_HEAP_NUM_MAX 1000000000LL
#define CMQ_HEAP_NUM_DEFAULT 10000000LL
#define CMQ_POLL_WAIT_S_MAX 30
#define CMQ_POLL_WAIT_S_DEFAULT 0
#define CMQ_VISIBILITY_S_MIN 1
#define CMQ_VISIBILITY_S_MAX 43200
#define CMQ_VISIBILITY_S_DEFAULT 30
#define CMQ_RETENTION_S_MIN 60
#define CMQ_RETENTION_S_MAX 1296000
#define CMQ_RETENTION_S_DEFAULT 345600
#define CMQ_REWIND_S_MAX CMQ_RETENTION_S_MAX /* and never above the queue's retention */
#define CMQ_DLQ_MAX_RECEIVE_MIN 1
#define CMQ_DLQ_MAX_RECEIVE_MAX 1000
#define CMQ_DLQ_TTL_S_MIN 300
#define CMQ_DLQ_TTL_S_MAX 43200
#define CMQ_DLQ_SOURCES_MAX 6 /* a queue is the DLQ of at most 6 queues */

/* ---- topics and subscriptions (§7, §8, §11) ---- */
#define CMQ_TOPIC_RETENTION_S 86400
#define CMQ_TAGS_MAX 5            /* msgTag.n per message, filterTag.n per subscription */
#define CMQ_TAG_CHARS_MAX 16      /* characters (UTF-8 code points) per tag */
#define CMQ_BINDING_KEYS_MAX 5
#define CMQ_ROUTING_KEY_BYTES_MAX 64 /* routingKey and each bindingKey */
#define CMQ_ROUTING_KEY_DOTS_MAX 15
#define CMQ_ENDPOINT_CHARS_MAX 500

/* ---- listing (§6.2, §7.3, §8.2) ---- */
#define CMQ_LIST_LIMIT_DEFAULT 20
#define CMQ_LIST_LIMIT_MAX 50      /* ListQueue, ListTopic (clamped, §5.4) */
#define CMQ_SUB_LIST_LIMIT_MAX 100 /* ListSubscriptionByTopic */
#define CMQ_SUB_LIST_OFFSET_MAX 1000

/* ---- quotas (§11, recommended defaults; configurable by the service) ---- */
#define CMQ_QUEUES_PER_ACCOUNT_DEFAULT 1000
#define CMQ_TOPICS_PER_ACCOUNT_DEFAULT 1000
#define CMQ_SUBS_PER_TOPIC_DEFAULT 100

/* ---- authentication (§3, §4) ---- */
#define CMQ_SIGN_WINDOW_S_DEFAULT 7200 /* |now - Timestamp| allowed; 0 disables */
#define CMQ_HOST_LEN_MAX 261           /* 255-byte DNS name + ":65535" */
#define CMQ_PATH_LEN_MAX 1024          /* request path as signed (without query) */

/* ---- request parsing (ours; §2.2 says "1MB" for 10420) ----
 * A raw request may percent-encode every byte of its bodies (%XX, three bytes
 * per byte), so the raw bound is three batches plus room for the other
 * parameters; the decoded bodies are bounded by CMQ_BATCH_BYTES_MAX. */
#define CMQ_REQUEST_OVERHEAD_BYTES 65536
#define CMQ_REQUEST_BYTES_MAX (3 * CMQ_BATCH_BYTES_MAX + CMQ_REQUEST_OVERHEAD_BYTES)
#define CMQ_PARAMS_MAX 128           /* parameters in one request (query + body) */
#define CMQ_PARAM_NAME_LEN_MAX 128   /* bytes in one decoded parameter name */
#define CMQ_PARAM_VALUE_BYTES_MAX CMQ_MSG_SIZE_ATTR_MAX /* bytes in one decoded value */
#define CMQ_LIST_INDEX_MAX 999       /* msgBody.999 is the highest index we parse */
#define CMQ_COMMON_PARAMS_MAX 12     /* Action, Nonce, SecretId, Signature, ... (§3) */

/* ---- relations ---- */
_Static_assert(CMQ_MSG_SIZE_ATTR_MIN <= CMQ_MSG_SIZE_ATTR_DEFAULT &&
                   CMQ_MSG_SIZE_ATTR_DEFAULT <= CMQ_MSG_SIZE_ATTR_MAX,
               "default maxMsgSize must lie in its range");
_Static_assert(CMQ_BATCH_BYTES_MAX >= CMQ_MSG_SIZE_ATTR_MAX,
               "one maximal message must fit in a batch");
_Static_assert(CMQ_PARAM_VALUE_BYTES_MAX >= CMQ_MSG_SIZE_ATTR_MAX,
               "a maximal message body must fit in one parameter value");
_Static_assert(CMQ_PARAM_VALUE_BYTES_MAX >= CMQ_ENDPOINT_CHARS_MAX * 4,
               "a maximal endpoint (4 bytes per char) must fit in one value");
_Static_assert(CMQ_REQUEST_BYTES_MAX >= 3 * CMQ_BATCH_BYTES_MAX,
               "a fully percent-encoded maximal batch must fit in one request");
_Static_assert(CMQ_PARAMS_MAX >= CMQ_COMMON_PARAMS_MAX + CMQ_BATCH_MAX + CMQ_TAGS_MAX + 4,
               "the largest legitimate request (BatchPublishMessage) must fit");
_Static_assert(CMQ_PARAMS_MAX >= CMQ_COMMON_PARAMS_MAX + CMQ_TAGS_MAX + CMQ_BINDING_KEYS_MAX + 8,
               "the largest Subscribe request must fit");
_Static_assert(CMQ_PARAMS_MAX > CMQ_BATCH_MAX + CMQ_COMMON_PARAMS_MAX,
               "a batch one too large must still parse, so it gets 10370 and not 10420");
_Static_assert(CMQ_LIST_INDEX_MAX >= CMQ_PARAMS_MAX,
               "every list entry that fits in a request must have a parseable index");
_Static_assert(CMQ_VISIBILITY_S_MIN <= CMQ_VISIBILITY_S_DEFAULT &&
                   CMQ_VISIBILITY_S_DEFAULT <= CMQ_VISIBILITY_S_MAX,
               "default visibilityTimeout must lie in its range");
_Static_assert(CMQ_RETENTION_S_MIN <= CMQ_RETENTION_S_DEFAULT &&
                   CMQ_RETENTION_S_DEFAULT <= CMQ_RETENTION_S_MAX,
               "default msgRetentionSeconds must lie in its range");
_Static_assert(CMQ_HEAP_NUM_MIN <= CMQ_HEAP_NUM_DEFAULT && CMQ_HEAP_NUM_DEFAULT <= CMQ_HEAP_NUM_MAX,
               "default maxMsgHeapNum must lie in its range");
_Static_assert(CMQ_POLL_WAIT_S_DEFAULT <= CMQ_POLL_WAIT_S_MAX, "default wait within range");
_Static_assert(CMQ_DLQ_TTL_S_MAX < CMQ_RETENTION_S_MAX, "DLQ TTL must be below retention");
_Static_assert(CMQ_LIST_LIMIT_DEFAULT <= CMQ_LIST_LIMIT_MAX &&
                   CMQ_LIST_LIMIT_MAX <= CMQ_SUB_LIST_LIMIT_MAX,
               "list page limits");
_Static_assert(CMQ_ROUTING_KEY_DOTS_MAX < CMQ_ROUTING_KEY_BYTES_MAX, "dots fit in a key");
_Static_assert(CMQ_NAME_LEN_MAX < CMQ_PARAM_NAME_LEN_MAX, "names fit in parameter names");
_Static_assert(CMQ_DELAY_S_DEFAULT <= CMQ_DELAY_S_CAP_MAX, "the default delay cap is allowed");
_Static_assert(CMQ_DELAY_S_DEFAULT < CMQ_TOPIC_RETENTION_S, "the spec's delay is under a day");
_Static_assert(CMQ_TXN_CHECK_MS_DEFAULT <= CMQ_TXN_CHECK_MS_MAX, "default check-back allowed");

#endif
