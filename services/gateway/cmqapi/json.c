/* json.c: the streaming JSON writer; see json.h for the escaping policy.
 *
 * The writer keeps one buffer that doubles up to the cap.  One byte is always
 * kept free for the terminating NUL.  A failure is sticky: after it, every
 * call returns at once, so handlers need not check each call; they check
 * json_finish once.
 */
#include "json.h"

#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "status.h"
#include "utf8.h"

enum frame { FRAME_OBJ = 1, FRAME_ARR = 2 };

struct json {
    char *buf;
    size_t len;
    size_t alloc;
    size_t cap;    /* hard maximum of alloc */
    int status;    /* sticky CMQ_OK / CMQ_ETOOBIG / CMQ_ENOMEM */
    int depth;
    bool want_value; /* a key was written; its value is due */
    bool done;       /* a complete top-level value was written */
    uint8_t frame[JSON_DEPTH_MAX];
    bool nonempty[JSON_DEPTH_MAX];
};

#define JSON_INITIAL_ALLOC 512

struct json *json_create(size_t cap_bytes)
{
    assert(cap_bytes > 1);
    struct json *j = calloc(1, sizeof(*j));
    if (!j)
        return NULL;
    j->alloc = cap_bytes < JSON_INITIAL_ALLOC ? cap_bytes : JSON_INITIAL_ALLOC;
    j->buf = malloc(j->alloc);
    if (!j->buf) {
        free(j);
        return NULL;
    }
    j->cap = cap_bytes;
    j->buf[0] = '\0';
    return j;
}

void json_destroy(struct json *j)
{
    if (!j)
        return;
    free(j->buf);
    free(j);
}

void json_reset(struct json *j)
{
    j->len = 0;
    j->status = CMQ_OK;
    j->depth = 0;
    j->want_value = false;
    j->done = false;
    j->buf[0] = '\0';
}

int json_status(const struct json *j) { return j->status; }

/* Makes room for `n` more bytes plus the NUL; false (and sticky failure)
 * when that would pass the cap or memory runs out. */
static bool reserve(struct json *j, size_t n)
{
    if (j->status != CMQ_OK)
        return false;
    if (n >= j->cap || j->len + n + 1 > j->cap) {
        j->status = CMQ_ETOOBIG;
        return false;
    }
    if (j->len + n + 1 <= j->alloc)
        return true;
    size_t want = j->alloc;
    while (want < j->len + n + 1)
        want = want > j->cap / 2 ? j->cap : want * 2;
    char *nb = realloc(j->buf, want);
    if (!nb) {
        j->status = CMQ_ENOMEM;
        return false;
    }
    j->buf = nb;
    j->alloc = want;
    return true;
}

static void put(struct json *j, const void *p, size_t n)
{
    if (!reserve(j, n))
        return;
    memcpy(j->buf + j->len, p, n);
    j->len += n;
    j->buf[j->len] = '\0';
}

static void putc1(struct json *j, char c) { put(j, &c, 1); }

/* Writes the comma a new array element or object member needs, and checks
 * that a value is allowed here. */
static void before_value(struct json *j)
{
    if (j->depth == 0) {
        assert(!j->done && "only one top-level value");
        return;
    }
    int d = j->depth - 1;
    if (j->frame[d] == FRAME_OBJ) {
        assert(j->want_value && "object member without a key");
        j->want_value = false;
        return;
    }
    if (j->nonempty[d])
        putc1(j, ',');
    j->nonempty[d] = true;
}

static void after_value(struct json *j)
{
    if (j->depth == 0)
        j->done = true;
}

/* ---- escaping ---- */

/* A sink that either appends to a writer or fills a fixed buffer. */
struct sink {
    struct json *j;
    char *out;
    size_t cap;
    size_t total; /* bytes the full escape needs */
    bool full;    /* the fixed buffer stopped taking characters */
};

static void sink_put(struct sink *s, const char *p, size_t n)
{
    if (s->j) {
        put(s->j, p, n);
    } else if (!s->full) {
        /* Whole characters only: a piece that does not fit stops the copy. */
        if (s->cap > 0 && s->total + n < s->cap) {
            memcpy(s->out + s->total, p, n);
            s->out[s->total + n] = '\0';
        } else {
            s->full = true;
        }
    }
    s->total += n;
}

static void escape_into(struct sink *s, const char *str, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const uint8_t *p = (const uint8_t *)str;
    size_t i = 0;
    while (i < len) {
        /* Copy the longest run that needs no escaping in one piece. */
        size_t run = i;
        while (run < len && p[run] >= 0x20 && p[run] < 0x80 && p[run] != '"' && p[run] != '\\')
            run++;
        if (run > i) {
            if (s->j) {
                sink_put(s, str + i, run - i);
            } else {
                for (size_t k = i; k < run; k++)
                    sink_put(s, str + k, 1);
            }
            i = run;
            continue;
        }
        uint8_t c = p[i];
        if (c < 0x80) {
            char e[6];
            size_t n = 2;
            e[0] = '\\';
            switch (c) {
            case '"': e[1] = '"'; break;
            case '\\': e[1] = '\\'; break;
            case '\b': e[1] = 'b'; break;
            case '\f': e[1] = 'f'; break;
            case '\n': e[1] = 'n'; break;
            case '\r': e[1] = 'r'; break;
            case '\t': e[1] = 't'; break;
            default:
                e[1] = 'u';
                e[2] = '0';
                e[3] = '0';
                e[4] = hex[c >> 4];
                e[5] = hex[c & 15];
                n = 6;
                break;
            }
            sink_put(s, e, n);
            i++;
            continue;
        }
        uint32_t cp;
        int n = utf8_decode(p + i, len - i, &cp);
        if (n < 0) {
            sink_put(s, "\xEF\xBF\xBD", 3); /* U+FFFD */
            i += (size_t)(-n);
        } else if (cp == 0x2028) {
            sink_put(s, "\\u2028", 6);
            i += (size_t)n;
        } else if (cp == 0x2029) {
            sink_put(s, "\\u2029", 6);
            i += (size_t)n;
        } else {
            sink_put(s, str + i, (size_t)n);
            i += (size_t)n;
        }
    }
}

size_t json_escape(const char *s, size_t len, char *out, size_t cap)
{
    struct sink k = {.out = out, .cap = cap};
    if (cap > 0)
        out[0] = '\0';
    escape_into(&k, s, len);
    return k.total;
}

static void write_string(struct json *j, const char *s, size_t len)
{
    struct sink k = {.j = j};
    putc1(j, '"');
    escape_into(&k, s, len);
    putc1(j, '"');
}

/* ---- structure ---- */

static void open_frame(struct json *j, enum frame f, char c)
{
    if (j->status != CMQ_OK)
        return;
    before_value(j);
    assert(j->depth < JSON_DEPTH_MAX && "JSON nesting too deep");
    j->frame[j->depth] = (uint8_t)f;
    j->nonempty[j->depth] = false;
    j->depth++;
    putc1(j, c);
}

static void close_frame(struct json *j, enum frame f, char c)
{
    if (j->status != CMQ_OK)
        return;
    assert(j->depth > 0 && j->frame[j->depth - 1] == f && "unbalanced JSON");
    assert(!j->want_value && "object member without a value");
    j->depth--;
    putc1(j, c);
    after_value(j);
}

void json_obj_begin(struct json *j) { open_frame(j, FRAME_OBJ, '{'); }
void json_obj_end(struct json *j) { close_frame(j, FRAME_OBJ, '}'); }
void json_arr_begin(struct json *j) { open_frame(j, FRAME_ARR, '['); }
void json_arr_end(struct json *j) { close_frame(j, FRAME_ARR, ']'); }

void json_key(struct json *j, const char *key)
{
    if (j->status != CMQ_OK)
        return;
    assert(j->depth > 0 && j->frame[j->depth - 1] == FRAME_OBJ && "key outside an object");
    assert(!j->want_value && "two keys in a row");
    int d = j->depth - 1;
    if (j->nonempty[d])
        putc1(j, ',');
    j->nonempty[d] = true;
    write_string(j, key, strlen(key));
    putc1(j, ':');
    j->want_value = true;
}

void json_str(struct json *j, const char *s, size_t len)
{
    if (j->status != CMQ_OK)
        return;
    before_value(j);
    write_string(j, s, len);
    after_value(j);
}

void json_cstr(struct json *j, const char *s) { json_str(j, s, strlen(s)); }

static void write_raw_value(struct json *j, const char *text, size_t n)
{
    if (j->status != CMQ_OK)
        return;
    before_value(j);
    put(j, text, n);
    after_value(j);
}

void json_int(struct json *j, int64_t v)
{
    char b[24];
    int n = snprintf(b, sizeof(b), "%" PRId64, v);
    write_raw_value(j, b, (size_t)n);
}

void json_uint(struct json *j, uint64_t v)
{
    char b[24];
    int n = snprintf(b, sizeof(b), "%" PRIu64, v);
    write_raw_value(j, b, (size_t)n);
}

void json_bool(struct json *j, bool v)
{
    if (v)
        write_raw_value(j, "true", 4);
    else
        write_raw_value(j, "false", 5);
}

void json_null(struct json *j) { write_raw_value(j, "null", 4); }

/* ---- typed members (§13.4) ---- */

struct key_type {
    const char *key;
    enum json_key_type type;
};

/* Response keys of §6-§8, §10, §12 with the JSON type §2.3 and §13.4 demand.
 * Counters and times: integers.  Ids, names, bodies, handles: strings. */
static const struct key_type key_types[] = {
    {"code", JSON_KEY_INT},
    {"totalCount", JSON_KEY_INT},
    {"maxMsgHeapNum", JSON_KEY_INT},
    {"pollingWaitSeconds", JSON_KEY_INT},
    {"visibilityTimeout", JSON_KEY_INT},
    {"maxMsgSize", JSON_KEY_INT},
    {"msgRetentionSeconds", JSON_KEY_INT},
    {"createTime", JSON_KEY_INT},
    {"lastModifyTime", JSON_KEY_INT},
    {"activeMsgNum", JSON_KEY_INT},
    {"inactiveMsgNum", JSON_KEY_INT},
    {"rewindSeconds", JSON_KEY_INT},
    {"rewindmsgNum", JSON_KEY_INT},
    {"rewindMsgNum", JSON_KEY_INT},
    {"minMsgTime", JSON_KEY_INT},
    {"delayMsgNum", JSON_KEY_INT},
    {"enqueueTime", JSON_KEY_INT},
    {"firstDequeueTime", JSON_KEY_INT},
    {"nextVisibleTime", JSON_KEY_INT},
    {"dequeueCount", JSON_KEY_INT},
    {"msgCount", JSON_KEY_INT},
    {"filterType", JSON_KEY_INT},
    {"LoggingEnabled", JSON_KEY_INT},
    {"publishTime", JSON_KEY_INT},
    {"message", JSON_KEY_STRING},
    {"requestId", JSON_KEY_STRING},
    {"msgId", JSON_KEY_STRING},
    {"receiptHandle", JSON_KEY_STRING},
    {"msgBody", JSON_KEY_STRING},
    {"queueName", JSON_KEY_STRING},
    {"queueId", JSON_KEY_STRING},
    {"topicName", JSON_KEY_STRING},
    {"topicId", JSON_KEY_STRING},
    {"subscriptionName", JSON_KEY_STRING},
    {"subscriptionId", JSON_KEY_STRING},
    {"endpoint", JSON_KEY_STRING},
    {"protocol", JSON_KEY_STRING},
    {"protocal", JSON_KEY_STRING},
    {"notifyStrategy", JSON_KEY_STRING},
    {"notifyContentFormat", JSON_KEY_STRING},
    {"topicOwner", JSON_KEY_STRING},
    {"deadLetterPolicy", JSON_KEY_STRING},
    {"queueList", JSON_KEY_ARRAY},
    {"topicList", JSON_KEY_ARRAY},
    {"subscriptionList", JSON_KEY_ARRAY},
    {"msgList", JSON_KEY_ARRAY},
    {"msgInfoList", JSON_KEY_ARRAY},
    {"errorList", JSON_KEY_ARRAY},
    {"filterTag", JSON_KEY_ARRAY},
    {"filterTags", JSON_KEY_ARRAY},
    {"bindingKey", JSON_KEY_ARRAY},
};

enum json_key_type json_key_type(const char *key)
{
    for (size_t i = 0; i < sizeof(key_types) / sizeof(key_types[0]); i++)
        if (key_types[i].key[0] == key[0] && strcmp(key_types[i].key, key) == 0)
            return key_types[i].type;
    return JSON_KEY_UNKNOWN;
}

void json_kv_str(struct json *j, const char *key, const char *s, size_t len)
{
    enum json_key_type t = json_key_type(key);
    assert((t == JSON_KEY_UNKNOWN || t == JSON_KEY_STRING) && "§13.4: this key is not a string");
    (void)t;
    json_key(j, key);
    json_str(j, s, len);
}

void json_kv_cstr(struct json *j, const char *key, const char *s)
{
    json_kv_str(j, key, s, strlen(s));
}

void json_kv_int(struct json *j, const char *key, int64_t v)
{
    enum json_key_type t = json_key_type(key);
    assert((t == JSON_KEY_UNKNOWN || t == JSON_KEY_INT) && "§13.4: this key is not an integer");
    (void)t;
    json_key(j, key);
    json_int(j, v);
}

void json_kv_id(struct json *j, const char *key, uint64_t id)
{
    char b[24];
    int n = snprintf(b, sizeof(b), "%" PRIu64, id);
    json_kv_str(j, key, b, (size_t)n);
}

int json_finish(struct json *j, const char **out, size_t *len)
{
    if (j->status != CMQ_OK)
        return j->status;
    assert(j->depth == 0 && j->done && "JSON value incomplete");
    *out = j->buf;
    *len = j->len;
    return CMQ_OK;
}
