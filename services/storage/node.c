/* node.c: hosts partitions, carries Raft messages between nodes, answers
 * partition status.  See node.h.
 *
 * Wire mapping: struct raft_msg <-> cmq.RaftMessage (proto/raft.proto) field
 * for field; entries and snapshot data are FT_POINTER fields, so a decoded
 * message is released with pb_release right after raft_step copied it.
 */
#include "node.h"

#include "clock.h"
#include "log.h"
#include "partition.h"
#include "raft.h"
#include "raft.pb.h"
#include "status.h"

#include <pb_decode.h>
#include <pb_encode.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const struct config_key storage_config_keys[] = {
    SVC_COMMON_KEYS(struct storage_cfg, "storage-1", "tcp://127.0.0.1:17120"),
    CONFIG_STR_KEY("data.dir", struct storage_cfg, data_dir, "var/dev/storage-1",
                   "directory holding this node's partitions (segment files)"),
    CONFIG_STR_KEY("raft.listen", struct storage_cfg, raft_listen, "tcp://127.0.0.1:17121",
                   "ZeroMQ endpoint for raft traffic from peer storage nodes"),
    CONFIG_INT_KEY("raft.id", struct storage_cfg, raft_id, "1", 1, 1000000,
                   "this node's raft id; must appear in raft.peers"),
    CONFIG_STR_KEY("raft.peers", struct storage_cfg, raft_peers, "1=tcp://127.0.0.1:17121",
                   "every replica as id=raft-endpoint, comma-separated (this node included)"),
    CONFIG_STR_KEY("cluster.rpc_peers", struct storage_cfg, rpc_peers, "1=tcp://127.0.0.1:17120",
                   "every replica as id=rpc-endpoint, for leader hints to clients"),
    CONFIG_INT_KEY("partitions.count", struct storage_cfg, partitions, "4", 1,
                   NODE_MAX_PARTITIONS, "partitions hosted (ids 1..count), each on every peer"),
    CONFIG_INT_KEY("raft.tick_ms", struct storage_cfg, tick_ms, "100", 5, 10000,
                   "length of one raft tick"),
    CONFIG_INT_KEY("raft.election_ticks", struct storage_cfg, election_ticks, "10", 3, 1000,
                   "election timeout in ticks (randomized in [e, 2e)); heartbeat is 1 tick"),
    CONFIG_INT_KEY("data.segment_bytes", struct storage_cfg, segment_bytes, "67108864", 65536,
                   1073741824, "size of each preallocated segment file"),
    CONFIG_STR_KEY("metadata.endpoint", struct storage_cfg, metadata, "tcp://127.0.0.1:17100",
                   "the metadata service"),
    CONFIG_STR_KEY("scheduler.endpoint", struct storage_cfg, scheduler, "tcp://127.0.0.1:17110",
                   "the scheduler service"),
};
const size_t storage_config_n_keys = sizeof storage_config_keys / sizeof storage_config_keys[0];

struct peer {
    uint64_t id;
    char raft_ep[RPC_ENDPOINT_MAX];
    char rpc_ep[RPC_ENDPOINT_MAX];
    struct rpc_client *client; /* NULL for this node */
};

struct node {
    struct svc *svc;
    const struct storage_cfg *cfg;
    struct peer peers[RAFT_MAX_NODES];
    int n_peers;
    struct rpc_server *raft_server;
    struct partition *parts[NODE_MAX_PARTITIONS + 1]; /* by id */
    int n_parts;
    uint64_t sent, send_failed, received;
};

/* ---------- configuration ---------- */

/* Parses "1=tcp://a,2=tcp://b" into peers (ep_field selects raft or rpc). */
static int parse_peer_list(struct node *n, const char *list, int rpc)
{
    char buf[NODE_PEERS_MAX];
    snprintf(buf, sizeof buf, "%s", list);
    for (char *save, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ')
            tok++;
        char *eq = strchr(tok, '=');
        char *end;
        unsigned long long id = eq ? strtoull(tok, &end, 10) : 0;
        if (!eq || end != eq || id == 0 || strlen(eq + 1) >= RPC_ENDPOINT_MAX)
            return CMQ_EINVAL;
        struct peer *p = NULL;
        for (int i = 0; i < n->n_peers; i++)
            if (n->peers[i].id == id)
                p = &n->peers[i];
        if (!p) {
            if (rpc || n->n_peers == RAFT_MAX_NODES)
                return CMQ_EINVAL; /* rpc peers must name raft peers */
            p = &n->peers[n->n_peers++];
            p->id = id;
        }
        snprintf(rpc ? p->rpc_ep : p->raft_ep, RPC_ENDPOINT_MAX, "%s", eq + 1);
    }
    return CMQ_OK;
}

static struct peer *peer_by_id(struct node *n, uint64_t id)
{
    for (int i = 0; i < n->n_peers; i++)
        if (n->peers[i].id == id)
            return &n->peers[i];
    return NULL;
}

/* ---------- raft wire ---------- */

static void send_raft(void *arg, uint32_t partition_id, const struct raft_msg *m)
{
    struct node *n = arg;
    struct peer *p = peer_by_id(n, m->to);
    if (!p || !p->client)
        return;
    cmq_RaftWire w = cmq_RaftWire_init_zero;
    w.partition = partition_id;
    w.has_msg = true;
    cmq_RaftMessage *o = &w.msg;
    o->type = m->type;
    o->flags = m->flags;
    o->from = m->from;
    o->to = m->to;
    o->term = m->term;
    o->log_term = m->log_term;
    o->index = m->index;
    o->commit = m->commit;
    o->reject = m->reject;
    o->hint_index = m->hint_index;
    o->hint_term = m->hint_term;
    o->read_seq = m->read_seq;
    int ok = 1;
    if (m->n_entries) {
        o->entries = calloc(m->n_entries, sizeof *o->entries);
        ok = o->entries != NULL;
        for (uint32_t i = 0; ok && i < m->n_entries; i++) {
            const struct raft_entry *e = &m->entries[i];
            cmq_RaftEntry *oe = &o->entries[i];
            oe->term = e->term;
            oe->index = e->index;
            oe->type = e->type;
            if (e->len) {
                oe->data = malloc(PB_BYTES_ARRAY_T_ALLOCSIZE(e->len));
                ok = oe->data != NULL;
                if (ok) {
                    oe->data->size = e->len;
                    memcpy(oe->data->bytes, e->data, e->len);
                }
            }
            o->entries_count = i + 1;
        }
    }
    if (ok && m->type == RAFT_MSG_SNAPSHOT) {
        o->has_snapshot = true;
        o->snapshot.index = m->snapshot.index;
        o->snapshot.term = m->snapshot.term;
        o->snapshot.config.size = (pb_size_t)raft_config_encode(
            &m->snapshot.config, o->snapshot.config.bytes, sizeof o->snapshot.config.bytes);
        if (m->snapshot.len) {
            o->snapshot.data = malloc(PB_BYTES_ARRAY_T_ALLOCSIZE(m->snapshot.len));
            ok = o->snapshot.data != NULL;
            if (ok) {
                o->snapshot.data->size = m->snapshot.len;
                memcpy(o->snapshot.data->bytes, m->snapshot.data, m->snapshot.len);
            }
        }
    }
    uint8_t *buf = NULL;
    size_t len = 0;
    if (ok && rpc_pb_encode(cmq_RaftWire_fields, &w, &buf, &len) == CMQ_OK &&
        rpc_client_send_oneway(p->client, 0, cmq_RaftMsgType_RAFT_WIRE_MESSAGE, buf, len) == CMQ_OK)
        n->sent++;
    else
        n->send_failed++; /* Raft retries: heartbeats and probes resend */
    free(buf);
    pb_release(cmq_RaftWire_fields, &w);
}

static void on_raft_message(struct node *n, struct rpc_call *call)
{
    cmq_RaftWire w = cmq_RaftWire_init_zero;
    if (rpc_call_decode(call, cmq_RaftWire_fields, &w) != CMQ_OK || !w.has_msg ||
        w.partition == 0 || w.partition > (uint32_t)n->n_parts) {
        pb_release(cmq_RaftWire_fields, &w);
        rpc_drop(call);
        return;
    }
    const cmq_RaftMessage *o = &w.msg;
    struct raft_entry ents_small[8];
    struct raft_entry *ents = o->entries_count <= 8 ? ents_small
                                                    : calloc(o->entries_count, sizeof *ents);
    if (!ents) {
        pb_release(cmq_RaftWire_fields, &w);
        rpc_drop(call);
        return;
    }
    for (pb_size_t i = 0; i < o->entries_count; i++) {
        const cmq_RaftEntry *oe = &o->entries[i];
        ents[i] = (struct raft_entry){.term = oe->term, .index = oe->index, .type = oe->type,
                                      .len = oe->data ? oe->data->size : 0,
                                      .data = oe->data ? oe->data->bytes : NULL};
    }
    struct raft_msg m = {
        .type = o->type, .flags = o->flags, .from = o->from, .to = o->to, .term = o->term,
        .log_term = o->log_term, .index = o->index, .commit = o->commit, .reject = o->reject,
        .hint_index = o->hint_index, .hint_term = o->hint_term, .read_seq = o->read_seq,
        .n_entries = o->entries_count, .entries = ents,
    };
    int ok = 1;
    if (o->has_snapshot) {
        m.snapshot.index = o->snapshot.index;
        m.snapshot.term = o->snapshot.term;
        ok = raft_config_decode(o->snapshot.config.bytes, o->snapshot.config.size,
                                &m.snapshot.config) == RAFT_OK;
        m.snapshot.len = o->snapshot.data ? o->snapshot.data->size : 0;
        m.snapshot.data = o->snapshot.data ? o->snapshot.data->bytes : NULL;
    }
    n->received++;
    if (ok && m.to == (uint64_t)n->cfg->raft_id)
        partition_step(n->parts[w.partition], &m);
    if (ents != ents_small)
        free(ents);
    pb_release(cmq_RaftWire_fields, &w);
    rpc_drop(call);
}

static void raft_handler(struct rpc_server *srv, struct rpc_call *call, void *arg)
{
    (void)srv;
    struct node *n = arg;
    if (rpc_call_request(call)->type == cmq_RaftMsgType_RAFT_WIRE_MESSAGE)
        on_raft_message(n, call);
    else
        rpc_drop(call);
}

/* ---------- requests from gateways and tools ---------- */

static void on_status(struct node *n, struct rpc_call *call)
{
    cmq_PartitionStatusReply r = cmq_PartitionStatusReply_init_zero;
    r.node = (uint64_t)n->cfg->raft_id;
    for (int i = 1; i <= n->n_parts && r.partitions_count < 64; i++) {
        struct partition_status st;
        partition_status(n->parts[i], &st);
        cmq_PartitionStatus *o = &r.partitions[r.partitions_count++];
        o->partition = (uint32_t)i;
        o->role = st.role;
        o->term = st.term;
        o->leader = st.leader;
        o->commit = st.commit;
        o->applied = st.applied;
        o->last_index = st.last_index;
        o->durable = st.durable;
        o->first_index = st.first_index;
    }
    rpc_reply_pb(call, cmq_PartitionStatusReply_fields, &r);
}

static void request_handler(struct rpc_server *srv, struct rpc_call *call, void *arg)
{
    (void)srv;
    struct node *n = arg;
    switch (rpc_call_request(call)->type) {
    case cmq_RaftMsgType_RAFT_WIRE_STATUS:
        on_status(n, call);
        break;
    default:
        rpc_reply_status(call, CMQ_EUNSUPPORTED, "unknown request type");
    }
}

/* ---------- loop plumbing ---------- */

static void on_writer_fd(struct evloop *loop, int fd, int events, void *arg)
{
    (void)loop; (void)fd; (void)events;
    partition_on_writer(arg);
}

static void on_tick(struct evloop *loop, void *arg)
{
    struct node *n = arg;
    for (int i = 1; i <= n->n_parts; i++)
        partition_tick(n->parts[i]);
    evloop_timer(loop, (uint64_t)n->cfg->tick_ms, on_tick, n);
}

static void on_role(void *arg, struct partition *p, uint32_t role, uint64_t leader)
{
    struct node *n = arg;
    static const char *const names[] = {"follower", "pre-candidate", "candidate", "leader"};
    log_info("partition_role", "partition=%u node=%lld role=%s leader=%llu term=%llu",
             partition_id(p), (long long)n->cfg->raft_id, names[role & 3],
             (unsigned long long)leader, (unsigned long long)raft_term(partition_raft(p)));
}

static void detail(void *arg, char *buf, size_t len)
{
    struct node *n = arg;
    int leaders = 0;
    for (int i = 1; i <= n->n_parts; i++)
        leaders += raft_role(partition_raft(n->parts[i])) == RAFT_LEADER;
    snprintf(buf, len, "raft_id=%lld partitions=%d leaders=%d raft_sent=%llu raft_send_failed=%llu raft_received=%llu",
             (long long)n->cfg->raft_id, n->n_parts, leaders, (unsigned long long)n->sent,
             (unsigned long long)n->send_failed, (unsigned long long)n->received);
}

int node_open(struct svc *svc, const struct storage_cfg *cfg, struct node **out)
{
    struct node *n = calloc(1, sizeof *n);
    if (!n)
        return CMQ_ENOMEM;
    n->svc = svc;
    n->cfg = cfg;
    int rc = parse_peer_list(n, cfg->raft_peers, 0);
    if (rc == CMQ_OK)
        rc = parse_peer_list(n, cfg->rpc_peers, 1);
    if (rc != CMQ_OK || !peer_by_id(n, (uint64_t)cfg->raft_id)) {
        log_error("config_failed", "key=raft.peers reason=\"expected id=endpoint,... naming "
                                   "raft.id %lld; cluster.rpc_peers may only name those ids\"",
                  (long long)cfg->raft_id);
        free(n);
        return CMQ_EINVAL;
    }
    struct raft_config members = {0};
    for (int i = 0; i < n->n_peers; i++) {
        members.nodes[members.n].id = n->peers[i].id;
        members.nodes[members.n].role = RAFT_VOTER;
        members.n++;
        if (n->peers[i].id == (uint64_t)cfg->raft_id)
            continue;
        const char *ep = n->peers[i].raft_ep;
        rc = rpc_client_open(svc_zctx(svc), &ep, 1, &n->peers[i].client);
        if (rc != CMQ_OK) {
            log_error("peer_failed", "peer=%llu endpoint=%s status=%s",
                      (unsigned long long)n->peers[i].id, ep, status_name(rc));
            node_close(n);
            return rc;
        }
        svc_watch_client(svc, n->peers[i].client);
    }
    rc = rpc_server_open(svc_zctx(svc), cfg->raft_listen, raft_handler, n, &n->raft_server);
    if (rc != CMQ_OK) {
        log_error("listen_failed", "endpoint=%s status=%s", cfg->raft_listen, status_name(rc));
        node_close(n);
        return rc;
    }
    svc_watch_server(svc, n->raft_server);
    for (int id = 1; id <= cfg->partitions; id++) {
        char dir[300], err[512];
        snprintf(dir, sizeof dir, "%s/p-%d", cfg->data_dir, id);
        struct partition_opts po = {
            .id = (uint32_t)id,
            .node_id = (uint64_t)cfg->raft_id,
            .members = &members,
            .dir = dir,
            .election_ticks = (uint32_t)cfg->election_ticks,
            .heartbeat_ticks = 1,
            .seed = clock_mono_ns() ^ ((uint64_t)cfg->raft_id << 32) ^ (uint64_t)id,
            .segment_bytes = (uint64_t)cfg->segment_bytes,
            .send = send_raft,
            .apply = NULL,
            .on_role = on_role,
            .arg = n,
        };
        rc = partition_open(&po, &n->parts[id], err);
        if (rc != CMQ_OK) {
            log_error("partition_failed", "partition=%d status=%s error=\"%s\"", id,
                      status_name(rc), err);
            node_close(n);
            return rc;
        }
        n->n_parts = id;
        evloop_add_fd(svc_loop(svc), partition_writer_fd(n->parts[id]), EVLOOP_READ, on_writer_fd,
                      n->parts[id]);
    }
    svc_set_handler(svc, request_handler, n);
    svc_set_detail(svc, detail, n);
    evloop_timer(svc_loop(svc), (uint64_t)cfg->tick_ms, on_tick, n);
    *out = n;
    return CMQ_OK;
}

void node_close(struct node *n)
{
    if (!n)
        return;
    for (int i = 1; i <= n->n_parts; i++) {
        evloop_del_fd(svc_loop(n->svc), partition_writer_fd(n->parts[i]));
        partition_close(n->parts[i]);
    }
    rpc_server_close(n->raft_server);
    for (int i = 0; i < n->n_peers; i++)
        rpc_client_close(n->peers[i].client);
    free(n);
}
