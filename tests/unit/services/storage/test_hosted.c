/* test_hosted.c: the node's records and the answers every module gives the
 * same way (services/storage/hosted.c): lookups, and a failed state machine
 * latched once with its first status. */
#include "hosted.h"

#include "log.h"
#include "status.h"

#include <criterion/criterion.h>
#include <stdlib.h>

static void t_setup(void)
{
    log_init("test", CMQ_LOG_ERROR);
}

TestSuite(hosted, .init = t_setup);

Test(hosted, lookups_find_what_the_node_holds)
{
    static struct node n; /* large: off the stack */
    struct hosted a = {.id = 3, .n = &n}, b = {.id = 70, .n = &n};
    n.parts[0] = &a;
    n.parts[1] = &b;
    n.n_parts = 2;
    cr_assert_eq(hosted_by_id(&n, 70), &b);
    cr_assert_eq(hosted_by_id(&n, 3), &a);
    cr_assert_null(hosted_by_id(&n, 4));
    n.peers[0].raft_id = 11;
    n.peers[1].raft_id = 12;
    n.n_peers = 2;
    cr_assert_eq(peer_by_id(&n, 12), &n.peers[1]);
    cr_assert_null(peer_by_id(&n, 13));
}

Test(hosted, a_failure_is_latched_with_its_first_status)
{
    static struct node n;
    struct hosted h = {.id = 5, .n = &n}; /* no partition open: nothing to step aside */
    cr_assert_not(hosted_serves(&h));
    hosted_failed(&h, CMQ_ECORRUPT);
    cr_assert_eq(h.sm_status, CMQ_ECORRUPT);
    cr_assert_gt(h.failed_at_ms, 0);
    hosted_failed(&h, CMQ_EIO);
    cr_assert_eq(h.sm_status, CMQ_ECORRUPT, "the first cause stays");
    struct hosted z = {.id = 6, .n = &n};
    hosted_failed(&z, 0);
    cr_assert_eq(z.sm_status, CMQ_EINTERNAL, "a failure is never status 0");
}
