/* test_meta_place.c: services/metadata/meta_place.c: node registration,
 * partitions of 3 replicas on distinct nodes, balanced placement, leaders
 * reported by storage, nodes marked down after missed heartbeats. */
#include "meta_fixture.h"

TestSuite(place, .init = fx_setup, .fini = fx_teardown);

static void reg(const char *id)
{
    cmq_NodeRequest r = cmq_NodeRequest_init_zero;
    snprintf(r.node_id, sizeof r.node_id, "%s", id);
    snprintf(r.endpoint, sizeof r.endpoint, "tcp://127.0.0.1:%d", 18000 + id[strlen(id) - 1]);
    cmq_NodeReply rep;
    struct meta_err e = {0};
    cr_assert_eq(meta_node_register(fx.s, &r, &rep, &e), CMQ_OK, "%s", e.reason);
    pb_release(cmq_NodeReply_fields, &rep);
}

static int heartbeat(const char *id, uint32_t pid, bool leader, uint64_t term)
{
    cmq_NodeRequest r = cmq_NodeRequest_init_zero;
    snprintf(r.node_id, sizeof r.node_id, "%s", id);
    if (pid) {
        r.partitions_count = 1;
        r.partitions[0].partition_id = pid;
        r.partitions[0].is_leader = leader;
        r.partitions[0].term = term;
    }
    cmq_NodeReply rep;
    struct meta_err e = {0};
    int st = meta_node_heartbeat(fx.s, &r, &rep, &e);
    pb_release(cmq_NodeReply_fields, &rep);
    return st;
}

static const cmq_Partition *find_part(const cmq_PartitionMap *m, uint32_t id)
{
    for (pb_size_t i = 0; i < m->partitions_count; i++)
        if (m->partitions[i].id == id)
            return &m->partitions[i];
    return NULL;
}

Test(place, queues_wait_unplaced_until_three_nodes)
{
    struct meta_err e = {0};
    cmq_QueueInfo q;
    cr_assert_eq(qcreate("early", &q, &e), CMQ_OK);
    cr_assert_eq(q.partition_id, 0);
    reg("storage-1");
    reg("storage-2");
    cmq_PartitionMap m;
    cr_assert_eq(meta_partition_map(fx.s, &m, &e), CMQ_OK);
    cr_assert_eq(m.partitions_count, 0);
    pb_release(cmq_PartitionMap_fields, &m);
    reg("storage-3");
    cr_assert_eq(meta_partition_map(fx.s, &m, &e), CMQ_OK);
    cr_assert_eq(m.partitions_count, 6); /* 3 nodes x 2 partitions per node */
    cr_assert_eq(m.nodes_count, 3);
    for (pb_size_t i = 0; i < m.partitions_count; i++) {
        const cmq_Partition *p = &m.partitions[i];
        cr_assert_eq(p->replicas_count, 3);
        cr_assert_str_neq(p->replicas[0], p->replicas[1]);
        cr_assert_str_neq(p->replicas[1], p->replicas[2]);
        cr_assert_str_neq(p->replicas[0], p->replicas[2]);
    }
    pb_release(cmq_PartitionMap_fields, &m);
    cmq_NameRequest nr = nreq("early");
    cr_assert_eq(meta_queue_get(fx.s, &nr, &q, &e), CMQ_OK);
    cr_assert_neq(q.partition_id, 0);
    cr_assert_eq(fx_count_events("partition.created"), 6);
}

Test(place, three_hundred_queues_over_three_nodes_are_even)
{
    reg("n1");
    reg("n2");
    reg("n3");
    struct meta_err e = {0};
    for (int i = 0; i < 300; i++) {
        char n[16];
        snprintf(n, sizeof n, "q%03d", i);
        cr_assert_eq(qcreate(n, NULL, &e), CMQ_OK, "%s", e.reason);
    }
    cmq_PartitionMap m;
    cr_assert_eq(meta_partition_map(fx.s, &m, &e), CMQ_OK);
    int per_leader[3] = {0};
    unsigned min_p = 1000, max_p = 0;
    for (pb_size_t i = 0; i < m.partitions_count; i++) {
        const cmq_Partition *p = &m.partitions[i];
        per_leader[p->preferred_leader[1] - '1'] += (int)p->queue_count;
        min_p = p->queue_count < min_p ? p->queue_count : min_p;
        max_p = p->queue_count > max_p ? p->queue_count : max_p;
    }
    pb_release(cmq_PartitionMap_fields, &m);
    for (int i = 0; i < 3; i++)
        cr_assert(per_leader[i] >= 99 && per_leader[i] <= 101, "node %d leads %d", i + 1,
                  per_leader[i]);
    cr_assert_leq(max_p - min_p, 1);
}

Test(place, reported_leaders_steer_placement_and_stale_terms_are_ignored)
{
    reg("n1");
    reg("n2");
    reg("n3");
    struct meta_err e = {0};
    cmq_PartitionMap m;
    cr_assert_eq(meta_partition_map(fx.s, &m, &e), CMQ_OK);
    /* n1 wins every election */
    for (pb_size_t i = 0; i < m.partitions_count; i++)
        cr_assert_eq(heartbeat("n1", m.partitions[i].id, true, 5), CMQ_OK);
    uint32_t p1 = m.partitions[0].id;
    pb_release(cmq_PartitionMap_fields, &m);
    cr_assert_eq(meta_partition_map(fx.s, &m, &e), CMQ_OK);
    cr_assert_str_eq(find_part(&m, p1)->leader, "n1");
    cr_assert_eq(find_part(&m, p1)->leader_term, 5);
    pb_release(cmq_PartitionMap_fields, &m);
    cr_assert_eq(fx_count_events("partition.leader"), 6);
    /* an older term from n2 changes nothing; a newer one does */
    cr_assert_eq(heartbeat("n2", p1, true, 4), CMQ_OK);
    cr_assert_eq(meta_partition_map(fx.s, &m, &e), CMQ_OK);
    cr_assert_str_eq(find_part(&m, p1)->leader, "n1");
    pb_release(cmq_PartitionMap_fields, &m);
    cr_assert_eq(heartbeat("n2", p1, true, 6), CMQ_OK);
    cr_assert_eq(meta_partition_map(fx.s, &m, &e), CMQ_OK);
    cr_assert_str_eq(find_part(&m, p1)->leader, "n2");
    pb_release(cmq_PartitionMap_fields, &m);
    /* every new queue now lands where the leader is least loaded:
     * n2 leads one partition, n1 five; 12 queues -> n2's partition gets 6 */
    for (int i = 0; i < 12; i++) {
        char n[8];
        snprintf(n, sizeof n, "q%d", i);
        cr_assert_eq(qcreate(n, NULL, &e), CMQ_OK);
    }
    cr_assert_eq(meta_partition_map(fx.s, &m, &e), CMQ_OK);
    cr_assert_eq(find_part(&m, p1)->queue_count, 6);
    pb_release(cmq_PartitionMap_fields, &m);
    /* unknown node: must register */
    cr_assert_eq(heartbeat("n9", 0, false, 0), CMQ_ENOTFOUND);
}

Test(place, node_down_after_missed_heartbeats_and_up_again)
{
    reg("n1");
    reg("n2");
    reg("n3");
    struct meta_err e = {0};
    cmq_PartitionMap m;
    cr_assert_eq(meta_partition_map(fx.s, &m, &e), CMQ_OK);
    uint32_t p1 = m.partitions[0].id;
    pb_release(cmq_PartitionMap_fields, &m);
    cr_assert_eq(heartbeat("n3", p1, true, 1), CMQ_OK);
    fx.now_ms += 6000;
    cr_assert_eq(heartbeat("n1", 0, false, 0), CMQ_OK);
    cr_assert_eq(heartbeat("n2", 0, false, 0), CMQ_OK);
    cr_assert_eq(meta_nodes_check(fx.s), 0);
    fx.now_ms += 5000; /* n3 silent for 11 s > 10 s */
    cr_assert_eq(meta_nodes_check(fx.s), 1);
    cr_assert_eq(fx_count_events("node.down"), 1);
    cmq_NodeList nl;
    cr_assert_eq(meta_node_list(fx.s, &nl, &e), CMQ_OK);
    cr_assert_eq(nl.nodes_count, 3);
    cr_assert(nl.nodes[0].up);
    cr_assert(nl.nodes[1].up);
    cr_assert_not(nl.nodes[2].up);
    cr_assert_eq(meta_partition_map(fx.s, &m, &e), CMQ_OK);
    cr_assert_str_eq(find_part(&m, p1)->leader, ""); /* its leadership is forgotten */
    pb_release(cmq_PartitionMap_fields, &m);
    cr_assert_eq(meta_nodes_check(fx.s), 0); /* once */
    cr_assert_eq(heartbeat("n3", 0, false, 0), CMQ_OK);
    cr_assert_eq(fx_count_events("node.up"), 1);
    cr_assert_eq(meta_node_list(fx.s, &nl, &e), CMQ_OK);
    cr_assert(nl.nodes[2].up);
}

Test(place, down_state_and_partitions_survive_restart)
{
    reg("n1");
    reg("n2");
    reg("n3");
    fx.now_ms += 20000;
    cr_assert_eq(meta_nodes_check(fx.s), 3);
    fx_reopen();
    struct meta_err e = {0};
    cmq_PartitionMap m;
    cr_assert_eq(meta_partition_map(fx.s, &m, &e), CMQ_OK);
    cr_assert_eq(m.partitions_count, 6);
    cr_assert_eq(m.nodes_count, 3);
    cr_assert_not(m.nodes[0].up);
    pb_release(cmq_PartitionMap_fields, &m);
    /* after a restart, up nodes get a full timeout before being marked down */
    cr_assert_eq(heartbeat("n1", 0, false, 0), CMQ_OK);
    fx_reopen();
    fx.now_ms += 9000;
    cr_assert_eq(meta_nodes_check(fx.s), 0);
    fx.now_ms += 2000;
    cr_assert_eq(meta_nodes_check(fx.s), 1);
}

Test(place, fourth_node_gets_new_partitions_with_distinct_replicas)
{
    reg("n1");
    reg("n2");
    reg("n3");
    reg("n4");
    struct meta_err e = {0};
    cmq_PartitionMap m;
    cr_assert_eq(meta_partition_map(fx.s, &m, &e), CMQ_OK);
    cr_assert_eq(m.partitions_count, 8);
    int pref[4] = {0};
    for (pb_size_t i = 0; i < m.partitions_count; i++) {
        pref[m.partitions[i].preferred_leader[1] - '1']++;
        cr_assert_str_neq(m.partitions[i].replicas[0], m.partitions[i].replicas[1]);
        cr_assert_str_neq(m.partitions[i].replicas[0], m.partitions[i].replicas[2]);
        cr_assert_str_neq(m.partitions[i].replicas[1], m.partitions[i].replicas[2]);
    }
    pb_release(cmq_PartitionMap_fields, &m);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(pref[i], 2, "node %d prefers %d", i + 1, pref[i]);
    cmq_NodeList nl;
    cr_assert_eq(meta_node_list(fx.s, &nl, &e), CMQ_OK);
    cr_assert_eq(nl.nodes[3].replica_count, 2);
}

Test(place, map_version_moves_only_with_placement)
{
    struct meta_err e = {0};
    reg("n1");
    reg("n2");
    reg("n3");
    cmq_PartitionMap m;
    cr_assert_eq(meta_partition_map(fx.s, &m, &e), CMQ_OK);
    uint64_t v = m.map_version;
    uint32_t p1 = m.partitions[0].id;
    pb_release(cmq_PartitionMap_fields, &m);
    cr_assert_gt(v, 0);
    cr_assert_eq(qcreate("q", NULL, &e), CMQ_OK);
    cr_assert_eq(heartbeat("n1", 0, false, 0), CMQ_OK); /* nothing new */
    cr_assert_eq(meta_partition_map(fx.s, &m, &e), CMQ_OK);
    cr_assert_eq(m.map_version, v);
    pb_release(cmq_PartitionMap_fields, &m);
    cr_assert_eq(heartbeat("n2", p1, true, 1), CMQ_OK); /* a new leader */
    cr_assert_eq(meta_partition_map(fx.s, &m, &e), CMQ_OK);
    cr_assert_gt(m.map_version, v);
    cr_assert_eq(m.map_version, meta_store_version(fx.s));
    pb_release(cmq_PartitionMap_fields, &m);
}

Test(place, bad_node_ids)
{
    cmq_NodeRequest r = cmq_NodeRequest_init_zero;
    strcpy(r.node_id, "bad id");
    strcpy(r.endpoint, "tcp://x:1");
    cmq_NodeReply rep;
    struct meta_err e = {0};
    cr_assert_eq(meta_node_register(fx.s, &r, &rep, &e), CMQ_EINVAL);
    strcpy(r.node_id, "ok");
    r.endpoint[0] = '\0';
    cr_assert_eq(meta_node_register(fx.s, &r, &rep, &e), CMQ_EINVAL);
}
