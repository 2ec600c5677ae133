/* Tests for common/base/crc32c.c: RFC 3720 (iSCSI) vectors on both paths. */
#include "crc32c.h"

#include <criterion/criterion.h>
#include <string.h>

static void check_vector(const void *buf, size_t len, uint32_t want)
{
    cr_assert_eq(crc32c_sw(0, buf, len), want, "software: got %08x want %08x",
                 crc32c_sw(0, buf, len), want);
    cr_assert_eq(crc32c(0, buf, len), want, "dispatch (hw=%d): got %08x want %08x",
                 crc32c_hw_available(), crc32c(0, buf, len), want);
}

Test(crc32c, rfc3720_vectors)
{
    uint8_t buf[32];
    memset(buf, 0, sizeof buf);
    check_vector(buf, 32, 0x8A9136AA);
    memset(buf, 0xff, sizeof buf);
    check_vector(buf, 32, 0x62A8AB43);
    for (int i = 0; i < 32; i++)
        buf[i] = (uint8_t)i;
    check_vector(buf, 32, 0x46DD794E);
    for (int i = 0; i < 32; i++)
        buf[i] = (uint8_t)(31 - i);
    check_vector(buf, 32, 0x113FDB5C);
    check_vector("123456789", 9, 0xE3069283);
    check_vector("", 0, 0);
}

Test(crc32c, incremental_equals_one_shot_at_every_split_and_alignment)
{
    uint8_t data[200];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (uint8_t)(i * 31 + 7);
    for (size_t off = 0; off < 8; off++) {
        size_t len = sizeof data - off;
        uint32_t whole = crc32c(0, data + off, len);
        cr_assert_eq(whole, crc32c_sw(0, data + off, len));
        for (size_t cut = 0; cut <= len; cut += 13) {
            uint32_t part = crc32c(crc32c(0, data + off, cut), data + off + cut, len - cut);
            cr_assert_eq(part, whole, "off=%zu cut=%zu", off, cut);
        }
    }
}

Test(crc32c, detects_a_single_bit_flip)
{
    uint8_t data[64] = {0};
    uint32_t base = crc32c(0, data, sizeof data);
    for (size_t bit = 0; bit < sizeof data * 8; bit++) {
        data[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        cr_assert_neq(crc32c(0, data, sizeof data), base);
        data[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    }
}
