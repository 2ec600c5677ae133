/* seglog.c: the segment log (see seglog.h, docs/storage-format.md).
 *
 * The log is an ordered array of segments.  The last one is active: it is
 * the only one appended to and it always has its two descriptors open.  The
 * others are sealed: their last index is the next segment's first index
 * minus one, and their descriptors are opened on demand and closed again in
 * least-recently-used order, at most opts.max_open_segments at a time.
 *
 * Invariants (checked by assertions where cheap):
 *   I1. segs[i].first < segs[i+1].first, and segs[i].last == segs[i+1].first-1:
 *       the log has no holes.  The active segment may be empty (last == first-1).
 *   I2. Within a segment, record k holds index first+k at byte offset
 *       idx[k].offset; records are 8-byte aligned and back to back from byte 32.
 *       Everything after the active segment's tail is zero (a truncation
 *       ftruncates and re-preallocates, so no old record can ever reappear).
 *   I3. Terms never decrease along the log.
 *   I4. durable_index <= last_index; entries <= durable_index have been
 *       fdatasync'ed.
 *   I5. While `syncing` is set, a thread is in fdatasync on the descriptors of
 *       dirty segments with the mutex released: no segment may be closed or
 *       deleted (truncate, compact, reset and close wait on `cv`), and dirty
 *       segments are never evicted.
 *   I7. While `readers` is nonzero, seglog_read calls are in pread on pinned
 *       segments with the mutex released: a pinned segment is never evicted,
 *       and nothing is closed, cut or deleted (those wait for readers == 0).
 *   I6. A segment's records are fdatasync'ed before its successor is created,
 *       so on disk every sealed segment is complete: only the last segment
 *       can have a torn tail.
 *
 * Recovery (opening a log that was cut off at any point) is in
 * seglog_recover.c, one segment's files in seglog_seg.c; the layers and what
 * they share are in seglog_internal.h.
 */
#include "seglog.h"
#include "seglog_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <assert.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "file.h"
#include "format.h"
#include "log.h"
#include "status.h"

_Static_assert(SEG_FILE_HDR_BYTES + SEG_REC_HDR_BYTES + 8 <= SEGLOG_SEGMENT_BYTES_MIN,
               "a minimal segment holds a record");
_Static_assert(SEGLOG_SEGMENT_BYTES_MAX <= UINT32_MAX, "record offsets fit the u32 of the index");
_Static_assert(SEGLOG_RECORD_BYTES_DEFAULT + SEG_REC_HDR_BYTES + SEG_FILE_HDR_BYTES <=
                   SEGLOG_SEGMENT_BYTES_DEFAULT,
               "default record fits the default segment");


static const uint8_t zero_pad[SEG_REC_ALIGN];

static uint64_t log_first(const struct seglog *log)
{
    return log->segs[0].first;
}

static void wait_not_syncing(struct seglog *log)
{
    while (log->syncing)
        pthread_cond_wait(&log->cv, &log->mu);
}

/* Before closing, cutting or deleting segments (I5, I7). */
static void wait_quiet(struct seglog *log)
{
    while (log->syncing || log->readers)
        pthread_cond_wait(&log->cv, &log->mu);
}

/* Looks up index `i` of segment `s` in its .idx: *term and *off.  A bad
 * entry triggers one rebuild of the .idx from the segment. */
static int idx_lookup(struct seglog *log, struct seg *s, uint64_t i, uint64_t *term, uint64_t *off)
{
    assert(i >= s->first && i <= s->last);
    int st = sl_seg_open(log, s);
    if (st)
        return st;
    for (int attempt = 0; attempt < 2; attempt++) {
        uint8_t e[IDX_ENTRY_BYTES];
        size_t got;
        st = file_pread(s->idx_fd, e, sizeof e, IDX_FILE_HDR_BYTES + (i - s->first) * IDX_ENTRY_BYTES,
                        &got);
        if (st)
            return st;
        if (got == sizeof e && idx_entry_valid(e, i)) {
            *term = get_le64(e);
            *off = get_le32(e + 8);
            if (*off >= SEG_FILE_HDR_BYTES && *off + SEG_REC_HDR_BYTES <= s->size &&
                *off % SEG_REC_ALIGN == 0)
                return CMQ_OK;
        }
        if (attempt == 0) {
            st = sl_seg_rebuild_idx(log, s, 0, NULL);
            if (st)
                return st;
        }
    }
    char path[PATH_MAX_];
    sl_seg_path(log, s->first, ".idx", path);
    sl_set_err(log, "%s: entry for index %" PRIu64 " is bad even after a rebuild", path, i);
    return CMQ_ECORRUPT;
}

/* Reads and validates the record of index `i` at `off` of a segment whose
 * descriptor `fd` is pinned (I7); runs without the mutex, so it touches no
 * shared state.  The payload goes to buf (cap bytes); CMQ_ETOOBIG when it
 * does not fit (out->len still set).  On CMQ_ECORRUPT, *why says what. */
static int rec_read(int fd, uint64_t size, uint32_t max_record, uint64_t i, uint64_t off,
                    uint64_t want_term, struct seglog_entry *out, void *buf, size_t cap,
                    const char **why)
{
    uint8_t h[SEG_REC_HDR_BYTES];
    size_t got;
    *why = NULL;
    int st = file_pread(fd, h, sizeof h, off, &got);
    if (st)
        return st;
    *why = got < sizeof h ? "short header" : sl_rec_hdr_problem(h, off, size, max_record);
    if (!*why && get_le64(h + 24) != i)
        *why = "index differs from the .idx";
    if (!*why && get_le64(h + 16) != want_term)
        *why = "term differs from the .idx";
    if (*why)
        return CMQ_ECORRUPT;
    uint32_t len = get_le32(h + 12);
    out->len = len;
    if (len > cap)
        return CMQ_ETOOBIG;
    st = file_pread(fd, buf, len, off + SEG_REC_HDR_BYTES, &got);
    if (st)
        return st;
    if (got < len)
        *why = "short payload";
    else if (crc32c(crc32c(0, h + 8, SEG_REC_HDR_BYTES - 8), buf, len) != get_le32(h + 4))
        *why = "bad CRC";
    if (*why)
        return CMQ_ECORRUPT;
    out->term = want_term;
    out->index = i;
    out->type = h[9];
    out->data = buf;
    return CMQ_OK;
}

/* Offset just past the last record of `s` (for making it active again). */
static int seg_end_offset(struct seglog *log, struct seg *s, uint64_t *end)
{
    if (s->last < s->first) {
        *end = SEG_FILE_HDR_BYTES;
        return CMQ_OK;
    }
    uint64_t term, off;
    int st = idx_lookup(log, s, s->last, &term, &off);
    if (st)
        return st;
    uint8_t h[SEG_REC_HDR_BYTES];
    size_t got;
    st = file_pread(s->fd, h, sizeof h, off, &got);
    if (st)
        return st;
    if (got < sizeof h || sl_rec_hdr_problem(h, off, s->size, log->opts.max_record_bytes)) {
        char path[PATH_MAX_];
        sl_seg_path(log, s->first, ".seg", path);
        sl_set_err(log, "%s: offset %" PRIu64 ": bad record header for index %" PRIu64, path, off,
                   s->last);
        return CMQ_ECORRUPT;
    }
    *end = off + seg_rec_bytes(get_le32(h + 12));
    return CMQ_OK;
}

/* Removes segment `i` from disk and from the array (caller fsyncs the dir). */
static int seg_remove(struct seglog *log, size_t i)
{
    assert(!log->syncing && !log->readers);
    struct seg *s = &log->segs[i];
    sl_seg_close_fds(log, s);
    char path[PATH_MAX_];
    sl_seg_path(log, s->first, ".seg", path);
    int st = file_unlink(path);
    if (!st) {
        sl_seg_path(log, s->first, ".idx", path);
        st = file_unlink(path);
    }
    memmove(&log->segs[i], &log->segs[i + 1], (log->n_segs - i - 1) * sizeof *s);
    log->n_segs--;
    log->st.segments = log->n_segs;
    if (st)
        return sl_fail(log, st, "unlink", path);
    return CMQ_OK;
}

/* Makes the (new) last segment active after segments behind it were removed:
 * it stops counting as sealed and gets its tail. */
static int seg_make_active(struct seglog *log)
{
    struct seg *s = sl_active(log);
    sl_seg_uncount(log, s);
    int st = sl_seg_open(log, s); /* active now, so not counted */
    if (st)
        return st;
    return seg_end_offset(log, s, &s->tail);
}

static int check_opts(const struct seglog_opts *o)
{
    if (o->segment_bytes < SEGLOG_SEGMENT_BYTES_MIN || o->segment_bytes > SEGLOG_SEGMENT_BYTES_MAX ||
        o->segment_bytes % SEG_REC_ALIGN)
        return CMQ_EINVAL;
    if (o->max_record_bytes == 0 ||
        SEG_FILE_HDR_BYTES + seg_rec_bytes(o->max_record_bytes) > o->segment_bytes)
        return CMQ_EINVAL;
    if (o->max_open_segments == 0 || o->first_index == 0)
        return CMQ_EINVAL;
    return CMQ_OK;
}

void seglog_opts_default(struct seglog_opts *opts)
{
    *opts = (struct seglog_opts){.segment_bytes = SEGLOG_SEGMENT_BYTES_DEFAULT,
                                 .max_record_bytes = SEGLOG_RECORD_BYTES_DEFAULT,
                                 .max_open_segments = SEGLOG_OPEN_SEGMENTS_DEFAULT,
                                 .first_index = 1,
                                 .create = 1};
}

int seglog_open(const char *dir, const struct seglog_opts *opts, struct seglog **out,
                char err[SEGLOG_ERR_MAX])
{
    *out = NULL;
    if (err)
        err[0] = '\0';
    if (check_opts(opts)) {
        if (err)
            snprintf(err, SEGLOG_ERR_MAX, "seglog options out of range");
        return CMQ_EINVAL;
    }
    if (strlen(dir) > PATH_MAX_ - 64) {
        if (err)
            snprintf(err, SEGLOG_ERR_MAX, "directory path too long");
        return CMQ_ETOOBIG;
    }
    if (opts->create && mkdir(dir, 0755) != 0 && errno != EEXIST) {
        int st = status_from_errno(errno);
        if (err)
            snprintf(err, SEGLOG_ERR_MAX, "%s: mkdir failed (%s)", dir, status_name(st));
        return st;
    }
    struct seglog *log = calloc(1, sizeof *log);
    if (!log)
        return CMQ_ENOMEM;
    pthread_mutex_init(&log->mu, NULL);
    pthread_mutex_init(&log->hs_mu, NULL);
    pthread_cond_init(&log->cv, NULL);
    log->opts = *opts;
    log->dir = strdup(dir);
    log->hdrs = malloc(CHUNK_ENTRIES * sizeof *log->hdrs);
    log->idxe = malloc(CHUNK_ENTRIES * sizeof *log->idxe);
    log->iov = malloc(3 * CHUNK_ENTRIES * sizeof *log->iov);
    int st = (log->dir && log->hdrs && log->idxe && log->iov) ? sl_recover(log) : CMQ_ENOMEM;
    if (st == CMQ_OK && log->n_segs == 0)
        st = CMQ_EINTERNAL;
    if (st == CMQ_OK && log->failed)
        st = log->failed;
    if (st) {
        if (err)
            snprintf(err, SEGLOG_ERR_MAX, "%s", log->err[0] ? log->err : status_name(st));
        seglog_close(log);
        return st;
    }
    struct seg *a = sl_active(log);
    log->last_index = a->last;
    log->durable_index = log->last_index;
    log->err[0] = '\0';
    *out = log;
    return CMQ_OK;
}

void seglog_close(struct seglog *log)
{
    if (!log)
        return;
    pthread_mutex_lock(&log->mu);
    wait_quiet(log);
    for (size_t i = 0; i < log->n_segs; i++) {
        if (log->segs[i].fd >= 0)
            close(log->segs[i].fd);
        if (log->segs[i].idx_fd >= 0)
            close(log->segs[i].idx_fd);
    }
    pthread_mutex_unlock(&log->mu);
    pthread_mutex_destroy(&log->mu);
    pthread_mutex_destroy(&log->hs_mu);
    pthread_cond_destroy(&log->cv);
    free(log->segs);
    free(log->dir);
    free(log->hdrs);
    free(log->idxe);
    free(log->iov);
    free(log);
}

/* ---- append and sync ---- */

/* Writes entries [0, n) (all fitting in the active segment) with one pwritev
 * and their index entries with one pwrite. */
static int write_chunk(struct seglog *log, const struct seglog_entry *e, size_t n)
{
    struct seg *s = sl_active(log);
    int iovcnt = 0;
    uint64_t off = s->tail, start = s->tail, bytes = 0;
    for (size_t k = 0; k < n; k++) {
        seg_rec_encode(log->hdrs[k], e[k].term, e[k].index, e[k].type, e[k].data, e[k].len);
        idx_entry_encode(log->idxe[k], e[k].index, e[k].term, (uint32_t)off);
        log->iov[iovcnt++] = (struct iovec){log->hdrs[k], SEG_REC_HDR_BYTES};
        if (e[k].len)
            log->iov[iovcnt++] = (struct iovec){(void *)e[k].data, e[k].len};
        uint64_t rb = seg_rec_bytes(e[k].len);
        size_t pad = (size_t)(rb - SEG_REC_HDR_BYTES - e[k].len);
        if (pad)
            log->iov[iovcnt++] = (struct iovec){(void *)zero_pad, pad};
        off += rb;
        bytes += rb;
    }
    assert(off <= s->size);
    char path[PATH_MAX_];
    int st = sl_inject(log, "write");
    if (!st)
        st = file_pwritev_all(s->fd, log->iov, iovcnt, start);
    if (st) {
        sl_seg_path(log, s->first, ".seg", path);
        return sl_fail(log, st, "write", path);
    }
    st = file_pwrite_all(s->idx_fd, log->idxe, n * IDX_ENTRY_BYTES,
                         IDX_FILE_HDR_BYTES + (e[0].index - s->first) * IDX_ENTRY_BYTES);
    if (st) {
        sl_seg_path(log, s->first, ".idx", path);
        return sl_fail(log, st, "write", path);
    }
    s->tail = off;
    s->last = e[n - 1].index;
    s->dirty = 1;
    log->last_index = s->last;
    log->last_term = e[n - 1].term;
    log->st.appends += n;
    log->st.bytes += bytes;
    return CMQ_OK;
}

int seglog_append(struct seglog *log, const struct seglog_entry *entries, size_t n)
{
    pthread_mutex_lock(&log->mu);
    int st = log->failed;
    uint64_t next = log->last_index + 1, term = log->last_term;
    for (size_t k = 0; !st && k < n; k++) {
        const struct seglog_entry *e = &entries[k];
        if (e->index != next + k || e->term < term || e->term == 0 || (e->len && !e->data)) {
            sl_set_err(log, "append: entry %zu (index %" PRIu64 ", term %" PRIu64
                       ") does not continue the log at index %" PRIu64 " term >= %" PRIu64,
                       k, e->index, e->term, next + k, term);
            st = CMQ_EINVAL;
        } else if (e->len > log->opts.max_record_bytes) {
            sl_set_err(log, "append: entry %" PRIu64 " has %" PRIu32 " bytes, limit %" PRIu32,
                       e->index, e->len, log->opts.max_record_bytes);
            st = CMQ_ETOOBIG;
        }
        term = e->term;
    }
    size_t k = 0;
    while (!st && k < n) {
        struct seg *s = sl_active(log);
        uint64_t off = s->tail;
        size_t m = 0;
        while (k + m < n && m < CHUNK_ENTRIES && off + seg_rec_bytes(entries[k + m].len) <= s->size) {
            off += seg_rec_bytes(entries[k + m].len);
            m++;
        }
        if (m == 0) {
            /* Full: roll over.  check_opts guarantees a record fits an empty
             * segment of the current size; an empty active segment created
             * with a smaller segment_bytes (options changed across a restart)
             * is replaced instead. */
            if (s->last < s->first) {
                wait_quiet(log);
                st = seg_remove(log, log->n_segs - 1);
                if (!st && log->n_segs > 0)
                    sl_seg_uncount(log, sl_active(log));
            } else {
                /* I6: a segment is durable before its successor exists, so
                 * after a crash every sealed segment holds all the records its
                 * successor's name implies.  Once per segment, under the
                 * mutex. */
                st = sl_inject(log, "fdatasync");
                if (!st)
                    st = file_fdatasync(s->fd);
                if (st) {
                    char path[PATH_MAX_];
                    sl_seg_path(log, s->first, ".seg", path);
                    sl_fail(log, st, "fdatasync before rollover", path);
                }
            }
            if (!st)
                st = sl_seg_create(log, entries[k].index);
            continue;
        }
        st = write_chunk(log, entries + k, m);
        k += m;
    }
    pthread_mutex_unlock(&log->mu);
    return st;
}

int seglog_sync(struct seglog *log)
{
    pthread_mutex_lock(&log->mu);
    wait_not_syncing(log);
    int st = log->failed;
    if (st) {
        pthread_mutex_unlock(&log->mu);
        return st;
    }
    size_t nd = 0;
    for (size_t i = 0; i < log->n_segs; i++)
        nd += log->segs[i].dirty ? 1 : 0;
    if (nd == 0) {
        pthread_mutex_unlock(&log->mu);
        return CMQ_OK;
    }
    /* Descriptors to sync: each dirty segment, plus the .idx of sealed ones
     * (so a clean restart trusts them).  I5 keeps them open meanwhile. */
    int *fds = malloc(2 * nd * sizeof *fds);
    if (!fds) {
        pthread_mutex_unlock(&log->mu);
        return CMQ_ENOMEM;
    }
    size_t nf = 0;
    for (size_t i = 0; i < log->n_segs; i++) {
        struct seg *s = &log->segs[i];
        if (!s->dirty)
            continue;
        fds[nf++] = s->fd;
        if (i + 1 < log->n_segs)
            fds[nf++] = s->idx_fd;
    }
    uint64_t target = log->last_index;
    log->syncing = 1;
    pthread_mutex_unlock(&log->mu);

    st = sl_inject(log, "fdatasync");
    for (size_t i = 0; !st && i < nf; i++)
        st = file_fdatasync(fds[i]);
    free(fds);

    pthread_mutex_lock(&log->mu);
    log->syncing = 0;
    pthread_cond_broadcast(&log->cv);
    if (st) {
        sl_fail(log, st, "fdatasync", log->dir);
    } else {
        /* Segments dirtied again during the sync keep their flag only for
         * the part written after `target`: conservatively keep the active
         * one dirty if it grew. */
        for (size_t i = 0; i < log->n_segs; i++) {
            struct seg *s = &log->segs[i];
            if (s->dirty && s->last <= target)
                s->dirty = 0;
        }
        if (target > log->durable_index)
            log->durable_index = target < log->last_index ? target : log->last_index;
        log->st.syncs++;
    }
    pthread_mutex_unlock(&log->mu);
    return st;
}

/* ---- reading ---- */

static struct seg *find_seg(struct seglog *log, uint64_t index)
{
    size_t lo = 0, hi = log->n_segs;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (log->segs[mid].first <= index)
            lo = mid;
        else
            hi = mid;
    }
    return &log->segs[lo];
}

int seglog_read(struct seglog *log, uint64_t index, struct seglog_entry *out, void *buf,
                size_t cap)
{
    pthread_mutex_lock(&log->mu);
    if (index < log_first(log) || index > log->last_index) {
        pthread_mutex_unlock(&log->mu);
        return CMQ_ENOTFOUND;
    }
    struct seg *s = find_seg(log, index);
    uint64_t term, off;
    int st = idx_lookup(log, s, index, &term, &off);
    if (st) {
        pthread_mutex_unlock(&log->mu);
        return st;
    }
    /* The record itself is read with the mutex released (I7), so a cold
     * read from disk never holds up the writer thread. */
    int fd = s->fd;
    uint64_t first = s->first, size = s->size;
    s->pins++;
    log->readers++;
    pthread_mutex_unlock(&log->mu);

    const char *why;
    st = rec_read(fd, size, log->opts.max_record_bytes, index, off, term, out, buf, cap, &why);

    pthread_mutex_lock(&log->mu);
    s = find_seg(log, index); /* the array may have moved; the segment has not gone */
    assert(s->first == first && s->pins > 0);
    s->pins--;
    if (--log->readers == 0)
        pthread_cond_broadcast(&log->cv);
    if (st == CMQ_ECORRUPT) {
        char path[PATH_MAX_];
        sl_seg_path(log, first, ".seg", path);
        sl_set_err(log, "%s: offset %" PRIu64 ": record for index %" PRIu64 ": %s", path, off,
                   index, why);
    }
    pthread_mutex_unlock(&log->mu);
    return st;
}

int seglog_term_at(struct seglog *log, uint64_t index, uint64_t *term)
{
    pthread_mutex_lock(&log->mu);
    int st;
    if (index < log_first(log) || index > log->last_index) {
        st = CMQ_ENOTFOUND;
    } else if (index == log->last_index) {
        *term = log->last_term;
        st = CMQ_OK;
    } else {
        uint64_t off;
        st = idx_lookup(log, find_seg(log, index), index, term, &off);
    }
    pthread_mutex_unlock(&log->mu);
    return st;
}

uint64_t seglog_first_index(struct seglog *log)
{
    pthread_mutex_lock(&log->mu);
    uint64_t v = log_first(log);
    pthread_mutex_unlock(&log->mu);
    return v;
}

uint64_t seglog_last_index(struct seglog *log)
{
    pthread_mutex_lock(&log->mu);
    uint64_t v = log->last_index;
    pthread_mutex_unlock(&log->mu);
    return v;
}

uint64_t seglog_durable_index(struct seglog *log)
{
    pthread_mutex_lock(&log->mu);
    uint64_t v = log->durable_index;
    pthread_mutex_unlock(&log->mu);
    return v;
}

/* ---- truncation and compaction ---- */

/* Recomputes last_index/last_term from the active segment. */
static int refresh_tail_state(struct seglog *log)
{
    struct seg *a = sl_active(log);
    log->last_index = a->last;
    if (log->durable_index > log->last_index)
        log->durable_index = log->last_index;
    if (a->last >= a->first) {
        uint64_t off;
        return idx_lookup(log, a, a->last, &log->last_term, &off);
    }
    if (log->n_segs > 1) {
        struct seg *p = &log->segs[log->n_segs - 2];
        uint64_t off;
        return idx_lookup(log, p, p->last, &log->last_term, &off);
    }
    log->last_term = 0;
    return CMQ_OK;
}

int seglog_truncate_suffix(struct seglog *log, uint64_t from_index)
{
    pthread_mutex_lock(&log->mu);
    wait_quiet(log);
    int st = log->failed;
    if (st || from_index > log->last_index)
        goto out;
    if (from_index < log_first(log)) {
        sl_set_err(log, "truncate_suffix: index %" PRIu64 " is below the first index %" PRIu64,
                   from_index, log_first(log));
        st = CMQ_EINVAL;
        goto out;
    }
    /* Newest first, so a crash leaves a prefix of the old log, never a hole. */
    int removed = 0;
    while (!st && log->n_segs > 0 && sl_active(log)->first >= from_index) {
        st = seg_remove(log, log->n_segs - 1);
        removed = 1;
    }
    if (!st && removed)
        st = file_fsync_dir(log->dir);
    if (st) {
        sl_fail(log, st, "unlink", log->dir);
        goto out;
    }
    if (log->n_segs == 0) {
        st = sl_seg_create(log, from_index);
    } else {
        if (removed)
            st = seg_make_active(log);
        struct seg *a = sl_active(log);
        if (!st && from_index <= a->last) {
            uint64_t term, off;
            st = idx_lookup(log, a, from_index, &term, &off);
            if (!st)
                st = sl_seg_cut(log, a, off, from_index);
        }
    }
    if (!st)
        st = refresh_tail_state(log);
out:
    pthread_mutex_unlock(&log->mu);
    return st;
}

int seglog_compact_prefix(struct seglog *log, uint64_t up_to_index, unsigned *removed)
{
    pthread_mutex_lock(&log->mu);
    wait_quiet(log);
    int st = log->failed;
    unsigned n = 0;
    /* Oldest first, so a crash leaves a suffix of the old log. */
    while (!st && log->n_segs > 1 && log->segs[0].last <= up_to_index) {
        st = seg_remove(log, 0);
        n++;
    }
    if (!st && n)
        st = file_fsync_dir(log->dir);
    if (st)
        sl_fail(log, st, "compaction", log->dir);
    if (removed)
        *removed = n;
    pthread_mutex_unlock(&log->mu);
    return st;
}

int seglog_reset(struct seglog *log, uint64_t next_index)
{
    if (next_index == 0)
        return CMQ_EINVAL;
    pthread_mutex_lock(&log->mu);
    wait_quiet(log);
    int st = log->failed;
    while (!st && log->n_segs > 0)
        st = seg_remove(log, log->n_segs - 1);
    if (!st)
        st = file_fsync_dir(log->dir);
    if (!st)
        st = sl_seg_create(log, next_index);
    if (!st) {
        log->last_index = next_index - 1;
        log->last_term = 0;
        log->durable_index = log->last_index;
    } else {
        sl_fail(log, st, "reset", log->dir);
    }
    pthread_mutex_unlock(&log->mu);
    return st;
}

/* ---- misc ---- */

void seglog_last_error(struct seglog *log, char buf[SEGLOG_ERR_MAX])
{
    pthread_mutex_lock(&log->mu);
    snprintf(buf, SEGLOG_ERR_MAX, "%s", log->err);
    pthread_mutex_unlock(&log->mu);
}

void seglog_stats(struct seglog *log, struct seglog_stats *out)
{
    pthread_mutex_lock(&log->mu);
    *out = log->st;
    pthread_mutex_unlock(&log->mu);
}

/* ---- hard state ---- */

int seglog_hardstate_save(struct seglog *log, const struct seglog_hardstate *hs)
{
    uint8_t b[HS_FILE_BYTES];
    put_le32(b, HS_FILE_MAGIC);
    put_le32(b + 8, SEG_FORMAT_VERSION);
    put_le32(b + 12, 0);
    put_le64(b + 16, hs->term);
    put_le64(b + 24, hs->vote);
    put_le64(b + 32, hs->commit);
    put_le32(b + 4, crc32c(0, b + 8, HS_FILE_BYTES - 8));

    char tmp[PATH_MAX_], path[PATH_MAX_];
    snprintf(tmp, sizeof tmp, "%s/hardstate.tmp", log->dir);
    snprintf(path, sizeof path, "%s/hardstate", log->dir);
    pthread_mutex_lock(&log->hs_mu);
    int fd = -1;
    int st = sl_inject(log, "hardstate");
    if (!st)
        st = file_open(tmp, O_WRONLY | O_CREAT | O_TRUNC, &fd);
    if (!st)
        st = file_pwrite_all(fd, b, sizeof b, 0);
    if (!st)
        st = file_fsync(fd);
    if (fd >= 0)
        close(fd);
    if (!st)
        st = file_rename(tmp, path);
    if (!st)
        st = file_fsync_dir(log->dir);
    pthread_mutex_unlock(&log->hs_mu);
    if (st) {
        pthread_mutex_lock(&log->mu);
        sl_fail(log, st, "hard-state save", path);
        pthread_mutex_unlock(&log->mu);
    }
    return st;
}

int seglog_hardstate_load(struct seglog *log, struct seglog_hardstate *hs)
{
    *hs = (struct seglog_hardstate){0};
    char path[PATH_MAX_];
    snprintf(path, sizeof path, "%s/hardstate", log->dir);
    int fd;
    int st = file_open(path, O_RDONLY, &fd);
    if (st == CMQ_ENOTFOUND)
        return st;
    uint8_t b[HS_FILE_BYTES + 1];
    size_t got = 0;
    if (!st) {
        st = file_pread(fd, b, sizeof b, 0, &got);
        close(fd);
    }
    if (st)
        return st;
    const char *why = NULL;
    if (got != HS_FILE_BYTES)
        why = "wrong size";
    else if (get_le32(b) != HS_FILE_MAGIC)
        why = "bad magic";
    else if (get_le32(b + 4) != crc32c(0, b + 8, HS_FILE_BYTES - 8))
        why = "bad CRC";
    else if (get_le32(b + 8) != SEG_FORMAT_VERSION || get_le32(b + 12) != 0)
        why = "unknown version";
    if (why) {
        pthread_mutex_lock(&log->mu);
        sl_set_err(log, "%s: offset 0: %s", path, why);
        pthread_mutex_unlock(&log->mu);
        return CMQ_ECORRUPT;
    }
    hs->term = get_le64(b + 16);
    hs->vote = get_le64(b + 24);
    hs->commit = get_le64(b + 32);
    return CMQ_OK;
}
