/* tmpdir.h: a private temporary directory for a unit test that writes files
 * (segment logs, snapshots, SQLite), removed afterwards with everything in
 * it.  One helper for every test folder, included by relative path. */
#ifndef CMQ_TEST_TMPDIR_H
#define CMQ_TEST_TMPDIR_H

#include <criterion/criterion.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

/* Makes /tmp/cmq-<name>-XXXXXX into buf (mkdtemp fills the X's). */
static inline void tmpdir_make(char *buf, size_t cap, const char *name)
{
    snprintf(buf, cap, "/tmp/cmq-%s-XXXXXX", name);
    cr_assert_not_null(mkdtemp(buf), "mkdtemp %s", buf);
}

static inline int tmpdir_remove_one(const char *path, const struct stat *sb, int flag,
                                    struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* Removes dir and everything under it (no symlink is followed). */
static inline void tmpdir_remove(const char *dir)
{
    nftw(dir, tmpdir_remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

#endif
