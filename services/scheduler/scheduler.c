/* scheduler.c: the cmq-scheduler service; contract in scheduler.h, protocol
 * in proto/scheduler.proto, operator view in docs/scheduler.md.
 *
 * Data: each pending timer is one struct sched_timer, found by (partition,
 * key) in one chained hash table, and linked (through its one timer_entry)
 * into exactly one of: the wheel (waiting), its owner's `ready` list (due, not
 * yet sent), or a fire_batch (sent, waiting for the owner's OK).  It is also
 * on its owner's list of all its timers, so dropping an epoch is O(its timers).
 *
 * Time: owners stamp due times with their wall clock.  At registration the
 * remaining delay is taken relative to the owner's `now_ms` (so clock skew
 * between leader and scheduler does not matter), and the timer is linked in
 * the wheel at monotonic now + delay.  The wheel runs on the monotonic clock
 * only, so the scheduler's own wall clock may jump without effect.
 *
 * Invariants:
 *  1. A timer never leaves the wheel before its monotonic due time (the
 *     wheel's invariant 1), and leaves at most one tick after it when the
 *     loop is not overloaded.
 *  2. An owner has at most one FIRE batch in flight, so fires reach it in due
 *     order, retries included (a failed batch goes back to the front).
 *  3. A batch whose owner was dropped or superseded is detached (owner NULL)
 *     and its timers already freed; its reply only frees the batch.
 *  4. A refused REGISTER (ESTALE, ELIMIT, EINVAL, ENOMEM) changes nothing.
 *  5. count fields equal the list lengths: owner->count is the number of
 *     timers on owner->all, s->ntimers the sum over owners.
 */
#include "scheduler.h"
#include "hash.h"

#include "clock.h"
#include "envelope.pb.h"
#include "log.h"
#include "scheduler.pb.h"
#include "status.h"
#include "timerwheel.h"

#include <assert.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

_Static_assert(sizeof(((cmq_SchedRegister *)0)->timers) / sizeof(cmq_SchedTimer) ==
                   SCHED_BATCH_MAX, "scheduler.options: SchedRegister.timers max_count");
_Static_assert(sizeof(((cmq_SchedFire *)0)->timers) / sizeof(cmq_SchedTimer) == SCHED_BATCH_MAX,
               "scheduler.options: SchedFire.timers max_count");
_Static_assert(sizeof(((cmq_SchedTimer *)0)->payload.bytes) == SCHED_PAYLOAD_MAX,
               "scheduler.options: SchedTimer.payload max_size");
_Static_assert(SCHED_PAYLOAD_MAX <= UINT8_MAX, "a decoded payload.size fits sched_timer.payload_len");
_Static_assert(sizeof(((cmq_SchedCancel *)0)->keys) / sizeof(uint64_t) == SCHED_CANCEL_MAX,
               "scheduler.options: SchedCancel.keys max_count");
_Static_assert(sizeof(((cmq_SchedRegister *)0)->endpoint) <= RPC_ENDPOINT_MAX,
               "an owner endpoint must fit an rpc client endpoint");

#define CONTAINER(p, type, member) ((type *)((char *)(p) - offsetof(type, member)))

struct sched_owner;

struct sched_timer {
    struct timer_entry we;            /* wheel, owner->ready, or a batch; due_ms is monotonic */
    struct sched_owner *owner;
    struct sched_timer *hnext;        /* hash chain */
    struct sched_timer *oprev, *onext; /* owner->all */
    uint64_t key;
    uint64_t due_wall_ms;             /* as the owner stamped it; given back in FIRE */
    uint8_t payload_len;
    uint8_t payload[SCHED_PAYLOAD_MAX];
};

/* docs/scheduler.md states the memory per timer from this. */
_Static_assert(sizeof(struct sched_timer) <= 120, "struct sched_timer grew: update the docs");

/* One DEALER per distinct owner endpoint, shared by the owners that name it. */
struct sched_peer {
    struct sched_peer *next;
    struct rpc_client *client;
    int fd;
    uint32_t refs; /* owners pointing here */
    char endpoint[RPC_ENDPOINT_MAX];
};

struct fire_batch {
    struct scheduler *s;
    struct sched_owner *owner; /* NULL once detached (invariant 3) */
    uint64_t epoch;
    uint32_t sent;
    struct timer_list timers;
};

struct sched_owner {
    struct sched_owner *hnext;
    struct sched_owner *aprev, *anext; /* s->active: owners with ready timers */
    int active;
    uint64_t partition;
    uint64_t epoch;
    struct sched_peer *peer;
    uint64_t count;
    struct sched_timer *all;      /* every timer of this owner */
    struct timer_list ready;      /* due, unsent, in due order */
    struct fire_batch *batch;     /* in flight, or NULL */
    uint64_t retry_at_ms;         /* monotonic; no FIRE before this */
    uint32_t backoff_ms;
};

struct scheduler {
    struct svc *svc;
    struct evloop *loop;
    struct scheduler_opts o;
    uint64_t instance;
    int closing;

    struct timer_wheel wheel;
    struct sched_timer **tbuckets;
    size_t tmask;                 /* buckets - 1 (a power of two) */
    uint64_t ntimers;
    struct sched_owner **obuckets;
    size_t omask;
    uint64_t nowners;
    struct sched_owner *active;
    struct sched_peer *peers;

    uint64_t wake_id, wake_at_ms; /* the armed evloop timer, if any */

    uint64_t fired, batches, failures, refused, late_ms_max, late_ms_last;
    struct log_limit fail_log;

    /* Decoded requests are large fixed structs: keep them off the stack. */
    cmq_SchedRegister reg;
    cmq_SchedCancel cancel;
    cmq_SchedFire fire;
    struct sched_timer *fresh[SCHED_BATCH_MAX];
};

/* ---------- hashing ---------- */

static size_t timer_bucket(const struct scheduler *s, uint64_t partition, uint64_t key)
{
    return (size_t)hash_splitmix64(key ^ hash_splitmix64(partition)) & s->tmask;
}

static struct sched_timer *timer_find(struct scheduler *s, uint64_t partition, uint64_t key)
{
    for (struct sched_timer *t = s->tbuckets[timer_bucket(s, partition, key)]; t; t = t->hnext)
        if (t->key == key && t->owner->partition == partition)
            return t;
    return NULL;
}

/* Doubles the table while it holds more timers than buckets; a failed
 * allocation just leaves longer chains. */
static void timers_grow(struct scheduler *s, uint64_t want)
{
    size_t n = s->tmask + 1;
    if (want <= n)
        return;
    while (n < want && n < (SIZE_MAX / 2) / sizeof(void *))
        n *= 2;
    struct sched_timer **nb = calloc(n, sizeof *nb);
    if (!nb)
        return;
    size_t old = s->tmask + 1;
    struct sched_timer **ob = s->tbuckets;
    s->tbuckets = nb;
    s->tmask = n - 1;
    for (size_t i = 0; i < old; i++) {
        while (ob[i]) {
            struct sched_timer *t = ob[i];
            ob[i] = t->hnext;
            size_t b = timer_bucket(s, t->owner->partition, t->key);
            t->hnext = nb[b];
            nb[b] = t;
        }
    }
    free(ob);
}

static struct sched_owner *owner_find(struct scheduler *s, uint64_t partition)
{
    for (struct sched_owner *o = s->obuckets[hash_splitmix64(partition) & s->omask]; o; o = o->hnext)
        if (o->partition == partition)
            return o;
    return NULL;
}

/* ---------- peers ---------- */

static void on_peer_fd(struct evloop *loop, int fd, int events, void *arg)
{
    (void)loop; (void)fd; (void)events;
    struct sched_peer *p = arg;
    rpc_client_process(p->client);
}

/* Finds or opens the client for `endpoint`.  A new peer starts with no refs;
 * the reaper closes it if nobody takes one. */
static int peer_get(struct scheduler *s, const char *endpoint, struct sched_peer **out)
{
    for (struct sched_peer *p = s->peers; p; p = p->next) {
        if (strcmp(p->endpoint, endpoint) == 0) {
            *out = p;
            return CMQ_OK;
        }
    }
    struct sched_peer *p = calloc(1, sizeof *p);
    if (!p)
        return CMQ_ENOMEM;
    snprintf(p->endpoint, sizeof p->endpoint, "%s", endpoint);
    const char *eps[1] = {p->endpoint};
    int rc = rpc_client_open(svc_zctx(s->svc), eps, 1, &p->client);
    if (rc != CMQ_OK) {
        free(p);
        return rc;
    }
    p->fd = rpc_client_fd(p->client, 0);
    rc = evloop_add_fd(s->loop, p->fd, EVLOOP_READ, on_peer_fd, p);
    if (rc != CMQ_OK) {
        rpc_client_close(p->client);
        free(p);
        return rc;
    }
    p->next = s->peers;
    s->peers = p;
    *out = p;
    return CMQ_OK;
}

static void peer_free(struct scheduler *s, struct sched_peer *p)
{
    evloop_del_fd(s->loop, p->fd);
    rpc_client_close(p->client);
    free(p);
}

/* Closes clients that no owner names and that wait for nothing.  Runs only
 * from pump, never inside a client's callback. */
static void peers_reap(struct scheduler *s)
{
    for (struct sched_peer **pp = &s->peers; *pp;) {
        struct sched_peer *p = *pp;
        if (p->refs == 0 && rpc_client_pending(p->client) == 0) {
            *pp = p->next;
            peer_free(s, p);
        } else {
            pp = &p->next;
        }
    }
}

/* ---------- owners and timers ---------- */

static void owner_activate(struct scheduler *s, struct sched_owner *o)
{
    if (o->active)
        return;
    o->active = 1;
    o->aprev = NULL;
    o->anext = s->active;
    if (s->active)
        s->active->aprev = o;
    s->active = o;
}

static void owner_deactivate(struct scheduler *s, struct sched_owner *o)
{
    if (!o->active)
        return;
    if (o->aprev) o->aprev->anext = o->anext; else s->active = o->anext;
    if (o->anext) o->anext->aprev = o->aprev;
    o->aprev = o->anext = NULL;
    o->active = 0;
}

static void timer_free(struct scheduler *s, struct sched_timer *t)
{
    struct sched_owner *o = t->owner;
    timer_wheel_unlink(&t->we);
    struct sched_timer **pp = &s->tbuckets[timer_bucket(s, o->partition, t->key)];
    while (*pp != t)
        pp = &(*pp)->hnext;
    *pp = t->hnext;
    if (t->oprev) t->oprev->onext = t->onext; else o->all = t->onext;
    if (t->onext) t->onext->oprev = t->oprev;
    assert(o->count > 0 && s->ntimers > 0);
    o->count--;
    s->ntimers--;
    free(t);
}

/* Frees every timer of the owner and detaches its in-flight batch. */
static void owner_drop_timers(struct scheduler *s, struct sched_owner *o)
{
    if (o->batch) {
        o->batch->owner = NULL;
        o->batch = NULL;
    }
    while (o->all)
        timer_free(s, o->all);
    assert(o->count == 0 && timer_list_empty(&o->ready));
    o->retry_at_ms = 0;
    o->backoff_ms = 0;
    owner_deactivate(s, o);
}

static void owner_set_peer(struct sched_owner *o, struct sched_peer *p)
{
    if (o->peer == p)
        return;
    if (o->peer)
        o->peer->refs--;
    o->peer = p;
    if (p)
        p->refs++;
}

static void owner_delete(struct scheduler *s, struct sched_owner *o)
{
    owner_drop_timers(s, o);
    owner_set_peer(o, NULL);
    struct sched_owner **pp = &s->obuckets[hash_splitmix64(o->partition) & s->omask];
    while (*pp != o)
        pp = &(*pp)->hnext;
    *pp = o->hnext;
    s->nowners--;
    free(o);
}

/* ---------- firing ---------- */

static void on_fire_done(void *arg, const struct rpc_result *res);

static void batch_free(struct fire_batch *b)
{
    /* Unlink whatever is left first: the list's sentinel lives in b. */
    while (timer_list_pop(&b->timers))
        ;
    free(b);
}

static void owner_backoff(struct scheduler *s, struct sched_owner *o, uint64_t now)
{
    uint32_t next = o->backoff_ms ? o->backoff_ms * 2 : s->o.retry_min_ms;
    if (next > s->o.retry_max_ms || next < o->backoff_ms)
        next = s->o.retry_max_ms;
    o->backoff_ms = next;
    o->retry_at_ms = now + next;
}

static void owner_send(struct scheduler *s, struct sched_owner *o, uint64_t now)
{
    assert(!o->batch && !timer_list_empty(&o->ready) && o->peer);
    struct fire_batch *b = calloc(1, sizeof *b);
    if (!b) {
        owner_backoff(s, o, now);
        return;
    }
    b->s = s;
    b->owner = o;
    b->epoch = o->epoch;
    timer_list_init(&b->timers);
    cmq_SchedFire *f = &s->fire;
    memset(f, 0, sizeof *f);
    f->partition = o->partition;
    f->epoch = o->epoch;
    f->instance = s->instance;
    f->sent_ms = clock_wall_ms();
    struct timer_entry *e;
    while (f->timers_count < s->o.fire_batch_max && (e = timer_list_pop(&o->ready)) != NULL) {
        struct sched_timer *t = CONTAINER(e, struct sched_timer, we);
        cmq_SchedTimer *ft = &f->timers[f->timers_count++];
        ft->key = t->key;
        ft->due_ms = t->due_wall_ms;
        ft->payload.size = t->payload_len;
        memcpy(ft->payload.bytes, t->payload, t->payload_len);
        timer_list_append(&b->timers, e);
    }
    b->sent = f->timers_count;
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = rpc_pb_encode(cmq_SchedFire_fields, f, &buf, &len);
    if (rc == CMQ_OK) {
        struct rpc_opts ro = {.timeout_ms = (int)s->o.fire_timeout_ms, .attempts = 1, .peer = 0};
        rc = rpc_client_call(o->peer->client, cmq_SchedMsgType_SCHED_MSG_FIRE, buf, len, &ro,
                             on_fire_done, b);
    }
    free(buf);
    if (rc != CMQ_OK) {
        timer_list_prepend_all(&o->ready, &b->timers);
        batch_free(b);
        owner_backoff(s, o, now);
        return;
    }
    o->batch = b;
    s->batches++;
}

static void on_fire_done(void *arg, const struct rpc_result *res)
{
    struct fire_batch *b = arg;
    struct scheduler *s = b->s;
    struct sched_owner *o = b->owner;
    if (!o) {
        batch_free(b);
        return;
    }
    assert(o->batch == b);
    o->batch = NULL;
    if (s->closing) {
        /* Back to the owner, which scheduler_close frees next. */
        timer_list_prepend_all(&o->ready, &b->timers);
        batch_free(b);
        return;
    }
    if (res->status == CMQ_OK) {
        struct timer_entry *e;
        while ((e = timer_list_pop(&b->timers)) != NULL) {
            timer_free(s, CONTAINER(e, struct sched_timer, we));
            s->fired++;
        }
        o->backoff_ms = 0;
        o->retry_at_ms = 0;
        batch_free(b); /* the owner stays, with its epoch, even with no timers */
        return;
    }
    if ((res->status == CMQ_ESTALE || res->status == CMQ_ENOTLEADER) && b->epoch == o->epoch) {
        log_info("owner_ended", "partition=%" PRIu64 " epoch=%" PRIu64 " status=%s dropped=%" PRIu64,
                 o->partition, o->epoch, status_name(res->status), o->count);
        batch_free(b);
        owner_delete(s, o);
        return;
    }
    uint64_t now = clock_mono_ms();
    s->failures++;
    uint64_t suppressed;
    if (log_limit_allow(&s->fail_log, now, 10000, &suppressed))
        log_warn("fire_failed", "partition=%" PRIu64 " epoch=%" PRIu64 " endpoint=%s status=%s "
                 "timers=%u suppressed=%" PRIu64, o->partition, o->epoch, o->peer->endpoint,
                 status_name(res->status), b->sent, suppressed);
    timer_list_prepend_all(&o->ready, &b->timers);
    batch_free(b);
    owner_backoff(s, o, now);
    if (!timer_list_empty(&o->ready))
        owner_activate(s, o);
}

/* ---------- the pump: advance, send, re-arm ---------- */

static void pump(struct scheduler *s);

static void on_wake(struct evloop *loop, void *arg)
{
    (void)loop;
    struct scheduler *s = arg;
    s->wake_id = 0;
    pump(s);
}

static void arm(struct scheduler *s, uint64_t now, uint64_t at)
{
    if (at == UINT64_MAX)
        return;
    if (s->wake_id && s->wake_at_ms <= at)
        return;
    if (s->wake_id)
        evloop_cancel(s->loop, s->wake_id);
    s->wake_at_ms = at;
    s->wake_id = evloop_timer(s->loop, at > now ? at - now : 0, on_wake, s);
}

static void pump(struct scheduler *s)
{
    if (s->closing)
        return;
    for (struct sched_peer *p = s->peers; p; p = p->next)
        rpc_client_process(p->client);
    uint64_t now = clock_mono_ms();
    struct timer_list due;
    timer_list_init(&due);
    timer_wheel_advance(&s->wheel, now, &due);
    struct timer_entry *e;
    while ((e = timer_list_pop(&due)) != NULL) {
        struct sched_timer *t = CONTAINER(e, struct sched_timer, we);
        uint64_t late = now > e->due_ms ? now - e->due_ms : 0;
        s->late_ms_last = late;
        if (late > s->late_ms_max)
            s->late_ms_max = late;
        timer_list_append(&t->owner->ready, e);
        owner_activate(s, t->owner);
    }
    uint64_t next = timer_wheel_next_due(&s->wheel);
    for (struct sched_owner *o = s->active, *on; o; o = on) {
        on = o->anext;
        if (timer_list_empty(&o->ready)) {
            owner_deactivate(s, o);
            continue;
        }
        if (o->batch)
            continue;
        if (now >= o->retry_at_ms)
            owner_send(s, o, now);
        if (!o->batch && o->retry_at_ms < next)
            next = o->retry_at_ms;
    }
    for (struct sched_peer *p = s->peers; p; p = p->next) {
        int t = rpc_client_next_timeout_ms(p->client);
        if (t >= 0 && now + (uint64_t)t < next)
            next = now + (uint64_t)t;
    }
    peers_reap(s);
    arm(s, now, next);
}

static void on_prepare(struct evloop *loop, void *arg)
{
    (void)loop;
    pump(arg);
}

/* ---------- requests ---------- */

static void reply(struct rpc_call *call, struct scheduler *s, int status, const char *error,
                  const struct sched_owner *o, uint32_t applied)
{
    cmq_SchedReply r = cmq_SchedReply_init_zero;
    r.instance = s->instance;
    r.applied = applied;
    if (o) {
        r.timers = o->count;
        r.epoch = o->epoch;
    }
    uint8_t *buf = NULL;
    size_t len = 0;
    if (rpc_pb_encode(cmq_SchedReply_fields, &r, &buf, &len) != CMQ_OK) {
        rpc_reply_status(call, status, error);
        return;
    }
    rpc_reply(call, status, buf, len, NULL, error);
    free(buf);
}

static void handle_register(struct scheduler *s, struct rpc_call *call)
{
    cmq_SchedRegister *r = &s->reg;
    memset(r, 0, sizeof *r);
    if (rpc_call_decode(call, cmq_SchedRegister_fields, r) != CMQ_OK) {
        reply(call, s, CMQ_EINVAL, "malformed SchedRegister", NULL, 0);
        return;
    }
    if (!r->endpoint[0]) {
        reply(call, s, CMQ_EINVAL, "endpoint is required", NULL, 0);
        return;
    }
    uint64_t now_wall = r->now_ms ? r->now_ms : clock_wall_ms();
    for (pb_size_t i = 0; i < r->timers_count; i++) {
        uint64_t due = r->timers[i].due_ms;
        if (due > now_wall && due - now_wall > s->o.delay_max_ms) {
            reply(call, s, CMQ_EINVAL, "due_ms is further ahead than limits.delay_max_ms", NULL, 0);
            return;
        }
    }
    struct sched_owner *o = owner_find(s, r->partition);
    if (o && r->epoch < o->epoch) {
        reply(call, s, CMQ_ESTALE, "a newer epoch holds this partition", o, 0);
        return;
    }
    /* Limits, before anything changes (invariant 4).  A key repeated within
     * the request counts twice: conservative at the boundary only. */
    int drop = o && (r->epoch > o->epoch || r->replace);
    uint64_t keep = o && !drop ? o->count : 0;
    uint64_t others = s->ntimers - (o ? o->count : 0);
    uint64_t added = 0;
    for (pb_size_t i = 0; i < r->timers_count; i++)
        if (!o || drop || !timer_find(s, r->partition, r->timers[i].key))
            added++;
    if (!o && s->nowners >= s->o.owners_max) {
        s->refused++;
        reply(call, s, CMQ_ELIMIT, "limits.owners_max reached", NULL, 0);
        return;
    }
    if (keep + added > s->o.owner_timers_max) {
        s->refused++;
        reply(call, s, CMQ_ELIMIT, "limits.owner_timers_max reached", o, 0);
        return;
    }
    if (others + keep + added > s->o.timers_max) {
        s->refused++;
        reply(call, s, CMQ_ELIMIT, "limits.timers_max reached", o, 0);
        return;
    }
    struct sched_peer *peer = o ? o->peer : NULL;
    int rc = CMQ_OK;
    if (!peer || strcmp(peer->endpoint, r->endpoint) != 0)
        rc = peer_get(s, r->endpoint, &peer);
    if (rc != CMQ_OK) {
        reply(call, s, rc, rc == CMQ_EINVAL ? "endpoint is not a valid ZeroMQ address" : NULL,
              o, 0);
        return;
    }
    /* Allocate everything up front, so running out of memory changes nothing. */
    uint64_t need = 0;
    for (pb_size_t i = 0; i < r->timers_count; i++) {
        if (!o || drop || !timer_find(s, r->partition, r->timers[i].key)) {
            s->fresh[need] = malloc(sizeof(struct sched_timer));
            if (!s->fresh[need])
                goto nomem;
            need++;
        }
    }
    if (!o) {
        o = calloc(1, sizeof *o);
        if (!o)
            goto nomem;
        o->partition = r->partition;
        o->epoch = r->epoch;
        timer_list_init(&o->ready);
        size_t b = hash_splitmix64(o->partition) & s->omask;
        o->hnext = s->obuckets[b];
        s->obuckets[b] = o;
        s->nowners++;
    }
    if (drop) {
        if (r->epoch > o->epoch)
            log_info("owner_epoch", "partition=%" PRIu64 " epoch=%" PRIu64 " previous=%" PRIu64
                     " dropped=%" PRIu64 " endpoint=%s", o->partition, r->epoch, o->epoch,
                     o->count, r->endpoint);
        owner_drop_timers(s, o);
    }
    o->epoch = r->epoch;
    owner_set_peer(o, peer);
    timers_grow(s, s->ntimers + need);
    uint64_t now = clock_mono_ms();
    uint64_t used = 0;
    for (pb_size_t i = 0; i < r->timers_count; i++) {
        const cmq_SchedTimer *rt = &r->timers[i];
        struct sched_timer *t = timer_find(s, o->partition, rt->key);
        if (t) {
            timer_wheel_unlink(&t->we); /* moved: out of the wheel, ready list or batch */
        } else {
            assert(used < need);
            t = s->fresh[used++];
            memset(t, 0, sizeof *t);
            timer_entry_init(&t->we);
            t->owner = o;
            t->key = rt->key;
            size_t b = timer_bucket(s, o->partition, t->key);
            t->hnext = s->tbuckets[b];
            s->tbuckets[b] = t;
            t->onext = o->all;
            if (o->all)
                o->all->oprev = t;
            o->all = t;
            o->count++;
            s->ntimers++;
        }
        t->due_wall_ms = rt->due_ms;
        t->payload_len = (uint8_t)rt->payload.size;
        memcpy(t->payload, rt->payload.bytes, rt->payload.size);
        uint64_t delay = rt->due_ms > now_wall ? rt->due_ms - now_wall : 0;
        timer_wheel_link(&s->wheel, &t->we, now + delay);
    }
    /* Repeated keys within the request leave spare allocations. */
    while (used < need)
        free(s->fresh[used++]);
    log_debug("register", "partition=%" PRIu64 " epoch=%" PRIu64 " timers=%u replace=%d held=%"
              PRIu64, o->partition, o->epoch, (unsigned)r->timers_count, r->replace, o->count);
    reply(call, s, CMQ_OK, NULL, o, r->timers_count);
    return;
nomem:
    while (need > 0)
        free(s->fresh[--need]);
    reply(call, s, CMQ_ENOMEM, "out of memory", NULL, 0);
}

static void handle_cancel(struct scheduler *s, struct rpc_call *call)
{
    cmq_SchedCancel *c = &s->cancel;
    memset(c, 0, sizeof *c);
    if (rpc_call_decode(call, cmq_SchedCancel_fields, c) != CMQ_OK) {
        reply(call, s, CMQ_EINVAL, "malformed SchedCancel", NULL, 0);
        return;
    }
    struct sched_owner *o = owner_find(s, c->partition);
    if (!o) {
        reply(call, s, CMQ_OK, NULL, NULL, 0);
        return;
    }
    if (c->epoch < o->epoch) {
        reply(call, s, CMQ_ESTALE, "a newer epoch holds this partition", o, 0);
        return;
    }
    if (c->all || c->epoch > o->epoch) {
        /* A newer epoch's cancel also ends the older epoch's timers. */
        uint32_t n = (uint32_t)o->count;
        owner_delete(s, o);
        reply(call, s, CMQ_OK, NULL, NULL, n);
        return;
    }
    uint32_t n = 0;
    for (pb_size_t i = 0; i < c->keys_count; i++) {
        struct sched_timer *t = timer_find(s, c->partition, c->keys[i]);
        if (t) {
            timer_free(s, t);
            n++;
        }
    }
    reply(call, s, CMQ_OK, NULL, o, n);
}

static void fill_stats(struct scheduler *s, cmq_SchedStats *st)
{
    st->instance = s->instance;
    st->owners = s->nowners;
    st->timers = s->ntimers;
    uint64_t inflight = 0;
    for (size_t b = 0; b <= s->omask; b++)
        for (struct sched_owner *o = s->obuckets[b]; o; o = o->hnext)
            if (o->batch)
                for (struct timer_entry *e = o->batch->timers.head.next;
                     e != &o->batch->timers.head; e = e->next)
                    inflight++;
    st->inflight = inflight;
    st->fired = s->fired;
    st->fire_batches = s->batches;
    st->fire_failures = s->failures;
    st->refused = s->refused;
    st->late_ms_max = s->late_ms_max;
    st->late_ms_last = s->late_ms_last;
    uint64_t next = timer_wheel_next_due(&s->wheel);
    uint64_t now = clock_mono_ms();
    st->next_due_in_ms = next == TIMER_WHEEL_NEVER ? -1 : next > now ? (int64_t)(next - now) : 0;
}

static void handle_stats(struct scheduler *s, struct rpc_call *call)
{
    cmq_SchedStats st = cmq_SchedStats_init_zero;
    fill_stats(s, &st);
    rpc_reply_pb(call, cmq_SchedStats_fields, &st);
}

static void on_request(struct rpc_server *srv, struct rpc_call *call, void *arg)
{
    (void)srv;
    struct scheduler *s = arg;
    switch (rpc_call_request(call)->type) {
    case cmq_SchedMsgType_SCHED_MSG_REGISTER: handle_register(s, call); break;
    case cmq_SchedMsgType_SCHED_MSG_CANCEL: handle_cancel(s, call); break;
    case cmq_SchedMsgType_SCHED_MSG_STATS: handle_stats(s, call); break;
    default: rpc_reply_status(call, CMQ_EUNSUPPORTED, "unknown request type"); break;
    }
}

void scheduler_detail(struct scheduler *s, char *buf, size_t len)
{
    cmq_SchedStats st = cmq_SchedStats_init_zero;
    fill_stats(s, &st);
    snprintf(buf, len,
             "instance=%016" PRIx64 " owners=%" PRIu64 " timers=%" PRIu64 " inflight=%" PRIu64
             " fired=%" PRIu64 " fire_batches=%" PRIu64 " fire_failures=%" PRIu64
             " refused=%" PRIu64 " late_ms_max=%" PRIu64 " late_ms_last=%" PRIu64
             " next_due_in_ms=%" PRId64,
             st.instance, st.owners, st.timers, st.inflight, st.fired, st.fire_batches,
             st.fire_failures, st.refused, st.late_ms_max, st.late_ms_last, st.next_due_in_ms);
}

static void detail_cb(void *arg, char *buf, size_t len) { scheduler_detail(arg, buf, len); }

/* ---------- open / close ---------- */

int scheduler_opts_check(const struct scheduler_opts *o, char *err, size_t len)
{
    const char *why = NULL;
    if (o->tick_ms < 1)
        why = "wheel.tick_ms must be at least 1";
    else if (o->fire_batch_max < 1 || o->fire_batch_max > SCHED_BATCH_MAX)
        why = "fire.batch_max must be within 1..512";
    else if (o->retry_min_ms < 1 || o->retry_min_ms > o->retry_max_ms)
        why = "fire.retry_min_ms must be at least 1 and at most fire.retry_max_ms";
    else if (o->owner_timers_max > o->timers_max)
        why = "limits.owner_timers_max must not exceed limits.timers_max";
    else if (o->owners_max < 1 || o->timers_max < 1 || o->fire_timeout_ms < 1)
        why = "limits and fire.timeout_ms must be at least 1";
    if (!why)
        return CMQ_OK;
    snprintf(err, len, "%s", why);
    return CMQ_EINVAL;
}

static uint64_t new_instance(void)
{
    uint64_t x = 0;
    if (getrandom(&x, sizeof x, GRND_NONBLOCK) != (ssize_t)sizeof x)
        x = hash_splitmix64(clock_wall_ms() ^ (clock_mono_ns() << 17) ^ (uint64_t)getpid());
    return x ? x : 1;
}

int scheduler_open(struct svc *svc, const struct scheduler_opts *opts, struct scheduler **out)
{
    char err[128];
    if (scheduler_opts_check(opts, err, sizeof err) != CMQ_OK)
        return CMQ_EINVAL;
    struct scheduler *s = calloc(1, sizeof *s);
    if (!s)
        return CMQ_ENOMEM;
    s->svc = svc;
    s->loop = svc_loop(svc);
    s->o = *opts;
    s->instance = new_instance();
    timer_wheel_init(&s->wheel, opts->tick_ms, clock_mono_ms());
    s->tmask = 1023;
    s->tbuckets = calloc(s->tmask + 1, sizeof *s->tbuckets);
    size_t ob = 64;
    while (ob < opts->owners_max && ob < (1u << 20))
        ob *= 2;
    s->omask = ob - 1;
    s->obuckets = calloc(ob, sizeof *s->obuckets);
    if (!s->tbuckets || !s->obuckets) {
        scheduler_close(s);
        return CMQ_ENOMEM;
    }
    int rc = evloop_add_prepare(s->loop, on_prepare, s);
    if (rc != CMQ_OK) {
        scheduler_close(s);
        return rc;
    }
    svc_set_handler(svc, on_request, s);
    svc_set_detail(svc, detail_cb, s);
    log_info("scheduler_open", "instance=%016" PRIx64 " tick_ms=%" PRIu64 " timers_max=%" PRIu64
             " owner_timers_max=%" PRIu64 " owners_max=%" PRIu64, s->instance, opts->tick_ms,
             opts->timers_max, opts->owner_timers_max, opts->owners_max);
    *out = s;
    return CMQ_OK;
}

void scheduler_close(struct scheduler *s)
{
    if (!s)
        return;
    s->closing = 1;
    if (s->svc) {
        svc_set_handler(s->svc, NULL, NULL);
        svc_set_detail(s->svc, NULL, NULL);
    }
    if (s->wake_id)
        evloop_cancel(s->loop, s->wake_id);
    /* Clients first: their callbacks (ESHUTDOWN) still find the owners alive
     * and only free the batches. */
    while (s->peers) {
        struct sched_peer *p = s->peers;
        s->peers = p->next;
        peer_free(s, p);
    }
    if (s->obuckets) {
        for (size_t b = 0; b <= s->omask; b++) {
            while (s->obuckets[b]) {
                struct sched_owner *o = s->obuckets[b];
                o->peer = NULL; /* the peers are gone */
                owner_delete(s, o);
            }
        }
    }
    assert(s->ntimers == 0);
    free(s->obuckets);
    free(s->tbuckets);
    free(s);
}
