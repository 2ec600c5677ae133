/* Tests for services/scheduler: the real cmq-scheduler process (path in
 * CMQ_SCHEDULER_BIN) on a free localhost port, and a test-side owner (an rpc
 * server in a thread, standing in for a storage partition leader) that
 * registers timers and records every FIRE it receives with its arrival time.
 * Each test ends by sending SIGTERM and expecting exit 0 within 5 s. */
#include "clock.h"
#include "envelope.pb.h"
#include "rpc.h"
#include "scheduler.pb.h"
#include "status.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zmq.h>

#define LATE_BOUND_MS 500 /* generous: sanitizer builds on a busy 2-core machine */

/* ---------- the scheduler process ---------- */

static struct {
    pid_t pid;
    char dir[64];
    char endpoint[64];
    void *zctx;
} sched;

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t len = sizeof a;
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static int call(uint32_t type, const pb_msgdesc_t *fields, const void *req,
                const pb_msgdesc_t *rfields, void *rep)
{
    uint8_t *body = NULL;
    size_t len = 0;
    cr_assert_eq(rpc_pb_encode(fields, req, &body, &len), CMQ_OK);
    const char *eps[1] = {sched.endpoint};
    struct rpc_opts o = {.timeout_ms = 2000, .attempts = 1, .peer = 0};
    struct rpc_sync_result r;
    int st = rpc_call_sync(sched.zctx, eps, 1, type, body, len, &o, &r);
    free(body);
    if (rfields && rep && r.body_len)
        cr_assert_eq(rpc_pb_decode(rfields, rep, r.body, r.body_len), CMQ_OK);
    rpc_sync_result_free(&r);
    return st;
}

/* Starts cmq-scheduler with the two keys tools/cmq writes plus `extra`. */
static void start_scheduler(const char *extra)
{
    const char *bin = getenv("CMQ_SCHEDULER_BIN");
    cr_assert_not_null(bin, "CMQ_SCHEDULER_BIN is not set");
    snprintf(sched.dir, sizeof sched.dir, "/tmp/cmq-sched-test-XXXXXX");
    cr_assert_not_null(mkdtemp(sched.dir));
    snprintf(sched.endpoint, sizeof sched.endpoint, "tcp://127.0.0.1:%d", free_port());
    char path[128], log[128];
    snprintf(path, sizeof path, "%s/scheduler.ini", sched.dir);
    snprintf(log, sizeof log, "%s/scheduler.log", sched.dir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fprintf(f, "[node]\nid = scheduler-test\n[rpc]\nlisten = %s\n%s", sched.endpoint,
            extra ? extra : "");
    fclose(f);
    sched.pid = fork();
    cr_assert_geq(sched.pid, 0);
    if (sched.pid == 0) {
        /* Never outlive the test, even when it crashes. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        FILE *lf = freopen(log, "w", stderr);
        lf = lf ? freopen("/dev/null", "w", stdout) : NULL;
        (void)lf;
        execl(bin, bin, "--config", path, (char *)NULL);
        _exit(127);
    }
    sched.zctx = zmq_ctx_new();
    cr_assert_not_null(sched.zctx);
    uint64_t give_up = clock_mono_ms() + 10000;
    for (;;) {
        cmq_HealthRequest hreq = cmq_HealthRequest_init_zero;
        if (call(cmq_MsgType_MSG_HEALTH, cmq_HealthRequest_fields, &hreq, NULL, NULL) == CMQ_OK)
            break;
        cr_assert_lt(clock_mono_ms(), give_up, "cmq-scheduler did not answer health (log: %s)",
                     log);
        usleep(20000);
    }
}

/* SIGTERM; the process must exit 0 within 5 s. */
static void stop_scheduler(void)
{
    cr_assert_eq(kill(sched.pid, SIGTERM), 0);
    uint64_t give_up = clock_mono_ms() + 5000;
    int status = 0;
    pid_t r;
    while ((r = waitpid(sched.pid, &status, WNOHANG)) == 0 && clock_mono_ms() < give_up)
        usleep(10000);
    if (r == 0) {
        kill(sched.pid, SIGKILL);
        waitpid(sched.pid, &status, 0);
        cr_assert_fail("cmq-scheduler did not exit within 5 s of SIGTERM");
    }
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "cmq-scheduler exited with status %d", status);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", sched.dir);
    cr_assert_eq(system(cmd), 0);
}

/* ---------- the owner: an rpc server in a thread ---------- */

struct fired {
    uint64_t partition, epoch, key, due_ms, arrived_ms, instance;
    char payload[33];
};

#define FIRED_MAX 4096

static struct {
    char endpoint[64];
    pthread_t tid;
    atomic_int stop, ready;
    pthread_mutex_t mu;
    struct fired fired[FIRED_MAX];
    int n;
    int fail_next;      /* answer this many FIREs with fail_status */
    int fail_status;
    int fires;          /* FIRE requests received */
} owner = {.mu = PTHREAD_MUTEX_INITIALIZER};

static cmq_SchedFire fire_msg; /* only the owner thread decodes into it */

static void owner_handle(struct rpc_server *srv, struct rpc_call *c, void *arg)
{
    (void)srv; (void)arg;
    uint64_t now = clock_wall_ms();
    if (rpc_call_request(c)->type != cmq_SchedMsgType_SCHED_MSG_FIRE) {
        rpc_reply_status(c, CMQ_EUNSUPPORTED, "owner takes FIRE only");
        return;
    }
    memset(&fire_msg, 0, sizeof fire_msg);
    if (rpc_call_decode(c, cmq_SchedFire_fields, &fire_msg) != CMQ_OK) {
        rpc_reply_status(c, CMQ_EINVAL, "bad SchedFire");
        return;
    }
    pthread_mutex_lock(&owner.mu);
    owner.fires++;
    if (owner.fail_next > 0) {
        owner.fail_next--;
        int st = owner.fail_status;
        pthread_mutex_unlock(&owner.mu);
        rpc_reply_status(c, st, "test owner refuses");
        return;
    }
    for (pb_size_t i = 0; i < fire_msg.timers_count && owner.n < FIRED_MAX; i++) {
        struct fired *f = &owner.fired[owner.n++];
        f->partition = fire_msg.partition;
        f->epoch = fire_msg.epoch;
        f->instance = fire_msg.instance;
        f->key = fire_msg.timers[i].key;
        f->due_ms = fire_msg.timers[i].due_ms;
        f->arrived_ms = now;
        memcpy(f->payload, fire_msg.timers[i].payload.bytes, fire_msg.timers[i].payload.size);
        f->payload[fire_msg.timers[i].payload.size] = 0;
    }
    pthread_mutex_unlock(&owner.mu);
    cmq_SchedFireAck ack = cmq_SchedFireAck_init_zero;
    rpc_reply_pb(c, cmq_SchedFireAck_fields, &ack);
}

static void *owner_serve(void *arg)
{
    struct rpc_server *srv;
    int rc = rpc_server_open(arg, owner.endpoint, owner_handle, NULL, &srv);
    atomic_store(&owner.ready, rc == CMQ_OK ? 1 : -1);
    if (rc != CMQ_OK)
        return NULL;
    while (!atomic_load(&owner.stop)) {
        zmq_pollitem_t it = {.fd = rpc_server_fd(srv), .events = ZMQ_POLLIN};
        zmq_poll(&it, 1, 5);
        rpc_server_process(srv);
    }
    rpc_server_close(srv);
    return NULL;
}

static void start_owner(void)
{
    snprintf(owner.endpoint, sizeof owner.endpoint, "tcp://127.0.0.1:%d", free_port());
    atomic_store(&owner.stop, 0);
    atomic_store(&owner.ready, 0);
    owner.n = owner.fires = owner.fail_next = 0;
    pthread_create(&owner.tid, NULL, owner_serve, sched.zctx);
    while (!atomic_load(&owner.ready))
        usleep(1000);
    cr_assert_eq(atomic_load(&owner.ready), 1, "owner could not bind %s", owner.endpoint);
}

static void stop_owner(void)
{
    atomic_store(&owner.stop, 1);
    pthread_join(owner.tid, NULL);
}

static void setup_default(void)
{
    start_scheduler(NULL);
    start_owner();
}

static void teardown(void)
{
    stop_owner();
    zmq_ctx_term(sched.zctx);
    stop_scheduler();
}

static int fired_count(void)
{
    pthread_mutex_lock(&owner.mu);
    int n = owner.n;
    pthread_mutex_unlock(&owner.mu);
    return n;
}

/* Waits until `n` timers have fired or `ms` passed; returns the count. */
static int wait_fired(int n, int ms)
{
    uint64_t give_up = clock_mono_ms() + (uint64_t)ms;
    while (fired_count() < n && clock_mono_ms() < give_up)
        usleep(2000);
    return fired_count();
}

/* ---------- requests ---------- */

static cmq_SchedRegister reg_msg;

/* Registers timers keys[i] due at dues[i] (wall ms) for (partition, epoch). */
static int reg(uint64_t partition, uint64_t epoch, int replace, int n, const uint64_t *keys,
               const uint64_t *dues, cmq_SchedReply *out)
{
    memset(&reg_msg, 0, sizeof reg_msg);
    reg_msg.partition = partition;
    reg_msg.epoch = epoch;
    snprintf(reg_msg.endpoint, sizeof reg_msg.endpoint, "%s", owner.endpoint);
    reg_msg.now_ms = clock_wall_ms();
    reg_msg.replace = replace;
    reg_msg.timers_count = (pb_size_t)n;
    for (int i = 0; i < n; i++) {
        reg_msg.timers[i].key = keys[i];
        reg_msg.timers[i].due_ms = dues[i];
        reg_msg.timers[i].payload.size =
            (pb_size_t)snprintf((char *)reg_msg.timers[i].payload.bytes,
                                sizeof reg_msg.timers[i].payload.bytes, "k%llu",
                                (unsigned long long)keys[i]);
    }
    cmq_SchedReply r = cmq_SchedReply_init_zero;
    int st = call(cmq_SchedMsgType_SCHED_MSG_REGISTER, cmq_SchedRegister_fields, &reg_msg,
                  cmq_SchedReply_fields, &r);
    if (out)
        *out = r;
    return st;
}

/* Registers keys first..first+n-1, all due `in_ms` from now. */
static int reg_range(uint64_t partition, uint64_t epoch, int replace, uint64_t first, int n,
                     uint64_t in_ms, cmq_SchedReply *out)
{
    uint64_t keys[512], dues[512];
    uint64_t now = clock_wall_ms();
    for (int i = 0; i < n; i++) {
        keys[i] = first + (uint64_t)i;
        dues[i] = now + in_ms;
    }
    return reg(partition, epoch, replace, n, keys, dues, out);
}

static cmq_SchedStats stats(void)
{
    cmq_SchedStatsRequest q = cmq_SchedStatsRequest_init_zero;
    cmq_SchedStats st = cmq_SchedStats_init_zero;
    cr_assert_eq(call(cmq_SchedMsgType_SCHED_MSG_STATS, cmq_SchedStatsRequest_fields, &q,
                      cmq_SchedStats_fields, &st), CMQ_OK);
    return st;
}

static int fired_has(uint64_t key)
{
    int found = 0;
    pthread_mutex_lock(&owner.mu);
    for (int i = 0; i < owner.n; i++)
        found += owner.fired[i].key == key;
    pthread_mutex_unlock(&owner.mu);
    return found;
}

/* ---------- tests ---------- */

TestSuite(scheduler, .init = setup_default, .fini = teardown, .timeout = 60);

Test(scheduler, timers_fire_in_due_order_never_early_within_bound)
{
    enum { N = 40 };
    uint64_t keys[N], dues[N], now = clock_wall_ms();
    for (int i = 0; i < N; i++) { /* registered out of due order */
        int slot = (i * 7) % N;
        keys[i] = 1000 + (uint64_t)slot;
        dues[i] = now + 200 + (uint64_t)slot * 25;
    }
    cmq_SchedReply r;
    cr_assert_eq(reg(7, 1, 0, N, keys, dues, &r), CMQ_OK);
    cr_assert_eq(r.applied, N);
    cr_assert_eq(r.timers, N);
    cr_assert_neq(r.instance, 0);
    cr_assert_eq(wait_fired(N, 5000), N, "only %d of %d fired", fired_count(), N);
    pthread_mutex_lock(&owner.mu);
    for (int i = 0; i < N; i++) {
        struct fired *f = &owner.fired[i];
        cr_assert_eq(f->key, 1000 + (uint64_t)i, "fired out of due order at %d", i);
        cr_assert_geq(f->arrived_ms, f->due_ms, "key %llu fired %llu ms early",
                      (unsigned long long)f->key, (unsigned long long)(f->due_ms - f->arrived_ms));
        cr_assert_leq(f->arrived_ms, f->due_ms + LATE_BOUND_MS, "key %llu fired %llu ms late",
                      (unsigned long long)f->key, (unsigned long long)(f->arrived_ms - f->due_ms));
        cr_assert_eq(f->partition, 7);
        cr_assert_eq(f->epoch, 1);
        cr_assert_eq(f->instance, r.instance);
        char want[33];
        snprintf(want, sizeof want, "k%llu", (unsigned long long)f->key);
        cr_assert_str_eq(f->payload, want);
    }
    pthread_mutex_unlock(&owner.mu);
    cmq_SchedStats st = stats();
    cr_assert_eq(st.timers, 0, "acknowledged timers are released");
    cr_assert_eq(st.fired, N);
    cr_assert_eq(st.next_due_in_ms, -1);
}

Test(scheduler, thousands_of_equal_timers_fire_in_batches_in_registration_order)
{
    enum { N = 2000, CHUNK = 500 };
    /* Equal due times within a request; chunks 50 ms apart, because across
     * requests equal owner-clock times may differ by the transit jitter once
     * mapped to the monotonic clock (docs/scheduler.md §3). */
    uint64_t keys[CHUNK], dues[CHUNK], due = clock_wall_ms() + 600;
    for (int c = 0; c < N / CHUNK; c++) {
        for (int i = 0; i < CHUNK; i++) {
            keys[i] = (uint64_t)(c * CHUNK + i);
            dues[i] = due + (uint64_t)c * 50;
        }
        cr_assert_eq(reg(12, 1, 0, CHUNK, keys, dues, NULL), CMQ_OK);
    }
    cr_assert_eq(wait_fired(N, 10000), N);
    pthread_mutex_lock(&owner.mu);
    for (int i = 0; i < N; i++) {
        cr_assert_eq(owner.fired[i].key, (uint64_t)i, "equal due times fire in link order");
        cr_assert_geq(owner.fired[i].arrived_ms, owner.fired[i].due_ms);
        cr_assert_leq(owner.fired[i].arrived_ms, owner.fired[i].due_ms + 2 * LATE_BOUND_MS);
    }
    pthread_mutex_unlock(&owner.mu);
    cmq_SchedStats st = stats();
    cr_assert_geq(st.fire_batches, N / 256, "fire.batch_max (256) bounds each FIRE");
    cr_assert_eq(st.timers, 0);
}

Test(scheduler, a_past_due_timer_fires_at_once)
{
    uint64_t key = 5, due = clock_wall_ms() - 60000;
    cr_assert_eq(reg(1, 1, 0, 1, &key, &due, NULL), CMQ_OK);
    cr_assert_eq(wait_fired(1, 2000), 1);
}

Test(scheduler, cancel_by_key)
{
    cr_assert_eq(reg_range(3, 1, 0, 1, 10, 400, NULL), CMQ_OK);
    cmq_SchedCancel c = cmq_SchedCancel_init_zero;
    c.partition = 3;
    c.epoch = 1;
    for (int k = 2; k <= 10; k += 2)
        c.keys[c.keys_count++] = (uint64_t)k;
    c.keys[c.keys_count++] = 999; /* unknown keys are ignored */
    cmq_SchedReply r = cmq_SchedReply_init_zero;
    cr_assert_eq(call(cmq_SchedMsgType_SCHED_MSG_CANCEL, cmq_SchedCancel_fields, &c,
                      cmq_SchedReply_fields, &r), CMQ_OK);
    cr_assert_eq(r.applied, 5);
    cr_assert_eq(r.timers, 5);
    wait_fired(5, 3000);
    usleep(500000); /* nothing more may arrive */
    cr_assert_eq(fired_count(), 5);
    for (uint64_t k = 1; k <= 10; k++)
        cr_assert_eq(fired_has(k), (int)(k % 2), "key %llu", (unsigned long long)k);
}

Test(scheduler, cancel_all_forgets_the_partition)
{
    cr_assert_eq(reg_range(4, 2, 0, 1, 10, 300, NULL), CMQ_OK);
    cmq_SchedCancel c = cmq_SchedCancel_init_zero;
    c.partition = 4;
    c.epoch = 2;
    c.all = 1;
    cmq_SchedReply r = cmq_SchedReply_init_zero;
    cr_assert_eq(call(cmq_SchedMsgType_SCHED_MSG_CANCEL, cmq_SchedCancel_fields, &c,
                      cmq_SchedReply_fields, &r), CMQ_OK);
    cr_assert_eq(r.applied, 10);
    cmq_SchedStats st = stats();
    cr_assert_eq(st.owners, 0);
    cr_assert_eq(st.timers, 0);
    usleep(600000);
    cr_assert_eq(fired_count(), 0);
}

Test(scheduler, moving_a_timer_keeps_one_timer_per_key)
{
    cmq_SchedReply r;
    cr_assert_eq(reg_range(2, 1, 0, 42, 1, 10000, &r), CMQ_OK);
    cr_assert_eq(reg_range(2, 1, 0, 42, 1, 200, &r), CMQ_OK);
    cr_assert_eq(r.timers, 1);
    cr_assert_eq(wait_fired(1, 2000), 1, "the moved timer fires at its new time");
    usleep(300000);
    cr_assert_eq(fired_count(), 1);
}

Test(scheduler, a_newer_epoch_supersedes_and_an_older_one_is_stale)
{
    cr_assert_eq(reg_range(9, 1, 0, 1, 5, 400, NULL), CMQ_OK);
    cmq_SchedReply r;
    cr_assert_eq(reg_range(9, 2, 1, 100, 3, 400, &r), CMQ_OK);
    cr_assert_eq(r.timers, 3, "the old epoch's timers were dropped");
    cr_assert_eq(r.epoch, 2);
    cr_assert_eq(reg_range(9, 1, 0, 50, 1, 100, &r), CMQ_ESTALE);
    cr_assert_eq(r.epoch, 2, "the refusal names the epoch held");
    cr_assert_eq(wait_fired(3, 3000), 3);
    usleep(400000);
    cr_assert_eq(fired_count(), 3);
    for (uint64_t k = 100; k < 103; k++)
        cr_assert_eq(fired_has(k), 1);
    pthread_mutex_lock(&owner.mu);
    for (int i = 0; i < owner.n; i++)
        cr_assert_eq(owner.fired[i].epoch, 2);
    pthread_mutex_unlock(&owner.mu);
}

Test(scheduler, replace_within_an_epoch_drops_the_rest)
{
    cr_assert_eq(reg_range(11, 3, 0, 1, 5, 300, NULL), CMQ_OK);
    cmq_SchedReply r;
    cr_assert_eq(reg_range(11, 3, 1, 6, 2, 300, &r), CMQ_OK);
    cr_assert_eq(r.timers, 2);
    cr_assert_eq(wait_fired(2, 3000), 2);
    usleep(400000);
    cr_assert_eq(fired_count(), 2);
    cr_assert(fired_has(6) && fired_has(7));
}

Test(scheduler, unacknowledged_fires_are_retried_until_acknowledged)
{
    pthread_mutex_lock(&owner.mu);
    owner.fail_next = 3;
    owner.fail_status = CMQ_EBUSY;
    pthread_mutex_unlock(&owner.mu);
    cr_assert_eq(reg_range(5, 1, 0, 1, 4, 100, NULL), CMQ_OK);
    cr_assert_eq(wait_fired(4, 5000), 4);
    cmq_SchedStats st = stats();
    cr_assert_geq(st.fire_failures, 3);
    cr_assert_eq(st.fired, 4);
    cr_assert_eq(st.timers, 0);
}

Test(scheduler, an_owner_answering_stale_ends_its_epoch)
{
    pthread_mutex_lock(&owner.mu);
    owner.fail_next = 1;
    owner.fail_status = CMQ_ESTALE;
    pthread_mutex_unlock(&owner.mu);
    cr_assert_eq(reg_range(6, 1, 0, 1, 3, 100, NULL), CMQ_OK);
    uint64_t give_up = clock_mono_ms() + 3000;
    cmq_SchedStats st;
    do {
        usleep(20000);
        st = stats();
    } while (st.owners != 0 && clock_mono_ms() < give_up);
    cr_assert_eq(st.owners, 0);
    cr_assert_eq(st.timers, 0);
    usleep(300000);
    cr_assert_eq(fired_count(), 0);
}

Test(scheduler, an_unreachable_owner_is_retried_and_does_not_delay_sigterm)
{
    /* Register for an endpoint where nobody listens; the fixture's teardown
     * then checks SIGTERM still ends the process with 0 within 5 s. */
    char saved[64];
    snprintf(saved, sizeof saved, "%s", owner.endpoint);
    snprintf(owner.endpoint, sizeof owner.endpoint, "tcp://127.0.0.1:%d", free_port());
    cr_assert_eq(reg_range(8, 1, 0, 1, 3, 0, NULL), CMQ_OK);
    snprintf(owner.endpoint, sizeof owner.endpoint, "%s", saved);
    usleep(400000);
    cmq_SchedStats st = stats();
    cr_assert_eq(st.timers, 3, "unacknowledged timers are kept");
    cr_assert_geq(st.fire_failures, 2, "and retried");
    cr_assert_eq(st.fired, 0);
}

Test(scheduler, bad_requests_are_refused_and_change_nothing)
{
    cmq_SchedReply r;
    uint64_t key = 1, due = clock_wall_ms() + 30ull * 86400000; /* beyond 10 days */
    cr_assert_eq(reg(1, 1, 0, 1, &key, &due, &r), CMQ_EINVAL);
    memset(&reg_msg, 0, sizeof reg_msg);
    reg_msg.partition = 1;
    snprintf(reg_msg.endpoint, sizeof reg_msg.endpoint, "not-an-endpoint");
    cr_assert_eq(call(cmq_SchedMsgType_SCHED_MSG_REGISTER, cmq_SchedRegister_fields, &reg_msg,
                      NULL, NULL), CMQ_EINVAL);
    const char junk[] = "\xff\xff\xff\xff";
    const char *eps[1] = {sched.endpoint};
    struct rpc_sync_result sr;
    cr_assert_eq(rpc_call_sync(sched.zctx, eps, 1, cmq_SchedMsgType_SCHED_MSG_REGISTER, junk, 4,
                               NULL, &sr), CMQ_EINVAL);
    rpc_sync_result_free(&sr);
    cr_assert_eq(rpc_call_sync(sched.zctx, eps, 1, 499, NULL, 0, NULL, &sr), CMQ_EUNSUPPORTED);
    rpc_sync_result_free(&sr);
    cmq_SchedStats st = stats();
    cr_assert_eq(st.owners, 0);
    cr_assert_eq(st.timers, 0);
}

Test(scheduler, health_detail_carries_the_stats)
{
    cr_assert_eq(reg_range(1, 1, 0, 1, 3, 60000, NULL), CMQ_OK);
    cmq_HealthRequest q = cmq_HealthRequest_init_zero;
    cmq_HealthReply h = cmq_HealthReply_init_zero;
    cr_assert_eq(call(cmq_MsgType_MSG_HEALTH, cmq_HealthRequest_fields, &q, cmq_HealthReply_fields,
                      &h), CMQ_OK);
    cr_assert_str_eq(h.service, "scheduler");
    cr_assert_not_null(strstr(h.detail, " timers=3 "), "detail: %s", h.detail);
    cr_assert_not_null(strstr(h.detail, "owners=1 "), "detail: %s", h.detail);
    cr_assert_not_null(strstr(h.detail, "late_ms_max="), "detail: %s", h.detail);
    cmq_SchedStats st = stats();
    /* A lower bound (the start of the wheel slot holding the earliest timer). */
    cr_assert_geq(st.next_due_in_ms, 0);
    cr_assert_leq(st.next_due_in_ms, 60000);
}

/* Limits: a separate scheduler with small ones. */
static void setup_limited(void)
{
    start_scheduler("[limits]\nowner_timers_max = 20\ntimers_max = 30\nowners_max = 2\n");
    start_owner();
}

TestSuite(scheduler_limits, .init = setup_limited, .fini = teardown, .timeout = 60);

Test(scheduler_limits, over_limit_registrations_are_refused_with_elimit)
{
    cmq_SchedReply r;
    cr_assert_eq(reg_range(1, 1, 0, 1, 20, 60000, &r), CMQ_OK);
    cr_assert_eq(reg_range(1, 1, 0, 21, 1, 60000, &r), CMQ_ELIMIT, "per-partition limit");
    cr_assert_eq(r.timers, 20, "a refused request changes nothing");
    cr_assert_eq(reg_range(1, 1, 0, 5, 3, 30000, &r), CMQ_OK, "moving held keys adds nothing");
    cr_assert_eq(reg_range(2, 1, 0, 1, 11, 60000, &r), CMQ_ELIMIT, "total limit");
    cr_assert_eq(reg_range(2, 1, 0, 1, 10, 60000, &r), CMQ_OK);
    cr_assert_eq(reg_range(3, 1, 0, 1, 0, 60000, &r), CMQ_ELIMIT, "owners limit");
    cr_assert_eq(reg_range(1, 1, 1, 100, 20, 60000, &r), CMQ_OK,
                 "replace counts only the new set");
    cmq_SchedStats st = stats();
    cr_assert_eq(st.timers, 30);
    cr_assert_eq(st.owners, 2);
    cr_assert_eq(st.refused, 3);
}

Test(scheduler, a_restarted_scheduler_has_a_new_instance)
{
    cmq_SchedStats a = stats();
    stop_owner();
    zmq_ctx_term(sched.zctx);
    stop_scheduler();
    setup_default();
    cmq_SchedStats b = stats();
    cr_assert_neq(a.instance, b.instance);
    cr_assert_eq(b.timers, 0, "nothing survives a restart: owners re-register");
}
