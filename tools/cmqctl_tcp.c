/* cmqctl_tcp.c: send / receive / delete / publish / bench over the CMQ TCP
 * protocol with libcmq (common/client/cmq.h).  Options follow the command;
 * credentials and the endpoint default to the environment that
 * `tools/cmq up` writes to var/dev/cluster.env (CMQ_TCP_ENDPOINT,
 * CMQ_SECRET_ID, CMQ_SECRET_KEY), or come from --env FILE. */
#include "cmqctl_tcp.h"

#include "cmq.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void cmqctl_tcp_usage(FILE *f)
{
    fprintf(f,
            "  send --queue Q --body TEXT [--body TEXT...] [--batch] [--delay S]\n"
            "  receive --queue Q [--num N] [--wait S] [--delete]\n"
            "  delete --queue Q --handle H [--handle H...]\n"
            "  publish --topic T --body TEXT [--body...] [--tag X...] [--routing-key K]\n"
            "  bench --queue Q [--size BYTES] [--batch N] [--seconds S] [--depth N]\n"
            "                                           CMQ TCP protocol (libcmq); common options:\n"
            "                                           --endpoint HOST:PORT --secret-id ID\n"
            "                                           --secret-key KEY --env FILE --sha256\n"
            "                                           --timeout-ms N (defaults: $CMQ_TCP_ENDPOINT,\n"
            "                                           $CMQ_SECRET_ID, $CMQ_SECRET_KEY)\n");
}

#define MAX_ITEMS 16

struct args {
    const char *endpoint, *secret_id, *secret_key, *queue, *topic, *routing_key;
    const char *bodies[MAX_ITEMS];
    size_t n_bodies;
    const char *tags[MAX_ITEMS];
    size_t n_tags;
    uint64_t handles[MAX_ITEMS];
    size_t n_handles;
    int batch, delay, num, wait, del, sha256, timeout_ms, size, seconds, depth;
};

static void load_env_file(const char *path)
{
    FILE *fp = fopen(path, "r");
    if (!fp) {
        fprintf(stderr, "cmqctl: cannot read %s\n", path);
        return;
    }
    char line[1024];
    while (fgets(line, sizeof line, fp)) {
        line[strcspn(line, "\r\n")] = 0;
        char *eq = strchr(line, '=');
        if (!eq || line[0] == '#')
            continue;
        *eq = 0;
        setenv(line, eq + 1, 0); /* the environment wins */
    }
    fclose(fp);
}

static int parse(int argc, char **argv, struct args *a)
{
    static const struct option opts[] = {
        {"endpoint", required_argument, NULL, 'e'}, {"secret-id", required_argument, NULL, 'i'},
        {"secret-key", required_argument, NULL, 'k'}, {"env", required_argument, NULL, 'E'},
        {"queue", required_argument, NULL, 'q'}, {"topic", required_argument, NULL, 'T'},
        {"body", required_argument, NULL, 'b'}, {"batch", optional_argument, NULL, 'B'},
        {"delay", required_argument, NULL, 'd'}, {"num", required_argument, NULL, 'n'},
        {"wait", required_argument, NULL, 'w'}, {"delete", no_argument, NULL, 'D'},
        {"handle", required_argument, NULL, 'H'}, {"tag", required_argument, NULL, 'g'},
        {"routing-key", required_argument, NULL, 'r'}, {"sha256", no_argument, NULL, 'S'},
        {"timeout-ms", required_argument, NULL, 't'}, {"size", required_argument, NULL, 'z'},
        {"seconds", required_argument, NULL, 's'}, {"depth", required_argument, NULL, 'p'},
        {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0},
    };
    memset(a, 0, sizeof *a);
    a->delay = -1;
    a->wait = -1;
    a->size = 1024;
    a->seconds = 10;
    a->depth = 64;
    a->batch = 0;
    optind = 1;
    int o;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (o) {
        case 'e': a->endpoint = optarg; break;
        case 'i': a->secret_id = optarg; break;
        case 'k': a->secret_key = optarg; break;
        case 'E': load_env_file(optarg); break;
        case 'q': a->queue = optarg; break;
        case 'T': a->topic = optarg; break;
        case 'b':
            if (a->n_bodies == MAX_ITEMS)
                return 2;
            a->bodies[a->n_bodies++] = optarg;
            break;
        case 'B': /* --batch (flag), --batch=N or --batch N */
            if (!optarg && optind < argc && argv[optind][0] >= '0' && argv[optind][0] <= '9')
                optarg = argv[optind++];
            a->batch = optarg ? atoi(optarg) : -1;
            break;
        case 'd': a->delay = atoi(optarg); break;
        case 'n': a->num = atoi(optarg); break;
        case 'w': a->wait = atoi(optarg); break;
        case 'D': a->del = 1; break;
        case 'H':
            if (a->n_handles == MAX_ITEMS)
                return 2;
            a->handles[a->n_handles++] = strtoull(optarg, NULL, 10);
            break;
        case 'g':
            if (a->n_tags == MAX_ITEMS)
                return 2;
            a->tags[a->n_tags++] = optarg;
            break;
        case 'r': a->routing_key = optarg; break;
        case 'S': a->sha256 = 1; break;
        case 't': a->timeout_ms = atoi(optarg); break;
        case 'z': a->size = atoi(optarg); break;
        case 's': a->seconds = atoi(optarg); break;
        case 'p': a->depth = atoi(optarg); break;
        case 'h': cmqctl_tcp_usage(stdout); return 0;
        default: return 2;
        }
    }
    if (!a->endpoint)
        a->endpoint = getenv("CMQ_TCP_ENDPOINT");
    if (!a->secret_id)
        a->secret_id = getenv("CMQ_SECRET_ID");
    if (!a->secret_key)
        a->secret_key = getenv("CMQ_SECRET_KEY");
    if (!a->endpoint || !a->secret_id || !a->secret_key) {
        fprintf(stderr, "cmqctl: need --endpoint, --secret-id and --secret-key (or the "
                        "CMQ_TCP_ENDPOINT / CMQ_SECRET_ID / CMQ_SECRET_KEY environment)\n");
        return 2;
    }
    return -1;
}

static struct cmq_client *connect_to(const struct args *a)
{
    char host[256];
    const char *colon = strrchr(a->endpoint, ':');
    if (!colon || (size_t)(colon - a->endpoint) >= sizeof host) {
        fprintf(stderr, "cmqctl: --endpoint must be HOST:PORT\n");
        return NULL;
    }
    memcpy(host, a->endpoint, (size_t)(colon - a->endpoint));
    host[colon - a->endpoint] = 0;
    struct cmq_client_opts o = {.host = host, .port = (unsigned)atoi(colon + 1),
                                .secret_id = a->secret_id, .secret_key = a->secret_key,
                                .hmac_sha256 = a->sha256, .timeout_ms = a->timeout_ms};
    struct cmq_client *c;
    char err[256];
    if (cmq_connect(&o, &c, err, sizeof err) != 0) {
        fprintf(stderr, "cmqctl: %s\n", err);
        return NULL;
    }
    return c;
}

static int report(const char *what, const struct cmq_result *r)
{
    if (r->code == 0)
        return 0;
    fprintf(stderr, "cmqctl: %s: code=%d error=\"%s\"\n", what, r->code, r->error);
    return 1;
}

static int cmd_send(struct args *a, struct cmq_client *c)
{
    if (!a->queue || a->n_bodies == 0) {
        fprintf(stderr, "cmqctl send: need --queue and --body\n");
        return 2;
    }
    size_t lens[MAX_ITEMS];
    for (size_t i = 0; i < a->n_bodies; i++)
        lens[i] = strlen(a->bodies[i]);
    struct cmq_result r;
    if (a->n_bodies == 1 && !a->batch)
        cmq_send(c, a->queue, a->bodies[0], lens[0], a->delay, &r);
    else
        cmq_send_batch(c, a->queue, (const void *const *)a->bodies, lens, a->n_bodies, a->delay, &r);
    if (report("send", &r))
        return 1;
    for (size_t i = 0; i < r.n_msg_ids; i++)
        printf("msgId=%" PRIu64 "\n", r.msg_ids[i]);
    return 0;
}

static int cmd_receive(struct args *a, struct cmq_client *c)
{
    if (!a->queue) {
        fprintf(stderr, "cmqctl receive: need --queue\n");
        return 2;
    }
    struct cmq_result r;
    cmq_pull(c, a->queue, a->num, a->wait, &r);
    if (r.code == 10200) {
        printf("no message\n");
        return 0;
    }
    if (report("receive", &r))
        return 1;
    uint64_t handles[CMQ_CLIENT_BATCH_MAX];
    for (size_t i = 0; i < r.n_msgs; i++) {
        printf("msgId=%" PRIu64 " receiptHandle=%" PRIu64 " dequeueCount=%" PRId64 " body=%.*s\n",
               r.msgs[i].msg_id, r.msgs[i].receipt_handle, r.msgs[i].dequeue_count,
               (int)r.msgs[i].body_len, (const char *)r.msgs[i].body);
        handles[i] = r.msgs[i].receipt_handle;
    }
    size_t n = r.n_msgs;
    cmq_result_free(&r);
    if (a->del && n) {
        cmq_delete(c, a->queue, handles, n, &r);
        return report("delete", &r);
    }
    return 0;
}

static int cmd_delete(struct args *a, struct cmq_client *c)
{
    if (!a->queue || a->n_handles == 0) {
        fprintf(stderr, "cmqctl delete: need --queue and --handle\n");
        return 2;
    }
    struct cmq_result r;
    cmq_delete(c, a->queue, a->handles, a->n_handles, &r);
    for (size_t i = 0; i < r.n_failed; i++)
        fprintf(stderr, "receiptHandle=%" PRIu64 " code=%d error=\"%s\"\n",
                r.failed[i].receipt_handle, r.failed[i].code, r.failed[i].error);
    return report("delete", &r);
}

static void on_publish(void *arg, const struct cmq_result *r)
{
    *(struct cmq_result *)arg = *r;
}

static int cmd_publish(struct args *a, struct cmq_client *c)
{
    if (!a->topic || a->n_bodies == 0) {
        fprintf(stderr, "cmqctl publish: need --topic and --body\n");
        return 2;
    }
    struct cmq_result r;
    if (a->n_bodies == 1 && !a->batch) {
        cmq_publish(c, a->topic, a->bodies[0], strlen(a->bodies[0]), a->tags, a->n_tags,
                    a->routing_key, &r);
    } else {
        size_t lens[MAX_ITEMS];
        for (size_t i = 0; i < a->n_bodies; i++)
            lens[i] = strlen(a->bodies[i]);
        memset(&r, 0, sizeof r);
        r.code = 1 << 30;
        int rc = cmq_publish_async(c, a->topic, (const void *const *)a->bodies, lens, a->n_bodies, 1,
                                   a->tags, a->n_tags, a->routing_key, on_publish, &r);
        if (rc != 0)
            r.code = rc;
        while (rc == 0 && r.code == 1 << 30 && cmq_poll(c, 1000) >= 0) {
        }
    }
    if (report("publish", &r))
        return 1;
    for (size_t i = 0; i < r.n_msg_ids; i++)
        printf("msgId=%" PRIu64 "\n", r.msg_ids[i]);
    return 0;
}

/* ---------- bench ---------- */

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

struct bench {
    struct cmq_client *c;
    const struct args *a;
    const void *bodies[CMQ_CLIENT_BATCH_MAX];
    size_t lens[CMQ_CLIENT_BATCH_MAX];
    size_t batch;
    uint64_t *lat;
    size_t n_lat, cap_lat;
    uint64_t msgs, reqs, errors, stop_us;
    int inflight;
    /* drain */
    uint64_t drained;
    int empty;
};

struct bench_req {
    struct bench *b;
    uint64_t t0;
};

static void on_sent(void *arg, const struct cmq_result *r);

static int bench_issue(struct bench *b)
{
    struct bench_req *q = malloc(sizeof *q);
    if (!q)
        return -1;
    q->b = b;
    q->t0 = now_us();
    int rc = cmq_send_async(b->c, b->a->queue, b->bodies, b->lens, b->batch, b->batch > 1, -1,
                            on_sent, q);
    if (rc != 0) {
        free(q);
        return rc;
    }
    b->inflight++;
    return 0;
}

static void on_sent(void *arg, const struct cmq_result *r)
{
    struct bench_req *q = arg;
    struct bench *b = q->b;
    b->inflight--;
    if (r->code == 0) {
        b->reqs++;
        b->msgs += r->n_msg_ids;
        if (b->n_lat == b->cap_lat) {
            b->cap_lat = b->cap_lat ? b->cap_lat * 2 : 65536;
            b->lat = realloc(b->lat, b->cap_lat * sizeof *b->lat);
        }
        if (b->lat)
            b->lat[b->n_lat++] = now_us() - q->t0;
    } else if (b->errors++ < 5) {
        fprintf(stderr, "cmqctl bench: send: code=%d error=\"%s\"\n", r->code, r->error);
    }
    free(q);
}

static int cmp_u64(const void *x, const void *y)
{
    uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
    return a < b ? -1 : a > b;
}

static void on_drained(void *arg, const struct cmq_result *r);

static void on_deleted(void *arg, const struct cmq_result *r)
{
    struct bench *b = arg;
    b->inflight--;
    if (r->code != 0 && b->errors++ < 5)
        fprintf(stderr, "cmqctl bench: delete: code=%d error=\"%s\"\n", r->code, r->error);
}

static void on_drained(void *arg, const struct cmq_result *r)
{
    struct bench *b = arg;
    b->inflight--;
    if (r->code == 10200 || (r->code == 0 && r->n_msgs == 0)) {
        b->empty = 1;
        return;
    }
    if (r->code != 0) {
        if (b->errors++ < 5)
            fprintf(stderr, "cmqctl bench: pull: code=%d error=\"%s\"\n", r->code, r->error);
        b->empty = 1;
        return;
    }
    uint64_t h[CMQ_CLIENT_BATCH_MAX];
    for (size_t i = 0; i < r->n_msgs; i++)
        h[i] = r->msgs[i].receipt_handle;
    b->drained += r->n_msgs;
    if (cmq_delete_async(b->c, b->a->queue, h, r->n_msgs, 1, on_deleted, b) == 0)
        b->inflight++;
}

static int cmd_bench(struct args *a, struct cmq_client *c)
{
    if (!a->queue) {
        fprintf(stderr, "cmqctl bench: need --queue\n");
        return 2;
    }
    struct bench b = {.c = c, .a = a};
    b.batch = a->batch > 0 ? (size_t)a->batch : 1;
    if (b.batch > CMQ_CLIENT_BATCH_MAX || a->size <= 0 || a->depth <= 0) {
        fprintf(stderr, "cmqctl bench: --batch 1..16, --size > 0, --depth > 0\n");
        return 2;
    }
    char *body = malloc((size_t)a->size);
    for (int i = 0; i < a->size; i++)
        body[i] = (char)('a' + i % 26);
    for (size_t i = 0; i < b.batch; i++) {
        b.bodies[i] = body;
        b.lens[i] = (size_t)a->size;
    }
    uint64_t t0 = now_us();
    b.stop_us = t0 + (uint64_t)a->seconds * 1000000u;
    while (now_us() < b.stop_us) {
        while (b.inflight < a->depth && bench_issue(&b) == 0) {
        }
        if (cmq_poll(c, 100) < 0)
            break;
    }
    while (b.inflight > 0 && cmq_poll(c, 1000) >= 0) {
    }
    double secs = (double)(now_us() - t0) / 1e6;
    qsort(b.lat, b.n_lat, sizeof *b.lat, cmp_u64);
    double p50 = b.n_lat ? (double)b.lat[b.n_lat / 2] / 1000.0 : 0;
    double p99 = b.n_lat ? (double)b.lat[(b.n_lat * 99) / 100] / 1000.0 : 0;
    printf("bench send: size=%d batch=%zu depth=%d seconds=%.1f requests=%" PRIu64
           " messages=%" PRIu64 " errors=%" PRIu64 "\n",
           a->size, b.batch, a->depth, secs, b.reqs, b.msgs, b.errors);
    printf("  %.0f msg/s  %.0f req/s  %.1f MiB/s  latency p50=%.2f ms p99=%.2f ms\n",
           (double)b.msgs / secs, (double)b.reqs / secs,
           (double)b.msgs * a->size / secs / (1 << 20), p50, p99);
    /* drain what was sent: batch pull 16 + batch delete, pipelined */
    uint64_t d0 = now_us();
    while (!b.empty) {
        while (!b.empty && b.inflight < a->depth && cmq_pull_async(c, a->queue, 16, 0, on_drained, &b) == 0)
            b.inflight++;
        if (cmq_poll(c, 100) < 0)
            break;
    }
    while (b.inflight > 0 && cmq_poll(c, 1000) >= 0) {
    }
    double dsecs = (double)(now_us() - d0) / 1e6;
    printf("bench receive+delete (batch 16): messages=%" PRIu64 " seconds=%.1f  %.0f msg/s\n",
           b.drained, dsecs, dsecs > 0 ? (double)b.drained / dsecs : 0);
    free(b.lat);
    free(body);
    return b.errors ? 1 : 0;
}

int cmqctl_tcp_dispatch(int argc, char **argv, int *rc)
{
    int (*fn)(struct args *, struct cmq_client *) = NULL;
    const char *cmd = argv[0];
    if (strcmp(cmd, "send") == 0)
        fn = cmd_send;
    else if (strcmp(cmd, "receive") == 0)
        fn = cmd_receive;
    else if (strcmp(cmd, "delete") == 0)
        fn = cmd_delete;
    else if (strcmp(cmd, "publish") == 0)
        fn = cmd_publish;
    else if (strcmp(cmd, "bench") == 0)
        fn = cmd_bench;
    else
        return 0;
    struct args a;
    int p = parse(argc, argv, &a);
    if (p >= 0) {
        if (p == 2)
            cmqctl_tcp_usage(stderr);
        *rc = p;
        return 1;
    }
    struct cmq_client *c = connect_to(&a);
    if (!c) {
        *rc = 1;
        return 1;
    }
    *rc = fn(&a, c);
    cmq_close(c);
    return 1;
}
