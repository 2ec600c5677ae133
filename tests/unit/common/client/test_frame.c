/* test_frame.c: the TCP frame codec (common/client/cmq_frame.c) against the
 * worked examples of shared/spec/cmq-tcp-protocol.md §11 and §12, byte for
 * byte in both directions, plus the stream state machine of §2.3. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmq_frame.h"

static size_t unhex(const char *hex, uint8_t *out)
{
    size_t n = 0;
    for (const char *p = hex; *p;) {
        if (*p == ' ') {
            p++;
            continue;
        }
        unsigned v;
        sscanf(p, "%2x", &v);
        out[n++] = (uint8_t)v;
        p += 2;
    }
    return n;
}

static void expect_bytes(struct cmq_frame *f, const char *hex)
{
    uint8_t want[512];
    size_t want_len = unhex(hex, want);
    uint8_t *got;
    size_t got_len;
    cr_assert_eq(cmq_frame_encode(f, &got, &got_len), CMQ_FRAME_OK);
    cr_assert_eq(got_len, want_len, "length %zu, want %zu", got_len, want_len);
    for (size_t i = 0; i < want_len; i++)
        cr_assert_eq(got[i], want[i], "byte %zu: %02x, want %02x", i, got[i], want[i]);
    free(got);
}

/* Decodes a whole frame given in hex into *f; keeps the bytes in `buf`. */
static void decode_hex(const char *hex, uint8_t *buf, struct cmq_frame *f)
{
    size_t n = unhex(hex, buf), total = 0;
    cr_assert_eq(cmq_frame_peek(buf, n, 0, &total), CMQ_FRAME_OK);
    cr_assert_eq(total, n);
    cr_assert_eq(cmq_frame_decode(buf + CMQ_FRAME_HDR, n - CMQ_FRAME_HDR, f), CMQ_FRAME_OK);
}

#define SEND_FULL "00 00 1b 00 00 00 08 01 10 fd 07 50 01 c2 0c 0b 0a 02 71 31 12 05 68 65 6c 6c 6f"
#define SEND_MIN "00 00 19 00 00 00 08 01 10 fd 07 c2 0c 0b 0a 02 71 31 12 05 68 65 6c 6c 6f"
#define SEND_OK "00 00 11 00 00 00 08 01 10 fd 07 18 00 e8 01 e9 07"

static void set_body(struct cmq_frame *f, const char *s)
{
    f->bodies[0] = (struct cmq_bytes){(const uint8_t *)s, strlen(s)};
    f->n_bodies = 1;
}

Test(frame, send_example_section_11)
{
    struct cmq_frame f;
    cmq_frame_init(&f, 1, cmqtcp_Cmd_CMD_SEND_MSG);
    f.m.has_request_id = true;
    f.m.request_id = 1;
    f.m.has_tcp_send_msg = true;
    strcpy(f.m.tcp_send_msg.queue_name, "q1");
    set_body(&f, "hello");
    expect_bytes(&f, SEND_FULL);
    f.m.has_request_id = false;
    expect_bytes(&f, SEND_MIN);

    uint8_t buf[64];
    decode_hex(SEND_FULL, buf, &f);
    cr_assert_eq(f.m.seqno, 1);
    cr_assert_eq(f.m.cmd, 1021);
    cr_assert(f.m.has_request_id && f.m.request_id == 1);
    cr_assert(f.m.has_tcp_send_msg);
    cr_assert_str_eq(f.m.tcp_send_msg.queue_name, "q1");
    cr_assert(!f.m.tcp_send_msg.has_delay_seconds);
    cr_assert_eq(f.n_bodies, 1);
    cr_assert_eq(f.bodies[0].len, 5);
    cr_assert(memcmp(f.bodies[0].data, "hello", 5) == 0);
    cr_assert(f.bodies[0].data >= buf && f.bodies[0].data < buf + sizeof buf, "borrowed");
}

Test(frame, send_response_example)
{
    struct cmq_frame f;
    cmq_frame_init(&f, 1, cmqtcp_Cmd_CMD_SEND_MSG);
    f.m.has_result = true;
    f.m.result = 0;
    f.n_ids = 1;
    f.ids[0] = 1001;
    expect_bytes(&f, SEND_OK);
    uint8_t buf[64];
    decode_hex(SEND_OK, buf, &f);
    cr_assert_eq(f.n_ids, 1);
    cr_assert_eq(f.ids[0], 1001);
}

#define AUTH_REQ                                                                               \
    "00 00 55 00 00 00 08 02 10 fc 07 ba 0c 47 0a 0b 41 4b 49 44 65 78 61 6d 70 6c 65 12 1c 72 " \
    "38 62 50 36 69 6f 43 6e 66 38 4d 4b 6d 74 69 6d 70 38 46 39 47 2f 6f 62 54 4d 3d 1a 10 31 " \
    "30 2e 30 2e 30 2e 31 40 44 45 46 41 55 4c 54 22 08 48 6d 61 63 53 48 41 31"

Test(frame, auth_examples_section_12)
{
    struct cmq_frame f;
    cmq_frame_init(&f, 2, cmqtcp_Cmd_CMD_AUTH);
    f.m.has_tcp_auth = true;
    strcpy(f.m.tcp_auth.secret_id, "AKIDexample");
    strcpy(f.m.tcp_auth.signature, "r8bP6ioCnf8MKmtimp8F9G/obTM=");
    strcpy(f.m.tcp_auth.client_id, "10.0.0.1@DEFAULT");
    strcpy(f.m.tcp_auth.signature_method, "HmacSHA1");
    expect_bytes(&f, AUTH_REQ);
    uint8_t buf[128];
    decode_hex(AUTH_REQ, buf, &f);
    cr_assert(f.m.has_tcp_auth);
    cr_assert_str_eq(f.m.tcp_auth.client_id, "10.0.0.1@DEFAULT");
    cr_assert_str_eq(f.m.tcp_auth.signature, "r8bP6ioCnf8MKmtimp8F9G/obTM=");

    cmq_frame_init(&f, 2, cmqtcp_Cmd_CMD_AUTH);
    f.m.has_result = true;
    expect_bytes(&f, "00 00 0d 00 00 00 08 02 10 fc 07 18 00");
    cmq_frame_init(&f, 3, cmqtcp_Cmd_CMD_HEARTBEAT);
    expect_bytes(&f, "00 00 0b 00 00 00 08 03 10 90 08");
}

Test(frame, pull_responses)
{
    struct cmq_frame f;
    cmq_frame_init(&f, 5, cmqtcp_Cmd_CMD_PULL_MSG);
    f.m.has_result = true;
    f.m.result = 10200;
    f.m.has_error = true;
    strcpy(f.m.error, "no message");
    expect_bytes(&f, "00 00 1a 00 00 00 08 05 10 ff 07 18 d8 4f 22 0a 6e 6f 20 6d 65 73 73 61 67 65");

    const char *hex = "00 00 1c 00 00 00 08 06 10 ff 07 18 00 d2 01 0c 08 e9 07 18 4d 22 05 68 65 "
                      "6c 6c 6f";
    cmq_frame_init(&f, 6, cmqtcp_Cmd_CMD_PULL_MSG);
    f.m.has_result = true;
    f.m.has_pull_rsp = true;
    f.m.pull_rsp.msg_id = 1001;
    f.m.pull_rsp.has_receipt_handle = true;
    f.m.pull_rsp.receipt_handle = 77;
    set_body(&f, "hello");
    expect_bytes(&f, hex);
    uint8_t buf[64];
    decode_hex(hex, buf, &f);
    cr_assert(f.m.has_pull_rsp);
    cr_assert_eq(f.m.pull_rsp.msg_id, 1001);
    cr_assert_eq(f.m.pull_rsp.receipt_handle, 77);
    cr_assert_eq(f.n_bodies, 1);
    cr_assert(f.bodies[0].len == 5 && memcmp(f.bodies[0].data, "hello", 5) == 0);

    cmq_frame_init(&f, 7, cmqtcp_Cmd_CMD_SEND_MSG);
    f.m.has_result = true;
    f.m.result = 306;
    f.m.has_error = true;
    strcpy(f.m.error, "not authed");
    expect_bytes(&f, "00 00 1a 00 00 00 08 07 10 fd 07 18 b2 02 22 0a 6e 6f 74 20 61 75 74 68 65 64");
}

Test(frame, transaction_examples)
{
    struct cmq_frame f;
    const char *query = "00 00 15 00 00 00 08 09 10 92 08 fa 0d 07 0a 02 71 31 10 e9 07";
    cmq_frame_init(&f, 9, cmqtcp_Cmd_CMD_TRANSACTION_QUERY);
    f.m.has_transaction_query = true;
    strcpy(f.m.transaction_query.queue_name, "q1");
    f.m.transaction_query.msg_id = 1001;
    expect_bytes(&f, query);

    const char *confirm = "00 00 19 00 00 00 08 0a 10 91 08 ea 0d 0b 0a 02 71 31 12 05 08 e9 07 10 01";
    cmq_frame_init(&f, 10, cmqtcp_Cmd_CMD_TRANSACTION_CONFIRM);
    f.m.has_transaction_confirm = true;
    strcpy(f.m.transaction_confirm.queue_name, "q1");
    f.m.transaction_confirm.item_count = 1;
    f.m.transaction_confirm.item[0].msg_id = 1001;
    f.m.transaction_confirm.item[0].state = 1;
    expect_bytes(&f, confirm);
    uint8_t buf[64];
    decode_hex(confirm, buf, &f);
    cr_assert(f.m.has_transaction_confirm);
    cr_assert_eq(f.m.transaction_confirm.item_count, 1);
    cr_assert_eq(f.m.transaction_confirm.item[0].msg_id, 1001);
    cr_assert_eq(f.m.transaction_confirm.item[0].state, 1);
}

Test(frame, batch_round_trip)
{
    struct cmq_frame f;
    cmq_frame_init(&f, -5, cmqtcp_Cmd_CMD_BATCH_PULL_MSG);
    f.m.has_result = true;
    f.m.has_batch_pull_rsp = true;
    const char *bodies[3] = {"a", "", "third body"};
    for (int i = 0; i < 3; i++) {
        f.m.batch_pull_rsp.msg_list[i].msg_id = 100 + (uint64_t)i;
        f.m.batch_pull_rsp.msg_list[i].has_receipt_handle = true;
        f.m.batch_pull_rsp.msg_list[i].receipt_handle = UINT64_MAX - (uint64_t)i;
        f.bodies[i] = (struct cmq_bytes){(const uint8_t *)bodies[i], strlen(bodies[i])};
    }
    f.m.batch_pull_rsp.msg_list_count = 3;
    f.n_bodies = 3;
    uint8_t *buf;
    size_t len, total;
    cr_assert_eq(cmq_frame_encode(&f, &buf, &len), CMQ_FRAME_OK);
    cr_assert_eq(cmq_frame_peek(buf, len, 0, &total), CMQ_FRAME_OK);
    struct cmq_frame g;
    cr_assert_eq(cmq_frame_decode(buf + 6, len - 6, &g), CMQ_FRAME_OK);
    cr_assert_eq(g.m.seqno, -5);
    cr_assert_eq(g.m.batch_pull_rsp.msg_list_count, 3);
    cr_assert_eq(g.n_bodies, 3);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(g.m.batch_pull_rsp.msg_list[i].msg_id, 100 + (uint64_t)i);
        cr_assert_eq(g.m.batch_pull_rsp.msg_list[i].receipt_handle, UINT64_MAX - (uint64_t)i);
        cr_assert_eq(g.bodies[i].len, strlen(bodies[i]));
        cr_assert(memcmp(g.bodies[i].data, bodies[i], g.bodies[i].len) == 0);
    }
    free(buf);

    /* batch send: 16 bodies decode, 17 do not */
    cmq_frame_init(&f, 1, cmqtcp_Cmd_CMD_BATCH_SEND_MSG);
    f.m.has_tcp_batch_send_msg = true;
    strcpy(f.m.tcp_batch_send_msg.queue_name, "q");
    for (int i = 0; i < 16; i++)
        f.bodies[i] = (struct cmq_bytes){(const uint8_t *)"xy", 2};
    f.n_bodies = 16;
    cr_assert_eq(cmq_frame_encode(&f, &buf, &len), CMQ_FRAME_OK);
    cr_assert_eq(cmq_frame_decode(buf + 6, len - 6, &g), CMQ_FRAME_OK);
    cr_assert_eq(g.n_bodies, 16);
    /* append a 17th msgBody (field 2 of field 201) by hand: re-encode with 17 */
    uint8_t big[1024];
    size_t n = 0;
    memcpy(big, buf + 6, len - 6);
    n = len - 6;
    free(buf);
    /* an extra tcp_batch_send_msg occurrence merges into the first (proto2) */
    const uint8_t extra[] = {0xca, 0x0c, 0x04, 0x12, 0x02, 'x', 'y'};
    memcpy(big + n, extra, sizeof extra);
    n += sizeof extra;
    cr_assert_eq(cmq_frame_decode(big, n, &g), CMQ_FRAME_UNDECODABLE);
    cmqtcp_TcpHead h;
    cr_assert_eq(cmq_frame_decode_head(big, n, &h), CMQ_FRAME_OK, "the head still decodes");
    cr_assert_eq(h.cmd, 1022);
}

Test(frame, stream_state_machine)
{
    uint8_t buf[64];
    size_t n = unhex(SEND_FULL SEND_OK, buf), total = 0;
    for (size_t k = 0; k < 6; k++)
        cr_assert_eq(cmq_frame_peek(buf, k, 0, &total), CMQ_FRAME_MORE, "%zu bytes", k);
    cr_assert_eq(cmq_frame_peek(buf, 26, 0, &total), CMQ_FRAME_MORE);
    cr_assert_eq(total, 27);
    cr_assert_eq(cmq_frame_peek(buf, n, 0, &total), CMQ_FRAME_OK);
    cr_assert_eq(total, 27);
    cr_assert_eq(cmq_frame_peek(buf + 27, n - 27, 0, &total), CMQ_FRAME_OK);
    cr_assert_eq(total, 17);

    const uint8_t bad1[] = {0x01};
    const uint8_t bad2[] = {0x00, 0x80, 0, 0, 0, 0};
    const uint8_t small[] = {0, 0, 5, 0, 0, 0};
    const uint8_t huge[] = {0, 0, 0xff, 0xff, 0xff, 0xff};
    const uint8_t capped[] = {0, 0, 0x00, 0x10, 0, 0}; /* 4096 */
    cr_assert_eq(cmq_frame_peek(bad1, 1, 0, &total), CMQ_FRAME_BAD_MARKER);
    cr_assert_eq(cmq_frame_peek(bad2, 6, 0, &total), CMQ_FRAME_BAD_MARKER);
    cr_assert_eq(cmq_frame_peek(small, 6, 0, &total), CMQ_FRAME_BAD_LENGTH);
    cr_assert_eq(cmq_frame_peek(huge, 6, 0, &total), CMQ_FRAME_TOO_BIG);
    cr_assert_eq(cmq_frame_peek(capped, 6, 4095, &total), CMQ_FRAME_TOO_BIG);
    cr_assert_eq(cmq_frame_peek(capped, 6, 4096, &total), CMQ_FRAME_MORE);

    /* a payload missing its required cmd does not decode */
    const uint8_t no_cmd[] = {0x08, 0x01};
    struct cmq_frame f;
    cmqtcp_TcpHead h;
    cr_assert_eq(cmq_frame_decode(no_cmd, sizeof no_cmd, &f), CMQ_FRAME_UNDECODABLE);
    cr_assert_eq(cmq_frame_decode_head(no_cmd, sizeof no_cmd, &h), CMQ_FRAME_UNDECODABLE);
    /* a body with a scalar wire type (nanopb would hand the callback a copy
     * on its stack) must fail, never be borrowed: send {queue "q", field 2
     * as fixed64} */
    const uint8_t fixed_body[] = {0x08, 0x01, 0x10, 0xfd, 0x07, 0xc2, 0x0c, 0x0c, 0x0a, 0x01, 'q',
                                  0x11, 1, 2, 3, 4, 5, 6, 7, 8};
    cr_assert_eq(cmq_frame_decode(fixed_body, sizeof fixed_body, &f), CMQ_FRAME_UNDECODABLE);
    /* receipt_handle_list: packed input is accepted too (§3.4) */
    const uint8_t packed[] = {0x08, 0x04, 0x10, 0x82, 0x08, 0xfa, 0x0c, 0x09, 0x0a, 0x01, 'q',
                              0x12, 0x04, 0x01, 0x02, 0xac, 0x02};
    cr_assert_eq(cmq_frame_decode(packed, sizeof packed, &f), CMQ_FRAME_OK);
    cr_assert_eq(f.n_ids, 3);
    cr_assert(f.ids[0] == 1 && f.ids[1] == 2 && f.ids[2] == 300);
    /* unknown fields (legacy 20, RocketMQ 130) are skipped */
    const uint8_t unknown[] = {0x08, 0x01, 0x10, 0x90, 0x08, 0xa2, 0x01, 0x00, 0x92, 0x08, 0x00};
    cr_assert_eq(cmq_frame_decode(unknown, sizeof unknown, &f), CMQ_FRAME_OK);
    cr_assert_eq(f.m.cmd, 1040);
}
