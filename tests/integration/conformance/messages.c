/* messages.c: conformance checks of the queue message lifecycle (spec
 * §6.6-6.12, §9: send, receive, delete, batches, delay, visibility, long
 * polling, rewind) and of the topic message actions' envelopes (§7.6-7.7):
 * messages(), message_actions_answer().  Part of the conformance suite. */
#include "conformance.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---------- the message lifecycle (§6.6-6.12, §9) ---------- */

#define MSG_KEYS_STR "msgBody msgId receiptHandle"
#define MSG_KEYS_INT "enqueueTime firstDequeueTime nextVisibleTime dequeueCount"

static int all_digits(const char *s)
{
    if (!s || !*s)
        return 0;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return 0;
    return 1;
}

struct poller {
    struct cmq_client cl;
    char queue[80];
    struct jv *answer;
    double seconds;
};

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *long_poll(void *arg)
{
    struct poller *p = arg;
    double t0 = mono_s();
    p->answer = cmq_call(&p->cl, 0, "ReceiveMessage", "queueName", p->queue, "pollingWaitSeconds",
                         "10", "UserpollingWaitSeconds", "10", (const char *)NULL);
    p->seconds = mono_s() - t0;
    return NULL;
}

void messages(void)
{
    struct jv *v;
    char q[80], qs[80], qv[80], qr[80];
    snprintf(q, sizeof q, "%s", nm("mq"));
    snprintf(qs, sizeof qs, "%s", nm("mq-small"));
    snprintf(qv, sizeof qv, "%s", nm("mq-vis"));
    snprintf(qr, sizeof qr, "%s", nm("mq-rewind"));
    jv_free(CALL("CreateQueue", "queueName", q));
    jv_free(CALL("CreateQueue", "queueName", qs, "maxMsgSize", "1024"));
    jv_free(CALL("CreateQueue", "queueName", qv, "visibilityTimeout", "1"));
    jv_free(CALL("CreateQueue", "queueName", qr, "rewindSeconds", "3600"));

    /* SendMessage / GetQueueAttributes / ReceiveMessage / DeleteMessage. */
    const char *body = "hello world/+&= \xe4\xb8\x96\xe7\x95\x8c";
    v = CALL("SendMessage", "queueName", q, "msgBody", body, "delaySeconds", "0");
    expect_ok(v, "SendMessage");
    expect_types(v, J_STR, "msgId", "SendMessage");
    char msgid[64];
    snprintf(msgid, sizeof msgid, "%s", sget(v, "msgId"));
    check(all_digits(msgid), "msgId is a string of digits (%s)", msgid);
    jv_free(v);
    v = CALL("GetQueueAttributes", "queueName", q);
    expect_ok(v, "GetQueueAttributes");
    expect_types(v, J_NUM,
                 "maxMsgHeapNum pollingWaitSeconds visibilityTimeout maxMsgSize msgRetentionSeconds "
                 "createTime lastModifyTime activeMsgNum inactiveMsgNum rewindSeconds rewindmsgNum "
                 "rewindMsgNum minMsgTime delayMsgNum",
                 "GetQueueAttributes");
    check(v && iget(v, "activeMsgNum") == 1 && iget(v, "inactiveMsgNum") == 0,
          "after one send: activeMsgNum 1, inactiveMsgNum 0 (%lld, %lld)",
          (long long)iget(v, "activeMsgNum"), (long long)iget(v, "inactiveMsgNum"));
    check(v && iget(v, "visibilityTimeout") == 30 && iget(v, "maxMsgSize") == 65536 &&
              iget(v, "msgRetentionSeconds") == 345600 && iget(v, "pollingWaitSeconds") == 0,
          "GetQueueAttributes defaults: visibility 30, maxMsgSize 65536, retention 345600, wait 0");
    jv_free(v);
    v = CALL("GetQueueAttributes", "queueName", nm("nope"));
    expect_err(v, 4440, 10100, "GetQueueAttributes of a missing queue");
    jv_free(v);

    int64_t now = (int64_t)time(NULL);
    v = CALL("ReceiveMessage", "queueName", q, "pollingWaitSeconds", "0");
    expect_ok(v, "ReceiveMessage");
    expect_types(v, J_STR, MSG_KEYS_STR, "ReceiveMessage");
    expect_types(v, J_NUM, MSG_KEYS_INT, "ReceiveMessage");
    check(v && strcmp(sget(v, "msgBody"), body) == 0 && strcmp(sget(v, "msgId"), msgid) == 0,
          "the body (with '+', '&', '=', UTF-8) and msgId come back unchanged");
    check(v && iget(v, "dequeueCount") == 1 && llabs(iget(v, "enqueueTime") - now) < 60 &&
              llabs(iget(v, "nextVisibleTime") - (now + 30)) < 60,
          "dequeueCount 1, enqueueTime now, nextVisibleTime now + visibilityTimeout");
    char handle[128];
    snprintf(handle, sizeof handle, "%s", sget(v, "receiptHandle"));
    jv_free(v);
    v = CALL("ReceiveMessage", "queueName", q, "pollingWaitSeconds", "0");
    expect_err(v, 7000, 10200, "ReceiveMessage while the only message is inactive");
    jv_free(v);
    v = CALL("GetQueueAttributes", "queueName", q);
    check(v && iget(v, "activeMsgNum") == 0 && iget(v, "inactiveMsgNum") == 1,
          "after the receive: activeMsgNum 0, inactiveMsgNum 1");
    jv_free(v);
    v = CALL("DeleteMessage", "queueName", q, "receiptHandle", handle);
    expect_ok(v, "DeleteMessage with the receipt handle");
    jv_free(v);
    v = CALL("DeleteMessage", "queueName", q, "receiptHandle", handle);
    expect_err(v, 4430, 10260, "DeleteMessage with the same handle again");
    jv_free(v);
    v = CALL("DeleteMessage", "queueName", q);
    expect_err(v, 4000, 10390, "DeleteMessage without receiptHandle");
    jv_free(v);

    /* Send errors. */
    v = CALL("SendMessage", "queueName", q, "msgBody", "");
    expect_err(v, 4000, 10120, "SendMessage with msgBody= (empty)");
    jv_free(v);
    v = CALL("SendMessage", "queueName", q);
    check(v && iget(v, "code") == 4000, "SendMessage without msgBody -> 4000 (%s)", brief(v));
    jv_free(v);
    v = CALL("SendMessage", "queueName", nm("nope"), "msgBody", "x");
    expect_err(v, 4440, 10100, "SendMessage to a missing queue");
    jv_free(v);
    v = CALL("SendMessage", "queueName", q, "msgBody", "x", "delaySeconds", "3601");
    expect_err(v, 4000, 10692, "SendMessage delaySeconds=3601");
    jv_free(v);
    v = CALL("SendMessage", "queueName", q, "msgBody", "x", "delaySeconds", "soon");
    expect_err(v, 4000, 10360, "SendMessage delaySeconds=soon");
    jv_free(v);
    char big[1100];
    memset(big, 'b', 1025);
    big[1025] = '\0';
    v = CALL("SendMessage", "queueName", qs, "msgBody", big);
    expect_err(v, 4400, 10230, "SendMessage of 1025 bytes to a queue with maxMsgSize 1024");
    jv_free(v);
    big[1024] = '\0';
    v = CALL("SendMessage", "queueName", qs, "msgBody", big);
    expect_ok(v, "SendMessage of exactly maxMsgSize bytes");
    jv_free(v);

    /* Batches. */
    v = CALL("BatchSendMessage", "queueName", q, "msgBody.1", "m1", "msgBody.2", "m2", "msgBody.3",
             "m3");
    expect_ok(v, "BatchSendMessage of 3");
    const struct jv *ml = v ? jv_get(v, "msgList") : NULL;
    int shape = ml && ml->t == J_ARR && ml->n == 3;
    for (size_t i = 0; shape && i < ml->n; i++)
        shape = is_type(&ml->kids[i], "msgId", J_STR);
    check(shape && strcmp(sget(&ml->kids[0], "msgId"), sget(&ml->kids[1], "msgId")) != 0,
          "msgList: 3 entries with distinct string msgIds");
    jv_free(v);
    {
        const char *kv[2 + 34];
        char names[17][16];
        size_t n = 0;
        kv[n++] = "queueName";
        kv[n++] = q;
        for (int i = 0; i < 17; i++) {
            snprintf(names[i], sizeof names[i], "msgBody.%d", i + 1);
            kv[n++] = names[i];
            kv[n++] = "x";
        }
        v = cmq_callv(&g_cl, 0, NULL, "BatchSendMessage", kv, n);
        expect_err(v, 4000, 10370, "BatchSendMessage of 17");
        jv_free(v);
    }
    v = CALL("BatchSendMessage", "queueName", q, "msgBody.1", "a", "msgBody.3", "c");
    expect_err(v, 4000, 10380, "BatchSendMessage msgBody.1, msgBody.3 (gap)");
    jv_free(v);
    v = CALL("BatchReceiveMessage", "queueName", q, "numOfMsg", "17");
    expect_err(v, 4000, 10350, "BatchReceiveMessage numOfMsg=17");
    jv_free(v);
    v = CALL("BatchReceiveMessage", "queueName", q, "numOfMsg", "16", "pollingWaitSeconds", "0");
    expect_ok(v, "BatchReceiveMessage numOfMsg=16");
    const struct jv *il = v ? jv_get(v, "msgInfoList") : NULL;
    shape = il && il->t == J_ARR && il->n == 3;
    for (size_t i = 0; shape && i < il->n; i++) {
        for (const char *k = MSG_KEYS_STR; shape && *k;) {
            char key[32];
            size_t l = strcspn(k, " ");
            snprintf(key, sizeof key, "%.*s", (int)l, k);
            shape = is_type(&il->kids[i], key, J_STR);
            k += l + (k[l] == ' ');
        }
        for (const char *k = MSG_KEYS_INT; shape && *k;) {
            char key[32];
            size_t l = strcspn(k, " ");
            snprintf(key, sizeof key, "%.*s", (int)l, k);
            shape = is_type(&il->kids[i], key, J_NUM);
            k += l + (k[l] == ' ');
        }
    }
    check(shape, "msgInfoList: the 3 messages, each with the seven keys and their types");
    char h[3][128] = {"", "", ""};
    for (size_t i = 0; il && i < il->n && i < 3; i++)
        snprintf(h[i], sizeof h[i], "%s", sget(&il->kids[i], "receiptHandle"));
    jv_free(v);
    v = CALL("BatchDeleteMessage", "queueName", q, "receiptHandle.1", h[0], "receiptHandle.2", h[1]);
    expect_ok(v, "BatchDeleteMessage of 2 valid handles");
    jv_free(v);
    v = CALL("BatchDeleteMessage", "queueName", q, "receiptHandle.1", h[2], "receiptHandle.2", h[0]);
    expect_err(v, 6010, 0, "BatchDeleteMessage with one valid and one used handle");
    const struct jv *el = v ? jv_get(v, "errorList") : NULL;
    check(el && el->t == J_ARR && el->n == 1 && is_type(&el->kids[0], "code", J_NUM) &&
              is_type(&el->kids[0], "message", J_STR) &&
              strcmp(sget(&el->kids[0], "receiptHandle"), h[0]) == 0,
          "errorList names the failed handle with code and message");
    jv_free(v);
    v = CALL("BatchDeleteMessage", "queueName", q, "receiptHandle.1", h[0], "receiptHandle.2", h[1]);
    expect_err(v, 6020, 10290, "BatchDeleteMessage where every handle fails");
    jv_free(v);

    /* Delay, visibility and long polling. */
    v = CALL("SendMessage", "queueName", q, "msgBody", "later", "delaySeconds", "2");
    expect_ok(v, "SendMessage delaySeconds=2");
    jv_free(v);
    v = CALL("GetQueueAttributes", "queueName", q);
    check(v && iget(v, "delayMsgNum") == 1 && iget(v, "activeMsgNum") == 0,
          "the delayed message counts in delayMsgNum, not activeMsgNum");
    jv_free(v);
    v = CALL("ReceiveMessage", "queueName", q, "pollingWaitSeconds", "0");
    expect_err(v, 7000, 10200, "a delayed message is not received early");
    jv_free(v);
    double t0 = mono_s();
    v = CALL("ReceiveMessage", "queueName", q, "pollingWaitSeconds", "5");
    double waited = mono_s() - t0;
    check(v && iget(v, "code") == 0 && strcmp(sget(v, "msgBody"), "later") == 0 && waited < 4.5,
          "a long poll returns the delayed message when it becomes visible (%.1f s)", waited);
    if (v && iget(v, "code") == 0)
        jv_free(CALL("DeleteMessage", "queueName", q, "receiptHandle", sget(v, "receiptHandle")));
    jv_free(v);
    t0 = mono_s();
    v = CALL("ReceiveMessage", "queueName", q, "pollingWaitSeconds", "1");
    waited = mono_s() - t0;
    expect_err(v, 7000, 10200, "a long poll of 1 s on an empty queue");
    check(waited >= 0.9 && waited < 3, "it waited about 1 s (%.2f s)", waited);
    jv_free(v);

    struct poller p;
    cmq_client_init(&p.cl, g_ip, g_port, g_cl.secret_id, g_cl.secret_key);
    snprintf(p.queue, sizeof p.queue, "%s", q);
    p.answer = NULL;
    pthread_t th;
    if (pthread_create(&th, NULL, long_poll, &p) == 0) {
        usleep(500000);
        jv_free(CALL("SendMessage", "queueName", q, "msgBody", "wake"));
        pthread_join(th, NULL);
        check(p.answer && iget(p.answer, "code") == 0 &&
                  strcmp(sget(p.answer, "msgBody"), "wake") == 0 && p.seconds < 3,
              "a send wakes a waiting long poll (%.2f s, %s)", p.seconds, brief(p.answer));
        if (p.answer && iget(p.answer, "code") == 0)
            jv_free(CALL("DeleteMessage", "queueName", q, "receiptHandle",
                         sget(p.answer, "receiptHandle")));
        jv_free(p.answer);
        http_close(&p.cl.http);
    }

    jv_free(CALL("SendMessage", "queueName", qv, "msgBody", "again"));
    v = CALL("ReceiveMessage", "queueName", qv);
    char first[128];
    snprintf(first, sizeof first, "%s", sget(v, "receiptHandle"));
    jv_free(v);
    usleep(1600000);
    v = CALL("ReceiveMessage", "queueName", qv, "pollingWaitSeconds", "2");
    check(v && iget(v, "code") == 0 && iget(v, "dequeueCount") == 2 &&
              strcmp(sget(v, "receiptHandle"), first) != 0,
          "after visibilityTimeout the message is received again: dequeueCount 2, new handle");
    char second[128];
    snprintf(second, sizeof second, "%s", sget(v, "receiptHandle"));
    jv_free(v);
    v = CALL("DeleteMessage", "queueName", qv, "receiptHandle", first);
    expect_err(v, 4430, 10260, "the earlier receipt handle is no longer valid");
    jv_free(v);
    v = CALL("DeleteMessage", "queueName", qv, "receiptHandle", second);
    expect_ok(v, "the latest handle deletes it");
    jv_free(v);

    /* RewindQueue. */
    char ts[32];
    snprintf(ts, sizeof ts, "%lld", (long long)time(NULL) - 10);
    v = CALL("RewindQueue", "queueName", q, "startConsumeTime", ts);
    expect_err(v, 6050, 10670, "RewindQueue on a queue with rewindSeconds 0");
    jv_free(v);
    v = CALL("RewindQueue", "queueName", qr, "startConsumeTime", ts);
    expect_ok(v, "RewindQueue inside the window");
    jv_free(v);
    snprintf(ts, sizeof ts, "%lld", (long long)time(NULL) - 7200);
    v = CALL("RewindQueue", "queueName", qr, "startConsumeTime", ts);
    expect_err(v, 4000, 10680, "RewindQueue before now - rewindSeconds");
    jv_free(v);
    v = CALL("RewindQueue", "queueName", qr, "startConsumeTime", "x");
    expect_err(v, 4000, 10360, "RewindQueue startConsumeTime=x (C++ SDK garbage)");
    jv_free(v);
}


/* ---------- actions storage will serve (§7.6-7.7) ---------- */

/* code -1: "any well-formed envelope" until storage serves the action.
 * Tighten by putting the expected code and the keys that must be present
 * (space-separated, types from §13.4) into `code` and `keys`. */
void message_actions_answer(void)
{
    char t[80];
    snprintf(t, sizeof t, "%s", nm("t2"));
    struct {
        const char *action;
        const char *kv[10];
        int code;
        const char *keys;
    } rows[] = {
        {"PublishMessage", {"topicName", t, "msgBody", "hi", "routingKey", "a.b.c"}, -1, ""},
        {"BatchPublishMessage", {"topicName", t, "msgBody.1", "a", "routingKey", "a.b"}, -1, ""},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        size_t n = 0;
        while (n < 10 && rows[i].kv[n])
            n++;
        struct http_resp r;
        struct jv *v = cmq_callv(&g_cl, 0, &r, rows[i].action, rows[i].kv, n);
        char why[400];
        int good = r.status == 200 && envelope_ok(v, why, sizeof why);
        if (good && rows[i].code >= 0 && iget(v, "code") != rows[i].code) {
            snprintf(why, sizeof why, "%s", brief(v));
            good = 0;
        }
        char what[200];
        snprintf(what, sizeof what, "%s answers a well-formed envelope (%s)", rows[i].action,
                 v ? brief(v) : "none");
        report(good, what, r.status != 200 ? "HTTP status not 200" : why);
        if (good && rows[i].keys[0])
            expect_types(v, J_STR, rows[i].keys, rows[i].action);
        jv_free(v);
        http_resp_free(&r);
    }
}
