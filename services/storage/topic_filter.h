/* topic_filter.h: which messages of a topic a subscription receives (spec
 * §9.4).  Pure functions: no allocation, no state, no I/O.
 *
 * Tag filtering (topic filterType 1):
 *   1. a subscription without filter tags receives every message;
 *   2. a subscription with tags receives a message with tags iff the two
 *      sets share at least one tag (compared byte for byte);
 *   3. a subscription with tags never receives a message without tags.
 *
 * Routing (topic filterType 2): words are separated by '.'; a binding key
 * matches a routing key word by word, where the binding word "*" matches
 * exactly one word and "#" matches zero or more words (RabbitMQ semantics,
 * the spec's recommendation).  A subscription receives the message when any
 * of its binding keys matches; one without binding keys receives nothing
 * (metadata never lets one exist on a routing topic).  Empty words are
 * ordinary words ("a..b" has three: "a", "", "b").
 *
 * Limits (spec §11): a routing or binding key has at most
 * TOPIC_KEY_BYTES_MAX bytes and TOPIC_KEY_DOTS_MAX dots; longer keys never
 * match (the gateway refuses them first).
 */
#ifndef CMQ_STORAGE_TOPIC_FILTER_H
#define CMQ_STORAGE_TOPIC_FILTER_H

#include <stdbool.h>
#include <stddef.h>

#define TOPIC_TAGS_MAX 5           /* per message and per subscription */
#define TOPIC_TAG_BYTES_MAX 64     /* 16 characters of up to 4 UTF-8 bytes */
#define TOPIC_KEYS_MAX 5           /* binding keys per subscription */
#define TOPIC_KEY_BYTES_MAX 64     /* routingKey and each bindingKey */
#define TOPIC_KEY_DOTS_MAX 15      /* so at most 16 words */
#define TOPIC_KEY_WORDS_MAX (TOPIC_KEY_DOTS_MAX + 1)

enum topic_filter_type { TOPIC_FILTER_TAG = 1, TOPIC_FILTER_ROUTING = 2 };

/* Tag rule above.  Tags are NUL-terminated strings (borrowed). */
bool topic_filter_tags_match(const char *const *sub_tags, size_t n_sub, const char *const *msg_tags,
                             size_t n_msg);

/* Whether one binding key matches one routing key (NUL-terminated, borrowed). */
bool topic_filter_binding_match(const char *binding, const char *routing);

/* Any of `keys` matches `routing`; false when n == 0. */
bool topic_filter_bindings_match(const char *const *keys, size_t n, const char *routing);

/* Whether a key is within the limits (length and dots). */
bool topic_filter_key_ok(const char *key, size_t len);

#endif
