/* meta_sub.c: subscriptions of a topic (spec §8): protocol and endpoint
 * checks, notify strategy and format, filter tags and binding keys, the
 * optional dead-letter queue, and the per-topic quota.
 *
 *  - names are unique per topic, compared case-insensitively.
 *  - a subscription whose endpoint is a queue outlives that queue (spec §6.5
 *    recommendation: pushes then fail and are retried).
 * The topic and queue lookups go through the namespace engine (meta_ns.c).
 */
#include "meta_ns_internal.h"

#include "status.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define SUB_COLS                                                                             \
    "s.id, t.appid, t.name, t.topic_id, s.name, s.sub_id, s.protocol, s.endpoint,"          \
    " s.notify_strategy, s.notify_content_format, s.created_ms, s.modified_ms,"            \
    " s.endpoint_queue_id, COALESCE(t.partition_id, 0), t.num_id,"                         \
    " COALESCE((SELECT q.num_id FROM queues q WHERE q.queue_id = s.endpoint_queue_id), 0),"  \
    " COALESCE((SELECT q.name FROM queues q WHERE q.queue_id = s.dlq_queue_id), ''),"        \
    " COALESCE((SELECT q.num_id FROM queues q WHERE q.queue_id = s.dlq_queue_id), 0)"        \
    " FROM subscriptions s JOIN topics t ON t.id = s.topic_row"

static int sub_fill(struct meta_store *s, sqlite3_stmt *q, cmq_SubInfo *out, int64_t *row,
                    uint32_t *partition)
{
    *out = (cmq_SubInfo)cmq_SubInfo_init_zero;
    int64_t id = sqlite3_column_int64(q, 0);
    if (row)
        *row = id;
    out->appid = (uint64_t)sqlite3_column_int64(q, 1);
    meta_col_text(q, 2, out->topic_name, sizeof out->topic_name);
    meta_col_text(q, 3, out->topic_id, sizeof out->topic_id);
    meta_col_text(q, 4, out->subscription_name, sizeof out->subscription_name);
    meta_col_text(q, 5, out->subscription_id, sizeof out->subscription_id);
    meta_col_text(q, 6, out->protocol, sizeof out->protocol);
    meta_col_text(q, 7, out->endpoint, sizeof out->endpoint);
    meta_col_text(q, 8, out->notify_strategy, sizeof out->notify_strategy);
    meta_col_text(q, 9, out->notify_content_format, sizeof out->notify_content_format);
    out->create_time = (uint64_t)sqlite3_column_int64(q, 10) / 1000;
    out->last_modify_time = (uint64_t)sqlite3_column_int64(q, 11) / 1000;
    meta_col_text(q, 12, out->endpoint_queue_id, sizeof out->endpoint_queue_id);
    if (partition)
        *partition = (uint32_t)sqlite3_column_int64(q, 13);
    out->topic_num_id = (uint64_t)sqlite3_column_int64(q, 14);
    out->endpoint_queue_num_id = (uint64_t)sqlite3_column_int64(q, 15);
    meta_col_text(q, 16, out->dead_letter_queue, sizeof out->dead_letter_queue);
    out->dead_letter_queue_num_id = (uint64_t)sqlite3_column_int64(q, 17);
    sqlite3_stmt *l =
        meta_prepare(s, "SELECT kind, value FROM sub_lists WHERE sub_row = ? ORDER BY kind, idx");
    if (!l)
        return CMQ_EIO;
    sqlite3_bind_int64(l, 1, id);
    while (sqlite3_step(l) == SQLITE_ROW) {
        if (sqlite3_column_int(l, 0) == 1 && out->filter_tags_count < META_TAGS_MAX)
            meta_col_text(l, 1, out->filter_tags[out->filter_tags_count++],
                          sizeof out->filter_tags[0]);
        else if (sqlite3_column_int(l, 0) == 2 && out->binding_keys_count < META_BINDING_KEYS_MAX)
            meta_col_text(l, 1, out->binding_keys[out->binding_keys_count++],
                          sizeof out->binding_keys[0]);
    }
    sqlite3_finalize(l);
    return CMQ_OK;
}

static int sub_find(struct meta_store *s, int64_t topic_row, const char *name, cmq_SubInfo *out,
                    int64_t *row, uint32_t *partition, struct meta_err *e)
{
    sqlite3_stmt *q = meta_prepare(s, "SELECT " SUB_COLS " WHERE s.topic_row = ? AND s.name = ?");
    if (!q)
        return meta_db_fail(s, e, "subscription lookup");
    sqlite3_bind_int64(q, 1, topic_row);
    sqlite3_bind_text(q, 2, name, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(q), st = CMQ_OK;
    if (rc == SQLITE_ROW)
        st = sub_fill(s, q, out, row, partition);
    sqlite3_finalize(q);
    if (rc == SQLITE_DONE)
        return meta_fail(e, CMQ_ENOTFOUND, META_ROW(SUBSCRIPTION_NOT_EXIST), "subscriptionName",
                         "subscription is not existed: %s", name);
    if (rc != SQLITE_ROW || st != CMQ_OK)
        return meta_db_fail(s, e, "subscription lookup");
    return CMQ_OK;
}

static void event_sub(struct meta_store *s, const char *kind, const cmq_SubInfo *si,
                      uint32_t partition)
{
    cmq_MetaEvent *ev = meta_event_add(s, kind);
    if (!ev)
        return;
    ev->appid = si->appid;
    snprintf(ev->name, sizeof ev->name, "%s", si->topic_name);
    snprintf(ev->sub_name, sizeof ev->sub_name, "%s", si->subscription_name);
    snprintf(ev->id, sizeof ev->id, "%s", si->subscription_id);
    ev->partition_id = partition;
}

int meta_sub_events_of_topic(struct meta_store *s, int64_t topic_row, struct meta_err *e)
{
    sqlite3_stmt *q = meta_prepare(s, "SELECT " SUB_COLS " WHERE s.topic_row = ? ORDER BY s.id");
    if (!q)
        return meta_db_fail(s, e, "topic delete");
    sqlite3_bind_int64(q, 1, topic_row);
    while (sqlite3_step(q) == SQLITE_ROW) {
        cmq_SubInfo si;
        uint32_t part;
        if (sub_fill(s, q, &si, NULL, &part) == CMQ_OK)
            event_sub(s, "subscription.deleted", &si, part);
    }
    sqlite3_finalize(q);
    return CMQ_OK;
}

/* http(s)://host[:port][/...]: host a DNS name, IPv4 or [IPv6] (spec §8.1). */
static int http_endpoint_check(const char *ep, struct meta_err *e)
{
    size_t n = strlen(ep);
    if (n > META_ENDPOINT_LEN_MAX)
        return meta_fail(e, CMQ_EINVAL, META_ROW(PARAM_RANGE), "endpoint",
                         "parameter endpoint value or length is out of range (max %d)",
                         META_ENDPOINT_LEN_MAX);
    for (size_t i = 0; i < n; i++)
        if (isspace((unsigned char)ep[i]))
            return meta_fail(e, CMQ_EINVAL, META_ROW(ENDPOINT_BLANK), "endpoint",
                             "url connot contain any blank characters");
    const char *h;
    if (strncasecmp(ep, "http://", 7) == 0)
        h = ep + 7;
    else if (strncasecmp(ep, "https://", 8) == 0)
        h = ep + 8;
    else
        return meta_fail(e, CMQ_EINVAL, META_ROW(ENDPOINT_FORMAT), "endpoint",
                         "endpoint format error: an http endpoint starts with http:// or "
                         "https://");
    size_t hl = strcspn(h, "/?#");
    const char *port = NULL;
    size_t host_len = hl;
    int ok = hl > 0;
    if (ok && h[0] == '[') {
        const char *close = memchr(h, ']', hl);
        ok = close != NULL && close > h + 1;
        for (const char *c = h + 1; ok && c < close; c++)
            ok = isxdigit((unsigned char)*c) || *c == ':' || *c == '.';
        if (ok && (size_t)(close + 1 - h) < hl) {
            ok = close[1] == ':';
            port = close + 2;
        }
        host_len = ok ? (size_t)(close + 1 - h) : 0;
    } else if (ok) {
        const char *colon = memchr(h, ':', hl);
        if (colon) {
            port = colon + 1;
            host_len = (size_t)(colon - h);
        }
        ok = host_len > 0 && h[0] != '.' && h[0] != '-';
        for (size_t i = 0; ok && i < host_len; i++)
            ok = isalnum((unsigned char)h[i]) || h[i] == '.' || h[i] == '-' || h[i] == '_';
    }
    if (ok && port) {
        size_t pl = (size_t)(h + hl - port);
        long v = 0;
        ok = pl >= 1 && pl <= 5;
        for (size_t i = 0; ok && i < pl; i++) {
            ok = isdigit((unsigned char)port[i]);
            v = v * 10 + (port[i] - '0');
        }
        ok = ok && v >= 1 && v <= 65535;
    }
    if (!ok)
        return meta_fail(e, CMQ_EINVAL, META_ROW(ENDPOINT_ILLEGAL), "endpoint",
                         "illegal endpoint: the host must be a domain name or an IP address");
    return CMQ_OK;
}

/* Copies the non-empty entries of a request list into `out` after checking
 * count, length and dots.  kind 1 = filterTag, 2 = bindingKey. */
static int list_check(int kind, const char (*in)[129], size_t in_stride, pb_size_t n_in,
                      char (*out)[65], pb_size_t *n_out, struct meta_err *e)
{
    *n_out = 0;
    size_t max = kind == 1 ? META_TAGS_MAX : META_BINDING_KEYS_MAX;
    size_t len_max = kind == 1 ? META_TAG_LEN_MAX : META_BINDING_KEY_LEN_MAX;
    const char *param = kind == 1 ? "filterTag" : "bindingKey";
    for (pb_size_t i = 0; i < n_in; i++) {
        const char *v = (const char *)in + i * in_stride;
        if (!v[0])
            continue; /* spec §5.2: empty entries count as absent */
        if (*n_out >= max)
            return kind == 1 ? meta_fail(e, CMQ_EINVAL, META_ROW(FILTER_TAG_COUNT), param,
                                         "number of filterTag exceed limit (%d)", META_TAGS_MAX)
                             : meta_fail(e, CMQ_EINVAL, META_ROW(BINDING_KEY_TOO_MANY), param,
                                         "too many bindingKey (max %d)", META_BINDING_KEYS_MAX);
        size_t l = strlen(v);
        if (l > len_max)
            return meta_fail(e, CMQ_EINVAL, META_ROW(PARAM_RANGE), param,
                             "parameter %s value or length is out of range (max %zu)", param,
                             len_max);
        if (kind == 2) {
            int dots = 0;
            for (size_t j = 0; j < l; j++)
                dots += v[j] == '.';
            if (dots > META_BINDING_KEY_DOTS_MAX)
                return meta_fail(e, CMQ_EINVAL, META_ROW(TOO_MANY_DELIMITERS), param,
                                 "too many delimeters in bindingKey (max %d '.')",
                                 META_BINDING_KEY_DOTS_MAX);
        }
        snprintf(out[*n_out], 65, "%s", v);
        (*n_out)++;
    }
    return CMQ_OK;
}

static int strategy_norm(const char *in, char *out, size_t cap, struct meta_err *e)
{
    if (strcasecmp(in, "BACKOFF_RETRY") == 0 || strcasecmp(in, "EXPONENTIAL_DECAY_RETRY") == 0) {
        meta_lower(in, out, cap);
        for (char *c = out; *c; c++)
            *c = (char)toupper((unsigned char)*c);
        return CMQ_OK;
    }
    return meta_fail(e, CMQ_EINVAL, META_ROW(NOTIFY_STRATEGY_UNDEFINED), "notifyStrategy",
                     "undefined notify retry stragety: BACKOFF_RETRY or "
                     "EXPONENTIAL_DECAY_RETRY");
}

static int format_norm(const char *in, const char *protocol, char *out, size_t cap,
                       struct meta_err *e)
{
    if (strcasecmp(in, "JSON") != 0 && strcasecmp(in, "SIMPLIFIED") != 0)
        return meta_fail(e, CMQ_EINVAL, META_ROW(NOTIFY_FORMAT_UNDEFINED), "notifyContentFormat",
                         "undefined notify content format: JSON or SIMPLIFIED");
    /* Spec §8.1: a queue endpoint receives SIMPLIFIED.  The Python and Java
     * SDKs send JSON for queue subscriptions by default, so we coerce rather
     * than answer 10640. */
    if (strcmp(protocol, "queue") == 0 || strcasecmp(in, "SIMPLIFIED") == 0)
        snprintf(out, cap, "SIMPLIFIED");
    else
        snprintf(out, cap, "JSON");
    return CMQ_OK;
}

static int sub_lists_write(struct meta_store *s, int64_t sub_row, int kind, char (*vals)[65],
                           pb_size_t n)
{
    sqlite3_stmt *q = meta_prepare(s, "DELETE FROM sub_lists WHERE sub_row = ? AND kind = ?");
    if (!q)
        return CMQ_EIO;
    sqlite3_bind_int64(q, 1, sub_row);
    sqlite3_bind_int(q, 2, kind);
    if (meta_exec_step(q) != SQLITE_DONE)
        return CMQ_EIO;
    for (pb_size_t i = 0; i < n; i++) {
        q = meta_prepare(s, "INSERT INTO sub_lists VALUES (?, ?, ?, ?)");
        if (!q)
            return CMQ_EIO;
        sqlite3_bind_int64(q, 1, sub_row);
        sqlite3_bind_int(q, 2, kind);
        sqlite3_bind_int(q, 3, (int)i);
        sqlite3_bind_text(q, 4, vals[i], -1, SQLITE_TRANSIENT);
        if (meta_exec_step(q) != SQLITE_DONE)
            return CMQ_EIO;
    }
    return CMQ_OK;
}

int meta_sub_create(struct meta_store *s, const cmq_SubRequest *req, cmq_SubInfo *out,
                    struct meta_err *e)
{
    char protocol[8], strategy[32], format[16], lower[META_NAME_MAX + 1], sid[40];
    char tags[META_TAGS_MAX][65], keys[META_BINDING_KEYS_MAX][65];
    pb_size_t n_tags, n_keys;
    int st;
    if (!meta_name_valid(req->subscription_name))
        return meta_fail(e, CMQ_EINVAL, META_ROW(SUBSCRIPTION_NAME_FORMAT), "subscriptionName",
                         "subscription name format error: 1-64 letters, digits or '-', "
                         "starting with a letter");
    if (strcasecmp(req->protocol, "http") == 0)
        strcpy(protocol, "http");
    else if (strcasecmp(req->protocol, "queue") == 0)
        strcpy(protocol, "queue");
    else
        return meta_fail(e, CMQ_EINVAL, META_ROW(PROTOCOL_UNDEFINED), "protocol",
                         "undefined protocol: http or queue");
    if (!req->endpoint[0])
        return meta_fail(e, CMQ_EINVAL, META_ROW(ENDPOINT_FORMAT), "endpoint", "endpoint format error: empty");
    if (strcmp(protocol, "http") == 0) {
        if ((st = http_endpoint_check(req->endpoint, e)) != CMQ_OK)
            return st;
    } else if (!meta_name_valid(req->endpoint)) {
        return meta_fail(e, CMQ_EINVAL, META_ROW(ENDPOINT_FORMAT), "endpoint",
                         "endpoint format error: a queue endpoint is a queue name");
    }
    if ((st = strategy_norm(req->notify_strategy[0] ? req->notify_strategy
                                                     : "EXPONENTIAL_DECAY_RETRY",
                            strategy, sizeof strategy, e)) != CMQ_OK ||
        (st = format_norm(req->notify_content_format[0] ? req->notify_content_format : "JSON",
                          protocol, format, sizeof format, e)) != CMQ_OK)
        return st;
    if ((st = list_check(1, (const char(*)[129])req->filter_tags, sizeof req->filter_tags[0],
                         req->filter_tags_count, tags, &n_tags, e)) != CMQ_OK ||
        (st = list_check(2, (const char(*)[129])req->binding_keys, sizeof req->binding_keys[0],
                         req->binding_keys_count, keys, &n_keys, e)) != CMQ_OK)
        return st;
    meta_lower(req->subscription_name, lower, sizeof lower);
    if (meta_random_id("subscription-", sid, sizeof sid) != CMQ_OK)
        return meta_fail(e, CMQ_EINTERNAL, META_ROW(INTERNAL), NULL, "no random id");

    if ((st = meta_tx_begin(s, e)) != CMQ_OK)
        return st;
    cmq_TopicInfo t;
    int64_t trow;
    char queue_id[40] = "";
    if ((st = meta_entity_find(s, &meta_topic_entity, req->appid, req->topic_name, &t, &trow, e)) != CMQ_OK)
        goto fail;
    if (t.filter_type == 2 && n_keys == 0) {
        st = meta_fail(e, CMQ_EINVAL, META_ROW(BINDING_KEY_MISSING), "bindingKey",
                       "parameters lack of bindingKey: the topic routes by key (filterType 2)");
        goto fail;
    }
    if (strcmp(protocol, "queue") == 0) {
        cmq_QueueInfo qi;
        if ((st = meta_entity_find(s, &meta_queue_entity, req->appid, req->endpoint, &qi, NULL, e)) != CMQ_OK)
            goto fail;
        snprintf(queue_id, sizeof queue_id, "%s", qi.queue_id);
    }
    char dlq_id[40] = "";
    if (req->dead_letter_queue[0]) {
        cmq_QueueInfo qi;
        if ((st = meta_entity_find(s, &meta_queue_entity, req->appid, req->dead_letter_queue, &qi, NULL, e)) != CMQ_OK)
            goto fail;
        snprintf(dlq_id, sizeof dlq_id, "%s", qi.queue_id);
    }
    sqlite3_stmt *q =
        meta_prepare(s, "SELECT name FROM subscriptions WHERE topic_row = ? AND name_lower = ?");
    if (!q)
        goto db;
    sqlite3_bind_int64(q, 1, trow);
    sqlite3_bind_text(q, 2, lower, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(q);
    sqlite3_finalize(q);
    if (rc == SQLITE_ROW) {
        st = meta_fail(e, CMQ_EEXIST, META_ROW(SUBSCRIPTION_EXISTS), "subscriptionName",
                       "subscribtion is already existed, case insensitive");
        goto fail;
    }
    if (rc != SQLITE_DONE)
        goto db;
    if ((int64_t)t.subscription_count >= s->o.subs_per_topic) {
        st = meta_fail(e, CMQ_ELIMIT, META_ROW(SUBSCRIPTION_QUOTA), NULL,
                       "number of subscription has reached the limit (%lld)",
                       (long long)s->o.subs_per_topic);
        goto fail;
    }
    int64_t now = (int64_t)meta_now_ms(s);
    q = meta_prepare(s, "INSERT INTO subscriptions (topic_row, name, name_lower, sub_id, protocol,"
                        " endpoint, endpoint_queue_id, notify_strategy, notify_content_format,"
                        " created_ms, modified_ms, dlq_queue_id)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
    if (!q)
        goto db;
    sqlite3_bind_int64(q, 1, trow);
    sqlite3_bind_text(q, 2, req->subscription_name, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 3, lower, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 4, sid, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 5, protocol, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 6, req->endpoint, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 7, queue_id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 8, strategy, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 9, format, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(q, 10, now);
    sqlite3_bind_int64(q, 11, now);
    sqlite3_bind_text(q, 12, dlq_id, -1, SQLITE_TRANSIENT);
    if (meta_exec_step(q) != SQLITE_DONE)
        goto db;
    int64_t row = sqlite3_last_insert_rowid(s->db);
    if (sub_lists_write(s, row, 1, tags, n_tags) != CMQ_OK ||
        sub_lists_write(s, row, 2, keys, n_keys) != CMQ_OK)
        goto db;
    if ((st = sub_find(s, trow, req->subscription_name, out, NULL, NULL, e)) != CMQ_OK)
        goto fail;
    event_sub(s, "subscription.created", out, t.partition_id);
    return meta_tx_commit(s, e);
db:
    st = meta_db_fail(s, e, "subscribe");
fail:
    meta_tx_rollback(s);
    return st;
}

/* Finds topic and subscription; used by get, set, delete, clear. */
static int sub_locate(struct meta_store *s, uint64_t appid, const char *topic, const char *name,
                      cmq_SubInfo *out, int64_t *row, cmq_TopicInfo *t, struct meta_err *e)
{
    int64_t trow;
    int st = meta_entity_find(s, &meta_topic_entity, appid, topic, t, &trow, e);
    if (st != CMQ_OK)
        return st;
    return sub_find(s, trow, name, out, row, NULL, e);
}

int meta_sub_get(struct meta_store *s, const cmq_SubNameRequest *req, cmq_SubInfo *out,
                 struct meta_err *e)
{
    cmq_TopicInfo t;
    return sub_locate(s, req->appid, req->topic_name, req->subscription_name, out, NULL, &t, e);
}

int meta_sub_set(struct meta_store *s, const cmq_SubRequest *req, cmq_SubInfo *out,
                 struct meta_err *e)
{
    char tags[META_TAGS_MAX][65], keys[META_BINDING_KEYS_MAX][65], strategy[32], format[16];
    pb_size_t n_tags = 0, n_keys = 0;
    int st;
    if ((st = list_check(1, (const char(*)[129])req->filter_tags, sizeof req->filter_tags[0],
                         req->filter_tags_count, tags, &n_tags, e)) != CMQ_OK ||
        (st = list_check(2, (const char(*)[129])req->binding_keys, sizeof req->binding_keys[0],
                         req->binding_keys_count, keys, &n_keys, e)) != CMQ_OK)
        return st;
    if ((st = meta_tx_begin(s, e)) != CMQ_OK)
        return st;
    cmq_SubInfo cur;
    cmq_TopicInfo t;
    int64_t row;
    if ((st = sub_locate(s, req->appid, req->topic_name, req->subscription_name, &cur, &row, &t,
                         e)) != CMQ_OK)
        goto fail;
    if ((req->protocol[0] && strcasecmp(req->protocol, cur.protocol) != 0) ||
        (req->endpoint[0] && strcmp(req->endpoint, cur.endpoint) != 0)) {
        st = meta_fail(e, CMQ_EINVAL, META_ROW(PARAM_ERROR), req->protocol[0] ? "protocol" : "endpoint",
                       "protocol and endpoint of a subscription cannot be changed");
        goto fail;
    }
    snprintf(strategy, sizeof strategy, "%s", cur.notify_strategy);
    snprintf(format, sizeof format, "%s", cur.notify_content_format);
    if (req->notify_strategy[0] &&
        (st = strategy_norm(req->notify_strategy, strategy, sizeof strategy, e)) != CMQ_OK)
        goto fail;
    if (req->notify_content_format[0] &&
        (st = format_norm(req->notify_content_format, cur.protocol, format, sizeof format, e)) !=
            CMQ_OK)
        goto fail;
    if (req->has_binding_keys && t.filter_type == 2 && n_keys == 0) {
        st = meta_fail(e, CMQ_EINVAL, META_ROW(BINDING_KEY_MISSING), "bindingKey",
                       "parameters lack of bindingKey: the topic routes by key (filterType 2)");
        goto fail;
    }
    if (req->dead_letter_queue[0] || req->clear_dead_letter_queue) {
        char dlq_id[40] = "";
        if (req->dead_letter_queue[0]) {
            cmq_QueueInfo qi;
            if ((st = meta_entity_find(s, &meta_queue_entity, req->appid, req->dead_letter_queue, &qi, NULL, e)) != CMQ_OK)
                goto fail;
            snprintf(dlq_id, sizeof dlq_id, "%s", qi.queue_id);
        }
        sqlite3_stmt *d = meta_prepare(s, "UPDATE subscriptions SET dlq_queue_id = ? WHERE id = ?");
        if (!d)
            goto db;
        sqlite3_bind_text(d, 1, dlq_id, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(d, 2, row);
        if (meta_exec_step(d) != SQLITE_DONE)
            goto db;
    }
    sqlite3_stmt *q = meta_prepare(s, "UPDATE subscriptions SET notify_strategy = ?,"
                                      " notify_content_format = ?, modified_ms = ? WHERE id = ?");
    if (!q)
        goto db;
    sqlite3_bind_text(q, 1, strategy, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 2, format, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(q, 3, (int64_t)meta_now_ms(s));
    sqlite3_bind_int64(q, 4, row);
    if (meta_exec_step(q) != SQLITE_DONE)
        goto db;
    if ((req->has_filter_tags && sub_lists_write(s, row, 1, tags, n_tags) != CMQ_OK) ||
        (req->has_binding_keys && sub_lists_write(s, row, 2, keys, n_keys) != CMQ_OK))
        goto db;
    cmq_SubNameRequest nr = cmq_SubNameRequest_init_zero;
    nr.appid = req->appid;
    snprintf(nr.topic_name, sizeof nr.topic_name, "%s", req->topic_name);
    snprintf(nr.subscription_name, sizeof nr.subscription_name, "%s", req->subscription_name);
    if ((st = meta_sub_get(s, &nr, out, e)) != CMQ_OK)
        goto fail;
    event_sub(s, "subscription.updated", out, t.partition_id);
    return meta_tx_commit(s, e);
db:
    st = meta_db_fail(s, e, "subscription set");
fail:
    meta_tx_rollback(s);
    return st;
}

/* Unsubscribe (the row goes) or ClearSubscriptionFilterTags (its tags go),
 * in one transaction; `out` is the subscription as it was, or as it is. */
static int sub_change(struct meta_store *s, const cmq_SubNameRequest *req, int clear_tags,
                      cmq_SubInfo *out, struct meta_err *e)
{
    int st = meta_tx_begin(s, e);
    if (st != CMQ_OK)
        return st;
    cmq_TopicInfo t;
    int64_t row;
    if ((st = sub_locate(s, req->appid, req->topic_name, req->subscription_name, out, &row, &t,
                         e)) != CMQ_OK)
        goto fail;
    if (clear_tags && sub_lists_write(s, row, 1, NULL, 0) != CMQ_OK)
        goto db;
    sqlite3_stmt *q =
        clear_tags ? meta_prepare(s, "UPDATE subscriptions SET modified_ms = ?1 WHERE id = ?2")
                   : meta_prepare(s, "DELETE FROM subscriptions WHERE id = ?2");
    if (!q)
        goto db;
    if (clear_tags)
        sqlite3_bind_int64(q, 1, (int64_t)meta_now_ms(s));
    sqlite3_bind_int64(q, 2, row);
    if (meta_exec_step(q) != SQLITE_DONE)
        goto db;
    if (clear_tags && (st = meta_sub_get(s, req, out, e)) != CMQ_OK)
        goto fail;
    event_sub(s, clear_tags ? "subscription.updated" : "subscription.deleted", out,
              t.partition_id);
    return meta_tx_commit(s, e);
db:
    st = meta_db_fail(s, e, clear_tags ? "clear filter tags" : "unsubscribe");
fail:
    meta_tx_rollback(s);
    return st;
}

int meta_sub_delete(struct meta_store *s, const cmq_SubNameRequest *req, cmq_SubInfo *out,
                    struct meta_err *e)
{
    return sub_change(s, req, 0, out, e);
}

int meta_sub_clear_tags(struct meta_store *s, const cmq_SubNameRequest *req, cmq_SubInfo *out,
                        struct meta_err *e)
{
    return sub_change(s, req, 1, out, e);
}

int meta_sub_list(struct meta_store *s, const cmq_ListRequest *req, cmq_SubList *out,
                  struct meta_err *e)
{
    *out = (cmq_SubList)cmq_SubList_init_zero;
    int64_t offset, limit, trow;
    int st = meta_page(req, META_SUB_LIST_LIMIT_MAX, META_SUB_LIST_OFFSET_MAX, &offset, &limit, e);
    if (st != CMQ_OK)
        return st;
    cmq_TopicInfo t;
    if ((st = meta_entity_find(s, &meta_topic_entity, req->appid, req->topic_name, &t, &trow, e)) != CMQ_OK)
        return st;
    char word[sizeof req->search_word];
    meta_lower(req->search_word, word, sizeof word);
    sqlite3_stmt *q = meta_prepare(s, "SELECT COUNT(*) FROM subscriptions WHERE topic_row = ? AND"
                                      " instr(name_lower, ?) > 0");
    if (!q)
        return meta_db_fail(s, e, "subscription count");
    sqlite3_bind_int64(q, 1, trow);
    sqlite3_bind_text(q, 2, word, -1, SQLITE_TRANSIENT);
    out->total_count = sqlite3_step(q) == SQLITE_ROW ? (uint32_t)sqlite3_column_int64(q, 0) : 0;
    sqlite3_finalize(q);
    out->subscriptions = calloc((size_t)limit, sizeof *out->subscriptions);
    if (!out->subscriptions)
        return meta_fail(e, CMQ_ENOMEM, META_ROW(INTERNAL), NULL, "out of memory");
    q = meta_prepare(s, "SELECT " SUB_COLS " WHERE s.topic_row = ? AND instr(s.name_lower, ?) > 0"
                        " ORDER BY s.id LIMIT ? OFFSET ?");
    if (!q)
        return meta_db_fail(s, e, "subscription list");
    sqlite3_bind_int64(q, 1, trow);
    sqlite3_bind_text(q, 2, word, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(q, 3, limit);
    sqlite3_bind_int64(q, 4, offset);
    int rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW && out->subscriptions_count < limit)
        if (sub_fill(s, q, &out->subscriptions[out->subscriptions_count], NULL, NULL) == CMQ_OK)
            out->subscriptions_count++;
    sqlite3_finalize(q);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? CMQ_OK : meta_db_fail(s, e, "subscription list");
}
