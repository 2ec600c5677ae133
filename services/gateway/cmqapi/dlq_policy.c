/* dlq_policy.c: the deadLetterPolicy JSON reader; see dlq_policy.h. */
#include "dlq_policy.h"

#include "json.h"
#include "status.h"

#include <stdio.h>
#include <string.h>

#define PARAM "deadLetterPolicy"

enum { RD_OK = 0, RD_BAD = -1, RD_LONG = -2 };

struct rd {
    const char *s;
    size_t n, i;
};

static int peek(const struct rd *r) { return r->i < r->n ? (unsigned char)r->s[r->i] : -1; }

static void blanks(struct rd *r)
{
    while (r->i < r->n && (r->s[r->i] == ' ' || r->s[r->i] == '\t' || r->s[r->i] == '\n' ||
                           r->s[r->i] == '\r'))
        r->i++;
}

static int hex4(struct rd *r, unsigned *out)
{
    if (r->n - r->i < 4)
        return RD_BAD;
    unsigned v = 0;
    for (int k = 0; k < 4; k++) {
        char c = r->s[r->i++];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return RD_BAD;
    }
    *out = v;
    return RD_OK;
}

/* Appends k bytes to out (NULL: counting only). */
static int put(char *out, size_t cap, size_t *len, const char *b, size_t k)
{
    if (out) {
        if (*len + k > cap)
            return RD_LONG;
        memcpy(out + *len, b, k);
    }
    *len += k;
    return RD_OK;
}

/* A JSON string at r->i, decoded into out (at most cap bytes, then
 * NUL-terminated: out has cap + 1 bytes) or skipped when out is NULL. */
static int read_string(struct rd *r, char *out, size_t cap, size_t *out_len)
{
    size_t len = 0;
    int long_ = 0;
    if (peek(r) != '"')
        return RD_BAD;
    r->i++;
    for (;;) {
        if (r->i >= r->n)
            return RD_BAD;
        unsigned char c = (unsigned char)r->s[r->i++];
        char buf[4];
        size_t k = 1;
        if (c == '"')
            break;
        if (c < 0x20)
            return RD_BAD;
        buf[0] = (char)c;
        if (c == '\\') {
            if (r->i >= r->n)
                return RD_BAD;
            char e = r->s[r->i++];
            switch (e) {
            case '"': case '\\': case '/': buf[0] = e; break;
            case 'b': buf[0] = '\b'; break;
            case 'f': buf[0] = '\f'; break;
            case 'n': buf[0] = '\n'; break;
            case 'r': buf[0] = '\r'; break;
            case 't': buf[0] = '\t'; break;
            case 'u': {
                unsigned cp, lo;
                if (hex4(r, &cp) != RD_OK || (cp >= 0xDC00 && cp <= 0xDFFF))
                    return RD_BAD;
                if (cp >= 0xD800 && cp <= 0xDBFF) { /* a pair, or nothing */
                    if (r->n - r->i < 6 || r->s[r->i] != '\\' || r->s[r->i + 1] != 'u')
                        return RD_BAD;
                    r->i += 2;
                    if (hex4(r, &lo) != RD_OK || lo < 0xDC00 || lo > 0xDFFF)
                        return RD_BAD;
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                }
                if (cp == 0)
                    return RD_BAD; /* no NUL inside a C string */
                if (cp < 0x80) {
                    buf[0] = (char)cp;
                } else if (cp < 0x800) {
                    buf[0] = (char)(0xC0 | (cp >> 6));
                    buf[1] = (char)(0x80 | (cp & 0x3F));
                    k = 2;
                } else if (cp < 0x10000) {
                    buf[0] = (char)(0xE0 | (cp >> 12));
                    buf[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
                    buf[2] = (char)(0x80 | (cp & 0x3F));
                    k = 3;
                } else {
                    buf[0] = (char)(0xF0 | (cp >> 18));
                    buf[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
                    buf[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
                    buf[3] = (char)(0x80 | (cp & 0x3F));
                    k = 4;
                }
                break;
            }
            default:
                return RD_BAD;
            }
        }
        if (!long_ && put(out, cap, &len, buf, k) != RD_OK)
            long_ = 1; /* keep reading: the syntax decides first */
    }
    if (out)
        out[long_ ? 0 : len] = '\0';
    if (out_len)
        *out_len = len;
    return long_ ? RD_LONG : RD_OK;
}

/* A JSON number.  RD_OK with *v for an integer that fits int64; 1 for a
 * valid number that is not an integer; RD_LONG for an integer too large. */
static int read_number(struct rd *r, int64_t *v)
{
    int neg = 0, overflow = 0, frac = 0;
    uint64_t acc = 0;
    if (peek(r) == '-') {
        neg = 1;
        r->i++;
    }
    int c = peek(r);
    if (c < '0' || c > '9')
        return RD_BAD;
    if (c == '0') {
        r->i++;
    } else {
        while ((c = peek(r)) >= '0' && c <= '9') {
            if (acc > (UINT64_MAX - 9) / 10)
                overflow = 1;
            else
                acc = acc * 10 + (uint64_t)(c - '0');
            r->i++;
        }
    }
    if (peek(r) == '.') {
        r->i++;
        frac = 1;
        if ((c = peek(r)) < '0' || c > '9')
            return RD_BAD;
        while ((c = peek(r)) >= '0' && c <= '9')
            r->i++;
    }
    if (peek(r) == 'e' || peek(r) == 'E') {
        r->i++;
        frac = 1;
        if (peek(r) == '+' || peek(r) == '-')
            r->i++;
        if ((c = peek(r)) < '0' || c > '9')
            return RD_BAD;
        while ((c = peek(r)) >= '0' && c <= '9')
            r->i++;
    }
    if (frac)
        return 1;
    if (overflow || acc > (uint64_t)INT64_MAX + (uint64_t)neg)
        return RD_LONG;
    *v = neg ? (int64_t)(0 - acc) : (int64_t)acc;
    return RD_OK;
}

static int literal(struct rd *r, const char *word)
{
    size_t k = strlen(word);
    if (r->n - r->i < k || memcmp(r->s + r->i, word, k) != 0)
        return RD_BAD;
    r->i += k;
    return RD_OK;
}

static int skip_value(struct rd *r, int depth);

/* '{' or '[' already seen at r->i. */
static int skip_container(struct rd *r, int depth)
{
    char close = r->s[r->i] == '{' ? '}' : ']';
    int object = close == '}';
    if (depth >= DLQ_POLICY_DEPTH_MAX)
        return RD_BAD;
    r->i++;
    blanks(r);
    if (peek(r) == close) {
        r->i++;
        return RD_OK;
    }
    for (;;) {
        if (object) {
            if (read_string(r, NULL, 0, NULL) != RD_OK)
                return RD_BAD;
            blanks(r);
            if (peek(r) != ':')
                return RD_BAD;
            r->i++;
        }
        if (skip_value(r, depth + 1) != RD_OK)
            return RD_BAD;
        blanks(r);
        if (peek(r) == ',') {
            r->i++;
            blanks(r);
            continue;
        }
        if (peek(r) != close)
            return RD_BAD;
        r->i++;
        return RD_OK;
    }
}

static int skip_value(struct rd *r, int depth)
{
    int64_t ignored;
    blanks(r);
    switch (peek(r)) {
    case '"': return read_string(r, NULL, 0, NULL);
    case '{': case '[': return skip_container(r, depth);
    case 't': return literal(r, "true");
    case 'f': return literal(r, "false");
    case 'n': return literal(r, "null");
    default: return read_number(r, &ignored) == RD_BAD ? RD_BAD : RD_OK;
    }
}

/* An integer member: a JSON integer, or a string holding exactly one. */
static int read_int(struct rd *r, int64_t *v, struct cmq_fault *f)
{
    int rc;
    if (peek(r) == '"') {
        char text[32];
        size_t len;
        rc = read_string(r, text, sizeof text - 1, &len);
        if (rc == RD_BAD)
            return cmq_fault_set(f, CMQERR_PARAM_TYPE, PARAM, CMQ_EINVAL);
        if (rc == RD_LONG)
            return cmq_fault_set(f, CMQERR_PARAM_RANGE, PARAM, CMQ_EINVAL);
        struct rd sub = {text, len, 0};
        rc = read_number(&sub, v);
        if (rc == RD_OK && sub.i != len)
            rc = RD_BAD;
    } else {
        rc = read_number(r, v);
    }
    if (rc == RD_LONG)
        return cmq_fault_set(f, CMQERR_PARAM_RANGE, PARAM, CMQ_EINVAL);
    if (rc != RD_OK)
        return cmq_fault_set(f, CMQERR_PARAM_TYPE, PARAM, CMQ_EINVAL);
    return CMQ_OK;
}

int dlq_policy_parse(const char *s, size_t len, struct dlq_policy *out, struct cmq_fault *f)
{
    memset(out, 0, sizeof *out);
    if (len > DLQ_POLICY_TEXT_MAX)
        return cmq_fault_set(f, CMQERR_PARAM_RANGE, PARAM, CMQ_EINVAL);
    struct rd r = {s, len, 0};
    blanks(&r);
    if (r.i == r.n)
        return CMQ_ENOTFOUND;
    if (peek(&r) != '{')
        return cmq_fault_set(f, CMQERR_PARAM_TYPE, PARAM, CMQ_EINVAL);
    r.i++;
    blanks(&r);
    int members = 0;
    bool seen_queue = false;
    if (peek(&r) == '}') {
        r.i++;
    } else {
        for (;;) {
            if (++members > DLQ_POLICY_MEMBERS_MAX)
                return cmq_fault_set(f, CMQERR_PARAM_RANGE, PARAM, CMQ_EINVAL);
            char key[32];
            int rc = read_string(&r, key, sizeof key - 1, NULL);
            if (rc == RD_BAD)
                return cmq_fault_set(f, CMQERR_PARAM_TYPE, PARAM, CMQ_EINVAL);
            if (rc == RD_LONG)
                key[0] = '\0'; /* no known key is that long: skip the member */
            blanks(&r);
            if (peek(&r) != ':')
                return cmq_fault_set(f, CMQERR_PARAM_TYPE, PARAM, CMQ_EINVAL);
            r.i++;
            blanks(&r);
            bool *has = NULL;
            int64_t *val = NULL;
            if (strcmp(key, "policy") == 0) {
                has = &out->has_policy;
                val = &out->policy;
            } else if (strcmp(key, "maxReceiveCount") == 0) {
                has = &out->has_max_receive_count;
                val = &out->max_receive_count;
            } else if (strcmp(key, "maxTimeToLive") == 0) {
                has = &out->has_max_time_to_live;
                val = &out->max_time_to_live;
            }
            if (val) {
                if (*has)
                    return cmq_fault_set(f, CMQERR_PARAM_ERROR, NULL, CMQ_EINVAL);
                if (read_int(&r, val, f) != CMQ_OK)
                    return CMQ_EINVAL;
                *has = true;
            } else if (strcmp(key, "deadLetterQueue") == 0) {
                if (seen_queue)
                    return cmq_fault_set(f, CMQERR_PARAM_ERROR, NULL, CMQ_EINVAL);
                seen_queue = true;
                rc = read_string(&r, out->dead_letter_queue, DLQ_POLICY_QUEUE_MAX, NULL);
                if (rc == RD_LONG)
                    return cmq_fault_set(f, CMQERR_PARAM_RANGE, PARAM, CMQ_EINVAL);
                if (rc != RD_OK)
                    return cmq_fault_set(f, CMQERR_PARAM_TYPE, PARAM, CMQ_EINVAL);
            } else if (skip_value(&r, 1) != RD_OK) {
                return cmq_fault_set(f, CMQERR_PARAM_TYPE, PARAM, CMQ_EINVAL);
            }
            blanks(&r);
            if (peek(&r) == ',') {
                r.i++;
                blanks(&r);
                continue;
            }
            if (peek(&r) != '}')
                return cmq_fault_set(f, CMQERR_PARAM_TYPE, PARAM, CMQ_EINVAL);
            r.i++;
            break;
        }
    }
    blanks(&r);
    if (r.i != r.n)
        return cmq_fault_set(f, CMQERR_PARAM_TYPE, PARAM, CMQ_EINVAL);
    return CMQ_OK;
}

size_t dlq_policy_format(const char *dlq_id, int64_t policy, int64_t max_receive_count,
                         int64_t max_time_to_live, char *out, size_t cap)
{
    char id[2 * DLQ_POLICY_QUEUE_MAX];
    if (json_escape(dlq_id, strlen(dlq_id), id, sizeof id) >= sizeof id)
        return 0;
    int n = snprintf(out, cap,
                     "{\"deadLetterQueue\":\"%s\",\"policy\":%lld,\"maxReceiveCount\":%lld,"
                     "\"maxTimeToLive\":%lld}",
                     id, (long long)policy, (long long)max_receive_count,
                     (long long)max_time_to_live);
    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}
