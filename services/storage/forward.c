/* forward.c: appends to queues wherever their leader is; see forward.h.
 *
 * Owns: one rpc client per storage node endpoint it has talked to (created on
 * first use, kept until close: at most NODE_MAX_PEERS plus leader hints), the
 * pending sends, and a small queue id -> leader endpoint cache.  Every send
 * is a STORAGE_MSG_SEND through the ordinary request path, even to this node
 * (a DEALER to our own ROUTER), so the queue's leader applies the same checks
 * (qsm_check_send, the dedup window) whoever asks.
 */
#include "forward.h"
#include "hosted.h"

#include "clock.h"
#include "log.h"
#include "status.h"
#include "storage.pb.h"

#include <stdlib.h>
#include <string.h>

#define FWD_CLIENTS_MAX (NODE_MAX_PEERS + 8)
#define FWD_CACHE 64
#define FWD_TIMEOUT_MS 3000
#define FWD_BACKOFF_MIN_MS 50
#define FWD_BACKOFF_MAX_MS 2000
#define FWD_NOTFOUND_ROUNDS 3
#define FWD_HOPS_MAX 4  /* leader hints followed without a pause */

struct fwd_client {
    char ep[RPC_ENDPOINT_MAX];
    struct rpc_client *c;
};

struct fwd_cache {
    uint64_t queue_id;
    char ep[RPC_ENDPOINT_MAX];
};

struct freq {
    struct forward *f;
    struct freq *next;
    uint64_t queue_id;
    uint8_t *buf;
    size_t len;
    forward_done_fn *done;
    void *arg;
    char target[RPC_ENDPOINT_MAX]; /* "" = the next node of the round */
    int round_pos;                 /* next node to ask in this round */
    int round_notfound;            /* nodes of this round that did not know the queue */
    int rounds_notfound;
    int hops;
    uint32_t backoff_ms;
    uint64_t retry_at_ms;          /* monotonic; 0 = in flight */
};

struct forward {
    struct node *n;
    struct fwd_client clients[FWD_CLIENTS_MAX];
    int n_clients;
    struct freq *reqs;
    size_t n_reqs;
    struct fwd_cache cache[FWD_CACHE];
    int closing;
};

int forward_open(struct node *n, struct forward **out)
{
    struct forward *f = calloc(1, sizeof *f);
    if (!f)
        return CMQ_ENOMEM;
    f->n = n;
    *out = f;
    return CMQ_OK;
}

static void req_unlink(struct freq *r)
{
    struct freq **pp = &r->f->reqs;
    while (*pp && *pp != r)
        pp = &(*pp)->next;
    if (*pp) {
        *pp = r->next;
        r->f->n_reqs--;
    }
}

static void req_finish(struct freq *r, int status, const uint64_t *ids, size_t n)
{
    req_unlink(r);
    r->done(r->arg, status, ids, n);
    free(r->buf);
    free(r);
}

void forward_close(struct forward *f)
{
    if (!f)
        return;
    f->closing = 1;
    /* closing the clients ends the requests in flight (their callbacks see
     * `closing`); the ones waiting for a retry end here */
    for (int i = 0; i < f->n_clients; i++)
        rpc_client_close(f->clients[i].c);
    while (f->reqs)
        req_finish(f->reqs, CMQ_ESHUTDOWN, NULL, 0);
    free(f);
}

size_t forward_pending(const struct forward *f)
{
    return f ? f->n_reqs : 0;
}

static struct rpc_client *client_for(struct forward *f, const char *ep)
{
    for (int i = 0; i < f->n_clients; i++)
        if (strcmp(f->clients[i].ep, ep) == 0)
            return f->clients[i].c;
    if (f->n_clients == FWD_CLIENTS_MAX)
        return NULL;
    struct fwd_client *c = &f->clients[f->n_clients];
    snprintf(c->ep, sizeof c->ep, "%s", ep);
    const char *e = c->ep;
    if (rpc_client_open(svc_zctx(f->n->svc), &e, 1, &c->c) != CMQ_OK)
        return NULL;
    svc_watch_client(f->n->svc, c->c);
    f->n_clients++;
    return c->c;
}

static const char *cache_get(struct forward *f, uint64_t queue_id)
{
    struct fwd_cache *e = &f->cache[queue_id % FWD_CACHE];
    return e->queue_id == queue_id && e->ep[0] ? e->ep : NULL;
}

static void cache_set(struct forward *f, uint64_t queue_id, const char *ep)
{
    struct fwd_cache *e = &f->cache[queue_id % FWD_CACHE];
    e->queue_id = ep ? queue_id : 0;
    snprintf(e->ep, sizeof e->ep, "%s", ep ? ep : "");
}

/* The storage nodes in asking order: this node first, then the others as the
 * partition map listed them.  Returns the endpoint of the i-th, or NULL. */
static const char *node_ep(struct node *n, int i)
{
    int k = 0;
    for (int j = 0; j < n->n_peers; j++)
        if (n->peers[j].raft_id == n->raft_id && n->peers[j].rpc_ep[0]) {
            if (k++ == i)
                return n->peers[j].rpc_ep;
        }
    for (int j = 0; j < n->n_peers; j++)
        if (n->peers[j].raft_id != n->raft_id && n->peers[j].rpc_ep[0]) {
            if (k++ == i)
                return n->peers[j].rpc_ep;
        }
    return NULL;
}

static void backoff(struct freq *r)
{
    r->backoff_ms = r->backoff_ms ? r->backoff_ms * 2 : FWD_BACKOFF_MIN_MS;
    if (r->backoff_ms > FWD_BACKOFF_MAX_MS)
        r->backoff_ms = FWD_BACKOFF_MAX_MS;
    r->retry_at_ms = clock_mono_ms() + r->backoff_ms;
    r->hops = 0;
}

static void on_reply(void *arg, const struct rpc_result *res);

static void attempt(struct freq *r)
{
    struct forward *f = r->f;
    const char *ep = r->target[0] ? r->target : cache_get(f, r->queue_id);
    if (!ep) {
        ep = node_ep(f->n, r->round_pos);
        if (!ep && r->round_pos > 0) { /* a round ended without the queue's leader */
            if (r->round_notfound >= r->round_pos && ++r->rounds_notfound >= FWD_NOTFOUND_ROUNDS) {
                req_finish(r, CMQ_ENOTFOUND, NULL, 0);
                return;
            }
            r->round_pos = 0;
            r->round_notfound = 0;
            backoff(r);
            return;
        }
        if (!ep) {
            backoff(r); /* no storage node known yet */
            return;
        }
        r->round_pos++;
    }
    snprintf(r->target, sizeof r->target, "%s", ep);
    struct rpc_client *c = client_for(f, r->target);
    struct rpc_opts o = {.timeout_ms = FWD_TIMEOUT_MS, .attempts = 1, .peer = 0};
    r->retry_at_ms = 0;
    if (!c || rpc_client_call(c, cmq_StorageMsgType_STORAGE_MSG_SEND, r->buf, r->len, &o, on_reply,
                              r) != CMQ_OK) {
        r->target[0] = 0;
        backoff(r);
    }
}

static void on_reply(void *arg, const struct rpc_result *res)
{
    struct freq *r = arg;
    struct forward *f = r->f;
    if (f->closing) {
        req_finish(r, CMQ_ESHUTDOWN, NULL, 0);
        return;
    }
    int st = res->status;
    switch (st) {
    case CMQ_OK: {
        cmq_SendReply rep = cmq_SendReply_init_zero;
        if (!res->msg ||
            rpc_pb_decode(cmq_SendReply_fields, &rep, res->msg->body, res->msg->body_len) != CMQ_OK) {
            r->target[0] = 0;
            backoff(r);
            return;
        }
        cache_set(f, r->queue_id, r->target);
        req_finish(r, CMQ_OK, rep.msg_ids, rep.msg_ids_count);
        return;
    }
    case CMQ_ENOTLEADER: {
        const char *hint = res->msg ? res->msg->leader_hint : "";
        if (cache_get(f, r->queue_id))
            cache_set(f, r->queue_id, NULL);
        if (hint[0] && strcmp(hint, r->target) != 0 && r->hops < FWD_HOPS_MAX) {
            r->hops++;
            snprintf(r->target, sizeof r->target, "%s", hint);
            attempt(r);
            return;
        }
        r->target[0] = 0; /* an election: ask again shortly */
        backoff(r);
        return;
    }
    case CMQ_ENOTFOUND:
        /* this node does not host the queue's partition (or the queue is gone) */
        if (cache_get(f, r->queue_id))
            cache_set(f, r->queue_id, NULL);
        r->round_notfound++;
        r->target[0] = 0;
        if (r->hops) { /* a hint led here: start a round */
            r->hops = 0;
        }
        attempt(r);
        return;
    case CMQ_EINVAL:
    case CMQ_ETOOBIG:
    case CMQ_ELIMIT:
    case CMQ_EDENIED:
        req_finish(r, st, NULL, 0);
        return;
    default: /* timeouts, unavailable or stopping nodes, EBUSY (the same key in flight) */
        r->target[0] = 0;
        backoff(r);
        return;
    }
}

int forward_send(struct node *n, uint64_t queue_id, const uint8_t *send_req, size_t len,
                 forward_done_fn *done, void *arg)
{
    struct forward *f = n->fwd;
    if (!f || !done || !queue_id || !len || f->closing)
        return CMQ_EINVAL;
    struct freq *r = calloc(1, sizeof *r);
    if (!r || !(r->buf = malloc(len))) {
        free(r);
        return CMQ_ENOMEM;
    }
    memcpy(r->buf, send_req, len);
    r->len = len;
    r->f = f;
    r->queue_id = queue_id;
    r->done = done;
    r->arg = arg;
    r->next = f->reqs;
    f->reqs = r;
    f->n_reqs++;
    r->retry_at_ms = 1; /* due at once: the first attempt runs at the next forward_tick ... */
    attempt(r);         /* ... or now: attempt never calls done on its first try */
    return CMQ_OK;
}

void forward_tick(struct forward *f)
{
    if (!f)
        return;
    uint64_t now = clock_mono_ms();
    /* collect first: attempt may finish (and free) a request */
    struct freq *due[256];
    size_t n = 0;
    for (struct freq *r = f->reqs; r && n < 256; r = r->next)
        if (r->retry_at_ms && r->retry_at_ms <= now)
            due[n++] = r;
    for (size_t i = 0; i < n; i++)
        attempt(due[i]);
}
