/* cmq-scheduler: main.c only wires (config, svc frame, run).
 *
 * The scheduler keeps soft state only (a timer wheel of due times that
 * storage leaders register); this process answers health, and the wheel
 * (issue #4) plugs in through svc_set_handler.
 */
#include "config.h"
#include "status.h"
#include "svc.h"

#include <stddef.h>

struct scheduler_cfg {
    struct svc_common_cfg common;
    int64_t tick_ms;
};

static const struct config_key keys[] = {
    SVC_COMMON_KEYS(struct scheduler_cfg, "scheduler", "tcp://127.0.0.1:17110"),
    CONFIG_INT_KEY("wheel.tick_ms", struct scheduler_cfg, tick_ms, "10", 1, 1000,
                   "resolution of the timer wheel"),
};

int main(int argc, char **argv)
{
    struct scheduler_cfg cfg = {0};
    int rc = svc_main_args(argc, argv, "scheduler", keys, sizeof keys / sizeof keys[0], &cfg,
                           &cfg.common);
    if (rc >= 0)
        return rc;
    struct svc *s;
    if (svc_open("scheduler", &cfg.common, &s) != CMQ_OK)
        return 1;
    rc = svc_run(s);
    svc_close(s);
    return rc;
}
