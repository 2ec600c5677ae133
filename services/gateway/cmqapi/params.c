/* params.c: the form parser and typed getters; see params.h.
 *
 * Memory: each params_parse call allocates one chunk big enough for all the
 * decoded names and values of its input (decoding never lengthens text, so
 * `len` plus one NUL per name and per value suffices) and the entries point
 * into it.  Chunks form a list freed by params_reset.  The entry table is a
 * fixed array of CMQ_PARAMS_MAX inside the object, so a request never costs
 * more than its own size plus a constant.
 *
 * Invariants: entries[0..count) have unique keys; every key is 1..
 * CMQ_PARAM_NAME_LEN_MAX bytes of 0x21..0x7E; every value is well-formed
 * UTF-8 of at most CMQ_PARAM_VALUE_BYTES_MAX bytes; raw_bytes is the sum of
 * the lengths given to params_parse and never passes CMQ_REQUEST_BYTES_MAX.
 */
#include "params.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cmq_limits.h"
#include "status.h"
#include "utf8.h"

struct chunk {
    struct chunk *next;
    char data[];
};

struct params {
    size_t count;
    size_t raw_bytes;
    struct chunk *chunks;
    struct param_view entries[CMQ_PARAMS_MAX];
};

struct params *params_create(void) { return calloc(1, sizeof(struct params)); }

void params_reset(struct params *p)
{
    struct chunk *c = p->chunks;
    while (c) {
        struct chunk *next = c->next;
        free(c);
        c = next;
    }
    p->chunks = NULL;
    p->count = 0;
    p->raw_bytes = 0;
}

void params_destroy(struct params *p)
{
    if (!p)
        return;
    params_reset(p);
    free(p);
}

size_t params_count(const struct params *p) { return p->count; }

void params_at(const struct params *p, size_t i, struct param_view *out)
{
    assert(i < p->count);
    *out = p->entries[i];
}

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

long params_decode(const char *in, size_t len, char *out)
{
    /* Runs without '+' or '%' are copied whole; the next position of each
     * is remembered (memchr is vectorised), so a long body costs O(len). */
    const char *end = in + len;
    const char *next_plus = memchr(in, '+', len);
    const char *next_pct = memchr(in, '%', len);
    const char *s = in;
    size_t o = 0;
    while (s < end) {
        if (next_plus && next_plus < s)
            next_plus = memchr(s, '+', (size_t)(end - s));
        if (next_pct && next_pct < s)
            next_pct = memchr(s, '%', (size_t)(end - s));
        const char *stop = end;
        if (next_plus && next_plus < stop)
            stop = next_plus;
        if (next_pct && next_pct < stop)
            stop = next_pct;
        size_t run = (size_t)(stop - s);
        memcpy(out + o, s, run);
        o += run;
        s = stop;
        if (s == end)
            break;
        if (*s == '+') {
            out[o++] = ' ';
            s++;
        } else {
            if (end - s < 3)
                return -1;
            int hi = hexval((unsigned char)s[1]);
            int lo = hexval((unsigned char)s[2]);
            if (hi < 0 || lo < 0)
                return -1;
            out[o++] = (char)(hi << 4 | lo);
            s += 3;
        }
    }
    return (long)o;
}

static const struct param_view *lookup(const struct params *p, const char *key, size_t key_len)
{
    for (size_t i = 0; i < p->count; i++) {
        const struct param_view *e = &p->entries[i];
        if (e->key_len == key_len && memcmp(e->key, key, key_len) == 0)
            return e;
    }
    return NULL;
}

static bool is_msg_body(const char *key, size_t key_len)
{
    return (key_len == 7 && memcmp(key, "msgBody", 7) == 0) ||
           (key_len > 8 && memcmp(key, "msgBody.", 8) == 0);
}

/* Checks one decoded pair against the invariants and appends it.  `key` and
 * `val` already live in a chunk (NUL-terminated). */
static int add_entry(struct params *p, const char *key, size_t key_len, const char *val,
                     size_t val_len, struct cmq_fault *fault)
{
    if (key_len == 0 || key_len > CMQ_PARAM_NAME_LEN_MAX)
        return cmq_fault_setn(fault, CMQERR_PARAM_KEY_FORMAT, key, key_len, CMQ_EINVAL);
    for (size_t i = 0; i < key_len; i++) {
        unsigned char c = (unsigned char)key[i];
        if (c < 0x21 || c > 0x7E)
            return cmq_fault_setn(fault, CMQERR_PARAM_KEY_FORMAT, key, key_len, CMQ_EINVAL);
    }
    if (val_len > CMQ_PARAM_VALUE_BYTES_MAX) {
        enum cmq_err e = is_msg_body(key, key_len) ? CMQERR_MSG_TOO_BIG : CMQERR_PARAM_RANGE;
        return cmq_fault_setn(fault, e, key, key_len, CMQ_ETOOBIG);
    }
    if (!utf8_valid(val, val_len))
        return cmq_fault_setn(fault, CMQERR_PARAM_ERROR, key, key_len, CMQ_EINVAL);
    if (lookup(p, key, key_len))
        return cmq_fault_setn(fault, CMQERR_PARAM_NOT_REPEATABLE, key, key_len, CMQ_EINVAL);
    if (p->count >= CMQ_PARAMS_MAX)
        return cmq_fault_set(fault, CMQERR_REQUEST_TOO_BIG, "parameters", CMQ_ELIMIT);
    p->entries[p->count++] =
        (struct param_view){.key = key, .key_len = key_len, .val = val, .val_len = val_len};
    return CMQ_OK;
}

static struct chunk *chunk_new(struct params *p, size_t bytes)
{
    struct chunk *c = malloc(sizeof(*c) + bytes);
    if (!c)
        return NULL;
    c->next = p->chunks;
    p->chunks = c;
    return c;
}

int params_parse(struct params *p, const char *data, size_t len, struct cmq_fault *fault)
{
    if (len > CMQ_REQUEST_BYTES_MAX || p->raw_bytes + len > CMQ_REQUEST_BYTES_MAX)
        return cmq_fault_set(fault, CMQERR_REQUEST_TOO_BIG, "request", CMQ_ETOOBIG);
    if (len == 0)
        return CMQ_OK;

    /* Segments are at most (number of '&') + 1; each needs two NULs. */
    size_t segments = 1;
    for (const char *q = data; (q = memchr(q, '&', (size_t)(data + len - q))) != NULL; q++)
        segments++;
    struct chunk *c = chunk_new(p, len + 2 * segments);
    if (!c)
        return cmq_fault_set(fault, CMQERR_INTERNAL, NULL, CMQ_ENOMEM);

    size_t saved_count = p->count;
    char *w = c->data;
    const char *end = data + len;
    const char *s = data;
    int rc = CMQ_OK;
    while (s < end) {
        const char *amp = memchr(s, '&', (size_t)(end - s));
        const char *seg_end = amp ? amp : end;
        if (seg_end > s) { /* empty segments ("a=1&&b=2") are skipped */
            const char *eq = memchr(s, '=', (size_t)(seg_end - s));
            const char *key_end = eq ? eq : seg_end;
            char *key = w;
            long kl = params_decode(s, (size_t)(key_end - s), key);
            if (kl < 0) {
                rc = cmq_fault_setn(fault, CMQERR_REQUEST_TOO_BIG, s, (size_t)(key_end - s),
                                    CMQ_EINVAL);
                break;
            }
            key[kl] = '\0';
            w += kl + 1;
            char *val = w;
            long vl = 0;
            if (eq) {
                vl = params_decode(eq + 1, (size_t)(seg_end - eq - 1), val);
                if (vl < 0) {
                    rc = cmq_fault_setn(fault, CMQERR_REQUEST_TOO_BIG, key, (size_t)kl,
                                        CMQ_EINVAL);
                    break;
                }
            }
            val[vl] = '\0';
            w += vl + 1;
            rc = add_entry(p, key, (size_t)kl, val, (size_t)vl, fault);
            if (rc != CMQ_OK)
                break;
        }
        s = seg_end + 1;
    }
    if (rc != CMQ_OK) {
        /* All-or-nothing: drop what this call added (the chunk is freed at
         * reset; the entries pointing into it are gone now). */
        p->count = saved_count;
        return rc;
    }
    p->raw_bytes += len;
    return CMQ_OK;
}

int params_add(struct params *p, const char *key, const char *val, size_t val_len,
               struct cmq_fault *fault)
{
    size_t key_len = strlen(key);
    if (key_len > CMQ_PARAM_NAME_LEN_MAX)
        return cmq_fault_setn(fault, CMQERR_PARAM_KEY_FORMAT, key, key_len, CMQ_EINVAL);
    if (val_len > CMQ_PARAM_VALUE_BYTES_MAX)
        return cmq_fault_setn(fault, CMQERR_PARAM_RANGE, key, key_len, CMQ_ETOOBIG);
    struct chunk *c = chunk_new(p, key_len + val_len + 2);
    if (!c)
        return cmq_fault_set(fault, CMQERR_INTERNAL, NULL, CMQ_ENOMEM);
    memcpy(c->data, key, key_len + 1);
    char *v = c->data + key_len + 1;
    if (val_len)
        memcpy(v, val, val_len);
    v[val_len] = '\0';
    return add_entry(p, c->data, key_len, v, val_len, fault);
}

bool params_find(const struct params *p, const char *key, struct param_view *out)
{
    const struct param_view *e = lookup(p, key, strlen(key));
    if (!e)
        return false;
    if (out)
        *out = *e;
    return true;
}

/* The value of `key` when present and non-empty. */
static const struct param_view *present(const struct params *p, const char *key,
                                        struct cmq_fault *fault)
{
    const struct param_view *e = lookup(p, key, strlen(key));
    if (!e || e->val_len == 0) {
        cmq_fault_set(fault, CMQERR_MISSING_PARAM, key, CMQ_ENOTFOUND);
        return NULL;
    }
    return e;
}

int params_get_str(const struct params *p, const char *key, size_t max_len, const char **val,
                   size_t *len, struct cmq_fault *fault)
{
    const struct param_view *e = present(p, key, fault);
    if (!e)
        return CMQ_ENOTFOUND;
    if (e->val_len > max_len)
        return cmq_fault_set(fault, CMQERR_PARAM_RANGE, key, CMQ_ETOOBIG);
    *val = e->val;
    *len = e->val_len;
    return CMQ_OK;
}

/* Parses canonical-enough decimal digits into *out; false for anything that
 * is not all digits.  *overflow is set when the digits exceed UINT64_MAX. */
static bool parse_digits(const char *s, size_t len, uint64_t *out, bool *overflow)
{
    if (len == 0)
        return false;
    uint64_t v = 0;
    *overflow = false;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            *overflow = true;
        else
            v = v * 10 + d;
    }
    *out = v;
    return true;
}

int params_get_int(const struct params *p, const char *key, int64_t min, int64_t max,
                   int64_t *out, struct cmq_fault *fault)
{
    assert(min <= max);
    const struct param_view *e = present(p, key, fault);
    if (!e)
        return CMQ_ENOTFOUND;
    bool neg = e->val[0] == '-';
    uint64_t mag;
    bool overflow;
    if (!parse_digits(e->val + neg, e->val_len - neg, &mag, &overflow))
        return cmq_fault_set(fault, CMQERR_PARAM_TYPE, key, CMQ_EINVAL);
    if (overflow || (neg ? mag > (uint64_t)INT64_MAX + 1 : mag > (uint64_t)INT64_MAX))
        return cmq_fault_set(fault, CMQERR_PARAM_RANGE, key, CMQ_EINVAL);
    int64_t v;
    if (!neg)
        v = (int64_t)mag;
    else if (mag == (uint64_t)INT64_MAX + 1)
        v = INT64_MIN;
    else
        v = -(int64_t)mag;
    if (v < min || v > max)
        return cmq_fault_set(fault, CMQERR_PARAM_RANGE, key, CMQ_EINVAL);
    *out = v;
    return CMQ_OK;
}

int params_get_uint(const struct params *p, const char *key, uint64_t max, uint64_t *out,
                    struct cmq_fault *fault)
{
    const struct param_view *e = present(p, key, fault);
    if (!e)
        return CMQ_ENOTFOUND;
    uint64_t v;
    bool overflow;
    if (!parse_digits(e->val, e->val_len, &v, &overflow))
        return cmq_fault_set(fault, CMQERR_PARAM_TYPE, key, CMQ_EINVAL);
    if (overflow || v > max)
        return cmq_fault_set(fault, CMQERR_PARAM_RANGE, key, CMQ_EINVAL);
    *out = v;
    return CMQ_OK;
}

int params_get_bool(const struct params *p, const char *key, bool *out, struct cmq_fault *fault)
{
    const struct param_view *e = present(p, key, fault);
    if (!e)
        return CMQ_ENOTFOUND;
    if ((e->val_len == 1 && e->val[0] == '1') ||
        (e->val_len == 4 && strncasecmp(e->val, "true", 4) == 0)) {
        *out = true;
        return CMQ_OK;
    }
    if ((e->val_len == 1 && e->val[0] == '0') ||
        (e->val_len == 5 && strncasecmp(e->val, "false", 5) == 0)) {
        *out = false;
        return CMQ_OK;
    }
    return cmq_fault_set(fault, CMQERR_PARAM_TYPE, key, CMQ_EINVAL);
}

/* The index of `key` as a member of list `base` (key = base "." digits):
 * 1 with *index set; 0 when the key is not a member; -1 when it is a member
 * whose index is not canonical decimal (leading zero, too long, not digits). */
static int list_index(const struct param_view *e, const char *base, size_t base_len,
                      unsigned *index)
{
    if (e->key_len <= base_len + 1 || memcmp(e->key, base, base_len) != 0 ||
        e->key[base_len] != '.')
        return 0;
    const char *d = e->key + base_len + 1;
    size_t n = e->key_len - base_len - 1;
    if (n > 3 || (n > 1 && d[0] == '0'))
        return -1;
    unsigned v = 0;
    for (size_t i = 0; i < n; i++) {
        if (d[i] < '0' || d[i] > '9')
            return -1;
        v = v * 10 + (unsigned)(d[i] - '0');
    }
    _Static_assert(CMQ_LIST_INDEX_MAX == 999, "list_index parses at most three digits");
    *index = v;
    return 1;
}

int params_get_list(const struct params *p, const char *base, size_t max_count, unsigned flags,
                    struct param_value *vals, size_t *count, struct cmq_fault *fault)
{
    size_t base_len = strlen(base);
    size_t n = 0;
    unsigned min = CMQ_LIST_INDEX_MAX + 1;
    for (size_t i = 0; i < p->count; i++) {
        unsigned idx;
        int r = list_index(&p->entries[i], base, base_len, &idx);
        if (r < 0)
            return cmq_fault_setn(fault, CMQERR_PARAM_KEY_FORMAT, p->entries[i].key,
                                  p->entries[i].key_len, CMQ_EINVAL);
        if (r == 0)
            continue;
        n++;
        if (idx < min)
            min = idx;
    }
    if (n == 0)
        return cmq_fault_set(fault, CMQERR_MISSING_PARAM, base, CMQ_ENOTFOUND);
    if (n > max_count)
        return cmq_fault_set(fault, CMQERR_BATCH_SIZE, base, CMQ_ELIMIT);
    if (min > 1)
        return cmq_fault_set(fault, CMQERR_NOT_CONSEQUENT, base, CMQ_EINVAL);

    /* Keys are unique, so n distinct indices that all fall in [min, min+n)
     * are exactly that range: consecutive. */
    for (size_t k = 0; k < n; k++)
        vals[k].val = NULL;
    for (size_t i = 0; i < p->count; i++) {
        unsigned idx;
        if (list_index(&p->entries[i], base, base_len, &idx) != 1)
            continue;
        if (idx - min >= n)
            return cmq_fault_set(fault, CMQERR_NOT_CONSEQUENT, base, CMQ_EINVAL);
        assert(vals[idx - min].val == NULL);
        vals[idx - min] = (struct param_value){p->entries[i].val, p->entries[i].val_len};
    }
    size_t out = 0;
    for (size_t k = 0; k < n; k++) {
        if ((flags & PARAMS_LIST_SKIP_EMPTY) && vals[k].len == 0)
            continue;
        vals[out++] = vals[k];
    }
    if (out == 0)
        return cmq_fault_set(fault, CMQERR_MISSING_PARAM, base, CMQ_ENOTFOUND);
    *count = out;
    return CMQ_OK;
}

/* Appends the form encoding of `s` to out at *pos (counting past cap). */
static void encode_into(const char *s, size_t len, char *out, size_t cap, size_t *pos)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        char e[3];
        size_t n = 1;
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '_' || c == '.' || c == '~') {
            e[0] = (char)c;
        } else if (c == ' ') {
            e[0] = '+';
        } else {
            e[0] = '%';
            e[1] = hex[c >> 4];
            e[2] = hex[c & 15];
            n = 3;
        }
        for (size_t k = 0; k < n; k++) {
            if (*pos + 1 < cap)
                out[*pos] = e[k];
            (*pos)++;
        }
    }
}

size_t params_encode(const struct params *p, char *out, size_t cap)
{
    size_t pos = 0;
    for (size_t i = 0; i < p->count; i++) {
        const struct param_view *e = &p->entries[i];
        if (i > 0) {
            if (pos + 1 < cap)
                out[pos] = '&';
            pos++;
        }
        encode_into(e->key, e->key_len, out, cap, &pos);
        if (pos + 1 < cap)
            out[pos] = '=';
        pos++;
        encode_into(e->val, e->val_len, out, cap, &pos);
    }
    if (cap > 0)
        out[pos < cap ? pos : cap - 1] = '\0';
    return pos;
}
