/* gateway_internal.h: the gateway's state, shared by its source files
 * (gateway.c: loop, listeners, health; http/: the h2o front end; the back end
 * in backend/ has its own state, struct be_loop, and does not see this).
 * Not a public header. */
#ifndef CMQ_GATEWAY_INTERNAL_H
#define CMQ_GATEWAY_INTERNAL_H

#include "gateway.h"
#include "backend.h"
#include "metrics.h"

#include <h2o.h>
#include <openssl/ssl.h>
#include <pthread.h>

/* Index of each back end in gateway.backends. */
enum { GW_BACKEND_METADATA = 0, GW_BACKEND_SCHEDULER = 1, GW_BACKEND_STORAGE0 = 2 };

struct backend {
    char name[64];
    struct rpc_client *client;
};

struct zwatch {
    h2o_socket_t *sock;
    struct gateway *gw;
};

struct listener {
    h2o_socket_t *sock;
    h2o_accept_ctx_t accept;
    char addr[64];
    unsigned port;
};

struct api;

/* One event loop.  The gateway runs `gateway.threads` of them, each in its
 * own thread with its own h2o context, its own ZeroMQ sockets (not
 * thread-safe) and its own caches; every field below belongs to its loop
 * unless marked "main".  Loop 0 (`main`) also owns what is shared: the h2o
 * configuration, the TLS context, the ZeroMQ context, the health ROUTER, the
 * listening sockets (the other loops accept on dup()s of them) and the
 * /metrics queue table. */
struct gateway {
    struct gateway *main;            /* loop 0; main->loops lists them all */
    int index;
    struct gateway_cfg cfg;          /* a copy per loop (read-only) */
    h2o_globalconf_t h2o_config;     /* main */
    h2o_context_t ctx;
    h2o_evloop_t *loop;
    SSL_CTX *ssl;                    /* main */
    struct listener http, https;
    void *zctx;                      /* main's, shared (ZeroMQ contexts are thread-safe) */
    struct rpc_server *server;       /* main only */
    struct backend backends[GATEWAY_MAX_STORAGE + 2];
    int n_backends;
    struct zwatch watches[3 * GATEWAY_MAX_STORAGE + 4]; /* backends, storage peers, monitors */
    int n_watches;
    uint64_t inflight;
    uint64_t requests;
    uint64_t started_ms;
    struct api *api;
    /* The back end both front ends call (backend/backend.h): routing, the
     * key and queue caches, the heal, send/delete coalescing. */
    struct be_loop be;
    /* Data requests to storage: one client over every storage node, so a
     * "not leader" answer is re-sent to the leader it names. */
    struct rpc_client *storage;
    /* SUB socket on metadata's change events (keys disabled, ...): one per
     * loop, so every loop's caches hear every event. */
    void *events;
    struct gw_metrics metrics;       /* this loop's counters */
    struct metrics_queues *mqueues;  /* main's, shared (it locks) */
    /* tcp: the CMQ TCP protocol listener of this loop (tcp/tcp_server.h), or NULL. */
    struct tcp_server *tcp;
    pthread_t thread;                /* loops 1..n-1 */
    int exit_status;
    struct gateway *loops[GATEWAY_LOOPS_MAX]; /* main */
    int n_loops;                     /* main */
};

/* The loop serving `req`. */
static inline struct gateway *gateway_of_req(h2o_req_t *req)
{
    return H2O_STRUCT_FROM_MEMBER(struct gateway, ctx, req->conn->ctx);
}

/* http/http_server.c: the API state of one loop (frees with api_close);
 * with a `host` (loop 0, once) it also registers /v2/index.php and / on it. */
int api_open(struct gateway *gw, h2o_hostconf_t *host);
void api_close(struct api *api);

#endif
