/* op_conv_run_split (ops/conv_gemm.c): one convolution whose output
   channels go, range by range, to destinations of their own — a channel
   slice of a wider tensor, a plain tensor, one with a residual, one
   stored before the activation — as the
   Inception blocks run their 1×1 branch heads as one GEMM. Checked against
   op_conv2d (im2col + sgemm, itself checked against torch in
   tests/ops_conv.c) run per destination on its rows of the weights, image
   by image, on a batch whose pixel panels straddle rows and images, with
   ranges that are not multiples of the 6-row AVX2 tile (tiles straddle
   destinations) and output in more than one chunk. Elements outside the
   destinations must keep their values. Each shape runs on the own kernels
   and, in a test of its own (the CPU is detected once per process), on the
   OpenBLAS path (MOEDIT_NO_AVX2=1). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include "core/core.h"
#include "ops/conv.h"
#include "tests/testutil.h"

#define SENTINEL 7.0f

static float *counter(const char *key, size_t n, float scale)
{
    float *v = malloc(n * sizeof *v);
    uint64_t k = tu_fnv1a64(key);
    for (size_t i = 0; i < n; i++) v[i] = tu_counter_uniform(k, i) * scale;
    return v;
}

/* n images [cin, h, w] through one conv with output channels split as
   parts[0..np): part i goes to channels [at[i], at[i] + parts[i]) of a
   tensor of ctot[i] channels per image, with a residual where res_part is
   i; act for all but raw_part (stored without it, as Inception's
   branch_pool sums before their average pool). */
static void split_case(int n, int cin, int h, int w, int kh, int kw, int stride, int ph, int pw, int np,
                       const int *parts, const int *at, const int *ctot, int res_part, int raw_part, int act)
{
    int cout = 0;
    for (int i = 0; i < np; i++) cout += parts[i];
    op_conv_shape s = {cin, cout, kh, kw, stride, ph, pw, 0};
    int oh = op_conv2d_out(h, kh, stride, ph), ow = op_conv2d_out(w, kw, stride, pw);
    size_t plane = (size_t)oh * ow, k = (size_t)cin * kh * kw;
    float *x = counter("sx", (size_t)n * cin * h * w, 1.0f), *wt = counter("sw", (size_t)cout * k, 0.2f);
    float *b = counter("sb", cout, 1.0f);
    float *y[8], *res = NULL;
    op_conv_dst dst[8];
    for (int i = 0; i < np; i++) {
        size_t img = (size_t)ctot[i] * plane;
        y[i] = malloc(n * img * sizeof *y[i]);
        for (size_t e = 0; e < n * img; e++) y[i][e] = SENTINEL;
        dst[i] = (op_conv_dst){parts[i], y[i] + (size_t)at[i] * plane, img, NULL, i == raw_part};
        if (i == res_part) {
            res = counter("sr", n * img, 1.0f);
            dst[i].res = res + (size_t)at[i] * plane;
        }
    }
    op_conv c;
    size_t bytes = op_conv_bytes(&s, 0), sn = op_conv_scratch(&s, h, w);
    void *mem = me_alloc_aligned(bytes ? bytes : 64);
    float *scratch = malloc((sn ? sn : 1) * sizeof *scratch);
    op_conv_init(&c, &s, wt, b, 0, mem);
    op_conv_run_split(&c, n, h, w, x, dst, np, act, scratch);

    float *want = malloc((size_t)cout * plane * sizeof *want);
    float *ref_scratch = malloc(op_conv2d_scratch(&s, h, w) * sizeof *ref_scratch + 4);
    for (int i = 0, c0 = 0; i < np; c0 += parts[i++]) {
        op_conv_shape si = s;
        si.cout = parts[i];
        size_t one = (size_t)parts[i] * plane, img = (size_t)ctot[i] * plane, off = (size_t)at[i] * plane;
        for (int im = 0; im < n; im++) {
            op_conv2d(&si, 1, h, w, x + (size_t)im * cin * h * w, wt + (size_t)c0 * k, b + c0, want, ref_scratch);
            for (size_t e = 0; e < one; e++) {
                if (i == res_part) want[e] += res[im * img + off + e];
                if (act == OP_ACT_RELU && i != raw_part && want[e] < 0) want[e] = 0;
            }
            const float *got = y[i] + im * img;
            double maxref, maxerr = tu_max_error(got + off, want, one, &maxref);
            cr_assert(maxerr <= 1e-5 * maxref, "%d×%d×%d×%d, %d×%d/%d, part %d (%d channels at %d of %d), image %d: "
                      "max error %g vs max |ref| %g", n, cin, h, w, kh, kw, stride, i, parts[i], at[i], ctot[i], im,
                      maxerr, maxref);
            for (size_t e = 0; e < img; e++)
                if (e < off || e >= off + one)
                    cr_assert_eq(got[e], SENTINEL, "part %d, image %d: element %zu outside the slice written", i, im,
                                 e);
        }
    }
    for (int i = 0; i < np; i++) free(y[i]);
    free(x); free(wt); free(b); free(res); free(want); free(ref_scratch); free(scratch);
    me_free_aligned(mem);
}

static void all_cases(void)
{
    /* Inception's heads: 1×1 on 17×17, three parts (one a slice of a wider
       tensor), 23 channels in 7 + 11 + 5 */
    split_case(3, 40, 17, 17, 1, 1, 1, 0, 0, 3, (int[]){7, 11, 5}, (int[]){2, 0, 0}, (int[]){12, 11, 5}, -1, -1,
               OP_ACT_RELU);
    /* the same with a fourth part stored before the ReLU (branch_pool's sums) */
    split_case(3, 40, 17, 17, 1, 1, 1, 0, 0, 4, (int[]){7, 11, 5, 6}, (int[]){2, 0, 0, 0}, (int[]){12, 11, 5, 6}, -1,
               3, OP_ACT_RELU);
    /* several K blocks, panels across images of 8×8, a residual on the middle part */
    split_case(2, 300, 8, 8, 1, 1, 1, 0, 0, 3, (int[]){13, 4, 9}, (int[]){0, 3, 1}, (int[]){13, 9, 10}, 1, -1,
               OP_ACT_NONE);
    /* 3×3 same (masked padding), two parts */
    split_case(2, 12, 9, 7, 3, 3, 1, 1, 1, 2, (int[]){5, 8}, (int[]){1, 0}, (int[]){8, 8}, -1, -1, OP_ACT_RELU);
    /* stride 2 (row-by-row packing) */
    split_case(3, 16, 15, 15, 3, 3, 2, 0, 0, 2, (int[]){9, 3}, (int[]){0, 2}, (int[]){9, 6}, 0, -1, OP_ACT_RELU);
    /* more output than one thread's block: two chunks of pixel panels */
    split_case(1, 8, 40, 40, 1, 1, 1, 0, 0, 4, (int[]){101, 50, 77, 3}, (int[]){0, 5, 0, 1}, (int[]){101, 60, 77, 4},
               2, 1, OP_ACT_RELU);
}

Test(conv_split, destinations_match_op_conv2d) { all_cases(); }

Test(conv_split, openblas_path)
{
    setenv("MOEDIT_NO_AVX2", "1", 1);
    setenv("MOEDIT_NO_AVX512", "1", 1);
    all_cases();
}
