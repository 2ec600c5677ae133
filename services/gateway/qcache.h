/* qcache.h: the gateway's cache of queue metadata (QueueInfo: partition,
 * num_id, attributes) for the message actions, so a send does not cost a
 * metadata round trip.  Direct-mapped by a hash of (appid, name): memory is
 * fixed at creation.  Entries expire after a TTL; metadata's queue events and
 * this gateway's own create/set/delete drop them sooner. */
#ifndef CMQ_GATEWAY_QCACHE_H
#define CMQ_GATEWAY_QCACHE_H

#include "metadata.pb.h"

#include <stddef.h>
#include <stdint.h>

struct qcache;

struct qcache *qcache_new(size_t slots, uint64_t ttl_ms);
void qcache_free(struct qcache *qc);
/* A fresh copy into *out; returns 0 on a hit, -1 on a miss. */
int qcache_get(struct qcache *qc, uint64_t appid, const char *name, uint64_t now_ms,
               cmq_QueueInfo *out);
/* Stores a copy of `qi` (keyed by qi->appid and qi->name). */
void qcache_put(struct qcache *qc, const cmq_QueueInfo *qi, uint64_t now_ms);
void qcache_forget(struct qcache *qc, uint64_t appid, const char *name);

#endif
