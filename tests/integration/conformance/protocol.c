/* protocol.c: conformance checks of the transport, the envelope, the
 * signature and request parsing (spec §2-§4): transport(), auth_errors(),
 * request_errors().  Part of the conformance suite (conformance.c). */
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

/* ---------- transport, envelope, signature (§2-§4) ---------- */

void transport(void)
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

void auth_errors(void)
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

void request_errors(void)
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
