/* cmq_frame.h: the CMQ TCP protocol's framing and envelope codec
 * (shared/spec/cmq-tcp-protocol.md §2-§4), shared by the gateway's TCP
 * listener and libcmq.  Pure: no I/O, no clock, no logging.
 *
 * A frame is 00 00, the total length (header included) as an unsigned
 * 32-bit little-endian number, then one encoded cmqtcp_TcpFrame
 * (proto/cmq_tcp.proto).  cmq_frame_peek finds frame boundaries in a byte
 * stream; cmq_frame_decode turns a payload into a TcpFrame whose message
 * bodies borrow from the payload (zero-copy); cmq_frame_encode does the
 * reverse, with the header.
 */
#ifndef CMQ_CLIENT_FRAME_H
#define CMQ_CLIENT_FRAME_H

#include "cmq_tcp.pb.h"

#include <stddef.h>
#include <stdint.h>

#define CMQ_FRAME_HDR 6
/* Default cap on a frame's total length: 1 MiB messages x 16 + 64 KiB (§2.2). */
#define CMQ_FRAME_MAX_DEFAULT ((16u << 20) + (64u << 10))
/* The protocol's own ceiling: the Java client reads the length as int32. */
#define CMQ_FRAME_MAX_ABS 0x7fffffffu
#define CMQ_FRAME_BODIES_MAX 16

enum cmq_frame_status {
    CMQ_FRAME_OK = 0,
    CMQ_FRAME_MORE = 1,        /* fewer bytes than the frame needs: read more */
    CMQ_FRAME_BAD_MARKER = -1, /* byte 0 or 1 is not zero */
    CMQ_FRAME_BAD_LENGTH = -2, /* total < 6 */
    CMQ_FRAME_TOO_BIG = -3,    /* total above the cap */
    CMQ_FRAME_UNDECODABLE = -4 /* the payload is not a valid TcpFrame / TcpHead */
};

/* A borrowed byte string. */
struct cmq_bytes {
    const uint8_t *data;
    size_t len;
};

/* A decoded or to-be-encoded frame.  `bodies` are the message bodies of
 * whichever body field the frame carries: the one or many msgBody of a
 * send / batch send / publish / batch publish request, pull_rsp.msg_body
 * (bodies[0]) or batch_pull_rsp.msg_list[i].msg_body (bodies[i]).  After
 * cmq_frame_decode they point into the decoded payload.  `ids` likewise
 * stands for msgids or receipt_handle_list. */
struct cmq_frame;
struct cmq_frame_slot { /* decoder bookkeeping: body i of frame f */
    struct cmq_frame *f;
    unsigned i;
};

struct cmq_frame {
    cmqtcp_TcpFrame m;
    struct cmq_bytes bodies[CMQ_FRAME_BODIES_MAX];
    size_t n_bodies;
    /* m.msgids (responses to send / publish) or
     * m.tcp_batch_delete_msg.receipt_handle_list: written unpacked, read
     * packed or not. */
    uint64_t ids[CMQ_FRAME_BODIES_MAX];
    size_t n_ids;
    /* decoder state: the payload being decoded (a body must lie inside it;
     * nanopb hands a callback a copy on its stack when the wire type is not
     * length-delimited, which must never be kept) */
    const uint8_t *src, *src_end;
    struct cmq_frame_slot slots[CMQ_FRAME_BODIES_MAX];
};

/* Looks at the start of a byte stream.  CMQ_FRAME_OK with *total set when a
 * whole frame of `total` bytes is buffered; CMQ_FRAME_MORE when more bytes
 * are needed (with *total set once the header is complete); or an error
 * status (the stream is unusable: close the connection).  cap = 0 means
 * CMQ_FRAME_MAX_DEFAULT; a cap above CMQ_FRAME_MAX_ABS is lowered to it. */
int cmq_frame_peek(const uint8_t *buf, size_t len, uint32_t cap, size_t *total);

/* Writes the 6-byte header for a frame whose payload is `payload_len` bytes. */
void cmq_frame_header(uint8_t hdr[CMQ_FRAME_HDR], size_t payload_len);

/* Decodes only the head (seqno, cmd, result, error, request_id) of a
 * payload, skipping every other field.  CMQ_FRAME_OK or CMQ_FRAME_UNDECODABLE. */
int cmq_frame_decode_head(const uint8_t *payload, size_t len, cmqtcp_TcpHead *head);

/* Decodes a whole payload into *f (bodies borrow from `payload`).
 * CMQ_FRAME_OK or CMQ_FRAME_UNDECODABLE (malformed, a required field
 * missing, a list longer than its bound, more than 16 bodies). */
int cmq_frame_decode(const uint8_t *payload, size_t len, struct cmq_frame *f);

/* Encodes *f as a whole frame (header included) into a new malloc'd buffer
 * (*out, owned by the caller).  f->bodies are written into the body field
 * f->m carries (see above).  Returns CMQ_FRAME_OK, CMQ_FRAME_TOO_BIG (the
 * frame would exceed CMQ_FRAME_MAX_ABS) or CMQ_FRAME_UNDECODABLE (encoding
 * failed, e.g. out of memory). */
int cmq_frame_encode(struct cmq_frame *f, uint8_t **out, size_t *out_len);

/* Zeroes *f and sets its seqno and cmd. */
void cmq_frame_init(struct cmq_frame *f, int64_t seqno, int32_t cmd);

#endif
