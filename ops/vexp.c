/* The exponential loops in explicit vectors: AVX2 for hosts (or builds)
   where the compiler leaves a loop over the scalar formula scalar (GELU's
   was, until it came here), AVX-512 where its own 16-lane loop
   (-march=native) divided once per branch of the exp's clamps — three
   vdivps per vector, 40 % of SiLU's samples on the Zen 4 host. Both fuse
   the exp's multiply-adds (me_expf_fused): SiLU was 4 % of a bf16 DiT-MoE
   forward, and the fused form took 0.39 ns per element there against
   0.55. Masked tails run through the same vector code, so every element
   equals the scalar formula's (ops/fastmath.h), whatever its position. */
#include <immintrin.h>
#include <stdint.h>
#include "core/cpu.h"
#include "ops/fastmath.h"
#include "ops/simd512.h"
#include "ops/vexp.h"

/* Vectors whose exponentials run in lockstep (below): the AVX2 ones
   eight, the AVX-512 ones four. */
#define EXP_BATCH_AVX2 8
#define EXP_BATCH_AVX512 4
/* The fixed counts below (four-vector steps, two rows of 32 floats) must
   fit a batch: the lockstep arrays are sized by it. */
_Static_assert(EXP_BATCH_AVX2 >= 8 && EXP_BATCH_AVX512 >= 4, "a fixed exp count exceeds its batch");

/* One Horner step of the exp polynomial, p = p·r + c, on every vector. */
#define EXP_STEP(W, c) \
    for (int q = 0; q < count; q++) p[q] = _mm##W##_fmadd_ps(p[q], r[q], _mm##W##_set1_ps(c));

/* me_expf_fused on W-bit vectors (expf8: 256, expf16: 512), one body for
   both: the same clamps (NaN passes through, as there), the same fused
   steps, the same exponent-bit scaling. v[0..count) in place, count ≤
   batch, each step over every vector before the next: one vector's exp is
   a chain of some 20 dependent operations, and four chains side by side
   keep the FP pipes busy where one left them waiting (Zen 5 core:
   SwiGLU's SiLU·up 0.23 → 0.17 ns per element, the same values). A Zen 2
   core's scheduler holds too few of the waiting operations for four
   chains to cover the latency: eight took SiLU·up from 0.57 to 0.47 ns
   an element and exp from 0.44 to 0.38 (L1-resident rows, 12 and 16 were
   slower again, spilling); AVX-512 hosts keep the four measured there. */
#define DEFINE_EXPF(name, W, batch)                                                                                   \
    static inline __attribute__((always_inline)) void name(int count, __m##W *v)                                      \
    {                                                                                                                 \
        __m##W big = _mm##W##_set1_ps(12582912.0f), n[batch], r[batch], p[batch];                                     \
        for (int q = 0; q < count; q++) /* -87 > x ? -87 : x, then 88 < x ? 88 : x */                                 \
            v[q] = _mm##W##_min_ps(_mm##W##_set1_ps(88.0f), _mm##W##_max_ps(_mm##W##_set1_ps(-87.0f), v[q]));         \
        for (int q = 0; q < count; q++)                                                                               \
            n[q] = _mm##W##_sub_ps(_mm##W##_fmadd_ps(v[q], _mm##W##_set1_ps(1.44269504088896341f), big), big);        \
        for (int q = 0; q < count; q++) r[q] = _mm##W##_fnmadd_ps(n[q], _mm##W##_set1_ps(0.693359375f), v[q]);        \
        for (int q = 0; q < count; q++) r[q] = _mm##W##_fmadd_ps(n[q], _mm##W##_set1_ps(2.12194440e-4f), r[q]);       \
        for (int q = 0; q < count; q++) p[q] = _mm##W##_set1_ps(1.9875691500e-4f);                                    \
        EXP_STEP(W, 1.3981999507e-3f)                                                                                 \
        EXP_STEP(W, 8.3334519073e-3f)                                                                                 \
        EXP_STEP(W, 4.1665795894e-2f)                                                                                 \
        EXP_STEP(W, 1.6666665459e-1f)                                                                                 \
        EXP_STEP(W, 5.0000001201e-1f)                                                                                 \
        for (int q = 0; q < count; q++) {                                                                             \
            p[q] = _mm##W##_fmadd_ps(_mm##W##_mul_ps(p[q], r[q]), r[q], r[q]);                                        \
            p[q] = _mm##W##_add_ps(p[q], _mm##W##_set1_ps(1.0f));                                                     \
        }                                                                                                             \
        for (int q = 0; q < count; q++) {                                                                             \
            __m##W##i e = _mm##W##_add_epi32(_mm##W##_cvttps_epi32(n[q]), _mm##W##_set1_epi32(127));                  \
            v[q] = _mm##W##_mul_ps(p[q], _mm##W##_castsi##W##_ps(_mm##W##_slli_epi32(e, 23)));                        \
        }                                                                                                             \
    }

#pragma GCC push_options
#pragma GCC target("avx2,fma")

DEFINE_EXPF(expf8, 256, EXP_BATCH_AVX2)

/* Lanes [0, n) of 8 set (n < 8): the tail's load and store mask. */
static inline __m256i lanes8(size_t n)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* The exponent of the gate v / (1 + e^arg): SiLU's −v, or tanh-GELU's
   v·(1 + 0.044715v²)·(−2√(2/π)) (me_gelu_tanh_fused). */
static inline __attribute__((always_inline)) __m256 gate_arg8(int gelu, __m256 v)
{
    if (!gelu) return _mm256_xor_ps(v, _mm256_set1_ps(-0.0f));
    __m256 poly = _mm256_fmadd_ps(_mm256_mul_ps(v, v), _mm256_set1_ps(0.044715f), _mm256_set1_ps(1.0f));
    return _mm256_mul_ps(_mm256_mul_ps(v, poly), _mm256_set1_ps(-1.5957691216057308f));
}

/* y = silu(x) (gelu: GELU's tanh form), times u unless u is NULL, on
   `count` whole vectors. */
static inline __attribute__((always_inline)) void gate8(int gelu, int count, const float *x, const float *u, float *y)
{
    __m256 v[EXP_BATCH_AVX2], e[EXP_BATCH_AVX2];
    for (int q = 0; q < count; q++) v[q] = _mm256_loadu_ps(x + 8 * q), e[q] = gate_arg8(gelu, v[q]);
    expf8(count, e);
    for (int q = 0; q < count; q++) {
        __m256 s = _mm256_div_ps(v[q], _mm256_add_ps(_mm256_set1_ps(1.0f), e[q]));
        if (u) s = _mm256_mul_ps(s, _mm256_loadu_ps(u + 8 * q));
        _mm256_storeu_ps(y + 8 * q, s);
    }
}

/* Whole vectors with plain loads and stores, the tail masked (vmaskmovps
   stores are slow on AMD: only the tail pays for them). */
static inline __attribute__((always_inline)) void gate_avx2(int gelu, size_t n, const float *x, const float *u,
                                                           float *y)
{
    size_t i = 0;
    for (; i + 8 * EXP_BATCH_AVX2 <= n; i += 8 * EXP_BATCH_AVX2)
        gate8(gelu, EXP_BATCH_AVX2, x + i, u ? u + i : NULL, y + i);
    for (; i + 32 <= n; i += 32) gate8(gelu, 4, x + i, u ? u + i : NULL, y + i);
    for (; i + 8 <= n; i += 8) gate8(gelu, 1, x + i, u ? u + i : NULL, y + i);
    if (i < n) {
        __m256i m = lanes8(n - i);
        __m256 v = _mm256_maskload_ps(x + i, m), e = gate_arg8(gelu, v);
        expf8(1, &e);
        __m256 s = _mm256_div_ps(v, _mm256_add_ps(_mm256_set1_ps(1.0f), e));
        if (u) s = _mm256_mul_ps(s, _mm256_maskload_ps(u + i, m));
        _mm256_maskstore_ps(y + i, m, s);
    }
}

static void silu_avx2(size_t n, const float *x, const float *u, float *y) { gate_avx2(0, n, x, u, y); }
static void gelu_avx2(size_t n, const float *x, float *y) { gate_avx2(1, n, x, NULL, y); }

/* x = exp(x − m) on `count` whole vectors, added to acc in order. */
static inline __attribute__((always_inline)) __m256 exp_sub8(int count, float *x, __m256 m, __m256 acc)
{
    __m256 e[EXP_BATCH_AVX2];
    for (int q = 0; q < count; q++) e[q] = _mm256_sub_ps(_mm256_loadu_ps(x + 8 * q), m);
    expf8(count, e);
    for (int q = 0; q < count; q++) _mm256_storeu_ps(x + 8 * q, e[q]), acc = _mm256_add_ps(acc, e[q]);
    return acc;
}

static float exp_sub_sum_avx2(int n, float *x, float m)
{
    __m256 mv = _mm256_set1_ps(m), acc = _mm256_setzero_ps();
    int i = 0;
    for (; i + 8 * EXP_BATCH_AVX2 <= n; i += 8 * EXP_BATCH_AVX2) acc = exp_sub8(EXP_BATCH_AVX2, x + i, mv, acc);
    for (; i + 32 <= n; i += 32) acc = exp_sub8(4, x + i, mv, acc);
    for (; i + 8 <= n; i += 8) acc = exp_sub8(1, x + i, mv, acc);
    if (i < n) {   /* masked-off lanes would hold exp(−m): zeroed before the sum */
        __m256i k = lanes8((size_t)(n - i));
        __m256 e = _mm256_sub_ps(_mm256_maskload_ps(x + i, k), mv);
        expf8(1, &e);
        e = _mm256_and_ps(e, _mm256_castsi256_ps(k));
        _mm256_maskstore_ps(x + i, k, e);
        acc = _mm256_add_ps(acc, e);
    }
    float lane[8], sum = 0.0f;
    _mm256_storeu_ps(lane, acc);
    for (int j = 0; j < 8; j++) sum += lane[j];
    return sum;
}

/* A row of 32 is four vectors: two rows' exps in lockstep (the last,
   odd one alone), each column summed in row order. */
static inline __attribute__((always_inline)) void exp_rows32(int rows, float *p, const __m256 mx[4], __m256 acc[4])
{
    __m256 e[EXP_BATCH_AVX2];
    for (int q = 0; q < 4 * rows; q++) e[q] = _mm256_sub_ps(_mm256_loadu_ps(p + 8 * q), mx[q % 4]);
    expf8(4 * rows, e);
    for (int q = 0; q < 4 * rows; q++) _mm256_storeu_ps(p + 8 * q, e[q]), acc[q % 4] = _mm256_add_ps(acc[q % 4], e[q]);
}

static void exp_columns32_avx2(int rows, float *s, float *sums)
{
    __m256 mx[4], acc[4];
    for (int q = 0; q < 4; q++) mx[q] = _mm256_loadu_ps(s + 8 * q), acc[q] = _mm256_setzero_ps();
    for (int r = 1; r < rows; r++)
        for (int q = 0; q < 4; q++) mx[q] = _mm256_max_ps(mx[q], _mm256_loadu_ps(s + (size_t)r * 32 + 8 * q));
    int r = 0;
    for (; r + 2 <= rows; r += 2) exp_rows32(2, s + (size_t)r * 32, mx, acc);
    if (r < rows) exp_rows32(1, s + (size_t)r * 32, mx, acc);
    for (int q = 0; q < 4; q++) _mm256_storeu_ps(sums + 8 * q, acc[q]);
}

#pragma GCC pop_options

ME_AVX512_BEGIN

DEFINE_EXPF(expf16, 512, EXP_BATCH_AVX512)
#undef EXP_STEP
#undef DEFINE_EXPF

static inline __mmask16 lanes16(size_t n)
{
    return (__mmask16)(n >= 16 ? 0xFFFFu : (1u << n) - 1u);
}

/* gate_arg8's exponents on 16 lanes. */
static inline __attribute__((always_inline)) __m512 gate_arg16(int gelu, __m512 v)
{
    if (!gelu) return _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(v), _mm512_set1_epi32((int)0x80000000u)));
    __m512 poly = _mm512_fmadd_ps(_mm512_mul_ps(v, v), _mm512_set1_ps(0.044715f), _mm512_set1_ps(1.0f));
    return _mm512_mul_ps(_mm512_mul_ps(v, poly), _mm512_set1_ps(-1.5957691216057308f));
}

/* y = silu(v) (gelu: GELU's tanh form), times u unless u is NULL, for
   `count` vectors in registers: every lane live but in the last vector,
   whose live lanes are `last`; whole vectors by streaming stores where
   `stream` (y 64-byte aligned). */
static inline __attribute__((always_inline)) void gate16_store(int gelu, int count, const __m512 *v, const float *u,
                                                                float *y, __mmask16 last, int stream)
{
    __m512 e[EXP_BATCH_AVX512];
    for (int q = 0; q < count; q++) e[q] = gate_arg16(gelu, v[q]);
    expf16(count, e);
    for (int q = 0; q < count; q++) {
        __mmask16 m = q + 1 < count ? 0xffff : last;
        __m512 s = _mm512_div_ps(v[q], _mm512_add_ps(_mm512_set1_ps(1.0f), e[q]));
        if (u) s = _mm512_mul_ps(s, _mm512_maskz_loadu_ps(m, u + 16 * q));
        if (stream && m == 0xffff)
            _mm512_stream_ps(y + 16 * q, s);
        else
            _mm512_mask_storeu_ps(y + 16 * q, m, s);
    }
}

static inline __attribute__((always_inline)) void gate16(int gelu, int count, const float *x, const float *u, float *y,
                                                          __mmask16 last)
{
    __m512 v[EXP_BATCH_AVX512];
    for (int q = 0; q < count; q++) v[q] = _mm512_maskz_loadu_ps(q + 1 < count ? 0xffff : last, x + 16 * q);
    gate16_store(gelu, count, v, u, y, last, 0);
}

static inline __attribute__((always_inline)) void gate_avx512(int gelu, size_t n, const float *x, const float *u,
                                                             float *y)
{
    size_t i = 0;
    for (; i + 16 * EXP_BATCH_AVX512 <= n; i += 16 * EXP_BATCH_AVX512)
        gate16(gelu, EXP_BATCH_AVX512, x + i, u ? u + i : NULL, y + i, 0xffff);
    for (; i < n; i += 16) gate16(gelu, 1, x + i, u ? u + i : NULL, y + i, lanes16(n - i));
}

static void silu_avx512(size_t n, const float *x, const float *u, float *y) { gate_avx512(0, n, x, u, y); }
static void gelu_avx512(size_t n, const float *x, float *y) { gate_avx512(1, n, x, NULL, y); }

/* silu(x·scale + shift), the product and the sum rounded one after the other. */
static inline __attribute__((always_inline)) void silu_affine16(int count, const float *x, __m512 scale, __m512 shift,
                                                                 float *y, __mmask16 last, int stream)
{
    __m512 v[EXP_BATCH_AVX512];
    for (int q = 0; q < count; q++)
        v[q] = _mm512_add_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(q + 1 < count ? 0xffff : last, x + 16 * q), scale),
                             shift);
    gate16_store(0, count, v, NULL, y, last, stream);
}

static void silu_affine_avx512(size_t n, const float *x, float scale, float shift, float *y, int stream)
{
    __m512 a = _mm512_set1_ps(scale), b = _mm512_set1_ps(shift);
    stream = stream && ((uintptr_t)y & 63) == 0;
    size_t i = 0;
    for (; i + 16 * EXP_BATCH_AVX512 <= n; i += 16 * EXP_BATCH_AVX512)
        silu_affine16(EXP_BATCH_AVX512, x + i, a, b, y + i, 0xffff, stream);
    for (; i < n; i += 16) silu_affine16(1, x + i, a, b, y + i, lanes16(n - i), stream);
    if (stream) _mm_sfence();   /* streamed lines are weakly ordered: visible before the caller's barrier */
}

/* x = exp(x − m) on `count` vectors, their live lanes (all but the last
   vector's `last`) added to acc in order. */
static inline __attribute__((always_inline)) __m512 exp_sub16(int count, float *x, __m512 m, __m512 acc,
                                                              __mmask16 last)
{
    __m512 e[EXP_BATCH_AVX512];
    for (int q = 0; q < count; q++)
        e[q] = _mm512_sub_ps(_mm512_maskz_loadu_ps(q + 1 < count ? 0xffff : last, x + 16 * q), m);
    expf16(count, e);
    for (int q = 0; q < count; q++) {
        __mmask16 k = q + 1 < count ? 0xffff : last;
        _mm512_mask_storeu_ps(x + 16 * q, k, e[q]);
        acc = _mm512_mask_add_ps(acc, k, acc, e[q]);
    }
    return acc;
}

static float exp_sub_sum_avx512(int n, float *x, float m)
{
    __m512 mv = _mm512_set1_ps(m), acc = _mm512_setzero_ps();
    int i = 0;
    for (; i + 16 * EXP_BATCH_AVX512 <= n; i += 16 * EXP_BATCH_AVX512)
        acc = exp_sub16(EXP_BATCH_AVX512, x + i, mv, acc, 0xffff);
    for (; i < n; i += 16) acc = exp_sub16(1, x + i, mv, acc, lanes16((size_t)(n - i)));
    return _mm512_reduce_add_ps(acc);
}

/* Rows of 32 two at a time: four vectors' exps in lockstep. */
static void exp_columns32_avx512(int rows, float *s, float *sums)
{
    __m512 mx0 = _mm512_loadu_ps(s), mx1 = _mm512_loadu_ps(s + 16);
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    for (int r = 1; r < rows; r++) {
        mx0 = _mm512_max_ps(mx0, _mm512_loadu_ps(s + (size_t)r * 32));
        mx1 = _mm512_max_ps(mx1, _mm512_loadu_ps(s + (size_t)r * 32 + 16));
    }
    for (int r = 0; r < rows; r += 2) {
        int count = r + 1 < rows ? 4 : 2;
        float *p = s + (size_t)r * 32;
        __m512 e[EXP_BATCH_AVX512];
        for (int q = 0; q < count; q++) e[q] = _mm512_sub_ps(_mm512_loadu_ps(p + 16 * q), q % 2 ? mx1 : mx0);
        if (count == 4) expf16(4, e);
        else expf16(2, e);
        for (int q = 0; q < count; q++) {
            _mm512_storeu_ps(p + 16 * q, e[q]);
            if (q % 2) acc1 = _mm512_add_ps(acc1, e[q]);
            else acc0 = _mm512_add_ps(acc0, e[q]);
        }
    }
    _mm512_storeu_ps(sums, acc0);
    _mm512_storeu_ps(sums + 16, acc1);
}

ME_AVX512_END

void me_silu_vec(size_t n, const float *x, const float *u, float *y)
{
    switch (me_cpu_isa()) {
    case ME_ISA_AVX512: silu_avx512(n, x, u, y); return;
    case ME_ISA_AVX2: silu_avx2(n, x, u, y); return;
    default: break;
    }
    for (size_t i = 0; i < n; i++) {
        float s = me_silu_fused(x[i]);
        y[i] = u ? s * u[i] : s;
    }
}

void me_gelu_tanh_vec(size_t n, const float *x, float *y)
{
    switch (me_cpu_isa()) {
    case ME_ISA_AVX512: gelu_avx512(n, x, y); return;
    case ME_ISA_AVX2: gelu_avx2(n, x, y); return;
    default: break;
    }
    for (size_t i = 0; i < n; i++) y[i] = me_gelu_tanh_fused(x[i]);
}

void me_silu_affine_vec(size_t n, const float *x, float scale, float shift, float *y, int stream)
{
    if (me_cpu_isa() == ME_ISA_AVX512) {
        silu_affine_avx512(n, x, scale, shift, y, stream);
        return;
    }
    for (size_t i = 0; i < n; i++) y[i] = x[i] * scale + shift;
    me_silu_vec(n, y, NULL, y);
}

float me_exp_sub_sum(int n, float *x, float m)
{
    switch (me_cpu_isa()) {
    case ME_ISA_AVX512: return exp_sub_sum_avx512(n, x, m);
    case ME_ISA_AVX2: return exp_sub_sum_avx2(n, x, m);
    default: break;
    }
    float sum = 0.0f;
    for (int j = 0; j < n; j++) sum += x[j] = me_expf_fused(x[j] - m);
    return sum;
}

void me_exp_columns32(int rows, float *s, float *sums)
{
    switch (me_cpu_isa()) {
    case ME_ISA_AVX512: exp_columns32_avx512(rows, s, sums); return;
    case ME_ISA_AVX2: exp_columns32_avx2(rows, s, sums); return;
    default: break;
    }
    for (int j = 0; j < 32; j++) {
        float mx = s[j], sum = 0.0f;
        for (int r = 1; r < rows; r++) mx = mx > s[(size_t)r * 32 + j] ? mx : s[(size_t)r * 32 + j];   /* as vmaxps */
        for (int r = 0; r < rows; r++) sum += s[(size_t)r * 32 + j] = me_expf_fused(s[(size_t)r * 32 + j] - mx);
        sums[j] = sum;
    }
}
