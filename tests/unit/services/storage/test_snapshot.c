/* test_snapshot.c: snapshot files (services/storage/snapfile.c) and the
 * partition's snapshot cycle (services/storage/partition.c) on a real
 * one-node Raft group with its real segment log and writer thread: when
 * snapshots are taken, which segments are deleted, what a restart loads, and
 * what a corrupt snapshot file does.  Each test uses its own mkdtemp
 * directory. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "partition.h"
#include "snapfile.h"
#include "status.h"
#include "../../tmpdir.h"

static char t_dir[256];

static void t_setup(void)
{
    log_init("test", CMQ_LOG_ERROR);
    tmpdir_make(t_dir, sizeof t_dir, "snap-test");
}

static void t_teardown(void)
{
    tmpdir_remove(t_dir);
}

TestSuite(snapfile, .init = t_setup, .fini = t_teardown);
TestSuite(partition_snapshot, .init = t_setup, .fini = t_teardown);

static struct snap_meta meta_of(uint64_t index, uint64_t first_needed)
{
    struct snap_meta m = {.index = index, .term = 3, .first_needed = first_needed};
    m.config.n = 3;
    for (uint32_t i = 0; i < 3; i++)
        m.config.nodes[i].id = 100 + i;
    return m;
}

static void write_snap(uint64_t index, uint64_t first_needed, const char *image)
{
    char path[600], err[SNAPFILE_ERR_MAX];
    struct snap_meta m = meta_of(index, first_needed);
    snapfile_path(t_dir, index, path, sizeof path);
    cr_assert_eq(snapfile_write(path, &m, (const uint8_t *)image, strlen(image), err), CMQ_OK,
                 "%s", err);
}

static void flip_byte(const char *path, off_t off)
{
    int fd = open(path, O_RDWR);
    cr_assert(fd >= 0);
    uint8_t b;
    cr_assert_eq(pread(fd, &b, 1, off), 1);
    b ^= 0x40;
    cr_assert_eq(pwrite(fd, &b, 1, off), 1);
    close(fd);
}

static int exists(const char *dir, const char *name)
{
    char p[700];
    struct stat st;
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return stat(p, &st) == 0;
}

/* ---------- snapshot files ---------- */

Test(snapfile, write_then_read_round_trips)
{
    write_snap(42, 7, "the image");
    char path[600], err[SNAPFILE_ERR_MAX];
    snapfile_path(t_dir, 42, path, sizeof path);
    cr_assert(strstr(path, "snap-00000000000000000042.snap"));
    struct snap_meta m;
    uint8_t *img;
    size_t len;
    cr_assert_eq(snapfile_read(path, &m, &img, &len, err), CMQ_OK, "%s", err);
    cr_assert_eq(m.index, 42);
    cr_assert_eq(m.term, 3);
    cr_assert_eq(m.first_needed, 7);
    cr_assert_eq(m.config.n, 3);
    cr_assert_eq(m.config.nodes[2].id, 102);
    cr_assert_eq(len, 9);
    cr_assert_eq(memcmp(img, "the image", 9), 0);
    free(img);
    cr_assert(!exists(t_dir, "snap-00000000000000000042.snap.tmp"), "no temp file left");
}

Test(snapfile, empty_image_is_fine)
{
    write_snap(5, 6, "");
    char path[600], err[SNAPFILE_ERR_MAX];
    snapfile_path(t_dir, 5, path, sizeof path);
    struct snap_meta m;
    uint8_t *img;
    size_t len;
    cr_assert_eq(snapfile_read(path, &m, &img, &len, err), CMQ_OK);
    cr_assert_eq(len, 0);
    cr_assert_null(img);
}

Test(snapfile, any_flipped_byte_is_corruption_naming_the_file)
{
    write_snap(42, 7, "0123456789abcdef");
    char path[600];
    snapfile_path(t_dir, 42, path, sizeof path);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    for (off_t off = 0; off < st.st_size; off++) {
        flip_byte(path, off);
        struct snap_meta m;
        uint8_t *img = NULL;
        size_t len;
        char err[SNAPFILE_ERR_MAX];
        cr_assert_eq(snapfile_read(path, &m, &img, &len, err), CMQ_ECORRUPT, "offset %d",
                     (int)off);
        cr_assert(strstr(err, path), "error names the file: %s", err);
        cr_assert_null(img);
        flip_byte(path, off); /* restore */
    }
}

Test(snapfile, truncated_or_extended_file_is_corruption)
{
    write_snap(42, 7, "0123456789abcdef");
    char path[600], err[SNAPFILE_ERR_MAX];
    snapfile_path(t_dir, 42, path, sizeof path);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    struct snap_meta m;
    uint8_t *img;
    size_t len;
    cr_assert_eq(truncate(path, st.st_size - 1), 0);
    cr_assert_eq(snapfile_read(path, &m, &img, &len, err), CMQ_ECORRUPT);
    cr_assert(strstr(err, "snap-00000000000000000042.snap"));
    cr_assert_eq(truncate(path, st.st_size + 8), 0);
    cr_assert_eq(snapfile_read(path, &m, &img, &len, err), CMQ_ECORRUPT);
    cr_assert_eq(truncate(path, 3), 0);
    cr_assert_eq(snapfile_read(path, &m, &img, &len, err), CMQ_ECORRUPT);
}

Test(snapfile, load_newest_falls_back_to_the_older_one)
{
    write_snap(10, 2, "old");
    write_snap(20, 5, "new");
    struct snap_meta m;
    uint8_t *img;
    size_t len;
    char err[SNAPFILE_ERR_MAX], path[600];
    cr_assert_eq(snapfile_load_newest(t_dir, &m, &img, &len, err), CMQ_OK);
    cr_assert_eq(m.index, 20);
    cr_assert_eq(memcmp(img, "new", 3), 0);
    free(img);
    snapfile_path(t_dir, 20, path, sizeof path);
    flip_byte(path, 45);
    cr_assert_eq(snapfile_load_newest(t_dir, &m, &img, &len, err), CMQ_OK);
    cr_assert_eq(m.index, 10);
    cr_assert_eq(memcmp(img, "old", 3), 0);
    free(img);
    snapfile_path(t_dir, 10, path, sizeof path);
    flip_byte(path, 45);
    cr_assert_eq(snapfile_load_newest(t_dir, &m, &img, &len, err), CMQ_ECORRUPT);
    cr_assert(strstr(err, "snap-00000000000000000020.snap"), "names the newest: %s", err);
}

Test(snapfile, a_file_renamed_to_another_index_is_refused)
{
    write_snap(10, 2, "x");
    char a[600], b[600], err[SNAPFILE_ERR_MAX];
    snapfile_path(t_dir, 10, a, sizeof a);
    snapfile_path(t_dir, 11, b, sizeof b);
    cr_assert_eq(rename(a, b), 0);
    struct snap_meta m;
    uint8_t *img;
    size_t len;
    cr_assert_eq(snapfile_load_newest(t_dir, &m, &img, &len, err), CMQ_ECORRUPT);
}

Test(snapfile, no_file_is_not_found)
{
    struct snap_meta m;
    uint8_t *img;
    size_t len;
    char err[SNAPFILE_ERR_MAX];
    cr_assert_eq(snapfile_load_newest(t_dir, &m, &img, &len, err), CMQ_ENOTFOUND);
}

Test(snapfile, prune_keeps_two_and_reports_their_lowest_need)
{
    write_snap(10, 2, "a");
    write_snap(20, 9, "b");
    write_snap(30, 25, "c");
    write_snap(40, 31, "d");
    uint64_t low = 0;
    cr_assert_eq(snapfile_prune(t_dir, &low), CMQ_OK);
    uint64_t idx[8];
    cr_assert_eq(snapfile_list(t_dir, idx, 8), 2);
    cr_assert_eq(idx[0], 40);
    cr_assert_eq(idx[1], 30);
    cr_assert_eq(low, 25);
}

/* Builds install/ as a finished transfer leaves it: staged segment files and
 * the snapshot file. */
static void stage_install(uint64_t index)
{
    char inst[600], p[700], err[SNAPFILE_ERR_MAX];
    snprintf(inst, sizeof inst, "%s/install", t_dir);
    cr_assert_eq(mkdir(inst, 0750), 0);
    snprintf(p, sizeof p, "%s/00000000000000000005.seg", inst);
    FILE *f = fopen(p, "w");
    fputs("staged", f);
    fclose(f);
    snprintf(p, sizeof p, "%s/00000000000000000005.idx", inst);
    f = fopen(p, "w");
    fclose(f);
    snprintf(p, sizeof p, "%s/snapshot", inst);
    struct snap_meta m = meta_of(index, 5);
    cr_assert_eq(snapfile_write(p, &m, (const uint8_t *)"img", 3, err), CMQ_OK);
}

static void touch(const char *name)
{
    char p[700];
    snprintf(p, sizeof p, "%s/%s", t_dir, name);
    FILE *f = fopen(p, "w");
    fputs("old", f);
    fclose(f);
}

Test(snapfile, install_finish_replaces_the_log_and_snapshot)
{
    touch("00000000000000000001.seg");
    touch("00000000000000000001.idx");
    touch("hardstate");
    write_snap(3, 1, "old");
    stage_install(50);
    char err[SNAPFILE_ERR_MAX];
    cr_assert_eq(snapfile_install_finish(t_dir, err), CMQ_OK, "%s", err);
    cr_assert(!exists(t_dir, "00000000000000000001.seg"));
    cr_assert(!exists(t_dir, "00000000000000000001.idx"));
    cr_assert(!exists(t_dir, "snap-00000000000000000003.snap"));
    cr_assert(exists(t_dir, "00000000000000000005.seg"));
    cr_assert(exists(t_dir, "00000000000000000005.idx"));
    cr_assert(exists(t_dir, "snap-00000000000000000050.snap"));
    cr_assert(exists(t_dir, "hardstate"), "the hard state stays");
    cr_assert(!exists(t_dir, "install"));
}

Test(snapfile, install_finish_redoes_a_move_interrupted_halfway)
{
    touch("00000000000000000001.seg");
    stage_install(50);
    /* As if a crash came after step 1 and half of step 2. */
    char a[700], b[700], err[SNAPFILE_ERR_MAX];
    cr_assert_eq(unlink(strcat(strcpy(a, t_dir), "/00000000000000000001.seg")), 0);
    snprintf(a, sizeof a, "%s/install/snapshot", t_dir);
    snprintf(b, sizeof b, "%s/install/snapshot.moving", t_dir);
    cr_assert_eq(rename(a, b), 0);
    snprintf(a, sizeof a, "%s/install/00000000000000000005.seg", t_dir);
    snprintf(b, sizeof b, "%s/00000000000000000005.seg", t_dir);
    cr_assert_eq(rename(a, b), 0);
    cr_assert_eq(snapfile_install_finish(t_dir, err), CMQ_OK, "%s", err);
    cr_assert(exists(t_dir, "00000000000000000005.seg"), "the moved segment was kept");
    cr_assert(exists(t_dir, "00000000000000000005.idx"));
    cr_assert(exists(t_dir, "snap-00000000000000000050.snap"));
    cr_assert(!exists(t_dir, "install"));
}

Test(snapfile, an_unfinished_transfer_is_discarded)
{
    touch("00000000000000000001.seg");
    char inst[600], p[700], err[SNAPFILE_ERR_MAX];
    snprintf(inst, sizeof inst, "%s/install", t_dir);
    cr_assert_eq(mkdir(inst, 0750), 0);
    snprintf(p, sizeof p, "%s/00000000000000000005.seg", inst);
    fclose(fopen(p, "w"));
    cr_assert_eq(snapfile_install_finish(t_dir, err), CMQ_OK);
    cr_assert(exists(t_dir, "00000000000000000001.seg"), "the log is untouched");
    cr_assert(!exists(t_dir, "install"));
}

/* ---------- the partition's snapshot cycle (one-node group) ---------- */

#define ENTRY_BYTES (100 * 1024)
#define SEGMENT_BYTES (4u << 20) /* ~40 entries per segment */

struct fixture {
    uint64_t applied;         /* last index applied */
    uint64_t applied_count;
    uint64_t first_needed;    /* what the image callback reports */
    uint64_t restored_index;  /* from the image text */
    int restores;
};
static struct fixture fx;

static void send_none(void *arg, uint32_t pid, const struct raft_msg *m)
{
    (void)arg; (void)pid; (void)m;
}

static int apply_count(void *arg, struct partition *p, const struct raft_entry *e, void **result)
{
    (void)arg; (void)p; (void)result;
    fx.applied = e->index;
    fx.applied_count++;
    return CMQ_OK;
}

static int image_of(void *arg, struct partition *p, uint8_t **image, size_t *len,
                    uint64_t *first_needed)
{
    (void)arg; (void)p;
    char buf[64];
    int n = snprintf(buf, sizeof buf, "applied=%" PRIu64, fx.applied);
    *image = malloc((size_t)n);
    memcpy(*image, buf, (size_t)n);
    *len = (size_t)n;
    *first_needed = fx.first_needed ? fx.first_needed : fx.applied + 1;
    return CMQ_OK;
}

static int restore_of(void *arg, struct partition *p, const uint8_t *image, size_t len)
{
    (void)arg; (void)p;
    char buf[64];
    snprintf(buf, sizeof buf, "%.*s", (int)len, (const char *)image);
    cr_assert_eq(sscanf(buf, "applied=%" SCNu64, &fx.restored_index), 1);
    fx.applied = fx.restored_index;
    fx.restores++;
    return CMQ_OK;
}

static struct partition *open_part(uint64_t snapshot_entries, char *err)
{
    static struct raft_config members;
    members.n = 1;
    members.nodes[0].id = 7;
    members.nodes[0].role = RAFT_VOTER;
    char dir[300];
    snprintf(dir, sizeof dir, "%s/p-1", t_dir);
    struct partition_opts o = {
        .id = 1, .node_id = 7, .members = &members, .dir = dir,
        .election_ticks = 3, .heartbeat_ticks = 1, .seed = 1,
        .segment_bytes = SEGMENT_BYTES,
        .send = send_none, .apply = apply_count,
        .snapshot_entries = snapshot_entries,
        .image = image_of, .restore = restore_of,
    };
    struct partition *p = NULL;
    int rc = partition_open(&o, &p, err);
    return rc == CMQ_OK ? p : NULL;
}

/* Ticks until the node leads, then proposes `n` entries and waits until all
 * are applied (and any snapshot write finished). */
static void run(struct partition *p, int n)
{
    for (int i = 0; i < 100 && !partition_is_leader(p); i++)
        partition_tick(p);
    cr_assert(partition_is_leader(p));
    static uint8_t payload[ENTRY_BYTES];
    uint64_t want = fx.applied_count + (uint64_t)n;
    int proposed = 0;
    /* Ten at a time, so applies (and snapshots) come in many readies. */
    for (int spins = 0; fx.applied_count < want && spins < 100000; spins++) {
        if (fx.applied_count + 10 >= want - (uint64_t)(n - proposed))
            for (int k = 0; k < 10 && proposed < n; k++)
                if (partition_propose(p, payload, sizeof payload, NULL, NULL) == CMQ_OK)
                    proposed++;
        struct pollfd pfd = {partition_writer_fd(p), POLLIN, 0};
        poll(&pfd, 1, 100);
        partition_on_writer(p);
    }
    cr_assert_eq(fx.applied_count, want);
    for (int i = 0; i < 20; i++) { /* the last snapshot job */
        struct pollfd pfd = {partition_writer_fd(p), POLLIN, 0};
        if (poll(&pfd, 1, 50) > 0)
            partition_on_writer(p);
    }
}

static size_t count_files(const char *suffix)
{
    char dir[300];
    snprintf(dir, sizeof dir, "%s/p-1", t_dir);
    DIR *d = opendir(dir);
    size_t n = 0, sl = strlen(suffix);
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t l = strlen(de->d_name);
        n += l > sl && strcmp(de->d_name + l - sl, suffix) == 0;
    }
    closedir(d);
    return n;
}

Test(partition_snapshot, snapshots_keep_what_first_needed_asks_for)
{
    memset(&fx, 0, sizeof fx);
    fx.first_needed = 1; /* the state machine still reads everything */
    char err[512];
    struct partition *p = open_part(50, err);
    cr_assert_not_null(p, "%s", err);
    run(p, 300);
    struct partition_status st;
    partition_status(p, &st);
    cr_assert_geq(st.snapshots_taken, 5);
    cr_assert_gt(st.snapshot_index, 250);
    cr_assert_eq(st.first_index, 1, "nothing deleted while index 1 is needed");
    cr_assert_eq(count_files(".snap"), 2, "two snapshot files kept");
    size_t segs = count_files(".seg");
    cr_assert_geq(segs, 7);

    /* Now the state machine needs only from 200: the segments wholly below
     * the lowest need of the two kept snapshots go, after two more snapshots
     * (the older kept one still asks for 1 after the first). */
    fx.first_needed = 200;
    run(p, 150);
    partition_status(p, &st);
    cr_assert_gt(st.first_index, 1);
    cr_assert_leq(st.first_index, 200, "the segment holding 200 stays");
    cr_assert_gt(st.segments_deleted, 0);
    uint8_t *buf;
    size_t len;
    cr_assert_eq(partition_read_entry(p, 200, &buf, &len, NULL), CMQ_OK);
    free(buf);
    cr_assert_eq(partition_read_entry(p, 1, &buf, &len, NULL), CMQ_ENOTFOUND);
    cr_assert_lt(count_files(".seg"), segs + 3);
    partition_close(p);
}

Test(partition_snapshot, restart_loads_the_snapshot_and_replays_only_after_it)
{
    memset(&fx, 0, sizeof fx);
    char err[512];
    struct partition *p = open_part(40, err);
    cr_assert_not_null(p, "%s", err);
    run(p, 130);
    struct partition_status st;
    partition_status(p, &st);
    uint64_t snap = st.snapshot_index, last = st.last_index;
    cr_assert_gt(snap, 80);
    partition_close(p);

    memset(&fx, 0, sizeof fx);
    p = open_part(40, err);
    cr_assert_not_null(p, "%s", err);
    cr_assert_eq(partition_boot_restore(p), CMQ_OK);
    cr_assert_eq(fx.restores, 1);
    cr_assert_eq(fx.restored_index, snap);
    for (int i = 0; i < 100 && !partition_is_leader(p); i++)
        partition_tick(p);
    cr_assert(partition_is_leader(p));
    for (int i = 0; i < 50; i++) {
        struct pollfd pfd = {partition_writer_fd(p), POLLIN, 0};
        poll(&pfd, 1, 20);
        partition_on_writer(p);
    }
    /* Only the entries after the snapshot were applied again (+ the new
     * leader's no-op, which does not reach apply). */
    cr_assert_eq(fx.applied_count, last - snap,
                 "applied %" PRIu64 " entries, snapshot %" PRIu64 " last %" PRIu64,
                 fx.applied_count, snap, last);
    partition_close(p);
}

Test(partition_snapshot, a_corrupt_newest_snapshot_falls_back_and_an_all_corrupt_one_fails)
{
    memset(&fx, 0, sizeof fx);
    fx.first_needed = 1;
    char err[512];
    struct partition *p = open_part(40, err);
    cr_assert_not_null(p, "%s", err);
    run(p, 100);
    partition_close(p);
    char dir[300];
    snprintf(dir, sizeof dir, "%s/p-1", t_dir);
    uint64_t idx[4];
    cr_assert_eq(snapfile_list(dir, idx, 4), 2);
    char path[600];
    snapfile_path(dir, idx[0], path, sizeof path);
    flip_byte(path, 50);

    memset(&fx, 0, sizeof fx);
    p = open_part(40, err);
    cr_assert_not_null(p, "older snapshot used: %s", err);
    cr_assert_eq(partition_boot_restore(p), CMQ_OK);
    cr_assert_eq(fx.restored_index, idx[1]);
    partition_close(p);

    char older[600];
    snapfile_path(dir, idx[1], older, sizeof older);
    flip_byte(older, 50);
    p = open_part(40, err);
    cr_assert_null(p);
    cr_assert(strstr(err, path), "the error names the newest file: %s", err);
}
