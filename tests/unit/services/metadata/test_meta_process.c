/* test_meta_process.c: the real cmq-metadata process (path in
 * $CMQ_METADATA_EXE), driven with rpc_call_sync over ZeroMQ: create / list /
 * set / delete round trips, error bodies with CMQ codes, change events on the
 * PUB socket, and a restart that keeps everything (the SQLite file is the
 * truth). */
#include "metadata.pb.h"
#include "envelope.pb.h"
#include "rpc.h"
#include "status.h"
#include "../../tmpdir.h"

#include <criterion/criterion.h>
#include <pb_decode.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

static char dir[64], rpc_ep[128], pub_ep[128], conf[128];
static pid_t child = -1;
static void *zctx;

static void start(void)
{
    const char *exe = getenv("CMQ_METADATA_EXE");
    cr_assert_not_null(exe, "CMQ_METADATA_EXE not set");
    char logp[128];
    snprintf(logp, sizeof logp, "%s/metadata.log", dir);
    child = fork();
    cr_assert_geq(child, 0);
    if (child == 0) {
        FILE *l = freopen(logp, "a", stderr);
        (void)l;
        execl(exe, exe, "--config", conf, (char *)NULL);
        _exit(127);
    }
    /* wait for health */
    for (int i = 0; i < 100; i++) {
        cmq_HealthRequest hr = cmq_HealthRequest_init_zero;
        uint8_t *b;
        size_t n;
        rpc_pb_encode(cmq_HealthRequest_fields, &hr, &b, &n);
        struct rpc_sync_result res;
        const char *ep = rpc_ep;
        struct rpc_opts o = {.timeout_ms = 200, .attempts = 1, .peer = 0};
        int st = rpc_call_sync(zctx, &ep, 1, cmq_MsgType_MSG_HEALTH, b, n, &o, &res);
        free(b);
        rpc_sync_result_free(&res);
        if (st == CMQ_OK)
            return;
        usleep(50000);
    }
    cr_assert_fail("cmq-metadata did not answer health (see %s)", logp);
}

static int stop(void)
{
    if (child <= 0)
        return -1;
    kill(child, SIGTERM);
    int ws = 0;
    waitpid(child, &ws, 0);
    child = -1;
    return WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
}

static void setup(void)
{
    tmpdir_make(dir, sizeof dir, "meta-proc");
    snprintf(rpc_ep, sizeof rpc_ep, "ipc://%s/rpc.sock", dir);
    snprintf(pub_ep, sizeof pub_ep, "ipc://%s/pub.sock", dir);
    snprintf(conf, sizeof conf, "%s/metadata.ini", dir);
    FILE *f = fopen(conf, "w");
    cr_assert_not_null(f);
    fprintf(f,
            "[node]\nid = metadata-test\n[rpc]\nlisten = %s\n[pub]\nlisten = %s\n"
            "[db]\npath = %s/db/metadata.db\n[namespace]\nname_reuse_wait_ms = -1\n",
            rpc_ep, pub_ep, dir);
    fclose(f);
    zctx = zmq_ctx_new();
    start();
}

static void teardown(void)
{
    if (child > 0)
        stop();
    zmq_ctx_term(zctx);
    tmpdir_remove(dir);
}

TestSuite(process, .init = setup, .fini = teardown, .timeout = 60);

/* One request; returns the status; decodes the reply into `rep` on CMQ_OK
 * and the MetaError into `err` otherwise. */
static int req(uint32_t type, const pb_msgdesc_t *qf, const void *q, const pb_msgdesc_t *rf,
               void *rep, cmq_MetaError *err)
{
    uint8_t *b;
    size_t n;
    cr_assert_eq(rpc_pb_encode(qf, q, &b, &n), CMQ_OK);
    struct rpc_sync_result res;
    const char *ep = rpc_ep;
    struct rpc_opts o = {.timeout_ms = 3000, .attempts = 1, .peer = 0};
    int st = rpc_call_sync(zctx, &ep, 1, type, b, n, &o, &res);
    free(b);
    if (st == CMQ_OK && rf)
        cr_assert_eq(rpc_pb_decode(rf, rep, res.body, res.body_len), CMQ_OK);
    if (st != CMQ_OK && err) {
        *err = (cmq_MetaError)cmq_MetaError_init_zero;
        cr_assert_eq(rpc_pb_decode(cmq_MetaError_fields, err, res.body, res.body_len), CMQ_OK);
        cr_assert_str_eq(res.error, err->reason);
    }
    rpc_sync_result_free(&res);
    return st;
}

/* Reads events until `kind` arrives (or 2 s pass); returns it in *ev. */
static int wait_event(void *sub, const char *kind, cmq_MetaEvent *ev)
{
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        zmq_pollitem_t it = {sub, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, 200) > 0) {
            char topic[64] = "";
            int n = zmq_recv(sub, topic, sizeof topic - 1, 0);
            cr_assert_geq(n, 0);
            topic[n] = '\0';
            uint8_t buf[2048];
            n = zmq_recv(sub, buf, sizeof buf, 0);
            cr_assert_geq(n, 0);
            *ev = (cmq_MetaEvent)cmq_MetaEvent_init_zero;
            cr_assert_eq(rpc_pb_decode(cmq_MetaEvent_fields, ev, buf, (size_t)n), CMQ_OK);
            cr_assert_str_eq(ev->kind, topic);
            if (strcmp(topic, kind) == 0)
                return 1;
        }
        struct timespec t1;
        clock_gettime(CLOCK_MONOTONIC, &t1);
        if ((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000 > 2000)
            return 0;
    }
}

Test(process, round_trips_errors_events_and_restart)
{
    void *sub = zmq_socket(zctx, ZMQ_SUB);
    int linger = 0;
    zmq_setsockopt(sub, ZMQ_LINGER, &linger, sizeof linger);
    cr_assert_eq(zmq_connect(sub, pub_ep), 0);
    cr_assert_eq(zmq_setsockopt(sub, ZMQ_SUBSCRIBE, "", 0), 0);
    usleep(300000); /* let the subscription reach the publisher */

    cmq_MetaError err;
    cmq_AccountCreateRequest ar = cmq_AccountCreateRequest_init_zero;
    cmq_Account acc = cmq_Account_init_zero;
    cr_assert_eq(req(cmq_MetaMsgType_META_MSG_ACCOUNT_CREATE, cmq_AccountCreateRequest_fields, &ar,
                     cmq_Account_fields, &acc, &err),
                 CMQ_OK);
    cmq_KeyCreateRequest kr = {.appid = acc.appid};
    cmq_Key key = cmq_Key_init_zero, got = cmq_Key_init_zero;
    cr_assert_eq(req(cmq_MetaMsgType_META_MSG_KEY_CREATE, cmq_KeyCreateRequest_fields, &kr,
                     cmq_Key_fields, &key, &err),
                 CMQ_OK);
    cmq_KeyRequest kq = cmq_KeyRequest_init_zero;
    strcpy(kq.secret_id, key.secret_id);
    cr_assert_eq(req(cmq_MetaMsgType_META_MSG_KEY_GET_SECRET, cmq_KeyRequest_fields, &kq,
                     cmq_Key_fields, &got, &err),
                 CMQ_OK);
    cr_assert_str_eq(got.secret_key, key.secret_key);

    /* queue: create, duplicate, set, get, list */
    cmq_QueueRequest qr = cmq_QueueRequest_init_zero;
    qr.appid = acc.appid;
    strcpy(qr.name, "orders");
    cmq_QueueInfo qi = cmq_QueueInfo_init_zero;
    cr_assert_eq(req(cmq_MetaMsgType_META_MSG_QUEUE_CREATE, cmq_QueueRequest_fields, &qr,
                     cmq_QueueInfo_fields, &qi, &err),
                 CMQ_OK);
    cr_assert_eq(qi.visibility_timeout, 30);
    cmq_MetaEvent ev;
    cr_assert(wait_event(sub, "queue.created", &ev), "no queue.created event");
    cr_assert_str_eq(ev.name, "orders");
    cr_assert_str_eq(ev.id, qi.queue_id);
    cr_assert_eq(ev.appid, acc.appid);
    strcpy(qr.name, "ORDERS");
    cr_assert_eq(req(cmq_MetaMsgType_META_MSG_QUEUE_CREATE, cmq_QueueRequest_fields, &qr,
                     cmq_QueueInfo_fields, &qi, &err),
                 CMQ_EEXIST);
    cr_assert_eq(err.row, cmq_MetaRow_META_ROW_QUEUE_EXISTS);
    strcpy(qr.name, "orders");
    qr.has_visibility_timeout = true;
    qr.visibility_timeout = 43201;
    cr_assert_eq(req(cmq_MetaMsgType_META_MSG_QUEUE_SET, cmq_QueueRequest_fields, &qr,
                     cmq_QueueInfo_fields, &qi, &err),
                 CMQ_EINVAL);
    cr_assert_eq(err.row, cmq_MetaRow_META_ROW_PARAM_RANGE);
    cr_assert_str_eq(err.param, "visibilityTimeout");
    qr.visibility_timeout = 60;
    cr_assert_eq(req(cmq_MetaMsgType_META_MSG_QUEUE_SET, cmq_QueueRequest_fields, &qr,
                     cmq_QueueInfo_fields, &qi, &err),
                 CMQ_OK);
    cr_assert(wait_event(sub, "queue.updated", &ev));
    strcpy(qr.name, "invoices");
    qr.has_visibility_timeout = false;
    cr_assert_eq(req(cmq_MetaMsgType_META_MSG_QUEUE_CREATE, cmq_QueueRequest_fields, &qr,
                     cmq_QueueInfo_fields, &qi, &err),
                 CMQ_OK);
    cmq_ListRequest lr = cmq_ListRequest_init_zero;
    lr.appid = acc.appid;
    cmq_QueueList ql = cmq_QueueList_init_zero;
    cr_assert_eq(req(cmq_MetaMsgType_META_MSG_QUEUE_LIST, cmq_ListRequest_fields, &lr,
                     cmq_QueueList_fields, &ql, &err),
                 CMQ_OK);
    cr_assert_eq(ql.total_count, 2);
    cr_assert_str_eq(ql.queues[0].queue_name, "orders");
    cr_assert_str_eq(ql.queues[1].queue_name, "invoices");

    /* topic + subscription, with the list reply using pointer arrays */
    cmq_TopicRequest tr = cmq_TopicRequest_init_zero;
    tr.appid = acc.appid;
    strcpy(tr.name, "news");
    cmq_TopicInfo ti = cmq_TopicInfo_init_zero;
    cr_assert_eq(req(cmq_MetaMsgType_META_MSG_TOPIC_CREATE, cmq_TopicRequest_fields, &tr,
                     cmq_TopicInfo_fields, &ti, &err),
                 CMQ_OK);
    cmq_SubRequest sr = cmq_SubRequest_init_zero;
    sr.appid = acc.appid;
    strcpy(sr.topic_name, "news");
    strcpy(sr.subscription_name, "to-orders");
    strcpy(sr.protocol, "queue");
    strcpy(sr.endpoint, "orders");
    cmq_SubInfo si = cmq_SubInfo_init_zero;
    cr_assert_eq(req(cmq_MetaMsgType_META_MSG_SUB_CREATE, cmq_SubRequest_fields, &sr,
                     cmq_SubInfo_fields, &si, &err),
                 CMQ_OK);
    cr_assert(wait_event(sub, "subscription.created", &ev));
    cr_assert_str_eq(ev.sub_name, "to-orders");
    strcpy(lr.topic_name, "news");
    cmq_SubList sl = cmq_SubList_init_zero;
    cr_assert_eq(req(cmq_MetaMsgType_META_MSG_SUB_LIST, cmq_ListRequest_fields, &lr,
                     cmq_SubList_fields, &sl, &err),
                 CMQ_OK);
    cr_assert_eq(sl.subscriptions_count, 1);
    cr_assert_str_eq(sl.subscriptions[0].endpoint, "orders");
    pb_release(cmq_SubList_fields, &sl);

    /* delete a queue */
    cmq_NameRequest nr = cmq_NameRequest_init_zero;
    nr.appid = acc.appid;
    strcpy(nr.name, "invoices");
    cr_assert_eq(req(cmq_MetaMsgType_META_MSG_QUEUE_DELETE, cmq_NameRequest_fields, &nr,
                     cmq_QueueInfo_fields, &qi, &err),
                 CMQ_OK);
    cr_assert(wait_event(sub, "queue.deleted", &ev));
    cr_assert_eq(req(cmq_MetaMsgType_META_MSG_QUEUE_GET, cmq_NameRequest_fields, &nr,
                     cmq_QueueInfo_fields, &qi, &err),
                 CMQ_ENOTFOUND);
    cr_assert_eq(err.row, cmq_MetaRow_META_ROW_QUEUE_NOT_EXIST);

    /* storage nodes register; partitions appear; the queue gets placed */
    for (int i = 1; i <= 3; i++) {
        cmq_NodeRequest nq = cmq_NodeRequest_init_zero;
        snprintf(nq.node_id, sizeof nq.node_id, "storage-%d", i);
        snprintf(nq.endpoint, sizeof nq.endpoint, "tcp://127.0.0.1:%d", 17200 + i);
        cmq_NodeReply nrep = cmq_NodeReply_init_zero;
        cr_assert_eq(req(cmq_MetaMsgType_META_MSG_NODE_REGISTER, cmq_NodeRequest_fields, &nq,
                         cmq_NodeReply_fields, &nrep, &err),
                     CMQ_OK);
        cr_assert_eq(nrep.partitions_count, i == 3 ? 6 : 0);
        pb_release(cmq_NodeReply_fields, &nrep);
    }
    cmq_PartitionMap pm = cmq_PartitionMap_init_zero;
    cr_assert_eq(req(cmq_MetaMsgType_META_MSG_PARTITION_MAP, cmq_ListRequest_fields, &lr,
                     cmq_PartitionMap_fields, &pm, &err),
                 CMQ_OK);
    cr_assert_eq(pm.partitions_count, 6);
    cr_assert_eq(pm.nodes_count, 3);
    uint64_t version = pm.map_version;
    pb_release(cmq_PartitionMap_fields, &pm);
    zmq_close(sub);

    /* unknown type */
    cr_assert_eq(req(199, cmq_ListRequest_fields, &lr, NULL, NULL, NULL), CMQ_EUNSUPPORTED);

    /* restart: everything is still there */
    cr_assert_eq(stop(), 0);
    start();
    strcpy(nr.name, "orders");
    cr_assert_eq(req(cmq_MetaMsgType_META_MSG_QUEUE_GET, cmq_NameRequest_fields, &nr,
                     cmq_QueueInfo_fields, &qi, &err),
                 CMQ_OK);
    cr_assert_eq(qi.visibility_timeout, 60);
    cr_assert_neq(qi.partition_id, 0);
    got = (cmq_Key)cmq_Key_init_zero;
    cr_assert_eq(req(cmq_MetaMsgType_META_MSG_KEY_GET_SECRET, cmq_KeyRequest_fields, &kq,
                     cmq_Key_fields, &got, &err),
                 CMQ_OK);
    cr_assert_str_eq(got.secret_key, key.secret_key);
    pm = (cmq_PartitionMap)cmq_PartitionMap_init_zero;
    cr_assert_eq(req(cmq_MetaMsgType_META_MSG_PARTITION_MAP, cmq_ListRequest_fields, &lr,
                     cmq_PartitionMap_fields, &pm, &err),
                 CMQ_OK);
    cr_assert_eq(pm.map_version, version);
    cr_assert_eq(pm.partitions_count, 6);
    pb_release(cmq_PartitionMap_fields, &pm);
    /* disable, and the gateway's lookup says so */
    cr_assert_eq(req(cmq_MetaMsgType_META_MSG_KEY_DISABLE, cmq_KeyRequest_fields, &kq,
                     cmq_Key_fields, &got, &err),
                 CMQ_OK);
    cr_assert_eq(req(cmq_MetaMsgType_META_MSG_KEY_GET_SECRET, cmq_KeyRequest_fields, &kq,
                     cmq_Key_fields, &got, &err),
                 CMQ_EAUTH);
    cr_assert_eq(err.row, cmq_MetaRow_META_ROW_SECRET_ID_STATUS);
}

/* Runs cmqctl ($CMQCTL_EXE) with `args`; returns the exit code and the
 * first `cap` bytes of its stdout in `out`. */
static int cmqctl(const char *args, char *out, size_t cap)
{
    const char *exe = getenv("CMQCTL_EXE");
    cr_assert_not_null(exe, "CMQCTL_EXE not set");
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s %s --endpoint %s 2>/dev/null", exe, args, rpc_ep);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    int ws = pclose(p);
    return WIFEXITED(ws) ? WEXITSTATUS(ws) : -1;
}

Test(process, cmqctl_bootstraps_an_account_and_disables_its_key)
{
    char out[1024], args[256];
    cr_assert_eq(cmqctl("account create --format env", out, sizeof out), 0);
    unsigned long long appid = 0;
    cr_assert_eq(sscanf(out, "CMQ_APPID=%llu\n", &appid), 1, "%s", out);
    snprintf(args, sizeof args, "key create --account %llu --format env", appid);
    cr_assert_eq(cmqctl(args, out, sizeof out), 0);
    char sid[64] = "", skey[64] = "";
    cr_assert_eq(sscanf(out, "CMQ_SECRET_ID=%63s\nCMQ_SECRET_KEY=%63s\n", sid, skey), 2, "%s", out);
    cr_assert_eq(strncmp(sid, "AKID", 4), 0);
    cr_assert_eq(strlen(skey), 32);
    /* the secret the gateway gets is the one printed */
    cmq_KeyRequest kq = cmq_KeyRequest_init_zero;
    snprintf(kq.secret_id, sizeof kq.secret_id, "%s", sid);
    cmq_Key got = cmq_Key_init_zero;
    cmq_MetaError err;
    cr_assert_eq(req(cmq_MetaMsgType_META_MSG_KEY_GET_SECRET, cmq_KeyRequest_fields, &kq,
                     cmq_Key_fields, &got, &err),
                 CMQ_OK);
    cr_assert_str_eq(got.secret_key, skey);
    snprintf(args, sizeof args, "key disable %s", sid);
    cr_assert_eq(cmqctl(args, out, sizeof out), 0);
    cr_assert(strstr(out, "enabled=no") != NULL, "%s", out);
    cr_assert_eq(req(cmq_MetaMsgType_META_MSG_KEY_GET_SECRET, cmq_KeyRequest_fields, &kq,
                     cmq_Key_fields, &got, &err),
                 CMQ_EAUTH);
    cr_assert_eq(cmqctl("key disable AKIDnosuchkey", out, sizeof out), 1);
    cr_assert_eq(cmqctl("key create", out, sizeof out), 2);
    cr_assert_eq(cmqctl("account frobnicate", out, sizeof out), 2);
    snprintf(args, sizeof args, "acl grant %s SendMessage queue:orders-*", sid);
    cr_assert_eq(cmqctl(args, out, sizeof out), 0);
    snprintf(args, sizeof args, "acl list %s", sid);
    cr_assert_eq(cmqctl(args, out, sizeof out), 0);
    cr_assert(strstr(out, "resource=queue:orders-*") != NULL, "%s", out);
    cr_assert_eq(cmqctl("nodes", out, sizeof out), 0);
    cr_assert_eq(cmqctl("partitions", out, sizeof out), 0);
    cr_assert(strstr(out, "partitions=0") != NULL, "%s", out);
}

/* Garbage bodies for every request type: each gets an answer (a status), the
 * process keeps serving, and nothing is half-written. */
Test(process, survives_malformed_requests)
{
    uint8_t body[512];
    uint32_t seed = 12345;
    int answered = 0;
    for (uint32_t type = 100; type < 160; type++) {
        for (int round = 0; round < 4; round++) {
            size_t len = (size_t)(seed % sizeof body);
            for (size_t i = 0; i < len; i++) {
                seed = seed * 1103515245u + 12345u;
                body[i] = (uint8_t)(seed >> 16);
            }
            struct rpc_sync_result res;
            const char *ep = rpc_ep;
            struct rpc_opts o = {.timeout_ms = 3000, .attempts = 1, .peer = 0};
            int st = rpc_call_sync(zctx, &ep, 1, type, body, len, &o, &res);
            rpc_sync_result_free(&res);
            cr_assert_neq(st, CMQ_ETIMEDOUT, "type %u round %d: no answer", type, round);
            answered++;
        }
    }
    cr_assert_eq(answered, 240);
    /* still healthy, and a normal request works */
    cmq_AccountCreateRequest ar = cmq_AccountCreateRequest_init_zero;
    cmq_Account acc = cmq_Account_init_zero;
    cmq_MetaError err;
    cr_assert_eq(req(cmq_MetaMsgType_META_MSG_ACCOUNT_CREATE, cmq_AccountCreateRequest_fields, &ar,
                     cmq_Account_fields, &acc, &err),
                 CMQ_OK);
    cr_assert_eq(stop(), 0);
}
