/* test_partition_xfer.c: the leader side of a snapshot install
 * (services/storage/partition_xfer.c) over a real segment log: the retained
 * entries leave in bounded chunks, stop-and-wait on the follower's acks,
 * entries over 4 KiB read back whole, a transfer whose entries are gone is
 * abandoned, and a transfer stops once this node no longer leads.  Raft is a
 * real core that never campaigns here (a follower), so SNAPSHOT itself is
 * only sent by xfer_snapshot_msg once the follower holds every entry. */
#include "partition_xfer.h"

#include "log.h"
#include "status.h"
#include "../../tmpdir.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define FOLLOWER 2u
#define LAST 600u           /* entries in the log (1..LAST) */
#define BIG_INDEX 7u        /* one entry of 10,000 bytes */

static char t_dir[256];
static struct seglog *t_log;
static struct raft *t_raft;
static struct xfer t_xfers[RAFT_MAX_NODES];

/* What the callbacks saw. */
static struct {
    uint32_t chunks, msgs;
    struct partition_chunk last;   /* entries not kept */
    uint64_t last_first_index, last_end; /* first and last entry index of the last chunk */
    int big_ok;                    /* the big entry arrived whole */
} seen;

static void on_send(void *arg, uint32_t id, const struct raft_msg *m)
{
    (void)arg;
    cr_assert_eq(id, 9);
    cr_assert_eq(m->type, RAFT_MSG_SNAPSHOT);
    seen.msgs++;
}

static void on_chunk(void *arg, uint32_t id, const struct partition_chunk *c)
{
    (void)arg;
    cr_assert_eq(id, 9);
    seen.chunks++;
    seen.last = *c;
    seen.last.entries = NULL;
    seen.last_first_index = c->n_entries ? c->entries[0].index : 0;
    seen.last_end = c->n_entries ? c->entries[c->n_entries - 1].index : 0;
    for (uint32_t i = 0; i < c->n_entries; i++) {
        cr_assert_eq(c->entries[i].index, c->next + i, "entries in order from next");
        if (c->entries[i].index == BIG_INDEX) {
            const uint8_t *d = c->entries[i].data;
            seen.big_ok = c->entries[i].len == 10000 && d[0] == 0xb1 && d[9999] == 0xb1;
        }
    }
}

static struct xfer_ctx ctx(void)
{
    return (struct xfer_ctx){.id = 9, .node_id = 1, .raft = t_raft, .log = t_log,
                             .send = on_send, .send_chunk = on_chunk};
}

static void t_setup(void)
{
    log_init("test", CMQ_LOG_ERROR);
    memset(&seen, 0, sizeof seen);
    memset(t_xfers, 0, sizeof t_xfers);
    tmpdir_make(t_dir, sizeof t_dir, "xfer-test");
    struct seglog_opts lo;
    seglog_opts_default(&lo);
    lo.create = true;
    cr_assert_eq(seglog_open(t_dir, &lo, &t_log, NULL), CMQ_OK);
    static uint8_t small[100], big[10000];
    memset(small, 0x5a, sizeof small);
    memset(big, 0xb1, sizeof big);
    for (uint64_t i = 1; i <= LAST; i++) {
        struct seglog_entry e = {.term = 1, .index = i, .type = RAFT_ENTRY_NORMAL,
                                 .len = i == BIG_INDEX ? sizeof big : sizeof small,
                                 .data = i == BIG_INDEX ? big : small};
        cr_assert_eq(seglog_append(t_log, &e, 1), CMQ_OK);
    }
    struct raft_config members = {.n = 2};
    members.nodes[0].id = 1;
    members.nodes[0].role = RAFT_VOTER;
    members.nodes[1].id = FOLLOWER;
    members.nodes[1].role = RAFT_VOTER;
    struct raft_options ro = {.id = 1, .election_ticks = 10, .seed = 1};
    struct raft_boot boot = {.initial = &members};
    cr_assert_eq(raft_create(&ro, &boot, &t_raft), RAFT_OK);
}

static void t_teardown(void)
{
    raft_destroy(t_raft);
    seglog_close(t_log);
    tmpdir_remove(t_dir);
}

TestSuite(partition_xfer, .init = t_setup, .fini = t_teardown);

static struct raft_msg snapshot_msg(uint64_t index)
{
    return (struct raft_msg){.type = RAFT_MSG_SNAPSHOT, .from = 1, .to = FOLLOWER, .term = 1,
                             .snapshot = {.index = index, .term = 1}};
}

static struct partition_chunk ack(uint64_t snap_index, uint64_t next)
{
    return (struct partition_chunk){.from = FOLLOWER, .to = 1, .term = 1, .ack = 1,
                                    .snap_index = snap_index, .snap_term = 1, .next = next};
}

Test(partition_xfer, read_raw_reads_entries_over_its_first_buffer)
{
    uint8_t *buf = NULL;
    struct seglog_entry e;
    cr_assert_eq(partition_read_raw(t_log, BIG_INDEX, &buf, &e), CMQ_OK);
    cr_assert_eq(e.len, 10000);
    cr_assert_eq(buf[9999], 0xb1);
    free(buf);
    cr_assert_neq(partition_read_raw(t_log, LAST + 1, &buf, &e), CMQ_OK);
}

Test(partition_xfer, entries_leave_in_bounded_chunks_stop_and_wait)
{
    struct xfer_ctx c = ctx();
    struct snap_meta snap = {.index = LAST, .term = 1, .first_needed = 5};
    struct raft_msg m = snapshot_msg(LAST);
    xfer_snapshot_msg(t_xfers, &c, &m, &snap);
    cr_assert_eq(seen.chunks, 1);
    cr_assert_eq(seen.last.next, 5);
    cr_assert_eq(seen.last.n_entries, PARTITION_CHUNK_ENTRIES_MAX);
    cr_assert_eq(seen.last.first_index, 5);
    cr_assert(seen.big_ok, "the 10,000-byte entry arrives whole");
    /* the same SNAPSHOT while the entries are on their way sends nothing */
    xfer_snapshot_msg(t_xfers, &c, &m, &snap);
    cr_assert_eq(seen.chunks, 1);
    cr_assert_eq(seen.msgs, 0);
    /* each ack brings the next chunk, from where the follower asks */
    uint64_t next = seen.last_end + 1;
    while (next <= LAST) {
        struct partition_chunk a = ack(LAST, next);
        uint32_t before = seen.chunks;
        xfer_on_ack(t_xfers, &c, &a);
        cr_assert_eq(seen.chunks, before + 1);
        cr_assert_eq(seen.last.next, next);
        cr_assert_leq(seen.last.n_entries, PARTITION_CHUNK_ENTRIES_MAX);
        next = seen.last_end + 1;
    }
    cr_assert_eq(seen.last_end, LAST);
    /* the follower holds them all; this node does not lead, so Raft's next
     * SNAPSHOT is what goes through now */
    struct partition_chunk done = ack(LAST, LAST + 1);
    xfer_on_ack(t_xfers, &c, &done);
    cr_assert_eq(seen.msgs, 0);
    xfer_snapshot_msg(t_xfers, &c, &m, &snap);
    cr_assert_eq(seen.msgs, 1);
    /* an ack of another snapshot is ignored */
    struct partition_chunk other = ack(LAST - 1, 10);
    uint32_t before = seen.chunks;
    xfer_on_ack(t_xfers, &c, &other);
    cr_assert_eq(seen.chunks, before);
}

Test(partition_xfer, a_snapshot_of_another_index_or_missing_entries_send_nothing)
{
    struct xfer_ctx c = ctx();
    struct snap_meta snap = {.index = LAST, .term = 1, .first_needed = 5};
    struct raft_msg m = snapshot_msg(LAST - 1); /* not the snapshot we know the needs of */
    xfer_snapshot_msg(t_xfers, &c, &m, &snap);
    cr_assert_eq(seen.chunks, 0);
    /* entries the log no longer holds: the install is abandoned */
    struct snap_meta gone = {.index = LAST + 50, .term = 1, .first_needed = LAST - 10};
    struct raft_msg m2 = snapshot_msg(LAST + 50);
    xfer_snapshot_msg(t_xfers, &c, &m2, &gone);
    cr_assert_eq(seen.chunks, 0);
    for (int i = 0; i < RAFT_MAX_NODES; i++)
        cr_assert_eq(t_xfers[i].peer, 0, "no transfer left in hand");
}

Test(partition_xfer, a_node_that_does_not_lead_drops_its_transfers_at_the_tick)
{
    struct xfer_ctx c = ctx();
    struct snap_meta snap = {.index = LAST, .term = 1, .first_needed = 5};
    struct raft_msg m = snapshot_msg(LAST);
    xfer_snapshot_msg(t_xfers, &c, &m, &snap);
    cr_assert_eq(seen.chunks, 1);
    xfer_tick(t_xfers, &c);
    struct partition_chunk a = ack(LAST, seen.last_end + 1);
    xfer_on_ack(t_xfers, &c, &a);
    cr_assert_eq(seen.chunks, 1, "the transfer was dropped: acks find nothing");
}
