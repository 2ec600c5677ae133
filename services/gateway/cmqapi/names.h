/* names.h: validation of names and other user-chosen strings (spec §5.1,
 * §7.6, §8.1, §11).
 *
 * Queue, topic and subscription names: 1..64 characters, the first an ASCII
 * letter, the rest ASCII letters, digits and '-'.  Names are stored with the
 * spelling given; uniqueness is case-insensitive (name_fold gives the key to
 * compare), lookups are exact (docs/http-api-notes.md).  Because valid names
 * are ASCII, case folding is plain ASCII folding.
 *
 * Also here: message tags, routing and binding keys, HTTP endpoints and the
 * enumerated subscription settings.  Each check returns a status and fills a
 * struct cmq_fault with the row the spec names for that violation.  Pure
 * functions: no state, no allocation.
 */
#ifndef CMQ_GWAPI_NAMES_H
#define CMQ_GWAPI_NAMES_H

#include <stdbool.h>
#include <stddef.h>

#include "cmq_error.h"

/* True when `s` (`len` bytes, borrowed) follows the §5.1 name rule. */
bool name_valid(const char *s, size_t len);

/* The rule with the row of each resource: 4000/10020 (queue), 10590
 * (topic), 10580 (subscription).  CMQ_OK or CMQ_EINVAL. */
int name_check_queue(const char *s, size_t len, struct cmq_fault *fault);
int name_check_topic(const char *s, size_t len, struct cmq_fault *fault);
int name_check_subscription(const char *s, size_t len, struct cmq_fault *fault);

/* The uniqueness key of a name: ASCII lower case of `len` bytes into `out`
 * (room for len + 1; NUL-terminated). */
void name_fold(const char *s, size_t len, char *out);
/* True when two names are equal ignoring ASCII case. */
bool name_equal_ci(const char *a, size_t a_len, const char *b, size_t b_len);

/* A message or filter tag (msgTag.n, filterTag.n): 1..CMQ_TAG_CHARS_MAX
 * UTF-8 characters.  `param` names the parameter for the fault (10350). */
int name_check_tag(const char *param, const char *s, size_t len, struct cmq_fault *fault);

/* A routingKey or bindingKey: at most CMQ_ROUTING_KEY_BYTES_MAX bytes (10350
 * naming `param`) and CMQ_ROUTING_KEY_DOTS_MAX dots (4000/10691). */
int name_check_routing_key(const char *param, const char *s, size_t len,
                           struct cmq_fault *fault);

/* An HTTP subscription endpoint: at most CMQ_ENDPOINT_CHARS_MAX characters
 * (10350 "endpoint"), no whitespace (4510/10570), "http://" or "https://"
 * (ASCII case-insensitive) then a non-empty host (4000/10500). */
int name_check_endpoint(const char *s, size_t len, struct cmq_fault *fault);

enum sub_protocol { SUB_PROTOCOL_HTTP = 1, SUB_PROTOCOL_QUEUE = 2 };
enum notify_strategy { NOTIFY_BACKOFF_RETRY = 1, NOTIFY_EXPONENTIAL_DECAY_RETRY = 2 };
enum notify_format { NOTIFY_FORMAT_JSON = 1, NOTIFY_FORMAT_SIMPLIFIED = 2 };

/* "http" / "queue", ASCII case-insensitive (§8.1); else 4000/10510. */
int name_parse_protocol(const char *s, size_t len, enum sub_protocol *out,
                        struct cmq_fault *fault);
/* "BACKOFF_RETRY" / "EXPONENTIAL_DECAY_RETRY" (case-insensitive); else 10520. */
int name_parse_notify_strategy(const char *s, size_t len, enum notify_strategy *out,
                               struct cmq_fault *fault);
/* "JSON" / "SIMPLIFIED" (case-insensitive); else 10530. */
int name_parse_notify_format(const char *s, size_t len, enum notify_format *out,
                             struct cmq_fault *fault);
/* Canonical spellings for responses ("http", "BACKOFF_RETRY", "JSON"). */
const char *name_protocol_str(enum sub_protocol p);
const char *name_notify_strategy_str(enum notify_strategy s);
const char *name_notify_format_str(enum notify_format f);

#endif
