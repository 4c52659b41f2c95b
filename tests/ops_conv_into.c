/* op_conv_run_into (ops/conv_gemm.c): a batch of images written into a
   channel slice of a wider tensor, as the Inception blocks concatenate
   their branches — against op_conv2d (im2col + sgemm, checked against
   torch in tests/ops_conv.c) image by image. The shapes are Inception's
   kinds on planes whose pixel panels straddle rows and images: 1×1 and k×1
   kernels (the packing that copies whole planes, rows cut off by the
   vertical padding), 1×k and 3×3 (row by row), stride 2. The channels
   outside the slice must keep their values. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include "core/core.h"
#include "ops/conv.h"
#include "tests/testutil.h"

static float *counter(const char *key, size_t n, float scale)
{
    float *v = malloc(n * sizeof *v);
    uint64_t k = tu_fnv1a64(key);
    for (size_t i = 0; i < n; i++) v[i] = tu_counter_uniform(k, i) * scale;
    return v;
}

/* n images through the conv into channels [at, at + cout) of a tensor of
   ctot channels per image, ReLU applied. */
static void slice_case(int n, int cin, int h, int w, int cout, int kh, int kw, int stride, int ph, int pw, int at,
                       int ctot)
{
    op_conv_shape s = {cin, cout, kh, kw, stride, ph, pw, 0};
    int oh = op_conv2d_out(h, kh, stride, ph), ow = op_conv2d_out(w, kw, stride, pw);
    size_t plane = (size_t)oh * ow, img = (size_t)ctot * plane, one = (size_t)cout * plane;
    float *x = counter("ix", (size_t)n * cin * h * w, 1.0f), *wt = counter("iw", (size_t)cout * cin * kh * kw, 0.2f);
    float *b = counter("ib", cout, 1.0f), *y = malloc(n * img * sizeof *y), *want = malloc(one * sizeof *want);
    float *ref_scratch = malloc(op_conv2d_scratch(&s, h, w) * sizeof *ref_scratch + 4);
    for (size_t i = 0; i < n * img; i++) y[i] = 7.0f;   /* outside the slice: must stay */
    op_conv c;
    size_t bytes = op_conv_bytes(&s, 0), sn = op_conv_scratch(&s, h, w);
    void *mem = me_alloc_aligned(bytes ? bytes : 64);
    float *scratch = malloc((sn ? sn : 1) * sizeof *scratch);
    op_conv_init(&c, &s, wt, b, 0, mem);
    op_conv_run_into(&c, n, h, w, x, y + (size_t)at * plane, img, NULL, OP_ACT_RELU, scratch);
    char what[96];
    snprintf(what, sizeof what, "%d×%d×%d×%d → %d of %d, %d×%d/%d", n, cin, h, w, cout, ctot, kh, kw, stride);
    for (int i = 0; i < n; i++) {
        op_conv2d(&s, 1, h, w, x + (size_t)i * cin * h * w, wt, b, want, ref_scratch);
        for (size_t e = 0; e < one; e++) want[e] = want[e] > 0 ? want[e] : 0;
        const float *got = y + i * img;
        double maxref, maxerr = tu_max_error(got + (size_t)at * plane, want, one, &maxref);
        cr_assert(maxerr <= 1e-5 * maxref, "%s, image %d: max error %g vs max |ref| %g", what, i, maxerr, maxref);
        for (size_t e = 0; e < img; e++)
            if (e < (size_t)at * plane || e >= (size_t)at * plane + one)
                cr_assert_eq(got[e], 7.0f, "%s, image %d: element %zu outside the slice written", what, i, e);
    }
    free(x); free(wt); free(b); free(y); free(want); free(ref_scratch); free(scratch);
    me_free_aligned(mem);
}

Test(conv_into, channel_slices_of_a_batch)
{
    slice_case(3, 40, 17, 17, 20, 1, 1, 1, 0, 0, 5, 48);     /* 1×1: one plane copy per k */
    slice_case(3, 24, 17, 17, 13, 7, 1, 1, 3, 0, 2, 20);     /* 7×1: rows cut by the padding */
    slice_case(2, 24, 8, 8, 14, 3, 1, 1, 1, 0, 14, 30);      /* 3×1 on 8×8: panels of four rows */
    slice_case(3, 24, 17, 17, 13, 1, 7, 1, 0, 3, 7, 21);     /* 1×7: row by row */
    slice_case(2, 200, 9, 11, 70, 1, 1, 1, 0, 0, 0, 80);     /* several K blocks, channel panels */
    slice_case(3, 16, 35, 35, 9, 3, 3, 2, 0, 0, 3, 12);      /* stride 2 */
    slice_case(2, 12, 8, 8, 10, 3, 3, 1, 1, 1, 4, 14);       /* 3×3 same */
}
