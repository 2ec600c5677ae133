/* raftwire.h: the one mapping between Raft traffic and its protobuf form
 * (proto/raft.proto), both ways: struct raft_msg <-> cmq.RaftWire
 * (RAFT_WIRE_MESSAGE) and struct partition_chunk <-> cmq.RaftInstall
 * (RAFT_WIRE_INSTALL).  Nothing else builds or parses these messages.
 *
 * Widths.  This nanopb build has 16-bit pb_size_t (no PB_FIELD_32BIT), so no
 * entry list, entry data or snapshot image goes through a nanopb size or
 * count: they are callbacks (proto/raft.options).  The encoder writes each
 * length as a varint from a size_t; the decoder borrows every entry's data
 * and the snapshot image from the received frame (zero-copy: they stay valid
 * while the frame does) and keeps the entry list in a malloc'd array.
 *
 * Integrity.  Every entry carries a CRC-32C (RaftEntry.crc32c) over its term,
 * index, type, length and data, and a snapshot carries one over its index,
 * term, configuration and image (RaftSnapshot.crc32c).  Raft's in-memory log
 * keeps no checksum (struct raft_entry), so the sender computes them while
 * encoding, from the bytes it sends; the segment record's own CRC is checked
 * when an entry is read back from disk, before it reaches the encoder.  The
 * decoder recomputes them: a message in which any entry (or the snapshot)
 * fails is refused as a whole, with the first failing index reported, so the
 * caller never steps or acknowledges any part of it.
 *
 * Limits (docs/raft.md §4.1), each enforced when encoding (a bug of ours: the
 * encoder refuses) and when decoding (the peer's: the message is refused):
 * entry data <= RAFTWIRE_ENTRY_BYTES_MAX, entries per message <=
 * RAFTWIRE_ENTRIES_MAX, a snapshot image <= RAFTWIRE_SNAPSHOT_BYTES_MAX, and
 * the whole message <= RPC_MAX_MSG_BYTES.
 */
#ifndef CMQ_STORAGE_RAFTWIRE_H
#define CMQ_STORAGE_RAFTWIRE_H

#include "partition.h"
#include "raft.h"

#include <stddef.h>
#include <stdint.h>

/* The largest entry data on the wire: the largest entry the system makes. */
#define RAFTWIRE_ENTRY_BYTES_MAX PARTITION_ENTRY_BYTES_MAX
/* Entries in one message.  Raft sends at most PARTITION_APPEND_ENTRIES_MAX,
 * an install chunk at most PARTITION_CHUNK_ENTRIES_MAX; the decoder accepts
 * up to this many (each costs a struct raft_entry, 32 bytes). */
#define RAFTWIRE_ENTRIES_MAX 4096u
/* The largest snapshot image that fits one transport message (the frame
 * limit less room for the envelope and the message's other fields).  Raft
 * allows images up to SNAPFILE_IMAGE_BYTES_MAX (64 MiB); a larger one than
 * this cannot be sent (the encoder says CMQ_ETOOBIG, the node logs it). */
#define RAFTWIRE_SNAPSHOT_BYTES_MAX ((16u << 20) - (64u << 10))

/* What a refused decode found, for the caller's log line. */
struct raftwire_fault {
    int crc_bad;         /* 1: an entry's CRC did not match; 2: the snapshot's */
    uint64_t index;      /* that entry's index (the snapshot's index for 2) */
    uint32_t stored_crc; /* as carried on the wire */
    uint32_t computed_crc;
};

/* A decoded RaftWire.  m.entries points at `entries`; entry data and the
 * snapshot image borrow from the decoded buffer. */
struct raftwire_msg {
    uint32_t partition;
    struct raft_msg m;
    struct raft_entry *entries; /* malloc'd, n = m.n_entries */
    struct raftwire_fault fault;
};

/* A decoded RaftInstall; c.entries as in struct raftwire_msg. */
struct raftwire_install {
    uint32_t partition;
    struct partition_chunk c;
    struct raft_entry *entries;
    struct raftwire_fault fault;
};

/* The checksums carried on the wire (format in proto/raft.proto). */
uint32_t raftwire_entry_crc(const struct raft_entry *e);
uint32_t raftwire_snapshot_crc(const struct raft_snapshot *s, const uint8_t *config,
                               size_t config_len);

/* Encodes `m` (borrowed) for partition `partition` into a new malloc'd
 * buffer; on CMQ_OK ownership of *out passes to the caller.  CMQ_ETOOBIG: an
 * entry, the snapshot image or the whole message is over its limit;
 * CMQ_ELIMIT: more than RAFTWIRE_ENTRIES_MAX entries; CMQ_EINVAL: an
 * unencodable configuration; CMQ_ENOMEM. */
int raftwire_encode_msg(uint32_t partition, const struct raft_msg *m, uint8_t **out,
                        size_t *out_len);
/* The same for an install chunk or its ack. */
int raftwire_encode_install(uint32_t partition, const struct partition_chunk *c, uint8_t **out,
                            size_t *out_len);

/* Decodes `buf` (borrowed; it must outlive *out) into *out.  Returns CMQ_OK;
 * CMQ_ECORRUPT when it is not a well-formed message, or when a checksum does
 * not match (out->fault says which; out->partition is set when the message
 * named one); CMQ_ETOOBIG or CMQ_ELIMIT when it is over a limit; CMQ_ENOMEM.
 * Whatever the result, release *out with raftwire_*_release. */
int raftwire_decode_msg(const uint8_t *buf, size_t len, struct raftwire_msg *out);
int raftwire_decode_install(const uint8_t *buf, size_t len, struct raftwire_install *out);
/* Frees the entry array (the borrowed bytes are the caller's).  NULL allowed. */
void raftwire_msg_release(struct raftwire_msg *w);
void raftwire_install_release(struct raftwire_install *w);

#endif
