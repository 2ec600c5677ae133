/* test_frame_corpus.c: replays corpus/ through fuzz_frame.h, then seeded
 * mutations of the valid streams.
 *
 * File names carry the expectation:
 *   ok-*   every frame decodes, the stream ends on a frame boundary;
 *   bad-*  the stream stops with a framing error, or a frame does not decode;
 *   any-*  only has to be survived.
 * The mutation pass (fixed seed, printed on failure) flips bytes, truncates,
 * splices and duplicates; ASan/UBSan (-Dsanitize=true) turn memory errors
 * into failures. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_frame.h"

struct file {
    char name[256];
    uint8_t *data;
    size_t len;
};

#define CORPUS_MAX 128

static size_t load_corpus(struct file *files)
{
    DIR *d = opendir(TCP_CORPUS_DIR);
    cr_assert_not_null(d, "cannot open %s", TCP_CORPUS_DIR);
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        cr_assert_lt(n, CORPUS_MAX);
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", TCP_CORPUS_DIR, e->d_name);
        FILE *fp = fopen(path, "rb");
        cr_assert_not_null(fp, "%s", path);
        fseek(fp, 0, SEEK_END);
        long size = ftell(fp);
        fseek(fp, 0, SEEK_SET);
        struct file *f = &files[n++];
        snprintf(f->name, sizeof f->name, "%s", e->d_name);
        f->data = malloc((size_t)size + 1);
        f->len = fread(f->data, 1, (size_t)size, fp);
        fclose(fp);
    }
    closedir(d);
    return n;
}

static uint64_t rng_state;
static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

Test(frame_corpus, replay_and_mutate)
{
    struct file *files = calloc(CORPUS_MAX, sizeof *files);
    size_t n = load_corpus(files);
    cr_assert_geq(n, 10, "the corpus is missing");
    for (size_t i = 0; i < n; i++) {
        struct frame_fuzz_result r = fuzz_frame_one(files[i].data, files[i].len);
        if (strncmp(files[i].name, "ok-", 3) == 0) {
            cr_expect_eq(r.stream_err, 0, "%s: stream error %d", files[i].name, r.stream_err);
            cr_expect_gt(r.frames, 0, "%s", files[i].name);
            cr_expect_eq(r.decoded, r.frames, "%s: %d of %d decoded", files[i].name, r.decoded,
                         r.frames);
        } else if (strncmp(files[i].name, "bad-", 4) == 0) {
            cr_expect(r.stream_err != 0 || r.decoded < r.frames, "%s accepted", files[i].name);
        }
    }
    uint8_t *buf = malloc(1 << 16);
    for (uint64_t seed = 1; seed <= 20000; seed++) {
        rng_state = seed * 0x9E3779B97F4A7C15ull;
        const struct file *a = &files[rnd() % n], *b = &files[rnd() % n];
        size_t len = a->len < 4096 ? a->len : 4096;
        memcpy(buf, a->data, len);
        int ops = 1 + (int)(rnd() % 4);
        for (int k = 0; k < ops && len > 0; k++) {
            switch (rnd() % 5) {
            case 0: buf[rnd() % len] ^= (uint8_t)(1u << (rnd() % 8)); break;
            case 1: buf[rnd() % len] = (uint8_t)rnd(); break;
            case 2: len = rnd() % len; break;
            case 3: { /* splice b's bytes in */
                size_t at = rnd() % len, m = b->len < 2048 ? b->len : 2048;
                memcpy(buf + at, b->data, m);
                if (at + m > len)
                    len = at + m;
                break;
            }
            default: /* fix the length to what is buffered, so the payload gets decoded */
                if (len >= 6) {
                    uint32_t t = (uint32_t)len;
                    buf[0] = buf[1] = 0;
                    memcpy(buf + 2, &t, 4);
                }
            }
        }
        (void)fuzz_frame_one(buf, len);
    }
    free(buf);
    for (size_t i = 0; i < n; i++)
        free(files[i].data);
    free(files);
}
