/* test_be_group.c: services/gateway/backend/be_group.c, the coalescing
 * table: grouping per (type, queue), the 16-message and 1 MiB bounds, and
 * each member's slice of the reply. */
#include <criterion/criterion.h>
#include <stdlib.h>

#include "be_group.h"

static int tok[64];

Test(be_group, members_of_one_queue_share_a_group)
{
    struct be_groups t = {0};
    struct be_group *closed;
    cr_assert_null(be_groups_find(&t, 1, 7, 1, 10, &closed));
    cr_assert_null(closed);
    struct be_group *g = be_groups_open(&t, 1, 7, 3);
    cr_assert_not_null(g);
    cr_assert_eq(be_group_add(&t, g, &tok[0], 1, 10), 0);
    cr_assert_eq(be_groups_find(&t, 1, 7, 3, 30, &closed), g);
    cr_assert_eq(be_group_add(&t, g, &tok[1], 3, 30), 0);
    cr_assert_eq(g->n, 2);
    cr_assert_eq(g->msgs, 4);
    cr_assert_eq(g->bytes, 40);
    cr_assert_eq(g->first[1], 1);
    cr_assert_eq(g->count[1], 3);
    cr_assert_eq(g->partition, 3);
    /* another queue, or deletes to the same queue: another group */
    cr_assert_null(be_groups_find(&t, 1, 8, 1, 1, &closed));
    cr_assert_null(be_groups_find(&t, 2, 7, 1, 1, &closed));
    cr_assert_eq(be_groups_pop(&t), g);
    cr_assert_null(be_groups_pop(&t));
    free(g);
}

Test(be_group, sixteen_messages_close_a_group)
{
    struct be_groups t = {0};
    struct be_group *g = be_groups_open(&t, 1, 7, 1);
    for (int i = 0; i < 15; i++)
        cr_assert_eq(be_group_add(&t, g, &tok[i], 1, 1), 0);
    cr_assert_eq(be_group_add(&t, g, &tok[15], 1, 1), 1); /* full: send now */
    cr_assert_eq(t.n, 0);
    cr_assert_eq(g->msgs, CMQ_BATCH_MAX);
    free(g);
}

Test(be_group, a_member_that_does_not_fit_closes_the_group)
{
    struct be_groups t = {0};
    struct be_group *closed;
    struct be_group *g = be_groups_open(&t, 1, 7, 1);
    be_group_add(&t, g, &tok[0], 10, 100);
    cr_assert_null(be_groups_find(&t, 1, 7, 10, 100, &closed)); /* 20 > 16 messages */
    cr_assert_eq(closed, g);
    cr_assert_eq(t.n, 0);
    free(g);
    g = be_groups_open(&t, 1, 7, 1);
    be_group_add(&t, g, &tok[0], 1, CMQ_BATCH_BYTES_MAX - 10);
    cr_assert_null(be_groups_find(&t, 1, 7, 1, 11, &closed)); /* over 1 MiB */
    cr_assert_eq(closed, g);
    free(g);
}

Test(be_group, the_table_is_bounded)
{
    struct be_groups t = {0};
    for (int i = 0; i < BE_GROUPS_MAX; i++)
        cr_assert_not_null(be_groups_open(&t, 1, (uint64_t)i + 1, 1));
    cr_assert_null(be_groups_open(&t, 1, 999, 1));
    struct be_group *g;
    while ((g = be_groups_pop(&t)))
        free(g);
}
