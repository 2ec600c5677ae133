/* cmqctl_meta.c: operator commands against cmq-metadata.
 *
 * Each command is one synchronous request (rpc_call_sync) with the
 * MetaMsgType of proto/metadata.proto; output is key=value lines (text) or
 * shell assignments (--format env).  Errors go to stderr with the status and
 * the service's reason.  Secrets are printed only by `key create`.
 */
#include "cmqctl_meta.h"

#include "metadata.pb.h"
#include "rpc.h"
#include "status.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pb_decode.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#define DEFAULT_ENDPOINT "tcp://127.0.0.1:17100"
#define CLUSTER_ENV "var/dev/cluster.env"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: cmqctl COMMAND ... [--endpoint EP] [--format text|env] [--timeout-ms N]\n\n"
            "  account create [--appid N] [--name NAME]   create an account (prints CMQ_APPID)\n"
            "  account list\n"
            "  key create --account APPID [--restricted]  create a key (prints CMQ_SECRET_ID,\n"
            "                                             CMQ_SECRET_KEY; shown only once)\n"
            "  key disable SECRET_ID | key enable SECRET_ID\n"
            "  key list [--account APPID]\n"
            "  acl grant SECRET_ID ACTION RESOURCE         ACTION: an API Action or '*';\n"
            "  acl revoke SECRET_ID ACTION RESOURCE        RESOURCE: queue:NAME, topic:NAME,\n"
            "  acl revoke --id N                           queue:PREFIX*, topic:*, '*'\n"
            "  acl list SECRET_ID\n"
            "  acl check SECRET_ID ACTION queue|topic NAME\n"
            "  nodes                                       storage nodes, up/down\n"
            "  partitions                                  partitions, replicas, leaders\n"
            "  queue list --account APPID [--search W]     queues of an account\n"
            "  topic list --account APPID [--search W]     topics of an account\n\n"
            "Without --endpoint: $CMQ_METADATA_ENDPOINT, else CMQ_METADATA_ENDPOINT from\n"
            CLUSTER_ENV ", else " DEFAULT_ENDPOINT ".\n"
            "exit codes: 0 ok, 1 error or no answer, 2 usage\n");
}

struct ctx {
    const char *endpoint;
    int env;
    int timeout_ms;
    void *zctx;
};

static const char *endpoint_default(char *buf, size_t cap)
{
    const char *e = getenv("CMQ_METADATA_ENDPOINT");
    if (e && e[0])
        return e;
    FILE *f = fopen(CLUSTER_ENV, "r");
    if (f) {
        char line[512];
        while (fgets(line, sizeof line, f)) {
            char *p = line;
            if (strncmp(p, "export ", 7) == 0)
                p += 7;
            if (strncmp(p, "CMQ_METADATA_ENDPOINT=", 22) != 0)
                continue;
            p += 22;
            p[strcspn(p, "\r\n")] = '\0';
            size_t n = strlen(p);
            if (n >= 2 && (p[0] == '"' || p[0] == '\'') && p[n - 1] == p[0]) {
                p[n - 1] = '\0';
                p++;
            }
            if (p[0]) {
                snprintf(buf, cap, "%s", p);
                fclose(f);
                return buf;
            }
        }
        fclose(f);
    }
    return DEFAULT_ENDPOINT;
}

/* One request; on success `rep` is decoded (pb_release it).  Returns 0 or 1. */
static int call(struct ctx *c, uint32_t type, const char *what, const pb_msgdesc_t *req_f,
                const void *req, const pb_msgdesc_t *rep_f, void *rep)
{
    uint8_t *body = NULL;
    size_t len = 0;
    if (rpc_pb_encode(req_f, req, &body, &len) != CMQ_OK) {
        fprintf(stderr, "cmqctl: %s: request too large\n", what);
        return 1;
    }
    struct rpc_sync_result res;
    struct rpc_opts ro = {.timeout_ms = c->timeout_ms, .attempts = 1, .peer = 0};
    int st = rpc_call_sync(c->zctx, &c->endpoint, 1, type, body, len, &ro, &res);
    free(body);
    int rc = 0;
    if (st == CMQ_OK) {
        if (rpc_pb_decode(rep_f, rep, res.body, res.body_len) != CMQ_OK) {
            fprintf(stderr, "cmqctl: %s: malformed reply from %s\n", what, c->endpoint);
            rc = 1;
        }
    } else if (st == CMQ_ETIMEDOUT || st == CMQ_EUNAVAIL) {
        fprintf(stderr, "cmqctl: %s: no answer from metadata at %s (%s)\n", what, c->endpoint,
                status_name(st));
        rc = 1;
    } else {
        cmq_MetaError me = cmq_MetaError_init_zero;
        if (res.body_len)
            rpc_pb_decode(cmq_MetaError_fields, &me, res.body, res.body_len);
        fprintf(stderr, "cmqctl: %s failed: %s: %s\n", what, status_name(st),
                me.reason[0] ? me.reason : res.error);
        rc = 1;
    }
    rpc_sync_result_free(&res);
    return rc;
}

static int parse_u64(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || !s[0] || *end || s[0] == '-')
        return -1;
    *out = v;
    return 0;
}

static void print_key(struct ctx *c, const cmq_Key *k)
{
    if (c->env) {
        printf("CMQ_SECRET_ID=%s\n", k->secret_id);
        if (k->secret_key[0])
            printf("CMQ_SECRET_KEY=%s\n", k->secret_key);
        return;
    }
    printf("secret_id=%s appid=%" PRIu64 " enabled=%s restricted=%s create_time=%" PRIu64 "%s%s\n",
           k->secret_id, k->appid, k->enabled ? "yes" : "no", k->restricted ? "yes" : "no",
           k->create_time, k->secret_key[0] ? " secret_key=" : "", k->secret_key);
}

static int cmd_account(struct ctx *c, int n, char **a, uint64_t appid, const char *name)
{
    if (n == 1 && strcmp(a[0], "create") == 0) {
        cmq_AccountCreateRequest r = cmq_AccountCreateRequest_init_zero;
        r.appid = appid;
        snprintf(r.name, sizeof r.name, "%s", name ? name : "");
        cmq_Account acc = cmq_Account_init_zero;
        if (call(c, cmq_MetaMsgType_META_MSG_ACCOUNT_CREATE, "account create",
                 cmq_AccountCreateRequest_fields, &r, cmq_Account_fields, &acc))
            return 1;
        if (c->env)
            printf("CMQ_APPID=%" PRIu64 "\n", acc.appid);
        else
            printf("appid=%" PRIu64 " name=\"%s\"\n", acc.appid, acc.name);
        return 0;
    }
    if (n == 1 && strcmp(a[0], "list") == 0) {
        cmq_ListRequest r = cmq_ListRequest_init_zero;
        cmq_AccountList *l = calloc(1, sizeof *l);
        int rc = call(c, cmq_MetaMsgType_META_MSG_ACCOUNT_LIST, "account list",
                      cmq_ListRequest_fields, &r, cmq_AccountList_fields, l);
        for (pb_size_t i = 0; !rc && i < l->accounts_count; i++)
            printf("appid=%" PRIu64 " name=\"%s\" keys=%u queues=%u topics=%u\n",
                   l->accounts[i].appid, l->accounts[i].name, l->accounts[i].key_count,
                   l->accounts[i].queue_count, l->accounts[i].topic_count);
        free(l);
        return rc;
    }
    usage(stderr);
    return 2;
}

static int cmd_key(struct ctx *c, int n, char **a, uint64_t appid, int restricted)
{
    cmq_Key k = cmq_Key_init_zero;
    if (n == 1 && strcmp(a[0], "create") == 0) {
        if (!appid) {
            fprintf(stderr, "cmqctl key create: --account APPID is required\n");
            return 2;
        }
        cmq_KeyCreateRequest r = {.appid = appid, .restricted = restricted};
        if (call(c, cmq_MetaMsgType_META_MSG_KEY_CREATE, "key create",
                 cmq_KeyCreateRequest_fields, &r, cmq_Key_fields, &k))
            return 1;
        print_key(c, &k);
        memset(&k, 0, sizeof k);
        return 0;
    }
    if (n == 2 && (strcmp(a[0], "disable") == 0 || strcmp(a[0], "enable") == 0)) {
        cmq_KeyRequest r = cmq_KeyRequest_init_zero;
        snprintf(r.secret_id, sizeof r.secret_id, "%s", a[1]);
        int dis = strcmp(a[0], "disable") == 0;
        if (call(c, dis ? cmq_MetaMsgType_META_MSG_KEY_DISABLE : cmq_MetaMsgType_META_MSG_KEY_ENABLE,
                 dis ? "key disable" : "key enable", cmq_KeyRequest_fields, &r, cmq_Key_fields,
                 &k))
            return 1;
        if (!c->env)
            print_key(c, &k);
        return 0;
    }
    if (n == 1 && strcmp(a[0], "list") == 0) {
        cmq_KeyListRequest r = {.appid = appid};
        cmq_KeyList *l = calloc(1, sizeof *l);
        int rc = call(c, cmq_MetaMsgType_META_MSG_KEY_LIST, "key list", cmq_KeyListRequest_fields,
                      &r, cmq_KeyList_fields, l);
        struct ctx text = *c;
        text.env = 0;
        for (pb_size_t i = 0; !rc && i < l->keys_count; i++)
            print_key(&text, &l->keys[i]);
        free(l);
        return rc;
    }
    usage(stderr);
    return 2;
}

static int cmd_acl(struct ctx *c, int n, char **a, uint64_t id)
{
    cmq_AclEntry r = cmq_AclEntry_init_zero, out = cmq_AclEntry_init_zero;
    int grant = n == 4 && strcmp(a[0], "grant") == 0;
    int revoke = strcmp(a[0], "revoke") == 0 && (n == 4 || (n == 1 && id));
    if (grant || revoke) {
        r.id = id;
        if (n == 4) {
            snprintf(r.secret_id, sizeof r.secret_id, "%s", a[1]);
            snprintf(r.action, sizeof r.action, "%s", a[2]);
            snprintf(r.resource, sizeof r.resource, "%s", a[3]);
        }
        if (call(c, grant ? cmq_MetaMsgType_META_MSG_ACL_GRANT : cmq_MetaMsgType_META_MSG_ACL_REVOKE,
                 grant ? "acl grant" : "acl revoke", cmq_AclEntry_fields, &r, cmq_AclEntry_fields,
                 &out))
            return 1;
        printf("%s id=%" PRIu64 " secret_id=%s action=%s resource=%s\n",
               grant ? "granted" : "revoked", out.id, out.secret_id, out.action, out.resource);
        return 0;
    }
    if (n == 2 && strcmp(a[0], "list") == 0) {
        cmq_KeyRequest kr = cmq_KeyRequest_init_zero;
        snprintf(kr.secret_id, sizeof kr.secret_id, "%s", a[1]);
        cmq_AclList *l = calloc(1, sizeof *l);
        int rc = call(c, cmq_MetaMsgType_META_MSG_ACL_LIST, "acl list", cmq_KeyRequest_fields, &kr,
                      cmq_AclList_fields, l);
        for (pb_size_t i = 0; !rc && i < l->entries_count; i++)
            printf("id=%" PRIu64 " action=%s resource=%s\n", l->entries[i].id,
                   l->entries[i].action, l->entries[i].resource);
        free(l);
        return rc;
    }
    if (n == 5 && strcmp(a[0], "check") == 0) {
        cmq_AclCheckRequest cr = cmq_AclCheckRequest_init_zero;
        snprintf(cr.secret_id, sizeof cr.secret_id, "%s", a[1]);
        snprintf(cr.action, sizeof cr.action, "%s", a[2]);
        snprintf(cr.resource_type, sizeof cr.resource_type, "%s", a[3]);
        snprintf(cr.resource_name, sizeof cr.resource_name, "%s", a[4]);
        cmq_AclCheckReply rep = cmq_AclCheckReply_init_zero;
        if (call(c, cmq_MetaMsgType_META_MSG_ACL_CHECK, "acl check", cmq_AclCheckRequest_fields,
                 &cr, cmq_AclCheckReply_fields, &rep))
            return 1;
        printf("allowed=%s appid=%" PRIu64 "%s%s%s\n", rep.allowed ? "yes" : "no", rep.appid,
               rep.reason[0] ? " reason=\"" : "", rep.reason, rep.reason[0] ? "\"" : "");
        return rep.allowed ? 0 : 1;
    }
    usage(stderr);
    return 2;
}

static int cmd_nodes(struct ctx *c)
{
    cmq_ListRequest r = cmq_ListRequest_init_zero;
    cmq_NodeList *l = calloc(1, sizeof *l);
    int rc = call(c, cmq_MetaMsgType_META_MSG_NODE_LIST, "nodes", cmq_ListRequest_fields, &r,
                  cmq_NodeList_fields, l);
    for (pb_size_t i = 0; !rc && i < l->nodes_count; i++) {
        const cmq_Node *nd = &l->nodes[i];
        printf("node=%s state=%s endpoint=%s raft=%s replicas=%u leads=%u last_heartbeat_ms=%" PRIu64
               "\n",
               nd->node_id, nd->up ? "up" : "down", nd->endpoint, nd->raft_endpoint,
               nd->replica_count, nd->leader_count, nd->last_heartbeat_ms);
    }
    free(l);
    return rc;
}

static int cmd_partitions(struct ctx *c)
{
    cmq_ListRequest r = cmq_ListRequest_init_zero;
    cmq_PartitionMap *m = calloc(1, sizeof *m);
    int rc = call(c, cmq_MetaMsgType_META_MSG_PARTITION_MAP, "partitions", cmq_ListRequest_fields,
                  &r, cmq_PartitionMap_fields, m);
    if (!rc)
        printf("map_version=%" PRIu64 " partitions=%u\n", m->map_version,
               (unsigned)m->partitions_count);
    for (pb_size_t i = 0; !rc && i < m->partitions_count; i++) {
        const cmq_Partition *p = &m->partitions[i];
        printf("partition=%u leader=%s term=%" PRIu64 " preferred=%s queues=%u topics=%u replicas=",
               p->id, p->leader[0] ? p->leader : "-", p->leader_term, p->preferred_leader,
               p->queue_count, p->topic_count);
        for (pb_size_t j = 0; j < p->replicas_count; j++)
            printf("%s%s", j ? "," : "", p->replicas[j]);
        printf("\n");
    }
    pb_release(cmq_PartitionMap_fields, m);
    free(m);
    return rc;
}

static int cmd_ns_list(struct ctx *c, int topic, int n, char **a, uint64_t appid,
                       const char *search)
{
    if (n != 1 || strcmp(a[0], "list") != 0 || !appid) {
        fprintf(stderr, "cmqctl %s list --account APPID [--search WORD]\n",
                topic ? "topic" : "queue");
        return 2;
    }
    cmq_ListRequest r = cmq_ListRequest_init_zero;
    r.appid = appid;
    snprintf(r.search_word, sizeof r.search_word, "%s", search ? search : "");
    r.has_limit = true;
    r.limit = 50;
    int rc = 0;
    for (int64_t off = 0;; off += 50) {
        r.has_offset = true;
        r.offset = off;
        if (topic) {
            cmq_TopicList *l = calloc(1, sizeof *l);
            rc = call(c, cmq_MetaMsgType_META_MSG_TOPIC_LIST, "topic list", cmq_ListRequest_fields,
                      &r, cmq_TopicList_fields, l);
            for (pb_size_t i = 0; !rc && i < l->topics_count; i++)
                printf("topic=%s id=%s\n", l->topics[i].topic_name, l->topics[i].topic_id);
            int more = !rc && off + l->topics_count < l->total_count && l->topics_count > 0;
            free(l);
            if (!more)
                break;
        } else {
            cmq_QueueList *l = calloc(1, sizeof *l);
            rc = call(c, cmq_MetaMsgType_META_MSG_QUEUE_LIST, "queue list", cmq_ListRequest_fields,
                      &r, cmq_QueueList_fields, l);
            for (pb_size_t i = 0; !rc && i < l->queues_count; i++)
                printf("queue=%s id=%s\n", l->queues[i].queue_name, l->queues[i].queue_id);
            int more = !rc && off + l->queues_count < l->total_count && l->queues_count > 0;
            free(l);
            if (!more)
                break;
        }
    }
    return rc;
}

int cmqctl_meta_main(int argc, char **argv, const char *endpoint)
{
    static const struct option opts[] = {
        {"endpoint", required_argument, NULL, 'e'},
        {"format", required_argument, NULL, 'f'},
        {"timeout-ms", required_argument, NULL, 't'},
        {"account", required_argument, NULL, 'a'},
        {"appid", required_argument, NULL, 'a'},
        {"name", required_argument, NULL, 'n'},
        {"restricted", no_argument, NULL, 'r'},
        {"id", required_argument, NULL, 'i'},
        {"search", required_argument, NULL, 's'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct ctx c = {.endpoint = endpoint, .timeout_ms = 3000};
    uint64_t appid = 0, id = 0;
    const char *name = NULL, *search = NULL;
    int restricted = 0, o;
    optind = 1;
    while ((o = getopt_long(argc, argv, "e:f:t:a:n:ri:s:h", opts, NULL)) != -1) {
        switch (o) {
        case 'e': c.endpoint = optarg; break;
        case 'f':
            if (strcmp(optarg, "env") == 0)
                c.env = 1;
            else if (strcmp(optarg, "text") != 0) {
                fprintf(stderr, "cmqctl: --format is text or env\n");
                return 2;
            }
            break;
        case 't': c.timeout_ms = atoi(optarg); break;
        case 'a':
            if (parse_u64(optarg, &appid) != 0 || appid == 0) {
                fprintf(stderr, "cmqctl: --account/--appid takes a positive number\n");
                return 2;
            }
            break;
        case 'n': name = optarg; break;
        case 'r': restricted = 1; break;
        case 'i':
            if (parse_u64(optarg, &id) != 0) {
                fprintf(stderr, "cmqctl: --id takes a number\n");
                return 2;
            }
            break;
        case 's': search = optarg; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (c.timeout_ms <= 0) {
        fprintf(stderr, "cmqctl: --timeout-ms must be > 0\n");
        return 2;
    }
    const char *cmd = argv[0];
    int n = argc - optind;
    char **a = argv + optind;
    char ep_buf[256];
    if (!c.endpoint)
        c.endpoint = endpoint_default(ep_buf, sizeof ep_buf);
    int is_known = !strcmp(cmd, "account") || !strcmp(cmd, "key") || !strcmp(cmd, "acl") ||
                   !strcmp(cmd, "nodes") || !strcmp(cmd, "partitions") ||
                   !strcmp(cmd, "queue") || !strcmp(cmd, "topic");
    if (!is_known) {
        fprintf(stderr, "cmqctl: unknown command '%s'\n", cmd);
        usage(stderr);
        return 2;
    }
    if ((n == 0 && strcmp(cmd, "nodes") && strcmp(cmd, "partitions"))) {
        usage(stderr);
        return 2;
    }
    c.zctx = zmq_ctx_new();
    int rc;
    if (!strcmp(cmd, "account"))
        rc = cmd_account(&c, n, a, appid, name);
    else if (!strcmp(cmd, "key"))
        rc = cmd_key(&c, n, a, appid, restricted);
    else if (!strcmp(cmd, "acl"))
        rc = cmd_acl(&c, n, a, id);
    else if (!strcmp(cmd, "nodes"))
        rc = n == 0 || (n == 1 && !strcmp(a[0], "list")) ? cmd_nodes(&c) : (usage(stderr), 2);
    else if (!strcmp(cmd, "partitions"))
        rc = n == 0 || (n == 1 && !strcmp(a[0], "list")) ? cmd_partitions(&c) : (usage(stderr), 2);
    else
        rc = cmd_ns_list(&c, !strcmp(cmd, "topic"), n, a, appid, search);
    zmq_ctx_term(c.zctx);
    return rc;
}
