/* hosted.c: lookups over the node's records and the answers about one
 * hosted partition's health and leadership that every module gives the same
 * way; see hosted.h.  Owns nothing: the records belong to node.c. */
#include "hosted.h"

#include "clock.h"
#include "log.h"
#include "raft.h"
#include "rpc.h"
#include "status.h"

struct peer *peer_by_id(struct node *n, uint64_t id)
{
    for (int i = 0; i < n->n_peers; i++)
        if (n->peers[i].raft_id == id)
            return &n->peers[i];
    return NULL;
}

struct hosted *hosted_by_id(struct node *n, uint32_t id)
{
    for (int i = 0; i < n->n_parts; i++)
        if (n->parts[i]->id == id)
            return n->parts[i];
    return NULL;
}

void hosted_failed(struct hosted *h, int status)
{
    if (h->sm_status)
        return;
    h->sm_status = status ? status : CMQ_EINTERNAL;
    h->failed_at_ms = clock_mono_ms();
    log_error("partition_state_machine_failed", "partition=%u status=%s action=step_aside",
              h->id, status_name(h->sm_status));
    if (h->p)
        partition_step_aside(h->p);
}

int hosted_serves(const struct hosted *h)
{
    return h->p && !h->sm_status && partition_log_status(h->p) == CMQ_OK &&
           !partition_repairing(h->p);
}

/* The rpc endpoint of h's leader when another node leads, else NULL. */
static const char *leader_ep(struct node *n, struct hosted *h)
{
    uint64_t leader = raft_leader(partition_raft(h->p));
    struct peer *p = leader != n->raft_id ? peer_by_id(n, leader) : NULL;
    return p && p->rpc_ep[0] ? p->rpc_ep : NULL;
}

void hosted_reply_not_here(struct node *n, struct rpc_call *call, const char *what)
{
    const char *hint = NULL;
    for (int i = 0; i < n->n_parts && !hint; i++)
        if (!hosted_serves(n->parts[i]))
            hint = leader_ep(n, n->parts[i]);
    rpc_reply(call, CMQ_ENOTLEADER, NULL, 0, hint, what);
}

void hosted_reply_not_leader(struct hosted *h, struct rpc_call *call)
{
    rpc_reply(call, CMQ_ENOTLEADER, NULL, 0, leader_ep(h->n, h), "not the partition leader");
}

int hosted_leader_ready(struct hosted *h)
{
    struct raft *r = partition_raft(h->p);
    return partition_is_leader(h->p) && raft_term_at(r, raft_applied_index(r)) == raft_term(r);
}
