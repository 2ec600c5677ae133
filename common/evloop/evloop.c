/* evloop.c: epoll + timer heap + signalfd; see evloop.h.
 *
 * Timers live in a binary min-heap keyed by (due time, id), so timers with
 * the same due time fire in creation order.  Cancelling marks the entry dead
 * by removing it from the heap by position (heap_pos lookup is linear; timers
 * per loop are few: retries, health checks, long-poll deadlines live in their
 * owners' own wheels).
 */
#include "evloop.h"

#include "clock.h"
#include "status.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <unistd.h>

struct watcher {
    int fd;
    evloop_fd_fn fn;
    void *arg;
};

struct timer {
    uint64_t due_ms;
    uint64_t id;
    evloop_timer_fn fn;
    void *arg;
};

struct evloop {
    int epfd;
    int stop;
    uint64_t now_ms;
    uint64_t next_timer_id;
    struct watcher **watchers; /* indexed by fd */
    int n_watchers;
    struct timer *heap;
    size_t heap_len, heap_cap;
    int sigfd;
    evloop_signal_fn sig_fn;
    void *sig_arg;
    struct { evloop_prepare_fn fn; void *arg; } prepare[8];
    int n_prepare;
};

int evloop_new(struct evloop **out)
{
    struct evloop *l = calloc(1, sizeof *l);
    if (!l)
        return CMQ_ENOMEM;
    l->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (l->epfd < 0) {
        int st = status_from_errno(errno);
        free(l);
        return st;
    }
    l->sigfd = -1;
    l->now_ms = clock_mono_ms();
    *out = l;
    return CMQ_OK;
}

void evloop_free(struct evloop *l)
{
    if (!l)
        return;
    for (int i = 0; i < l->n_watchers; i++)
        free(l->watchers[i]);
    free(l->watchers);
    free(l->heap);
    if (l->sigfd >= 0)
        close(l->sigfd);
    if (l->epfd >= 0)
        close(l->epfd);
    free(l);
}

static uint32_t to_epoll(int events)
{
    return (events & EVLOOP_READ ? EPOLLIN : 0) | (events & EVLOOP_WRITE ? EPOLLOUT : 0);
}

int evloop_add_fd(struct evloop *l, int fd, int events, evloop_fd_fn fn, void *arg)
{
    if (fd < 0)
        return CMQ_EINVAL;
    if (fd >= l->n_watchers) {
        int n = fd + 16;
        struct watcher **w = realloc(l->watchers, (size_t)n * sizeof *w);
        if (!w)
            return CMQ_ENOMEM;
        memset(w + l->n_watchers, 0, (size_t)(n - l->n_watchers) * sizeof *w);
        l->watchers = w;
        l->n_watchers = n;
    }
    if (l->watchers[fd])
        return CMQ_EEXIST;
    struct watcher *w = malloc(sizeof *w);
    if (!w)
        return CMQ_ENOMEM;
    *w = (struct watcher){fd, fn, arg};
    struct epoll_event ev = {.events = to_epoll(events), .data.fd = fd};
    if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        int st = status_from_errno(errno);
        free(w);
        return st;
    }
    l->watchers[fd] = w;
    return CMQ_OK;
}

int evloop_mod_fd(struct evloop *l, int fd, int events)
{
    struct epoll_event ev = {.events = to_epoll(events), .data.fd = fd};
    if (epoll_ctl(l->epfd, EPOLL_CTL_MOD, fd, &ev) < 0)
        return status_from_errno(errno);
    return CMQ_OK;
}

void evloop_del_fd(struct evloop *l, int fd)
{
    if (fd < 0 || fd >= l->n_watchers || !l->watchers[fd])
        return;
    epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL);
    free(l->watchers[fd]);
    l->watchers[fd] = NULL;
}

static int timer_less(const struct timer *a, const struct timer *b)
{
    return a->due_ms < b->due_ms || (a->due_ms == b->due_ms && a->id < b->id);
}

static void heap_swap(struct evloop *l, size_t i, size_t j)
{
    struct timer t = l->heap[i];
    l->heap[i] = l->heap[j];
    l->heap[j] = t;
}

static void sift_up(struct evloop *l, size_t i)
{
    while (i > 0 && timer_less(&l->heap[i], &l->heap[(i - 1) / 2])) {
        heap_swap(l, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
}

static void sift_down(struct evloop *l, size_t i)
{
    for (;;) {
        size_t s = i, a = 2 * i + 1, b = 2 * i + 2;
        if (a < l->heap_len && timer_less(&l->heap[a], &l->heap[s]))
            s = a;
        if (b < l->heap_len && timer_less(&l->heap[b], &l->heap[s]))
            s = b;
        if (s == i)
            return;
        heap_swap(l, i, s);
        i = s;
    }
}

static void heap_remove(struct evloop *l, size_t i)
{
    l->heap[i] = l->heap[--l->heap_len];
    if (i < l->heap_len) {
        sift_down(l, i);
        sift_up(l, i);
    }
}

uint64_t evloop_timer(struct evloop *l, uint64_t after_ms, evloop_timer_fn fn, void *arg)
{
    if (l->heap_len == l->heap_cap) {
        size_t cap = l->heap_cap ? l->heap_cap * 2 : 16;
        struct timer *h = realloc(l->heap, cap * sizeof *h);
        if (!h)
            return 0;
        l->heap = h;
        l->heap_cap = cap;
    }
    uint64_t id = ++l->next_timer_id;
    l->heap[l->heap_len] = (struct timer){clock_mono_ms() + after_ms, id, fn, arg};
    sift_up(l, l->heap_len++);
    return id;
}

void evloop_cancel(struct evloop *l, uint64_t id)
{
    for (size_t i = 0; i < l->heap_len; i++) {
        if (l->heap[i].id == id) {
            heap_remove(l, i);
            return;
        }
    }
}

int evloop_on_signals(struct evloop *l, evloop_signal_fn fn, void *arg)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0)
        return CMQ_EINTERNAL;
    int fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (fd < 0)
        return status_from_errno(errno);
    l->sigfd = fd;
    l->sig_fn = fn;
    l->sig_arg = arg;
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
    if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
        return status_from_errno(errno);
    return CMQ_OK;
}

int evloop_add_prepare(struct evloop *l, evloop_prepare_fn fn, void *arg)
{
    if (l->n_prepare == 8)
        return CMQ_ELIMIT;
    l->prepare[l->n_prepare].fn = fn;
    l->prepare[l->n_prepare].arg = arg;
    l->n_prepare++;
    return CMQ_OK;
}

void evloop_stop(struct evloop *l) { l->stop = 1; }

uint64_t evloop_now_ms(const struct evloop *l) { return l->now_ms; }

static void run_timers(struct evloop *l)
{
    /* Only timers due at entry fire in this pass, so a timer that re-arms
     * itself with 0 ms cannot starve the fds. */
    uint64_t now = l->now_ms;
    size_t budget = l->heap_len;
    while (budget-- && l->heap_len && l->heap[0].due_ms <= now) {
        struct timer t = l->heap[0];
        heap_remove(l, 0);
        t.fn(l, t.arg);
    }
}

static void read_signals(struct evloop *l)
{
    struct signalfd_siginfo si;
    while (read(l->sigfd, &si, sizeof si) == (ssize_t)sizeof si)
        if (l->sig_fn)
            l->sig_fn(l, (int)si.ssi_signo, l->sig_arg);
}

int evloop_run(struct evloop *l)
{
    struct epoll_event evs[64];
    l->stop = 0;
    while (!l->stop) {
        for (int i = 0; i < l->n_prepare; i++)
            l->prepare[i].fn(l, l->prepare[i].arg);
        if (l->stop)
            break;
        l->now_ms = clock_mono_ms();
        int timeout = -1;
        if (l->heap_len) {
            uint64_t due = l->heap[0].due_ms;
            timeout = due <= l->now_ms ? 0 : (int)(due - l->now_ms > 60000 ? 60000 : due - l->now_ms);
        }
        int n = epoll_wait(l->epfd, evs, 64, timeout);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return status_from_errno(errno);
        }
        l->now_ms = clock_mono_ms();
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == l->sigfd) {
                read_signals(l);
                continue;
            }
            if (fd >= l->n_watchers || !l->watchers[fd])
                continue; /* removed by an earlier callback in this batch */
            int e = 0;
            if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
                e |= EVLOOP_READ;
            if (evs[i].events & EPOLLOUT)
                e |= EVLOOP_WRITE;
            struct watcher *w = l->watchers[fd];
            w->fn(l, fd, e, w->arg);
        }
        run_timers(l);
    }
    return CMQ_OK;
}
