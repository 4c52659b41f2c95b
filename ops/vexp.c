/* AVX2 loops for hosts (or builds) where the compiler leaves me_expf scalar;
   builds for AVX-512 (-march=native there) keep the compiler's own 16-lane
   loops, which match these element for element. */
#include <immintrin.h>
#include "core/cpu.h"
#include "ops/fastmath.h"
#include "ops/vexp.h"

#pragma GCC push_options
#pragma GCC target("avx2")

/* me_expf, eight lanes: the same clamps (NaN passes through, as there), the
   same unfused multiplies and adds, the same exponent-bit scaling. */
static inline __m256 expf8(__m256 x)
{
    x = _mm256_max_ps(_mm256_set1_ps(-87.0f), x);   /* -87 > x ? -87 : x */
    x = _mm256_min_ps(_mm256_set1_ps(88.0f), x);    /* 88 < x ? 88 : x */
    __m256 big = _mm256_set1_ps(12582912.0f);
    __m256 n = _mm256_sub_ps(_mm256_add_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)), big), big);
    __m256 r = _mm256_sub_ps(x, _mm256_mul_ps(n, _mm256_set1_ps(0.693359375f)));
    r = _mm256_add_ps(r, _mm256_mul_ps(n, _mm256_set1_ps(2.12194440e-4f)));
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_add_ps(_mm256_mul_ps(p, r), _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_add_ps(_mm256_add_ps(_mm256_mul_ps(_mm256_mul_ps(p, r), r), r), _mm256_set1_ps(1.0f));
    __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvttps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(bits));
}

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
