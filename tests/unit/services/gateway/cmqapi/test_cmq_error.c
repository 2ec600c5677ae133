/* test_cmq_error.c: services/gateway/cmqapi/cmq_error.c: the §12 table, the
 * status map, metadata's row ids, message formatting and the error envelope
 * (§2.3). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "cmq_error.h"
#include "json.h"
#include "metadata.pb.h"
#include "status.h"

Test(cmq_error_table, every_row_is_well_formed)
{
    for (int e = 0; e < CMQERR_COUNT_; e++) {
        int code = cmq_error_code(e);
        const char *text = cmq_error_text(e);
        cr_assert_not_null(text);
        cr_assert_not_null(cmq_error_id(e));
        if (e == CMQERR_OK) {
            cr_assert_eq(code, 0);
            continue;
        }
        cr_assert(code >= 4000 && code <= 7000 && code % 10 == 0, "%s: %d", cmq_error_id(e),
                  code);
        cr_assert_gt(strlen(text), 0, "%s", cmq_error_id(e));
        int m = cmq_error_module(e);
        cr_assert(m == 0 || (m >= 10000 && m < 11000), "%s", cmq_error_id(e));
        /* At most one hole, and only %s. */
        const char *pct = strchr(text, '%');
        if (pct) {
            cr_assert_eq(pct[1], 's', "%s", cmq_error_id(e));
            cr_assert_null(strchr(pct + 1, '%'), "%s", cmq_error_id(e));
        }
    }
}

Test(cmq_error_table, spec_rows)
{
    static const struct {
        enum cmq_err e;
        int code, module;
    } rows[] = {
        {CMQERR_AUTH_FAILED, 4100, 10030},      {CMQERR_SECRET_ID_NOT_EXIST, 4100, 10270},
        {CMQERR_SECRET_ID_STATUS, 4100, 10080}, {CMQERR_QUEUE_NOT_EXIST, 4440, 10100},
        {CMQERR_TOPIC_NOT_EXIST, 4440, 10600},  {CMQERR_NO_MESSAGE, 7000, 10200},
        {CMQERR_MSG_TOO_BIG, 4400, 10230},      {CMQERR_RECEIPT_HANDLE_INVALID, 4430, 10260},
        {CMQERR_DELETE_PARTIAL, 6010, 10150},   {CMQERR_DELETE_ALL_FAILED, 6020, 10290},
        {CMQERR_BATCH_SIZE, 4000, 10370},       {CMQERR_NOT_CONSEQUENT, 4000, 10380},
        {CMQERR_PARAM_NOT_REPEATABLE, 4000, 10330}, {CMQERR_QUEUE_EXISTS, 4460, 0},
        {CMQERR_DELAY_RANGE, 4000, 10692},      {CMQERR_ENDPOINT_BLANK, 4510, 10570},
        {CMQERR_SUBSCRIPTION_QUOTA, 4500, 10480}, {CMQERR_NO_MATCH, 6030, 10730},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        cr_assert_eq(cmq_error_code(rows[i].e), rows[i].code, "%s", cmq_error_id(rows[i].e));
        cr_assert_eq(cmq_error_module(rows[i].e), rows[i].module, "%s",
                     cmq_error_id(rows[i].e));
    }
}

/* Rows may share a code and module only where the spec's table does (its
 * module codes are not unique across features) or where the text says more
 * than the spec's (an authentication failure's cause, a retryable 6000).
 * No two rows may give a client the same code and message. */
Test(cmq_error_table, no_duplicate_code_and_message)
{
    static const enum cmq_err shared[][2] = {
        {CMQERR_AUTH_FAILED, CMQERR_REQUEST_EXPIRED},
        {CMQERR_AUTH_FAILED, CMQERR_REPLAYED},
        {CMQERR_REQUEST_EXPIRED, CMQERR_REPLAYED},
        {CMQERR_INTERNAL, CMQERR_UNAVAILABLE},
        {CMQERR_INTERNAL, CMQERR_NOT_SERVED},
        {CMQERR_UNAVAILABLE, CMQERR_NOT_SERVED},
        {CMQERR_REWIND_TIME, CMQERR_BINDING_KEY_TOO_MANY},
        {CMQERR_REWIND_ABOVE_RETENTION, CMQERR_ROUTING_KEY_MISSING},
        {CMQERR_QUEUE_EXISTS, CMQERR_TOPIC_EXISTS},
        {CMQERR_TOPIC_NOT_EXIST, CMQERR_SUBSCRIPTION_NOT_EXIST},
        {CMQERR_RECREATE_TOO_SOON, CMQERR_TOPIC_RECREATE_TOO_SOON},
    };
    for (int a = 1; a < CMQERR_COUNT_; a++)
        for (int b = a + 1; b < CMQERR_COUNT_; b++) {
            if (cmq_error_code(a) != cmq_error_code(b) ||
                cmq_error_module(a) != cmq_error_module(b))
                continue;
            cr_assert_str_neq(cmq_error_text(a), cmq_error_text(b), "%s and %s: same code and message",
                              cmq_error_id(a), cmq_error_id(b));
            int listed = 0;
            for (size_t i = 0; i < sizeof shared / sizeof shared[0]; i++)
                listed |= (shared[i][0] == (enum cmq_err)a && shared[i][1] == (enum cmq_err)b) ||
                          (shared[i][0] == (enum cmq_err)b && shared[i][1] == (enum cmq_err)a);
            cr_assert(listed, "%s and %s share %d/%d: list them here if the spec does",
                      cmq_error_id(a), cmq_error_id(b), cmq_error_code(a), cmq_error_module(a));
        }
}

/* Every row id metadata can send (proto/metadata.proto MetaRow) maps to a
 * row of the table, distinct ids to distinct rows; DEFAULT and ids this
 * build does not know fall back to the status's row. */
Test(cmq_error_meta, every_row_id_maps_to_a_row)
{
    enum cmq_err seen[_cmq_MetaRow_MAX + 1];
    for (int id = _cmq_MetaRow_MIN + 1; id <= _cmq_MetaRow_MAX; id++) {
        enum cmq_err e = cmq_error_from_meta(CMQ_EINVAL, id);
        cr_assert(e > CMQERR_OK && e < CMQERR_COUNT_, "MetaRow %d maps to no row", id);
        seen[id] = e;
        for (int j = 1; j < id; j++)
            cr_assert_neq(seen[j], e, "MetaRow %d and %d both map to %s", j, id, cmq_error_id(e));
    }
    for (int s = 0; s < CMQ_STATUS_COUNT_; s++) {
        cr_assert_eq(cmq_error_from_meta(s, cmq_MetaRow_META_ROW_DEFAULT), cmq_error_from_status(s));
        cr_assert_eq(cmq_error_from_meta(s, _cmq_MetaRow_MAX + 1), cmq_error_from_status(s));
        cr_assert_eq(cmq_error_from_meta(s, -1), cmq_error_from_status(s));
    }
    /* The names are the table's: spot checks of rows the status alone cannot pick. */
    static const struct {
        int id;
        enum cmq_err e;
    } named[] = {
        {cmq_MetaRow_META_ROW_QUEUE_NOT_EXIST, CMQERR_QUEUE_NOT_EXIST},
        {cmq_MetaRow_META_ROW_TOPIC_NOT_EXIST, CMQERR_TOPIC_NOT_EXIST},
        {cmq_MetaRow_META_ROW_SUBSCRIPTION_NOT_EXIST, CMQERR_SUBSCRIPTION_NOT_EXIST},
        {cmq_MetaRow_META_ROW_TOPIC_EXISTS, CMQERR_TOPIC_EXISTS},
        {cmq_MetaRow_META_ROW_TOPIC_RECREATE_TOO_SOON, CMQERR_TOPIC_RECREATE_TOO_SOON},
        {cmq_MetaRow_META_ROW_BINDING_KEY_TOO_MANY, CMQERR_BINDING_KEY_TOO_MANY},
        {cmq_MetaRow_META_ROW_TOO_MANY_DELIMITERS, CMQERR_TOO_MANY_DELIMITERS},
        {cmq_MetaRow_META_ROW_SECRET_ID_STATUS, CMQERR_SECRET_ID_STATUS},
    };
    for (size_t i = 0; i < sizeof named / sizeof named[0]; i++)
        cr_assert_eq(cmq_error_from_meta(CMQ_EINVAL, named[i].id), named[i].e, "%s",
                     cmq_error_id(named[i].e));
}

Test(cmq_error_message, module_prefix_and_argument)
{
    char buf[256];
    cmq_error_message(CMQERR_QUEUE_NOT_EXIST, NULL, buf, sizeof(buf));
    cr_assert_str_eq(buf, "(10100)queue is not existed, or deleted");
    cmq_error_message(CMQERR_PARAM_RANGE, "delaySeconds", buf, sizeof(buf));
    cr_assert_str_eq(buf, "(10350)parameter delaySeconds value or length is out of range");
    cmq_error_message(CMQERR_BATCH_SIZE, "msgBody", buf, sizeof(buf));
    cr_assert_str_eq(buf, "(10370)msgBody parameter batch size is out of range");
    cmq_error_message(CMQERR_MISSING_PARAM, NULL, buf, sizeof(buf));
    cr_assert_str_eq(buf, "(10390)lacked of required parameter ");
    cmq_error_message(CMQERR_QUEUE_EXISTS, NULL, buf, sizeof(buf));
    cr_assert_str_eq(buf, "queue is already existed, case insensitive");
    /* snprintf-like truncation. */
    size_t full = cmq_error_message(CMQERR_NO_MESSAGE, NULL, buf, 5);
    cr_assert_eq(full, strlen("(10200)no message"));
    cr_assert_str_eq(buf, "(102");
}

Test(cmq_error_status, every_status_has_a_row)
{
    for (int s = 0; s < CMQ_STATUS_COUNT_; s++) {
        enum cmq_err e = cmq_error_from_status(s);
        cr_assert(e >= 0 && e < CMQERR_COUNT_);
        cr_assert_eq(e == CMQERR_OK, s == CMQ_OK, "%s", status_name(s));
    }
    cr_assert_eq(cmq_error_from_status(CMQ_EAUTH), CMQERR_AUTH_FAILED);
    cr_assert_eq(cmq_error_from_status(CMQ_EEMPTY), CMQERR_NO_MESSAGE);
    cr_assert_eq(cmq_error_from_status(CMQ_ESTALE), CMQERR_RECEIPT_HANDLE_INVALID);
    cr_assert_eq(cmq_error_from_status(CMQ_ETIMEDOUT), CMQERR_INTERNAL);
    cr_assert_eq(cmq_error_code(cmq_error_from_status(CMQ_ENOTLEADER)), 6000);
    cr_assert_eq(cmq_error_from_status(-1), CMQERR_INTERNAL);
    cr_assert_eq(cmq_error_from_status(9999), CMQERR_INTERNAL);
}

Test(cmq_error_reply, envelope_bytes)
{
    struct json *j = json_create(1024);
    cr_assert_eq(cmq_error_reply(j, CMQERR_PARAM_TYPE, "delaySeconds", "req-7"), CMQ_OK);
    const char *out;
    size_t len;
    cr_assert_eq(json_finish(j, &out, &len), CMQ_OK);
    cr_assert_str_eq(out, "{\"code\":4000,\"message\":\"(10360)parameter delaySeconds error "
                          "type\",\"requestId\":\"req-7\"}");
    json_reset(j);
    struct cmq_fault f;
    cmq_fault_set(&f, CMQERR_ACTION_NAME_NOT_EXIST, "Bad\"Action\n", CMQ_EUNSUPPORTED);
    cr_assert_eq(cmq_error_reply_fault(j, &f, NULL), CMQ_OK);
    cr_assert_eq(json_finish(j, &out, &len), CMQ_OK);
    cr_assert_str_eq(out, "{\"code\":4000,\"message\":\"(10430)action name Bad\\\"Action\\n is "
                          "not existed\",\"requestId\":\"\"}");
    json_destroy(j);
}

Test(cmq_error_reply, success_envelope_with_more_members)
{
    struct json *j = json_create(1024);
    json_obj_begin(j);
    cmq_error_envelope(j, CMQERR_OK, NULL, "r");
    json_kv_id(j, "msgId", 42);
    json_obj_end(j);
    const char *out;
    size_t len;
    cr_assert_eq(json_finish(j, &out, &len), CMQ_OK);
    cr_assert_str_eq(out, "{\"code\":0,\"message\":\"\",\"requestId\":\"r\",\"msgId\":\"42\"}");
    json_destroy(j);
}

Test(cmq_fault, long_arguments_are_truncated)
{
    char name[200];
    memset(name, 'n', sizeof(name) - 1);
    name[sizeof(name) - 1] = '\0';
    struct cmq_fault f;
    cr_assert_eq(cmq_fault_set(&f, CMQERR_PARAM_RANGE, name, CMQ_EINVAL), CMQ_EINVAL);
    cr_assert_eq(strlen(f.arg), CMQ_FAULT_ARG_MAX + 3);
    cr_assert_str_eq(f.arg + CMQ_FAULT_ARG_MAX, "...");
    cr_assert_eq(cmq_fault_set(NULL, CMQERR_PARAM_RANGE, name, CMQ_ELIMIT), CMQ_ELIMIT);
    cmq_fault_set(&f, CMQERR_INTERNAL, NULL, CMQ_ENOMEM);
    cr_assert_str_eq(f.arg, "");
}

Test(cmq_error_reply, batch_delete_partial_failure)
{
    struct json *j = json_create(1024);
    json_obj_begin(j);
    cmq_error_envelope(j, CMQERR_DELETE_PARTIAL, NULL, "r");
    json_key(j, "errorList");
    json_arr_begin(j);
    cmq_error_item(j, CMQERR_RECEIPT_HANDLE_INVALID, "123", 3);
    cmq_error_item(j, CMQERR_RECEIPT_HANDLE_FORMAT, "x\"y", 3);
    json_arr_end(j);
    json_obj_end(j);
    const char *out;
    size_t len;
    cr_assert_eq(json_finish(j, &out, &len), CMQ_OK);
    cr_assert_str_eq(out, "{\"code\":6010,\"message\":\"(10150)delete message partially failed\","
                          "\"requestId\":\"r\",\"errorList\":[{\"code\":4430,\"message\":"
                          "\"(10260)receipt handle is invalid\",\"receiptHandle\":\"123\"},"
                          "{\"code\":4000,\"message\":\"(10470)receiptHandle error\","
                          "\"receiptHandle\":\"x\\\"y\"}]}");
    json_destroy(j);
}
