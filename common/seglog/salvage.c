/* salvage.c: what a refused log still says about its end (seglog.h,
 * seglog_salvage_last).
 *
 * Used when seglog_open refused a log for a bad record in the middle: the
 * storage service discards such a replica and refills it from the leader,
 * but first it needs the (term, index) of the last record the replica ever
 * wrote, because it may have acknowledged everything up to there (Raft's
 * vote floor, docs/raft.md §11).  The walk trusts nothing it cannot check:
 * a record whose CRC fails is stepped over only when the record right after
 * it is valid where its length says (its header was right), and the walk
 * answers CMQ_ECORRUPT (the caller then takes the most conservative floor)
 * whenever the end is uncertain.  Read-only; reads one segment at a time. */
#include "seglog.h"

#include "crc32c.h"
#include "format.h"
#include "status.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int rec_valid(const uint8_t *r, uint64_t off, uint64_t size, uint64_t want_index)
{
    if (get_le32(r) != SEG_REC_MAGIC || r[8] != SEG_FORMAT_VERSION || get_le16(r + 10) != 0)
        return 0;
    uint32_t len = get_le32(r + 12);
    if (off + seg_rec_bytes(len) > size || get_le64(r + 24) != want_index)
        return 0;
    uint32_t crc = crc32c(0, r + 8, SEG_REC_HDR_BYTES - 8);
    return crc32c(crc, r + SEG_REC_HDR_BYTES, len) == get_le32(r + 4);
}

static int all_zero(const uint8_t *p, uint64_t n)
{
    for (uint64_t i = 0; i < n; i++)
        if (p[i])
            return 0;
    return 1;
}

/* Walks one segment.  Returns 0 when its end is certain, -1 otherwise. */
static int walk(const uint8_t *d, uint64_t size, uint64_t *term, uint64_t *index)
{
    if (size < SEG_FILE_HDR_BYTES || get_le32(d) != SEG_FILE_MAGIC)
        return -1;
    uint64_t want = get_le64(d + 16), off = SEG_FILE_HDR_BYTES;
    int bad_last = 0; /* the last record seen failed its CRC */
    while (off + SEG_REC_HDR_BYTES <= size) {
        const uint8_t *r = d + off;
        if (rec_valid(r, off, size, want)) {
            *term = get_le64(r + 16);
            *index = want;
            bad_last = 0;
        } else if (get_le32(r) == SEG_REC_MAGIC && get_le64(r + 24) == want &&
                   off + seg_rec_bytes(get_le32(r + 12)) <= size) {
            /* a record that fails its CRC; its header may still be right:
             * only the next valid record can tell */
            bad_last = 1;
        } else {
            return all_zero(r, size - off) && !bad_last ? 0 : -1;
        }
        off += seg_rec_bytes(get_le32(r + 12));
        want++;
    }
    return bad_last ? -1 : 0;
}

int seglog_salvage_last(const char *dir, uint64_t *term, uint64_t *index)
{
    *term = *index = 0;
    DIR *dd = opendir(dir);
    if (!dd)
        return CMQ_EIO;
    char *names[4096];
    size_t n = 0;
    struct dirent *de;
    int rc = CMQ_OK;
    while ((de = readdir(dd))) {
        size_t l = strlen(de->d_name);
        if (l != 24 || strcmp(de->d_name + 20, ".seg") != 0)
            continue;
        if (n == sizeof names / sizeof names[0] || !(names[n] = strdup(de->d_name))) {
            rc = CMQ_ECORRUPT;
            break;
        }
        n++;
    }
    closedir(dd);
    qsort(names, n, sizeof names[0], name_cmp);
    for (size_t i = 0; rc == CMQ_OK && i < n; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        struct stat st;
        uint8_t *buf = NULL;
        if (fd < 0 || fstat(fd, &st) != 0 || !(buf = malloc(st.st_size ? (size_t)st.st_size : 1)) ||
            pread(fd, buf, (size_t)st.st_size, 0) != st.st_size) {
            rc = CMQ_EIO;
        } else {
            uint64_t t = 0, x = 0;
            if (walk(buf, (uint64_t)st.st_size, &t, &x) != 0)
                rc = CMQ_ECORRUPT;
            else if (x) {
                *term = t;
                *index = x;
            }
        }
        free(buf);
        if (fd >= 0)
            close(fd);
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    return rc;
}

int seglog_hardstate_peek(const char *dir, struct seglog_hardstate *hs)
{
    *hs = (struct seglog_hardstate){0};
    char path[1024];
    snprintf(path, sizeof path, "%s/hardstate", dir);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return status_from_errno(errno);
    uint8_t b[HS_FILE_BYTES + 1];
    ssize_t got = pread(fd, b, sizeof b, 0);
    close(fd);
    if (got != HS_FILE_BYTES || get_le32(b) != HS_FILE_MAGIC ||
        get_le32(b + 4) != crc32c(0, b + 8, HS_FILE_BYTES - 8) ||
        get_le32(b + 8) != SEG_FORMAT_VERSION || get_le32(b + 12) != 0)
        return got < 0 ? CMQ_EIO : CMQ_ECORRUPT;
    hs->term = get_le64(b + 16);
    hs->vote = get_le64(b + 24);
    hs->commit = get_le64(b + 32);
    return CMQ_OK;
}
