/* tsm.c: the topic state machine; see tsm.h.
 *
 * Topics are kept in an array sorted by id, subscriptions of a topic in an
 * array sorted by sub_id, retries of a subscription in an array sorted by
 * msg id: every iteration is in id order (determinism), lookups are binary
 * searches.  Entries are peeked with the one StorageCommand codec
 * (cmdcodec.h); Publish members are parsed in place with pbwire.h (bodies
 * may exceed this nanopb build's 64 KiB field limit); the other topic
 * commands are small and decoded with nanopb.
 */
#include "tsm.h"

#include "cmdcodec.h"
#include "crc32c.h"
#include "dedupwin.h"
#include "pbwire.h"
#include "status.h"
#include "storage.pb.h"

#include <assert.h>
#include <pb_decode.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct tsm {
    uint32_t partition_id;
    uint64_t applied_index;
    size_t n_topics, cap_topics;
    struct tsm_topic **topics;
    cmq_StorageCommand cmd; /* decode buffer (large: kept off the stack) */
    struct dedupwin dd;     /* the publish dedup window (replicated, in snapshots) */
    struct qsm_tracer tracer; /* optional: the trace index (tsm_set_tracer) */
};

void tsm_set_tracer(struct tsm *t, const struct qsm_tracer *tr)
{
    t->tracer = tr ? *tr : (struct qsm_tracer){0};
}

/* ---------- wire: the command is peeked by cmdcodec.h, a Publish member is
 * parsed in place with pbwire.h (generated cmq_*_tag field numbers) ---------- */

static bool copy_str(char *dst, size_t cap, const uint8_t *src, uint64_t n)
{
    if (n >= cap)
        return false;
    memcpy(dst, src, (size_t)n);
    dst[n] = '\0';
    return true;
}

/* The Publish member of a peeked command (cv->kind is publish). */
static bool parse_publish(const struct cmdcodec_view *cv, struct tsm_publish *out)
{
    memset(out, 0, sizeof *out);
    out->leader_ms = cv->leader_ms;
    struct pbwire_reader r;
    struct pbwire_field f;
    pbwire_reader_init(&r, cv->member, cv->member_len);
    while (pbwire_next(&r, &f)) {
        if (f.num == cmq_PublishRequest_topic_id_tag && f.wt == PBWIRE_VARINT) {
            out->topic_id = f.v;
            continue;
        }
        if (f.wt != PBWIRE_LEN)
            continue;
        const uint8_t *v = f.data;
        size_t n = f.len;
        if (f.num == cmq_PublishRequest_messages_tag) {
            if (out->n == TSM_BATCH_MAX)
                return false;
            out->body[out->n] = v; /* non-NULL even when empty */
            out->body_len[out->n] = 0;
            out->dedup_key[out->n] = 0;
            struct pbwire_reader ir;
            struct pbwire_field g;
            pbwire_reader_init(&ir, v, n);
            while (pbwire_next(&ir, &g)) {
                if (g.num == cmq_PublishItem_dedup_key_tag && g.wt == PBWIRE_VARINT) {
                    out->dedup_key[out->n] = g.v;
                } else if (g.num == cmq_PublishItem_body_tag && g.wt == PBWIRE_LEN) {
                    out->body[out->n] = g.data;
                    out->body_len[out->n] = g.len;
                }
            }
            if (ir.err)
                return false;
            out->n++;
        } else if (f.num == cmq_PublishRequest_tags_tag) {
            if (out->n_tags == TOPIC_TAGS_MAX ||
                !copy_str(out->tags[out->n_tags], sizeof out->tags[0], v, n))
                return false;
            out->n_tags++;
        } else if (f.num == cmq_PublishRequest_client_addr_tag) { /* the trace's, truncated */
            size_t al = n < sizeof out->client_addr - 1 ? n : sizeof out->client_addr - 1;
            memcpy(out->client_addr, v, al);
            out->client_addr[al] = '\0';
        } else if (f.num == cmq_PublishRequest_routing_key_tag &&
                   !copy_str(out->routing_key, sizeof out->routing_key, v, n)) {
            return false;
        }
    }
    return !r.err && out->topic_id != 0 && out->n >= 1;
}

bool tsm_parse_publish(const uint8_t *cmd, size_t len, struct tsm_publish *out)
{
    struct cmdcodec_view cv;
    if (!cmdcodec_peek(cmd, len, &cv) || cv.kind != cmq_StorageCommand_publish_tag) {
        memset(out, 0, sizeof *out);
        return false;
    }
    return parse_publish(&cv, out);
}

/* ---------- lookups ---------- */

static size_t topic_pos(const struct tsm *t, uint64_t id)
{
    size_t lo = 0, hi = t->n_topics;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (t->topics[mid]->topic_id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

struct tsm_topic *tsm_topic(const struct tsm *t, uint64_t topic_id)
{
    size_t i = topic_pos(t, topic_id);
    return i < t->n_topics && t->topics[i]->topic_id == topic_id ? t->topics[i] : NULL;
}

static size_t sub_pos(const struct tsm_topic *tp, const char *id)
{
    size_t lo = 0, hi = tp->n_subs;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (strcmp(tp->subs[mid]->sub_id, id) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

struct tsm_sub *tsm_sub(const struct tsm_topic *tp, const char *sub_id)
{
    size_t i = sub_pos(tp, sub_id);
    return i < tp->n_subs && strcmp(tp->subs[i]->sub_id, sub_id) == 0 ? tp->subs[i] : NULL;
}

size_t tsm_topic_count(const struct tsm *t)
{
    return t->n_topics;
}

struct tsm_topic *tsm_topic_at(const struct tsm *t, size_t i)
{
    return i < t->n_topics ? t->topics[i] : NULL;
}

/* ---------- lifecycle ---------- */

int tsm_create(uint32_t partition_id, struct tsm **out)
{
    if (partition_id == 0 || partition_id > 4095)
        return CMQ_EINVAL;
    struct tsm *t = calloc(1, sizeof *t);
    if (!t)
        return CMQ_ENOMEM;
    t->partition_id = partition_id;
    dedupwin_init(&t->dd, TSM_DEDUP_MAX, TSM_DEDUP_HARD_MAX, TSM_DEDUP_KEEP_MS);
    *out = t;
    return CMQ_OK;
}

static void topic_free(struct tsm_topic *tp)
{
    if (!tp)
        return;
    for (uint32_t i = 0; i < tp->n_subs; i++)
        free(tp->subs[i]);
    free(tp->subs);
    free(tp);
}

void tsm_destroy(struct tsm *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->n_topics; i++)
        topic_free(t->topics[i]);
    free(t->topics);
    dedupwin_free(&t->dd);
    free(t);
}

/* ---------- matching ---------- */

bool tsm_sub_matches(const struct tsm_topic *tp, const struct tsm_sub *s,
                     const struct tsm_publish *m)
{
    if (tp->filter_type == TOPIC_FILTER_ROUTING) {
        const char *keys[TOPIC_KEYS_MAX];
        for (uint32_t i = 0; i < s->n_keys; i++)
            keys[i] = s->keys[i];
        return topic_filter_bindings_match(keys, s->n_keys, m->routing_key);
    }
    const char *st[TOPIC_TAGS_MAX], *mt[TOPIC_TAGS_MAX];
    for (uint32_t i = 0; i < s->n_tags; i++)
        st[i] = s->tags[i];
    for (uint32_t i = 0; i < m->n_tags; i++)
        mt[i] = m->tags[i];
    return topic_filter_tags_match(st, s->n_tags, mt, m->n_tags);
}

uint32_t tsm_dedup_lookup(const struct tsm *t, const struct tsm_publish *m, uint64_t *ids)
{
    uint32_t found = 0;
    for (uint32_t i = 0; i < m->n; i++) {
        ids[i] = dedupwin_find(&t->dd, m->topic_id, m->dedup_key[i]);
        found += ids[i] != 0;
    }
    return found;
}

int tsm_check_publish(const struct tsm *t, const struct tsm_publish *m)
{
    const struct tsm_topic *tp = tsm_topic(t, m->topic_id);
    if (!tp)
        return CMQ_ENOTFOUND;
    if (tp->n_subs == 0)
        return CMQ_EEMPTY;
    for (uint32_t i = 0; i < tp->n_subs; i++)
        if (tsm_sub_matches(tp, tp->subs[i], m))
            return CMQ_OK;
    return CMQ_ESTALE;
}

/* ---------- commands ---------- */

static uint64_t msg_id(const struct tsm *t, uint64_t index, uint32_t slot)
{
    return ((uint64_t)t->partition_id << 52) | ((index & ((UINT64_C(1) << 48) - 1)) << 4) |
           (slot & 15u);
}

static int sub_config(struct tsm_sub *s, const cmq_TopicSubscription *in)
{
    if (in->sub_id[0] == '\0' || (in->protocol != TSM_PROTO_QUEUE && in->protocol != TSM_PROTO_HTTP) ||
        (in->protocol == TSM_PROTO_QUEUE && in->queue_id == 0) ||
        in->filter_tags_count > TOPIC_TAGS_MAX || in->binding_keys_count > TOPIC_KEYS_MAX)
        return CMQ_EINVAL;
    snprintf(s->sub_id, sizeof s->sub_id, "%s", in->sub_id);
    snprintf(s->name, sizeof s->name, "%s", in->name);
    snprintf(s->endpoint, sizeof s->endpoint, "%s", in->endpoint);
    s->protocol = in->protocol;
    s->format = in->format == TSM_FORMAT_SIMPLIFIED ? TSM_FORMAT_SIMPLIFIED : TSM_FORMAT_JSON;
    s->strategy = in->strategy == TSM_BACKOFF_RETRY ? TSM_BACKOFF_RETRY
                                                    : TSM_EXPONENTIAL_DECAY_RETRY;
    s->queue_id = in->queue_id;
    s->dlq_queue_id = in->dead_letter_queue_id;
    s->n_tags = in->filter_tags_count;
    for (uint32_t i = 0; i < s->n_tags; i++)
        snprintf(s->tags[i], sizeof s->tags[i], "%s", in->filter_tags[i]);
    s->n_keys = in->binding_keys_count;
    for (uint32_t i = 0; i < s->n_keys; i++)
        snprintf(s->keys[i], sizeof s->keys[i], "%s", in->binding_keys[i]);
    return CMQ_OK;
}

static int cmd_sync(struct tsm *t, uint64_t index, const cmq_TopicSyncRequest *r)
{
    if (r->topic_id == 0 || (r->filter_type != TOPIC_FILTER_TAG && r->filter_type != TOPIC_FILTER_ROUTING) ||
        r->subscriptions_count > TSM_SUBS_MAX)
        return CMQ_EINVAL;
    /* Validate everything first: a refused command changes nothing. */
    for (pb_size_t i = 0; i < r->subscriptions_count; i++) {
        struct tsm_sub probe;
        if (sub_config(&probe, &r->subscriptions[i]) != CMQ_OK)
            return CMQ_EINVAL;
        for (pb_size_t j = 0; j < i; j++)
            if (strcmp(r->subscriptions[i].sub_id, r->subscriptions[j].sub_id) == 0)
                return CMQ_EINVAL;
    }
    struct tsm_topic *tp = tsm_topic(t, r->topic_id);
    if (!tp) {
        if (t->n_topics == TSM_TOPICS_MAX)
            return CMQ_ELIMIT;
        if (t->n_topics == t->cap_topics) {
            size_t cap = t->cap_topics ? 2 * t->cap_topics : 16;
            struct tsm_topic **nt = realloc(t->topics, cap * sizeof *nt);
            if (!nt)
                return CMQ_ENOMEM;
            t->topics = nt;
            t->cap_topics = cap;
        }
        tp = calloc(1, sizeof *tp);
        if (!tp)
            return CMQ_ENOMEM;
        tp->topic_id = r->topic_id;
        tp->create_index = index;
        size_t pos = topic_pos(t, r->topic_id);
        memmove(&t->topics[pos + 1], &t->topics[pos], (t->n_topics - pos) * sizeof *t->topics);
        t->topics[pos] = tp;
        t->n_topics++;
    }
    snprintf(tp->name, sizeof tp->name, "%s", r->name);
    tp->appid = r->appid;
    tp->filter_type = r->filter_type;
    tp->max_msg_size = r->max_msg_size;
    /* The new set, sorted by sub_id; existing subscriptions keep their state. */
    struct tsm_sub **ns = calloc(r->subscriptions_count ? r->subscriptions_count : 1, sizeof *ns);
    if (!ns)
        return CMQ_ENOMEM;
    uint32_t n = 0;
    for (pb_size_t i = 0; i < r->subscriptions_count; i++) {
        const cmq_TopicSubscription *in = &r->subscriptions[i];
        struct tsm_sub *s = tsm_sub(tp, in->sub_id);
        if (!s) {
            s = calloc(1, sizeof *s);
            if (!s) {
                for (uint32_t k = 0; k < n; k++)
                    if (!tsm_sub(tp, ns[k]->sub_id))
                        free(ns[k]);
                free(ns);
                return CMQ_ENOMEM;
            }
            s->cursor = msg_id(t, index + 1, 0); /* what is published after this entry */
            s->published_base = tp->published;
        }
        sub_config(s, in);
        /* insertion sort by sub_id */
        uint32_t pos = n;
        while (pos > 0 && strcmp(ns[pos - 1]->sub_id, s->sub_id) > 0) {
            ns[pos] = ns[pos - 1];
            pos--;
        }
        ns[pos] = s;
        n++;
    }
    /* Free the subscriptions that are gone (their pending deliveries with them). */
    for (uint32_t i = 0; i < tp->n_subs; i++) {
        bool kept = false;
        for (uint32_t k = 0; k < n && !kept; k++)
            kept = ns[k] == tp->subs[i];
        if (!kept)
            free(tp->subs[i]);
    }
    free(tp->subs);
    tp->subs = ns;
    tp->n_subs = n;
    return CMQ_OK;
}

static int cmd_drop(struct tsm *t, uint64_t topic_id)
{
    size_t pos = topic_pos(t, topic_id);
    if (pos == t->n_topics || t->topics[pos]->topic_id != topic_id)
        return CMQ_ENOTFOUND;
    topic_free(t->topics[pos]);
    memmove(&t->topics[pos], &t->topics[pos + 1], (t->n_topics - pos - 1) * sizeof *t->topics);
    t->n_topics--;
    return CMQ_OK;
}

static int cmd_publish(struct tsm *t, uint64_t index, const struct tsm_publish *m)
{
    struct tsm_topic *tp = tsm_topic(t, m->topic_id);
    if (!tp)
        return CMQ_ENOTFOUND;
    for (uint32_t i = 0; i < m->n; i++)
        if (m->body_len[i] == 0 || (tp->max_msg_size && m->body_len[i] > tp->max_msg_size))
            return CMQ_EINVAL;
    for (uint32_t i = 0; i < m->n; i++) {
        int rc = dedupwin_note(&t->dd, tp->topic_id, m->dedup_key[i], msg_id(t, index, i),
                               m->leader_ms);
        if (rc)
            return rc;
    }
    tp->last_publish_id = msg_id(t, index, m->n - 1);
    tp->published += m->n;
    for (uint32_t i = 0; t->tracer.event && i < m->n; i++) {
        struct qsm_trace_ev ev = {.event = TSM_EV_PUBLISHED, .queue_id = tp->topic_id,
                                  .msg_id = msg_id(t, index, i), .time_ms = m->leader_ms,
                                  .addr = m->client_addr, .addr_len = strlen(m->client_addr)};
        t->tracer.event(t->tracer.arg, index, &ev);
    }
    return CMQ_OK;
}

static void retry_set(struct tsm_sub *s, const cmq_TopicRetry *r)
{
    uint32_t i = 0;
    while (i < s->n_retries && s->retries[i].msg_id < r->msg_id)
        i++;
    bool found = i < s->n_retries && s->retries[i].msg_id == r->msg_id;
    if (r->attempts == 0) {
        if (found) {
            memmove(&s->retries[i], &s->retries[i + 1],
                    (s->n_retries - i - 1) * sizeof s->retries[0]);
            s->n_retries--;
        }
        return;
    }
    if (!found) {
        if (s->n_retries == TSM_RETRIES_MAX)
            return; /* the leader never proposes more; a bound, deterministically */
        memmove(&s->retries[i + 1], &s->retries[i], (s->n_retries - i) * sizeof s->retries[0]);
        s->n_retries++;
    }
    s->retries[i] = (struct tsm_retry){r->msg_id, r->attempts, r->next_ms};
}

/* The trace events of one progress step (tsm.h: the record's fields). */
static void trace_attempts(struct tsm *t, uint64_t index, uint64_t ms, const struct tsm_topic *tp,
                           const struct tsm_sub *s, const cmq_TopicSubProgress *p)
{
    static const uint32_t kind[] = {0, TSM_EV_DELIVERED, TSM_EV_FAILED, TSM_EV_DROPPED,
                                    TSM_EV_DEAD_LETTERED};
    for (pb_size_t k = 0; t->tracer.event && k < p->attempts_count; k++) {
        const cmq_TopicAttempt *a = &p->attempts[k];
        if (a->result == 0 || a->result > 4)
            continue;
        struct qsm_trace_ev ev = {.event = kind[a->result], .queue_id = tp->topic_id,
                                  .msg_id = a->msg_id, .time_ms = ms,
                                  .handle = a->attempt | (uint64_t)a->http_status << 32,
                                  .aux = a->target_msg_id,
                                  .due_ms = a->result == 4 ? s->dlq_queue_id : a->next_ms,
                                  .addr = s->sub_id, .addr_len = strlen(s->sub_id)};
        t->tracer.event(t->tracer.arg, index, &ev);
    }
}

static int cmd_progress(struct tsm *t, uint64_t index, uint64_t ms, const cmq_TopicProgress *r)
{
    struct tsm_topic *tp = tsm_topic(t, r->topic_id);
    if (!tp)
        return CMQ_ENOTFOUND;
    for (pb_size_t i = 0; i < r->subs_count; i++) {
        const cmq_TopicSubProgress *p = &r->subs[i];
        struct tsm_sub *s = tsm_sub(tp, p->sub_id);
        if (!s)
            continue; /* unsubscribed meanwhile */
        if (p->cursor > s->cursor)
            s->cursor = p->cursor;
        for (pb_size_t k = 0; k < p->retries_count; k++)
            retry_set(s, &p->retries[k]);
        s->delivered += p->delivered;
        s->dropped += p->dropped;
        s->dead_lettered += p->dead_lettered;
        s->passed += p->passed;
        trace_attempts(t, index, ms, tp, s, p);
    }
    return CMQ_OK;
}

int tsm_apply(struct tsm *t, uint64_t index, const uint8_t *cmd, size_t len)
{
    return tsm_apply_peeked(t, index, cmd, len, NULL);
}

int tsm_apply_peeked(struct tsm *t, uint64_t index, const uint8_t *cmd, size_t len,
                     const struct cmdcodec_view *pv)
{
    assert(index > t->applied_index);
    t->applied_index = index;
    struct cmdcodec_view own;
    const struct cmdcodec_view *v = pv;
    if (!v)
        v = cmdcodec_peek(cmd, len, &own) ? &own : NULL;
    uint32_t kind = v ? v->kind : 0;
    if (kind == cmq_StorageCommand_publish_tag) {
        struct tsm_publish m;
        if (!parse_publish(v, &m)) /* the entry is peeked once */
            return CMQ_EINVAL;
        return cmd_publish(t, index, &m);
    }
    if (!cmdcodec_is_topic(kind))
        return CMQ_EINVAL;
    cmq_StorageCommand *c = &t->cmd;
    memset(c, 0, sizeof *c);
    pb_istream_t in = pb_istream_from_buffer(cmd, len);
    if (!pb_decode(&in, cmq_StorageCommand_fields, c))
        return CMQ_EINVAL;
    int rc;
    switch (c->which_cmd) {
    case cmq_StorageCommand_topic_sync_tag: rc = cmd_sync(t, index, &c->cmd.topic_sync); break;
    case cmq_StorageCommand_topic_drop_tag: rc = cmd_drop(t, c->cmd.topic_drop.topic_id); break;
    case cmq_StorageCommand_topic_progress_tag: rc = cmd_progress(t, index, c->leader_ms, &c->cmd.topic_progress); break;
    default: rc = CMQ_EINVAL; break;
    }
    pb_release(cmq_StorageCommand_fields, c);
    return rc;
}

/* ---------- queries ---------- */

uint64_t tsm_sub_pending(const struct tsm_topic *tp, const struct tsm_sub *s)
{
    uint64_t seen = tp->published - s->published_base;
    return (seen > s->passed ? seen - s->passed : 0) + s->n_retries;
}

uint64_t tsm_next_due_ms(const struct tsm *t)
{
    uint64_t min = UINT64_MAX;
    for (size_t i = 0; i < t->n_topics; i++) {
        const struct tsm_topic *tp = t->topics[i];
        for (uint32_t j = 0; j < tp->n_subs; j++) {
            const struct tsm_sub *s = tp->subs[j];
            for (uint32_t k = 0; k < s->n_retries; k++)
                if (s->retries[k].next_ms < min)
                    min = s->retries[k].next_ms;
        }
    }
    return min;
}

uint64_t tsm_first_needed_index(const struct tsm *t)
{
    uint64_t min = UINT64_MAX;
    for (size_t i = 0; i < t->n_topics; i++) {
        const struct tsm_topic *tp = t->topics[i];
        for (uint32_t k = 0; k < tp->n_subs; k++) {
            const struct tsm_sub *s = tp->subs[k];
            uint64_t idx = (s->cursor >> 4) & ((UINT64_C(1) << 48) - 1);
            if (s->cursor <= tp->last_publish_id && idx < min)
                min = idx;
            for (uint32_t r = 0; r < s->n_retries; r++) {
                uint64_t ri = (s->retries[r].msg_id >> 4) & ((UINT64_C(1) << 48) - 1);
                if (ri < min)
                    min = ri;
            }
        }
    }
    return min;
}

uint64_t tsm_retry_delay_ms(uint32_t strategy, uint32_t failed, uint32_t rnd,
                            uint32_t scale_permille)
{
    uint64_t ms;
    if (failed == 0)
        return 0;
    if (strategy == TSM_BACKOFF_RETRY) {
        if (failed > TSM_BACKOFF_RETRIES)
            return 0;
        ms = 10000 + rnd % 10001; /* uniform 10-20 s */
    } else {
        if (failed > TSM_DECAY_RETRIES)
            return 0;
        uint32_t k = failed - 1; /* retry number failed: 2^(failed-1) s, capped at 512 s */
        ms = (k >= 9 ? 512u : (1u << k)) * 1000ull;
    }
    ms = ms * scale_permille / 1000;
    return ms ? ms : 1;
}

/* ---------- snapshots ---------- */

#define SNAP_MAGIC "TSMS"
#define SNAP_VERSION 2u /* 2: + the publish dedup window */

struct wbuf {
    tsm_sink_fn *sink;
    void *arg;
    uint32_t crc;
    int rc;
};

static void w_bytes(struct wbuf *w, const void *p, size_t n)
{
    if (w->rc || n == 0)
        return;
    w->crc = crc32c(w->crc, p, n);
    w->rc = w->sink(w->arg, p, n);
}

static void w_u32(struct wbuf *w, uint32_t v)
{
    uint8_t b[4];
    for (int i = 0; i < 4; i++)
        b[i] = (uint8_t)(v >> (8 * i));
    w_bytes(w, b, 4);
}

static void w_u64(struct wbuf *w, uint64_t v)
{
    uint8_t b[8];
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)(v >> (8 * i));
    w_bytes(w, b, 8);
}

static void w_str(struct wbuf *w, const char *s)
{
    uint32_t n = (uint32_t)strlen(s);
    w_u32(w, n);
    w_bytes(w, s, n);
}

int tsm_snapshot_write(const struct tsm *t, tsm_sink_fn *sink, void *arg)
{
    struct wbuf w = {sink, arg, 0, 0};
    w_bytes(&w, SNAP_MAGIC, 4);
    w_u32(&w, SNAP_VERSION);
    w_u32(&w, t->partition_id);
    w_u64(&w, t->applied_index);
    w_u32(&w, (uint32_t)t->n_topics);
    for (size_t i = 0; i < t->n_topics; i++) {
        const struct tsm_topic *tp = t->topics[i];
        w_u64(&w, tp->topic_id);
        w_str(&w, tp->name);
        w_u64(&w, tp->appid);
        w_u32(&w, tp->filter_type);
        w_u32(&w, tp->max_msg_size);
        w_u64(&w, tp->create_index);
        w_u64(&w, tp->last_publish_id);
        w_u64(&w, tp->published);
        w_u32(&w, tp->n_subs);
        for (uint32_t k = 0; k < tp->n_subs; k++) {
            const struct tsm_sub *s = tp->subs[k];
            w_str(&w, s->sub_id);
            w_str(&w, s->name);
            w_u32(&w, s->protocol);
            w_u32(&w, s->format);
            w_u32(&w, s->strategy);
            w_str(&w, s->endpoint);
            w_u64(&w, s->queue_id);
            w_u64(&w, s->dlq_queue_id);
            w_u32(&w, s->n_tags);
            for (uint32_t j = 0; j < s->n_tags; j++)
                w_str(&w, s->tags[j]);
            w_u32(&w, s->n_keys);
            for (uint32_t j = 0; j < s->n_keys; j++)
                w_str(&w, s->keys[j]);
            w_u64(&w, s->cursor);
            w_u32(&w, s->n_retries);
            for (uint32_t j = 0; j < s->n_retries; j++) {
                w_u64(&w, s->retries[j].msg_id);
                w_u32(&w, s->retries[j].attempts);
                w_u64(&w, s->retries[j].next_ms);
            }
            w_u64(&w, s->delivered);
            w_u64(&w, s->dropped);
            w_u64(&w, s->dead_lettered);
            w_u64(&w, s->published_base);
            w_u64(&w, s->passed);
        }
    }
    w_u32(&w, dedupwin_count(&t->dd));
    for (uint32_t i = 0; i < dedupwin_count(&t->dd); i++) {
        const struct dedupwin_ent *d = dedupwin_at(&t->dd, i);
        w_u64(&w, d->scope);
        w_u64(&w, d->key);
        w_u64(&w, d->msg_id);
        w_u64(&w, d->ms);
    }
    uint32_t crc = w.crc;
    uint8_t b[4];
    for (int i = 0; i < 4; i++)
        b[i] = (uint8_t)(crc >> (8 * i));
    if (!w.rc)
        w.rc = sink(arg, b, 4);
    return w.rc;
}

struct rbuf {
    const uint8_t *p, *end;
    bool bad;
};

static uint64_t r_le(struct rbuf *r, int n)
{
    if (r->bad || r->end - r->p < n) {
        r->bad = true;
        return 0;
    }
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v |= (uint64_t)r->p[i] << (8 * i);
    r->p += n;
    return v;
}

static uint32_t r_u32(struct rbuf *r) { return (uint32_t)r_le(r, 4); }
static uint64_t r_u64(struct rbuf *r) { return r_le(r, 8); }

static void r_str(struct rbuf *r, char *out, size_t cap)
{
    uint32_t n = r_u32(r);
    if (r->bad || n >= cap || (size_t)(r->end - r->p) < n) {
        r->bad = true;
        out[0] = '\0';
        return;
    }
    memcpy(out, r->p, n);
    out[n] = '\0';
    r->p += n;
}

int tsm_snapshot_read(struct tsm *t, const uint8_t *buf, size_t len)
{
    if (len < 8 || memcmp(buf, SNAP_MAGIC, 4) != 0)
        return CMQ_ECORRUPT;
    uint32_t crc = (uint32_t)buf[len - 4] | (uint32_t)buf[len - 3] << 8 |
                   (uint32_t)buf[len - 2] << 16 | (uint32_t)buf[len - 1] << 24;
    if (crc32c(0, buf, len - 4) != crc)
        return CMQ_ECORRUPT;
    struct rbuf r = {buf + 4, buf + len - 4, false};
    uint32_t version = r_u32(&r);
    if (version < 1 || version > SNAP_VERSION)
        return CMQ_ECORRUPT;
    if (r_u32(&r) != t->partition_id)
        return r.bad ? CMQ_ECORRUPT : CMQ_EINVAL;
    struct tsm *n = NULL;
    if (tsm_create(t->partition_id, &n) != CMQ_OK)
        return CMQ_ENOMEM;
    n->applied_index = r_u64(&r);
    uint32_t nt = r_u32(&r);
    if (nt > TSM_TOPICS_MAX)
        r.bad = true;
    int rc = CMQ_OK;
    if (!r.bad && nt) {
        n->topics = calloc(nt, sizeof *n->topics);
        n->cap_topics = nt;
        if (!n->topics)
            rc = CMQ_ENOMEM;
    }
    for (uint32_t i = 0; rc == CMQ_OK && !r.bad && i < nt; i++) {
        struct tsm_topic *tp = calloc(1, sizeof *tp);
        if (!tp) {
            rc = CMQ_ENOMEM;
            break;
        }
        n->topics[n->n_topics++] = tp;
        tp->topic_id = r_u64(&r);
        r_str(&r, tp->name, sizeof tp->name);
        tp->appid = r_u64(&r);
        tp->filter_type = r_u32(&r);
        tp->max_msg_size = r_u32(&r);
        tp->create_index = r_u64(&r);
        tp->last_publish_id = r_u64(&r);
        tp->published = r_u64(&r);
        uint32_t ns = r_u32(&r);
        if (ns > TSM_SUBS_MAX || (i && tp->topic_id <= n->topics[i - 1]->topic_id)) {
            r.bad = true;
            break;
        }
        tp->subs = calloc(ns ? ns : 1, sizeof *tp->subs);
        if (!tp->subs) {
            rc = CMQ_ENOMEM;
            break;
        }
        for (uint32_t k = 0; !r.bad && k < ns; k++) {
            struct tsm_sub *s = calloc(1, sizeof *s);
            if (!s) {
                rc = CMQ_ENOMEM;
                break;
            }
            tp->subs[tp->n_subs++] = s;
            r_str(&r, s->sub_id, sizeof s->sub_id);
            r_str(&r, s->name, sizeof s->name);
            s->protocol = r_u32(&r);
            s->format = r_u32(&r);
            s->strategy = r_u32(&r);
            r_str(&r, s->endpoint, sizeof s->endpoint);
            s->queue_id = r_u64(&r);
            s->dlq_queue_id = r_u64(&r);
            s->n_tags = r_u32(&r);
            if (s->n_tags > TOPIC_TAGS_MAX)
                r.bad = true;
            for (uint32_t j = 0; !r.bad && j < s->n_tags; j++)
                r_str(&r, s->tags[j], sizeof s->tags[j]);
            s->n_keys = r_u32(&r);
            if (s->n_keys > TOPIC_KEYS_MAX)
                r.bad = true;
            for (uint32_t j = 0; !r.bad && j < s->n_keys; j++)
                r_str(&r, s->keys[j], sizeof s->keys[j]);
            s->cursor = r_u64(&r);
            s->n_retries = r_u32(&r);
            if (s->n_retries > TSM_RETRIES_MAX)
                r.bad = true;
            for (uint32_t j = 0; !r.bad && j < s->n_retries; j++) {
                s->retries[j].msg_id = r_u64(&r);
                s->retries[j].attempts = r_u32(&r);
                s->retries[j].next_ms = r_u64(&r);
            }
            s->delivered = r_u64(&r);
            s->dropped = r_u64(&r);
            s->dead_lettered = r_u64(&r);
            s->published_base = r_u64(&r);
            s->passed = r_u64(&r);
            if (k && strcmp(s->sub_id, tp->subs[k - 1]->sub_id) <= 0)
                r.bad = true;
        }
    }
    if (rc == CMQ_OK && !r.bad && version >= 2) {
        uint32_t nd = r_u32(&r);
        if (nd > TSM_DEDUP_HARD_MAX)
            r.bad = true;
        for (uint32_t i = 0; rc == CMQ_OK && !r.bad && i < nd; i++) {
            uint64_t tid = r_u64(&r), key = r_u64(&r), id = r_u64(&r), ms = r_u64(&r);
            if (r.bad || !key)
                r.bad = true;
            else
                rc = dedupwin_note(&n->dd, tid, key, id, ms);
        }
    }
    if (rc == CMQ_OK && (r.bad || r.p != r.end))
        rc = CMQ_ECORRUPT;
    if (rc != CMQ_OK) {
        tsm_destroy(n);
        return rc;
    }
    /* swap the new state in */
    for (size_t i = 0; i < t->n_topics; i++)
        topic_free(t->topics[i]);
    free(t->topics);
    t->topics = n->topics;
    t->n_topics = n->n_topics;
    t->cap_topics = n->cap_topics;
    t->applied_index = n->applied_index;
    dedupwin_free(&t->dd);
    t->dd = n->dd;
    dedupwin_init(&n->dd, 1, 1, 0);
    n->topics = NULL;
    n->n_topics = 0;
    tsm_destroy(n);
    return CMQ_OK;
}
