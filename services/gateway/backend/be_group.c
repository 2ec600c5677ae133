/* be_group.c: the coalescing table's bookkeeping (see be_group.h). */
#include "be_group.h"

#include <stdlib.h>

static void take_out(struct be_groups *t, const struct be_group *g)
{
    for (int i = 0; i < t->n; i++)
        if (t->open[i] == g) {
            t->open[i] = t->open[--t->n];
            return;
        }
}

struct be_group *be_groups_find(struct be_groups *t, uint32_t type, uint64_t queue_num,
                                uint32_t msgs, size_t bytes, struct be_group **closed)
{
    *closed = NULL;
    for (int i = 0; i < t->n; i++) {
        struct be_group *g = t->open[i];
        if (g->queue_num != queue_num || g->type != type)
            continue;
        if (g->msgs + msgs > CMQ_BATCH_MAX || g->bytes + bytes > CMQ_BATCH_BYTES_MAX) {
            take_out(t, g);
            *closed = g; /* full for this one: goes now, a new group starts */
            return NULL;
        }
        return g;
    }
    return NULL;
}

struct be_group *be_groups_open(struct be_groups *t, uint32_t type, uint64_t queue_num,
                                uint32_t partition)
{
    if (t->n == BE_GROUPS_MAX)
        return NULL;
    struct be_group *g = calloc(1, sizeof *g);
    if (!g)
        return NULL;
    g->type = type;
    g->queue_num = queue_num;
    g->partition = partition;
    t->open[t->n++] = g;
    return g;
}

int be_group_add(struct be_groups *t, struct be_group *g, void *member, uint32_t msgs, size_t bytes)
{
    g->members[g->n] = member;
    g->first[g->n] = (uint8_t)g->msgs;
    g->count[g->n] = (uint8_t)msgs;
    g->n++;
    g->msgs += msgs;
    g->bytes += bytes;
    if (g->msgs >= CMQ_BATCH_MAX || g->n == CMQ_BATCH_MAX) {
        take_out(t, g);
        return 1;
    }
    return 0;
}

struct be_group *be_groups_pop(struct be_groups *t)
{
    return t->n > 0 ? t->open[--t->n] : NULL;
}
