/* The loops keep ACC independent accumulators per thread, more than FMA
   latency × FMA ports on any current x86 core (4 × 2), so the ports, not
   the dependency chains, bound them; every operand lives in registers, so
   no cache or memory level does. vdpbf16ps takes longer than an FMA: on a
   Zen 5 core 12 chains of it reached 418–420 GFLOP/s and 24 chains (like
   the 14×32 tile's 28) 450–452, twice the FMA loop, so the bf16 loop keeps
   ACC_BF16. Each kernel is compiled for its instructions and called only
   when the CPU has them. */
#include <omp.h>
#include <time.h>
#include "core/core.h"
#include "core/cpu.h"
#include "ops/gemm_amx.h"
#include "ops/peak.h"
#include "ops/simd512.h"

#define ACC 12
#define ACC_BF16 24
#define TRIALS 40
#define SLICE_S 0.1   /* me_peak_sustain's slices */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* acc = acc·x + y converges to y/(1-x): no overflow, no subnormals. */
__attribute__((target("avx2,fma"))) static float loop_avx2(long iters)
{
    __m256 acc[ACC], x = _mm256_set1_ps(0.999f), y = _mm256_set1_ps(1e-3f);
    for (int i = 0; i < ACC; i++) acc[i] = _mm256_set1_ps((float)i);
    for (long n = 0; n < iters; n++)
        for (int i = 0; i < ACC; i++) acc[i] = _mm256_fmadd_ps(acc[i], x, y);
    for (int i = 1; i < ACC; i++) acc[0] = _mm256_add_ps(acc[0], acc[i]);
    return _mm256_cvtss_f32(acc[0]);
}

/* The loops' result, only so that the compiler keeps them. */
ME_TARGET_AVX512 static float first_lane(__m512 v)
{
    float lanes[16];
    _mm512_storeu_ps(lanes, v);
    return lanes[0];
}

ME_TARGET_AVX512 static float loop_avx512(long iters)
{
    __m512 acc[ACC], x = _mm512_set1_ps(0.999f), y = _mm512_set1_ps(1e-3f);
    for (int i = 0; i < ACC; i++) acc[i] = _mm512_set1_ps((float)i);
    for (long n = 0; n < iters; n++)
        for (int i = 0; i < ACC; i++) acc[i] = _mm512_fmadd_ps(acc[i], x, y);
    for (int i = 1; i < ACC; i++) acc[0] = _mm512_add_ps(acc[0], acc[i]);
    return first_lane(acc[0]);
}

/* Sums grow by 2·10⁻³ per step: far from overflow over any trial. */
ME_TARGET_AVX512_BF16 static float loop_bf16(long iters)
{
    __m512 acc[ACC_BF16];
    __m512bh x = (__m512bh)_mm512_set1_epi16(0x3a83), y = (__m512bh)_mm512_set1_epi16(0x3f80);
    for (int i = 0; i < ACC_BF16; i++) acc[i] = _mm512_set1_ps((float)i);
    for (long n = 0; n < iters; n++) {
        #pragma GCC unroll 24
        for (int i = 0; i < ACC_BF16; i++) acc[i] = _mm512_dpbf16_ps(acc[i], x, y);
    }
    for (int i = 1; i < ACC_BF16; i++) acc[0] = _mm512_add_ps(acc[0], acc[i]);
    return first_lane(acc[0]);
}

enum { L_AVX2, L_AVX512, L_BF16, L_AMX };

static float run_loop(int which, long iters)
{
    switch (which) {
    case L_AVX2: return loop_avx2(iters);
    case L_AVX512: return loop_avx512(iters);
    case L_BF16: return loop_bf16(iters);
    default: return me_amx_dot_loop(iters);
    }
}

/* Iterations of one loop that take about `seconds` on one thread. */
static long calibrate(int which, double seconds)
{
    volatile float sink = 0;
    long iters = 1000;
    for (;;) {
        double t0 = now_s();
        sink += run_loop(which, iters);
        double dt = now_s() - t0;
        if (dt > 0.02 || iters > (1L << 40)) return (long)(iters * seconds / (dt > 0 ? dt : 1e-6)) + 1;
        iters *= 4;
    }
}

/* Seconds of one trial: every thread runs the loop `iters` times, timed
   from the first barrier to the last. */
static double trial(int which, int threads, long iters)
{
    volatile float sink = 0;
    double t0 = 0, dt = 0;
    #pragma omp parallel num_threads(threads)
    {
        #pragma omp barrier
        #pragma omp master
        t0 = now_s();
        float r = run_loop(which, iters);
        #pragma omp atomic
        sink += r;
        #pragma omp barrier
        #pragma omp master
        dt = now_s() - t0;
    }
    (void)sink;
    return dt;
}

/* GFLOP/s of one loop over all threads: flops per iteration per thread,
   best of TRIALS of ~3 ms each — short enough that some trials run
   unpreempted on a busy machine (a loaded machine can only make a trial
   slower). */
static double measure(int which, int threads, double flops_per_iter)
{
    long iters = calibrate(which, 0.003);
    double best = 0;
    for (int t = 0; t < TRIALS; t++) {
        double g = flops_per_iter * iters * threads / trial(which, threads, iters) * 1e-9;
        if (g > best) best = g;
    }
    return best;
}

double me_peak_forward_limit(const me_peak *p, int bf16)
{
    if (!bf16) return p->fp32_gflops;
    return p->amx_gflops > 0 ? p->amx_gflops : p->bf16_gflops > 0 ? p->bf16_gflops : p->fp32_gflops;
}

/* The widest FMA loop this CPU has and its flops per iteration per
   thread; -1 without FMA. */
static int fp32_loop(const me_cpu *c, double *flops_per_iter)
{
    *flops_per_iter = ACC * (c->avx512 ? 16 : 8) * 2.0;
    return c->avx512 ? L_AVX512 : c->avx2 && c->fma ? L_AVX2 : -1;
}

void me_peak_measure(int threads, me_peak *out)
{
    const me_cpu *c = me_cpu_info();
    if (threads <= 0) threads = me_threads();
    out->threads = threads;
    out->fp32_gflops = out->bf16_gflops = out->amx_gflops = 0;
    double flops_per_iter;
    int which = fp32_loop(c, &flops_per_iter);
    out->fp32_isa = which == L_AVX512 ? "avx512" : which == L_AVX2 ? "avx2+fma" : "none";
    if (which >= 0) out->fp32_gflops = measure(which, threads, flops_per_iter);
    if (c->avx512bf16) out->bf16_gflops = measure(L_BF16, threads, ACC_BF16 * 32 * 2.0);
    if (me_cpu_amx()) out->amx_gflops = measure(L_AMX, threads, 4 * 16 * 16 * 32 * 2.0);
}

int me_peak_sustain(int threads, double seconds, me_peak_sustained *out)
{
    double flops_per_iter;
    int which = fp32_loop(me_cpu_info(), &flops_per_iter);
    *out = (me_peak_sustained){0};
    if (which < 0) return 0;
    if (threads <= 0) threads = me_threads();
    long iters = calibrate(which, SLICE_S);
    double gflop = flops_per_iter * iters * threads * 1e-9, wall = 0;
    out->slice_min = 1e30;
    while (wall < seconds || out->slices == 0) {
        double dt = trial(which, threads, iters), g = gflop / dt;
        wall += dt, out->slices++;
        out->slice_min = g < out->slice_min ? g : out->slice_min;
        out->slice_max = g > out->slice_max ? g : out->slice_max;
    }
    out->gflops = gflop * out->slices / wall;
    out->seconds = wall;
    return out->slices;
}
