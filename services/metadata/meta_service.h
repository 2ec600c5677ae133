/* meta_service.h: cmq-metadata's request handler and change publisher.
 *
 * Owns the store (meta_store.h) and a ZeroMQ PUB socket.  Each request type
 * of proto/metadata.proto (MetaMsgType) is decoded, run against the store,
 * and answered: CMQ_OK with the reply message, or the store's status with a
 * MetaError body (CMQ code, module code, reason) and the reason in the
 * envelope's error string.  Every committed change is published as two
 * frames: the event kind ("queue.created", ...) and an encoded MetaEvent.
 *
 * Does not own the ZeroMQ context, the loop or the ROUTER (svc does).
 */
#ifndef CMQ_META_SERVICE_H
#define CMQ_META_SERVICE_H

#include "meta_store.h"
#include "rpc.h"

struct meta_service;

/* Opens the store (`opts`, borrowed) and binds a PUB socket on
 * `pub_endpoint` (copied; "" = no publisher) in `zctx` (borrowed). */
int meta_service_open(void *zctx, const struct meta_store_opts *opts, const char *pub_endpoint,
                      struct meta_service **out, struct meta_err *err);
void meta_service_close(struct meta_service *m); /* NULL allowed */

/* rpc_handler_fn: answers every call at once.  arg is the meta_service. */
void meta_service_handle(struct rpc_server *srv, struct rpc_call *call, void *arg);

/* Marks down nodes that stopped heartbeating (call periodically). */
void meta_service_tick(struct meta_service *m);

/* svc_detail_fn: "schema=1 version=N events=N" */
void meta_service_detail(void *arg, char *buf, size_t len);

struct meta_store *meta_service_store(struct meta_service *m);

#endif
