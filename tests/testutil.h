/* testutil.h — helpers shared by the Criterion tests. Header-only and
   static inline, so a test includes it and takes what it uses; failures are
   Criterion assertions that stop the test.

     static char dir[64];
     tu_tmpdir(dir, sizeof dir, "decode");          // /tmp/moedit_decode_XXXXXX
     int st = tu_shell(err, sizeof err, "%s decode --vae %s", MOEDIT_BIN, vae);
     cJSON *cfg = tu_json_file(FIXTURES "/dit/moe.json");
     float *y = tu_npy_f32(FIXTURES "/vae/out.npy", NULL, NULL, &n);
     double ref, e = tu_max_error(got, y, n, &ref);  // max |got - y|, max |y|
     cr_assert_eq(tu_rmtree(dir), 0);

   tu_fnv1a64 / tu_splitmix64 / tu_counter_uniform are the name-keyed counter
   values of tools/vae_reference.py and tools/inception_reference.py, so tests
   can rebuild their inputs and weights instead of storing them. */
#ifndef MOEDIT_TESTUTIL_H
#define MOEDIT_TESTUTIL_H

#include <criterion/criterion.h>
#include <cjson/cJSON.h>
#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "weights/npy.h"

/* ---- files ---------------------------------------------------------------- */

/* A fresh private folder /tmp/moedit_<tag>_XXXXXX into dir. */
static inline void tu_tmpdir(char *dir, size_t cap, const char *tag)
{
    snprintf(dir, cap, "/tmp/moedit_%s_XXXXXX", tag);
    cr_assert_not_null(mkdtemp(dir), "mkdtemp %s", dir);
}

/* Files in dir, not counting dot files. */
static inline int tu_count_files(const char *dir)
{
    DIR *d = opendir(dir);
    cr_assert_not_null(d, "%s", dir);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

/* rm -rf dir; system()'s status, so the caller decides whether it matters. */
static inline int tu_rmtree(const char *dir)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd);
}

/* The whole file, NUL-terminated (malloc'd), its size in *len (may be NULL);
   NULL when it cannot be opened. */
static inline char *tu_slurp(const char *path, size_t *len)
{
    if (len) *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    cr_assert_not_null(b);
    size_t got = fread(b, 1, (size_t)n, f);
    b[got] = 0;
    fclose(f);
    if (len) *len = got;
    return b;
}

/* A file of exactly bytes bytes (malloc'd); shorter or longer fails the test. */
static inline void *tu_read_exact(const char *path, size_t bytes)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "missing fixture %s", path);
    void *v = malloc(bytes + 1);
    cr_assert_not_null(v);
    cr_assert_eq(fread(v, 1, bytes, f), bytes, "%s: short", path);
    cr_assert_eq(fgetc(f), EOF, "%s: longer than expected", path);
    fclose(f);
    return v;
}

/* Writes n bytes to path (created or truncated). */
static inline void tu_write_file(const char *path, const void *bytes, size_t n)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "%s", path);
    cr_assert_eq(fwrite(bytes, 1, n, f), n, "%s", path);
    cr_assert_eq(fclose(f), 0, "%s", path);
}

/* Up to cap - 1 bytes of the file into buf, NUL-terminated ("" if missing). */
static inline void tu_read_text(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "rb");
    size_t n = f ? fread(buf, 1, cap - 1, f) : 0;
    buf[n] = 0;
    if (f) fclose(f);
}

/* dir/name in one of four rotating static buffers (enough for a call's
   arguments). */
static inline const char *tu_join(const char *dir, const char *name)
{
    static char buf[4][1024];
    static int next;
    char *p = buf[next++ % 4];
    snprintf(p, sizeof buf[0], "%s/%s", dir, name);
    return p;
}

static inline int tu_exists(const char *path) { return access(path, F_OK) == 0; }

/* "done N" of a resume state file (fid-sample's, eval's), or -1 when there
   is none. */
static inline long tu_state_done(const char *path)
{
    char *s = tu_slurp(path, NULL);
    const char *p = s ? strstr(s, "\ndone ") : NULL;
    long d = p ? atol(p + 6) : -1;
    free(s);
    return d;
}

/* In dir, runs `bin args` (through sh, stderr to /dev/null) and kills it
   (SIGKILL) once dir/state says at least at_least are done, looking every
   5 ms, at most polls times. Returns the state's count after the kill;
   *killed: whether the kill ended it (rather than its own exit first). */
static inline long tu_kill_when_done(const char *dir, const char *bin, const char *args, const char *state,
                                     long at_least, int polls, int *killed)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, state);
    pid_t pid = fork();
    if (pid == 0) {
        if (chdir(dir) || !freopen("/dev/null", "w", stderr)) _exit(127);
        execl("/bin/sh", "sh", "-c", "exec \"$0\" $1", bin, args, (char *)NULL);
        _exit(127);
    }
    long done = -1;
    for (int i = 0; i < polls && done < at_least; i++) {
        usleep(5000);
        done = tu_state_done(path);
    }
    kill(pid, SIGKILL);
    int st;
    waitpid(pid, &st, 0);
    *killed = WIFSIGNALED(st);
    return tu_state_done(path);
}

/* A shell prefix for a command whose files may not grow past a size:
   "cd DIR && " TU_FILES_BELOW "'BIN' args", with the byte count as its %ld.
   The CLI ignores SIGXFSZ, so a write past it fails (EFBIG) as on a full
   disk. */
#define TU_FILES_BELOW "prlimit --fsize=%ld "

/* The size of path in bytes, which must exist. */
static inline off_t tu_file_size(const char *path)
{
    struct stat st;
    cr_assert_eq(stat(path, &st), 0, "no %s", path);
    return st.st_size;
}

/* The inode of path, which must exist: a file written anew (atomically,
   through a rename) gets another one, one kept keeps it. */
static inline ino_t tu_inode(const char *path)
{
    struct stat st;
    cr_assert_eq(stat(path, &st), 0, "no %s", path);
    return st.st_ino;
}

/* The CLI's error contract: exactly one non-empty line. */
static inline int tu_one_line(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    return n > 1 && s[n - 1] == '\n' && !memchr(s, '\n', n - 1);
}

/* A JSON file, parsed (cJSON_Delete it). */
static inline cJSON *tu_json_file(const char *path)
{
    char *text = tu_slurp(path, NULL);
    cr_assert_not_null(text, "missing %s", path);
    cJSON *j = cJSON_Parse(text);
    free(text);
    cr_assert_not_null(j, "%s: not JSON", path);
    return j;
}

/* ---- processes ------------------------------------------------------------ */

/* Runs the shell command made from fmt; its exit status, -1 after a signal. */
static inline int tu_system(const char *fmt, ...)
{
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* tu_system with the command's stderr captured into err (NUL-terminated). */
static inline int tu_shell(char *err, size_t cap, const char *fmt, ...)
{
    char cmd[8192], path[] = "/tmp/moedit_stderr_XXXXXX";
    int fd = mkstemp(path);
    cr_assert_neq(fd, -1);
    close(fd);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int st = tu_system("%s 2>'%s'", cmd, path);
    tu_read_text(path, err, cap);
    unlink(path);
    return st;
}

/* Runs MOEDIT_BIN with args (NULL-terminated, without the program name),
   stdout and stderr redirected to out_path and err_path (NULL: inherited).
   Returns the exit status; a death by signal fails the test. */
static inline int tu_run(const char *const *args, const char *out_path, const char *err_path)
{
    char *argv[64];
    int n = 0;
    argv[n++] = (char *)MOEDIT_BIN;
    for (int i = 0; args[i]; i++) {
        cr_assert_lt(n, 63, "too many arguments");
        argv[n++] = (char *)args[i];
    }
    argv[n] = NULL;
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        if (out_path) dup2(open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644), 1);
        if (err_path) dup2(open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644), 2);
        execv(MOEDIT_BIN, argv);
        _exit(127);
    }
    int status;
    waitpid(pid, &status, 0);
    cr_assert(WIFEXITED(status), "moedit %s died from signal %d", args[0] ? args[0] : "",
              WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    return WEXITSTATUS(status);
}

/* `moedit cmd args…` (args NULL-terminated) with its stderr kept in
   dir/stderr and read into err; the exit status. */
static inline int tu_run_cmd(const char *cmd, const char *const *args, const char *dir, char *err, size_t cap)
{
    char err_path[1024];
    snprintf(err_path, sizeof err_path, "%s/stderr", dir);
    const char *argv[48] = {cmd};
    int n = 1;
    for (int i = 0; args[i] && n < 47; i++) argv[n++] = args[i];
    argv[n] = NULL;
    int rc = tu_run(argv, NULL, err_path);
    tu_read_text(err_path, err, cap);
    return rc;
}

/* ---- arrays --------------------------------------------------------------- */

/* An .npy of any float dtype as float32 (malloc'd); its rank, shape (up to
   ME_MAX_DIMS) and element count where the pointers are not NULL. */
static inline float *tu_npy_f32(const char *path, int *ndim, int64_t *shape, int64_t *numel)
{
    me_array a;
    cr_assert_eq(me_npy_read(path, &a), MOEDIT_OK, "%s: %s", path, moedit_last_error());
    float *v = malloc(sizeof(float) * (size_t)a.numel + 4);   /* +4: numel 0 */
    cr_assert_not_null(v);
    me_array_to_f32(&a, v);
    if (ndim) *ndim = a.ndim;
    if (shape) memcpy(shape, a.shape, sizeof(int64_t) * (size_t)a.ndim);
    if (numel) *numel = a.numel;
    me_array_free(&a);
    return v;
}

/* An .npy of integers as int64 (malloc'd), its element count in *numel. */
static inline int64_t *tu_npy_i64(const char *path, int64_t *numel)
{
    me_array a;
    cr_assert_eq(me_npy_read(path, &a), MOEDIT_OK, "%s: %s", path, moedit_last_error());
    int64_t *v = malloc(sizeof(int64_t) * (size_t)a.numel + 8);
    cr_assert_not_null(v);
    me_array_to_i64(&a, v);
    if (numel) *numel = a.numel;
    me_array_free(&a);
    return v;
}

/* max |got - want| over n values, and max |want| in *max_ref: tests compare
   the two, a tolerance relative to the size of the whole reference. */
static inline double tu_max_error(const float *got, const float *want, size_t n, double *max_ref)
{
    double err = 0, ref = 0;
    for (size_t i = 0; i < n; i++) {
        err = fmax(err, fabs((double)got[i] - want[i]));
        ref = fmax(ref, fabs(want[i]));
    }
    *max_ref = ref;
    return err;
}

/* The .npy at path against the reference .npy ref (same shape): the
   largest error relative to ref's largest magnitude, asserted <= rel and
   returned. */
static inline double tu_npy_close(const char *path, const char *ref, double rel)
{
    me_array a, b;
    cr_assert_eq(me_npy_read(path, &a), MOEDIT_OK, "%s", moedit_last_error());
    cr_assert_eq(me_npy_read(ref, &b), MOEDIT_OK, "%s", moedit_last_error());
    cr_assert(a.ndim == b.ndim && !memcmp(a.shape, b.shape, sizeof(int64_t) * (size_t)b.ndim), "%s: other shape", ref);
    double scale, err = tu_max_error(a.data, b.data, (size_t)b.numel, &scale);
    cr_assert(err <= rel * scale, "%s: max error %g of max %g", ref, err, scale);
    cr_log_info("%s: max abs error %g, relative to max %g", ref, err, err / scale);
    me_array_free(&a);
    me_array_free(&b);
    return err / scale;
}

/* A checkpoint copied to dir/model.pt (its path into model), where a
   defaults.json (its path into json) can go beside it. */
static inline void tu_model_copy(const char *dir, const char *src, char *model, size_t cap, char *json,
                                 size_t json_cap)
{
    snprintf(model, cap, "%s/model.pt", dir);
    snprintf(json, json_cap, "%s/defaults.json", dir);
    cr_assert_eq(tu_system("cp '%s' '%s'", src, model), 0);
}

/* The bytes of a safetensors file: the header's length (8 bytes, little
   endian), the header, then body zero bytes; malloc'd, *n bytes. */
static inline uint8_t *tu_safetensors(const char *header, size_t body, size_t *n)
{
    size_t h = strlen(header);
    uint8_t *buf = calloc(1, 8 + h + body);
    cr_assert_not_null(buf);
    for (int i = 0; i < 8; i++) buf[i] = (uint8_t)((uint64_t)h >> (8 * i));
    memcpy(buf + 8, header, h);
    *n = 8 + h + body;
    return buf;
}

/* ---- counter values ------------------------------------------------------- */

static inline uint64_t tu_fnv1a64(const char *s)
{
    uint64_t h = 0xCBF29CE484222325ull;
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 0x100000001B3ull;
    return h;
}

static inline uint64_t tu_splitmix64(uint64_t x)
{
    uint64_t z = x + 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Value i of the stream keyed by key (a tu_fnv1a64 hash): uniform in [-1, 1)
   on a 2^-23 grid, as the reference scripts compute it. */
static inline float tu_counter_uniform(uint64_t key, uint64_t i)
{
    return (float)(tu_splitmix64(key + i) >> 40) * (1.0f / 16777216.0f) * 2.0f - 1.0f;
}

#endif
