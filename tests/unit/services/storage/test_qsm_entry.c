/* test_qsm_entry.c: log entries as the queue state machine reads them
 * (services/storage/qsm_entry.c, qsm_send.c): a Send entry built by the one
 * StorageCommand codec is parsed in place (bodies over nanopb's 64 KiB field
 * limit included), fields of an unexpected wire type are skipped, a batch
 * over QSM_BATCH_MAX is counted as too many, malformed entries are refused,
 * and qsm_send_strip drops exactly the held items. */
#include "qsm_internal.h"

#include "cmdcodec.h"
#include "pbwire.h"
#include "status.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A tiny protobuf writer for the test's own messages. */
struct w {
    uint8_t *p;
    size_t n;
};
static void w_raw(struct w *w, const void *b, size_t n)
{
    w->p = realloc(w->p, w->n + n + 1);
    cr_assert_not_null(w->p);
    memcpy(w->p + w->n, b, n);
    w->n += n;
}
static void w_varint_field(struct w *w, uint32_t num, uint64_t v)
{
    uint8_t b[2 * PBWIRE_VARINT_MAX];
    size_t k = pbwire_put_tag(b, num, PBWIRE_VARINT);
    k += pbwire_put_varint(b + k, v);
    w_raw(w, b, k);
}
static void w_len_field(struct w *w, uint32_t num, const void *data, size_t len)
{
    uint8_t b[2 * PBWIRE_VARINT_MAX];
    size_t k = pbwire_put_tag(b, num, PBWIRE_LEN);
    k += pbwire_put_varint(b + k, len);
    w_raw(w, b, k);
    w_raw(w, data, len);
}

/* SendItem { body, delay, group, dedup, client_addr } */
static void item(struct w *req, const void *body, size_t len, uint64_t delay_s, const char *group,
                 uint64_t dedup)
{
    struct w it = {0};
    w_len_field(&it, cmq_SendItem_body_tag, body, len);
    if (delay_s)
        w_varint_field(&it, cmq_SendItem_delay_seconds_tag, delay_s);
    if (group)
        w_len_field(&it, cmq_SendItem_group_id_tag, group, strlen(group));
    if (dedup)
        w_varint_field(&it, cmq_SendItem_dedup_key_tag, dedup);
    w_len_field(req, cmq_SendRequest_messages_tag, it.p, it.n);
    free(it.p);
}

Test(qsm_entry, a_send_entry_is_parsed_in_place_by_the_generated_tags)
{
    size_t big = 70000; /* over the 16-bit nanopb field size */
    uint8_t *body = malloc(big);
    memset(body, 'x', big);
    struct w req = {0};
    w_varint_field(&req, cmq_SendRequest_queue_id_tag, 42);
    w_len_field(&req, cmq_SendRequest_client_addr_tag, "10.0.0.1:5", 10);
    item(&req, "hello", 5, 0, NULL, 7);
    item(&req, body, big, 30, "g1", 0);
    uint8_t *e = NULL;
    size_t elen = 0;
    cr_assert_eq(cmdcodec_build(1234, cmq_StorageCommand_send_tag, req.p, req.n, &e, &elen),
                 CMQ_OK);
    struct send_view sv;
    uint64_t ms = 0;
    cr_assert(qsm_parse_send_entry(e, elen, &sv, &ms));
    cr_assert_eq(ms, 1234);
    cr_assert_eq(sv.queue_id, 42);
    cr_assert_eq(sv.addr_len, 10);
    cr_assert_eq(sv.n, 2);
    cr_assert_eq(sv.m[0].len, 5);
    cr_assert_eq(memcmp(sv.m[0].body, "hello", 5), 0);
    cr_assert_eq(sv.m[0].dedup_key, 7);
    cr_assert_eq(sv.m[1].len, big);
    cr_assert(sv.m[1].body >= e && sv.m[1].body + big <= e + elen, "the body points into the entry");
    cr_assert_eq(sv.m[1].delay_s, 30);
    cr_assert_eq(sv.m[1].group_len, 2);
    cr_assert_eq(qsm_send_validate(&sv, false), CMQ_OK);
    cr_assert_eq(qsm_send_validate(&sv, true), CMQ_EINVAL, "no delay on an ordered queue");
    free(e);
    free(req.p);
    free(body);
}

Test(qsm_entry, a_field_of_another_wire_type_is_skipped)
{
    struct w it = {0};
    w_varint_field(&it, cmq_SendItem_body_tag, 99);          /* body as a varint: skipped */
    w_len_field(&it, cmq_SendItem_delay_seconds_tag, "x", 1); /* delay as bytes: skipped */
    w_len_field(&it, cmq_SendItem_body_tag, "ok", 2);
    struct w req = {0};
    w_varint_field(&req, cmq_SendRequest_queue_id_tag, 5);
    w_len_field(&req, cmq_SendRequest_messages_tag, it.p, it.n);
    w_varint_field(&req, 99, 1); /* an unknown field */
    struct send_view sv;
    cr_assert(qsm_parse_send(req.p, req.n, &sv));
    cr_assert_eq(sv.n, 1);
    cr_assert_eq(sv.m[0].len, 2);
    cr_assert_eq(sv.m[0].delay_s, 0);
    free(it.p);
    free(req.p);
}

Test(qsm_entry, a_batch_over_the_limit_counts_as_too_many)
{
    struct w req = {0};
    w_varint_field(&req, cmq_SendRequest_queue_id_tag, 5);
    for (int i = 0; i < QSM_BATCH_MAX + 3; i++)
        item(&req, "b", 1, 0, NULL, 0);
    struct send_view sv;
    cr_assert(qsm_parse_send(req.p, req.n, &sv));
    cr_assert_eq(sv.n, QSM_BATCH_MAX + 1);
    cr_assert_eq(qsm_send_validate(&sv, false), CMQ_EINVAL);
    free(req.p);
}

Test(qsm_entry, malformed_entries_are_refused)
{
    struct w req = {0};
    w_varint_field(&req, cmq_SendRequest_queue_id_tag, 5);
    item(&req, "abc", 3, 0, NULL, 0);
    struct send_view sv;
    cr_assert_not(qsm_parse_send(req.p, req.n - 1, &sv), "truncated inside an item");
    uint8_t *e = NULL;
    size_t elen = 0;
    cr_assert_eq(cmdcodec_build(1, cmq_StorageCommand_send_tag, req.p, req.n, &e, &elen), CMQ_OK);
    uint64_t ms;
    cr_assert_not(qsm_parse_send_entry(e, elen - 2, &sv, &ms), "truncated entry");
    free(e);
    /* another command is not a Send */
    cr_assert_eq(cmdcodec_build(1, cmq_StorageCommand_tick_tag, NULL, 0, &e, &elen), CMQ_OK);
    cr_assert_not(qsm_parse_send_entry(e, elen, &sv, &ms));
    free(e);
    free(req.p);
}

Test(qsm_send, strip_drops_exactly_the_held_items_and_keeps_the_rest_in_order)
{
    struct w req = {0};
    w_varint_field(&req, cmq_SendRequest_queue_id_tag, 9);
    item(&req, "a", 1, 0, NULL, 1);
    item(&req, "bb", 2, 0, NULL, 2);
    w_len_field(&req, cmq_SendRequest_client_addr_tag, "c", 1);
    item(&req, "ccc", 3, 0, NULL, 3);
    uint64_t held[QSM_BATCH_MAX] = {0, 777, 0};
    size_t olen = 0;
    uint8_t *out = qsm_send_strip(req.p, req.n, held, &olen);
    cr_assert_not_null(out);
    struct send_view sv;
    cr_assert(qsm_parse_send(out, olen, &sv));
    cr_assert_eq(sv.queue_id, 9);
    cr_assert_eq(sv.n, 2);
    cr_assert_eq(sv.m[0].len, 1);
    cr_assert_eq(sv.m[1].len, 3);
    cr_assert_eq(sv.addr_len, 1, "other fields are kept");
    free(out);
    cr_assert_null(qsm_send_strip(req.p, req.n - 1, held, &olen), "malformed: NULL");
    uint64_t ids[QSM_BATCH_MAX], new_ids[2] = {100, 101};
    cr_assert_eq(qsm_send_merge(held, 3, new_ids, 2, ids), 3);
    cr_assert_eq(ids[0], 100);
    cr_assert_eq(ids[1], 777);
    cr_assert_eq(ids[2], 101);
    free(req.p);
}

static int no_read(void *arg, uint64_t index, uint8_t **buf, size_t *len)
{
    (void)arg, (void)index, (void)buf, (void)len;
    return CMQ_ENOTFOUND;
}

/* The host peeks each entry once and hands its view on: the outcome is the
 * same as qsm_apply's own peek. */
Test(qsm_entry, apply_with_the_hosts_view_is_apply)
{
    struct qsm_reader rd = {no_read, NULL};
    struct qsm *a, *b;
    cr_assert_eq(qsm_create(3, &rd, &a), CMQ_OK);
    cr_assert_eq(qsm_create(3, &rd, &b), CMQ_OK);
    cmq_StorageCreateQueueRequest cq = cmq_StorageCreateQueueRequest_init_zero;
    cq.queue_id = 77;
    snprintf(cq.name, sizeof cq.name, "q77");
    uint8_t e[256];
    size_t n = cmdcodec_encode_msg(e, sizeof e, 5000, cmq_StorageCommand_create_queue_tag,
                                   cmq_StorageCreateQueueRequest_fields, &cq);
    cr_assert_gt(n, 0);
    struct cmdcodec_view v;
    cr_assert(cmdcodec_peek(e, n, &v));
    struct qsm_result ra = {0}, rb = {0};
    cr_assert_eq(qsm_apply_peeked(a, 1, 1, e, n, &v, &ra), CMQ_OK);
    cr_assert_eq(qsm_apply(b, 1, 1, e, n, &rb), CMQ_OK);
    cr_assert_eq(ra.queue_id, rb.queue_id);
    cr_assert_eq(ra.type, rb.type);
    struct qsm_stats s;
    cr_assert_eq(qsm_stats(a, 77, &s), CMQ_OK);
    cr_assert_str_eq(s.name, "q77");
    /* a malformed entry without a view is refused as before */
    cr_assert_eq(qsm_apply_peeked(a, 2, 1, e, n - 1, NULL, &ra), CMQ_EINVAL);
    qsm_result_release(&ra);
    qsm_result_release(&rb);
    qsm_destroy(a);
    qsm_destroy(b);
}
