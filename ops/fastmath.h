/* fastmath.h — a branch-free float exp that GCC vectorises inside plain
   loops (libm's expf does not), for softmax, SiLU and GELU, which would
   otherwise cost as much as the matmuls around them. Error within about
   1 ulp over [-87, 88] (tests/ops_vexp.c); smaller inputs give about
   1e-38 instead of 0.

   Two roundings of one formula: me_expf multiplies and adds separately,
   so the compiler's loops (GELU) vectorise it on any target; me_expf_fused
   fuses each multiply-add (fmaf), the form ops/vexp.c's explicit AVX2 and
   AVX-512 loops compute (SiLU, softmax), a third fewer operations. */
#ifndef MOEDIT_OPS_FASTMATH_H
#define MOEDIT_OPS_FASTMATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#define ME_MADD_UNFUSED(a, b, c) ((a) * (b) + (c))

#define ME_DEFINE_EXPF(name, MADD)                                                  \
    static inline float name(float x)                                               \
    {                                                                               \
        x = x < -87.0f ? -87.0f : x > 88.0f ? 88.0f : x;                            \
        /* x = n·ln2 + r with |r| <= ln2/2; ln2 split in two so r stays exact.      \
           n rounds through 1.5·2²³ (floorf would block vectorisation). */          \
        float t = MADD(x, 1.44269504088896341f, 12582912.0f), n = t - 12582912.0f; \
        float r = MADD(n, 2.12194440e-4f, MADD(-n, 0.693359375f, x));               \
        float p = 1.9875691500e-4f;                                                 \
        p = MADD(p, r, 1.3981999507e-3f);                                           \
        p = MADD(p, r, 8.3334519073e-3f);                                           \
        p = MADD(p, r, 4.1665795894e-2f);                                           \
        p = MADD(p, r, 1.6666665459e-1f);                                           \
        p = MADD(p, r, 5.0000001201e-1f);                                           \
        p = MADD(p * r, r, r) + 1.0f;                                               \
        /* ×2^n through the exponent bits; n + 127 stays within [1, 254]. n is      \
           read from t's low mantissa bits (t = 1.5·2²³ + n) rather than            \
           converted, so a NaN x gives NaN, not undefined behaviour. */             \
        uint32_t tb;                                                                \
        memcpy(&tb, &t, sizeof tb);                                                 \
        uint32_t bits = (tb - 0x4B400000u + 127u) << 23;                            \
        float scale;                                                                \
        memcpy(&scale, &bits, sizeof scale);                                        \
        return p * scale;                                                           \
    }

ME_DEFINE_EXPF(me_expf, ME_MADD_UNFUSED)
ME_DEFINE_EXPF(me_expf_fused, fmaf)

#endif
