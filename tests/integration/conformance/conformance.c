/* conformance.c: the CMQ HTTP API conformance suite, written from
 * shared/spec/cmq-http-api.md and run against a real cluster over HTTP.
 *
 * Every check prints "ok - <what>" or "not ok - <what> # <why>"; the last
 * line is "N passed, N failed" and the exit status is non-zero when any
 * check failed.  The cluster comes from the environment (run_conformance.sh
 * starts a private one): CMQ_HTTP_ENDPOINT, CMQ_SECRET_ID, CMQ_SECRET_KEY,
 * CMQ_APPID, CMQ_METADATA_ENDPOINT, and CMQCTL (path of cmqctl, for keys,
 * accounts and ACL grants).
 *
 * The checks are grouped by concern: protocol.c (transport, signature,
 * request errors), namespace.c (queues, topics, subscriptions, quotas),
 * messages.c, coalescing.c (and /metrics); conformance.h is what they share.
 * This file holds the reporting, the helpers and main().
 *
 * messages() drives the queue message lifecycle (send, receive, delete,
 * batches, delay, visibility, long polling, rewind).  The topic message
 * actions (publish) need storage fan-out, which does not serve them yet:
 * message_actions_answer() only asserts a well-formed envelope for them,
 * from a table whose `code` column is -1 ("any").  Tightening a row is
 * changing -1 to the expected code and adding the keys to check in its
 * `keys` column.
 */
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

int g_pass, g_fail;
struct cmq_client g_cl;
char g_ip[64];
unsigned g_port;
char g_appid[32];
char g_prefix[16];
const char *g_ctl, *g_meta_ep;

/* ---------- reporting ---------- */

void report(int good, const char *what, const char *why)
{
    if (good) {
        g_pass++;
        printf("ok - %s\n", what);
    } else {
        g_fail++;
        printf("not ok - %s # %s\n", what, why ? why : "");
    }
    fflush(stdout);
}

void check(int cond, const char *fmt, ...)
{
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    report(cond, what, "condition false");
}

/* Describes `v` briefly for failure messages. */
const char *brief(const struct jv *v)
{
    static char buf[300];
    if (!v)
        return "no HTTP 200 JSON answer";
    const struct jv *code = jv_get(v, "code"), *msg = jv_get(v, "message");
    snprintf(buf, sizeof buf, "code=%s message=%s", code && code->s ? code->s : "?",
             msg && msg->t == J_STR ? msg->s : "?");
    return buf;
}

/* The §2.3 envelope: code a JSON integer, message and requestId strings. */
int envelope_ok(const struct jv *v, char *why, size_t cap)
{
    const struct jv *code = jv_get(v, "code"), *msg = jv_get(v, "message"),
                    *rid = jv_get(v, "requestId");
    if (!v || v->t != J_OBJ)
        return snprintf(why, cap, "no JSON object"), 0;
    if (!code || code->t != J_NUM || !code->is_int)
        return snprintf(why, cap, "code is not a JSON integer"), 0;
    if (!msg || msg->t != J_STR)
        return snprintf(why, cap, "message is not a string"), 0;
    if (!rid || rid->t != J_STR || !rid->s[0])
        return snprintf(why, cap, "requestId is not a non-empty string"), 0;
    return 1;
}

/* Success: code 0, message "". */
int expect_ok(const struct jv *v, const char *fmt, ...)
{
    char what[512], why[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    int good = envelope_ok(v, why, sizeof why);
    if (good && (jv_get(v, "code")->i != 0 || jv_get(v, "message")->s[0])) {
        snprintf(why, sizeof why, "%s", brief(v));
        good = 0;
    }
    report(good, what, why);
    return good;
}

/* Error: code `code` and, when module != 0, a message starting "(module)". */
int expect_err(const struct jv *v, int code, int module, const char *fmt, ...)
{
    char what[512], why[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    size_t wl = strlen(what);
    if (module)
        snprintf(what + wl, sizeof what - wl, " -> %d/%d", code, module);
    else
        snprintf(what + wl, sizeof what - wl, " -> %d", code);
    int good = envelope_ok(v, why, sizeof why);
    if (good) {
        char pre[16];
        snprintf(pre, sizeof pre, "(%d)", module);
        if (jv_get(v, "code")->i != code ||
            (module && strncmp(jv_get(v, "message")->s, pre, strlen(pre)) != 0)) {
            snprintf(why, sizeof why, "%s", brief(v));
            good = 0;
        }
    }
    report(good, what, why);
    return good;
}

int is_type(const struct jv *o, const char *key, enum jtype t)
{
    const struct jv *v = jv_get(o, key);
    return v && v->t == t && (t != J_NUM || v->is_int);
}

/* Checks that every key of the space-separated list has JSON type t. */
void expect_types(const struct jv *o, enum jtype t, const char *keys, const char *ctx)
{
    char buf[600];
    snprintf(buf, sizeof buf, "%s", keys);
    char missing[400] = "";
    for (char *k = strtok(buf, " "); k; k = strtok(NULL, " "))
        if (!is_type(o, k, t)) {
            size_t l = strlen(missing);
            snprintf(missing + l, sizeof missing - l, "%s%s", l ? "," : "", k);
        }
    char what[700];
    snprintf(what, sizeof what, "%s: %s %s", ctx, keys,
             t == J_NUM ? "are JSON integers" : t == J_STR ? "are strings" : "are arrays");
    report(!missing[0], what, missing);
}

const char *sget(const struct jv *o, const char *key)
{
    const struct jv *v = jv_get(o, key);
    return v && v->t == J_STR ? v->s : "";
}

int64_t iget(const struct jv *o, const char *key)
{
    const struct jv *v = jv_get(o, key);
    return v && v->t == J_NUM ? v->i : -1;
}

/* ---------- helpers ---------- */


char *nm(const char *what)
{
    static char bufs[8][80];
    static int k;
    char *b = bufs[k++ % 8];
    snprintf(b, sizeof bufs[0], "%s-%s", g_prefix, what);
    return b;
}

/* Runs cmqctl with `args`; parses its KEY=VALUE output into `out` lines.
 * Returns its exit status. */
int ctl(char *out, size_t cap, const char *fmt, ...)
{
    char args[512], cmd[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "'%s' %s --endpoint '%s' --format env 2>&1", g_ctl, args, g_meta_ep);
    FILE *f = popen(cmd, "r");
    if (!f)
        return -1;
    size_t n = fread(out, 1, cap - 1, f);
    out[n] = '\0';
    int st = pclose(f);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int env_val(const char *text, const char *key, char *out, size_t cap)
{
    size_t kl = strlen(key);
    for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
        if (strncmp(l, key, kl) == 0 && l[kl] == '=') {
            size_t vl = strcspn(l + kl + 1, "\r\n");
            snprintf(out, cap, "%.*s", (int)vl, l + kl + 1);
            return 0;
        }
    }
    return -1;
}

/* A new key of `appid` (restricted or not); 0 on success. */
int new_key(const char *appid, int restricted, char *id, size_t id_cap, char *key,
                   size_t key_cap)
{
    char out[2048];
    if (ctl(out, sizeof out, "key create --account %s%s", appid, restricted ? " --restricted" : "") != 0)
        return -1;
    return env_val(out, "CMQ_SECRET_ID", id, id_cap) || env_val(out, "CMQ_SECRET_KEY", key, key_cap);
}

/* Sends raw bytes as a POST body (no signing); parses the answer. */
struct jv *raw_post(const char *target, const char *content_type, const char *body,
                           size_t len, struct http_resp *resp)
{
    struct http_resp local;
    struct http_resp *r = resp ? resp : &local;
    struct jv *v = NULL;
    if (http_request(&g_cl.http, "POST", target, g_cl.sign_host, content_type, NULL, body, len, r) ==
            0 &&
        r->status == 200)
        v = json_parse(r->body, r->len);
    if (!resp)
        http_resp_free(&local);
    return v;
}

int main(void)
{
    const char *ep = getenv("CMQ_HTTP_ENDPOINT"), *sid = getenv("CMQ_SECRET_ID"),
               *skey = getenv("CMQ_SECRET_KEY"), *appid = getenv("CMQ_APPID");
    g_ctl = getenv("CMQCTL");
    g_meta_ep = getenv("CMQ_METADATA_ENDPOINT");
    if (!ep || !sid || !skey || !appid || !g_ctl || !g_meta_ep ||
        sscanf(ep, "http://%63[^:]:%u", g_ip, &g_port) != 2) {
        fprintf(stderr, "conformance: needs CMQ_HTTP_ENDPOINT (http://IP:PORT), CMQ_SECRET_ID, "
                        "CMQ_SECRET_KEY, CMQ_APPID, CMQ_METADATA_ENDPOINT and CMQCTL\n");
        return 2;
    }
    snprintf(g_appid, sizeof g_appid, "%s", appid);
    snprintf(g_prefix, sizeof g_prefix, "cf%lx", (unsigned long)(time(NULL) % 0xfffff) ^ (unsigned long)getpid());
    cmq_client_init(&g_cl, g_ip, g_port, sid, skey);

    transport();
    auth_errors();
    request_errors();
    queues();
    topics();
    subscriptions();
    messages();
    coalescing();
    coalesced_deletes();
    dead_letter_policy();
    metrics_endpoint();
    message_actions_answer();
    if (!getenv("CMQ_CONFORMANCE_NO_QUOTA"))
        quotas();

    http_close(&g_cl.http);
    printf("%d passed, %d failed\n", g_pass, g_fail);
    return g_fail ? 1 : 0;
}
