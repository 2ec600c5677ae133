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
 * messages() drives the queue message lifecycle (send, receive, delete,
 * batches, delay, visibility, long polling, rewind).  The topic message
 * actions (publish) need storage fan-out, which does not serve them yet:
 * message_actions_answer() only asserts a well-formed envelope for them,
 * from a table whose `code` column is -1 ("any").  Tightening a row is
 * changing -1 to the expected code and adding the keys to check in its
 * `keys` column.
 */
#include "client.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

static int g_pass, g_fail;
static struct cmq_client g_cl;
static char g_ip[64];
static unsigned g_port;
static char g_appid[32];
static char g_prefix[16]; /* a per-run name prefix, so reruns never collide */
static const char *g_ctl, *g_meta_ep;

/* ---------- reporting ---------- */

static void report(int good, const char *what, const char *why)
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

static void check(int cond, const char *fmt, ...)
{
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    report(cond, what, "condition false");
}

/* Describes `v` briefly for failure messages. */
static const char *brief(const struct jv *v)
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
static int envelope_ok(const struct jv *v, char *why, size_t cap)
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
static int expect_ok(const struct jv *v, const char *fmt, ...)
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
static int expect_err(const struct jv *v, int code, int module, const char *fmt, ...)
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

static int is_type(const struct jv *o, const char *key, enum jtype t)
{
    const struct jv *v = jv_get(o, key);
    return v && v->t == t && (t != J_NUM || v->is_int);
}

/* Checks that every key of the space-separated list has JSON type t. */
static void expect_types(const struct jv *o, enum jtype t, const char *keys, const char *ctx)
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

static const char *sget(const struct jv *o, const char *key)
{
    const struct jv *v = jv_get(o, key);
    return v && v->t == J_STR ? v->s : "";
}

static int64_t iget(const struct jv *o, const char *key)
{
    const struct jv *v = jv_get(o, key);
    return v && v->t == J_NUM ? v->i : -1;
}

/* ---------- helpers ---------- */

/* nm("x") is "<run prefix>-x" in one of 8 rotating buffers: fine inside one
 * call's arguments; copy it when it must live longer. */
#define CALL(...) cmq_call(&g_cl, 0, __VA_ARGS__, (const char *)NULL)
#define CALLF(flags, ...) cmq_call(&g_cl, (flags), __VA_ARGS__, (const char *)NULL)

static char *nm(const char *what)
{
    static char bufs[8][80];
    static int k;
    char *b = bufs[k++ % 8];
    snprintf(b, sizeof bufs[0], "%s-%s", g_prefix, what);
    return b;
}

/* Runs cmqctl with `args`; parses its KEY=VALUE output into `out` lines.
 * Returns its exit status. */
static int ctl(char *out, size_t cap, const char *fmt, ...)
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

static int env_val(const char *text, const char *key, char *out, size_t cap)
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
static int new_key(const char *appid, int restricted, char *id, size_t id_cap, char *key,
                   size_t key_cap)
{
    char out[2048];
    if (ctl(out, sizeof out, "key create --account %s%s", appid, restricted ? " --restricted" : "") != 0)
        return -1;
    return env_val(out, "CMQ_SECRET_ID", id, id_cap) || env_val(out, "CMQ_SECRET_KEY", key, key_cap);
}

/* Sends raw bytes as a POST body (no signing); parses the answer. */
static struct jv *raw_post(const char *target, const char *content_type, const char *body,
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

/* ---------- transport, envelope, signature (§2-§4) ---------- */

static void transport(void)
{
    struct http_resp r;
    const char *kv[] = {"limit", "5"};
    struct jv *v = cmq_callv(&g_cl, 0, &r, "ListQueue", kv, 2);
    expect_ok(v, "ListQueue POST /v2/index.php HmacSHA1");
    check(r.status == 200 && strstr(r.content_type, "application/json") != NULL,
          "answers are HTTP 200 with Content-Type application/json (got %d '%s')", r.status,
          r.content_type);
    expect_types(v, J_NUM, "code totalCount", "ListQueue");
    expect_types(v, J_STR, "message requestId", "ListQueue");
    expect_types(v, J_ARR, "queueList", "ListQueue");
    char rid[64];
    snprintf(rid, sizeof rid, "%s", sget(v, "requestId"));
    http_resp_free(&r);
    jv_free(v);
    v = CALL("ListQueue");
    check(v && strcmp(rid, sget(v, "requestId")) != 0, "requestId differs between requests");
    jv_free(v);

    v = CALLF(REQ_GET, "ListQueue");
    expect_ok(v, "ListQueue GET (parameters in the query) HmacSHA1");
    jv_free(v);
    v = CALLF(REQ_SHA256, "ListQueue");
    expect_ok(v, "ListQueue POST HmacSHA256");
    jv_free(v);
    v = CALLF(REQ_GET | REQ_SHA256, "ListQueue");
    expect_ok(v, "ListQueue GET HmacSHA256");
    jv_free(v);

    snprintf(g_cl.path, sizeof g_cl.path, "/");
    v = CALL("ListQueue");
    expect_ok(v, "path / (Java SDK 1.1) POST");
    jv_free(v);
    v = CALLF(REQ_GET | REQ_SHA256, "ListQueue");
    expect_ok(v, "path / GET HmacSHA256");
    jv_free(v);
    snprintf(g_cl.path, sizeof g_cl.path, "/v2/index.php");

    /* The path is signed (§4.1): a request signed for /v2/index.php sent to / fails. */
    snprintf(g_cl.send_path, sizeof g_cl.send_path, "/");
    v = CALL("ListQueue");
    expect_err(v, 4100, 10030, "signed for /v2/index.php, sent to /");
    jv_free(v);
    g_cl.send_path[0] = '\0';

    static const char *ctypes[] = {"*/*; charset=utf-8", "application/x-www-form-urlencoded",
                                   "text/plain", "application/json"};
    v = CALLF(REQ_NO_CONTENT_TYPE, "ListQueue");
    expect_ok(v, "POST body parsed as a form without Content-Type (Python SDK)");
    jv_free(v);
    for (size_t i = 0; i < sizeof ctypes / sizeof ctypes[0]; i++) {
        snprintf(g_cl.content_type, sizeof g_cl.content_type, "%s", ctypes[i]);
        v = CALL("ListQueue");
        expect_ok(v, "POST body parsed as a form with Content-Type: %s", ctypes[i]);
        jv_free(v);
    }
    g_cl.content_type[0] = '\0';

    snprintf(g_cl.extra_headers, sizeof g_cl.extra_headers, "Expect: 100-continue\r\n");
    v = CALL("ListQueue");
    expect_ok(v, "POST with Expect: 100-continue (libcurl)");
    jv_free(v);
    g_cl.extra_headers[0] = '\0';

    v = CALLF(REQ_ACTION_IN_QUERY, "ListQueue", "limit", "1");
    expect_ok(v, "query-string and body parameters merge (Action in the query of a POST)");
    jv_free(v);

    /* Host: the signed host with and without the port (§4.2). */
    char hp[96], h[96];
    snprintf(hp, sizeof hp, "%s:%u", g_ip, g_port);
    snprintf(h, sizeof h, "%s", g_ip);
    struct {
        const char *sign, *header, *what;
        int good;
    } hosts[] = {
        {hp, hp, "signed host:port, Host host:port", 1},
        {h, h, "signed host, Host host (no port)", 1},
        {hp, h, "signed host:port, Host without the port (default-port clients)", 1},
        {h, hp, "signed host without port, Host host:port", 1},
        {"localhost:1", hp, "signed another host", 0},
    };
    for (size_t i = 0; i < sizeof hosts / sizeof hosts[0]; i++) {
        snprintf(g_cl.sign_host, sizeof g_cl.sign_host, "%s", hosts[i].sign);
        snprintf(g_cl.host_header, sizeof g_cl.host_header, "%s", hosts[i].header);
        v = CALL("ListQueue");
        if (hosts[i].good)
            expect_ok(v, "Host: %s", hosts[i].what);
        else
            expect_err(v, 4100, 10030, "Host: %s", hosts[i].what);
        jv_free(v);
    }
    snprintf(g_cl.sign_host, sizeof g_cl.sign_host, "%s", hp);
    g_cl.host_header[0] = '\0';

    /* Case-insensitive Action names (§3). */
    static const char *spellings[] = {"listqueue", "LISTQUEUE", "lIsTqUeUe"};
    for (size_t i = 0; i < 3; i++) {
        v = CALL(spellings[i]);
        expect_ok(v, "Action=%s (case-insensitive)", spellings[i]);
        jv_free(v);
    }

    /* Unknown parameters the SDKs send are tolerated (and signed). */
    v = CALL("ListQueue", "UserpollingWaitSeconds", "30", "Token", "", "Region", "gz",
             "clientRequestId", "abc", "someFutureParam", "x");
    expect_ok(v, "unknown parameters (UserpollingWaitSeconds, Token, Region, ...) tolerated");
    jv_free(v);

    /* Python SDK: POST values starting with '@' left out of the signature. */
    v = CALLF(REQ_PY_AT_QUIRK, "ListQueue", "searchWord", "@zz");
    expect_ok(v, "POST '@' value left out of the signature (Python SDK quirk)");
    jv_free(v);

    /* Keep-alive: everything above went over few connections. */
    unsigned before = g_cl.http.connects;
    for (int i = 0; i < 20; i++)
        jv_free(CALL("ListQueue"));
    check(g_cl.http.connects == before,
          "HTTP/1.1 keep-alive: 20 requests on one connection (%u new connections)",
          g_cl.http.connects - before);

    /* Other paths are not the API. */
    struct http_resp r2;
    int rc = http_request(&g_cl.http, "GET", "/v3/other", NULL, NULL, NULL, NULL, 0, &r2);
    check(rc == 0 && r2.status == 404, "a path other than / and /v2/index.php is 404 (got %d)",
          r2.status);
    http_resp_free(&r2);
}

static void auth_errors(void)
{
    struct jv *v;
    v = CALLF(REQ_BAD_SIGNATURE, "ListQueue");
    expect_err(v, 4100, 10030, "bad signature, POST HmacSHA1");
    jv_free(v);
    v = CALLF(REQ_BAD_SIGNATURE | REQ_GET, "ListQueue");
    expect_err(v, 4100, 10030, "bad signature, GET HmacSHA1");
    jv_free(v);
    v = CALLF(REQ_BAD_SIGNATURE | REQ_SHA256, "ListQueue");
    expect_err(v, 4100, 10030, "bad signature, POST HmacSHA256");
    jv_free(v);
    v = CALLF(REQ_BAD_SIGNATURE | REQ_GET | REQ_SHA256, "ListQueue");
    expect_err(v, 4100, 10030, "bad signature, GET HmacSHA256");
    jv_free(v);
    /* Signed with another key. */
    char saved[80];
    snprintf(saved, sizeof saved, "%s", g_cl.secret_key);
    snprintf(g_cl.secret_key, sizeof g_cl.secret_key, "not-the-right-key");
    v = CALL("ListQueue");
    expect_err(v, 4100, 10030, "signed with the wrong secret key");
    jv_free(v);
    snprintf(g_cl.secret_key, sizeof g_cl.secret_key, "%s", saved);
    /* A value changed after signing. */
    v = CALL("ListQueue", "SignatureMethod", "HmacSHA1");
    expect_ok(v, "explicit SignatureMethod=HmacSHA1 before signing");
    jv_free(v);

    v = CALLF(REQ_NO_SIGN, "ListQueue");
    expect_err(v, 4000, 10390, "missing Signature");
    jv_free(v);

    char id[80];
    snprintf(id, sizeof id, "%s", g_cl.secret_id);
    snprintf(g_cl.secret_id, sizeof g_cl.secret_id, "AKIDnoSuchKey0000000000000000000000");
    v = CALL("ListQueue");
    expect_err(v, 4100, 10270, "unknown SecretId");
    jv_free(v);
    snprintf(g_cl.secret_id, sizeof g_cl.secret_id, "%s", id);

    g_cl.timestamp = (int64_t)time(NULL) - 7300;
    v = CALL("ListQueue");
    expect_err(v, 4100, 10030, "Timestamp 7300 s in the past (expired)");
    jv_free(v);
    g_cl.timestamp = (int64_t)time(NULL) + 7300;
    v = CALL("ListQueue");
    expect_err(v, 4100, 10030, "Timestamp 7300 s in the future");
    jv_free(v);
    g_cl.timestamp = (int64_t)time(NULL) - 600;
    v = CALL("ListQueue");
    expect_ok(v, "Timestamp 600 s old is inside the window");
    jv_free(v);
    g_cl.timestamp = 0;

    /* Repeated Nonce and Timestamp (C++ SDK): accepted. */
    g_cl.timestamp = (int64_t)time(NULL);
    uint64_t nonce = g_cl.nonce;
    v = CALL("ListQueue");
    expect_ok(v, "first of two identical requests");
    jv_free(v);
    g_cl.nonce = nonce;
    v = CALL("ListQueue");
    expect_ok(v, "the same Nonce and Timestamp again (C++ SDK reseeds rand) is accepted");
    jv_free(v);
    g_cl.timestamp = 0;

    /* Disabled keys: one disabled before its first use, one after.  The keys
     * live on an account of their own (an account has a key quota, and a
     * long-lived dev cluster would reach it run after run). */
    char kid[80], kkey[80], out[1024], kapp[32];
    if (ctl(out, sizeof out, "account create --name conformance-keys") != 0 ||
        env_val(out, "CMQ_APPID", kapp, sizeof kapp))
        snprintf(kapp, sizeof kapp, "%s", g_appid);
    if (new_key(kapp, 0, kid, sizeof kid, kkey, sizeof kkey) == 0 &&
        ctl(out, sizeof out, "key disable %s", kid) == 0) {
        struct cmq_client k;
        cmq_client_init(&k, g_ip, g_port, kid, kkey);
        v = cmq_call(&k, 0, "ListQueue", (const char *)NULL);
        expect_err(v, 4100, 10080, "disabled SecretId (cmqctl key disable)");
        jv_free(v);
        http_close(&k.http);
    } else {
        report(0, "disabled SecretId (cmqctl key disable)", "cmqctl key create/disable failed");
    }
    if (new_key(kapp, 0, kid, sizeof kid, kkey, sizeof kkey) == 0) {
        struct cmq_client k;
        cmq_client_init(&k, g_ip, g_port, kid, kkey);
        v = cmq_call(&k, 0, "ListQueue", (const char *)NULL);
        expect_ok(v, "a new key works at once");
        jv_free(v);
        ctl(out, sizeof out, "key disable %s", kid);
        time_t t0 = time(NULL);
        int refused = 0;
        while (!refused && time(NULL) - t0 < 40) {
            v = cmq_call(&k, 0, "ListQueue", (const char *)NULL);
            refused = v && iget(v, "code") == 4100;
            if (refused)
                expect_err(v, 4100, 10080, "a key disabled after use is refused as disabled");
            jv_free(v);
            if (!refused)
                usleep(200000);
        }
        check(refused, "a key disabled after use is refused within 40 s (took %ld s)",
              (long)(time(NULL) - t0));
        http_close(&k.http);
    } else {
        report(0, "a key disabled after use", "cmqctl key create failed");
    }

    /* A restricted key sees only what the ACL grants (DESIGN §7). */
    if (new_key(kapp, 1, kid, sizeof kid, kkey, sizeof kkey) == 0) {
        struct cmq_client k;
        cmq_client_init(&k, g_ip, g_port, kid, kkey);
        v = cmq_call(&k, 0, "ListQueue", (const char *)NULL);
        expect_err(v, 4000, 10461, "restricted key without grants: ListQueue");
        jv_free(v);
        char grant[128];
        snprintf(grant, sizeof grant, "queue:%s-acl*", g_prefix);
        int gr = ctl(out, sizeof out, "acl grant %s CreateQueue '%s'", kid, grant);
        check(gr == 0, "cmqctl acl grant CreateQueue %s", grant);
        v = cmq_call(&k, 0, "CreateQueue", "queueName", nm("acl-q1"), (const char *)NULL);
        expect_ok(v, "restricted key: granted CreateQueue on a matching queue");
        jv_free(v);
        v = cmq_call(&k, 0, "CreateQueue", "queueName", nm("other-q1"), (const char *)NULL);
        expect_err(v, 4000, 10461, "restricted key: CreateQueue outside the grant");
        jv_free(v);
        v = cmq_call(&k, 0, "DeleteQueue", "queueName", nm("acl-q1"), (const char *)NULL);
        expect_err(v, 4000, 10461, "restricted key: an action not granted (DeleteQueue)");
        jv_free(v);
        http_close(&k.http);
    } else {
        report(0, "restricted key", "cmqctl key create --restricted failed");
    }
}

static void request_errors(void)
{
    struct jv *v;
    struct http_resp r;
    v = CALL(NULL);
    expect_err(v, 4000, 10390, "missing Action");
    jv_free(v);
    v = CALL("NoSuchAction");
    expect_err(v, 4000, 10430, "unknown Action");
    jv_free(v);
    v = CALL("ListQueues");
    expect_err(v, 4000, 10430, "Action that is almost right (ListQueues)");
    jv_free(v);

    static const char *methods[] = {"PUT", "DELETE", "PATCH"};
    for (size_t i = 0; i < 3; i++) {
        v = NULL;
        if (http_request(&g_cl.http, methods[i], "/v2/index.php?Action=ListQueue", NULL, NULL, NULL,
                         "", 0, &r) == 0 &&
            r.status == 200)
            v = json_parse(r.body, r.len);
        expect_err(v, 4000, 10410, "HTTP method %s (HTTP 200)", methods[i]);
        jv_free(v);
        http_resp_free(&r);
    }

    /* Over the request limit (3 MiB + 64 KiB: a 1 MiB batch fully
     * percent-encoded must fit): 10420, still HTTP 200 JSON. */
    size_t big = (3u << 20) + (128u << 10);
    char *body = malloc(big + 1);
    if (body) {
        memset(body, 'a', big);
        memcpy(body, "Action=ListQueue&pad=", 21);
        v = raw_post("/v2/index.php", "application/x-www-form-urlencoded", body, big, NULL);
        expect_err(v, 4000, 10420, "request body over the 3 MiB + 64 KiB limit");
        jv_free(v);
        free(body);
    }

    static const char dup[] = "Action=ListQueue&limit=1&limit=2";
    v = raw_post("/v2/index.php", NULL, dup, sizeof dup - 1, NULL);
    expect_err(v, 4000, 10330, "duplicate parameter");
    jv_free(v);
    static const char esc[] = "Action=ListQueue&searchWord=%zz";
    v = raw_post("/v2/index.php", NULL, esc, sizeof esc - 1, NULL);
    expect_err(v, 4000, 10420, "malformed percent escape");
    jv_free(v);
    static const char utf[] = "Action=ListQueue&searchWord=%FF%FE";
    v = raw_post("/v2/index.php", NULL, utf, sizeof utf - 1, NULL);
    expect_err(v, 4000, 10110, "value that is not UTF-8");
    jv_free(v);
    static const char nosid[] = "Action=ListQueue&Nonce=1&Timestamp=1&Signature=x";
    v = raw_post("/v2/index.php", NULL, nosid, sizeof nosid - 1, NULL);
    expect_err(v, 4000, 10390, "missing SecretId");
    jv_free(v);
    v = CALL("ListQueue", "limit", "ten");
    expect_err(v, 4000, 10360, "limit=ten (not an integer)");
    jv_free(v);
    v = CALL("ListQueue", "offset", "1.5");
    expect_err(v, 4000, 10360, "offset=1.5 (not an integer)");
    jv_free(v);
    v = CALL("ListQueue", "offset", "-1");
    expect_err(v, 4000, 10350, "offset=-1 (out of range)");
    jv_free(v);
}

/* ---------- queues (§6.1-6.5) ---------- */

static void queues(void)
{
    struct jv *v;
    char q[80];
    snprintf(q, sizeof q, "%s", nm("q1"));
    v = CALL("CreateQueue", "queueName", q);
    expect_ok(v, "CreateQueue");
    expect_types(v, J_STR, "queueId", "CreateQueue");
    jv_free(v);
    v = CALL("CreateQueue", "queueName", q);
    expect_err(v, 4460, 0, "CreateQueue with an existing name");
    jv_free(v);
    char upper[80];
    snprintf(upper, sizeof upper, "%s", q);
    for (char *c = upper; *c; c++)
        if (*c >= 'a' && *c <= 'z')
            *c = (char)(*c - 32);
    v = CALL("CreateQueue", "queueName", upper);
    expect_err(v, 4460, 0, "CreateQueue: names are unique case-insensitively");
    jv_free(v);
    static const char *bad[] = {"1abc", "a_b", "a.b", "-ab",
                                "a1234567890123456789012345678901234567890123456789012345678901234"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        v = CALL("CreateQueue", "queueName", bad[i]);
        expect_err(v, 4000, 10020, "CreateQueue queueName=%.20s%s", bad[i],
                   strlen(bad[i]) > 20 ? "... (65 chars)" : "");
        jv_free(v);
    }
    v = CALL("CreateQueue");
    expect_err(v, 4000, 10390, "CreateQueue without queueName");
    jv_free(v);
    v = CALL("CreateQueue", "queueName", "");
    expect_err(v, 4000, 10390, "CreateQueue with queueName= (empty is absent, §5.3)");
    jv_free(v);
    v = CALL("CreateQueue", "queueName", nm("q2"), "visibilityTimeout", "abc");
    expect_err(v, 4000, 10360, "CreateQueue visibilityTimeout=abc");
    jv_free(v);
    struct {
        const char *k, *v;
    } ranges[] = {{"visibilityTimeout", "0"},       {"visibilityTimeout", "43201"},
                  {"maxMsgSize", "1023"},           {"maxMsgSize", "1048577"},
                  {"msgRetentionSeconds", "59"},    {"msgRetentionSeconds", "1296001"},
                  {"pollingWaitSeconds", "31"},     {"pollingWaitSeconds", "-1"},
                  {"maxMsgHeapNum", "999999"},      {"maxMsgHeapNum", "1000000001"}};
    for (size_t i = 0; i < sizeof ranges / sizeof ranges[0]; i++) {
        v = CALL("CreateQueue", "queueName", nm("q2"), ranges[i].k, ranges[i].v);
        expect_err(v, 4000, 10350, "CreateQueue %s=%s", ranges[i].k, ranges[i].v);
        jv_free(v);
    }
    v = CALL("CreateQueue", "queueName", nm("q2"), "msgRetentionSeconds", "600", "rewindSeconds",
             "601");
    expect_err(v, 4000, 10700, "CreateQueue rewindSeconds > msgRetentionSeconds");
    jv_free(v);
    v = CALL("CreateQueue", "queueName", nm("q2"), "maxMsgHeapNum", "1000000", "pollingWaitSeconds",
             "30", "visibilityTimeout", "43200", "maxMsgSize", "1048576", "msgRetentionSeconds",
             "1296000", "rewindSeconds", "1296000");
    expect_ok(v, "CreateQueue with every attribute at its maximum (Java sends maxMsgSize=1048576)");
    jv_free(v);
    v = CALL("CreateQueue", "queueName", nm("q3"), "visibilityTimeout", "");
    expect_ok(v, "CreateQueue with visibilityTimeout= (empty is absent)");
    jv_free(v);

    v = CALL("SetQueueAttributes", "queueName", q, "visibilityTimeout", "60", "maxMsgSize", "2048");
    expect_ok(v, "SetQueueAttributes");
    expect_types(v, J_NUM,
                 "maxMsgHeapNum pollingWaitSeconds visibilityTimeout maxMsgSize "
                 "msgRetentionSeconds rewindSeconds",
                 "SetQueueAttributes");
    check(iget(v, "visibilityTimeout") == 60 && iget(v, "maxMsgSize") == 2048,
          "SetQueueAttributes answers the new values");
    jv_free(v);
    v = CALL("SetQueueAttributes", "queueName", q, "visibilityTimeout", "43201");
    expect_err(v, 4000, 10350, "SetQueueAttributes visibilityTimeout=43201");
    jv_free(v);
    v = CALL("SetQueueAttributes", "queueName", nm("nope"), "visibilityTimeout", "60");
    expect_err(v, 4440, 10100, "SetQueueAttributes on a missing queue");
    jv_free(v);

    v = CALL("ListQueue", "searchWord", g_prefix);
    expect_ok(v, "ListQueue searchWord");
    const struct jv *l = jv_get(v, "queueList");
    int64_t total = iget(v, "totalCount");
    check(total >= 3, "ListQueue totalCount counts every match (%lld)", (long long)total);
    int shape = l && l->t == J_ARR && l->n > 0;
    for (size_t i = 0; shape && i < l->n; i++)
        shape = is_type(&l->kids[i], "queueId", J_STR) && is_type(&l->kids[i], "queueName", J_STR);
    check(shape, "ListQueue queueList entries have string queueId and queueName");
    jv_free(v);
    v = CALL("ListQueue", "searchWord", g_prefix, "limit", "1");
    check(v && jv_get(v, "queueList") && jv_get(v, "queueList")->n == 1 &&
              iget(v, "totalCount") == total,
          "ListQueue limit=1: one entry, totalCount unchanged");
    jv_free(v);
    v = CALL("ListQueue", "searchWord", g_prefix, "offset", "1");
    expect_ok(v, "ListQueue offset without limit (Java/C++ SDKs) is accepted");
    jv_free(v);
    v = CALL("ListQueue", "limit", "1000");
    check(v && iget(v, "code") == 0 && jv_get(v, "queueList") && jv_get(v, "queueList")->n <= 50,
          "ListQueue limit=1000 is clamped to 50");
    jv_free(v);

    v = CALL("DeleteQueue", "queueName", nm("q3"));
    expect_ok(v, "DeleteQueue");
    jv_free(v);
    v = CALL("DeleteQueue", "queueName", nm("q3"));
    expect_err(v, 4440, 10100, "DeleteQueue again");
    jv_free(v);
    v = CALL("DeleteQueue");
    expect_err(v, 4000, 10390, "DeleteQueue without queueName");
    jv_free(v);
    v = CALL("CreateQueue", "queueName", nm("q3"));
    check(v && (iget(v, "code") == 0 || iget(v, "code") == 6040),
          "CreateQueue right after DeleteQueue: created or 6040 cool-down (%s)", brief(v));
    jv_free(v);
}

/* ---------- topics (§7.1-7.5) ---------- */

static void topics(void)
{
    struct jv *v;
    char t[80], t2[80];
    snprintf(t, sizeof t, "%s", nm("t1"));
    snprintf(t2, sizeof t2, "%s", nm("t2"));
    v = CALL("CreateTopic", "topicName", t);
    expect_ok(v, "CreateTopic");
    expect_types(v, J_STR, "topicId", "CreateTopic");
    jv_free(v);
    v = CALL("CreateTopic", "topicName", t2, "filterType", "2", "maxMsgSize", "1048576");
    expect_ok(v, "CreateTopic filterType=2 maxMsgSize=1048576 (Java client-side max)");
    jv_free(v);
    v = CALL("CreateTopic", "topicName", t);
    expect_err(v, 4460, 0, "CreateTopic with an existing name");
    check(v && strstr(sget(v, "message"), "topic") != NULL,
          "its message names a topic, not a queue (%s)", sget(v, "message"));
    jv_free(v);
    static const char *bad[] = {"9t", "t_1", "t 1",
                                "t1234567890123456789012345678901234567890123456789012345678901234"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        v = CALL("CreateTopic", "topicName", bad[i]);
        expect_err(v, 4000, 10590, "CreateTopic topicName=%.12s%s", bad[i],
                   strlen(bad[i]) > 12 ? "... (65 chars)" : "");
        jv_free(v);
    }
    char longname[200];
    memset(longname, 'a', 150);
    longname[150] = '\0';
    v = CALL("CreateTopic", "topicName", longname);
    expect_err(v, 4000, 10590, "CreateTopic topicName of 150 characters");
    jv_free(v);
    v = CALL("GetTopicAttributes", "topicName", longname);
    expect_err(v, 4000, 10350, "GetTopicAttributes topicName of 150 characters");
    jv_free(v);
    v = CALL("CreateTopic");
    expect_err(v, 4000, 10390, "CreateTopic without topicName");
    jv_free(v);
    v = CALL("CreateTopic", "topicName", nm("t3"), "maxMsgSize", "", "filterType", "");
    expect_ok(v, "CreateTopic maxMsgSize= filterType= (empty is absent)");
    jv_free(v);
    v = CALL("GetTopicAttributes", "topicName", nm("t3"));
    check(v && iget(v, "maxMsgSize") == 65536 && iget(v, "filterType") == 1,
          "and the defaults apply");
    jv_free(v);
    v = CALL("DeleteTopic", "topicName", nm("t3"));
    expect_ok(v, "DeleteTopic t3");
    jv_free(v);
    v = CALL("CreateTopic", "topicName", nm("t3"), "filterType", "3");
    expect_err(v, 4000, 10350, "CreateTopic filterType=3");
    jv_free(v);
    v = CALL("CreateTopic", "topicName", nm("t3"), "maxMsgSize", "1023");
    expect_err(v, 4000, 10350, "CreateTopic maxMsgSize=1023");
    jv_free(v);
    v = CALL("CreateTopic", "topicName", nm("t3"), "maxMsgSize", "big");
    expect_err(v, 4000, 10360, "CreateTopic maxMsgSize=big");
    jv_free(v);
    v = CALL("CreateTopic", "topicName", nm("t0"), "filterType", "0");
    expect_ok(v, "CreateTopic filterType=0 (legacy numbering) is accepted as tags");
    jv_free(v);
    v = CALL("GetTopicAttributes", "topicName", nm("t0"));
    check(v && iget(v, "filterType") == 1, "filterType=0 is stored and answered as 1");
    jv_free(v);

    v = CALL("GetTopicAttributes", "topicName", t);
    expect_ok(v, "GetTopicAttributes");
    expect_types(v, J_NUM,
                 "msgCount maxMsgSize msgRetentionSeconds createTime lastModifyTime filterType "
                 "LoggingEnabled",
                 "GetTopicAttributes");
    check(v && iget(v, "msgRetentionSeconds") == 86400 && iget(v, "filterType") == 1 &&
              iget(v, "maxMsgSize") == 65536,
          "GetTopicAttributes defaults: retention 86400, filterType 1, maxMsgSize 65536");
    int64_t now = (int64_t)time(NULL);
    check(v && llabs(iget(v, "createTime") - now) < 120,
          "createTime is Unix seconds (not milliseconds)");
    jv_free(v);
    v = CALL("GetTopicAttributes", "topicName", t2);
    check(v && iget(v, "filterType") == 2 && iget(v, "maxMsgSize") == 1048576,
          "GetTopicAttributes of a routing topic: filterType 2, maxMsgSize as created");
    jv_free(v);
    v = CALL("GetTopicAttributes", "topicName", nm("nope"));
    expect_err(v, 4440, 10600, "GetTopicAttributes of a missing topic");
    jv_free(v);
    v = CALL("GetTopicAttributes");
    expect_err(v, 4000, 10390, "GetTopicAttributes without topicName");
    jv_free(v);

    v = CALL("SetTopicAttributes", "topicName", t, "maxMsgSize", "4096");
    expect_ok(v, "SetTopicAttributes maxMsgSize=4096");
    jv_free(v);
    v = CALL("GetTopicAttributes", "topicName", t);
    check(v && iget(v, "maxMsgSize") == 4096, "GetTopicAttributes shows the new maxMsgSize");
    jv_free(v);
    v = CALL("SetTopicAttributes", "topicName", t, "maxMsgSize", "1048577");
    expect_err(v, 4000, 10350, "SetTopicAttributes maxMsgSize=1048577");
    jv_free(v);
    v = CALL("SetTopicAttributes", "topicName", t, "maxMsgSize", "x1");
    expect_err(v, 4000, 10360, "SetTopicAttributes maxMsgSize=x1");
    jv_free(v);
    v = CALL("SetTopicAttributes", "topicName", nm("nope"), "maxMsgSize", "4096");
    expect_err(v, 4440, 10600, "SetTopicAttributes on a missing topic");
    jv_free(v);

    v = CALL("ListTopic", "searchWord", g_prefix);
    expect_ok(v, "ListTopic searchWord");
    expect_types(v, J_NUM, "totalCount", "ListTopic");
    expect_types(v, J_ARR, "topicList", "ListTopic");
    const struct jv *l = jv_get(v, "topicList");
    int shape = l && l->t == J_ARR && l->n >= 3;
    for (size_t i = 0; shape && i < l->n; i++)
        shape = is_type(&l->kids[i], "topicId", J_STR) && is_type(&l->kids[i], "topicName", J_STR);
    check(shape, "ListTopic topicList entries have string topicId and topicName");
    int64_t total = iget(v, "totalCount");
    jv_free(v);
    v = CALL("ListTopic", "searchWord", g_prefix, "offset", "1", "limit", "1");
    check(v && jv_get(v, "topicList") && jv_get(v, "topicList")->n == 1 &&
              iget(v, "totalCount") == total,
          "ListTopic offset=1 limit=1: one entry, same totalCount");
    jv_free(v);
    v = CALL("ListTopic", "searchWord", "no-such-topic-anywhere");
    check(v && iget(v, "totalCount") == 0 && jv_get(v, "topicList") &&
              jv_get(v, "topicList")->t == J_ARR && jv_get(v, "topicList")->n == 0,
          "ListTopic with no match: totalCount 0 and an empty array");
    jv_free(v);
    v = CALL("ListTopic", "limit", "-5");
    expect_err(v, 4000, 10350, "ListTopic limit=-5");
    jv_free(v);

    v = CALL("DeleteTopic", "topicName", nm("t0"));
    expect_ok(v, "DeleteTopic");
    jv_free(v);
    v = CALL("DeleteTopic", "topicName", nm("t0"));
    expect_err(v, 4440, 10600, "DeleteTopic again");
    jv_free(v);
}

/* ---------- subscriptions (§8.1-8.6) ---------- */

static void subscriptions(void)
{
    struct jv *v;
    char t[80], rt[80], q[80];
    snprintf(t, sizeof t, "%s", nm("t1"));
    snprintf(rt, sizeof rt, "%s", nm("t2"));
    snprintf(q, sizeof q, "%s", nm("q1"));
    v = CALL("Subscribe", "topicName", t, "subscriptionName", "s1", "protocol", "http", "endpoint",
             "http://127.0.0.1:9/push");
    expect_ok(v, "Subscribe http endpoint");
    expect_types(v, J_STR, "subscriptionId", "Subscribe");
    jv_free(v);
    v = CALL("Subscribe", "topicName", t, "subscriptionName", "s1", "protocol", "http", "endpoint",
             "http://127.0.0.1:9/push");
    expect_err(v, 4490, 10470, "Subscribe with an existing name");
    jv_free(v);
    v = CALL("Subscribe", "topicName", t, "subscriptionName", "S1", "protocol", "http", "endpoint",
             "http://127.0.0.1:9/push");
    expect_err(v, 4490, 10470, "Subscribe: names unique case-insensitively");
    jv_free(v);
    /* C++ SDK: 0-based lists; Python/Java defaults JSON for a queue. */
    v = CALL("Subscribe", "topicName", t, "subscriptionName", "s2", "protocol", "QUEUE", "endpoint",
             q, "notifyStrategy", "BACKOFF_RETRY", "notifyContentFormat", "JSON", "filterTag.0",
             "a", "filterTag.1", "b");
    expect_ok(v, "Subscribe queue endpoint, protocol=QUEUE, filterTag.0.., format JSON");
    jv_free(v);
    v = CALL("GetSubscriptionAttributes", "topicName", t, "subscriptionName", "s2");
    expect_ok(v, "GetSubscriptionAttributes");
    expect_types(v, J_STR,
                 "topicOwner protocol protocal endpoint notifyStrategy notifyContentFormat",
                 "GetSubscriptionAttributes");
    expect_types(v, J_NUM, "msgCount createTime lastModifyTime", "GetSubscriptionAttributes");
    expect_types(v, J_ARR, "filterTag filterTags bindingKey", "GetSubscriptionAttributes");
    check(v && strcmp(sget(v, "protocol"), "queue") == 0 &&
              strcmp(sget(v, "protocal"), "queue") == 0,
          "protocol stored lower-case, protocal repeats it");
    check(v && strcmp(sget(v, "endpoint"), q) == 0, "endpoint is the queue name");
    check(v && strcmp(sget(v, "notifyContentFormat"), "SIMPLIFIED") == 0,
          "a queue subscription's format is SIMPLIFIED (JSON coerced)");
    check(v && strcmp(sget(v, "notifyStrategy"), "BACKOFF_RETRY") == 0,
          "notifyStrategy as given");
    check(v && strcmp(sget(v, "topicOwner"), g_appid) == 0, "topicOwner is the APPID (%s)",
          sget(v, "topicOwner"));
    const struct jv *ft = jv_get(v, "filterTag"), *fts = jv_get(v, "filterTags");
    check(ft && fts && ft->n == 2 && fts->n == 2 && ft->kids[0].t == J_STR &&
              strcmp(ft->kids[0].s, "a") == 0 && strcmp(ft->kids[1].s, "b") == 0 &&
              strcmp(fts->kids[1].s, "b") == 0,
          "filterTag and filterTags: [\"a\",\"b\"] in index order");
    check(jv_get(v, "bindingKey") && jv_get(v, "bindingKey")->n == 0,
          "bindingKey is an empty array, not null");
    jv_free(v);
    v = CALL("GetSubscriptionAttributes", "topicName", t, "subscriptionName", "s1");
    check(v && strcmp(sget(v, "notifyStrategy"), "EXPONENTIAL_DECAY_RETRY") == 0 &&
              strcmp(sget(v, "notifyContentFormat"), "JSON") == 0,
          "defaults: EXPONENTIAL_DECAY_RETRY and JSON for http");
    jv_free(v);

    /* Parameter errors of Subscribe. */
    struct {
        const char *k1, *v1, *k2, *v2;
        int code, module;
        const char *what;
    } errs[] = {
        {"protocol", "ftp", "endpoint", "http://h/", 4000, 10510, "protocol=ftp"},
        {"protocol", "http", "endpoint", "ftp://h/", 4000, 10500, "endpoint not http(s)://"},
        {"protocol", "http", "endpoint", "http://a b/", 4510, 10570, "endpoint with a blank"},
        {"protocol", "queue", "endpoint", "no-such-queue-x", 4440, 10100,
         "queue endpoint that does not exist"},
        {"notifyStrategy", "SOMETIMES", "endpoint", "http://h/", 4000, 10520,
         "notifyStrategy=SOMETIMES"},
        {"notifyContentFormat", "XML", "endpoint", "http://h/", 4000, 10530,
         "notifyContentFormat=XML"},
        {"filterTag.1", "a", "filterTag.3", "c", 4000, 10380, "filterTag gap (1, 3)"},
        {"filterTag.1", "abcdefghijklmnopq", "endpoint", "http://h/", 4000, 10350,
         "filterTag of 17 characters"},
    };
    for (size_t i = 0; i < sizeof errs / sizeof errs[0]; i++) {
        const char *kv[] = {"topicName", t,        "subscriptionName", "sx",
                            "protocol",  "http",   "endpoint",         "http://h/",
                            errs[i].k1,  errs[i].v1, errs[i].k2,       errs[i].v2};
        /* later duplicates of protocol/endpoint replace the defaults */
        const char *args[12];
        size_t n = 0;
        for (size_t k = 0; k < 8; k += 2) {
            if (strcmp(kv[k], errs[i].k1) == 0 || strcmp(kv[k], errs[i].k2) == 0)
                continue;
            args[n++] = kv[k];
            args[n++] = kv[k + 1];
        }
        args[n++] = errs[i].k1;
        args[n++] = errs[i].v1;
        args[n++] = errs[i].k2;
        args[n++] = errs[i].v2;
        v = cmq_callv(&g_cl, 0, NULL, "Subscribe", args, n);
        expect_err(v, errs[i].code, errs[i].module, "Subscribe %s", errs[i].what);
        jv_free(v);
    }
    v = CALL("Subscribe", "topicName", t, "subscriptionName", "sx", "protocol", "http", "endpoint",
             "http://h/", "filterTag.1", "a", "filterTag.2", "b", "filterTag.3", "c",
             "filterTag.4", "d", "filterTag.5", "e", "filterTag.6", "f");
    expect_err(v, 4000, 10490, "Subscribe with 6 filterTags");
    jv_free(v);
    v = CALL("Subscribe", "topicName", t, "subscriptionName", "sx", "protocol", "http", "endpoint",
             "http://h/", "filterTag.1", "a", "filterTag.2", "", "filterTag.3", "");
    expect_ok(v, "Subscribe: empty filterTag entries count as absent");
    jv_free(v);
    v = CALL("GetSubscriptionAttributes", "topicName", t, "subscriptionName", "sx");
    check(v && jv_get(v, "filterTag") && jv_get(v, "filterTag")->n == 1,
          "only the non-empty filterTag was stored");
    jv_free(v);
    char longsub[200];
    memset(longsub, 's', 150);
    longsub[150] = '\0';
    v = CALL("Subscribe", "topicName", t, "subscriptionName", longsub, "protocol", "http",
             "endpoint", "http://h/");
    expect_err(v, 4000, 10580, "Subscribe subscriptionName of 150 characters");
    jv_free(v);
    char longep[600] = "http://h/";
    memset(longep + 9, 'p', 500);
    longep[509] = '\0';
    v = CALL("Subscribe", "topicName", t, "subscriptionName", "sz", "protocol", "http",
             "endpoint", longep);
    expect_err(v, 4000, 10350, "Subscribe endpoint of 509 characters");
    jv_free(v);
    v = CALL("Subscribe", "topicName", t, "subscriptionName", "sh", "protocol", "HTTP",
             "endpoint", "https://example.com:8443/cmq?x=1", "notifyStrategy",
             "exponential_decay_retry");
    expect_ok(v, "Subscribe https:// endpoint with port and query, protocol=HTTP, strategy in lower case");
    jv_free(v);
    v = CALL("GetSubscriptionAttributes", "topicName", t, "subscriptionName", "sh");
    check(v && strcmp(sget(v, "protocol"), "http") == 0 &&
              strcmp(sget(v, "notifyStrategy"), "EXPONENTIAL_DECAY_RETRY") == 0 &&
              strcmp(sget(v, "endpoint"), "https://example.com:8443/cmq?x=1") == 0,
          "stored in canonical spelling, endpoint verbatim");
    jv_free(v);
    jv_free(CALL("Unsubscribe", "topicName", t, "subscriptionName", "sh"));
    static const char *badsub[] = {"1s", "s_1", "s.1"};
    for (size_t i = 0; i < 3; i++) {
        v = CALL("Subscribe", "topicName", t, "subscriptionName", badsub[i], "protocol", "http",
                 "endpoint", "http://h/");
        expect_err(v, 4000, 10580, "Subscribe subscriptionName=%s", badsub[i]);
        jv_free(v);
    }
    static const char *missing[] = {"topicName", "subscriptionName", "protocol", "endpoint"};
    for (size_t i = 0; i < 4; i++) {
        const char *all[] = {"topicName", t, "subscriptionName", "sy", "protocol", "http",
                             "endpoint", "http://h/"};
        const char *args[8];
        size_t n = 0;
        for (size_t k = 0; k < 8; k += 2)
            if (strcmp(all[k], missing[i]) != 0) {
                args[n++] = all[k];
                args[n++] = all[k + 1];
            }
        v = cmq_callv(&g_cl, 0, NULL, "Subscribe", args, n);
        expect_err(v, 4000, 10390, "Subscribe without %s", missing[i]);
        jv_free(v);
    }
    v = CALL("Subscribe", "topicName", nm("nope"), "subscriptionName", "s1", "protocol", "http",
             "endpoint", "http://h/");
    expect_err(v, 4440, 10600, "Subscribe to a missing topic");
    jv_free(v);

    /* Routing topic: binding keys. */
    v = CALL("Subscribe", "topicName", rt, "subscriptionName", "r1", "protocol", "http",
             "endpoint", "http://h/");
    expect_err(v, 4000, 10710, "Subscribe to a filterType 2 topic without bindingKey");
    jv_free(v);
    v = CALL("Subscribe", "topicName", rt, "subscriptionName", "r1", "protocol", "http",
             "endpoint", "http://h/", "bindingKey.1", "a.*.c", "bindingKey.2", "x.#");
    expect_ok(v, "Subscribe with bindingKey.1, bindingKey.2");
    jv_free(v);
    v = CALL("GetSubscriptionAttributes", "topicName", rt, "subscriptionName", "r1");
    const struct jv *bk = v ? jv_get(v, "bindingKey") : NULL;
    check(bk && bk->n == 2 && strcmp(bk->kids[0].s, "a.*.c") == 0 &&
              strcmp(bk->kids[1].s, "x.#") == 0,
          "bindingKey answered as [\"a.*.c\",\"x.#\"]");
    jv_free(v);
    v = CALL("Subscribe", "topicName", rt, "subscriptionName", "r2", "protocol", "http",
             "endpoint", "http://h/", "bindingKey.1", "a", "bindingKey.2", "b", "bindingKey.3", "c",
             "bindingKey.4", "d", "bindingKey.5", "e", "bindingKey.6", "f");
    expect_err(v, 4000, 10680, "Subscribe with 6 bindingKeys");
    jv_free(v);
    v = CALL("Subscribe", "topicName", rt, "subscriptionName", "r2", "protocol", "http",
             "endpoint", "http://h/", "bindingKey.1", "a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q");
    expect_err(v, 4000, 10691, "Subscribe with a bindingKey of 16 dots");
    jv_free(v);
    char longkey[80];
    memset(longkey, 'k', 65);
    longkey[65] = '\0';
    v = CALL("Subscribe", "topicName", rt, "subscriptionName", "r2", "protocol", "http",
             "endpoint", "http://h/", "bindingKey.1", longkey);
    expect_err(v, 4000, 10350, "Subscribe with a bindingKey of 65 bytes");
    jv_free(v);

    /* ListSubscriptionByTopic. */
    v = CALL("ListSubscriptionByTopic", "topicName", t);
    expect_ok(v, "ListSubscriptionByTopic");
    expect_types(v, J_NUM, "totalCount", "ListSubscriptionByTopic");
    expect_types(v, J_ARR, "subscriptionList", "ListSubscriptionByTopic");
    const struct jv *sl = v ? jv_get(v, "subscriptionList") : NULL;
    int shape = sl && sl->n == 3 && iget(v, "totalCount") == 3;
    for (size_t i = 0; shape && i < sl->n; i++)
        shape = is_type(&sl->kids[i], "subscriptionId", J_STR) &&
                is_type(&sl->kids[i], "subscriptionName", J_STR) &&
                is_type(&sl->kids[i], "protocol", J_STR) && is_type(&sl->kids[i], "endpoint", J_STR);
    check(shape, "ListSubscriptionByTopic: 3 entries with string subscriptionId, "
                 "subscriptionName, protocol, endpoint");
    jv_free(v);
    v = CALL("ListSubscriptionByTopic", "topicName", t, "searchWord", "s2");
    check(v && iget(v, "totalCount") == 1 && jv_get(v, "subscriptionList")->n == 1 &&
              strcmp(sget(&jv_get(v, "subscriptionList")->kids[0], "subscriptionName"), "s2") == 0,
          "ListSubscriptionByTopic searchWord=s2");
    jv_free(v);
    v = CALL("ListSubscriptionByTopic", "topicName", t, "offset", "2", "limit", "5");
    check(v && iget(v, "totalCount") == 3 && jv_get(v, "subscriptionList")->n == 1,
          "ListSubscriptionByTopic offset=2 limit=5: the last one, totalCount 3");
    jv_free(v);
    v = CALL("ListSubscriptionByTopic", "topicName", t, "offset", "1001");
    expect_err(v, 4000, 10350, "ListSubscriptionByTopic offset=1001");
    jv_free(v);
    v = CALL("ListSubscriptionByTopic", "topicName", nm("nope"));
    expect_err(v, 4440, 10600, "ListSubscriptionByTopic of a missing topic");
    jv_free(v);
    v = CALL("ListSubscriptionByTopic");
    expect_err(v, 4000, 10390, "ListSubscriptionByTopic without topicName");
    jv_free(v);

    /* SetSubscriptionAttributes. */
    v = CALL("SetSubscriptionAttributes", "topicName", t, "subscriptionName", "s1",
             "notifyStrategy", "BACKOFF_RETRY", "notifyContentFormat", "SIMPLIFIED", "filterTag.1",
             "x", "filterTag.2", "y", "filterTag.3", "z");
    expect_ok(v, "SetSubscriptionAttributes strategy, format, filterTag list");
    jv_free(v);
    v = CALL("GetSubscriptionAttributes", "topicName", t, "subscriptionName", "s1");
    check(v && strcmp(sget(v, "notifyStrategy"), "BACKOFF_RETRY") == 0 &&
              strcmp(sget(v, "notifyContentFormat"), "SIMPLIFIED") == 0 &&
              jv_get(v, "filterTag")->n == 3,
          "GetSubscriptionAttributes shows the new settings and 3 tags");
    int64_t modified = iget(v, "lastModifyTime");
    jv_free(v);
    v = CALL("SetSubscriptionAttributes", "topicName", t, "subscriptionName", "s1",
             "notifyStrategy", "", "notifyContentFormat", "");
    expect_ok(v, "SetSubscriptionAttributes with empty notifyStrategy= notifyContentFormat= (C++)");
    jv_free(v);
    v = CALL("GetSubscriptionAttributes", "topicName", t, "subscriptionName", "s1");
    check(v && strcmp(sget(v, "notifyStrategy"), "BACKOFF_RETRY") == 0 &&
              jv_get(v, "filterTag")->n == 3 && iget(v, "lastModifyTime") >= modified,
          "empty values changed nothing");
    jv_free(v);
    v = CALL("SetSubscriptionAttributes", "topicName", t, "subscriptionName", "s1", "filterTag.1",
             "only");
    expect_ok(v, "SetSubscriptionAttributes with a new filterTag list");
    jv_free(v);
    v = CALL("GetSubscriptionAttributes", "topicName", t, "subscriptionName", "s1");
    check(v && jv_get(v, "filterTag")->n == 1 && strcmp(jv_get(v, "filterTag")->kids[0].s, "only") == 0,
          "a supplied list replaces the stored one");
    jv_free(v);
    v = CALL("SetSubscriptionAttributes", "topicName", t, "subscriptionName", "s1",
             "notifyStrategy", "NEVER");
    expect_err(v, 4000, 10520, "SetSubscriptionAttributes notifyStrategy=NEVER");
    jv_free(v);
    v = CALL("SetSubscriptionAttributes", "topicName", t, "subscriptionName", "s1",
             "notifyContentFormat", "YAML");
    expect_err(v, 4000, 10530, "SetSubscriptionAttributes notifyContentFormat=YAML");
    jv_free(v);
    v = CALL("SetSubscriptionAttributes", "topicName", t, "subscriptionName", "nope",
             "notifyStrategy", "BACKOFF_RETRY");
    expect_err(v, 4440, 0, "SetSubscriptionAttributes of a missing subscription");
    jv_free(v);
    v = CALL("SetSubscriptionAttributes", "topicName", rt, "subscriptionName", "r1",
             "bindingKey.0", "k.#");
    expect_ok(v, "SetSubscriptionAttributes bindingKey.0 (0-based)");
    jv_free(v);

    /* ClearSubscriptionFilterTags, with the Java SDK's spelling. */
    v = CALL("ClearSUbscriptionFIlterTags", "topicName", t, "subscriptionName", "s2");
    expect_ok(v, "ClearSUbscriptionFIlterTags (Java SDK spelling)");
    jv_free(v);
    v = CALL("GetSubscriptionAttributes", "topicName", t, "subscriptionName", "s2");
    check(v && jv_get(v, "filterTag") && jv_get(v, "filterTag")->n == 0 &&
              jv_get(v, "filterTags")->n == 0,
          "filter tags cleared: empty arrays");
    jv_free(v);
    v = CALL("ClearSubscriptionFilterTags", "topicName", t, "subscriptionName", "nope");
    expect_err(v, 4440, 0, "ClearSubscriptionFilterTags of a missing subscription");
    jv_free(v);

    /* DeleteTopic refuses while subscriptions exist (§7.5). */
    v = CALL("DeleteTopic", "topicName", t);
    expect_err(v, 4000, 10540, "DeleteTopic with subscriptions");
    jv_free(v);

    /* Unsubscribe. */
    v = CALL("Unsubscribe", "topicName", t, "subscriptionName", "s1");
    expect_ok(v, "Unsubscribe");
    jv_free(v);
    v = CALL("Unsubscribe", "topicName", t, "subscriptionName", "s1");
    expect_err(v, 4440, 10600, "Unsubscribe again (subscription missing)");
    check(v && strstr(sget(v, "message"), "subscription is not existed") != NULL,
          "its message names the subscription (%s)", sget(v, "message"));
    jv_free(v);
    v = CALL("Unsubscribe", "topicName", nm("nope"), "subscriptionName", "s1");
    expect_err(v, 4440, 10600, "Unsubscribe on a missing topic");
    jv_free(v);
    v = CALL("GetSubscriptionAttributes", "topicName", t, "subscriptionName", "s1");
    expect_err(v, 4440, 0, "GetSubscriptionAttributes after Unsubscribe");
    jv_free(v);
    v = CALL("Unsubscribe", "topicName", t);
    expect_err(v, 4000, 10390, "Unsubscribe without subscriptionName");
    jv_free(v);
    jv_free(CALL("Unsubscribe", "topicName", t, "subscriptionName", "s2"));
    jv_free(CALL("Unsubscribe", "topicName", t, "subscriptionName", "sx"));
    v = CALL("DeleteTopic", "topicName", t);
    expect_ok(v, "DeleteTopic once its subscriptions are gone");
    jv_free(v);
}

/* ---------- quotas (§11) ---------- */

static void quotas(void)
{
    struct jv *v;
    /* Subscriptions per topic: 100. */
    char t[80];
    snprintf(t, sizeof t, "%s", nm("quota-t"));
    jv_free(CALL("CreateTopic", "topicName", t));
    int created = 0;
    for (int i = 0; i < 100; i++) {
        char sub[16];
        snprintf(sub, sizeof sub, "s%d", i);
        v = CALL("Subscribe", "topicName", t, "subscriptionName", sub, "protocol", "http",
                 "endpoint", "http://127.0.0.1:9/");
        created += v && iget(v, "code") == 0;
        jv_free(v);
    }
    check(created == 100, "100 subscriptions on one topic (%d)", created);
    v = CALL("Subscribe", "topicName", t, "subscriptionName", "s100", "protocol", "http",
             "endpoint", "http://127.0.0.1:9/");
    expect_err(v, 4500, 10480, "the 101st subscription");
    jv_free(v);
    v = CALL("ListSubscriptionByTopic", "topicName", t, "limit", "500");
    check(v && iget(v, "totalCount") == 100 && jv_get(v, "subscriptionList")->n == 100,
          "ListSubscriptionByTopic limit=500 clamped to 100 of 100");
    jv_free(v);

    /* Queues and topics per account: 1000 each, on a fresh account. */
    char out[1024], appid[32], kid[80], kkey[80];
    if (ctl(out, sizeof out, "account create --name conformance-quota") != 0 ||
        env_val(out, "CMQ_APPID", appid, sizeof appid) ||
        new_key(appid, 0, kid, sizeof kid, kkey, sizeof kkey)) {
        report(0, "quota account", "cmqctl account/key create failed");
        return;
    }
    struct cmq_client k;
    cmq_client_init(&k, g_ip, g_port, kid, kkey);
    int nq = 0, nt = 0;
    time_t t0 = time(NULL);
    for (int i = 0; i < 1000; i++) {
        char name[32];
        snprintf(name, sizeof name, "q%d", i);
        v = cmq_call(&k, 0, "CreateQueue", "queueName", name, (const char *)NULL);
        nq += v && iget(v, "code") == 0;
        jv_free(v);
        snprintf(name, sizeof name, "t%d", i);
        v = cmq_call(&k, 0, "CreateTopic", "topicName", name, (const char *)NULL);
        nt += v && iget(v, "code") == 0;
        jv_free(v);
    }
    check(nq == 1000 && nt == 1000, "1000 queues and 1000 topics on a new account (%d, %d; %ld s)",
          nq, nt, (long)(time(NULL) - t0));
    v = cmq_call(&k, 0, "CreateQueue", "queueName", "q1000", (const char *)NULL);
    expect_err(v, 4450, 10220, "the 1001st queue");
    jv_free(v);
    v = cmq_call(&k, 0, "CreateTopic", "topicName", "t1000", (const char *)NULL);
    expect_err(v, 4450, 10610, "the 1001st topic");
    jv_free(v);
    v = cmq_call(&k, 0, "ListQueue", (const char *)NULL);
    check(v && iget(v, "totalCount") == 1000 && jv_get(v, "queueList")->n == 20,
          "ListQueue default page: 20 of 1000");
    jv_free(v);
    /* Accounts are separate namespaces. */
    v = CALL("GetTopicAttributes", "topicName", "t1");
    expect_err(v, 4440, 10600, "another account's topic is not visible");
    jv_free(v);
    http_close(&k.http);
}

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

static void messages(void)
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
static void coalescing(void)
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

static void coalesced_deletes(void)
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

/* deadLetterPolicy (spec §6): JSON text in, JSON text with the DLQ's id out. */
static void dead_letter_policy(void)
{
    char src[80], dlq[80], pol[300];
    snprintf(src, sizeof src, "%s", nm("dl-src"));
    snprintf(dlq, sizeof dlq, "%s", nm("dl-q"));
    struct jv *v = CALL("CreateQueue", "queueName", dlq);
    char dlq_id[80];
    snprintf(dlq_id, sizeof dlq_id, "%s", sget(v, "queueId"));
    jv_free(v);
    snprintf(pol, sizeof pol, "{\"deadLetterQueue\":\"%s\",\"policy\":0,\"maxReceiveCount\":3}",
             dlq);
    v = CALL("CreateQueue", "queueName", src, "deadLetterPolicy", pol);
    expect_ok(v, "CreateQueue with deadLetterPolicy (policy 0, maxReceiveCount 3)");
    jv_free(v);
    v = CALL("GetQueueAttributes", "queueName", src);
    const struct jv *dp = jv_get(v, "deadLetterPolicy");
    struct jv *in = dp && dp->t == J_STR ? json_parse(dp->s, strlen(dp->s)) : NULL;
    check(in && strcmp(sget(in, "deadLetterQueue"), dlq_id) == 0 && iget(in, "policy") == 0 &&
              iget(in, "maxReceiveCount") == 3,
          "GetQueueAttributes: deadLetterPolicy is JSON text naming the DLQ by id (%s)",
          dp && dp->t == J_STR ? dp->s : "absent");
    jv_free(in);
    jv_free(v);
    snprintf(pol, sizeof pol, " { \"policy\" : \"1\", \"maxTimeToLive\": 600, "
             "\"deadLetterQueue\": \"%s\", \"comment\": [1, {\"x\": null}] } ", dlq);
    v = CALL("SetQueueAttributes", "queueName", src, "deadLetterPolicy", pol);
    expect_ok(v, "SetQueueAttributes deadLetterPolicy policy 1 (quoted number, blanks, an "
                 "unknown member)");
    dp = jv_get(v, "deadLetterPolicy");
    in = dp && dp->t == J_STR ? json_parse(dp->s, strlen(dp->s)) : NULL;
    check(in && iget(in, "policy") == 1 && iget(in, "maxTimeToLive") == 600,
          "SetQueueAttributes answers the new deadLetterPolicy (%s)",
          dp && dp->t == J_STR ? dp->s : "absent");
    jv_free(in);
    jv_free(v);
    static const struct {
        const char *text;
        int code, module;
        const char *what;
    } bad[] = {
        {"{\"policy\":0,", 4000, 10360, "malformed JSON"},
        {"[1]", 4000, 10360, "not an object"},
        {"{\"policy\":0.5}", 4000, 10360, "policy not an integer"},
        {"{\"policy\":2,\"deadLetterQueue\":\"x\"}", 4000, 10350, "policy 2"},
        {"{\"policy\":0,\"maxReceiveCount\":0,\"deadLetterQueue\":\"x\"}", 4000, 10350,
         "maxReceiveCount 0"},
        {"{\"policy\":0,\"maxReceiveCount\":3,\"deadLetterQueue\":\"no-such-dlq-x\"}", 4000,
         10110, "a DLQ that does not exist"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        v = CALL("SetQueueAttributes", "queueName", src, "deadLetterPolicy", bad[i].text);
        expect_err(v, bad[i].code, bad[i].module, "deadLetterPolicy %s", bad[i].what);
        jv_free(v);
    }
    v = CALL("SetQueueAttributes", "queueName", src, "deadLetterPolicy", "");
    expect_ok(v, "SetQueueAttributes deadLetterPolicy=\"\" removes the policy");
    jv_free(v);
    v = CALL("GetQueueAttributes", "queueName", src);
    check(v && iget(v, "code") == 0 && !jv_get(v, "deadLetterPolicy"),
          "after removal GetQueueAttributes has no deadLetterPolicy");
    jv_free(v);
}

/* /metrics: Prometheus text, the series the issue names. */
static void metrics_endpoint(void)
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

/* ---------- actions storage will serve (§7.6-7.7) ---------- */

/* code -1: "any well-formed envelope" until storage serves the action.
 * Tighten by putting the expected code and the keys that must be present
 * (space-separated, types from §13.4) into `code` and `keys`. */
static void message_actions_answer(void)
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
