/* ops.h — the numerical building blocks every network in moedit shares
   (transformer, VAE, Inception). Float32, row-major, NCHW for images.
   Work buffers are passed in by the caller (sized by the *_scratch
   functions) so that nothing allocates inside a sampling loop. Loops run on
   me_threads() threads; GEMMs go through OpenBLAS sgemm or own AVX-512
   kernels. */
#ifndef MOEDIT_OPS_H
#define MOEDIT_OPS_H

#include <stddef.h>

/* y[n,out] = x[n,in] · w[out,in]ᵀ (+ b[out] when b is not NULL). */
void op_linear(int n, int in, int out, const float *x, const float *w, const float *b, float *y);

/* LayerNorm over the last dimension d of n rows; w, b may be NULL (no affine). */
void op_layernorm(int n, int d, const float *x, const float *w, const float *b, float eps, float *y);
/* adaLN: y = LN(x)·(1 + scale) + shift in one pass, no affine; rows r use
   shift/scale + (r / group)·stride (one conditioning row per group). */
void op_layernorm_modulate(int n, int d, const float *x, const float *shift, const float *scale, int group,
                           size_t stride, float eps, float *y);
/* The residual step before it, in the same pass: x += gate ⊙ delta (gate
   per group like shift and scale, delta [n, d]), then y = adaLN(x). */
void op_gated_add_layernorm_modulate(int n, int d, float *x, const float *gate, const float *delta,
                                     const float *shift, const float *scale, int group, size_t stride, float eps,
                                     float *y);

void op_silu(size_t n, const float *x, float *y);
void op_gelu_tanh(size_t n, const float *x, float *y);

/* softmax(q·kᵀ / sqrt(head_dim)) · v for every batch and head.
   q, k, v: element (b, t, h, d) at [(b*tokens + t)*ld + h*head_dim + d].
   out [batch, tokens, heads*head_dim]. scratch: op_attention_scratch(batch,
   tokens, heads, head_dim) floats at the current thread count (any
   alignment); op_attention allocates nothing. bf16: both products on
   bfloat16 operands (q, k, v and the probabilities rounded; float32 sums),
   where the CPU has AVX512-BF16; float32 elsewhere. */
void op_attention(int batch, int tokens, int heads, int head_dim, const float *q,
                  const float *k, const float *v, int ld, int bf16, float *out, float *scratch);
size_t op_attention_scratch(int batch, int tokens, int heads, int head_dim);

/* 2-D convolution, NCHW, weight [cout, cin, kh, kw], optional bias.
   upsample2x = 1: the convolution sees the input nearest-upsampled ×2 (as
   diffusers' Upsample2D) without that tensor ever being made; h, w stay the
   stored input's size. stride 0 means 1. */
typedef struct { int cin, cout, kh, kw, stride, pad_h, pad_w, upsample2x; } op_conv_shape;
void op_conv2d(const op_conv_shape *s, int n, int h, int w, const float *x,
               const float *weight, const float *bias, float *y, float *scratch);
size_t op_conv2d_scratch(const op_conv_shape *s, int h, int w);   /* floats: ~8 MB or one output row */
int op_conv2d_out(int size, int k, int stride, int pad);          /* output height/width */

/* GroupNorm over (c/groups channels × hw) per sample, affine, optional SiLU. */
void op_groupnorm(int n, int c, int hw, int groups, const float *x, const float *gamma,
                  const float *beta, float eps, int silu, float *y);

/* Nearest-neighbour ×2 upsampling, NCHW. */
void op_upsample2x(int n, int c, int h, int w, const float *x, float *y);

/* k×k pooling, NCHW, PyTorch floor mode: output op_conv2d_out(h, k, stride,
   pad). Padded cells never count: max pooling skips them, average pooling
   divides by the real cells only (count_include_pad=False). */
void op_maxpool2d(int n, int c, int h, int w, int k, int stride, int pad, const float *x, float *y);
void op_avgpool2d(int n, int c, int h, int w, int k, int stride, int pad, const float *x, float *y);
/* Mean of every channel's hw values (adaptive average pooling to 1×1): y[n, c]. */
void op_global_avgpool(int n, int c, int hw, const float *x, float *y);
/* Bilinear resize to oh×ow, NCHW, as F.interpolate(align_corners=False). */
void op_resize_bilinear(int n, int c, int h, int w, int oh, int ow, const float *x, float *y);

#endif
