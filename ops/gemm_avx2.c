/* Float32 tile kernels for CPUs with AVX2 and FMA but no AVX-512, compiled
   for those instructions whatever the build's -march, and called only after
   ops/gemm.c has checked the CPU (core/cpu.h).

   A 6×32 tile is two 6×16 halves, one after the other: 12 ymm accumulators,
   two B vectors and a broadcast fill 15 of the 16 ymm registers (the classic
   Haswell shape: 12 FMAs per 2 loads + 6 broadcasts). A half whose columns
   are all past the matrix edge is skipped. */
#include <immintrin.h>
#include "ops/gemm_tile.h"

#pragma GCC push_options
#pragma GCC target("avx2,fma")

#define MR ME_GEMM_MR_AVX2
#define NR ME_GEMM_NR

/* Mask of the first `live` of 8 lanes (live may be ≤ 0 or ≥ 8). */
static inline __m256i lanes(int live)
{
    const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(live), idx);
}

static inline __attribute__((always_inline)) void half_tile(int mr, int kc, const float *a, const float *b,
                                                           int h, const me_tile_out *o)
{
    int live = o->nr - 16 * h;
    if (live <= 0) return;
    b += 16 * h;
    __m256 acc[MR][2];
    #pragma GCC unroll 6
    for (int i = 0; i < mr; i++) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
    for (int k = 0; k < kc; k++, a += MR, b += NR) {
        __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);
        #pragma GCC unroll 6
        for (int i = 0; i < mr; i++) {
            __m256 ai = _mm256_broadcast_ss(a + i);
            acc[i][0] = _mm256_fmadd_ps(ai, b0, acc[i][0]);
            acc[i][1] = _mm256_fmadd_ps(ai, b1, acc[i][1]);
        }
    }
    __m256i m0 = lanes(live), m1 = lanes(live - 8);
    __m256 bias0 = _mm256_setzero_ps(), bias1 = _mm256_setzero_ps();
    if (o->bias) {
        bias0 = _mm256_maskload_ps(o->bias + 16 * h, m0);
        bias1 = _mm256_maskload_ps(o->bias + 16 * h + 8, m1);
    }
    __m256 alpha = _mm256_set1_ps(o->alpha), beta = _mm256_set1_ps(o->beta);
    int full = live >= 16;
    #pragma GCC unroll 6
    for (int i = 0; i < mr; i++) {
        float *c = o->c + (size_t)i * o->ldc + 16 * h;
        __m256 v0 = _mm256_fmadd_ps(alpha, acc[i][0], bias0), v1 = _mm256_fmadd_ps(alpha, acc[i][1], bias1);
        if (full) {
            if (o->beta != 0.0f) {
                v0 = _mm256_fmadd_ps(beta, _mm256_loadu_ps(c), v0);
                v1 = _mm256_fmadd_ps(beta, _mm256_loadu_ps(c + 8), v1);
            }
            _mm256_storeu_ps(c, v0);
            _mm256_storeu_ps(c + 8, v1);
        } else {
            if (o->beta != 0.0f) {
                v0 = _mm256_fmadd_ps(beta, _mm256_maskload_ps(c, m0), v0);
                v1 = _mm256_fmadd_ps(beta, _mm256_maskload_ps(c + 8, m1), v1);
            }
            _mm256_maskstore_ps(c, m0, v0);
            _mm256_maskstore_ps(c + 8, m1, v1);
        }
    }
}

#define TILE(R)                                                                \
    static void tile_##R(int kc, const void *a, const void *b, const me_tile_out *o) \
    {                                                                          \
        half_tile(R, kc, a, b, 0, o);                                          \
        half_tile(R, kc, a, b, 1, o);                                          \
    }
TILE(1) TILE(2) TILE(3) TILE(4) TILE(5) TILE(6)
#undef TILE

#pragma GCC pop_options

const me_tile_fn me_tiles_avx2[MR + 1] = {NULL, tile_1, tile_2, tile_3, tile_4, tile_5, tile_6};
