/* status.c: names for the status enum and the one errno conversion. */
#include "status.h"

#include <errno.h>

static const char *const names[CMQ_STATUS_COUNT_] = {
    [CMQ_OK] = "OK",
    [CMQ_EINVAL] = "EINVAL",
    [CMQ_ENOTFOUND] = "ENOTFOUND",
    [CMQ_EEXIST] = "EEXIST",
    [CMQ_ENOTLEADER] = "ENOTLEADER",
    [CMQ_ETIMEDOUT] = "ETIMEDOUT",
    [CMQ_EUNAVAIL] = "EUNAVAIL",
    [CMQ_ENOMEM] = "ENOMEM",
    [CMQ_EIO] = "EIO",
    [CMQ_ECORRUPT] = "ECORRUPT",
    [CMQ_ETOOBIG] = "ETOOBIG",
    [CMQ_ELIMIT] = "ELIMIT",
    [CMQ_EDENIED] = "EDENIED",
    [CMQ_EAUTH] = "EAUTH",
    [CMQ_ESTALE] = "ESTALE",
    [CMQ_EINTERNAL] = "EINTERNAL",
    [CMQ_ESHUTDOWN] = "ESHUTDOWN",
    [CMQ_EUNSUPPORTED] = "EUNSUPPORTED",
    [CMQ_EEMPTY] = "EEMPTY",
    [CMQ_EBUSY] = "EBUSY",
    [CMQ_ENOSPC] = "ENOSPC",
};

const char *status_name(int status)
{
    if (status < 0 || status >= CMQ_STATUS_COUNT_ || !names[status])
        return "E?";
    return names[status];
}

int status_from_errno(int err)
{
    switch (err) {
    case 0: return CMQ_OK;
    case ENOMEM: return CMQ_ENOMEM;
    case ENOENT: return CMQ_ENOTFOUND;
    case EEXIST: return CMQ_EEXIST;
    case EINVAL: return CMQ_EINVAL;
    case ETIMEDOUT: return CMQ_ETIMEDOUT;
    case EAGAIN: return CMQ_EBUSY;
    case EACCES: case EPERM: return CMQ_EDENIED;
    case EFBIG: case ENAMETOOLONG: case EMSGSIZE: return CMQ_ETOOBIG;
    case ENOSPC: case EDQUOT: return CMQ_ENOSPC;
    default: return CMQ_EIO;
    }
}
