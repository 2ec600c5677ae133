/* be_auth.c: keys, signatures and ACL checks for both front ends (see
 * be_auth.h). */
#include "be_auth.h"

#include "clock.h"
#include "crypto.h"
#include "log.h"
#include "sign.h"
#include "status.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct keyq {
    struct be_loop *be;
    char secret_id[KEY_ID_MAX];
    be_key_fn *fn;
    void *arg;
};

static void on_key(void *arg, int status, const struct rpc_msg *msg)
{
    struct keyq *q = arg;
    struct key_entry e = {0};
    struct be_fault f;
    snprintf(e.secret_id, sizeof e.secret_id, "%s", q->secret_id);
    if (status == CMQ_OK) {
        cmq_Key k = cmq_Key_init_zero;
        if (!msg || rpc_pb_decode(cmq_Key_fields, &k, msg->body, msg->body_len) != CMQ_OK) {
            be_fault_row(&f, CMQERR_INTERNAL, NULL);
            q->fn(q->arg, NULL, &f);
            free(q);
            return;
        }
        e.exists = 1;
        e.enabled = k.enabled;
        e.restricted = k.restricted;
        e.appid = k.appid;
        snprintf(e.secret_key, sizeof e.secret_key, "%s", k.secret_key);
        OPENSSL_cleanse(&k, sizeof k);
    } else if (status != CMQ_ENOTFOUND) {
        /* A disabled key (4100/10080), a malformed SecretId, or metadata
         * unreachable: metadata's MetaError names the exact code. */
        be_meta_fault(status, msg, CMQERR_SECRET_ID_NOT_EXIST, &f);
        q->fn(q->arg, NULL, &f);
        free(q);
        return;
    }
    keycache_put(q->be->keys, &e, clock_mono_ms());
    q->fn(q->arg, &e, NULL);
    OPENSSL_cleanse(&e, sizeof e);
    free(q);
}

void be_key_lookup(struct be_loop *be, const char *secret_id, be_key_fn *fn, void *arg)
{
    struct be_fault f;
    if (strlen(secret_id) >= KEY_ID_MAX) {
        be_fault_row(&f, CMQERR_SECRET_ID_NOT_EXIST, NULL);
        fn(arg, NULL, &f);
        return;
    }
    const struct key_entry *e = keycache_get(be->keys, secret_id, clock_mono_ms());
    if (e) {
        fn(arg, e, NULL);
        return;
    }
    struct keyq *q = malloc(sizeof *q);
    cmq_KeyRequest kr = cmq_KeyRequest_init_zero;
    snprintf(kr.secret_id, sizeof kr.secret_id, "%s", secret_id);
    int rc = CMQ_ENOMEM;
    if (q) {
        q->be = be;
        snprintf(q->secret_id, sizeof q->secret_id, "%s", secret_id);
        q->fn = fn;
        q->arg = arg;
        rc = be_meta_call(be, cmq_MetaMsgType_META_MSG_KEY_GET_SECRET, cmq_KeyRequest_fields, &kr,
                          on_key, q);
    }
    if (rc != CMQ_OK) {
        free(q);
        be_fault_row(&f, cmq_error_from_status(rc), NULL);
        fn(arg, NULL, &f);
    }
}

enum cmq_err be_key_refusal(const struct key_entry *k)
{
    if (!k->exists)
        return CMQERR_SECRET_ID_NOT_EXIST;
    if (!k->enabled)
        return CMQERR_SECRET_ID_STATUS;
    return CMQERR_OK;
}

int be_auth_http(const struct key_entry *k, const struct params *p, const struct sign_request *sr,
                 struct cmq_fault *f)
{
    return sign_verify(p, sr, k->secret_key, strlen(k->secret_key), f);
}

enum cmq_err be_auth_tcp(const struct key_entry *k, const char *client_id, const char *secret_id,
                         const char *method, const char *signature)
{
    enum sign_alg alg;
    char want[SIGN_B64_MAX];
    if (sign_alg_from_name(method, &alg) != CMQ_OK)
        return CMQERR_PARAM_ERROR;
    if (sign_tcp_auth(client_id, secret_id, alg, k->secret_key, strlen(k->secret_key), want) != CMQ_OK)
        return CMQERR_INTERNAL;
    size_t wl = strlen(want);
    if (strlen(signature) != wl || crypto_memcmp(want, signature, wl) != 0)
        return CMQERR_AUTH_FAILED;
    return CMQERR_OK;
}

struct aclq {
    be_acl_fn *fn;
    void *arg;
};

static void on_acl(void *arg, int status, const struct rpc_msg *msg)
{
    struct aclq *q = arg;
    cmq_AclCheckReply r = cmq_AclCheckReply_init_zero;
    if (status != CMQ_OK || !msg ||
        rpc_pb_decode(cmq_AclCheckReply_fields, &r, msg->body, msg->body_len) != CMQ_OK) {
        struct be_fault f;
        be_meta_fault(status, status == CMQ_OK ? NULL : msg, CMQERR_COUNT_, &f);
        q->fn(q->arg, 0, CMQERR_NO_CAM_AUTH, "", &f);
    } else {
        q->fn(q->arg, r.allowed, r.allowed ? CMQERR_OK : be_denial_row(),
              r.reason, NULL);
    }
    free(q);
}

void be_acl_check(struct be_loop *be, const char *secret_id, enum cmq_action action,
                  const char *resource_type, const char *resource_name, be_acl_fn *fn, void *arg)
{
    cmq_AclCheckRequest r = cmq_AclCheckRequest_init_zero;
    snprintf(r.secret_id, sizeof r.secret_id, "%s", secret_id);
    snprintf(r.action, sizeof r.action, "%s", action_name(action));
    snprintf(r.resource_type, sizeof r.resource_type, "%s", resource_type ? resource_type : "");
    snprintf(r.resource_name, sizeof r.resource_name, "%s", resource_name ? resource_name : "");
    struct aclq *q = malloc(sizeof *q);
    int rc = CMQ_ENOMEM;
    if (q) {
        *q = (struct aclq){fn, arg};
        rc = be_meta_call(be, cmq_MetaMsgType_META_MSG_ACL_CHECK, cmq_AclCheckRequest_fields, &r,
                          on_acl, q);
    }
    if (rc != CMQ_OK) {
        free(q);
        struct be_fault f;
        be_fault_row(&f, cmq_error_from_status(rc), NULL);
        fn(arg, 0, CMQERR_NO_CAM_AUTH, "", &f);
    }
}
