/* op_winograd_run (ops/conv_winograd.c) against torch (the conv3x3,
   conv3x3up and conv3x3wino fixtures of tools/make_vae_fixtures.py:
   several lane groups on a block row, heights that are no multiple of 4,
   two images, a ×2 nearest upsampling first) and, at the decoder's channel
   counts, against op_conv2d (im2col + sgemm, checked against torch in
   tests/ops_conv.c): in chunks a thread runs alone and in chunks all
   threads share, over several K blocks, upsampled or not, narrow images'
   block rows two to a lane group; at Inception's shapes (blocks gathered
   across rows and images, no padding, into channel slices) and, by
   F(2, 7), its 1×7 and 7×1 layers. Its results do not depend on the
   thread count nor on the other images of the batch.
   Skipped where only OpenBLAS runs; ctest runs it again on the AVX2
   kernels (ops_conv_winograd_avx2), the emulated build on AVX-512's. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/core.h"
#include "moedit.h"
#include "ops/conv.h"
#include "ops/conv_winograd.h"
#include "tests/testutil.h"

/* Winograd's transforms against a direct sum in float32: F(4×4, 3×3)
   differed from the direct convolution by up to 1.4e-5 of max |ref| on
   random layers of 128–512 channels (7e-6 in the 128 → 96 case here,
   9e-7 in conv3x3); the direct convolution's tests hold 1e-5. */
#define TOL 4e-5

static float *counter(const char *key, size_t n, float scale)
{
    float *v = malloc(n * sizeof *v);
    uint64_t k = tu_fnv1a64(key);
    for (size_t i = 0; i < n; i++) v[i] = tu_counter_uniform(k, i) * scale;
    return v;
}

typedef struct {
    op_conv_shape s;
    op_winograd c;
    void *mem;
    float *scratch;
} layer;

/* A layer of shape s for calls of up to n images of h × w. */
static void layer_init(layer *L, op_conv_shape s, const float *wt, const float *b, int n, int h, int w)
{
    L->s = s;
    cr_assert(op_winograd_ok(&L->s));
    L->mem = me_alloc_aligned(op_winograd_bytes(&L->s));
    L->scratch = me_alloc_aligned(op_winograd_scratch(&L->s, n, h, w) * sizeof(float));
    cr_assert(L->mem && L->scratch);
    op_winograd_init(&L->c, &L->s, wt, b, L->mem);
}

/* A 3×3 layer: cin → cout, padding pad, up: a ×2 nearest upsampling first. */
static op_conv_shape conv3x3(int cin, int cout, int pad, int up) { return (op_conv_shape){cin, cout, 3, 3, 1, pad, pad, up}; }

static void layer_free(layer *L)
{
    me_free_aligned(L->mem);
    me_free_aligned(L->scratch);
}

static void skip_without_tiles(void)
{
    op_conv_shape s = {8, 8, 3, 3, 1, 1, 1, 0};
    if (!op_winograd_ok(&s)) cr_skip_test("no own float32 tiles on this CPU");
}

static void expect_close(const char *what, const float *got, const float *want, size_t n)
{
    double maxref, maxerr = tu_max_error(got, want, n, &maxref);
    cr_assert(maxerr <= TOL * maxref, "%s: max error %g vs max |ref| %g", what, maxerr, maxref);
}

/* A torch fixture case (inputs keyed "x", "w" × 0.3, "b" as tests/ops_conv.c's;
   up: a ×2 nearest upsampling first); res_act: also a residual and ReLU. */
static void torch_case(const char *name, int n, int cin, int h, int w, int cout, int up, int res_act)
{
    size_t out_n = (size_t)n * cout * h * w * (up ? 4 : 1);
    float *x = counter("x", (size_t)n * cin * h * w, 1.0f), *wt = counter("w", (size_t)cout * cin * 9, 0.3f);
    float *b = counter("b", cout, 1.0f), *res = res_act ? counter("res", out_n, 2.0f) : NULL;
    char path[512];
    snprintf(path, sizeof path, "%s/vae/%s.f32", FIXTURES, name);
    float *want = tu_read_exact(path, out_n * sizeof(float)), *y = malloc(out_n * sizeof *y);
    if (res_act)
        for (size_t i = 0; i < out_n; i++) want[i] = want[i] + res[i] > 0 ? want[i] + res[i] : 0.0f;
    layer L;
    layer_init(&L, conv3x3(cin, cout, 1, up), wt, b, n, h, w);
    op_winograd_run(&L.c, n, h, w, x, y, res, res_act ? OP_ACT_RELU : OP_ACT_NONE, L.scratch);
    char what[96];
    snprintf(what, sizeof what, "%s%s", name, res_act ? " + residual, ReLU" : "");
    expect_close(what, y, want, out_n);
    layer_free(&L);
    free(x); free(wt); free(b); free(res); free(want); free(y);
}

Test(winograd, against_torch)
{
    skip_without_tiles();
    torch_case("conv3x3", 2, 5, 9, 7, 6, 0, 0);
    torch_case("conv3x3up", 2, 6, 5, 4, 3, 1, 0);
    torch_case("conv3x3wino", 2, 7, 10, 70, 9, 0, 0);
    torch_case("conv3x3wino", 2, 7, 10, 70, 9, 0, 1);
}

/* n images of cin × h × w through a layer of shape s into channels
   [at, at + cout) of outputs of ctot channels, against op_conv2d image by
   image; returns the output (the caller frees it). */
static float *im2col_into(op_conv_shape s, int n, int h, int w, int at, int ctot)
{
    int cin = s.cin, cout = s.cout, up = s.upsample2x;
    int oh = op_conv2d_out(up ? 2 * h : h, s.kh, 1, s.pad_h), ow = op_conv2d_out(up ? 2 * w : w, s.kw, 1, s.pad_w);
    size_t one = (size_t)cout * oh * ow, img = (size_t)ctot * oh * ow;
    float *x = counter("wx", (size_t)n * cin * h * w, 1.0f);
    float *wt = counter("ww", (size_t)cout * cin * s.kh * s.kw, 0.05f);
    float *b = counter("wb", cout, 1.0f), *y = malloc(n * img * sizeof *y), *want = malloc(one * sizeof *want);
    float *ref_scratch = malloc(op_conv2d_scratch(&s, h, w) * sizeof *ref_scratch + 4);
    for (size_t i = 0; i < n * img; i++) y[i] = -7.0f;   /* the other channels: must stay */
    layer L;
    layer_init(&L, s, wt, b, n, h, w);
    op_winograd_run_into(&L.c, n, h, w, x, y + (size_t)at * oh * ow, img, NULL, OP_ACT_NONE, L.scratch);
    for (int i = 0; i < n; i++) {
        op_conv2d(&s, 1, h, w, x + (size_t)i * cin * h * w, wt, b, want, ref_scratch);
        char what[128];
        snprintf(what, sizeof what, "%d → %d, %d×%d kernel at %d×%d%s, padding %d, %d, image %d of %d", cin, cout,
                 s.kh, s.kw, h, w, up ? " ×2" : "", s.pad_h, s.pad_w, i, n);
        expect_close(what, y + i * img + (size_t)at * oh * ow, want, one);
        for (size_t k = 0; k < img; k++)
            if (k < (size_t)at * oh * ow || k >= (size_t)at * oh * ow + one)
                cr_assert_eq(y[i * img + k], -7.0f, "%s: wrote outside its channels (float %zu)", what, k);
    }
    layer_free(&L);
    free(x); free(wt); free(b); free(want); free(ref_scratch);
    return y;
}

static float *im2col_case(int n, int cin, int h, int w, int cout, int up)
{
    return im2col_into(conv3x3(cin, cout, 1, up), n, h, w, 0, cout);
}

Test(winograd, decoder_channels_against_im2col)
{
    skip_without_tiles();
    free(im2col_case(2, 128, 20, 150, 96, 0));   /* 15 panels: chunks of one thread each */
    free(im2col_case(1, 520, 12, 12, 70, 0));    /* 2 panels: one chunk all threads share; 2 K blocks */
    free(im2col_case(1, 96, 11, 37, 64, 1));     /* upsampled: 22 × 74, lane 15 past a 16-column vector */
    free(im2col_case(2, 72, 17, 32, 80, 0));     /* 8 blocks a row: two block rows a group on AVX-512, th odd */
    free(im2col_case(2, 64, 9, 124, 72, 0));     /* 31 blocks a row: lane groups along rows, the last lane empty */
}

/* Inception's shapes (fid/inception.c): block rows of 9, 18 and 2 blocks
   (gathered lane groups spanning rows and images), no padding, the
   output in a channel slice of a wider tensor (torch.cat). */
Test(winograd, inception_shapes_against_im2col)
{
    skip_without_tiles();
    free(im2col_into(conv3x3(64, 96, 1, 0), 3, 35, 35, 64, 224));   /* Mixed_5b's branch3x3dbl_2, into its slice */
    free(im2col_into(conv3x3(80, 100, 0, 0), 1, 73, 73, 0, 100));   /* Conv2d_4a: 71 × 71 from 73 × 73 */
    free(im2col_into(conv3x3(40, 70, 0, 0), 2, 10, 23, 5, 80));     /* no padding, odd sizes, a slice */
    free(im2col_into(conv3x3(200, 72, 1, 0), 5, 8, 8, 0, 72));      /* 8², 4 blocks an image */
}

/* F(2, 7) for 1×7 and 7×1 layers (padding 3 along the kernel): the
   Mixed_6 shapes and odd ones (a last block of one pixel, groups across
   rows and images, a channel slice). */
Test(winograd, factorized_7x7_against_im2col)
{
    skip_without_tiles();
    op_conv_shape row = {128, 160, 1, 7, 1, 0, 3, 0}, col = {160, 192, 7, 1, 1, 3, 0, 0};
    free(im2col_into(row, 4, 17, 17, 0, 160));     /* Mixed_6c's branch7x7_2 */
    free(im2col_into(col, 4, 17, 17, 192, 768));   /* its branch7x7_3, into its slice */
    row = (op_conv_shape){40, 70, 1, 7, 1, 0, 3, 0};
    col = (op_conv_shape){40, 70, 7, 1, 1, 3, 0, 0};
    free(im2col_into(row, 3, 9, 23, 3, 80));
    free(im2col_into(col, 3, 9, 23, 3, 80));
    free(im2col_into(row, 2, 5, 4, 0, 70));        /* narrower than the kernel */
    free(im2col_into(col, 2, 4, 5, 0, 70));        /* 4 runs of lanes along rows a group */
    free(im2col_into(col, 2, 6, 3, 0, 70));        /* more: gathered on AVX-512 too */
    free(im2col_into(col, 3, 6, 1, 0, 70));        /* one column: a run a lane, gathered on AVX2 too */
}

/* The same layer on one thread and on all, and each image alone against
   the batch: the same bits (each output's sums are the same whoever runs
   them and whatever lanes run beside them), in gathered lane groups (150
   columns: 38 blocks a row) and in groups along rows (124: 31). */
Test(winograd, threads_and_batch_keep_the_bits)
{
    skip_without_tiles();
    moedit_set_threads(2);   /* before the scratch is sized: it is per thread */
    for (int w = 124; w <= 150; w += 26) {
        int n = 2, cin = 96, cout = 80, h = 13;
        size_t in1 = (size_t)cin * h * w, one = (size_t)cout * h * w;
        float *x = counter("bx", n * in1, 1.0f), *wt = counter("bw", (size_t)cout * cin * 9, 0.05f);
        float *res = counter("br", n * one, 1.0f), *all = malloc(n * one * sizeof *all);
        float *again = malloc(n * one * sizeof *again), *alone = malloc(one * sizeof *alone);
        layer L;
        layer_init(&L, conv3x3(cin, cout, 1, 0), wt, NULL, n, h, w);
        op_winograd_run(&L.c, n, h, w, x, all, res, OP_ACT_RELU, L.scratch);
        me_threads_limit(1);
        op_winograd_run(&L.c, n, h, w, x, again, res, OP_ACT_RELU, L.scratch);
        me_threads_limit(0);
        cr_assert_eq(memcmp(all, again, n * one * sizeof *all), 0, "%d wide: one thread changed the result", w);
        for (int i = 0; i < n; i++) {
            op_winograd_run(&L.c, 1, h, w, x + i * in1, alone, res + i * one, OP_ACT_RELU, L.scratch);
            cr_assert_eq(memcmp(all + i * one, alone, one * sizeof *alone), 0,
                         "%d wide: image %d alone differs from the batch", w, i);
        }
        layer_free(&L);
        free(x); free(wt); free(res); free(all); free(again); free(alone);
    }
}
