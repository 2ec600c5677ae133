/* test_partition_repair.c: setting a failed replica's directory aside
 * (services/storage/partition_repair.c, docs/raft.md §11): what the new
 * directory keeps, the vote floor the `repair` file carries (and carries over
 * from an earlier repair), the failed directories kept, and the refusal when
 * the term/vote file is unreadable.  Each test uses its own mkdtemp
 * directory. */
#include "partition_repair.h"

#include "log.h"
#include "status.h"
#include "../../tmpdir.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char t_root[256], t_dir[300];

static void t_setup(void)
{
    log_init("test", CMQ_LOG_ERROR);
    tmpdir_make(t_root, sizeof t_root, "repair-test");
    snprintf(t_dir, sizeof t_dir, "%s/p-7", t_root);
    cr_assert_eq(mkdir(t_dir, 0750), 0);
}

static void t_teardown(void)
{
    tmpdir_remove(t_root);
}

TestSuite(partition_repair, .init = t_setup, .fini = t_teardown);

static void put(const char *dir, const char *name, const char *text)
{
    char path[1300];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
}

static int exists(const char *dir, const char *name)
{
    char path[1300];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return access(path, F_OK) == 0;
}

/* The `p-7.failed-*` siblings: how many, and the name of one in *any. */
static int failed_dirs(char any[600])
{
    DIR *d = opendir(t_root);
    cr_assert_not_null(d);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        if (strncmp(de->d_name, "p-7.failed-", 11) == 0) {
            if (any)
                snprintf(any, 600, "%s/%s", t_root, de->d_name);
            n++;
        }
    closedir(d);
    return n;
}

Test(partition_repair, no_repair_file_means_no_floor)
{
    uint64_t ft = 9, fi = 9;
    partition_read_floor(t_dir, 5, &ft, &fi);
    cr_assert_eq(ft, 0);
    cr_assert_eq(fi, 0);
}

Test(partition_repair, discard_keeps_members_and_writes_the_floor)
{
    put(t_dir, "members", "1 storage-1\n");
    put(t_dir, "seg-0000000000000001", "log bytes");
    char err[512];
    cr_assert_eq(partition_discard(t_dir, 5, 42, err), CMQ_OK, "%s", err);
    cr_assert(exists(t_dir, "members"));
    cr_assert_not(exists(t_dir, "seg-0000000000000001"), "the log is gone from the replica");
    char aside[600];
    cr_assert_eq(failed_dirs(aside), 1);
    cr_assert(exists(aside, "seg-0000000000000001"), "the evidence is kept aside");
    uint64_t ft, fi;
    partition_read_floor(t_dir, 9, &ft, &fi);
    cr_assert_eq(ft, 5);
    cr_assert_eq(fi, 42);
}

Test(partition_repair, unknown_floor_is_the_kept_term_and_infinity)
{
    char err[512];
    cr_assert_eq(partition_discard(t_dir, 0, 0, err), CMQ_OK, "%s", err);
    uint64_t ft, fi;
    partition_read_floor(t_dir, 7, &ft, &fi);
    cr_assert_eq(ft, 7);
    cr_assert_eq(fi, UINT64_MAX);
    /* an unreadable repair file is the most conservative floor too */
    put(t_dir, "repair", "garbage\n");
    partition_read_floor(t_dir, 8, &ft, &fi);
    cr_assert_eq(ft, 8);
    cr_assert_eq(fi, UINT64_MAX);
}

Test(partition_repair, an_earlier_floor_still_applies_and_two_failed_dirs_are_kept)
{
    char err[512];
    cr_assert_eq(partition_discard(t_dir, 6, 100, err), CMQ_OK, "%s", err);
    /* the second repair dropped a shorter log: the first one's floor stays */
    cr_assert_eq(partition_discard(t_dir, 6, 10, err), CMQ_OK, "%s", err);
    uint64_t ft, fi;
    partition_read_floor(t_dir, 9, &ft, &fi);
    cr_assert_eq(ft, 6);
    cr_assert_eq(fi, 100);
    cr_assert_eq(partition_discard(t_dir, 7, 1, err), CMQ_OK, "%s", err);
    partition_read_floor(t_dir, 9, &ft, &fi);
    cr_assert_eq(ft, 7);
    cr_assert_eq(fi, 1);
    cr_assert_eq(failed_dirs(NULL), PARTITION_FAILED_KEEP);
}

Test(partition_repair, an_unreadable_term_vote_file_is_never_repaired_automatically)
{
    put(t_dir, "hardstate", "not a term/vote file at all, but long enough to be read as one");
    put(t_dir, "members", "1 storage-1\n");
    char err[512];
    int rc = partition_discard(t_dir, 5, 42, err);
    cr_assert_neq(rc, CMQ_OK);
    cr_assert(strstr(err, "not repaired automatically"), "%s", err);
    cr_assert_eq(failed_dirs(NULL), 0, "nothing moved");
    cr_assert(exists(t_dir, "members"));
}
