/* Tests for services/storage/tsm.c: the topic state machine (pure core) and
 * the retry schedules of spec §9.5. */
#include "tsm.h"
#include "cmdcodec.h"

#include "status.h"
#include "storage.pb.h"

#include <criterion/criterion.h>
#include <pb_encode.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PART 7
#define B ((uint64_t)PART << 52)

static uint8_t buf[1 << 16];

static size_t encode(cmq_StorageCommand *c)
{
    pb_ostream_t os = pb_ostream_from_buffer(buf, sizeof buf);
    cr_assert(pb_encode(&os, cmq_StorageCommand_fields, c), "%s", PB_GET_ERROR(&os));
    return os.bytes_written;
}

static cmq_TopicSubscription sub_def(const char *id, uint32_t proto)
{
    cmq_TopicSubscription s = cmq_TopicSubscription_init_zero;
    snprintf(s.sub_id, sizeof s.sub_id, "%s", id);
    snprintf(s.name, sizeof s.name, "name-%s", id);
    s.protocol = proto;
    s.queue_id = proto == TSM_PROTO_QUEUE ? 99 : 0;
    snprintf(s.endpoint, sizeof s.endpoint, "%s", proto == TSM_PROTO_QUEUE ? "q" : "http://x/");
    s.strategy = TSM_EXPONENTIAL_DECAY_RETRY;
    return s;
}

static int sync(struct tsm *t, uint64_t index, uint64_t topic, uint32_t filter,
                cmq_TopicSubscription *subs, size_t n)
{
    cmq_StorageCommand c = cmq_StorageCommand_init_zero;
    c.leader_ms = 1000;
    c.which_cmd = cmq_StorageCommand_topic_sync_tag;
    c.cmd.topic_sync.topic_id = topic;
    snprintf(c.cmd.topic_sync.name, sizeof c.cmd.topic_sync.name, "t%llu", (unsigned long long)topic);
    c.cmd.topic_sync.filter_type = filter;
    c.cmd.topic_sync.max_msg_size = 100;
    c.cmd.topic_sync.subscriptions = subs;
    c.cmd.topic_sync.subscriptions_count = (pb_size_t)n;
    size_t len = encode(&c);
    return tsm_apply(t, index, buf, len);
}

static bool enc_body(pb_ostream_t *os, const pb_field_t *f, void *const *arg)
{
    const char *s = *arg;
    return pb_encode_tag_for_field(os, f) && pb_encode_string(os, (const uint8_t *)s, strlen(s));
}

static const char *pub_addr; /* the client address publish_cmd sets, if any */

static size_t publish_cmd(uint64_t topic, const char *const *bodies, size_t n,
                          const char *const *tags, size_t n_tags, const char *rk)
{
    cmq_StorageCommand c = cmq_StorageCommand_init_zero;
    c.leader_ms = 2000;
    c.which_cmd = cmq_StorageCommand_publish_tag;
    cmq_PublishRequest *p = &c.cmd.publish;
    p->topic_id = topic;
    for (size_t i = 0; i < n; i++) {
        p->messages[i].body.funcs.encode = enc_body;
        p->messages[i].body.arg = (void *)bodies[i];
    }
    p->messages_count = (pb_size_t)n;
    for (size_t i = 0; i < n_tags; i++)
        snprintf(p->tags[i], sizeof p->tags[i], "%s", tags[i]);
    p->tags_count = (pb_size_t)n_tags;
    if (rk)
        snprintf(p->routing_key, sizeof p->routing_key, "%s", rk);
    if (pub_addr)
        snprintf(p->client_addr, sizeof p->client_addr, "%s", pub_addr);
    return encode(&c);
}

Test(tsm, publish_parses_in_place_and_filters)
{
    struct tsm *t;
    cr_assert_eq(tsm_create(PART, &t), CMQ_OK);
    cmq_TopicSubscription subs[3] = {sub_def("b", TSM_PROTO_QUEUE), sub_def("a", TSM_PROTO_HTTP),
                                     sub_def("c", TSM_PROTO_QUEUE)};
    subs[1].filter_tags_count = 1;
    snprintf(subs[1].filter_tags[0], sizeof subs[1].filter_tags[0], "red");
    subs[2].filter_tags_count = 2;
    snprintf(subs[2].filter_tags[0], sizeof subs[2].filter_tags[0], "blue");
    snprintf(subs[2].filter_tags[1], sizeof subs[2].filter_tags[1], "green");
    cr_assert_eq(sync(t, 5, 42, TOPIC_FILTER_TAG, subs, 3), CMQ_OK);
    struct tsm_topic *tp = tsm_topic(t, 42);
    cr_assert_not_null(tp);
    cr_assert_eq(tp->n_subs, 3);
    cr_expect_str_eq(tp->subs[0]->sub_id, "a", "subscriptions are kept in id order");
    cr_expect_eq(tp->subs[0]->cursor, ((uint64_t)PART << 52) | (6u << 4),
                 "a new subscription starts after the sync entry");

    const char *bodies[] = {"hello", "world"};
    const char *tags[] = {"red", "x"};
    size_t len = publish_cmd(42, bodies, 2, tags, 2, NULL);
    struct tsm_publish m;
    cr_assert(tsm_parse_publish(buf, len, &m));
    cr_expect_eq(m.topic_id, 42);
    cr_expect_eq(m.leader_ms, 2000);
    cr_expect_eq(m.n, 2);
    cr_expect_eq(m.body_len[1], 5);
    cr_expect_eq(memcmp(m.body[1], "world", 5), 0);
    cr_expect_str_eq(m.tags[0], "red");
    cr_expect(tsm_sub_matches(tp, tsm_sub(tp, "a"), &m), "red matches red");
    cr_expect(tsm_sub_matches(tp, tsm_sub(tp, "b"), &m), "no filter tags: everything");
    cr_expect_not(tsm_sub_matches(tp, tsm_sub(tp, "c"), &m), "blue/green vs red/x");
    cr_expect_eq(tsm_check_publish(t, &m), CMQ_OK);
    struct cmdcodec_view v; /* the host peeks once and routes by kind */
    cr_assert(cmdcodec_peek(buf, len, &v) && cmdcodec_is_topic(v.kind));
    cr_expect_eq(tsm_apply_peeked(t, 6, buf, len, &v), CMQ_OK);
    cr_expect_eq(tp->published, 2);
    cr_expect_eq(tp->last_publish_id, ((uint64_t)PART << 52) | (6u << 4) | 1);
    cr_expect_eq(tsm_first_needed_index(t), 6, "cursors still need entry 6");
    cr_expect_eq(tsm_sub_pending(tp, tsm_sub(tp, "a")), 2, "both messages are pending");
    tsm_destroy(t);
}

Test(tsm, check_publish_statuses)
{
    struct tsm *t;
    cr_assert_eq(tsm_create(PART, &t), CMQ_OK);
    const char *bodies[] = {"m"};
    size_t len = publish_cmd(9, bodies, 1, NULL, 0, "a.b");
    struct tsm_publish m;
    cr_assert(tsm_parse_publish(buf, len, &m));
    cr_expect_eq(tsm_check_publish(t, &m), CMQ_ENOTFOUND);
    cr_expect_eq(tsm_apply(t, 1, buf, len), CMQ_ENOTFOUND);
    cr_assert_eq(sync(t, 2, 9, TOPIC_FILTER_ROUTING, NULL, 0), CMQ_OK);
    cr_expect_eq(tsm_check_publish(t, &m), CMQ_EEMPTY, "no subscription: 6030/10650");
    cmq_TopicSubscription s = sub_def("s", TSM_PROTO_QUEUE);
    s.binding_keys_count = 1;
    snprintf(s.binding_keys[0], sizeof s.binding_keys[0], "a.*.c");
    cr_assert_eq(sync(t, 3, 9, TOPIC_FILTER_ROUTING, &s, 1), CMQ_OK);
    cr_expect_eq(tsm_check_publish(t, &m), CMQ_ESTALE, "none matches: 6030/10730");
    snprintf(s.binding_keys[0], sizeof s.binding_keys[0], "#.b");
    cr_assert_eq(sync(t, 4, 9, TOPIC_FILTER_ROUTING, &s, 1), CMQ_OK);
    cr_expect_eq(tsm_check_publish(t, &m), CMQ_OK, "a later sync changes the filter at once");
    tsm_destroy(t);
}

Test(tsm, progress_moves_cursor_and_retries_and_sync_keeps_state)
{
    struct tsm *t;
    cr_assert_eq(tsm_create(PART, &t), CMQ_OK);
    cmq_TopicSubscription subs[2] = {sub_def("a", TSM_PROTO_QUEUE), sub_def("b", TSM_PROTO_HTTP)};
    cr_assert_eq(sync(t, 1, 3, TOPIC_FILTER_TAG, subs, 2), CMQ_OK);
    cr_expect_eq(tsm_next_due_ms(t), UINT64_MAX, "no retry: no due time");

    cmq_StorageCommand c = cmq_StorageCommand_init_zero;
    c.which_cmd = cmq_StorageCommand_topic_progress_tag;
    cmq_TopicProgress *p = &c.cmd.topic_progress;
    p->topic_id = 3;
    p->subs_count = 2;
    snprintf(p->subs[0].sub_id, sizeof p->subs[0].sub_id, "a");
    p->subs[0].cursor = B + 1000;
    p->subs[0].delivered = 4;
    snprintf(p->subs[1].sub_id, sizeof p->subs[1].sub_id, "b");
    p->subs[1].cursor = B + 900;
    p->subs[1].retries_count = 2;
    p->subs[1].retries[0] = (cmq_TopicRetry){.msg_id = 800, .attempts = 1, .next_ms = 5000};
    p->subs[1].retries[1] = (cmq_TopicRetry){.msg_id = 700, .attempts = 2, .next_ms = 6000};
    size_t len = encode(&c);
    cr_assert_eq(tsm_apply(t, 2, buf, len), CMQ_OK);
    struct tsm_topic *tp = tsm_topic(t, 3);
    struct tsm_sub *b = tsm_sub(tp, "b");
    cr_expect_eq(tsm_sub(tp, "a")->cursor, B + 1000);
    cr_expect_eq(tsm_sub(tp, "a")->delivered, 4);
    cr_expect_eq(b->n_retries, 2);
    cr_expect_eq(b->retries[0].msg_id, 700, "retries are kept in id order");
    cr_expect_eq(tsm_next_due_ms(t), 5000, "the earliest retry (the scheduler's timer)");

    /* a cursor never moves back; attempts 0 removes a retry */
    p->subs_count = 1;
    p->subs[0] = p->subs[1];
    p->subs[0].cursor = B + 10;
    p->subs[0].retries_count = 1;
    p->subs[0].retries[0] = (cmq_TopicRetry){.msg_id = 700, .attempts = 0};
    len = encode(&c);
    cr_assert_eq(tsm_apply(t, 3, buf, len), CMQ_OK);
    cr_expect_eq(b->cursor, B + 900);
    cr_expect_eq(b->n_retries, 1);
    cr_expect_eq(b->retries[0].msg_id, 800);
    cr_expect_eq(tsm_next_due_ms(t), 5000);

    /* a sync without "a" removes it and keeps b's state */
    cr_assert_eq(sync(t, 4, 3, TOPIC_FILTER_TAG, &subs[1], 1), CMQ_OK);
    cr_expect_eq(tp->n_subs, 1);
    cr_expect_eq(tsm_sub(tp, "b")->cursor, B + 900);
    cr_expect_eq(tsm_sub(tp, "b")->n_retries, 1);
    cr_expect_null(tsm_sub(tp, "a"));

    /* drop frees the topic; progress for it is then refused */
    cmq_StorageCommand d = cmq_StorageCommand_init_zero;
    d.which_cmd = cmq_StorageCommand_topic_drop_tag;
    d.cmd.topic_drop.topic_id = 3;
    len = encode(&d);
    cr_expect_eq(tsm_apply(t, 5, buf, len), CMQ_OK);
    cr_expect_null(tsm_topic(t, 3));
    cr_expect_eq(tsm_topic_count(t), 0);
    tsm_destroy(t);
}

Test(tsm, refused_sync_changes_nothing)
{
    struct tsm *t;
    cr_assert_eq(tsm_create(PART, &t), CMQ_OK);
    cmq_TopicSubscription s[2] = {sub_def("a", TSM_PROTO_QUEUE), sub_def("a", TSM_PROTO_QUEUE)};
    cr_expect_eq(sync(t, 1, 3, TOPIC_FILTER_TAG, s, 2), CMQ_EINVAL, "duplicate ids");
    s[1] = sub_def("b", TSM_PROTO_QUEUE);
    s[1].queue_id = 0;
    cr_expect_eq(sync(t, 2, 3, TOPIC_FILTER_TAG, s, 2), CMQ_EINVAL, "queue without id");
    cr_expect_eq(sync(t, 3, 3, 7, s, 1), CMQ_EINVAL, "bad filter type");
    cr_expect_null(tsm_topic(t, 3));
    tsm_destroy(t);
}

/* The real schedules of spec §9.5, checked whole. */
Test(tsm, exponential_decay_schedule)
{
    uint64_t total = 0;
    for (uint32_t k = 1; k <= TSM_DECAY_RETRIES; k++) {
        uint64_t d = tsm_retry_delay_ms(TSM_EXPONENTIAL_DECAY_RETRY, k, 12345, 1000);
        uint64_t want = k <= 10 ? (1000ull << (k - 1)) : 512000ull;
        cr_expect_eq(d, want, "retry %u: %llu ms, want %llu", k, (unsigned long long)d,
                     (unsigned long long)want);
        total += d;
    }
    cr_expect_eq(tsm_retry_delay_ms(TSM_EXPONENTIAL_DECAY_RETRY, TSM_DECAY_RETRIES + 1, 0, 1000), 0,
                 "after 176 retries the message is given up");
    /* 1+2+...+512 = 1023 s, then 166 x 512 s: 86015 s, about one day */
    cr_expect_eq(total, 86015000ull);
    cr_expect_eq(tsm_retry_delay_ms(TSM_EXPONENTIAL_DECAY_RETRY, 3, 0, 10), 40,
                 "a time scale shortens every delay");
}

Test(tsm, backoff_schedule)
{
    for (uint32_t k = 1; k <= TSM_BACKOFF_RETRIES; k++)
        for (uint32_t r = 0; r < 50000; r += 997) {
            uint64_t d = tsm_retry_delay_ms(TSM_BACKOFF_RETRY, k, r, 1000);
            cr_expect(d >= 10000 && d <= 20000, "retry %u rnd %u: %llu ms", k, r,
                      (unsigned long long)d);
        }
    cr_expect_eq(tsm_retry_delay_ms(TSM_BACKOFF_RETRY, 1, 0, 1000), 10000);
    cr_expect_eq(tsm_retry_delay_ms(TSM_BACKOFF_RETRY, 1, 10000, 1000), 20000);
    cr_expect_eq(tsm_retry_delay_ms(TSM_BACKOFF_RETRY, 4, 0, 1000), 0, "3 retries, then given up");
}

struct img {
    uint8_t *p;
    size_t len;
};

static int sink(void *arg, const void *piece, size_t len)
{
    struct img *m = arg;
    m->p = realloc(m->p, m->len + len);
    memcpy(m->p + m->len, piece, len);
    m->len += len;
    return 0;
}

/* A state with topics, filters, cursors, retries and counters survives a
 * snapshot byte for byte; a damaged image or another partition's is refused
 * and changes nothing. */
Test(tsm, snapshot_round_trip)
{
    struct tsm *t;
    cr_assert_eq(tsm_create(PART, &t), CMQ_OK);
    cmq_TopicSubscription subs[2] = {sub_def("a", TSM_PROTO_QUEUE), sub_def("b", TSM_PROTO_HTTP)};
    subs[0].filter_tags_count = 2;
    snprintf(subs[0].filter_tags[0], sizeof subs[0].filter_tags[0], "x");
    snprintf(subs[0].filter_tags[1], sizeof subs[0].filter_tags[1], "y");
    subs[1].dead_letter_queue_id = 77;
    cr_assert_eq(sync(t, 1, 3, TOPIC_FILTER_TAG, subs, 2), CMQ_OK);
    cmq_TopicSubscription r = sub_def("r", TSM_PROTO_QUEUE);
    r.binding_keys_count = 1;
    snprintf(r.binding_keys[0], sizeof r.binding_keys[0], "a.#");
    cr_assert_eq(sync(t, 2, 9, TOPIC_FILTER_ROUTING, &r, 1), CMQ_OK);
    const char *bodies[] = {"m1", "m2"};
    size_t len = publish_cmd(3, bodies, 2, NULL, 0, NULL);
    cr_assert_eq(tsm_apply(t, 3, buf, len), CMQ_OK);
    cmq_StorageCommand c = cmq_StorageCommand_init_zero;
    c.which_cmd = cmq_StorageCommand_topic_progress_tag;
    c.cmd.topic_progress.topic_id = 3;
    c.cmd.topic_progress.subs_count = 1;
    snprintf(c.cmd.topic_progress.subs[0].sub_id, sizeof c.cmd.topic_progress.subs[0].sub_id, "b");
    c.cmd.topic_progress.subs[0].cursor = B + 1000;
    c.cmd.topic_progress.subs[0].passed = 2;
    c.cmd.topic_progress.subs[0].retries_count = 1;
    c.cmd.topic_progress.subs[0].retries[0] = (cmq_TopicRetry){.msg_id = B + 48, .attempts = 3,
                                                               .next_ms = 123456};
    len = encode(&c);
    cr_assert_eq(tsm_apply(t, 4, buf, len), CMQ_OK);

    struct img a = {0}, b = {0};
    cr_assert_eq(tsm_snapshot_write(t, sink, &a), 0);
    struct tsm *t2;
    cr_assert_eq(tsm_create(PART, &t2), CMQ_OK);
    cr_assert_eq(tsm_snapshot_read(t2, a.p, a.len), CMQ_OK);
    cr_assert_eq(tsm_snapshot_write(t2, sink, &b), 0);
    cr_assert_eq(a.len, b.len);
    cr_expect_eq(memcmp(a.p, b.p, a.len), 0, "the restored state writes the same image");
    struct tsm_topic *tp = tsm_topic(t2, 3);
    cr_assert_not_null(tp);
    struct tsm_sub *s = tsm_sub(tp, "b");
    cr_expect_eq(s->cursor, B + 1000);
    cr_expect_eq(s->n_retries, 1);
    cr_expect_eq(s->retries[0].attempts, 3);
    cr_expect_eq(s->dlq_queue_id, 77);
    cr_expect_eq(tsm_sub_pending(tp, s), 1, "2 published, 2 passed, 1 retry");
    cr_expect_str_eq(tsm_sub(tp, "a")->tags[1], "y");
    cr_expect_str_eq(tsm_sub(tsm_topic(t2, 9), "r")->keys[0], "a.#");
    cr_expect_eq(tsm_apply(t2, 5, buf, len), CMQ_OK, "applies continue after the image's index");

    a.p[a.len / 2] ^= 1;
    cr_expect_eq(tsm_snapshot_read(t2, a.p, a.len), CMQ_ECORRUPT);
    cr_expect_not_null(tsm_topic(t2, 9), "a refused image changes nothing");
    a.p[a.len / 2] ^= 1;
    struct tsm *other;
    cr_assert_eq(tsm_create(PART + 1, &other), CMQ_OK);
    cr_expect_eq(tsm_snapshot_read(other, a.p, a.len), CMQ_EINVAL);
    cr_expect_eq(tsm_snapshot_read(t2, a.p, a.len - 1), CMQ_ECORRUPT);
    free(a.p);
    free(b.p);
    tsm_destroy(other);
    tsm_destroy(t2);
    tsm_destroy(t);
}

/* ---- the trace events (tsm_set_tracer) ---- */

#define REC_MAX 16
static struct {
    uint64_t index;
    struct qsm_trace_ev ev;
    char addr[64];
} rec[REC_MAX];
static size_t n_rec;

static void record(void *arg, uint64_t index, const struct qsm_trace_ev *ev)
{
    (void)arg;
    cr_assert_lt(n_rec, REC_MAX);
    rec[n_rec].index = index;
    rec[n_rec].ev = *ev;
    snprintf(rec[n_rec].addr, sizeof rec[n_rec].addr, "%.*s", (int)ev->addr_len, ev->addr);
    rec[n_rec].ev.addr = NULL;
    n_rec++;
}

Test(tsm, trace_events_of_publish_and_progress)
{
    struct tsm *t;
    cr_assert_eq(tsm_create(PART, &t), CMQ_OK);
    struct qsm_tracer tr = {record, NULL};
    tsm_set_tracer(t, &tr);
    n_rec = 0;
    cmq_TopicSubscription subs[2] = {sub_def("a", TSM_PROTO_QUEUE), sub_def("h", TSM_PROTO_HTTP)};
    subs[1].dead_letter_queue_id = 77;
    cr_assert_eq(sync(t, 1, 3, TOPIC_FILTER_TAG, subs, 2), CMQ_OK);
    cr_expect_eq(n_rec, 0, "a sync is no message's event");

    /* a batch of two: one PUBLISHED each, with the client address */
    const char *bodies[] = {"x", "y"};
    pub_addr = "10.0.0.9:4242";
    size_t len = publish_cmd(3, bodies, 2, NULL, 0, NULL);
    pub_addr = NULL;
    cr_assert_eq(tsm_apply(t, 2, buf, len), CMQ_OK);
    cr_assert_eq(n_rec, 2);
    uint64_t m0 = B | (2ull << 4), m1 = B | (2ull << 4) | 1;
    for (size_t i = 0; i < 2; i++) {
        cr_expect_eq(rec[i].ev.event, TSM_EV_PUBLISHED);
        cr_expect_eq(rec[i].index, 2);
        cr_expect_eq(rec[i].ev.queue_id, 3, "queue_id carries the topic");
        cr_expect_eq(rec[i].ev.time_ms, 2000);
        cr_expect_str_eq(rec[i].addr, "10.0.0.9:4242");
    }
    cr_expect_eq(rec[0].ev.msg_id, m0);
    cr_expect_eq(rec[1].ev.msg_id, m1);

    /* progress: a delivered to its queue (target ids); h's push failed with
     * 503 and is retried, then succeeded with 200 on attempt 2; m1 exhausted
     * to h's dead-letter queue */
    cmq_StorageCommand c = cmq_StorageCommand_init_zero;
    c.leader_ms = 3000;
    c.which_cmd = cmq_StorageCommand_topic_progress_tag;
    cmq_TopicProgress *p = &c.cmd.topic_progress;
    p->topic_id = 3;
    p->subs_count = 2;
    snprintf(p->subs[0].sub_id, sizeof p->subs[0].sub_id, "a");
    p->subs[0].attempts_count = 2;
    p->subs[0].attempts[0] = (cmq_TopicAttempt){.msg_id = m0, .result = 1, .attempt = 1,
                                                .target_msg_id = 555};
    p->subs[0].attempts[1] = (cmq_TopicAttempt){.msg_id = m1, .result = 1, .attempt = 1,
                                                .target_msg_id = 556};
    snprintf(p->subs[1].sub_id, sizeof p->subs[1].sub_id, "h");
    p->subs[1].attempts_count = 1;
    p->subs[1].attempts[0] = (cmq_TopicAttempt){.msg_id = m0, .result = 2, .http_status = 503,
                                                .attempt = 1, .next_ms = 4000};
    len = encode(&c);
    n_rec = 0;
    cr_assert_eq(tsm_apply(t, 3, buf, len), CMQ_OK);
    cr_assert_eq(n_rec, 3);
    cr_expect_eq(rec[0].ev.event, TSM_EV_DELIVERED);
    cr_expect_eq(rec[0].ev.msg_id, m0);
    cr_expect_eq(rec[0].ev.aux, 555, "the queue copy's msg id");
    cr_expect_eq(rec[0].ev.handle, 1, "attempt 1, no HTTP status");
    cr_expect_str_eq(rec[0].addr, "a");
    cr_expect_eq(rec[1].ev.msg_id, m1);
    cr_expect_eq(rec[2].ev.event, TSM_EV_FAILED);
    cr_expect_eq(rec[2].ev.handle, 1 | (503ull << 32));
    cr_expect_eq(rec[2].ev.due_ms, 4000, "the retry's time");
    cr_expect_eq(rec[2].ev.time_ms, 3000);
    cr_expect_str_eq(rec[2].addr, "h");

    p->subs_count = 1;
    p->subs[0] = p->subs[1];
    p->subs[0].attempts_count = 3;
    p->subs[0].attempts[0] = (cmq_TopicAttempt){.msg_id = m0, .result = 1, .http_status = 200,
                                                .attempt = 2};
    p->subs[0].attempts[1] = (cmq_TopicAttempt){.msg_id = m1, .result = 4, .attempt = 176,
                                                .target_msg_id = 9};
    p->subs[0].attempts[2] = (cmq_TopicAttempt){.msg_id = m1, .result = 7, .attempt = 1};
    len = encode(&c);
    n_rec = 0;
    cr_assert_eq(tsm_apply(t, 4, buf, len), CMQ_OK);
    cr_assert_eq(n_rec, 2, "an unknown result is no event");
    cr_expect_eq(rec[0].ev.event, TSM_EV_DELIVERED);
    cr_expect_eq(rec[0].ev.handle, 2 | (200ull << 32));
    cr_expect_eq(rec[1].ev.event, TSM_EV_DEAD_LETTERED);
    cr_expect_eq(rec[1].ev.due_ms, 77, "the subscription's DLQ");
    cr_expect_eq(rec[1].ev.aux, 9);

    /* an unsubscribed subscription's progress and a cleared tracer: nothing */
    snprintf(p->subs[0].sub_id, sizeof p->subs[0].sub_id, "gone");
    len = encode(&c);
    n_rec = 0;
    cr_assert_eq(tsm_apply(t, 5, buf, len), CMQ_OK);
    cr_expect_eq(n_rec, 0);
    tsm_set_tracer(t, NULL);
    len = publish_cmd(3, bodies, 1, NULL, 0, NULL);
    cr_assert_eq(tsm_apply(t, 6, buf, len), CMQ_OK);
    cr_expect_eq(n_rec, 0);
    tsm_destroy(t);
}
