/* qsm_entry.c: log entries as the queue state machine sees them: a command
 * peeked by the one StorageCommand codec (cmdcodec.h), a Send parsed in place
 * (bodies stay in the entry), the stateless validation of a Send (I6), the
 * ordered-group key of an item, and reading entries back through the reader
 * seam with a one-entry cache.
 *
 * Owns the cache's fill (qsm.c releases it); a reader failure puts the qsm in
 * its failed state (invariant 3 of qsm.h). */
#include "qsm_internal.h"

#include "cmdcodec.h"
#include "hash.h"
#include "pbwire.h"
#include "status.h"

#include <pb_decode.h>
#include <stdlib.h>
#include <string.h>

/* ---- parsing: the command itself is peeked by cmdcodec.h (kind, clock,
 * member); a Send member is parsed here, in place, with pbwire.h ---- */

bool qsm_decode_cmd(const uint8_t *buf, size_t len, cmq_StorageCommand *out)
{
    pb_istream_t in = pb_istream_from_buffer(buf, len);
    return pb_decode(&in, cmq_StorageCommand_fields, out); /* releases on failure */
}

/* A Send entry parsed in place: bodies and group ids point into the entry.
 * nanopb cannot hold a body over 64 KiB here (16-bit sizes), and a parse
 * without copies is what a scan over the log wants anyway.  Field numbers
 * are the generated cmq_SendItem_*_tag; a field of another wire type than
 * its own is skipped, as before. */
static bool parse_item(const uint8_t *p, size_t len, struct send_item *it)
{
    memset(it, 0, sizeof *it);
    it->body = p; /* non-NULL even when empty */
    struct pbwire_reader r;
    struct pbwire_field f;
    pbwire_reader_init(&r, p, len);
    while (pbwire_next(&r, &f)) {
        if (f.wt == PBWIRE_LEN) {
            switch (f.num) {
            case cmq_SendItem_body_tag:
                it->body = f.data;
                it->len = f.len;
                break;
            case cmq_SendItem_group_id_tag:
                it->group = (const char *)f.data;
                it->group_len = f.len;
                break;
            case cmq_SendItem_origin_tag:
                it->origin = f.data;
                it->origin_len = f.len;
                break;
            case cmq_SendItem_client_addr_tag:
                it->addr = (const char *)f.data;
                it->addr_len = f.len;
                break;
            default:
                break;
            }
        } else if (f.wt == PBWIRE_VARINT) {
            switch (f.num) {
            case cmq_SendItem_delay_seconds_tag:
                it->delay_s = f.v;
                break;
            case cmq_SendItem_dedup_key_tag:
                it->dedup_key = f.v;
                break;
            case cmq_SendItem_txn_check_ms_tag:
                it->txn_check_ms = f.v;
                break;
            default:
                break;
            }
        }
    }
    return !r.err;
}

/* Parses an encoded SendRequest (cmq_SendRequest_*_tag). */
bool qsm_parse_send(const uint8_t *buf, size_t len, struct send_view *sv)
{
    sv->queue_id = 0;
    sv->n = 0;
    sv->addr = NULL;
    sv->addr_len = 0;
    struct pbwire_reader r;
    struct pbwire_field f;
    pbwire_reader_init(&r, buf, len);
    while (pbwire_next(&r, &f)) {
        if (f.num == cmq_SendRequest_queue_id_tag && f.wt == PBWIRE_VARINT) {
            sv->queue_id = f.v;
        } else if (f.num == cmq_SendRequest_client_addr_tag && f.wt == PBWIRE_LEN) {
            sv->addr = (const char *)f.data;
            sv->addr_len = f.len;
        } else if (f.num == cmq_SendRequest_messages_tag && f.wt == PBWIRE_LEN) {
            if (sv->n < QSM_BATCH_MAX && !parse_item(f.data, f.len, &sv->m[sv->n]))
                return false;
            if (sv->n <= QSM_BATCH_MAX)
                sv->n++;
        }
    }
    return !r.err;
}

/* The Send member of an encoded StorageCommand, parsed: true and *sv, *leader_ms
 * set; false when the entry is no well-formed Send. */
bool qsm_parse_send_entry(const uint8_t *buf, size_t len, struct send_view *sv,
                          uint64_t *leader_ms)
{
    struct cmdcodec_view v;
    if (!cmdcodec_peek(buf, len, &v))
        return false;
    *leader_ms = v.leader_ms;
    return v.kind == cmq_StorageCommand_send_tag && qsm_parse_send(v.member, v.member_len, sv);
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
        uint64_t lms = 0;
        q->cache_buf = buf;
        q->cache_index = index;
        if (len && qsm_parse_send_entry(buf, len, &q->cache_send, &lms))
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
    uint64_t lms = 0;
    struct send_view sv;
    rc = CMQ_ENOTFOUND;
    if (qsm_parse_send_entry(buf, blen, &sv, &lms) && sv.queue_id == queue_id && qsm_id_slot(msg_id) < sv.n && sv.n <= QSM_BATCH_MAX) {
        *body = qsm_body_copy(&sv.m[qsm_id_slot(msg_id)], len);
        if (enqueue_ms)
            *enqueue_ms = lms;
        rc = *body ? CMQ_OK : CMQ_ENOMEM;
    }
    free(buf);
    return rc;
}
