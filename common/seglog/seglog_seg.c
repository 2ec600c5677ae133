/* seglog_seg.c: one segment's files, the layer under the log and its recovery
 * (seglog.c and seglog_recover.c both build on it; it calls neither).
 *
 * A segment is a preallocated .seg file of 8-byte aligned records and its
 * .idx of (term, offset) entries (docs/storage-format.md).  Here: creating a
 * segment durably, opening its descriptors (sealed ones within the
 * max_open_segments budget, least recently used closed first), cutting it
 * at a record boundary, checking a record header and CRC, the sequential
 * reader and the scan that rebuilds a .idx from the .seg.  The log's error
 * text and failed state (sl_set_err, sl_fail) live here too, since every
 * layer reports through them.  Callers hold log->mu.
 */
#include "seglog_internal.h"

#include <assert.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crc32c.h"
#include "file.h"
#include "format.h"
#include "status.h"

/* ---- small helpers ---- */

void sl_set_err(struct seglog *log, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(log->err, sizeof log->err, fmt, ap);
    va_end(ap);
}

void sl_seg_path(const struct seglog *log, uint64_t first, const char *ext, char *buf)
{
    snprintf(buf, PATH_MAX_, "%s/%020" PRIu64 "%s", log->dir, first, ext);
}

struct seg *sl_active(struct seglog *log)
{
    assert(log->n_segs > 0);
    return &log->segs[log->n_segs - 1];
}

static int is_active(const struct seglog *log, const struct seg *s)
{
    return s == &log->segs[log->n_segs - 1];
}


/* Fails the log after an I/O error on a write path. */
int sl_fail(struct seglog *log, int status, const char *what, const char *path)
{
    if (!log->failed)
        log->failed = status;
    sl_set_err(log, "%s: %s failed (%s); log is failed until reopened", path, what,
               status_name(status));
    return status;
}

/* The test seam (seglog_opts.fault): nonzero fails operation `op`. */
int sl_inject(const struct seglog *log, const char *op)
{
    return log->opts.fault ? log->opts.fault(log->opts.fault_arg, op) : CMQ_OK;
}

void sl_seg_uncount(struct seglog *log, struct seg *s)
{
    if (s->counted) {
        s->counted = 0;
        log->open_sealed--;
    }
}

void sl_seg_close_fds(struct seglog *log, struct seg *s)
{
    if (s->fd >= 0)
        close(s->fd);
    if (s->idx_fd >= 0)
        close(s->idx_fd);
    s->fd = s->idx_fd = -1;
    sl_seg_uncount(log, s);
}

/* Closes least-recently-used sealed segments beyond the budget (I5: never a
 * dirty one, never `keep`). */
static void evict(struct seglog *log, const struct seg *keep)
{
    while (log->open_sealed > log->opts.max_open_segments) {
        struct seg *victim = NULL;
        for (size_t i = 0; i + 1 < log->n_segs; i++) {
            struct seg *s = &log->segs[i];
            if (s->fd < 0 || s->dirty || s->pins || s == keep)
                continue;
            if (!victim || s->lru < victim->lru)
                victim = s;
        }
        if (!victim)
            return;
        sl_seg_close_fds(log, victim);
    }
}


/* ---- file headers ---- */

int sl_idx_write_header(struct seglog *log, struct seg *s)
{
    uint8_t h[IDX_FILE_HDR_BYTES];
    file_hdr_encode(h, IDX_FILE_MAGIC, IDX_ENTRY_BYTES, s->first, 0);
    int st = file_truncate(s->idx_fd, 0);
    if (!st)
        st = file_pwrite_all(s->idx_fd, h, sizeof h, 0);
    (void)log;
    return st;
}

/* ---- opening segment files ---- */

/* Opens the descriptors of `s` if closed; a missing .idx is rebuilt. */
int sl_seg_open(struct seglog *log, struct seg *s)
{
    s->lru = ++log->tick;
    if (s->fd >= 0)
        return CMQ_OK;
    char path[PATH_MAX_];
    sl_seg_path(log, s->first, ".seg", path);
    int st = file_open(path, O_RDWR, &s->fd);
    if (st) {
        sl_set_err(log, "%s: open failed (%s)", path, status_name(st));
        return st;
    }
    if (!is_active(log, s)) {
        s->counted = 1;
        log->open_sealed++;
    }
    sl_seg_path(log, s->first, ".idx", path);
    st = file_open(path, O_RDWR | O_CREAT, &s->idx_fd);
    if (st) {
        sl_set_err(log, "%s: open failed (%s)", path, status_name(st));
        sl_seg_close_fds(log, s);
        return st;
    }
    evict(log, s);
    return CMQ_OK;
}

/* Rebuilds the .idx of a segment whose entries up to s->last must all be
 * present; anything less is corruption. */
int sl_seg_rebuild_idx(struct seglog *log, struct seg *s, uint64_t prev_term,
                       uint64_t *last_term)
{
    struct scan sc;
    log->st.idx_rebuilds++;
    int st = sl_scan_segment(log, s, s->last, prev_term, &sc);
    if (st)
        return st;
    if (last_term)
        *last_term = sc.last_term;
    if (sc.last != s->last) {
        char path[PATH_MAX_];
        sl_seg_path(log, s->first, ".seg", path);
        sl_set_err(log, "%s: offset %" PRIu64 ": %s where index %" PRIu64
                   " was expected (the segment should hold up to index %" PRIu64 ")", path,
                   sc.end_off, sc.bad ? sc.bad : "end of scan", sc.last + 1, s->last);
        return CMQ_ECORRUPT;
    }
    return CMQ_OK;
}


/* Cuts `s` at byte `off` (index `from` and later dropped), leaving zeros
 * after it (I2), durably. */
int sl_seg_cut(struct seglog *log, struct seg *s, uint64_t off, uint64_t from)
{
    char path[PATH_MAX_];
    sl_seg_path(log, s->first, ".seg", path);
    int st = sl_inject(log, "truncate");
    if (!st)
        st = file_truncate(s->fd, off);
    if (!st)
        st = file_preallocate(s->fd, s->size);
    if (!st)
        st = file_fsync(s->fd);
    if (!st)
        st = file_truncate(s->idx_fd, IDX_FILE_HDR_BYTES + (from - s->first) * IDX_ENTRY_BYTES);
    if (st)
        return sl_fail(log, st, "truncate", path);
    s->last = from - 1;
    s->tail = off;
    return CMQ_OK;
}

/* Creates segment `first` durably (tmp file, preallocate, header, fsync,
 * rename, fsync dir) and appends it to the array as the new active one. */
int sl_seg_create(struct seglog *log, uint64_t first)
{
    if (log->n_segs == log->cap_segs) {
        size_t cap = log->cap_segs ? log->cap_segs * 2 : 16;
        struct seg *n = realloc(log->segs, cap * sizeof *n);
        if (!n)
            return CMQ_ENOMEM;
        log->segs = n;
        log->cap_segs = cap;
    }
    char tmp[PATH_MAX_], path[PATH_MAX_];
    sl_seg_path(log, first, ".seg.tmp", tmp);
    sl_seg_path(log, first, ".seg", path);
    int fd = -1, ifd = -1;
    int st = sl_inject(log, "create");
    if (!st)
        st = file_open(tmp, O_RDWR | O_CREAT | O_TRUNC, &fd);
    if (!st)
        st = file_preallocate(fd, log->opts.segment_bytes);
    if (!st) {
        uint8_t h[SEG_FILE_HDR_BYTES];
        file_hdr_encode(h, SEG_FILE_MAGIC, 0, first, log->opts.segment_bytes);
        st = file_pwrite_all(fd, h, sizeof h, 0);
    }
    if (!st)
        st = file_fsync(fd);
    if (!st)
        st = file_rename(tmp, path);
    if (!st) {
        sl_seg_path(log, first, ".idx", tmp);
        st = file_open(tmp, O_RDWR | O_CREAT | O_TRUNC, &ifd);
    }
    if (!st)
        st = file_fsync_dir(log->dir);
    if (st) {
        if (fd >= 0)
            close(fd);
        if (ifd >= 0)
            close(ifd);
        return sl_fail(log, st, "segment creation", path);
    }
    /* The previous active segment becomes sealed. */
    if (log->n_segs > 0 && sl_active(log)->fd >= 0 && !sl_active(log)->counted) {
        sl_active(log)->counted = 1;
        log->open_sealed++;
    }
    /* The next sync also fdatasyncs the sealed segment's .idx, so a clean
     * restart can trust it. */
    if (log->n_segs > 0)
        sl_active(log)->dirty = 1;
    struct seg *s = &log->segs[log->n_segs++];
    *s = (struct seg){.first = first, .last = first - 1, .size = log->opts.segment_bytes,
                      .tail = SEG_FILE_HDR_BYTES, .lru = ++log->tick, .fd = fd, .idx_fd = ifd};
    st = sl_idx_write_header(log, s);
    if (st)
        return sl_fail(log, st, "index header write", path);
    log->st.segments = log->n_segs;
    evict(log, s);
    return CMQ_OK;
}


/* ---- sequential reader used by scans ---- */


int sl_reader_init(struct reader *r, const struct seglog *log, int fd)
{
    size_t need = (size_t)seg_rec_bytes(log->opts.max_record_bytes) + 4096;
    r->cap = need < READER_MIN_BYTES ? READER_MIN_BYTES : need;
    r->buf = malloc(r->cap);
    if (!r->buf)
        return CMQ_ENOMEM;
    r->fd = fd;
    r->base = 0;
    r->have = 0;
    return file_size(fd, &r->file_size);
}

void sl_reader_free(struct reader *r)
{
    free(r->buf);
    r->buf = NULL;
}

/* Makes [off, off+len) available; *p points at it.  Returns the bytes
 * available (less than len only at end of file), or -status. */
long sl_reader_get(struct reader *r, uint64_t off, size_t len, const uint8_t **p)
{
    assert(len <= r->cap);
    if (off < r->base || off + len > r->base + r->have) {
        if (off >= r->file_size) {
            *p = NULL;
            return 0;
        }
        size_t got;
        int s = file_pread(r->fd, r->buf, r->cap, off, &got);
        if (s)
            return -s;
        r->base = off;
        r->have = got;
    }
    *p = r->buf + (off - r->base);
    uint64_t avail = r->base + r->have - off;
    return (long)(avail < len ? avail : len);
}

/* Checks a record header at `off` in a file of `size` bytes.  Returns NULL
 * when plausible, else why not. */
const char *sl_rec_hdr_problem(const uint8_t *h, uint64_t off, uint64_t size,
                               uint32_t max_record)
{
    if (get_le32(h) != SEG_REC_MAGIC)
        return "bad magic";
    if (h[8] != SEG_FORMAT_VERSION)
        return "unknown record version";
    if (get_le16(h + 10) != 0)
        return "nonzero flags";
    uint32_t len = get_le32(h + 12);
    if (len > max_record)
        return "length over the record limit";
    if (off + seg_rec_bytes(len) > size)
        return "record runs past the end of the file";
    return NULL;
}

int sl_rec_crc_ok(const uint8_t *rec)
{
    uint32_t len = get_le32(rec + 12);
    uint32_t crc = crc32c(0, rec + 8, SEG_REC_HDR_BYTES - 8);
    crc = crc32c(crc, rec + SEG_REC_HDR_BYTES, len);
    return crc == get_le32(rec + 4);
}


/* ---- scanning a segment ---- */

/* Scans `s` from its first record, up to index stop_last, rewriting its .idx.
 * Stops at the first record that is not valid (scan->bad says why).  A valid
 * record with the wrong index or a falling term is CMQ_ECORRUPT at once. */
int sl_scan_segment(struct seglog *log, struct seg *s, uint64_t stop_last, uint64_t prev_term,
                    struct scan *out)
{
    char path[PATH_MAX_];
    sl_seg_path(log, s->first, ".seg", path);
    struct reader rd;
    int st = sl_reader_init(&rd, log, s->fd);
    if (st) {
        sl_reader_free(&rd);
        return st;
    }
    uint64_t size = rd.file_size < s->size ? rd.file_size : s->size;
    st = sl_idx_write_header(log, s);
    uint8_t ibuf[CHUNK_ENTRIES][IDX_ENTRY_BYTES];
    size_t ni = 0;
    uint64_t ioff = IDX_FILE_HDR_BYTES;
    uint64_t off = SEG_FILE_HDR_BYTES, expect = s->first;
    out->bad = NULL;
    while (!st && expect <= stop_last) {
        const uint8_t *p;
        if (off + SEG_REC_HDR_BYTES > size) {
            out->bad = "end of file";
            break;
        }
        long n = sl_reader_get(&rd, off, SEG_REC_HDR_BYTES, &p);
        if (n < 0) {
            st = (int)-n;
            break;
        }
        if (n < SEG_REC_HDR_BYTES) {
            out->bad = "short header";
            break;
        }
        const char *why = sl_rec_hdr_problem(p, off, size, log->opts.max_record_bytes);
        if (why) {
            static const uint8_t zeros[SEG_REC_HDR_BYTES];
            out->bad = memcmp(p, zeros, sizeof zeros) == 0 ? "zeros" : why;
            break;
        }
        uint32_t len = get_le32(p + 12);
        n = sl_reader_get(&rd, off, SEG_REC_HDR_BYTES + (size_t)len, &p);
        if (n < 0) {
            st = (int)-n;
            break;
        }
        if ((size_t)n < SEG_REC_HDR_BYTES + (size_t)len) {
            out->bad = "short payload";
            break;
        }
        if (!sl_rec_crc_ok(p)) {
            out->bad = "bad CRC";
            break;
        }
        uint64_t term = get_le64(p + 16), index = get_le64(p + 24);
        if (index != expect) {
            sl_set_err(log, "%s: offset %" PRIu64 ": record has index %" PRIu64 " where %" PRIu64
                       " was expected", path, off, index, expect);
            st = CMQ_ECORRUPT;
            break;
        }
        if (term < prev_term) {
            sl_set_err(log, "%s: offset %" PRIu64 ": index %" PRIu64 " has term %" PRIu64
                       " below the previous term %" PRIu64, path, off, index, term, prev_term);
            st = CMQ_ECORRUPT;
            break;
        }
        idx_entry_encode(ibuf[ni++], index, term, (uint32_t)off);
        if (ni == CHUNK_ENTRIES) {
            st = file_pwrite_all(s->idx_fd, ibuf, sizeof ibuf, ioff);
            ioff += sizeof ibuf;
            ni = 0;
        }
        prev_term = term;
        expect++;
        off += seg_rec_bytes(len);
    }
    if (!st && ni)
        st = file_pwrite_all(s->idx_fd, ibuf, ni * IDX_ENTRY_BYTES, ioff);
    out->end_off = off;
    out->last = expect - 1;
    out->last_term = prev_term;
    sl_reader_free(&rd);
    return st;
}
