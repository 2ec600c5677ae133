/* call.h: one HTTP request answered asynchronously.
 *
 * h2o frees a request (its memory pool) when the client goes away or after
 * the response is sent, possibly before a back-end reply arrives.  A gw_call
 * lives outside the pool, holds a token in it whose dispose marks the call
 * `gone`, and counts the back-end requests it waits for ("holds").  It is
 * freed when it is gone and nothing holds it, so a late reply never touches
 * freed memory.
 *
 * Rule for callers: after gw_call_respond, touch the call only if you hold
 * it (h2o may dispose the request inside respond).
 */
#ifndef CMQ_GATEWAY_CALL_H
#define CMQ_GATEWAY_CALL_H

#include "gateway_internal.h"

#include <pb.h>

struct gw_call;

/* The loop serving `req` (the loop whose h2o context accepted it). */
struct gateway *gw_call_loop_of(h2o_req_t *req);

/* Starts a call for `req` with `data_size` zeroed bytes for the handler
 * (gw_call_data).  Returns NULL when out of memory. */
struct gw_call *gw_call_begin(struct gateway *gw, h2o_req_t *req, size_t data_size);
void *gw_call_data(struct gw_call *c);
/* Runs `fn(data)` just before the call's memory is freed (e.g. to free what
 * the handler allocated). */
void gw_call_set_cleanup(struct gw_call *c, void (*fn)(void *data));
struct gateway *gw_call_gateway(struct gw_call *c);
/* The request while it exists (not gone and not yet answered), else NULL. */
h2o_req_t *gw_call_req(struct gw_call *c);
int gw_call_gone(const struct gw_call *c);

void gw_call_hold(struct gw_call *c);
/* Drops a hold; frees the call when it is gone and unheld. */
void gw_call_release(struct gw_call *c);

/* Sends the response (body copied) unless the request is gone or already
 * answered. */
void gw_call_respond(struct gw_call *c, int http_status, const char *content_type,
                     const char *body, size_t len);

/* A back-end reply: status and body (borrowed for the callback), and the
 * caller's `tag`.  The call is held across the request and released after
 * the callback returns. */
typedef void gw_reply_fn(struct gw_call *c, int tag, int status, const struct rpc_msg *msg);

/* Sends `msg` (of type `fields`) as request `type` to back end `backend`,
 * holding the call until `fn` has run.  Returns CMQ_OK or a status (then fn
 * never runs). */
int gw_call_backend(struct gw_call *c, int backend, uint32_t type, const pb_msgdesc_t *fields,
                    const void *msg, const struct rpc_opts *opts, gw_reply_fn *fn, int tag);
/* The same with an encoded body (borrowed) on any client. */
int gw_call_client(struct gw_call *c, struct rpc_client *client, uint32_t type, const void *body,
                   size_t len, const struct rpc_opts *opts, gw_reply_fn *fn, int tag);
/* The peer that answered the last back-end reply of this call. */
int gw_call_last_peer(const struct gw_call *c);

#endif
