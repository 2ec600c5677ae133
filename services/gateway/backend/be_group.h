/* be_group.h: the back end's coalescing table (DESIGN §3): sends (and
 * deletes) to one queue that reach the back end during one turn of the event
 * loop, grouped so each group goes to storage as ONE request (one Raft
 * entry).  A group holds at most CMQ_BATCH_MAX messages (the msgId slot bits)
 * and CMQ_BATCH_BYTES_MAX body bytes.  Pure bookkeeping: no I/O; the caller
 * (be_storage.c) sends the groups this table hands back.  The table is
 * bounded (BE_GROUPS_MAX open groups per loop). */
#ifndef CMQ_GATEWAY_BE_GROUP_H
#define CMQ_GATEWAY_BE_GROUP_H

#include "cmq_limits.h"

#include <stddef.h>
#include <stdint.h>

#define BE_GROUPS_MAX 64

struct be_group {
    uint32_t type;       /* the storage request type (send or delete) */
    uint64_t queue_num;
    uint32_t partition;
    int n;               /* members */
    uint32_t msgs;       /* messages (or handles) of all members */
    size_t bytes;        /* body bytes of all members */
    void *members[CMQ_BATCH_MAX];
    uint8_t first[CMQ_BATCH_MAX]; /* a member's slice of the reply: first, count */
    uint8_t count[CMQ_BATCH_MAX];
};

struct be_groups {
    struct be_group *open[BE_GROUPS_MAX];
    int n;
};

/* Where a member of `msgs` messages and `bytes` bytes for (type, queue)
 * goes.  Returns the open group that takes it, or NULL when a new one must
 * be opened.  A group for (type, queue) that cannot take it more is closed
 * (removed from the table) and returned in *closed: send it first. */
struct be_group *be_groups_find(struct be_groups *t, uint32_t type, uint64_t queue_num,
                                uint32_t msgs, size_t bytes, struct be_group **closed);
/* Opens a new empty group in the table (calloc'd; the caller frees it once
 * sent).  NULL when the table is full (send the open groups first) or when
 * out of memory. */
struct be_group *be_groups_open(struct be_groups *t, uint32_t type, uint64_t queue_num,
                                uint32_t partition);
/* Adds `member` with its slice.  Returns 1 when the group is now full: it
 * was closed (removed from the table) and must be sent now; else 0. */
int be_group_add(struct be_groups *t, struct be_group *g, void *member, uint32_t msgs,
                 size_t bytes);
/* Removes and returns an open group (NULL: none left): for the end of the turn. */
struct be_group *be_groups_pop(struct be_groups *t);

#endif
