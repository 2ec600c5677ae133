/* client.h: the conformance suite's own CMQ client: a blocking HTTP/1.1
 * client over one TCP socket (keep-alive, GET and POST, reconnects once when
 * the server closed an idle connection), SDK-style request signing on top
 * of gwapi's sign_client_request, and a small JSON reader that keeps each
 * number's text so a test can tell 5 from "5" and 5.0.
 *
 * Written for tests: bounded (responses up to CLIENT_RESP_MAX bytes), no
 * TLS, no chunked request bodies; every failure is reported, never hidden.
 */
#ifndef CMQ_CONFORMANCE_CLIENT_H
#define CMQ_CONFORMANCE_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CLIENT_RESP_MAX (8u << 20)

/* ---------- HTTP ---------- */

struct http_conn {
    int fd;
    char ip[64];
    unsigned port;
    unsigned connects; /* how many TCP connections this client opened */
};

struct http_resp {
    int status;          /* 0 when no response could be read */
    char content_type[128];
    bool closed;         /* the server said Connection: close */
    char *body;          /* malloc'd, NUL-terminated; free with http_resp_free */
    size_t len;
};

void http_init(struct http_conn *c, const char *ip, unsigned port);
void http_close(struct http_conn *c);
/* Sends one request and reads its response.  `host` is the Host header
 * value (NULL: ip:port); `content_type` NULL sends no Content-Type header;
 * `extra_headers` (NULL or "K: v\r\n..." lines) is added verbatim.  Returns
 * 0, or -1 with out->status 0 on a transport failure. */
int http_request(struct http_conn *c, const char *method, const char *target, const char *host,
                 const char *content_type, const char *extra_headers, const char *body,
                 size_t body_len, struct http_resp *out);
void http_resp_free(struct http_resp *r);

/* ---------- JSON ---------- */

enum jtype { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ };

struct jv {
    enum jtype t;
    bool b;
    bool is_int;       /* J_NUM written as an integer (no '.', 'e') */
    int64_t i;         /* J_NUM when is_int */
    char *s;           /* J_STR (NUL-terminated), J_NUM (its text) */
    size_t n;          /* children of J_ARR / J_OBJ */
    struct jv *kids;
    char **keys;       /* J_OBJ member names */
};

/* Parses `len` bytes; NULL when it is not exactly one JSON value. */
struct jv *json_parse(const char *s, size_t len);
void jv_free(struct jv *v);
/* The member `key` of an object (NULL when absent or not an object). */
const struct jv *jv_get(const struct jv *o, const char *key);

/* ---------- CMQ requests ---------- */

enum req_flags {
    REQ_GET = 1u << 0,         /* GET with the parameters in the query (default POST body) */
    REQ_SHA256 = 1u << 1,      /* SignatureMethod=HmacSHA256 (default HmacSHA1) */
    REQ_BAD_SIGNATURE = 1u << 2, /* flip one character of the signature */
    REQ_NO_SIGN = 1u << 3,     /* send without Signature */
    REQ_NO_CONTENT_TYPE = 1u << 4,
    REQ_PY_AT_QUIRK = 1u << 5,   /* sign like the Python SDK: '@' values left out (POST) */
    REQ_ACTION_IN_QUERY = 1u << 6, /* POST with Action in the query string, the rest in the body */
};

struct cmq_client {
    struct http_conn http;
    char secret_id[80];
    char secret_key[80];
    char path[32];        /* "/v2/index.php" (default) or "/" */
    char send_path[32];   /* "" = path; else the path sent (signed with `path`) */
    char sign_host[128];  /* host string signed (default ip:port) */
    char host_header[128]; /* Host header sent (default = sign_host) */
    char content_type[64]; /* for POST; "" = default form type */
    char extra_headers[128]; /* for POST: "K: v\r\n" lines, or "" */
    int64_t timestamp;    /* 0 = now */
    unsigned flags;       /* default req_flags for every request */
    uint64_t nonce;
};

void cmq_client_init(struct cmq_client *cl, const char *ip, unsigned port, const char *secret_id,
                     const char *secret_key);

/* Sends Action with NULL-terminated key, value pairs (values may be "" to
 * send an empty value); returns the parsed body (caller frees) or NULL when
 * there was no HTTP 200 JSON answer.  `resp` (may be NULL) receives the raw
 * response; the caller then frees it. */
struct jv *cmq_callv(struct cmq_client *cl, unsigned flags, struct http_resp *resp,
                     const char *action, const char *const *kv, size_t n_kv);
struct jv *cmq_call(struct cmq_client *cl, unsigned flags, const char *action, ...);

#endif
