/* peak.h — this machine's arithmetic limit, measured: register-only loops
   of independent FMAs (and AVX512-BF16 dot products, and AMX tile products)
   on every thread, so
   benchmarks can state their figures as a share of what the same run could
   reach at best. */
#ifndef MOEDIT_OPS_PEAK_H
#define MOEDIT_OPS_PEAK_H

typedef struct {
    double fp32_gflops;   /* widest FMA the CPU has (AVX-512, AVX2+FMA); 0 without FMA */
    double bf16_gflops;   /* vdpbf16ps, a multiply-add = 2 flops per product; 0 without AVX512-BF16 */
    double amx_gflops;    /* TDPBF16PS on AMX tiles; 0 where bf16 products do not run on AMX (me_cpu_amx) */
    const char *fp32_isa; /* "avx512", "avx2+fma" or "none" */
    int threads;
} me_peak;

/* Best of 40 ~3 ms trials per loop on `threads` threads (≤ 0: me_threads()).
   Takes a few tenths of a second. */
void me_peak_measure(int threads, me_peak *out);

/* The limit a transformer forward is measured against: the fp32 peak, or
   with bf16 weights the peak of the unit their products run on (AMX where
   they run on AMX, else vdpbf16ps, else fp32 where there is no AVX512-BF16). */
double me_peak_forward_limit(const me_peak *p, int bf16);

/* The fp32 loop of me_peak_measure kept running on `threads` threads (≤ 0:
   me_threads()) for at least `seconds`, in slices of ~0.1 s: what the
   loop sustains (gflops: all its flops over all its wall time) beside its
   slowest and fastest slice. The best of short trials that me_peak_measure
   reports can catch a moment the host runs faster than it keeps up.
   Returns the number of slices; 0 (all fields 0) without FMA. */
typedef struct {
    double gflops, slice_min, slice_max, seconds;
    int slices;
} me_peak_sustained;
int me_peak_sustain(int threads, double seconds, me_peak_sustained *out);

#endif
