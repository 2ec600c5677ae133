/* svc.c: the shared service frame; see svc.h.
 *
 * Stop sequence on SIGTERM/SIGINT: mark stopping (new requests get
 * CMQ_ESHUTDOWN), run the stop hook once, then poll every 20 ms until no call
 * is held and the busy check is idle, or stop_grace_ms has passed.
 */
#include "svc.h"

#include "clock.h"
#include "envelope.pb.h"
#include "log.h"
#include "status.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#define MAX_WATCHED 24

struct svc {
    char service[32];
    struct svc_common_cfg common;
    void *zctx;
    struct evloop *loop;
    struct rpc_server *server;
    uint64_t started_ms;
    int stopping;
    uint64_t stop_deadline_ms;
    rpc_handler_fn handler;
    void *handler_arg;
    svc_detail_fn detail;
    void *detail_arg;
    svc_hook_fn stop_hook;
    void *stop_arg;
    svc_busy_fn busy;
    void *busy_arg;
    struct rpc_client *clients[MAX_WATCHED];
    int n_clients;
    struct rpc_server *servers[MAX_WATCHED];
    int n_servers;
};

static void usage(const char *prog, const char *service, const struct config_key *keys, size_t n)
{
    printf("usage: %s [--config FILE] [--check-config] [--dump-config] [--help]\n\n"
           "Runs the CMQ %s service.  Configuration keys (INI file, [section] key = value):\n",
           prog, service);
    config_help(keys, n, stdout);
}

int svc_main_args(int argc, char **argv, const char *service, const struct config_key *keys,
                  size_t n_keys, void *cfg, const struct svc_common_cfg *common)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"check-config", no_argument, NULL, 'k'},
        {"dump-config", no_argument, NULL, 'd'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *path = NULL;
    int check = 0, dump = 0, o;
    optind = 1;
    while ((o = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (o) {
        case 'c': path = optarg; break;
        case 'k': check = 1; break;
        case 'd': dump = 1; break;
        case 'h': usage(argv[0], service, keys, n_keys); return 0;
        default: usage(argv[0], service, keys, n_keys); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "%s: unexpected argument '%s'\n", argv[0], argv[optind]);
        return 2;
    }
    char err[CONFIG_ERR_MAX];
    if (config_load(keys, n_keys, cfg, path, err) != CMQ_OK) {
        fprintf(stderr, "%s: bad configuration: %s\n", argv[0], err);
        return 2;
    }
    int level = log_level_parse(common->log_level);
    if (level < 0) {
        fprintf(stderr, "%s: bad configuration: %s: key 'log.level': '%s' is not one of "
                        "debug, info, warn, error\n", argv[0], path ? path : "(defaults)",
                common->log_level);
        return 2;
    }
    if (dump) {
        config_dump(keys, n_keys, cfg, stdout);
        return 0;
    }
    if (check)
        return 0;
    log_init(common->node_id, (enum log_level)level);
    return -1;
}

static void health(struct svc *s, struct rpc_call *call)
{
    cmq_HealthReply r = cmq_HealthReply_init_zero;
    snprintf(r.service, sizeof r.service, "%s", s->service);
    snprintf(r.node_id, sizeof r.node_id, "%s", s->common.node_id);
    snprintf(r.version, sizeof r.version, "%s", CMQ_VERSION);
    r.uptime_ms = clock_mono_ms() - s->started_ms;
    r.requests = rpc_server_requests(s->server);
    r.pid = (uint32_t)getpid();
    if (s->detail)
        s->detail(s->detail_arg, r.detail, sizeof r.detail);
    rpc_reply_pb(call, cmq_HealthReply_fields, &r);
}

static void on_request(struct rpc_server *srv, struct rpc_call *call, void *arg)
{
    (void)srv;
    struct svc *s = arg;
    const struct rpc_msg *m = rpc_call_request(call);
    if (m->type == cmq_MsgType_MSG_HEALTH) {
        health(s, call);
    } else if (s->stopping) {
        rpc_reply_status(call, CMQ_ESHUTDOWN, "service is stopping");
    } else if (s->handler) {
        s->handler(srv, call, s->handler_arg);
    } else {
        rpc_reply_status(call, CMQ_EUNSUPPORTED, "unknown request type");
    }
}

static void on_server_fd(struct evloop *loop, int fd, int events, void *arg)
{
    (void)loop; (void)fd; (void)events;
    rpc_server_process(arg);
}

static void on_client_fd(struct evloop *loop, int fd, int events, void *arg)
{
    (void)loop; (void)fd; (void)events;
    rpc_client_process(arg);
}

static void prepare(struct evloop *loop, void *arg)
{
    (void)loop;
    struct svc *s = arg;
    /* ZMQ_FD is edge-triggered: a send may have consumed the edge of a
     * pending message, so look at every socket before sleeping. */
    for (int i = 0; i < s->n_servers; i++)
        rpc_server_process(s->servers[i]);
    for (int i = 0; i < s->n_clients; i++)
        rpc_client_process(s->clients[i]);
}

static void client_tick(struct evloop *loop, void *arg)
{
    struct svc *s = arg;
    /* Client deadlines: process() expires them; run at least every 10 ms
     * while anything is pending. */
    int next = -1;
    for (int i = 0; i < s->n_clients; i++) {
        rpc_client_process(s->clients[i]);
        int t = rpc_client_next_timeout_ms(s->clients[i]);
        if (t >= 0 && (next < 0 || t < next))
            next = t;
    }
    evloop_timer(loop, next < 0 || next > 10 ? 10 : (uint64_t)next,
                                     client_tick, s);
}

static int busy(struct svc *s)
{
    if (rpc_server_outstanding(s->server))
        return 1;
    return s->busy ? s->busy(s->busy_arg) : 0;
}

static void stop_poll(struct evloop *loop, void *arg)
{
    struct svc *s = arg;
    if (!busy(s)) {
        log_info("stop", "reason=idle");
        evloop_stop(loop);
        return;
    }
    if (clock_mono_ms() >= s->stop_deadline_ms) {
        log_warn("stop", "reason=grace_expired outstanding=%llu",
                 (unsigned long long)rpc_server_outstanding(s->server));
        evloop_stop(loop);
        return;
    }
    evloop_timer(loop, 20, stop_poll, s);
}

static void on_signal(struct evloop *loop, int signo, void *arg)
{
    struct svc *s = arg;
    if (signo == SIGHUP) {
        log_info("signal", "signo=%d action=ignored", signo);
        return;
    }
    if (s->stopping) {
        log_warn("signal", "signo=%d action=stop_now", signo);
        evloop_stop(loop);
        return;
    }
    log_info("stopping", "signo=%d grace_ms=%lld", signo, (long long)s->common.stop_grace_ms);
    s->stopping = 1;
    s->stop_deadline_ms = clock_mono_ms() + (uint64_t)s->common.stop_grace_ms;
    if (s->stop_hook)
        s->stop_hook(s->stop_arg);
    stop_poll(loop, s);
}

int svc_open(const char *service, const struct svc_common_cfg *common, struct svc **out)
{
    struct svc *s = calloc(1, sizeof *s);
    if (!s)
        return CMQ_ENOMEM;
    snprintf(s->service, sizeof s->service, "%s", service);
    s->common = *common;
    s->started_ms = clock_mono_ms();
    int rc = evloop_new(&s->loop);
    if (rc != CMQ_OK)
        goto fail;
    /* Signals first, so threads created later (ZeroMQ's I/O threads) inherit
     * the blocked mask and the signalfd sees every SIGTERM. */
    rc = evloop_on_signals(s->loop, on_signal, s);
    if (rc != CMQ_OK)
        goto fail;
    s->zctx = zmq_ctx_new();
    if (!s->zctx) {
        rc = CMQ_EINTERNAL;
        goto fail;
    }
    rc = rpc_server_open(s->zctx, common->listen, on_request, s, &s->server);
    if (rc != CMQ_OK) {
        log_error("listen_failed", "endpoint=%s status=%s%s", common->listen, status_name(rc),
                  rc == CMQ_EBUSY ? " reason=\"address already in use\"" : "");
        goto fail;
    }
    rc = svc_watch_server(s, s->server);
    if (rc != CMQ_OK)
        goto fail;
    rc = evloop_add_prepare(s->loop, prepare, s);
    if (rc != CMQ_OK)
        goto fail;
    if (!evloop_timer(s->loop, 10, client_tick, s)) {
        rc = CMQ_ENOMEM;
        goto fail;
    }
    log_info("start", "service=%s version=%s pid=%d listen=%s", service, CMQ_VERSION, (int)getpid(),
             common->listen);
    *out = s;
    return CMQ_OK;
fail:
    svc_close(s);
    return rc;
}

void svc_close(struct svc *s)
{
    if (!s)
        return;
    rpc_server_close(s->server);
    if (s->zctx)
        zmq_ctx_term(s->zctx);
    evloop_free(s->loop);
    free(s);
}

void *svc_zctx(struct svc *s) { return s->zctx; }
struct evloop *svc_loop(struct svc *s) { return s->loop; }
struct rpc_server *svc_server(struct svc *s) { return s->server; }
const char *svc_node_id(const struct svc *s) { return s->common.node_id; }
int svc_stopping(const struct svc *s) { return s->stopping; }

void svc_set_handler(struct svc *s, rpc_handler_fn fn, void *arg)
{
    s->handler = fn;
    s->handler_arg = arg;
}

void svc_set_detail(struct svc *s, svc_detail_fn fn, void *arg)
{
    s->detail = fn;
    s->detail_arg = arg;
}

void svc_set_stop_hook(struct svc *s, svc_hook_fn fn, void *arg)
{
    s->stop_hook = fn;
    s->stop_arg = arg;
}

void svc_set_busy_check(struct svc *s, svc_busy_fn fn, void *arg)
{
    s->busy = fn;
    s->busy_arg = arg;
}

int svc_watch_client(struct svc *s, struct rpc_client *c)
{
    if (s->n_clients == MAX_WATCHED)
        return CMQ_ELIMIT;
    for (int i = 0; i < rpc_client_npeers(c); i++) {
        int rc = evloop_add_fd(s->loop, rpc_client_fd(c, i), EVLOOP_READ, on_client_fd, c);
        int mfd = rpc_client_monitor_fd(c, i);
        if (rc == CMQ_OK && mfd >= 0)
            rc = evloop_add_fd(s->loop, mfd, EVLOOP_READ, on_client_fd, c);
        if (rc != CMQ_OK)
            return rc;
    }
    s->clients[s->n_clients++] = c;
    return CMQ_OK;
}

int svc_watch_server(struct svc *s, struct rpc_server *srv)
{
    if (s->n_servers == MAX_WATCHED)
        return CMQ_ELIMIT;
    int rc = evloop_add_fd(s->loop, rpc_server_fd(srv), EVLOOP_READ, on_server_fd, srv);
    if (rc != CMQ_OK)
        return rc;
    s->servers[s->n_servers++] = srv;
    return CMQ_OK;
}

int svc_run(struct svc *s)
{
    int rc = evloop_run(s->loop);
    if (rc != CMQ_OK) {
        log_error("loop_failed", "status=%s", status_name(rc));
        return 1;
    }
    log_info("exit", "status=0");
    return 0;
}
