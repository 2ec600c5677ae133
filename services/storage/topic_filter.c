/* topic_filter.c: tag and routing-key matching; see topic_filter.h.
 *
 * The routing match is a dynamic programme over words, not a backtracking
 * recursion: with at most 16 words on each side the table has 17 x 17
 * cells, so a key full of '#' costs the same as any other (a naive recursion
 * on "#.#.#..." is exponential).
 */
#include "topic_filter.h"

#include <string.h>

bool topic_filter_tags_match(const char *const *sub_tags, size_t n_sub, const char *const *msg_tags,
                             size_t n_msg)
{
    if (n_sub == 0)
        return true; /* rule 1: no filter, every message */
    for (size_t i = 0; i < n_sub; i++)
        for (size_t j = 0; j < n_msg; j++)
            if (strcmp(sub_tags[i], msg_tags[j]) == 0)
                return true; /* rule 2 */
    return false;            /* rule 3 (no message tags) falls out of the loops */
}

bool topic_filter_key_ok(const char *key, size_t len)
{
    if (len > TOPIC_KEY_BYTES_MAX)
        return false;
    size_t dots = 0;
    for (size_t i = 0; i < len; i++)
        dots += key[i] == '.';
    return dots <= TOPIC_KEY_DOTS_MAX;
}

struct word {
    const char *p;
    size_t len;
};

/* Splits `s` at '.'; returns the word count, or -1 beyond the limits. */
static int split(const char *s, struct word *w)
{
    size_t len = strlen(s);
    if (!topic_filter_key_ok(s, len))
        return -1;
    int n = 0;
    const char *start = s;
    for (size_t i = 0; i <= len; i++) {
        if (i == len || s[i] == '.') {
            w[n].p = start;
            w[n].len = (size_t)(s + i - start);
            n++;
            start = s + i + 1;
        }
    }
    return n;
}

static bool is(const struct word *w, char c)
{
    return w->len == 1 && w->p[0] == c;
}

bool topic_filter_binding_match(const char *binding, const char *routing)
{
    struct word b[TOPIC_KEY_WORDS_MAX], r[TOPIC_KEY_WORDS_MAX];
    int nb = split(binding, b), nr = split(routing, r);
    if (nb < 0 || nr < 0)
        return false;
    /* m[i][j]: the first i binding words match the first j routing words. */
    bool m[TOPIC_KEY_WORDS_MAX + 1][TOPIC_KEY_WORDS_MAX + 1];
    memset(m, 0, sizeof m);
    m[0][0] = true;
    for (int i = 1; i <= nb; i++) {
        const struct word *bw = &b[i - 1];
        for (int j = 0; j <= nr; j++) {
            if (is(bw, '#')) /* zero words, or one more word for the same '#' */
                m[i][j] = m[i - 1][j] || (j > 0 && m[i][j - 1]);
            else if (j > 0 && (is(bw, '*') ||
                               (bw->len == r[j - 1].len && memcmp(bw->p, r[j - 1].p, bw->len) == 0)))
                m[i][j] = m[i - 1][j - 1];
        }
    }
    return m[nb][nr];
}

bool topic_filter_bindings_match(const char *const *keys, size_t n, const char *routing)
{
    for (size_t i = 0; i < n; i++)
        if (topic_filter_binding_match(keys[i], routing))
            return true;
    return false;
}
