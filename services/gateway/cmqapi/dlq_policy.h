/* dlq_policy.h: the deadLetterPolicy parameter of CreateQueue and
 * SetQueueAttributes (spec §6): a JSON object passed as a string, with
 * deadLetterQueue (string: the DLQ's name on input), policy (0: after
 * maxReceiveCount receives, 1: after maxTimeToLive seconds),
 * maxReceiveCount and maxTimeToLive (integers).
 *
 * A small bounded JSON reader for exactly that: one object, at most
 * DLQ_POLICY_TEXT_MAX bytes, DLQ_POLICY_MEMBERS_MAX members, nesting (inside
 * members this reader skips) at most DLQ_POLICY_DEPTH_MAX.  Integers are JSON
 * integers or strings holding one (people quote numbers in hand-written
 * JSON); a fraction or exponent is a type error.  Unknown members are
 * skipped; a repeated known member is an error.  Pure: no allocation, no I/O.
 *
 * What it does NOT check: ranges and the rules between fields (the DLQ
 * exists, no nesting, at most 6 sources, maxTimeToLive < retention).
 * Metadata owns those and answers the spec's codes for them.
 */
#ifndef CMQ_GWAPI_DLQ_POLICY_H
#define CMQ_GWAPI_DLQ_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cmq_error.h"

#define DLQ_POLICY_TEXT_MAX 1024
#define DLQ_POLICY_MEMBERS_MAX 16
#define DLQ_POLICY_DEPTH_MAX 8
#define DLQ_POLICY_QUEUE_MAX 128   /* bytes of deadLetterQueue (metadata's field holds 128) */

struct dlq_policy {
    char dead_letter_queue[DLQ_POLICY_QUEUE_MAX + 1]; /* "" when absent */
    bool has_policy, has_max_receive_count, has_max_time_to_live;
    int64_t policy;
    int64_t max_receive_count;
    int64_t max_time_to_live;
};

/* Parses `len` bytes at `s` (borrowed).  Returns CMQ_OK with *out filled;
 * CMQ_ENOTFOUND when the text is empty or only blanks (the caller's meaning:
 * no policy / remove it); CMQ_EINVAL with `fault` set (4000/10360 naming
 * deadLetterPolicy for malformed JSON or a wrong type, 4000/10350 for text,
 * a name or a number too large). */
int dlq_policy_parse(const char *s, size_t len, struct dlq_policy *out, struct cmq_fault *fault);

/* Writes the output form, {"deadLetterQueue":<dlq id>,"policy":..,
 * "maxReceiveCount":..,"maxTimeToLive":..}, NUL-terminated into out (cap
 * bytes).  Returns its length, or 0 when it does not fit. */
size_t dlq_policy_format(const char *dlq_id, int64_t policy, int64_t max_receive_count,
                         int64_t max_time_to_live, char *out, size_t cap);

#endif
