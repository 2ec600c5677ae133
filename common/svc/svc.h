/* svc.h: the frame every service's main.c shares.
 *
 * A service is a static library plus a thin main.c.  main.c calls
 * svc_main_args() (--config, --help, --dump-config), loads its config table
 * (which embeds SVC_COMMON_KEYS), then svc_open(), registers its handler and
 * its clients, and svc_run().
 *
 * svc owns: the ZeroMQ context, the evloop, the ROUTER server on rpc.listen,
 * signal handling, and the MSG_HEALTH answer.  Every other request type goes
 * to the service's handler.  On SIGTERM/SIGINT it stops taking requests (new
 * ones are answered CMQ_ESHUTDOWN), runs the service's stop hook, waits until
 * every held call is answered and every registered "busy" check says idle, or
 * `stop_grace_ms` passes, then returns from svc_run with 0.
 */
#ifndef CMQ_SVC_H
#define CMQ_SVC_H

#include "config.h"
#include "evloop.h"
#include "rpc.h"

#include <stddef.h>

/* Keys every service has; embed `struct svc_common_cfg common;` in the
 * service's config struct and put SVC_COMMON_KEYS(your_struct) in its table. */
struct svc_common_cfg {
    char node_id[64];
    char listen[RPC_ENDPOINT_MAX];
    char log_level[16];
    int64_t stop_grace_ms;
};

#define SVC_COMMON_KEYS(st, default_id, default_listen)                                   \
    CONFIG_STR_KEY("node.id", st, common.node_id, default_id,                             \
                   "name of this process in logs and health replies"),                    \
    CONFIG_STR_KEY("rpc.listen", st, common.listen, default_listen,                       \
                   "ZeroMQ endpoint the service binds for requests"),                     \
    CONFIG_STR_KEY("log.level", st, common.log_level, "info",                             \
                   "minimum log level: debug, info, warn, error"),                        \
    CONFIG_INT_KEY("node.stop_grace_ms", st, common.stop_grace_ms, "5000", 0, 600000,     \
                   "on SIGTERM, how long to wait for in-flight work before exiting")

/* Parses argv: --config FILE (or -c), --help, --dump-config, --check-config.
 * Loads the config table into `cfg`.  Returns -1 to continue, or an exit code
 * main() should return right away (help printed, config dumped or bad). */
int svc_main_args(int argc, char **argv, const char *service, const struct config_key *keys,
                  size_t n_keys, void *cfg, const struct svc_common_cfg *common);

struct svc;

/* Creates the context, loop and server; logs event=start.  On failure logs
 * why and returns a status. */
int svc_open(const char *service, const struct svc_common_cfg *common, struct svc **out);
/* Terminates the ZeroMQ context: every socket the service opened in it
 * (svc_zctx) must be closed before, or this waits for them forever. */
void svc_close(struct svc *s);

void *svc_zctx(struct svc *s);
struct evloop *svc_loop(struct svc *s);
struct rpc_server *svc_server(struct svc *s);
const char *svc_node_id(const struct svc *s);
int svc_stopping(const struct svc *s);

/* Handler for every request type but MSG_HEALTH. */
void svc_set_handler(struct svc *s, rpc_handler_fn fn, void *arg);
/* Writes service-specific stats ("key=value ...") for health replies. */
typedef void (*svc_detail_fn)(void *arg, char *buf, size_t len);
void svc_set_detail(struct svc *s, svc_detail_fn fn, void *arg);
/* Runs once when a stop signal arrives. */
typedef void (*svc_hook_fn)(void *arg);
void svc_set_stop_hook(struct svc *s, svc_hook_fn fn, void *arg);
/* While stopping, svc_run waits until this returns 0 (or the grace period ends). */
typedef int (*svc_busy_fn)(void *arg);
void svc_set_busy_check(struct svc *s, svc_busy_fn fn, void *arg);

/* Drives `c` (borrowed; keep it open until svc_close) from the loop. */
int svc_watch_client(struct svc *s, struct rpc_client *c);
/* Drives an extra server (e.g. a second ROUTER for raft traffic). */
int svc_watch_server(struct svc *s, struct rpc_server *srv);

/* Runs the loop until stopped; returns 0 for a clean stop. */
int svc_run(struct svc *s);

#endif
