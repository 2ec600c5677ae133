/* partition_repair.c: a replica's directory set aside for repair
 * (docs/raft.md §11): moving the failed directory aside, keeping the newest
 * PARTITION_FAILED_KEEP of them, and the `repair` file holding the vote
 * floor that the empty replica must respect (raft.h S7); see
 * partition_repair.h.  Works on directories only, never on an open
 * partition. */
#include "partition_repair.h"

#include "log.h"
#include "seglog.h"
#include "status.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* The `repair` file: "floor_term floor_index\n" (decimal); 0 0 means the
 * discarded log was unreadable: the floor is (kept term, UINT64_MAX). */
void partition_read_floor(const char *dir, uint64_t term, uint64_t *ft, uint64_t *fi)
{
    char path[600];
    snprintf(path, sizeof path, "%s/repair", dir);
    *ft = *fi = 0;
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    unsigned long long t = 0, i = 0;
    if (fscanf(f, "%llu %llu", &t, &i) == 2) {
        *ft = t;
        *fi = i;
        if (t == 0) {
            *ft = term;
            *fi = UINT64_MAX;
        }
    } else {
        *ft = term; /* unreadable: the most conservative floor */
        *fi = UINT64_MAX;
    }
    fclose(f);
}

static int copy_file(const char *from, const char *to)
{
    int in = open(from, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return errno == ENOENT ? CMQ_OK : status_from_errno(errno);
    int out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    int rc = out < 0 ? status_from_errno(errno) : CMQ_OK;
    char buf[4096];
    ssize_t got;
    while (rc == CMQ_OK && (got = read(in, buf, sizeof buf)) > 0)
        if (write(out, buf, (size_t)got) != got)
            rc = status_from_errno(errno ? errno : EIO);
    if (rc == CMQ_OK && fsync(out) != 0)
        rc = status_from_errno(errno);
    if (out >= 0)
        close(out);
    close(in);
    return rc;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb; (void)flag; (void)ftw;
    return remove(path);
}

/* Deletes the oldest `<base>.failed-*` siblings beyond `keep`. */
static void prune_failed(const char *dir, int keep)
{
    char parent[600], prefix[700];
    snprintf(parent, sizeof parent, "%s", dir);
    char *slash = strrchr(parent, '/');
    const char *base = slash ? slash + 1 : parent;
    snprintf(prefix, sizeof prefix, "%s.failed-", base);
    if (slash)
        *slash = '\0';
    else
        snprintf(parent, sizeof parent, ".");
    for (;;) {
        DIR *d = opendir(parent);
        if (!d)
            return;
        int count = 0;
        char oldest[300] = "";
        unsigned long long oldest_ts = UINT64_MAX;
        struct dirent *de;
        while ((de = readdir(d))) {
            if (strncmp(de->d_name, prefix, strlen(prefix)) != 0)
                continue;
            unsigned long long ts = strtoull(de->d_name + strlen(prefix), NULL, 10);
            count++;
            if (ts < oldest_ts) {
                oldest_ts = ts;
                snprintf(oldest, sizeof oldest, "%s", de->d_name);
            }
        }
        closedir(d);
        if (count <= keep || !oldest[0])
            return;
        char path[1000];
        snprintf(path, sizeof path, "%s/%s", parent, oldest);
        if (nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
            return;
        log_info("partition_failed_pruned", "dir=%s", path);
    }
}

int partition_discard(const char *dir, uint64_t floor_term, uint64_t floor_index, char err[512])
{
    err[0] = '\0';
    char aside[600], from[700], to[700];
    /* a second repair within the same second gets a later name */
    for (long long ts = (long long)time(NULL);; ts++) {
        snprintf(aside, sizeof aside, "%s.failed-%lld", dir, ts);
        if (access(aside, F_OK) != 0)
            break;
    }
    /* A replica that forgot its term or vote must not vote at all (S1): no
     * automatic repair when the term/vote file is unreadable. */
    struct seglog_hardstate hs;
    int hrc = seglog_hardstate_peek(dir, &hs);
    if (hrc != CMQ_OK && hrc != CMQ_ENOTFOUND) {
        snprintf(err, 512, "%s/hardstate: unreadable (%s): not repaired automatically", dir,
                 status_name(hrc));
        return hrc;
    }
    if (floor_term == 0) {
        /* The log could not be opened: its end as far as it can be read
         * for sure, else "unknown" (the kept term bounds it: partition_read_floor). */
        uint64_t st = 0, si = 0;
        if (seglog_salvage_last(dir, &st, &si) == CMQ_OK && si && st <= hs.term) {
            floor_term = st;
            floor_index = si;
        }
    }
    /* An earlier repair's floor still applies (the log it bounded is lost
     * too); an unknown one (0, UINT64_MAX here) stays unknown. */
    uint64_t ot = 0, oi = 0;
    partition_read_floor(dir, 0, &ot, &oi);
    if (ot == 0 && oi == UINT64_MAX)
        floor_term = 0;
    else if (ot > floor_term || (ot == floor_term && oi > floor_index)) {
        floor_term = ot;
        floor_index = oi;
    }
    if (floor_term == 0)
        floor_index = 0; /* "unknown": derived from the kept term at open */
    if (rename(dir, aside) != 0) {
        snprintf(err, 512, "%s: cannot move aside: %s", dir, strerror(errno));
        return status_from_errno(errno);
    }
    int rc = CMQ_OK;
    if (mkdir(dir, 0750) != 0) {
        snprintf(err, 512, "%s: cannot create: %s", dir, strerror(errno));
        return status_from_errno(errno);
    }
    static const char *const keep[] = {"hardstate", "members"};
    for (size_t i = 0; rc == CMQ_OK && i < sizeof keep / sizeof keep[0]; i++) {
        snprintf(from, sizeof from, "%s/%s", aside, keep[i]);
        snprintf(to, sizeof to, "%s/%s", dir, keep[i]);
        rc = copy_file(from, to);
        if (rc != CMQ_OK)
            snprintf(err, 512, "%s: cannot copy %s: %s", dir, keep[i], status_name(rc));
    }
    if (rc == CMQ_OK) {
        snprintf(to, sizeof to, "%s/repair", dir);
        FILE *f = fopen(to, "w");
        int ok = f && fprintf(f, "%llu %llu\n", (unsigned long long)floor_term,
                              (unsigned long long)floor_index) > 0 && fflush(f) == 0 &&
                 fsync(fileno(f)) == 0;
        if (f)
            ok &= fclose(f) == 0;
        if (!ok) {
            rc = CMQ_EIO;
            snprintf(err, 512, "%s: cannot write the repair file", dir);
        }
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    char parent[600];
    snprintf(parent, sizeof parent, "%s", dir);
    char *slash = strrchr(parent, '/');
    if (slash) {
        *slash = '\0';
        dfd = open(parent, O_RDONLY | O_DIRECTORY);
        if (dfd >= 0) {
            fsync(dfd);
            close(dfd);
        }
    }
    log_warn("partition_discarded", "dir=%s moved_to=%s floor_term=%llu floor_index=%llu "
             "status=%s", dir, aside, (unsigned long long)floor_term,
             (unsigned long long)floor_index, status_name(rc));
    prune_failed(dir, PARTITION_FAILED_KEEP);
    return rc;
}

