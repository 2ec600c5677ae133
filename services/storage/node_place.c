/* node_place.c: the storage node's placement client: registration and
 * heartbeats to metadata, the partition map (peers' endpoints, the
 * partitions this node holds a replica of) and moving leadership toward
 * each partition's preferred leader; see node_place.h.  It opens a
 * partition through n->open_partition (node.c) and never closes one. */
#include "node_place.h"
#include "node_raft.h"

#include "clock.h"
#include "log.h"
#include "raft.h"
#include "status.h"

#include "metadata.pb.h"

#include <pb_decode.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct partition *part_by_id(struct node *n, uint32_t id)
{
    struct hosted *h = hosted_by_id(n, id);
    return h ? h->p : NULL;
}

/* ---------- metadata: registration, heartbeats, the partition map ---------- */

static void on_map(void *arg, const struct rpc_result *res)
{
    struct node *n = arg;
    n->map_inflight = 0;
    if (res->status != CMQ_OK || !res->msg)
        return;
    cmq_PartitionMap map = cmq_PartitionMap_init_zero;
    if (rpc_pb_decode(cmq_PartitionMap_fields, &map, res->msg->body, res->msg->body_len) != CMQ_OK) {
        pb_release(cmq_PartitionMap_fields, &map);
        return;
    }
    for (pb_size_t i = 0; i < map.nodes_count; i++)
        node_peer_upsert(n, map.nodes[i].node_id,
                    map.nodes[i].raft_endpoint[0] ? map.nodes[i].raft_endpoint : map.nodes[i].endpoint,
                    map.nodes[i].endpoint);
    for (pb_size_t i = 0; i < map.partitions_count; i++) {
        const cmq_Partition *p = &map.partitions[i];
        int mine = 0;
        char names[RAFT_MAX_NODES][64];
        int count = 0;
        for (pb_size_t k = 0; k < p->replicas_count && count < RAFT_MAX_NODES; k++) {
            mine |= strcmp(p->replicas[k], n->cfg->common.node_id) == 0;
            snprintf(names[count++], 64, "%s", p->replicas[k]);
        }
        if (mine && !part_by_id(n, p->id))
            n->open_partition(n, p->id, names, count);
    }
    pb_release(cmq_PartitionMap_fields, &map);
}

static void request_map(struct node *n)
{
    if (n->map_inflight)
        return;
    cmq_ListRequest lr = cmq_ListRequest_init_zero;
    uint8_t *buf;
    size_t len;
    if (rpc_pb_encode(cmq_ListRequest_fields, &lr, &buf, &len) != CMQ_OK)
        return;
    struct rpc_opts opts = {.timeout_ms = 2000, .attempts = 1, .peer = 0};
    if (rpc_client_call(n->meta, cmq_MetaMsgType_META_MSG_PARTITION_MAP, buf, len, &opts, on_map,
                        n) == CMQ_OK)
        n->map_inflight = 1;
    free(buf);
}

/* Placement names a preferred leader per partition so leaders spread over the
 * nodes; the raft election ignores it.  A leader that is not the preferred
 * one hands leadership over (thesis §3.10), at most once per
 * BALANCE_SPACING_MS per partition, and only to a node that can take it
 * now: a voter that answered within half an election timeout and holds
 * every committed entry (raft_peer_can_lead), seen so on checks at least
 * BALANCE_HEALTHY_MS apart (checks run at each metadata heartbeat).  A dead
 * or lagging preferred node is left alone: a transfer to it would hold the
 * partition's writes for transfer_ticks and then come back.
 *
 * A transfer failed when this node still leads in the same term two election
 * timeouts later (the target never won), or leads again in a later term within
 * BALANCE_COMEBACK_MS (the target won and lost it).  Then the target must be
 * seen healthy again for BALANCE_HEALTHY_MS, and the next attempt waits
 * BALANCE_RETRY_MS, doubling with each failure in a row up to
 * BALANCE_RETRY_MAX_MS.  Proposals made while a transfer runs are held by the
 * partition, not refused (partition.c). */
#define BALANCE_SPACING_MS 10000
#define BALANCE_HEALTHY_MS 2000
#define BALANCE_COMEBACK_MS 30000
#define BALANCE_RETRY_MS 10000
#define BALANCE_RETRY_MAX_MS 300000

static void balance_leader(struct node *n, struct hosted *h, const char *preferred)
{
    if (!h || !preferred[0])
        return;
    struct balance *b = &h->bal;
    struct raft *r = partition_raft(h->p);
    uint64_t now = clock_mono_ms();
    uint64_t election_ms = (uint64_t)n->cfg->election_ticks * (uint64_t)n->cfg->tick_ms;
    int leader = partition_is_leader(h->p);
    if (b->target) {
        uint64_t since = now - h->transfer_at_ms;
        int same_term = raft_term(r) == b->term;
        if (leader && same_term && since < 2 * election_ms)
            return; /* under way */
        if (leader && (same_term || since < BALANCE_COMEBACK_MS)) {
            b->failures++;
            uint32_t shift = b->failures - 1 < 5 ? b->failures - 1 : 5;
            uint64_t wait = (uint64_t)BALANCE_RETRY_MS << shift;
            if (wait > BALANCE_RETRY_MAX_MS)
                wait = BALANCE_RETRY_MAX_MS;
            b->retry_at_ms = now + wait;
            b->healthy_since_ms = 0;
            log_warn("leader_transfer_failed", "partition=%u to=%s failures=%u retry_in_ms=%llu",
                     h->id, preferred, b->failures, (unsigned long long)wait);
        } else if (!leader && since < BALANCE_COMEBACK_MS) {
            return; /* the target leads: see whether it keeps leadership */
        } else {
            b->failures = 0; /* it took leadership and kept it */
        }
        b->target = 0;
    }
    if (strcmp(preferred, n->cfg->common.node_id) == 0 || !leader)
        return;
    uint64_t target = raft_id_of(preferred);
    uint32_t silent_max = (uint32_t)n->cfg->election_ticks / 2;
    if (!raft_peer_can_lead(r, target, silent_max < 2 ? 2 : silent_max)) {
        if (!b->skip_logged)
            log_info("leader_transfer_skipped", "partition=%u to=%s reason=\"not answering or "
                     "behind the commit index\"", h->id, preferred);
        b->skip_logged = 1;
        b->healthy_since_ms = 0;
        return;
    }
    if (!b->healthy_since_ms) {
        b->healthy_since_ms = now;
        return;
    }
    if (now - b->healthy_since_ms < BALANCE_HEALTHY_MS || now < b->retry_at_ms ||
        (h->transfer_at_ms && now - h->transfer_at_ms < BALANCE_SPACING_MS))
        return;
    h->transfer_at_ms = now;
    b->target = target;
    b->term = raft_term(r);
    b->skip_logged = 0;
    int rc = raft_transfer_leadership(r, target);
    log_info("leader_transfer", "partition=%u to=%s status=%s", h->id, preferred,
             raft_status_name(rc));
    if (rc != RAFT_OK)
        b->target = 0;
    partition_flush(h->p); /* send what the transfer produced */
}

static void on_heartbeat_reply(void *arg, const struct rpc_result *res)
{
    struct node *n = arg;
    n->hb_inflight = 0;
    if (res->status != CMQ_OK || !res->msg) {
        if (n->registered && res->status == CMQ_ENOTFOUND)
            n->registered = 0; /* metadata forgot us (new database): register again */
        return;
    }
    if (!n->registered)
        log_info("registered", "metadata=%s", n->cfg->metadata);
    n->registered = 1;
    cmq_NodeReply r = cmq_NodeReply_init_zero;
    if (rpc_pb_decode(cmq_NodeReply_fields, &r, res->msg->body, res->msg->body_len) != CMQ_OK) {
        pb_release(cmq_NodeReply_fields, &r);
        return;
    }
    int need_map = 0;
    for (pb_size_t i = 0; i < r.partitions_count; i++) {
        const cmq_Partition *p = &r.partitions[i];
        if (!part_by_id(n, p->id))
            need_map = 1;
        else
            balance_leader(n, hosted_by_id(n, p->id), p->preferred_leader);
        for (pb_size_t k = 0; k < p->replicas_count; k++) {
            struct peer *pe = peer_by_id(n, raft_id_of(p->replicas[k]));
            if (!pe || (!pe->client && pe->raft_id != n->raft_id) || !pe->rpc_ep[0])
                need_map = 1;
        }
    }
    pb_release(cmq_NodeReply_fields, &r);
    if (need_map)
        request_map(n);
}

void node_place_heartbeat(struct evloop *loop, void *arg)
{
    struct node *n = arg;
    evloop_timer(loop, (uint64_t)n->cfg->heartbeat_ms, node_place_heartbeat, n);
    if (n->hb_inflight || svc_stopping(n->svc))
        return;
    cmq_NodeRequest req = cmq_NodeRequest_init_zero;
    snprintf(req.node_id, sizeof req.node_id, "%s", n->cfg->common.node_id);
    snprintf(req.endpoint, sizeof req.endpoint, "%s",
             n->cfg->advertise_rpc[0] ? n->cfg->advertise_rpc : n->cfg->common.listen);
    snprintf(req.raft_endpoint, sizeof req.raft_endpoint, "%s",
             n->cfg->advertise_raft[0] ? n->cfg->advertise_raft : n->cfg->raft_listen);
    for (int i = 0; i < n->n_parts && req.partitions_count < 256; i++) {
        struct raft *r = partition_raft(n->parts[i]->p);
        cmq_PartitionReport *pr = &req.partitions[req.partitions_count++];
        pr->partition_id = n->parts[i]->id;
        pr->is_leader = raft_role(r) == RAFT_LEADER;
        pr->term = raft_term(r);
    }
    uint8_t *buf;
    size_t len;
    if (rpc_pb_encode(cmq_NodeRequest_fields, &req, &buf, &len) != CMQ_OK)
        return;
    struct rpc_opts opts = {.timeout_ms = 2000, .attempts = 1, .peer = 0};
    uint32_t type = n->registered ? cmq_MetaMsgType_META_MSG_NODE_HEARTBEAT
                                  : cmq_MetaMsgType_META_MSG_NODE_REGISTER;
    if (rpc_client_call(n->meta, type, buf, len, &opts, on_heartbeat_reply, n) == CMQ_OK)
        n->hb_inflight = 1;
    free(buf);
}

