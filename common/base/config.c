/* config.c: table-driven INI configuration over libinih.
 *
 * libinih calls our reader once per line, so the reader counts lines and the
 * handler knows the line of every key without inih's optional line support.
 */
#include "config.h"

#include "status.h"

#include <errno.h>
#include <ini.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct parse {
    const struct config_key *keys;
    size_t n_keys;
    void *out;
    const char *name;
    char *err;
    int line;
    int failed;
    unsigned char *seen; /* one flag per key: set from the file */
    /* reader state */
    FILE *f;
    const char *text;
};

static void fail(struct parse *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(struct parse *p, const char *fmt, ...)
{
    if (p->failed)
        return; /* keep the first error: later ones are often consequences */
    p->failed = 1;
    int n = snprintf(p->err, CONFIG_ERR_MAX, "%s:%d: ", p->name, p->line);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->err + n, CONFIG_ERR_MAX - (size_t)(n < 0 ? 0 : n), fmt, ap);
    va_end(ap);
}

static int parse_bool(const char *v, int *out)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(v, yes[i]) == 0) { *out = 1; return 0; }
        if (strcasecmp(v, no[i]) == 0) { *out = 0; return 0; }
    }
    return -1;
}

/* Stores text `v` into key `k`; returns NULL or a static description of the problem. */
static const char *store(const struct config_key *k, void *out, const char *v, char *why, size_t why_len)
{
    char *field = (char *)out + k->offset;
    switch (k->type) {
    case CONFIG_STRING:
        if (strlen(v) >= k->size) {
            snprintf(why, why_len, "value is %zu bytes, longer than the maximum %zu",
                     strlen(v), k->size - 1);
            return why;
        }
        memcpy(field, v, strlen(v) + 1);
        return NULL;
    case CONFIG_INT: {
        char *end;
        errno = 0;
        long long x = strtoll(v, &end, 10);
        if (errno || end == v || *end != '\0') {
            snprintf(why, why_len, "'%s' is not an integer", v);
            return why;
        }
        if (x < k->min || x > k->max) {
            snprintf(why, why_len, "%lld is outside the range [%lld, %lld]", x,
                     (long long)k->min, (long long)k->max);
            return why;
        }
        int64_t val = x;
        memcpy(field, &val, sizeof val);
        return NULL;
    }
    case CONFIG_BOOL: {
        int b;
        if (parse_bool(v, &b)) {
            snprintf(why, why_len, "'%s' is not a boolean (true/false)", v);
            return why;
        }
        memcpy(field, &b, sizeof b);
        return NULL;
    }
    }
    return "unknown key type";
}

static int handler(void *user, const char *section, const char *name, const char *value)
{
    struct parse *p = user;
    char full[160];
    if (section[0])
        snprintf(full, sizeof full, "%s.%s", section, name);
    else
        snprintf(full, sizeof full, "%s", name);
    for (size_t i = 0; i < p->n_keys; i++) {
        if (strcmp(p->keys[i].name, full) != 0)
            continue;
        if (p->seen[i]) {
            fail(p, "key '%s': set twice", full);
            return 0;
        }
        p->seen[i] = 1;
        char why[160];
        const char *bad = store(&p->keys[i], p->out, value, why, sizeof why);
        if (bad) {
            fail(p, "key '%s': %s", full, bad);
            return 0;
        }
        return 1;
    }
    fail(p, "unknown key '%s'", full);
    return 0;
}

static char *file_reader(char *str, int num, void *stream)
{
    struct parse *p = stream;
    char *r = fgets(str, num, p->f);
    if (r)
        p->line++;
    return r;
}

static char *text_reader(char *str, int num, void *stream)
{
    struct parse *p = stream;
    if (!*p->text)
        return NULL;
    const char *nl = strchr(p->text, '\n');
    size_t len = nl ? (size_t)(nl - p->text) + 1 : strlen(p->text);
    if (len > (size_t)num - 1)
        len = (size_t)num - 1;
    memcpy(str, p->text, len);
    str[len] = '\0';
    p->text += len;
    p->line++;
    return str;
}

static int set_defaults(struct parse *p)
{
    for (size_t i = 0; i < p->n_keys; i++) {
        const struct config_key *k = &p->keys[i];
        if (!k->def)
            continue;
        char why[160];
        const char *bad = store(k, p->out, k->def, why, sizeof why);
        if (bad) {
            fail(p, "default of key '%s': %s", k->name, bad);
            return CMQ_EINTERNAL;
        }
    }
    return CMQ_OK;
}

static int finish(struct parse *p, int rc)
{
    if (!p->failed && rc > 0) {
        /* inih reports a syntax error (no '=' or an unclosed '[') by line number. */
        p->line = rc;
        fail(p, "syntax error: expected '[section]' or 'key = value'");
    }
    for (size_t i = 0; !p->failed && i < p->n_keys; i++) {
        if (!p->keys[i].def && !p->seen[i]) {
            p->line = 0;
            fail(p, "required key '%s' is missing", p->keys[i].name);
        }
    }
    free(p->seen);
    return p->failed ? CMQ_EINVAL : CMQ_OK;
}

static int begin(struct parse *p, const struct config_key *keys, size_t n_keys, void *out,
                 const char *name, char *err)
{
    memset(p, 0, sizeof *p);
    p->keys = keys;
    p->n_keys = n_keys;
    p->out = out;
    p->name = name;
    p->err = err;
    err[0] = '\0';
    p->seen = calloc(n_keys ? n_keys : 1, 1);
    if (!p->seen)
        return CMQ_ENOMEM;
    return set_defaults(p);
}

int config_load(const struct config_key *keys, size_t n_keys, void *out, const char *path,
                char err[CONFIG_ERR_MAX])
{
    struct parse p;
    int rc = begin(&p, keys, n_keys, out, path ? path : "(defaults)", err);
    if (rc != CMQ_OK) {
        free(p.seen);
        return rc;
    }
    if (!path)
        return finish(&p, 0);
    p.f = fopen(path, "r");
    if (!p.f) {
        int e = errno;
        snprintf(err, CONFIG_ERR_MAX, "%s: cannot open: %s", path, strerror(e));
        free(p.seen);
        return e == ENOENT ? CMQ_ENOTFOUND : CMQ_EINVAL;
    }
    rc = ini_parse_stream(file_reader, &p, handler, &p);
    fclose(p.f);
    return finish(&p, rc);
}

int config_load_string(const struct config_key *keys, size_t n_keys, void *out,
                       const char *text, const char *name, char err[CONFIG_ERR_MAX])
{
    struct parse p;
    int rc = begin(&p, keys, n_keys, out, name, err);
    if (rc != CMQ_OK) {
        free(p.seen);
        return rc;
    }
    p.text = text;
    rc = ini_parse_stream(text_reader, &p, handler, &p);
    return finish(&p, rc);
}

static void print_value(const struct config_key *k, const void *cfg, FILE *f)
{
    const char *field = (const char *)cfg + k->offset;
    int64_t i;
    int b;
    switch (k->type) {
    case CONFIG_STRING: fputs(field, f); break;
    case CONFIG_INT: memcpy(&i, field, sizeof i); fprintf(f, "%lld", (long long)i); break;
    case CONFIG_BOOL: memcpy(&b, field, sizeof b); fputs(b ? "true" : "false", f); break;
    }
}

void config_dump(const struct config_key *keys, size_t n_keys, const void *cfg, FILE *f)
{
    char section[64] = "";
    for (size_t i = 0; i < n_keys; i++) {
        const char *dot = strchr(keys[i].name, '.');
        size_t slen = dot ? (size_t)(dot - keys[i].name) : 0;
        if (slen && (strlen(section) != slen || strncmp(section, keys[i].name, slen) != 0)) {
            snprintf(section, sizeof section, "%.*s", (int)slen, keys[i].name);
            fprintf(f, "%s[%s]\n", i ? "\n" : "", section);
        }
        fprintf(f, "# %s\n%s = ", keys[i].help, dot ? dot + 1 : keys[i].name);
        print_value(&keys[i], cfg, f);
        fputc('\n', f);
    }
}

void config_help(const struct config_key *keys, size_t n_keys, FILE *f)
{
    static const char *const types[] = {"string", "int", "bool"};
    for (size_t i = 0; i < n_keys; i++) {
        const struct config_key *k = &keys[i];
        fprintf(f, "  %-28s %-6s ", k->name, types[k->type]);
        if (k->def)
            fprintf(f, "default=%s", k->def[0] ? k->def : "\"\"");
        else
            fputs("required", f);
        if (k->type == CONFIG_INT)
            fprintf(f, " range=[%lld,%lld]", (long long)k->min, (long long)k->max);
        fprintf(f, "\n      %s\n", k->help);
    }
}
