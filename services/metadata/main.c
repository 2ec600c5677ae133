/* cmq-metadata: main.c only wires (config, master key, svc frame, service,
 * node-check timer, run).  The service is meta_service.c over meta_store.c;
 * docs/metadata.md describes requests, events, schema and the key scheme.
 */
#include "config.h"
#include "evloop.h"
#include "log.h"
#include "meta_secret.h"
#include "meta_service.h"
#include "status.h"
#include "svc.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

struct metadata_cfg {
    struct svc_common_cfg common;
    char db_path[256];
    char pub_listen[RPC_ENDPOINT_MAX];
    char master_key[80];
    char master_key_file[280];
    char previous_master_key_file[280];
    int64_t queues_per_account;
    int64_t topics_per_account;
    int64_t subs_per_topic;
    int64_t name_reuse_wait_ms;
    int delete_topic_with_subs;
    int64_t replicas;
    int64_t partitions_per_node;
    int64_t node_timeout_ms;
    int64_t check_interval_ms;
};

#define C struct metadata_cfg
static const struct config_key keys[] = {
    SVC_COMMON_KEYS(C, "metadata", "tcp://127.0.0.1:17100"),
    CONFIG_STR_KEY("db.path", C, db_path, "var/dev/metadata/metadata.db",
                   "SQLite database file (its directory is created if missing)"),
    CONFIG_STR_KEY("pub.listen", C, pub_listen, "tcp://127.0.0.1:17101",
                   "ZeroMQ PUB endpoint for change events (empty: none)"),
    CONFIG_STR_KEY("secrets.master_key", C, master_key, "",
                   "64 hex chars: AES-256-GCM key for SecretKeys at rest (prefer the file)"),
    CONFIG_STR_KEY("secrets.master_key_file", C, master_key_file, "",
                   "file holding the master key; empty: DB_PATH.key, created if missing"),
    CONFIG_STR_KEY("secrets.previous_master_key_file", C, previous_master_key_file, "",
                   "rotation: secrets sealed with this key are re-sealed with the master key"),
    CONFIG_INT_KEY("quota.queues_per_account", C, queues_per_account, "1000", 1, 1000000,
                   "queues per account (spec 4450/10220)"),
    CONFIG_INT_KEY("quota.topics_per_account", C, topics_per_account, "1000", 1, 1000000,
                   "topics per account (spec 4450/10610)"),
    CONFIG_INT_KEY("quota.subscriptions_per_topic", C, subs_per_topic, "100", 1, 100000,
                   "subscriptions per topic (spec 4500/10480)"),
    CONFIG_INT_KEY("namespace.name_reuse_wait_ms", C, name_reuse_wait_ms, "10000", -1, 86400000,
                   "wait before a deleted queue/topic name is reused (6040/10660); 0 or -1: none"),
    CONFIG_BOOL_KEY("namespace.delete_topic_with_subscriptions", C, delete_topic_with_subs,
                    "false", "DeleteTopic removes subscriptions instead of answering 10540"),
    CONFIG_INT_KEY("placement.replicas", C, replicas, "3", 1, 5,
                   "replicas per partition (distinct nodes)"),
    CONFIG_INT_KEY("placement.partitions_per_node", C, partitions_per_node, "2", 1, 64,
                   "partitions led per up storage node"),
    CONFIG_INT_KEY("placement.node_timeout_ms", C, node_timeout_ms, "10000", 100, 3600000,
                   "a node without heartbeat this long is shown down"),
    CONFIG_INT_KEY("placement.check_interval_ms", C, check_interval_ms, "1000", 50, 60000,
                   "how often node heartbeats are checked"),
};
#undef C

struct tick {
    struct meta_service *m;
    uint64_t interval_ms;
};

static void on_tick(struct evloop *loop, void *arg)
{
    struct tick *t = arg;
    meta_service_tick(t->m);
    evloop_timer(loop, t->interval_ms, on_tick, t);
}

static int mkdir_parents(const char *path)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash)
        return 0;
    *slash = '\0';
    for (char *p = dir + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(dir, 0700) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    return mkdir(dir, 0700) != 0 && errno != EEXIST ? -1 : 0;
}

int main(int argc, char **argv)
{
    struct metadata_cfg cfg;
    memset(&cfg, 0, sizeof cfg);
    int rc = svc_main_args(argc, argv, "metadata", keys, sizeof keys / sizeof keys[0], &cfg,
                           &cfg.common);
    if (rc >= 0)
        return rc;
    if (mkdir_parents(cfg.db_path) != 0) {
        log_error("config", "key=db.path path=%s error=\"cannot create directory: %s\"",
                  cfg.db_path, strerror(errno));
        return 1;
    }
    uint8_t master[META_MASTER_KEY_LEN];
    if (cfg.master_key[0]) {
        if (meta_master_key_parse(cfg.master_key, master) != CMQ_OK) {
            log_error("config", "key=secrets.master_key error=\"must be 64 hex characters\"");
            return 1;
        }
    } else {
        char path[sizeof cfg.master_key_file];
        if (cfg.master_key_file[0])
            snprintf(path, sizeof path, "%s", cfg.master_key_file);
        else
            snprintf(path, sizeof path, "%.270s.key", cfg.db_path);
        int created = 0, st = meta_master_key_load(path, 1, master, &created);
        if (st != CMQ_OK) {
            log_error("config", "key=secrets.master_key_file path=%s error=\"%s\"", path,
                      st == CMQ_EINVAL ? "must hold 64 hex characters" : status_name(st));
            return 1;
        }
        if (created)
            log_warn("master_key_created", "path=%s", path);
    }
    memset(cfg.master_key, 0, sizeof cfg.master_key);
    uint8_t previous[META_MASTER_KEY_LEN];
    int have_previous = 0;
    if (cfg.previous_master_key_file[0]) {
        int created, st = meta_master_key_load(cfg.previous_master_key_file, 0, previous, &created);
        if (st != CMQ_OK) {
            log_error("config", "key=secrets.previous_master_key_file path=%s error=\"%s\"",
                      cfg.previous_master_key_file,
                      st == CMQ_EINVAL ? "must hold 64 hex characters" : status_name(st));
            OPENSSL_cleanse(master, sizeof master);
            return 1;
        }
        have_previous = 1;
    }

    struct svc *s;
    if (svc_open("metadata", &cfg.common, &s) != CMQ_OK) {
        OPENSSL_cleanse(master, sizeof master);
        OPENSSL_cleanse(previous, sizeof previous);
        return 1;
    }
    struct meta_store_opts o = {
        .path = cfg.db_path,
        .master_key = master,
        .previous_master_key = have_previous ? previous : NULL,
        .queues_per_account = cfg.queues_per_account,
        .topics_per_account = cfg.topics_per_account,
        .subs_per_topic = cfg.subs_per_topic,
        /* the store reads 0 as "default"; in the config 0 means no wait */
        .name_reuse_wait_ms = cfg.name_reuse_wait_ms == 0 ? -1 : cfg.name_reuse_wait_ms,
        .delete_topic_with_subs = cfg.delete_topic_with_subs,
        .node_timeout_ms = cfg.node_timeout_ms,
        .replicas = (int)cfg.replicas,
        .partitions_per_node = (int)cfg.partitions_per_node,
    };
    struct meta_service *m;
    struct meta_err err = {0};
    int st = meta_service_open(svc_zctx(s), &o, cfg.pub_listen, &m, &err);
    OPENSSL_cleanse(master, sizeof master);
    OPENSSL_cleanse(previous, sizeof previous);
    if (st != CMQ_OK) {
        log_error("open", "db=%s status=%s reason=\"%s\"", cfg.db_path, status_name(st),
                  err.reason);
        svc_close(s);
        return 1;
    }
    log_info("metadata_open", "db=%s pub=%s schema=%d version=%llu", cfg.db_path,
             cfg.pub_listen, meta_store_schema_version(meta_service_store(m)),
             (unsigned long long)meta_store_version(meta_service_store(m)));
    svc_set_handler(s, meta_service_handle, m);
    svc_set_detail(s, meta_service_detail, m);
    struct tick t = {m, (uint64_t)cfg.check_interval_ms};
    evloop_timer(svc_loop(s), t.interval_ms, on_tick, &t);
    rc = svc_run(s);
    /* The PUB socket lives in svc's ZeroMQ context: close it first, or
     * zmq_ctx_term in svc_close waits for it forever. */
    meta_service_close(m);
    svc_close(s);
    return rc;
}
