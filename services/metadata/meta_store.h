/* meta_store.h: the metadata of the cluster, in one SQLite database.
 *
 * The store owns the database file: accounts and their keys (secrets
 * encrypted with the master key, meta_secret.h), ACL grants, queues, topics
 * and subscriptions with every attribute of the CMQ API spec (§5-§8, §11),
 * storage nodes, partitions and their replicas.  It validates every request
 * against the spec's rules and answers a status plus a meta_err naming, where
 * the status alone does not say it, the row of the gateway's CMQ error table
 * the spec wants (a MetaRow of metadata.proto; never a CMQ code or text).  Each mutation runs in one transaction:
 * either all of it is on disk (synchronous=FULL) or none of it is.
 *
 * It does not talk to the network and does not know the envelope: the
 * service (meta_service.c) decodes requests and calls in here.  Requests and
 * replies are the nanopb structs of proto/metadata.proto, borrowed in and
 * filled out (the caller owns every struct it passes; FT_POINTER lists in
 * replies are malloc'd here and freed by the caller with pb_release).
 *
 * Time comes from opts.now_ms (a seam for tests); randomness for ids and
 * secrets from OpenSSL.  Single-threaded: one store per thread.
 */
#ifndef CMQ_META_STORE_H
#define CMQ_META_STORE_H

#include "cmq_limits.h"
#include "metadata.pb.h"

#include <stddef.h>
#include <stdint.h>

/* The answer to a failed request: a status from status.h, the CMQ code and
 * module code of spec §12 that the gateway should return (0 when the status
 * alone decides, e.g. CMQ_EIO -> 6000), and a reason for humans. */
struct meta_err {
    int status;
    cmq_MetaRow row; /* the gateway's CMQ row (metadata.proto); DEFAULT: from status */
    char reason[200];
    char param[32];
};

/* Called after a mutation has committed, once per change (borrowed). */
typedef void (*meta_event_fn)(void *arg, const cmq_MetaEvent *ev);

struct meta_store_opts {
    const char *path;                 /* database file (created if missing) */
    const uint8_t *master_key;        /* 32 bytes, borrowed during open only */
    /* Rotation: when the database is sealed with this (32 bytes, borrowed
     * during open; NULL: none) rather than master_key, every secret is
     * re-sealed with master_key in one transaction at open. */
    const uint8_t *previous_master_key;
    uint64_t (*now_ms)(void *arg);    /* NULL: clock_wall_ms */
    void *clock_arg;
    meta_event_fn on_event;           /* may be NULL */
    void *event_arg;
    /* quotas and rules; 0 takes the default noted */
    int64_t queues_per_account;       /* 1000 */
    int64_t topics_per_account;       /* 1000 */
    int64_t subs_per_topic;           /* 100 */
    int64_t name_reuse_wait_ms;       /* 10000; -1 disables the waiting period */
    int delete_topic_with_subs;       /* 0 (spec): DeleteTopic refuses while subscriptions exist */
    /* placement */
    int64_t node_timeout_ms;          /* 10000: a node missing heartbeats this long is down */
    int replicas;                     /* 3 */
    int partitions_per_node;          /* 2: partitions led per up node */
};

struct meta_store;

/* Opens (creating and migrating as needed) the database.  Fails with
 * CMQ_EAUTH when the master key is not the one the existing secrets were
 * encrypted with, CMQ_EUNSUPPORTED when the schema is newer than this binary,
 * CMQ_EIO for SQLite errors.  err->reason says which. */
int meta_store_open(const struct meta_store_opts *opts, struct meta_store **out,
                    struct meta_err *err);
void meta_store_close(struct meta_store *s); /* NULL allowed */

/* PRAGMA user_version after migrations; the version this binary writes. */
int meta_store_schema_version(struct meta_store *s);
#define META_SCHEMA_VERSION 4
/* The change counter: incremented by every committed mutation. */
uint64_t meta_store_version(struct meta_store *s);
/* The value of the change counter at the last change of nodes or partitions
 * (NodeReply / PartitionMap map_version): refetch the map when it moves. */
uint64_t meta_store_placement_version(struct meta_store *s);

/* ---- accounts and keys ---- */
int meta_account_create(struct meta_store *s, const cmq_AccountCreateRequest *req,
                        cmq_Account *out, struct meta_err *err);
int meta_account_list(struct meta_store *s, const cmq_ListRequest *req, cmq_AccountList *out,
                      struct meta_err *err);
/* out->secret_key holds the new secret: the only time it is returned besides
 * meta_key_get_secret. */
int meta_key_create(struct meta_store *s, const cmq_KeyCreateRequest *req, cmq_Key *out,
                    struct meta_err *err);
int meta_key_set_enabled(struct meta_store *s, const char *secret_id, int enabled, cmq_Key *out,
                         struct meta_err *err);
/* For signature verification.  Unknown -> ENOTFOUND (4100/10270); disabled ->
 * EAUTH (4100/10080) without the secret; not starting with AKID -> EINVAL
 * (4000/10450). */
int meta_key_get_secret(struct meta_store *s, const char *secret_id, cmq_Key *out,
                        struct meta_err *err);
int meta_key_list(struct meta_store *s, uint64_t appid, cmq_KeyList *out, struct meta_err *err);

/* ---- ACL ---- */
int meta_acl_grant(struct meta_store *s, const cmq_AclEntry *req, cmq_AclEntry *out,
                   struct meta_err *err);
int meta_acl_revoke(struct meta_store *s, const cmq_AclEntry *req, cmq_AclEntry *out,
                    struct meta_err *err);
int meta_acl_list(struct meta_store *s, const char *secret_id, cmq_AclList *out,
                  struct meta_err *err);
/* CMQ_OK with out->allowed set, or an error for an unknown / disabled key.
 * A denial is CMQ_OK with allowed=false and err filled with 4000/10461 so the
 * caller can answer it directly. */
int meta_acl_check(struct meta_store *s, const cmq_AclCheckRequest *req, cmq_AclCheckReply *out,
                   struct meta_err *err);

/* ---- namespace ---- */
int meta_queue_create(struct meta_store *s, const cmq_QueueRequest *req, cmq_QueueInfo *out,
                      struct meta_err *err);
int meta_queue_get(struct meta_store *s, const cmq_NameRequest *req, cmq_QueueInfo *out,
                   struct meta_err *err);
int meta_queue_set(struct meta_store *s, const cmq_QueueRequest *req, cmq_QueueInfo *out,
                   struct meta_err *err);
int meta_queue_delete(struct meta_store *s, const cmq_NameRequest *req, cmq_QueueInfo *out,
                      struct meta_err *err);
int meta_queue_list(struct meta_store *s, const cmq_ListRequest *req, cmq_QueueList *out,
                    struct meta_err *err);

int meta_topic_create(struct meta_store *s, const cmq_TopicRequest *req, cmq_TopicInfo *out,
                      struct meta_err *err);
int meta_topic_get(struct meta_store *s, const cmq_NameRequest *req, cmq_TopicInfo *out,
                   struct meta_err *err);
int meta_topic_set(struct meta_store *s, const cmq_TopicRequest *req, cmq_TopicInfo *out,
                   struct meta_err *err);
int meta_topic_delete(struct meta_store *s, const cmq_NameRequest *req, cmq_TopicInfo *out,
                      struct meta_err *err);
int meta_topic_list(struct meta_store *s, const cmq_ListRequest *req, cmq_TopicList *out,
                    struct meta_err *err);

int meta_sub_create(struct meta_store *s, const cmq_SubRequest *req, cmq_SubInfo *out,
                    struct meta_err *err);
int meta_sub_get(struct meta_store *s, const cmq_SubNameRequest *req, cmq_SubInfo *out,
                 struct meta_err *err);
int meta_sub_set(struct meta_store *s, const cmq_SubRequest *req, cmq_SubInfo *out,
                 struct meta_err *err);
int meta_sub_delete(struct meta_store *s, const cmq_SubNameRequest *req, cmq_SubInfo *out,
                    struct meta_err *err);
int meta_sub_clear_tags(struct meta_store *s, const cmq_SubNameRequest *req, cmq_SubInfo *out,
                        struct meta_err *err);
/* out->subscriptions is malloc'd (pb_release(cmq_SubList_fields, out)). */
int meta_sub_list(struct meta_store *s, const cmq_ListRequest *req, cmq_SubList *out,
                  struct meta_err *err);

/* ---- placement ---- */
/* Register or re-register a node (marks it up), then creates partitions while
 * fewer than up_nodes * partitions_per_node exist and at least `replicas`
 * nodes are up, and places queues and topics that have no partition yet.
 * out->partitions is malloc'd (pb_release(cmq_NodeReply_fields, out)). */
int meta_node_register(struct meta_store *s, const cmq_NodeRequest *req, cmq_NodeReply *out,
                       struct meta_err *err);
/* Heartbeat: marks the node up and records the leaderships it reports (a
 * report with a term below the stored one is ignored).  Unknown node ->
 * ENOTFOUND (the node should register). */
int meta_node_heartbeat(struct meta_store *s, const cmq_NodeRequest *req, cmq_NodeReply *out,
                        struct meta_err *err);
int meta_node_list(struct meta_store *s, cmq_NodeList *out, struct meta_err *err);
/* Marks down every up node whose last heartbeat is older than node_timeout_ms
 * and forgets the leaderships it held.  Returns how many were marked (>= 0),
 * or a negative status. */
int meta_nodes_check(struct meta_store *s);
/* out->partitions is malloc'd (pb_release(cmq_PartitionMap_fields, out)). */
int meta_partition_map(struct meta_store *s, cmq_PartitionMap *out, struct meta_err *err);

/* ---- limits (spec §6-§8, §11): the API's, from common/base/cmq_limits.h ---- */
#define META_NAME_MAX CMQ_NAME_LEN_MAX
#define META_QUEUES_PER_ACCOUNT_DEFAULT CMQ_QUEUES_PER_ACCOUNT_DEFAULT
#define META_TOPICS_PER_ACCOUNT_DEFAULT CMQ_TOPICS_PER_ACCOUNT_DEFAULT
#define META_SUBS_PER_TOPIC_DEFAULT CMQ_SUBS_PER_TOPIC_DEFAULT
#define META_DLQ_SOURCES_MAX CMQ_DLQ_SOURCES_MAX
#define META_TAGS_MAX CMQ_TAGS_MAX
#define META_TAG_LEN_MAX CMQ_TAG_CHARS_MAX
#define META_BINDING_KEYS_MAX CMQ_BINDING_KEYS_MAX
#define META_BINDING_KEY_LEN_MAX CMQ_ROUTING_KEY_BYTES_MAX
#define META_BINDING_KEY_DOTS_MAX CMQ_ROUTING_KEY_DOTS_MAX
#define META_ENDPOINT_LEN_MAX CMQ_ENDPOINT_CHARS_MAX
#define META_LIST_LIMIT_DEFAULT CMQ_LIST_LIMIT_DEFAULT
#define META_LIST_LIMIT_MAX CMQ_LIST_LIMIT_MAX         /* ListQueue / ListTopic (clamped) */
#define META_SUB_LIST_LIMIT_MAX CMQ_SUB_LIST_LIMIT_MAX /* ListSubscriptionByTopic (clamped) */
#define META_SUB_LIST_OFFSET_MAX CMQ_SUB_LIST_OFFSET_MAX
#define META_PARTITIONS_MAX 1024
/* NodeReply / PartitionMap.partitions and SubList.subscriptions are FT_POINTER
 * lists whose counts are nanopb's 16-bit pb_size_t (proto/metadata.options). */
_Static_assert(META_PARTITIONS_MAX <= 65535 && META_SUB_LIST_LIMIT_MAX <= 65535,
               "pointer-list bounds fit pb_size_t");
#define META_TOPIC_RETENTION_S CMQ_TOPIC_RETENTION_S

#endif
