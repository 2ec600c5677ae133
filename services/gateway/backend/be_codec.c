/* be_codec.c: storage requests and replies of the gateway's back end, with
 * the generated structs (see be_codec.h). */
#include "be_codec.h"

#include "clock.h"
#include "crypto.h"
#include "hash.h"
#include "pb_size.h"
#include "rpc.h"
#include "status.h"

#include <pb_decode.h>
#include <pb_encode.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t key_base, key_seq;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;

static void key_init(void)
{
    if (crypto_random(&key_base, sizeof key_base) != CMQ_OK)
        key_base = clock_wall_ms() << 20 ^ clock_mono_ns(); /* not expected */
}

uint64_t be_dedup_key(void)
{
    pthread_once(&key_once, key_init);
    for (;;) {
        /* a bijection, so distinct counters give distinct keys */
        uint64_t z = hash_splitmix64(key_base + __atomic_add_fetch(&key_seq, 1, __ATOMIC_RELAXED));
        if (z)
            return z;
    }
}

bool be_encode_body_ref(pb_ostream_t *os, const pb_field_t *field, void *const *arg)
{
    const struct be_body_ref *b = *arg;
    return pb_encode_tag_for_field(os, field) &&
           pb_encode_string(os, (const uint8_t *)b->data, b->len);
}

void be_storage_attrs(const cmq_QueueInfo *qi, cmq_StorageQueueAttributes *o)
{
    o->has_max_msg_heap_num = true;
    o->max_msg_heap_num = (uint64_t)qi->max_msg_heap_num;
    o->has_polling_wait_seconds = true;
    o->polling_wait_seconds = (uint32_t)qi->polling_wait_seconds;
    o->has_visibility_timeout_s = true;
    o->visibility_timeout_s = (uint32_t)qi->visibility_timeout;
    o->has_max_msg_size = true;
    o->max_msg_size = (uint32_t)qi->max_msg_size;
    o->has_msg_retention_s = true;
    o->msg_retention_s = (uint32_t)qi->msg_retention_seconds;
    o->has_rewind_s = true;
    o->rewind_s = (uint32_t)qi->rewind_seconds;
    if (qi->has_dead_letter_policy && qi->dead_letter_policy.dead_letter_queue_id[0]) {
        o->has_dead_letter_policy = true;
        o->dead_letter_policy.dead_letter_queue_id = qi->dead_letter_policy.dead_letter_queue_num_id;
        o->dead_letter_policy.policy = (uint32_t)qi->dead_letter_policy.policy;
        o->dead_letter_policy.max_receive_count = (uint32_t)qi->dead_letter_policy.max_receive_count;
        o->dead_letter_policy.max_time_to_live_s = (uint32_t)qi->dead_letter_policy.max_time_to_live;
    }
}

int be_encode_send_items(const struct be_send_item *items, size_t n, const char *client_addr,
                         uint8_t **out, size_t *out_len)
{
    if (n == 0 || n > CMQ_BATCH_MAX)
        return CMQ_EINVAL;
    cmq_SendRequest r = cmq_SendRequest_init_zero; /* queue_id 0: left out */
    struct be_body_ref refs[CMQ_BATCH_MAX];
    for (size_t i = 0; i < n; i++) {
        refs[i] = (struct be_body_ref){items[i].body, items[i].len};
        r.messages[i].delay_seconds = items[i].delay_s;
        r.messages[i].txn_check_ms = items[i].txn_check_ms;
        r.messages[i].dedup_key = be_dedup_key(); /* the same on every resend */
        snprintf(r.messages[i].client_addr, sizeof r.messages[i].client_addr, "%s",
                 client_addr ? client_addr : "");
        r.messages[i].body.funcs.encode = be_encode_body_ref;
        r.messages[i].body.arg = &refs[i];
    }
    r.messages_count = PB_COUNT(r.messages, n);
    return rpc_pb_encode(cmq_SendRequest_fields, &r, out, out_len);
}

int be_send_frame(uint64_t queue_id, const uint8_t *const *parts, const size_t *lens, size_t n,
                  uint8_t **out, size_t *out_len)
{
    cmq_SendRequest head = cmq_SendRequest_init_zero;
    head.queue_id = queue_id;
    uint8_t *h;
    size_t hl;
    int rc = rpc_pb_encode(cmq_SendRequest_fields, &head, &h, &hl);
    if (rc != CMQ_OK)
        return rc;
    size_t total = hl;
    for (size_t i = 0; i < n; i++)
        total += lens[i];
    uint8_t *buf = malloc(total ? total : 1);
    if (!buf) {
        free(h);
        return CMQ_ENOMEM;
    }
    memcpy(buf, h, hl);
    free(h);
    size_t at = hl;
    for (size_t i = 0; i < n; i++) {
        memcpy(buf + at, parts[i], lens[i]);
        at += lens[i];
    }
    *out = buf;
    *out_len = total;
    return CMQ_OK;
}

int be_encode_publish(uint64_t topic_num_id, const struct be_text *bodies, size_t n,
                      const struct be_text *tags, size_t n_tags, const char *routing_key,
                      const char *client_addr, uint8_t **out, size_t *out_len)
{
    /* Too big for the stack (16 tag arrays); one per thread because every
     * gateway loop thread publishes. */
    static _Thread_local cmq_PublishRequest r;
    struct be_body_ref refs[CMQ_BATCH_MAX];
    if (n == 0 || n > CMQ_BATCH_MAX || n_tags > CMQ_TAGS_MAX)
        return CMQ_EINVAL;
    memset(&r, 0, sizeof r);
    r.topic_id = topic_num_id;
    for (size_t i = 0; i < n; i++) {
        refs[i] = (struct be_body_ref){bodies[i].val, bodies[i].len};
        r.messages[i].body.funcs.encode = be_encode_body_ref;
        r.messages[i].body.arg = &refs[i];
        r.messages[i].dedup_key = be_dedup_key(); /* the same on every resend */
    }
    r.messages_count = PB_COUNT(r.messages, n);
    for (size_t i = 0; i < n_tags; i++) {
        if (tags[i].len >= sizeof r.tags[0])
            return CMQ_EINVAL;
        memcpy(r.tags[i], tags[i].val, tags[i].len);
        r.tags[i][tags[i].len] = '\0';
    }
    r.tags_count = PB_COUNT(r.tags, n_tags);
    snprintf(r.routing_key, sizeof r.routing_key, "%s", routing_key ? routing_key : "");
    snprintf(r.client_addr, sizeof r.client_addr, "%s", client_addr ? client_addr : "");
    return rpc_pb_encode(cmq_PublishRequest_fields, &r, out, out_len);
}

/* ReceivedMessage.body: points into the reply (a buffer stream). */
static bool decode_body_ref(pb_istream_t *is, const pb_field_t *field, void **arg)
{
    (void)field;
    struct be_received *m = *arg;
    m->body = is->state;
    m->body_len = is->bytes_left;
    return pb_read(is, NULL, is->bytes_left);
}

int be_decode_received(const uint8_t *buf, size_t len, struct be_received *out, size_t max,
                       size_t *n)
{
    static _Thread_local cmq_ReceiveReply r; /* ~4 KiB of origins */
    *n = 0;
    memset(&r, 0, sizeof r);
    for (size_t i = 0; i < 16 && i < max; i++) {
        memset(&out[i], 0, sizeof out[i]);
        r.messages[i].body.funcs.decode = decode_body_ref; /* nanopb keeps callbacks on init */
        r.messages[i].body.arg = &out[i];
    }
    pb_istream_t is = pb_istream_from_buffer(buf, len);
    if (!pb_decode(&is, cmq_ReceiveReply_fields, &r) || r.messages_count > max)
        return CMQ_ECORRUPT;
    for (pb_size_t i = 0; i < r.messages_count; i++) {
        const cmq_ReceivedMessage *m = &r.messages[i];
        struct be_received *o = &out[i];
        o->msg_id = m->msg_id;
        o->handle = m->receipt_handle;
        o->enqueue_ms = m->enqueue_time_ms;
        o->first_ms = m->first_dequeue_time_ms;
        o->next_ms = m->next_visible_time_ms;
        o->count = m->dequeue_count;
        if (m->has_origin) {
            o->has_origin = true;
            snprintf(o->origin_queue, sizeof o->origin_queue, "%s", m->origin.queue_name);
            o->origin_msg_id = m->origin.msg_id;
            o->origin_enqueue_ms = m->origin.enqueue_time_ms;
            o->origin_first_ms = m->origin.first_dequeue_time_ms;
            o->origin_count = m->origin.dequeue_count;
            o->origin_reason = m->origin.reason;
        }
    }
    *n = r.messages_count;
    return CMQ_OK;
}
