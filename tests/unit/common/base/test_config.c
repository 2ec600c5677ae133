/* Tests for common/base/config.c: the table drives parsing and validation,
 * and every error names the file, the line and the key. */
#include "config.h"
#include "status.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct cfg {
    char listen[32];
    int64_t port;
    int tls;
    char name[8];
};

static const struct config_key keys[] = {
    CONFIG_STR_KEY("rpc.listen", struct cfg, listen, NULL, "required endpoint"),
    CONFIG_INT_KEY("http.port", struct cfg, port, "8080", 1, 65535, "port"),
    CONFIG_BOOL_KEY("http.tls", struct cfg, tls, "false", "TLS on"),
    CONFIG_STR_KEY("node.name", struct cfg, name, "n1", "short name"),
};
#define NKEYS (sizeof keys / sizeof keys[0])

static int load(const char *text, struct cfg *c, char *err)
{
    memset(c, 0, sizeof *c);
    return config_load_string(keys, NKEYS, c, text, "test.ini", err);
}

Test(config, values_and_defaults)
{
    struct cfg c;
    char err[CONFIG_ERR_MAX];
    cr_assert_eq(load("# comment\n[rpc]\nlisten = tcp://x:1\n\n[http]\ntls = yes\n", &c, err),
                 CMQ_OK, "%s", err);
    cr_assert_str_eq(c.listen, "tcp://x:1");
    cr_assert_eq(c.port, 8080);
    cr_assert_eq(c.tls, 1);
    cr_assert_str_eq(c.name, "n1");
}

Test(config, unknown_key_names_file_line_and_key)
{
    struct cfg c;
    char err[CONFIG_ERR_MAX];
    cr_assert_eq(load("[rpc]\nlisten = a\n[http]\nprot = 80\n", &c, err), CMQ_EINVAL);
    cr_assert_str_eq(err, "test.ini:4: unknown key 'http.prot'");
}

Test(config, out_of_range_int)
{
    struct cfg c;
    char err[CONFIG_ERR_MAX];
    cr_assert_eq(load("[rpc]\nlisten = a\n[http]\nport = 70000\n", &c, err), CMQ_EINVAL);
    cr_assert_str_eq(err, "test.ini:4: key 'http.port': 70000 is outside the range [1, 65535]");
}

Test(config, not_an_int)
{
    struct cfg c;
    char err[CONFIG_ERR_MAX];
    cr_assert_eq(load("[http]\nport = 80x\n[rpc]\nlisten = a\n", &c, err), CMQ_EINVAL);
    cr_assert_str_eq(err, "test.ini:2: key 'http.port': '80x' is not an integer");
}

Test(config, bad_bool)
{
    struct cfg c;
    char err[CONFIG_ERR_MAX];
    cr_assert_eq(load("[rpc]\nlisten = a\n[http]\ntls = maybe\n", &c, err), CMQ_EINVAL);
    cr_assert_str_eq(err, "test.ini:4: key 'http.tls': 'maybe' is not a boolean (true/false)");
}

Test(config, string_too_long)
{
    struct cfg c;
    char err[CONFIG_ERR_MAX];
    cr_assert_eq(load("[rpc]\nlisten = a\n[node]\nname = abcdefghij\n", &c, err), CMQ_EINVAL);
    cr_assert_str_eq(err, "test.ini:4: key 'node.name': value is 10 bytes, longer than the maximum 7");
}

Test(config, missing_required_key)
{
    struct cfg c;
    char err[CONFIG_ERR_MAX];
    cr_assert_eq(load("[http]\nport = 81\n", &c, err), CMQ_EINVAL);
    cr_assert_str_eq(err, "test.ini:0: required key 'rpc.listen' is missing");
}

Test(config, duplicate_key)
{
    struct cfg c;
    char err[CONFIG_ERR_MAX];
    cr_assert_eq(load("[rpc]\nlisten = a\nlisten = b\n", &c, err), CMQ_EINVAL);
    cr_assert_str_eq(err, "test.ini:3: key 'rpc.listen': set twice");
}

Test(config, syntax_error_line)
{
    struct cfg c;
    char err[CONFIG_ERR_MAX];
    cr_assert_eq(load("[rpc]\nlisten = a\nthis line has no equals sign\n", &c, err), CMQ_EINVAL);
    cr_assert_str_eq(err, "test.ini:3: syntax error: expected '[section]' or 'key = value'");
}

Test(config, file_round_trip_through_dump)
{
    char path[] = "/tmp/cmq-config-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    FILE *f = fdopen(fd, "w");
    struct cfg c = {"tcp://dumped:9", 443, 1, "zz"};
    config_dump(keys, NKEYS, &c, f);
    fclose(f);
    struct cfg d;
    char err[CONFIG_ERR_MAX];
    memset(&d, 0, sizeof d);
    cr_assert_eq(config_load(keys, NKEYS, &d, path, err), CMQ_OK, "%s", err);
    cr_assert_str_eq(d.listen, "tcp://dumped:9");
    cr_assert_eq(d.port, 443);
    cr_assert_eq(d.tls, 1);
    cr_assert_str_eq(d.name, "zz");
    unlink(path);
}

Test(config, missing_file)
{
    struct cfg c;
    char err[CONFIG_ERR_MAX];
    cr_assert_eq(config_load(keys, NKEYS, &c, "/nonexistent/cmq.ini", err), CMQ_ENOTFOUND);
    cr_assert(strstr(err, "/nonexistent/cmq.ini: cannot open") == err, "%s", err);
}
