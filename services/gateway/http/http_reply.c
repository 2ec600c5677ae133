/* http_reply.c: the HTTP front end's answers and parameter helpers, the
 * layer every action file of http/ stands on: the JSON envelope (every
 * answer passes count_answer, so /metrics counts it), error rows and
 * back-end faults, metadata calls of a request, the common parameters
 * (names, integers, list paging, message bodies), the client's address
 * (for the trace) and JSON pieces shared by several actions.  It calls no
 * action. */
#include "api_internal.h"

#include "be_status.h"
#include "clock.h"
#include "cmq_error.h"
#include "cmq_limits.h"
#include "dlq_policy.h"
#include "json.h"
#include "log.h"
#include "metadata.pb.h"
#include "params.h"
#include "status.h"

#include <arpa/inet.h>
#include <h2o.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct gateway *api_gateway(struct api *api) { return api->gw; }

/* Every answer goes through here: the envelope's "code" is its first member
 * (cmq_error_envelope and every hand-built envelope write it first). */
static void count_answer(struct gw_call *c, const char *body, size_t len)
{
    struct api_call *a = gw_call_data(c);
    int code = 6000;
    if (len > 8 && memcmp(body, "{\"code\":", 8) == 0)
        code = atoi(body + 8);
    uint64_t now = clock_mono_ns();
    metrics_request(&gw_call_gateway(c)->metrics, a->action, code,
                    now > a->start_ns ? (now - a->start_ns) / 1000 : 0);
}

void api_respond_json(struct gw_call *c, struct json *j)
{
    const char *body;
    size_t len;
    if (json_finish(j, &body, &len) != CMQ_OK) {
        static const char fallback[] = "{\"code\":6000,\"message\":\"(10050)server internal error\",\"requestId\":\"\"}";
        body = fallback;
        len = sizeof fallback - 1;
    }
    if (!gw_call_gone(c))
        count_answer(c, body, len);
    gw_call_respond(c, 200, "application/json; charset=utf-8", body, len);
}

void api_reply_err(struct gw_call *c, enum cmq_err e, const char *arg)
{
    struct api_call *a = gw_call_data(c);
    struct json *j = json_create(4096);
    if (!j)
        return;
    cmq_error_reply(j, e, arg, a->request_id);
    api_respond_json(c, j);
    json_destroy(j);
    if (e != CMQERR_OK)
        log_debug("api_error", "request=%s action=%s code=%d module=%d secret_id=%s", a->request_id,
                  action_name(a->action), cmq_error_code(e), cmq_error_module(e),
                  a->key.secret_id[0] ? a->key.secret_id : "-");
}

void api_reply_fault(struct gw_call *c, const struct cmq_fault *f)
{
    api_reply_err(c, f->err, f->arg[0] ? f->arg : NULL);
}

void api_reply_be_fault(struct gw_call *c, const struct be_fault *f)
{
    if (f->err != CMQERR_COUNT_) {
        api_reply_err(c, f->err, f->arg[0] ? f->arg : NULL);
        return;
    }
    struct api_call *a = gw_call_data(c);
    struct json *j = json_create(4096);
    if (!j)
        return;
    char message[300];
    snprintf(message, sizeof message, "(%d)%s", f->module, f->reason);
    json_obj_begin(j);
    json_kv_int(j, "code", f->code);
    json_kv_cstr(j, "message", message);
    json_kv_cstr(j, "requestId", a->request_id);
    json_obj_end(j);
    api_respond_json(c, j);
    json_destroy(j);
}

/* A failed back-end reply: metadata's MetaError names the exact CMQ code;
 * otherwise the status's default row (timeouts and unavailability: 6000). */
void api_reply_backend_error(struct gw_call *c, int status, const struct rpc_msg *msg)
{
    struct api_call *a = gw_call_data(c);
    struct be_fault f;
    be_meta_fault(status, msg, CMQERR_COUNT_, &f);
    if (f.err != CMQERR_COUNT_ && cmq_error_code(f.err) == 6000)
        log_warn("api_backend_failed", "request=%s action=%s status=%s error=\"%s\"",
                 a->request_id, action_name(a->action), status_name(status),
                 msg && msg->error ? msg->error : "");
    api_reply_be_fault(c, &f);
}

/* Starts a success response: {"code":0,"message":"","requestId":...; the
 * caller adds members and calls api_finish_ok. */
struct json *api_begin_ok(struct gw_call *c)
{
    return api_begin_ok_cap(c, API_JSON_MAX);
}

struct json *api_begin_ok_cap(struct gw_call *c, size_t cap)
{
    struct api_call *a = gw_call_data(c);
    struct json *j = json_create(cap);
    if (!j)
        return NULL;
    json_obj_begin(j);
    cmq_error_envelope(j, CMQERR_OK, NULL, a->request_id);
    return j;
}

void api_finish_ok(struct gw_call *c, struct json *j)
{
    json_obj_end(j);
    api_respond_json(c, j);
    json_destroy(j);
}

void api_meta_call(struct gw_call *c, uint32_t type, const pb_msgdesc_t *fields, const void *msg,
                      gw_reply_fn *fn)
{
    struct rpc_opts opts = {.timeout_ms = API_META_TIMEOUT_MS, .attempts = 1, .peer = 0};
    int rc = gw_call_backend(c, GW_BACKEND_METADATA, type, fields, msg, &opts, fn, (int)type);
    if (rc != CMQ_OK)
        api_reply_err(c, cmq_error_from_status(rc), NULL);
}

/* Copies string parameter `key` (required) into out; on failure answers. */
int api_need_str(struct gw_call *c, const char *key, char *out, size_t cap)
{
    struct api_call *a = gw_call_data(c);
    struct cmq_fault f = {0};
    const char *v;
    size_t len;
    if (params_get_str(a->params, key, cap - 1, &v, &len, &f) != CMQ_OK) {
        api_reply_fault(c, &f);
        return -1;
    }
    memcpy(out, v, len);
    out[len] = '\0';
    return 0;
}

/* Optional integer parameter: 1 and *out set when present, 0 when absent,
 * -1 after answering a type error.  Ranges are checked by metadata, which
 * knows the spec's code for each attribute. */
int api_opt_int(struct gw_call *c, const char *key, int64_t *out)
{
    struct api_call *a = gw_call_data(c);
    struct cmq_fault f = {0};
    int rc = params_get_int(a->params, key, INT64_MIN, INT64_MAX, out, &f);
    if (rc == CMQ_OK)
        return 1;
    if (rc == CMQ_ENOTFOUND)
        return 0;
    api_reply_fault(c, &f);
    return -1;
}

int api_list_params(struct gw_call *c, cmq_ListRequest *r)
{
    struct api_call *a = gw_call_data(c);
    struct param_view pv;
    if (params_find(a->params, "searchWord", &pv) && pv.val_len) {
        if (pv.val_len >= sizeof r->search_word) {
            api_reply_err(c, CMQERR_PARAM_RANGE, "searchWord");
            return -1;
        }
        memcpy(r->search_word, pv.val, pv.val_len);
        r->search_word[pv.val_len] = '\0';
    }
    int rc;
    if ((rc = api_opt_int(c, "offset", &r->offset)) < 0)
        return -1;
    r->has_offset = rc;
    if ((rc = api_opt_int(c, "limit", &r->limit)) < 0)
        return -1;
    r->has_limit = rc;
    return 0;
}

int api_read_bodies(struct gw_call *c, bool single, int64_t max_msg_size,
                    struct param_value bodies[CMQ_BATCH_MAX], size_t *n, size_t *total)
{
    struct api_call *a = gw_call_data(c);
    struct cmq_fault f = {0};
    int rc;
    *n = 0;
    *total = 0;
    if (single) {
        const char *v;
        size_t len;
        rc = params_get_str(a->params, "msgBody", SIZE_MAX, &v, &len, &f);
        if (rc == CMQ_ENOTFOUND) {
            api_reply_err(c, CMQERR_MSG_BODY_EMPTY, NULL);
            return -1;
        }
        if (rc != CMQ_OK) {
            api_reply_fault(c, &f);
            return -1;
        }
        bodies[(*n)++] = (struct param_value){v, len};
    } else if ((rc = params_get_list(a->params, "msgBody", CMQ_BATCH_MAX, 0, bodies, n, &f)) !=
               CMQ_OK) {
        api_reply_fault(c, &f);
        return -1;
    }
    for (size_t i = 0; i < *n; i++) {
        if (bodies[i].len == 0) {
            api_reply_err(c, CMQERR_MSG_BODY_EMPTY, NULL);
            return -1;
        }
        if ((int64_t)bodies[i].len > max_msg_size) {
            api_reply_err(c, CMQERR_MSG_TOO_BIG, NULL);
            return -1;
        }
        *total += bodies[i].len;
    }
    if (*total > CMQ_BATCH_BYTES_MAX) {
        api_reply_err(c, CMQERR_BATCH_TOO_BIG, NULL);
        return -1;
    }
    return 0;
}

void api_client_addr(struct gw_call *c, char *out, size_t cap)
{
    out[0] = 0;
    h2o_req_t *req = gw_call_req(c);
    if (!req || !req->conn || !req->conn->callbacks || !req->conn->callbacks->get_peername)
        return;
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    if (req->conn->callbacks->get_peername(req->conn, (struct sockaddr *)&ss) == 0)
        return;
    char ip[INET6_ADDRSTRLEN] = "";
    if (ss.ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &a->sin_addr, ip, sizeof ip);
        snprintf(out, cap, "%s:%u", ip, ntohs(a->sin_port));
    } else if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof ip);
        snprintf(out, cap, "[%s]:%u", ip, ntohs(a->sin6_port));
    }
}

void api_write_dead_letter_policy(struct json *j, const cmq_QueueInfo *qi)
{
    if (!qi->has_dead_letter_policy)
        return;
    const cmq_DeadLetterPolicy *p = &qi->dead_letter_policy;
    char text[512];
    size_t n = dlq_policy_format(p->dead_letter_queue_id[0] ? p->dead_letter_queue_id
                                                             : p->dead_letter_queue,
                                 p->policy, p->max_receive_count, p->max_time_to_live, text,
                                 sizeof text);
    if (n)
        json_kv_str(j, "deadLetterPolicy", text, n);
}
