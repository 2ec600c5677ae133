/* cmqctl: the operator's command line.
 *
 *   cmqctl health --endpoint tcp://127.0.0.1:17100 [--timeout-ms 1000]
 *
 * Subcommands that talk to metadata (account, key, acl, nodes, partitions)
 * live in cmqctl_meta.c.  Exit codes: 0 success, 1 the service answered an
 * error or did not answer, 2 usage.
 */
#include "envelope.pb.h"
#include "raft.pb.h"
#include "rpc.h"
#include "status.h"

#ifdef CMQCTL_HAVE_META
#include "cmqctl_meta.h"
#endif
#include "cmqctl_tcp.h" /* send / receive / delete / publish / bench over TCP */
#include "cmqctl_trace.h" /* trace: a message's state changes from storage */

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

static void usage(FILE *f)
{
    fprintf(f,
            "usage: cmqctl COMMAND [options]\n\n"
            "commands:\n"
            "  health --endpoint EP [--timeout-ms N]   ask one service for its health\n"
            "  raft-status --endpoint EP [--timeout-ms N]\n"
            "                                           a storage node's partitions: role, term,\n"
            "                                           leader, commit, applied, durable\n"
#ifdef CMQCTL_HAVE_META
            "  account | key | acl | nodes | partitions ...  metadata operations\n"
            "                                             (cmqctl account --help)\n"
#endif
            );
    cmqctl_tcp_usage(f);
    cmqctl_trace_usage(f);
    fprintf(f, "\nexit codes: 0 ok, 1 error or no answer, 2 usage\n");
}

/* Parses --endpoint / --timeout-ms for the single-endpoint commands. */
static int endpoint_args(int argc, char **argv, const char *cmd, const char **endpoint,
                         int *timeout_ms)
{
    static const struct option opts[] = {
        {"endpoint", required_argument, NULL, 'e'},
        {"timeout-ms", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int o;
    *endpoint = NULL;
    *timeout_ms = 1000;
    optind = 1;
    while ((o = getopt_long(argc, argv, "e:t:h", opts, NULL)) != -1) {
        switch (o) {
        case 'e': *endpoint = optarg; break;
        case 't': *timeout_ms = atoi(optarg); break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (!*endpoint || *timeout_ms <= 0) {
        fprintf(stderr, "cmqctl %s: --endpoint is required (and --timeout-ms > 0)\n", cmd);
        return 2;
    }
    return -1;
}

/* Sends one request with an encoded `req`; on success decodes the reply into
 * `reply`.  Returns the status. */
static int call_one(const char *endpoint, int timeout_ms, uint32_t type, const pb_msgdesc_t *req_fields,
                    const void *req, const pb_msgdesc_t *reply_fields, void *reply)
{
    void *zctx = zmq_ctx_new();
    uint8_t *body;
    size_t len;
    int st = rpc_pb_encode(req_fields, req, &body, &len);
    if (st == CMQ_OK) {
        struct rpc_sync_result res;
        struct rpc_opts ro = {.timeout_ms = timeout_ms, .attempts = 1, .peer = 0};
        st = rpc_call_sync(zctx, &endpoint, 1, type, body, len, &ro, &res);
        free(body);
        if (st == CMQ_OK && rpc_pb_decode(reply_fields, reply, res.body, res.body_len) != CMQ_OK)
            st = CMQ_ECORRUPT;
        rpc_sync_result_free(&res);
    }
    zmq_ctx_term(zctx);
    return st;
}

static int cmd_raft_status(int argc, char **argv)
{
    const char *endpoint;
    int timeout_ms;
    int rc = endpoint_args(argc, argv, "raft-status", &endpoint, &timeout_ms);
    if (rc >= 0)
        return rc;
    cmq_PartitionStatusRequest req = cmq_PartitionStatusRequest_init_zero;
    cmq_PartitionStatusReply r = cmq_PartitionStatusReply_init_zero;
    int st = call_one(endpoint, timeout_ms, cmq_RaftMsgType_RAFT_WIRE_STATUS,
                      cmq_PartitionStatusRequest_fields, &req, cmq_PartitionStatusReply_fields, &r);
    if (st != CMQ_OK) {
        printf("status=down endpoint=%s error=%s\n", endpoint, status_name(st));
        return 1;
    }
    static const char *const roles[] = {"follower", "pre-candidate", "candidate", "leader"};
    for (pb_size_t i = 0; i < r.partitions_count; i++) {
        const cmq_PartitionStatus *p = &r.partitions[i];
        printf("node=%llu partition=%u role=%s term=%llu leader=%llu commit=%llu applied=%llu "
               "last=%llu durable=%llu first=%llu snapshot=%llu installed=%llu\n",
               (unsigned long long)r.node, p->partition, roles[p->role & 3],
               (unsigned long long)p->term, (unsigned long long)p->leader,
               (unsigned long long)p->commit, (unsigned long long)p->applied,
               (unsigned long long)p->last_index, (unsigned long long)p->durable,
               (unsigned long long)p->first_index, (unsigned long long)p->snapshot_index,
               (unsigned long long)p->snapshots_installed);
    }
    return 0;
}

static int cmd_health(int argc, char **argv)
{
    static const struct option opts[] = {
        {"endpoint", required_argument, NULL, 'e'},
        {"timeout-ms", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *endpoint = NULL;
    int timeout_ms = 1000, o;
    optind = 1;
    while ((o = getopt_long(argc, argv, "e:t:h", opts, NULL)) != -1) {
        switch (o) {
        case 'e': endpoint = optarg; break;
        case 't': timeout_ms = atoi(optarg); break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (!endpoint || timeout_ms <= 0) {
        fprintf(stderr, "cmqctl health: --endpoint is required (and --timeout-ms > 0)\n");
        return 2;
    }
    void *zctx = zmq_ctx_new();
    cmq_HealthRequest req = cmq_HealthRequest_init_zero;
    uint8_t *body;
    size_t len;
    rpc_pb_encode(cmq_HealthRequest_fields, &req, &body, &len);
    struct rpc_sync_result res;
    struct rpc_opts ro = {.timeout_ms = timeout_ms, .attempts = 1, .peer = 0};
    int st = rpc_call_sync(zctx, &endpoint, 1, cmq_MsgType_MSG_HEALTH, body, len, &ro, &res);
    free(body);
    int rc = 1;
    if (st == CMQ_OK) {
        cmq_HealthReply r = cmq_HealthReply_init_zero;
        if (rpc_pb_decode(cmq_HealthReply_fields, &r, res.body, res.body_len) == CMQ_OK) {
            printf("status=up service=%s node=%s pid=%u uptime_ms=%llu requests=%llu version=%s%s%s\n",
                   r.service, r.node_id, r.pid, (unsigned long long)r.uptime_ms,
                   (unsigned long long)r.requests, r.version, r.detail[0] ? " " : "", r.detail);
            rc = 0;
        } else {
            printf("status=bad_reply endpoint=%s\n", endpoint);
        }
    } else {
        printf("status=down endpoint=%s error=%s\n", endpoint, status_name(st));
    }
    rpc_sync_result_free(&res);
    zmq_ctx_term(zctx);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    int tcp_rc;
    if (cmqctl_tcp_dispatch(argc - 1, argv + 1, &tcp_rc))
        return tcp_rc;
    if (strcmp(cmd, "health") == 0)
        return cmd_health(argc - 1, argv + 1);
    if (strcmp(cmd, "trace") == 0)
        return cmqctl_trace_main(argc - 1, argv + 1);
    if (strcmp(cmd, "raft-status") == 0)
        return cmd_raft_status(argc - 1, argv + 1);
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        usage(stdout);
        return 0;
    }
#ifdef CMQCTL_HAVE_META
    return cmqctl_meta_main(argc - 1, argv + 1, NULL);
#else
    fprintf(stderr, "cmqctl: unknown command '%s'\n", cmd);
    usage(stderr);
    return 2;
#endif
}
