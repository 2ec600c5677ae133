/* test_be_status.c: services/gateway/backend/be_status.c, the one mapping
 * of back-end outcomes to CMQ rows that both front ends answer with. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "be_status.h"
#include "metadata.pb.h"
#include "rpc.h"
#include "status.h"

Test(be_status, queue_actions)
{
    cr_assert_eq(be_status_row(CMQ_ACTION_SEND_MESSAGE, CMQ_OK), CMQERR_OK);
    cr_assert_eq(be_status_row(CMQ_ACTION_SEND_MESSAGE, CMQ_ENOTFOUND), CMQERR_QUEUE_NOT_EXIST);
    cr_assert_eq(be_status_row(CMQ_ACTION_RECEIVE_MESSAGE, CMQ_EEMPTY), CMQERR_NO_MESSAGE);
    cr_assert_eq(be_status_row(CMQ_ACTION_SEND_MESSAGE, CMQ_ETOOBIG), CMQERR_MSG_TOO_BIG);
    cr_assert_eq(be_status_row(CMQ_ACTION_DELETE_MESSAGE, CMQ_ESTALE), CMQERR_RECEIPT_HANDLE_INVALID);
    cr_assert_eq(be_status_row(CMQ_ACTION_SEND_MESSAGE, CMQ_ELIMIT), CMQERR_HEAP_FULL);
    cr_assert_eq(be_status_row(CMQ_ACTION_BATCH_RECEIVE_MESSAGE, CMQ_ELIMIT), CMQERR_TOO_MANY_UNACKED);
    cr_assert_eq(be_status_row(CMQ_ACTION_REWIND_QUEUE, CMQ_EDENIED), CMQERR_REWIND_DISABLED);
    cr_assert_eq(be_status_row(CMQ_ACTION_REWIND_QUEUE, CMQ_EINVAL), CMQERR_REWIND_TIME);
    cr_assert_eq(be_status_row(CMQ_ACTION_SEND_MESSAGE, CMQ_EINVAL), CMQERR_INVALID_REQUEST);
    cr_assert_eq(be_status_row(CMQ_ACTION_SEND_MESSAGE, CMQ_ETIMEDOUT),
                 cmq_error_from_status(CMQ_ETIMEDOUT));
}

Test(be_status, publish_actions)
{
    cr_assert_eq(be_status_row(CMQ_ACTION_PUBLISH_MESSAGE, CMQ_ENOTFOUND), CMQERR_TOPIC_NOT_EXIST);
    cr_assert_eq(be_status_row(CMQ_ACTION_BATCH_PUBLISH_MESSAGE, CMQ_ETOOBIG), CMQERR_MSG_TOO_BIG);
    cr_assert_eq(be_status_row(CMQ_ACTION_PUBLISH_MESSAGE, CMQ_EINVAL), CMQERR_INVALID_REQUEST);
    /* the codes the issue names: no subscription 6030/10650, none matching 6030/10730 */
    cr_assert_eq(be_refused_row(1), CMQERR_TOPIC_NO_SUBSCRIPTION);
    cr_assert_eq(cmq_error_code(be_refused_row(1)), 6030);
    cr_assert_eq(cmq_error_module(be_refused_row(1)), 10650);
    cr_assert_eq(be_refused_row(2), CMQERR_NO_MATCH);
    cr_assert_eq(cmq_error_module(be_refused_row(2)), 10730);
}

Test(be_status, rows_and_denials)
{
    cr_assert_eq(be_row_find(4440, 10100), CMQERR_QUEUE_NOT_EXIST);
    cr_assert_eq(be_row_find(4440, 10600), CMQERR_TOPIC_NOT_EXIST);
    cr_assert_eq(be_row_find(1234, 0), CMQERR_COUNT_);
    cr_assert_eq(be_denial_row(), CMQERR_NO_CAM_AUTH);
}

static struct rpc_msg meta_error(int row, const char *param, uint8_t **buf)
{
    cmq_MetaError me = cmq_MetaError_init_zero;
    me.row = (cmq_MetaRow)row;
    snprintf(me.reason, sizeof me.reason, "why");
    snprintf(me.param, sizeof me.param, "%s", param);
    size_t len;
    cr_assert_eq(rpc_pb_encode(cmq_MetaError_fields, &me, buf, &len), CMQ_OK);
    struct rpc_msg m;
    memset(&m, 0, sizeof m);
    m.body = *buf;
    m.body_len = len;
    return m;
}

Test(be_status, metadata_faults)
{
    struct be_fault f;
    uint8_t *buf;
    struct rpc_msg m = meta_error(cmq_MetaRow_META_ROW_QUEUE_NOT_EXIST, "", &buf);
    be_meta_fault(CMQ_ENOTFOUND, &m, CMQERR_COUNT_, &f);
    cr_assert_eq(f.err, CMQERR_QUEUE_NOT_EXIST);
    free(buf);
    m = meta_error(cmq_MetaRow_META_ROW_TOPIC_NOT_EXIST, "", &buf); /* the row, not the status's */
    be_meta_fault(CMQ_ENOTFOUND, &m, CMQERR_QUEUE_NOT_EXIST, &f);
    cr_assert_eq(f.err, CMQERR_TOPIC_NOT_EXIST);
    free(buf);
    m = meta_error(cmq_MetaRow_META_ROW_PARAM_RANGE, "queueName", &buf);
    be_meta_fault(CMQ_EINVAL, &m, CMQERR_COUNT_, &f);
    cr_assert_eq(f.err, CMQERR_PARAM_RANGE);
    cr_assert_str_eq(f.arg, "queueName");
    free(buf);
    /* no row named: the fallback row for "not found", else the status's row */
    m = meta_error(cmq_MetaRow_META_ROW_DEFAULT, "", &buf);
    be_meta_fault(CMQ_ENOTFOUND, &m, CMQERR_TOPIC_NOT_EXIST, &f);
    cr_assert_eq(f.err, CMQERR_TOPIC_NOT_EXIST);
    free(buf);
    be_meta_fault(CMQ_ENOTFOUND, NULL, CMQERR_TOPIC_NOT_EXIST, &f);
    cr_assert_eq(f.err, CMQERR_TOPIC_NOT_EXIST);
    be_meta_fault(CMQ_ETIMEDOUT, NULL, CMQERR_TOPIC_NOT_EXIST, &f);
    cr_assert_eq(f.err, cmq_error_from_status(CMQ_ETIMEDOUT));
    be_meta_fault(CMQ_OK, NULL, CMQERR_COUNT_, &f); /* a reply that did not decode */
    cr_assert_eq(cmq_error_code(f.err), 6000);
}
