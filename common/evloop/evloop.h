/* evloop.h: a small epoll event loop for the services that do not embed h2o.
 *
 * It owns: an epoll set of fd watchers, a min-heap of timers, a signalfd for
 * SIGTERM/SIGINT/SIGHUP, and "prepare" hooks that run before every wait (the
 * ZeroMQ layer uses one to re-check sockets whose edge-triggered ZMQ_FD may
 * have been consumed by a send).  Single-threaded: every function must be
 * called from the loop's thread.  The gateway runs h2o's own loop instead and
 * drives the rpc layer through the same fd + process + timeout contract.
 */
#ifndef CMQ_EVLOOP_H
#define CMQ_EVLOOP_H

#include <stdint.h>

struct evloop;

enum { EVLOOP_READ = 1, EVLOOP_WRITE = 2 };

typedef void (*evloop_fd_fn)(struct evloop *loop, int fd, int events, void *arg);
typedef void (*evloop_timer_fn)(struct evloop *loop, void *arg);
typedef void (*evloop_signal_fn)(struct evloop *loop, int signo, void *arg);
typedef void (*evloop_prepare_fn)(struct evloop *loop, void *arg);

/* Creates a loop; returns CMQ_OK or a status. */
int evloop_new(struct evloop **out);
/* Frees the loop (NULL allowed).  Watchers and timers still registered are dropped. */
void evloop_free(struct evloop *loop);

/* Watches `fd` (borrowed: the caller closes it after evloop_del_fd) for
 * `events`; `fn` runs with the ready events.  One watcher per fd. */
int evloop_add_fd(struct evloop *loop, int fd, int events, evloop_fd_fn fn, void *arg);
int evloop_mod_fd(struct evloop *loop, int fd, int events);
void evloop_del_fd(struct evloop *loop, int fd);

/* One-shot timer `after_ms` from now; returns an id > 0 for evloop_cancel, or 0
 * when out of memory. */
uint64_t evloop_timer(struct evloop *loop, uint64_t after_ms, evloop_timer_fn fn, void *arg);
/* Cancels a pending timer (unknown or fired ids are ignored). */
void evloop_cancel(struct evloop *loop, uint64_t id);

/* Blocks SIGTERM, SIGINT and SIGHUP in the calling thread and delivers them to
 * `fn` on the loop.  Call before starting other threads so they inherit the mask. */
int evloop_on_signals(struct evloop *loop, evloop_signal_fn fn, void *arg);

/* Adds a hook that runs before every wait (at most 8). */
int evloop_add_prepare(struct evloop *loop, evloop_prepare_fn fn, void *arg);

/* Runs until evloop_stop; returns CMQ_OK, or a status when epoll fails. */
int evloop_run(struct evloop *loop);
/* Makes evloop_run return after the current iteration. */
void evloop_stop(struct evloop *loop);

/* Milliseconds of the loop's monotonic clock, refreshed once per iteration. */
uint64_t evloop_now_ms(const struct evloop *loop);

#endif
