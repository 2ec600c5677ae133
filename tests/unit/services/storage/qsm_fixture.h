/* qsm_fixture.h: a fake partition for the queue state machine tests.
 *
 * The fake is a Raft log in memory (every command the test issues is encoded
 * as a StorageCommand stamped with the fake leader clock, appended, and
 * applied) and N replicas of `struct qsm` that apply every entry.  After each
 * entry the fixture checks that all replicas returned the same result
 * (determinism), and it keeps replica 0's result for the test to read.
 *
 * Helpers are named for what they assert: send_ok, receive_one, assert_visible
 * (the message is delivered by the next receive), assert_invisible ...
 */
#ifndef CMQ_TEST_QSM_FIXTURE_H
#define CMQ_TEST_QSM_FIXTURE_H

#include "qsm.h"
#include "status.h"

#include <criterion/criterion.h>
#include <stdint.h>

#define FX_REPLICAS_MAX 3
#define FX_PARTITION 7

struct flog {
    uint8_t **buf;
    size_t *len;
    uint64_t n, cap;       /* entries 1..n */
    uint64_t first;        /* entries before it were "compacted" */
    uint64_t reads;
};

struct fx {
    struct flog log;
    struct qsm *q[FX_REPLICAS_MAX];
    int replicas;
    uint64_t now_ms;       /* the fake leader clock */
    struct qsm_result res; /* replica 0's result of the last entry */
    bool failed_on_purpose; /* a test broke the replicas: skip the final comparison */
};

extern struct fx F;

/* Sets up F with `replicas` replicas; the clock starts at 1,700,000,000,000 ms. */
void fx_setup(int replicas);
void fx_teardown(void);
/* Appends and applies one command (cmd->leader_ms is set to F.now_ms). */
int fx_apply(cmq_StorageCommand *cmd);
void fx_sleep_ms(uint64_t ms);
/* Appends an entry (ownership passes to the log) without applying it. */
uint64_t fx_log_append(uint8_t *buf, size_t len);
uint64_t flog_append(struct flog *l, uint8_t *buf, size_t len);
/* The fake log's reader (arg: struct flog *). */
int fx_log_read(void *arg, uint64_t index, uint8_t **buf, size_t *len);

/* ---- commands ---- */
/* attributes: any field set in `a` (with its has_ flag) */
int fx_create(uint64_t qid, const cmq_StorageQueueAttributes *a);
int fx_create_default(uint64_t qid);
int fx_set(uint64_t qid, const cmq_StorageQueueAttributes *a, bool clear_dlq);
int fx_drop(uint64_t qid);
/* Fills a SendRequest whose bodies (borrowed) are encoded by callback. */
void fx_send_request(cmq_SendRequest *s, uint64_t qid, const char *const *bodies, int n,
                     uint32_t delay_s, const char *group);
/* n bodies; group may be NULL */
int fx_send(uint64_t qid, const char *const *bodies, int n, uint32_t delay_s, const char *group);
uint64_t send_ok(uint64_t qid, const char *body);            /* returns the msgId */
uint64_t send_delayed(uint64_t qid, const char *body, uint32_t delay_s);
uint64_t send_group(uint64_t qid, const char *body, const char *group);
int fx_receive(uint64_t qid, uint32_t count, uint32_t vis_s);
int fx_delete(uint64_t qid, const uint64_t *handles, int n);
/* The handle's own status (CMQ_OK or CMQ_ESTALE), or the command's failure. */
int fx_delete1(uint64_t qid, uint64_t handle);
int fx_change_visibility(uint64_t qid, uint64_t handle, uint32_t vis_s);
int fx_rewind(uint64_t qid, uint64_t start_s);
int fx_tick(void);

/* ---- domain assertions ---- */
/* Receives one message, asserts it is `msg_id` (0: any), returns its delivery. */
struct qsm_delivery receive_one(uint64_t qid, uint64_t msg_id);
#define assert_visible(qid, id) ((void)receive_one((qid), (id)))
/* A receive finds nothing (CMQ_EEMPTY). */
void assert_empty(uint64_t qid);
void assert_counts(uint64_t qid, uint64_t active, uint64_t inactive, uint64_t delayed);
/* Receives until empty; returns how many, their ids in ids[] (may be NULL). */
int drain(uint64_t qid, uint64_t *ids, int max, bool delete_them);
/* Every replica's snapshot is byte-identical. */
void assert_replicas_identical(void);

#endif
