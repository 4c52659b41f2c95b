/* Float32 tile kernels for CPUs with AVX2 and FMA but no AVX-512, compiled
   for those instructions whatever the build's -march, and called only after
   ops/gemm.c has checked the CPU (core/cpu.h).

   A 6×32 tile is two 6×16 halves, one after the other: 12 ymm accumulators,
   two B vectors and a broadcast fill 15 of the 16 ymm registers (the classic
   Haswell shape: 12 FMAs per 2 loads + 6 broadcasts). A half whose columns
   are all past the matrix edge is skipped. Tiles of 3–5 rows are the same
   with fewer rows; 1–2 rows take all 32 columns at once (wide_tile). */
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

/* The store's extras (gemm_tile.h): bias plus the row's bias, and the ReLU. */
static inline __m256 with_row_bias(__m256 bias, const me_tile_out *o, int i)
{
    if (!o->row_bias) return bias;
    __m256 r = _mm256_set1_ps(o->row_bias[i]);
    return o->bias ? _mm256_add_ps(bias, r) : r;
}

static inline __m256 relu_if(__m256 v, const me_tile_out *o)
{
    return o->relu ? _mm256_max_ps(_mm256_setzero_ps(), v) : v;   /* v unless 0 > v: NaN and -0 stay */
}

static inline __attribute__((always_inline)) void half_tile(int mr, int kc, const float *a, const float *b,
                                                           int h, const me_tile_out *o)
{
    int live = o->nr - 16 * h;
    if (live <= 0) return;
    b += 16 * h;
    __m256 acc[MR][2];
    #pragma GCC unroll 6
    for (int i = 0; i < mr; i++) {
        acc[i][0] = acc[i][1] = _mm256_setzero_ps();
        /* C's rows are ldc apart, a stride the hardware prefetchers miss:
           fetch them now, a whole k loop before the store needs them. */
        const float *c = o->c + (size_t)i * o->ldc + 16 * h;
        __builtin_prefetch(c, 1, 3);
        __builtin_prefetch(c + 15, 1, 3);
    }
    int pf_n = h == 0 && o->pf ? o->pf_lines : 0;
    #pragma GCC unroll 4
    for (int k = 0; k < kc; k++, a += MR, b += NR) {
        if (k < pf_n) __builtin_prefetch(o->pf + 64 * k, 0, 3);
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
        __m256 v0 = _mm256_fmadd_ps(alpha, acc[i][0], with_row_bias(bias0, o, i));
        __m256 v1 = _mm256_fmadd_ps(alpha, acc[i][1], with_row_bias(bias1, o, i));
        if (full) {
            if (o->beta != 0.0f) {
                v0 = _mm256_fmadd_ps(beta, _mm256_loadu_ps(c), v0);
                v1 = _mm256_fmadd_ps(beta, _mm256_loadu_ps(c + 8), v1);
            }
            _mm256_storeu_ps(c, relu_if(v0, o));
            _mm256_storeu_ps(c + 8, relu_if(v1, o));
        } else {
            if (o->beta != 0.0f) {
                v0 = _mm256_fmadd_ps(beta, _mm256_maskload_ps(c, m0), v0);
                v1 = _mm256_fmadd_ps(beta, _mm256_maskload_ps(c + 8, m1), v1);
            }
            _mm256_maskstore_ps(c, m0, relu_if(v0, o));
            _mm256_maskstore_ps(c + 8, m1, relu_if(v1, o));
        }
    }
}

/* Tiles of 1–2 rows take all 32 columns per k instead (at most 8
   accumulators): per row each k then feeds four independent FMA chains
   instead of two, so the few-row products (adaLN: 2 rows against large
   weights) are not held to one k per FMA latency per half, and B is read
   as whole 128-byte rows, in the order it lies in memory. Every element
   sees the same FMAs in the same order as in half_tile, so a row's bits
   do not depend on the tile it falls in. */
static inline __attribute__((always_inline)) void wide_tile(int mr, int kc, const float *a, const float *b,
                                                           const me_tile_out *o)
{
    __m256 acc[2][4];
    #pragma GCC unroll 2
    for (int i = 0; i < mr; i++) {
        acc[i][0] = acc[i][1] = acc[i][2] = acc[i][3] = _mm256_setzero_ps();
        const float *c = o->c + (size_t)i * o->ldc;
        __builtin_prefetch(c, 1, 3);
        __builtin_prefetch(c + 16, 1, 3);
        __builtin_prefetch(c + 31, 1, 3);
    }
    int pf_n = o->pf ? o->pf_lines : 0;
    #pragma GCC unroll 2
    for (int k = 0; k < kc; k++, a += MR, b += NR) {
        if (k < pf_n) __builtin_prefetch(o->pf + 64 * k, 0, 3);
        __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);
        __m256 b2 = _mm256_load_ps(b + 16), b3 = _mm256_load_ps(b + 24);
        #pragma GCC unroll 2
        for (int i = 0; i < mr; i++) {
            __m256 ai = _mm256_broadcast_ss(a + i);
            acc[i][0] = _mm256_fmadd_ps(ai, b0, acc[i][0]);
            acc[i][1] = _mm256_fmadd_ps(ai, b1, acc[i][1]);
            acc[i][2] = _mm256_fmadd_ps(ai, b2, acc[i][2]);
            acc[i][3] = _mm256_fmadd_ps(ai, b3, acc[i][3]);
        }
    }
    __m256 alpha = _mm256_set1_ps(o->alpha), beta = _mm256_set1_ps(o->beta);
    #pragma GCC unroll 4
    for (int g = 0; g < 4; g++) {
        int live = o->nr - 8 * g;
        if (live <= 0) break;
        __m256i m = lanes(live);
        __m256 bias = o->bias ? _mm256_maskload_ps(o->bias + 8 * g, m) : _mm256_setzero_ps();
        #pragma GCC unroll 2
        for (int i = 0; i < mr; i++) {
            float *c = o->c + (size_t)i * o->ldc + 8 * g;
            __m256 v = _mm256_fmadd_ps(alpha, acc[i][g], with_row_bias(bias, o, i));
            if (o->beta != 0.0f) v = _mm256_fmadd_ps(beta, _mm256_maskload_ps(c, m), v);
            _mm256_maskstore_ps(c, m, relu_if(v, o));
        }
    }
}

#define WIDE(R)                                                                \
    static void tile_##R(int kc, const void *a, const void *b, const me_tile_out *o) \
    {                                                                          \
        wide_tile(R, kc, a, b, o);                                             \
    }
#define TILE(R)                                                                \
    static void tile_##R(int kc, const void *a, const void *b, const me_tile_out *o) \
    {                                                                          \
        half_tile(R, kc, a, b, 0, o);                                          \
        half_tile(R, kc, a, b, 1, o);                                          \
    }
WIDE(1) WIDE(2) TILE(3) TILE(4) TILE(5) TILE(6)
#undef TILE
#undef WIDE

/* An 8×8 block of floats transposed: c[j] holds column j of the rows r. */
static inline __attribute__((always_inline)) void transpose8(const __m256 r[8], __m256 c[8])
{
    __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xee);
    __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xee);
    __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xee);
    __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xee);
    /* column j: rows 0-3 in the low half of one vector, 4-7 in another */
    c[0] = _mm256_permute2f128_ps(u0, u4, 0x20), c[1] = _mm256_permute2f128_ps(u1, u5, 0x20);
    c[2] = _mm256_permute2f128_ps(u2, u6, 0x20), c[3] = _mm256_permute2f128_ps(u3, u7, 0x20);
    c[4] = _mm256_permute2f128_ps(u0, u4, 0x31), c[5] = _mm256_permute2f128_ps(u1, u5, 0x31);
    c[6] = _mm256_permute2f128_ps(u2, u6, 0x31), c[7] = _mm256_permute2f128_ps(u3, u7, 0x31);
}

/* A panel [kc][6] from 6 row pointers (live of them real, the rest zero):
   8 k at a time, the 6 rows (and 2 zero rows) are loaded as an 8×8 block,
   transposed in registers and stored 6 floats per k. */
void me_pack_a_avx2(const float *const *row, int live, int kc, float *d)
{
    int k = 0;
    for (; k + 8 <= kc; k += 8) {
        __m256 r[8], c[8];
        for (int i = 0; i < 8; i++) r[i] = i < live ? _mm256_loadu_ps(row[i] + k) : _mm256_setzero_ps();
        transpose8(r, c);
        for (int j = 0; j < 8; j++) {
            float *o = d + (size_t)(k + j) * MR;
            _mm_storeu_ps(o, _mm256_castps256_ps128(c[j]));
            _mm_storel_pi((__m64 *)(o + 4), _mm256_extractf128_ps(c[j], 1));
        }
    }
    for (; k < kc; k++)
        for (int i = 0; i < MR; i++) d[(size_t)k * MR + i] = i < live ? row[i][k] : 0.0f;
}

/* A panel [kc][6] from `live` columns of a row-major source (row i, k is
   src[k·ld + i]): each k's 6 elements are contiguous there, one masked
   load (never past the live ones) and a 4 + 2 store. */
void me_pack_a_cols_avx2(const float *src, size_t ld, int live, int kc, float *d)
{
    __m256i m = lanes(live);
    for (int k = 0; k < kc; k++, src += ld, d += MR) {
        __m256 v = _mm256_maskload_ps(src, m);
        _mm_storeu_ps(d, _mm256_castps256_ps128(v));
        _mm_storel_pi((__m64 *)(d + 4), _mm256_extractf128_ps(v, 1));
    }
}

/* out[j·ldo + d] = src[d·32 + j] · scale[j]: 8×8 blocks transposed in
   registers, each column scaled by its own factor (the same one multiply
   per element as elementwise); rows past the last whole 8 elementwise. */
void me_transpose32_avx2(const float *src, int rows, int cols, const float *scale, float *out, size_t ldo)
{
    int d = 0;
    for (; d + 8 <= rows; d += 8)
        for (int j0 = 0; j0 < cols; j0 += 8) {
            __m256 r[8], c[8];
            for (int i = 0; i < 8; i++) r[i] = _mm256_loadu_ps(src + (size_t)(d + i) * NR + j0);
            transpose8(r, c);
            for (int j = 0; j < 8 && j0 + j < cols; j++)
                _mm256_storeu_ps(out + (size_t)(j0 + j) * ldo + d, _mm256_mul_ps(c[j], _mm256_set1_ps(scale[j0 + j])));
        }
    for (int j = 0; j < cols; j++)
        for (int dd = d; dd < rows; dd++) out[(size_t)j * ldo + dd] = src[(size_t)dd * NR + j] * scale[j];
}

void me_pack_b_avx2(const float *src, size_t ld, int trans, int k, float *d)
{
    if (!trans) {   /* row segments */
        for (int kk = 0; kk < k; kk++, src += ld, d += NR)
            for (int q = 0; q < NR; q += 8) _mm256_storeu_ps(d + q, _mm256_loadu_ps(src + q));
        return;
    }
    int kk = 0;
    for (; kk + 8 <= k; kk += 8)
        for (int g = 0; g < NR; g += 8) {
            __m256 r[8], c[8];
            for (int i = 0; i < 8; i++) r[i] = _mm256_loadu_ps(src + (size_t)(g + i) * ld + kk);
            transpose8(r, c);
            for (int j = 0; j < 8; j++) _mm256_storeu_ps(d + (size_t)(kk + j) * NR + g, c[j]);
        }
    for (; kk < k; kk++)
        for (int c = 0; c < NR; c++) d[(size_t)kk * NR + c] = src[(size_t)c * ld + kk];
}

#pragma GCC pop_options

const me_tile_fn me_tiles_avx2[MR + 1] = {NULL, tile_1, tile_2, tile_3, tile_4, tile_5, tile_6};
