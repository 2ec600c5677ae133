/* file.c: system-call wrappers for the segment log; see file.h. */
#include "file.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "status.h"

int file_open(const char *path, int flags, int *fd)
{
    int f;
    do
        f = open(path, flags | O_CLOEXEC, 0644);
    while (f < 0 && errno == EINTR);
    if (f < 0)
        return status_from_errno(errno);
    *fd = f;
    return 0;
}

int file_pread(int fd, void *buf, size_t len, uint64_t off, size_t *got)
{
    size_t done = 0;
    while (done < len) {
        ssize_t r = pread(fd, (char *)buf + done, len - done, (off_t)(off + done));
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return status_from_errno(errno);
        }
        if (r == 0)
            break;
        done += (size_t)r;
    }
    *got = done;
    return 0;
}

int file_pwritev_all(int fd, struct iovec *iov, int iovcnt, uint64_t off)
{
    while (iovcnt > 0) {
        ssize_t w = pwritev(fd, iov, iovcnt > IOV_MAX ? IOV_MAX : iovcnt, (off_t)off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return status_from_errno(errno);
        }
        off += (uint64_t)w;
        size_t left = (size_t)w;
        while (iovcnt > 0 && left >= iov->iov_len) {
            left -= iov->iov_len;
            iov++;
            iovcnt--;
        }
        if (iovcnt > 0) {
            iov->iov_base = (char *)iov->iov_base + left;
            iov->iov_len -= left;
        }
    }
    return 0;
}

int file_pwrite_all(int fd, const void *buf, size_t len, uint64_t off)
{
    struct iovec iov = {(void *)buf, len};
    return file_pwritev_all(fd, &iov, 1, off);
}

int file_next_data(int fd, uint64_t off, uint64_t end, uint64_t *start, uint64_t *stop)
{
    enum { N_EXT = 32 };
    /* struct fiemap ends in a flexible array of extents: allocate room. */
    size_t bytes = sizeof(struct fiemap) + N_EXT * sizeof(struct fiemap_extent);
    struct fiemap *fm = malloc(bytes);
    if (!fm)
        return CMQ_ENOMEM;
    int st = CMQ_ENOTFOUND;
    while (off < end) {
        memset(fm, 0, bytes);
        fm->fm_start = off;
        fm->fm_length = end - off;
        fm->fm_flags = FIEMAP_FLAG_SYNC;
        fm->fm_extent_count = N_EXT;
        if (ioctl(fd, FS_IOC_FIEMAP, fm) != 0) {
            if (errno == EOPNOTSUPP || errno == ENOTTY || errno == EINVAL) {
                *start = off; /* the file system cannot tell: scan it all */
                *stop = end;
                st = CMQ_OK;
            } else {
                st = status_from_errno(errno);
            }
            break;
        }
        if (fm->fm_mapped_extents == 0)
            break; /* only holes left */
        for (uint32_t i = 0; i < fm->fm_mapped_extents && st != CMQ_OK; i++) {
            const struct fiemap_extent *e = &fm->fm_extents[i];
            uint64_t es = e->fe_logical, ee = e->fe_logical + e->fe_length;
            if (ee <= off || (e->fe_flags & FIEMAP_EXTENT_UNWRITTEN))
                continue;
            *start = es > off ? es : off;
            *stop = ee < end ? ee : end;
            if (*start < *stop)
                st = CMQ_OK;
        }
        if (st == CMQ_OK)
            break;
        const struct fiemap_extent *last = &fm->fm_extents[fm->fm_mapped_extents - 1];
        uint64_t next = last->fe_logical + last->fe_length;
        if (last->fe_flags & FIEMAP_EXTENT_LAST)
            break;
        if (next <= off) {
            *start = off; /* no progress: be safe and scan the rest */
            *stop = end;
            st = CMQ_OK;
            break;
        }
        off = next;
    }
    free(fm);
    return st;
}

void file_advise_random(int fd, int on)
{
    (void)posix_fadvise(fd, 0, 0, on ? POSIX_FADV_RANDOM : POSIX_FADV_NORMAL);
}

int file_fdatasync(int fd)
{
    /* Not retried on EINTR-like failures: after a failed fdatasync the page
     * cache state is unknown, so the caller must fail the log. */
    return fdatasync(fd) == 0 ? 0 : status_from_errno(errno);
}

int file_fsync(int fd)
{
    return fsync(fd) == 0 ? 0 : status_from_errno(errno);
}

int file_truncate(int fd, uint64_t len)
{
    int r;
    do
        r = ftruncate(fd, (off_t)len);
    while (r < 0 && errno == EINTR);
    return r == 0 ? 0 : status_from_errno(errno);
}

int file_preallocate(int fd, uint64_t len)
{
    int r = posix_fallocate(fd, 0, (off_t)len); /* returns the error number */
    return r == 0 ? 0 : status_from_errno(r);
}

int file_size(int fd, uint64_t *size)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return status_from_errno(errno);
    *size = (uint64_t)st.st_size;
    return 0;
}

int file_fsync_dir(const char *dir)
{
    int fd, s = file_open(dir, O_RDONLY | O_DIRECTORY, &fd);
    if (s)
        return s;
    s = file_fsync(fd);
    close(fd);
    return s;
}

int file_rename(const char *from, const char *to)
{
    return rename(from, to) == 0 ? 0 : status_from_errno(errno);
}

int file_unlink(const char *path)
{
    if (unlink(path) == 0 || errno == ENOENT)
        return 0;
    return status_from_errno(errno);
}
