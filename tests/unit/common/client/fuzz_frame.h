/* fuzz_frame.h: one fuzzing step over the TCP frame decoder
 * (common/client/cmq_frame.c), shared by the corpus replay
 * (test_frame_corpus.c).  The input is a byte stream as a connection would
 * deliver it: frames are peeled off with cmq_frame_peek exactly as the
 * gateway does (§2.3); each payload is decoded head-first then whole, and a
 * frame that decodes is encoded again and must decode to the same head and
 * bodies.  Violations abort(), so Criterion sees a crash. */
#ifndef TCP_FUZZ_FRAME_H
#define TCP_FUZZ_FRAME_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cmq_frame.h"

#define FRAME_CHECK(cond)                                                               \
    do {                                                                                \
        if (!(cond))                                                                    \
            abort();                                                                    \
    } while (0)

struct frame_fuzz_result {
    int frames;     /* frames peeled off */
    int decoded;    /* of which decoded whole */
    int stream_err; /* the peek status that stopped the stream (0: consumed / needs more) */
};

static void fuzz_frame_payload(const uint8_t *p, size_t len, struct frame_fuzz_result *r)
{
    cmqtcp_TcpHead h;
    int hs = cmq_frame_decode_head(p, len, &h);
    struct cmq_frame *f = malloc(sizeof *f), *g = malloc(sizeof *g);
    FRAME_CHECK(f && g);
    int fs = cmq_frame_decode(p, len, f);
    if (fs == CMQ_FRAME_OK) {
        r->decoded++;
        FRAME_CHECK(hs == CMQ_FRAME_OK); /* whole decodes imply the head does */
        FRAME_CHECK(h.seqno == f->m.seqno && h.cmd == f->m.cmd);
        FRAME_CHECK(f->n_bodies <= CMQ_FRAME_BODIES_MAX);
        for (size_t i = 0; i < f->n_bodies; i++)
            FRAME_CHECK(f->bodies[i].len == 0 ||
                        (f->bodies[i].data >= p && f->bodies[i].data + f->bodies[i].len <= p + len));
        uint8_t *out;
        size_t out_len, total;
        FRAME_CHECK(cmq_frame_encode(f, &out, &out_len) == CMQ_FRAME_OK);
        FRAME_CHECK(cmq_frame_peek(out, out_len, CMQ_FRAME_MAX_ABS, &total) == CMQ_FRAME_OK);
        FRAME_CHECK(total == out_len);
        FRAME_CHECK(cmq_frame_decode(out + CMQ_FRAME_HDR, out_len - CMQ_FRAME_HDR, g) ==
                    CMQ_FRAME_OK);
        FRAME_CHECK(g->m.seqno == f->m.seqno && g->m.cmd == f->m.cmd);
        FRAME_CHECK(g->m.result == f->m.result && g->n_ids == f->n_ids);
        /* bodies survive when the frame carries one body field */
        int kinds = f->m.has_tcp_send_msg + f->m.has_tcp_batch_send_msg + f->m.has_tcp_publish_msg +
                    f->m.has_tcp_batch_publish_msg + f->m.has_pull_rsp + f->m.has_batch_pull_rsp;
        if (kinds == 1 && !f->m.has_batch_pull_rsp && !f->m.has_pull_rsp) {
            FRAME_CHECK(g->n_bodies == f->n_bodies);
            for (size_t i = 0; i < f->n_bodies; i++)
                FRAME_CHECK(g->bodies[i].len == f->bodies[i].len &&
                            memcmp(g->bodies[i].data, f->bodies[i].data, f->bodies[i].len) == 0);
        }
        free(out);
    }
    free(f);
    free(g);
}

static struct frame_fuzz_result fuzz_frame_one(const uint8_t *data, size_t len)
{
    struct frame_fuzz_result r = {0};
    size_t off = 0;
    while (off < len) {
        size_t total = 0;
        int st = cmq_frame_peek(data + off, len - off, 1u << 20, &total);
        if (st == CMQ_FRAME_MORE)
            break;
        if (st != CMQ_FRAME_OK) {
            r.stream_err = st;
            break;
        }
        FRAME_CHECK(total >= CMQ_FRAME_HDR && total <= len - off);
        r.frames++;
        fuzz_frame_payload(data + off + CMQ_FRAME_HDR, total - CMQ_FRAME_HDR, &r);
        off += total;
    }
    return r;
}

#endif
