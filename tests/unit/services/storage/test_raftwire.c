/* test_raftwire.c: the Raft wire mapping (services/storage/raftwire.c).
 *
 * Entries and snapshot images cross the wire byte-exact at every size up to
 * the stated limits, across the 16-bit boundary of this nanopb build (65,535
 * / 65,536); a message over a limit is refused by the encoder and, built by
 * hand, by the decoder; a flipped byte in an encoded entry or image makes the
 * follower-side decode refuse the whole message and name the index; many
 * entries round trip.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "pb_encode.h"
#include "raft.pb.h"
#include "raftwire.h"
#include "status.h"

#define MIB (1u << 20)
static const uint32_t sizes[] = {0, 65535, 65536, MIB, RAFTWIRE_ENTRY_BYTES_MAX};

/* Deterministic, position-dependent bytes: a shifted or truncated copy
 * never compares equal. */
static uint8_t *pattern(size_t len, uint32_t seed)
{
    uint8_t *p = malloc(len ? len : 1);
    cr_assert_not_null(p);
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        p[i] = (uint8_t)x;
    }
    return p;
}

static struct raft_config three(void)
{
    struct raft_config c = {.n = 3};
    for (uint32_t i = 0; i < 3; i++)
        c.nodes[i].id = 100 + i;
    return c;
}

static void assert_entries_equal(const struct raft_entry *got, const struct raft_entry *want,
                                 uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        cr_assert_eq(got[i].term, want[i].term, "entry %u term", i);
        cr_assert_eq(got[i].index, want[i].index, "entry %u index", i);
        cr_assert_eq(got[i].type, want[i].type, "entry %u type", i);
        cr_assert_eq(got[i].len, want[i].len, "entry %u: %u bytes, want %u", i, got[i].len,
                     want[i].len);
        if (want[i].len)
            cr_assert(memcmp(got[i].data, want[i].data, want[i].len) == 0, "entry %u bytes", i);
    }
}

static struct raft_msg append_msg(const struct raft_entry *e, uint32_t n)
{
    return (struct raft_msg){.type = RAFT_MSG_APPEND, .flags = 3, .from = 100, .to = 101,
                             .term = 7, .log_term = 6, .index = e ? e[0].index - 1 : 41,
                             .commit = 40, .reject = 0, .hint_index = 9, .hint_term = 5,
                             .read_seq = 77, .n_entries = n, .entries = e};
}

/* Encodes `m`, decodes it, checks every field and entry came back. */
static void roundtrip_msg(const struct raft_msg *m, size_t *wire_len)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    cr_assert_eq(raftwire_encode_msg(12, m, &buf, &len), CMQ_OK);
    struct raftwire_msg w;
    int rc = raftwire_decode_msg(buf, len, &w);
    cr_assert_eq(rc, CMQ_OK, "decode: %s", status_name(rc));
    cr_assert_eq(w.partition, 12);
    cr_assert_eq(w.m.type, m->type);
    cr_assert_eq(w.m.flags, m->flags);
    cr_assert_eq(w.m.from, m->from);
    cr_assert_eq(w.m.to, m->to);
    cr_assert_eq(w.m.term, m->term);
    cr_assert_eq(w.m.log_term, m->log_term);
    cr_assert_eq(w.m.index, m->index);
    cr_assert_eq(w.m.commit, m->commit);
    cr_assert_eq(w.m.reject, m->reject);
    cr_assert_eq(w.m.hint_index, m->hint_index);
    cr_assert_eq(w.m.hint_term, m->hint_term);
    cr_assert_eq(w.m.read_seq, m->read_seq);
    cr_assert_eq(w.m.n_entries, m->n_entries);
    assert_entries_equal(w.m.entries, m->entries, m->n_entries);
    if (m->type == RAFT_MSG_SNAPSHOT) {
        cr_assert_eq(w.m.snapshot.index, m->snapshot.index);
        cr_assert_eq(w.m.snapshot.term, m->snapshot.term);
        cr_assert_eq(w.m.snapshot.config.n, m->snapshot.config.n);
        for (uint32_t i = 0; i < m->snapshot.config.n; i++)
            cr_assert_eq(w.m.snapshot.config.nodes[i].id, m->snapshot.config.nodes[i].id);
        cr_assert_eq(w.m.snapshot.len, m->snapshot.len, "image %u bytes, want %u",
                     w.m.snapshot.len, m->snapshot.len);
        if (m->snapshot.len)
            cr_assert(memcmp(w.m.snapshot.data, m->snapshot.data, m->snapshot.len) == 0);
        /* zero-copy: the image points into the received buffer */
        if (m->snapshot.len)
            cr_assert(w.m.snapshot.data > buf && w.m.snapshot.data < buf + len);
    }
    for (uint32_t i = 0; i < w.m.n_entries; i++)
        if (w.m.entries[i].len)
            cr_assert(w.m.entries[i].data > buf && w.m.entries[i].data < buf + len,
                      "entry data borrowed from the frame");
    raftwire_msg_release(&w);
    free(buf);
    if (wire_len)
        *wire_len = len;
}

static void roundtrip_install(const struct partition_chunk *c)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    cr_assert_eq(raftwire_encode_install(5, c, &buf, &len), CMQ_OK);
    struct raftwire_install w;
    int rc = raftwire_decode_install(buf, len, &w);
    cr_assert_eq(rc, CMQ_OK, "decode: %s", status_name(rc));
    cr_assert_eq(w.partition, 5);
    cr_assert_eq(w.c.from, c->from);
    cr_assert_eq(w.c.to, c->to);
    cr_assert_eq(w.c.term, c->term);
    cr_assert_eq(w.c.snap_index, c->snap_index);
    cr_assert_eq(w.c.snap_term, c->snap_term);
    cr_assert_eq(w.c.first_index, c->first_index);
    cr_assert_eq(w.c.next, c->next);
    cr_assert_eq(w.c.ack, c->ack);
    cr_assert_eq(w.c.n_entries, c->n_entries);
    assert_entries_equal(w.c.entries, c->entries, c->n_entries);
    raftwire_install_release(&w);
    free(buf);
}

Test(raftwire, append_roundtrip_at_every_size)
{
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        uint8_t *d = pattern(sizes[k], (uint32_t)k);
        struct raft_entry e = {.term = 7, .index = 42, .type = RAFT_ENTRY_NORMAL,
                               .len = sizes[k], .data = d};
        struct raft_msg m = append_msg(&e, 1);
        size_t wire = 0;
        roundtrip_msg(&m, &wire);
        cr_assert_gt(wire, sizes[k], "the whole entry went on the wire");
        free(d);
    }
}

Test(raftwire, append_of_several_large_entries)
{
    /* A full APPEND: 64 KiB-crossing entries back to back, 4 MiB in all. */
    struct raft_entry e[4];
    uint8_t *d[4];
    uint32_t lens[4] = {65536, RAFTWIRE_ENTRY_BYTES_MAX, 65535, MIB};
    for (int i = 0; i < 4; i++) {
        d[i] = pattern(lens[i], 10u + (uint32_t)i);
        e[i] = (struct raft_entry){.term = 7, .index = 100u + (uint64_t)i,
                                   .type = RAFT_ENTRY_NORMAL, .len = lens[i], .data = d[i]};
    }
    struct raft_msg m = append_msg(e, 4);
    roundtrip_msg(&m, NULL);
    for (int i = 0; i < 4; i++)
        free(d[i]);
}

Test(raftwire, snapshot_roundtrip_at_every_size)
{
    const uint32_t snap_sizes[] = {0, 65535, 65536, MIB, RAFTWIRE_ENTRY_BYTES_MAX,
                                   RAFTWIRE_SNAPSHOT_BYTES_MAX};
    for (size_t k = 0; k < sizeof snap_sizes / sizeof snap_sizes[0]; k++) {
        uint8_t *d = pattern(snap_sizes[k], 99u + (uint32_t)k);
        struct raft_msg m = {.type = RAFT_MSG_SNAPSHOT, .from = 100, .to = 102, .term = 9};
        m.snapshot = (struct raft_snapshot){.index = 5000, .term = 8, .config = three(),
                                            .len = snap_sizes[k], .data = d};
        roundtrip_msg(&m, NULL);
        free(d);
    }
}

Test(raftwire, install_roundtrip_at_every_size)
{
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        uint8_t *d = pattern(sizes[k], 50u + (uint32_t)k);
        struct raft_entry e = {.term = 3, .index = 17, .type = RAFT_ENTRY_NORMAL,
                               .len = sizes[k], .data = d};
        struct partition_chunk c = {.from = 100, .to = 101, .term = 4, .snap_index = 30,
                                    .snap_term = 3, .first_index = 10, .next = 17,
                                    .n_entries = 1, .entries = &e};
        roundtrip_install(&c);
        free(d);
    }
    struct partition_chunk ack = {.from = 101, .to = 100, .term = 4, .snap_index = 30,
                                  .snap_term = 3, .first_index = 10, .next = 31, .ack = 1};
    roundtrip_install(&ack);
}

Test(raftwire, many_entries_roundtrip)
{
    enum { N = 1000 };
    static struct raft_entry e[N];
    uint8_t *blob = pattern(N * 40, 7);
    for (uint32_t i = 0; i < N; i++)
        e[i] = (struct raft_entry){.term = 2 + i / 300, .index = 1000 + i,
                                   .type = i % 7 == 0 ? RAFT_ENTRY_NOOP : RAFT_ENTRY_NORMAL,
                                   .len = i % 7 == 0 ? 0 : i % 40, .data = blob + i * 40};
    struct raft_msg m = append_msg(e, N);
    roundtrip_msg(&m, NULL);
    struct partition_chunk c = {.from = 100, .to = 101, .term = 4, .snap_index = 5000,
                                .snap_term = 4, .first_index = 1000, .next = 1000,
                                .n_entries = N, .entries = e};
    roundtrip_install(&c);
    free(blob);
}

Test(raftwire, encoder_refuses_over_the_limits)
{
    uint8_t *d = pattern(RAFTWIRE_ENTRY_BYTES_MAX + 1, 1);
    struct raft_entry e = {.term = 7, .index = 42, .type = RAFT_ENTRY_NORMAL,
                           .len = RAFTWIRE_ENTRY_BYTES_MAX + 1, .data = d};
    struct raft_msg m = append_msg(&e, 1);
    uint8_t *buf = NULL;
    size_t len = 0;
    cr_assert_eq(raftwire_encode_msg(1, &m, &buf, &len), CMQ_ETOOBIG);
    struct partition_chunk c = {.from = 1, .to = 2, .n_entries = 1, .entries = &e};
    cr_assert_eq(raftwire_encode_install(1, &c, &buf, &len), CMQ_ETOOBIG);
    free(d);

    static struct raft_entry many[RAFTWIRE_ENTRIES_MAX + 1];
    for (uint32_t i = 0; i <= RAFTWIRE_ENTRIES_MAX; i++)
        many[i] = (struct raft_entry){.term = 1, .index = 1 + i, .type = RAFT_ENTRY_NORMAL};
    m = append_msg(many, RAFTWIRE_ENTRIES_MAX + 1);
    cr_assert_eq(raftwire_encode_msg(1, &m, &buf, &len), CMQ_ELIMIT);
}

/* ---- frames built by hand, as a faulty or hostile peer could send them ---- */

struct raw_entry {
    uint64_t index;
    size_t len;
    const uint8_t *data;
    uint32_t crc;
};

static bool raw_data_cb(pb_ostream_t *os, const pb_field_t *f, void *const *arg)
{
    const struct raw_entry *r = *arg;
    return pb_encode_tag_for_field(os, f) && pb_encode_string(os, r->data, r->len);
}

static bool raw_entries_cb(pb_ostream_t *os, const pb_field_t *f, void *const *arg)
{
    const struct raw_entry *r = *arg;
    cmq_RaftEntry oe = cmq_RaftEntry_init_zero;
    oe.term = 7;
    oe.index = r->index;
    oe.type = RAFT_ENTRY_NORMAL;
    oe.crc32c = r->crc;
    oe.data.funcs.encode = raw_data_cb;
    oe.data.arg = (void *)r;
    return pb_encode_tag_for_field(os, f) && pb_encode_submessage(os, cmq_RaftEntry_fields, &oe);
}

/* One APPEND of one entry of `len` bytes, CRC as given. */
static uint8_t *raw_append(struct raw_entry *r, size_t *out_len)
{
    cmq_RaftWire w = cmq_RaftWire_init_zero;
    w.partition = 3;
    w.has_msg = true;
    w.msg.type = RAFT_MSG_APPEND;
    w.msg.to = 101;
    w.msg.term = 7;
    w.msg.index = r->index - 1;
    w.msg.entries.funcs.encode = raw_entries_cb;
    w.msg.entries.arg = r;
    size_t size = 0;
    cr_assert(pb_get_encoded_size(&size, cmq_RaftWire_fields, &w));
    uint8_t *buf = malloc(size);
    pb_ostream_t os = pb_ostream_from_buffer(buf, size);
    cr_assert(pb_encode(&os, cmq_RaftWire_fields, &w));
    *out_len = os.bytes_written;
    return buf;
}

Test(raftwire, decoder_refuses_an_entry_over_the_maximum)
{
    uint8_t *d = pattern(RAFTWIRE_ENTRY_BYTES_MAX + 1, 2);
    struct raft_entry e = {.term = 7, .index = 42, .type = RAFT_ENTRY_NORMAL,
                           .len = RAFTWIRE_ENTRY_BYTES_MAX + 1, .data = d};
    struct raw_entry r = {42, e.len, d, raftwire_entry_crc(&e)};
    size_t len = 0;
    uint8_t *buf = raw_append(&r, &len);
    struct raftwire_msg w;
    cr_assert_eq(raftwire_decode_msg(buf, len, &w), CMQ_ETOOBIG);
    raftwire_msg_release(&w);
    free(buf);
    /* exactly the maximum is accepted from the same hand-built frame */
    e.len = RAFTWIRE_ENTRY_BYTES_MAX;
    r = (struct raw_entry){42, e.len, d, raftwire_entry_crc(&e)};
    buf = raw_append(&r, &len);
    cr_assert_eq(raftwire_decode_msg(buf, len, &w), CMQ_OK);
    cr_assert_eq(w.m.entries[0].len, RAFTWIRE_ENTRY_BYTES_MAX);
    raftwire_msg_release(&w);
    free(buf);
    free(d);
}

Test(raftwire, decoder_refuses_an_entry_without_its_crc)
{
    uint8_t *d = pattern(1000, 3);
    struct raw_entry r = {42, 1000, d, 0};
    size_t len = 0;
    uint8_t *buf = raw_append(&r, &len);
    struct raftwire_msg w;
    cr_assert_eq(raftwire_decode_msg(buf, len, &w), CMQ_ECORRUPT);
    cr_assert_eq(w.fault.crc_bad, 1);
    cr_assert_eq(w.fault.index, 42);
    raftwire_msg_release(&w);
    free(buf);
    free(d);
}

/* Flips one byte of entry data inside an encoded frame. */
static void flip_in(uint8_t *buf, size_t len, const uint8_t *data, size_t n)
{
    uint8_t *at = memmem(buf, len, data, n);
    cr_assert_not_null(at, "the entry's bytes are in the frame");
    at[n / 2] ^= 0x01;
}

Test(raftwire, follower_refuses_an_append_whose_entry_crc_does_not_match)
{
    struct raft_entry e[3];
    uint8_t *d[3];
    for (int i = 0; i < 3; i++) {
        d[i] = pattern(70000, 20u + (uint32_t)i);
        e[i] = (struct raft_entry){.term = 7, .index = 50u + (uint64_t)i,
                                   .type = RAFT_ENTRY_NORMAL, .len = 70000, .data = d[i]};
    }
    struct raft_msg m = append_msg(e, 3);
    uint8_t *buf = NULL;
    size_t len = 0;
    cr_assert_eq(raftwire_encode_msg(12, &m, &buf, &len), CMQ_OK);
    flip_in(buf, len, d[1], 70000);
    struct raftwire_msg w;
    cr_assert_eq(raftwire_decode_msg(buf, len, &w), CMQ_ECORRUPT);
    cr_assert_eq(w.fault.crc_bad, 1);
    cr_assert_eq(w.fault.index, 51, "the bad entry is named");
    cr_assert_eq(w.partition, 12, "the partition is named");
    cr_assert_neq(w.fault.stored_crc, w.fault.computed_crc);
    raftwire_msg_release(&w);

    /* the same for an install chunk */
    free(buf);
    struct partition_chunk c = {.from = 100, .to = 101, .term = 7, .snap_index = 60,
                                .snap_term = 7, .first_index = 50, .next = 50, .n_entries = 3,
                                .entries = e};
    cr_assert_eq(raftwire_encode_install(12, &c, &buf, &len), CMQ_OK);
    flip_in(buf, len, d[2], 70000);
    struct raftwire_install wi;
    cr_assert_eq(raftwire_decode_install(buf, len, &wi), CMQ_ECORRUPT);
    cr_assert_eq(wi.fault.crc_bad, 1);
    cr_assert_eq(wi.fault.index, 52);
    raftwire_install_release(&wi);
    free(buf);
    for (int i = 0; i < 3; i++)
        free(d[i]);
}

Test(raftwire, follower_refuses_a_snapshot_whose_crc_does_not_match)
{
    uint8_t *d = pattern(200000, 77);
    struct raft_msg m = {.type = RAFT_MSG_SNAPSHOT, .from = 100, .to = 102, .term = 9};
    m.snapshot = (struct raft_snapshot){.index = 5000, .term = 8, .config = three(),
                                        .len = 200000, .data = d};
    uint8_t *buf = NULL;
    size_t len = 0;
    cr_assert_eq(raftwire_encode_msg(4, &m, &buf, &len), CMQ_OK);
    flip_in(buf, len, d, 200000);
    struct raftwire_msg w;
    cr_assert_eq(raftwire_decode_msg(buf, len, &w), CMQ_ECORRUPT);
    cr_assert_eq(w.fault.crc_bad, 2);
    cr_assert_eq(w.fault.index, 5000);
    raftwire_msg_release(&w);
    free(buf);
    free(d);
}

Test(raftwire, truncated_frames_are_refused)
{
    uint8_t *d = pattern(70000, 5);
    struct raft_entry e = {.term = 7, .index = 42, .type = RAFT_ENTRY_NORMAL, .len = 70000,
                           .data = d};
    struct raft_msg m = append_msg(&e, 1);
    uint8_t *buf = NULL;
    size_t len = 0;
    cr_assert_eq(raftwire_encode_msg(1, &m, &buf, &len), CMQ_OK);
    for (size_t cut = 1; cut < len; cut += 4099) {
        struct raftwire_msg w;
        cr_assert_neq(raftwire_decode_msg(buf, len - cut, &w), CMQ_OK, "cut %zu", cut);
        raftwire_msg_release(&w);
    }
    free(buf);
    free(d);
}
