/* cmq-metadata: main.c only wires (config, svc frame, run).
 *
 * metadata skeleton: answers health; the namespace, accounts, ACL and
 * placement (issue #5) plug in through svc_set_handler.
 */
#include "config.h"
#include "log.h"
#include "status.h"
#include "svc.h"

#include <stddef.h>

struct metadata_cfg {
    struct svc_common_cfg common;
    char db_path[256];
};

static const struct config_key keys[] = {
    SVC_COMMON_KEYS(struct metadata_cfg, "metadata", "tcp://127.0.0.1:17100"),
    CONFIG_STR_KEY("db.path", struct metadata_cfg, db_path, "var/dev/metadata/metadata.db",
                   "SQLite database file"),
};

int main(int argc, char **argv)
{
    struct metadata_cfg cfg = {0};
    int rc = svc_main_args(argc, argv, "metadata", keys, sizeof keys / sizeof keys[0], &cfg,
                           &cfg.common);
    if (rc >= 0)
        return rc;
    struct svc *s;
    if (svc_open("metadata", &cfg.common, &s) != CMQ_OK)
        return 1;
    rc = svc_run(s);
    svc_close(s);
    return rc;
}
