/* conformance.h: what the conformance suite's files share: the run's state
 * (the client, the cluster's address, the per-run name prefix), reporting
 * (every check prints "ok - ..." or "not ok - ... # why"), the helpers
 * (conformance.c) and one entry point per group of checks. */
#ifndef CMQ_CONFORMANCE_H
#define CMQ_CONFORMANCE_H

#include "client.h"

#include <stddef.h>
#include <stdint.h>

extern int g_pass, g_fail;
extern struct cmq_client g_cl;
extern char g_ip[64];
extern unsigned g_port;
extern char g_appid[32];
extern char g_prefix[16]; /* a per-run name prefix, so reruns never collide */
extern const char *g_ctl, *g_meta_ep;

/* nm("x") is "<run prefix>-x" in one of 8 rotating buffers: fine inside one
 * call's arguments; copy it when it must live longer. */
#define CALL(...) cmq_call(&g_cl, 0, __VA_ARGS__, (const char *)NULL)
#define CALLF(flags, ...) cmq_call(&g_cl, (flags), __VA_ARGS__, (const char *)NULL)

/* ---- reporting and helpers (conformance.c) ---- */
void report(int good, const char *what, const char *why);
void check(int cond, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
const char *brief(const struct jv *v);
int envelope_ok(const struct jv *v, char *why, size_t cap);
int expect_ok(const struct jv *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int expect_err(const struct jv *v, int code, int module, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
int is_type(const struct jv *o, const char *key, enum jtype t);
void expect_types(const struct jv *o, enum jtype t, const char *keys, const char *ctx);
const char *sget(const struct jv *o, const char *key);
int64_t iget(const struct jv *o, const char *key);
char *nm(const char *what);
int ctl(char *out, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int env_val(const char *text, const char *key, char *out, size_t cap);
int new_key(const char *appid, int restricted, char *id, size_t id_cap, char *key,
            size_t key_cap);
struct jv *raw_post(const char *target, const char *content_type, const char *body, size_t len,
                    struct http_resp *resp);

/* ---- protocol.c ---- */
void transport(void);
void auth_errors(void);
void request_errors(void);

/* ---- namespace.c ---- */
void queues(void);
void topics(void);
void subscriptions(void);
void dead_letter_policy(void);
void quotas(void);

/* ---- messages.c ---- */
void messages(void);
void message_actions_answer(void);

/* ---- coalescing.c ---- */
void coalescing(void);
void coalesced_deletes(void);
void metrics_endpoint(void);

#endif
