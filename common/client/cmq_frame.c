/* cmq_frame.c: see cmq_frame.h. */
#include "cmq_frame.h"

#include <pb_decode.h>
#include <pb_encode.h>
#include <stdlib.h>
#include <string.h>

int cmq_frame_peek(const uint8_t *buf, size_t len, uint32_t cap, size_t *total)
{
    if (cap == 0)
        cap = CMQ_FRAME_MAX_DEFAULT;
    if (cap > CMQ_FRAME_MAX_ABS)
        cap = CMQ_FRAME_MAX_ABS;
    /* A non-zero marker byte is an error as soon as it is seen. */
    if ((len >= 1 && buf[0] != 0) || (len >= 2 && buf[1] != 0))
        return CMQ_FRAME_BAD_MARKER;
    if (len < CMQ_FRAME_HDR)
        return CMQ_FRAME_MORE;
    uint32_t t = (uint32_t)buf[2] | (uint32_t)buf[3] << 8 | (uint32_t)buf[4] << 16 |
                 (uint32_t)buf[5] << 24;
    if (t < CMQ_FRAME_HDR)
        return CMQ_FRAME_BAD_LENGTH;
    if (t > cap)
        return CMQ_FRAME_TOO_BIG;
    *total = t;
    return len >= t ? CMQ_FRAME_OK : CMQ_FRAME_MORE;
}

void cmq_frame_header(uint8_t hdr[CMQ_FRAME_HDR], size_t payload_len)
{
    uint32_t t = (uint32_t)(payload_len + CMQ_FRAME_HDR);
    hdr[0] = 0;
    hdr[1] = 0;
    hdr[2] = (uint8_t)t;
    hdr[3] = (uint8_t)(t >> 8);
    hdr[4] = (uint8_t)(t >> 16);
    hdr[5] = (uint8_t)(t >> 24);
}

int cmq_frame_decode_head(const uint8_t *payload, size_t len, cmqtcp_TcpHead *head)
{
    *head = (cmqtcp_TcpHead)cmqtcp_TcpHead_init_zero;
    pb_istream_t is = pb_istream_from_buffer(payload, len);
    return pb_decode(&is, cmqtcp_TcpHead_fields, head) ? CMQ_FRAME_OK : CMQ_FRAME_UNDECODABLE;
}

/* ---- bodies: borrowed on decode ---- */

/* Borrows the rest of the stream as a body, if it lies inside the payload
 * (a length-delimited field).  Anything else (a body sent with a scalar wire
 * type, which nanopb copies to its stack) fails the decode. */
static bool borrow(pb_istream_t *is, const struct cmq_frame *f, struct cmq_bytes *b)
{
    const uint8_t *p = is->state; /* a buffer stream: state is the read position */
    if (p < f->src || p > f->src_end || is->bytes_left > (size_t)(f->src_end - p))
        return false;
    b->data = p;
    b->len = is->bytes_left;
    return pb_read(is, NULL, is->bytes_left);
}

/* One body slot (pull_rsp, msg_list[i]). */
static bool dec_one(pb_istream_t *is, const pb_field_t *field, void **arg)
{
    (void)field;
    struct cmq_frame_slot *s = *arg;
    return borrow(is, s->f, &s->f->bodies[s->i]);
}

/* Appends to f->bodies (send / publish requests, repeated or not). */
static bool dec_append(pb_istream_t *is, const pb_field_t *field, void **arg)
{
    (void)field;
    struct cmq_frame *f = *arg;
    if (f->n_bodies == CMQ_FRAME_BODIES_MAX || !borrow(is, f, &f->bodies[f->n_bodies]))
        return false;
    f->n_bodies++;
    return true;
}

/* One element of a repeated uint64 (called per element, packed or not). */
static bool dec_id(pb_istream_t *is, const pb_field_t *field, void **arg)
{
    (void)field;
    struct cmq_frame *f = *arg;
    uint64_t v;
    if (!pb_decode_varint(is, &v) || f->n_ids == CMQ_FRAME_BODIES_MAX)
        return false;
    f->ids[f->n_ids++] = v;
    return true;
}

static void set_decoders(struct cmq_frame *f)
{
    cmqtcp_TcpFrame *m = &f->m;
    m->msgids = (pb_callback_t){.funcs.decode = dec_id, .arg = f};
    m->tcp_batch_delete_msg.receipt_handle_list = (pb_callback_t){.funcs.decode = dec_id, .arg = f};
    m->tcp_send_msg.msgBody = (pb_callback_t){.funcs.decode = dec_append, .arg = f};
    m->tcp_batch_send_msg.msgBody = (pb_callback_t){.funcs.decode = dec_append, .arg = f};
    m->tcp_publish_msg.msgBody = (pb_callback_t){.funcs.decode = dec_append, .arg = f};
    m->tcp_batch_publish_msg.msgBody = (pb_callback_t){.funcs.decode = dec_append, .arg = f};
    for (unsigned i = 0; i < CMQ_FRAME_BODIES_MAX; i++) {
        f->slots[i] = (struct cmq_frame_slot){f, i};
        m->batch_pull_rsp.msg_list[i].msg_body =
            (pb_callback_t){.funcs.decode = dec_one, .arg = &f->slots[i]};
    }
    m->pull_rsp.msg_body = (pb_callback_t){.funcs.decode = dec_one, .arg = &f->slots[0]};
}

int cmq_frame_decode(const uint8_t *payload, size_t len, struct cmq_frame *f)
{
    memset(f, 0, sizeof *f);
    f->src = payload;
    f->src_end = payload + len;
    set_decoders(f);
    pb_istream_t is = pb_istream_from_buffer(payload, len);
    if (!pb_decode(&is, cmqtcp_TcpFrame_fields, &f->m))
        return CMQ_FRAME_UNDECODABLE;
    if (f->m.has_pull_rsp && f->n_bodies == 0)
        f->n_bodies = f->bodies[0].data ? 1 : 0;
    if (f->m.has_batch_pull_rsp)
        f->n_bodies = f->m.batch_pull_rsp.msg_list_count;
    return CMQ_FRAME_OK;
}

/* ---- bodies: written on encode ---- */

struct enc_list {
    const struct cmq_bytes *b;
    size_t n;
};

static bool enc_list(pb_ostream_t *os, const pb_field_t *field, void *const *arg)
{
    const struct enc_list *l = *arg;
    for (size_t i = 0; i < l->n; i++)
        if (!pb_encode_tag_for_field(os, field) ||
            !pb_encode_string(os, l->b[i].data ? l->b[i].data : (const uint8_t *)"", l->b[i].len))
            return false;
    return true;
}

static bool enc_ids(pb_ostream_t *os, const pb_field_t *field, void *const *arg)
{
    const struct cmq_frame *f = *arg;
    size_t n = f->n_ids > CMQ_FRAME_BODIES_MAX ? CMQ_FRAME_BODIES_MAX : f->n_ids;
    for (size_t i = 0; i < n; i++)
        if (!pb_encode_tag_for_field(os, field) || !pb_encode_varint(os, f->ids[i]))
            return false;
    return true;
}

int cmq_frame_encode(struct cmq_frame *f, uint8_t **out, size_t *out_len)
{
    cmqtcp_TcpFrame *m = &f->m;
    size_t n = f->n_bodies > CMQ_FRAME_BODIES_MAX ? CMQ_FRAME_BODIES_MAX : f->n_bodies;
    struct enc_list all = {f->bodies, n};
    struct enc_list one[CMQ_FRAME_BODIES_MAX];
    pb_callback_t cb_all = {.funcs.encode = enc_list, .arg = &all};
    m->tcp_send_msg.msgBody = cb_all;
    m->tcp_batch_send_msg.msgBody = cb_all;
    m->tcp_publish_msg.msgBody = cb_all;
    m->tcp_batch_publish_msg.msgBody = cb_all;
    m->msgids = (pb_callback_t){.funcs.encode = m->has_tcp_batch_delete_msg ? NULL : enc_ids,
                                .arg = f};
    m->tcp_batch_delete_msg.receipt_handle_list = (pb_callback_t){.funcs.encode = enc_ids, .arg = f};
    if (m->has_pull_rsp) {
        one[0] = (struct enc_list){f->bodies, n ? 1 : 0};
        m->pull_rsp.msg_body = (pb_callback_t){.funcs.encode = enc_list, .arg = &one[0]};
    }
    for (pb_size_t i = 0; m->has_batch_pull_rsp && i < m->batch_pull_rsp.msg_list_count; i++) {
        one[i] = (struct enc_list){&f->bodies[i], i < n ? 1 : 0};
        m->batch_pull_rsp.msg_list[i].msg_body =
            (pb_callback_t){.funcs.encode = enc_list, .arg = &one[i]};
    }
    size_t size;
    if (!pb_get_encoded_size(&size, cmqtcp_TcpFrame_fields, m))
        return CMQ_FRAME_UNDECODABLE;
    if (size > CMQ_FRAME_MAX_ABS - CMQ_FRAME_HDR)
        return CMQ_FRAME_TOO_BIG;
    uint8_t *buf = malloc(size + CMQ_FRAME_HDR);
    if (!buf)
        return CMQ_FRAME_UNDECODABLE;
    cmq_frame_header(buf, size);
    pb_ostream_t os = pb_ostream_from_buffer(buf + CMQ_FRAME_HDR, size);
    if (!pb_encode(&os, cmqtcp_TcpFrame_fields, m) || os.bytes_written != size) {
        free(buf);
        return CMQ_FRAME_UNDECODABLE;
    }
    *out = buf;
    *out_len = size + CMQ_FRAME_HDR;
    return CMQ_FRAME_OK;
}

void cmq_frame_init(struct cmq_frame *f, int64_t seqno, int32_t cmd)
{
    memset(f, 0, sizeof *f);
    f->m.seqno = seqno;
    f->m.cmd = cmd;
}
