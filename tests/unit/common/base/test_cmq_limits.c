/* Tests for common/base/cmq_limits.h: the delay check both front ends use
 * (cmq_delay_ok) against the configured cap and the storage bound, and a
 * config key declared like gateway.max_delay_seconds refusing a cap above
 * what storage supports. */
#include "cmq_limits.h"
#include "config.h"
#include "status.h"

#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

Test(cmq_limits, delay_within_the_default_cap)
{
    cr_assert(cmq_delay_ok(0, CMQ_DELAY_S_DEFAULT));
    cr_assert(cmq_delay_ok(3600, CMQ_DELAY_S_DEFAULT));
    cr_assert_not(cmq_delay_ok(3601, CMQ_DELAY_S_DEFAULT));
    cr_assert_not(cmq_delay_ok(-1, CMQ_DELAY_S_DEFAULT));
    cr_assert_not(cmq_delay_ok(INT64_MIN, CMQ_DELAY_S_DEFAULT));
    cr_assert_not(cmq_delay_ok(INT64_MAX, CMQ_DELAY_S_DEFAULT));
}

Test(cmq_limits, delay_with_a_raised_or_lowered_cap)
{
    cr_assert(cmq_delay_ok(7 * 86400, CMQ_DELAY_S_CAP_MAX));
    cr_assert_not(cmq_delay_ok(7 * 86400 + 1, CMQ_DELAY_S_CAP_MAX));
    cr_assert(cmq_delay_ok(0, 0));
    cr_assert_not(cmq_delay_ok(1, 0));
    cr_assert(cmq_delay_ok(60, 60));
    cr_assert_not(cmq_delay_ok(61, 60));
}

Test(cmq_limits, a_cap_above_storage_is_clamped_to_storage)
{
    /* never reached through the config table (it refuses such a cap), but
     * the check itself never lets more than storage supports through */
    cr_assert(cmq_delay_ok(CMQ_DELAY_S_CAP_MAX, INT64_MAX));
    cr_assert_not(cmq_delay_ok(CMQ_DELAY_S_CAP_MAX + 1, INT64_MAX));
}

struct cfg {
    int64_t max_delay_s;
};
static const struct config_key keys[] = {
    CONFIG_INT_KEY("gateway.max_delay_seconds", struct cfg, max_delay_s, "3600", 0,
                   CMQ_DELAY_S_CAP_MAX, "as in services/gateway/gateway.c"),
};

Test(cmq_limits, the_cap_key_defaults_to_the_spec_and_refuses_more_than_storage)
{
    struct cfg c = {0};
    char err[CONFIG_ERR_MAX];
    cr_assert_eq(config_load_string(keys, 1, &c, "", "t", err), CMQ_OK, "%s", err);
    cr_assert_eq(c.max_delay_s, CMQ_DELAY_S_DEFAULT);
    cr_assert_eq(config_load_string(keys, 1, &c, "[gateway]\nmax_delay_seconds = 604800\n", "t",
                                    err),
                 CMQ_OK, "%s", err);
    cr_assert_eq(c.max_delay_s, 604800);
    cr_assert_eq(config_load_string(keys, 1, &c, "[gateway]\nmax_delay_seconds = 604801\n", "t",
                                    err),
                 CMQ_EINVAL);
    cr_assert(strstr(err, "max_delay_seconds") != NULL, "%s", err);
}
