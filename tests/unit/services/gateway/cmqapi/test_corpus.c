/* test_corpus.c: replays corpus/ through fuzz_one.h, then seeded mutations.
 *
 * File names carry the expectation:
 *   ok-*        parses and verifies (key FUZZ_KEY, hosts of fuzz_one.h);
 *   unsigned-*  parses but does not verify;
 *   bad-*       does not parse;
 *   any-*       only has to be survived (crashers the fuzzer found).
 * The mutation pass derives thousands of malformed requests from the ok-*
 * files with a fixed-seed generator (byte flips, inserted separators and
 * escapes, truncations, duplicated segments), so a failure is reproducible
 * from the printed seed.  ASan and UBSan (-Dsanitize=true) turn any memory
 * error into a failure.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_one.h"

struct file {
    char name[256];
    uint8_t *data;
    size_t len;
};

static size_t load_corpus(struct file *files, size_t max)
{
    DIR *d = opendir(GW_CORPUS_DIR);
    cr_assert_not_null(d, "cannot open %s", GW_CORPUS_DIR);
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        cr_assert_lt(n, max, "corpus too large for the test");
        char path[1024];
        snprintf(path, sizeof(path), "%s/%s", GW_CORPUS_DIR, e->d_name);
        FILE *fp = fopen(path, "rb");
        cr_assert_not_null(fp, "%s", path);
        fseek(fp, 0, SEEK_END);
        long size = ftell(fp);
        fseek(fp, 0, SEEK_SET);
        struct file *f = &files[n++];
        snprintf(f->name, sizeof(f->name), "%s", e->d_name);
        f->data = malloc((size_t)size + 1);
        f->len = fread(f->data, 1, (size_t)size, fp);
        fclose(fp);
    }
    closedir(d);
    return n;
}

static bool starts(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

#define CORPUS_MAX 256

Test(corpus, replay_with_expectations)
{
    struct file *files = calloc(CORPUS_MAX, sizeof(*files));
    size_t n = load_corpus(files, CORPUS_MAX);
    cr_assert_gt(n, 20, "the corpus is missing");
    size_t ok = 0, bad = 0, uns = 0;
    for (size_t i = 0; i < n; i++) {
        struct fuzz_result r = fuzz_one(files[i].data, files[i].len);
        const char *name = files[i].name;
        if (starts(name, "ok-")) {
            cr_expect_eq(r.parse_status, CMQ_OK, "%s: parse %d", name, r.parse_status);
            cr_expect_eq(r.verify_status, CMQ_OK, "%s: verify %d", name, r.verify_status);
            ok++;
        } else if (starts(name, "unsigned-")) {
            cr_expect_eq(r.parse_status, CMQ_OK, "%s: parse %d", name, r.parse_status);
            cr_expect_neq(r.verify_status, CMQ_OK, "%s verified", name);
            uns++;
        } else if (starts(name, "bad-")) {
            cr_expect_neq(r.parse_status, CMQ_OK, "%s parsed", name);
            bad++;
        } else {
            cr_expect(starts(name, "any-"), "%s: unknown prefix", name);
        }
        free(files[i].data);
    }
    cr_assert_gt(ok, 2);
    cr_assert_gt(bad, 5);
    cr_assert_gt(uns, 5);
    free(files);
}

static uint64_t next(uint64_t *s)
{
    /* xorshift64*: deterministic, seedable, good enough for mutations. */
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545F4914F6CDD1DULL;
}

/* Writes one mutation of `in` into `out` (room for 2 * len + 16) and returns
 * its length. */
static size_t mutate(const uint8_t *in, size_t len, uint8_t *out, uint64_t *seed)
{
    static const char *const inserts[] = {"&", "=", "%", "%2", "%00", "%FF", "%C3", "+", "&&",
                                          "=&=", ".", "_", "msgBody.99=x&", "\n", "@"};
    memcpy(out, in, len);
    size_t n = len;
    int rounds = 1 + (int)(next(seed) % 4);
    for (int k = 0; k < rounds; k++) {
        uint64_t r = next(seed);
        size_t pos = n ? (size_t)(next(seed) % n) : 0;
        switch (r % 6) {
        case 0: /* flip a byte */
            if (n)
                out[pos] ^= (uint8_t)(1u << (next(seed) % 8));
            break;
        case 1: /* random byte */
            if (n)
                out[pos] = (uint8_t)next(seed);
            break;
        case 2: { /* insert a separator or an escape */
            const char *ins = inserts[next(seed) % (sizeof(inserts) / sizeof(*inserts))];
            size_t il = strlen(ins);
            if (n + il > 2 * len + 16)
                break;
            memmove(out + pos + il, out + pos, n - pos);
            memcpy(out + pos, ins, il);
            n += il;
            break;
        }
        case 3: /* truncate */
            n = pos;
            break;
        case 4: { /* duplicate a prefix segment at the end */
            size_t cut = pos < len / 4 ? pos : len / 4;
            if (n + cut + 1 > 2 * len + 16)
                break;
            out[n++] = '&';
            memcpy(out + n, in, cut);
            n += cut;
            break;
        }
        default: /* delete a span */
            if (n) {
                size_t span = (size_t)(next(seed) % 8);
                if (pos + span > n)
                    span = n - pos;
                memmove(out + pos, out + pos + span, n - pos - span);
                n -= span;
            }
            break;
        }
    }
    return n;
}

Test(corpus, seeded_mutations_of_valid_requests)
{
    struct file *files = calloc(CORPUS_MAX, sizeof(*files));
    size_t n = load_corpus(files, CORPUS_MAX);
    size_t runs = 0, parsed = 0;
    for (size_t i = 0; i < n; i++) {
        if (!starts(files[i].name, "ok-") && !starts(files[i].name, "unsigned-"))
            continue;
        uint8_t *buf = malloc(2 * files[i].len + 16);
        for (uint64_t m = 0; m < 1500; m++) {
            uint64_t seed = (m + 1) * 0x9E3779B97F4A7C15ULL ^ i;
            uint64_t s = seed;
            size_t len = mutate(files[i].data, files[i].len, buf, &s);
            struct fuzz_result r = fuzz_one(buf, len);
            runs++;
            parsed += r.parse_status == CMQ_OK;
        }
        free(buf);
    }
    for (size_t i = 0; i < n; i++)
        free(files[i].data);
    free(files);
    cr_assert_gt(runs, 5000);
    /* Both outcomes must be exercised for the pass to mean anything. */
    cr_assert_gt(parsed, runs / 10);
    cr_assert_lt(parsed, runs);
}
