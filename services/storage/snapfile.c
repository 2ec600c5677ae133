/* snapfile.c: snapshot files and the install area; see snapfile.h and
 * docs/storage-format.md §8. */
#include "snapfile.h"

#include "crc32c.h"
#include "file.h"
#include "log.h"
#include "status.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SNAP_MAGIC 0x50534d43u /* bytes "C M S P" */
#define SNAP_VERSION 1u
#define SNAP_HEADER_BYTES 40
#define SNAP_CONFIG_BYTES_MAX (4 + 9 * RAFT_MAX_NODES)

_Static_assert(SNAP_HEADER_BYTES == 4 + 4 + 8 + 8 + 8 + 4 + 4, "snapshot header layout");

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static uint32_t get32(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}
static uint64_t get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static void dir_of(const char *path, char *out, size_t cap)
{
    snprintf(out, cap, "%s", path);
    char *slash = strrchr(out, '/');
    if (slash == out)
        out[1] = '\0';
    else if (slash)
        *slash = '\0';
    else
        snprintf(out, cap, ".");
}

int snapfile_sync_dir(const char *dir)
{
    return file_fsync_dir(dir);
}

int snapfile_write(const char *path, const struct snap_meta *m, const uint8_t *image, size_t len,
                   char err[SNAPFILE_ERR_MAX])
{
    err[0] = '\0';
    if (len > SNAPFILE_IMAGE_BYTES_MAX) {
        snprintf(err, SNAPFILE_ERR_MAX, "%.300s: image of %zu bytes over the limit", path, len);
        return CMQ_ETOOBIG;
    }
    uint8_t hdr[SNAP_HEADER_BYTES], cfg[SNAP_CONFIG_BYTES_MAX], tail[4];
    size_t cfg_len = raft_config_encode(&m->config, cfg, sizeof cfg);
    put32(hdr, SNAP_MAGIC);
    put32(hdr + 4, SNAP_VERSION);
    put64(hdr + 8, m->index);
    put64(hdr + 16, m->term);
    put64(hdr + 24, m->first_needed);
    put32(hdr + 32, (uint32_t)cfg_len);
    put32(hdr + 36, (uint32_t)len);
    uint32_t crc = crc32c(0, hdr, sizeof hdr);
    crc = crc32c(crc, cfg, cfg_len);
    if (len)
        crc = crc32c(crc, image, len);
    put32(tail, crc);

    char tmp[600], dir[600];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    /* Through the segment log's file seam, so the power-loss test seam
     * (file_fault_unsynced_enable) covers snapshots too. */
    int fd = -1;
    int rc = file_open(tmp, O_WRONLY | O_CREAT | O_TRUNC, &fd);
    if (rc != CMQ_OK) {
        snprintf(err, SNAPFILE_ERR_MAX, "%.300s: cannot create: %s", tmp, status_name(rc));
        return rc;
    }
    uint64_t off = 0;
    rc = file_pwrite_all(fd, hdr, sizeof hdr, off);
    off += sizeof hdr;
    if (rc == CMQ_OK)
        rc = file_pwrite_all(fd, cfg, cfg_len, off);
    off += cfg_len;
    if (rc == CMQ_OK && len)
        rc = file_pwrite_all(fd, image, len, off);
    off += len;
    if (rc == CMQ_OK)
        rc = file_pwrite_all(fd, tail, 4, off);
    if (rc == CMQ_OK)
        rc = file_fsync(fd);
    if (close(fd) != 0 && rc == CMQ_OK)
        rc = status_from_errno(errno);
    if (rc == CMQ_OK)
        rc = file_rename(tmp, path);
    if (rc != CMQ_OK) {
        snprintf(err, SNAPFILE_ERR_MAX, "%.300s: cannot write: %s", tmp, status_name(rc));
        (void)file_unlink(tmp);
        return CMQ_EIO;
    }
    dir_of(path, dir, sizeof dir);
    if (snapfile_sync_dir(dir) != CMQ_OK) {
        snprintf(err, SNAPFILE_ERR_MAX, "%.300s: cannot sync the directory", dir);
        return CMQ_EIO;
    }
    return CMQ_OK;
}

int snapfile_read(const char *path, struct snap_meta *m, uint8_t **image, size_t *len,
                  char err[SNAPFILE_ERR_MAX])
{
    err[0] = '\0';
    *image = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        snprintf(err, SNAPFILE_ERR_MAX, "%.300s: cannot open: %s", path, strerror(e));
        return status_from_errno(e);
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        close(fd);
        snprintf(err, SNAPFILE_ERR_MAX, "%.300s: cannot stat", path);
        return CMQ_EIO;
    }
    size_t size = (size_t)st.st_size;
    const char *why = NULL;
    uint8_t *buf = NULL;
    if (size < SNAP_HEADER_BYTES + 4 ||
        size > SNAP_HEADER_BYTES + SNAP_CONFIG_BYTES_MAX + SNAPFILE_IMAGE_BYTES_MAX + 4) {
        why = "size out of range";
    } else if (!(buf = malloc(size))) {
        close(fd);
        return CMQ_ENOMEM;
    } else {
        size_t got = 0;
        while (got < size) {
            ssize_t r = pread(fd, buf + got, size - got, (off_t)got);
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0)
                break;
            got += (size_t)r;
        }
        if (got != size)
            why = "short read";
    }
    close(fd);
    uint32_t cfg_len = 0, img_len = 0;
    if (!why) {
        cfg_len = get32(buf + 32);
        img_len = get32(buf + 36);
        if (get32(buf) != SNAP_MAGIC)
            why = "bad magic";
        else if (get32(buf + 4) != SNAP_VERSION)
            why = "unknown version";
        else if (cfg_len > SNAP_CONFIG_BYTES_MAX ||
                 (uint64_t)SNAP_HEADER_BYTES + cfg_len + img_len + 4 != size)
            why = "lengths do not match the file size";
        else if (crc32c(0, buf, size - 4) != get32(buf + size - 4))
            why = "bad CRC";
        else if (raft_config_decode(buf + SNAP_HEADER_BYTES, cfg_len, &m->config) != RAFT_OK)
            why = "bad configuration";
    }
    if (why) {
        free(buf);
        snprintf(err, SNAPFILE_ERR_MAX, "%.300s: corrupt snapshot file: %s", path, why);
        return CMQ_ECORRUPT;
    }
    m->index = get64(buf + 8);
    m->term = get64(buf + 16);
    m->first_needed = get64(buf + 24);
    if (img_len) {
        *image = malloc(img_len);
        if (!*image) {
            free(buf);
            return CMQ_ENOMEM;
        }
        memcpy(*image, buf + SNAP_HEADER_BYTES + cfg_len, img_len);
    }
    *len = img_len;
    free(buf);
    return CMQ_OK;
}

void snapfile_path(const char *dir, uint64_t index, char *out, size_t cap)
{
    snprintf(out, cap, "%s/snap-%020" PRIu64 ".snap", dir, index);
}

static int parse_name(const char *name, uint64_t *index)
{
    /* exactly "snap-" + 20 digits + ".snap" */
    if (strlen(name) != 30 || strncmp(name, "snap-", 5) != 0 || strcmp(name + 25, ".snap") != 0)
        return 0;
    uint64_t v = 0;
    for (int i = 5; i < 25; i++) {
        if (name[i] < '0' || name[i] > '9')
            return 0;
        v = v * 10 + (uint64_t)(name[i] - '0');
    }
    *index = v;
    return 1;
}

static int cmp_desc(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

size_t snapfile_list(const char *dir, uint64_t *indexes, size_t max)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    /* Keep the `max` largest: collect into a small growing array. */
    size_t n = 0, cap = 16;
    uint64_t *all = malloc(cap * sizeof *all);
    struct dirent *de;
    while (all && (de = readdir(d))) {
        uint64_t idx;
        if (!parse_name(de->d_name, &idx))
            continue;
        if (n == cap) {
            uint64_t *g = realloc(all, 2 * cap * sizeof *all);
            if (!g)
                break;
            all = g;
            cap *= 2;
        }
        all[n++] = idx;
    }
    closedir(d);
    if (!all)
        return 0;
    qsort(all, n, sizeof *all, cmp_desc);
    size_t k = n < max ? n : max;
    memcpy(indexes, all, k * sizeof *all);
    free(all);
    return k;
}

int snapfile_load_newest(const char *dir, struct snap_meta *m, uint8_t **image, size_t *len,
                         char err[SNAPFILE_ERR_MAX])
{
    uint64_t idx[8];
    size_t n = snapfile_list(dir, idx, 8);
    err[0] = '\0';
    if (n == 0)
        return CMQ_ENOTFOUND;
    char first_err[SNAPFILE_ERR_MAX] = "";
    int first_rc = CMQ_ECORRUPT;
    for (size_t i = 0; i < n; i++) {
        char path[600], e[SNAPFILE_ERR_MAX];
        snapfile_path(dir, idx[i], path, sizeof path);
        int rc = snapfile_read(path, m, image, len, e);
        if (rc == CMQ_OK && m->index != idx[i]) {
            free(*image);
            *image = NULL;
            snprintf(e, sizeof e, "%.300s: corrupt snapshot file: index %" PRIu64
                     " does not match the name", path, m->index);
            rc = CMQ_ECORRUPT;
        }
        if (rc == CMQ_OK)
            return CMQ_OK;
        log_error("snapshot_corrupt", "file=%s status=%s error=\"%s\" action=%s", path,
                  status_name(rc), e, i + 1 < n ? "try_older" : "none_left");
        if (i == 0) {
            snprintf(first_err, sizeof first_err, "%s", e);
            first_rc = rc;
        }
    }
    snprintf(err, SNAPFILE_ERR_MAX, "%.400s", first_err);
    return first_rc == CMQ_ENOMEM ? CMQ_ENOMEM : CMQ_ECORRUPT;
}

int snapfile_prune(const char *dir, uint64_t *oldest_first_needed)
{
    uint64_t idx[64];
    size_t n = snapfile_list(dir, idx, 64);
    uint64_t low = UINT64_MAX;
    int removed = 0;
    for (size_t i = 0; i < n; i++) {
        char path[600];
        snapfile_path(dir, idx[i], path, sizeof path);
        if (i >= SNAPFILE_KEEP) {
            removed |= file_unlink(path) == CMQ_OK;
            continue;
        }
        struct snap_meta m;
        uint8_t *img;
        size_t len;
        char e[SNAPFILE_ERR_MAX];
        if (snapfile_read(path, &m, &img, &len, e) == CMQ_OK) {
            free(img);
            if (m.first_needed < low)
                low = m.first_needed;
        }
    }
    if (oldest_first_needed)
        *oldest_first_needed = low;
    return removed ? snapfile_sync_dir(dir) : CMQ_OK;
}

/* ---------- the install area (docs/storage-format.md §8.3) ---------- */

static int is_log_file(const char *name)
{
    size_t l = strlen(name);
    return (l > 4 && (strcmp(name + l - 4, ".seg") == 0 || strcmp(name + l - 4, ".idx") == 0)) ||
           (l > 8 && strcmp(name + l - 8, ".seg.tmp") == 0);
}

void snapfile_install_discard(const char *dir)
{
    char inst[600];
    snprintf(inst, sizeof inst, "%s/install", dir);
    DIR *d = opendir(inst);
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        char p[900];
        snprintf(p, sizeof p, "%s/%s", inst, de->d_name);
        (void)file_unlink(p); /* through the seam: forgets held bytes of the inode */
    }
    closedir(d);
    rmdir(inst);
    snapfile_sync_dir(dir);
}

int snapfile_install_finish(const char *dir, char err[SNAPFILE_ERR_MAX])
{
    char inst[600], staged[700], moving[700];
    err[0] = '\0';
    snprintf(inst, sizeof inst, "%s/install", dir);
    snprintf(staged, sizeof staged, "%s/snapshot", inst);
    snprintf(moving, sizeof moving, "%s/snapshot.moving", inst);
    struct stat st;
    if (stat(inst, &st) != 0)
        return CMQ_OK;
    if (stat(moving, &st) != 0) {
        if (stat(staged, &st) != 0) {
            snapfile_install_discard(dir); /* an unfinished transfer */
            return CMQ_OK;
        }
        /* Step 1: the old log and snapshots go. */
        DIR *d = opendir(dir);
        if (!d) {
            snprintf(err, SNAPFILE_ERR_MAX, "%.300s: cannot list: %s", dir, strerror(errno));
            return CMQ_EIO;
        }
        struct dirent *de;
        uint64_t idx;
        while ((de = readdir(d))) {
            if (!is_log_file(de->d_name) && !parse_name(de->d_name, &idx))
                continue;
            char p[900];
            snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
            (void)file_unlink(p);
        }
        closedir(d);
        if (snapfile_sync_dir(dir) != CMQ_OK || rename(staged, moving) != 0 ||
            snapfile_sync_dir(inst) != CMQ_OK) {
            snprintf(err, SNAPFILE_ERR_MAX, "%.300s: install step 1 failed: %s", inst, strerror(errno));
            return CMQ_EIO;
        }
    }
    /* Step 2: the staged segments move in. */
    DIR *d = opendir(inst);
    if (!d) {
        snprintf(err, SNAPFILE_ERR_MAX, "%.300s: cannot list: %s", inst, strerror(errno));
        return CMQ_EIO;
    }
    struct dirent *de;
    int bad = 0;
    while ((de = readdir(d))) {
        if (!is_log_file(de->d_name))
            continue;
        char from[900], to[900];
        snprintf(from, sizeof from, "%s/%s", inst, de->d_name);
        snprintf(to, sizeof to, "%s/%s", dir, de->d_name);
        bad |= rename(from, to) != 0;
    }
    closedir(d);
    if (bad || snapfile_sync_dir(dir) != CMQ_OK) {
        snprintf(err, SNAPFILE_ERR_MAX, "%.300s: install step 2 failed: %s", inst, strerror(errno));
        return CMQ_EIO;
    }
    /* Step 3: the snapshot file takes its name; the area goes. */
    struct snap_meta m;
    uint8_t *img;
    size_t len;
    int rc = snapfile_read(moving, &m, &img, &len, err);
    if (rc != CMQ_OK)
        return rc;
    free(img);
    char final[600];
    snapfile_path(dir, m.index, final, sizeof final);
    if (rename(moving, final) != 0 || snapfile_sync_dir(dir) != CMQ_OK) {
        snprintf(err, SNAPFILE_ERR_MAX, "%.300s: install step 3 failed: %s", inst, strerror(errno));
        return CMQ_EIO;
    }
    snapfile_install_discard(dir);
    return CMQ_OK;
}
