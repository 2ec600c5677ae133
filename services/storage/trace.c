/* trace.c: the message trace index; see trace.h.
 *
 * Record (112 bytes, little-endian, fixed so a query can binary-search by
 * index):  u64 index | u64 msg_id | u64 queue_id | u64 time_ms | u64 handle |
 *          u64 due_ms | u64 aux | u32 event | u8 addr_len | 3 pad |
 *          char addr[48] (truncated; a longer address keeps its first 48 bytes)
 * Records are appended in apply order, so `index` never decreases within a
 * file, and trace.old holds only indexes below trace's.
 */
#include "trace.h"

#include "status.h"
#include "tsm.h"
#include "storage.pb.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define REC 112
#define ADDR_MAX 48
_Static_assert(7 * 8 + 4 + 4 + ADDR_MAX == REC, "trace record layout");

struct trace_log {
    char path[300], old[310];
    FILE *f;           /* current file, appending */
    uint64_t bytes;    /* its size, buffered records included */
    uint64_t skip_to;  /* entries at or below this index are in the file already */
};

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static int read_rec(int fd, uint64_t i, uint8_t *rec)
{
    return pread(fd, rec, REC, (off_t)(i * REC)) == REC ? 0 : -1;
}

int trace_open(const char *dir, struct trace_log **out)
{
    struct trace_log *t = calloc(1, sizeof *t);
    if (!t)
        return CMQ_ENOMEM;
    snprintf(t->path, sizeof t->path, "%s/trace", dir);
    snprintf(t->old, sizeof t->old, "%s/trace.old", dir);
    int fd = open(t->path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0) {
        free(t);
        return status_from_errno(errno);
    }
    struct stat st;
    uint64_t n = fstat(fd, &st) == 0 ? (uint64_t)st.st_size / REC : 0;
    /* drop a torn tail and the last entry's records (its events may be
     * incomplete; the replay applies it again) */
    uint8_t rec[REC];
    uint64_t keep = n;
    if (n && read_rec(fd, n - 1, rec) == 0) {
        uint64_t last = get64(rec);
        while (keep && read_rec(fd, keep - 1, rec) == 0 && get64(rec) == last)
            keep--;
        t->skip_to = last ? last - 1 : 0;
    }
    if (!n) { /* just rotated: the previous file says what is written */
        int ofd = open(t->old, O_RDONLY | O_CLOEXEC);
        struct stat ost;
        if (ofd >= 0 && fstat(ofd, &ost) == 0 && ost.st_size >= REC &&
            read_rec(ofd, (uint64_t)ost.st_size / REC - 1, rec) == 0)
            t->skip_to = get64(rec);
        if (ofd >= 0)
            close(ofd);
    }
    if (ftruncate(fd, (off_t)(keep * REC)) != 0) {
        close(fd);
        free(t);
        return CMQ_EIO;
    }
    t->f = fdopen(fd, "a");
    if (!t->f) {
        close(fd);
        free(t);
        return CMQ_EIO;
    }
    t->bytes = keep * REC;
    *out = t;
    return CMQ_OK;
}

void trace_close(struct trace_log *t)
{
    if (!t)
        return;
    if (t->f)
        fclose(t->f);
    free(t);
}

void trace_flush(struct trace_log *t)
{
    if (t && t->f)
        fflush(t->f);
}

static void rotate(struct trace_log *t)
{
    fclose(t->f);
    t->f = NULL;
    if (rename(t->path, t->old) != 0)
        unlink(t->path);
    t->f = fopen(t->path, "a");
    t->bytes = 0;
}

static void on_event(void *arg, uint64_t index, const struct qsm_trace_ev *ev)
{
    struct trace_log *t = arg;
    if (!t->f || index <= t->skip_to)
        return;
    uint8_t rec[REC] = {0};
    put64(rec, index);
    put64(rec + 8, ev->msg_id);
    put64(rec + 16, ev->queue_id);
    put64(rec + 24, ev->time_ms);
    put64(rec + 32, ev->handle);
    put64(rec + 40, ev->due_ms);
    put64(rec + 48, ev->aux);
    rec[56] = (uint8_t)ev->event;
    size_t al = ev->addr_len < ADDR_MAX ? ev->addr_len : ADDR_MAX;
    rec[60] = (uint8_t)al;
    if (al)
        memcpy(rec + 64, ev->addr, al);
    if (fwrite(rec, REC, 1, t->f) == 1)
        t->bytes += REC;
    if (t->bytes >= TRACE_FILE_BYTES)
        rotate(t);
}

struct qsm_tracer trace_tracer(struct trace_log *t)
{
    return (struct qsm_tracer){on_event, t};
}

/* The first record of `fd` (n records) whose index is >= idx. */
static uint64_t lower_bound(int fd, uint64_t n, uint64_t idx)
{
    uint64_t lo = 0, hi = n;
    uint8_t rec[REC];
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        if (read_rec(fd, mid, rec) != 0)
            return n;
        if (get64(rec) < idx)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

struct scan {
    uint64_t msg_id, queue_id, enqueue_ms;
    bool topic; /* queue_id names a topic: the anchor is PUBLISHED, not SENT */
    bool sent;
    cmq_TraceEvent *out;
    size_t max, n;
    bool truncated;
    uint64_t budget;
};

static void scan_file(const char *path, uint64_t first_index, struct scan *s)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    struct stat st;
    uint64_t n = fstat(fd, &st) == 0 ? (uint64_t)st.st_size / REC : 0;
    uint64_t i = lower_bound(fd, n, first_index);
    static uint8_t buf[REC * 512];
    while (i < n && !s->truncated) {
        uint64_t want = n - i < 512 ? n - i : 512;
        ssize_t got = pread(fd, buf, want * REC, (off_t)(i * REC));
        if (got < REC)
            break;
        uint64_t k = (uint64_t)got / REC;
        for (uint64_t j = 0; j < k; j++) {
            const uint8_t *r = buf + j * REC;
            if (s->budget-- == 0) {
                s->truncated = true;
                break;
            }
            uint64_t mid = get64(r + 8), qid = get64(r + 16);
            uint32_t ev = r[56];
            bool mine = mid == s->msg_id;
            if (mine && (ev == QSM_EV_SENT || ev == TSM_EV_PUBLISHED)) {
                bool wrong_kind = (s->queue_id || s->topic) && s->topic != (ev == TSM_EV_PUBLISHED);
                if (wrong_kind || (s->queue_id && qid != s->queue_id)) {
                    s->truncated = false;
                    s->n = 0;
                    close(fd);
                    s->budget = 0; /* another queue's message: nothing to show */
                    return;
                }
                s->sent = true;
                s->queue_id = qid;
                s->enqueue_ms = get64(r + 24);
            }
            /* a rewind of its queue to a time at or before its enqueue time re-exposes it */
            bool rewind = mid == 0 && ev == QSM_EV_REWOUND && s->sent && !s->topic &&
                          qid == s->queue_id &&
                          get64(r + 48) <= s->enqueue_ms;
            if (!(mine && s->sent) && !rewind)
                continue;
            if (s->n == s->max) {
                s->truncated = true;
                break;
            }
            cmq_TraceEvent *e = &s->out[s->n++];
            memset(e, 0, sizeof *e);
            e->event = ev;
            e->index = get64(r);
            e->queue_id = qid;
            e->time_ms = get64(r + 24);
            e->receipt_handle = get64(r + 32);
            e->due_ms = get64(r + 40);
            if (ev == QSM_EV_DEAD_LETTERED)
                e->dlq_queue_id = get64(r + 48);
            if (ev == QSM_EV_REWOUND)
                e->rewind_ms = get64(r + 48);
            size_t al = r[60] < ADDR_MAX && r[60] < sizeof e->addr ? r[60] : ADDR_MAX;
            if (ev > TSM_EV_PUBLISHED) { /* a subscription's event (tsm.h: the fields) */
                uint64_t h = e->receipt_handle;
                e->receipt_handle = 0;
                e->attempt = (uint32_t)h;
                e->http_status = (uint32_t)(h >> 32);
                e->target_msg_id = get64(r + 48);
                if (ev == TSM_EV_DEAD_LETTERED) {
                    e->dlq_queue_id = e->due_ms;
                    e->due_ms = 0;
                }
                if (al >= sizeof e->sub_id)
                    al = sizeof e->sub_id - 1;
                memcpy(e->sub_id, r + 64, al);
                e->sub_id[al] = 0;
                continue;
            }
            memcpy(e->addr, r + 64, al);
            e->addr[al] = 0;
        }
        i += k;
    }
    close(fd);
}

size_t trace_query(struct trace_log *t, uint64_t msg_id, uint64_t queue_id, bool topic,
                   struct _cmq_TraceEvent *out, size_t max, bool *truncated)
{
    trace_flush(t);
    struct scan s = {.msg_id = msg_id, .queue_id = queue_id, .topic = topic, .out = out, .max = max,
                     .budget = TRACE_SCAN_RECORDS};
    uint64_t first = qsm_id_index(msg_id);
    scan_file(t->old, first, &s);
    if (s.budget)
        scan_file(t->path, first, &s);
    *truncated = s.truncated;
    return s.n;
}
