/* cmq.h: libcmq, a C client for the CMQ TCP protocol
 * (shared/spec/cmq-tcp-protocol.md), the protocol of the official Java TCP
 * SDK, as served by cmq-gateway's TCP listener.
 *
 * One struct cmq_client is one authenticated TCP connection.  Requests are
 * pipelined: the asynchronous calls (cmq_*_async) write the request and
 * return at once; their callback runs from cmq_poll when the answer (or a
 * timeout, or a transport failure) arrives, in whatever order the server
 * answers.  The synchronous calls send one request and poll until it is
 * answered; callbacks of other requests due meanwhile run too.
 *
 * Results: `code` is the server's `result` (0 success; e.g. 10200 no
 * message, 4440 no such queue; see the spec's §8 and docs/tcp-protocol.md),
 * or one of the negative CMQ_CLIENT_E* codes for local failures.  A result
 * passed to a callback is borrowed for the callback only; one filled by a
 * synchronous call belongs to the caller until cmq_result_free.
 *
 * Not thread-safe: use one client per thread, or lock around every call.
 * The client sends a heartbeat (cmd 1040) from cmq_poll when it has been
 * idle for 3 s, as the Java SDK does.
 */
#ifndef CMQ_CLIENT_H
#define CMQ_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#define CMQ_CLIENT_BATCH_MAX 16

/* Local failures (negative, never sent by a server). */
#define CMQ_CLIENT_ETRANSPORT (-1) /* connect, write or read failed; connection closed */
#define CMQ_CLIENT_ETIMEDOUT (-2)  /* no answer within the request's timeout */
#define CMQ_CLIENT_EINVAL (-3)     /* bad argument (too many messages, name too long, ...) */
#define CMQ_CLIENT_ENOMEM (-4)

struct cmq_client_opts {
    const char *host;         /* IPv4 literal or name */
    unsigned port;
    const char *secret_id;
    const char *secret_key;
    const char *client_id;    /* NULL: "<pid>@libcmq" */
    int hmac_sha256;          /* 0: HmacSHA1 (the SDK's default), 1: HmacSHA256 */
    int timeout_ms;           /* per request, plus the poll wait for pulls; 0: 3000 */
};

/* One received message (pull / batch pull). */
struct cmq_message {
    uint64_t msg_id;
    uint64_t receipt_handle;
    int64_t enqueue_time;      /* Unix seconds */
    int64_t next_visible_time; /* Unix seconds */
    int64_t first_dequeue_time;
    int64_t dequeue_count;
    uint8_t *body;             /* NUL-terminated copy (not counted in body_len) */
    size_t body_len;
};

/* One failed handle of a batch delete. */
struct cmq_delete_failure {
    uint64_t receipt_handle;
    int code;
    char error[130];
};

struct cmq_result {
    int code;
    char error[258];
    int64_t seqno;
    uint64_t msg_ids[CMQ_CLIENT_BATCH_MAX];  /* send / batch send / publish */
    size_t n_msg_ids;
    struct cmq_message msgs[CMQ_CLIENT_BATCH_MAX]; /* pull / batch pull */
    size_t n_msgs;
    struct cmq_delete_failure failed[CMQ_CLIENT_BATCH_MAX]; /* batch delete */
    size_t n_failed;
};

/* Frees the bodies of a result filled by a synchronous call (the struct
 * itself is the caller's). */
void cmq_result_free(struct cmq_result *r);

struct cmq_client;

/* Connects and authenticates (the auth frame, §6.2).  On failure returns a
 * negative code or the server's auth result, with a message in err. */
int cmq_connect(const struct cmq_client_opts *opts, struct cmq_client **out, char *err,
                size_t err_cap);
/* Closes the connection; pending callbacks run with CMQ_CLIENT_ETRANSPORT. */
void cmq_close(struct cmq_client *c);
/* The socket, for callers that poll several clients. */
int cmq_fd(const struct cmq_client *c);
/* Requests sent and not yet answered. */
size_t cmq_pending(const struct cmq_client *c);

typedef void (*cmq_callback)(void *arg, const struct cmq_result *r);

/* ---- asynchronous: return 0 once the request is written, else a negative
 * code (the callback then never runs) ---- */

/* Send (n == 1 and !batch: cmd 1021) or batch send (1022).  delay_s < 0:
 * no delay field. */
int cmq_send_async(struct cmq_client *c, const char *queue, const void *const *bodies,
                   const size_t *lens, size_t n, int batch, int delay_s, cmq_callback cb,
                   void *arg);
/* Pull one (num == 0: cmd 1023) or batch pull up to num (1024).  wait_s < 0:
 * the queue's pollingWaitSeconds. */
int cmq_pull_async(struct cmq_client *c, const char *queue, int num, int wait_s, cmq_callback cb,
                   void *arg);
/* Delete one (n == 1 and !batch: 1025) or batch delete (1026). */
int cmq_delete_async(struct cmq_client *c, const char *queue, const uint64_t *handles, size_t n,
                     int batch, cmq_callback cb, void *arg);
/* Publish (n == 1 and !batch: 1027) or batch publish (1028), with tags
 * and/or a routing key (NULL: none). */
int cmq_publish_async(struct cmq_client *c, const char *topic, const void *const *bodies,
                      const size_t *lens, size_t n, int batch, const char *const *tags,
                      size_t n_tags, const char *routing_key, cmq_callback cb, void *arg);

/* Writes any queued heartbeat, reads what has arrived, runs callbacks and
 * expires timed-out requests; waits at most timeout_ms (0: do not wait, -1:
 * until something happens).  Returns the number of callbacks run, or
 * CMQ_CLIENT_ETRANSPORT once the connection is gone. */
int cmq_poll(struct cmq_client *c, int timeout_ms);

/* ---- synchronous: the same requests, waiting for the answer into *out;
 * return out->code ---- */

int cmq_send(struct cmq_client *c, const char *queue, const void *body, size_t len, int delay_s,
             struct cmq_result *out);
int cmq_send_batch(struct cmq_client *c, const char *queue, const void *const *bodies,
                   const size_t *lens, size_t n, int delay_s, struct cmq_result *out);
int cmq_pull(struct cmq_client *c, const char *queue, int num, int wait_s, struct cmq_result *out);
int cmq_delete(struct cmq_client *c, const char *queue, const uint64_t *handles, size_t n,
               struct cmq_result *out);
int cmq_publish(struct cmq_client *c, const char *topic, const void *body, size_t len,
                const char *const *tags, size_t n_tags, const char *routing_key,
                struct cmq_result *out);

/* ---- transaction messages (§9) ---- */

/* Sends half messages (is_transaction = 1; n == 1 and !batch: cmd 1021, else
 * 1022), synchronously as the SDK does: the server stores them invisible and
 * answers their ids (out->msg_ids).  first_query_interval: the first
 * check-back, milliseconds when >= 1000, seconds when 1..999, <= 0: absent
 * (the server's default, 5 s). */
int cmq_send_txn(struct cmq_client *c, const char *queue, const void *const *bodies,
                 const size_t *lens, size_t n, int batch, int first_query_interval,
                 struct cmq_result *out);
/* Confirms half messages (cmd 1041): states[i] 1 = commit, 2 = rollback.
 * Asynchronous with cb NULL: one-way, as the SDK sends it.  With a callback,
 * or synchronously, it waits for the reply cmq-gateway sends (cmd 1041, the
 * confirm's seqno, result 0 once the decisions are replicated); a server
 * that never replies makes them end with CMQ_CLIENT_ETIMEDOUT. */
int cmq_txn_confirm_async(struct cmq_client *c, const char *queue, const uint64_t *msg_ids,
                          const int *states, size_t n, cmq_callback cb, void *arg);
int cmq_txn_confirm(struct cmq_client *c, const char *queue, const uint64_t *msg_ids,
                    const int *states, size_t n, struct cmq_result *out);
/* The check-back handler (server query, cmd 1042): called from cmq_poll with
 * the query's queue and message id; returns 1 (commit), 2 (rollback) or 0
 * (unknown: nothing is sent, the server asks again later).  For 1 and 2 the
 * client sends a one-way confirm with a new seqno on this connection (§9.4).
 * NULL (the default): queries are not answered. */
typedef int (*cmq_txn_checker)(void *arg, const char *queue, uint64_t msg_id);
void cmq_set_txn_checker(struct cmq_client *c, cmq_txn_checker fn, void *arg);

/* Sends raw bytes on the connection (tests: malformed frames). */
int cmq_send_raw(struct cmq_client *c, const void *buf, size_t len);

#endif
