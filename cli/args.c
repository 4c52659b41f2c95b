/* Flag parsing and error reporting shared by the subcommands (see cli.h). */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include "cli/cli.h"
#include "moedit.h"

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "moedit %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return 2;
}

int cli_threads(const char *cmd, int n)
{
    if (n == INT_MIN) return 0;
    if (n < 0) return cli_usage_error(cmd, "--threads: %d must be >= 0", n);
    moedit_set_threads(n);
    return 0;
}

double cli_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int cli_has_ext(const char *path, const char *ext)
{
    size_t a = strlen(path), b = strlen(ext);
    return a >= b && !strcasecmp(path + a - b, ext);
}

int cli_fail(int rc)
{
    const char *msg = moedit_last_error();
    fprintf(stderr, "moedit: %s\n", msg && *msg ? msg : "internal error");
    return rc == MOEDIT_EINPUT ? 2 : 1;
}

const char *cli_float_str(float v, char buf[CLI_FLOAT_STR])
{
    for (int digits = 6; digits < 9; digits++) {
        snprintf(buf, CLI_FLOAT_STR, "%.*g", digits, v);
        if (strtof(buf, NULL) == v) return buf;
    }
    snprintf(buf, CLI_FLOAT_STR, "%.9g", v);
    return buf;
}

void cli_usage(const char *cmd, const char *synopsis, const cli_flag *flags)
{
    printf("usage: moedit %s %s\n", cmd, synopsis);
    /* Two spaces at least after the value's name: scripts/man_page.sh splits there. */
    for (const cli_flag *f = flags; f && f->name; f++)
        printf("  %-18s %-14s  %s\n", f->name, f->arg ? f->arg : "", f->help);
}

int cli_parse_int(const char *s, long long lo, long long hi, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (!errno && (v < lo || v > hi)) errno = ERANGE;
    if (errno || end == s || *end) return errno ? errno : EINVAL;
    *out = v;
    return 0;
}

int cli_parse_u64(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    /* strtoull accepts "-1" as 2^64 - 1 */
    if (strchr(s, '-')) return EINVAL;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end) return errno ? errno : EINVAL;
    *out = v;
    return 0;
}

int cli_parse_float(const char *s, float *out)
{
    char *end;
    errno = 0;
    float v = strtof(s, &end);
    /* nan would read as "not given" to callers that use NAN for that; inf and
       overflow (ERANGE) are never a meaningful scale, step or weight */
    if (errno || end == s || *end || !isfinite(v)) return errno ? errno : EINVAL;
    *out = v;
    return 0;
}

static int parse_value(const char *cmd, const cli_flag *f, const char *s)
{
    switch (f->kind) {
    case CLI_STR:
        *(const char **)f->value = s;
        return 0;
    case CLI_INT: {
        long long v;
        if (cli_parse_int(s, -2147483647LL, 2147483647LL, &v))
            return cli_usage_error(cmd, "%s: '%s' is not an integer%s", f->name, s,
                                   errno == ERANGE ? " in the int range" : "");
        *(int *)f->value = (int)v;
        return 0;
    }
    case CLI_U64: {
        uint64_t v;
        if (cli_parse_u64(s, &v)) return cli_usage_error(cmd, "%s: '%s' is not a non-negative 64-bit integer", f->name, s);
        *(uint64_t *)f->value = v;
        return 0;
    }
    case CLI_FLOAT: {
        float v;
        if (cli_parse_float(s, &v)) return cli_usage_error(cmd, "%s: '%s' is not a finite number", f->name, s);
        *(float *)f->value = v;
        return 0;
    }
    case CLI_BOOL:
        *(int *)f->value = 1;
        return 0;
    }
    return 2;
}

int cli_parse(const char *cmd, int argc, char **argv, const cli_flag *flags,
              char **positional, int max_pos, int *npos)
{
    *npos = 0;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (arg[0] != '-' || arg[1] == '\0') {
            if (*npos >= max_pos) return cli_usage_error(cmd, "unexpected argument '%s'", arg);
            positional[(*npos)++] = argv[i];
            continue;
        }
        const char *eq = strchr(arg, '=');
        size_t len = eq ? (size_t)(eq - arg) : strlen(arg);
        const cli_flag *f = flags;
        while (f && f->name && !(strlen(f->name) == len && !strncmp(f->name, arg, len))) f++;
        if (!f || !f->name) return cli_usage_error(cmd, "unknown flag '%.*s' (see moedit %s --help)", (int)len, arg, cmd);
        if (f->kind == CLI_BOOL) {
            if (eq) return cli_usage_error(cmd, "%s takes no value", f->name);
            *(int *)f->value = 1;
            continue;
        }
        const char *val = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
        if (!val) return cli_usage_error(cmd, "%s needs a value", f->name);
        if (parse_value(cmd, f, val)) return 2;
    }
    for (const cli_flag *f = flags; f && f->name; f++)
        if (!strcmp(f->name, "--no-verify") && *(int *)f->value) moedit_set_verify(0);
    return 0;
}

const char *cli_model_path(const char *model)
{
    static char path[4096];
    if (!model) model = "fmnist-moe";
    /* an alias that is not found stays as given: loading it reports where it was looked for */
    return moedit_model_path(model, path, sizeof path) == MOEDIT_OK ? path : model;
}
