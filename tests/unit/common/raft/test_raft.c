/* test_raft.c: scripted scenarios for common/raft/raft.c.  Each test is a
 * short story told with the cluster helper (cluster.h): who ticks, which links
 * are cut, what is delivered, and what every node must then believe. */
#include <criterion/criterion.h>
#include <string.h>

#include "cluster.h"

static struct tc C;

static void teardown(void) { tc_free(&C); }

#define ROLE(id) raft_role(C.nodes[id].r)
#define TERM(id) raft_term(C.nodes[id].r)
#define LEADER(id) raft_leader(C.nodes[id].r)
#define COMMIT(id) raft_commit_index(C.nodes[id].r)
#define LAST(id) raft_last_index(C.nodes[id].r)

static void assert_leader(int id, int n)
{
    cr_assert_eq(ROLE(id), RAFT_LEADER, "node %d should lead", id);
    for (int j = 1; j <= n; j++)
        if (j != id)
            cr_assert_eq(LEADER(j), (uint64_t)id, "node %d should follow %d", j, id);
}

/* Heartbeats and their answers for `rounds` leader ticks. */
static void heartbeat(int leader, int rounds)
{
    for (int i = 0; i < rounds; i++) {
        tc_tick(&C, leader, 1);
        tc_deliver(&C);
    }
}

static void start3(void)
{
    tc_init(&C, 3, 3, NULL);
    cr_assert_eq(tc_campaign(&C, 1), RAFT_LEADER);
    heartbeat(1, 1);
}

/* ---- election ---------------------------------------------------------- */

Test(election, first_timeout_wins_and_noop_commits, .fini = teardown)
{
    tc_init(&C, 3, 3, NULL);
    cr_assert_eq(tc_campaign(&C, 1), RAFT_LEADER);
    assert_leader(1, 3);
    cr_assert_eq(TERM(1), 1);
    /* the leader's no-op of term 1 commits on a majority and is applied */
    cr_assert_eq(COMMIT(1), 1);
    heartbeat(1, 1);
    for (int i = 1; i <= 3; i++)
        cr_assert_eq(C.nodes[i].last_applied, 1, "node %d applied the no-op", i);
}

Test(election, vote_refused_to_a_stale_log, .fini = teardown)
{
    start3();
    tc_isolate(&C, 3);
    for (uint64_t v = 1; v <= 3; v++)
        cr_assert_eq(tc_propose(&C, 1, v), RAFT_OK);
    tc_deliver(&C);
    tc_heal(&C);
    /* node 3 lacks entries: node 2 (log more up to date) must refuse it, even
     * once node 2 has lost its leader (so the lease does not hide the check) */
    tc_isolate(&C, 1);
    tc_tick(&C, 2, 10); /* node 2's lease expires; its randomized timeout has not */
    uint64_t t = TERM(3);
    tc_tick(&C, 3, 40);
    tc_deliver(&C);
    cr_assert_neq(ROLE(3), RAFT_LEADER);
    cr_assert_eq(TERM(3), t, "pre-vote failed, so node 3 never raised its term");
}

/* ---- pre-vote ---------------------------------------------------------- */

Test(prevote, partitioned_node_does_not_disrupt_on_return, .fini = teardown)
{
    start3();
    uint64_t term = TERM(1);
    tc_isolate(&C, 3);
    tc_tick(&C, 3, 200); /* many election timeouts alone */
    tc_drop_all(&C);
    cr_assert_eq(TERM(3), term, "pre-vote keeps an isolated node's term");
    cr_assert_neq(ROLE(3), RAFT_CANDIDATE);
    tc_heal(&C);
    heartbeat(1, 3);
    assert_leader(1, 3);
    cr_assert_eq(TERM(1), term, "the healthy leader was not deposed");
}

Test(prevote, live_leader_lease_ignores_votes, .fini = teardown)
{
    start3();
    /* node 3 times out (its heartbeats were lost) and pre-votes; 1 and 2 heard
     * from the leader recently, so they ignore it */
    tc_isolate(&C, 3);
    tc_tick(&C, 3, 30);
    tc_heal(&C);
    tc_tick(&C, 3, 30);
    cr_assert_eq(ROLE(3), RAFT_PRE_CANDIDATE);
    tc_deliver(&C);
    cr_assert_eq(ROLE(1), RAFT_LEADER);
    cr_assert_eq(TERM(1), 1);
}

/* ---- check-quorum ------------------------------------------------------ */

Test(check_quorum, isolated_leader_steps_down, .fini = teardown)
{
    start3();
    tc_isolate(&C, 1);
    tc_tick(&C, 1, 25);
    cr_assert_eq(ROLE(1), RAFT_FOLLOWER, "without a quorum the leader steps down");
    /* the majority side elects a new leader */
    tc_drop_all(&C);
    tc_tick(&C, 3, 11);
    cr_assert_eq(tc_campaign(&C, 2), RAFT_LEADER);
    cr_assert_gt(TERM(2), 1);
}

Test(check_quorum, leader_with_quorum_stays, .fini = teardown)
{
    start3();
    tc_isolate(&C, 3);
    for (int i = 0; i < 30; i++) {
        tc_tick(&C, 1, 1);
        tc_tick(&C, 2, 1);
        tc_deliver(&C);
    }
    cr_assert_eq(ROLE(1), RAFT_LEADER);
    cr_assert_eq(TERM(1), 1);
}

/* ---- replication ------------------------------------------------------- */

static void no_tweak_big(struct raft_options *o) { o->max_entries_per_msg = 4; }

Test(replication, commit_needs_majority_of_persisted, .fini = teardown)
{
    start3();
    C.nodes[2].manual_disk = true;
    C.nodes[3].manual_disk = true;
    uint64_t c0 = COMMIT(1);
    cr_assert_eq(tc_propose(&C, 1, 7), RAFT_OK);
    tc_deliver(&C);
    cr_assert_eq(COMMIT(1), c0, "followers have not persisted: not committed");
    tc_flush(&C, 2);
    tc_deliver(&C);
    cr_assert_eq(COMMIT(1), c0 + 1, "leader + one durable follower is a majority");
}

Test(replication, leader_persists_in_parallel, .fini = teardown)
{
    start3();
    C.nodes[1].manual_disk = true;
    cr_assert_eq(tc_propose(&C, 1, 9), RAFT_OK);
    tc_deliver(&C);
    /* two followers durable: committed although the leader's write is pending */
    cr_assert_eq(COMMIT(1), LAST(1));
    /* but the leader applies only what it holds durably itself */
    cr_assert_lt(C.nodes[1].last_applied, LAST(1));
    tc_flush(&C, 1);
    cr_assert_eq(C.nodes[1].last_applied, LAST(1));
    cr_assert_eq(C.nodes[1].applied[LAST(1)], 9);
}

Test(replication, pipelined_batches_respect_limits, .fini = teardown)
{
    tc_init(&C, 3, 3, no_tweak_big);
    cr_assert_eq(tc_campaign(&C, 1), RAFT_LEADER);
    heartbeat(1, 1);
    uint8_t buf[40][8];
    struct raft_proposal p[40];
    for (int i = 0; i < 40; i++) {
        uint64_t v = 100 + (uint64_t)i;
        memcpy(buf[i], &v, 8);
        p[i] = (struct raft_proposal){8, buf[i]};
    }
    cr_assert_eq(raft_propose(C.nodes[1].r, p, 40, NULL), RAFT_OK);
    tc_drain(&C, 1);
    /* several APPENDs of at most 4 entries went out at once (pipelining) */
    int appends = 0;
    for (int i = 0; i < C.nq; i++) {
        if (C.q[i].m.type == RAFT_MSG_APPEND && C.q[i].m.to == 2) {
            cr_assert_leq(C.q[i].m.n_entries, 4);
            appends++;
        }
    }
    cr_assert_gt(appends, 1);
    cr_assert_leq(appends, 8, "at most max_inflight in flight");
    for (int i = 0; i < 5; i++)
        heartbeat(1, 1);
    cr_assert_eq(COMMIT(1), LAST(1));
    cr_assert_eq(C.nodes[3].last_applied, LAST(1));
    cr_assert_eq(C.nodes[3].applied[LAST(1)], 139);
}

Test(replication, fast_backtracking_skips_a_conflicting_term, .fini = teardown)
{
    tc_init(&C, 3, 3, NULL);
    /* node 3 leads term 1 and appends 30 entries no one else receives */
    cr_assert_eq(tc_campaign(&C, 3), RAFT_LEADER);
    heartbeat(3, 1);
    tc_isolate(&C, 3);
    for (uint64_t v = 1; v <= 30; v++)
        tc_propose(&C, 3, 1000 + v);
    tc_drop_all(&C);
    /* node 1 leads a later term with 10 entries of its own */
    tc_tick(&C, 2, 11);
    cr_assert_eq(tc_campaign(&C, 1), RAFT_LEADER);
    for (uint64_t v = 1; v <= 10; v++)
        tc_propose(&C, 1, 2000 + v);
    tc_deliver(&C);
    cr_assert_eq(COMMIT(1), LAST(1));
    /* node 3 comes back: its 30 conflicting entries go in few round trips */
    tc_heal(&C);
    C.rejects = 0;
    tc_tick(&C, 3, 1);
    heartbeat(1, 3);
    cr_assert_leq(C.rejects, 3, "a hint skips the whole conflicting term (got %d)", C.rejects);
    cr_assert_eq(LAST(3), LAST(1));
    for (uint64_t i = 1; i <= LAST(1); i++)
        cr_assert_eq(raft_term_at(C.nodes[3].r, i), raft_term_at(C.nodes[1].r, i));
    cr_assert_eq(C.nodes[3].applied[LAST(1)], 2010);
}

/* ---- leadership transfer ----------------------------------------------- */

Test(transfer, hands_over_with_timeout_now, .fini = teardown)
{
    start3();
    cr_assert_eq(tc_propose(&C, 1, 5), RAFT_OK);
    cr_assert_eq(raft_transfer_leadership(C.nodes[1].r, 2), RAFT_OK);
    cr_assert_eq(tc_propose(&C, 1, 6), RAFT_EBUSY, "no proposals during a transfer");
    tc_deliver(&C);
    cr_assert_gt(C.sent_by_type[RAFT_MSG_TIMEOUT_NOW], 0);
    assert_leader(2, 3);
    cr_assert_eq(TERM(2), 2);
    heartbeat(2, 1);
    cr_assert_eq(C.nodes[1].applied[2], 5, "the entry before the transfer survived");
}

Test(transfer, rejects_bad_targets, .fini = teardown)
{
    start3();
    cr_assert_eq(raft_transfer_leadership(C.nodes[1].r, 1), RAFT_EINVAL);
    cr_assert_eq(raft_transfer_leadership(C.nodes[1].r, 9), RAFT_EINVAL);
    cr_assert_eq(raft_transfer_leadership(C.nodes[2].r, 3), RAFT_ENOTLEADER);
}

Test(transfer, abandoned_after_election_timeout, .fini = teardown)
{
    start3();
    tc_isolate(&C, 2);
    cr_assert_eq(raft_transfer_leadership(C.nodes[1].r, 2), RAFT_OK);
    cr_assert_eq(tc_propose(&C, 1, 1), RAFT_EBUSY);
    for (int i = 0; i < 11; i++)
        heartbeat(1, 1);
    cr_assert_eq(ROLE(1), RAFT_LEADER);
    cr_assert_eq(tc_propose(&C, 1, 1), RAFT_OK, "proposals resume after giving up");
}

static void short_transfer(struct raft_options *o) { o->transfer_ticks = 3; }

Test(transfer, bounded_by_transfer_ticks, .fini = teardown)
{
    tc_init(&C, 3, 3, short_transfer);
    cr_assert_eq(tc_campaign(&C, 1), RAFT_LEADER);
    heartbeat(1, 1);
    tc_isolate(&C, 2); /* the target is gone: TIMEOUT_NOW never arrives */
    cr_assert_eq(raft_transfer_leadership(C.nodes[1].r, 2), RAFT_OK);
    cr_assert_eq(raft_transferee(C.nodes[1].r), 2);
    heartbeat(1, 2);
    cr_assert_eq(tc_propose(&C, 1, 1), RAFT_EBUSY, "refused while the transfer runs");
    heartbeat(1, 1);
    cr_assert_eq(raft_transferee(C.nodes[1].r), 0, "abandoned after transfer_ticks");
    cr_assert_eq(ROLE(1), RAFT_LEADER);
    cr_assert_eq(tc_propose(&C, 1, 1), RAFT_OK, "proposals resume after 3 ticks, not 10");
}

/* ---- progress: who could take over ------------------------------------- */

Test(progress, a_silent_follower_cannot_lead, .fini = teardown)
{
    start3();
    struct raft_progress p;
    cr_assert_eq(raft_progress(C.nodes[1].r, 2, &p), RAFT_OK);
    cr_assert(p.voter);
    cr_assert_eq(p.match, LAST(1));
    cr_assert_eq(p.silent_ticks, 0, "answered the heartbeat of this tick");
    cr_assert(raft_peer_can_lead(C.nodes[1].r, 2, 2));
    cr_assert(raft_peer_can_lead(C.nodes[1].r, 3, 2));
    tc_isolate(&C, 3); /* killed: it answers nothing any more */
    heartbeat(1, 3);
    cr_assert_eq(raft_progress(C.nodes[1].r, 3, &p), RAFT_OK);
    cr_assert_eq(p.silent_ticks, 3);
    cr_assert_eq(p.match, LAST(1), "its match alone still looks caught up");
    cr_assert_not(raft_peer_can_lead(C.nodes[1].r, 3, 2), "silent for 3 ticks > 2");
    cr_assert(raft_peer_can_lead(C.nodes[1].r, 3, 3));
    cr_assert(raft_peer_can_lead(C.nodes[1].r, 2, 2));
    cr_assert_not(raft_peer_can_lead(C.nodes[1].r, 1, 2), "not itself");
    cr_assert_not(raft_peer_can_lead(C.nodes[1].r, 9, 2), "not a stranger");
    cr_assert_eq(raft_progress(C.nodes[2].r, 1, &p), RAFT_ENOTLEADER);
    cr_assert_not(raft_peer_can_lead(C.nodes[2].r, 3, 2), "only the leader knows");
}

Test(progress, a_follower_missing_committed_entries_cannot_lead, .fini = teardown)
{
    start3();
    C.nodes[3].manual_disk = true; /* it answers, but cannot make entries durable */
    for (uint64_t v = 1; v <= 3; v++)
        cr_assert_eq(tc_propose(&C, 1, v), RAFT_OK);
    tc_deliver(&C);
    heartbeat(1, 1);
    struct raft_progress p;
    cr_assert_eq(raft_progress(C.nodes[1].r, 3, &p), RAFT_OK);
    cr_assert_eq(p.silent_ticks, 0, "alive");
    cr_assert_lt(p.match, COMMIT(1), "but behind the commit index");
    cr_assert_not(raft_peer_can_lead(C.nodes[1].r, 3, 2));
    tc_flush(&C, 3);
    tc_deliver(&C);
    heartbeat(1, 1);
    cr_assert(raft_peer_can_lead(C.nodes[1].r, 3, 2), "caught up again");
}

Test(progress, a_new_leader_has_heard_nobody_yet, .fini = teardown)
{
    start3();
    tc_isolate(&C, 1); /* the leader dies; 2 takes over once 3's lease ran out */
    tc_tick(&C, 3, 10);
    cr_assert_eq(tc_campaign(&C, 2), RAFT_LEADER);
    struct raft_progress p;
    cr_assert_eq(raft_progress(C.nodes[2].r, 1, &p), RAFT_OK);
    cr_assert_eq(p.silent_ticks, UINT32_MAX, "the dead node never answered this leader");
    cr_assert_not(raft_peer_can_lead(C.nodes[2].r, 1, 1000));
    cr_assert(raft_peer_can_lead(C.nodes[2].r, 3, 2), "3 answered the election's appends");
}

/* ---- membership -------------------------------------------------------- */

Test(membership, one_change_at_a_time_after_a_commit_of_the_term, .fini = teardown)
{
    tc_init(&C, 4, 3, NULL);
    /* right after election the no-op is not committed yet */
    for (int i = 0; i < 40 && ROLE(1) == RAFT_FOLLOWER; i++)
        tc_tick(&C, 1, 1);
    while (ROLE(1) != RAFT_LEADER && C.nq > 0) {
        /* deliver only vote traffic until node 1 leads */
        tc_deliver(&C);
    }
    cr_assert_eq(ROLE(1), RAFT_LEADER);
    heartbeat(1, 2);
    uint64_t idx;
    cr_assert_eq(raft_change_member(C.nodes[1].r, 4, RAFT_LEARNER, false, &idx), RAFT_OK);
    tc_drain(&C, 1);
    cr_assert_eq(raft_change_member(C.nodes[1].r, 4, RAFT_VOTER, false, NULL), RAFT_EBUSY,
                 "the previous change is not committed");
    tc_deliver(&C);
    heartbeat(1, 3);
    cr_assert_geq(COMMIT(1), idx);
    cr_assert_eq(LAST(4), LAST(1), "the learner caught up");
    cr_assert_eq(raft_change_member(C.nodes[1].r, 4, RAFT_VOTER, false, NULL), RAFT_OK);
    tc_deliver(&C);
    heartbeat(1, 2);
    struct raft_config cfg;
    raft_get_config(C.nodes[4].r, &cfg);
    cr_assert(raft_config_is_voter(&cfg, 4));
    cr_assert_eq(raft_config_voters(&cfg), 4);
}

Test(membership, new_leader_waits_for_its_noop, .fini = teardown)
{
    tc_init(&C, 4, 3, NULL);
    for (int i = 0; i < 40 && ROLE(1) == RAFT_FOLLOWER; i++)
        tc_tick(&C, 1, 1);
    /* deliver the pre-votes and votes, and nothing else, by hand */
    for (int round = 0; round < 4 && ROLE(1) != RAFT_LEADER; round++) {
        int nq = C.nq;
        struct tc_msg *copy = malloc((size_t)nq * sizeof(*copy));
        memcpy(copy, C.q, (size_t)nq * sizeof(*copy));
        C.nq = 0;
        for (int k = 0; k < nq; k++) {
            copy[k].m.entries = copy[k].ents;
            raft_step(C.nodes[copy[k].m.to].r, &copy[k].m);
            tc_drain(&C, (int)copy[k].m.to);
        }
        free(copy);
    }
    cr_assert_eq(ROLE(1), RAFT_LEADER);
    cr_assert_lt(COMMIT(1), LAST(1), "the no-op is still in flight");
    cr_assert_eq(raft_change_member(C.nodes[1].r, 4, RAFT_LEARNER, false, NULL), RAFT_EBUSY);
    tc_deliver(&C);
    cr_assert_eq(raft_change_member(C.nodes[1].r, 4, RAFT_LEARNER, false, NULL), RAFT_OK);
}

Test(membership, learner_never_campaigns_and_removal_of_leader, .fini = teardown)
{
    tc_init(&C, 4, 3, NULL);
    cr_assert_eq(tc_campaign(&C, 1), RAFT_LEADER);
    heartbeat(1, 2);
    cr_assert_eq(raft_change_member(C.nodes[1].r, 4, RAFT_LEARNER, false, NULL), RAFT_OK);
    tc_drain(&C, 1);
    heartbeat(1, 3);
    tc_tick(&C, 4, 100);
    cr_assert_eq(ROLE(4), RAFT_FOLLOWER);
    cr_assert_eq(C.sent_by_type[RAFT_MSG_PREVOTE], 2, "only node 1's pre-votes");
    /* removing the leader: it leads until the change commits, then steps down */
    cr_assert_eq(raft_change_member(C.nodes[1].r, 1, 0, true, NULL), RAFT_OK);
    tc_drain(&C, 1);
    cr_assert_eq(ROLE(1), RAFT_LEADER);
    tc_deliver(&C);
    cr_assert_eq(ROLE(1), RAFT_FOLLOWER);
    struct raft_config cfg;
    raft_get_config(C.nodes[2].r, &cfg);
    cr_assert_not(raft_config_is_voter(&cfg, 1));
    cr_assert_eq(raft_config_voters(&cfg), 2);
    /* the remaining voters stop hearing from it and elect one of themselves */
    tc_tick(&C, 3, 10);
    cr_assert_eq(tc_campaign(&C, 2), RAFT_LEADER);
}

Test(membership, invalid_changes, .fini = teardown)
{
    start3();
    heartbeat(1, 1);
    cr_assert_eq(raft_change_member(C.nodes[1].r, 2, RAFT_VOTER, false, NULL), RAFT_EINVAL,
                 "already a voter");
    cr_assert_eq(raft_change_member(C.nodes[1].r, 7, 0, true, NULL), RAFT_EINVAL,
                 "not a member");
    cr_assert_eq(raft_change_member(C.nodes[2].r, 4, RAFT_LEARNER, false, NULL),
                 RAFT_ENOTLEADER);
}

Test(membership, config_encoding_round_trip)
{
    struct raft_config a = {0}, b;
    a.n = 3;
    a.nodes[0].id = 1;
    a.nodes[1].id = 0x1122334455667788ULL;
    a.nodes[2].id = 3;
    a.nodes[2].role = RAFT_LEARNER;
    uint8_t buf[128];
    size_t n = raft_config_encode(&a, buf, sizeof(buf));
    cr_assert_eq(n, 4 + 27);
    cr_assert_eq(raft_config_decode(buf, n, &b), RAFT_OK);
    cr_assert_eq(memcmp(&a, &b, sizeof(a)), 0);
    cr_assert_eq(raft_config_decode(buf, n - 1, &b), RAFT_EINVAL);
    cr_assert_eq(raft_config_encode(&a, buf, 10), 0);
}

/* ---- snapshots --------------------------------------------------------- */

Test(snapshot, lagging_follower_gets_install_snapshot, .fini = teardown)
{
    start3();
    tc_isolate(&C, 3);
    for (uint64_t v = 1; v <= 20; v++)
        tc_propose(&C, 1, 500 + v);
    tc_deliver(&C);
    uint64_t applied = raft_applied_index(C.nodes[1].r);
    cr_assert_eq(applied, LAST(1));
    uint8_t image[8] = "IMAGE!!";
    cr_assert_eq(raft_compact(C.nodes[1].r, applied, image, sizeof(image)), RAFT_OK);
    cr_assert_eq(raft_snapshot_index(C.nodes[1].r), applied);
    cr_assert_eq(raft_entry_at(C.nodes[1].r, applied), NULL, "compacted");
    const struct raft_snapshot *s = raft_get_snapshot(C.nodes[1].r);
    cr_assert_eq(s->len, 8);
    cr_assert_eq(raft_config_voters(&s->config), 3);
    /* one more entry after the snapshot, then node 3 returns */
    tc_propose(&C, 1, 999);
    tc_deliver(&C);
    tc_heal(&C);
    heartbeat(1, 4);
    cr_assert_gt(C.sent_by_type[RAFT_MSG_SNAPSHOT], 0);
    cr_assert_eq(C.nodes[3].snapshots_installed, 1);
    cr_assert_eq(raft_snapshot_index(C.nodes[3].r), applied);
    cr_assert_eq(LAST(3), LAST(1));
    cr_assert_eq(C.nodes[3].last_applied, LAST(1));
    cr_assert_eq(C.nodes[3].applied[LAST(1)], 999);
}

Test(snapshot, compact_rules, .fini = teardown)
{
    start3();
    uint64_t a = raft_applied_index(C.nodes[1].r);
    cr_assert_eq(raft_compact(C.nodes[1].r, a + 1, NULL, 0), RAFT_EINVAL, "not applied yet");
    cr_assert_eq(raft_compact(C.nodes[1].r, a, NULL, 0), RAFT_OK);
    cr_assert_eq(raft_compact(C.nodes[1].r, a, NULL, 0), RAFT_EINVAL, "already covered");
}

/* ---- read index -------------------------------------------------------- */

Test(read_index, confirmed_by_a_quorum, .fini = teardown)
{
    start3();
    tc_propose(&C, 1, 77);
    tc_deliver(&C);
    cr_assert_eq(raft_read_index(C.nodes[1].r, 1234), RAFT_OK);
    tc_drain(&C, 1);
    cr_assert_eq(C.nodes[1].n_reads, 0, "not before the heartbeat round");
    tc_deliver(&C);
    cr_assert_eq(C.nodes[1].n_reads, 1);
    cr_assert_eq(C.nodes[1].reads[0].ctx, 1234);
    cr_assert_eq(C.nodes[1].reads[0].index, COMMIT(1));
    cr_assert_eq(raft_read_index(C.nodes[2].r, 1), RAFT_ENOTLEADER);
}

Test(read_index, deposed_leader_cannot_answer, .fini = teardown)
{
    start3();
    tc_isolate(&C, 1);
    cr_assert_eq(raft_read_index(C.nodes[1].r, 1), RAFT_OK);
    tc_deliver(&C);
    heartbeat(1, 3);
    cr_assert_eq(C.nodes[1].n_reads, 0, "no quorum, no answer");
}

Test(read_index, refused_before_the_noop_commits, .fini = teardown)
{
    tc_init(&C, 3, 3, NULL);
    tc_isolate(&C, 2);
    tc_isolate(&C, 3);
    C.cut[1][2] = C.cut[2][1] = false; /* only 1<->2 */
    for (int i = 0; i < 40 && ROLE(1) == RAFT_FOLLOWER; i++)
        tc_tick(&C, 1, 1);
    tc_deliver(&C);
    cr_assert_eq(ROLE(1), RAFT_LEADER);
    cr_assert_eq(COMMIT(1), LAST(1));
    cr_assert_eq(raft_read_index(C.nodes[1].r, 5), RAFT_OK);
}

/* ---- limits and inputs ------------------------------------------------- */

static void tiny(struct raft_options *o)
{
    o->max_uncommitted = 4;
    o->max_msg_bytes = 16;
}

Test(limits, proposals_are_bounded, .fini = teardown)
{
    tc_init(&C, 3, 3, tiny);
    cr_assert_eq(tc_campaign(&C, 1), RAFT_LEADER);
    heartbeat(1, 1);
    uint8_t big[17] = {0};
    struct raft_proposal p = {17, big};
    cr_assert_eq(raft_propose(C.nodes[1].r, &p, 1, NULL), RAFT_ETOOBIG);
    tc_isolate(&C, 1);
    int ok = 0;
    for (int i = 0; i < 10; i++)
        ok += tc_propose(&C, 1, (uint64_t)i) == RAFT_OK;
    cr_assert_eq(ok, 4, "max_uncommitted");
    cr_assert_eq(raft_propose(C.nodes[2].r, &p, 1, NULL), RAFT_ENOTLEADER);
}

Test(limits, malformed_messages_rejected, .fini = teardown)
{
    start3();
    struct raft_msg m = {0};
    m.type = RAFT_MSG_APPEND;
    m.from = 1;
    m.to = 3; /* wrong addressee */
    m.term = 1;
    cr_assert_eq(raft_step(C.nodes[2].r, &m), RAFT_EINVAL);
    m.to = 2;
    struct raft_entry e[2] = {{1, 5, 0, 0, NULL}, {1, 9, 0, 0, NULL}};
    m.index = 4;
    m.entries = e;
    m.n_entries = 2; /* not contiguous */
    cr_assert_eq(raft_step(C.nodes[2].r, &m), RAFT_EINVAL);
    m.type = 99;
    m.n_entries = 0;
    cr_assert_eq(raft_step(C.nodes[2].r, &m), RAFT_EINVAL);
}

/* ---- restart ----------------------------------------------------------- */

Test(restart, boots_from_hard_state_snapshot_and_log)
{
    struct raft_config cfg = {0};
    cfg.n = 1;
    cfg.nodes[0].id = 1;
    uint8_t img[4] = {1, 2, 3, 4};
    struct raft_snapshot s = {.index = 5, .term = 2, .config = cfg, .len = 4, .data = img};
    uint8_t pay[8] = {42};
    struct raft_entry e[2] = {{2, 6, RAFT_ENTRY_NORMAL, 8, pay}, {3, 7, RAFT_ENTRY_NOOP, 0, NULL}};
    struct raft_boot b = {.hard_state = {3, 1, 6}, .snapshot = &s, .entries = e, .n_entries = 2};
    struct raft_options o = {.id = 1, .seed = 1};
    struct raft *r;
    cr_assert_eq(raft_create(&o, &b, &r), RAFT_OK);
    cr_assert_eq(raft_term(r), 3);
    cr_assert_eq(raft_commit_index(r), 6);
    cr_assert_eq(raft_last_index(r), 7);
    cr_assert_eq(raft_applied_index(r), 5);
    struct raft_ready rd;
    cr_assert(raft_has_ready(r));
    raft_ready(r, &rd);
    cr_assert_eq(rd.n_committed, 1, "index 6 is re-applied after restart");
    cr_assert_eq(rd.committed[0].data[0], 42);
    raft_advance(r);
    /* a one-voter group elects itself at the first timeout */
    for (int i = 0; i < 30; i++)
        raft_tick(r);
    cr_assert_eq(raft_role(r), RAFT_LEADER);
    raft_destroy(r);
    /* an inconsistent log is refused */
    e[1].index = 9;
    cr_assert_eq(raft_create(&o, &b, &r), RAFT_EINVAL);
    raft_destroy(NULL);
}

Test(membership, removed_follower_learns_it_and_stays_quiet, .fini = teardown)
{
    start3();
    heartbeat(1, 1);
    cr_assert_eq(raft_change_member(C.nodes[1].r, 3, 0, true, NULL), RAFT_OK);
    tc_drain(&C, 1);
    tc_deliver(&C);
    heartbeat(1, 2);
    struct raft_config cfg;
    raft_get_config(C.nodes[3].r, &cfg);
    cr_assert_eq(cfg.n, 2, "the leader kept replicating until the removal committed");
    int prevotes = C.sent_by_type[RAFT_MSG_PREVOTE];
    tc_tick(&C, 3, 100);
    cr_assert_eq(C.sent_by_type[RAFT_MSG_PREVOTE], prevotes, "a removed node never campaigns");
    /* and the two-voter group still commits */
    cr_assert_eq(tc_propose(&C, 1, 31), RAFT_OK);
    tc_deliver(&C);
    cr_assert_eq(COMMIT(1), LAST(1));
}

static void no_prevote(struct raft_options *o)
{
    o->pre_vote = false;
    o->check_quorum = false;
}

Test(election, stale_candidates_do_not_starve_an_up_to_date_node, .fini = teardown)
{
    tc_init(&C, 3, 3, no_prevote);
    cr_assert_eq(tc_campaign(&C, 1), RAFT_LEADER);
    tc_isolate(&C, 3);
    for (uint64_t v = 1; v <= 3; v++)
        tc_propose(&C, 1, v);
    tc_deliver(&C);
    heartbeat(1, 1);
    /* the leader dies; node 3 (stale log) keeps asking for votes in ever
     * higher terms, which node 2 must refuse without resetting its timer */
    tc_isolate(&C, 1);
    C.cut[2][3] = C.cut[3][2] = false;
    int campaigned = 0;
    for (int round = 0; round < 20 && !campaigned; round++) {
        tc_tick(&C, 3, 40); /* node 3 times out and campaigns */
        tc_deliver(&C);
        tc_tick(&C, 2, 5);
        campaigned = raft_role(C.nodes[2].r) != RAFT_FOLLOWER ||
                     raft_leader(C.nodes[2].r) == 2;
    }
    cr_assert(campaigned, "node 2 timed out despite the stream of stale vote requests");
    tc_deliver(&C);
    cr_assert_eq(ROLE(2), RAFT_LEADER, "and won: its log is the more up to date");
}

static void one_inflight(struct raft_options *o)
{
    o->max_inflight = 1;
    o->max_entries_per_msg = 1;
}

Test(replication, lost_appends_with_a_full_pipeline_are_resent, .fini = teardown)
{
    tc_init(&C, 3, 3, one_inflight);
    cr_assert_eq(tc_campaign(&C, 1), RAFT_LEADER);
    heartbeat(1, 2);
    tc_propose(&C, 1, 1);
    tc_propose(&C, 1, 2);
    tc_drop_all(&C); /* the only APPEND in flight to each follower is lost */
    for (int i = 0; i < 6; i++)
        heartbeat(1, 1);
    cr_assert_eq(LAST(2), LAST(1), "the leader noticed the stall and resent");
    cr_assert_eq(LAST(3), LAST(1));
    cr_assert_eq(COMMIT(1), LAST(1));
}

Test(snapshot, conflict_at_the_snapshot_index_falls_back_to_the_snapshot, .fini = teardown)
{
    tc_init(&C, 3, 3, NULL);
    cr_assert_eq(tc_campaign(&C, 3), RAFT_LEADER);
    heartbeat(3, 1);
    tc_isolate(&C, 3);
    for (uint64_t v = 1; v <= 40; v++)
        tc_propose(&C, 3, 1000 + v); /* term-1 entries only node 3 holds */
    tc_drop_all(&C);
    tc_tick(&C, 2, 11);
    cr_assert_eq(tc_campaign(&C, 1), RAFT_LEADER);
    for (uint64_t v = 1; v <= 25; v++)
        tc_propose(&C, 1, 2000 + v);
    tc_deliver(&C);
    heartbeat(1, 1);
    uint64_t a = raft_applied_index(C.nodes[1].r);
    cr_assert_eq(raft_compact(C.nodes[1].r, a, (const uint8_t *)"S", 1), RAFT_OK);
    /* leadership goes to 2 and back, so node 1 probes node 3 from its last
     * index again; node 3's log is longer, with lower terms, conflicting at
     * and below the snapshot index, where the leader cannot compare terms */
    cr_assert_eq(raft_transfer_leadership(C.nodes[1].r, 2), RAFT_OK);
    tc_drain(&C, 1);
    tc_deliver(&C);
    cr_assert_eq(ROLE(2), RAFT_LEADER);
    heartbeat(2, 1);
    cr_assert_eq(raft_transfer_leadership(C.nodes[2].r, 1), RAFT_OK);
    tc_drain(&C, 2);
    tc_deliver(&C);
    cr_assert_eq(ROLE(1), RAFT_LEADER);
    cr_assert_lt(LAST(1), LAST(3));
    tc_heal(&C);
    tc_tick(&C, 3, 1);
    heartbeat(1, 4);
    cr_assert_eq(C.nodes[3].snapshots_installed, 1);
    cr_assert_eq(LAST(3), LAST(1));
    cr_assert_eq(raft_term_at(C.nodes[3].r, LAST(1)), raft_term_at(C.nodes[1].r, LAST(1)));
}

/* ---- a failed replica steps aside and is repaired (S7) ----------------- */

Test(aside, leader_hands_over_and_never_campaigns_again, .fini = teardown)
{
    start3();
    cr_assert_eq(tc_propose(&C, 1, 7), RAFT_OK);
    tc_deliver(&C);
    raft_step_aside(C.nodes[1].r, true);
    cr_assert(raft_is_aside(C.nodes[1].r));
    cr_assert_eq(tc_propose(&C, 1, 8), RAFT_EBUSY, "no proposals while handing over");
    tc_drain(&C, 1);
    tc_deliver(&C);
    cr_assert_gt(C.sent_by_type[RAFT_MSG_TIMEOUT_NOW], 0, "handed to a caught-up voter");
    cr_assert_neq(ROLE(1), RAFT_LEADER);
    int leader = ROLE(2) == RAFT_LEADER ? 2 : 3;
    cr_assert_eq(ROLE(leader), RAFT_LEADER);
    heartbeat(leader, 1);
    cr_assert_eq(C.nodes[1].applied[2], 7, "the aside node still applies as a follower");
    /* cut from the leader, the aside node times out again and again, and
     * never campaigns; a TIMEOUT_NOW does not move it either */
    tc_isolate(&C, leader);
    uint64_t t = TERM(1);
    int asked = C.sent_by_type[RAFT_MSG_PREVOTE] + C.sent_by_type[RAFT_MSG_VOTE];
    tc_tick(&C, 1, 100);
    cr_assert_eq(ROLE(1), RAFT_FOLLOWER);
    cr_assert_eq(TERM(1), t);
    cr_assert_eq(C.sent_by_type[RAFT_MSG_PREVOTE] + C.sent_by_type[RAFT_MSG_VOTE], asked,
                 "the aside node asked nobody for a vote");
    int other = leader == 2 ? 3 : 2;
    /* but it still votes: the third node wins with its vote */
    cr_assert_eq(tc_campaign(&C, other), RAFT_LEADER, "the aside node voted for node %d", other);
    raft_step_aside(C.nodes[1].r, false);
    cr_assert(!raft_is_aside(C.nodes[1].r));
}

Test(aside, lone_voter_steps_down, .fini = teardown)
{
    tc_init(&C, 1, 1, NULL);
    cr_assert_eq(tc_campaign(&C, 1), RAFT_LEADER);
    raft_step_aside(C.nodes[1].r, true);
    tc_drain(&C, 1);
    cr_assert_eq(ROLE(1), RAFT_FOLLOWER);
    tc_tick(&C, 1, 100);
    cr_assert_eq(ROLE(1), RAFT_FOLLOWER, "aside: never elects itself again");
    cr_assert_eq(tc_propose(&C, 1, 1), RAFT_ENOTLEADER);
}

Test(aside, leader_without_a_taker_steps_down_after_a_timeout, .fini = teardown)
{
    start3();
    tc_isolate(&C, 1);
    raft_step_aside(C.nodes[1].r, true);
    tc_tick(&C, 1, 11);
    cr_assert_eq(ROLE(1), RAFT_FOLLOWER);
}

/* Replaces node `id` by a fresh one with an empty log that kept its term and
 * vote and carries the vote floor (term, index): a repaired replica. */
static void repair(int id, uint64_t floor_term, uint64_t floor_index)
{
    struct raft *old = C.nodes[id].r;
    struct raft_config cfg = {0};
    raft_get_config(old, &cfg);
    struct raft_boot b = {0};
    b.hard_state.term = raft_term(old);
    b.initial = &cfg;
    b.vote_floor.term = floor_term;
    b.vote_floor.index = floor_index;
    raft_destroy(old);
    memset(&C.nodes[id], 0, sizeof C.nodes[id]);
    struct raft_options o = {.id = (uint64_t)id, .election_ticks = 10, .heartbeat_ticks = 1,
                             .pre_vote = true, .check_quorum = true, .seed = 42};
    cr_assert_eq(raft_create(&o, &b, &C.nodes[id].r), RAFT_OK);
}

Test(repair, leader_lowers_match_and_refills_the_follower, .fini = teardown)
{
    start3();
    for (uint64_t v = 1; v <= 5; v++)
        cr_assert_eq(tc_propose(&C, 1, v), RAFT_OK);
    tc_deliver(&C);
    heartbeat(1, 1);
    uint64_t last = LAST(2), lterm = raft_term_at(C.nodes[2].r, last);
    cr_assert_eq(last, 6);
    repair(2, lterm, last);
    cr_assert(raft_below_vote_floor(C.nodes[2].r));
    cr_assert_eq(LAST(2), 0);
    /* the leader still believes node 2 holds 6; the LOG_LOST rejection tells it otherwise */
    heartbeat(1, 3);
    cr_assert_eq(LAST(2), 6, "the repaired follower got the whole log back");
    cr_assert_eq(C.nodes[2].applied[6], 5);
    cr_assert(!raft_below_vote_floor(C.nodes[2].r), "caught up: the floor is below its log");
}

Test(repair, below_its_floor_a_replica_refuses_a_candidate_its_old_log_outranks,
     .fini = teardown)
{
    /* Figure 8-like: entries 2..4 are committed on nodes 1 and 2 only; node 2
     * then loses its log.  Node 3 (missing them) must not win with node 2's
     * vote, or a committed entry would be lost. */
    start3();
    tc_isolate(&C, 3);
    for (uint64_t v = 1; v <= 3; v++)
        cr_assert_eq(tc_propose(&C, 1, v), RAFT_OK);
    tc_deliver(&C);
    cr_assert_eq(COMMIT(1), 4, "committed by nodes 1 and 2");
    uint64_t last = LAST(2), lterm = raft_term_at(C.nodes[2].r, last);
    repair(2, lterm, last);
    tc_heal(&C);
    tc_isolate(&C, 1); /* the leader is gone */
    tc_tick(&C, 2, 30); /* node 2's lease is long over */
    tc_tick(&C, 3, 60);
    tc_deliver(&C);
    cr_assert_neq(ROLE(3), RAFT_LEADER, "node 2's floor refused node 3");
    cr_assert_neq(ROLE(2), RAFT_LEADER, "node 2 cannot win either (node 3 has more)");
}

Test(repair, a_floor_of_unknown_index_waits_for_a_later_term, .fini = teardown)
{
    start3();
    cr_assert_eq(tc_propose(&C, 1, 1), RAFT_OK);
    tc_deliver(&C);
    heartbeat(1, 1);
    uint64_t t = TERM(2);
    repair(2, t, UINT64_MAX);
    heartbeat(1, 3);
    cr_assert_eq(LAST(2), LAST(1), "refilled");
    cr_assert(raft_below_vote_floor(C.nodes[2].r), "same term as the floor: still below");
    /* a new term (a leadership change) lifts it */
    cr_assert_eq(raft_transfer_leadership(C.nodes[1].r, 3), RAFT_OK);
    tc_drain(&C, 1);
    tc_deliver(&C);
    assert_leader(3, 3);
    heartbeat(3, 2);
    cr_assert(!raft_below_vote_floor(C.nodes[2].r));
}
