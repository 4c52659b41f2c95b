/* vexp.h — me_expf's loops (ops/fastmath.h) in explicit vectors, chosen at
   run time. GCC keeps those loops scalar wherever AVX-512 masks cannot
   if-convert me_expf's clamps (AVX2 hosts, portable builds): a tenth of a
   DiT-MoE forward then goes to SwiGLU's exponentials. The vector code does
   me_expf's operations in the same order (no contraction into FMAs), so
   elementwise results equal the scalar ones bit for bit. */
#ifndef MOEDIT_OPS_VEXP_H
#define MOEDIT_OPS_VEXP_H

#include <stddef.h>

/* y[i] = x[i]·σ(x[i]), times u[i] when u is not NULL (SwiGLU's gate). y may be x. */
void me_silu_vec(size_t n, const float *x, const float *u, float *y);
/* x[i] = exp(x[i] − m) in place; returns Σ x[i] (vector partial sums:
   the order differs from a sequential loop's). */
float me_exp_sub_sum(int n, float *x, float m);

#endif
