/* cmq.c: libcmq; see cmq.h. */
#include "cmq.h"
#include "cmq_frame.h"
#include "crypto.h"
#include "pb_size.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define HEARTBEAT_MS 3000

struct pending {
    int64_t seqno;
    cmq_callback cb;
    void *arg;
    uint64_t deadline_ms;
    struct cmq_result *sync_out; /* synchronous: the result goes here, owned by the caller */
    int *sync_done;
};

struct cmq_client {
    int fd;
    int dead;
    int timeout_ms;
    int64_t next_seqno;
    uint64_t last_io_ms;
    uint8_t *rbuf;
    size_t rlen, rcap;
    struct pending *p;
    size_t np, pcap;
    cmq_txn_checker checker;
    void *checker_arg;
};

static int confirm_req(struct cmq_client *c, const char *queue, const uint64_t *ids,
                       const int *states, size_t n, cmq_callback cb, void *arg,
                       struct cmq_result *so, int *sd);

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void cmq_result_free(struct cmq_result *r)
{
    for (size_t i = 0; i < r->n_msgs; i++) {
        free(r->msgs[i].body);
        r->msgs[i].body = NULL;
    }
    r->n_msgs = 0;
}

int cmq_fd(const struct cmq_client *c) { return c->fd; }
size_t cmq_pending(const struct cmq_client *c) { return c->np; }

/* ---------- delivery ---------- */

static void deliver(struct cmq_client *c, size_t idx, struct cmq_result *r)
{
    struct pending p = c->p[idx];
    c->p[idx] = c->p[--c->np]; /* order of pendings does not matter */
    r->seqno = p.seqno;
    if (p.sync_out) {
        *p.sync_out = *r; /* bodies move to the caller */
        *p.sync_done = 1;
        return;
    }
    if (p.cb)
        p.cb(p.arg, r);
    cmq_result_free(r);
}

static void fail_one(struct cmq_client *c, size_t idx, int code, const char *why)
{
    struct cmq_result r;
    memset(&r, 0, sizeof r);
    r.code = code;
    snprintf(r.error, sizeof r.error, "%s", why);
    deliver(c, idx, &r);
}

static void kill_conn(struct cmq_client *c, const char *why)
{
    if (!c->dead) {
        c->dead = 1;
        close(c->fd);
        c->fd = -1;
    }
    while (c->np)
        fail_one(c, c->np - 1, CMQ_CLIENT_ETRANSPORT, why);
}

/* ---------- writing ---------- */

static int write_all(struct cmq_client *c, const uint8_t *buf, size_t len)
{
    if (c->dead)
        return CMQ_CLIENT_ETRANSPORT;
    while (len) {
        ssize_t n = send(c->fd, buf, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            kill_conn(c, "write failed");
            return CMQ_CLIENT_ETRANSPORT;
        }
        buf += n;
        len -= (size_t)n;
    }
    c->last_io_ms = now_ms();
    return 0;
}

int cmq_send_raw(struct cmq_client *c, const void *buf, size_t len)
{
    return write_all(c, buf, len);
}

/* Encodes and writes `f`; registers a pending entry when cb or sync_out. */
static int submit(struct cmq_client *c, struct cmq_frame *f, int extra_ms, cmq_callback cb,
                  void *arg, struct cmq_result *sync_out, int *sync_done)
{
    if (c->dead)
        return CMQ_CLIENT_ETRANSPORT;
    uint8_t *buf;
    size_t len;
    int st = cmq_frame_encode(f, &buf, &len);
    if (st != CMQ_FRAME_OK)
        return st == CMQ_FRAME_TOO_BIG ? CMQ_CLIENT_EINVAL : CMQ_CLIENT_ENOMEM;
    if (cb || sync_out) {
        if (c->np == c->pcap) {
            size_t cap = c->pcap ? c->pcap * 2 : 64;
            struct pending *np = realloc(c->p, cap * sizeof *np);
            if (!np) {
                free(buf);
                return CMQ_CLIENT_ENOMEM;
            }
            c->p = np;
            c->pcap = cap;
        }
        c->p[c->np++] = (struct pending){f->m.seqno, cb, arg,
                                         now_ms() + (uint64_t)c->timeout_ms + (uint64_t)extra_ms,
                                         sync_out, sync_done};
    }
    int rc = write_all(c, buf, len);
    free(buf);
    return rc;
}

static struct cmq_frame *new_frame(struct cmq_client *c, int32_t cmd)
{
    struct cmq_frame *f = malloc(sizeof *f);
    if (f)
        cmq_frame_init(f, c->next_seqno++, cmd);
    return f;
}

/* ---------- reading ---------- */

static void on_frame(struct cmq_client *c, const uint8_t *payload, size_t len)
{
    struct cmq_frame *f = malloc(sizeof *f);
    if (!f) {
        kill_conn(c, "out of memory");
        return;
    }
    if (cmq_frame_decode(payload, len, f) != CMQ_FRAME_OK) {
        free(f);
        kill_conn(c, "undecodable frame from server");
        return;
    }
    const cmqtcp_TcpFrame *m = &f->m;
    /* §4 dispatch rule: 1040 dropped; 1041 answers a confirm we wait for
     * (else dropped, as the SDK does); 1042 is a server request: the checker
     * decides (no checker or "unknown": no answer, §9.4). */
    if (m->cmd == cmqtcp_Cmd_CMD_HEARTBEAT) {
        free(f);
        return;
    }
    if (m->cmd == cmqtcp_Cmd_CMD_TRANSACTION_QUERY) {
        if (c->checker && m->has_transaction_query) {
            char queue[sizeof m->transaction_query.queue_name];
            memcpy(queue, m->transaction_query.queue_name, sizeof queue);
            uint64_t id = m->transaction_query.msg_id;
            int state = c->checker(c->checker_arg, queue, id);
            if (state == 1 || state == 2)
                (void)confirm_req(c, queue, &id, &state, 1, NULL, NULL, NULL, NULL);
        }
        free(f);
        return;
    }
    size_t idx = c->np;
    for (size_t i = 0; i < c->np; i++)
        if (c->p[i].seqno == m->seqno) {
            idx = i;
            break;
        }
    if (idx == c->np) { /* not matched: dropped, as the SDK does */
        free(f);
        return;
    }
    struct cmq_result r;
    memset(&r, 0, sizeof r);
    r.code = m->has_result ? m->result : 0;
    if (m->has_error)
        snprintf(r.error, sizeof r.error, "%s", m->error);
    for (size_t i = 0; i < f->n_ids && i < CMQ_CLIENT_BATCH_MAX; i++)
        r.msg_ids[r.n_msg_ids++] = f->ids[i];
    const cmqtcp_PullMsgRsp *list = NULL;
    size_t n = 0;
    if (m->has_pull_rsp) {
        list = &m->pull_rsp;
        n = 1;
    } else if (m->has_batch_pull_rsp) {
        list = m->batch_pull_rsp.msg_list;
        n = m->batch_pull_rsp.msg_list_count;
    }
    for (size_t i = 0; i < n; i++) {
        struct cmq_message *msg = &r.msgs[r.n_msgs++];
        msg->msg_id = list[i].msg_id;
        msg->receipt_handle = list[i].receipt_handle;
        msg->enqueue_time = list[i].enqueue_time;
        msg->next_visible_time = list[i].next_visible_time;
        msg->first_dequeue_time = list[i].first_dequeue_time;
        msg->dequeue_count = list[i].dequeue_count;
        size_t bl = i < f->n_bodies ? f->bodies[i].len : 0;
        msg->body = malloc(bl + 1);
        if (!msg->body) {
            r.n_msgs--;
            break;
        }
        if (bl)
            memcpy(msg->body, f->bodies[i].data, bl);
        msg->body[bl] = 0;
        msg->body_len = bl;
    }
    for (pb_size_t i = 0; i < m->del_result_count && i < CMQ_CLIENT_BATCH_MAX; i++) {
        struct cmq_delete_failure *d = &r.failed[r.n_failed++];
        d->receipt_handle = m->del_result[i].receipt_handle;
        d->code = m->del_result[i].err_code;
        snprintf(d->error, sizeof d->error, "%s", m->del_result[i].err_msg);
    }
    free(f);
    deliver(c, idx, &r);
}

static int read_some(struct cmq_client *c)
{
    if (c->rcap - c->rlen < 65536) {
        size_t cap = c->rcap ? c->rcap : 131072;
        while (cap - c->rlen < 65536)
            cap *= 2;
        uint8_t *nb = realloc(c->rbuf, cap);
        if (!nb) {
            kill_conn(c, "out of memory");
            return CMQ_CLIENT_ENOMEM;
        }
        c->rbuf = nb;
        c->rcap = cap;
    }
    ssize_t n = recv(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return 0;
    if (n <= 0) {
        kill_conn(c, n == 0 ? "connection closed by server" : "read failed");
        return CMQ_CLIENT_ETRANSPORT;
    }
    c->rlen += (size_t)n;
    c->last_io_ms = now_ms();
    size_t off = 0;
    while (!c->dead) {
        size_t total;
        int st = cmq_frame_peek(c->rbuf + off, c->rlen - off, CMQ_FRAME_MAX_ABS, &total);
        if (st == CMQ_FRAME_MORE)
            break;
        if (st != CMQ_FRAME_OK) {
            kill_conn(c, "bad frame from server");
            return CMQ_CLIENT_ETRANSPORT;
        }
        on_frame(c, c->rbuf + off + CMQ_FRAME_HDR, total - CMQ_FRAME_HDR);
        off += total;
    }
    if (c->dead)
        return CMQ_CLIENT_ETRANSPORT;
    memmove(c->rbuf, c->rbuf + off, c->rlen - off);
    c->rlen -= off;
    return 1;
}

int cmq_poll(struct cmq_client *c, int timeout_ms)
{
    if (c->dead)
        return CMQ_CLIENT_ETRANSPORT;
    uint64_t now = now_ms();
    if (now - c->last_io_ms >= HEARTBEAT_MS) {
        struct cmq_frame *f = new_frame(c, cmqtcp_Cmd_CMD_HEARTBEAT);
        if (f) {
            submit(c, f, 0, NULL, NULL, NULL, NULL);
            free(f);
        }
    }
    /* wait no longer than the earliest deadline or the next heartbeat */
    uint64_t wake = c->last_io_ms + HEARTBEAT_MS;
    for (size_t i = 0; i < c->np; i++)
        if (c->p[i].deadline_ms < wake)
            wake = c->p[i].deadline_ms;
    int wait = timeout_ms;
    int64_t until = (int64_t)wake - (int64_t)now;
    if (until < 0)
        until = 0;
    if (wait < 0 || wait > until)
        wait = (int)until;
    size_t before = c->np;
    struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
    int pr = poll(&pfd, 1, wait);
    if (pr > 0 && read_some(c) < 0)
        return CMQ_CLIENT_ETRANSPORT;
    now = now_ms();
    for (size_t i = 0; i < c->np;) {
        if (c->p[i].deadline_ms <= now)
            fail_one(c, i, CMQ_CLIENT_ETIMEDOUT, "request timed out");
        else
            i++;
    }
    return (int)(before > c->np ? before - c->np : 0);
}

/* ---------- requests ---------- */

static int copy_name(char *dst, size_t cap, const char *name)
{
    if (!name || strlen(name) >= cap)
        return CMQ_CLIENT_EINVAL;
    memcpy(dst, name, strlen(name) + 1);
    return 0;
}

static void set_bodies(struct cmq_frame *f, const void *const *bodies, const size_t *lens, size_t n)
{
    for (size_t i = 0; i < n; i++)
        f->bodies[i] = (struct cmq_bytes){bodies[i], lens[i]};
    f->n_bodies = n;
}

static int finish(struct cmq_client *c, struct cmq_frame *f, int rc, int extra_ms, cmq_callback cb,
                  void *arg, struct cmq_result *sync_out, int *sync_done)
{
    if (rc == 0)
        rc = submit(c, f, extra_ms, cb, arg, sync_out, sync_done);
    free(f);
    return rc;
}

static int send_req(struct cmq_client *c, const char *queue, const void *const *bodies,
                    const size_t *lens, size_t n, int batch, int delay_s, cmq_callback cb,
                    void *arg, struct cmq_result *so, int *sd)
{
    if (n == 0 || n > CMQ_CLIENT_BATCH_MAX || (!batch && n != 1))
        return CMQ_CLIENT_EINVAL;
    struct cmq_frame *f = new_frame(c, batch ? cmqtcp_Cmd_CMD_BATCH_SEND_MSG : cmqtcp_Cmd_CMD_SEND_MSG);
    if (!f)
        return CMQ_CLIENT_ENOMEM;
    int rc;
    f->m.has_request_id = true;
    f->m.request_id = (uint64_t)f->m.seqno;
    if (batch) {
        f->m.has_tcp_batch_send_msg = true;
        rc = copy_name(f->m.tcp_batch_send_msg.queue_name, sizeof f->m.tcp_batch_send_msg.queue_name, queue);
        f->m.tcp_batch_send_msg.has_delay_seconds = delay_s >= 0;
        f->m.tcp_batch_send_msg.delay_seconds = delay_s >= 0 ? (uint32_t)delay_s : 0;
    } else {
        f->m.has_tcp_send_msg = true;
        rc = copy_name(f->m.tcp_send_msg.queue_name, sizeof f->m.tcp_send_msg.queue_name, queue);
        f->m.tcp_send_msg.has_delay_seconds = delay_s >= 0;
        f->m.tcp_send_msg.delay_seconds = delay_s >= 0 ? (uint32_t)delay_s : 0;
    }
    set_bodies(f, bodies, lens, n);
    return finish(c, f, rc, 0, cb, arg, so, sd);
}

static int confirm_req(struct cmq_client *c, const char *queue, const uint64_t *ids,
                       const int *states, size_t n, cmq_callback cb, void *arg,
                       struct cmq_result *so, int *sd)
{
    if (n == 0 || n > CMQ_CLIENT_BATCH_MAX)
        return CMQ_CLIENT_EINVAL;
    struct cmq_frame *f = new_frame(c, cmqtcp_Cmd_CMD_TRANSACTION_CONFIRM);
    if (!f)
        return CMQ_CLIENT_ENOMEM;
    f->m.has_transaction_confirm = true;
    cmqtcp_TransactionConfirm *t = &f->m.transaction_confirm;
    int rc = copy_name(t->queue_name, sizeof t->queue_name, queue);
    for (size_t i = 0; i < n; i++) {
        t->item[i].msg_id = ids[i];
        t->item[i].state = states[i];
    }
    t->item_count = PB_COUNT(t->item, n);
    return finish(c, f, rc, 0, cb, arg, so, sd);
}

static int pull_req(struct cmq_client *c, const char *queue, int num, int wait_s, cmq_callback cb,
                    void *arg, struct cmq_result *so, int *sd)
{
    struct cmq_frame *f = new_frame(c, num > 0 ? cmqtcp_Cmd_CMD_BATCH_PULL_MSG : cmqtcp_Cmd_CMD_PULL_MSG);
    if (!f)
        return CMQ_CLIENT_ENOMEM;
    int rc;
    if (num > 0) {
        f->m.has_tcp_batch_pull_msg = true;
        rc = copy_name(f->m.tcp_batch_pull_msg.queue_name, sizeof f->m.tcp_batch_pull_msg.queue_name, queue);
        f->m.tcp_batch_pull_msg.num_msg = num;
        f->m.tcp_batch_pull_msg.has_poll_wait_seconds = wait_s >= 0;
        f->m.tcp_batch_pull_msg.poll_wait_seconds = wait_s;
    } else {
        f->m.has_tcp_pull_msg = true;
        rc = copy_name(f->m.tcp_pull_msg.queue_name, sizeof f->m.tcp_pull_msg.queue_name, queue);
        f->m.tcp_pull_msg.has_poll_wait_seconds = wait_s >= 0;
        f->m.tcp_pull_msg.poll_wait_seconds = wait_s;
    }
    /* the server holds a long poll up to the wait (the queue's at most 30 s) */
    int extra = (wait_s >= 0 ? wait_s : 30) * 1000;
    return finish(c, f, rc, extra, cb, arg, so, sd);
}

static int delete_req(struct cmq_client *c, const char *queue, const uint64_t *handles, size_t n,
                      int batch, cmq_callback cb, void *arg, struct cmq_result *so, int *sd)
{
    if (n == 0 || n > CMQ_CLIENT_BATCH_MAX || (!batch && n != 1))
        return CMQ_CLIENT_EINVAL;
    struct cmq_frame *f = new_frame(c, batch ? cmqtcp_Cmd_CMD_BATCH_DELETE_MSG : cmqtcp_Cmd_CMD_DELETE_MSG);
    if (!f)
        return CMQ_CLIENT_ENOMEM;
    int rc;
    if (batch) {
        f->m.has_tcp_batch_delete_msg = true;
        rc = copy_name(f->m.tcp_batch_delete_msg.queue_name,
                       sizeof f->m.tcp_batch_delete_msg.queue_name, queue);
        memcpy(f->ids, handles, n * sizeof *handles);
        f->n_ids = n;
    } else {
        f->m.has_tcp_delete_msg = true;
        rc = copy_name(f->m.tcp_delete_msg.queue_name, sizeof f->m.tcp_delete_msg.queue_name, queue);
        f->m.tcp_delete_msg.receipt_handle = handles[0];
    }
    return finish(c, f, rc, 0, cb, arg, so, sd);
}

static int publish_req(struct cmq_client *c, const char *topic, const void *const *bodies,
                       const size_t *lens, size_t n, int batch, const char *const *tags,
                       size_t n_tags, const char *routing_key, cmq_callback cb, void *arg,
                       struct cmq_result *so, int *sd)
{
    if (n == 0 || n > CMQ_CLIENT_BATCH_MAX || (!batch && n != 1) || n_tags > 16)
        return CMQ_CLIENT_EINVAL;
    struct cmq_frame *f = new_frame(c, batch ? cmqtcp_Cmd_CMD_BATCH_PUBLISH_MSG : cmqtcp_Cmd_CMD_PUBLISH_MSG);
    if (!f)
        return CMQ_CLIENT_ENOMEM;
    f->m.has_request_id = true;
    f->m.request_id = (uint64_t)f->m.seqno;
    int rc = 0;
    /* the two messages have the same layout for fields 1, 3, 4 */
    char *name = batch ? f->m.tcp_batch_publish_msg.topic_name : f->m.tcp_publish_msg.topic_name;
    char (*tagv)[65] = batch ? f->m.tcp_batch_publish_msg.msgTags : f->m.tcp_publish_msg.msgTags;
    pb_size_t *tagc = batch ? &f->m.tcp_batch_publish_msg.msgTags_count : &f->m.tcp_publish_msg.msgTags_count;
    if (batch)
        f->m.has_tcp_batch_publish_msg = true;
    else
        f->m.has_tcp_publish_msg = true;
    rc = copy_name(name, 65, topic);
    for (size_t i = 0; rc == 0 && i < n_tags; i++)
        rc = copy_name(tagv[i], 65, tags[i]);
    _Static_assert(sizeof f->m.tcp_publish_msg.msgTags == sizeof f->m.tcp_batch_publish_msg.msgTags,
                   "both publish messages hold as many tags");
    *tagc = PB_COUNT(f->m.tcp_publish_msg.msgTags, n_tags);
    if (routing_key && rc == 0) {
        if (batch) {
            f->m.tcp_batch_publish_msg.has_routing_key = true;
            rc = copy_name(f->m.tcp_batch_publish_msg.routing_key, 65, routing_key);
        } else {
            f->m.tcp_publish_msg.has_routing_key = true;
            rc = copy_name(f->m.tcp_publish_msg.routing_key, 65, routing_key);
        }
    }
    set_bodies(f, bodies, lens, n);
    return finish(c, f, rc, 0, cb, arg, so, sd);
}

int cmq_send_async(struct cmq_client *c, const char *queue, const void *const *bodies,
                   const size_t *lens, size_t n, int batch, int delay_s, cmq_callback cb, void *arg)
{
    return send_req(c, queue, bodies, lens, n, batch, delay_s, cb, arg, NULL, NULL);
}

int cmq_pull_async(struct cmq_client *c, const char *queue, int num, int wait_s, cmq_callback cb,
                   void *arg)
{
    return pull_req(c, queue, num, wait_s, cb, arg, NULL, NULL);
}

int cmq_delete_async(struct cmq_client *c, const char *queue, const uint64_t *handles, size_t n,
                     int batch, cmq_callback cb, void *arg)
{
    return delete_req(c, queue, handles, n, batch, cb, arg, NULL, NULL);
}

int cmq_publish_async(struct cmq_client *c, const char *topic, const void *const *bodies,
                      const size_t *lens, size_t n, int batch, const char *const *tags,
                      size_t n_tags, const char *routing_key, cmq_callback cb, void *arg)
{
    return publish_req(c, topic, bodies, lens, n, batch, tags, n_tags, routing_key, cb, arg, NULL,
                       NULL);
}

/* Polls until *done (set by delivery), or the connection dies. */
static int wait_sync(struct cmq_client *c, int rc, int *done, struct cmq_result *out)
{
    if (rc != 0) {
        out->code = rc;
        snprintf(out->error, sizeof out->error, "%s",
                 rc == CMQ_CLIENT_EINVAL ? "invalid argument" : "request not sent");
        return rc;
    }
    while (!*done)
        if (cmq_poll(c, 1000) == CMQ_CLIENT_ETRANSPORT && !*done)
            break; /* kill_conn delivered it already */
    return out->code;
}

#define SYNC_BEGIN(out)          \
    int done_ = 0;               \
    memset((out), 0, sizeof *(out))

int cmq_send(struct cmq_client *c, const char *queue, const void *body, size_t len, int delay_s,
             struct cmq_result *out)
{
    SYNC_BEGIN(out);
    const void *b[1] = {body};
    int rc = send_req(c, queue, b, &len, 1, 0, delay_s, NULL, NULL, out, &done_);
    return wait_sync(c, rc, &done_, out);
}

int cmq_send_txn(struct cmq_client *c, const char *queue, const void *const *bodies,
                 const size_t *lens, size_t n, int batch, int first_query_interval,
                 struct cmq_result *out)
{
    SYNC_BEGIN(out);
    if (n == 0 || n > CMQ_CLIENT_BATCH_MAX || (!batch && n != 1))
        return wait_sync(c, CMQ_CLIENT_EINVAL, &done_, out);
    struct cmq_frame *f = new_frame(c, batch ? cmqtcp_Cmd_CMD_BATCH_SEND_MSG : cmqtcp_Cmd_CMD_SEND_MSG);
    if (!f)
        return wait_sync(c, CMQ_CLIENT_ENOMEM, &done_, out);
    int rc;
    f->m.has_request_id = true;
    f->m.request_id = (uint64_t)f->m.seqno;
    int has_fqi = first_query_interval > 0;
    if (batch) {
        cmqtcp_TcpBatchSendMsg *s = &f->m.tcp_batch_send_msg;
        f->m.has_tcp_batch_send_msg = true;
        rc = copy_name(s->queue_name, sizeof s->queue_name, queue);
        s->has_is_transaction = true;
        s->is_transaction = 1;
        s->has_first_query_interval = has_fqi;
        s->first_query_interval = has_fqi ? first_query_interval : 0;
    } else {
        cmqtcp_TcpSendMsg *s = &f->m.tcp_send_msg;
        f->m.has_tcp_send_msg = true;
        rc = copy_name(s->queue_name, sizeof s->queue_name, queue);
        s->has_is_transaction = true;
        s->is_transaction = 1;
        s->has_first_query_interval = has_fqi;
        s->first_query_interval = has_fqi ? first_query_interval : 0;
    }
    set_bodies(f, bodies, lens, n);
    rc = finish(c, f, rc, 0, NULL, NULL, out, &done_);
    return wait_sync(c, rc, &done_, out);
}

int cmq_txn_confirm_async(struct cmq_client *c, const char *queue, const uint64_t *msg_ids,
                          const int *states, size_t n, cmq_callback cb, void *arg)
{
    return confirm_req(c, queue, msg_ids, states, n, cb, arg, NULL, NULL);
}

int cmq_txn_confirm(struct cmq_client *c, const char *queue, const uint64_t *msg_ids,
                    const int *states, size_t n, struct cmq_result *out)
{
    SYNC_BEGIN(out);
    int rc = confirm_req(c, queue, msg_ids, states, n, NULL, NULL, out, &done_);
    return wait_sync(c, rc, &done_, out);
}

void cmq_set_txn_checker(struct cmq_client *c, cmq_txn_checker fn, void *arg)
{
    c->checker = fn;
    c->checker_arg = arg;
}

int cmq_send_batch(struct cmq_client *c, const char *queue, const void *const *bodies,
                   const size_t *lens, size_t n, int delay_s, struct cmq_result *out)
{
    SYNC_BEGIN(out);
    int rc = send_req(c, queue, bodies, lens, n, 1, delay_s, NULL, NULL, out, &done_);
    return wait_sync(c, rc, &done_, out);
}

int cmq_pull(struct cmq_client *c, const char *queue, int num, int wait_s, struct cmq_result *out)
{
    SYNC_BEGIN(out);
    int rc = pull_req(c, queue, num, wait_s, NULL, NULL, out, &done_);
    return wait_sync(c, rc, &done_, out);
}

int cmq_delete(struct cmq_client *c, const char *queue, const uint64_t *handles, size_t n,
               struct cmq_result *out)
{
    SYNC_BEGIN(out);
    int rc = delete_req(c, queue, handles, n, n > 1, NULL, NULL, out, &done_);
    return wait_sync(c, rc, &done_, out);
}

int cmq_publish(struct cmq_client *c, const char *topic, const void *body, size_t len,
                const char *const *tags, size_t n_tags, const char *routing_key,
                struct cmq_result *out)
{
    SYNC_BEGIN(out);
    const void *b[1] = {body};
    int rc = publish_req(c, topic, b, &len, 1, 0, tags, n_tags, routing_key, NULL, NULL, out, &done_);
    return wait_sync(c, rc, &done_, out);
}

/* ---------- connect and auth ---------- */

int cmq_connect(const struct cmq_client_opts *o, struct cmq_client **out, char *err, size_t err_cap)
{
    char port[16];
    snprintf(port, sizeof port, "%u", o->port);
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *ai = NULL;
    int gai = getaddrinfo(o->host, port, &hints, &ai);
    if (gai != 0) {
        snprintf(err, err_cap, "resolve %s: %s", o->host, gai_strerror(gai));
        return CMQ_CLIENT_ETRANSPORT;
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        snprintf(err, err_cap, "connect %s:%u: %s", o->host, o->port, strerror(errno));
        if (fd >= 0)
            close(fd);
        freeaddrinfo(ai);
        return CMQ_CLIENT_ETRANSPORT;
    }
    freeaddrinfo(ai);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct cmq_client *c = calloc(1, sizeof *c);
    if (!c) {
        close(fd);
        return CMQ_CLIENT_ENOMEM;
    }
    c->fd = fd;
    c->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 3000;
    c->next_seqno = 1;
    c->last_io_ms = now_ms();

    char cid[257];
    if (o->client_id)
        snprintf(cid, sizeof cid, "%s", o->client_id);
    else
        snprintf(cid, sizeof cid, "%d@libcmq", (int)getpid());
    struct cmq_frame *f = new_frame(c, cmqtcp_Cmd_CMD_AUTH);
    int rc = f ? 0 : CMQ_CLIENT_ENOMEM;
    if (f) {
        cmqtcp_TcpAuth *a = &f->m.tcp_auth;
        f->m.has_tcp_auth = true;
        if (copy_name(a->secret_id, sizeof a->secret_id, o->secret_id) ||
            copy_name(a->client_id, sizeof a->client_id, cid))
            rc = CMQ_CLIENT_EINVAL;
        snprintf(a->signature_method, sizeof a->signature_method, "%s",
                 o->hmac_sha256 ? "HmacSHA256" : "HmacSHA1");
        /* §6.2: Base64(HMAC(SecretKey, client_id + secret_id)) */
        char text[512];
        int tl = snprintf(text, sizeof text, "%s%s", a->client_id, a->secret_id);
        uint8_t mac[CRYPTO_MAX_DIGEST];
        int ml = crypto_hmac(o->hmac_sha256 ? CRYPTO_SHA256 : CRYPTO_SHA1, o->secret_key,
                             strlen(o->secret_key), text, (size_t)tl, mac);
        if (rc == 0 && (ml < 0 || base64_encode(mac, (size_t)ml, a->signature, sizeof a->signature) < 0))
            rc = CMQ_CLIENT_EINVAL;
    }
    struct cmq_result r;
    memset(&r, 0, sizeof r);
    int done = 0;
    rc = finish(c, f, rc, 0, NULL, NULL, &r, &done);
    rc = wait_sync(c, rc, &done, &r);
    if (rc != 0) {
        snprintf(err, err_cap, "auth: %d %.200s", r.code, r.error);
        cmq_close(c);
        return rc;
    }
    *out = c;
    return 0;
}

void cmq_close(struct cmq_client *c)
{
    if (!c)
        return;
    kill_conn(c, "client closed");
    free(c->rbuf);
    free(c->p);
    free(c);
}
