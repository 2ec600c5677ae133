/* cmdcodec.c: encodes and peeks StorageCommand, the storage Raft entry; see
 * cmdcodec.h. */
#include "cmdcodec.h"
#include "pbwire.h"

#include "status.h"

#include <pb_encode.h>
#include <stdlib.h>
#include <string.h>

#define F_LEADER_MS cmq_StorageCommand_leader_ms_tag

/* The framing before the member's bytes: returns its length (<= CMDCODEC_FRAME_MAX). */
static size_t head(uint8_t *out, uint64_t leader_ms, uint32_t kind, size_t member_len)
{
    size_t n = pbwire_put_tag(out, F_LEADER_MS, PBWIRE_VARINT);
    n += pbwire_put_varint(out + n, leader_ms);
    n += pbwire_put_tag(out + n, kind, PBWIRE_LEN);
    n += pbwire_put_varint(out + n, (uint64_t)member_len);
    return n;
}

static size_t head_size(uint64_t leader_ms, uint32_t kind, size_t member_len)
{
    return pbwire_tag_size(F_LEADER_MS) + pbwire_varint_size(leader_ms) +
           pbwire_tag_size(kind) + pbwire_varint_size((uint64_t)member_len);
}

size_t cmdcodec_size(uint64_t leader_ms, uint32_t kind, size_t member_len)
{
    return head_size(leader_ms, kind, member_len) + member_len;
}

size_t cmdcodec_encode(uint8_t *out, size_t cap, uint64_t leader_ms, uint32_t kind,
                       const void *member, size_t member_len)
{
    size_t h = head_size(leader_ms, kind, member_len);
    if (h > cap || member_len > cap - h)
        return 0;
    size_t n = head(out, leader_ms, kind, member_len);
    if (member_len)
        memcpy(out + n, member, member_len);
    return n + member_len;
}

int cmdcodec_build(uint64_t leader_ms, uint32_t kind, const void *member, size_t member_len,
                   uint8_t **out, size_t *out_len)
{
    size_t cap = cmdcodec_size(leader_ms, kind, member_len);
    uint8_t *buf = malloc(cap);
    if (!buf)
        return CMQ_ENOMEM;
    *out_len = cmdcodec_encode(buf, cap, leader_ms, kind, member, member_len);
    *out = buf;
    return CMQ_OK;
}

size_t cmdcodec_encode_msg(uint8_t *out, size_t cap, uint64_t leader_ms, uint32_t kind,
                           const pb_msgdesc_t *fields, const void *msg)
{
    size_t len;
    if (!pb_get_encoded_size(&len, fields, msg))
        return 0;
    size_t h = head_size(leader_ms, kind, len);
    if (h > cap || len > cap - h)
        return 0;
    size_t n = head(out, leader_ms, kind, len);
    pb_ostream_t os = pb_ostream_from_buffer(out + n, len);
    if (!pb_encode(&os, fields, msg) || os.bytes_written != len)
        return 0;
    return n + len;
}

bool cmdcodec_peek(const void *entry, size_t len, struct cmdcodec_view *v)
{
    struct pbwire_reader r;
    struct pbwire_field f;
    memset(v, 0, sizeof *v);
    pbwire_reader_init(&r, entry, len);
    while (pbwire_next(&r, &f)) {
        if (f.num == F_LEADER_MS && f.wt == PBWIRE_VARINT) {
            v->leader_ms = f.v;
        } else if (f.num >= CMDCODEC_KIND_MIN && f.wt == PBWIRE_LEN) {
            v->kind = f.num;
            v->member = f.data;
            v->member_len = f.len;
            v->id = 0;
            /* the member's id: its field 1 when a varint (a malformed
             * member is a malformed command) */
            struct pbwire_reader m;
            struct pbwire_field g;
            pbwire_reader_init(&m, f.data, f.len);
            while (pbwire_next(&m, &g))
                if (g.num == 1 && g.wt == PBWIRE_VARINT)
                    v->id = g.v;
            if (m.err)
                r.err = true;
        }
    }
    if (r.err) {
        memset(v, 0, sizeof *v);
        return false;
    }
    return true;
}
