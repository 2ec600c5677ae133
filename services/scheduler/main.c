/* cmq-scheduler: main.c only wires (config, svc frame, scheduler, run).
 *
 * The scheduler keeps soft state only: a timer wheel of due times that
 * storage leaders register and that it fires back (services/scheduler/
 * scheduler.h, docs/scheduler.md).  Every key but node.id and rpc.listen has
 * a default, so the two-key config tools/cmq writes is complete.
 */
#include "config.h"
#include "log.h"
#include "scheduler.h"
#include "status.h"
#include "svc.h"

#include <stddef.h>
#include <stdio.h>

struct scheduler_cfg {
    struct svc_common_cfg common;
    int64_t tick_ms;
    int64_t timers_max;
    int64_t owner_timers_max;
    int64_t owners_max;
    int64_t delay_max_ms;
    int64_t fire_batch_max;
    int64_t fire_timeout_ms;
    int64_t retry_min_ms;
    int64_t retry_max_ms;
};

static const struct config_key keys[] = {
    SVC_COMMON_KEYS(struct scheduler_cfg, "scheduler", "tcp://127.0.0.1:17110"),
    CONFIG_INT_KEY("wheel.tick_ms", struct scheduler_cfg, tick_ms, "1", 1, 1000,
                   "resolution of the timer wheel; timers fire at most one tick late"),
    CONFIG_INT_KEY("limits.timers_max", struct scheduler_cfg, timers_max, "1000000", 1,
                   100000000, "pending timers over all partitions (about 136 bytes each)"),
    CONFIG_INT_KEY("limits.owner_timers_max", struct scheduler_cfg, owner_timers_max, "200000",
                   1, 100000000, "pending timers per partition"),
    CONFIG_INT_KEY("limits.owners_max", struct scheduler_cfg, owners_max, "4096", 1, 1000000,
                   "partitions holding timers at once"),
    CONFIG_INT_KEY("limits.delay_max_ms", struct scheduler_cfg, delay_max_ms, "864000000", 1000,
                   31536000000, "furthest due time accepted, from the owner's now (10 days)"),
    CONFIG_INT_KEY("fire.batch_max", struct scheduler_cfg, fire_batch_max, "256", 1, 512,
                   "timers per FIRE request to an owner"),
    CONFIG_INT_KEY("fire.timeout_ms", struct scheduler_cfg, fire_timeout_ms, "2000", 10, 60000,
                   "wait for an owner's answer before sending the batch again"),
    CONFIG_INT_KEY("fire.retry_min_ms", struct scheduler_cfg, retry_min_ms, "50", 1, 60000,
                   "first backoff after an unacknowledged FIRE (doubles up to retry_max_ms)"),
    CONFIG_INT_KEY("fire.retry_max_ms", struct scheduler_cfg, retry_max_ms, "5000", 1, 600000,
                   "longest backoff between FIRE attempts to one owner"),
};

int main(int argc, char **argv)
{
    struct scheduler_cfg cfg = {0};
    int rc = svc_main_args(argc, argv, "scheduler", keys, sizeof keys / sizeof keys[0], &cfg,
                           &cfg.common);
    if (rc >= 0)
        return rc;
    struct scheduler_opts opts = {
        .tick_ms = (uint64_t)cfg.tick_ms,
        .timers_max = (uint64_t)cfg.timers_max,
        .owner_timers_max = (uint64_t)cfg.owner_timers_max,
        .owners_max = (uint64_t)cfg.owners_max,
        .delay_max_ms = (uint64_t)cfg.delay_max_ms,
        .fire_batch_max = (uint32_t)cfg.fire_batch_max,
        .fire_timeout_ms = (uint32_t)cfg.fire_timeout_ms,
        .retry_min_ms = (uint32_t)cfg.retry_min_ms,
        .retry_max_ms = (uint32_t)cfg.retry_max_ms,
    };
    char err[128];
    if (scheduler_opts_check(&opts, err, sizeof err) != CMQ_OK) {
        fprintf(stderr, "%s: bad configuration: %s\n", argv[0], err);
        return 2;
    }
    struct svc *s;
    if (svc_open("scheduler", &cfg.common, &s) != CMQ_OK)
        return 1;
    struct scheduler *sched;
    rc = scheduler_open(s, &opts, &sched);
    if (rc != CMQ_OK) {
        log_error("scheduler_open_failed", "status=%s", status_name(rc));
        svc_close(s);
        return 1;
    }
    rc = svc_run(s);
    scheduler_close(sched);
    svc_close(s);
    return rc;
}
