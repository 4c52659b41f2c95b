/* Flag parsing and error reporting shared by the subcommands (see cli.h). */
#include <errno.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
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

/* Optimal string alignment distance of a[0..la) and b[0..lb), both under
   NEAREST_MAX characters, by rows of the dynamic programme. */
#define NEAREST_MAX 64
static int edits(const char *a, size_t la, const char *b, size_t lb)
{
    int d[3][NEAREST_MAX + 1];   /* rows i-2, i-1, i, cycled */
    for (size_t j = 0; j <= lb; j++) d[0][j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        int *row = d[i % 3], *up = d[(i - 1) % 3], *up2 = d[(i + 1) % 3];
        row[0] = (int)i;
        for (size_t j = 1; j <= lb; j++) {
            int sub = up[j - 1] + (a[i - 1] != b[j - 1]);
            int best = up[j] + 1 < row[j - 1] + 1 ? up[j] + 1 : row[j - 1] + 1;
            if (sub < best) best = sub;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && up2[j - 2] + 1 < best)
                best = up2[j - 2] + 1;
            row[j] = best;
        }
    }
    return d[la % 3][lb];
}

const char *cli_nearest(const char *typed, size_t len, const char *const *names, int n)
{
    const char *best = NULL;
    int best_d = 3, ties = 0;
    if (len >= NEAREST_MAX) return NULL;
    for (int i = 0; i < n; i++) {
        size_t ln = strlen(names[i]), core = ln - strspn(names[i], "-");
        if (ln >= NEAREST_MAX) continue;
        int dist = edits(typed, len, names[i], ln);
        if (dist == 0 || 3 * (size_t)dist > core || dist > best_d) continue;
        ties = dist == best_d ? ties + 1 : 0;
        best = dist < best_d || !best ? names[i] : best;
        best_d = dist;
    }
    return ties ? NULL : best;
}

int cli_env_threads(const char *cmd, const char *context, int *threads, const char **from)
{
    *threads = 0;
    const char *name = "SLURM_CPUS_PER_TASK", *text = getenv(name);
    if (!text || !*text) name = "OMP_NUM_THREADS", text = getenv(name);
    *from = name;
    if (!text || !*text) return 0;
    /* OMP_NUM_THREADS may list one count per nesting level ("8,2"): the
       first is the one of the outer parallel regions, which moedit's are */
    char first[32] = "";
    size_t len = strcspn(text, ",");
    const int level_list = text[len] == ',' && !strcmp(name, "OMP_NUM_THREADS");
    if (len < sizeof first && (!text[len] || level_list)) {
        memcpy(first, text, len);
        first[len] = 0;
    }
    long long t;
    if (first[0] < '0' || first[0] > '9' || cli_parse_int(first, 1, CLI_MAX_THREADS, &t))
        return cli_usage_error(cmd, "%s%s='%s' is not a thread count in 1..%d (or give --threads)", context, name,
                               text, CLI_MAX_THREADS);
    *threads = (int)t;
    return 0;
}

int cli_threads(const char *cmd, int n)
{
    if (n == INT_MIN) {   /* not given: the count Slurm or OpenMP's variable asks for, as other programs take it */
        const char *from;
        if (cli_env_threads(cmd, "", &n, &from)) return 2;
        if (!n) return 0;
    }
    if (n < 0) return cli_usage_error(cmd, "--threads: %d must be >= 0", n);
    /* libgomp starts every thread with its own stack: tens of thousands
       exhaust the address space or the process limit and it crashes rather
       than failing; no machine this runs on has more hardware threads */
    if (n > CLI_MAX_THREADS) return cli_usage_error(cmd, "--threads: %d is more than %d", n, CLI_MAX_THREADS);
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
       overflow are never a meaningful scale, step or weight */
    if (end == s || *end || !isfinite(v)) return errno == ERANGE ? ERANGE : EINVAL;
    /* a finite ERANGE is an underflow: a subnormal or a 0 that the
       text did not say; neither is a scale or step anyone meant, and
       dividing by one overflows (decode --scaling-factor 1e-38) */
    if (errno == ERANGE) return EDOM;
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
        int e = cli_parse_float(s, &v);
        if (e == EDOM)
            return cli_usage_error(cmd, "%s: '%s' is nearer to zero than a float's smallest normal number %g", f->name,
                                   s, FLT_MIN);
        if (e) return cli_usage_error(cmd, "%s: '%s' is not a finite number", f->name, s);
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
        if (!f || !f->name) {
            const char *names[128];
            int n = 0;
            for (f = flags; f && f->name && n < 128; f++) names[n++] = f->name;
            const char *near = cli_nearest(arg, len, names, n);
            if (near) return cli_usage_error(cmd, "unknown flag '%.*s' (did you mean %s?)", (int)len, arg, near);
            return cli_usage_error(cmd, "unknown flag '%.*s' (see moedit %s --help)", (int)len, arg, cmd);
        }
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

int cli_model_exists(const char *cmd, const char *path)
{
    return access(path, F_OK) ? cli_usage_error(cmd, "--model %s: no such file or folder", path) : 0;
}

/* path's folder ("." for a bare name) into dir, its last name into *base;
   trailing slashes do not count ("d/" is d in .). */
static void split_path(const char *path, char *dir, size_t cap, const char **base)
{
    size_t l = strlen(path);
    while (l > 1 && path[l - 1] == '/') l--;
    size_t b = l;
    while (b && path[b - 1] != '/') b--;
    *base = path + b;
    size_t dl = b > 1 ? b - 1 : b;   /* "/x": the folder is "/" */
    if (!b) snprintf(dir, cap, ".");
    else snprintf(dir, cap, "%.*s", (int)dl, path);
}

/* What two files are compared by: the real folder and the last name. */
static void file_key(const char *path, char *key, size_t cap)
{
    char dir[PATH_MAX], real[PATH_MAX];
    const char *base;
    split_path(path, dir, sizeof dir, &base);
    size_t bl = strlen(base);
    while (bl > 1 && base[bl - 1] == '/') bl--;
    if (realpath(dir, real)) snprintf(key, cap, "%s/%.*s", real, (int)bl, base);
    else snprintf(key, cap, "%s", path);
}

static int same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    int ea = !stat(a, &sa), eb = !stat(b, &sb);
    if (ea && eb) return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
    if (ea != eb) return 0;
    char ka[PATH_MAX + 256], kb[PATH_MAX + 256];
    file_key(a, ka, sizeof ka);
    file_key(b, kb, sizeof kb);
    return !strcmp(ka, kb);
}

int cli_check_files(const char *cmd, const cli_file *f, int n)
{
    for (int i = 0; i < n; i++) {
        if (!f[i].path || f[i].role == CLI_IN) continue;
        if (!*f[i].path) return cli_usage_error(cmd, "%s: an empty path", f[i].flag);
        char dir[PATH_MAX];
        const char *base;
        struct stat st;
        split_path(f[i].path, dir, sizeof dir, &base);
        if (stat(dir, &st)) return cli_usage_error(cmd, "%s %s: %s: %s", f[i].flag, f[i].path, dir, strerror(errno));
        if (!S_ISDIR(st.st_mode)) return cli_usage_error(cmd, "%s %s: %s is not a folder", f[i].flag, f[i].path, dir);
        /* the folder above may exist while the output itself is a
           folder: writing it would fail only at the end, after the work */
        int exists = !stat(f[i].path, &st);
        if (f[i].role == CLI_OUT_DIR && exists && !S_ISDIR(st.st_mode))
            return cli_usage_error(cmd, "%s %s: a file, not a folder", f[i].flag, f[i].path);
        if (f[i].role == CLI_OUT && exists && S_ISDIR(st.st_mode))
            return cli_usage_error(cmd, "%s %s: a folder, not a file", f[i].flag, f[i].path);
        /* written through (me_atomic_open), a link must lead somewhere */
        if (!exists && !lstat(f[i].path, &st) && S_ISLNK(st.st_mode))
            return cli_usage_error(cmd, "%s %s: a symbolic link to a missing file", f[i].flag, f[i].path);
    }
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++)
            if (f[i].path && f[j].path && (f[i].role != CLI_IN || f[j].role != CLI_IN) &&
                same_file(f[i].path, f[j].path))
                return cli_usage_error(cmd, "%s and %s name the same file %s%s", f[i].flag, f[j].flag, f[j].path,
                                       f[i].role == CLI_IN || f[j].role == CLI_IN
                                           ? " (an output would overwrite an input)"
                                           : "");
    return 0;
}
