/* cmq_error.c: the CMQ error table, the status -> error map and the error
 * envelope; see cmq_error.h.  docs/status-codes.md mirrors both tables. */
#include "cmq_error.h"

#include <assert.h>
#include <stdio.h>
#include <string.h>

#include "json.h"
#include "metadata.pb.h"
#include "status.h"

struct row {
    const char *id;
    int code;
    int module;
    const char *text;
};

static const struct row rows[CMQERR_COUNT_] = {
#define CMQ_ERROR_ROW_(id_, code_, module_, text_) \
    [CMQERR_##id_] = {.id = #id_, .code = code_, .module = module_, .text = text_},
    CMQ_ERROR_TABLE(CMQ_ERROR_ROW_)
#undef CMQ_ERROR_ROW_
};

/* Internal status -> default row.  Every status has a row; the handler picks
 * a more specific one when it knows the context (a topic rather than a
 * queue, a batch rather than one message). */
static const enum cmq_err status_rows[CMQ_STATUS_COUNT_] = {
    [CMQ_OK] = CMQERR_OK,
    [CMQ_EINVAL] = CMQERR_INVALID_REQUEST,
    [CMQ_ENOTFOUND] = CMQERR_QUEUE_NOT_EXIST,
    [CMQ_EEXIST] = CMQERR_QUEUE_EXISTS,
    [CMQ_ENOTLEADER] = CMQERR_UNAVAILABLE,
    [CMQ_ETIMEDOUT] = CMQERR_INTERNAL,
    [CMQ_EUNAVAIL] = CMQERR_UNAVAILABLE,
    [CMQ_ENOMEM] = CMQERR_INTERNAL,
    [CMQ_EIO] = CMQERR_INTERNAL,
    [CMQ_ECORRUPT] = CMQERR_INTERNAL,
    [CMQ_ETOOBIG] = CMQERR_MSG_TOO_BIG,
    [CMQ_ELIMIT] = CMQERR_HEAP_FULL,
    [CMQ_EDENIED] = CMQERR_NO_CAM_AUTH,
    [CMQ_EAUTH] = CMQERR_AUTH_FAILED,
    [CMQ_ESTALE] = CMQERR_RECEIPT_HANDLE_INVALID,
    [CMQ_EINTERNAL] = CMQERR_INTERNAL,
    [CMQ_ESHUTDOWN] = CMQERR_INTERNAL,
    [CMQ_EUNSUPPORTED] = CMQERR_ACTION_NOT_EXIST,
    [CMQ_EEMPTY] = CMQERR_NO_MESSAGE,
    [CMQ_EBUSY] = CMQERR_UNAVAILABLE, /* a partition busy (leader change), not a rate limit */
    [CMQ_ENOSPC] = CMQERR_INTERNAL,
};
_Static_assert(CMQ_STATUS_COUNT_ == 21,
               "a status was added: give it a row in status_rows and docs/status-codes.md");

/* Metadata's row ids (metadata.proto MetaRow) -> rows of this table.  The
 * names are the same; DEFAULT is left to the status. */
#define META_ROW_(name) [cmq_MetaRow_META_ROW_##name] = CMQERR_##name
static const enum cmq_err meta_rows[_cmq_MetaRow_MAX + 1] = {
    [cmq_MetaRow_META_ROW_DEFAULT] = CMQERR_COUNT_,
    META_ROW_(INTERNAL),
    META_ROW_(PARAM_ERROR),
    META_ROW_(PARAM_RANGE),
    META_ROW_(NO_CAM_AUTH),
    META_ROW_(ACCOUNT_ILLEGAL),
    META_ROW_(SECRET_ID_PREFIX),
    META_ROW_(SECRET_ID_STATUS),
    META_ROW_(SECRET_ID_NOT_EXIST),
    META_ROW_(QUEUE_NAME_FORMAT),
    META_ROW_(QUEUE_NOT_EXIST),
    META_ROW_(QUEUE_EXISTS),
    META_ROW_(QUEUE_QUOTA),
    META_ROW_(RECREATE_TOO_SOON),
    META_ROW_(REWIND_ABOVE_RETENTION),
    META_ROW_(TOPIC_NAME_FORMAT),
    META_ROW_(TOPIC_NOT_EXIST),
    META_ROW_(TOPIC_EXISTS),
    META_ROW_(TOPIC_QUOTA),
    META_ROW_(TOPIC_RECREATE_TOO_SOON),
    META_ROW_(TOPIC_HAS_SUBSCRIPTIONS),
    META_ROW_(SUBSCRIPTION_NAME_FORMAT),
    META_ROW_(SUBSCRIPTION_NOT_EXIST),
    META_ROW_(SUBSCRIPTION_EXISTS),
    META_ROW_(SUBSCRIPTION_QUOTA),
    META_ROW_(PROTOCOL_UNDEFINED),
    META_ROW_(ENDPOINT_FORMAT),
    META_ROW_(ENDPOINT_BLANK),
    META_ROW_(ENDPOINT_ILLEGAL),
    META_ROW_(NOTIFY_STRATEGY_UNDEFINED),
    META_ROW_(NOTIFY_FORMAT_UNDEFINED),
    META_ROW_(FILTER_TAG_COUNT),
    META_ROW_(BINDING_KEY_TOO_MANY),
    META_ROW_(BINDING_KEY_MISSING),
    META_ROW_(TOO_MANY_DELIMITERS),
};
#undef META_ROW_
_Static_assert(_cmq_MetaRow_MIN == 0 && _cmq_MetaRow_MAX == 34,
               "a MetaRow was added to metadata.proto: map it in meta_rows");

static const struct row *row_of(enum cmq_err e)
{
    assert((int)e >= 0 && e < CMQERR_COUNT_);
    return &rows[e];
}

int cmq_error_code(enum cmq_err e) { return row_of(e)->code; }
int cmq_error_module(enum cmq_err e) { return row_of(e)->module; }
const char *cmq_error_text(enum cmq_err e) { return row_of(e)->text; }
const char *cmq_error_id(enum cmq_err e) { return row_of(e)->id; }

enum cmq_err cmq_error_from_status(int status)
{
    if (status < 0 || status >= CMQ_STATUS_COUNT_)
        return CMQERR_INTERNAL;
    return status_rows[status];
}

enum cmq_err cmq_error_from_meta(int status, int meta_row)
{
    if (meta_row > 0 && meta_row <= _cmq_MetaRow_MAX)
        return meta_rows[meta_row];
    return cmq_error_from_status(status);
}

int cmq_fault_setn(struct cmq_fault *f, enum cmq_err err, const char *arg, size_t arg_len,
                   int status)
{
    if (!f)
        return status;
    f->err = err;
    if (!arg)
        arg_len = 0;
    if (arg_len > CMQ_FAULT_ARG_MAX) {
        memcpy(f->arg, arg, CMQ_FAULT_ARG_MAX);
        memcpy(f->arg + CMQ_FAULT_ARG_MAX, "...", 4);
    } else {
        if (arg_len)
            memcpy(f->arg, arg, arg_len);
        f->arg[arg_len] = '\0';
    }
    return status;
}

int cmq_fault_set(struct cmq_fault *f, enum cmq_err err, const char *arg, int status)
{
    return cmq_fault_setn(f, err, arg, arg ? strlen(arg) : 0, status);
}

/* Appends `n` bytes to buf at *pos, truncating at cap - 1; counts them all. */
static void append(char *buf, size_t cap, size_t *pos, const char *s, size_t n)
{
    if (*pos + 1 < cap) {
        size_t room = cap - 1 - *pos;
        memcpy(buf + *pos, s, n < room ? n : room);
    }
    *pos += n;
}

size_t cmq_error_message(enum cmq_err e, const char *arg, char *buf, size_t cap)
{
    const struct row *r = row_of(e);
    size_t pos = 0;
    if (r->module != 0) {
        char m[16];
        int n = snprintf(m, sizeof(m), "(%d)", r->module);
        append(buf, cap, &pos, m, (size_t)n);
    }
    const char *hole = strstr(r->text, "%s");
    if (hole) {
        append(buf, cap, &pos, r->text, (size_t)(hole - r->text));
        if (arg)
            append(buf, cap, &pos, arg, strlen(arg));
        append(buf, cap, &pos, hole + 2, strlen(hole + 2));
    } else {
        append(buf, cap, &pos, r->text, strlen(r->text));
    }
    if (cap > 0)
        buf[pos < cap ? pos : cap - 1] = '\0';
    return pos;
}

void cmq_error_envelope(struct json *j, enum cmq_err e, const char *arg, const char *request_id)
{
    /* The longest text is under 160 bytes and arg is at most a fault's. */
    char msg[256 + CMQ_FAULT_ARG_MAX];
    if (e == CMQERR_OK)
        msg[0] = '\0';
    else
        cmq_error_message(e, arg, msg, sizeof(msg));
    json_kv_int(j, "code", cmq_error_code(e));
    json_kv_cstr(j, "message", msg);
    json_kv_cstr(j, "requestId", request_id ? request_id : "");
}

int cmq_error_reply(struct json *j, enum cmq_err e, const char *arg, const char *request_id)
{
    json_obj_begin(j);
    cmq_error_envelope(j, e, arg, request_id);
    json_obj_end(j);
    return json_status(j);
}

int cmq_error_reply_fault(struct json *j, const struct cmq_fault *f, const char *request_id)
{
    return cmq_error_reply(j, f->err, f->arg[0] ? f->arg : NULL, request_id);
}

void cmq_error_item(struct json *j, enum cmq_err e, const char *handle, size_t handle_len)
{
    char msg[256];
    cmq_error_message(e, NULL, msg, sizeof(msg));
    json_obj_begin(j);
    json_kv_int(j, "code", cmq_error_code(e));
    json_kv_cstr(j, "message", msg);
    json_kv_str(j, "receiptHandle", handle, handle_len);
    json_obj_end(j);
}
