/* cmdcodec.h: the one codec of StorageCommand, what a storage partition's
 * Raft entry holds (proto/storage.proto):
 *
 *     StorageCommand { uint64 leader_ms = 1; oneof cmd { ... = 10..49 } }
 *
 * Producers (queues.c, topics.c, dlq.c, ...) wrap a request's encoded bytes,
 * unchanged, as the oneof member, so message bodies are copied once into the
 * entry and never decoded on the way; the state machines (qsm.c, tsm.c) peek
 * at the kind, the clock and the member's id without decoding bodies.  Field
 * numbers come only from the generated `cmq_StorageCommand_*_tag` constants
 * (storage.pb.h); no other file spells them.
 *
 * Kinds: `kind` is the oneof member's field number, i.e. one of the
 * cmq_StorageCommand_*_tag values.  Queue commands are 10..39 (owned by
 * qsm.c), topic commands 40..49 (tsm.c), as storage.proto reserves them.
 *
 * Encoding: field 1 (leader_ms) is always written, then the member with its
 * length; the result is what nanopb writes for the same struct (except that
 * nanopb omits leader_ms = 0).  An entry is at most PARTITION_ENTRY_BYTES_MAX
 * (partition.h) but the codec itself has no limit besides size_t.
 *
 * Peeking: the last leader_ms and the last member win (protobuf's rule for a
 * repeated scalar and a oneof); unknown fields are skipped; any field >= 10
 * of wire type LEN is taken as the member (a newer kind is reported, not
 * dropped: the caller refuses what it does not know).
 *
 * Pure: no ZeroMQ, no node state; only pbwire.c and nanopb's encoder (for
 * cmdcodec_build_msg). */
#ifndef CMQ_STORAGE_CMDCODEC_H
#define CMQ_STORAGE_CMDCODEC_H

#include "storage.pb.h"

#include <pb.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The most bytes the codec adds around a member: tag 1 (1) + leader_ms (10)
 * + the member's tag (1 for kinds < 16, else 2) + its length (10). */
#define CMDCODEC_FRAME_MAX 23u
#define CMDCODEC_KIND_MIN 10u          /* the oneof's first field number */
#define CMDCODEC_TOPIC_KIND_MIN 40u    /* topic commands: 40..49 */
#define CMDCODEC_TOPIC_KIND_MAX 49u
_Static_assert(cmq_StorageCommand_create_queue_tag == CMDCODEC_KIND_MIN, "first queue kind");
_Static_assert(cmq_StorageCommand_txn_confirm_tag < CMDCODEC_TOPIC_KIND_MIN, "queue kinds");
_Static_assert(cmq_StorageCommand_topic_sync_tag >= CMDCODEC_TOPIC_KIND_MIN &&
               cmq_StorageCommand_topic_progress_tag <= CMDCODEC_TOPIC_KIND_MAX, "topic kinds");

/* A peeked command; pointers borrow the entry. */
struct cmdcodec_view {
    uint64_t leader_ms;     /* field 1; 0 when absent */
    uint32_t kind;          /* the member's field number; 0: no member */
    const uint8_t *member;  /* the member's encoded bytes (inside the entry); NULL: none */
    size_t member_len;
    uint64_t id;            /* the member's field 1 when a varint (queue_id,
                             * topic_id: the last one); 0 when absent */
};

/* Bytes cmdcodec_encode writes for these arguments. */
size_t cmdcodec_size(uint64_t leader_ms, uint32_t kind, size_t member_len);
/* Writes StorageCommand { leader_ms, kind: member } into out[0..cap).
 * `member` (borrowed; may be NULL when member_len is 0) is the encoded
 * request.  Returns the bytes written, or 0 when cap is too small (nothing
 * useful is in out then).  kind: a cmq_StorageCommand_*_tag. */
size_t cmdcodec_encode(uint8_t *out, size_t cap, uint64_t leader_ms, uint32_t kind,
                       const void *member, size_t member_len);
/* The same into a malloc'd buffer: CMQ_OK and *out (ownership passes to the
 * caller), or CMQ_ENOMEM. */
int cmdcodec_build(uint64_t leader_ms, uint32_t kind, const void *member, size_t member_len,
                   uint8_t **out, size_t *out_len);
/* Encodes the generated struct `msg` (borrowed; `fields` its descriptor) as
 * the member `kind` into out[0..cap): the bytes written, or 0 when it does
 * not fit or nanopb refuses it. */
size_t cmdcodec_encode_msg(uint8_t *out, size_t cap, uint64_t leader_ms, uint32_t kind,
                           const pb_msgdesc_t *fields, const void *msg);

/* Peeks at an encoded command (borrowed): true and *v filled, or false when
 * it is malformed (truncated, corrupt; *v is then zeroed).  An entry without
 * a member is well formed (kind 0). */
bool cmdcodec_peek(const void *entry, size_t len, struct cmdcodec_view *v);

/* Whether `kind` is a topic command (tsm.c) or a queue command (qsm.c). */
static inline bool cmdcodec_is_topic(uint32_t kind)
{
    return kind >= CMDCODEC_TOPIC_KIND_MIN && kind <= CMDCODEC_TOPIC_KIND_MAX;
}
static inline bool cmdcodec_is_queue(uint32_t kind)
{
    return kind >= CMDCODEC_KIND_MIN && kind < CMDCODEC_TOPIC_KIND_MIN;
}

#endif
