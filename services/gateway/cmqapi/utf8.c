/* utf8.c: strict UTF-8 decoding; see utf8.h. */
#include "utf8.h"

#include <assert.h>
#include <string.h>

static bool in_range(uint8_t b, uint8_t lo, uint8_t hi) { return b >= lo && b <= hi; }

int utf8_decode(const uint8_t *s, size_t len, uint32_t *cp)
{
    assert(len > 0);
    uint8_t b0 = s[0];
    if (b0 < 0x80) {
        *cp = b0;
        return 1;
    }
    int need;
    uint8_t lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    uint32_t v;
    if (in_range(b0, 0xC2, 0xDF)) {
        need = 1;
        v = b0 & 0x1F;
    } else if (in_range(b0, 0xE0, 0xEF)) {
        need = 2;
        v = b0 & 0x0F;
        if (b0 == 0xE0)
            lo = 0xA0; /* no overlongs */
        else if (b0 == 0xED)
            hi = 0x9F; /* no surrogates */
    } else if (in_range(b0, 0xF0, 0xF4)) {
        need = 3;
        v = b0 & 0x07;
        if (b0 == 0xF0)
            lo = 0x90; /* no overlongs */
        else if (b0 == 0xF4)
            hi = 0x8F; /* nothing above U+10FFFF */
    } else {
        return -1; /* 0x80..0xC1, 0xF5..0xFF never start a sequence */
    }
    for (int i = 1; i <= need; i++) {
        if ((size_t)i >= len)
            return -i;
        uint8_t b = s[i];
        if (i == 1 ? !in_range(b, lo, hi) : !in_range(b, 0x80, 0xBF))
            return -i;
        v = (v << 6) | (b & 0x3F);
    }
    *cp = v;
    return need + 1;
}

bool utf8_valid(const char *s, size_t len)
{
    const uint8_t *p = (const uint8_t *)s;
    size_t i = 0;
    while (i < len) {
        /* Fast path for ASCII: eight bytes at a time, then one. */
        if (len - i >= 8) {
            uint64_t w;
            memcpy(&w, p + i, 8);
            if ((w & 0x8080808080808080ULL) == 0) {
                i += 8;
                continue;
            }
        }
        if (p[i] < 0x80) {
            i++;
            continue;
        }
        uint32_t cp;
        int n = utf8_decode(p + i, len - i, &cp);
        if (n < 0)
            return false;
        i += (size_t)n;
    }
    return true;
}

long utf8_count(const char *s, size_t len)
{
    const uint8_t *p = (const uint8_t *)s;
    size_t i = 0;
    long count = 0;
    while (i < len) {
        uint32_t cp;
        int n = utf8_decode(p + i, len - i, &cp);
        if (n < 0)
            return -1;
        i += (size_t)n;
        count++;
    }
    return count;
}
