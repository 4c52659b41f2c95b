/* core.h — what every moedit module shares: error reporting, checked size
   arithmetic, read-only file mappings, float16/bfloat16 conversion, threads.

   Errors: a failing function calls me_fail(code, fmt, ...) and returns its
   result; the message stays in a per-thread buffer that moedit_last_error()
   returns. Messages name the file or tensor first: "x.pt: truncated zip". */
#ifndef MOEDIT_CORE_H
#define MOEDIT_CORE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include "moedit.h"

#if defined(__GNUC__)
#define ME_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define ME_PRINTF(a, b)
#endif

/* Sets the thread's error message and returns code. */
int me_fail(int code, const char *fmt, ...) ME_PRINTF(2, 3);
/* Prefixes the current message with "prefix: " (e.g. a file name). */
int me_fail_prefix(int code, const char *prefix);

/* a*b and a+b for sizes; return 0 and leave *out alone on overflow. */
int me_mul_size(size_t a, size_t b, size_t *out);
int me_add_size(size_t a, size_t b, size_t *out);

/* malloc that reports failure through me_fail; returns NULL then. */
void *me_alloc(size_t bytes);
void *me_calloc(size_t count, size_t size);
/* 64-byte aligned, for kernels; free with me_free_aligned. */
void *me_alloc_aligned(size_t bytes);
void me_free_aligned(void *p);

/* Many 64-byte aligned blocks (a model's packed weights) carved from chunks
   of transparent huge pages (core/memory.c says why), freed all at once:
   zero it to start. */
typedef struct {
    void **chunks;
    int nchunks, cap;
    char *next;        /* free space of the last chunk */
    size_t left;       /* bytes at next */
    size_t total;      /* bytes handed out so far: the next chunk's size follows it */
} me_arena;
void *me_arena_alloc(me_arena *a, size_t bytes);   /* NULL (me_fail) when out of memory */
void me_arena_free(me_arena *a);                   /* every block; a is empty again */
char *me_strdup(const char *s);

/* A whole file, read-only: mmap'ed where possible. */
typedef struct {
    const uint8_t *data;
    size_t size;
    int mapped;   /* 1: munmap on close, 0: free */
} me_file;
int me_file_open(const char *path, me_file *f);
/* Up to cap − 1 bytes of a small file (a /proc or /sys entry) into buf,
   NUL-terminated, with one read and no allocation: the byte count, or -1
   if it cannot be read or is empty. */
int me_read_small_file(const char *path, char *buf, size_t cap);
void me_file_close(me_file *f);

float me_f16_to_f32(uint16_t h);
uint16_t me_f32_to_f16(float f);
/* bfloat16 conversions inline: the packing loops of the bf16 products call
   them per element. Rounding to nearest even, as vcvtne2ps2bf16; NaN stays
   a (quiet) NaN. */
static inline float me_bf16_to_f32(uint16_t b)
{
    uint32_t bits = (uint32_t)b << 16;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}
static inline uint16_t me_f32_to_bf16(float f)
{
    uint32_t bits;
    memcpy(&bits, &f, sizeof bits);
    if ((bits & 0x7fffffff) > 0x7f800000u) return (uint16_t)((bits >> 16) | 0x40);
    bits += 0x7fff + ((bits >> 16) & 1);
    return (uint16_t)(bits >> 16);
}

/* Threads for own kernels (OpenMP) and OpenBLAS: moedit_set_threads'
   count, or less on this thread while a limit is set (an adaptive forward). */
int me_threads(void);
/* moedit_set_threads' count, whatever the limit: buffers sized per thread use it. */
int me_threads_max(void);
/* Caps me_threads() on the calling thread at n (0 lifts the cap); an
   adaptive forward sets it anew each time. */
void me_threads_limit(int n);
/* The same, for the caller's own use, which no forward changes: a host
   thread that runs a model beside others on one thread each. */
void me_threads_cap(int n);

/* The cgroup's limits on this process (core/cgroup.c): whole CPUs of its
   CPU quota, rounded up (0: no quota), and bytes its memory limit leaves
   free (-1: no limit). The _at forms read another /proc/self/cgroup and
   cgroup mount root (tests). */
int me_cgroup_cpus(void);
double me_cgroup_memory_free(void);
int me_cgroup_cpus_at(const char *proc_cgroup, const char *fs_root);
double me_cgroup_memory_free_at(const char *proc_cgroup, const char *fs_root);
/* moedit_set_adaptive_threads' setting. */
int me_threads_adaptive(void);

/* Adaptive thread counts (core/busy.c). */
#define ADAPT_MS 50.0         /* between looks at the machine */
#define ADAPT_CALM_MS 200.0   /* calm this long before threads come back */
typedef struct {
    int cap;              /* threads chosen last (0: none yet) */
    int calm;             /* a look saw more free cores than cap */
    double calm_since;    /* ms, that look's time */
    double checked;       /* ms, the last look */
} me_adapt;
/* Runnable tasks on the machine other than this process's; -1 unreadable. */
int me_others_running(void);
/* Threads for the next forward: me_threads_max(), or the cores the other
   runnable tasks leave free if fewer (at least 1), looked at most every
   ADAPT_MS; all of them when adaptivity is off. */
int me_adapt_threads(me_adapt *s);
/* The decision itself, given a look (others, -1: unknown) on a machine of
   cpus online cores (≤ 0: unknown, taken as max) at now_ms: fewer
   threads at once, more only when looks ADAPT_CALM_MS apart and every look
   between them agree (a long spin beside a busy process costs ~10×, one
   thread too few on an idle machine 2×). */
int me_adapt_step(me_adapt *s, int max, int cpus, int others, double now_ms);

/* How many of the n rows of len floats at x hold a NaN or an infinity; the
   first eight row indices go to list ("0, 3, 7", ", …" after eight). */
int me_non_finite_rows(const float *x, int n, size_t len, char *list, size_t cap);
/* The sampler's check after step `step` (0-based) of `steps` at model time
   t: MOEDIT_OK, or MOEDIT_EINPUT "sample: non-finite values after step k of
   N (t = …) in m of n rows: …" when a row of x [n, len] holds nan or inf. */
int me_check_step_finite(const float *x, int n, size_t len, int step, int steps, double t);

/* Strict UTF-8 (no overlong forms, surrogates or code points past
   U+10FFFF) in s[0, n), and which ASCII control characters may appear:
   none, whitespace (tab, newline, CR, DEL: JSON text) or any. Returns
   ME_UTF8_OK, ME_UTF8_CONTROL (a control character not allowed) or
   ME_UTF8_INVALID, whichever comes first. */
enum { ME_UTF8_NO_CONTROL, ME_UTF8_WHITESPACE, ME_UTF8_ANY_CONTROL };
enum { ME_UTF8_OK, ME_UTF8_CONTROL, ME_UTF8_INVALID };
int me_utf8_check(const uint8_t *s, size_t n, int controls);

/* CRC-32 verification of ZIP entries on read (moedit_set_verify): whether it
   is on for this thread now; me_verify_suspend(1) turns it off for this
   thread until me_verify_suspend(previous), and returns the previous state. */
int me_verify_enabled(void);
int me_verify_suspend(int off);

/* Writes bytes to path atomically: a temporary name in the same folder,
   renamed when complete, removed on failure. A symbolic link's target is
   written in its place, a character device straight; other files that are
   not regular are refused (core/file.c). */
typedef struct {
    void *fp;      /* FILE* */
    char *path;    /* as given, for messages */
    char *dest;    /* what the temporary is renamed to; NULL for a device */
    char *tmp_path;
} me_atomic_file;
int me_atomic_open(me_atomic_file *af, const char *path);
int me_atomic_write(me_atomic_file *af, const void *data, size_t n);
int me_atomic_commit(me_atomic_file *af);   /* fsync-free close + rename */
void me_atomic_abort(me_atomic_file *af);   /* close + remove the temporary */

/* Finds a shipped file: models_rel under the models folders (as
   moedit_model_path searches them), or, with models_rel NULL, data_rel under
   share/moedit (installed) or data/ (source tree). Writes the path to out;
   1 if found, else 0. */
int me_find_shipped(const char *models_rel, const char *data_rel, char *out, size_t size);

/* Bytes of memory available now (/proc/meminfo MemAvailable, else sysinfo;
   a cgroup memory limit lowers it, and so does the environment variable
   MOEDIT_MEMORY_LIMIT=BYTES, a budget less what me_memory_held counts), -1
   when unknown. me_memory_check fails with MOEDIT_EINPUT, "<what> would
   need X GiB, more than the Y GiB of memory available", before an
   allocation of that size is tried. */
double me_memory_available(void);
int me_memory_check(double bytes, const char *what);
/* Bytes held in me_arena blocks and me_alloc_aligned buffers: packed
   weights and activations. */
size_t me_memory_held(void);

/* An output folder that appears complete or not at all. A new folder is
   written under a temporary name (work) and renamed to path by commit; abort
   removes it with its files and subfolders. An existing folder is used as it is (work ==
   path): its files are each written atomically, and it is never removed. */
typedef struct {
    char *path, *tmp;   /* tmp NULL: the folder existed */
    const char *work;   /* where to write the files now */
} me_atomic_dir;
int me_atomic_dir_open(me_atomic_dir *d, const char *path);
int me_atomic_dir_commit(me_atomic_dir *d);
void me_atomic_dir_abort(me_atomic_dir *d);

#endif
