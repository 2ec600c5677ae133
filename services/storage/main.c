/* cmq-storage: main.c only wires (config, data directory, svc frame, run).
 *
 * A storage node hosts Raft partitions whose logs are segment files under
 * data.dir (issue #4).  This process creates and locks its data directory,
 * so two nodes can never share one, and answers health.
 */
#include "config.h"
#include "log.h"
#include "status.h"
#include "svc.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

struct storage_cfg {
    struct svc_common_cfg common;
    char data_dir[256];
    char raft_listen[RPC_ENDPOINT_MAX];
    char metadata[RPC_ENDPOINT_MAX];
    char scheduler[RPC_ENDPOINT_MAX];
};

static const struct config_key keys[] = {
    SVC_COMMON_KEYS(struct storage_cfg, "storage-1", "tcp://127.0.0.1:17120"),
    CONFIG_STR_KEY("data.dir", struct storage_cfg, data_dir, "var/dev/storage-1",
                   "directory holding this node's partitions (segment files)"),
    CONFIG_STR_KEY("raft.listen", struct storage_cfg, raft_listen, "tcp://127.0.0.1:17121",
                   "ZeroMQ endpoint for raft traffic from peer storage nodes"),
    CONFIG_STR_KEY("metadata.endpoint", struct storage_cfg, metadata, "tcp://127.0.0.1:17100",
                   "the metadata service"),
    CONFIG_STR_KEY("scheduler.endpoint", struct storage_cfg, scheduler, "tcp://127.0.0.1:17110",
                   "the scheduler service"),
};

/* Creates `dir` if needed and takes an exclusive lock on dir/LOCK for the
 * life of the process.  Returns the lock fd, or -1 after logging why. */
static int lock_data_dir(const char *dir)
{
    if (mkdir(dir, 0750) != 0 && errno != EEXIST) {
        log_error("data_dir_failed", "dir=%s error=\"%s\"", dir, strerror(errno));
        return -1;
    }
    char path[300];
    snprintf(path, sizeof path, "%s/LOCK", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0 || flock(fd, LOCK_EX | LOCK_NB) != 0) {
        log_error("data_dir_locked", "dir=%s error=\"%s\"", dir,
                  fd < 0 ? strerror(errno) : "another process holds the lock");
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

int main(int argc, char **argv)
{
    struct storage_cfg cfg = {0};
    int rc = svc_main_args(argc, argv, "storage", keys, sizeof keys / sizeof keys[0], &cfg,
                           &cfg.common);
    if (rc >= 0)
        return rc;
    int lock_fd = lock_data_dir(cfg.data_dir);
    if (lock_fd < 0)
        return 1;
    struct svc *s;
    if (svc_open("storage", &cfg.common, &s) != CMQ_OK) {
        close(lock_fd);
        return 1;
    }
    log_info("data_dir", "dir=%s", cfg.data_dir);
    rc = svc_run(s);
    svc_close(s);
    close(lock_fd);
    return rc;
}
