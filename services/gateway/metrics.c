/* metrics.c: counters and the Prometheus text page; see metrics.h. */
#include "metrics.h"

#include "cmq_error.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Upper bounds of the latency buckets, microseconds (the last: +Inf). */
static const uint64_t bucket_us[METRICS_BUCKETS - 1] = {
    1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2500000, 5000000,
    10000000, 30000000,
};
static const char *const bucket_le[METRICS_BUCKETS] = {
    "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5",
    "10", "30", "+Inf",
};

/* The distinct codes of the error table; written once by metrics_init. */
static int codes[METRICS_CODES_MAX];
static int n_codes;

void metrics_init(void)
{
    if (n_codes)
        return;
    for (int e = 0; e < CMQERR_COUNT_; e++) {
        int code = cmq_error_code((enum cmq_err)e), seen = 0;
        for (int i = 0; i < n_codes; i++)
            seen |= codes[i] == code;
        if (!seen && n_codes < METRICS_CODES_MAX)
            codes[n_codes++] = code;
    }
}

/* Row of `code`; METRICS_CODES_MAX ("other") when it is not in the table. */
static int code_row(int code)
{
    for (int i = 0; i < n_codes; i++)
        if (codes[i] == code)
            return i;
    return METRICS_CODES_MAX;
}

void metrics_request_proto(struct gw_metrics *m, enum metrics_proto proto, int action, int code,
                           uint64_t elapsed_us)
{
    if (action < 0 || action >= CMQ_ACTION_COUNT_)
        action = 0;
    metrics_add(&m->requests[proto][action][code_row(code)], 1);
    int b = 0;
    while (b < METRICS_BUCKETS - 1 && elapsed_us > bucket_us[b])
        b++;
    metrics_add(&m->latency[proto][action][b], 1);
    metrics_add(&m->latency_us_sum[proto][action], elapsed_us);
}

void metrics_request(struct gw_metrics *m, int action, int code, uint64_t elapsed_us)
{
    metrics_request_proto(m, METRICS_HTTP, action, code, elapsed_us);
}

/* ---------- the queue table ---------- */

int metrics_queues_init(struct metrics_queues *t)
{
    memset(t, 0, sizeof *t);
    return pthread_mutex_init(&t->lock, NULL) == 0 ? 0 : -1;
}

void metrics_queues_destroy(struct metrics_queues *t)
{
    if (t)
        pthread_mutex_destroy(&t->lock);
}

static size_t slot_of(uint64_t num_id)
{
    return (size_t)((num_id * UINT64_C(0x9E3779B97F4A7C15)) >> 56) % METRICS_QUEUES_MAX;
}

void metrics_queue_seen(struct metrics_queues *t, uint64_t num_id, uint64_t appid,
                        uint32_t partition, const char *name)
{
    struct metrics_queue *s = &t->q[slot_of(num_id)];
    /* The common case, a known queue, reads one word and takes no lock. */
    if (__atomic_load_n(&s->num_id, __ATOMIC_RELAXED) == num_id)
        return;
    pthread_mutex_lock(&t->lock);
    if (s->num_id != num_id) {
        memset(s, 0, sizeof *s);
        s->appid = appid;
        s->partition = partition;
        snprintf(s->name, sizeof s->name, "%s", name);
        __atomic_store_n(&s->num_id, num_id, __ATOMIC_RELAXED);
    }
    pthread_mutex_unlock(&t->lock);
}

size_t metrics_queues_snapshot(struct metrics_queues *t, struct metrics_queue *out)
{
    size_t n = 0;
    pthread_mutex_lock(&t->lock);
    for (size_t i = 0; i < METRICS_QUEUES_MAX; i++)
        if (t->q[i].num_id)
            out[n++] = t->q[i];
    pthread_mutex_unlock(&t->lock);
    return n;
}

void metrics_queue_stats(struct metrics_queues *t, uint64_t num_id, uint64_t active,
                         uint64_t inactive, uint64_t delayed, uint64_t now_ms)
{
    struct metrics_queue *s = &t->q[slot_of(num_id)];
    pthread_mutex_lock(&t->lock);
    if (s->num_id == num_id) {
        s->active = active;
        s->inactive = inactive;
        s->delayed = delayed;
        s->stats_ms = now_ms;
    }
    pthread_mutex_unlock(&t->lock);
}

/* ---------- the page ---------- */

struct page {
    char *buf;
    size_t len, cap;
    int failed;
};

static void put(struct page *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct page *p, const char *fmt, ...)
{
    for (;;) {
        if (p->failed)
            return;
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(p->buf + p->len, p->cap - p->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            p->failed = 1;
            return;
        }
        if ((size_t)n < p->cap - p->len) {
            p->len += (size_t)n;
            return;
        }
        char *nb = realloc(p->buf, p->cap * 2 + (size_t)n);
        if (!nb) {
            p->failed = 1;
            return;
        }
        p->buf = nb;
        p->cap = p->cap * 2 + (size_t)n;
    }
}

/* A label value: queue names are [A-Za-z0-9_-], but escape anyway. */
static void put_label(struct page *p, const char *s)
{
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            put(p, "\\%c", *s);
        else if (*s == '\n')
            put(p, "\\n");
        else
            put(p, "%c", *s);
    }
}

static uint64_t sum(const struct gw_metrics *const *loops, size_t n, size_t offset)
{
    uint64_t s = 0;
    for (size_t i = 0; i < n; i++)
        s += metrics_load((const uint64_t *)((const char *)loops[i] + offset));
    return s;
}

#define SUM(field) sum(loops, n, offsetof(struct gw_metrics, field))

char *metrics_render(const struct gw_metrics *const *loops, size_t n, uint64_t inflight,
                     const struct metrics_queue *queues, size_t n_queues, size_t *len)
{
    struct page p = {.cap = 16384};
    p.buf = malloc(p.cap);
    if (!p.buf)
        return NULL;
    static const char *const fam[METRICS_PROTOS] = {"cmq_gateway_", "cmq_gateway_tcp_"};
    static const char *const who[METRICS_PROTOS] = {"API", "CMQ TCP protocol"};
    for (int pr = 0; pr < METRICS_PROTOS; pr++) {
        put(&p, "# HELP %srequests_total %s requests answered, by action and CMQ code.\n"
                "# TYPE %srequests_total counter\n", fam[pr], who[pr], fam[pr]);
        for (int a = 0; a < CMQ_ACTION_COUNT_; a++)
            for (int r = 0; r <= METRICS_CODES_MAX; r++) {
                uint64_t v = SUM(requests[pr][a][r]);
                if (!v)
                    continue;
                put(&p, "%srequests_total{action=\"%s\",code=\"", fam[pr],
                    a ? action_name((enum cmq_action)a) : "none");
                if (r < METRICS_CODES_MAX)
                    put(&p, "%d", codes[r]);
                else
                    put(&p, "other");
                put(&p, "\"} %llu\n", (unsigned long long)v);
            }
        put(&p, "# HELP %srequest_duration_seconds From the request to its answer.\n"
                "# TYPE %srequest_duration_seconds histogram\n", fam[pr], fam[pr]);
        for (int a = 0; a < CMQ_ACTION_COUNT_; a++) {
            uint64_t cum = 0;
            for (int b = 0; b < METRICS_BUCKETS; b++)
                cum += SUM(latency[pr][a][b]);
            if (!cum)
                continue;
            const char *an = a ? action_name((enum cmq_action)a) : "none";
            cum = 0;
            for (int b = 0; b < METRICS_BUCKETS; b++) {
                cum += SUM(latency[pr][a][b]);
                put(&p, "%srequest_duration_seconds_bucket{action=\"%s\",le=\"%s\"} %llu\n",
                    fam[pr], an, bucket_le[b], (unsigned long long)cum);
            }
            uint64_t us = SUM(latency_us_sum[pr][a]);
            put(&p, "%srequest_duration_seconds_sum{action=\"%s\"} %llu.%06llu\n", fam[pr], an,
                (unsigned long long)(us / 1000000), (unsigned long long)(us % 1000000));
            put(&p, "%srequest_duration_seconds_count{action=\"%s\"} %llu\n", fam[pr], an,
                (unsigned long long)cum);
        }
    }
    put(&p, "# HELP cmq_gateway_inflight_requests Requests being served.\n"
            "# TYPE cmq_gateway_inflight_requests gauge\n"
            "cmq_gateway_inflight_requests %llu\n", (unsigned long long)inflight);
    put(&p, "# HELP cmq_gateway_long_polls Receives waiting at storage (pollingWaitSeconds > 0).\n"
            "# TYPE cmq_gateway_long_polls gauge\n"
            "cmq_gateway_long_polls %llu\n", (unsigned long long)SUM(long_polls));
    put(&p, "# HELP cmq_gateway_send_appends_total Storage appends that carried coalesced sends.\n"
            "# TYPE cmq_gateway_send_appends_total counter\n"
            "cmq_gateway_send_appends_total %llu\n", (unsigned long long)SUM(send_appends));
    put(&p, "# HELP cmq_gateway_sends_coalesced_total API sends carried by coalesced appends.\n"
            "# TYPE cmq_gateway_sends_coalesced_total counter\n"
            "cmq_gateway_sends_coalesced_total %llu\n", (unsigned long long)SUM(sends_coalesced));
    put(&p, "# HELP cmq_gateway_send_requests_total Client send requests (HTTP and TCP) that "
            "reached storage.\n"
            "# TYPE cmq_gateway_send_requests_total counter\n"
            "cmq_gateway_send_requests_total %llu\n", (unsigned long long)SUM(send_requests));
    put(&p, "# HELP cmq_gateway_send_storage_requests_total SendRequests sent to storage for them "
            "(coalescing ratio = send_requests / send_storage_requests).\n"
            "# TYPE cmq_gateway_send_storage_requests_total counter\n"
            "cmq_gateway_send_storage_requests_total %llu\n",
            (unsigned long long)SUM(send_storage_requests));
    put(&p, "# HELP cmq_gateway_delete_appends_total Storage requests that carried coalesced deletes.\n"
            "# TYPE cmq_gateway_delete_appends_total counter\n"
            "cmq_gateway_delete_appends_total %llu\n", (unsigned long long)SUM(delete_appends));
    put(&p, "# HELP cmq_gateway_storage_resends_total Storage requests sent again (same dedup "
            "keys for sends and publishes), by reason.\n"
            "# TYPE cmq_gateway_storage_resends_total counter\n");
    static const char *const reasons[4] = {"timeout", "not_leader", "busy", "unreachable"};
    for (int r = 0; r < 4; r++)
        put(&p, "cmq_gateway_storage_resends_total{reason=\"%s\"} %llu\n", reasons[r],
            (unsigned long long)SUM(storage_resends[r]));
    put(&p, "# HELP cmq_gateway_deletes_coalesced_total API deletes carried by coalesced requests.\n"
            "# TYPE cmq_gateway_deletes_coalesced_total counter\n"
            "cmq_gateway_deletes_coalesced_total %llu\n", (unsigned long long)SUM(deletes_coalesced));
    put(&p, "# HELP cmq_queue_messages Messages per queue as storage last reported them "
            "(queues this gateway served recently, at most %d).\n"
            "# TYPE cmq_queue_messages gauge\n", METRICS_QUEUES_MAX);
    for (size_t i = 0; i < n_queues; i++) {
        const struct metrics_queue *q = &queues[i];
        if (!q->stats_ms)
            continue;
        const char *states[3] = {"active", "inactive", "delayed"};
        uint64_t vals[3] = {q->active, q->inactive, q->delayed};
        for (int s = 0; s < 3; s++) {
            put(&p, "cmq_queue_messages{appid=\"%llu\",queue=\"", (unsigned long long)q->appid);
            put_label(&p, q->name);
            put(&p, "\",state=\"%s\"} %llu\n", states[s], (unsigned long long)vals[s]);
        }
    }
    if (p.failed) {
        free(p.buf);
        return NULL;
    }
    *len = p.len;
    return p.buf;
}
