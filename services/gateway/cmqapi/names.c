/* names.c: name and string validation; see names.h. */
#include "names.h"

#include <assert.h>
#include <string.h>
#include <strings.h>

#include "cmq_limits.h"
#include "status.h"
#include "utf8.h"

static bool is_alpha(char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'); }
static bool is_digit(char c) { return c >= '0' && c <= '9'; }
static char lower(char c) { return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c; }

bool name_valid(const char *s, size_t len)
{
    if (len < CMQ_NAME_LEN_MIN || len > CMQ_NAME_LEN_MAX || !is_alpha(s[0]))
        return false;
    for (size_t i = 1; i < len; i++)
        if (!is_alpha(s[i]) && !is_digit(s[i]) && s[i] != '-')
            return false;
    return true;
}

int name_check_queue(const char *s, size_t len, struct cmq_fault *fault)
{
    return name_valid(s, len) ? CMQ_OK
                              : cmq_fault_set(fault, CMQERR_QUEUE_NAME_FORMAT, NULL, CMQ_EINVAL);
}

int name_check_topic(const char *s, size_t len, struct cmq_fault *fault)
{
    return name_valid(s, len) ? CMQ_OK
                              : cmq_fault_set(fault, CMQERR_TOPIC_NAME_FORMAT, NULL, CMQ_EINVAL);
}

int name_check_subscription(const char *s, size_t len, struct cmq_fault *fault)
{
    return name_valid(s, len)
               ? CMQ_OK
               : cmq_fault_set(fault, CMQERR_SUBSCRIPTION_NAME_FORMAT, NULL, CMQ_EINVAL);
}

void name_fold(const char *s, size_t len, char *out)
{
    for (size_t i = 0; i < len; i++)
        out[i] = lower(s[i]);
    out[len] = '\0';
}

bool name_equal_ci(const char *a, size_t a_len, const char *b, size_t b_len)
{
    if (a_len != b_len)
        return false;
    for (size_t i = 0; i < a_len; i++)
        if (lower(a[i]) != lower(b[i]))
            return false;
    return true;
}

int name_check_tag(const char *param, const char *s, size_t len, struct cmq_fault *fault)
{
    long chars = utf8_count(s, len);
    if (chars < 1 || chars > CMQ_TAG_CHARS_MAX)
        return cmq_fault_set(fault, CMQERR_PARAM_RANGE, param, CMQ_EINVAL);
    return CMQ_OK;
}

int name_check_routing_key(const char *param, const char *s, size_t len,
                           struct cmq_fault *fault)
{
    if (len > CMQ_ROUTING_KEY_BYTES_MAX)
        return cmq_fault_set(fault, CMQERR_PARAM_RANGE, param, CMQ_EINVAL);
    size_t dots = 0;
    for (size_t i = 0; i < len; i++)
        dots += s[i] == '.';
    if (dots > CMQ_ROUTING_KEY_DOTS_MAX)
        return cmq_fault_set(fault, CMQERR_TOO_MANY_DELIMITERS, param, CMQ_EINVAL);
    return CMQ_OK;
}

static bool has_prefix_ci(const char *s, size_t len, const char *prefix)
{
    size_t n = strlen(prefix);
    return len >= n && strncasecmp(s, prefix, n) == 0;
}

int name_check_endpoint(const char *s, size_t len, struct cmq_fault *fault)
{
    long chars = utf8_count(s, len);
    if (chars < 0 || chars > CMQ_ENDPOINT_CHARS_MAX)
        return cmq_fault_set(fault, CMQERR_PARAM_RANGE, "endpoint", CMQ_EINVAL);
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f')
            return cmq_fault_set(fault, CMQERR_ENDPOINT_BLANK, NULL, CMQ_EINVAL);
    }
    size_t skip;
    if (has_prefix_ci(s, len, "http://"))
        skip = 7;
    else if (has_prefix_ci(s, len, "https://"))
        skip = 8;
    else
        return cmq_fault_set(fault, CMQERR_ENDPOINT_FORMAT, NULL, CMQ_EINVAL);
    /* The host runs to the first '/', '?' or '#'; it must not be empty. */
    size_t host = 0;
    while (skip + host < len && s[skip + host] != '/' && s[skip + host] != '?' &&
           s[skip + host] != '#')
        host++;
    if (host == 0 || s[skip] == ':')
        return cmq_fault_set(fault, CMQERR_ENDPOINT_FORMAT, NULL, CMQ_EINVAL);
    return CMQ_OK;
}

static bool equal_ci(const char *s, size_t len, const char *word)
{
    return strlen(word) == len && strncasecmp(s, word, len) == 0;
}

int name_parse_protocol(const char *s, size_t len, enum sub_protocol *out,
                        struct cmq_fault *fault)
{
    if (equal_ci(s, len, "http"))
        *out = SUB_PROTOCOL_HTTP;
    else if (equal_ci(s, len, "queue"))
        *out = SUB_PROTOCOL_QUEUE;
    else
        return cmq_fault_set(fault, CMQERR_PROTOCOL_UNDEFINED, NULL, CMQ_EINVAL);
    return CMQ_OK;
}

int name_parse_notify_strategy(const char *s, size_t len, enum notify_strategy *out,
                               struct cmq_fault *fault)
{
    if (equal_ci(s, len, "BACKOFF_RETRY"))
        *out = NOTIFY_BACKOFF_RETRY;
    else if (equal_ci(s, len, "EXPONENTIAL_DECAY_RETRY"))
        *out = NOTIFY_EXPONENTIAL_DECAY_RETRY;
    else
        return cmq_fault_set(fault, CMQERR_NOTIFY_STRATEGY_UNDEFINED, NULL, CMQ_EINVAL);
    return CMQ_OK;
}

int name_parse_notify_format(const char *s, size_t len, enum notify_format *out,
                             struct cmq_fault *fault)
{
    if (equal_ci(s, len, "JSON"))
        *out = NOTIFY_FORMAT_JSON;
    else if (equal_ci(s, len, "SIMPLIFIED"))
        *out = NOTIFY_FORMAT_SIMPLIFIED;
    else
        return cmq_fault_set(fault, CMQERR_NOTIFY_FORMAT_UNDEFINED, NULL, CMQ_EINVAL);
    return CMQ_OK;
}

const char *name_protocol_str(enum sub_protocol p)
{
    assert(p == SUB_PROTOCOL_HTTP || p == SUB_PROTOCOL_QUEUE);
    return p == SUB_PROTOCOL_HTTP ? "http" : "queue";
}

const char *name_notify_strategy_str(enum notify_strategy s)
{
    assert(s == NOTIFY_BACKOFF_RETRY || s == NOTIFY_EXPONENTIAL_DECAY_RETRY);
    return s == NOTIFY_BACKOFF_RETRY ? "BACKOFF_RETRY" : "EXPONENTIAL_DECAY_RETRY";
}

const char *name_notify_format_str(enum notify_format f)
{
    assert(f == NOTIFY_FORMAT_JSON || f == NOTIFY_FORMAT_SIMPLIFIED);
    return f == NOTIFY_FORMAT_JSON ? "JSON" : "SIMPLIFIED";
}
