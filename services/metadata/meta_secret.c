/* meta_secret.c: AES-256-GCM sealing of SecretKeys; see meta_secret.h. */
#include "meta_secret.h"

#include "crypto.h"
#include "status.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define AAD_PREFIX "cmq-secret-v1:"

static int aad_build(const char *secret_id, char *aad, size_t cap, size_t *len)
{
    int n = snprintf(aad, cap, AAD_PREFIX "%s", secret_id);
    if (n < 0 || (size_t)n >= cap)
        return CMQ_EINVAL;
    *len = (size_t)n;
    return CMQ_OK;
}

int meta_secret_seal(const uint8_t key[META_MASTER_KEY_LEN], const char *secret_id,
                     const void *plain, size_t len, uint8_t nonce[META_SECRET_NONCE_LEN],
                     uint8_t *ct, uint8_t tag[META_SECRET_TAG_LEN])
{
    char aad[128];
    size_t aad_len;
    if (len > META_SECRET_MAX || aad_build(secret_id, aad, sizeof aad, &aad_len) != CMQ_OK)
        return CMQ_EINVAL;
    if (crypto_random(nonce, META_SECRET_NONCE_LEN) != 0)
        return CMQ_EINTERNAL;
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    if (!c)
        return CMQ_EINTERNAL;
    int ok = 0, n = 0, fin = 0;
    if (EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL, NULL, NULL) == 1 &&
        EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, META_SECRET_NONCE_LEN, NULL) == 1 &&
        EVP_EncryptInit_ex(c, NULL, NULL, key, nonce) == 1 &&
        EVP_EncryptUpdate(c, NULL, &n, (const uint8_t *)aad, (int)aad_len) == 1 &&
        EVP_EncryptUpdate(c, ct, &n, plain, (int)len) == 1 &&
        EVP_EncryptFinal_ex(c, ct + n, &fin) == 1 &&
        EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, META_SECRET_TAG_LEN, tag) == 1)
        ok = (size_t)(n + fin) == len;
    EVP_CIPHER_CTX_free(c);
    return ok ? CMQ_OK : CMQ_EINTERNAL;
}

int meta_secret_open(const uint8_t key[META_MASTER_KEY_LEN], const char *secret_id,
                     const uint8_t nonce[META_SECRET_NONCE_LEN], const uint8_t *ct, size_t len,
                     const uint8_t tag[META_SECRET_TAG_LEN], void *plain)
{
    char aad[128];
    size_t aad_len;
    uint8_t tag_copy[META_SECRET_TAG_LEN];
    if (len > META_SECRET_MAX || aad_build(secret_id, aad, sizeof aad, &aad_len) != CMQ_OK)
        return CMQ_EINVAL;
    memcpy(tag_copy, tag, sizeof tag_copy);
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    if (!c)
        return CMQ_EINTERNAL;
    int st = CMQ_EINTERNAL, n = 0, fin = 0;
    if (EVP_DecryptInit_ex(c, EVP_aes_256_gcm(), NULL, NULL, NULL) == 1 &&
        EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, META_SECRET_NONCE_LEN, NULL) == 1 &&
        EVP_DecryptInit_ex(c, NULL, NULL, key, nonce) == 1 &&
        EVP_DecryptUpdate(c, NULL, &n, (const uint8_t *)aad, (int)aad_len) == 1 &&
        EVP_DecryptUpdate(c, plain, &n, ct, (int)len) == 1 &&
        EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, META_SECRET_TAG_LEN, tag_copy) == 1) {
        /* Final fails exactly when the tag does not authenticate. */
        st = EVP_DecryptFinal_ex(c, (uint8_t *)plain + n, &fin) == 1 ? CMQ_OK : CMQ_ECORRUPT;
    }
    EVP_CIPHER_CTX_free(c);
    if (st != CMQ_OK)
        OPENSSL_cleanse(plain, len);
    return st;
}

void meta_master_key_id(const uint8_t key[META_MASTER_KEY_LEN],
                        char out[META_MASTER_KEY_ID_LEN + 1])
{
    static const char label[] = "cmq-master-key-id";
    uint8_t buf[sizeof label - 1 + META_MASTER_KEY_LEN], d[32];
    memcpy(buf, label, sizeof label - 1);
    memcpy(buf + sizeof label - 1, key, META_MASTER_KEY_LEN);
    crypto_sha256(buf, sizeof buf, d);
    OPENSSL_cleanse(buf, sizeof buf);
    hex_encode(d, META_MASTER_KEY_ID_LEN / 2, out);
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = tolower(c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

int meta_master_key_parse(const char *text, uint8_t key[META_MASTER_KEY_LEN])
{
    while (isspace((unsigned char)*text))
        text++;
    size_t n = 0;
    while (text[n] && !isspace((unsigned char)text[n]))
        n++;
    for (size_t i = n; text[i]; i++)
        if (!isspace((unsigned char)text[i]))
            return CMQ_EINVAL;
    if (n != 2 * META_MASTER_KEY_LEN)
        return CMQ_EINVAL;
    for (size_t i = 0; i < META_MASTER_KEY_LEN; i++) {
        int hi = hexval((unsigned char)text[2 * i]), lo = hexval((unsigned char)text[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            OPENSSL_cleanse(key, META_MASTER_KEY_LEN);
            return CMQ_EINVAL;
        }
        key[i] = (uint8_t)(hi << 4 | lo);
    }
    return CMQ_OK;
}

int meta_master_key_load(const char *path, int create, uint8_t key[META_MASTER_KEY_LEN],
                         int *created)
{
    char buf[160];
    *created = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT && create) {
        char hex[2 * META_MASTER_KEY_LEN + 2];
        if (crypto_random(key, META_MASTER_KEY_LEN) != 0)
            return CMQ_EINTERNAL;
        hex_encode(key, META_MASTER_KEY_LEN, hex);
        strcat(hex, "\n");
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0)
            return status_from_errno(errno);
        size_t len = strlen(hex);
        int ok = write(fd, hex, len) == (ssize_t)len && fsync(fd) == 0;
        OPENSSL_cleanse(hex, sizeof hex);
        close(fd);
        if (!ok) {
            unlink(path);
            return CMQ_EIO;
        }
        *created = 1;
        return CMQ_OK;
    }
    if (fd < 0)
        return status_from_errno(errno);
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n < 0)
        return CMQ_EIO;
    buf[n] = '\0';
    int st = meta_master_key_parse(buf, key);
    OPENSSL_cleanse(buf, sizeof buf);
    return st;
}
