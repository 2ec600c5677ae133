/* params.h: the parameters of one CMQ HTTP API request.
 *
 * A request's parameters come from its query string and, for any method, its
 * body, both read as application/x-www-form-urlencoded whatever the
 * Content-Type says (spec §2.2, §13.3): `k=v` pairs joined by `&`, `+` for a
 * space, `%XX` for a byte.  params_parse may be called once for the query and
 * once for the body; the parameters merge, and a name that appears twice
 * (anywhere) is an error (4000/10330), because the signature covers every
 * parameter and two values for one name cannot both be meant.
 *
 * Everything is bounded (cmq_limits.h): the raw bytes of all parse calls
 * together, the number of parameters, a name's length, a value's length.
 * Names must be 1..CMQ_PARAM_NAME_LEN_MAX printable ASCII bytes after
 * decoding; values must be well-formed UTF-8 (a value that is not cannot be
 * returned inside JSON, §2.2: 4000/10110).  A malformed escape (`%` not
 * followed by two hex digits) is 4000/10420 naming the parameter.
 *
 * Getters treat an empty value as absent (§5.3), check type and range, and on
 * failure fill a struct cmq_fault naming the parameter, so the handler can
 * answer with cmq_error_reply_fault().  Returned strings are borrowed from
 * the params object: valid until it is reset or destroyed, NUL-terminated
 * (a value may also contain NUL bytes from %00; use the length).
 *
 * What it does not do: it does not know which parameters an action needs
 * (the handler asks), and it never logs.
 */
#ifndef CMQ_GWAPI_PARAMS_H
#define CMQ_GWAPI_PARAMS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cmq_error.h"

struct params;

/* One decoded parameter; both strings borrowed from the params object. */
struct param_view {
    const char *key;
    size_t key_len;
    const char *val;
    size_t val_len;
};

/* One element of an indexed list (msgBody.1, ...), borrowed likewise. */
struct param_value {
    const char *val;
    size_t len;
};

/* Creates an empty set; NULL when out of memory.  Owned by the caller. */
struct params *params_create(void);
/* Frees the set and every string it handed out; accepts NULL. */
void params_destroy(struct params *p);
/* Empties the set for the next request (frees its decoded strings). */
void params_reset(struct params *p);

/* Decodes `len` bytes of form data (borrowed; need not be NUL-terminated) and
 * adds its parameters.  All-or-nothing: on error the set is as before the
 * call.  Returns CMQ_OK, or
 *   CMQ_ETOOBIG  the raw bytes of all calls pass CMQ_REQUEST_BYTES_MAX
 *                (10420 "request"), or a value passes
 *                CMQ_PARAM_VALUE_BYTES_MAX (10350 naming it; 4400/10230 when
 *                it is msgBody or msgBody.n);
 *   CMQ_ELIMIT   more than CMQ_PARAMS_MAX parameters (10420 "parameters");
 *   CMQ_EINVAL   a bad name (10310), a duplicate (10330), a bad escape
 *                (10420), invalid UTF-8 in a value (10110);
 *   CMQ_ENOMEM   out of memory (6000).
 * with `fault` (may be NULL) filled in. */
int params_parse(struct params *p, const char *data, size_t len, struct cmq_fault *fault);

/* Adds one decoded parameter (key NUL-terminated, value `val_len` bytes; both
 * copied), with the same checks as params_parse.  For clients that sign and
 * encode requests (tests, cmq-bench) and for tests. */
int params_add(struct params *p, const char *key, const char *val, size_t val_len,
               struct cmq_fault *fault);

/* The number of parameters, and the i-th in arrival order (i < count). */
size_t params_count(const struct params *p);
void params_at(const struct params *p, size_t i, struct param_view *out);

/* Finds `key` (exact, case-sensitive).  Returns true and fills *out when
 * present, even with an empty value. */
bool params_find(const struct params *p, const char *key, struct param_view *out);

/* A string value of at most `max_len` bytes.  Returns CMQ_OK (sets *val and
 * *len), CMQ_ENOTFOUND when absent or empty (fault 10390), CMQ_ETOOBIG when
 * longer (fault 10350). */
int params_get_str(const struct params *p, const char *key, size_t max_len, const char **val,
                   size_t *len, struct cmq_fault *fault);

/* A decimal integer (optional leading '-') in [min, max].  Returns CMQ_OK,
 * CMQ_ENOTFOUND when absent or empty (fault 10390), CMQ_EINVAL when not an
 * integer (fault 10360) or out of range (fault 10350). */
int params_get_int(const struct params *p, const char *key, int64_t min, int64_t max,
                   int64_t *out, struct cmq_fault *fault);

/* An unsigned decimal integer in [0, max] (Timestamp, Nonce).  As above. */
int params_get_uint(const struct params *p, const char *key, uint64_t max, uint64_t *out,
                    struct cmq_fault *fault);

/* A boolean: "1", "true", "0", "false" (ASCII case-insensitive).  Returns
 * CMQ_OK, CMQ_ENOTFOUND (10390) or CMQ_EINVAL (10360). */
int params_get_bool(const struct params *p, const char *key, bool *out, struct cmq_fault *fault);

#define PARAMS_LIST_SKIP_EMPTY 1u /* drop "" entries after the checks (§5.2) */

/* An indexed list `base.n` (msgBody, receiptHandle, msgTag, filterTag,
 * bindingKey; §5.2): indices are decimal without leading zeros, must start at
 * 0 or 1 and be consecutive; the result is in index order in `vals`, which
 * has room for `max_count` entries; *count receives the number.  Returns
 * CMQ_OK,
 *   CMQ_ENOTFOUND  no entry (or none left after SKIP_EMPTY) (fault 10390 base);
 *   CMQ_ELIMIT     more than max_count entries (fault 10370 base);
 *   CMQ_EINVAL     a gap or a start other than 0/1 (fault 10380 base), or an
 *                  index that is not canonical decimal (fault 10310 key). */
int params_get_list(const struct params *p, const char *base, size_t max_count, unsigned flags,
                    struct param_value *vals, size_t *count, struct cmq_fault *fault);

/* Form-encodes all parameters in arrival order (`k=v&k=v`; unreserved
 * A-Z a-z 0-9 - _ . ~ kept, space as '+', everything else %XX) into `out`
 * (NUL-terminated when cap > 0).  Returns the full length, like snprintf. */
size_t params_encode(const struct params *p, char *out, size_t cap);

/* Form-decodes `len` bytes of `in` into `out` (room for `len` bytes, not
 * overlapping `in`; the
 * decoded text is never longer).  Returns the decoded length, or -1 for a
 * malformed escape.  Exposed for tests. */
long params_decode(const char *in, size_t len, char *out);

#endif
