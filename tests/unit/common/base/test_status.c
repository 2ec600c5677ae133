/* test_status.c: common/base/status.c, errno -> status at the file and
 * socket wrappers, and the names the logs and health lines print. */
#include "status.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

Test(status, a_full_disk_is_named_enospc_not_eio)
{
    cr_assert_eq(status_from_errno(ENOSPC), CMQ_ENOSPC);
    cr_assert_eq(status_from_errno(EDQUOT), CMQ_ENOSPC);
    cr_assert_str_eq(status_name(CMQ_ENOSPC), "ENOSPC");
    cr_assert_eq(status_from_errno(EIO), CMQ_EIO);
}

Test(status, every_status_has_a_name)
{
    for (int s = 0; s < CMQ_STATUS_COUNT_; s++)
        cr_assert_neq(strcmp(status_name(s), "E?"), 0, "status %d has no name", s);
    cr_assert_str_eq(status_name(CMQ_STATUS_COUNT_), "E?");
}
