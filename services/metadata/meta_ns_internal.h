/* meta_ns_internal.h: what the namespace files share (not public).
 *
 * Queues and topics are two "entities" of one kind: a named row of an
 * account with an API id, a partition, a numeric id, a tombstone when
 * deleted, an account quota and change events.  One descriptor
 * (struct meta_entity) says how each is stored and which CMQ rows its
 * failures name; meta_ns.c runs create / get / set / delete / list for
 * both from it.  meta_queue.c and meta_topic.c hold what differs
 * (attributes, the dead-letter rules, what a delete takes with it);
 * meta_sub.c the subscriptions of a topic.
 */
#ifndef CMQ_META_NS_INTERNAL_H
#define CMQ_META_NS_INTERNAL_H

#include "meta_internal.h"

#include <stdbool.h>

/* An attribute's name (the API parameter), range and default. */
struct meta_range {
    const char *param;
    int64_t lo, hi, dflt;
};

/* CMQ_OK when lo <= v <= hi, else CMQ_EINVAL (PARAM_RANGE naming the param). */
int meta_range_check(const struct meta_range *r, int64_t v, struct meta_err *e);
/* An optional attribute: the given value (checked) when `has`, else `keep`. */
int meta_attr(const struct meta_range *r, bool has, int64_t v, int64_t keep, int64_t *out,
              struct meta_err *e);

/* Steps a prepared statement once and finalizes it (NULL: SQLITE_ERROR). */
int meta_exec_step(sqlite3_stmt *q);
/* One integer from `sql` with ?1 bound to key, or -1. */
int64_t meta_count_where(struct meta_store *s, const char *sql, int64_t key);

/* offset / limit of a list request, checked (PARAM_RANGE); offset_max 0 = none. */
int meta_page(const cmq_ListRequest *req, int64_t limit_max, int64_t offset_max,
              int64_t *offset, int64_t *limit, struct meta_err *e);

/* What an event and a list need of an entity's info struct. */
struct meta_brief {
    uint64_t appid, num_id;
    uint32_t partition_id;
    const char *name, *id;
};

/* Where a new entity goes, for its descriptor's insert. */
struct meta_new {
    uint64_t appid, num_id;
    uint32_t partition_id; /* 0: none yet */
    const char *name, *name_lower, *id;
    int64_t now_ms;
};

struct meta_entity {
    const char *kind;       /* "queue": tombstones, events ("queue.created") */
    const char *table;      /* "queues" */
    const char *id_col;     /* "queue_id": the API id's column */
    const char *id_prefix;  /* "queue-" */
    const char *name_param; /* "queueName" */
    const char *select;     /* "SELECT <columns> FROM queues q ..." */
    const char *alias;      /* "q": the table's alias in `select` */
    size_t quota_off;       /* offset of the per-account quota in meta_store_opts */
    cmq_MetaRow row_name_format, row_not_found, row_exists, row_quota, row_recreate;
    /* Fills the info struct from a row of `select`; *row = the table's id. */
    void (*fill)(sqlite3_stmt *q, void *info, int64_t *row);
    void (*brief)(const void *info, struct meta_brief *b);
    /* Inserts the new row (inside the transaction, after the name, reuse,
     * quota and placement checks).  `req` is the create request. */
    int (*insert)(struct meta_store *s, const void *req, const struct meta_new *n,
                  struct meta_err *e);
    /* Inside the delete's transaction, before the row goes: what goes with
     * it (NULL: nothing). */
    int (*before_delete)(struct meta_store *s, int64_t row, const void *info,
                         struct meta_err *e);
    /* Appends one (id, name) to a list reply. */
    void (*list_row)(void *list, const char *id, const char *name);
};

extern const struct meta_entity meta_queue_entity, meta_topic_entity;

/* NAME_FORMAT unless the name follows spec §5.1. */
int meta_entity_name_check(const struct meta_entity *d, const char *name, struct meta_err *e);
/* Exact-name lookup within an account (NOT_FOUND naming the entity). */
int meta_entity_find(struct meta_store *s, const struct meta_entity *d, uint64_t appid,
                     const char *name, void *info, int64_t *row, struct meta_err *e);
int meta_entity_by_row(struct meta_store *s, const struct meta_entity *d, int64_t row,
                       void *info, struct meta_err *e);
/* Queues "<kind>.<what>" for the open transaction. */
void meta_entity_event(struct meta_store *s, const struct meta_entity *d, const char *what,
                       const void *info);
/* The create after the caller checked the name and attributes: a random
 * id, then in one transaction the account, a free name (any case), the
 * reuse wait, the quota, a partition, a numeric id, the insert; fills `out`
 * and emits "<kind>.created". */
int meta_entity_create(struct meta_store *s, const struct meta_entity *d, uint64_t appid,
                       const char *name, const void *req, void *out, struct meta_err *e);
/* The update of an existing entity: finds it, calls `update` (which reads
 * `cur` and writes the row), reloads `out`, emits "<kind>.updated". */
typedef int (*meta_update_fn)(struct meta_store *s, const void *req, const void *cur,
                              int64_t row, struct meta_err *e);
int meta_entity_set(struct meta_store *s, const struct meta_entity *d, uint64_t appid,
                    const char *name, const void *req, meta_update_fn update, void *cur,
                    void *out, struct meta_err *e);
/* Deletes it (and what before_delete takes with it), leaves a tombstone,
 * emits "<kind>.deleted"; `out` is the entity as it was. */
int meta_entity_delete(struct meta_store *s, const struct meta_entity *d, uint64_t appid,
                       const char *name, void *out, struct meta_err *e);
/* A page of the account's entities whose name contains the search word
 * (any case), in creation order; *total counts them all. */
int meta_entity_list(struct meta_store *s, const struct meta_entity *d,
                     const cmq_ListRequest *req, uint32_t *total, void *list,
                     struct meta_err *e);

/* meta_sub.c: "subscription.deleted" for every subscription of a topic
 * (inside the topic delete's transaction; the rows go with the topic). */
int meta_sub_events_of_topic(struct meta_store *s, int64_t topic_row, struct meta_err *e);

#endif
