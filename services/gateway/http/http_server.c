/* http_server.c: the CMQ HTTP JSON API (spec cmq-http-api.md) on
 * /v2/index.php and /, the h2o front end over the gateway's back end
 * (services/gateway/backend/).
 *
 * Pipeline per request: method and size checks -> form parameters from the
 * query string and the body (whatever the Content-Type) -> Action -> the key
 * for SecretId and the signature (§4, both HMACs, the Host header and the
 * host with its port toggled) and the ACL for restricted keys, all three by
 * the back end's auth module (backend/be_auth.h) -> the action.  Every
 * answer is HTTP 200 with code/message/requestId (§2.3); every failure
 * carries the spec's code, built in one place
 * (services/gateway/cmqapi/cmq_error.h).
 *
 * Actions served here: queue management via metadata (api_queue.c) and
 * storage (api_msg.c), the message actions via storage (api_msg.c); topic and
 * subscription actions (api_topic.c) as they land.  An action not served yet
 * answers a clear 6000 error naming it.
 */
#include "api_internal.h"
#include "api_publish.h"
#include "be_auth.h"

#include "action.h"
#include "clock.h"
#include "cmq_error.h"
#include "cmq_limits.h"
#include "json.h"
#include "log.h"
#include "metadata.pb.h"
#include "params.h"
#include "sign.h"
#include "status.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define API_TIMESTAMP_WINDOW_S 7200 /* §3: |now - Timestamp| */


/* ---------- dispatch ---------- */

static void dispatch(struct gw_call *c)
{
    struct api_call *a = gw_call_data(c);
    switch (a->action) {
    case CMQ_ACTION_CREATE_QUEUE: api_do_create_or_set_queue(c, 0); return;
    case CMQ_ACTION_SET_QUEUE_ATTRIBUTES: api_do_create_or_set_queue(c, 1); return;
    case CMQ_ACTION_DELETE_QUEUE: api_do_delete_queue(c); return;
    case CMQ_ACTION_LIST_QUEUE: api_do_list_queue(c); return;
    case CMQ_ACTION_GET_QUEUE_ATTRIBUTES:
    case CMQ_ACTION_REWIND_QUEUE:
    case CMQ_ACTION_SEND_MESSAGE:
    case CMQ_ACTION_BATCH_SEND_MESSAGE:
    case CMQ_ACTION_RECEIVE_MESSAGE:
    case CMQ_ACTION_BATCH_RECEIVE_MESSAGE:
    case CMQ_ACTION_DELETE_MESSAGE:
    case CMQ_ACTION_BATCH_DELETE_MESSAGE:
    case CMQ_ACTION_DESCRIBE_MESSAGE_TRACE:
        if (!params_find(a->params, "queueName", NULL) && params_find(a->params, "topicName", NULL))
            api_do_topic_trace(c); /* api_publish.c */
        else
            api_do_queue_storage_action(c);
        return;
    case CMQ_ACTION_CREATE_TOPIC: api_do_create_topic(c); return;
    case CMQ_ACTION_SET_TOPIC_ATTRIBUTES: api_do_set_topic(c); return;
    case CMQ_ACTION_GET_TOPIC_ATTRIBUTES: api_do_get_topic(c); return;
    case CMQ_ACTION_DELETE_TOPIC: api_do_delete_topic(c); return;
    case CMQ_ACTION_LIST_TOPIC: api_do_list_topic(c); return;
    case CMQ_ACTION_SUBSCRIBE: api_do_subscribe(c); return;
    case CMQ_ACTION_SET_SUBSCRIPTION_ATTRIBUTES: api_do_set_subscription(c); return;
    case CMQ_ACTION_GET_SUBSCRIPTION_ATTRIBUTES: api_do_get_subscription(c); return;
    case CMQ_ACTION_UNSUBSCRIBE: api_do_unsubscribe(c); return;
    case CMQ_ACTION_CLEAR_SUBSCRIPTION_FILTER_TAGS: api_do_clear_filter_tags(c); return;
    case CMQ_ACTION_LIST_SUBSCRIPTION_BY_TOPIC: api_do_list_subscriptions(c); return;
    case CMQ_ACTION_QUERY_QUEUE_ROUTE:
    case CMQ_ACTION_QUERY_TOPIC_ROUTE: api_do_query_route(c); return; /* api_route.c */
    case CMQ_ACTION_PUBLISH_MESSAGE:
    case CMQ_ACTION_BATCH_PUBLISH_MESSAGE: api_do_publish(c); return;
    default: {
        /* Not served by this build yet (see the file comment): say so plainly. */
        struct json *j = json_create(4096);
        if (!j)
            return;
        char message[160];
        snprintf(message, sizeof message, "(10050)action %s is not served by this server yet",
                 action_name(a->action));
        json_obj_begin(j);
        json_kv_int(j, "code", 6000);
        json_kv_cstr(j, "message", message);
        json_kv_cstr(j, "requestId", a->request_id);
        json_obj_end(j);
        api_respond_json(c, j);
        json_destroy(j);
    }
    }
}

/* ---------- authentication and authorisation ---------- */

static void on_acl(void *arg, int allowed, enum cmq_err denial, const char *reason,
                   const struct be_fault *f)
{
    struct gw_call *c = arg;
    if (!gw_call_gone(c)) {
        struct api_call *a = gw_call_data(c);
        if (f) {
            api_reply_be_fault(c, f);
        } else if (!allowed) {
            log_info("api_denied", "request=%s secret_id=%s action=%s reason=\"%s\"", a->request_id,
                     a->key.secret_id, action_name(a->action), reason);
            api_reply_err(c, denial, NULL);
        } else {
            dispatch(c);
        }
    }
    gw_call_release(c);
}

/* The resource an action touches, for the ACL: ("queue", queueName),
 * ("topic", topicName) or account-level (""). */
static void acl_resource(struct api_call *a, char *type, size_t tcap, char *name, size_t ncap)
{
    struct param_view pv;
    if (params_find(a->params, "queueName", &pv) && pv.val_len < ncap) {
        snprintf(type, tcap, "queue");
        memcpy(name, pv.val, pv.val_len);
    } else if (params_find(a->params, "topicName", &pv) && pv.val_len < ncap) {
        snprintf(type, tcap, "topic");
        memcpy(name, pv.val, pv.val_len);
    }
}

static void authorise(struct gw_call *c)
{
    struct api_call *a = gw_call_data(c);
    if (!a->key.restricted) {
        dispatch(c); /* an unrestricted key may do anything on its own account */
        return;
    }
    char type[16] = "", name[130] = "";
    acl_resource(a, type, sizeof type, name, sizeof name);
    gw_call_hold(c);
    be_acl_check(&gw_call_gateway(c)->be, a->key.secret_id, a->action, type, name, on_acl, c);
}

static void verify(struct gw_call *c)
{
    struct api_call *a = gw_call_data(c);
    enum cmq_err e = be_key_refusal(&a->key);
    if (e != CMQERR_OK) {
        log_info("api_auth_failed", "request=%s secret_id=%s reason=%s", a->request_id,
                 a->key.secret_id, a->key.exists ? "disabled_key" : "unknown_key");
        api_reply_err(c, e, NULL);
        return;
    }
    const char *hosts[2] = {a->host, a->host_alt};
    struct sign_request sr = {
        .method = a->method,
        .hosts = hosts,
        .n_hosts = a->host_alt[0] ? 2 : 1,
        .path = a->path,
        .now_s = clock_wall_s(),
        .window_s = API_TIMESTAMP_WINDOW_S,
        .nonces = NULL,
    };
    struct cmq_fault f = {0};
    if (be_auth_http(&a->key, a->params, &sr, &f) != CMQ_OK) {
        log_info("api_auth_failed", "request=%s secret_id=%s reason=%s", a->request_id,
                 a->key.secret_id, cmq_error_id(f.err));
        api_reply_fault(c, &f);
        return;
    }
    authorise(c);
}

static void on_key(void *arg, const struct key_entry *key, const struct be_fault *f)
{
    struct gw_call *c = arg;
    if (!gw_call_gone(c)) {
        struct api_call *a = gw_call_data(c);
        if (!key) {
            api_reply_be_fault(c, f);
        } else {
            a->key = *key;
            verify(c);
        }
    }
    gw_call_release(c);
}

static void authenticate(struct gw_call *c)
{
    struct api_call *a = gw_call_data(c);
    struct cmq_fault f = {0};
    const char *id;
    size_t len;
    if (params_get_str(a->params, "SecretId", KEY_ID_MAX - 1, &id, &len, &f) != CMQ_OK) {
        api_reply_fault(c, &f);
        return;
    }
    memcpy(a->key.secret_id, id, len);
    a->key.secret_id[len] = '\0';
    gw_call_hold(c);
    be_key_lookup(&gw_call_gateway(c)->be, a->key.secret_id, on_key, c);
}

/* ---------- the handler ---------- */

static void cleanup(void *data)
{
    struct api_call *a = data;
    api_msg_cleanup(a);
    api_publish_cleanup(a);
    params_destroy(a->params);
    OPENSSL_cleanse(&a->key, sizeof a->key);
}

static int on_request(h2o_handler_t *self, h2o_req_t *req)
{
    (void)self;
    struct gateway *gw = gw_call_loop_of(req);
    struct api *api = gw->api;
    /* Only the two API paths; h2o matches "/" as a prefix of everything. */
    size_t path_len = req->query_at != SIZE_MAX ? req->query_at : req->path.len;
    int is_api = (path_len == 1 && req->path.base[0] == '/') ||
                 (path_len == 13 && memcmp(req->path.base, "/v2/index.php", 13) == 0);
    if (!is_api)
        return -1; /* h2o answers 404 */
    __atomic_fetch_add(&gw->requests, 1, __ATOMIC_RELAXED);
    struct gw_call *c = gw_call_begin(gw, req, sizeof(struct api_call));
    if (!c)
        return -1;
    struct api_call *a = gw_call_data(c);
    gw_call_set_cleanup(c, cleanup);
    a->api = api;
    a->start_ns = clock_mono_ns();
    snprintf(a->request_id, sizeof a->request_id, "%08x-%llu", api->boot_tag,
             (unsigned long long)++api->seq);
    memcpy(a->path, req->path.base, path_len);
    a->params = params_create();
    if (!a->params) {
        api_reply_err(c, CMQERR_INTERNAL, NULL);
        return 0;
    }
    if (!h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET")) &&
        !h2o_memis(req->method.base, req->method.len, H2O_STRLIT("POST"))) {
        char m[16];
        snprintf(m, sizeof m, "%.*s", (int)(req->method.len < 15 ? req->method.len : 15),
                 req->method.base);
        api_reply_err(c, CMQERR_BAD_METHOD, m);
        return 0;
    }
    snprintf(a->method, sizeof a->method, "%.*s", (int)req->method.len, req->method.base);
    /* cmq_limits.h: room for a 1 MiB batch fully percent-encoded (§2.2). */
    if (req->entity.len + req->path.len > CMQ_REQUEST_BYTES_MAX) {
        api_reply_err(c, CMQERR_REQUEST_TOO_BIG, "request");
        return 0;
    }
    if (req->authority.len >= sizeof a->host) {
        api_reply_err(c, CMQERR_INVALID_REQUEST, NULL);
        return 0;
    }
    memcpy(a->host, req->authority.base, req->authority.len);
    a->host[req->authority.len] = '\0';
    a->port = req->scheme == &H2O_URL_SCHEME_HTTPS ? gw->https.port : gw->http.port;
    if (sign_host_toggle_port(a->host, a->port, a->host_alt, sizeof a->host_alt) < 0)
        a->host_alt[0] = '\0';
    struct cmq_fault f = {0};
    if (req->query_at != SIZE_MAX &&
        params_parse(a->params, req->path.base + req->query_at + 1,
                     req->path.len - req->query_at - 1, &f) != CMQ_OK) {
        api_reply_fault(c, &f);
        return 0;
    }
    if (req->entity.len && params_parse(a->params, req->entity.base, req->entity.len, &f) != CMQ_OK) {
        api_reply_fault(c, &f);
        return 0;
    }
    if (action_from_params(a->params, &a->action, &f) != CMQ_OK) {
        api_reply_fault(c, &f);
        return 0;
    }
    authenticate(c);
    return 0;
}

int api_open(struct gateway *gw, h2o_hostconf_t *host)
{
    struct api *api = calloc(1, sizeof *api);
    if (!api)
        return CMQ_ENOMEM;
    api->gw = gw;
    /* Request ids are boot_tag-seq: a tag per loop keeps them unique. */
    api->boot_tag = (unsigned)(clock_wall_ms() ^ clock_mono_ns()) + (unsigned)gw->index;
    if (host) {
        h2o_pathconf_t *pc = h2o_config_register_path(host, "/", 0);
        h2o_handler_t *h = h2o_create_handler(pc, sizeof *h);
        h->on_req = on_request;
    }
    gw->api = api;
    return CMQ_OK;
}

void api_close(struct api *api)
{
    if (!api)
        return;
    free(api);
}
