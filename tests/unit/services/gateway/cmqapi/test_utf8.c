/* test_utf8.c: services/gateway/cmqapi/utf8.c against the well-formed byte
 * sequences of the Unicode Standard, Table 3-7, at every boundary. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "utf8.h"

static int dec(const char *s, size_t len, uint32_t *cp)
{
    return utf8_decode((const uint8_t *)s, len, cp);
}

Test(utf8, boundaries_of_table_3_7)
{
    static const struct {
        const char *s;
        int len;
        uint32_t cp;
    } good[] = {
        {"\x00", 1, 0x0},           {"\x7F", 1, 0x7F},          {"\xC2\x80", 2, 0x80},
        {"\xDF\xBF", 2, 0x7FF},     {"\xE0\xA0\x80", 3, 0x800}, {"\xEC\xBF\xBF", 3, 0xCFFF},
        {"\xED\x80\x80", 3, 0xD000}, {"\xED\x9F\xBF", 3, 0xD7FF}, {"\xEE\x80\x80", 3, 0xE000},
        {"\xEF\xBF\xBF", 3, 0xFFFF}, {"\xF0\x90\x80\x80", 4, 0x10000},
        {"\xF3\xBF\xBF\xBF", 4, 0xFFFFF}, {"\xF4\x8F\xBF\xBF", 4, 0x10FFFF},
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(*good); i++) {
        uint32_t cp = 0xFFFFFFFF;
        cr_assert_eq(dec(good[i].s, (size_t)good[i].len, &cp), good[i].len, "case %zu", i);
        cr_assert_eq(cp, good[i].cp, "case %zu: U+%04X", i, cp);
        cr_assert(utf8_valid(good[i].s, (size_t)good[i].len));
    }
}

Test(utf8, ill_formed_with_maximal_prefix)
{
    static const struct {
        const char *s;
        int len;
        int want;
    } bad[] = {
        {"\x80", 1, -1},             {"\xBF", 1, -1},             {"\xC0\x80", 2, -1},
        {"\xC1\xBF", 2, -1},         {"\xC2", 1, -1},             {"\xC2\x41", 2, -1},
        {"\xE0\x9F\xBF", 3, -1},     {"\xE0\xA0", 2, -2},         {"\xE0\xA0\x41", 3, -2},
        {"\xED\xA0\x80", 3, -1},     {"\xF0\x8F\xBF\xBF", 4, -1}, {"\xF0\x90\x80", 3, -3},
        {"\xF4\x90\x80\x80", 4, -1}, {"\xF5\x80\x80\x80", 4, -1}, {"\xFF", 1, -1},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        uint32_t cp;
        cr_assert_eq(dec(bad[i].s, (size_t)bad[i].len, &cp), bad[i].want, "case %zu", i);
        cr_assert_not(utf8_valid(bad[i].s, (size_t)bad[i].len), "case %zu", i);
    }
}

Test(utf8, count)
{
    cr_assert_eq(utf8_count("", 0), 0);
    cr_assert_eq(utf8_count("h\xC3\xA9llo \xE4\xB8\x96", 10), 7);
    cr_assert_eq(utf8_count("a\xFF", 2), -1);
    cr_assert(utf8_valid("", 0));
}
