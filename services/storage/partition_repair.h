/* partition_repair.h: setting a failed replica's directory aside so the
 * partition can be opened again empty and refilled from the leader
 * (docs/raft.md §11), and the vote floor that survives it (raft.h S7).
 * partition.h includes it; partition.c reads the floor at open. */
#ifndef CMQ_STORAGE_PARTITION_REPAIR_H
#define CMQ_STORAGE_PARTITION_REPAIR_H

#include <stdint.h>

/* Failed directories kept per partition (older ones are deleted). */
#define PARTITION_FAILED_KEEP 2

/* Moves `dir` aside to `<dir>.failed-<unix s>` (evidence kept, never
 * deleted here except the oldest beyond PARTITION_FAILED_KEEP) and creates
 * `dir` again holding only copies of its `hardstate` and `members` files and
 * a `repair` file with the vote floor: (floor_term, floor_index) of the log
 * being discarded, or (0, 0) when it could not be read (then the floor is
 * derived at open from the kept term: raft.h S7).  Synced.  The partition
 * must be closed.  On failure returns a status and a message in err. */
int partition_discard(const char *dir, uint64_t floor_term, uint64_t floor_index, char err[512]);

/* Reads `dir`/repair into (*ft, *fi): (0, 0) when there is none; a file
 * holding "0 0" (the discarded log was unreadable) or an unreadable file
 * gives (term, UINT64_MAX), the most conservative floor. */
void partition_read_floor(const char *dir, uint64_t term, uint64_t *ft, uint64_t *fi);

#endif
