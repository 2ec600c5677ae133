/* seglog_bench.c: throughput and append-to-durable latency of the segment log
 * driven the way a storage node drives it: an event loop submits write
 * requests to the writer thread, watches its eventfd, and counts a request
 * done when its callback runs (the entries are fdatasync'ed).
 *
 *   seglog-bench [--record-bytes N] [--batch N] [--count N] [--inflight N]
 *                [--segment-bytes N] [--dir DIR]
 *
 * --batch is entries per request, --inflight the requests outstanding at
 * once (many requests share one fdatasync: group commit).  Prints appends/s,
 * payload MB/s, fsyncs/s and p50/p99/max append-to-durable latency per
 * request.  Uses a fresh mkdtemp directory under /tmp unless --dir is given,
 * and removes what it wrote.  Not a test.
 */
#include <errno.h>
#include <ftw.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "seglog.h"
#include "seglog_writer.h"
#include "status.h"

struct req {
    struct seglog_write_req w;
    struct seglog_entry *entries;
    uint64_t submitted_ns;
    int busy;
};

struct bench {
    struct seglog_writer *writer;
    uint8_t *payload;
    uint64_t record_bytes, batch, count, inflight;
    uint64_t next_index, submitted, done;
    uint64_t *lat_ns;
    size_t n_lat;
    int failed;
};

static struct bench B;

static void on_done(struct seglog_write_req *w, int status)
{
    struct req *r = w->user;
    if (status != CMQ_OK) {
        fprintf(stderr, "seglog-bench: write failed: %s\n", status_name(status));
        B.failed = 1;
    }
    B.lat_ns[B.n_lat++] = clock_mono_ns() - r->submitted_ns;
    B.done += w->n;
    r->busy = 0;
}

static int submit(struct req *r)
{
    uint64_t n = B.count - B.submitted < B.batch ? B.count - B.submitted : B.batch;
    for (uint64_t k = 0; k < n; k++)
        r->entries[k] = (struct seglog_entry){.term = 1, .index = B.next_index + k,
                                              .len = (uint32_t)B.record_bytes, .data = B.payload};
    memset(&r->w, 0, sizeof r->w);
    r->w.entries = r->entries;
    r->w.n = n;
    r->w.done = on_done;
    r->w.user = r;
    r->submitted_ns = clock_mono_ns();
    int st = seglog_writer_submit(B.writer, &r->w);
    if (st)
        return st;
    r->busy = 1;
    B.next_index += n;
    B.submitted += n;
    return CMQ_OK;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void usage(void)
{
    fprintf(stderr, "usage: seglog-bench [--record-bytes N] [--batch N] [--count N] "
                    "[--inflight N] [--segment-bytes N] [--dir DIR]\n");
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"record-bytes", required_argument, 0, 'r'}, {"batch", required_argument, 0, 'b'},
        {"count", required_argument, 0, 'n'},        {"inflight", required_argument, 0, 'i'},
        {"segment-bytes", required_argument, 0, 's'}, {"dir", required_argument, 0, 'd'},
        {"help", no_argument, 0, 'h'},               {0, 0, 0, 0}};
    B.record_bytes = 1024;
    B.batch = 1;
    B.count = 100000;
    B.inflight = 64;
    uint64_t segment_bytes = SEGLOG_SEGMENT_BYTES_DEFAULT;
    const char *dir = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "r:b:n:i:s:d:h", opts, NULL)) != -1) {
        switch (c) {
        case 'r': B.record_bytes = strtoull(optarg, NULL, 10); break;
        case 'b': B.batch = strtoull(optarg, NULL, 10); break;
        case 'n': B.count = strtoull(optarg, NULL, 10); break;
        case 'i': B.inflight = strtoull(optarg, NULL, 10); break;
        case 's': segment_bytes = strtoull(optarg, NULL, 10); break;
        case 'd': dir = optarg; break;
        default: usage(); return c == 'h' ? 0 : 2;
        }
    }
    if (B.record_bytes > SEGLOG_RECORD_BYTES_DEFAULT || B.batch == 0 || B.batch > 4096 ||
        B.count == 0 || B.count > 100000000 || B.inflight == 0 || B.inflight > 4096) {
        fprintf(stderr, "seglog-bench: argument out of range (record-bytes <= %u, batch 1..4096, "
                        "count 1..1e8, inflight 1..4096)\n", SEGLOG_RECORD_BYTES_DEFAULT);
        return 2;
    }
    char tmpl[] = "/tmp/seglog-bench-XXXXXX";
    int own_dir = 0;
    if (!dir) {
        if (!mkdtemp(tmpl)) {
            perror("seglog-bench: mkdtemp");
            return 1;
        }
        dir = tmpl;
        own_dir = 1;
    }

    struct seglog_opts o;
    seglog_opts_default(&o);
    o.segment_bytes = segment_bytes;
    struct seglog *log;
    char err[SEGLOG_ERR_MAX];
    int st = seglog_open(dir, &o, &log, err);
    if (st) {
        fprintf(stderr, "seglog-bench: open %s: %s: %s\n", dir, status_name(st), err);
        return 1;
    }
    B.next_index = seglog_last_index(log) + 1;
    st = seglog_writer_start(log, (unsigned)B.inflight, &B.writer);
    if (st) {
        fprintf(stderr, "seglog-bench: writer: %s\n", status_name(st));
        return 1;
    }
    B.payload = malloc(B.record_bytes + 1);
    struct req *reqs = calloc(B.inflight, sizeof *reqs);
    B.lat_ns = malloc(((B.count + B.batch - 1) / B.batch) * sizeof *B.lat_ns);
    if (!B.payload || !reqs || !B.lat_ns) {
        fprintf(stderr, "seglog-bench: out of memory\n");
        return 1;
    }
    for (uint64_t k = 0; k < B.record_bytes; k++)
        B.payload[k] = (uint8_t)(k * 31 + 7);
    for (uint64_t i = 0; i < B.inflight; i++) {
        reqs[i].entries = calloc(B.batch, sizeof *reqs[i].entries);
        if (!reqs[i].entries)
            return 1;
    }

    struct seglog_stats s0;
    seglog_stats(log, &s0);
    uint64_t t0 = clock_mono_ns();
    while (B.done < B.count && !B.failed) {
        for (uint64_t i = 0; i < B.inflight && B.submitted < B.count; i++)
            if (!reqs[i].busy && submit(&reqs[i]) != CMQ_OK)
                break;
        struct pollfd p = {.fd = seglog_writer_fd(B.writer), .events = POLLIN};
        if (poll(&p, 1, 10000) < 0 && errno != EINTR) {
            perror("seglog-bench: poll");
            return 1;
        }
        seglog_writer_poll(B.writer);
    }
    uint64_t elapsed = clock_mono_ns() - t0;
    struct seglog_stats s1;
    seglog_stats(log, &s1);
    seglog_writer_stop(B.writer);
    seglog_close(log);

    double secs = (double)elapsed / 1e9;
    qsort(B.lat_ns, B.n_lat, sizeof *B.lat_ns, cmp_u64);
    uint64_t p50 = B.lat_ns[B.n_lat / 2], p99 = B.lat_ns[(B.n_lat * 99) / 100],
             mx = B.lat_ns[B.n_lat - 1];
    uint64_t syncs = s1.syncs - s0.syncs;
    printf("seglog-bench record_bytes=%" PRIu64 " batch=%" PRIu64 " inflight=%" PRIu64
           " count=%" PRIu64 " segment_bytes=%" PRIu64 "\n",
           B.record_bytes, B.batch, B.inflight, B.count, segment_bytes);
    printf("  elapsed_s=%.3f appends_per_s=%.0f payload_MB_per_s=%.2f fsyncs_per_s=%.0f "
           "entries_per_fsync=%.1f\n",
           secs, (double)B.count / secs, (double)(B.count * B.record_bytes) / secs / 1e6,
           (double)syncs / secs, syncs ? (double)B.count / (double)syncs : 0.0);
    printf("  append_to_durable_us p50=%.0f p99=%.0f max=%.0f (per request of %" PRIu64
           " entries)\n",
           (double)p50 / 1e3, (double)p99 / 1e3, (double)mx / 1e3, B.batch);

    /* Restart cost: sealed segments through their .idx, the last one scanned. */
    uint64_t r0 = clock_mono_ns();
    st = seglog_open(dir, &o, &log, err);
    uint64_t r1 = clock_mono_ns();
    if (st) {
        fprintf(stderr, "seglog-bench: reopen: %s: %s\n", status_name(st), err);
        B.failed = 1;
    } else {
        struct seglog_stats s2;
        seglog_stats(log, &s2);
        printf("  reopen_ms=%.1f segments=%" PRIu64 " last_index=%" PRIu64 "\n",
               (double)(r1 - r0) / 1e6, s2.segments, seglog_last_index(log));
        seglog_close(log);
    }

    for (uint64_t i = 0; i < B.inflight; i++)
        free(reqs[i].entries);
    free(reqs);
    free(B.payload);
    free(B.lat_ns);
    if (own_dir)
        nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return B.failed ? 1 : 0;
}
