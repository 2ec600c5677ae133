/* status.h: the one status enum of the project.
 *
 * Every internal function that can fail returns one of these as an int, and
 * every internal reply over ZeroMQ carries one in its envelope (proto/envelope.proto,
 * field `status`).  errno is converted once, at the file and socket wrappers
 * (status_from_errno).  Only the gateway maps a status to a CMQ code and
 * message, in one table (docs/status-codes.md).
 *
 * The numbers are part of the wire format between our own processes: never
 * renumber, only append.
 */
#ifndef CMQ_BASE_STATUS_H
#define CMQ_BASE_STATUS_H

enum cmq_status {
    CMQ_OK = 0,
    CMQ_EINVAL = 1,       /* malformed or out-of-range input */
    CMQ_ENOTFOUND = 2,    /* the named thing does not exist */
    CMQ_EEXIST = 3,       /* the named thing already exists */
    CMQ_ENOTLEADER = 4,   /* ask the leader; the envelope's leader_hint says who */
    CMQ_ETIMEDOUT = 5,    /* no answer within the deadline */
    CMQ_EUNAVAIL = 6,     /* no peer could serve the request right now */
    CMQ_ENOMEM = 7,       /* allocation failed or a memory budget is spent */
    CMQ_EIO = 8,          /* the operating system refused a read, write or fsync */
    CMQ_ECORRUPT = 9,     /* stored or received bytes fail their checksum or framing */
    CMQ_ETOOBIG = 10,     /* a size limit was exceeded */
    CMQ_ELIMIT = 11,      /* a count limit or quota was reached */
    CMQ_EDENIED = 12,     /* authenticated, but not allowed */
    CMQ_EAUTH = 13,       /* authentication failed */
    CMQ_ESTALE = 14,      /* a handle or version that is no longer current */
    CMQ_EINTERNAL = 15,   /* our own bug or an impossible state */
    CMQ_ESHUTDOWN = 16,   /* the service is stopping */
    CMQ_EUNSUPPORTED = 17,/* a request type this peer does not know */
    CMQ_EEMPTY = 18,      /* nothing to return (e.g. no message to receive) */
    CMQ_EBUSY = 19,       /* try again later: a resource is momentarily in use */
    CMQ_ENOSPC = 20,      /* the disk (or the quota) is full: ENOSPC, EDQUOT */
    CMQ_STATUS_COUNT_ = 21
};

/* The symbolic name of a status ("EINVAL"), or "E?" for an unknown number.
 * Returns a static string. */
const char *status_name(int status);

/* Maps an errno value to a status (ENOMEM -> CMQ_ENOMEM, ENOENT -> CMQ_ENOTFOUND,
 * anything unexpected -> CMQ_EIO). */
int status_from_errno(int err);

#endif
