/* Tests for common/rpc: real ZeroMQ sockets over TCP on loopback.  A server
 * runs in a thread of the test process; "a peer that died" is a server whose
 * socket was closed. */
#include "envelope.pb.h"
#include "rpc.h"
#include "status.h"

#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

struct server_thread {
    void *zctx;
    char endpoint[64];
    const char *leader_hint; /* non-NULL: answer ENOTLEADER with this hint */
    int silent;              /* never answer */
    atomic_int busy;         /* answer CMQ_EBUSY to this many requests first */
    atomic_int stop;
    atomic_int ready;
    atomic_int handled;
    pthread_t tid;
};

static void echo(struct rpc_server *srv, struct rpc_call *call, void *arg)
{
    (void)srv;
    struct server_thread *t = arg;
    atomic_fetch_add(&t->handled, 1);
    if (t->silent) {
        rpc_drop(call);
        return;
    }
    if (atomic_load(&t->busy) > 0) {
        atomic_fetch_sub(&t->busy, 1);
        rpc_reply(call, CMQ_EBUSY, NULL, 0, NULL, "busy");
        return;
    }
    if (t->leader_hint) {
        rpc_reply(call, CMQ_ENOTLEADER, NULL, 0, t->leader_hint, "not leader");
        return;
    }
    const struct rpc_msg *m = rpc_call_request(call);
    char reply[128];
    int n = snprintf(reply, sizeof reply, "%s:%.*s", t->endpoint, (int)m->body_len,
                     (const char *)m->body);
    rpc_reply(call, CMQ_OK, reply, (size_t)n, NULL, NULL);
}

static void *serve(void *arg)
{
    struct server_thread *t = arg;
    struct rpc_server *srv;
    int rc = rpc_server_open(t->zctx, t->endpoint, echo, t, &srv);
    atomic_store(&t->ready, rc == CMQ_OK ? 1 : -1);
    if (rc != CMQ_OK)
        return NULL;
    while (!atomic_load(&t->stop)) {
        zmq_pollitem_t it = {.fd = rpc_server_fd(srv), .events = ZMQ_POLLIN};
        zmq_poll(&it, 1, 10);
        rpc_server_process(srv);
    }
    rpc_server_close(srv);
    return NULL;
}

static int next_port = 0;

static void start(struct server_thread *t, void *zctx)
{
    if (!next_port)
        next_port = 29000 + (getpid() % 2000) * 2;
    memset(t, 0, sizeof *t);
    t->zctx = zctx;
    snprintf(t->endpoint, sizeof t->endpoint, "tcp://127.0.0.1:%d", next_port++);
    pthread_create(&t->tid, NULL, serve, t);
    while (!atomic_load(&t->ready))
        usleep(1000);
    cr_assert_eq(atomic_load(&t->ready), 1, "server failed to bind %s", t->endpoint);
}

static void stop(struct server_thread *t)
{
    atomic_store(&t->stop, 1);
    pthread_join(t->tid, NULL);
}

struct outcome {
    int done;
    int status;
    int peer;
    char body[128];
};

static void record(void *arg, const struct rpc_result *r)
{
    struct outcome *o = arg;
    o->done++;
    o->status = r->status;
    o->peer = r->peer;
    if (r->msg)
        snprintf(o->body, sizeof o->body, "%.*s", (int)r->msg->body_len, (const char *)r->msg->body);
}

static void wait_for(struct rpc_client *c, struct outcome *o, int max_ms)
{
    for (int waited = 0; !o->done && waited < max_ms; waited += 10)
        rpc_client_wait(c, 10);
}

Test(rpc, request_reply)
{
    void *zctx = zmq_ctx_new();
    struct server_thread s;
    start(&s, zctx);
    const char *eps[] = {s.endpoint};
    struct rpc_client *c;
    cr_assert_eq(rpc_client_open(zctx, eps, 1, &c), CMQ_OK);
    usleep(100 * 1000); /* let the connection come up: ZMQ_IMMEDIATE refuses sends before */
    struct outcome o = {0};
    struct rpc_opts opts = {.timeout_ms = 2000, .attempts = 1, .peer = 0};
    cr_assert_eq(rpc_client_call(c, 7, "ping", 4, &opts, record, &o), CMQ_OK);
    cr_assert_eq(o.done, 0, "the callback never runs inside call()");
    wait_for(c, &o, 3000);
    cr_assert_eq(o.done, 1);
    cr_assert_eq(o.status, CMQ_OK);
    char want[128];
    snprintf(want, sizeof want, "%s:ping", s.endpoint);
    cr_assert_str_eq(o.body, want);
    rpc_client_close(c);
    stop(&s);
    zmq_ctx_term(zctx);
}

Test(rpc, many_pipelined_requests_each_answered_once)
{
    void *zctx = zmq_ctx_new();
    struct server_thread s;
    start(&s, zctx);
    const char *eps[] = {s.endpoint};
    struct rpc_client *c;
    cr_assert_eq(rpc_client_open(zctx, eps, 1, &c), CMQ_OK);
    usleep(100 * 1000);
    enum { N = 500 };
    static struct outcome o[N];
    memset(o, 0, sizeof o);
    struct rpc_opts opts = {.timeout_ms = 5000, .attempts = 1, .peer = 0};
    for (int i = 0; i < N; i++) {
        char body[16];
        int n = snprintf(body, sizeof body, "%d", i);
        cr_assert_eq(rpc_client_call(c, 7, body, (size_t)n, &opts, record, &o[i]), CMQ_OK);
    }
    for (int waited = 0; rpc_client_pending(c) && waited < 10000; waited += 10)
        rpc_client_wait(c, 10);
    for (int i = 0; i < N; i++) {
        char want[128];
        snprintf(want, sizeof want, "%s:%d", s.endpoint, i);
        cr_assert_eq(o[i].done, 1, "request %d", i);
        cr_assert_str_eq(o[i].body, want);
    }
    rpc_client_close(c);
    stop(&s);
    zmq_ctx_term(zctx);
}

Test(rpc, timeout_when_the_server_never_answers)
{
    void *zctx = zmq_ctx_new();
    struct server_thread s;
    start(&s, zctx);
    s.silent = 1;
    const char *eps[] = {s.endpoint};
    struct rpc_client *c;
    cr_assert_eq(rpc_client_open(zctx, eps, 1, &c), CMQ_OK);
    usleep(100 * 1000);
    struct outcome o = {0};
    struct rpc_opts opts = {.timeout_ms = 200, .attempts = 1, .peer = 0};
    cr_assert_eq(rpc_client_call(c, 7, "x", 1, &opts, record, &o), CMQ_OK);
    wait_for(c, &o, 3000);
    cr_assert_eq(o.done, 1);
    cr_assert_eq(o.status, CMQ_ETIMEDOUT);
    cr_assert_eq(atomic_load(&s.handled), 1, "the server did receive it");
    rpc_client_close(c);
    stop(&s);
    zmq_ctx_term(zctx);
}

Test(rpc, a_dead_peer_fails_over_to_the_next)
{
    void *zctx = zmq_ctx_new();
    struct server_thread dead, alive;
    start(&dead, zctx);
    start(&alive, zctx);
    const char *eps[] = {dead.endpoint, alive.endpoint};
    struct rpc_client *c;
    cr_assert_eq(rpc_client_open(zctx, eps, 2, &c), CMQ_OK);
    usleep(100 * 1000);
    stop(&dead); /* the peer dies after the client connected */
    usleep(200 * 1000);
    struct outcome o = {0};
    struct rpc_opts opts = {.timeout_ms = 300, .attempts = 2, .peer = 0};
    cr_assert_eq(rpc_client_call(c, 7, "hi", 2, &opts, record, &o), CMQ_OK);
    wait_for(c, &o, 3000);
    cr_assert_eq(o.done, 1);
    cr_assert_eq(o.status, CMQ_OK);
    cr_assert_eq(o.peer, 1);
    char want[128];
    snprintf(want, sizeof want, "%s:hi", alive.endpoint);
    cr_assert_str_eq(o.body, want);
    rpc_client_close(c);
    stop(&alive);
    zmq_ctx_term(zctx);
}

Test(rpc, dead_peer_and_no_other_is_unavailable_or_timeout)
{
    void *zctx = zmq_ctx_new();
    const char *eps[] = {"tcp://127.0.0.1:9"}; /* nothing listens on the discard port */
    struct rpc_client *c;
    cr_assert_eq(rpc_client_open(zctx, eps, 1, &c), CMQ_OK);
    struct outcome o = {0};
    struct rpc_opts opts = {.timeout_ms = 200, .attempts = 2, .peer = 0};
    cr_assert_eq(rpc_client_call(c, 7, "x", 1, &opts, record, &o), CMQ_OK);
    wait_for(c, &o, 3000);
    cr_assert_eq(o.done, 1);
    cr_assert(o.status == CMQ_EUNAVAIL || o.status == CMQ_ETIMEDOUT, "got %s",
              status_name(o.status));
    rpc_client_close(c);
    zmq_ctx_term(zctx);
}

Test(rpc, not_leader_hint_is_followed)
{
    void *zctx = zmq_ctx_new();
    struct server_thread follower, leader;
    start(&leader, zctx);
    start(&follower, zctx);
    follower.leader_hint = leader.endpoint;
    const char *eps[] = {follower.endpoint, leader.endpoint};
    struct rpc_client *c;
    cr_assert_eq(rpc_client_open(zctx, eps, 2, &c), CMQ_OK);
    usleep(100 * 1000);
    struct outcome o = {0};
    struct rpc_opts opts = {.timeout_ms = 1000, .attempts = 3, .peer = 0};
    cr_assert_eq(rpc_client_call(c, 7, "w", 1, &opts, record, &o), CMQ_OK);
    wait_for(c, &o, 3000);
    cr_assert_eq(o.status, CMQ_OK);
    cr_assert_eq(o.peer, 1);
    cr_assert_eq(atomic_load(&follower.handled), 1);
    cr_assert_eq(atomic_load(&leader.handled), 1);
    rpc_client_close(c);
    stop(&follower);
    stop(&leader);
    zmq_ctx_term(zctx);
}

Test(rpc, close_ends_pending_with_shutdown)
{
    void *zctx = zmq_ctx_new();
    struct server_thread s;
    start(&s, zctx);
    s.silent = 1;
    const char *eps[] = {s.endpoint};
    struct rpc_client *c;
    cr_assert_eq(rpc_client_open(zctx, eps, 1, &c), CMQ_OK);
    usleep(100 * 1000);
    struct outcome o = {0};
    struct rpc_opts opts = {.timeout_ms = 10000, .attempts = 1, .peer = 0};
    cr_assert_eq(rpc_client_call(c, 7, "x", 1, &opts, record, &o), CMQ_OK);
    rpc_client_close(c);
    cr_assert_eq(o.done, 1);
    cr_assert_eq(o.status, CMQ_ESHUTDOWN);
    stop(&s);
    zmq_ctx_term(zctx);
}

Test(rpc, sync_call)
{
    void *zctx = zmq_ctx_new();
    struct server_thread s;
    start(&s, zctx);
    const char *eps[] = {s.endpoint};
    struct rpc_sync_result r;
    struct rpc_opts opts = {.timeout_ms = 2000, .attempts = 1, .peer = 0};
    cr_assert_eq(rpc_call_sync(zctx, eps, 1, 9, "abc", 3, &opts, &r), CMQ_OK);
    char want[128];
    int n = snprintf(want, sizeof want, "%s:abc", s.endpoint);
    cr_assert_eq(r.body_len, (size_t)n);
    cr_assert_arr_eq(r.body, want, (size_t)n);
    rpc_sync_result_free(&r);
    stop(&s);
    zmq_ctx_term(zctx);
}

Test(rpc, bind_conflict_is_ebusy)
{
    void *zctx = zmq_ctx_new();
    struct server_thread s;
    start(&s, zctx);
    struct rpc_server *srv;
    cr_assert_eq(rpc_server_open(zctx, s.endpoint, echo, &s, &srv), CMQ_EBUSY);
    stop(&s);
    zmq_ctx_term(zctx);
}

/* retry_ms: a busy answer is asked again (same peer, after a backoff) until
 * the budget is spent; without a budget it is the answer. */
Test(rpc, busy_is_retried_within_the_retry_budget)
{
    void *zctx = zmq_ctx_new();
    struct server_thread s;
    start(&s, zctx);
    const char *eps[] = {s.endpoint};
    struct rpc_client *c;
    cr_assert_eq(rpc_client_open(zctx, eps, 1, &c), CMQ_OK);
    usleep(100 * 1000);
    atomic_store(&s.busy, 3);
    struct outcome o = {0};
    struct rpc_opts opts = {.timeout_ms = 1000, .attempts = 1, .peer = 0, .retry_ms = 3000};
    cr_assert_eq(rpc_client_call(c, 7, "b", 1, &opts, record, &o), CMQ_OK);
    wait_for(c, &o, 5000);
    cr_assert_eq(o.done, 1);
    cr_assert_eq(o.status, CMQ_OK);
    cr_assert_eq(atomic_load(&s.handled), 4, "three busy answers, then the reply");
    cr_assert_eq(rpc_client_resends(c, RPC_RESEND_BUSY), 3);

    atomic_store(&s.busy, 1);
    struct outcome o2 = {0};
    struct rpc_opts plain = {.timeout_ms = 1000, .attempts = 3, .peer = 0};
    cr_assert_eq(rpc_client_call(c, 7, "b", 1, &plain, record, &o2), CMQ_OK);
    wait_for(c, &o2, 3000);
    cr_assert_eq(o2.status, CMQ_EBUSY, "without a budget, busy is the answer");

    atomic_store(&s.busy, 1000000);
    struct outcome o3 = {0};
    struct rpc_opts shortb = {.timeout_ms = 1000, .attempts = 1, .peer = 0, .retry_ms = 300};
    cr_assert_eq(rpc_client_call(c, 7, "b", 1, &shortb, record, &o3), CMQ_OK);
    wait_for(c, &o3, 3000);
    cr_assert_eq(o3.done, 1);
    cr_assert_eq(o3.status, CMQ_EBUSY, "the budget spent: the last answer");
    rpc_client_close(c);
    stop(&s);
    zmq_ctx_term(zctx);
}

/* retry_ms: a silent peer times out and the request moves on to the next
 * peer (counted), beyond `attempts`. */
Test(rpc, timeouts_move_on_within_the_retry_budget)
{
    void *zctx = zmq_ctx_new();
    struct server_thread quiet, alive;
    start(&quiet, zctx);
    start(&alive, zctx);
    quiet.silent = 1;
    const char *eps[] = {quiet.endpoint, alive.endpoint};
    struct rpc_client *c;
    cr_assert_eq(rpc_client_open(zctx, eps, 2, &c), CMQ_OK);
    usleep(100 * 1000);
    struct outcome o = {0};
    struct rpc_opts opts = {.timeout_ms = 200, .attempts = 1, .peer = 0, .retry_ms = 2000};
    cr_assert_eq(rpc_client_call(c, 7, "t", 1, &opts, record, &o), CMQ_OK);
    wait_for(c, &o, 3000);
    cr_assert_eq(o.status, CMQ_OK);
    cr_assert_eq(o.peer, 1);
    cr_assert_eq(rpc_client_resends(c, RPC_RESEND_TIMEOUT), 1);
    rpc_client_close(c);
    stop(&quiet);
    stop(&alive);
    zmq_ctx_term(zctx);
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* A peer process that dies closes its connections: the request it held is
 * re-sent to the next peer at once (the socket monitor), not at its deadline. */
Test(rpc, a_peer_that_dies_holding_a_request_is_left_at_once)
{
    void *zctx = zmq_ctx_new();
    struct server_thread dying, alive;
    start(&dying, zctx);
    start(&alive, zctx);
    dying.silent = 1; /* takes the request, then dies before answering */
    const char *eps[] = {dying.endpoint, alive.endpoint};
    struct rpc_client *c;
    cr_assert_eq(rpc_client_open(zctx, eps, 2, &c), CMQ_OK);
    cr_assert_geq(rpc_client_monitor_fd(c, 0), 0, "a monitor per peer");
    usleep(100 * 1000);
    struct outcome o = {0};
    struct rpc_opts opts = {.timeout_ms = 5000, .attempts = 2, .peer = 0};
    cr_assert_eq(rpc_client_call(c, 7, "hi", 2, &opts, record, &o), CMQ_OK);
    for (int i = 0; i < 300 && atomic_load(&dying.handled) == 0; i++)
        rpc_client_wait(c, 10);
    cr_assert_eq(atomic_load(&dying.handled), 1);
    uint64_t t0 = now_ms();
    stop(&dying); /* its connections close, as when a process is killed */
    wait_for(c, &o, 4000);
    uint64_t took = now_ms() - t0;
    cr_assert_eq(o.done, 1);
    cr_assert_eq(o.status, CMQ_OK, "got %s", status_name(o.status));
    cr_assert_eq(o.peer, 1);
    cr_assert_lt(took, 1000, "re-sent when the connection dropped (%llu ms), not at the "
                 "5000 ms deadline", (unsigned long long)took);
    cr_assert_eq(rpc_client_resends(c, RPC_RESEND_UNREACHABLE), 1);
    rpc_client_close(c);
    stop(&alive);
    zmq_ctx_term(zctx);
}
