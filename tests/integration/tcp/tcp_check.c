/* tcp_check.c: the CMQ TCP protocol against a running cluster, through
 * libcmq (and raw sockets for what a well-behaved client never sends).
 * Driven by test_tcp.py, which starts the cluster and creates the queues:
 *   tcp_check HOST:PORT SECRET_ID SECRET_KEY QUEUE EMPTY_QUEUE
 * QUEUE has visibilityTimeout 2 and pollingWaitSeconds 0; EMPTY_QUEUE is
 * only used here.  Prints one "ok"/"not ok" line per check (TAP); exit 1
 * when any failed.
 *   tcp_check --limits HOST:PORT SECRET_ID SECRET_KEY QUEUE EMPTY_QUEUE
 * runs the limit checks instead, against a gateway configured with
 * tcp.max_connections = 3, tcp.max_inflight = 4, tcp.idle_timeout_ms = 1500.
 *   tcp_check --drain HOST:PORT SECRET_ID SECRET_KEY QUEUE EMPTY_QUEUE PID
 * parks a long poll, sends SIGTERM to the gateway PID and checks the poll is
 * still answered before the connection closes (graceful stop). */
#include "cmq.h"
#include "cmq_frame.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int n_checks, n_failed;
static char host[64];
static unsigned port;
static const char *sid, *skey, *queue, *empty_queue;

static void check(const char *what, int cond, const char *detail)
{
    n_checks++;
    if (!cond)
        n_failed++;
    printf("%s %d - %s%s%s\n", cond ? "ok" : "not ok", n_checks, what, detail ? " # " : "",
           detail ? detail : "");
    fflush(stdout);
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static struct cmq_client *conn(const char *key, int sha256, int *code)
{
    struct cmq_client_opts o = {.host = host, .port = port, .secret_id = sid, .secret_key = key,
                                .hmac_sha256 = sha256, .client_id = "10.0.0.1@tcp_check"};
    struct cmq_client *c = NULL;
    char err[256];
    *code = cmq_connect(&o, &c, err, sizeof err);
    return *code == 0 ? c : NULL;
}

/* ---- raw socket helpers ---- */

static int raw_connect(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, host, &sa.sin_addr);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static void raw_send_frame(int fd, struct cmq_frame *f)
{
    uint8_t *b;
    size_t n;
    if (cmq_frame_encode(f, &b, &n) == CMQ_FRAME_OK) {
        (void)!write(fd, b, n);
        free(b);
    }
}

/* Reads one frame within timeout_ms into *f (payload kept in buf); 1 ok,
 * 0 closed by the server, -1 timeout. */
static int raw_read_frame(int fd, uint8_t *buf, size_t cap, struct cmq_frame *f, int timeout_ms)
{
    size_t have = 0, total = 0;
    uint64_t end = now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        if (have >= CMQ_FRAME_HDR && cmq_frame_peek(buf, have, 0, &total) == CMQ_FRAME_OK)
            return cmq_frame_decode(buf + CMQ_FRAME_HDR, total - CMQ_FRAME_HDR, f) == CMQ_FRAME_OK ? 1 : -1;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int left = (int)(end - now_ms());
        if (left <= 0 || poll(&p, 1, left) <= 0)
            return -1;
        ssize_t n = read(fd, buf + have, cap - have);
        if (n <= 0)
            return 0;
        have += (size_t)n;
    }
}

/* ---- async helpers ---- */

struct seen {
    int done;
    int order;
    struct cmq_result r;
    uint64_t at_ms;
};
static int order_counter;

static void on_result(void *arg, const struct cmq_result *r)
{
    struct seen *s = arg;
    s->done = 1;
    s->order = ++order_counter;
    s->at_ms = now_ms();
    s->r = *r;
    /* bodies are borrowed; keep the first body text for the check */
    s->r.n_msgs = 0;
    if (r->n_msgs) {
        s->r.msgs[0].body = (uint8_t *)strndup((const char *)r->msgs[0].body, r->msgs[0].body_len);
        s->r.n_msgs = 1;
    }
}

static void wait_done(struct cmq_client *c, struct seen *s, int timeout_ms)
{
    uint64_t end = now_ms() + (uint64_t)timeout_ms;
    while (!s->done && now_ms() < end && cmq_poll(c, 100) >= 0) {
    }
}

/* Pulls everything visible on `q` for up to ms, deleting it; the bodies,
 * space-separated, in got. */
static void drain_bodies(struct cmq_client *c, const char *q, char *got, size_t cap, uint64_t ms)
{
    got[0] = 0;
    uint64_t end = now_ms() + ms;
    struct cmq_result r;
    while (now_ms() < end) {
        cmq_pull(c, q, 16, 1, &r);
        for (size_t i = 0; r.code == 0 && i < r.n_msgs; i++) {
            strncat(got, (char *)r.msgs[i].body, cap - strlen(got) - 2);
            strcat(got, " ");
            cmq_delete(c, q, &r.msgs[i].receipt_handle, 1, &(struct cmq_result){0});
        }
        cmq_result_free(&r);
    }
}

/* The check-back test's producer: "unknown" at the first query of each
 * message, then commit for `commit_id`, rollback for the others. */
struct checker_state {
    uint64_t commit_id;
    uint64_t ids[8];
    int queries[8];
    int n, total;
    char queue[80];
};

static int checker(void *arg, const char *q, uint64_t msg_id)
{
    struct checker_state *s = arg;
    snprintf(s->queue, sizeof s->queue, "%s", q);
    s->total++;
    int i = 0;
    while (i < s->n && s->ids[i] != msg_id)
        i++;
    if (i == s->n) {
        if (s->n == 8)
            return 0;
        s->ids[s->n++] = msg_id;
    }
    if (s->queries[i]++ == 0)
        return 0;
    return msg_id == s->commit_id ? 1 : 2;
}

/* ---- transaction messages (§9) on queue "tcptx" (test_tcp.py creates it) ---- */
static void txn_checks(struct cmq_client *c)
{
    const char *tq = "tcptx";
    struct cmq_result r;
    char d[256], got[256];
    const void *b1[1] = {"tx-commit"}, *b2[1] = {"tx-rollback"};
    size_t l1 = 9, l2 = 11;
    cmq_send_txn(c, tq, b1, &l1, 1, 0, 60, &r); /* 60: seconds (§9.5), no check-back here */
    uint64_t commit_id = r.msg_ids[0];
    snprintf(d, sizeof d, "code %d n %zu", r.code, r.n_msg_ids);
    check("half message: stored, one id", r.code == 0 && r.n_msg_ids == 1 && commit_id, d);
    cmq_send_txn(c, tq, b2, &l2, 1, 0, 60000, &r);
    uint64_t rollback_id = r.msg_ids[0];
    check("second half message stored", r.code == 0 && rollback_id, NULL);
    const void *bb[3] = {"tb0", "tb1", "tb2"};
    size_t bl[3] = {3, 3, 3};
    cmq_send_txn(c, tq, bb, bl, 3, 1, 60, &r);
    uint64_t bids[3] = {r.msg_ids[0], r.msg_ids[1], r.msg_ids[2]};
    snprintf(d, sizeof d, "code %d n %zu", r.code, r.n_msg_ids);
    check("batch of half messages: three ids", r.code == 0 && r.n_msg_ids == 3, d);
    cmq_pull(c, tq, 16, 1, &r);
    snprintf(d, sizeof d, "code %d n %zu", r.code, r.n_msgs);
    check("half messages are not delivered before their confirm", r.code == 10200, d);
    cmq_result_free(&r);
    int commit = 1, rollback = 2;
    cmq_txn_confirm(c, tq, &commit_id, &commit, 1, &r);
    snprintf(d, sizeof d, "code %d", r.code);
    check("confirm commit (cmd 1041) answered 0", r.code == 0, d);
    cmq_txn_confirm(c, tq, &rollback_id, &rollback, 1, &r);
    check("confirm rollback answered 0", r.code == 0, NULL);
    int bst[2] = {1, 2};
    cmq_txn_confirm(c, tq, bids, bst, 2, &r);
    check("batch confirm (tb0 commit, tb1 rollback, tb2 undecided) answered 0", r.code == 0, NULL);
    drain_bodies(c, tq, got, sizeof got, 2500);
    check("exactly the committed ones are delivered", strcmp(got, "tx-commit tb0 ") == 0, got);
    cmq_txn_confirm(c, tq, &rollback_id, &commit, 1, &r);
    check("a late commit of a rolled-back message is ignored (answered 0)", r.code == 0, NULL);
    cmq_txn_confirm_async(c, tq, &bids[2], &rollback, 1, NULL, NULL); /* one-way, as the SDK */
    cmq_pull(c, tq, 16, 1, &r);
    snprintf(d, sizeof d, "code %d n %zu", r.code, r.n_msgs);
    check("... nothing more is delivered", r.code == 10200, d);
    cmq_result_free(&r);

    /* check-back (§9.3): the producer sends two half messages with a first
     * query interval of 1 (= 1 s) and confirms nothing; the server asks
     * (1042) on its connection, the checker says "unknown" first, then
     * commits one and rolls the other back */
    int code;
    struct cmq_client *prod = conn(skey, 0, &code);
    static struct checker_state cs;
    cmq_set_txn_checker(prod, checker, &cs);
    const void *cb1[1] = {"cb-commit"}, *cb2[1] = {"cb-rollback"};
    size_t cl1 = 9, cl2 = 11;
    cmq_send_txn(prod, tq, cb1, &cl1, 1, 0, 1, &r);
    cs.commit_id = r.msg_ids[0];
    int ok1 = r.code == 0;
    cmq_send_txn(prod, tq, cb2, &cl2, 1, 0, 1, &r);
    check("check-back: two half messages stored", ok1 && r.code == 0, NULL);
    uint64_t t0 = now_ms();
    while (now_ms() - t0 < 20000 && !(cs.n == 2 && cs.queries[0] >= 2 && cs.queries[1] >= 2))
        cmq_poll(prod, 200);
    snprintf(d, sizeof d, "%d queries for %d messages after %llu ms (queue \"%s\")", cs.total, cs.n,
             (unsigned long long)(now_ms() - t0), cs.queue);
    check("check-back: the server asked (1042) again after an unknown answer",
          cs.n == 2 && cs.queries[0] >= 2 && cs.queries[1] >= 2 && strcmp(cs.queue, tq) == 0, d);
    check("check-back: the first query came after about the first interval",
          now_ms() - t0 >= 1000, d);
    for (int i = 0; i < 5; i++)
        cmq_poll(prod, 100); /* the confirms leave */
    drain_bodies(c, tq, got, sizeof got, 3000);
    check("check-back: the committed one is delivered, the rolled-back one is not",
          strcmp(got, "cb-commit ") == 0, got);
    cmq_close(prod);
}

static int limits(void)
{
    char d[256];
    int code;
    /* connections: 3 per loop */
    struct cmq_client *cs[3];
    int all = 1;
    for (int i = 0; i < 3; i++) {
        cs[i] = conn(skey, 0, &code);
        all &= cs[i] != NULL;
    }
    check("three connections are accepted", all, NULL);
    struct cmq_client *fourth = conn(skey, 0, &code);
    snprintf(d, sizeof d, "code %d", code);
    check("a fourth is closed at accept (max_connections 3)", !fourth && code == CMQ_CLIENT_ETRANSPORT, d);
    cmq_close(fourth);
    for (int i = 1; i < 3; i++)
        cmq_close(cs[i]);
    struct cmq_client *c = cs[0];
    usleep(200000); /* the server notices the two closes */
    struct cmq_client *again = conn(skey, 0, &code);
    check("after two close, a new connection is accepted", again != NULL, NULL);

    /* in flight: 4 per connection */
    struct seen lp[4] = {{0}}, fifth = {0};
    uint64_t t0 = now_ms();
    for (int i = 0; i < 4; i++)
        cmq_pull_async(c, empty_queue, 0, 3, on_result, &lp[i]);
    cmq_pull_async(c, empty_queue, 0, 3, on_result, &fifth);
    wait_done(c, &fifth, 2000);
    snprintf(d, sizeof d, "done %d code %d after %llu ms", fifth.done, fifth.r.code,
             (unsigned long long)(fifth.at_ms - t0));
    check("a fifth request in flight is answered 4480 at once (max_inflight 4)",
          fifth.done && fifth.r.code == 4480 && fifth.at_ms - t0 < 1500, d);
    /* idle: the parked long polls (3 s) outlive the 1.5 s idle limit */
    for (int i = 0; i < 4; i++)
        wait_done(c, &lp[i], 6000);
    snprintf(d, sizeof d, "codes %d %d %d %d", lp[0].r.code, lp[1].r.code, lp[2].r.code, lp[3].r.code);
    check("a connection waiting on long polls is not idle: all four answer 10200",
          lp[0].r.code == 10200 && lp[1].r.code == 10200 && lp[2].r.code == 10200 &&
              lp[3].r.code == 10200, d);
    struct cmq_result r;
    cmq_send(c, queue, "x", 1, -1, &r);
    check("... and the connection still works", r.code == 0, NULL);
    /* a raw connection that says nothing is closed after ~1.5 s */
    int fd = raw_connect();
    uint8_t buf[256];
    struct cmq_frame f;
    t0 = now_ms();
    int got = raw_read_frame(fd, buf, sizeof buf, &f, 6000);
    snprintf(d, sizeof d, "read %d after %llu ms", got, (unsigned long long)(now_ms() - t0));
    check("a silent connection is closed by the idle limit",
          got == 0 && now_ms() - t0 >= 1400 && now_ms() - t0 < 4000, d);
    close(fd);
    cmq_close(c);
    cmq_close(again);
    printf("1..%d\n", n_checks);
    return n_failed ? 1 : 0;
}

static int drain(int pid)
{
    int code;
    char d[128];
    struct cmq_client *c = conn(skey, 0, &code);
    struct cmq_client *idle = conn(skey, 0, &code);
    check("two connections before the stop", c && idle, NULL);
    if (!c || !idle)
        return 1;
    struct seen lp = {0};
    cmq_pull_async(c, empty_queue, 0, 2, on_result, &lp);
    for (int i = 0; i < 3; i++)
        cmq_poll(c, 100);
    kill(pid, SIGTERM);
    int pr = 0;
    for (int i = 0; i < 30 && pr >= 0; i++)
        pr = cmq_poll(idle, 100);
    check("SIGTERM: an idle connection is closed at once", pr == CMQ_CLIENT_ETRANSPORT, NULL);
    wait_done(c, &lp, 6000);
    snprintf(d, sizeof d, "done %d code %d", lp.done, lp.r.code);
    check("SIGTERM: the parked long poll is still answered (10200)", lp.done && lp.r.code == 10200, d);
    pr = 0;
    for (int i = 0; i < 30 && pr >= 0; i++)
        pr = cmq_poll(c, 100);
    check("... then its connection is closed", pr == CMQ_CLIENT_ETRANSPORT, NULL);
    cmq_close(c);
    cmq_close(idle);
    printf("1..%d\n", n_checks);
    return n_failed ? 1 : 0;
}

int main(int argc, char **argv)
{
    int limits_mode = argc > 1 && strcmp(argv[1], "--limits") == 0;
    int drain_pid = 0;
    if (limits_mode) {
        argc--;
        argv++;
    } else if (argc == 8 && strcmp(argv[1], "--drain") == 0) {
        drain_pid = atoi(argv[7]);
        argc -= 2;
        argv++;
    }
    if (argc != 6) {
        fprintf(stderr, "usage: tcp_check HOST:PORT SECRET_ID SECRET_KEY QUEUE EMPTY_QUEUE\n");
        return 2;
    }
    const char *colon = strrchr(argv[1], ':');
    snprintf(host, sizeof host, "%.*s", (int)(colon - argv[1]), argv[1]);
    port = (unsigned)atoi(colon + 1);
    sid = argv[2];
    skey = argv[3];
    queue = argv[4];
    empty_queue = argv[5];
    if (limits_mode)
        return limits();
    if (drain_pid > 0)
        return drain(drain_pid);
    char d[256];
    int code;

    /* ---- auth (§6.2) ---- */
    struct cmq_client *c = conn(skey, 0, &code);
    check("auth HmacSHA1", c != NULL, NULL);
    struct cmq_client *c256 = conn(skey, 1, &code);
    check("auth HmacSHA256", c256 != NULL, NULL);
    if (!c || !c256)
        return 1;
    struct cmq_client *bad = conn("wrong-key", 0, &code);
    snprintf(d, sizeof d, "code %d", code);
    check("auth with a wrong key is refused with 4100", !bad && code == 4100, d);
    {
        struct cmq_client_opts o = {.host = host, .port = port, .secret_id = "AKIDnosuchkey0000",
                                    .secret_key = "x"};
        char err[256];
        code = cmq_connect(&o, &bad, err, sizeof err);
        snprintf(d, sizeof d, "code %d", code);
        check("auth with an unknown SecretId is refused (4100)", code == 4100, d);
    }
    {   /* a request before auth: 306, then the server closes */
        int fd = raw_connect();
        struct cmq_frame f;
        cmq_frame_init(&f, 7, cmqtcp_Cmd_CMD_SEND_MSG);
        f.m.has_tcp_send_msg = true;
        snprintf(f.m.tcp_send_msg.queue_name, sizeof f.m.tcp_send_msg.queue_name, "%s", queue);
        f.bodies[0] = (struct cmq_bytes){(const uint8_t *)"x", 1};
        f.n_bodies = 1;
        raw_send_frame(fd, &f);
        uint8_t buf[4096];
        struct cmq_frame r;
        int got = raw_read_frame(fd, buf, sizeof buf, &r, 3000);
        snprintf(d, sizeof d, "read %d result %d seqno %lld", got, got == 1 ? r.m.result : -1,
                 got == 1 ? (long long)r.m.seqno : -1LL);
        check("unauthenticated request answered 306 with its seqno", got == 1 && r.m.result == 306 &&
                  r.m.seqno == 7 && r.m.cmd == 1021, d);
        got = raw_read_frame(fd, buf, sizeof buf, &r, 3000);
        check("... and the connection is closed", got == 0, NULL);
        close(fd);
    }
    {   /* heartbeat before auth: answered with 1040, not 306 */
        int fd = raw_connect();
        struct cmq_frame f, r;
        cmq_frame_init(&f, 3, cmqtcp_Cmd_CMD_HEARTBEAT);
        raw_send_frame(fd, &f);
        uint8_t buf[4096];
        int got = raw_read_frame(fd, buf, sizeof buf, &r, 3000);
        check("heartbeat answered (cmd 1040, same seqno, result 0)",
              got == 1 && r.m.cmd == 1040 && r.m.seqno == 3 && r.m.result == 0, NULL);
        close(fd);
    }

    /* ---- send / pull / delete (§7.1-§7.6) ---- */
    struct cmq_result r;
    cmq_send(c, queue, "hello", 5, -1, &r);
    snprintf(d, sizeof d, "code %d n %zu", r.code, r.n_msg_ids);
    check("send: one id", r.code == 0 && r.n_msg_ids == 1 && r.msg_ids[0] != 0, d);
    uint64_t id1 = r.msg_ids[0];
    const void *bodies[3] = {"b1", "b2", "b3"};
    size_t lens[3] = {2, 2, 2};
    cmq_send_batch(c256, queue, bodies, lens, 3, 0, &r);
    check("batch send: three ids in order", r.code == 0 && r.n_msg_ids == 3 &&
              r.msg_ids[0] < r.msg_ids[1] && r.msg_ids[1] < r.msg_ids[2], NULL);
    cmq_pull(c, queue, 0, 1, &r);
    snprintf(d, sizeof d, "code %d n %zu", r.code, r.n_msgs);
    check("pull: the first message with its body", r.code == 0 && r.n_msgs == 1 &&
              r.msgs[0].msg_id == id1 && r.msgs[0].body_len == 5 &&
              memcmp(r.msgs[0].body, "hello", 5) == 0 && r.msgs[0].receipt_handle != 0, d);
    uint64_t h1 = r.msgs[0].receipt_handle;
    cmq_result_free(&r);
    cmq_pull(c, queue, 16, 1, &r);
    check("batch pull: the other three", r.code == 0 && r.n_msgs == 3 &&
              memcmp(r.msgs[2].body, "b3", 2) == 0, NULL);
    uint64_t hs[4] = {r.msgs[0].receipt_handle, r.msgs[1].receipt_handle, r.msgs[2].receipt_handle,
                      12345};
    cmq_result_free(&r);
    cmq_pull(c, queue, 16, 0, &r);
    snprintf(d, sizeof d, "code %d", r.code);
    check("pull while all are invisible: 10200", r.code == 10200, d);
    cmq_delete(c, queue, &h1, 1, &r);
    check("delete", r.code == 0, NULL);
    cmq_delete(c, queue, &h1, 1, &r);
    snprintf(d, sizeof d, "code %d", r.code);
    check("delete again: 4430 receipt handle invalid", r.code == 4430, d);
    cmq_delete(c, queue, hs, 4, &r);
    snprintf(d, sizeof d, "code %d failed %zu handle %llu", r.code, r.n_failed,
             r.n_failed ? (unsigned long long)r.failed[0].receipt_handle : 0ULL);
    check("batch delete with one bad handle: 6010, del_result lists only it",
          r.code == 6010 && r.n_failed == 1 && r.failed[0].receipt_handle == 12345 &&
              r.failed[0].code == 4430 && r.failed[0].error[0], d);
    /* visibility timeout: a message not deleted comes back (queue: 2 s) */
    cmq_send(c, queue, "vis", 3, -1, &r);
    cmq_pull(c, queue, 0, 1, &r);
    int pulled = r.code == 0;
    cmq_result_free(&r);
    cmq_pull(c, queue, 0, 4, &r);
    snprintf(d, sizeof d, "code %d count %lld", r.code, r.n_msgs ? (long long)r.msgs[0].dequeue_count : -1LL);
    check("visibility timeout: the undeleted message returns (dequeue count 2)",
          pulled && r.code == 0 && r.n_msgs == 1 && r.msgs[0].dequeue_count == 2, d);
    if (r.code == 0 && r.n_msgs) {
        uint64_t h = r.msgs[0].receipt_handle;
        cmq_result_free(&r);
        cmq_delete(c, queue, &h, 1, &r);
    }
    cmq_result_free(&r);
    /* delay */
    uint64_t t0 = now_ms();
    cmq_send(c, queue, "later", 5, 2, &r);
    cmq_pull(c, queue, 0, 0, &r);
    check("delayed message is not visible at once", r.code == 10200, NULL);
    cmq_pull(c, queue, 0, 5, &r);
    snprintf(d, sizeof d, "code %d after %llu ms", r.code, (unsigned long long)(now_ms() - t0));
    check("delayed message arrives after ~2 s (long poll)", r.code == 0 && now_ms() - t0 >= 1500, d);
    if (r.code == 0 && r.n_msgs) {
        uint64_t h = r.msgs[0].receipt_handle;
        cmq_result_free(&r);
        cmq_delete(c, queue, &h, 1, &r);
    }
    cmq_result_free(&r);
    cmq_send(c, "no-such-queue-xyz", "x", 1, -1, &r);
    snprintf(d, sizeof d, "code %d", r.code);
    check("send to a missing queue: 4440", r.code == 4440, d);
    cmq_pull(c, queue, 20, 0, &r);
    check("batch pull num 20 is clamped, not refused", r.code == 10200 || r.code == 0, NULL);
    cmq_result_free(&r);

    /* ---- pipelining with a parked long poll (§6.3) ---- */
    struct seen lp = {0}, s1 = {0}, s2 = {0};
    uint64_t lp_start = now_ms();
    check("long poll sent", cmq_pull_async(c, empty_queue, 0, 10, on_result, &lp) == 0, NULL);
    const void *one[1] = {"pipelined"};
    size_t onel[1] = {9};
    cmq_send_async(c, queue, one, onel, 1, 0, -1, on_result, &s1);
    wait_done(c, &s1, 5000);
    check("a send behind the parked long poll is answered first",
          s1.done && s1.r.code == 0 && !lp.done, NULL);
    /* another connection sends to the polled queue: the long poll returns */
    cmq_send(c256, empty_queue, "wake", 4, -1, &r);
    wait_done(c, &lp, 12000);
    snprintf(d, sizeof d, "done %d code %d after %llu ms", lp.done, lp.r.code,
             (unsigned long long)(lp.at_ms - lp_start));
    check("the long poll returns the message sent meanwhile, before its wait ends",
          lp.done && lp.r.code == 0 && lp.r.n_msgs == 1 && strcmp((char *)lp.r.msgs[0].body, "wake") == 0 &&
              lp.at_ms - lp_start < 9000, d);
    cmq_delete(c, empty_queue, &lp.r.msgs[0].receipt_handle, 1, &r);
    free(lp.r.msgs[0].body);
    /* an empty long poll answers 10200 at its wait */
    struct seen lp2 = {0};
    uint64_t t1 = now_ms();
    cmq_pull_async(c, empty_queue, 16, 1, on_result, &lp2);
    cmq_send_async(c, queue, one, onel, 1, 0, -1, on_result, &s2);
    wait_done(c, &lp2, 5000);
    snprintf(d, sizeof d, "code %d after %llu ms", lp2.r.code, (unsigned long long)(lp2.at_ms - t1));
    check("empty batch long poll: 10200 after its 1 s wait", lp2.done && lp2.r.code == 10200 &&
              lp2.at_ms - t1 >= 900 && s2.done && s2.order < lp2.order, d);

    /* ---- a malformed frame closes only its connection ---- */
    struct cmq_client *victim = conn(skey, 0, &code);
    const uint8_t junk[] = {0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07};
    cmq_send_raw(victim, junk, sizeof junk);
    int pr = 0;
    for (int i = 0; i < 30 && pr >= 0; i++)
        pr = cmq_poll(victim, 100);
    check("bad marker: that connection is closed", pr == CMQ_CLIENT_ETRANSPORT, NULL);
    cmq_close(victim);
    victim = conn(skey, 0, &code);
    const uint8_t undecodable[] = {0, 0, 9, 0, 0, 0, 0x08, 0x01, 0xff};
    cmq_send_raw(victim, undecodable, sizeof undecodable);
    pr = 0;
    for (int i = 0; i < 30 && pr >= 0; i++)
        pr = cmq_poll(victim, 100);
    check("undecodable head: that connection is closed", pr == CMQ_CLIENT_ETRANSPORT, NULL);
    cmq_close(victim);
    victim = conn(skey, 0, &code);
    const uint8_t huge[] = {0, 0, 0xff, 0xff, 0xff, 0x7f};
    cmq_send_raw(victim, huge, sizeof huge);
    pr = 0;
    for (int i = 0; i < 30 && pr >= 0; i++)
        pr = cmq_poll(victim, 100);
    check("frame over the cap: that connection is closed", pr == CMQ_CLIENT_ETRANSPORT, NULL);
    cmq_close(victim);
    cmq_send(c, queue, "still", 5, -1, &r);
    check("the other connections go on", r.code == 0, NULL);
    cmq_send(c256, queue, "still", 5, -1, &r);
    check("... both of them", r.code == 0, NULL);

    /* ---- publish / batch publish (§7.7, §7.8): topic "tcpt" (tags) has queue
     * "tcpsub" subscribed with filter tag "red"; topic "tcprt" (routing) has
     * "tcprk" bound with "a.*" (test_tcp.py creates them) ---- */
    const char *red[1] = {"red"}, *blue[1] = {"blue"};
    cmq_publish(c, "tcpt", "p-red", 5, red, 1, NULL, &r);
    snprintf(d, sizeof d, "code %d n %zu", r.code, r.n_msg_ids);
    check("publish with a matching tag: one id", r.code == 0 && r.n_msg_ids == 1, d);
    cmq_publish(c, "tcpt", "p-blue", 6, blue, 1, NULL, &r);
    snprintf(d, sizeof d, "code %d", r.code);
    check("publish with no matching subscription: 6030", r.code == 6030, d);
    struct seen bp = {0};
    const void *pb[2] = {"p-b1", "p-b2"};
    size_t pbl[2] = {4, 4};
    cmq_publish_async(c, "tcpt", pb, pbl, 2, 1, red, 1, NULL, on_result, &bp);
    wait_done(c, &bp, 5000);
    check("batch publish: two ids", bp.done && bp.r.code == 0 && bp.r.n_msg_ids == 2, NULL);
    char got[64] = "";
    uint64_t end = now_ms() + 8000;
    while (now_ms() < end && strlen(got) < 15) {
        cmq_pull(c, "tcpsub", 16, 2, &r);
        for (size_t i = 0; r.code == 0 && i < r.n_msgs; i++) {
            strncat(got, (char *)r.msgs[i].body, sizeof got - strlen(got) - 2);
            strcat(got, " ");
            cmq_delete(c, "tcpsub", &r.msgs[i].receipt_handle, 1, &(struct cmq_result){0});
        }
        cmq_result_free(&r);
    }
    check("the subscribed queue receives the red messages in order", strcmp(got, "p-red p-b1 p-b2 ") == 0, got);
    cmq_publish(c, "tcprt", "rk", 2, NULL, 0, "a.b", &r);
    snprintf(d, sizeof d, "code %d", r.code);
    check("publish with a matching routing key", r.code == 0 && r.n_msg_ids == 1, d);
    cmq_publish(c, "tcprt", "rk", 2, NULL, 0, "x.y", &r);
    snprintf(d, sizeof d, "code %d", r.code);
    check("publish with an unmatched routing key: 6030", r.code == 6030, d);
    cmq_publish(c, "tcprt", "rk", 2, NULL, 0, NULL, &r);
    snprintf(d, sizeof d, "code %d", r.code);
    check("routing topic without a routing key: 4000", r.code == 4000, d);
    cmq_publish(c, "no-such-topic", "x", 1, NULL, 0, NULL, &r);
    snprintf(d, sizeof d, "code %d", r.code);
    check("publish to a missing topic: 4440", r.code == 4440, d);

    txn_checks(c);

    cmq_close(c);
    cmq_close(c256);
    printf("1..%d\n", n_checks);
    return n_failed ? 1 : 0;
}
