/* tcp_server.h: the CMQ TCP protocol listener of cmq-gateway
 * (shared/spec/cmq-tcp-protocol.md; docs/tcp-protocol.md says what is
 * implemented and what was chosen where the spec leaves it open).
 *
 * One tcp_server runs on one h2o event loop, with that loop's back end
 * (borrowed): the gateway opens one per loop.  The first binds the listening socket (a taken port fails with
 * CMQ_EBUSY); the others accept on dup()s of it.
 *
 * A connection authenticates with its first request (§6.2), then pipelines
 * requests that are answered out of order by seqno (a parked long poll
 * holds only its own request).  Heartbeats are answered; connections idle
 * longer than idle_ms are closed; a loop accepts at most max_conns
 * connections and a connection at most max_inflight requests at a time
 * (more are answered 4480).  A frame with a bad marker, an impossible or
 * over-cap length, or a head that does not decode closes that connection
 * only, with a `tcp_bad_frame` log line.
 */
#ifndef CMQ_GATEWAY_TCP_SERVER_H
#define CMQ_GATEWAY_TCP_SERVER_H

#include <h2o.h>
#include <stddef.h>
#include <stdint.h>

struct be_loop;
struct rpc_call;

/* What a loop lends its TCP listener (all borrowed, outliving the server):
 * its event loop and its back end (services/gateway/backend/backend.h),
 * which serves every request and counts them in /metrics. */
struct tcp_env {
    h2o_evloop_t *loop;
    struct be_loop *be;
};

struct tcp_limits {
    char listen[64];      /* host:port */
    int max_conns;        /* per server (loop) */
    int max_inflight;     /* per connection */
    int idle_ms;          /* close after this long without a frame */
    uint32_t max_frame;   /* frame cap in bytes (0: CMQ_FRAME_MAX_DEFAULT) */
    int64_t max_delay_s;  /* gateway.max_delay_seconds (cmq_limits.h: cmq_delay_ok) */
};

struct tcp_server;

/* Binds and starts accepting on env->loop.  CMQ_OK, CMQ_EBUSY (port taken),
 * CMQ_EINVAL (bad address) or CMQ_ENOMEM. */
int tcp_server_open(const struct tcp_env *env, const struct tcp_limits *lim,
                    struct tcp_server **out);
/* Stops accepting (graceful stop); existing connections go on. */
void tcp_server_stop_accepting(struct tcp_server *s);
/* Graceful stop: stops accepting; idle connections close at once, the
 * others once their requests are answered (new requests on them are
 * answered 6000 "gateway is stopping").  The loop drains until
 * tcp_server_inflight is 0. */
void tcp_server_drain(struct tcp_server *s);
/* Transaction check-backs (tcp_txn.c, §9.3).  Thread-safe: hands the query
 * to the server's loop, which sends CMQ_TRANSACTION_QUERY on a connection of
 * the producer if it has one. */
void tcp_server_txn_query(struct tcp_server *s, const char *queue, uint64_t msg_id,
                          uint32_t attempt);
/* Answers a PUSH_MSG_TXN_QUERY rpc (proto/push.proto) by handing the query
 * to every server in servers[0..n). */
void tcp_txn_rpc(struct tcp_server *const *servers, int n, struct rpc_call *call);
/* Requests received and not yet answered. */
uint64_t tcp_server_inflight(const struct tcp_server *s);
/* Closes every connection and the listener, then frees; back-end replies
 * still due are dropped safely.  NULL allowed. */
void tcp_server_close(struct tcp_server *s);

#endif
