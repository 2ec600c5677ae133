/* meta_place.c: storage nodes, partitions (raft groups) and placement.
 *
 * A partition has `replicas` replicas on distinct nodes and a preferred
 * leader; the raft group elects the real leader, which the node reports in
 * its heartbeats (highest term wins).  Partitions are created when nodes
 * register, until every up node is the preferred leader of
 * partitions_per_node partitions (so 3 nodes make 6 partitions of 3
 * replicas).  Each new partition takes the up nodes holding the fewest
 * replicas, and the one of them that prefers the fewest partitions leads.
 *
 * A new queue or topic goes to the partition whose effective leader (the
 * reported leader if up, else the preferred one) leads the fewest queues and
 * topics, then to the partition holding the fewest, then the lowest id: load
 * and leaders stay within one of even.  Queues created before any partition
 * existed stay unplaced (partition 0) until the first partitions appear.
 *
 * Not done here: moving replicas off a node that stays down (membership
 * change) and rebalancing existing queues onto new nodes.
 */
#include "meta_internal.h"

#include "status.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int node_id_valid(const char *id)
{
    size_t n = strlen(id);
    if (n < 1 || n > 63)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)id[i];
        if (c >= 0x80 || !(isalnum(c) || c == '-' || c == '_' || c == '.'))
            return 0;
    }
    return 1;
}

static struct meta_hb *hb_find(struct meta_store *s, const char *node_id, int create)
{
    for (int i = 0; i < s->n_hb; i++)
        if (strcmp(s->hb[i].node_id, node_id) == 0)
            return &s->hb[i];
    if (!create || s->n_hb >= META_NODES_MAX)
        return NULL;
    struct meta_hb *h = &s->hb[s->n_hb++];
    snprintf(h->node_id, sizeof h->node_id, "%s", node_id);
    h->last_ms = 0;
    return h;
}

static uint64_t hb_last(struct meta_store *s, const char *node_id)
{
    struct meta_hb *h = hb_find(s, node_id, 0);
    return h ? h->last_ms : s->opened_ms;
}

static int step_done(sqlite3_stmt *q)
{
    int rc = q ? sqlite3_step(q) : SQLITE_ERROR;
    sqlite3_finalize(q);
    return rc == SQLITE_DONE;
}

int meta_place_pick(struct meta_store *s, uint32_t *pid, struct meta_err *e)
{
    *pid = 0;
    sqlite3_stmt *q = meta_prepare(
        s, "WITH p AS ("
           "  SELECT pt.id AS id,"
           "    COALESCE(CASE WHEN ln.up = 1 THEN pt.leader END, pt.preferred_leader) AS eff,"
           "    (SELECT COUNT(*) FROM queues q WHERE q.partition_id = pt.id)"
           "    + (SELECT COUNT(*) FROM topics t WHERE t.partition_id = pt.id) AS load"
           "  FROM partitions pt LEFT JOIN nodes ln ON ln.node_id = pt.leader)"
           " SELECT p.id, (SELECT SUM(p2.load) FROM p p2 WHERE p2.eff = p.eff) AS nload,"
           "   COALESCE((SELECT up FROM nodes WHERE node_id = p.eff), 0) AS eup"
           " FROM p ORDER BY eup DESC, nload ASC, p.load ASC, p.id ASC LIMIT 1");
    if (!q)
        return meta_db_fail(s, e, "placement");
    int rc = sqlite3_step(q);
    if (rc == SQLITE_ROW)
        *pid = (uint32_t)sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? CMQ_OK : meta_db_fail(s, e, "placement");
}

/* Creates partitions up to the target and places unplaced queues and topics.
 * Inside an open transaction. */
static int rebalance(struct meta_store *s, struct meta_err *e)
{
    int ok1, ok2;
    int64_t up = meta_query_int(s, "SELECT COUNT(*) FROM nodes WHERE up = 1", 0, &ok1);
    int64_t have = meta_query_int(s, "SELECT COUNT(*) FROM partitions", 0, &ok2);
    if (!ok1 || !ok2)
        return meta_db_fail(s, e, "rebalance");
    int64_t target = up >= s->o.replicas ? up * s->o.partitions_per_node : 0;
    if (target > META_PARTITIONS_MAX)
        target = META_PARTITIONS_MAX;
    int64_t now = (int64_t)meta_now_ms(s);
    for (; have < target; have++) {
        char chosen[5][64];
        int n = 0;
        sqlite3_stmt *q = meta_prepare(
            s, "SELECT node_id FROM nodes n WHERE up = 1 ORDER BY"
               " (SELECT COUNT(*) FROM replicas r WHERE r.node_id = n.node_id), node_id LIMIT ?");
        if (!q)
            return meta_db_fail(s, e, "rebalance");
        sqlite3_bind_int(q, 1, s->o.replicas);
        while (n < s->o.replicas && sqlite3_step(q) == SQLITE_ROW)
            meta_col_text(q, 0, chosen[n++], sizeof chosen[0]);
        sqlite3_finalize(q);
        if (n < s->o.replicas)
            break;
        /* the preferred leader: the chosen node preferred by the fewest */
        int best = 0;
        int64_t best_n = INT64_MAX;
        for (int i = 0; i < n; i++) {
            q = meta_prepare(s, "SELECT COUNT(*) FROM partitions WHERE preferred_leader = ?");
            if (!q)
                return meta_db_fail(s, e, "rebalance");
            sqlite3_bind_text(q, 1, chosen[i], -1, SQLITE_TRANSIENT);
            int64_t c = sqlite3_step(q) == SQLITE_ROW ? sqlite3_column_int64(q, 0) : 0;
            sqlite3_finalize(q);
            if (c < best_n) {
                best_n = c;
                best = i;
            }
        }
        q = meta_prepare(s, "INSERT INTO partitions (preferred_leader, created_ms) VALUES (?, ?)");
        if (!q)
            return meta_db_fail(s, e, "rebalance");
        sqlite3_bind_text(q, 1, chosen[best], -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(q, 2, now);
        if (!step_done(q))
            return meta_db_fail(s, e, "partition create");
        int64_t pid = sqlite3_last_insert_rowid(s->db);
        for (int i = 0; i < n; i++) {
            q = meta_prepare(s, "INSERT INTO replicas VALUES (?, ?, ?)");
            if (!q)
                return meta_db_fail(s, e, "rebalance");
            sqlite3_bind_int64(q, 1, pid);
            sqlite3_bind_text(q, 2, chosen[i], -1, SQLITE_TRANSIENT);
            sqlite3_bind_int(q, 3, i);
            if (!step_done(q))
                return meta_db_fail(s, e, "replica create");
        }
        cmq_MetaEvent *ev = meta_event_add(s, "partition.created");
        if (ev) {
            ev->partition_id = (uint32_t)pid;
            snprintf(ev->node_id, sizeof ev->node_id, "%s", chosen[best]);
        }
    }
    /* place what was created before any partition existed */
    static const char *const tables[] = {"queues", "topics"};
    for (int t = 0; t < 2; t++) {
        for (;;) {
            char sql[160];
            snprintf(sql, sizeof sql,
                     "SELECT id, appid, name, num_id FROM %s WHERE partition_id IS NULL"
                     " ORDER BY id LIMIT 1",
                     tables[t]);
            sqlite3_stmt *q = meta_prepare(s, sql);
            if (!q)
                return meta_db_fail(s, e, "placement");
            if (sqlite3_step(q) != SQLITE_ROW) {
                sqlite3_finalize(q);
                break;
            }
            int64_t row = sqlite3_column_int64(q, 0);
            uint64_t appid = (uint64_t)sqlite3_column_int64(q, 1);
            char name[65];
            meta_col_text(q, 2, name, sizeof name);
            uint64_t num_id = (uint64_t)sqlite3_column_int64(q, 3);
            sqlite3_finalize(q);
            uint32_t pid;
            int st = meta_place_pick(s, &pid, e);
            if (st != CMQ_OK)
                return st;
            if (pid == 0)
                break;
            snprintf(sql, sizeof sql, "UPDATE %s SET partition_id = ? WHERE id = ?", tables[t]);
            q = meta_prepare(s, sql);
            if (!q)
                return meta_db_fail(s, e, "placement");
            sqlite3_bind_int64(q, 1, pid);
            sqlite3_bind_int64(q, 2, row);
            if (!step_done(q))
                return meta_db_fail(s, e, "placement");
            cmq_MetaEvent *ev = meta_event_add(s, t == 0 ? "queue.updated" : "topic.updated");
            if (ev) {
                ev->appid = appid;
                snprintf(ev->name, sizeof ev->name, "%s", name);
                ev->partition_id = pid;
                ev->num_id = num_id;
            }
        }
    }
    return CMQ_OK;
}

static int node_fill(struct meta_store *s, const char *node_id, cmq_Node *out)
{
    sqlite3_stmt *q = meta_prepare(
        s, "SELECT endpoint, raft_endpoint, up, state_ms,"
           " (SELECT COUNT(*) FROM replicas r WHERE r.node_id = n.node_id),"
           " (SELECT COUNT(*) FROM partitions p WHERE p.leader = n.node_id)"
           " FROM nodes n WHERE node_id = ?");
    if (!q)
        return CMQ_EIO;
    sqlite3_bind_text(q, 1, node_id, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(q);
    if (rc == SQLITE_ROW) {
        *out = (cmq_Node)cmq_Node_init_zero;
        snprintf(out->node_id, sizeof out->node_id, "%s", node_id);
        meta_col_text(q, 0, out->endpoint, sizeof out->endpoint);
        meta_col_text(q, 1, out->raft_endpoint, sizeof out->raft_endpoint);
        out->up = sqlite3_column_int(q, 2) != 0;
        struct meta_hb *h = hb_find(s, node_id, 0);
        out->last_heartbeat_ms = h ? h->last_ms : (uint64_t)sqlite3_column_int64(q, 3);
        out->replica_count = (uint32_t)sqlite3_column_int64(q, 4);
        out->leader_count = (uint32_t)sqlite3_column_int64(q, 5);
    }
    sqlite3_finalize(q);
    return rc == SQLITE_ROW ? CMQ_OK : rc == SQLITE_DONE ? CMQ_ENOTFOUND : CMQ_EIO;
}

/* Fills partitions (malloc'd array) holding `node_id` (NULL: all). */
static int partitions_fill(struct meta_store *s, const char *node_id, cmq_Partition **out,
                           pb_size_t *count)
{
    *out = NULL;
    *count = 0;
    sqlite3_stmt *q = meta_prepare(
        s, node_id ? "SELECT p.id, COALESCE(p.leader, ''), p.leader_term, p.preferred_leader,"
                     " (SELECT COUNT(*) FROM queues x WHERE x.partition_id = p.id),"
                     " (SELECT COUNT(*) FROM topics x WHERE x.partition_id = p.id)"
                     " FROM partitions p JOIN replicas r ON r.partition_id = p.id"
                     " WHERE r.node_id = ? ORDER BY p.id"
                   : "SELECT p.id, COALESCE(p.leader, ''), p.leader_term, p.preferred_leader,"
                     " (SELECT COUNT(*) FROM queues x WHERE x.partition_id = p.id),"
                     " (SELECT COUNT(*) FROM topics x WHERE x.partition_id = p.id)"
                     " FROM partitions p ORDER BY p.id");
    if (!q)
        return CMQ_EIO;
    if (node_id)
        sqlite3_bind_text(q, 1, node_id, -1, SQLITE_TRANSIENT);
    size_t cap = 0;
    int rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW && *count < META_PARTITIONS_MAX) {
        if (*count == cap) {
            cap = cap ? 2 * cap : 16;
            cmq_Partition *p = realloc(*out, cap * sizeof *p);
            if (!p) {
                sqlite3_finalize(q);
                return CMQ_ENOMEM;
            }
            *out = p;
        }
        cmq_Partition *p = &(*out)[(*count)++];
        *p = (cmq_Partition)cmq_Partition_init_zero;
        p->id = (uint32_t)sqlite3_column_int64(q, 0);
        meta_col_text(q, 1, p->leader, sizeof p->leader);
        p->leader_term = (uint64_t)sqlite3_column_int64(q, 2);
        meta_col_text(q, 3, p->preferred_leader, sizeof p->preferred_leader);
        p->queue_count = (uint32_t)sqlite3_column_int64(q, 4);
        p->topic_count = (uint32_t)sqlite3_column_int64(q, 5);
    }
    sqlite3_finalize(q);
    for (pb_size_t i = 0; i < *count; i++) {
        cmq_Partition *p = &(*out)[i];
        q = meta_prepare(s, "SELECT node_id FROM replicas WHERE partition_id = ? ORDER BY slot");
        if (!q)
            return CMQ_EIO;
        sqlite3_bind_int64(q, 1, p->id);
        while (p->replicas_count < 5 && sqlite3_step(q) == SQLITE_ROW)
            meta_col_text(q, 0, p->replicas[p->replicas_count++], sizeof p->replicas[0]);
        sqlite3_finalize(q);
    }
    return CMQ_OK;
}

static int node_reply(struct meta_store *s, const char *node_id, cmq_NodeReply *out,
                      struct meta_err *e)
{
    *out = (cmq_NodeReply)cmq_NodeReply_init_zero;
    out->map_version = meta_store_placement_version(s);
    out->has_node = true;
    if (node_fill(s, node_id, &out->node) != CMQ_OK ||
        partitions_fill(s, node_id, &out->partitions, &out->partitions_count) != CMQ_OK) {
        free(out->partitions);
        out->partitions = NULL;
        out->partitions_count = 0;
        return meta_db_fail(s, e, "node reply");
    }
    return CMQ_OK;
}

int meta_node_register(struct meta_store *s, const cmq_NodeRequest *req, cmq_NodeReply *out,
                       struct meta_err *e)
{
    if (!node_id_valid(req->node_id))
        return meta_fail(e, CMQ_EINVAL, META_ROW(DEFAULT), "node_id",
                         "node id must be 1-63 letters, digits, '-', '_' or '.'");
    if (!req->endpoint[0])
        return meta_fail(e, CMQ_EINVAL, META_ROW(DEFAULT), "endpoint", "a node needs an endpoint");
    int st = meta_tx_begin(s, e);
    if (st != CMQ_OK)
        return st;
    int64_t now = (int64_t)meta_now_ms(s);
    sqlite3_stmt *q = meta_prepare(s, "SELECT up FROM nodes WHERE node_id = ?");
    if (!q)
        goto db;
    sqlite3_bind_text(q, 1, req->node_id, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(q), was_up = rc == SQLITE_ROW ? sqlite3_column_int(q, 0) : -1;
    sqlite3_finalize(q);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        goto db;
    if (was_up < 0) {
        int ok;
        if (meta_query_int(s, "SELECT COUNT(*) FROM nodes", 0, &ok) >= META_NODES_MAX) {
            meta_tx_rollback(s);
            return meta_fail(e, CMQ_ELIMIT, META_ROW(DEFAULT), "node_id", "at most %d storage nodes",
                             META_NODES_MAX);
        }
    }
    q = meta_prepare(s, "INSERT INTO nodes VALUES (?1, ?2, ?3, 1, ?4, ?4)"
                        " ON CONFLICT (node_id) DO UPDATE SET endpoint = ?2, raft_endpoint = ?3,"
                        " up = 1, state_ms = CASE WHEN up = 1 THEN state_ms ELSE ?4 END");
    if (!q)
        goto db;
    sqlite3_bind_text(q, 1, req->node_id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 2, req->endpoint, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 3, req->raft_endpoint[0] ? req->raft_endpoint : req->endpoint, -1,
                      SQLITE_TRANSIENT);
    sqlite3_bind_int64(q, 4, now);
    if (!step_done(q))
        goto db;
    cmq_MetaEvent *ev = meta_event_add(s, was_up < 0 ? "node.registered"
                                          : was_up  ? "node.updated"
                                                    : "node.up");
    if (ev)
        snprintf(ev->node_id, sizeof ev->node_id, "%s", req->node_id);
    if ((st = rebalance(s, e)) != CMQ_OK)
        goto fail;
    if ((st = meta_tx_commit(s, e)) != CMQ_OK)
        return st;
    struct meta_hb *h = hb_find(s, req->node_id, 1);
    if (h)
        h->last_ms = (uint64_t)now;
    return node_reply(s, req->node_id, out, e);
db:
    st = meta_db_fail(s, e, "node register");
fail:
    meta_tx_rollback(s);
    return st;
}

int meta_node_heartbeat(struct meta_store *s, const cmq_NodeRequest *req, cmq_NodeReply *out,
                        struct meta_err *e)
{
    int st = meta_tx_begin(s, e);
    if (st != CMQ_OK)
        return st;
    uint64_t now = meta_now_ms(s);
    sqlite3_stmt *q = meta_prepare(s, "SELECT up FROM nodes WHERE node_id = ?");
    if (!q)
        goto db;
    sqlite3_bind_text(q, 1, req->node_id, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(q), up = rc == SQLITE_ROW ? sqlite3_column_int(q, 0) : -1;
    sqlite3_finalize(q);
    if (rc == SQLITE_DONE) {
        meta_tx_rollback(s);
        return meta_fail(e, CMQ_ENOTFOUND, META_ROW(DEFAULT), "node_id", "node %s is not registered",
                         req->node_id);
    }
    if (rc != SQLITE_ROW)
        goto db;
    if (!up) {
        q = meta_prepare(s, "UPDATE nodes SET up = 1, state_ms = ? WHERE node_id = ?");
        if (!q)
            goto db;
        sqlite3_bind_int64(q, 1, (int64_t)now);
        sqlite3_bind_text(q, 2, req->node_id, -1, SQLITE_TRANSIENT);
        if (!step_done(q))
            goto db;
        cmq_MetaEvent *ev = meta_event_add(s, "node.up");
        if (ev)
            snprintf(ev->node_id, sizeof ev->node_id, "%s", req->node_id);
        if ((st = rebalance(s, e)) != CMQ_OK)
            goto fail;
    }
    for (pb_size_t i = 0; i < req->partitions_count; i++) {
        const cmq_PartitionReport *r = &req->partitions[i];
        q = meta_prepare(s, "SELECT COALESCE(p.leader, ''), p.leader_term FROM partitions p"
                            " JOIN replicas x ON x.partition_id = p.id AND x.node_id = ?"
                            " WHERE p.id = ?");
        if (!q)
            goto db;
        sqlite3_bind_text(q, 1, req->node_id, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(q, 2, r->partition_id);
        char leader[64] = "";
        rc = sqlite3_step(q);
        uint64_t term = rc == SQLITE_ROW ? (uint64_t)sqlite3_column_int64(q, 1) : 0;
        if (rc == SQLITE_ROW)
            meta_col_text(q, 0, leader, sizeof leader);
        sqlite3_finalize(q);
        if (rc != SQLITE_ROW)
            continue; /* not a replica here: ignore the report */
        int mine = strcmp(leader, req->node_id) == 0;
        const char *set = NULL;
        if (r->is_leader && (r->term > term || (r->term == term && !mine)))
            set = req->node_id;
        else if (!r->is_leader && mine && r->term >= term)
            set = "";
        if (!set)
            continue;
        q = meta_prepare(s, "UPDATE partitions SET leader = NULLIF(?, ''), leader_term = ?"
                            " WHERE id = ?");
        if (!q)
            goto db;
        sqlite3_bind_text(q, 1, set, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(q, 2, (int64_t)(r->term > term ? r->term : term));
        sqlite3_bind_int64(q, 3, r->partition_id);
        if (!step_done(q))
            goto db;
        cmq_MetaEvent *ev = meta_event_add(s, "partition.leader");
        if (ev) {
            ev->partition_id = r->partition_id;
            snprintf(ev->node_id, sizeof ev->node_id, "%s", set);
        }
    }
    if ((st = meta_tx_commit(s, e)) != CMQ_OK)
        return st;
    struct meta_hb *h = hb_find(s, req->node_id, 1);
    if (h)
        h->last_ms = now;
    return node_reply(s, req->node_id, out, e);
db:
    st = meta_db_fail(s, e, "heartbeat");
fail:
    meta_tx_rollback(s);
    return st;
}

int meta_node_list(struct meta_store *s, cmq_NodeList *out, struct meta_err *e)
{
    *out = (cmq_NodeList)cmq_NodeList_init_zero;
    sqlite3_stmt *q = meta_prepare(s, "SELECT node_id FROM nodes ORDER BY node_id");
    if (!q)
        return meta_db_fail(s, e, "node list");
    char ids[META_NODES_MAX][64];
    int n = 0;
    while (n < META_NODES_MAX && sqlite3_step(q) == SQLITE_ROW)
        meta_col_text(q, 0, ids[n++], sizeof ids[0]);
    sqlite3_finalize(q);
    for (int i = 0; i < n && out->nodes_count < sizeof out->nodes / sizeof out->nodes[0]; i++)
        if (node_fill(s, ids[i], &out->nodes[out->nodes_count]) == CMQ_OK)
            out->nodes_count++;
    return CMQ_OK;
}

int meta_nodes_check(struct meta_store *s)
{
    struct meta_err e;
    uint64_t now = meta_now_ms(s);
    char down[META_NODES_MAX][64];
    int n = 0;
    sqlite3_stmt *q = meta_prepare(s, "SELECT node_id FROM nodes WHERE up = 1 ORDER BY node_id");
    if (!q)
        return -CMQ_EIO;
    while (n < META_NODES_MAX && sqlite3_step(q) == SQLITE_ROW) {
        char id[64];
        meta_col_text(q, 0, id, sizeof id);
        uint64_t last = hb_last(s, id);
        if (now > last && now - last > (uint64_t)s->o.node_timeout_ms)
            snprintf(down[n++], sizeof down[0], "%s", id);
    }
    sqlite3_finalize(q);
    if (n == 0)
        return 0;
    if (meta_tx_begin(s, &e) != CMQ_OK)
        return -e.status;
    for (int i = 0; i < n; i++) {
        q = meta_prepare(s, "UPDATE nodes SET up = 0, state_ms = ? WHERE node_id = ?");
        if (!q)
            goto db;
        sqlite3_bind_int64(q, 1, (int64_t)now);
        sqlite3_bind_text(q, 2, down[i], -1, SQLITE_TRANSIENT);
        if (!step_done(q))
            goto db;
        cmq_MetaEvent *ev = meta_event_add(s, "node.down");
        if (ev)
            snprintf(ev->node_id, sizeof ev->node_id, "%.*s", (int)sizeof ev->node_id - 1, down[i]);
        /* its leaderships are no longer known */
        q = meta_prepare(s, "SELECT id FROM partitions WHERE leader = ?");
        if (!q)
            goto db;
        sqlite3_bind_text(q, 1, down[i], -1, SQLITE_TRANSIENT);
        while (sqlite3_step(q) == SQLITE_ROW) {
            ev = meta_event_add(s, "partition.leader");
            if (ev)
                ev->partition_id = (uint32_t)sqlite3_column_int64(q, 0);
        }
        sqlite3_finalize(q);
        q = meta_prepare(s, "UPDATE partitions SET leader = NULL WHERE leader = ?");
        if (!q)
            goto db;
        sqlite3_bind_text(q, 1, down[i], -1, SQLITE_TRANSIENT);
        if (!step_done(q))
            goto db;
    }
    if (meta_tx_commit(s, &e) != CMQ_OK)
        return -e.status;
    return n;
db:
    meta_tx_rollback(s);
    return -CMQ_EIO;
}

int meta_partition_map(struct meta_store *s, cmq_PartitionMap *out, struct meta_err *e)
{
    *out = (cmq_PartitionMap)cmq_PartitionMap_init_zero;
    out->map_version = meta_store_placement_version(s);
    cmq_NodeList nl;
    int st = meta_node_list(s, &nl, e);
    if (st != CMQ_OK)
        return st;
    memcpy(out->nodes, nl.nodes, sizeof nl.nodes[0] * nl.nodes_count);
    out->nodes_count = nl.nodes_count;
    st = partitions_fill(s, NULL, &out->partitions, &out->partitions_count);
    if (st != CMQ_OK) {
        free(out->partitions);
        out->partitions = NULL;
        out->partitions_count = 0;
        return meta_db_fail(s, e, "partition map");
    }
    return CMQ_OK;
}
