/* qsm_fixture.c: the fake log and replicas behind the qsm tests. */
#include "qsm_fixture.h"

#include <pb_encode.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct fx F;

int fx_log_read(void *arg, uint64_t index, uint8_t **buf, size_t *len)
{
    struct flog *l = arg;
    l->reads++;
    if (index < l->first || index > l->n)
        return CMQ_ENOTFOUND;
    *len = l->len[index];
    *buf = malloc(*len ? *len : 1);
    cr_assert_not_null(*buf);
    memcpy(*buf, l->buf[index], *len);
    return CMQ_OK;
}

uint64_t flog_append(struct flog *l, uint8_t *buf, size_t len)
{
    if (l->n + 1 >= l->cap) {
        l->cap = l->cap ? l->cap * 2 : 1024;
        l->buf = realloc(l->buf, l->cap * sizeof *l->buf);
        l->len = realloc(l->len, l->cap * sizeof *l->len);
        cr_assert(l->buf && l->len);
    }
    l->n++;
    l->buf[l->n] = buf;
    l->len[l->n] = len;
    return l->n;
}

void fx_setup(int replicas)
{
    memset(&F, 0, sizeof F);
    F.log.first = 1;
    F.replicas = replicas;
    F.now_ms = UINT64_C(1700000000000);
    struct qsm_reader rd = {.read_entry = fx_log_read, .arg = &F.log};
    for (int i = 0; i < replicas; i++)
        cr_assert_eq(qsm_create(FX_PARTITION, &rd, &F.q[i]), CMQ_OK);
}

void fx_teardown(void)
{
    qsm_result_release(&F.res);
    for (int i = 0; i < F.replicas; i++)
        qsm_destroy(F.q[i]);
    for (uint64_t i = 1; i <= F.log.n; i++)
        free(F.log.buf[i]);
    free(F.log.buf);
    free(F.log.len);
    memset(&F, 0, sizeof F);
}

void fx_sleep_ms(uint64_t ms)
{
    F.now_ms += ms;
}

static void same_result(const struct qsm_result *a, const struct qsm_result *b)
{
    cr_assert_eq(a->status, b->status, "replicas disagree on status: %d vs %d", a->status,
                 b->status);
    cr_assert_eq(a->n_msg_ids, b->n_msg_ids);
    cr_assert_arr_eq(a->msg_ids, b->msg_ids, a->n_msg_ids * sizeof a->msg_ids[0]);
    cr_assert_eq(a->n_delivered, b->n_delivered, "replicas disagree on deliveries");
    for (uint32_t i = 0; i < a->n_delivered; i++) {
        const struct qsm_delivery *x = &a->delivered[i], *y = &b->delivered[i];
        cr_assert(x->msg_id == y->msg_id && x->receipt_handle == y->receipt_handle &&
                  x->next_visible_ms == y->next_visible_ms && x->dequeue_count == y->dequeue_count &&
                  x->enqueue_ms == y->enqueue_ms && x->body_len == y->body_len);
        cr_assert_arr_eq(x->body, y->body, x->body_len);
    }
    cr_assert_eq(a->n_statuses, b->n_statuses);
    cr_assert_arr_eq(a->statuses, b->statuses, a->n_statuses * sizeof a->statuses[0]);
    cr_assert_eq(a->n_txn, b->n_txn, "replicas disagree on check-backs");
    cr_assert_arr_eq(a->txn, b->txn, a->n_txn * sizeof a->txn[0]);
    cr_assert_eq(a->n_dlq, b->n_dlq);
    for (uint32_t i = 0; i < a->n_dlq; i++)
        cr_assert_eq(a->dlq[i].msg_id, b->dlq[i].msg_id);
}

int fx_apply(cmq_StorageCommand *cmd)
{
    cmd->leader_ms = F.now_ms;
    size_t len = 0;
    cr_assert(pb_get_encoded_size(&len, cmq_StorageCommand_fields, cmd));
    uint8_t *buf = malloc(len ? len : 1);
    pb_ostream_t os = pb_ostream_from_buffer(buf, len);
    cr_assert(pb_encode(&os, cmq_StorageCommand_fields, cmd), "%s", PB_GET_ERROR(&os));
    uint64_t index = flog_append(&F.log, buf, len);
    qsm_result_release(&F.res);
    F.res.skip_bodies = false;
    int rc = qsm_apply(F.q[0], index, 1, buf, len, &F.res);
    cr_assert_eq(rc, F.res.status);
    for (int i = 1; i < F.replicas; i++) {
        struct qsm_result r = {0};
        /* followers skip bodies except one, so both paths are exercised */
        r.skip_bodies = i == 2;
        qsm_apply(F.q[i], index, 1, buf, len, &r);
        if (!r.skip_bodies)
            same_result(&F.res, &r);
        else
            cr_assert_eq(r.status, F.res.status);
        qsm_result_release(&r);
    }
    return rc;
}

/* ---- commands ---- */

int fx_create(uint64_t qid, const cmq_StorageQueueAttributes *a)
{
    cmq_StorageCommand c = cmq_StorageCommand_init_zero;
    c.which_cmd = cmq_StorageCommand_create_queue_tag;
    c.cmd.create_queue.queue_id = qid;
    snprintf(c.cmd.create_queue.name, sizeof c.cmd.create_queue.name, "q%llu",
             (unsigned long long)qid);
    if (a) {
        c.cmd.create_queue.has_attributes = true;
        c.cmd.create_queue.attributes = *a;
    }
    return fx_apply(&c);
}

int fx_create_default(uint64_t qid)
{
    return fx_create(qid, NULL);
}

int fx_set(uint64_t qid, const cmq_StorageQueueAttributes *a, bool clear_dlq)
{
    cmq_StorageCommand c = cmq_StorageCommand_init_zero;
    c.which_cmd = cmq_StorageCommand_set_queue_attributes_tag;
    c.cmd.set_queue_attributes.queue_id = qid;
    if (a) {
        c.cmd.set_queue_attributes.has_attributes = true;
        c.cmd.set_queue_attributes.attributes = *a;
    }
    c.cmd.set_queue_attributes.clear_dead_letter_policy = clear_dlq;
    return fx_apply(&c);
}

int fx_drop(uint64_t qid)
{
    cmq_StorageCommand c = cmq_StorageCommand_init_zero;
    c.which_cmd = cmq_StorageCommand_drop_queue_tag;
    c.cmd.drop_queue.queue_id = qid;
    return fx_apply(&c);
}

static bool enc_body(pb_ostream_t *os, const pb_field_t *field, void *const *arg)
{
    const char *b = *arg;
    return pb_encode_tag_for_field(os, field) &&
           pb_encode_string(os, (const pb_byte_t *)b, strlen(b));
}

void fx_send_request(cmq_SendRequest *s, uint64_t qid, const char *const *bodies, int n,
                     uint32_t delay_s, const char *group)
{
    memset(s, 0, sizeof *s);
    s->queue_id = qid;
    s->messages_count = (pb_size_t)n;
    for (int i = 0; i < n; i++) {
        s->messages[i].body.funcs.encode = enc_body;
        s->messages[i].body.arg = (void *)bodies[i];
        s->messages[i].delay_seconds = delay_s;
        if (group)
            snprintf(s->messages[i].group_id, sizeof s->messages[i].group_id, "%s", group);
    }
}

int fx_send(uint64_t qid, const char *const *bodies, int n, uint32_t delay_s, const char *group)
{
    cmq_StorageCommand c = cmq_StorageCommand_init_zero;
    c.which_cmd = cmq_StorageCommand_send_tag;
    fx_send_request(&c.cmd.send, qid, bodies, n, delay_s, group);
    return fx_apply(&c);
}

static uint64_t send_one(uint64_t qid, const char *body, uint32_t delay_s, const char *group)
{
    cr_assert_eq(fx_send(qid, &body, 1, delay_s, group), CMQ_OK);
    cr_assert_eq(F.res.n_msg_ids, 1);
    return F.res.msg_ids[0];
}

uint64_t send_ok(uint64_t qid, const char *body)
{
    return send_one(qid, body, 0, NULL);
}

uint64_t send_delayed(uint64_t qid, const char *body, uint32_t delay_s)
{
    return send_one(qid, body, delay_s, NULL);
}

uint64_t send_group(uint64_t qid, const char *body, const char *group)
{
    return send_one(qid, body, 0, group);
}

int fx_receive(uint64_t qid, uint32_t count, uint32_t vis_s)
{
    cmq_StorageCommand c = cmq_StorageCommand_init_zero;
    c.which_cmd = cmq_StorageCommand_receive_tag;
    c.cmd.receive.queue_id = qid;
    c.cmd.receive.count = count;
    c.cmd.receive.visibility_timeout_s = vis_s;
    return fx_apply(&c);
}

int fx_delete(uint64_t qid, const uint64_t *handles, int n)
{
    cmq_StorageCommand c = cmq_StorageCommand_init_zero;
    c.which_cmd = cmq_StorageCommand_delete_msgs_tag;
    c.cmd.delete_msgs.queue_id = qid;
    c.cmd.delete_msgs.receipt_handles_count = (pb_size_t)n;
    for (int i = 0; i < n; i++)
        c.cmd.delete_msgs.receipt_handles[i] = handles[i];
    return fx_apply(&c);
}

int fx_delete1(uint64_t qid, uint64_t handle)
{
    int rc = fx_delete(qid, &handle, 1);
    if (rc != CMQ_OK)
        return rc;
    cr_assert_eq(F.res.n_statuses, 1);
    return F.res.statuses[0];
}

int fx_change_visibility(uint64_t qid, uint64_t handle, uint32_t vis_s)
{
    cmq_StorageCommand c = cmq_StorageCommand_init_zero;
    c.which_cmd = cmq_StorageCommand_change_visibility_tag;
    c.cmd.change_visibility.queue_id = qid;
    c.cmd.change_visibility.receipt_handle = handle;
    c.cmd.change_visibility.visibility_timeout_s = vis_s;
    return fx_apply(&c);
}

int fx_rewind(uint64_t qid, uint64_t start_s)
{
    cmq_StorageCommand c = cmq_StorageCommand_init_zero;
    c.which_cmd = cmq_StorageCommand_rewind_tag;
    c.cmd.rewind.queue_id = qid;
    c.cmd.rewind.start_consume_time_s = start_s;
    return fx_apply(&c);
}

int fx_tick(void)
{
    cmq_StorageCommand c = cmq_StorageCommand_init_zero;
    c.which_cmd = cmq_StorageCommand_tick_tag;
    return fx_apply(&c);
}

/* ---- assertions ---- */

struct qsm_delivery receive_one(uint64_t qid, uint64_t msg_id)
{
    int rc = fx_receive(qid, 1, 0);
    cr_assert_eq(rc, CMQ_OK, "expected a message (%llu), got status %d",
                 (unsigned long long)msg_id, rc);
    cr_assert_eq(F.res.n_delivered, 1);
    struct qsm_delivery d = F.res.delivered[0];
    if (msg_id)
        cr_assert_eq(d.msg_id, msg_id, "expected msg %llx, got %llx", (unsigned long long)msg_id,
                     (unsigned long long)d.msg_id);
    cr_assert_eq(qsm_id_partition(d.msg_id), FX_PARTITION);
    cr_assert_eq(qsm_id_partition(d.receipt_handle), FX_PARTITION);
    d.body = NULL; /* owned by F.res */
    return d;
}

void assert_empty(uint64_t qid)
{
    int rc = fx_receive(qid, QSM_BATCH_MAX, 0);
    cr_assert_eq(rc, CMQ_EEMPTY, "expected no message, got status %d (%u delivered, first %llx)",
                 rc, F.res.n_delivered,
                 F.res.n_delivered ? (unsigned long long)F.res.delivered[0].msg_id : 0ull);
}

void assert_counts(uint64_t qid, uint64_t active, uint64_t inactive, uint64_t delayed)
{
    struct qsm_stats st;
    cr_assert_eq(qsm_stats(F.q[0], qid, &st), CMQ_OK);
    cr_assert(st.active == active && st.inactive == inactive && st.delayed == delayed,
              "counts: active %llu inactive %llu delayed %llu, expected %llu %llu %llu",
              (unsigned long long)st.active, (unsigned long long)st.inactive,
              (unsigned long long)st.delayed, (unsigned long long)active,
              (unsigned long long)inactive, (unsigned long long)delayed);
}

int drain(uint64_t qid, uint64_t *ids, int max, bool delete_them)
{
    int n = 0;
    for (;;) {
        int rc = fx_receive(qid, QSM_BATCH_MAX, 0);
        if (rc == CMQ_EEMPTY)
            return n;
        cr_assert_eq(rc, CMQ_OK, "drain: status %d", rc);
        uint64_t handles[QSM_BATCH_MAX];
        uint32_t k = F.res.n_delivered;
        for (uint32_t i = 0; i < k; i++) {
            if (ids && n < max)
                ids[n] = F.res.delivered[i].msg_id;
            n++;
            handles[i] = F.res.delivered[i].receipt_handle;
        }
        if (delete_them) {
            cr_assert_eq(fx_delete(qid, handles, (int)k), CMQ_OK);
            for (uint32_t i = 0; i < k; i++)
                cr_assert_eq(F.res.statuses[i], CMQ_OK);
        }
    }
}

struct sbuf {
    uint8_t *p;
    size_t n;
};

static int sink(void *arg, const void *buf, size_t len)
{
    struct sbuf *s = arg;
    s->p = realloc(s->p, s->n + len);
    memcpy(s->p + s->n, buf, len);
    s->n += len;
    return 0;
}

void assert_replicas_identical(void)
{
    if (F.failed_on_purpose)
        return;
    struct sbuf first = {0};
    cr_assert_eq(qsm_snapshot_write(F.q[0], sink, &first), CMQ_OK);
    for (int i = 1; i < F.replicas; i++) {
        struct sbuf o = {0};
        cr_assert_eq(qsm_snapshot_write(F.q[i], sink, &o), CMQ_OK);
        cr_assert_eq(o.n, first.n, "replica %d snapshot differs in size", i);
        cr_assert_arr_eq(o.p, first.p, o.n, "replica %d snapshot differs", i);
        free(o.p);
    }
    free(first.p);
}

uint64_t fx_log_append(uint8_t *buf, size_t len)
{
    return flog_append(&F.log, buf, len);
}
