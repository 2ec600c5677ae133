/* cmqctl_trace.c: `cmqctl trace --endpoint EP[,EP...] --msg-id ID [--queue-id N |
 * --topic-id N]` (a topic message's: published, then per subscription)
 *
 * Asks the storage nodes (their rpc endpoints; any replica of the message's
 * partition answers) for every state change of one message
 * (STORAGE_MSG_TRACE, docs/queue-state-machine.md §9) and prints one
 * key=value line per event, oldest first.  The same data as the gateway's
 * DescribeMessageTrace action, without the account check: an operator tool.
 */
#include "cmqctl_trace.h"

#include "rpc.h"
#include "status.h"
#include "storage.pb.h"

#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

void cmqctl_trace_usage(FILE *f)
{
    fprintf(f, "  trace --endpoint EP[,EP...] --msg-id ID [--queue-id N | --topic-id N]\n"
               "        [--timeout-ms N]"
               "                                           every state change of one message,\n"
               "                                           from the storage nodes (rpc endpoints)\n");
}

static const char *event_name(uint32_t e)
{
    static const char *const names[] = {"?", "sent", "delayed", "visible", "delivered",
                                        "lease_expired", "deleted", "rewound", "dead_lettered",
                                        "expired"};
    static const char *const topic_names[] = {"published", "delivered", "attempt_failed",
                                              "dropped", "dead_lettered"};
    if (e >= 20 && e < 25)
        return topic_names[e - 20];
    return e < sizeof names / sizeof names[0] ? names[e] : "?";
}

int cmqctl_trace_main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"endpoint", required_argument, NULL, 'e'}, {"msg-id", required_argument, NULL, 'm'},
        {"queue-id", required_argument, NULL, 'q'}, {"timeout-ms", required_argument, NULL, 't'},
        {"topic-id", required_argument, NULL, 'T'},
        {"help", no_argument, NULL, 'h'},           {NULL, 0, NULL, 0},
    };
    char *eps = NULL;
    cmq_TraceRequest req = cmq_TraceRequest_init_zero;
    int timeout_ms = 2000, o;
    optind = 1;
    while ((o = getopt_long(argc, argv, "e:m:q:t:T:h", opts, NULL)) != -1) {
        switch (o) {
        case 'e': eps = optarg; break;
        case 'm': req.msg_id = strtoull(optarg, NULL, 10); break;
        case 'q': req.queue_id = strtoull(optarg, NULL, 10); break;
        case 't': timeout_ms = atoi(optarg); break;
        case 'T': req.topic_id = strtoull(optarg, NULL, 10); break;
        case 'h': cmqctl_trace_usage(stdout); return 0;
        default: cmqctl_trace_usage(stderr); return 2;
        }
    }
    if (!eps || !req.msg_id || timeout_ms <= 0) {
        fprintf(stderr, "cmqctl trace: --endpoint and --msg-id are required\n");
        return 2;
    }
    uint8_t *body;
    size_t len;
    if (rpc_pb_encode(cmq_TraceRequest_fields, &req, &body, &len) != CMQ_OK)
        return 1;
    void *zctx = zmq_ctx_new();
    int rc = 1, st = CMQ_EUNAVAIL;
    char *save = NULL;
    for (char *ep = strtok_r(eps, ",", &save); ep && rc; ep = strtok_r(NULL, ",", &save)) {
        struct rpc_sync_result res;
        struct rpc_opts ro = {.timeout_ms = timeout_ms, .attempts = 1, .peer = 0};
        const char *e = ep;
        st = rpc_call_sync(zctx, &e, 1, cmq_StorageMsgType_STORAGE_MSG_TRACE, body, len, &ro, &res);
        if (st == CMQ_OK) {
            cmq_TraceReply *r = calloc(1, sizeof *r);
            if (r && rpc_pb_decode(cmq_TraceReply_fields, r, res.body, res.body_len) == CMQ_OK) {
                for (pb_size_t i = 0; i < r->events_count; i++) {
                    const cmq_TraceEvent *ev = &r->events[i];
                    printf("msg_id=%llu event=%s time_ms=%llu index=%llu queue_id=%llu",
                           (unsigned long long)req.msg_id, event_name(ev->event),
                           (unsigned long long)ev->time_ms, (unsigned long long)ev->index,
                           (unsigned long long)ev->queue_id);
                    if (ev->receipt_handle)
                        printf(" receipt_handle=%llu", (unsigned long long)ev->receipt_handle);
                    if (ev->due_ms)
                        printf(" due_ms=%llu", (unsigned long long)ev->due_ms);
                    if (ev->addr[0])
                        printf(" addr=%s", ev->addr);
                    if (ev->dlq_queue_id)
                        printf(" dlq_queue_id=%llu", (unsigned long long)ev->dlq_queue_id);
                    if (ev->sub_id[0])
                        printf(" sub_id=%s attempt=%u http_status=%u", ev->sub_id, ev->attempt,
                               ev->http_status);
                    if (ev->target_msg_id)
                        printf(" target_msg_id=%llu", (unsigned long long)ev->target_msg_id);
                    if (ev->tags[0])
                        printf(" tags=%s", ev->tags);
                    if (ev->routing_key[0])
                        printf(" routing_key=%s", ev->routing_key);
                    if (ev->event == 7)
                        printf(" rewind_ms=%llu", (unsigned long long)ev->rewind_ms);
                    printf("\n");
                }
                printf("events=%u truncated=%d endpoint=%s\n", (unsigned)r->events_count,
                       r->truncated, ep);
                rc = 0;
            } else {
                st = CMQ_ECORRUPT;
            }
            free(r);
        }
        rpc_sync_result_free(&res);
    }
    if (rc)
        printf("status=error error=%s\n", status_name(st));
    free(body);
    zmq_ctx_term(zctx);
    return rc;
}
