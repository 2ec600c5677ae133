/* cmqctl_tcp.h: the cmqctl commands that speak the CMQ TCP protocol
 * through libcmq (send, receive, delete, publish, bench). */
#ifndef CMQCTL_TCP_H
#define CMQCTL_TCP_H

#include <stdio.h>

/* Returns 1 and sets *rc when argv[0] is one of these commands. */
int cmqctl_tcp_dispatch(int argc, char **argv, int *rc);
void cmqctl_tcp_usage(FILE *f);

#endif
