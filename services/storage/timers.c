/* timers.c: partition leaders' timers in cmq-scheduler; see timers.h and
 * docs/scheduler.md §7.
 *
 * One timer per led partition, key TIMER_KEY, due at the earlier of
 * qsm_next_due_ms and tsm_next_due_ms (a topic subscription's retry).  The
 * registration state lives in struct hosted:
 *   sched_epoch   the term registered under (0: nothing registered; the next
 *                 registration carries replace = true, which supersedes a
 *                 predecessor's timers and a lost scheduler's state alike);
 *   sched_due_ms  the due time the scheduler acknowledged (UINT64_MAX: none).
 * A registration is sent when the wanted due time is earlier than the one
 * held (a later one would only fire early, which the FIRE handler checks and
 * answers by registering again), at most one at a time per partition.
 */
#include "timers.h"
#include "tsm.h"

#include "clock.h"
#include "log.h"
#include "raft.h"
#include "scheduler.pb.h"
#include "status.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define TIMER_KEY 1
#define RETRY_MS 1000   /* after a failed registration */
#define SCHED_TIMEOUT_MS 1000

struct reg {
    struct node *n;
    uint32_t partition;
    uint64_t epoch;
    uint64_t due_ms;
};

int timers_open(struct node *n)
{
    if (!n->cfg->scheduler[0])
        return CMQ_OK;
    const char *ep = n->cfg->scheduler;
    int rc = rpc_client_open(svc_zctx(n->svc), &ep, 1, &n->sched);
    if (rc != CMQ_OK) {
        n->sched = NULL;
        return rc;
    }
    return svc_watch_client(n->svc, n->sched);
}

void timers_close(struct node *n)
{
    struct rpc_client *c = n->sched;
    n->sched = NULL; /* the callbacks of pending requests (CMQ_ESHUTDOWN) touch nothing */
    rpc_client_close(c);
}

static void reset(struct hosted *h)
{
    h->sched_epoch = 0;
    h->sched_due_ms = UINT64_MAX;
}

/* A new scheduler life: every partition registers again (replace = true). */
static void instance_seen(struct node *n, uint64_t instance)
{
    if (!instance || instance == n->sched_instance)
        return;
    if (n->sched_instance)
        log_info("scheduler_restarted", "old=%016" PRIx64 " new=%016" PRIx64
                 " action=register_again", n->sched_instance, instance);
    n->sched_instance = instance;
    for (int i = 0; i < n->n_parts; i++)
        if (!n->parts[i]->sched_inflight)
            reset(n->parts[i]);
        else
            n->parts[i]->sched_epoch = UINT64_MAX; /* never a term: forces replace */
}

static void on_register(void *arg, const struct rpc_result *res)
{
    struct reg *g = arg;
    struct node *n = g->n;
    struct hosted *h = n->sched ? hosted_by_id(n, g->partition) : NULL;
    cmq_SchedReply r = cmq_SchedReply_init_zero;
    int have = res->msg && rpc_pb_decode(cmq_SchedReply_fields, &r, res->msg->body,
                                         res->msg->body_len) == CMQ_OK;
    if (h) {
        h->sched_inflight = 0;
        int forced = h->sched_epoch == UINT64_MAX;
        if (res->status == CMQ_OK && !forced) {
            h->sched_epoch = g->epoch;
            h->sched_due_ms = g->due_ms;
            h->sched_failed = 0;
        } else {
            reset(h);
            if (res->status != CMQ_OK) {
                h->sched_failed = 1;
                h->sched_retry_ms = clock_mono_ms() + RETRY_MS;
                static struct log_limit lim;
                uint64_t sup;
                if (log_limit_allow(&lim, clock_mono_ms(), 10000, &sup))
                    log_warn("scheduler_register_failed", "partition=%u status=%s "
                             "action=poll suppressed=%" PRIu64, g->partition,
                             status_name(res->status), sup);
            }
        }
    }
    if (have && (res->status == CMQ_OK || res->status == CMQ_ESTALE))
        instance_seen(n, r.instance);
    free(g);
}

static void send_register(struct hosted *h, uint64_t epoch, uint64_t due, int replace)
{
    struct node *n = h->n;
    cmq_SchedRegister req = cmq_SchedRegister_init_zero;
    req.partition = h->id;
    req.epoch = epoch;
    snprintf(req.endpoint, sizeof req.endpoint, "%s",
             n->cfg->advertise_rpc[0] ? n->cfg->advertise_rpc : n->cfg->common.listen);
    req.now_ms = clock_wall_ms();
    req.replace = replace;
    if (due != UINT64_MAX) {
        req.timers_count = 1;
        req.timers[0].key = TIMER_KEY;
        req.timers[0].due_ms = due;
    }
    uint8_t *buf;
    size_t len;
    struct reg *g = malloc(sizeof *g);
    if (!g)
        return;
    *g = (struct reg){n, h->id, epoch, due};
    if (rpc_pb_encode(cmq_SchedRegister_fields, &req, &buf, &len) != CMQ_OK) {
        free(g);
        return;
    }
    struct rpc_opts o = {.timeout_ms = SCHED_TIMEOUT_MS, .attempts = 1, .peer = 0};
    if (rpc_client_call(n->sched, cmq_SchedMsgType_SCHED_MSG_REGISTER, buf, len, &o, on_register,
                        g) == CMQ_OK)
        h->sched_inflight = 1;
    else
        free(g);
    free(buf);
}

static void on_cancel(void *arg, const struct rpc_result *res)
{
    (void)arg;
    (void)res; /* best effort: a newer epoch supersedes us anyway */
}

/* The queue machine's due time, or a topic retry's when earlier.  A retry
 * already past (its subscription busy with another delivery) is left to the
 * pump that runs on every raft tick and after every progress entry: it would
 * otherwise hide the queue machine's due time from the scheduler. */
static uint64_t next_due(const struct hosted *h, uint64_t now)
{
    uint64_t q = qsm_next_due_ms(h->qsm), t = h->tsm ? tsm_next_due_ms(h->tsm) : UINT64_MAX;
    return t > now && t < q ? t : q;
}

void timers_sync(struct hosted *h)
{
    struct node *n = h->n;
    if (!n->sched || h->sched_inflight)
        return;
    struct raft *r = partition_raft(h->p);
    if (!partition_is_leader(h->p)) {
        if (h->sched_epoch && h->sched_epoch != UINT64_MAX) {
            cmq_SchedCancel c = cmq_SchedCancel_init_zero;
            c.partition = h->id;
            c.epoch = h->sched_epoch;
            c.all = true;
            uint8_t *buf;
            size_t len;
            if (rpc_pb_encode(cmq_SchedCancel_fields, &c, &buf, &len) == CMQ_OK) {
                struct rpc_opts o = {.timeout_ms = SCHED_TIMEOUT_MS, .attempts = 1, .peer = 0};
                rpc_client_call(n->sched, cmq_SchedMsgType_SCHED_MSG_CANCEL, buf, len, &o,
                                on_cancel, NULL);
                free(buf);
            }
        }
        reset(h);
        h->sched_failed = 0;
        return;
    }
    if (h->sched_failed && clock_mono_ms() < h->sched_retry_ms)
        return;
    uint64_t term = raft_term(r);
    uint64_t now = clock_wall_ms();
    if (h->sched_epoch == term && h->sched_due_ms != UINT64_MAX &&
        h->sched_due_ms + (uint64_t)n->cfg->sched_fallback_ms < now) {
        /* the timer we registered never fired: the scheduler lost it (it
         * restarted, or is down).  Register again, replacing: that also
         * learns a new instance. */
        reset(h);
    }
    uint64_t due = next_due(h, now);
    if (h->sched_epoch == term && due >= h->sched_due_ms)
        return; /* held already (an earlier timer fires, finds nothing due, registers again) */
    if (h->sched_epoch == term && due == UINT64_MAX)
        return;
    /* Already due: the raft-tick poll proposes the Tick itself (the timer is
     * not held, so it does not wait for the fallback).  Registering a past
     * due time would only bounce FIREs while the Tick commits. */
    if (due <= now && h->sched_epoch == term)
        return;
    send_register(h, term, due, h->sched_epoch != term);
}

int timers_covered(const struct hosted *h, uint64_t due_ms)
{
    return h->n->sched && !h->sched_failed && h->sched_epoch &&
           h->sched_epoch == raft_term(partition_raft(h->p)) && h->sched_due_ms <= due_ms;
}

int timers_handle(struct node *n, struct rpc_call *call)
{
    if (rpc_call_request(call)->type != cmq_SchedMsgType_SCHED_MSG_FIRE)
        return 0;
    cmq_SchedFire f = cmq_SchedFire_init_zero;
    if (rpc_call_decode(call, cmq_SchedFire_fields, &f) != CMQ_OK) {
        rpc_reply_status(call, CMQ_EINVAL, "bad fire");
        return 1;
    }
    struct hosted *h = f.partition <= UINT32_MAX ? hosted_by_id(n, (uint32_t)f.partition) : NULL;
    if (!h || !partition_is_leader(h->p) || raft_term(partition_raft(h->p)) != f.epoch) {
        rpc_reply_status(call, CMQ_ESTALE, "not this partition's leader at that epoch");
        if (h && h->sched_epoch == f.epoch)
            reset(h);
        return 1;
    }
    cmq_SchedFireAck ack = cmq_SchedFireAck_init_zero;
    rpc_reply_pb(call, cmq_SchedFireAck_fields, &ack);
    if (h->sched_epoch == f.epoch)
        h->sched_due_ms = UINT64_MAX; /* taken: the scheduler forgets it */
    instance_seen(n, f.instance);
    /* A fire is a hint, not a clock: the Tick is stamped with our clock and
     * applies only what is due by it; if nothing is due yet (our clock is
     * behind, or the due time moved), timers_sync registers it again. */
    uint64_t now = clock_wall_ms();
    if (qsm_next_due_ms(h->qsm) <= now)
        n->ops->propose_tick(h);
    if (h->tsm && tsm_next_due_ms(h->tsm) <= now)
        n->ops->wake_topics(n); /* a retry is due: the raft tick's pump stays the fallback */
    timers_sync(h);
    return 1;
}
