/* file.c: system-call wrappers for the segment log; see file.h.
 *
 * Also the test-only power-loss seam (file_fault_unsynced_enable): when it is
 * on, bytes written through these wrappers do not reach the kernel until the
 * file is fdatasync'ed or fsync'ed.  They wait in process memory, in an
 * overlay per inode (struct ov_file: sorted, non-touching extents), which
 * every read through these wrappers merges over what the disk holds.  A
 * SIGKILL of the process then loses exactly the writes a power loss could
 * lose, because they never were in the page cache.
 *
 * Invariants of the overlay (all under ov.mu):
 *   O1. An inode's extents are sorted by offset and neither overlap nor touch.
 *   O2. A byte written through file_pwrite* is either in the overlay or was
 *       pwritten to the kernel by a file_fdatasync/file_fsync of its inode
 *       that started after the write (that sync then drops the extent).
 *   O3. While fault mode is on, every wrapper that reads or changes a file's
 *       bytes or size holds ov.mu for the whole operation, except the final
 *       fdatasync/fsync system call, so a reader never sees a byte in neither
 *       place.
 * Deliberately not modelled under kill -9: size changes (ftruncate,
 * fallocate), creation, rename and unlink reach the kernel at once, as if the
 * file system journaled them before the crash; only file contents are held
 * back.  For in-process crashes (unit tests), file_fault_dirops_enable also
 * records creations and renames until their directory is fsynced, and
 * file_fault_crash undoes them (struct dirop).
 */
#include "file.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "status.h"

/* ---- the power-loss overlay (test-only; see the top of this file) ---- */

struct ov_ext {
    uint64_t off;
    size_t len, cap;
    uint8_t *data;
};

struct ov_file {
    dev_t dev;
    ino_t ino;
    struct ov_ext *ext;
    size_t n, cap;
};

static struct {
    int on;      /* read with atomics: set once, before any thread starts */
    int crashed; /* file_fault_crash: every change is a no-op until re-enabled */
    pthread_mutex_t mu;
    struct ov_file *files;
    size_t n, cap;
    uint64_t bytes;
} ov = {.mu = PTHREAD_MUTEX_INITIALIZER};

/* Directory operations not yet made durable by a file_fsync_dir (only with
 * file_fault_dirops_enable; in-process crashes only).  Undone, newest first,
 * by file_fault_crash.  Under ov.mu. */
struct dirop {
    char *path, *from;  /* create: path; rename: from -> path */
    char *backup;       /* rename over an existing file: its old inode, linked here */
    char *dir, *from_dir;
    int dir_synced, from_dir_synced;
};

static struct {
    int on;
    struct dirop *ops;
    size_t n, cap;
    unsigned seq;
} dops;

static int ov_on(void)
{
    return __atomic_load_n(&ov.on, __ATOMIC_ACQUIRE);
}

static struct ov_file *ov_find(dev_t dev, ino_t ino)
{
    for (size_t i = 0; i < ov.n; i++)
        if (ov.files[i].dev == dev && ov.files[i].ino == ino)
            return &ov.files[i];
    return NULL;
}

static struct ov_file *ov_find_fd(int fd, uint64_t *disk_size)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return NULL;
    if (disk_size)
        *disk_size = (uint64_t)st.st_size;
    return ov_find(st.st_dev, st.st_ino);
}

static void ov_drop(struct ov_file *f)
{
    if (!f)
        return;
    for (size_t i = 0; i < f->n; i++) {
        ov.bytes -= f->ext[i].len;
        free(f->ext[i].data);
    }
    free(f->ext);
    *f = ov.files[--ov.n];
}

static void ov_drop_path(const char *path)
{
    struct stat st;
    if (stat(path, &st) == 0)
        ov_drop(ov_find(st.st_dev, st.st_ino));
}

static uint64_t ov_end(const struct ov_file *f)
{
    return f && f->n ? f->ext[f->n - 1].off + f->ext[f->n - 1].len : 0;
}

/* Records `len` bytes written at `off` (O1 kept: the extents the write
 * overlaps or touches merge with it into one). */
static int ov_put(int fd, const uint8_t *buf, size_t len, uint64_t off)
{
    if (len == 0)
        return CMQ_OK;
    struct stat st;
    if (fstat(fd, &st) != 0)
        return status_from_errno(errno);
    struct ov_file *f = ov_find(st.st_dev, st.st_ino);
    if (!f) {
        if (ov.n == ov.cap) {
            size_t cap = ov.cap ? 2 * ov.cap : 16;
            struct ov_file *nf = realloc(ov.files, cap * sizeof *nf);
            if (!nf)
                return CMQ_ENOMEM;
            ov.files = nf;
            ov.cap = cap;
        }
        f = &ov.files[ov.n++];
        *f = (struct ov_file){.dev = st.st_dev, .ino = st.st_ino};
    }
    uint64_t end = off + len;
    size_t i = 0;
    while (i < f->n && f->ext[i].off + f->ext[i].len < off)
        i++;
    size_t j = i; /* [i, j): the extents overlapping or touching [off, end] */
    while (j < f->n && f->ext[j].off <= end)
        j++;
    uint64_t lo = off, hi = end;
    if (i < j) {
        lo = f->ext[i].off < lo ? f->ext[i].off : lo;
        uint64_t e = f->ext[j - 1].off + f->ext[j - 1].len;
        hi = e > hi ? e : hi;
    }
    struct ov_ext base = {lo, 0, 0, NULL};
    size_t from = i;
    if (i < j && f->ext[i].off == lo) {
        base = f->ext[i]; /* grow the first one in place: appends are cheap */
        from = i + 1;
    }
    size_t need = (size_t)(hi - lo);
    if (need > base.cap) {
        size_t cap = base.cap * 2 > need ? base.cap * 2 : need;
        uint8_t *d = realloc(base.data, cap);
        if (!d) {
            if (f->n == 0)
                ov_drop(f);
            return CMQ_ENOMEM;
        }
        base.data = d;
        base.cap = cap;
    }
    for (size_t k = from; k < j; k++) {
        memcpy(base.data + (f->ext[k].off - lo), f->ext[k].data, f->ext[k].len);
        free(f->ext[k].data);
    }
    memcpy(base.data + (off - lo), buf, len);
    for (size_t k = i; k < j; k++)
        ov.bytes -= f->ext[k].len;
    base.len = need;
    ov.bytes += need;
    if (i == j) { /* insert at i */
        if (f->n == f->cap) {
            size_t cap = f->cap ? 2 * f->cap : 4;
            struct ov_ext *ne = realloc(f->ext, cap * sizeof *ne);
            if (!ne) {
                ov.bytes -= need;
                free(base.data);
                if (f->n == 0)
                    ov_drop(f);
                return CMQ_ENOMEM;
            }
            f->ext = ne;
            f->cap = cap;
        }
        memmove(f->ext + i + 1, f->ext + i, (f->n - i) * sizeof *f->ext);
        f->n++;
    } else if (j - i > 1) { /* [i+1, j) were merged into base */
        memmove(f->ext + i + 1, f->ext + j, (f->n - j) * sizeof *f->ext);
        f->n -= j - i - 1;
    }
    f->ext[i] = base;
    return CMQ_OK;
}

/* Cuts the overlay of `fd`'s inode at `len` (a truncation). */
static void ov_cut(int fd, uint64_t len)
{
    struct ov_file *f = ov_find_fd(fd, NULL);
    if (!f)
        return;
    size_t keep = 0;
    for (size_t i = 0; i < f->n; i++) {
        struct ov_ext *e = &f->ext[i];
        if (e->off >= len) {
            ov.bytes -= e->len;
            free(e->data);
            continue;
        }
        if (e->off + e->len > len) {
            ov.bytes -= e->off + e->len - len;
            e->len = (size_t)(len - e->off);
        }
        f->ext[keep++] = *e;
    }
    f->n = keep;
    if (keep == 0)
        ov_drop(f);
}

static int raw_pwritev_all(int fd, struct iovec *iov, int iovcnt, uint64_t off);

/* Writes the overlay of `fd`'s inode to the kernel and forgets it (the sync
 * that follows makes it durable). */
static int ov_flush(int fd)
{
    struct ov_file *f = ov_find_fd(fd, NULL);
    if (!f)
        return CMQ_OK;
    int st = CMQ_OK;
    for (size_t i = 0; !st && i < f->n; i++) {
        struct iovec iov = {f->ext[i].data, f->ext[i].len};
        st = raw_pwritev_all(fd, &iov, 1, f->ext[i].off);
    }
    if (!st)
        ov_drop(f);
    return st;
}

void file_fault_unsynced_enable(void)
{
    pthread_mutex_lock(&ov.mu);
    while (ov.n)
        ov_drop(&ov.files[ov.n - 1]);
    __atomic_store_n(&ov.crashed, 0, __ATOMIC_RELEASE);
    __atomic_store_n(&ov.on, 1, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&ov.mu);
}

int file_fault_unsynced_enabled(void)
{
    return ov_on();
}

static void dirops_undo(void);

void file_fault_crash(void)
{
    pthread_mutex_lock(&ov.mu);
    while (ov.n)
        ov_drop(&ov.files[ov.n - 1]);
    dirops_undo();
    __atomic_store_n(&ov.crashed, 1, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&ov.mu);
}

uint64_t file_fault_unsynced_bytes(void)
{
    pthread_mutex_lock(&ov.mu);
    uint64_t b = ov.bytes;
    pthread_mutex_unlock(&ov.mu);
    return b;
}

static char *dir_dup(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        return strdup(".");
    return strndup(path, slash == path ? 1 : (size_t)(slash - path));
}

static void dirop_free(struct dirop *o, int keep_backup)
{
    if (o->backup && !keep_backup)
        (void)unlink(o->backup);
    free(o->path);
    free(o->from);
    free(o->backup);
    free(o->dir);
    free(o->from_dir);
}

/* Records a create (from NULL) or a rename; on allocation failure the
 * operation is simply treated as durable. */
static void dirop_add(const char *path, const char *from, char *backup)
{
    if (dops.n == dops.cap) {
        size_t cap = dops.cap ? 2 * dops.cap : 16;
        struct dirop *n = realloc(dops.ops, cap * sizeof *n);
        if (!n) {
            if (backup)
                (void)unlink(backup);
            free(backup);
            return;
        }
        dops.ops = n;
        dops.cap = cap;
    }
    struct dirop o = {strdup(path), from ? strdup(from) : NULL, backup, dir_dup(path),
                      from ? dir_dup(from) : NULL, 0, from ? 0 : 1};
    if (!o.path || !o.dir || (from && (!o.from || !o.from_dir))) {
        dirop_free(&o, 0);
        return;
    }
    dops.ops[dops.n++] = o;
}

/* `dir` was fsynced: the operations in it are durable. */
static void dirops_synced(const char *dir)
{
    size_t keep = 0;
    for (size_t i = 0; i < dops.n; i++) {
        struct dirop *o = &dops.ops[i];
        o->dir_synced |= strcmp(o->dir, dir) == 0;
        o->from_dir_synced |= o->from_dir && strcmp(o->from_dir, dir) == 0;
        if (o->dir_synced && o->from_dir_synced)
            dirop_free(o, 0);
        else
            dops.ops[keep++] = *o;
    }
    dops.n = keep;
}

/* The power went: renames and creations not made durable go back, newest
 * first (errors ignored: a later unlink may have removed a name already). */
static void dirops_undo(void)
{
    while (dops.n) {
        struct dirop *o = &dops.ops[--dops.n];
        if (o->from) {
            (void)rename(o->path, o->from);
            if (o->backup)
                (void)rename(o->backup, o->path);
        } else {
            (void)unlink(o->path);
        }
        dirop_free(o, 1);
    }
}

void file_fault_dirops_enable(void)
{
    pthread_mutex_lock(&ov.mu);
    dops.on = 1;
    pthread_mutex_unlock(&ov.mu);
}

/* In fault mode: takes ov.mu; returns 1 when the machine has "crashed" (the
 * caller unlocks and does nothing). */
static int ov_lock(void)
{
    pthread_mutex_lock(&ov.mu);
    return __atomic_load_n(&ov.crashed, __ATOMIC_ACQUIRE);
}

static void ov_unlock(void)
{
    pthread_mutex_unlock(&ov.mu);
}

/* ---- the wrappers ---- */

static int raw_open(const char *path, int flags, int *fd)
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

int file_open(const char *path, int flags, int *fd)
{
    if (!ov_on())
        return raw_open(path, flags, fd);
    int writes = (flags & (O_CREAT | O_TRUNC)) != 0;
    if (ov_lock() && writes) {
        ov_unlock();
        return CMQ_EIO; /* the machine is down */
    }
    int created = dops.on && (flags & O_CREAT) && access(path, F_OK) != 0;
    int st = raw_open(path, flags, fd);
    if (!st && (flags & O_TRUNC))
        ov_cut(*fd, 0);
    if (!st && created)
        dirop_add(path, NULL, NULL);
    ov_unlock();
    return st;
}

static int raw_pread(int fd, void *buf, size_t len, uint64_t off, size_t *got)
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

int file_pread(int fd, void *buf, size_t len, uint64_t off, size_t *got)
{
    if (!ov_on())
        return raw_pread(fd, buf, len, off, got);
    ov_lock();
    int st = raw_pread(fd, buf, len, off, got);
    uint64_t disk = 0;
    struct ov_file *f = st ? NULL : ov_find_fd(fd, &disk);
    if (f) {
        /* The file as the process sees it: the disk, then the overlay on top
         * (bytes between the disk's end and an overlay extent read as 0). */
        uint64_t size = ov_end(f) > disk ? ov_end(f) : disk;
        size_t want = off >= size ? 0 : (size - off < len ? (size_t)(size - off) : len);
        if (want > *got)
            memset((uint8_t *)buf + *got, 0, want - *got);
        *got = want > *got ? want : *got;
        for (size_t i = 0; i < f->n; i++) {
            const struct ov_ext *e = &f->ext[i];
            uint64_t a = e->off > off ? e->off : off;
            uint64_t b = e->off + e->len < off + want ? e->off + e->len : off + want;
            if (a < b)
                memcpy((uint8_t *)buf + (a - off), e->data + (a - e->off), (size_t)(b - a));
        }
    }
    ov_unlock();
    return st;
}

static int raw_pwritev_all(int fd, struct iovec *iov, int iovcnt, uint64_t off)
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

int file_pwritev_all(int fd, struct iovec *iov, int iovcnt, uint64_t off)
{
    if (!ov_on())
        return raw_pwritev_all(fd, iov, iovcnt, off);
    if (ov_lock()) {
        ov_unlock();
        return CMQ_OK; /* the machine is down: the write goes nowhere */
    }
    int st = CMQ_OK;
    for (int i = 0; !st && i < iovcnt; i++) {
        st = ov_put(fd, iov[i].iov_base, iov[i].iov_len, off);
        off += iov[i].iov_len;
    }
    ov_unlock();
    return st;
}

int file_pwrite_all(int fd, const void *buf, size_t len, uint64_t off)
{
    struct iovec iov = {(void *)buf, len};
    return file_pwritev_all(fd, &iov, 1, off);
}

static int raw_next_data(int fd, uint64_t off, uint64_t end, uint64_t *start, uint64_t *stop);

int file_next_data(int fd, uint64_t off, uint64_t end, uint64_t *start, uint64_t *stop)
{
    if (!ov_on())
        return raw_next_data(fd, off, end, start, stop);
    ov_lock();
    uint64_t a = 0, b = 0;
    int st = raw_next_data(fd, off, end, &a, &b);
    struct ov_file *f = st && st != CMQ_ENOTFOUND ? NULL : ov_find_fd(fd, NULL);
    for (size_t i = 0; f && i < f->n; i++) {
        uint64_t os = f->ext[i].off > off ? f->ext[i].off : off;
        uint64_t oe = f->ext[i].off + f->ext[i].len < end ? f->ext[i].off + f->ext[i].len : end;
        if (os >= oe)
            continue;
        /* The first overlay extent in range: the answer is whichever range
         * starts first, widened over the other when they meet (a superset
         * of the data is always a correct answer). */
        if (st == CMQ_ENOTFOUND) {
            a = os;
            b = oe;
        } else if (os < a) {
            b = oe >= a && b > oe ? b : oe;
            a = os;
        } else if (os <= b && oe > b) {
            b = oe;
        }
        st = CMQ_OK;
        break;
    }
    ov_unlock();
    if (!st) {
        *start = a;
        *stop = b;
    }
    return st;
}

static int raw_next_data(int fd, uint64_t off, uint64_t end, uint64_t *start, uint64_t *stop)
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

/* In fault mode, a sync first hands the inode's overlay to the kernel (O3:
 * under ov.mu), then syncs without the lock.  Returns 1 in *skip when the
 * machine is down. */
static int sync_prepare(int fd, int *skip)
{
    *skip = 0;
    if (!ov_on())
        return CMQ_OK;
    if (ov_lock()) {
        ov_unlock();
        *skip = 1;
        return CMQ_OK;
    }
    int st = ov_flush(fd);
    ov_unlock();
    return st;
}

int file_fdatasync(int fd)
{
    int skip, st = sync_prepare(fd, &skip);
    if (st || skip)
        return st;
    /* Not retried on EINTR-like failures: after a failed fdatasync the page
     * cache state is unknown, so the caller must fail the log. */
    return fdatasync(fd) == 0 ? 0 : status_from_errno(errno);
}

int file_fsync(int fd)
{
    int skip, st = sync_prepare(fd, &skip);
    if (st || skip)
        return st;
    return fsync(fd) == 0 ? 0 : status_from_errno(errno);
}

static int raw_truncate(int fd, uint64_t len)
{
    int r;
    do
        r = ftruncate(fd, (off_t)len);
    while (r < 0 && errno == EINTR);
    return r == 0 ? 0 : status_from_errno(errno);
}

int file_truncate(int fd, uint64_t len)
{
    if (!ov_on())
        return raw_truncate(fd, len);
    if (ov_lock()) {
        ov_unlock();
        return CMQ_OK;
    }
    int st = raw_truncate(fd, len);
    if (!st)
        ov_cut(fd, len);
    ov_unlock();
    return st;
}

int file_preallocate(int fd, uint64_t len)
{
    if (ov_on() && __atomic_load_n(&ov.crashed, __ATOMIC_ACQUIRE))
        return CMQ_OK;
    int r = posix_fallocate(fd, 0, (off_t)len); /* returns the error number */
    return r == 0 ? 0 : status_from_errno(r);
}

int file_size(int fd, uint64_t *size)
{
    struct stat st;
    int on = ov_on();
    if (on)
        ov_lock();
    int s = fstat(fd, &st) == 0 ? 0 : status_from_errno(errno);
    if (!s) {
        *size = (uint64_t)st.st_size;
        if (on) {
            uint64_t e = ov_end(ov_find(st.st_dev, st.st_ino));
            *size = e > *size ? e : *size;
        }
    }
    if (on)
        ov_unlock();
    return s;
}

int file_fsync_dir(const char *dir)
{
    if (ov_on() && __atomic_load_n(&ov.crashed, __ATOMIC_ACQUIRE))
        return CMQ_OK;
    int fd, s = raw_open(dir, O_RDONLY | O_DIRECTORY, &fd);
    if (s)
        return s;
    s = fsync(fd) == 0 ? 0 : status_from_errno(errno);
    close(fd);
    if (!s && ov_on()) {
        pthread_mutex_lock(&ov.mu);
        if (dops.on)
            dirops_synced(dir);
        pthread_mutex_unlock(&ov.mu);
    }
    return s;
}

int file_rename(const char *from, const char *to)
{
    if (!ov_on())
        return rename(from, to) == 0 ? 0 : status_from_errno(errno);
    if (ov_lock()) {
        ov_unlock();
        return CMQ_OK;
    }
    /* A replaced target's inode may be freed and its number reused: its
     * overlay goes with it. */
    struct stat a, b;
    int replaces = stat(from, &a) == 0 && stat(to, &b) == 0 &&
                   (a.st_dev != b.st_dev || a.st_ino != b.st_ino);
    char *backup = NULL;
    if (replaces && dops.on) {
        /* Keep the replaced inode under a hidden name until the rename is
         * durable, so a crash can put it back. */
        size_t len = strlen(to) + 32;
        backup = malloc(len);
        if (backup)
            snprintf(backup, len, "%s.plbak%u", to, dops.seq++);
        if (backup && link(to, backup) != 0) {
            free(backup);
            backup = NULL;
        }
    } else if (replaces) {
        ov_drop(ov_find(b.st_dev, b.st_ino));
    }
    int st = rename(from, to) == 0 ? 0 : status_from_errno(errno);
    if (!st && dops.on)
        dirop_add(to, from, backup);
    else if (backup) {
        (void)unlink(backup);
        free(backup);
    }
    ov_unlock();
    return st;
}

int file_unlink(const char *path)
{
    int on = ov_on();
    if (on && ov_lock()) {
        ov_unlock();
        return CMQ_OK;
    }
    if (on)
        ov_drop_path(path); /* its inode number may be reused */
    int st = unlink(path) == 0 || errno == ENOENT ? 0 : status_from_errno(errno);
    if (on)
        ov_unlock();
    return st;
}
