/* be_auth.h: the gateway's one authentication module, for both front ends:
 * the key for a SecretId (the loop's key cache, else metadata's
 * KEY_GET_SECRET; unknown ids are cached briefly too), whether a key may be
 * used, the two signature checks (the HTTP API's request signature, §4; the
 * TCP protocol's connection signature, TCP §6.2) and the ACL check of a
 * restricted key (metadata ACL_CHECK).  Every refusal is a CMQ row. */
#ifndef CMQ_GATEWAY_BE_AUTH_H
#define CMQ_GATEWAY_BE_AUTH_H

#include "backend.h"
#include "keycache.h"

struct params;
struct sign_request;
struct cmq_fault;

/* The key for `secret_id`: fn gets it (borrowed for the call; exists == 0
 * for an unknown id) or, when metadata could not say, a fault. */
typedef void be_key_fn(void *arg, const struct key_entry *key, const struct be_fault *f);
void be_key_lookup(struct be_loop *be, const char *secret_id, be_key_fn *fn, void *arg);
/* CMQERR_OK when `k` may sign requests; else its row (unknown, disabled). */
enum cmq_err be_key_refusal(const struct key_entry *k);
/* The HTTP API's request signature (sign.h: sign_verify).  CMQ_OK, or a
 * status with the row in *f. */
int be_auth_http(const struct key_entry *k, const struct params *p, const struct sign_request *sr,
                 struct cmq_fault *f);
/* The TCP protocol's auth request: `method` names the HMAC, `signature` is
 * base64 of HMAC(key, client_id + secret_id).  CMQERR_OK or its row. */
enum cmq_err be_auth_tcp(const struct key_entry *k, const char *client_id, const char *secret_id,
                         const char *method, const char *signature);

/* May restricted key `secret_id` do `action` on (resource_type,
 * resource_name) ("" "" for account-level)?  fn gets allowed, the denial's
 * row and metadata's reason, or a fault when metadata could not say. */
typedef void be_acl_fn(void *arg, int allowed, enum cmq_err denial, const char *reason,
                       const struct be_fault *f);
void be_acl_check(struct be_loop *be, const char *secret_id, enum cmq_action action,
                  const char *resource_type, const char *resource_name, be_acl_fn *fn, void *arg);

#endif
