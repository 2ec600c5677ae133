/* push.h: HTTP pushes to topic subscription endpoints for storage nodes
 * (push.c, proto/push.proto). */
#ifndef CMQ_GATEWAY_PUSH_H
#define CMQ_GATEWAY_PUSH_H

#include "gateway_internal.h"

#include "rpc.h"

/* Handles a PUSH_MSG_HTTP request on the gateway's rpc server: performs the
 * POST and answers later with a PushReply (the call is kept until then). */
void push_handle(struct gateway *gw, struct rpc_call *call);
/* Cancels pushes in flight and frees the pusher of `gw`'s loop (before the
 * loop is destroyed). */
void push_close(struct gateway *gw);

#endif
