/* meta_secret.h: SecretKeys encrypted at rest, and the master key.
 *
 * Scheme (docs/metadata.md): AES-256-GCM (OpenSSL EVP) under the 32-byte
 * master key from the service's config.  Every row has its own random 96-bit
 * nonce; the additional authenticated data is "cmq-secret-v1:" followed by
 * the SecretId, so a ciphertext cannot be moved to another key's row.  The
 * row stores nonce, ciphertext and the 128-bit tag.  The database also keeps
 * the master key's id (first 8 bytes of SHA-256("cmq-master-key-id" || key),
 * hex) so that opening it with the wrong key fails at start, clearly.
 *
 * Nothing here logs, and buffers that held plaintext are cleansed.
 */
#ifndef CMQ_META_SECRET_H
#define CMQ_META_SECRET_H

#include <stddef.h>
#include <stdint.h>

#define META_MASTER_KEY_LEN 32
#define META_SECRET_NONCE_LEN 12
#define META_SECRET_TAG_LEN 16
#define META_SECRET_MAX 64          /* plaintext bytes */
#define META_MASTER_KEY_ID_LEN 16   /* hex chars */

/* Encrypts `len` bytes of `plain` (borrowed, len <= META_SECRET_MAX) for the
 * row of `secret_id`; writes a fresh nonce, `len` bytes of ciphertext and the
 * tag.  Returns CMQ_OK or CMQ_EINTERNAL / CMQ_EINVAL. */
int meta_secret_seal(const uint8_t key[META_MASTER_KEY_LEN], const char *secret_id,
                     const void *plain, size_t len, uint8_t nonce[META_SECRET_NONCE_LEN],
                     uint8_t *ct, uint8_t tag[META_SECRET_TAG_LEN]);

/* Decrypts and authenticates; `plain` gets `len` bytes.  CMQ_ECORRUPT when
 * the tag does not verify (wrong key, wrong row or tampered bytes). */
int meta_secret_open(const uint8_t key[META_MASTER_KEY_LEN], const char *secret_id,
                     const uint8_t nonce[META_SECRET_NONCE_LEN], const uint8_t *ct, size_t len,
                     const uint8_t tag[META_SECRET_TAG_LEN], void *plain);

/* The master key's id as META_MASTER_KEY_ID_LEN hex chars + NUL. */
void meta_master_key_id(const uint8_t key[META_MASTER_KEY_LEN],
                        char out[META_MASTER_KEY_ID_LEN + 1]);

/* Parses 64 hex characters (surrounding whitespace allowed).  CMQ_EINVAL otherwise. */
int meta_master_key_parse(const char *text, uint8_t key[META_MASTER_KEY_LEN]);

/* Reads the master key (64 hex chars) from `path`; when the file does not
 * exist and `create` is set, writes a fresh random key there (mode 0600,
 * fsync'd) and sets *created.  CMQ_EINVAL for a malformed file, CMQ_EIO /
 * CMQ_ENOTFOUND otherwise. */
int meta_master_key_load(const char *path, int create, uint8_t key[META_MASTER_KEY_LEN],
                         int *created);

#endif
