/* fastmath.h — a branch-free float exp, and the SiLU and tanh-GELU
   formulas on it, as scalars: the reference every vector loop in
   ops/vexp.c (AVX2, AVX-512) equals bit for bit, and the loop on CPUs
   without those. Error within about 1 ulp over [-87, 88]
   (tests/ops_vexp.c); smaller inputs give about 1e-38 instead of 0. Each
   multiply-add is fused (fmaf), as the vector loops compute it. */
#ifndef MOEDIT_OPS_FASTMATH_H
#define MOEDIT_OPS_FASTMATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>

static inline float me_expf_fused(float x)
{
    x = x < -87.0f ? -87.0f : x > 88.0f ? 88.0f : x;
    /* x = n·ln2 + r with |r| <= ln2/2; ln2 split in two so r stays exact.
       n rounds through 1.5·2²³, as the vector loops round it. */
    float t = fmaf(x, 1.44269504088896341f, 12582912.0f), n = t - 12582912.0f;
    float r = fmaf(n, 2.12194440e-4f, fmaf(-n, 0.693359375f, x));
    float p = 1.9875691500e-4f;
    p = fmaf(p, r, 1.3981999507e-3f);
    p = fmaf(p, r, 8.3334519073e-3f);
    p = fmaf(p, r, 4.1665795894e-2f);
    p = fmaf(p, r, 1.6666665459e-1f);
    p = fmaf(p, r, 5.0000001201e-1f);
    p = fmaf(p * r, r, r) + 1.0f;
    /* ×2^n through the exponent bits; n + 127 stays within [1, 254]. n is
       read from t's low mantissa bits (t = 1.5·2²³ + n) rather than
       converted, so a NaN x gives NaN, not undefined behaviour. */
    uint32_t tb;
    memcpy(&tb, &t, sizeof tb);
    uint32_t bits = (tb - 0x4B400000u + 127u) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

/* x·σ(x) */
static inline float me_silu_fused(float x) { return x / (1.0f + me_expf_fused(-x)); }

/* GELU, tanh form: 0.5·x·(1 + tanh(u)), u = √(2/π)(x + 0.044715x³),
   as x / (1 + e^{−2u}) (1 + tanh(u) = 2/(1 + e^{−2u})), so the far negative
   tail keeps its relative precision instead of cancelling; −2u as
   x·(1 + 0.044715x²)·(−2√(2/π)). */
static inline float me_gelu_tanh_fused(float x)
{
    float arg = x * fmaf(x * x, 0.044715f, 1.0f) * -1.5957691216057308f;
    return x / (1.0f + me_expf_fused(arg));
}

#endif
