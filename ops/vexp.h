/* vexp.h — exponential loops in explicit vectors, chosen at run time
   (ops/vexp.c): SiLU, tanh-GELU and softmax's exp, along rows or down
   columns. Every element equals the scalar formula of ops/fastmath.h
   (me_expf_fused and the SiLU and GELU on it) bit for bit, on AVX-512,
   AVX2 and the scalar fallback alike. */
#ifndef MOEDIT_OPS_VEXP_H
#define MOEDIT_OPS_VEXP_H

#include <stddef.h>

/* y[i] = x[i]·σ(x[i]) (σ through me_expf_fused), times u[i] when u is not
   NULL (SwiGLU's gate). y may be x. */
void me_silu_vec(size_t n, const float *x, const float *u, float *y);
/* y[i] = me_gelu_tanh_fused(x[i]): GELU's tanh form. y may be x. */
void me_gelu_tanh_vec(size_t n, const float *x, float *y);
/* y[i] = silu(x[i]·scale + shift), the product and the sum rounded one
   after the other (as two float32 steps and me_silu_vec): GroupNorm's
   affine map and SiLU in one pass. stream: y goes past the caches in
   whole aligned vectors (for a tensor larger than they are, whose next
   reader takes it from memory anyway: a plain store first reads each line
   it writes). y may be x. */
void me_silu_affine_vec(size_t n, const float *x, float scale, float shift, float *y, int stream);
/* x[i] = me_expf_fused(x[i] − m) in place; returns Σ x[i] (vector partial
   sums: the order differs from a sequential loop's). */
float me_exp_sub_sum(int n, float *x, float m);
/* Down each of the 32 columns of s [rows][32]: s = me_expf_fused(s − the
   column's maximum) in place, sums[j] = column j's sum added in row order
   (the same order on every kernel set). */
void me_exp_columns32(int rows, float *s, float *sums);

#endif
