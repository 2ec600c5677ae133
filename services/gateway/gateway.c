/* gateway.c: h2o server, listeners, ZeroMQ integration and /healthz.
 *
 * ZeroMQ sockets join h2o's loop through their ZMQ_FD: each is dup()ed (h2o
 * closes the fds it owns; ZeroMQ must keep its own) and watched with
 * H2O_SOCKET_FLAG_DONT_READ.  Because ZMQ_FD is edge-triggered, every rpc
 * object is also processed once per loop iteration before h2o waits.
 *
 * A request that waits on the back end keeps its state in a heap object and
 * holds a token in the request's memory pool; if the client goes away, the
 * pool's dispose clears the back-pointer so a late reply touches nothing.
 */
#include "gateway.h"
#include "gateway_internal.h"
#include "call.h"
#include "push.h"
#include "push.pb.h"

#include "clock.h"
#include "cmq_limits.h"
#include "envelope.pb.h"
#include "keycache.h"
#include "qcache.h"
#include "metadata.pb.h"
#include "storage.pb.h"
#include "log.h"
#include "status.h"
#include "tcp/tcp_server.h" /* tcp: CMQ TCP protocol listener */

#include <errno.h>
#include <fcntl.h>
#include <h2o.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zmq.h>
#include <arpa/inet.h>

const struct config_key gateway_config_keys[] = {
    SVC_COMMON_KEYS(struct gateway_cfg, "gateway", "tcp://127.0.0.1:17150"),
    CONFIG_STR_KEY("http.listen", struct gateway_cfg, http_listen, "127.0.0.1:18080",
                   "host:port for the CMQ HTTP API"),
    CONFIG_STR_KEY("https.listen", struct gateway_cfg, https_listen, "",
                   "host:port for HTTPS (HTTP/1.1 and HTTP/2); empty disables"),
    CONFIG_STR_KEY("https.cert", struct gateway_cfg, tls_cert, "", "PEM certificate chain file"),
    CONFIG_STR_KEY("https.key", struct gateway_cfg, tls_key, "", "PEM private key file"),
    CONFIG_STR_KEY("tcp.listen", struct gateway_cfg, tcp_listen, "",
                   "host:port for the CMQ TCP protocol; empty disables"),
    /* CMQ TCP protocol (services/gateway/tcp/, docs/tcp-protocol.md) */
    CONFIG_INT_KEY("tcp.max_connections", struct gateway_cfg, tcp_max_connections, "10000", 1,
                   1000000, "TCP connections per event loop; more are closed at accept"),
    CONFIG_INT_KEY("tcp.max_inflight", struct gateway_cfg, tcp_max_inflight, "1024", 1, 65535,
                   "requests in flight per TCP connection; more are answered 4480"),
    CONFIG_INT_KEY("tcp.idle_timeout_ms", struct gateway_cfg, tcp_idle_timeout_ms, "60000", 1000,
                   86400000, "close a TCP connection idle this long (clients beat every 3 s)"),
    CONFIG_INT_KEY("tcp.max_frame_bytes", struct gateway_cfg, tcp_max_frame_bytes, "17891328",
                   1024, 0x7fffffff, "largest TCP frame accepted (header included)"),
    CONFIG_STR_KEY("tcp.advertise", struct gateway_cfg, tcp_advertise, "",
                   "comma-separated host:port list QueryQueueRoute/QueryTopicRoute answer; "
                   "empty: tcp.listen (0.0.0.0 as 127.0.0.1)"),
    CONFIG_STR_KEY("metadata.endpoint", struct gateway_cfg, metadata, "tcp://127.0.0.1:17100",
                   "the metadata service"),
    CONFIG_STR_KEY("metadata.pub_endpoint", struct gateway_cfg, metadata_pub,
                   "tcp://127.0.0.1:17101",
                   "metadata's change events (PUB); empty: caches expire by time only"),
    CONFIG_STR_KEY("scheduler.endpoint", struct gateway_cfg, scheduler,
                   "tcp://127.0.0.1:17110", "the scheduler service"),
    CONFIG_STR_KEY("storage.endpoints", struct gateway_cfg, storage, "tcp://127.0.0.1:17120",
                   "comma-separated storage node endpoints"),
    CONFIG_INT_KEY("health.timeout_ms", struct gateway_cfg, health_timeout_ms, "1000", 10,
                   60000, "how long /healthz waits for each service"),
    CONFIG_INT_KEY("http.max_body_bytes", struct gateway_cfg, max_body_bytes, "4194304", 1024,
                   64 << 20, "largest request body h2o reads; the API itself answers 4000/10420 "
                   "above 2 MiB"),
    CONFIG_INT_KEY("gateway.max_delay_seconds", struct gateway_cfg, max_delay_s, "3600", 0,
                   CMQ_DELAY_S_CAP_MAX, "longest delaySeconds accepted over HTTP and TCP (the "
                   "spec's 3600 s by default; at most the 7 days storage supports)"),
    CONFIG_INT_KEY("gateway.threads", struct gateway_cfg, threads, "0", 0, GATEWAY_LOOPS_MAX,
                   "event loops, one thread each; 0: one per online CPU"),
    CONFIG_BOOL_KEY("send.coalesce", struct gateway_cfg, send_coalesce, "true",
                    "group the sends to one queue made in one loop turn into one storage append"),
    CONFIG_STR_KEY("push.ca_file", struct gateway_cfg, push_ca_file, "",
                   "PEM file of CA certificates trusted for https:// subscription endpoints, "
                   "besides the system's; empty: the system's only"),
    CONFIG_BOOL_KEY("push.verify", struct gateway_cfg, push_verify, "true",
                    "verify https:// endpoints' certificates and host names (false: encrypt "
                    "without authenticating the endpoint)"),
};
const size_t gateway_config_n_keys = sizeof gateway_config_keys / sizeof gateway_config_keys[0];

static volatile sig_atomic_t stop_signal;

static void on_stop_signal(int signo) { stop_signal = signo; }

/* ---------- listeners ---------- */

static int parse_hostport(const char *s, struct sockaddr_in *sa)
{
    char host[64];
    const char *colon = strrchr(s, ':');
    if (!colon || (size_t)(colon - s) >= sizeof host)
        return -1;
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = '\0';
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || port <= 0 || port > 65535)
        return -1;
    memset(sa, 0, sizeof *sa);
    sa->sin_family = AF_INET;
    sa->sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host[0] ? host : "0.0.0.0", &sa->sin_addr) != 1)
        return -1;
    return 0;
}

static void on_accept(h2o_socket_t *listener, const char *err)
{
    if (err)
        return;
    h2o_socket_t *sock = h2o_evloop_socket_accept(listener);
    if (sock)
        h2o_accept(listener->data, sock);
}

/* Loop 0 binds and listens; every other loop watches a dup() of the same
 * listening socket in its own epoll and accepts from it (a shared listener:
 * no SO_REUSEPORT, so a port taken by anyone stays an error). */
static int open_listener(struct gateway *gw, struct listener *l, const char *addr, SSL_CTX *ssl)
{
    struct sockaddr_in sa;
    if (parse_hostport(addr, &sa) != 0) {
        log_error("listen_failed", "addr=%s reason=\"not host:port\"", addr);
        return CMQ_EINVAL;
    }
    int fd;
    if (gw->main != gw) {
        const struct listener *ml = l == &gw->http ? &gw->main->http : &gw->main->https;
        fd = fcntl(h2o_socket_get_fd(ml->sock), F_DUPFD_CLOEXEC, 0);
        if (fd < 0)
            return status_from_errno(errno);
    } else {
        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        int one = 1;
        if (fd < 0)
            return status_from_errno(errno);
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(fd, SOMAXCONN) != 0) {
            int e = errno;
            log_error("listen_failed", "addr=%s reason=\"%s\"", addr, strerror(e));
            close(fd);
            return e == EADDRINUSE ? CMQ_EBUSY : status_from_errno(e);
        }
    }
    snprintf(l->addr, sizeof l->addr, "%s", addr);
    l->port = ntohs(sa.sin_port);
    l->accept.ctx = &gw->ctx;
    l->accept.hosts = gw->main->h2o_config.hosts;
    l->accept.ssl_ctx = ssl;
    l->sock = h2o_evloop_socket_create(gw->loop, fd, H2O_SOCKET_FLAG_DONT_READ);
    l->sock->data = &l->accept;
    h2o_socket_read_start(l->sock, on_accept);
    return CMQ_OK;
}

static void close_listener(struct listener *l)
{
    if (!l->sock)
        return;
    h2o_socket_read_stop(l->sock);
    h2o_socket_close(l->sock);
    l->sock = NULL;
}

static SSL_CTX *open_tls(const struct gateway_cfg *cfg)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx)
        return NULL;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    if (SSL_CTX_use_certificate_chain_file(ctx, cfg->tls_cert) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, cfg->tls_key, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
        char buf[256];
        ERR_error_string_n(ERR_get_error(), buf, sizeof buf);
        log_error("tls_failed", "cert=%s key=%s reason=\"%s\"", cfg->tls_cert, cfg->tls_key, buf);
        SSL_CTX_free(ctx);
        return NULL;
    }
    h2o_ssl_register_alpn_protocols(ctx, h2o_http2_alpn_protocols);
    return ctx;
}

/* ---------- ZeroMQ in the h2o loop ---------- */

static void process_events(struct gateway *gw);

static void process_rpc(struct gateway *gw)
{
    process_events(gw);
    if (gw->server)
        rpc_server_process(gw->server);
    if (gw->storage)
        rpc_client_process(gw->storage);
    for (int i = 0; i < gw->n_backends; i++)
        rpc_client_process(gw->backends[i].client);
}

/* Metadata change events: [kind][MetaEvent].  A key event drops the key from
 * the cache, so a disabled key stops working at once rather than at its TTL. */
static void process_events(struct gateway *gw)
{
    for (int budget = 256; gw->events && budget > 0; budget--) {
        int ev = 0;
        size_t evlen = sizeof ev;
        if (zmq_getsockopt(gw->events, ZMQ_EVENTS, &ev, &evlen) != 0 || !(ev & ZMQ_POLLIN))
            return;
        char kind[64];
        int n = zmq_recv(gw->events, kind, sizeof kind - 1, ZMQ_DONTWAIT);
        if (n < 0)
            return;
        kind[n < (int)sizeof kind - 1 ? n : (int)sizeof kind - 1] = '\0';
        int more = 0;
        size_t mlen = sizeof more;
        zmq_getsockopt(gw->events, ZMQ_RCVMORE, &more, &mlen);
        if (!more)
            continue;
        zmq_msg_t body;
        zmq_msg_init(&body);
        cmq_MetaEvent me = cmq_MetaEvent_init_zero;
        if (zmq_msg_recv(&body, gw->events, ZMQ_DONTWAIT) >= 0 &&
            rpc_pb_decode(cmq_MetaEvent_fields, &me, zmq_msg_data(&body), zmq_msg_size(&body)) ==
                CMQ_OK) {
            if (strncmp(kind, "key.", 4) == 0 && me.id[0]) {
                keycache_forget(gw->be.keys, me.id);
                log_info("key_cache_dropped", "kind=%s secret_id=%s", kind, me.id);
            } else if (strncmp(kind, "queue.", 6) == 0 && me.name[0]) {
                qcache_forget(gw->be.queues, me.appid, me.name);
            }
        }
        while (zmq_msg_more(&body)) { /* skip unexpected extra frames */
            zmq_msg_close(&body);
            zmq_msg_init(&body);
            if (zmq_msg_recv(&body, gw->events, ZMQ_DONTWAIT) < 0)
                break;
        }
        zmq_msg_close(&body);
    }
}

static void on_zmq_ready(h2o_socket_t *sock, const char *err)
{
    (void)err;
    struct zwatch *w = sock->data;
    process_rpc(w->gw);
}

static int watch_fd(struct gateway *gw, int zfd)
{
    if (gw->n_watches == (int)(sizeof gw->watches / sizeof gw->watches[0]))
        return CMQ_ELIMIT;
    int fd = dup(zfd);
    if (fd < 0)
        return status_from_errno(errno);
    struct zwatch *w = &gw->watches[gw->n_watches++];
    w->gw = gw;
    w->sock = h2o_evloop_socket_create(gw->loop, fd, H2O_SOCKET_FLAG_DONT_READ);
    w->sock->data = w;
    h2o_socket_read_start(w->sock, on_zmq_ready);
    return CMQ_OK;
}

static void health_rpc(struct rpc_server *srv, struct rpc_call *call, void *arg)
{
    (void)srv;
    struct gateway *gw = arg;
    if (rpc_call_request(call)->type == cmq_PushMsgType_PUSH_MSG_HTTP) {
        push_handle(gw, call); /* topic pushes (push.c) */
        return;
    }
    if (rpc_call_request(call)->type == cmq_PushMsgType_PUSH_MSG_TXN_QUERY) {
        struct tcp_server *sv[GATEWAY_LOOPS_MAX]; /* transaction check-backs (tcp_txn.c) */
        int k = 0;
        for (int i = 0; i < gw->n_loops; i++)
            if (gw->loops[i]->tcp)
                sv[k++] = gw->loops[i]->tcp;
        tcp_txn_rpc(sv, k, call);
        return;
    }
    if (rpc_call_request(call)->type != cmq_MsgType_MSG_HEALTH) {
        rpc_reply_status(call, CMQ_EUNSUPPORTED, "gateway answers health only");
        return;
    }
    cmq_HealthReply r = cmq_HealthReply_init_zero;
    snprintf(r.service, sizeof r.service, "gateway");
    snprintf(r.node_id, sizeof r.node_id, "%s", gw->cfg.common.node_id);
    snprintf(r.version, sizeof r.version, "%s", CMQ_VERSION);
    r.uptime_ms = clock_mono_ms() - gw->started_ms;
    uint64_t inflight = 0;
    for (int i = 0; i < gw->n_loops; i++) {
        r.requests += __atomic_load_n(&gw->loops[i]->requests, __ATOMIC_RELAXED);
        inflight += __atomic_load_n(&gw->loops[i]->inflight, __ATOMIC_RELAXED);
    }
    r.pid = (uint32_t)getpid();
    snprintf(r.detail, sizeof r.detail, "http=%s https=%s inflight=%llu loops=%d",
             gw->cfg.http_listen, gw->cfg.https_listen[0] ? gw->cfg.https_listen : "off",
             (unsigned long long)inflight, gw->n_loops);
    rpc_reply_pb(call, cmq_HealthReply_fields, &r);
}

static int add_backend(struct gateway *gw, const char *name, const char *endpoint)
{
    struct backend *b = &gw->backends[gw->n_backends];
    snprintf(b->name, sizeof b->name, "%s", name);
    int rc = rpc_client_open(gw->zctx, &endpoint, 1, &b->client);
    if (rc != CMQ_OK) {
        log_error("backend_failed", "name=%s endpoint=%s status=%s", name, endpoint,
                  status_name(rc));
        return rc;
    }
    gw->n_backends++;
    return watch_fd(gw, rpc_client_fd(b->client, 0));
}

/* ---------- /healthz ---------- */

struct healthz {
    int waiting;
    char up[GATEWAY_MAX_STORAGE + 2];
    char names[GATEWAY_MAX_STORAGE + 2][64];
    /* what a storage node reports degraded ("partition=3 reason=..."), or "" */
    char degraded[GATEWAY_MAX_STORAGE + 2][160];
};

/* Copies what follows "health=degraded " in a service's detail line (only
 * [a-z0-9_= ] survive: it goes into JSON). */
static void healthz_degraded(const char *detail, char *out, size_t cap)
{
    const char *d = strstr(detail, "health=degraded");
    out[0] = '\0';
    if (!d)
        return;
    d += strlen("health=degraded");
    while (*d == ' ')
        d++;
    size_t n = 0;
    for (; *d && n + 1 < cap; d++)
        if ((*d >= 'a' && *d <= 'z') || (*d >= '0' && *d <= '9') || *d == '_' || *d == '=' ||
            *d == ' ')
            out[n++] = *d;
    out[n] = '\0';
    if (!n)
        snprintf(out, cap, "degraded");
}

static void healthz_respond(struct gw_call *c)
{
    struct gateway *gw = gw_call_gateway(c);
    struct healthz *hz = gw_call_data(c);
    char body[4096];
    int all = 1, deg = 0;
    size_t n = (size_t)snprintf(body, sizeof body, "{\"services\":{\"gateway\":\"up\"");
    for (int i = 0; i < gw->n_backends; i++) {
        all &= hz->up[i];
        deg |= hz->up[i] && hz->degraded[i][0];
        n += (size_t)snprintf(body + n, sizeof body - n, ",\"%s\":\"%s\"", hz->names[i],
                              !hz->up[i] ? "down" : hz->degraded[i][0] ? "degraded" : "up");
    }
    n += (size_t)snprintf(body + n, sizeof body - n, "}");
    if (deg) {
        /* which partitions, and why (storage's health line: node.c detail) */
        n += (size_t)snprintf(body + n, sizeof body - n, ",\"degraded\":{");
        int first = 1;
        for (int i = 0; i < gw->n_backends && n < sizeof body; i++)
            if (hz->up[i] && hz->degraded[i][0]) {
                n += (size_t)snprintf(body + n, sizeof body - n, "%s\"%s\":\"%s\"",
                                      first ? "" : ",", hz->names[i], hz->degraded[i]);
                first = 0;
            }
        if (n < sizeof body)
            n += (size_t)snprintf(body + n, sizeof body - n, "}");
    }
    all &= !deg;
    if (n < sizeof body)
        n += (size_t)snprintf(body + n, sizeof body - n, ",\"status\":\"%s\"}\n",
                              all ? "ok" : "degraded");
    if (n >= sizeof body)
        n = sizeof body - 1;
    gw_call_respond(c, all ? 200 : 503, "application/json", body, n);
}

static void healthz_done(struct gw_call *c, int index, int status, const struct rpc_msg *msg)
{
    struct healthz *hz = gw_call_data(c);
    if (status == CMQ_OK && msg) {
        cmq_HealthReply r = cmq_HealthReply_init_zero;
        if (rpc_pb_decode(cmq_HealthReply_fields, &r, msg->body, msg->body_len) == CMQ_OK) {
            hz->up[index] = 1;
            healthz_degraded(r.detail, hz->degraded[index], sizeof hz->degraded[index]);
            if (r.node_id[0])
                snprintf(hz->names[index], sizeof hz->names[index], "%s", r.node_id);
        }
    }
    if (--hz->waiting == 0)
        healthz_respond(c);
}

static int on_healthz(h2o_handler_t *self, h2o_req_t *req)
{
    (void)self;
    struct gateway *gw = gateway_of_req(req);
    __atomic_fetch_add(&gw->requests, 1, __ATOMIC_RELAXED);
    struct gw_call *c = gw_call_begin(gw, req, sizeof(struct healthz));
    if (!c)
        return -1;
    struct healthz *hz = gw_call_data(c);
    struct rpc_opts opts = {.timeout_ms = (int)gw->cfg.health_timeout_ms, .attempts = 1, .peer = 0};
    cmq_HealthRequest hr = cmq_HealthRequest_init_zero;
    /* Hold across the loop so a synchronous failure cannot free the call. */
    gw_call_hold(c);
    for (int i = 0; i < gw->n_backends; i++) {
        snprintf(hz->names[i], sizeof hz->names[i], "%s", gw->backends[i].name);
        if (gw_call_backend(c, i, cmq_MsgType_MSG_HEALTH, cmq_HealthRequest_fields, &hr, &opts,
                            healthz_done, i) == CMQ_OK)
            hz->waiting++;
    }
    if (hz->waiting == 0)
        healthz_respond(c);
    gw_call_release(c);
    return 0;
}

/* ---------- /metrics ---------- */

#define METRICS_STATS_TIMEOUT_MS 1000

struct metrics_scrape {
    int waiting;
    size_t n;
    struct metrics_queue qs[METRICS_QUEUES_MAX];
};

static void metrics_respond(struct gw_call *c)
{
    struct gateway *gw = gw_call_gateway(c);
    struct metrics_scrape *ms = gw_call_data(c);
    const struct gateway *m = gw->main;
    const struct gw_metrics *loops[GATEWAY_LOOPS_MAX];
    uint64_t inflight = 0;
    for (int i = 0; i < m->n_loops; i++) {
        struct gateway *l = m->loops[i];
        for (int r = 0; r < RPC_RESEND_REASONS_ && l->storage; r++)
            __atomic_store_n(&l->metrics.storage_resends[r],
                             rpc_client_resends(l->storage, (enum rpc_resend_reason)r),
                             __ATOMIC_RELAXED);
        loops[i] = &l->metrics;
        inflight += __atomic_load_n(&l->inflight, __ATOMIC_RELAXED);
    }
    size_t len;
    char *page = metrics_render(loops, (size_t)m->n_loops, inflight, ms->qs, ms->n, &len);
    if (!page) {
        gw_call_respond(c, 503, "text/plain", "out of memory\n", 14);
        return;
    }
    gw_call_respond(c, 200, "text/plain; version=0.0.4; charset=utf-8", page, len);
    free(page);
}

static void metrics_stats_done(struct gw_call *c, int i, int status, const struct rpc_msg *msg)
{
    struct gateway *gw = gw_call_gateway(c);
    struct metrics_scrape *ms = gw_call_data(c);
    cmq_QueueStatsReply r = cmq_QueueStatsReply_init_zero;
    if (status == CMQ_OK && msg &&
        rpc_pb_decode(cmq_QueueStatsReply_fields, &r, msg->body, msg->body_len) == CMQ_OK) {
        struct metrics_queue *q = &ms->qs[i];
        q->active = r.active_msg_num;
        q->inactive = r.inactive_msg_num;
        q->delayed = r.delay_msg_num;
        q->stats_ms = clock_mono_ms();
        metrics_queue_stats(gw->mqueues, q->num_id, q->active, q->inactive, q->delayed,
                            q->stats_ms);
        be_peer_note(&gw->be, q->partition, gw_call_last_peer(c));
    }
    if (--ms->waiting == 0)
        metrics_respond(c);
}

/* Answers from the counters; queue counts older than METRICS_QUEUE_STATS_MS
 * are asked of storage first (in parallel, bounded by the table's size and a
 * 1 s timeout). */
static int on_metrics(h2o_handler_t *self, h2o_req_t *req)
{
    (void)self;
    struct gateway *gw = gateway_of_req(req);
    struct gw_call *c = gw_call_begin(gw, req, sizeof(struct metrics_scrape));
    if (!c)
        return -1;
    struct metrics_scrape *ms = gw_call_data(c);
    ms->n = metrics_queues_snapshot(gw->mqueues, ms->qs);
    uint64_t now = clock_mono_ms();
    gw_call_hold(c);
    for (size_t i = 0; i < ms->n && gw->storage; i++) {
        struct metrics_queue *q = &ms->qs[i];
        if (q->stats_ms && now - q->stats_ms < METRICS_QUEUE_STATS_MS)
            continue;
        cmq_QueueStatsRequest r = cmq_QueueStatsRequest_init_zero;
        r.queue_id = q->num_id;
        uint8_t *body;
        size_t len;
        if (rpc_pb_encode(cmq_QueueStatsRequest_fields, &r, &body, &len) != CMQ_OK)
            continue;
        struct rpc_opts opts = {
            .timeout_ms = METRICS_STATS_TIMEOUT_MS,
            .attempts = 2,
            .peer = be_peer_of(&gw->be, q->partition),
        };
        if (gw_call_client(c, gw->storage, cmq_StorageMsgType_STORAGE_MSG_QUEUE_STATS, body, len,
                           &opts, metrics_stats_done, (int)i) == CMQ_OK)
            ms->waiting++;
        free(body);
    }
    if (ms->waiting == 0)
        metrics_respond(c);
    gw_call_release(c);
    return 0;
}

/* Handlers find their loop from the request (gateway_of_req). */
static void register_handler(h2o_hostconf_t *host, const char *path,
                             int (*fn)(h2o_handler_t *, h2o_req_t *))
{
    h2o_pathconf_t *pc = h2o_config_register_path(host, path, 0);
    h2o_handler_t *h = h2o_create_handler(pc, sizeof *h);
    h->on_req = fn;
}

/* ---------- lifecycle ---------- */

/* Per-loop hooks.  Whatever else serves clients on every event loop attaches
 * here: loop_hooks_open runs once per loop, in the opening thread before the
 * loop's own thread starts, with the loop's h2o loop (gw->loop) and context
 * (gw->ctx); loop_hooks_close runs when the loop is closed.  The CMQ TCP
 * listener (services/gateway/tcp/) is meant to be called from here; a hook
 * must not share ZeroMQ sockets between loops. */
static int loop_hooks_open(struct gateway *gw)
{
    const struct gateway_cfg *cfg = &gw->cfg;
    /* tcp: the CMQ TCP protocol listener on this loop (tcp/tcp_server.h; the
     * first loop binds, the others accept on dup()s). */
    if (cfg->tcp_listen[0]) {
        struct tcp_env env = {.loop = gw->loop, .be = &gw->be};
        struct tcp_limits lim = {.max_conns = (int)cfg->tcp_max_connections,
                                 .max_inflight = (int)cfg->tcp_max_inflight,
                                 .idle_ms = (int)cfg->tcp_idle_timeout_ms,
                                 .max_frame = (uint32_t)cfg->tcp_max_frame_bytes,
                                 .max_delay_s = cfg->max_delay_s};
        snprintf(lim.listen, sizeof lim.listen, "%s", cfg->tcp_listen);
        int rc = tcp_server_open(&env, &lim, &gw->tcp);
        if (rc != CMQ_OK)
            return rc;
    }
    return CMQ_OK;
}

static void loop_hooks_close(struct gateway *gw)
{
    tcp_server_close(gw->tcp); /* tcp */
    gw->tcp = NULL;
}

/* Opens one loop's h2o context, ZeroMQ sockets, caches and listeners (see
 * struct gateway).  `host` is given for loop 0 only (it registers the API). */
static int loop_open(struct gateway *gw, h2o_hostconf_t *host)
{
    const struct gateway_cfg *cfg = &gw->cfg;
    struct gateway *m = gw->main;
    gw->started_ms = clock_mono_ms();
    gw->mqueues = m->mqueues;
    gw->zctx = m->zctx;
    if (api_open(gw, host) != CMQ_OK)
        return CMQ_ENOMEM;
    gw->loop = h2o_evloop_create();
    h2o_context_init(&gw->ctx, gw->loop, &m->h2o_config);

    int rc;
    if (gw == m) {
        rc = rpc_server_open(gw->zctx, cfg->common.listen, health_rpc, gw, &gw->server);
        if (rc != CMQ_OK) {
            log_error("listen_failed", "endpoint=%s status=%s", cfg->common.listen,
                      status_name(rc));
            return rc;
        }
        if ((rc = watch_fd(gw, rpc_server_fd(gw->server))) != CMQ_OK)
            return rc;
    }
    if ((rc = add_backend(gw, "metadata", cfg->metadata)) != CMQ_OK ||
        (rc = add_backend(gw, "scheduler", cfg->scheduler)) != CMQ_OK)
        return rc;
    char list[sizeof cfg->storage];
    memcpy(list, cfg->storage, sizeof list);
    int idx = 0;
    const char *eps[GATEWAY_MAX_STORAGE];
    for (char *save, *ep = strtok_r(list, ",", &save); ep; ep = strtok_r(NULL, ",", &save)) {
        while (*ep == ' ')
            ep++;
        if (idx < GATEWAY_MAX_STORAGE)
            eps[idx] = ep;
        if (idx == GATEWAY_MAX_STORAGE) {
            log_error("config_failed", "key=storage.endpoints reason=\"more than %d\"",
                      GATEWAY_MAX_STORAGE);
            return CMQ_ELIMIT;
        }
        char name[32];
        snprintf(name, sizeof name, "storage-%d", ++idx);
        if ((rc = add_backend(gw, name, ep)) != CMQ_OK)
            return rc;
    }
    if (idx == 0) {
        log_error("config_failed", "key=storage.endpoints reason=\"no storage node\"");
        return CMQ_EINVAL;
    }
    if ((rc = rpc_client_open(gw->zctx, eps, idx, &gw->storage)) != CMQ_OK)
        return rc;
    if ((rc = be_loop_init(&gw->be, gw->backends[GW_BACKEND_METADATA].client, gw->storage,
                           &gw->metrics, gw->mqueues, cfg->send_coalesce)) != CMQ_OK)
        return rc;
    for (int i = 0; i < idx; i++) {
        if ((rc = watch_fd(gw, rpc_client_fd(gw->storage, i))) != CMQ_OK)
            return rc;
        /* a storage node that dies wakes the loop: its requests go elsewhere */
        int mfd = rpc_client_monitor_fd(gw->storage, i);
        if (mfd >= 0 && (rc = watch_fd(gw, mfd)) != CMQ_OK)
            return rc;
    }
    if (cfg->metadata_pub[0]) {
        gw->events = zmq_socket(gw->zctx, ZMQ_SUB);
        int linger = 0;
        if (!gw->events)
            return CMQ_EINTERNAL;
        zmq_setsockopt(gw->events, ZMQ_LINGER, &linger, sizeof linger);
        zmq_setsockopt(gw->events, ZMQ_SUBSCRIBE, "key.", 4);
        zmq_setsockopt(gw->events, ZMQ_SUBSCRIBE, "queue.", 6);
        if (zmq_connect(gw->events, cfg->metadata_pub) != 0) {
            log_error("config_failed", "key=metadata.pub_endpoint endpoint=%s", cfg->metadata_pub);
            return CMQ_EINVAL;
        }
        int efd;
        size_t efd_len = sizeof efd;
        zmq_getsockopt(gw->events, ZMQ_FD, &efd, &efd_len);
        if ((rc = watch_fd(gw, efd)) != CMQ_OK)
            return rc;
    }
    if ((rc = open_listener(gw, &gw->http, cfg->http_listen, NULL)) != CMQ_OK)
        return rc;
    if (m->ssl && (rc = open_listener(gw, &gw->https, cfg->https_listen, m->ssl)) != CMQ_OK)
        return rc;
    return loop_hooks_open(gw);
}

static int loop_count(const struct gateway_cfg *cfg)
{
    long n = cfg->threads > 0 ? (long)cfg->threads : sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1)
        n = 1;
    return n > GATEWAY_LOOPS_MAX ? GATEWAY_LOOPS_MAX : (int)n;
}

int gateway_open(const struct gateway_cfg *cfg, struct gateway **out)
{
    struct gateway *gw = calloc(1, sizeof *gw);
    if (!gw)
        return CMQ_ENOMEM;
    gw->main = gw;
    gw->cfg = *cfg;
    gw->loops[gw->n_loops++] = gw;
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = {.sa_handler = on_stop_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    metrics_init();
    gw->mqueues = calloc(1, sizeof *gw->mqueues);
    if (!gw->mqueues || metrics_queues_init(gw->mqueues) != 0) {
        free(gw->mqueues);
        free(gw);
        return CMQ_ENOMEM;
    }
    h2o_config_init(&gw->h2o_config);
    gw->h2o_config.max_request_entity_size = (size_t)cfg->max_body_bytes;
    h2o_hostconf_t *host =
        h2o_config_register_host(&gw->h2o_config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    register_handler(host, "/healthz", on_healthz);
    register_handler(host, "/metrics", on_metrics);

    int rc = CMQ_OK;
    gw->zctx = zmq_ctx_new();
    if (!gw->zctx) {
        rc = CMQ_EINTERNAL;
        goto fail;
    }
    if (cfg->https_listen[0] && !(gw->ssl = open_tls(cfg))) {
        rc = CMQ_EINVAL;
        goto fail;
    }
    if ((rc = loop_open(gw, host)) != CMQ_OK)
        goto fail;
    for (int i = 1, n = loop_count(cfg); i < n; i++) {
        struct gateway *l = calloc(1, sizeof *l);
        if (!l) {
            rc = CMQ_ENOMEM;
            goto fail;
        }
        l->main = gw;
        l->index = i;
        l->cfg = *cfg;
        gw->loops[gw->n_loops++] = l;
        if ((rc = loop_open(l, NULL)) != CMQ_OK)
            goto fail;
    }
    log_info("start", "service=gateway version=%s pid=%d http=%s https=%s tcp=%s rpc=%s loops=%d",
             CMQ_VERSION, (int)getpid(), cfg->http_listen,
             cfg->https_listen[0] ? cfg->https_listen : "off",
             cfg->tcp_listen[0] ? cfg->tcp_listen : "off", cfg->common.listen, gw->n_loops);
    *out = gw;
    return CMQ_OK;
fail:
    gateway_close(gw);
    return rc;
}

static int connections_closed(struct gateway *gw)
{
    return h2o_linklist_is_empty(&gw->ctx.http1._conns) &&
           h2o_linklist_is_empty(&gw->ctx.http2._conns);
}

/* True when no h2o timer of the context is pending: h2o_context_dispose
 * asserts that every one is empty. */
static int timers_idle(h2o_context_t *ctx)
{
    h2o_timeout_t *const all[] = {&ctx->zero_timeout, &ctx->one_sec_timeout,
                                  &ctx->hundred_ms_timeout, &ctx->handshake_timeout,
                                  &ctx->http1.req_timeout, &ctx->http2.idle_timeout,
                                  &ctx->http2.graceful_shutdown_timeout, &ctx->proxy.io_timeout};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (!h2o_linklist_is_empty(&all[i]->_entries))
            return 0;
    return 1;
}

/* One loop until the stop signal and its drain. */
static int loop_run(struct gateway *gw)
{
    uint64_t deadline = 0;
    for (;;) {
        process_rpc(gw);
        if (stop_signal && !deadline) {
            log_info("stopping", "loop=%d signo=%d grace_ms=%lld inflight=%llu", gw->index,
                     (int)stop_signal, (long long)gw->cfg.common.stop_grace_ms,
                     (unsigned long long)gw->inflight);
            close_listener(&gw->http);
            close_listener(&gw->https);
            tcp_server_drain(gw->tcp); /* tcp */
            /* HTTP/2 connections get GOAWAY; idle keep-alive connections are
             * closed by letting their idle timers expire at once. */
            h2o_context_request_shutdown(&gw->ctx);
            gw->ctx.http1.req_timeout.timeout = 0;
            gw->ctx.http2.idle_timeout.timeout = 0;
            deadline = clock_mono_ms() + (uint64_t)gw->cfg.common.stop_grace_ms;
        }
        if (deadline) {
            if (gw->inflight == 0 && connections_closed(gw) &&
                tcp_server_inflight(gw->tcp) == 0 /* tcp */) {
                log_info("stop", "loop=%d reason=idle", gw->index);
                break;
            }
            if (clock_mono_ms() >= deadline) {
                log_warn("stop", "loop=%d reason=grace_expired inflight=%llu", gw->index,
                         (unsigned long long)gw->inflight);
                break;
            }
        }
        be_flush(&gw->be);
        int wait = 10;
        if (gw->storage) {
            int t = rpc_client_next_timeout_ms(gw->storage);
            if (t >= 0 && t < wait)
                wait = t;
        }
        for (int i = 0; i < gw->n_backends; i++) {
            int t = rpc_client_next_timeout_ms(gw->backends[i].client);
            if (t >= 0 && t < wait)
                wait = t;
        }
        h2o_evloop_run(gw->loop, wait);
    }
    return 0;
}

static void *loop_thread(void *arg)
{
    struct gateway *gw = arg;
    gw->exit_status = loop_run(gw);
    return NULL;
}

int gateway_run(struct gateway *gw)
{
    int started = 1;
    for (; started < gw->n_loops; started++)
        if (pthread_create(&gw->loops[started]->thread, NULL, loop_thread, gw->loops[started]) != 0) {
            log_error("thread_failed", "loop=%d reason=\"%s\"", started, strerror(errno));
            stop_signal = SIGTERM; /* the started ones drain and stop */
            break;
        }
    int rc = loop_run(gw);
    for (int i = 1; i < started; i++) {
        pthread_join(gw->loops[i]->thread, NULL);
        rc |= gw->loops[i]->exit_status;
    }
    if (started < gw->n_loops)
        rc = 1;
    log_info("exit", "status=%d", rc);
    return rc;
}

/* Closes what one loop opened (any part may be missing after a failed open);
 * frees nothing shared. */
static void loop_close(struct gateway *gw)
{
    loop_hooks_close(gw);
    close_listener(&gw->http);
    close_listener(&gw->https);
    for (int i = 0; i < gw->n_watches; i++) {
        h2o_socket_read_stop(gw->watches[i].sock);
        h2o_socket_close(gw->watches[i].sock);
    }
    /* Let h2o finish closing sockets and run its deferred timers before the
     * context goes (bounded: 100 short iterations). */
    for (int i = 0; gw->loop && i < 100 && !(connections_closed(gw) && timers_idle(&gw->ctx)); i++)
        h2o_evloop_run(gw->loop, 10);
    if (gw->loop)
        h2o_evloop_run(gw->loop, 0);
    be_flush(&gw->be); /* answered ESHUTDOWN by the close below */
    for (int i = 0; i < gw->n_backends; i++)
        rpc_client_close(gw->backends[i].client);
    rpc_client_close(gw->storage);
    if (gw->events)
        zmq_close(gw->events);
    rpc_server_close(gw->server);
    push_close(gw); /* topic pushes (push.c) */
    if (gw->loop && !(connections_closed(gw) && timers_idle(&gw->ctx))) {
        /* h2o cannot dispose a context with live connections (it asserts);
         * the process is exiting, so leave them to the kernel. */
        log_warn("exit_with_connections", "loop=%d reason=\"clients kept connections open past "
                                          "the grace period\"", gw->index);
    } else if (gw->loop) {
        h2o_context_dispose(&gw->ctx);
        h2o_evloop_destroy(gw->loop);
    }
    api_close(gw->api);
    be_loop_close(&gw->be);
}

void gateway_close(struct gateway *gw)
{
    if (!gw)
        return;
    for (int i = gw->n_loops - 1; i >= 1; i--) {
        loop_close(gw->loops[i]);
        free(gw->loops[i]);
    }
    loop_close(gw);
    if (gw->zctx)
        zmq_ctx_term(gw->zctx);
    h2o_config_dispose(&gw->h2o_config);
    if (gw->ssl)
        SSL_CTX_free(gw->ssl);
    metrics_queues_destroy(gw->mqueues);
    free(gw->mqueues);
    free(gw);
}
