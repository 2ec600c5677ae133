/* snapfile.h: a partition's snapshot files and the install staging area.
 *
 * A snapshot file `snap-<index, 20 digits>.snap` sits in the partition's
 * directory next to the segments.  It holds the Raft metadata of the
 * snapshot (index, term, configuration), the first log index the state
 * machine still reads (`first_needed`: the segments from there on must be
 * kept with it) and the queue state machine image (qsm_snapshot_write), all
 * covered by one CRC32C.  The byte layout is in docs/storage-format.md §8.
 *
 * Writes are atomic: `<name>.tmp`, fsync, rename, fsync of the directory.
 * At most two files are kept (the newest and the one before, the fallback
 * when the newest fails its checks).
 *
 * The install area `install/` (a follower receiving a snapshot from its
 * leader) holds a segment log with the entries [first_needed, index] and,
 * once complete, the snapshot file `install/snapshot`; snapfile_install_finish
 * moves it into place (§8.3 of the format document has the steps and why they
 * can be redone after a crash).
 *
 * Pure file code: no Raft, no queue state machine, no event loop.  Every
 * function blocks on the disk; callers run them off the event loop where the
 * size matters (the seglog writer thread runs snapshot writes).
 */
#ifndef CMQ_STORAGE_SNAPFILE_H
#define CMQ_STORAGE_SNAPFILE_H

#include "raft.h"

#include <stddef.h>
#include <stdint.h>

#define SNAPFILE_ERR_MAX 512
#define SNAPFILE_IMAGE_BYTES_MAX (64u << 20) /* equals raft's max_snapshot_bytes */
#define SNAPFILE_KEEP 2                      /* files kept: newest + one fallback */

struct snap_meta {
    uint64_t index;        /* last log index the snapshot covers */
    uint64_t term;         /* term of that entry */
    uint64_t first_needed; /* segments from here on belong to the snapshot */
    struct raft_config config;
};

/* Writes the snapshot file at `path` atomically (tmp, fsync, rename, fsync
 * of the containing directory).  `m` and `image` are borrowed. */
int snapfile_write(const char *path, const struct snap_meta *m, const uint8_t *image, size_t len,
                   char err[SNAPFILE_ERR_MAX]);

/* Reads and checks the file at `path`.  On CMQ_OK *image is malloc'd (the
 * caller frees it; NULL when the image is empty).  CMQ_ENOTFOUND when it is
 * missing; CMQ_ECORRUPT with a message naming the file when any check fails. */
int snapfile_read(const char *path, struct snap_meta *m, uint8_t **image, size_t *len,
                  char err[SNAPFILE_ERR_MAX]);

/* Fills `out` with "dir/snap-<index>.snap". */
void snapfile_path(const char *dir, uint64_t index, char *out, size_t cap);

/* Lists the snapshot indexes in `dir`, newest first; returns how many
 * (at most `max`). */
size_t snapfile_list(const char *dir, uint64_t *indexes, size_t max);

/* Loads the newest snapshot that passes its checks.  A file that fails is
 * logged (event=snapshot_corrupt, naming it) and the next older one is tried.
 * CMQ_ENOTFOUND when there is no snapshot file at all; CMQ_ECORRUPT (err names
 * the newest file) when every one failed.  *image as for snapfile_read. */
int snapfile_load_newest(const char *dir, struct snap_meta *m, uint8_t **image, size_t *len,
                         char err[SNAPFILE_ERR_MAX]);

/* Deletes every snapshot file in `dir` except the newest SNAPFILE_KEEP; sets
 * *oldest_first_needed (may be NULL) to the smallest first_needed among the
 * ones kept that read back fine (UINT64_MAX when none). */
int snapfile_prune(const char *dir, uint64_t *oldest_first_needed);

/* Finishes (or discards) an interrupted install in `dir`/install; see §8.3.
 * Returns CMQ_OK when nothing was there or it completed. */
int snapfile_install_finish(const char *dir, char err[SNAPFILE_ERR_MAX]);

/* Removes `dir`/install and everything in it. */
void snapfile_install_discard(const char *dir);

/* fsyncs a directory. */
int snapfile_sync_dir(const char *dir);

#endif
