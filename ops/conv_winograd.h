/* conv_winograd.h — 3×3 convolutions (stride 1, padding 1 or 0) by Winograd's
   minimal filtering F(4×4, 3×3), and 1×7 / 7×1 ones by F(2, 7), on the
   GEMM's own float32 tiles (ops/conv_winograd.c):

     op_winograd c;
     if (op_winograd_ok(&shape)) {
         void *mem = me_alloc_aligned(op_winograd_bytes(&shape));
         op_winograd_init(&c, &shape, weight, bias, mem);          // at load
         float *scratch = me_alloc_aligned(sizeof(float) * op_winograd_scratch(&shape, n, h, w));
         op_winograd_run(&c, n, h, w, x, y, res, OP_ACT_NONE, scratch);
     }

   Each 4×4 block of output is computed from the 6×6 block of input around
   it as Aᵀ[(G g Gᵀ) ⊙ (Bᵀ d B)]A: per input channel, the input block and
   the 3×3 kernel are carried into 36 products, summed over the input
   channels as 36 matrix products (output channels × input channels times
   input channels × 4×4 blocks) on the GEMM's tile kernels, and carried
   back. 36 multiplies per channel pair and 16 output pixels instead of
   144: a quarter of the direct convolution's arithmetic. The points are
   0, ±1, ±2, ∞ (Lavin & Gray 2015): in float32 the result differs from
   the direct sum by about 1e-5 of the output's largest value (measured
   in docs/performance.md, "Winograd convolutions"), well inside the
   decoder's 1e-3 test tolerance; Inception's features move by 4.8e-7 of
   the largest, a third of their distance to PyTorch's (docs/performance.md,
   "InceptionV3").

   Where a plane's block rows would leave lanes of a vector empty (rows of
   9 or 18 blocks) or there is no padding, the blocks go to the lanes one
   after the other across rows and images and are read by gathers
   (ops/conv_winograd.c).

   F(2, 7) (Inception's factorized 7×7 layers) works the same way along
   one axis: blocks of two output pixels from eight input ones, 8
   products per channel pair instead of 14, the points 0, ±1, ±2, ±½, ∞.

   The weights are kept transformed: 36/9 = 4× the floats of the layer's
   own (F(2, 7): 8/7). Needs the own kernels, AVX-512 or AVX2+FMA (op_winograd_ok is 0
   on OpenBLAS, and for any other shape). */
#ifndef MOEDIT_OPS_CONV_WINOGRAD_H
#define MOEDIT_OPS_CONV_WINOGRAD_H

#include <stddef.h>
#include "ops/ops.h"

/* Which minimal filtering: F(4×4, 3×3) of 3×3 kernels, or F(2, 7) along
   the rows of 1×7 kernels or the columns of 7×1 (padding 3 along them,
   none across: Inception's factorized 7×7 layers), 8 products per pair of
   output pixels and channel pair instead of 14. */
enum { OP_WINO_3X3 = 0, OP_WINO_1X7, OP_WINO_7X1 };

typedef struct {
    int kind;            /* OP_WINO_* */
    int pos;             /* transformed positions: 36 (3×3) or 8 */
    int cin, cout;
    int up;              /* 2: a ×2 nearest upsampling first (the input is half the output's size) */
    int pad;             /* 1, or 0 (no upsampling): the output h + 2·pad − 2 high */
    int lanes;           /* blocks a vector holds in the transforms: 16 (AVX-512) or 8 (AVX2) */
    const float *bias;   /* NULL, or cout values (kept, not copied) */
    float *a;            /* transformed weights as tile A panels, [36][kblocks][tiles][kc][mr] */
    int mr, kc, kblocks, tiles;
} op_winograd;

/* 1 when s is a 3×3, stride-1 convolution of padding 1 (after a ×2
   nearest upsampling or not) or 0 (not upsampled), or a 1×7 or 7×1 one
   of padding 3 along the kernel and none across, and this CPU runs the
   own float32 tiles (AVX-512 or AVX2). */
int op_winograd_ok(const op_conv_shape *s);
/* 1 when it is also faster than the direct convolution: 64 or more input
   and output channels (F(2, 7): 128 or more; below that the transforms
   cost more than the products save; docs/performance.md, "Winograd
   convolutions"). */
int op_winograd_pays(const op_conv_shape *s);
/* Multiply-adds ×2 of the products for one image of h × w (the input's
   size): blocks × positions × cin × cout — what is multiplied, where the
   direct convolution's count is oh·ow·kh·kw·cin·cout ×2 (the transforms'
   additions not counted). 0 where op_winograd_ok(s) is 0. */
double op_winograd_flops(const op_conv_shape *s, int h, int w);
/* Bytes of transformed weights (64-byte aligned memory). */
size_t op_winograd_bytes(const op_conv_shape *s);
void op_winograd_init(op_winograd *c, const op_conv_shape *s, const float *weight, const float *bias, void *mem);
/* Floats of scratch op_winograd_run needs for s on calls of up to n
   images of h × w (the input's size), sized for moedit_set_threads' count
   (me_threads_max()); 64-byte aligned memory; 0 where op_winograd_ok(s)
   is 0. */
size_t op_winograd_scratch(const op_conv_shape *s, int n, int h, int w);
/* y = act(conv(x) + bias + res): x [n, cin, h, w] → y [n, cout, h, w]
   (2h × 2w upsampled), as op_conv_run; res NULL or shaped like y, not
   overlapping it. Threads: me_threads(); called inside a parallel region
   it runs on the calling thread, in the scratch's first part. */
void op_winograd_run(const op_winograd *c, int n, int h, int w, const float *x, float *y, const float *res, int act,
                     float *scratch);
/* The same with y's (and res's) images y_img floats apart (≥ cout·oh·ow),
   as op_conv_run_into: the output lands in a channel slice of a larger
   tensor. */
void op_winograd_run_into(const op_winograd *c, int n, int h, int w, const float *x, float *y, size_t y_img,
                          const float *res, int act, float *scratch);

#endif
