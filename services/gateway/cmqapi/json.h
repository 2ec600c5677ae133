/* json.h: a small streaming JSON writer for API responses.
 *
 * It owns one growable buffer with a hard cap fixed at creation; writing past
 * the cap makes the writer fail (sticky: every later call is a no-op and
 * json_finish reports CMQ_ETOOBIG), so a response can never grow without
 * bound.  Commas and nesting are tracked by the writer; using it wrongly
 * (a value where a key is due, unbalanced ends, nesting deeper than
 * JSON_DEPTH_MAX) is our bug and asserts.
 *
 * Strings are escaped per RFC 8259: `"` and `\` with a backslash; the control
 * characters U+0000..U+001F as \b \f \n \r \t or \u00XX; U+2028 and U+2029
 * as \u2028 / \u2029 (legal raw in JSON, but not in JavaScript string
 * literals).  Everything else, including U+007F and all non-ASCII, is copied
 * as UTF-8.  Invalid UTF-8 (a stray continuation byte, a truncated sequence,
 * an overlong form, a surrogate, anything above U+10FFFF) is replaced by
 * U+FFFD, one per maximal ill-formed prefix, so the output is always valid
 * UTF-8 and valid JSON.  The request parser rejects invalid UTF-8 in values
 * (params.h), so this replacement only guards against our own data.
 *
 * json_kv_int / json_kv_str check the key's JSON type against the table of
 * response keys in shared/spec/cmq-http-api.md §13.4 (counters and times are
 * integers; ids, names, bodies and handles are strings) and assert on a
 * mismatch, so a handler cannot send msgId as a number by mistake.
 * There is no JSON reader: no API request carries JSON that we must parse
 * (deadLetterPolicy is optional and not implemented here).
 */
#ifndef CMQ_GWAPI_JSON_H
#define CMQ_GWAPI_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JSON_DEPTH_MAX 16

struct json;

/* Creates a writer whose buffer may grow to `cap_bytes` (> 0).  Returns NULL
 * when out of memory.  The caller owns it and frees it with json_destroy. */
struct json *json_create(size_t cap_bytes);
/* Frees the writer and its buffer; accepts NULL. */
void json_destroy(struct json *j);
/* Empties the writer for the next response, keeping its buffer. */
void json_reset(struct json *j);

void json_obj_begin(struct json *j);
void json_obj_end(struct json *j);
void json_arr_begin(struct json *j);
void json_arr_end(struct json *j);

/* An object member name; `key` is borrowed and is escaped like a string. */
void json_key(struct json *j, const char *key);

/* Values (in an array, or after json_key).  Strings are borrowed and copied. */
void json_str(struct json *j, const char *s, size_t len);
void json_cstr(struct json *j, const char *s);
void json_int(struct json *j, int64_t v);
void json_uint(struct json *j, uint64_t v);
void json_bool(struct json *j, bool v);
void json_null(struct json *j);

/* Key and value in one call, type-checked against the §13.4 key table. */
void json_kv_str(struct json *j, const char *key, const char *s, size_t len);
void json_kv_cstr(struct json *j, const char *key, const char *s);
void json_kv_int(struct json *j, const char *key, int64_t v);
/* A 64-bit identifier (msgId, receiptHandle) as a JSON string of decimal
 * digits, as DESIGN §6 and §13.4 require. */
void json_kv_id(struct json *j, const char *key, uint64_t id);

/* The JSON type a response key must have. */
enum json_key_type { JSON_KEY_UNKNOWN = 0, JSON_KEY_INT, JSON_KEY_STRING, JSON_KEY_ARRAY };
/* Looks `key` up (case-sensitive) in the §13.4 table. */
enum json_key_type json_key_type(const char *key);

/* Finishes: on success (balanced, under the cap) sets *out to the text
 * (borrowed from `j`, valid until the next call on it; NUL-terminated) and
 * *len to its length, and returns CMQ_OK.  Returns CMQ_ETOOBIG when the cap
 * was hit or CMQ_ENOMEM when growing failed. */
int json_finish(struct json *j, const char **out, size_t *len);

/* The sticky status so far (CMQ_OK, CMQ_ETOOBIG, CMQ_ENOMEM). */
int json_status(const struct json *j);

/* Escapes `len` bytes of `s` as the inside of a JSON string (no quotes) into
 * `out`, NUL-terminated, truncated at a character boundary to fit `cap`.
 * Returns the full escaped length (like snprintf).  Exposed for tests and for
 * writing log-safe copies of user data. */
size_t json_escape(const char *s, size_t len, char *out, size_t cap);

#endif
