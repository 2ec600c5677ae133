/* raftwire.c: Raft messages <-> proto/raft.proto; see raftwire.h.
 *
 * Encoding walks struct raft_msg / struct partition_chunk with nanopb encode
 * callbacks for the entry list, each entry's data and the snapshot image
 * (pb_encode_string takes a size_t: no 16-bit length anywhere).  Decoding
 * sets decode callbacks that borrow the bytes from the input buffer, as
 * common/client/cmq_frame.c does for message bodies, and collect the entries
 * into a growing array.  Checksums are verified after the whole message
 * decoded, so a refusal can name the partition and the first bad index.
 */
#include "raftwire.h"

#include "crc32c.h"
#include "qsm.h"
#include "raft.pb.h"
#include "rpc.h"
#include "snapfile.h"
#include "status.h"

#include <pb_decode.h>
#include <pb_encode.h>
#include <stdlib.h>
#include <string.h>

/* The envelope (rpc.c) wraps our message, and its encoding must stay within
 * RPC_MAX_MSG_BYTES: keep room for its header (request id, type, status,
 * leader hint <= 128, error <= 256 bytes, tags and lengths). */
#define RAFTWIRE_MSG_BYTES_MAX (RPC_MAX_MSG_BYTES - 4096u)
/* Wire bytes of one entry other than its data: the entry's tag and length
 * (<= 6), term and index (<= 11 each), type (<= 6), the data's tag and
 * length (<= 6), the CRC (5). */
#define RAFTWIRE_ENTRY_FRAMING_BYTES 64u
/* Wire bytes of a message other than its entries and image: every scalar
 * field at its widest (<= 11 each, fewer than 20), the submessages' tags and
 * lengths, the configuration (<= 200 + 3), the snapshot CRC. */
#define RAFTWIRE_HEADER_BYTES 1024u

/* The largest entry the system makes is a full Send: QSM_BATCH_MAX items
 * holding QSM_BATCH_BYTES_MAX of bodies.  An item's fields other than its
 * body encode in less than twice its decoded struct (every varint is 8 bytes
 * there and at most 11 on the wire; every string buffer holds its bytes, to
 * which the wire adds a tag and a length of at most 3), and the request's
 * own fields likewise. */
_Static_assert(QSM_BATCH_BYTES_MAX + QSM_BATCH_MAX * 2 * sizeof(cmq_SendItem) +
                   2 * sizeof(cmq_SendRequest) <= RAFTWIRE_ENTRY_BYTES_MAX,
               "a full Send fits one entry");
_Static_assert(RAFTWIRE_ENTRY_BYTES_MAX <= UINT32_MAX, "entry length is a u32 in struct raft_entry");
/* A full APPEND: Raft stops adding entries at PARTITION_APPEND_BYTES_MAX of
 * payload (an entry alone may be as large as the largest entry). */
_Static_assert(PARTITION_APPEND_BYTES_MAX +
                   PARTITION_APPEND_ENTRIES_MAX * RAFTWIRE_ENTRY_FRAMING_BYTES +
                   RAFTWIRE_HEADER_BYTES <= RAFTWIRE_MSG_BYTES_MAX,
               "a full APPEND fits one transport message");
/* A full install chunk: it stops once it holds PARTITION_CHUNK_BYTES_MAX,
 * so it may hold one entry more than that. */
_Static_assert(PARTITION_CHUNK_BYTES_MAX + RAFTWIRE_ENTRY_BYTES_MAX +
                   PARTITION_CHUNK_ENTRIES_MAX * RAFTWIRE_ENTRY_FRAMING_BYTES +
                   RAFTWIRE_HEADER_BYTES <= RAFTWIRE_MSG_BYTES_MAX,
               "a full install chunk fits one transport message");
_Static_assert(RAFTWIRE_SNAPSHOT_BYTES_MAX + RAFTWIRE_HEADER_BYTES <= RAFTWIRE_MSG_BYTES_MAX,
               "a snapshot image up to the wire limit fits one transport message");
_Static_assert(RAFTWIRE_SNAPSHOT_BYTES_MAX <= SNAPFILE_IMAGE_BYTES_MAX,
               "the wire's image limit is not above raft's");
_Static_assert(PARTITION_APPEND_ENTRIES_MAX <= RAFTWIRE_ENTRIES_MAX &&
                   PARTITION_CHUNK_ENTRIES_MAX <= RAFTWIRE_ENTRIES_MAX,
               "the decoder takes every message the partitions send");
_Static_assert(RAFTWIRE_ENTRIES_MAX <= UINT32_MAX, "n_entries is a u32");
_Static_assert(4 + RAFT_MAX_NODES * 9 <= sizeof(((cmq_RaftSnapshot *)0)->config.bytes),
               "raft_config_encode's largest output fits RaftSnapshot.config");

/* ---------- checksums ---------- */

static void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

uint32_t raftwire_entry_crc(const struct raft_entry *e)
{
    uint8_t h[24];
    put_u64(h, e->term);
    put_u64(h + 8, e->index);
    put_u32(h + 16, e->type);
    put_u32(h + 20, e->len);
    uint32_t crc = crc32c(0, h, sizeof h);
    return e->len ? crc32c(crc, e->data, e->len) : crc;
}

uint32_t raftwire_snapshot_crc(const struct raft_snapshot *s, const uint8_t *config,
                               size_t config_len)
{
    uint8_t h[20];
    put_u64(h, s->index);
    put_u64(h + 8, s->term);
    put_u32(h + 16, (uint32_t)config_len); /* <= 200: RaftSnapshot.config */
    uint32_t crc = crc32c(0, h, sizeof h);
    crc = crc32c(crc, config, config_len);
    put_u32(h, s->len);
    crc = crc32c(crc, h, 4);
    return s->len ? crc32c(crc, s->data, s->len) : crc;
}

/* ---------- encoding ---------- */

struct enc_entries {
    const struct raft_entry *e;
    const uint32_t *crc; /* one per entry, computed once before encoding */
    uint32_t n;
};

struct enc_bytes {
    const uint8_t *data;
    size_t len;
};

static bool enc_bytes_cb(pb_ostream_t *os, const pb_field_t *field, void *const *arg)
{
    const struct enc_bytes *b = *arg;
    if (b->len == 0)
        return true; /* proto3: an empty bytes field is not written */
    return pb_encode_tag_for_field(os, field) && pb_encode_string(os, b->data, b->len);
}

static bool enc_entries_cb(pb_ostream_t *os, const pb_field_t *field, void *const *arg)
{
    const struct enc_entries *l = *arg;
    for (uint32_t i = 0; i < l->n; i++) {
        const struct raft_entry *e = &l->e[i];
        struct enc_bytes data = {e->data, e->len};
        cmq_RaftEntry oe = cmq_RaftEntry_init_zero;
        oe.term = e->term;
        oe.index = e->index;
        oe.type = e->type;
        oe.crc32c = l->crc[i];
        oe.data.funcs.encode = enc_bytes_cb;
        oe.data.arg = &data;
        if (!pb_encode_tag_for_field(os, field) ||
            !pb_encode_submessage(os, cmq_RaftEntry_fields, &oe))
            return false;
    }
    return true;
}

/* Checks the entries against the limits and computes their CRCs into a new
 * array (*crcs, NULL when n is 0). */
static int prepare_entries(const struct raft_entry *e, uint32_t n, uint32_t **crcs)
{
    *crcs = NULL;
    if (n > RAFTWIRE_ENTRIES_MAX)
        return CMQ_ELIMIT;
    if (n == 0)
        return CMQ_OK;
    uint32_t *c = malloc(n * sizeof *c);
    if (!c)
        return CMQ_ENOMEM;
    for (uint32_t i = 0; i < n; i++) {
        if (e[i].len > RAFTWIRE_ENTRY_BYTES_MAX || (e[i].len && !e[i].data)) {
            free(c);
            return e[i].len > RAFTWIRE_ENTRY_BYTES_MAX ? CMQ_ETOOBIG : CMQ_EINVAL;
        }
        c[i] = raftwire_entry_crc(&e[i]);
    }
    *crcs = c;
    return CMQ_OK;
}

static int encode(const pb_msgdesc_t *fields, const void *msg, uint8_t **out, size_t *out_len)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = rpc_pb_encode(fields, msg, &buf, &len);
    if (rc == CMQ_OK && len > RAFTWIRE_MSG_BYTES_MAX) {
        free(buf);
        rc = CMQ_ETOOBIG;
    }
    if (rc == CMQ_OK) {
        *out = buf;
        *out_len = len;
    }
    return rc;
}

int raftwire_encode_msg(uint32_t partition, const struct raft_msg *m, uint8_t **out,
                        size_t *out_len)
{
    cmq_RaftWire w = cmq_RaftWire_init_zero;
    w.partition = partition;
    w.has_msg = true;
    cmq_RaftMessage *o = &w.msg;
    o->type = m->type;
    o->flags = m->flags;
    o->from = m->from;
    o->to = m->to;
    o->term = m->term;
    o->log_term = m->log_term;
    o->index = m->index;
    o->commit = m->commit;
    o->reject = m->reject;
    o->hint_index = m->hint_index;
    o->hint_term = m->hint_term;
    o->read_seq = m->read_seq;
    uint32_t *crcs = NULL;
    int rc = prepare_entries(m->entries, m->n_entries, &crcs);
    if (rc != CMQ_OK)
        return rc;
    struct enc_entries list = {m->entries, crcs, m->n_entries};
    if (m->n_entries) {
        o->entries.funcs.encode = enc_entries_cb;
        o->entries.arg = &list;
    }
    struct enc_bytes image = {m->snapshot.data, m->snapshot.len};
    if (m->type == RAFT_MSG_SNAPSHOT) {
        const struct raft_snapshot *s = &m->snapshot;
        if (s->len > RAFTWIRE_SNAPSHOT_BYTES_MAX || (s->len && !s->data)) {
            free(crcs);
            return s->len > RAFTWIRE_SNAPSHOT_BYTES_MAX ? CMQ_ETOOBIG : CMQ_EINVAL;
        }
        o->has_snapshot = true;
        o->snapshot.index = s->index;
        o->snapshot.term = s->term;
        size_t clen = raft_config_encode(&s->config, o->snapshot.config.bytes,
                                         sizeof o->snapshot.config.bytes);
        if (clen == 0) {
            free(crcs);
            return CMQ_EINVAL;
        }
        /* clen <= sizeof config.bytes (200), asserted above to fit. */
        _Static_assert(sizeof o->snapshot.config.bytes <= PB_SIZE_MAX, "config size fits");
        o->snapshot.config.size = (pb_size_t)clen;
        o->snapshot.crc32c = raftwire_snapshot_crc(s, o->snapshot.config.bytes, clen);
        o->snapshot.data.funcs.encode = enc_bytes_cb;
        o->snapshot.data.arg = &image;
    }
    rc = encode(cmq_RaftWire_fields, &w, out, out_len);
    free(crcs);
    return rc;
}

int raftwire_encode_install(uint32_t partition, const struct partition_chunk *c, uint8_t **out,
                            size_t *out_len)
{
    cmq_RaftInstall w = cmq_RaftInstall_init_zero;
    w.partition = partition;
    w.from = c->from;
    w.to = c->to;
    w.term = c->term;
    w.snap_index = c->snap_index;
    w.snap_term = c->snap_term;
    w.first_index = c->first_index;
    w.next = c->next;
    w.ack = c->ack != 0;
    uint32_t *crcs = NULL;
    int rc = prepare_entries(c->entries, c->n_entries, &crcs);
    if (rc != CMQ_OK)
        return rc;
    struct enc_entries list = {c->entries, crcs, c->n_entries};
    if (c->n_entries) {
        w.entries.funcs.encode = enc_entries_cb;
        w.entries.arg = &list;
    }
    rc = encode(cmq_RaftInstall_fields, &w, out, out_len);
    free(crcs);
    return rc;
}

/* ---------- decoding ---------- */

struct dec {
    const uint8_t *src, *src_end; /* the buffer being decoded */
    struct raft_entry *ents;
    uint32_t n, cap;
    int status;                   /* a limit or allocation failure seen by a callback */
    struct raftwire_fault *fault; /* the first CRC mismatch */
};

struct dec_bytes {
    struct dec *d;
    size_t max;
    const uint8_t *data;
    size_t len;
};

/* Borrows the rest of `is` (one length-delimited field) from the buffer.  A
 * field sent with another wire type reaches a callback as a copy on nanopb's
 * stack and is refused. */
static bool dec_bytes_cb(pb_istream_t *is, const pb_field_t *field, void **arg)
{
    (void)field;
    struct dec_bytes *b = *arg;
    const uint8_t *p = is->state; /* a buffer stream: state is the read position */
    if (p < b->d->src || p > b->d->src_end || is->bytes_left > (size_t)(b->d->src_end - p))
        return false;
    if (is->bytes_left > b->max) {
        b->d->status = CMQ_ETOOBIG;
        return false;
    }
    b->data = p;
    b->len = is->bytes_left;
    return pb_read(is, NULL, is->bytes_left);
}

/* One RaftEntry (called once per element of the repeated field). */
static bool dec_entry_cb(pb_istream_t *is, const pb_field_t *field, void **arg)
{
    (void)field;
    struct dec *d = *arg;
    if (d->n == RAFTWIRE_ENTRIES_MAX) {
        d->status = CMQ_ELIMIT;
        return false;
    }
    if (d->n == d->cap) {
        uint32_t cap = d->cap ? d->cap * 2 : 16;
        if (cap > RAFTWIRE_ENTRIES_MAX)
            cap = RAFTWIRE_ENTRIES_MAX;
        struct raft_entry *ents = realloc(d->ents, cap * sizeof *ents);
        if (!ents) {
            d->status = CMQ_ENOMEM;
            return false;
        }
        d->ents = ents;
        d->cap = cap;
    }
    struct dec_bytes data = {d, RAFTWIRE_ENTRY_BYTES_MAX, NULL, 0};
    cmq_RaftEntry oe = cmq_RaftEntry_init_zero;
    oe.data.funcs.decode = dec_bytes_cb;
    oe.data.arg = &data;
    if (!pb_decode(is, cmq_RaftEntry_fields, &oe))
        return false;
    struct raft_entry *e = &d->ents[d->n++];
    /* data.len <= RAFTWIRE_ENTRY_BYTES_MAX (dec_bytes_cb), which fits a u32. */
    *e = (struct raft_entry){.term = oe.term, .index = oe.index, .type = oe.type,
                             .len = (uint32_t)data.len, .data = data.data};
    uint32_t crc = raftwire_entry_crc(e);
    if (crc != oe.crc32c && !d->fault->crc_bad)
        *d->fault = (struct raftwire_fault){.crc_bad = 1, .index = e->index,
                                            .stored_crc = oe.crc32c, .computed_crc = crc};
    return true;
}

static int dec_status(const struct dec *d, bool ok)
{
    if (d->status != CMQ_OK)
        return d->status;
    if (!ok)
        return CMQ_ECORRUPT;
    return d->fault->crc_bad ? CMQ_ECORRUPT : CMQ_OK;
}

int raftwire_decode_msg(const uint8_t *buf, size_t len, struct raftwire_msg *out)
{
    memset(out, 0, sizeof *out);
    struct dec d = {.src = buf, .src_end = buf + len, .fault = &out->fault};
    struct dec_bytes image = {&d, RAFTWIRE_SNAPSHOT_BYTES_MAX, NULL, 0};
    cmq_RaftWire w = cmq_RaftWire_init_zero;
    w.msg.entries.funcs.decode = dec_entry_cb;
    w.msg.entries.arg = &d;
    w.msg.snapshot.data.funcs.decode = dec_bytes_cb;
    w.msg.snapshot.data.arg = &image;
    pb_istream_t is = pb_istream_from_buffer(buf, len);
    bool ok = pb_decode(&is, cmq_RaftWire_fields, &w) && w.has_msg;
    out->partition = w.partition;
    out->entries = d.ents;
    const cmq_RaftMessage *o = &w.msg;
    out->m = (struct raft_msg){
        .type = o->type, .flags = o->flags, .from = o->from, .to = o->to, .term = o->term,
        .log_term = o->log_term, .index = o->index, .commit = o->commit, .reject = o->reject,
        .hint_index = o->hint_index, .hint_term = o->hint_term, .read_seq = o->read_seq,
        .n_entries = d.n, .entries = d.ents,
    };
    if (ok && o->has_snapshot) {
        struct raft_snapshot *s = &out->m.snapshot;
        s->index = o->snapshot.index;
        s->term = o->snapshot.term;
        ok = raft_config_decode(o->snapshot.config.bytes, o->snapshot.config.size, &s->config) ==
             RAFT_OK;
        /* image.len <= RAFTWIRE_SNAPSHOT_BYTES_MAX (dec_bytes_cb), which fits a u32. */
        s->len = (uint32_t)image.len;
        s->data = image.data;
        uint32_t crc = raftwire_snapshot_crc(s, o->snapshot.config.bytes, o->snapshot.config.size);
        if (ok && crc != o->snapshot.crc32c && !out->fault.crc_bad)
            out->fault = (struct raftwire_fault){.crc_bad = 2, .index = s->index,
                                                 .stored_crc = o->snapshot.crc32c,
                                                 .computed_crc = crc};
    }
    return dec_status(&d, ok);
}

int raftwire_decode_install(const uint8_t *buf, size_t len, struct raftwire_install *out)
{
    memset(out, 0, sizeof *out);
    struct dec d = {.src = buf, .src_end = buf + len, .fault = &out->fault};
    cmq_RaftInstall w = cmq_RaftInstall_init_zero;
    w.entries.funcs.decode = dec_entry_cb;
    w.entries.arg = &d;
    pb_istream_t is = pb_istream_from_buffer(buf, len);
    bool ok = pb_decode(&is, cmq_RaftInstall_fields, &w);
    out->partition = w.partition;
    out->entries = d.ents;
    out->c = (struct partition_chunk){
        .from = w.from, .to = w.to, .term = w.term, .snap_index = w.snap_index,
        .snap_term = w.snap_term, .first_index = w.first_index, .next = w.next, .ack = w.ack,
        .n_entries = d.n, .entries = d.ents,
    };
    return dec_status(&d, ok);
}

void raftwire_msg_release(struct raftwire_msg *w)
{
    if (!w)
        return;
    free(w->entries);
    w->entries = NULL;
    w->m.entries = NULL;
    w->m.n_entries = 0;
}

void raftwire_install_release(struct raftwire_install *w)
{
    if (!w)
        return;
    free(w->entries);
    w->entries = NULL;
    w->c.entries = NULL;
    w->c.n_entries = 0;
}
