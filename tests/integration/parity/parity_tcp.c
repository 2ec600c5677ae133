/* parity_tcp.c: the TCP half of the HTTP/TCP code-parity test
 * (test_parity.py).  One authenticated libcmq connection; reads one
 * operation per line on stdin and answers one line per operation on stdout,
 * so the Python table drives both protocols with the same rows:
 *   send QUEUE SIZE [DELAY]    a body of SIZE bytes ('x'), DELAY seconds late
 *   pull QUEUE WAIT            one message, waiting WAIT seconds
 *   delete QUEUE HANDLE        one receipt handle (decimal)
 *   publish TOPIC SIZE TAG     one message; TAG "-" for none
 * Answer: "CODE<TAB>HANDLE<TAB>ERROR" where CODE is the server's result (or
 * a negative CMQ_CLIENT_E* code), HANDLE the pulled message's receipt handle
 * (0 otherwise) and ERROR the server's error text.
 *   usage: parity_tcp HOST:PORT SECRET_ID SECRET_KEY */
#include "cmq.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BODY_MAX (4u << 20)

static void answer(int code, uint64_t handle, const char *error)
{
    printf("%d\t%" PRIu64 "\t", code, handle);
    for (const char *p = error; *p; p++)  /* one line per answer */
        putchar(*p == '\n' || *p == '\t' ? ' ' : *p);
    putchar('\n');
    fflush(stdout);
}

static size_t body_size(const char *s)
{
    unsigned long n = strtoul(s, NULL, 10);
    return n > BODY_MAX ? BODY_MAX : (size_t)n;
}

static void run(struct cmq_client *c, char *line, char *body)
{
    char *save = NULL;
    const char *op = strtok_r(line, " \t\r\n", &save);
    const char *name = strtok_r(NULL, " \t\r\n", &save);
    const char *arg = strtok_r(NULL, " \t\r\n", &save);
    const char *tag = strtok_r(NULL, " \t\r\n", &save);
    struct cmq_result r;
    memset(&r, 0, sizeof r);
    if (!op || !name || !arg) {
        answer(CMQ_CLIENT_EINVAL, 0, "usage: OP NAME ARG [TAG]");
        return;
    }
    uint64_t handle = 0;
    if (strcmp(op, "send") == 0) {
        cmq_send(c, name, body, body_size(arg), tag ? atoi(tag) : -1, &r);
    } else if (strcmp(op, "pull") == 0) {
        cmq_pull(c, name, 0, atoi(arg), &r);
        if (r.code == 0 && r.n_msgs > 0)
            handle = r.msgs[0].receipt_handle;
    } else if (strcmp(op, "delete") == 0) {
        uint64_t h = strtoull(arg, NULL, 10);
        cmq_delete(c, name, &h, 1, &r);
    } else if (strcmp(op, "publish") == 0) {
        const char *tags[1] = {tag};
        int has_tag = tag && strcmp(tag, "-") != 0;
        cmq_publish(c, name, body, body_size(arg), has_tag ? tags : NULL, has_tag ? 1 : 0, NULL,
                    &r);
    } else {
        answer(CMQ_CLIENT_EINVAL, 0, "unknown operation");
        return;
    }
    answer(r.code, handle, r.error);
    cmq_result_free(&r);
}

int main(int argc, char **argv)
{
    if (argc != 4 || !strchr(argv[1], ':')) {
        fprintf(stderr, "usage: parity_tcp HOST:PORT SECRET_ID SECRET_KEY\n");
        return 2;
    }
    char host[64];
    snprintf(host, sizeof host, "%.*s", (int)(strchr(argv[1], ':') - argv[1]), argv[1]);
    struct cmq_client_opts o = {.host = host,
                                .port = (unsigned)atoi(strchr(argv[1], ':') + 1),
                                .secret_id = argv[2],
                                .secret_key = argv[3],
                                .client_id = "10.0.0.1@parity_tcp",
                                .timeout_ms = 10000};
    struct cmq_client *c = NULL;
    char err[256];
    int code = cmq_connect(&o, &c, err, sizeof err);
    if (code != 0) {
        fprintf(stderr, "parity_tcp: connect: %d %s\n", code, err);
        return 1;
    }
    char *body = malloc(BODY_MAX);
    if (!body)
        return 1;
    memset(body, 'x', BODY_MAX);
    char line[1024];
    while (fgets(line, sizeof line, stdin))
        run(c, line, body);
    free(body);
    cmq_close(c);
    return 0;
}
