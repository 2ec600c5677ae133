/* be_codec.h: the storage requests and replies the gateway's back end
 * builds and reads, with the generated nanopb structs (proto/storage.proto):
 * the dedup key every sent or published message carries, the storage view of
 * a queue's attributes, SendRequest items, PublishRequest, and ReceiveReply
 * read without copying bodies.  No I/O. */
#ifndef CMQ_GATEWAY_BE_CODEC_H
#define CMQ_GATEWAY_BE_CODEC_H

#include "cmq_limits.h"
#include "metadata.pb.h"
#include "storage.pb.h"

#include <pb.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Retries never duplicate (docs/queue-state-machine.md §8, docs/topics.md):
 * every message the gateway sends or publishes (HTTP and TCP, single, batch
 * and coalesced) carries a dedup key from be_dedup_key, made once per
 * message of the client's request and kept in the encoded storage request,
 * so every resend of it (rpc attempts on other nodes, the retry budget, a
 * heal, a coalesced group refused and sent alone) carries the same keys and
 * the partition stores it once.  Keys: a bijective mix of (a 64-bit random
 * number drawn once per gateway process + a process-wide counter), never 0:
 * distinct within a process; across processes two keys collide with
 * probability 2^-64 each.  Thread-safe. */
uint64_t be_dedup_key(void);

/* A message body for a nanopb callback field (SendItem.body,
 * PublishItem.body): be_encode_body_ref is the encode function, a
 * be_body_ref (borrowed until the message is encoded) its arg. */
struct be_body_ref {
    const char *data;
    size_t len;
};
bool be_encode_body_ref(pb_ostream_t *os, const pb_field_t *field, void *const *arg);

/* The storage view of a queue's metadata attributes. */
void be_storage_attrs(const cmq_QueueInfo *qi, cmq_StorageQueueAttributes *o);

/* One message of a send, as a front end parsed it (body borrowed). */
struct be_send_item {
    const char *body;
    size_t len;
    uint32_t delay_s;
    uint32_t txn_check_ms; /* a half message (0: not one) */
};
/* Encodes items[0..n) as a SendRequest WITHOUT queue_id (proto3 leaves a 0
 * out): each with a fresh dedup key and `client_addr`.  Protobuf merges
 * concatenated messages (repeated fields append), so a group of sends to one
 * queue is be_send_frame's queue_id followed by its members' item bytes.
 * On CMQ_OK *out is malloc'd. */
int be_encode_send_items(const struct be_send_item *items, size_t n, const char *client_addr,
                         uint8_t **out, size_t *out_len);
/* The SendRequest for queue `queue_id`: its queue_id, then parts[0..n)
 * (each be_encode_send_items output) concatenated.  malloc'd. */
int be_send_frame(uint64_t queue_id, const uint8_t *const *parts, const size_t *lens, size_t n,
                  uint8_t **out, size_t *out_len);

/* Encodes a PublishRequest for the topic with metadata num_id
 * `topic_num_id`: `n` bodies (1-16, borrowed), `n_tags` tags (<= 5), a
 * routing key ("" or NULL for none) and the client's address (the trace).
 * The caller has checked the spec's limits.  On CMQ_OK *out is malloc'd. */
struct be_text {
    const char *val;
    size_t len;
};
int be_encode_publish(uint64_t topic_num_id, const struct be_text *bodies, size_t n,
                      const struct be_text *tags, size_t n_tags, const char *routing_key,
                      const char *client_addr, uint8_t **out, size_t *out_len);

/* One message of a ReceiveReply; `body` points into the reply. */
struct be_received {
    uint64_t msg_id, handle, enqueue_ms, first_ms, next_ms;
    uint32_t count;
    const uint8_t *body;
    size_t body_len;
    bool has_origin; /* a dead-letter copy (storage.proto DeadLetterOrigin) */
    char origin_queue[129];
    uint64_t origin_msg_id, origin_enqueue_ms, origin_first_ms;
    uint32_t origin_count, origin_reason;
};
/* Decodes a ReceiveReply (cmq_ReceiveReply, bodies by callback, not
 * copied) into out[0..*n).  CMQ_OK or CMQ_ECORRUPT. */
int be_decode_received(const uint8_t *buf, size_t len, struct be_received *out, size_t max,
                       size_t *n);

#endif
