/* call.c: asynchronous HTTP request state; see call.h. */
#include "call.h"

#include "status.h"

#include <stdlib.h>
#include <string.h>

struct gw_call {
    struct gateway *gw;
    h2o_req_t *req;
    int holds;
    int gone;
    int responded;
    int last_peer;
    void (*cleanup)(void *data);
    _Alignas(max_align_t) unsigned char data[];
};

struct token {
    struct gw_call *c;
};

static void maybe_free(struct gw_call *c)
{
    if (c->gone && c->holds == 0) {
        if (c->cleanup)
            c->cleanup(c->data);
        free(c);
    }
}

static void on_dispose(void *p)
{
    struct gw_call *c = ((struct token *)p)->c;
    c->gone = 1;
    c->req = NULL;
    if (!c->responded)
        __atomic_fetch_sub(&c->gw->inflight, 1, __ATOMIC_RELAXED);
    maybe_free(c);
}

struct gw_call *gw_call_begin(struct gateway *gw, h2o_req_t *req, size_t data_size)
{
    struct gw_call *c = calloc(1, sizeof *c + data_size);
    if (!c)
        return NULL;
    c->gw = gw;
    c->req = req;
    struct token *t = h2o_mem_alloc_shared(&req->pool, sizeof *t, on_dispose);
    t->c = c;
    __atomic_fetch_add(&gw->inflight, 1, __ATOMIC_RELAXED);
    return c;
}

void *gw_call_data(struct gw_call *c) { return c->data; }
void gw_call_set_cleanup(struct gw_call *c, void (*fn)(void *data)) { c->cleanup = fn; }
struct gateway *gw_call_gateway(struct gw_call *c) { return c->gw; }
h2o_req_t *gw_call_req(struct gw_call *c) { return c->gone || c->responded ? NULL : c->req; }
int gw_call_gone(const struct gw_call *c) { return c->gone; }

void gw_call_hold(struct gw_call *c) { c->holds++; }

void gw_call_release(struct gw_call *c)
{
    c->holds--;
    maybe_free(c);
}

void gw_call_respond(struct gw_call *c, int http_status, const char *content_type,
                     const char *body, size_t len)
{
    if (c->gone || c->responded)
        return;
    h2o_req_t *req = c->req;
    c->responded = 1;
    __atomic_fetch_sub(&c->gw->inflight, 1, __ATOMIC_RELAXED);
    req->res.status = http_status;
    req->res.reason = http_status == 200 ? "OK" : http_status == 503 ? "Service Unavailable"
                                                                      : "Error";
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, content_type,
                   strlen(content_type));
    req->res.content_length = len; /* a Content-Length header, not chunked encoding */
    h2o_send_inline(req, h2o_strdup(&req->pool, body, len).base, len);
}

struct backend_call {
    struct gw_call *c;
    gw_reply_fn *fn;
    int tag;
};

static void on_backend_reply(void *arg, const struct rpc_result *r)
{
    struct backend_call *bc = arg;
    struct gw_call *c = bc->c;
    gw_reply_fn *fn = bc->fn;
    int tag = bc->tag;
    free(bc);
    c->last_peer = r->peer;
    fn(c, tag, r->status, r->msg);
    gw_call_release(c);
}

int gw_call_last_peer(const struct gw_call *c) { return c->last_peer; }

int gw_call_client(struct gw_call *c, struct rpc_client *client, uint32_t type, const void *body,
                   size_t len, const struct rpc_opts *opts, gw_reply_fn *fn, int tag)
{
    struct backend_call *bc = malloc(sizeof *bc);
    if (!bc)
        return CMQ_ENOMEM;
    *bc = (struct backend_call){c, fn, tag};
    gw_call_hold(c);
    int rc = rpc_client_call(client, type, body, len, opts, on_backend_reply, bc);
    if (rc != CMQ_OK) {
        free(bc);
        gw_call_release(c);
    }
    return rc;
}

int gw_call_backend(struct gw_call *c, int backend, uint32_t type, const pb_msgdesc_t *fields,
                    const void *msg, const struct rpc_opts *opts, gw_reply_fn *fn, int tag)
{
    struct gateway *gw = c->gw;
    if (backend < 0 || backend >= gw->n_backends)
        return CMQ_EUNAVAIL;
    uint8_t *body;
    size_t len;
    int rc = rpc_pb_encode(fields, msg, &body, &len);
    if (rc != CMQ_OK)
        return rc;
    rc = gw_call_client(c, gw->backends[backend].client, type, body, len, opts, fn, tag);
    free(body);
    return rc;
}

struct gateway *gw_call_loop_of(h2o_req_t *req)
{
    return H2O_STRUCT_FROM_MEMBER(struct gateway, ctx, req->conn->ctx);
}
