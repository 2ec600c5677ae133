/* gateway.h: the cmq-gateway service (h2o HTTP/HTTPS front end).
 *
 * Owns: the h2o event loop and listeners (HTTP, HTTPS with HTTP/2 over ALPN),
 * the ZeroMQ clients to metadata, scheduler and every storage node, and a
 * ZeroMQ ROUTER answering health.  Durable state: none.
 */
#ifndef CMQ_GATEWAY_H
#define CMQ_GATEWAY_H

#include "config.h"
#include "svc.h"

#define GATEWAY_MAX_STORAGE 16
#define GATEWAY_LOOPS_MAX 64

struct gateway_cfg {
    struct svc_common_cfg common;
    char http_listen[64];
    char https_listen[64];
    char tls_cert[256];
    char tls_key[256];
    char tcp_listen[64];
    /* CMQ TCP protocol (services/gateway/tcp/) */
    int64_t tcp_max_connections;
    int64_t tcp_max_inflight;
    int64_t tcp_idle_timeout_ms;
    int64_t tcp_max_frame_bytes;
    char tcp_advertise[512];
    char metadata[RPC_ENDPOINT_MAX];
    char metadata_pub[RPC_ENDPOINT_MAX];
    char scheduler[RPC_ENDPOINT_MAX];
    char storage[GATEWAY_MAX_STORAGE * RPC_ENDPOINT_MAX];
    int64_t health_timeout_ms;
    int64_t max_body_bytes;
    int64_t threads;
    int64_t max_delay_s;  /* gateway.max_delay_seconds (cmq_limits.h) */
    int send_coalesce;
    /* topic pushes to https:// endpoints (push.c) */
    char push_ca_file[256];
    int push_verify;
};

extern const struct config_key gateway_config_keys[];
extern const size_t gateway_config_n_keys;

struct gateway;

/* Opens listeners and clients as configured (cfg copied).  Logs and returns
 * a status on failure (CMQ_EBUSY: a port is taken). */
int gateway_open(const struct gateway_cfg *cfg, struct gateway **out);
/* Runs until SIGTERM/SIGINT, then drains in-flight requests (bounded by
 * node.stop_grace_ms).  Returns 0 for a clean stop. */
int gateway_run(struct gateway *gw);
void gateway_close(struct gateway *gw);

#endif
