/* seglog_internal.h: the private model of common/seglog, in three layers
 * that call only downwards:
 *   seglog.c          the log: append, sync, read, truncation, compaction,
 *                     hard state; seglog_open calls sl_recover
 *   seglog_recover.c  opening a log after a crash or a clean stop
 *   seglog_seg.c      one segment's files: create, open, cut, record checks,
 *                     the sequential reader and the scan; errors and failure
 * Private to common/seglog;
 * the invariants I1-I7 the structs keep are listed at the top of seglog.c.
 * Every function here expects log->mu held unless it says otherwise. */
#ifndef CMQ_SEGLOG_INTERNAL_H
#define CMQ_SEGLOG_INTERNAL_H

#include "format.h"
#include "seglog.h"

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#define PATH_MAX_ 4096
#define CHUNK_ENTRIES 256 /* entries per pwritev: 3 iovecs each, under IOV_MAX */
#define READER_MIN_BYTES (1u << 20)

struct seg {
    uint64_t first;
    uint64_t last;   /* first-1 when empty */
    uint64_t size;   /* intended (preallocated) file size, from the header */
    uint64_t tail;   /* active segment: byte offset of the next record */
    uint64_t lru;
    int fd, idx_fd;  /* -1 when closed */
    int counted;     /* open and sealed: counted in open_sealed */
    int pins;        /* readers in pread on fd with the mutex released */
    int dirty;       /* written since the last sync */
};

struct seglog {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_mutex_t hs_mu; /* serialises hard-state saves */
    int syncing;
    unsigned readers; /* seglog_read calls in pread with the mutex released */
    char *dir;
    struct seglog_opts opts;
    struct seg *segs;
    size_t n_segs, cap_segs;
    uint64_t last_index, last_term, durable_index;
    uint64_t tick;
    unsigned open_sealed;
    int failed; /* CMQ_OK, or the status that failed the log */
    char err[SEGLOG_ERR_MAX];
    struct seglog_stats st;
    /* Append scratch, sized once. */
    uint8_t (*hdrs)[SEG_REC_HDR_BYTES];
    uint8_t (*idxe)[IDX_ENTRY_BYTES];
    struct iovec *iov;
};

/* ---- seglog_seg.c ---- */

/* The active (last) segment. */
struct seg *sl_active(struct seglog *log);
int sl_fail(struct seglog *log, int status, const char *what, const char *path);
/* The test seam (seglog_opts.fault): nonzero fails operation `op`. */
int sl_inject(const struct seglog *log, const char *op);
void sl_seg_uncount(struct seglog *log, struct seg *s);
void sl_seg_close_fds(struct seglog *log, struct seg *s);
int sl_idx_write_header(struct seglog *log, struct seg *s);
int sl_seg_create(struct seglog *log, uint64_t first);
int sl_seg_cut(struct seglog *log, struct seg *s, uint64_t off, uint64_t from);
int sl_seg_open(struct seglog *log, struct seg *s);
void sl_seg_path(const struct seglog *log, uint64_t first, const char *ext, char *buf);
int sl_seg_rebuild_idx(struct seglog *log, struct seg *s, uint64_t prev_term,
                       uint64_t *last_term);
void sl_set_err(struct seglog *log, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The sequential reader the scans use. */
struct reader {
    int fd;
    uint8_t *buf;
    size_t cap;
    uint64_t base; /* file offset of buf[0] */
    size_t have;
    uint64_t file_size;
};
int sl_reader_init(struct reader *r, const struct seglog *log, int fd);
void sl_reader_free(struct reader *r);
long sl_reader_get(struct reader *r, uint64_t off, size_t len, const uint8_t **p);

struct scan {
    uint64_t end_off;   /* byte after the last good record */
    uint64_t last;      /* last good index (first-1 when none) */
    uint64_t last_term;
    const char *bad;    /* why the scan stopped early, NULL when it reached stop_last */
};

int sl_scan_segment(struct seglog *log, struct seg *s, uint64_t stop_last, uint64_t prev_term,
                    struct scan *out);
const char *sl_rec_hdr_problem(const uint8_t *h, uint64_t off, uint64_t size,
                               uint32_t max_record);
int sl_rec_crc_ok(const uint8_t *rec);

/* ---- seglog_recover.c ---- */

int sl_recover(struct seglog *log);

#endif
