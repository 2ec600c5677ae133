/* metrics.h: the gateway's counters and the /metrics page (Prometheus text
 * format 0.0.4).
 *
 * Owns: per event loop, a `struct gw_metrics` that only that loop's thread
 * writes (relaxed atomic adds) and the scraper reads (relaxed atomic loads),
 * so counting costs no lock; and one process-wide table of the queues that
 * message actions touched (bounded: METRICS_QUEUES_MAX slots, direct-mapped by
 * the queue's numeric id, a newer queue replaces an older one in its slot)
 * with the message counts storage last reported for them (refreshed at most
 * every METRICS_QUEUE_STATS_MS, on a scrape).
 *
 * Series:
 *   cmq_gateway_requests_total{action,code}    answered HTTP API requests
 *   cmq_gateway_request_duration_seconds{action} histogram, request to answer
 *   cmq_gateway_tcp_requests_total{action,code} and
 *   cmq_gateway_tcp_request_duration_seconds{action}: the same for the CMQ
 *   TCP protocol's requests (action: the HTTP action the command is; code:
 *   the TCP `result`; auth is action "none")
 *   cmq_gateway_inflight_requests, cmq_gateway_long_polls (receives waiting
 *   with pollingWaitSeconds > 0), cmq_gateway_send_appends_total and
 *   cmq_gateway_sends_coalesced_total (coalescing, backend/be_storage.c), the same two
 *   for deletes, cmq_gateway_send_requests_total and
 *   cmq_gateway_send_storage_requests_total (client send requests, HTTP and
 *   TCP, and the SendRequests they became: their ratio is the coalescing
 *   ratio), cmq_gateway_storage_resends_total{reason} (storage requests
 *   sent again: timeout, not_leader, busy, unreachable; common/rpc/rpc.h),
 *   cmq_queue_messages{appid,queue,state} (active, inactive, delayed).
 * Deliberately not done: per-queue request counters (unbounded labels).
 */
#ifndef CMQ_GATEWAY_METRICS_H
#define CMQ_GATEWAY_METRICS_H

#include "action.h"

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#define METRICS_CODES_MAX 64      /* distinct CMQ codes; more share the "other" row */
#define METRICS_BUCKETS 15        /* latency buckets, the last is +Inf */
#define METRICS_QUEUES_MAX 256
#define METRICS_QUEUE_STATS_MS 5000

enum metrics_proto { METRICS_HTTP = 0, METRICS_TCP = 1, METRICS_PROTOS = 2 };

struct gw_metrics {
    uint64_t requests[METRICS_PROTOS][CMQ_ACTION_COUNT_][METRICS_CODES_MAX + 1];
    uint64_t latency[METRICS_PROTOS][CMQ_ACTION_COUNT_][METRICS_BUCKETS];
    uint64_t latency_us_sum[METRICS_PROTOS][CMQ_ACTION_COUNT_];
    uint64_t long_polls;          /* gauge: up and down by this loop */
    uint64_t send_appends;
    uint64_t sends_coalesced;
    uint64_t delete_appends;
    uint64_t deletes_coalesced;
    uint64_t send_requests;         /* client send requests (HTTP and TCP) */
    uint64_t send_storage_requests; /* SendRequests sent to storage for them */
    /* copied from the loop's storage rpc client by the scraper (rpc.h reasons) */
    uint64_t storage_resends[4];
};

struct metrics_queue {
    uint64_t num_id;              /* 0: free slot */
    uint64_t appid;
    uint32_t partition;
    char name[72];
    uint64_t active, inactive, delayed;
    uint64_t stats_ms;            /* when storage last answered; 0 never */
};

struct metrics_queues {
    pthread_mutex_t lock;         /* slots' contents */
    struct metrics_queue q[METRICS_QUEUES_MAX];
};

/* Counting (the owning loop only). */
static inline void metrics_add(uint64_t *counter, uint64_t n)
{
    __atomic_fetch_add(counter, n, __ATOMIC_RELAXED);
}
static inline void metrics_sub(uint64_t *counter, uint64_t n)
{
    __atomic_fetch_sub(counter, n, __ATOMIC_RELAXED);
}
static inline uint64_t metrics_load(const uint64_t *counter)
{
    return __atomic_load_n(counter, __ATOMIC_RELAXED);
}

/* Builds the code table from the error table (once, before any loop runs). */
void metrics_init(void);
/* One answered HTTP request: its action, the CMQ code it carried, and how
 * long it took. */
void metrics_request(struct gw_metrics *m, int action, int code, uint64_t elapsed_us);
/* The same for a request of protocol `proto` (METRICS_TCP: code = result). */
void metrics_request_proto(struct gw_metrics *m, enum metrics_proto proto, int action, int code,
                           uint64_t elapsed_us);

int metrics_queues_init(struct metrics_queues *t);
void metrics_queues_destroy(struct metrics_queues *t);
/* Notes that a message action touched this queue (name copied). */
void metrics_queue_seen(struct metrics_queues *t, uint64_t num_id, uint64_t appid,
                        uint32_t partition, const char *name);
/* Copies the slots into `out` (METRICS_QUEUES_MAX entries) and returns them. */
size_t metrics_queues_snapshot(struct metrics_queues *t, struct metrics_queue *out);
void metrics_queue_stats(struct metrics_queues *t, uint64_t num_id, uint64_t active,
                         uint64_t inactive, uint64_t delayed, uint64_t now_ms);

/* Writes the page: the sum of `n` loops' counters plus the gauges given and
 * the queue table.  Returns a malloc'd NUL-terminated page (caller frees),
 * NULL when out of memory. */
char *metrics_render(const struct gw_metrics *const *loops, size_t n, uint64_t inflight,
                     const struct metrics_queue *queues, size_t n_queues, size_t *len);

#endif
