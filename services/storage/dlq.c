/* dlq.c: dead-letter delivery from a source partition's leader; see dlq.h.
 *
 * Per led partition, at most DLQ_SLOTS moves are in hand at once.  A slot
 * goes: SENDING (forward_send in flight) -> DONE (appended, or refused for
 * good and logged) -> ACKING (in a DlqDelivered proposal) -> free once that
 * entry applied (the move left the pending list) or failed (it is still
 * pending and is sent again: idempotent).  WAIT: the DLQ was full or the
 * node stopping; retried after DLQ_RETRY_MS.  Everything here is soft state
 * of one term: a leadership change drops it (callbacks of the old term are
 * recognised by their generation and ignored).
 */
#include "dlq.h"
#include "cmdcodec.h"
#include "forward.h"

#include "clock.h"
#include "log.h"
#include "status.h"
#include "storage.pb.h"

#include <inttypes.h>
#include <pb_encode.h>
#include <stdlib.h>
#include <string.h>

#define DLQ_SLOTS 64
#define DLQ_RETRY_MS 5000

enum { SLOT_FREE, SLOT_SENDING, SLOT_DONE, SLOT_ACKING, SLOT_WAIT };

struct dlq_pump {
    uint64_t gen;          /* changes with every reset: tells late callbacks apart */
    uint64_t term;
    struct {
        uint64_t msg_id;
        int state;
        uint64_t retry_at_ms;
    } slot[DLQ_SLOTS];
    uint64_t moved, dropped;
};

struct dlq_ctx {
    struct node *n;
    uint32_t partition;
    uint64_t gen;
    uint64_t msg_id;
    uint64_t ids[DLQ_SLOTS];
    int n_ids;
};

static uint64_t next_gen = 1;

static struct dlq_pump *pump_of(struct node *n, uint32_t partition, uint64_t gen)
{
    struct hosted *h = hosted_by_id(n, partition);
    return h && h->pump && h->pump->gen == gen ? h->pump : NULL;
}

static int slot_of(struct dlq_pump *pp, uint64_t msg_id)
{
    for (int i = 0; i < DLQ_SLOTS; i++)
        if (pp->slot[i].state != SLOT_FREE && pp->slot[i].msg_id == msg_id)
            return i;
    return -1;
}

static void on_sent(void *arg, int status, const uint64_t *ids, size_t n_ids)
{
    struct dlq_ctx *c = arg;
    struct dlq_pump *pp = status == CMQ_ESHUTDOWN ? NULL : pump_of(c->n, c->partition, c->gen);
    int i = pp ? slot_of(pp, c->msg_id) : -1;
    if (i >= 0) {
        if (status == CMQ_OK) {
            pp->slot[i].state = SLOT_DONE;
            pp->moved++;
            log_info("dead_lettered", "partition=%u msg_id=%" PRIu64 " dlq_msg_id=%" PRIu64,
                     c->partition, c->msg_id, n_ids ? ids[0] : 0);
        } else if (status == CMQ_ELIMIT) {
            pp->slot[i].state = SLOT_WAIT; /* the DLQ is full: keep the move, try later */
            pp->slot[i].retry_at_ms = clock_mono_ms() + DLQ_RETRY_MS;
        } else {
            /* the DLQ is gone (deleted) or refuses the message for good */
            pp->slot[i].state = SLOT_DONE;
            pp->dropped++;
            log_warn("dead_letter_dropped", "partition=%u msg_id=%" PRIu64 " status=%s",
                     c->partition, c->msg_id, status_name(status));
        }
        struct hosted *h = hosted_by_id(c->n, c->partition);
        if (h)
            dlq_pump(h);
    }
    free(c);
}

static void on_acked(void *arg, int status, uint64_t index, void *result)
{
    (void)index;
    (void)result;
    struct dlq_ctx *c = arg;
    struct dlq_pump *pp = status == CMQ_ESHUTDOWN ? NULL : pump_of(c->n, c->partition, c->gen);
    for (int k = 0; pp && k < c->n_ids; k++) {
        int i = slot_of(pp, c->ids[k]);
        if (i >= 0)
            pp->slot[i].state = SLOT_FREE; /* applied: not pending any more; failed: sent again */
    }
    free(c);
}

struct body_ref {
    const uint8_t *p;
    size_t n;
};

static bool enc_body(pb_ostream_t *os, const pb_field_t *field, void *const *arg)
{
    const struct body_ref *b = *arg;
    return pb_encode_tag_for_field(os, field) && pb_encode_string(os, b->p, b->n);
}

/* Starts the append of one pending move; returns 0 when the slot stays free. */
static int start(struct hosted *h, struct dlq_pump *pp, int i, const struct qsm_dlq_move *m)
{
    uint8_t *body = NULL;
    size_t body_len = 0;
    int rc = qsm_message_read(h->qsm, m->queue_id, m->msg_id, &body, &body_len, NULL);
    if (rc == CMQ_ECORRUPT || rc == CMQ_EIO) {
        /* this replica's log is damaged, not the message: a healthy replica
         * takes over and moves it (acknowledging here would lose it) */
        hosted_failed(h, rc);
        return 0;
    }
    if (rc != CMQ_OK) {
        /* the entry is unreadable: nothing to deliver; acknowledge it */
        log_error("dead_letter_unreadable", "partition=%u msg_id=%" PRIu64 " status=%s", h->id,
                  m->msg_id, status_name(rc));
        pp->slot[i] = (typeof(pp->slot[i])){m->msg_id, SLOT_DONE, 0};
        pp->dropped++;
        return 1;
    }
    cmq_SendRequest *req = calloc(1, sizeof *req);
    struct dlq_ctx *c = calloc(1, sizeof *c);
    uint8_t *buf = NULL;
    size_t len = 0;
    rc = req && c ? CMQ_OK : CMQ_ENOMEM;
    if (rc == CMQ_OK) {
        struct body_ref br = {body, body_len};
        req->queue_id = m->dlq_queue_id;
        req->messages_count = 1;
        cmq_SendItem *it = &req->messages[0];
        it->body.funcs.encode = enc_body;
        it->body.arg = &br;
        it->dedup_key = m->msg_id; /* unique in the cluster: a re-delivery is found */
        it->has_origin = true;
        it->origin.queue_id = m->queue_id;
        it->origin.msg_id = m->msg_id;
        it->origin.enqueue_time_ms = m->enqueue_ms;
        it->origin.first_dequeue_time_ms = m->first_dequeue_ms;
        it->origin.dequeue_count = m->dequeue_count;
        it->origin.reason = m->reason;
        struct qsm_stats st;
        if (qsm_stats(h->qsm, m->queue_id, &st) == CMQ_OK)
            snprintf(it->origin.queue_name, sizeof it->origin.queue_name, "%s", st.name);
        snprintf(req->client_addr, sizeof req->client_addr, "dead-letter:%u", h->id);
        rc = rpc_pb_encode(cmq_SendRequest_fields, req, &buf, &len);
    }
    if (rc == CMQ_OK) {
        *c = (struct dlq_ctx){.n = h->n, .partition = h->id, .gen = pp->gen, .msg_id = m->msg_id};
        rc = forward_send(h->n, m->dlq_queue_id, buf, len, on_sent, c);
    }
    free(buf);
    free(req);
    free(body);
    if (rc != CMQ_OK) {
        free(c);
        return 0;
    }
    pp->slot[i] = (typeof(pp->slot[i])){m->msg_id, SLOT_SENDING, 0};
    return 1;
}

static void acknowledge(struct hosted *h, struct dlq_pump *pp)
{
    struct dlq_ctx *c = calloc(1, sizeof *c);
    if (!c)
        return;
    cmq_DlqDeliveredRequest d = cmq_DlqDeliveredRequest_init_zero;
    for (int i = 0; i < DLQ_SLOTS; i++)
        if (pp->slot[i].state == SLOT_DONE && d.msg_ids_count < 64)
            d.msg_ids[d.msg_ids_count++] = pp->slot[i].msg_id;
    if (!d.msg_ids_count) {
        free(c);
        return;
    }
    uint8_t cmd[64 * 11 + 16 + CMDCODEC_FRAME_MAX];
    size_t cmd_len = cmdcodec_encode_msg(cmd, sizeof cmd, clock_wall_ms(),
                                         cmq_StorageCommand_dlq_delivered_tag,
                                         cmq_DlqDeliveredRequest_fields, &d);
    if (!cmd_len) {
        free(c);
        return;
    }
    *c = (struct dlq_ctx){.n = h->n, .partition = h->id, .gen = pp->gen};
    for (pb_size_t k = 0; k < d.msg_ids_count; k++)
        c->ids[c->n_ids++] = d.msg_ids[k];
    if (partition_propose(h->p, cmd, cmd_len, on_acked, c) != CMQ_OK) {
        free(c);
        return;
    }
    for (int i = 0; i < DLQ_SLOTS; i++)
        if (pp->slot[i].state == SLOT_DONE)
            pp->slot[i].state = SLOT_ACKING;
}

void dlq_pump(struct hosted *h)
{
    if (!h->qsm || !h->n->fwd)
        return;
    struct raft *r = partition_raft(h->p);
    if (!hosted_leader_ready(h)) {
        if (h->pump && h->pump->term)
            dlq_detach(h);
        return;
    }
    struct qsm_dlq_move moves[DLQ_SLOTS];
    size_t total = qsm_dlq_pending(h->qsm, moves, DLQ_SLOTS);
    if (!total && !h->pump)
        return;
    struct dlq_pump *pp = h->pump;
    if (pp && pp->term != raft_term(r)) {
        dlq_detach(h);
        pp = NULL;
    }
    if (!pp) {
        pp = h->pump = calloc(1, sizeof *pp);
        if (!pp)
            return;
        pp->gen = next_gen++;
        pp->term = raft_term(r);
    }
    uint64_t now = clock_mono_ms();
    size_t n = total < DLQ_SLOTS ? total : DLQ_SLOTS;
    for (size_t k = 0; k < n; k++) {
        int i = slot_of(pp, moves[k].msg_id);
        if (i >= 0) {
            if (pp->slot[i].state != SLOT_WAIT || now < pp->slot[i].retry_at_ms)
                continue;
        } else {
            for (i = 0; i < DLQ_SLOTS && pp->slot[i].state != SLOT_FREE; i++)
                ;
            if (i == DLQ_SLOTS)
                break;
        }
        if (!start(h, pp, i, &moves[k]))
            break;
    }
    acknowledge(h, pp);
}

void dlq_detach(struct hosted *h)
{
    free(h->pump);
    h->pump = NULL;
}
