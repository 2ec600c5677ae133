/* test_dedup.c: retries never duplicate (issue 12).  The dedup windows of a
 * partition answer a repeated keyed send (single and batch, and a batch held
 * only in part) and a repeated keyed publish with the FIRST msg ids: after
 * the first append was applied, on a replica that rebuilt its state by
 * replaying the log, and on one restored from a snapshot image.  Built with
 * QSM_DEDUP_MAX=4, QSM_DEDUP_KEEP_MS=1000, QSM_DEDUP_HARD_MAX=8 (and the
 * same for TSM_*) so age and count eviction are reached in a few commands.
 * Also the window module itself (dedupwin.c) against a reference model. */
#include "dedupwin.h"
#include "qsm_fixture.h"
#include "tsm.h"

#include <pb_encode.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(QSM_DEDUP_MAX == 4 && QSM_DEDUP_KEEP_MS == 1000 && QSM_DEDUP_HARD_MAX == 8,
               "built with small window bounds (meson.build)");

#define Q 1

static void setup(void) { fx_setup(3); }

static void teardown(void)
{
    assert_replicas_identical();
    fx_teardown();
}

TestSuite(dedup, .init = setup, .fini = teardown);

struct img {
    uint8_t *p;
    size_t n;
};

static int sinkf(void *arg, const void *buf, size_t n)
{
    struct img *s = arg;
    s->p = realloc(s->p, s->n + n);
    memcpy(s->p + s->n, buf, n);
    s->n += n;
    return 0;
}

/* Applies a Send of n bodies with keys[] (0: none); returns its status, ids
 * in F.res.msg_ids. */
static int send_keys(const uint64_t *keys, int n)
{
    static const char *bodies[16] = {"a", "b", "c", "d", "e", "f", "g", "h",
                                     "i", "j", "k", "l", "m", "n", "o", "p"};
    cmq_StorageCommand c = cmq_StorageCommand_init_zero;
    c.which_cmd = cmq_StorageCommand_send_tag;
    fx_send_request(&c.cmd.send, Q, bodies, n, 0, NULL);
    for (int i = 0; i < n; i++)
        c.cmd.send.messages[i].dedup_key = keys[i];
    return fx_apply(&c);
}

/* qsm_dedup_lookup of a request with keys[] on `q`: the number found, ids[]. */
static int lookup(struct qsm *q, const uint64_t *keys, int n, uint64_t *ids)
{
    static const char *bodies[16] = {"a", "b", "c", "d", "e", "f", "g", "h",
                                     "i", "j", "k", "l", "m", "n", "o", "p"};
    cmq_SendRequest r;
    fx_send_request(&r, Q, bodies, n, 0, NULL);
    for (int i = 0; i < n; i++)
        r.messages[i].dedup_key = keys[i];
    uint8_t buf[2048];
    pb_ostream_t os = pb_ostream_from_buffer(buf, sizeof buf);
    cr_assert(pb_encode(&os, cmq_SendRequest_fields, &r));
    uint64_t got_keys[16];
    uint32_t cnt = 0;
    int found = qsm_dedup_lookup(q, buf, os.bytes_written, got_keys, ids, &cnt);
    cr_assert_eq(cnt, (uint32_t)n);
    for (int i = 0; i < n; i++)
        cr_assert_eq(got_keys[i], keys[i]);
    return found;
}

/* A fresh qsm that replays every entry of the fixture's log. */
static struct qsm *replayed(void)
{
    struct qsm_reader rd = {fx_log_read, &F.log};
    struct qsm *r;
    cr_assert_eq(qsm_create(FX_PARTITION, &rd, &r), CMQ_OK);
    for (uint64_t i = F.log.first; i <= F.log.n; i++) {
        struct qsm_result res = {.skip_bodies = true};
        qsm_apply(r, i, 1, F.log.buf[i], F.log.len[i], &res);
        qsm_result_release(&res);
    }
    return r;
}

/* A fresh qsm restored from replica 0's snapshot image. */
static struct qsm *restored(void)
{
    struct qsm_reader rd = {fx_log_read, &F.log};
    struct qsm *r;
    cr_assert_eq(qsm_create(FX_PARTITION, &rd, &r), CMQ_OK);
    struct img a = {0}, b = {0};
    cr_assert_eq(qsm_snapshot_write(F.q[0], sinkf, &a), CMQ_OK);
    cr_assert_eq(qsm_snapshot_read(r, a.p, a.n), CMQ_OK);
    cr_assert_eq(qsm_snapshot_write(r, sinkf, &b), CMQ_OK);
    cr_assert_eq(a.n, b.n);
    cr_assert_eq(memcmp(a.p, b.p, a.n), 0, "the restored window writes the same image");
    free(a.p);
    free(b.p);
    return r;
}

/* Every way of holding the state answers the same. */
static void expect_everywhere(const uint64_t *keys, int n, int want_found, const uint64_t *want)
{
    struct qsm *extra[2] = {replayed(), restored()};
    struct qsm *all[5] = {F.q[0], F.q[1], F.q[2], extra[0], extra[1]};
    static const char *const name[5] = {"replica 0", "replica 1", "replica 2", "replayed",
                                        "restored"};
    for (int k = 0; k < 5; k++) {
        uint64_t ids[16] = {0};
        cr_assert_eq(lookup(all[k], keys, n, ids), want_found, "%s", name[k]);
        for (int i = 0; i < n; i++)
            cr_assert_eq(ids[i], want[i], "%s item %d", name[k], i);
    }
    qsm_destroy(extra[0]);
    qsm_destroy(extra[1]);
}

Test(dedup, a_repeated_single_send_is_answered_with_its_first_id)
{
    cr_assert_eq(fx_create_default(Q), CMQ_OK);
    cr_assert_eq(send_keys((uint64_t[]){111}, 1), CMQ_OK);
    uint64_t first = F.res.msg_ids[0];
    expect_everywhere((uint64_t[]){111}, 1, 1, (uint64_t[]){first});
    expect_everywhere((uint64_t[]){112}, 1, 0, (uint64_t[]){0});
}

Test(dedup, a_repeated_batch_is_answered_with_its_first_ids_in_order)
{
    cr_assert_eq(fx_create_default(Q), CMQ_OK);
    uint64_t keys[4] = {201, 202, 203, 204};
    cr_assert_eq(send_keys(keys, 4), CMQ_OK);
    uint64_t ids[4];
    memcpy(ids, F.res.msg_ids, sizeof ids);
    expect_everywhere(keys, 4, 4, ids);
    /* a regrouped retry (the gateway's coalescing): two held items among new
     * ones are found at their places; the others are to be appended */
    expect_everywhere((uint64_t[]){900, 203, 901, 201}, 4, 2,
                      (uint64_t[]){0, ids[2], 0, ids[0]});
}

/* What the leader does with a Send the window holds in part (queues.c):
 * propose the request without the held items, answer the merge. */
Test(dedup, a_partly_held_batch_appends_only_its_new_items_and_answers_all_ids)
{
    cr_assert_eq(fx_create_default(Q), CMQ_OK);
    cr_assert_eq(send_keys((uint64_t[]){401, 402}, 2), CMQ_OK);
    uint64_t first[2] = {F.res.msg_ids[0], F.res.msg_ids[1]};
    /* the retry regrouped: 402, new 410, 401, new 411 */
    static const char *bodies[4] = {"b402", "b410", "b401", "b411"};
    uint64_t keys[4] = {402, 410, 401, 411};
    cmq_SendRequest r;
    fx_send_request(&r, Q, bodies, 4, 0, NULL);
    for (int i = 0; i < 4; i++)
        r.messages[i].dedup_key = keys[i];
    uint8_t req[2048];
    pb_ostream_t os = pb_ostream_from_buffer(req, sizeof req);
    cr_assert(pb_encode(&os, cmq_SendRequest_fields, &r));
    uint64_t got_keys[16], held[16];
    uint32_t n;
    cr_assert_eq(qsm_dedup_lookup(F.q[0], req, os.bytes_written, got_keys, held, &n), 2);
    size_t slen;
    uint8_t *stripped = qsm_send_strip(req, os.bytes_written, held, &slen);
    cr_assert_not_null(stripped);
    uint64_t sk[16], sids[16];
    uint32_t sn;
    cr_assert_eq(qsm_dedup_lookup(F.q[0], stripped, slen, sk, sids, &sn), 0);
    cr_assert_eq(sn, 2, "only the two new items are proposed");
    cr_assert_eq(sk[0], 410);
    cr_assert_eq(sk[1], 411);
    cr_assert_eq(qsm_check_send(F.q[0], stripped, slen), CMQ_OK);
    /* propose the stripped bytes as queues.c does: StorageCommand{leader_ms, send} */
    uint8_t *cmd = malloc(slen + 32);
    pb_ostream_t cs = pb_ostream_from_buffer(cmd, slen + 32);
    cr_assert(pb_encode_tag(&cs, PB_WT_VARINT, 1) && pb_encode_varint(&cs, F.now_ms) &&
              pb_encode_tag(&cs, PB_WT_STRING, cmq_StorageCommand_send_tag) &&
              pb_encode_varint(&cs, slen) && pb_write(&cs, stripped, slen));
    uint64_t index = flog_append(&F.log, cmd, cs.bytes_written);
    for (int k = 0; k < F.replicas; k++) {
        qsm_result_release(&F.res);
        F.res = (struct qsm_result){0};
        cr_assert_eq(qsm_apply(F.q[k], index, 1, cmd, cs.bytes_written, &F.res), CMQ_OK);
    }
    cr_assert_eq(F.res.n_msg_ids, 2);
    uint64_t out[16];
    cr_assert_eq(qsm_send_merge(held, 4, F.res.msg_ids, 2, out), 4);
    uint64_t want[4] = {first[1], F.res.msg_ids[0], first[0], F.res.msg_ids[1]};
    cr_assert_arr_eq(out, want, sizeof want, "held ids and new ids in request order");
    free(stripped);
    /* and the whole regrouped request is now held: answered, nothing appended */
    expect_everywhere(keys, 4, 4, want);
    /* bodies: each stored once */
    uint64_t ids[16];
    cr_assert_eq(drain(Q, ids, 16, true), 4);
}

Test(dedup, keys_are_kept_by_age_beyond_the_soft_count_up_to_the_hard_cap)
{
    cr_assert_eq(fx_create_default(Q), CMQ_OK);
    uint64_t ids[8];
    for (int i = 0; i < 7; i++) { /* 7 > QSM_DEDUP_MAX, all within keep_ms */
        cr_assert_eq(send_keys((uint64_t[]){(uint64_t)(300 + i)}, 1), CMQ_OK);
        ids[i] = F.res.msg_ids[0];
    }
    expect_everywhere((uint64_t[]){300}, 1, 1, (uint64_t[]){ids[0]});
    cr_assert_eq(send_keys((uint64_t[]){307, 308}, 2), CMQ_OK); /* 9 > hard max 8 */
    expect_everywhere((uint64_t[]){300}, 1, 0, (uint64_t[]){0});
    expect_everywhere((uint64_t[]){301}, 1, 1, (uint64_t[]){ids[1]});
    fx_sleep_ms(1500); /* older than keep_ms: only the last QSM_DEDUP_MAX stay */
    cr_assert_eq(send_keys((uint64_t[]){309}, 1), CMQ_OK);
    expect_everywhere((uint64_t[]){305}, 1, 0, (uint64_t[]){0});
    expect_everywhere((uint64_t[]){306}, 1, 1, (uint64_t[]){ids[6]});
}

/* ---- publishes (tsm) ---- */

static uint8_t pbuf[1 << 16];

static bool enc_body(pb_ostream_t *os, const pb_field_t *f, void *const *arg)
{
    const char *s = *arg;
    return pb_encode_tag_for_field(os, f) && pb_encode_string(os, (const uint8_t *)s, strlen(s));
}

static size_t encode_cmd(cmq_StorageCommand *c)
{
    pb_ostream_t os = pb_ostream_from_buffer(pbuf, sizeof pbuf);
    cr_assert(pb_encode(&os, cmq_StorageCommand_fields, c), "%s", PB_GET_ERROR(&os));
    return os.bytes_written;
}

static size_t publish_cmd(uint64_t topic, const uint64_t *keys, int n, uint64_t ms)
{
    static const char *bodies[4] = {"p1", "p2", "p3", "p4"};
    cmq_StorageCommand c = cmq_StorageCommand_init_zero;
    c.leader_ms = ms;
    c.which_cmd = cmq_StorageCommand_publish_tag;
    c.cmd.publish.topic_id = topic;
    for (int i = 0; i < n; i++) {
        c.cmd.publish.messages[i].body.funcs.encode = enc_body;
        c.cmd.publish.messages[i].body.arg = (void *)bodies[i];
        c.cmd.publish.messages[i].dedup_key = keys[i];
    }
    c.cmd.publish.messages_count = (pb_size_t)n;
    return encode_cmd(&c);
}

static uint32_t pub_lookup(struct tsm *t, uint64_t topic, const uint64_t *keys, int n,
                           uint64_t *ids)
{
    size_t len = publish_cmd(topic, keys, n, 0);
    struct tsm_publish m;
    cr_assert(tsm_parse_publish(pbuf, len, &m));
    for (int i = 0; i < n; i++)
        cr_assert_eq(m.dedup_key[i], keys[i], "the key is parsed in place");
    return tsm_dedup_lookup(t, &m, ids);
}

static struct tsm *tsm_restored(const struct tsm *t)
{
    struct img a = {0}, b = {0};
    cr_assert_eq(tsm_snapshot_write(t, sinkf, &a), 0);
    struct tsm *r;
    cr_assert_eq(tsm_create(FX_PARTITION, &r), CMQ_OK);
    cr_assert_eq(tsm_snapshot_read(r, a.p, a.n), CMQ_OK);
    cr_assert_eq(tsm_snapshot_write(r, sinkf, &b), 0);
    cr_assert_eq(a.n, b.n);
    cr_assert_eq(memcmp(a.p, b.p, a.n), 0);
    free(a.p);
    free(b.p);
    return r;
}

Test(dedup, a_repeated_publish_is_answered_with_its_first_ids)
{
    struct tsm *t;
    cr_assert_eq(tsm_create(FX_PARTITION, &t), CMQ_OK);
    cmq_StorageCommand c = cmq_StorageCommand_init_zero;
    c.leader_ms = 1000;
    c.which_cmd = cmq_StorageCommand_topic_sync_tag;
    c.cmd.topic_sync.topic_id = 5;
    snprintf(c.cmd.topic_sync.name, sizeof c.cmd.topic_sync.name, "t5");
    c.cmd.topic_sync.max_msg_size = 100;
    c.cmd.topic_sync.filter_type = TOPIC_FILTER_TAG;
    size_t len = encode_cmd(&c);
    cr_assert_eq(tsm_apply(t, 1, pbuf, len), CMQ_OK);
    /* single, then a batch of three, at indexes 2 and 3 */
    len = publish_cmd(5, (uint64_t[]){41}, 1, 2000);
    cr_assert_eq(tsm_apply(t, 2, pbuf, len), CMQ_OK);
    len = publish_cmd(5, (uint64_t[]){51, 52, 53}, 3, 2000);
    cr_assert_eq(tsm_apply(t, 3, pbuf, len), CMQ_OK);
    uint64_t base = (uint64_t)FX_PARTITION << 52;
    uint64_t want1 = base | (2u << 4), want3[3] = {base | (3u << 4), base | (3u << 4) | 1,
                                                    base | (3u << 4) | 2};
    struct tsm *r = tsm_restored(t);
    struct tsm *all[2] = {t, r};
    for (int k = 0; k < 2; k++) {
        uint64_t ids[4] = {0};
        cr_assert_eq(pub_lookup(all[k], 5, (uint64_t[]){41}, 1, ids), 1);
        cr_assert_eq(ids[0], want1);
        cr_assert_eq(pub_lookup(all[k], 5, (uint64_t[]){51, 52, 53}, 3, ids), 3);
        cr_assert_arr_eq(ids, want3, sizeof want3);
        cr_assert_eq(pub_lookup(all[k], 6, (uint64_t[]){41}, 1, ids), 0, "keys are per topic");
        cr_assert_eq(pub_lookup(all[k], 5, (uint64_t[]){0}, 1, ids), 0, "no key: none");
    }
    /* a key already held keeps its first id (a publish applied twice) */
    len = publish_cmd(5, (uint64_t[]){41}, 1, 2500);
    cr_assert_eq(tsm_apply(t, 4, pbuf, len), CMQ_OK);
    uint64_t ids[4];
    cr_assert_eq(pub_lookup(t, 5, (uint64_t[]){41}, 1, ids), 1);
    cr_assert_eq(ids[0], want1);
    tsm_destroy(r);
    tsm_destroy(t);
}

/* ---- the window module against a plain model ---- */

Test(dedup, the_window_matches_a_reference_model)
{
    enum { SOFT = 50, HARD = 300, KEEP = 100, N = 20000 };
    struct dedupwin w;
    dedupwin_init(&w, SOFT, HARD, KEEP);
    static struct dedupwin_ent model[N];
    uint32_t head = 0, tail = 0;
    uint64_t ms = 0, seed = 1;
    for (uint32_t i = 0; i < N; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        ms += (seed >> 60) & 3; /* 0-3 ms a note: the age rule and the caps both act */
        uint64_t scope = 1 + ((seed >> 20) & 3), key = 1 + ((seed >> 30) % 5000);
        bool held = false;
        for (uint32_t j = head; j < tail; j++)
            held |= model[j].scope == scope && model[j].key == key;
        if (!held) {
            while (tail > head && (tail - head >= HARD ||
                                   (tail - head >= SOFT && ms - model[head].ms >= KEEP)))
                head++;
            model[tail++] = (struct dedupwin_ent){scope, key, 1000 + i, ms};
        }
        cr_assert_eq(dedupwin_note(&w, scope, key, 1000 + i, ms), CMQ_OK);
        cr_assert_eq(dedupwin_count(&w), tail - head, "count at note %u", i);
        if (i % 97 == 0) {
            for (uint32_t j = head; j < tail; j++) {
                cr_assert_eq(dedupwin_find(&w, model[j].scope, model[j].key), model[j].msg_id);
                cr_assert_eq(dedupwin_at(&w, j - head)->key, model[j].key);
            }
            for (uint32_t j = head > 40 ? head - 40 : 0; j < head; j++) {
                bool again = false;
                for (uint32_t k = head; k < tail; k++)
                    again |= model[k].scope == model[j].scope && model[k].key == model[j].key;
                if (!again)
                    cr_assert_eq(dedupwin_find(&w, model[j].scope, model[j].key), 0);
            }
        }
    }
    cr_assert_leq(dedupwin_memory(&w), (size_t)HARD * 2 * 40, "bounded by the hard cap");
    dedupwin_free(&w);
}
