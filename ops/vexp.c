/* Vector loops over me_expf, element for element the same bits: AVX2 for
   hosts (or builds) where the compiler leaves me_expf scalar, and SiLU on
   AVX-512 CPUs, where the compiler's own 16-lane loop (-march=native)
   divides once per branch of me_expf's clamps — three vdivps per vector,
   40 % of its samples on the Zen 4 host. The softmax sum keeps the
   compiler's 16-lane loop there. */
#include <immintrin.h>
#include "core/cpu.h"
#include "ops/fastmath.h"
#include "ops/simd512.h"
#include "ops/vexp.h"

/* me_expf on W-bit vectors (expf8: 256, expf16: 512), one body for both:
   the same clamps (NaN passes through, as there), the same unfused
   multiplies and adds, the same exponent-bit scaling. */
#define DEFINE_EXPF(name, W)                                                                                  \
    static inline __m##W name(__m##W x)                                                                       \
    {                                                                                                         \
        x = _mm##W##_max_ps(_mm##W##_set1_ps(-87.0f), x); /* -87 > x ? -87 : x */                            \
        x = _mm##W##_min_ps(_mm##W##_set1_ps(88.0f), x);  /* 88 < x ? 88 : x */                               \
        __m##W big = _mm##W##_set1_ps(12582912.0f);                                                           \
        __m##W n = _mm##W##_sub_ps(                                                                           \
            _mm##W##_add_ps(_mm##W##_mul_ps(x, _mm##W##_set1_ps(1.44269504088896341f)), big), big);           \
        __m##W r = _mm##W##_sub_ps(x, _mm##W##_mul_ps(n, _mm##W##_set1_ps(0.693359375f)));                    \
        r = _mm##W##_add_ps(r, _mm##W##_mul_ps(n, _mm##W##_set1_ps(2.12194440e-4f)));                         \
        __m##W p = _mm##W##_set1_ps(1.9875691500e-4f);                                                        \
        p = _mm##W##_add_ps(_mm##W##_mul_ps(p, r), _mm##W##_set1_ps(1.3981999507e-3f));                       \
        p = _mm##W##_add_ps(_mm##W##_mul_ps(p, r), _mm##W##_set1_ps(8.3334519073e-3f));                       \
        p = _mm##W##_add_ps(_mm##W##_mul_ps(p, r), _mm##W##_set1_ps(4.1665795894e-2f));                       \
        p = _mm##W##_add_ps(_mm##W##_mul_ps(p, r), _mm##W##_set1_ps(1.6666665459e-1f));                       \
        p = _mm##W##_add_ps(_mm##W##_mul_ps(p, r), _mm##W##_set1_ps(5.0000001201e-1f));                       \
        p = _mm##W##_add_ps(_mm##W##_add_ps(_mm##W##_mul_ps(_mm##W##_mul_ps(p, r), r), r),                     \
                            _mm##W##_set1_ps(1.0f));                                                          \
        __m##W##i bits =                                                                                      \
            _mm##W##_slli_epi32(_mm##W##_add_epi32(_mm##W##_cvttps_epi32(n), _mm##W##_set1_epi32(127)), 23);  \
        return _mm##W##_mul_ps(p, _mm##W##_castsi##W##_ps(bits));                                            \
    }

#pragma GCC push_options
#pragma GCC target("avx2")

DEFINE_EXPF(expf8, 256)

static void silu_avx2(size_t n, const float *x, const float *u, float *y)
{
    __m256 one = _mm256_set1_ps(1.0f), sign = _mm256_set1_ps(-0.0f);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        __m256 s = _mm256_div_ps(v, _mm256_add_ps(one, expf8(_mm256_xor_ps(v, sign))));
        if (u) s = _mm256_mul_ps(s, _mm256_loadu_ps(u + i));
        _mm256_storeu_ps(y + i, s);
    }
    for (; i < n; i++) {
        float s = x[i] / (1.0f + me_expf(-x[i]));
        y[i] = u ? s * u[i] : s;
    }
}

static float exp_sub_sum_avx2(int n, float *x, float m)
{
    __m256 mv = _mm256_set1_ps(m), acc = _mm256_setzero_ps();
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 e = expf8(_mm256_sub_ps(_mm256_loadu_ps(x + i), mv));
        _mm256_storeu_ps(x + i, e);
        acc = _mm256_add_ps(acc, e);
    }
    float lane[8], sum = 0.0f;
    _mm256_storeu_ps(lane, acc);
    for (int j = 0; j < 8; j++) sum += lane[j];
    for (; i < n; i++) sum += x[i] = me_expf(x[i] - m);
    return sum;
}

#pragma GCC pop_options

ME_AVX512_BEGIN

DEFINE_EXPF(expf16, 512)

static void silu_avx512(size_t n, const float *x, const float *u, float *y)
{
    __m512 one = _mm512_set1_ps(1.0f);
    __m512i sign = _mm512_set1_epi32((int)0x80000000u);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 v = _mm512_loadu_ps(x + i);
        __m512 neg = _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(v), sign));
        __m512 s = _mm512_div_ps(v, _mm512_add_ps(one, expf16(neg)));
        if (u) s = _mm512_mul_ps(s, _mm512_loadu_ps(u + i));
        _mm512_storeu_ps(y + i, s);
    }
    for (; i < n; i++) {
        float s = x[i] / (1.0f + me_expf(-x[i]));
        y[i] = u ? s * u[i] : s;
    }
}

ME_AVX512_END

/* 1: the AVX2 loops; 0: the compiler's (vectorised by -march with AVX-512,
   or scalar where the CPU has not even AVX2 / MOEDIT_NO_AVX2 is set). */
static int use_avx2(void)
{
#ifdef __AVX512F__
    return 0;
#else
    return me_cpu_isa() != ME_ISA_BLAS && me_cpu_info()->avx2;
#endif
}

void me_silu_vec(size_t n, const float *x, const float *u, float *y)
{
    if (me_cpu_isa() == ME_ISA_AVX512) {
        silu_avx512(n, x, u, y);
        return;
    }
    if (use_avx2()) {
        silu_avx2(n, x, u, y);
        return;
    }
    if (u) {
        #pragma omp simd
        for (size_t i = 0; i < n; i++) y[i] = x[i] / (1.0f + me_expf(-x[i])) * u[i];
    } else {
        #pragma omp simd
        for (size_t i = 0; i < n; i++) y[i] = x[i] / (1.0f + me_expf(-x[i]));
    }
}

float me_exp_sub_sum(int n, float *x, float m)
{
    if (use_avx2()) return exp_sub_sum_avx2(n, x, m);
    float sum = 0.0f;
    #pragma omp simd reduction(+ : sum)
    for (int j = 0; j < n; j++) {
        x[j] = me_expf(x[j] - m);
        sum += x[j];
    }
    return sum;
}
