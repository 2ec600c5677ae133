/* test_be_auth.c: services/gateway/backend/be_auth.c, the checks that need
 * no metadata: which keys may sign, and the TCP connection signature
 * (HMAC of client id + secret id, base64). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "be_auth.h"
#include "sign.h"
#include "status.h"

static struct key_entry key(int exists, int enabled)
{
    struct key_entry k;
    memset(&k, 0, sizeof k);
    snprintf(k.secret_id, sizeof k.secret_id, "AKIDtest");
    snprintf(k.secret_key, sizeof k.secret_key, "s3cret");
    k.exists = exists;
    k.enabled = enabled;
    return k;
}

Test(be_auth, key_refusals)
{
    struct key_entry k = key(0, 0);
    cr_assert_eq(be_key_refusal(&k), CMQERR_SECRET_ID_NOT_EXIST);
    k = key(1, 0);
    cr_assert_eq(be_key_refusal(&k), CMQERR_SECRET_ID_STATUS);
    k = key(1, 1);
    cr_assert_eq(be_key_refusal(&k), CMQERR_OK);
}

Test(be_auth, tcp_signature)
{
    struct key_entry k = key(1, 1);
    char want[SIGN_B64_MAX];
    cr_assert_eq(sign_tcp_auth("client-1", "AKIDtest", SIGN_HMAC_SHA256, "s3cret", 6, want), CMQ_OK);
    cr_assert_eq(be_auth_tcp(&k, "client-1", "AKIDtest", "HmacSHA256", want), CMQERR_OK);
    cr_assert_eq(be_auth_tcp(&k, "client-2", "AKIDtest", "HmacSHA256", want), CMQERR_AUTH_FAILED);
    cr_assert_eq(be_auth_tcp(&k, "client-1", "AKIDtest", "HmacMD5", want), CMQERR_PARAM_ERROR);
    char sha1[SIGN_B64_MAX];
    cr_assert_eq(sign_tcp_auth("client-1", "AKIDtest", SIGN_HMAC_SHA1, "s3cret", 6, sha1), CMQ_OK);
    cr_assert_eq(be_auth_tcp(&k, "client-1", "AKIDtest", "HmacSHA1", sha1), CMQERR_OK);
    cr_assert_eq(be_auth_tcp(&k, "client-1", "AKIDtest", "HmacSHA1", "short"), CMQERR_AUTH_FAILED);
}
