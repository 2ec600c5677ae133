/* meta_fixture.h: a fresh metadata store in a temp dir, a fake clock, and
 * the events it published, for the Criterion tests of services/metadata. */
#ifndef CMQ_TEST_META_FIXTURE_H
#define CMQ_TEST_META_FIXTURE_H

#include "cmq_error.h"
#include "meta_store.h"
#include "status.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pb_decode.h>
#include <sys/stat.h>
#include <unistd.h>

#define FIX_EVENTS_MAX 4096

struct fixture {
    char dir[256];
    char path[300];
    uint8_t key[32];
    uint64_t now_ms;
    struct meta_store_opts opts;
    struct meta_store *s;
    cmq_MetaEvent events[FIX_EVENTS_MAX];
    int n_events;
    uint64_t appid;
};

extern struct fixture fx;

void fx_setup(void);     /* temp dir, key, clock at 2026-11-27, store open, one account */
void fx_teardown(void);  /* close and remove the dir */
void fx_reopen(void);    /* close and open again with fx.opts */
int fx_count_events(const char *kind);

/* Domain helpers: each asserts success unless it returns the status. */
int qcreate(const char *name, cmq_QueueInfo *out, struct meta_err *e);
cmq_QueueRequest qreq(const char *name);
cmq_NameRequest nreq(const char *name);
int tcreate(const char *name, int filter_type, cmq_TopicInfo *out, struct meta_err *e);
cmq_SubRequest sreq(const char *topic, const char *name, const char *protocol,
                    const char *endpoint);

#define assert_status(got, want, e)                                                         \
    cr_assert_eq((got), (want), "status %s, want %s (reason: %s)", status_name(got),        \
                 status_name(want), (e).reason)
#define assert_cmq(e, code, module)                                                         \
    do {                                                                                    \
        enum cmq_err r_ = cmq_error_from_meta((e).status, (int)(e).row);                    \
        cr_assert_eq(cmq_error_code(r_), (code), "code %d (%s), want %d (%s)",              \
                     cmq_error_code(r_), cmq_error_id(r_), (code), (e).reason);             \
        cr_assert_eq(cmq_error_module(r_), (module), "module %d (%s), want %d (%s)",        \
                     cmq_error_module(r_), cmq_error_id(r_), (module), (e).reason);         \
    } while (0)

#endif
