/* cmqctl_meta.h: cmqctl's metadata subcommands (account, key, acl, nodes,
 * partitions, queue, topic).  See cmqctl_meta.c for the usage text. */
#ifndef CMQ_CMQCTL_META_H
#define CMQ_CMQCTL_META_H

/* argv[0] is the subcommand ("account", ...).  `endpoint` (borrowed) may be
 * NULL: then --endpoint, else $CMQ_METADATA_ENDPOINT, else
 * CMQ_METADATA_ENDPOINT in var/dev/cluster.env, else tcp://127.0.0.1:17100.
 * Returns the exit code: 0 ok, 1 error or no answer, 2 usage. */
int cmqctl_meta_main(int argc, char **argv, const char *endpoint);

#endif
