/* writer.c: the segment log's writer thread; see seglog_writer.h.
 *
 * State shared between the two threads, all under `mu`:
 *   queue  - submitted, not yet taken by the thread (FIFO);
 *   done   - finished by the thread, callbacks not yet run (FIFO);
 *   pending- submitted and not yet polled (bounded by max_pending);
 *   stop   - set once by seglog_writer_stop.
 * The thread holds a batch privately between taking it from `queue` and
 * appending it to `done`; the caller does not touch a request in between.
 */
#include "seglog_writer.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "status.h"

struct fifo {
    struct seglog_write_req *head, *tail;
};

/* Entries of consecutive plain requests are appended with one call (one
 * pwritev per 256 entries instead of two system calls per request). */
#define GATHER_MAX 4096

struct seglog_writer {
    struct seglog *log;
    struct seglog_entry *gather; /* GATHER_MAX entries, writer thread only */
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct fifo queue, done;
    unsigned pending, max_pending;
    int stop;
    int efd;
    struct seglog_writer_stats st;
};

static void fifo_push(struct fifo *f, struct seglog_write_req *r)
{
    r->next_ = NULL;
    if (f->tail)
        f->tail->next_ = r;
    else
        f->head = r;
    f->tail = r;
}

static void fifo_splice(struct fifo *dst, struct fifo *src)
{
    if (!src->head)
        return;
    if (dst->tail)
        dst->tail->next_ = src->head;
    else
        dst->head = src->head;
    dst->tail = src->tail;
    src->head = src->tail = NULL;
}

static int plain(const struct seglog_write_req *r)
{
    return !r->reset_next && !r->truncate_from && !r->job && r->n > 0 && r->n <= GATHER_MAX;
}

/* Appends the entries of requests [first, end) (all plain, `total` entries)
 * with one seglog_append.  seglog_append checks every entry before writing
 * any, so on CMQ_EINVAL / CMQ_ETOOBIG nothing was written and the requests
 * are retried one by one to give each its own status. */
static void append_run(struct seglog_writer *w, struct seglog_write_req *first,
                       struct seglog_write_req *end, size_t total)
{
    size_t k = 0;
    for (struct seglog_write_req *r = first; r != end; r = r->next_) {
        memcpy(w->gather + k, r->entries, r->n * sizeof *r->entries);
        k += r->n;
    }
    assert(k == total);
    int st = seglog_append(w->log, w->gather, total);
    for (struct seglog_write_req *r = first; r != end; r = r->next_) {
        if (st == CMQ_EINVAL || st == CMQ_ETOOBIG)
            r->status_ = seglog_append(w->log, r->entries, r->n);
        else
            r->status_ = st;
    }
}

static void run_batch(struct seglog_writer *w, struct seglog_write_req *batch)
{
    const struct seglog_hardstate *hs = NULL;
    struct seglog_hardstate hs_copy;
    struct seglog_write_req *r = batch;
    while (r) {
        if (plain(r)) {
            struct seglog_write_req *first = r;
            size_t total = 0;
            while (r && plain(r) && total + r->n <= GATHER_MAX) {
                total += r->n;
                r = r->next_;
            }
            append_run(w, first, r, total);
            continue;
        }
        int st = CMQ_OK;
        if (r->reset_next)
            st = seglog_reset(w->log, r->reset_next);
        if (!st && r->truncate_from)
            st = seglog_truncate_suffix(w->log, r->truncate_from);
        if (!st && r->n)
            st = seglog_append(w->log, r->entries, r->n);
        r->status_ = st;
        r = r->next_;
    }
    for (r = batch; r; r = r->next_)
        if (r->hardstate)
            hs = r->hardstate;
    /* One fdatasync for the whole batch: this is the group commit. */
    int st = seglog_sync(w->log);
    if (!st && hs) {
        hs_copy = *hs;
        st = seglog_hardstate_save(w->log, &hs_copy);
        if (st) {
            for (r = batch; r; r = r->next_)
                if (r->hardstate && !r->status_)
                    r->status_ = st;
            st = CMQ_OK;
        }
    }
    if (st)
        for (r = batch; r; r = r->next_)
            if (!r->status_)
                r->status_ = st;
    /* Jobs last: what they write may rely on the batch being durable. */
    for (r = batch; r; r = r->next_)
        if (r->job && !r->status_)
            r->status_ = r->job(r, w->log);
}

static void *writer_main(void *arg)
{
    struct seglog_writer *w = arg;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->queue.head && !w->stop)
            pthread_cond_wait(&w->cv, &w->mu);
        if (!w->queue.head)
            break; /* stopping and drained */
        struct fifo batch = w->queue;
        w->queue.head = w->queue.tail = NULL;
        pthread_mutex_unlock(&w->mu);

        run_batch(w, batch.head);

        pthread_mutex_lock(&w->mu);
        fifo_splice(&w->done, &batch);
        w->st.batches++;
        uint64_t one = 1;
        /* The counter cannot overflow in practice; a failed write only
         * delays the wake-up until the next batch. */
        ssize_t wr = write(w->efd, &one, sizeof one);
        (void)wr;
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

int seglog_writer_start(struct seglog *log, unsigned max_pending, struct seglog_writer **out)
{
    *out = NULL;
    if (max_pending == 0)
        return CMQ_EINVAL;
    struct seglog_writer *w = calloc(1, sizeof *w);
    if (!w)
        return CMQ_ENOMEM;
    w->log = log;
    w->max_pending = max_pending;
    w->gather = malloc(GATHER_MAX * sizeof *w->gather);
    if (!w->gather) {
        free(w);
        return CMQ_ENOMEM;
    }
    w->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (w->efd < 0) {
        int st = status_from_errno(errno);
        free(w->gather);
        free(w);
        return st;
    }
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    int e = pthread_create(&w->thread, NULL, writer_main, w);
    if (e) {
        close(w->efd);
        pthread_mutex_destroy(&w->mu);
        pthread_cond_destroy(&w->cv);
        free(w->gather);
        free(w);
        return status_from_errno(e);
    }
    *out = w;
    return CMQ_OK;
}

int seglog_writer_fd(const struct seglog_writer *w)
{
    return w->efd;
}

int seglog_writer_submit(struct seglog_writer *w, struct seglog_write_req *req)
{
    if (!req->done || (req->n && !req->entries))
        return CMQ_EINVAL;
    pthread_mutex_lock(&w->mu);
    int st = CMQ_OK;
    if (w->stop)
        st = CMQ_ESHUTDOWN;
    else if (w->pending >= w->max_pending)
        st = CMQ_ELIMIT;
    if (!st) {
        req->status_ = CMQ_OK;
        fifo_push(&w->queue, req);
        w->pending++;
        w->st.submitted++;
        pthread_cond_signal(&w->cv);
    }
    pthread_mutex_unlock(&w->mu);
    return st;
}

size_t seglog_writer_poll(struct seglog_writer *w)
{
    uint64_t v;
    ssize_t r = read(w->efd, &v, sizeof v); /* EAGAIN when nothing: fine */
    (void)r;
    pthread_mutex_lock(&w->mu);
    struct seglog_write_req *head = w->done.head;
    w->done.head = w->done.tail = NULL;
    size_t n = 0;
    for (struct seglog_write_req *q = head; q; q = q->next_)
        n++;
    /* Released before the callbacks run, so they may submit again. */
    w->pending -= (unsigned)n;
    w->st.completed += n;
    pthread_mutex_unlock(&w->mu);
    while (head) {
        struct seglog_write_req *next = head->next_;
        head->next_ = NULL;
        head->done(head, head->status_); /* may free or resubmit head */
        head = next;
    }
    return n;
}

void seglog_writer_stats(struct seglog_writer *w, struct seglog_writer_stats *out)
{
    pthread_mutex_lock(&w->mu);
    *out = w->st;
    pthread_mutex_unlock(&w->mu);
}

void seglog_writer_stop(struct seglog_writer *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->mu);
    w->stop = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    seglog_writer_poll(w);
    close(w->efd);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    free(w->gather);
    free(w);
}
