/* Tests for proto/ + common/rpc envelope: nanopb round trips, including
 * malloc'd (FT_POINTER) fields that only work when our PB_ENABLE_MALLOC
 * matches the prebuilt library, and the zero-copy envelope body. */
#include "envelope.pb.h"
#include "roundtrip.pb.h"
#include "rpc.h"
#include "status.h"

#include <criterion/criterion.h>
#include <pb_decode.h>
#include <pb_encode.h>
#include <stdlib.h>
#include <string.h>

Test(envelope, malloc_fields_round_trip_through_prebuilt_library)
{
    cmqtest_Everything in = cmqtest_Everything_init_zero;
    in.u64 = UINT64_MAX - 7;
    in.s64 = -123456789012345;
    in.flag = true;
    strcpy(in.fixed_str, "fixed string");
    in.fixed_bytes.size = 3;
    memcpy(in.fixed_bytes.bytes, "\x00\x01\xff", 3);
    char heap[] = "a string on the heap, longer than any fixed buffer here....";
    in.heap_str = heap;
    pb_bytes_array_t *hb = malloc(PB_BYTES_ARRAY_T_ALLOCSIZE(5));
    hb->size = 5;
    memcpy(hb->bytes, "\x10\x20\x00\x30\x40", 5);
    in.heap_bytes = hb;
    in.nums_count = 3;
    in.nums[0] = 1; in.nums[1] = 300; in.nums[2] = 70000;
    cmqtest_Inner inners[2] = {{7, "seven"}, {8, "eight"}};
    in.heap_inners = inners;
    in.heap_inners_count = 2;
    in.has_one = true;
    in.one.a = 42;
    strcpy(in.one.s, "one");
    in.f64 = 0x0123456789abcdefull;

    uint8_t *buf;
    size_t len;
    cr_assert_eq(rpc_pb_encode(cmqtest_Everything_fields, &in, &buf, &len), CMQ_OK);

    cmqtest_Everything out = cmqtest_Everything_init_zero;
    cr_assert_eq(rpc_pb_decode(cmqtest_Everything_fields, &out, buf, len), CMQ_OK);
    cr_assert_eq(out.u64, in.u64);
    cr_assert_eq(out.s64, in.s64);
    cr_assert(out.flag);
    cr_assert_str_eq(out.fixed_str, "fixed string");
    cr_assert_eq(out.fixed_bytes.size, 3);
    cr_assert_arr_eq(out.fixed_bytes.bytes, "\x00\x01\xff", 3);
    cr_assert_not_null(out.heap_str);
    cr_assert_str_eq(out.heap_str, heap);
    cr_assert_not_null(out.heap_bytes);
    cr_assert_eq(out.heap_bytes->size, 5);
    cr_assert_arr_eq(out.heap_bytes->bytes, "\x10\x20\x00\x30\x40", 5);
    cr_assert_eq(out.nums_count, 3);
    cr_assert_eq(out.nums[2], 70000);
    cr_assert_eq(out.heap_inners_count, 2);
    cr_assert_str_eq(out.heap_inners[1].s, "eight");
    cr_assert_eq(out.heap_inners[1].a, 8);
    cr_assert(out.has_one);
    cr_assert_eq(out.one.a, 42);
    cr_assert_eq(out.f64, in.f64);
    pb_release(cmqtest_Everything_fields, &out);
    cr_assert_null(out.heap_str);
    free(buf);
    free(hb);
}

Test(envelope, oversize_fixed_string_is_refused_not_truncated)
{
    /* Inner.s holds 15 characters; a 40-byte string on the wire must fail. */
    uint8_t wire[64];
    size_t n = 0;
    wire[n++] = (2 << 3) | 2;
    wire[n++] = 40;
    memset(wire + n, 'x', 40);
    n += 40;
    cmqtest_Inner in = cmqtest_Inner_init_zero;
    cr_assert_neq(rpc_pb_decode(cmqtest_Inner_fields, &in, wire, n), CMQ_OK);
}

Test(envelope, body_round_trips_and_points_into_the_frame)
{
    uint8_t body[300];
    for (size_t i = 0; i < sizeof body; i++)
        body[i] = (uint8_t)(i * 7);
    struct rpc_msg m = {.request_id = 99, .type = 201, .status = CMQ_ENOTLEADER,
                        .leader_hint = "tcp://127.0.0.1:17122", .error = "not leader",
                        .body = body, .body_len = sizeof body};
    uint8_t *frame;
    size_t len;
    cr_assert_eq(rpc_msg_encode(&m, &frame, &len), CMQ_OK);
    struct rpc_msg d;
    struct rpc_msg_strings s;
    cr_assert_eq(rpc_msg_decode(frame, len, &d, &s), CMQ_OK);
    cr_assert_eq(d.request_id, 99);
    cr_assert_eq(d.type, 201);
    cr_assert_eq(d.status, CMQ_ENOTLEADER);
    cr_assert_str_eq(d.leader_hint, "tcp://127.0.0.1:17122");
    cr_assert_str_eq(d.error, "not leader");
    cr_assert_eq(d.body_len, sizeof body);
    cr_assert_arr_eq(d.body, body, sizeof body);
    cr_assert(d.body >= frame && d.body + d.body_len <= frame + len, "body is not copied");
    free(frame);
}

Test(envelope, empty_body_and_defaults)
{
    struct rpc_msg m = {.request_id = 1, .type = cmq_MsgType_MSG_HEALTH};
    uint8_t *frame;
    size_t len;
    cr_assert_eq(rpc_msg_encode(&m, &frame, &len), CMQ_OK);
    struct rpc_msg d;
    struct rpc_msg_strings s;
    cr_assert_eq(rpc_msg_decode(frame, len, &d, &s), CMQ_OK);
    cr_assert_eq(d.status, CMQ_OK);
    cr_assert_eq(d.body_len, 0);
    cr_assert_str_eq(d.leader_hint, "");
    free(frame);
}

Test(envelope, garbage_is_refused)
{
    static const uint8_t bad[][6] = {
        {0x0a, 0x05, 0x01},             /* length-delimited field 1 with wrong wire type, short */
        {0x32, 0x7f, 0x00},             /* body claims 127 bytes, has 1 */
        {0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, /* unterminated varint tag */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct rpc_msg d;
        struct rpc_msg_strings s;
        cr_assert_eq(rpc_msg_decode(bad[i], sizeof bad[i], &d, &s), CMQ_ECORRUPT, "case %zu", i);
    }
}
