/* topics.c: topic requests and the fan-out on a storage node; see topics.h.
 *
 * What lives where: the replicated state (topics, subscriptions, cursors,
 * retries) is the pure tsm (tsm.c); this file owns what is not replicated:
 * the clients to other storage nodes and to the gateways, the deliveries in
 * flight, and the leader-local `busy` mark of each subscription.
 *
 * Ordering per subscription: one delivery at a time, and the next starts only
 * after the previous one's TopicProgress entry is applied, so the cursor in
 * the tsm is always the truth and no message is passed twice by one leader.
 *
 * Queue deliveries go through forward.c with a dedup key per (subscription,
 * topic message), so a delivery repeated after a lost reply or a leader
 * change is appended once.
 */
#include "topics.h"
#include "cmdcodec.h"

#include "clock.h"
#include "evloop.h"
#include "forward.h"
#include "hash.h"
#include "log.h"
#include "push.pb.h"
#include "qsm.h"
#include "status.h"
#include "storage.pb.h"
#include "trace.h"
#include "tsm.h"
#include "pb_size.h"
#include "raftwire.h"

#include <inttypes.h>
#include <pb_decode.h>
#include <pb_encode.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The partition's snapshot image (queue image + topic image, framed here)
 * must fit what the Raft wire carries to a follower, or a follower that
 * needs an install could never catch up.  The dedup windows are the only
 * parts that grow with the send rate rather than the backlog (32 bytes an
 * entry in the image): at their hard caps they leave at least 4 MiB for the
 * rest (a 1,000,000-message backlog takes ~400 KB, docs/queue-state-machine.md). */
_Static_assert(32ull * ((uint64_t)QSM_DEDUP_HARD_MAX + TSM_DEDUP_HARD_MAX) + (4ull << 20) <=
                   RAFTWIRE_SNAPSHOT_BYTES_MAX,
               "the dedup windows must leave room in a snapshot image the wire can carry");

#define SCAN_READS_MAX 256       /* log entries one scan may read */
#define FORWARD_TIMEOUT_MS 3000
#define PUSH_TIMEOUT_MS 15000    /* spec §10: about 15 s */
#define HOLD_MS 1000             /* a subscription whose retries are full waits this long */
#define GATEWAYS_MAX 8

/* StorageCommand members (the generated tags, cmdcodec.h). */
enum {
    F_SYNC = cmq_StorageCommand_topic_sync_tag,
    F_DROP = cmq_StorageCommand_topic_drop_tag,
    F_PUBLISH = cmq_StorageCommand_publish_tag,
};

struct topics {
    struct rpc_client *gateways; /* push requests */
    int kick_armed;
    uint64_t deliveries, delivery_failures, pushes, forwards;
};

/* One delivery in flight (or its progress entry). */
struct delivery {
    struct node *n;
    uint32_t part;
    uint64_t topic_id;
    char sub_id[TSM_SUB_ID_MAX + 1];
    uint32_t protocol, strategy, format;
    uint64_t queue_id, dlq_queue_id;
    int retry;                   /* a retry of ids[0] (attempts[0] failed so far) */
    int dlq_step;                /* the message is on its way to the dead-letter queue */
    uint32_t count;
    uint64_t ids[TSM_BATCH_MAX];
    uint64_t pub_ms[TSM_BATCH_MAX];
    uint32_t attempts;
    const uint8_t *body[TSM_BATCH_MAX];
    size_t body_len[TSM_BATCH_MAX];
    uint8_t *bufs[TSM_BATCH_MAX];
    uint32_t n_bufs;
    uint8_t *progress;           /* the encoded progress entry, kept to propose again */
    size_t progress_len;
    int progress_tries;
    uint64_t new_cursor, old_cursor;
    uint64_t expired;
    uint64_t passed;             /* scan: topic messages the new cursor moves past */
    uint64_t pos[TSM_BATCH_MAX]; /* scan: messages passed before ids[k] */
    /* HTTP: what the push needs */
    char url[TSM_ENDPOINT_MAX + 1];
    char topic_name[TSM_NAME_MAX + 1], sub_name[TSM_NAME_MAX + 1];
    uint64_t appid;
    uint32_t n_tags;
    char tags[TOPIC_TAGS_MAX][TOPIC_TAG_BYTES_MAX + 1];
    /* the outcome, for the trace (TopicAttempt) */
    uint32_t http_status;
    uint64_t target_ids[TSM_BATCH_MAX];
};

static uint32_t retry_scale(const struct node *n)
{
    return (uint32_t)n->cfg->retry_scale_permille;
}

static uint64_t id_index(uint64_t id)
{
    return qsm_id_index(id);
}

static void delivery_free(struct delivery *d)
{
    for (uint32_t i = 0; i < d->n_bufs; i++)
        free(d->bufs[i]);
    free(d->progress);
    free(d);
}

/* ---------- attach / apply ---------- */

static struct topics *state(struct node *n);

int topics_attach(struct hosted *h)
{
    if (!state(h->n))
        return CMQ_ENOMEM;
    int rc = tsm_create(h->id, &h->tsm);
    if (rc == CMQ_OK && h->trace) { /* queues_attach opened it */
        struct qsm_tracer t = trace_tracer(h->trace);
        tsm_set_tracer(h->tsm, &t);
    }
    return rc;
}

void topics_detach(struct hosted *h)
{
    tsm_destroy(h->tsm);
    h->tsm = NULL;
}

static void kick(struct node *n);

int topics_apply(struct hosted *h, const struct raft_entry *e, const struct cmdcodec_view *v)
{
    int rc = tsm_apply_peeked(h->tsm, e->index, e->data, e->len, v);
    if (rc != CMQ_OK && rc != CMQ_ENOTFOUND)
        log_warn("topic_apply_refused", "partition=%u index=%" PRIu64 " status=%s", h->id,
                 e->index, status_name(rc));
    if (partition_is_leader(h->p))
        kick(h->n);
    return rc;
}

/* ---------- clients ---------- */

static struct topics *state(struct node *n)
{
    if (!n->topics)
        n->topics = calloc(1, sizeof *n->topics);
    return n->topics;
}

static struct rpc_client *gateway_client(struct node *n)
{
    struct topics *t = n->topics;
    if (!t || t->gateways || !n->cfg->gateways[0])
        return t ? t->gateways : NULL;
    char list[sizeof n->cfg->gateways];
    memcpy(list, n->cfg->gateways, sizeof list);
    const char *eps[GATEWAYS_MAX];
    int k = 0;
    for (char *save, *ep = strtok_r(list, ",", &save); ep && k < GATEWAYS_MAX;
         ep = strtok_r(NULL, ",", &save)) {
        while (*ep == ' ')
            ep++;
        if (*ep)
            eps[k++] = ep;
    }
    if (k && rpc_client_open(svc_zctx(n->svc), eps, k, &t->gateways) == CMQ_OK)
        svc_watch_client(n->svc, t->gateways);
    else
        t->gateways = NULL;
    return t->gateways;
}

void topics_close(struct node *n)
{
    struct topics *t = n->topics;
    if (!t)
        return;
    n->topics = NULL; /* pushes ended below see no state: they only propose their progress */
    rpc_client_close(t->gateways);
    free(t);
}

/* ---------- progress ---------- */

#define PROGRESS_RETRY_MS 50
#define PROGRESS_TRIES_MAX 100

static void repropose(struct evloop *loop, void *arg);

static void on_progress(void *arg, int status, uint64_t index, void *result)
{
    (void)index;
    (void)result;
    struct delivery *d = arg;
    struct hosted *h = hosted_by_id(d->n, d->part);
    /* The leader refused for a moment (a leadership transfer, a full
     * proposal queue): propose the same outcome again rather than deliver
     * again. */
    if (status == CMQ_EBUSY && h && d->n->topics && partition_is_leader(h->p) &&
        d->progress_tries < PROGRESS_TRIES_MAX) {
        evloop_timer(svc_loop(d->n->svc), PROGRESS_RETRY_MS, repropose, d);
        return;
    }
    struct tsm_sub *s = NULL;
    if (h && h->tsm) {
        struct tsm_topic *tp = tsm_topic(h->tsm, d->topic_id);
        s = tp ? tsm_sub(tp, d->sub_id) : NULL;
        if (s)
            s->busy = 0;
    }
    if (status != CMQ_OK && status != CMQ_ENOTFOUND) {
        log_info("topic_progress_lost", "partition=%u topic=%" PRIu64 " sub=%s status=%s",
                 d->part, d->topic_id, d->sub_id, status_name(status));
        /* The delivery will be repeated: one message per request, so the
         * queue recognises each by its dedup key whatever the batch was. */
        if (s)
            s->singles = TSM_BATCH_MAX;
    }
    struct node *n = d->n;
    delivery_free(d);
    kick(n);
}

static void repropose(struct evloop *loop, void *arg)
{
    (void)loop;
    struct delivery *d = arg;
    struct hosted *h = hosted_by_id(d->n, d->part);
    d->progress_tries++;
    int rc = h && !svc_stopping(d->n->svc)
                 ? partition_propose(h->p, d->progress, d->progress_len, on_progress, d)
                 : CMQ_ESHUTDOWN;
    if (rc != CMQ_OK)
        on_progress(d, rc, 0, NULL);
}

/* Proposes `p` for the delivery's subscription; the subscription stays busy
 * until it is applied (or lost). */
static void propose_progress(struct delivery *d, cmq_TopicSubProgress *p)
{
    struct hosted *h = hosted_by_id(d->n, d->part);
    static cmq_TopicProgress c; /* large: not on the stack; single-threaded */
    memset(&c, 0, sizeof c);
    c.topic_id = d->topic_id;
    c.subs_count = 1;
    c.subs[0] = *p;
    snprintf(c.subs[0].sub_id, sizeof c.subs[0].sub_id, "%s", d->sub_id);
    uint8_t buf[sizeof(cmq_TopicProgress) + CMDCODEC_FRAME_MAX];
    size_t len = h ? cmdcodec_encode_msg(buf, sizeof buf, clock_wall_ms(),
                                         cmq_StorageCommand_topic_progress_tag,
                                         cmq_TopicProgress_fields, &c)
                   : 0;
    int rc = CMQ_EINTERNAL;
    if (len) {
        free(d->progress);
        d->progress = malloc(len);
        if (d->progress) {
            memcpy(d->progress, buf, len);
            d->progress_len = len;
        }
        rc = partition_propose(h->p, buf, len, on_progress, d);
    }
    if (rc != CMQ_OK && rc != CMQ_EBUSY)
        on_progress(d, rc, 0, NULL);
    else if (rc == CMQ_EBUSY)
        on_progress(d, d->progress ? CMQ_EBUSY : CMQ_ENOMEM, 0, NULL);
}

static struct tsm_sub *find_sub(struct delivery *d)
{
    struct hosted *h = hosted_by_id(d->n, d->part);
    struct tsm_topic *tp = h && h->tsm ? tsm_topic(h->tsm, d->topic_id) : NULL;
    return tp ? tsm_sub(tp, d->sub_id) : NULL;
}

static void start_dlq(struct delivery *d);

/* Adds the trace record of message k of the delivery to `p`. */
static void attempt(cmq_TopicSubProgress *p, const struct delivery *d, uint32_t k, uint32_t result,
                    uint32_t n, uint64_t next_ms)
{
    if (p->attempts_count >= TSM_BATCH_MAX)
        return;
    cmq_TopicAttempt *a = &p->attempts[p->attempts_count++];
    a->msg_id = d->ids[k];
    a->result = result;
    a->http_status = d->protocol == TSM_PROTO_HTTP && result != 4 ? d->http_status : 0;
    a->attempt = n;
    a->target_msg_id = d->target_ids[k];
    a->next_ms = next_ms;
}

/* The delivery ended: success or not; turns it into a progress entry. */
static void delivered(struct delivery *d, int ok)
{
    struct topics *t = d->n->topics; /* NULL once topics_close ran */
    uint64_t now = clock_wall_ms();
    cmq_TopicSubProgress p = cmq_TopicSubProgress_init_zero;
    p.dropped = d->expired;
    if (d->dlq_step) {
        /* exhausted retries, on their way to the dead-letter queue */
        p.retries_count = 1;
        p.retries[0].msg_id = d->ids[0];
        if (ok) {
            p.dead_lettered = 1;
            attempt(&p, d, 0, 2, d->attempts, 0); /* the last failed attempt */
            attempt(&p, d, 0, 4, d->attempts, 0);
        } else { /* keep it; the next attempt goes to the DLQ again */
            p.retries[0].attempts = d->attempts;
            p.retries[0].next_ms = now + tsm_retry_delay_ms(TSM_EXPONENTIAL_DECAY_RETRY, 10, 0,
                                                            retry_scale(d->n));
        }
        propose_progress(d, &p);
        return;
    }
    if (t && ok)
        t->deliveries += d->count;
    else if (t)
        t->delivery_failures++;
    if (d->retry) {
        p.retries_count = 1;
        p.retries[0].msg_id = d->ids[0];
        if (ok) {
            p.delivered = 1;
            attempt(&p, d, 0, 1, d->attempts + 1, 0);
        } else {
            uint32_t failed = d->attempts + 1;
            uint64_t delay = tsm_retry_delay_ms(d->strategy, failed, (uint32_t)rand(),
                                                retry_scale(d->n));
            if (delay) {
                p.retries[0].attempts = failed;
                p.retries[0].next_ms = now + delay;
                attempt(&p, d, 0, 2, failed, now + delay);
            } else if (d->dlq_queue_id) {
                d->attempts = failed;
                start_dlq(d);
                return;
            } else {
                p.dropped += 1;
                attempt(&p, d, 0, 2, failed, 0);
                attempt(&p, d, 0, 3, failed, 0);
                log_info("topic_message_dropped", "topic=%" PRIu64 " sub=%s msg_id=%" PRIu64
                         " attempts=%u", d->topic_id, d->sub_id, d->ids[0], failed);
            }
        }
        propose_progress(d, &p);
        return;
    }
    if (ok) {
        p.cursor = d->new_cursor;
        p.delivered = d->count;
        p.passed = d->passed;
        for (uint32_t k = 0; k < d->count; k++)
            attempt(&p, d, k, 1, 1, 0);
        propose_progress(d, &p);
        return;
    }
    /* A first attempt failed: the messages become retries while there is
     * room; the cursor passes only those. */
    struct tsm_sub *s = find_sub(d);
    uint32_t room = s && s->n_retries < TSM_RETRIES_MAX ? TSM_RETRIES_MAX - s->n_retries : 0;
    uint32_t placed = 0;
    for (; placed < d->count && placed < room; placed++) {
        uint64_t delay = tsm_retry_delay_ms(d->strategy, 1, (uint32_t)rand(), retry_scale(d->n));
        p.retries[placed].msg_id = d->ids[placed];
        p.retries[placed].attempts = 1;
        p.retries[placed].next_ms = now + delay;
        attempt(&p, d, placed, 2, 1, now + delay);
    }
    p.retries_count = PB_COUNT(p.retries, placed);
    p.cursor = placed == d->count ? d->new_cursor : d->ids[placed];
    p.passed = placed == d->count ? d->passed : d->pos[placed];
    if (placed == 0) {
        p.cursor = d->old_cursor;
        p.passed = 0;
        p.dropped = 0;
    }
    propose_progress(d, &p);
}

/* ---------- deliveries ---------- */

struct body_ref {
    const uint8_t *p;
    size_t len;
};

static bool encode_ref(pb_ostream_t *os, const pb_field_t *f, void *const *arg)
{
    const struct body_ref *b = *arg;
    return pb_encode_tag_for_field(os, f) && pb_encode_string(os, b->p, b->len);
}

static void on_forwarded(void *arg, int status, const uint64_t *msg_ids, size_t n)
{
    struct delivery *d = arg;
    int ok = status == CMQ_OK;
    for (size_t k = 0; ok && msg_ids && k < n && k < TSM_BATCH_MAX; k++)
        d->target_ids[k] = msg_ids[k];
    if (!ok)
        log_info("topic_forward_failed", "topic=%" PRIu64 " sub=%s queue=%" PRIu64 " status=%s",
                 d->topic_id, d->sub_id, d->dlq_step ? d->dlq_queue_id : d->queue_id,
                 status_name(status));
    delivered(d, ok);
}

/* The dedup key of (subscription, topic message) for idempotent appends
 * (forward.h): FNV-1a 64 over the subscription id and the msg id, never 0.
 * The same message re-delivered to the same subscription (a retry, or a new
 * leader repeating a delivery whose progress entry was lost) has the same
 * key, so the queue appends it once; two subscriptions into one queue get
 * their own copies. */
static uint64_t dedup_key(const char *sub_id, uint64_t msg_id)
{
    /* FROZEN (hash.h): the keys are in the queues' replicated dedup windows */
    return hash_nonzero(hash_fnv1a64_u64le(hash_fnv1a64_str(HASH_FNV1A64_INIT, sub_id), msg_id));
}

/* Appends the delivery's messages to `queue_id` through forward.c, which
 * finds the queue's leader wherever it is and retries until the append is
 * committed or refused for good. */
static void forward(struct delivery *d, uint64_t queue_id, uint32_t first, uint32_t count)
{
    cmq_SendRequest r = cmq_SendRequest_init_zero;
    struct body_ref refs[TSM_BATCH_MAX];
    r.queue_id = queue_id;
    for (uint32_t i = 0; i < count; i++) {
        refs[i] = (struct body_ref){d->body[first + i], d->body_len[first + i]};
        r.messages[i].body.funcs.encode = encode_ref;
        r.messages[i].body.arg = &refs[i];
        /* a dead-letter copy is a different append from the delivery itself */
        r.messages[i].dedup_key = dedup_key(d->sub_id, d->ids[first + i]) ^ (d->dlq_step ? 0x5bd1e995u : 0);
    }
    r.messages_count = PB_COUNT(r.messages, count);
    snprintf(r.client_addr, sizeof r.client_addr, "topic:%" PRIu64, d->topic_id);
    uint8_t *buf;
    size_t len;
    int rc = rpc_pb_encode(cmq_SendRequest_fields, &r, &buf, &len);
    if (rc == CMQ_OK) {
        if (d->n->topics)
            d->n->topics->forwards++;
        rc = forward_send(d->n, queue_id, buf, len, on_forwarded, d);
        free(buf);
    }
    if (rc != CMQ_OK)
        on_forwarded(d, rc, NULL, 0);
}

static void start_dlq(struct delivery *d)
{
    d->dlq_step = 1;
    forward(d, d->dlq_queue_id, 0, 1);
}

static void on_pushed(void *arg, const struct rpc_result *res)
{
    struct delivery *d = arg;
    cmq_PushReply r = cmq_PushReply_init_zero;
    int ok = res->status == CMQ_OK && res->msg &&
             rpc_pb_decode(cmq_PushReply_fields, &r, res->msg->body, res->msg->body_len) == CMQ_OK &&
             r.http_status >= 200 && r.http_status < 300;
    d->http_status = r.http_status;
    if (!ok)
        log_info("topic_push_failed", "topic=%" PRIu64 " sub=%s msg_id=%" PRIu64
                 " status=%s http_status=%u", d->topic_id, d->sub_id, d->ids[0],
                 status_name(res->status), r.http_status);
    delivered(d, ok);
}

static void push(struct delivery *d)
{
    struct rpc_client *c = gateway_client(d->n);
    static cmq_PushRequest r;
    memset(&r, 0, sizeof r);
    snprintf(r.url, sizeof r.url, "%s", d->url);
    r.format = d->format;
    snprintf(r.request_id, sizeof r.request_id, "%" PRIu64 "-%u", d->ids[0], d->attempts + 1);
    r.msg_id = d->ids[0];
    for (uint32_t i = 0; i < d->n_tags; i++)
        snprintf(r.tags[i], sizeof r.tags[i], "%s", d->tags[i]);
    r.tags_count = PB_COUNT(r.tags, d->n_tags);
    r.topic_owner = d->appid;
    snprintf(r.topic_name, sizeof r.topic_name, "%s", d->topic_name);
    snprintf(r.subscription_name, sizeof r.subscription_name, "%s", d->sub_name);
    r.publish_time_s = d->pub_ms[0] / 1000;
    struct body_ref ref = {d->body[0], d->body_len[0]};
    r.body.funcs.encode = encode_ref;
    r.body.arg = &ref;
    r.timeout_ms = PUSH_TIMEOUT_MS;
    uint8_t *buf;
    size_t len;
    struct rpc_opts opts = {.timeout_ms = PUSH_TIMEOUT_MS + 2000, .attempts = 1, .peer = -1};
    if (!c || rpc_pb_encode(cmq_PushRequest_fields, &r, &buf, &len) != CMQ_OK) {
        struct rpc_result res = {.status = c ? CMQ_ENOMEM : CMQ_EUNAVAIL};
        on_pushed(d, &res);
        return;
    }
    if (d->n->topics)
        d->n->topics->pushes++;
    int rc = rpc_client_call(c, cmq_PushMsgType_PUSH_MSG_HTTP, buf, len, &opts, on_pushed, d);
    free(buf);
    if (rc != CMQ_OK) {
        struct rpc_result res = {.status = rc};
        on_pushed(d, &res);
    }
}

static void send_delivery(struct delivery *d)
{
    if (d->count == 0) { /* only the cursor moves (filtered or expired messages) */
        cmq_TopicSubProgress p = cmq_TopicSubProgress_init_zero;
        p.cursor = d->new_cursor;
        p.dropped = d->expired;
        p.passed = d->passed;
        propose_progress(d, &p);
        return;
    }
    if (d->protocol == TSM_PROTO_QUEUE)
        forward(d, d->queue_id, 0, d->count);
    else
        push(d);
}

/* Reads the Publish entry holding `id`; on success *buf owns the entry. */
static int read_publish(struct hosted *h, uint64_t index, uint8_t **buf, struct tsm_publish *m)
{
    size_t len;
    int rc = partition_read_entry(h->p, index, buf, &len, NULL);
    if (rc != CMQ_OK)
        return rc;
    if (!tsm_parse_publish(*buf, len, m)) {
        free(*buf);
        *buf = NULL;
        return CMQ_EINVAL;
    }
    return CMQ_OK;
}

static void fill_common(struct delivery *d, struct hosted *h, const struct tsm_topic *tp,
                        const struct tsm_sub *s)
{
    d->n = h->n;
    d->part = h->id;
    d->topic_id = tp->topic_id;
    snprintf(d->sub_id, sizeof d->sub_id, "%s", s->sub_id);
    d->protocol = s->protocol;
    d->strategy = s->strategy;
    d->format = s->format;
    d->queue_id = s->queue_id;
    d->dlq_queue_id = s->dlq_queue_id;
    d->old_cursor = s->cursor;
    snprintf(d->url, sizeof d->url, "%s", s->endpoint);
    snprintf(d->topic_name, sizeof d->topic_name, "%s", tp->name);
    snprintf(d->sub_name, sizeof d->sub_name, "%s", s->name);
    d->appid = tp->appid;
}

static void copy_tags(struct delivery *d, const struct tsm_publish *m)
{
    d->n_tags = m->n_tags;
    for (uint32_t i = 0; i < m->n_tags; i++)
        snprintf(d->tags[i], sizeof d->tags[i], "%s", m->tags[i]);
}

/* A due retry of `s`, if any: 1 when a delivery started. */
static int start_retry(struct hosted *h, struct tsm_topic *tp, struct tsm_sub *s, uint64_t now)
{
    const struct tsm_retry *r = NULL;
    for (uint32_t i = 0; i < s->n_retries; i++)
        if (s->retries[i].next_ms <= now && (!r || s->retries[i].next_ms < r->next_ms))
            r = &s->retries[i];
    if (!r)
        return 0;
    struct delivery *d = calloc(1, sizeof *d);
    if (!d)
        return 0;
    fill_common(d, h, tp, s);
    d->retry = 1;
    d->attempts = r->attempts;
    d->ids[0] = r->msg_id;
    struct tsm_publish m;
    uint8_t *buf = NULL;
    int rc = read_publish(h, id_index(r->msg_id), &buf, &m);
    uint32_t slot = qsm_id_slot(r->msg_id);
    s->busy = 1;
    if (rc != CMQ_OK || slot >= m.n || m.leader_ms + TSM_RETENTION_MS < now) {
        /* gone from the log or past the topic's retention: given up */
        free(buf);
        cmq_TopicSubProgress p = cmq_TopicSubProgress_init_zero;
        p.retries_count = 1;
        p.retries[0].msg_id = r->msg_id;
        p.dropped = 1;
        attempt(&p, d, 0, 3, r->attempts, 0);
        propose_progress(d, &p);
        return 1;
    }
    d->bufs[d->n_bufs++] = buf;
    d->body[0] = m.body[slot];
    d->body_len[0] = m.body_len[slot];
    d->pub_ms[0] = m.leader_ms;
    d->count = 1;
    copy_tags(d, &m);
    send_delivery(d);
    return 1;
}

/* The next messages after the cursor that pass the filter: 1 when a
 * delivery (or a cursor-only progress) started. */
static int start_scan(struct hosted *h, struct tsm_topic *tp, struct tsm_sub *s, uint64_t now)
{
    if (s->cursor > tp->last_publish_id || s->n_retries >= TSM_RETRIES_MAX)
        return 0;
    struct delivery *d = calloc(1, sizeof *d);
    if (!d)
        return 0;
    fill_common(d, h, tp, s);
    /* A leader that dies leaves at most one unconfirmed delivery per
     * subscription, of at most 16 messages.  Its successor sends the next 16
     * one per request, so each is a whole request the queue can recognise by
     * its dedup key, whatever the lost batch held. */
    uint64_t term = raft_term(partition_raft(h->p));
    if (s->singles_term != term) {
        s->singles_term = term;
        s->singles = TSM_BATCH_MAX;
    }
    uint32_t want = s->protocol == TSM_PROTO_QUEUE && !s->singles ? TSM_BATCH_MAX : 1;
    uint64_t idx = id_index(s->cursor), last = id_index(tp->last_publish_id);
    uint32_t slot = qsm_id_slot(s->cursor);
    int reads = 0;
    while (idx <= last && reads < SCAN_READS_MAX && d->count < want) {
        uint8_t *buf = NULL;
        struct tsm_publish m;
        reads++;
        int rc = read_publish(h, idx, &buf, &m);
        if (rc == CMQ_ECORRUPT || rc == CMQ_EIO) {
            /* this replica's log is damaged: skipping the entry would drop a
             * message for every subscriber; a healthy replica takes over */
            free(buf);
            hosted_failed(h, rc);
            break;
        }
        if (rc != CMQ_OK || m.topic_id != tp->topic_id) {
            if (rc != CMQ_OK && rc != CMQ_EINVAL)
                log_warn("topic_read_failed", "partition=%u index=%" PRIu64 " status=%s", h->id,
                         idx, status_name(rc));
            free(buf);
            idx++;
            slot = 0;
            continue;
        }
        int keep = 0;
        for (; slot < m.n && d->count < want; slot++, d->passed++) {
            if (m.leader_ms + TSM_RETENTION_MS < now) {
                d->expired++;
                continue;
            }
            if (!tsm_sub_matches(tp, s, &m))
                continue;
            uint32_t k = d->count++;
            d->pos[k] = d->passed;
            d->ids[k] = qsm_id_make(h->id, idx, slot);
            d->body[k] = m.body[slot];
            d->body_len[k] = m.body_len[slot];
            d->pub_ms[k] = m.leader_ms;
            if (k == 0)
                copy_tags(d, &m);
            keep = 1;
        }
        if (keep)
            d->bufs[d->n_bufs++] = buf;
        else
            free(buf);
        if (slot >= m.n) {
            idx++;
            slot = 0;
        }
    }
    d->new_cursor = qsm_id_make(h->id, idx, slot);
    if (d->count == 0 && d->new_cursor <= s->cursor) {
        delivery_free(d);
        return 0;
    }
    s->busy = 1;
    if (s->singles && d->count)
        s->singles--;
    send_delivery(d);
    return 1;
}

static void pump(struct node *n)
{
    uint64_t now = clock_wall_ms();
    for (int i = 0; i < n->n_parts; i++) {
        struct hosted *h = n->parts[i];
        if (!h->tsm || !partition_is_leader(h->p))
            continue;
        for (size_t k = 0; k < tsm_topic_count(h->tsm); k++) {
            struct tsm_topic *tp = tsm_topic_at(h->tsm, k);
            for (uint32_t j = 0; j < tp->n_subs; j++) {
                struct tsm_sub *s = tp->subs[j];
                if (s->busy)
                    continue;
                if (!start_retry(h, tp, s, now))
                    start_scan(h, tp, s, now);
            }
        }
    }
}

static void on_kick(struct evloop *loop, void *arg)
{
    (void)loop;
    struct node *n = arg;
    if (n->topics)
        n->topics->kick_armed = 0;
    pump(n);
}

static void kick(struct node *n)
{
    struct topics *t = n->topics;
    if (!t || t->kick_armed || svc_stopping(n->svc))
        return;
    t->kick_armed = 1;
    evloop_timer(svc_loop(n->svc), 0, on_kick, n);
}

void topics_wake(struct node *n)
{
    kick(n);
}

void topics_tick(struct node *n)
{
    if (svc_stopping(n->svc))
        return;
    /* Open the clients early: a DEALER that has not connected yet refuses
     * sends (ZMQ_IMMEDIATE), which would fail a first delivery. */
    gateway_client(n);
    pump(n);
}

/* ---------- requests ---------- */

struct op {
    struct node *n;
    struct rpc_call *call;
    uint32_t type;
    uint32_t part;
    uint32_t count;
    /* keyed publishes: the keys in flight, on hosted->pub_keyed */
    uint64_t topic_id;
    uint32_t n_keys;
    uint64_t keys[TSM_BATCH_MAX];
    struct op *keyed_next;
};

static void op_unkey(struct op *o)
{
    struct hosted *h = o->n_keys ? hosted_by_id(o->n, o->part) : NULL;
    if (!h)
        return;
    for (struct op **pp = (struct op **)&h->pub_keyed; *pp; pp = &(*pp)->keyed_next)
        if (*pp == o) {
            *pp = o->keyed_next;
            break;
        }
}

static void op_done(void *arg, int status, uint64_t index, void *result)
{
    (void)result;
    struct op *o = arg;
    o->n->ops_inflight--;
    struct hosted *h = hosted_by_id(o->n, o->part);
    if (status == CMQ_ENOTLEADER && h) {
        hosted_reply_not_leader(h, o->call);
    } else if (status != CMQ_OK) {
        rpc_reply_status(o->call, status, NULL);
    } else if (o->type == cmq_StorageMsgType_STORAGE_MSG_PUBLISH) {
        cmq_PublishReply r = cmq_PublishReply_init_zero;
        for (uint32_t i = 0; i < o->count; i++)
            r.msg_ids[r.msg_ids_count++] = qsm_id_make(o->part, index, i);
        rpc_reply_pb(o->call, cmq_PublishReply_fields, &r);
    } else {
        rpc_reply_status(o->call, CMQ_OK, NULL);
    }
    op_unkey(o);
    free(o);
}

static struct hosted *find_topic(struct node *n, uint64_t topic_id)
{
    for (int i = 0; i < n->n_parts; i++)
        if (n->parts[i]->tsm && tsm_topic(n->parts[i]->tsm, topic_id))
            return n->parts[i];
    return NULL;
}

static void on_stats(struct hosted *h, struct rpc_call *call, uint64_t topic_id)
{
    cmq_TopicStatsRequest rq = cmq_TopicStatsRequest_init_zero;
    if (rpc_call_decode(call, cmq_TopicStatsRequest_fields, &rq) != CMQ_OK) {
        rpc_reply_status(call, CMQ_EINVAL, "bad stats request");
        return;
    }
    struct tsm_topic *tp = tsm_topic(h->tsm, topic_id);
    cmq_TopicStatsReply r = cmq_TopicStatsReply_init_zero;
    /* topic msgCount: messages not yet through every subscription's cursor */
    for (uint32_t i = 0; i < tp->n_subs; i++) {
        const struct tsm_sub *s = tp->subs[i];
        uint64_t pending = tsm_sub_pending(tp, s);
        if (pending > r.msg_count)
            r.msg_count = pending;
        if (!rq.sub_id[0] || strcmp(rq.sub_id, s->sub_id) != 0)
            continue;
        r.sub_msg_count = pending;
        r.retrying = s->n_retries;
        for (uint32_t k = 0; k < s->n_retries; k++) {
            if (s->retries[k].attempts > r.max_attempts)
                r.max_attempts = s->retries[k].attempts;
            if (!r.next_attempt_ms || s->retries[k].next_ms < r.next_attempt_ms)
                r.next_attempt_ms = s->retries[k].next_ms;
        }
        r.delivered = s->delivered;
        r.dropped = s->dropped;
        r.dead_lettered = s->dead_lettered;
        r.cursor = s->cursor;
    }
    rpc_reply_pb(call, cmq_TopicStatsReply_fields, &r);
}

/* Idempotent publishes (docs/topics.md): CMQ_EEXIST when the window holds
 * every message of `pm` (answered here with the original ids); CMQ_EBUSY
 * while this leader has not applied an entry of its own term or one of the
 * keys is in flight here; otherwise CMQ_OK with the keys to register in
 * keys[0..*n_keys).  A publish the window holds only in part (its older
 * items evicted: the gateway never regroups publishes) is stored again
 * whole. */
static int publish_dedup(struct hosted *h, const struct tsm_publish *pm, struct rpc_call *call,
                         uint64_t *keys, uint32_t *n_keys)
{
    uint64_t ids[TSM_BATCH_MAX];
    *n_keys = 0;
    if (tsm_dedup_lookup(h->tsm, pm, ids) == pm->n) {
        cmq_PublishReply r = cmq_PublishReply_init_zero;
        for (uint32_t i = 0; i < pm->n; i++)
            r.msg_ids[r.msg_ids_count++] = ids[i];
        rpc_reply_pb(call, cmq_PublishReply_fields, &r);
        return CMQ_EEXIST;
    }
    for (uint32_t i = 0; i < pm->n; i++)
        if (pm->dedup_key[i])
            keys[(*n_keys)++] = pm->dedup_key[i];
    if (!*n_keys)
        return CMQ_OK;
    if (!hosted_leader_ready(h))
        return CMQ_EBUSY;
    for (const struct op *k = h->pub_keyed; k; k = k->keyed_next) {
        if (k->topic_id != pm->topic_id)
            continue;
        for (uint32_t a = 0; a < k->n_keys; a++)
            for (uint32_t b = 0; b < *n_keys; b++)
                if (k->keys[a] == keys[b])
                    return CMQ_EBUSY;
    }
    return CMQ_OK;
}

int topics_handle(struct node *n, struct rpc_call *call)
{
    const struct rpc_msg *m = rpc_call_request(call);
    uint32_t field;
    switch (m->type) {
    case cmq_StorageMsgType_STORAGE_MSG_PUBLISH: field = F_PUBLISH; break;
    case cmq_StorageMsgType_STORAGE_MSG_TOPIC_SYNC: field = F_SYNC; break;
    case cmq_StorageMsgType_STORAGE_MSG_TOPIC_DROP: field = F_DROP; break;
    case cmq_StorageMsgType_STORAGE_MSG_TOPIC_STATS: field = 0; break;
    default: return 0;
    }
    uint64_t topic_id = rpc_pb_first_varint(m->body, m->body_len, 1);
    if (topic_id == 0) {
        rpc_reply_status(call, CMQ_EINVAL, "topic_id missing");
        return 1;
    }
    struct hosted *h;
    if (field == F_SYNC) {
        static cmq_TopicSyncRequest r;
        memset(&r, 0, sizeof r);
        if (rpc_call_decode(call, cmq_TopicSyncRequest_fields, &r) != CMQ_OK) {
            rpc_reply_status(call, CMQ_EINVAL, "bad sync request");
            return 1;
        }
        uint32_t part = r.partition_id;
        pb_release(cmq_TopicSyncRequest_fields, &r);
        h = hosted_by_id(n, part);
        if (!h) {
            hosted_reply_not_here(n, call, "partition not hosted here");
            return 1;
        }
    } else {
        h = find_topic(n, topic_id);
        if (!h) {
            hosted_reply_not_here(n, call, "topic not here"); /* never "not found" */
            return 1;
        }
    }
    if (!partition_is_leader(h->p) || h->sm_status) {
        hosted_reply_not_leader(h, call);
        return 1;
    }
    if (field == 0) {
        on_stats(h, call, topic_id);
        return 1;
    }
    size_t len;
    uint8_t *cmd;
    if (cmdcodec_build(clock_wall_ms(), field, m->body, m->body_len, &cmd, &len) != CMQ_OK) {
        rpc_reply_status(call, CMQ_ENOMEM, NULL);
        return 1;
    }
    uint32_t count = 0, n_keys = 0;
    uint64_t keys[TSM_BATCH_MAX];
    if (field == F_PUBLISH) {
        struct tsm_publish pm;
        if (!tsm_parse_publish(cmd, len, &pm)) {
            free(cmd);
            rpc_reply_status(call, CMQ_EINVAL, "bad publish request");
            return 1;
        }
        int rc = tsm_check_publish(h->tsm, &pm);
        if (rc == CMQ_ENOTFOUND) {
            free(cmd);
            rpc_reply_status(call, rc, NULL);
            return 1;
        }
        /* a retry is answered with its first ids even if the subscriptions changed */
        int drc = publish_dedup(h, &pm, call, keys, &n_keys);
        if (drc != CMQ_OK) {
            free(cmd);
            if (drc == CMQ_EBUSY)
                rpc_reply_status(call, CMQ_EBUSY, "partition busy (leader change or the same "
                                 "dedup key in flight): retry");
            return 1; /* CMQ_EEXIST: answered with the original ids */
        }
        if (rc == CMQ_EEMPTY || rc == CMQ_ESTALE) {
            free(cmd);
            cmq_PublishReply r = cmq_PublishReply_init_zero;
            r.refused = rc == CMQ_EEMPTY ? 1 : 2;
            rpc_reply_pb(call, cmq_PublishReply_fields, &r);
            return 1;
        }
        const struct tsm_topic *tp = tsm_topic(h->tsm, pm.topic_id);
        for (uint32_t i = 0; rc == CMQ_OK && i < pm.n; i++)
            if (pm.body_len[i] == 0)
                rc = CMQ_EINVAL;
            else if (tp->max_msg_size && pm.body_len[i] > tp->max_msg_size)
                rc = CMQ_ETOOBIG;
        if (rc != CMQ_OK) {
            free(cmd);
            rpc_reply_status(call, rc, NULL);
            return 1;
        }
        count = pm.n;
    }
    struct op *o = calloc(1, sizeof *o);
    if (!o) {
        free(cmd);
        rpc_reply_status(call, CMQ_ENOMEM, NULL);
        return 1;
    }
    *o = (struct op){.n = n, .call = call, .type = m->type, .part = h->id, .count = count,
                     .topic_id = topic_id, .n_keys = n_keys};
    memcpy(o->keys, keys, n_keys * sizeof keys[0]);
    if (n_keys) { /* op_unkey takes it off */
        o->keyed_next = h->pub_keyed;
        h->pub_keyed = o;
    }
    n->ops_inflight++;
    int rc = partition_propose(h->p, cmd, len, op_done, o);
    free(cmd);
    if (rc != CMQ_OK) {
        n->ops_inflight--;
        if (rc == CMQ_ENOTLEADER)
            hosted_reply_not_leader(h, call);
        else
            rpc_reply_status(call, rc, NULL);
        op_unkey(o);
        free(o);
    }
    return 1;
}

void topics_trace_publish(struct hosted *h, struct _cmq_TraceEvent *ev, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        cmq_TraceEvent *e = &ev[i];
        uint8_t *buf = NULL;
        struct tsm_publish m;
        if (e->event != TSM_EV_PUBLISHED || read_publish(h, e->index, &buf, &m) != CMQ_OK) {
            free(buf);
            continue;
        }
        size_t at = 0;
        for (uint32_t k = 0; k < m.n_tags && at < sizeof e->tags - 1; k++) {
            int w = snprintf(e->tags + at, sizeof e->tags - at, "%s%s", k ? "," : "", m.tags[k]);
            at += w > 0 ? (size_t)w : 0;
        }
        size_t rl = strnlen(m.routing_key, sizeof e->routing_key - 1);
        memcpy(e->routing_key, m.routing_key, rl);
        e->routing_key[rl] = 0;
        free(buf);
    }
}
