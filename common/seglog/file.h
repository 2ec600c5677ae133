/* file.h: the file-system seam of the segment log.
 *
 * Thin wrappers over the system calls the log uses.  errno is converted to a
 * status here, once (status_from_errno); short reads and writes and EINTR
 * are handled here so callers see all-or-nothing.  The segment log uses it;
 * so do the storage node's other durable files (snapshots, `members`), so
 * that the power-loss seam below covers them too.
 *
 * Test-only power-loss seam (docs/storage-format.md, "Power-loss testing"):
 * after file_fault_unsynced_enable(), bytes written through file_pwrite* stay
 * in process memory until their file is fdatasync'ed or fsync'ed; reads
 * through file_pread/file_size/file_next_data see them.  A process killed
 * with SIGKILL then loses exactly the unsynced writes, as a power loss would.
 * Never enable it in production: it holds every unsynced byte in memory and
 * serialises file I/O on one mutex.
 */
#ifndef CMQ_SEGLOG_FILE_H
#define CMQ_SEGLOG_FILE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

/* Opens `path` (borrowed) with open(2) flags; *fd receives the descriptor. */
int file_open(const char *path, int flags, int *fd);

/* Reads up to `len` bytes at `off`; *got receives how many (short at EOF). */
int file_pread(int fd, void *buf, size_t len, uint64_t off, size_t *got);

/* Writes all of `iov` (array modified in place) at `off`. */
int file_pwritev_all(int fd, struct iovec *iov, int iovcnt, uint64_t off);
int file_pwrite_all(int fd, const void *buf, size_t len, uint64_t off);

/* The next range [*start, *stop) within [off, end) that may hold non-zero
 * bytes.  Holes and unwritten (preallocated, never written) extents read as
 * zeros and are skipped; the file is synced first (FIEMAP_FLAG_SYNC) so no
 * dirty page hides behind an unwritten extent.  CMQ_ENOTFOUND when the rest
 * is all zeros.  Where the file system cannot tell, the range is [off, end). */
int file_next_data(int fd, uint64_t off, uint64_t end, uint64_t *start, uint64_t *stop);

/* Hints random (no read-ahead) or normal access; advisory, never fails. */
void file_advise_random(int fd, int on);

int file_fdatasync(int fd);
int file_fsync(int fd);
int file_truncate(int fd, uint64_t len);
/* Reserves blocks for [0, len) so appends never hit ENOSPC or extend the file. */
int file_preallocate(int fd, uint64_t len);
int file_size(int fd, uint64_t *size);
/* fsyncs the directory `dir` (borrowed), making renames and unlinks durable. */
int file_fsync_dir(const char *dir);
int file_rename(const char *from, const char *to);
/* Unlinks; a missing file is not an error. */
int file_unlink(const char *path);

/* Turns the power-loss seam on for the whole process (and forgets any
 * earlier overlay and crash): call once, before any file is opened through
 * these wrappers.  There is no way to turn it off. */
void file_fault_unsynced_enable(void);
int file_fault_unsynced_enabled(void);
/* Simulates a power loss in-process, for tests: every unsynced write is
 * dropped, and until file_fault_unsynced_enable() is called again ("the
 * machine restarted") every change through these wrappers (writes, syncs,
 * truncations, renames, unlinks, opens that create or truncate) does nothing
 * (opens that would create or truncate fail with CMQ_EIO). */
void file_fault_crash(void);
/* Also models directory operations, for in-process crashes only: a file
 * created or renamed through these wrappers and not followed by a
 * file_fsync_dir of its directory (both directories for a rename) is undone
 * by file_fault_crash (the created file removed, the rename reversed and a
 * replaced file put back; it waits under a hidden name `<to>.plbak<n>` until
 * the rename is durable).  Unlinks are not modelled.  Directories are
 * compared as strings: pass file_fsync_dir the directory part of the paths
 * exactly as it was spelled in them.  Call after file_fault_unsynced_enable. */
void file_fault_dirops_enable(void);
/* Bytes currently held back (written, not yet synced). */
uint64_t file_fault_unsynced_bytes(void);

#endif
