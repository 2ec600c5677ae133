/* test_be_codec.c: services/gateway/backend/be_codec.c: dedup keys, send
 * items merged into one SendRequest (protobuf concatenation), publish
 * encoding and the zero-copy ReceiveReply decoder, each checked against
 * the generated structs. */
#include <criterion/criterion.h>
#include <pb_decode.h>
#include <pb_encode.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "be_codec.h"
#include "rpc.h"
#include "status.h"

Test(be_codec, dedup_keys_are_distinct_and_nonzero)
{
    uint64_t prev = 0;
    for (int i = 0; i < 10000; i++) {
        uint64_t k = be_dedup_key();
        cr_assert_neq(k, 0);
        cr_assert_neq(k, prev);
        prev = k;
    }
}

struct seen {
    int n;
    size_t len[16];
    char first[16];
};

static bool count_body(pb_istream_t *is, const pb_field_t *f, void **arg)
{
    (void)f;
    struct seen *s = *arg;
    s->len[s->n] = is->bytes_left;
    s->first[s->n] = is->bytes_left ? (char)((const uint8_t *)is->state)[0] : 0;
    s->n++;
    return pb_read(is, NULL, is->bytes_left);
}

static void decode_send(const uint8_t *buf, size_t len, cmq_SendRequest *r, struct seen *s)
{
    memset(r, 0, sizeof *r);
    for (int i = 0; i < 16; i++) {
        r->messages[i].body.funcs.decode = count_body;
        r->messages[i].body.arg = s;
    }
    pb_istream_t is = pb_istream_from_buffer(buf, len);
    cr_assert(pb_decode(&is, cmq_SendRequest_fields, r));
}

Test(be_codec, send_items_merge_into_one_request)
{
    struct be_send_item a[2] = {{"alpha", 5, 3, 0}, {"bb", 2, 0, 7000}};
    struct be_send_item b[1] = {{"c", 1, 0, 0}};
    uint8_t *pa, *pb, *frame;
    size_t la, lb, lf;
    cr_assert_eq(be_encode_send_items(a, 2, "1.2.3.4:5", &pa, &la), CMQ_OK);
    cr_assert_eq(be_encode_send_items(b, 1, "6.7.8.9:10", &pb, &lb), CMQ_OK);
    const uint8_t *parts[2] = {pa, pb};
    size_t lens[2] = {la, lb};
    cr_assert_eq(be_send_frame(42, parts, lens, 2, &frame, &lf), CMQ_OK);
    static cmq_SendRequest r;
    struct seen s = {0};
    decode_send(frame, lf, &r, &s);
    cr_assert_eq(r.queue_id, 42);
    cr_assert_eq(r.messages_count, 3);
    cr_assert_eq(s.n, 3);
    cr_assert_eq(s.len[0], 5);
    cr_assert_eq(s.first[0], 'a');
    cr_assert_eq(s.len[2], 1);
    cr_assert_eq(r.messages[0].delay_seconds, 3);
    cr_assert_eq(r.messages[1].txn_check_ms, 7000);
    cr_assert_str_eq(r.messages[0].client_addr, "1.2.3.4:5");
    cr_assert_str_eq(r.messages[2].client_addr, "6.7.8.9:10");
    cr_assert_neq(r.messages[0].dedup_key, r.messages[1].dedup_key);
    cr_assert_neq(r.messages[0].dedup_key, 0);
    /* a single member: the same request as a frame of one part */
    uint8_t *one;
    size_t lo;
    cr_assert_eq(be_send_frame(42, parts, lens, 1, &one, &lo), CMQ_OK);
    memset(&s, 0, sizeof s);
    decode_send(one, lo, &r, &s);
    cr_assert_eq(r.messages_count, 2);
    cr_assert_eq(r.queue_id, 42);
    free(pa);
    free(pb);
    free(frame);
    free(one);
    cr_assert_eq(be_encode_send_items(a, 0, "", &pa, &la), CMQ_EINVAL);
}

Test(be_codec, publish_request)
{
    struct be_text bodies[2] = {{"hello", 5}, {"w", 1}};
    struct be_text tags[1] = {{"red", 3}};
    uint8_t *buf;
    size_t len;
    cr_assert_eq(be_encode_publish(9, bodies, 2, tags, 1, "a.b", "x:1", &buf, &len), CMQ_OK);
    static cmq_PublishRequest r;
    memset(&r, 0, sizeof r);
    pb_istream_t is = pb_istream_from_buffer(buf, len);
    cr_assert(pb_decode(&is, cmq_PublishRequest_fields, &r));
    cr_assert_eq(r.topic_id, 9);
    cr_assert_eq(r.messages_count, 2);
    cr_assert_eq(r.tags_count, 1);
    cr_assert_str_eq(r.tags[0], "red");
    cr_assert_str_eq(r.routing_key, "a.b");
    cr_assert_neq(r.messages[0].dedup_key, 0);
    free(buf);
    cr_assert_eq(be_encode_publish(9, bodies, 0, NULL, 0, "", "", &buf, &len), CMQ_EINVAL);
}

static bool enc_body(pb_ostream_t *os, const pb_field_t *f, void *const *arg)
{
    const char *s = *arg;
    return pb_encode_tag_for_field(os, f) && pb_encode_string(os, (const uint8_t *)s, strlen(s));
}

Test(be_codec, receive_reply_decodes_without_copying)
{
    static cmq_ReceiveReply r;
    memset(&r, 0, sizeof r);
    r.messages_count = 2;
    r.messages[0].msg_id = 11;
    r.messages[0].receipt_handle = 12;
    r.messages[0].enqueue_time_ms = 13000;
    r.messages[0].dequeue_count = 2;
    r.messages[0].body.funcs.encode = enc_body;
    r.messages[0].body.arg = "first body";
    r.messages[1].msg_id = 21;
    r.messages[1].body.funcs.encode = enc_body;
    r.messages[1].body.arg = "second";
    r.messages[1].has_origin = true;
    snprintf(r.messages[1].origin.queue_name, sizeof r.messages[1].origin.queue_name, "src");
    r.messages[1].origin.msg_id = 99;
    r.messages[1].origin.reason = 2;
    uint8_t *buf;
    size_t len;
    cr_assert_eq(rpc_pb_encode(cmq_ReceiveReply_fields, &r, &buf, &len), CMQ_OK);
    struct be_received out[16];
    size_t n;
    cr_assert_eq(be_decode_received(buf, len, out, 16, &n), CMQ_OK);
    cr_assert_eq(n, 2);
    cr_assert_eq(out[0].msg_id, 11);
    cr_assert_eq(out[0].handle, 12);
    cr_assert_eq(out[0].enqueue_ms, 13000);
    cr_assert_eq(out[0].count, 2);
    cr_assert_eq(out[0].body_len, 10);
    cr_assert(memcmp(out[0].body, "first body", 10) == 0);
    cr_assert(out[0].body >= buf && out[0].body < buf + len); /* points into the reply */
    cr_assert_not(out[0].has_origin);
    cr_assert(out[1].has_origin);
    cr_assert_str_eq(out[1].origin_queue, "src");
    cr_assert_eq(out[1].origin_msg_id, 99);
    cr_assert_eq(out[1].origin_reason, 2);
    cr_assert_eq(be_decode_received(buf, len, out, 1, &n), CMQ_ECORRUPT); /* over max */
    cr_assert_eq(be_decode_received(buf, len - 1, out, 16, &n), CMQ_ECORRUPT);
    cr_assert_eq(be_decode_received(buf, 0, out, 16, &n), CMQ_OK); /* empty: none */
    cr_assert_eq(n, 0);
    free(buf);
}
