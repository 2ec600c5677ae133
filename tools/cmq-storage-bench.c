/* cmq-storage-bench: appends/s and receive+delete/s through a real storage
 * cluster, speaking the storage protocol (proto/storage.proto) over ZeroMQ
 * directly, like the gateway does (services/gateway/backend/be_storage.c), so the
 * figures are the storage layer's: Raft replication to a majority, group
 * commit fsyncs, the queue state machine, and reading bodies back from the
 * segments.
 *
 * It finds the leader of --partition by asking every storage node for its
 * raft status, creates a queue of its own on that partition (a fresh queue id
 * that metadata never hands out: bit 62 set), then
 *   1. send phase: --messages bodies of --size bytes in SendRequests of
 *      --batch, with --inflight requests outstanding;
 *   2. receive+delete phase: ReceiveRequests of --batch (visibility 60 s, no
 *      wait) each followed by a DeleteRequest of the handles it got, with
 *      --inflight pairs outstanding, until every message was deleted;
 * and drops the queue.  Each phase prints requests/s, messages/s and the
 * request latency p50/p99/max (a receive+delete pair counts as one).
 *
 * Storage endpoints default to the dev cluster's (tools/cmq: CMQ_PORT_BASE,
 * default 17100; storage-i at base + 20 + 2(i - 1)).  Memory is bounded by
 * the message count (one latency sample per request).
 */
#include "envelope.pb.h"
#include "raft.pb.h"
#include "rpc.h"
#include "status.h"
#include "storage.pb.h"
#include "pb_size.h"

#include <getopt.h>
#include <inttypes.h>
#include <pb_decode.h>
#include <pb_encode.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#define ENDPOINTS_MAX 8
#define INFLIGHT_MAX 256

static struct {
    const char *endpoints[ENDPOINTS_MAX];
    int n_endpoints;
    uint32_t partition;
    uint64_t messages;
    uint32_t size;
    uint32_t batch;
    uint32_t inflight;
} opt = {.partition = 1, .messages = 20000, .size = 1024, .batch = 1, .inflight = 16};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---------- latency samples ---------- */

struct samples {
    uint64_t *ns;
    size_t n, cap;
};

static void sample_add(struct samples *s, uint64_t ns)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 4096;
        uint64_t *g = realloc(s->ns, cap * sizeof *g);
        if (!g)
            return;
        s->ns = g;
        s->cap = cap;
    }
    s->ns[s->n++] = ns;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void report(const char *phase, struct samples *s, uint64_t msgs, uint64_t elapsed_ns,
                   uint64_t errors)
{
    qsort(s->ns, s->n, sizeof *s->ns, cmp_u64);
    double secs = (double)elapsed_ns / 1e9;
    double p50 = s->n ? (double)s->ns[s->n / 2] / 1e6 : 0;
    double p99 = s->n ? (double)s->ns[(s->n * 99) / 100] / 1e6 : 0;
    double max = s->n ? (double)s->ns[s->n - 1] / 1e6 : 0;
    printf("%-15s requests=%zu errors=%" PRIu64 " elapsed=%.2fs  %.0f req/s  %.0f msg/s  "
           "latency ms p50 %.3f  p99 %.3f  max %.3f\n",
           phase, s->n, errors, secs, (double)s->n / secs, (double)msgs / secs, p50, p99, max);
}

/* ---------- the leader ---------- */

static int find_leader(void *zctx)
{
    for (int i = 0; i < opt.n_endpoints; i++) {
        cmq_PartitionStatusRequest req = cmq_PartitionStatusRequest_init_zero;
        uint8_t *buf;
        size_t len;
        if (rpc_pb_encode(cmq_PartitionStatusRequest_fields, &req, &buf, &len) != CMQ_OK)
            return -1;
        struct rpc_opts ro = {.timeout_ms = 1000, .attempts = 1, .peer = 0};
        struct rpc_sync_result res;
        int st = rpc_call_sync(zctx, &opt.endpoints[i], 1, cmq_RaftMsgType_RAFT_WIRE_STATUS, buf,
                               len, &ro, &res);
        free(buf);
        if (st != CMQ_OK) {
            rpc_sync_result_free(&res);
            continue;
        }
        cmq_PartitionStatusReply r = cmq_PartitionStatusReply_init_zero;
        int ok = rpc_pb_decode(cmq_PartitionStatusReply_fields, &r, res.body, res.body_len) ==
                 CMQ_OK;
        rpc_sync_result_free(&res);
        for (pb_size_t k = 0; ok && k < r.partitions_count; k++)
            if (r.partitions[k].partition == opt.partition && r.partitions[k].role == 3 &&
                r.partitions[k].leader == r.node)
                return i;
    }
    return -1;
}

/* ---------- requests ---------- */

static uint8_t *g_body;
static uint64_t g_queue_id;

static bool encode_body(pb_ostream_t *os, const pb_field_t *field, void *const *arg)
{
    (void)arg;
    return pb_encode_tag_for_field(os, field) && pb_encode_string(os, g_body, opt.size);
}

static int call_sync(void *zctx, const char *ep, uint32_t type, const pb_msgdesc_t *fields,
                     const void *msg)
{
    uint8_t *buf;
    size_t len;
    if (rpc_pb_encode(fields, msg, &buf, &len) != CMQ_OK)
        return CMQ_EINTERNAL;
    struct rpc_opts ro = {.timeout_ms = 5000, .attempts = 1, .peer = 0};
    struct rpc_sync_result res;
    int st = rpc_call_sync(zctx, &ep, 1, type, buf, len, &ro, &res);
    free(buf);
    if (st != CMQ_OK)
        fprintf(stderr, "cmq-storage-bench: request %u: %s %s\n", type, status_name(st),
                res.error);
    rpc_sync_result_free(&res);
    return st;
}

/* One outstanding request (or receive+delete pair). */
struct slot {
    uint64_t started_ns;
    int busy;
};

static uint64_t g_status_count[64]; /* errors by status */

static void count_error(int status)
{
    g_status_count[status >= 0 && status < 64 ? status : 63]++;
}

static struct {
    struct rpc_client *client;
    struct samples lat;
    uint64_t issued_msgs, done_msgs, errors, empty;
    uint64_t target;
    int receiving;
} g;

static void issue(struct slot *s);

static void on_send(void *arg, const struct rpc_result *res)
{
    struct slot *s = arg;
    s->busy = 0;
    if (res->status != CMQ_OK) {
        g.errors++;
        count_error(res->status);
        g.issued_msgs -= opt.batch; /* resent */
    } else {
        sample_add(&g.lat, now_ns() - s->started_ns);
        g.done_msgs += opt.batch;
    }
    issue(s);
}

static void on_delete(void *arg, const struct rpc_result *res)
{
    struct slot *s = arg;
    s->busy = 0;
    if (res->status != CMQ_OK) {
        g.errors++;
        count_error(res->status);
    } else {
        sample_add(&g.lat, now_ns() - s->started_ns);
    }
    issue(s);
}

static void on_receive(void *arg, const struct rpc_result *res)
{
    struct slot *s = arg;
    cmq_ReceiveReply r = cmq_ReceiveReply_init_zero; /* bodies: callbacks left NULL, skipped */
    if (res->status == CMQ_EEMPTY) {
        g.empty++;
        s->busy = 0;
        issue(s);
        return;
    }
    if (res->status != CMQ_OK || !res->msg ||
        rpc_pb_decode(cmq_ReceiveReply_fields, &r, res->msg->body, res->msg->body_len) !=
            CMQ_OK ||
        r.messages_count == 0) {
        g.errors++;
        count_error(res->status);
        s->busy = 0;
        issue(s);
        return;
    }
    cmq_DeleteRequest d = cmq_DeleteRequest_init_zero;
    d.queue_id = g_queue_id;
    for (pb_size_t i = 0; i < r.messages_count; i++)
        d.receipt_handles[d.receipt_handles_count++] = r.messages[i].receipt_handle;
    g.done_msgs += r.messages_count;
    uint8_t *buf;
    size_t len;
    struct rpc_opts ro = {.timeout_ms = 5000, .attempts = 1, .peer = 0};
    if (rpc_pb_encode(cmq_DeleteRequest_fields, &d, &buf, &len) != CMQ_OK ||
        rpc_client_call(g.client, cmq_StorageMsgType_STORAGE_MSG_DELETE, buf, len, &ro, on_delete,
                        s) != CMQ_OK) {
        g.errors++;
        s->busy = 0;
    }
    free(buf);
}

static void issue(struct slot *s)
{
    if (s->busy)
        return;
    uint8_t *buf = NULL;
    size_t len = 0;
    struct rpc_opts ro = {.timeout_ms = 5000, .attempts = 1, .peer = 0};
    int rc;
    if (!g.receiving) {
        if (g.issued_msgs >= g.target)
            return;
        cmq_SendRequest r = cmq_SendRequest_init_zero;
        r.queue_id = g_queue_id;
        r.messages_count = PB_COUNT(r.messages, opt.batch);
        for (uint32_t i = 0; i < opt.batch; i++)
            r.messages[i].body.funcs.encode = encode_body;
        if (rpc_pb_encode(cmq_SendRequest_fields, &r, &buf, &len) != CMQ_OK)
            return;
        s->busy = 1;
        s->started_ns = now_ns();
        g.issued_msgs += opt.batch;
        rc = rpc_client_call(g.client, cmq_StorageMsgType_STORAGE_MSG_SEND, buf, len, &ro, on_send,
                             s);
    } else {
        if (g.done_msgs >= g.target)
            return;
        cmq_ReceiveRequest r = cmq_ReceiveRequest_init_zero;
        r.queue_id = g_queue_id;
        r.count = opt.batch;
        r.visibility_timeout_s = 60;
        r.has_wait_seconds = true;
        r.wait_seconds = 0;
        if (rpc_pb_encode(cmq_ReceiveRequest_fields, &r, &buf, &len) != CMQ_OK)
            return;
        s->busy = 1;
        s->started_ns = now_ns();
        rc = rpc_client_call(g.client, cmq_StorageMsgType_STORAGE_MSG_RECEIVE, buf, len, &ro,
                             on_receive, s);
    }
    free(buf);
    if (rc != CMQ_OK) {
        s->busy = 0;
        g.errors++;
    }
}

static void on_warm(void *arg, const struct rpc_result *res)
{
    *(int *)arg = res->status == CMQ_EUNAVAIL ? 2 : 1;
}

/* Waits until the client is connected (a call made before that is refused
 * at once as unavailable), so the first requests measure the storage. */
static int warm_up(void)
{
    cmq_PartitionStatusRequest req = cmq_PartitionStatusRequest_init_zero;
    uint8_t *buf;
    size_t len;
    if (rpc_pb_encode(cmq_PartitionStatusRequest_fields, &req, &buf, &len) != CMQ_OK)
        return CMQ_EINTERNAL;
    int state = 2;
    for (int tries = 0; state == 2 && tries < 100; tries++) {
        state = 0;
        struct rpc_opts ro = {.timeout_ms = 1000, .attempts = 1, .peer = 0};
        if (rpc_client_call(g.client, cmq_RaftMsgType_RAFT_WIRE_STATUS, buf, len, &ro, on_warm,
                            &state) != CMQ_OK)
            break;
        while (!state)
            rpc_client_wait(g.client, 50);
        if (state == 2)
            usleep(20000);
    }
    free(buf);
    return state == 1 ? CMQ_OK : CMQ_EUNAVAIL;
}

static int run_phase(int receiving, const char *name)
{
    static struct slot slots[INFLIGHT_MAX];
    memset(slots, 0, sizeof slots);
    free(g.lat.ns);
    memset(&g.lat, 0, sizeof g.lat);
    g.receiving = receiving;
    g.issued_msgs = g.done_msgs = g.errors = g.empty = 0;
    g.target = opt.messages;
    uint64_t t0 = now_ns();
    for (uint32_t i = 0; i < opt.inflight; i++)
        issue(&slots[i]);
    uint64_t last_progress = t0;
    uint64_t last_done = 0;
    while (g.done_msgs < g.target) {
        rpc_client_wait(g.client, 100);
        int busy = 0;
        for (uint32_t i = 0; i < opt.inflight; i++) {
            if (!slots[i].busy)
                issue(&slots[i]);
            busy |= slots[i].busy;
        }
        if (g.done_msgs != last_done) {
            last_done = g.done_msgs;
            last_progress = now_ns();
        } else if (now_ns() - last_progress > 30000000000ull) {
            fprintf(stderr, "cmq-storage-bench: %s: no progress for 30 s (%" PRIu64 " of %" PRIu64
                    ")\n", name, g.done_msgs, g.target);
            return 1;
        }
        if (!busy && g.done_msgs < g.target && g.receiving && g.empty > 1000000)
            return 1;
    }
    /* The last deletes (receive phase) are still out: let them finish. */
    for (int spins = 0; spins < 100; spins++) {
        int busy = 0;
        for (uint32_t i = 0; i < opt.inflight; i++)
            busy |= slots[i].busy;
        if (!busy)
            break;
        rpc_client_wait(g.client, 50);
    }
    report(name, &g.lat, g.done_msgs, now_ns() - t0, g.errors);
    for (int i = 0; i < 64; i++)
        if (g_status_count[i])
            printf("  %" PRIu64 " answered %s (retried)\n", g_status_count[i], status_name(i));
    memset(g_status_count, 0, sizeof g_status_count);
    return 0;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: cmq-storage-bench [options]\n"
            "  --storage EP[,EP...]  storage nodes' rpc endpoints (default: the dev cluster's,\n"
            "                        from CMQ_PORT_BASE, default 17100)\n"
            "  --partition N         partition to load (default 1)\n"
            "  --messages N          messages to send, then receive and delete (default 20000)\n"
            "  --size BYTES          body size, 1..1048576 (default 1024)\n"
            "  --batch N             messages per send / receive+delete, 1..16 (default 1)\n"
            "  --inflight N          requests outstanding, 1..%d (default 16)\n",
            INFLIGHT_MAX);
}

int main(int argc, char **argv)
{
    static char eps[ENDPOINTS_MAX][128];
    char *storage = NULL;
    static const struct option lo[] = {
        {"storage", required_argument, 0, 's'}, {"partition", required_argument, 0, 'p'},
        {"messages", required_argument, 0, 'm'}, {"size", required_argument, 0, 'z'},
        {"batch", required_argument, 0, 'b'},   {"inflight", required_argument, 0, 'i'},
        {"help", no_argument, 0, 'h'},          {0, 0, 0, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (c) {
        case 's': storage = optarg; break;
        case 'p': opt.partition = (uint32_t)strtoul(optarg, NULL, 10); break;
        case 'm': opt.messages = strtoull(optarg, NULL, 10); break;
        case 'z': opt.size = (uint32_t)strtoul(optarg, NULL, 10); break;
        case 'b': opt.batch = (uint32_t)strtoul(optarg, NULL, 10); break;
        case 'i': opt.inflight = (uint32_t)strtoul(optarg, NULL, 10); break;
        default: usage(); return 2;
        }
    }
    if (opt.size < 1 || opt.size > 1048576 || opt.batch < 1 || opt.batch > 16 ||
        opt.inflight < 1 || opt.inflight > INFLIGHT_MAX || opt.messages < opt.batch ||
        (uint64_t)opt.size * opt.batch > 1048576 || opt.partition == 0) {
        usage();
        return 2;
    }
    opt.messages -= opt.messages % opt.batch;
    if (storage) {
        for (char *tok = strtok(storage, ","); tok && opt.n_endpoints < ENDPOINTS_MAX;
             tok = strtok(NULL, ",")) {
            snprintf(eps[opt.n_endpoints], sizeof eps[0], "%s", tok);
            opt.endpoints[opt.n_endpoints] = eps[opt.n_endpoints];
            opt.n_endpoints++;
        }
    } else {
        const char *b = getenv("CMQ_PORT_BASE");
        int base = b ? atoi(b) : 17100;
        for (int i = 0; i < 3; i++) {
            snprintf(eps[i], sizeof eps[0], "tcp://127.0.0.1:%d", base + 20 + 2 * i);
            opt.endpoints[i] = eps[i];
        }
        opt.n_endpoints = 3;
    }
    void *zctx = zmq_ctx_new();
    int leader = find_leader(zctx);
    if (leader < 0) {
        fprintf(stderr, "cmq-storage-bench: no leader found for partition %u\n", opt.partition);
        return 1;
    }
    g_body = malloc(opt.size);
    for (uint32_t i = 0; i < opt.size; i++)
        g_body[i] = (uint8_t)('a' + i % 26);
    g_queue_id = (UINT64_C(1) << 62) | ((uint64_t)getpid() << 20) | (now_ns() & 0xfffff);
    cmq_StorageCreateQueueRequest cq = cmq_StorageCreateQueueRequest_init_zero;
    cq.queue_id = g_queue_id;
    snprintf(cq.name, sizeof cq.name, "storage-bench-%d", (int)getpid());
    cq.partition_id = opt.partition;
    cq.has_attributes = true;
    cq.attributes.has_max_msg_size = true;
    cq.attributes.max_msg_size = 1048576;
    cq.attributes.has_max_inflight_num = true;
    cq.attributes.max_inflight_num = 1000000;
    if (call_sync(zctx, opt.endpoints[leader], cmq_StorageMsgType_STORAGE_MSG_CREATE_QUEUE,
                  cmq_StorageCreateQueueRequest_fields, &cq) != CMQ_OK)
        return 1;
    printf("leader=%s partition=%u queue_id=%" PRIu64 " messages=%" PRIu64
           " size=%u batch=%u inflight=%u\n",
           opt.endpoints[leader], opt.partition, g_queue_id, opt.messages, opt.size, opt.batch,
           opt.inflight);
    const char *ep = opt.endpoints[leader];
    if (rpc_client_open(zctx, &ep, 1, &g.client) != CMQ_OK)
        return 1;
    int rc = warm_up() == CMQ_OK ? 0 : 1;
    if (rc == 0)
        rc = run_phase(0, "append");
    if (rc == 0)
        rc = run_phase(1, "receive+delete");
    rpc_client_close(g.client);
    cmq_StorageDropQueueRequest dq = cmq_StorageDropQueueRequest_init_zero;
    dq.queue_id = g_queue_id;
    call_sync(zctx, opt.endpoints[leader], cmq_StorageMsgType_STORAGE_MSG_DROP_QUEUE,
              cmq_StorageDropQueueRequest_fields, &dq);
    free(g.lat.ns);
    free(g_body);
    zmq_ctx_term(zctx);
    return rc;
}
