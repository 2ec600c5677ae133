/* log.h: one line per event, key=value, to stderr.
 *
 *   ts=2026-11-27T18:00:00.123Z level=info svc=storage-1 event=start listen=tcp://...
 *
 * The level is checked before anything is formatted.  A line is written with
 * one write(2), so lines from several threads never interleave.  Libraries
 * return statuses and rarely log; services log at their edges.  Values that
 * may contain spaces should be quoted by the caller ("name=\"%s\"").
 */
#ifndef CMQ_BASE_LOG_H
#define CMQ_BASE_LOG_H

#include <stdint.h>

enum log_level { CMQ_LOG_DEBUG = 0, CMQ_LOG_INFO = 1, CMQ_LOG_WARN = 2, CMQ_LOG_ERROR = 3 };

/* Sets the service name printed as svc= (copied) and the minimum level. */
void log_init(const char *service, enum log_level min_level);

/* Parses "debug", "info", "warn" or "error"; returns -1 for anything else. */
int log_level_parse(const char *name);

extern enum log_level log_min_level_;

/* Formats and writes one line; use the macros below instead. */
void log_emit(enum log_level level, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log_at(level, event, ...)                                   \
    do {                                                            \
        if ((level) >= log_min_level_)                              \
            log_emit((level), (event), __VA_ARGS__);                \
    } while (0)
#define log_debug(event, ...) log_at(CMQ_LOG_DEBUG, event, __VA_ARGS__)
#define log_info(event, ...) log_at(CMQ_LOG_INFO, event, __VA_ARGS__)
#define log_warn(event, ...) log_at(CMQ_LOG_WARN, event, __VA_ARGS__)
#define log_error(event, ...) log_at(CMQ_LOG_ERROR, event, __VA_ARGS__)

/* Summarises a repeated error: the first occurrence in each window of
 * `window_ms` is logged with the count suppressed since the last one.
 * Embed one per call site (zero-initialised). */
struct log_limit {
    uint64_t window_start_ms;
    uint64_t suppressed;
};
/* Returns nonzero when the caller should log now; *suppressed receives the
 * number of occurrences dropped since the previous logged one. */
int log_limit_allow(struct log_limit *l, uint64_t now_ms, uint64_t window_ms,
                    uint64_t *suppressed);

#endif
