/* rpc.h: request/reply between our processes over ZeroMQ, one Envelope each.
 *
 * Server: a ROUTER socket.  Each request arrives as a struct rpc_call, which
 * the handler may answer at once or keep (a long poll, a raft commit) and
 * answer later with rpc_reply; every call must be answered or dropped exactly
 * once.
 *
 * Client: one DEALER per peer endpoint, so a request can be retried on the
 * next peer.  Requests carry an id, a deadline and a number of attempts; an
 * ENOTLEADER reply whose leader_hint names one of our peers is re-sent there
 * (without a hint: to the next peer) while attempts remain (rpc_opts.retry_ms
 * replaces attempts by a time budget with backoffs).  A peer whose connection
 * drops (its process died: a socket monitor reports it) has the requests
 * waiting on it re-sent to the next peer at once, instead of at their
 * deadline (an attempt each, or a backoff under a budget; CMQ_EUNAVAIL when
 * neither is left).  Every request ends in exactly one callback: a reply,
 * or CMQ_ETIMEDOUT / CMQ_EUNAVAIL / CMQ_ESHUTDOWN.
 *
 * Loop integration (evloop or h2o): ZMQ_FD is edge-triggered, so the owner
 * watches every fd from rpc_*_fds for reading, and calls rpc_*_process both
 * when one is readable and before every wait (a send can consume the edge).
 * Timeouts fire from rpc_client_process; rpc_client_next_timeout_ms says how
 * long the owner may sleep.  Single-threaded: one loop thread per object.
 */
#ifndef CMQ_RPC_H
#define CMQ_RPC_H

#include <pb.h>
#include <stddef.h>
#include <stdint.h>

/* Larger frames are dropped.  The largest reply we make is a receive of 16
 * bodies of 1 MiB each plus their fields (services/storage/queues.c asserts
 * it fits): 16 MiB would drop it, and the leased messages would stay hidden
 * for their visibility timeout. */
#define RPC_MAX_MSG_BYTES ((16u << 20) + (64u << 10))
#define RPC_MAX_PEERS 16
#define RPC_ENDPOINT_MAX 128

/* A decoded envelope.  Pointers borrow from the frame it was decoded from. */
struct rpc_msg {
    uint64_t request_id;
    uint32_t type;
    int status;
    const char *leader_hint; /* "" when absent */
    const char *error;       /* "" when absent */
    const uint8_t *body;
    size_t body_len;
};

/* Encodes `m` (borrowed) into a new malloc'd buffer; on success *out owns it. */
int rpc_msg_encode(const struct rpc_msg *m, uint8_t **out, size_t *out_len);
/* Decodes `buf` (borrowed); m's strings point into `strings` (caller storage,
 * kept while m is used) and m->body points into buf. */
struct rpc_msg_strings { char leader_hint[128]; char error[256]; };
int rpc_msg_decode(const uint8_t *buf, size_t len, struct rpc_msg *m, struct rpc_msg_strings *strings);

/* nanopb helpers: encode `msg` (borrowed) of type `fields` into a new malloc'd
 * buffer (ownership to the caller), and decode bytes into `msg` (the caller
 * pb_release()s it when the message has FT_POINTER fields). */
int rpc_pb_encode(const pb_msgdesc_t *fields, const void *msg, uint8_t **out, size_t *out_len);
int rpc_pb_decode(const pb_msgdesc_t *fields, void *msg, const uint8_t *buf, size_t len);
/* The value of the first varint field number `tag` of an encoded message
 * (borrowed), without decoding the rest; 0 when absent or malformed.  The
 * storage node routes a request by its field 1 (queue or topic id) this way. */
uint64_t rpc_pb_first_varint(const uint8_t *buf, size_t len, uint32_t tag);

/* ---- server ---- */

struct rpc_server;
struct rpc_call;

/* Runs once per request.  `call` stays valid until rpc_reply/rpc_drop.
 * One-way messages (request_id 0) arrive the same way; drop them after use. */
typedef void (*rpc_handler_fn)(struct rpc_server *srv, struct rpc_call *call, void *arg);

/* Binds a ROUTER to `endpoint` (copied) on ZeroMQ context `zctx` (borrowed).
 * Returns CMQ_OK, or CMQ_EBUSY when the address is taken. */
int rpc_server_open(void *zctx, const char *endpoint, rpc_handler_fn fn, void *arg,
                    struct rpc_server **out);
/* Stops receiving; calls still held stay valid and may still be answered
 * (their replies are dropped).  The memory goes when the last call does. */
void rpc_server_close(struct rpc_server *srv);
int rpc_server_fd(const struct rpc_server *srv);
/* Receives and dispatches every waiting request (bounded per call). */
void rpc_server_process(struct rpc_server *srv);
uint64_t rpc_server_requests(const struct rpc_server *srv);
/* Number of calls received and not yet answered. */
uint64_t rpc_server_outstanding(const struct rpc_server *srv);

/* The request (borrowed from the call). */
const struct rpc_msg *rpc_call_request(const struct rpc_call *call);
/* Decodes the request body as `fields`. */
int rpc_call_decode(const struct rpc_call *call, const pb_msgdesc_t *fields, void *msg);

/* Answers and frees the call.  `body` (borrowed) may be NULL; `leader_hint`
 * and `error` may be NULL. */
int rpc_reply(struct rpc_call *call, int status, const void *body, size_t body_len,
              const char *leader_hint, const char *error);
/* Answers with `msg` encoded as `fields` and status CMQ_OK. */
int rpc_reply_pb(struct rpc_call *call, const pb_msgdesc_t *fields, const void *msg);
/* Answers with a status and no body. */
int rpc_reply_status(struct rpc_call *call, int status, const char *error);
/* Frees the call without answering (the client will time out). */
void rpc_drop(struct rpc_call *call);

/* ---- client ---- */

struct rpc_client;

struct rpc_opts {
    int timeout_ms;  /* per attempt; 0 means 2000 */
    int attempts;    /* total tries across peers; 0 means 1 */
    int peer;        /* first peer to try; -1 for the client's current preferred peer */
    /* > 0: instead of `attempts`, keep trying for this many ms from the call
     * (for requests that are safe to repeat, e.g. keyed sends): a timeout
     * moves to the next peer at once; "not leader" follows its hint at once
     * and without a usable hint waits a backoff (25 ms doubling to 100 ms)
     * and tries the next peer; CMQ_EBUSY waits a backoff and asks the same
     * peer again (backoff doubling to 400 ms); CMQ_EUNAVAIL / CMQ_ESHUTDOWN
     * replies and refused sends (no connection) wait a backoff and try the
     * next peer.  The last attempt
     * may end up to timeout_ms after the budget; its outcome is the answer. */
    int retry_ms;
};

/* Re-sends of requests, by reason (rpc_client_resends). */
enum rpc_resend_reason {
    RPC_RESEND_TIMEOUT = 0,   /* no reply within timeout_ms: the next peer */
    RPC_RESEND_NOT_LEADER = 1,/* a "not leader" reply */
    RPC_RESEND_BUSY = 2,      /* CMQ_EBUSY / CMQ_EUNAVAIL / CMQ_ESHUTDOWN replies (retry_ms) */
    RPC_RESEND_UNREACHABLE = 3,/* no peer took the send (retry_ms), or the peer's
                                * connection dropped with the request on it */
    RPC_RESEND_REASONS_ = 4
};

/* The reply (borrowed for the duration of the callback).  When status is
 * CMQ_ETIMEDOUT / CMQ_EUNAVAIL / CMQ_ESHUTDOWN no peer answered: body is
 * empty and `peer` is the last one tried. */
struct rpc_result {
    int status;
    int peer;
    const struct rpc_msg *msg; /* NULL when no reply arrived */
};
typedef void (*rpc_done_fn)(void *arg, const struct rpc_result *res);

/* Connects one DEALER to each of `n` endpoints (copied).  Connecting does not
 * wait for peers: requests to a peer that is not up fail over or time out. */
int rpc_client_open(void *zctx, const char *const *endpoints, int n, struct rpc_client **out);
/* Ends every pending request with CMQ_ESHUTDOWN, then frees (NULL allowed). */
void rpc_client_close(struct rpc_client *c);
int rpc_client_npeers(const struct rpc_client *c);
const char *rpc_client_endpoint(const struct rpc_client *c, int peer);
int rpc_client_fd(const struct rpc_client *c, int peer);
/* The fd of `peer`'s disconnect monitor (-1 when it has none): owners watch
 * it like the peer's own fd, so a dropped connection wakes the loop. */
int rpc_client_monitor_fd(const struct rpc_client *c, int peer);

/* Sends a request of `type` with `body` (copied).  `done` runs exactly once,
 * never from inside this call.  Returns CMQ_OK or CMQ_ENOMEM / CMQ_EINVAL. */
int rpc_client_call(struct rpc_client *c, uint32_t type, const void *body, size_t body_len,
                    const struct rpc_opts *opts, rpc_done_fn done, void *arg);
/* Sends a one-way message (request_id 0: no reply is expected or tracked) to
 * `peer`.  For traffic that has its own acknowledgements, such as Raft.
 * Returns CMQ_OK, or CMQ_EUNAVAIL when the peer has no connection or its
 * queue is full (the message is dropped; the sender's protocol retries). */
int rpc_client_send_oneway(struct rpc_client *c, int peer, uint32_t type, const void *body,
                           size_t body_len);

/* Reads replies, runs callbacks, retries and expires requests. */
void rpc_client_process(struct rpc_client *c);
/* Milliseconds until the next deadline (-1: none pending). */
int rpc_client_next_timeout_ms(const struct rpc_client *c);
size_t rpc_client_pending(const struct rpc_client *c);
/* How many times this client re-sent a request for `reason` (a counter;
 * safe to read from another thread). */
uint64_t rpc_client_resends(const struct rpc_client *c, enum rpc_resend_reason reason);
/* Blocks up to `timeout_ms` with zmq_poll on the peers, then processes (for
 * tools and tests that have no loop). */
void rpc_client_wait(struct rpc_client *c, int timeout_ms);

/* One synchronous request, for tools and tests: the reply is copied into
 * *out (free with rpc_sync_result_free).  Returns the reply status, or
 * CMQ_ETIMEDOUT / CMQ_EUNAVAIL when no peer answered. */
struct rpc_sync_result {
    int status;
    char leader_hint[128];
    char error[256];
    uint8_t *body; /* malloc'd */
    size_t body_len;
};
int rpc_call_sync(void *zctx, const char *const *endpoints, int n, uint32_t type,
                  const void *body, size_t body_len, const struct rpc_opts *opts,
                  struct rpc_sync_result *out);
void rpc_sync_result_free(struct rpc_sync_result *r);

#endif
