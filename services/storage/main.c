/* cmq-storage: main.c only wires (config, data directory lock, svc frame,
 * node, run).  The node (node.c) hosts the Raft partitions. */
#include "config.h"
#include "file.h"
#include "log.h"
#include "node.h"
#include "status.h"
#include "svc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

/* Creates `dir` if needed and takes an exclusive lock on dir/LOCK for the
 * life of the process, so two nodes can never share a data directory.
 * Returns the lock fd, or -1 after logging why. */
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
    int rc = svc_main_args(argc, argv, "storage", storage_config_keys, storage_config_n_keys,
                           &cfg, &cfg.common);
    if (rc >= 0)
        return rc;
    if (cfg.fault_unsynced) {
        /* The power-loss test seam, before any file is opened. */
        file_fault_unsynced_enable();
        log_warn("fault_unsynced_in_memory", "dir=%s note=\"TEST ONLY: writes not yet fsynced "
                 "are held in memory; kill -9 loses them as a power loss would\"", cfg.data_dir);
    }
    int lock_fd = lock_data_dir(cfg.data_dir);
    if (lock_fd < 0)
        return 1;
    struct svc *s;
    if (svc_open("storage", &cfg.common, &s) != CMQ_OK) {
        close(lock_fd);
        return 1;
    }
    struct node *n;
    if (node_open(s, &cfg, &n) != CMQ_OK) {
        svc_close(s);
        close(lock_fd);
        return 1;
    }
    rc = svc_run(s);
    node_close(n);
    svc_close(s);
    close(lock_fd);
    return rc;
}
