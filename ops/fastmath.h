/* fastmath.h — a branch-free float exp that GCC vectorises inside plain
   loops (libm's expf does not), for softmax, SiLU and GELU, which would
   otherwise cost as much as the matmuls around them. Relative error about
   2 ulp over [-87, 88]; smaller inputs give about 1e-38 instead of 0. */
#ifndef MOEDIT_OPS_FASTMATH_H
#define MOEDIT_OPS_FASTMATH_H

#include <stdint.h>
#include <string.h>

static inline float me_expf(float x)
{
    x = x < -87.0f ? -87.0f : x > 88.0f ? 88.0f : x;
    /* x = n·ln2 + r with |r| <= ln2/2; ln2 split in two so r stays exact.
       n rounds through 1.5·2²³ (floorf would block vectorisation). */
    float t = x * 1.44269504088896341f + 12582912.0f, n = t - 12582912.0f;
    float r = x - n * 0.693359375f + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
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

#endif
