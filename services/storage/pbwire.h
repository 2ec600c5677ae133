/* pbwire.h: the protobuf wire format at the byte level: varints and a field
 * iterator over an encoded message, for code that peeks at a few fields
 * without decoding the whole message (nanopb's structs hold at most 64 KiB a
 * field here, and a scan over the log should not copy bodies anyway).
 *
 * Pure: no allocation, no nanopb, no ZeroMQ; a reader never reads outside
 * [buf, buf + len) and every value it returns points inside that range.
 *
 * Refused (pbwire_next returns false with r->err set): a varint longer than
 * 10 bytes or beyond 64 bits (as nanopb refuses it), field number 0 or above
 * PBWIRE_FIELD_MAX, wire types 3, 4 (groups), 6 and 7, a length or a fixed
 * field running past the end.  After an error the reader stays failed.
 *
 * Widths: field numbers are uint32_t (29 bits on the wire), lengths are
 * size_t, checked against what is left before any pointer moves. */
#ifndef CMQ_STORAGE_PBWIRE_H
#define CMQ_STORAGE_PBWIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PBWIRE_FIELD_MAX ((1u << 29) - 1)
#define PBWIRE_VARINT_MAX 10 /* bytes of the longest varint (a 64-bit value) */

/* Wire types (the low 3 bits of a tag). */
enum { PBWIRE_VARINT = 0, PBWIRE_I64 = 1, PBWIRE_LEN = 2, PBWIRE_I32 = 5 };

/* One field as read. */
struct pbwire_field {
    uint32_t num;        /* field number, 1..PBWIRE_FIELD_MAX */
    uint32_t wt;         /* PBWIRE_VARINT, _I64, _LEN or _I32 */
    uint64_t v;          /* VARINT: the value; I64/I32: the little-endian value;
                          * LEN: the length (== len) */
    const uint8_t *data; /* LEN: the bytes (never NULL, even when empty);
                          * I64/I32: the raw bytes; VARINT: NULL */
    size_t len;          /* LEN: byte count; I64: 8; I32: 4; VARINT: 0 */
};

/* Iterates the fields of one encoded message (borrowed for the reader's life). */
struct pbwire_reader {
    const uint8_t *p, *end;
    bool err;            /* the input was malformed (sticky) */
};

/* Starts a reader over buf[0..len) (buf may be NULL when len is 0). */
void pbwire_reader_init(struct pbwire_reader *r, const void *buf, size_t len);
/* Reads the next field into *f: true; false at the end of the input (r->err
 * false) or on malformed input (r->err true). */
bool pbwire_next(struct pbwire_reader *r, struct pbwire_field *f);

/* Reads one varint at *p (not past end), advancing *p: true, or false (and
 * *p unspecified) when it is truncated or too long. */
bool pbwire_get_varint(const uint8_t **p, const uint8_t *end, uint64_t *v);
/* Bytes the varint of `v` takes: 1..PBWIRE_VARINT_MAX. */
size_t pbwire_varint_size(uint64_t v);
/* Writes the varint of `v` at out (room for pbwire_varint_size(v) bytes);
 * returns the bytes written. */
size_t pbwire_put_varint(uint8_t *out, uint64_t v);
/* Writes the tag of (num, wt) at out (room for pbwire_varint_size of it);
 * returns the bytes written.  num must be 1..PBWIRE_FIELD_MAX. */
size_t pbwire_put_tag(uint8_t *out, uint32_t num, uint32_t wt);
/* Bytes a tag of field `num` takes. */
size_t pbwire_tag_size(uint32_t num);

/* The value of the last field `num` of wire type VARINT in buf[0..len)
 * (protobuf: the last one wins): true and *v set, false when there is none
 * or the message is malformed (*v untouched then). */
bool pbwire_find_varint(const void *buf, size_t len, uint32_t num, uint64_t *v);

#endif
