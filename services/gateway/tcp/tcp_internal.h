/* tcp_internal.h: shared by tcp_server.c (connections, frames, auth),
 * tcp_ops.c (queue operations) and tcp_publish.c, the CMQ TCP front end over
 * the gateway's back end (services/gateway/backend/).  Not a public header. */
#ifndef CMQ_GATEWAY_TCP_INTERNAL_H
#define CMQ_GATEWAY_TCP_INTERNAL_H

#include "tcp_server.h"

#include "action.h"
#include "cmq_error.h"
#include "cmq_frame.h"
#include "crypto.h"
#include "keycache.h"
#include "metadata.pb.h"
#include "rpc.h"

/* §8 codes the SDK knows by number. */
#define TCP_NOT_AUTHED 306
#define TCP_NO_MESSAGE 10200

struct tconn;

/* Restricted keys (ACL grants only): each connection remembers the last
 * decisions for (action, resource) for TCP_ACL_TTL_MS. */
#define TCP_ACL_CACHE 16
#define TCP_ACL_TTL_MS 10000

struct acl_memo {
    int cmd;
    char name[65];
    int allowed;
    int denial;       /* the denial's row (enum cmq_err) */
    uint64_t until_ms;
};

struct tcp_server {
    struct tcp_env env;
    struct tcp_limits lim;
    h2o_socket_t *listener;
    h2o_timeout_t sweep;
    h2o_timeout_entry_t sweep_entry;
    struct tconn *conns;  /* open connections */
    int n_conns;
    int live;             /* connections not yet freed (open, or held by requests) */
    int closing;
    int draining;         /* stopping: answer what is in flight, then close */
    uint64_t inflight;
    uint64_t requests;
    /* transaction check-backs (tcp_txn.c) */
    h2o_multithread_queue_t *txn_q;
    h2o_multithread_receiver_t txn_rx;
    int64_t txn_seqno;
    uint64_t txn_queries;
};

#define TCP_TXN_IDS 64

struct tconn {
    struct tcp_server *srv;
    h2o_socket_t *sock;   /* NULL once closed */
    struct tconn *prev, *next;
    int refs;             /* 1 while open + 1 per request in flight */
    int closed;
    int authed, auth_pending;
    int inflight;
    struct key_entry key;
    struct acl_memo acl[TCP_ACL_CACHE];
    unsigned acl_next;
    char client_id[257];
    char peer[64];
    uint64_t last_rx_ms;
    uint8_t *wq;          /* frames waiting to be written */
    size_t wq_len, wq_cap;
    uint8_t *wfly;        /* the buffer h2o is writing */
    int writing;
    int close_after_write;
    const char *close_after_write_reason;
    /* half messages this connection sent (tcp_txn.c): the last ids, the last queue */
    uint64_t txn_ids[TCP_TXN_IDS];
    unsigned txn_next;
    char txn_queue[65];
};

/* One request in flight.  `payload` is a copy of the frame's payload; f's
 * bodies borrow from it. */
struct treq {
    struct tconn *conn;
    int64_t seqno;
    int32_t cmd;
    uint8_t *payload;
    size_t payload_len;
    struct cmq_frame f;
    uint64_t start_ns;    /* arrival (metrics) */
    int result;           /* the answer's result (metrics) */
    char queue[130];      /* queue operations: the queue's name (tcp_txn.c) */
};

/* tcp_conn.c: a connection's last reference frees it (and a closing server
 * once it has no connection left); close once the queued frames are written. */
void conn_unref(struct tconn *c);
void server_maybe_free(struct tcp_server *s);
void close_when_flushed(struct tconn *c, const char *why);

struct treq *treq_new(struct tconn *c, const uint8_t *payload, size_t len, const cmqtcp_TcpHead *h);
/* Counts the request in /metrics, frees it and drops its hold on the
 * connection. */
void treq_done(struct treq *r);
/* Answers row `e` (naming `arg`, may be NULL), then treq_done. */
void treq_fail(struct treq *r, enum cmq_err e, const char *arg);
/* Answers a back-end fault, then treq_done. */
struct be_fault;
void treq_fault(struct treq *r, const struct be_fault *f);

/* Queues a frame for writing (no-op on a closed connection). */
void tconn_send(struct tconn *c, struct cmq_frame *f);
/* A new answer frame to the request (seqno, cmd) with result 0 set; the
 * caller fills it, sends it and free()s it.  NULL when out of memory. */
struct cmq_frame *tconn_answer_new(int64_t seqno, int32_t cmd);
void tconn_reply(struct tconn *c, int64_t seqno, int32_t cmd, int result, const char *error);
void tconn_reply_err(struct tconn *c, int64_t seqno, int32_t cmd, enum cmq_err e, const char *arg);
void tconn_close(struct tconn *c, const char *why);
/* The `result` for an error row (§8): the HTTP API's top-level code, except
 * 10200 for "no message". */
int tcp_result_code(enum cmq_err e);

/* The CMQ API action a command is (for ACL checks and errors). */
enum cmq_action tcp_action_of(int32_t cmd);
/* The queue or topic a decoded request names (NULL when absent). */
const char *tcp_resource_of(const struct treq *r, int *is_topic);

/* tcp_ops.c: send / batch send / pull / batch pull / delete / batch delete;
 * tcp_publish.c: publish / batch publish.  Each answers and ends the
 * request (treq_done). */
void tcp_op_queue(struct treq *r);
void tcp_op_publish(struct treq *r);

/* tcp_txn.c: remembers the half messages a connection sent; opens / closes
 * a server's check-back queue. */
void tcp_txn_note(struct tconn *c, const char *queue, const uint64_t *ids, size_t n);
void tcp_txn_open(struct tcp_server *s);
void tcp_txn_close(struct tcp_server *s);

#endif
