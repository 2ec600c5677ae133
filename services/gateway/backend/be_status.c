/* be_status.c: back-end outcomes -> CMQ rows (see be_status.h).  Pure: no
 * I/O; the MetaError of a metadata reply is decoded with its generated
 * struct. */
#include "be_status.h"

#include "metadata.pb.h"
#include "rpc.h"
#include "status.h"

#include <stdio.h>
#include <string.h>

static int is_publish(enum cmq_action a)
{
    return a == CMQ_ACTION_PUBLISH_MESSAGE || a == CMQ_ACTION_BATCH_PUBLISH_MESSAGE;
}

static int is_receive(enum cmq_action a)
{
    return a == CMQ_ACTION_RECEIVE_MESSAGE || a == CMQ_ACTION_BATCH_RECEIVE_MESSAGE;
}

enum cmq_err be_status_row(enum cmq_action action, int status)
{
    if (status == CMQ_OK)
        return CMQERR_OK;
    if (is_publish(action)) {
        switch (status) {
        case CMQ_ENOTFOUND: return CMQERR_TOPIC_NOT_EXIST;
        case CMQ_ETOOBIG: return CMQERR_MSG_TOO_BIG;
        case CMQ_EINVAL: return CMQERR_INVALID_REQUEST;
        default: return cmq_error_from_status(status);
        }
    }
    switch (status) {
    case CMQ_ENOTFOUND: return CMQERR_QUEUE_NOT_EXIST;
    case CMQ_EEMPTY: return CMQERR_NO_MESSAGE;
    case CMQ_ETOOBIG: return CMQERR_MSG_TOO_BIG;
    case CMQ_ESTALE: return CMQERR_RECEIPT_HANDLE_INVALID;
    case CMQ_ELIMIT: return is_receive(action) ? CMQERR_TOO_MANY_UNACKED : CMQERR_HEAP_FULL;
    case CMQ_EDENIED:
        return action == CMQ_ACTION_REWIND_QUEUE ? CMQERR_REWIND_DISABLED : CMQERR_NO_CAM_AUTH;
    case CMQ_EINVAL:
        return action == CMQ_ACTION_REWIND_QUEUE ? CMQERR_REWIND_TIME : CMQERR_INVALID_REQUEST;
    default: return cmq_error_from_status(status);
    }
}

enum cmq_err be_refused_row(uint32_t refused)
{
    return refused == 1 ? CMQERR_TOPIC_NO_SUBSCRIPTION : CMQERR_NO_MATCH;
}

enum cmq_err be_row_find(int code, int module)
{
    for (int e = 0; e < CMQERR_COUNT_; e++)
        if (cmq_error_code((enum cmq_err)e) == code &&
            (module == 0 || cmq_error_module((enum cmq_err)e) == module))
            return (enum cmq_err)e;
    return CMQERR_COUNT_;
}

enum cmq_err be_denial_row(void)
{
    return cmq_error_from_status(CMQ_EDENIED); /* no cam authentication */
}

void be_fault_row(struct be_fault *f, enum cmq_err e, const char *arg)
{
    memset(f, 0, sizeof *f);
    f->err = e;
    if (arg)
        snprintf(f->arg, sizeof f->arg, "%s", arg);
}

void be_meta_fault(int status, const struct rpc_msg *msg, enum cmq_err notfound,
                   struct be_fault *f)
{
    cmq_MetaError me = cmq_MetaError_init_zero;
    if (status != CMQ_OK && msg && msg->body_len &&
        rpc_pb_decode(cmq_MetaError_fields, &me, msg->body, msg->body_len) == CMQ_OK &&
        me.row != cmq_MetaRow_META_ROW_DEFAULT) {
        /* the row metadata named (cmqapi/cmq_error.c maps it) */
        be_fault_row(f, cmq_error_from_meta(status, me.row), me.param[0] ? me.param : NULL);
        return;
    }
    if (status == CMQ_ENOTFOUND && notfound != CMQERR_COUNT_) {
        be_fault_row(f, notfound, NULL);
        return;
    }
    be_fault_row(f, cmq_error_from_status(status == CMQ_OK ? CMQ_EINTERNAL : status), NULL);
}
