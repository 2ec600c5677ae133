/* qsm_entry.c: log entries as the queue state machine sees them: peeking at a
 * StorageCommand's kind, clock and queue id, parsing a Send entry in place
 * (bodies stay in the entry), the stateless validation of a Send (I6), the
 * ordered-group key of an item, and reading entries back through the reader
 * seam with a one-entry cache.
 *
 * Owns the cache's fill (qsm.c releases it); a reader failure puts the qsm in
 * its failed state (invariant 3 of qsm.h). */
#include "qsm_internal.h"
#include "hash.h"

#include "status.h"

#include <pb_decode.h>
#include <stdlib.h>
#include <string.h>

/* ---- protobuf peeking: the command kind, queue id and stamp of an entry
 * without decoding its bodies ---- */

bool qsm_pb_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    uint64_t x = 0;
    for (unsigned shift = 0; shift < 64; shift += 7) {
        if (*p >= end)
            return false;
        uint8_t b = *(*p)++;
        x |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = x;
            return true;
        }
    }
    return false;
}

bool qsm_pb_skip(const uint8_t **p, const uint8_t *end, uint32_t wt)
{
    uint64_t n;
    switch (wt) {
    case 0:
        return qsm_pb_varint(p, end, &n);
    case 1:
        n = 8;
        break;
    case 2:
        if (!qsm_pb_varint(p, end, &n))
            return false;
        break;
    case 5:
        n = 4;
        break;
    default:
        return false;
    }
    if (n > (uint64_t)(end - *p))
        return false;
    *p += n;
    return true;
}

/* kind: the oneof field number of StorageCommand (10..18), 0 if none;
 * *sub, *sub_len: that member's encoded bytes (inside buf). */
bool qsm_peek_cmd(const uint8_t *buf, size_t len, uint32_t *kind, uint64_t *queue_id,
                  uint64_t *leader_ms, const uint8_t **sub, size_t *sub_len)
{
    const uint8_t *p = buf, *end = buf + len;
    *kind = 0;
    *sub = NULL;
    *sub_len = 0;
    *queue_id = 0;
    *leader_ms = 0;
    while (p < end) {
        uint64_t tag;
        if (!qsm_pb_varint(&p, end, &tag))
            return false;
        uint32_t field = (uint32_t)(tag >> 3), wt = (uint32_t)(tag & 7);
        if (field == 1 && wt == 0) {
            if (!qsm_pb_varint(&p, end, leader_ms))
                return false;
        } else if (field >= 10 && field <= 20 && wt == 2) {
            uint64_t n;
            if (!qsm_pb_varint(&p, end, &n) || n > (uint64_t)(end - p))
                return false;
            const uint8_t *s = p, *send = p + n;
            *kind = field;
            *queue_id = 0;
            *sub = p;
            *sub_len = (size_t)n;
            while (s < send) {
                uint64_t t2;
                if (!qsm_pb_varint(&s, send, &t2))
                    return false;
                if ((t2 >> 3) == 1 && (t2 & 7) == 0) {
                    if (!qsm_pb_varint(&s, send, queue_id))
                        return false;
                } else if (!qsm_pb_skip(&s, send, (uint32_t)(t2 & 7))) {
                    return false;
                }
            }
            p = send;
        } else if (!qsm_pb_skip(&p, end, wt)) {
            return false;
        }
    }
    return true;
}

bool qsm_decode_cmd(const uint8_t *buf, size_t len, cmq_StorageCommand *out)
{
    pb_istream_t in = pb_istream_from_buffer(buf, len);
    return pb_decode(&in, cmq_StorageCommand_fields, out); /* releases on failure */
}

/* A Send entry parsed in place: bodies and group ids point into the entry.
 * nanopb cannot hold a body over 64 KiB here (16-bit sizes), and a parse
 * without copies is what a scan over the log wants anyway. */
static bool parse_item(const uint8_t *p, const uint8_t *end, struct send_item *it)
{
    memset(it, 0, sizeof *it);
    it->body = p; /* non-NULL even when empty */
    while (p < end) {
        uint64_t tag, v;
        if (!qsm_pb_varint(&p, end, &tag))
            return false;
        uint32_t f = (uint32_t)(tag >> 3), wt = (uint32_t)(tag & 7);
        if ((f == 1 || f == 3 || f == 5 || f == 6) && wt == 2) {
            if (!qsm_pb_varint(&p, end, &v) || v > (uint64_t)(end - p))
                return false;
            if (f == 1) {
                it->body = p;
                it->len = (size_t)v;
            } else if (f == 3) {
                it->group = (const char *)p;
                it->group_len = (size_t)v;
            } else if (f == 5) {
                it->origin = p;
                it->origin_len = (size_t)v;
            } else {
                it->addr = (const char *)p;
                it->addr_len = (size_t)v;
            }
            p += v;
        } else if (f == 2 && wt == 0) {
            if (!qsm_pb_varint(&p, end, &it->delay_s))
                return false;
        } else if (f == 4 && wt == 0) {
            if (!qsm_pb_varint(&p, end, &it->dedup_key))
                return false;
        } else if (f == 7 && wt == 0) {
            if (!qsm_pb_varint(&p, end, &it->txn_check_ms))
                return false;
        } else if (!qsm_pb_skip(&p, end, wt)) {
            return false;
        }
    }
    return true;
}

/* Parses an encoded SendRequest (storage.proto field numbers). */
bool qsm_parse_send(const uint8_t *buf, size_t len, struct send_view *sv)
{
    const uint8_t *p = buf, *end = buf + len;
    sv->queue_id = 0;
    sv->n = 0;
    sv->addr = NULL;
    sv->addr_len = 0;
    while (p < end) {
        uint64_t tag, v;
        if (!qsm_pb_varint(&p, end, &tag))
            return false;
        uint32_t f = (uint32_t)(tag >> 3), wt = (uint32_t)(tag & 7);
        if (f == 1 && wt == 0) {
            if (!qsm_pb_varint(&p, end, &sv->queue_id))
                return false;
        } else if (f == 3 && wt == 2) {
            if (!qsm_pb_varint(&p, end, &v) || v > (uint64_t)(end - p))
                return false;
            sv->addr = (const char *)p;
            sv->addr_len = (size_t)v;
            p += v;
        } else if (f == 2 && wt == 2) {
            if (!qsm_pb_varint(&p, end, &v) || v > (uint64_t)(end - p))
                return false;
            if (sv->n < QSM_BATCH_MAX && !parse_item(p, p + v, &sv->m[sv->n]))
                return false;
            if (sv->n <= QSM_BATCH_MAX)
                sv->n++;
            p += v;
        } else if (!qsm_pb_skip(&p, end, wt)) {
            return false;
        }
    }
    return true;
}

/* ---- validation ---- */

/* I6: depends on the entry and the queue's immutable `ordered` flag only. */
int qsm_send_validate(const struct send_view *s, bool ordered)
{
    if (s->n < 1 || s->n > QSM_BATCH_MAX)
        return CMQ_EINVAL;
    uint64_t total = 0;
    for (uint32_t i = 0; i < s->n; i++) {
        const struct send_item *m = &s->m[i];
        if (m->len == 0)
            return CMQ_EINVAL;
        if (m->len > QSM_BODY_BYTES_MAX)
            return CMQ_ETOOBIG;
        if (m->delay_s > QSM_DELAY_S_MAX)
            return CMQ_EINVAL;
        if (ordered && m->delay_s > 0)
            return CMQ_EINVAL;
        if (m->txn_check_ms && (ordered || m->delay_s || m->txn_check_ms > QSM_TXN_CHECK_MS_MAX))
            return CMQ_EINVAL;
        if (m->group_len > QSM_GROUP_ID_LEN_MAX || (m->group && memchr(m->group, 0, m->group_len)))
            return CMQ_EINVAL;
        total += m->len;
    }
    return total > QSM_BATCH_BYTES_MAX ? CMQ_ETOOBIG : CMQ_OK;
}

uint64_t qsm_group_key(const struct queue *qu, const struct send_item *m)
{
    if (!qu->a.ordered || !m->group_len)
        return 0;
    /* FROZEN (hash.h): the key is in snapshots; a collision only serialises two groups */
    return hash_nonzero(hash_fnv1a64(HASH_FNV1A64_INIT, m->group, m->group_len));
}

/* Loads entry `index` into the cache.  On CMQ_OK *send is the parsed Send if
 * the entry is a Send of `queue_id`, else NULL. */
int qsm_entry_load(struct qsm *q, uint64_t index, uint64_t queue_id,
                   const struct send_view **send, uint64_t *leader_ms)
{
    *send = NULL;
    if (q->cache_index != index) {
        qsm_cache_drop(q);
        uint8_t *buf = NULL;
        size_t len = 0;
        int rc = q->reader.read_entry(q->reader.arg, index, &buf, &len);
        q->reads++;
        if (rc != CMQ_OK) {
            free(buf);
            return qsm_fail(q, rc == CMQ_ENOTFOUND ? CMQ_EIO : rc);
        }
        uint32_t kind = 0;
        uint64_t qid, lms = 0;
        const uint8_t *sub;
        size_t sub_len;
        q->cache_buf = buf;
        q->cache_index = index;
        if (len && qsm_peek_cmd(buf, len, &kind, &qid, &lms, &sub, &sub_len) &&
            kind == cmq_StorageCommand_send_tag && qsm_parse_send(sub, sub_len, &q->cache_send))
            q->cache_is_send = true;
        q->cache_leader_ms = lms;
    }
    *leader_ms = q->cache_leader_ms;
    if (q->cache_is_send && q->cache_send.queue_id == queue_id)
        *send = &q->cache_send;
    return CMQ_OK;
}

uint8_t *qsm_body_copy(const struct send_item *m, size_t *len)
{
    *len = m->len;
    uint8_t *b = malloc(m->len ? m->len : 1);
    if (b)
        memcpy(b, m->body, m->len);
    return b;
}

/* The Send item at `pos` of queue `qu`, read back (for tracked recs). */
int qsm_item_load(struct qsm *q, struct queue *qu, uint64_t pos, const struct send_item **item)
{
    const struct send_view *s;
    uint64_t lms;
    int rc = qsm_entry_load(q, POS_INDEX(pos), qu->id, &s, &lms);
    if (rc)
        return rc;
    if (!s || POS_SLOT(pos) >= s->n)
        return qsm_fail(q, CMQ_EINTERNAL);
    *item = &s->m[POS_SLOT(pos)];
    return CMQ_OK;
}

int qsm_message_read(const struct qsm *q, uint64_t queue_id, uint64_t msg_id, uint8_t **body,
                     size_t *len, uint64_t *enqueue_ms)
{
    *body = NULL;
    *len = 0;
    if (qsm_id_partition(msg_id) != q->partition)
        return CMQ_EINVAL;
    uint8_t *buf = NULL;
    size_t blen = 0;
    int rc = q->reader.read_entry(q->reader.arg, qsm_id_index(msg_id), &buf, &blen);
    if (rc != CMQ_OK)
        return rc;
    uint32_t kind;
    uint64_t qid, lms;
    const uint8_t *sub;
    size_t sub_len;
    struct send_view sv;
    rc = CMQ_ENOTFOUND;
    if (qsm_peek_cmd(buf, blen, &kind, &qid, &lms, &sub, &sub_len) &&
        kind == cmq_StorageCommand_send_tag && qsm_parse_send(sub, sub_len, &sv) &&
        sv.queue_id == queue_id && qsm_id_slot(msg_id) < sv.n && sv.n <= QSM_BATCH_MAX) {
        *body = qsm_body_copy(&sv.m[qsm_id_slot(msg_id)], len);
        if (enqueue_ms)
            *enqueue_ms = lms;
        rc = *body ? CMQ_OK : CMQ_ENOMEM;
    }
    free(buf);
    return rc;
}
