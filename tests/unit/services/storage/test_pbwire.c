/* test_pbwire.c: the protobuf wire helper (services/storage/pbwire.c):
 * varints at every width, field iteration against what nanopb encodes,
 * refusals of truncated and corrupt input. */
#include "pbwire.h"

#include "storage.pb.h"

#include <criterion/criterion.h>
#include <pb_encode.h>
#include <stdlib.h>
#include <string.h>

static const uint64_t samples[] = {
    0, 1, 127, 128, 255, 256, 16383, 16384, 65535, 65536, 65537, 2097151, 2097152,
    UINT32_MAX, (uint64_t)UINT32_MAX + 1, INT64_MAX, UINT64_MAX - 1, UINT64_MAX,
};

Test(pbwire, varint_round_trips_at_every_width)
{
    for (size_t i = 0; i < sizeof samples / sizeof samples[0]; i++) {
        uint8_t buf[PBWIRE_VARINT_MAX + 1];
        size_t n = pbwire_put_varint(buf, samples[i]);
        cr_assert_eq(n, pbwire_varint_size(samples[i]));
        /* the same bytes as nanopb */
        uint8_t ref[PBWIRE_VARINT_MAX];
        pb_ostream_t os = pb_ostream_from_buffer(ref, sizeof ref);
        cr_assert(pb_encode_varint(&os, samples[i]));
        cr_assert_eq(os.bytes_written, n);
        cr_assert_arr_eq(ref, buf, n);
        const uint8_t *p = buf;
        uint64_t v = 0;
        cr_assert(pbwire_get_varint(&p, buf + n, &v));
        cr_assert_eq(v, samples[i]);
        cr_assert_eq(p, buf + n);
        /* every truncation is refused */
        for (size_t cut = 0; cut < n; cut++) {
            p = buf;
            cr_assert_not(pbwire_get_varint(&p, buf + cut, &v), "value %zu cut at %zu", i, cut);
        }
    }
    cr_assert_eq(pbwire_varint_size(0), 1);
    cr_assert_eq(pbwire_varint_size(UINT64_MAX), PBWIRE_VARINT_MAX);
}

Test(pbwire, varint_too_long_or_beyond_64_bits_refused)
{
    uint8_t eleven[11];
    memset(eleven, 0x80, sizeof eleven);
    eleven[10] = 0x01;
    const uint8_t *p = eleven;
    uint64_t v;
    cr_assert_not(pbwire_get_varint(&p, eleven + sizeof eleven, &v));
    /* ten bytes whose last holds more than bit 63 */
    uint8_t ten[10];
    memset(ten, 0xff, sizeof ten);
    ten[9] = 0x02;
    p = ten;
    cr_assert_not(pbwire_get_varint(&p, ten + sizeof ten, &v));
    ten[9] = 0x01;
    p = ten;
    cr_assert(pbwire_get_varint(&p, ten + sizeof ten, &v));
    cr_assert_eq(v, UINT64_MAX);
}

/* A SendRequest with one item of `body_len` bytes, encoded by nanopb
 * (callbacks would be needed for big bodies; the generated struct holds the
 * small ones). */
Test(pbwire, iterates_what_nanopb_encodes)
{
    cmq_TxnConfirmRequest r = cmq_TxnConfirmRequest_init_zero;
    r.queue_id = 70000;
    r.items_count = 2;
    r.items[0].msg_id = 5;
    r.items[1].msg_id = 1ull << 40;
    uint8_t buf[512];
    pb_ostream_t os = pb_ostream_from_buffer(buf, sizeof buf);
    cr_assert(pb_encode(&os, cmq_TxnConfirmRequest_fields, &r));
    struct pbwire_reader rd;
    struct pbwire_field f;
    pbwire_reader_init(&rd, buf, os.bytes_written);
    cr_assert(pbwire_next(&rd, &f));
    cr_assert_eq(f.num, cmq_TxnConfirmRequest_queue_id_tag);
    cr_assert_eq(f.wt, PBWIRE_VARINT);
    cr_assert_eq(f.v, 70000);
    int items = 0;
    while (pbwire_next(&rd, &f)) {
        cr_assert_eq(f.num, cmq_TxnConfirmRequest_items_tag);
        cr_assert_eq(f.wt, PBWIRE_LEN);
        cr_assert_eq(f.v, f.len);
        uint64_t id = 0;
        cr_assert(pbwire_find_varint(f.data, f.len, cmq_TxnConfirmItem_msg_id_tag, &id));
        cr_assert_eq(id, items ? 1ull << 40 : 5);
        items++;
    }
    cr_assert_not(rd.err);
    cr_assert_eq(items, 2);
    uint64_t q = 0;
    cr_assert(pbwire_find_varint(buf, os.bytes_written, 1, &q));
    cr_assert_eq(q, 70000);
    cr_assert_not(pbwire_find_varint(buf, os.bytes_written, 3, &q));
}

Test(pbwire, fixed_fields_and_lengths_across_16_bits)
{
    const size_t lens[] = {0, 1, 127, 128, 65535, 65536, 65537, 2u << 20};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        size_t cap = lens[i] + 64;
        uint8_t *buf = malloc(cap);
        cr_assert(buf);
        size_t n = pbwire_put_tag(buf, 7, PBWIRE_I64);
        for (int k = 0; k < 8; k++)
            buf[n++] = (uint8_t)(k + 1);
        n += pbwire_put_tag(buf + n, 536870911u, PBWIRE_LEN); /* the largest field number */
        n += pbwire_put_varint(buf + n, lens[i]);
        memset(buf + n, 0xab, lens[i]);
        n += lens[i];
        size_t boundary = n; /* between the LEN and the I32 field: a valid end */
        n += pbwire_put_tag(buf + n, 2, PBWIRE_I32);
        memcpy(buf + n, "\x01\x00\x00\x80", 4);
        n += 4;
        struct pbwire_reader rd;
        struct pbwire_field f;
        pbwire_reader_init(&rd, buf, n);
        cr_assert(pbwire_next(&rd, &f));
        cr_assert_eq(f.num, 7);
        cr_assert_eq(f.v, 0x0807060504030201ull);
        cr_assert_eq(f.len, 8);
        cr_assert(pbwire_next(&rd, &f));
        cr_assert_eq(f.num, PBWIRE_FIELD_MAX);
        cr_assert_eq(f.len, lens[i]);
        cr_assert_not_null(f.data);
        cr_assert(pbwire_next(&rd, &f));
        cr_assert_eq(f.wt, PBWIRE_I32);
        cr_assert_eq(f.v, 0x80000001ull);
        cr_assert_not(pbwire_next(&rd, &f));
        cr_assert_not(rd.err);
        /* any truncation inside the last two fields is an error, never a read past the end */
        for (size_t cut = 10; cut < n; cut += (cut < 40 || cut + 40 > n) ? 1 : 4093) {
            if (cut == boundary)
                continue;
            pbwire_reader_init(&rd, buf, cut);
            while (pbwire_next(&rd, &f))
                cr_assert_leq(f.data + f.len, buf + cut);
            cr_assert(rd.err, "len %zu cut %zu", lens[i], cut);
        }
        free(buf);
    }
}

Test(pbwire, corrupt_input_refused_and_sticky)
{
    struct pbwire_reader rd;
    struct pbwire_field f;
    const uint8_t field0[] = {0x00, 0x01};          /* field number 0 */
    const uint8_t group[] = {0x0b, 0x0c};            /* wire type 3 (start group) */
    const uint8_t wt6[] = {0x0e, 0x00};
    const uint8_t wt7[] = {0x0f, 0x00};
    const uint8_t too_big[] = {0xf8, 0xff, 0xff, 0xff, 0x1f, 0x00}; /* field 2^29 */
    const uint8_t len_over[] = {0x0a, 0x05, 'a', 'b'};
    const uint8_t len_huge[] = {0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f};
    const uint8_t i64_short[] = {0x09, 1, 2, 3};
    const uint8_t i32_short[] = {0x0d, 1, 2};
    const struct { const uint8_t *b; size_t n; } bad[] = {
        {field0, sizeof field0}, {group, sizeof group}, {wt6, sizeof wt6}, {wt7, sizeof wt7},
        {too_big, sizeof too_big}, {len_over, sizeof len_over}, {len_huge, sizeof len_huge},
        {i64_short, sizeof i64_short}, {i32_short, sizeof i32_short},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        pbwire_reader_init(&rd, bad[i].b, bad[i].n);
        cr_assert_not(pbwire_next(&rd, &f), "case %zu", i);
        cr_assert(rd.err, "case %zu", i);
        cr_assert_not(pbwire_next(&rd, &f)); /* stays failed */
        uint64_t v = 99;
        cr_assert_not(pbwire_find_varint(bad[i].b, bad[i].n, 1, &v));
        cr_assert_eq(v, 99);
    }
    pbwire_reader_init(&rd, NULL, 0);
    cr_assert_not(pbwire_next(&rd, &f));
    cr_assert_not(rd.err);
}
