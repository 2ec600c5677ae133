/* node.c: hosts partitions, carries Raft messages between nodes, answers
 * partition status.  See node.h.
 *
 * Wire mapping: raftwire.c (struct raft_msg <-> cmq.RaftWire, install chunks
 * <-> cmq.RaftInstall); a decoded message borrows its entries from the
 * received frame, which stays alive until rpc_drop, after raft_step (or
 * partition_on_chunk) copied what it keeps.
 */
#include "node.h"
#include "host.h"
#include "hosted.h"

#include "clock.h"
#include "file.h"
#include "hash.h"
#include "log.h"
#include "partition.h"
#include "raft.h"
#include "raft.pb.h"
#include "raftwire.h"
#include "status.h"

#include "metadata.pb.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pb_decode.h>
#include <pb_encode.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

uint64_t raft_id_of(const char *node_id)
{
    return hash_nonzero(hash_fnv1a64_str(HASH_FNV1A64_INIT, node_id)); /* FROZEN (hash.h) */
}

static struct partition *part_by_id(struct node *n, uint32_t id)
{
    struct hosted *h = hosted_by_id(n, id);
    return h ? h->p : NULL;
}

/* Records (or refreshes) a peer node; connects to its raft endpoint once known. */
static struct peer *peer_upsert(struct node *n, const char *node_id, const char *raft_ep,
                                const char *rpc_ep)
{
    uint64_t id = raft_id_of(node_id);
    struct peer *p = peer_by_id(n, id);
    if (p && strcmp(p->node_id, node_id) != 0) {
        log_error("raft_id_collision", "a=%s b=%s", p->node_id, node_id);
        return NULL;
    }
    if (!p) {
        if (n->n_peers == NODE_MAX_PEERS)
            return NULL;
        p = &n->peers[n->n_peers++];
        p->raft_id = id;
        snprintf(p->node_id, sizeof p->node_id, "%s", node_id);
    }
    if (rpc_ep && rpc_ep[0])
        snprintf(p->rpc_ep, sizeof p->rpc_ep, "%s", rpc_ep);
    if (raft_ep && raft_ep[0] && id != n->raft_id) {
        if (p->client && strcmp(p->raft_ep, raft_ep) != 0)
            log_warn("peer_endpoint_changed", "peer=%s old=%s new=%s action=kept_old", node_id,
                     p->raft_ep, raft_ep); /* takes effect at the next restart */
        if (!p->client) {
            snprintf(p->raft_ep, sizeof p->raft_ep, "%s", raft_ep);
            const char *ep = p->raft_ep;
            if (rpc_client_open(svc_zctx(n->svc), &ep, 1, &p->client) == CMQ_OK)
                svc_watch_client(n->svc, p->client);
            else
                p->client = NULL;
        }
    }
    return p;
}

/* ---------- raft wire (the mapping itself: raftwire.c) ---------- */

/* Logs a refused Raft message.  A checksum mismatch is logged once per
 * (partition, index): Raft resends the same entry until it arrives intact, so
 * repeats are only counted, and summarised every 10 s with that count. */
static void wire_refused(struct node *n, const char *what, uint32_t partition, int rc,
                         const struct raftwire_fault *f)
{
    n->wire_refused++;
    uint64_t now = clock_mono_ms(), sup;
    if (!f->crc_bad) {
        static struct log_limit lim;
        if (log_limit_allow(&lim, now, 10000, &sup))
            log_error("raft_wire_refused", "message=%s partition=%u status=%s refused=%llu "
                      "suppressed=%llu", what, partition, status_name(rc),
                      (unsigned long long)n->wire_refused, (unsigned long long)sup);
        return;
    }
    n->crc_refused++;
    if (partition == n->crc_last_partition && f->index == n->crc_last_index) {
        n->crc_repeats++;
        if (!log_limit_allow(&n->crc_repeat_lim, now, 10000, &sup))
            return;
        log_error("raft_entry_crc_mismatch", "message=%s partition=%u index=%llu what=%s "
                  "repeats=%llu crc_refused=%llu action=refused_again", what, partition,
                  (unsigned long long)f->index, f->crc_bad == 2 ? "snapshot" : "entry",
                  (unsigned long long)n->crc_repeats, (unsigned long long)n->crc_refused);
        return;
    }
    n->crc_last_partition = partition;
    n->crc_last_index = f->index;
    n->crc_repeats = 0;
    n->crc_repeat_lim = (struct log_limit){0};
    log_limit_allow(&n->crc_repeat_lim, now, 10000, &sup); /* opens the repeat window */
    log_error("raft_entry_crc_mismatch", "message=%s partition=%u index=%llu what=%s "
              "wire_crc=%08x computed_crc=%08x crc_refused=%llu action=refused", what, partition,
              (unsigned long long)f->index, f->crc_bad == 2 ? "snapshot" : "entry",
              f->stored_crc, f->computed_crc, (unsigned long long)n->crc_refused);
}

/* Logs a message this node could not encode (our bug or an image too large
 * for the wire; Raft retries, so at most once per 10 s with a count). */
static void wire_unsendable(const char *what, uint32_t partition, int rc)
{
    static struct log_limit lim;
    uint64_t sup;
    if (log_limit_allow(&lim, clock_mono_ms(), 10000, &sup))
        log_error("raft_wire_encode_failed", "message=%s partition=%u status=%s suppressed=%llu",
                  what, partition, status_name(rc), (unsigned long long)sup);
}

static void send_raft(void *arg, uint32_t partition_id, const struct raft_msg *m)
{
    struct node *n = arg;
    struct peer *p = peer_by_id(n, m->to);
    if (!p || !p->client)
        return;
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = raftwire_encode_msg(partition_id, m, &buf, &len);
    if (rc != CMQ_OK && rc != CMQ_ENOMEM)
        wire_unsendable(raft_msg_type_name(m->type), partition_id, rc);
    if (rc == CMQ_OK &&
        rpc_client_send_oneway(p->client, 0, cmq_RaftMsgType_RAFT_WIRE_MESSAGE, buf, len) == CMQ_OK)
        n->sent++;
    else
        n->send_failed++; /* Raft retries: heartbeats and probes resend */
    free(buf);
}

/* ---------- install-snapshot chunks (partition.h) ---------- */

static void send_chunk(void *arg, uint32_t partition_id, const struct partition_chunk *c)
{
    struct node *n = arg;
    struct peer *p = peer_by_id(n, c->to);
    if (!p || !p->client)
        return;
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = raftwire_encode_install(partition_id, c, &buf, &len);
    if (rc != CMQ_OK && rc != CMQ_ENOMEM)
        wire_unsendable("install", partition_id, rc);
    if (rc == CMQ_OK &&
        rpc_client_send_oneway(p->client, 0, cmq_RaftMsgType_RAFT_WIRE_INSTALL, buf, len) == CMQ_OK)
        n->sent++;
    else
        n->send_failed++; /* the leader resends a chunk after a silence */
    free(buf);
}

/* An install chunk: refused whole (never acknowledged) unless every entry's
 * CRC matched; the leader resends it after a silence. */
static void on_install(struct node *n, struct rpc_call *call)
{
    const struct rpc_msg *req = rpc_call_request(call);
    struct raftwire_install w;
    int rc = raftwire_decode_install(req->body, req->body_len, &w);
    struct partition *p = rc == CMQ_OK ? part_by_id(n, w.partition) : NULL;
    if (rc != CMQ_OK)
        wire_refused(n, "install", w.partition, rc, &w.fault);
    else if (p && w.c.to == n->raft_id) {
        n->received++;
        partition_on_chunk(p, &w.c);
        partition_flush(p);
    }
    raftwire_install_release(&w);
    rpc_drop(call);
}

/* A Raft message: stepped only when it decoded whole and every entry's (and
 * the snapshot's) CRC matched; otherwise nothing of it reaches Raft, so
 * nothing of it is acknowledged, and the leader resends. */
static void on_raft_message(struct node *n, struct rpc_call *call)
{
    const struct rpc_msg *req = rpc_call_request(call);
    struct raftwire_msg w;
    int rc = raftwire_decode_msg(req->body, req->body_len, &w);
    struct partition *p = rc == CMQ_OK ? part_by_id(n, w.partition) : NULL;
    if (rc != CMQ_OK)
        wire_refused(n, raft_msg_type_name(w.m.type), w.partition, rc, &w.fault);
    else if (p) {
        n->received++;
        if (w.m.to == n->raft_id)
            partition_step(p, &w.m);
    }
    raftwire_msg_release(&w);
    rpc_drop(call);
}

static void raft_handler(struct rpc_server *srv, struct rpc_call *call, void *arg)
{
    (void)srv;
    struct node *n = arg;
    uint32_t type = rpc_call_request(call)->type;
    if (type == cmq_RaftMsgType_RAFT_WIRE_MESSAGE)
        on_raft_message(n, call);
    else if (type == cmq_RaftMsgType_RAFT_WIRE_INSTALL)
        on_install(n, call);
    else
        rpc_drop(call);
}

/* ---------- requests from gateways and tools ---------- */

static void on_status(struct node *n, struct rpc_call *call)
{
    cmq_PartitionStatusReply r = cmq_PartitionStatusReply_init_zero;
    r.node = n->raft_id;
    for (int i = 0; i < n->n_parts && r.partitions_count < 64; i++) {
        struct partition_status st;
        partition_status(n->parts[i]->p, &st);
        cmq_PartitionStatus *o = &r.partitions[r.partitions_count++];
        o->partition = n->parts[i]->id;
        o->role = st.role;
        o->term = st.term;
        o->leader = st.leader;
        o->commit = st.commit;
        o->applied = st.applied;
        o->last_index = st.last_index;
        o->durable = st.durable;
        o->first_index = st.first_index;
        o->snapshot_index = st.snapshot_index;
        o->snapshots_installed = st.snapshots_installed;
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
        if (!host_route(n, call))
            rpc_reply_status(call, CMQ_EUNSUPPORTED, "unknown request type");
    }
}

/* ---------- partitions ---------- */

static void on_writer_fd(struct evloop *loop, int fd, int events, void *arg)
{
    (void)loop; (void)fd; (void)events;
    partition_on_writer(arg);
}

static void on_role(void *arg, struct partition *p, uint32_t role, uint64_t leader)
{
    struct node *n = arg;
    static const char *const names[] = {"follower", "pre-candidate", "candidate", "leader"};
    struct peer *lp = peer_by_id(n, leader);
    log_info("partition_role", "partition=%u role=%s leader=%s term=%llu", partition_id(p),
             names[role & 3], lp ? lp->node_id : leader ? "?" : "none",
             (unsigned long long)raft_term(partition_raft(p)));
}

static void writer_fd_changed(void *arg, struct partition *p, int fd, int add)
{
    struct node *n = arg;
    if (add)
        evloop_add_fd(svc_loop(n->svc), fd, EVLOOP_READ, on_writer_fd, p);
    else
        evloop_del_fd(svc_loop(n->svc), fd);
}

/* Writes dir/members atomically: one "raft_id node_id" line per replica.
 * Through the segment log's file seam, so the power-loss seam covers it. */
static int write_members(const char *dir, char names[][64], int count)
{
    char path[320], tmp[330], text[RAFT_MAX_NODES * 96];
    snprintf(path, sizeof path, "%s/members", dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    size_t len = 0;
    for (int i = 0; i < count && len < sizeof text; i++)
        len += (size_t)snprintf(text + len, sizeof text - len, "%llu %s\n",
                                (unsigned long long)raft_id_of(names[i]), names[i]);
    if (len >= sizeof text)
        return CMQ_ETOOBIG;
    int fd = -1;
    int rc = file_open(tmp, O_WRONLY | O_CREAT | O_TRUNC, &fd);
    if (rc == CMQ_OK)
        rc = file_pwrite_all(fd, text, len, 0);
    if (rc == CMQ_OK)
        rc = file_fsync(fd);
    if (fd >= 0)
        close(fd);
    if (rc == CMQ_OK)
        rc = file_rename(tmp, path);
    if (rc == CMQ_OK)
        (void)file_fsync_dir(dir);
    return rc == CMQ_OK ? CMQ_OK : CMQ_EIO;
}

/* Reads dir/members; returns the number of replicas (0 when absent or bad). */
static int read_members(const char *dir, char names[][64], int max)
{
    char path[320], line[128];
    snprintf(path, sizeof path, "%s/members", dir);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    int count = 0;
    while (count < max && fgets(line, sizeof line, f)) {
        unsigned long long id;
        char name[64];
        if (sscanf(line, "%llu %63s", &id, name) != 2 || raft_id_of(name) != id) {
            count = 0;
            break;
        }
        snprintf(names[count++], 64, "%s", name);
    }
    fclose(f);
    return count;
}

static void part_dir(const struct node *n, uint32_t id, char *out, size_t cap)
{
    snprintf(out, cap, "%s/p-%u", n->cfg->data_dir, id);
}

/* A leadership transfer is normally over in one round trip and two vote
 * fsyncs; one that is not after TRANSFER_BOUND_MS (or one election timeout,
 * if shorter) is abandoned and the proposals held meanwhile go ahead. */
#define TRANSFER_BOUND_MS 250
static uint32_t transfer_ticks(const struct storage_cfg *cfg)
{
    int64_t t = (TRANSFER_BOUND_MS + cfg->tick_ms - 1) / cfg->tick_ms;
    return (uint32_t)(t < 1 ? 1 : t > cfg->election_ticks ? cfg->election_ticks : t);
}

static struct unopened *unopened_find(struct node *n, uint32_t id)
{
    for (int i = 0; i < n->n_unopened; i++)
        if (n->unopened[i].id == id)
            return &n->unopened[i];
    return NULL;
}

static void unopened_clear(struct node *n, uint32_t id)
{
    struct unopened *u = unopened_find(n, id);
    if (u)
        *u = n->unopened[--n->n_unopened];
}

/* Opens the partition of `h` in `dir` (members: its configuration) and the
 * state machines on it.  A log refused at open for a bad record (ECORRUPT:
 * a bad CRC mid-segment, a snapshot whose segments are missing) is not a
 * reason to stop: the directory is moved aside and the replica starts empty
 * and is refilled from the leader (docs/raft.md §11).  Logs failures. */
static int replica_start(struct node *n, struct hosted *h, const struct raft_config *members,
                      const char *dir)
{
    char err[512];
    struct partition_opts po = {
        .id = h->id,
        .node_id = n->raft_id,
        .members = members,
        .dir = dir,
        .election_ticks = (uint32_t)n->cfg->election_ticks,
        .heartbeat_ticks = 1,
        .transfer_ticks = transfer_ticks(n->cfg),
        .seed = clock_mono_ns() ^ n->raft_id ^ ((uint64_t)h->id << 48),
        .segment_bytes = (uint64_t)n->cfg->segment_bytes,
        .send = send_raft,
        .batch_proposals = 1,
        .apply = host_apply,
        .release = host_release,
        .on_role = on_role,
        .snapshot_entries = (uint64_t)n->cfg->snapshot_entries,
        .snapshot_bytes = (uint64_t)n->cfg->snapshot_bytes,
        .image = host_image,
        .restore = host_restore,
        .writer_fd = writer_fd_changed,
        .send_chunk = send_chunk,
        .arg = n,
    };
    int rc = partition_open(&po, &h->p, err);
    if (rc == CMQ_ECORRUPT) {
        log_error("partition_refused", "partition=%u status=%s error=\"%s\" action=repair",
                  h->id, status_name(rc), err);
        char derr[512];
        rc = partition_discard(dir, 0, 0, derr);
        if (rc == CMQ_OK) {
            h->repair_cause = REPAIR_REFUSED;
            h->repairs++;
            rc = partition_open(&po, &h->p, err);
        } else {
            snprintf(err, sizeof err, "%s", derr);
        }
    }
    if (rc == CMQ_OK)
        rc = host_attach(h);
    if (rc != CMQ_OK) {
        log_error("partition_failed", "partition=%u status=%s error=\"%s\"", h->id,
                  status_name(rc), err);
        partition_close(h->p);
        h->p = NULL;
        host_detach(h);
        return rc;
    }
    evloop_add_fd(svc_loop(n->svc), partition_writer_fd(h->p), EVLOOP_READ, on_writer_fd, h->p);
    return CMQ_OK;
}

/* Restores the state machines from the snapshot loaded at open; `h` must be
 * in n->parts (the restore callback finds it there). */
static void replica_boot(struct hosted *h)
{
    int rc = partition_boot_restore(h->p);
    if (rc != CMQ_OK) {
        log_error("partition_failed", "partition=%u reason=\"snapshot image refused\"", h->id);
        hosted_failed(h, rc);
    }
}

/* Closes the partition of `h` and the state machines on it (h stays). */
static void replica_stop(struct node *n, struct hosted *h)
{
    if (h->p && partition_writer_fd(h->p) >= 0)
        evloop_del_fd(svc_loop(n->svc), partition_writer_fd(h->p));
    partition_close(h->p); /* fails waiting proposals first */
    h->p = NULL;
    host_detach(h);
}

/* Opens (creating on first sight) partition `id` replicated on the nodes
 * `names`.  Returns a status; logs failures (a partition that keeps failing
 * is retried with a growing delay and logged with a count). */
static int open_partition(struct node *n, uint32_t id, char names[][64], int count)
{
    if (part_by_id(n, id))
        return CMQ_OK;
    if (n->n_parts == NODE_MAX_PARTITIONS || count < 1 || count > RAFT_MAX_NODES)
        return CMQ_ELIMIT;
    struct unopened *u = unopened_find(n, id);
    uint64_t now = clock_mono_ms();
    if (u && now < u->retry_ms)
        return u->status;
    char dir[300];
    part_dir(n, id, dir, sizeof dir);
    struct raft_config members = {0};
    for (int i = 0; i < count; i++) {
        uint64_t rid = raft_id_of(names[i]);
        for (uint32_t k = 0; k < members.n; k++)
            if (members.nodes[k].id == rid) {
                log_error("partition_failed", "partition=%u reason=\"raft id collision\"", id);
                return CMQ_EINVAL;
            }
        members.nodes[members.n].id = rid;
        members.nodes[members.n].role = RAFT_VOTER;
        members.n++;
        peer_upsert(n, names[i], NULL, NULL);
    }
    int rc = CMQ_OK;
    if (mkdir(dir, 0750) != 0 && errno != EEXIST) {
        log_error("partition_failed", "partition=%u dir=%s error=\"%s\"", id, dir, strerror(errno));
        rc = status_from_errno(errno);
    }
    char have[RAFT_MAX_NODES][64];
    if (rc == CMQ_OK && read_members(dir, have, RAFT_MAX_NODES) == 0) {
        rc = write_members(dir, names, count);
        if (rc != CMQ_OK)
            log_error("partition_failed", "partition=%u dir=%s reason=\"cannot write members\"", id, dir);
    }
    struct hosted *h = NULL;
    if (rc == CMQ_OK && !(h = calloc(1, sizeof *h)))
        rc = CMQ_ENOMEM;
    if (rc == CMQ_OK) {
        h->id = id;
        h->n = n;
        h->sched_due_ms = UINT64_MAX;
        rc = replica_start(n, h, &members, dir);
    }
    if (rc != CMQ_OK) {
        free(h);
        if (!u && n->n_unopened < NODE_MAX_UNOPENED) {
            u = &n->unopened[n->n_unopened++];
            *u = (struct unopened){.id = id};
        }
        if (u) {
            u->status = rc;
            u->attempts++;
            uint32_t shift = u->attempts < 6 ? u->attempts : 6;
            u->retry_ms = now + (1000ull << shift); /* 2 s ... 64 s */
            log_warn("partition_open_retry", "partition=%u status=%s attempts=%u next_in_ms=%llu",
                     id, status_name(rc), u->attempts, (unsigned long long)(u->retry_ms - now));
        }
        return rc;
    }
    unopened_clear(n, id);
    n->parts[n->n_parts++] = h;
    replica_boot(h);
    return CMQ_OK;
}

/* Discards this replica of `h` and starts it again empty (docs/raft.md §11):
 * the vote floor is what its log held, the directory is kept aside. */
static void repair_hosted(struct node *n, struct hosted *h)
{
    struct raft *r = partition_raft(h->p);
    uint64_t fi = raft_last_index(r), ft = raft_term_at(r, fi);
    if (ft == 0)
        fi = 0; /* unknown: the floor is derived from the kept term */
    struct raft_config cfg;
    raft_get_config(r, &cfg);
    char dir[300], err[512];
    part_dir(n, h->id, dir, sizeof dir);
    int cause = h->sm_status;
    log_warn("partition_repair", "partition=%u cause=%s floor_term=%llu floor_index=%llu "
             "repairs=%llu", h->id, status_name(cause), (unsigned long long)ft,
             (unsigned long long)fi, (unsigned long long)h->repairs + 1);
    replica_stop(n, h);
    int rc = partition_discard(dir, ft, fi, err);
    if (rc != CMQ_OK) {
        log_error("partition_repair_failed", "partition=%u status=%s error=\"%s\" "
                  "retry_in_ms=60000", h->id, status_name(rc), err);
        h->repair_retry_ms = clock_mono_ms() + 60000;
    } else {
        h->sm_status = 0;
        h->repair_cause = REPAIR_SM_FAILED;
        h->repairs++;
    }
    h->tick_inflight = 0;
    h->sched_epoch = 0;
    h->sched_due_ms = UINT64_MAX;
    h->sched_inflight = 0;
    if (replica_start(n, h, &cfg, dir) == CMQ_OK) {
        replica_boot(h);
    } else {
        /* Nothing to host any more: drop it; open_partition retries later. */
        for (int i = 0; i < n->n_parts; i++)
            if (n->parts[i] == h) {
                n->parts[i] = n->parts[--n->n_parts];
                break;
            }
        if (n->n_unopened < NODE_MAX_UNOPENED)
            n->unopened[n->n_unopened++] = (struct unopened){
                .id = h->id, .status = CMQ_EIO, .attempts = 1,
                .retry_ms = clock_mono_ms() + 2000};
        free(h);
    }
}

/* Once per tick: a failed replica steps aside and, once another leads (or
 * after 10 s), is repaired; leaderless time is tracked for health. */
static void health_tick(struct node *n, struct hosted *h)
{
    struct raft *r = partition_raft(h->p);
    uint64_t now = clock_mono_ms();
    if (raft_leader(r) == 0) {
        if (!h->no_leader_since_ms)
            h->no_leader_since_ms = now;
    } else {
        h->no_leader_since_ms = 0;
    }
    if (!h->sm_status && partition_log_status(h->p) == CMQ_OK)
        return;
    partition_step_aside(h->p);
    if (!h->sm_status || raft_role(r) == RAFT_LEADER || now < h->repair_retry_ms)
        return;
    uint64_t leader = raft_leader(r);
    if ((leader && leader != n->raft_id) || now - h->failed_at_ms > 10000)
        repair_hosted(n, h);
}

/* Reopens every partition found on disk (before metadata answers). */
static void open_existing(struct node *n)
{
    DIR *d = opendir(n->cfg->data_dir);
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d))) {
        unsigned id;
        char extra;
        if (sscanf(de->d_name, "p-%u%c", &id, &extra) != 1 || id == 0)
            continue;
        char dir[300], names[RAFT_MAX_NODES][64];
        part_dir(n, id, dir, sizeof dir);
        int count = read_members(dir, names, RAFT_MAX_NODES);
        if (count == 0) {
            log_warn("partition_skipped", "dir=%s reason=\"no valid members file\"", dir);
            continue;
        }
        open_partition(n, id, names, count);
    }
    closedir(d);
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
        peer_upsert(n, map.nodes[i].node_id,
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
            open_partition(n, p->id, names, count);
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

static void wake_noop(struct evloop *loop, void *arg)
{
    (void)loop;
    (void)arg;
}

/* Runs before the loop waits (after svc's own prepare hook has drained the
 * sockets): the proposals of this turn leave together (batch_proposals).
 * Sending may consume a ZMQ_FD edge, so when anything went out the loop
 * looks at its sockets once more instead of sleeping (a 0 ms timer). */
static void flush_proposals(struct evloop *loop, void *arg)
{
    struct node *n = arg;
    int sent = 0;
    for (int i = 0; i < n->n_parts; i++)
        sent |= partition_flush_proposals(n->parts[i]->p);
    if (sent)
        evloop_timer(loop, 0, wake_noop, NULL);
}

static void on_heartbeat(struct evloop *loop, void *arg)
{
    struct node *n = arg;
    evloop_timer(loop, (uint64_t)n->cfg->heartbeat_ms, on_heartbeat, n);
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

/* ---------- loop plumbing ---------- */

static void on_tick(struct evloop *loop, void *arg)
{
    struct node *n = arg;
    for (int i = 0; i < n->n_parts; i++)
        partition_tick(n->parts[i]->p);
    for (int i = n->n_parts - 1; i >= 0; i--) /* backwards: a repair may drop one */
        if (i < n->n_parts)
            health_tick(n, n->parts[i]);
    host_tick(n);
    evloop_timer(loop, (uint64_t)n->cfg->tick_ms, on_tick, n);
}

/* Why a partition on this node is degraded, or NULL when it is fine.
 * Leaderless for more than 3 s counts (an election takes less). */
static const char *degraded_reason(const struct node *n, const struct hosted *h, uint64_t now)
{
    (void)n;
    int ls = partition_log_status(h->p);
    if (ls == CMQ_ENOSPC)
        return "disk_full";
    if (ls != CMQ_OK)
        return "log_failed";
    if (h->sm_status)
        return "state_machine_failed";
    struct raft *r = partition_raft(h->p);
    if (partition_repairing(h->p) || (h->repairs && raft_applied_index(r) < raft_commit_index(r)))
        return h->repair_cause == REPAIR_REFUSED ? "refused_repairing" : "repairing";
    if (h->no_leader_since_ms && now - h->no_leader_since_ms > 3000)
        return "no_leader";
    return NULL;
}

/* The health line (HealthReply.detail): counters, then `health=ok`, or
 * `health=degraded` and one `partition=N reason=R` pair per degraded
 * partition (at most 6, then `more=K`).  The gateway's /healthz reads it. */
static void detail(void *arg, char *buf, size_t len)
{
    struct node *n = arg;
    int leaders = 0;
    for (int i = 0; i < n->n_parts; i++)
        leaders += raft_role(partition_raft(n->parts[i]->p)) == RAFT_LEADER;
    size_t off = (size_t)snprintf(buf, len, "raft_id=%llu registered=%d partitions=%d leaders=%d "
                                  "raft_sent=%llu raft_send_failed=%llu raft_received=%llu",
                                  (unsigned long long)n->raft_id, n->registered, n->n_parts,
                                  leaders, (unsigned long long)n->sent,
                                  (unsigned long long)n->send_failed,
                                  (unsigned long long)n->received);
    uint64_t now = clock_mono_ms();
    int shown = 0, more = 0;
    char items[400] = "";
    size_t io = 0;
    for (int i = 0; i < n->n_parts + n->n_unopened; i++) {
        uint32_t id;
        const char *why;
        if (i < n->n_parts) {
            id = n->parts[i]->id;
            why = degraded_reason(n, n->parts[i], now);
        } else {
            const struct unopened *u = &n->unopened[i - n->n_parts];
            id = u->id;
            why = u->status == CMQ_ENOSPC ? "disk_full" : "open_failed";
        }
        if (!why)
            continue;
        if (shown == 6) {
            more++;
            continue;
        }
        shown++;
        io += (size_t)snprintf(items + io, sizeof items - io, " partition=%u reason=%s", id, why);
        if (io >= sizeof items)
            io = sizeof items - 1;
    }
    if (off < len)
        off += (size_t)snprintf(buf + off, len - off, " health=%s%s", shown ? "degraded" : "ok",
                                items);
    if (more && off < len)
        snprintf(buf + off, len - off, " more=%d", more);
}

int node_open(struct svc *svc, const struct storage_cfg *cfg, struct node **out)
{
    struct node *n = calloc(1, sizeof *n);
    if (!n)
        return CMQ_ENOMEM;
    n->svc = svc;
    n->cfg = cfg;
    n->raft_id = raft_id_of(cfg->common.node_id);
    peer_upsert(n, cfg->common.node_id, cfg->raft_listen, cfg->common.listen);
    const char *meta_ep = cfg->metadata;
    int rc = rpc_client_open(svc_zctx(svc), &meta_ep, 1, &n->meta);
    if (rc != CMQ_OK) {
        log_error("metadata_failed", "endpoint=%s status=%s", cfg->metadata, status_name(rc));
        free(n);
        return rc;
    }
    svc_watch_client(svc, n->meta);
    rc = rpc_server_open(svc_zctx(svc), cfg->raft_listen, raft_handler, n, &n->raft_server);
    if (rc != CMQ_OK) {
        log_error("listen_failed", "endpoint=%s status=%s", cfg->raft_listen, status_name(rc));
        node_close(n);
        return rc;
    }
    svc_watch_server(svc, n->raft_server);
    rc = host_open(n);
    if (rc != CMQ_OK) {
        log_error("scheduler_failed", "endpoint=%s status=%s", cfg->scheduler, status_name(rc));
        node_close(n);
        return rc;
    }
    open_existing(n);
    svc_set_handler(svc, request_handler, n);
    svc_set_detail(svc, detail, n);
    svc_set_stop_hook(svc, host_stop, n);
    svc_set_busy_check(svc, host_busy, n);
    evloop_timer(svc_loop(svc), (uint64_t)cfg->tick_ms, on_tick, n);
    evloop_timer(svc_loop(svc), 0, on_heartbeat, n);
    evloop_add_prepare(svc_loop(svc), flush_proposals, n);
    log_info("node_open", "raft_id=%llu partitions_on_disk=%d", (unsigned long long)n->raft_id,
             n->n_parts);
    *out = n;
    return CMQ_OK;
}

void node_close(struct node *n)
{
    if (!n)
        return;
    host_quiesce(n); /* forwarded sends, pushes, check-backs end while partitions exist */
    for (int i = 0; i < n->n_parts; i++) {
        if (partition_writer_fd(n->parts[i]->p) >= 0)
            evloop_del_fd(svc_loop(n->svc), partition_writer_fd(n->parts[i]->p));
        partition_close(n->parts[i]->p); /* fails waiting proposals first */
        host_detach(n->parts[i]);
        free(n->parts[i]);
    }
    rpc_server_close(n->raft_server);
    host_close(n);
    for (int i = 0; i < n->n_peers; i++)
        rpc_client_close(n->peers[i].client);
    rpc_client_close(n->meta);
    free(n);
}
