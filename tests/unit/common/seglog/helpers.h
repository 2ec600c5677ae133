/* helpers.h: shared fixtures for the segment-log tests.
 *
 * Each test runs in its own mkdtemp directory under /tmp, removed afterwards.
 * Entry payloads are a pure function of (index, term), so any entry can be
 * checked without remembering what was written.
 */
#ifndef CMQ_TEST_SEGLOG_HELPERS_H
#define CMQ_TEST_SEGLOG_HELPERS_H

#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "format.h"
#include "seglog.h"
#include "status.h"
#include "../../tmpdir.h"

/* Small segments so a few hundred entries span many of them. */
#define T_SEGMENT_BYTES 4096u
#define T_MAX_RECORD 1024u

static char t_dir[256];

static inline void t_setup(void)
{
    tmpdir_make(t_dir, sizeof t_dir, "seglog-test");
}

static inline void t_teardown(void)
{
    tmpdir_remove(t_dir);
}

static inline struct seglog_opts t_opts(void)
{
    struct seglog_opts o;
    seglog_opts_default(&o);
    o.segment_bytes = T_SEGMENT_BYTES;
    o.max_record_bytes = T_MAX_RECORD;
    o.max_open_segments = 2;
    return o;
}

static inline struct seglog *t_open(void)
{
    struct seglog_opts o = t_opts();
    struct seglog *log;
    char err[SEGLOG_ERR_MAX];
    int st = seglog_open(t_dir, &o, &log, err);
    cr_assert_eq(st, CMQ_OK, "open: %s: %s", status_name(st), err);
    return log;
}

/* Payload length of entry `index`: varies from 1 to 200 bytes. */
static inline uint32_t t_len(uint64_t index)
{
    return (uint32_t)(index * 37 % 200) + 1;
}

static inline void t_fill(uint8_t *buf, uint64_t index, uint64_t term, uint32_t len)
{
    for (uint32_t k = 0; k < len; k++)
        buf[k] = (uint8_t)(index * 131 + term * 7 + k);
}

/* Appends [from, to] with `term`, in batches of 7. */
static inline void t_append(struct seglog *log, uint64_t from, uint64_t to, uint64_t term)
{
    static uint8_t bufs[7][256];
    struct seglog_entry e[7];
    for (uint64_t i = from; i <= to;) {
        size_t n = 0;
        for (; n < 7 && i <= to; n++, i++) {
            uint32_t len = t_len(i);
            t_fill(bufs[n], i, term, len);
            e[n] = (struct seglog_entry){.term = term, .index = i, .len = len,
                                         .type = (uint8_t)(i % 3), .data = bufs[n]};
        }
        int st = seglog_append(log, e, n);
        cr_assert_eq(st, CMQ_OK, "append up to %" PRIu64 ": %s", i - 1, status_name(st));
    }
}

/* Domain assertion: entry `index` is stored with `term` and its payload. */
static inline void assert_entry(struct seglog *log, uint64_t index, uint64_t term)
{
    uint8_t buf[T_MAX_RECORD], want[256];
    struct seglog_entry e;
    int st = seglog_read(log, index, &e, buf, sizeof buf);
    char err[SEGLOG_ERR_MAX];
    seglog_last_error(log, err);
    cr_assert_eq(st, CMQ_OK, "read %" PRIu64 ": %s %s", index, status_name(st), err);
    cr_assert_eq(e.index, index);
    cr_assert_eq(e.term, term, "index %" PRIu64 " term %" PRIu64 " want %" PRIu64, index, e.term,
                 term);
    cr_assert_eq(e.type, index % 3);
    cr_assert_eq(e.len, t_len(index));
    t_fill(want, index, term, e.len);
    cr_assert_eq(memcmp(buf, want, e.len), 0, "payload of %" PRIu64, index);
    uint64_t t;
    cr_assert_eq(seglog_term_at(log, index, &t), CMQ_OK);
    cr_assert_eq(t, term);
}

static inline void assert_range(struct seglog *log, uint64_t from, uint64_t to, uint64_t term)
{
    for (uint64_t i = from; i <= to; i++)
        assert_entry(log, i, term);
}

/* The first indexes of the segment files present, ascending; returns count. */
static inline size_t t_segments(uint64_t *firsts, size_t cap)
{
    DIR *d = opendir(t_dir);
    cr_assert_not_null(d);
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t l = strlen(de->d_name);
        if (l == 24 && strcmp(de->d_name + 20, ".seg") == 0 && n < cap)
            firsts[n++] = strtoull(de->d_name, NULL, 10);
    }
    closedir(d);
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && firsts[j - 1] > firsts[j]; j--) {
            uint64_t t = firsts[j];
            firsts[j] = firsts[j - 1];
            firsts[j - 1] = t;
        }
    return n;
}

static inline void t_path(char *buf, size_t cap, uint64_t first, const char *ext)
{
    snprintf(buf, cap, "%s/%020" PRIu64 "%s", t_dir, first, ext);
}

/* Byte offset of entry `index` in the segment starting at `first`, computed
 * from the format: records back to back from byte 32. */
static inline uint64_t t_offset(uint64_t first, uint64_t index)
{
    uint64_t off = SEG_FILE_HDR_BYTES;
    for (uint64_t i = first; i < index; i++)
        off += seg_rec_bytes(t_len(i));
    return off;
}

static inline void t_write_at(const char *path, uint64_t off, const void *buf, size_t len)
{
    int fd = open(path, O_WRONLY);
    cr_assert(fd >= 0, "open %s", path);
    cr_assert_eq(pwrite(fd, buf, len, (off_t)off), (ssize_t)len);
    close(fd);
}

static inline void t_flip_byte(const char *path, uint64_t off)
{
    int fd = open(path, O_RDWR);
    cr_assert(fd >= 0, "open %s", path);
    uint8_t b;
    cr_assert_eq(pread(fd, &b, 1, (off_t)off), 1);
    b ^= 0x5a;
    cr_assert_eq(pwrite(fd, &b, 1, (off_t)off), 1);
    close(fd);
}

/* Opens expecting failure; returns the status and the message in err. */
static inline int t_open_fails(char err[SEGLOG_ERR_MAX])
{
    struct seglog_opts o = t_opts();
    struct seglog *log = NULL;
    int st = seglog_open(t_dir, &o, &log, err);
    cr_assert_neq(st, CMQ_OK, "open unexpectedly succeeded");
    cr_assert_null(log);
    return st;
}

#endif
