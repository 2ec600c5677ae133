/* api_internal.h: shared by the HTTP front end's source files
 * (http_server.c: pipeline and dispatch; api_queue.c, ...: one file per group
 * of actions), which call the gateway's back end (backend/backend.h).
 *
 * Every api_reply_* / api_respond_json answers the request (HTTP 200 with the
 * spec's envelope); after it, the handler must not answer again. */
#ifndef CMQ_GATEWAY_API_INTERNAL_H
#define CMQ_GATEWAY_API_INTERNAL_H

#include "call.h"
#include "keycache.h"

#include "action.h"
#include "cmq_error.h"
#include "json.h"
#include "params.h"
#include "cmq_limits.h"

#include <pb.h>
#include <stdbool.h>

#define API_JSON_MAX (4u << 20)
#define API_META_TIMEOUT_MS 3000

/* One loop's HTTP front end (http_server.c). */
struct api {
    struct gateway *gw;
    uint64_t seq;
    unsigned boot_tag;
};

/* Per-request state (gw_call_data of an API call). */
struct api_call {
    struct api *api;
    struct params *params;
    enum cmq_action action;
    char request_id[48];
    char method[8];
    char path[32];
    char host[256];
    char host_alt[264];
    unsigned port;
    struct key_entry key;
    uint64_t start_ns;        /* when the request arrived (metrics) */
    /* message actions (api_msg.c) */
    char queue_name[130];
    struct api_queue *queue;  /* malloc'd by api_msg.c, freed with the call */
    struct api_pub *pub;      /* malloc'd by api_publish.c, freed with the call */
};

/* Finishes `j` and sends it (200, application/json). */
void api_respond_json(struct gw_call *c, struct json *j);
/* Answers error row `e` ("%s" replaced by `arg`, may be NULL); CMQERR_OK gives
 * the bare success envelope. */
void api_reply_err(struct gw_call *c, enum cmq_err e, const char *arg);
void api_reply_fault(struct gw_call *c, const struct cmq_fault *f);
/* Answers a back-end fault (backend/be_status.h). */
struct be_fault;
void api_reply_be_fault(struct gw_call *c, const struct be_fault *f);
/* Answers a failed back-end reply: the exact code metadata named in its
 * MetaError, else the status's default row. */
void api_reply_backend_error(struct gw_call *c, int status, const struct rpc_msg *msg);
/* A success object with the envelope written; add members, then api_finish_ok. */
struct json *api_begin_ok(struct gw_call *c);
/* The same with a JSON size bound of `cap` bytes instead of API_JSON_MAX. */
struct json *api_begin_ok_cap(struct gw_call *c, size_t cap);
void api_finish_ok(struct gw_call *c, struct json *j);
/* Sends a request to metadata; `fn` runs with the reply and the request type
 * as its tag (or the answer is an error if the request could not be sent). */
void api_meta_call(struct gw_call *c, uint32_t type, const pb_msgdesc_t *fields, const void *msg,
                   gw_reply_fn *fn);
/* Required string parameter into `out` (cap bytes); -1 after answering. */
int api_need_str(struct gw_call *c, const char *key, char *out, size_t cap);
/* Optional integer: 1 (set), 0 (absent), -1 (answered a type error). */
int api_opt_int(struct gw_call *c, const char *key, int64_t *out);
/* searchWord / offset / limit of the list actions (§6.2, §7.3, §8.2) into
 * `r`; empty values count as absent.  0, or -1 after answering.  Ranges and
 * clamping are metadata's. */
struct _cmq_ListRequest;
int api_list_params(struct gw_call *c, struct _cmq_ListRequest *r);

/* api_msg.c: queue actions that touch storage (§6.3, §6.6-6.12) and the
 * storage side of CreateQueue / SetQueueAttributes / DeleteQueue. */
void api_do_queue_storage_action(struct gw_call *c);
/* After metadata answered a create/set/delete with `qi` (decoded QueueInfo,
 * borrowed): applies it on storage, then answers with `ok` (the success
 * response the metadata step built, owned: freed here). */
struct json;
void api_storage_after_meta(struct gw_call *c, uint32_t meta_type, const void *qi, struct json *ok);
void api_msg_cleanup(struct api_call *a);
/* The loop an api belongs to. */
struct gateway *api_gateway(struct api *api);
/* The msgBody parameter (`single`) or the msgBody.n list of a send or publish
 * action into `bodies` (borrowed from the call's parameters), checked: none
 * empty, none over `max_msg_size`, all of them within CMQ_BATCH_BYTES_MAX
 * (each with its own CMQ error).  Returns 0, or -1 after answering the call. */
int api_read_bodies(struct gw_call *c, bool single, int64_t max_msg_size,
                    struct param_value bodies[CMQ_BATCH_MAX], size_t *n, size_t *total);

/* api_route.c: QueryQueueRoute / QueryTopicRoute (the TCP SDK's name server) */
void api_do_query_route(struct gw_call *c);

/* api_trace.c: DescribeMessageTrace (extension) and client addresses.
 * api_trace_request fills a cmq_TraceRequest (msg_id 0: not this queue's,
 * answer an empty trace) or answers a parameter error and returns -1;
 * api_trace_answer writes the events of a cmq_TraceReply (NULL: none). */
void api_client_addr(struct gw_call *c, char *out, size_t cap);
int api_trace_request(struct gw_call *c, uint64_t queue_num, uint32_t partition, void *req);
void api_trace_answer(struct gw_call *c, uint64_t msg_id, const void *reply);

/* api_queue.c */
struct _cmq_QueueInfo;
/* "deadLetterPolicy": its JSON text with the DLQ's id, when the queue has one. */
void api_write_dead_letter_policy(struct json *j, const struct _cmq_QueueInfo *qi);
void api_do_create_or_set_queue(struct gw_call *c, int set);
void api_do_delete_queue(struct gw_call *c);
void api_do_list_queue(struct gw_call *c);

/* api_topic.c */
void api_do_create_topic(struct gw_call *c);
void api_do_set_topic(struct gw_call *c);
void api_do_get_topic(struct gw_call *c);
void api_do_delete_topic(struct gw_call *c);
void api_do_list_topic(struct gw_call *c);
void api_do_subscribe(struct gw_call *c);
void api_do_set_subscription(struct gw_call *c);
void api_do_get_subscription(struct gw_call *c);
void api_do_unsubscribe(struct gw_call *c);
void api_do_clear_filter_tags(struct gw_call *c);
void api_do_list_subscriptions(struct gw_call *c);

#endif
