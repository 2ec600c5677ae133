/* node.c: a storage node: opens, repairs and closes the partitions it
 * hosts, answers partition status and health, and runs the loop's timers.
 * See node.h.  The Raft transport is node_raft.c, the placement client
 * (metadata) node_place.c, everything above the partitions the host
 * (host.c). */
#include "node.h"
#include "host.h"
#include "hosted.h"
#include "node_place.h"
#include "node_raft.h"

#include "clock.h"
#include "file.h"
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

static struct partition *part_by_id(struct node *n, uint32_t id)
{
    struct hosted *h = hosted_by_id(n, id);
    return h ? h->p : NULL;
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
        .send = node_raft_send,
        .batch_proposals = 1,
        .apply = host_apply,
        .release = host_release,
        .on_role = on_role,
        .snapshot_entries = (uint64_t)n->cfg->snapshot_entries,
        .snapshot_bytes = (uint64_t)n->cfg->snapshot_bytes,
        .image = host_image,
        .restore = host_restore,
        .writer_fd = writer_fd_changed,
        .send_chunk = node_raft_send_chunk,
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
        node_peer_upsert(n, names[i], NULL, NULL);
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
    n->open_partition = open_partition;
    node_peer_upsert(n, cfg->common.node_id, cfg->raft_listen, cfg->common.listen);
    const char *meta_ep = cfg->metadata;
    int rc = rpc_client_open(svc_zctx(svc), &meta_ep, 1, &n->meta);
    if (rc != CMQ_OK) {
        log_error("metadata_failed", "endpoint=%s status=%s", cfg->metadata, status_name(rc));
        free(n);
        return rc;
    }
    svc_watch_client(svc, n->meta);
    rc = rpc_server_open(svc_zctx(svc), cfg->raft_listen, node_raft_handler, n, &n->raft_server);
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
    evloop_timer(svc_loop(svc), 0, node_place_heartbeat, n);
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
