/* cmq_error.h: the one table of CMQ error conditions, and the error envelope.
 *
 * Every error the HTTP API can answer is one row of CMQ_ERROR_TABLE below:
 * an identifier, the top-level `code` the SDKs act on, the module code shown
 * in `message` as "(nnnnn)", and the English text from shared/spec/
 * cmq-http-api.md §12 (a "%s" in the text is replaced by the name of the
 * offending parameter).  The same file maps the project's internal status
 * enum (common/base/status.h) to a default row, and the row ids metadata
 * sends (proto/metadata.proto MetaRow) to their rows: this table is the only
 * place a CMQ code and message are written.
 * docs/status-codes.md documents both mappings and must change with them.
 *
 * A `struct cmq_fault` carries a row and the parameter it names from the
 * pure parsers (params.c, sign.c, names.c) up to the handler, which answers
 * with cmq_error_reply().  Nothing here logs or does I/O.
 */
#ifndef CMQ_GWAPI_CMQ_ERROR_H
#define CMQ_GWAPI_CMQ_ERROR_H

#include <stddef.h>

struct json;

/* X(id, code, module, text).  module 0 = unknown module code: the message
 * carries no "(nnnnn)" prefix. */
#define CMQ_ERROR_TABLE(X)                                                                      \
    X(OK, 0, 0, "")                                                                             \
    /* §12.1 request / authentication / generic */                                              \
    X(INVALID_REQUEST, 4000, 10000, "invalid request parameters")                               \
    X(MISSING_PARAMS, 4000, 10010, "lacked of required parameters")                             \
    X(PARAM_ERROR, 4000, 10110, "request parameters error")                                     \
    X(ACTION_NOT_EXIST, 4000, 10280, "action is not existed")                                   \
    X(PARAM_KEY_FORMAT, 4000, 10310, "error: parameter %s key format error")                    \
    X(NO_SUCH_PARAM, 4000, 10320, "no such parameter %s")                                       \
    X(PARAM_NOT_REPEATABLE, 4000, 10330, "parameter %s is NOT a repeatable parameter")          \
    X(PARAM_RANGE, 4000, 10350, "parameter %s value or length is out of range")                 \
    X(PARAM_TYPE, 4000, 10360, "parameter %s error type")                                       \
    X(BATCH_SIZE, 4000, 10370, "%s parameter batch size is out of range")                       \
    X(NOT_CONSEQUENT, 4000, 10380, "%s parameter is not consequent")                            \
    X(MISSING_PARAM, 4000, 10390, "lacked of required parameter %s")                            \
    X(NOT_IN_URI, 4000, 10400, "cannot find parameter %s in uri")                               \
    X(BAD_METHOD, 4000, 10410, "unexpected http %s only GET or POST is supported")              \
    X(REQUEST_TOO_BIG, 4000, 10420, "cannot parse %s, or request size is more than 1MB")        \
    X(ACTION_NAME_NOT_EXIST, 4000, 10430, "action name %s is not existed")                      \
    X(ACCOUNT_ILLEGAL, 4000, 10440, "account illegal, it may be an assistant account")          \
    X(SECRET_ID_PREFIX, 4000, 10450, "secret id dosen't begin with AKID")                       \
    X(NO_CAM_AUTH, 4000, 10461, "no cam authentication")                                        \
    X(AUTH_FAILED, 4100, 10030, "authentication failed")                                        \
    X(REQUEST_EXPIRED, 4100, 10030, "authentication failed, request expired")                   \
    X(REPLAYED, 4100, 10030, "authentication failed, nonce already used")                       \
    X(SECRET_ID_STATUS, 4100, 10080, "secret id status error")                                  \
    X(SECRET_ID_NOT_EXIST, 4100, 10270, "secret id is not existed")                             \
    X(CHARGE_OVERDUE, 4300, 10040, "charge overdue")                                            \
    X(QPS_THROTTLING, 4420, 10250, "qps throttling")                                            \
    X(FREQUENCY_LIMIT, 4480, 10460, "exceed interface frequency limit, please slow down")       \
    X(INTERNAL, 6000, 10050, "server internal error")                                           \
    /* not in the spec's list: 6000 with the text saying a retry may succeed */                 \
    X(UNAVAILABLE, 6000, 10050, "server internal error, service unavailable, please retry")     \
    X(NOT_SERVED, 6000, 10050, "action %s is not served by this server yet")                    \
    /* §12.2 queue */                                                                           \
    X(QUEUE_NAME_FORMAT, 4000, 10020, "queue name format error")                                \
    X(MSG_BODY_EMPTY, 4000, 10120, "message body can't be empty")                               \
    X(RECEIPT_HANDLE_FORMAT, 4000, 10470, "receiptHandle error")                                \
    X(REWIND_TIME, 4000, 10680,                                                                 \
      "invalid rewind time, you can get the vaild range of that via GetQueueAttributes")        \
    X(DELAY_RANGE, 4000, 10692, "delay seconds is out of range")                                \
    X(REWIND_ABOVE_RETENTION, 4000, 10700,                                                      \
      "rewindSeconds cannot be greater than msgRetentionSeconds")                               \
    X(MSG_TOO_BIG, 4400, 10230, "exceed maximum message size")                                  \
    X(HEAP_FULL, 4410, 10240, "reach maximum retention number of message")                      \
    X(RECEIPT_HANDLE_INVALID, 4430, 10260, "receipt handle is invalid")                         \
    X(QUEUE_NOT_EXIST, 4440, 10100, "queue is not existed, or deleted")                         \
    X(QUEUE_QUOTA, 4450, 10220, "number of queues has reached the limit")                       \
    X(QUEUE_EXISTS, 4460, 0, "queue is already existed, case insensitive")                      \
    X(BATCH_TOO_BIG, 4470, 10300, "total message size exceed 1MB")                              \
    X(SEND_FAILED, 6000, 10090, "send message failed")                                          \
    X(RECEIVE_FAILED, 6000, 10130, "recieve message failed")                                    \
    X(DELETE_FAILED, 6000, 10140, "delete message failed")                                      \
    X(GET_QUEUE_ATTRS_FAILED, 6000, 10160, "get queue attributes failed")                       \
    X(SET_QUEUE_ATTRS_FAILED, 6000, 10170, "set queue attributes failed")                       \
    X(DELETE_QUEUE_FAILED, 6000, 10180, "delete queue failed")                                  \
    X(LIST_QUEUE_FAILED, 6000, 10190, "list queue failed")                                      \
    X(DELETE_PARTIAL, 6010, 10150, "delete message partially failed")                           \
    X(DELETE_ALL_FAILED, 6020, 10290, "batch delete message failed")                            \
    X(RECREATE_TOO_SOON, 6040, 10660,                                                           \
      "it will take some time to release resources of previous queue before you create a new "  \
      "one with the same name, please try later")                                               \
    X(REWIND_DISABLED, 6050, 10670, "your queue cannot be rewinded")                            \
    X(TOO_MANY_UNACKED, 6070, 10690, "too many unacked(inactive messages or delayed messages)") \
    X(NO_MESSAGE, 7000, 10200, "no message")                                                    \
    /* §12.3 topic / subscription */                                                            \
    X(FILTER_TAG_COUNT, 4000, 10490, "number of filterTag exceed limit")                        \
    X(ENDPOINT_FORMAT, 4000, 10500, "endpoint format error")                                    \
    X(PROTOCOL_UNDEFINED, 4000, 10510, "undefined protocol")                                    \
    X(NOTIFY_STRATEGY_UNDEFINED, 4000, 10520, "undefined notify retry stragety")                \
    X(NOTIFY_FORMAT_UNDEFINED, 4000, 10530, "undefined notify content format")                  \
    X(TOPIC_HAS_SUBSCRIPTIONS, 4000, 10540,                                                     \
      "there exists subscriptions under this topic, please unsubscribe all of them before "     \
      "DeleteTopic")                                                                            \
    X(SUBSCRIPTION_NAME_FORMAT, 4000, 10580, "subscription name format error")                  \
    X(TOPIC_NAME_FORMAT, 4000, 10590, "topic name format error")                                \
    X(ENDPOINT_ILLEGAL, 4000, 10630, "illegal endpoint")                                        \
    X(QUEUE_FORMAT_NOT_SIMPLIFIED, 4000, 10640,                                                 \
      "notifyContentFormat of protocol queue must be SIMPLIFIED")                               \
    X(FILTER_TAG_TOO_MANY, 4000, 10670, "too many filterTag")                                   \
    X(BINDING_KEY_TOO_MANY, 4000, 10680, "too many bindingKey")                                 \
    X(TOO_MANY_DELIMITERS, 4000, 10691, "too many delimeters")                                  \
    X(ROUTING_KEY_MISSING, 4000, 10700, "parameters lack of routingKey")                        \
    X(BINDING_KEY_MISSING, 4000, 10710, "parameters lack of bindingKey")                        \
    X(MSG_TAG_TOO_MANY, 4000, 10720, "too many msgTag")                                         \
    X(TOPIC_NOT_EXIST, 4440, 10600, "topic is not existed, or deleted")                         \
    X(SUBSCRIPTION_NOT_EXIST, 4440, 10600, "subscription is not existed, or deleted")           \
    X(TOPIC_QUOTA, 4450, 10610, "number of topics has reached the limit")                       \
    X(TOPIC_EXISTS, 4460, 0, "topic is already existed, case insensitive")                      \
    X(SUBSCRIPTION_EXISTS, 4490, 10470, "subscribtion is already existed")                      \
    X(SUBSCRIPTION_QUOTA, 4500, 10480, "number of subscription has reached the limit")          \
    X(ENDPOINT_BLANK, 4510, 10570, "url connot contain any blank characters")                   \
    X(TOPIC_NO_SUBSCRIPTION, 6030, 10650,                                                       \
      "topic has no subscription, please create a subscription before publishing message")      \
    X(NO_MATCH, 6030, 10730, "no bindingKey or filterTag matches the routingKey or msgTag")     \
    X(TOPIC_RECREATE_TOO_SOON, 6040, 10660,                                                     \
      "it will take some time to release resources of previous topic before you create a new "  \
      "one with the same name, please try later")                                               \
    X(FILTER_KEYS_TOO_MANY, 6050, 10740, "too many filterTag or bindingKey")

enum cmq_err {
#define CMQ_ERROR_ENUM_(id, code, module, text) CMQERR_##id,
    CMQ_ERROR_TABLE(CMQ_ERROR_ENUM_)
#undef CMQ_ERROR_ENUM_
        CMQERR_COUNT_
};

/* The longest parameter name a fault records; longer names are truncated
 * (with "...") so an attacker-chosen name cannot grow the message. */
#define CMQ_FAULT_ARG_MAX 64

/* What went wrong, and with which parameter.  Embedded by callers (usually on
 * the stack); cmq_fault_set copies the argument. */
struct cmq_fault {
    enum cmq_err err;
    char arg[CMQ_FAULT_ARG_MAX + 4]; /* NUL-terminated; may end in "..." */
};

/* Records `err` and a copy of `arg` (borrowed; NULL = none) in `f`.
 * Returns `status` so parsers can write `return cmq_fault_set(f, ..., CMQ_EINVAL);`.
 * `f` may be NULL, then only `status` is returned. */
int cmq_fault_set(struct cmq_fault *f, enum cmq_err err, const char *arg, int status);
/* The same, with an argument that is not NUL-terminated. */
int cmq_fault_setn(struct cmq_fault *f, enum cmq_err err, const char *arg, size_t arg_len,
                   int status);

/* The row's top-level code (0, 4000, ... 7000) and module code (0 = unknown). */
int cmq_error_code(enum cmq_err e);
int cmq_error_module(enum cmq_err e);
/* The row's text with "%s" still in it (a static string); the identifier
 * ("PARAM_RANGE") for logs and tests. */
const char *cmq_error_text(enum cmq_err e);
const char *cmq_error_id(enum cmq_err e);

/* The default row for an internal status (CMQ_OK -> OK, CMQ_EAUTH ->
 * AUTH_FAILED, ...; see docs/status-codes.md).  Unknown statuses map to
 * INTERNAL. */
enum cmq_err cmq_error_from_status(int status);

/* The row for a failed metadata reply: the row metadata named (a MetaRow of
 * proto/metadata.proto: the rows the status alone cannot pick, such as a
 * missing topic rather than a missing queue), or the status's default row
 * when it named none (META_ROW_DEFAULT) or one this build does not know. */
enum cmq_err cmq_error_from_meta(int status, int meta_row);

/* Writes "(module)text" with "%s" replaced by `arg` (borrowed; NULL = "")
 * into `buf` (NUL-terminated, truncated to `cap`).  Returns the length the
 * full message has (like snprintf), so a return >= cap means truncation. */
size_t cmq_error_message(enum cmq_err e, const char *arg, char *buf, size_t cap);

/* Writes a complete error response body into `j` (which must be empty):
 * {"code":N,"message":"(module)text","requestId":"<request_id>"}.  Always
 * answered with HTTP 200 (§2.3).  `arg` and `request_id` are borrowed.
 * Returns the json status (CMQ_OK or CMQ_ETOOBIG). */
int cmq_error_reply(struct json *j, enum cmq_err e, const char *arg, const char *request_id);

/* The same for a fault. */
int cmq_error_reply_fault(struct json *j, const struct cmq_fault *f, const char *request_id);

/* Writes just the three envelope members (code, message, requestId) into an
 * object the caller has opened in `j`; the caller adds more members (e.g.
 * errorList, msgId) and closes it.  For success pass CMQERR_OK. */
void cmq_error_envelope(struct json *j, enum cmq_err e, const char *arg, const char *request_id);

/* Writes one errorList element of BatchDeleteMessage (§6.12) as an array
 * element: {"code":N,"message":"(module)text","receiptHandle":"<handle>"}.
 * `handle` is borrowed and copied `handle_len` bytes. */
void cmq_error_item(struct json *j, enum cmq_err e, const char *handle, size_t handle_len);

#endif
