/* be_status.h: the gateway's ONE mapping from a back-end outcome to a CMQ
 * error row (cmqapi/cmq_error.h), for both front ends (HTTP and TCP).
 *
 * A storage status becomes a row by the action that met it (a missing queue
 * or topic, a full heap or too many unacked messages, ...); a metadata
 * failure becomes the row metadata's MetaError names, else the status's
 * default row.  The front ends only render a row (JSON envelope or TCP
 * result); none of them picks a row for a back-end status itself. */
#ifndef CMQ_GATEWAY_BE_STATUS_H
#define CMQ_GATEWAY_BE_STATUS_H

#include "action.h"
#include "cmq_error.h"

#include <stdint.h>

struct rpc_msg;

/* A back-end failure as a front end answers it: a row of the table and the
 * parameter it names.  (err == CMQERR_COUNT_ with code/module/reason is a
 * raw code; nothing produces one since metadata names rows, but the front
 * ends still render it.) */
struct be_fault {
    enum cmq_err err;
    char arg[CMQ_FAULT_ARG_MAX + 4]; /* the parameter a "%s" row names ("" none) */
    int code, module;                /* err == CMQERR_COUNT_ only */
    char reason[256];
};

/* The row for storage status `status` met by `action` (CMQERR_OK for
 * CMQ_OK).  Queue actions: a missing queue is 4440/10100; publishes: a
 * missing topic is 4440/10600. */
enum cmq_err be_status_row(enum cmq_action action, int status);
/* The row for a PublishReply's `refused` (1: no subscription, 2: none
 * matches the tags / routing key). */
enum cmq_err be_refused_row(uint32_t refused);
/* The row with this code and module (module 0: any), or CMQERR_COUNT_. */
enum cmq_err be_row_find(int code, int module);
/* An ACL denial's row (CMQ_EDENIED's: no cam authentication). */
enum cmq_err be_denial_row(void);
/* `f` = row `e` naming `arg` (NULL: none). */
void be_fault_row(struct be_fault *f, enum cmq_err e, const char *arg);
/* A failed metadata reply (`msg` may be NULL): the row its MetaError names
 * (MetaError.row through cmq_error_from_meta), else `notfound` for CMQ_ENOTFOUND (CMQERR_COUNT_: the status's default
 * row), else the status's default row (CMQ_OK here means a reply that did
 * not decode: 6000). */
void be_meta_fault(int status, const struct rpc_msg *msg, enum cmq_err notfound,
                   struct be_fault *f);

#endif
