/* push.c: HTTP pushes to topic subscription endpoints (spec §10) on behalf
 * of a topic's leader (storage nodes never open outbound HTTP).
 *
 * A PushRequest (proto/push.proto) arrives on the gateway's rpc ROUTER; the
 * gateway POSTs to the endpoint with h2o's HTTP/1 client on its own loop and
 * answers with the HTTP status (0 when none came: connection error or no
 * response within the timeout).  The response body is ignored; the
 * connection is closed after each push (no pooling: pushes of one
 * subscription are sequential anyway).
 *
 * Exact request (both formats): POST <path?query> HTTP/1.1, Host, then
 * Content-Type: text/plain, User-Agent: Qcloud Notification Service Agent,
 * x-cmq-request-id, x-cmq-message-id, x-cmq-message-tag (tags joined by
 * ", "; omitted without tags), Content-Length.  JSON body:
 * {"TopicOwner":<appid number>,"topicName":..,"subscriptionName":..,
 *  "msgId":"<id>","msgBody":..,"publishTime":<Unix s>}; SIMPLIFIED: the
 * raw body.
 *
 * https:// endpoints: the same request over TLS (OpenSSL, as h2o is built
 * with).  The certificate is verified against the system's CAs plus
 * push.ca_file, and the host name against it (h2o checks the name it sends
 * as SNI); push.verify = false only encrypts.  A failed handshake is a
 * failed push (status 0), retried like any other.
 */
#include "push.h"

#include "clock.h"
#include "json.h"
#include "log.h"
#include "push.pb.h"
#include "status.h"

#include <inttypes.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pb_decode.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PUSH_TIMEOUT_MS_DEFAULT 15000
#define PUSH_INFLIGHT_MAX 4096
#define PUSH_BODY_MAX (1u << 20)

struct pusher {
    h2o_loop_t *loop;
    h2o_timeout_t io_timeout;
    h2o_timeout_t deadline;     /* one timeout for every push: PUSH_TIMEOUT_MS_DEFAULT */
    h2o_http1client_ctx_t ctx;
    SSL_CTX *tls;               /* client context for https://; NULL if it could not be made */
    uint64_t inflight, pushed, failed;
    struct push_job *jobs;      /* in flight, for push_close */
};

struct push_job {
    struct pusher *ps;
    struct push_job *prev, *next;
    struct rpc_call *call;
    h2o_http1client_t *client;
    h2o_timeout_entry_t timer;
    h2o_iovec_t req;            /* malloc'd request bytes */
    uint64_t started_ms;
    char url[512];
};

static struct pusher *pusher;

static void job_unlink(struct push_job *j)
{
    if (h2o_timeout_is_linked(&j->timer))
        h2o_timeout_unlink(&j->timer);
    if (j->prev)
        j->prev->next = j->next;
    else
        j->ps->jobs = j->next;
    if (j->next)
        j->next->prev = j->prev;
    j->ps->inflight--;
}

static void job_finish(struct push_job *j, uint32_t status)
{
    job_unlink(j);
    cmq_PushReply r = cmq_PushReply_init_zero;
    r.http_status = status;
    r.elapsed_ms = (uint32_t)(clock_mono_ms() - j->started_ms);
    if (status >= 200 && status < 300)
        j->ps->pushed++;
    else
        j->ps->failed++;
    rpc_reply_pb(j->call, cmq_PushReply_fields, &r);
    free(j->req.base);
    free(j);
}

static h2o_http1client_body_cb on_head(h2o_http1client_t *client, const char *errstr, int minor,
                                       int status, h2o_iovec_t msg, h2o_header_t *headers,
                                       size_t num_headers, int rlen)
{
    (void)minor; (void)msg; (void)headers; (void)num_headers; (void)rlen;
    struct push_job *j = client->data;
    if (errstr && errstr != h2o_http1client_error_is_eos)
        status = 0;
    job_finish(j, (uint32_t)(status > 0 ? status : 0));
    return NULL; /* the body is ignored: h2o closes the connection */
}

static h2o_http1client_head_cb on_connect(h2o_http1client_t *client, const char *errstr,
                                          h2o_iovec_t **reqbufs, size_t *reqbufcnt,
                                          int *method_is_head)
{
    struct push_job *j = client->data;
    if (errstr) {
        log_info("push_connect_failed", "url=%s error=\"%s\"", j->url, errstr);
        job_finish(j, 0);
        return NULL;
    }
    *reqbufs = &j->req;
    *reqbufcnt = 1;
    *method_is_head = 0;
    return on_head;
}

static void on_timeout(h2o_timeout_entry_t *entry)
{
    struct push_job *j = H2O_STRUCT_FROM_MEMBER(struct push_job, timer, entry);
    log_info("push_timeout", "url=%s", j->url);
    h2o_http1client_cancel(j->client);
    job_finish(j, 0);
}

struct body_buf {
    uint8_t *p;
    size_t len;
};

static bool decode_body(pb_istream_t *is, const pb_field_t *f, void **arg)
{
    (void)f;
    struct body_buf *b = *arg;
    size_t n = is->bytes_left;
    if (n > PUSH_BODY_MAX || b->p)
        return false;
    b->p = malloc(n ? n : 1);
    if (!b->p)
        return false;
    b->len = n;
    return pb_read(is, b->p, n);
}

/* The request bytes; NULL when out of memory or the URL is unusable. */
static char *build_request(const cmq_PushRequest *r, const h2o_url_t *u, const struct body_buf *b,
                           size_t *out_len)
{
    struct json *jb = NULL;
    const char *body = (const char *)b->p;
    size_t body_len = b->len;
    if (r->format != 2) { /* JSON */
        jb = json_create(4 * PUSH_BODY_MAX);
        if (!jb)
            return NULL;
        json_obj_begin(jb);
        json_kv_int(jb, "TopicOwner", (int64_t)r->topic_owner);
        json_kv_cstr(jb, "topicName", r->topic_name);
        json_kv_cstr(jb, "subscriptionName", r->subscription_name);
        json_kv_id(jb, "msgId", r->msg_id);
        json_kv_str(jb, "msgBody", body ? body : "", body_len);
        json_kv_int(jb, "publishTime", (int64_t)r->publish_time_s);
        json_obj_end(jb);
        if (json_finish(jb, &body, &body_len) != 0) {
            json_destroy(jb);
            return NULL;
        }
    }
    char tags[6 * 70] = "";
    size_t tl = 0;
    for (pb_size_t i = 0; i < r->tags_count; i++)
        tl += (size_t)snprintf(tags + tl, sizeof tags - tl, "%s%s", i ? ", " : "", r->tags[i]);
    char head[2048];
    int hl = snprintf(head, sizeof head,
                      "POST %.*s HTTP/1.1\r\nHost: %.*s\r\nContent-Type: text/plain\r\n"
                      "User-Agent: Qcloud Notification Service Agent\r\n"
                      "x-cmq-request-id: %s\r\nx-cmq-message-id: %" PRIu64 "\r\n"
                      "%s%s%s"
                      "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                      (int)u->path.len, u->path.base, (int)u->authority.len, u->authority.base,
                      r->request_id, r->msg_id, r->tags_count ? "x-cmq-message-tag: " : "",
                      r->tags_count ? tags : "", r->tags_count ? "\r\n" : "", body_len);
    char *out = NULL;
    if (hl > 0 && (size_t)hl < sizeof head && (out = malloc((size_t)hl + body_len + 1))) {
        memcpy(out, head, (size_t)hl);
        if (body_len)
            memcpy(out + hl, body, body_len);
        *out_len = (size_t)hl + body_len;
    }
    json_destroy(jb);
    return out;
}

/* The TLS client context for https:// endpoints; NULL (logged) when the CA
 * file cannot be read, and then https:// pushes fail while http:// go on. */
static SSL_CTX *push_tls_open(const struct gateway_cfg *cfg)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx)
        return NULL;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    int ok = SSL_CTX_set_default_verify_paths(ctx) == 1;
    if (ok && cfg->push_ca_file[0])
        ok = SSL_CTX_load_verify_locations(ctx, cfg->push_ca_file, NULL) == 1;
    if (!ok) {
        char buf[256];
        ERR_error_string_n(ERR_get_error(), buf, sizeof buf);
        log_error("push_tls_failed", "ca_file=%s reason=\"%s\"", cfg->push_ca_file, buf);
        SSL_CTX_free(ctx);
        return NULL;
    }
    SSL_CTX_set_verify(ctx, cfg->push_verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
    return ctx;
}

static struct pusher *pusher_get(struct gateway *gw)
{
    if (pusher)
        return pusher;
    struct pusher *ps = calloc(1, sizeof *ps);
    if (!ps)
        return NULL;
    ps->loop = gw->loop;
    h2o_timeout_init(ps->loop, &ps->io_timeout, PUSH_TIMEOUT_MS_DEFAULT);
    h2o_timeout_init(ps->loop, &ps->deadline, PUSH_TIMEOUT_MS_DEFAULT);
    ps->ctx.loop = ps->loop;
    ps->ctx.getaddr_receiver = &gw->ctx.receivers.hostinfo_getaddr;
    ps->ctx.io_timeout = &ps->io_timeout;
    ps->tls = push_tls_open(&gw->cfg);
    ps->ctx.ssl_ctx = ps->tls;
    pusher = ps;
    return ps;
}

void push_handle(struct gateway *gw, struct rpc_call *call)
{
    struct pusher *ps = pusher_get(gw);
    static cmq_PushRequest r;
    memset(&r, 0, sizeof r);
    struct body_buf b = {0};
    r.body.funcs.decode = decode_body;
    r.body.arg = &b;
    if (!ps || rpc_call_decode(call, cmq_PushRequest_fields, &r) != CMQ_OK) {
        free(b.p);
        rpc_reply_status(call, CMQ_EINVAL, "bad push request");
        return;
    }
    if (ps->inflight >= PUSH_INFLIGHT_MAX) {
        free(b.p);
        rpc_reply_status(call, CMQ_EBUSY, "too many pushes in flight");
        return;
    }
    h2o_url_t u;
    int parsed = h2o_url_parse(r.url, strlen(r.url), &u) == 0;
    int is_tls = parsed && u.scheme == &H2O_URL_SCHEME_HTTPS;
    if (!parsed || (!is_tls && u.scheme != &H2O_URL_SCHEME_HTTP) || (is_tls && !ps->tls)) {
        free(b.p);
        log_info("push_bad_url", "url=%s", r.url);
        cmq_PushReply rep = cmq_PushReply_init_zero;
        rpc_reply_pb(call, cmq_PushReply_fields, &rep);
        return;
    }
    struct push_job *j = calloc(1, sizeof *j);
    size_t len = 0;
    char *req = j ? build_request(&r, &u, &b, &len) : NULL;
    free(b.p);
    if (!req) {
        free(j);
        rpc_reply_status(call, CMQ_ENOMEM, NULL);
        return;
    }
    j->ps = ps;
    j->call = call;
    j->req = h2o_iovec_init(req, len);
    j->started_ms = clock_mono_ms();
    snprintf(j->url, sizeof j->url, "%s", r.url);
    j->timer.cb = on_timeout;
    ps->inflight++;
    j->next = ps->jobs;
    if (ps->jobs)
        ps->jobs->prev = j;
    ps->jobs = j;
    h2o_timeout_link(ps->loop, &ps->deadline, &j->timer);
    h2o_http1client_connect(&j->client, j, &ps->ctx, u.host, h2o_url_get_port(&u), is_tls,
                            on_connect);
}

void push_close(struct gateway *gw)
{
    struct pusher *ps = pusher;
    if (!ps || ps->loop != gw->loop)
        return;
    while (ps->jobs) {
        struct push_job *j = ps->jobs;
        h2o_http1client_cancel(j->client);
        job_unlink(j);
        rpc_drop(j->call); /* the server is closed: no one to answer */
        free(j->req.base);
        free(j);
    }
    /* h2o asserts at loop destruction that no timeout is still registered */
    h2o_timeout_dispose(ps->loop, &ps->io_timeout);
    h2o_timeout_dispose(ps->loop, &ps->deadline);
    SSL_CTX_free(ps->tls);
    pusher = NULL;
    free(ps);
}
