/* conv.h — 2-D convolution with its weights packed once (ops/conv_gemm.c):

     op_conv c;
     void *mem = me_alloc_aligned(op_conv_bytes(&shape, 0));
     op_conv_init(&c, &shape, weight, bias, 0, mem);   // at load
     op_conv_run(&c, n, h, w, x, y, NULL, OP_ACT_NONE, scratch);

   On the own kernels (AVX-512 or AVX2+FMA, ops/gemm.c) this is an implicit
   GEMM: output channels × output pixels, the weights as the tiles' A panels
   and the image read straight into their 32-pixel B panels (on AVX-512,
   float32 stride-1 layers: read in place by the tiles), with no
   unfolded (im2col) copy; bias, residual and ReLU are applied as each block
   of output leaves the kernel. A ×2 nearest upsampling followed by a 3×3
   convolution (padding 1) runs as four 2×2 convolutions of the source, one
   per output pixel parity, with sums of taps as weights: 4/9 of the
   multiply-adds, the same result up to rounding. Without the own kernels
   (OpenBLAS) it is op_conv2d.

   One GEMM can feed several tensors: op_conv_run_split sends consecutive
   ranges of output channels to destinations of their own (pointer, image
   stride, residual) — convolutions that read the same input, their
   weights concatenated along cout, then pack each block of input once for
   all of them, and each packed panel feeds cout/mr tiles instead of a
   fraction of them (Inception's 1×1 branch heads).

   bf16 = 1 rounds the weights (a folded layer's sums of taps) and the
   image to bfloat16 (to nearest even)
   and multiplies with float32 sums: on AVX512-BF16 CPUs with the
   vdpbf16ps tiles (twice the arithmetic rate), elsewhere emulated on the
   float32 tiles with the same roundings (for measuring its error; no
   faster). It needs the own kernels: op_conv_bf16_ok() says whether it can
   run here. */
#ifndef MOEDIT_OPS_CONV_H
#define MOEDIT_OPS_CONV_H

#include <stddef.h>
#include "ops/ops.h"

enum { OP_ACT_NONE = 0, OP_ACT_RELU };

typedef struct {
    op_conv_shape s;
    int bf16;               /* weights and image rounded to bfloat16 */
    int native_bf16;        /* bf16 products on AVX512-BF16 (else emulated) */
    int amx;                /* … and on AMX tiles (channels in blocks of 32, K padded to 32) */
    const float *w, *bias;  /* as given: w [cout, cin, kh, kw]; bias may be NULL */
    void *packed;           /* the weights as tile A panels; NULL on OpenBLAS */
    int mr, kc, mpad;       /* tile rows, K block as packed, cout rounded up to mr */
    int kc_pass;            /* the GEMM's K block, of which kc is a whole number (but its last block) */
    int folded;             /* a ×2 upsampling + 3×3 run as four 2×2 convolutions (ops/conv_gemm.c) */
} op_conv;

/* 1 when bf16 convolutions can run on this CPU (natively or emulated). */
int op_conv_bf16_ok(void);

/* Bytes of packed weights op_conv_init needs (64-byte aligned); 0 on OpenBLAS. */
size_t op_conv_bytes(const op_conv_shape *s, int bf16);
/* Packs weight into mem (which c keeps using); w and bias must outlive c on
   OpenBLAS, where they are used as they are. bf16 is ignored (0) where
   op_conv_bf16_ok() is 0. */
void op_conv_init(op_conv *c, const op_conv_shape *s, const float *weight, const float *bias, int bf16,
                  void *mem);

/* y = act(conv(x) + bias + res): x [n, cin, h, w] → y [n, cout, oh, ow];
   res (NULL, or shaped like y, not overlapping it) is added before act.
   scratch: op_conv_scratch floats, sized for moedit_set_threads' count
   (me_threads_max(); a call never runs more): 1 MB per thread on the own kernels (each thread's
   block of output), the im2col bands on OpenBLAS. Called inside a parallel
   region it runs on the calling thread (and uses the first thread's part). */
void op_conv_run(const op_conv *c, int n, int h, int w, const float *x, float *y, const float *res, int act,
                 float *scratch);
/* The same with y's (and res's) images y_img floats apart (≥ cout·oh·ow):
   the output lands in a channel slice of a larger tensor (torch.cat
   without a copy). */
void op_conv_run_into(const op_conv *c, int n, int h, int w, const float *x, float *y, size_t y_img,
                      const float *res, int act, float *scratch);
/* One destination of op_conv_run_split: the next `channels` output
   channels, image i's at y + i·y_img ([channels, oh, ow], y_img ≥
   channels·oh·ow); res is NULL or laid out like y. no_act: these channels
   are stored without the call's activation (bias and residual still
   added) — for a linear step the caller runs before it (Inception's
   average pools, fid/inception.c). */
typedef struct {
    int channels;
    float *y;
    size_t y_img;
    const float *res;
    int no_act;
} op_conv_dst;
/* The same convolution with output channels [0, cout) split over dst[0],
   dst[1], … in order (their channels must add up to cout; none overlap). */
void op_conv_run_split(const op_conv *c, int n, int h, int w, const float *x, const op_conv_dst *dst, int ndst,
                       int act, float *scratch);
size_t op_conv_scratch(const op_conv_shape *s, int h, int w);

#endif
