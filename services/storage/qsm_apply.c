/* qsm_apply.c: the top of the queue state machine: qsm_apply decodes each
 * committed StorageCommand and dispatches it to its command, and the queue
 * commands themselves live here (CreateQueue, DropQueue, SetQueueAttributes,
 * with the attribute defaults and bounds).  A command that fails half-way for
 * lack of memory puts the replica in its failed state (invariant 3). */
#include "qsm_internal.h"

#include "cmdcodec.h"
#include "status.h"

#include <assert.h>
#include <pb_decode.h>
#include <stdio.h>
#include <string.h>

static void attrs_default(struct qsm_attrs *a)
{
    memset(a, 0, sizeof *a);
    a->max_msg_heap_num = 10000000;
    a->polling_wait_s = 0;
    a->visibility_timeout_s = 30;
    a->max_msg_size = 65536;
    a->msg_retention_s = 345600;
    a->rewind_s = 0;
    a->dlq_policy = QSM_DLQ_NONE;
    a->ordered = false;
    a->max_inflight_num = QSM_INFLIGHT_DEFAULT;
}

/* Merges `in` over `a` (absent fields keep their value) and validates the
 * result.  `creating` allows `ordered`. */
static int attrs_merge(struct qsm_attrs *a, const cmq_StorageQueueAttributes *in, bool has_in,
                       bool clear_dlq, bool creating, uint64_t self_id)
{
    struct qsm_attrs n = *a;
    if (has_in) {
        if (in->has_max_msg_heap_num)
            n.max_msg_heap_num = in->max_msg_heap_num;
        if (in->has_polling_wait_seconds)
            n.polling_wait_s = in->polling_wait_seconds;
        if (in->has_visibility_timeout_s)
            n.visibility_timeout_s = in->visibility_timeout_s;
        if (in->has_max_msg_size)
            n.max_msg_size = in->max_msg_size;
        if (in->has_msg_retention_s)
            n.msg_retention_s = in->msg_retention_s;
        if (in->has_rewind_s)
            n.rewind_s = in->rewind_s;
        if (in->has_max_inflight_num)
            n.max_inflight_num = in->max_inflight_num;
        if (in->has_ordered) {
            if (!creating && in->ordered != a->ordered)
                return CMQ_EINVAL;
            n.ordered = in->ordered;
        }
        if (in->has_dead_letter_policy) {
            const cmq_StorageDeadLetterPolicy *d = &in->dead_letter_policy;
            if (d->dead_letter_queue_id == 0 || d->dead_letter_queue_id == self_id)
                return CMQ_EINVAL;
            n.dlq_queue_id = d->dead_letter_queue_id;
            n.dlq_max_receive_count = 0;
            n.dlq_max_ttl_s = 0;
            if (d->policy == 0) {
                n.dlq_policy = QSM_DLQ_RECEIVES;
                n.dlq_max_receive_count = d->max_receive_count;
            } else if (d->policy == 1) {
                n.dlq_policy = QSM_DLQ_TTL;
                n.dlq_max_ttl_s = d->max_time_to_live_s;
            } else {
                return CMQ_EINVAL;
            }
        }
    }
    if (clear_dlq) {
        n.dlq_policy = QSM_DLQ_NONE;
        n.dlq_queue_id = 0;
        n.dlq_max_receive_count = 0;
        n.dlq_max_ttl_s = 0;
    }
    if (n.max_msg_heap_num < 1000000 || n.max_msg_heap_num > 1000000000)
        return CMQ_EINVAL;
    if (n.polling_wait_s > 30)
        return CMQ_EINVAL;
    if (n.visibility_timeout_s < 1 || n.visibility_timeout_s > QSM_VISIBILITY_S_MAX)
        return CMQ_EINVAL;
    if (n.max_msg_size < 1024 || n.max_msg_size > QSM_BODY_BYTES_MAX)
        return CMQ_EINVAL;
    if (n.msg_retention_s < 60 || n.msg_retention_s > 1296000)
        return CMQ_EINVAL;
    if (n.rewind_s > n.msg_retention_s)
        return CMQ_EINVAL;
    if (n.max_inflight_num < 1 || n.max_inflight_num > QSM_INFLIGHT_MAX)
        return CMQ_EINVAL;
    if (n.dlq_policy == QSM_DLQ_RECEIVES &&
        (n.dlq_max_receive_count < 1 || n.dlq_max_receive_count > 1000))
        return CMQ_EINVAL;
    if (n.dlq_policy == QSM_DLQ_TTL &&
        (n.dlq_max_ttl_s < 300 || n.dlq_max_ttl_s > 43200 || n.dlq_max_ttl_s >= n.msg_retention_s))
        return CMQ_EINVAL;
    *a = n;
    return CMQ_OK;
}

/* ---- commands ---- */

static int cmd_create(struct qsm *q, uint64_t index, const cmq_StorageCreateQueueRequest *c,
                      struct qsm_result *res)
{
    res->queue_id = c->queue_id;
    if (c->queue_id == 0 || strnlen(c->name, sizeof c->name) > QSM_NAME_LEN_MAX)
        return CMQ_EINVAL;
    uint32_t at;
    if (qsm_queue_find(q, c->queue_id, &at))
        return CMQ_EEXIST;
    if (q->n_queues >= QSM_QUEUES_MAX)
        return CMQ_ELIMIT;
    struct qsm_attrs a;
    attrs_default(&a);
    int rc = attrs_merge(&a, &c->attributes, c->has_attributes, false, true, c->queue_id);
    if (rc)
        return rc;
    if (q->n_queues == q->cap_queues) {
        uint32_t cap = q->cap_queues ? q->cap_queues * 2 : 8;
        struct queue **v = realloc(q->queues, cap * sizeof *v);
        if (!v)
            return CMQ_ENOMEM;
        q->queues = v;
        q->cap_queues = cap;
    }
    struct queue *qu = qsm_queue_new(c->queue_id);
    if (!qu)
        return CMQ_ENOMEM;
    snprintf(qu->name, sizeof qu->name, "%s", c->name);
    qu->a = a;
    qu->create_index = index;
    qu->create_ms = q->now_ms;
    qu->modify_ms = q->now_ms;
    memmove(&q->queues[at + 1], &q->queues[at], (q->n_queues - at) * sizeof *q->queues);
    q->queues[at] = qu;
    q->n_queues++;
    res->attrs = a;
    return CMQ_OK;
}

static int cmd_drop(struct qsm *q, const cmq_StorageDropQueueRequest *c, struct qsm_result *res)
{
    uint32_t at;
    res->queue_id = c->queue_id;
    struct queue *qu = qsm_queue_find(q, c->queue_id, &at);
    if (!qu)
        return CMQ_ENOTFOUND;
    qsm_queue_free(qu);
    memmove(&q->queues[at], &q->queues[at + 1], (q->n_queues - at - 1) * sizeof *q->queues);
    q->n_queues--;
    return CMQ_OK;
}

static int cmd_set(struct qsm *q, const cmq_StorageSetQueueAttributesRequest *c,
                   struct qsm_result *res)
{
    res->queue_id = c->queue_id;
    struct queue *qu = qsm_queue_find(q, c->queue_id, NULL);
    if (!qu)
        return CMQ_ENOTFOUND;
    uint32_t old_rewind = qu->a.rewind_s;
    int rc = attrs_merge(&qu->a, &c->attributes, c->has_attributes, c->clear_dead_letter_policy,
                         false, qu->id);
    if (rc)
        return rc;
    qu->modify_ms = q->now_ms;
    if (old_rewind && !qu->a.rewind_s) {
        /* spec §9.3: disabling rewind purges the retained messages */
        qu->retained = 0;
        for (uint32_t j = 0; j < qu->n_spans; j++)
            qu->spans[j].n_deleted = 0;
        qsm_spans_trim(qu, q->now_ms); /* drops the spans behind the cursor */
        if (qu->n_spans) {
            /* and the passed part of the cursor's span */
            assert(qu->cur_span == 0);
            struct span *sp = &qu->spans[0];
            uint64_t idx = POS_INDEX(qu->cur_pos);
            if (idx > sp->last) {
                qsm_span_remove(qu, 0);
                qsm_spans_trim(qu, q->now_ms); /* resets the cursor when none is left */
            } else if (idx > sp->first) {
                sp->first = idx;
                sp->n_live = sat_sub(sp->n_live, qu->cur_passed);
                qu->cur_passed = 0;
            }
        }
    }
    qu->sweep_due_ms = q->now_ms; /* retention or TTL may have shrunk: let the next Tick look */
    res->attrs = qu->a;
    return CMQ_OK;
}

/* ---- apply ---- */

int qsm_apply(struct qsm *q, uint64_t index, uint64_t term, const uint8_t *cmd, size_t len,
              struct qsm_result *res)
{
    return qsm_apply_peeked(q, index, term, cmd, len, NULL, res);
}

int qsm_apply_peeked(struct qsm *q, uint64_t index, uint64_t term, const uint8_t *cmd, size_t len,
                     const struct cmdcodec_view *pv, struct qsm_result *res)
{
    bool skip = res->skip_bodies;
    memset(res, 0, sizeof *res);
    res->skip_bodies = skip;
    if (q->failed)
        return res->status = q->failed;
    assert(index > q->applied_index && index <= QSM_INDEX_MAX);
    q->applied_index = index;
    q->applied_term = term;
    if (len == 0)
        return res->status = CMQ_OK;
    struct cmdcodec_view own;
    const struct cmdcodec_view *v = pv ? pv : &own;
    if (!pv && !cmdcodec_peek(cmd, len, &own))
        return res->status = CMQ_EINVAL;
    cmq_StorageCommand *c = q->cmd;
    if (v->kind == cmq_StorageCommand_send_tag) {
        if (!qsm_parse_send(v->member, v->member_len, &q->send))
            return res->status = CMQ_EINVAL;
        memset(c, 0, sizeof *c);
        c->which_cmd = cmq_StorageCommand_send_tag;
        c->leader_ms = v->leader_ms;
    } else if (!qsm_decode_cmd(cmd, len, c)) {
        return res->status = CMQ_EINVAL;
    }
    q->now_ms = u64_max(q->now_ms, c->leader_ms);
    int rc;
    switch (c->which_cmd) {
    case cmq_StorageCommand_create_queue_tag:
        res->type = cmq_StorageMsgType_STORAGE_MSG_CREATE_QUEUE;
        rc = cmd_create(q, index, &c->cmd.create_queue, res);
        break;
    case cmq_StorageCommand_drop_queue_tag:
        res->type = cmq_StorageMsgType_STORAGE_MSG_DROP_QUEUE;
        rc = cmd_drop(q, &c->cmd.drop_queue, res);
        break;
    case cmq_StorageCommand_set_queue_attributes_tag:
        res->type = cmq_StorageMsgType_STORAGE_MSG_SET_QUEUE_ATTRIBUTES;
        rc = cmd_set(q, &c->cmd.set_queue_attributes, res);
        break;
    case cmq_StorageCommand_send_tag:
        res->type = cmq_StorageMsgType_STORAGE_MSG_SEND;
        rc = qsm_cmd_send(q, index, &q->send, c->leader_ms, res);
        break;
    case cmq_StorageCommand_receive_tag:
        res->type = cmq_StorageMsgType_STORAGE_MSG_RECEIVE;
        rc = qsm_cmd_receive(q, index, &c->cmd.receive, res);
        break;
    case cmq_StorageCommand_delete_msgs_tag:
        res->type = cmq_StorageMsgType_STORAGE_MSG_DELETE;
        rc = qsm_cmd_delete(q, &c->cmd.delete_msgs, res);
        break;
    case cmq_StorageCommand_change_visibility_tag:
        res->type = cmq_StorageMsgType_STORAGE_MSG_CHANGE_VISIBILITY;
        rc = qsm_cmd_change_visibility(q, &c->cmd.change_visibility, res);
        break;
    case cmq_StorageCommand_rewind_tag:
        res->type = cmq_StorageMsgType_STORAGE_MSG_REWIND;
        rc = qsm_cmd_rewind(q, &c->cmd.rewind, res);
        break;
    case cmq_StorageCommand_tick_tag:
        rc = qsm_cmd_tick(q, res);
        break;
    case cmq_StorageCommand_dlq_delivered_tag:
        rc = qsm_cmd_dlq_delivered(q, &c->cmd.dlq_delivered);
        break;
    case cmq_StorageCommand_txn_confirm_tag: /* type 0: the lead wakes parked receivers */
        rc = qsm_cmd_txn_confirm(q, &c->cmd.txn_confirm, res);
        break;
    default:
        rc = CMQ_EINVAL;
        break;
    }
    pb_release(cmq_StorageCommand_fields, q->cmd);
    for (uint32_t i = 0; i < q->n_queues; i++)
        if (q->queues[i]->oom)
            rc = CMQ_ENOMEM;
    if (rc == CMQ_ENOMEM || rc == CMQ_EINTERNAL)
        rc = qsm_fail(q, rc); /* a half-applied command: this replica can no longer be trusted */
    if (q->failed)
        rc = q->failed;
    return res->status = rc;
}
