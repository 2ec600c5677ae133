/* seglog_recover.c: opening a segment log after a crash or a clean stop
 * (seglog_open calls sl_recover; docs/storage-format.md, "Recovery").
 *
 * Lists the directory, checks every segment and rebuilds what can be rebuilt
 * from the segment itself, and finds the end of the log.  Raft (paper
 * section 5.3) relies on it: a log must never lose an acknowledged entry,
 * and must never invent one.  The rules:
 *   - a sealed segment is trusted through its .idx when the header, the size,
 *     the first and the last entries check out; otherwise its .idx is rebuilt
 *     by scanning it, and any bad record in it is CMQ_ECORRUPT;
 *   - the last segment is scanned.  At the first record that is not valid, the
 *     rest of the file is searched for a valid record: if there is one, the
 *     damage is in the middle and open fails with CMQ_ECORRUPT naming the file
 *     and offset; if not, it is a torn tail and is cut off.
 *
 * Builds on seglog_seg.c (the segment files, the reader and the scan) and
 * calls nothing in seglog.c.
 */
#include "seglog_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "file.h"
#include "log.h"
#include "status.h"

static int check_file_hdr(const uint8_t *h, size_t got, uint32_t magic, uint64_t first)
{
    return got == 32 && get_le32(h) == magic && get_le32(h + 4) == crc32c(0, h + 8, 24) &&
           get_le32(h + 8) == SEG_FORMAT_VERSION && get_le64(h + 16) == first;
}


/* Is there a valid record with index >= expect at `off`?  Reads with its own
 * buffer (*buf, allocated on first use, max record size), so the caller's
 * reader window stays valid.  Candidates are rare: only non-zero words that
 * start with the record magic. */
static int tail_candidate(struct seglog *log, int fd, uint64_t off, uint64_t size, uint64_t expect,
                          uint8_t **buf, uint64_t *index)
{
    size_t cap = (size_t)seg_rec_bytes(log->opts.max_record_bytes);
    if (!*buf && !(*buf = malloc(cap)))
        return -CMQ_ENOMEM;
    size_t got;
    int st = file_pread(fd, *buf, SEG_REC_HDR_BYTES, off, &got);
    if (st)
        return -st;
    if (got < SEG_REC_HDR_BYTES ||
        sl_rec_hdr_problem(*buf, off, size, log->opts.max_record_bytes) ||
        get_le64(*buf + 24) < expect)
        return 0;
    uint32_t len = get_le32(*buf + 12);
    st = file_pread(fd, *buf, SEG_REC_HDR_BYTES + (size_t)len, off, &got);
    if (st)
        return -st;
    if (got < SEG_REC_HDR_BYTES + (size_t)len || !sl_rec_crc_ok(*buf))
        return 0;
    *index = get_le64(*buf + 24);
    return 1;
}

/* After the last segment's first bad record at `from`: searches the rest of
 * the file for a valid record with index >= expect.  *found_off gets its
 * offset (or 0); *nonzero is set when any byte from `from` on is not zero.
 * Holes and unwritten preallocated extents are skipped (they read as zeros),
 * so a clean restart does not read the whole preallocated tail. */
static int scan_tail(struct seglog *log, struct seg *s, uint64_t from, uint64_t expect,
                     uint64_t *found_off, uint64_t *found_index, int *nonzero)
{
    struct reader rd;
    int st = sl_reader_init(&rd, log, s->fd);
    uint8_t *cand = NULL;
    *found_off = 0;
    *nonzero = 0;
    if (st) {
        sl_reader_free(&rd);
        return st;
    }
    uint64_t size = rd.file_size, off = from;
    file_advise_random(s->fd, 1); /* read only what is scanned */
    while (!st && !*found_off && off + 8 <= size) {
        /* Skip what the file system knows to be zeros (unwritten extents of
         * the preallocation, holes): a clean restart reads almost nothing. */
        uint64_t a, b;
        st = file_next_data(s->fd, off, size, &a, &b);
        if (st == CMQ_ENOTFOUND) {
            st = CMQ_OK;
            break;
        }
        if (st)
            break;
        off = a > off ? a & ~(uint64_t)(SEG_REC_ALIGN - 1) : off;
        while (!st && !*found_off && off + 8 <= b) {
            const uint8_t *p;
            size_t want = b - off < rd.cap ? (size_t)(b - off) : rd.cap;
            long n = sl_reader_get(&rd, off, want, &p);
            if (n < 0) {
                st = (int)-n;
                break;
            }
            if (n < 8) {
                off = b;
                break;
            }
            uint64_t words = (uint64_t)n / 8;
            for (uint64_t w = 0; w < words; w++) {
                uint64_t v;
                memcpy(&v, p + 8 * w, sizeof v);
                if (v == 0)
                    continue;
                *nonzero = 1;
                uint64_t at = off + 8 * w;
                if (at == from || get_le32(p + 8 * w) != SEG_REC_MAGIC)
                    continue;
                long r = tail_candidate(log, s->fd, at, size, expect, &cand, found_index);
                if (r < 0) {
                    st = (int)-r;
                    break;
                }
                if (r) {
                    *found_off = at;
                    break;
                }
            }
            off += 8 * words;
        }
        if (off < b)
            off = b;
    }
    file_advise_random(s->fd, 0);
    free(cand);
    sl_reader_free(&rd);
    return st;
}


/* ---- open and recovery ---- */

static int cmp_seg(const void *a, const void *b)
{
    const struct seg *x = a, *y = b;
    return x->first < y->first ? -1 : x->first > y->first;
}

static int parse_seg_name(const char *name, const char *ext, uint64_t *first)
{
    size_t n = strlen(name), e = strlen(ext);
    if (n != 20 + e || strcmp(name + 20, ext) != 0)
        return 0;
    uint64_t v = 0;
    for (int i = 0; i < 20; i++) {
        if (name[i] < '0' || name[i] > '9')
            return 0;
        uint64_t d = (uint64_t)(name[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return 0;
        v = v * 10 + d;
    }
    *first = v;
    return 1;
}

/* Lists segments, removes leftovers of interrupted creations and orphan .idx. */
static int list_dir(struct seglog *log)
{
    DIR *d = opendir(log->dir);
    if (!d) {
        int st = status_from_errno(errno);
        sl_set_err(log, "%s: cannot open directory (%s)", log->dir, status_name(st));
        return st;
    }
    struct dirent *de;
    int st = CMQ_OK;
    char path[PATH_MAX_];
    while (!st && (de = readdir(d))) {
        uint64_t first;
        if (parse_seg_name(de->d_name, ".seg", &first)) {
            if (log->n_segs == log->cap_segs) {
                size_t cap = log->cap_segs ? log->cap_segs * 2 : 16;
                struct seg *n = realloc(log->segs, cap * sizeof *n);
                if (!n) {
                    st = CMQ_ENOMEM;
                    break;
                }
                log->segs = n;
                log->cap_segs = cap;
            }
            log->segs[log->n_segs++] = (struct seg){.first = first, .fd = -1, .idx_fd = -1};
        } else if (parse_seg_name(de->d_name, ".seg.tmp", &first) ||
                   strcmp(de->d_name, "hardstate.tmp") == 0) {
            snprintf(path, sizeof path, "%s/%s", log->dir, de->d_name);
            st = file_unlink(path);
        }
    }
    closedir(d);
    if (st)
        return st;
    if (log->n_segs)
        qsort(log->segs, log->n_segs, sizeof *log->segs, cmp_seg);
    /* Orphan .idx files (their segment was deleted) go too. */
    d = opendir(log->dir);
    if (!d)
        return status_from_errno(errno);
    while (!st && (de = readdir(d))) {
        uint64_t first;
        if (!parse_seg_name(de->d_name, ".idx", &first))
            continue;
        struct seg key = {.first = first};
        if (!log->n_segs || !bsearch(&key, log->segs, log->n_segs, sizeof key, cmp_seg)) {
            snprintf(path, sizeof path, "%s/%s", log->dir, de->d_name);
            st = file_unlink(path);
        }
    }
    closedir(d);
    return st;
}

/* Opens `s` and checks its file header; sets s->size. */
static int seg_check_header(struct seglog *log, struct seg *s)
{
    char path[PATH_MAX_];
    sl_seg_path(log, s->first, ".seg", path);
    int st = sl_seg_open(log, s);
    if (st)
        return st;
    uint8_t h[SEG_FILE_HDR_BYTES];
    size_t got;
    st = file_pread(s->fd, h, sizeof h, 0, &got);
    if (st)
        return st;
    uint64_t size = get_le64(h + 24);
    if (!check_file_hdr(h, got, SEG_FILE_MAGIC, s->first) || size < SEGLOG_SEGMENT_BYTES_MIN ||
        size > SEGLOG_SEGMENT_BYTES_MAX || size % SEG_REC_ALIGN) {
        sl_set_err(log, "%s: offset 0: bad segment header", path);
        return CMQ_ECORRUPT;
    }
    s->size = size;
    return CMQ_OK;
}

/* Trusts a sealed segment's .idx if its header, size and first and last
 * entries check out (and the records they point at); else rebuilds it. */
static int recover_sealed(struct seglog *log, struct seg *s, uint64_t prev_term,
                          uint64_t *last_term)
{
    int st = seg_check_header(log, s);
    if (st)
        return st;
    uint64_t count = s->last - s->first + 1;
    uint8_t h[IDX_FILE_HDR_BYTES];
    size_t got;
    uint64_t isize;
    int ok = 0;
    st = file_pread(s->idx_fd, h, sizeof h, 0, &got);
    if (!st)
        st = file_size(s->idx_fd, &isize);
    if (st)
        return st;
    if (check_file_hdr(h, got, IDX_FILE_MAGIC, s->first) && get_le32(h + 12) == IDX_ENTRY_BYTES &&
        isize == IDX_FILE_HDR_BYTES + count * IDX_ENTRY_BYTES) {
        uint64_t t1 = 0, o1 = 0, t2 = 0, o2 = 0;
        ok = 1;
        uint64_t probe[2] = {s->first, s->last};
        for (int k = 0; k < 2 && ok; k++) {
            uint8_t e[IDX_ENTRY_BYTES] = {0};
            st = file_pread(s->idx_fd, e, sizeof e,
                            IDX_FILE_HDR_BYTES + (probe[k] - s->first) * IDX_ENTRY_BYTES, &got);
            if (st)
                return st;
            ok = got == sizeof e && idx_entry_valid(e, probe[k]);
            if (k == 0) {
                t1 = get_le64(e);
                o1 = get_le32(e + 8);
            } else {
                t2 = get_le64(e);
                o2 = get_le32(e + 8);
            }
        }
        if (ok)
            ok = t1 >= prev_term && t2 >= t1 && o1 == SEG_FILE_HDR_BYTES;
        /* The last record must be there and whole. */
        if (ok) {
            uint8_t rh[SEG_REC_HDR_BYTES];
            st = file_pread(s->fd, rh, sizeof rh, o2, &got);
            if (st)
                return st;
            ok = got == sizeof rh &&
                 !sl_rec_hdr_problem(rh, o2, s->size, log->opts.max_record_bytes) &&
                 get_le64(rh + 24) == s->last && get_le64(rh + 16) == t2;
        }
        if (ok) {
            *last_term = t2;
            return CMQ_OK;
        }
    }
    st = sl_seg_rebuild_idx(log, s, prev_term, last_term);
    if (st)
        return st;
    (void)file_fdatasync(s->idx_fd); /* advisory file: a failure only costs a rebuild */
    return CMQ_OK;
}

static int recover_last(struct seglog *log, struct seg *s, uint64_t prev_term)
{
    char path[PATH_MAX_];
    sl_seg_path(log, s->first, ".seg", path);
    int st = seg_check_header(log, s);
    if (st)
        return st;
    struct scan sc;
    st = sl_scan_segment(log, s, UINT64_MAX, prev_term, &sc);
    if (st)
        return st;
    uint64_t found_off = 0, found_index = 0;
    int nonzero;
    st = scan_tail(log, s, sc.end_off, sc.last + 1, &found_off, &found_index, &nonzero);
    if (st)
        return st;
    if (found_off) {
        sl_set_err(log, "%s: offset %" PRIu64 ": %s, but a valid record (index %" PRIu64
                   ") follows at offset %" PRIu64 "; refusing to drop it", path, sc.end_off,
                sc.bad ? sc.bad : "bad record", found_index, found_off);
        return CMQ_ECORRUPT;
    }
    s->last = sc.last;
    s->tail = sc.end_off;
    uint64_t fsize;
    st = file_size(s->fd, &fsize);
    if (st)
        return st;
    if (nonzero || fsize != s->size) {
        /* A torn tail: cut it so the next append starts on zeros (I2).  A
         * rare event the operator should see, so the library logs it. */
        log_warn("seglog_torn_tail", "file=%s offset=%" PRIu64 " reason=\"%s\" last_index=%" PRIu64,
                 path, sc.end_off, sc.bad ? sc.bad : "end", sc.last);
        log->st.tail_cuts++;
        st = sl_seg_cut(log, s, sc.end_off, sc.last + 1);
        if (st)
            return st;
    }
    log->last_term = sc.last >= s->first ? sc.last_term : prev_term;
    /* What we read back may have been in the page cache only. */
    st = file_fdatasync(s->fd);
    if (st)
        return sl_fail(log, st, "fdatasync", path);
    return CMQ_OK;
}


int sl_recover(struct seglog *log)
{
    int st = list_dir(log);
    if (st)
        return st;
    if (log->n_segs == 0) {
        if (!log->opts.create) {
            sl_set_err(log, "%s: no segment files and opts.create is off", log->dir);
            return CMQ_ENOTFOUND;
        }
        return sl_seg_create(log, log->opts.first_index);
    }
    if (log->segs[0].first == 0) {
        sl_set_err(log, "%s/%020d.seg: index 0 is not a valid first index", log->dir, 0);
        return CMQ_ECORRUPT;
    }
    for (size_t i = 0; i + 1 < log->n_segs; i++)
        log->segs[i].last = log->segs[i + 1].first - 1;
    uint64_t prev_term = 0;
    for (size_t i = 0; i + 1 < log->n_segs; i++) {
        st = recover_sealed(log, &log->segs[i], prev_term, &prev_term);
        if (st)
            return st;
    }
    st = recover_last(log, sl_active(log), prev_term);
    if (st)
        return st;
    log->st.segments = log->n_segs;
    return CMQ_OK;
}

