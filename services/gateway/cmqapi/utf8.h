/* utf8.h: strict UTF-8 decoding (RFC 3629), shared by the parameter parser
 * (which rejects invalid values, spec §2.2) and the JSON writer (which
 * replaces invalid bytes with U+FFFD).
 *
 * Well-formed means the Unicode Standard's Table 3-7: no overlong forms, no
 * surrogates (U+D800..U+DFFF), nothing above U+10FFFF.  Pure functions; no
 * state, no allocation.
 */
#ifndef CMQ_GWAPI_UTF8_H
#define CMQ_GWAPI_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Decodes the sequence at the start of `s` (`len` > 0 bytes, borrowed).
 * Returns its length (1..4) and sets *cp on success; on an ill-formed
 * sequence returns minus the length of its maximal ill-formed prefix
 * (-1..-3), which is what one U+FFFD replaces. */
int utf8_decode(const uint8_t *s, size_t len, uint32_t *cp);

/* True when all `len` bytes of `s` (borrowed) are well-formed UTF-8. */
bool utf8_valid(const char *s, size_t len);

/* The number of code points in well-formed `s`; -1 when it is ill-formed. */
long utf8_count(const char *s, size_t len);

#endif
