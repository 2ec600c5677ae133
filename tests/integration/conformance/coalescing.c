/* coalescing.c: conformance checks of send and delete coalescing (DESIGN
 * §3) and of /metrics: coalescing(), coalesced_deletes(),
 * metrics_endpoint().  Part of the conformance suite (conformance.c). */
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

/* ---------- send coalescing (DESIGN §3) and /metrics ---------- */

#define CO_THREADS 8
#define CO_SENDS 25 /* per thread; thread 0 sends BatchSendMessage of 3 instead */

struct co_sender {
    struct cmq_client cl;
    const char *queue;
    int t;
    int ok;                              /* answers with code 0 and the right ids */
    char ids[CO_SENDS * 3][32];
    char bodies[CO_SENDS * 3][24];
    int n;
};

static void *co_send(void *arg)
{
    struct co_sender *s = arg;
    for (int i = 0; i < CO_SENDS; i++) {
        char b[3][24];
        for (int k = 0; k < 3; k++)
            snprintf(b[k], sizeof b[k], "co-%d-%d-%d", s->t % 100, i % 100, k);
        struct jv *v;
        if (s->t == 0)
            v = cmq_call(&s->cl, 0, "BatchSendMessage", "queueName", s->queue, "msgBody.1", b[0],
                         "msgBody.2", b[1], "msgBody.3", b[2], (const char *)NULL);
        else
            v = cmq_call(&s->cl, 0, "SendMessage", "queueName", s->queue, "msgBody", b[0],
                         (const char *)NULL);
        if (v && iget(v, "code") == 0) {
            const struct jv *list = jv_get(v, "msgList");
            if (s->t == 0 && list && list->t == J_ARR && list->n == 3) {
                for (int k = 0; k < 3; k++) {
                    snprintf(s->ids[s->n], sizeof s->ids[0], "%s", sget(&list->kids[k], "msgId"));
                    memcpy(s->bodies[s->n++], b[k], sizeof b[k]);
                }
                s->ok++;
            } else if (s->t != 0 && sget(v, "msgId")[0]) {
                snprintf(s->ids[s->n], sizeof s->ids[0], "%s", sget(v, "msgId"));
                memcpy(s->bodies[s->n++], b[0], sizeof b[0]);
                s->ok++;
            }
        }
        jv_free(v);
    }
    return NULL;
}

/* The value of the unlabelled series `name` on the /metrics page, -1 if absent. */
static double metric(const char *page, const char *name)
{
    size_t nl = strlen(name);
    for (const char *l = page; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
        if (strncmp(l, name, nl) == 0 && l[nl] == ' ')
            return atof(l + nl + 1);
    return -1;
}

static int metrics_page(struct http_resp *r)
{
    struct http_conn c;
    http_init(&c, g_ip, g_port);
    int rc = http_request(&c, "GET", "/metrics", NULL, NULL, NULL, NULL, 0, r);
    http_close(&c);
    return rc == 0 && r->status == 200 ? 0 : -1;
}

static struct co_sender g_co[CO_THREADS];

/* Concurrent sends to one queue: every caller gets its own ids (all distinct),
 * every message arrives once with its body, whatever the gateway grouped. */
void coalescing(void)
{
    char q[80];
    snprintf(q, sizeof q, "%s", nm("co"));
    struct jv *v = CALL("CreateQueue", "queueName", q);
    expect_ok(v, "CreateQueue for the coalescing test");
    jv_free(v);
    struct http_resp before;
    int have_before = metrics_page(&before) == 0;
    pthread_t th[CO_THREADS];
    for (int t = 0; t < CO_THREADS; t++) {
        struct co_sender *s = &g_co[t];
        memset(s, 0, sizeof *s);
        cmq_client_init(&s->cl, g_ip, g_port, g_cl.secret_id, g_cl.secret_key);
        s->queue = q;
        s->t = t;
        pthread_create(&th[t], NULL, co_send, s);
    }
    int answered = 0, total = 0;
    for (int t = 0; t < CO_THREADS; t++) {
        pthread_join(th[t], NULL);
        http_close(&g_co[t].cl.http);
        answered += g_co[t].ok;
        total += g_co[t].n;
    }
    check(answered == CO_THREADS * CO_SENDS, "%d concurrent senders: every send answered code 0 "
          "with its ids (%d of %d)", CO_THREADS, answered, CO_THREADS * CO_SENDS);
    int dup = 0;
    for (int a = 0; a < CO_THREADS; a++)
        for (int i = 0; i < g_co[a].n; i++)
            for (int b = a; b < CO_THREADS; b++)
                for (int j = b == a ? i + 1 : 0; j < g_co[b].n; j++)
                    dup += strcmp(g_co[a].ids[i], g_co[b].ids[j]) == 0;
    check(dup == 0 && total == (CO_THREADS - 1) * CO_SENDS + 3 * CO_SENDS,
          "coalesced sends: %d msgIds, all distinct (%d duplicates)", total, dup);
    /* Receive everything: each id comes back with the body its sender sent. */
    int got = 0, wrong = 0;
    for (int round = 0; round < 100 && got < total; round++) {
        v = CALL("BatchReceiveMessage", "queueName", q, "numOfMsg", "16", "pollingWaitSeconds", "1");
        const struct jv *list = jv_get(v, "msgInfoList");
        if (!v || iget(v, "code") != 0 || !list || list->t != J_ARR) {
            jv_free(v);
            break;
        }
        for (size_t k = 0; k < list->n; k++) {
            const char *id = sget(&list->kids[k], "msgId"), *body = sget(&list->kids[k], "msgBody");
            int match = 0;
            for (int a = 0; a < CO_THREADS && !match; a++)
                for (int i = 0; i < g_co[a].n && !match; i++)
                    match = strcmp(g_co[a].ids[i], id) == 0 && strcmp(g_co[a].bodies[i], body) == 0;
            got++;
            wrong += !match;
            jv_free(CALL("DeleteMessage", "queueName", q, "receiptHandle",
                         sget(&list->kids[k], "receiptHandle")));
        }
        jv_free(v);
    }
    check(got == total && wrong == 0, "every coalesced message received once with its own id and "
          "body (%d of %d, %d mismatched)", got, total, wrong);
    struct http_resp after;
    if (!have_before || metrics_page(&after) != 0) {
        report(0, "GET /metrics", "no HTTP 200");
        if (have_before)
            http_resp_free(&before);
        return;
    }
    double appends = metric(after.body, "cmq_gateway_send_appends_total") -
                     metric(before.body, "cmq_gateway_send_appends_total");
    double carried = metric(after.body, "cmq_gateway_sends_coalesced_total") -
                     metric(before.body, "cmq_gateway_sends_coalesced_total");
    check(appends >= 1 && carried > appends,
          "/metrics: concurrent sends were coalesced (%.0f sends in %.0f appends)", carried,
          appends);
    http_resp_free(&before);
    http_resp_free(&after);
}

/* Concurrent deletes to one queue (coalesced into shared storage requests):
 * each caller gets its own outcome, a stale handle fails only its caller. */
#define CD_THREADS 8
#define CD_EACH 4

struct co_deleter {
    struct cmq_client cl;
    const char *queue;
    char handles[CD_EACH][64];
    int n;
    int stale;           /* also delete handles[0] again: must answer 4430 */
    int ok, stale_ok;
};

static void *co_delete(void *arg)
{
    struct co_deleter *d = arg;
    for (int i = 0; i < d->n; i++) {
        struct jv *v = cmq_call(&d->cl, 0, "DeleteMessage", "queueName", d->queue, "receiptHandle",
                                d->handles[i], (const char *)NULL);
        d->ok += v && iget(v, "code") == 0;
        jv_free(v);
    }
    if (d->stale) {
        struct jv *v = cmq_call(&d->cl, 0, "DeleteMessage", "queueName", d->queue,
                                "receiptHandle", d->handles[0], (const char *)NULL);
        d->stale_ok = v && iget(v, "code") == 4430;
        jv_free(v);
    }
    return NULL;
}

static struct co_deleter g_cd[CD_THREADS];

void coalesced_deletes(void)
{
    char q[80];
    snprintf(q, sizeof q, "%s", nm("cd"));
    jv_free(CALL("CreateQueue", "queueName", q));
    for (int i = 0; i < CD_THREADS * CD_EACH / 16; i++) {
        char names[16][16], bodies[16][16];
        const char *all[2 + 32] = {"queueName", q};
        for (int k = 0; k < 16; k++) {
            snprintf(names[k], sizeof names[k], "msgBody.%d", k + 1);
            snprintf(bodies[k], sizeof bodies[k], "cd-%d-%d", i % 100, k);
            all[2 + 2 * k] = names[k];
            all[3 + 2 * k] = bodies[k];
        }
        jv_free(cmq_callv(&g_cl, 0, NULL, "BatchSendMessage", all, 34));
    }
    int got = 0;
    for (int round = 0; round < 20 && got < CD_THREADS * CD_EACH; round++) {
        struct jv *v = CALL("BatchReceiveMessage", "queueName", q, "numOfMsg", "16",
                            "pollingWaitSeconds", "1");
        const struct jv *list = jv_get(v, "msgInfoList");
        for (size_t k = 0; list && list->t == J_ARR && k < list->n && got < CD_THREADS * CD_EACH;
             k++, got++) {
            struct co_deleter *d = &g_cd[got % CD_THREADS];
            snprintf(d->handles[d->n++], sizeof d->handles[0], "%s",
                     sget(&list->kids[k], "receiptHandle"));
        }
        jv_free(v);
    }
    check(got == CD_THREADS * CD_EACH, "coalesced deletes: %d messages received to delete", got);
    struct http_resp before;
    int have_before = metrics_page(&before) == 0;
    pthread_t th[CD_THREADS];
    for (int t = 0; t < CD_THREADS; t++) {
        struct co_deleter *d = &g_cd[t];
        cmq_client_init(&d->cl, g_ip, g_port, g_cl.secret_id, g_cl.secret_key);
        d->queue = q;
        d->stale = t % 2 == 0;
        pthread_create(&th[t], NULL, co_delete, d);
    }
    int ok = 0, stale_ok = 0, stale_n = 0;
    for (int t = 0; t < CD_THREADS; t++) {
        pthread_join(th[t], NULL);
        http_close(&g_cd[t].cl.http);
        ok += g_cd[t].ok;
        stale_ok += g_cd[t].stale_ok;
        stale_n += g_cd[t].stale;
    }
    check(ok == got, "concurrent DeleteMessage: every valid handle deleted with code 0 (%d of %d)",
          ok, got);
    check(stale_ok == stale_n, "a handle deleted twice fails only its own caller: 4430 (%d of %d)",
          stale_ok, stale_n);
    struct http_resp after;
    if (have_before && metrics_page(&after) == 0) {
        double appends = metric(after.body, "cmq_gateway_delete_appends_total") -
                         metric(before.body, "cmq_gateway_delete_appends_total");
        double carried = metric(after.body, "cmq_gateway_deletes_coalesced_total") -
                         metric(before.body, "cmq_gateway_deletes_coalesced_total");
        check(carried >= 0 && appends >= 0 && metric(after.body, "cmq_gateway_delete_appends_total") >= 0,
              "/metrics: delete coalescing counters (%.0f deletes in %.0f requests)", carried,
              appends);
        http_resp_free(&after);
    }
    if (have_before)
        http_resp_free(&before);
    struct jv *v = CALL("GetQueueAttributes", "queueName", q);
    check(v && iget(v, "activeMsgNum") == 0 && iget(v, "inactiveMsgNum") == 0,
          "after the concurrent deletes the queue is empty (active %lld, inactive %lld)",
          (long long)iget(v, "activeMsgNum"), (long long)iget(v, "inactiveMsgNum"));
    jv_free(v);
}

/* /metrics: Prometheus text, the series the issue names. */
void metrics_endpoint(void)
{
    char q[80];
    snprintf(q, sizeof q, "%s", nm("mq-metrics"));
    jv_free(CALL("CreateQueue", "queueName", q));
    jv_free(CALL("SendMessage", "queueName", q, "msgBody", "m1"));
    jv_free(CALL("SendMessage", "queueName", q, "msgBody", "m2", "delaySeconds", "600"));
    jv_free(CALL("ReceiveMessage", "queueName", nm("no-such-queue")));
    struct http_resp r;
    if (metrics_page(&r) != 0) {
        report(0, "GET /metrics answers 200", "no HTTP 200");
        return;
    }
    check(strstr(r.content_type, "text/plain") && strstr(r.content_type, "version=0.0.4"),
          "/metrics is Prometheus text 0.0.4 (%s)", r.content_type);
    check(strstr(r.body, "# TYPE cmq_gateway_requests_total counter\n") &&
              strstr(r.body, "cmq_gateway_requests_total{action=\"SendMessage\",code=\"0\"} "),
          "/metrics: requests by action and code (SendMessage code 0)");
    check(strstr(r.body, "cmq_gateway_requests_total{action=\"ReceiveMessage\",code=\"4440\"} ") !=
              NULL, "/metrics: an error answer is counted with its CMQ code (4440)");
    check(strstr(r.body, "# TYPE cmq_gateway_request_duration_seconds histogram\n") &&
              strstr(r.body, "cmq_gateway_request_duration_seconds_bucket{action=\"SendMessage\","
                             "le=\"+Inf\"} ") &&
              strstr(r.body, "cmq_gateway_request_duration_seconds_count{action=\"SendMessage\"} "),
          "/metrics: latency histogram per action (buckets, +Inf, count)");
    check(metric(r.body, "cmq_gateway_long_polls") >= 0 &&
              metric(r.body, "cmq_gateway_inflight_requests") >= 1,
          "/metrics: in-flight requests and long polls gauges");
    char want[256];
    snprintf(want, sizeof want, "cmq_queue_messages{appid=\"%s\",queue=\"%s\",state=\"active\"} 1\n",
             g_appid, q);
    char want_d[256];
    snprintf(want_d, sizeof want_d,
             "cmq_queue_messages{appid=\"%s\",queue=\"%s\",state=\"delayed\"} 1\n", g_appid, q);
    check(strstr(r.body, want) && strstr(r.body, want_d),
          "/metrics: per-queue message counts from storage (active 1, delayed 1)");
    http_resp_free(&r);
}
