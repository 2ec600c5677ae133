/* Tests for common/evloop: timers fire in due order, cancel works, fds wake. */
#include "evloop.h"
#include "status.h"

#include <criterion/criterion.h>
#include <string.h>
#include <unistd.h>

struct rec {
    char order[16];
    int n;
};

static void mark_a(struct evloop *l, void *arg) { (void)l; struct rec *r = arg; r->order[r->n++] = 'a'; }
static void mark_b(struct evloop *l, void *arg) { (void)l; struct rec *r = arg; r->order[r->n++] = 'b'; }
static void mark_c(struct evloop *l, void *arg) { (void)l; struct rec *r = arg; r->order[r->n++] = 'c'; }
static void stop_it(struct evloop *l, void *arg) { (void)arg; evloop_stop(l); }

Test(evloop, timers_fire_in_due_order_and_cancel)
{
    struct evloop *l;
    cr_assert_eq(evloop_new(&l), CMQ_OK);
    struct rec r = {{0}, 0};
    evloop_timer(l, 30, mark_c, &r);
    evloop_timer(l, 10, mark_a, &r);
    uint64_t b = evloop_timer(l, 20, mark_b, &r);
    evloop_timer(l, 20, mark_b, &r);
    evloop_cancel(l, b);
    evloop_timer(l, 60, stop_it, NULL);
    cr_assert_eq(evloop_run(l), CMQ_OK);
    cr_assert_str_eq(r.order, "abc");
    evloop_free(l);
}

static void on_read(struct evloop *l, int fd, int events, void *arg)
{
    char c;
    cr_assert(events & EVLOOP_READ);
    cr_assert_eq(read(fd, &c, 1), 1);
    *(char *)arg = c;
    evloop_stop(l);
}

Test(evloop, fd_readiness)
{
    struct evloop *l;
    cr_assert_eq(evloop_new(&l), CMQ_OK);
    int p[2];
    cr_assert_eq(pipe(p), 0);
    char got = 0;
    cr_assert_eq(evloop_add_fd(l, p[0], EVLOOP_READ, on_read, &got), CMQ_OK);
    cr_assert_eq(evloop_add_fd(l, p[0], EVLOOP_READ, on_read, &got), CMQ_EEXIST);
    cr_assert_eq(write(p[1], "z", 1), 1);
    cr_assert_eq(evloop_run(l), CMQ_OK);
    cr_assert_eq(got, 'z');
    evloop_del_fd(l, p[0]);
    close(p[0]);
    close(p[1]);
    evloop_free(l);
}
