/* log.c: the key=value line writer behind log.h. */
#include "log.h"

#include "clock.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

enum log_level log_min_level_ = CMQ_LOG_INFO;
static char service_name[64] = "cmq";

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void log_init(const char *service, enum log_level min_level)
{
    snprintf(service_name, sizeof service_name, "%s", service ? service : "cmq");
    log_min_level_ = min_level;
}

int log_level_parse(const char *name)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(name, level_names[i]) == 0)
            return i;
    return -1;
}

void log_emit(enum log_level level, const char *event, const char *fmt, ...)
{
    char line[2048];
    char ts[32];
    int n = snprintf(line, sizeof line, "ts=%s level=%s svc=%s event=%s",
                     clock_format_rfc3339(clock_wall_ms(), ts, sizeof ts),
                     level_names[level & 3], service_name, event);
    if (n < 0)
        return;
    if (fmt && fmt[0] && (size_t)n < sizeof line - 2) {
        line[n++] = ' ';
        va_list ap;
        va_start(ap, fmt);
        int m = vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
        va_end(ap);
        if (m > 0)
            n += m;
    }
    if ((size_t)n >= sizeof line - 1)
        n = sizeof line - 2; /* truncated: keep the newline */
    line[n++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, (size_t)n);
    (void)w;
}

int log_limit_allow(struct log_limit *l, uint64_t now_ms, uint64_t window_ms,
                    uint64_t *suppressed)
{
    if (l->window_start_ms == 0 || now_ms - l->window_start_ms >= window_ms) {
        *suppressed = l->suppressed;
        l->suppressed = 0;
        l->window_start_ms = now_ms;
        return 1;
    }
    l->suppressed++;
    return 0;
}
