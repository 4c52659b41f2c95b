/* bench_gemm — float32 products of the shapes moedit's networks run, on
   moedit's kernels (me_gemm, weights packed once as at model load) and on
   OpenBLAS (cblas_sgemm on the same operands, the weight transposed as
   PyTorch stores it), timed in alternating rounds so both see the same machine, and
   set against the FMA peak measured in the same run (before and after the
   products; the larger counts).

     build/bench_gemm [--threads N] [--reps R] [M,N,K ...]

   Without shapes it runs the default list: transformer products (512 and
   4096 tokens, expert and adaLN rows) and convolution products (cout ×
   pixels × 9·cin). Prints the host line, the peak and a markdown table. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cblas.h>
#include "core/core.h"
#include "core/cpu.h"
#include "ops/gemm.h"
#include "ops/peak.h"

typedef struct {
    int m, n, k;
    const char *what;
} shape;

static const shape defaults[] = {
    {512, 1152, 384, "S/2 qkv, 2×256 tokens"},       {512, 384, 384, "S/2 attn out"},
    {512, 1536, 384, "S/2 fc1"},                     {512, 384, 1536, "S/2 fc2"},
    {4096, 1536, 384, "S/2 fc1, 16×256 tokens"},     {4096, 384, 1536, "S/2 fc2, 16×256 tokens"},
    {512, 2304, 768, "B/2 qkv"},                     {512, 3072, 768, "B/2 fc1"},
    {512, 768, 3072, "B/2 fc2"},                     {128, 1536, 384, "S/2 expert fc1 (128 rows)"},
    {128, 768, 3072, "B/2 expert fc2 (128 rows)"},   {2, 2304, 384, "S/2 adaLN, batch 2"},
    {16, 4608, 768, "B/2 adaLN, batch 16"},          {512, 1024, 4608, "conv 512→512 3×3, 32² pixels"},
    {256, 4096, 2304, "conv 256→256 3×3, 64² pixels"}, {128, 16384, 1152, "conv 128→128 3×3, 128² pixels"},
};

static double clock_s(clockid_t which)
{
    struct timespec t;
    clock_gettime(which, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

static double now_s(void) { return clock_s(CLOCK_MONOTONIC); }

static float *filled(size_t len, unsigned seed)
{
    float *p = me_alloc_aligned(len * sizeof *p);
    if (!p) return NULL;
    for (size_t i = 0; i < len; i++) {
        seed = seed * 1664525u + 1013904223u;
        p[i] = (float)(seed >> 8) * 0x1.0p-24f - 0.5f;
    }
    return p;
}

/* Idle threads of either library spin a while before they sleep (libgomp
   at its barriers, OpenBLAS's pthreads for up to ~0.1 s) and would take a
   core from the other side: each switch waits them out. */
static void settle(void)
{
    struct timespec t = {0, 200000000};
    nanosleep(&t, NULL);
}

/* Best of 2·`reps` samples per side, each sample enough calls for ≥ 20 ms,
   in two rounds of moedit then OpenBLAS, so both see the machine's
   moods. GFLOP/s into out[0] (moedit) and out[1] (OpenBLAS), and per
   thread-second of CPU time into out[2] and out[3]: while other processes
   take the cores, wall time measures the machine's load, CPU time still
   roughly the work (waiting threads that spin count as working; on a
   loaded VM the guest's CPU clocks can undercount, so on several threads
   it is only indicative); -1 on allocation failure. */
static int run_shape(const shape *s, int reps, int threads, double out[4])
{
    int m = s->m, n = s->n, k = s->k;
    float *a = filled((size_t)m * k, 1), *w = filled((size_t)n * k, 2);
    float *c = me_alloc_aligned((size_t)m * n * sizeof *c);
    void *mem = me_alloc_aligned(me_gemm_b_bytes(k, n, 0));
    if (!a || !w || !c || !mem) {
        me_free_aligned(a), me_free_aligned(w), me_free_aligned(c), me_free_aligned(mem);
        return -1;
    }
    me_gemm_b b;
    me_gemm_b_init(&b, mem, k, n, 0);
    me_gemm_pack_b(&b, 0, n, 1, ME_GEMM_F32, w, k);
    double flops = 2.0 * m * n * k, best[2] = {1e30, 1e30}, cpu[2] = {1e30, 1e30};
    int calls = 1;   /* per sample: doubled until one takes ≥ 20 ms */
    for (double t = 0; t < 0.02 && calls < (1 << 24); calls *= 2) {
        t = now_s();
        for (int i = 0; i < calls; i++) me_gemm(m, a, k, &b, 1.0f, NULL, 0.0f, c, n);
        t = now_s() - t;
    }
    for (int round = 0; round < 2; round++)
        for (int side = 0; side < 2; side++) {
            settle();
            for (int r = 0; r <= reps; r++) {
                double t = now_s(), u = clock_s(CLOCK_PROCESS_CPUTIME_ID);
                for (int i = 0; i < calls; i++) {
                    if (side == 0) me_gemm(m, a, k, &b, 1.0f, NULL, 0.0f, c, n);
                    else cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f, a, k, w, k, 0.0f, c, n);
                }
                t = (now_s() - t) / calls, u = (clock_s(CLOCK_PROCESS_CPUTIME_ID) - u) / calls / threads;
                if (r > 0 && t < best[side]) best[side] = t;   /* sample 0 warms up */
                if (r > 0 && u < cpu[side]) cpu[side] = u;
            }
        }
    out[0] = flops / best[0] * 1e-9, out[1] = flops / best[1] * 1e-9;
    out[2] = flops / cpu[0] * 1e-9, out[3] = flops / cpu[1] * 1e-9;
    me_free_aligned(a), me_free_aligned(w), me_free_aligned(c), me_free_aligned(mem);
    return 0;
}

static int usage(void)
{
    fprintf(stderr, "usage: bench_gemm [--threads N] [--reps R] [M,N,K ...]\n");
    return 2;
}

int main(int argc, char **argv)
{
    int threads = 0, reps = 5, nshapes = 0;
    shape *shapes = calloc((size_t)argc + 1, sizeof *shapes);
    if (!shapes) return 1;
    for (int i = 1; i < argc; i++) {
        if ((!strcmp(argv[i], "--threads") || !strcmp(argv[i], "--reps")) && i + 1 < argc) {
            int v = atoi(argv[++i]);
            if (v < 1 || v > 1024) return free(shapes), usage();
            *(!strcmp(argv[i - 1], "--threads") ? &threads : &reps) = v;
        } else {
            shape *s = &shapes[nshapes++];
            char tail;
            if (sscanf(argv[i], "%d,%d,%d%c", &s->m, &s->n, &s->k, &tail) != 3 || s->m < 1 || s->n < 1 || s->k < 1 ||
                (double)s->m * s->n > 1e9 || (double)s->m * s->k > 1e9 || (double)s->n * s->k > 1e9)
                return free(shapes), usage();
            s->what = "";
        }
    }
    if (threads) moedit_set_threads(threads);
    openblas_set_num_threads(me_threads());
    const shape *list = nshapes ? shapes : defaults;
    int count = nshapes ? nshapes : (int)(sizeof defaults / sizeof *defaults);

    me_peak before, after;
    me_peak_measure(0, &before);
    double (*gf)[4] = calloc((size_t)count, sizeof *gf);
    for (int i = 0; gf && i < count; i++)
        if (run_shape(&list[i], reps, me_threads(), gf[i])) {
            fprintf(stderr, "bench_gemm: out of memory for %d,%d,%d\n", list[i].m, list[i].n, list[i].k);
            free(gf), gf = NULL;
        }
    if (!gf) {
        free(shapes);
        return 1;
    }
    me_peak_measure(0, &after);
    double peak = before.fp32_gflops > after.fp32_gflops ? before.fp32_gflops : after.fp32_gflops;

    const me_cpu *cpu = me_cpu_info();
    printf("cpu: %s (%s family %d model %d stepping %d), L1d %ld KB, L2 %ld KB, L3 %ld MB; kernels %s\n",
           cpu->brand[0] ? cpu->brand : "unknown", cpu->vendor, cpu->family, cpu->model, cpu->stepping,
           cpu->l1d >> 10, cpu->l2 >> 10, cpu->l3 >> 20, me_cpu_isa_name(me_cpu_isa()));
    printf("peak_fp32_gflops: %.1f (%s FMA loop, %d threads; %.1f before the products, %.1f after)\n", peak,
           before.fp32_isa, before.threads, before.fp32_gflops, after.fp32_gflops);
    printf("\n| shape m×n×k | product | moedit GFLOP/s | OpenBLAS GFLOP/s | moedit %% of peak | OpenBLAS %% of peak | "
           "moedit / OpenBLAS | per CPU-second: moedit / OpenBLAS GFLOP/s |\n");
    printf("|---|---|---|---|---|---|---|---|\n");
    for (int i = 0; i < count; i++)
        printf("| %d×%d×%d | %s | %.1f | %.1f | %.1f%% | %.1f%% | %.2f× | %.1f / %.1f |\n", list[i].m, list[i].n,
               list[i].k, list[i].what, gf[i][0], gf[i][1], 100 * gf[i][0] / peak, 100 * gf[i][1] / peak,
               gf[i][0] / gf[i][1], gf[i][2], gf[i][3]);
    free(gf);
    free(shapes);
    return 0;
}
