/* pb_size.h: nanopb counts and lengths, checked.
 *
 * This nanopb build has 16-bit pb_size_t (Debian's runtime: no
 * PB_FIELD_32BIT), the type of every `*_count` of a repeated field and every
 * `size` of a bytes field.  A count or length computed in a wider type goes
 * into one of them only through PB_COUNT / pb_size_checked: a value that does
 * not fit the field's array (or pb_size_t) is our bug, and it stops the
 * process with a message instead of wrapping silently.  Lists or bytes that
 * may be larger than 65,535 must not be nanopb arrays at all: they are
 * callbacks (the .options files in proto/ say which).
 */
#ifndef CMQ_PROTO_PB_SIZE_H
#define CMQ_PROTO_PB_SIZE_H

#include <pb.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

static inline pb_size_t pb_size_checked(size_t n, size_t cap, const char *what)
{
    if (n > cap || n > PB_SIZE_MAX) {
        fprintf(stderr, "fatal: nanopb size out of range: %s = %zu (capacity %zu, pb_size_t max "
                "%u)\n", what, n, cap, (unsigned)PB_SIZE_MAX);
        abort();
    }
    return (pb_size_t)n;
}

/* The count for the fixed array `arr` (a nanopb max_count field). */
#define PB_COUNT(arr, n) pb_size_checked((size_t)(n), sizeof(arr) / sizeof((arr)[0]), #arr)

#endif
