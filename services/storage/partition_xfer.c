/* partition_xfer.c: the leader side of a snapshot install (partition.h,
 * "Install"): for each follower whose next index was compacted away, the
 * retained entries [first_needed, snapshot index] are streamed in chunks,
 * stop-and-wait, resent after CHUNK_RESEND_TICKS of silence and given up
 * after CHUNK_GIVEUP_TICKS; Raft's SNAPSHOT message goes only once the
 * follower holds them all.  See partition_xfer.h.  Reads the segment log,
 * never writes it. */
#include "partition_xfer.h"

#include "clock.h"
#include "log.h"
#include "status.h"

#include <stdlib.h>
#include <string.h>

#define CHUNK_RESEND_TICKS 10
#define CHUNK_GIVEUP_TICKS 300

int partition_read_raw(struct seglog *log, uint64_t index, uint8_t **buf, struct seglog_entry *e)
{
    size_t cap = 4096;
    for (int attempt = 0; attempt < 2; attempt++) {
        uint8_t *b = malloc(cap);
        if (!b)
            return CMQ_ENOMEM;
        int rc = seglog_read(log, index, e, b, cap);
        if (rc == CMQ_OK) {
            *buf = b;
            return CMQ_OK;
        }
        free(b);
        if (rc != CMQ_ETOOBIG)
            return rc;
        cap = (size_t)e->len + 1;
    }
    return CMQ_EINTERNAL;
}

static struct xfer *xfer_find(struct xfer *xfers, uint64_t peer, int create)
{
    struct xfer *free_slot = NULL;
    for (int i = 0; i < RAFT_MAX_NODES; i++) {
        if (xfers[i].peer == peer)
            return &xfers[i];
        if (!xfers[i].peer && !free_slot)
            free_slot = &xfers[i];
    }
    if (create && free_slot) {
        memset(free_slot, 0, sizeof *free_slot);
        free_slot->peer = peer;
        return free_slot;
    }
    return NULL;
}

/* Sends the chunk starting at x->next (empty when nothing is left). */
static void xfer_send_chunk(const struct xfer_ctx *p, struct xfer *x)
{
    struct raft_entry ents[PARTITION_CHUNK_ENTRIES_MAX];
    uint8_t *bufs[PARTITION_CHUNK_ENTRIES_MAX];
    uint32_t n = 0;
    size_t bytes = 0;
    for (uint64_t i = x->next; i <= x->snap_index && n < PARTITION_CHUNK_ENTRIES_MAX; i++) {
        struct seglog_entry se;
        if (partition_read_raw(p->log, i, &bufs[n], &se) != CMQ_OK) {
            /* Raft starts the install over every election timeout: summarise */
            static struct log_limit lim;
            uint64_t sup;
            if (log_limit_allow(&lim, clock_mono_ms(), 10000, &sup))
                log_warn("partition_install_aborted", "partition=%u peer=%llu index=%llu "
                         "reason=\"entry no longer readable\" suppressed=%llu", p->id,
                         (unsigned long long)x->peer, (unsigned long long)i,
                         (unsigned long long)sup);
            for (uint32_t k = 0; k < n; k++)
                free(bufs[k]);
            x->peer = 0; /* Raft's next SNAPSHOT starts over with a newer one */
            return;
        }
        ents[n] = (struct raft_entry){.term = se.term, .index = i, .type = se.type,
                                      .len = se.len, .data = bufs[n]};
        n++;
        bytes += se.len;
        if (bytes >= PARTITION_CHUNK_BYTES_MAX)
            break;
    }
    struct partition_chunk c = {
        .from = p->node_id, .to = x->peer, .term = raft_term(p->raft),
        .snap_index = x->snap_index, .snap_term = x->snap_term, .first_index = x->first_index,
        .next = x->next, .n_entries = n, .entries = ents,
    };
    if (p->send_chunk)
        p->send_chunk(p->arg, p->id, &c);
    for (uint32_t k = 0; k < n; k++)
        free(bufs[k]);
    x->idle_ticks = 0;
}

/* Raft wants to send a SNAPSHOT: first the follower gets the entries the
 * image reads back, then the message itself. */
void xfer_snapshot_msg(struct xfer *xfers, const struct xfer_ctx *p, const struct raft_msg *m,
                       const struct snap_meta *snap)
{
    struct xfer *x = xfer_find(xfers, m->to, 1);
    if (!x)
        return;
    if (x->snap_index == m->snapshot.index && x->snap_term == m->snapshot.term) {
        if (x->complete)
            p->send(p->arg, p->id, m);
        return; /* in progress: chunks are resent on silence */
    }
    if (m->snapshot.index != snap->index) {
        x->peer = 0; /* not the snapshot we know the needs of; cannot happen */
        return;
    }
    *x = (struct xfer){.peer = m->to, .snap_index = m->snapshot.index,
                       .snap_term = m->snapshot.term, .first_index = snap->first_needed,
                       .next = snap->first_needed};
    log_info("partition_install_send", "partition=%u peer=%llu snapshot=%llu first_needed=%llu "
             "entries=%llu", p->id, (unsigned long long)m->to,
             (unsigned long long)x->snap_index, (unsigned long long)x->first_index,
             (unsigned long long)(x->snap_index + 1 - x->first_index));
    xfer_send_chunk(p, x);
}

void xfer_on_ack(struct xfer *xfers, const struct xfer_ctx *p, const struct partition_chunk *c)
{
    struct xfer *x = xfer_find(xfers, c->from, 0);
    if (!x || x->snap_index != c->snap_index || x->snap_term != c->snap_term || x->complete)
        return;
    x->idle_ticks = 0;
    if (c->next > x->snap_index) {
        x->complete = 1;
        const struct raft_snapshot *rs = raft_get_snapshot(p->raft);
        if (raft_role(p->raft) != RAFT_LEADER || rs->index != x->snap_index)
            return; /* Raft's next SNAPSHOT goes straight through or starts over */
        struct raft_msg m = {.type = RAFT_MSG_SNAPSHOT, .from = p->node_id, .to = x->peer,
                             .term = raft_term(p->raft), .snapshot = *rs};
        log_info("partition_install_entries_sent", "partition=%u peer=%llu snapshot=%llu",
                 p->id, (unsigned long long)x->peer, (unsigned long long)x->snap_index);
        p->send(p->arg, p->id, &m);
        return;
    }
    if (c->next < x->first_index)
        return;
    x->next = c->next;
    xfer_send_chunk(p, x);
}

void xfer_tick(struct xfer *xfers, const struct xfer_ctx *p)
{
    for (int i = 0; i < RAFT_MAX_NODES; i++) {
        struct xfer *x = &xfers[i];
        if (!x->peer || x->complete)
            continue;
        if (raft_role(p->raft) != RAFT_LEADER || ++x->idle_ticks > CHUNK_GIVEUP_TICKS) {
            x->peer = 0;
            continue;
        }
        if (x->idle_ticks % CHUNK_RESEND_TICKS == 0)
            xfer_send_chunk(p, x);
    }
}

