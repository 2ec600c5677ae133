/* action.c: the action table and its case-insensitive lookup; see action.h. */
#include "action.h"

#include <assert.h>
#include <string.h>
#include <strings.h>

#include "params.h"
#include "status.h"

static const char *const names[CMQ_ACTION_COUNT_] = {
    [CMQ_ACTION_NONE] = "",
#define CMQ_ACTION_NAME_(id, name) [CMQ_ACTION_##id] = name,
    CMQ_ACTION_TABLE(CMQ_ACTION_NAME_)
#undef CMQ_ACTION_NAME_
};

enum cmq_action action_lookup(const char *name, size_t len)
{
    /* 25 short names: a linear scan costs less than hashing would. */
    for (int a = CMQ_ACTION_NONE + 1; a < CMQ_ACTION_COUNT_; a++) {
        if (strlen(names[a]) == len && strncasecmp(names[a], name, len) == 0)
            return (enum cmq_action)a;
    }
    return CMQ_ACTION_NONE;
}

const char *action_name(enum cmq_action a)
{
    assert((int)a >= 0 && a < CMQ_ACTION_COUNT_);
    return names[a];
}

int action_from_params(const struct params *p, enum cmq_action *out, struct cmq_fault *fault)
{
    struct param_view v;
    if (!params_find(p, "Action", &v) || v.val_len == 0)
        return cmq_fault_set(fault, CMQERR_MISSING_PARAM, "Action", CMQ_ENOTFOUND);
    /* A value with a NUL byte cannot match: strncasecmp would stop early. */
    enum cmq_action a = memchr(v.val, '\0', v.val_len) ? CMQ_ACTION_NONE
                                                       : action_lookup(v.val, v.val_len);
    if (a == CMQ_ACTION_NONE)
        return cmq_fault_setn(fault, CMQERR_ACTION_NAME_NOT_EXIST, v.val, v.val_len,
                              CMQ_EUNSUPPORTED);
    *out = a;
    return CMQ_OK;
}
