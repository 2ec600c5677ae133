/* cmqctl_trace.h: `cmqctl trace`, the message trace from storage. */
#ifndef CMQCTL_TRACE_H
#define CMQCTL_TRACE_H

#include <stdio.h>

void cmqctl_trace_usage(FILE *f);
/* argv[0] is "trace"; returns the exit code. */
int cmqctl_trace_main(int argc, char **argv);

#endif
