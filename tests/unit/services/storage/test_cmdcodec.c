/* test_cmdcodec.c: the StorageCommand codec (services/storage/cmdcodec.c):
 * what it writes is what nanopb writes and decodes, peeks find the kind, the
 * clock and the member's id without decoding, members cross the 16-bit
 * boundary, truncated and corrupt entries are refused. */
#include "cmdcodec.h"
#include "pbwire.h"

#include "status.h"

#include <criterion/criterion.h>
#include <pb_decode.h>
#include <pb_encode.h>
#include <stdlib.h>
#include <string.h>

static cmq_StorageCommand decoded; /* large: off the stack */

static size_t encode_member(uint8_t *buf, size_t cap, const pb_msgdesc_t *fields, const void *m)
{
    pb_ostream_t os = pb_ostream_from_buffer(buf, cap);
    cr_assert(pb_encode(&os, fields, m));
    return os.bytes_written;
}

Test(cmdcodec, wraps_bytes_as_nanopb_would)
{
    cmq_StorageCommand c = cmq_StorageCommand_init_zero;
    c.leader_ms = 1765000000123ull;
    c.which_cmd = cmq_StorageCommand_rewind_tag;
    c.cmd.rewind.queue_id = 300;
    c.cmd.rewind.start_consume_time_s = 1234;
    uint8_t ref[256], member[128], out[256];
    pb_ostream_t os = pb_ostream_from_buffer(ref, sizeof ref);
    cr_assert(pb_encode(&os, cmq_StorageCommand_fields, &c));
    size_t mlen = encode_member(member, sizeof member, cmq_RewindRequest_fields, &c.cmd.rewind);
    size_t n = cmdcodec_encode(out, sizeof out, c.leader_ms, cmq_StorageCommand_rewind_tag,
                               member, mlen);
    cr_assert_eq(n, os.bytes_written);
    cr_assert_eq(n, cmdcodec_size(c.leader_ms, cmq_StorageCommand_rewind_tag, mlen));
    cr_assert_arr_eq(out, ref, n);
    uint8_t *built;
    size_t built_len;
    cr_assert_eq(cmdcodec_build(c.leader_ms, cmq_StorageCommand_rewind_tag, member, mlen, &built,
                                &built_len), CMQ_OK);
    cr_assert_eq(built_len, n);
    cr_assert_arr_eq(built, ref, n);
    free(built);
    /* too small a buffer writes nothing useful and says so */
    for (size_t cap = 0; cap < n; cap++)
        cr_assert_eq(cmdcodec_encode(out, cap, c.leader_ms, cmq_StorageCommand_rewind_tag, member,
                                     mlen), 0);
}

Test(cmdcodec, encode_msg_round_trips_through_nanopb)
{
    cmq_DlqDeliveredRequest d = cmq_DlqDeliveredRequest_init_zero;
    d.msg_ids_count = 64;
    for (pb_size_t i = 0; i < d.msg_ids_count; i++)
        d.msg_ids[i] = UINT64_MAX - i;
    uint8_t out[64 * 11 + 16 + CMDCODEC_FRAME_MAX];
    size_t n = cmdcodec_encode_msg(out, sizeof out, 42, cmq_StorageCommand_dlq_delivered_tag,
                                   cmq_DlqDeliveredRequest_fields, &d);
    cr_assert_gt(n, 64 * 10);
    memset(&decoded, 0, sizeof decoded);
    pb_istream_t is = pb_istream_from_buffer(out, n);
    cr_assert(pb_decode(&is, cmq_StorageCommand_fields, &decoded));
    cr_assert_eq(decoded.leader_ms, 42);
    cr_assert_eq(decoded.which_cmd, cmq_StorageCommand_dlq_delivered_tag);
    cr_assert_eq(decoded.cmd.dlq_delivered.msg_ids_count, 64);
    cr_assert_eq(decoded.cmd.dlq_delivered.msg_ids[63], UINT64_MAX - 63);
    pb_release(cmq_StorageCommand_fields, &decoded);
    struct cmdcodec_view v;
    cr_assert(cmdcodec_peek(out, n, &v));
    cr_assert_eq(v.kind, cmq_StorageCommand_dlq_delivered_tag);
    cr_assert(cmdcodec_is_queue(v.kind));
    cr_assert_eq(v.leader_ms, 42);
    cr_assert_eq(v.member, out + n - v.member_len);
    /* a buffer one byte short */
    cr_assert_eq(cmdcodec_encode_msg(out, n - 1, 42, cmq_StorageCommand_dlq_delivered_tag,
                                     cmq_DlqDeliveredRequest_fields, &d), 0);
}

Test(cmdcodec, peek_finds_kind_clock_and_id)
{
    cmq_TopicDropRequest t = cmq_TopicDropRequest_init_zero;
    t.topic_id = 1ull << 35;
    uint8_t member[32], out[64];
    size_t mlen = encode_member(member, sizeof member, cmq_TopicDropRequest_fields, &t);
    size_t n = cmdcodec_encode(out, sizeof out, 7, cmq_StorageCommand_topic_drop_tag, member, mlen);
    struct cmdcodec_view v;
    cr_assert(cmdcodec_peek(out, n, &v));
    cr_assert_eq(v.kind, cmq_StorageCommand_topic_drop_tag);
    cr_assert(cmdcodec_is_topic(v.kind));
    cr_assert_not(cmdcodec_is_queue(v.kind));
    cr_assert_eq(v.id, 1ull << 35);
    cr_assert_eq(v.leader_ms, 7);
    cr_assert_eq(v.member_len, mlen);
    cr_assert_arr_eq(v.member, member, mlen);
    /* a Tick with no fields: an empty member, id 0 */
    n = cmdcodec_encode(out, sizeof out, 0, cmq_StorageCommand_tick_tag, NULL, 0);
    cr_assert(cmdcodec_peek(out, n, &v));
    cr_assert_eq(v.kind, cmq_StorageCommand_tick_tag);
    cr_assert_eq(v.member_len, 0);
    cr_assert_not_null(v.member);
    cr_assert_eq(v.id, 0);
    /* no member at all: well formed, kind 0 */
    uint8_t only_clock[] = {0x08, 0x05};
    cr_assert(cmdcodec_peek(only_clock, sizeof only_clock, &v));
    cr_assert_eq(v.kind, 0);
    cr_assert_null(v.member);
    cr_assert_eq(v.leader_ms, 5);
    cr_assert(cmdcodec_peek(NULL, 0, &v));
    cr_assert_eq(v.kind, 0);
}

Test(cmdcodec, last_member_and_clock_win_unknown_fields_skipped)
{
    uint8_t buf[64];
    size_t n = 0;
    n += cmdcodec_encode(buf + n, sizeof buf - n, 1, cmq_StorageCommand_send_tag,
                         "\x08\x09", 2); /* queue 9 */
    n += pbwire_put_tag(buf + n, 3, PBWIRE_I32); /* an unknown field */
    memcpy(buf + n, "abcd", 4);
    n += 4;
    n += cmdcodec_encode(buf + n, sizeof buf - n, 2, cmq_StorageCommand_receive_tag,
                         "\x08\x0b\x08\x0c", 4); /* queue 11 then 12: the last wins */
    struct cmdcodec_view v;
    cr_assert(cmdcodec_peek(buf, n, &v));
    cr_assert_eq(v.kind, cmq_StorageCommand_receive_tag);
    cr_assert_eq(v.leader_ms, 2);
    cr_assert_eq(v.id, 12);
    cr_assert_eq(v.member_len, 4);
}

/* Members whose length crosses 16 bits (nanopb's pb_size_t here), up to the
 * largest entry a partition takes. */
Test(cmdcodec, members_across_the_16_bit_boundary)
{
    const size_t lens[] = {127, 128, 16383, 16384, 65534, 65535, 65536, 65537, 1u << 20,
                           (2u << 20) - 64};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        uint8_t *member = malloc(lens[i]);
        cr_assert(member);
        /* a SendRequest: queue_id = 77, then one item of filler */
        size_t k = pbwire_put_tag(member, 1, PBWIRE_VARINT);
        k += pbwire_put_varint(member + k, 77);
        size_t body = lens[i] - k - 1 - pbwire_varint_size(lens[i]);
        body = lens[i] - k - 1 - pbwire_varint_size(body);
        k += pbwire_put_tag(member + k, 2, PBWIRE_LEN);
        k += pbwire_put_varint(member + k, body);
        memset(member + k, 0x5a, body);
        k += body;
        cr_assert_eq(k, lens[i], "len %zu", lens[i]);
        uint8_t *cmd;
        size_t len;
        cr_assert_eq(cmdcodec_build(UINT64_MAX, cmq_StorageCommand_send_tag, member, k, &cmd,
                                    &len), CMQ_OK);
        cr_assert_eq(len, cmdcodec_size(UINT64_MAX, cmq_StorageCommand_send_tag, k));
        cr_assert_leq(len - k, CMDCODEC_FRAME_MAX);
        struct cmdcodec_view v;
        cr_assert(cmdcodec_peek(cmd, len, &v));
        cr_assert_eq(v.kind, cmq_StorageCommand_send_tag);
        cr_assert_eq(v.member_len, k);
        cr_assert_eq(v.id, 77);
        cr_assert_eq(v.leader_ms, UINT64_MAX);
        cr_assert_arr_eq(v.member, member, k);
        /* truncated anywhere: refused, the view zeroed */
        const size_t cuts[] = {1, 5, len - k - 1, len - k, len - k + 3, len / 2, len - 1};
        for (size_t c = 0; c < sizeof cuts / sizeof cuts[0]; c++) {
            cr_assert_not(cmdcodec_peek(cmd, cuts[c], &v), "len %zu cut %zu", k, cuts[c]);
            cr_assert_eq(v.kind, 0);
            cr_assert_null(v.member);
        }
        free(cmd);
        free(member);
    }
}

Test(cmdcodec, corrupt_entries_refused)
{
    struct cmdcodec_view v;
    /* a member whose own fields run past it */
    uint8_t bad_member[] = {0x08, 0x01, 0x6a, 0x03, 0x12, 0x09, 'x'};
    cr_assert_not(cmdcodec_peek(bad_member, sizeof bad_member, &v));
    /* a group, a wire type 7, a bad varint clock */
    uint8_t group[] = {0x0b};
    uint8_t wt7[] = {0x08, 0x01, 0x0f};
    uint8_t clock[] = {0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f};
    cr_assert_not(cmdcodec_peek(group, sizeof group, &v));
    cr_assert_not(cmdcodec_peek(wt7, sizeof wt7, &v));
    cr_assert_not(cmdcodec_peek(clock, sizeof clock, &v));
    /* random bytes never make it read outside the entry (ASan watches) */
    srand(13);
    for (int round = 0; round < 20000; round++) {
        size_t len = (size_t)(rand() % 40);
        uint8_t *b = malloc(len ? len : 1);
        for (size_t i = 0; i < len; i++)
            b[i] = (uint8_t)rand();
        if (cmdcodec_peek(b, len, &v) && v.member) {
            cr_assert_geq(v.member, b);
            cr_assert_leq(v.member + v.member_len, b + len);
        }
        free(b);
    }
}
