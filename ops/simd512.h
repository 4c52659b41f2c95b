/* simd512.h — the AVX-512 / AVX512-BF16 intrinsics ops/gemm.c's kernels
   and ops/peak.c's loops are written in.

   Normally these are the compiler's own (immintrin.h), compiled for those
   instructions inside ME_AVX512_BEGIN … ME_AVX512_END and called only when
   the CPU has them. A build with -DMOEDIT_EMULATE_AVX512=ON (a test build,
   never a release) takes them from SIMDe (libsimde-dev) instead: the same
   source, each 512-bit operation carried out with the host's AVX2 or
   scalar code, and core/cpu.c then reports an AVX512-BF16 CPU. So the
   AVX-512 tiles, their bf16 twins and the block sizes they get are run and
   checked against the PyTorch fixtures on any AVX2 host, not only where
   the hardware happens to have them (scripts/test.sh runs the suite so).
   Emulated timings mean nothing. */
#ifndef MOEDIT_OPS_SIMD512_H
#define MOEDIT_OPS_SIMD512_H

#ifdef MOEDIT_EMULATE_AVX512

#define SIMDE_ENABLE_NATIVE_ALIASES
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <simde/x86/avx512.h>
#include "core/core.h"

#define ME_AVX512_BEGIN
#define ME_AVX512_END
#define ME_TARGET_AVX512
#define ME_TARGET_AVX512_BF16

/* A subnormal as the instructions take it in and give it out: zero. */
static inline float me_emulated_daz(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7f800000u) == 0) u &= 0x80000000u;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* SIMDe 0.7 has no vcvtne2ps2bf16: 32 floats to 32 bfloat16, b's in the
   low half, a's in the high one, as the instruction does: rounded to
   nearest even, subnormal inputs taken as zero, NaNs kept quiet. */
static inline simde__m512bh me_emulated_cvtne2ps_pbh(simde__m512 a, simde__m512 b)
{
    float in[32];
    uint16_t out[32];
    simde__m512bh r;
    simde_mm512_storeu_ps(in, b);
    simde_mm512_storeu_ps(in + 16, a);
    for (int i = 0; i < 32; i++) out[i] = me_f32_to_bf16(me_emulated_daz(in[i]));
    memcpy(&r, out, sizeof r);
    return r;
}
#define _mm512_cvtne2ps_pbh(a, b) me_emulated_cvtne2ps_pbh(a, b)

/* SIMDe's vdpbf16ps adds each lane's even product first; the instruction
   adds the odd one first, takes subnormal inputs as zero and flushes a
   subnormal result to zero. The same here, lane by lane, so that emulated
   sums carry the hardware's bits. */
static inline float me_emulated_bf16(uint16_t h)
{
    return me_emulated_daz(me_bf16_to_f32(h));
}
static inline simde__m512 me_emulated_dpbf16_ps(simde__m512 src, simde__m512bh a, simde__m512bh b)
{
    float acc[16];
    uint16_t x[32], y[32];
    simde_mm512_storeu_ps(acc, src);
    memcpy(x, &a, sizeof x);
    memcpy(y, &b, sizeof y);
    for (int i = 0; i < 16; i++) {
        acc[i] = me_emulated_daz(acc[i] + me_emulated_bf16(x[2 * i + 1]) * me_emulated_bf16(y[2 * i + 1]));
        acc[i] = me_emulated_daz(acc[i] + me_emulated_bf16(x[2 * i]) * me_emulated_bf16(y[2 * i]));
    }
    return simde_mm512_loadu_ps(acc);
}
#undef _mm512_dpbf16_ps
#define _mm512_dpbf16_ps(src, a, b) me_emulated_dpbf16_ps(src, a, b)

/* Nor the masked loads and stores: element by element, so that, as on the
   hardware, nothing outside the mask is read or written. */
static inline simde__m512 me_emulated_maskz_loadu_ps(simde__mmask16 k, const void *p)
{
    float v[16];
    for (int i = 0; i < 16; i++) v[i] = (k >> i) & 1 ? ((const float *)p)[i] : 0.0f;
    return simde_mm512_loadu_ps(v);
}
static inline simde__m512 me_emulated_mask_loadu_ps(simde__m512 src, simde__mmask16 k, const void *p)
{
    float v[16];
    simde_mm512_storeu_ps(v, src);
    for (int i = 0; i < 16; i++)
        if ((k >> i) & 1) v[i] = ((const float *)p)[i];
    return simde_mm512_loadu_ps(v);
}
static inline void me_emulated_mask_storeu_32(void *p, simde__mmask16 k, const void *lanes)
{
    for (int i = 0; i < 16; i++)
        if ((k >> i) & 1) memcpy((char *)p + 4 * i, (const char *)lanes + 4 * i, 4);
}
static inline void me_emulated_mask_storeu_ps(void *p, simde__mmask16 k, simde__m512 a)
{
    me_emulated_mask_storeu_32(p, k, &a);
}
static inline void me_emulated_mask_storeu_epi32(void *p, simde__mmask16 k, simde__m512i a)
{
    me_emulated_mask_storeu_32(p, k, &a);
}
/* SIMDe 0.7 has no 512-bit gathers: lane by lane, masked lanes unread. */
static inline simde__m512 me_emulated_mask_i32gather_ps(simde__m512 src, simde__mmask16 k, simde__m512i idx,
                                                         const void *base, int scale)
{
    float v[16];
    int32_t at[16];
    simde_mm512_storeu_ps(v, src);
    simde_mm512_storeu_si512(at, idx);
    for (int i = 0; i < 16; i++)
        if ((k >> i) & 1) memcpy(&v[i], (const char *)base + (ptrdiff_t)at[i] * scale, sizeof v[i]);
    return simde_mm512_loadu_ps(v);
}
#define _mm512_mask_i32gather_ps(src, k, idx, base, scale) me_emulated_mask_i32gather_ps(src, k, idx, base, scale)
#define _mm512_maskz_loadu_ps(k, p) me_emulated_maskz_loadu_ps(k, p)
#define _mm512_mask_storeu_ps(p, k, a) me_emulated_mask_storeu_ps(p, k, a)
#define _mm512_mask_storeu_epi32(p, k, a) me_emulated_mask_storeu_epi32(p, k, a)
#define _mm512_mask_loadu_ps(src, k, p) me_emulated_mask_loadu_ps(src, k, p)
/* The AVX-512VL forms on 4 and 8 lanes, the same way. */
static inline simde__m128 me_emulated_maskz_loadu_ps4(simde__mmask8 k, const void *p)
{
    float v[4];
    for (int i = 0; i < 4; i++) v[i] = (k >> i) & 1 ? ((const float *)p)[i] : 0.0f;
    return simde_mm_loadu_ps(v);
}
static inline simde__m256 me_emulated_maskz_loadu_ps8(simde__mmask8 k, const void *p)
{
    float v[8];
    for (int i = 0; i < 8; i++) v[i] = (k >> i) & 1 ? ((const float *)p)[i] : 0.0f;
    return simde_mm256_loadu_ps(v);
}
static inline void me_emulated_mask_storeu_ps4(void *p, simde__mmask8 k, simde__m128 a)
{
    for (int i = 0; i < 4; i++)
        if ((k >> i) & 1) memcpy((char *)p + 4 * i, (const char *)&a + 4 * i, 4);
}
#define _mm_maskz_loadu_ps(k, p) me_emulated_maskz_loadu_ps4(k, p)
#define _mm256_maskz_loadu_ps(k, p) me_emulated_maskz_loadu_ps8(k, p)
#define _mm_mask_storeu_ps(p, k, a) me_emulated_mask_storeu_ps4(p, k, a)

/* Nor these (the compiler's own need AVX-512, which an AVX2 host's build
   lacks, so without them the emulated build compiles only where the
   hardware has AVX-512). valignd: a (high) and b (low) as 32 lanes,
   shifted down by imm lanes, the low 16 kept. */
static inline simde__m512i me_emulated_alignr_epi32(simde__m512i a, simde__m512i b, int imm)
{
    int32_t in[32];
    simde_mm512_storeu_si512(in, b);
    simde_mm512_storeu_si512(in + 16, a);
    return simde_mm512_loadu_si512(in + (imm & 15));
}
/* GCC's sum of the 16 lanes, in its order (halves, quarters, then pairs),
   so emulated sums carry the native build's bits. */
static inline float me_emulated_reduce_add_ps(simde__m512 a)
{
    float v[16], h[8], q[4];
    simde_mm512_storeu_ps(v, a);
    for (int i = 0; i < 8; i++) h[i] = v[i + 8] + v[i];
    for (int i = 0; i < 4; i++) q[i] = h[i + 4] + h[i];
    return (q[0] + q[2]) + (q[1] + q[3]);
}
/* vcvttps2dq: truncated toward zero; NaN and values out of range become
   0x80000000, the instruction's "integer indefinite". */
static inline simde__m512i me_emulated_cvttps_epi32(simde__m512 a)
{
    float v[16];
    int32_t r[16];
    simde_mm512_storeu_ps(v, a);
    for (int i = 0; i < 16; i++) r[i] = v[i] > -2147483904.0f && v[i] < 2147483648.0f ? (int32_t)v[i] : INT32_MIN;
    return simde_mm512_loadu_si512(r);
}
#define _mm512_cvttps_epi32(a) me_emulated_cvttps_epi32(a)
#define _mm512_alignr_epi32(a, b, imm) me_emulated_alignr_epi32(a, b, imm)
#define _mm512_reduce_add_ps(a) me_emulated_reduce_add_ps(a)
#define _mm512_shuffle_f32x4(a, b, imm) simde_mm512_shuffle_f32x4(a, b, imm)
/* vmovntps: a plain aligned store, the same bits without the hint to
   bypass the caches. */
#define _mm512_stream_ps(p, a) simde_mm512_store_ps(p, a)

#else

#include <immintrin.h>

/* Code between these is compiled for AVX-512 (F, BW, VL, BF16) and FMA. */
#ifdef __clang__   /* clang has no GCC target pragmas (the fuzz build) */
#define ME_AVX512_BEGIN \
    _Pragma("clang attribute push(__attribute__((target(\"avx512f,avx512bw,avx512vl,avx512bf16,fma\"))), apply_to = function)")
#define ME_AVX512_END _Pragma("clang attribute pop")
#else
#define ME_AVX512_BEGIN \
    _Pragma("GCC push_options") _Pragma("GCC target(\"avx512f,avx512bw,avx512vl,avx512bf16,fma\")")
#define ME_AVX512_END _Pragma("GCC pop_options")
#endif
/* One function's worth of the same. */
#define ME_TARGET_AVX512 __attribute__((target("avx512f")))
#define ME_TARGET_AVX512_BF16 __attribute__((target("avx512f,avx512bf16")))

#endif
#endif
