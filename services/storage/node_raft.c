/* node_raft.c: the storage node's Raft transport: peers (one DEALER each
 * to their raft.listen), sending Raft messages and install chunks, and
 * stepping the ones received on raft.listen into their partitions; see
 * node_raft.h.
 *
 * Wire mapping: raftwire.c (struct raft_msg <-> cmq.RaftWire, install chunks
 * <-> cmq.RaftInstall); a decoded message borrows its entries from the
 * received frame, which stays alive until rpc_drop, after raft_step (or
 * partition_on_chunk) copied what it keeps.
 */
#include "node_raft.h"

#include "clock.h"
#include "hash.h"
#include "log.h"
#include "raft.h"
#include "raft.pb.h"
#include "raftwire.h"
#include "status.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
struct peer *node_peer_upsert(struct node *n, const char *node_id, const char *raft_ep,
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

void node_raft_send(void *arg, uint32_t partition_id, const struct raft_msg *m)
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

void node_raft_send_chunk(void *arg, uint32_t partition_id, const struct partition_chunk *c)
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

void node_raft_handler(struct rpc_server *srv, struct rpc_call *call, void *arg)
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

