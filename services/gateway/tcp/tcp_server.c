/* tcp_server.c: connections, framing, auth and dispatch of the CMQ TCP
 * protocol; the queue operations are in tcp_ops.c.  Keys, signatures and
 * ACL decisions are the back end's (backend/be_auth.h).  See tcp_server.h. */
#include "tcp_internal.h"

#include "be_auth.h"
#include "metrics.h"

#include "clock.h"
#include "log.h"
#include "metadata.pb.h"
#include "status.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define TCP_SWEEP_MS 1000

/* ---------- auth (§6.2) ---------- */

static void auth_fail(struct treq *r, enum cmq_err e, const char *why)
{
    struct tconn *c = r->conn;
    log_info("tcp_auth_failed", "peer=%s secret_id=%s client_id=%s reason=%s", c->peer,
             r->f.m.tcp_auth.secret_id, r->f.m.tcp_auth.client_id, why);
    treq_fail(r, e, NULL);
}

static void on_key(void *arg, const struct key_entry *key, const struct be_fault *f)
{
    struct treq *r = arg;
    struct tconn *c = r->conn;
    const cmqtcp_TcpAuth *a = &r->f.m.tcp_auth;
    c->auth_pending = 0;
    if (c->closed) {
        treq_done(r);
        return;
    }
    if (!key) {
        log_info("tcp_auth_failed", "peer=%s secret_id=%s reason=key_lookup", c->peer, a->secret_id);
        treq_fault(r, f);
        return;
    }
    enum cmq_err e = be_key_refusal(key);
    if (e != CMQERR_OK) {
        auth_fail(r, e, key->exists ? "disabled_key" : "unknown_key");
        return;
    }
    e = be_auth_tcp(key, a->client_id, a->secret_id, a->signature_method, a->signature);
    if (e != CMQERR_OK) {
        auth_fail(r, e, e == CMQERR_PARAM_ERROR ? "bad_method" : "signature");
        return;
    }
    c->key = *key;
    c->authed = 1;
    snprintf(c->client_id, sizeof c->client_id, "%s", a->client_id);
    log_info("tcp_auth", "peer=%s secret_id=%s client_id=%s appid=%llu", c->peer, a->secret_id,
             a->client_id, (unsigned long long)c->key.appid);
    tconn_reply(c, r->seqno, r->cmd, 0, NULL);
    treq_done(r);
}

static void do_auth(struct treq *r)
{
    struct tconn *c = r->conn;
    if (c->authed) { /* a repeated auth: 0, which every client version accepts (§6.2) */
        tconn_reply(c, r->seqno, r->cmd, 0, NULL);
        treq_done(r);
        return;
    }
    if (!r->f.m.has_tcp_auth) {
        treq_fail(r, CMQERR_MISSING_PARAM, "tcp_auth");
        return;
    }
    c->auth_pending = 1;
    be_key_lookup(c->srv->env.be, r->f.m.tcp_auth.secret_id, on_key, r);
}

/* ---------- dispatch ---------- */

static void run_op(struct treq *r)
{
    if (r->cmd == cmqtcp_Cmd_CMD_PUBLISH_MSG || r->cmd == cmqtcp_Cmd_CMD_BATCH_PUBLISH_MSG)
        tcp_op_publish(r);
    else
        tcp_op_queue(r);
}

/* ---- ACL for restricted keys (the HTTP path's check, per (cmd, name)) ---- */

static struct acl_memo *acl_find(struct tconn *c, int cmd, const char *name)
{
    uint64_t now = clock_mono_ms();
    for (int i = 0; i < TCP_ACL_CACHE; i++)
        if (c->acl[i].cmd == cmd && c->acl[i].until_ms > now && strcmp(c->acl[i].name, name) == 0)
            return &c->acl[i];
    return NULL;
}

static void acl_decided(struct treq *r, const struct acl_memo *m)
{
    if (m->allowed) {
        run_op(r);
        return;
    }
    treq_fail(r, (enum cmq_err)m->denial, NULL);
}

static void on_acl(void *arg, int allowed, enum cmq_err denial, const char *reason,
                   const struct be_fault *f)
{
    struct treq *r = arg;
    struct tconn *c = r->conn;
    if (c->closed) {
        treq_done(r);
        return;
    }
    if (f) {
        treq_fault(r, f);
        return;
    }
    int is_topic;
    const char *name = tcp_resource_of(r, &is_topic);
    struct acl_memo *m = &c->acl[c->acl_next++ % TCP_ACL_CACHE];
    *m = (struct acl_memo){.cmd = r->cmd, .allowed = allowed, .denial = (int)denial,
                           .until_ms = clock_mono_ms() + TCP_ACL_TTL_MS};
    snprintf(m->name, sizeof m->name, "%s", name ? name : "");
    if (!allowed)
        log_info("tcp_denied", "peer=%s secret_id=%s action=%s resource=%s reason=\"%s\"", c->peer,
                 c->key.secret_id, action_name(tcp_action_of(r->cmd)), m->name, reason);
    acl_decided(r, m);
}

static void authorise(struct treq *r)
{
    struct tconn *c = r->conn;
    int is_topic;
    const char *name = tcp_resource_of(r, &is_topic);
    if (!c->key.restricted || !name) { /* unrestricted, or the op answers the missing name */
        run_op(r);
        return;
    }
    const struct acl_memo *m = acl_find(c, r->cmd, name);
    if (m) {
        acl_decided(r, m);
        return;
    }
    be_acl_check(c->srv->env.be, c->key.secret_id, tcp_action_of(r->cmd),
                 is_topic ? "topic" : "queue", name, on_acl, r);
}

static void handle_frame(struct tconn *c, const uint8_t *payload, size_t len, const cmqtcp_TcpHead *h)
{
    struct tcp_server *s = c->srv;
    s->requests++;
    if (h->cmd == cmqtcp_Cmd_CMD_HEARTBEAT) { /* §6.4: also before auth; never 306 */
        tconn_reply(c, h->seqno, h->cmd, 0, NULL);
        return;
    }
    if (h->cmd == cmqtcp_Cmd_CMD_TRANSACTION_CONFIRM && !c->authed) {
        /* One-way (§9.1): never answered with 306 / closed; logged, dropped. */
        log_info("tcp_confirm_ignored", "peer=%s seqno=%lld reason=\"not authenticated\"",
                 c->peer, (long long)h->seqno);
        return;
    }
    if (h->cmd != cmqtcp_Cmd_CMD_AUTH && !c->authed) {
        /* §6.2: 306, then close once the reply is flushed. */
        tconn_reply(c, h->seqno, h->cmd, TCP_NOT_AUTHED, "connection not authenticated");
        close_when_flushed(c, "not_authenticated");
        return;
    }
    if (s->draining) { /* the gateway is stopping: no new work */
        tconn_reply(c, h->seqno, h->cmd, cmq_error_code(CMQERR_INTERNAL), "gateway is stopping");
        if (c->inflight == 0)
            close_when_flushed(c, "stopping");
        return;
    }
    if (c->inflight >= s->lim.max_inflight || (h->cmd == cmqtcp_Cmd_CMD_AUTH && c->auth_pending)) {
        tconn_reply_err(c, h->seqno, h->cmd, CMQERR_FREQUENCY_LIMIT, NULL);
        return;
    }
    struct treq *r = treq_new(c, payload, len, h);
    if (!r) {
        tconn_reply_err(c, h->seqno, h->cmd, CMQERR_INTERNAL, NULL);
        return;
    }
    if (cmq_frame_decode(r->payload, r->payload_len, &r->f) != CMQ_FRAME_OK) {
        /* The head decoded, so the request can be answered (§13). */
        log_info("tcp_bad_body", "peer=%s seqno=%lld cmd=%d", c->peer, (long long)h->seqno,
                 (int)h->cmd);
        treq_fail(r, CMQERR_INVALID_REQUEST, NULL);
        return;
    }
    switch (h->cmd) {
    case cmqtcp_Cmd_CMD_AUTH: do_auth(r); return;
    case cmqtcp_Cmd_CMD_SEND_MSG:
    case cmqtcp_Cmd_CMD_BATCH_SEND_MSG:
    case cmqtcp_Cmd_CMD_PULL_MSG:
    case cmqtcp_Cmd_CMD_BATCH_PULL_MSG:
    case cmqtcp_Cmd_CMD_DELETE_MSG:
    case cmqtcp_Cmd_CMD_BATCH_DELETE_MSG:
    case cmqtcp_Cmd_CMD_PUBLISH_MSG:
    case cmqtcp_Cmd_CMD_BATCH_PUBLISH_MSG:
    case cmqtcp_Cmd_CMD_TRANSACTION_CONFIRM: authorise(r); return;
    default:
        treq_fail(r, CMQERR_INVALID_REQUEST, NULL);
    }
}

static const char *frame_error_name(int st)
{
    switch (st) {
    case CMQ_FRAME_BAD_MARKER: return "bad_marker";
    case CMQ_FRAME_BAD_LENGTH: return "bad_length";
    case CMQ_FRAME_TOO_BIG: return "too_big";
    default: return "undecodable";
    }
}

static void on_read(h2o_socket_t *sock, const char *err)
{
    struct tconn *c = sock->data;
    if (err) {
        tconn_close(c, "peer_closed");
        return;
    }
    c->last_rx_ms = clock_mono_ms();
    c->refs++; /* handle_frame may close the connection */
    while (!c->closed && sock->input->size > 0) {
        size_t total = 0;
        const uint8_t *buf = (const uint8_t *)sock->input->bytes;
        int st = cmq_frame_peek(buf, sock->input->size, c->srv->lim.max_frame, &total);
        if (st == CMQ_FRAME_MORE)
            break;
        cmqtcp_TcpHead h;
        if (st == CMQ_FRAME_OK &&
            cmq_frame_decode_head(buf + CMQ_FRAME_HDR, total - CMQ_FRAME_HDR, &h) != CMQ_FRAME_OK)
            st = CMQ_FRAME_UNDECODABLE;
        if (st != CMQ_FRAME_OK) {
            log_warn("tcp_bad_frame", "peer=%s client_id=%s reason=%s buffered=%zu", c->peer,
                     c->client_id[0] ? c->client_id : "-", frame_error_name(st),
                     sock->input->size);
            tconn_close(c, "bad_frame");
            break;
        }
        handle_frame(c, buf + CMQ_FRAME_HDR, total - CMQ_FRAME_HDR, &h);
        if (!c->closed)
            h2o_buffer_consume(&sock->input, total);
    }
    conn_unref(c);
}

/* ---------- accept, idle sweep ---------- */

static void on_accept(h2o_socket_t *listener, const char *err)
{
    struct tcp_server *s = listener->data;
    if (err)
        return;
    for (int budget = 64; budget > 0; budget--) {
        h2o_socket_t *sock = h2o_evloop_socket_accept(listener);
        if (!sock)
            return;
        if (s->n_conns >= s->lim.max_conns) {
            log_warn("tcp_refused", "reason=max_connections max=%d", s->lim.max_conns);
            h2o_socket_close(sock);
            continue;
        }
        struct tconn *c = calloc(1, sizeof *c);
        if (!c) {
            h2o_socket_close(sock);
            continue;
        }
        c->srv = s;
        c->sock = sock;
        c->refs = 1;
        c->last_rx_ms = clock_mono_ms();
        struct sockaddr_storage ss = {0};
        snprintf(c->peer, sizeof c->peer, "?");
        if (h2o_socket_getpeername(sock, (struct sockaddr *)&ss) > 0 && ss.ss_family == AF_INET) {
            char host[INET_ADDRSTRLEN] = "?";
            struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
            inet_ntop(AF_INET, &sin->sin_addr, host, sizeof host);
            snprintf(c->peer, sizeof c->peer, "%s:%u", host, ntohs(sin->sin_port));
        }
        int one = 1;
        setsockopt(h2o_socket_get_fd(sock), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        sock->data = c;
        c->next = s->conns;
        if (s->conns)
            s->conns->prev = c;
        s->conns = c;
        s->n_conns++;
        s->live++;
        h2o_socket_read_start(sock, on_read);
    }
}

static void on_sweep(h2o_timeout_entry_t *entry)
{
    struct tcp_server *s = (struct tcp_server *)((char *)entry - offsetof(struct tcp_server, sweep_entry));
    uint64_t now = clock_mono_ms();
    for (struct tconn *c = s->conns, *next; c; c = next) {
        next = c->next;
        /* A connection waiting on requests (a long poll) is not idle. */
        if (c->inflight == 0 && now - c->last_rx_ms > (uint64_t)s->lim.idle_ms)
            tconn_close(c, "idle");
    }
    h2o_timeout_link(s->env.loop, &s->sweep, &s->sweep_entry);
}

/* One listening socket per address for the whole process: the first loop
 * binds it (so a taken port fails as EADDRINUSE), later loops watch dup()s
 * of it; the registry keeps its own dup until the last server lets go. */
static pthread_mutex_t shared_mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
    char addr[64];
    int fd;
    int users;
} shared[4];

/* A listening fd for `addr` (the caller owns it), or -errno. */
static int shared_listen(const char *addr, const struct sockaddr_in *sa)
{
    pthread_mutex_lock(&shared_mu);
    int fd = -EMFILE, slot = -1;
    for (int i = 0; i < 4; i++) {
        if (shared[i].users > 0 && strcmp(shared[i].addr, addr) == 0) {
            fd = fcntl(shared[i].fd, F_DUPFD_CLOEXEC, 0);
            if (fd >= 0)
                shared[i].users++;
            else
                fd = -errno;
            goto out;
        }
        if (shared[i].users == 0 && slot < 0)
            slot = i;
    }
    if (slot < 0)
        goto out;
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        fd = -errno;
        goto out;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (const struct sockaddr *)sa, sizeof *sa) != 0 || listen(fd, SOMAXCONN) != 0) {
        int e = errno;
        log_error("listen_failed", "addr=%s reason=\"%s\"", addr, strerror(e));
        close(fd);
        fd = -e;
        goto out;
    }
    int keep = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (keep < 0) {
        close(fd);
        fd = -EMFILE;
        goto out;
    }
    snprintf(shared[slot].addr, sizeof shared[slot].addr, "%s", addr);
    shared[slot].fd = keep;
    shared[slot].users = 1;
out:
    pthread_mutex_unlock(&shared_mu);
    return fd;
}

static void shared_release(const char *addr)
{
    pthread_mutex_lock(&shared_mu);
    for (int i = 0; i < 4; i++)
        if (shared[i].users > 0 && strcmp(shared[i].addr, addr) == 0) {
            if (--shared[i].users == 0)
                close(shared[i].fd);
            break;
        }
    pthread_mutex_unlock(&shared_mu);
}

int tcp_server_open(const struct tcp_env *env, const struct tcp_limits *lim, struct tcp_server **out)
{
    char host[64];
    const char *colon = strrchr(lim->listen, ':');
    if (!colon || (size_t)(colon - lim->listen) >= sizeof host)
        return CMQ_EINVAL;
    memcpy(host, lim->listen, (size_t)(colon - lim->listen));
    host[colon - lim->listen] = '\0';
    char *end;
    long port = strtol(colon + 1, &end, 10);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (*end || port <= 0 || port > 65535 ||
        inet_pton(AF_INET, host[0] ? host : "0.0.0.0", &sa.sin_addr) != 1) {
        log_error("listen_failed", "addr=%s reason=\"not host:port\"", lim->listen);
        return CMQ_EINVAL;
    }
    int fd = shared_listen(lim->listen, &sa);
    if (fd < 0)
        return fd == -EADDRINUSE ? CMQ_EBUSY : status_from_errno(-fd);
    struct tcp_server *s = calloc(1, sizeof *s);
    if (!s) {
        close(fd);
        shared_release(lim->listen);
        return CMQ_ENOMEM;
    }
    s->env = *env;
    s->lim = *lim;
    if (s->lim.max_conns <= 0)
        s->lim.max_conns = 10000;
    if (s->lim.max_inflight <= 0)
        s->lim.max_inflight = 1024;
    if (s->lim.idle_ms <= 0)
        s->lim.idle_ms = 60000;
    s->listener = h2o_evloop_socket_create(env->loop, fd, H2O_SOCKET_FLAG_DONT_READ);
    s->listener->data = s;
    h2o_socket_read_start(s->listener, on_accept);
    h2o_timeout_init(env->loop, &s->sweep, TCP_SWEEP_MS);
    s->sweep_entry.cb = on_sweep;
    h2o_timeout_link(env->loop, &s->sweep, &s->sweep_entry);
    tcp_txn_open(s);
    *out = s;
    return CMQ_OK;
}

void tcp_server_stop_accepting(struct tcp_server *s)
{
    if (!s || !s->listener)
        return;
    h2o_socket_read_stop(s->listener);
    h2o_socket_close(s->listener);
    s->listener = NULL;
    shared_release(s->lim.listen);
}

void tcp_server_drain(struct tcp_server *s)
{
    if (!s)
        return;
    tcp_server_stop_accepting(s);
    s->draining = 1;
    for (struct tconn *c = s->conns, *next; c; c = next) {
        next = c->next;
        if (c->inflight == 0)
            close_when_flushed(c, "stopping");
    }
}

uint64_t tcp_server_inflight(const struct tcp_server *s) { return s ? s->inflight : 0; }

void tcp_server_close(struct tcp_server *s)
{
    if (!s)
        return;
    tcp_server_stop_accepting(s);
    if (h2o_timeout_is_linked(&s->sweep_entry))
        h2o_timeout_unlink(&s->sweep_entry);
    h2o_timeout_dispose(s->env.loop, &s->sweep);
    while (s->conns)
        tconn_close(s->conns, "shutdown");
    tcp_txn_close(s);
    s->closing = 1;
    server_maybe_free(s);
}
