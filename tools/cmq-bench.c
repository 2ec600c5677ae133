/* cmq-bench: an HTTP load generator for the CMQ JSON API.
 *
 * N connections (one thread each, HTTP/1.1 keep-alive, blocking sockets),
 * every request signed like an SDK (gwapi's sign_client_request), for a
 * bounded run (--seconds and/or --requests).  While it runs it prints a
 * progress line every second; at the end, throughput and latency
 * percentiles (p50, p90, p99, p99.9, max) over every answered request, and
 * the CMQ codes of the answers that were not code 0 (with one message each),
 * so an operation the server does not serve yet reports what it got.
 *
 * Operations: list-queue (ListQueue), send (SendMessage), batch-send
 * (BatchSendMessage of --batch bodies), receive-delete (ReceiveMessage with
 * pollingWaitSeconds=0, then DeleteMessage of what it got; one operation).
 * The message operations create --queue first (an existing one is fine).
 *
 * Targets: only loopback addresses unless --allow-remote, so a typo cannot
 * load someone else's server.  Endpoint and key default to
 * CMQ_HTTP_ENDPOINT / CMQ_SECRET_ID / CMQ_SECRET_KEY from the environment,
 * else from var/dev/cluster.env (or --env FILE).
 *
 * Memory is bounded: each thread keeps at most SAMPLES_MAX latencies (later
 * ones are counted but not kept, and the report says so).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "params.h"
#include "sign.h"
#include "status.h"

#define CONNS_MAX 1024
#define SECONDS_MAX 3600
#define BATCH_MAX 16
#define BODY_MAX (1u << 20)
#define SAMPLES_MAX (4u << 20) /* per thread: at most 16 MiB of uint32 microseconds */
#define RESP_MAX (4u << 20)
#define CODES_MAX 16

enum op { OP_LIST_QUEUE, OP_SEND, OP_BATCH_SEND, OP_RECEIVE_DELETE };
static const char *const op_names[] = {"list-queue", "send", "batch-send", "receive-delete"};

struct opts {
    char ip[128];
    unsigned port;
    char host[160]; /* signed and sent as Host: ip:port */
    char secret_id[80], secret_key[80];
    enum op op;
    unsigned conns;
    unsigned seconds;
    uint64_t requests; /* 0 = no count bound */
    char queue[65];
    size_t size;
    unsigned batch;
    bool sha256;
    bool allow_remote;
};

struct code_count {
    int code;
    uint64_t n;
    char message[120];
};

struct worker {
    pthread_t th;
    unsigned id;
    const struct opts *o;
    int fd;
    uint64_t nonce;
    char *resp;
    size_t resp_cap;
    uint32_t *samples; /* grows by doubling up to SAMPLES_MAX */
    size_t n_samples, samples_cap;
    _Atomic uint64_t done;     /* operations answered */
    _Atomic uint64_t ok;       /* ... with code 0 (receive-delete: a message received) */
    _Atomic uint64_t messages; /* messages sent / received+deleted */
    _Atomic uint64_t empty;    /* receive-delete: 7000 no message */
    uint64_t transport_errors;
    struct code_count codes[CODES_MAX];
    size_t n_codes;
};

static _Atomic int g_stop;
static _Atomic uint64_t g_issued; /* operations started (for --requests) */
static char *g_body;              /* --size bytes of message body */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* ---------- HTTP over one keep-alive connection ---------- */

static int conn_open(struct worker *w)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)w->o->port)};
    inet_pton(AF_INET, w->o->ip, &sa.sin_addr);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct timeval tv = {.tv_sec = 45};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        close(fd);
        return -1;
    }
    w->fd = fd;
    return 0;
}

static void conn_close(struct worker *w)
{
    if (w->fd >= 0)
        close(w->fd);
    w->fd = -1;
}

static int send_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t r = send(fd, p, n, MSG_NOSIGNAL);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

/* POSTs `body`; on success the JSON body is NUL-terminated at *json.
 * 0, or -1 (the connection is closed; the caller may retry once). */
static int post(struct worker *w, const char *body, size_t len, char **json)
{
    if (w->fd < 0 && conn_open(w) < 0)
        return -1;
    char head[256];
    int hl = snprintf(head, sizeof head,
                      "POST /v2/index.php HTTP/1.1\r\nHost: %s\r\nConnection: keep-alive\r\n"
                      "Content-Type: application/x-www-form-urlencoded\r\n"
                      "Content-Length: %zu\r\n\r\n",
                      w->o->host, len);
    if (send_all(w->fd, head, (size_t)hl) < 0 || send_all(w->fd, body, len) < 0)
        goto fail;
    size_t have = 0, need = 0, hlen = 0;
    bool chunked = false;
    for (;;) {
        if (have + 1 >= w->resp_cap)
            goto fail;
        ssize_t r = recv(w->fd, w->resp + have, w->resp_cap - have - 1, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            goto fail;
        have += (size_t)r;
        w->resp[have] = '\0';
        if (!hlen) {
            char *e = strstr(w->resp, "\r\n\r\n");
            if (!e)
                continue;
            hlen = (size_t)(e - w->resp) + 4;
            *e = '\0'; /* search the headers only */
            char *cl = strcasestr(w->resp, "\r\ncontent-length:");
            char *te = strcasestr(w->resp, "\r\ntransfer-encoding:");
            *e = '\r';
            if (cl) {
                need = hlen + strtoul(cl + 17, NULL, 10);
                if (need >= w->resp_cap)
                    goto fail;
            } else if (te && strncasecmp(te + 20 + strspn(te + 20, " "), "chunked", 7) == 0) {
                chunked = true;
            } else {
                goto fail;
            }
        }
        if (!chunked && have >= need)
            break;
        if (chunked) {
            /* Walk the chunks received so far; decode in place when the last
             * (zero-size) chunk and its CRLF are in. */
            size_t pos = hlen, out = hlen;
            bool complete = false;
            for (;;) {
                char *eol = strstr(w->resp + pos, "\r\n");
                if (!eol)
                    break;
                size_t n = strtoul(w->resp + pos, NULL, 16);
                size_t data = (size_t)(eol - w->resp) + 2;
                if (n == 0) {
                    complete = have >= data + 2;
                    break;
                }
                if (have < data + n + 2)
                    break;
                pos = data + n + 2;
            }
            if (!complete)
                continue;
            pos = hlen;
            for (;;) {
                char *eol = strstr(w->resp + pos, "\r\n");
                size_t n = strtoul(w->resp + pos, NULL, 16);
                size_t data = (size_t)(eol - w->resp) + 2;
                if (n == 0)
                    break;
                memmove(w->resp + out, w->resp + data, n);
                out += n;
                pos = data + n + 2;
            }
            need = out;
            break;
        }
    }
    if (strncmp(w->resp, "HTTP/1.1 200", 12) != 0 && strncmp(w->resp, "HTTP/1.0 200", 12) != 0)
        goto fail;
    w->resp[need] = '\0';
    *json = w->resp + hlen;
    return 0;
fail:
    conn_close(w);
    return -1;
}

/* ---------- requests ---------- */

/* Signs and encodes Action plus `kv` (n pairs) into a malloc'd body. */
static char *build(struct worker *w, const char *action, const char *const *kv, size_t n,
                   size_t *len)
{
    struct params *p = params_create();
    if (!p)
        return NULL;
    char num[32];
    int ok = params_add(p, "Action", action, strlen(action), NULL) == CMQ_OK;
    snprintf(num, sizeof num, "%llu", (unsigned long long)(++w->nonce % 2147483647u));
    ok &= params_add(p, "Nonce", num, strlen(num), NULL) == CMQ_OK;
    ok &= params_add(p, "RequestClient", "cmq-bench", 9, NULL) == CMQ_OK;
    ok &= params_add(p, "SecretId", w->o->secret_id, strlen(w->o->secret_id), NULL) == CMQ_OK;
    snprintf(num, sizeof num, "%lld", (long long)time(NULL));
    ok &= params_add(p, "Timestamp", num, strlen(num), NULL) == CMQ_OK;
    for (size_t i = 0; i + 1 < 2 * n; i += 2)
        ok &= params_add(p, kv[i], kv[i + 1], strlen(kv[i + 1]), NULL) == CMQ_OK;
    ok &= sign_client_request(p, "POST", w->o->host, "/v2/index.php",
                              w->o->sha256 ? SIGN_HMAC_SHA256 : SIGN_HMAC_SHA1, w->o->secret_key,
                              strlen(w->o->secret_key), NULL) == CMQ_OK;
    char *out = NULL;
    if (ok) {
        *len = params_encode(p, NULL, 0);
        out = malloc(*len + 1);
        if (out)
            params_encode(p, out, *len + 1);
    }
    params_destroy(p);
    return out;
}

/* The answer's "code", or INT32_MIN when there is none. */
static int json_code(const char *j)
{
    const char *c = strstr(j, "\"code\":");
    return c ? (int)strtol(c + 7, NULL, 10) : INT32_MIN;
}

/* Copies the value of string member `key` (escapes left as they are). */
static void json_str(const char *j, const char *key, char *out, size_t cap)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":\"", key);
    const char *s = strstr(j, pat);
    out[0] = '\0';
    if (!s)
        return;
    s += strlen(pat);
    size_t n = 0;
    while (s[n] && s[n] != '"' && n + 1 < cap) {
        if (s[n] == '\\' && s[n + 1])
            n++;
        n++;
    }
    snprintf(out, cap, "%.*s", (int)n, s);
}

static void count_code(struct worker *w, int code, const char *json)
{
    for (size_t i = 0; i < w->n_codes; i++)
        if (w->codes[i].code == code) {
            w->codes[i].n++;
            return;
        }
    if (w->n_codes < CODES_MAX) {
        struct code_count *c = &w->codes[w->n_codes++];
        c->code = code;
        c->n = 1;
        json_str(json, "message", c->message, sizeof c->message);
    }
}

/* One request; the answer's code (INT32_MIN after a transport failure). */
static int call(struct worker *w, const char *action, const char *const *kv, size_t n,
                char **json)
{
    size_t len;
    char *body = build(w, action, kv, n, &len);
    if (!body)
        return INT32_MIN;
    int rc = post(w, body, len, json);
    if (rc < 0)
        rc = post(w, body, len, json); /* a closed keep-alive connection: once more */
    free(body);
    if (rc < 0) {
        w->transport_errors++;
        return INT32_MIN;
    }
    return json_code(*json);
}

/* One operation of the chosen kind.  Returns its final code. */
static int one_op(struct worker *w)
{
    const struct opts *o = w->o;
    char *json = NULL;
    int code = INT32_MIN;
    switch (o->op) {
    case OP_LIST_QUEUE: {
        code = call(w, "ListQueue", NULL, 0, &json);
        break;
    }
    case OP_SEND: {
        const char *kv[] = {"queueName", o->queue, "msgBody", g_body, "delaySeconds", "0"};
        code = call(w, "SendMessage", kv, 3, &json);
        if (code == 0)
            w->messages++;
        break;
    }
    case OP_BATCH_SEND: {
        const char *kv[2 + 2 * BATCH_MAX];
        char names[BATCH_MAX][24];
        size_t n = 0;
        kv[n++] = "queueName";
        kv[n++] = o->queue;
        for (unsigned i = 0; i < o->batch; i++) {
            snprintf(names[i], sizeof names[i], "msgBody.%u", i + 1);
            kv[n++] = names[i];
            kv[n++] = g_body;
        }
        code = call(w, "BatchSendMessage", kv, n / 2, &json);
        if (code == 0)
            w->messages += o->batch;
        break;
    }
    case OP_RECEIVE_DELETE: {
        const char *kv[] = {"queueName", o->queue, "pollingWaitSeconds", "0"};
        code = call(w, "ReceiveMessage", kv, 2, &json);
        if (code == 7000) {
            w->empty++;
            return code;
        }
        if (code != 0)
            break;
        char handle[128];
        json_str(json, "receiptHandle", handle, sizeof handle);
        const char *dkv[] = {"queueName", o->queue, "receiptHandle", handle};
        code = call(w, "DeleteMessage", dkv, 2, &json);
        if (code == 0)
            w->messages++;
        break;
    }
    }
    if (code != 0 && code != INT32_MIN)
        count_code(w, code, json);
    return code;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    while (!atomic_load(&g_stop)) {
        if (w->o->requests && atomic_fetch_add(&g_issued, 1) >= w->o->requests)
            break;
        uint64_t t0 = now_us();
        int code = one_op(w);
        uint64_t dt = now_us() - t0;
        if (code == INT32_MIN) {
            usleep(10000); /* the server is gone or refusing: do not spin */
            continue;
        }
        if (w->n_samples == w->samples_cap && w->samples_cap < SAMPLES_MAX) {
            uint32_t *p = realloc(w->samples, 2 * w->samples_cap * sizeof *p);
            if (p) {
                w->samples = p;
                w->samples_cap *= 2;
            }
        }
        if (w->n_samples < w->samples_cap)
            w->samples[w->n_samples++] = dt > UINT32_MAX ? UINT32_MAX : (uint32_t)dt;
        if (code == 0)
            w->ok++;
        w->done++;
    }
    return NULL;
}

/* ---------- configuration ---------- */

/* KEY=VALUE from `path` into out (when not set yet). */
static void env_file(const char *path, const char *key, char *out, size_t cap)
{
    if (out[0])
        return;
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    char line[512];
    size_t kl = strlen(key);
    while (fgets(line, sizeof line, f))
        if (strncmp(line, key, kl) == 0 && line[kl] == '=') {
            line[strcspn(line, "\r\n")] = '\0';
            snprintf(out, cap, "%s", line + kl + 1);
            break;
        }
    fclose(f);
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: cmq-bench [options]\n"
            "  --op OP             list-queue (default), send, batch-send, receive-delete\n"
            "  --connections N     concurrent keep-alive connections, 1..%d (default 16)\n"
            "  --seconds S         run time bound, 1..%d (default 10)\n"
            "  --requests N        stop after N operations (default: time bound only)\n"
            "  --queue NAME        queue for message operations (default cmq-bench)\n"
            "  --size BYTES        message body size, 1..%u (default 1024)\n"
            "  --batch N           bodies per batch-send, 1..%d (default 16)\n"
            "  --sha256            sign with HmacSHA256 (default HmacSHA1)\n"
            "  --endpoint URL      http://IP:PORT (default CMQ_HTTP_ENDPOINT)\n"
            "  --secret-id ID --secret-key KEY   (default CMQ_SECRET_ID / CMQ_SECRET_KEY)\n"
            "  --env FILE          where defaults come from (default var/dev/cluster.env)\n"
            "  --allow-remote      allow a non-loopback endpoint\n"
            "Prints a progress line each second, then throughput and p50/p90/p99/p99.9/max\n"
            "latency over every answered operation, and the codes of non-0 answers.\n",
            CONNS_MAX, SECONDS_MAX, BODY_MAX, BATCH_MAX);
}

static int parse_uint(const char *s, unsigned long long min, unsigned long long max,
                      unsigned long long *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || end == s || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

static int parse_opts(int argc, char **argv, struct opts *o)
{
    static const struct option longs[] = {
        {"op", 1, 0, 'o'},          {"connections", 1, 0, 'c'}, {"seconds", 1, 0, 's'},
        {"requests", 1, 0, 'n'},    {"queue", 1, 0, 'q'},       {"size", 1, 0, 'z'},
        {"batch", 1, 0, 'b'},       {"sha256", 0, 0, '2'},      {"endpoint", 1, 0, 'e'},
        {"secret-id", 1, 0, 'i'},   {"secret-key", 1, 0, 'k'},  {"env", 1, 0, 'f'},
        {"allow-remote", 0, 0, 'r'}, {"help", 0, 0, 'h'},       {0, 0, 0, 0}};
    char endpoint[160] = "", env_path[512] = "var/dev/cluster.env";
    unsigned long long v;
    memset(o, 0, sizeof *o);
    o->conns = 16;
    o->seconds = 10;
    o->size = 1024;
    o->batch = 16;
    snprintf(o->queue, sizeof o->queue, "cmq-bench");
    int ch;
    while ((ch = getopt_long(argc, argv, "h", longs, NULL)) != -1) {
        switch (ch) {
        case 'o': {
            size_t i;
            for (i = 0; i < 4 && strcmp(optarg, op_names[i]) != 0; i++)
                ;
            if (i == 4) {
                fprintf(stderr, "cmq-bench: unknown --op %s\n", optarg);
                return -1;
            }
            o->op = (enum op)i;
            break;
        }
        case 'c':
            if (parse_uint(optarg, 1, CONNS_MAX, &v))
                goto bad;
            o->conns = (unsigned)v;
            break;
        case 's':
            if (parse_uint(optarg, 1, SECONDS_MAX, &v))
                goto bad;
            o->seconds = (unsigned)v;
            break;
        case 'n':
            if (parse_uint(optarg, 1, UINT64_MAX / 2, &v))
                goto bad;
            o->requests = v;
            break;
        case 'q': snprintf(o->queue, sizeof o->queue, "%s", optarg); break;
        case 'z':
            if (parse_uint(optarg, 1, BODY_MAX, &v))
                goto bad;
            o->size = (size_t)v;
            break;
        case 'b':
            if (parse_uint(optarg, 1, BATCH_MAX, &v))
                goto bad;
            o->batch = (unsigned)v;
            break;
        case '2': o->sha256 = true; break;
        case 'e': snprintf(endpoint, sizeof endpoint, "%s", optarg); break;
        case 'i': snprintf(o->secret_id, sizeof o->secret_id, "%s", optarg); break;
        case 'k': snprintf(o->secret_key, sizeof o->secret_key, "%s", optarg); break;
        case 'f': snprintf(env_path, sizeof env_path, "%s", optarg); break;
        case 'r': o->allow_remote = true; break;
        case 'h': usage(stdout); exit(0);
        default: usage(stderr); return -1;
        }
        continue;
    bad:
        fprintf(stderr, "cmq-bench: bad value '%s' (see --help for the ranges)\n", optarg);
        return -1;
    }
    const char *e;
    if (!endpoint[0] && (e = getenv("CMQ_HTTP_ENDPOINT")))
        snprintf(endpoint, sizeof endpoint, "%s", e);
    if (!o->secret_id[0] && (e = getenv("CMQ_SECRET_ID")))
        snprintf(o->secret_id, sizeof o->secret_id, "%s", e);
    if (!o->secret_key[0] && (e = getenv("CMQ_SECRET_KEY")))
        snprintf(o->secret_key, sizeof o->secret_key, "%s", e);
    env_file(env_path, "CMQ_HTTP_ENDPOINT", endpoint, sizeof endpoint);
    env_file(env_path, "CMQ_SECRET_ID", o->secret_id, sizeof o->secret_id);
    env_file(env_path, "CMQ_SECRET_KEY", o->secret_key, sizeof o->secret_key);
    char host[128];
    if (!endpoint[0] || sscanf(endpoint, "http://%127[^:/]:%u", host, &o->port) != 2) {
        fprintf(stderr, "cmq-bench: need --endpoint http://IP:PORT (or CMQ_HTTP_ENDPOINT, or %s)\n",
                env_path);
        return -1;
    }
    if (!o->secret_id[0] || !o->secret_key[0]) {
        fprintf(stderr, "cmq-bench: need --secret-id and --secret-key (or %s)\n", env_path);
        return -1;
    }
    if (strcmp(host, "localhost") == 0)
        snprintf(host, sizeof host, "127.0.0.1");
    struct in_addr a;
    if (inet_pton(AF_INET, host, &a) != 1) {
        fprintf(stderr, "cmq-bench: the endpoint host must be an IPv4 address (%s)\n", host);
        return -1;
    }
    if (!o->allow_remote && (ntohl(a.s_addr) >> 24) != 127) {
        fprintf(stderr, "cmq-bench: %s is not a loopback address; pass --allow-remote to load it\n",
                host);
        return -1;
    }
    snprintf(o->ip, sizeof o->ip, "%s", host);
    snprintf(o->host, sizeof o->host, "%s:%u", host, o->port);
    return 0;
}

/* ---------- report ---------- */

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static double pct_ms(const uint32_t *s, size_t n, double p)
{
    if (!n)
        return 0;
    size_t i = (size_t)(p / 100.0 * (double)(n - 1) + 0.5);
    return s[i < n ? i : n - 1] / 1000.0;
}

int main(int argc, char **argv)
{
    struct opts o;
    if (parse_opts(argc, argv, &o))
        return 2;
    g_body = malloc(o.size + 1);
    struct worker *ws = calloc(o.conns, sizeof *ws);
    if (!g_body || !ws)
        return 1;
    for (size_t i = 0; i < o.size; i++)
        g_body[i] = (char)('a' + i % 26);
    g_body[o.size] = '\0';

    for (unsigned i = 0; i < o.conns; i++) {
        struct worker *w = &ws[i];
        w->id = i;
        w->o = &o;
        w->fd = -1;
        w->nonce = ((uint64_t)getpid() << 24) ^ ((uint64_t)i << 40) ^ now_us();
        w->resp_cap = RESP_MAX;
        w->resp = malloc(w->resp_cap);
        w->samples_cap = 65536;
        w->samples = malloc(w->samples_cap * sizeof *w->samples);
        if (!w->resp || !w->samples) {
            fprintf(stderr, "cmq-bench: out of memory for %u connections\n", o.conns);
            return 1;
        }
    }
    if (o.op != OP_LIST_QUEUE) {
        /* Make sure the queue exists; an existing one (4460) is fine. */
        char *json;
        const char *kv[] = {"queueName", o.queue, "maxMsgSize", "1048576"};
        int code = call(&ws[0], "CreateQueue", kv, 2, &json);
        if (code == INT32_MIN) {
            fprintf(stderr, "cmq-bench: no answer from %s\n", o.host);
            return 1;
        }
        if (code != 0 && code != 4460)
            fprintf(stderr, "cmq-bench: CreateQueue %s answered %d; going on\n", o.queue, code);
    }
    fprintf(stderr, "cmq-bench: op=%s connections=%u seconds=%u requests=%llu target=%s\n",
            op_names[o.op], o.conns, o.seconds, (unsigned long long)o.requests, o.host);
    double t0 = now_s();
    for (unsigned i = 0; i < o.conns; i++)
        if (pthread_create(&ws[i].th, NULL, worker_main, &ws[i]) != 0) {
            fprintf(stderr, "cmq-bench: cannot start thread %u\n", i);
            atomic_store(&g_stop, 1);
            o.conns = i;
            break;
        }
    bool tty = isatty(2);
    uint64_t last = 0;
    double last_t = t0;
    for (;;) {
        usleep(100000);
        double t = now_s();
        uint64_t done = 0, ok = 0;
        for (unsigned i = 0; i < o.conns; i++) {
            done += atomic_load(&ws[i].done);
            ok += atomic_load(&ws[i].ok);
        }
        bool finished = t - t0 >= o.seconds || (o.requests && done >= o.requests);
        if (t - last_t >= 1.0 || finished) {
            fprintf(stderr, "%s[%6.1fs] %llu ops (%llu ok)  %.0f ops/s%s", tty ? "\r" : "",
                    t - t0, (unsigned long long)done, (unsigned long long)ok,
                    (double)(done - last) / (t - last_t), tty ? "   " : "\n");
            last = done;
            last_t = t;
        }
        if (finished)
            break;
    }
    atomic_store(&g_stop, 1);
    for (unsigned i = 0; i < o.conns; i++)
        pthread_join(ws[i].th, NULL);
    double elapsed = now_s() - t0;
    if (tty)
        fprintf(stderr, "\n");

    uint64_t done = 0, ok = 0, msgs = 0, empty = 0, terr = 0;
    size_t n = 0;
    for (unsigned i = 0; i < o.conns; i++) {
        done += ws[i].done;
        ok += ws[i].ok;
        msgs += ws[i].messages;
        empty += ws[i].empty;
        terr += ws[i].transport_errors;
        n += ws[i].n_samples;
    }
    uint32_t *all = malloc((n ? n : 1) * sizeof *all);
    if (!all)
        return 1;
    size_t k = 0;
    for (unsigned i = 0; i < o.conns; i++) {
        memcpy(all + k, ws[i].samples, ws[i].n_samples * sizeof *all);
        k += ws[i].n_samples;
    }
    qsort(all, n, sizeof *all, cmp_u32);
    printf("op=%s connections=%u elapsed=%.2fs signature=%s\n", op_names[o.op], o.conns, elapsed,
           o.sha256 ? "HmacSHA256" : "HmacSHA1");
    if (o.op == OP_BATCH_SEND)
        printf("queue=%s body=%zu bytes batch=%u\n", o.queue, o.size, o.batch);
    else if (o.op != OP_LIST_QUEUE)
        printf("queue=%s body=%zu bytes\n", o.queue, o.size);
    printf("operations: %llu answered, %llu code 0, %llu transport errors\n",
           (unsigned long long)done, (unsigned long long)ok, (unsigned long long)terr);
    printf("throughput: %.0f ops/s", (double)done / elapsed);
    if (o.op != OP_LIST_QUEUE)
        printf(", %.0f messages/s (%llu messages)", (double)msgs / elapsed,
               (unsigned long long)msgs);
    if (o.op == OP_RECEIVE_DELETE)
        printf(", %llu empty receives", (unsigned long long)empty);
    printf("\nlatency ms: p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.3f  (%zu samples%s)\n",
           pct_ms(all, n, 50), pct_ms(all, n, 90), pct_ms(all, n, 99), pct_ms(all, n, 99.9),
           n ? all[n - 1] / 1000.0 : 0.0, n, n < done ? ", capped" : "");
    /* Merge the per-thread code tables. */
    struct code_count codes[CODES_MAX];
    size_t nc = 0;
    for (unsigned i = 0; i < o.conns; i++)
        for (size_t j = 0; j < ws[i].n_codes; j++) {
            size_t c;
            for (c = 0; c < nc && codes[c].code != ws[i].codes[j].code; c++)
                ;
            if (c == nc && nc < CODES_MAX)
                codes[nc++] = ws[i].codes[j];
            else if (c < nc)
                codes[c].n += ws[i].codes[j].n;
        }
    for (size_t c = 0; c < nc; c++)
        printf("answers with code %d: %llu (e.g. \"%s\")\n", codes[c].code,
               (unsigned long long)codes[c].n, codes[c].message);
    for (unsigned i = 0; i < o.conns; i++) {
        conn_close(&ws[i]);
        free(ws[i].resp);
        free(ws[i].samples);
    }
    free(ws);
    free(all);
    free(g_body);
    /* Success: something was answered and every answer was code 0 (or, for
     * receive-delete, 7000 "no message"). */
    return done > 0 && ok + empty == done ? 0 : 1;
}
