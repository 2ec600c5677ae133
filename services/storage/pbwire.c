/* pbwire.c: protobuf varints and field iteration at the byte level; see
 * pbwire.h. */
#include "pbwire.h"

#include <assert.h>

void pbwire_reader_init(struct pbwire_reader *r, const void *buf, size_t len)
{
    r->p = buf;
    r->end = r->p ? r->p + len : r->p;
    r->err = false;
}

bool pbwire_get_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    uint64_t x = 0;
    const uint8_t *s = *p;
    for (unsigned i = 0; i < PBWIRE_VARINT_MAX; i++) {
        if (s >= end)
            return false;
        uint8_t b = *s++;
        /* the 10th byte holds bit 63 only (nanopb refuses more) */
        if (i == PBWIRE_VARINT_MAX - 1 && (b & 0xfe))
            return false;
        x |= (uint64_t)(b & 0x7f) << (7 * i);
        if (!(b & 0x80)) {
            *p = s;
            *v = x;
            return true;
        }
    }
    return false;
}

size_t pbwire_varint_size(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

size_t pbwire_put_varint(uint8_t *out, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        out[n++] = (uint8_t)(v | 0x80); /* the low 7 bits and the continuation bit */
        v >>= 7;
    }
    out[n++] = (uint8_t)v; /* < 0x80 here */
    return n;
}

size_t pbwire_tag_size(uint32_t num)
{
    return pbwire_varint_size((uint64_t)num << 3);
}

size_t pbwire_put_tag(uint8_t *out, uint32_t num, uint32_t wt)
{
    assert(num >= 1 && num <= PBWIRE_FIELD_MAX && wt <= 7);
    return pbwire_put_varint(out, (uint64_t)num << 3 | wt);
}

static uint64_t le(const uint8_t *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = n; i-- > 0;)
        v = v << 8 | p[i];
    return v;
}

bool pbwire_next(struct pbwire_reader *r, struct pbwire_field *f)
{
    if (r->err || r->p >= r->end)
        return false;
    uint64_t tag;
    if (!pbwire_get_varint(&r->p, r->end, &tag) || (tag >> 3) == 0 ||
        (tag >> 3) > PBWIRE_FIELD_MAX) {
        r->err = true;
        return false;
    }
    f->num = (uint32_t)(tag >> 3); /* <= PBWIRE_FIELD_MAX, checked above */
    f->wt = (uint32_t)(tag & 7);
    f->v = 0;
    f->data = NULL;
    f->len = 0;
    size_t left;
    switch (f->wt) {
    case PBWIRE_VARINT:
        if (!pbwire_get_varint(&r->p, r->end, &f->v))
            break;
        return true;
    case PBWIRE_LEN:
        if (!pbwire_get_varint(&r->p, r->end, &f->v))
            break;
        left = (size_t)(r->end - r->p);
        if (f->v > left)
            break;
        f->data = r->p;
        f->len = (size_t)f->v; /* <= left, a size_t */
        r->p += f->len;
        return true;
    case PBWIRE_I64:
    case PBWIRE_I32:
        f->len = f->wt == PBWIRE_I64 ? 8 : 4;
        if ((size_t)(r->end - r->p) < f->len)
            break;
        f->data = r->p;
        f->v = le(r->p, f->len);
        r->p += f->len;
        return true;
    default:
        break;
    }
    r->err = true;
    return false;
}

bool pbwire_find_varint(const void *buf, size_t len, uint32_t num, uint64_t *v)
{
    struct pbwire_reader r;
    struct pbwire_field f;
    bool found = false;
    uint64_t last = 0;
    pbwire_reader_init(&r, buf, len);
    while (pbwire_next(&r, &f))
        if (f.num == num && f.wt == PBWIRE_VARINT) {
            last = f.v;
            found = true;
        }
    if (r.err || !found)
        return false;
    *v = last;
    return true;
}
