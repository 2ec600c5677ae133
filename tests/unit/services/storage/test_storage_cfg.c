/* test_storage_cfg.c: the storage node's configuration table
 * (services/storage/storage_cfg.c): its defaults, a file's values, the
 * bounds it refuses, and that a dump loads back to the same values. */
#include "storage_cfg.h"

#include "status.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int load(const char *text, struct storage_cfg *c, char err[CONFIG_ERR_MAX])
{
    memset(c, 0, sizeof *c);
    return config_load_string(storage_config_keys, storage_config_n_keys, c, text, "s.ini", err);
}

Test(storage_cfg, defaults)
{
    struct storage_cfg c;
    char err[CONFIG_ERR_MAX];
    cr_assert_eq(load("", &c, err), CMQ_OK, "%s", err);
    cr_assert_eq(c.tick_ms, 50);
    cr_assert_eq(c.election_ticks, 10);
    cr_assert_eq(c.segment_bytes, 64 << 20);
    cr_assert_eq(c.snapshot_entries, 10000);
    cr_assert_eq(c.sched_fallback_ms, 1000);
    cr_assert_eq(c.retry_scale_permille, 1000);
    cr_assert_eq(c.fault_unsynced, 0);
    cr_assert_str_eq(c.raft_listen, "tcp://127.0.0.1:17121");
    cr_assert_str_eq(c.gateways, "");
}

Test(storage_cfg, values_and_bounds)
{
    struct storage_cfg c;
    char err[CONFIG_ERR_MAX];
    cr_assert_eq(load("[raft]\ntick_ms = 20\nelection_ticks = 5\n[data]\ndir = /tmp/x\n", &c, err),
                 CMQ_OK, "%s", err);
    cr_assert_eq(c.tick_ms, 20);
    cr_assert_eq(c.election_ticks, 5);
    cr_assert_str_eq(c.data_dir, "/tmp/x");
    /* a segment must hold a 2 MiB record: at least 4 MiB */
    cr_assert_eq(load("[data]\nsegment_bytes = 1048576\n", &c, err), CMQ_EINVAL);
    cr_assert(strstr(err, "data.segment_bytes"), "%s", err);
    cr_assert_eq(load("[raft]\nelection_ticks = 2\n", &c, err), CMQ_EINVAL);
    cr_assert_eq(load("[raft]\nno_such_key = 1\n", &c, err), CMQ_EINVAL);
}

Test(storage_cfg, a_dump_loads_back)
{
    struct storage_cfg a, b;
    char err[CONFIG_ERR_MAX];
    cr_assert_eq(load("[snapshot]\nentries = 77\n[topics]\nretry_scale_permille = 5\n", &a, err),
                 CMQ_OK, "%s", err);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    config_dump(storage_config_keys, storage_config_n_keys, &a, f);
    fclose(f);
    cr_assert_eq(load(text, &b, err), CMQ_OK, "%s", err);
    cr_assert_eq(b.snapshot_entries, 77);
    cr_assert_eq(b.retry_scale_permille, 5);
    cr_assert_str_eq(b.scheduler, a.scheduler);
    free(text);
}
