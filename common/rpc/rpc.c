/* rpc.c: the ZeroMQ request/reply layer; see rpc.h for the contract.
 *
 * Wire: a request is one frame holding an encoded cmq.Envelope; the ROUTER
 * prefixes the peer identity frame, which the reply carries back.  The body
 * field is a nanopb callback both ways, so bodies are never copied on decode
 * (they point into the received zmq_msg_t) and only once on encode.
 *
 * Client bookkeeping: pending requests sit in a hash table keyed by request
 * id and in a list ordered by deadline; a late reply to a request that was
 * already retried elsewhere or expired finds no entry and is dropped.
 *
 * Failover: each DEALER has a ZeroMQ socket monitor (an inproc PAIR) that
 * reports a dropped connection.  A peer process that dies closes its TCP
 * connections at once, so the requests waiting on it are re-sent to the next
 * peer right away instead of at their deadline (a request or reply in flight
 * on a dropped connection is lost: ZeroMQ reconnects with a new identity).
 * A peer that hangs without closing is still noticed only by the deadline.
 */
#include "rpc.h"

#include "clock.h"
#include "envelope.pb.h"
#include "log.h"
#include "status.h"

#include <errno.h>
#include <pb_decode.h>
#include <pb_encode.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

/* ---------- envelope ---------- */

struct body_ref {
    const uint8_t *data;
    size_t len;
};

static bool body_encode_cb(pb_ostream_t *stream, const pb_field_t *field, void *const *arg)
{
    const struct body_ref *b = *arg;
    if (!b->len)
        return true;
    return pb_encode_tag_for_field(stream, field) && pb_encode_string(stream, b->data, b->len);
}

static bool body_decode_cb(pb_istream_t *stream, const pb_field_t *field, void **arg)
{
    (void)field;
    struct body_ref *b = *arg;
    /* Buffer streams keep the read position in `state`: point at it. */
    b->data = stream->state;
    b->len = stream->bytes_left;
    return pb_read(stream, NULL, stream->bytes_left);
}

int rpc_msg_encode(const struct rpc_msg *m, uint8_t **out, size_t *out_len)
{
    cmq_Envelope env = cmq_Envelope_init_zero;
    struct body_ref body = {m->body, m->body_len};
    env.request_id = m->request_id;
    env.type = m->type;
    env.status = m->status;
    if (m->leader_hint)
        snprintf(env.leader_hint, sizeof env.leader_hint, "%s", m->leader_hint);
    if (m->error)
        snprintf(env.error, sizeof env.error, "%s", m->error);
    env.body.funcs.encode = body_encode_cb;
    env.body.arg = &body;
    return rpc_pb_encode(cmq_Envelope_fields, &env, out, out_len);
}

int rpc_msg_decode(const uint8_t *buf, size_t len, struct rpc_msg *m, struct rpc_msg_strings *s)
{
    cmq_Envelope env = cmq_Envelope_init_zero;
    struct body_ref body = {NULL, 0};
    env.body.funcs.decode = body_decode_cb;
    env.body.arg = &body;
    pb_istream_t is = pb_istream_from_buffer(buf, len);
    if (!pb_decode(&is, cmq_Envelope_fields, &env))
        return CMQ_ECORRUPT;
    _Static_assert(sizeof s->leader_hint >= sizeof env.leader_hint, "leader hint size");
    _Static_assert(sizeof s->error >= sizeof env.error, "error size");
    memcpy(s->leader_hint, env.leader_hint, sizeof env.leader_hint);
    memcpy(s->error, env.error, sizeof env.error);
    m->request_id = env.request_id;
    m->type = env.type;
    m->status = env.status;
    m->leader_hint = s->leader_hint;
    m->error = s->error;
    m->body = body.data;
    m->body_len = body.len;
    return CMQ_OK;
}

int rpc_pb_encode(const pb_msgdesc_t *fields, const void *msg, uint8_t **out, size_t *out_len)
{
    size_t size;
    if (!pb_get_encoded_size(&size, fields, msg))
        return CMQ_EINVAL;
    if (size > RPC_MAX_MSG_BYTES)
        return CMQ_ETOOBIG;
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf)
        return CMQ_ENOMEM;
    pb_ostream_t os = pb_ostream_from_buffer(buf, size);
    if (!pb_encode(&os, fields, msg)) {
        free(buf);
        return CMQ_EINVAL;
    }
    *out = buf;
    *out_len = os.bytes_written;
    return CMQ_OK;
}

int rpc_pb_decode(const pb_msgdesc_t *fields, void *msg, const uint8_t *buf, size_t len)
{
    pb_istream_t is = pb_istream_from_buffer(buf, len);
    return pb_decode(&is, fields, msg) ? CMQ_OK : CMQ_EINVAL;
}

uint64_t rpc_pb_first_varint(const uint8_t *buf, size_t len, uint32_t tag)
{
    pb_istream_t is = pb_istream_from_buffer(buf, len);
    pb_wire_type_t wt;
    uint32_t t;
    bool eof;
    while (pb_decode_tag(&is, &wt, &t, &eof)) {
        if (t == tag && wt == PB_WT_VARINT) {
            uint64_t v;
            return pb_decode_varint(&is, &v) ? v : 0;
        }
        if (!pb_skip_field(&is, wt))
            break;
    }
    return 0;
}

static void *new_socket(void *zctx, int type)
{
    void *s = zmq_socket(zctx, type);
    if (!s)
        return NULL;
    int linger = 0, hwm = 100000;
    int64_t maxmsg = RPC_MAX_MSG_BYTES + 4096;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(s, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(s, ZMQ_RCVHWM, &hwm, sizeof hwm);
    zmq_setsockopt(s, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
    return s;
}

static int sock_fd(void *sock)
{
    int fd = -1;
    size_t len = sizeof fd;
    zmq_getsockopt(sock, ZMQ_FD, &fd, &len);
    return fd;
}

static int sock_readable(void *sock)
{
    int ev = 0;
    size_t len = sizeof ev;
    if (zmq_getsockopt(sock, ZMQ_EVENTS, &ev, &len) != 0)
        return 0;
    return ev & ZMQ_POLLIN;
}

/* ---------- server ---------- */

struct rpc_server {
    void *sock;
    char endpoint[RPC_ENDPOINT_MAX];
    rpc_handler_fn fn;
    void *arg;
    uint64_t requests;
    uint64_t outstanding;
    int closed;
};

struct rpc_call {
    struct rpc_server *srv;
    zmq_msg_t identity;
    zmq_msg_t frame;
    struct rpc_msg req;
    struct rpc_msg_strings strings;
};

int rpc_server_open(void *zctx, const char *endpoint, rpc_handler_fn fn, void *arg,
                    struct rpc_server **out)
{
    struct rpc_server *s = calloc(1, sizeof *s);
    if (!s)
        return CMQ_ENOMEM;
    snprintf(s->endpoint, sizeof s->endpoint, "%s", endpoint);
    s->fn = fn;
    s->arg = arg;
    s->sock = new_socket(zctx, ZMQ_ROUTER);
    if (!s->sock) {
        free(s);
        return CMQ_EINTERNAL;
    }
    int mandatory = 0; /* a reply to a vanished client is dropped, not an error */
    zmq_setsockopt(s->sock, ZMQ_ROUTER_MANDATORY, &mandatory, sizeof mandatory);
    if (zmq_bind(s->sock, endpoint) != 0) {
        int e = zmq_errno();
        zmq_close(s->sock);
        free(s);
        return e == EADDRINUSE ? CMQ_EBUSY : CMQ_EINVAL;
    }
    *out = s;
    return CMQ_OK;
}

static void server_free_if_done(struct rpc_server *s)
{
    if (s->closed && s->outstanding == 0)
        free(s);
}

void rpc_server_close(struct rpc_server *s)
{
    if (!s)
        return;
    if (s->sock)
        zmq_close(s->sock);
    s->sock = NULL;
    s->closed = 1;
    server_free_if_done(s);
}

int rpc_server_fd(const struct rpc_server *s) { return s->sock ? sock_fd(s->sock) : -1; }
uint64_t rpc_server_requests(const struct rpc_server *s) { return s->requests; }
uint64_t rpc_server_outstanding(const struct rpc_server *s) { return s->outstanding; }

static void call_free(struct rpc_call *c)
{
    struct rpc_server *s = c->srv;
    zmq_msg_close(&c->identity);
    zmq_msg_close(&c->frame);
    free(c);
    s->outstanding--;
    server_free_if_done(s);
}

void rpc_server_process(struct rpc_server *s)
{
    /* Bounded per call so one busy socket cannot starve the loop; the owner
     * calls us again before it waits (prepare hook), so nothing is stranded. */
    for (int budget = 256; budget > 0 && s->sock && sock_readable(s->sock); budget--) {
        struct rpc_call *c = calloc(1, sizeof *c);
        if (!c)
            return;
        zmq_msg_init(&c->identity);
        zmq_msg_init(&c->frame);
        c->srv = s;
        s->outstanding++;
        if (zmq_msg_recv(&c->identity, s->sock, ZMQ_DONTWAIT) < 0) {
            call_free(c);
            return;
        }
        int more = zmq_msg_more(&c->identity);
        int ok = more && zmq_msg_recv(&c->frame, s->sock, ZMQ_DONTWAIT) >= 0;
        /* Swallow any extra frames: a well-formed request has exactly one. */
        int extra = ok && zmq_msg_more(&c->frame);
        while (ok && zmq_msg_more(&c->frame)) {
            zmq_msg_t junk;
            zmq_msg_init(&junk);
            zmq_msg_recv(&junk, s->sock, ZMQ_DONTWAIT);
            int m = zmq_msg_more(&junk);
            zmq_msg_close(&junk);
            if (!m)
                break;
        }
        if (!ok || extra ||
            rpc_msg_decode(zmq_msg_data(&c->frame), zmq_msg_size(&c->frame), &c->req,
                           &c->strings) != CMQ_OK) {
            static struct log_limit lim;
            uint64_t n;
            if (log_limit_allow(&lim, clock_mono_ms(), 10000, &n))
                log_warn("rpc_bad_request", "endpoint=%s suppressed=%llu", s->endpoint,
                         (unsigned long long)n);
            call_free(c);
            continue;
        }
        s->requests++;
        s->fn(s, c, s->arg);
    }
}

const struct rpc_msg *rpc_call_request(const struct rpc_call *c) { return &c->req; }

int rpc_call_decode(const struct rpc_call *c, const pb_msgdesc_t *fields, void *msg)
{
    return rpc_pb_decode(fields, msg, c->req.body, c->req.body_len);
}

int rpc_reply(struct rpc_call *c, int status, const void *body, size_t body_len,
              const char *leader_hint, const char *error)
{
    struct rpc_server *s = c->srv;
    int rc = CMQ_OK;
    if (s->sock) {
        struct rpc_msg m = {.request_id = c->req.request_id, .type = c->req.type,
                            .status = status, .leader_hint = leader_hint, .error = error,
                            .body = body, .body_len = body_len};
        uint8_t *buf;
        size_t len;
        rc = rpc_msg_encode(&m, &buf, &len);
        if (rc == CMQ_OK) {
            if (zmq_msg_send(&c->identity, s->sock, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 ||
                zmq_send(s->sock, buf, len, ZMQ_DONTWAIT) < 0)
                rc = CMQ_EUNAVAIL;
            free(buf);
        }
    }
    call_free(c);
    return rc;
}

int rpc_reply_pb(struct rpc_call *c, const pb_msgdesc_t *fields, const void *msg)
{
    uint8_t *buf;
    size_t len;
    int rc = rpc_pb_encode(fields, msg, &buf, &len);
    if (rc != CMQ_OK)
        return rpc_reply(c, CMQ_EINTERNAL, NULL, 0, NULL, "reply encoding failed");
    rc = rpc_reply(c, CMQ_OK, buf, len, NULL, NULL);
    free(buf);
    return rc;
}

int rpc_reply_status(struct rpc_call *c, int status, const char *error)
{
    return rpc_reply(c, status, NULL, 0, NULL, error);
}

void rpc_drop(struct rpc_call *c) { call_free(c); }

/* ---------- client ---------- */

#define BUCKETS 1024

struct pending {
    uint64_t id;
    uint64_t deadline_ms;
    int timeout_ms;
    int attempts_left;
    int peer;
    uint64_t retry_until;  /* opts.retry_ms: retry until then (0: attempts count) */
    int backoff_ms;        /* the next backoff wait (retry_ms) */
    int waiting;           /* in the deadline list for a backoff, not sent */
    int follows;           /* hints followed since the last backoff (retry_ms) */
    uint8_t *frame; /* encoded request, kept for retries */
    size_t frame_len;
    rpc_done_fn done;
    void *arg;
    struct pending *hnext;             /* hash chain */
    struct pending *prev, *next;       /* deadline order (FIFO per equal timeout) */
};

struct peer {
    void *sock;
    void *mon; /* PAIR receiving sock's disconnect events; NULL without one */
    char endpoint[RPC_ENDPOINT_MAX];
};

struct rpc_client {
    struct peer peers[RPC_MAX_PEERS];
    int n;
    int preferred;
    uint64_t next_id;
    size_t pending;
    struct pending *table[BUCKETS];
    struct pending *head, *tail; /* sorted by deadline */
    struct pending *ready;       /* failed at send time: completed in process() */
    uint64_t resends[RPC_RESEND_REASONS_]; /* atomic: read by other threads (metrics) */
};

/* Attaches a disconnect monitor to `sock`; returns the PAIR reading it, or
 * NULL (the client then notices a dead peer only by its deadlines). */
static void *monitor_open(void *zctx, void *sock)
{
    static uint64_t seq;
    char addr[64];
    snprintf(addr, sizeof addr, "inproc://cmq-rpc-monitor-%d-%llu", (int)getpid(),
             (unsigned long long)__atomic_add_fetch(&seq, 1, __ATOMIC_RELAXED));
    if (zmq_socket_monitor(sock, addr, ZMQ_EVENT_DISCONNECTED) != 0)
        return NULL;
    void *m = new_socket(zctx, ZMQ_PAIR);
    if (m && zmq_connect(m, addr) == 0)
        return m;
    if (m)
        zmq_close(m);
    zmq_socket_monitor(sock, NULL, 0);
    return NULL;
}

/* Reads every event the monitor holds; returns 1 if one was a disconnect. */
static int monitor_disconnected(void *mon)
{
    int lost = 0;
    for (int budget = 64; mon && budget > 0 && sock_readable(mon); budget--) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, mon, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&m);
            break;
        }
        if (zmq_msg_size(&m) >= 6) { /* u16 event, u32 value; then a frame: the address */
            uint16_t ev;
            memcpy(&ev, zmq_msg_data(&m), sizeof ev);
            lost |= ev == ZMQ_EVENT_DISCONNECTED;
        }
        int more = zmq_msg_more(&m);
        zmq_msg_close(&m);
        while (more) {
            zmq_msg_init(&m);
            more = zmq_msg_recv(&m, mon, ZMQ_DONTWAIT) >= 0 && zmq_msg_more(&m);
            zmq_msg_close(&m);
        }
    }
    return lost;
}

int rpc_client_open(void *zctx, const char *const *endpoints, int n, struct rpc_client **out)
{
    if (n < 1 || n > RPC_MAX_PEERS)
        return CMQ_EINVAL;
    struct rpc_client *c = calloc(1, sizeof *c);
    if (!c)
        return CMQ_ENOMEM;
    /* Ids start at a time-derived point so a restarted client does not reuse
     * the ids of its previous life while old replies may still be in flight. */
    c->next_id = ((clock_wall_ms() << 20) ^ clock_mono_ns()) & 0x7fffffffffffffffull;
    for (int i = 0; i < n; i++) {
        snprintf(c->peers[i].endpoint, RPC_ENDPOINT_MAX, "%s", endpoints[i]);
        void *s = new_socket(zctx, ZMQ_DEALER);
        if (!s) {
            rpc_client_close(c);
            return CMQ_EINTERNAL;
        }
        c->peers[i].sock = s;
        c->n = i + 1;
        int one = 1, ivl = 100, ivl_max = 1000;
        zmq_setsockopt(s, ZMQ_IMMEDIATE, &one, sizeof one);
        zmq_setsockopt(s, ZMQ_RECONNECT_IVL, &ivl, sizeof ivl);
        zmq_setsockopt(s, ZMQ_RECONNECT_IVL_MAX, &ivl_max, sizeof ivl_max);
        c->peers[i].mon = monitor_open(zctx, s);
        if (zmq_connect(s, endpoints[i]) != 0) {
            rpc_client_close(c);
            return CMQ_EINVAL;
        }
    }
    *out = c;
    return CMQ_OK;
}

int rpc_client_npeers(const struct rpc_client *c) { return c->n; }
const char *rpc_client_endpoint(const struct rpc_client *c, int peer)
{
    return peer >= 0 && peer < c->n ? c->peers[peer].endpoint : "";
}
int rpc_client_fd(const struct rpc_client *c, int peer) { return sock_fd(c->peers[peer].sock); }
int rpc_client_monitor_fd(const struct rpc_client *c, int peer)
{
    return c->peers[peer].mon ? sock_fd(c->peers[peer].mon) : -1;
}
size_t rpc_client_pending(const struct rpc_client *c) { return c->pending; }

uint64_t rpc_client_resends(const struct rpc_client *c, enum rpc_resend_reason reason)
{
    return (unsigned)reason < RPC_RESEND_REASONS_
               ? __atomic_load_n(&c->resends[reason], __ATOMIC_RELAXED) : 0;
}

static void count_resend(struct rpc_client *c, enum rpc_resend_reason reason)
{
    __atomic_fetch_add(&c->resends[reason], 1, __ATOMIC_RELAXED);
}

static void list_unlink(struct rpc_client *c, struct pending *p)
{
    if (p->prev) p->prev->next = p->next; else c->head = p->next;
    if (p->next) p->next->prev = p->prev; else c->tail = p->prev;
    p->prev = p->next = NULL;
}

static void list_insert(struct rpc_client *c, struct pending *p)
{
    /* Walk back from the tail: with one timeout in use this is O(1). */
    struct pending *q = c->tail;
    while (q && q->deadline_ms > p->deadline_ms)
        q = q->prev;
    p->prev = q;
    p->next = q ? q->next : c->head;
    if (p->next) p->next->prev = p; else c->tail = p;
    if (q) q->next = p; else c->head = p;
}

static void table_insert(struct rpc_client *c, struct pending *p)
{
    struct pending **b = &c->table[p->id % BUCKETS];
    p->hnext = *b;
    *b = p;
}

static struct pending *table_take(struct rpc_client *c, uint64_t id)
{
    for (struct pending **pp = &c->table[id % BUCKETS]; *pp; pp = &(*pp)->hnext) {
        if ((*pp)->id == id) {
            struct pending *p = *pp;
            *pp = p->hnext;
            return p;
        }
    }
    return NULL;
}

static void finish(struct rpc_client *c, struct pending *p, int status, const struct rpc_msg *m)
{
    struct rpc_result r = {status, p->peer, m};
    c->pending--;
    rpc_done_fn done = p->done;
    void *arg = p->arg;
    free(p->frame);
    free(p);
    done(arg, &r);
}

/* Sends p's frame to p->peer, moving on to later peers while sends are refused
 * (no connection: ZMQ_IMMEDIATE).  Returns 0 when sent. */
static int send_attempt(struct rpc_client *c, struct pending *p, uint64_t now)
{
    for (int tries = 0; p->attempts_left > 0 && tries < c->n; tries++) {
        p->attempts_left--;
        if (zmq_send(c->peers[p->peer].sock, p->frame, p->frame_len, ZMQ_DONTWAIT) >= 0) {
            p->deadline_ms = now + (uint64_t)p->timeout_ms;
            return 0;
        }
        p->peer = (p->peer + 1) % c->n;
    }
    return -1;
}

/* With a retry budget left (opts.retry_ms): parks p (in neither list) in the
 * deadline list for a backoff wait, after which expire() sends it (to the
 * next peer when `next`); returns 1.  It stays in the id table meanwhile, so
 * a late reply to an earlier attempt still answers it.  Otherwise 0 (the
 * caller finishes p). */
static int backoff(struct rpc_client *c, struct pending *p, uint64_t now, int next,
                   enum rpc_resend_reason reason)
{
    if (!p->retry_until || now >= p->retry_until)
        return 0;
    if (next)
        p->peer = (p->peer + 1) % c->n;
    p->waiting = 1;
    p->deadline_ms = now + (uint64_t)p->backoff_ms;
    /* An election (no leader to follow, or the leader's node is gone) ends
     * within about one election timeout (0.5-1 s): ask again at least every
     * 100 ms then, so the new leader is found soon after it is elected
     * (docs/raft.md §10); busy answers back off further. */
    int cap = reason == RPC_RESEND_BUSY ? 400 : 100;
    p->backoff_ms = p->backoff_ms * 2 > cap ? cap : p->backoff_ms * 2;
    p->follows = 0;
    count_resend(c, reason);
    table_insert(c, p);
    list_insert(c, p);
    return 1;
}

int rpc_client_call(struct rpc_client *c, uint32_t type, const void *body, size_t body_len,
                    const struct rpc_opts *opts, rpc_done_fn done, void *arg)
{
    struct pending *p = calloc(1, sizeof *p);
    if (!p)
        return CMQ_ENOMEM;
    p->id = ++c->next_id;
    p->timeout_ms = opts && opts->timeout_ms > 0 ? opts->timeout_ms : 2000;
    p->attempts_left = opts && opts->attempts > 0 ? opts->attempts : 1;
    if (opts && opts->retry_ms > 0) {
        p->retry_until = clock_mono_ms() + (uint64_t)opts->retry_ms;
        p->attempts_left = INT_MAX; /* the budget bounds it */
        p->backoff_ms = 25;
    }
    p->peer = opts && opts->peer >= 0 && opts->peer < c->n ? opts->peer : c->preferred;
    p->done = done;
    p->arg = arg;
    struct rpc_msg m = {.request_id = p->id, .type = type, .body = body, .body_len = body_len};
    int rc = rpc_msg_encode(&m, &p->frame, &p->frame_len);
    if (rc != CMQ_OK) {
        free(p);
        return rc;
    }
    c->pending++;
    uint64_t now = clock_mono_ms();
    if (send_attempt(c, p, now) != 0 && !backoff(c, p, now, 1, RPC_RESEND_UNREACHABLE)) {
        /* Nobody is connected: complete on the next process() as unavailable,
         * never from inside this call. */
        p->next = c->ready;
        c->ready = p;
        return CMQ_OK;
    }
    if (!p->waiting) {
        table_insert(c, p);
        list_insert(c, p);
    }
    return CMQ_OK;
}

int rpc_client_send_oneway(struct rpc_client *c, int peer, uint32_t type, const void *body,
                           size_t body_len)
{
    if (peer < 0 || peer >= c->n)
        return CMQ_EINVAL;
    struct rpc_msg m = {.request_id = 0, .type = type, .body = body, .body_len = body_len};
    uint8_t *frame;
    size_t len;
    int rc = rpc_msg_encode(&m, &frame, &len);
    if (rc != CMQ_OK)
        return rc;
    if (zmq_send(c->peers[peer].sock, frame, len, ZMQ_DONTWAIT) < 0)
        rc = CMQ_EUNAVAIL;
    free(frame);
    return rc;
}

static int peer_index(const struct rpc_client *c, const char *endpoint)
{
    for (int i = 0; i < c->n; i++)
        if (strcmp(c->peers[i].endpoint, endpoint) == 0)
            return i;
    return -1;
}

static void handle_reply(struct rpc_client *c, int peer, const uint8_t *buf, size_t len)
{
    struct rpc_msg m;
    struct rpc_msg_strings s;
    if (rpc_msg_decode(buf, len, &m, &s) != CMQ_OK)
        return;
    struct pending *p = table_take(c, m.request_id);
    if (!p)
        return; /* late: already retried elsewhere, expired, or not ours */
    list_unlink(c, p);
    p->peer = peer;
    p->waiting = 0; /* a late reply to an earlier attempt ends a backoff wait */
    uint64_t now = clock_mono_ms();
    if (m.status == CMQ_ENOTLEADER && p->attempts_left > 0 &&
        (!p->retry_until || now < p->retry_until)) {
        /* Follow the hint when it names a peer; without one (an election is
         * under way) try the next peer (after a backoff under a budget). */
        int to = m.leader_hint[0] ? peer_index(c, m.leader_hint) : -1;
        if (to < 0 && !p->retry_until)
            to = (peer + 1) % c->n;
        /* under a budget at most two hints in a row: during an election a
         * follower may still name the dead leader, whose refused send lands
         * back on the follower; then wait a backoff */
        if (to >= 0 && to != peer && (!p->retry_until || p->follows++ < 2)) {
            c->preferred = to;
            p->peer = to;
            count_resend(c, RPC_RESEND_NOT_LEADER);
            if (send_attempt(c, p, now) == 0) {
                table_insert(c, p);
                list_insert(c, p);
                return;
            }
        }
        if (backoff(c, p, now, to < 0 || to == peer, RPC_RESEND_NOT_LEADER))
            return;
    }
    if ((m.status == CMQ_EBUSY || m.status == CMQ_EUNAVAIL || m.status == CMQ_ESHUTDOWN) &&
        backoff(c, p, now, m.status != CMQ_EBUSY, RPC_RESEND_BUSY))
        return;
    if (m.status == CMQ_OK)
        c->preferred = peer;
    finish(c, p, m.status, &m);
}

/* Peer i's connection dropped: the requests waiting for its reply will not
 * get one.  Each goes to the next peer now (an attempt; counted as
 * unreachable), or waits a backoff under a retry budget, or ends with
 * CMQ_EUNAVAIL. */
static void peer_lost(struct rpc_client *c, int i, uint64_t now)
{
    struct pending *lost = NULL;
    for (struct pending *p = c->head, *nx; p; p = nx) {
        nx = p->next;
        if (p->peer != i || p->waiting)
            continue;
        list_unlink(c, p);
        table_take(c, p->id);
        p->hnext = lost;
        lost = p;
    }
    while (lost) {
        struct pending *p = lost;
        lost = p->hnext;
        p->hnext = NULL;
        p->peer = (i + 1) % c->n;
        if (c->n > 1 && send_attempt(c, p, now) == 0) {
            count_resend(c, RPC_RESEND_UNREACHABLE);
            table_insert(c, p);
            list_insert(c, p);
        } else if (!backoff(c, p, now, 1, RPC_RESEND_UNREACHABLE)) {
            finish(c, p, CMQ_EUNAVAIL, NULL);
        }
    }
}

static void expire(struct rpc_client *c, uint64_t now)
{
    while (c->head && c->head->deadline_ms <= now) {
        struct pending *p = c->head;
        list_unlink(c, p);
        table_take(c, p->id);
        if (p->waiting) { /* a backoff ended: send again */
            p->waiting = 0;
            if (send_attempt(c, p, now) == 0) {
                table_insert(c, p);
                list_insert(c, p);
            } else if (!backoff(c, p, now, 1, RPC_RESEND_UNREACHABLE)) {
                finish(c, p, CMQ_EUNAVAIL, NULL);
            }
            continue;
        }
        if (p->attempts_left > 0 && (!p->retry_until || now < p->retry_until)) {
            p->peer = (p->peer + 1) % c->n;
            count_resend(c, RPC_RESEND_TIMEOUT);
            if (send_attempt(c, p, now) == 0) {
                table_insert(c, p);
                list_insert(c, p);
                continue;
            }
            if (backoff(c, p, now, 1, RPC_RESEND_UNREACHABLE))
                continue;
        }
        finish(c, p, CMQ_ETIMEDOUT, NULL);
    }
}

void rpc_client_process(struct rpc_client *c)
{
    while (c->ready) {
        struct pending *p = c->ready;
        c->ready = p->next;
        p->next = NULL;
        finish(c, p, CMQ_EUNAVAIL, NULL);
    }
    uint64_t now = clock_mono_ms();
    for (int i = 0; i < c->n; i++)
        if (c->peers[i].mon && monitor_disconnected(c->peers[i].mon))
            peer_lost(c, i, now);
    for (int i = 0; i < c->n; i++) {
        for (int budget = 1024; budget > 0 && sock_readable(c->peers[i].sock); budget--) {
            zmq_msg_t msg;
            zmq_msg_init(&msg);
            if (zmq_msg_recv(&msg, c->peers[i].sock, ZMQ_DONTWAIT) < 0) {
                zmq_msg_close(&msg);
                break;
            }
            if (!zmq_msg_more(&msg))
                handle_reply(c, i, zmq_msg_data(&msg), zmq_msg_size(&msg));
            zmq_msg_close(&msg);
        }
    }
    expire(c, clock_mono_ms());
}

int rpc_client_next_timeout_ms(const struct rpc_client *c)
{
    if (c->ready)
        return 0;
    if (!c->head)
        return -1;
    uint64_t now = clock_mono_ms();
    return c->head->deadline_ms <= now ? 0 : (int)(c->head->deadline_ms - now);
}

void rpc_client_wait(struct rpc_client *c, int timeout_ms)
{
    zmq_pollitem_t items[RPC_MAX_PEERS];
    for (int i = 0; i < c->n; i++)
        items[i] = (zmq_pollitem_t){.socket = c->peers[i].sock, .events = ZMQ_POLLIN};
    int next = rpc_client_next_timeout_ms(c);
    if (next >= 0 && next < timeout_ms)
        timeout_ms = next;
    zmq_poll(items, c->n, timeout_ms);
    rpc_client_process(c);
}

void rpc_client_close(struct rpc_client *c)
{
    if (!c)
        return;
    while (c->ready) {
        struct pending *p = c->ready;
        c->ready = p->next;
        finish(c, p, CMQ_ESHUTDOWN, NULL);
    }
    while (c->head) {
        struct pending *p = c->head;
        list_unlink(c, p);
        table_take(c, p->id);
        finish(c, p, CMQ_ESHUTDOWN, NULL);
    }
    for (int i = 0; i < c->n; i++) {
        if (c->peers[i].mon) {
            zmq_socket_monitor(c->peers[i].sock, NULL, 0);
            zmq_close(c->peers[i].mon);
        }
        if (c->peers[i].sock)
            zmq_close(c->peers[i].sock);
    }
    free(c);
}

/* ---------- synchronous helper ---------- */

struct sync_state {
    int done;
    struct rpc_sync_result *out;
};

static void sync_done(void *arg, const struct rpc_result *r)
{
    struct sync_state *st = arg;
    st->done = 1;
    st->out->status = r->status;
    if (r->msg) {
        snprintf(st->out->leader_hint, sizeof st->out->leader_hint, "%s", r->msg->leader_hint);
        snprintf(st->out->error, sizeof st->out->error, "%s", r->msg->error);
        if (r->msg->body_len) {
            st->out->body = malloc(r->msg->body_len);
            if (st->out->body) {
                memcpy(st->out->body, r->msg->body, r->msg->body_len);
                st->out->body_len = r->msg->body_len;
            } else {
                st->out->status = CMQ_ENOMEM;
            }
        }
    }
}

int rpc_call_sync(void *zctx, const char *const *endpoints, int n, uint32_t type,
                  const void *body, size_t body_len, const struct rpc_opts *opts,
                  struct rpc_sync_result *out)
{
    memset(out, 0, sizeof *out);
    struct rpc_client *c;
    int rc = rpc_client_open(zctx, endpoints, n, &c);
    if (rc != CMQ_OK)
        return out->status = rc;
    struct sync_state st = {0, out};
    rc = rpc_client_call(c, type, body, body_len, opts, sync_done, &st);
    if (rc != CMQ_OK) {
        rpc_client_close(c);
        return out->status = rc;
    }
    /* A freshly connected DEALER with ZMQ_IMMEDIATE refuses sends until the
     * TCP handshake completes, so an immediate EUNAVAIL is retried for a
     * short while before it is believed. */
    uint64_t give_up = clock_mono_ms() + (uint64_t)(opts && opts->timeout_ms > 0 ? opts->timeout_ms : 2000);
    while (!st.done) {
        rpc_client_wait(c, 50);
        if (st.done && out->status == CMQ_EUNAVAIL && clock_mono_ms() < give_up) {
            st.done = 0;
            usleep(20 * 1000);
            rc = rpc_client_call(c, type, body, body_len, opts, sync_done, &st);
            if (rc != CMQ_OK)
                break;
        }
    }
    rpc_client_close(c);
    return out->status;
}

void rpc_sync_result_free(struct rpc_sync_result *r)
{
    if (!r)
        return;
    free(r->body);
    r->body = NULL;
    r->body_len = 0;
}
