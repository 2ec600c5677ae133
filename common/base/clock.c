/* clock.c: thin wrappers over clock_gettime. */
#include "clock.h"

#include <stdio.h>
#include <time.h>

static uint64_t read_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t clock_mono_ns(void) { return read_ns(CLOCK_MONOTONIC); }
uint64_t clock_mono_ms(void) { return read_ns(CLOCK_MONOTONIC) / 1000000u; }
uint64_t clock_wall_ms(void) { return read_ns(CLOCK_REALTIME) / 1000000u; }
uint64_t clock_wall_s(void) { return read_ns(CLOCK_REALTIME) / 1000000000u; }

char *clock_format_rfc3339(uint64_t wall_ms, char *buf, int buf_len)
{
    time_t s = (time_t)(wall_ms / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    snprintf(buf, (size_t)buf_len, "%04d-%02d-%02dT%02d:%02d:%02d.%03uZ",
             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
             tm.tm_sec, (unsigned)(wall_ms % 1000));
    return buf;
}
