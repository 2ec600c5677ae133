/* test_powerloss.c: the power-loss seam of common/seglog/file.c and what
 * the segment log keeps across a simulated power loss.
 *
 * With file_fault_unsynced_enable() on, writes wait in memory until their
 * file is synced; file_fault_crash() drops them ("the power went out") and
 * makes every later change a no-op until the seam is enabled again ("the
 * machine came back").  Criterion runs each test in its own process, so the
 * process-wide seam never leaks from one test into another.
 *
 * The specification, as tests:
 *   - the layer: a read sees every write; after a crash only what a sync
 *     covered is left, byte for byte, and the file is no longer than the
 *     synced data made it; truncations, O_TRUNC and unlink forget the bytes
 *     they remove; random writes and syncs agree with a model of the disk;
 *   - the log: after a crash at any point, recovery keeps every entry that
 *     seglog_sync (or the writer thread's completion) reported durable, and
 *     invents nothing: every entry it has is one that was appended.
 */
#include <pthread.h>
#include <time.h>

#include "file.h"
#include "helpers.h"
#include "seglog_writer.h"

static void pl_setup(void)
{
    t_setup();
    file_fault_unsynced_enable();
}

TestSuite(powerloss, .init = pl_setup, .fini = t_teardown);

/* A power loss, then the machine comes back. */
static void power_cycle(void)
{
    file_fault_crash();
    file_fault_unsynced_enable();
}

static int t_open_file(const char *name, int flags)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", t_dir, name);
    int fd = -1;
    int st = file_open(path, flags, &fd);
    cr_assert_eq(st, CMQ_OK, "open %s: %s", path, status_name(st));
    return fd;
}

/* What a plain read(2) of the file finds on disk (bypassing the layer). */
static size_t disk_read(const char *name, uint8_t *buf, size_t cap)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", t_dir, name);
    int fd = open(path, O_RDONLY);
    cr_assert(fd >= 0);
    ssize_t n = pread(fd, buf, cap, 0);
    cr_assert(n >= 0);
    close(fd);
    return (size_t)n;
}

static void fill(uint8_t *b, size_t len, unsigned seed)
{
    for (size_t i = 0; i < len; i++)
        b[i] = (uint8_t)(seed * 31 + i * 7 + 1);
}

Test(powerloss, unsynced_writes_are_visible_then_lost)
{
    uint8_t a[1000], b[1000], got[4000];
    fill(a, sizeof a, 1);
    fill(b, sizeof b, 2);
    int fd = t_open_file("f", O_RDWR | O_CREAT | O_TRUNC);
    cr_assert_eq(file_pwrite_all(fd, a, sizeof a, 0), CMQ_OK);
    cr_assert_eq(file_fdatasync(fd), CMQ_OK);
    cr_assert_eq(file_pwrite_all(fd, b, sizeof b, 1000), CMQ_OK); /* extends, unsynced */
    cr_assert_eq(file_pwrite_all(fd, b, 10, 5), CMQ_OK);          /* overwrites, unsynced */
    cr_assert_eq(file_fault_unsynced_bytes(), 1010);

    /* The process sees all of it ... */
    uint64_t size;
    size_t n;
    cr_assert_eq(file_size(fd, &size), CMQ_OK);
    cr_assert_eq(size, 2000);
    cr_assert_eq(file_pread(fd, got, sizeof got, 0, &n), CMQ_OK);
    cr_assert_eq(n, 2000);
    cr_assert_eq(memcmp(got, a, 5), 0);
    cr_assert_eq(memcmp(got + 5, b, 10), 0);
    cr_assert_eq(memcmp(got + 15, a + 15, 985), 0);
    cr_assert_eq(memcmp(got + 1000, b, 1000), 0);
    /* ... the disk only what was synced. */
    cr_assert_eq(disk_read("f", got, sizeof got), 1000);
    cr_assert_eq(memcmp(got, a, 1000), 0);

    power_cycle();
    close(fd);
    fd = t_open_file("f", O_RDWR);
    cr_assert_eq(file_fault_unsynced_bytes(), 0);
    cr_assert_eq(file_size(fd, &size), CMQ_OK);
    cr_assert_eq(size, 1000, "the unsynced extension is gone");
    cr_assert_eq(file_pread(fd, got, sizeof got, 0, &n), CMQ_OK);
    cr_assert_eq(n, 1000);
    cr_assert_eq(memcmp(got, a, 1000), 0, "the unsynced overwrite is gone");
    close(fd);
}

Test(powerloss, a_sync_covers_every_descriptor_of_the_file)
{
    uint8_t a[300], got[300];
    fill(a, sizeof a, 3);
    int w = t_open_file("f", O_RDWR | O_CREAT | O_TRUNC);
    cr_assert_eq(file_pwrite_all(w, a, sizeof a, 0), CMQ_OK);
    close(w); /* closing does not sync, as close(2) does not */
    int r = t_open_file("f", O_RDWR);
    size_t n;
    cr_assert_eq(file_pread(r, got, sizeof got, 0, &n), CMQ_OK);
    cr_assert_eq(n, sizeof a, "another descriptor of the inode sees the write");
    cr_assert_eq(memcmp(got, a, sizeof a), 0);
    cr_assert_eq(disk_read("f", got, sizeof got), 0, "nothing on disk yet");
    cr_assert_eq(file_fsync(r), CMQ_OK);
    power_cycle();
    cr_assert_eq(disk_read("f", got, sizeof got), sizeof a);
    cr_assert_eq(memcmp(got, a, sizeof a), 0);
    close(r);
}

Test(powerloss, truncation_o_trunc_and_unlink_forget_held_bytes)
{
    uint8_t a[500], got[1000];
    fill(a, sizeof a, 4);
    int fd = t_open_file("f", O_RDWR | O_CREAT | O_TRUNC);
    cr_assert_eq(file_pwrite_all(fd, a, sizeof a, 0), CMQ_OK);
    cr_assert_eq(file_truncate(fd, 100), CMQ_OK);
    uint64_t size;
    cr_assert_eq(file_size(fd, &size), CMQ_OK);
    cr_assert_eq(size, 100);
    cr_assert_eq(file_fault_unsynced_bytes(), 100);
    cr_assert_eq(file_truncate(fd, 400), CMQ_OK); /* grows with zeros, never old bytes */
    size_t n;
    cr_assert_eq(file_pread(fd, got, sizeof got, 0, &n), CMQ_OK);
    cr_assert_eq(n, 400);
    cr_assert_eq(memcmp(got, a, 100), 0);
    for (size_t i = 100; i < 400; i++)
        cr_assert_eq(got[i], 0, "byte %zu", i);
    close(fd);

    fd = t_open_file("f", O_RDWR | O_TRUNC);
    cr_assert_eq(file_fault_unsynced_bytes(), 0, "O_TRUNC drops the held bytes");
    cr_assert_eq(file_pwrite_all(fd, a, sizeof a, 0), CMQ_OK);
    close(fd);
    char path[512];
    snprintf(path, sizeof path, "%s/f", t_dir);
    cr_assert_eq(file_unlink(path), CMQ_OK);
    cr_assert_eq(file_fault_unsynced_bytes(), 0, "unlink drops the held bytes");
}

Test(powerloss, next_data_reports_held_bytes_in_a_preallocated_file)
{
    uint8_t a[64];
    fill(a, sizeof a, 5);
    int fd = t_open_file("f", O_RDWR | O_CREAT | O_TRUNC);
    cr_assert_eq(file_preallocate(fd, 1 << 20), CMQ_OK);
    cr_assert_eq(file_pwrite_all(fd, a, sizeof a, 8192), CMQ_OK);
    uint64_t s, e;
    cr_assert_eq(file_next_data(fd, 0, 1 << 20, &s, &e), CMQ_OK);
    cr_assert_leq(s, 8192);
    cr_assert_geq(e, 8192 + sizeof a);
    power_cycle();
    int st = file_next_data(fd, 0, 1 << 20, &s, &e);
    /* Gone: all zeros again (or, where the file system cannot tell, a range
     * that reads as zeros). */
    if (st == CMQ_OK) {
        uint8_t got[64];
        size_t n;
        cr_assert_eq(file_pread(fd, got, sizeof got, 8192, &n), CMQ_OK);
        for (size_t i = 0; i < n; i++)
            cr_assert_eq(got[i], 0);
    } else {
        cr_assert_eq(st, CMQ_ENOTFOUND);
    }
    close(fd);
}

Test(powerloss, the_machine_is_down_until_it_comes_back)
{
    uint8_t a[100], got[100];
    fill(a, sizeof a, 6);
    int fd = t_open_file("f", O_RDWR | O_CREAT | O_TRUNC);
    file_fault_crash();
    cr_assert_eq(file_pwrite_all(fd, a, sizeof a, 0), CMQ_OK);
    cr_assert_eq(file_fdatasync(fd), CMQ_OK);
    cr_assert_eq(file_fault_unsynced_bytes(), 0);
    cr_assert_eq(disk_read("f", got, sizeof got), 0, "a write after the crash goes nowhere");
    char path[512];
    int fd2;
    snprintf(path, sizeof path, "%s/g", t_dir);
    cr_assert_eq(file_open(path, O_RDWR | O_CREAT, &fd2), CMQ_EIO);
    close(fd);
}

static int exists(const char *name)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", t_dir, name);
    return access(path, F_OK) == 0;
}

static void t_rename(const char *from, const char *to)
{
    char a[512], b[512];
    snprintf(a, sizeof a, "%s/%s", t_dir, from);
    snprintf(b, sizeof b, "%s/%s", t_dir, to);
    cr_assert_eq(file_rename(a, b), CMQ_OK);
}

static size_t n_entries(void)
{
    DIR *d = opendir(t_dir);
    cr_assert_not_null(d);
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        n += de->d_name[0] != '.';
    closedir(d);
    return n;
}

Test(powerloss, directory_operations_need_a_directory_fsync)
{
    file_fault_dirops_enable();
    uint8_t a[50], b[50], got[100];
    fill(a, sizeof a, 7);
    fill(b, sizeof b, 8);
    /* "old", created and made durable. */
    int fd = t_open_file("old", O_RDWR | O_CREAT | O_TRUNC);
    cr_assert_eq(file_pwrite_all(fd, a, sizeof a, 0), CMQ_OK);
    cr_assert_eq(file_fsync(fd), CMQ_OK);
    close(fd);
    cr_assert_eq(file_fsync_dir(t_dir), CMQ_OK);
    /* "new": created and synced (durable), then renamed over "old" without
     * a directory fsync. */
    fd = t_open_file("new", O_RDWR | O_CREAT | O_TRUNC);
    cr_assert_eq(file_pwrite_all(fd, b, sizeof b, 0), CMQ_OK);
    cr_assert_eq(file_fsync(fd), CMQ_OK);
    close(fd);
    cr_assert_eq(file_fsync_dir(t_dir), CMQ_OK);
    t_rename("new", "old");
    int gone = t_open_file("gone", O_RDWR | O_CREAT);
    close(gone);
    cr_assert(exists("gone"));
    power_cycle();
    cr_assert(!exists("gone"), "a creation without a directory fsync is lost");
    cr_assert(exists("new"), "the rename is undone");
    cr_assert_eq(disk_read("old", got, sizeof got), sizeof a);
    cr_assert_eq(memcmp(got, a, sizeof a), 0, "the replaced file is back");
    cr_assert_eq(n_entries(), 2, "old and new, no backup left");

    /* The same with the directory fsync: it stays. */
    t_rename("new", "old");
    cr_assert_eq(file_fsync_dir(t_dir), CMQ_OK);
    power_cycle();
    cr_assert(!exists("new"));
    cr_assert_eq(disk_read("old", got, sizeof got), sizeof b);
    cr_assert_eq(memcmp(got, b, sizeof b), 0);
    cr_assert_eq(n_entries(), 1, "the backup went with the directory fsync");
}

/* Random writes and syncs against a model: `now` is what the process must
 * read, `disk` what a crash must leave. */
Test(powerloss, random_writes_agree_with_a_model_of_the_disk)
{
    enum { CAP = 1 << 16, ROUNDS = 40, OPS = 60 };
    static uint8_t now[CAP], disk[CAP], buf[CAP], got[CAP];
    unsigned seed = (unsigned)time(NULL);
    srand(seed);
    cr_log_info("seed %u", seed);
    int fd = t_open_file("f", O_RDWR | O_CREAT | O_TRUNC);
    size_t now_len = 0, disk_len = 0;
    for (int r = 0; r < ROUNDS; r++) {
        for (int k = 0; k < OPS; k++) {
            int op = rand() % 10;
            if (op < 7) {
                size_t off = (size_t)rand() % (CAP / 2), len = 1 + (size_t)rand() % 4096;
                if (rand() % 3 == 0)
                    off = now_len; /* appends, the common case */
                if (off + len > CAP)
                    len = CAP - off;
                fill(buf, len, (unsigned)rand());
                cr_assert_eq(file_pwrite_all(fd, buf, len, off), CMQ_OK);
                if (off > now_len)
                    memset(now + now_len, 0, off - now_len);
                memcpy(now + off, buf, len);
                now_len = off + len > now_len ? off + len : now_len;
            } else if (op < 9) {
                cr_assert_eq(rand() % 2 ? file_fdatasync(fd) : file_fsync(fd), CMQ_OK);
                memcpy(disk, now, now_len);
                disk_len = now_len;
            } else {
                size_t len = (size_t)rand() % (now_len + 1);
                cr_assert_eq(file_truncate(fd, len), CMQ_OK);
                /* Size changes reach the disk at once (not modelled as lost). */
                now_len = len;
                if (disk_len > len)
                    disk_len = len;
                else
                    memset(disk + disk_len, 0, len - disk_len);
                disk_len = len;
            }
            size_t n;
            cr_assert_eq(file_pread(fd, got, CAP, 0, &n), CMQ_OK);
            cr_assert_eq(n, now_len, "seed %u round %d op %d", seed, r, k);
            cr_assert_eq(memcmp(got, now, n), 0, "seed %u round %d op %d", seed, r, k);
        }
        power_cycle();
        size_t n;
        cr_assert_eq(file_pread(fd, got, CAP, 0, &n), CMQ_OK);
        cr_assert_eq(n, disk_len, "seed %u round %d: size after the crash", seed, r);
        cr_assert_eq(memcmp(got, disk, n), 0, "seed %u round %d: bytes after the crash", seed, r);
        memcpy(now, disk, disk_len);
        now_len = disk_len;
    }
    close(fd);
}

/* ---- the segment log across a power loss ---- */

/* Reopens after a power loss and checks: every entry up to `durable` is
 * there, intact, and every entry the log has is one that was appended with
 * `term` (nothing invented, no hole).  Returns the recovered last index. */
static uint64_t reopen_and_check(struct seglog **logp, uint64_t durable, uint64_t appended,
                                 uint64_t term)
{
    seglog_close(*logp);
    file_fault_unsynced_enable(); /* the machine comes back */
    *logp = t_open();
    uint64_t last = seglog_last_index(*logp);
    cr_assert_geq(last, durable, "recovered up to %" PRIu64 ", %" PRIu64 " were durable", last,
                  durable);
    cr_assert_leq(last, appended, "recovered %" PRIu64 ", only %" PRIu64 " were appended", last,
                  appended);
    assert_range(*logp, seglog_first_index(*logp), last, term);
    return last;
}

Test(powerloss, seglog_keeps_what_sync_reported_and_loses_the_unsynced_tail)
{
    struct seglog *log = t_open();
    t_append(log, 1, 10, 1);
    cr_assert_eq(seglog_sync(log), CMQ_OK);
    uint64_t durable = seglog_durable_index(log);
    cr_assert_eq(durable, 10);
    t_append(log, 11, 12, 1); /* same segment (4 KiB), never synced */
    cr_assert_eq(seglog_last_index(log), 12);
    cr_assert_gt(file_fault_unsynced_bytes(), 0);
    file_fault_crash();
    uint64_t last = reopen_and_check(&log, durable, 12, 1);
    cr_assert_eq(last, 10, "the unsynced entries 11 and 12 were lost with the power");
    /* The log goes on from there. */
    t_append(log, 11, 40, 1);
    cr_assert_eq(seglog_sync(log), CMQ_OK);
    power_cycle();
    seglog_close(log);
    log = t_open();
    cr_assert_eq(seglog_last_index(log), 40);
    assert_range(log, 1, 40, 1);
    seglog_close(log);
}

Test(powerloss, seglog_hard_state_survives_once_saved)
{
    file_fault_dirops_enable();
    struct seglog *log = t_open();
    struct seglog_hardstate hs = {7, 3, 0}, got;
    cr_assert_eq(seglog_hardstate_save(log, &hs), CMQ_OK);
    file_fault_crash();
    seglog_close(log);
    file_fault_unsynced_enable();
    log = t_open();
    cr_assert_eq(seglog_hardstate_load(log, &got), CMQ_OK);
    cr_assert_eq(got.term, 7);
    cr_assert_eq(got.vote, 3);
    seglog_close(log);
}

/* Many power losses at random points: appends in random batches, a sync
 * now and then, rollovers and suffix truncations (a new leader's term). */
static void random_crashes(void)
{
    unsigned seed = (unsigned)time(NULL);
    srand(seed);
    cr_log_info("seed %u", seed);
    struct seglog *log = t_open();
    uint64_t term = 1;
    for (int round = 0; round < 30; round++) {
        uint64_t last = seglog_last_index(log);
        if (rand() % 4 == 0 && last > 5) {
            /* Rewrite a suffix under a new term (durable entries may go:
             * Raft allows a follower's uncommitted suffix to be replaced). */
            uint64_t from = last - (uint64_t)(rand() % 5);
            cr_assert_eq(seglog_truncate_suffix(log, from), CMQ_OK);
            cr_assert_eq(seglog_sync(log), CMQ_OK);
            /* Keep one term for the whole log so the check stays simple:
             * the rewritten entries carry the same payload function. */
            last = from - 1;
        }
        uint64_t durable = seglog_durable_index(log);
        int steps = 1 + rand() % 8;
        for (int s = 0; s < steps; s++) {
            uint64_t n = 1 + (uint64_t)(rand() % 30);
            t_append(log, last + 1, last + n, term);
            last += n;
            if (rand() % 2) {
                cr_assert_eq(seglog_sync(log), CMQ_OK);
                durable = seglog_durable_index(log);
                cr_assert_eq(durable, last);
            }
        }
        file_fault_crash();
        reopen_and_check(&log, durable, last, term);
    }
    seglog_close(log);
}

Test(powerloss, seglog_random_crashes_keep_every_durable_entry)
{
    random_crashes();
}

/* The same with directory operations modelled too: a segment whose creation
 * (rename into place) was not followed by a directory fsync vanishes. */
Test(powerloss, seglog_random_crashes_with_directory_operations)
{
    file_fault_dirops_enable();
    random_crashes();
}

/* The writer thread: a completion means durable, even when the power goes
 * out while it is writing. */
struct wjob {
    struct seglog_write_req req;
    struct seglog_entry e;
    uint8_t payload[256];
    int done;
};

static int g_crashed;
static uint64_t g_acked; /* highest index completed OK before the crash */

static void wjob_done(struct seglog_write_req *req, int status)
{
    struct wjob *j = req->user;
    j->done = 1;
    if (status == CMQ_OK && !g_crashed && j->e.index > g_acked)
        g_acked = j->e.index;
}

Test(powerloss, writer_completions_survive_a_crash_mid_write)
{
    unsigned seed = (unsigned)time(NULL);
    srand(seed);
    cr_log_info("seed %u", seed);
    enum { N = 3000 };
    struct wjob *jobs = calloc(N, sizeof *jobs);
    cr_assert_not_null(jobs);
    struct seglog *log = t_open();
    struct seglog_writer *w;
    cr_assert_eq(seglog_writer_start(log, 64, &w), CMQ_OK);
    int crash_at = 500 + rand() % 2000;
    for (int i = 0; i < N; i++) {
        struct wjob *j = &jobs[i];
        uint64_t index = (uint64_t)i + 1;
        uint32_t len = t_len(index);
        t_fill(j->payload, index, 1, len);
        j->e = (struct seglog_entry){.term = 1, .index = index, .len = len,
                                     .type = (uint8_t)(index % 3), .data = j->payload};
        j->req.entries = &j->e;
        j->req.n = 1;
        j->req.done = wjob_done;
        j->req.user = j;
        while (seglog_writer_submit(w, &j->req) != CMQ_OK)
            seglog_writer_poll(w);
        seglog_writer_poll(w);
        if (i == crash_at) {
            file_fault_crash(); /* the writer thread may be mid-pwritev or mid-fdatasync */
            g_crashed = 1;
        }
    }
    seglog_writer_stop(w);
    cr_assert_gt(g_acked, 0, "some writes completed before the crash");
    uint64_t last = reopen_and_check(&log, g_acked, N, 1);
    cr_log_info("acked %" PRIu64 " before the crash, recovered %" PRIu64, g_acked, last);
    seglog_close(log);
    free(jobs);
}
