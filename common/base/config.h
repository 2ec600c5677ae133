/* config.h: configuration as one table.
 *
 * A service describes every key it accepts in one array of struct config_key
 * (name, type, where it lands in the service's own config struct, default,
 * range, one line of help).  Parsing, validation, defaults, --help and the
 * config dump all come from that table.
 *
 * The file format is INI ("[section]" then "key = value", '#' or ';' starts a
 * comment), parsed by Debian's libinih.  A key is named "section.key" in the
 * table.  An unknown key, a duplicate key, a bad value, or a missing required
 * key is an error naming the file, the line and the key.
 */
#ifndef CMQ_BASE_CONFIG_H
#define CMQ_BASE_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum config_type {
    CONFIG_STRING, /* char[size] inside the struct; longer values are an error */
    CONFIG_INT,    /* int64_t, checked against [min, max] */
    CONFIG_BOOL,   /* int: true/false, yes/no, on/off, 1/0 */
};

struct config_key {
    const char *name;      /* "section.key" */
    enum config_type type;
    size_t offset;         /* offsetof(your_struct, field) */
    size_t size;           /* CONFIG_STRING: sizeof the char array */
    const char *def;       /* default as text; NULL: the key is required */
    int64_t min, max;      /* CONFIG_INT range, inclusive */
    const char *help;      /* one line */
};

#define CONFIG_STR_KEY(name, st, field, def, help) \
    { name, CONFIG_STRING, offsetof(st, field), sizeof(((st *)0)->field), def, 0, 0, help }
#define CONFIG_INT_KEY(name, st, field, def, lo, hi, help) \
    { name, CONFIG_INT, offsetof(st, field), sizeof(int64_t), def, lo, hi, help }
#define CONFIG_BOOL_KEY(name, st, field, def, help) \
    { name, CONFIG_BOOL, offsetof(st, field), sizeof(int), def, 0, 1, help }

#define CONFIG_ERR_MAX 512

/* Fills `out` from the defaults, then from the file at `path` (NULL: defaults
 * only).  Returns CMQ_OK, or CMQ_EINVAL / CMQ_ENOTFOUND with a message in `err`
 * ("path:line: key 'rpc.listen': ..."). */
int config_load(const struct config_key *keys, size_t n_keys, void *out, const char *path,
                char err[CONFIG_ERR_MAX]);

/* Parses INI text held in memory (borrowed); `name` is used in messages.
 * Same contract as config_load. */
int config_load_string(const struct config_key *keys, size_t n_keys, void *out,
                       const char *text, const char *name, char err[CONFIG_ERR_MAX]);

/* Writes every key with its current value as a valid INI file. */
void config_dump(const struct config_key *keys, size_t n_keys, const void *cfg, FILE *f);

/* Writes one line per key: name, type, default, range and help. */
void config_help(const struct config_key *keys, size_t n_keys, FILE *f);

#endif
