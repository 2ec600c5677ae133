/* test_action.c: services/gateway/cmqapi/action.c: every action of §6-§8,
 * matched case-insensitively (§3, §13.1). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "action.h"
#include "params.h"
#include "status.h"

Test(action, every_name_round_trips)
{
    cr_assert_eq(CMQ_ACTION_COUNT_ - 1, 28,
                 "12 queue + 7 topic + 6 subscription actions + 2 TCP route lookups + "
                 "DescribeMessageTrace");
    for (int a = CMQ_ACTION_NONE + 1; a < CMQ_ACTION_COUNT_; a++) {
        const char *n = action_name(a);
        cr_assert_eq((int)action_lookup(n, strlen(n)), a, "%s", n);
    }
    cr_assert_str_eq(action_name(CMQ_ACTION_NONE), "");
}

Test(action, case_insensitive_like_the_java_sdk)
{
    const char *java = "ClearSUbscriptionFIlterTags";
    cr_assert_eq(action_lookup(java, strlen(java)), CMQ_ACTION_CLEAR_SUBSCRIPTION_FILTER_TAGS);
    cr_assert_eq(action_lookup("sendmessage", 11), CMQ_ACTION_SEND_MESSAGE);
    cr_assert_eq(action_lookup("SENDMESSAGE", 11), CMQ_ACTION_SEND_MESSAGE);
    cr_assert_eq(action_lookup("SendMessag", 10), CMQ_ACTION_NONE);
    cr_assert_eq(action_lookup("SendMessages", 12), CMQ_ACTION_NONE);
    cr_assert_eq(action_lookup("", 0), CMQ_ACTION_NONE);
}

Test(action, from_params)
{
    struct params *p = params_create();
    struct cmq_fault f;
    enum cmq_action a;
    cr_assert_eq(action_from_params(p, &a, &f), CMQ_ENOTFOUND);
    cr_assert_eq(f.err, CMQERR_MISSING_PARAM);
    cr_assert_str_eq(f.arg, "Action");
    const char *form = "Action=batchSendMessage";
    cr_assert_eq(params_parse(p, form, strlen(form), &f), CMQ_OK);
    cr_assert_eq(action_from_params(p, &a, &f), CMQ_OK);
    cr_assert_eq(a, CMQ_ACTION_BATCH_SEND_MESSAGE);
    params_reset(p);
    form = "Action=DropTable";
    cr_assert_eq(params_parse(p, form, strlen(form), &f), CMQ_OK);
    cr_assert_eq(action_from_params(p, &a, &f), CMQ_EUNSUPPORTED);
    cr_assert_eq(f.err, CMQERR_ACTION_NAME_NOT_EXIST);
    cr_assert_str_eq(f.arg, "DropTable");
    params_reset(p);
    form = "Action=SendMessage%00x";
    cr_assert_eq(params_parse(p, form, strlen(form), &f), CMQ_OK);
    cr_assert_eq(action_from_params(p, &a, &f), CMQ_EUNSUPPORTED);
    params_reset(p);
    form = "action=SendMessage";
    cr_assert_eq(params_parse(p, form, strlen(form), &f), CMQ_OK);
    cr_assert_eq(action_from_params(p, &a, &f), CMQ_ENOTFOUND, "the name itself is exact");
    params_destroy(p);
}
