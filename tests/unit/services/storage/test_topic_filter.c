/* Tests for services/storage/topic_filter.c: the spec's §9.4 rules as tables. */
#include "topic_filter.h"

#include <criterion/criterion.h>
#include <string.h>

struct route_case {
    const char *binding, *routing;
    bool match;
};

static const struct route_case routes[] = {
    /* literal words */
    {"a.b.c", "a.b.c", true},
    {"a.b.c", "a.b", false},
    {"a.b", "a.b.c", false},
    {"a.b.c", "a.b.d", false},
    {"abc", "abc", true},
    {"abc", "ab", false},
    /* '*' is exactly one word */
    {"*", "a", true},
    {"*", "a.b", false},
    {"a.*", "a.b", true},
    {"a.*", "a", false},
    {"a.*", "a.b.c", false},
    {"*.b.*", "a.b.c", true},
    {"*.*", "a.b", true},
    {"a.*.c", "a.x.c", true},
    {"a.*.c", "a.c", false},
    /* '#' at the start */
    {"#", "a", true},
    {"#", "a.b.c.d", true},
    {"#.c", "c", true},
    {"#.c", "a.b.c", true},
    {"#.c", "a.b.d", false},
    {"#.b.c", "b.c", true},
    /* '#' in the middle */
    {"a.#.c", "a.c", true},
    {"a.#.c", "a.b.c", true},
    {"a.#.c", "a.b.x.y.c", true},
    {"a.#.c", "a.b.x.y.d", false},
    {"a.#.c", "x.b.c", false},
    {"a.#.*.c", "a.c", false},
    {"a.#.*.c", "a.b.c", true},
    /* '#' at the end */
    {"a.#", "a", true},
    {"a.#", "a.b", true},
    {"a.#", "a.b.c.d.e", true},
    {"a.#", "b.a", false},
    /* several '#' */
    {"#.#", "a", true},
    {"#.a.#", "x.y.a.z", true},
    {"#.a.#", "x.y.z", false},
    {"#.#.#.#.#.#.#.#.#.#.#.#.#.#.#.z", "a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a", false},
    {"#.#.#.#.#.#.#.#.#.#.#.#.#.#.#.a", "a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a", true},
    /* '#' and '*' only as whole words */
    {"a#", "ab", false},
    {"a*", "ab", false},
    {"a*", "a*", true},
    /* empty words are words */
    {"a..b", "a..b", true},
    {"a.*.b", "a..b", true},
    {"a.#.b", "a..b", true},
    /* limits: 16 words pass, 17 do not; 64 bytes pass, 65 do not */
    {"a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p", "a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p", true},
    {"#", "a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q", false},
    {"a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q", "a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q", false},
    {"#", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", true},
    {"#", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", false},
};

Test(topic_filter, routing_table)
{
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
        cr_expect_eq(topic_filter_binding_match(routes[i].binding, routes[i].routing),
                     routes[i].match, "binding '%s' routing '%s': expected %s", routes[i].binding,
                     routes[i].routing, routes[i].match ? "match" : "no match");
}

Test(topic_filter, any_binding_key_matches)
{
    const char *keys[] = {"x.*", "a.#"};
    cr_expect(topic_filter_bindings_match(keys, 2, "a.b"));
    cr_expect(topic_filter_bindings_match(keys, 2, "x.y"));
    cr_expect_not(topic_filter_bindings_match(keys, 2, "x.y.z"));
    cr_expect_not(topic_filter_bindings_match(keys, 0, "a.b"), "no binding key receives nothing");
}

Test(topic_filter, key_limits)
{
    cr_expect(topic_filter_key_ok("a.b", 3));
    cr_expect(topic_filter_key_ok("...............", 15));
    cr_expect_not(topic_filter_key_ok("................", 16));
    char k[66];
    memset(k, 'k', sizeof k);
    cr_expect(topic_filter_key_ok(k, 64));
    cr_expect_not(topic_filter_key_ok(k, 65));
}

struct tag_case {
    const char *sub[6];
    const char *msg[6];
    bool match;
};

static size_t count(const char *const *v)
{
    size_t n = 0;
    while (n < 6 && v[n])
        n++;
    return n;
}

static const struct tag_case tags[] = {
    /* rule 1: no filter tags -> everything, with or without message tags */
    {{NULL}, {NULL}, true},
    {{NULL}, {"a", "b"}, true},
    /* rule 2: intersection */
    {{"a"}, {"a"}, true},
    {{"a", "b"}, {"c", "b"}, true},
    {{"a", "b", "c", "d", "e"}, {"x", "y", "z", "w", "e"}, true},
    {{"a"}, {"b"}, false},
    {{"a", "b"}, {"c", "d"}, false},
    {{"A"}, {"a"}, false}, /* tags compare byte for byte */
    {{"ab"}, {"a"}, false},
    /* rule 3: filter tags and a message without tags -> nothing */
    {{"a"}, {NULL}, false},
    {{"a", "b", "c"}, {NULL}, false},
};

Test(topic_filter, tag_table)
{
    for (size_t i = 0; i < sizeof tags / sizeof tags[0]; i++)
        cr_expect_eq(topic_filter_tags_match(tags[i].sub, count(tags[i].sub), tags[i].msg,
                                             count(tags[i].msg)),
                     tags[i].match, "tag case %zu", i);
}
