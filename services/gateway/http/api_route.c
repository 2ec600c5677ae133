/* api_route.c: QueryQueueRoute / QueryTopicRoute (cmq-tcp-protocol.md §5),
 * the HTTP "name server" the TCP SDK asks for TCP access addresses.  They
 * run through the normal API pipeline (signature §5.3 = the CMQ API's, ACL
 * for restricted keys) and answer {"code":0,"message":"","requestId":...,
 * "addr":["host:port",...]}: every gateway can serve every queue and topic,
 * so the answer is the configured tcp.advertise list, or this gateway's own
 * tcp.listen (0.0.0.0 / empty host advertised as 127.0.0.1).  The queue or
 * topic is not looked up: a missing one is reported by the TCP request
 * (4440), and the SDK needs a non-empty list whenever code is 0. */
#include "api_internal.h"

#include <stdio.h>
#include <string.h>

/* Appends the comma-separated entries of `list` to the open array; returns
 * how many. */
static int add_list(struct json *j, const char *list)
{
    int n = 0;
    while (*list) {
        while (*list == ' ' || *list == ',')
            list++;
        size_t len = strcspn(list, ", ");
        if (len) {
            json_str(j, list, len);
            n++;
        }
        list += len;
    }
    return n;
}

void api_do_query_route(struct gw_call *c)
{
    struct api_call *a = gw_call_data(c);
    const struct gateway_cfg *cfg = &gw_call_gateway(c)->cfg;
    char name[130];
    if (api_need_str(c, a->action == CMQ_ACTION_QUERY_QUEUE_ROUTE ? "queueName" : "topicName", name,
                     sizeof name))
        return;
    if (!cfg->tcp_listen[0] && !cfg->tcp_advertise[0]) {
        api_reply_err(c, CMQERR_INTERNAL, NULL); /* no TCP access here */
        return;
    }
    struct json *j = api_begin_ok(c);
    if (!j)
        return;
    json_key(j, "addr");
    json_arr_begin(j);
    if (!cfg->tcp_advertise[0] || add_list(j, cfg->tcp_advertise) == 0) {
        const char *colon = strrchr(cfg->tcp_listen, ':');
        char addr[80];
        size_t hl = colon ? (size_t)(colon - cfg->tcp_listen) : 0;
        if (hl == 0 || (hl == 7 && memcmp(cfg->tcp_listen, "0.0.0.0", 7) == 0))
            snprintf(addr, sizeof addr, "127.0.0.1%s", colon ? colon : "");
        else
            snprintf(addr, sizeof addr, "%s", cfg->tcp_listen);
        json_cstr(j, addr);
    }
    json_arr_end(j);
    api_finish_ok(c, j);
}
